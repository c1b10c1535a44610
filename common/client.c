#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/curve.h"

struct client {
    void *ctx, *sock;
    void *monitor; /* the handshake, to say why we are refused */
    int curve;     /* this end speaks CURVE */
    char endpoint[256];
    zmq_msg_t frame;
    proto_unpacked up;
};

client *client_new(const char *endpoint, tfq_error *e)
{
    client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    zmq_msg_init(&c->frame);
    proto_unpacked_init(&c->up);
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    curve_config curve;
    if (curve_client_from_env(&curve, e) != 0 ||
        (c->sock && curve_socket_client(c->sock, &curve, e) != 0)) {
        client_destroy(&c);
        return NULL;
    }
    /* Plaintext too: against a coordinator that wants CURVE the handshake
     * fails, and the monitor says so at once instead of a timeout. */
    c->curve = curve.on;
    if (c->sock)
        c->monitor = curve_monitor_open(c->ctx, c->sock);
    if (c->sock == NULL ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(c->sock, endpoint) != 0) {
        tfq_error_set(e, TFQ_EINVAL, "cannot connect to %s: %s", endpoint,
                      zmq_strerror(errno));
        client_destroy(&c);
        return NULL;
    }
    return c;
}

void client_destroy(client **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    client *c = *cp;
    zmq_msg_close(&c->frame);
    proto_unpacked_release(&c->up);
    curve_monitor_close(c->monitor);
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    free(c);
    *cp = NULL;
}

int client_request(client *c, const proto_msg *m, proto_msg *reply,
                   tfq_error *e)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = proto_encode(m, &b, e);
    if (rc == 0 && zmq_send(c->sock, b.data, b.size, 0) < 0)
        rc = tfq_error_set(e, TFQ_EIO, "send to %s: %s", c->endpoint,
                           zmq_strerror(errno));
    msgpack_sbuffer_destroy(&b);
    if (rc != 0)
        return rc;
    /* Wait for the answer, or for the monitor to say we were refused. */
    zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0},
                               {c->monitor, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, c->monitor ? 2 : 1, CLIENT_TIMEOUT_MS) <= 0)
            return tfq_error_set(e, TFQ_EIO, "no answer from the coordinator "
                                 "at %s within %d s (is it running? does it "
                                 "want CURVE keys?)", c->endpoint,
                                 CLIENT_TIMEOUT_MS / 1000);
        char why[256];
        if ((items[1].revents & ZMQ_POLLIN) &&
            curve_handshake_refused(c->monitor, c->curve, why, sizeof why))
            return tfq_error_set(e, TFQ_EPERM, "%s: %s", c->endpoint, why);
        if (items[0].revents & ZMQ_POLLIN)
            break;
    }
    zmq_msg_close(&c->frame);
    zmq_msg_init(&c->frame);
    if (zmq_msg_recv(&c->frame, c->sock, 0) < 0)
        return tfq_error_set(e, TFQ_EIO, "recv: %s", zmq_strerror(errno));
    rc = proto_decode(zmq_msg_data(&c->frame), zmq_msg_size(&c->frame), reply,
                      &c->up, e);
    if (rc == 0 && reply->kind == PROTO_ERROR)
        return tfq_error_set(e, reply->code < 0 ? reply->code : TFQ_EINVAL,
                             "%s", reply->msg);
    return rc;
}

int client_request_pages(client *c, const proto_msg *m, proto_msg *reply,
                         char **items, tfq_error *e)
{
    proto_msg page = *m;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int npage = 0, rc;
    *items = NULL;
    for (;;) {
        if ((rc = client_request(c, &page, reply, e)) != 0)
            goto fail;
        npage++;
        const char *t = reply->items != NULL ? reply->items : "[]";
        size_t n = strlen(t);
        if (n < 2 || t[0] != '[' || t[n - 1] != ']') {
            rc = tfq_error_set(e, TFQ_EFORMAT, "page %d of the %s: its "
                               "items are not a JSON array", npage,
                               proto_kind_name(reply->kind));
            goto fail;
        }
        /* The rows between the brackets, after a comma when some came. */
        size_t rows = n - 2;
        if (len + rows + 3 > cap) {
            size_t ncap = cap ? cap : 4096;
            while (len + rows + 3 > ncap)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = tfq_error_set(e, TFQ_ENOMEM, "out of memory for %d "
                                   "pages of the %s", npage,
                                   proto_kind_name(reply->kind));
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        if (len == 0)
            buf[len++] = '[';
        if (rows > 0) {
            if (len > 1)
                buf[len++] = ',';
            memcpy(buf + len, t + 1, rows);
            len += rows;
        }
        if (reply->next == 0)
            break;
        if (reply->next <= page.after) {
            rc = tfq_error_set(e, TFQ_EFORMAT, "page %d of the %s: next "
                               "page after %lld, not past %lld", npage,
                               proto_kind_name(reply->kind),
                               (long long)reply->next,
                               (long long)page.after);
            goto fail;
        }
        page.after = reply->next;
    }
    buf[len++] = ']';
    buf[len] = '\0';
    *items = buf;
    return 0;
fail:
    free(buf);
    return rc;
}

char *client_results(const char *endpoint, const char *grid, tfq_error *e)
{
    client *c = client_new(endpoint, e);
    if (c == NULL)
        return NULL;
    proto_msg m, r;
    proto_msg_init(&m, PROTO_RESULTS);
    m.grid = grid;
    char *json = NULL;
    client_request_pages(c, &m, &r, &json, e);
    client_destroy(&c);
    return json;
}
