#include "report_grid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --from-json: `tfq results --json` of some 500,000 jobs (about 450 bytes
 * each). */
#define INPUT_MAX_BYTES (256u << 20)

char *ingest_read_all(const char *path, tfq_error *e)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        tfq_error_set(e, TFQ_ENOENT, "%s: cannot open: %s", path,
                      strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n + 1 < cap)
            break;
        char *nb = cap < INPUT_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
        if (nb == NULL)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (buf == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: too large to read", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        tfq_error_set(e, TFQ_EIO, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

sqlite3_stmt *ingest_prepare(sqlite3 *db, const char *sql, tfq_error *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
    return st;
}

int ingest_query_text(sqlite3 *db, const char *sql, const char *json,
                      char *out, size_t bytes, tfq_error *e)
{
    sqlite3_stmt *st = ingest_prepare(db, sql, e);
    if (st == NULL)
        return TFQ_EIO;
    if (json != NULL)
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    int rc = TFQ_OK;
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, bytes, "%s", v != NULL ? (const char *)v : "");
    } else {
        rc = tfq_error_set(e, TFQ_EFORMAT, "report: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* The input must be a JSON array of objects; source names it in errors. */
static int check_json(sqlite3 *db, const char *json, const char *source,
                      tfq_error *e)
{
    char what[REPORT_NAME_BYTES];
    int rc = ingest_query_text(
            db,
            "SELECT CASE WHEN NOT json_valid(?1) THEN 'invalid' "
            "WHEN json_type(?1) <> 'array' THEN json_type(?1) "
            "ELSE coalesce((SELECT min(key) FROM json_each(?1) "
            "WHERE type <> 'object'), 'ok') END", json, what, sizeof what, e);
    if (rc != 0 || strcmp(what, "ok") == 0)
        return rc;
    if (strcmp(what, "invalid") == 0)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: not valid JSON", source);
    if (what[0] >= '0' && what[0] <= '9')
        return tfq_error_set(e, TFQ_EFORMAT, "%s: element %s of the array "
                             "is not a job object", source, what);
    return tfq_error_set(e, TFQ_EFORMAT, "%s: expected a JSON array of "
                         "jobs, found %s %s", source,
                         strchr("aeiou", what[0]) ? "an" : "a", what);
}

/* A job with every grid coordinate; plain job files have none. */
#define HAS_COORDS                                                          \
    "(json_extract(j.value, '$.split') IS NOT NULL AND "                    \
    "json_extract(j.value, '$.similarity') IS NOT NULL AND "                \
    "json_extract(j.value, '$.target') IS NOT NULL AND "                    \
    "json_type(j.value, '$.n') = 'integer' AND "                            \
    "json_extract(j.value, '$.variant') IS NOT NULL AND "                   \
    "json_extract(j.value, '$.seed') IS NOT NULL)"

#define FINISHED                                                            \
    "(json_extract(j.value, '$.state') = 'succeeded' AND "                  \
    "json_type(j.value, '$.result') = 'object')"

/* The numbers of $.result.accs, the test accuracy of each evaluation. */
#define ACCS                                                                \
    "json_each(j.value, '$.result.accs') a WHERE a.type IN "                \
    "('integer', 'real')"

/* The accuracy of one job under each metric, from its evaluations when it
 * has them; else from the summary the worker computed (for topK only when
 * it was computed with the same K, ?2). */
static const char *const s_metric_sql[] = {
    [METRIC_FINAL] = "coalesce((SELECT a.value FROM " ACCS
                     " ORDER BY a.key DESC LIMIT 1), "
                     "json_extract(j.value, '$.result.final_acc'))",
    [METRIC_BEST] = "coalesce((SELECT max(a.value) FROM " ACCS "), "
                    "json_extract(j.value, '$.result.best_acc'))",
    [METRIC_TOPK] = "coalesce((SELECT avg(v) FROM (SELECT a.value AS v FROM "
                    ACCS " ORDER BY a.value DESC LIMIT ?2)), "
                    "CASE WHEN coalesce(json_extract(j.value, "
                    "'$.result.topk'), ?2) = ?2 THEN json_extract(j.value, "
                    "'$.result.topk_acc') END)",
};

/* A job's metric: its grid's, else REPORT_DEFAULT_METRIC. */
#define JOB_METRIC                                                          \
    "coalesce(json_extract(j.value, '$.metric'), '" REPORT_DEFAULT_METRIC "')"

/* Into table accs(key, metric, acc) of db, the jobs of json (?1) whose
 * metric is name: their value under it when they finished (null for an
 * unknown metric). */
static int metric_values(sqlite3 *db, const char *json, const char *name,
                         tfq_error *e)
{
    metric m;
    int known = metric_parse(name, &m) == 0;
    char sql[2048];
    snprintf(sql, sizeof sql, "INSERT INTO accs SELECT j.key, ?3, CASE WHEN "
             FINISHED " THEN %s END FROM json_each(?1) j WHERE " JOB_METRIC
             " = ?3", known ? s_metric_sql[m.kind] : "NULL");
    sqlite3_stmt *st = ingest_prepare(db, sql, e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, known ? m.k : 0);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EFORMAT, "report: %s",
                             sqlite3_errmsg(db));
    return TFQ_OK;
}

/* The jobs with "metric" and "acc" added, in their order, into *out. */
static int jobs_with_metric(sqlite3 *db, const char *json, char **out,
                            tfq_error *e)
{
    sqlite3_stmt *st = ingest_prepare(
            db, "SELECT DISTINCT " JOB_METRIC " FROM json_each(?1) j", e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    int rc = TFQ_OK;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = metric_values(db, json, (const char *)sqlite3_column_text(st, 0),
                           e);
    sqlite3_finalize(st);
    if (rc != 0)
        return rc;
    st = ingest_prepare(
            db, "SELECT json_group_array(json(v)) FROM (SELECT json_set("
            "j.value, '$.metric', a.metric, '$.acc', a.acc) AS v FROM "
            "json_each(?1) j JOIN accs a ON a.key = j.key ORDER BY j.key)", e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    const char *v = sqlite3_step(st) == SQLITE_ROW
                            ? (const char *)sqlite3_column_text(st, 0)
                            : NULL;
    if (v == NULL)
        rc = tfq_error_set(e, TFQ_EFORMAT, "report: %s", sqlite3_errmsg(db));
    else if ((*out = strdup(v)) == NULL)
        rc = tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
    sqlite3_finalize(st);
    return rc;
}

char *ingest_with_metric(const char *json, const char *source, tfq_error *e)
{
    sqlite3 *db = NULL;
    char *out = NULL;
    int rc = sqlite3_open(":memory:", &db) == SQLITE_OK
                     ? TFQ_OK
                     : tfq_error_set(e, TFQ_EIO, "report: cannot open SQLite");
    if (rc == 0)
        rc = check_json(db, json, source, e);
    if (rc == 0 && sqlite3_exec(db, "CREATE TABLE accs(key INTEGER PRIMARY "
                                "KEY, metric TEXT, acc REAL)", NULL, NULL,
                                NULL) != SQLITE_OK)
        rc = tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
    if (rc == 0)
        jobs_with_metric(db, json, &out, e);
    sqlite3_close(db);
    return out;
}

/* The metric: the option's, else the grid's, else REPORT_DEFAULT_METRIC. */
static int choose_metric(grid_report *g, const char *json, const char *opt,
                         tfq_error *e)
{
    char name[REPORT_NAME_BYTES];
    if (opt != NULL) {
        snprintf(name, sizeof name, "%s", opt);
    } else {
        int rc = ingest_query_text(
                g->db, "SELECT coalesce((SELECT json_extract("
                "j.value, '$.metric') FROM json_each(?1) j WHERE "
                "json_extract(j.value, '$.metric') IS NOT NULL "
                "LIMIT 1), '" REPORT_DEFAULT_METRIC "')", json, name,
                sizeof name, e);
        if (rc != 0)
            return rc;
    }
    if (metric_parse(name, &g->metric) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "the grid's metric '%s' is not "
                             "final, best or topK; choose one with --metric",
                             name);
    return TFQ_OK;
}

/* Fills the runs table from json and counts what was left out. */
static int load_runs(grid_report *g, const char *json, tfq_error *e)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO runs SELECT json_extract(j.value, '$.job'), "
             "json_extract(j.value, '$.split'), "
             "json_extract(j.value, '$.similarity'), "
             "json_extract(j.value, '$.target'), "
             "CASE WHEN json_extract(j.value, '$.variant') = 'base' THEN 0 "
             "ELSE json_extract(j.value, '$.n') END, "
             "json_extract(j.value, '$.variant'), "
             "CASE WHEN json_extract(j.value, '$.variant') = 'base' THEN 0 "
             "ELSE coalesce(json_extract(j.value, '$.finetune'), 0) END, "
             "json_extract(j.value, '$.seed'), %s "
             "FROM json_each(?1) j WHERE " HAS_COORDS " AND " FINISHED,
             s_metric_sql[g->metric.kind]);
    if (sqlite3_exec(g->db, "CREATE TABLE runs(job INTEGER, split TEXT, "
                     "similarity TEXT, target TEXT, n INTEGER, variant TEXT, "
                     "finetune INTEGER, seed, acc REAL);"
                     "CREATE VIEW bases AS SELECT split, target, seed, "
                     "avg(acc) AS acc FROM runs WHERE variant = 'base' "
                     "GROUP BY split, target, seed", NULL, NULL,
                     NULL) != SQLITE_OK)
        return tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(g->db));
    sqlite3_stmt *st = ingest_prepare(g->db, sql, e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, g->metric.k);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EFORMAT, "report: %s",
                             sqlite3_errmsg(g->db));
    g->no_value = 0;
    if (sqlite3_exec(g->db, "DELETE FROM runs WHERE typeof(acc) NOT IN "
                     "('real', 'integer')", NULL, NULL, NULL) == SQLITE_OK)
        g->no_value = sqlite3_changes(g->db);
    st = ingest_prepare(
            g->db, "SELECT count(*), coalesce(sum(NOT " HAS_COORDS
            "), 0), coalesce(sum(" HAS_COORDS " AND NOT " FINISHED
            "), 0), (SELECT count(*) FROM runs), (SELECT max(n) FROM "
            "runs) FROM json_each(?1) j", e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        g->jobs = sqlite3_column_int64(st, 0);
        g->plain = sqlite3_column_int64(st, 1);
        g->unfinished = sqlite3_column_int64(st, 2);
        g->runs = sqlite3_column_int64(st, 3);
        int xmax = sqlite3_column_int(st, 4);
        g->xmax = xmax < 1                  ? 1
                  : xmax > REPORT_MAX_LAYER ? REPORT_MAX_LAYER
                                            : xmax;
    }
    sqlite3_finalize(st);
    return TFQ_OK;
}

