/* Checkpoints: round trips, resuming a trainer exactly, corrupt files, and
 * the transfer operations' shape checks. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "synth.h"
#include "common/hash.h"
#include "common/rng.h"
#include "worker/engine/ckpt.h"
#include "worker/engine/gemm.h"
#include "worker/engine/train.h"


/* A fingerprint as data_load would give one. */
static const char s_fp[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";



static void small_config(train_config *cfg, int epochs)
{
    train_config_default(cfg);
    cfg->epochs = epochs;
    cfg->batch = 32;
    cfg->seed = 21;
}

static void fill(float *v, long n, float scale, uint64_t key)
{
    for (long i = 0; i < n; i++)
        v[i] = scale * (2.0f * rng_uniform(key, (uint64_t)i) - 1.0f);
}

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static uint8_t *read_all(const char *path, size_t *bytes)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return NULL;
    }
    *bytes = (size_t)st.st_size;
    uint8_t *buf = malloc(*bytes ? *bytes : 1);
    if (buf != NULL && fread(buf, 1, *bytes, f) != *bytes) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int same_floats(const float *a, const float *b, long n)
{
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* ---- round trip --------------------------------------------------------- */

static int test_roundtrip(void)
{
    gemm_set_threads(1);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    const char *path = path_in(dir, "c.ckpt");
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg, 1);
    tfq_error e = {0};
    trainer *t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, s_fp, &e);
    CHECK_MSG(t != NULL, "%s", e.msg);
    int rc = trainer_run(t, NULL, NULL, NULL, NULL, 0, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_MSG(trainer_save(t, path, &e) == 0, "%s", e.msg);
    int entries = count_entries(dir); /* no temporary left behind */

    ckpt *c = ckpt_read(path, &e);
    CHECK_MSG(c != NULL, "%s", e.msg);
    const ckpt_meta *cm = ckpt_get_meta(c);
    const ckpt_meta *tm = trainer_meta(t);
    net *src = trainer_net(t);
    net *m = net_new(&cfg.spec, src->in, src->classes, 1, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    rc = ckpt_restore(c, m, &e);
    int params_same = same_floats(m->params, src->params, src->nparams);
    int moments_same = same_floats(m->moments, src->moments, src->nparams);
    int moments_used = 0;
    for (long i = 0; i < src->nparams; i++)
        moments_used |= src->moments[i] != 0.0f;
    char text[NETSPEC_TEXT_BYTES];
    netspec_format(&cfg.spec, text, sizeof text);
    int meta_ok = cm->epoch == 1 && cm->step_in_epoch == 0 &&
                  cm->step == SYNTH_TRAIN / 32 && cm->step == tm->step &&
                  cm->seed == 21 && cm->frozen == 0 && cm->nevals == 1 &&
                  cm->test_acc[0] == tm->test_acc[0] &&
                  cm->train_loss[0] == tm->train_loss[0] &&
                  cm->loss_count == 0 && cm->classes == SYNTH_CLASSES &&
                  cm->in.c == 1 && cm->in.h == SYNTH_HW &&
                  cm->in.w == SYNTH_HW;
    int fp_ok = strcmp(cm->fingerprint, s_fp) == 0;
    int text_ok = strcmp(cm->net_text, text) == 0;
    float acc = cm->test_acc[0];

    /* The in-memory encoding is the file, byte for byte. */
    uint8_t *enc = NULL, *file = NULL;
    size_t enc_bytes = 0, file_bytes = 0;
    int enc_rc = ckpt_encode(tm, src, &enc, &enc_bytes, &e);
    file = read_all(path, &file_bytes);
    int enc_same = enc_rc == 0 && file != NULL && enc_bytes == file_bytes &&
                   memcmp(enc, file, enc_bytes) == 0;
    ckpt *c2 = enc_rc == 0 ? ckpt_decode(enc, enc_bytes, "memory", &e) : NULL;
    int decoded = c2 != NULL && ckpt_get_meta(c2)->step == cm->step;
    free(enc);
    free(file);
    ckpt_destroy(&c2);
    ckpt_destroy(&c);
    CHECK(c == NULL);
    ckpt_destroy(&c); /* NULL is fine */
    net_destroy(&m);
    trainer_destroy(&t);
    synth_sets_release(&d);
    test_rmtree(dir);

    CHECK_EQ_INT(entries, 1);
    CHECK_MSG(rc == 0, "restore: %s", e.msg);
    CHECK(params_same);
    CHECK(moments_used);
    CHECK(moments_same);
    CHECK(meta_ok);
    CHECK(fp_ok);
    CHECK(text_ok);
    CHECK(acc > 0.0f && acc <= 1.0f);
    CHECK(enc_same);
    CHECK(decoded);
    return 0;
}

/* ---- resuming ----------------------------------------------------------- */

typedef struct {
    int after_epoch;          /* raise *stop after this epoch */
    volatile sig_atomic_t *stop;
} stop_after;

static void on_epoch(const train_progress *p, void *ud)
{
    stop_after *s = ud;
    if (p->epoch == s->after_epoch)
        *s->stop = 1;
}

/* trainer_run polls *stop before every step and no hook runs inside an
 * epoch, so a stop one step into an epoch is made by polling the trainer's
 * own step_in_epoch (an int, as sig_atomic_t is here): it is 0 when the
 * epoch starts and 1 after its first step. */
_Static_assert(_Generic((sig_atomic_t)0, int: 1, default: 0),
               "sig_atomic_t is int");

static volatile sig_atomic_t *step_in_epoch_flag(trainer *t)
{
    ckpt_meta *m = (ckpt_meta *)trainer_meta(t);
    return (volatile sig_atomic_t *)&m->step_in_epoch;
}

/* The final weights and every metric of two finished trainers agree. */
static int same_outcome(trainer *a, trainer *b, const char *what)
{
    net *ma = trainer_net(a), *mb = trainer_net(b);
    const ckpt_meta *ta = trainer_meta(a), *tb = trainer_meta(b);
    CHECK_MSG(same_floats(ma->params, mb->params, ma->nparams),
              "%s: weights differ", what);
    CHECK_MSG(same_floats(ma->moments, mb->moments, ma->nparams),
              "%s: momentum differs", what);
    CHECK_EQ_INT(ta->epoch, tb->epoch);
    CHECK_EQ_INT(ta->step, tb->step);
    CHECK_EQ_INT(ta->nevals, tb->nevals);
    CHECK_MSG(same_floats(ta->test_acc, tb->test_acc, ta->nevals),
              "%s: test accuracies differ", what);
    CHECK_MSG(same_floats(ta->train_loss, tb->train_loss, ta->nevals),
              "%s: training losses differ", what);
    return 0;
}

/* Trains cfg uninterrupted (A); trains it again stopped at the end of
 * epoch 1 (checkpoint f1) and one step into epoch 2 (checkpoint f2); then
 * resumes fresh trainers from f1 and from f2.  All three must agree. */
static int resume_case(const train_config *cfg, const synth_sets *d,
                       const char *dir)
{
    const char *f1 = path_in(dir, "epoch.ckpt");
    const char *f2 = path_in(dir, "step.ckpt");
    tfq_error e = {0};
    trainer *a = trainer_new(cfg, &d->train, &d->test, &synth_norm, s_fp, &e);
    CHECK_MSG(a != NULL, "%s", e.msg);
    CHECK_MSG(trainer_run(a, NULL, NULL, NULL, NULL, 0, &e) == 0, "%s", e.msg);

    trainer *b = trainer_new(cfg, &d->train, &d->test, &synth_norm, s_fp, &e);
    CHECK_MSG(b != NULL, "%s", e.msg);
    volatile sig_atomic_t stop = 0;
    stop_after sa = {1, &stop};
    int rc = trainer_run(b, on_epoch, &sa, &stop, NULL, 0, &e);
    CHECK_MSG(rc == TFQ_EINTR, "rc %d: %s", rc, e.msg);
    CHECK_EQ_INT(trainer_meta(b)->epoch, 1);
    CHECK_EQ_INT(trainer_meta(b)->step_in_epoch, 0);
    CHECK(trainer_save(b, f1, &e) == 0);
    rc = trainer_run(b, NULL, NULL, step_in_epoch_flag(b), NULL, 0, &e);
    CHECK_MSG(rc == TFQ_EINTR, "rc %d: %s", rc, e.msg);
    CHECK_EQ_INT(trainer_meta(b)->step_in_epoch, 1);
    CHECK(trainer_meta(b)->loss_count > 0);
    CHECK(trainer_save(b, f2, &e) == 0);
    trainer_destroy(&b);

    const char *from[] = {f2, f1};
    for (int i = 0; i < 2; i++) {
        trainer *c = trainer_new(cfg, &d->train, &d->test, &synth_norm, s_fp, &e);
        CHECK_MSG(c != NULL, "%s", e.msg);
        CHECK_MSG(trainer_resume(c, from[i], &e) == 0, "%s", e.msg);
        CHECK_EQ_INT(trainer_meta(c)->step_in_epoch, i == 0 ? 1 : 0);
        CHECK_MSG(trainer_run(c, NULL, NULL, NULL, NULL, 0, &e) == 0, "%s",
                  e.msg);
        int bad = same_outcome(a, c, from[i]);
        trainer_destroy(&c);
        CHECK(bad == 0);
    }
    trainer_destroy(&a);
    return 0;
}

static int test_resume_identical(void)
{
    gemm_set_threads(1);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    /* Three epochs, so the learning rate drops (at 75%) after the resume. */
    small_config(&cfg, 3);
    int bad = resume_case(&cfg, &d, dir);
    /* Again with a frozen, cached prefix, which is rebuilt on resume. */
    cfg.freeze_layers = 5;
    bad = bad || resume_case(&cfg, &d, dir);

    /* A checkpoint of another job is refused. */
    const char *f1 = path_in(dir, "epoch.ckpt");
    tfq_error e = {0};
    cfg.seed = 22;
    trainer *t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, s_fp, &e);
    int seed_rc = t ? trainer_resume(t, f1, &e) : 0;
    trainer_destroy(&t);
    cfg.seed = 21;
    t = trainer_new(&cfg, &d.train, &d.test, &synth_norm,
                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                    "ffffff", &e);
    int fp_rc = t ? trainer_resume(t, f1, &e) : 0;
    int fp_named = strstr(e.msg, f1) != NULL;
    trainer_destroy(&t);
    cfg.freeze_layers = 0;
    t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, s_fp, &e);
    int frozen_rc = t ? trainer_resume(t, f1, &e) : 0;
    trainer_destroy(&t);
    synth_sets_release(&d);
    test_rmtree(dir);
    CHECK(bad == 0);
    CHECK_EQ_INT(seed_rc, TFQ_EMISMATCH);
    CHECK_EQ_INT(fp_rc, TFQ_EMISMATCH);
    CHECK(fp_named);
    CHECK_EQ_INT(frozen_rc, TFQ_EMISMATCH);
    return 0;
}

