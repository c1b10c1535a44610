/* tfq report's figures (the paper's Figures 2 and 3) from the runs
 * table (report_grid.h), drawn by figure.h. */
#ifndef TFQ_CLI_REPORT_FIGURES_H
#define TFQ_CLI_REPORT_FIGURES_H

#include "figure.h"
#include "report_grid.h"

/* Adds to f2 the series of Figure 2 (accuracy against n, random splits)
 * and to f3 those of Figure 3 (accuracy relative to the base net of the
 * same split, target and seed), counting in g->no_base the runs left out
 * of f3 for want of a base net.  TFQ_ENOMEM or TFQ_EIO in e. */
int figures_build(grid_report *g, figure *f2, figure *f3, tfq_error *e);

#endif
