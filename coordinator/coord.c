#define _GNU_SOURCE
#include "coord.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/curve.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/proto.h"
#include "gridspec.h"
#include "jobfile.h"
#include "store.h"
#include "common/jobspec.h"

/* A worker told "no job" asks again after this long. */
#define COORD_RETRY_MS 200

/* Jobs one "ready" is given at most, whatever it asks for: a worker that
 * drains short jobs in batches still leaves work for the others. */
#define COORD_MAX_LEASE STORE_MAX_LEASE

/* TCP keepalive on every connection: probes after 10 s idle, every 5 s,
 * 3 unanswered close it.  (Not ZMTP heartbeats: libzmq resets their timer
 * on every message, which costs a third of the drain rate of short jobs.) */
#define COORD_KEEPALIVE_IDLE_S 10
#define COORD_KEEPALIVE_INTVL_S 5
#define COORD_KEEPALIVE_CNT 3

/* Messages handled in one store transaction before it is committed and
 * their replies go out (group commit): a reply never leaves before what it
 * acknowledges is durable, and one commit serves many requests. */
#define COORD_BATCH 256

/* Leases one worker (one routing id) may hold at once: what a worker
 * asks for at most, so that one peer cannot take the whole queue. */
#define COORD_MAX_HELD STORE_MAX_LEASE

/* Checkpoint uploads in progress at once; a worker uploads one at a time,
 * so this is the number of workers uploading together before the oldest
 * unfinished upload is dropped (its worker gets an error and tries again
 * with its next checkpoint). */
#define COORD_MAX_UPLOADS 64

/* Uploads one peer may have in progress at once. */
#define COORD_MAX_UPLOADS_PEER 2

/* The bytes all uploads in progress may declare together. */
#define COORD_UPLOAD_BUDGET ((int64_t)4 << 30)

/* Room kept free on the state file system for the store: a checkpoint
 * that would leave less is refused with TFQ_ENOSPC.  The larger of a
 * floor and a share of the file system, capped. */
#define COORD_RESERVE_MIN ((int64_t)256 << 10)
#define COORD_RESERVE_MAX ((int64_t)256 << 20)
#define COORD_RESERVE_SHARE 20 /* 1/20 = 5% */

/* Submits parsed at once, each in a thread of libuv's pool while the loop
 * goes on serving (a grid of 92,160 jobs takes several seconds to parse
 * and expand); a submit beyond them is refused, so that clients cannot
 * queue up parses (each may take hundreds of MB) faster than they
 * finish. */
#define COORD_MAX_PARSES 2

/* One checkpoint arriving in chunks, written to a temporary file as it
 * comes and hashed on the way. */
typedef struct {
    int used;
    int64_t job;
    int attempt, epoch;
    char holder[65]; /* the lease's holder: every chunk must come from it */
    char peer[PROTO_MAX_NAME_BYTES];
    char sha256[65];
    int64_t total, got;
    FILE *f;
    char tmp[4200];
    hash_sha256_ctx hash;
    int64_t started_ms, last_ms;
    job_spec *spec; /* the job's, to check the checkpoint against */
} upload;

/* A reply held until the batch that produced it is committed. */
typedef struct {
    uint8_t id[256]; /* the peer's routing id */
    size_t id_bytes;
    msgpack_sbuffer body;
    proto_kind kind; /* what it answers */
} held_reply;

/* Roles a CURVE key has: what its allow-list lets it do. */
enum { ROLE_WORKER = 1, ROLE_CLIENT = 2 };

/* Accepted connections whose peer address the monitor keeps. */
#define AUTH_MAX_CONNS 256

/* The ZAP handler (ZeroMQ's authentication hook) and the handshake monitor
 * run in a thread of their own: a handshake never waits on the store. */
typedef struct {
    int on;
    curve_config key;
    curve_allow workers, clients;
    void *zap, *monitor;
    pthread_t thread;
    volatile int stop;
    /* Accepted connections' peer addresses, by descriptor, read when the
     * monitor reports the accept: a handshake that fails later is logged
     * with the address once the connection's close is reported. */
    struct {
        int fd;
        char address[64];
    } conns[AUTH_MAX_CONNS];
    int nconns;
    unsigned failed_event, failed_code; /* a failure waiting for its close */
    struct refusals {
        int64_t logged_ms; /* the last one logged */
        char last[24];     /* its key's fingerprint, or "" */
        int quiet;         /* not logged since */
        char note[96];     /* says how many, in the next line logged */
    } by_key, by_handshake;
} auth;

/* A refused peer reconnects again and again: log a refusal at once, then
 * at most one a AUTH_LOG_MS, saying how many went unlogged. */
#define AUTH_LOG_MS 5000

struct coord {
    coord_config cfg;
    auth auth;
    int batching;       /* replies go to held[] until the commit */
    int nrequests;      /* handled in this batch */
    held_reply *held;   /* one request may hold several replies */
    int nheld, cap_held;
    store *st;
    void *zctx;
    void *sock;
    uv_loop_t loop;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    proto_unpacked up;
    char endpoint[256];
    char ckpt_dir[4096];
    upload uploads[COORD_MAX_UPLOADS];
    struct submit_work *parsing[COORD_MAX_PARSES]; /* submits off the loop */
    int nparsing;
    int lock_fd; /* DIR/tfq.lock, flocked for the coordinator's life */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- replies ------------------------------------------------------------ */

typedef struct {
    const void *data; /* the peer's routing id */
    size_t bytes;
    char name[PROTO_MAX_NAME_BYTES]; /* printable form, for logs and store */
    unsigned roles;                  /* ROLE_*: what it may ask */
    const char *user;                /* CURVE: "ROLES FINGERPRINT"; "" */
    const char *address;             /* its IP address, or "" */
} peer;

static void send_raw(coord *c, const void *id, size_t id_bytes,
                     const void *body, size_t bytes)
{
    /* ROUTER drops a reply to a peer that has gone: nothing to undo. */
    if (zmq_send(c->sock, id, id_bytes, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(c->sock, body, bytes, ZMQ_DONTWAIT) < 0)
        log_warn("a reply was not sent: %s", zmq_strerror(errno));
}

static void send_frame(coord *c, const peer *p, const msgpack_sbuffer *b)
{
    if (c->batching && c->nheld == c->cap_held) {
        int cap = c->cap_held ? 2 * c->cap_held : 2 * COORD_BATCH;
        held_reply *h = realloc(c->held, (size_t)cap * sizeof *h);
        if (h != NULL) {
            c->held = h;
            c->cap_held = cap;
        }
    }
    if (!c->batching || p->bytes > sizeof c->held[0].id ||
        c->nheld == c->cap_held) {
        send_raw(c, p->data, p->bytes, b->data, b->size);
        return;
    }
    held_reply *h = &c->held[c->nheld++];
    memcpy(h->id, p->data, p->bytes);
    h->id_bytes = p->bytes;
    msgpack_sbuffer_init(&h->body);
    msgpack_sbuffer_write(&h->body, b->data, b->size);
}

/* Commits the batch, then sends its replies; when the commit fails, each
 * peer gets an error instead (nothing of what it asked was recorded). */
static void end_batch(coord *c)
{
    if (!c->batching)
        return;
    c->batching = 0;
    tfq_error e = {0};
    int rc = store_commit(c->st, &e);
    if (rc != 0)
        log_error("commit of %d requests failed: %s", c->nheld, e.msg);
    if (rc == TFQ_ENOSPC) { /* give the WAL's room back, then go on */
        tfq_error we = {0};
        if (store_compact_wal(c->st, &we) != 0)
            log_warn("%s", we.msg);
    }
    for (int i = 0; i < c->nheld; i++) {
        held_reply *h = &c->held[i];
        if (rc == 0) {
            send_raw(c, h->id, h->id_bytes, h->body.data, h->body.size);
        } else {
            msgpack_sbuffer err;
            msgpack_sbuffer_init(&err);
            if (proto_error_reply(rc, e.msg, PROTO_KIND_NONE, &err) == 0)
                send_raw(c, h->id, h->id_bytes, err.data, err.size);
            msgpack_sbuffer_destroy(&err);
        }
        msgpack_sbuffer_destroy(&h->body);
    }
    c->nheld = 0;
    c->nrequests = 0;
}

static void reply_error(coord *c, const peer *p, int code, const char *msg,
                        proto_kind re);

static void reply(coord *c, const peer *p, const proto_msg *m)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    tfq_error e = {0};
    int rc = proto_encode(m, &b, &e);
    if (rc == 0) {
        send_frame(c, p, &b);
    } else {
        log_error("cannot encode %s for %s: %s", proto_kind_name(m->kind),
                  p->name, e.msg);
        /* An answer all the same: the peer is not left waiting. */
        reply_error(c, p, rc, e.msg, PROTO_KIND_NONE);
    }
    msgpack_sbuffer_destroy(&b);
}

static void reply_error(coord *c, const peer *p, int code, const char *msg,
                        proto_kind re)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    if (proto_error_reply(code, msg, re, &b) == 0)
        send_frame(c, p, &b);
    msgpack_sbuffer_destroy(&b);
}

