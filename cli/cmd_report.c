/* tfq report: the paper's Figures 2 and 3, a table of every point and its
 * Table 1, from the finished jobs of a grid.
 *
 * The jobs' JSON (the coordinator's "results", or a file of it) is loaded
 * into a table `runs` of an in-memory SQLite database: one row per job that
 * succeeded with a result and has grid coordinates, with its accuracy under
 * the chosen metric.  The points, the series of the figures and the
 * accuracies relative to the base nets are queries on that table. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "client.h"
#include "figure.h"
#include "report.h"

/* The paper's metric: the mean of the 10 highest test evaluations. */
#define DEFAULT_METRIC "top10"
#define METRIC_MAX_K 1000000
#define NAME_BYTES 64
#define PATH_BYTES 4096
/* Figures show n = 0 .. the largest n seen, at most this (8 layers here). */
#define MAX_LAYER 64
/* --from-json: `tfq results --json` of some 500,000 jobs (about 450 bytes
 * each). */
#define INPUT_MAX_BYTES (256u << 20)

typedef enum { METRIC_FINAL, METRIC_BEST, METRIC_TOPK } metric_kind;

typedef struct {
    metric_kind kind;
    int k;                 /* METRIC_TOPK: how many of the best evaluations */
    char name[NAME_BYTES]; /* as given: "final", "best", "top10" */
} metric;

/* The runs sharing similarity, variant, finetune and n. */
typedef struct {
    char similarity[NAME_BYTES], variant[NAME_BYTES];
    int finetune, n;
    double mean, sd; /* sd: sample standard deviation (n - 1); NAN for one */
    int runs;
} point;

/* A line of Table 1: the mean over n = lo..hi of (mean transfer+ at n -
 * mean of `versus`), on the random splits. */
typedef struct {
    int lo, hi;
    const char *versus; /* "base" or "selffer+" */
    double gain;        /* NAN when no layer of the range has both points */
    int points;         /* layers used */
    char missing[160];  /* what was missing; "" when nothing */
} gain;

#define NGAINS 6 /* 1-7, 3-7 and 5-7, each over base and over selffer+ */

typedef struct {
    sqlite3 *db; /* table runs, view bases */
    metric metric;
    char grid[PATH_BYTES];
    long jobs;       /* objects in the JSON */
    long plain;      /* without grid coordinates: ignored */
    long unfinished; /* with coordinates, not succeeded with a result */
    long no_value;   /* finished, but without a value for the metric */
    long runs;       /* what the report is made of */
    long no_base;    /* runs of Figure 3 left out: no base net to divide by */
    int xmax;        /* the largest n, 1 .. MAX_LAYER */
    point *points;   /* (npoints) */
    int npoints;
    gain gains[NGAINS];
} grid_report;

/* ---- input ---------------------------------------------------------------*/

/* "final", "best" or "topK" (K >= 1) into m; -1 for anything else. */
static int metric_parse(const char *s, metric *m)
{
    memset(m, 0, sizeof *m);
    size_t len = strlen(s);
    if (len >= sizeof m->name)
        return -1;
    memcpy(m->name, s, len + 1);
    if (strcmp(s, "final") == 0) {
        m->kind = METRIC_FINAL;
        return 0;
    }
    if (strcmp(s, "best") == 0) {
        m->kind = METRIC_BEST;
        return 0;
    }
    char *end;
    if (strncmp(s, "top", 3) != 0 || s[3] < '1' || s[3] > '9')
        return -1;
    errno = 0;
    long k = strtol(s + 3, &end, 10);
    if (errno != 0 || *end != '\0' || k < 1 || k > METRIC_MAX_K)
        return -1;
    m->kind = METRIC_TOPK;
    m->k = (int)k;
    return 0;
}

/* The whole of path ("-": standard input) in a new string the caller
 * frees; NULL with the reason in e. */
static char *read_all(const char *path, tfq_error *e)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        tfq_error_set(e, TFQ_ENOENT, "%s: cannot open: %s", path,
                      strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n + 1 < cap)
            break;
        char *nb = cap < INPUT_MAX_BYTES ? realloc(buf, cap * 2) : NULL;
        if (nb == NULL)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (buf == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "%s: too large to read", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        tfq_error_set(e, TFQ_EIO, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- the runs table ------------------------------------------------------*/

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, tfq_error *e)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(db));
    return st;
}

/* Runs sql (with json as ?1 unless NULL), which returns one row; its first
 * column as text into out. */
