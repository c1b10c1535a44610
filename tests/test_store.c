/* The coordinator's store against a real SQLite file: migrations, leasing
 * order, dependencies, stale results, releases, retries, expiry, counts, a
 * bulk insert, paged reports, durability across a kill -9, and the start-up
 * checks (the commit sequence and its mirror, quick_check). */
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "coordinator/store.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char *path_in(const char *dir, const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Opens a fresh store in its own directory. */
static store *fresh(char *path, size_t bytes)
{
    snprintf(path, bytes, "%s", path_in(test_tmpdir(), "store.db"));
    tfq_error e = {0};
    store *s = store_open(path, &e);
    if (s == NULL)
        fprintf(stderr, "store_open: %s\n", e.msg);
    return s;
}

/* Adds a sleep job; returns its id, 0 on failure. */
static int64_t add_job(store *s, int64_t grid, const char *name, int priority,
                       int max_attempts)
{
    store_job j = {
        .grid_id = grid, .name = name, .kind = "sleep",
        .spec = "{\"sleep_ms\":1}", .identity = name, .priority = priority,
        .max_attempts = max_attempts, .n = -1, .finetune = -1, .seed = -1,
    };
    int64_t id = 0;
    tfq_error e = {0};
    if (store_job_add(s, &j, &id, 0, &e) != TFQ_OK) {
        fprintf(stderr, "store_job_add %s: %s\n", name, e.msg);
        return 0;
    }
    return id;
}

/* Leases one job to worker (no holder) through store_lease_many; l->job_id
 * is 0 when none was ready. */
static int lease_one(store *s, const char *worker, int64_t now_ms,
                     store_leased *l, tfq_error *e)
{
    int n = 0;
    return store_lease_many(s, worker, NULL, now_ms, 1, l, &n, e);
}

/* The first column of the first row of sql (a printf format) as text, read
 * through a connection of its own; "" for no row or NULL. */
static const char *query(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *query(const char *path, const char *fmt, ...)
{
    static char out[4][256];
    static int next;
    char *r = out[next++ % 4];
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    r[0] = '\0';
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(r, sizeof out[0], "error: %s", sqlite3_errmsg(db));
    } else if (sqlite3_step(st) == SQLITE_ROW &&
               sqlite3_column_text(st, 0) != NULL) {
        snprintf(r, sizeof out[0], "%s",
                 (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

#define CHECK_STR(a, b)                                                   \
    CHECK_MSG(strcmp((a), (b)) == 0, "'%s' vs '%s'", (a), (b))

static int test_open_migrate(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    CHECK_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
    int64_t grid = 0;
    CHECK_EQ_INT(store_grid_add(s, "g1", "{}", &grid, 5, &e), TFQ_OK);
    CHECK(grid > 0);
    CHECK_EQ_INT(store_grid_add(s, "g1", "{}", NULL, 5, &e), TFQ_EINVAL);
    CHECK(strstr(e.msg, "g1") != NULL);
    CHECK(add_job(s, grid, "j1", 0, 0) > 0);
    store_destroy(&s);
    CHECK(s == NULL);
    store_destroy(&s);

    /* Reopening keeps the data and applies nothing twice. */
    s = store_open(path, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    CHECK_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_destroy(&s);
    CHECK_STR(query(path, "SELECT COUNT(*) FROM jobs WHERE name = 'j1'"), "1");
    CHECK_STR(query(path, "SELECT value FROM meta WHERE key = "
                          "'schema_version'"), "8");
    CHECK_STR(query(path, "PRAGMA journal_mode"), "wal");

    /* A newer schema is refused. */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE meta SET value = 9 WHERE key = "
                           "'schema_version'", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    tfq_error_clear(&e);
    s = store_open(path, &e);
    CHECK(s == NULL);
    CHECK_EQ_INT(e.code, TFQ_EVERSION);
    CHECK_MSG(strstr(e.msg, "schema version 9 is newer than this tfq (8)")
              != NULL, "%s", e.msg);
    CHECK(strstr(e.msg, path) != NULL);

    /* A file that is not SQLite is refused. */
    char junk[2048];
    memset(junk, 'x', sizeof junk);
    const char *bad = path_in(test_tmpdir(), "junk.db");
    CHECK(test_write_file(bad, junk, sizeof junk) == 0);
    tfq_error_clear(&e);
    s = store_open(bad, &e);
    CHECK(s == NULL);
    CHECK_EQ_INT(e.code, TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "not an SQLite database") != NULL, "%s", e.msg);
    return 0;
}

/* The whole of a text file of at most 64 KiB into buf; 0 on success. */
static int read_text(const char *path, char *buf, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, bytes - 1, f);
    int whole = feof(f) && !ferror(f);
    fclose(f);
    buf[n] = '\0';
    return whole ? 0 : -1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The tables schema/STORE.md describes (the rows "| `name` | ..." of its
 * "## Tables" section), sorted and joined by spaces into out. */
static int documented_tables(char *out, size_t bytes)
{
    static char doc[65536];
    char *names[64];
    int n = 0;
    if (read_text(TFQ_SCHEMA_DIR "/STORE.md", doc, sizeof doc) != 0)
        return -1;
    char *p = strstr(doc, "\n## Tables\n");
    char *end = p ? strstr(p + 1, "\n## ") : NULL;
    if (p == NULL)
        return -1;
    if (end != NULL)
        *end = '\0';
    for (char *line = strstr(p, "\n| `"); line && n < 64;
         line = strstr(line + 1, "\n| `")) {
        char *name = line + 4, *tick = strchr(name, '`');
        if (tick == NULL)
            return -1;
        *tick = '\0';
        names[n++] = name;
        line = tick;
    }
    qsort(names, (size_t)n, sizeof names[0], by_name);
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, bytes - len, "%s%s", i ? " " : "",
                                names[i]);
    return len < bytes ? 0 : -1;
}

/* The migrations compiled in are schema/'s files, all of them: every
 * NNN_*.sql there has a version from 1 to STORE_SCHEMA_VERSION, none twice
 * and none missing, and holds the text compiled in for it (a file added
 * but not listed in coordinator/meson.build fails here; a gap, or a
 * version the code does not know, fails the build).  And a new store has
 * the tables schema/STORE.md describes, no more and no fewer. */
static int test_schema_file_matches(void)
{
    int seen[STORE_SCHEMA_VERSION + 1] = {0};
    DIR *d = opendir(TFQ_SCHEMA_DIR);
    CHECK_MSG(d != NULL, "cannot open %s", TFQ_SCHEMA_DIR);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
            continue;
        int v = atoi(de->d_name);
        CHECK_MSG(v >= 1 && v <= STORE_SCHEMA_VERSION,
                  "schema/%s: version %d, but STORE_SCHEMA_VERSION is %d",
                  de->d_name, v, STORE_SCHEMA_VERSION);
        CHECK_MSG(seen[v]++ == 0, "schema/%s: a second file of version %d",
                  de->d_name, v);
        char file[1024];
        static char text[65536];
        snprintf(file, sizeof file, "%s/%s", TFQ_SCHEMA_DIR, de->d_name);
        CHECK_MSG(read_text(file, text, sizeof text) == 0, "cannot read %s",
                  file);
        CHECK_MSG(strcmp(text, store_migration_sql(v)) == 0,
                  "schema/%s is not the migration compiled in for version "
                  "%d (is it listed in coordinator/meson.build?)",
                  de->d_name, v);
    }
    closedir(d);
    for (int v = 1; v <= STORE_SCHEMA_VERSION; v++)
        CHECK_MSG(seen[v] == 1, "schema/ has no migration of version %d", v);
    CHECK(store_migration_sql(0) == NULL);
    CHECK(store_migration_sql(STORE_SCHEMA_VERSION + 1) == NULL);

    char path[512], doc[1024];
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    store_destroy(&s);
    CHECK_MSG(documented_tables(doc, sizeof doc) == 0,
              "cannot read the tables of %s/STORE.md", TFQ_SCHEMA_DIR);
    CHECK_STR(query(path, "SELECT group_concat(name, ' ') FROM (SELECT name "
                          "FROM sqlite_master WHERE type = 'table' AND name "
                          "NOT LIKE 'sqlite_%%' ORDER BY name)"), doc);
    return 0;
}

static int test_lease_order(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t a = add_job(s, 0, "a", 0, 0);
    int64_t b = add_job(s, 0, "b", 5, 0);
    int64_t c = add_job(s, 0, "c", 5, 0);
    int64_t d = add_job(s, 0, "d", 9, 0);
    CHECK(a && b && c && d);
    CHECK_EQ_INT(store_dep_add(s, d, a, &e), TFQ_OK);
    CHECK_EQ_INT(store_dep_add(s, d, d, &e), TFQ_EINVAL);
    CHECK_EQ_INT(store_dep_add(s, d, 999, &e), TFQ_EINVAL);

    store_leased l;
    /* Nothing is ready before a refresh: jobs start pending. */
    CHECK_EQ_INT(lease_one(s, "w1", 10, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, 0);
    CHECK_EQ_INT(store_refresh_ready(s, 10, &e), TFQ_OK);

    int64_t want[] = {b, c, a};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(lease_one(s, "w1", 20 + i, &l, &e), TFQ_OK);
        CHECK_EQ_INT(l.job_id, want[i]);
        CHECK_EQ_INT(l.attempt, 1);
        CHECK_STR(l.kind, "sleep");
        CHECK_STR(l.spec, "{\"sleep_ms\":1}");
        CHECK_STR(l.resume_sha256, "");
        store_leased_release(&l);
    }
    /* d waits for a, which is running. */
    CHECK_EQ_INT(lease_one(s, "w1", 30, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, 0);
    CHECK_EQ_INT(store_finish(s, a, 1, NULL, 1, "{\"final_acc\":1}", NULL, 40, &e),
                 TFQ_OK);
    CHECK_EQ_INT(lease_one(s, "w2", 50, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, d);
    CHECK_STR(l.name, "d");
    store_leased_release(&l);
    store_destroy(&s);
    CHECK_STR(query(path, "SELECT worker || ':' || started_ms || ':' || "
                          "heartbeat_ms || ':' || state FROM attempts WHERE "
                          "job_id = 4"), "w2:50:50:running");
    CHECK_STR(query(path, "SELECT attempts || state FROM jobs WHERE id = 4"),
              "1running");
    return 0;
}

static const char *state_of(const char *path, int64_t job)
{
    return query(path, "SELECT state FROM jobs WHERE id = %lld",
                 (long long)job);
}

static int test_deps_ready_blocked(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t base = add_job(s, 0, "base", 3, 1);
    int64_t t1 = add_job(s, 0, "t1", 2, 0);
    int64_t t2 = add_job(s, 0, "t2", 1, 0);
    int64_t other = add_job(s, 0, "other", 0, 0);
    CHECK(base && t1 && t2 && other);
    CHECK_EQ_INT(store_dep_add(s, t1, base, &e), TFQ_OK);
    CHECK_EQ_INT(store_dep_add(s, t2, t1, &e), TFQ_OK);
    CHECK_EQ_INT(store_dep_add(s, t2, other, &e), TFQ_OK);
    CHECK_EQ_INT(store_refresh_ready(s, 1, &e), TFQ_OK);
    CHECK_STR(state_of(path, base), "ready");
    CHECK_STR(state_of(path, t1), "pending");
    CHECK_STR(state_of(path, t2), "pending");

    /* other succeeds: t2 still waits for t1. */
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 2, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, base);
    store_leased_release(&l);
    CHECK_EQ_INT(lease_one(s, "w", 2, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, other);
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, other, 1, NULL, 1, "{}", NULL, 3, &e), TFQ_OK);
    CHECK_STR(state_of(path, t2), "pending");

    /* base fails for good: t1 and, through it, t2 are blocked. */
    CHECK_EQ_INT(store_finish(s, base, 1, NULL, 0, NULL, "oom", 4, &e), TFQ_OK);
    CHECK_STR(state_of(path, base), "failed");
    CHECK_STR(state_of(path, t1), "blocked");
    CHECK_STR(state_of(path, t2), "blocked");
    CHECK_EQ_INT(store_retry(s, t2, 5, &e), TFQ_OK);
    CHECK_STR(state_of(path, t2), "blocked");

    /* Retrying base unblocks the chain; they become ready in order. */
    CHECK_EQ_INT(store_retry(s, other, 5, &e), TFQ_EINVAL);
    CHECK(strstr(e.msg, "succeeded") != NULL);
    CHECK_EQ_INT(store_retry(s, 999, 5, &e), TFQ_ENOENT);
    CHECK_EQ_INT(store_retry(s, base, 6, &e), TFQ_OK);
    CHECK_STR(state_of(path, base), "ready");
    CHECK_STR(query(path, "SELECT attempts FROM jobs WHERE id = 1"), "0");
    CHECK_STR(state_of(path, t1), "pending");
    CHECK_STR(state_of(path, t2), "pending");
    CHECK_EQ_INT(lease_one(s, "w", 7, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, base);
    CHECK_EQ_INT(l.attempt, 2); /* attempt numbers are never reused */
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, base, 2, NULL, 1, "{}", NULL, 8, &e), TFQ_OK);
    CHECK_STR(state_of(path, t1), "ready");
    CHECK_STR(state_of(path, t2), "pending");
    CHECK_EQ_INT(lease_one(s, "w", 9, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, t1);
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, t1, 1, NULL, 1, "{}", NULL, 10, &e), TFQ_OK);
    CHECK_STR(state_of(path, t2), "ready");
    store_destroy(&s);
    return 0;
}

