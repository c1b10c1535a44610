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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/client.h"
#include "common/data_kind.h"
#include "common/proto.h"

/* How long to wait for the coordinator's endpoint file: 200 x 50 ms. */
#define ENDPOINT_TRIES 200
#define ENDPOINT_WAIT_NS 50000000L
/* tfq status is printed this often while the workers run. */
#define STATUS_EVERY_S 5
/* How long the count taken as a stop begins may hold the stop up. */
#define STOP_ASK_MS 2000
/* How often the waits look at their children and at the signals. */
#define POLL_NS 20000000L

typedef struct {
    long nworkers;
    const char *state, *data, *file;
    int data_given, csv, json, no_dashboard;
} run_args;

/* One local run: its state directory, coordinator and workers.  Every
 * child is in the coordinator's process group, not the terminal's, so
 * that Ctrl-C reaches tfq run alone and run stops them in order. */
typedef struct {
    char dir[4096];
    char ep[256];     /* the coordinator's endpoint; "" until it is up */
    char log[4200];   /* the coordinator's log */
    pid_t coord;      /* also the children's process group; 0 once gone */
    pid_t dash;       /* the dashboard; 0 when none or gone */
    pid_t *workers;   /* (nworkers); 0 once exited */
    long nworkers;
    int stopping;     /* the workers were told to hand back */
    int killed;       /* a second signal: the workers were killed */
    int have_at_stop; /* at_stop holds the grid's counts as the stop began */
    int out_is_data;  /* --csv or --json: progress goes to stderr */
    proto_msg at_stop;
} local_run;

/* SIGINT, SIGTERM and SIGHUP received: the first stops the run in order,
 * a second kills the workers, any later one the coordinator. */
static volatile sig_atomic_t s_signals;

static void on_signal(int sig)
{
    (void)sig;
    s_signals++;
}

/* The children's process group, once the coordinator leads it. */
static volatile pid_t s_group;

static void on_tstp(int sig);

/* Ctrl-Z reaches tfq run alone (the children are not in the terminal's
 * group): it stops the children, then itself, as a shell job stops whole;
 * fg (SIGCONT) starts them again. */
static void catch_tstp(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tstp;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTSTP, &sa, NULL);
}

static void on_tstp(int sig)
{
    (void)sig;
    if (s_group > 0)
        kill(-s_group, SIGSTOP);
    signal(SIGTSTP, SIG_DFL);
    raise(SIGTSTP); /* pending until this returns: then run stops */
}

static void on_cont(int sig)
{
    (void)sig;
    if (s_group > 0)
        kill(-s_group, SIGCONT);
    catch_tstp();
}

/* Installs on_signal, without SA_RESTART (a signal cuts a sleep short),
 * and with the three signals blocked while it runs (it counts); and
 * Ctrl-Z's handlers. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_cont;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCONT, &sa, NULL);
    catch_tstp();
}

static void pause_poll(void)
{
    struct timespec ts = {0, POLL_NS};
    nanosleep(&ts, NULL);
}

/* Starts this executable with args, its stderr appended to log unless
 * NULL (and its stdout sent to stderr when out_to_err), in process group
 * pgid (0: a new group, led by the child).  The child gets SIGTERM should
 * tfq run die before it.  Returns its pid (or -1 when fork fails). */
static pid_t spawn(char *const args[], const char *log, pid_t pgid,
                   int out_to_err)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, pgid);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (log != NULL) {
            FILE *f = freopen(log, "a", stderr);
            (void)f;
        }
        if (out_to_err)
            dup2(STDERR_FILENO, STDOUT_FILENO);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    if (pid > 0)
        setpgid(pid, pgid != 0 ? pgid : pid); /* as the child does: no race */
    return pid;
}

/* Waits for child pid and returns its wait status (-1 when it cannot be
 * waited for).  Once term_at signals have come (0: never) the child gets
 * SIGTERM, once kill_at SIGKILL. */