static int query_text(sqlite3 *db, const char *sql, const char *json,
                      char *out, size_t bytes, tfq_error *e)
{
    sqlite3_stmt *st = prepare(db, sql, e);
    if (st == NULL)
        return TFQ_EIO;
    if (json != NULL)
        sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    int rc = TFQ_OK;
    out[0] = '\0';
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, bytes, "%s", v != NULL ? (const char *)v : "");
    } else {
        rc = tfq_error_set(e, TFQ_EFORMAT, "report: %s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* The input must be a JSON array of objects; source names it in errors. */
static int check_json(sqlite3 *db, const char *json, const char *source,
                      tfq_error *e)
{
    char what[NAME_BYTES];
    int rc = query_text(db,
        "SELECT CASE WHEN NOT json_valid(?1) THEN 'invalid' "
        "WHEN json_type(?1) <> 'array' THEN json_type(?1) "
        "ELSE coalesce((SELECT min(key) FROM json_each(?1) "
        "WHERE type <> 'object'), 'ok') END", json, what, sizeof what, e);
    if (rc != 0 || strcmp(what, "ok") == 0)
        return rc;
    if (strcmp(what, "invalid") == 0)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: not valid JSON", source);
    if (what[0] >= '0' && what[0] <= '9')
        return tfq_error_set(e, TFQ_EFORMAT, "%s: element %s of the array "
                             "is not a job object", source, what);
    return tfq_error_set(e, TFQ_EFORMAT, "%s: expected a JSON array of "
                         "jobs, found %s %s", source,
                         strchr("aeiou", what[0]) ? "an" : "a", what);
}

/* A job with every grid coordinate; plain job files have none. */
#define HAS_COORDS                                                          \
    "(json_extract(j.value, '$.split') IS NOT NULL AND "                    \
    "json_extract(j.value, '$.similarity') IS NOT NULL AND "                \
    "json_extract(j.value, '$.target') IS NOT NULL AND "                    \
    "json_type(j.value, '$.n') = 'integer' AND "                            \
    "json_extract(j.value, '$.variant') IS NOT NULL AND "                   \
    "json_extract(j.value, '$.seed') IS NOT NULL)"

#define FINISHED                                                            \
    "(json_extract(j.value, '$.state') = 'succeeded' AND "                  \
    "json_type(j.value, '$.result') = 'object')"

/* The numbers of $.result.accs, the test accuracy of each evaluation. */
#define ACCS                                                                \
    "json_each(j.value, '$.result.accs') a WHERE a.type IN "                \
    "('integer', 'real')"

/* The accuracy of one job under each metric, from its evaluations when it
 * has them; else from the summary the worker computed (for topK only when
 * it was computed with the same K, ?2). */
static const char *const s_metric_sql[] = {
    [METRIC_FINAL] = "coalesce((SELECT a.value FROM " ACCS
                     " ORDER BY a.key DESC LIMIT 1), "
                     "json_extract(j.value, '$.result.final_acc'))",
    [METRIC_BEST] = "coalesce((SELECT max(a.value) FROM " ACCS "), "
                    "json_extract(j.value, '$.result.best_acc'))",
    [METRIC_TOPK] = "coalesce((SELECT avg(v) FROM (SELECT a.value AS v FROM "
                    ACCS " ORDER BY a.value DESC LIMIT ?2)), "
                    "CASE WHEN coalesce(json_extract(j.value, "
                    "'$.result.topk'), ?2) = ?2 THEN json_extract(j.value, "
                    "'$.result.topk_acc') END)",
};

/* The metric: the option's, else the grid's, else DEFAULT_METRIC. */
static int choose_metric(grid_report *g, const char *json, const char *opt,
                         tfq_error *e)
{
    char name[NAME_BYTES];
    if (opt != NULL) {
        snprintf(name, sizeof name, "%s", opt);
    } else {
        int rc = query_text(g->db, "SELECT coalesce((SELECT json_extract("
                            "j.value, '$.metric') FROM json_each(?1) j WHERE "
                            "json_extract(j.value, '$.metric') IS NOT NULL "
                            "LIMIT 1), '" DEFAULT_METRIC "')", json, name,
                            sizeof name, e);
        if (rc != 0)
            return rc;
    }
    if (metric_parse(name, &g->metric) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "the grid's metric '%s' is not "
                             "final, best or topK; choose one with --metric",
                             name);
    return TFQ_OK;
}

/* Fills the runs table from json and counts what was left out. */
static int load_runs(grid_report *g, const char *json, tfq_error *e)
{
    char sql[4096];
    snprintf(sql, sizeof sql,
             "INSERT INTO runs SELECT json_extract(j.value, '$.job'), "
             "json_extract(j.value, '$.split'), "
             "json_extract(j.value, '$.similarity'), "
             "json_extract(j.value, '$.target'), "
             "CASE WHEN json_extract(j.value, '$.variant') = 'base' THEN 0 "
             "ELSE json_extract(j.value, '$.n') END, "
             "json_extract(j.value, '$.variant'), "
             "CASE WHEN json_extract(j.value, '$.variant') = 'base' THEN 0 "
             "ELSE coalesce(json_extract(j.value, '$.finetune'), 0) END, "
             "json_extract(j.value, '$.seed'), %s "
             "FROM json_each(?1) j WHERE " HAS_COORDS " AND " FINISHED,
             s_metric_sql[g->metric.kind]);
    if (sqlite3_exec(g->db, "CREATE TABLE runs(job INTEGER, split TEXT, "
                     "similarity TEXT, target TEXT, n INTEGER, variant TEXT, "
                     "finetune INTEGER, seed, acc REAL);"
                     "CREATE VIEW bases AS SELECT split, target, seed, "
                     "avg(acc) AS acc FROM runs WHERE variant = 'base' "
                     "GROUP BY split, target, seed", NULL, NULL,
                     NULL) != SQLITE_OK)
        return tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(g->db));
    sqlite3_stmt *st = prepare(g->db, sql, e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, g->metric.k);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EFORMAT, "report: %s",
                             sqlite3_errmsg(g->db));
    g->no_value = 0;
    if (sqlite3_exec(g->db, "DELETE FROM runs WHERE typeof(acc) NOT IN "
                     "('real', 'integer')", NULL, NULL, NULL) == SQLITE_OK)
        g->no_value = sqlite3_changes(g->db);
    st = prepare(g->db, "SELECT count(*), coalesce(sum(NOT " HAS_COORDS
                 "), 0), coalesce(sum(" HAS_COORDS " AND NOT " FINISHED
                 "), 0), (SELECT count(*) FROM runs), (SELECT max(n) FROM "
                 "runs) FROM json_each(?1) j", e);
    if (st == NULL)
        return TFQ_EIO;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        g->jobs = sqlite3_column_int64(st, 0);
        g->plain = sqlite3_column_int64(st, 1);
        g->unfinished = sqlite3_column_int64(st, 2);
        g->runs = sqlite3_column_int64(st, 3);
        int xmax = sqlite3_column_int(st, 4);
        g->xmax = xmax < 1 ? 1 : xmax > MAX_LAYER ? MAX_LAYER : xmax;
    }
    sqlite3_finalize(st);
    return TFQ_OK;
}