static void reply_kind(coord *c, const peer *p, proto_kind k)
{
    proto_msg m;
    proto_msg_init(&m, k);
    reply(c, p, &m);
}

/* ---- leases ------------------------------------------------------------- */

/* Lease tokens for n leases: 32 random bytes each, as 64 hex digits, handed
 * to the worker with its job and never stored (the store keeps the holder,
 * a hash).  One system call for a whole batch. */
static int lease_tokens(char (*out)[HASH_HEX_BYTES], int n)
{
    uint8_t raw[COORD_MAX_LEASE * HASH_BYTES];
    size_t want = (size_t)n * HASH_BYTES, got = 0;
    while (got < want) {
        ssize_t k = getrandom(raw + got, want - got, 0);
        if (k < 0 && errno != EINTR)
            return -1;
        if (k > 0)
            got += (size_t)k;
    }
    for (int i = 0; i < n; i++)
        hash_hex(raw + (size_t)i * HASH_BYTES, out[i]);
    return 0;
}

/* The CURVE key fingerprint of the peer, or "" without CURVE. */
static const char *key_of(const peer *p)
{
    const char *sp = strrchr(p->user, ' ');
    return sp ? sp + 1 : "";
}

/* Who holds a lease: its token (the first 128 bits, as 32 hex digits) and,
 * under CURVE, the fingerprint of the key that took it.  A routing id is
 * not proof: any peer may claim one.  Kept as it is, not hashed: the store
 * is readable by the coordinator's user only, who could change it anyway,
 * and a plain comparison costs nothing per message. */
static void holder_of(const peer *p, const char *token,
                      char out[HASH_HEX_BYTES])
{
    const char *key = key_of(p);
    size_t n = strnlen(token, 32), k = strnlen(key, 16);
    memcpy(out, token, n); /* by hand: snprintf was most of a lease's cost */
    if (k > 0) {
        out[n++] = ':';
        memcpy(out + n, key, k);
        n += k;
    }
    out[n] = '\0';
}

/* A refusal of a message about a lease the peer does not hold, logged with
 * the peer, its address and key, and answered. */
static void refuse_lease(coord *c, const peer *p, const proto_msg *m, int rc,
                         const char *why)
{
    if (rc == TFQ_EPERM)
        log_warn("refused %s of job %lld attempt %d from %s at %s (CURVE key "
                 "%s): %s", proto_kind_name(m->kind), (long long)m->job,
                 m->attempt, p->name, p->address[0] ? p->address : "?",
                 key_of(p)[0] ? key_of(p) : "none", why);
    reply_error(c, p, rc, why, m->kind);
}

/* The holder m speaks for, from its lease token and the peer's key; when m
 * carries no token, answers TFQ_EPERM and returns 0.  The protocol lets the
 * token be absent so that the refusal is about the lease, not the message's
 * format. */
static int holder_of_msg(coord *c, const peer *p, const proto_msg *m,
                         char holder[HASH_HEX_BYTES])
{
    if (m->lease[0] != '\0') {
        holder_of(p, m->lease, holder);
        return 1;
    }
    refuse_lease(c, p, m, TFQ_EPERM, "no lease token: only the holder of a "
                 "lease, with the token its job came with, may report on it");
    return 0;
}

/* ---- handlers ----------------------------------------------------------- */

static void on_hello(coord *c, const peer *p, const proto_msg *m)
{
    tfq_error e = {0};
    if (store_worker_seen(c->st, p->name, m->worker, 0, m->threads, now_ms(),
                          &e) != 0)
        log_error("worker %s: %s", p->name, e.msg);
    log_info("worker %s (%s, %d threads) joined", p->name, m->worker,
             m->threads);
    proto_msg r;
    proto_msg_init(&r, PROTO_WELCOME);
    r.heartbeat_ms = c->cfg.heartbeat_ms;
    reply(c, p, &r);
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
        reply_error(c, p, e.code, e.msg, PROTO_READY);
        return;
    }
    if (held >= COORD_MAX_HELD) {
        char msg[PROTO_MAX_NAME_BYTES + 128];
        snprintf(msg, sizeof msg, "worker %s already holds %d leases, the "
                 "most one worker may hold: finish or release some first",
                 p->name, held);
        reply_error(c, p, TFQ_ERANGE, msg, PROTO_READY);
        return;
    }
    if (want > COORD_MAX_HELD - held)
        want = COORD_MAX_HELD - held;
    if (lease_tokens(tokens, want) != 0) {
        reply_error(c, p, TFQ_EIO, "no random bytes for lease tokens",
                    PROTO_READY);
        return;
    }
    for (int i = 0; i < want; i++) {
        holder_of(p, tokens[i], holders[i]);
        hp[i] = holders[i];
    }
    if (store_lease_many(c->st, p->name, hp, now_ms(), want, l, &n, &e) != 0) {
        reply_error(c, p, e.code, e.msg, PROTO_READY);
        return;
    }
    if (n == 0) {
        proto_msg_init(&r, PROTO_NO_JOB);
        r.retry_ms = COORD_RETRY_MS;
        reply(c, p, &r);
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
        reply(c, p, &r);
        store_leased_release(&l[i]);
    }
}

/* Heartbeat and progress: ack a live attempt, cancel a stale one. */
static void on_alive(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    int rc = store_heartbeat(c->st, m->job, m->attempt, holder, now_ms(), &e);
    if (rc == 0 && m->kind == PROTO_PROGRESS)
        rc = store_metric_add(c->st, m->job, m->attempt, holder, m->epoch,
                              m->loss, m->test_acc, m->images_per_s, m->eta_s,
                              &e);
    if (rc == TFQ_EMISMATCH) {
        proto_msg r;
        proto_msg_init(&r, PROTO_CANCEL);
        r.job = m->job;
        r.attempt = m->attempt;
        reply(c, p, &r);
        return;
    }
    if (rc != 0) {
        refuse_lease(c, p, m, rc, e.msg);
        return;
    }
    reply_kind(c, p, PROTO_ACK);
}

static void uploads_drop_attempt(coord *c, int64_t job, int attempt);

static void on_result(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    int rc = m->kind == PROTO_RESULT
                 ? store_finish(c->st, m->job, m->attempt, holder, m->ok,
                                m->result, m->error, now_ms(), &e)
                 : store_release(c->st, m->job, m->attempt, holder, now_ms(),
                                 &e);
    if (rc != 0) {
        if (rc != TFQ_EPERM)
            log_warn("%s of job %lld attempt %d from %s refused: %s",
                     proto_kind_name(m->kind), (long long)m->job, m->attempt,
                     p->name, e.msg);
        refuse_lease(c, p, m, rc, e.msg);
        return;
    }
    uploads_drop_attempt(c, m->job, m->attempt);
    tfq_log(m->kind == PROTO_RESULT && m->ok ? TFQ_LOG_DEBUG : TFQ_LOG_INFO,
            "job %lld attempt %d %s (%s)%s%s", (long long)m->job, m->attempt,
            m->kind == PROTO_RELEASE ? "handed back"
            : m->ok                  ? "succeeded"
                                     : "failed",
            p->name, m->error ? ": " : "", m->error ? m->error : "");
    reply_kind(c, p, PROTO_ACK);
}

