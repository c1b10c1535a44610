/* The metric of a grid: which number of a job's test evaluations stands
 * for its accuracy.  A grid file's "metric:" and tfq report's --metric are
 * both read here, so a name one accepts the other accepts too. */
#ifndef TFQ_COMMON_METRIC_H
#define TFQ_COMMON_METRIC_H

#define METRIC_NAME_BYTES 64
/* The largest K of topK; more than a job has evaluations means all. */
#define METRIC_MAX_K 1000000

typedef enum {
    METRIC_FINAL = 0, /* the last evaluation */
    METRIC_BEST,      /* the highest */
    METRIC_TOPK,      /* the mean of the K highest */
} metric_kind;

typedef struct {
    metric_kind kind;
    int k;                        /* METRIC_TOPK: K */
    char name[METRIC_NAME_BYTES]; /* as given: "final", "best", "top10" */
} metric;

/* Parses "final", "best" or "topK" (K written in decimal without a sign or
 * a leading zero, 1 .. METRIC_MAX_K) into *m: 0, or -1 for anything else
 * (then *m is zeroed). */
int metric_parse(const char *text, metric *m);

#endif
