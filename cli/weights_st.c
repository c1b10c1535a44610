/* safetensors: writing w's tensors, and reading a file that may be
 * hostile.  The header's JSON is parsed by SQLite's JSON functions (a
 * dependency tfq has anyway) on an in-memory database. */
#include "weights.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report_json.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors I/O assumes a little-endian host");

/* ---- writing ------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    const weights_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* The header's JSON (unpadded) to f; t: the tensors in name order. */
static void put_header(FILE *f, const weights_set *w,
                       const weights_tensor *const *t)
{
    fputs("{\"__metadata__\":{", f);
    for (int i = 0; i < w->nmeta; i++) {
        fputs(i ? "," : "", f);
        report_json_string(f, w->meta[i].key);
        fputc(':', f);
        report_json_string(f, w->meta[i].value);
    }
    fputc('}', f);
    int64_t at = 0;
    for (int i = 0; i < w->ntensors; i++) {
        fputc(',', f);
        report_json_string(f, t[i]->name);
        fputs(":{\"dtype\":\"F32\",\"shape\":[", f);
        for (int d = 0; d < t[i]->ndim; d++)
            fprintf(f, "%s%lld", d ? "," : "", (long long)t[i]->dims[d]);
        int64_t end = at + t[i]->count * (int64_t)sizeof(float);
        fprintf(f, "],\"data_offsets\":[%lld,%lld]}", (long long)at,
                (long long)end);
        at = end;
    }
    fputc('}', f);
}

int weights_safetensors_encode(const weights_set *w, uint8_t **buf,
                               size_t *bytes, tfq_error *e)
{
    const weights_tensor *t[WEIGHTS_MAX_TENSORS];
    for (int i = 0; i < w->ntensors; i++)
        t[i] = &w->t[i];
    qsort(t, (size_t)w->ntensors, sizeof *t, by_name);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "safetensors: out of memory");
    fwrite("\0\0\0\0\0\0\0\0", 1, 8, f);
    put_header(f, w, t);
    while (ftell(f) % 8 != 0) /* the data starts 8-byte aligned */
        fputc(' ', f);
    uint64_t n = (uint64_t)ftell(f) - 8;
    for (int i = 0; i < w->ntensors; i++)
        fwrite(t[i]->data, sizeof(float), (size_t)t[i]->count, f);
    if (fclose(f) != 0 || out == NULL) {
        free(out);
        return tfq_error_set(e, TFQ_ENOMEM, "safetensors: out of memory");
    }
    memcpy(out, &n, 8);
    *buf = (uint8_t *)out;
    *bytes = len;
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct {
    sqlite3 *db;
    const char *what;
    tfq_error *e;
    uint64_t data_bytes;
    int64_t begin[WEIGHTS_MAX_TENSORS], end[WEIGHTS_MAX_TENSORS];
} st_reader;

static int bad(st_reader *r, const char *fmt, const char *name,
               const char *detail)
{
    return tfq_error_set(r->e, TFQ_EFORMAT, "%s: %s%s%s", r->what,
                         name ? name : "", name ? ": " : "",
                         detail ? detail : fmt);
}

/* A statement over the members of the JSON text json: key, type, value. */
static sqlite3_stmt *each(st_reader *r, const char *json, size_t bytes)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db, "SELECT key, type, value FROM json_each(?1)",
                           -1, &st, NULL) != SQLITE_OK) {
        tfq_error_set(r->e, TFQ_ENOMEM, "%s: %s", r->what,
                      sqlite3_errmsg(r->db));
        return NULL;
    }
    sqlite3_bind_text(st, 1, json, (int)bytes, SQLITE_TRANSIENT);
    return st;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* A JSON array of whole numbers 0..hi into out[0..*n), at most max. */
