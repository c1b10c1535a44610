/* One record of named values, written as one JSON object on one line or
 * as CSV (a header line of the names, a line of the values): the one shape
 * of the summaries tfq status, bench and train print for scripts, so that
 * --json and --csv always carry the same fields under the same names. */
#ifndef TFQ_CLI_RECORD_H
#define TFQ_CLI_RECORD_H

#include <stdio.h>

#define RECORD_MAX_FIELDS 32
#define RECORD_VALUE_BYTES 160

typedef struct {
    const char *name;             /* the caller's, a JSON key and CSV column */
    char value[RECORD_VALUE_BYTES]; /* JSON text of a number or null */
    char text[RECORD_VALUE_BYTES];  /* as CSV has it: unquoted, null "" */
    int is_str;                   /* a string: JSON writes text, quoted */
    const char *json;             /* record_json: JSON text kept elsewhere,
                                     left out of CSV; else NULL */
} record_field;

typedef struct {
    int n;
    record_field f[RECORD_MAX_FIELDS];
} record;

void record_init(record *r);

/* Appends a field (past RECORD_MAX_FIELDS fields: dropped, a programming
 * error the tests see).  record_num formats v with fmt ("%.4f"); a value
 * that is not finite is null.  record_str quotes and escapes v.
 * record_json takes JSON text (an array) that only JSON shows; it must
 * outlive the record. */
void record_num(record *r, const char *name, const char *fmt, double v);
void record_int(record *r, const char *name, long long v);
void record_str(record *r, const char *name, const char *v);
void record_json(record *r, const char *name, const char *json);

/* The record as one JSON object and a newline. */
void record_write_json(const record *r, FILE *out);
/* The names as a CSV line (header 1) or the values (header 0): a string
 * as given, null empty, a record_json field left out. */
void record_write_csv(const record *r, int header, FILE *out);

#endif