/* What a submit did to each job of the file. */
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
        .kind = j->spec.kind == JOB_SLEEP ? "sleep" : "train",
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
    int64_t now = now_ms();
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

/* A submit parsed in a work thread.  The request's frame is gone once
 * handle returns, so it keeps copies of what it needs; the thread fills
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

static void on_readable(uv_poll_t *h, int status, int events);
static void peer_of(peer *p, const void *data, size_t bytes);

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
    /* on_readable commits its batch before it returns, so none is open
     * here; end one if it were, or add_grid would only be a savepoint of
     * it and the reply would wait for a commit that nothing starts. */
    end_batch(c);
    peer p;
    peer_of(&p, w->id, w->id_bytes);
    p.roles = 0;
    p.user = p.address = "";
    submit_counts n = {0};
    int rc = w->rc;
    if (status == UV_ECANCELED)
        rc = tfq_error_set(&w->e, TFQ_EIO, "the coordinator stopped before "
                           "it parsed this submit: nothing was stored");
    else if (rc == 0)
        rc = add_grid(c, w->grid, w->spec, &w->f, w->force,
                      w->metric[0] ? w->metric : NULL, &n, &w->e);
    if (rc != 0) {
        reply_error(c, &p, rc, w->e.msg, PROTO_SUBMIT);
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
        reply(c, &p, &r);
    }
    submit_free(w);
    /* a send may have left input pending (ZMQ_FD signals edges only) */
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        on_readable(&c->poll, 0, 0);
}

/* Hands the submit to a work thread (the parse of a large grid takes
 * seconds, and heartbeats and status must not wait for it); at most
 * COORD_MAX_PARSES at once. */
static void on_submit(coord *c, const peer *p, const proto_msg *m)
{
    if (c->nparsing >= COORD_MAX_PARSES) {
        char msg[128];
        snprintf(msg, sizeof msg, "the coordinator is busy parsing %d "
                 "submits; try again", c->nparsing);
        reply_error(c, p, TFQ_ERANGE, msg, PROTO_SUBMIT);
        return;
    }
    submit_work *w = calloc(1, sizeof *w);
    if (w != NULL && p->bytes > sizeof w->id) { /* ZeroMQ's are <= 255 */
        reply_error(c, p, TFQ_ERANGE, "routing id too long", PROTO_SUBMIT);
        free(w);
        return;
    }
    if (w != NULL) {
        w->grid = strdup(m->grid);
        w->spec = strdup(m->spec);
    }
    if (w == NULL || w->grid == NULL || w->spec == NULL) {
        reply_error(c, p, TFQ_ENOMEM, "out of memory", PROTO_SUBMIT);
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
        reply_error(c, p, TFQ_EIO, uv_strerror(rc), PROTO_SUBMIT);
        submit_free(w);
        return;
    }
    c->parsing[c->nparsing++] = w;
}

/* The JSON of one page of a report (status, results, workers): the limit
 * of its "items" field; a frame may be a MiB larger, room for the rest. */
#define COORD_PAGE_BYTES PROTO_MAX_ITEMS_BYTES

/* status, results and workers each answer one page, the rows after
 * m->after; the counts of a status reply are the whole grid's. */
static void on_status(coord *c, const peer *p, const proto_msg *m)
{
    store_counts n;
    tfq_error e = {0};
    int64_t grid_id = 0;
    if ((m->grid != NULL && store_grid_find(c->st, m->grid, &grid_id, &e)) ||
        store_counts_get(c->st, grid_id, &n, &e) != 0) {
        reply_error(c, p, e.code, e.msg, PROTO_STATUS);
        return;
    }
    char *running = NULL;
    int64_t next = 0;
    if (store_running_json(c->st, grid_id, m->after, COORD_PAGE_BYTES,
                           &running, &next, &e) != 0) {
        reply_error(c, p, e.code, e.msg, PROTO_STATUS);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_STATUS_REPLY);
    r.grid = m->grid;
    r.queued = n.pending + n.ready;
    r.running = n.running;
    r.done = n.succeeded;
    r.failed = n.failed + n.blocked + n.cancelled;
    r.lost = n.lost;
    r.failures = n.failures;
    r.items = running;
    r.next = next;
    reply(c, p, &r);
    free(running);
}

/* The grid a client names, or an error reply. */
static int grid_of(coord *c, const peer *p, const proto_msg *m,
                   int64_t *grid_id)
{
    tfq_error e = {0};
    if (store_grid_find(c->st, m->grid, grid_id, &e) != 0) {
        reply_error(c, p, e.code, e.msg, m->kind);
        return -1;
    }
    return 0;
}

static void on_report(coord *c, const peer *p, const proto_msg *m)
{
    int64_t grid_id = 0;
    tfq_error e = {0};
    char *json = NULL;
    int64_t next = 0;
    proto_msg r;
    if (m->kind == PROTO_RESULTS) {
        if (m->grid[0] != '\0' && grid_of(c, p, m, &grid_id) != 0)
            return;
        if (store_results_json(c->st, grid_id, m->after, COORD_PAGE_BYTES,
                               &json, &next, &e) != 0) {
            reply_error(c, p, e.code, e.msg, m->kind);
            return;
        }
        proto_msg_init(&r, PROTO_RESULTS_REPLY);
    } else {
        if (store_workers_json(c->st, m->after, COORD_PAGE_BYTES, &json,
                               &next, &e) != 0) {
            reply_error(c, p, e.code, e.msg, m->kind);
            return;
        }
        proto_msg_init(&r, PROTO_WORKERS_REPLY);
    }
    r.items = json;
    r.next = next;
    reply(c, p, &r);
    free(json);
}

/* job_get: one job, by id or by name (in m->grid, else in every grid),
 * and its latest checkpoint not found bad, answered from what is
 * committed as the reads are.  A name that jobs of several grids have is
 * refused, naming the grids (at most 8, then how many more). */
static void on_job_get(coord *c, const peer *p, const proto_msg *m)
{
    enum { GRIDS_NAMED = 8 };
    store_job_info j[GRIDS_NAMED + 1];
    int64_t grid_id = 0;
    int n = 0;
    tfq_error e = {0};
    char what[PROTO_MAX_NAME_BYTES * 2 + 64], msg[PROTO_MAX_MSG_BYTES];
    end_batch(c);
    if (m->grid != NULL && grid_of(c, p, m, &grid_id) != 0)
        return;
    if (store_job_get(c->st, m->job, m->name, grid_id, j, GRIDS_NAMED + 1,
                      &n, &e) != 0) {
        reply_error(c, p, e.code, e.msg, PROTO_JOB_GET);
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
                                      n == 0 && m->grid ? " in grid '" : "",
                                      n == 0 && m->grid ? m->grid : "",
                                      n == 0 && m->grid ? "'" : "");
        for (int i = 0; i < n && i < GRIDS_NAMED && len < sizeof msg; i++)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s '%s'",
                                    i ? "," : "", j[i].grid);
        if (n > GRIDS_NAMED && len < sizeof msg)
            snprintf(msg + len, sizeof msg - len, ", and more");
        reply_error(c, p, n == 0 ? TFQ_ENOENT : TFQ_EINVAL, msg,
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
    reply(c, p, &r);
}

