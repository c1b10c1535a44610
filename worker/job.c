#include "job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/rng.h"
#include "worker/engine/ckpt.h"
#include "worker/engine/data.h"
#include "worker/engine/train.h"


static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A sleep job's checkpoint: one line of text. */
#define SLEEP_CKPT_FORMAT "tfq sleep checkpoint 1 epoch %d\n"

/* The epoch a sleep job's checkpoint records, or -1 when the bytes are
 * not one of a job of `steps` epochs. */
static int sleep_ckpt_epoch(const uint8_t *buf, size_t bytes, int steps)
{
    char text[64], again[64];
    int epoch = -1;
    if (bytes >= sizeof text)
        return -1;
    memcpy(text, buf, bytes);
    text[bytes] = '\0';
    if (sscanf(text, SLEEP_CKPT_FORMAT, &epoch) != 1 || epoch < 0 ||
        epoch > steps)
        return -1;
    snprintf(again, sizeof again, SLEEP_CKPT_FORMAT, epoch);
    return strlen(again) == bytes && memcmp(again, buf, bytes) == 0 ? epoch
                                                                    : -1;
}

/* Room in a train checkpoint besides its tensors: the meta (net text,
 * per-epoch metrics) and each tensor's name and dimensions. */
#define CKPT_HEADROOM_BYTES ((int64_t)1 << 20)

