/* Submits: a job file or grid file is parsed (and a grid expanded) in a
 * thread of libuv's pool while the loop goes on serving, then stored as a
 * grid in one transaction of its own and answered. */
#include "coord_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gridspec.h"
#include "jobfile.h"

typedef struct {
    int64_t grid_id;
    int64_t added, reused, kept;
} submit_counts;

/* Adds one job of the file, new to its grid: as succeeded when finished
 * work has its identity (unless force), else to run. */
static int add_job(coord *c, const jobfile_job *j, int64_t grid_id,
                   int64_t init_from, int force, int64_t now, int64_t *id,
                   submit_counts *n, tfq_error *e)
{
    int64_t reuse = 0;
    if (!force && store_reusable(c->st, j->identity, &reuse, e) != 0)
        return e->code;
    store_job sj = {
        .grid_id = grid_id,
        .name = j->name,
        .kind = j->spec.kind == JOBSPEC_SLEEP ? "sleep" : "train",
        .spec = j->text,
        .identity = j->identity,
        .priority = j->depth,
        .max_attempts = j->max_attempts,
        .split = j->split[0] ? j->split : NULL,
        .similarity = j->similarity[0] ? j->similarity : NULL,
        .target = j->target[0] ? j->target : NULL,
        .variant = j->variant[0] ? j->variant : NULL,
        .n = j->n,
        .finetune = j->finetune,
        .seed = (int64_t)j->spec.seed,
        .sweep = j->sweep[0] ? j->sweep : NULL,
        .init_from = init_from,
        .reused_from = reuse,
    };
    int rc = store_job_add(c->st, &sj, id, now, e);
    if (rc == 0)
        (*(reuse ? &n->reused : &n->added))++;
    return rc;
}

/* Adds a parsed job file as grid `name`, or grows the grid of that name,
 * in one transaction.  A job already in the grid is kept as it is (force:
 * run again); one whose identity matches finished work is added as
 * succeeded (force: run); the rest is added to run. */
static int add_grid(coord *c, const char *name, const char *text,
                    const jobfile *f, int force, const char *metric,
                    submit_counts *n, tfq_error *e)
{
    int64_t now = coord_now_ms();
    int64_t *ids = calloc((size_t)f->njobs, sizeof *ids);
    char *fresh = calloc((size_t)f->njobs, 1);
    if (ids == NULL || fresh == NULL) {
        free(ids);
        free(fresh);
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    }
    memset(n, 0, sizeof *n);
    int rc = store_begin(c->st, e);
    int existing = 0;
    if (rc == 0) {
        tfq_error fe = {0};
        rc = store_grid_find(c->st, name, &n->grid_id, &fe);
        existing = rc == 0;
        if (rc == TFQ_ENOENT)
            rc = store_grid_add(c->st, name, text, &n->grid_id, now, e);
        else if (rc != 0)
            *e = fe;
    }
    for (int o = 0; rc == 0 && o < f->njobs; o++) {
        int i = f->order[o]; /* a job's source is added before it */
        const jobfile_job *j = &f->jobs[i];
        char identity[65] = "", state[16] = "";
        if (existing &&
            (rc = store_job_find(c->st, n->grid_id, j->name, &ids[i],
                                 identity, state, e)) != 0)
            break;
        if (ids[i] != 0) {
            if (strcmp(identity, j->identity) != 0) {
                rc = tfq_error_set(e, TFQ_EINVAL, "grid '%s' already has a "
                                   "job '%s' with another configuration; "
                                   "submit it as another grid (--grid)",
                                   name, j->name);
                break;
            }
            int changed = 0;
            if (force &&
                (rc = store_job_reset(c->st, ids[i], now, &changed, e)) != 0)
                break;
            (*(changed ? &n->added : &n->kept))++;
            continue;
        }
        fresh[i] = 1;
        rc = add_job(c, j, n->grid_id,
                     j->init_from >= 0 ? ids[j->init_from] : 0, force, now,
                     &ids[i], n, e);
    }
    for (int i = 0; rc == 0 && i < f->njobs; i++)
        for (int a = 0; fresh[i] && rc == 0 && a < f->jobs[i].nafter; a++)
            rc = store_dep_add(c->st, ids[i], ids[f->jobs[i].after[a]], e);
    if (rc == 0 && metric != NULL)
        rc = store_grid_set_metric(c->st, n->grid_id, metric, e);
    if (rc == 0)
        rc = store_refresh_ready(c->st, now, e);
    if (rc == 0)
        rc = store_commit(c->st, e);
    else
        store_rollback(c->st);
    free(ids);
    free(fresh);
    return rc;
}

/* The job file of a submit: its text, or a grid file's expansion.  Runs in
 * a work thread: it reads only its arguments. */
