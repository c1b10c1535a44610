#include "jobfile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    char *end = p + strlen(p);
    while (end > p && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return p;
}

/* Names of the jobs each job waits on, until all jobs are known. */
typedef struct {
    char names[JOBFILE_MAX_AFTER][JOBFILE_NAME_BYTES];
    int n;
    int line;
    char init_from[JOBFILE_NAME_BYTES];
    int init_line;
} pending_after;

static int valid_name(const char *n)
{
    if (*n == '\0' || strlen(n) >= JOBFILE_NAME_BYTES)
        return 0;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return 0;
    return 1;
}

/* Finishes the job whose spec lines are in spec (first line first_line). */
static int end_job(jobfile_job *j, pending_after *pa, const char *spec,
                   int first_line, tfq_error *e)
{
    if (j->name[0] == '\0')
        return tfq_error_set(e, TFQ_EINVAL, "line %d: job has no 'name'",
                             first_line);
    tfq_error je = {0};
    if (jobspec_parse(spec, &j->spec, &je) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "job '%s' (from line %d): %s",
                             j->name, first_line, je.msg);
    if (jobspec_format(&j->spec, j->text, sizeof j->text) != 0 ||
        jobspec_identity(&j->spec, j->identity) != 0)
        return tfq_error_set(e, TFQ_ERANGE, "job '%s': spec too long",
                             j->name);
    (void)pa;
    return 0;
}

static int depth_of(jobfile *f, int i, int *state)
{
    /* state: 0 unvisited, 1 in progress, 2 done */
    if (state[i] == 2)
        return f->jobs[i].depth;
    if (state[i] == 1)
        return -1;
    state[i] = 1;
    int d = 0;
    for (int k = 0; k < f->njobs; k++)
        for (int a = 0; a < f->jobs[k].nafter; a++)
            if (f->jobs[k].after[a] == i) {
                int dk = depth_of(f, k, state);
                if (dk < 0)
                    return -1;
                if (dk + 1 > d)
                    d = dk + 1;
            }
    state[i] = 2;
    f->jobs[i].depth = d;
    return d;
}

int jobfile_parse(const char *text, jobfile *f, tfq_error *e)
{
    memset(f, 0, sizeof *f);
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
        char *l = line ? trim(line) : NULL;
        int sep = l == NULL || strcmp(l, "---") == 0;
        if (sep) {
            if (open) {
                if ((rc = end_job(&jobs[n], &pa[n], spec, first_line, e)))
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
            key = trim(raw);
        }
        if (strcmp(key, "name") == 0) {
            char *v = trim(eq + 1);
            if (jobs[n].name[0] || !valid_name(v)) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "name '%.64s' (letters, digits, _ - .)",
                                   lineno, v);
                goto out;
            }
            snprintf(jobs[n].name, sizeof jobs[n].name, "%s", v);
            for (int k = 0; k < n; k++)
                if (strcmp(jobs[k].name, v) == 0) {
                    rc = tfq_error_set(e, TFQ_EINVAL, "line %d: job name "
                                       "'%s' used twice", lineno, v);
                    goto out;
                }
        } else if (strcmp(key, "init_from") == 0) {
            char *v = trim(eq + 1);
            if (pa[n].init_from[0] || !valid_name(v)) {
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: bad or repeated "
                                   "init_from '%.64s'", lineno, v);
                goto out;
            }
            snprintf(pa[n].init_from, JOBFILE_NAME_BYTES, "%s", v);
            pa[n].init_line = lineno;
        } else if (strcmp(key, "after") == 0) {
            char *v = trim(eq + 1), *s2 = NULL;
            pa[n].line = lineno;
            for (char *t = strtok_r(v, ",", &s2); t; t = strtok_r(NULL, ",", &s2)) {
                t = trim(t);
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
        int k;
        for (k = 0; k < n; k++)
            if (strcmp(jobs[k].name, pa[i].init_from) == 0)
                break;
        if (k == n || k == i) {
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
            int k;
            for (k = 0; k < n; k++)
                if (strcmp(jobs[k].name, pa[i].names[a]) == 0)
                    break;
            if (k == n || k == i) {
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
    int *state = calloc((size_t)n, sizeof *state);
    if (state == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "job file: out of memory");
        goto out;
    }
    for (int i = 0; i < n && rc == 0; i++)
        if (depth_of(f, i, state) < 0)
            rc = tfq_error_set(e, TFQ_EINVAL, "job '%s' is part of a cycle "
                               "of 'after' references", f->jobs[i].name);
    free(state);
    /* A transfer job's identity covers its source's (a source has a larger
     * depth, so deepest first resolves every chain). */
    for (int d = n; rc == 0 && d >= 0; d--)
        for (int i = 0; i < n; i++) {
            jobfile_job *j = &f->jobs[i];
            if (j->depth != d || j->init_from < 0)
                continue;
            char both[JOBSPEC_TEXT_BYTES + 2 * HASH_HEX_BYTES];
            snprintf(both, sizeof both, "%s\ninit_from = %s\n", j->text,
                     f->jobs[j->init_from].identity);
            uint8_t digest[HASH_BYTES];
            hash_sha256(both, strlen(both), digest);
            hash_hex(digest, j->identity);
        }
out:
    free(buf);
    free(jobs);
    free(pa);
    free(spec);
    if (rc != 0)
        jobfile_release(f);
    return rc;
}

void jobfile_release(jobfile *f)
{
    free(f->jobs);
    f->jobs = NULL;
    f->njobs = 0;
}
