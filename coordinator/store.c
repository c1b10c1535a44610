#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/clock.h"

/* How long a statement waits for a lock held by another connection (a
 * reader such as `sqlite3` or a status command) before failing. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* SQLite's page size and default WAL checkpoint interval, in pages. */
#define STORE_PAGE_BYTES 4096
#define STORE_WAL_PAGES 1000

/* The migrations, in order: s_migrations[v - 1] brings the schema from
 * version v - 1 to v.  Generated from schema/NNN_*.sql (coordinator/
 * meson.build); SCHEMA_FILES_VERSION is the newest file's number. */
#include "schema.h"

_Static_assert(SCHEMA_FILES_VERSION == STORE_SCHEMA_VERSION,
               "STORE_SCHEMA_VERSION (store.h) is not the newest migration "
               "in schema/ (or one is missing from coordinator/meson.build)");
_Static_assert(sizeof s_migrations / sizeof s_migrations[0] ==
                   STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* A worker's state in the workers report and the metrics: gone when it
 * said bye or was unseen for over ?3 ms at ?1 (now), else live when
 * running (an SQL condition) holds, else idle. */
#define WORKER_STATE(running)                                               \
    "CASE WHEN w.state = 'gone' OR ?1 - w.last_seen_ms > ?3 THEN 'gone' "    \
    "WHEN " running " THEN 'live' ELSE 'idle' END"

/* The cached statements: prepared on first use, kept for the life of the
 * handle. */
#define STORE_STMTS(X)                                                        \
    X(BEGIN, "BEGIN IMMEDIATE")                                               \
    X(COMMIT, "COMMIT")                                                       \
    X(ROLLBACK, "ROLLBACK")                                                   \
    X(SAVEPOINT, "SAVEPOINT store_op")                                        \
    X(RELEASE, "RELEASE store_op")                                            \
    X(ROLLBACK_TO, "ROLLBACK TO store_op")                                    \
    X(SEQ_BUMP, "UPDATE meta SET value = ?1 WHERE key = 'commit_seq'")        \
    X(GRID_ADD, "INSERT INTO grids (name, spec, created_ms) VALUES (?, ?, ?)") \
    X(GRID_FIND, "SELECT id FROM grids WHERE name = ?")                       \
    X(GRID_METRIC, "UPDATE grids SET metric = ?2 WHERE id = ?1")              \
    X(JOB_ADD, "INSERT INTO jobs (grid_id, name, kind, spec, identity, "      \
               "state, priority, max_attempts, split, similarity, target, n, "\
               "variant, finetune, seed, created_ms, updated_ms, init_from, " \
               "sweep) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8, ?9, "\
               "?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?18)")                \
    /* The final checkpoint of the succeeded job a transfer job copies. */   \
    X(INIT, "SELECT c.sha256 FROM jobs j JOIN jobs src ON src.id = "        \
            "j.init_from JOIN attempts a ON a.job_id = COALESCE("            \
            "src.reused_from, src.id) AND a.state = 'succeeded' JOIN "        \
            "checkpoints c ON c.job_id = a.job_id AND c.attempt = a.attempt " \
            "WHERE j.id = ? ORDER BY c.epoch DESC LIMIT 1")                   \
    X(DEP_ADD, "INSERT INTO deps (job_id, depends_on) VALUES (?, ?)")         \
    /* A job added as done: the result of the job whose work it reuses. */   \
    X(JOB_REUSE, "INSERT INTO jobs (grid_id, name, kind, spec, identity, "    \
                 "state, priority, max_attempts, split, similarity, target, " \
                 "n, variant, finetune, seed, created_ms, updated_ms, "       \
                 "init_from, result, reused_from, sweep) SELECT ?1, ?2, ?3, " \
                 "?4, ?5, 'succeeded', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "  \
                 "?14, ?15, ?15, ?16, src.result, src.id, ?18 FROM jobs src " \
                 "WHERE src.id = ?17")                                        \
    X(JOB_FIND, "SELECT id, identity, state FROM jobs WHERE grid_id = ? AND " \
                "name = ?")                                                   \
    /* The original of a succeeded job with this identity. */               \
    X(REUSABLE, "SELECT COALESCE(reused_from, id) FROM jobs WHERE identity = "\
                "? AND state = 'succeeded' ORDER BY id LIMIT 1")              \
    X(JOB_RESET, "UPDATE jobs SET state = 'pending', attempts = 0, lost = 0, "\
                 "result = "                                                  \
                 "NULL, reused_from = NULL, last_error = NULL, updated_ms = " \
                 "?2 WHERE id = ?1 AND state <> 'running'")                   \
    X(HAS_DEPENDENTS, "SELECT 1 FROM deps WHERE depends_on = ? LIMIT 1")      \
    /* One pass blocks the pending jobs with a dead dependency; blocking     \
     * spreads one level per pass. */                                        \
    X(BLOCK, "UPDATE jobs SET state = 'blocked', updated_ms = ?1 "            \
             "WHERE state = 'pending' AND EXISTS (SELECT 1 FROM deps d "      \
             "JOIN jobs p ON p.id = d.depends_on WHERE d.job_id = jobs.id "   \
             "AND p.state IN ('failed', 'blocked', 'cancelled'))")            \
    X(READY, "UPDATE jobs SET state = 'ready', updated_ms = ?1 "              \
             "WHERE state = 'pending' AND NOT EXISTS (SELECT 1 FROM deps d "  \
             "JOIN jobs p ON p.id = d.depends_on WHERE d.job_id = jobs.id "   \
             "AND p.state <> 'succeeded')")                                   \
    /* The same two, limited to what one finished job can change: its     \
     * direct dependents may become ready, and when it failed for good,    \
     * every pending job downstream of it is blocked. */                   \
    X(READY_AFTER, "UPDATE jobs SET state = 'ready', updated_ms = ?2 "        \
                   "WHERE +state = 'pending' AND id IN (SELECT job_id FROM "  \
                   "deps WHERE depends_on = ?1) AND NOT EXISTS (SELECT 1 "    \
                   "FROM deps d JOIN jobs p ON p.id = d.depends_on WHERE "    \
                   "d.job_id = jobs.id AND p.state <> 'succeeded')")          \
    X(BLOCK_AFTER, "WITH RECURSIVE down(id) AS (SELECT job_id FROM deps "     \
                   "WHERE depends_on = ?1 UNION SELECT d.job_id FROM deps d " \
                   "JOIN down ON d.depends_on = down.id) "                    \
                   "UPDATE jobs SET state = 'blocked', updated_ms = ?2 "      \
                   "WHERE +state = 'pending' AND id IN down AND EXISTS "      \
                   "(SELECT 1 FROM jobs f WHERE f.id = ?1 AND f.state IN "    \
                   "('failed', 'blocked', 'cancelled'))")                     \
    X(PICK, "SELECT id, kind, name, spec, init_from FROM jobs "              \
            "WHERE state = 'ready' "                                          \
            "ORDER BY priority DESC, lost, id LIMIT ?")                             \
    X(NEXT_ATTEMPT, "SELECT COALESCE(MAX(attempt), 0) + 1 FROM attempts "     \
                    "WHERE job_id = ?")                                       \
    X(JOB_RUN, "UPDATE jobs SET state = 'running', attempts = attempts + 1, " \
               "updated_ms = ?2 WHERE id = ?1")                               \
    X(ATTEMPT_ADD, "INSERT INTO attempts (job_id, attempt, worker, state, "   \
                   "started_ms, heartbeat_ms, holder, resumed_from) VALUES "  \
                   "(?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6)")                 \
    /* The latest checkpoint not found bad. */                               \
    X(RESUME, "SELECT sha256, epoch, attempt FROM checkpoints "               \
              "WHERE job_id = ? AND bad IS NULL "                             \
              "ORDER BY epoch DESC, attempt DESC LIMIT 1")                    \
    X(ATTEMPT_STATE, "SELECT state, holder IS ?3 FROM attempts WHERE "        \
                     "job_id = ?1 AND attempt = ?2")                          \
    /* Through the running attempts (the state index): no index of its    \
     * own, which every lease and finish would pay to keep. */              \
    X(HELD, "SELECT count(*) FROM attempts WHERE state = 'running' AND "      \
            "+worker = ?")                                                    \
    X(HEARTBEAT, "UPDATE attempts SET heartbeat_ms = ?3 WHERE job_id = ?1 "   \
                 "AND attempt = ?2 AND state = 'running' AND holder IS ?4")   \
    X(METRIC_ADD, "INSERT OR REPLACE INTO metrics (job_id, attempt, epoch, "  \
                  "loss, test_acc, images_per_s, eta_s) VALUES "             \
                  "(?, ?, ?, ?, ?, ?, ?)")                                    \
    X(CKPT_ADD, "INSERT OR REPLACE INTO checkpoints (job_id, attempt, epoch, "\
                "sha256, bytes, created_ms) VALUES (?, ?, ?, ?, ?, ?)")       \
    /* Ends a running attempt; changes nothing when it is not running. */   \
    X(ATTEMPT_END, "UPDATE attempts SET state = ?3, finished_ms = ?4, "       \
                   "error = ?5 WHERE job_id = ?1 AND attempt = ?2 AND "       \
                   "state = 'running' AND holder IS ?6")                      \
    /* A failed attempt's resume checkpoint is not offered again: the next  \
     * attempt starts from an earlier one, or from epoch 0. */               \
    X(CKPT_BAD_RESUMED, "UPDATE checkpoints SET bad = ?3 WHERE job_id = ?1 "  \
                        "AND bad IS NULL AND sha256 = (SELECT resumed_from "  \
                        "FROM attempts WHERE job_id = ?1 AND attempt = ?2)")  \
    X(CKPT_BAD_JOB, "UPDATE checkpoints SET bad = ?2 WHERE job_id = ?1 AND "  \
                    "bad IS NULL")                                            \
    X(JOB_SPEC, "SELECT spec, kind FROM jobs WHERE id = ?")                   \
    X(RESULT_SHAPE, "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) "     \
                    "END")                                                    \
    X(RESULT_FIELDS, "SELECT key, type, value FROM json_each(?1)")            \
    X(RESULT_ACCS, "SELECT count(*), coalesce(sum(type NOT IN ('integer', "   \
                   "'real') OR value < 0 OR value > 1), 0) FROM "             \
                   "json_each(?1, '$.accs')")                                 \
    X(JOB_SUCCEED, "UPDATE jobs SET state = 'succeeded', result = ?2, "       \
                   "last_error = NULL, updated_ms = ?3 WHERE id = ?1")        \
    X(JOB_FAIL, "UPDATE jobs SET state = CASE WHEN attempts < max_attempts "  \
                "THEN 'ready' ELSE 'failed' END, last_error = ?2, "           \
                "failures = failures + 1, updated_ms = ?3 WHERE id = ?1")     \
    X(JOB_RELEASE, "UPDATE jobs SET state = 'ready', attempts = "             \
                   "MAX(attempts - 1, 0), updated_ms = ?2 WHERE id = ?1")     \
    X(EXPIRE_EVENTS, "INSERT INTO events (at_ms, job_id, attempt, worker, "   \
                     "kind, detail) SELECT ?1, job_id, attempt, worker, "     \
                     "'lost', 'no heartbeat since ' || heartbeat_ms "         \
                     "FROM attempts WHERE state = 'running' "                 \
                     "AND heartbeat_ms < ?2")                                 \
    /* A lost attempt is not charged against max_attempts (attempts - 1,  \
     * as for a release) but counted in lost, against max_lost. */           \
    X(EXPIRE_JOBS, "UPDATE jobs SET lost = lost + 1, attempts = "             \
                   "MAX(attempts - 1, 0), state = CASE WHEN lost + 1 < "      \
                   "max_lost THEN 'ready' ELSE 'failed' END, last_error = "   \
                   "CASE WHEN lost + 1 < max_lost THEN 'worker lost' ELSE "   \
                   "'lost ' || (lost + 1) || ' times: every worker that "     \
                   "leased it went silent' END, updated_ms = ?1 WHERE id IN " \
                   "(SELECT job_id FROM attempts WHERE state = 'running' "    \
                   "AND heartbeat_ms < ?2)")                                  \
    /* A lost attempt that reported nothing after resuming from a          \
     * checkpoint may have died of it: that checkpoint is not offered      \
     * again. */                                                             \
    X(EXPIRE_CKPTS, "UPDATE checkpoints SET bad = 'an attempt resumed from " \
                    "it and was lost before any progress' WHERE bad IS NULL " \
                    "AND (job_id, sha256) IN (SELECT a.job_id, "              \
                    "a.resumed_from FROM attempts a WHERE a.state = "         \
                    "'running' AND a.heartbeat_ms < ?2 AND a.resumed_from "   \
                    "IS NOT NULL AND NOT EXISTS (SELECT 1 FROM metrics m "    \
                    "WHERE m.job_id = a.job_id AND m.attempt = a.attempt))")  \
    X(EXPIRE_ATTEMPTS, "UPDATE attempts SET state = 'lost', finished_ms = ?1,"\
                       " error = 'worker lost' WHERE state = 'running' "      \
                       "AND heartbeat_ms < ?2")                               \
    X(RECOVER, "UPDATE attempts SET heartbeat_ms = ?1 WHERE state = 'running'")\
    X(JOB_STATE, "SELECT state FROM jobs WHERE id = ?")                       \
    X(JOB_RETRY, "UPDATE jobs SET state = 'pending', attempts = 0, lost = 0, "\
                 "last_error = NULL, updated_ms = ?2 WHERE id = ?1")          \
    X(UNBLOCK, "WITH RECURSIVE down(id) AS (SELECT job_id FROM deps "         \
               "WHERE depends_on = ?1 UNION SELECT d.job_id FROM deps d "     \
               "JOIN down ON d.depends_on = down.id) "                        \
               "UPDATE jobs SET state = 'pending', updated_ms = ?2 "          \
               "WHERE state = 'blocked' AND id IN down")                      \
    X(GRID_EXISTS, "SELECT 1 FROM grids WHERE id = ?")                        \
    X(CANCEL_ATTEMPTS_GRID, "UPDATE attempts SET state = 'cancelled', "       \
                            "finished_ms = ?2 WHERE state = 'running' AND "   \
                            "job_id IN (SELECT id FROM jobs WHERE "           \
                            "grid_id = ?1 AND state = 'running')")            \
    X(CANCEL_JOBS_GRID, "UPDATE jobs SET state = 'cancelled', updated_ms = ?2"\
                        " WHERE grid_id = ?1 AND state IN ('pending', "       \
                        "'ready', 'running', 'blocked')")                     \
    X(COUNTS_ALL, "SELECT state, COUNT(*) FROM jobs GROUP BY state")          \
    /* Lost, failed, released attempts: a range of the state index each. */   \
    X(ATTEMPT_COUNTS, "SELECT a.state, count(*) FROM attempts a JOIN jobs j " \
                      "ON j.id = a.job_id WHERE a.state IN ('lost', "         \
                      "'failed', 'released') AND (?1 = 0 OR j.grid_id = ?1) " \
                      "GROUP BY a.state")                                     \
    /* Reports, built as JSON by SQLite's own JSON functions; grid 0: all. */ \
    X(RESULTS, "SELECT j.id, json_object('job', j.id, 'grid', "               \
               "g.name, 'name', j.name, 'kind', j.kind, 'state', j.state, "   \
               "'attempts', j.attempts, 'lost', j.lost, 'failures', "         \
               "j.failures, 'error', j.last_error, 'result', CASE WHEN "      \
               "json_valid(j.result) THEN json(j.result) END, 'bad_result', " \
               "CASE WHEN j.result IS NOT NULL AND NOT json_valid(j.result) " \
               "THEN 'the stored result is not valid JSON; left out' END, "   \
               "'checkpoint', (SELECT "                                       \
               "c.sha256 FROM "                                               \
               "checkpoints c WHERE c.job_id = COALESCE(j.reused_from, j.id) "\
               "ORDER BY c.epoch DESC, c.attempt DESC LIMIT 1), 'split', "    \
               "j.split, 'similarity', j.similarity, 'target', j.target, "    \
               "'n', j.n, 'variant', j.variant, 'finetune', j.finetune, "     \
               "'seed', j.seed, 'sweep', j.sweep, 'metric', g.metric, "       \
               "'reused_from', j.reused_from) FROM jobs j LEFT JOIN grids g " \
               "ON g.id = "                                                   \
               "j.grid_id WHERE (?1 = 0 OR j.grid_id = ?1) AND j.id > ?2 "    \
               "ORDER BY j.id")                                               \
    /* Curves: the jobs with a metric row (a reused job: its source's rows),\
     * each with its epochs in (attempt, epoch) order. */                   \
    X(CURVES, "SELECT j.id, json_object('job', j.id, 'grid', g.name, "       \
              "'name', j.name, 'state', j.state, 'split', j.split, "          \
              "'similarity', j.similarity, 'target', j.target, 'n', j.n, "    \
              "'variant', j.variant, 'finetune', j.finetune, 'seed', "        \
              "j.seed, 'sweep', j.sweep, 'reused_from', j.reused_from, "      \
              "'epochs', json((SELECT "                                       \
              "json_group_array(json_object('attempt', m.attempt, 'epoch', "  \
              "m.epoch, 'loss', m.loss, 'test_acc', m.test_acc, "             \
              "'images_per_s', m.images_per_s)) FROM (SELECT * FROM metrics " \
              "WHERE job_id = coalesce(j.reused_from, j.id) ORDER BY "        \
              "attempt, epoch) m))) FROM jobs j LEFT JOIN grids g ON g.id = " \
              "j.grid_id WHERE (?1 = 0 OR j.grid_id = ?1) AND j.id > ?2 AND " \
              "(?3 = 0 OR j.id = ?3) AND "                                    \
              "EXISTS (SELECT 1 FROM metrics WHERE job_id = "                 \
              "coalesce(j.reused_from, j.id)) ORDER BY j.id")                 \
    X(RUNNING, "SELECT j.id, json_object('job', j.id, 'name', "               \
               "j.name, 'worker', a.worker, 'attempt', a.attempt, 'epoch', "  \
               "(SELECT max(epoch) FROM metrics m WHERE m.job_id = j.id AND " \
               "m.attempt = a.attempt), 'test_acc', (SELECT test_acc FROM "   \
               "metrics m WHERE m.job_id = j.id AND m.attempt = a.attempt "   \
               "ORDER BY epoch DESC LIMIT 1), 'eta_s', (SELECT eta_s FROM "    \
               "metrics m WHERE m.job_id = j.id AND m.attempt = a.attempt "   \
               "ORDER BY epoch DESC LIMIT 1), 'started_ms', a.started_ms) "   \
               "FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.state = "\
               "'running' WHERE j.state = 'running' AND (?1 = 0 OR "          \
               "j.grid_id = ?1) AND j.id > ?2 ORDER BY j.id")                 \
    /* The attempts are counted in one pass, not once per worker.  ?1 is \
     * now, ?3 how long unseen makes a worker gone (store_workers_json). */ \
    X(WORKERS, "SELECT w.rowid, json_object('worker', w.id, 'host', "        \
               "w.host, 'threads', w.threads, 'last_seen_ms', "               \
               "w.last_seen_ms, 'running', coalesce(n.running, 0), 'done', "  \
               "coalesce(n.done, 0), 'state', "                               \
               WORKER_STATE("n.running > 0") ", 'seen_s_ago', round(max(0, ?1 "\
               "- w.last_seen_ms) / 1000.0, 3)) FROM workers w LEFT JOIN "    \
               "(SELECT worker, sum(state = 'running') AS running, sum(state "\
               "= 'succeeded') AS done FROM attempts GROUP BY worker) n ON "  \
               "n.worker = w.id WHERE w.rowid > ?2 ORDER BY w.rowid")         \
    /* One job by id (?1) or by name (?2) in every grid or in grid ?3, and \
     * its latest checkpoint not found bad (a reused job's: its source's). */\
    X(JOB_GET, "SELECT j.id, j.name, coalesce(g.name, ''), j.state, "          \
               "c.sha256, c.epoch FROM jobs j LEFT JOIN grids g ON g.id = "   \
               "j.grid_id LEFT JOIN checkpoints c ON c.rowid = (SELECT rowid "\
               "FROM checkpoints WHERE job_id = coalesce(j.reused_from, j.id)"\
               " AND bad IS NULL ORDER BY epoch DESC, attempt DESC LIMIT 1) " \
               "WHERE (j.id = ?1 OR j.name = ?2) AND (?3 = 0 OR "            \
               "j.grid_id = ?3) ORDER BY j.id LIMIT ?4")                      \
    X(RETRYABLE, "SELECT id FROM jobs WHERE grid_id = ? AND state IN "        \
                 "('failed', 'blocked', 'cancelled') ORDER BY id")            \
    X(COUNTS_GRID, "SELECT state, COUNT(*) FROM jobs WHERE grid_id = ? "      \
                   "GROUP BY state")                                          \
    X(EVENT_ADD, "INSERT INTO events (at_ms, job_id, attempt, worker, kind, " \
                 "detail) VALUES (?, ?, ?, ?, ?, ?)")                         \
    X(WORKER_SEEN, "INSERT INTO workers (id, host, pid, threads, "            \
                   "first_seen_ms, last_seen_ms, state) VALUES "              \
                   "(?1, ?2, ?3, ?4, ?5, ?5, 'alive') ON CONFLICT (id) DO "   \
                   "UPDATE SET host = ?2, pid = ?3, threads = ?4, "           \
                   "last_seen_ms = ?5, state = 'alive'")                      \
    /* Seen again: only when the last sighting is over ?3 ms old or it said \
     * bye, so that a worker asking every 200 ms costs no write each time. */\
    X(WORKER_TOUCH, "UPDATE workers SET last_seen_ms = ?2, state = 'alive' " \
                    "WHERE id = ?1 AND (last_seen_ms < ?2 - ?3 OR state IS "  \
                    "NOT 'alive')")                                           \
    X(WORKER_BYE, "UPDATE workers SET last_seen_ms = ?2, state = 'gone' "    \
                  "WHERE id = ?1")                                            \
    /* The dashboard's reads (store_grids_json ...). */                      \
    X(GRIDS, "SELECT g.id, json_object('grid', g.name, 'grid_id', g.id, "     \
             "'metric', g.metric, 'queued', coalesce(sum(j.state IN "          \
             "('pending', 'ready')), 0), 'running', coalesce(sum(j.state = "   \
             "'running'), 0), 'done', coalesce(sum(j.state = 'succeeded'), "   \
             "0), 'failed', coalesce(sum(j.state = 'failed'), 0), 'blocked', " \
             "coalesce(sum(j.state = 'blocked'), 0), 'cancelled', "            \
             "coalesce(sum(j.state = 'cancelled'), 0), 'total', count(j.id)) " \
             "FROM grids g LEFT JOIN jobs j ON j.grid_id = g.id WHERE "        \
             "(?1 = 0 OR g.id = ?1) AND g.id > ?2 GROUP BY g.id ORDER BY g.id")\
    /* Newest first: ?1 after, ?2 job (0: all), ?3 grid (0: all), ?4 rows. */\
    X(EVENTS, "SELECT e.id, json_object('id', e.id, 'at_ms', e.at_ms, "       \
              "'kind', e.kind, 'job', e.job_id, 'name', j.name, 'grid', "     \
              "g.name, 'attempt', e.attempt, 'worker', e.worker, 'detail', "  \
              "e.detail) FROM events e LEFT JOIN jobs j ON j.id = e.job_id "  \
              "LEFT JOIN grids g ON g.id = j.grid_id WHERE e.id > ?1 AND "    \
              "(?2 = 0 OR e.job_id = ?2) AND (?3 = 0 OR j.grid_id = ?3) "     \
              "ORDER BY e.id DESC LIMIT ?4")                                  \
    X(ATTEMPTS, "SELECT attempt, json_object('attempt', attempt, 'worker', "  \
                "worker, 'state', state, 'started_ms', started_ms, "          \
                "'finished_ms', finished_ms, 'heartbeat_ms', heartbeat_ms, "  \
                "'error', error) FROM attempts WHERE job_id = ?1 ORDER BY "   \
                "attempt")                                                    \
    /* The metrics' gauges (store_gauges_get). */                            \
    X(JOBS_BY_GRID, "SELECT coalesce(g.name, ''), j.state, count(*) FROM "    \
                    "jobs j LEFT JOIN grids g ON g.id = j.grid_id GROUP BY "  \
                    "j.grid_id, j.state ORDER BY j.grid_id, j.state")         \
    X(WORKER_STATES, "SELECT " WORKER_STATE("EXISTS (SELECT 1 FROM attempts " \
                     "a WHERE a.state = 'running' AND a.worker = w.id)")      \
                     " AS st, count(*) FROM workers w GROUP BY st")           \
    X(CKPT_BYTES, "SELECT coalesce(sum(bytes), 0) FROM checkpoints")

enum {
#define S_ENUM(name, sql) ST_##name,
    STORE_STMTS(S_ENUM)
#undef S_ENUM
    ST_COUNT
};

static const char *const s_sql[ST_COUNT] = {
#define S_SQL(name, sql) sql,
    STORE_STMTS(S_SQL)
#undef S_SQL
};

struct store {
    sqlite3 *db;
    char *path;
    int schema_version;
    int depth; /* open transactions: 0 none, 1 BEGIN, more: savepoints */
    sqlite3_stmt *stmt[ST_COUNT];
    int64_t seq;              /* meta.commit_seq, as last committed */
    int64_t changes_at_begin; /* sqlite3_total_changes64 at the BEGIN */
    int seq_fd;               /* the mirror file; -1: none */
    int64_t rolled_back_from; /* the mirror's number, when it was ahead */
    histogram *commits;       /* durations of commits; NULL: not timed */
};

/* The TFQ_E* code for an SQLite result code. */
static int tfq_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return TFQ_ENOMEM;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
        return TFQ_EINVAL;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return TFQ_EFORMAT;
    case SQLITE_CANTOPEN:
        return TFQ_ENOENT;
    case SQLITE_FULL:
        return TFQ_ENOSPC;
    default:
        return TFQ_EIO;
    }
}