/* Names, on stderr, the succeeded jobs whose stored result the coordinator
 * could not read (a row of an old database): the report leaves them out
 * and goes on.  Other jobs have no result to leave out (a coordinator whose
 * SQLite takes json_valid(NULL) for false says so of every one). */
static void warn_bad_results(sqlite3 *db, const char *json)
{
    sqlite3_stmt *st = ingest_prepare(
            db, "SELECT json_extract(value, '$.job'), "
            "json_extract(value, '$.name'), json_extract("
            "value, '$.bad_result') FROM json_each(?1) "
            "WHERE json_extract(value, '$.bad_result') IS "
            "NOT NULL AND json_extract(value, '$.state') = "
            "'succeeded'", NULL);
    if (st == NULL)
        return;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW)
        fprintf(stderr, "tfq report: job %lld (%s): %s\n",
                (long long)sqlite3_column_int64(st, 0),
                (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
}

int ingest_runs(grid_report *g, const char *json, const char *source,
                const char *grid, const char *metric_opt, tfq_error *e)
{
    if (sqlite3_open(":memory:", &g->db) != SQLITE_OK)
        return tfq_error_set(e, TFQ_EIO, "report: cannot open SQLite");
    int rc = check_json(g->db, json, source, e);
    if (rc == 0)
        warn_bad_results(g->db, json);
    if (rc == 0)
        rc = choose_metric(g, json, metric_opt, e);
    if (rc == 0 && grid == NULL)
        rc = ingest_query_text(
                g->db, "SELECT coalesce((SELECT json_extract(j.value,"
                " '$.grid') FROM json_each(?1) j WHERE json_extract("
                "j.value, '$.grid') IS NOT NULL LIMIT 1), '')", json,
                g->grid, sizeof g->grid, e);
    else if (rc == 0)
        snprintf(g->grid, sizeof g->grid, "%s", grid);
    if (rc == 0 && g->grid[0] == '\0')
        snprintf(g->grid, sizeof g->grid, "%s", source);
    if (rc == 0)
        rc = load_runs(g, json, e);
    if (rc == 0 && g->runs == 0)
        return tfq_error_set(e, TFQ_ENOENT, "grid %s has no finished job%s "
                             "(%ld jobs: %ld not finished, %ld without grid "
                             "coordinates); nothing written", g->grid,
                             g->no_value ? " with a value for the metric" : "",
                             g->jobs, g->unfinished, g->plain);
    return rc;
}

void grid_report_release(grid_report *g)
{
    sqlite3_close(g->db);
    free(g->points);
    memset(g, 0, sizeof *g);
}

