/* Job specs: canonical text, strict parsing, identity. */
#include <string.h>

#include "check.h"
#include <time.h>

#include "worker/job.h"
#include "common/jobspec.h"
#include "common/settings.h"

static int test_roundtrip_train(void)
{
    jobspec a, b;
    jobspec_default_train(&a);
    a.seed = 7;
    a.nclasses = 5;
    int cls[] = {0, 2, 3, 4, 6};
    memcpy(a.classes, cls, sizeof cls);
    a.lr = 0.1 / 3.0; /* needs all 17 digits to survive */
    a.freeze_layers = 3;
    a.copy_layers = 3;
    memset(a.init, 'a', HASH_HEX_BYTES - 1);
    a.init[HASH_HEX_BYTES - 1] = '\0';
    char t1[JOBSPEC_TEXT_BYTES], t2[JOBSPEC_TEXT_BYTES];
    CHECK(jobspec_format(&a, t1, sizeof t1) == 0);
    tfq_error e = {0};
    CHECK_MSG(jobspec_parse(t1, &b, &e) == 0, "%s", e.msg);
    CHECK(jobspec_format(&b, t2, sizeof t2) == 0);
    CHECK(strcmp(t1, t2) == 0);
    CHECK(b.lr == a.lr);
    CHECK_EQ_INT(b.nclasses, 5);
    CHECK_EQ_INT(b.classes[4], 6);
    CHECK(strncmp(t1, "kind = train\n", 13) == 0);
    char id1[HASH_HEX_BYTES], id2[HASH_HEX_BYTES];
    CHECK(jobspec_identity(&a, id1) == 0 && jobspec_identity(&b, id2) == 0);
    CHECK(strcmp(id1, id2) == 0);
    b.seed = 8;
    CHECK(jobspec_identity(&b, id2) == 0);
    CHECK(strcmp(id1, id2) != 0);
    return 0;
}

static int test_roundtrip_sleep(void)
{
    jobspec a, b;
    jobspec_default_sleep(&a, 250);
    a.fail_prob = 0.25;
    a.seed = 3;
    char t[JOBSPEC_TEXT_BYTES];
    CHECK(jobspec_format(&a, t, sizeof t) == 0);
    CHECK(strcmp(t, "kind = sleep\nseed = 3\nckpt_every = 1\n"
                    "sleep_ms = 250\nfail_prob = 0.25\n") == 0);
    tfq_error e = {0};
    CHECK_MSG(jobspec_parse("# a comment\nkind = sleep\n\n  sleep_ms=5 \n",
                            &b, &e) == 0, "%s", e.msg);
    CHECK(b.kind == JOBSPEC_SLEEP && b.sleep_ms == 5 && b.fail_prob == 0.0);
    return 0;
}

/* Parsing text fails with TFQ_EINVAL and a message holding both words. */
static int rejects(const char *text, const char *w1, const char *w2)
{
    jobspec s;
    tfq_error e = {0};
    int rc = jobspec_parse(text, &s, &e);
    CHECK_MSG(rc == TFQ_EINVAL, "accepted: %s", text);
    CHECK_MSG(strstr(e.msg, w1) != NULL, "'%s' not in '%s'", w1, e.msg);
    CHECK_MSG(w2 == NULL || strstr(e.msg, w2) != NULL, "'%s' not in '%s'",
              w2, e.msg);
    return 0;
}

static int test_errors(void)
{
    CHECK(rejects("kind = train\nfrob = 1\n", "line 2", "frob") == 0);
    CHECK(rejects("kind = train\nseed = 1\nseed = 2\n", "line 3", "twice") == 0);
    CHECK(rejects("seed = 1\nkind = train\n", "line 1", "first") == 0);
    CHECK(rejects("kind = train\nepochs = ten\n", "epochs", "ten") == 0);
    CHECK(rejects("kind = train\nepochs = 0\n", "epochs", "from 1") == 0);
    CHECK(rejects("kind = train\nlr = 1e9\n", "lr", NULL) == 0);
    CHECK(rejects("kind = train\nclasses = 1,1\n", "classes", NULL) == 0);
    CHECK(rejects("kind = train\nclasses = 3\n", "classes", NULL) == 0);
    CHECK(rejects("kind = train\nnet = conv 16 5; frob\n", "net", "frob") == 0);
    CHECK(rejects("kind = sleep\nepochs = 3\n", "epochs", "sleep job") == 0);
    CHECK(rejects("kind = train\ninit = ABC\n", "init", "hex") == 0);
    CHECK(rejects("kind = nap\n", "kind", "train or sleep") == 0);
    CHECK(rejects("kind = train\ndataset = imagenet\n", "dataset", NULL) == 0);
    CHECK(rejects("kind = train\nno equals sign\n", "line 2", "key = value") == 0);
    CHECK(rejects("", "kind", NULL) == 0);
    /* sizes that would overflow the layer code, refused at parse time
     * (where the job is submitted), naming the operation */
    CHECK(rejects("kind = train\nnet = conv 8 5 pad=2; relu; fc 684785; "
                  "fc classes\n", "net operation 3 (fc 684785)",
                  "weights") == 0);
    CHECK(rejects("kind = train\ndataset = cifar10\nbatch = 4096\n"
                  "net = conv 4096 5 pad=2; relu; fc classes\n",
                  "over the budget", "MiB") == 0);
    return 0;
}