/* ---- corrupt files ------------------------------------------------------ */

/* A checkpoint of a small net with some history, written to path. */
static int write_small(const char *path, tfq_error *e)
{
    netspec s;
    if (netspec_parse("conv 2 3; relu; maxpool 2; fc 3; fc classes", &s, e))
        return -1;
    net *m = net_new(&s, (netspec_shape){1, 6, 6}, 3, 1, e);
    if (m == NULL)
        return -1;
    net_init_layers(m, 1, m->nlearned, 4);
    fill(m->moments, m->nparams, 0.1f, 5);
    ckpt_meta *meta = calloc(1, sizeof *meta);
    if (meta == NULL)
        abort();
    ckpt_meta_from_net(meta, m);
    meta->epoch = 2;
    meta->step = 20;
    meta->nevals = 2;
    meta->test_acc[0] = 0.5f;
    meta->test_acc[1] = 0.75f;
    memcpy(meta->fingerprint, s_fp, sizeof s_fp);
    int rc = ckpt_write(path, meta, m, e);
    free(meta);
    net_destroy(&m);
    return rc;
}

/* ckpt_read(path) fails with one of the codes (0-terminated) and a message
 * naming path. */
static int read_fails(const char *path, const int *codes, const char *what)
{
    tfq_error e = {0};
    ckpt *c = ckpt_read(path, &e);
    int ok = c == NULL;
    ckpt_destroy(&c);
    CHECK_MSG(ok, "%s: read succeeded", what);
    int known = 0;
    for (int i = 0; codes[i] != 0; i++)
        known |= e.code == codes[i];
    CHECK_MSG(known, "%s: code %d (%s): %s", what, e.code,
              tfq_strerror(e.code), e.msg);
    CHECK_MSG(strstr(e.msg, path) != NULL, "%s: '%s' does not name the file",
              what, e.msg);
    return 0;
}

