/* What the dashboard's routes share (dashboard_api.c) and their table
 * (dashboard_routes.c, dashboard_report.c). */
#ifndef TFQ_CLI_DASHBOARD_API_H
#define TFQ_CLI_DASHBOARD_API_H

#include <stdio.h>

#include "dashboard_int.h"

#define DASH_MAX_PARAMS 12
/* A parameter's value at most (a grid's name is at most 128). */
#define DASH_MAX_VALUE_BYTES 256

typedef struct dash_route dash_route;

/* A request's parameters: v[i] the value of route->params[i], NULL when
 * absent or empty.  The values are the connection's, valid while it
 * answers. */
typedef struct {
    const dash_route *route;
    const char *v[DASH_MAX_PARAMS];
} dash_args;

struct dash_route {
    const char *path;
    const char *params[DASH_MAX_PARAMS]; /* NULL-ended */
    /* Refuses bad parameters before the cache (an answer in out, -1);
     * NULL: none to check. */
    int (*check)(const dash_args *a, dash_reply *out);
    dash_build_fn build; /* takes a const dash_args * */
    int uncached;        /* built on every request (it asks the cache) */
};

/* The routes, ended by one with a NULL path. */
extern const dash_route dash_routes[];

/* A JSON answer written into a memory stream. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} dash_out;

/* 0, or TFQ_ENOMEM. */
int dash_out_open(dash_out *o);

/* Closes o and makes it out's body: JSON, status 200, with '<', '>', '&'
 * escaped (a 500 when memory ran out). */
void dash_out_json(dash_out *o, dash_reply *out);

/* The answer to a failed dash_request: 503 unreachable, 404 for what the
 * coordinator does not know, 400 for what it refused, else 502. */
void dash_coord_error(dash_reply *out, int rc, const tfq_error *e);

/* After a coordinator read that returned rc (its error in e): 0 with o
 * open for the answer, or -1 with the error (dash_coord_error, or a 500
 * when memory ran out) already in out. */
int dash_out_begin(int rc, const tfq_error *e, dash_out *o, dash_reply *out);

/* Parameter i as an integer in lo .. hi into *v (dflt when absent); 0, or
 * -1 with a 400 in out. */
int dash_arg_int(const dash_args *a, int i, long lo, long hi, long dflt,
                 long *v, dash_reply *out);

/* 0 when parameter i is there; else -1 with a 400 in out. */
int dash_arg_required(const dash_args *a, int i, dash_reply *out);

/* /api/jobs and /api/job (dashboard_job.c). */
int dash_check_jobs(const dash_args *a, dash_reply *out);
int dash_check_job(const dash_args *a, dash_reply *out);
void dash_build_jobs(dashboard *d, const void *arg, dash_reply *out);
void dash_build_job(dashboard *d, const void *arg, dash_reply *out);

/* /api/figure and /api/table1 (dashboard_report.c). */
int dash_check_figure(const dash_args *a, dash_reply *out);
int dash_check_table1(const dash_args *a, dash_reply *out);
void dash_build_figure(dashboard *d, const void *arg, dash_reply *out);
void dash_build_table1(dashboard *d, const void *arg, dash_reply *out);

#endif
