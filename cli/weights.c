/* Weights sets: from a checkpoint, to a checkpoint, to a file. */
#include "weights.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TFQ_VERSION
#define TFQ_VERSION "unknown"
#endif

#define SHAPE_TEXT_BYTES 96

void weights_release(weights_set *w)
{
    for (int i = 0; i < w->ntensors; i++)
        free(w->t[i].data);
    for (int i = 0; i < w->nmeta; i++)
        free(w->meta[i].value);
    memset(w, 0, sizeof *w);
}

int weights_meta_put(weights_set *w, const char *key, const char *value,
                     tfq_error *e)
{
    int i = 0;
    while (i < w->nmeta && strcmp(w->meta[i].key, key) != 0)
        i++;
    if (i == WEIGHTS_MAX_META || strlen(key) >= WEIGHTS_NAME_BYTES)
        return tfq_error_set(e, TFQ_ERANGE, "metadata: more than %d keys, "
                             "or the key '%.64s' is too long",
                             WEIGHTS_MAX_META, key);
    char *v = strdup(value);
    if (v == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "metadata: out of memory");
    if (i == w->nmeta) {
        snprintf(w->meta[i].key, WEIGHTS_NAME_BYTES, "%s", key);
        w->nmeta++;
    } else {
        free(w->meta[i].value);
    }
    w->meta[i].value = v;
    return 0;
}

const char *weights_meta_get(const weights_set *w, const char *key)
{
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0)
            return w->meta[i].value;
    return NULL;
}

void weights_layer_name(netspec_op_kind k, int g,
                        char out[WEIGHTS_NAME_BYTES])
{
    snprintf(out, WEIGHTS_NAME_BYTES, "%s%d", netspec_op_name(k), g);
}

/* The kinds of the learned layers of spec, in order; their count. */
static int learned_kinds(const netspec *spec, netspec_op_kind *kinds)
{
    int n = 0;
    for (int i = 0; i < spec->nops; i++)
        if (netspec_op_is_learned(spec->ops[i].kind))
            kinds[n++] = spec->ops[i].kind;
    return n;
}

/* "%.9g" values joined by commas: exact for float32. */
static void floats_text(const float *v, int n, char *out, size_t bytes)
{
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < n && off < bytes; i++)
        off += (size_t)snprintf(out + off, bytes - off, "%s%.9g",
                                i ? "," : "", (double)v[i]);
}

static int meta_from_ckpt(const ckpt_meta *m, weights_set *w, tfq_error *e)
{
    char in[SHAPE_TEXT_BYTES], classes[16], v[128];
    snprintf(in, sizeof in, "%dx%dx%d", m->in.c, m->in.h, m->in.w);
    snprintf(classes, sizeof classes, "%d", m->classes);
    int rc = weights_meta_put(w, "format", WEIGHTS_FORMAT, e);
    rc = rc ? rc : weights_meta_put(w, "tfq_version", TFQ_VERSION, e);
    rc = rc ? rc : weights_meta_put(w, "layout", "torch: conv OIHW, fc "
                                    "(out, in) with in in (C, H, W) order, "
                                    "F32 little-endian", e);
    rc = rc ? rc : weights_meta_put(w, "net", m->net_text, e);
    rc = rc ? rc : weights_meta_put(w, "input", in, e);
    rc = rc ? rc : weights_meta_put(w, "classes", classes, e);
    if (rc == 0 && m->fingerprint[0] != '\0')
        rc = weights_meta_put(w, "fingerprint", m->fingerprint, e);
    if (rc == 0 && m->norm.c > 0) {
        floats_text(m->norm.mean, m->norm.c, v, sizeof v);
        rc = weights_meta_put(w, "norm_mean", v, e);
        floats_text(m->norm.std, m->norm.c, v, sizeof v);
        rc = rc ? rc : weights_meta_put(w, "norm_std", v, e);
    }
    if (rc == 0 && m->nevals > 0) {
        floats_text(&m->test_acc[m->nevals - 1], 1, v, sizeof v);
        rc = weights_meta_put(w, "metric", "final", e);
        rc = rc ? rc : weights_meta_put(w, "metric_value", v, e);
    }
    return rc;
}

