/* The handlers of the messages workers and clients send, and the one table
 * that says, for each kind, who may send it and what answers it. */
#include "coord_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* A worker told "no job" asks again after this long. */
#define COORD_RETRY_MS 200

/* A worker unseen for this many of its "ready" intervals is gone, even
 * when the liveness window (heartbeat_ms x liveness) is shorter: an idle
 * worker is heard only when it asks again, every COORD_RETRY_MS. */
#define COORD_IDLE_LIVENESS COORD_LIVENESS

/* Leases one worker (one routing id) may hold at once: what a worker
 * asks for at most, so that one peer cannot take the whole queue. */
#define COORD_MAX_HELD STORE_MAX_LEASE

static void on_hello(coord *c, const peer *p, const proto_msg *m)
{
    tfq_error e = {0};
    if (store_worker_seen(c->st, p->name, m->worker, 0, m->threads,
                          coord_now_ms(), &e) != 0)
        log_error("worker %s: %s", p->name, e.msg);
    log_info("worker %s (%s, %d threads) joined", p->name, m->worker,
             m->threads);
    proto_msg r;
    proto_msg_init(&r, PROTO_WELCOME);
    r.heartbeat_ms = c->cfg.heartbeat_ms;
    coord_reply(c, p, &r);
}

/* Leases up to m->max jobs (at least 1, at most COORD_MAX_LEASE) and
 * answers with one "job" per job, each saying how many more follow, or
 * with "no_job". */
static void on_ready(coord *c, const peer *p, const proto_msg *m)
{
    store_leased l[COORD_MAX_LEASE];
    char tokens[COORD_MAX_LEASE][HASH_HEX_BYTES];
    char holders[COORD_MAX_LEASE][HASH_HEX_BYTES];
    const char *hp[COORD_MAX_LEASE];
    int want = m->max < 1 ? 1 : m->max > COORD_MAX_LEASE ? COORD_MAX_LEASE
                                                           : m->max;
    int n = 0, held = 0;
    tfq_error e = {0};
    proto_msg r;
    if (store_held(c->st, p->name, &held, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_READY);
        return;
    }
    if (held >= COORD_MAX_HELD) {
        char msg[PROTO_MAX_NAME_BYTES + 128];
        snprintf(msg, sizeof msg, "worker %s already holds %d leases, the "
                 "most one worker may hold: finish or release some first",
                 p->name, held);
        coord_reply_error(c, p, TFQ_ERANGE, msg, PROTO_READY);
        return;
    }
    if (want > COORD_MAX_HELD - held)
        want = COORD_MAX_HELD - held;
    if (lease_tokens(tokens, want) != 0) {
        coord_reply_error(c, p, TFQ_EIO, "no random bytes for lease tokens",
                          PROTO_READY);
        return;
    }
    for (int i = 0; i < want; i++) {
        lease_holder(p, tokens[i], holders[i]);
        hp[i] = holders[i];
    }
    if (store_lease_many(c->st, p->name, hp, coord_now_ms(), want, l, &n,
                         &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_READY);
        return;
    }
    if (n == 0) {
        proto_msg_init(&r, PROTO_NO_JOB);
        r.retry_ms = COORD_RETRY_MS;
        coord_reply(c, p, &r);
        return;
    }
    for (int i = 0; i < n; i++) {
        proto_msg_init(&r, PROTO_JOB);
        r.job = l[i].job_id;
        r.attempt = l[i].attempt;
        r.spec = l[i].spec;
        r.more = n - 1 - i;
        memcpy(r.lease, tokens[i], sizeof r.lease);
        if (l[i].resume_sha256[0])
            memcpy(r.sha256, l[i].resume_sha256, sizeof r.sha256);
        if (l[i].init_sha256[0])
            memcpy(r.init, l[i].init_sha256, sizeof r.init);
        log_debug("job %lld (%s) attempt %d -> %s", (long long)l[i].job_id,
                  l[i].name, l[i].attempt, p->name);
        coord_reply(c, p, &r);
        store_leased_release(&l[i]);
    }
}

