/* Commands on grids and their results: results, cancel, retry, workers.
 * tfq run is cmd_run.c, tfq checkpoint get cmd_checkpoint.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common/client.h"
#include "common/hash.h"
#include "report.h"
#include "report_grid.h"

/* A job's grid coordinates; a job of a job file has none (empty cells). */
#define GRID_COORD_COLS                                                     \
    {"split", "$.split", REPORT_PLAIN},                                     \
    {"similarity", "$.similarity", REPORT_PLAIN},                           \
    {"target", "$.target", REPORT_PLAIN}, {"n", "$.n", REPORT_PLAIN},       \
    {"variant", "$.variant", REPORT_PLAIN},                                 \
    {"finetune", "$.finetune", REPORT_PLAIN},                               \
    {"seed", "$.seed", REPORT_PLAIN}, {"sweep", "$.sweep", REPORT_PLAIN}

/* metric and acc: the grid's metric and the job's value under it
 * (ingest_with_metric), the number tfq report uses.  The table stops at
 * error (RESULT_TABLE_COLS); CSV goes on with the summaries the worker
 * sent (its last, best and mean of its topk best evaluations), which
 * differ from acc only in name where the metric is one of them. */
#define RESULT_TABLE_COLUMNS                                                \
    {"job", "$.job", REPORT_PLAIN}, {"grid", "$.grid", REPORT_PLAIN},       \
    {"name", "$.name", REPORT_PLAIN}, {"state", "$.state", REPORT_PLAIN},   \
    {"attempts", "$.attempts", REPORT_PLAIN}, GRID_COORD_COLS,              \
    {"metric", "$.metric", REPORT_PLAIN}, {"acc", "$.acc", REPORT_PLAIN},   \
    {"error", "$.error", REPORT_PLAIN}
#define RESULT_TABLE_COLS                                                   \
    ((int)(sizeof((report_column[]){RESULT_TABLE_COLUMNS}) /                \
           sizeof(report_column)))
static const report_column s_result_cols[] = {
    RESULT_TABLE_COLUMNS,
    {"final_acc", "$.result.final_acc", REPORT_PLAIN},
    {"best_acc", "$.result.best_acc", REPORT_PLAIN},
    {"topk", "$.result.topk", REPORT_PLAIN},
    {"topk_acc", "$.result.topk_acc", REPORT_PLAIN},
};

/* One row per job, attempt and epoch (report_curve_rows). */
static const report_column s_curve_cols[] = {
    {"job", "$.job", REPORT_PLAIN},
    {"grid", "$.grid", REPORT_PLAIN},
    {"name", "$.name", REPORT_PLAIN},
    GRID_COORD_COLS,
    {"attempt", "$.attempt", REPORT_PLAIN},
    {"epoch", "$.epoch", REPORT_PLAIN},
    {"loss", "$.loss", REPORT_PLAIN},
    {"test_acc", "$.test_acc", REPORT_PLAIN},
    {"images_per_s", "$.images_per_s", REPORT_PLAIN},
};

#define NCOLS(cols) ((int)(sizeof cols / sizeof cols[0]))

/* One request; prints "tfq CMD: message" on failure.  reply stays valid
 * while *c lives. */
static int ask(const char *cmd, const char *connect, const proto_msg *m,
               proto_msg *r, client **c)
{
    tfq_error e = {0};
    *c = client_new(connect, &e);
    if (*c == NULL || client_request(*c, m, r, &e) != 0) {
        fprintf(stderr, "tfq %s: %s\n", cmd, e.msg);
        return -1;
    }
    return 0;
}

/* ask for a paged read: every page, the items joined into *items (the
 * caller frees it). */
static int ask_pages(const char *cmd, const char *connect, const proto_msg *m,
                     char **items, client **c)
{
    tfq_error e = {0};
    proto_msg r;
    *items = NULL;
    *c = client_new(connect, &e);
    if (*c == NULL || client_request_pages(*c, m, &r, items, &e) != 0) {
        fprintf(stderr, "tfq %s: %s\n", cmd, e.msg);
        return -1;
    }
    return 0;
}

