/* tfq report: the paper's Figures 2 and 3, a table of every point and its
 * Table 1, from the finished jobs of a grid (report_grid.h says how). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/client.h"
#include "report_figures.h"
#include "report_grid.h"
#include "report_json.h"
#include "report_stats.h"
#include "report_sweep.h"
#include "table.h"

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
    int md = fmt == TABLE_MARKDOWN, decimals = md ? 4 : 6;
    const char *none = md ? "-" : "";
    table t;
    int rc = TFQ_OK;
    if (points) {
        if (md)
            fprintf(out, "# tfq report: grid %s, metric %s\n\n%ld runs (jobs "
                    "that succeeded with a result).\n\n## Points\n\nMean, "
                    "sample standard deviation and number of runs of every "
                    "point, and the 95%% interval of the mean (mean +- "
                    "t(0.975, runs - 1) * sd / sqrt(runs); none for one "
                    "run); base nets are variant base, n 0.\n\n", g->grid,
                    g->metric.name, g->runs);
        rc = stats_points_table(g, decimals, none, &t);
        if (rc == 0)
            table_write(&t, fmt, out);
        table_release(&t);
    }
    char empty[160];
    if (rc == 0 && gains && md && stats_gains_empty(g, empty, sizeof empty)) {
        fprintf(out, "\n## Table 1: transfer+ (AnB+) against base and "
                "selffer+ (BnB+), random splits\n\nNone: %s.\n", empty);
        gains = 0;
    }
    if (rc == 0 && gains) {
        if (md)
            fprintf(out, "\n## Table 1: transfer+ (AnB+) against base and "
                    "selffer+ (BnB+), random splits\n\ngain: the mean over "
                    "the layers n of the range of (mean AnB+ at n - mean "
                    "base), or of (mean AnB+ at n - mean BnB+ at n); points: "
                    "the layers that have both.\n\n");
        rc = stats_gains_table(g, decimals, none, &t);
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

/* The files of a report, in the order they are written; the PNGs only
 * when FIGURE_PNG_TOOL is there. */
enum { OUT_FIG2, OUT_FIG3, OUT_MD, OUT_CSV, OUT_TABLE1, OUT_PNG2, OUT_PNG3,
       NOUTPUTS };
static const char *const s_outputs[NOUTPUTS] = {
    "figure2.svg", "figure3.svg", "table.md", "table.csv", "table1.csv",
    "figure2.png", "figure3.png",
};

typedef struct {
    char path[NOUTPUTS][REPORT_PATH_BYTES];
    int written[NOUTPUTS];
} report_files;

/* The PNG of each figure, or once on stderr why there are none. */
static int write_pngs(report_files *out, tfq_error *e)
{
    for (int i = 0; i < 2; i++) {
        int rc = figure_write_png(out->path[OUT_FIG2 + i],
                                  out->path[OUT_PNG2 + i], e);
        if (rc == TFQ_ENOENT) {
            fprintf(stderr, "tfq report: %s; figure2.png and figure3.png "
                    "not written (install librsvg2-bin for PNGs)\n", e->msg);
            *e = (tfq_error){0};
            return TFQ_OK;
        }
        if (rc != 0)
            return rc;
        out->written[OUT_PNG2 + i] = 1;
    }
    return TFQ_OK;
}

static int write_report(const grid_report *g, const figure *f2,
                        const figure *f3, const char *dir, report_files *out,
                        tfq_error *e)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < NOUTPUTS; i++)
        if (snprintf(out->path[i], REPORT_PATH_BYTES, "%s/%s", dir,
                     s_outputs[i]) >= REPORT_PATH_BYTES)
            return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", dir);
    int rc = cli_mkdir_p(dir, e);
    if (rc == 0)
        rc = figure_write_svg(f2, out->path[OUT_FIG2], e);
    if (rc == 0)
        rc = figure_write_svg(f3, out->path[OUT_FIG3], e);
    if (rc == 0)
        rc = write_tables(g, out->path[OUT_MD], TABLE_MARKDOWN, 1, 1, e);
    if (rc == 0)
        rc = write_tables(g, out->path[OUT_CSV], TABLE_CSV, 1, 0, e);
    if (rc == 0)
        rc = write_tables(g, out->path[OUT_TABLE1], TABLE_CSV, 0, 1, e);
    for (int i = OUT_FIG2; rc == 0 && i <= OUT_TABLE1; i++)
        out->written[i] = 1;
    if (rc == 0)
        rc = write_pngs(out, e);
    return rc;
}