static int wait_child(pid_t pid, int term_at, int kill_at)
{
    int ws = 0, sent = 0;
    pid_t p;
    while ((p = waitpid(pid, &ws, WNOHANG)) == 0) {
        int sig = s_signals >= kill_at              ? SIGKILL
                  : term_at && s_signals >= term_at ? SIGTERM
                                                    : 0;
        if (sig != 0 && sig != sent)
            kill(pid, sig);
        sent = sig != 0 ? sig : sent;
        pause_poll();
    }
    return p == pid ? ws : -1;
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
          "blocked, 0 when every job succeeded.\n\n"
          "Ctrl-C (SIGINT), SIGTERM or SIGHUP: the workers hand their "
          "jobs back, then\nthe coordinator commits and stops, and run "
          "exits (130) with one line that\nsays how many jobs are done "
          "and the command that goes on.  A second Ctrl-C\nwhile it "
          "stops kills the workers (their jobs run again once their "
          "leases\nexpire, in the run that goes on); a third kills the "
          "coordinator (what it\ncommitted is kept).  Ctrl-Z stops run with its "
          "coordinator and workers; fg\nstarts them again.\n"
          "  --workers N         workers to start (2)\n"
          "  --state DIR         the state directory\n"
          "  --data DIR          data set directory for train jobs\n"
          "                      (default " DATA_KIND_DEFAULT_DIR ")\n"
          "  --csv, --json       print the results so (tfq results), no "
          "report; stdout\n"
          "                      is then the results alone\n"
          "  --no-dashboard      no tfq dashboard (by default one serves "
          "the run on\n"
          "                      a free loopback port; its URL is printed "
          "once)\n"
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
        {"no-dashboard", no_argument, 0, 'D'},
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
        case 'd': a->data = optarg; a->data_given = 1; break;
        case 'v': a->csv = 1; break;
        case 'j': a->json = 1; break;
        case 'D': a->no_dashboard = 1; break;
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

/* Waits for the first line of the file path, which child writes, into
 * buf: until it is there, ENDPOINT_TRIES x ENDPOINT_WAIT_NS have passed, a
 * signal came, or child exited (*child is then 0).  buf "" when none. */
static void await_line(const char *path, pid_t *child, char *buf,
                       size_t bytes)
{
    buf[0] = '\0';
    for (int i = 0; *child != 0 && i < ENDPOINT_TRIES && buf[0] == '\0' &&
                    !s_signals; i++) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            if (fgets(buf, (int)bytes, f) == NULL)
                buf[0] = '\0';
            buf[strcspn(buf, "\n")] = '\0';
            fclose(f);
        }
        if (buf[0] == '\0' && waitpid(*child, NULL, WNOHANG) == *child)
            *child = 0; /* it exited: its log says why */
        if (buf[0] == '\0') {
            struct timespec ts = {0, ENDPOINT_WAIT_NS};
            nanosleep(&ts, NULL);
        }
    }
}

/* Starts the coordinator on a free loopback port, in a process group of
 * its own, and reads its endpoint into r->ep ("" when it did not come up
 * in time or a signal came first). */
static void start_coordinator(local_run *r)
{
    char endpoint_file[4200];
    snprintf(endpoint_file, sizeof endpoint_file, "%s/endpoint", r->dir);
    unlink(endpoint_file);
    snprintf(r->log, sizeof r->log, "%s/coordinator.log", r->dir);
    char *cargs[] = {"tfq", "coordinator", "--state", r->dir, "--bind",
                     "tcp://127.0.0.1:*", NULL};
    pid_t pid = spawn(cargs, r->log, 0, 0);
    r->coord = pid > 0 ? pid : 0;
    await_line(endpoint_file, &r->coord, r->ep, sizeof r->ep);
}

/* Starts tfq dashboard on a free loopback port, in the children's group,
 * and prints its URL once it is written (or why there is none). */
static void start_dashboard(local_run *r)
{
    char url_file[4200], dlog[4200], url[256];
    snprintf(url_file, sizeof url_file, "%s/dashboard.url", r->dir);
    snprintf(dlog, sizeof dlog, "%s/dashboard.log", r->dir);
    unlink(url_file);
    char *dargs[] = {"tfq", "dashboard", "--connect", r->ep, "--listen",
                     "127.0.0.1:0", "--url-file", url_file, NULL};
    pid_t pid = spawn(dargs, dlog, r->coord, 0);
    r->dash = pid > 0 ? pid : 0;
    await_line(url_file, &r->dash, url, sizeof url);
    if (url[0] != '\0')
        fprintf(stderr, "tfq run: dashboard at %s\n", url);
    else if (!s_signals)
        fprintf(stderr, "tfq run: no dashboard (see %s)\n", dlog);
}

/* SIGTERM to the dashboard and the coordinator, which commits and stops,
 * and waits for them (a third signal kills the coordinator).  Nothing for
 * what is gone already. */
static void stop_coordinator(local_run *r)
{
    if (r->dash != 0) {
        kill(r->dash, SIGTERM);
        wait_child(r->dash, 0, 3);
        r->dash = 0;
    }
    if (r->coord == 0)
        return;
    kill(r->coord, SIGTERM);
    wait_child(r->coord, 0, 3);
    r->coord = 0;
}