/* Every point with its mean, sample sd and count, random splits first,
 * then base, selffer, transfer, random control. */
static int load_points(grid_report *g, tfq_error *e)
{
    sqlite3_stmt *st = prepare(g->db,
        "SELECT r.similarity, r.variant, r.finetune, r.n, p.m, count(*), "
        "sum((r.acc - p.m) * (r.acc - p.m)) FROM runs r JOIN "
        "(SELECT similarity, variant, finetune, n, avg(acc) AS m FROM runs "
        "GROUP BY similarity, variant, finetune, n) p ON "
        "p.similarity = r.similarity AND p.variant = r.variant AND "
        "p.finetune = r.finetune AND p.n = r.n "
        "GROUP BY r.similarity, r.variant, r.finetune, r.n "
        "ORDER BY r.similarity <> 'random', r.similarity, CASE r.variant "
        "WHEN 'base' THEN 0 WHEN 'selffer' THEN 1 WHEN 'transfer' THEN 2 "
        "WHEN 'random' THEN 3 ELSE 4 END, r.variant, r.finetune, r.n", e);
    if (st == NULL)
        return TFQ_EIO;
    int cap = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (g->npoints == cap) {
            cap = cap ? cap * 2 : 64;
            point *np = realloc(g->points, (size_t)cap * sizeof *np);
            if (np == NULL) {
                sqlite3_finalize(st);
                return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
            }
            g->points = np;
        }
        point *p = &g->points[g->npoints++];
        snprintf(p->similarity, sizeof p->similarity, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        snprintf(p->variant, sizeof p->variant, "%s",
                 (const char *)sqlite3_column_text(st, 1));
        p->finetune = sqlite3_column_int(st, 2);
        p->n = sqlite3_column_int(st, 3);
        p->mean = sqlite3_column_double(st, 4);
        p->runs = sqlite3_column_int(st, 5);
        p->sd = p->runs > 1
                    ? sqrt(sqlite3_column_double(st, 6) / (p->runs - 1))
                    : NAN;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(g->db));
    return TFQ_OK;
}

static const point *find_point(const grid_report *g, const char *similarity,
                               const char *variant, int finetune, int n)
{
    for (int i = 0; i < g->npoints; i++) {
        const point *p = &g->points[i];
        if (p->finetune == finetune && p->n == n &&
            strcmp(p->variant, variant) == 0 &&
            strcmp(p->similarity, similarity) == 0)
            return p;
    }
    return NULL;
}

/* ---- Table 1 -------------------------------------------------------------*/

static void append(char *buf, size_t bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t bytes, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= bytes)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, bytes - n, fmt, ap);
    va_end(ap);
}

