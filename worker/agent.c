#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/clock.h"
#include "common/curve.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/proto.h"
#include "job.h"
#include "common/jobspec.h"
#include "worker/engine/kern.h"

/* Hellos tried before giving up on a coordinator that never answers. */
#define AGENT_HELLO_TRIES 20

/* Jobs a worker holds at most: the one it runs and those leased behind it. */
#define AGENT_MAX_BATCH 64

/* A worker asks for as many jobs as it expects to finish in this long,
 * judged by the mean run time of its recent jobs: jobs of a minute come one
 * at a time, so that every idle worker gets one, while jobs of a
 * millisecond come by the dozen, so that one round trip and one commit at
 * the coordinator serve many.  Far below the liveness window, and every
 * held job is heartbeaten anyway. */
#define AGENT_BATCH_MS 20

/* A leased job waiting its turn (or running: the queue's head). */
typedef struct {
    int64_t job;
    int attempt;
    char lease[HASH_HEX_BYTES]; /* its token: every message about it says */
    int cancelled; /* the coordinator took it back: send nothing for it */
    char *spec;
    char sha256[HASH_HEX_BYTES]; /* resume from; "" none */
    char init[HASH_HEX_BYTES];   /* copy layers from; "" none */
} held_job;

/* An outcome sent and not yet answered: sent again after a lost
 * connection (a duplicate of a delivered one is refused as stale, which
 * changes nothing). */
typedef struct {
    proto_kind kind; /* result or release */
    int64_t job;
    int attempt;
    char lease[HASH_HEX_BYTES];
    int ok;
    char *text; /* result JSON when ok, else the error; may be NULL */
} outcome;

typedef struct {
    const agent_config *cfg;
    char name[PROTO_MAX_NAME_BYTES];
    void *ctx;          /* the worker's, for both of its connections */
    client *conn;       /* the requests and their replies */
    int heartbeat_ms;   /* from the welcome */
    curve_config curve; /* from TFQ_CURVE_KEY / TFQ_SERVER_KEY */
    volatile sig_atomic_t *stop;
    /* the job in hand */
    int64_t job;
    int attempt;
    char lease[HASH_HEX_BYTES];
    /* The running job's stop flag, which the engine reads between steps
     * (hence its type, the engine's): set to 1 by either thread, for a
     * cancel or the process stop; reset by the main thread as a job
     * starts. */
    volatile sig_atomic_t job_stop;
    /* lock guards held[] and nheld, which both threads read and change
     * (the heartbeat thread marks jobs cancelled); nothing else. */
    pthread_mutex_t lock;
    held_job held[AGENT_MAX_BATCH];
    int nheld;
    outcome sent[AGENT_MAX_BATCH + 1];
    int nsent;
    double mean_us; /* run time of recent jobs; 0: none run yet */
    char result[16384]; /* the running train job's result JSON */
} agent;

/* (Re)connects the requests' connection. */
static int agent_open(agent *a, tfq_error *e)
{
    if (a->conn != NULL)
        return client_reconnect(a->conn, e);
    client_opts o = {.endpoint = a->cfg->connect, .routing_id = a->name,
                     .ctx = a->ctx, .curve = &a->curve,
                     .reply_timeout_ms = AGENT_REPLY_TIMEOUT_MS};
    a->conn = client_open(&o, e);
    return a->conn != NULL ? 0 : e->code;
}

/* Marks the held attempt (job, attempt) cancelled; stops it if it runs.
 * Called from both threads. */
static void cancel_held(agent *a, int64_t job, int attempt)
{
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < a->nheld; i++)
        if (a->held[i].job == job && a->held[i].attempt == attempt &&
            !a->held[i].cancelled) {
            a->held[i].cancelled = 1;
            log_warn("job %lld attempt %d cancelled by the coordinator",
                     (long long)job, attempt);
            if (job == a->job && attempt == a->attempt)
                a->job_stop = 1;
        }
    pthread_mutex_unlock(&a->lock);
}

/* Acts on a reply that needs no answer: a cancel, or an error (logged). */
static void note_reply(agent *a, const proto_msg *m)
{
    if (m->kind == PROTO_CANCEL)
        cancel_held(a, m->job, m->attempt);
    else if (m->kind == PROTO_ERROR)
        log_warn("the coordinator refused a %s: %s", proto_kind_name(m->re),
                 m->msg);
}

