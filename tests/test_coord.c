/* Protocol tests against the real coordinator: each case starts
 * `tfq coordinator` as a child process on a free loopback port with a fresh
 * state directory, talks to it over ZeroMQ DEALER sockets with the proto
 * codec, and stops it with SIGTERM (which must end it with status 0).  The
 * cases of big reads also run tfq commands against it.
 *
 * The tfq binary comes as argv[2] (meson passes it), or from $TFQ_BIN. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <zmq.h>

#include "check.h"
#include "common/datapack.h"
#include "common/hash.h"
#include "common/proto.h"
#include "common/jobspec.h"
#include "worker/job.h"

/* Generous bounds: the coordinator answers in milliseconds, but a loaded
 * machine many times slower than this one (or a sanitizer build) can be
 * slow to start it.  They only say when to give up. */
#define START_TIMEOUT_MS 60000
#define REPLY_TIMEOUT_MS 30000
#define EXIT_TIMEOUT_MS 30000
/* Heartbeat intervals passed to the coordinator; a lease is lost after 4
 * silent ones.  These tests play workers that never heartbeat unless a
 * case says so: HOLD_HEARTBEAT_MS keeps every lease for 40 s, far longer
 * than any case's steps take however loaded the machine, and
 * EXPIRY_HEARTBEAT_MS is for the case that waits for a lease to expire
 * (2 s). */
#define HOLD_HEARTBEAT_MS 10000
#define EXPIRY_HEARTBEAT_MS 500
#define EXPIRY_TIMEOUT_MS 60000
#define MAX_CONNS 8

static const char *s_tfq;

/* One DEALER connection; a decoded reply points into frame and up, so it
 * stays valid until the next receive on the same connection. */
typedef struct {
    void *sock;
    zmq_msg_t frame;
    proto_unpacked up;
} conn;

typedef struct {
    char dir[256];    /* temporary directory, removed at the end */
    char state[320];  /* the coordinator's state directory */
    char log[320];    /* the coordinator's stderr */
    char ep[256];     /* the endpoint it bound */
    pid_t pid;        /* the coordinator, 0 when not running */
    int heartbeat_ms; /* passed to it */
    void *ctx;
    conn conns[MAX_CONNS];
    int nconns;
} fixture;

typedef struct {
    int64_t queued, running, done, failed;
} counts;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the coordinator process ------------------------------------------- */

/* Reads DIR/endpoint into fx->ep once it holds a whole line; 0 when it
 * does. */
static int read_endpoint(fixture *fx)
{
    char path[400];
    snprintf(path, sizeof path, "%s/endpoint", fx->state);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256] = "";
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = strlen(line);
    if (!ok || n < 2 || line[n - 1] != '\n')
        return -1;
    line[n - 1] = '\0';
    snprintf(fx->ep, sizeof fx->ep, "%s", line);
    return 0;
}

/* Starts `tfq coordinator` bound to bind and waits until it has written its
 * endpoint.  0, or -1 (with a message) when it did not come up. */
static int coord_start(fixture *fx, const char *bind)
{
    char path[400];
    snprintf(path, sizeof path, "%s/endpoint", fx->state);
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int fd = open(fx->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        char hb[16];
        snprintf(hb, sizeof hb, "%d", fx->heartbeat_ms);
        execl(s_tfq, "tfq", "coordinator", "--state", fx->state, "--bind",
              bind, "--heartbeat-ms", hb, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", s_tfq, strerror(errno));
        _exit(127);
    }
    fx->pid = pid;
    int64_t deadline = mono_ms() + START_TIMEOUT_MS;
    while (mono_ms() < deadline) {
        if (read_endpoint(fx) == 0)
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fx->pid = 0;
            fprintf(stderr, "coordinator exited (status 0x%x) before "
                    "binding\n", st);
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "coordinator wrote no endpoint within %d ms\n",
            START_TIMEOUT_MS);
    return -1;
}

/* Sends SIGTERM and waits for the exit.  0 when it exited with status 0
 * within EXIT_TIMEOUT_MS; otherwise -1 (killed with SIGKILL if still
 * running). */
static int coord_stop(fixture *fx)
{
    if (fx->pid <= 0)
        return -1;
    pid_t pid = fx->pid;
    kill(pid, SIGTERM);
    int64_t deadline = mono_ms() + EXIT_TIMEOUT_MS;
    int st = 0;
    while (mono_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fx->pid = 0;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
            fprintf(stderr, "coordinator ended with status 0x%x on "
                    "SIGTERM\n", st);
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "coordinator still running %d ms after SIGTERM\n",
            EXIT_TIMEOUT_MS);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fx->pid = 0;
    return -1;
}

/* ---- connections ------------------------------------------------------- */

/* A DEALER connected to the coordinator, with routing id `id` (NULL: one
 * ZeroMQ picks).  NULL on failure; closed by fixture_release. */
static conn *conn_open(fixture *fx, const char *id)
{
    if (fx->nconns == MAX_CONNS)
        return NULL;
    void *s = zmq_socket(fx->ctx, ZMQ_DEALER);
    if (s == NULL)
        return NULL;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (id != NULL)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    if (zmq_connect(s, fx->ep) != 0) {
        fprintf(stderr, "connect %s: %s\n", fx->ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    conn *c = &fx->conns[fx->nconns++];
    c->sock = s;
    zmq_msg_init(&c->frame);
    proto_unpacked_init(&c->up);
    return c;
}

static int send_raw(conn *c, const void *data, size_t bytes, int flags)
{
    if (zmq_send(c->sock, data, bytes, flags) < 0) {
        fprintf(stderr, "send: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static int send_msg(conn *c, const proto_msg *m)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    tfq_error e = {0};
    int rc = proto_encode(m, &b, &e);
    if (rc != 0)
        fprintf(stderr, "encode %s: %s\n", proto_kind_name(m->kind), e.msg);
    else
        rc = send_raw(c, b.data, b.size, 0);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Receives and decodes one reply within timeout_ms.  0 on success; 1 when
 * nothing came (no message printed); -1 when a reply came but is not one
 * valid single-frame message. */
static int recv_msg(conn *c, proto_msg *m, int timeout_ms)
{
    zmq_pollitem_t item = {c->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return 1;
    zmq_msg_close(&c->frame);
    zmq_msg_init(&c->frame);
    if (zmq_msg_recv(&c->frame, c->sock, 0) < 0) {
        fprintf(stderr, "recv: %s\n", zmq_strerror(errno));
        return -1;
    }
    if (zmq_msg_more(&c->frame)) {
        fprintf(stderr, "reply has more than one frame\n");
        return -1;
    }
    tfq_error e = {0};
    if (proto_decode(zmq_msg_data(&c->frame), zmq_msg_size(&c->frame), m,
                     &c->up, &e) != 0) {
        fprintf(stderr, "undecodable reply: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* Receives one reply, which must be of kind `want`.  0 or -1 (with a
 * message saying what came instead). */
static int expect(conn *c, proto_msg *r, proto_kind want)
{
    int rc = recv_msg(c, r, REPLY_TIMEOUT_MS);
    if (rc == 1) {
        fprintf(stderr, "no reply within %d ms (wanted %s)\n",
                REPLY_TIMEOUT_MS, proto_kind_name(want));
        return -1;
    }
    if (rc != 0)
        return -1;
    if (r->kind != want) {
        fprintf(stderr, "wanted %s, got %s", proto_kind_name(want),
                proto_kind_name(r->kind));
        if (r->kind == PROTO_ERROR)
            fprintf(stderr, " (code %d: %s)", r->code, r->msg);
        fputc('\n', stderr);
        return -1;
    }
    return 0;
}

/* Sends m and receives its reply, which must be of kind want. */
static int request(conn *c, const proto_msg *m, proto_msg *r, proto_kind want)
{
    if (send_msg(c, m) != 0)
        return -1;
    return expect(c, r, want);
}

/* ---- fixture ----------------------------------------------------------- */

static int fixture_init(fixture *fx, int heartbeat_ms)
{
    memset(fx, 0, sizeof *fx);
    fx->heartbeat_ms = heartbeat_ms;
    if (s_tfq == NULL) {
        fprintf(stderr, "no tfq binary: pass it as argv[2] or $TFQ_BIN\n");
        return -1;
    }
    snprintf(fx->dir, sizeof fx->dir, "%s", test_tmpdir());
    snprintf(fx->state, sizeof fx->state, "%s/st", fx->dir);
    snprintf(fx->log, sizeof fx->log, "%s/coord.log", fx->dir);
    fx->ctx = zmq_ctx_new();
    if (fx->ctx == NULL) {
        test_rmtree(fx->dir);
        return -1;
    }
    return 0;
}

/* Kills a coordinator still running, closes every connection, shows the
 * coordinator's log when the case failed, and removes the directory. */
static void fixture_release(fixture *fx, int failed)
{
    if (fx->pid > 0) {
        kill(fx->pid, SIGKILL);
        waitpid(fx->pid, NULL, 0);
        fx->pid = 0;
    }
    for (int i = 0; i < fx->nconns; i++) {
        zmq_close(fx->conns[i].sock);
        zmq_msg_close(&fx->conns[i].frame);
        proto_unpacked_release(&fx->conns[i].up);
    }
    fx->nconns = 0;
    if (fx->ctx != NULL)
        zmq_ctx_term(fx->ctx);
    fx->ctx = NULL;
    if (failed) {
        FILE *f = fopen(fx->log, "r");
        if (f != NULL) {
            char line[1024];
            fprintf(stderr, "--- coordinator log\n");
            while (fgets(line, sizeof line, f) != NULL)
                fputs(line, stderr);
            fclose(f);
        }
    }
    test_rmtree(fx->dir);
}

/* Runs body with a fresh fixture and a coordinator started with
 * heartbeat_ms; cleans up whatever happens. */
static int with_coordinator(int (*body)(fixture *), int heartbeat_ms)
{
    fixture fx;
    if (fixture_init(&fx, heartbeat_ms) != 0)
        return 1;
    int rc = coord_start(&fx, "tcp://127.0.0.1:*") == 0 ? body(&fx) : 1;
    if (rc == 0 && fx.pid > 0 && coord_stop(&fx) != 0)
        rc = 1;
    fixture_release(&fx, rc);
    return rc;
}

/* ---- protocol steps ---------------------------------------------------- */

/* Submits job file text as grid `grid`; it must add `njobs` jobs. */
static int submit(conn *c, const char *grid, const char *text, int njobs)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_SUBMIT);
    m.grid = grid;
    m.spec = text;
    CHECK(request(c, &m, &r, PROTO_SUBMITTED) == 0);
    CHECK(r.grid_id >= 1);
    CHECK_EQ_INT(r.added, njobs);
    return 0;
}

static int status(conn *c, counts *n)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_STATUS);
    CHECK(request(c, &m, &r, PROTO_STATUS_REPLY) == 0);
    n->queued = r.queued;
    n->running = r.running;
    n->done = r.done;
    n->failed = r.failed;
    return 0;
}

/* Says hello as worker name; the welcome must carry the coordinator's
 * heartbeat_ms. */
static int hello(conn *c, const char *name, int heartbeat_ms)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_HELLO);
    m.worker = name;
    m.threads = 1;
    CHECK(request(c, &m, &r, PROTO_WELCOME) == 0);
    CHECK_EQ_INT(r.heartbeat_ms, heartbeat_ms);
    return 0;
}

typedef struct {
    int64_t job;
    int attempt;
    char lease[65]; /* the token every message about the lease carries */
    int64_t sleep_ms; /* from the spec, to tell jobs apart */
} leased;

/* Sends ready; the reply must be a job, described in *l. */
static int ready_job(conn *c, leased *l)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_READY);
    CHECK(request(c, &m, &r, PROTO_JOB) == 0);
    CHECK(r.job >= 1);
    CHECK(r.attempt >= 1);
    CHECK(r.spec != NULL);
    jobspec spec;
    tfq_error e = {0};
    CHECK_MSG(jobspec_parse(r.spec, &spec, &e) == 0, "spec '%s': %s", r.spec,
              e.msg);
    CHECK_EQ_INT(spec.kind, JOBSPEC_SLEEP);
    l->job = r.job;
    l->attempt = r.attempt;
    memcpy(l->lease, r.lease, sizeof l->lease);
    l->sleep_ms = spec.sleep_ms;
    return 0;
}

static int ready_no_job(conn *c)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_READY);
    CHECK(request(c, &m, &r, PROTO_NO_JOB) == 0);
    CHECK(r.retry_ms >= 0);
    return 0;
}