/* Heartbeat and progress: ack a live attempt, cancel a stale one. */
static void on_alive(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!lease_holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    int rc = store_heartbeat(c->st, m->job, m->attempt, holder,
                             coord_now_ms(), &e);
    if (rc == 0 && m->kind == PROTO_PROGRESS)
        rc = store_metric_add(c->st, m->job, m->attempt, holder, m->epoch,
                              m->loss, m->test_acc, m->images_per_s, m->eta_s,
                              &e);
    if (rc == TFQ_EMISMATCH) {
        proto_msg r;
        proto_msg_init(&r, PROTO_CANCEL);
        r.job = m->job;
        r.attempt = m->attempt;
        coord_reply(c, p, &r);
        return;
    }
    if (rc != 0) {
        lease_refuse(c, p, m, rc, e.msg);
        return;
    }
    coord_reply_kind(c, p, PROTO_ACK);
}


static void on_result(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!lease_holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    int rc = m->kind == PROTO_RESULT
                 ? store_finish(c->st, m->job, m->attempt, holder, m->ok,
                                m->result, m->error, coord_now_ms(), &e)
                 : store_release(c->st, m->job, m->attempt, holder,
                                 coord_now_ms(), &e);
    if (rc != 0) {
        if (rc == TFQ_EMISMATCH && m->kind == PROTO_RESULT)
            c->stats.results_stale++;
        if (rc != TFQ_EPERM)
            log_warn("%s of job %lld attempt %d from %s refused: %s",
                     proto_kind_name(m->kind), (long long)m->job, m->attempt,
                     p->name, e.msg);
        lease_refuse(c, p, m, rc, e.msg);
        return;
    }
    uploads_drop_attempt(c, m->job, m->attempt);
    tfq_log(m->kind == PROTO_RESULT && m->ok ? TFQ_LOG_DEBUG : TFQ_LOG_INFO,
            "job %lld attempt %d %s (%s)%s%s", (long long)m->job, m->attempt,
            m->kind == PROTO_RELEASE ? "handed back"
            : m->ok                  ? "succeeded"
                                     : "failed",
            p->name, m->error ? ": " : "", m->error ? m->error : "");
    coord_reply_kind(c, p, PROTO_ACK);
}


int64_t handlers_gone_after_ms(const coord *c)
{
    int64_t live = (int64_t)c->cfg.heartbeat_ms * c->cfg.liveness;
    int64_t idle = (int64_t)COORD_RETRY_MS * COORD_IDLE_LIVENESS;
    return live > idle ? live : idle;
}

/* The JSON of one page of a report (status, results, curves,
 * workers): the limit
 * of its "items" field; a frame may be a MiB larger, room for the rest. */
#define COORD_PAGE_BYTES PROTO_MAX_ITEMS_BYTES

/* status, results, curves and workers each answer one page, the rows after
 * m->after; the counts of a status reply are the whole grid's. */
static void on_status(coord *c, const peer *p, const proto_msg *m)
{
    store_counts n;
    tfq_error e = {0};
    int64_t grid_id = 0;
    if ((m->grid != NULL && store_grid_find(c->st, m->grid, &grid_id, &e)) ||
        store_counts_get(c->st, grid_id, &n, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_STATUS);
        return;
    }
    char *running = NULL;
    int64_t next = 0;
    if (store_running_json(c->st, grid_id, m->after, COORD_PAGE_BYTES,
                           &running, &next, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_STATUS);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_STATUS_REPLY);
    r.grid = m->grid;
    r.queued = n.pending + n.ready;
    r.running = n.running;
    r.done = n.succeeded;
    r.failed = n.failed + n.blocked + n.cancelled;
    r.blocked = n.blocked;
    r.cancelled = n.cancelled;
    r.lost = n.lost;
    r.failures = n.failures;
    r.released = n.released;
    r.items = running;
    r.next = next;
    coord_reply(c, p, &r);
    free(running);
}

/* The grid a client names, or an error reply. */
static int grid_of(coord *c, const peer *p, const proto_msg *m,
                   int64_t *grid_id)
{
    tfq_error e = {0};
    if (store_grid_find(c->st, m->grid, grid_id, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, m->kind);
        return -1;
    }
    return 0;
}

