/* Shared helpers of the tfq subcommands. */
#ifndef TFQ_CLI_CLI_H
#define TFQ_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Each subcommand: argc/argv start at the subcommand name; returns the
 * process exit status. */
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

/* Creates dir and its missing parents, like mkdir -p: 0, or TFQ_EIO (or
 * TFQ_ERANGE for a path over 4095 bytes) naming the directory in e. */
int cli_mkdir_p(const char *dir, tfq_error *e);

/* Exit statuses. */
#define CLI_OK 0
#define CLI_FAIL 1        /* the work failed */
#define CLI_USAGE 2       /* bad command line */
#define CLI_INTERRUPTED 130

#endif
