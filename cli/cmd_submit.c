/* tfq submit: a job file, a grid file or a preset to the coordinator. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "common/client.h"
#include "common/text.h"
#include "coordinator/gridspec.h"
#include "coordinator/jobfile.h"
#include "submit_base.h"
#include "worker/engine/data.h"

static char *read_file(const char *path, tfq_error *e)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tfq_error_set(e, TFQ_ENOENT, "cannot open it");
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            if (cap >= PROTO_MAX_TEXT_BYTES) {
                tfq_error_set(e, TFQ_ERANGE, "larger than %u bytes",
                              PROTO_MAX_TEXT_BYTES);
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    buf[n] = '\0';
    if (text_check_nul(buf, n, e) != 0) { /* the rest would be lost */
        free(buf);
        return NULL;
    }
    return buf;
}

/* The text of FILE, or of the preset of that name when no such file
 * exists. */
static char *source_text(const char *what, tfq_error *e)
{
    struct stat st;
    if (stat(what, &st) != 0) {
        const char *preset = gridspec_preset(what);
        if (preset != NULL)
            return strdup(preset);
        tfq_error_set(e, TFQ_ENOENT, "no such file, and no preset of that "
                      "name (presets: quick, paper)");
        return NULL;
    }
    return read_file(what, e);
}

/* The file's name without its directories and a .yaml/.yml ending. */
static void base_name(const char *path, char *out, size_t bytes)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, bytes, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
        *dot = '\0';
}

int cli_grid_source(const char *what, char *name, size_t bytes)
{
    tfq_error e = {0};
    char *text = source_text(what, &e);
    int grid = text != NULL && gridspec_is_grid(text);
    gridspec *g = grid ? malloc(sizeof *g) : NULL;
    base_name(what, name, bytes);
    if (g != NULL && gridspec_parse(text, g, &e) == 0 && g->name[0] != '\0')
        snprintf(name, bytes, "%s", g->name);
    free(g);
    free(text);
    return grid;
}

/* Fills g->fingerprint from the data set, unless the file gave it. */
static int fingerprint(gridspec *g, tfq_error *e)
{
    if (g->fingerprint[0] != '\0')
        return 0;
    data_kind kind;
    data_set train = {0}, test = {0};
    data_kind_parse(g->dataset, &kind);
    tfq_error de = {0};
    if (data_load(kind, g->data_path, &train, &test, g->fingerprint, &de) != 0)
        return tfq_error_set(e, de.code, "cannot fingerprint the data set "
                             "(%s); run submit where the data is, or give "
                             "dataset.fingerprint", de.msg);
    data_release(&train);
    data_release(&test);
    return 0;
}

/* The jobs of each setting combination of a swept grid, whose expansion
 * gives each combination's jobs one after the other: "lr=0.01/init=he: 9
 * jobs". */
static void print_sweeps(const jobfile *f, FILE *out)
{
    for (int i = 0, run = 1; i < f->njobs; i++, run++)
        if (f->jobs[i].sweep[0] != '\0' &&
            (i + 1 == f->njobs ||
             strcmp(f->jobs[i + 1].sweep, f->jobs[i].sweep) != 0)) {
            fprintf(out, "sweep %s: %d jobs\n", f->jobs[i].sweep, run);
            run = 0;
        }
}

/* The expanded jobs, one line each, and what each waits on. */
static void print_jobs(const jobfile *f, FILE *out)
{
    int width = 24;
    for (int i = 0; i < f->njobs; i++)
        if ((int)strlen(f->jobs[i].name) > width)
            width = (int)strlen(f->jobs[i].name);
    fprintf(out, "%-*s %-9s %-11s %-4s %-6s %-12s %s\n", width, "job",
            "variant", "classes", "copy", "freeze", "identity", "waits on");
    for (int i = 0; i < f->njobs; i++) {
        const jobfile_job *j = &f->jobs[i];
        char classes[64] = "all";
        size_t off = 0;
        for (int c = 0; c < j->spec.nclasses && off < sizeof classes; c++)
            off += (size_t)snprintf(classes + off, sizeof classes - off,
                                    "%s%d", c ? "," : "", j->spec.classes[c]);
        fprintf(out, "%-*s %-9s %-11s %-4d %-6d %.12s ", width, j->name,
                j->variant[0] ? j->variant : "-", classes,
                j->spec.copy_layers, j->spec.freeze_layers, j->identity);
        for (int a = 0; a < j->nafter; a++)
            fprintf(out, "%s%s", a ? ", " : "", f->jobs[j->after[a]].name);
        fprintf(out, "%s\n", j->nafter ? "" : "-");
    }
    print_sweeps(f, out);
    fprintf(out, "%d jobs\n", f->njobs);
}

/* Parses (and for a grid file expands) text, to check it before sending
 * and to print it with --dry-run; sets the grid's name and fingerprint. */
