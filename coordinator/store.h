/* The coordinator's SQLite store: grids, jobs and their dependencies, the
 * attempts workers make at them, metrics, checkpoints, workers and an event
 * log.  The coordinator is the only writer; schema/STORE.md describes the
 * tables, the job states and their transitions.
 *
 * Every function that changes state does so in one transaction (all or
 * nothing) and appends its own events.  Between store_begin and
 * store_commit the single operations join the open transaction instead
 * (each still all or nothing, through a savepoint), so a whole grid can be
 * added in one commit.  Time is always passed in as now_ms (milliseconds
 * since the Unix epoch) so that callers and tests control it.
 *
 * Functions return TFQ_OK or a negative TFQ_E* code and fill e (may be
 * NULL) with a message.  A store handle is not thread-safe. */
#ifndef TFQ_COORDINATOR_STORE_H
#define TFQ_COORDINATOR_STORE_H

#include <stdint.h>

#include "common/err.h"
#include "histogram.h"

/* The newest schema version this code knows (schema/NNN_*.sql). */
#define STORE_SCHEMA_VERSION 8

typedef struct store store;

/* One job as inserted.  Strings are borrowed for the call; the grid
 * coordinates may be NULL (strings) or negative (n, finetune, seed) when a
 * job has no such coordinate. */
typedef struct {
    int64_t grid_id;      /* 0: the job belongs to no grid */
    const char *name;     /* unique within the grid */
    const char *kind;     /* "train" or "sleep" */
    const char *spec;     /* the job's full configuration, opaque JSON text */
    const char *identity; /* hash of the configuration */
    int priority;         /* critical-path depth: larger is leased first */
    int max_attempts;     /* <= 0: the default, 3 */
    const char *split;
    const char *similarity;
    const char *target;
    int64_t n;
    const char *variant;
    int finetune;
    int64_t seed;
    const char *sweep;    /* the swept settings' values, "lr=0.01/init=he" */
    int64_t init_from;    /* the job whose final checkpoint this one copies
                             layers from (it must also be a dependency); 0:
                             none */
    int64_t reused_from;  /* > 0: a succeeded job with the same identity;
                             the job is added as succeeded with its result */
} store_job;

/* A job handed to a worker by store_lease_many.  The caller owns it and frees
 * its strings with store_leased_release. */
typedef struct {
    int64_t job_id;        /* 0: no job was ready */
    int attempt;           /* attempt number, 1 for the first */
    char kind[16];         /* "train" or "sleep" */
    char *name;            /* the job's name */
    char *spec;            /* the job's configuration */
    char resume_sha256[65]; /* latest checkpoint of the job, "" for none */
    int resume_epoch;      /* its epoch; 0 for none */
    int resume_attempt;    /* the attempt that wrote it; 0 for none */
    char init_sha256[65];  /* final checkpoint of the job's init_from, ""
                              for none */
} store_leased;

/* Jobs per state, and attempts lost, failed and handed back. */
typedef struct {
    int64_t pending, ready, running, succeeded, failed, blocked, cancelled;
    int64_t total;
    int64_t lost, failures; /* attempts: worker lost; job's own error */
    int64_t released;       /* attempts: handed back by their worker */
} store_counts;

/* Lost attempts a job may have before it fails (the default of the jobs
 * table's max_lost). */
#define STORE_MAX_LOST 20

/* Opens the store at path, creating it when missing, and applies pending
 * migrations (one transaction each).  Fails with TFQ_EFORMAT for a file that
 * is not an SQLite database or is corrupt, and TFQ_EVERSION for a schema
 * newer than STORE_SCHEMA_VERSION.  Returns NULL on failure. */
store *store_open(const char *path, tfq_error *e);

/* What store_open_opts checks beyond store_open. */
typedef struct {
    /* The file that mirrors the store's commit sequence outside it
     * (schema/STORE.md), created when missing; NULL: none. */
    const char *seq_path;
    /* A store behind its mirror is opened as it is, and its sequence
     * adopted, instead of refused. */
    int accept_rollback;
} store_opts;

