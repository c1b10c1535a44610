/* Commands on grids and their results: results, cancel, retry, workers,
 * checkpoint get (tfq run: cmd_run.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "common/hash.h"
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

/* tfq checkpoint get JOB -o FILE: the job's latest checkpoint, verified. */
int cmd_checkpoint(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"output", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0},
    };
    const char *connect = CLIENT_DEFAULT_ENDPOINT, *outp = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'o': outp = optarg; break;
        case 'H':
            printf("usage: tfq checkpoint get JOB -o FILE [--connect ADDR]\n\n"
                   "Writes the latest checkpoint of JOB (its id) to FILE "
                   "after checking its SHA-256.\n");
            return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (argc - optind != 2 || strcmp(argv[optind], "get") != 0 ||
        outp == NULL) {
        fprintf(stderr, "tfq checkpoint: usage: tfq checkpoint get JOB -o "
                "FILE\n");
        return CLI_USAGE;
    }
    const char *job = argv[optind + 1];
    proto_msg m, r;
    proto_msg_init(&m, PROTO_RESULTS);
    m.grid = "";
    /* The one page that starts at the job: the pages go in job id order. */
    char *end;
    long long id = strtoll(job, &end, 10);
    m.after = *end == '\0' && id > 0 ? id - 1 : 0;
    client *c = NULL;
    tfq_error e = {0};
    char sha[HASH_HEX_BYTES] = "";
    int status = CLI_FAIL, direct = 0, made = 0; /* made: tmp is ours */
    char tmp[4096] = "";
    FILE *f = NULL;
    if (ask("checkpoint", connect, &m, &r, &c) != 0)
        goto out;
    if (report_find(r.items, "$.job", job, "$.checkpoint", sha, sizeof sha,
                    &e) != 0) {
        fprintf(stderr, "tfq checkpoint: job %s has no checkpoint (%s)\n",
                job, e.msg);
        goto out;
    }
    /* A new or regular file is written beside it and renamed into place
     * once verified.  Anything else (a device, a pipe) is written into as
     * it is: a rename would replace it with a regular file. */
    struct stat st;
    direct = stat(outp, &st) == 0 && !S_ISREG(st.st_mode);
    snprintf(tmp, sizeof tmp, "%s%s", outp, direct ? "" : ".part");
    f = fopen(tmp, "wb");
    if (f == NULL) {
        fprintf(stderr, "tfq checkpoint: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    made = !direct;
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    int64_t got = 0, total = -1;
    while (total < 0 || got < total) {
        proto_msg_init(&m, PROTO_CKPT_GET);
        memcpy(m.sha256, sha, sizeof m.sha256);
        m.offset = got;
        if (client_request(c, &m, &r, &e) != 0 ||
            r.kind != PROTO_CKPT_CHUNK || r.offset != got ||
            (r.data_bytes == 0 && r.total > got)) {
            fprintf(stderr, "tfq checkpoint: %s\n",
                    e.msg[0] ? e.msg : "bad chunk");
            goto out;
        }
        total = r.total;
        if (fwrite(r.data, 1, r.data_bytes, f) != r.data_bytes) {
            fprintf(stderr, "tfq checkpoint: %s: %s\n", tmp, strerror(errno));
            goto out;
        }
        hash_sha256_update(&h, r.data, r.data_bytes);
        got += (int64_t)r.data_bytes;
    }
    if (fflush(f) != 0 || (!direct && fsync(fileno(f)) != 0)) {
        fprintf(stderr, "tfq checkpoint: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        fprintf(stderr, "tfq checkpoint: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256_final(&h, digest);
    hash_hex(digest, hex);
    if (strcmp(hex, sha) != 0) {
        fprintf(stderr, "tfq checkpoint: %s: %s (it arrived with hash "
                "%.12s, expected %.12s)\n", outp,
                direct ? "what was written is not the checkpoint"
                       : "not written", hex, sha);
        goto out;
    }
    if (!direct && rename(tmp, outp) != 0) {
        fprintf(stderr, "tfq checkpoint: %s: %s\n", outp, strerror(errno));
        goto out;
    }
    printf("%s: %lld bytes, sha256 %s\n", outp, (long long)total, sha);
    status = CLI_OK;
out:
    if (f != NULL)
        fclose(f);
    if (status != CLI_OK && made)
        unlink(tmp);
    client_destroy(&c);
    return status;
}
