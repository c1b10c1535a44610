#include "jobfile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* What a job refers to by name, until all jobs are known, and the lines
 * of the file that said so. */
typedef struct {
    char names[JOBFILE_MAX_AFTER][JOBFILE_NAME_BYTES]; /* after = ... */
    int n;
    int line;
    char init_from[JOBFILE_NAME_BYTES];
    int init_line;
    int name_line;
} pending_refs;

/* The jobs read so far (jobs[0..n), room for cap) and the spec lines of
 * the one being read, each with its line in the file. */
typedef struct {
    jobfile_job *jobs;
    pending_refs *refs;
    int n, cap;
    int open;        /* a job is being read: jobs[n] */
    int first_line;  /* of jobs[n] */
    char *spec;      /* its spec lines, each ending in '\n' */
    size_t slen;
    int *spec_line;  /* the file's line of each */
    int nspec;
} reader;

/* A spec line is at least one character and its '\n'. */
#define SPEC_MAX_LINES (JOBSPEC_TEXT_BYTES / 2)

/* A name: letters, digits and _ - . + / = (a swept grid's names start
 * with its coordinates: lr=0.01/random0/1/A3B). */
static int valid_name(const char *n)
{
    if (*n == '\0' || strlen(n) >= JOBFILE_NAME_BYTES)
        return 0;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("_-.+/=", *p) == NULL)
            return 0;
    return 1;
}

/* A sweep coordinate: KEY=VALUE items joined by '/', a key of letters,
 * digits and _, a value of letters, digits and _ - . + (a setting's
 * canonical text: 0.01, 1e-05, caffe). */
static int valid_sweep(const char *v)
{
    if (*v == '\0' || strlen(v) >= JOBFILE_SWEEP_BYTES)
        return 0;
    for (const char *p = v; *p != '\0'; p += *p == '/') {
        const char *k = p;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p == k || *p++ != '=')
            return 0;
        const char *val = p;
        while (*p != '\0' &&
               (isalnum((unsigned char)*p) || strchr("_-.+", *p) != NULL))
            p++;
        if (p == val || (*p != '/' && *p != '\0') ||
            (*p == '/' && p[1] == '\0'))
            return 0;
    }
    return 1;
}

/* The coordinate keys: words, and numbers from -1 (none) up. */
static char *word_field(jobfile_job *j, const char *key)
{
    return strcmp(key, "split") == 0        ? j->split
           : strcmp(key, "similarity") == 0 ? j->similarity
           : strcmp(key, "target") == 0     ? j->target
           : strcmp(key, "variant") == 0    ? j->variant
                                            : NULL;
}

static int *number_field(jobfile_job *j, const char *key)
{
    return strcmp(key, "n") == 0          ? &j->n
           : strcmp(key, "finetune") == 0 ? &j->finetune
                                          : NULL;
}

/* Finishes jobs[n]: parses its spec lines, naming an error by the line
 * of the file it is on, and gives it its canonical text and identity. */
