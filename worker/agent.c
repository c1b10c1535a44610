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

#include "../common/hash.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "job.h"
#include "jobspec.h"

/* Hellos tried before giving up on a coordinator that never answers. */
#define AGENT_HELLO_TRIES 20

typedef struct {
    const agent_config *cfg;
    char name[PROTO_MAX_NAME_BYTES];
    void *ctx, *sock;
    int pending;      /* requests sent whose reply has not come yet */
    int heartbeat_ms; /* from the welcome */
    proto_unpacked up;
    volatile sig_atomic_t *stop;
    /* the job in hand */
    int64_t job;
    int attempt;
    volatile sig_atomic_t job_stop; /* cancel, or the process stop */
    struct beater_s *beat;
} agent;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void agent_close(agent *a)
{
    if (a->sock != NULL)
        zmq_close(a->sock);
    a->sock = NULL;
    a->pending = 0;
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
    return proto_decode(zmq_msg_data(frame), zmq_msg_size(frame), m, &a->up,
                        e);
}

/* Handles replies that arrived while a job runs: acks, and cancels. */
static void drain(agent *a, zmq_msg_t *frame)
{
    proto_msg m;
    tfq_error e = {0};
    while (a->pending > 0 && agent_recv(a, &m, 0, frame, &e) == 0)
        if (m.kind == PROTO_CANCEL && m.job == a->job &&
            m.attempt == a->attempt) {
            log_warn("job %lld attempt %d cancelled by the coordinator",
                     (long long)a->job, a->attempt);
            a->job_stop = 1;
        }
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
            log_info("worker %s connected to %s", a->name, a->cfg->connect);
            return 0;
        }
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
 * A thread with its own socket, started once per worker, beats for the job
 * in hand (the main thread publishes it in beat_job / beat_attempt), however
 * long one training step takes; a "cancel" reply stops the job. */

typedef struct beater_s {
    agent *a;
    pthread_t thread;
    volatile int running;
    int64_t job;  /* published by the main thread; 0: no job */
    int attempt;
} beater;

static void beater_set(beater *b, int64_t job, int attempt)
{
    __atomic_store_n(&b->attempt, attempt, __ATOMIC_RELEASE);
    __atomic_store_n(&b->job, job, __ATOMIC_RELEASE);
}

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
    zmq_connect(sock, a->cfg->connect);
    proto_unpacked up;
    proto_unpacked_init(&up);
    int64_t beat_for = 0, next_ms = 0;
    while (b->running) {
        int64_t job = __atomic_load_n(&b->job, __ATOMIC_ACQUIRE);
        int attempt = __atomic_load_n(&b->attempt, __ATOMIC_ACQUIRE);
        if (*a->stop)
            a->job_stop = 1; /* SIGTERM: the job stops after its step */
        if (job != beat_for) { /* a new job: its lease is fresh */
            beat_for = job;
            next_ms = mono_ms() + a->heartbeat_ms;
        }
        if (job != 0 && mono_ms() >= next_ms) {
            proto_msg m;
            proto_msg_init(&m, PROTO_HEARTBEAT);
            m.job = job;
            m.attempt = attempt;
            msgpack_sbuffer buf;
            msgpack_sbuffer_init(&buf);
            tfq_error e = {0};
            if (proto_encode(&m, &buf, &e) == 0)
                zmq_send(sock, buf.data, buf.size, ZMQ_DONTWAIT);
            msgpack_sbuffer_destroy(&buf);
            next_ms = mono_ms() + a->heartbeat_ms;
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
            r.kind == PROTO_CANCEL && r.job == job && r.attempt == attempt) {
            log_warn("job %lld attempt %d cancelled by the coordinator",
                     (long long)job, attempt);
            a->job_stop = 1;
        }
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
    beater_set(b, 0, 0);
    return pthread_create(&b->thread, NULL, beat_main, b) == 0 ? 0 : -1;
}

static void beater_stop(beater *b)
{
    b->running = 0;
    pthread_join(b->thread, NULL);
}

/* Sends the outcome m and, if ask, a "ready" right behind it; the reply
 * to the outcome is checked (a refusal is logged) and the reply to "ready"
 * left in next. */
static int report(agent *a, const proto_msg *m, int ask, proto_msg *next,
                  zmq_msg_t *frame, tfq_error *e)
{
    proto_msg ready, reply;
    int rc = agent_send(a, m, e);
    if (rc == 0 && ask) {
        proto_msg_init(&ready, PROTO_READY);
        rc = agent_send(a, &ready, e);
    }
    int first = 1;
    while (rc == 0 && a->pending > 0) {
        rc = agent_recv(a, first || !ask ? &reply : next,
                        AGENT_REPLY_TIMEOUT_MS, frame, e);
        if (rc == 0 && first && reply.kind == PROTO_ERROR)
            log_warn("job %lld attempt %d: the coordinator refused the %s: "
                     "%s", (long long)m->job, m->attempt,
                     proto_kind_name(m->kind), reply.msg);
        first = 0;
    }
    return rc;
}

/* Runs the job in r and reports how it ended; with want_next it also asks
 * for the next job, whose answer goes to *next (*have_next set). */
