#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

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
    void *ctx, *sock;
    int pending;      /* replies owed to the requests sent */
    int batch_left;   /* "job" replies still to come for the last "ready" */
    int heartbeat_ms; /* from the welcome */
    proto_unpacked up;
    curve_config curve; /* from TFQ_CURVE_KEY / TFQ_SERVER_KEY */
    void *monitor;      /* CURVE: sock's handshakes */
    volatile sig_atomic_t *stop;
    /* the job in hand */
    int64_t job;
    int attempt;
    char lease[HASH_HEX_BYTES];
    volatile sig_atomic_t job_stop; /* cancel, or the process stop */
    struct beater_s *beat;
    /* the jobs held, oldest first; the heartbeat thread reads it */
    pthread_mutex_t lock;
    held_job held[AGENT_MAX_BATCH];
    int nheld;
    outcome sent[AGENT_MAX_BATCH + 1];
    int nsent;
    double mean_us; /* run time of recent jobs; 0: none run yet */
} agent;

static void agent_close(agent *a)
{
    curve_monitor_close(a->monitor);
    a->monitor = NULL;
    if (a->sock != NULL)
        zmq_close(a->sock);
    a->sock = NULL;
    a->pending = 0;
    a->batch_left = 0;
}

static int agent_open(agent *a, tfq_error *e)
{
    agent_close(a);
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    if (a->sock == NULL)
        return tfq_error_set(e, TFQ_EIO, "zmq: %s", zmq_strerror(errno));
    int zero = 0;
    zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(a->sock, ZMQ_ROUTING_ID, a->name, strlen(a->name));
    int rc = curve_socket_client(a->sock, &a->curve, e);
    if (rc != 0)
        return rc;
    /* Plaintext too: a coordinator that wants CURVE then says so. */
    a->monitor = curve_monitor_open(a->ctx, a->sock);
    if (zmq_connect(a->sock, a->cfg->connect) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "cannot connect to %s: %s",
                             a->cfg->connect, zmq_strerror(errno));
    return 0;
}

static int agent_send(agent *a, const proto_msg *m, tfq_error *e)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = proto_encode(m, &b, e);
    if (rc == 0 && zmq_send(a->sock, b.data, b.size, 0) < 0)
        rc = tfq_error_set(e, TFQ_EIO, "send: %s", zmq_strerror(errno));
    if (rc == 0)
        a->pending++;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Receives one reply within timeout_ms into m (pointers valid until the
 * next receive).  TFQ_EIO on timeout. */
static int agent_recv(agent *a, proto_msg *m, int timeout_ms, zmq_msg_t *frame,
                      tfq_error *e)
{
    zmq_pollitem_t item = {a->sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n <= 0 && timeout_ms > 0) {
        /* Refused at the handshake (no CURVE, a key not allowed): asking
         * again on a new socket would not change that. */
        char why[256];
        if (curve_handshake_refused(a->monitor, a->curve.on, why, sizeof why))
            return tfq_error_set(e, TFQ_EPERM, "%s: %s", a->cfg->connect, why);
        /* A reply is lost: start over on a new socket, or every later
         * reply would be taken for the one still awaited. */
        tfq_error oe = {0};
        agent_open(a, &oe);
        return tfq_error_set(e, TFQ_EIO, "no reply from %s within %d ms",
                             a->cfg->connect, timeout_ms);
    }
    if (n <= 0)
        return tfq_error_set(e, TFQ_EIO, "no reply yet");
    zmq_msg_close(frame);
    zmq_msg_init(frame);
    if (zmq_msg_recv(frame, a->sock, 0) < 0)
        return tfq_error_set(e, TFQ_EIO, "recv: %s", zmq_strerror(errno));
    if (a->pending > 0)
        a->pending--;
    int rc = proto_decode(zmq_msg_data(frame), zmq_msg_size(frame), m,
                          &a->up, e);
    if (rc == 0 && m->kind == PROTO_JOB) {
        /* One "ready", several replies: the first says how many follow. */
        if (a->batch_left == 0)
            a->pending += m->more;
        a->batch_left = m->more;
    }
    return rc;
}

/* Marks the held attempt (job, attempt) cancelled; stops it if it runs.
 * Called from both threads. */