static void on_change(coord *c, const peer *p, const proto_msg *m)
{
    int64_t grid_id = 0;
    int count = 0, rc;
    tfq_error e = {0};
    if (grid_of(c, p, m, &grid_id) != 0)
        return;
    if (m->kind == PROTO_CANCEL_GRID)
        rc = store_cancel_grid(c->st, grid_id, now_ms(), &count, &e);
    else
        rc = store_retry_grid(c->st, grid_id, now_ms(), &count, &e);
    if (rc != 0) {
        reply_error(c, p, rc, e.msg, m->kind);
        return;
    }
    log_info("grid '%s': %d jobs %s", m->grid, count,
             m->kind == PROTO_CANCEL_GRID ? "cancelled" : "queued again");
    proto_msg r;
    proto_msg_init(&r, PROTO_CHANGED);
    r.count = count;
    reply(c, p, &r);
}

/* ---- checkpoints -------------------------------------------------------- */

static void upload_drop(upload *u)
{
    if (u->f != NULL) {
        fclose(u->f);
        unlink(u->tmp);
    }
    free(u->spec);
    memset(u, 0, sizeof *u);
}

/* Drops the uploads of an attempt whose lease has ended. */
static void uploads_drop_attempt(coord *c, int64_t job, int attempt)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (u->used && u->job == job && u->attempt == attempt)
            upload_drop(u);
    }
}

/* Drops uploads whose lease has ended (expired, cancelled) or that have
 * been silent for a liveness window: abandoned ones take no disk. */
static void uploads_sweep(coord *c, int64_t now, int64_t silent_ms)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        tfq_error e = {0};
        if (!u->used)
            continue;
        int stale = now - u->last_ms > silent_ms;
        if (stale || store_check_lease(c->st, u->job, u->attempt, u->holder,
                                       &e) != 0) {
            log_warn("checkpoint upload of job %lld attempt %d from %s "
                     "dropped: %s", (long long)u->job, u->attempt, u->peer,
                     stale ? "no chunk within the liveness window" : e.msg);
            upload_drop(u);
        }
    }
}

/* Removes what uploads in progress left in dir when the coordinator
 * stopped: an upload does not survive a restart. */
static void uploads_clean(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, ".upload-", 8) != 0)
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    if (n > 0)
        log_info("removed %d unfinished checkpoint upload%s left in %s", n,
                 n == 1 ? "" : "s", dir);
}

/* The upload this chunk continues, or NULL. */
static upload *upload_find(coord *c, const proto_msg *m)
{
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (u->used && u->job == m->job && u->attempt == m->attempt &&
            strcmp(u->sha256, m->sha256) == 0)
            return u;
    }
    return NULL;
}

/* A free slot for a new upload, making room by dropping the oldest. */
static upload *upload_slot(coord *c)
{
    upload *oldest = NULL;
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        upload *u = &c->uploads[i];
        if (!u->used)
            return u;
        if (oldest == NULL || u->started_ms < oldest->started_ms)
            oldest = u;
    }
    log_warn("too many checkpoint uploads: dropping job %lld's",
             (long long)oldest->job);
    upload_drop(oldest);
    return oldest;
}

/* Whether a new upload may start: the sender holds the lease, the size
 * fits the job's net, the peer's and the coordinator's quotas and the free
 * disk space.  Fills spec with the job's configuration. */
static int upload_admit(coord *c, const peer *p, const proto_msg *m,
                        const char *holder, job_spec *spec, tfq_error *e)
{
    int rc = store_check_lease(c->st, m->job, m->attempt, holder, e);
    if (rc != 0)
        return rc;
    char *text = NULL;
    int64_t max = 0;
    rc = store_job_spec(c->st, m->job, &text, e);
    if (rc == 0)
        rc = jobspec_parse(text, spec, e);
    free(text);
    if (rc == 0)
        rc = jobspec_get_engine()->ckpt_max_bytes(spec, &max, e);
    if (rc != 0)
        return tfq_error_wrap(e, rc, "job %lld", (long long)m->job);
    int epochs = spec->kind == JOB_SLEEP ? JOB_SLEEP_EPOCHS : spec->epochs;
    if (m->total > max)
        return tfq_error_set(e, TFQ_ERANGE, "a checkpoint of %lld bytes was "
                             "announced; job %lld's net implies at most %lld",
                             (long long)m->total, (long long)m->job,
                             (long long)max);
    if (m->epoch > epochs)
        return tfq_error_set(e, TFQ_ERANGE, "a checkpoint after epoch %d was "
                             "announced; job %lld has %d epochs", m->epoch,
                             (long long)m->job, epochs);
    int mine = 0;
    int64_t pending = 0;
    for (int i = 0; i < COORD_MAX_UPLOADS; i++) {
        const upload *u = &c->uploads[i];
        if (!u->used)
            continue;
        mine += strcmp(u->peer, p->name) == 0;
        pending += u->total - u->got;
    }
    if (mine >= COORD_MAX_UPLOADS_PEER)
        return tfq_error_set(e, TFQ_ERANGE, "%s already has %d checkpoint "
                             "uploads in progress, the most one peer may",
                             p->name, mine);
    if (pending + m->total > COORD_UPLOAD_BUDGET)
        return tfq_error_set(e, TFQ_ERANGE, "checkpoint uploads in progress "
                             "already take %lld MiB; try again later",
                             (long long)(pending >> 20));
    struct statvfs fs;
    if (statvfs(c->ckpt_dir, &fs) == 0) {
        int64_t size = (int64_t)fs.f_blocks * (int64_t)fs.f_frsize;
        int64_t avail = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
        int64_t keep = size / COORD_RESERVE_SHARE;
        keep = keep < COORD_RESERVE_MIN   ? COORD_RESERVE_MIN
               : keep > COORD_RESERVE_MAX ? COORD_RESERVE_MAX
                                          : keep;
        if (avail - pending - m->total < keep)
            return tfq_error_set(e, TFQ_ENOSPC, "%s has %lld KiB free; a "
                                 "checkpoint of %lld KiB would leave less "
                                 "than the %lld KiB kept for the store",
                                 c->ckpt_dir, (long long)(avail >> 10),
                                 (long long)(m->total >> 10),
                                 (long long)(keep >> 10));
    }
    return 0;
}

/* The code for a failed write: TFQ_ENOSPC when the disk is full. */
static int write_error(tfq_error *e, const char *path)
{
    int err = errno;
    return tfq_error_set(e, err == ENOSPC || err == EDQUOT ? TFQ_ENOSPC
                                                           : TFQ_EIO,
                         "%s: %s", path, strerror(err));
}

/* Checks the finished upload (hash, then content against the job), writes
 * it under its hash and records it. */