static void result_msg(proto_msg *m, const leased *l)
{
    proto_msg_init(m, PROTO_RESULT);
    m->job = l->job;
    m->attempt = l->attempt;
    memcpy(m->lease, l->lease, sizeof m->lease);
    m->ok = true;
    m->result = "{}";
}

static int result_ok(conn *c, const leased *l)
{
    proto_msg m, r;
    result_msg(&m, l);
    CHECK(request(c, &m, &r, PROTO_ACK) == 0);
    return 0;
}

/* Polls STATUS until pred holds, for at most timeout_ms.  0 when it did. */
static int wait_counts(conn *c, int (*pred)(const counts *), int timeout_ms,
                       counts *n)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        CHECK(status(c, n) == 0);
        if (pred(n))
            return 0;
        if (mono_ms() > deadline)
            break;
        sleep_ms(20);
    }
    fprintf(stderr, "status after %d ms: queued %lld running %lld done %lld "
            "failed %lld\n", timeout_ms, (long long)n->queued,
            (long long)n->running, (long long)n->done, (long long)n->failed);
    return 1;
}

/* ---- malformed_while_serving ------------------------------------------- */

/* The frames a hostile or broken peer sends.  code: the error the protocol
 * prescribes, or 0 where any negative code will do. */
typedef struct {
    const char *what;
    msgpack_sbuffer body;
    int parts; /* 1, or 2 for a multipart message of body twice */
    int code;
} bad_frame;

static void pack_str(msgpack_packer *p, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(p, n);
    msgpack_pack_str_body(p, s, n);
}

/* Names bad[*n] and returns its (empty) body to fill; *n grows by one. */
static msgpack_sbuffer *bad_add(bad_frame *bad, int *n, const char *what,
                                int parts, int code)
{
    bad_frame *b = &bad[(*n)++];
    b->what = what;
    b->parts = parts;
    b->code = code;
    return &b->body;
}

static void pack_envelope(msgpack_packer *p, size_t nkeys, int version,
                          const char *kind)
{
    msgpack_pack_map(p, nkeys);
    pack_str(p, "v");
    msgpack_pack_int(p, version);
    pack_str(p, "k");
    pack_str(p, kind);
}

#define MAX_BAD 10

/* Fills bad[0..n) and returns n (at most MAX_BAD); the caller destroys
 * every body. */
static int bad_frames(bad_frame *bad)
{
    int n = 0;
    for (int i = 0; i < MAX_BAD; i++)
        msgpack_sbuffer_init(&bad[i].body);
    msgpack_packer p;
    msgpack_sbuffer *b;

    /* 0xc1 is never used in msgpack, so this is garbage whatever follows. */
    b = bad_add(bad, &n, "garbage", 1, TFQ_EFORMAT);
    uint8_t junk[64];
    junk[0] = 0xc1;
    uint32_t x = 12345;
    for (size_t i = 1; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 24);
    }
    msgpack_sbuffer_write(b, (const char *)junk, sizeof junk);

    b = bad_add(bad, &n, "no version", 1, TFQ_EVERSION);
    msgpack_packer_init(&p, b, msgpack_sbuffer_write);
    msgpack_pack_map(&p, 1);
    pack_str(&p, "k");
    pack_str(&p, "status");

    b = bad_add(bad, &n, "version 2", 1, TFQ_EVERSION);
    msgpack_packer_init(&p, b, msgpack_sbuffer_write);
    pack_envelope(&p, 2, 2, "status");

    b = bad_add(bad, &n, "unknown kind", 1, TFQ_EINVAL);
    msgpack_packer_init(&p, b, msgpack_sbuffer_write);
    pack_envelope(&p, 2, 1, "frobnicate");

    b = bad_add(bad, &n, "string job id", 1, TFQ_EFORMAT);
    msgpack_packer_init(&p, b, msgpack_sbuffer_write);
    pack_envelope(&p, 5, 1, "result");
    pack_str(&p, "job");
    pack_str(&p, "1");
    pack_str(&p, "attempt");
    msgpack_pack_int(&p, 1);
    pack_str(&p, "ok");
    msgpack_pack_true(&p);

    bad_add(bad, &n, "empty frame", 1, 0);

    /* Each part alone would be a valid status request. */
    b = bad_add(bad, &n, "two frames", 2, TFQ_EFORMAT);
    msgpack_packer_init(&p, b, msgpack_sbuffer_write);
    pack_envelope(&p, 2, 1, "status");

    /* Over PROTO_MAX_FRAME_BYTES but under the socket's ZMQ_MAXMSGSIZE:
     * the codec must refuse it without reading it. */
    b = bad_add(bad, &n, "frame over 4 MiB", 1, TFQ_ERANGE);
    size_t big = PROTO_MAX_FRAME_BYTES + 512;
    char *zeros = calloc(1, big);
    if (zeros != NULL)
        msgpack_sbuffer_write(b, zeros, big);
    free(zeros);
    return n;
}

/* Sends bad frame b from peer c. */
static int send_bad(conn *c, const bad_frame *b)
{
    if (b->parts == 2 &&
        send_raw(c, b->body.data, b->body.size, ZMQ_SNDMORE) != 0)
        return -1;
    return send_raw(c, b->body.data, b->body.size, 0);
}

/* Receives the reply to bad frame b: an error with a negative code (the
 * one the protocol prescribes, where it does) and a message. */
static int expect_bad_reply(conn *c, const bad_frame *b)
{
    proto_msg r;
    int rc = expect(c, &r, PROTO_ERROR);
    if (rc == 0 && !(r.code < 0 && r.msg != NULL && r.msg[0] != '\0')) {
        fprintf(stderr, "error without a code or message\n");
        rc = -1;
    }
    if (rc == 0 && b->code != 0 && r.code != b->code) {
        fprintf(stderr, "code %d (%s), expected %d\n", r.code, r.msg,
                b->code);
        rc = -1;
    }
    if (rc != 0)
        fprintf(stderr, "bad frame '%s' not answered as it should be\n",
                b->what);
    return rc;
}

static int malformed_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *good = conn_open(fx, "good");
    conn *bad = conn_open(fx, "bad");
    CHECK(client && good && bad);

    CHECK(submit(client, "five",
                 "name = j1\nkind = sleep\nsleep_ms = 0\nseed = 1\n---\n"
                 "name = j2\nkind = sleep\nsleep_ms = 0\nseed = 2\n---\n"
                 "name = j3\nkind = sleep\nsleep_ms = 0\nseed = 3\n---\n"
                 "name = j4\nkind = sleep\nsleep_ms = 0\nseed = 4\n---\n"
                 "name = j5\nkind = sleep\nsleep_ms = 0\nseed = 5\n",
                 5) == 0);
    CHECK(hello(good, "good", fx->heartbeat_ms) == 0);

    bad_frame frames[MAX_BAD];
    int nbad = bad_frames(frames);
    int rc = 0;
    /* Ten steps of the good worker (ready, result for each job); before
     * each of the first nbad, the bad peer sends one frame, so the
     * coordinator sees them interleaved.  Replies go to different
     * sockets, so their relative order does not matter. */
    leased l = {0};
    int64_t seen[5] = {0};
    for (int step = 0; step < 10 && rc == 0; step++) {
        const bad_frame *b = step < nbad ? &frames[step] : NULL;
        if (b != NULL)
            rc = send_bad(bad, b);
        if (rc == 0 && step % 2 == 0) {
            rc = ready_job(good, &l);
            for (int i = 0; rc == 0 && i <= step / 2; i++)
                if ((i < step / 2 && seen[i] == l.job) || l.attempt != 1) {
                    fprintf(stderr, "job %lld attempt %d leased again\n",
                            (long long)l.job, l.attempt);
                    rc = -1;
                }
            seen[step / 2] = l.job;
        } else if (rc == 0) {
            rc = result_ok(good, &l);
        }
        if (b != NULL && rc == 0)
            rc = expect_bad_reply(bad, b);
    }
    for (int i = 0; i < MAX_BAD; i++)
        msgpack_sbuffer_destroy(&frames[i].body);
    CHECK(rc == 0);

    /* 5 MiB: over ZMQ_MAXMSGSIZE, so ZeroMQ may drop the connection
     * instead of delivering it; either way the coordinator must go on. */
    size_t huge = (size_t)5 << 20;
    char *zeros = calloc(1, huge);
    CHECK(zeros != NULL);
    rc = send_raw(bad, zeros, huge, 0);
    free(zeros);
    CHECK(rc == 0);
    proto_msg r;
    rc = recv_msg(bad, &r, 1000);
    fprintf(stderr, "5 MiB frame: %s\n",
            rc == 0 ? "answered" : "dropped by ZeroMQ");
    if (rc == 0) {
        CHECK_EQ_INT(r.kind, PROTO_ERROR);
        CHECK(r.code < 0 && r.msg != NULL && r.msg[0] != '\0');
    } else {
        CHECK_EQ_INT(rc, 1); /* nothing at all, not something broken */
    }

    counts n;
    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.done, 5);
    CHECK_EQ_INT(n.queued, 0);
    CHECK_EQ_INT(n.running, 0);
    CHECK_EQ_INT(n.failed, 0);
    /* The good worker is still served after the oversized frame. */
    CHECK(ready_no_job(good) == 0);
    return 0;
}

static int malformed_while_serving(void)
{
    return with_coordinator(malformed_body, HOLD_HEARTBEAT_MS);
}

/* ---- stale_result_rejected --------------------------------------------- */

static int requeued_one(const counts *n)
{
    return n->running == 0 && n->queued == 1;
}

