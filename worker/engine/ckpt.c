#define _GNU_SOURCE
#include "ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"

#define MAX_TENSORS (4 * NETSPEC_MAX_OPS)
#define MAX_NAME_BYTES 64
#define MAX_CKPT_BYTES ((size_t)1 << 34) /* 16 GiB: larger is not ours */

typedef struct {
    char name[MAX_NAME_BYTES];
    int ndim;
    int dims[4];
    long count;
    const uint8_t *data; /* count little-endian floats inside c->buf */
} tensor_view;

struct ckpt {
    ckpt_meta meta;
    uint8_t *buf;
    size_t bytes;
    int ntensors;
    tensor_view t[MAX_TENSORS];
    char what[256];
};

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int failed;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->buf, cap);
        if (nb == NULL) {
            w->failed = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* The format is little-endian; so is every machine tfq builds for (x86-64,
 * aarch64), which the static assertion below keeps true. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "checkpoint I/O assumes a little-endian host");

static void put_u32(writer *w, uint32_t v) { put(w, &v, 4); }
static void put_i32(writer *w, int32_t v) { put(w, &v, 4); }
static void put_i64(writer *w, int64_t v) { put(w, &v, 8); }
static void put_u64(writer *w, uint64_t v) { put(w, &v, 8); }
static void put_f64(writer *w, double v) { put(w, &v, 8); }

static void put_str(writer *w, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    put_u32(w, n);
    put(w, s, n);
}

static void put_tensor(writer *w, const char *name, const int *dims,
                       int ndim, const float *data, long count)
{
    put_str(w, name);
    put_u32(w, (uint32_t)ndim);
    for (int i = 0; i < ndim; i++)
        put_u32(w, (uint32_t)dims[i]);
    put(w, data, sizeof(float) * (size_t)count);
}

void ckpt_meta_from_net(ckpt_meta *meta, const net *m)
{
    netspec_format(&m->spec, meta->net_text, sizeof meta->net_text);
    meta->in = m->in;
    meta->classes = m->classes;
    meta->frozen = m->frozen;
}

int ckpt_encode(const ckpt_meta *meta, const net *m, uint8_t **buf,
                size_t *bytes, tfq_error *e)
{
    writer w = {0};
    char magic[8] = CKPT_MAGIC;
    put(&w, magic, 8);
    put_u32(&w, CKPT_VERSION);
    char text[NETSPEC_TEXT_BYTES];
    netspec_format(&m->spec, text, sizeof text);
    put_str(&w, text);
    put_i32(&w, m->in.c);
    put_i32(&w, m->in.h);
    put_i32(&w, m->in.w);
    put_i32(&w, m->classes);
    put_i32(&w, meta->epoch);
    put_i32(&w, meta->step_in_epoch);
    put_i64(&w, meta->step);
    put_u64(&w, meta->seed);
    put_f64(&w, meta->loss_sum);
    put_i64(&w, meta->loss_count);
    put_i32(&w, meta->frozen);
    put_i32(&w, meta->nevals);
    put(&w, meta->test_acc, sizeof(float) * (size_t)meta->nevals);
    put(&w, meta->train_loss, sizeof(float) * (size_t)meta->nevals);
    put(&w, meta->fingerprint, HASH_HEX_BYTES - 1);
    int nc = meta->norm.c >= 0 && meta->norm.c <= 3 ? meta->norm.c : 0;
    put_i32(&w, nc);
    put(&w, meta->norm.mean, sizeof(float) * (size_t)nc);
    put(&w, meta->norm.std, sizeof(float) * (size_t)nc);
    put_u32(&w, (uint32_t)(4 * m->nlearned));
    net *mm = (net *)m; /* net_layer_params does not modify */
    for (int g = 1; g <= m->nlearned; g++) {
        const layer_params *p = net_layer_params(mm, g);
        int dims[4], ndim;
        net_layer_shape(m, g, dims, &ndim);
        char name[MAX_NAME_BYTES];
        snprintf(name, sizeof name, "layer%d.weight", g);
        put_tensor(&w, name, dims, ndim, p->w, p->nw);
        snprintf(name, sizeof name, "layer%d.bias", g);
        put_tensor(&w, name, &p->nb, 1, p->b, p->nb);
        snprintf(name, sizeof name, "layer%d.weight.momentum", g);
        put_tensor(&w, name, dims, ndim, p->vw, p->nw);
        snprintf(name, sizeof name, "layer%d.bias.momentum", g);
        put_tensor(&w, name, &p->nb, 1, p->vb, p->nb);
    }
    if (!w.failed) {
        uint8_t digest[HASH_BYTES];
        hash_sha256(w.buf, w.len, digest);
        put(&w, digest, HASH_BYTES);
    }
    if (w.failed) {
        free(w.buf);
        return tfq_error_set(e, TFQ_ENOMEM, "checkpoint: out of memory");
    }
    *buf = w.buf;
    *bytes = w.len;
    return 0;
}