static int upload_finish(coord *c, upload *u, tfq_error *e)
{
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256_final(&u->hash, digest);
    hash_hex(digest, hex);
    if (strcmp(hex, u->sha256) != 0)
        return tfq_error_set(e, TFQ_ECHECKSUM, "checkpoint arrived with hash "
                             "%.12s, announced %.12s", hex, u->sha256);
    if (fflush(u->f) != 0 || fsync(fileno(u->f)) != 0)
        return write_error(e, u->tmp);
    uint8_t *buf = malloc(u->total > 0 ? (size_t)u->total : 1);
    if (buf == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    int rc = 0;
    rewind(u->f);
    if (fread(buf, 1, (size_t)u->total, u->f) != (size_t)u->total)
        rc = tfq_error_set(e, TFQ_EIO, "%s: cannot read it back", u->tmp);
    if (rc == 0)
        rc = jobspec_get_engine()->ckpt_check(u->spec, buf, (size_t)u->total,
                                              u->epoch, e);
    free(buf);
    if (rc != 0)
        return tfq_error_wrap(e, rc, "checkpoint of job %lld",
                              (long long)u->job);
    fclose(u->f);
    u->f = NULL;
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", c->ckpt_dir, u->sha256);
    if (rename(u->tmp, path) != 0)
        return write_error(e, path);
    return store_checkpoint_add(c->st, u->job, u->attempt, u->holder,
                                u->epoch, u->sha256, u->total, now_ms(), e);
}

/* Starts an upload for the first chunk of a checkpoint. */
static upload *upload_start(coord *c, const peer *p, const proto_msg *m,
                            const char *holder, tfq_error *e)
{
    job_spec *spec = malloc(sizeof *spec);
    if (spec == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    if (upload_admit(c, p, m, holder, spec, e) != 0) {
        free(spec);
        return NULL;
    }
    uploads_drop_attempt(c, m->job, m->attempt); /* one at a time each */
    upload *u = upload_slot(c);
    u->used = 1;
    u->job = m->job;
    u->attempt = m->attempt;
    u->epoch = m->epoch;
    u->total = m->total;
    u->started_ms = u->last_ms = now_ms();
    u->spec = spec;
    memcpy(u->holder, holder, sizeof u->holder);
    snprintf(u->peer, sizeof u->peer, "%s", p->name);
    memcpy(u->sha256, m->sha256, sizeof u->sha256);
    hash_sha256_init(&u->hash);
    snprintf(u->tmp, sizeof u->tmp, "%s/.upload-%lld-%d-%.16s", c->ckpt_dir,
             (long long)m->job, m->attempt, m->sha256);
    u->f = fopen(u->tmp, "w+b");
    if (u->f == NULL) {
        write_error(e, u->tmp);
        upload_drop(u);
        return NULL;
    }
    return u;
}

static void on_ckpt_put(coord *c, const peer *p, const proto_msg *m)
{
    char holder[HASH_HEX_BYTES];
    if (!holder_of_msg(c, p, m, holder))
        return;
    tfq_error e = {0};
    upload *u = upload_find(c, m);
    if (u != NULL && strcmp(u->holder, holder) != 0) {
        refuse_lease(c, p, m, TFQ_EPERM, "this checkpoint upload belongs to "
                     "another peer's lease (the lease token does not match)");
        return;
    }
    if (u == NULL && m->offset != 0) {
        reply_error(c, p, TFQ_EINVAL, "checkpoint chunk out of order (no "
                    "upload in progress at this offset)", PROTO_CKPT_PUT);
        return;
    }
    if (u == NULL && (u = upload_start(c, p, m, holder, &e)) == NULL) {
        if (e.code != TFQ_EPERM)
            log_warn("checkpoint of job %lld attempt %d epoch %d from %s "
                     "refused: %s", (long long)m->job, m->attempt, m->epoch,
                     p->name, e.msg);
        refuse_lease(c, p, m, e.code, e.msg);
        return;
    }
    if (m->offset != u->got || m->total != u->total || m->epoch != u->epoch ||
        (int64_t)m->data_bytes > u->total - u->got) {
        upload_drop(u);
        reply_error(c, p, TFQ_EINVAL, "checkpoint chunk does not continue "
                    "its upload (offset, total or epoch changed)",
                    PROTO_CKPT_PUT);
        return;
    }
    if (m->data_bytes > 0 &&
        (fwrite(m->data, 1, m->data_bytes, u->f) != m->data_bytes ||
         fflush(u->f) != 0)) {
        int rc = write_error(&e, u->tmp);
        log_warn("checkpoint of job %lld attempt %d not written: %s",
                 (long long)m->job, m->attempt, e.msg);
        upload_drop(u);
        reply_error(c, p, rc, e.msg, PROTO_CKPT_PUT);
        return;
    }
    hash_sha256_update(&u->hash, m->data, m->data_bytes);
    u->got += (int64_t)m->data_bytes;
    u->last_ms = now_ms();
    if (u->got == u->total) {
        int rc = upload_finish(c, u, &e);
        upload_drop(u);
        if (rc != 0) {
            log_warn("checkpoint of job %lld attempt %d epoch %d refused: %s",
                     (long long)m->job, m->attempt, m->epoch, e.msg);
            reply_error(c, p, rc, e.msg, PROTO_CKPT_PUT);
            return;
        }
    }
    reply_kind(c, p, PROTO_ACK);
}

static void on_ckpt_get(coord *c, const peer *p, const proto_msg *m)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", c->ckpt_dir, m->sha256);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        reply_error(c, p, TFQ_ENOENT, "no checkpoint with that hash",
                    PROTO_CKPT_GET);
        return;
    }
    static uint8_t buf[PROTO_MAX_CHUNK_BYTES];
    struct stat st;
    size_t n = 0;
    int ok = fstat(fileno(f), &st) == 0 && m->offset <= st.st_size &&
             fseeko(f, (off_t)m->offset, SEEK_SET) == 0;
    if (ok) {
        n = fread(buf, 1, sizeof buf, f);
        ok = !ferror(f);
    }
    fclose(f);
    if (!ok) {
        reply_error(c, p, TFQ_ERANGE, "offset past the checkpoint's end",
                    PROTO_CKPT_GET);
        return;
    }
    proto_msg r;
    proto_msg_init(&r, PROTO_CKPT_CHUNK);
    memcpy(r.sha256, m->sha256, sizeof r.sha256);
    r.offset = m->offset;
    r.total = (int64_t)st.st_size;
    r.data = buf;
    r.data_bytes = n;
    reply(c, p, &r);
}

/* Who may send a kind: workers take and report jobs, clients change
 * grids, both may read. */
static unsigned kind_roles(proto_kind k)
{
    switch (k) {
    case PROTO_HELLO:
    case PROTO_READY:
    case PROTO_HEARTBEAT:
    case PROTO_PROGRESS:
    case PROTO_RESULT:
    case PROTO_RELEASE:
    case PROTO_CKPT_PUT:
    case PROTO_BYE:
        return ROLE_WORKER;
    case PROTO_SUBMIT:
    case PROTO_CANCEL_GRID:
    case PROTO_RETRY:
        return ROLE_CLIENT;
    default:
        return ROLE_WORKER | ROLE_CLIENT;
    }
}

static void handle(coord *c, const peer *p, const void *frame, size_t bytes)
{
    proto_msg m;
    tfq_error e = {0};
    int rc = proto_decode(frame, bytes, &m, &c->up, &e);
    if (rc != 0) {
        log_warn("bad message from %s: %s", p->name, e.msg);
        reply_error(c, p, rc, e.msg, PROTO_KIND_NONE);
        return;
    }
    if (!(p->roles & kind_roles(m.kind))) {
        log_warn("refused %s from %s at %s (CURVE key %s): not allowed for "
                 "this key", proto_kind_name(m.kind), p->name, p->address,
                 p->user);
        char msg[160];
        snprintf(msg, sizeof msg, "this key may not send %s (it is not in "
                 "the coordinator's %s allow-list)", proto_kind_name(m.kind),
                 kind_roles(m.kind) == ROLE_CLIENT ? "client" : "worker");
        reply_error(c, p, TFQ_EPERM, msg, m.kind);
        return;
    }
    switch (m.kind) {
    case PROTO_HELLO:
        on_hello(c, p, &m);
        break;
    case PROTO_READY:
        on_ready(c, p, &m);
        break;
    case PROTO_HEARTBEAT:
    case PROTO_PROGRESS:
        on_alive(c, p, &m);
        break;
    case PROTO_RESULT:
    case PROTO_RELEASE:
        on_result(c, p, &m);
        break;
    case PROTO_SUBMIT:
        on_submit(c, p, &m);
        break;
    case PROTO_CKPT_PUT:
        on_ckpt_put(c, p, &m);
        break;
    case PROTO_CKPT_GET:
        on_ckpt_get(c, p, &m);
        break;
    case PROTO_STATUS:
    case PROTO_RESULTS:
    case PROTO_WORKERS:
        /* A read is answered from what is committed, outside the batch of
         * writes: a commit of that batch that then fails (a full disk)
         * cannot take the answer with it, and the answer shows nothing
         * that was not committed. */
        end_batch(c);
        if (m.kind == PROTO_STATUS)
            on_status(c, p, &m);
        else
            on_report(c, p, &m);
        break;
    case PROTO_CANCEL_GRID:
    case PROTO_RETRY:
        on_change(c, p, &m);
        break;
    case PROTO_JOB_GET: on_job_get(c, p, &m); break;
    case PROTO_BYE:
        log_info("%s said bye", p->name);
        break;
    case PROTO_ERROR:
        /* Never answer an error with an error: two peers would bounce. */
        log_warn("error from %s: %s", p->name, m.msg);
        break;
    default: {
        char msg[128];
        snprintf(msg, sizeof msg, "the coordinator does not serve '%s'",
                 proto_kind_name(m.kind));
        reply_error(c, p, TFQ_EINVAL, msg, m.kind);
    }
    }
}