static int stale_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *a = conn_open(fx, "worker-a");
    conn *b = conn_open(fx, "worker-b");
    CHECK(client && a && b);
    CHECK(submit(client, "one", "name = only\nkind = sleep\nsleep_ms = 0\n",
                 1) == 0);

    CHECK(hello(a, "worker-a", fx->heartbeat_ms) == 0);
    leased la, lb;
    CHECK(ready_job(a, &la) == 0);
    CHECK_EQ_INT(la.attempt, 1);

    /* A stays silent: after 4 heartbeats (2 s) the coordinator's timer
     * takes the lease back.  B's lease, from here on, is heartbeaten
     * within a few round trips. */
    counts n;
    CHECK(wait_counts(client, requeued_one, EXPIRY_TIMEOUT_MS, &n) == 0);

    CHECK(hello(b, "worker-b", fx->heartbeat_ms) == 0);
    CHECK(ready_job(b, &lb) == 0);
    CHECK_EQ_INT(lb.job, la.job);
    CHECK_EQ_INT(lb.attempt, 2);

    proto_msg m, r;
    proto_msg_init(&m, PROTO_HEARTBEAT);
    m.job = la.job;
    m.attempt = la.attempt;
    memcpy(m.lease, la.lease, sizeof m.lease);
    CHECK(request(a, &m, &r, PROTO_CANCEL) == 0);
    CHECK_EQ_INT(r.job, la.job);
    CHECK_EQ_INT(r.attempt, 1);

    result_msg(&m, &la);
    CHECK(request(a, &m, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, TFQ_EMISMATCH);
    CHECK_MSG(r.msg != NULL && strstr(r.msg, "attempt") != NULL,
              "msg '%s'", r.msg ? r.msg : "(none)");
    CHECK_EQ_INT(r.re, PROTO_RESULT);

    /* B's attempt is untouched by A's stale messages. */
    proto_msg_init(&m, PROTO_HEARTBEAT);
    m.job = lb.job;
    m.attempt = lb.attempt;
    memcpy(m.lease, lb.lease, sizeof m.lease);
    CHECK(request(b, &m, &r, PROTO_ACK) == 0);
    CHECK(result_ok(b, &lb) == 0);

    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.done, 1);
    CHECK_EQ_INT(n.running, 0);
    CHECK_EQ_INT(n.queued, 0);
    CHECK_EQ_INT(n.failed, 0);

    /* A duplicate of B's result, as a worker re-sends one after a lost
     * connection, is refused and changes nothing. */
    result_msg(&m, &lb);
    CHECK(request(b, &m, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, TFQ_EMISMATCH);
    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.done, 1);
    return 0;
}

static int stale_result_rejected(void)
{
    return with_coordinator(stale_body, EXPIRY_HEARTBEAT_MS);
}

/* ---- deps_order -------------------------------------------------------- */

static int deps_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *w1 = conn_open(fx, "w1");
    conn *w2 = conn_open(fx, "w2");
    CHECK(client && w1 && w2);
    /* sleep_ms tells the jobs apart in the specs the workers get. */
    CHECK(submit(client, "deps",
                 "name = base\nkind = sleep\nsleep_ms = 1\n---\n"
                 "name = d2\nafter = base\nkind = sleep\nsleep_ms = 2\n---\n"
                 "name = d3\nafter = base\nkind = sleep\nsleep_ms = 3\n",
                 3) == 0);
    CHECK(hello(w1, "w1", fx->heartbeat_ms) == 0);
    CHECK(hello(w2, "w2", fx->heartbeat_ms) == 0);

    leased base, d[2];
    CHECK(ready_job(w1, &base) == 0);
    CHECK_EQ_INT(base.sleep_ms, 1);
    /* While base runs, nothing else may start: ask twice. */
    CHECK(ready_no_job(w2) == 0);
    CHECK(ready_no_job(w2) == 0);
    counts n;
    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.running, 1);
    CHECK_EQ_INT(n.queued, 2);

    CHECK(result_ok(w1, &base) == 0);
    CHECK(ready_job(w2, &d[0]) == 0);
    CHECK(ready_job(w1, &d[1]) == 0);
    CHECK(d[0].job != d[1].job);
    CHECK(d[0].job != base.job && d[1].job != base.job);
    CHECK_EQ_INT(d[0].sleep_ms + d[1].sleep_ms, 5);
    CHECK(d[0].sleep_ms == 2 || d[0].sleep_ms == 3);
    CHECK_EQ_INT(d[0].attempt, 1);
    CHECK_EQ_INT(d[1].attempt, 1);

    CHECK(result_ok(w2, &d[0]) == 0);
    CHECK(result_ok(w1, &d[1]) == 0);
    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.done, 3);
    CHECK_EQ_INT(n.queued + n.running + n.failed, 0);
    return 0;
}

static int deps_order(void)
{
    return with_coordinator(deps_body, HOLD_HEARTBEAT_MS);
}

/* ---- ready_batch -------------------------------------------------------
 * A "ready" with "max" gets up to that many jobs (capped by the
 * coordinator), one "job" reply each, counting down in "more"; highest
 * priority, then lowest id, first; each leased once. */

#define BATCH_JOBS 80

/* Sends ready with max; expects n job replies, more = n-1 .. 0; their ids
 * go to ids[] (must ascend). */
static int ready_batch_of(conn *c, int max, int n, leased *got)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_READY);
    m.max = max;
    CHECK(send_msg(c, &m) == 0);
    for (int i = 0; i < n; i++) {
        CHECK(expect(c, &r, PROTO_JOB) == 0);
        CHECK_MSG(r.more == n - 1 - i, "reply %d of %d says %d more", i + 1,
                  n, r.more);
        CHECK_EQ_INT(r.attempt, 1);
        got[i].job = r.job;
        got[i].attempt = r.attempt;
        memcpy(got[i].lease, r.lease, sizeof got[i].lease);
        if (i > 0)
            CHECK(got[i].job > got[i - 1].job);
    }
    return 0;
}

static int batch_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *w = conn_open(fx, "w");
    CHECK(client && w);
    static char text[BATCH_JOBS * 48];
    size_t off = 0;
    for (int i = 0; i < BATCH_JOBS; i++)
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "%sname = j%d\nkind = sleep\nsleep_ms = 0\n",
                                i ? "---\n" : "", i);
    CHECK(submit(client, "batch", text, BATCH_JOBS) == 0);
    conn *w2 = conn_open(fx, "w2");
    CHECK(w2 != NULL);
    CHECK(hello(w, "w", fx->heartbeat_ms) == 0);
    CHECK(hello(w2, "w2", fx->heartbeat_ms) == 0);

    static leased got[BATCH_JOBS];
    int n = 0;
    CHECK(ready_batch_of(w, 0, 1, got + n) == 0); /* max 0 reads as 1 */
    n += 1;
    CHECK(ready_batch_of(w, 5, 5, got + n) == 0);
    n += 5;
    /* One worker holds at most 64 leases, whatever it asks for. */
    CHECK(ready_batch_of(w, 200, 64 - n, got + n) == 0);
    n = 64;
    proto_msg m, r;
    proto_msg_init(&m, PROTO_READY);
    m.max = 64;
    CHECK(request(w, &m, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, TFQ_ERANGE);
    CHECK_MSG(strstr(r.msg, "already holds 64 leases"), "%s", r.msg);
    CHECK(ready_batch_of(w2, 64, BATCH_JOBS - n, got + n) == 0); /* the rest */
    n = BATCH_JOBS;
    for (int i = 1; i < n; i++)
        CHECK(got[i].job > got[i - 1].job); /* each once, in order */
    CHECK(ready_no_job(w2) == 0);
    counts c;
    CHECK(status(client, &c) == 0);
    CHECK_EQ_INT(c.running, BATCH_JOBS);

    /* Results for all of them, sent back to back, then one "ready": the
     * replies come in order. */
    for (int i = 0; i < n; i++) {
        result_msg(&m, &got[i]);
        CHECK(send_msg(i < 64 ? w : w2, &m) == 0);
    }
    for (int i = 0; i < n; i++)
        CHECK(expect(i < 64 ? w : w2, &r, PROTO_ACK) == 0);
    CHECK(ready_no_job(w) == 0);
    CHECK(status(client, &c) == 0);
    CHECK_EQ_INT(c.done, BATCH_JOBS);
    CHECK_EQ_INT(c.running + c.queued + c.failed, 0);
    return 0;
}

static int ready_batch(void)
{
    return with_coordinator(batch_body, HOLD_HEARTBEAT_MS);
}

/* ---- sigterm_graceful -------------------------------------------------- */

static int sigterm_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *w = conn_open(fx, "w");
    CHECK(client && w);
    CHECK(submit(client, "keep",
                 "name = a\nkind = sleep\nsleep_ms = 1\n---\n"
                 "name = b\nafter = a\nkind = sleep\nsleep_ms = 2\n---\n"
                 "name = c\nkind = sleep\nsleep_ms = 3\n",
                 3) == 0);
    CHECK(hello(w, "w", fx->heartbeat_ms) == 0);
    leased l;
    CHECK(ready_job(w, &l) == 0);
    CHECK(result_ok(w, &l) == 0);
    counts before;
    CHECK(status(client, &before) == 0);
    CHECK_EQ_INT(before.done, 1);
    CHECK_EQ_INT(before.queued, 2);
    CHECK_EQ_INT(before.running, 0);

    char ep[256];
    snprintf(ep, sizeof ep, "%s", fx->ep);
    CHECK(coord_stop(fx) == 0);
    CHECK(coord_start(fx, ep) == 0);
    CHECK_MSG(strcmp(fx->ep, ep) == 0, "bound %s, asked for %s", fx->ep, ep);

    /* Fresh connections: the old ones may still be reconnecting. */
    conn *client2 = conn_open(fx, "client2");
    conn *w2 = conn_open(fx, "w2");
    CHECK(client2 && w2);
    counts after;
    CHECK(status(client2, &after) == 0);
    CHECK_EQ_INT(after.done, before.done);
    CHECK_EQ_INT(after.queued, before.queued);
    CHECK_EQ_INT(after.running, before.running);
    CHECK_EQ_INT(after.failed, before.failed);

    /* The restarted coordinator serves the jobs it kept. */
    CHECK(hello(w2, "w2", fx->heartbeat_ms) == 0);
    leased l2;
    CHECK(ready_job(w2, &l2) == 0);
    CHECK(l2.job != l.job);
    CHECK_EQ_INT(l2.attempt, 1);
    CHECK(result_ok(w2, &l2) == 0);
    return 0;
}

static int sigterm_graceful(void)
{
    return with_coordinator(sigterm_body, HOLD_HEARTBEAT_MS);
}

/* ---- checkpoint uploads ------------------------------------------------- */

/* Sends one whole checkpoint (a single chunk) for the lease l from c,
 * announcing total bytes (the data is `bytes` long) at epoch; the reply
 * goes to *r. */
static int ckpt_put(conn *c, const leased *l, const char *lease, int epoch,
                    const void *data, size_t bytes, int64_t total,
                    proto_msg *r)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_CKPT_PUT);
    m.job = l->job;
    m.attempt = l->attempt;
    memcpy(m.lease, lease, sizeof m.lease);
    m.epoch = epoch;
    m.offset = 0;
    m.total = total;
    m.data = data;
    m.data_bytes = bytes;
    uint8_t digest[HASH_BYTES];
    hash_sha256(data, bytes, digest);
    hash_hex(digest, m.sha256);
    CHECK(send_msg(c, &m) == 0);
    CHECK(recv_msg(c, r, 20000) == 0);
    return 0;
}

/* Files under the state's ckpt/ whose name starts with prefix. */
static int count_files(const fixture *fx, const char *prefix)
{
    char path[400];
    snprintf(path, sizeof path, "%s/ckpt", fx->state);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    if (d != NULL)
        closedir(d);
    return n;
}

/* Only the holder may upload; what it uploads must fit the job and be a
 * checkpoint of it; nothing refused stays on disk. */
