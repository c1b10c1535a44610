#include "jobspec.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_kind.h"
#include "settings.h"
#include "text.h"

typedef enum { V_KIND, V_INT, V_I64, V_U64, V_DBL, V_STR, V_HEX, V_NET,
               V_CLASSES, V_ENUM } vtype;

#define FOR_TRAIN 1u
#define FOR_SLEEP 2u

/* One key: where it lives in jobspec, its type, its range (a training
 * setting's is in common/settings.h), and which job kinds have it.
 * Canonical text lists keys in this order. */
typedef struct {
    const char *key;
    vtype type;
    size_t off;
    size_t bytes; /* for strings */
    double lo, hi;
    int setting;  /* its setting_id, or -1 */
    unsigned kinds;
} field;

#define F(key, type, member, lo, hi, kinds)                                   \
    {key, type, offsetof(jobspec, member),                                    \
     sizeof(((jobspec *)0)->member), lo, hi, -1, kinds}
/* A training setting: range and default from the settings table. */
#define FS(type, member, id, kinds)                                           \
    {NULL, type, offsetof(jobspec, member),                                   \
     sizeof(((jobspec *)0)->member), 0, 0, id, kinds}

static const field s_fields[] = {
    F("kind", V_KIND, kind, 0, 0, FOR_TRAIN | FOR_SLEEP),
    FS(V_U64, seed, SETTING_SEED, FOR_TRAIN | FOR_SLEEP),
    FS(V_INT, ckpt_every, SETTING_CKPT_EVERY, FOR_TRAIN | FOR_SLEEP),
    F("sleep_ms", V_I64, sleep_ms, 0, 1e9, FOR_SLEEP),
    F("fail_prob", V_DBL, fail_prob, 0, 1, FOR_SLEEP),
    F("dataset", V_STR, dataset, 0, 0, FOR_TRAIN),
    F("fingerprint", V_HEX, fingerprint, 0, 0, FOR_TRAIN),
    F("classes", V_CLASSES, classes, 0, 0, FOR_TRAIN),
    FS(V_INT, limit_train, SETTING_LIMIT_TRAIN, FOR_TRAIN),
    FS(V_INT, limit_test, SETTING_LIMIT_TEST, FOR_TRAIN),
    F("net", V_NET, net, 0, 0, FOR_TRAIN),
    FS(V_INT, epochs, SETTING_EPOCHS, FOR_TRAIN),
    FS(V_INT, batch, SETTING_BATCH, FOR_TRAIN),
    FS(V_INT, topk, SETTING_TOPK, FOR_TRAIN),
    FS(V_DBL, lr, SETTING_LR, FOR_TRAIN),
    FS(V_DBL, momentum, SETTING_MOMENTUM, FOR_TRAIN),
    FS(V_DBL, weight_decay, SETTING_WEIGHT_DECAY, FOR_TRAIN),
    FS(V_DBL, lr_step, SETTING_LR_STEP, FOR_TRAIN),
    FS(V_DBL, lr_gamma, SETTING_LR_GAMMA, FOR_TRAIN),
    FS(V_DBL, bias_lr_mult, SETTING_BIAS_LR_MULT, FOR_TRAIN),
    FS(V_DBL, bias_decay_mult, SETTING_BIAS_DECAY_MULT, FOR_TRAIN),
    /* Left out of the canonical text at its default (he), so the jobs of
     * before it existed keep their identity. */
    FS(V_ENUM, weight_init, SETTING_WEIGHT_INIT, FOR_TRAIN),
    F("init", V_HEX, init, 0, 0, FOR_TRAIN),
    FS(V_INT, copy_layers, SETTING_COPY, FOR_TRAIN),
    FS(V_INT, freeze_layers, SETTING_FREEZE, FOR_TRAIN),
    FS(V_INT, cache_mb, SETTING_CACHE_MB, FOR_TRAIN),
};

#define NFIELDS (sizeof s_fields / sizeof s_fields[0])

/* A field's key and range: its own, or its setting's. */
static const char *field_key(const field *f)
{
    return f->setting >= 0 ? settings_table[f->setting].name : f->key;
}

static double field_lo(const field *f)
{
    return f->setting >= 0 ? settings_table[f->setting].lo : f->lo;
}

static double field_hi(const field *f)
{
    return f->setting >= 0 ? settings_table[f->setting].hi : f->hi;
}

