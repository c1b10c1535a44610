/* tfq: one executable, one subcommand per verb. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} s_commands[] = {
    {"train", cmd_train, "train one network by hand (one job of a grid)"},
    {"bench", cmd_bench, "measure training speed against OpenBLAS sgemm"},
    {"coordinator", cmd_coordinator, "run the queue's daemon"},
    {"worker", cmd_worker, "run jobs from a coordinator"},
    {"submit", cmd_submit, "submit a file of jobs"},
    {"status", cmd_status, "count the jobs per state (--watch: follow)"},
    {"results", cmd_results, "the jobs of a grid and their accuracy"},
    {"cancel", cmd_cancel, "cancel a grid's unfinished jobs"},
    {"retry", cmd_retry, "queue a grid's failed jobs again"},
    {"workers", cmd_workers, "the workers the coordinator knows"},
    {"checkpoint", cmd_checkpoint, "checkpoint get JOB -o FILE"},
    {"run", cmd_run, "coordinator and N workers here, then the results"},
    {"report", cmd_report, "figures 2 and 3 and the tables of a grid"},
};

#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: tfq COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(f, "\n'tfq COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("tfq %s\n", TFQ_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tfq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