int ckpt_file_write(const char *path, const uint8_t *buf, size_t bytes,
                    tfq_error *e)
{
    file_part part = {buf, bytes};
    return file_write_atomic(path, &part, 1, e);
}

int ckpt_write(const char *path, const ckpt_meta *meta, const net *m,
               tfq_error *e)
{
    uint8_t *buf = NULL;
    size_t bytes = 0;
    int rc = ckpt_encode(meta, m, &buf, &bytes, e);
    if (rc == 0)
        rc = ckpt_file_write(path, buf, bytes, e);
    free(buf);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t left;
    int bad;
} reader;

static void get(reader *r, void *out, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

static uint32_t get_u32(reader *r) { uint32_t v; get(r, &v, 4); return v; }
static int32_t get_i32(reader *r) { int32_t v; get(r, &v, 4); return v; }
static int64_t get_i64(reader *r) { int64_t v; get(r, &v, 8); return v; }
static uint64_t get_u64(reader *r) { uint64_t v; get(r, &v, 8); return v; }
static double get_f64(reader *r) { double v; get(r, &v, 8); return v; }

static int get_str(reader *r, char *out, size_t cap)
{
    uint32_t n = get_u32(r);
    if (r->bad || n >= cap || n > r->left) {
        r->bad = 1;
        out[0] = '\0';
        return -1;
    }
    get(r, out, n);
    out[n] = '\0';
    return 0;
}

/* Version 2's normalisation: channels, then their means and deviations. */
static int parse_norm(reader *r, data_norm *n, const char *what,
                      tfq_error *e)
{
    int32_t c = get_i32(r);
    if (r->bad || c < 0 || c > 3)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: bad normalisation "
                             "channel count %d", what, (int)c);
    n->c = c;
    get(r, n->mean, sizeof(float) * (size_t)c);
    get(r, n->std, sizeof(float) * (size_t)c);
    if (r->bad)
        return tfq_error_set(e, TFQ_ETRUNC, "%s: truncated normalisation",
                             what);
    return 0;
}

static int parse_meta(reader *r, ckpt_meta *m, uint32_t version,
                      const char *what, tfq_error *e)
{
    if (get_str(r, m->net_text, sizeof m->net_text) != 0)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: bad net description length", what);
    m->in.c = get_i32(r);
    m->in.h = get_i32(r);
    m->in.w = get_i32(r);
    m->classes = get_i32(r);
    m->epoch = get_i32(r);
    m->step_in_epoch = get_i32(r);
    m->step = get_i64(r);
    m->seed = get_u64(r);
    m->loss_sum = get_f64(r);
    m->loss_count = get_i64(r);
    m->frozen = get_i32(r);
    m->nevals = get_i32(r);
    if (r->bad)
        return tfq_error_set(e, TFQ_ETRUNC, "%s: truncated header", what);
    if (m->nevals < 0 || m->nevals > CKPT_MAX_EVALS || m->epoch < 0 ||
        m->step_in_epoch < 0 || m->step < 0 || m->classes < 2 ||
        m->in.c < 1 || m->in.h < 1 || m->in.w < 1)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: header values out of range (epoch %d, "
                             "evals %d, classes %d)", what, m->epoch,
                             m->nevals, m->classes);
    get(r, m->test_acc, sizeof(float) * (size_t)m->nevals);
    get(r, m->train_loss, sizeof(float) * (size_t)m->nevals);
    get(r, m->fingerprint, HASH_HEX_BYTES - 1);
    m->fingerprint[HASH_HEX_BYTES - 1] = '\0';
    if (r->bad)
        return tfq_error_set(e, TFQ_ETRUNC, "%s: truncated metrics", what);
    memset(&m->norm, 0, sizeof m->norm);
    return version >= 2 ? parse_norm(r, &m->norm, what, e) : 0;
}