/* Records the connection's last error as "PATH: WHAT: sqlite message". */
static int db_fail(store *s, int rc, const char *what, tfq_error *e)
{
    return tfq_error_set(e, tfq_code(rc), "%s: %s: %s", s->path, what,
                         sqlite3_errmsg(s->db));
}

/* The cached statement id, reset and with its bindings cleared; NULL (and
 * e set) when it cannot be prepared. */
static sqlite3_stmt *stmt(store *s, int id, tfq_error *e)
{
    sqlite3_stmt *st = s->stmt[id];
    if (st == NULL) {
        int rc = sqlite3_prepare_v3(s->db, s_sql[id], -1,
                                    SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
            db_fail(s, rc, "preparing a statement", e);
            return NULL;
        }
        s->stmt[id] = st;
        return st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *text)
{
    if (text == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

/* Binds v, or NULL when v is negative (an absent coordinate). */
static void bind_opt(sqlite3_stmt *st, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* Binds v, or NULL when v is 0 (no job, no attempt). */
static void bind_id(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* Runs a bound statement that returns no rows; resets it. */
static int run(store *s, sqlite3_stmt *st, const char *what, tfq_error *e)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? TFQ_OK : db_fail(s, rc, what, e);
    sqlite3_reset(st);
    return ret;
}

/* Opens a transaction, or a savepoint inside an open one, so that the
 * operation that follows is all or nothing either way. */
static int txn_open(store *s, tfq_error *e)
{
    /* SQLite rolls a transaction back by itself after some errors (a full
     * disk, no memory).  A savepoint opened then would start a transaction
     * of its own, and its release would commit what the batch around it
     * must not: the batch fails instead, whole. */
    if (s->depth > 0 && sqlite3_get_autocommit(s->db))
        return tfq_error_set(e, TFQ_EIO, "%s: the batch's transaction was "
                             "rolled back by an earlier error; nothing of it "
                             "is recorded", s->path);
    sqlite3_stmt *st = stmt(s, s->depth == 0 ? ST_BEGIN : ST_SAVEPOINT, e);
    if (st == NULL)
        return e ? e->code : TFQ_EIO;
    int ret = run(s, st, "beginning a transaction", e);
    if (ret == TFQ_OK && s->depth++ == 0)
        s->changes_at_begin = sqlite3_total_changes64(s->db);
    return ret;
}

/* Writes n to the mirror file.  The sequence only grows while the store is
 * open, so the new text always covers the old one.  Not synced, and a
 * failed write is not an error: the commit has happened, and a mirror
 * behind its store is what a lost write leaves, which store_open_opts
 * accepts. */
static void seq_write(store *s, int64_t n)
{
    if (s->seq_fd < 0)
        return;
    char text[32];
    int len = snprintf(text, sizeof text, "%" PRId64 "\n", n);
    ssize_t wrote = pwrite(s->seq_fd, text, (size_t)len, 0);
    (void)wrote;
}

/* Before a top-level COMMIT that changed something: counts it in
 * meta.commit_seq. */
static int seq_bump(store *s, tfq_error *e)
{
    sqlite3_stmt *st = stmt(s, ST_SEQ_BUMP, e);
    if (st == NULL)
        return e ? e->code : TFQ_EIO;
    sqlite3_bind_int64(st, 1, s->seq + 1);
    return run(s, st, "counting the commit", e);
}

/* Undoes what happened since the matching txn_open. */
static void txn_abort(store *s)
{
    if (s->depth == 0)
        return;
    s->depth--;
    if (s->depth == 0) {
        sqlite3_stmt *st = stmt(s, ST_ROLLBACK, NULL);
        if (st != NULL)
            run(s, st, "rolling back", NULL);
        return;
    }
    sqlite3_stmt *st = stmt(s, ST_ROLLBACK_TO, NULL);
    if (st != NULL)
        run(s, st, "rolling back", NULL);
    st = stmt(s, ST_RELEASE, NULL);
    if (st != NULL)
        run(s, st, "rolling back", NULL);
}

/* Ends the matching txn_open: commits (releases) when ret is TFQ_OK, rolls
 * back otherwise, and returns the outcome. */
static int txn_close(store *s, int ret, tfq_error *e)
{
    if (ret != TFQ_OK) {
        txn_abort(s);
        return ret;
    }
    if (sqlite3_get_autocommit(s->db)) { /* SQLite rolled it back */
        txn_abort(s);
        return tfq_error_set(e, TFQ_EIO, "%s: the transaction was rolled "
                             "back by an earlier error; nothing of it is "
                             "recorded", s->path);
    }
    int top = s->depth == 1;
    /* Only a commit that changed something is counted: an idle timer's
     * empty transactions write no page. */
    int counted = top &&
                  sqlite3_total_changes64(s->db) != s->changes_at_begin;
    if (counted && (ret = seq_bump(s, e)) != TFQ_OK) {
        txn_abort(s);
        return ret;
    }
    sqlite3_stmt *st = stmt(s, top ? ST_COMMIT : ST_RELEASE, e);
    double t0 = counted && s->commits ? clock_mono_s() : 0;
    ret = st == NULL ? (e ? e->code : TFQ_EIO)
                     : run(s, st, "committing", e);
    if (ret == TFQ_OK && counted && s->commits)
        histogram_observe(s->commits, clock_mono_s() - t0);
    if (ret != TFQ_OK) {
        txn_abort(s);
        return ret;
    }
    s->depth--;
    if (counted)
        seq_write(s, ++s->seq);
    return TFQ_OK;
}

#define TRY(expr)                 \
    do {                          \
        ret = (expr);             \
        if (ret != TFQ_OK)        \
            goto done;            \
    } while (0)

/* Gets the statement id into st or fails the enclosing function. */
#define PREP(st, id)                               \
    do {                                           \
        (st) = stmt(s, (id), e);                   \
        if ((st) == NULL) {                        \
            ret = e ? e->code : TFQ_EIO;           \
            goto done;                             \
        }                                          \
    } while (0)

static int event_add(store *s, int64_t now_ms, int64_t job, int attempt,
                     const char *worker, const char *kind, const char *detail,
                     tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_EVENT_ADD);
    sqlite3_bind_int64(st, 1, now_ms);
    bind_id(st, 2, job);
    bind_id(st, 3, attempt);
    bind_text(st, 4, worker);
    bind_text(st, 5, kind);
    bind_text(st, 6, detail);
    ret = run(s, st, "appending an event", e);
done:
    return ret;
}

/* ---- opening and migrating ---- */

static int exec(store *s, const char *sql, const char *what, tfq_error *e)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TFQ_OK : db_fail(s, rc, what, e);
}

/* meta.key into *value (0 when absent); *found is 1 for such a row, 0 for
 * a meta table without it, -1 for a database without the meta table
 * (empty, or not a tfq store). */
static int meta_value(store *s, const char *key, int64_t *value, int *found,
                      const char *what, tfq_error *e)
{
    sqlite3_stmt *st = NULL;
    *value = 0;
    *found = -1;
    int rc = sqlite3_prepare_v2(s->db,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
        "AND name = 'meta'", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int has_meta = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return db_fail(s, rc, what, e);
    if (!has_meta)
        return TFQ_OK;
    *found = 0;
    rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = ?",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        *value = sqlite3_column_int64(st, 0);
        *found = 1;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, rc, what, e);
    return TFQ_OK;
}

/* The schema version recorded in the file: 0 for an empty database. */
static int read_version(store *s, int *version, tfq_error *e)
{
    int64_t v;
    int found;
    int ret = meta_value(s, "schema_version", &v, &found,
                         "reading the schema version", e);
    *version = (int)v;
    if (ret == TFQ_OK && found == 0)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: not a tfq store (no schema_version)",
                             s->path);
    return ret;
}

/* Applies migrations above the recorded version, one transaction each. */
static int migrate(store *s, tfq_error *e)
{
    int ret = TFQ_OK;
    TRY(exec(s, "BEGIN IMMEDIATE", "beginning a migration", e));
    int version;
    ret = read_version(s, &version, e);
    exec(s, "COMMIT", "reading the schema version", NULL);
    if (ret != TFQ_OK)
        goto done;
    if (version > STORE_SCHEMA_VERSION) {
        ret = tfq_error_set(e, TFQ_EVERSION,
                            "%s: schema version %d is newer than this tfq "
                            "(%d)", s->path, version, STORE_SCHEMA_VERSION);
        goto done;
    }
    for (int v = version + 1; v <= STORE_SCHEMA_VERSION; v++) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO meta (key, value) "
                 "VALUES ('schema_version', %d)", v);
        TRY(exec(s, "BEGIN IMMEDIATE", "beginning a migration", e));
        ret = exec(s, s_migrations[v - 1], "migrating", e);
        if (ret == TFQ_OK)
            ret = exec(s, sql, "migrating", e);
        if (ret == TFQ_OK)
            ret = exec(s, "INSERT INTO meta (key, value) VALUES "
                          "('commit_seq', 1) ON CONFLICT (key) DO UPDATE "
                          "SET value = value + 1", "migrating", e);
        if (ret == TFQ_OK)
            ret = exec(s, "COMMIT", "migrating", e);
        if (ret != TFQ_OK) {
            exec(s, "ROLLBACK", "migrating", NULL);
            tfq_error_wrap(e, ret, "migrating to schema version %d", v);
            goto done;
        }
    }
    /* A store made before the commit sequence starts it at 0. */
    TRY(exec(s, "INSERT OR IGNORE INTO meta (key, value) VALUES "
                "('commit_seq', 0)", "recording the commit sequence", e));
    s->schema_version = STORE_SCHEMA_VERSION;
