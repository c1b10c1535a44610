/* CurveZMQ keys: key files, allow-lists, and setting up a socket.
 *
 * A secret key file holds one Z85 line (40 characters), after optional
 * "#" comment lines; its public key is derived from it.  A public key file
 * and an allow-list hold Z85 public keys, one per line, with "#" comments
 * and blank lines allowed.  `tfq keygen -o NAME` writes NAME.key (mode 0600)
 * and NAME.pub. */
#ifndef TFQ_COMMON_CURVE_H
#define TFQ_COMMON_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CURVE_Z85_BYTES 41 /* 40 characters and a NUL */
#define CURVE_KEY_BYTES 32
/* Hex digits of a key's fingerprint in logs: the start of its SHA-256. */
#define CURVE_FP_BYTES 17

/* Which process speaks CURVE, and as whom: the secret and public key of
 * this end, and the coordinator's public key (clients and workers). */
typedef struct {
    int on;
    char secret[CURVE_Z85_BYTES];
    char public_key[CURVE_Z85_BYTES];
    char server[CURVE_Z85_BYTES]; /* "" on the coordinator */
} curve_config;

/* An allow-list: the binary public keys admitted. */
typedef struct {
    uint8_t (*keys)[CURVE_KEY_BYTES];
    int n;
} curve_allow;

/* Writes prefix.key and prefix.pub for a new key pair; refuses to
 * overwrite either. */
int curve_keygen(const char *prefix, tfq_error *e);

/* Reads the secret key file at path into c->secret and c->public_key. */
int curve_load_secret(const char *path, curve_config *c, tfq_error *e);

/* Reads a one-key public key file at path into z85. */
int curve_load_public(const char *path, char z85[CURVE_Z85_BYTES],
                      tfq_error *e);

/* Reads an allow-list; errors name the file and line. */
int curve_allow_load(const char *path, curve_allow *a, tfq_error *e);
void curve_allow_release(curve_allow *a);
int curve_allow_has(const curve_allow *a, const uint8_t key[CURVE_KEY_BYTES]);

/* The client configuration from the environment: TFQ_CURVE_KEY (this end's
 * secret key file) and TFQ_SERVER_KEY (the coordinator's public key file);
 * c->on is 0 when neither is set, an error when only one is. */
int curve_client_from_env(curve_config *c, tfq_error *e);

/* Sets the CURVE options of a socket about to connect (client) or bind
 * (server); nothing when c->on is 0. */
int curve_socket_client(void *sock, const curve_config *c, tfq_error *e);
int curve_socket_server(void *sock, const curve_config *c, tfq_error *e);

/* The fingerprint of a binary public key, for logs. */
void curve_fingerprint(const uint8_t key[CURVE_KEY_BYTES],
                       char out[CURVE_FP_BYTES]);

/* Watches a client socket's handshakes: open before connecting; then
 * curve_refused says (non-blocking) whether the server refused us, with
 * why. */
void *curve_monitor_open(void *ctx, void *sock);
int curve_refused(void *monitor, char *why, size_t bytes);
/* curve_refused for an end that may speak plaintext (curve: 0): a
 * mechanism mismatch then says which of the two ends wants CURVE. */
int curve_handshake_refused(void *monitor, int curve, char *why,
                            size_t bytes);
void curve_monitor_close(void *monitor);

#endif