static int parse_tensors(reader *r, ckpt *c, tfq_error *e)
{
    uint32_t n = get_u32(r);
    if (r->bad || n > MAX_TENSORS)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: bad tensor count %u",
                             c->what, n);
    for (uint32_t i = 0; i < n; i++) {
        tensor_view *t = &c->t[i];
        if (get_str(r, t->name, sizeof t->name) != 0)
            return tfq_error_set(e, TFQ_EFORMAT, "%s: bad name of tensor %u",
                                 c->what, i);
        uint32_t ndim = get_u32(r);
        if (r->bad || ndim < 1 || ndim > 4)
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "%s: tensor '%s' has %u dimensions",
                                 c->what, t->name, ndim);
        t->ndim = (int)ndim;
        t->count = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            uint32_t v = get_u32(r);
            if (r->bad || v < 1 || v > (1u << 24))
                return tfq_error_set(e, TFQ_EFORMAT,
                                     "%s: tensor '%s' dimension %u is %u",
                                     c->what, t->name, d, v);
            t->dims[d] = (int)v;
            t->count *= v;
        }
        size_t bytes = sizeof(float) * (size_t)t->count;
        if (bytes > r->left)
            return tfq_error_set(e, TFQ_ETRUNC,
                                 "%s: truncated in tensor '%s'", c->what,
                                 t->name);
        t->data = r->p;
        r->p += bytes;
        r->left -= bytes;
    }
    c->ntensors = (int)n;
    if (r->left != 0)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: %zu unexpected bytes after the tensors",
                             c->what, r->left);
    return 0;
}

ckpt *ckpt_decode(const uint8_t *buf, size_t bytes, const char *what,
                  tfq_error *e)
{
    ckpt *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    snprintf(c->what, sizeof c->what, "%s", what);
    if (bytes < 12 + HASH_BYTES) {
        tfq_error_set(e, TFQ_ETRUNC, "%s: %zu bytes is too short for a "
                      "checkpoint", what, bytes);
        goto fail;
    }
    if (memcmp(buf, CKPT_MAGIC, 8) != 0) {
        tfq_error_set(e, TFQ_EMAGIC, "%s: not a tfq checkpoint (bad magic)",
                      what);
        goto fail;
    }
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    if (version < CKPT_VERSION_MIN || version > CKPT_VERSION) {
        tfq_error_set(e, TFQ_EVERSION, "%s: checkpoint format version %u, "
                      "this tfq reads versions %u to %u", what, version,
                      CKPT_VERSION_MIN, CKPT_VERSION);
        goto fail;
    }
    uint8_t digest[HASH_BYTES];
    hash_sha256(buf, bytes - HASH_BYTES, digest);
    if (memcmp(digest, buf + bytes - HASH_BYTES, HASH_BYTES) != 0) {
        tfq_error_set(e, TFQ_ECHECKSUM, "%s: checksum mismatch (the file is "
                      "corrupt or truncated)", what);
        goto fail;
    }
    c->buf = malloc(bytes);
    if (c->buf == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", what);
        goto fail;
    }
    memcpy(c->buf, buf, bytes);
    c->bytes = bytes;
    reader r = {c->buf + 12, bytes - 12 - HASH_BYTES, 0};
    if (parse_meta(&r, &c->meta, version, what, e) != 0 ||
        parse_tensors(&r, c, e) != 0)
        goto fail;
    return c;
fail:
    ckpt_destroy(&c);
    return NULL;
}

int ckpt_file_read(const char *path, size_t max_bytes, uint8_t **out,
                   size_t *out_bytes, tfq_error *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tfq_error_set(e, errno == ENOENT ? TFQ_ENOENT : TFQ_EIO,
                             "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 ||
        (size_t)st.st_size > max_bytes) {
        fclose(f);
        return tfq_error_set(e, TFQ_EIO, "%s: cannot size the file, or it "
                             "is over %zu bytes", path, max_bytes);
    }
    size_t bytes = (size_t)st.st_size;
    uint8_t *buf = malloc(bytes ? bytes : 1);
    if (buf == NULL) {
        fclose(f);
        return tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, bytes, f);
    fclose(f);
    if (got != bytes) {
        free(buf);
        return tfq_error_set(e, TFQ_EIO, "%s: short read", path);
    }
    *out = buf;
    *out_bytes = bytes;
    return 0;
}

ckpt *ckpt_read(const char *path, tfq_error *e)
{
    uint8_t *buf = NULL;
    size_t bytes = 0;
    if (ckpt_file_read(path, MAX_CKPT_BYTES, &buf, &bytes, e) != 0)
        return NULL;
    ckpt *c = ckpt_decode(buf, bytes, path, e);
    free(buf);
    return c;
}

void ckpt_destroy(ckpt **c)
{
    if (c == NULL || *c == NULL)
        return;
    free((*c)->buf);
    free(*c);
    *c = NULL;
}

const ckpt_meta *ckpt_get_meta(const ckpt *c)
{
    return &c->meta;
}

static const tensor_view *find(const ckpt *c, const char *name)
{
    for (int i = 0; i < c->ntensors; i++)
        if (strcmp(c->t[i].name, name) == 0)
            return &c->t[i];
    return NULL;
}

