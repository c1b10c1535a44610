/* tfq run: a grid or job file run on this machine, in three steps: start
 * a coordinator and submit the file to it, wait for N workers to drain
 * the queue, then print the results (and, for a grid, write its report). */
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
#include "common/data_kind.h"
#include "common/proto.h"
#include "common/stop.h"

/* How long to wait for the coordinator's endpoint file: 200 x 50 ms. */
#define ENDPOINT_TRIES 200
#define ENDPOINT_WAIT_NS 50000000L
/* tfq status is printed this often while the workers run. */
#define STATUS_EVERY_S 5

typedef struct {
    long nworkers;
    const char *state, *data, *file;
    int csv, json;
} run_args;

/* One local run: its state directory, coordinator and workers. */
typedef struct {
    char dir[4096];
    char ep[256];     /* the coordinator's endpoint; "" until it is up */
    char log[4200];   /* the coordinator's log */
    pid_t coord;
    pid_t *workers;   /* (nworkers); 0 once exited */
    long nworkers;
    volatile sig_atomic_t *stop;
} local_run;

/* Starts this executable with args, its stderr appended to log unless
 * NULL; returns its pid (or -1 when fork fails). */
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

void cmd_run_help(FILE *out)
{
    fputs("usage: tfq run FILE|PRESET [--workers N] [--state DIR] "
          "[--data DIR]\n"
          "               [--csv | --json]\n\n"
          "Runs a grid file, a built-in grid (quick, paper) or a "
          "job file on this\nmachine: a coordinator and N workers "
          "(2), then prints the results and,\nfor a grid, writes "
          "its report (tfq report) to DIR/report and prints its\n"
          "table.  The state (database, checkpoints, logs) goes to "
          "DIR (default: a\nnew directory tfq-run-XXXXXX here) and "
          "is kept: run again with the same\n--state and only what "
          "is not done runs.  Exit status 3 when jobs failed or\nare "
          "blocked, 0 when every job succeeded.\n"
          "  --workers N         workers to start (2)\n"
          "  --state DIR         the state directory\n"
          "  --data DIR          data set directory for train jobs\n"
          "                      (default " DATA_KIND_DEFAULT_DIR ")\n"
          "  --csv, --json       print the results so (tfq results), no "
          "report\n"
          "  -h, --help          this text\n", out);
}

/* 0: go on; 1: --help was printed; -1: a bad command line. */
static int parse_args(int argc, char **argv, run_args *a)
{
    static const struct option opts[] = {
        {"workers", required_argument, 0, 'w'},
        {"state", required_argument, 0, 's'},
        {"data", required_argument, 0, 'd'},
        {"csv", no_argument, 0, 'v'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'w':
            if (cli_int("run", "--workers", optarg, 1, 256, &a->nworkers))
                return -1;
            break;
        case 's': a->state = optarg; break;
        case 'd': a->data = optarg; break;
        case 'v': a->csv = 1; break;
        case 'j': a->json = 1; break;
        case 'h': cmd_run_help(stdout); return 1;
        default: return -1;
        }
    }
    if (a->csv && a->json) {
        fprintf(stderr, "tfq run: --csv and --json conflict (one format)\n");
        return -1;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "tfq run: expected one FILE\n");
        return -1;
    }
    a->file = argv[optind];
    return 0;
}