/* Adds tensor layerG.SUFFIX of c to w as NAME.SUFFIX. */
static int tensor_from_ckpt(const ckpt *c, int g, const char *layer,
                            const char *suffix, weights_set *w, tfq_error *e)
{
    char src[WEIGHTS_NAME_BYTES];
    int dims[4], ndim;
    const uint8_t *data;
    snprintf(src, sizeof src, "layer%d.%s", g, suffix);
    if (ckpt_tensor(c, src, dims, &ndim, &data) != 0)
        return tfq_error_set(e, TFQ_EFORMAT, "the checkpoint has no tensor "
                             "'%s'", src);
    weights_tensor *t = &w->t[w->ntensors];
    snprintf(t->name, sizeof t->name, "%s.%s", layer, suffix);
    t->ndim = ndim;
    t->count = 1;
    for (int d = 0; d < ndim; d++)
        t->count *= (t->dims[d] = dims[d]);
    t->data = malloc(sizeof(float) * (size_t)t->count);
    if (t->data == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "export: out of memory");
    memcpy(t->data, data, sizeof(float) * (size_t)t->count);
    w->ntensors++;
    return 0;
}

int weights_from_ckpt(const ckpt *c, weights_set *w, tfq_error *e)
{
    const ckpt_meta *m = ckpt_get_meta(c);
    netspec spec;
    netspec_op_kind kinds[NETSPEC_MAX_OPS];
    tfq_error ne = {0};
    if (netspec_parse(m->net_text, &spec, &ne) != 0)
        return tfq_error_set(e, TFQ_EFORMAT, "the checkpoint's net: %s",
                             ne.msg);
    int n = learned_kinds(&spec, kinds), rc = meta_from_ckpt(m, w, e);
    for (int g = 1; g <= n && rc == 0; g++) {
        char layer[WEIGHTS_NAME_BYTES];
        weights_layer_name(kinds[g - 1], g, layer);
        rc = tensor_from_ckpt(c, g, layer, "weight", w, e);
        rc = rc ? rc : tensor_from_ckpt(c, g, layer, "bias", w, e);
    }
    return rc;
}

/* ---- into a checkpoint --------------------------------------------------- */

static void shape_text(const int64_t *dims, int ndim, char *out)
{
    size_t off = (size_t)snprintf(out, SHAPE_TEXT_BYTES, "[");
    for (int d = 0; d < ndim && off < SHAPE_TEXT_BYTES; d++)
        off += (size_t)snprintf(out + off, SHAPE_TEXT_BYTES - off, "%s%lld",
                                d ? "," : "", (long long)dims[d]);
    if (off < SHAPE_TEXT_BYTES)
        snprintf(out + off, SHAPE_TEXT_BYTES - off, "]");
}

/* Copies the tensor name of w into dst after checking its shape against
 * dims; marks it used. */
static int take(const weights_set *w, const char *name, const int *dims,
                int ndim, float *dst, unsigned char *used, tfq_error *e)
{
    int i = 0;
    while (i < w->ntensors && strcmp(w->t[i].name, name) != 0)
        i++;
    if (i == w->ntensors)
        return tfq_error_set(e, TFQ_EMISMATCH, "%s: the net needs it and "
                             "the file has no such tensor", name);
    const weights_tensor *t = &w->t[i];
    int64_t want[4];
    int same = t->ndim == ndim;
    for (int d = 0; d < ndim; d++) {
        want[d] = dims[d];
        same = same && t->dims[d] == dims[d];
    }
    if (!same) {
        char has[SHAPE_TEXT_BYTES], needs[SHAPE_TEXT_BYTES];
        shape_text(t->dims, t->ndim, has);
        shape_text(want, ndim, needs);
        return tfq_error_set(e, TFQ_EMISMATCH, "%s: the file has %s, the "
                             "net wants %s", name, has, needs);
    }
    memcpy(dst, t->data, sizeof(float) * (size_t)t->count);
    used[i] = 1;
    return 0;
}

