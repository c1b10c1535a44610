#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void table_init(table *t, int ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

void table_release(table *t)
{
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int table_add(table *t, const char *const *row)
{
    size_t n = (size_t)t->ncols;
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **nc = realloc(t->cells, cap * n * sizeof *nc);
        if (nc == NULL)
            return TFQ_ENOMEM;
        t->cells = nc;
        t->cap = cap;
    }
    char **cells = t->cells + t->nrows * n;
    for (size_t c = 0; c < n; c++) {
        cells[c] = strdup(row[c]);
        if (cells[c] == NULL) {
            while (c-- > 0)
                free(cells[c]);
            return TFQ_ENOMEM;
        }
    }
    t->nrows++;
    return TFQ_OK;
}

void table_csv_field(FILE *out, const char *v)
{
    if (strpbrk(v, ",\"\n") == NULL) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

void table_write(const table *t, table_format fmt, FILE *out)
{
    int width[TABLE_MAX_COLS] = {0};
    size_t n = (size_t)t->ncols;
    for (size_t i = 0; i < t->nrows * n; i++) {
        int w = (int)strlen(t->cells[i]);
        if (w > width[i % n])
            width[i % n] = w;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < n; c++) {
            const char *v = t->cells[r * n + c];
            if (fmt == TABLE_CSV) {
                fputs(c ? "," : "", out);
                table_csv_field(out, v);
            } else if (fmt == TABLE_MARKDOWN) {
                fprintf(out, "| %s ", v);
            } else {
                fprintf(out, "%s%-*s", c ? "  " : "",
                        c == n - 1 ? 0 : width[c], v);
            }
        }
        fputs(fmt == TABLE_MARKDOWN ? "|\n" : "\n", out);
        for (size_t c = 0; fmt == TABLE_MARKDOWN && r == 0 && c < n; c++)
            fputs(c == n - 1 ? "|---|\n" : "|---", out);
    }
}
