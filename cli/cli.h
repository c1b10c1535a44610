/* Shared helpers of the tfq subcommands. */
#ifndef TFQ_CLI_CLI_H
#define TFQ_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/client.h"
#include "common/err.h"

/* Exit statuses: one table for every command (README "Exit codes"). */
enum {
    CLI_OK = 0,       /* done: all of it ok */
    CLI_ERROR = 1,    /* an error: a file, the coordinator, the work */
    CLI_USAGE = 2,    /* a bad command line; nothing was done */
    CLI_FAILED = 3,   /* the jobs waited for finished, some failed or
                         blocked (status --watch, run) */
    CLI_INTERRUPTED = 130, /* stopped by SIGINT or SIGTERM (128 + 2) */
};

/* Each subcommand: argc/argv start at the subcommand name; returns the
 * process exit status.  -h and --help print its usage (cmd_NAME_help) to
 * stdout and return CLI_OK. */
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_coordinator(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_results(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_retry(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_dashboard(int argc, char **argv);

/* The usage of each subcommand, printed by its -h/--help and by tfq help
 * NAME: plain text that starts with "usage: tfq NAME", the same on every
 * run (man pages are made from it). */
void cmd_train_help(FILE *out);
void cmd_bench_help(FILE *out);
void cmd_coordinator_help(FILE *out);
void cmd_worker_help(FILE *out);
void cmd_submit_help(FILE *out);
void cmd_status_help(FILE *out);
void cmd_results_help(FILE *out);
void cmd_cancel_help(FILE *out);
void cmd_retry_help(FILE *out);
void cmd_workers_help(FILE *out);
void cmd_checkpoint_help(FILE *out);
void cmd_run_help(FILE *out);
void cmd_report_help(FILE *out);
void cmd_keygen_help(FILE *out);
void cmd_dashboard_help(FILE *out);

/* The coordinator a client or worker talks to without --connect:
 * TFQ_CONNECT when set and not empty, else CLIENT_DEFAULT_ENDPOINT. */
const char *cli_connect_default(void);

/* The --connect line of every client's usage. */
#define CLI_CONNECT_HELP                                                  \
    "  --connect ADDR      the coordinator (TFQ_CONNECT, else "           \
    CLIENT_DEFAULT_ENDPOINT ")\n"

/* The exit status of a status_reply's counts once nothing is queued or
 * running: CLI_FAILED when a job failed or is blocked, else CLI_OK. */
int cli_outcome(const proto_msg *status_reply);

/* Whether FILE (or the preset of that name, when there is no such file) is
 * a grid file; its grid name, when it is, into name (the file's "name:",
 * else the file's name without its directories and .yaml). */
int cli_grid_source(const char *what, char *name, size_t bytes);

/* Parse a flag's value; on failure print "tfq CMD: --flag: bad value 'x'
 * (expected ...)" and return -1. */
int cli_int(const char *cmd, const char *flag, const char *v, long lo,
            long hi, long *out);
int cli_double(const char *cmd, const char *flag, const char *v, double lo,
               double hi, double *out);
int cli_u64(const char *cmd, const char *flag, const char *v, uint64_t *out);

/* After getopt: -1, printing "tfq CMD: unexpected argument 'x'", when
 * argv holds an operand at optind; else 0. */
int cli_no_more_args(const char *cmd, int argc, char **argv);

/* A duration for people, in its two largest units: "12s", "3m19s",
 * "1h02m", "2d03h" (seconds rounded; a negative one is "0s"). */
#define CLI_DURATION_BYTES 32
void cli_duration(double seconds, char buf[CLI_DURATION_BYTES]);

/* Creates dir and its missing parents, like mkdir -p: 0, or TFQ_EIO (or
 * TFQ_ERANGE for a path over 4095 bytes) naming the directory in e. */
int cli_mkdir_p(const char *dir, tfq_error *e);

#endif