/* "no WHAT at n = a b c" for the layers of lo..hi in mask, after a "; "
 * when buf already says something. */
static void say_missing(char *buf, size_t bytes, const char *what,
                        const int *mask, int lo, int hi)
{
    int any = 0;
    for (int n = lo; n <= hi; n++) {
        if (!mask[n])
            continue;
        if (!any)
            append(buf, bytes, "%sno %s at n =", buf[0] ? "; " : "", what);
        append(buf, bytes, " %d", n);
        any = 1;
    }
}

/* One line of Table 1 on the random splits; a layer without both points
 * is left out of the mean and named in out->missing. */
static void compute_gain(const grid_report *g, int lo, int hi,
                         int over_selffer, gain *out)
{
    const point *base = find_point(g, "random", "base", 0, 0);
    int no_transfer[MAX_LAYER + 1] = {0}, no_other[MAX_LAYER + 1] = {0};
    double sum = 0;
    memset(out, 0, sizeof *out);
    out->lo = lo;
    out->hi = hi;
    out->versus = over_selffer ? "selffer+" : "base";
    for (int n = lo; n <= hi; n++) {
        const point *t = find_point(g, "random", "transfer", 1, n);
        const point *o =
            over_selffer ? find_point(g, "random", "selffer", 1, n) : base;
        no_transfer[n] = t == NULL;
        no_other[n] = o == NULL && over_selffer;
        if (t != NULL && o != NULL) {
            sum += t->mean - o->mean;
            out->points++;
        }
    }
    out->gain = out->points > 0 ? sum / out->points : NAN;
    if (base == NULL && !over_selffer)
        append(out->missing, sizeof out->missing, "no base net");
    say_missing(out->missing, sizeof out->missing, "transfer+", no_transfer,
                lo, hi);
    say_missing(out->missing, sizeof out->missing, "selffer+", no_other, lo,
                hi);
}

static void compute_gains(grid_report *g)
{
    static const int ranges[][2] = {{1, 7}, {3, 7}, {5, 7}};
    for (int i = 0; i < NGAINS; i++)
        compute_gain(g, ranges[i / 2][0], ranges[i / 2][1], i % 2,
                     &g->gains[i]);
}

/* ---- figures -------------------------------------------------------------*/

/* Adds the rows (n, y) of the bound statement st to s, a NULL y counted in
 * *skipped; resets st. */
static int fill_series(grid_report *g, sqlite3_stmt *st, figure_series *s,
                       long *skipped, tfq_error *e)
{
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL) {
            (*skipped)++;
            continue;
        }
        if (figure_add_run(s, sqlite3_column_int(st, 0),
                           sqlite3_column_double(st, 1)) != 0) {
            sqlite3_reset(st);
            return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        }
    }
    sqlite3_reset(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(g->db));
    return TFQ_OK;
}

/* The paper's colours: base white, selffer blue, selffer+ light blue,
 * transfer red, transfer+ pink. */
static const struct {
    const char *label, *variant;
    int finetune;
    const char *fill, *stroke;
    figure_marker marker;
} s_figure2[] = {
    {"base", "base", 0, "#ffffff", "#000000", FIGURE_CIRCLE},
    {"selffer BnB", "selffer", 0, "#1f4fd6", "#12308a", FIGURE_SQUARE},
    {"selffer+ BnB+", "selffer", 1, "#9cc9ff", "#3b82d6", FIGURE_DIAMOND},
    {"transfer AnB", "transfer", 0, "#d62728", "#8f1516",
     FIGURE_TRIANGLE_UP},
    {"transfer+ AnB+", "transfer", 1, "#ffa3c8", "#d6488a",
     FIGURE_TRIANGLE_DOWN},
};

static int build_figure2(grid_report *g, figure *f, tfq_error *e)
{
    sqlite3_stmt *st = prepare(g->db, "SELECT n, acc FROM runs WHERE "
                               "similarity = 'random' AND variant = ?1 AND "
                               "finetune = ?2 ORDER BY split, target, seed, "
                               "job", e);
    if (st == NULL)
        return TFQ_EIO;
    long skipped = 0;
    int rc = TFQ_OK;
    for (size_t i = 0; rc == 0 && i < sizeof s_figure2 / sizeof *s_figure2;
         i++) {
        figure_series *s = figure_add_series(f, s_figure2[i].label,
                                             s_figure2[i].fill,
                                             s_figure2[i].stroke,
                                             s_figure2[i].marker);
        sqlite3_bind_text(st, 1, s_figure2[i].variant, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, s_figure2[i].finetune);
        rc = fill_series(g, st, s, &skipped, e);
    }
    sqlite3_finalize(st);
    f->xmax = g->xmax;
    return rc;
}

/* The label of the random-weights control, and the similarity of the
 * splits it is drawn from (NULL: all), into sim. */
