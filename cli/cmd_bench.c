/* tfq bench: training throughput of a net against OpenBLAS sgemm, measured
 * in the same run so the ratio does not depend on how busy the machine is
 * between runs.  Every figure is the median of several repeats. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common/clock.h"
#include "common/rng.h"
#include "record.h"
#include "worker/engine/gemm.h"
#include "worker/engine/kern.h"
#include "worker/engine/train.h"

#define SGEMM_N 1024

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Operands of the 1024x1024x1024 sgemm reference. */
typedef struct {
    float *a, *b, *c;
} sgemm_bench;

static int sgemm_init(sgemm_bench *g)
{
    size_t n = (size_t)SGEMM_N * SGEMM_N;
    g->a = malloc(n * sizeof(float));
    g->b = malloc(n * sizeof(float));
    g->c = malloc(n * sizeof(float));
    if (g->a == NULL || g->b == NULL || g->c == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        g->a[i] = rng_uniform(1, i) - 0.5f;
        g->b[i] = rng_uniform(2, i) - 0.5f;
    }
    return 0;
}

static void sgemm_release(sgemm_bench *g)
{
    free(g->a);
    free(g->b);
    free(g->c);
}

/* GFLOP/s of `products` back-to-back sgemm calls. */
static double sgemm_gflops(sgemm_bench *g, int products)
{
    double t0 = clock_mono_s();
    for (int i = 0; i < products; i++)
        gemm(0, 0, SGEMM_N, SGEMM_N, SGEMM_N, 1.0f, g->a, SGEMM_N, g->b,
             SGEMM_N, 0.0f, g->c, SGEMM_N);
    return 2.0 * SGEMM_N * SGEMM_N * SGEMM_N * products / (clock_mono_s() - t0) *
           1e-9;
}

/* A trainer on synthetic 28x28 data (two batches of random bytes). */
typedef struct {
    data_set d;
    trainer *t;
} train_bench;

static int train_bench_init(train_bench *b, const train_config *cfg,
                            tfq_error *e)
{
    b->d = (data_set){.n = cfg->batch * 2, .c = 1, .h = 28, .w = 28,
                      .num_classes = 10};
    b->d.x = malloc((size_t)b->d.n * 28 * 28);
    b->d.y = malloc((size_t)b->d.n);
    if (b->d.x == NULL || b->d.y == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return -1;
    }
    for (long i = 0; i < (long)b->d.n * 28 * 28; i++)
        b->d.x[i] = (uint8_t)(rng_u64(3, (uint64_t)i) & 0xff);
    for (int i = 0; i < b->d.n; i++)
        b->d.y[i] = (uint8_t)(i % 10);
    data_norm norm = {.c = 1, .mean = {0.5f}, .std = {0.29f}};
    b->t = trainer_new(cfg, &b->d, &b->d, &norm, NULL, e);
    if (b->t == NULL)
        return -1;
    trainer_time_steps(b->t, 3); /* warm-up: caches, page faults */
    return 0;
}

static void train_bench_release(train_bench *b)
{
    trainer_destroy(&b->t);
    free(b->d.x);
    free(b->d.y);
}

void cmd_bench_help(FILE *out)
{
    fputs(
"usage: tfq bench [OPTIONS]\n"
"\n"
"Measures training images/s and GFLOP/s of a net on synthetic 28x28 data,\n"
"and single-precision OpenBLAS sgemm GFLOP/s on a 1024x1024x1024 product in\n"
"the same run; prints medians and their ratio.  GFLOP/s counts the nominal\n"
"FLOPs of a full forward+backward step: 6 x the forward multiply-adds of\n"
"every conv and fc layer (forward, weight gradient, input gradient).\n"
"\n"
"  --net NAME|SPEC   reference (default), wide, or a layer list\n"
"  --batch N         (64)\n"
"  --threads N       training threads (1)\n"
"  --freeze N        also time a job with layers 1..N frozen (cached)\n"
"  --steps N         steps per repeat (30)\n"
"  --repeats N       repeats; the median is reported (7)\n"
"  --json            one JSON object\n"
"  --csv             the same fields as CSV: a header line, then one line\n"
"  -h, --help        this text\n"
"\n"
"TFQ_KERNELS=generic|avx2|avx512 forces a kernel set (default: the best\n"
"this CPU runs); TFQ_CONV_ALGO=direct|gemm forces every convolution pass\n"
"onto the direct kernels (where they run) or im2col + sgemm (default: auto,\n"
"timed per layer when the net is built).\n", out);
}