done:
    return ret;
}

/* The WAL grows until a checkpoint copies it into the database, by default
 * every 1000 pages (4 MiB).  On a small file system that is room the store
 * may not have when it needs it, and a full disk cannot be checkpointed
 * out of: so the WAL is checkpointed before it takes an eighth of the file
 * system, and truncated back to that after each checkpoint. */
static int wal_bound(store *s, const char *path, tfq_error *e)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        *(slash == dir ? slash + 1 : slash) = '\0';
    struct statvfs fs;
    int64_t pages = STORE_WAL_PAGES;
    if (statvfs(dir, &fs) == 0) {
        int64_t eighth = (int64_t)fs.f_blocks * (int64_t)fs.f_frsize / 8 /
                         STORE_PAGE_BYTES;
        if (eighth < pages)
            pages = eighth < 16 ? 16 : eighth;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA wal_autocheckpoint = %lld",
             (long long)pages);
    int ret = exec(s, sql, "setting wal_autocheckpoint", e);
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %lld",
             (long long)(pages * STORE_PAGE_BYTES));
    return ret != TFQ_OK ? ret : exec(s, sql, "setting journal_size_limit", e);
}

/* ---- start-up checks: quick_check and the commit sequence ---- */

/* Fails with TFQ_EFORMAT, quoting what PRAGMA quick_check found (its
 * first four findings: the error message has room for a few), unless it
 * finds the store whole.  It reads every page, once per start: 0.8 s for
 * a store of 300,000 jobs (150 MB) in the page cache. */
