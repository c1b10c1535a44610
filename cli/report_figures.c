#include "report_figures.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_stats.h"

#define XLABEL "layer n at which the net is chopped"
#define INTERVAL_LABEL "mean and its 95% interval\n(t-based, from the runs)"
#define INTERVAL_CAPTION \
    "95% interval: mean \u00b1 t(0.975, runs \u2212 1) \u00b7 sd / " \
    "\u221aruns, sd the runs' sample standard deviation."

void figures_metric_label(const metric *m, const char *sep, char *buf,
                          size_t bytes)
{
    if (m->kind == METRIC_FINAL)
        snprintf(buf, bytes, "top-1 accuracy,%sfinal evaluation", sep);
    else if (m->kind == METRIC_BEST || m->k == 1)
        snprintf(buf, bytes, "top-1 accuracy,%sbest evaluation", sep);
    else
        snprintf(buf, bytes, "top-1 accuracy,%smean of the %d best "
                 "evaluations", sep, m->k);
}

/* The index of run i of s in 0..xmax, or -1 when it is outside. */
static long run_x(const figure_series *s, size_t i, int xmax)
{
    long x = lround(s->runs[i].x);
    return x < 0 || x > xmax ? -1 : x;
}

/* Every series' mean at each x, and the half-width of its 95% t-interval
 * (report_stats.h) from the runs there. */
static void summarise(figure *f)
{
    int xmax = f->xmax < FIGURE_MAX_X ? f->xmax : FIGURE_MAX_X;
    for (int si = 0; si < f->nseries; si++) {
        figure_series *s = &f->series[si];
        double ss[FIGURE_MAX_X + 1] = {0};
        memset(s->means, 0, sizeof s->means);
        for (size_t i = 0; i < s->nruns; i++) {
            long x = run_x(s, i, xmax);
            if (x >= 0) {
                s->means[x].mean += s->runs[i].y;
                s->means[x].runs++;
            }
        }
        for (int x = 0; x <= xmax; x++)
            if (s->means[x].runs > 0)
                s->means[x].mean /= s->means[x].runs;
        for (size_t i = 0; i < s->nruns; i++) {
            long x = run_x(s, i, xmax);
            double d = x >= 0 ? s->runs[i].y - s->means[x].mean : 0;
            if (x >= 0)
                ss[x] += d * d;
        }
        for (int x = 0; x <= xmax; x++) {
            int n = s->means[x].runs;
            s->means[x].half =
                n > 1 ? stats_ci95(sqrt(ss[x] / (n - 1)), n) : NAN;
        }
    }
}

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
    sqlite3_stmt *st = ingest_prepare(
            g->db, "SELECT n, acc FROM runs WHERE "
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
    return rc;
}

/* The label of the random-weights control, and the similarity of the
 * splits it is drawn from (NULL: all), into sim. */
static int random_control(grid_report *g, char *label, size_t bytes,
                          char *sim, size_t sim_bytes, tfq_error *e)
{
    char on[REPORT_NAME_BYTES];
    int rc = ingest_query_text(
            g->db, "SELECT CASE WHEN EXISTS (SELECT 1 FROM runs "
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

static int build_figure3(grid_report *g, figure *f, char *control,
                         tfq_error *e)
{
    char control_sim[REPORT_NAME_BYTES];
    int rc = random_control(g, control, FIGURE_LABEL_BYTES, control_sim,
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
    sqlite3_stmt *st = ingest_prepare(
            g->db, "SELECT r.n, r.acc / b.acc FROM runs r "
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
    return rc;
}

/* The panels, texts and layout of the two figures. */
static void dress(const grid_report *g, figure *f2, figure *f3,
                  figures_text *t)
{
    snprintf(t->title2, sizeof t->title2, "Figure 2: random A/B splits, grid "
             "%s", g->grid);
    snprintf(t->title3, sizeof t->title3, "Figure 3: transfer relative to "
             "the base net, grid %s", g->grid);
    figures_metric_label(&g->metric, "\n", t->ylabel2, sizeof t->ylabel2);
    char words[96];
    figures_metric_label(&g->metric, " ", words, sizeof words);
    snprintf(t->ylabel3, sizeof t->ylabel3, "accuracy relative to the base "
             "net\n(%s)", words);
    figure_init(f2, t->title2, XLABEL);
    figure_init(f3, t->title3, XLABEL);
    figure_add_panel(f2, "runs", t->ylabel2, 1, 0);
    figure_add_panel(f2, "means", t->ylabel2, 0, 1);
    figure_add_panel(f3, "runs", t->ylabel3, 1, 1);
    f2->caption[0] = "Random A/B splits, both directions pooled; the base "
                     "nets at n = 0.";
    f2->caption[1] = "Top: every run (a marker each) and the mean of each "
                     "series (line).  Bottom: the means alone, zoomed.";
    f2->caption[2] = INTERVAL_CAPTION;
    f3->caption[0] = "Each run divided by the base net of the same split, "
                     "target and seed (1.0: as good as the base).";
    f3->caption[1] = "Pale markers: the runs; bars: their means.";
    f3->caption[2] = INTERVAL_CAPTION;
    f2->interval_label = f3->interval_label = INTERVAL_LABEL;
    f2->xmax = f3->xmax = g->xmax;
    f3->dodge = 0.22; /* three series, close together at small n */
    f3->has_ref = 1;
    f3->ref_y = 1.0;
    f3->ref_label = "base net (1.0)";
}

int figures_build(grid_report *g, figure *f2, figure *f3, figures_text *t,
                  tfq_error *e)
{
    dress(g, f2, f3, t);
    int rc = build_figure2(g, f2, e);
    if (rc == 0)
        rc = build_figure3(g, f3, t->control, e);
    summarise(f2);
    summarise(f3);
    return rc;
}
