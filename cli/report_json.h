/* tfq report's numbers as one JSON object, and the steps that make them,
 * shared by tfq report --json and the dashboard's /api/table1 and
 * /api/figure. */
#ifndef TFQ_CLI_REPORT_JSON_H
#define TFQ_CLI_REPORT_JSON_H

#include <stdio.h>

#include "report_figures.h"
#include "report_grid.h"

/* The runs of json (an array of job objects, named source in errors; grid
 * and metric_opt as ingest_runs takes them) into g, its points and Table 1
 * (stats_load), and Figures 2 and 3 into f2 and f3 with their texts in t.
 * ingest_runs's and figures_build's errors; g, f2 and f3 are to be
 * released in every case. */
int report_build(grid_report *g, const char *json, const char *source,
                 const char *grid, const char *metric_opt, figure *f2,
                 figure *f3, figures_text *t, tfq_error *e);

/* The counts, every point, Table 1 and the files written (files[0 ..
 * nfiles), paths) of g as one JSON object and a newline on out: {grid,
 * metric, runs, unfinished, no_value, plain, no_base, points: [{similarity,
 * variant, finetune, n, runs, mean, sd, ci95_lo, ci95_hi}], table1: [{lo,
 * hi, versus, points, gain, missing}], files: [...]}; undefined numbers
 * are null. */
void report_write_json(const grid_report *g, const char *const *files,
                       int nfiles, FILE *out);

/* s as a JSON string (quoted, escaped) on out. */
void report_json_string(FILE *out, const char *s);

#endif
