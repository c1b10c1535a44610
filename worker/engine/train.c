#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/settings.h"
#include "gemm.h"
#include "loss.h"
#include "par.h"

/* Stream labels for the counter-based generator. */
#define STREAM_PERM 0x7065726dULL /* "perm" */
#define STREAM_STEP 0x73746570ULL /* "step" */

struct trainer {
    train_config cfg;
    const data_set *train, *test;
    data_norm norm;
    net *m;
    ckpt_meta meta;
    int steps_per_epoch;
    int64_t lr_step_at; /* global step from which lr is multiplied by gamma */
    /* frozen-prefix cache: output of operations [0, cache_op] per image */
    int cache_op;       /* -1: no cache */
    long cache_floats;  /* floats per image */
    float *cache_train; /* (train->n, cache_floats) once built */
    float *cache_test;  /* (test->n, cache_floats) or NULL */
    int cache_built;
    float *batch;  /* one batch of input, in the layout of its first op */
    int *labels;   /* (batch) */
    int *perm;     /* (train->n) */
    double train_seconds;
    int64_t train_images;
};

int train_set_threads(int threads)
{
    gemm_set_threads(threads);
    return par_set_threads(threads);
}

void train_config_default(train_config *cfg)
{
    const setting *t = settings_table;
    memset(cfg, 0, sizeof *cfg);
    netspec_preset("reference", 1.0, &cfg->spec, NULL);
    cfg->epochs = (int)t[SETTING_EPOCHS].def;
    cfg->batch = (int)t[SETTING_BATCH].def;
    cfg->lr = (float)t[SETTING_LR].def;
    cfg->momentum = (float)t[SETTING_MOMENTUM].def;
    cfg->weight_decay = (float)t[SETTING_WEIGHT_DECAY].def;
    cfg->lr_step_at = (float)t[SETTING_LR_STEP].def;
    cfg->lr_gamma = (float)t[SETTING_LR_GAMMA].def;
    cfg->bias_lr_mult = (float)t[SETTING_BIAS_LR_MULT].def;
    cfg->bias_decay_mult = (float)t[SETTING_BIAS_DECAY_MULT].def;
    cfg->seed = (uint64_t)t[SETTING_SEED].def;
    cfg->weight_init = (weight_init)t[SETTING_WEIGHT_INIT].def;
    cfg->topk = (int)t[SETTING_TOPK].def;
    cfg->cache_bytes = (size_t)t[SETTING_CACHE_MB].def << 20;
}

/* A value against its setting's range (common/settings.h).  The config
 * holds floats, and a setting in range as a double is in range as the
 * float nearest it: the bounds are compared as floats too. */
static int check_setting(setting_id id, double v, tfq_error *e)
{
    const setting *s = &settings_table[id];
    if (s->type == SETTING_DOUBLE ? v >= (float)s->lo && v <= (float)s->hi
                                  : settings_valid(s, v))
        return 0;
    return tfq_error_set(e, TFQ_EINVAL, "%s %g is not in [%g, %g]", s->name,
                         v, s->lo, s->hi);
}

static int check_config(const train_config *c, int nlearned, tfq_error *e)
{
    int rc;
    if ((rc = check_setting(SETTING_EPOCHS, c->epochs, e)) != 0 ||
        (rc = check_setting(SETTING_BATCH, c->batch, e)) != 0 ||
        (rc = check_setting(SETTING_TOPK, c->topk, e)) != 0 ||
        (rc = check_setting(SETTING_LR, c->lr, e)) != 0 ||
        (rc = check_setting(SETTING_MOMENTUM, c->momentum, e)) != 0 ||
        (rc = check_setting(SETTING_WEIGHT_DECAY, c->weight_decay, e)) != 0 ||
        (rc = check_setting(SETTING_LR_STEP, c->lr_step_at, e)) != 0 ||
        (rc = check_setting(SETTING_LR_GAMMA, c->lr_gamma, e)) != 0 ||
        (rc = check_setting(SETTING_BIAS_LR_MULT, c->bias_lr_mult, e)) != 0 ||
        (rc = check_setting(SETTING_BIAS_DECAY_MULT, c->bias_decay_mult, e)))
        return rc;
    if (c->copy_layers < 0 || c->copy_layers > nlearned ||
        c->freeze_layers < 0 || c->freeze_layers > nlearned)
        return tfq_error_set(e, TFQ_EINVAL,
                             "copy %d / freeze %d layers: the net has %d "
                             "learned layers", c->copy_layers,
                             c->freeze_layers, nlearned);
    if (c->copy_layers > 0 && c->init_path == NULL && c->init == NULL)
        return tfq_error_set(e, TFQ_EINVAL,
                             "copying %d layers needs a source checkpoint",
                             c->copy_layers);
    return 0;
}

