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
    SETTING_WEIGHT_INIT,
    SETTING_COUNT,
} setting_id;

typedef enum {
    SETTING_INT = 0, /* an integer in [lo, hi] */
    SETTING_U64,     /* any non-negative 64-bit integer (lo and hi unused) */
    SETTING_DOUBLE,  /* a number in [lo, hi] */
    SETTING_ENUM,    /* one of the words of `words`, held as its index
                        (lo 0, hi the last index) */
} setting_type;

/* The values of weight_init, indexes of its words: how learned layers
 * draw their first weights and biases (worker/engine/net.h says each). */
typedef enum {
    WEIGHT_INIT_HE = 0, /* He-normal; the classifier N(0, 0.01^2) */
    WEIGHT_INIT_CAFFE,  /* CaffeNet's Gaussians and constant biases */
    WEIGHT_INIT_TORCH,  /* PyTorch's default for Conv2d and Linear */
    WEIGHT_INIT_COUNT,
} weight_init;

typedef struct {
    const char *name;    /* job spec key, grid train: key */
    setting_type type;
    double lo, hi;       /* inclusive range */
    double def;          /* the default */
    int grid;            /* a grid's train: section may set it */
    const char *help;    /* one line for --help */
    const char *const *words; /* SETTING_ENUM: its values, NULL-ended */
    const char *grid_key;     /* the grid's train: key when it is not name
                                 (weight_init is init:), else NULL */
} setting;

/* The table, indexed by setting_id. */
extern const setting settings_table[SETTING_COUNT];

/* The setting called name, or NULL. */
const setting *settings_find(const char *name);

/* The setting whose grid train: key is key, or NULL. */
const setting *settings_find_grid(const char *key);

/* The key of s in a grid's train: section. */
const char *settings_grid_key(const setting *s);

/* The words of a SETTING_ENUM setting, "he, caffe, torch"; "" for
 * another type. */
void settings_words(const setting *s, char *buf, size_t bytes);

/* The word of value v of a SETTING_ENUM setting ("?" when v is none). */
const char *settings_word(const setting *s, double v);

/* v as the shortest text that parses back to it: the word of an enum,
 * an integer's digits, the fewest significant digits that give the same
 * double ("0.01" for 0.010).  Two texts of one value print alike. */
void settings_format(const setting *s, double v, char *buf, size_t bytes);

/* Parses text as a value of setting s: 0 and *out, or TFQ_EINVAL with a
 * message naming the setting, the value and the range (an enum's: its
 * words).  what names where
 * the text came from ("--lr", "job spec line 4: lr").  A SETTING_U64 value
 * past 2^53 loses digits in a double: read those with settings_parse_u64. */
int settings_parse(const setting *s, const char *what, const char *text,
                   double *out, tfq_error *e);

/* Parses a SETTING_U64 value exactly. */
int settings_parse_u64(const char *what, const char *text, uint64_t *out,
                       tfq_error *e);

/* The keys a grid's train: section may set (settings_grid_key), in the
 * table's order, then NULL. */
void settings_grid_keys(const char *keys[SETTING_COUNT + 1]);

/* Whether v is a value of s (in range, and integral for integers). */
int settings_valid(const setting *s, double v);

#endif
