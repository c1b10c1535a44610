/* tfq report's statistics of the runs (report_grid.h): every point's mean,
 * sample sd and count, and the paper's Table 1, and the two as tables. */
#ifndef TFQ_CLI_REPORT_STATS_H
#define TFQ_CLI_REPORT_STATS_H

#include "report_grid.h"
#include "table.h"

/* Fills g->points (random splits first, then base, selffer, transfer,
 * random control) and g->gains from the runs table.  TFQ_ENOMEM or TFQ_EIO
 * (SQLite's message) in e. */
int stats_load(grid_report *g, tfq_error *e);

/* t_{0.975, df}: the 97.5% quantile of Student's t with df >= 1 degrees of
 * freedom, so that mean +- stats_t975(n - 1) * sd / sqrt(n) is the 95%
 * interval of the mean of n runs.  NAN for df < 1. */
double stats_t975(int df);

/* The half-width of the 95% t-interval of the mean of runs with sample sd
 * sd; NAN for fewer than two runs. */
double stats_ci95(double sd, int runs);

/* 1 when no line of Table 1 has a point, with why in one sentence in
 * reason (e.g. the grid has no transfer+ nets); else 0. */
int stats_gains_empty(const grid_report *g, char *reason, size_t bytes);

/* t (initialised here; the caller releases it): the points with decimals
 * digits, none standing for a missing sd.  TFQ_ENOMEM when it cannot grow. */
int stats_points_table(const grid_report *g, int decimals, const char *none,
                       table *t);

/* t, as stats_points_table: Table 1, none standing for a gain without
 * points. */
int stats_gains_table(const grid_report *g, int decimals, const char *none,
                      table *t);

#endif