static unsigned kind_bit(jobspec_kind k)
{
    return k == JOBSPEC_SLEEP ? FOR_SLEEP : FOR_TRAIN;
}

void jobspec_default_train(jobspec *s)
{
    const setting *t = settings_table;
    memset(s, 0, sizeof *s);
    s->kind = JOBSPEC_TRAIN;
    s->seed = (uint64_t)t[SETTING_SEED].def;
    s->ckpt_every = (int)t[SETTING_CKPT_EVERY].def;
    snprintf(s->dataset, sizeof s->dataset, "fashion-mnist");
    netspec spec;
    netspec_preset("reference", 1.0, &spec, NULL);
    netspec_format(&spec, s->net, sizeof s->net);
    s->epochs = (int)t[SETTING_EPOCHS].def;
    s->batch = (int)t[SETTING_BATCH].def;
    s->topk = (int)t[SETTING_TOPK].def;
    s->lr = t[SETTING_LR].def;
    s->momentum = t[SETTING_MOMENTUM].def;
    s->weight_decay = t[SETTING_WEIGHT_DECAY].def;
    s->lr_step = t[SETTING_LR_STEP].def;
    s->lr_gamma = t[SETTING_LR_GAMMA].def;
    s->bias_lr_mult = t[SETTING_BIAS_LR_MULT].def;
    s->bias_decay_mult = t[SETTING_BIAS_DECAY_MULT].def;
    s->cache_mb = (int)t[SETTING_CACHE_MB].def;
}

void jobspec_default_sleep(jobspec *s, int64_t ms)
{
    memset(s, 0, sizeof *s);
    s->kind = JOBSPEC_SLEEP;
    s->sleep_ms = ms;
    s->ckpt_every = 1;
}

/* ---- parsing ------------------------------------------------------------ */

static int parse_classes(const char *v, jobspec *s)
{
    char buf[JOBSPEC_MAX_CLASSES * 4 + 8];
    if (strlen(v) >= sizeof buf)
        return -1;
    strcpy(buf, v);
    s->nclasses = 0;
    if (strcmp(buf, "all") == 0)
        return 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        long c = strtol(text_trim(t), &end, 10);
        if (errno || *end || end == t || c < 0 || c > 255 ||
            s->nclasses == JOBSPEC_MAX_CLASSES)
            return -1;
        for (int i = 0; i < s->nclasses; i++)
            if (s->classes[i] == c)
                return -1;
        s->classes[s->nclasses++] = (int)c;
    }
    return s->nclasses >= 2 ? 0 : -1;
}

static int is_hex64(const char *v)
{
    if (strlen(v) != HASH_HEX_BYTES - 1)
        return 0;
    for (const char *p = v; *p; p++)
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            return 0;
    return 1;
}

