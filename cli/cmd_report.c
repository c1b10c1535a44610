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
#include "report_stats.h"
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
                    "point; base nets are variant base, n 0.\n\n", g->grid,
                    g->metric.name, g->runs);
        rc = stats_points_table(g, decimals, none, &t);
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

static const char *const s_outputs[] = {"figure2.svg", "figure3.svg",
                                        "table.md", "table.csv",
                                        "table1.csv"};

static int write_report(const grid_report *g, const figure *f2,
                        const figure *f3, const char *dir, tfq_error *e)
{
    char path[5][REPORT_PATH_BYTES];
    for (int i = 0; i < 5; i++)
        if (snprintf(path[i], REPORT_PATH_BYTES, "%s/%s", dir, s_outputs[i]) >=
            REPORT_PATH_BYTES)
            return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", dir);
    int rc = cli_mkdir_p(dir, e);
    if (rc == 0)
        rc = figure_write_svg(f2, path[0], e);
    if (rc == 0)
        rc = figure_write_svg(f3, path[1], e);
    if (rc == 0)
        rc = write_tables(g, path[2], TABLE_MARKDOWN, 1, 1, e);
    if (rc == 0)
        rc = write_tables(g, path[3], TABLE_CSV, 1, 0, e);
    if (rc == 0)
        rc = write_tables(g, path[4], TABLE_CSV, 0, 1, e);
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
    table t;
    if (stats_points_table(g, 4, "-", &t) == 0)
        table_write(&t, TABLE_TEXT, stdout);
    table_release(&t);
    printf("\nTable 1 (random splits): gain of transfer+ over base and "
           "selffer+\n");
    if (stats_gains_table(g, 4, "-", &t) == 0)
        table_write(&t, TABLE_TEXT, stdout);
    table_release(&t);
    if (g->no_base > 0)
        printf("\nfigure3: %ld run%s left out: no base net of the same split, "
               "target and seed\n", g->no_base, plural(g->no_base));
    printf("\n");
    for (int i = 0; i < 5; i++)
        printf("wrote %s/%s\n", dir, s_outputs[i]);
}

/* ---- the command ---------------------------------------------------------*/

static int build_report(grid_report *g, const char *json, const char *source,
                        const char *grid, const char *metric_opt, figure *f2,
                        figure *f3, tfq_error *e)
{
    int rc = ingest_runs(g, json, source, grid, metric_opt, e);
    if (rc == 0)
        rc = stats_load(g, e);
    if (rc == 0)
        rc = figures_build(g, f2, f3, e);
    return rc;
}

void cmd_report_help(FILE *out)
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
        CLI_CONNECT_HELP
        "  -h, --help          this text\n",
        REPORT_DEFAULT_METRIC);
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"metric", required_argument, 0, 'm'},
        {"from-json", required_argument, 0, 'j'},
        {"connect", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *dir = NULL, *metric_opt = NULL, *from = NULL;
    const char *connect = NULL;
    metric m;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
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
        case 'h': cmd_report_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    const char *grid = optind < argc ? argv[optind] : NULL;
    if (argc - optind > 1 || (grid == NULL) == (from == NULL)) {
        fprintf(stderr, "tfq report: expected one GRID or --from-json FILE "
                "(see tfq report --help)\n");
        return CLI_USAGE;
    }
    if (from != NULL && connect != NULL) {
        fprintf(stderr, "tfq report: --from-json and --connect conflict "
                "(the jobs come from FILE, not a coordinator)\n");
        return CLI_USAGE;
    }
    if (connect == NULL)
        connect = cli_connect_default();
    if (dir == NULL) {
        fprintf(stderr, "tfq report: -o DIR is required (where the figures "
                "and tables go)\n");
        return CLI_USAGE;
    }
    tfq_error e = {0};
    char *json = from != NULL ? ingest_read_all(from, &e)
                              : client_results(connect, grid, &e);
    grid_report g = {0};
    figure f2, f3;
    char title2[REPORT_PATH_BYTES + 64] = "";
    char title3[REPORT_PATH_BYTES + 64] = "";
    char ylabel2[REPORT_NAME_BYTES + 32] = "";
    char ylabel3[REPORT_NAME_BYTES + 48] = "";
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
    return rc == 0 ? CLI_OK : CLI_ERROR;
}
