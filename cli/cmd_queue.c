/* The queue's commands: tfq coordinator, worker, submit, status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/client.h"
#include "record.h"
#include "report.h"
#include "common/curve.h"
#include "common/data_kind.h"
#include "common/log.h"
#include "common/stop.h"
#include "coordinator/coord.h"
#include "worker/agent.h"
#include "worker/engine/train.h"

#define DEFAULT_BIND "tcp://127.0.0.1:5555"

void cmd_coordinator_help(FILE *out)
{
    fprintf(out,
            "usage: tfq coordinator --state DIR [--bind ADDR]\n\n"
            "Keeps every grid and job in DIR/tfq.db and hands jobs to "
            "workers.\n"
            "  --state DIR        state directory (created if missing)\n"
            "  --bind ADDR        ZeroMQ address (default %s; loopback\n"
            "                     unless told otherwise; port * picks "
            "a free one,\n"
            "                     written to DIR/endpoint)\n"
            "  --heartbeat-ms N   worker heartbeat interval (%d)\n"
            "  --curve-key FILE   this coordinator's secret key (tfq "
            "keygen): serve\n"
            "                     only CURVE peers whose public key "
            "is listed in\n"
            "  --allow-workers FILE  (may take and report jobs) or\n"
            "  --allow-clients FILE  (may submit, cancel, retry); "
            "both may read\n"
            "  --accept-rollback  serve a store that lost commits (see "
            "below) as it is\n"
            "  -h, --help         this text\n\n"
            "At start-up the coordinator takes DIR/tfq.lock (a second "
            "coordinator on DIR\n"
            "is refused, naming the first one's pid), refuses a "
            "corrupt store (PRAGMA\n"
            "quick_check) and one that holds fewer commits than "
            "DIR/tfq.seq says were\n"
            "made (its WAL removed or cut short, tfq.db emptied or "
            "replaced by an older\n"
            "copy): restore what was lost, or give --accept-rollback "
            "to go on with what\n"
            "is left (finished jobs it lost would run again).  What it "
            "creates in DIR is\n"
            "private to its user (umask 077).\n",
            DEFAULT_BIND, COORD_HEARTBEAT_MS);
}

int cmd_coordinator(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, 0, 's'},
        {"bind", required_argument, 0, 'b'},
        {"heartbeat-ms", required_argument, 0, 'm'},
        {"allow-workers", required_argument, 0, 'w'},
        {"allow-clients", required_argument, 0, 'c'},
        {"accept-rollback", no_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    coord_config cfg = {.state_dir = NULL, .bind = DEFAULT_BIND};
    const char *key = getenv("TFQ_CURVE_KEY");
    cfg.curve_key = key != NULL && *key != '\0' ? key : NULL;
    long hb = 0;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 's': cfg.state_dir = optarg; break;
        case 'b': cfg.bind = optarg; break;
        case 'w': cfg.allow_workers = optarg; break;
        case 'c': cfg.allow_clients = optarg; break;
        case 'r': cfg.accept_rollback = 1; break;
        case 'm':
            if (cli_int("coordinator", "--heartbeat-ms", optarg, 10, 600000, &hb))
                return CLI_USAGE;
            cfg.heartbeat_ms = (int)hb;
            break;
        case 'h': cmd_coordinator_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (cli_no_more_args("coordinator", argc, argv) != 0)
        return CLI_USAGE;
    if (cfg.state_dir == NULL) {
        fprintf(stderr, "tfq coordinator: --state DIR is required\n");
        return CLI_USAGE;
    }
    if (cfg.curve_key == NULL && (cfg.allow_workers || cfg.allow_clients)) {
        fprintf(stderr, "tfq coordinator: an allow-list needs --curve-key "
                "FILE (the coordinator's secret key)\n");
        return CLI_USAGE;
    }
    /* The store, its checkpoints and its endpoint are this user's only
     * (0600 files, 0700 directories), whatever umask started us. */
    umask(077);
    tfq_error e = {0};
    coord *c = coord_new(&cfg, &e);
    if (c == NULL) {
        fprintf(stderr, "tfq coordinator: %s\n", e.msg);
        return CLI_ERROR;
    }
    coord_run(c);
    coord_destroy(&c);
    return CLI_OK;
}

