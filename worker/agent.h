/* The worker process's side of the protocol: it says hello, asks for jobs,
 * runs them, heartbeats while it does, reports progress and the result, and
 * hands a job back when told to stop.  It keeps nothing between jobs: kill
 * it and start another, and the coordinator requeues what it held. */
#ifndef TFQ_WORKER_AGENT_H
#define TFQ_WORKER_AGENT_H

#include <signal.h>

#include "common/err.h"

/* A request the coordinator does not answer within this long counts as a
 * lost connection: the worker reconnects, backing off from
 * AGENT_BACKOFF_MIN_MS doubling to AGENT_BACKOFF_MAX_MS. */
#define AGENT_REPLY_TIMEOUT_MS 5000
#define AGENT_BACKOFF_MIN_MS 100
#define AGENT_BACKOFF_MAX_MS 5000

typedef struct {
    const char *connect; /* coordinator endpoint, e.g. tcp://127.0.0.1:5555 */
    const char *name;    /* worker name; NULL: host-pid */
    int threads;         /* training threads */
    int max_jobs;        /* stop after this many jobs; 0: no limit */
    int exit_when_idle;  /* stop when the coordinator has no job */
    const char *data_dir; /* where train jobs find their data set */
} agent_config;

/* Serves jobs until max_jobs are done, the queue is idle (exit_when_idle),
 * or *stop is set (SIGTERM): then the current job is handed back and
 * TFQ_EINTR returned.  Returns 0, or an error when the coordinator never
 * answered a hello within the retry budget. */
int agent_run(const agent_config *cfg, volatile sig_atomic_t *stop,
              tfq_error *e);

#endif
