#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/blob.h"
#include "common/hash.h"

struct client {
    void *ctx, *sock;
    int own_ctx;   /* ctx is ours to end */
    void *monitor; /* the handshake, to say why we are refused */
    curve_config curve;
    char endpoint[256];
    char routing_id[256]; /* "": ZeroMQ's own */
    int reply_timeout_ms;
    int pending;    /* replies owed to the messages sent */
    int batch_left; /* "job" replies still to come for the last "ready" */
    char refused[256]; /* why the handshake was refused; "" not refused */
    zmq_msg_t frame;
    proto_unpacked up;
};

/* Closes the socket and its monitor, forgetting the replies owed. */
static void client_close(client *c)
{
    curve_monitor_close(c->monitor);
    c->monitor = NULL;
    if (c->sock != NULL)
        zmq_close(c->sock);
    c->sock = NULL;
    c->pending = 0;
    c->batch_left = 0;
    c->refused[0] = '\0';
}

int client_reconnect(client *c, tfq_error *e)
{
    client_close(c);
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (c->sock == NULL)
        return tfq_error_set(e, TFQ_EIO, "cannot connect to %s: %s",
                             c->endpoint, zmq_strerror(errno));
    int zero = 0;
    int rc = curve_socket_client(c->sock, &c->curve, e);
    if (rc != 0)
        return rc;
    /* Plaintext too: against a coordinator that wants CURVE the handshake
     * fails, and the monitor says so at once instead of a timeout. */
    c->monitor = curve_monitor_open(c->ctx, c->sock);
    /* A send waits for a connection at most as long as for a reply: once
     * a handshake has failed there is none to queue on, and a blocking
     * send would wait for ever. */
    int send_ms = c->reply_timeout_ms;
    if (zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &send_ms, sizeof send_ms) != 0 ||
        (c->routing_id[0] != '\0' &&
         zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, c->routing_id,
                        strlen(c->routing_id)) != 0) ||
        zmq_connect(c->sock, c->endpoint) != 0)
        return tfq_error_set(e, TFQ_EINVAL, "cannot connect to %s: %s",
                             c->endpoint, zmq_strerror(errno));
    return 0;
}

client *client_open(const client_opts *o, tfq_error *e)
{
    client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", o->endpoint);
    snprintf(c->routing_id, sizeof c->routing_id, "%s",
             o->routing_id != NULL ? o->routing_id : "");
    c->reply_timeout_ms = o->reply_timeout_ms > 0 ? o->reply_timeout_ms
                                                  : CLIENT_TIMEOUT_MS;
    zmq_msg_init(&c->frame);
    proto_unpacked_init(&c->up);
    c->ctx = o->ctx;
    if (c->ctx == NULL) {
        c->ctx = zmq_ctx_new();
        c->own_ctx = 1;
    }
    int rc = 0;
    if (c->ctx == NULL)
        rc = tfq_error_set(e, TFQ_EIO, "zmq context: %s",
                           zmq_strerror(errno));
    else if (o->curve != NULL)
        c->curve = *o->curve;
    else
        rc = curve_client_from_env(&c->curve, e);
    if (rc == 0)
        rc = client_reconnect(c, e);
    if (rc != 0)
        client_destroy(&c);
    return c;
}

client *client_new(const char *endpoint, tfq_error *e)
{
    client_opts o = {.endpoint = endpoint};
    return client_open(&o, e);
}

void client_destroy(client **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    client *c = *cp;
    zmq_msg_close(&c->frame);
    proto_unpacked_release(&c->up);
    client_close(c);
    if (c->own_ctx && c->ctx != NULL)
        zmq_ctx_term(c->ctx);
    free(c);
    *cp = NULL;
}

const char *client_endpoint(const client *c)
{
    return c->endpoint;
}

int client_curve(const client *c)
{
    return c->curve.on;
}

int client_pending(const client *c)
{
    return c->pending;
}

