/* /api/jobs (a grid's jobs, filtered, sorted and paged by the
 * coordinator) and /api/job (one job: its row, attempts, curves and
 * events). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard_api.h"
#include "report_grid.h"
#include "report_json.h"

/* /api/jobs's parameters, in the route's order. */
enum { J_GRID, J_STATE, J_SPLIT, J_VARIANT, J_N, J_TARGET, J_Q, J_SORT,
       J_DESC, J_PAGE, J_PER_PAGE };
#define MAX_PER_PAGE 500

typedef struct {
    long n, page, per_page;
    int desc;
} jobs_numbers;

static int jobs_args(const dash_args *a, jobs_numbers *j, dash_reply *out)
{
    if (dash_arg_required(a, J_GRID, out) != 0 ||
        dash_arg_int(a, J_N, 0, REPORT_MAX_LAYER, -1, &j->n, out) != 0 ||
        dash_arg_int(a, J_PER_PAGE, 1, MAX_PER_PAGE, 100, &j->per_page,
                     out) != 0 ||
        dash_arg_int(a, J_PAGE, 1, 1000000000L / j->per_page, 1, &j->page,
                     out) != 0)
        return -1;
    const char *desc = a->v[J_DESC];
    j->desc = desc != NULL && (strcmp(desc, "1") == 0 ||
                               strcmp(desc, "true") == 0);
    if (desc != NULL && !j->desc && strcmp(desc, "0") != 0 &&
        strcmp(desc, "false") != 0) {
        dash_error(out, 400, "/api/jobs: parameter 'desc': '%s' is not "
                   "true, false, 1 or 0", desc);
        return -1;
    }
    return 0;
}

int dash_check_jobs(const dash_args *a, dash_reply *out)
{
    jobs_numbers j;
    return jobs_args(a, &j, out);
}

/* The jobs request's query: a JSON object, to the memory stream f. */
static void write_query(const dash_args *a, const jobs_numbers *j, FILE *f)
{
    static const int strs[] = {J_STATE, J_SPLIT, J_VARIANT, J_TARGET, J_Q,
                               J_SORT};
    fputc('{', f);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (a->v[strs[i]] != NULL) {
            report_json_string(f, a->route->params[strs[i]]);
            fputs(": ", f);
            report_json_string(f, a->v[strs[i]]);
            fputs(", ", f);
        }
    if (j->n >= 0)
        fprintf(f, "\"n\": %ld, ", j->n);
    fprintf(f, "\"desc\": %s, \"offset\": %ld, \"limit\": %ld}",
            j->desc ? "true" : "false", (j->page - 1) * j->per_page,
            j->per_page);
}

/* One page of grid's jobs as query says, each with "acc" (ingest_with_
 * metric): a new string *jobs, and the count that match. */
static int jobs_page(dashboard *d, const char *grid, const char *query,
                     char **jobs, int64_t *count, tfq_error *e)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_JOBS);
    m.grid = grid;
    m.query = query;
    char *items;
    *jobs = NULL;
    int rc = dash_request(d, &m, 0, &r, &items, NULL, e);
    if (rc != 0)
        return rc;
    *count = r.count;
    *jobs = ingest_with_metric(items, "the coordinator's jobs reply", e);
    free(items);
    return *jobs != NULL ? 0 : e->code;
}

void dash_build_jobs(dashboard *d, const void *arg, dash_reply *out)
{
    const dash_args *a = arg;
    jobs_numbers j;
    if (jobs_args(a, &j, out) != 0)
        return;
    char query[PROTO_MAX_QUERY_BYTES];
    FILE *qf = fmemopen(query, sizeof query, "w");
    if (qf == NULL) {
        dash_error(out, 500, "out of memory");
        return;
    }
    write_query(a, &j, qf);
    fclose(qf);
    char *jobs;
    int64_t count = 0;
    tfq_error e = {0};
    int rc = jobs_page(d, a->v[J_GRID], query, &jobs, &count, &e);
    dash_out o;
    if (dash_out_begin(rc, &e, &o, out) == 0) {
        fputs("{\"grid\": ", o.f);
        report_json_string(o.f, a->v[J_GRID]);
        fprintf(o.f, ", \"page\": %ld, \"per_page\": %ld, \"count\": %lld, "
                "\"jobs\": %s}\n", j.page, j.per_page, (long long)count,
                jobs);
        dash_out_json(&o, out);
    }
    free(jobs);
}

