/* tfq checkpoint get JOB -o FILE: a job's latest checkpoint, found with one
 * job_get (by id or by name, at any size of the grids) and downloaded with
 * every check (common/client.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/client.h"

/* Asks for the job JOB names: an id when it is a number, else a name (in
 * grid, or in every grid when NULL). */
static int job_of(client *c, const char *job, const char *grid,
                  proto_msg *r, tfq_error *e)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_JOB_GET);
    char *end;
    long long id = strtoll(job, &end, 10);
    if (job[0] >= '0' && job[0] <= '9' && *end == '\0' && id > 0)
        m.job = id;
    else
        m.name = job;
    m.grid = grid;
    return client_request(c, &m, r, e);
}

void cmd_checkpoint_help(FILE *out)
{
    fputs("usage: tfq checkpoint get JOB -o FILE [--grid GRID] "
          "[--connect ADDR]\n\n"
          "Writes the latest checkpoint of JOB (its id, or its name, "
          "such as\nrandom0/1/A3B+: of GRID when jobs of several "
          "grids have it) to FILE after\nchecking its SHA-256.\n"
          "  -o, --output FILE   where to write it\n"
          "  --grid GRID         the grid of the JOB named\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

int cmd_checkpoint(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"output", required_argument, 0, 'o'},
        {"grid", required_argument, 0, 'g'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *connect = cli_connect_default(), *outp = NULL, *grid = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'o': outp = optarg; break;
        case 'g': grid = optarg; break;
        case 'h': cmd_checkpoint_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 2 || strcmp(argv[optind], "get") != 0 ||
        outp == NULL) {
        fprintf(stderr, "tfq checkpoint: usage: tfq checkpoint get JOB -o "
                "FILE [--grid GRID]\n");
        return CLI_USAGE;
    }
    const char *job = argv[optind + 1];
    tfq_error e = {0};
    proto_msg r;
    int64_t bytes = 0;
    int status = CLI_ERROR;
    client *c = client_new(connect, &e);
    if (c == NULL || job_of(c, job, grid, &r, &e) != 0) {
        fprintf(stderr, "tfq checkpoint: %s\n", e.msg);
    } else if (r.kind != PROTO_JOB_INFO) {
        fprintf(stderr, "tfq checkpoint: job %s: the coordinator answered "
                "%s\n", job, proto_kind_name(r.kind));
    } else if (r.sha256[0] == '\0') {
        fprintf(stderr, "tfq checkpoint: job %s (%s of grid '%s', %s) has no "
                "checkpoint\n", job, r.name, r.grid, r.state);
    } else {
        if (client_ckpt_get_file(c, r.sha256, outp, &bytes, &e) != 0) {
            fprintf(stderr, "tfq checkpoint: %s\n", e.msg);
        } else {
            printf("%s: %lld bytes, sha256 %s\n", outp, (long long)bytes,
                   r.sha256);
            status = CLI_OK;
        }
    }
    client_destroy(&c);
    return status;
}
