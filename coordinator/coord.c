/* The coordinator's loop: start-up (the state directory, the store, the
 * socket), the libuv loop that reads the socket, the batches that commit
 * many requests at once and hold their replies until then, the lease
 * timer, and shutdown.  What answers each message is in coord_handlers.c
 * (coord_internal.h lists the files). */
#define _GNU_SOURCE
#include "coord.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "common/jobspec.h"
#include "common/log.h"
#include "common/proto.h"
#include "coord_internal.h"
#include "store.h"

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

int64_t coord_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- replies ------------------------------------------------------------ */

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

void coord_end_batch(coord *c)
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

void coord_reply(coord *c, const peer *p, const proto_msg *m)
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
        coord_reply_error(c, p, rc, e.msg, PROTO_KIND_NONE);
    }
    msgpack_sbuffer_destroy(&b);
}

void coord_reply_error(coord *c, const peer *p, int code, const char *msg,
                       proto_kind re)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    c->stats.errors[re > PROTO_KIND_NONE && re < PROTO_KIND_COUNT
                        ? re : PROTO_KIND_NONE]++;
    if (proto_error_reply(code, msg, re, &b) == 0)
        send_frame(c, p, &b);
    msgpack_sbuffer_destroy(&b);
}

void coord_reply_kind(coord *c, const peer *p, proto_kind k)
{
    proto_msg m;
    proto_msg_init(&m, k);
    coord_reply(c, p, &m);
}

/* ---- the loop ----------------------------------------------------------- */

