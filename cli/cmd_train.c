/* tfq train: one job of a grid, run by hand. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/err.h"
#include "worker/engine/data.h"
#include "worker/engine/gemm.h"
#include "worker/engine/train.h"

#define DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

static volatile sig_atomic_t s_stop;

static void on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void help(void)
{
    printf(
"usage: tfq train [OPTIONS]\n"
"\n"
"Trains one network and reports its test accuracy after every epoch.\n"
"\n"
"data:\n"
"  --dataset KIND      fashion-mnist (default), mnist, idx, cifar10, cifar100\n"
"  --data DIR          data set directory (default " DEFAULT_DATA_DIR ")\n"
"  --classes LIST      keep these classes, relabelled 0.. in this order,\n"
"                      e.g. 0,2,3,4,6 (default: all)\n"
"  --limit-train N     use only the first N training images\n"
"  --limit-test N      use only the first N test images\n"
"net:\n"
"  --net NAME|SPEC     reference (default), wide, caffenet, or a layer list\n"
"                      such as 'conv 16 5 pad=2; relu; maxpool 2; fc classes'\n"
"  --width F           multiply a preset's channel counts by F (default 1)\n"
"training:\n"
"  --epochs N          (10)          --batch N          (64)\n"
"  --lr F              (0.01)        --momentum F       (0.9)\n"
"  --weight-decay F    (5e-4)        --lr-step F        (0.75: lr x gamma\n"
"  --lr-gamma F        (0.1)                            after 75%% of steps)\n"
"  --bias-lr-mult F    (2)           --bias-decay-mult F (0)\n"
"  --seed N            (1)           --threads N        (1, training threads)\n"
"  --topk K            report the mean of the K best test evaluations (3)\n"
"transfer:\n"
"  --init CKPT         checkpoint to copy layers from\n"
"  --copy N            copy learned layers 1..N from --init\n"
"  --freeze N          freeze learned layers 1..N (no update, no decay, no\n"
"                      backward pass); without --init: the random control\n"
"  --cache-mb N        memory budget for caching the frozen layers' output\n"
"                      (96; 0 disables the cache)\n"
"checkpoints:\n"
"  --save FILE         write a checkpoint after training (and on SIGINT/TERM)\n"
"  --save-every N      also after every N epochs\n"
"  --resume FILE       continue from a checkpoint of this same job\n"
"output:\n"
"  --json              print one JSON object with the results at the end\n"
"  --quiet             no per-epoch lines\n");
}

enum {
    OPT_DATASET = 256, OPT_DATA, OPT_CLASSES, OPT_LIMIT_TRAIN, OPT_LIMIT_TEST,
    OPT_NET, OPT_WIDTH, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_MOMENTUM, OPT_WD,
    OPT_LR_STEP, OPT_LR_GAMMA, OPT_BIAS_LR, OPT_BIAS_DECAY, OPT_SEED,
    OPT_THREADS, OPT_TOPK, OPT_INIT, OPT_COPY, OPT_FREEZE, OPT_CACHE,
    OPT_SAVE, OPT_SAVE_EVERY, OPT_RESUME, OPT_JSON, OPT_QUIET, OPT_HELP,
};

static const struct option s_opts[] = {
    {"dataset", required_argument, 0, OPT_DATASET},
    {"data", required_argument, 0, OPT_DATA},
    {"classes", required_argument, 0, OPT_CLASSES},
    {"limit-train", required_argument, 0, OPT_LIMIT_TRAIN},
    {"limit-test", required_argument, 0, OPT_LIMIT_TEST},
    {"net", required_argument, 0, OPT_NET},
    {"width", required_argument, 0, OPT_WIDTH},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"lr", required_argument, 0, OPT_LR},
    {"momentum", required_argument, 0, OPT_MOMENTUM},
    {"weight-decay", required_argument, 0, OPT_WD},
    {"lr-step", required_argument, 0, OPT_LR_STEP},
    {"lr-gamma", required_argument, 0, OPT_LR_GAMMA},
    {"bias-lr-mult", required_argument, 0, OPT_BIAS_LR},
    {"bias-decay-mult", required_argument, 0, OPT_BIAS_DECAY},
    {"seed", required_argument, 0, OPT_SEED},
    {"threads", required_argument, 0, OPT_THREADS},
    {"topk", required_argument, 0, OPT_TOPK},
    {"init", required_argument, 0, OPT_INIT},
    {"copy", required_argument, 0, OPT_COPY},
    {"freeze", required_argument, 0, OPT_FREEZE},
    {"cache-mb", required_argument, 0, OPT_CACHE},
    {"save", required_argument, 0, OPT_SAVE},
    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    {"json", no_argument, 0, OPT_JSON},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"help", no_argument, 0, OPT_HELP},
    {0, 0, 0, 0},
};

typedef struct {
    train_config cfg;
    data_kind kind;
    const char *dir;
    int classes[256];
    int nclasses;
    long limit_train, limit_test;
    const char *net_arg;
    double width;
    long threads;
    const char *save, *resume;
    long save_every;
    int json, quiet;
} train_args;

static int parse_classes(const char *v, train_args *a)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    a->nclasses = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        long c;
        if (a->nclasses == 256 ||
            cli_int("train", "--classes", tok, 0, 255, &c) != 0)
            return -1;
        a->classes[a->nclasses++] = (int)c;
    }
    if (a->nclasses < 2) {
        fprintf(stderr, "tfq train: --classes: need at least two classes\n");
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, train_args *a)
{
    long v;
    double d;
    uint64_t u;
    train_config *c = &a->cfg;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", s_opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case OPT_DATASET:
            if (data_kind_parse(optarg, &a->kind) != 0) {
                fprintf(stderr, "tfq train: --dataset: unknown kind '%s'\n",
                        optarg);
                bad = 1;
            }
            break;
        case OPT_DATA: a->dir = optarg; break;
        case OPT_CLASSES: bad = parse_classes(optarg, a); break;
        case OPT_LIMIT_TRAIN:
            bad = cli_int("train", "--limit-train", optarg, 1, 1L << 30, &a->limit_train);
            break;
        case OPT_LIMIT_TEST:
            bad = cli_int("train", "--limit-test", optarg, 1, 1L << 30, &a->limit_test);
            break;
        case OPT_NET: a->net_arg = optarg; break;
        case OPT_WIDTH:
            bad = cli_double("train", "--width", optarg, 1e-3, 64, &a->width);
            break;
        case OPT_EPOCHS:
            bad = cli_int("train", "--epochs", optarg, 1, CKPT_MAX_EVALS, &v);
            c->epochs = (int)v;
            break;
        case OPT_BATCH:
            bad = cli_int("train", "--batch", optarg, 1, 65536, &v);
            c->batch = (int)v;
            break;
        case OPT_LR:
            bad = cli_double("train", "--lr", optarg, 1e-9, 10, &d);
            c->lr = (float)d;
            break;
        case OPT_MOMENTUM:
            bad = cli_double("train", "--momentum", optarg, 0, 0.999, &d);
            c->momentum = (float)d;
            break;
        case OPT_WD:
            bad = cli_double("train", "--weight-decay", optarg, 0, 0.5, &d);
            c->weight_decay = (float)d;
            break;
        case OPT_LR_STEP:
            bad = cli_double("train", "--lr-step", optarg, 0, 1, &d);
            c->lr_step_at = (float)d;
            break;
        case OPT_LR_GAMMA:
            bad = cli_double("train", "--lr-gamma", optarg, 1e-6, 1, &d);
            c->lr_gamma = (float)d;
            break;
        case OPT_BIAS_LR:
            bad = cli_double("train", "--bias-lr-mult", optarg, 0, 100, &d);
            c->bias_lr_mult = (float)d;
            break;
        case OPT_BIAS_DECAY:
            bad = cli_double("train", "--bias-decay-mult", optarg, 0, 100, &d);
            c->bias_decay_mult = (float)d;
            break;
        case OPT_SEED:
            bad = cli_u64("train", "--seed", optarg, &u);
            c->seed = u;
            break;
        case OPT_THREADS:
            bad = cli_int("train", "--threads", optarg, 1, 256, &a->threads);
            break;
        case OPT_TOPK:
            bad = cli_int("train", "--topk", optarg, 1, CKPT_MAX_EVALS, &v);
            c->topk = (int)v;
            break;
        case OPT_INIT: c->init_path = optarg; break;
        case OPT_COPY:
            bad = cli_int("train", "--copy", optarg, 0, NET_MAX_OPS, &v);
            c->copy_layers = (int)v;
            break;
        case OPT_FREEZE:
            bad = cli_int("train", "--freeze", optarg, 0, NET_MAX_OPS, &v);
            c->freeze_layers = (int)v;
            break;
        case OPT_CACHE:
            bad = cli_int("train", "--cache-mb", optarg, 0, 1L << 20, &v);
            c->cache_bytes = (size_t)v << 20;
            break;
        case OPT_SAVE: a->save = optarg; break;
        case OPT_SAVE_EVERY:
            bad = cli_int("train", "--save-every", optarg, 1, CKPT_MAX_EVALS, &a->save_every);
            break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_QUIET: a->quiet = 1; break;
        case OPT_HELP: help(); return 1;
        default: return -1;
        }
        if (bad)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "tfq train: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void fmt_duration(double s, char *buf, size_t len)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%lds", t);
}

static void on_epoch(const train_progress *p, void *ud)
{
    const train_args *a = ud;
    if (a->quiet)
        return;
    char eta[32];
    fmt_duration(p->eta_s, eta, sizeof eta);
    fprintf(stderr, "epoch %3d/%d  loss %.4f  test_acc %.4f  %7.0f img/s  "
            "%6.1f s  eta %s\n", p->epoch, p->epochs, p->train_loss,
            p->test_acc, p->images_per_s, p->epoch_s, eta);
}

/* Loads the data set and cuts it to the requested classes and sizes.
 * norm is computed on the whole training set, before any cut. */