int client_send(client *c, const proto_msg *m, int flags, tfq_error *e)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = proto_encode(m, &b, e);
    if (rc == 0 && zmq_send(c->sock, b.data, b.size, flags) < 0) {
        int err = errno;
        if (c->monitor != NULL && c->refused[0] == '\0')
            curve_handshake_refused(c->monitor, c->curve.on, c->refused,
                                    sizeof c->refused);
        if (c->refused[0] != '\0')
            rc = tfq_error_set(e, TFQ_EPERM, "%s: %s", c->endpoint,
                               c->refused);
        else if (err == EAGAIN && !(flags & ZMQ_DONTWAIT))
            rc = tfq_error_set(e, TFQ_EIO, "no connection to %s within "
                               "%d ms", c->endpoint, c->reply_timeout_ms);
        else
            rc = tfq_error_set(e, TFQ_EIO, "send to %s: %s", c->endpoint,
                               zmq_strerror(err));
    }
    if (rc == 0)
        c->pending++;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int client_send_last(client *c, const proto_msg *m, int linger_ms,
                     tfq_error *e)
{
    int rc = client_send(c, m, ZMQ_DONTWAIT, e);
    if (rc == 0) {
        c->pending--; /* no reply comes */
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    }
    return rc;
}

int client_recv(client *c, proto_msg *m, int timeout_ms, tfq_error *e)
{
    /* Wait for a reply, or for the monitor to say we were refused. */
    zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0},
                               {c->monitor, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (c->refused[0] != '\0')
            return tfq_error_set(e, TFQ_EPERM, "%s: %s", c->endpoint,
                                 c->refused);
        if (zmq_poll(items, c->monitor ? 2 : 1, timeout_ms) <= 0)
            return tfq_error_set(e, TFQ_EIO, "no reply from %s within %d ms",
                                 c->endpoint, timeout_ms);
        if (items[1].revents & ZMQ_POLLIN)
            curve_handshake_refused(c->monitor, c->curve.on, c->refused,
                                    sizeof c->refused);
        else if (items[0].revents & ZMQ_POLLIN)
            break;
    }
    zmq_msg_close(&c->frame);
    zmq_msg_init(&c->frame);
    if (zmq_msg_recv(&c->frame, c->sock, 0) < 0)
        return tfq_error_set(e, TFQ_EIO, "recv from %s: %s", c->endpoint,
                             zmq_strerror(errno));
    if (c->pending > 0)
        c->pending--;
    int rc = proto_decode(zmq_msg_data(&c->frame), zmq_msg_size(&c->frame),
                          m, &c->up, e);
    if (rc == 0 && m->kind == PROTO_JOB) {
        /* One "ready", several replies: the first says how many follow. */
        if (c->batch_left == 0)
            c->pending += m->more;
        c->batch_left = m->more;
    }
    return rc;
}

int client_call(client *c, const proto_msg *m, proto_msg *reply,
                tfq_error *e)
{
    int rc = client_send(c, m, 0, e);
    while (rc == 0) {
        rc = client_recv(c, reply, c->reply_timeout_ms, e);
        if (rc == 0 && c->pending == 0)
            return 0;
    }
    if (rc == TFQ_EIO) {
        /* A reply is lost: start over on a new socket, or every later
         * reply would be taken for the one still awaited. */
        tfq_error oe = {0};
        client_reconnect(c, &oe);
    }
    return rc;
}

