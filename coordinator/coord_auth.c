/* CURVE: the ZAP handler that admits a peer only when its key is in an
 * allow-list (giving it its roles), and the monitor that logs handshakes
 * that fail before ZAP is asked, both in a thread of their own. */
#include "coord_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "common/clock.h"
#include "common/log.h"

/* A refused peer reconnects again and again: log a refusal at once, then
 * at most one a AUTH_LOG_MS, saying how many went unlogged. */
#define AUTH_LOG_MS 5000

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
int auth_start(coord *c, tfq_error *e)
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

void auth_stop(auth *a)
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