static int quick_check(store *s, tfq_error *e)
{
    sqlite3_stmt *st = NULL;
    char found[TFQ_ERROR_MSG_BYTES] = "";
    size_t used = 0;
    int rows = 0, ok = 0;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(4)", -1, &st,
                                NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        const char *line = (const char *)sqlite3_column_text(st, 0);
        line = line ? line : "";
        if (rows++ == 0)
            ok = strcmp(line, "ok") == 0;
        if (used < sizeof found)
            used += (size_t)snprintf(found + used, sizeof found - used,
                                     "%s%s", rows > 1 ? "; " : "", line);
    }
    /* Past a page it cannot read, the check stops with SQLITE_CORRUPT. */
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    else if (used < sizeof found)
        snprintf(found + used, sizeof found - used, "%s%s",
                 rows > 0 ? "; " : "", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && ok && rows == 1)
        return TFQ_OK;
    for (char *p = found; (p = strchr(p, '\n')) != NULL;)
        *p = ' '; /* one line: "*** in database main *** Page 34: ..." */
    return tfq_error_set(e, TFQ_EFORMAT,
                         "%s is corrupt (PRAGMA quick_check found: %s); not "
                         "opened: restore it from a backup", s->path, found);
}

/* meta.commit_seq into *seq: 0 for a store without one (empty, or made
 * before the sequence). */
static int read_seq(store *s, int64_t *seq, tfq_error *e)
{
    int found;
    return meta_value(s, "commit_seq", seq, &found,
                      "reading the commit sequence", e);
}

/* Opens (creates) the mirror file and reads the number in it into *mirror:
 * -1 for a new or empty file.  A file that holds anything but a number is
 * TFQ_EMISMATCH, unless accept_rollback takes it for empty. */
static int seq_open(store *s, const store_opts *o, int64_t *mirror,
                    tfq_error *e)
{
    *mirror = -1;
    s->seq_fd = open(o->seq_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->seq_fd < 0)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", o->seq_path,
                             strerror(errno));
    char text[32];
    ssize_t n = pread(s->seq_fd, text, sizeof text - 1, 0);
    if (n < 0)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", o->seq_path,
                             strerror(errno));
    if (n == 0)
        return TFQ_OK;
    text[n] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] >= '0' && text[0] <= '9' && errno == 0 &&
        (strcmp(end, "\n") == 0 || *end == '\0')) {
        *mirror = v;
        return TFQ_OK;
    }
    if (o->accept_rollback)
        return TFQ_OK;
    text[strcspn(text, "\n")] = '\0';
    return tfq_error_set(e, TFQ_EMISMATCH,
                         "%s holds no commit number (it reads \"%.24s\"), so "
                         "whether %s lost commits cannot be told; not opened",
                         o->seq_path, text, s->path);
}

/* A store file that is missing, or empty with no WAL beside it, while the
 * mirror says commits were made: TFQ_EMISMATCH unless accept_rollback.
 * Checked before SQLite opens the file, which would create it. */
static int seq_check_present(store *s, const store_opts *o, int64_t mirror,
                             tfq_error *e)
{
    struct stat db, wal;
    char wal_path[4200];
    snprintf(wal_path, sizeof wal_path, "%s-wal", s->path);
    int found = stat(s->path, &db) == 0;
    int missing = !found && errno == ENOENT;
    int empty = found && db.st_size == 0 &&
                (stat(wal_path, &wal) != 0 || wal.st_size == 0);
    if (!missing && !empty)
        return TFQ_OK;
    if (o->accept_rollback) {
        s->rolled_back_from = mirror;
        return TFQ_OK;
    }
    return tfq_error_set(e, TFQ_EMISMATCH,
                         "%s is %s, but %s says %" PRId64 " commits were "
                         "made: the store was removed or truncated, and "
                         "would start empty; not opened", s->path,
                         missing ? "missing" : "empty (0 bytes, no WAL)",
                         o->seq_path, mirror);
}

/* The store holds fewer commits than the mirror says were made:
 * TFQ_EMISMATCH unless accept_rollback. */
static int seq_check(store *s, const store_opts *o, int64_t mirror,
                     tfq_error *e)
{
    int64_t have = 0;
    int ret = read_seq(s, &have, e);
    if (ret != TFQ_OK || have >= mirror || s->rolled_back_from > 0)
        return ret;
    if (o->accept_rollback) {
        s->rolled_back_from = mirror;
        return TFQ_OK;
    }
    return tfq_error_set(e, TFQ_EMISMATCH,
                         "%s holds commit %" PRId64 " but %s says commit "
                         "%" PRId64 " was made: the store lost its last "
                         "%" PRId64 " commits (its write-ahead log %s-wal "
                         "removed or cut short, or the file replaced by an "
                         "older copy); not opened", s->path, have,
                         o->seq_path, mirror, mirror - have, s->path);
}

/* After the checks and migrations: the mirror says what the store holds. */
static int seq_sync(store *s, const store_opts *o, tfq_error *e)
{
    int ret = read_seq(s, &s->seq, e);
    if (ret != TFQ_OK || s->seq_fd < 0)
        return ret;
    char text[32];
    int len = snprintf(text, sizeof text, "%" PRId64 "\n", s->seq);
    if (pwrite(s->seq_fd, text, (size_t)len, 0) != len ||
        ftruncate(s->seq_fd, len) != 0)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", o->seq_path,
                             strerror(errno));
    return TFQ_OK;
}

store *store_open(const char *path, tfq_error *e)
{
    return store_open_opts(path, NULL, e);
}

store *store_open_opts(const char *path, const store_opts *o, tfq_error *e)
{
    static const store_opts none = {0};
    o = o ? o : &none;
    store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    s->seq_fd = -1;
    s->path = strdup(path);
    if (s->path == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int64_t mirror = -1;
    if (o->seq_path != NULL &&
        (seq_open(s, o, &mirror, e) != TFQ_OK ||
         (mirror > 0 && seq_check_present(s, o, mirror, e) != TFQ_OK)))
        goto fail;
    /* No memory statistics: they take a global mutex on every allocation.
     * Only possible before SQLite's first use in the process; later it is
     * refused, harmlessly. */
    static int configured;
    if (!configured) {
        configured = 1;
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    /* NOMUTEX: a handle is used by one thread only (the coordinator's
     * loop), so SQLite need not lock it around every call. */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        if (s->db == NULL)
            tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
        else
            db_fail(s, rc, "opening", e);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    /* The first statement reads the file header, so this is where a file
     * that is not a database shows itself. */
    rc = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
    if (rc == SQLITE_NOTADB) {
        tfq_error_set(e, TFQ_EFORMAT, "%s: not an SQLite database", path);
        goto fail;
    }
    if (rc != SQLITE_OK) {
        db_fail(s, rc, "setting WAL mode", e);
        goto fail;
    }
    /* synchronous=NORMAL in WAL mode syncs the WAL at checkpoints, not at
     * every commit.  A committed transaction is in the WAL file (the OS's
     * page cache) when COMMIT returns, so it survives the process being
     * killed (kill -9, a crash); only a power loss or OS crash can lose the
     * last transactions, and never corrupts the database.  That is durable
     * enough for a queue whose workers re-run lost work. */
    /* Savepoint journals in memory and a page cache that holds a large
     * grid: the coordinator's per-request cost is otherwise mostly the
     * kernel's (temporary-file writes, page faults). */
    if (exec(s, "PRAGMA synchronous = NORMAL", "setting synchronous", e) ||
        exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys", e) ||
        exec(s, "PRAGMA temp_store = MEMORY", "setting temp_store", e) ||
        exec(s, "PRAGMA cache_size = -65536", "setting cache_size", e))
        goto fail;
    if (wal_bound(s, path, e) != TFQ_OK)
        goto fail;
    if (quick_check(s, e) != TFQ_OK ||
        (mirror > 0 && seq_check(s, o, mirror, e) != TFQ_OK))
        goto fail;
    if (migrate(s, e) != TFQ_OK || seq_sync(s, o, e) != TFQ_OK)
        goto fail;
    return s;
fail:
    /* Closing the last connection would checkpoint the WAL into the
     * database and remove it: a refused store is left as it was found. */
    if (s->db != NULL)
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    store_destroy(&s);
    return NULL;
}

void store_destroy(store **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    store *s = *sp;
    if (s->db != NULL) {
        while (s->depth > 0)
            txn_abort(s);
        for (int i = 0; i < ST_COUNT; i++)
            sqlite3_finalize(s->stmt[i]);
        sqlite3_close(s->db);
    }
    if (s->seq_fd >= 0)
        close(s->seq_fd);
    free(s->path);
    free(s);
    *sp = NULL;
}

int store_schema_version(store *s)
{
    return s->schema_version;
}

int64_t store_commit_seq(store *s)
{
    return s->seq;
}

int64_t store_rolled_back_from(store *s)
{
    return s->rolled_back_from;
}

const char *store_migration_sql(int version)
{
    if (version < 1 || version > STORE_SCHEMA_VERSION)
        return NULL;
    return s_migrations[version - 1];
}

int store_compact_wal(store *s, tfq_error *e)
{
    if (s->depth != 0)
        return tfq_error_set(e, TFQ_EINVAL, "%s: a batch is open", s->path);
    return exec(s, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing the WAL",
                e);
}

int store_begin(store *s, tfq_error *e)
{
    return txn_open(s, e);
}

int store_commit(store *s, tfq_error *e)
{
    if (s->depth == 0)
        return tfq_error_set(e, TFQ_EINVAL, "%s: commit without a batch",
                             s->path);
    return txn_close(s, TFQ_OK, e);
}

void store_rollback(store *s)
{
    txn_abort(s);
}

/* ---- adding work ---- */

int store_grid_add(store *s, const char *name, const char *spec,
                   int64_t *grid_id, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (name == NULL || spec == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "grid: name and spec required");
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_GRID_ADD);
    bind_text(st, 1, name);
    bind_text(st, 2, spec);
    sqlite3_bind_int64(st, 3, now_ms);
    TRY(run(s, st, "adding a grid", e));
    int64_t id = sqlite3_last_insert_rowid(s->db);
    TRY(event_add(s, now_ms, 0, 0, NULL, "grid_add", name, e));
    if (grid_id != NULL)
        *grid_id = id;
done:
    if (ret != TFQ_OK)
        tfq_error_wrap(e, ret, "adding grid %s", name);
    return txn_close(s, ret, e);
}

int store_grid_set_metric(store *s, int64_t grid_id, const char *metric,
                          tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_GRID_METRIC);
    sqlite3_bind_int64(st, 1, grid_id);
    bind_text(st, 2, metric);
    ret = run(s, st, "setting the grid's metric", e);
done:
    return txn_close(s, ret, e);
}

int store_grid_find(store *s, const char *name, int64_t *grid_id,
                    tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_GRID_FIND);
    bind_text(st, 1, name);
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        *grid_id = id;
    else if (rc == SQLITE_DONE)
        ret = tfq_error_set(e, TFQ_ENOENT, "no grid named '%s'", name);
    else
        ret = db_fail(s, rc, "finding a grid", e);
done:
    return ret;
}