/* Re-signs body[0..len) with its SHA-256 and decodes it. */
static ckpt *decode_signed(const uint8_t *body, size_t len, tfq_error *e)
{
    uint8_t *buf = malloc(len + HASH_BYTES);
    if (buf == NULL)
        abort();
    memcpy(buf, body, len);
    hash_sha256(body, len, buf + len);
    ckpt *c = ckpt_decode(buf, len + HASH_BYTES, "fuzzed", e);
    free(buf);
    return c;
}

static int test_corruption(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    const char *good = path_in(dir, "good.ckpt");
    const char *bad = path_in(dir, "bad.ckpt");
    tfq_error e = {0};
    CHECK_MSG(write_small(good, &e) == 0, "%s", e.msg);
    size_t bytes = 0;
    uint8_t *orig = read_all(good, &bytes);
    CHECK(orig != NULL && bytes > 200);
    ckpt *c = ckpt_read(good, &e);
    CHECK_MSG(c != NULL, "%s", e.msg);
    ckpt_destroy(&c);

    uint8_t *buf = malloc(bytes);
    CHECK(buf != NULL);
    memcpy(buf, orig, bytes);
    buf[bytes / 2] ^= 0x01;
    CHECK(test_write_file(bad, buf, bytes) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_ECHECKSUM, 0}, "flipped byte") == 0);

    CHECK(test_write_file(bad, orig, bytes / 2) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_ETRUNC, TFQ_ECHECKSUM, 0},
                     "half a file") == 0);
    CHECK(test_write_file(bad, orig, 20) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_ETRUNC, TFQ_ECHECKSUM, 0},
                     "20 bytes") == 0);
    CHECK(test_write_file(bad, orig, bytes - 1) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_ETRUNC, TFQ_ECHECKSUM, 0},
                     "one byte short") == 0);

    memcpy(buf, orig, bytes);
    buf[0] = 'X';
    CHECK(test_write_file(bad, buf, bytes) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_EMAGIC, 0}, "magic") == 0);

    memcpy(buf, orig, bytes);
    buf[8] += 1; /* version 3 */
    CHECK(test_write_file(bad, buf, bytes) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_EVERSION, 0}, "version") == 0);
    c = ckpt_read(bad, &e);
    ckpt_destroy(&c);
    CHECK_MSG(strstr(e.msg, "version 3") != NULL, "%s", e.msg);

    CHECK(test_write_file(bad, "", 0) == 0);
    CHECK(read_fails(bad, (int[]){TFQ_ETRUNC, TFQ_EFORMAT, 0}, "empty") == 0);

    const char *missing = path_in(dir, "missing.ckpt");
    CHECK(read_fails(missing, (int[]){TFQ_ENOENT, 0}, "missing") == 0);

    /* A consistent checksum over bad content: every prefix of the body, and
     * every byte of it inverted, re-signed, is refused or parsed without
     * reading outside the buffer (the sanitizer build watches). */
    size_t body = bytes - HASH_BYTES;
    int prefix_bad = -1, flips_ok = 0, flips_refused = 0, odd_code = 0;
    for (size_t len = 12; len < body && prefix_bad < 0; len++) {
        c = decode_signed(orig, len, &e);
        if (c != NULL || (e.code != TFQ_ETRUNC && e.code != TFQ_EFORMAT))
            prefix_bad = (int)len;
        ckpt_destroy(&c);
    }
    netspec s;
    CHECK(netspec_parse("conv 2 3; relu; maxpool 2; fc 3; fc classes", &s,
                         &e) == 0);
    net *m = net_new(&s, (netspec_shape){1, 6, 6}, 3, 1, &e);
    CHECK(m != NULL);
    for (size_t i = 12; i < body; i++) {
        memcpy(buf, orig, body);
        buf[i] ^= 0xff;
        c = decode_signed(buf, body, &e);
        if (c == NULL) {
            flips_refused++;
            odd_code |= e.code != TFQ_ETRUNC && e.code != TFQ_EFORMAT;
        } else {
            int rc = ckpt_restore(c, m, &e);
            flips_ok++;
            odd_code |= rc != 0 && rc != TFQ_EMISMATCH;
        }
        ckpt_destroy(&c);
    }
    /* Extra bytes after the tensors. */
    memcpy(buf, orig, body);
    uint8_t *longer = calloc(1, body + 8);
    CHECK(longer != NULL);
    memcpy(longer, orig, body);
    c = decode_signed(longer, body + 8, &e);
    int extra_rc = c == NULL ? e.code : 0;
    ckpt_destroy(&c);
    free(longer);
    net_destroy(&m);
    free(buf);
    free(orig);
    test_rmtree(dir);
    CHECK_MSG(prefix_bad < 0, "a %d-byte prefix was not refused as truncated",
              prefix_bad);
    CHECK(flips_ok > 0 && flips_refused > 0);
    CHECK(!odd_code);
    CHECK_EQ_INT(extra_rc, TFQ_EFORMAT);
    return 0;
}