int client_request(client *c, const proto_msg *m, proto_msg *reply,
                   tfq_error *e)
{
    int rc = client_call(c, m, reply, e);
    if (rc == TFQ_EIO)
        return tfq_error_set(e, TFQ_EIO, "no answer from the coordinator "
                             "at %s within %d s (is it running? does it "
                             "want CURVE keys?)", c->endpoint,
                             c->reply_timeout_ms / 1000);
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

/* ---- blobs: downloads ---------------------------------------------------- */

/* Takes the next chunk: data[0 .. bytes) at the offset before it, of a
 * blob of total bytes (the same in every chunk). */
typedef int (*blob_sink)(void *ud, const uint8_t *data, size_t bytes,
                         int64_t total, tfq_error *e);

/* What one download asks for: a checkpoint by ckpt_get (for peers that
 * know no blob_get), or a blob of a store by blob_get. */
typedef struct {
    proto_kind ask; /* PROTO_CKPT_GET or PROTO_BLOB_GET */
    blob_store store;
    const char *id;
    int64_t max_bytes;
} blob_want;

static const char *want_what(const blob_want *w)
{
    return w->store == BLOB_DATA ? "data set" : "checkpoint";
}

/* Whether r is the chunk of w at offset got (of the same total as before
 * when *total is known). */
static int chunk_ok(const blob_want *w, const proto_msg *r, int64_t got,
                    int64_t total)
{
    int same = w->ask == PROTO_CKPT_GET
                   ? r->kind == PROTO_CKPT_CHUNK &&
                         strcmp(r->sha256, w->id) == 0
                   : r->kind == PROTO_BLOB_CHUNK &&
                         strcmp(r->id, w->id) == 0 && r->store != NULL &&
                         strcmp(r->store, blob_store_name(w->store)) == 0;
    return same && r->offset == got && (total < 0 || r->total == total) &&
           (int64_t)r->data_bytes <= r->total - got &&
           !(r->data_bytes == 0 && r->total > got);
}

/* The one download of a blob (client.h): every chunk to sink, in order,
 * each checked as it comes (blob_check), then the whole against the id;
 * *total its size. */
static int blob_fetch(client *c, const blob_want *w, blob_sink sink,
                      void *ud, int64_t *total, tfq_error *e)
{
    blob_check chk;
    blob_check_init(&chk, w->store);
    chk.magic = w->ask != PROTO_CKPT_GET; /* a sleep job's is text */
    int64_t got = 0;
    int rc = 0;
    *total = -1;
    while (rc == 0 && (*total < 0 || got < *total)) {
        proto_msg m, r;
        proto_msg_init(&m, w->ask);
        memcpy(m.sha256, w->id, sizeof m.sha256);
        memcpy(m.id, w->id, sizeof m.id);
        m.store = blob_store_name(w->store);
        m.offset = got;
        if ((rc = client_call(c, &m, &r, e)) != 0)
            break;
        if (r.kind == PROTO_ERROR)
            rc = tfq_error_set(e, r.code, "%s %.12s: %s", want_what(w), w->id,
                               r.msg);
        else if (!chunk_ok(w, &r, got, *total))
            rc = tfq_error_set(e, TFQ_EFORMAT, "%s %.12s: bad chunk at "
                               "offset %lld", want_what(w), w->id,
                               (long long)got);
        else if (r.total > w->max_bytes)
            rc = tfq_error_set(e, TFQ_ERANGE, "%s %.12s is %lld bytes, more "
                               "than the %lld expected at most", want_what(w),
                               w->id, (long long)r.total,
                               (long long)w->max_bytes);
        if (rc == 0) {
            *total = r.total;
            rc = blob_check_update(&chk, r.data, r.data_bytes, e);
        }
        if (rc == 0)
            rc = sink(ud, r.data, r.data_bytes, r.total, e);
        got += (int64_t)r.data_bytes;
    }
    if (rc != 0) {
        blob_check_release(&chk);
        return rc;
    }
    return blob_check_final(&chk, w->id, e);
}

typedef struct {
    uint8_t *buf;
    size_t len;
} mem_sink;

static int to_mem(void *ud, const uint8_t *data, size_t bytes, int64_t total,
                  tfq_error *e)
{
    mem_sink *s = ud;
    if (s->buf == NULL) {
        s->buf = malloc(total > 0 ? (size_t)total : 1);
        if (s->buf == NULL)
            return tfq_error_set(e, TFQ_ENOMEM, "checkpoint of %lld bytes",
                                 (long long)total);
    }
    if (bytes > 0)
        memcpy(s->buf + s->len, data, bytes);
    s->len += bytes;
    return 0;
}

int client_ckpt_get_mem(client *c, const char *sha256, int64_t max_bytes,
                        uint8_t **out, size_t *bytes, tfq_error *e)
{
    mem_sink s = {NULL, 0};
    int64_t total = 0;
    blob_want w = {PROTO_CKPT_GET, BLOB_CKPT, sha256,
                   max_bytes > 0 && max_bytes <= PROTO_MAX_CKPT_BYTES
                       ? max_bytes : PROTO_MAX_CKPT_BYTES};
    int rc = blob_fetch(c, &w, to_mem, &s, &total, e);
    if (rc == 0 && s.buf == NULL) /* no chunk: cannot happen, but say so */
        rc = tfq_error_set(e, TFQ_EFORMAT, "checkpoint %.12s: no chunk",
                           sha256);
    if (rc != 0) {
        free(s.buf);
        return rc;
    }
    *out = s.buf;
    *bytes = s.len;
    return 0;
}

typedef struct {
    FILE *f;
    const char *path; /* what write errors name */
} file_sink;

static int to_file(void *ud, const uint8_t *data, size_t bytes, int64_t total,
                   tfq_error *e)
{
    file_sink *s = ud;
    (void)total;
    if (fwrite(data, 1, bytes, s->f) != bytes)
        return tfq_error_set(e, errno == ENOSPC ? TFQ_ENOSPC : TFQ_EIO,
                             "%s: %s", s->path, strerror(errno));
    return 0;
}

/* A download of w into the file at path (client_ckpt_get_file says how). */
static int fetch_file(client *c, const blob_want *w, const char *path,
                      int64_t *bytes, tfq_error *e)
{
    struct stat st;
    int direct = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s%s", path, direct ? "" : ".part") >=
        (int)sizeof tmp)
        return tfq_error_set(e, TFQ_ERANGE, "%s: the path is too long", path);
    file_sink s = {fopen(tmp, "wb"), tmp};
    if (s.f == NULL)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", tmp, strerror(errno));
    int rc = blob_fetch(c, w, to_file, &s, bytes, e);
    int bad = rc == TFQ_ECHECKSUM || rc == TFQ_EMAGIC;
    /* Buffered bytes meet a full device only here. */
    if (rc == 0 || bad) {
        if (fflush(s.f) != 0 || (!direct && fsync(fileno(s.f)) != 0))
            rc = tfq_error_set(e, errno == ENOSPC ? TFQ_ENOSPC : TFQ_EIO,
                               "%s: %s", tmp, strerror(errno));
    }
    if (fclose(s.f) != 0 && (rc == 0 || bad))
        rc = tfq_error_set(e, errno == ENOSPC ? TFQ_ENOSPC : TFQ_EIO,
                           "%s: %s", tmp, strerror(errno));
    if (bad)
        tfq_error_wrap(e, rc, "%s: %s", path,
                       direct ? "what was written is not the blob asked for"
                              : "not written");
    else if (rc == 0 && !direct && rename(tmp, path) != 0)
        rc = tfq_error_set(e, TFQ_EIO, "%s: %s", path, strerror(errno));
    if (rc != 0 && !direct)
        unlink(tmp);
    return rc;
}