static int load_data(train_args *a, data_set *full_train, data_set *full_test,
                     data_set *train, data_set *test, data_norm *norm,
                     char fp[HASH_HEX_BYTES], tfq_error *e)
{
    int rc = data_load(a->kind, a->dir, full_train, full_test, fp, e);
    if (rc != 0)
        return rc;
    data_norm_compute(full_train, norm);
    if (a->nclasses > 0) {
        if ((rc = data_subset(full_train, a->classes, a->nclasses, train, e)))
            return rc;
        if ((rc = data_subset(full_test, a->classes, a->nclasses, test, e)))
            return rc;
        data_release(full_train);
        data_release(full_test);
    } else {
        *train = *full_train;
        *test = *full_test;
        memset(full_train, 0, sizeof *full_train);
        memset(full_test, 0, sizeof *full_test);
    }
    if (a->limit_train > 0 && a->limit_train < train->n)
        train->n = (int)a->limit_train;
    if (a->limit_test > 0 && a->limit_test < test->n)
        test->n = (int)a->limit_test;
    return 0;
}

static void print_json(const train_args *a, const trainer *t,
                       const train_result *r, const char *fp)
{
    const ckpt_meta *m = trainer_meta(t);
    printf("{\"epochs\": %d, \"final_acc\": %.6f, \"best_acc\": %.6f, "
           "\"topk\": %d, \"topk_acc\": %.6f, \"final_loss\": %.6f, "
           "\"train_seconds\": %.3f, \"images_per_s\": %.1f, "
           "\"cached_floats_per_image\": %ld, \"seed\": %llu, "
           "\"data_fingerprint\": \"%s\", \"net\": \"%s\", \"test_acc\": [",
           r->epochs_done, r->final_acc, r->best_acc, a->cfg.topk,
           r->topk_acc, r->final_loss, r->seconds, r->images_per_s,
           r->cached_floats_per_image, (unsigned long long)a->cfg.seed, fp,
           m->net_text);
    for (int i = 0; i < m->nevals; i++)
        printf("%s%.6f", i ? ", " : "", (double)m->test_acc[i]);
    printf("], \"train_loss\": [");
    for (int i = 0; i < m->nevals; i++)
        printf("%s%.6f", i ? ", " : "", (double)m->train_loss[i]);
    printf("]}\n");
}

