/* A job's full configuration as canonical text: one "key = value" line per
 * setting, keys in a fixed order, numbers printed exactly.  The same text
 * travels to workers, is stored by the coordinator, and hashes to the job's
 * identity, so two jobs with the same configuration are the same job.
 *
 *   kind = train
 *   dataset = fashion-mnist
 *   classes = 0,2,3,4,6
 *   net = conv 16 5 stride=1 pad=2; relu; ...; fc classes
 *   epochs = 10
 *   ...
 *
 * Parsing is strict: an unknown key, a repeated key, a value of the wrong
 * kind or out of range is an error naming the line and the key. */
#ifndef TFQ_COMMON_JOBSPEC_H
#define TFQ_COMMON_JOBSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hash.h"
#include "netspec.h"

#define JOBSPEC_TEXT_BYTES 8192
#define JOBSPEC_MAX_CLASSES 256

/* Epochs of a sleep job: its time is cut into this many, each reported and
 * checkpointed like a training epoch. */
#define JOBSPEC_SLEEP_EPOCHS 10

typedef enum {
    JOBSPEC_TRAIN = 0, /* train one net (train.h) */
    JOBSPEC_SLEEP = 1, /* wait, then succeed or fail: exercises the queue */
} jobspec_kind;

typedef struct {
    jobspec_kind kind;
    uint64_t seed;
    /* sleep */
    int ckpt_every;    /* checkpoint every N epochs (and after the last) */
    int64_t sleep_ms;  /* how long the job takes */
    double fail_prob;  /* chance in [0, 1] that an attempt fails */
    /* train: data */
    char dataset[32];                  /* data_kind name, e.g. fashion-mnist */
    char fingerprint[HASH_HEX_BYTES];  /* expected data fingerprint, or "" */
    int classes[JOBSPEC_MAX_CLASSES];  /* kept classes, relabelled in order */
    int nclasses;                      /* 0: all */
    int limit_train, limit_test;       /* use only the first N images; 0:
                                          all */
    /* train: net and training (train_config's meaning and ranges) */
    char net[NETSPEC_TEXT_BYTES];     /* canonical net description */
    int epochs, batch, topk;
    double lr, momentum, weight_decay, lr_step, lr_gamma;
    double bias_lr_mult, bias_decay_mult;
    int weight_init;           /* weight_init (common/settings.h); its
                                  default he is left out of the text */
    /* train: transfer */
    char init[HASH_HEX_BYTES]; /* SHA-256 of the checkpoint to copy from;
                                  "" when the queue supplies it (a job file's
                                  init_from) */
    int copy_layers, freeze_layers;
    int cache_mb;
} jobspec;

/* A train job with tfq train's defaults (reference net, all classes). */
void jobspec_default_train(jobspec *s);

/* A sleep job of ms milliseconds that never fails. */
void jobspec_default_sleep(jobspec *s, int64_t ms);

/* The input shape and class count of a train job's net, as the worker
 * builds it: its data set's images (28x28 grey for IDX files, 32x32 colour
 * for CIFAR) and kept classes.  -1 for an unknown data set kind. */
int jobspec_net_input(const jobspec *s, netspec_shape *in, int *classes);

/* Parses text; keys not given keep the defaults of the kind named by the
 * "kind" line, which must come first.  A train job's net is then checked
 * with the registered engine's net_check (without one, only its text). */
int jobspec_parse(const char *text, jobspec *s, tfq_error *e);

/* The same parse fed one line at a time, for a caller that reads the lines
 * out of a larger text (a job file) and names them by its own line
 * numbers.  init starts it into s (not owned); line parses one line (blank
 * and '#' lines are skipped; line is changed in place) and returns 0 or
 * TFQ_EINVAL with a message about that line that does not give its number:
 * the caller says where the line is; end checks what needs the whole spec
 * (a 'kind' line, the train job's net). */
typedef struct {
    jobspec *s;
    unsigned char seen[32]; /* how often each key was given */
    int have_kind;
} jobspec_parser;

void jobspec_parser_init(jobspec_parser *p, jobspec *s);
int jobspec_parser_line(jobspec_parser *p, char *line, tfq_error *e);
int jobspec_parser_end(jobspec_parser *p, tfq_error *e);

/* The canonical text (only the kind's keys).  Returns 0, or TFQ_ERANGE when
 * bytes is too small. */
int jobspec_format(const jobspec *s, char *buf, size_t bytes);

/* SHA-256 of the canonical text, as hex. */
int jobspec_identity(const jobspec *s, char out[HASH_HEX_BYTES]);

/* What only the training engine knows of a job, for the layers that check
 * jobs without training them (the coordinator, `tfq submit`).  The program
 * registers worker/job.c's (job_engine_register) before it parses a job;
 * common and the coordinator do not link the engine. */
typedef struct {
    /* 0 when a worker can build the train job's net (layer and arena
     * sizes), else TFQ_EINVAL naming the operation. */
    int (*net_check)(const jobspec *s, tfq_error *e);
    /* The most bytes a checkpoint of the job can take. */
    int (*ckpt_max_bytes)(const jobspec *s, int64_t *bytes, tfq_error *e);
    /* 0 when buf is a checkpoint of the job written after `epoch`, else
     * the error naming what differs. */
    int (*ckpt_check)(const jobspec *s, const uint8_t *buf, size_t bytes,
                      int epoch, tfq_error *e);
} jobspec_engine;

/* Registers the engine's checks (kept by pointer: a static table). */
void jobspec_set_engine(const jobspec_engine *eng);

/* The registered checks, or NULL when none were. */
const jobspec_engine *jobspec_get_engine(void);

#endif