int client_ckpt_get_file(client *c, const char *sha256, const char *path,
                         int64_t *bytes, tfq_error *e)
{
    blob_want w = {PROTO_CKPT_GET, BLOB_CKPT, sha256, PROTO_MAX_CKPT_BYTES};
    return fetch_file(c, &w, path, bytes, e);
}

int client_blob_get_file(client *c, const char *store,
                         const char id[HASH_HEX_BYTES], const char *path,
                         int64_t *bytes, tfq_error *e)
{
    blob_want w = {PROTO_BLOB_GET, BLOB_DATA, id, DATAPACK_MAX_BYTES};
    int rc = blob_store_parse(store, &w.store, e);
    if (rc != 0)
        return rc;
    if (w.store == BLOB_CKPT)
        w.max_bytes = PROTO_MAX_CKPT_BYTES;
    return fetch_file(c, &w, path, bytes, e);
}

/* ---- blobs: uploads ------------------------------------------------------ */

int client_blob_has(client *c, const char *store,
                    const char id[HASH_HEX_BYTES], int *present,
                    tfq_error *e)
{
    proto_msg m, r;
    proto_msg_init(&m, PROTO_BLOB_HAS);
    m.store = store;
    memcpy(m.id, id, sizeof m.id);
    int rc = client_request(c, &m, &r, e);
    if (rc == 0 && r.kind != PROTO_BLOB_INFO)
        rc = tfq_error_set(e, TFQ_EFORMAT, "blob_has: the coordinator "
                           "answered %s", proto_kind_name(r.kind));
    if (rc == 0)
        *present = r.present;
    return rc;
}