static int submitted_jobs(const char *spec, const char *fingerprint,
                          jobfile *f, char *metric, tfq_error *e)
{
    memset(f, 0, sizeof *f);
    metric[0] = '\0';
    if (!gridspec_is_grid(spec))
        return jobfile_parse(spec, f, e);
    gridspec *g = malloc(sizeof *g);
    char *text = NULL;
    if (g == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    int rc = gridspec_parse(spec, g, e);
    if (rc == 0 && fingerprint[0] != '\0') {
        if (g->fingerprint[0] != '\0' &&
            strcmp(g->fingerprint, fingerprint) != 0)
            rc = tfq_error_set(e, TFQ_EMISMATCH, "the grid file's data "
                               "fingerprint is not the data set's");
        memcpy(g->fingerprint, fingerprint, sizeof g->fingerprint);
    }
    if (rc == 0)
        rc = gridspec_expand(g, &text, e);
    if (rc == 0)
        rc = jobfile_parse(text, f, e);
    if (rc == 0)
        snprintf(metric, GRID_WORD_BYTES, "%s", g->metric);
    free(text);
    free(g);
    return rc;
}

/* A submit parsed in a work thread.  The request's frame is gone once its
 * handler returns, so it keeps copies of what it needs; the thread fills
 * the results and the loop, in submit_done, stores them and replies. */
typedef struct submit_work {
    uv_work_t req;
    coord *c;
    uint8_t id[256]; /* the peer's routing id */
    size_t id_bytes;
    char *grid, *spec;
    int force;
    char fingerprint[HASH_HEX_BYTES];
    /* results */
    int rc;
    tfq_error e;
    jobfile f;
    char metric[GRID_WORD_BYTES];
} submit_work;


static void submit_parse(uv_work_t *req)
{
    submit_work *w = req->data;
    w->rc = submitted_jobs(w->spec, w->fingerprint, &w->f, w->metric, &w->e);
}

static void submit_free(submit_work *w)
{
    jobfile_release(&w->f);
    free(w->grid);
    free(w->spec);
    free(w);
}

/* Back on the loop: stores the parsed grid in its own transaction and
 * replies once it is committed (or says why not). */
static void submit_done(uv_work_t *req, int status)
{
    submit_work *w = req->data;
    coord *c = w->c;
    for (int i = 0; i < c->nparsing; i++)
        if (c->parsing[i] == w) {
            c->parsing[i] = c->parsing[--c->nparsing];
            break;
        }
    /* coord_read commits its batch before it returns, so none is open
     * here; end one if it were, or add_grid would only be a savepoint of
     * it and the reply would wait for a commit that nothing starts. */
    coord_end_batch(c);
    peer p;
    coord_peer_of(&p, w->id, w->id_bytes, 0);
    submit_counts n = {0};
    int rc = w->rc;
    if (status == UV_ECANCELED)
        rc = tfq_error_set(&w->e, TFQ_EIO, "the coordinator stopped before "
                           "it parsed this submit: nothing was stored");
    else if (rc == 0)
        rc = add_grid(c, w->grid, w->spec, &w->f, w->force,
                      w->metric[0] ? w->metric : NULL, &n, &w->e);
    if (rc != 0) {
        coord_reply_error(c, &p, rc, w->e.msg, PROTO_SUBMIT);
    } else {
        log_info("grid '%s' submitted: %d jobs, %lld added, %lld reused, "
                 "%lld kept", w->grid, w->f.njobs, (long long)n.added,
                 (long long)n.reused, (long long)n.kept);
        proto_msg r;
        proto_msg_init(&r, PROTO_SUBMITTED);
        r.grid_id = n.grid_id;
        r.added = n.added;
        r.reused = n.reused;
        r.kept = n.kept;
        coord_reply(c, &p, &r);
    }
    submit_free(w);
    /* a send may have left input pending (ZMQ_FD signals edges only) */
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        coord_read(c);
}

/* Hands the submit to a work thread (the parse of a large grid takes
 * seconds, and heartbeats and status must not wait for it); at most
 * COORD_MAX_PARSES at once, a submit beyond them answered TFQ_ERANGE. */
void submit_queue(coord *c, const peer *p, const proto_msg *m)
{
    if (c->nparsing >= COORD_MAX_PARSES) {
        char msg[128];
        snprintf(msg, sizeof msg, "the coordinator is busy parsing %d "
                 "submits; try again", c->nparsing);
        coord_reply_error(c, p, TFQ_ERANGE, msg, PROTO_SUBMIT);
        return;
    }
    submit_work *w = calloc(1, sizeof *w);
    if (w != NULL && p->bytes > sizeof w->id) { /* ZeroMQ's are <= 255 */
        coord_reply_error(c, p, TFQ_ERANGE, "routing id too long",
                          PROTO_SUBMIT);
        free(w);
        return;
    }
    if (w != NULL) {
        w->grid = strdup(m->grid);
        w->spec = strdup(m->spec);
    }
    if (w == NULL || w->grid == NULL || w->spec == NULL) {
        coord_reply_error(c, p, TFQ_ENOMEM, "out of memory", PROTO_SUBMIT);
        if (w != NULL)
            submit_free(w);
        return;
    }
    w->c = c;
    memcpy(w->id, p->data, p->bytes);
    w->id_bytes = p->bytes;
    w->force = m->force;
    memcpy(w->fingerprint, m->fingerprint, sizeof w->fingerprint);
    w->req.data = w;
    int rc = uv_queue_work(&c->loop, &w->req, submit_parse, submit_done);
    if (rc != 0) {
        coord_reply_error(c, p, TFQ_EIO, uv_strerror(rc), PROTO_SUBMIT);
        submit_free(w);
        return;
    }
    c->parsing[c->nparsing++] = w;
}


void submit_cancel_all(coord *c)
{
    for (int i = 0; i < c->nparsing; i++)
        uv_cancel((uv_req_t *)&c->parsing[i]->req);
}