static int uploads_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *victim = conn_open(fx, "victim");
    conn *intruder = conn_open(fx, "intruder");
    CHECK(client && victim && intruder);
    CHECK(submit(client, "up", "name = a\nkind = sleep\nsleep_ms = 100000\n",
                 1) == 0);
    CHECK(hello(victim, "victim", fx->heartbeat_ms) == 0);
    leased l;
    CHECK(ready_job(victim, &l) == 0);
    const char good[] = "tfq sleep checkpoint 1 epoch 3\n";
    proto_msg r;
    char forged[65];
    memset(forged, 'f', 64);
    forged[64] = '\0';

    /* No lease: refused before anything is written. */
    CHECK(ckpt_put(intruder, &l, forged, 3, good, sizeof good - 1,
                   sizeof good - 1, &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_EPERM);
    leased ghost = l;
    ghost.job = 424242;
    CHECK(ckpt_put(intruder, &ghost, forged, 1, good, 10, 1 << 20, &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_EMISMATCH); /* no such attempt */
    CHECK_EQ_INT(count_files(fx, ".upload-"), 0);

    /* The holder, but a size, an epoch or a content the job cannot have. */
    CHECK(ckpt_put(victim, &l, l.lease, 3, good, 10, (int64_t)1 << 34,
                   &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_ERANGE);
    CHECK_MSG(strstr(r.msg, "implies at most"), "%s", r.msg);
    const char far[] = "tfq sleep checkpoint 1 epoch 999999\n";
    CHECK(ckpt_put(victim, &l, l.lease, 999999, far, sizeof far - 1,
                   sizeof far - 1, &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_ERANGE);
    CHECK_MSG(strstr(r.msg, "epochs"), "%s", r.msg);
    const char junk[16] = "0123456789abcdef";
    CHECK(ckpt_put(victim, &l, l.lease, 3, junk, sizeof junk, sizeof junk,
                   &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_EFORMAT);
    CHECK_EQ_INT(count_files(fx, ".upload-"), 0);
    CHECK_EQ_INT(count_files(fx, ""), 2); /* "." and ".." */

    /* A real one is kept. */
    CHECK(ckpt_put(victim, &l, l.lease, 3, good, sizeof good - 1,
                   sizeof good - 1, &r) == 0);
    CHECK_MSG(r.kind == PROTO_ACK, "%s", r.kind == PROTO_ERROR ? r.msg : "?");
    CHECK_EQ_INT(count_files(fx, ""), 3);

    /* An upload left half done is dropped when its lease ends. */
    proto_msg m;
    proto_msg_init(&m, PROTO_CKPT_PUT);
    m.job = l.job;
    m.attempt = l.attempt;
    memcpy(m.lease, l.lease, sizeof m.lease);
    m.epoch = 4;
    m.total = 40;
    m.data = (const uint8_t *)good;
    m.data_bytes = 10;
    memset(m.sha256, 'a', 64);
    CHECK(request(victim, &m, &r, PROTO_ACK) == 0);
    CHECK_EQ_INT(count_files(fx, ".upload-"), 1);
    proto_msg_init(&m, PROTO_RELEASE);
    m.job = l.job;
    m.attempt = l.attempt;
    memcpy(m.lease, l.lease, sizeof m.lease);
    CHECK(request(victim, &m, &r, PROTO_ACK) == 0);
    CHECK_EQ_INT(count_files(fx, ".upload-"), 0);
    return 0;
}

static int uploads_owned(void)
{
    return with_coordinator(uploads_body, HOLD_HEARTBEAT_MS);
}

/* ---- big_results, big_status -------------------------------------------
 * Reads larger than one message: the coordinator answers a page at a time
 * and the tfq commands gather every page, so a 20,000-job grid's results
 * and 9,600 running jobs with long names come back whole. */

/* How long one tfq command may take on a slow, loaded machine: it reads a
 * few pages of 3 MiB in well under a second here. */
#define TFQ_CMD_TIMEOUT_MS 120000
/* Names near the 127-byte limit: the items of a page are then large. */
#define LONG_PAD "-of-a-big-grid-with-long-names-padded-to-the-limit-" \
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define LONG_NAME_BYTES 120

/* The job file text of jobs lo .. hi-1 (sleep jobs of 0 ms, a seed each,
 * so that no two share an identity, and grid coordinates for tfq report);
 * a static buffer.  NULL (with a message) when they do not fit a spec. */
static const char *long_jobs(int lo, int hi)
{
    static char text[PROTO_MAX_TEXT_BYTES];
    size_t off = 0;
    for (int i = lo; i < hi; i++) {
        if (off + 400 > sizeof text) {
            fprintf(stderr, "jobs %d .. %d do not fit a spec\n", lo, hi - 1);
            return NULL;
        }
        off += (size_t)snprintf(
            text + off, sizeof text - off,
            "%sname = job-%06d%.*s\nkind = sleep\nsleep_ms = 0\nseed = %d\n"
            "split = random0\nsimilarity = random\ntarget = %s\nn = 0\n"
            "variant = base\nfinetune = 0\n",
            i > lo ? "---\n" : "", i, LONG_NAME_BYTES - 10, LONG_PAD, i,
            i % 2 ? "B" : "A");
    }
    return text;
}

/* Runs `tfq ARGS...` (NULL-terminated) with stdout into the file out and
 * stderr into the coordinator's log; its exit status, or -1 (with a
 * message) when it could not start or did not end in TFQ_CMD_TIMEOUT_MS. */
static int run_tfq(fixture *fx, const char *out, const char *const *args)
{
    const char *argv[16] = {"tfq"};
    int n = 1;
    while (args[n - 1] != NULL && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(fx->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fo >= 0)
            dup2(fo, 1);
        if (fe >= 0)
            dup2(fe, 2);
        execv(s_tfq, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", s_tfq, strerror(errno));
        _exit(127);
    }
    int64_t deadline = mono_ms() + TFQ_CMD_TIMEOUT_MS;
    int st;
    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "tfq %s did not end within %d ms\n", args[0],
                    TFQ_CMD_TIMEOUT_MS);
            return -1;
        }
        sleep_ms(10);
    }
    if (!WIFEXITED(st)) {
        fprintf(stderr, "tfq %s ended with status 0x%x\n", args[0], st);
        return -1;
    }
    return WEXITSTATUS(st);
}

/* The whole of a file, NUL-terminated; NULL (with a message) if unread. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
    } else {
        free(buf);
        buf = NULL;
        fprintf(stderr, "%s: cannot read\n", path);
    }
    fclose(f);
    return buf;
}

/* Of the JSON array at path (e.g. "$" or "$.running_jobs") of the text
 * json, read by SQLite's JSON parser: how many elements it has, how many
 * distinct values of key they hold (e.g. "$.job"), and how many are not
 * above the one before.  -1 when json is not valid JSON. */
static int json_array_stats(const char *json, const char *path,
                            const char *key, int64_t *count, int64_t *distinct,
                            int64_t *unordered)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    int rc = sqlite3_prepare_v2(
        db, "SELECT json_valid(?1), json_array_length(?1, ?2), (SELECT "
            "count(DISTINCT json_extract(value, ?3)) FROM json_each(?1, ?2)), "
            "(SELECT count(*) FROM (SELECT json_extract(value, ?3) AS k, "
            "lag(json_extract(value, ?3)) OVER (ORDER BY key) AS prev FROM "
            "json_each(?1, ?2)) WHERE prev >= k)", -1, &st, NULL);
    CHECK_MSG(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int valid = rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    if (valid) {
        *count = sqlite3_column_int64(st, 1);
        *distinct = sqlite3_column_int64(st, 2);
        *unordered = sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK_MSG(valid, "not valid JSON: %.200s", json);
    return 0;
}

#define BIG_JOBS 20000
#define BIG_CHUNK 2500 /* jobs per submit: a spec is at most 1 MiB */
#define BIG_FINISHED 128

/* A result a train job could send, for tfq report. */
#define BIG_RESULT "{\"final_acc\": 0.5, \"best_acc\": 0.625, \"topk_acc\": " \
                   "0.55, \"topk\": 2, \"epochs\": 2, \"final_loss\": 0.7, " \
                   "\"train_seconds\": 1, \"data_fingerprint\": \"\", "     \
                   "\"accs\": [0.5, 0.625]}"

/* Submits BIG_JOBS long_jobs as grid. */
static int submit_big(conn *client, const char *grid)
{
    for (int lo = 0; lo < BIG_JOBS; lo += BIG_CHUNK) {
        const char *text = long_jobs(lo, lo + BIG_CHUNK);
        CHECK(text != NULL && submit(client, grid, text, BIG_CHUNK) == 0);
    }
    return 0;
}

static int big_results_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *w = conn_open(fx, "w");
    CHECK(client && w);
    CHECK(submit_big(client, "big") == 0);
    /* Some finish, with results, so that tfq report has runs. */
    for (int done = 0; done < BIG_FINISHED; done += 64) {
        static leased got[64];
        CHECK(ready_batch_of(w, 64, 64, got) == 0);
        for (int i = 0; i < 64; i++) {
            proto_msg m;
            result_msg(&m, &got[i]);
            m.result = BIG_RESULT;
            CHECK(send_msg(w, &m) == 0);
        }
        for (int i = 0; i < 64; i++) {
            proto_msg r;
            CHECK(expect(w, &r, PROTO_ACK) == 0);
        }
    }

    /* On the wire: a request without "after" gets the first page, which
     * says where the next starts. */
    proto_msg m, r;
    proto_msg_init(&m, PROTO_RESULTS);
    m.grid = "big";
    CHECK(request(client, &m, &r, PROTO_RESULTS_REPLY) == 0);
    CHECK_MSG(r.next > 0, "one page of %zu bytes holds all %d jobs",
              strlen(r.items), BIG_JOBS);
    CHECK(strlen(r.items) <= PROTO_MAX_ITEMS_BYTES);

    char out[400], dir[400];
    snprintf(out, sizeof out, "%s/results.json", fx->dir);
    const char *json_args[] = {"results", "big", "--json", "--connect",
                               fx->ep, NULL};
    int64_t t0 = mono_ms();
    CHECK_EQ_INT(run_tfq(fx, out, json_args), 0);
    fprintf(stderr, "tfq results big --json: %lld ms\n",
            (long long)(mono_ms() - t0));
    char *json = slurp(out);
    CHECK(json != NULL);
    int64_t count = 0, distinct = 0, unordered = 0;
    int rc = json_array_stats(json, "$", "$.job", &count, &distinct,
                              &unordered);
    free(json);
    CHECK(rc == 0);
    CHECK_EQ_INT(count, BIG_JOBS);
    CHECK_EQ_INT(distinct, BIG_JOBS);
    CHECK_EQ_INT(unordered, 0);

    /* The table: a header and a line per job. */
    const char *table_args[] = {"results", "big", "--connect", fx->ep, NULL};
    CHECK_EQ_INT(run_tfq(fx, out, table_args), 0);
    char *table = slurp(out);
    CHECK(table != NULL);
    int lines = 0;
    for (const char *p = table; *p; p++)
        lines += *p == '\n';
    free(table);
    CHECK_EQ_INT(lines, BIG_JOBS + 1);

    /* tfq report reads the whole grid too: the finished runs make it. */
    snprintf(dir, sizeof dir, "%s/report", fx->dir);
    const char *report_args[] = {"report", "big", "-o", dir, "--connect",
                                 fx->ep, NULL};
    CHECK_EQ_INT(run_tfq(fx, out, report_args), 0);
    char table_md[450];
    snprintf(table_md, sizeof table_md, "%s/table.md", dir);
    struct stat sb;
    CHECK_MSG(stat(table_md, &sb) == 0 && sb.st_size > 0, "%s", table_md);
    return 0;
}

static int big_results(void)
{
    return with_coordinator(big_results_body, HOLD_HEARTBEAT_MS);
}

/* ---- checkpoint_by_name ------------------------------------------------
 * One job of a grid whose results are larger than a page: found with one
 * job_get by id or by name, and its checkpoint fetched with tfq checkpoint
 * get either way; a name no job has, and one jobs of two grids have. */

/* job_get for the job called name (NULL: by id) in grid (NULL: all). */
static int job_get(conn *c, int64_t id, const char *name, const char *grid,
                   proto_msg *r)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_JOB_GET);
    m.job = id;
    m.name = name;
    m.grid = grid;
    CHECK(send_msg(c, &m) == 0);
    CHECK(recv_msg(c, r, REPLY_TIMEOUT_MS) == 0);
    return 0;
}