/* Picks the operation whose output to cache: the end of the frozen prefix,
 * or earlier if a dropout (random in training) sits inside it. */
static void plan_cache(trainer *t)
{
    net *m = t->m;
    t->cache_op = -1;
    if (m->frozen == 0 || t->cfg.cache_bytes == 0)
        return;
    int end = net_first_op_above(m, m->frozen) - 1;
    while (end >= 0 && !net_is_deterministic(m, end))
        end--;
    if (end < 0)
        return;
    long per = m->ops[end].out_size;
    size_t train_bytes = sizeof(float) * (size_t)per * (size_t)t->train->n;
    size_t test_bytes = sizeof(float) * (size_t)per * (size_t)t->test->n;
    if (train_bytes > t->cfg.cache_bytes)
        return; /* past the budget: recompute the prefix every step */
    t->cache_op = end;
    t->cache_floats = per;
    t->cache_train = malloc(train_bytes ? train_bytes : 1);
    if (train_bytes + test_bytes <= t->cfg.cache_bytes)
        t->cache_test = malloc(test_bytes ? test_bytes : 1);
    if (t->cache_train == NULL) {
        t->cache_op = -1;
        free(t->cache_test);
        t->cache_test = NULL;
    }
}

trainer *trainer_new(const train_config *cfg, const data_set *train,
                     const data_set *test, const data_norm *norm,
                     const char *fingerprint, tfq_error *e)
{
    ckpt *src = NULL;
    trainer *t = calloc(1, sizeof *t);
    if (t == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "trainer: out of memory");
        return NULL;
    }
    t->cfg = *cfg;
    t->train = train;
    t->test = test;
    t->norm = *norm;
    t->cache_op = -1;
    if (check_config(cfg, netspec_learned_layers(&cfg->spec), e) != 0)
        goto fail;
    if (train->n < 1 || test->n < 1 || train->c != test->c ||
        train->h != test->h || train->w != test->w ||
        test->num_classes > train->num_classes) {
        tfq_error_set(e, TFQ_EMISMATCH,
                      "training set (%d images %dx%dx%d, %d classes) and "
                      "test set (%d images %dx%dx%d, %d classes) do not fit "
                      "together", train->n, train->c, train->h, train->w,
                      train->num_classes, test->n, test->c, test->h,
                      test->w, test->num_classes);
        goto fail;
    }
    netspec_shape in = {train->c, train->h, train->w};
    t->m = net_new(&cfg->spec, in, train->num_classes, cfg->batch, e);
    if (t->m == NULL)
        goto fail;
    net_init_layers_as(t->m, 1, t->m->nlearned, cfg->seed, cfg->weight_init);
    if (cfg->init != NULL) {
        if (ckpt_copy_layers(cfg->init, t->m, cfg->copy_layers, e) != 0)
            goto fail;
    } else if (cfg->init_path != NULL) {
        src = ckpt_read(cfg->init_path, e);
        if (src == NULL ||
            ckpt_copy_layers(src, t->m, cfg->copy_layers, e) != 0)
            goto fail;
        ckpt_destroy(&src);
    }
    t->m->frozen = cfg->freeze_layers;
    t->steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    t->lr_step_at = (int64_t)floor((double)cfg->lr_step_at *
                                   cfg->epochs * t->steps_per_epoch);
    ckpt_meta_from_net(&t->meta, t->m);
    t->meta.seed = cfg->seed;
    t->meta.norm = *norm;
    if (fingerprint != NULL)
        snprintf(t->meta.fingerprint, sizeof t->meta.fingerprint, "%s",
                 fingerprint);
    long in_floats = t->m->ops[0].in_size;
    plan_cache(t);
    if (t->cache_op >= 0 && t->cache_floats > in_floats)
        in_floats = t->cache_floats;
    t->batch = malloc(sizeof(float) * (size_t)in_floats * cfg->batch);
    t->labels = malloc(sizeof(int) * (size_t)cfg->batch);
    t->perm = malloc(sizeof(int) * (size_t)train->n);
    if (t->batch == NULL || t->labels == NULL || t->perm == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "trainer: out of memory");
        goto fail;
    }
    return t;