static int run_job(agent *a, const proto_msg *r, int want_next,
                   proto_msg *next, int *have_next, zmq_msg_t *frame,
                   tfq_error *e)
{
    a->job = r->job;
    a->attempt = r->attempt;
    a->job_stop = 0;
    job_spec spec;
    tfq_error je = {0};
    uint8_t *resume = NULL, *init = NULL;
    size_t resume_bytes = 0, init_bytes = 0;
    char resume_sha[HASH_HEX_BYTES], init_sha[HASH_HEX_BYTES];
    static char result[2048];
    memcpy(resume_sha, r->sha256, sizeof resume_sha);
    memcpy(init_sha, r->init, sizeof init_sha);
    snprintf(result, sizeof result, "{}");
    beater_set(a->beat, a->job, a->attempt);
    int rc = jobspec_parse(r->spec, &spec, &je);
    if (rc == 0 && resume_sha[0] != '\0') {
        rc = fetch_checkpoint(a, resume_sha, &resume, &resume_bytes, frame,
                              &je);
        if (rc == 0)
            log_info("job %lld attempt %d resumes from checkpoint %.12s",
                     (long long)a->job, a->attempt, resume_sha);
    }
    if (rc == 0 && init_sha[0] != '\0') {
        rc = fetch_checkpoint(a, init_sha, &init, &init_bytes, frame, &je);
        if (rc == 0)
            log_info("job %lld attempt %d copies layers from checkpoint %.12s",
                     (long long)a->job, a->attempt, init_sha);
    }
    if (rc == 0) {
        hook_ctx h = {a, frame};
        job_hooks hooks = {on_progress, on_tick, on_checkpoint, &h};
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
    beater_set(a->beat, 0, 0);
    proto_msg m;
    if (rc == TFQ_EINTR) {
        proto_msg_init(&m, PROTO_RELEASE);
    } else {
        proto_msg_init(&m, PROTO_RESULT);
        m.ok = rc == 0;
        m.result = rc == 0 ? result : NULL;
        m.error = rc == 0 ? NULL : je.msg;
    }
    m.job = a->job;
    m.attempt = a->attempt;
    /* The outcome must reach the coordinator: across a lost connection or
     * a coordinator restart it is sent again (a duplicate of a delivered
     * one is refused as stale, which changes nothing).  When the worker
     * wants another job, "ready" goes right behind it, so the two share one
     * round trip (and one commit at the coordinator). */
    int ask = want_next && rc != TFQ_EINTR && !*a->stop;
    int src = report(a, &m, ask, next, frame, e);
    for (int tries = 0; src == TFQ_EIO && tries < AGENT_HELLO_TRIES; tries++) {
        log_warn("job %lld attempt %d: %s; reconnecting to report it",
                 (long long)a->job, a->attempt, e->msg);
        if (hello(a, frame, e) == 0)
            src = report(a, &m, ask, next, frame, e);
    }
    if (src != 0)
        log_warn("job %lld attempt %d: %s not confirmed: %s",
                 (long long)a->job, a->attempt, proto_kind_name(m.kind),
                 e->msg);
    *have_next = src == 0 && ask;
    a->job = 0;
    return rc == TFQ_EINTR ? TFQ_EINTR : 0;
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
    proto_unpacked_init(&a.up);
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    a.ctx = zmq_ctx_new();
    int rc = a.ctx ? hello(&a, &frame, e)
                   : tfq_error_set(e, TFQ_EIO, "zmq context");
    beater beat;
    int beating = rc == 0 && beater_start(&beat, &a) == 0;
    if (rc == 0 && !beating)
        rc = tfq_error_set(e, TFQ_ENOMEM, "cannot start the heartbeat thread");
    a.beat = &beat;
    int done = 0, have = 0;
    proto_msg r;
    while (rc == 0 && !*stop && (cfg->max_jobs == 0 || done < cfg->max_jobs)) {
        if (!have) {
            proto_msg m;
            proto_msg_init(&m, PROTO_READY);
            rc = request(&a, &m, &r, &frame, e);
            if (rc != 0) {
                log_warn("%s; reconnecting", e->msg);
                rc = hello(&a, &frame, e);
                continue;
            }
        }
        have = 0;
        if (r.kind == PROTO_NO_JOB) {
            int retry_ms = r.retry_ms > 0 ? r.retry_ms : 200;
            if (cfg->exit_when_idle && queue_drained(&a, &frame))
                break;
            usleep((useconds_t)retry_ms * 1000);
            continue;
        }
        if (r.kind != PROTO_JOB) {
            log_warn("unexpected %s from the coordinator", proto_kind_name(r.kind));
            continue;
        }
        log_debug("running job %lld attempt %d", (long long)r.job, r.attempt);
        proto_msg next;
        int want = cfg->max_jobs == 0 || done + 1 < cfg->max_jobs;
        rc = run_job(&a, &r, want, &next, &have, &frame, e);
        if (have)
            r = next;
        done++;
    }
    if (rc == 0 && *stop)
        rc = tfq_error_set(e, TFQ_EINTR, "stopped");
    if (beating)
        beater_stop(&beat);
    zmq_msg_close(&frame);
    agent_close(&a);
    if (a.ctx)
        zmq_ctx_term(a.ctx);
    proto_unpacked_release(&a.up);
    return rc;
}