static int checkpoint_by_name_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *w = conn_open(fx, "w");
    CHECK(client && w);
    CHECK(submit_big(client, "big") == 0);
    /* The first job's name in a second grid too. */
    const char *text = long_jobs(0, 1);
    CHECK(text != NULL && submit(client, "other", text, 1) == 0);
    proto_msg r;
    proto_msg_init(&r, PROTO_RESULTS);
    r.grid = "big";
    CHECK(request(client, &r, &r, PROTO_RESULTS_REPLY) == 0);
    CHECK_MSG(r.next > 0, "the results of the grid fit one page");

    /* A job with a checkpoint. */
    CHECK(hello(w, "w", fx->heartbeat_ms) == 0);
    leased l;
    CHECK(ready_job(w, &l) == 0);
    const char ck[] = "tfq sleep checkpoint 1 epoch 3\n";
    CHECK(ckpt_put(w, &l, l.lease, 3, ck, sizeof ck - 1, sizeof ck - 1,
                   &r) == 0);
    CHECK_MSG(r.kind == PROTO_ACK, "%s", r.kind == PROTO_ERROR ? r.msg : "?");
    CHECK(result_ok(w, &l) == 0);

    CHECK(job_get(client, l.job, NULL, NULL, &r) == 0);
    CHECK_MSG(r.kind == PROTO_JOB_INFO, "%s",
              r.kind == PROTO_ERROR ? r.msg : proto_kind_name(r.kind));
    CHECK_EQ_INT(r.job, l.job);
    CHECK_EQ_INT(r.epoch, 3);
    CHECK(strcmp(r.grid, "big") == 0 && strcmp(r.state, "succeeded") == 0);
    CHECK(r.sha256[0] != '\0');
    char name[PROTO_MAX_NAME_BYTES + 1], id[32];
    snprintf(name, sizeof name, "%s", r.name);
    snprintf(id, sizeof id, "%lld", (long long)l.job);

    /* The name is in both grids: refused, naming them, unless one is. */
    CHECK(job_get(client, 0, name, NULL, &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_EINVAL);
    CHECK_MSG(strstr(r.msg, "'big'") && strstr(r.msg, "'other'"), "%s",
              r.msg);
    CHECK(job_get(client, 0, "no-such-job", NULL, &r) == 0);
    CHECK_EQ_INT(r.kind, PROTO_ERROR);
    CHECK_EQ_INT(r.code, TFQ_ENOENT);
    CHECK_MSG(strstr(r.msg, "no job named 'no-such-job'"), "%s", r.msg);

    char out[400];
    snprintf(out, sizeof out, "%s/job.ckpt", fx->dir);
    const char *by_name[] = {"checkpoint", "get", name, "--grid", "big", "-o",
                             out, "--connect", fx->ep, NULL};
    const char *by_id[] = {"checkpoint", "get", id, "-o", out, "--connect",
                           fx->ep, NULL};
    const char *ambiguous[] = {"checkpoint", "get", name, "-o", out,
                               "--connect", fx->ep, NULL};
    const char *unknown[] = {"checkpoint", "get", "no-such-job", "-o", out,
                             "--connect", fx->ep, NULL};
    char listing[450];
    snprintf(listing, sizeof listing, "%s/out.txt", fx->dir);
    const char *const *ok_runs[] = {by_name, by_id};
    for (int i = 0; i < 2; i++) {
        unlink(out);
        CHECK_EQ_INT(run_tfq(fx, listing, ok_runs[i]), 0);
        char *got = slurp(out);
        CHECK_MSG(got != NULL && strcmp(got, ck) == 0, "checkpoint %s: %s",
                  i ? "by id" : "by name", got ? got : "(none)");
        free(got);
    }
    CHECK_EQ_INT(run_tfq(fx, listing, ambiguous), 1);
    CHECK_EQ_INT(run_tfq(fx, listing, unknown), 1);
    return 0;
}

static int checkpoint_by_name(void)
{
    return with_coordinator(checkpoint_by_name_body, HOLD_HEARTBEAT_MS);
}

#define BIG_HOLDERS 150 /* routing ids, 64 leases each */
/* The leases must outlive the case however loaded the machine: a lease is
 * lost after 4 silent heartbeats, 4 minutes. */
#define BIG_HOLD_HEARTBEAT_MS 60000

/* Whether the file at path holds every one of the strings (NULL-ended). */
static int file_has(const char *path, const char *const *want)
{
    if (access(path, R_OK) != 0) /* not yet written */
        return 0;
    char *text = slurp(path);
    int all = text != NULL;
    for (int i = 0; all && want[i] != NULL; i++)
        all = strstr(text, want[i]) != NULL;
    free(text);
    return all;
}

static int big_status_body(fixture *fx)
{
    enum { N = BIG_HOLDERS * 64 };
    conn *client = conn_open(fx, "client");
    CHECK(client != NULL);
    for (int lo = 0; lo < N; lo += N / 4) {
        const char *text = long_jobs(lo, lo + N / 4);
        CHECK(text != NULL && submit(client, "run", text, N / 4) == 0);
    }
    /* Each holder a DEALER of its own with a long routing id (the worker
     * name in the running items), closed once its 64 jobs are leased. */
    for (int h = 0; h < BIG_HOLDERS; h++) {
        char id[PROTO_MAX_NAME_BYTES];
        snprintf(id, sizeof id, "holder-%03d%.*s", h, LONG_NAME_BYTES - 10,
                 LONG_PAD);
        conn c = {zmq_socket(fx->ctx, ZMQ_DEALER), {{0}}, {{0}}};
        CHECK(c.sock != NULL);
        int zero = 0;
        zmq_setsockopt(c.sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(c.sock, ZMQ_ROUTING_ID, id, strlen(id));
        zmq_msg_init(&c.frame);
        proto_unpacked_init(&c.up);
        static leased got[64];
        int rc = zmq_connect(c.sock, fx->ep) == 0 ? 0 : -1;
        if (rc == 0)
            rc = ready_batch_of(&c, 64, 64, got);
        zmq_close(c.sock);
        zmq_msg_close(&c.frame);
        proto_unpacked_release(&c.up);
        CHECK_MSG(rc == 0, "holder %d", h);
    }

    /* On the wire: the first page, counts of the whole grid. */
    proto_msg m, r;
    proto_msg_init(&m, PROTO_STATUS);
    CHECK(request(client, &m, &r, PROTO_STATUS_REPLY) == 0);
    CHECK_EQ_INT(r.running, N);
    CHECK_EQ_INT(r.queued, 0);
    CHECK_MSG(r.next > 0, "one page of %zu bytes holds all %d running jobs",
              strlen(r.items), N);

    char out[400];
    snprintf(out, sizeof out, "%s/status.json", fx->dir);
    const char *args[] = {"status", "--json", "--connect", fx->ep, NULL};
    int64_t t0 = mono_ms();
    CHECK_EQ_INT(run_tfq(fx, out, args), 0);
    fprintf(stderr, "tfq status --json: %lld ms\n",
            (long long)(mono_ms() - t0));
    char *json = slurp(out);
    CHECK(json != NULL);
    int64_t count = 0, distinct = 0, unordered = 0;
    int rc = json_array_stats(json, "$.running_jobs", "$.job", &count,
                              &distinct, &unordered);
    char want[64];
    snprintf(want, sizeof want, "\"running\": %d,", N);
    int whole = rc == 0 && strstr(json, want) != NULL;
    free(json);
    CHECK(rc == 0);
    CHECK_MSG(whole, "no %s in tfq status --json", want);
    CHECK_EQ_INT(count, N);
    CHECK_EQ_INT(distinct, N);
    CHECK_EQ_INT(unordered, 0);

    /* --watch redraws from the first page only, and says so. */
    snprintf(out, sizeof out, "%s/watch.txt", fx->dir);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo >= 0)
            dup2(fo, 1);
        execl(s_tfq, "tfq", "status", "--watch", "--connect", fx->ep,
              (char *)NULL);
        _exit(127);
    }
    snprintf(want, sizeof want, "running %d", N);
    const char *const screen[] = {want, "the first page of the running jobs",
                                  NULL};
    int64_t deadline = mono_ms() + TFQ_CMD_TIMEOUT_MS;
    int shown;
    while (!(shown = file_has(out, screen)) && mono_ms() < deadline &&
           waitpid(pid, NULL, WNOHANG) == 0)
        sleep_ms(20);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_MSG(shown, "tfq status --watch showed no screen of the first page "
              "within %d ms", TFQ_CMD_TIMEOUT_MS);
    return 0;
}

static int big_status(void)
{
    return with_coordinator(big_status_body, BIG_HOLD_HEARTBEAT_MS);
}

/* ---- submit_hostile, submit_off_loop ------------------------------------ */

/* "splits: " and depth [ then as many ]: a grid file nested as deep as its
 * size allows.  malloc'd. */
static char *nested_grid(int depth)
{
    char *t = malloc(8 + 2 * (size_t)depth + 2);
    if (t == NULL)
        return NULL;
    memcpy(t, "splits: ", 8);
    memset(t + 8, '[', (size_t)depth);
    memset(t + 8 + depth, ']', (size_t)depth);
    strcpy(t + 8 + 2 * (size_t)depth, "\n");
    return t;
}

/* Grid files nested 120,000 and 524,280 deep (240 KB and 1 MiB, sent as
 * they are, without the client's check) are refused within the reply
 * deadline, naming the limit; before the parse was bounded they blocked
 * the coordinator 90 s and about 25 minutes.  Status is served after. */
static int hostile_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    CHECK(client != NULL);
    int depths[] = {120000, 524280};
    for (int i = 0; i < 2; i++) {
        char *text = nested_grid(depths[i]);
        CHECK(text != NULL);
        proto_msg m, r;
        proto_msg_init(&m, PROTO_SUBMIT);
        m.grid = "deep";
        m.spec = text;
        int64_t t0 = mono_ms();
        int rc = request(client, &m, &r, PROTO_ERROR);
        free(text);
        CHECK(rc == 0);
        CHECK_EQ_INT(r.code, TFQ_EINVAL);
        CHECK_MSG(strstr(r.msg, "line 1 column 40: lists and mappings nested "
                         "deeper than 32 levels") != NULL, "%s", r.msg);
        fprintf(stderr, "%d levels refused in %lld ms\n", depths[i],
                (long long)(mono_ms() - t0));
    }
    counts n;
    CHECK(status(client, &n) == 0);
    CHECK_EQ_INT(n.queued + n.running + n.done + n.failed, 0);
    return 0;
}

static int submit_hostile(void)
{
    return with_coordinator(hostile_body, HOLD_HEARTBEAT_MS);
}

/* 32 random splits, 2 seeds, every variant both ways: 4,608 jobs, which
 * the coordinator takes a few tenths of a second here to parse and expand,
 * and as long to store: long against the microseconds between two
 * messages of one connection, short for a SIGTERM to wait for. */
#define BIG_GRID_JOBS (32 * 2 * (2 + 2 * 7 * 5))
static const char s_big_grid[] =
    "dataset: {kind: fashion-mnist, fingerprint: "
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}\n"
    "splits: {random: 0-31}\n"
    "directions: both\n"
    "layers: 1-7\n"
    "variants: [selffer, transfer, random]\n"
    "finetune: both\n"
    "seeds: 1-2\n";