int store_job_add(store *s, const store_job *job, int64_t *job_id,
                  int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (job->name == NULL || job->kind == NULL || job->spec == NULL ||
        job->identity == NULL)
        return tfq_error_set(e, TFQ_EINVAL,
                             "job: name, kind, spec and identity required");
    if (strcmp(job->kind, "train") != 0 && strcmp(job->kind, "sleep") != 0)
        return tfq_error_set(e, TFQ_EINVAL,
                             "job %s: kind '%s' is neither train nor sleep",
                             job->name, job->kind);
    /* One statement is atomic by itself: inside a batch it needs no
     * savepoint, which would double the cost of adding a grid. */
    int own = s->depth == 0;
    if (own && (ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, job->reused_from > 0 ? ST_JOB_REUSE : ST_JOB_ADD);
    if (job->reused_from > 0)
        sqlite3_bind_int64(st, 17, job->reused_from);
    bind_id(st, 1, job->grid_id);
    bind_text(st, 2, job->name);
    bind_text(st, 3, job->kind);
    bind_text(st, 4, job->spec);
    bind_text(st, 5, job->identity);
    sqlite3_bind_int(st, 6, job->priority);
    sqlite3_bind_int(st, 7, job->max_attempts > 0 ? job->max_attempts : 3);
    bind_text(st, 8, job->split);
    bind_text(st, 9, job->similarity);
    bind_text(st, 10, job->target);
    bind_opt(st, 11, job->n);
    bind_text(st, 12, job->variant);
    bind_opt(st, 13, job->finetune);
    bind_opt(st, 14, job->seed);
    sqlite3_bind_int64(st, 15, now_ms);
    bind_id(st, 16, job->init_from);
    bind_text(st, 18, job->sweep);
    TRY(run(s, st, "inserting", e));
    if (job_id != NULL)
        *job_id = sqlite3_last_insert_rowid(s->db);
done:
    if (ret != TFQ_OK)
        tfq_error_wrap(e, ret, "adding job %s", job->name);
    return own ? txn_close(s, ret, e) : ret;
}

int store_job_find(store *s, int64_t grid_id, const char *name, int64_t *id,
                   char identity[65], char state[16], tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    *id = 0;
    PREP(st, ST_JOB_FIND);
    sqlite3_bind_int64(st, 1, grid_id);
    bind_text(st, 2, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        snprintf(identity, 65, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(state, 16, "%s", (const char *)sqlite3_column_text(st, 2));
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = db_fail(s, rc, "finding a job", e);
done:
    return ret;
}

/* The first column of statement id's first row, given text as its one
 * parameter, into *out (0 for no row). */
static int int_by_text(store *s, int id, const char *text, int64_t *out,
                       const char *what, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    *out = 0;
    PREP(st, id);
    bind_text(st, 1, text);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = db_fail(s, rc, what, e);
done:
    return ret;
}

int store_reusable(store *s, const char *identity, int64_t *id, tfq_error *e)
{
    return int_by_text(s, ST_REUSABLE, identity, id, "finding finished work",
                       e);
}

int store_job_reset(store *s, int64_t id, int64_t now_ms, int *changed,
                    tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_JOB_RESET);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "resetting a job", e));
    *changed = sqlite3_changes(s->db);
    if (*changed) { /* run again from scratch: resume from nothing */
        PREP(st, ST_CKPT_BAD_JOB);
        sqlite3_bind_int64(st, 1, id);
        bind_text(st, 2, "submit --force");
        TRY(run(s, st, "dropping the job's checkpoints", e));
    }
done:
    return ret;
}

int store_dep_add(store *s, int64_t job, int64_t depends_on, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (job == depends_on)
        return tfq_error_set(e, TFQ_EINVAL, "job %lld cannot depend on itself",
                             (long long)job);
    int own = s->depth == 0; /* one statement: see store_job_add */
    if (own && (ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_DEP_ADD);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, depends_on);
    ret = run(s, st, "inserting", e);
done:
    if (ret != TFQ_OK)
        tfq_error_wrap(e, ret, "adding dependency %lld -> %lld",
                       (long long)job, (long long)depends_on);
    return own ? txn_close(s, ret, e) : ret;
}

/* The body of store_refresh_ready, inside the caller's transaction. */
static int refresh(store *s, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    /* Blocking first, until it stops spreading, so that a job behind a
     * dead chain is never made ready. */
    for (;;) {
        PREP(st, ST_BLOCK);
        sqlite3_bind_int64(st, 1, now_ms);
        TRY(run(s, st, "blocking jobs", e));
        if (sqlite3_changes(s->db) == 0)
            break;
    }
    PREP(st, ST_READY);
    sqlite3_bind_int64(st, 1, now_ms);
    ret = run(s, st, "making jobs ready", e);
done:
    return ret;
}

/* What refresh does, for the dependents of one job that just finished:
 * a finish must not cost a scan of every pending job of a large grid. */
static int refresh_after(store *s, int64_t job, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    /* Most jobs of a large grid are leaves: one index probe spares them
     * the two statements below. */
    PREP(st, ST_HAS_DEPENDENTS);
    sqlite3_bind_int64(st, 1, job);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        goto done;
    if (rc != SQLITE_ROW) {
        ret = db_fail(s, rc, "finding dependents", e);
        goto done;
    }
    PREP(st, ST_BLOCK_AFTER);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "blocking dependents", e));
    PREP(st, ST_READY_AFTER);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    ret = run(s, st, "making dependents ready", e);
done:
    return ret;
}

int store_refresh_ready(store *s, int64_t now_ms, tfq_error *e)
{
    int ret = txn_open(s, e);
    if (ret != TFQ_OK)
        return ret;
    ret = refresh(s, now_ms, e);
    return txn_close(s, ret, e);
}

/* ---- leasing and attempts ---- */

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

/* Leases the job l->job_id (a ready job, picked with its name, spec and
 * whether it copies layers), filling the rest of l. */
static int lease_one(store *s, const char *worker, const char *holder,
                     int64_t now_ms, store_leased *l, int copies, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    int64_t job = l->job_id;
    PREP(st, ST_NEXT_ATTEMPT);
    sqlite3_bind_int64(st, 1, job);
    int rc = sqlite3_step(st);
    int attempt = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        ret = db_fail(s, rc, "numbering the attempt", e);
        goto done;
    }

    PREP(st, ST_JOB_RUN);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "marking the job running", e));

    /* Only an earlier attempt can have left a checkpoint. */
    if (attempt > 1) {
        PREP(st, ST_RESUME);
        sqlite3_bind_int64(st, 1, job);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            snprintf(l->resume_sha256, sizeof l->resume_sha256, "%s",
                     (const char *)sqlite3_column_text(st, 0));
            l->resume_epoch = sqlite3_column_int(st, 1);
            l->resume_attempt = sqlite3_column_int(st, 2);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            ret = db_fail(s, rc, "finding a checkpoint", e);
            goto done;
        }
    }

    PREP(st, ST_ATTEMPT_ADD);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    bind_text(st, 3, worker);
    sqlite3_bind_int64(st, 4, now_ms);
    bind_text(st, 5, holder);
    bind_text(st, 6, l->resume_sha256[0] ? l->resume_sha256 : NULL);
    TRY(run(s, st, "adding the attempt", e));

    if (copies) {
        PREP(st, ST_INIT);
        sqlite3_bind_int64(st, 1, job);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            snprintf(l->init_sha256, sizeof l->init_sha256, "%s",
                     (const char *)sqlite3_column_text(st, 0));
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            ret = db_fail(s, rc, "finding the source checkpoint", e);
            goto done;
        }
    }

    TRY(event_add(s, now_ms, job, attempt, worker, "lease", NULL, e));
    l->attempt = attempt;
done:
    return ret;
}

int store_lease_many(store *s, const char *worker,
                     const char *const *holders, int64_t now_ms, int max,
                     store_leased *out, int *n, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    int got = 0;
    uint64_t copies = 0; /* bit i: out[i] copies layers */
    *n = 0;
    if (max > STORE_MAX_LEASE)
        return tfq_error_set(e, TFQ_EINVAL, "at most %d jobs per lease",
                             STORE_MAX_LEASE);
    memset(out, 0, (size_t)(max > 0 ? max : 0) * sizeof *out);
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    /* The picks are read whole before the first update: the updates
     * change the index the pick walks. */
    PREP(st, ST_PICK);
    sqlite3_bind_int(st, 1, max);
    int rc;
    while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_leased *l = &out[got++];
        l->job_id = sqlite3_column_int64(st, 0);
        snprintf(l->kind, sizeof l->kind, "%s",
                 (const char *)sqlite3_column_text(st, 1));
        l->name = dup_column(st, 2);
        l->spec = dup_column(st, 3);
        if (sqlite3_column_type(st, 4) != SQLITE_NULL)
            copies |= (uint64_t)1 << (got - 1);
        if (l->name == NULL || l->spec == NULL) {
            sqlite3_reset(st);
            ret = tfq_error_set(e, TFQ_ENOMEM, "leasing: out of memory");
            goto done;
        }
    }
    sqlite3_reset(st);
    if (got < max && rc != SQLITE_DONE) {
        ret = db_fail(s, rc, "picking jobs", e);
        goto done;
    }
    for (int i = 0; i < got; i++)
        TRY(lease_one(s, worker, holders ? holders[i] : NULL, now_ms, &out[i],
                      (int)(copies >> i & 1), e));
done:
    ret = txn_close(s, ret, e);
    if (ret != TFQ_OK) {
        for (int i = 0; i < got; i++)
            store_leased_release(&out[i]);
        got = 0;
    }
    *n = got;
    return ret;
}

void store_leased_release(store_leased *l)
{
    if (l == NULL)
        return;
    free(l->name);
    free(l->spec);
    memset(l, 0, sizeof *l);
}

/* TFQ_OK when attempt is job's running attempt and holder holds it;
 * TFQ_EPERM when another holds it (whatever its state), else TFQ_EMISMATCH
 * with the attempt's state in the message. */
static int check_running(store *s, int64_t job, int attempt,
                         const char *holder, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_ATTEMPT_STATE);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    bind_text(st, 3, holder);
    int rc = sqlite3_step(st);
    char state[16] = "unknown";
    int held = 1;
    if (rc == SQLITE_ROW) {
        snprintf(state, sizeof state, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        held = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = db_fail(s, rc, "reading the attempt", e);
        goto done;
    }
    if (!held)
        ret = tfq_error_set(e, TFQ_EPERM, "job %lld attempt %d is not this "
                            "peer's lease (the lease token does not match)",
                            (long long)job, attempt);
    else if (strcmp(state, "running") != 0)
        ret = tfq_error_set(e, TFQ_EMISMATCH,
                            "job %lld attempt %d is not running (its state "
                            "is %s)", (long long)job, attempt, state);
done:
    return ret;
}

int store_check_lease(store *s, int64_t job, int attempt, const char *holder,
                      tfq_error *e)
{
    return check_running(s, job, attempt, holder, e);
}

int store_held(store *s, const char *worker, int *n, tfq_error *e)
{
    int64_t held = 0;
    int ret = int_by_text(s, ST_HELD, worker, &held, "counting leases", e);
    *n = (int)held;
    return ret;
}

int store_job_spec(store *s, int64_t job, char **spec, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    *spec = NULL;
    PREP(st, ST_JOB_SPEC);
    sqlite3_bind_int64(st, 1, job);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *spec = dup_column(st, 0);
        if (*spec == NULL)
            ret = tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    } else if (rc == SQLITE_DONE) {
        ret = tfq_error_set(e, TFQ_ENOENT, "no job %lld", (long long)job);
    } else {
        ret = db_fail(s, rc, "reading the job", e);
    }
    sqlite3_reset(st);
done:
    return ret;
}

int store_heartbeat(store *s, int64_t job, int attempt, const char *holder,
                    int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    /* The update is the check; only when it changed nothing is the reason
     * looked up. */
    PREP(st, ST_HEARTBEAT);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int64(st, 3, now_ms);
    bind_text(st, 4, holder);
    TRY(run(s, st, "recording a heartbeat", e));
    if (sqlite3_changes(s->db) == 0) {
        ret = check_running(s, job, attempt, holder, e);
        if (ret == TFQ_OK)
            ret = tfq_error_set(e, TFQ_EIO, "job %lld attempt %d: the "
                                "heartbeat was not recorded",
                                (long long)job, attempt);
    }
done:
    return txn_close(s, ret, e);
}