fail:
    ckpt_destroy(&src);
    trainer_destroy(&t);
    return NULL;
}

void trainer_destroy(trainer **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    trainer *t = *tp;
    net_destroy(&t->m);
    free(t->cache_train);
    free(t->cache_test);
    free(t->batch);
    free(t->labels);
    free(t->perm);
    free(t);
    *tp = NULL;
}

net *trainer_net(trainer *t)
{
    return t->m;
}

const ckpt_meta *trainer_meta(const trainer *t)
{
    return &t->meta;
}

/* ---- batches ------------------------------------------------------------ */

/* Stores a batch's output (layout (c, n, hw) or (d, n)) as rows per image. */
static void cache_store(const trainer *t, const float *out, int n,
                        float *rows)
{
    const net_op *op = &t->m->ops[t->cache_op];
    int c = op->out_shape.c;
    long hw = (long)op->out_shape.h * op->out_shape.w;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            memcpy(rows + (long)i * t->cache_floats + ch * hw,
                   out + ((long)ch * n + i) * hw, sizeof(float) * (size_t)hw);
}

/* The inverse of cache_store for the images idx[0..n). */
static void cache_gather(const trainer *t, const float *rows, const int *idx,
                         int n, float *out)
{
    const net_op *op = &t->m->ops[t->cache_op];
    int c = op->out_shape.c;
    long hw = (long)op->out_shape.h * op->out_shape.w;
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            memcpy(out + ((long)ch * n + i) * hw,
                   rows + (long)idx[i] * t->cache_floats + ch * hw,
                   sizeof(float) * (size_t)hw);
}

static void fill_cache(trainer *t, const data_set *d, float *rows)
{
    int b = t->cfg.batch;
    for (int i0 = 0; i0 < d->n; i0 += b) {
        int n = d->n - i0 < b ? d->n - i0 : b;
        for (int i = 0; i < n; i++)
            t->perm[i] = i0 + i;
        data_batch(d, &t->norm, t->perm, n, t->batch, NULL);
        const float *out = net_forward_range(t->m, t->batch, n, 0,
                                             t->cache_op, 0, 0);
        cache_store(t, out, n, rows + (long)i0 * t->cache_floats);
    }
    /* perm was borrowed as an index list; it is rebuilt per epoch. */
}

static void build_cache(trainer *t)
{
    if (t->cache_op < 0 || t->cache_built)
        return;
    fill_cache(t, t->train, t->cache_train);
    if (t->cache_test != NULL)
        fill_cache(t, t->test, t->cache_test);
    t->cache_built = 1;
}

/* Loads images idx[0..n) of d into t->batch; returns the operation the
 * forward pass starts at. */
static int load_batch(trainer *t, const data_set *d, const float *cache,
                      const int *idx, int n)
{
    for (int i = 0; i < n; i++)
        t->labels[i] = d->y[idx[i]];
    if (cache != NULL) {
        cache_gather(t, cache, idx, n, t->batch);
        return t->cache_op + 1;
    }
    data_batch(d, &t->norm, idx, n, t->batch, NULL);
    return 0;
}

static void make_perm(trainer *t, int epoch)
{
    int n = t->train->n;
    uint64_t key = rng_key(t->cfg.seed, STREAM_PERM, (uint64_t)epoch);
    for (int i = 0; i < n; i++)
        t->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(key, (uint64_t)i, (uint32_t)(i + 1));
        int tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
}