/* Line numbers count every line: blank ones, comments, CRLF line ends. */
static int test_error_lines(void)
{
    CHECK(rejects("kind = train\n\n# comment\n\nfrob = 1\n", "line 5:",
                  "frob") == 0);
    CHECK(rejects("kind = train\r\n\r\nseed = x\r\n", "line 3:",
                  "seed") == 0);
    CHECK(rejects("\n\nseed = 1\nkind = train\n", "line 3:", "first") == 0);
    return 0;
}

static int test_train_config(void)
{
    jobspec s;
    jobspec_default_train(&s);
    train_config want, got;
    train_config_default(&want);
    tfq_error e = {0};
    CHECK(job_train_config(&s, &got, &e) == 0);
    CHECK(memcmp(&want.spec, &got.spec, sizeof want.spec) == 0);
    CHECK(got.epochs == want.epochs && got.batch == want.batch);
    CHECK(got.lr == want.lr && got.momentum == want.momentum);
    CHECK(got.weight_decay == want.weight_decay && got.seed == want.seed);
    CHECK(got.cache_bytes == want.cache_bytes && got.topk == want.topk);
    s.freeze_layers = 5;
    s.epochs = 3;
    CHECK(job_train_config(&s, &got, &e) == 0);
    CHECK(got.freeze_layers == 5 && got.epochs == 3);
    jobspec sl;
    jobspec_default_sleep(&sl, 1);
    CHECK(job_train_config(&sl, &got, &e) == TFQ_EINVAL);
    return 0;
}

typedef struct {
    int calls, last_epoch;
    int stop_after;
    volatile sig_atomic_t *stop;
} progress_log;

