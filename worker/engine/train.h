/* Training one job: a net on a task's training set, evaluated on its test
 * set after every epoch, with the transfer operations of the paper.
 *
 * Determinism: every random draw (initialisation, shuffling, dropout) is a
 * function of the seed and the position in training (common/rng.h), so the
 * same config, seed and thread count, on the same kernels (the kernel set
 * and each conv pass's algorithm, which the trainer's net logs), give
 * bit-identical weights, and a run resumed from a checkpoint at any step
 * finishes exactly like an uninterrupted one. */
#ifndef TFQ_ENGINE_TRAIN_H
#define TFQ_ENGINE_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "ckpt.h"
#include "data.h"
#include "net.h"

typedef struct {
    netspec spec;
    int epochs;            /* 10 */
    int batch;             /* 64 */
    float lr;              /* 0.01 */
    float momentum;        /* 0.9 */
    float weight_decay;    /* 5e-4 */
    float lr_step_at;      /* fraction of the epochs after which lr is
                              multiplied by lr_gamma: 0.75 */
    float lr_gamma;        /* 0.1 */
    float bias_lr_mult;    /* 2, as Caffe */
    float bias_decay_mult; /* 0, as Caffe */
    uint64_t seed;
    weight_init weight_init; /* how the layers start (net_init_layers_as):
                                he */
    int topk;              /* the paper's metric: mean of the topk best test
                              evaluations; 3 */
    /* transfer */
    const char *init_path; /* checkpoint file to copy layers from, or NULL */
    const ckpt *init;      /* or one already in memory (used first) */
    int copy_layers;       /* copy learned layers 1..copy_layers from it */
    int freeze_layers;     /* learned layers 1..freeze_layers get no update;
                              without init_path they stay at their random
                              initialisation (the paper's random control) */
    size_t cache_bytes;    /* budget for caching the frozen prefix's output;
                              0 disables the cache */
} train_config;

/* Sets the training threads of this process: the engine's pool (par.h)
 * and OpenBLAS's.  Returns 0, or TFQ_ENOMEM when a thread could not be
 * started.  Nets built afterwards size their workspaces for them. */
int train_set_threads(int threads);

/* Fills cfg with the defaults above and the reference net. */
void train_config_default(train_config *cfg);

/* What one epoch reports to the progress callback. */
typedef struct {
    int epoch;          /* 1-based */
    int epochs;
    double train_loss;  /* mean over the epoch */
    double test_acc;
    double images_per_s;
    double epoch_s;
    double eta_s;
} train_progress;

typedef void (*train_progress_fn)(const train_progress *p, void *ud);

typedef struct {
    int epochs_done;
    double final_acc;
    double best_acc;
    double topk_acc;    /* mean of the topk highest evaluations */
    double final_loss;
    double seconds;
    double images_per_s; /* training images per second, all epochs */
    long cached_floats_per_image; /* 0 when the frozen prefix is not cached */
    int cache_op;        /* last operation whose output is cached, or -1 */
} train_result;

typedef struct trainer trainer;

/* Prepares a job on the given data sets (which must outlive the trainer):
 * builds the net, initialises it from cfg->seed, copies and freezes layers
 * from cfg->init_path.  norm is the data set's normalisation, computed on
 * its whole training set so that both tasks of a split see the same inputs;
 * fingerprint (may be NULL) is recorded in checkpoints.  Errors name what
 * was wrong. */
trainer *trainer_new(const train_config *cfg, const data_set *train,
                     const data_set *test, const data_norm *norm,
                     const char *fingerprint, tfq_error *e);
void trainer_destroy(trainer **t);

/* Continues from a checkpoint written by trainer_save for the same job. */
int trainer_resume(trainer *t, const char *path, tfq_error *e);

/* trainer_resume from a checkpoint in memory; `what` names it in errors. */
int trainer_resume_ckpt(trainer *t, const ckpt *c, const char *what,
                        tfq_error *e);

/* Trains until cfg->epochs are done, calling progress after each epoch
 * (may be NULL).  When *stop becomes non-zero the current step finishes and
 * TFQ_EINTR is returned; trainer_save then records the exact position.
 * save_path (may be NULL) receives a checkpoint every save_every epochs.
 * Any other failure (an evaluation out of memory, a checkpoint not written)
 * returns its error, naming the epoch or the file; nothing is recorded for
 * an epoch whose evaluation failed. */
int trainer_run(trainer *t, train_progress_fn progress, void *ud,
                volatile sig_atomic_t *stop, const char *save_path,
                int save_every, tfq_error *e);

/* Writes a checkpoint of the current state. */
int trainer_save(trainer *t, const char *path, tfq_error *e);

/* The checkpoint of the current state in memory (*buf malloc'd, the
 * caller's). */
int trainer_encode(trainer *t, uint8_t **buf, size_t *bytes, tfq_error *e);

void trainer_result_get(const trainer *t, train_result *r);
net *trainer_net(trainer *t);
const ckpt_meta *trainer_meta(const trainer *t);

/* Runs `steps` training steps on the first images of the training set and
 * returns the seconds they took (for benchmarks).  The weights change; the
 * position in training (and so the schedule) does not. */
double trainer_time_steps(trainer *t, int steps);

/* Evaluates the current net on the test set: *acc gets the accuracy, in
 * [0, 1].  Returns 0, or TFQ_ENOMEM (with *acc untouched) when the batch's
 * indexes cannot be allocated. */
int trainer_evaluate(trainer *t, double *acc, tfq_error *e);

#endif