int cmd_train(int argc, char **argv)
{
    train_args a = {.dir = DEFAULT_DATA_DIR, .kind = DATA_IDX,
                    .net_arg = "reference", .width = 1.0, .threads = 1};
    train_config_default(&a.cfg);
    int prc = parse_args(argc, argv, &a);
    if (prc != 0)
        return prc > 0 ? CLI_OK : CLI_USAGE;
    tfq_error e = {0};
    if (net_spec_resolve(a.net_arg, a.width, &a.cfg.spec, &e) != 0) {
        fprintf(stderr, "tfq train: --net: %s\n", e.msg);
        return CLI_USAGE;
    }
    train_set_threads((int)a.threads);
    /* From here a signal asks for a clean stop: before training starts it
     * is noticed at the first step, and nothing is lost. */
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    data_set full_train = {0}, full_test = {0}, train = {0}, test = {0};
    data_norm norm;
    char fp[HASH_HEX_BYTES] = "";
    trainer *t = NULL;
    int status = CLI_FAIL;
    if (load_data(&a, &full_train, &full_test, &train, &test, &norm, fp, &e))
        goto done;
    t = trainer_new(&a.cfg, &train, &test, &norm, fp, &e);
    if (t == NULL)
        goto done;
    if (a.resume != NULL && trainer_resume(t, a.resume, &e) != 0)
        goto done;
    if (!a.quiet) {
        char kernels[2048];
        net_describe_kernels(trainer_net(t), kernels, sizeof kernels);
        fprintf(stderr, "%s\n", kernels);
        fprintf(stderr, "training %d images (%d classes), testing %d, data "
                "%.12s, %d epochs from epoch %d\n", train.n,
                train.num_classes, test.n, fp, a.cfg.epochs,
                trainer_meta(t)->epoch + 1);
    }
    int rc = trainer_run(t, on_epoch, &a, &s_stop, a.save,
                         (int)a.save_every, &e);
    if (rc == TFQ_EINTR) {
        if (a.save != NULL && trainer_save(t, a.save, &e) == 0)
            fprintf(stderr, "tfq train: interrupted; checkpoint in %s "
                    "(continue with --resume)\n", a.save);
        else
            fprintf(stderr, "tfq train: interrupted\n");
        status = CLI_INTERRUPTED;
        goto done_quiet;
    }
    if (rc != 0)
        goto done;
    if (a.save != NULL && a.save_every == 0 && trainer_save(t, a.save, &e))
        goto done;
    train_result r;
    trainer_result_get(t, &r);
    if (a.json)
        print_json(&a, t, &r, fp);
    else
        printf("final_acc %.4f  best_acc %.4f  top%d_acc %.4f  "
               "%.1f s  %.0f img/s\n", r.final_acc, r.best_acc, a.cfg.topk,
               r.topk_acc, r.seconds, r.images_per_s);
    status = CLI_OK;
done:
    if (status != CLI_OK)
        fprintf(stderr, "tfq train: %s\n", e.msg[0] ? e.msg : tfq_strerror(e.code));
done_quiet:
    trainer_destroy(&t);
    data_release(&train);
    data_release(&test);
    data_release(&full_train);
    data_release(&full_test);
    return status;
}