static const char *plural(long n)
{
    return n == 1 ? "" : "s";
}

static void print_summary(const grid_report *g, const report_files *files)
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
    table t;
    if (stats_points_table(g, 4, "-", &t) == 0)
        table_write(&t, TABLE_TEXT, stdout);
    table_release(&t);
    char empty[160];
    if (stats_gains_empty(g, empty, sizeof empty)) {
        printf("\nTable 1: none, %s\n", empty);
    } else {
        printf("\nTable 1 (random splits): gain of transfer+ over base and "
               "selffer+\n");
        if (stats_gains_table(g, 4, "-", &t) == 0)
            table_write(&t, TABLE_TEXT, stdout);
        table_release(&t);
    }
    if (g->no_base > 0)
        printf("\nfigure3: %ld run%s left out: no base net of the same split, "
               "target and seed\n", g->no_base, plural(g->no_base));
    printf("\n");
    for (int i = 0; i < NOUTPUTS; i++)
        if (files->written[i])
            printf("wrote %s\n", files->path[i]);
}

/* ---- the command ---------------------------------------------------------*/

void cmd_report_help(FILE *out)
{
    fprintf(out,
        "usage: tfq report GRID -o DIR [--metric M] [--csv | --json] "
        "[--connect ADDR]\n"
        "       tfq report --from-json FILE -o DIR [--metric M] "
        "[--csv | --json]\n\n"
        "Figures and tables of Yosinski et al. 2014 from the finished jobs "
        "of a grid\n(jobs that succeeded with a result; a grid still running "
        "gives what is done).\nWrites into DIR (created if missing):\n"
        "  figure2.svg  top-1 accuracy against layer n, random splits: base, "
        "selffer\n"
        "               BnB, selffer+ BnB+, transfer AnB, transfer+ AnB+; "
        "on top a\n"
        "               marker per run and a line through the means, below "
        "the means\n"
        "               zoomed with their 95%% t-intervals\n"
        "  figure3.svg  accuracy relative to the base net of the same split, "
        "target\n"
        "               and seed: transfer on the random and on the "
        "dissimilar splits,\n"
        "               and the frozen random-weights control; the runs, and "
        "the means\n"
        "               with their 95%% t-intervals\n"
        "  figure2.png, figure3.png\n"
        "               the figures at twice the size, when rsvg-convert "
        "is on PATH\n"
        "  table.md     every point (mean, sample sd, runs, 95%% interval) "
        "and Table 1\n"
        "  table.csv    every point, columns similarity variant finetune n "
        "mean sd\n"
        "               runs ci95_lo ci95_hi\n"
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
        "  --csv               print the points (table.csv) instead of the "
        "summary\n"
        "  --json              print the counts, points, Table 1 and files "
        "as JSON\n"
        CLI_CONNECT_HELP
        "  -h, --help          this text\n",
        REPORT_DEFAULT_METRIC);
}

typedef struct {
    const char *dir, *metric_opt, *from, *connect, *grid;
    int csv, json;
    const char *where[SWEEP_MAX_WHERE]; /* --where KEY=VALUE */
    int nwhere;
} report_args;

/* The command line into a; CLI_OK, or the exit status to return now. */
static int parse_args(int argc, char **argv, report_args *a)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"metric", required_argument, 0, 'm'},
        {"from-json", required_argument, 0, 'j'},
        {"connect", required_argument, 0, 'c'},
        {"csv", no_argument, 0, 'C'},
        {"json", no_argument, 0, 'J'},
        {"where", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    metric m;
    int o;
    memset(a, 0, sizeof *a);
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (o) {
        case 'o': a->dir = optarg; break;
        case 'm':
            if (metric_parse(optarg, &m) != 0) {
                fprintf(stderr, "tfq report: --metric: unknown metric '%s' "
                        "(expected final, best or topK, e.g. top10)\n",
                        optarg);
                return CLI_USAGE;
            }
            a->metric_opt = optarg;
            break;
        case 'j': a->from = optarg; break;
        case 'c': a->connect = optarg; break;
        case 'C': a->csv = 1; break;
        case 'J': a->json = 1; break;
        case 'w':
            if (a->nwhere == SWEEP_MAX_WHERE) {
                fprintf(stderr, "tfq report: more than %d --where\n",
                        SWEEP_MAX_WHERE);
                return CLI_USAGE;
            }
            a->where[a->nwhere++] = optarg;
            break;
        case 'h': cmd_report_help(stdout); return -1;
        default: return CLI_USAGE;
        }
    }
    a->grid = optind < argc ? argv[optind] : NULL;
    const char *why = NULL;
    if (argc - optind > 1 || (a->grid == NULL) == (a->from == NULL))
        why = "expected one GRID or --from-json FILE (see tfq report --help)";
    else if (a->from != NULL && a->connect != NULL)
        why = "--from-json and --connect conflict (the jobs come from FILE, "
              "not a coordinator)";
    else if (a->csv && a->json)
        why = "--csv and --json conflict (one format on standard output)";
    else if (a->dir == NULL)
        why = "-o DIR is required (where the figures and tables go)";
    if (why != NULL) {
        fprintf(stderr, "tfq report: %s\n", why);
        return CLI_USAGE;
    }
    if (a->connect == NULL)
        a->connect = cli_connect_default();
    return CLI_OK;
}