int ckpt_tensor(const ckpt *c, const char *name, int dims[4], int *ndim,
                const uint8_t **data)
{
    const tensor_view *t = find(c, name);
    if (t == NULL)
        return TFQ_ENOENT;
    memcpy(dims, t->dims, sizeof t->dims);
    *ndim = t->ndim;
    *data = t->data;
    return 0;
}

/* Copies tensor `name` into dst after checking its shape. */
static int load_tensor(const ckpt *c, const char *name, const int *dims,
                       int ndim, float *dst, tfq_error *e)
{
    const tensor_view *t = find(c, name);
    if (t == NULL)
        return tfq_error_set(e, TFQ_EMISMATCH, "%s: has no tensor '%s'",
                             c->what, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->dims[d] == dims[d];
    if (!same) {
        char want[64], got[64];
        int a = 0, b = 0;
        for (int d = 0; d < ndim; d++)
            a += snprintf(want + a, sizeof want - (size_t)a, "%s%d",
                          d ? "x" : "", dims[d]);
        for (int d = 0; d < t->ndim; d++)
            b += snprintf(got + b, sizeof got - (size_t)b, "%s%d",
                          d ? "x" : "", t->dims[d]);
        return tfq_error_set(e, TFQ_EMISMATCH,
                             "%s: tensor '%s' is %s, the net needs %s",
                             c->what, name, got, want);
    }
    memcpy(dst, t->data, sizeof(float) * (size_t)t->count);
    return 0;
}

static int load_layer(const ckpt *c, net *m, int g, int with_momentum,
                      tfq_error *e)
{
    layer_params *p = net_layer_params(m, g);
    int dims[4], ndim, rc;
    net_layer_shape(m, g, dims, &ndim);
    char name[MAX_NAME_BYTES];
    snprintf(name, sizeof name, "layer%d.weight", g);
    if ((rc = load_tensor(c, name, dims, ndim, p->w, e)))
        return rc;
    snprintf(name, sizeof name, "layer%d.bias", g);
    if ((rc = load_tensor(c, name, &p->nb, 1, p->b, e)))
        return rc;
    if (!with_momentum)
        return 0;
    snprintf(name, sizeof name, "layer%d.weight.momentum", g);
    if ((rc = load_tensor(c, name, dims, ndim, p->vw, e)))
        return rc;
    snprintf(name, sizeof name, "layer%d.bias.momentum", g);
    return load_tensor(c, name, &p->nb, 1, p->vb, e);
}

int ckpt_restore(const ckpt *c, net *m, tfq_error *e)
{
    char text[NETSPEC_TEXT_BYTES];
    netspec_format(&m->spec, text, sizeof text);
    if (strcmp(text, c->meta.net_text) != 0)
        return tfq_error_set(e, TFQ_EMISMATCH,
                             "%s: saved net '%s' is not this job's net '%s'",
                             c->what, c->meta.net_text, text);
    if (c->meta.in.c != m->in.c || c->meta.in.h != m->in.h ||
        c->meta.in.w != m->in.w || c->meta.classes != m->classes)
        return tfq_error_set(e, TFQ_EMISMATCH,
                             "%s: saved for %dx%dx%d inputs and %d classes, "
                             "this job has %dx%dx%d and %d", c->what,
                             c->meta.in.c, c->meta.in.h, c->meta.in.w,
                             c->meta.classes, m->in.c, m->in.h, m->in.w,
                             m->classes);
    for (int g = 1; g <= m->nlearned; g++) {
        int rc = load_layer(c, m, g, 1, e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int ckpt_copy_layers(const ckpt *c, net *m, int n, tfq_error *e)
{
    if (n < 0 || n > m->nlearned)
        return tfq_error_set(e, TFQ_EINVAL,
                             "cannot copy %d layers: the net has %d", n,
                             m->nlearned);
    if (c->meta.in.c != m->in.c || c->meta.in.h != m->in.h ||
        c->meta.in.w != m->in.w)
        return tfq_error_set(e, TFQ_EMISMATCH,
                             "%s: saved for %dx%dx%d inputs, this job has "
                             "%dx%dx%d", c->what, c->meta.in.c, c->meta.in.h,
                             c->meta.in.w, m->in.c, m->in.h, m->in.w);
    for (int g = 1; g <= n; g++) {
        int rc = load_layer(c, m, g, 0, e);
        if (rc != 0)
            return rc;
        layer_params *p = net_layer_params(m, g);
        memset(p->vw, 0, sizeof(float) * (size_t)p->nw);
        memset(p->vb, 0, sizeof(float) * (size_t)p->nb);
    }
    return 0;
}
