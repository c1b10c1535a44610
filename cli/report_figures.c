#include "report_figures.h"

#include <stdio.h>
#include <string.h>

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
    f->xmax = g->xmax;
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

static int build_figure3(grid_report *g, figure *f, tfq_error *e)
{
    char control[FIGURE_LABEL_BYTES], control_sim[REPORT_NAME_BYTES];
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
    f->xmax = g->xmax;
    f->has_ref = 1;
    f->ref_y = 1.0;
    f->ref_label = "base net (1.0)";
    return rc;
}

int figures_build(grid_report *g, figure *f2, figure *f3, tfq_error *e)
{
    int rc = build_figure2(g, f2, e);
    if (rc == 0)
        rc = build_figure3(g, f3, e);
    return rc;
}
