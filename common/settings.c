#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"

/* Defaults of the settings the trainer holds as float are written as
 * floats: a job's canonical text, and so its identity, has always carried
 * them as the float's exact value (lr = 0.0099999997764825821). */
#define S(id, name, type, lo, hi, def, grid, help) \
    [id] = {name, type, lo, hi, def, grid, help, NULL, NULL}
/* An enumerated setting: one of words, the first the default. */
#define SE(id, name, words, nwords, grid_key, help) \
    [id] = {name, SETTING_ENUM, 0, (nwords) - 1, 0, 1, help, words, grid_key}

static const char *const s_weight_inits[WEIGHT_INIT_COUNT + 1] = {
    [WEIGHT_INIT_HE] = "he",
    [WEIGHT_INIT_CAFFE] = "caffe",
    [WEIGHT_INIT_TORCH] = "torch",
    [WEIGHT_INIT_COUNT] = NULL,
};

const setting settings_table[SETTING_COUNT] = {
    S(SETTING_SEED, "seed", SETTING_U64, 0, 0, 1, 0,
      "seed of every random draw"),
    S(SETTING_EPOCHS, "epochs", SETTING_INT, 1, SETTINGS_MAX_EPOCHS, 10, 1,
      "passes over the training set"),
    S(SETTING_BATCH, "batch", SETTING_INT, 1, 65536, 64, 1,
      "images per SGD step"),
    S(SETTING_TOPK, "topk", SETTING_INT, 1, SETTINGS_MAX_EPOCHS,
      METRIC_DEFAULT_K, 0,
      "accuracy: mean of the k best test evaluations"),
    S(SETTING_LR, "lr", SETTING_DOUBLE, 1e-9, 10, (double)0.01f, 1,
      "learning rate"),
    S(SETTING_MOMENTUM, "momentum", SETTING_DOUBLE, 0, 0.999, (double)0.9f, 1,
      "SGD momentum"),
    S(SETTING_WEIGHT_DECAY, "weight_decay", SETTING_DOUBLE, 0, 0.5, (double)5e-4f, 1,
      "L2 weight decay"),
    S(SETTING_LR_STEP, "lr_step", SETTING_DOUBLE, 0, 1, (double)0.75f, 1,
      "fraction of the epochs after which lr is multiplied by lr_gamma"),
    S(SETTING_LR_GAMMA, "lr_gamma", SETTING_DOUBLE, 1e-6, 1, (double)0.1f, 1,
      "lr multiplier at lr_step"),
    S(SETTING_BIAS_LR_MULT, "bias_lr_mult", SETTING_DOUBLE, 0, 100, 2, 1,
      "biases' lr multiplier, as Caffe"),
    S(SETTING_BIAS_DECAY_MULT, "bias_decay_mult", SETTING_DOUBLE, 0, 100, 0, 1,
      "biases' weight decay multiplier, as Caffe"),
    S(SETTING_CACHE_MB, "cache_mb", SETTING_INT, 0, 1 << 20, 96, 1,
      "MiB for caching the frozen layers' output; 0: no cache"),
    S(SETTING_CKPT_EVERY, "ckpt_every", SETTING_INT, 1, 1000000, 1, 1,
      "checkpoint every N epochs (and after the last)"),
    S(SETTING_LIMIT_TRAIN, "limit_train", SETTING_INT, 0, 1 << 30, 0, 0,
      "use only the first N training images; 0: all"),
    S(SETTING_LIMIT_TEST, "limit_test", SETTING_INT, 0, 1 << 30, 0, 0,
      "use only the first N test images; 0: all"),
    S(SETTING_COPY, "copy", SETTING_INT, 0, SETTINGS_MAX_LAYERS, 0, 0,
      "copy learned layers 1..N from the init checkpoint"),
    S(SETTING_FREEZE, "freeze", SETTING_INT, 0, SETTINGS_MAX_LAYERS, 0, 0,
      "freeze learned layers 1..N (no update, no decay)"),
    /* A grid's train: says init: (the job spec's init is the checkpoint a
     * transfer job copies from). */
    SE(SETTING_WEIGHT_INIT, "weight_init", s_weight_inits, WEIGHT_INIT_COUNT,
       "init", "first weights: he, caffe or torch"),
};

