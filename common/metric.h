/* The metric of a grid: which number of a job's test evaluations stands
 * for its accuracy.  A grid file's "metric:" and tfq report's --metric are
 * both read here, so a name one accepts the other accepts too. */
#ifndef TFQ_COMMON_METRIC_H
#define TFQ_COMMON_METRIC_H

#define METRIC_NAME_BYTES 64
/* The largest K of topK; more than a job has evaluations means all. */
#define METRIC_MAX_K 1000000

/* The metric of a grid without a "metric:" line, of tfq report without
 * --metric, and of tfq train: the mean of the METRIC_DEFAULT_K best test
 * evaluations.  The worker computes its topk_acc with the setting topk,
 * whose default is METRIC_DEFAULT_K too, so that a grid that names no
 * metric gets the same number from tfq train, results and report. */
#define METRIC_DEFAULT_K 3
#define METRIC_DEFAULT "top3"

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

/* The name of topK ("top3" for k 3) into name. */
void metric_topk_name(int k, char name[METRIC_NAME_BYTES]);

/* The metric a job's results are read with: its grid's (name, as the
 * results' "metric" field carries it), or METRIC_DEFAULT when name is NULL
 * or empty (a job of no grid). */
const char *metric_or_default(const char *name);

#endif
