/* The training settings of a job, in one table: the name each has as a job
 * spec key, a grid file's `train:` key and (with '-' for '_') a `tfq train`
 * option; its type, range and default; and a line of help.  Every entry
 * point checks a setting against this table, so they cannot disagree. */
#ifndef TFQ_COMMON_SETTINGS_H
#define TFQ_COMMON_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Evaluations a job records: one per epoch (the checkpoint's arrays). */
#define SETTINGS_MAX_EPOCHS 1024

/* Learned layers a net may have, and so the most copy / freeze can say. */
#define SETTINGS_MAX_LAYERS 64

typedef enum {
    SETTING_SEED = 0,
    SETTING_EPOCHS,
    SETTING_BATCH,
    SETTING_TOPK,
    SETTING_LR,
    SETTING_MOMENTUM,
    SETTING_WEIGHT_DECAY,
    SETTING_LR_STEP,
    SETTING_LR_GAMMA,
    SETTING_BIAS_LR_MULT,
    SETTING_BIAS_DECAY_MULT,
    SETTING_CACHE_MB,
    SETTING_CKPT_EVERY,
    SETTING_LIMIT_TRAIN,
    SETTING_LIMIT_TEST,
    SETTING_COPY,
    SETTING_FREEZE,
    SETTING_COUNT,
} setting_id;

typedef enum {
    SETTING_INT = 0, /* an integer in [lo, hi] */
    SETTING_U64,     /* any non-negative 64-bit integer (lo and hi unused) */
    SETTING_DOUBLE,  /* a number in [lo, hi] */
} setting_type;

typedef struct {
    const char *name;    /* job spec key, grid train: key */
    setting_type type;
    double lo, hi;       /* inclusive range */
    double def;          /* the default */
    int grid;            /* a grid's train: section may set it */
    const char *help;    /* one line for --help */
} setting;

/* The table, indexed by setting_id. */
extern const setting settings_table[SETTING_COUNT];

/* The setting called name, or NULL. */
const setting *settings_find(const char *name);

/* Parses text as a value of setting s: 0 and *out, or TFQ_EINVAL with a
 * message naming the setting, the value and the range.  what names where
 * the text came from ("--lr", "job spec line 4: lr").  A SETTING_U64 value
 * past 2^53 loses digits in a double: read those with settings_parse_u64. */
int settings_parse(const setting *s, const char *what, const char *text,
                   double *out, tfq_error *e);

/* Parses a SETTING_U64 value exactly. */
int settings_parse_u64(const char *what, const char *text, uint64_t *out,
                       tfq_error *e);

/* The names of the settings a grid's train: section may set, in the
 * table's order, then NULL. */
void settings_grid_keys(const char *keys[SETTING_COUNT + 1]);

/* Whether v is a value of s (in range, and integral for integers). */
int settings_valid(const setting *s, double v);

#endif