const setting *settings_find(const char *name)
{
    for (int i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings_table[i].name, name) == 0)
            return &settings_table[i];
    return NULL;
}

const char *settings_grid_key(const setting *s)
{
    return s->grid_key != NULL ? s->grid_key : s->name;
}

const setting *settings_find_grid(const char *key)
{
    for (int i = 0; i < SETTING_COUNT; i++)
        if (settings_table[i].grid &&
            strcmp(settings_grid_key(&settings_table[i]), key) == 0)
            return &settings_table[i];
    return NULL;
}

void settings_grid_keys(const char *keys[SETTING_COUNT + 1])
{
    int n = 0;
    for (int i = 0; i < SETTING_COUNT; i++)
        if (settings_table[i].grid)
            keys[n++] = settings_grid_key(&settings_table[i]);
    keys[n] = NULL;
}

const char *settings_word(const setting *s, double v)
{
    if (s->type != SETTING_ENUM || !settings_valid(s, v))
        return "?";
    return s->words[(int)v];
}

void settings_format(const setting *s, double v, char *buf, size_t bytes)
{
    if (s->type == SETTING_ENUM) {
        snprintf(buf, bytes, "%s", settings_word(s, v));
        return;
    }
    if (s->type != SETTING_DOUBLE) {
        snprintf(buf, bytes, "%.0f", v);
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, bytes, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

int settings_valid(const setting *s, double v)
{
    if (s->type == SETTING_U64)
        return v >= 0 && v == floor(v);
    if (!(v >= s->lo && v <= s->hi))
        return 0;
    return s->type == SETTING_DOUBLE || v == floor(v);
}

void settings_words(const setting *s, char *buf, size_t bytes)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; s->words != NULL && s->words[i] != NULL && off < bytes;
         i++)
        off += (size_t)snprintf(buf + off, bytes - off, "%s%s",
                                i ? ", " : "", s->words[i]);
}

/* "what: bad value 'x': expected one of he, caffe, torch". */
static int enum_error(const setting *s, const char *what, const char *text,
                      tfq_error *e)
{
    char list[256];
    settings_words(s, list, sizeof list);
    return tfq_error_set(e, TFQ_EINVAL, "%s: bad value '%.64s': expected "
                         "one of %s", what, text, list);
}

int settings_parse(const setting *s, const char *what, const char *text,
                   double *out, tfq_error *e)
{
    char *end;
    errno = 0;
    switch (s->type) {
    case SETTING_INT: {
        long long x = strtoll(text, &end, 10);
        if (errno || end == text || *end || x < s->lo || x > s->hi)
            return tfq_error_set(e, TFQ_EINVAL, "%s: bad value '%.64s': "
                                 "expected an integer from %.0f to %.0f",
                                 what, text, s->lo, s->hi);
        *out = (double)x;
        return 0;
    }
    case SETTING_DOUBLE: {
        double x = strtod(text, &end);
        if (errno || end == text || *end || !(x >= s->lo && x <= s->hi))
            return tfq_error_set(e, TFQ_EINVAL, "%s: bad value '%.64s': "
                                 "expected a number from %g to %g", what,
                                 text, s->lo, s->hi);
        *out = x;
        return 0;
    }
    case SETTING_ENUM:
        for (int i = 0; s->words[i] != NULL; i++)
            if (strcmp(s->words[i], text) == 0) {
                *out = i;
                return 0;
            }
        return enum_error(s, what, text, e);
    case SETTING_U64:
        break;
    }
    uint64_t u;
    int rc = settings_parse_u64(what, text, &u, e);
    *out = (double)u;
    return rc;
}

int settings_parse_u64(const char *what, const char *text, uint64_t *out,
                       tfq_error *e)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-')
        return tfq_error_set(e, TFQ_EINVAL, "%s: bad value '%.64s': expected "
                             "a non-negative integer", what, text);
    *out = (uint64_t)x;
    return 0;
}