static int test_stale_result_rejected(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "cell", 0, 3);
    CHECK(j > 0);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w1", 1000, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.attempt, 1);
    store_leased_release(&l);
    CHECK_EQ_INT(store_heartbeat(s, j, 1, NULL, 2000, &e), TFQ_OK);

    /* Not yet past the liveness window. */
    int requeued = -1;
    CHECK_EQ_INT(store_expire(s, 31000, 30000, &requeued, &e), TFQ_OK);
    CHECK_EQ_INT(requeued, 0);
    CHECK_EQ_INT(store_expire(s, 40000, 30000, &requeued, &e), TFQ_OK);
    CHECK_EQ_INT(requeued, 1);
    CHECK_STR(state_of(path, j), "ready");
    CHECK_STR(query(path, "SELECT state FROM attempts WHERE attempt = 1"),
              "lost");

    CHECK_EQ_INT(store_heartbeat(s, j, 1, NULL, 40001, &e), TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "attempt 1 is not running (its state is lost)")
              != NULL, "%s", e.msg);
    CHECK_EQ_INT(lease_one(s, "w2", 41000, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, j);
    CHECK_EQ_INT(l.attempt, 2);
    store_leased_release(&l);

    /* A result that is not what a job reports is refused, naming the
     * field, and nothing is stored: the attempt still runs. */
    static const char *const bad[][2] = {
        {"{\"final_acc\": 1.5}", "field 'final_acc'"},
        {"{\"final_acc\": \"high\"}", "field 'final_acc'"},
        {"{\"forged\": true}", "unknown field 'forged'"},
        {"{\"final_acc\": 0.5", "not a JSON object"},
        {"[0.5]", "not a JSON object"},
        {"{\"epochs\": -1}", "field 'epochs'"},
        {"{\"accs\": [0.5, 7]}", "field 'accs'"},
        {"{\"data_fingerprint\": \"xyz\"}", "field 'data_fingerprint'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tfq_error_clear(&e);
        CHECK_EQ_INT(store_finish(s, j, 2, NULL, 1, bad[i][0], NULL, 41500, &e),
                     TFQ_EINVAL);
        CHECK_MSG(strstr(e.msg, bad[i][1]) != NULL &&
                  strstr(e.msg, "nothing stored") != NULL, "%s: %s",
                  bad[i][0], e.msg);
        CHECK_STR(state_of(path, j), "running");
    }

    /* The lost worker comes back with its result: rejected, no change. */
    tfq_error_clear(&e);
    CHECK_EQ_INT(store_finish(s, j, 1, NULL, 1, "{\"final_acc\":0.1}", NULL, 42000, &e),
                 TFQ_EMISMATCH);
    CHECK(strstr(e.msg, "is not running (its state is lost)") != NULL);
    CHECK_EQ_INT(store_metric_add(s, j, 1, NULL, 1, 0.5, 0.1, 100, 9.5, &e),
                 TFQ_EMISMATCH);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 1, NULL, 1, SHA_A, 10, 42000, &e),
                 TFQ_EMISMATCH);
    CHECK_EQ_INT(store_finish(s, j, 7, NULL, 1, "{}", NULL, 42000, &e),
                 TFQ_EMISMATCH);
    CHECK(strstr(e.msg, "its state is unknown") != NULL);
    CHECK_STR(state_of(path, j), "running");
    CHECK_STR(query(path, "SELECT result FROM jobs"), "");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM metrics"), "0");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM checkpoints"), "0");

    CHECK_EQ_INT(store_metric_add(s, j, 2, NULL, 1, 0.5, 0.9, 100, 9.5, &e), TFQ_OK);
    CHECK_EQ_INT(store_finish(s, j, 2, NULL, 1, "{\"final_acc\":0.9}", NULL, 43000, &e),
                 TFQ_OK);
    CHECK_EQ_INT(store_finish(s, j, 2, NULL, 1, "{\"final_acc\":0.9}", NULL, 43001, &e),
                 TFQ_EMISMATCH);
    CHECK(strstr(e.msg, "its state is succeeded") != NULL);
    CHECK_EQ_INT(store_finish(s, j, 1, NULL, 1, "{\"final_acc\":0.1}", NULL, 43002, &e),
                 TFQ_EMISMATCH);
    store_destroy(&s);
    CHECK_STR(state_of(path, j), "succeeded");
    CHECK_STR(query(path, "SELECT result FROM jobs"), "{\"final_acc\":0.9}");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM attempts WHERE "
                          "state = 'succeeded'"), "1");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM events WHERE "
                          "kind = 'succeeded'"), "1");
    return 0;
}

