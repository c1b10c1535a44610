/* tfq train: one job of a grid, run by hand. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/data_kind.h"
#include "common/err.h"
#include "common/metric.h"
#include "common/settings.h"
#include "common/stop.h"
#include "record.h"
#include "worker/engine/data.h"
#include "worker/engine/gemm.h"
#include "worker/engine/train.h"

#define OPTION_NAME_BYTES 40

/* Settings tfq train has no option for: ckpt_every is its --save-every,
 * which also names where the checkpoint goes. */
static int no_option(int id)
{
    return id == SETTING_CKPT_EVERY;
}

/* The option of setting s: "--weight-decay" for weight_decay. */
static void option_name(const setting *s, char buf[OPTION_NAME_BYTES])
{
    snprintf(buf, OPTION_NAME_BYTES, "--%s", s->name);
    for (char *c = buf; *c != '\0'; c++)
        if (*c == '_')
            *c = '-';
}

/* The settings' lines of --help: the table's help and default, wrapped
 * under the help column at 79 characters. */
static void help_settings(FILE *out)
{
    for (int i = 0; i < SETTING_COUNT; i++) {
        const setting *s = &settings_table[i];
        if (no_option(i))
            continue;
        char name[OPTION_NAME_BYTES], label[64], text[256];
        option_name(s, name);
        snprintf(label, sizeof label, "  %s %-*s ", name,
                 (int)(18 - strlen(name)),
                 s->type == SETTING_DOUBLE ? "F"
                 : s->type == SETTING_ENUM ? "W"
                                           : "N");
        char def[32];
        if (s->type == SETTING_ENUM)
            settings_format(s, s->def, def, sizeof def);
        else
            snprintf(def, sizeof def, "%g", s->def);
        snprintf(text, sizeof text, "%s (%s)", s->help, def);
        size_t indent = strlen(label), col = indent;
        fputs(label, out);
        for (char *w = strtok(text, " "); w != NULL; w = strtok(NULL, " ")) {
            if (col > indent && col + 1 + strlen(w) > 79) {
                fprintf(out, "\n%*s", (int)indent, "");
                col = indent;
            }
            col += (size_t)fprintf(out, "%s%s", col > indent ? " " : "", w);
        }
        fputc('\n', out);
    }
}

void cmd_train_help(FILE *out)
{
    fputs(
"usage: tfq train [OPTIONS]\n"
"\n"
"Trains one network and reports its test accuracy after every epoch.\n"
"\n"
"data:\n"
"  --dataset KIND      fashion-mnist (default), mnist, idx, cifar10, cifar100\n"
"  --data DIR          data set directory (default " DATA_KIND_DEFAULT_DIR ")\n"
"  --classes LIST      keep these classes, relabelled 0.. in this order,\n"
"                      e.g. 0,2,3,4,6 (default: all)\n"
"net:\n"
"  --net NAME|SPEC     reference (default), wide, caffenet, or a layer list\n"
"                      such as 'conv 16 5 pad=2; relu; maxpool 2; fc classes'\n"
"  --width F           multiply a preset's channel counts by F (default 1)\n"
"  --threads N         training threads (1)\n"
"transfer:\n"
"  --init CKPT         checkpoint to copy layers from (--copy); --freeze\n"
"                      without --init: the random control\n"
"checkpoints:\n"
"  --save FILE         write a checkpoint after training (and on SIGINT/TERM)\n"
"  --save-every N      also after every N epochs\n"
"  --resume FILE       continue from a checkpoint of this same job\n"
"output:\n"
"  --json              print one JSON object with the results at the end;\n"
"                      the metric is named in metric (top3: the mean of the\n"
"                      --topk best test evaluations) and is topk_acc\n"
"  --csv               print a CSV line per epoch as it ends, under a header:\n"
"                      epoch,epochs,train_loss,test_acc,images_per_s,epoch_s,\n"
"                      eta_s (seconds)\n"
"  --quiet             no per-epoch lines on stderr\n"
"  -h, --help          this text\n"
"settings (a job spec's keys, '-' for '_'; the default in parentheses):\n",
          out);
    help_settings(out);
}

/* Option values: the settings are OPT_SETTING + their setting_id. */
enum {
    OPT_DATASET = 256, OPT_DATA, OPT_CLASSES, OPT_NET, OPT_WIDTH,
    OPT_THREADS, OPT_INIT, OPT_SAVE, OPT_SAVE_EVERY, OPT_RESUME, OPT_JSON,
    OPT_CSV, OPT_QUIET, OPT_HELP, OPT_SETTING,
};

