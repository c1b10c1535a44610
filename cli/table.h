/* A table of text cells written aligned for a terminal, as Markdown or as
 * CSV: the one writer of every table tfq prints or files. */
#ifndef TFQ_CLI_TABLE_H
#define TFQ_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 24 /* tfq results: 18 */

typedef enum {
    TABLE_TEXT = 0, /* columns padded to their widest cell, two spaces apart */
    TABLE_MARKDOWN, /* "| a | b |", a "|---|" line under the header */
    TABLE_CSV,      /* RFC 4180 fields (table_csv_field) */
} table_format;

/* Rows of ncols cells; row 0 is the header.  The cells are owned copies. */
typedef struct {
    int ncols;
    size_t nrows, cap;
    char **cells; /* (nrows * ncols) */
} table;

/* An empty table of ncols (1 .. TABLE_MAX_COLS) columns. */
void table_init(table *t, int ncols);
/* Frees the cells; t may be initialised again. */
void table_release(table *t);

/* Appends a copy of row (t->ncols strings); TFQ_ENOMEM when it cannot
 * grow (t is then as it was). */
int table_add(table *t, const char *const *row);

/* Writes every row of t as fmt to out. */
void table_write(const table *t, table_format fmt, FILE *out);

/* Writes v as one CSV field: quoted when it holds a comma, quote or
 * newline. */
void table_csv_field(FILE *out, const char *v);

#endif