/* One SGD step on images idx[0..n); returns the batch's mean loss. */
static double train_step(trainer *t, const int *idx, int n)
{
    net *m = t->m;
    const float *cache = t->cache_built ? t->cache_train : NULL;
    int from = load_batch(t, t->train, cache, idx, n);
    uint64_t key = rng_key(t->cfg.seed, STREAM_STEP, (uint64_t)t->meta.step);
    const float *logits = net_forward(m, t->batch, n, from, 1, key);
    double loss = loss_softmax_xent(logits, t->labels, m->classes, n,
                                    net_output_grad(m), NULL);
    net_zero_grad(m);
    net_backward(m);
    sgd_step s = {
        .lr = t->cfg.lr * (t->meta.step >= t->lr_step_at ? t->cfg.lr_gamma
                                                         : 1.0f),
        .momentum = t->cfg.momentum,
        .weight_decay = t->cfg.weight_decay,
        .bias_lr_mult = t->cfg.bias_lr_mult,
        .bias_decay_mult = t->cfg.bias_decay_mult,
    };
    net_update(m, &s);
    t->meta.step++;
    return loss;
}

int trainer_evaluate(trainer *t, double *acc, tfq_error *e)
{
    int b = t->cfg.batch, correct = 0;
    const float *cache = t->cache_built ? t->cache_test : NULL;
    int *idx = malloc(sizeof(int) * (size_t)b);
    if (idx == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "evaluating on the test set: out "
                             "of memory for a batch of %d indexes", b);
    for (int i0 = 0; i0 < t->test->n; i0 += b) {
        int n = t->test->n - i0 < b ? t->test->n - i0 : b;
        for (int i = 0; i < n; i++)
            idx[i] = i0 + i;
        int from = load_batch(t, t->test, cache, idx, n);
        const float *logits = net_forward(t->m, t->batch, n, from, 0, 0);
        loss_count_correct(logits, t->labels, t->m->classes, n, &correct);
    }
    free(idx);
    *acc = (double)correct / t->test->n;
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

void trainer_result_get(const trainer *t, train_result *r)
{
    memset(r, 0, sizeof *r);
    const ckpt_meta *mt = &t->meta;
    r->epochs_done = mt->nevals;
    r->cache_op = t->cache_built ? t->cache_op : -1;
    r->cached_floats_per_image = t->cache_built ? t->cache_floats : 0;
    r->seconds = t->train_seconds;
    r->images_per_s = t->train_seconds > 0 ? t->train_images / t->train_seconds
                                           : 0.0;
    if (mt->nevals == 0)
        return;
    r->final_acc = mt->test_acc[mt->nevals - 1];
    r->final_loss = mt->train_loss[mt->nevals - 1];
    float sorted[CKPT_MAX_EVALS];
    memcpy(sorted, mt->test_acc, sizeof(float) * (size_t)mt->nevals);
    qsort(sorted, (size_t)mt->nevals, sizeof(float), cmp_desc);
    r->best_acc = sorted[0];
    int k = t->cfg.topk < mt->nevals ? t->cfg.topk : mt->nevals;
    double acc = 0.0;
    for (int i = 0; i < k; i++)
        acc += sorted[i];
    r->topk_acc = acc / k;
}

int trainer_run(trainer *t, train_progress_fn progress, void *ud,
                volatile sig_atomic_t *stop, const char *save_path,
                int save_every, tfq_error *e)
{
    ckpt_meta *mt = &t->meta;
    double run_start = clock_mono_s();
    while (mt->epoch < t->cfg.epochs) {
        double t0 = clock_mono_s();
        int64_t images0 = t->train_images;
        build_cache(t);
        make_perm(t, mt->epoch);
        int b = t->cfg.batch;
        while (mt->step_in_epoch < t->steps_per_epoch) {
            if (stop != NULL && *stop) {
                t->train_seconds += clock_mono_s() - t0;
                return tfq_error_set(e, TFQ_EINTR, "stopped at epoch %d "
                                     "step %d", mt->epoch + 1,
                                     mt->step_in_epoch);
            }
            int i0 = mt->step_in_epoch * b;
            int n = t->train->n - i0 < b ? t->train->n - i0 : b;
            double loss = train_step(t, t->perm + i0, n);
            mt->loss_sum += loss * n;
            mt->loss_count += n;
            mt->step_in_epoch++;
            t->train_images += n;
        }
        double acc;
        int rc = trainer_evaluate(t, &acc, e);
        if (rc != 0) {
            t->train_seconds += clock_mono_s() - t0;
            return tfq_error_wrap(e, rc, "epoch %d", mt->epoch + 1);
        }
        mt->test_acc[mt->nevals] = (float)acc;
        mt->train_loss[mt->nevals] =
            (float)(mt->loss_count ? mt->loss_sum / mt->loss_count : 0.0);
        mt->nevals++;
        mt->epoch++;
        mt->step_in_epoch = 0;
        mt->loss_sum = 0.0;
        mt->loss_count = 0;
        double dt = clock_mono_s() - t0;
        t->train_seconds += dt;
        if (save_path != NULL && save_every > 0 &&
            (mt->epoch % save_every == 0 || mt->epoch == t->cfg.epochs)) {
            rc = trainer_save(t, save_path, e);
            if (rc != 0)
                return rc;
        }
        if (progress != NULL) {
            double elapsed = clock_mono_s() - run_start;
            int done_here = mt->epoch;
            train_progress p = {
                .epoch = mt->epoch,
                .epochs = t->cfg.epochs,
                .train_loss = mt->train_loss[mt->nevals - 1],
                .test_acc = acc,
                .images_per_s = (t->train_images - images0) / dt,
                .epoch_s = dt,
                .eta_s = elapsed / done_here * (t->cfg.epochs - mt->epoch),
            };
            progress(&p, ud);
        }
    }
    return 0;
}

int trainer_save(trainer *t, const char *path, tfq_error *e)
{
    ckpt_meta_from_net(&t->meta, t->m);
    return ckpt_write(path, &t->meta, t->m, e);
}

int trainer_encode(trainer *t, uint8_t **buf, size_t *bytes, tfq_error *e)
{
    ckpt_meta_from_net(&t->meta, t->m);
    return ckpt_encode(&t->meta, t->m, buf, bytes, e);
}

int trainer_resume(trainer *t, const char *path, tfq_error *e)
{
    ckpt *c = ckpt_read(path, e);
    if (c == NULL)
        return e ? e->code : TFQ_EIO;
    int rc = trainer_resume_ckpt(t, c, path, e);
    ckpt_destroy(&c);
    return rc;
}

int trainer_resume_ckpt(trainer *t, const ckpt *c, const char *what,
                        tfq_error *e)
{
    const ckpt_meta *cm = ckpt_get_meta(c);
    int rc = 0;
    if (cm->seed != t->cfg.seed || cm->frozen != t->m->frozen) {
        rc = tfq_error_set(e, TFQ_EMISMATCH,
                           "%s: saved with seed %llu and %d frozen layers, "
                           "this job has seed %llu and %d", what,
                           (unsigned long long)cm->seed, cm->frozen,
                           (unsigned long long)t->cfg.seed, t->m->frozen);
    } else if (cm->fingerprint[0] && t->meta.fingerprint[0] &&
               strcmp(cm->fingerprint, t->meta.fingerprint) != 0) {
        rc = tfq_error_set(e, TFQ_EMISMATCH,
                           "%s: trained on data %.12s..., this job's data is "
                           "%.12s...", what, cm->fingerprint,
                           t->meta.fingerprint);
    } else if (cm->epoch > t->cfg.epochs ||
               cm->step_in_epoch > t->steps_per_epoch) {
        rc = tfq_error_set(e, TFQ_EMISMATCH,
                           "%s: at epoch %d step %d, past this job's %d "
                           "epochs of %d steps", what, cm->epoch,
                           cm->step_in_epoch, t->cfg.epochs,
                           t->steps_per_epoch);
    } else {
        rc = ckpt_restore(c, t->m, e);
    }
    if (rc == 0) {
        char fp[HASH_HEX_BYTES];
        memcpy(fp, t->meta.fingerprint, sizeof fp);
        t->meta = *cm;
        if (!t->meta.fingerprint[0])
            memcpy(t->meta.fingerprint, fp, sizeof fp);
        t->meta.norm = t->norm; /* this data's, whatever the version had */
    }
    return rc;
}

double trainer_time_steps(trainer *t, int steps)
{
    int b = t->cfg.batch;
    int n = t->train->n < b ? t->train->n : b;
    for (int i = 0; i < n; i++)
        t->perm[i] = i;
    build_cache(t);
    for (int i = 0; i < n; i++) /* build_cache borrows perm as scratch */
        t->perm[i] = i;
    int64_t step = t->meta.step;
    double t0 = clock_mono_s();
    for (int s = 0; s < steps; s++)
        train_step(t, t->perm, n);
    double dt = clock_mono_s() - t0;
    t->meta.step = step; /* timing is not training: keep the schedule */
    return dt;
}