static int random_control(grid_report *g, char *label, size_t bytes,
                          char *sim, size_t sim_bytes, tfq_error *e)
{
    char on[NAME_BYTES];
    int rc = query_text(g->db, "SELECT CASE WHEN EXISTS (SELECT 1 FROM runs "
                        "WHERE variant = 'random' AND finetune = 0 AND "
                        "similarity = 'random') THEN 'random' ELSE "
                        "(SELECT group_concat(s, ', ') FROM (SELECT DISTINCT "
                        "similarity AS s FROM runs WHERE variant = 'random' "
                        "AND finetune = 0 ORDER BY s)) END", NULL, on,
                        sizeof on, e);
    if (rc != 0)
        return rc;
    if (on[0] == '\0' || strcmp(on, "random") == 0) {
        snprintf(label, bytes, "random weights, frozen");
        snprintf(sim, sim_bytes, "random");
    } else {
        snprintf(label, bytes, "random weights (on %s splits)", on);
        sim[0] = '\0';
    }
    return TFQ_OK;
}

static int build_figure3(grid_report *g, figure *f, tfq_error *e)
{
    char control[FIGURE_LABEL_BYTES], control_sim[NAME_BYTES];
    int rc = random_control(g, control, sizeof control, control_sim,
                            sizeof control_sim, e);
    if (rc != 0)
        return rc;
    const struct {
        const char *label, *variant, *similarity;
        const char *fill, *stroke;
        figure_marker marker;
    } series[] = {
        {"transfer AnB, random splits", "transfer", "random", "#d62728",
         "#8f1516", FIGURE_TRIANGLE_UP},
        {"transfer AnB, dissimilar split", "transfer", "dissimilar",
         "#ff9f1c", "#b35c00", FIGURE_SQUARE},
        {control, "random", control_sim, "#b0b0b0", "#4d4d4d",
         FIGURE_DIAMOND},
    };
    sqlite3_stmt *st = prepare(g->db, "SELECT r.n, r.acc / b.acc FROM runs r "
                               "LEFT JOIN bases b ON b.split = r.split AND "
                               "b.target = r.target AND b.seed = r.seed "
                               "WHERE r.variant = ?1 AND r.finetune = 0 AND "
                               "(?2 = '' OR r.similarity = ?2) ORDER BY "
                               "r.split, r.target, r.seed, r.job", e);
    if (st == NULL)
        return TFQ_EIO;
    for (size_t i = 0; rc == 0 && i < sizeof series / sizeof *series; i++) {
        figure_series *s = figure_add_series(f, series[i].label,
                                             series[i].fill, series[i].stroke,
                                             series[i].marker);
        sqlite3_bind_text(st, 1, series[i].variant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, series[i].similarity, -1, SQLITE_STATIC);
        rc = fill_series(g, st, s, &g->no_base, e);
    }
    sqlite3_finalize(st);
    f->xmax = g->xmax;
    f->has_ref = 1;
    f->ref_y = 1.0;
    f->ref_label = "base net (1.0)";
    return rc;
}

/* ---- tables --------------------------------------------------------------*/

#define TABLE_COLS 8
#define CELL_BYTES 160

typedef enum { AS_TEXT, AS_MARKDOWN, AS_CSV } table_format;

/* Rows of text cells; row 0 is the header. */
typedef struct {
    int ncols;
    size_t nrows, cap;
    char (*cells)[TABLE_COLS][CELL_BYTES]; /* (nrows) */
} text_table;

static void table_init(text_table *t, int ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

static void table_release(text_table *t)
{
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* Appends a row of t->ncols cells; TFQ_ENOMEM when it cannot grow. */
static int table_add(text_table *t, const char *const *row)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        void *nc = realloc(t->cells, cap * sizeof *t->cells);
        if (nc == NULL)
            return TFQ_ENOMEM;
        t->cells = nc;
        t->cap = cap;
    }
    for (int c = 0; c < t->ncols; c++)
        snprintf(t->cells[t->nrows][c], CELL_BYTES, "%s", row[c]);
    t->nrows++;
    return TFQ_OK;
}

static void table_write(const text_table *t, table_format fmt, FILE *out)
{
    int width[TABLE_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            int w = (int)strlen(t->cells[r][c]);
            width[c] = w > width[c] ? w : width[c];
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r][c];
            if (fmt == AS_CSV) {
                fputs(c ? "," : "", out);
                report_csv_field(out, v);
            } else if (fmt == AS_MARKDOWN) {
                fprintf(out, "| %s ", v);
            } else {
                fprintf(out, "%s%-*s", c ? "  " : "",
                        c == t->ncols - 1 ? 0 : width[c], v);
            }
        }
        fputs(fmt == AS_MARKDOWN ? "|\n" : "\n", out);
        for (int c = 0; fmt == AS_MARKDOWN && r == 0 && c < t->ncols; c++)
            fputs(c == t->ncols - 1 ? "|---|\n" : "|---", out);
    }
}

