#include "report_stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* t_{0.975, df} for df = 1 .. 30; above, the Cornish-Fisher expansion
 * below is within 1e-5 of the quantile. */
static const double s_t975[] = {
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060,
    2.2622,  2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199,
    2.1098,  2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
    2.0595,  2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
};

double stats_t975(int df)
{
    const int ntable = (int)(sizeof s_t975 / sizeof *s_t975);
    if (df < 1)
        return NAN;
    if (df <= ntable)
        return s_t975[df - 1];
    /* The normal quantile corrected in powers of 1/df (Abramowitz and
     * Stegun 26.7.5). */
    const double z = 1.959963984540054, z2 = z * z, d = df;
    double g1 = (z2 + 1) * z / 4;
    double g2 = ((5 * z2 + 16) * z2 + 3) * z / 96;
    double g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384;
    return z + g1 / d + g2 / (d * d) + g3 / (d * d * d);
}

double stats_ci95(double sd, int runs)
{
    if (runs < 2)
        return NAN;
    return stats_t975(runs - 1) * sd / sqrt(runs);
}

/* Every point with its mean, sample sd and count, random splits first,
 * then base, selffer, transfer, random control. */
static int load_points(grid_report *g, tfq_error *e)
{
    sqlite3_stmt *st = ingest_prepare(
            g->db,
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
            report_point *np = realloc(g->points, (size_t)cap * sizeof *np);
            if (np == NULL) {
                sqlite3_finalize(st);
                return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
            }
            g->points = np;
        }
        report_point *p = &g->points[g->npoints++];
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
        p->ci95 = stats_ci95(p->sd, p->runs);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return tfq_error_set(e, TFQ_EIO, "report: %s", sqlite3_errmsg(g->db));
    return TFQ_OK;
}

static const report_point *find_point(const grid_report *g,
                                      const char *similarity,
                                      const char *variant, int finetune, int n)
{
    for (int i = 0; i < g->npoints; i++) {
        const report_point *p = &g->points[i];
        if (p->finetune == finetune && p->n == n &&
            strcmp(p->variant, variant) == 0 &&
            strcmp(p->similarity, similarity) == 0)
            return p;
    }
    return NULL;
}

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
                         int over_selffer, report_gain *out)
{
    const report_point *base = find_point(g, "random", "base", 0, 0);
    int no_transfer[REPORT_MAX_LAYER + 1] = {0};
    int no_other[REPORT_MAX_LAYER + 1] = {0};
    double sum = 0;
    memset(out, 0, sizeof *out);
    out->lo = lo;
    out->hi = hi;
    out->versus = over_selffer ? "selffer+" : "base";
    for (int n = lo; n <= hi; n++) {
        const report_point *t = find_point(g, "random", "transfer", 1, n);
        const report_point *o =
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
    for (int i = 0; i < REPORT_NGAINS; i++)
        compute_gain(g, ranges[i / 2][0], ranges[i / 2][1], i % 2,
                     &g->gains[i]);
}

int stats_load(grid_report *g, tfq_error *e)
{
    int rc = load_points(g, e);
    if (rc == 0)
        compute_gains(g);
    return rc;
}

int stats_gains_empty(const grid_report *g, char *reason, size_t bytes)
{
    for (int i = 0; i < REPORT_NGAINS; i++)
        if (g->gains[i].points > 0)
            return 0;
    int transfer = 0, other = 0;
    for (int i = 0; i < g->npoints; i++) {
        const report_point *p = &g->points[i];
        if (strcmp(p->similarity, "random") != 0)
            continue;
        if (p->finetune && strcmp(p->variant, "transfer") == 0)
            transfer = 1;
        if (strcmp(p->variant, "base") == 0 ||
            (p->finetune && strcmp(p->variant, "selffer") == 0))
            other = 1;
    }
    if (!transfer)
        snprintf(reason, bytes, "the grid has no transfer+ (AnB+) nets on "
                 "the random splits");
    else if (!other)
        snprintf(reason, bytes, "the grid has no base net and no selffer+ "
                 "(BnB+) nets on the random splits");
    else
        snprintf(reason, bytes, "no layer n = 1-7 has transfer+ (AnB+) and "
                 "base or selffer+ (BnB+) nets on the random splits");
    return 1;
}

/* v with decimals digits into buf, none when it is NAN. */
static void put_value(char *buf, size_t bytes, int decimals, const char *none,
                      double v)
{
    if (isnan(v))
        snprintf(buf, bytes, "%s", none);
    else
        snprintf(buf, bytes, "%.*f", decimals, v);
}

int stats_points_table(const grid_report *g, int decimals, const char *none,
                       table *t)
{
    static const char *const header[] = {"similarity", "variant", "finetune",
                                         "n", "mean", "sd", "runs",
                                         "ci95_lo", "ci95_hi"};
    table_init(t, 9);
    int rc = table_add(t, header);
    for (int i = 0; rc == 0 && i < g->npoints; i++) {
        const report_point *p = &g->points[i];
        char ft[16], n[16], mean[32], sd[32], runs[16], lo[32], hi[32];
        snprintf(ft, sizeof ft, "%d", p->finetune);
        snprintf(n, sizeof n, "%d", p->n);
        put_value(mean, sizeof mean, decimals, none, p->mean);
        put_value(sd, sizeof sd, decimals, none, p->sd);
        snprintf(runs, sizeof runs, "%d", p->runs);
        put_value(lo, sizeof lo, decimals, none, p->mean - p->ci95);
        put_value(hi, sizeof hi, decimals, none, p->mean + p->ci95);
        const char *row[] = {p->similarity, p->variant, ft, n, mean, sd, runs,
                             lo, hi};
        rc = table_add(t, row);
    }
    return rc;
}

int stats_gains_table(const grid_report *g, int decimals, const char *none,
                      table *t)
{
    static const char *const header[] = {"layers", "versus", "gain",
                                         "points", "missing"};
    table_init(t, 5);
    int rc = table_add(t, header);
    for (int i = 0; rc == 0 && i < REPORT_NGAINS; i++) {
        const report_gain *x = &g->gains[i];
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