/* Sets field f of s from text v; returns 0 or -1 with why filled in. */
static int set_field(const field *f, const char *v, jobspec *s,
                     char *why, size_t whylen)
{
    char *p = (char *)s + f->off;
    char *end;
    errno = 0;
    switch (f->type) {
    case V_KIND:
        if (strcmp(v, "train") == 0)
            *(jobspec_kind *)(void *)p = JOBSPEC_TRAIN;
        else if (strcmp(v, "sleep") == 0)
            *(jobspec_kind *)(void *)p = JOBSPEC_SLEEP;
        else {
            snprintf(why, whylen, "expected train or sleep");
            return -1;
        }
        return 0;
    case V_INT:
    case V_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < field_lo(f) || x > field_hi(f)) {
            snprintf(why, whylen, "expected an integer from %.0f to %.0f",
                     field_lo(f), field_hi(f));
            return -1;
        }
        if (f->type == V_INT)
            *(int *)(void *)p = (int)x;
        else
            *(int64_t *)(void *)p = (int64_t)x;
        return 0;
    }
    case V_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-') {
            snprintf(why, whylen, "expected a non-negative integer");
            return -1;
        }
        *(uint64_t *)(void *)p = (uint64_t)x;
        return 0;
    }
    case V_DBL: {
        double x = strtod(v, &end);
        if (errno || end == v || *end ||
            !(x >= field_lo(f) && x <= field_hi(f))) {
            snprintf(why, whylen, "expected a number from %g to %g",
                     field_lo(f), field_hi(f));
            return -1;
        }
        *(double *)(void *)p = x;
        return 0;
    }
    case V_STR: {
        data_kind dk;
        if (strlen(v) >= f->bytes || data_kind_parse(v, &dk) != 0) {
            snprintf(why, whylen, "unknown data set kind");
            return -1;
        }
        strcpy(p, v);
        return 0;
    }
    case V_HEX:
        if (v[0] != '\0' && !is_hex64(v)) {
            snprintf(why, whylen, "expected 64 lower-case hex digits");
            return -1;
        }
        snprintf(p, f->bytes, "%s", v);
        return 0;
    case V_NET: {
        netspec spec;
        tfq_error ne = {0};
        if (netspec_resolve(v, 1.0, &spec, &ne) != 0) {
            snprintf(why, whylen, "%.200s", ne.msg);
            return -1;
        }
        netspec_format(&spec, p, f->bytes);
        return 0;
    }
    case V_ENUM: {
        const setting *st = &settings_table[f->setting];
        double x;
        if (settings_parse(st, "", v, &x, NULL) != 0) {
            char words[128];
            settings_words(st, words, sizeof words);
            snprintf(why, whylen, "expected one of %s", words);
            return -1;
        }
        *(int *)(void *)p = (int)x;
        return 0;
    }
    case V_CLASSES:
        if (parse_classes(v, s) != 0) {
            snprintf(why, whylen, "expected 'all' or at least two distinct "
                     "class numbers 0..255 separated by commas");
            return -1;
        }
        return 0;
    }
    return -1;
}

/* The input shape is the data set's (28x28 grey for IDX files, 32x32
 * colour for CIFAR). */
int jobspec_net_input(const jobspec *s, netspec_shape *in, int *classes)
{
    data_kind kind;
    if (data_kind_parse(s->dataset, &kind) != 0)
        return -1;
    *in = kind == DATA_KIND_IDX ? (netspec_shape){1, 28, 28} : (netspec_shape){3, 32, 32};
    *classes = s->nclasses > 0 ? s->nclasses
               : kind == DATA_KIND_CIFAR100 ? 20 : 10;
    return 0;
}

static const jobspec_engine *s_engine;

void jobspec_set_engine(const jobspec_engine *eng)
{
    s_engine = eng;
}

const jobspec_engine *jobspec_get_engine(void)
{
    return s_engine;
}

static int check_net_size(const jobspec *s, tfq_error *e)
{
    return s_engine != NULL ? s_engine->net_check(s, e) : 0;
}

_Static_assert(NFIELDS <= sizeof ((jobspec_parser *)0)->seen,
               "jobspec_parser.seen holds a count for every key");

void jobspec_parser_init(jobspec_parser *p, jobspec *s)
{
    memset(p, 0, sizeof *p);
    p->s = s;
}

int jobspec_parser_line(jobspec_parser *p, char *line, tfq_error *e)
{
    jobspec *s = p->s;
    char *l = text_trim(line);
    if (*l == '\0' || *l == '#')
        return 0;
    char *eq = strchr(l, '=');
    if (eq == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "expected 'key = value'");
    *eq = '\0';
    char *key = text_trim(l), *val = text_trim(eq + 1);
    size_t i;
    for (i = 0; i < NFIELDS; i++)
        if (strcmp(key, field_key(&s_fields[i])) == 0)
            break;
    if (i == NFIELDS)
        return tfq_error_set(e, TFQ_EINVAL, "unknown key '%s'", key);
    if (p->seen[i]++)
        return tfq_error_set(e, TFQ_EINVAL, "'%s' given twice", key);
    if (s_fields[i].type == V_KIND) {
        jobspec fresh;
        if (strcmp(val, "sleep") == 0)
            jobspec_default_sleep(&fresh, 0);
        else
            jobspec_default_train(&fresh);
        *s = fresh;
        p->have_kind = 1;
    } else if (!p->have_kind) {
        return tfq_error_set(e, TFQ_EINVAL, "'kind' must come first");
    } else if (!(s_fields[i].kinds & kind_bit(s->kind))) {
        return tfq_error_set(e, TFQ_EINVAL, "'%s' does not apply to a %s job",
                             key, s->kind == JOBSPEC_SLEEP ? "sleep" : "train");
    }
    char why[TFQ_ERROR_MSG_BYTES / 2];
    if (set_field(&s_fields[i], val, s, why, sizeof why) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "%s: bad value '%.64s': %s", key,
                             val, why);
    return 0;
}