/* r->dir: state, created if missing, else a new tfq-run-XXXXXX here. */
static int make_state_dir(local_run *r, const char *state)
{
    if (state != NULL) {
        snprintf(r->dir, sizeof r->dir, "%s", state);
        if (mkdir(r->dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "tfq run: %s: %s\n", r->dir, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(r->dir, sizeof r->dir, "tfq-run-XXXXXX");
    if (mkdtemp(r->dir) == NULL) {
        fprintf(stderr, "tfq run: cannot create a state directory: %s\n",
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Starts the coordinator on a free loopback port and reads its endpoint
 * into r->ep ("" when it did not come up in time). */
static void start_coordinator(local_run *r)
{
    char endpoint_file[4200];
    snprintf(endpoint_file, sizeof endpoint_file, "%s/endpoint", r->dir);
    unlink(endpoint_file);
    snprintf(r->log, sizeof r->log, "%s/coordinator.log", r->dir);
    char *cargs[] = {"tfq", "coordinator", "--state", r->dir, "--bind",
                     "tcp://127.0.0.1:*", NULL};
    r->coord = spawn(cargs, r->log);
    for (int i = 0; i < ENDPOINT_TRIES && r->ep[0] == '\0'; i++) {
        FILE *f = fopen(endpoint_file, "r");
        if (f != NULL) {
            if (fgets(r->ep, sizeof r->ep, f) == NULL)
                r->ep[0] = '\0';
            r->ep[strcspn(r->ep, "\n")] = '\0';
            fclose(f);
        }
        if (r->ep[0] == '\0') {
            struct timespec ts = {0, ENDPOINT_WAIT_NS};
            nanosleep(&ts, NULL);
        }
    }
}

/* Runs args to its end; whether it exited with status 0. */
static int run_child(char *const args[])
{
    int ws = 0;
    pid_t p = spawn(args, NULL);
    return waitpid(p, &ws, 0) >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* Starts the workers; each exits when the queue is drained. */
static void start_workers(local_run *r, const char *data)
{
    fprintf(stderr, "tfq run: %ld workers, state in %s\n", r->nworkers,
            r->dir);
    for (long i = 0; i < r->nworkers; i++) {
        char name[64], wlog[4300];
        snprintf(name, sizeof name, "run-%ld", i + 1);
        snprintf(wlog, sizeof wlog, "%s/worker-%ld.log", r->dir, i + 1);
        char *wargs[] = {"tfq", "worker", "--connect", r->ep, "--name", name,
                         "--exit-when-idle", "--data", (char *)data, NULL};
        r->workers[i] = spawn(wargs, wlog);
    }
}

/* Until every worker has exited, printing tfq status now and then; a stop
 * signal is passed on to the workers. */
static void wait_workers(local_run *r)
{
    long alive = r->nworkers;
    time_t last = 0;
    while (alive > 0) {
        if (*r->stop) {
            for (long i = 0; i < r->nworkers; i++)
                if (r->workers[i] > 0)
                    kill(r->workers[i], SIGTERM);
        }
        int ws;
        pid_t p = waitpid(-1, &ws, WNOHANG);
        for (long i = 0; p > 0 && i < r->nworkers; i++)
            if (r->workers[i] == p) {
                r->workers[i] = 0;
                alive--;
            }
        if (time(NULL) - last >= STATUS_EVERY_S) {
            last = time(NULL);
            char *args[] = {"tfq", "status", "--connect", r->ep, NULL};
            pid_t st = spawn(args, NULL);
            waitpid(st, NULL, 0);
        }
        if (p <= 0) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Once the workers have exited: CLI_OK when every job of grid succeeded
 * (or was cancelled), CLI_FAILED when some failed or are blocked,
 * CLI_ERROR when some did not finish or the coordinator cannot say. */
static int outcome(const local_run *r, const char *grid)
{
    tfq_error e = {0};
    proto_msg m, reply;
    proto_msg_init(&m, PROTO_STATUS);
    m.grid = grid;
    client *c = client_new(r->ep, &e);
    int status = CLI_ERROR;
    if (c == NULL || client_request(c, &m, &reply, &e) != 0)
        fprintf(stderr, "tfq run: %s\n", e.msg);
    else if (reply.queued + reply.running > 0)
        fprintf(stderr, "tfq run: the workers exited with %lld jobs of grid "
                "'%s' unfinished (see %s/worker-*.log)\n",
                (long long)(reply.queued + reply.running), grid, r->dir);
    else
        status = cli_outcome(&reply);
    client_destroy(&c);
    return status;
}

/* Prints the results and, for a grid without --csv or --json, writes its
 * report into DIR/report; the exit status of the run. */
static int report(local_run *r, const run_args *a, char *grid, int is_grid)
{
    char *rargs[] = {"tfq", "results", "--connect", r->ep,
                     a->json ? "--json" : a->csv ? "--csv" : NULL, NULL};
    int ok = run_child(rargs);
    if (*r->stop)
        return CLI_INTERRUPTED;
    if (!ok)
        return CLI_ERROR;
    if (is_grid && !a->json && !a->csv) {
        char out[4200];
        snprintf(out, sizeof out, "%s/report", r->dir);
        char *pargs[] = {"tfq", "report", grid, "-o", out, "--connect",
                         r->ep, NULL};
        if (!run_child(pargs))
            return CLI_ERROR;
    }
    return outcome(r, grid);
}

int cmd_run(int argc, char **argv)
{
    run_args a = {.nworkers = 2, .data = DATA_KIND_DEFAULT_DIR};
    int prc = parse_args(argc, argv, &a);
    if (prc != 0)
        return prc > 0 ? CLI_OK : CLI_USAGE;
    static local_run r;
    r.nworkers = a.nworkers;
    if (make_state_dir(&r, a.state) != 0)
        return CLI_ERROR;
    r.stop = stop_on_signals();
    start_coordinator(&r);
    int status = CLI_ERROR;
    r.workers = calloc((size_t)r.nworkers, sizeof *r.workers);
    if (r.ep[0] == '\0' || r.workers == NULL) {
        fprintf(stderr, "tfq run: the coordinator did not start (see %s)\n",
                r.log);
        goto out;
    }
    char grid[PROTO_MAX_NAME_BYTES];
    int is_grid = cli_grid_source(a.file, grid, sizeof grid);
    char *sargs[] = {"tfq", "submit", (char *)a.file, "--as", grid,
                     "--connect", r.ep, NULL};
    if (!run_child(sargs))
        goto out;
    start_workers(&r, a.data);
    wait_workers(&r);
    status = report(&r, &a, grid, is_grid);
out:
    free(r.workers);
    kill(r.coord, SIGTERM);
    waitpid(r.coord, NULL, 0);
    return status;
}