static int test_release_requeues(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "cell", 0, 1);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w1", 10, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, j);
    store_leased_release(&l);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 1, NULL, 3, SHA_A, 1234, 11, &e),
                 TFQ_OK);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 1, NULL, 3, "short", 1234, 11, &e),
                 TFQ_EINVAL);
    CHECK_EQ_INT(store_release(s, j, 1, NULL, 12, &e), TFQ_OK);
    CHECK_STR(state_of(path, j), "ready");
    CHECK_STR(query(path, "SELECT attempts FROM jobs"), "0");
    CHECK_STR(query(path, "SELECT state FROM attempts"), "released");
    CHECK_EQ_INT(store_release(s, j, 1, NULL, 12, &e), TFQ_EMISMATCH);

    /* max_attempts is 1, yet the release cost nothing; the new attempt
     * resumes from the checkpoint. */
    CHECK_EQ_INT(lease_one(s, "w2", 20, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, j);
    CHECK_EQ_INT(l.attempt, 2);
    CHECK_STR(l.resume_sha256, SHA_A);
    CHECK_EQ_INT(l.resume_epoch, 3);
    CHECK_EQ_INT(l.resume_attempt, 1);
    store_leased_release(&l);
    store_leased_release(&l);
    CHECK_STR(query(path, "SELECT attempts FROM jobs"), "1");
    store_destroy(&s);
    return 0;
}

static int test_max_attempts_fail(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "flaky", 1, 2);
    int64_t k = add_job(s, 0, "lost", 0, 1);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 1, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, j);
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, j, 1, NULL, 0, NULL, "boom 1", 2, &e), TFQ_OK);
    CHECK_STR(state_of(path, j), "ready");
    CHECK_STR(query(path, "SELECT last_error FROM jobs WHERE id = 1"),
              "boom 1");
    CHECK_EQ_INT(lease_one(s, "w", 3, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, j);
    CHECK_EQ_INT(l.attempt, 2);
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, j, 2, NULL, 0, NULL, "boom 2", 4, &e), TFQ_OK);
    CHECK_STR(state_of(path, j), "failed");
    CHECK_STR(query(path, "SELECT last_error FROM jobs WHERE id = 1"),
              "boom 2");
    CHECK_STR(query(path, "SELECT error FROM attempts WHERE job_id = 1 AND "
                          "attempt = 1"), "boom 1");

    /* A loss is not charged against max_attempts (here 1): the job goes
     * back to the queue until it has been lost STORE_MAX_LOST times. */
    int64_t t = 5;
    for (int lost = 1; lost <= STORE_MAX_LOST; lost++) {
        CHECK_EQ_INT(lease_one(s, "w", t, &l, &e), TFQ_OK);
        CHECK_EQ_INT(l.job_id, k);
        CHECK_EQ_INT(l.attempt, lost);
        store_leased_release(&l);
        int n = 0;
        t += 100;
        CHECK_EQ_INT(store_expire(s, t, 10, &n, &e), TFQ_OK);
        CHECK_EQ_INT(n, 1);
        CHECK_STR(state_of(path, k), lost < STORE_MAX_LOST ? "ready"
                                                           : "failed");
        char want[32];
        snprintf(want, sizeof want, "%d 0", lost);
        CHECK_STR(query(path, "SELECT lost || ' ' || attempts FROM jobs "
                              "WHERE id = 2"), want);
    }
    CHECK_STR(query(path, "SELECT last_error FROM jobs WHERE id = 2"),
              "lost 20 times: every worker that leased it went silent");
    store_counts c;
    CHECK_EQ_INT(store_counts_get(s, 0, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.failed, 2);
    CHECK_EQ_INT(c.total, 2);
    CHECK_EQ_INT(c.lost, STORE_MAX_LOST);
    CHECK_EQ_INT(c.failures, 2);
    CHECK_STR(query(path, "SELECT failures FROM jobs WHERE id = 1"), "2");
    store_destroy(&s);
    return 0;
}

/* Only the holder named at the lease may heartbeat, report, finish or
 * release; anyone else is refused with TFQ_EPERM and changes nothing. */
static int test_lease_holder(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "a", 0, 3);
    int64_t k = add_job(s, 0, "b", 0, 3);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    const char *holders[] = {"victim-a", "victim-b"};
    store_leased l[2];
    int n = 0;
    CHECK_EQ_INT(store_lease_many(s, "victim", holders, 1, 2, l, &n, &e),
                 TFQ_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(l[0].job_id, j);
    store_leased_release(&l[0]);
    store_leased_release(&l[1]);
    int held = 0;
    CHECK_EQ_INT(store_held(s, "victim", &held, &e), TFQ_OK);
    CHECK_EQ_INT(held, 2);
    static const char *const intruders[] = {"intruder", "victim-b", NULL};
    for (int i = 0; i < 3; i++) {
        const char *h = intruders[i];
        CHECK_EQ_INT(store_finish(s, j, 1, h, 1, "{\"final_acc\":0.999}",
                                  NULL, 2, &e), TFQ_EPERM);
        CHECK_MSG(strstr(e.msg, "not this peer's lease"), "%s", e.msg);
        CHECK_EQ_INT(store_release(s, j, 1, h, 2, &e), TFQ_EPERM);
        CHECK_EQ_INT(store_heartbeat(s, j, 1, h, 2, &e), TFQ_EPERM);
        CHECK_EQ_INT(store_metric_add(s, j, 1, h, 1, 0.1, 0.9, 1, 1, &e),
                     TFQ_EPERM);
        CHECK_EQ_INT(store_checkpoint_add(s, j, 1, h, 1, SHA_A, 10, 2, &e),
                     TFQ_EPERM);
        CHECK_EQ_INT(store_check_lease(s, j, 1, h, &e), TFQ_EPERM);
    }
    CHECK_STR(state_of(path, j), "running");
    CHECK_STR(query(path, "SELECT count(*) FROM metrics"), "0");
    CHECK_STR(query(path, "SELECT count(*) FROM checkpoints"), "0");
    CHECK_STR(query(path, "SELECT result IS NULL FROM jobs WHERE id = %lld",
                    (long long)j), "1");
    /* The holder is served. */
    CHECK_EQ_INT(store_heartbeat(s, j, 1, "victim-a", 3, &e), TFQ_OK);
    CHECK_EQ_INT(store_check_lease(s, j, 1, "victim-a", &e), TFQ_OK);
    CHECK_EQ_INT(store_finish(s, j, 1, "victim-a", 1, "{\"final_acc\":0.5}",
                              NULL, 4, &e), TFQ_OK);
    CHECK_STR(state_of(path, j), "succeeded");
    /* A stale attempt is a mismatch for its holder, still a refusal for
     * anyone else. */
    CHECK_EQ_INT(store_heartbeat(s, j, 1, "victim-a", 5, &e), TFQ_EMISMATCH);
    CHECK_EQ_INT(store_heartbeat(s, j, 1, "intruder", 5, &e), TFQ_EPERM);
    CHECK_EQ_INT(store_release(s, k, 1, "victim-b", 6, &e), TFQ_OK);
    CHECK_EQ_INT(store_held(s, "victim", &held, &e), TFQ_OK);
    CHECK_EQ_INT(held, 0);
    store_destroy(&s);
    return 0;
}

/* An attempt that failed after resuming from a checkpoint marks it bad:
 * the next resumes from the one before, or from the start; submit --force
 * drops them all. */