/* ---- transfer ----------------------------------------------------------- */

/* The reference net's description with conv2's width and fc8's classes. */
static net *reference_like(int conv2, int classes, netspec_shape in, tfq_error *e)
{
    char text[NETSPEC_TEXT_BYTES];
    snprintf(text, sizeof text,
             "conv 16 5 pad=2; relu; maxpool 2; conv %d 5 pad=2; relu; "
             "maxpool 2; conv 48 3 pad=1; relu; conv 48 3 pad=1; relu; "
             "conv 32 3 pad=1; relu; maxpool 2; fc 128; relu; dropout 0.5; "
             "fc 128; relu; dropout 0.5; fc classes", conv2);
    netspec s;
    if (netspec_parse(text, &s, e) != 0)
        return NULL;
    return net_new(&s, in, classes, 1, e);
}

/* A source net with every parameter and momentum non-trivial, saved. */
static int write_source(const char *path, tfq_error *e)
{
    net *m = reference_like(32, 10, (netspec_shape){1, 28, 28}, e);
    if (m == NULL)
        return -1;
    net_init_layers(m, 1, m->nlearned, 1);
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g);
        fill(p->b, p->nb, 0.2f, rng_key(1, 2, (uint64_t)g));
    }
    fill(m->moments, m->nparams, 0.01f, 3);
    ckpt_meta *meta = calloc(1, sizeof *meta);
    if (meta == NULL)
        abort();
    ckpt_meta_from_net(meta, m);
    int rc = ckpt_write(path, meta, m, e);
    free(meta);
    net_destroy(&m);
    return rc;
}