/* store_open, checking first that the store is whole and as new as it
 * should be.  Fails with TFQ_EFORMAT when PRAGMA quick_check finds it
 * corrupt (the message quotes what it found), and, with o->seq_path, with
 * TFQ_EMISMATCH when the store holds fewer commits than the mirror says
 * were made (its WAL removed or cut short, the database replaced by an
 * older copy, emptied or removed), unless o->accept_rollback.  A store
 * ahead of its mirror (the mirror lost or behind) is fine: the mirror is
 * rewritten.  A refused store is left untouched.  o may be NULL (no
 * mirror). */
store *store_open_opts(const char *path, const store_opts *o, tfq_error *e);

/* The store's commit sequence: how many top-level commits that changed
 * something (and migrations) it has recorded. */
int64_t store_commit_seq(store *s);

/* The sequence the mirror said when accept_rollback let a store that was
 * behind it open; 0 when none was behind. */
int64_t store_rolled_back_from(store *s);

/* Closes the store (NULL-safe) and sets *s to NULL.  An open batch is
 * rolled back. */
void store_destroy(store **s);

/* The schema version recorded in the open store. */
int store_schema_version(store *s);

/* The text of migration version (1..STORE_SCHEMA_VERSION) compiled in
 * from schema/; NULL for any other version. */
const char *store_migration_sql(int version);

/* A batch: store_begin opens a transaction (BEGIN IMMEDIATE), or a
 * savepoint when one is already open; store_commit commits (releases) it
 * and store_rollback undoes it.  Calls nest and must pair up. */
int store_begin(store *s, tfq_error *e);
int store_commit(store *s, tfq_error *e);
void store_rollback(store *s);

/* Copies the WAL into the database and truncates it, giving its room back
 * to the file system: what the coordinator does when a commit failed for
 * want of space (the WAL grows to about 4 MiB between checkpoints).  Not
 * inside a batch. */
int store_compact_wal(store *s, tfq_error *e);

/* Adds a grid; its id goes to *grid_id.  TFQ_EINVAL for a duplicate name. */
int store_grid_add(store *s, const char *name, const char *spec,
                   int64_t *grid_id, int64_t now_ms, tfq_error *e);

/* Sets the metric the grid's report uses ("final", "best", "top10"). */
int store_grid_set_metric(store *s, int64_t grid_id, const char *metric,
                          tfq_error *e);

/* The id of the grid called name; TFQ_ENOENT when there is none. */
int store_grid_find(store *s, const char *name, int64_t *grid_id,
                    tfq_error *e);

/* Adds a job in state pending; its id goes to *job_id.  TFQ_EINVAL for an
 * invalid kind, a duplicate name within the grid or an unknown grid.  Call
 * store_refresh_ready after adding jobs and their dependencies. */
int store_job_add(store *s, const store_job *job, int64_t *job_id,
                  int64_t now_ms, tfq_error *e);

/* The job called name in the grid: *id (0: none), its identity and state.
 * Used inside the caller's transaction. */
int store_job_find(store *s, int64_t grid_id, const char *name, int64_t *id,
                   char identity[65], char state[16], tfq_error *e);

/* A succeeded job whose work has this identity (the original, not a
 * reuse of it): *id, or 0. */
int store_reusable(store *s, const char *identity, int64_t *id, tfq_error *e);

/* Makes a job that is not running pending again, with no result (submit
 * --force); *changed is 1 when it was. Inside the caller's transaction. */
int store_job_reset(store *s, int64_t id, int64_t now_ms, int *changed,
                    tfq_error *e);

/* Records that job cannot start before depends_on has succeeded.
 * TFQ_EINVAL for an unknown job or a job depending on itself. */
int store_dep_add(store *s, int64_t job, int64_t depends_on, tfq_error *e);

/* Moves pending jobs on: to ready when every dependency has succeeded, to
 * blocked when a dependency failed, is blocked or was cancelled (blocking
 * follows chains of dependents). */
int store_refresh_ready(store *s, int64_t now_ms, tfq_error *e);

/* Jobs one store_lease_many call leases at most. */
#define STORE_MAX_LEASE 64