/* ---- one job ------------------------------------------------------------ */

int dash_check_job(const dash_args *a, dash_reply *out)
{
    long id;
    return dash_arg_required(a, 0, out) != 0 ||
                   dash_arg_int(a, 0, 1, 1L << 53, 0, &id, out) != 0
               ? -1
               : 0;
}

/* The text of sql's one row's first column, sql run with json as ?1 and
 * id as ?2, in a new string; NULL when no row (or SQLite failed). */
static char *json_pick(const char *sql, const char *json, long id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_open(":memory:", &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_int64(st, 2, id) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* Job id's row (jobs-style, with "acc") in grid, the jobs query's "job"
 * key; a new string ("null" when there is none), or NULL with the reason
 * in e. */
static char *job_row(dashboard *d, const char *grid, long id, tfq_error *e)
{
    char query[64];
    snprintf(query, sizeof query, "{\"job\": %ld}", id);
    char *jobs;
    int64_t count = 0;
    if (jobs_page(d, grid, query, &jobs, &count, e) != 0)
        return NULL;
    char *row = json_pick("SELECT value FROM json_each(?1) WHERE "
                          "json_extract(value, '$.job') = ?2", jobs, id);
    free(jobs);
    return row != NULL ? row : strdup("null");
}

/* m's items, or "[]" when the coordinator has none (an error reply). */
static char *items_of(dashboard *d, const proto_msg *m, int pages,
                      tfq_error *e)
{
    proto_msg r;
    char *items;
    int rc = dash_request(d, m, pages, &r, &items, NULL, e);
    return rc == 0 ? items : rc == TFQ_EIO || rc == TFQ_EPERM ? NULL
                                                             : strdup("[]");
}

/* The reads of one job after job_get: its row, attempts, curves (its
 * epochs) and newest events, as new strings; 0, or the first failure. */
typedef struct {
    char *row, *attempts, *curves, *epochs, *events;
} job_parts;

static int job_reads(dashboard *d, const dash_names *n, long id,
                     job_parts *p, tfq_error *e)
{
    proto_msg m;
    p->row = n->grid[0] != '\0' ? job_row(d, n->grid, id, e)
                                : strdup("null");
    proto_msg_init(&m, PROTO_ATTEMPTS);
    m.job = id;
    p->attempts = p->row != NULL ? items_of(d, &m, 0, e) : NULL;
    proto_msg_init(&m, PROTO_CURVES);
    m.grid = n->grid;
    m.job = id;
    p->curves = p->attempts != NULL ? items_of(d, &m, 1, e) : NULL;
    proto_msg_init(&m, PROTO_EVENTS);
    m.grid = "";
    m.job = id;
    m.count = 100;
    p->events = p->curves != NULL ? items_of(d, &m, 0, e) : NULL;
    if (p->events == NULL)
        return e->code != 0 ? e->code : TFQ_ENOMEM;
    p->epochs = json_pick("SELECT coalesce((SELECT json_extract(value, "
                          "'$.epochs') FROM json_each(?1) WHERE "
                          "json_extract(value, '$.job') = ?2), '[]')",
                          p->curves, id);
    return p->epochs != NULL ? 0 : tfq_error_set(e, TFQ_ENOMEM, "out of "
                                                 "memory");
}

void dash_build_job(dashboard *d, const void *arg, dash_reply *out)
{
    const dash_args *a = arg;
    long id = strtol(a->v[0], NULL, 10);
    proto_msg m, r;
    proto_msg_init(&m, PROTO_JOB_GET);
    m.job = id;
    dash_names names;
    char *items;
    tfq_error e = {0};
    int rc = dash_request(d, &m, 0, &r, &items, &names, &e);
    free(items);
    job_parts p = {0};
    if (rc == 0)
        rc = job_reads(d, &names, id, &p, &e);
    dash_out o;
    if (dash_out_begin(rc, &e, &o, out) == 0) {
        fprintf(o.f, "{\"job\": %s, \"attempts\": %s, \"curves\": %s, "
                "\"events\": %s}\n", p.row, p.attempts, p.epochs, p.events);
        dash_out_json(&o, out);
    }
    free(p.row);
    free(p.attempts);
    free(p.curves);
    free(p.epochs);
    free(p.events);
}
