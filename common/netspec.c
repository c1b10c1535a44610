#include "netspec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *netspec_op_name(netspec_op_kind k)
{
    switch (k) {
    case NETSPEC_CONV:
        return "conv";
    case NETSPEC_RELU:
        return "relu";
    case NETSPEC_MAXPOOL:
        return "maxpool";
    case NETSPEC_LRN:
        return "lrn";
    case NETSPEC_FC:
        return "fc";
    case NETSPEC_DROPOUT:
        return "dropout";
    }
    return "?";
}

int netspec_op_is_learned(netspec_op_kind k)
{
    return k == NETSPEC_CONV || k == NETSPEC_FC;
}

/* ---- parsing ------------------------------------------------------------ */

static int parse_int(const char *w, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(w, &end, 10);
    if (errno != 0 || end == w || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_float(const char *w, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(w, &end);
    if (errno != 0 || end == w || *end != '\0' || !(v >= lo && v <= hi))
        return -1;
    *out = (float)v;
    return 0;
}

static void spec_defaults(netspec_op *o, netspec_op_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->stride = 1;
    o->size = 5;
    o->alpha = 1e-4f;
    o->beta = 0.75f;
    o->lrn_k = 1.0f;
}

/* Applies word number pos (0 = first after the kind) of one operation. */
static int apply_word(netspec_op *o, int pos, char *word, int opno,
                      tfq_error *e)
{
    char *eq = strchr(word, '=');
    const char *key = NULL, *val = word;
    if (eq != NULL) {
        *eq = '\0';
        key = word;
        val = eq + 1;
    }
    int bad = 0;
    switch (o->kind) {
    case NETSPEC_CONV:
        if ((key == NULL && pos == 0) || (key && strcmp(key, "out") == 0))
            bad = parse_int(val, 1, 1 << 16, &o->out);
        else if ((key == NULL && pos == 1) || (key && strcmp(key, "k") == 0))
            bad = parse_int(val, 1, 64, &o->k);
        else if (key && strcmp(key, "stride") == 0)
            bad = parse_int(val, 1, 64, &o->stride);
        else if (key && strcmp(key, "pad") == 0)
            bad = parse_int(val, 0, 64, &o->pad);
        else
            bad = 1;
        break;
    case NETSPEC_MAXPOOL:
        if ((key == NULL && pos == 0) || (key && strcmp(key, "k") == 0))
            bad = parse_int(val, 1, 64, &o->k);
        else if (key && strcmp(key, "stride") == 0)
            bad = parse_int(val, 1, 64, &o->stride);
        else
            bad = 1;
        break;
    case NETSPEC_FC:
        if ((key == NULL && pos == 0) || (key && strcmp(key, "out") == 0)) {
            if (strcmp(val, "classes") == 0)
                o->out = NETSPEC_CLASSES;
            else
                bad = parse_int(val, 1, 1 << 20, &o->out);
        } else {
            bad = 1;
        }
        break;
    case NETSPEC_DROPOUT:
        if ((key == NULL && pos == 0) || (key && strcmp(key, "p") == 0))
            bad = parse_float(val, 0.0, 0.99, &o->p);
        else
            bad = 1;
        break;
    case NETSPEC_LRN:
        if (key && strcmp(key, "size") == 0)
            bad = parse_int(val, 1, 63, &o->size) || o->size % 2 == 0;
        else if (key && strcmp(key, "alpha") == 0)
            bad = parse_float(val, 0.0, 1e3, &o->alpha);
        else if (key && strcmp(key, "beta") == 0)
            bad = parse_float(val, 0.0, 10.0, &o->beta);
        else if (key && strcmp(key, "k") == 0)
            bad = parse_float(val, 1e-6, 1e3, &o->lrn_k);
        else
            bad = 1;
        break;
    case NETSPEC_RELU:
        bad = 1;
        break;
    }
    if (bad)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation %d (%s): bad argument '%s%s%s'",
                             opno, netspec_op_name(o->kind), key ? key : "",
                             key ? "=" : "", val);
    return 0;
}

static int parse_op(char *item, int opno, netspec_op *o, tfq_error *e)
{
    char *save = NULL;
    char *word = strtok_r(item, " \t\r", &save);
    static const struct {
        const char *name;
        netspec_op_kind kind;
    } kinds[] = {
        {"conv", NETSPEC_CONV},   {"relu", NETSPEC_RELU}, {"maxpool", NETSPEC_MAXPOOL},
        {"pool", NETSPEC_MAXPOOL}, {"lrn", NETSPEC_LRN},  {"fc", NETSPEC_FC},
        {"dropout", NETSPEC_DROPOUT},
    };
    size_t i;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(word, kinds[i].name) == 0)
            break;
    if (i == sizeof kinds / sizeof kinds[0])
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation %d: unknown kind '%s' (expected "
                             "conv, relu, maxpool, lrn, fc or dropout)",
                             opno, word);
    spec_defaults(o, kinds[i].kind);
    if (o->kind == NETSPEC_MAXPOOL)
        o->stride = 0; /* "not given": defaults to the window below */
    int pos = 0, rc;
    while ((word = strtok_r(NULL, " \t\r", &save)) != NULL)
        if ((rc = apply_word(o, pos++, word, opno, e)) != 0)
            return rc;
    if (o->kind == NETSPEC_MAXPOOL && o->stride == 0)
        o->stride = o->k; /* non-overlapping windows unless told */
    int missing = (o->kind == NETSPEC_CONV && (o->out == 0 || o->k == 0)) ||
                  (o->kind == NETSPEC_MAXPOOL && o->k == 0) ||
                  (o->kind == NETSPEC_FC && o->out == 0);
    if (missing)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation %d (%s): missing size (e.g. "
                             "'conv 16 5 pad=2', 'maxpool 2', 'fc 128')",
                             opno, netspec_op_name(o->kind));
    return 0;
}

