/* tfq checkpoint get JOB -o FILE: a job's latest checkpoint, found with one
 * job_get (by id or by name, at any size of the grids) and downloaded with
 * every check (common/client.h).  tfq checkpoint export: its weights as
 * safetensors or .npz (weights.h); tfq checkpoint import: a safetensors
 * file as a tfq checkpoint. */
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/client.h"
#include "report_grid.h"
#include "weights.h"

typedef struct {
    const char *connect, *out, *grid, *file, *net, *input;
    int classes;
} ckpt_args;

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
    int rc = client_request(c, &m, r, e);
    if (rc == 0 && r->kind != PROTO_JOB_INFO)
        rc = tfq_error_set(e, TFQ_EFORMAT, "job %s: the coordinator answered "
                           "%s", job, proto_kind_name(r->kind));
    if (rc == 0 && r->sha256[0] == '\0')
        rc = tfq_error_set(e, TFQ_ENOENT, "job %s (%s of grid '%s', %s) has "
                           "no checkpoint", job, r->name, r->grid, r->state);
    return rc;
}

void cmd_checkpoint_help(FILE *out)
{
    fputs("usage: tfq checkpoint get JOB -o FILE [--grid GRID] "
          "[--connect ADDR]\n"
          "       tfq checkpoint export JOB|--file CKPT -o FILE [--grid GRID] "
          "[--connect ADDR]\n"
          "       tfq checkpoint import FILE -o OUT.ckpt [--net SPEC] "
          "[--input CxHxW]\n"
          "       tfq checkpoint import FILE -o OUT.ckpt [--classes K]\n\n"
          "get writes the latest checkpoint of JOB (its id, or its name, "
          "such as\nrandom0/1/A3B+: of GRID when jobs of several "
          "grids have it) to FILE after\nchecking its SHA-256.\n\n"
          "export writes JOB's (or the checkpoint file CKPT's) weights in "
          "PyTorch's\nlayouts, float32: conv<g>.weight (out, in, k, k), "
          "fc<g>.weight (out, in),\n<layer>.bias (out), g the learned "
          "layer's number (conv1 .. conv5, fc6 ..\nfc8 for the reference "
          "net), as safetensors or a numpy .npz after FILE's\nsuffix; the "
          "metadata holds the net, input, classes, normalisation, data\n"
          "fingerprint, metric and (from the queue) the job's grid "
          "coordinates.\n\n"
          "import makes a tfq checkpoint of a safetensors file with those "
          "names and\nshapes, to copy layers from (tfq train --init, a "
          "grid's base:).  --net,\n--input and --classes default to the "
          "file's metadata.\n\n"
          "  -o, --output FILE   where to write it\n"
          "  --grid GRID         the grid of the JOB named\n"
          "  --file CKPT         export this checkpoint file (no "
          "coordinator)\n"
          "  --net SPEC          import: the net (a preset or operations)\n"
          "  --input CxHxW       import: the input shape (e.g. 1x28x28)\n"
          "  --classes K         import: the classes of the last layer\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

static int cmd_get(const ckpt_args *a, const char *job)
{
    tfq_error e = {0};
    proto_msg r;
    int64_t bytes = 0;
    int status = CLI_ERROR;
    client *c = client_new(a->connect, &e);
    if (c == NULL || job_of(c, job, a->grid, &r, &e) != 0 ||
        client_ckpt_get_file(c, r.sha256, a->out, &bytes, &e) != 0) {
        fprintf(stderr, "tfq checkpoint: %s\n", e.msg);
    } else {
        printf("%s: %lld bytes, sha256 %s\n", a->out, (long long)bytes,
               r.sha256);
        status = CLI_OK;
    }
    client_destroy(&c);
    return status;
}

/* The job's row of `jobs` (grid coordinates, metric and its value) into
 * w's metadata. */
static int put_coordinates(client *c, int64_t job, const char *grid,
                           weights_set *w, tfq_error *e)
{
    static const char *const keys[] = {"name", "grid", "split", "similarity",
                                       "target", "n", "variant", "finetune",
                                       "seed", "metric", "acc", NULL};
    char query[64];
    snprintf(query, sizeof query, "{\"job\": %lld}", (long long)job);
    proto_msg m, r;
    proto_msg_init(&m, PROTO_JOBS);
    m.grid = grid;
    m.query = query;
    int rc = client_request(c, &m, &r, e);
    char *items = rc == 0 ? ingest_with_metric(r.items ? r.items : "[]",
                                               "the jobs reply", e)
                          : NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (items == NULL || sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT json_extract(?1, '$[0].' || ?2)", -1,
                           &st, NULL) != SQLITE_OK)
        rc = rc ? rc : tfq_error_set(e, TFQ_EIO, "reading job %lld's "
                                     "coordinates failed", (long long)job);
    for (int i = 0; rc == 0 && keys[i] != NULL; i++) {
        sqlite3_bind_text(st, 1, items, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, keys[i], -1, SQLITE_STATIC);
        char v[64] = "";
        if (sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_type(st, 0) == SQLITE_FLOAT)
            snprintf(v, sizeof v, "%.9g", sqlite3_column_double(st, 0));
        else if (sqlite3_column_type(st, 0) != SQLITE_NULL)
            snprintf(v, sizeof v, "%s", sqlite3_column_text(st, 0));
        sqlite3_reset(st);
        if (v[0] != '\0')
            rc = weights_meta_put(w, strcmp(keys[i], "acc") ? keys[i]
                                                             : "metric_value",
                                  v, e);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(items);
    return rc;
}

/* JOB's checkpoint from the queue, with its coordinates, into w. */
static int export_job(const ckpt_args *a, const char *job, weights_set *w,
                      tfq_error *e)
{
    proto_msg r;
    uint8_t *buf = NULL;
    size_t bytes = 0;
    client *c = client_new(a->connect, e);
    int rc = c ? job_of(c, job, a->grid, &r, e) : e->code;
    char grid[PROTO_MAX_NAME_BYTES] = "";
    int64_t id = rc == 0 ? r.job : 0;
    if (rc == 0) {
        snprintf(grid, sizeof grid, "%s", r.grid ? r.grid : "");
        char sha[HASH_HEX_BYTES];
        memcpy(sha, r.sha256, sizeof sha);
        rc = client_ckpt_get_mem(c, sha, 0, &buf, &bytes, e);
    }
    ckpt *ck = rc == 0 ? ckpt_decode(buf, bytes, "the job's checkpoint", e)
                       : NULL;
    if (rc == 0 && ck == NULL)
        rc = e->code;
    if (rc == 0)
        rc = weights_from_ckpt(ck, w, e);
    if (rc == 0) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)id);
        rc = weights_meta_put(w, "job", v, e);
    }
    if (rc == 0 && grid[0] != '\0')
        rc = put_coordinates(c, id, grid, w, e);
    ckpt_destroy(&ck);
    free(buf);
    client_destroy(&c);
    return rc;
}

