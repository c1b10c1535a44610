/* Grid files: the experiment of Yosinski et al. (2014) in a few lines of
 * YAML, expanded into the job file the queue runs (jobfile.h).
 *
 *   name: quick
 *   dataset: {kind: fashion-mnist, limit_train: 12000, limit_test: 2000}
 *   net: reference
 *   train: {epochs: 3}
 *   splits: {random: [1], dissimilar: false}
 *   directions: A->B
 *   layers: 1-7
 *   variants: [selffer, transfer]
 *   finetune: frozen
 *   seeds: [1]
 *   metric: final
 *
 * README.md documents every key.  Parsing is strict: an unknown key, a
 * repeated key, a value of the wrong kind or out of range, and a
 * combination that cannot be run are errors naming the line. */
#ifndef TFQ_COORDINATOR_GRIDSPEC_H
#define TFQ_COORDINATOR_GRIDSPEC_H

#include "common/err.h"
#include "common/hash.h"
#include "common/netspec.h"
#include "common/settings.h"

#define GRID_MAX_CLASSES 256
#define GRID_MAX_SPLITS 64
#define GRID_MAX_SEEDS 64
#define GRID_MAX_LAYERS 32
#define GRID_WORD_BYTES 32
/* Jobs one grid may expand to. */
#define GRID_MAX_JOBS 100000

/* Limits on a grid file's YAML, checked on libyaml's events before it
 * builds the tree.  libyaml's scanner walks its whole stack of open flow
 * collections ([ and {) for every token, and its loader every anchor for
 * each new anchor and alias: unbounded, both make a parse quadratic in the
 * file's size (a 240 KB file of nested [ took 69 s).  Within them a parse
 * is linear. */
#define GRID_MAX_DEPTH 32     /* lists and mappings inside each other; a
                                 grid file needs 5 */
#define GRID_MAX_NODES 65536  /* values, lists and mappings: 64 custom
                                 splits of 256 classes each fit */
#define GRID_MAX_ANCHORS 64   /* &name */

/* Values one swept train: key may list. */
#define GRID_MAX_SWEEP_VALUES 64
/* The longest sweep coordinate, "lr=0.01/init=caffe": it prefixes every
 * job name (at most 127 characters, jobfile.h) before SPLIT/SEED/NET. */
#define GRID_SWEEP_BYTES 80

/* A train: key given as a list: one grid coordinate, each value a
 * setting of it.  Values are canonical (settings_format: 0.010 is 0.01). */
typedef struct {
    const char *key;      /* the train: key (init), a settings table name */
    const char *spec_key; /* the job spec's key (weight_init) */
    int setting;          /* its setting_id: sweeps are in the table's
                             order, whatever the file's */
    char values[GRID_MAX_SWEEP_VALUES][GRID_WORD_BYTES];
    int nvalues;
} grid_sweep;

/* One split of the classes into task A and task B. */
typedef struct {
    char name[GRID_WORD_BYTES];       /* random0, dissimilar, or the user's */
    char similarity[GRID_WORD_BYTES]; /* random, dissimilar or custom */
    int a[GRID_MAX_CLASSES], na;
    int b[GRID_MAX_CLASSES], nb;
} grid_split;

typedef struct {
    char name[128]; /* "" when the file gives none */
    /* data */
    char dataset[GRID_WORD_BYTES]; /* data_kind name */
    char data_path[1024];          /* where submit reads it to fingerprint */
    char fingerprint[HASH_HEX_BYTES]; /* "" until known */
    int classes;                   /* classes in the data set */
    int limit_train, limit_test;   /* 0: all */
    /* net and training */
    char net[NETSPEC_TEXT_BYTES]; /* a preset name or operations */
    int learned;                   /* its learned layers */
    char train[2048];              /* "key = value" lines of the job spec */
    grid_sweep sweeps[SETTING_COUNT]; /* the train: keys given as lists */
    int nsweeps;
    /* the grid */
    grid_split splits[GRID_MAX_SPLITS];
    int nsplits;
    int a_to_b, b_to_a;            /* directions */
    int layers[GRID_MAX_LAYERS];   /* n values, ascending */
    int nlayers;
    int selffer, transfer, random; /* variants */
    int frozen, finetuned;
    int seeds[GRID_MAX_SEEDS];
    int nseeds;
    char metric[GRID_WORD_BYTES];  /* final, best, topK */
    int max_attempts;              /* 0: the queue's default */
    /* base: {A: FILE, B: FILE}: base nets trained elsewhere; [0] task A,
     * [1] task B.  A value is a file of the submitter (base_file) until
     * tfq submit rewrites it as "sha256:HEX" (base_sha, the tfq checkpoint
     * the coordinator stores under that hash). */
    int has_base;
    char base_file[2][1024];          /* "" when not given or resolved */
    char base_sha[2][HASH_HEX_BYTES]; /* "" until known */
    long base_span[2][2];             /* the value's [start, end) in the
                                         text, in characters */
} gridspec;

/* Parses and checks a grid file: one YAML document of the text's bytes,
 * without directives (%), within the limits above.  Errors read "line N:
 * key: reason"; a NUL byte is an error naming its offset.  Takes time
 * linear in bytes. */
int gridspec_parse_bytes(const char *text, size_t bytes, gridspec *g,
                         tfq_error *e);

/* gridspec_parse_bytes of a C string. */
int gridspec_parse(const char *text, gridspec *g, tfq_error *e);

/* Jobs the grid expands to. */
int gridspec_count(const gridspec *g);

/* The grid as a job file (jobfile.h), *text malloc'd: per combination of
 * the swept settings (the product of the train: lists; one when none),
 * split and seed the base nets baseA and baseB, then per direction X<-Y
 * and n the selffer XnX, XnX+, the transfer YnX, YnX+ and the random
 * control RnX, as the grid asks, each derived net copying from (and
 * waiting on) the base of its own combination.  Names read
 * SPLIT/SEED/NET, e.g. random0/1/A3B+, under the combination's coordinate
 * when there are sweeps: lr=0.01/init=caffe/random0/1/A3B+ (the job file's
 * sweep key).  g->fingerprint must be set.  With
 * base: there are no base nets: each derived net copies from its task's
 * imported checkpoint (init = base_sha), which must be known. */
int gridspec_expand(const gridspec *g, char **text, tfq_error *e);

/* text (the grid file g was parsed from) with each base: value replaced
 * by "sha256:" and g->base_sha of that task, in a new string *out; the
 * rest of the text as it was.  TFQ_EINVAL when a base it names has no
 * base_sha. */
int gridspec_base_resolved(const char *text, const gridspec *g, char **out,
                           tfq_error *e);

/* The text of a built-in grid ("quick", "paper"), or NULL. */
const char *gridspec_preset(const char *name);

/* Whether text looks like a grid file rather than a job file: its first
 * line that is not blank or a comment is a YAML "key:" line. */
int gridspec_is_grid(const char *text);

#endif
