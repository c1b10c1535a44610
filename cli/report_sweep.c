#include "report_sweep.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_MAX_KEYS 32

void sweep_set_release(sweep_set *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    free(s->chosen);
    memset(s, 0, sizeof *s);
}

/* A statement on an in-memory database over json (?1), or NULL. */
static sqlite3_stmt *json_query(sqlite3 **db, const char *sql,
                                const char *json, tfq_error *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_open(":memory:", db) != SQLITE_OK ||
        sqlite3_prepare_v2(*db, sql, -1, &st, NULL) != SQLITE_OK) {
        tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(*db));
        return NULL;
    }
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    return st;
}

int sweep_set_load(sweep_set *s, const char *json, const char *grid,
                   tfq_error *e)
{
    memset(s, 0, sizeof *s);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = json_query(
            &db, "SELECT s, (SELECT json_extract(value, '$.grid') FROM "
            "json_each(?1) WHERE json_type(value, '$.grid') = 'text' LIMIT "
            "1) FROM (SELECT json_extract(value, '$.sweep') AS s, min(key) "
            "AS k FROM json_each(?1) WHERE json_type(value, '$.sweep') = "
            "'text' GROUP BY s) ORDER BY k", json, e);
    snprintf(s->grid, sizeof s->grid, "%s", grid != NULL ? grid : "");
    int rc = st != NULL ? TFQ_OK : TFQ_EIO;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        char **names = realloc(s->names, sizeof *names * (size_t)(s->n + 1));
        int *chosen = names ? realloc(s->chosen, sizeof *chosen *
                                      (size_t)(s->n + 1)) : NULL;
        if (names != NULL)
            s->names = names;
        if (chosen != NULL)
            s->chosen = chosen;
        char *name = chosen ? strdup((const char *)sqlite3_column_text(st, 0))
                            : NULL;
        if (name == NULL) {
            rc = tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
            break;
        }
        s->names[s->n] = name;
        s->chosen[s->n++] = 1;
        const unsigned char *g = sqlite3_column_text(st, 1);
        if (s->grid[0] == '\0' && g != NULL)
            snprintf(s->grid, sizeof s->grid, "%s", (const char *)g);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

void sweep_value(const char *name, const char *key, char *out, size_t bytes)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    for (const char *p = name; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(out, bytes, "%.*s", (int)(len - kl - 1), p + kl + 1);
            return;
        }
        p = end ? end + 1 : NULL;
    }
}

void sweep_keys(const char *name, char keys[][32], int max, int *n)
{
    *n = 0;
    for (const char *p = name; p != NULL && *p != '\0' && *n < max;) {
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        snprintf(keys[(*n)++], 32, "%.*s", (int)(eq - p < 31 ? eq - p : 31),
                 p);
        p = strchr(eq, '/');
        p = p ? p + 1 : NULL;
    }
}

/* Two values of a setting alike: as numbers when both are, else as text. */
static int same_value(const char *a, const char *b)
{
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (ea != a && *ea == '\0' && eb != b && *eb == '\0')
        return x == y;
    return strcmp(a, b) == 0;
}

/* The values key has in the combinations, "0.01, 0.001", into out. */
static void key_values(const sweep_set *s, const char *key, char *out,
                       size_t bytes)
{
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < s->n && off < bytes; i++) {
        char v[64];
        sweep_value(s->names[i], key, v, sizeof v);
        int seen = v[0] == '\0';
        for (int k = 0; k < i && !seen; k++) {
            char w[64];
            sweep_value(s->names[k], key, w, sizeof w);
            seen = strcmp(v, w) == 0;
        }
        if (!seen)
            off += (size_t)snprintf(out + off, bytes - off, "%s%s",
                                    off ? ", " : "", v);
    }
}

/* Every key of the combinations, "lr, init", into out. */
static void all_keys(const sweep_set *s, char *out, size_t bytes)
{
    char seen[SWEEP_MAX_KEYS][32];
    int nseen = 0;
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < s->n; i++) {
        char keys[SWEEP_MAX_KEYS][32];
        int nk, dup = 0;
        sweep_keys(s->names[i], keys, SWEEP_MAX_KEYS, &nk);
        for (int k = 0; k < nk && nseen < SWEEP_MAX_KEYS; k++, dup = 0) {
            for (int j = 0; j < nseen && !dup; j++)
                dup = strcmp(seen[j], keys[k]) == 0;
            if (dup || off >= bytes)
                continue;
            memcpy(seen[nseen++], keys[k], 32);
            off += (size_t)snprintf(out + off, bytes - off, "%s%s",
                                    off ? ", " : "", keys[k]);
        }
    }
}

/* One --where item against the combinations. */
static int where_one(sweep_set *s, const char *item, tfq_error *e)
{
    const char *eq = strchr(item, '=');
    if (eq == NULL || eq == item || eq[1] == '\0' || eq - item >= 32)
        return tfq_error_set(e, TFQ_EINVAL, "--where %s: expected KEY=VALUE, "
                             "e.g. lr=0.01", item);
    char key[32], known[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - item), item);
    key_values(s, key, known, sizeof known);
    if (known[0] == '\0') {
        all_keys(s, known, sizeof known);
        return tfq_error_set(e, TFQ_EINVAL, "--where %s: the grid sweeps no "
                             "'%s' (its swept keys: %s)", item, key, known);
    }
    int matched = 0;
    for (int i = 0; i < s->n; i++) {
        char v[64];
        sweep_value(s->names[i], key, v, sizeof v);
        int ok = same_value(v, eq + 1);
        matched |= ok;
        s->chosen[i] &= ok;
    }
    if (!matched)
        return tfq_error_set(e, TFQ_EINVAL, "--where %s: %s is not one of "
                             "the grid's values of %s (%s)", item, eq + 1,
                             key, known);
    return TFQ_OK;
}

int sweep_set_where(sweep_set *s, const char *const *where, int nwhere,
                    tfq_error *e)
{
    if (nwhere > 0 && s->n == 0)
        return tfq_error_set(e, TFQ_EINVAL, "--where %s: the grid has no "
                             "swept settings (no train: key is a list)",
                             where[0]);
    for (int i = 0; i < nwhere; i++) {
        int rc = where_one(s, where[i], e);
        if (rc != 0)
            return rc;
    }
    int left = 0;
    for (int i = 0; i < s->n; i++)
        left += s->chosen[i];
    if (s->n > 0 && left == 0)
        return tfq_error_set(e, TFQ_EINVAL, "--where: no setting combination "
                             "of the grid has all of these values");
    return TFQ_OK;
}

char *sweep_select(const char *json, const char *name, tfq_error *e)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = json_query(
            &db, "SELECT json_group_array(json(value)) FROM (SELECT value "
            "FROM json_each(?1) WHERE json_extract(value, '$.sweep') = ?2 "
            "ORDER BY key)", json, e);
    char *out = NULL;
    if (st != NULL) {
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        const char *v = sqlite3_step(st) == SQLITE_ROW
                                ? (const char *)sqlite3_column_text(st, 0)
                                : NULL;
        out = v != NULL ? strdup(v) : NULL;
        if (out == NULL)
            tfq_error_set(e, TFQ_ENOMEM, "report: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}