static int cmd_export(const ckpt_args *a, const char *job)
{
    tfq_error e = {0};
    weights_set *w = calloc(1, sizeof *w);
    int rc = w == NULL ? tfq_error_set(&e, TFQ_ENOMEM, "out of memory")
                       : weights_check_path(a->out, &e);
    if (rc == 0 && a->file != NULL) {
        ckpt *ck = ckpt_read(a->file, &e);
        rc = ck ? weights_from_ckpt(ck, w, &e) : e.code;
        ckpt_destroy(&ck);
    } else if (rc == 0) {
        rc = export_job(a, job, w, &e);
    }
    if (rc == 0)
        rc = weights_write(w, a->out, &e);
    if (rc == 0)
        printf("%s: %d tensors\n", a->out, w->ntensors);
    else
        fprintf(stderr, "tfq checkpoint export: %s\n", e.msg);
    if (w != NULL)
        weights_release(w);
    free(w);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}

/* The net, input and classes of an import: the flags, else the file's
 * metadata. */
static int import_target(const ckpt_args *a, const weights_set *w,
                         netspec *spec, netspec_shape *in, int *classes,
                         tfq_error *e)
{
    const char *text = a->net ? a->net : weights_meta_get(w, "net");
    const char *input = a->input ? a->input : weights_meta_get(w, "input");
    const char *k = weights_meta_get(w, "classes");
    *classes = a->classes > 0 ? a->classes : k ? atoi(k) : 0;
    tfq_error ne = {0};
    const char *missing = text == NULL    ? "net"
                          : input == NULL ? "input"
                                          : "classes";
    if (text == NULL || input == NULL || *classes < 2)
        return tfq_error_set(e, TFQ_EINVAL, "the file's metadata does not "
                             "give the %s: give --%s", missing, missing);
    if (netspec_resolve(text, 1.0, spec, &ne) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "net: %s", ne.msg);
    if (weights_parse_shape(input, in) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "input '%.40s' is not CxHxW",
                             input);
    return 0;
}

