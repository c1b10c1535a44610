#include "report.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX_COLS 16
#define REPORT_CELL_BYTES 96

void report_csv_field(FILE *out, const char *v)
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

int report_print(const char *json, const report_column *cols, int ncols,
                 int csv, FILE *out, tfq_error *e)
{
    if (ncols < 1 || ncols > REPORT_MAX_COLS)
        return tfq_error_set(e, TFQ_EINVAL, "report: bad column count");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[2048] = "SELECT ";
    size_t n = strlen(sql);
    for (int i = 0; i < ncols; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              "%sjson_extract(value, ?%d)", i ? ", " : "",
                              i + 2);
    snprintf(sql + n, sizeof sql - n, " FROM json_each(?1)");
    int rc = TFQ_OK;
    char (*cells)[REPORT_MAX_COLS][REPORT_CELL_BYTES] = NULL;
    size_t rows = 0, cap = 0;
    int width[REPORT_MAX_COLS];
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    for (int i = 0; i < ncols; i++) {
        sqlite3_bind_text(st, i + 2, cols[i].path, -1, SQLITE_STATIC);
        width[i] = (int)strlen(cols[i].header);
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (rows == cap) {
            cap = cap ? cap * 2 : 256;
            void *nc = realloc(cells, cap * sizeof *cells);
            if (nc == NULL) {
                rc = tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
                goto out;
            }
            cells = nc;
        }
        for (int i = 0; i < ncols; i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            if (sqlite3_column_type(st, i) == SQLITE_FLOAT)
                snprintf(cells[rows][i], REPORT_CELL_BYTES, "%.4f",
                         sqlite3_column_double(st, i));
            else
                snprintf(cells[rows][i], REPORT_CELL_BYTES, "%s",
                         v != NULL ? v : "");
            int w = (int)strlen(cells[rows][i]);
            if (w > width[i])
                width[i] = w;
        }
        rows++;
    }
    if (step != SQLITE_DONE) {
        rc = tfq_error_set(e, TFQ_EFORMAT, "report: the coordinator sent "
                           "malformed JSON (%s)", sqlite3_errmsg(db));
        goto out;
    }
    for (int i = 0; i < ncols; i++) {
        if (csv) {
            fputs(i ? "," : "", out);
            report_csv_field(out, cols[i].header);
        } else {
            fprintf(out, "%s%-*s", i ? "  " : "",
                    i == ncols - 1 ? 0 : width[i], cols[i].header);
        }
    }
    fputc('\n', out);
    for (size_t r = 0; r < rows; r++) {
        for (int i = 0; i < ncols; i++) {
            if (csv) {
                fputs(i ? "," : "", out);
                report_csv_field(out, cells[r][i]);
            } else {
                fprintf(out, "%s%-*s", i ? "  " : "",
                        i == ncols - 1 ? 0 : width[i], cells[r][i]);
            }
        }
        fputc('\n', out);
    }
out:
    free(cells);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int report_find(const char *json, const char *match_path, const char *match,
                const char *want_path, char *out, size_t bytes, tfq_error *e)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = TFQ_OK;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT json_extract(value, ?3) FROM "
                           "json_each(?1) WHERE CAST(json_extract(value, ?2) "
                           "AS TEXT) = ?4 LIMIT 1", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, match_path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, want_path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, match, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        snprintf(out, bytes, "%s", (const char *)sqlite3_column_text(st, 0));
    else if (step == SQLITE_ROW || step == SQLITE_DONE)
        rc = tfq_error_set(e, TFQ_ENOENT, "no %s is %s", match_path + 2,
                           match);
    else
        rc = tfq_error_set(e, TFQ_EFORMAT, "report: %s", sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