static int check_source(const char *text, char *grid, size_t grid_bytes,
                        char fp[HASH_HEX_BYTES], int dry_run,
                        submit_base *base, tfq_error *e)
{
    jobfile f = {0};
    fp[0] = '\0';
    if (!gridspec_is_grid(text)) {
        int rc = jobfile_parse(text, &f, e);
        if (rc == 0 && dry_run)
            print_jobs(&f, stdout);
        jobfile_release(&f);
        return rc;
    }
    gridspec *g = malloc(sizeof *g);
    char *jobs = NULL;
    if (g == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    int rc = gridspec_parse(text, g, e);
    if (rc == 0 && g->name[0] != '\0' && grid[0] == '\0')
        snprintf(grid, grid_bytes, "%s", g->name);
    if (rc == 0)
        rc = fingerprint(g, e);
    if (rc == 0)
        rc = submit_base_prepare(g, text, base, e);
    if (rc == 0)
        rc = gridspec_expand(g, &jobs, e);
    if (rc == 0)
        rc = jobfile_parse(jobs, &f, e);
    if (rc == 0 && dry_run) {
        print_jobs(&f, stdout);
        printf("data set %s, fingerprint %.12s; metric %s\n", g->dataset,
               g->fingerprint, g->metric);
    }
    if (rc == 0)
        memcpy(fp, g->fingerprint, HASH_HEX_BYTES);
    jobfile_release(&f);
    free(jobs);
    free(g);
    return rc;
}

void cmd_submit_help(FILE *out)
{
    fputs("usage: tfq submit FILE|PRESET [--as NAME] [--dry-run] [--force] "
          "[--connect ADDR]\n\n"
          "Submits a grid file (YAML, README.md), a built-in grid "
          "(quick, paper) or\na job file (jobs separated by '---' "
          "lines).  The grid is called NAME, else\nthe grid file's "
          "name, else FILE's name.  A grid of that name grows: "
          "its jobs\nalready there are kept.  A job whose identity "
          "matches finished work reuses\nit.\n\n"
          "  --as NAME           the grid's name (--grid NAME: its old, "
          "deprecated name)\n"
          "  --dry-run           print the expanded jobs and what each "
          "waits on; submit\n"
          "                      nothing\n"
          "  --force             run every job of the file again, "
          "finished or not\n"
          CLI_CONNECT_HELP
          "  -h, --help          this text\n", out);
}

int cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"as", required_argument, 0, 'a'},
        {"grid", required_argument, 0, 'g'},
        {"dry-run", no_argument, 0, 'n'},
        {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *connect = cli_connect_default();
    char grid[PROTO_MAX_NAME_BYTES] = "";
    int dry_run = 0, force = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect = optarg; break;
        case 'g':
            fprintf(stderr, "tfq submit: --grid NAME is deprecated: use "
                    "--as NAME\n");
            /* fall through */
        case 'a': snprintf(grid, sizeof grid, "%s", optarg); break;
        case 'n': dry_run = 1; break;
        case 'f': force = 1; break;
        case 'h': cmd_submit_help(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "tfq submit: expected one FILE or PRESET\n");
        return CLI_USAGE;
    }
    const char *path = argv[optind];
    tfq_error e = {0};
    char fp[HASH_HEX_BYTES];
    submit_base base = {0};
    char *text = source_text(path, &e);
    if (text == NULL ||
        check_source(text, grid, sizeof grid, fp, dry_run, &base, &e) != 0) {
        fprintf(stderr, "tfq submit: %s: %s\n", path, e.msg);
        submit_base_release(&base);
        free(text);
        return CLI_ERROR;
    }
    if (dry_run) {
        submit_base_release(&base);
        free(text);
        return CLI_OK;
    }
    if (grid[0] == '\0')
        base_name(path, grid, sizeof grid);
    client *c = client_new(connect, &e);
    int status = CLI_ERROR;
    if (c != NULL && submit_upload_base(c, &base, &e) == 0) {
        proto_msg m, r;
        proto_msg_init(&m, PROTO_SUBMIT);
        m.grid = grid;
        m.spec = base.text ? base.text : text;
        m.force = force;
        memcpy(m.fingerprint, fp, sizeof m.fingerprint);
        if (client_request(c, &m, &r, &e) == 0) {
            printf("grid '%s' (id %lld): %lld jobs added, %lld reused, %lld "
                   "already there\n", grid, (long long)r.grid_id,
                   (long long)r.added, (long long)r.reused,
                   (long long)r.kept);
            status = CLI_OK;
        }
    }
    if (status != CLI_OK)
        fprintf(stderr, "tfq submit: %s: %s\n", path, e.msg);
    client_destroy(&c);
    submit_base_release(&base);
    free(text);
    return status;
}