/* Leases up to max (at most STORE_MAX_LEASE) ready jobs to worker, in one
 * transaction, in the order of their priority (highest first), then of
 * their losses (fewest first), then of their ids: each job becomes
 * running, its attempts counter grows by one and a running attempt row is
 * added with its heartbeat at now_ms.  out[0 .. *n) are filled (release
 * each with store_leased_release); *n is 0 when no job is ready, which is
 * not an error.  Lease i is held by holders[i] (holders may be NULL: no
 * holder, for tests); the calls below must name the same holder.  On
 * failure nothing is leased and *n is 0. */
int store_lease_many(store *s, const char *worker,
                     const char *const *holders, int64_t now_ms, int max,
                     store_leased *out, int *n, tfq_error *e);

/* Frees the strings of l and clears it; NULL-safe. */
void store_leased_release(store_leased *l);

/* The leases worker holds (its running attempts). */
int store_held(store *s, const char *worker, int *n, tfq_error *e);

/* The job's configuration text (*spec malloc'd, the caller's);
 * TFQ_ENOENT for an unknown job. */
int store_job_spec(store *s, int64_t job, char **spec, tfq_error *e);

/* The calls a worker makes about its attempt: each requires that holder
 * holds the attempt (the string given to store_lease_many; NULL matches a
 * lease without holder), else fails with TFQ_EPERM, and that it is the
 * job's running attempt, else fails with TFQ_EMISMATCH ("job J attempt A
 * is not running (its state is S)"); either way it changes nothing.  That
 * is how a late report from a lost or cancelled attempt is rejected, and
 * how a peer that does not hold the lease is. */

/* TFQ_OK when holder holds attempt and it runs; else as above. */
int store_check_lease(store *s, int64_t job, int attempt, const char *holder,
                      tfq_error *e);

/* Moves the attempt's heartbeat to now_ms. */
int store_heartbeat(store *s, int64_t job, int attempt, const char *holder,
                    int64_t now_ms, tfq_error *e);

/* Records an epoch's metrics (replacing a previous record of the same
 * epoch of the same attempt). */
int store_metric_add(store *s, int64_t job, int attempt, const char *holder,
                     int epoch,
                     double loss, double test_acc, double images_per_s,
                     double eta_s, tfq_error *e);

/* Records a checkpoint the attempt wrote after epoch. */
int store_checkpoint_add(store *s, int64_t job, int attempt,
                         const char *holder, int epoch,
                         const char *sha256, int64_t bytes, int64_t now_ms,
                         tfq_error *e);

/* Finishes the attempt.  ok: the job succeeds with result_json.  Not ok:
 * the attempt fails with error (counted in the job's failures), and the
 * job goes back to ready while its attempts counter is below max_attempts,
 * else it fails with last_error = error; the checkpoint the attempt resumed
 * from, if any, is marked bad and not offered again.  Dependents are then
 * refreshed. */
int store_finish(store *s, int64_t job, int attempt, const char *holder,
                 int ok,
                 const char *result_json, const char *error, int64_t now_ms,
                 tfq_error *e);

/* A worker hands its attempt back (it was told to stop): the attempt is
 * 'released' and the job goes back to ready without being charged an
 * attempt (the attempts counter, which only failures and losses consume, is
 * decremented again; attempt numbers are never reused). */
int store_release(store *s, int64_t job, int attempt, const char *holder,
                  int64_t now_ms, tfq_error *e);

/* Running attempts whose heartbeat is older than now_ms - liveness_ms are
 * 'lost': a loss is not charged against max_attempts but counted in the
 * job's lost; the job goes back to ready, or fails with "lost N times" once
 * lost reaches max_lost (STORE_MAX_LOST unless the job says).  A lost
 * attempt that resumed from a checkpoint and reported no progress marks
 * that checkpoint bad.  *requeued (may be NULL) gets the number of attempts
 * found lost. */
int store_expire(store *s, int64_t now_ms, int64_t liveness_ms,
                 int *requeued, tfq_error *e);