static void cancel_held(agent *a, int64_t job, int attempt)
{
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < a->nheld; i++)
        if (a->held[i].job == job && a->held[i].attempt == attempt &&
            !a->held[i].cancelled) {
            __atomic_store_n(&a->held[i].cancelled, 1, __ATOMIC_RELAXED);
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
static void drain(agent *a, zmq_msg_t *frame)
{
    proto_msg m;
    tfq_error e = {0};
    while (a->pending > 0 && agent_recv(a, &m, 0, frame, &e) == 0)
        note_reply(a, &m);
}

/* Sends m and waits for the reply to it, skipping replies to earlier
 * messages (replies come in order). */
static int request(agent *a, const proto_msg *m, proto_msg *reply,
                   zmq_msg_t *frame, tfq_error *e)
{
    int rc = agent_send(a, m, e);
    while (rc == 0) {
        rc = agent_recv(a, reply, AGENT_REPLY_TIMEOUT_MS, frame, e);
        if (rc == 0 && a->pending == 0)
            return 0;
    }
    return rc;
}

static int hello(agent *a, zmq_msg_t *frame, tfq_error *e)
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
        rc = request(a, &m, &r, frame, e);
        if (rc == 0 && r.kind == PROTO_WELCOME) {
            a->heartbeat_ms = r.heartbeat_ms > 0 ? r.heartbeat_ms : 1000;
            log_info("worker %s connected to %s%s; kernels: %s, %d "
                     "thread%s", a->name, a->cfg->connect,
                     a->curve.on ? " (CURVE)" : "", kern_active()->name,
                     m.threads, m.threads == 1 ? "" : "s");
            return 0;
        }
        /* Refused keys and roles do not change by asking again (a refused
         * handshake is found by agent_recv when the reply times out). */
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

typedef struct {
    agent *a;
    zmq_msg_t *frame;
} hook_ctx;

static void on_progress(void *ud, int epoch, int epochs, double loss,
                        double test_acc, double images_per_s, double eta_s)
{
    (void)epochs;
    hook_ctx *h = ud;
    agent *a = h->a;
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
    agent_send(a, &m, &e);
    drain(a, h->frame);
}

static void on_tick(void *ud)
{
    hook_ctx *h = ud;
    agent *a = h->a;
    if (*a->stop)
        a->job_stop = 1;
    drain(a, h->frame);
}

/* Uploads a checkpoint in chunks, each acknowledged before the next. */
static int on_checkpoint(void *ud, int epoch, const uint8_t *blob,
                         size_t bytes)
{
    hook_ctx *h = ud;
    agent *a = h->a;
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
        int rc = request(a, &m, &r, h->frame, &e);
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

/* Fetches the checkpoint with this SHA-256 from the coordinator into a
 * malloc'd buffer and checks its hash. */
static int fetch_checkpoint(agent *a, const char *sha, uint8_t **out,
                            size_t *bytes, zmq_msg_t *frame, tfq_error *e)
{
    uint8_t *buf = NULL;
    int64_t total = -1, got = 0;
    int rc = 0;
    while (rc == 0 && (total < 0 || got < total)) {
        proto_msg m, r;
        proto_msg_init(&m, PROTO_CKPT_GET);
        memcpy(m.sha256, sha, sizeof m.sha256);
        m.offset = got;
        rc = request(a, &m, &r, frame, e);
        if (rc != 0)
            break;
        if (r.kind == PROTO_ERROR) {
            rc = tfq_error_set(e, r.code, "checkpoint %.12s: %s", sha, r.msg);
            break;
        }
        if (r.kind != PROTO_CKPT_CHUNK || r.offset != got ||
            (total >= 0 && r.total != total) ||
            r.total > (int64_t)PROTO_MAX_CKPT_BYTES ||
            (int64_t)r.data_bytes > r.total - got ||
            (r.data_bytes == 0 && r.total > got)) {
            rc = tfq_error_set(e, TFQ_EFORMAT, "checkpoint %.12s: bad chunk "
                               "at offset %lld", sha, (long long)got);
            break;
        }
        if (total < 0) {
            total = r.total;
            buf = malloc(total > 0 ? (size_t)total : 1);
            if (buf == NULL) {
                rc = tfq_error_set(e, TFQ_ENOMEM, "checkpoint of %lld bytes",
                                   (long long)total);
                break;
            }
        }
        memcpy(buf + got, r.data, r.data_bytes);
        got += (int64_t)r.data_bytes;
    }
    if (rc == 0) {
        uint8_t digest[HASH_BYTES];
        char hex[HASH_HEX_BYTES];
        hash_sha256(buf, (size_t)total, digest);
        hash_hex(digest, hex);
        if (strcmp(hex, sha) != 0)
            rc = tfq_error_set(e, TFQ_ECHECKSUM, "checkpoint %.12s arrived "
                               "with hash %.12s", sha, hex);
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *bytes = (size_t)total;
    return 0;
}

/* ---- heartbeats ---------------------------------------------------------
 * A thread with its own socket, started once per worker, beats every
 * heartbeat_ms for each job the worker holds (the one it runs and those
 * leased behind it), however long one training step takes; a "cancel"
 * reply marks the job cancelled, and stops it if it runs. */

typedef struct beater_s {
    agent *a;
    pthread_t thread;
    volatile int running;
} beater;

static void *beat_main(void *arg)
{
    beater *b = arg;
    agent *a = b->a;
    void *sock = zmq_socket(a->ctx, ZMQ_DEALER);
    if (sock == NULL)
        return NULL;
    int zero = 0;
    char id[PROTO_MAX_NAME_BYTES + 8];
    snprintf(id, sizeof id, "%s/beat", a->name);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, id, strlen(id));
    tfq_error ce = {0};
    curve_socket_client(sock, &a->curve, &ce);
    zmq_connect(sock, a->cfg->connect);
    proto_unpacked up;
    proto_unpacked_init(&up);
    int64_t next_ms = 0;
    int holding = 0;
    while (b->running) {
        if (*a->stop)
            a->job_stop = 1; /* SIGTERM: the job stops after its step */
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
        if (n > 0 && !holding) /* newly leased: the lease is fresh */
            next_ms = clock_mono_ms() + a->heartbeat_ms;
        holding = n > 0;
        if (n > 0 && clock_mono_ms() >= next_ms) {
            for (int i = 0; i < n; i++) {
                proto_msg m;
                proto_msg_init(&m, PROTO_HEARTBEAT);
                m.job = due[i].job;
                m.attempt = due[i].attempt;
                memcpy(m.lease, due[i].lease, sizeof m.lease);
                msgpack_sbuffer buf;
                msgpack_sbuffer_init(&buf);
                tfq_error e = {0};
                if (proto_encode(&m, &buf, &e) == 0)
                    zmq_send(sock, buf.data, buf.size, ZMQ_DONTWAIT);
                msgpack_sbuffer_destroy(&buf);
            }
            next_ms = clock_mono_ms() + a->heartbeat_ms;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        zmq_msg_t f;
        zmq_msg_init(&f);
        proto_msg r;
        tfq_error e = {0};
        if (zmq_msg_recv(&f, sock, 0) >= 0 &&
            proto_decode(zmq_msg_data(&f), zmq_msg_size(&f), &r, &up,
                         &e) == 0 &&
            r.kind == PROTO_CANCEL)
            cancel_held(a, r.job, r.attempt);
        zmq_msg_close(&f);
    }
    proto_unpacked_release(&up);
    zmq_close(sock);
    return NULL;
}

static int beater_start(beater *b, agent *a)
{
    b->a = a;
    b->running = 1;
    return pthread_create(&b->thread, NULL, beat_main, b) == 0 ? 0 : -1;
}

static void beater_stop(beater *b)
{
    b->running = 0;
    pthread_join(b->thread, NULL);
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
    return __atomic_load_n(&a->held[0].cancelled, __ATOMIC_RELAXED);
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
    return agent_send(a, &m, e);
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
static int settle(agent *a, int want, int *retry_ms, zmq_msg_t *frame,
                  tfq_error *e)
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
            rc = agent_send(a, &m, e);
        }
        while (rc == 0 && a->pending > 0) {
            proto_msg r;
            rc = agent_recv(a, &r, AGENT_REPLY_TIMEOUT_MS, frame, e);
            if (rc == TFQ_EIO)
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
        if (hello(a, frame, e) != 0)
            return rc;
        for (int i = 0; i < a->nsent; i++)
            send_outcome(a, &a->sent[i], e);
    }
    return rc;
}

/* Runs the held job at the head of the queue and sends how it ended (not
 * waiting for the reply).  Returns TFQ_EINTR when the job was stopped. */
static int run_head(agent *a, zmq_msg_t *frame, tfq_error *e)
{
    held_job *h = &a->held[0];
    a->job = h->job;
    a->attempt = h->attempt;
    memcpy(a->lease, h->lease, sizeof a->lease);
    a->job_stop = held_cancelled(a);
    job_spec spec;
    tfq_error je = {0};
    uint8_t *resume = NULL, *init = NULL;
    size_t resume_bytes = 0, init_bytes = 0;
    static char result[16384];
    snprintf(result, sizeof result, "{}");
    int64_t t0 = clock_mono_us();
    int rc = jobspec_parse(h->spec, &spec, &je);
    if (rc == 0 && h->sha256[0] != '\0') {
        rc = fetch_checkpoint(a, h->sha256, &resume, &resume_bytes, frame,
                              &je);
        if (rc == 0)
            log_info("job %lld attempt %d resumes from checkpoint %.12s",
                     (long long)a->job, a->attempt, h->sha256);
    }
    if (rc == 0 && h->init[0] != '\0') {
        rc = fetch_checkpoint(a, h->init, &init, &init_bytes, frame, &je);
        if (rc == 0)
            log_info("job %lld attempt %d copies layers from checkpoint %.12s",
                     (long long)a->job, a->attempt, h->init);
    }
    if (rc == 0) {
        hook_ctx hc = {a, frame};
        job_hooks hooks = {on_progress, on_tick, on_checkpoint, &hc};
        if (spec.kind == JOB_SLEEP)
            rc = job_run_sleep(&spec, a->attempt, resume, resume_bytes,
                               &hooks, &a->job_stop, &je);
        else
            rc = job_run_train(&spec, a->cfg->data_dir, resume, resume_bytes,
                               init, init_bytes, &hooks, &a->job_stop, result,
                               sizeof result, &je);
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
                  rc == 0 ? result : je.msg, e);
}

/* Whether the queue has nothing waiting and nothing running: then an idle
 * worker started with --exit-when-idle may go.  While jobs run elsewhere it
 * stays, since a lost one comes back to the queue. */
static int queue_drained(agent *a, zmq_msg_t *frame)
{
    proto_msg m, r;
    tfq_error e = {0};
    proto_msg_init(&m, PROTO_STATUS);
    if (request(a, &m, &r, frame, &e) != 0 || r.kind != PROTO_STATUS_REPLY)
        return 0;
    return r.queued == 0 && r.running == 0;
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
    proto_unpacked_init(&a.up);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    a.ctx = zmq_ctx_new();
    int rc = curve_client_from_env(&a.curve, e);
    if (rc == 0)
        rc = a.ctx ? hello(&a, &frame, e)
                   : tfq_error_set(e, TFQ_EIO, "zmq context");
    beater beat;
    int beating = rc == 0 && beater_start(&beat, &a) == 0;
    if (rc == 0 && !beating)
        rc = tfq_error_set(e, TFQ_ENOMEM, "cannot start the heartbeat thread");
    a.beat = &beat;
    int done = 0;
    while (rc == 0 && !*stop && (cfg->max_jobs == 0 || done < cfg->max_jobs)) {
        if (a.nheld == 0) {
            /* Ask, after the outcomes sent behind the last job: the asking
             * shares their round trip and their commit. */
            int retry_ms;
            rc = settle(&a, batch_want(&a, done), &retry_ms, &frame, e);
            if (rc != 0)
                break;
            if (a.nheld == 0) {
                if (cfg->exit_when_idle && queue_drained(&a, &frame))
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
        if (run_head(&a, &frame, e) == TFQ_EINTR)
            break;
        done++;
        drain(&a, &frame);
    }
    /* Stopping: the jobs leased and not started go back, and every outcome
     * sent is seen answered before the worker goes. */
    while (a.nheld > 0) {
        if (!held_cancelled(&a))
            report(&a, PROTO_RELEASE, a.held[0].job, a.held[0].attempt,
                   a.held[0].lease, 0, NULL, e);
        unhold(&a);
    }
    if (a.sock != NULL && (a.nsent > 0 || a.pending > 0)) {
        int retry_ms;
        tfq_error se = {0};
        if (settle(&a, 0, &retry_ms, &frame, &se) != 0)
            log_warn("outcomes not confirmed: %s", se.msg);
    }
    sent_clear(&a);
    if (rc == 0 && *stop)
        rc = tfq_error_set(e, TFQ_EINTR, "stopped");
    if (beating)
        beater_stop(&beat);
    zmq_msg_close(&frame);
    agent_close(&a);
    if (a.ctx)
        zmq_ctx_term(a.ctx);
    proto_unpacked_release(&a.up);
    pthread_mutex_destroy(&a.lock);
    return rc;
}
