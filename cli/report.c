#include "report.h"

#include <sqlite3.h>
#include <string.h>

#include "table.h"

/* A cell of a table for people is cut to this many bytes less one, as tfq
 * status always has; CSV cells are whole. */
#define REPORT_CELL_BYTES 96

/* The rows of st (bound) into t, one cell per column: for a table (csv 0)
 * a float with 4 decimals, for CSV as SQLite writes it (15 significant
 * digits, as in the JSON). */
static int fill(sqlite3 *db, sqlite3_stmt *st, table *t, int csv,
                tfq_error *e)
{
    char cells[TABLE_MAX_COLS][REPORT_CELL_BYTES];
    const char *row[TABLE_MAX_COLS];
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < t->ncols; i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            row[i] = cells[i];
            if (csv)
                row[i] = v != NULL ? v : "";
            else if (sqlite3_column_type(st, i) == SQLITE_FLOAT)
                snprintf(cells[i], REPORT_CELL_BYTES, "%.4f",
                         sqlite3_column_double(st, i));
            else
                snprintf(cells[i], REPORT_CELL_BYTES, "%s",
                         v != NULL ? v : "");
        }
        if (table_add(t, row) != 0)
            return tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
    }
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EFORMAT, "report: the coordinator sent "
                             "malformed JSON (%s)", sqlite3_errmsg(db));
    return TFQ_OK;
}

int report_print(const char *json, const report_column *cols, int ncols,
                 int csv, FILE *out, tfq_error *e)
{
    if (ncols < 1 || ncols > TABLE_MAX_COLS)
        return tfq_error_set(e, TFQ_EINVAL, "report: bad column count");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[4096] = "SELECT ";
    size_t n = strlen(sql);
    for (int i = 0; i < ncols; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              "%sjson_extract(value, ?%d)", i ? ", " : "",
                              i + 2);
    snprintf(sql + n, sizeof sql - n, " FROM json_each(?1)");
    table t;
    table_init(&t, ncols);
    const char *header[TABLE_MAX_COLS];
    for (int i = 0; i < ncols; i++)
        header[i] = cols[i].header;
    int rc = table_add(&t, header);
    if (rc != 0) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
        goto out;
    }
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    for (int i = 0; i < ncols; i++)
        sqlite3_bind_text(st, i + 2, cols[i].path, -1, SQLITE_STATIC);
    rc = fill(db, st, &t, csv, e);
    if (rc == 0)
        table_write(&t, csv ? TABLE_CSV : TABLE_TEXT, out);
out:
    table_release(&t);
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

char *report_curve_rows(const char *json, tfq_error *e)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(
                db, "SELECT json_group_array(json(v)) FROM (SELECT "
                "json_set(json_remove(j.value, '$.epochs'), "
                "'$.attempt', json_extract(p.value, '$.attempt'), "
                "'$.epoch', json_extract(p.value, '$.epoch'), "
                "'$.loss', json_extract(p.value, '$.loss'), "
                "'$.test_acc', json_extract(p.value, '$.test_acc'), "
                "'$.images_per_s', json_extract(p.value, '$.images_per_s')) "
                "AS v FROM json_each(?1) j, json_each(j.value, '$.epochs') p "
                "ORDER BY j.key, p.key)", -1, &st, NULL) != SQLITE_OK) {
        tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    const char *v = sqlite3_step(st) == SQLITE_ROW
                            ? (const char *)sqlite3_column_text(st, 0)
                            : NULL;
    if (v == NULL)
        tfq_error_set(e, TFQ_EFORMAT, "report: the coordinator sent "
                      "malformed curves (%s)", sqlite3_errmsg(db));
    else if ((out = strdup(v)) == NULL)
        tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}