int netspec_parse(const char *text, netspec *spec, tfq_error *e)
{
    char buf[NETSPEC_TEXT_BYTES * 2];
    if (strlen(text) >= sizeof buf)
        return tfq_error_set(e, TFQ_EINVAL, "net description too long");
    strcpy(buf, text);
    memset(spec, 0, sizeof *spec);
    char *save = NULL;
    int rc;
    for (char *item = strtok_r(buf, ";,\n", &save); item != NULL;
         item = strtok_r(NULL, ";,\n", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        if (*item == '\0')
            continue;
        if (spec->nops == NETSPEC_MAX_OPS)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "net has more than %d operations",
                                 NETSPEC_MAX_OPS);
        if ((rc = parse_op(item, spec->nops + 1, &spec->ops[spec->nops], e)))
            return rc;
        spec->nops++;
    }
    if (spec->nops == 0)
        return tfq_error_set(e, TFQ_EINVAL, "net description is empty");
    if (!netspec_op_is_learned(spec->ops[0].kind))
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation 1 must be conv or fc, not %s",
                             netspec_op_name(spec->ops[0].kind));
    const netspec_op *last = &spec->ops[spec->nops - 1];
    if (last->kind != NETSPEC_FC)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation %d: the last operation must be "
                             "'fc classes', not %s", spec->nops,
                             netspec_op_name(last->kind));
    for (int i = 0; i < spec->nops; i++) {
        if (spec->ops[i].out == NETSPEC_CLASSES && i != spec->nops - 1)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "net operation %d: only the last fc may have "
                                 "'classes' outputs", i + 1);
        if (spec->ops[i].kind == NETSPEC_CONV && i > 0 &&
            spec->ops[i - 1].kind == NETSPEC_FC)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "net operation %d: conv cannot follow fc",
                                 i + 1);
    }
    return 0;
}

static int scaled(int channels, double width)
{
    int v = (int)lround(channels * width);
    return v < 1 ? 1 : v;
}