/* Handles replies that arrived while a job runs: acks, and cancels. */
static void drain(agent *a)
{
    proto_msg m;
    tfq_error e = {0};
    while (client_pending(a->conn) > 0 && client_recv(a->conn, &m, 0, &e) == 0)
        note_reply(a, &m);
}

static int hello(agent *a, tfq_error *e)
{
    int backoff = AGENT_BACKOFF_MIN_MS;
    for (int tries = 0; tries < AGENT_HELLO_TRIES; tries++) {
        if (*a->stop)
            return tfq_error_set(e, TFQ_EINTR, "stopped");
        int rc = agent_open(a, e);
        if (rc != 0)
            return rc;
        proto_msg m, r;
        proto_msg_init(&m, PROTO_HELLO);
        m.worker = a->name;
        m.threads = a->cfg->threads > 0 ? a->cfg->threads : 1;
        rc = client_call(a->conn, &m, &r, e);
        if (rc == 0 && r.kind == PROTO_WELCOME) {
            a->heartbeat_ms = r.heartbeat_ms > 0 ? r.heartbeat_ms : 1000;
            log_info("worker %s connected to %s%s; kernels: %s, %d "
                     "thread%s", a->name, a->cfg->connect,
                     a->curve.on ? " (CURVE)" : "", kern_active()->name,
                     m.threads, m.threads == 1 ? "" : "s");
            return 0;
        }
        /* Refused keys and roles do not change by asking again (a refused
         * handshake is said by the connection's monitor). */
        if (rc == TFQ_EPERM)
            return rc;
        if (rc == 0 && r.kind == PROTO_ERROR && r.code == TFQ_EPERM)
            return tfq_error_set(e, TFQ_EPERM, "%s: %s", a->cfg->connect,
                                 r.msg);
        log_warn("hello to %s: %s; retrying in %d ms", a->cfg->connect,
                 rc ? e->msg : "unexpected reply", backoff);
        usleep((useconds_t)backoff * 1000);
        backoff = backoff * 2 > AGENT_BACKOFF_MAX_MS ? AGENT_BACKOFF_MAX_MS
                                                    : backoff * 2;
    }
    return tfq_error_set(e, TFQ_EIO, "coordinator %s did not answer %d "
                         "hellos", a->cfg->connect, AGENT_HELLO_TRIES);
}

static void on_progress(void *ud, int epoch, int epochs, double loss,
                        double test_acc, double images_per_s, double eta_s)
{
    (void)epochs;
    agent *a = ud;
    if (*a->stop)
        a->job_stop = 1;
    proto_msg m;
    proto_msg_init(&m, PROTO_PROGRESS);
    m.job = a->job;
    m.attempt = a->attempt;
    memcpy(m.lease, a->lease, sizeof m.lease);
    m.epoch = epoch;
    m.loss = loss;
    m.test_acc = test_acc;
    m.images_per_s = images_per_s;
    m.eta_s = eta_s;
    tfq_error e = {0};
    client_send(a->conn, &m, 0, &e);
    drain(a);
}

static void on_tick(void *ud)
{
    agent *a = ud;
    if (*a->stop)
        a->job_stop = 1;
    drain(a);
}

/* Uploads a checkpoint in chunks, each acknowledged before the next. */
static int on_checkpoint(void *ud, int epoch, const uint8_t *blob,
                         size_t bytes)
{
    agent *a = ud;
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256(blob, bytes, digest);
    hash_hex(digest, hex);
    size_t off = 0;
    do {
        size_t n = bytes - off < PROTO_MAX_CHUNK_BYTES ? bytes - off
                                                       : PROTO_MAX_CHUNK_BYTES;
        proto_msg m, r;
        proto_msg_init(&m, PROTO_CKPT_PUT);
        m.job = a->job;
        m.attempt = a->attempt;
        memcpy(m.lease, a->lease, sizeof m.lease);
        m.epoch = epoch;
        m.offset = (int64_t)off;
        m.total = (int64_t)bytes;
        memcpy(m.sha256, hex, sizeof m.sha256);
        m.data = blob + off;
        m.data_bytes = n;
        tfq_error e = {0};
        int rc = client_call(a->conn, &m, &r, &e);
        if (rc == 0 && r.kind == PROTO_ERROR)
            rc = tfq_error_set(&e, r.code, "%s", r.msg);
        if (rc != 0) {
            log_warn("job %lld attempt %d: checkpoint of epoch %d not "
                     "stored: %s", (long long)a->job, a->attempt, epoch,
                     e.msg);
            return rc;
        }
        off += n;
    } while (off < bytes);
    return 0;
}