/* One report: the jobs of json (a whole grid, or one setting combination
 * of a swept grid, then named by grid) built and written into dir, then
 * printed as the options say unless quiet; *out keeps the points for a
 * caller that writes them beside others (NULL: released here). */
static int report_one(const report_args *a, const char *json,
                      const char *source, const char *grid, const char *dir,
                      int quiet, grid_report *out, tfq_error *e)
{
    grid_report g = {0};
    figure f2 = {0}, f3 = {0};
    figures_text texts;
    report_files files;
    int rc = report_build(&g, json, source, grid, a->metric_opt, &f2, &f3,
                          &texts, e);
    if (rc == 0)
        rc = write_report(&g, &f2, &f3, dir, &files, e);
    table t;
    if (rc == 0 && quiet) {
        /* the caller prints */
    } else if (rc == 0 && a->csv) {
        rc = stats_points_table(&g, 6, "", &t);
        if (rc == 0)
            table_write(&t, TABLE_CSV, stdout);
        else
            tfq_error_set(e, rc, "out of memory");
        table_release(&t);
    } else if (rc == 0 && a->json) {
        const char *written[NOUTPUTS];
        int nwritten = 0;
        for (int i = 0; i < NOUTPUTS; i++)
            if (files.written[i])
                written[nwritten++] = files.path[i];
        report_write_json(&g, written, nwritten, stdout);
    } else if (rc == 0) {
        print_summary(&g, &files);
    }
    figure_release(&f2);
    figure_release(&f3);
    if (rc == 0 && out != NULL)
        *out = g;
    else
        grid_report_release(&g);
    return rc;
}

/* Appends the points of g, one row each after the combination's values
 * of keys, to t (whose header is made from g's when t has no row). */
static int sweep_points(table *t, const grid_report *g, const char *sweep,
                        char keys[][32], int nkeys, int decimals,
                        const char *none)
{
    table p;
    int rc = stats_points_table(g, decimals, none, &p);
    if (rc == 0 && t->ncols == 0)
        table_init(t, nkeys + p.ncols);
    for (size_t r = t->nrows ? 1 : 0; rc == 0 && r < p.nrows; r++) {
        const char *row[TABLE_MAX_COLS];
        char values[TABLE_MAX_COLS][64];
        for (int k = 0; k < nkeys; k++) {
            if (r == 0)
                snprintf(values[k], sizeof values[k], "%s", keys[k]);
            else
                sweep_value(sweep, keys[k], values[k], sizeof values[k]);
            row[k] = values[k];
        }
        for (int c = 0; c < p.ncols; c++)
            row[nkeys + c] = p.cells[r * (size_t)p.ncols + (size_t)c];
        rc = table_add(t, row);
    }
    table_release(&p);
    return rc;
}

/* DIR/table.md and DIR/table.csv of a report per setting combination:
 * every point of every chosen combination, a column per swept key. */