static int end_job(reader *r, tfq_error *e)
{
    jobfile_job *j = &r->jobs[r->n];
    if (j->name[0] == '\0')
        return tfq_error_set(e, TFQ_EINVAL, "line %d: job has no 'name'",
                             r->first_line);
    jobspec_parser p;
    jobspec_parser_init(&p, &j->spec);
    char *rest = r->spec, *line;
    for (int k = 0; (line = text_next_line(&rest)) != NULL; k++) {
        int rc = jobspec_parser_line(&p, line, e);
        if (rc != 0)
            return tfq_error_wrap(e, rc, "line %d: job '%s'",
                                  r->spec_line[k], j->name);
    }
    tfq_error je = {0};
    if (jobspec_parser_end(&p, &je) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job '%s' (from line %d): %s",
                             j->name, r->first_line, je.msg);
    char text[JOBSPEC_TEXT_BYTES];
    if (jobspec_format(&j->spec, text, sizeof text) != 0 ||
        jobspec_identity(&j->spec, j->identity) != 0)
        return tfq_error_set(e, TFQ_ERANGE, "job '%s': spec too long",
                             j->name);
    j->text = strdup(text); /* most are far shorter than the limit */
    if (j->text == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    r->n++;
    r->open = 0;
    return 0;
}

/* Opens jobs[n] at line lineno, making room for it. */
static int begin_job(reader *r, int lineno, tfq_error *e)
{
    if (r->n == r->cap) {
        size_t cap = (size_t)r->cap * 2;
        jobfile_job *nj = realloc(r->jobs, sizeof *nj * cap);
        if (nj != NULL)
            r->jobs = nj;
        pending_refs *np = nj ? realloc(r->refs, sizeof *np * cap) : NULL;
        if (np != NULL)
            r->refs = np;
        if (nj == NULL || np == NULL)
            return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
        memset(r->jobs + r->cap, 0, sizeof *nj * (size_t)r->cap);
        memset(r->refs + r->cap, 0, sizeof *np * (size_t)r->cap);
        r->cap = (int)cap;
    }
    r->open = 1;
    r->jobs[r->n].n = r->jobs[r->n].finetune = -1;
    r->first_line = lineno;
    r->slen = 0;
    r->spec[0] = '\0';
    r->nspec = 0;
    return 0;
}

/* Keeps l, a line of jobs[n]'s spec, for end_job. */
static int add_spec_line(reader *r, const char *l, int lineno, tfq_error *e)
{
    size_t ll = strlen(l);
    if (r->slen + ll + 2 >= JOBSPEC_TEXT_BYTES)
        return tfq_error_set(e, TFQ_ERANGE, "line %d: job too long", lineno);
    memcpy(r->spec + r->slen, l, ll);
    r->slen += ll;
    r->spec[r->slen++] = '\n';
    r->spec[r->slen] = '\0';
    r->spec_line[r->nspec++] = lineno;
    return 0;
}

/* after = a, b: names of jobs[n]'s dependencies, in v (changed). */
static int read_after(reader *r, char *v, int lineno, tfq_error *e)
{
    pending_refs *pr = &r->refs[r->n];
    char *save = NULL;
    pr->line = lineno;
    for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        t = text_trim(t);
        if (pr->n == JOBFILE_MAX_AFTER || !valid_name(t))
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad 'after' list "
                                 "(at most %d names)", lineno,
                                 JOBFILE_MAX_AFTER);
        snprintf(pr->names[pr->n++], JOBFILE_NAME_BYTES, "%s", t);
    }
    return 0;
}

/* One key of the job file's own, key = v, into jobs[n]; 1 when key is
 * none of them (a spec line). */
static int read_own_key(reader *r, const char *key, char *v, int lineno,
                        tfq_error *e)
{
    jobfile_job *j = &r->jobs[r->n];
    pending_refs *pr = &r->refs[r->n];
    char *w = word_field(j, key), *end;
    int *x = number_field(j, key);
    if (strcmp(key, "name") == 0) {
        if (j->name[0] || !valid_name(v))
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                 "name '%.64s' (letters, digits, _ - . + / =)",
                                 lineno, v);
        snprintf(j->name, sizeof j->name, "%s", v);
        pr->name_line = lineno;
    } else if (w != NULL) {
        if (*w || !valid_name(v) || strlen(v) >= JOBFILE_WORD_BYTES)
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                 "%s '%.64s'", lineno, key, v);
        snprintf(w, JOBFILE_WORD_BYTES, "%s", v);
    } else if (x != NULL) {
        long val = strtol(v, &end, 10);
        if (*x >= 0 || *v == '\0' || *end != '\0' || val < 0 || val > 1000)
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                 "%s '%.32s' (a number from 0 to 1000)",
                                 lineno, key, v);
        *x = (int)val;
    } else if (strcmp(key, "sweep") == 0) {
        if (j->sweep[0] || !valid_sweep(v))
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                 "sweep '%.64s' (KEY=VALUE joined by /)",
                                 lineno, v);
        snprintf(j->sweep, sizeof j->sweep, "%s", v);
    } else if (strcmp(key, "max_attempts") == 0) {
        long val = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || val < 1 || val > 100)
            return tfq_error_set(e, TFQ_EINVAL, "line %d: max_attempts "
                                 "'%.32s' is not a number from 1 to 100",
                                 lineno, v);
        j->max_attempts = (int)val;
    } else if (strcmp(key, "init_from") == 0) {
        if (pr->init_from[0] || !valid_name(v))
            return tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                 "init_from '%.64s'", lineno, v);
        snprintf(pr->init_from, JOBFILE_NAME_BYTES, "%s", v);
        pr->init_line = lineno;
    } else if (strcmp(key, "after") == 0) {
        return read_after(r, v, lineno, e);
    } else {
        return 1;
    }
    return 0;
}

