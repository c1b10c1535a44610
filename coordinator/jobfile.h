/* The job file `tfq submit` takes until grid files exist: jobs separated by
 * lines of "---", each a job spec (common/jobspec.h) plus two keys of its
 * own:
 *
 *   name = baseA            # required, unique in the file
 *   after = base1, base2    # optional: jobs that must succeed first
 *   init_from = baseB       # optional: copy layers from that job's final
 *                           # checkpoint (implies after = baseB)
 *   max_attempts = 5        # optional: attempts before it fails (3)
 *   split = random0         # optional grid coordinates, for reports:
 *   similarity = random     #   split, similarity, target, variant (words)
 *   target = B              #   and n, finetune (numbers); the seed is the
 *   n = 3                   #   spec's
 *   variant = transfer
 *   finetune = 1
 *   sweep = lr=0.01/init=he # optional: the swept settings' values (a
 *                           #   grid's train: lists), KEY=VALUE joined by /
 *   kind = sleep
 *   sleep_ms = 200
 *   ---
 *   name = ...
 *
 * Errors name the line of the file, as an editor numbers it (blank lines,
 * comments and CRLF line ends count), also for an error in a job's spec
 * lines: "line 7: job 'a': unknown key 'frob'". */
#ifndef TFQ_COORDINATOR_JOBFILE_H
#define TFQ_COORDINATOR_JOBFILE_H

#include "common/err.h"
#include "common/jobspec.h"

#define JOBFILE_NAME_BYTES 128
#define JOBFILE_MAX_AFTER 16
#define JOBFILE_WORD_BYTES 32
#define JOBFILE_SWEEP_BYTES 128

typedef struct {
    char name[JOBFILE_NAME_BYTES];
    int after[JOBFILE_MAX_AFTER]; /* indexes of earlier-or-later jobs */
    int nafter;
    int init_from;                 /* index of the job whose final
                                      checkpoint it copies, or -1 */
    int depth;                     /* longest chain of jobs waiting on it */
    int max_attempts;              /* 0: the queue's default */
    /* grid coordinates; "" and -1 when absent */
    char split[JOBFILE_WORD_BYTES], similarity[JOBFILE_WORD_BYTES];
    char target[JOBFILE_WORD_BYTES], variant[JOBFILE_WORD_BYTES];
    int n, finetune;
    char sweep[JOBFILE_SWEEP_BYTES]; /* "lr=0.01/init=he", or "" */
    jobspec spec;
    char *text;                    /* canonical spec text (owned) */
    char identity[HASH_HEX_BYTES]; /* hash of the canonical text and, for
                                      a transfer job, its source's identity */
} jobfile_job;

typedef struct {
    jobfile_job *jobs;
    int njobs;
    int *order; /* job indexes, deepest first: each job comes after the
                   jobs it waits on, its source included */
} jobfile;

/* Parses text into f (owned; jobfile_release frees it).  Checks names,
 * references and that dependencies form no cycle; computes each job's
 * depth so the queue can run the critical path first. */
int jobfile_parse(const char *text, jobfile *f, tfq_error *e);
void jobfile_release(jobfile *f);

#endif