/* Runs args to its end (a signal meanwhile stops it); whether it exited
 * with status 0.  The output of a progress child (submit, status) goes to
 * stderr when stdout is for --csv or --json. */
static int run_child(const local_run *r, char *const args[], int progress)
{
    pid_t p = spawn(args, NULL, r->coord, progress && r->out_is_data);
    int ws = p > 0 ? wait_child(p, 1, 2) : -1;
    return ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* The coordinator's status of grid into *reply, its numbers only (its
 * strings are cleared), within timeout_ms (0: CLIENT_TIMEOUT_MS); 0, or an
 * error in e. */
static int grid_status(const local_run *r, const char *grid, int timeout_ms,
                       proto_msg *reply, tfq_error *e)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_STATUS);
    m.grid = grid;
    client_opts o = {.endpoint = r->ep, .reply_timeout_ms = timeout_ms};
    client *c = client_open(&o, e);
    int rc = c == NULL ? -1 : client_request(c, &m, reply, e);
    client_destroy(&c);
    reply->grid = reply->items = reply->msg = NULL;
    return rc;
}

/* Starts the workers; each exits when the queue is drained. */
static void start_workers(local_run *r, const char *data)
{
    fprintf(stderr, "tfq run: %ld workers, state in %s\n", r->nworkers,
            r->dir);
    for (long i = 0; i < r->nworkers && !s_signals; i++) {
        char name[64], wlog[4300];
        snprintf(name, sizeof name, "run-%ld", i + 1);
        snprintf(wlog, sizeof wlog, "%s/worker-%ld.log", r->dir, i + 1);
        char *wargs[] = {"tfq", "worker", "--connect", r->ep, "--name", name,
                         "--exit-when-idle", "--data", (char *)data, NULL};
        pid_t pid = spawn(wargs, wlog, r->coord, 0);
        r->workers[i] = pid > 0 ? pid : 0;
    }
}

/* The signals received so far, passed on to the workers: at the first,
 * the grid's counts are kept in r->at_stop and each worker gets SIGTERM
 * (it hands its jobs back and exits); at a second, SIGKILL. */
static void stop_workers(local_run *r, const char *grid)
{
    int sig = 0;
    if (!r->stopping) {
        tfq_error e = {0};
        r->have_at_stop = r->coord != 0 &&
                          grid_status(r, grid, STOP_ASK_MS, &r->at_stop,
                                      &e) == 0;
        r->stopping = 1;
        sig = SIGTERM;
    }
    if (s_signals >= 2 && !r->killed) {
        r->killed = 1;
        sig = SIGKILL;
    }
    for (long i = 0; sig != 0 && i < r->nworkers; i++)
        if (r->workers[i] > 0)
            kill(r->workers[i], sig);
}

/* Until every worker has exited, printing tfq status now and then (not
 * once a signal came: then the workers are stopped, see stop_workers). */
static void wait_workers(local_run *r, const char *grid)
{
    long alive = 0;
    for (long i = 0; i < r->nworkers; i++)
        alive += r->workers[i] > 0;
    time_t last = 0;
    while (alive > 0) {
        if (s_signals)
            stop_workers(r, grid);
        else if (time(NULL) - last >= STATUS_EVERY_S) {
            last = time(NULL);
            char *args[] = {"tfq", "status", "--connect", r->ep, NULL};
            run_child(r, args, 1);
        }
        int ws;
        pid_t p = waitpid(-1, &ws, WNOHANG);
        if (p > 0 && p == r->coord)
            r->coord = 0; /* it died: the workers say why in their logs */
        if (p > 0 && p == r->dash)
            r->dash = 0;
        for (long i = 0; p > 0 && i < r->nworkers; i++)
            if (r->workers[i] == p) {
                r->workers[i] = 0;
                alive--;
            }
        if (p <= 0)
            pause_poll();
    }
}

/* Once the workers have exited: CLI_OK when every job of grid succeeded
 * (or was cancelled), CLI_FAILED when some failed or are blocked,
 * CLI_ERROR when some did not finish or the coordinator cannot say. */