static int send_submit(conn *c, const char *grid, const char *spec)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_SUBMIT);
    m.grid = grid;
    m.spec = spec;
    return send_msg(c, &m);
}

static int send_status(conn *c)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_STATUS);
    return send_msg(c, &m);
}

/* Submits are parsed off the loop.  One connection sends a large grid's
 * submit and then a status: both reach the coordinator in that order, so
 * a coordinator that parsed on its loop would answer the submit first
 * (and hold the status for the whole parse).  Then three submits and a
 * status at once: two are parsed, the third is refused as busy, the
 * status is answered at once.  Then SIGTERM during a parse: the
 * coordinator ends with 0, and the grid is stored whole or not at all. */
static int off_loop_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    CHECK(client != NULL);
    proto_msg r;
    CHECK(send_submit(client, "big", s_big_grid) == 0);
    CHECK(send_status(client) == 0);
    CHECK_MSG(expect(client, &r, PROTO_STATUS_REPLY) == 0, "the status was "
              "not answered while the submit before it was parsed");
    CHECK(expect(client, &r, PROTO_SUBMITTED) == 0);
    CHECK_EQ_INT(r.added, BIG_GRID_JOBS);

    CHECK(send_submit(client, "big2", s_big_grid) == 0);
    CHECK(send_submit(client, "big3", s_big_grid) == 0);
    CHECK(send_submit(client, "small", "name = a\nkind = sleep\n") == 0);
    CHECK(send_status(client) == 0);
    CHECK(expect(client, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, TFQ_ERANGE);
    CHECK_MSG(strstr(r.msg, "busy parsing 2 submits; try again") != NULL,
              "%s", r.msg);
    CHECK(expect(client, &r, PROTO_STATUS_REPLY) == 0);
    for (int i = 0; i < 2; i++) {
        CHECK(expect(client, &r, PROTO_SUBMITTED) == 0);
        CHECK_EQ_INT(r.added, BIG_GRID_JOBS);
    }
    CHECK(submit(client, "small", "name = a\nkind = sleep\n", 1) == 0);
    counts before;
    CHECK(status(client, &before) == 0);
    CHECK_EQ_INT(before.queued, 3 * BIG_GRID_JOBS + 1);

    CHECK(send_submit(client, "big4", s_big_grid) == 0);
    CHECK(send_status(client) == 0);
    CHECK(expect(client, &r, PROTO_STATUS_REPLY) == 0); /* it is in */
    char ep[256];
    snprintf(ep, sizeof ep, "%s", fx->ep);
    CHECK(coord_stop(fx) == 0);
    CHECK(coord_start(fx, ep) == 0);
    conn *client2 = conn_open(fx, "client2");
    CHECK(client2 != NULL);
    counts after;
    CHECK(status(client2, &after) == 0);
    CHECK_MSG(after.queued == before.queued ||
                  after.queued == before.queued + BIG_GRID_JOBS,
              "%lld queued after a SIGTERM during a submit of %d jobs to "
              "%lld", (long long)after.queued, BIG_GRID_JOBS,
              (long long)before.queued);
    return 0;
}

static int submit_off_loop(void)
{
    return with_coordinator(off_loop_body, HOLD_HEARTBEAT_MS);
}

/* ---- the dashboard's reads --------------------------------------------- */

#define CHECK_STR(a, b)                                                   \
    CHECK_MSG(strcmp((a), (b)) == 0, "'%s' vs '%s'", (a), (b))

/* The names of a reply's items, in order, joined with commas. */
#define NAMES "SELECT group_concat(json_extract(value, '$.name')) FROM " \
              "json_each(?1)"

/* A jobs request of grid with query; the reply (jobs_reply) in *r. */
static int jobs_req(conn *c, const char *grid, const char *query,
                    proto_msg *r)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_JOBS);
    m.grid = grid;
    m.query = query;
    CHECK(request(c, &m, r, PROTO_JOBS_REPLY) == 0);
    return 0;
}

/* A request that must be refused with code, the message containing what. */
static int refused(conn *c, const proto_msg *m, int code, const char *what)
{
    proto_msg r;
    CHECK(request(c, m, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, code);
    CHECK_MSG(r.msg != NULL && strstr(r.msg, what) != NULL, "'%s' lacks '%s'",
              r.msg ? r.msg : "(none)", what);
    CHECK_EQ_INT(r.re, m->kind);
    return 0;
}

/* Sends progress for l at epoch with test_acc. */
static int progress(conn *c, const leased *l, int epoch, double test_acc)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_PROGRESS);
    m.job = l->job;
    m.attempt = l->attempt;
    memcpy(m.lease, l->lease, sizeof m.lease);
    m.epoch = epoch;
    m.loss = 1.0 / epoch;
    m.test_acc = test_acc;
    m.images_per_s = 100;
    m.eta_s = 10;
    CHECK(request(c, &m, &r, PROTO_ACK) == 0);
    return 0;
}

static const char s_dash_jobs[] =
    "name = a1\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = a2\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = a3\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = b4\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = b5\nkind = sleep\nsleep_ms = 0\n";

/* jobs: counts, filters, sort, paging, the running attempt's worker and
 * progress; bad keys and an unknown grid refused. */
static int dash_jobs(conn *client, const leased *run, const leased *fin)
{
    proto_msg r, m;
    CHECK(jobs_req(client, "dash", NULL, &r) == 0);
    CHECK_EQ_INT(r.count, 5);
    CHECK_STR(test_json_query(r.items, NAMES), "a1,a2,a3,b4,b5");
    CHECK(jobs_req(client, "dash", "{\"sort\": \"name\", \"desc\": true, "
                   "\"limit\": 2}", &r) == 0);
    CHECK_EQ_INT(r.count, 5);
    CHECK_STR(test_json_query(r.items, NAMES), "b5,b4");
    CHECK(jobs_req(client, "dash", "{\"sort\": \"name\", \"offset\": 3, "
                   "\"limit\": 10}", &r) == 0);
    CHECK_STR(test_json_query(r.items, NAMES), "b4,b5");
    CHECK(jobs_req(client, "dash", "{\"q\": \"a\", \"state\": \"ready\"}",
                   &r) == 0);
    CHECK_EQ_INT(r.count, 1); /* a1 and a2 are leased */
    CHECK(jobs_req(client, "dash", "{\"state\": \"running\"}", &r) == 0);
    CHECK_EQ_INT(r.count, 1);
    char want[160], one[64];
    snprintf(one, sizeof one, "{\"job\": %lld}", (long long)run->job);
    CHECK(jobs_req(client, "dash", one, &r) == 0); /* one job, by id */
    CHECK_EQ_INT(r.count, 1);
    snprintf(want, sizeof want, "%lld", (long long)run->job);
    CHECK_STR(test_json_query(r.items, "SELECT group_concat(json_extract("
                              "value, '$.job')) FROM json_each(?1)"), want);
    snprintf(want, sizeof want, "%lld|worker-a|%d|2|0.75|10.0",
             (long long)run->job, run->attempt);
    CHECK_STR(test_json_query(r.items, "SELECT json_extract(value, '$.job') "
                     "|| '|' "
                     "|| json_extract(value, '$.worker') || '|' || "
                     "json_extract(value, '$.attempt') || '|' || "
                     "json_extract(value, '$.epoch') || '|' || "
                     "json_extract(value, '$.test_acc') || '|' || "
                     "json_extract(value, '$.eta_s') FROM json_each(?1)"),
              want);
    CHECK(jobs_req(client, "dash", "{\"state\": \"succeeded\"}", &r) == 0);
    snprintf(want, sizeof want, "%lld|{}", (long long)fin->job);
    CHECK_STR(test_json_query(r.items, "SELECT json_extract(value, '$.job') "
                     "|| '|' "
                     "|| json(json_extract(value, '$.result')) FROM "
                     "json_each(?1)"), want);
    proto_msg_init(&m, PROTO_JOBS);
    m.grid = "dash";
    m.query = "{\"sort\": \"colour\"}";
    CHECK(refused(client, &m, TFQ_EINVAL, "\"sort\"") == 0);
    m.query = "{\"limit\": 501}";
    CHECK(refused(client, &m, TFQ_EINVAL, "\"limit\"") == 0);
    m.query = "{\"colour\": 1}";
    CHECK(refused(client, &m, TFQ_EINVAL, "unknown query key \"colour\"") ==
          0);
    m.query = "not json";
    CHECK(refused(client, &m, TFQ_EINVAL, "not a JSON object") == 0);
    m.grid = "nosuch";
    m.query = NULL;
    CHECK(refused(client, &m, TFQ_ENOENT, "nosuch") == 0);
    return 0;
}

/* events newest first, after and job; attempts; curves of one job. */
static int dash_events(conn *client, const leased *run, const leased *fin)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_EVENTS);
    CHECK(request(client, &m, &r, PROTO_EVENTS_REPLY) == 0);
    const char *n = test_json_query(r.items, "SELECT count(*) FROM "
                     "json_each(?1)");
    CHECK_MSG(atoi(n) >= 3, "%s events: %s", n, r.items); /* 2 leases, 1 end */
    /* Newest first: every id below the one before it. */
    CHECK_STR(test_json_query(r.items, "SELECT count(*) FROM json_each(?1) "
                     "a JOIN "
                     "json_each(?1) b ON b.key = a.key + 1 WHERE "
                     "json_extract(b.value, '$.id') >= json_extract(a.value, "
                     "'$.id')"), "0");
    int64_t newest = atoll(test_json_query(r.items, "SELECT json_extract(?1, "
                                  "'$[0].id')"));
    m.count = 1;
    CHECK(request(client, &m, &r, PROTO_EVENTS_REPLY) == 0);
    CHECK_EQ_INT(atoll(test_json_query(r.items, "SELECT json_extract(?1, "
                              "'$[0].id')")), newest);
    CHECK_STR(test_json_query(r.items, "SELECT json_array_length(?1)"), "1");
    m.count = 0;
    m.after = newest;
    CHECK(request(client, &m, &r, PROTO_EVENTS_REPLY) == 0);
    CHECK_STR(r.items, "[]");
    m.after = 0;
    m.job = fin->job;
    m.grid = "dash";
    CHECK(request(client, &m, &r, PROTO_EVENTS_REPLY) == 0);
    CHECK_STR(test_json_query(r.items, "SELECT group_concat(DISTINCT "
                     "json_extract(value, '$.name') || '/' || "
                     "json_extract(value, '$.grid')) FROM json_each(?1)"),
              "a1/dash");
    m.count = 1001;
    CHECK(refused(client, &m, TFQ_ERANGE, "1000") == 0);

    proto_msg_init(&m, PROTO_ATTEMPTS);
    m.job = fin->job;
    CHECK(request(client, &m, &r, PROTO_ATTEMPTS_REPLY) == 0);
    CHECK_STR(test_json_query(r.items, "SELECT "
                     "group_concat(json_extract(value, "
                     "'$.attempt') || ':' || json_extract(value, '$.state') "
                     "|| ':' || json_extract(value, '$.worker')) FROM "
                     "json_each(?1)"), "1:succeeded:worker-a");
    m.job = 99999;
    CHECK(refused(client, &m, TFQ_ENOENT, "99999") == 0);

    proto_msg_init(&m, PROTO_CURVES);
    m.grid = "dash";
    CHECK(request(client, &m, &r, PROTO_CURVES_REPLY) == 0);
    CHECK_STR(test_json_query(r.items, "SELECT json_array_length(?1)"), "2");
    m.job = run->job;
    CHECK(request(client, &m, &r, PROTO_CURVES_REPLY) == 0);
    char want[64];
    snprintf(want, sizeof want, "%lld:2", (long long)run->job);
    CHECK_STR(test_json_query(r.items, "SELECT "
                     "group_concat(json_extract(value, "
                     "'$.job') || ':' || json_array_length(json_extract("
                     "value, '$.epochs'))) FROM json_each(?1)"), want);
    return 0;
}