int netspec_preset(const char *name, double width, netspec *spec,
                    tfq_error *e)
{
    const int *ch;
    static const int reference[] = {16, 32, 48, 48, 32, 128, 128};
    static const int wide[] = {32, 64, 96, 96, 64, 256, 256};
    static const int caffenet[] = {96, 256, 384, 384, 256, 4096, 4096};
    if (!(width > 0.0 && width <= 64.0))
        return tfq_error_set(e, TFQ_EINVAL, "net width %g is not in (0, 64]",
                             width);
    if (strcmp(name, "reference") == 0)
        ch = reference;
    else if (strcmp(name, "wide") == 0)
        ch = wide;
    else if (strcmp(name, "caffenet") == 0)
        ch = caffenet;
    else
        return tfq_error_set(e, TFQ_EINVAL,
                             "unknown net preset '%s' (expected reference, "
                             "wide or caffenet)", name);
    int c[7];
    for (int i = 0; i < 7; i++)
        c[i] = scaled(ch[i], width);
    char text[NETSPEC_TEXT_BYTES];
    if (ch == caffenet)
        /* CaffeNet's layer order (pool before LRN) and its 3x3 stride-2
         * pooling; conv1 is 5x5 stride 1 instead of 11x11 stride 4 so that a
         * 32x32 image keeps a 4x4 map after pool5. */
        snprintf(text, sizeof text,
                 "conv %d 5 pad=2; relu; maxpool 3 stride=2; lrn size=5; "
                 "conv %d 5 pad=2; relu; maxpool 3 stride=2; lrn size=5; "
                 "conv %d 3 pad=1; relu; conv %d 3 pad=1; relu; "
                 "conv %d 3 pad=1; relu; maxpool 3 stride=2; "
                 "fc %d; relu; dropout 0.5; fc %d; relu; dropout 0.5; "
                 "fc classes",
                 c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
    else
        snprintf(text, sizeof text,
                 "conv %d 5 pad=2; relu; maxpool 2; "
                 "conv %d 5 pad=2; relu; maxpool 2; "
                 "conv %d 3 pad=1; relu; conv %d 3 pad=1; relu; "
                 "conv %d 3 pad=1; relu; maxpool 2; "
                 "fc %d; relu; dropout 0.5; fc %d; relu; dropout 0.5; "
                 "fc classes",
                 c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
    return netspec_parse(text, spec, e);
}

int netspec_resolve(const char *name_or_text, double width, netspec *spec,
                     tfq_error *e)
{
    if (strcmp(name_or_text, "reference") == 0 ||
        strcmp(name_or_text, "wide") == 0 ||
        strcmp(name_or_text, "caffenet") == 0)
        return netspec_preset(name_or_text, width, spec, e);
    return netspec_parse(name_or_text, spec, e);
}

int netspec_format(const netspec *spec, char *buf, size_t bytes)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < spec->nops; i++) {
        const netspec_op *o = &spec->ops[i];
        char one[128];
        switch (o->kind) {
        case NETSPEC_CONV:
            snprintf(one, sizeof one, "conv %d %d stride=%d pad=%d", o->out,
                     o->k, o->stride, o->pad);
            break;
        case NETSPEC_MAXPOOL:
            snprintf(one, sizeof one, "maxpool %d stride=%d", o->k, o->stride);
            break;
        case NETSPEC_LRN:
            snprintf(one, sizeof one, "lrn size=%d alpha=%.9g beta=%.9g k=%.9g",
                     o->size, (double)o->alpha, (double)o->beta,
                     (double)o->lrn_k);
            break;
        case NETSPEC_FC:
            if (o->out == NETSPEC_CLASSES)
                snprintf(one, sizeof one, "fc classes");
            else
                snprintf(one, sizeof one, "fc %d", o->out);
            break;
        case NETSPEC_DROPOUT:
            snprintf(one, sizeof one, "dropout %.9g", (double)o->p);
            break;
        case NETSPEC_RELU:
            snprintf(one, sizeof one, "relu");
            break;
        }
        int w = snprintf(buf + n, bytes - n, "%s%s", i ? "; " : "", one);
        if (w < 0 || (size_t)w >= bytes - n)
            return TFQ_ERANGE;
        n += (size_t)w;
    }
    return 0;
}

int netspec_learned_layers(const netspec *spec)
{
    int n = 0;
    for (int i = 0; i < spec->nops; i++)
        n += netspec_op_is_learned(spec->ops[i].kind);
    return n;
}