/* The points with decimals digits; none stands for a missing sd. */
static int points_table(const grid_report *g, int decimals, const char *none,
                        text_table *t)
{
    static const char *const header[] = {"similarity", "variant", "finetune",
                                         "n", "mean", "sd", "runs"};
    table_init(t, 7);
    int rc = table_add(t, header);
    for (int i = 0; rc == 0 && i < g->npoints; i++) {
        const point *p = &g->points[i];
        char ft[16], n[16], mean[32], sd[32], runs[16];
        snprintf(ft, sizeof ft, "%d", p->finetune);
        snprintf(n, sizeof n, "%d", p->n);
        snprintf(mean, sizeof mean, "%.*f", decimals, p->mean);
        if (isnan(p->sd))
            snprintf(sd, sizeof sd, "%s", none);
        else
            snprintf(sd, sizeof sd, "%.*f", decimals, p->sd);
        snprintf(runs, sizeof runs, "%d", p->runs);
        const char *row[] = {p->similarity, p->variant, ft, n, mean, sd, runs};
        rc = table_add(t, row);
    }
    return rc;
}

static int gains_table(const grid_report *g, int decimals, const char *none,
                       text_table *t)
{
    static const char *const header[] = {"layers", "versus", "gain",
                                         "points", "missing"};
    table_init(t, 5);
    int rc = table_add(t, header);
    for (int i = 0; rc == 0 && i < NGAINS; i++) {
        const gain *x = &g->gains[i];
        char layers[16], value[32], points[16];
        snprintf(layers, sizeof layers, "%d-%d", x->lo, x->hi);
        if (isnan(x->gain))
            snprintf(value, sizeof value, "%s", none);
        else
            snprintf(value, sizeof value, "%+.*f", decimals, x->gain);
        snprintf(points, sizeof points, "%d", x->points);
        const char *row[] = {layers, x->versus, value, points, x->missing};
        rc = table_add(t, row);
    }
    return rc;
}

/* ---- output --------------------------------------------------------------*/

