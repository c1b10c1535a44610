#include "curve.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hash.h"
#include "text.h"

/* The next line of f that is not blank or a comment, trimmed; 0 at the
 * end.  *lineno counts every line read. */
static int next_line(FILE *f, char *buf, size_t bytes, int *lineno)
{
    while (fgets(buf, (int)bytes, f) != NULL) {
        (*lineno)++;
        char *p = text_trim(buf);
        if (*p == '\0' || *p == '#')
            continue;
        memmove(buf, p, strlen(p) + 1);
        return 1;
    }
    return 0;
}

/* Whether z85 is 40 Z85 characters; its 32 bytes into key (may be NULL). */
static int z85_key(const char *z85, uint8_t key[CURVE_KEY_BYTES])
{
    uint8_t tmp[CURVE_KEY_BYTES];
    return strlen(z85) == 40 && zmq_z85_decode(key ? key : tmp, z85) != NULL;
}

static int write_key_file(const char *path, const char *text, int mode,
                          tfq_error *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return tfq_error_set(e, TFQ_EIO, "%s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(path);
        return tfq_error_set(e, TFQ_EIO, "%s: cannot write", path);
    }
    return 0;
}

int curve_keygen(const char *prefix, tfq_error *e)
{
    char pub[CURVE_Z85_BYTES], sec[CURVE_Z85_BYTES];
    if (zmq_curve_keypair(pub, sec) != 0)
        return tfq_error_set(e, TFQ_ENOTSUP, "this libzmq has no CURVE: %s",
                             zmq_strerror(errno));
    char kpath[4096], ppath[4096], text[256];
    snprintf(kpath, sizeof kpath, "%s.key", prefix);
    snprintf(ppath, sizeof ppath, "%s.pub", prefix);
    snprintf(text, sizeof text, "# tfq CURVE secret key: keep it private\n"
                                "%s\n", sec);
    int rc = write_key_file(kpath, text, 0600, e);
    if (rc != 0)
        return rc;
    snprintf(text, sizeof text, "%s\n", pub);
    rc = write_key_file(ppath, text, 0644, e);
    if (rc != 0)
        unlink(kpath);
    return rc;
}

/* The only key line of a key file. */
static int read_one_key(const char *path, char z85[CURVE_Z85_BYTES],
                        tfq_error *e)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return tfq_error_set(e, TFQ_ENOENT, "%s: %s", path, strerror(errno));
    char line[256];
    int lineno = 0, rc = 0;
    if (!next_line(f, line, sizeof line, &lineno))
        rc = tfq_error_set(e, TFQ_EFORMAT, "%s: no key in the file", path);
    else if (!z85_key(line, NULL))
        rc = tfq_error_set(e, TFQ_EFORMAT, "%s: line %d: not a CURVE key (40 "
                           "Z85 characters)", path, lineno);
    else
        snprintf(z85, CURVE_Z85_BYTES, "%s", line);
    char more[256];
    if (rc == 0 && next_line(f, more, sizeof more, &lineno))
        rc = tfq_error_set(e, TFQ_EFORMAT, "%s: line %d: more than one key",
                           path, lineno);
    fclose(f);
    return rc;
}

int curve_load_secret(const char *path, curve_config *c, tfq_error *e)
{
    int rc = read_one_key(path, c->secret, e);
    if (rc == 0 && zmq_curve_public(c->public_key, c->secret) != 0)
        rc = tfq_error_set(e, TFQ_EFORMAT, "%s: not a CURVE secret key",
                           path);
    if (rc == 0)
        c->on = 1;
    return rc;
}

int curve_load_public(const char *path, char z85[CURVE_Z85_BYTES],
                      tfq_error *e)
{
    return read_one_key(path, z85, e);
}

int curve_allow_load(const char *path, curve_allow *a, tfq_error *e)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return tfq_error_set(e, TFQ_ENOENT, "%s: %s", path, strerror(errno));
    char line[256];
    int lineno = 0, cap = 0, rc = 0;
    while (rc == 0 && next_line(f, line, sizeof line, &lineno)) {
        if (a->n == cap) {
            cap = cap ? 2 * cap : 16;
            void *k = realloc(a->keys, (size_t)cap * sizeof *a->keys);
            if (k == NULL) {
                rc = tfq_error_set(e, TFQ_ENOMEM, "out of memory");
                break;
            }
            a->keys = k;
        }
        if (!z85_key(line, a->keys[a->n]))
            rc = tfq_error_set(e, TFQ_EFORMAT, "%s: line %d: not a CURVE "
                               "public key (40 Z85 characters)", path, lineno);
        else
            a->n++;
    }
    fclose(f);
    if (rc != 0)
        curve_allow_release(a);
    return rc;
}

void curve_allow_release(curve_allow *a)
{
    free(a->keys);
    memset(a, 0, sizeof *a);
}