void coord_peer_of(peer *p, const void *data, size_t bytes, unsigned roles)
{
    p->data = data;
    p->bytes = bytes;
    p->roles = roles;
    p->user = "";
    p->address = "";
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

/* ZMQ_FD only signals edges, so the loop runs until ZMQ_EVENTS says
 * nothing is left. */
void coord_read(coord *c)
{
    for (;;) {
        uint32_t ev = 0;
        size_t sz = sizeof ev;
        if (c->nrequests >= COORD_BATCH)
            coord_end_batch(c);
        if (zmq_getsockopt(c->sock, ZMQ_EVENTS, &ev, &sz) != 0 ||
            !(ev & ZMQ_POLLIN)) {
            coord_end_batch(c);
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
            coord_end_batch(c);
            return;
        }
        peer p;
        coord_peer_of(&p, zmq_msg_data(&id), zmq_msg_size(&id),
                      ROLE_WORKER | ROLE_CLIENT);
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
        if (frames == 1 && c->auth.on) {
            const char *user = zmq_msg_gets(&body, "User-Id");
            const char *address = zmq_msg_gets(&body, "Peer-Address");
            p.user = user ? user : "";
            p.address = address ? address : "";
            p.roles = (strncmp(p.user, "worker", 6) == 0 ? ROLE_WORKER : 0) |
                      (strstr(p.user, "client") != NULL ? ROLE_CLIENT : 0);
        }
        if (frames == 1)
            handlers_dispatch(c, &p, zmq_msg_data(&body), zmq_msg_size(&body));
        else
            coord_reply_error(c, &p, TFQ_EFORMAT,
                              "a message is exactly one frame",
                              PROTO_KIND_NONE);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    coord_read(h->data);
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
    coord_peer_of(&p, id, id_bytes, ROLE_WORKER | ROLE_CLIENT);
    c->nrequests++;
    handlers_dispatch(c, &p, frame, bytes);
    coord_end_batch(c);
    while (c->nparsing > 0) /* a submit: until it is stored and answered */
        uv_run(&c->loop, UV_RUN_ONCE);
    return rc;
}

void *coord_zmq_context(coord *c)
{
    return c->zctx;
}

/* The lease check, every heartbeat interval.  A check that comes late by
 * over half a liveness window finds a coordinator that did not run (a
 * stall on a slow disk, SIGSTOP, a suspended machine): the heartbeats sent
 * meanwhile wait unread in the socket, and libuv runs due timers before it
 * reads.  Then, as at start-up, every running lease gets a fresh window
 * instead of being declared lost for the coordinator's own silence. */
static void on_timer(uv_timer_t *t)
{
    coord *c = t->data;
    int requeued = 0, rc;
    tfq_error e = {0};
    int64_t liveness_ms = (int64_t)c->cfg.heartbeat_ms * c->cfg.liveness;
    int64_t now = coord_now_ms();
    int64_t late = c->timer_ms ? now - c->timer_ms - c->cfg.heartbeat_ms : 0;
    c->timer_ms = now;
    if (late > liveness_ms / 2) {
        log_warn("the coordinator did not run for %lld ms: every running "
                 "lease gets a fresh liveness window", (long long)late);
        rc = store_recover(c->st, now, &e);
    } else {
        rc = store_expire(c->st, now, liveness_ms, &requeued, &e);
    }
    if (rc != 0)
        log_error("lease check: %s", e.msg);
    c->stats.leases_lost += (uint64_t)requeued;
    if (rc == 0 && requeued > 0)
        log_warn("%d attempt%s lost (no heartbeat for %lld ms): requeued",
                 requeued, requeued == 1 ? "" : "s", (long long)liveness_ms);
    uploads_sweep(c, coord_now_ms(), liveness_ms);
    coord_read(c); /* a send may have left input pending */
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
    store_time_commits(c->st, &c->stats.commits);
    int64_t from = store_rolled_back_from(c->st);
    if (from > 0)
        log_warn("--accept-rollback: serving %s as it is, at commit %" PRId64
                 ", though %s said commit %" PRId64 " was made: what the "
                 "lost commits recorded is gone, and finished jobs among "
                 "them may run again", path, store_commit_seq(c->st), seq,
                 from);
    return TFQ_OK;
}

/* Makes the state directory (private), takes its lock, opens the store
 * and reconciles what a previous coordinator left running, and makes
 * DIR/ckpt without the uploads a previous one left unfinished. */
static int open_state(coord *c, tfq_error *e)
{
    const char *dir = c->cfg.state_dir;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", dir, strerror(errno));
    make_private(dir);
    int rc = lock_state(c, e);
    if (rc == 0)
        rc = open_store(c, e);
    if (rc == 0)
        rc = store_recover(c->st, coord_now_ms(), e);
    if (rc != 0)
        return rc;
    snprintf(c->ckpt_dir, sizeof c->ckpt_dir, "%s/ckpt", dir);
    snprintf(c->data_dir, sizeof c->data_dir, "%s/data", dir);
    const char *stores[] = {c->ckpt_dir, c->data_dir};
    for (int i = 0; i < 2; i++) {
        if (mkdir(stores[i], 0700) != 0 && errno != EEXIST)
            return tfq_error_set(e, TFQ_EIO, "%s: %s", stores[i],
                                 strerror(errno));
        uploads_clean(stores[i]);
        make_private(stores[i]);
    }
    return TFQ_OK;
}

/* The ZeroMQ context and the ROUTER socket, not yet bound. */
static int make_socket(coord *c, tfq_error *e)
{
    c->zctx = zmq_ctx_new();
    c->sock = c->zctx ? zmq_socket(c->zctx, ZMQ_ROUTER) : NULL;
    if (c->sock == NULL)
        return tfq_error_set(e, TFQ_EIO, "zmq: %s", zmq_strerror(errno));
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
    return TFQ_OK;
}

/* Binds the socket (CURVE first, when configured: no peer is served
 * unchecked), warns when it listens off this machine without CURVE, and
 * writes DIR/endpoint: where it listens, an ephemeral port included, for
 * scripts and tests. */
static int bind_socket(coord *c, tfq_error *e)
{
    int rc = auth_start(c, e);
    if (rc != 0)
        return rc;
    if (zmq_bind(c->sock, c->cfg.bind) != 0)
        return tfq_error_set(e, TFQ_EIO, "cannot bind %s: %s", c->cfg.bind,
                             zmq_strerror(errno));
    size_t elen = sizeof c->endpoint;
    zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, c->endpoint, &elen);
    if (!c->auth.on && !endpoint_is_local(c->endpoint))
        log_warn("listening on %s without CURVE: anyone who can reach this "
                 "port can submit and cancel jobs, take leases and report "
                 "results; off loopback give --curve-key and allow-lists "
                 "(README.md, Scaling out)", c->endpoint);
    char path[4096];
    snprintf(path, sizeof path, "%s/endpoint", c->cfg.state_dir);
    int efd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = efd >= 0 ? fdopen(efd, "w") : NULL;
    if (f == NULL && efd >= 0)
        close(efd);
    if (f != NULL) {
        fprintf(f, "%s\n", c->endpoint);
        fclose(f);
    }
    return TFQ_OK;
}

/* The loop's handles: the socket's descriptor, the lease timer, SIGINT
 * and SIGTERM. */
static void start_loop(coord *c)
{
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
    c->stats.start_ms = coord_now_ms();
    histogram_init(&c->stats.commits);
    if (open_state(c, e) != 0 || make_socket(c, e) != 0 ||
        bind_socket(c, e) != 0)
        goto fail;
    start_loop(c);
    log_info("coordinator listening on %s, state in %s", c->endpoint,
             cfg->state_dir);
    return c;
fail:
    auth_stop(&c->auth);
    if (c->sock)
        zmq_close(c->sock);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    store_destroy(&c->st);
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    proto_unpacked_release(&c->up);
    free(c);
    return NULL;
}

int coord_run(coord *c)
{
    coord_read(c); /* anything that arrived before the loop */
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
    submit_cancel_all(c);
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
    uploads_drop_all(c);
    auth_stop(&c->auth);
    zmq_close(c->sock);
    zmq_ctx_term(c->zctx);
    store_destroy(&c->st);
    close(c->lock_fd); /* only now may another coordinator open the store */
    proto_unpacked_release(&c->up);
    free(c->held);
    free(c);
    *cp = NULL;
}
