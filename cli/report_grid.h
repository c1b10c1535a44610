/* tfq report's data: the finished runs of a grid and what is computed
 * from them.
 *
 * The jobs' JSON (the coordinator's "results", or a file of it) is loaded
 * into a table `runs` of an in-memory SQLite database (report_ingest.c):
 * one row per job that succeeded with a result and has grid coordinates,
 * with its accuracy under the chosen metric.  The points and Table 1
 * (report_stats.h) and the series of the figures (report_figures.h) are
 * queries on that table. */
#ifndef TFQ_CLI_REPORT_GRID_H
#define TFQ_CLI_REPORT_GRID_H

#include <sqlite3.h>

#include "common/err.h"
#include "common/metric.h"

/* The metric without --metric or a grid's: METRIC_DEFAULT, the one tfq
 * train and the workers compute by default. */
#define REPORT_DEFAULT_METRIC METRIC_DEFAULT
#define REPORT_NAME_BYTES 64
#define REPORT_PATH_BYTES 4096
/* Figures show n = 0 .. the largest n seen, at most this (8 layers here). */
#define REPORT_MAX_LAYER 64
#define REPORT_NGAINS 6 /* 1-7, 3-7 and 5-7, each over base and over selffer+ */

/* The runs sharing similarity, variant, finetune and n. */
typedef struct {
    char similarity[REPORT_NAME_BYTES], variant[REPORT_NAME_BYTES];
    int finetune, n;
    double mean, sd; /* sd: sample standard deviation (n - 1); NAN for one */
    double ci95;     /* half-width of the mean's 95% t-interval; NAN for one */
    int runs;
} report_point;

/* A line of Table 1: the mean over n = lo..hi of (mean transfer+ at n -
 * mean of `versus`), on the random splits. */
typedef struct {
    int lo, hi;
    const char *versus; /* "base" or "selffer+" */
    double gain;        /* NAN when no layer of the range has both points */
    int points;         /* layers used */
    char missing[160];  /* what was missing; "" when nothing */
} report_gain;

typedef struct {
    sqlite3 *db; /* table runs, view bases */
    metric metric;
    char grid[REPORT_PATH_BYTES];
    long jobs;       /* objects in the JSON */
    long plain;      /* without grid coordinates: ignored */
    long unfinished; /* with coordinates, not succeeded with a result */
    long no_value;   /* finished, but without a value for the metric */
    long runs;       /* what the report is made of */
    long no_base;    /* runs of Figure 3 left out: no base net to divide by */
    int xmax;        /* the largest n, 1 .. REPORT_MAX_LAYER */
    report_point *points; /* (npoints) */
    int npoints;
    report_gain gains[REPORT_NGAINS];
} grid_report;

/* ---- report_ingest.c ---------------------------------------------------- */

/* The whole of path ("-": standard input) in a new string the caller
 * frees; NULL with the reason in e. */
char *ingest_read_all(const char *path, tfq_error *e);

/* Fills g (zeroed) from json, an array of job objects that source names in
 * errors: the metric (metric_opt, else the grid's, else
 * REPORT_DEFAULT_METRIC), the grid's name (grid, else the jobs', else
 * source), the runs table and the counts of what was left out.  Names on
 * stderr the jobs whose stored result could not be read.  TFQ_EFORMAT when
 * json is not an array of objects, TFQ_EINVAL for an unknown metric,
 * TFQ_ENOENT when no run is finished.  grid_report_release frees g in
 * every case. */
int ingest_runs(grid_report *g, const char *json, const char *source,
                const char *grid, const char *metric_opt, tfq_error *e);

void grid_report_release(grid_report *g);

/* json (an array of job objects, named source in errors) with two keys
 * set in each job: "metric", its grid's ($.metric, else
 * REPORT_DEFAULT_METRIC), and "acc", its accuracy under that metric as
 * ingest_runs computes it for tfq report, or null when the job has not
 * succeeded with a result, has no value for the metric, or names a metric
 * that is not one.  A new string the caller frees; NULL with the reason in
 * e (TFQ_EFORMAT when json is not an array of objects). */
char *ingest_with_metric(const char *json, const char *source, tfq_error *e);

/* sql prepared on db; NULL with SQLite's message in e. */
sqlite3_stmt *ingest_prepare(sqlite3 *db, const char *sql, tfq_error *e);

/* Runs sql (with json as ?1 unless NULL), which returns one row; its first
 * column as text into out. */
int ingest_query_text(sqlite3 *db, const char *sql, const char *json,
                      char *out, size_t bytes, tfq_error *e);

#endif