static int test_mismatch(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    const char *path = path_in(dir, "src.ckpt");
    tfq_error e = {0};
    CHECK_MSG(write_source(path, &e) == 0, "%s", e.msg);
    ckpt *c = ckpt_read(path, &e);
    CHECK_MSG(c != NULL, "%s", e.msg);
    netspec_shape mnist = {1, 28, 28};

    /* Restoring needs the same net, inputs and classes. */
    net *other = reference_like(24, 10, mnist, &e);
    CHECK(other != NULL);
    tfq_error_clear(&e);
    int rc = ckpt_restore(c, other, &e);
    CHECK_EQ_INT(rc, TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "net") && strstr(e.msg, path), "%s", e.msg);

    /* Copying up to the layer that differs fails naming the tensor; below
     * it, copying works. */
    tfq_error_clear(&e);
    rc = ckpt_copy_layers(c, other, 2, &e);
    CHECK_EQ_INT(rc, TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "layer2.weight") != NULL, "%s", e.msg);
    CHECK_MSG(ckpt_copy_layers(c, other, 1, &e) == 0, "%s", e.msg);
    net_destroy(&other);

    /* Fewer classes: every layer below the classifier fits. */
    net *four = reference_like(32, 4, mnist, &e);
    CHECK(four != NULL);
    tfq_error_clear(&e);
    CHECK_EQ_INT(ckpt_restore(c, four, &e), TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "classes") != NULL, "%s", e.msg);
    CHECK_MSG(ckpt_copy_layers(c, four, 7, &e) == 0, "%s", e.msg);
    net *src = reference_like(32, 10, mnist, &e);
    CHECK(src != NULL);
    CHECK(ckpt_restore(c, src, &e) == 0);
    int same7 = 1;
    for (int g = 1; g <= 7; g++) {
        layer_params *p = net_layer_params(four, g), *q = net_layer_params(src, g);
        same7 &= same_floats(p->w, q->w, p->nw) && same_floats(p->b, q->b, p->nb);
    }
    tfq_error_clear(&e);
    rc = ckpt_copy_layers(c, four, 8, &e);
    CHECK_EQ_INT(rc, TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "layer8.weight") != NULL, "%s", e.msg);
    CHECK_EQ_INT(ckpt_copy_layers(c, four, 9, &e), TFQ_EINVAL);
    CHECK_EQ_INT(ckpt_copy_layers(c, four, -1, &e), TFQ_EINVAL);
    CHECK(same7);
    net_destroy(&four);
    net_destroy(&src);

    /* Other input shapes are refused outright. */
    net *cifar = reference_like(32, 10, (netspec_shape){3, 28, 28}, &e);
    CHECK(cifar != NULL);
    tfq_error_clear(&e);
    CHECK_EQ_INT(ckpt_copy_layers(c, cifar, 1, &e), TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "inputs") != NULL, "%s", e.msg);
    tfq_error_clear(&e);
    CHECK_EQ_INT(ckpt_restore(c, cifar, &e), TFQ_EMISMATCH);
    net_destroy(&cifar);

    /* A transfer job copies through trainer_new: the layers below the
     * classifier into a 4-class task work, the classifier does not. */
    ckpt_destroy(&c);
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg, 1);
    cfg.init_path = path;
    cfg.copy_layers = 7;
    cfg.freeze_layers = 7;
    trainer *t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, NULL, &e);
    int copied7 = t != NULL && trainer_net(t)->frozen == 7;
    trainer_destroy(&t);
    cfg.copy_layers = 8;
    tfq_error_clear(&e);
    t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, NULL, &e);
    int refused8 = t == NULL && e.code == TFQ_EMISMATCH &&
                   strstr(e.msg, "layer8.weight") != NULL;
    trainer_destroy(&t);
    synth_sets_release(&d);
    test_rmtree(dir);
    CHECK(copied7);
    CHECK_MSG(refused8, "copy 8: %s", e.msg);
    return 0;
}