static void on_progress(void *ud, int epoch, int epochs, double loss,
                        double acc, double ips, double eta_s)
{
    (void)loss;
    (void)acc;
    (void)ips;
    (void)eta_s;
    (void)epochs;
    progress_log *p = ud;
    p->calls++;
    p->last_epoch = epoch;
    if (p->stop_after && epoch == p->stop_after)
        *p->stop = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int test_sleep_runs(void)
{
    jobspec s;
    jobspec_default_sleep(&s, 200);
    volatile sig_atomic_t stop = 0;
    progress_log log = {0};
    job_hooks h = {on_progress, NULL, NULL, &log};
    tfq_error e = {0};
    double t0 = now_ms();
    CHECK(job_run_sleep(&s, 1, NULL, 0, &h, &stop, &e) == 0);
    double took = now_ms() - t0;
    CHECK_MSG(took >= 200.0, "took %.1f ms", took);
    CHECK_EQ_INT(log.calls, 10);
    CHECK_EQ_INT(log.last_epoch, 10);
    /* A stop request ends it at the next slice: after the third of ten
     * epochs, well before the whole job's time (sleeping is wall time, so a
     * loaded machine overshoots each slice only by its scheduling delay). */
    jobspec_default_sleep(&s, 10000);
    progress_log log2 = {.stop_after = 3, .stop = &stop};
    h.ud = &log2;
    t0 = now_ms();
    CHECK(job_run_sleep(&s, 1, NULL, 0, &h, &stop, &e) == TFQ_EINTR);
    took = now_ms() - t0;
    CHECK_MSG(took < 10000.0 && log2.calls == 3, "took %.1f ms, %d calls",
              took, log2.calls);
    return 0;
}

static int test_sleep_fail(void)
{
    jobspec s;
    jobspec_default_sleep(&s, 0);
    s.fail_prob = 1.0;
    tfq_error e = {0};
    CHECK(job_run_sleep(&s, 1, NULL, 0, NULL, NULL, &e) == TFQ_EIO);
    CHECK(strstr(e.msg, "on purpose") != NULL);
    s.fail_prob = 0.5;
    s.seed = 4;
    int fails = 0;
    for (int attempt = 1; attempt <= 40; attempt++) {
        int a = job_run_sleep(&s, attempt, NULL, 0, NULL, NULL, &e);
        int b = job_run_sleep(&s, attempt, NULL, 0, NULL, NULL, &e);
        CHECK(a == b); /* the same attempt ends the same way */
        fails += a != 0;
    }
    CHECK_MSG(fails > 5 && fails < 35, "%d of 40 failed", fails);
    return 0;
}

static int s_ckpts[JOBSPEC_SLEEP_EPOCHS + 1];

static int on_ckpt(void *ud, int epoch, const uint8_t *blob, size_t bytes)
{
    (void)ud;
    (void)blob;
    (void)bytes;
    s_ckpts[epoch]++;
    return 0;
}

/* A sleep job resumed from its epoch-4 checkpoint runs epochs 5-10 only;
 * a foreign checkpoint is refused. */
static int test_sleep_resume(void)
{
    jobspec s;
    jobspec_default_sleep(&s, 100);
    progress_log log = {0};
    job_hooks h = {on_progress, NULL, on_ckpt, &log};
    tfq_error e = {0};
    const char *ck = "tfq sleep checkpoint 1 epoch 4\n";
    CHECK(job_run_sleep(&s, 2, (const uint8_t *)ck, strlen(ck), &h, NULL,
                        &e) == 0);
    CHECK_EQ_INT(log.calls, 6);
    CHECK(s_ckpts[4] == 0 && s_ckpts[5] == 1 && s_ckpts[10] == 1);
    const char *bad = "tfq sleep checkpoint 1 epoch 44\n";
    CHECK(job_run_sleep(&s, 2, (const uint8_t *)bad, strlen(bad), &h, NULL,
                        &e) == TFQ_EFORMAT);
    CHECK(job_run_sleep(&s, 2, (const uint8_t *)"TFQCKPT", 7, &h, NULL,
                        &e) == TFQ_EFORMAT);
    return 0;
}

/* ckpt_every = 3 checkpoints after epochs 3, 6, 9 and the last. */
static int test_sleep_ckpt_every(void)
{
    jobspec s;
    tfq_error e = {0};
    CHECK(jobspec_parse("kind = sleep\nsleep_ms = 50\nckpt_every = 3\n", &s,
                        &e) == 0);
    memset(s_ckpts, 0, sizeof s_ckpts);
    job_hooks h = {NULL, NULL, on_ckpt, NULL};
    CHECK(job_run_sleep(&s, 1, NULL, 0, &h, NULL, &e) == 0);
    for (int ep = 1; ep <= JOBSPEC_SLEEP_EPOCHS; ep++)
        CHECK_MSG(s_ckpts[ep] == (ep % 3 == 0 || ep == JOBSPEC_SLEEP_EPOCHS),
                  "epoch %d: %d checkpoints", ep, s_ckpts[ep]);
    return 0;
}

/* weight_init: a word of its own; at its default (he) the canonical text
 * and so the identity are those of a job spec without the key; another
 * value is written, parsed back and reaches the trainer. */
static int test_weight_init(void)
{
    jobspec plain, he, caffe;
    tfq_error e = {0};
    CHECK(jobspec_parse("kind = train\nepochs = 2\n", &plain, &e) == 0);
    CHECK(jobspec_parse("kind = train\nepochs = 2\nweight_init = he\n",
                        &he, &e) == 0);
    char a[JOBSPEC_TEXT_BYTES], b[JOBSPEC_TEXT_BYTES];
    CHECK(jobspec_format(&plain, a, sizeof a) == 0);
    CHECK(jobspec_format(&he, b, sizeof b) == 0);
    CHECK(strcmp(a, b) == 0 && strstr(a, "weight_init") == NULL);
    CHECK(jobspec_parse("kind = train\nweight_init = caffe\n", &caffe,
                        &e) == 0);
    CHECK_EQ_INT(caffe.weight_init, WEIGHT_INIT_CAFFE);
    CHECK(jobspec_format(&caffe, a, sizeof a) == 0);
    CHECK(strstr(a, "\nweight_init = caffe\n") != NULL);
    jobspec back;
    CHECK(jobspec_parse(a, &back, &e) == 0);
    CHECK_EQ_INT(back.weight_init, WEIGHT_INIT_CAFFE);
    char ia[HASH_HEX_BYTES], ib[HASH_HEX_BYTES];
    CHECK(jobspec_identity(&plain, ia) == 0 && jobspec_identity(&caffe, ib) == 0);
    CHECK(strcmp(ia, ib) != 0);
    train_config cfg;
    CHECK(job_train_config(&caffe, &cfg, &e) == 0);
    CHECK_EQ_INT(cfg.weight_init, WEIGHT_INIT_CAFFE);
    CHECK(jobspec_parse("kind = train\nweight_init = xavier\n", &back,
                        &e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "weight_init: bad value 'xavier': expected one "
                     "of he, caffe, torch") != NULL, "%s", e.msg);
    return 0;
}

static const test_case cases[] = {
    {"weight_init", test_weight_init},
    {"sleep_ckpt_every", test_sleep_ckpt_every},
    {"sleep_resume", test_sleep_resume},
    {"sleep_runs", test_sleep_runs},
    {"sleep_fail", test_sleep_fail},
    {"roundtrip_train", test_roundtrip_train},
    {"roundtrip_sleep", test_roundtrip_sleep},
    {"errors", test_errors},
    {"error_lines", test_error_lines},
    {"train_config", test_train_config},
};

int main(int argc, char **argv)
{
    job_engine_register(); /* jobs are checked as the tfq executable checks them */
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