/* results, curves, workers and grids: one page of rows after m->after. */
static void on_report(coord *c, const peer *p, const proto_msg *m)
{
    int64_t grid_id = 0;
    tfq_error e = {0};
    char *json = NULL;
    int64_t next = 0;
    int rc;
    proto_kind reply;
    if ((m->kind == PROTO_RESULTS || m->kind == PROTO_CURVES) &&
        m->grid[0] != '\0' && grid_of(c, p, m, &grid_id) != 0)
        return;
    switch (m->kind) {
    case PROTO_RESULTS:
        reply = PROTO_RESULTS_REPLY;
        rc = store_results_json(c->st, grid_id, m->after, COORD_PAGE_BYTES,
                                &json, &next, &e);
        break;
    case PROTO_CURVES:
        reply = PROTO_CURVES_REPLY;
        rc = store_curves_json(c->st, grid_id, m->job, m->after,
                               COORD_PAGE_BYTES, &json, &next, &e);
        break;
    case PROTO_GRIDS:
        reply = PROTO_GRIDS_REPLY;
        rc = store_grids_json(c->st, m->after, COORD_PAGE_BYTES, &json,
                              &next, &e);
        break;
    default:
        reply = PROTO_WORKERS_REPLY;
        rc = store_workers_json(c->st, coord_now_ms(),
                                handlers_gone_after_ms(c), m->after,
                                COORD_PAGE_BYTES, &json, &next, &e);
        break;
    }
    if (rc != 0) {
        coord_reply_error(c, p, e.code, e.msg, m->kind);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, reply);
    r.items = json;
    r.next = next;
    coord_reply(c, p, &r);
    free(json);
}

/* Events of a page (at most COORD_EVENTS_MAX, COORD_EVENTS_DEFAULT when
 * the request gives no count): a poll every 2 s shows what happened. */
#define COORD_EVENTS_DEFAULT 100
#define COORD_EVENTS_MAX 1000

/* jobs, events, attempts: the dashboard's unpaged reads, each one JSON
 * array (jobs: and the count of the jobs its query matches). */
static void on_dashboard_read(coord *c, const peer *p, const proto_msg *m)
{
    int64_t grid_id = 0, count = 0;
    tfq_error e = {0};
    char *json = NULL;
    int rc;
    proto_msg r;
    if (m->grid != NULL && (m->kind == PROTO_JOBS || m->grid[0] != '\0') &&
        grid_of(c, p, m, &grid_id) != 0)
        return;
    if (m->kind == PROTO_EVENTS && m->count > COORD_EVENTS_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "events: count %lld is over %d",
                 (long long)m->count, COORD_EVENTS_MAX);
        coord_reply_error(c, p, TFQ_ERANGE, msg, m->kind);
        return;
    }
    if (m->kind == PROTO_JOBS)
        rc = store_jobs_json(c->st, grid_id, m->query, COORD_PAGE_BYTES,
                             &json, &count, &e);
    else if (m->kind == PROTO_EVENTS)
        rc = store_events_json(c->st, grid_id, m->job, m->after,
                               m->count > 0 ? (int)m->count
                                            : COORD_EVENTS_DEFAULT,
                               COORD_PAGE_BYTES, &json, &e);
    else
        rc = store_attempts_json(c->st, m->job, COORD_PAGE_BYTES, &json, &e);
    if (rc != 0) {
        coord_reply_error(c, p, e.code, e.msg, m->kind);
        return;
    }
    proto_msg_init(&r, m->kind == PROTO_JOBS     ? PROTO_JOBS_REPLY
                       : m->kind == PROTO_EVENTS ? PROTO_EVENTS_REPLY
                                                 : PROTO_ATTEMPTS_REPLY);
    r.items = json;
    r.count = count;
    coord_reply(c, p, &r);
    free(json);
}

static void on_metrics(coord *c, const peer *p, const proto_msg *m)
{
    char *text = NULL;
    tfq_error e = {0};
    if (metrics_text(c, &text, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, m->kind);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_METRICS_REPLY);
    r.items = text;
    coord_reply(c, p, &r);
    free(text);
}

/* job_get: one job, by id or by name (in m->grid, else in every grid),
 * and its latest checkpoint not found bad.  A name that jobs of several
 * grids have is refused, naming the grids (at most 8, then "and more"). */