static int test_transfer_copy(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    const char *path = path_in(dir, "src.ckpt");
    tfq_error e = {0};
    CHECK_MSG(write_source(path, &e) == 0, "%s", e.msg);
    ckpt *c = ckpt_read(path, &e);
    CHECK_MSG(c != NULL, "%s", e.msg);
    netspec_shape mnist = {1, 28, 28};
    net *src = reference_like(32, 10, mnist, &e);
    net *m = reference_like(32, 10, mnist, &e);
    CHECK(src != NULL && m != NULL);
    CHECK(ckpt_restore(c, src, &e) == 0);
    net_init_layers(m, 1, m->nlearned, 2);
    fill(m->moments, m->nparams, 0.5f, 6);
    size_t bytes = sizeof(float) * (size_t)m->nparams;
    float *params0 = malloc(bytes), *moments0 = malloc(bytes);
    CHECK(params0 != NULL && moments0 != NULL);
    memcpy(params0, m->params, bytes);
    memcpy(moments0, m->moments, bytes);

    int rc = ckpt_copy_layers(c, m, 3, &e);
    int bad_copy = -1, bad_zero = -1, bad_keep = -1;
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g), *q = net_layer_params(src, g);
        long off = p->w - m->params, n = p->nw + p->nb;
        if (g <= 3) {
            if (!same_floats(p->w, q->w, p->nw) || !same_floats(p->b, q->b, p->nb))
                bad_copy = g;
            for (long i = 0; i < n; i++)
                if (p->vw[i] != 0.0f)
                    bad_zero = g;
        } else if (!same_floats(p->w, params0 + off, n) ||
                   !same_floats(p->vw, moments0 + off, n)) {
            bad_keep = g;
        }
    }
    /* The source's momentum was not zero, so zero here means not copied. */
    int src_moving = net_layer_params(src, 1)->vw[0] != 0.0f;
    free(params0);
    free(moments0);
    net_destroy(&src);
    net_destroy(&m);
    ckpt_destroy(&c);
    test_rmtree(dir);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_MSG(bad_copy < 0, "layer %d not copied", bad_copy);
    CHECK_MSG(bad_zero < 0, "layer %d kept momentum", bad_zero);
    CHECK_MSG(bad_keep < 0, "layer %d changed", bad_keep);
    CHECK(src_moving);
    return 0;
}

static const test_case cases[] = {
    {"roundtrip", test_roundtrip},
    {"resume_identical", test_resume_identical},
    {"corruption", test_corruption},
    {"mismatch", test_mismatch},
    {"transfer_copy", test_transfer_copy},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