void cmd_worker_help(FILE *out)
{
    fputs("usage: tfq worker [--connect ADDR] [OPTIONS]\n\n"
          "Asks the coordinator for jobs and runs them; stateless.\n"
          CLI_CONNECT_HELP
          "  --name NAME         worker name (default host-pid)\n"
          "  --threads N         training threads (1)\n"
          "  --max-jobs N        exit after N jobs\n"
          "  --exit-when-idle    exit when the queue is drained (batch "
          "schedulers)\n"
          "  --data DIR          data set directory for train jobs\n"
          "                      (default " DATA_KIND_DEFAULT_DIR ")\n"
          "  -h, --help          this text\n"
          "SIGTERM/SIGINT: the job in hand is handed back, then the "
          "worker exits (130).\n", out);
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"name", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 't'},
        {"max-jobs", required_argument, 0, 'm'},
        {"exit-when-idle", no_argument, 0, 'x'},
        {"data", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    agent_config cfg = {.connect = cli_connect_default(), .threads = 1,
                        .data_dir = DATA_KIND_DEFAULT_DIR};
    long v;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cfg.connect = optarg; break;
        case 'n': cfg.name = optarg; break;
        case 't':
            if (cli_int("worker", "--threads", optarg, 1, 256, &v))
                return CLI_USAGE;
            cfg.threads = (int)v;
            break;
        case 'm':
            if (cli_int("worker", "--max-jobs", optarg, 1, 1L << 30, &v))
                return CLI_USAGE;
            cfg.max_jobs = (int)v;
            break;
        case 'x': cfg.exit_when_idle = 1; break;
        case 'd': cfg.data_dir = optarg; break;
        case 'h': cmd_worker_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (cli_no_more_args("worker", argc, argv) != 0)
        return CLI_USAGE;
    train_set_threads(cfg.threads);
    volatile sig_atomic_t *stop = stop_on_signals();
    tfq_error e = {0};
    int rc = agent_run(&cfg, stop, &e);
    if (rc == TFQ_EINTR)
        return CLI_INTERRUPTED;
    if (rc != 0) {
        fprintf(stderr, "tfq worker: %s\n", e.msg);
        return CLI_ERROR;
    }
    return CLI_OK;
}


/* The jobs that failed on their own: the reply's failed counts blocked
 * and cancelled jobs too. */
static int64_t failed_only(const proto_msg *r)
{
    return r->failed - r->blocked - r->cancelled;
}

/* How tfq status prints. */
typedef enum { STATUS_TEXT, STATUS_JSON, STATUS_CSV } status_format;

/* One status screen: counts, a progress bar, and the running jobs (items:
 * a JSON array of them; more: there are others it leaves out). */
static void print_status(const proto_msg *r, const char *items, int more,
                         FILE *out)
{
    static const report_column running[] = {
        {"job", "$.job", REPORT_PLAIN},
        {"name", "$.name", REPORT_PLAIN},
        {"worker", "$.worker", REPORT_PLAIN},
        {"attempt", "$.attempt", REPORT_PLAIN},
        {"epoch", "$.epoch", REPORT_PLAIN},
        {"test_acc", "$.test_acc", REPORT_PLAIN},
        {"eta", "$.eta_s", REPORT_SECONDS},
        {"started", "$.started_ms", REPORT_SINCE_MS},
    };
    int64_t total = r->queued + r->running + r->done + r->failed;
    int64_t finished = r->done + r->failed;
    const int width = 40;
    int filled = total > 0 ? (int)(width * finished / total) : width;
    fprintf(out, "[");
    for (int i = 0; i < width; i++)
        fputc(i < filled ? '#' : '.', out);
    fprintf(out, "] %lld/%lld  queued %lld  running %lld  done %lld  "
            "failed %lld  blocked %lld  cancelled %lld\n",
            (long long)finished, (long long)total, (long long)r->queued,
            (long long)r->running, (long long)r->done,
            (long long)failed_only(r), (long long)r->blocked,
            (long long)r->cancelled);
    if (r->lost > 0 || r->failures > 0) /* attempts, not jobs */
        fprintf(out, "attempts: %lld lost (worker gone; run again, not "
                "charged), %lld failed (the job's error)\n",
                (long long)r->lost, (long long)r->failures);
    if (r->running > 0 && items != NULL) {
        tfq_error e = {0};
        report_print(items, running, sizeof running / sizeof running[0], 0,
                     out, &e);
    }
    if (more)
        fprintf(out, "(the first page of the running jobs; tfq status lists "
                "them all)\n");
}

/* The counts, and for JSON the running jobs (items, a JSON array), as
 * one record: a JSON object on one line, or a CSV line of the counts
 * (after a header line when header is set). */
static void print_status_record(const proto_msg *r, const char *items,
                                status_format fmt, int header, FILE *out)
{
    record rec;
    record_init(&rec);
    record_int(&rec, "queued", r->queued);
    record_int(&rec, "running", r->running);
    record_int(&rec, "done", r->done);
    record_int(&rec, "failed", failed_only(r));
    record_int(&rec, "blocked", r->blocked);
    record_int(&rec, "cancelled", r->cancelled);
    record_int(&rec, "total", r->queued + r->running + r->done + r->failed);
    record_int(&rec, "lost_attempts", r->lost);
    record_int(&rec, "failed_attempts", r->failures);
    record_json(&rec, "running_jobs", items != NULL ? items : "[]");
    if (fmt == STATUS_JSON) {
        record_write_json(&rec, out);
        return;
    }
    if (header)
        record_write_csv(&rec, 1, out);
    record_write_csv(&rec, 0, out);
}