static int cmd_import(const ckpt_args *a, const char *path)
{
    tfq_error e = {0};
    weights_set *w = calloc(1, sizeof *w);
    netspec spec;
    netspec_shape in;
    int classes = 0;
    uint8_t *buf = NULL;
    size_t bytes = 0;
    int rc = w ? weights_read(path, w, &e)
               : tfq_error_set(&e, TFQ_ENOMEM, "out of memory");
    if (rc == 0)
        rc = import_target(a, w, &spec, &in, &classes, &e);
    if (rc == 0)
        rc = weights_to_ckpt(w, &spec, in, classes, &buf, &bytes, &e);
    if (rc == 0)
        rc = ckpt_file_write(a->out, buf, bytes, &e);
    if (rc == 0) {
        uint8_t digest[HASH_BYTES];
        char hex[HASH_HEX_BYTES];
        hash_sha256(buf, bytes, digest);
        hash_hex(digest, hex);
        printf("%s: %zu bytes, sha256 %s, %d tensors\n", a->out, bytes, hex,
               w->ntensors);
    } else {
        fprintf(stderr, "tfq checkpoint import: %s%s%s\n",
                strstr(e.msg, path) ? "" : path,
                strstr(e.msg, path) ? "" : ": ", e.msg);
    }
    free(buf);
    if (w != NULL)
        weights_release(w);
    free(w);
    return rc == 0 ? CLI_OK : CLI_ERROR;
}

static int usage(const char *why)
{
    fprintf(stderr, "tfq checkpoint: %s (tfq checkpoint --help)\n", why);
    return CLI_USAGE;
}

int cmd_checkpoint(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"output", required_argument, 0, 'o'},
        {"grid", required_argument, 0, 'g'},
        {"file", required_argument, 0, 'f'},
        {"net", required_argument, 0, 'n'},
        {"input", required_argument, 0, 'i'},
        {"classes", required_argument, 0, 'k'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    ckpt_args a = {.connect = cli_connect_default()};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': a.connect = optarg; break;
        case 'o': a.out = optarg; break;
        case 'g': a.grid = optarg; break;
        case 'f': a.file = optarg; break;
        case 'n': a.net = optarg; break;
        case 'i': a.input = optarg; break;
        case 'k':
            a.classes = atoi(optarg);
            if (a.classes < 2 || a.classes > 1 << 20)
                return usage("--classes: expected a number from 2");
            break;
        case 'h': cmd_checkpoint_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    int nargs = argc - optind;
    const char *verb = nargs > 0 ? argv[optind] : "";
    if (a.out == NULL)
        return usage("-o FILE is needed");
    if (strcmp(verb, "get") == 0 && nargs == 2)
        return cmd_get(&a, argv[optind + 1]);
    if (strcmp(verb, "export") == 0 &&
        nargs == (a.file != NULL ? 1 : 2))
        return cmd_export(&a, a.file ? NULL : argv[optind + 1]);
    if (strcmp(verb, "import") == 0 && nargs == 2)
        return cmd_import(&a, argv[optind + 1]);
    return usage("expected get JOB, export JOB (or export --file CKPT) or "
                 "import FILE");
}