static void on_job_get(coord *c, const peer *p, const proto_msg *m)
{
    enum { GRIDS_NAMED = 8 };
    store_job_info j[GRIDS_NAMED + 1];
    int64_t grid_id = 0;
    int n = 0;
    tfq_error e = {0};
    char what[PROTO_MAX_NAME_BYTES * 2 + 64], msg[PROTO_MAX_MSG_BYTES];
    int in_grid = m->grid != NULL && m->grid[0] != '\0';
    if (in_grid && grid_of(c, p, m, &grid_id) != 0)
        return;
    if (store_job_get(c->st, m->job, m->name, grid_id, j, GRIDS_NAMED + 1,
                      &n, &e) != 0) {
        coord_reply_error(c, p, e.code, e.msg, PROTO_JOB_GET);
        return;
    }
    if (m->name != NULL)
        snprintf(what, sizeof what, "job named '%s'", m->name);
    else
        snprintf(what, sizeof what, "job %lld", (long long)m->job);
    if (n != 1) {
        size_t len = (size_t)snprintf(msg, sizeof msg, n == 0
                                      ? "no %s%s%s%s" : "a %s is in several "
                                      "grids (name one):", what,
                                      n == 0 && in_grid ? " in grid '" : "",
                                      n == 0 && in_grid ? m->grid : "",
                                      n == 0 && in_grid ? "'" : "");
        for (int i = 0; i < n && i < GRIDS_NAMED && len < sizeof msg; i++)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s '%s'",
                                    i ? "," : "", j[i].grid);
        if (n > GRIDS_NAMED && len < sizeof msg)
            snprintf(msg + len, sizeof msg - len, ", and more");
        coord_reply_error(c, p, n == 0 ? TFQ_ENOENT : TFQ_EINVAL, msg,
                          PROTO_JOB_GET);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_JOB_INFO);
    r.job = j[0].job;
    r.name = j[0].name;
    r.grid = j[0].grid;
    r.state = j[0].state;
    memcpy(r.sha256, j[0].sha256, sizeof r.sha256);
    r.epoch = j[0].epoch;
    coord_reply(c, p, &r);
}

static void on_change(coord *c, const peer *p, const proto_msg *m)
{
    int64_t grid_id = 0;
    int count = 0, rc;
    tfq_error e = {0};
    if (grid_of(c, p, m, &grid_id) != 0)
        return;
    if (m->kind == PROTO_CANCEL_GRID)
        rc = store_cancel_grid(c->st, grid_id, coord_now_ms(), &count, &e);
    else
        rc = store_retry_grid(c->st, grid_id, coord_now_ms(), &count, &e);
    if (rc != 0) {
        coord_reply_error(c, p, rc, e.msg, m->kind);
        return;
    }
    log_info("grid '%s': %d jobs %s", m->grid, count,
             m->kind == PROTO_CANCEL_GRID ? "cancelled" : "queued again");
    proto_msg r;
    proto_msg_init(&r, PROTO_CHANGED);
    r.count = count;
    coord_reply(c, p, &r);
}

static void on_bye(coord *c, const peer *p, const proto_msg *m)
{
    (void)m;
    tfq_error e = {0};
    if (store_worker_bye(c->st, p->name, coord_now_ms(), &e) != 0)
        log_error("worker %s: %s", p->name, e.msg);
    log_info("%s said bye", p->name);
}

/* Any message of a worker but hello and bye says it is there; its
 * heartbeats come from its NAME/beat connection (PROTOCOL.md).  Written
 * at most every half heartbeat interval. */
static void worker_seen(coord *c, const peer *p)
{
    char name[PROTO_MAX_NAME_BYTES];
    snprintf(name, sizeof name, "%s", p->name);
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, "/beat") == 0)
        name[n - 5] = '\0';
    tfq_error e = {0};
    if (store_worker_touch(c->st, name, coord_now_ms(),
                           c->cfg.heartbeat_ms / 2, &e) != 0)
        log_error("worker %s: %s", name, e.msg);
}

/* Never answer an error with an error: two peers would bounce. */
static void on_error(coord *c, const peer *p, const proto_msg *m)
{
    (void)c;
    log_warn("error from %s: %s", p->name, m->msg);
}

#define ANYONE (ROLE_WORKER | ROLE_CLIENT)

/* Every kind the coordinator serves, by kind: who may send it (workers
 * take and report jobs, clients change grids, both may read), whether it
 * is a read, and its handler.  A read is answered from what is committed,
 * outside the batch of writes (which is committed first): a commit of
 * that batch that then fails (a full disk) cannot take the answer with
 * it, and the answer shows nothing that was not committed.  A kind
 * without a handler may be sent by anyone and is answered that the
 * coordinator does not serve it. */