static int write_sweep_tables(const sweep_set *ss, const grid_report *gs,
                              const char *dir, int quiet, tfq_error *e)
{
    char keys[TABLE_MAX_COLS][32];
    int nkeys = 0, first = 0;
    while (!ss->chosen[first])
        first++;
    sweep_keys(ss->names[first], keys, TABLE_MAX_COLS - 10, &nkeys);
    for (int md = 0; md <= 1; md++) {
        char path[REPORT_PATH_BYTES];
        snprintf(path, sizeof path, "%s/%s", dir, md ? "table.md" : "table.csv");
        table t = {0};
        int rc = 0;
        for (int i = 0; rc == 0 && i < ss->n; i++)
            if (ss->chosen[i])
                rc = sweep_points(&t, &gs[i], ss->names[i], keys, nkeys,
                                  md ? 4 : 6, md ? "-" : "");
        FILE *out = rc == 0 ? fopen(path, "w") : NULL;
        if (out != NULL && md)
            fprintf(out, "# tfq report: grid %s, metric %s, per setting\n\n"
                    "Every point of every setting combination (its own "
                    "report, with Table 1, is in the folder of that name)."
                    "\n\n", ss->grid, gs[first].metric.name);
        if (out != NULL)
            table_write(&t, md ? TABLE_MARKDOWN : TABLE_CSV, out);
        table_release(&t);
        if (out == NULL || fclose(out) != 0)
            return tfq_error_set(e, TFQ_EIO, "%s: cannot write", path);
        if (!quiet)
            printf("wrote %s\n", path);
    }
    return TFQ_OK;
}

/* The reports of a swept grid: one per chosen setting combination, in
 * DIR/KEY=VALUE/... (DIR itself when --where leaves one), and the tables
 * of them all. */
static int report_sweeps(const report_args *a, const char *json,
                         const char *source, sweep_set *ss, tfq_error *e)
{
    int chosen = 0, rc = 0;
    if (ss->n <= 0)
        return tfq_error_set(e, TFQ_EINVAL, "report: the grid has no "
                             "setting combination");
    for (int i = 0; i < ss->n; i++)
        chosen += ss->chosen[i];
    grid_report *gs = calloc((size_t)ss->n, sizeof *gs);
    if (gs == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "report: out of memory");
    if (a->json && chosen > 1)
        printf("{\"sweeps\": [");
    for (int i = 0, done = 0; rc == 0 && i < ss->n; i++) {
        if (!ss->chosen[i])
            continue;
        char dir[REPORT_PATH_BYTES], grid[REPORT_PATH_BYTES];
        char *sub = sweep_select(json, ss->names[i], e);
        snprintf(dir, sizeof dir, "%s/%s", a->dir, ss->names[i]);
        snprintf(grid, sizeof grid, "%s %s", ss->grid, ss->names[i]);
        if (a->json && chosen > 1)
            printf("%s{\"sweep\": \"%s\", \"report\": ", done++ ? ", " : "",
                   ss->names[i]);
        else if (!a->json && !a->csv)
            printf("%ssetting %s\n", i ? "\n" : "", ss->names[i]);
        rc = sub == NULL ? e->code
                         : report_one(a, sub, source, grid,
                                      chosen > 1 ? dir : a->dir,
                                      a->csv && chosen > 1, &gs[i], e);
        if (a->json && chosen > 1)
            printf("}");
        free(sub);
    }
    if (a->json && chosen > 1)
        printf("]}\n");
    if (rc == 0 && chosen > 1)
        rc = write_sweep_tables(ss, gs, a->dir, a->csv || a->json, e);
    if (rc == 0 && a->csv && chosen > 1) {
        char path[REPORT_PATH_BYTES];
        snprintf(path, sizeof path, "%s/table.csv", a->dir);
        char *text = ingest_read_all(path, e);
        if (text != NULL)
            fputs(text, stdout);
        free(text);
    }
    for (int i = 0; i < ss->n; i++)
        grid_report_release(&gs[i]);
    free(gs);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    report_args a;
    int st = parse_args(argc, argv, &a);
    if (st != CLI_OK)
        return st < 0 ? CLI_OK : st;
    tfq_error e = {0};
    char *json = a.from != NULL ? ingest_read_all(a.from, &e)
                                : client_results(a.connect, a.grid, &e);
    const char *source = a.from == NULL              ? "the coordinator's reply"
                         : strcmp(a.from, "-") == 0 ? "standard input"
                                                    : a.from;
    sweep_set ss = {0};
    int rc = json != NULL ? sweep_set_load(&ss, json, a.grid, &e) : e.code;
    if (rc == 0)
        rc = sweep_set_where(&ss, a.where, a.nwhere, &e);
    if (rc == 0 && ss.n == 0)
        rc = report_one(&a, json, source, a.grid, a.dir, 0, NULL, &e);
    else if (rc == 0)
        rc = report_sweeps(&a, json, source, &ss, &e);
    if (rc != 0)
        fprintf(stderr, "tfq report: %s\n", e.msg);
    sweep_set_release(&ss);
    free(json);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}