/* Reconciles at coordinator start-up: attempts the store says are running
 * stay running, but their heartbeat is moved to now_ms, so that each worker
 * gets one full liveness window to report (heartbeat, finish) before
 * store_expire declares it lost.  A coordinator restart thus neither loses
 * work still in progress nor waits forever for workers that died with it. */
int store_recover(store *s, int64_t now_ms, tfq_error *e);

/* Gives a failed, blocked or cancelled job another go: it becomes pending
 * with its attempts counter at 0, dependents that were blocked (directly or
 * through a chain) become pending too, and all are refreshed.
 * TFQ_EINVAL for a job in any other state, TFQ_ENOENT for an unknown job. */
int store_retry(store *s, int64_t job, int64_t now_ms, tfq_error *e);

/* Cancels every unfinished job (pending, ready, running, blocked) of a
 * grid; their running attempts become 'cancelled'.  Dependents elsewhere
 * become blocked.  *cancelled (may be NULL) gets the number of jobs
 * cancelled.  TFQ_ENOENT for an unknown grid. */
int store_cancel_grid(store *s, int64_t grid_id, int64_t now_ms,
                      int *cancelled, tfq_error *e);

/* Counts jobs per state, of one grid or of all (grid_id 0). */
int store_counts_get(store *s, int64_t grid_id, store_counts *out,
                     tfq_error *e);

/* Reports as JSON arrays (*json malloc'd, the caller's); grid_id 0: every
 * grid.  Results: one object per job (job, grid, name, kind, state,
 * attempts, error, result, checkpoint: its latest checkpoint's SHA-256).
 * Curves: the jobs that reported an epoch (job, grid, name, state, the grid
 * coordinates, reused_from, epochs: an array of {attempt, epoch, loss,
 * test_acc, images_per_s} in (attempt, epoch) order; a reused job's are its
 * source's; a value not measured is null).
 * Running: job, name, worker, attempt, epoch, test_acc and eta_s of its
 * latest progress, started_ms.  Workers: worker, host, threads, last_seen_ms,
 * running, done, state and seen_s_ago: "gone" when it said bye or was not
 * seen for over gone_after_ms before now_ms, else "live" when it runs an
 * attempt, else "idle"; the seconds from last_seen_ms to now_ms.
 *
 * Each call gives one page: the rows after row `after` (0: from the first)
 * in the order of their id (a job's id; a worker's rowid), as many as fit
 * in max_bytes of JSON.  *next is the `after` of the following page, or 0
 * when no row is left.  A row is bounded (a result is at most 16 KiB), so a
 * page of a few hundred KiB or more always holds one; one that does not fit
 * alone is TFQ_ERANGE.  Pages are separate reads: a job whose state changes
 * between two of them may be missing from a running report or show its new
 * state in a later results page, but no row ever comes twice. */
int store_results_json(store *s, int64_t grid_id, int64_t after,
                       size_t max_bytes, char **json, int64_t *next,
                       tfq_error *e);
/* Curves of job `job` only when it is not 0. */
int store_curves_json(store *s, int64_t grid_id, int64_t job, int64_t after,
                      size_t max_bytes, char **json, int64_t *next,
                      tfq_error *e);
/* Grids, paged by grid id: grid, grid_id, metric, queued (pending or
 * ready), running, done (succeeded), failed, blocked, cancelled, total. */
int store_grids_json(store *s, int64_t after, size_t max_bytes, char **json,
                     int64_t *next, tfq_error *e);
int store_running_json(store *s, int64_t grid_id, int64_t after,
                       size_t max_bytes, char **json, int64_t *next,
                       tfq_error *e);
int store_workers_json(store *s, int64_t now_ms, int64_t gone_after_ms,
                       int64_t after, size_t max_bytes, char **json,
                       int64_t *next, tfq_error *e);