static int get_ints(st_reader *r, const char *json, const char *name,
                    const char *field, int64_t hi, int64_t *out, int *n,
                    int max)
{
    sqlite3_stmt *st = each(r, json, strlen(json));
    if (st == NULL)
        return r->e->code;
    char msg[160];
    int rc = 0;
    *n = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        if (strcmp(col(st, 1), "integer") != 0 ||
            sqlite3_column_type(st, 2) != SQLITE_INTEGER ||
            sqlite3_column_int64(st, 2) < 0 ||
            sqlite3_column_int64(st, 2) > hi) {
            snprintf(msg, sizeof msg, "%s holds '%.32s', not a whole number "
                     "from 0 to %lld", field, col(st, 2), (long long)hi);
            rc = bad(r, NULL, name, msg);
        } else if (*n == max) {
            snprintf(msg, sizeof msg, "%s has more than %d entries", field,
                     max);
            rc = bad(r, NULL, name, msg);
        } else {
            out[(*n)++] = sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Fills t's dtype check, shape and count from the entry's members. */
static int tensor_member(st_reader *r, weights_tensor *t, int ti,
                         const char *key, const char *type, const char *v)
{
    char msg[200];
    int n = 0;
    int64_t off[3];
    if (strcmp(key, "dtype") == 0) {
        if (strcmp(type, "text") != 0 || strcmp(v, "F32") != 0) {
            snprintf(msg, sizeof msg, "dtype %.16s: tfq reads F32 only", v);
            return bad(r, NULL, t->name, msg);
        }
        return 0;
    }
    if (strcmp(key, "shape") == 0) {
        if (strcmp(type, "array") != 0)
            return bad(r, NULL, t->name, "shape is not an array");
        if (get_ints(r, v, t->name, "shape", (int64_t)1 << 31, t->dims,
                     &t->ndim, WEIGHTS_MAX_DIMS) != 0)
            return r->e->code;
        t->count = 1;
        for (int d = 0; d < t->ndim; d++)
            if ((t->count *= t->dims[d]) > ((int64_t)1 << 40))
                return bad(r, NULL, t->name, "shape has over 2^40 values");
        return 0;
    }
    if (strcmp(key, "data_offsets") == 0) {
        if (strcmp(type, "array") != 0)
            return bad(r, NULL, t->name, "data_offsets is not [begin, end]");
        if (get_ints(r, v, t->name, "data_offsets", INT64_MAX / 2, off, &n,
                     3) != 0)
            return r->e->code;
        if (n != 2)
            return bad(r, NULL, t->name, "data_offsets is not [begin, end]");
        r->begin[ti] = off[0];
        r->end[ti] = off[1];
        return 0;
    }
    snprintf(msg, sizeof msg, "unknown field '%.32s' (known: dtype, shape, "
             "data_offsets)", key);
    return bad(r, NULL, t->name, msg);
}

/* One tensor entry of the header (its JSON text json) into w->t[ti]. */
static int tensor_entry(st_reader *r, weights_set *w, int ti,
                        const char *json)
{
    weights_tensor *t = &w->t[ti];
    sqlite3_stmt *st = each(r, json, strlen(json));
    if (st == NULL)
        return r->e->code;
    int rc = 0;
    unsigned seen = 0;
    t->count = -1;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *key = col(st, 0);
        unsigned bit = !strcmp(key, "dtype")          ? 1u
                       : !strcmp(key, "shape")        ? 2u
                       : !strcmp(key, "data_offsets") ? 4u
                                                      : 8u;
        if (seen & bit & 7u)
            rc = bad(r, NULL, t->name, "a field is given twice");
        seen |= bit;
        if (rc == 0)
            rc = tensor_member(r, t, ti, key, col(st, 1), col(st, 2));
    }
    sqlite3_finalize(st);
    if (rc == 0 && (seen & 7u) != 7u)
        rc = bad(r, NULL, t->name, "needs dtype, shape and data_offsets");
    return rc;
}

static int meta_entries(st_reader *r, weights_set *w, const char *json)
{
    sqlite3_stmt *st = each(r, json, strlen(json));
    if (st == NULL)
        return r->e->code;
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        if (strcmp(col(st, 1), "text") != 0)
            rc = bad(r, NULL, "__metadata__", "a value is not a string");
        else if (strlen(col(st, 0)) >= WEIGHTS_NAME_BYTES)
            rc = bad(r, NULL, "__metadata__", "a key is longer than 63 "
                     "bytes");
        else if (weights_meta_get(w, col(st, 0)) != NULL)
            rc = bad(r, NULL, "__metadata__", "a key is given twice");
        else
            rc = weights_meta_put(w, col(st, 0), col(st, 2), r->e);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The header's top level: __metadata__ and the tensor entries. */
static int header_entries(st_reader *r, weights_set *w, const char *json,
                          size_t bytes)
{
    sqlite3_stmt *st = each(r, json, bytes);
    if (st == NULL)
        return r->e->code;
    int rc = 0, have_meta = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const char *key = col(st, 0), *type = col(st, 1);
        if (strcmp(key, "__metadata__") == 0) {
            rc = have_meta++ ? bad(r, "__metadata__ is given twice", NULL,
                                   NULL)
                 : strcmp(type, "object") != 0
                     ? bad(r, NULL, key, "not an object of strings")
                     : meta_entries(r, w, col(st, 2));
            continue;
        }
        if (strlen(key) >= WEIGHTS_NAME_BYTES) {
            rc = bad(r, "a tensor name is longer than 63 bytes", NULL, NULL);
        } else if (w->ntensors == WEIGHTS_MAX_TENSORS) {
            rc = bad(r, "more tensors than tfq's nets have", NULL, NULL);
        } else if (strcmp(type, "object") != 0) {
            rc = bad(r, NULL, key, "not an object (dtype, shape, "
                     "data_offsets)");
        } else {
            for (int i = 0; i < w->ntensors && rc == 0; i++)
                if (strcmp(w->t[i].name, key) == 0)
                    rc = bad(r, NULL, key, "given twice");
            snprintf(w->t[w->ntensors].name, WEIGHTS_NAME_BYTES, "%s", key);
            if (rc == 0)
                rc = tensor_entry(r, w, w->ntensors++, col(st, 2));
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* The tensors' ranges: each its shape's size, inside the data, and
 * together covering it once, without holes or overlaps. */
static int check_offsets(st_reader *r, const weights_set *w)
{
    int order[WEIGHTS_MAX_TENSORS];
    char msg[200];
    for (int i = 0; i < w->ntensors; i++) {
        const weights_tensor *t = &w->t[i];
        int64_t want = t->count * (int64_t)sizeof(float);
        if (r->end[i] < r->begin[i] || (uint64_t)r->end[i] > r->data_bytes) {
            snprintf(msg, sizeof msg, "data_offsets [%lld, %lld] are not a "
                     "range inside the %llu bytes of data",
                     (long long)r->begin[i], (long long)r->end[i],
                     (unsigned long long)r->data_bytes);
            return bad(r, NULL, t->name, msg);
        }
        if (r->end[i] - r->begin[i] != want) {
            snprintf(msg, sizeof msg, "data_offsets hold %lld bytes, its "
                     "shape needs %lld", (long long)(r->end[i] - r->begin[i]),
                     (long long)want);
            return bad(r, NULL, t->name, msg);
        }
        int j = i;
        for (; j > 0 && r->begin[order[j - 1]] > r->begin[i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    int64_t at = 0;
    for (int k = 0; k < w->ntensors; k++) {
        int i = order[k];
        if (r->begin[i] != at) {
            snprintf(msg, sizeof msg, "data_offsets begin at %lld: %s at "
                     "%lld", (long long)r->begin[i],
                     r->begin[i] < at ? "it overlaps the tensor before, "
                                        "which ends"
                                      : "a hole, the tensor before ends",
                     (long long)at);
            return bad(r, NULL, w->t[i].name, msg);
        }
        at = r->end[i];
    }
    if ((uint64_t)at != r->data_bytes) {
        snprintf(msg, sizeof msg, "the tensors cover %lld of the %llu bytes "
                 "of data", (long long)at, (unsigned long long)r->data_bytes);
        return bad(r, msg, NULL, NULL);
    }
    return 0;
}

/* The 8-byte length and the header's bytes: bounds, no NUL, an object. */
static int header_span(st_reader *r, const uint8_t *buf, size_t bytes,
                       uint64_t *n)
{
    char msg[200];
    if (bytes < 8) {
        snprintf(msg, sizeof msg, "%zu bytes is too short for a safetensors "
                 "file", bytes);
        return bad(r, msg, NULL, NULL);
    }
    memcpy(n, buf, 8);
    if (*n < 2 || *n > WEIGHTS_MAX_HEADER_BYTES || *n > bytes - 8) {
        snprintf(msg, sizeof msg, "header length %llu is not within 2 .. "
                 "%llu (at most 100 MiB, and the file has %zu bytes after "
                 "the length)", (unsigned long long)*n,
                 (unsigned long long)WEIGHTS_MAX_HEADER_BYTES, bytes - 8);
        return bad(r, msg, NULL, NULL);
    }
    const char *h = (const char *)buf + 8;
    if (memchr(h, '\0', *n) != NULL)
        return bad(r, "the header holds a NUL byte", NULL, NULL);
    if (h[0] != '{')
        return bad(r, "the header does not start with '{'", NULL, NULL);
    return 0;
}

static int header_valid(st_reader *r, const char *h, uint64_t n)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2(r->db, "SELECT json_valid(?1) AND "
                           "json_type(?1) = 'object'", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, h, (int)n, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return ok ? 0 : bad(r, "the header is not a JSON object", NULL, NULL);
}

static int copy_data(st_reader *r, weights_set *w, const uint8_t *data)
{
    for (int i = 0; i < w->ntensors; i++) {
        weights_tensor *t = &w->t[i];
        t->data = malloc(sizeof(float) * (size_t)(t->count ? t->count : 1));
        if (t->data == NULL)
            return tfq_error_set(r->e, TFQ_ENOMEM, "%s: out of memory",
                                 r->what);
        memcpy(t->data, data + r->begin[i], sizeof(float) * (size_t)t->count);
    }
    return 0;
}

int weights_safetensors_decode(const uint8_t *buf, size_t bytes,
                               const char *what, weights_set *w,
                               tfq_error *e)
{
    st_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", what);
    r->what = what;
    r->e = e;
    uint64_t n = 0;
    int rc = header_span(r, buf, bytes, &n);
    if (rc == 0 && sqlite3_open_v2(":memory:", &r->db, SQLITE_OPEN_READWRITE,
                                   NULL) != SQLITE_OK)
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: cannot open SQLite", what);
    if (rc == 0)
        rc = header_valid(r, (const char *)buf + 8, n);
    if (rc == 0)
        rc = header_entries(r, w, (const char *)buf + 8, (size_t)n);
    r->data_bytes = rc == 0 ? bytes - 8 - n : 0;
    if (rc == 0)
        rc = check_offsets(r, w);
    if (rc == 0)
        rc = copy_data(r, w, buf + 8 + n);
    sqlite3_close(r->db);
    free(r);
    if (rc != 0)
        weights_release(w);
    return rc;
}
