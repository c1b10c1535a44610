#include "settings.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"

/* Defaults of the settings the trainer holds as float are written as
 * floats: a job's canonical text, and so its identity, has always carried
 * them as the float's exact value (lr = 0.0099999997764825821). */
#define S(id, name, type, lo, hi, def, grid, help) \
    [id] = {name, type, lo, hi, def, grid, help}

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
};

const setting *settings_find(const char *name)
{
    for (int i = 0; i < SETTING_COUNT; i++)
        if (strcmp(settings_table[i].name, name) == 0)
            return &settings_table[i];
    return NULL;
}

void settings_grid_keys(const char *keys[SETTING_COUNT + 1])
{
    int n = 0;
    for (int i = 0; i < SETTING_COUNT; i++)
        if (settings_table[i].grid)
            keys[n++] = settings_table[i].name;
    keys[n] = NULL;
}

int settings_valid(const setting *s, double v)
{
    if (s->type == SETTING_U64)
        return v >= 0 && v == floor(v);
    if (!(v >= s->lo && v <= s->hi))
        return 0;
    return s->type == SETTING_DOUBLE || v == floor(v);
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