/* One line of the file that is neither blank, a comment nor "---". */
static int read_line(reader *r, char *l, int lineno, tfq_error *e)
{
    int rc;
    if (!r->open && (rc = begin_job(r, lineno, e)) != 0)
        return rc;
    char *eq = strchr(l, '=');
    if (eq != NULL) {
        char raw[32];
        size_t kl = (size_t)(eq - l);
        snprintf(raw, sizeof raw, "%.*s", (int)(kl < 31 ? kl : 31), l);
        rc = read_own_key(r, text_trim(raw), text_trim(eq + 1), lineno, e);
        if (rc <= 0)
            return rc;
    }
    return add_spec_line(r, l, lineno, e);
}

/* Reads the jobs of text, separated by lines of "---", into r; errors
 * name the line of text (every line counts: blank ones, comments). */
static int read_jobs(const char *text, reader *r, tfq_error *e)
{
    char *buf = strdup(text);
    if (buf == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    char *rest = buf;
    int rc = 0;
    for (int lineno = 1; rc == 0; lineno++) {
        char *line = text_next_line(&rest);
        char *l = line ? text_trim(line) : NULL;
        if (l == NULL || strcmp(l, "---") == 0) {
            if (r->open)
                rc = end_job(r, e);
            if (l == NULL)
                break;
        } else if (*l != '\0' && *l != '#') {
            rc = read_line(r, l, lineno, e);
        }
    }
    free(buf);
    return rc;
}

/* Job names to indexes: open addressing over a power-of-two table, so a
 * grid of 100,000 jobs resolves its references in linear time. */
typedef struct {
    int *slot; /* job index + 1, or 0 */
    size_t mask;
} name_table;

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int table_init(name_table *t, int n)
{
    size_t size = 16;
    while (size < (size_t)n * 2)
        size *= 2;
    t->slot = calloc(size, sizeof *t->slot);
    t->mask = size - 1;
    return t->slot != NULL ? 0 : -1;
}

/* The index of name, or -1; with add >= 0 inserts it as that index unless
 * it is there already (then returns the existing index). */
static int table_find(name_table *t, const jobfile_job *jobs,
                      const char *name, int add)
{
    for (size_t i = name_hash(name) & t->mask;; i = (i + 1) & t->mask) {
        int k = t->slot[i] - 1;
        if (k < 0) {
            if (add >= 0)
                t->slot[i] = add + 1;
            return -1;
        }
        if (strcmp(jobs[k].name, name) == 0)
            return k;
    }
}

/* Each job's depth, the longest chain of jobs waiting on it, by peeling
 * the jobs nothing waits on first (Kahn).  Returns the index of a job on a
 * cycle, -1 when there is none, -2 when out of memory. */
static int compute_depths(jobfile *f)
{
    int n = f->njobs, done = 0, cycle = -1;
    if (n < 1)
        return -1;
    int *waiting = calloc((size_t)n, sizeof *waiting); /* jobs waiting on i */
    int *queue = calloc((size_t)n, sizeof *queue);
    if (waiting == NULL || queue == NULL) {
        free(waiting);
        free(queue);
        return -2;
    }
    for (int i = 0; i < n; i++)
        for (int a = 0; a < f->jobs[i].nafter; a++)
            waiting[f->jobs[i].after[a]]++;
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++) {
        f->jobs[i].depth = 0;
        if (waiting[i] == 0)
            queue[tail++] = i;
    }
    while (head < tail) {
        int i = queue[head++];
        done++;
        for (int a = 0; a < f->jobs[i].nafter; a++) {
            int k = f->jobs[i].after[a];
            if (f->jobs[i].depth + 1 > f->jobs[k].depth)
                f->jobs[k].depth = f->jobs[i].depth + 1;
            if (--waiting[k] == 0)
                queue[tail++] = k;
        }
    }
    for (int i = 0; done < n && i < n && cycle < 0; i++)
        if (waiting[i] > 0)
            cycle = i;
    free(waiting);
    free(queue);
    return cycle;
}