static int outcome(const local_run *r, const char *grid)
{
    tfq_error e = {0};
    proto_msg reply;
    if (grid_status(r, grid, 0, &reply, &e) != 0) {
        fprintf(stderr, "tfq run: %s\n", e.msg);
        return CLI_ERROR;
    }
    if (reply.queued + reply.running > 0) {
        fprintf(stderr, "tfq run: the workers exited with %lld jobs of grid "
                "'%s' unfinished (see %s/worker-*.log)\n",
                (long long)(reply.queued + reply.running), grid, r->dir);
        return CLI_ERROR;
    }
    return cli_outcome(&reply);
}

/* Prints the results and, for a grid without --csv or --json, writes its
 * report into DIR/report; the exit status of the run. */
static int report(local_run *r, const run_args *a, char *grid, int is_grid)
{
    char *rargs[] = {"tfq", "results", "--connect", r->ep,
                     a->json ? "--json" : a->csv ? "--csv" : NULL, NULL};
    if (!run_child(r, rargs, 0))
        return CLI_ERROR;
    if (is_grid && !a->json && !a->csv && !s_signals) {
        char out[4200];
        snprintf(out, sizeof out, "%s/report", r->dir);
        char *pargs[] = {"tfq", "report", grid, "-o", out, "--connect",
                         r->ep, NULL};
        if (!run_child(r, pargs, 0))
            return CLI_ERROR;
    }
    return outcome(r, grid);
}

/* Where grid stands, from n (a status reply after the stop) and r's count
 * at the stop, into where: "12 of 40 jobs done, 2 handed back; ". */
static void where_it_stands(const local_run *r, const proto_msg *n,
                            char *where, size_t bytes)
{
    int64_t own_failures = n->failed - n->blocked - n->cancelled;
    /* Each said when not 0; the handed back whenever they are known. */
    const struct {
        int64_t count;
        int said_at_0;
        const char *what;
    } parts[] = {
        {own_failures, 0, "failed"},
        {n->blocked, 0, "blocked"},
        {n->cancelled, 0, "cancelled"},
        {r->have_at_stop ? n->released - r->at_stop.released : 0,
         r->have_at_stop, "handed back"},
        {n->running, 0, "on killed workers (they run again once their "
                        "leases expire)"},
    };
    size_t len = (size_t)snprintf(
        where, bytes, "%lld of %lld jobs done", (long long)n->done,
        (long long)(n->queued + n->running + n->done + n->failed));
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && len < bytes; i++)
        if (parts[i].count > 0 || parts[i].said_at_0)
            len += (size_t)snprintf(where + len, bytes - len, ", %lld %s",
                                    (long long)parts[i].count, parts[i].what);
    if (len < bytes)
        snprintf(where + len, bytes - len, "; ");
}

/* After a signal, once the workers are gone: stops the coordinator and
 * prints the one line that says where the run stands and how it goes on.
 * Returns CLI_INTERRUPTED. */
static int interrupted(local_run *r, const run_args *a, const char *grid)
{
    tfq_error e = {0};
    proto_msg n;
    int have = r->ep[0] != '\0' && r->coord != 0 &&
               grid_status(r, grid, 0, &n, &e) == 0;
    stop_coordinator(r);
    char where[600] = "";
    if (have)
        where_it_stands(r, &n, where, sizeof where);
    fprintf(stderr, "tfq run: interrupted; %s'tfq run %s --state %s%s%s' "
            "goes on\n", where, a->file, r->dir,
            a->data_given ? " --data " : "", a->data_given ? a->data : "");
    return CLI_INTERRUPTED;
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
    catch_signals();
    char grid[PROTO_MAX_NAME_BYTES];
    int is_grid = cli_grid_source(a.file, grid, sizeof grid);
    r.out_is_data = a.csv || a.json;
    start_coordinator(&r);
    s_group = r.coord;
    int status = CLI_ERROR;
    r.workers = calloc((size_t)r.nworkers, sizeof *r.workers);
    if (r.workers == NULL || (r.ep[0] == '\0' && !s_signals)) {
        fprintf(stderr, "tfq run: the coordinator did not start (see %s)\n",
                r.log);
        goto out;
    }
    if (!a.no_dashboard && !s_signals)
        start_dashboard(&r);
    char *sargs[] = {"tfq", "submit", (char *)a.file, "--as", grid,
                     "--connect", r.ep, NULL};
    if (!s_signals && !run_child(&r, sargs, 1) && !s_signals)
        goto out;
    if (!s_signals) {
        start_workers(&r, a.data);
        wait_workers(&r, grid);
    }
    if (!s_signals)
        status = report(&r, &a, grid, is_grid);
    if (s_signals)
        status = interrupted(&r, &a, grid);
out:
    free(r.workers);
    stop_coordinator(&r);
    return status;
}