void cmd_status_help(FILE *out)
{
    fputs("usage: tfq status [GRID] [--watch] [--json | --csv] "
          "[--connect ADDR]\n\n"
          "Counts of jobs per state, of GRID or of all grids, and the "
          "running jobs:\nqueued, running, done, failed (on their own), "
          "blocked (a job they wait on\nfailed) and cancelled.  The table "
          "shows each running job's eta and start\nas durations (3m19s, "
          "12s ago); --json has them in seconds (eta_s) and\nms since the "
          "epoch (started_ms).\n"
          "  --watch             redraw every second until nothing is "
          "queued or running;\n"
          "                      exit 3 when jobs then failed or are "
          "blocked, else 0\n"
          "  --json              one JSON object: the counts and "
          "running_jobs (with\n"
          "                      --watch: one a line, every second, each "
          "with the first\n"
          "                      page of the running jobs)\n"
          "  --csv               the counts as CSV: a header line "
          "(queued,running,done,\n"
          "                      failed,blocked,cancelled,total,"
          "lost_attempts,\n"
          "                      failed_attempts) and one line (with "
          "--watch: a line\n"
          "                      every second under one header); the "
          "running jobs: --json\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

/* tfq status --watch: a screen (or a JSON or CSV line) a second until
 * nothing is queued or running; the exit status. */
static int watch_status(client *c, const proto_msg *m, status_format fmt)
{
    proto_msg r;
    tfq_error e = {0};
    int tty = fmt == STATUS_TEXT && isatty(STDOUT_FILENO);
    /* The first page only: the screen shows no more, and a big grid's
     * every page would slow each redraw. */
    for (int n = 0; client_request(c, m, &r, &e) == 0; n++) {
        if (tty)
            printf("\033[H\033[J");
        if (fmt == STATUS_TEXT)
            print_status(&r, r.items, r.next != 0, stdout);
        else
            print_status_record(&r, r.items, fmt, n == 0, stdout);
        fflush(stdout);
        if (r.queued == 0 && r.running == 0)
            return cli_outcome(&r);
        sleep(1);
    }
    fprintf(stderr, "tfq status: %s\n", e.msg);
    return CLI_ERROR;
}

int cmd_status(int argc, char **argv)
{
    /* --grid GRID: a hidden alias of the positional GRID, kept for the
     * scripts that used it. */
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"grid", required_argument, 0, 'g'},
        {"json", no_argument, 0, 'j'},
        {"csv", no_argument, 0, 'v'},
        {"watch", no_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *connect = cli_connect_default(), *grid = NULL;
    int json = 0, csv = 0, watch = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'g': grid = optarg; break;
        case 'j': json = 1; break;
        case 'v': csv = 1; break;
        case 'w': watch = 1; break;
        case 'h': cmd_status_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (json && csv) {
        fprintf(stderr, "tfq status: --csv and --json conflict (one "
                "format)\n");
        return CLI_USAGE;
    }
    status_format fmt = json ? STATUS_JSON : csv ? STATUS_CSV : STATUS_TEXT;
    if (argc - optind > 1 || (optind < argc && grid != NULL)) {
        fprintf(stderr, "tfq status: expected at most one GRID\n");
        return CLI_USAGE;
    }
    if (optind < argc)
        grid = argv[optind];
    tfq_error e = {0};
    proto_msg m, r;
    proto_msg_init(&m, PROTO_STATUS);
    m.grid = grid;
    client *c = client_new(connect, &e);
    char *items = NULL;
    int status = CLI_ERROR;
    if (c != NULL && watch) {
        status = watch_status(c, &m, fmt);
    } else if (c != NULL &&
               client_request_pages(c, &m, &r, &items, &e) == 0) {
        if (fmt == STATUS_TEXT)
            print_status(&r, items, 0, stdout);
        else
            print_status_record(&r, items, fmt, 1, stdout);
        status = CLI_OK;
    }
    if (c == NULL || (!watch && status != CLI_OK))
        fprintf(stderr, "tfq status: %s\n", e.msg);
    free(items);
    client_destroy(&c);
    return status;
}

void cmd_keygen_help(FILE *out)
{
    fputs("usage: tfq keygen -o NAME\n\n"
          "Writes a new CURVE key pair: NAME.key, the secret key "
          "(mode 0600; give it\nto the one process it names, with "
          "--curve-key) and NAME.pub, the public\nkey (put it in "
          "the coordinator's allow-list, or give the coordinator's "
          "to\nits peers with --server-key).  Existing files are "
          "never overwritten.\n"
          "  -o, --output NAME   the files' name, without .key and .pub\n"
          "  -h, --help          this text\n", out);
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *prefix = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (o) {
        case 'o': prefix = optarg; break;
        case 'h': cmd_keygen_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (prefix == NULL || optind != argc) {
        fprintf(stderr, "tfq keygen: expected -o NAME\n");
        return CLI_USAGE;
    }
    tfq_error e = {0};
    if (curve_keygen(prefix, &e) != 0) {
        fprintf(stderr, "tfq keygen: %s\n", e.msg);
        return CLI_ERROR;
    }
    printf("wrote %s.key (secret) and %s.pub (public)\n", prefix, prefix);
    return CLI_OK;
}