/* ---- authentication ----------------------------------------------------- */

/* Receives the next frame of a multi-part message into buf (NUL-ended);
 * its size, or -1. */
static int zap_frame(void *sock, char *buf, size_t bytes)
{
    int n = zmq_recv(sock, buf, bytes - 1, 0);
    if (n < 0)
        return -1;
    buf[(size_t)n < bytes - 1 ? (size_t)n : bytes - 1] = '\0';
    return n;
}

/* Whether to log this refusal: yes for another key than the last one
 * logged, else at most one a AUTH_LOG_MS.  Sets r->note. */
static int refusal_logged(struct refusals *r, const char *key)
{
    int64_t now = clock_mono_ms();
    if (r->logged_ms != 0 && now - r->logged_ms < AUTH_LOG_MS &&
        strcmp(r->last, key) == 0) {
        r->quiet++;
        return 0;
    }
    r->note[0] = '\0';
    if (r->quiet > 0)
        snprintf(r->note, sizeof r->note, " (%d more refusals since the last "
                 "one logged)", r->quiet);
    r->quiet = 0;
    r->logged_ms = now;
    snprintf(r->last, sizeof r->last, "%s", key);
    return 1;
}

/* Answers one ZAP request (RFC 27): admitted when the client's public key
 * is in an allow-list, with its roles and fingerprint as the User-Id. */
static void zap_answer(auth *a)
{
    char f[7][256];
    int n[7] = {0}, got = 0, more = 1;
    while (more && got < 7) {
        n[got] = zap_frame(a->zap, f[got], sizeof f[got]);
        if (n[got] < 0)
            return;
        got++;
        size_t sz = sizeof more;
        zmq_getsockopt(a->zap, ZMQ_RCVMORE, &more, &sz);
    }
    while (more) { /* a request longer than RFC 27's: drain it */
        char skip[256];
        size_t sz = sizeof more;
        if (zap_frame(a->zap, skip, sizeof skip) < 0)
            return;
        zmq_getsockopt(a->zap, ZMQ_RCVMORE, &more, &sz);
    }
    const char *address = got > 3 ? f[3] : "?";
    char fp[CURVE_FP_BYTES] = "none";
    const char *status = "400", *text = "not CURVE", *user = "";
    char uid[64];
    if (got == 7 && strcmp(f[5], "CURVE") == 0 && n[6] == CURVE_KEY_BYTES) {
        const uint8_t *key = (const uint8_t *)f[6];
        curve_fingerprint(key, fp);
        int w = curve_allow_has(&a->workers, key);
        int cl = curve_allow_has(&a->clients, key);
        if (w || cl) {
            snprintf(uid, sizeof uid, "%s %s",
                     w && cl ? "worker+client" : w ? "worker" : "client", fp);
            status = "200";
            text = "OK";
            user = uid;
        } else {
            text = "key not in the allow-lists";
        }
    }
    if (strcmp(status, "200") != 0 && refusal_logged(&a->by_key, fp))
        log_warn("refused a peer at %s (CURVE key %s): %s%s", address, fp,
                 text, a->by_key.note);
    const char *reply[6] = {"1.0", got > 1 ? f[1] : "", status, text, user,
                            ""};
    for (int i = 0; i < 6; i++) {
        size_t len = i == 1 ? (size_t)(got > 1 ? n[1] : 0) : strlen(reply[i]);
        zmq_send(a->zap, reply[i], len, i < 5 ? ZMQ_SNDMORE : 0);
    }
}

/* The peer address of an accepted connection's descriptor, or "". */
static void peer_address(int fd, char *out, size_t bytes)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    out[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return;
    if (sa.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, out,
                  (socklen_t)bytes);
    else if (sa.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, out,
                  (socklen_t)bytes);
}

/* Logs a handshake that failed before ZAP was asked (a plaintext peer, or
 * one with the wrong coordinator key) once the connection's close names
 * its descriptor, and so its address. */
static void monitor_event(auth *a)
{
    zmq_msg_t head, addr;
    zmq_msg_init(&head);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&head, a->monitor, 0) < 0 || zmq_msg_size(&head) < 6 ||
        zmq_msg_recv(&addr, a->monitor, 0) < 0)
        goto out;
    const uint8_t *d = zmq_msg_data(&head);
    unsigned event = (unsigned)(d[0] | d[1] << 8);
    unsigned value = (unsigned)d[2] | (unsigned)d[3] << 8 |
                     (unsigned)d[4] << 16 | (unsigned)d[5] << 24;
    if (event == ZMQ_EVENT_ACCEPTED) {
        int i = a->nconns < AUTH_MAX_CONNS ? a->nconns++ : 0;
        a->conns[i].fd = (int)value;
        peer_address((int)value, a->conns[i].address,
                     sizeof a->conns[i].address);
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        const char *address = "an unknown address";
        for (int i = 0; i < a->nconns; i++)
            if (a->conns[i].fd == (int)value) {
                if (a->conns[i].address[0])
                    address = a->conns[i].address;
                a->conns[i] = a->conns[--a->nconns];
                break;
            }
        const char *why =
            a->failed_code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                ? "a plaintext peer (no CURVE)"
            : a->failed_code == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                ? "a CURVE peer with the wrong coordinator key"
                : "a plaintext peer, or one with the wrong coordinator key";
        if (a->failed_event != 0 && refusal_logged(&a->by_handshake, address))
            log_warn("refused a peer at %s (no CURVE key): its handshake "
                     "failed: %s (event 0x%x, code 0x%x)%s", address, why,
                     a->failed_event, a->failed_code, a->by_handshake.note);
        a->failed_event = 0;
    } else if (event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) { /* ZAP logs those */
        a->failed_event = event;
        a->failed_code = value;
    }
out:
    zmq_msg_close(&head);
    zmq_msg_close(&addr);
}

static void *auth_main(void *arg)
{
    auth *a = arg;
    while (!a->stop) {
        zmq_pollitem_t items[2] = {{a->zap, 0, ZMQ_POLLIN, 0},
                                   {a->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, a->monitor ? 2 : 1, 100) <= 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN)
            zap_answer(a);
        if (items[1].revents & ZMQ_POLLIN)
            monitor_event(a);
    }
    return NULL;
}

/* Loads the keys and lists and binds the ZAP handler, before the socket
 * binds: no peer is ever served unchecked. */
static int auth_start(coord *c, tfq_error *e)
{
    auth *a = &c->auth;
    const coord_config *cfg = &c->cfg;
    if (cfg->curve_key == NULL)
        return 0;
    if (cfg->allow_workers == NULL && cfg->allow_clients == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "CURVE needs an allow-list: "
                             "--allow-workers FILE and/or --allow-clients "
                             "FILE");
    int rc = curve_load_secret(cfg->curve_key, &a->key, e);
    if (rc == 0 && cfg->allow_workers)
        rc = curve_allow_load(cfg->allow_workers, &a->workers, e);
    if (rc == 0 && cfg->allow_clients)
        rc = curve_allow_load(cfg->allow_clients, &a->clients, e);
    if (rc != 0)
        return rc;
    a->zap = zmq_socket(c->zctx, ZMQ_REP);
    int zero = 0;
    if (a->zap == NULL ||
        zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(a->zap, "inproc://zeromq.zap.01") != 0)
        return tfq_error_set(e, TFQ_EIO, "ZAP handler: %s",
                             zmq_strerror(errno));
    if (zmq_socket_monitor(c->sock, "inproc://tfq-coord-monitor",
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_ACCEPTED |
                               ZMQ_EVENT_DISCONNECTED) == 0) {
        a->monitor = zmq_socket(c->zctx, ZMQ_PAIR);
        if (a->monitor != NULL) {
            zmq_setsockopt(a->monitor, ZMQ_LINGER, &zero, sizeof zero);
            zmq_connect(a->monitor, "inproc://tfq-coord-monitor");
        }
    }
    if ((rc = curve_socket_server(c->sock, &a->key, e)) != 0)
        return rc;
    if (pthread_create(&a->thread, NULL, auth_main, a) != 0)
        return tfq_error_set(e, TFQ_ENOMEM, "cannot start the ZAP thread");
    a->on = 1;
    log_info("CURVE on: %d worker keys, %d client keys allowed", a->workers.n,
             a->clients.n);
    return 0;
}