/* The dashboard's reads.  Each gives *json, a JSON array the caller frees,
 * of at most max_bytes (a page that does not fit is TFQ_ERANGE).
 *
 * store_jobs_json: a page of grid grid_id's jobs as query (a JSON object:
 * schema/PROTOCOL.md, "jobs"; NULL: {}) filters, sorts and pages them, and
 * in *count the number of jobs that match.  A query that is not an object,
 * or has an unknown key or a bad value, is TFQ_EINVAL naming the key.
 * Each item: job, grid, name, state, attempts, the coordinates, metric,
 * result (object or null), error, updated_ms, and of the latest attempt
 * (the running one, if any): worker, attempt, and the epoch, test_acc and
 * eta_s of its last progress.
 *
 * store_events_json: the newest `rows` events with id > after, newest
 * first, of job `job` (0: any) and grid grid_id (0: any): id, at_ms, kind,
 * job, name, grid, attempt, worker, detail.
 *
 * store_attempts_json: job's attempts in order: attempt, worker, state,
 * started_ms, finished_ms, heartbeat_ms, error; TFQ_ENOENT for an unknown
 * job. */
int store_jobs_json(store *s, int64_t grid_id, const char *query,
                    size_t max_bytes, char **json, int64_t *count,
                    tfq_error *e);
int store_events_json(store *s, int64_t grid_id, int64_t job, int64_t after,
                      int rows, size_t max_bytes, char **json, tfq_error *e);
int store_attempts_json(store *s, int64_t job, size_t max_bytes, char **json,
                        tfq_error *e);

/* What the metrics show of the store, read at once. */
typedef struct {
    int64_t ready;            /* jobs ready to lease: the queue's depth */
    int64_t workers_live, workers_idle, workers_gone; /* as the workers
                                 report's state says, at now_ms */
    int64_t checkpoint_bytes; /* sum of the checkpoints' sizes */
} store_gauges;

/* Called once per (grid, state) that has jobs, grids in id order; grid is
 * "" for jobs of no grid. */
typedef void store_jobs_by_fn(void *arg, const char *grid, const char *state,
                              int64_t n);

int store_gauges_get(store *s, int64_t now_ms, int64_t gone_after_ms,
                     store_gauges *out, store_jobs_by_fn *fn, void *arg,
                     tfq_error *e);

/* From now on, every commit that changed something adds its duration (the
 * COMMIT statement: the write and sync of the WAL) to h, which must outlive
 * the store or the next call; NULL stops it. */
void store_time_commits(store *s, histogram *h);

/* One job as a client asks for it. */
typedef struct {
    int64_t job;
    char name[129];  /* PROTO_MAX_NAME_BYTES and a NUL */
    char grid[129];  /* "" for a job of no grid */
    char state[16];
    char sha256[65]; /* its latest checkpoint not found bad; "" none */
    int epoch;       /* that checkpoint's; 0 none */
} store_job_info;

/* The job whose id is job (0: none), or the jobs called name (NULL: none)
 * in grid grid_id (0: in every grid), in id order: out[0 .. *n), at most
 * max.  With both an id and a grid, the job must be in that grid.  *n is
 * 0 when none matches, which is not an error. */
int store_job_get(store *s, int64_t job, const char *name, int64_t grid_id,
                  store_job_info *out, int max, int *n, tfq_error *e);

/* store_retry for every failed, blocked or cancelled job of the grid;
 * *count: how many went back to the queue. */
int store_retry_grid(store *s, int64_t grid_id, int64_t now_ms, int *count,
                     tfq_error *e);

/* Records that a worker was seen (first_seen_ms is kept from the first
 * call; state becomes "alive"). */
int store_worker_seen(store *s, const char *id, const char *host, int pid,
                      int threads, int64_t now_ms, tfq_error *e);

/* Records that worker id (as store_worker_seen named it) was seen at now_ms:
 * its last_seen_ms, and state "alive" again; written only when the last
 * sighting is over every_ms old or the worker said bye.  A worker never
 * seen is no error (nothing changes). */
int store_worker_touch(store *s, const char *id, int64_t now_ms,
                       int64_t every_ms, tfq_error *e);

/* Worker id said bye at now_ms: its state becomes "gone" until it is seen
 * again. */
int store_worker_bye(store *s, const char *id, int64_t now_ms, tfq_error *e);

#endif