/* The value of the sample `series` (name and labels, as written) in the
 * metrics text; -1 when there is none. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* The coordinator's metrics text into *r (items). */
static int metrics(conn *c, proto_msg *r)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_METRICS);
    CHECK(request(c, &m, r, PROTO_METRICS_REPLY) == 0);
    return 0;
}

/* `promtool check metrics` on text when promtool is on PATH: it must find
 * nothing to complain about.  Said, and skipped, without it. */
static int promtool_ok(fixture *fx, const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("promtool not on PATH: the text is not linted\n");
        return 0;
    }
    char in[400], out[400], cmd[1000];
    snprintf(in, sizeof in, "%s/metrics.txt", fx->dir);
    snprintf(out, sizeof out, "%s/promtool.out", fx->dir);
    FILE *f = fopen(in, "w");
    CHECK(f != NULL);
    fputs(text, f);
    CHECK(fclose(f) == 0);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1",
             in, out);
    int st = system(cmd);
    char *said = slurp(out);
    CHECK_MSG(st == 0 && said != NULL && said[0] == '\0',
              "promtool check metrics (status %d): %s", st,
              said ? said : "?");
    free(said);
    return 0;
}

static int dash_metrics(fixture *fx, conn *client)
{
    proto_msg r;
    CHECK(metrics(client, &r) == 0);
    const char *t = r.items;
    CHECK_MSG(metric(t, "tfq_jobs{grid=\"dash\",state=\"running\"}") == 1 &&
              metric(t, "tfq_jobs{grid=\"dash\",state=\"ready\"}") == 3 &&
              metric(t, "tfq_jobs{grid=\"dash\",state=\"succeeded\"}") == 1,
              "%s", t);
    /* The grid's name, user text, escaped: q"uo\te<newline>x. */
    CHECK_MSG(metric(t, "tfq_jobs{grid=\"q\\\"uo\\\\te\\nx\",state=\"ready\"}")
              == 1, "%s", t);
    CHECK_EQ_INT((int)metric(t, "tfq_queue_depth"), 4);
    CHECK_EQ_INT((int)metric(t, "tfq_workers{state=\"live\"}"), 1);
    CHECK_EQ_INT((int)metric(t, "tfq_requests_total{kind=\"jobs\"}"), 12);
    CHECK_EQ_INT((int)metric(t, "tfq_request_errors_total{kind=\"jobs\"}"),
                 5);
    CHECK_EQ_INT((int)metric(t, "tfq_requests_total{kind=\"metrics\"}"), 1);
    CHECK(metric(t, "tfq_store_commit_seconds_count") >= 3);
    CHECK(metric(t, "tfq_store_commit_seconds_bucket{le=\"+Inf\"}") ==
          metric(t, "tfq_store_commit_seconds_count"));
    CHECK(metric(t, "tfq_start_time_seconds") > 1.7e9);
    CHECK(promtool_ok(fx, t) == 0);
    /* The count moves: this read is counted in the next one. */
    CHECK(metrics(client, &r) == 0);
    CHECK_EQ_INT((int)metric(r.items, "tfq_requests_total{kind=\"metrics\"}"),
                 2);
    return 0;
}

static int dashboard_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *a = conn_open(fx, "worker-a");
    CHECK(client && a);
    CHECK(submit(client, "dash", s_dash_jobs, 5) == 0);
    CHECK(submit(client, "q\"uo\\te\nx", "name = z\nkind = sleep\n", 1) == 0);
    CHECK(hello(a, "worker-a", fx->heartbeat_ms) == 0);
    leased fin, run;
    CHECK(ready_job(a, &fin) == 0);
    CHECK(ready_job(a, &run) == 0);
    CHECK(progress(a, &fin, 1, 0.5) == 0);
    CHECK(result_ok(a, &fin) == 0);
    CHECK(progress(a, &run, 1, 0.5) == 0);
    CHECK(progress(a, &run, 2, 0.75) == 0);

    proto_msg m, r;
    proto_msg_init(&m, PROTO_GRIDS);
    CHECK(request(client, &m, &r, PROTO_GRIDS_REPLY) == 0);
    CHECK_STR(test_json_query(r.items, "SELECT "
                     "group_concat(json_extract(value, "
                     "'$.grid') || ':' || json_extract(value, '$.queued') "
                     "|| json_extract(value, '$.running') || "
                     "json_extract(value, '$.done') || json_extract(value, "
                     "'$.failed') || json_extract(value, '$.total'), ';') "
                     "FROM json_each(?1)"), "dash:31105;q\"uo\\te\nx:10001");
    CHECK_EQ_INT(r.next, 0);
    m.after = atoll(test_json_query(r.items, "SELECT json_extract(?1, "
                           "'$[0].grid_id')"));
    CHECK(request(client, &m, &r, PROTO_GRIDS_REPLY) == 0);
    CHECK_STR(test_json_query(r.items, "SELECT json_extract(?1, "
                     "'$[#-1].total')"),
              "1");
    CHECK_STR(test_json_query(r.items, "SELECT json_array_length(?1)"), "1");

    CHECK(dash_jobs(client, &run, &fin) == 0);
    CHECK(dash_events(client, &run, &fin) == 0);
    CHECK(dash_metrics(fx, client) == 0);
    return 0;
}

static int dashboard_reads(void)
{
    return with_coordinator(dashboard_body, HOLD_HEARTBEAT_MS);
}

/* Starts `tfq worker` against the coordinator, its output in the log. */
static pid_t worker_start(fixture *fx, const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(fx->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(s_tfq, "tfq", "worker", "--connect", fx->ep, "--name", name,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Polls the metrics until series reaches at least want; its value. */
static double wait_metric(conn *c, const char *series, double want)
{
    int64_t deadline = mono_ms() + EXPIRY_TIMEOUT_MS;
    double v = -1;
    proto_msg r;
    while (mono_ms() < deadline) {
        if (metrics(c, &r) != 0)
            return -1;
        if ((v = metric(r.items, series)) >= want)
            return v;
        sleep_ms(50);
    }
    fprintf(stderr, "%s is %g after %d ms, wanted %g\n", series, v,
            EXPIRY_TIMEOUT_MS, want);
    return v;
}

/* A real worker killed with SIGKILL: its lease is counted lost once it
 * expires; a silent test worker's late result is counted stale. */
static int lost_body(fixture *fx)
{
    conn *client = conn_open(fx, "client");
    conn *b = conn_open(fx, "worker-b");
    CHECK(client && b);
    CHECK(submit(client, "slow", "name = long\nkind = sleep\n"
                 "sleep_ms = 600000\n---\nname = short\nkind = sleep\n"
                 "sleep_ms = 0\nafter = long\n", 2) == 0);
    proto_msg r;
    CHECK(metrics(client, &r) == 0);
    CHECK_EQ_INT((int)metric(r.items, "tfq_leases_lost_total"), 0);
    pid_t w = worker_start(fx, "doomed");
    CHECK(w > 0);
    double running = wait_metric(client, "tfq_jobs{grid=\"slow\",state="
                                 "\"running\"}", 1);
    CHECK(wait_metric(client, "tfq_workers{state=\"live\"}", 1) == 1);
    kill(w, SIGKILL);
    waitpid(w, NULL, 0);
    CHECK_MSG(running == 1, "running %g", running);
    CHECK(wait_metric(client, "tfq_leases_lost_total", 1) == 1);
    CHECK(metrics(client, &r) == 0);
    CHECK_EQ_INT((int)metric(r.items, "tfq_jobs{grid=\"slow\",state="
                             "\"ready\"}"), 1);
    CHECK_EQ_INT((int)metric(r.items, "tfq_results_stale_total"), 0);

    /* B takes the job back, goes silent, and reports after the expiry. */
    CHECK(hello(b, "worker-b", fx->heartbeat_ms) == 0);
    leased lb;
    CHECK(ready_job(b, &lb) == 0);
    CHECK_EQ_INT(lb.attempt, 2);
    CHECK(wait_metric(client, "tfq_leases_lost_total", 2) == 2);
    proto_msg m;
    result_msg(&m, &lb);
    CHECK(request(b, &m, &r, PROTO_ERROR) == 0);
    CHECK_EQ_INT(r.code, TFQ_EMISMATCH);
    CHECK(metrics(client, &r) == 0);
    CHECK_EQ_INT((int)metric(r.items, "tfq_results_stale_total"), 1);
    CHECK_EQ_INT((int)metric(r.items, "tfq_request_errors_total{kind="
                             "\"result\"}"), 1);
    CHECK(promtool_ok(fx, r.items) == 0);
    return 0;
}

static int metrics_lost_lease(void)
{
    return with_coordinator(lost_body, EXPIRY_HEARTBEAT_MS);
}

/* ---- blobs ---------------------------------------------------------------
 * Content-addressed uploads and downloads (blob_has, blob_put, blob_get):
 * a data pack checked by its fingerprint as it streams in, a checkpoint by
 * its SHA-256 and magic; what fails is not stored, and a half-done upload
 * takes no disk once it goes silent. */

/* A small data pack's file bytes (*buf, malloc'd) and fingerprint; seed
 * varies the pixels. */
static int pack_bytes(const fixture *fx, int seed, uint8_t **buf,
                      size_t *bytes, char fp[HASH_HEX_BYTES])
{
    datapack p = {0};
    p.h = (datapack_header){1, 4, 4, 3, 40, 12, 0};
    size_t image = datapack_image_bytes(&p.h);
    p.train_y = malloc(40);
    p.train_x = malloc(40 * image);
    p.test_y = malloc(12);
    p.test_x = malloc(12 * image);
    CHECK(p.train_y && p.train_x && p.test_y && p.test_x);
    for (size_t i = 0; i < 40 * image; i++)
        p.train_x[i] = (uint8_t)(i * 31 + (size_t)seed * 7);
    for (size_t i = 0; i < 12 * image; i++)
        p.test_x[i] = (uint8_t)(i * 17 + (size_t)seed);
    for (int i = 0; i < 40; i++)
        p.train_y[i] = (uint8_t)(i % 3);
    for (int i = 0; i < 12; i++)
        p.test_y[i] = (uint8_t)(i % 3);
    char path[400];
    snprintf(path, sizeof path, "%s/pack%d.tfqd", fx->dir, seed);
    tfq_error e = {0};
    CHECK_MSG(datapack_write(path, &p, fp, &e) == 0, "%s", e.msg);
    datapack_release(&p);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *bytes = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(*bytes);
    CHECK(*buf != NULL && fread(*buf, 1, *bytes, f) == *bytes);
    fclose(f);
    return 0;
}

/* Files under the state's sub/ (ckpt, data) whose name starts with
 * prefix. */
static int count_in(const fixture *fx, const char *sub, const char *prefix)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", fx->state, sub);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        n += de->d_name[0] != '.' || strncmp(prefix, ".", 1) == 0
                 ? strncmp(de->d_name, prefix, strlen(prefix)) == 0
                 : 0;
    if (d != NULL)
        closedir(d);
    return n;
}

/* Sends one blob_put chunk data[0 .. n) at offset of a blob of total
 * bytes; the reply into *r. */
static int blob_put(conn *c, const char *store, const char *id,
                    int64_t offset, int64_t total, const void *data,
                    size_t n, proto_msg *r)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_BLOB_PUT);
    m.store = store;
    memcpy(m.id, id, sizeof m.id);
    m.offset = offset;
    m.total = total;
    m.data = data;
    m.data_bytes = n;
    CHECK(send_msg(c, &m) == 0);
    CHECK(recv_msg(c, r, REPLY_TIMEOUT_MS) == 0);
    return 0;
}