/* Creates dir and its missing parents, like mkdir -p. */
static int make_dir(const char *dir, tfq_error *e)
{
    char path[PATH_BYTES];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return tfq_error_set(e, TFQ_EIO, "%s: cannot create directory: "
                                 "%s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tfq_error_set(e, TFQ_EIO, "%s: not a directory", dir);
    return TFQ_OK;
}

/* Writes into path, as fmt, the points (when points) and Table 1 (when
 * gains): CSV with 6 decimals and an empty cell for what is undefined,
 * Markdown with 4 and "-", under headings that define the numbers. */
static int write_tables(const grid_report *g, const char *path,
                        table_format fmt, int points, int gains,
                        tfq_error *e)
{
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return tfq_error_set(e, TFQ_EIO, "%s: cannot write: %s", path,
                             strerror(errno));
    int md = fmt == AS_MARKDOWN, decimals = md ? 4 : 6;
    const char *none = md ? "-" : "";
    text_table t;
    int rc = TFQ_OK;
    if (points) {
        if (md)
            fprintf(out, "# tfq report: grid %s, metric %s\n\n%ld runs (jobs "
                    "that succeeded with a result).\n\n## Points\n\nMean, "
                    "sample standard deviation and number of runs of every "
                    "point; base nets are variant base, n 0.\n\n", g->grid,
                    g->metric.name, g->runs);
        rc = points_table(g, decimals, none, &t);
        if (rc == 0)
            table_write(&t, fmt, out);
        table_release(&t);
    }
    if (rc == 0 && gains) {
        if (md)
            fprintf(out, "\n## Table 1: transfer+ (AnB+) against base and "
                    "selffer+ (BnB+), random splits\n\ngain: the mean over "
                    "the layers n of the range of (mean AnB+ at n - mean "
                    "base), or of (mean AnB+ at n - mean BnB+ at n); points: "
                    "the layers that have both.\n\n");
        rc = gains_table(g, decimals, none, &t);
        if (rc == 0)
            table_write(&t, fmt, out);
        table_release(&t);
    }
    int bad = ferror(out);
    if (fclose(out) != 0 || bad)
        return tfq_error_set(e, TFQ_EIO, "%s: write failed", path);
    if (rc != 0)
        return tfq_error_set(e, rc, "out of memory");
    return TFQ_OK;
}

static const char *const s_outputs[] = {"figure2.svg", "figure3.svg",
                                        "table.md", "table.csv",
                                        "table1.csv"};

static int write_report(const grid_report *g, const figure *f2,
                        const figure *f3, const char *dir, tfq_error *e)
{
    char path[5][PATH_BYTES];
    for (int i = 0; i < 5; i++)
        if (snprintf(path[i], PATH_BYTES, "%s/%s", dir, s_outputs[i]) >=
            PATH_BYTES)
            return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", dir);
    int rc = make_dir(dir, e);
    if (rc == 0)
        rc = figure_write_svg(f2, path[0], e);
    if (rc == 0)
        rc = figure_write_svg(f3, path[1], e);
    if (rc == 0)
        rc = write_tables(g, path[2], AS_MARKDOWN, 1, 1, e);
    if (rc == 0)
        rc = write_tables(g, path[3], AS_CSV, 1, 0, e);
    if (rc == 0)
        rc = write_tables(g, path[4], AS_CSV, 0, 1, e);
    return rc;
}

static const char *plural(long n)
{
    return n == 1 ? "" : "s";
}

static void print_summary(const grid_report *g, const char *dir)
{
    printf("grid %s, metric %s: %ld finished run%s", g->grid, g->metric.name,
           g->runs, plural(g->runs));
    if (g->unfinished > 0)
        printf("; %ld job%s not finished (the report covers what is done)",
               g->unfinished, plural(g->unfinished));
    if (g->no_value > 0)
        printf("; %ld finished job%s without a value for the metric left "
               "out", g->no_value, plural(g->no_value));
    if (g->plain > 0)
        printf("; %ld job%s without grid coordinates ignored", g->plain,
               plural(g->plain));
    printf("\n\n");
    text_table t;
    if (points_table(g, 4, "-", &t) == 0)
        table_write(&t, AS_TEXT, stdout);
    table_release(&t);
    printf("\nTable 1 (random splits): gain of transfer+ over base and "
           "selffer+\n");
    if (gains_table(g, 4, "-", &t) == 0)
        table_write(&t, AS_TEXT, stdout);
    table_release(&t);
    if (g->no_base > 0)
        printf("\nfigure3: %ld run%s left out: no base net of the same split, "
               "target and seed\n", g->no_base, plural(g->no_base));
    printf("\n");
    for (int i = 0; i < 5; i++)
        printf("wrote %s/%s\n", dir, s_outputs[i]);
}

/* ---- the command ---------------------------------------------------------*/

static void grid_report_release(grid_report *g)
{
    sqlite3_close(g->db);
    free(g->points);
    memset(g, 0, sizeof *g);
}

/* Everything but the writing: fails when json has no finished run. */
/* Names, on stderr, the jobs whose stored result the coordinator could not
 * read (a row of an old database): the report leaves them out and goes on. */
static void warn_bad_results(sqlite3 *db, const char *json)
{
    sqlite3_stmt *st = prepare(db, "SELECT json_extract(value, '$.job'), "
                               "json_extract(value, '$.name'), json_extract("
                               "value, '$.bad_result') FROM json_each(?1) "
                               "WHERE json_extract(value, '$.bad_result') IS "
                               "NOT NULL", NULL);
    if (st == NULL)
        return;
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW)
        fprintf(stderr, "tfq report: job %lld (%s): %s\n",
                (long long)sqlite3_column_int64(st, 0),
                (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
}

static int build_report(grid_report *g, const char *json, const char *source,
                        const char *grid, const char *metric_opt, figure *f2,
                        figure *f3, tfq_error *e)
{
    if (sqlite3_open(":memory:", &g->db) != SQLITE_OK)
        return tfq_error_set(e, TFQ_EIO, "report: cannot open SQLite");
    int rc = check_json(g->db, json, source, e);
    if (rc == 0)
        warn_bad_results(g->db, json);
    if (rc == 0)
        rc = choose_metric(g, json, metric_opt, e);
    if (rc == 0 && grid == NULL)
        rc = query_text(g->db, "SELECT coalesce((SELECT json_extract(j.value,"
                        " '$.grid') FROM json_each(?1) j WHERE json_extract("
                        "j.value, '$.grid') IS NOT NULL LIMIT 1), '')", json,
                        g->grid, sizeof g->grid, e);
    else if (rc == 0)
        snprintf(g->grid, sizeof g->grid, "%s", grid);
    if (rc == 0 && g->grid[0] == '\0')
        snprintf(g->grid, sizeof g->grid, "%s", source);
    if (rc == 0)
        rc = load_runs(g, json, e);
    if (rc == 0 && g->runs == 0)
        return tfq_error_set(e, TFQ_ENOENT, "grid %s has no finished job%s "
                             "(%ld jobs: %ld not finished, %ld without grid "
                             "coordinates); nothing written", g->grid,
                             g->no_value ? " with a value for the metric" : "",
                             g->jobs, g->unfinished, g->plain);
    if (rc == 0)
        rc = load_points(g, e);
    if (rc == 0)
        compute_gains(g);
    if (rc == 0)
        rc = build_figure2(g, f2, e);
    if (rc == 0)
        rc = build_figure3(g, f3, e);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tfq report GRID -o DIR [--metric M] [--connect ADDR]\n"
        "       tfq report --from-json FILE -o DIR [--metric M]\n\n"
        "Figures and tables of Yosinski et al. 2014 from the finished jobs "
        "of a grid\n(jobs that succeeded with a result; a grid still running "
        "gives what is done).\nWrites into DIR (created if missing):\n"
        "  figure2.svg  accuracy against layer n, random splits: base, "
        "selffer BnB,\n"
        "               selffer+ BnB+, transfer AnB, transfer+ AnB+ "
        "(a marker per run,\n"
        "               a line through the means)\n"
        "  figure3.svg  accuracy relative to the base net of the same split, "
        "target\n"
        "               and seed: transfer on the random and on the "
        "dissimilar splits,\n"
        "               and the frozen random-weights control\n"
        "  table.md     every point (mean, sample sd, runs) and Table 1\n"
        "  table.csv    every point: similarity,variant,finetune,n,mean,sd,"
        "runs\n"
        "  table1.csv   Table 1: layers,versus,gain,points,missing: the mean "
        "over n\n"
        "               of (transfer+ - base) and of (transfer+ - selffer+) "
        "for\n"
        "               n = 1-7, 3-7, 5-7\n\n"
        "  -o, --output DIR    where to write\n"
        "  --metric M          final: the last test evaluation; best: the "
        "highest;\n"
        "                      topK: the mean of the K highest (default: "
        "the grid's,\n"
        "                      else %s)\n"
        "  --from-json FILE    read `tfq results GRID --json` output from "
        "FILE ('-': stdin)\n"
        "  --connect ADDR      coordinator (default %s)\n",
        DEFAULT_METRIC, CLIENT_DEFAULT_ENDPOINT);
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"metric", required_argument, 0, 'm'},
        {"from-json", required_argument, 0, 'j'},
        {"connect", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    const char *dir = NULL, *metric_opt = NULL, *from = NULL;
    const char *connect = CLIENT_DEFAULT_ENDPOINT;
    metric m;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (o) {
        case 'o': dir = optarg; break;
        case 'm':
            if (metric_parse(optarg, &m) != 0) {
                fprintf(stderr, "tfq report: --metric: unknown metric '%s' "
                        "(expected final, best or topK, e.g. top10)\n",
                        optarg);
                return CLI_USAGE;
            }
            metric_opt = optarg;
            break;
        case 'j': from = optarg; break;
        case 'c': connect = optarg; break;
        case 'H': usage(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    const char *grid = optind < argc ? argv[optind] : NULL;
    if (argc - optind > 1 || (grid == NULL) == (from == NULL)) {
        fprintf(stderr, "tfq report: expected one GRID or --from-json FILE "
                "(see tfq report --help)\n");
        return CLI_USAGE;
    }
    if (dir == NULL) {
        fprintf(stderr, "tfq report: -o DIR is required (where the figures "
                "and tables go)\n");
        return CLI_USAGE;
    }
    tfq_error e = {0};
    char *json = from != NULL ? read_all(from, &e)
                              : client_results(connect, grid, &e);
    grid_report g = {0};
    figure f2, f3;
    char title2[PATH_BYTES + 64] = "", title3[PATH_BYTES + 64] = "";
    char ylabel2[NAME_BYTES + 32] = "", ylabel3[NAME_BYTES + 48] = "";
    figure_init(&f2, title2, "layer n at which the net is chopped", ylabel2);
    figure_init(&f3, title3, "layer n at which the net is chopped", ylabel3);
    const char *source = from == NULL              ? "the coordinator's reply"
                         : strcmp(from, "-") == 0 ? "standard input"
                                                  : from;
    int rc = json != NULL ? build_report(&g, json, source, grid, metric_opt,
                                         &f2, &f3, &e)
                          : e.code;
    if (rc == 0) {
        snprintf(title2, sizeof title2, "Figure 2: random A/B splits, grid "
                 "%s", g.grid);
        snprintf(title3, sizeof title3, "Figure 3: transfer relative to the "
                 "base net, grid %s", g.grid);
        snprintf(ylabel2, sizeof ylabel2, "accuracy (%s)", g.metric.name);
        snprintf(ylabel3, sizeof ylabel3, "accuracy relative to the base net "
                 "(%s)", g.metric.name);
        rc = write_report(&g, &f2, &f3, dir, &e);
    }
    if (rc == 0)
        print_summary(&g, dir);
    else
        fprintf(stderr, "tfq report: %s\n", e.msg);
    figure_release(&f2);
    figure_release(&f3);
    grid_report_release(&g);
    free(json);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}