static void auth_stop(auth *a)
{
    if (a->on) {
        a->stop = 1;
        pthread_join(a->thread, NULL);
    }
    if (a->zap)
        zmq_close(a->zap);
    if (a->monitor)
        zmq_close(a->monitor);
    curve_allow_release(&a->workers);
    curve_allow_release(&a->clients);
    memset(a, 0, sizeof *a);
}

/* ---- the loop ----------------------------------------------------------- */

static void peer_of(peer *p, const void *data, size_t bytes)
{
    p->data = data;
    p->bytes = bytes;
    size_t n = 0;
    const unsigned char *d = data;
    int printable = bytes > 0 && bytes < sizeof p->name;
    for (size_t i = 0; i < bytes && printable; i++)
        printable = d[i] >= 0x21 && d[i] < 0x7f;
    if (printable) {
        memcpy(p->name, d, bytes);
        p->name[bytes] = '\0';
        return;
    }
    for (size_t i = 0; i < bytes && n + 3 < sizeof p->name; i++)
        n += (size_t)snprintf(p->name + n, sizeof p->name - n, "%02x", d[i]);
    p->name[n] = '\0';
}

/* Reads every message waiting.  ZMQ_FD only signals edges, so the loop
 * runs until ZMQ_EVENTS says nothing is left. */
static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    coord *c = h->data;
    for (;;) {
        uint32_t ev = 0;
        size_t sz = sizeof ev;
        if (c->nrequests >= COORD_BATCH)
            end_batch(c);
        if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &ev, &sz) != 0 ||
            !(ev & ZMQ_POLLIN)) {
            end_batch(c);
            return;
        }
        if (!c->batching) {
            tfq_error be = {0};
            c->batching = store_begin(c->st, &be) == 0;
        }
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            end_batch(c);
            return;
        }
        peer p;
        peer_of(&p, zmq_msg_data(&id), zmq_msg_size(&id));
        int frames = 0, more = zmq_msg_more(&id);
        while (more) {
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, c->sock, ZMQ_DONTWAIT) < 0)
                break;
            frames++;
            more = zmq_msg_more(&body);
        }
        c->nrequests++;
        p.roles = ROLE_WORKER | ROLE_CLIENT;
        p.user = "";
        p.address = "";
        if (frames == 1 && c->auth.on) {
            const char *user = zmq_msg_gets(&body, "User-Id");
            const char *address = zmq_msg_gets(&body, "Peer-Address");
            p.user = user ? user : "";
            p.address = address ? address : "";
            p.roles = (strncmp(p.user, "worker", 6) == 0 ? ROLE_WORKER : 0) |
                      (strstr(p.user, "client") != NULL ? ROLE_CLIENT : 0);
        }
        if (frames == 1)
            handle(c, &p, zmq_msg_data(&body), zmq_msg_size(&body));
        else
            reply_error(c, &p, TFQ_EFORMAT,
                        "a message is exactly one frame", PROTO_KIND_NONE);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

int coord_feed(coord *c, const void *id, size_t id_bytes, const void *frame,
               size_t bytes)
{
    tfq_error be = {0};
    int rc = 0;
    if (!c->batching) {
        rc = store_begin(c->st, &be);
        c->batching = rc == 0;
    }
    peer p;
    peer_of(&p, id, id_bytes);
    p.roles = ROLE_WORKER | ROLE_CLIENT;
    p.user = "";
    p.address = "";
    c->nrequests++;
    handle(c, &p, frame, bytes);
    end_batch(c);
    while (c->nparsing > 0) /* a submit: until it is stored and answered */
        uv_run(&c->loop, UV_RUN_ONCE);
    return rc;
}

void *coord_zmq_context(coord *c)
{
    return c->zctx;
}

static void on_timer(uv_timer_t *t)
{
    coord *c = t->data;
    int requeued = 0;
    tfq_error e = {0};
    int64_t liveness_ms = (int64_t)c->cfg.heartbeat_ms * c->cfg.liveness;
    if (store_expire(c->st, now_ms(), liveness_ms, &requeued, &e) != 0)
        log_error("lease check: %s", e.msg);
    else if (requeued > 0)
        log_warn("%d attempt%s lost (no heartbeat for %lld ms): requeued",
                 requeued, requeued == 1 ? "" : "s", (long long)liveness_ms);
    uploads_sweep(c, now_ms(), liveness_ms);
    on_readable(&c->poll, 0, 0); /* a send may have left input pending */
}

static void on_signal(uv_signal_t *s, int signum)
{
    coord *c = s->data;
    log_info("signal %d: stopping", signum);
    coord_stop(c);
}

/* Whether only this machine can reach an endpoint: loopback TCP
 * (127.0.0.0/8, ::1) or a transport that never leaves it. */