/* ---- heartbeats ---------------------------------------------------------
 * A thread with its own socket, started once per worker, beats every
 * heartbeat_ms for each job the worker holds (the one it runs and those
 * leased behind it), however long one training step takes; a "cancel"
 * reply marks the job cancelled, and stops it if it runs. */

typedef struct {
    agent *a;
    client *conn; /* its own; the thread's once started */
    pthread_t thread;
    atomic_int running; /* cleared by the main thread to end it */
} beater;

/* Sends a heartbeat for each job held, not cancelled; never blocks. */
static void beat_held(beater *b)
{
    agent *a = b->a;
    struct {
        int64_t job;
        int attempt;
        char lease[HASH_HEX_BYTES];
    } due[AGENT_MAX_BATCH];
    int n = 0;
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < a->nheld; i++)
        if (!a->held[i].cancelled) {
            due[n].job = a->held[i].job;
            memcpy(due[n].lease, a->held[i].lease, sizeof due[n].lease);
            due[n++].attempt = a->held[i].attempt;
        }
    pthread_mutex_unlock(&a->lock);
    for (int i = 0; i < n; i++) {
        proto_msg m;
        proto_msg_init(&m, PROTO_HEARTBEAT);
        m.job = due[i].job;
        m.attempt = due[i].attempt;
        memcpy(m.lease, due[i].lease, sizeof m.lease);
        tfq_error e = {0};
        client_send(b->conn, &m, ZMQ_DONTWAIT, &e);
    }
}

/* Whether the worker holds a job the coordinator has not cancelled. */
static int holds_any(agent *a)
{
    pthread_mutex_lock(&a->lock);
    int n = 0;
    for (int i = 0; i < a->nheld; i++)
        n += !a->held[i].cancelled;
    pthread_mutex_unlock(&a->lock);
    return n > 0;
}

static void *beat_main(void *arg)
{
    beater *b = arg;
    agent *a = b->a;
    int64_t next_ms = 0;
    int holding = 0;
    while (atomic_load(&b->running)) {
        if (*a->stop)
            a->job_stop = 1; /* SIGTERM: the job stops after its step */
        int now_holding = holds_any(a);
        if (now_holding && !holding) /* newly leased: the lease is fresh */
            next_ms = clock_mono_ms() + a->heartbeat_ms;
        holding = now_holding;
        if (holding && clock_mono_ms() >= next_ms) {
            beat_held(b);
            next_ms = clock_mono_ms() + a->heartbeat_ms;
        }
        proto_msg r;
        tfq_error e = {0};
        int rc = client_recv(b->conn, &r, 20, &e);
        if (rc == TFQ_EPERM) {
            log_error("heartbeats: %s; no more heartbeats", e.msg);
            break;
        }
        if (rc == 0 && r.kind == PROTO_CANCEL)
            cancel_held(a, r.job, r.attempt);
    }
    return NULL;
}

/* Opens the heartbeat connection, sees it answered, and starts its thread.
 * Fails, with the reason in e, when any of them cannot be had: a worker
 * must not run jobs that nothing heartbeats (the coordinator would take
 * them back).  ZeroMQ connects in the background, so a socket made is not
 * yet a connection: one round trip proves it, a "status" of the grid ""
 * (which no grid is called), answered "error" from one index lookup. */
static int beater_start(beater *b, agent *a, tfq_error *e)
{
    char id[PROTO_MAX_NAME_BYTES + 8];
    snprintf(id, sizeof id, "%s/beat", a->name);
    client_opts o = {.endpoint = a->cfg->connect, .routing_id = id,
                     .ctx = a->ctx, .curve = &a->curve,
                     .reply_timeout_ms = AGENT_REPLY_TIMEOUT_MS};
    b->a = a;
    b->conn = client_open(&o, e);
    if (b->conn == NULL)
        return tfq_error_wrap(e, e->code, "the heartbeat connection");
    proto_msg m, r;
    proto_msg_init(&m, PROTO_STATUS);
    m.grid = "";
    int rc = client_call(b->conn, &m, &r, e);
    if (rc != 0) {
        client_destroy(&b->conn);
        return tfq_error_wrap(e, rc, "the heartbeat connection");
    }
    atomic_init(&b->running, 1);
    if (pthread_create(&b->thread, NULL, beat_main, b) != 0) {
        client_destroy(&b->conn);
        return tfq_error_set(e, TFQ_ENOMEM, "cannot start the heartbeat "
                             "thread: %s", strerror(errno));
    }
    return 0;
}