void cmd_results_help(FILE *out)
{
    fputs("usage: tfq results [GRID] [--csv | --json] [--connect ADDR]\n"
          "       tfq results [GRID] --curves [--csv | --json] "
          "[--connect ADDR]\n\n"
          "Every job of GRID (of all grids when absent): state, attempts, "
          "its grid\ncoordinates (split, similarity, target, n, variant, "
          "finetune, seed; empty\nfor a job of a job file), and its "
          "accuracy under the grid's metric: metric\nand acc, the number "
          "tfq report uses (empty until the job succeeds).\nCSV and JSON "
          "add the worker's summaries: final_acc, best_acc, topk and\n"
          "topk_acc (the mean of the topk best evaluations).\n"
          "  --curves            every epoch of every attempt instead: job, "
          "grid, name,\n"
          "                      the coordinates, attempt, epoch, loss, "
          "test_acc,\n"
          "                      images_per_s, one row each (CSV unless "
          "--json)\n"
          "  --csv               comma-separated values, a header line "
          "first\n"
          "  --json              the jobs (with --curves: the rows) as one "
          "JSON array\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

/* Prints a paged read's items (results: each job with its metric's value;
 * curves: a row per epoch) as JSON, CSV or a table. */
static int print_results(const char *items, int curves, int csv, int json)
{
    tfq_error e = {0};
    char *rows = curves ? report_curve_rows(items, &e)
                        : ingest_with_metric(items, "the coordinator's "
                                             "results", &e);
    int rc = rows != NULL ? 0 : -1;
    if (rc == 0 && json)
        printf("%s\n", rows);
    else if (rc == 0)
        rc = report_print(rows, curves ? s_curve_cols : s_result_cols,
                          curves ? NCOLS(s_curve_cols)
                          : csv  ? NCOLS(s_result_cols)
                                 : RESULT_TABLE_COLS,
                          csv || curves, stdout, &e);
    free(rows);
    if (rc != 0) {
        fprintf(stderr, "tfq results: %s\n", e.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}

int cmd_results(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"csv", no_argument, 0, 'v'},
        {"json", no_argument, 0, 'j'},
        {"curves", no_argument, 0, 'C'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *connect = cli_connect_default();
    int csv = 0, json = 0, curves = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'v': csv = 1; break;
        case 'j': json = 1; break;
        case 'C': curves = 1; break;
        case 'h': cmd_results_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (csv && json) {
        fprintf(stderr, "tfq results: --csv and --json conflict (one "
                "format)\n");
        return CLI_USAGE;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "tfq results: expected at most one GRID\n");
        return CLI_USAGE;
    }
    proto_msg m;
    proto_msg_init(&m, curves ? PROTO_CURVES : PROTO_RESULTS);
    m.grid = optind < argc ? argv[optind] : "";
    client *c = NULL;
    char *items = NULL;
    int status = CLI_ERROR;
    if (ask_pages("results", connect, &m, &items, &c) == 0)
        status = print_results(items, curves, csv, json);
    free(items);
    client_destroy(&c);
    return status;
}

/* The usage of cancel (kind PROTO_CANCEL_GRID) or retry. */
static void change_help(const char *cmd, proto_kind kind, FILE *out)
{
    fprintf(out, "usage: tfq %s GRID [--connect ADDR]\n\n%s\n"
            CLI_CONNECT_HELP
            "  -h, --help          this text\n", cmd,
            kind == PROTO_CANCEL_GRID
                ? "Cancels every job of GRID that has not finished."
                : "Queues again every failed, blocked or cancelled job of "
                  "GRID.");
}

void cmd_cancel_help(FILE *out)
{
    change_help("cancel", PROTO_CANCEL_GRID, out);
}

void cmd_retry_help(FILE *out)
{
    change_help("retry", PROTO_RETRY, out);
}

/* cancel and retry: one grid, a count back. */
static int change(const char *cmd, proto_kind kind, int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *connect = cli_connect_default();
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'h': change_help(cmd, kind, stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "tfq %s: expected one GRID\n", cmd);
        return CLI_USAGE;
    }
    proto_msg m, r;
    proto_msg_init(&m, kind);
    m.grid = argv[optind];
    client *c = NULL;
    int status = CLI_ERROR;
    if (ask(cmd, connect, &m, &r, &c) == 0) {
        printf("%lld jobs %s\n", (long long)r.count,
               kind == PROTO_CANCEL_GRID ? "cancelled" : "queued again");
        status = CLI_OK;
    }
    client_destroy(&c);
    return status;
}

int cmd_cancel(int argc, char **argv)
{
    return change("cancel", PROTO_CANCEL_GRID, argc, argv);
}

int cmd_retry(int argc, char **argv)
{
    return change("retry", PROTO_RETRY, argc, argv);
}

void cmd_workers_help(FILE *out)
{
    fputs("usage: tfq workers [--json | --csv] [--connect ADDR]\n\n"
          "The workers the coordinator has seen: live (running a job), "
          "then idle (seen\nwithin the liveness window, no job), then "
          "gone (not seen within it, or\nsaid bye), each with when it "
          "was last seen (12s ago).\n"
          "  --json              the workers as one JSON array: worker, "
          "host, threads,\n"
          "                      running, done, state, seen_s_ago "
          "(seconds), last_seen_ms\n"
          "                      (ms since the epoch)\n"
          "  --csv               comma-separated values, a header line "
          "first: worker,\n"
          "                      state,threads,running,done,seen_s_ago,"
          "last_seen_ms\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

/* The workers table: live, idle, gone, then by name. */
#define WORKERS_ORDER                                                     \
    "CASE json_extract(value, '$.state') WHEN 'live' THEN 0 WHEN 'idle' " \
    "THEN 1 ELSE 2 END, json_extract(value, '$.worker')"

int cmd_workers(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},
        {"csv", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static const report_column cols[] = {
        {"worker", "$.worker", REPORT_PLAIN},
        {"state", "$.state", REPORT_PLAIN},
        {"threads", "$.threads", REPORT_PLAIN},
        {"running", "$.running", REPORT_PLAIN},
        {"done", "$.done", REPORT_PLAIN},
        {"seen", "$.seen_s_ago", REPORT_AGO_S},
        {"last_seen", "$.last_seen_ms", REPORT_SINCE_MS},
    };
    const char *connect = cli_connect_default();
    int json = 0, csv = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'j': json = 1; break;
        case 'v': csv = 1; break;
        case 'h': cmd_workers_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (csv && json) {
        fprintf(stderr, "tfq workers: --csv and --json conflict (one "
                "format)\n");
        return CLI_USAGE;
    }
    if (cli_no_more_args("workers", argc, argv) != 0)
        return CLI_USAGE;
    proto_msg m;
    proto_msg_init(&m, PROTO_WORKERS);
    client *c = NULL;
    char *items = NULL;
    int status = CLI_ERROR;
    tfq_error e = {0};
    /* The table leaves out last_seen: seen says it, and by the same clock. */
    int ncols = (int)(sizeof cols / sizeof cols[0]) - (csv ? 0 : 1);
    if (ask_pages("workers", connect, &m, &items, &c) == 0) {
        if (json)
            printf("%s\n", items);
        if (json || report_print_ordered(items, cols, ncols, WORKERS_ORDER,
                                         csv, stdout, &e) == 0)
            status = CLI_OK;
        else
            fprintf(stderr, "tfq workers: %s\n", e.msg);
    }
    free(items);
    client_destroy(&c);
    return status;
}