static int load_net(const weights_set *w, net *m, tfq_error *e)
{
    unsigned char used[WEIGHTS_MAX_TENSORS] = {0};
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g);
        int dims[4], ndim, rc;
        char layer[WEIGHTS_NAME_BYTES], name[2 * WEIGHTS_NAME_BYTES];
        net_layer_shape(m, g, dims, &ndim);
        weights_layer_name(m->ops[m->learned_op[g - 1]].kind, g, layer);
        snprintf(name, sizeof name, "%s.weight", layer);
        if ((rc = take(w, name, dims, ndim, p->w, used, e)) != 0)
            return rc;
        snprintf(name, sizeof name, "%s.bias", layer);
        if ((rc = take(w, name, &p->nb, 1, p->b, used, e)) != 0)
            return rc;
        memset(p->vw, 0, sizeof(float) * (size_t)p->nw);
        memset(p->vb, 0, sizeof(float) * (size_t)p->nb);
    }
    for (int i = 0; i < w->ntensors; i++)
        if (!used[i])
            return tfq_error_set(e, TFQ_EMISMATCH, "%s: the file has this "
                                 "tensor and the net has no place for it "
                                 "(its layers are named conv1, ..., fc%d)",
                                 w->t[i].name, m->nlearned);
    return 0;
}

/* Comma-separated floats into v[0..want); 0 or -1. */
static int parse_floats(const char *s, float *v, int want)
{
    int n = 0;
    while (*s != '\0' && n < want) {
        char *end;
        v[n++] = strtof(s, &end);
        if (end == s || (*end != ',' && *end != '\0'))
            return -1;
        s = *end == ',' ? end + 1 : end;
    }
    return n == want && *s == '\0' ? 0 : -1;
}

/* The metadata's fingerprint, normalisation and final metric into m. */
static int meta_into_ckpt(const weights_set *w, ckpt_meta *m, tfq_error *e)
{
    const char *fp = weights_meta_get(w, "fingerprint");
    const char *mean = weights_meta_get(w, "norm_mean");
    const char *sd = weights_meta_get(w, "norm_std");
    const char *metric = weights_meta_get(w, "metric");
    const char *value = weights_meta_get(w, "metric_value");
    if (fp != NULL && strlen(fp) == HASH_HEX_BYTES - 1)
        memcpy(m->fingerprint, fp, HASH_HEX_BYTES);
    if (mean != NULL && sd != NULL) {
        m->norm.c = m->in.c > 3 ? 3 : m->in.c;
        if (parse_floats(mean, m->norm.mean, m->norm.c) != 0 ||
            parse_floats(sd, m->norm.std, m->norm.c) != 0)
            return tfq_error_set(e, TFQ_EFORMAT, "metadata: norm_mean '%.40s'"
                                 " or norm_std '%.40s' is not %d numbers",
                                 mean, sd, m->norm.c);
    }
    if (metric != NULL && value != NULL && strcmp(metric, "final") == 0 &&
        parse_floats(value, m->test_acc, 1) == 0)
        m->nevals = 1;
    return 0;
}

int weights_to_ckpt(const weights_set *w, const netspec *spec,
                    netspec_shape in, int classes, uint8_t **buf,
                    size_t *bytes, tfq_error *e)
{
    net *m = net_new(spec, in, classes, 1, e);
    if (m == NULL)
        return e->code ? e->code : TFQ_EINVAL;
    ckpt_meta *meta = calloc(1, sizeof *meta);
    int rc = meta ? load_net(w, m, e)
                  : tfq_error_set(e, TFQ_ENOMEM, "import: out of memory");
    if (rc == 0) {
        ckpt_meta_from_net(meta, m);
        rc = meta_into_ckpt(w, meta, e);
    }
    if (rc == 0)
        rc = ckpt_encode(meta, m, buf, bytes, e);
    free(meta);
    net_destroy(&m);
    return rc;
}

