/* tfq report's figures (the paper's Figures 2 and 3) from the runs
 * table (report_grid.h), drawn by figure.h. */
#ifndef TFQ_CLI_REPORT_FIGURES_H
#define TFQ_CLI_REPORT_FIGURES_H

#include "figure.h"
#include "report_grid.h"

/* The texts of the figures, which borrow them. */
typedef struct {
    char title2[REPORT_PATH_BYTES + 64], title3[REPORT_PATH_BYTES + 64];
    char ylabel2[128], ylabel3[160];
    char control[FIGURE_LABEL_BYTES];
} figures_text;

/* The y label of metric m as the paper says it, e.g. "top-1 accuracy,
 * mean of the 10 best evaluations", into buf; sep between "top-1
 * accuracy," and the rest (" " or "\n"). */
void figures_metric_label(const metric *m, const char *sep, char *buf,
                          size_t bytes);

/* Initialises f2 and f3 and builds Figure 2 (accuracy against n, random
 * splits: every run and the means on top, the means with their 95%
 * t-intervals below) and Figure 3 (accuracy relative to the base net of
 * the same split, target and seed: the runs and the means with their
 * intervals), their texts in t, counting in g->no_base the runs left out
 * of f3 for want of a base net.  TFQ_ENOMEM or TFQ_EIO in e; f2 and f3
 * are to be released in every case. */
int figures_build(grid_report *g, figure *f2, figure *f3, figures_text *t,
                  tfq_error *e);

#endif