typedef struct {
    const char *net_arg;
    long batch, threads, freeze, steps, repeats;
    int json, csv;
} bench_args;

/* 0: go on; 1: --help was printed; -1: a bad command line. */
static int parse_args(int argc, char **argv, bench_args *a)
{
    static const struct option opts[] = {
        {"net", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},
        {"freeze", required_argument, 0, 'f'},
        {"steps", required_argument, 0, 's'},
        {"repeats", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'},
        {"csv", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'n': a->net_arg = optarg; break;
        case 'b': bad = cli_int("bench", "--batch", optarg, 1, 4096, &a->batch); break;
        case 't': bad = cli_int("bench", "--threads", optarg, 1, 256, &a->threads); break;
        case 'f': bad = cli_int("bench", "--freeze", optarg, 0, NETSPEC_MAX_OPS, &a->freeze); break;
        case 's': bad = cli_int("bench", "--steps", optarg, 1, 100000, &a->steps); break;
        case 'r': bad = cli_int("bench", "--repeats", optarg, 1, 1000, &a->repeats); break;
        case 'j': a->json = 1; break;
        case 'v': a->csv = 1; break;
        case 'h': cmd_bench_help(stdout); return 1;
        default: return -1;
        }
        if (bad)
            return -1;
    }
    if (a->json && a->csv) {
        fprintf(stderr, "tfq bench: --csv and --json conflict (one "
                "format)\n");
        return -1;
    }
    return cli_no_more_args("bench", argc, argv);
}

/* The medians a bench reports. */
typedef struct {
    double sgemm;      /* GFLOP/s */
    double ips;        /* training images/s of the full net */
    double ratio;      /* median of the per-repeat train/sgemm ratios */
    double ips_frozen; /* with layers 1..freeze frozen; 0 without --freeze */
    double flops;      /* nominal FLOPs per image */
    char kernels[2048];
} bench_result;

/* Times sgemm and the nets, a->repeats times each.  The repeats alternate
 * between the reference and the nets, so both see the same machine: the
 * ratio is the median of per-repeat ratios.  TFQ_ENOMEM or the trainer's
 * error in e. */
static int measure(const bench_args *a, const train_config *cfg,
                   bench_result *out, tfq_error *e)
{
    sgemm_bench g = {0};
    train_bench full = {0}, frozen = {0};
    size_t n = (size_t)a->repeats;
    double *sg = calloc(n, sizeof(double));
    double *ips_v = calloc(n, sizeof(double));
    double *ratio_v = calloc(n, sizeof(double));
    double *frz_v = calloc(n, sizeof(double));
    train_config fz = *cfg;
    fz.freeze_layers = (int)a->freeze;
    int rc = TFQ_OK;
    if (sg == NULL || ips_v == NULL || ratio_v == NULL || frz_v == NULL ||
        sgemm_init(&g) != 0)
        rc = tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    else if ((rc = train_bench_init(&full, cfg, e)) == 0 && a->freeze > 0)
        rc = train_bench_init(&frozen, &fz, e);
    if (rc != 0)
        goto out;
    double macs = net_macs(trainer_net(full.t));
    net_describe_kernels(trainer_net(full.t), out->kernels,
                         sizeof out->kernels);
    int steps = (int)a->steps;
    sgemm_gflops(&g, 1); /* warm-up */
    for (size_t r = 0; r < n; r++) {
        sg[r] = sgemm_gflops(&g, 5);
        ips_v[r] = steps * cfg->batch / trainer_time_steps(full.t, steps);
        ratio_v[r] = ips_v[r] * 6.0 * macs * 1e-9 / sg[r];
        if (a->freeze > 0)
            frz_v[r] = steps * cfg->batch / trainer_time_steps(frozen.t, steps);
    }
    out->sgemm = median(sg, (int)n);
    out->ips = median(ips_v, (int)n);
    out->ratio = median(ratio_v, (int)n);
    out->ips_frozen = a->freeze > 0 ? median(frz_v, (int)n) : 0.0;
    out->flops = 6.0 * macs;
out:
    train_bench_release(&full);
    train_bench_release(&frozen);
    sgemm_release(&g);
    free(sg);
    free(ips_v);
    free(ratio_v);
    free(frz_v);
    return rc;
}

static void print_result(const bench_args *a, const bench_result *b)
{
    double gflops = b->ips * b->flops * 1e-9;
    if (a->json || a->csv) {
        record r;
        record_init(&r);
        record_str(&r, "kernels", kern_active()->name);
        record_int(&r, "threads", a->threads);
        record_int(&r, "batch", a->batch);
        record_num(&r, "sgemm_gflops", "%.2f", b->sgemm);
        record_num(&r, "train_images_per_s", "%.1f", b->ips);
        record_num(&r, "train_gflops", "%.2f", gflops);
        record_num(&r, "ratio", "%.3f", b->ratio);
        record_num(&r, "nominal_flops_per_image", "%.0f", b->flops);
        if (a->freeze > 0) {
            record_int(&r, "frozen_layers", a->freeze);
            record_num(&r, "frozen_images_per_s", "%.1f", b->ips_frozen);
            record_num(&r, "frozen_speedup", "%.2f", b->ips_frozen / b->ips);
        }
        if (a->json) {
            record_write_json(&r, stdout);
        } else {
            record_write_csv(&r, 1, stdout);
            record_write_csv(&r, 0, stdout);
        }
        return;
    }
    printf("%s\n", b->kernels);
    printf("threads %ld, batch %ld, medians of %ld repeats\n", a->threads,
           a->batch, a->repeats);
    printf("sgemm 1024^3          %8.2f GFLOP/s\n", b->sgemm);
    printf("train %-15s %8.2f GFLOP/s  %8.1f images/s  "
           "(%.2f MFLOP/image nominal)\n", a->net_arg, gflops, b->ips,
           b->flops * 1e-6);
    printf("ratio train/sgemm     %8.3f  (median of per-repeat ratios)\n",
           b->ratio);
    if (a->freeze > 0)
        printf("frozen 1..%ld (cached)  %8.1f images/s  (%.1fx the full "
               "net per step)\n", a->freeze, b->ips_frozen,
               b->ips_frozen / b->ips);
}

int cmd_bench(int argc, char **argv)
{
    bench_args a = {.net_arg = "reference", .batch = 64, .threads = 1,
                    .steps = 30, .repeats = 7};
    int prc = parse_args(argc, argv, &a);
    if (prc != 0)
        return prc > 0 ? CLI_OK : CLI_USAGE;
    train_config cfg;
    train_config_default(&cfg);
    cfg.batch = (int)a.batch;
    tfq_error e = {0};
    if (netspec_resolve(a.net_arg, 1.0, &cfg.spec, &e) != 0) {
        fprintf(stderr, "tfq bench: --net: %s\n", e.msg);
        return CLI_USAGE;
    }
    train_set_threads((int)a.threads);
    static bench_result b;
    if (measure(&a, &cfg, &b, &e) != 0) {
        fprintf(stderr, "tfq bench: %s\n", e.msg);
        return CLI_ERROR;
    }
    print_result(&a, &b);
    return CLI_OK;
}
