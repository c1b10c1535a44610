/* The dashboard's routes over the coordinator's reads (schema/HTTP.md):
 * status, grids, jobs, one job, workers, events, metrics; and the table
 * of every route. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dashboard_api.h"
#include "report_json.h"

#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void build_status(dashboard *d, const void *arg, dash_reply *out)
{
    (void)arg;
    proto_msg m, r;
    proto_msg_init(&m, PROTO_STATUS);
    char *items;
    tfq_error e = {0};
    int rc = dash_request(d, &m, 0, &r, &items, NULL, &e);
    free(items);
    /* An error reply is an answer: the coordinator is there. */
    int up = rc != TFQ_EIO && rc != TFQ_EPERM;
    dash_out o;
    if (dash_out_open(&o) != 0) {
        dash_error(out, 500, "out of memory");
        return;
    }
    fprintf(o.f, "{\"coordinator\": \"%s\", \"error\": ",
            up ? "ok" : "unreachable");
    if (up)
        fputs("null", o.f);
    else
        report_json_string(o.f, e.msg);
    fputs(", \"endpoint\": ", o.f);
    report_json_string(o.f, d->endpoint);
    fprintf(o.f, ", \"version\": \"%s\", \"now_ms\": %lld}\n", TFQ_VERSION,
            now_ms());
    dash_out_json(&o, out);
}

/* {"name": the items of m's reply (every page when pages)}. */
static void wrap_items(dashboard *d, const proto_msg *m, int pages,
                       const char *name, dash_reply *out)
{
    proto_msg r;
    char *items;
    tfq_error e = {0};
    int rc = dash_request(d, m, pages, &r, &items, NULL, &e);
    dash_out o;
    if (dash_out_begin(rc, &e, &o, out) == 0) {
        fprintf(o.f, "{\"%s\": %s}\n", name, items);
        dash_out_json(&o, out);
    }
    free(items);
}

static void build_workers(dashboard *d, const void *arg, dash_reply *out)
{
    (void)arg;
    proto_msg m;
    proto_msg_init(&m, PROTO_WORKERS);
    wrap_items(d, &m, 1, "workers", out);
}

static void build_grids(dashboard *d, const void *arg, dash_reply *out)
{
    (void)arg;
    proto_msg m;
    proto_msg_init(&m, PROTO_GRIDS);
    wrap_items(d, &m, 1, "grids", out);
}

/* /api/events: grid, job, after, count (the parameters' order). */
static int check_events(const dash_args *a, dash_reply *out)
{
    long v;
    return dash_arg_int(a, 1, 0, 1L << 53, 0, &v, out) != 0 ||
                   dash_arg_int(a, 2, 0, 1L << 53, 0, &v, out) != 0 ||
                   dash_arg_int(a, 3, 1, 1000, 100, &v, out) != 0
               ? -1
               : 0;
}

static void build_events(dashboard *d, const void *arg, dash_reply *out)
{
    const dash_args *a = arg;
    long job, after, count;
    dash_arg_int(a, 1, 0, 1L << 53, 0, &job, out);
    dash_arg_int(a, 2, 0, 1L << 53, 0, &after, out);
    dash_arg_int(a, 3, 1, 1000, 100, &count, out);
    proto_msg m;
    proto_msg_init(&m, PROTO_EVENTS);
    m.grid = a->v[0] != NULL ? a->v[0] : "";
    m.job = job;
    m.after = after;
    m.count = count;
    wrap_items(d, &m, 0, "events", out);
}

/* The coordinator's metrics text, cached. */
static void build_coord_metrics(dashboard *d, const void *arg,
                                dash_reply *out)
{
    (void)arg;
    proto_msg m, r;
    proto_msg_init(&m, PROTO_METRICS);
    char *text;
    tfq_error e = {0};
    int rc = dash_request(d, &m, 0, &r, &text, NULL, &e);
    if (rc != 0)
        dash_coord_error(out, rc, &e);
    else
        dash_ok(out, METRICS_TYPE, text, strlen(text));
}

/* /metrics: the coordinator's text as it is, then the server's own. */
static void build_metrics(dashboard *d, const void *arg, dash_reply *out)
{
    (void)arg;
    dash_reply coord = {0};
    dash_cached(d, "/metrics (coordinator)", build_coord_metrics, NULL,
                &coord);
    dash_out o;
    if (dash_out_open(&o) != 0) {
        free(coord.body);
        dash_error(out, 500, "out of memory");
        return;
    }
    int up = coord.status == 200;
    if (up && coord.bytes > 0) {
        fwrite(coord.body, 1, coord.bytes, o.f);
        if (coord.body[coord.bytes - 1] != '\n')
            fputc('\n', o.f);
    }
    free(coord.body);
    fprintf(o.f, "# HELP tfq_dashboard_coordinator_up Whether the "
            "coordinator answered the dashboard's last request for its "
            "metrics.\n# TYPE tfq_dashboard_coordinator_up gauge\n"
            "tfq_dashboard_coordinator_up %d\n", up);
    dash_write_metrics(d, o.f);
    int bad = ferror(o.f);
    fclose(o.f);
    if (bad) {
        free(o.buf);
        dash_error(out, 500, "out of memory");
        return;
    }
    dash_ok(out, METRICS_TYPE, o.buf, o.len);
}

const dash_route dash_routes[] = {
    {"/api/status", {NULL}, NULL, build_status, 0},
    {"/api/grids", {NULL}, NULL, build_grids, 0},
    {"/api/jobs", {"grid", "state", "split", "variant", "n", "target", "q",
                   "sort", "desc", "page", "per_page", NULL},
     dash_check_jobs, dash_build_jobs, 0},
    {"/api/job", {"id", NULL}, dash_check_job, dash_build_job, 0},
    {"/api/workers", {NULL}, NULL, build_workers, 0},
    {"/api/events", {"grid", "job", "after", "count", NULL}, check_events,
     build_events, 0},
    {"/api/figure", {"grid", "n", NULL}, dash_check_figure,
     dash_build_figure, 0},
    {"/api/table1", {"grid", NULL}, dash_check_table1, dash_build_table1, 0},
    {"/metrics", {NULL}, NULL, build_metrics, 1},
    {NULL, {NULL}, NULL, NULL, 0},
};