int curve_allow_has(const curve_allow *a, const uint8_t key[CURVE_KEY_BYTES])
{
    for (int i = 0; i < a->n; i++)
        if (memcmp(a->keys[i], key, CURVE_KEY_BYTES) == 0)
            return 1;
    return 0;
}

int curve_client_from_env(curve_config *c, tfq_error *e)
{
    memset(c, 0, sizeof *c);
    const char *key = getenv("TFQ_CURVE_KEY"), *server = getenv("TFQ_SERVER_KEY");
    if ((key == NULL || *key == '\0') && (server == NULL || *server == '\0'))
        return 0;
    if (key == NULL || *key == '\0' || server == NULL || *server == '\0')
        return tfq_error_set(e, TFQ_EINVAL, "CURVE needs both this end's "
                             "secret key (--curve-key) and the coordinator's "
                             "public key (--server-key)");
    int rc = curve_load_secret(key, c, e);
    if (rc == 0)
        rc = curve_load_public(server, c->server, e);
    if (rc != 0)
        c->on = 0;
    return rc;
}

static int set(void *sock, int opt, const void *v, size_t n, tfq_error *e)
{
    if (zmq_setsockopt(sock, opt, v, n) != 0)
        return tfq_error_set(e, TFQ_ENOTSUP, "CURVE: %s", zmq_strerror(errno));
    return 0;
}

int curve_socket_client(void *sock, const curve_config *c, tfq_error *e)
{
    if (!c->on)
        return 0;
    if (set(sock, ZMQ_CURVE_SERVERKEY, c->server, 40, e) ||
        set(sock, ZMQ_CURVE_PUBLICKEY, c->public_key, 40, e) ||
        set(sock, ZMQ_CURVE_SECRETKEY, c->secret, 40, e))
        return e->code;
    return 0;
}

int curve_socket_server(void *sock, const curve_config *c, tfq_error *e)
{
    if (!c->on)
        return 0;
    int one = 1;
    if (set(sock, ZMQ_CURVE_SERVER, &one, sizeof one, e) ||
        set(sock, ZMQ_CURVE_SECRETKEY, c->secret, 40, e) ||
        set(sock, ZMQ_ZAP_DOMAIN, "tfq", 3, e))
        return e->code;
    return 0;
}

void curve_fingerprint(const uint8_t key[CURVE_KEY_BYTES],
                       char out[CURVE_FP_BYTES])
{
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256(key, CURVE_KEY_BYTES, digest);
    hash_hex(digest, hex);
    memcpy(out, hex, CURVE_FP_BYTES - 1);
    out[CURVE_FP_BYTES - 1] = '\0';
}

void *curve_monitor_open(void *ctx, void *sock)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://tfq-monitor-%p", sock);
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        return NULL;
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    if (mon != NULL) {
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(mon, ep) != 0) {
            zmq_close(mon);
            mon = NULL;
        }
    }
    return mon;
}

int curve_handshake_refused(void *monitor, int curve, char *why,
                            size_t bytes)
{
    if (monitor == NULL)
        return 0;
    zmq_msg_t head, addr;
    zmq_msg_init(&head);
    zmq_msg_init(&addr);
    int refused = 0;
    if (zmq_msg_recv(&head, monitor, ZMQ_DONTWAIT) >= 0 &&
        zmq_msg_size(&head) >= 6 && zmq_msg_recv(&addr, monitor, 0) >= 0) {
        const uint8_t *d = zmq_msg_data(&head);
        uint16_t event = (uint16_t)(d[0] | d[1] << 8);
        uint32_t value = (uint32_t)d[2] | (uint32_t)d[3] << 8 |
                         (uint32_t)d[4] << 16 | (uint32_t)d[5] << 24;
        int mismatch = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                       value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
        refused = 1;
        /* A tfq coordinator fails a plaintext handshake only when it wants
         * CURVE. */
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf(why, bytes, "the coordinator refused this key (status "
                     "%u): is it in the coordinator's allow-list?", value);
        else if (!curve)
            snprintf(why, bytes, "the coordinator requires CURVE (it ended "
                     "the handshake: event 0x%x, code 0x%x): set "
                     "TFQ_SERVER_KEY and TFQ_CURVE_KEY (or --server-key and "
                     "--curve-key)", event, value);
        else if (mismatch)
            snprintf(why, bytes, "the CURVE handshake failed: the "
                     "coordinator does not use CURVE (mechanism mismatch)");
        else
            snprintf(why, bytes, "the CURVE handshake failed (event 0x%x, "
                     "code 0x%x): wrong coordinator key, or the coordinator "
                     "does not use CURVE", event, value);
    }
    zmq_msg_close(&head);
    zmq_msg_close(&addr);
    return refused;
}

int curve_refused(void *monitor, char *why, size_t bytes)
{
    return curve_handshake_refused(monitor, 1, why, bytes);
}

void curve_monitor_close(void *monitor)
{
    if (monitor != NULL)
        zmq_close(monitor);
}
