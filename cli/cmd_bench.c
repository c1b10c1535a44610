/* tfq bench: training throughput of a net against OpenBLAS sgemm, measured
 * in the same run so the ratio does not depend on how busy the machine is
 * between runs.  Every figure is the median of several repeats. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common/rng.h"
#include "worker/gemm.h"
#include "worker/train.h"

#define SGEMM_N 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

/* Median GFLOP/s of a 1024x1024x1024 sgemm. */
static double bench_sgemm(int repeats)
{
    size_t n = (size_t)SGEMM_N * SGEMM_N;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    float *c = malloc(n * sizeof(float));
    if (a == NULL || b == NULL || c == NULL) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = rng_uniform(1, i) - 0.5f;
        b[i] = rng_uniform(2, i) - 0.5f;
    }
    double *g = malloc(sizeof(double) * (size_t)repeats);
    gemm(0, 0, SGEMM_N, SGEMM_N, SGEMM_N, 1.0f, a, SGEMM_N, b, SGEMM_N, 0.0f,
         c, SGEMM_N); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double t0 = now_s();
        gemm(0, 0, SGEMM_N, SGEMM_N, SGEMM_N, 1.0f, a, SGEMM_N, b, SGEMM_N,
             0.0f, c, SGEMM_N);
        g[r] = 2.0 * SGEMM_N * SGEMM_N * SGEMM_N / (now_s() - t0) * 1e-9;
    }
    double med = median(g, repeats);
    free(g);
    free(a);
    free(b);
    free(c);
    return med;
}

/* Median training images/s of cfg over `repeats` runs of `steps` steps. */
static double bench_train(const train_config *cfg, int steps, int repeats,
                          double *macs_per_image, tfq_error *e)
{
    data_set d = {.n = cfg->batch * 2, .c = 1, .h = 28, .w = 28,
                  .num_classes = 10};
    d.x = malloc((size_t)d.n * 28 * 28);
    d.y = malloc((size_t)d.n);
    double *ips = malloc(sizeof(double) * (size_t)repeats);
    double result = -1.0;
    trainer *t = NULL;
    if (d.x == NULL || d.y == NULL || ips == NULL)
        goto out;
    for (long i = 0; i < (long)d.n * 28 * 28; i++)
        d.x[i] = (uint8_t)(rng_u64(3, (uint64_t)i) & 0xff);
    for (int i = 0; i < d.n; i++)
        d.y[i] = (uint8_t)(i % 10);
    data_norm norm = {.c = 1, .mean = {0.5f}, .std = {0.29f}};
    t = trainer_new(cfg, &d, &d, &norm, NULL, e);
    if (t == NULL)
        goto out;
    *macs_per_image = net_macs(trainer_net(t));
    trainer_time_steps(t, 3); /* warm-up: caches, page faults */
    for (int r = 0; r < repeats; r++)
        ips[r] = steps * cfg->batch / trainer_time_steps(t, steps);
    result = median(ips, repeats);
out:
    trainer_destroy(&t);
    free(ips);
    free(d.x);
    free(d.y);
    return result;
}

static void help(void)
{
    printf(
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
"  --threads N       BLAS threads (1)\n"
"  --freeze N        also time a job with layers 1..N frozen (cached)\n"
"  --steps N         steps per repeat (30)\n"
"  --repeats N       repeats; the median is reported (7)\n"
"  --json            one JSON object\n");
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"net", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},
        {"freeze", required_argument, 0, 'f'},
        {"steps", required_argument, 0, 's'},
        {"repeats", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *net_arg = "reference";
    long batch = 64, threads = 1, freeze = 0, steps = 30, repeats = 7;
    int json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'n': net_arg = optarg; break;
        case 'b': bad = cli_int("bench", "--batch", optarg, 1, 4096, &batch); break;
        case 't': bad = cli_int("bench", "--threads", optarg, 1, 256, &threads); break;
        case 'f': bad = cli_int("bench", "--freeze", optarg, 0, NET_MAX_OPS, &freeze); break;
        case 's': bad = cli_int("bench", "--steps", optarg, 1, 100000, &steps); break;
        case 'r': bad = cli_int("bench", "--repeats", optarg, 1, 1000, &repeats); break;
        case 'j': json = 1; break;
        case 'h': help(); return CLI_OK;
        default: return CLI_USAGE;
        }
        if (bad)
            return CLI_USAGE;
    }
    train_config cfg;
    train_config_default(&cfg);
    cfg.batch = (int)batch;
    tfq_error e = {0};
    if (net_spec_resolve(net_arg, 1.0, &cfg.spec, &e) != 0) {
        fprintf(stderr, "tfq bench: --net: %s\n", e.msg);
        return CLI_USAGE;
    }
    gemm_set_threads((int)threads);
    double sgemm = bench_sgemm((int)repeats);
    double macs = 0.0;
    double ips = bench_train(&cfg, (int)steps, (int)repeats, &macs, &e);
    double ips_frozen = 0.0, macs_frozen = 0.0;
    if (ips > 0 && freeze > 0) {
        train_config fz = cfg;
        fz.freeze_layers = (int)freeze;
        ips_frozen = bench_train(&fz, (int)steps, (int)repeats, &macs_frozen, &e);
    }
    if (ips < 0 || ips_frozen < 0) {
        fprintf(stderr, "tfq bench: %s\n", e.msg);
        return CLI_FAIL;
    }
    double flops = 6.0 * macs; /* per image */
    double gflops = ips * flops * 1e-9;
    if (json) {
        printf("{\"threads\": %ld, \"batch\": %ld, \"sgemm_gflops\": %.2f, "
               "\"train_images_per_s\": %.1f, \"train_gflops\": %.2f, "
               "\"ratio\": %.3f, \"nominal_flops_per_image\": %.0f",
               threads, batch, sgemm, ips, gflops, gflops / sgemm, flops);
        if (freeze > 0)
            printf(", \"frozen_layers\": %ld, \"frozen_images_per_s\": %.1f, "
                   "\"frozen_speedup\": %.2f", freeze, ips_frozen,
                   ips_frozen / ips);
        printf("}\n");
    } else {
        printf("threads %ld, batch %ld, medians of %ld repeats\n", threads,
               batch, repeats);
        printf("sgemm 1024^3          %8.2f GFLOP/s\n", sgemm);
        printf("train %-15s %8.2f GFLOP/s  %8.1f images/s  "
               "(%.2f MFLOP/image nominal)\n", net_arg, gflops, ips,
               flops * 1e-6);
        printf("ratio train/sgemm     %8.3f\n", gflops / sgemm);
        if (freeze > 0)
            printf("frozen 1..%ld (cached)  %8.1f images/s  (%.1fx the full "
                   "net per step)\n", freeze, ips_frozen, ips_frozen / ips);
    }
    return CLI_OK;
}
