/* Printing the JSON reports the coordinator sends (a JSON array of
 * objects) as an aligned table or as CSV.  The JSON is read with SQLite's
 * JSON functions, so clients need no parser of their own. */
#ifndef TFQ_CLI_REPORT_H
#define TFQ_CLI_REPORT_H

#include <stdio.h>

#include "common/err.h"

typedef struct {
    const char *header; /* column title */
    const char *path;   /* JSON path in each object, e.g. "$.result.best_acc" */
} report_column;

/* Prints json's objects, one row each, as a table (csv 0) or CSV (csv 1)
 * (table.h).  TFQ_EFORMAT when json is not an array of objects. */
int report_print(const char *json, const report_column *cols, int ncols,
                 int csv, FILE *out, tfq_error *e);

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
