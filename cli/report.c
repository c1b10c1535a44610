#include "report.h"

#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "table.h"

/* A cell of a table for people is cut to this many bytes less one, as tfq
 * status always has; CSV cells are whole. */
#define REPORT_CELL_BYTES 96

/* The unit suffix of a column's CSV header. */
static const char *const s_unit[] = {
    [REPORT_PLAIN] = "", [REPORT_SECONDS] = "_s", [REPORT_AGO_S] = "_s_ago",
    [REPORT_SINCE_MS] = "_ms",
};

/* Cell i of st's row as a table shows it: a float with 4 decimals, a
 * duration or moment as show says (report.h). */
static void cell(sqlite3_stmt *st, int i, report_show show, int64_t now_ms,
                 char out[REPORT_CELL_BYTES])
{
    int type = sqlite3_column_type(st, i); /* before any conversion */
    int number = type == SQLITE_FLOAT || type == SQLITE_INTEGER;
    if (number && show != REPORT_PLAIN) {
        double x = sqlite3_column_double(st, i);
        char d[CLI_DURATION_BYTES];
        cli_duration(show == REPORT_SINCE_MS ? (double)(now_ms - x) / 1000
                                             : x, d);
        snprintf(out, REPORT_CELL_BYTES, "%s%s", d,
                 show == REPORT_SECONDS ? "" : " ago");
    } else if (type == SQLITE_FLOAT) {
        snprintf(out, REPORT_CELL_BYTES, "%.4f", sqlite3_column_double(st, i));
    } else {
        const char *v = (const char *)sqlite3_column_text(st, i);
        snprintf(out, REPORT_CELL_BYTES, "%s", v != NULL ? v : "");
    }
}

/* The rows of st (bound) into t, one cell per column (cell). */
static int fill(sqlite3 *db, sqlite3_stmt *st, const report_column *cols,
                int csv, table *t, tfq_error *e)
{
    char cells[TABLE_MAX_COLS][REPORT_CELL_BYTES];
    const char *row[TABLE_MAX_COLS];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < t->ncols; i++) {
            row[i] = cells[i];
            if (csv) { /* as SQLite writes it: 15 significant digits, whole */
                const char *v = (const char *)sqlite3_column_text(st, i);
                row[i] = v != NULL ? v : "";
            } else {
                cell(st, i, cols[i].show, now_ms, cells[i]);
            }
        }
        if (table_add(t, row) != 0)
            return tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
    }
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EFORMAT, "report: the coordinator sent "
                             "malformed JSON (%s)", sqlite3_errmsg(db));
    return TFQ_OK;
}

/* The header row: the titles, in CSV with their unit (s_unit). */
static int add_header(table *t, const report_column *cols, int csv)
{
    char names[TABLE_MAX_COLS][REPORT_CELL_BYTES];
    const char *header[TABLE_MAX_COLS];
    for (int i = 0; i < t->ncols; i++) {
        snprintf(names[i], REPORT_CELL_BYTES, "%s%s", cols[i].header,
                 csv ? s_unit[cols[i].show] : "");
        header[i] = names[i];
    }
    return table_add(t, header);
}

int report_print(const char *json, const report_column *cols, int ncols,
                 int csv, FILE *out, tfq_error *e)
{
    return report_print_ordered(json, cols, ncols, NULL, csv, out, e);
}

int report_print_ordered(const char *json, const report_column *cols,
                         int ncols, const char *order, int csv, FILE *out,
                         tfq_error *e)
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
    snprintf(sql + n, sizeof sql - n, " FROM json_each(?1)%s%s",
             order != NULL ? " ORDER BY " : "", order != NULL ? order : "");
    table t;
    table_init(&t, ncols);
    int rc = add_header(&t, cols, csv);
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
    rc = fill(db, st, cols, csv, &t, e);
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
