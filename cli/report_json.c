#include "report_json.h"

#include <math.h>

#include "report_stats.h"

int report_build(grid_report *g, const char *json, const char *source,
                 const char *grid, const char *metric_opt, figure *f2,
                 figure *f3, figures_text *t, tfq_error *e)
{
    int rc = ingest_runs(g, json, source, grid, metric_opt, e);
    if (rc == 0)
        rc = stats_load(g, e);
    if (rc == 0)
        rc = figures_build(g, f2, f3, t, e);
    return rc;
}

void report_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* v as a JSON number, null when it is NAN. */
static void put_number(FILE *out, const char *key, double v)
{
    fprintf(out, ", \"%s\": ", key);
    if (isnan(v))
        fputs("null", out);
    else
        fprintf(out, "%.6f", v);
}

static void put_points(const grid_report *g, FILE *out)
{
    for (int i = 0; i < g->npoints; i++) {
        const report_point *p = &g->points[i];
        fprintf(out, "%s\n  {\"similarity\": ", i ? "," : "");
        report_json_string(out, p->similarity);
        fprintf(out, ", \"variant\": ");
        report_json_string(out, p->variant);
        fprintf(out, ", \"finetune\": %d, \"n\": %d, \"runs\": %d",
                p->finetune, p->n, p->runs);
        put_number(out, "mean", p->mean);
        put_number(out, "sd", p->sd);
        put_number(out, "ci95_lo", p->mean - p->ci95);
        put_number(out, "ci95_hi", p->mean + p->ci95);
        fprintf(out, "}");
    }
}

void report_write_json(const grid_report *g, const char *const *files,
                       int nfiles, FILE *out)
{
    fprintf(out, "{\"grid\": ");
    report_json_string(out, g->grid);
    fprintf(out, ", \"metric\": ");
    report_json_string(out, g->metric.name);
    fprintf(out, ", \"runs\": %ld, \"unfinished\": %ld, \"no_value\": %ld, "
            "\"plain\": %ld, \"no_base\": %ld,\n \"points\": [", g->runs,
            g->unfinished, g->no_value, g->plain, g->no_base);
    put_points(g, out);
    fprintf(out, "],\n \"table1\": [");
    for (int i = 0; i < REPORT_NGAINS; i++) {
        const report_gain *x = &g->gains[i];
        fprintf(out, "%s\n  {\"lo\": %d, \"hi\": %d, \"versus\": \"%s\", "
                "\"points\": %d", i ? "," : "", x->lo, x->hi, x->versus,
                x->points);
        put_number(out, "gain", x->gain);
        fprintf(out, ", \"missing\": ");
        report_json_string(out, x->missing);
        fprintf(out, "}");
    }
    fprintf(out, "],\n \"files\": [");
    for (int i = 0; i < nfiles; i++) {
        fprintf(out, "%s", i ? ", " : "");
        report_json_string(out, files[i]);
    }
    fprintf(out, "]}\n");
}