int store_metric_add(store *s, int64_t job, int attempt, const char *holder,
                     int epoch,
                     double loss, double test_acc, double images_per_s,
                     double eta_s, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    TRY(check_running(s, job, attempt, holder, e));
    PREP(st, ST_METRIC_ADD);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int(st, 3, epoch);
    sqlite3_bind_double(st, 4, loss);
    sqlite3_bind_double(st, 5, test_acc);
    sqlite3_bind_double(st, 6, images_per_s);
    sqlite3_bind_double(st, 7, eta_s);
    ret = run(s, st, "recording metrics", e);
done:
    return txn_close(s, ret, e);
}

int store_checkpoint_add(store *s, int64_t job, int attempt,
                         const char *holder, int epoch,
                         const char *sha256, int64_t bytes, int64_t now_ms,
                         tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (sha256 == NULL || strlen(sha256) != 64)
        return tfq_error_set(e, TFQ_EINVAL,
                             "job %lld: checkpoint sha256 must be 64 hex "
                             "digits", (long long)job);
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    TRY(check_running(s, job, attempt, holder, e));
    PREP(st, ST_CKPT_ADD);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int(st, 3, epoch);
    bind_text(st, 4, sha256);
    sqlite3_bind_int64(st, 5, bytes);
    sqlite3_bind_int64(st, 6, now_ms);
    TRY(run(s, st, "recording a checkpoint", e));
    ret = event_add(s, now_ms, job, attempt, NULL, "checkpoint", sha256, e);
done:
    return txn_close(s, ret, e);
}

/* Ends the running attempt with state (and error); changes nothing when
 * it is not running (sqlite3_changes says which). */
static int attempt_end(store *s, int64_t job, int attempt, const char *holder,
                       const char *state, const char *error, int64_t now_ms,
                       tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_ATTEMPT_END);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    bind_text(st, 3, state);
    sqlite3_bind_int64(st, 4, now_ms);
    bind_text(st, 5, error);
    bind_text(st, 6, holder);
    ret = run(s, st, "ending the attempt", e);
done:
    return ret;
}

/* A result's fields: what a train job reports (worker/job.c), each with
 * its range.  A sleep job reports {}. */
typedef enum { R_ACC, R_COUNT, R_SECONDS, R_LOSS, R_HEX, R_ACCS } result_type;

static const struct {
    const char *key;
    result_type type;
} result_fields[] = {
    {"final_acc", R_ACC},      {"best_acc", R_ACC},
    {"topk_acc", R_ACC},       {"topk", R_COUNT},
    {"epochs", R_COUNT},       {"final_loss", R_LOSS},
    {"train_seconds", R_SECONDS}, {"data_fingerprint", R_HEX},
    {"accs", R_ACCS},
};

/* The most a result may hold: the worker's result buffer. */
#define RESULT_MAX_BYTES 16384
#define RESULT_MAX_COUNT 1000000

/* Checks one field of a result; why gets what is wrong. */
static int result_field_ok(result_type t, const char *type,
                           sqlite3_stmt *row, char *why, size_t bytes)
{
    const int number = strcmp(type, "integer") == 0 || strcmp(type, "real") == 0;
    const double v = sqlite3_column_double(row, 2);
    switch (t) {
    case R_ACC:
        if (number && v >= 0.0 && v <= 1.0)
            return 1;
        snprintf(why, bytes, "an accuracy in [0, 1], not %s %.64s", type,
                 (const char *)sqlite3_column_text(row, 2));
        return 0;
    case R_COUNT:
        if (strcmp(type, "integer") == 0 && v >= 0 && v <= RESULT_MAX_COUNT)
            return 1;
        snprintf(why, bytes, "a whole number in [0, %d]", RESULT_MAX_COUNT);
        return 0;
    case R_SECONDS:
    case R_LOSS:
        if ((number && v >= 0.0 && v < 1e12) ||
            (t == R_LOSS && strcmp(type, "null") == 0))
            return 1;
        snprintf(why, bytes, "a number of at least 0%s",
                 t == R_LOSS ? " (or null)" : "");
        return 0;
    case R_HEX: {
        const char *h = (const char *)sqlite3_column_text(row, 2);
        size_t n = h != NULL ? strlen(h) : 0;
        int ok = strcmp(type, "text") == 0 && (n == 0 || n == 64);
        for (size_t i = 0; ok && i < n; i++)
            ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
        if (ok)
            return 1;
        snprintf(why, bytes, "64 lower-case hex digits or \"\"");
        return 0;
    }
    case R_ACCS:
        if (strcmp(type, "array") == 0)
            return 1; /* its elements: RESULT_ACCS */
        snprintf(why, bytes, "an array of accuracies");
        return 0;
    }
    return 0;
}

/* Refuses a result that is not what a job reports (result_fields), naming
 * the field; nothing is stored then.  One bad row would otherwise break
 * every report that reads it. */
static int result_check(store *s, int64_t job, int attempt, const char *json,
                        tfq_error *e)
{
    if (json == NULL || strcmp(json, "{}") == 0)
        return TFQ_OK;
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    char why[160] = "";
    if (strlen(json) > RESULT_MAX_BYTES) {
        snprintf(why, sizeof why, "%zu bytes, over the %d a result may take",
                 strlen(json), RESULT_MAX_BYTES);
        goto bad;
    }
    PREP(st, ST_RESULT_SHAPE);
    bind_text(st, 1, json);
    int rc = sqlite3_step(st);
    int object = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT &&
                 strcmp((const char *)sqlite3_column_text(st, 0), "object") == 0;
    sqlite3_reset(st);
    if (!object) {
        snprintf(why, sizeof why, "not a JSON object");
        goto bad;
    }
    PREP(st, ST_RESULT_FIELDS);
    bind_text(st, 1, json);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        size_t i = 0, n = sizeof result_fields / sizeof result_fields[0];
        while (i < n && strcmp(key, result_fields[i].key) != 0)
            i++;
        char what[128];
        if (i == n) {
            snprintf(why, sizeof why, "unknown field '%.48s'", key);
        } else if (!result_field_ok(result_fields[i].type, type, st, what,
                                    sizeof what)) {
            snprintf(why, sizeof why, "field '%s': expected %s", key, what);
        } else {
            continue;
        }
        sqlite3_reset(st);
        goto bad;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, "checking a result", e);
    PREP(st, ST_RESULT_ACCS);
    bind_text(st, 1, json);
    if (sqlite3_step(st) == SQLITE_ROW &&
        (sqlite3_column_int64(st, 0) > RESULT_MAX_COUNT ||
         sqlite3_column_int64(st, 1) > 0))
        snprintf(why, sizeof why, "field 'accs': expected accuracies in "
                 "[0, 1], at most %d", RESULT_MAX_COUNT);
    sqlite3_reset(st);
    if (why[0] == '\0')
        return TFQ_OK;
bad:
    return tfq_error_set(e, TFQ_EINVAL, "result of job %lld attempt %d: %s; "
                         "nothing stored", (long long)job, attempt, why);
done:
    return ret;
}

int store_finish(store *s, int64_t job, int attempt, const char *holder,
                 int ok,
                 const char *result_json, const char *error, int64_t now_ms,
                 tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    /* Bound with SQLITE_STATIC to a statement run after the branch that
     * fills it: it must live as long as the function. */
    char why[64];
    if (!ok && error == NULL)
        error = "failed";
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    /* Ending the attempt is the check that it runs: one statement. */
    TRY(attempt_end(s, job, attempt, holder, ok ? "succeeded" : "failed",
                    ok ? NULL : error, now_ms, e));
    if (sqlite3_changes(s->db) == 0) {
        ret = check_running(s, job, attempt, holder, e);
        if (ret == TFQ_OK) /* cannot be: it was not running a moment ago */
            ret = tfq_error_set(e, TFQ_EIO, "job %lld attempt %d: the "
                                "attempt could not be ended",
                                (long long)job, attempt);
        goto done;
    }
    /* Checked once the holder is known: anyone else learns nothing. */
    if (ok)
        TRY(result_check(s, job, attempt, result_json, e));
    if (ok) {
        PREP(st, ST_JOB_SUCCEED);
        sqlite3_bind_int64(st, 1, job);
        bind_text(st, 2, result_json);
        sqlite3_bind_int64(st, 3, now_ms);
    } else {
        PREP(st, ST_JOB_FAIL);
        sqlite3_bind_int64(st, 1, job);
        bind_text(st, 2, error);
        sqlite3_bind_int64(st, 3, now_ms);
        TRY(run(s, st, "finishing the job", e));
        snprintf(why, sizeof why, "attempt %d resumed from it and failed",
                 attempt);
        PREP(st, ST_CKPT_BAD_RESUMED);
        sqlite3_bind_int64(st, 1, job);
        sqlite3_bind_int(st, 2, attempt);
        bind_text(st, 3, why);
    }
    TRY(run(s, st, "finishing the job", e));
    TRY(event_add(s, now_ms, job, attempt, NULL,
                  ok ? "succeeded" : "failed", ok ? result_json : error, e));
    ret = refresh_after(s, job, now_ms, e);
done:
    return txn_close(s, ret, e);
}

int store_release(store *s, int64_t job, int attempt, const char *holder,
                  int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    TRY(check_running(s, job, attempt, holder, e));
    TRY(attempt_end(s, job, attempt, holder, "released", NULL, now_ms, e));
    PREP(st, ST_JOB_RELEASE);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "releasing the job", e));
    ret = event_add(s, now_ms, job, attempt, NULL, "released", NULL, e);
done:
    return txn_close(s, ret, e);
}

int store_expire(store *s, int64_t now_ms, int64_t liveness_ms,
                 int *requeued, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    int lost = 0;
    int64_t cutoff = now_ms - liveness_ms;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    /* Events and jobs first: both find the attempts by their still-running
     * state, which the last statement changes. */
    static const int steps[] = {ST_EXPIRE_EVENTS, ST_EXPIRE_CKPTS, ST_EXPIRE_JOBS,
                                ST_EXPIRE_ATTEMPTS};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        PREP(st, steps[i]);
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, cutoff);
        TRY(run(s, st, "expiring attempts", e));
    }
    lost = sqlite3_changes(s->db);
    if (lost > 0)
        ret = refresh(s, now_ms, e);
done:
    ret = txn_close(s, ret, e);
    if (requeued != NULL)
        *requeued = ret == TFQ_OK ? lost : 0;
    return ret;
}

int store_recover(store *s, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_RECOVER);
    sqlite3_bind_int64(st, 1, now_ms);
    TRY(run(s, st, "recovering attempts", e));
    char detail[64];
    snprintf(detail, sizeof detail, "%d running attempts kept",
             sqlite3_changes(s->db));
    ret = event_add(s, now_ms, 0, 0, NULL, "recover", detail, e);
done:
    return txn_close(s, ret, e);
}

/* The state of job into state; TFQ_ENOENT for an unknown job. */
static int job_state(store *s, int64_t job, char *state, size_t bytes,
                     tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_JOB_STATE);
    sqlite3_bind_int64(st, 1, job);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(state, bytes, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        ret = tfq_error_set(e, TFQ_ENOENT, "job %lld: no such job",
                            (long long)job);
    else if (rc != SQLITE_ROW)
        ret = db_fail(s, rc, "reading the job", e);
done:
    return ret;
}

int store_retry(store *s, int64_t job, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    char state[16];
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    TRY(job_state(s, job, state, sizeof state, e));
    if (strcmp(state, "failed") != 0 && strcmp(state, "blocked") != 0 &&
        strcmp(state, "cancelled") != 0) {
        ret = tfq_error_set(e, TFQ_EINVAL,
                            "job %lld is %s; only a failed, blocked or "
                            "cancelled job can be retried", (long long)job,
                            state);
        goto done;
    }
    PREP(st, ST_JOB_RETRY);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "retrying the job", e));
    PREP(st, ST_UNBLOCK);
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "unblocking dependents", e));
    TRY(event_add(s, now_ms, job, 0, NULL, "retry", state, e));
    ret = refresh(s, now_ms, e);
done:
    return txn_close(s, ret, e);
}