/* jobs[i]'s init_from: the index of its source, which it then also waits
 * on (pr->names gains it). */
static int resolve_init_from(jobfile_job *jobs, int i, pending_refs *pr,
                             name_table *names, tfq_error *e)
{
    jobfile_job *j = &jobs[i];
    j->init_from = -1;
    if (pr->init_from[0] == '\0') {
        if (j->spec.kind == JOBSPEC_TRAIN && j->spec.copy_layers > 0 &&
            j->spec.init[0] == '\0')
            return tfq_error_set(e, TFQ_EINVAL, "job '%s': copy = %d needs "
                                 "init_from = <job>", j->name,
                                 j->spec.copy_layers);
        return 0;
    }
    int k = table_find(names, jobs, pr->init_from, -1);
    if (k < 0 || k == i)
        return tfq_error_set(e, TFQ_EINVAL, "line %d: job '%s' copies from "
                             "'%s', %s", pr->init_line, j->name,
                             pr->init_from,
                             k == i ? "itself" : "which does not exist");
    if (j->spec.kind != JOBSPEC_TRAIN || jobs[k].spec.kind != JOBSPEC_TRAIN)
        return tfq_error_set(e, TFQ_EINVAL, "line %d: init_from joins two "
                             "train jobs", pr->init_line);
    j->init_from = k;
    int listed = 0;
    for (int a = 0; a < pr->n; a++)
        listed |= strcmp(pr->names[a], pr->init_from) == 0;
    if (!listed && pr->n < JOBFILE_MAX_AFTER)
        snprintf(pr->names[pr->n++], JOBFILE_NAME_BYTES, "%s", pr->init_from);
    return 0;
}

/* Turns the names the jobs refer to into indexes: each name used once,
 * each init_from and after naming another job of the file. */
static int resolve_names(reader *r, tfq_error *e)
{
    name_table names = {0};
    int rc = 0;
    if (table_init(&names, r->n) != 0)
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    for (int i = 0; i < r->n && rc == 0; i++)
        if (table_find(&names, r->jobs, r->jobs[i].name, i) >= 0)
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job name '%s' used "
                               "twice", r->refs[i].name_line,
                               r->jobs[i].name);
    for (int i = 0; i < r->n && rc == 0; i++)
        rc = resolve_init_from(r->jobs, i, &r->refs[i], &names, e);
    for (int i = 0; i < r->n && rc == 0; i++) {
        pending_refs *pr = &r->refs[i];
        jobfile_job *j = &r->jobs[i];
        for (int a = 0; a < pr->n && rc == 0; a++) {
            int k = table_find(&names, r->jobs, pr->names[a], -1);
            if (k < 0 || k == i)
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job '%s' waits "
                                   "on '%s', %s", pr->line, j->name,
                                   pr->names[a],
                                   k == i ? "itself"
                                          : "which does not exist");
            else
                j->after[j->nafter++] = k;
        }
    }
    free(names.slot);
    return rc;
}