int job_ckpt_max_bytes(const jobspec *s, int64_t *bytes, tfq_error *e)
{
    *bytes = 0;
    if (s->kind == JOBSPEC_SLEEP) {
        *bytes = 64;
        return 0;
    }
    netspec_shape in;
    int classes;
    netspec spec;
    int64_t nparams = 0;
    if (jobspec_net_input(s, &in, &classes) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job spec: unknown data set "
                             "'%s'", s->dataset);
    tfq_error ne = {0};
    if (netspec_resolve(s->net, 1.0, &spec, &ne) != 0 ||
        net_check_params(&spec, in, classes, s->batch, &nparams, &ne) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job spec: net: %s", ne.msg);
    /* Weights and biases, and their momentum, as f32. */
    *bytes = nparams * 2 * (int64_t)sizeof(float) + CKPT_HEADROOM_BYTES;
    return 0;
}

int job_ckpt_check(const jobspec *s, const uint8_t *buf, size_t bytes,
                   int epoch, tfq_error *e)
{
    if (s->kind == JOBSPEC_SLEEP) {
        int got = sleep_ckpt_epoch(buf, bytes, JOBSPEC_SLEEP_EPOCHS);
        if (got < 0)
            return tfq_error_set(e, TFQ_EFORMAT, "not a sleep job's "
                                 "checkpoint (%zu bytes)", bytes);
        if (got != epoch)
            return tfq_error_set(e, TFQ_EMISMATCH, "the checkpoint records "
                                 "epoch %d, announced as epoch %d", got,
                                 epoch);
        return 0;
    }
    ckpt *c = ckpt_decode(buf, bytes, "checkpoint", e);
    if (c == NULL)
        return e ? e->code : TFQ_EFORMAT;
    const ckpt_meta *m = ckpt_get_meta(c);
    netspec_shape in = {0, 0, 0};
    int classes = 0, rc = 0;
    netspec spec;
    char text[NETSPEC_TEXT_BYTES] = "";
    tfq_error ne = {0};
    if (jobspec_net_input(s, &in, &classes) != 0 ||
        netspec_resolve(s->net, 1.0, &spec, &ne) != 0)
        rc = tfq_error_set(e, TFQ_EINVAL, "the job's net or data set is not "
                           "valid: %s", ne.msg);
    else
        netspec_format(&spec, text, sizeof text);
    if (rc == 0 && strcmp(text, m->net_text) != 0)
        rc = tfq_error_set(e, TFQ_EMISMATCH, "checkpoint of net '%s', the "
                           "job's net is '%s'", m->net_text, text);
    else if (rc == 0 && (m->in.c != in.c || m->in.h != in.h ||
                         m->in.w != in.w || m->classes != classes))
        rc = tfq_error_set(e, TFQ_EMISMATCH, "checkpoint for %dx%dx%d inputs "
                           "and %d classes, the job has %dx%dx%d and %d",
                           m->in.c, m->in.h, m->in.w, m->classes, in.c, in.h,
                           in.w, classes);
    else if (rc == 0 && m->seed != s->seed)
        rc = tfq_error_set(e, TFQ_EMISMATCH, "checkpoint of seed %llu, the "
                           "job's seed is %llu", (unsigned long long)m->seed,
                           (unsigned long long)s->seed);
    else if (rc == 0 && (m->epoch != epoch || m->epoch > s->epochs))
        rc = tfq_error_set(e, TFQ_EMISMATCH, "checkpoint at epoch %d, "
                           "announced as epoch %d, of a job of %d epochs",
                           m->epoch, epoch, s->epochs);
    else if (rc == 0 && s->fingerprint[0] && m->fingerprint[0] &&
             strcmp(s->fingerprint, m->fingerprint) != 0)
        rc = tfq_error_set(e, TFQ_EMISMATCH, "checkpoint trained on data "
                           "%.12s..., the job's data is %.12s...",
                           m->fingerprint, s->fingerprint);
    ckpt_destroy(&c);
    return rc;
}

int job_run_sleep(const jobspec *s, int attempt, const uint8_t *resume,
                  size_t resume_bytes, const job_hooks *h,
                  volatile sig_atomic_t *stop, tfq_error *e)
{
    if (s->kind != JOBSPEC_SLEEP)
        return tfq_error_set(e, TFQ_EINVAL, "not a sleep job");
    const int steps = s->sleep_ms > 0 ? JOBSPEC_SLEEP_EPOCHS : 0;
    int first = 1;
    if (resume != NULL) {
        int epoch = sleep_ckpt_epoch(resume, resume_bytes, steps);
        if (epoch < 0)
            return tfq_error_set(e, TFQ_EFORMAT, "resume checkpoint is not a "
                                 "sleep job's (%zu bytes)", resume_bytes);
        first = epoch + 1;
    }
    /* A job of no time has no epochs to report or checkpoint. */
    int64_t done = steps > 0 ? s->sleep_ms * (first - 1) / steps : 0;
    for (int step = first; step <= steps; step++) {
        int64_t until = s->sleep_ms * step / steps;
        while (done < until) {
            if (stop != NULL && *stop)
                return tfq_error_set(e, TFQ_EINTR, "stopped after %lld ms",
                                     (long long)done);
            int64_t slice = until - done < JOB_TICK_MS
                                ? until - done : JOB_TICK_MS;
            sleep_ms(slice);
            done += slice;
            if (h != NULL && h->tick != NULL)
                h->tick(h->ud);
        }
        int every = s->ckpt_every > 0 ? s->ckpt_every : 1;
        if (h != NULL && h->checkpoint != NULL &&
            (step % every == 0 || step == steps)) {
            char blob[64];
            int n = snprintf(blob, sizeof blob, SLEEP_CKPT_FORMAT, step);
            h->checkpoint(h->ud, step, (const uint8_t *)blob, (size_t)n);
        }
        if (h != NULL && h->progress != NULL)
            h->progress(h->ud, step, steps, 0.0, 0.0, 0.0,
                        (double)(s->sleep_ms - done) / 1000.0);
    }
    uint64_t key = rng_key(s->seed, 0x6661696c /* "fail" */, (uint64_t)attempt);
    if (s->fail_prob > 0.0 && rng_uniform(key, 0) < s->fail_prob)
        return tfq_error_set(e, TFQ_EIO, "sleep job failed on purpose "
                             "(fail_prob %g, attempt %d)", s->fail_prob,
                             attempt);
    return 0;
}

typedef struct {
    trainer *t;
    const job_hooks *h;
    int every; /* checkpoint every this many epochs */
} train_ctx;

static void on_epoch(const train_progress *p, void *ud)
{
    train_ctx *c = ud;
    if (c->h == NULL)
        return;
    if (c->h->checkpoint != NULL &&
        (p->epoch % c->every == 0 || p->epoch == p->epochs)) {
        uint8_t *buf = NULL;
        size_t n = 0;
        tfq_error e = {0};
        if (trainer_encode(c->t, &buf, &n, &e) == 0)
            c->h->checkpoint(c->h->ud, p->epoch, buf, n);
        free(buf);
    }
    if (c->h->progress != NULL)
        c->h->progress(c->h->ud, p->epoch, p->epochs, p->train_loss,
                       p->test_acc, p->images_per_s, p->eta_s);
}

/* Logs the kernels each conv layer of m runs, when they differ from those
 * of the last job this process ran (a worker runs jobs one at a time). */
static void log_kernels(const net *m)
{
    static char last[2048];
    char now[sizeof last];
    net_describe_kernels(m, now, sizeof now);
    if (strcmp(now, last) != 0) {
        log_info("%s", now);
        memcpy(last, now, sizeof last);
    }
}

/* The result of a finished train job as JSON (PROTOCOL.md, `result`) into
 * result; TFQ_ERANGE when it does not fit in result_bytes. */
static int result_json(trainer *t, int topk, const char *fp, char *result,
                       size_t result_bytes, tfq_error *e)
{
    train_result r;
    trainer_result_get(t, &r);
    /* JSON has no NaN: a loss that diverged is null. */
    char loss[32] = "null";
    if (isfinite(r.final_loss))
        snprintf(loss, sizeof loss, "%.6f", r.final_loss);
    size_t n = (size_t)snprintf(
        result, result_bytes,
        "{\"final_acc\": %.6f, \"best_acc\": %.6f, \"topk_acc\": "
        "%.6f, \"topk\": %d, \"epochs\": %d, \"final_loss\": %s, "
        "\"train_seconds\": %.3f, \"data_fingerprint\": \"%s\", "
        "\"accs\": [",
        r.final_acc, r.best_acc, r.topk_acc, topk, r.epochs_done, loss,
        r.seconds, fp);
    /* Every evaluation, so that a report may use any metric. */
    const ckpt_meta *mt = trainer_meta(t);
    for (int i = 0; i < mt->nevals && n < result_bytes; i++)
        n += (size_t)snprintf(result + n, result_bytes - n, "%s%.6f",
                              i ? ", " : "", mt->test_acc[i]);
    if (n < result_bytes)
        n += (size_t)snprintf(result + n, result_bytes - n, "]}");
    if (n >= result_bytes)
        return tfq_error_set(e, TFQ_ERANGE, "the result does not fit in %zu "
                             "bytes", result_bytes);
    return 0;
}

int job_run_train(const jobspec *s, const char *data_dir,
                  const uint8_t *resume, size_t resume_bytes,
                  const uint8_t *init, size_t init_bytes, const job_hooks *h,
                  volatile sig_atomic_t *stop, char *result,
                  size_t result_bytes, tfq_error *e)
{
    if (s->kind != JOBSPEC_TRAIN)
        return tfq_error_set(e, TFQ_EINVAL, "not a train job");
    data_kind kind;
    if (data_kind_parse(s->dataset, &kind) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "unknown data set '%s'",
                             s->dataset);
    data_set ftrain = {0}, ftest = {0}, train = {0}, test = {0};
    data_norm norm;
    char fp[HASH_HEX_BYTES] = "";
    ckpt *init_ck = NULL, *resume_ck = NULL;
    trainer *t = NULL;
    train_config cfg;
    int rc = data_load(kind, data_dir, &ftrain, &ftest, fp, e);
    if (rc != 0)
        goto out;
    if (s->fingerprint[0] != '\0' && strcmp(s->fingerprint, fp) != 0) {
        rc = tfq_error_set(e, TFQ_EMISMATCH, "the data set in %s has "
                           "fingerprint %.12s..., the job expects %.12s...",
                           data_dir, fp, s->fingerprint);
        goto out;
    }
    data_norm_compute(&ftrain, &norm);
    if (s->nclasses > 0) {
        if ((rc = data_subset(&ftrain, s->classes, s->nclasses, &train, e)) ||
            (rc = data_subset(&ftest, s->classes, s->nclasses, &test, e)))
            goto out;
    } else {
        train = ftrain;
        test = ftest;
        memset(&ftrain, 0, sizeof ftrain);
        memset(&ftest, 0, sizeof ftest);
    }
    if (s->limit_train > 0 && s->limit_train < train.n)
        train.n = s->limit_train;
    if (s->limit_test > 0 && s->limit_test < test.n)
        test.n = s->limit_test;
    if ((rc = job_train_config(s, &cfg, e)) != 0)
        goto out;
    if (cfg.copy_layers > 0) {
        if (init == NULL) {
            rc = tfq_error_set(e, TFQ_EINVAL, "the job copies %d layers but "
                               "no init checkpoint came with it",
                               cfg.copy_layers);
            goto out;
        }
        init_ck = ckpt_decode(init, init_bytes, "init checkpoint", e);
        if (init_ck == NULL) {
            rc = e ? e->code : TFQ_EFORMAT;
            goto out;
        }
        cfg.init = init_ck;
    }
    t = trainer_new(&cfg, &train, &test, &norm, fp, e);
    if (t == NULL) {
        rc = e ? e->code : TFQ_EINVAL;
        goto out;
    }
    log_kernels(trainer_net(t));
    if (resume != NULL) {
        resume_ck = ckpt_decode(resume, resume_bytes, "resume checkpoint", e);
        if (resume_ck == NULL) {
            rc = e ? e->code : TFQ_EFORMAT;
            goto out;
        }
        if ((rc = trainer_resume_ckpt(t, resume_ck, "resume checkpoint", e)))
            goto out;
    }
    train_ctx ctx = {t, h, s->ckpt_every > 0 ? s->ckpt_every : 1};
    rc = trainer_run(t, on_epoch, &ctx, stop, NULL, 0, e);
    if (rc == TFQ_EINTR && h != NULL && h->checkpoint != NULL) {
        /* Stopped after a step: keep the progress of the epoch in hand. */
        const ckpt_meta *mt = trainer_meta(t);
        uint8_t *buf = NULL;
        size_t n = 0;
        tfq_error ce = {0};
        if (mt->step_in_epoch > 0 && trainer_encode(t, &buf, &n, &ce) == 0 &&
            h->checkpoint(h->ud, mt->epoch, buf, n) == 0)
            log_info("stopped in epoch %d after step %d; checkpoint kept",
                     mt->epoch + 1, mt->step_in_epoch);
        free(buf);
    }
    if (rc == 0)
        rc = result_json(t, cfg.topk, fp, result, result_bytes, e);
out:
    trainer_destroy(&t);
    ckpt_destroy(&init_ck);
    ckpt_destroy(&resume_ck);
    data_release(&train);
    data_release(&test);
    data_release(&ftrain);
    data_release(&ftest);
    return rc;
}

int job_train_config(const jobspec *s, train_config *cfg, tfq_error *e)
{
    if (s->kind != JOBSPEC_TRAIN)
        return tfq_error_set(e, TFQ_EINVAL, "not a train job");
    train_config_default(cfg);
    int rc = netspec_parse(s->net, &cfg->spec, e);
    if (rc != 0)
        return rc;
    cfg->epochs = s->epochs;
    cfg->batch = s->batch;
    cfg->topk = s->topk;
    cfg->lr = (float)s->lr;
    cfg->momentum = (float)s->momentum;
    cfg->weight_decay = (float)s->weight_decay;
    cfg->lr_step_at = (float)s->lr_step;
    cfg->lr_gamma = (float)s->lr_gamma;
    cfg->bias_lr_mult = (float)s->bias_lr_mult;
    cfg->bias_decay_mult = (float)s->bias_decay_mult;
    cfg->seed = s->seed;
    cfg->weight_init = (weight_init)s->weight_init;
    cfg->copy_layers = s->copy_layers;
    cfg->freeze_layers = s->freeze_layers;
    cfg->cache_bytes = (size_t)s->cache_mb << 20;
    return 0;
}

/* A train job's net as the worker will build it, checked without building
 * it (net_check): a net whose layers or arena are too large is refused
 * where the job is submitted, not by every worker that leases it. */
static int job_net_check(const jobspec *s, tfq_error *e)
{
    netspec_shape in;
    int classes;
    if (jobspec_net_input(s, &in, &classes) != 0)
        return 0; /* an unknown kind is the worker's error to report */
    netspec spec;
    tfq_error ne = {0};
    if (netspec_resolve(s->net, 1.0, &spec, &ne) != 0 ||
        net_check(&spec, in, classes, s->batch, &ne) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job spec: net: %s", ne.msg);
    return 0;
}

static const jobspec_engine s_engine = {
    .net_check = job_net_check,
    .ckpt_max_bytes = job_ckpt_max_bytes,
    .ckpt_check = job_ckpt_check,
};

void job_engine_register(void)
{
    jobspec_set_engine(&s_engine);
}