/* Fills buf with the bytes at offset of what is uploaded. */
typedef int (*blob_source)(void *ud, int64_t offset, uint8_t *buf,
                           size_t bytes, tfq_error *e);

/* The one upload of a blob of total bytes (client.h): chunks of at most
 * PROTO_MAX_CHUNK_BYTES from src, each acknowledged before the next, until
 * the last, or until the first's ack says the coordinator has it already.
 * *sent: the bytes sent (0 then). */
static int blob_send(client *c, const char *store, const char *id,
                     int64_t total, blob_source src, void *ud, int64_t *sent,
                     tfq_error *e)
{
    uint8_t *buf = malloc(PROTO_MAX_CHUNK_BYTES);
    if (buf == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "out of memory");
    int64_t off = 0;
    int rc = 0;
    *sent = 0;
    do {
        size_t n = total - off < PROTO_MAX_CHUNK_BYTES
                       ? (size_t)(total - off) : PROTO_MAX_CHUNK_BYTES;
        proto_msg m, r;
        proto_msg_init(&m, PROTO_BLOB_PUT);
        m.store = store;
        memcpy(m.id, id, sizeof m.id);
        m.offset = off;
        m.total = total;
        m.data = buf;
        m.data_bytes = n;
        if ((rc = src(ud, off, buf, n, e)) != 0 ||
            (rc = client_request(c, &m, &r, e)) != 0)
            break;
        if (r.kind != PROTO_ACK) {
            rc = tfq_error_set(e, TFQ_EFORMAT, "blob_put: the coordinator "
                               "answered %s", proto_kind_name(r.kind));
            break;
        }
        if (r.present) /* stored already: nothing more to send */
            break;
        off += (int64_t)n;
        *sent = off;
    } while (off < total);
    free(buf);
    return rc;
}

typedef struct {
    const uint8_t *buf;
} mem_source;

static int from_mem(void *ud, int64_t offset, uint8_t *buf, size_t bytes,
                    tfq_error *e)
{
    (void)e;
    memcpy(buf, ((mem_source *)ud)->buf + offset, bytes);
    return 0;
}

int client_blob_put(client *c, const char *store,
                    const char id[HASH_HEX_BYTES], const uint8_t *buf,
                    size_t bytes, tfq_error *e)
{
    mem_source s = {buf};
    int64_t sent = 0;
    return blob_send(c, store, id, (int64_t)bytes, from_mem, &s, &sent, e);
}

typedef struct {
    FILE *f;
    const char *path;
} file_source;

static int from_file(void *ud, int64_t offset, uint8_t *buf, size_t bytes,
                     tfq_error *e)
{
    file_source *s = ud;
    (void)offset; /* read in order */
    if (fread(buf, 1, bytes, s->f) != bytes)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", s->path,
                             ferror(s->f) ? strerror(errno)
                                          : "shorter than it was");
    return 0;
}

int client_blob_put_file(client *c, const char *store,
                         const char id[HASH_HEX_BYTES], const char *path,
                         int64_t *sent_bytes, tfq_error *e)
{
    file_source s = {fopen(path, "rb"), path};
    struct stat st;
    if (s.f == NULL || fstat(fileno(s.f), &st) != 0) {
        int rc = tfq_error_set(e, TFQ_ENOENT, "%s: %s", path,
                               strerror(errno));
        if (s.f != NULL)
            fclose(s.f);
        return rc;
    }
    int64_t sent = 0;
    int rc = blob_send(c, store, id, (int64_t)st.st_size, from_file, &s,
                       &sent, e);
    fclose(s.f);
    if (sent_bytes != NULL)
        *sent_bytes = sent;
    return rc;
}
