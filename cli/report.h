/* Printing the JSON reports the coordinator sends (a JSON array of
 * objects) as an aligned table or as CSV.  The JSON is read with SQLite's
 * JSON functions, so clients need no parser of their own. */
#ifndef TFQ_CLI_REPORT_H
#define TFQ_CLI_REPORT_H

#include <stdio.h>

#include "common/err.h"

/* How a column's number is shown in a table.  CSV keeps the number as the
 * JSON has it and names its unit in the header: the header with the
 * suffix below, which is the JSON field's name. */
typedef enum {
    REPORT_PLAIN = 0, /* as the JSON has it; a float with 4 decimals */
    REPORT_SECONDS,   /* a duration in seconds: "3m19s" (cli_duration);
                         CSV header + "_s" */
    REPORT_AGO_S,     /* seconds before now: "12s ago"; + "_s_ago" */
    REPORT_SINCE_MS,  /* a moment, ms since the epoch: "12s ago" by this
                         machine's clock; + "_ms" */
} report_show;

typedef struct {
    const char *header; /* column title (CSV: with show's unit suffix) */
    const char *path;   /* JSON path in each object, e.g. "$.result.best_acc" */
    report_show show;
} report_column;

/* Prints json's objects, one row each, as a table (csv 0) or CSV (csv 1)
 * (table.h).  TFQ_EFORMAT when json is not an array of objects. */
int report_print(const char *json, const report_column *cols, int ncols,
                 int csv, FILE *out, tfq_error *e);

/* report_print with the rows in the order of order, an SQL ORDER BY list
 * over the JSON objects (`value`), e.g. "json_extract(value, '$.name')";
 * NULL: as json has them.  order is the caller's text, never input. */
int report_print_ordered(const char *json, const report_column *cols,
                         int ncols, const char *order, int csv, FILE *out,
                         tfq_error *e);

/* The value at want_path of the first object whose match_path equals
 * match (compared as text), into out.  TFQ_ENOENT when none matches. */
int report_find(const char *json, const char *match_path, const char *match,
                const char *want_path, char *out, size_t bytes, tfq_error *e);

/* The coordinator's curves (jobs, each with "epochs": {attempt, epoch,
 * loss, test_acc, images_per_s}) as one object per (job, attempt, epoch),
 * in that order: the job's keys but "epochs", and the epoch's.  A new
 * string the caller frees; NULL with the reason in e. */
char *report_curve_rows(const char *json, tfq_error *e);

#endif