/* f->order: deepest first, by a counting sort on depth (linear time); then
 * each transfer job's identity, which covers its source's (a source is
 * deeper, so this order resolves every chain). */
static int order_and_identify(jobfile *f, tfq_error *e)
{
    int n = f->njobs > 0 ? f->njobs : 0, maxd = 0;
    for (int i = 0; i < n; i++)
        if (f->jobs[i].depth > maxd)
            maxd = f->jobs[i].depth;
    int *start = calloc((size_t)maxd + 2, sizeof *start);
    int *order = calloc(n > 0 ? (size_t)n : 1, sizeof *order);
    if (start == NULL || order == NULL) {
        free(start);
        free(order);
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    }
    for (int i = 0; i < n; i++)
        start[maxd - f->jobs[i].depth + 1]++;
    for (int d = 1; d <= maxd + 1; d++)
        start[d] += start[d - 1];
    for (int i = 0; i < n; i++)
        order[start[maxd - f->jobs[i].depth]++] = i;
    free(start);
    f->order = order;
    for (int o = 0; o < n; o++) {
        jobfile_job *j = &f->jobs[order[o]];
        if (j->init_from < 0)
            continue;
        char both[JOBSPEC_TEXT_BYTES + 2 * HASH_HEX_BYTES];
        snprintf(both, sizeof both, "%s\ninit_from = %s\n", j->text,
                 f->jobs[j->init_from].identity);
        uint8_t digest[HASH_BYTES];
        hash_sha256(both, strlen(both), digest);
        hash_hex(digest, j->identity);
    }
    return 0;
}

/* Depths (no cycle allowed), order and identities of f's jobs. */
static int order_jobs(jobfile *f, tfq_error *e)
{
    int cycle = compute_depths(f);
    if (cycle == -2)
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    if (cycle >= 0)
        return tfq_error_set(e, TFQ_EINVAL, "job '%s' is on, or waited on "
                             "by, a cycle of 'after' references",
                             f->jobs[cycle].name);
    return order_and_identify(f, e);
}

int jobfile_parse(const char *text, jobfile *f, tfq_error *e)
{
    memset(f, 0, sizeof *f);
    reader r = {.cap = 16};
    r.jobs = calloc((size_t)r.cap, sizeof *r.jobs);
    r.refs = calloc((size_t)r.cap, sizeof *r.refs);
    r.spec = malloc(JOBSPEC_TEXT_BYTES);
    r.spec_line = malloc(SPEC_MAX_LINES * sizeof *r.spec_line);
    int rc;
    if (r.jobs == NULL || r.refs == NULL || r.spec == NULL ||
        r.spec_line == NULL)
        rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    else if ((rc = read_jobs(text, &r, e)) == 0 && r.n == 0)
        rc = tfq_error_set(e, TFQ_EINVAL, "job file has no jobs");
    if (rc == 0)
        rc = resolve_names(&r, e);
    if (rc == 0) {
        f->jobs = r.jobs;
        f->njobs = r.n;
        r.jobs = NULL;
        rc = order_jobs(f, e);
    }
    for (int i = 0; r.jobs != NULL && i < r.cap; i++)
        free(r.jobs[i].text);
    free(r.jobs);
    free(r.refs);
    free(r.spec);
    free(r.spec_line);
    if (rc != 0)
        jobfile_release(f);
    return rc;
}

void jobfile_release(jobfile *f)
{
    for (int i = 0; f->jobs != NULL && i < f->njobs; i++)
        free(f->jobs[i].text);
    free(f->jobs);
    free(f->order);
    f->jobs = NULL;
    f->order = NULL;
    f->njobs = 0;
}