/* A reply that is an error of code, naming want in its message. */
static int is_error(const proto_msg *r, int code, const char *want)
{
    CHECK_MSG(r->kind == PROTO_ERROR, "got %s", proto_kind_name(r->kind));
    CHECK_MSG(r->code == code, "code %d (%s), wanted %d", r->code, r->msg,
              code);
    CHECK_MSG(want == NULL || strstr(r->msg, want) != NULL, "%s", r->msg);
    return 0;
}

/* Downloads blob id of store with blob_get, chunk by chunk, and checks
 * that it is want[0 .. n). */
static int blob_get_all(conn *c, const char *store, const char *id,
                        const uint8_t *want, size_t n)
{
    size_t got = 0;
    do {
        proto_msg m, r;
        proto_msg_init(&m, PROTO_BLOB_GET);
        m.store = store;
        memcpy(m.id, id, sizeof m.id);
        m.offset = (int64_t)got;
        CHECK(request(c, &m, &r, PROTO_BLOB_CHUNK) == 0);
        CHECK(strcmp(r.id, id) == 0 && strcmp(r.store, store) == 0);
        CHECK(r.total == (int64_t)n && r.offset == (int64_t)got);
        CHECK(r.data_bytes > 0 && got + r.data_bytes <= n);
        CHECK(memcmp(r.data, want + got, r.data_bytes) == 0);
        got += r.data_bytes;
    } while (got < n);
    return 0;
}

/* Uploads in three chunks, a second put that stops at its first ack, the
 * stored file, blob_has and a download in chunks; a checkpoint by its
 * hash. */
static int blob_roundtrip_body(fixture *fx)
{
    conn *c = conn_open(fx, "uploader");
    CHECK(c != NULL);
    uint8_t *pack = NULL;
    size_t n = 0;
    char fp[HASH_HEX_BYTES];
    CHECK(pack_bytes(fx, 1, &pack, &n, fp) == 0);
    proto_msg m, r;
    proto_msg_init(&m, PROTO_BLOB_HAS);
    m.store = "data";
    memcpy(m.id, fp, sizeof m.id);
    CHECK(request(c, &m, &r, PROTO_BLOB_INFO) == 0);
    CHECK(!r.present);
    size_t cut[] = {0, 10, n / 2, n};
    for (int i = 0; i < 3; i++) {
        CHECK(blob_put(c, "data", fp, (int64_t)cut[i], (int64_t)n,
                       pack + cut[i], cut[i + 1] - cut[i], &r) == 0);
        CHECK_MSG(r.kind == PROTO_ACK && !r.present, "chunk %d: %s", i,
                  r.kind == PROTO_ERROR ? r.msg : proto_kind_name(r.kind));
    }
    CHECK(request(c, &m, &r, PROTO_BLOB_INFO) == 0);
    CHECK(r.present && r.bytes == (int64_t)n);
    CHECK(blob_put(c, "data", fp, 0, (int64_t)n, pack, 10, &r) == 0);
    CHECK(r.kind == PROTO_ACK && r.present);
    CHECK_EQ_INT(count_in(fx, "data", ".upload-"), 0);
    char name[80];
    snprintf(name, sizeof name, "%s.tfqd", fp);
    CHECK_EQ_INT(count_in(fx, "data", name), 1);

    CHECK(blob_get_all(c, "data", fp, pack, n) == 0);

    /* A checkpoint: SHA-256, and the magic it must start with. */
    const char ck[] = "TFQCKPT\0 a checkpoint's bytes";
    uint8_t digest[HASH_BYTES];
    char sha[HASH_HEX_BYTES];
    hash_sha256(ck, sizeof ck, digest);
    hash_hex(digest, sha);
    CHECK(blob_put(c, "ckpt", sha, 0, sizeof ck, ck, sizeof ck, &r) == 0);
    CHECK_MSG(r.kind == PROTO_ACK, "%s", r.kind == PROTO_ERROR ? r.msg : "");
    CHECK_EQ_INT(count_in(fx, "ckpt", sha), 1);
    CHECK(blob_get_all(c, "ckpt", sha, (const uint8_t *)ck, sizeof ck) == 0);
    const char plain[] = "not a checkpoint";
    hash_sha256(plain, sizeof plain, digest);
    hash_hex(digest, sha);
    CHECK(blob_put(c, "ckpt", sha, 0, sizeof plain, plain, sizeof plain,
                   &r) == 0);
    CHECK(is_error(&r, TFQ_EMAGIC, "TFQCKPT") == 0);
    CHECK_EQ_INT(count_in(fx, "ckpt", sha), 0);
    free(pack);
    return 0;
}

static int blob_roundtrip(void)
{
    return with_coordinator(blob_roundtrip_body, HOLD_HEARTBEAT_MS);
}

/* A whole upload of pack as id, in two chunks; the last reply in *r. */
static int put_two(conn *c, const char *id, const uint8_t *pack, size_t n,
                   proto_msg *r)
{
    CHECK(blob_put(c, "data", id, 0, (int64_t)n, pack, n / 2, r) == 0);
    if (r->kind != PROTO_ACK)
        return 0;
    return blob_put(c, "data", id, (int64_t)(n / 2), (int64_t)n,
                    pack + n / 2, n - n / 2, r);
}

/* What the coordinator refuses, each with nothing stored and no upload
 * left behind: another pack's bytes under an id, chunks out of order, a
 * total its header does not say, a header that is not a pack's, an
 * unknown store, a size over the limit, a blob it does not have. */
static int blob_refused_body(fixture *fx)
{
    conn *c = conn_open(fx, "uploader");
    CHECK(c != NULL);
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    char fa[HASH_HEX_BYTES], fb[HASH_HEX_BYTES];
    CHECK(pack_bytes(fx, 1, &a, &na, fa) == 0);
    CHECK(pack_bytes(fx, 2, &b, &nb, fb) == 0);
    proto_msg r;
    CHECK(put_two(c, fa, b, nb, &r) == 0);
    CHECK(is_error(&r, TFQ_ECHECKSUM, "fingerprint") == 0);

    CHECK(blob_put(c, "data", fa, 0, (int64_t)na, a, 10, &r) == 0);
    CHECK(r.kind == PROTO_ACK);
    CHECK(blob_put(c, "data", fa, 20, (int64_t)na, a + 20, 10, &r) == 0);
    CHECK(is_error(&r, TFQ_EINVAL, "does not continue") == 0);
    CHECK(blob_put(c, "data", fa, 10, (int64_t)na, a + 10, 10, &r) == 0);
    CHECK(is_error(&r, TFQ_EINVAL, "out of order") == 0);

    CHECK(blob_put(c, "data", fa, 0, (int64_t)na - 1, a, 100, &r) == 0);
    CHECK(is_error(&r, TFQ_EFORMAT, "header says") == 0);
    uint8_t bad[64];
    memcpy(bad, a, sizeof bad);
    bad[0] = 'X';
    CHECK(blob_put(c, "data", fa, 0, (int64_t)na, bad, sizeof bad, &r) == 0);
    CHECK(is_error(&r, TFQ_EMAGIC, NULL) == 0);
    memcpy(bad, a, sizeof bad);
    bad[12] = 9; /* 9 channels */
    CHECK(blob_put(c, "data", fa, 0, (int64_t)na, bad, sizeof bad, &r) == 0);
    CHECK(is_error(&r, TFQ_EFORMAT, "channels") == 0);
    CHECK(blob_put(c, "nope", fa, 0, (int64_t)na, a, 10, &r) == 0);
    CHECK(is_error(&r, TFQ_EINVAL, "no blob store") == 0);
    CHECK(blob_put(c, "data", fa, 0, (int64_t)1 << 36, a, 10, &r) == 0);
    CHECK(is_error(&r, TFQ_ERANGE, "allowed") == 0);

    proto_msg m;
    proto_msg_init(&m, PROTO_BLOB_GET);
    m.store = "data";
    memcpy(m.id, fa, sizeof m.id);
    CHECK(send_msg(c, &m) == 0 && recv_msg(c, &r, REPLY_TIMEOUT_MS) == 0);
    CHECK(is_error(&r, TFQ_ENOENT, "no such blob") == 0);
    CHECK_EQ_INT(count_in(fx, "data", ""), 0);
    CHECK_EQ_INT(count_in(fx, "data", ".upload-"), 0);

    /* The right bytes under their own id are taken after all that. */
    CHECK(put_two(c, fa, a, na, &r) == 0);
    CHECK_MSG(r.kind == PROTO_ACK, "%s", r.kind == PROTO_ERROR ? r.msg : "");
    CHECK_EQ_INT(count_in(fx, "data", ""), 1);
    free(a);
    free(b);
    return 0;
}

static int blob_refused(void)
{
    return with_coordinator(blob_refused_body, HOLD_HEARTBEAT_MS);
}

/* An upload whose client goes silent is dropped with its file once the
 * liveness window passes; its next chunk is then out of order. */
static int blob_stale_body(fixture *fx)
{
    conn *c = conn_open(fx, "uploader");
    CHECK(c != NULL);
    uint8_t *a = NULL;
    size_t na = 0;
    char fa[HASH_HEX_BYTES];
    CHECK(pack_bytes(fx, 1, &a, &na, fa) == 0);
    proto_msg r;
    CHECK(blob_put(c, "data", fa, 0, (int64_t)na, a, 10, &r) == 0);
    CHECK(r.kind == PROTO_ACK);
    CHECK_EQ_INT(count_in(fx, "data", ".upload-"), 1);
    int64_t deadline = mono_ms() + EXPIRY_TIMEOUT_MS;
    while (count_in(fx, "data", ".upload-") > 0 && mono_ms() < deadline)
        sleep_ms(50);
    CHECK_EQ_INT(count_in(fx, "data", ".upload-"), 0);
    CHECK(blob_put(c, "data", fa, 10, (int64_t)na, a + 10, 10, &r) == 0);
    CHECK(is_error(&r, TFQ_EINVAL, "out of order") == 0);
    free(a);
    return 0;
}

static int blob_stale(void)
{
    return with_coordinator(blob_stale_body, EXPIRY_HEARTBEAT_MS);
}

int main(int argc, char **argv)
{
    job_engine_register(); /* jobs are checked as the tfq executable checks them */
    s_tfq = argc > 2 ? argv[2] : getenv("TFQ_BIN");
    signal(SIGPIPE, SIG_IGN);
    static const test_case cases[] = {
        {"malformed_while_serving", malformed_while_serving},
        {"stale_result_rejected", stale_result_rejected},
        {"deps_order", deps_order},
        {"sigterm_graceful", sigterm_graceful},
        {"ready_batch", ready_batch},
        {"uploads_owned", uploads_owned},
        {"big_results", big_results},
        {"big_status", big_status},
        {"checkpoint_by_name", checkpoint_by_name},
        {"submit_hostile", submit_hostile},
        {"submit_off_loop", submit_off_loop},
        {"dashboard_reads", dashboard_reads},
        {"metrics_lost_lease", metrics_lost_lease},
        {"blob_roundtrip", blob_roundtrip},
        {"blob_refused", blob_refused},
        {"blob_stale", blob_stale},
    };
    return test_main(argc > 2 ? 2 : argc, argv, cases,
                     (int)(sizeof cases / sizeof cases[0]));
}
