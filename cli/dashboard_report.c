/* /api/figure and /api/table1: tfq report's Figures 2 and 3 and its JSON
 * (report_json.h), made from the grid's results as tfq report makes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dashboard_api.h"
#include "report_json.h"

#define SVG_TYPE "image/svg+xml"

int dash_check_figure(const dash_args *a, dash_reply *out)
{
    long n;
    if (dash_arg_required(a, 0, out) != 0 || dash_arg_required(a, 1, out) ||
        dash_arg_int(a, 1, 2, 3, 2, &n, out) != 0)
        return -1;
    return 0;
}

int dash_check_table1(const dash_args *a, dash_reply *out)
{
    return dash_arg_required(a, 0, out);
}

/* The report of grid: its runs, points, Table 1 and figures, from every
 * page of its results.  0, or an answer in out. */
static int build(dashboard *d, const char *grid, grid_report *g, figure *f2,
                 figure *f3, figures_text *t, dash_reply *out)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_RESULTS);
    m.grid = grid;
    char *json;
    tfq_error e = {0};
    int rc = dash_request(d, &m, 1, &r, &json, NULL, &e);
    if (rc == 0)
        rc = report_build(g, json, "the coordinator's results", grid, NULL,
                          f2, f3, t, &e);
    free(json);
    if (rc == TFQ_ENOENT)
        dash_error(out, 404, "grid '%s': %s", grid, e.msg);
    else if (rc != 0)
        dash_coord_error(out, rc, &e);
    return rc;
}

void dash_build_figure(dashboard *d, const void *arg, dash_reply *out)
{
    const dash_args *a = arg;
    grid_report g = {0};
    figure f2 = {0}, f3 = {0};
    figures_text t;
    if (build(d, a->v[0], &g, &f2, &f3, &t, out) == 0) {
        char *svg;
        size_t bytes;
        tfq_error e = {0};
        if (figure_svg_mem(strcmp(a->v[1], "3") == 0 ? &f3 : &f2, &svg,
                           &bytes, &e) != 0)
            dash_error(out, 500, "%s", e.msg);
        else
            dash_ok(out, SVG_TYPE, svg, bytes);
    }
    figure_release(&f2);
    figure_release(&f3);
    grid_report_release(&g);
}

void dash_build_table1(dashboard *d, const void *arg, dash_reply *out)
{
    const dash_args *a = arg;
    grid_report g = {0};
    figure f2 = {0}, f3 = {0};
    figures_text t;
    dash_out o;
    if (build(d, a->v[0], &g, &f2, &f3, &t, out) != 0) {
        /* answered */
    } else if (dash_out_open(&o) != 0) {
        dash_error(out, 500, "out of memory");
    } else {
        report_write_json(&g, NULL, 0, o.f);
        dash_out_json(&o, out);
    }
    figure_release(&f2);
    figure_release(&f3);
    grid_report_release(&g);
}