/* ---- files ----------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int weights_check_path(const char *path, tfq_error *e)
{
    if (ends_with(path, ".npz") || ends_with(path, ".safetensors"))
        return 0;
    return tfq_error_set(e, TFQ_EINVAL, "%s: the name ends neither in "
                         ".safetensors nor in .npz", path);
}

int weights_write(const weights_set *w, const char *path, tfq_error *e)
{
    if (ends_with(path, ".npz"))
        return weights_npz_write(w, path, e);
    if (weights_check_path(path, e) != 0)
        return e->code;
    uint8_t *buf = NULL;
    size_t bytes = 0;
    int rc = weights_safetensors_encode(w, &buf, &bytes, e);
    if (rc == 0)
        rc = ckpt_file_write(path, buf, bytes, e);
    free(buf);
    return rc;
}

int weights_read(const char *path, weights_set *w, tfq_error *e)
{
    uint8_t *buf = NULL;
    size_t bytes = 0;
    int rc = ckpt_file_read(path, (size_t)1 << 34, &buf, &bytes, e);
    if (rc == 0)
        rc = weights_safetensors_decode(buf, bytes, path, w, e);
    free(buf);
    return rc;
}

int weights_parse_shape(const char *s, netspec_shape *out)
{
    int v[3];
    char tail;
    int n = sscanf(s, "%dx%dx%d%c", &v[0], &v[1], &v[2], &tail);
    if (n == 2 && sscanf(s, "%dx%d%c", &v[1], &v[2], &tail) == 2) {
        v[0] = 1;
        n = 3;
    }
    if (n != 3 || !isdigit((unsigned char)s[0]))
        return TFQ_EINVAL;
    for (int i = 0; i < 3; i++)
        if (v[i] < 1 || v[i] > 65536)
            return TFQ_EINVAL;
    *out = (netspec_shape){v[0], v[1], v[2]};
    return 0;
}

/* A tfq checkpoint's bytes, checked against the net, inputs and classes. */
static int check_ckpt_bytes(const uint8_t *buf, size_t bytes,
                            const char *path, const netspec *spec,
                            netspec_shape in, int classes, tfq_error *e)
{
    ckpt *c = ckpt_decode(buf, bytes, path, e);
    if (c == NULL)
        return e->code;
    const ckpt_meta *m = ckpt_get_meta(c);
    char text[NETSPEC_TEXT_BYTES];
    netspec_format(spec, text, sizeof text);
    int rc = 0;
    if (strcmp(text, m->net_text) != 0)
        rc = tfq_error_set(e, TFQ_EMISMATCH, "%s: a checkpoint of net '%s', "
                           "the grid's net is '%s'", path, m->net_text, text);
    else if (m->in.c != in.c || m->in.h != in.h || m->in.w != in.w ||
             m->classes != classes)
        rc = tfq_error_set(e, TFQ_EMISMATCH, "%s: a checkpoint for %dx%dx%d "
                           "inputs and %d classes, the grid's task has "
                           "%dx%dx%d and %d", path, m->in.c, m->in.h, m->in.w,
                           m->classes, in.c, in.h, in.w, classes);
    ckpt_destroy(&c);
    return rc;
}

int weights_load_as_ckpt(const char *path, const netspec *spec,
                         netspec_shape in, int classes, uint8_t **buf,
                         size_t *bytes, tfq_error *e)
{
    uint8_t *raw = NULL;
    size_t n = 0;
    int rc = ckpt_file_read(path, (size_t)1 << 34, &raw, &n, e);
    if (rc != 0)
        return rc;
    if (n >= 8 && memcmp(raw, CKPT_MAGIC, 8) == 0) {
        rc = check_ckpt_bytes(raw, n, path, spec, in, classes, e);
        if (rc == 0) {
            *buf = raw;
            *bytes = n;
            return 0;
        }
        free(raw);
        return rc;
    }
    weights_set *w = calloc(1, sizeof *w);
    rc = w ? weights_safetensors_decode(raw, n, path, w, e)
           : tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
    free(raw);
    if (rc == 0 && (rc = weights_to_ckpt(w, spec, in, classes, buf, bytes,
                                         e)) != 0) {
        char msg[TFQ_ERROR_MSG_BYTES];
        snprintf(msg, sizeof msg, "%s", e->msg);
        tfq_error_set(e, rc, "%s: %s", path, msg);
    }
    if (w != NULL)
        weights_release(w);
    free(w);
    return rc;
}