int jobspec_parser_end(jobspec_parser *p, tfq_error *e)
{
    if (!p->have_kind)
        return tfq_error_set(e, TFQ_EINVAL, "job spec has no 'kind' line");
    return p->s->kind == JOBSPEC_TRAIN ? check_net_size(p->s, e) : 0;
}

int jobspec_parse(const char *text, jobspec *s, tfq_error *e)
{
    if (strlen(text) >= JOBSPEC_TEXT_BYTES)
        return tfq_error_set(e, TFQ_EINVAL, "job spec longer than %d bytes",
                             JOBSPEC_TEXT_BYTES);
    char buf[JOBSPEC_TEXT_BYTES];
    strcpy(buf, text);
    jobspec_parser p;
    jobspec_parser_init(&p, s);
    char *rest = buf, *line;
    for (int lineno = 1; (line = text_next_line(&rest)) != NULL; lineno++) {
        int rc = jobspec_parser_line(&p, line, e);
        if (rc != 0)
            return tfq_error_wrap(e, rc, "job spec line %d", lineno);
    }
    return jobspec_parser_end(&p, e);
}

/* ---- formatting --------------------------------------------------------- */

static int format_value(const field *f, const jobspec *s, char *out,
                        size_t bytes)
{
    const char *p = (const char *)s + f->off;
    switch (f->type) {
    case V_KIND:
        return snprintf(out, bytes, "%s",
                        s->kind == JOBSPEC_SLEEP ? "sleep" : "train");
    case V_INT:
        return snprintf(out, bytes, "%d", *(const int *)(const void *)p);
    case V_ENUM:
        return snprintf(out, bytes, "%s",
                        settings_word(&settings_table[f->setting],
                                      *(const int *)(const void *)p));
    case V_I64:
        return snprintf(out, bytes, "%lld",
                        (long long)*(const int64_t *)(const void *)p);
    case V_U64:
        return snprintf(out, bytes, "%llu",
                        (unsigned long long)*(const uint64_t *)(const void *)p);
    case V_DBL:
        /* 17 significant digits: the text parses back to the same double */
        return snprintf(out, bytes, "%.17g", *(const double *)(const void *)p);
    case V_STR:
    case V_HEX:
    case V_NET:
        return snprintf(out, bytes, "%s", p);
    case V_CLASSES: {
        if (s->nclasses == 0)
            return snprintf(out, bytes, "all");
        size_t n = 0;
        for (int i = 0; i < s->nclasses; i++) {
            int w = snprintf(out + n, bytes - n, "%s%d", i ? "," : "",
                             s->classes[i]);
            if (w < 0 || (size_t)w >= bytes - n)
                return -1;
            n += (size_t)w;
        }
        return (int)n;
    }
    }
    return -1;
}

/* An enumerated setting at its default is not written: a setting added
 * later leaves the identity of every job that does not use it as it was. */
static int at_default(const field *f, const jobspec *s)
{
    return f->type == V_ENUM &&
           *(const int *)(const void *)((const char *)s + f->off) ==
               (int)settings_table[f->setting].def;
}

int jobspec_format(const jobspec *s, char *buf, size_t bytes)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &s_fields[i];
        if (!(f->kinds & kind_bit(s->kind)) || at_default(f, s))
            continue;
        int w = snprintf(buf + n, bytes - n, "%s = ", field_key(f));
        if (w < 0 || (size_t)w >= bytes - n)
            return TFQ_ERANGE;
        n += (size_t)w;
        w = format_value(f, s, buf + n, bytes - n);
        if (w < 0 || (size_t)w + 1 >= bytes - n)
            return TFQ_ERANGE;
        n += (size_t)w;
        buf[n++] = '\n';
        buf[n] = '\0';
    }
    return 0;
}

int jobspec_identity(const jobspec *s, char out[HASH_HEX_BYTES])
{
    char text[JOBSPEC_TEXT_BYTES];
    int rc = jobspec_format(s, text, sizeof text);
    if (rc != 0)
        return rc;
    uint8_t digest[HASH_BYTES];
    hash_sha256(text, strlen(text), digest);
    hash_hex(digest, out);
    return 0;
}