/* Cancels the grid's running attempts, then its unfinished jobs; *cancelled
 * (may be NULL): how many jobs. */
static int cancel(store *s, int64_t grid_id, int64_t now_ms, int *cancelled,
                  tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_CANCEL_ATTEMPTS_GRID);
    sqlite3_bind_int64(st, 1, grid_id);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "cancelling attempts", e));
    PREP(st, ST_CANCEL_JOBS_GRID);
    sqlite3_bind_int64(st, 1, grid_id);
    sqlite3_bind_int64(st, 2, now_ms);
    TRY(run(s, st, "cancelling jobs", e));
    int n = sqlite3_changes(s->db);
    if (cancelled != NULL)
        *cancelled = n;
    ret = refresh(s, now_ms, e);
done:
    return ret;
}

int store_cancel_grid(store *s, int64_t grid_id, int64_t now_ms,
                      int *cancelled, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    int n = 0;
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_GRID_EXISTS);
    sqlite3_bind_int64(st, 1, grid_id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        ret = tfq_error_set(e, TFQ_ENOENT, "grid %lld: no such grid",
                            (long long)grid_id);
        goto done;
    }
    if (rc != SQLITE_ROW) {
        ret = db_fail(s, rc, "reading the grid", e);
        goto done;
    }
    TRY(cancel(s, grid_id, now_ms, &n, e));
    char detail[64];
    snprintf(detail, sizeof detail, "grid %lld: %d jobs", (long long)grid_id,
             n);
    ret = event_add(s, now_ms, 0, 0, NULL, "cancel", detail, e);
done:
    ret = txn_close(s, ret, e);
    if (cancelled != NULL)
        *cancelled = ret == TFQ_OK ? n : 0;
    return ret;
}

/* ---- reading and logging ---- */

int store_counts_get(store *s, int64_t grid_id, store_counts *out,
                     tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    PREP(st, grid_id == 0 ? ST_COUNTS_ALL : ST_COUNTS_GRID);
    if (grid_id != 0)
        sqlite3_bind_int64(st, 1, grid_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        int64_t *slot = strcmp(state, "pending") == 0     ? &out->pending
                        : strcmp(state, "ready") == 0     ? &out->ready
                        : strcmp(state, "running") == 0   ? &out->running
                        : strcmp(state, "succeeded") == 0 ? &out->succeeded
                        : strcmp(state, "failed") == 0    ? &out->failed
                        : strcmp(state, "blocked") == 0   ? &out->blocked
                                                          : &out->cancelled;
        *slot += n;
        out->total += n;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        ret = db_fail(s, rc, "counting jobs", e);
        goto done;
    }
    PREP(st, ST_ATTEMPT_COUNTS);
    sqlite3_bind_int64(st, 1, grid_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        *(strcmp(state, "lost") == 0       ? &out->lost
          : strcmp(state, "released") == 0 ? &out->released
                                           : &out->failures) =
            sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        ret = db_fail(s, rc, "counting attempts", e);
done:
    return ret;
}

/* Appends p[0 .. n) to the growing text *buf (*len used, *cap held). */
static int text_append(char **buf, size_t *len, size_t *cap, const char *p,
                       size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        while (*len + n + 1 > ncap)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Steps st, a bound statement whose rows are an id and a JSON object, and
 * joins the rows into one JSON array of at most max_bytes, stopping before
 * the row that would not fit; *next gets the id of the last row taken when
 * one did not fit, else 0 (NULL next: a row that does not fit is
 * TFQ_ERANGE, as a row alone larger than max_bytes always is).  Resets st. */
static int collect(store *s, sqlite3_stmt *st, size_t max_bytes, char **json,
                   int64_t *next, tfq_error *e)
{
    int ret = TFQ_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int64_t last = 0;
    int rows = 0, rc = SQLITE_DONE;
    *json = NULL;
    if (next != NULL)
        *next = 0;
    if (text_append(&buf, &len, &cap, "[", 1) != 0)
        goto nomem;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        if (row == NULL)
            goto nomem;
        /* The separator or the opening bracket, the row, the closing one. */
        if (len + (rows > 0) + n + 1 > max_bytes) {
            if (rows == 0 || next == NULL)
                ret = tfq_error_set(e, TFQ_ERANGE, "report: %s of id %lld "
                                    "is %zu bytes, more than a page holds "
                                    "(%zu)", rows ? "the page up to the row"
                                    : "the row", (long long)
                                    sqlite3_column_int64(st, 0),
                                    len + n, max_bytes);
            else
                *next = last;
            break;
        }
        if ((rows > 0 && text_append(&buf, &len, &cap, ",", 1) != 0) ||
            text_append(&buf, &len, &cap, row, n) != 0)
            goto nomem;
        last = sqlite3_column_int64(st, 0);
        rows++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = db_fail(s, rc, "building a report", e);
    else if (ret == TFQ_OK && text_append(&buf, &len, &cap, "]", 1) != 0)
        goto nomem;
    sqlite3_reset(st);
    if (ret == TFQ_OK)
        *json = buf;
    else
        free(buf);
    return ret;
nomem:
    sqlite3_reset(st);
    free(buf);
    return tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
}

/* Runs a report statement (rows of an id and its JSON object, in id order,
 * after ?2, of grid ?1; the workers' takes now as ?1, and it and curves
 * take arg3 as ?3) as collect does. */
static int report(store *s, int id, int64_t grid_id, int64_t after,
                  int64_t arg3, size_t max_bytes, char **json, int64_t *next,
                  tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, id);
    sqlite3_bind_int64(st, 1, grid_id);
    sqlite3_bind_int64(st, 2, after);
    if (sqlite3_bind_parameter_count(st) >= 3)
        sqlite3_bind_int64(st, 3, arg3);
    return collect(s, st, max_bytes, json, next, e);
done:
    return ret;
}

int store_results_json(store *s, int64_t grid_id, int64_t after,
                       size_t max_bytes, char **json, int64_t *next,
                       tfq_error *e)
{
    return report(s, ST_RESULTS, grid_id, after, 0, max_bytes, json, next,
                  e);
}

int store_curves_json(store *s, int64_t grid_id, int64_t job, int64_t after,
                      size_t max_bytes, char **json, int64_t *next,
                      tfq_error *e)
{
    return report(s, ST_CURVES, grid_id, after, job, max_bytes, json, next,
                  e);
}

int store_grids_json(store *s, int64_t after, size_t max_bytes, char **json,
                     int64_t *next, tfq_error *e)
{
    return report(s, ST_GRIDS, 0, after, 0, max_bytes, json, next, e);
}

int store_running_json(store *s, int64_t grid_id, int64_t after,
                       size_t max_bytes, char **json, int64_t *next,
                       tfq_error *e)
{
    return report(s, ST_RUNNING, grid_id, after, 0, max_bytes, json, next,
                  e);
}

int store_workers_json(store *s, int64_t now_ms, int64_t gone_after_ms,
                       int64_t after, size_t max_bytes, char **json,
                       int64_t *next, tfq_error *e)
{
    return report(s, ST_WORKERS, now_ms, after, gone_after_ms, max_bytes,
                  json, next, e);
}

int store_job_get(store *s, int64_t job, const char *name, int64_t grid_id,
                  store_job_info *out, int max, int *n, tfq_error *e)
{
    int ret = TFQ_OK, rc;
    sqlite3_stmt *st;
    *n = 0;
    PREP(st, ST_JOB_GET);
    sqlite3_bind_int64(st, 1, job);
    bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, grid_id);
    sqlite3_bind_int(st, 4, max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_job_info *j = &out[(*n)++];
        const char *sha = (const char *)sqlite3_column_text(st, 4);
        j->job = sqlite3_column_int64(st, 0);
        snprintf(j->name, sizeof j->name, "%s", sqlite3_column_text(st, 1));
        snprintf(j->grid, sizeof j->grid, "%s", sqlite3_column_text(st, 2));
        snprintf(j->state, sizeof j->state, "%s", sqlite3_column_text(st, 3));
        snprintf(j->sha256, sizeof j->sha256, "%s", sha ? sha : "");
        j->epoch = sqlite3_column_int(st, 5);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        ret = db_fail(s, rc, "finding a job", e);
done:
    return ret;
}

int store_retry_grid(store *s, int64_t grid_id, int64_t now_ms, int *count,
                     tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    *count = 0;
    PREP(st, ST_RETRYABLE);
    sqlite3_bind_int64(st, 1, grid_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            int64_t *nid = realloc(ids, ncap * sizeof *ids);
            if (nid == NULL) {
                ret = tfq_error_set(e, TFQ_ENOMEM, "retry: out of memory");
                break;
            }
            ids = nid;
            cap = ncap;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (ret == TFQ_OK && rc != SQLITE_DONE)
        ret = db_fail(s, rc, "finding jobs to retry", e);
    /* A job unblocked by an earlier retry in this loop is pending now, and
     * store_retry refuses it; that is not an error here. */
    for (size_t i = 0; ret == TFQ_OK && i < n; i++) {
        tfq_error one = {0};
        if (store_retry(s, ids[i], now_ms, &one) == TFQ_OK)
            (*count)++;
    }
done:
    free(ids);
    return ret;
}

int store_worker_seen(store *s, const char *id, const char *host, int pid,
                      int threads, int64_t now_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (id == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "worker: id required");
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_WORKER_SEEN);
    bind_text(st, 1, id);
    bind_text(st, 2, host);
    sqlite3_bind_int(st, 3, pid);
    sqlite3_bind_int(st, 4, threads);
    sqlite3_bind_int64(st, 5, now_ms);
    ret = run(s, st, "recording a worker", e);
done:
    return txn_close(s, ret, e);
}

/* WORKER_TOUCH (every_ms: the throttle) or WORKER_BYE for worker id. */
static int worker_update(store *s, int which, const char *id, int64_t now_ms,
                         int64_t every_ms, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    if (id == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "worker: id required");
    if ((ret = txn_open(s, e)) != TFQ_OK)
        return ret;
    PREP(st, which);
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    if (which == ST_WORKER_TOUCH)
        sqlite3_bind_int64(st, 3, every_ms);
    ret = run(s, st, "recording a worker", e);
done:
    return txn_close(s, ret, e);
}

int store_worker_touch(store *s, const char *id, int64_t now_ms,
                       int64_t every_ms, tfq_error *e)
{
    return worker_update(s, ST_WORKER_TOUCH, id, now_ms, every_ms, e);
}

int store_worker_bye(store *s, const char *id, int64_t now_ms, tfq_error *e)
{
    return worker_update(s, ST_WORKER_BYE, id, now_ms, 0, e);
}

void store_time_commits(store *s, histogram *h)
{
    s->commits = h;
}

/* ---- the dashboard's reads ---- */

int store_events_json(store *s, int64_t grid_id, int64_t job, int64_t after,
                      int rows, size_t max_bytes, char **json, tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    PREP(st, ST_EVENTS);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, job);
    sqlite3_bind_int64(st, 3, grid_id);
    sqlite3_bind_int(st, 4, rows);
    return collect(s, st, max_bytes, json, NULL, e);
done:
    return ret;
}

int store_attempts_json(store *s, int64_t job, size_t max_bytes, char **json,
                        tfq_error *e)
{
    int ret = TFQ_OK;
    sqlite3_stmt *st;
    char state[16];
    *json = NULL;
    if ((ret = job_state(s, job, state, sizeof state, e)) != TFQ_OK)
        return ret;
    PREP(st, ST_ATTEMPTS);
    sqlite3_bind_int64(st, 1, job);
    return collect(s, st, max_bytes, json, NULL, e);
done:
    return ret;
}

/* Steps st for its one row of one integer into *v; resets st. */
static int one_int(store *s, sqlite3_stmt *st, int64_t *v, const char *what,
                   tfq_error *e)
{
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? TFQ_OK : db_fail(s, rc, what, e);
}

