#include "jobfile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* Names of the jobs each job waits on, until all jobs are known. */
typedef struct {
    char names[JOBFILE_MAX_AFTER][JOBFILE_NAME_BYTES];
    int n;
    int line;
    char init_from[JOBFILE_NAME_BYTES];
    int init_line;
    int name_line;
} pending_after;

static int valid_name(const char *n)
{
    if (*n == '\0' || strlen(n) >= JOBFILE_NAME_BYTES)
        return 0;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("_-.+/", *p) == NULL)
            return 0;
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

/* Finishes the job whose spec lines are in spec (first line first_line). */
static int end_job(jobfile_job *j, const char *spec, int first_line,
                   tfq_error *e)
{
    if (j->name[0] == '\0')
        return tfq_error_set(e, TFQ_EINVAL, "line %d: job has no 'name'",
                             first_line);
    tfq_error je = {0};
    if (jobspec_parse(spec, &j->spec, &je) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job '%s' (from line %d): %s",
                             j->name, first_line, je.msg);
    char text[JOBSPEC_TEXT_BYTES];
    if (jobspec_format(&j->spec, text, sizeof text) != 0 ||
        jobspec_identity(&j->spec, j->identity) != 0)
        return tfq_error_set(e, TFQ_ERANGE, "job '%s': spec too long",
                             j->name);
    j->text = strdup(text); /* most are far shorter than the limit */
    if (j->text == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    return 0;
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
 * cycle, or -1 when there is none. */
static int compute_depths(jobfile *f)
{
    int n = f->njobs, done = 0, cycle = -1;
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

int jobfile_parse(const char *text, jobfile *f, tfq_error *e)
{
    memset(f, 0, sizeof *f);
    name_table names = {0};
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    int cap = 16, rc = 0;
    jobfile_job *jobs = calloc((size_t)cap, sizeof *jobs);
    pending_after *pa = calloc((size_t)cap, sizeof *pa);
    char *spec = malloc(JOBSPEC_TEXT_BYTES);
    if (buf == NULL || jobs == NULL || pa == NULL || spec == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
        goto out;
    }
    memcpy(buf, text, len + 1);
    int n = 0, lineno = 0, first_line = 1, open = 0;
    size_t slen = 0;
    spec[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *l = line ? text_trim(line) : NULL;
        int sep = l == NULL || strcmp(l, "---") == 0;
        if (sep) {
            if (open) {
                if ((rc = end_job(&jobs[n], spec, first_line, e)))
                    goto out;
                n++;
                open = 0;
            }
            if (l == NULL)
                break;
            continue;
        }
        if (*l == '\0' || *l == '#')
            continue;
        if (!open) {
            if (n == cap) {
                jobfile_job *nj = realloc(jobs, sizeof *jobs * (size_t)cap * 2);
                pending_after *np = nj ? realloc(pa, sizeof *pa * (size_t)cap * 2) : NULL;
                if (nj) jobs = nj;
                if (np) pa = np;
                if (nj == NULL || np == NULL) {
                    rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
                    goto out;
                }
                memset(jobs + cap, 0, sizeof *jobs * (size_t)cap);
                memset(pa + cap, 0, sizeof *pa * (size_t)cap);
                cap *= 2;
            }
            open = 1;
            jobs[n].n = jobs[n].finetune = -1;
            first_line = lineno;
            slen = 0;
            spec[0] = '\0';
        }
        char *eq = strchr(l, '=');
        char raw[32] = "";
        const char *key = raw;
        if (eq != NULL) {
            size_t kl = (size_t)(eq - l);
            snprintf(raw, sizeof raw, "%.*s", (int)(kl < 31 ? kl : 31), l);
            key = text_trim(raw);
        }
        if (strcmp(key, "name") == 0) {
            char *v = text_trim(eq + 1);
            if (jobs[n].name[0] || !valid_name(v)) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "name '%.64s' (letters, digits, _ - . + /)",
                                   lineno, v);
                goto out;
            }
            snprintf(jobs[n].name, sizeof jobs[n].name, "%s", v);
            pa[n].name_line = lineno;
        } else if (word_field(&jobs[n], key) != NULL) {
            char *v = text_trim(eq + 1), *w = word_field(&jobs[n], key);
            if (*w || !valid_name(v) || strlen(v) >= JOBFILE_WORD_BYTES) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "%s '%.64s'", lineno, key, v);
                goto out;
            }
            snprintf(w, JOBFILE_WORD_BYTES, "%s", v);
        } else if (number_field(&jobs[n], key) != NULL) {
            char *v = text_trim(eq + 1), *end;
            int *x = number_field(&jobs[n], key);
            long val = strtol(v, &end, 10);
            if (*x >= 0 || *v == '\0' || *end != '\0' || val < 0 ||
                val > 1000) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "%s '%.32s' (a number from 0 to 1000)",
                                   lineno, key, v);
                goto out;
            }
            *x = (int)val;
        } else if (strcmp(key, "max_attempts") == 0) {
            char *v = text_trim(eq + 1), *end;
            long x = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || x < 1 || x > 100) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: max_attempts "
                                   "'%.32s' is not a number from 1 to 100",
                                   lineno, v);
                goto out;
            }
            jobs[n].max_attempts = (int)x;
        } else if (strcmp(key, "init_from") == 0) {
            char *v = text_trim(eq + 1);
            if (pa[n].init_from[0] || !valid_name(v)) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "init_from '%.64s'", lineno, v);
                goto out;
            }
            snprintf(pa[n].init_from, JOBFILE_NAME_BYTES, "%s", v);
            pa[n].init_line = lineno;
        } else if (strcmp(key, "after") == 0) {
            char *v = text_trim(eq + 1), *s2 = NULL;
            pa[n].line = lineno;
            for (char *t = strtok_r(v, ",", &s2); t; t = strtok_r(NULL, ",", &s2)) {
                t = text_trim(t);
                if (pa[n].n == JOBFILE_MAX_AFTER || !valid_name(t)) {
                    rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad 'after' "
                                       "list (at most %d names)", lineno,
                                       JOBFILE_MAX_AFTER);
                    goto out;
                }
                snprintf(pa[n].names[pa[n].n++], JOBFILE_NAME_BYTES, "%s", t);
            }
        } else {
            size_t ll = strlen(l);
            if (slen + ll + 2 >= JOBSPEC_TEXT_BYTES) {
                rc = tfq_error_set(e, TFQ_ERANGE, "line %d: job too long",
                                   lineno);
                goto out;
            }
            memcpy(spec + slen, l, ll);
            slen += ll;
            spec[slen++] = '\n';
            spec[slen] = '\0';
        }
    }
    if (n == 0) {
        rc = tfq_error_set(e, TFQ_EINVAL, "job file has no jobs");
        goto out;
    }
    if (table_init(&names, n) != 0) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (table_find(&names, jobs, jobs[i].name, i) >= 0) {
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job name '%s' used "
                               "twice", pa[i].name_line, jobs[i].name);
            goto out;
        }
    for (int i = 0; i < n; i++) {
        jobs[i].init_from = -1;
        if (pa[i].init_from[0] == '\0') {
            if (jobs[i].spec.kind == JOB_TRAIN &&
                jobs[i].spec.copy_layers > 0 && jobs[i].spec.init[0] == '\0') {
                rc = tfq_error_set(e, TFQ_EINVAL, "job '%s': copy = %d needs "
                                   "init_from = <job>", jobs[i].name,
                                   jobs[i].spec.copy_layers);
                goto out;
            }
            continue;
        }
        int k = table_find(&names, jobs, pa[i].init_from, -1);
        if (k < 0 || k == i) {
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job '%s' copies from "
                               "'%s', %s", pa[i].init_line, jobs[i].name,
                               pa[i].init_from,
                               k == i ? "itself" : "which does not exist");
            goto out;
        }
        if (jobs[i].spec.kind != JOB_TRAIN || jobs[k].spec.kind != JOB_TRAIN) {
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: init_from joins two "
                               "train jobs", pa[i].init_line);
            goto out;
        }
        jobs[i].init_from = k;
        int listed = 0;
        for (int a = 0; a < pa[i].n; a++)
            listed |= strcmp(pa[i].names[a], pa[i].init_from) == 0;
        if (!listed && pa[i].n < JOBFILE_MAX_AFTER)
            snprintf(pa[i].names[pa[i].n++], JOBFILE_NAME_BYTES, "%s",
                     pa[i].init_from);
    }
    for (int i = 0; i < n; i++)
        for (int a = 0; a < pa[i].n; a++) {
            int k = table_find(&names, jobs, pa[i].names[a], -1);
            if (k < 0 || k == i) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job '%s' waits "
                                   "on '%s', %s", pa[i].line, jobs[i].name,
                                   pa[i].names[a],
                                   k == i ? "itself" : "which does not exist");
                goto out;
            }
            jobs[i].after[jobs[i].nafter++] = k;
        }
    f->jobs = jobs;
    f->njobs = n;
    jobs = NULL;
    int cycle = compute_depths(f);
    if (cycle == -2)
        rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
    else if (cycle >= 0)
        rc = tfq_error_set(e, TFQ_EINVAL, "job '%s' is on, or waited on by, "
                           "a cycle of 'after' references",
                           f->jobs[cycle].name);
    /* A transfer job's identity covers its source's (a source has a larger
     * depth, so deepest first resolves every chain): a counting sort by
     * depth gives that order in linear time. */
    if (rc == 0) {
        int maxd = 0;
        for (int i = 0; i < n; i++)
            if (f->jobs[i].depth > maxd)
                maxd = f->jobs[i].depth;
        int *start = calloc((size_t)maxd + 2, sizeof *start);
        int *order = calloc((size_t)n, sizeof *order);
        if (start == NULL || order == NULL) {
            rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
            free(order);
        } else {
            for (int i = 0; i < n; i++)
                start[maxd - f->jobs[i].depth + 1]++;
            for (int d = 1; d <= maxd + 1; d++)
                start[d] += start[d - 1];
            for (int i = 0; i < n; i++)
                order[start[maxd - f->jobs[i].depth]++] = i;
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
        }
        free(start);
    }
out:
    free(names.slot);
    free(buf);
    for (int i = 0; jobs != NULL && i < cap; i++)
        free(jobs[i].text);
    free(jobs);
    free(pa);
    free(spec);
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