static int test_resume_fallback(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "a", 0, 5);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 1, &l, &e), TFQ_OK);
    store_leased_release(&l);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 1, NULL, 1, SHA_A, 10, 2, &e),
                 TFQ_OK);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 1, NULL, 2, SHA_B, 10, 3, &e),
                 TFQ_OK);
    CHECK_EQ_INT(store_finish(s, j, 1, NULL, 0, NULL, "oom", 4, &e), TFQ_OK);
    CHECK_EQ_INT(lease_one(s, "w", 5, &l, &e), TFQ_OK);
    CHECK_STR(l.resume_sha256, SHA_B);
    store_leased_release(&l);
    CHECK_EQ_INT(store_finish(s, j, 2, NULL, 0, NULL, "bad resume", 6, &e),
                 TFQ_OK);
    CHECK_STR(query(path, "SELECT bad FROM checkpoints WHERE epoch = 2"),
              "attempt 2 resumed from it and failed");
    CHECK_EQ_INT(lease_one(s, "w", 7, &l, &e), TFQ_OK);
    CHECK_STR(l.resume_sha256, SHA_A);
    store_leased_release(&l);
    /* Lost before any progress after resuming: that one goes too. */
    int n = 0;
    CHECK_EQ_INT(store_expire(s, 100, 10, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(lease_one(s, "w", 101, &l, &e), TFQ_OK);
    CHECK_STR(l.resume_sha256, "");
    store_leased_release(&l);
    CHECK_EQ_INT(store_checkpoint_add(s, j, 4, NULL, 1, SHA_A, 10, 102, &e),
                 TFQ_OK);
    CHECK_EQ_INT(store_finish(s, j, 4, NULL, 1, "{}", NULL, 103, &e), TFQ_OK);
    int changed = 0;
    CHECK_EQ_INT(store_job_reset(s, j, 104, &changed, &e), TFQ_OK);
    CHECK_EQ_INT(changed, 1);
    CHECK_EQ_INT(store_refresh_ready(s, 105, &e), TFQ_OK);
    CHECK_EQ_INT(lease_one(s, "w", 106, &l, &e), TFQ_OK);
    CHECK_STR(l.resume_sha256, "");
    store_leased_release(&l);
    CHECK_STR(query(path, "SELECT count(*) FROM checkpoints WHERE bad IS "
                          "NULL"), "0");
    store_destroy(&s);
    return 0;
}

/* A row whose result is not JSON (written by an older tfq, before results
 * were checked) does not break the report: it is left out and named. */
static int test_bad_row_skipped(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "good", 0, 3);
    int64_t k = add_job(s, 0, "old", 0, 3);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(lease_one(s, "w", 1, &l, &e), TFQ_OK);
        store_leased_release(&l);
    }
    CHECK_EQ_INT(store_finish(s, j, 1, NULL, 1, "{\"final_acc\":0.5}", NULL,
                              2, &e), TFQ_OK);
    CHECK_EQ_INT(store_finish(s, k, 1, NULL, 1, "{}", NULL, 2, &e), TFQ_OK);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "UPDATE jobs SET result = '{\"test_acc\": nan' "
                           "WHERE name = 'old'", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    char *json = NULL;
    int64_t next = -1;
    CHECK_MSG(store_results_json(s, 0, 0, 1 << 20, &json, &next, &e) == 0,
              "%s", e.msg);
    CHECK_EQ_INT(next, 0);
    CHECK_MSG(strstr(json, "\"final_acc\":0.5"), "%s", json);
    CHECK_MSG(strstr(json, "\"bad_result\":\"the stored result is not valid "
                           "JSON; left out\""), "%s", json);
    CHECK_MSG(strstr(json, "nan") == NULL, "%s", json);
    free(json);
    store_destroy(&s);
    return 0;
}