int store_gauges_get(store *s, int64_t now_ms, int64_t gone_after_ms,
                     store_gauges *out, store_jobs_by_fn *fn, void *arg,
                     tfq_error *e)
{
    int ret = TFQ_OK, rc;
    sqlite3_stmt *st;
    memset(out, 0, sizeof *out);
    PREP(st, ST_JOBS_BY_GRID); /* every job, so its ready rows sum to the
                                  queue's depth */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 1);
        int64_t n = sqlite3_column_int64(st, 2);
        if (strcmp(state, "ready") == 0)
            out->ready += n;
        fn(arg, (const char *)sqlite3_column_text(st, 0), state, n);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        ret = db_fail(s, rc, "counting jobs by grid", e);
        goto done;
    }
    PREP(st, ST_CKPT_BYTES);
    TRY(one_int(s, st, &out->checkpoint_bytes, "summing checkpoints", e));
    PREP(st, ST_WORKER_STATES);
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 3, gone_after_ms);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        *(strcmp(state, "live") == 0   ? &out->workers_live
          : strcmp(state, "idle") == 0 ? &out->workers_idle
                                       : &out->workers_gone) =
            sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        ret = db_fail(s, rc, "counting workers", e);
done:
    return ret;
}

/* ---- jobs: a filtered, sorted page of a grid's jobs ---- */

#define JOBS_MAX_LIMIT 500
#define JOBS_DEFAULT_LIMIT 100
#define JOBS_MAX_OFFSET 1000000000 /* past any grid: a page of nothing */

/* The string filters of a jobs query: the key and the condition on jobs j
 * it adds, with the value bound as ?. */
static const struct {
    const char *key, *cond;
} s_jobs_text[] = {
    {"state", "j.state = ?"},        {"split", "j.split = ?"},
    {"variant", "j.variant = ?"},    {"target", "j.target = ?"},
    {"q", "instr(j.name, ?) > 0"},
};
#define JOBS_NTEXT (sizeof s_jobs_text / sizeof s_jobs_text[0])

/* The sort keys and their columns; ties go by id in the same direction. */
static const struct {
    const char *key, *col;
} s_jobs_sort[] = {
    {"job", "j.id"},         {"name", "j.name"},      {"state", "j.state"},
    {"split", "j.split"},    {"variant", "j.variant"}, {"n", "j.n"},
    {"attempts", "j.attempts"}, {"updated", "j.updated_ms"},
};
#define JOBS_NSORT (sizeof s_jobs_sort / sizeof s_jobs_sort[0])

static const char *const s_job_states[] = {
    "pending", "ready", "running", "succeeded", "failed", "blocked",
    "cancelled"};

typedef struct {
    char *text[JOBS_NTEXT]; /* owned; NULL: no such filter */
    int has_n, has_job;
    int64_t n, job;
    int sort, desc;
    int64_t offset, limit;
} jobs_query;

static void jobs_query_release(jobs_query *q)
{
    for (size_t i = 0; i < JOBS_NTEXT; i++)
        free(q->text[i]);
}

static int jq_bad(tfq_error *e, const char *key, const char *why)
{
    return tfq_error_set(e, TFQ_EINVAL, "jobs: query key \"%s\": %s", key,
                         why);
}

/* Sets one key of q from a json_each row (key, type, value). */
static int jq_key(jobs_query *q, sqlite3_stmt *row, tfq_error *e)
{
    const char *key = (const char *)sqlite3_column_text(row, 0);
    const char *type = (const char *)sqlite3_column_text(row, 1);
    const char *text = (const char *)sqlite3_column_text(row, 2);
    int64_t v = sqlite3_column_int64(row, 2);
    int is_int = strcmp(type, "integer") == 0;
    char why[160];
    for (size_t i = 0; i < JOBS_NTEXT; i++) {
        if (strcmp(key, s_jobs_text[i].key) != 0)
            continue;
        if (strcmp(type, "text") != 0)
            return jq_bad(e, key, "must be a string");
        int ok = i != 0;
        for (size_t k = 0; !ok && k < 7; k++)
            ok = strcmp(text, s_job_states[k]) == 0;
        if (!ok)
            return jq_bad(e, key, "not a job state (pending, ready, running, "
                          "succeeded, failed, blocked, cancelled)");
        free(q->text[i]);
        if ((q->text[i] = strdup(text)) == NULL)
            return tfq_error_set(e, TFQ_ENOMEM, "jobs: query");
        return TFQ_OK;
    }
    if (strcmp(key, "sort") == 0) {
        for (size_t i = 0; text != NULL && strcmp(type, "text") == 0 &&
                           i < JOBS_NSORT; i++)
            if (strcmp(text, s_jobs_sort[i].key) == 0) {
                q->sort = (int)i;
                return TFQ_OK;
            }
        return jq_bad(e, key, "must be one of job, name, state, split, "
                      "variant, n, attempts, updated");
    }
    if (strcmp(key, "desc") == 0) {
        if (strcmp(type, "true") != 0 && strcmp(type, "false") != 0)
            return jq_bad(e, key, "must be true or false");
        q->desc = type[0] == 't';
        return TFQ_OK;
    }
    int64_t lo = strcmp(key, "limit") == 0 ? 1 : 0;
    int64_t hi = strcmp(key, "limit") == 0    ? JOBS_MAX_LIMIT
                 : strcmp(key, "offset") == 0 ? JOBS_MAX_OFFSET
                                              : INT64_MAX;
    if (strcmp(key, "n") != 0 && strcmp(key, "job") != 0 &&
        strcmp(key, "offset") != 0 && lo == 0)
        return tfq_error_set(e, TFQ_EINVAL, "jobs: unknown query key \"%s\" "
                             "(known: state, split, variant, n, target, q, "
                             "job, sort, desc, offset, limit)", key);
    snprintf(why, sizeof why, "must be an integer in [%lld, %lld]",
             (long long)lo, (long long)hi);
    if (!is_int || (key[0] != 'n' && (v < lo || v > hi)))
        return jq_bad(e, key, why);
    if (key[0] == 'n') {
        q->has_n = 1;
        q->n = v;
    } else if (key[0] == 'j') {
        q->has_job = 1;
        q->job = v;
    } else if (key[0] == 'l') {
        q->limit = v;
    } else {
        q->offset = v;
    }
    return TFQ_OK;
}

/* Parses a jobs query (NULL: {}) into q, which the caller releases. */
static int jobs_query_parse(store *s, const char *json, jobs_query *q,
                            tfq_error *e)
{
    int ret = TFQ_OK, rc;
    sqlite3_stmt *st;
    memset(q, 0, sizeof *q);
    q->limit = JOBS_DEFAULT_LIMIT;
    if (json == NULL)
        return TFQ_OK;
    PREP(st, ST_RESULT_SHAPE);
    bind_text(st, 1, json);
    rc = sqlite3_step(st);
    int object = rc == SQLITE_ROW &&
                 sqlite3_column_type(st, 0) == SQLITE_TEXT &&
                 strcmp((const char *)sqlite3_column_text(st, 0), "object") == 0;
    sqlite3_reset(st);
    if (!object)
        return tfq_error_set(e, TFQ_EINVAL, "jobs: the query is not a JSON "
                             "object");
    PREP(st, ST_RESULT_FIELDS);
    bind_text(st, 1, json);
    while (ret == TFQ_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ret = jq_key(q, st, e);
    sqlite3_reset(st);
    if (ret == TFQ_OK && rc != SQLITE_DONE)
        ret = db_fail(s, rc, "reading a jobs query", e);
done:
    return ret;
}

/* The WHERE clause of q (parameters from ?2: ?1 is the grid) into buf. */
static void jobs_where(const jobs_query *q, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "FROM jobs j WHERE j.grid_id = ?1");
    for (size_t i = 0; i < JOBS_NTEXT; i++)
        if (q->text[i] != NULL && len < cap)
            len += (size_t)snprintf(buf + len, cap - len, " AND %s",
                                    s_jobs_text[i].cond);
    if (q->has_n && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " AND j.n = ?");
    if (q->has_job && len < cap)
        snprintf(buf + len, cap - len, " AND j.id = ?");
}

/* Whether q filters on a column by equality (q, a substring, does not). */
static int jobs_filtered(const jobs_query *q)
{
    for (size_t i = 0; i < JOBS_NTEXT; i++)
        if (q->text[i] != NULL && strcmp(s_jobs_text[i].key, "q") != 0)
            return 1;
    return q->has_n || q->has_job;
}

/* Binds q's filters to st from ?2; returns the next parameter's index. */
static int jobs_bind(const jobs_query *q, int64_t grid_id, sqlite3_stmt *st)
{
    int i = 1;
    sqlite3_bind_int64(st, i++, grid_id);
    for (size_t k = 0; k < JOBS_NTEXT; k++)
        if (q->text[k] != NULL)
            bind_text(st, i++, q->text[k]);
    if (q->has_n)
        sqlite3_bind_int64(st, i++, q->n);
    if (q->has_job)
        sqlite3_bind_int64(st, i++, q->job);
    return i;
}

/* The columns of a jobs item: p is the page's ids in order, j the job, a
 * its latest attempt, m that attempt's last progress. */
#define JOBS_ITEM                                                            \
    "SELECT j.id, json_object('job', j.id, 'grid', g.name, 'name', j.name, " \
    "'state', j.state, 'attempts', j.attempts, 'split', j.split, "           \
    "'similarity', j.similarity, 'target', j.target, 'n', j.n, 'variant', "  \
    "j.variant, 'finetune', j.finetune, 'seed', j.seed, 'sweep', j.sweep, "  \
    "'metric', g.metric, "                                                   \
    "'result', CASE WHEN json_valid(j.result) THEN json(j.result) END, "     \
    "'error', j.last_error, 'worker', a.worker, 'attempt', a.attempt, "      \
    "'epoch', m.epoch, 'test_acc', m.test_acc, 'eta_s', m.eta_s, "           \
    "'updated_ms', j.updated_ms) FROM (SELECT j.id AS id %s ORDER BY %s%s, " \
    "j.id%s LIMIT ? OFFSET ?) p CROSS JOIN jobs j ON j.id = p.id LEFT JOIN " \
    "grids g ON g.id = j.grid_id LEFT JOIN attempts a ON a.rowid = (SELECT " \
    "rowid FROM attempts WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1)" \
    " LEFT JOIN metrics m ON m.rowid = (SELECT rowid FROM metrics WHERE "    \
    "job_id = a.job_id AND attempt = a.attempt ORDER BY epoch DESC LIMIT 1)" \
    " ORDER BY %s%s, j.id%s"

/* Prepares sql (made for this one query) into *st. */
static int prepare_once(store *s, const char *sql, sqlite3_stmt **st,
                        tfq_error *e)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? TFQ_OK : db_fail(s, rc, "preparing a jobs "
                                              "query", e);
}

int store_jobs_json(store *s, int64_t grid_id, const char *query,
                    size_t max_bytes, char **json, int64_t *count,
                    tfq_error *e)
{
    jobs_query q;
    sqlite3_stmt *st = NULL;
    char where[512], sql[4096];
    *json = NULL;
    *count = 0;
    int ret = jobs_query_parse(s, query, &q, e);
    if (ret != TFQ_OK)
        goto out;
    jobs_where(&q, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT count(*) %s", where);
    if ((ret = prepare_once(s, sql, &st, e)) != TFQ_OK)
        goto out;
    jobs_bind(&q, grid_id, st);
    ret = one_int(s, st, count, "counting a grid's jobs", e);
    sqlite3_finalize(st);
    st = NULL;
    if (ret != TFQ_OK)
        goto out;
    /* With a filter, the filter's index finds the rows and they are sorted
     * ("+" keeps the planner off the sort key's index, whose walk would
     * pass every job of the grid to find a few); without one, the sort
     * key's index walk is the page. */
    const char *col = s_jobs_sort[q.sort].col, *dir = q.desc ? " DESC" : "";
    char inner[64];
    snprintf(inner, sizeof inner, "%s%s", jobs_filtered(&q) ? "+" : "", col);
    snprintf(sql, sizeof sql, JOBS_ITEM, where, inner, dir, dir, col, dir,
             dir);
    if ((ret = prepare_once(s, sql, &st, e)) != TFQ_OK)
        goto out;
    int i = jobs_bind(&q, grid_id, st);
    sqlite3_bind_int64(st, i++, q.limit);
    sqlite3_bind_int64(st, i, q.offset);
    ret = collect(s, st, max_bytes, json, NULL, e);
out:
    sqlite3_finalize(st);
    jobs_query_release(&q);
    return ret;
}