static const struct option s_fixed_opts[] = {
    {"dataset", required_argument, 0, OPT_DATASET},
    {"data", required_argument, 0, OPT_DATA},
    {"classes", required_argument, 0, OPT_CLASSES},
    {"net", required_argument, 0, OPT_NET},
    {"width", required_argument, 0, OPT_WIDTH},
    {"threads", required_argument, 0, OPT_THREADS},
    {"init", required_argument, 0, OPT_INIT},
    {"save", required_argument, 0, OPT_SAVE},
    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    {"json", no_argument, 0, OPT_JSON},
    {"csv", no_argument, 0, OPT_CSV},
    {"quiet", no_argument, 0, OPT_QUIET},
    {"help", no_argument, 0, OPT_HELP},
};

#define NFIXED (sizeof s_fixed_opts / sizeof s_fixed_opts[0])

/* The fixed options, then one per setting: --NAME with '-' for '_'. */
static const struct option *options(void)
{
    static struct option opts[NFIXED + SETTING_COUNT + 1];
    static char names[SETTING_COUNT][OPTION_NAME_BYTES];
    if (opts[0].name != NULL)
        return opts;
    memcpy(opts, s_fixed_opts, sizeof s_fixed_opts);
    size_t n = NFIXED;
    for (int i = 0; i < SETTING_COUNT; i++) {
        if (no_option(i))
            continue;
        option_name(&settings_table[i], names[i]);
        opts[n++] = (struct option){names[i] + 2, required_argument, 0,
                                    OPT_SETTING + i};
    }
    return opts;
}

typedef struct {
    train_config cfg;
    data_kind kind;
    const char *dir;
    int classes[256];
    int nclasses;
    long limit_train, limit_test; /* 0: all */
    const char *net_arg;
    double width;
    long threads;
    const char *save, *resume;
    long save_every;
    int json, csv, quiet;
    int csv_rows; /* CSV lines printed (the header comes before the first) */
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

/* Parses v, the value of the option of setting id, against the settings
 * table and stores it where the trainer or load_data reads it; -1 (with a
 * message) when it is not a value of the setting. */
static int set_setting(train_args *a, int id, const char *v)
{
    const setting *s = &settings_table[id];
    char flag[OPTION_NAME_BYTES];
    option_name(s, flag);
    train_config *c = &a->cfg;
    long n = 0;
    double d = 0;
    if (s->type == SETTING_U64) /* the seed, every bit of it */
        return cli_u64("train", flag, v, &c->seed);
    if (s->type == SETTING_ENUM) {
        tfq_error e = {0};
        if (settings_parse(s, flag, v, &d, &e) != 0) {
            fprintf(stderr, "tfq train: %s\n", e.msg);
            return -1;
        }
        c->weight_init = (weight_init)d; /* the one enumerated setting */
        return 0;
    }
    if (s->type == SETTING_INT
            ? cli_int("train", flag, v, (long)s->lo, (long)s->hi, &n)
            : cli_double("train", flag, v, s->lo, s->hi, &d))
        return -1;
    switch ((setting_id)id) {
    case SETTING_EPOCHS: c->epochs = (int)n; break;
    case SETTING_BATCH: c->batch = (int)n; break;
    case SETTING_TOPK: c->topk = (int)n; break;
    case SETTING_LR: c->lr = (float)d; break;
    case SETTING_MOMENTUM: c->momentum = (float)d; break;
    case SETTING_WEIGHT_DECAY: c->weight_decay = (float)d; break;
    case SETTING_LR_STEP: c->lr_step_at = (float)d; break;
    case SETTING_LR_GAMMA: c->lr_gamma = (float)d; break;
    case SETTING_BIAS_LR_MULT: c->bias_lr_mult = (float)d; break;
    case SETTING_BIAS_DECAY_MULT: c->bias_decay_mult = (float)d; break;
    case SETTING_CACHE_MB: c->cache_bytes = (size_t)n << 20; break;
    case SETTING_LIMIT_TRAIN: a->limit_train = n; break;
    case SETTING_LIMIT_TEST: a->limit_test = n; break;
    case SETTING_COPY: c->copy_layers = (int)n; break;
    case SETTING_FREEZE: c->freeze_layers = (int)n; break;
    case SETTING_SEED:
    case SETTING_WEIGHT_INIT:
    case SETTING_CKPT_EVERY:
    case SETTING_COUNT: break;
    }
    return 0;
}

/* 0: go on; 1: --help was printed; -1: a bad command line (said on
 * stderr). */
static int parse_args(int argc, char **argv, train_args *a)
{
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", options(), NULL)) != -1) {
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
        case OPT_NET: a->net_arg = optarg; break;
        case OPT_WIDTH:
            bad = cli_double("train", "--width", optarg, 1e-3, 64, &a->width);
            break;
        case OPT_THREADS:
            bad = cli_int("train", "--threads", optarg, 1, 256, &a->threads);
            break;
        case OPT_INIT: a->cfg.init_path = optarg; break;
        case OPT_SAVE: a->save = optarg; break;
        case OPT_SAVE_EVERY:
            bad = cli_int("train", "--save-every", optarg, 1, CKPT_MAX_EVALS,
                          &a->save_every);
            break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_CSV: a->csv = 1; break;
        case OPT_QUIET: a->quiet = 1; break;
        case 'h':
        case OPT_HELP: cmd_train_help(stdout); return 1;
        default:
            if (o < OPT_SETTING || o >= OPT_SETTING + SETTING_COUNT)
                return -1;
            bad = set_setting(a, o - OPT_SETTING, optarg);
        }
        if (bad)
            return -1;
    }
    if (a->json && a->csv) {
        fprintf(stderr, "tfq train: --csv and --json conflict (one "
                "format)\n");
        return -1;
    }
    return cli_no_more_args("train", argc, argv);
}