static const struct {
    unsigned roles;
    int read;
    handler_fn *fn;
} s_kinds[PROTO_KIND_COUNT] = {
    [PROTO_HELLO] = {ROLE_WORKER, 0, on_hello},
    [PROTO_READY] = {ROLE_WORKER, 0, on_ready},
    [PROTO_HEARTBEAT] = {ROLE_WORKER, 0, on_alive},
    [PROTO_PROGRESS] = {ROLE_WORKER, 0, on_alive},
    [PROTO_RESULT] = {ROLE_WORKER, 0, on_result},
    [PROTO_RELEASE] = {ROLE_WORKER, 0, on_result},
    [PROTO_CKPT_PUT] = {ROLE_WORKER, 0, uploads_put},
    [PROTO_BYE] = {ROLE_WORKER, 0, on_bye},
    [PROTO_SUBMIT] = {ROLE_CLIENT, 0, submit_queue},
    [PROTO_CANCEL_GRID] = {ROLE_CLIENT, 0, on_change},
    [PROTO_RETRY] = {ROLE_CLIENT, 0, on_change},
    [PROTO_CKPT_GET] = {ANYONE, 0, uploads_get},
    [PROTO_BLOB_HAS] = {ANYONE, 0, uploads_blob_has},
    [PROTO_BLOB_GET] = {ANYONE, 0, uploads_get},
    /* A client's upload needs no lease; under CURVE only a client key may
     * send it, as only a client key may submit. */
    [PROTO_BLOB_PUT] = {ROLE_CLIENT, 0, uploads_blob_put},
    [PROTO_STATUS] = {ANYONE, 1, on_status},
    [PROTO_RESULTS] = {ANYONE, 1, on_report},
    [PROTO_CURVES] = {ANYONE, 1, on_report},
    [PROTO_WORKERS] = {ANYONE, 1, on_report},
    [PROTO_JOB_GET] = {ANYONE, 1, on_job_get},
    [PROTO_GRIDS] = {ANYONE, 1, on_report},
    [PROTO_JOBS] = {ANYONE, 1, on_dashboard_read},
    [PROTO_EVENTS] = {ANYONE, 1, on_dashboard_read},
    [PROTO_ATTEMPTS] = {ANYONE, 1, on_dashboard_read},
    [PROTO_METRICS] = {ANYONE, 1, on_metrics},
    [PROTO_ERROR] = {ANYONE, 0, on_error},
};

int handlers_serves(proto_kind k)
{
    return k > PROTO_KIND_NONE && k < PROTO_KIND_COUNT &&
           s_kinds[k].fn != NULL;
}

void handlers_dispatch(coord *c, const peer *p, const void *frame,
                       size_t bytes)
{
    proto_msg m;
    tfq_error e = {0};
    int rc = proto_decode(frame, bytes, &m, &c->up, &e);
    c->stats.requests[rc == 0 ? m.kind : PROTO_KIND_NONE]++;
    if (rc != 0) {
        log_warn("bad message from %s: %s", p->name, e.msg);
        coord_reply_error(c, p, rc, e.msg, PROTO_KIND_NONE);
        return;
    }
    int known = handlers_serves(m.kind);
    unsigned roles = known ? s_kinds[m.kind].roles : ANYONE;
    if (!(p->roles & roles)) {
        log_warn("refused %s from %s at %s (CURVE key %s): not allowed for "
                 "this key", proto_kind_name(m.kind), p->name, p->address,
                 p->user);
        char msg[160];
        snprintf(msg, sizeof msg, "this key may not send %s (it is not in "
                 "the coordinator's %s allow-list)", proto_kind_name(m.kind),
                 roles == ROLE_CLIENT ? "client" : "worker");
        coord_reply_error(c, p, TFQ_EPERM, msg, m.kind);
        return;
    }
    if (!known) {
        char msg[128];
        snprintf(msg, sizeof msg, "the coordinator does not serve '%s'",
                 proto_kind_name(m.kind));
        coord_reply_error(c, p, TFQ_EINVAL, msg, m.kind);
        return;
    }
    if (s_kinds[m.kind].read)
        coord_end_batch(c);
    if (roles == ROLE_WORKER && m.kind != PROTO_HELLO && m.kind != PROTO_BYE)
        worker_seen(c, p);
    s_kinds[m.kind].fn(c, p, &m);
}