static int test_recover_then_expire(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t j = add_job(s, 0, "cell", 0, 0);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 0, &l, &e), TFQ_OK);
    store_leased_release(&l);
    store_destroy(&s);

    /* The coordinator restarts long after the last heartbeat. */
    s = store_open(path, &e);
    CHECK(s != NULL);
    CHECK_EQ_INT(store_recover(s, 50000, &e), TFQ_OK);
    int n = -1;
    CHECK_EQ_INT(store_expire(s, 55000, 10000, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_STR(state_of(path, j), "running");
    CHECK_EQ_INT(store_heartbeat(s, j, 1, NULL, 58000, &e), TFQ_OK);
    CHECK_EQ_INT(store_expire(s, 67000, 10000, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(store_expire(s, 68001, 10000, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_STR(state_of(path, j), "ready");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM events WHERE kind = 'lost'"),
              "1");
    CHECK_STR(query(path, "SELECT COUNT(*) FROM events WHERE "
                          "kind = 'recover'"), "1");
    store_destroy(&s);
    return 0;
}

static int test_counts(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t ga = 0, gb = 0, gc = 0;
    CHECK_EQ_INT(store_grid_add(s, "a", "{}", &ga, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "b", "{}", &gb, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "c", "{}", &gc, 0, &e), TFQ_OK);
    int64_t a1 = add_job(s, ga, "1", 0, 0);
    int64_t a2 = add_job(s, ga, "2", 0, 0);
    int64_t a3 = add_job(s, ga, "3", 0, 0);
    int64_t b1 = add_job(s, gb, "1", 9, 0);
    int64_t b2 = add_job(s, gb, "2", 0, 0);
    int64_t c1 = add_job(s, gc, "1", 0, 0);
    CHECK(a1 && a2 && a3 && b1 && b2 && c1);
    CHECK(add_job(s, 99, "nogrid", 0, 0) == 0);
    CHECK_EQ_INT(store_dep_add(s, a3, b2, &e), TFQ_OK);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 1, &l, &e), TFQ_OK);
    CHECK_EQ_INT(l.job_id, b1);
    store_leased_release(&l);

    store_counts c;
    CHECK_EQ_INT(store_counts_get(s, ga, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.ready, 2);
    CHECK_EQ_INT(c.pending, 1);
    CHECK_EQ_INT(c.total, 3);
    CHECK_EQ_INT(store_counts_get(s, gb, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.running, 1);
    CHECK_EQ_INT(c.ready, 1);
    CHECK_EQ_INT(c.total, 2);

    /* Cancelling grid b cancels its running attempt and blocks a3. */
    int n = 0;
    CHECK_EQ_INT(store_cancel_grid(s, gb, 2, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(store_cancel_grid(s, 77, 2, &n, &e), TFQ_ENOENT);
    CHECK_EQ_INT(store_heartbeat(s, b1, 1, NULL, 3, &e), TFQ_EMISMATCH);
    CHECK(strstr(e.msg, "its state is cancelled") != NULL);
    CHECK_EQ_INT(store_cancel_grid(s, gc, 3, &n, &e), TFQ_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(store_counts_get(s, 0, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.cancelled, 3);
    CHECK_EQ_INT(c.blocked, 1);
    CHECK_EQ_INT(c.ready, 2);
    CHECK_EQ_INT(c.total, 6);

    CHECK_EQ_INT(store_worker_seen(s, "w", "host1", 42, 8, 5, &e), TFQ_OK);
    CHECK_EQ_INT(store_worker_seen(s, "w", "host1", 43, 8, 9, &e), TFQ_OK);
    store_destroy(&s);
    CHECK_STR(query(path, "SELECT first_seen_ms || ':' || last_seen_ms || "
                          "':' || pid FROM workers"), "5:9:43");
    CHECK_STR(query(path, "SELECT group_concat(detail, '; ') FROM (SELECT "
                          "detail FROM events WHERE kind = 'cancel' ORDER "
                          "BY id)"), "grid 2: 2 jobs; grid 3: 1 jobs");
    CHECK_STR(query(path, "SELECT state FROM attempts"), "cancelled");
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A bound on the bulk insert for a machine 20 times slower than one that
 * takes 1.5 s, with its cores busy: it catches an insert path gone
 * quadratic (hours), and is no benchmark (the times are printed). */
#define BULK_INSERT_MAX_S 120.0

static int test_bulk_insert_100k(void)
{
    enum { N = 100000 };
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    double t0 = now_s();
    int64_t grid = 0;
    CHECK_EQ_INT(store_begin(s, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "big", "{}", &grid, 0, &e), TFQ_OK);
    int64_t prev = 0;
    for (int i = 0; i < N; i++) {
        char name[32], spec[64];
        snprintf(name, sizeof name, "job%06d", i);
        snprintf(spec, sizeof spec, "{\"sleep_ms\":%d}", i % 100);
        store_job j = {
            .grid_id = grid, .name = name, .kind = "sleep", .spec = spec,
            .identity = name, .priority = i % 2 ? 0 : 1, .n = i,
            .finetune = -1, .seed = i % 8,
        };
        int64_t id = 0;
        CHECK_EQ_INT(store_job_add(s, &j, &id, 0, &e), TFQ_OK);
        /* Every odd job depends on the even one before it. */
        if (i % 2)
            CHECK_EQ_INT(store_dep_add(s, id, prev, &e), TFQ_OK);
        prev = id;
    }
    /* A failing op inside the batch undoes only itself. */
    store_job dup = {.grid_id = grid, .name = "job000000", .kind = "sleep",
                     .spec = "{}", .identity = "x"};
    CHECK_EQ_INT(store_job_add(s, &dup, NULL, 0, &e), TFQ_EINVAL);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit(s, &e), TFQ_OK);
    double t1 = now_s();
    store_counts c;
    CHECK_EQ_INT(store_counts_get(s, grid, &c, &e), TFQ_OK);
    double t2 = now_s();
    printf("inserted %d jobs and %d deps in %.2f s; counts in %.1f ms\n", N,
           N / 2, t1 - t0, 1e3 * (t2 - t1));
    CHECK_EQ_INT(c.total, N);
    CHECK_EQ_INT(c.ready, N / 2);
    CHECK_EQ_INT(c.pending, N / 2);
    CHECK_MSG(t1 - t0 < BULK_INSERT_MAX_S, "bulk insert took %.1f s, over "
              "%.0f s", t1 - t0, BULK_INSERT_MAX_S);
    store_leased l;
    CHECK_EQ_INT(lease_one(s, "w", 1, &l, &e), TFQ_OK);
    CHECK_STR(l.name, "job000000");
    store_leased_release(&l);
    double t3 = now_s();
    CHECK_EQ_INT(store_finish(s, 1, 1, NULL, 1, "{}", NULL, 2, &e), TFQ_OK);
    printf("one finish with %d jobs pending: %.2f ms\n", N / 2,
           1e3 * (now_s() - t3));
    CHECK_EQ_INT(store_counts_get(s, 0, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.succeeded, 1);
    CHECK_EQ_INT(c.ready, N / 2);
    CHECK_EQ_INT(c.pending, N / 2 - 1);
    store_destroy(&s);
    return 0;
}

/* One jobs page of query: its count and the page's job ids joined with
 * commas into ids (NULL: not wanted), and the median of `runs` reads in
 * ms into *median_ms. */
static int jobs_page(store *s, int64_t grid, const char *query, int runs,
                     int64_t *count, char *ids, size_t cap, double *median_ms)
{
    double ms[9];
    char *json = NULL;
    for (int r = 0; r < runs && r < 9; r++) {
        tfq_error e = {0};
        free(json);
        double t0 = now_s();
        int rc = store_jobs_json(s, grid, query, 3u << 20, &json, count, &e);
        ms[r] = 1e3 * (now_s() - t0);
        CHECK_MSG(rc == TFQ_OK, "%s: %s", query, e.msg);
        for (int k = r; k > 0 && ms[k] < ms[k - 1]; k--) {
            double t = ms[k];
            ms[k] = ms[k - 1];
            ms[k - 1] = t;
        }
    }
    *median_ms = ms[runs / 2];
    if (ids != NULL)
        snprintf(ids, cap, "%s", test_json_query(json, "SELECT coalesce("
                 "group_concat(json_extract(value, '$.job')), '') FROM "
                 "json_each(?1)"));
    free(json);
    return 0;
}

/* The ids that the same filter and order give straight from the table
 * (the slow, obvious reference of a page). */
static const char *jobs_reference(const char *path, const char *where,
                                  const char *order, int limit, int offset)
{
    static char out[4096];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT coalesce(group_concat(id), '') FROM "
             "(SELECT id FROM jobs WHERE %s ORDER BY %s LIMIT %d OFFSET %d)",
             where, order, limit, offset);
    out[0] = '\0';
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, sizeof out, "%s", sqlite3_column_text(st, 0));
    else
        snprintf(out, sizeof out, "error: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* A grid of 100,000 jobs read as the dashboard's table pages it: the first
 * page, one 50,000 rows in, a filtered one and one sorted descending, each
 * against the same rows read straight from the table, the count of every
 * one, and their median times (printed: README's figures).  Bad queries
 * are refused naming the key. */
static int test_jobs_pages_100k(void)
{
    enum { N = 100000 };
    static const char *const splits[] = {"random", "natural"};
    static const char *const variants[] = {"selffer", "transfer", "base"};
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t grid = 0, other = 0;
    CHECK_EQ_INT(store_begin(s, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "big", "{}", &grid, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "other", "{}", &other, 0, &e), TFQ_OK);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "job%06d", (i * 7919) % N);
        store_job j = {
            .grid_id = grid, .name = name, .kind = "sleep", .spec = "{}",
            .identity = name, .split = splits[i % 2],
            .variant = variants[i % 3], .target = i % 5 ? "B" : "A",
            .n = 1 + i % 7, .finetune = -1, .seed = i % 8,
        };
        CHECK_EQ_INT(store_job_add(s, &j, NULL, i, &e), TFQ_OK);
    }
    CHECK(add_job(s, other, "job000001", 0, 3) > 0);
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit(s, &e), TFQ_OK);
    /* Leases of a few hundred jobs: running ones, attempts to sort by. */
    store_leased l[STORE_MAX_LEASE];
    for (int k = 0; k < 5; k++) {
        int n = 0;
        CHECK_EQ_INT(store_lease_many(s, "w", NULL, 10 + k, STORE_MAX_LEASE,
                                      l, &n, &e), TFQ_OK);
        for (int i = 0; i < n; i++)
            store_leased_release(&l[i]);
    }

    struct {
        const char *label, *query, *where, *order;
        int offset;
    } pages[] = {
        {"first page", "{}", "grid_id = 1", "id", 0},
        {"offset 50,000", "{\"offset\": 50000}", "grid_id = 1", "id",
         50000},
        {"filtered (split, variant, n)", "{\"split\": \"random\", "
         "\"variant\": \"transfer\", \"n\": 3, \"sort\": \"name\"}",
         "grid_id = 1 AND split = 'random' AND variant = 'transfer' AND "
         "n = 3", "name, id", 0},
        {"sorted by name desc, offset 50,000", "{\"sort\": \"name\", "
         "\"desc\": true, \"offset\": 50000}", "grid_id = 1",
         "name DESC, id DESC", 50000},
        {"state running, by updated desc", "{\"state\": \"running\", "
         "\"sort\": \"updated\", \"desc\": true, \"limit\": 500}",
         "grid_id = 1 AND state = 'running'", "updated_ms DESC, id DESC", 0},
        {"split random, by n desc, offset 20,000", "{\"split\": "
         "\"random\", \"sort\": \"n\", \"desc\": true, \"offset\": "
         "20000}", "grid_id = 1 AND split = 'random'", "n DESC, id DESC",
         20000},
        {"name contains 99", "{\"q\": \"99\"}",
         "grid_id = 1 AND instr(name, '99') > 0", "id", 0},
    };
    char ids[4096];
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        int64_t count = -1;
        double ms = 0;
        int limit = strstr(pages[i].query, "\"limit\": 500") ? 500 : 100;
        CHECK_EQ_INT(jobs_page(s, grid, pages[i].query, 5, &count, ids,
                               sizeof ids, &ms), 0);
        const char *want = jobs_reference(path, pages[i].where,
                                          pages[i].order, limit,
                                          pages[i].offset);
        CHECK_MSG(strcmp(ids, want) == 0, "%s: %.80s vs %.80s",
                  pages[i].label, ids, want);
        CHECK(ids[0] != '\0');
        char got[32];
        snprintf(got, sizeof got, "%lld", (long long)count);
        CHECK_STR(query(path, "SELECT count(*) FROM jobs WHERE %s",
                        pages[i].where), got);
        printf("jobs of %d, %s: %lld match, median %.2f ms\n", N,
               pages[i].label, (long long)count, ms);
    }
    /* Bad queries: refused, naming the key and what was wrong. */
    static const char *const bad[][2] = {
        {"{\"sort\": \"size\"}", "\"sort\": must be one of job, name"},
        {"{\"limit\": 501}", "\"limit\": must be an integer in [1, 500]"},
        {"{\"limit\": 0}", "\"limit\""},
        {"{\"offset\": -1}", "\"offset\""},
        {"{\"n\": \"3\"}", "\"n\": must be an integer"},
        {"{\"desc\": 1}", "\"desc\": must be true or false"},
        {"{\"state\": \"done\"}", "\"state\": not a job state"},
        {"{\"split\": 1}", "\"split\": must be a string"},
        {"{\"colour\": \"red\"}", "unknown query key \"colour\""},
        {"[1, 2]", "not a JSON object"},
        {"{\"state\":", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *json = NULL;
        int64_t count = -1;
        tfq_error_clear(&e);
        CHECK_EQ_INT(store_jobs_json(s, grid, bad[i][0], 1 << 20, &json,
                                     &count, &e), TFQ_EINVAL);
        CHECK_MSG(strstr(e.msg, bad[i][1]) != NULL, "%s: %s", bad[i][0],
                  e.msg);
        CHECK(json == NULL);
    }
    /* Another grid's job of the same name is not in this grid's pages. */
    int64_t count = 0;
    double ms;
    CHECK_EQ_INT(jobs_page(s, other, "{\"q\": \"job\"}", 1, &count, ids,
                           sizeof ids, &ms), 0);
    CHECK_EQ_INT(count, 1);
    CHECK_STR(ids, query(path, "SELECT id FROM jobs WHERE grid_id = %lld",
                         (long long)other));
    store_destroy(&s);
    return 0;
}

/* The child of crash_durability: commits work, then dies by SIGKILL in the
 * middle of a batch.  Exits 2 if anything fails before that. */
/* ---- report_pages ---------------------------------------------------- */

/* Like the bulk insert's bound: catches paging gone quadratic, and is no
 * benchmark (the times are printed). */
#define REPORT_PAGES_MAX_S 120.0
/* The coordinator's page: the "items" limit of the protocol, 3 MiB. */
#define PAGE_BYTES (3u << 20)

enum { REPORT_RESULTS, REPORT_RUNNING, REPORT_CURVES, REPORT_WORKERS };

static int report_page(store *s, int which, int64_t grid, int64_t after,
                       size_t max_bytes, char **json, int64_t *next,
                       tfq_error *e)
{
    switch (which) {
    case REPORT_RESULTS:
        return store_results_json(s, grid, after, max_bytes, json, next, e);
    case REPORT_RUNNING:
        return store_running_json(s, grid, after, max_bytes, json, next, e);
    case REPORT_CURVES:
        return store_curves_json(s, grid, 0, after, max_bytes, json, next, e);
    default:
        return store_workers_json(s, 2, 1000, after, max_bytes, json, next,
                                  e);
    }
}

/* Reads every page of a report, each at most max_bytes, each cursor past
 * the one before, and joins their rows into *all (the caller frees it);
 * *pages: how many there were. */
static int report_all(store *s, int which, int64_t grid, size_t max_bytes,
                      char **all, int *pages)
{
    size_t len = 1, cap = 1 << 16;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    buf[0] = '[';
    int64_t after = 0;
    *pages = 0;
    for (;;) {
        char *json = NULL;
        int64_t next = -1;
        tfq_error e = {0};
        int rc = report_page(s, which, grid, after, max_bytes, &json, &next,
                             &e);
        CHECK_MSG(rc == TFQ_OK, "page %d after %lld: %s", *pages + 1,
                  (long long)after, e.msg);
        size_t n = strlen(json);
        CHECK_MSG(n <= max_bytes, "page of %zu bytes, budget %zu", n,
                  max_bytes);
        CHECK(n >= 2 && json[0] == '[' && json[n - 1] == ']');
        CHECK_MSG(next == 0 || next > after, "next %lld after %lld",
                  (long long)next, (long long)after);
        /* Only the last page may be empty. */
        CHECK(n > 2 || next == 0);
        while (len + n + 2 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        if (n > 2) {
            if (len > 1)
                buf[len++] = ',';
            memcpy(buf + len, json + 1, n - 2);
            len += n - 2;
        }
        free(json);
        ++*pages;
        if (next == 0)
            break;
        after = next;
    }
    buf[len++] = ']';
    buf[len] = '\0';
    *all = buf;
    return 0;
}

/* Of the JSON array json: its length, and how many of its elements have a
 * key (e.g. "$.job") not above the one before (0 when they ascend). */
static int array_stats(const char *json, const char *key, int64_t *count,
                       int64_t *unordered)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    int rc = sqlite3_prepare_v2(
        db, "SELECT (SELECT json_array_length(?1)), (SELECT count(*) FROM "
            "(SELECT json_extract(value, ?2) AS k, lag(json_extract(value, "
            "?2)) OVER (ORDER BY key) AS prev FROM json_each(?1)) WHERE "
            "prev >= k)", -1, &st, NULL);
    CHECK_MSG(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    CHECK_MSG(sqlite3_step(st) == SQLITE_ROW, "%s", sqlite3_errmsg(db));
    *count = sqlite3_column_int64(st, 0);
    *unordered = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}

/* Reports come in pages of rows in id order, within a byte budget, from
 * any cursor: a 100,000-job grid with long names pages through whole (and
 * quickly), a small budget gives the same rows as one big page, one row
 * alone over the budget is refused, and every report is a valid array. */
static int test_report_pages(void)
{
    enum { N = 100000, SMALL = 40 };
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t big = 0, small = 0, empty = 0;
    CHECK_EQ_INT(store_begin(s, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "big", "{}", &big, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "small", "{}", &small, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_grid_add(s, "empty", "{}", &empty, 0, &e), TFQ_OK);
    for (int i = 0; i < N + SMALL; i++) {
        /* The small grid's jobs among the big one's, so that its pages
         * skip rows of another grid. */
        int in_small = i % (N / SMALL + 1) == 7 && i < N;
        char name[128];
        snprintf(name, sizeof name, "job-%06d-%s", i,
                 "a-long-name-of-a-job-in-a-very-big-grid-of-one-hundred-"
                 "thousand-jobs-padded-to-100-bytes");
        store_job j = {
            .grid_id = in_small || i >= N ? small : big, .name = name,
            .kind = "sleep", .spec = "{}", .identity = name, .n = -1,
            .finetune = -1, .seed = -1,
        };
        CHECK_EQ_INT(store_job_add(s, &j, NULL, 0, &e), TFQ_OK);
    }
    CHECK_EQ_INT(store_refresh_ready(s, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit(s, &e), TFQ_OK);
    int64_t nsmall = 0;
    store_counts c;
    CHECK_EQ_INT(store_counts_get(s, small, &c, &e), TFQ_OK);
    nsmall = c.total;
    CHECK(nsmall > SMALL);

    /* The big grid in coordinator-sized pages. */
    char *all = NULL;
    int pages = 0;
    int64_t count = 0, unordered = 0;
    double t0 = now_s();
    CHECK(report_all(s, REPORT_RESULTS, big, PAGE_BYTES, &all, &pages) == 0);
    double t1 = now_s();
    size_t bytes = strlen(all);
    CHECK(array_stats(all, "$.job", &count, &unordered) == 0);
    free(all);
    printf("%lld results rows (%zu bytes) in %d pages of at most %u bytes: "
           "%.2f s\n", (long long)count, bytes, pages, PAGE_BYTES, t1 - t0);
    CHECK_EQ_INT(count, N + SMALL - nsmall);
    CHECK_EQ_INT(unordered, 0);
    CHECK(pages > 1);
    CHECK_MSG(t1 - t0 < REPORT_PAGES_MAX_S, "paging took %.1f s", t1 - t0);
    /* Every grid. */
    CHECK(report_all(s, REPORT_RESULTS, 0, PAGE_BYTES, &all, &pages) == 0);
    CHECK(array_stats(all, "$.job", &count, &unordered) == 0);
    free(all);
    CHECK_EQ_INT(count, N + SMALL);
    CHECK_EQ_INT(unordered, 0);

    /* The small grid: one page, then pages of a row or two. */
    char *one = NULL;
    int64_t next = -1;
    CHECK_EQ_INT(store_results_json(s, small, 0, PAGE_BYTES, &one, &next, &e),
                 TFQ_OK);
    CHECK_EQ_INT(next, 0);
    CHECK(report_all(s, REPORT_RESULTS, small, 700, &all, &pages) == 0);
    CHECK_MSG(strcmp(one, all) == 0, "paged:\n%.300s\none page:\n%.300s",
              all, one);
    CHECK(pages >= nsmall / 2);
    CHECK(array_stats(all, "$.job", &count, &unordered) == 0);
    CHECK_EQ_INT(count, nsmall);
    free(all);
    /* A page from the middle starts after the cursor. */
    size_t half = strlen(one) / 2;
    char *mid = strstr(one + half, "{\"job\":");
    CHECK(mid != NULL);
    int64_t from = strtoll(mid + 7, NULL, 10);
    char *rest = NULL;
    CHECK_EQ_INT(store_results_json(s, small, from - 1, PAGE_BYTES, &rest,
                                    &next, &e), TFQ_OK);
    CHECK_EQ_INT(next, 0);
    CHECK_MSG(strncmp(rest + 1, mid, strlen(rest) - 1) == 0, "%.200s", rest);
    free(rest);
    free(one);
    /* A row alone over the budget is refused, naming it. */
    CHECK_EQ_INT(store_results_json(s, small, 0, 100, &one, &next, &e),
                 TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "bytes") != NULL, "%s", e.msg);
    CHECK(one == NULL);
    /* An empty grid, and a cursor past the end: an empty last page. */
    CHECK_EQ_INT(store_results_json(s, empty, 0, PAGE_BYTES, &one, &next, &e),
                 TFQ_OK);
    CHECK_STR(one, "[]");
    CHECK_EQ_INT(next, 0);
    free(one);
    CHECK_EQ_INT(store_results_json(s, 0, N + SMALL, PAGE_BYTES, &one, &next,
                                    &e), TFQ_OK);
    CHECK_STR(one, "[]");
    free(one);

    /* Running jobs, their curves and workers page the same way. */
    char worker[16];
    int leased = 0;
    for (int w = 0; w < 5; w++) {
        snprintf(worker, sizeof worker, "w%d", w);
        CHECK_EQ_INT(store_worker_seen(s, worker, "host", 100 + w, 1, 1, &e),
                     TFQ_OK);
        store_leased l[STORE_MAX_LEASE];
        int n = 0;
        CHECK_EQ_INT(store_lease_many(s, worker, NULL, 1, 7, l, &n, &e), TFQ_OK);
        for (int i = 0; i < n; i++) {
            for (int epoch = 1; epoch <= 3; epoch++)
                CHECK_EQ_INT(store_metric_add(s, l[i].job_id, l[i].attempt,
                                              NULL, epoch, 1.0 / epoch, 0.5,
                                              100, 1, &e), TFQ_OK);
            store_leased_release(&l[i]);
        }
        leased += n;
    }
    CHECK_EQ_INT(leased, 35);
    /* Curves: the jobs that reported epochs, each with its 3. */
    CHECK(report_all(s, REPORT_CURVES, 0, 900, &all, &pages) == 0);
    CHECK(array_stats(all, "$.job", &count, &unordered) == 0);
    CHECK_EQ_INT(count, leased);
    CHECK_EQ_INT(unordered, 0);
    CHECK(pages > 5);
    int epochs = 0;
    for (const char *p = all; (p = strstr(p, "\"epoch\":")) != NULL; p++)
        epochs++;
    CHECK_EQ_INT(epochs, 3 * leased);
    CHECK_MSG(strstr(all, "{\"attempt\":1,\"epoch\":2,\"loss\":0.5,"
                     "\"test_acc\":0.5,\"images_per_s\":100.0}") != NULL,
              "%.400s", all);
    free(all);
    CHECK(report_all(s, REPORT_RUNNING, 0, 400, &all, &pages) == 0);
    CHECK(array_stats(all, "$.job", &count, &unordered) == 0);
    free(all);
    CHECK_EQ_INT(count, leased);
    CHECK_EQ_INT(unordered, 0);
    CHECK(pages > 5);
    CHECK(report_all(s, REPORT_WORKERS, 0, 150, &all, &pages) == 0);
    CHECK(array_stats(all, "$.worker", &count, &unordered) == 0);
    CHECK_EQ_INT(count, 5);
    CHECK_EQ_INT(unordered, 0);
    CHECK_EQ_INT(pages, 5);
    CHECK_MSG(strstr(all, "\"running\":7,\"done\":0") != NULL, "%s", all);
    free(all);
    store_destroy(&s);
    return 0;
}

static void crash_child(const char *path)
{
    tfq_error e = {0};
    store *s = store_open(path, &e);
    if (s == NULL)
        _exit(2);
    int64_t grid = 0;
    if (store_begin(s, &e) || store_grid_add(s, "g", "{}", &grid, 0, &e))
        _exit(2);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "j%d", i);
        if (add_job(s, grid, name, 20 - i, 0) == 0)
            _exit(2);
    }
    if (store_refresh_ready(s, 0, &e) || store_commit(s, &e))
        _exit(2);
    for (int i = 0; i < 3; i++) {
        store_leased l;
        if (lease_one(s, "w", 10, &l, &e) || l.job_id != i + 1)
            _exit(2);
        store_leased_release(&l);
    }
    if (store_finish(s, 1, 1, NULL, 1, "{\"final_acc\":1}", NULL, 11, &e) ||
        store_finish(s, 2, 1, NULL, 0, NULL, "bad", 11, &e) ||
        store_checkpoint_add(s, 3, 1, NULL, 2, SHA_A, 99, 12, &e))
        _exit(2);
    /* Uncommitted work that must vanish. */
    if (store_begin(s, &e) || add_job(s, grid, "uncommitted", 0, 0) == 0 ||
        store_finish(s, 3, 1, NULL, 1, "{}", NULL, 13, &e))
        _exit(2);
    raise(SIGKILL);
    _exit(3);
}

static int test_crash_durability(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s", path_in(test_tmpdir(), "store.db"));
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        crash_child(path);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "child status %d", status);

    tfq_error e = {0};
    store *s = store_open(path, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    store_counts c;
    CHECK_EQ_INT(store_counts_get(s, 0, &c, &e), TFQ_OK);
    CHECK_EQ_INT(c.total, 20);
    CHECK_EQ_INT(c.succeeded, 1);
    CHECK_EQ_INT(c.running, 1);
    CHECK_EQ_INT(c.ready, 18); /* 17 never leased, 1 back after a failure */
    store_destroy(&s);
    CHECK_STR(query(path, "PRAGMA integrity_check"), "ok");
    CHECK_STR(query(path, "SELECT result FROM jobs WHERE id = 1"),
              "{\"final_acc\":1}");
    CHECK_STR(query(path, "SELECT last_error FROM jobs WHERE id = 2"), "bad");
    CHECK_STR(query(path, "SELECT sha256 FROM checkpoints"), SHA_A);
    CHECK_STR(query(path, "SELECT COUNT(*) FROM jobs WHERE "
                          "name = 'uncommitted'"), "0");
    CHECK_STR(query(path, "SELECT state FROM attempts WHERE job_id = 3"),
              "running");
    return 0;
}

/* A database made by an older tfq (schema version 1, with a job in it) is
 * brought to the current version on open, its data kept. */
static int test_upgrade(void)
{
    const char *path = path_in(test_tmpdir(), "old.db");
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, store_migration_sql(1), NULL, NULL, NULL) ==
          SQLITE_OK);
    CHECK(sqlite3_exec(db, "INSERT INTO meta (key, value) VALUES "
                           "('schema_version', 1); INSERT INTO grids (name, "
                           "spec, created_ms) VALUES ('g', '', 1); INSERT "
                           "INTO jobs (grid_id, name, kind, spec, identity, "
                           "state, created_ms, updated_ms) VALUES (1, 'old', "
                           "'sleep', 'kind = sleep', 'x', 'ready', 1, 1)",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    tfq_error e = {0};
    store *s = store_open(path, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    CHECK_EQ_INT(store_schema_version(s), STORE_SCHEMA_VERSION);
    store_leased l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(lease_one(s, "w", 2, &l, &e), TFQ_OK);
    CHECK(l.job_id == 1 && strcmp(l.name, "old") == 0);
    CHECK(l.init_sha256[0] == '\0');
    CHECK_EQ_INT(store_metric_add(s, 1, 1, NULL, 1, 0.1, 0.9, 10, 3.5, &e), TFQ_OK);
    store_leased_release(&l);
    store_destroy(&s);
    CHECK_STR(query(path, "SELECT eta_s FROM metrics"), "3.5");
    CHECK_STR(query(path, "SELECT value FROM meta WHERE key = "
                          "'schema_version'"), "8");
    return 0;
}

/* The whole of a small file as text (at most 255 bytes), "" when it cannot
 * be read. */
static const char *file_text(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f != NULL) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
        fclose(f);
    }
    return buf;
}

/* v as the mirror file writes it ("12\n"); one of four static buffers. */
static const char *seq_text(int64_t v)
{
    static char buf[4][32];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%lld\n", (long long)v);
    return p;
}

/* Copies a file of at most 1 MiB; 0 on success. */
static int copy_file(const char *from, const char *to)
{
    static char buf[1 << 20];
    FILE *f = fopen(from, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == sizeof buf ? -1 : test_write_file(to, buf, n);
}

/* The commit sequence: counted by each top-level commit that changed
 * something, mirrored in a file; a store behind its mirror is refused
 * (untouched) or, with accept_rollback, adopted; a store ahead of it, or
 * without one, rewrites the mirror. */
static int test_commit_seq(void)
{
    const char *dir = test_tmpdir();
    char path[512], seq[512], old[512];
    snprintf(path, sizeof path, "%s", path_in(dir, "tfq.db"));
    snprintf(seq, sizeof seq, "%s", path_in(dir, "tfq.seq"));
    snprintf(old, sizeof old, "%s", path_in(dir, "old.db"));
    store_opts o = {.seq_path = seq};
    tfq_error e = {0};
    char want[128];

    /* A new store: its migrations are its first commits. */
    store *s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    int64_t n = store_commit_seq(s);
    CHECK_EQ_INT(n, STORE_SCHEMA_VERSION);
    CHECK_STR(file_text(seq), seq_text(n));
    int64_t grid = 0;
    CHECK_EQ_INT(store_grid_add(s, "g", "{}", &grid, 1, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit_seq(s), n + 1);
    CHECK_STR(file_text(seq), seq_text(n + 1));
    /* Nothing changed, nothing counted: a refused insert, an idle expiry. */
    CHECK_EQ_INT(store_grid_add(s, "g", "{}", NULL, 1, &e), TFQ_EINVAL);
    CHECK_EQ_INT(store_expire(s, 10, 5, NULL, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit_seq(s), n + 1);
    /* A batch is one commit. */
    CHECK_EQ_INT(store_begin(s, &e), TFQ_OK);
    CHECK(add_job(s, grid, "a", 0, 0) > 0);
    CHECK(add_job(s, grid, "b", 0, 0) > 0);
    CHECK_EQ_INT(store_commit(s, &e), TFQ_OK);
    CHECK_EQ_INT(store_commit_seq(s), n + 2);
    store_destroy(&s);
    snprintf(want, sizeof want, "%lld", (long long)(n + 2));
    CHECK_STR(query(path, "SELECT value FROM meta WHERE key = 'commit_seq'"),
              want);
    CHECK(copy_file(path, old) == 0); /* a copy at commit n + 2 */

    s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    CHECK(add_job(s, grid, "c", 0, 0) > 0);
    CHECK_EQ_INT(store_commit_seq(s), n + 3);
    store_destroy(&s);

    /* The older copy put back: refused, and left as it was. */
    CHECK(copy_file(old, path) == 0);
    tfq_error_clear(&e);
    CHECK(store_open_opts(path, &o, &e) == NULL);
    CHECK_EQ_INT(e.code, TFQ_EMISMATCH);
    snprintf(want, sizeof want, "holds commit %lld but", (long long)(n + 2));
    CHECK_MSG(strstr(e.msg, want) != NULL, "%s", e.msg);
    snprintf(want, sizeof want, "says commit %lld was made", (long long)(n + 3));
    CHECK_MSG(strstr(e.msg, want) != NULL &&
              strstr(e.msg, "lost its last 1 commits") != NULL &&
              strstr(e.msg, seq) != NULL, "%s", e.msg);
    CHECK_STR(file_text(seq), seq_text(n + 3));
    CHECK_STR(query(path, "SELECT COUNT(*) FROM jobs"), "2");
    /* Accepted: its number is adopted, and the next start is clean. */
    o.accept_rollback = 1;
    s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    CHECK_EQ_INT(store_rolled_back_from(s), n + 3);
    CHECK_EQ_INT(store_commit_seq(s), n + 2);
    CHECK_STR(file_text(seq), seq_text(n + 2));
    store_destroy(&s);
    o.accept_rollback = 0;
    s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    CHECK_EQ_INT(store_rolled_back_from(s), 0);
    store_destroy(&s);

    /* A mirror lost or behind is written anew. */
    CHECK(unlink(seq) == 0);
    s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    store_destroy(&s);
    CHECK_STR(file_text(seq), seq_text(n + 2));
    CHECK(test_write_file(seq, "3\n", 2) == 0);
    s = store_open_opts(path, &o, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    store_destroy(&s);
    CHECK_STR(file_text(seq), seq_text(n + 2));

    /* A mirror that holds no number is refused. */
    CHECK(test_write_file(seq, "seven\n", 6) == 0);
    tfq_error_clear(&e);
    CHECK(store_open_opts(path, &o, &e) == NULL);
    CHECK_EQ_INT(e.code, TFQ_EMISMATCH);
    CHECK_MSG(strstr(e.msg, "holds no commit number") != NULL, "%s", e.msg);

    /* The store removed: refused, and not created empty. */
    const char *text = seq_text(n + 2);
    CHECK(test_write_file(seq, text, strlen(text)) == 0);
    CHECK(unlink(path) == 0);
    tfq_error_clear(&e);
    CHECK(store_open_opts(path, &o, &e) == NULL);
    CHECK_EQ_INT(e.code, TFQ_EMISMATCH);
    snprintf(want, sizeof want, "says %lld commits were made", (long long)(n + 2));
    CHECK_MSG(strstr(e.msg, "is missing") != NULL &&
              strstr(e.msg, want) != NULL, "%s", e.msg);
    CHECK(access(path, F_OK) != 0);
    test_rmtree(dir);
    return 0;
}

/* A page of a store overwritten: store_open refuses it, quoting what
 * PRAGMA quick_check found. */
static int test_quick_check(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    store_destroy(&s);
    /* Page 2 is the root of the first table (meta): a b-tree page. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    char junk[4096];
    memset(junk, 0xa5, sizeof junk);
    CHECK(fseek(f, 4096, SEEK_SET) == 0);
    CHECK(fwrite(junk, 1, sizeof junk, f) == sizeof junk);
    CHECK(fclose(f) == 0);
    s = store_open(path, &e);
    CHECK(s == NULL);
    CHECK_EQ_INT(e.code, TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "is corrupt (PRAGMA quick_check found:") != NULL &&
              strstr(e.msg, "Page 2") != NULL && strchr(e.msg, '\n') == NULL,
              "%s", e.msg);
    return 0;
}

/* A swept grid's job keeps its setting combination: in its row, in the
 * results, the curves and the dashboard's jobs, also when it is added as
 * a reuse of finished work; a job without one has null. */
static int test_sweep_column(void)
{
    char path[512];
    tfq_error e = {0};
    store *s = fresh(path, sizeof path);
    CHECK(s != NULL);
    int64_t grid = 0, a = 0, b = 0, c = 0;
    CHECK_EQ_INT(store_grid_add(s, "g", "{}", &grid, 0, &e), TFQ_OK);
    store_job j = {.grid_id = grid, .name = "lr=0.01/random0/1/baseA",
                   .kind = "sleep", .spec = "kind = sleep", .identity = "x",
                   .n = 0, .finetune = 0, .seed = 1, .sweep = "lr=0.01"};
    CHECK_EQ_INT(store_job_add(s, &j, &a, 0, &e), TFQ_OK);
    j.name = "plain";
    j.identity = "y";
    j.sweep = NULL;
    CHECK_EQ_INT(store_job_add(s, &j, &b, 0, &e), TFQ_OK);
    CHECK_EQ_INT(store_refresh_ready(s, 1, &e), TFQ_OK);
    store_leased l;
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(lease_one(s, "w", 2, &l, &e), TFQ_OK);
    CHECK_EQ_INT(store_metric_add(s, l.job_id, 1, NULL, 1, 0.1, 0.9, 10, 1,
                                  &e), TFQ_OK);
    CHECK_EQ_INT(store_finish(s, l.job_id, 1, NULL, 1, "{}", NULL, 3, &e),
                 TFQ_OK);
    store_leased_release(&l);
    j.name = "lr=0.01/again";
    j.identity = "x";
    j.sweep = "lr=0.01/init=caffe";
    j.reused_from = a;
    CHECK_EQ_INT(store_job_add(s, &j, &c, 4, &e), TFQ_OK);
    CHECK_STR(query(path, "SELECT group_concat(coalesce(sweep, '-'), ' ') "
                          "FROM jobs ORDER BY id"),
              "lr=0.01 - lr=0.01/init=caffe");
    char *json = NULL;
    int64_t next = 0, count = 0;
    CHECK_EQ_INT(store_results_json(s, grid, 0, 1 << 20, &json, &next, &e),
                 TFQ_OK);
    CHECK_MSG(strstr(json, "\"sweep\":\"lr=0.01\"") &&
              strstr(json, "\"sweep\":null") &&
              strstr(json, "\"sweep\":\"lr=0.01/init=caffe\""), "%s", json);
    free(json);
    CHECK_EQ_INT(store_curves_json(s, grid, a, 0, 1 << 20, &json, &next, &e),
                 TFQ_OK);
    CHECK_MSG(strstr(json, "\"sweep\":\"lr=0.01\""), "%s", json);
    free(json);
    CHECK_EQ_INT(store_jobs_json(s, grid, NULL, 1 << 20, &json, &count, &e),
                 TFQ_OK);
    CHECK_MSG(strstr(json, "\"sweep\":\"lr=0.01/init=caffe\""), "%s",
              json);
    free(json);
    store_destroy(&s);
    return 0;
}

static const test_case cases[] = {
    {"sweep_column", test_sweep_column},
    {"commit_seq", test_commit_seq},
    {"quick_check", test_quick_check},
    {"upgrade", test_upgrade},
    {"open_migrate", test_open_migrate},
    {"schema_file_matches", test_schema_file_matches},
    {"lease_holder", test_lease_holder},
    {"resume_fallback", test_resume_fallback},
    {"bad_row_skipped", test_bad_row_skipped},
    {"lease_order", test_lease_order},
    {"deps_ready_blocked", test_deps_ready_blocked},
    {"stale_result_rejected", test_stale_result_rejected},
    {"release_requeues", test_release_requeues},
    {"max_attempts_fail", test_max_attempts_fail},
    {"recover_then_expire", test_recover_then_expire},
    {"counts", test_counts},
    {"bulk_insert_100k", test_bulk_insert_100k},
    {"jobs_pages_100k", test_jobs_pages_100k},
    {"report_pages", test_report_pages},
    {"crash_durability", test_crash_durability},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
