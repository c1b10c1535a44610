/* Running one attempt of a job on a worker.  The worker's connection to the
 * coordinator is not seen here: progress goes out through hooks, and a
 * stop flag (SIGTERM, a cancel) ends the attempt at the next safe point. */
#ifndef TFQ_WORKER_JOB_H
#define TFQ_WORKER_JOB_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/jobspec.h"
#include "worker/engine/train.h"

/* The longest a job runs without calling the tick hook or noticing a stop
 * request. */
#define JOB_TICK_MS 20

typedef struct {
    /* After each epoch (sleep jobs: each tenth of their time). May be
     * NULL. */
    void (*progress)(void *ud, int epoch, int epochs, double loss,
                     double test_acc, double images_per_s, double eta_s);
    /* Often (at least every JOB_TICK_MS while the job runs), so the worker
     * can read its mail. May be NULL. */
    void (*tick)(void *ud);
    /* A checkpoint after epoch `epoch`: the bytes from which the job resumes
     * (job_run_sleep's resume argument).  A failing hook is logged by the
     * caller; the job goes on.  May be NULL. */
    int (*checkpoint)(void *ud, int epoch, const uint8_t *blob, size_t bytes);
    void *ud;
} job_hooks;

/* Runs a sleep job: waits s->sleep_ms in JOBSPEC_SLEEP_EPOCHS epochs, reporting
 * and checkpointing each (a job of 0 ms has no epochs), then fails with probability s->fail_prob, decided
 * by (seed, attempt) so a given attempt always ends the same way.  With a
 * resume checkpoint (NULL for none) it starts after the epoch it records.
 * Returns 0, TFQ_EINTR when *stop became non-zero (within JOB_TICK_MS),
 * TFQ_EFORMAT for a checkpoint that is not a sleep job's, or TFQ_EIO with a
 * message when the attempt failed on purpose. */
int job_run_sleep(const jobspec *s, int attempt, const uint8_t *resume,
                  size_t resume_bytes, const job_hooks *h,
                  volatile sig_atomic_t *stop, tfq_error *e);

/* The most bytes a checkpoint of this job can take: for a train job, its
 * net's parameters and momentum plus room for the rest; for a sleep job,
 * its one line.  TFQ_EINVAL when the job's net cannot be built. */
int job_ckpt_max_bytes(const jobspec *s, int64_t *bytes, tfq_error *e);

/* Whether buf is a checkpoint this job can resume from, written after
 * `epoch`: for a train job, a well-formed checkpoint (checksum included)
 * of the job's net, input shape, classes and seed, at that epoch and no
 * later than the job's last, on the job's data; for a sleep job, its line
 * with that epoch.  Returns 0 or the error naming what differs. */
int job_ckpt_check(const jobspec *s, const uint8_t *buf, size_t bytes,
                   int epoch, tfq_error *e);

/* Runs a train job on the data set in data_dir (checked against the spec's
 * fingerprint when it names one), resuming from a checkpoint of this job
 * and copying layers from the init checkpoint when given (each NULL for
 * none).  A checkpoint goes to the hook after every epoch.  On success the
 * job's result, a JSON object (final, best and top-k test accuracy, epochs,
 * the data fingerprint), is written to result.  Returns 0, TFQ_EINTR when
 * stopped (after the current step, whose state then goes to the checkpoint
 * hook, labelled with the epochs completed), or the error that ended it. */
int job_run_train(const jobspec *s, const char *data_dir,
                  const uint8_t *resume, size_t resume_bytes,
                  const uint8_t *init, size_t init_bytes, const job_hooks *h,
                  volatile sig_atomic_t *stop, char *result,
                  size_t result_bytes, tfq_error *e);

/* The trainer configuration of a train job (init_path left NULL: the caller
 * resolves `init` to a file). */
int job_train_config(const jobspec *s, train_config *cfg, tfq_error *e);

/* Registers job_ckpt_max_bytes, job_ckpt_check and the engine's net check
 * with the job spec parser (common/jobspec.h), for every layer that checks
 * jobs.  Call it once before parsing a job. */
void job_engine_register(void);

#endif