/* An epoch's CSV line (--csv), on stdout as it ends. */
static void epoch_csv(train_args *a, const train_progress *p)
{
    record r;
    record_init(&r);
    record_int(&r, "epoch", p->epoch);
    record_int(&r, "epochs", p->epochs);
    record_num(&r, "train_loss", "%.6f", p->train_loss);
    record_num(&r, "test_acc", "%.6f", p->test_acc);
    record_num(&r, "images_per_s", "%.1f", p->images_per_s);
    record_num(&r, "epoch_s", "%.3f", p->epoch_s);
    record_num(&r, "eta_s", "%.1f", p->eta_s);
    if (a->csv_rows++ == 0)
        record_write_csv(&r, 1, stdout);
    record_write_csv(&r, 0, stdout);
    fflush(stdout);
}

static void on_epoch(const train_progress *p, void *ud)
{
    train_args *a = ud;
    if (a->csv)
        epoch_csv(a, p);
    if (a->quiet)
        return;
    char eta[CLI_DURATION_BYTES];
    cli_duration(p->eta_s, eta);
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
    char metric_name[METRIC_NAME_BYTES];
    metric_topk_name(a->cfg.topk, metric_name);
    printf("{\"epochs\": %d, \"final_acc\": %.6f, \"best_acc\": %.6f, "
           "\"metric\": \"%s\", "
           "\"topk\": %d, \"topk_acc\": %.6f, \"final_loss\": %.6f, "
           "\"train_seconds\": %.3f, \"images_per_s\": %.1f, "
           "\"cached_floats_per_image\": %ld, \"seed\": %llu, "
           "\"data_fingerprint\": \"%s\", \"net\": \"%s\", \"test_acc\": [",
           r->epochs_done, r->final_acc, r->best_acc, metric_name,
           a->cfg.topk,
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
    train_args a = {.dir = DATA_KIND_DEFAULT_DIR, .kind = DATA_KIND_IDX,
                    .net_arg = "reference", .width = 1.0, .threads = 1};
    train_config_default(&a.cfg);
    int prc = parse_args(argc, argv, &a);
    if (prc != 0)
        return prc > 0 ? CLI_OK : CLI_USAGE;
    tfq_error e = {0};
    if (netspec_resolve(a.net_arg, a.width, &a.cfg.spec, &e) != 0) {
        fprintf(stderr, "tfq train: --net: %s\n", e.msg);
        return CLI_USAGE;
    }
    train_set_threads((int)a.threads);
    /* From here a signal asks for a clean stop: before training starts it
     * is noticed at the first step, and nothing is lost. */
    volatile sig_atomic_t *stop = stop_on_signals();
    data_set full_train = {0}, full_test = {0}, train = {0}, test = {0};
    data_norm norm;
    char fp[HASH_HEX_BYTES] = "";
    trainer *t = NULL;
    int status = CLI_ERROR;
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
    int rc = trainer_run(t, on_epoch, &a, stop, a.save,
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
    char metric_name[METRIC_NAME_BYTES];
    metric_topk_name(a.cfg.topk, metric_name);
    if (a.json)
        print_json(&a, t, &r, fp);
    else if (!a.csv)
        printf("final_acc %.4f  best_acc %.4f  %s %.4f  %.1f s  %.0f img/s\n",
               r.final_acc, r.best_acc, metric_name, r.topk_acc, r.seconds,
               r.images_per_s);
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