static void beater_stop(beater *b)
{
    atomic_store(&b->running, 0);
    pthread_join(b->thread, NULL);
    client_destroy(&b->conn);
}

/* ---- the held jobs and the outcomes in flight --------------------------- */

/* Appends the job in r to the held jobs. */
static int hold(agent *a, const proto_msg *r, tfq_error *e)
{
    if (a->nheld == AGENT_MAX_BATCH)
        return tfq_error_set(e, TFQ_ERANGE, "the coordinator sent more jobs "
                             "than asked for");
    char *spec = strdup(r->spec);
    if (spec == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    pthread_mutex_lock(&a->lock);
    held_job *h = &a->held[a->nheld++];
    h->job = r->job;
    h->attempt = r->attempt;
    memcpy(h->lease, r->lease, sizeof h->lease);
    h->cancelled = 0;
    h->spec = spec;
    memcpy(h->sha256, r->sha256, sizeof h->sha256);
    memcpy(h->init, r->init, sizeof h->init);
    pthread_mutex_unlock(&a->lock);
    return 0;
}

/* Whether the oldest held job was cancelled (the heartbeat thread may set
 * it at any time). */
static int held_cancelled(agent *a)
{
    pthread_mutex_lock(&a->lock);
    int cancelled = a->held[0].cancelled;
    pthread_mutex_unlock(&a->lock);
    return cancelled;
}

/* Drops the oldest held job (the one that ran). */
static void unhold(agent *a)
{
    pthread_mutex_lock(&a->lock);
    free(a->held[0].spec);
    memmove(&a->held[0], &a->held[1], (size_t)(a->nheld - 1) * sizeof a->held[0]);
    a->nheld--;
    pthread_mutex_unlock(&a->lock);
}

static void sent_clear(agent *a)
{
    for (int i = 0; i < a->nsent; i++)
        free(a->sent[i].text);
    a->nsent = 0;
}

static int send_outcome(agent *a, const outcome *o, tfq_error *e)
{
    proto_msg m;
    proto_msg_init(&m, o->kind);
    m.job = o->job;
    m.attempt = o->attempt;
    memcpy(m.lease, o->lease, sizeof m.lease);
    if (o->kind == PROTO_RESULT) {
        m.ok = o->ok;
        m.result = o->ok ? o->text : NULL;
        m.error = o->ok ? NULL : o->text;
    }
    return client_send(a->conn, &m, 0, e);
}

/* Sends an outcome and keeps it until its reply is seen. */
static int report(agent *a, proto_kind kind, int64_t job, int attempt,
                  const char *lease, int ok, const char *text, tfq_error *e)
{
    outcome *o = &a->sent[a->nsent];
    *o = (outcome){kind, job, attempt, "", ok, text ? strdup(text) : NULL};
    memcpy(o->lease, lease, sizeof o->lease);
    if (text != NULL && o->text == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    a->nsent++;
    return send_outcome(a, o, e);
}

/* How many jobs to ask for: what AGENT_BATCH_MS holds at the recent mean
 * run time, within AGENT_MAX_BATCH and what --max-jobs leaves. */
static int batch_want(const agent *a, int done)
{
    int want = 1;
    if (a->mean_us > 0) {
        double w = AGENT_BATCH_MS * 1000.0 / a->mean_us;
        want = w >= AGENT_MAX_BATCH ? AGENT_MAX_BATCH : w < 1 ? 1 : (int)w;
    }
    want = want > AGENT_MAX_BATCH - a->nheld ? AGENT_MAX_BATCH - a->nheld
                                             : want;
    if (a->cfg->max_jobs > 0 && want > a->cfg->max_jobs - done - a->nheld)
        want = a->cfg->max_jobs - done - a->nheld;
    return want;
}

/* Waits for every reply owed, after sending "ready" for want jobs when want
 * > 0: jobs join the held ones, *retry_ms is set by a "no_job" (else -1).
 * Every outcome sent before is answered then.  A lost connection is
 * reconnected, the outcomes sent again, and the wait repeated. */
static int settle(agent *a, int want, int *retry_ms, tfq_error *e)
{
    int rc = 0;
    for (int tries = 0; tries <= AGENT_HELLO_TRIES; tries++) {
        *retry_ms = -1;
        rc = 0;
        if (want > AGENT_MAX_BATCH - a->nheld)
            want = AGENT_MAX_BATCH - a->nheld;
        if (want > 0) {
            proto_msg m;
            proto_msg_init(&m, PROTO_READY);
            m.max = want;
            rc = client_send(a->conn, &m, 0, e);
        }
        while (rc == 0 && client_pending(a->conn) > 0) {
            proto_msg r;
            rc = client_recv(a->conn, &r, AGENT_REPLY_TIMEOUT_MS, e);
            if (rc == TFQ_EIO || rc == TFQ_EPERM)
                break;
            if (rc != 0) {
                log_warn("a bad reply from the coordinator: %s", e->msg);
                rc = 0;
            } else if (r.kind == PROTO_JOB) {
                rc = hold(a, &r, e);
            } else if (r.kind == PROTO_NO_JOB) {
                *retry_ms = r.retry_ms;
            } else {
                note_reply(a, &r);
            }
        }
        if (rc != TFQ_EIO) {
            if (rc == 0)
                sent_clear(a);
            return rc;
        }
        log_warn("%s; reconnecting", e->msg);
        if (hello(a, e) != 0)
            return rc;
        for (int i = 0; i < a->nsent; i++)
            send_outcome(a, &a->sent[i], e);
    }
    return rc;
}

/* Runs the held job at the head of the queue and sends how it ended (not
 * waiting for the reply).  Returns TFQ_EINTR when the job was stopped. */
static int run_head(agent *a, tfq_error *e)
{
    held_job *h = &a->held[0];
    a->job = h->job;
    a->attempt = h->attempt;
    memcpy(a->lease, h->lease, sizeof a->lease);
    a->job_stop = held_cancelled(a);
    jobspec spec;
    tfq_error je = {0};
    uint8_t *resume = NULL, *init = NULL;
    size_t resume_bytes = 0, init_bytes = 0;
    snprintf(a->result, sizeof a->result, "{}");
    int64_t t0 = clock_mono_us();
    int rc = jobspec_parse(h->spec, &spec, &je);
    if (rc == 0 && h->sha256[0] != '\0') {
        int64_t max = 0;
        tfq_error me = {0};
        job_ckpt_max_bytes(&spec, &max, &me); /* 0: the protocol's bound */
        rc = client_ckpt_get_mem(a->conn, h->sha256, max, &resume,
                                 &resume_bytes, &je);
        if (rc == 0)
            log_info("job %lld attempt %d resumes from checkpoint %.12s",
                     (long long)a->job, a->attempt, h->sha256);
    }
    /* The source's checkpoint the queue found (init_from), else the one
     * the job names (init = SHA, an imported base net). */
    const char *init_sha = h->init[0] != '\0' ? h->init
                           : rc == 0 && spec.kind == JOBSPEC_TRAIN ? spec.init
                                                                   : "";
    if (rc == 0 && init_sha[0] != '\0') {
        rc = client_ckpt_get_mem(a->conn, init_sha, 0, &init, &init_bytes,
                                 &je);
        if (rc == 0)
            log_info("job %lld attempt %d copies layers from checkpoint %.12s",
                     (long long)a->job, a->attempt, init_sha);
    }
    if (rc == 0) {
        job_hooks hooks = {on_progress, on_tick, on_checkpoint, a};
        if (spec.kind == JOBSPEC_SLEEP)
            rc = job_run_sleep(&spec, a->attempt, resume, resume_bytes,
                               &hooks, &a->job_stop, &je);
        else
            rc = job_run_train(&spec, a->cfg->data_dir, resume, resume_bytes,
                               init, init_bytes, &hooks, &a->job_stop,
                               a->result, sizeof a->result, &je);
    }
    free(resume);
    free(init);
    double us = (double)(clock_mono_us() - t0);
    a->mean_us = a->mean_us > 0 ? 0.75 * a->mean_us + 0.25 * us
                                : (us > 1 ? us : 1);
    int cancelled = held_cancelled(a);
    int64_t job = a->job;
    int attempt = a->attempt;
    char lease[HASH_HEX_BYTES];
    memcpy(lease, a->lease, sizeof lease);
    a->job = 0;
    unhold(a);
    if (cancelled) /* the coordinator wants nothing more for it */
        return 0;
    if (rc == TFQ_EINTR) {
        report(a, PROTO_RELEASE, job, attempt, lease, 0, NULL, e);
        return TFQ_EINTR;
    }
    return report(a, PROTO_RESULT, job, attempt, lease, rc == 0,
                  rc == 0 ? a->result : je.msg, e);
}

/* Whether the queue has nothing waiting and nothing running: then an idle
 * worker started with --exit-when-idle may go.  While jobs run elsewhere it
 * stays, since a lost one comes back to the queue. */
static int queue_drained(agent *a)
{
    proto_msg m, r;
    tfq_error e = {0};
    proto_msg_init(&m, PROTO_STATUS);
    if (client_call(a->conn, &m, &r, &e) != 0 ||
        r.kind != PROTO_STATUS_REPLY)
        return 0;
    return r.queued == 0 && r.running == 0;
}

/* The worker leaves: the coordinator marks it gone at once (tfq workers)
 * instead of when its heartbeats stop.  Best effort, half a second at most:
 * a coordinator that is not there learns it from the heartbeats. */
static void say_bye(agent *a)
{
    if (a->conn == NULL)
        return;
    proto_msg m;
    proto_msg_init(&m, PROTO_BYE);
    tfq_error e = {0};
    if (client_send_last(a->conn, &m, 500, &e) != 0)
        log_debug("bye not sent: %s", e.msg);
}

int agent_run(const agent_config *cfg, volatile sig_atomic_t *stop,
              tfq_error *e)
{
    agent a = {.cfg = cfg, .stop = stop};
    if (cfg->name != NULL) {
        snprintf(a.name, sizeof a.name, "%s", cfg->name);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = '\0';
        snprintf(a.name, sizeof a.name, "%s-%d", host, (int)getpid());
    }
    pthread_mutex_init(&a.lock, NULL);
    a.ctx = zmq_ctx_new();
    int rc = curve_client_from_env(&a.curve, e);
    if (rc == 0)
        rc = a.ctx ? hello(&a, e)
                   : tfq_error_set(e, TFQ_EIO, "zmq context");
    beater beat;
    if (rc == 0)
        rc = beater_start(&beat, &a, e);
    int beating = rc == 0;
    int done = 0;
    while (rc == 0 && !*stop && (cfg->max_jobs == 0 || done < cfg->max_jobs)) {
        if (a.nheld == 0) {
            /* Ask, after the outcomes sent behind the last job: the asking
             * shares their round trip and their commit. */
            int retry_ms;
            rc = settle(&a, batch_want(&a, done), &retry_ms, e);
            if (rc != 0)
                break;
            if (a.nheld == 0) {
                if (cfg->exit_when_idle && queue_drained(&a))
                    break;
                usleep((useconds_t)(retry_ms > 0 ? retry_ms : 200) * 1000);
                continue;
            }
        }
        if (held_cancelled(&a)) {
            unhold(&a);
            continue;
        }
        log_debug("running job %lld attempt %d", (long long)a.held[0].job,
                  a.held[0].attempt);
        if (run_head(&a, e) == TFQ_EINTR)
            break;
        done++;
        drain(&a);
    }
    /* Stopping: the jobs leased and not started go back, and every outcome
     * sent is seen answered before the worker goes. */
    while (a.nheld > 0) {
        if (!held_cancelled(&a))
            report(&a, PROTO_RELEASE, a.held[0].job, a.held[0].attempt,
                   a.held[0].lease, 0, NULL, e);
        unhold(&a);
    }
    if (a.conn != NULL && (a.nsent > 0 || client_pending(a.conn) > 0)) {
        int retry_ms;
        tfq_error se = {0};
        if (settle(&a, 0, &retry_ms, &se) != 0)
            log_warn("outcomes not confirmed: %s", se.msg);
    }
    sent_clear(&a);
    say_bye(&a);
    if (rc == 0 && *stop)
        rc = tfq_error_set(e, TFQ_EINTR, "stopped");
    if (beating)
        beater_stop(&beat);
    client_destroy(&a.conn);
    if (a.ctx)
        zmq_ctx_term(a.ctx);
    pthread_mutex_destroy(&a.lock);
    return rc;
}
