/* tfq: one executable, one subcommand per verb. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "worker/engine/conv.h"
#include "worker/engine/kern.h"
#include "worker/job.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    void (*help)(FILE *out);
    const char *summary;
} s_commands[] = {
#define CMD(name, summary) {#name, cmd_##name, cmd_##name##_help, summary}
    CMD(train, "train one network by hand (one job of a grid)"),
    CMD(bench, "measure training speed against OpenBLAS sgemm"),
    CMD(coordinator, "run the queue's daemon"),
    CMD(worker, "run jobs from a coordinator"),
    CMD(submit, "submit a file of jobs"),
    CMD(status, "count the jobs per state (--watch: follow)"),
    CMD(results, "the jobs of a grid and their accuracy"),
    CMD(cancel, "cancel a grid's unfinished jobs"),
    CMD(retry, "queue a grid's failed jobs again"),
    CMD(workers, "the workers the coordinator knows"),
    CMD(checkpoint, "checkpoint get JOB -o FILE"),
    CMD(run, "coordinator and N workers here, then the results"),
    CMD(report, "figures 2 and 3 and the tables of a grid"),
    CMD(keygen, "write a CURVE key pair (NAME.key, NAME.pub)"),
    CMD(dashboard, "serve the queue to a browser (HTTP, read-only)"),
#undef CMD
};

#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: tfq COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(f, "\n'tfq help COMMAND' or 'tfq COMMAND --help' describes a "
               "command's options.\n"
               "\nEvery command takes --curve-key FILE (this end's secret "
               "key) and\n--server-key FILE (the coordinator's public key), "
               "or TFQ_CURVE_KEY and\nTFQ_SERVER_KEY, to speak CURVE "
               "(tfq keygen, README \"Scaling out\").  Clients\nand "
               "workers find the coordinator at --connect ADDR, else "
               "TFQ_CONNECT, else\n" CLIENT_DEFAULT_ENDPOINT ".\n"
               "\nexit status: 0 done, all ok; 1 an error; 2 a bad command "
               "line; 3 finished,\nwith failed or blocked jobs (status "
               "--watch, run); 130 interrupted.\n");
}

/* tfq help [COMMAND]: the usage of COMMAND (the text of its --help), or
 * of tfq. */
static int help(int argc, char **argv)
{
    if (argc == 2) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; argc == 3 && i < NCOMMANDS; i++)
        if (strcmp(argv[2], s_commands[i].name) == 0) {
            s_commands[i].help(stdout);
            return CLI_OK;
        }
    if (argc == 3)
        fprintf(stderr, "tfq help: unknown command '%s' (tfq help lists "
                "them)\n", argv[2]);
    else
        fprintf(stderr, "tfq help: expected at most one COMMAND\n");
    return CLI_USAGE;
}

/* Takes the CURVE options out of argv (any command), into the environment
 * that the coordinator, workers and clients read.  -1 on a missing
 * value. */
static int curve_options(int *argc, char **argv)
{
    static const struct {
        const char *flag, *env;
    } opts[] = {{"--curve-key", "TFQ_CURVE_KEY"},
                {"--server-key", "TFQ_SERVER_KEY"}};
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        int taken = 0;
        for (size_t k = 0; k < 2 && !taken; k++) {
            size_t n = strlen(opts[k].flag);
            if (strncmp(argv[i], opts[k].flag, n) != 0)
                continue;
            if (argv[i][n] == '=') {
                setenv(opts[k].env, argv[i] + n + 1, 1);
                taken = 1;
            } else if (argv[i][n] == '\0') {
                if (i + 1 >= *argc) {
                    fprintf(stderr, "tfq: %s needs a FILE\n", opts[k].flag);
                    return -1;
                }
                setenv(opts[k].env, argv[++i], 1);
                taken = 1;
            }
        }
        if (!taken)
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    if (curve_options(&argc, argv) != 0)
        return CLI_USAGE;
    job_engine_register(); /* the coordinator and submit check jobs with it */
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return help(argc, argv);
    if (strcmp(argv[1], "--version") == 0) {
        printf("tfq %s\n", TFQ_VERSION);
        return CLI_OK;
    }
    /* The commands that train check TFQ_KERNELS and TFQ_CONV_ALGO before
     * anything else. */
    const char *trains[] = {"train", "bench", "worker", "run"};
    for (size_t i = 0; i < sizeof trains / sizeof trains[0]; i++) {
        tfq_error e = {0};
        if (strcmp(argv[1], trains[i]) == 0 &&
            (kern_init(&e) != 0 || conv_check_env(&e) != 0)) {
            fprintf(stderr, "tfq %s: %s\n", argv[1], e.msg);
            return CLI_USAGE;
        }
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tfq: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
