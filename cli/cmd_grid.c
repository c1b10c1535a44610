/* Commands on grids and their results: results, cancel, retry, workers,
 * and the embedded mode `tfq run`. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/client.h"
#include "report.h"

static const report_column s_result_cols[] = {
    {"job", "$.job"},
    {"grid", "$.grid"},
    {"name", "$.name"},
    {"state", "$.state"},
    {"attempts", "$.attempts"},
    {"final_acc", "$.result.final_acc"},
    {"best_acc", "$.result.best_acc"},
    {"topk_acc", "$.result.topk_acc"},
    {"error", "$.error"},
};

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

int cmd_results(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"csv", no_argument, 0, 'v'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    const char *connect = CLIENT_DEFAULT_ENDPOINT;
    int csv = 0, json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'v': csv = 1; break;
        case 'j': json = 1; break;
        case 'H':
            printf("usage: tfq results [GRID] [--csv | --json] "
                   "[--connect ADDR]\n\n"
                   "Every job of GRID (of all grids when absent): state, "
                   "attempts, accuracy.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "tfq results: expected at most one GRID\n");
        return CLI_USAGE;
    }
    proto_msg m;
    proto_msg_init(&m, PROTO_RESULTS);
    m.grid = optind < argc ? argv[optind] : "";
    client *c = NULL;
    char *items = NULL;
    int status = CLI_FAIL;
    if (ask_pages("results", connect, &m, &items, &c) == 0) {
        tfq_error e = {0};
        if (json) {
            printf("%s\n", items);
            status = CLI_OK;
        } else if (report_print(items, s_result_cols,
                                sizeof s_result_cols / sizeof s_result_cols[0],
                                csv, stdout, &e) == 0) {
            status = CLI_OK;
        } else {
            fprintf(stderr, "tfq results: %s\n", e.msg);
        }
    }
    free(items);
    client_destroy(&c);
    return status;
}

/* cancel and retry: one grid, a count back. */
static int change(const char *cmd, proto_kind kind, int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    const char *connect = CLIENT_DEFAULT_ENDPOINT;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'H':
            printf("usage: tfq %s GRID [--connect ADDR]\n\n%s\n", cmd,
                   kind == PROTO_CANCEL_GRID
                       ? "Cancels every job of GRID that has not finished."
                       : "Queues again every failed, blocked or cancelled "
                         "job of GRID.");
            return CLI_OK;
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
    int status = CLI_FAIL;
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

int cmd_workers(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    static const report_column cols[] = {
        {"worker", "$.worker"}, {"threads", "$.threads"},
        {"running", "$.running"}, {"done", "$.done"},
        {"last_seen_ms", "$.last_seen_ms"},
    };
    const char *connect = CLIENT_DEFAULT_ENDPOINT;
    int json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'j': json = 1; break;
        case 'H':
            printf("usage: tfq workers [--json] [--connect ADDR]\n\n"
                   "The workers the coordinator has seen.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    proto_msg m;
    proto_msg_init(&m, PROTO_WORKERS);
    client *c = NULL;
    char *items = NULL;
    int status = CLI_FAIL;
    tfq_error e = {0};
    if (ask_pages("workers", connect, &m, &items, &c) == 0) {
        if (json)
            printf("%s\n", items);
        if (json || report_print(items, cols, sizeof cols / sizeof cols[0],
                                 0, stdout, &e) == 0)
            status = CLI_OK;
        else
            fprintf(stderr, "tfq workers: %s\n", e.msg);
    }
    free(items);
    client_destroy(&c);
    return status;
}

/* ---- tfq run ------------------------------------------------------------ */

static volatile sig_atomic_t s_stop;

static void on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static pid_t spawn(char *const args[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (log != NULL) {
            FILE *f = freopen(log, "a", stderr);
            (void)f;
        }
        execv("/proc/self/exe", args);
        _exit(127);
    }
    return pid;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"workers", required_argument, 0, 'w'},
        {"state", required_argument, 0, 's'},
        {"data", required_argument, 0, 'd'},
        {"csv", no_argument, 0, 'v'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    long nworkers = 2;
    const char *state = NULL, *data = "/usr/share/datasets/fashion-mnist";
    int csv = 0, json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'w':
            if (cli_int("run", "--workers", optarg, 1, 256, &nworkers))
                return CLI_USAGE;
            break;
        case 's': state = optarg; break;
        case 'd': data = optarg; break;
        case 'v': csv = 1; break;
        case 'j': json = 1; break;
        case 'H':
            printf("usage: tfq run FILE|PRESET [--workers N] [--state DIR] "
                   "[--data DIR] [--csv | --json]\n\n"
                   "Runs a grid file, a built-in grid (quick, paper) or a "
                   "job file on this\nmachine: a coordinator and N workers "
                   "(2), then prints the results and,\nfor a grid, writes "
                   "its report (tfq report) to DIR/report and prints its\n"
                   "table.  The state (database, checkpoints, logs) goes to "
                   "DIR (default: a\nnew directory tfq-run-XXXXXX here) and "
                   "is kept: run again with the same\n--state and only what "
                   "is not done runs.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "tfq run: expected one FILE\n");
        return CLI_USAGE;
    }
    const char *file = argv[optind];
    char dir[4096];
    if (state != NULL) {
        snprintf(dir, sizeof dir, "%s", state);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "tfq run: %s: %s\n", dir, strerror(errno));
            return CLI_FAIL;
        }
    } else {
        snprintf(dir, sizeof dir, "tfq-run-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "tfq run: cannot create a state directory: %s\n",
                    strerror(errno));
            return CLI_FAIL;
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    char endpoint_file[4200], log[4200], ep[256] = "";
    snprintf(endpoint_file, sizeof endpoint_file, "%s/endpoint", dir);
    unlink(endpoint_file);
    snprintf(log, sizeof log, "%s/coordinator.log", dir);
    char *cargs[] = {"tfq", "coordinator", "--state", dir, "--bind",
                     "tcp://127.0.0.1:*", NULL};
    pid_t coord = spawn(cargs, log);
    for (int i = 0; i < 200 && ep[0] == '\0'; i++) {
        FILE *f = fopen(endpoint_file, "r");
        if (f != NULL) {
            if (fgets(ep, sizeof ep, f) == NULL)
                ep[0] = '\0';
            ep[strcspn(ep, "\n")] = '\0';
            fclose(f);
        }
        if (ep[0] == '\0') {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    int status = CLI_FAIL;
    pid_t *workers = calloc((size_t)nworkers, sizeof *workers);
    if (ep[0] == '\0' || workers == NULL) {
        fprintf(stderr, "tfq run: the coordinator did not start (see %s)\n",
                log);
        goto out;
    }
    char grid[PROTO_MAX_NAME_BYTES];
    int is_grid = cli_grid_source(file, grid, sizeof grid);
    char *sargs[] = {"tfq", "submit", (char *)file, "--grid", grid,
                     "--connect", ep, NULL};
    pid_t sub = spawn(sargs, NULL);
    int ws = 0;
    if (waitpid(sub, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        goto out;
    fprintf(stderr, "tfq run: %ld workers, state in %s\n", nworkers, dir);
    for (long i = 0; i < nworkers; i++) {
        char name[64], wlog[4300];
        snprintf(name, sizeof name, "run-%ld", i + 1);
        snprintf(wlog, sizeof wlog, "%s/worker-%ld.log", dir, i + 1);
        char *wargs[] = {"tfq", "worker", "--connect", ep, "--name", name,
                         "--exit-when-idle", "--data", (char *)data, NULL};
        workers[i] = spawn(wargs, wlog);
    }
    long alive = nworkers;
    time_t last = 0;
    while (alive > 0) {
        if (s_stop) {
            for (long i = 0; i < nworkers; i++)
                if (workers[i] > 0)
                    kill(workers[i], SIGTERM);
        }
        pid_t p = waitpid(-1, &ws, WNOHANG);
        for (long i = 0; p > 0 && i < nworkers; i++)
            if (workers[i] == p) {
                workers[i] = 0;
                alive--;
            }
        if (time(NULL) - last >= 5) {
            last = time(NULL);
            char *args[] = {"tfq", "status", "--connect", ep, NULL};
            pid_t st = spawn(args, NULL);
            waitpid(st, NULL, 0);
        }
        if (p <= 0) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
    }
    char *rargs[] = {"tfq", "results", "--connect", ep,
                     json ? "--json" : csv ? "--csv" : NULL, NULL};
    pid_t rp = spawn(rargs, NULL);
    waitpid(rp, &ws, 0);
    status = s_stop ? CLI_INTERRUPTED
                    : (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) ? CLI_OK
                                                              : CLI_FAIL;
    if (status == CLI_OK && is_grid && !json && !csv) {
        /* A grid file: its figures and tables too. */
        char out[4200];
        snprintf(out, sizeof out, "%s/report", dir);
        char *pargs[] = {"tfq", "report", grid, "-o", out, "--connect", ep,
                         NULL};
        pid_t pp = spawn(pargs, NULL);
        waitpid(pp, &ws, 0);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            status = CLI_FAIL;
    }
out:
    free(workers);
    kill(coord, SIGTERM);
    waitpid(coord, NULL, 0);
    return status;
}