static int endpoint_is_local(const char *ep)
{
    static const char *const local[] = {"ipc://", "inproc://",
                                        "tcp://127.", "tcp://[::1]:",
                                        "tcp://[::ffff:127.", NULL};
    for (int i = 0; local[i] != NULL; i++)
        if (strncmp(ep, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

/* ---- the state directory ------------------------------------------- */

/* Takes DIR/tfq.lock (flock: exclusive, without waiting) for as long as
 * c->lock_fd stays open and writes this process's id into it.  The kernel
 * drops the lock when the process dies, so a coordinator killed with
 * kill -9 leaves no stale lock.  TFQ_EPERM naming the holder's pid when
 * another coordinator has it. */
static int lock_state(coord *c, tfq_error *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tfq.lock", c->cfg.state_dir);
    c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", path, strerror(errno));
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = pread(c->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (err != EWOULDBLOCK)
            return tfq_error_set(e, TFQ_EIO, "%s: cannot lock: %s", path,
                                 strerror(err));
        return tfq_error_set(e, TFQ_EPERM,
                             "%s is in use by another coordinator (pid %s, "
                             "which holds %s); stop it first, or give this "
                             "one another state directory", c->cfg.state_dir,
                             pid[0] ? pid : "unknown", path);
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(c->lock_fd, 0) != 0 ||
        pwrite(c->lock_fd, pid, (size_t)len, 0) != len)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", path, strerror(errno));
    return TFQ_OK;
}

/* Takes the group's and others' permissions off path (the state directory,
 * ckpt/, the store's files), which an older tfq left readable by all.  A
 * missing path is fine; one this user cannot change is only warned
 * about. */
static void make_private(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || (st.st_mode & 077) == 0)
        return;
    mode_t mode = st.st_mode & 07700;
    if (chmod(path, mode) != 0)
        log_warn("%s is open to other users (mode %04o) and cannot be "
                 "made private: %s", path, (unsigned)(st.st_mode & 07777),
                 strerror(errno));
    else
        log_info("%s made private: mode %04o, was %04o", path,
                 (unsigned)mode, (unsigned)(st.st_mode & 07777));
}

/* Opens the store with its start-up checks (schema/STORE.md); a store
 * behind its mirror is refused with a hint, or served with a warning under
 * accept_rollback. */
static int open_store(coord *c, tfq_error *e)
{
    char path[4200], seq[4200];
    snprintf(path, sizeof path, "%s/tfq.db", c->cfg.state_dir);
    snprintf(seq, sizeof seq, "%s/tfq.seq", c->cfg.state_dir);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s%s", path, suffixes[i]);
        make_private(f);
    }
    store_opts o = {.seq_path = seq,
                    .accept_rollback = c->cfg.accept_rollback};
    c->st = store_open_opts(path, &o, e);
    if (c->st == NULL) {
        if (e != NULL && e->code == TFQ_EMISMATCH) {
            char why[TFQ_ERROR_MSG_BYTES];
            snprintf(why, sizeof why, "%s", e->msg);
            tfq_error_set(e, TFQ_EMISMATCH,
                          "%.300s. Restore what was lost, or start with "
                          "--accept-rollback to serve the store as it is "
                          "(finished jobs it lost would run again)", why);
        }
        return e ? e->code : TFQ_EIO;
    }
    int64_t from = store_rolled_back_from(c->st);
    if (from > 0)
        log_warn("--accept-rollback: serving %s as it is, at commit %" PRId64
                 ", though %s said commit %" PRId64 " was made: what the "
                 "lost commits recorded is gone, and finished jobs among "
                 "them may run again", path, store_commit_seq(c->st), seq,
                 from);
    return TFQ_OK;
}

coord *coord_new(const coord_config *cfg, tfq_error *e)
{
    if (jobspec_get_engine() == NULL) {
        /* The coordinator does not link the trainer: what checks a job's
         * net and checkpoints comes from the program. */
        tfq_error_set(e, TFQ_EINVAL, "no job engine registered "
                      "(jobspec_set_engine): the coordinator cannot check "
                      "jobs' nets and checkpoints without one");
        return NULL;
    }
    coord *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (c->cfg.heartbeat_ms <= 0)
        c->cfg.heartbeat_ms = COORD_HEARTBEAT_MS;
    if (c->cfg.liveness <= 0)
        c->cfg.liveness = COORD_LIVENESS;
    proto_unpacked_init(&c->up);
    c->lock_fd = -1;
    if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        tfq_error_set(e, TFQ_EIO, "%s: %s", cfg->state_dir, strerror(errno));
        goto fail;
    }
    make_private(cfg->state_dir);
    char path[4096];
    if (lock_state(c, e) != 0 || open_store(c, e) != 0)
        goto fail;
    if (store_recover(c->st, now_ms(), e) != 0)
        goto fail;
    snprintf(c->ckpt_dir, sizeof c->ckpt_dir, "%s/ckpt", cfg->state_dir);
    if (mkdir(c->ckpt_dir, 0700) != 0 && errno != EEXIST) {
        tfq_error_set(e, TFQ_EIO, "%s: %s", c->ckpt_dir, strerror(errno));
        goto fail;
    }
    uploads_clean(c->ckpt_dir);
    make_private(c->ckpt_dir);
    c->zctx = zmq_ctx_new();
    c->sock = c->zctx ? zmq_socket(c->zctx, ZMQ_ROUTER) : NULL;
    if (c->sock == NULL) {
        tfq_error_set(e, TFQ_EIO, "zmq: %s", zmq_strerror(errno));
        goto fail;
    }
    int maxmsg = (int)PROTO_MAX_FRAME_BYTES + 1024, zero = 0;
    int64_t maxsize = maxmsg;
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    /* A routing id belongs to the first connection that claims it: a
     * second peer claiming a live one is not served (ZeroMQ's default,
     * without ZMQ_ROUTER_HANDOVER), so it can neither take the replies of
     * the worker that has it nor cut that worker off.  TCP keepalive
     * finds a dead connection (a machine gone, a cut link) within half a
     * minute, which frees its id for the worker's new one; a worker
     * process that dies closes its connection at once. */
    int ka = 1, idle = COORD_KEEPALIVE_IDLE_S, intvl = COORD_KEEPALIVE_INTVL_S,
        cnt = COORD_KEEPALIVE_CNT;
    zmq_setsockopt(c->sock, ZMQ_TCP_KEEPALIVE, &ka, sizeof ka);
    zmq_setsockopt(c->sock, ZMQ_TCP_KEEPALIVE_IDLE, &idle, sizeof idle);
    zmq_setsockopt(c->sock, ZMQ_TCP_KEEPALIVE_INTVL, &intvl, sizeof intvl);
    zmq_setsockopt(c->sock, ZMQ_TCP_KEEPALIVE_CNT, &cnt, sizeof cnt);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (auth_start(c, e) != 0)
        goto fail;
    if (zmq_bind(c->sock, cfg->bind) != 0) {
        tfq_error_set(e, TFQ_EIO, "cannot bind %s: %s", cfg->bind,
                      zmq_strerror(errno));
        goto fail;
    }
    size_t elen = sizeof c->endpoint;
    zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, c->endpoint, &elen);
    if (!c->auth.on && !endpoint_is_local(c->endpoint))
        log_warn("listening on %s without CURVE: anyone who can reach this "
                 "port can submit and cancel jobs, take leases and report "
                 "results; off loopback give --curve-key and allow-lists "
                 "(README.md, Scaling out)", c->endpoint);
    /* Tell scripts and tests where we listen (an ephemeral port included). */
    snprintf(path, sizeof path, "%s/endpoint", cfg->state_dir);
    int efd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = efd >= 0 ? fdopen(efd, "w") : NULL;
    if (f == NULL && efd >= 0)
        close(efd);
    if (f != NULL) {
        fprintf(f, "%s\n", c->endpoint);
        fclose(f);
    }
    int fd;
    size_t fdlen = sizeof fd;
    zmq_getsockopt(c->sock, ZMQ_FD, &fd, &fdlen);
    uv_loop_init(&c->loop);
    uv_poll_init(&c->loop, &c->poll, fd);
    c->poll.data = c;
    uv_poll_start(&c->poll, UV_READABLE, on_readable);
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->cfg.heartbeat_ms,
                   (uint64_t)c->cfg.heartbeat_ms);
    uv_signal_init(&c->loop, &c->sigint);
    uv_signal_init(&c->loop, &c->sigterm);
    c->sigint.data = c->sigterm.data = c;
    uv_signal_start(&c->sigint, on_signal, SIGINT);
    uv_signal_start(&c->sigterm, on_signal, SIGTERM);
    log_info("coordinator listening on %s, state in %s", c->endpoint,
             cfg->state_dir);
    return c;
fail:
    auth_stop(&c->auth);
    if (c->sock)
        zmq_close(c->sock);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    store_close(&c->st);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    proto_unpacked_release(&c->up);
    free(c);
    return NULL;
}

int coord_run(coord *c)
{
    on_readable(&c->poll, 0, 0); /* anything that arrived before the loop */
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

void coord_stop(coord *c)
{
    /* A submit not yet parsed is answered that nothing was stored; one
     * being parsed is finished, stored and answered before the loop ends
     * (uv_run waits for it). */
    if (c->nparsing > 0)
        log_info("stopping: %d submits are being parsed", c->nparsing);
    for (int i = 0; i < c->nparsing; i++)
        uv_cancel((uv_req_t *)&c->parsing[i]->req);
    uv_handle_t *hs[] = {(uv_handle_t *)&c->poll, (uv_handle_t *)&c->timer,
                         (uv_handle_t *)&c->sigint, (uv_handle_t *)&c->sigterm};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], close_cb);
}

void coord_destroy(coord **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    coord *c = *cp;
    coord_stop(c);
    uv_run(&c->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
    uv_loop_close(&c->loop);
    for (int i = 0; i < COORD_MAX_UPLOADS; i++)
        if (c->uploads[i].used)
            upload_drop(&c->uploads[i]);
    auth_stop(&c->auth);
    zmq_close(c->sock);
    zmq_ctx_term(c->zctx);
    store_close(&c->st);
    close(c->lock_fd); /* only now may another coordinator open the store */
    proto_unpacked_release(&c->up);
    free(c->held);
    free(c);
    *cp = NULL;
}
