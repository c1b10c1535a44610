/* A connection to the coordinator, for the command-line client and the
 * worker alike: one DEALER socket, CURVE keys from the environment, and a
 * monitor of its handshakes, so that a coordinator that refuses us (it
 * wants CURVE, or not our key) is said at once instead of a timeout.
 *
 * Replies come in the order of the requests: the connection counts the
 * replies still owed, so that a request sent behind others (progress sent
 * without waiting) takes its own reply, not theirs.  A handle is used by
 * one thread at a time. */
#ifndef TFQ_COMMON_CLIENT_H
#define TFQ_COMMON_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/curve.h"
#include "common/hash.h"
#include "common/proto.h"

/* Where clients and workers look for the coordinator unless told. */
#define CLIENT_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"

/* A client gives up on a coordinator that has not answered in this long. */
#define CLIENT_TIMEOUT_MS 10000

typedef struct client client;

typedef struct {
    const char *endpoint;
    const char *routing_id;   /* NULL: ZeroMQ's own */
    void *ctx;                /* NULL: the client makes and ends its own */
    const curve_config *curve; /* NULL: from TFQ_CURVE_KEY / TFQ_SERVER_KEY */
    int reply_timeout_ms;     /* client_call's; 0: CLIENT_TIMEOUT_MS */
} client_opts;

/* A connection as o says (copied; strings too).  NULL on failure, with the
 * reason in e: the CURVE settings of the environment, or a socket that
 * cannot be made or an endpoint ZeroMQ refuses ("cannot connect to ..."). */
client *client_open(const client_opts *o, tfq_error *e);

/* client_open with every option at its default. */
client *client_new(const char *endpoint, tfq_error *e);

/* Closes the connection (and its context, when it made one); NULL-safe,
 * and *c becomes NULL. */
void client_destroy(client **c);

/* Starts over on a new socket with the same options: every reply owed is
 * forgotten, and so is a refusal. */
int client_reconnect(client *c, tfq_error *e);

/* The endpoint, and whether this end speaks CURVE. */
const char *client_endpoint(const client *c);
int client_curve(const client *c);

/* Sends m (flags: ZMQ_DONTWAIT or 0); a reply is owed for it.  TFQ_EIO
 * when ZeroMQ does not take it. */
int client_send(client *c, const proto_msg *m, int flags, tfq_error *e);

/* Sends m, the last message before client_destroy, one that has no reply
 * (bye): destroying c then waits up to linger_ms for it to leave.  TFQ_EIO
 * when ZeroMQ does not take it. */
int client_send_last(client *c, const proto_msg *m, int linger_ms,
                     tfq_error *e);

/* Receives one reply within timeout_ms into m (its pointers valid until the
 * next receive on c).  TFQ_EIO when none came, TFQ_EPERM when the
 * coordinator refused the handshake (and from then on, until
 * client_reconnect), or the decoding error of a bad frame. */
int client_recv(client *c, proto_msg *m, int timeout_ms, tfq_error *e);

/* The replies still owed: one per message sent, and those a "job" reply
 * says are still to come for the same "ready". */
int client_pending(const client *c);

/* Sends m and waits for its reply, passing over the replies owed to the
 * messages sent before it; an "error" reply is a reply (rc 0).  A reply
 * that does not come within the reply timeout is taken as lost: the
 * connection starts over (client_reconnect) and the call fails with
 * TFQ_EIO; TFQ_EPERM when the coordinator refused the handshake. */
int client_call(client *c, const proto_msg *m, proto_msg *reply,
                tfq_error *e);

/* client_call for a command-line client: an "error" reply is returned as
 * its code with its message in e, and a timeout says what to check. */
int client_request(client *c, const proto_msg *m, proto_msg *reply,
                   tfq_error *e);

/* Sends m, a status, results or workers request, and then the request of
 * each page that follows (m with "after" set to the reply's "next") until
 * a reply's "next" is 0, and joins the pages' items into one JSON array,
 * *items, a new string the caller frees.  *reply is the last page's reply
 * (valid until the next request).  A reply whose items are not an array,
 * or whose "next" does not move forward, is TFQ_EFORMAT.  The pages are
 * separate reads (see PROTOCOL.md): no row comes twice, but the counts of
 * a status reply may not match the running items gathered. */
int client_request_pages(client *c, const proto_msg *m, proto_msg *reply,
                         char **items, tfq_error *e);

/* One "results" read, every page: the JSON array of the jobs of grid (""
 * for every grid) that the coordinator at endpoint answers, in a new
 * string the caller frees.  NULL on failure, with the reason in e. */
char *client_results(const char *endpoint, const char *grid, tfq_error *e);

/* ---- checkpoints: one download, every check -----------------------------
 * The checkpoint whose SHA-256 is sha256 (64 hex digits) comes in chunks
 * ("ckpt_get" at each offset), each checked against the last: the same
 * total, at most max_bytes (and PROTO_MAX_CKPT_BYTES), the offset asked
 * for, data that does not run past the total and does not stop short of
 * it; then the whole against sha256.  Fails with the coordinator's error
 * (TFQ_ENOENT: no checkpoint with that hash), TFQ_EFORMAT for a bad chunk,
 * TFQ_ERANGE for one over max_bytes, TFQ_ECHECKSUM for other bytes, or
 * the connection's error. */

/* Into a new buffer, *out (the caller frees it), of *bytes bytes. */
int client_ckpt_get_mem(client *c, const char *sha256, int64_t max_bytes,
                        uint8_t **out, size_t *bytes, tfq_error *e);

/* Into the file at path: a new or regular file is written beside it
 * (path.part), synced and renamed into place once verified, and removed
 * when anything failed; anything else (a device, a pipe) is written into
 * as it is, since a rename would put a regular file in its place.  A
 * write error names path and the system's reason ("No space left on
 * device").  *bytes: the checkpoint's size. */
int client_ckpt_get_file(client *c, const char *sha256, const char *path,
                         int64_t *bytes, tfq_error *e);

/* ---- blobs (PROTOCOL.md: blob_has, blob_put, blob_get) ------------------
 * store is "data" (data packs by fingerprint) or "ckpt" (checkpoints by
 * SHA-256); id is 64 hex digits.  Each call fails with the coordinator's
 * error (its code and message), TFQ_EINVAL for an unknown store, or the
 * connection's error; none prints anything. */

/* Whether the coordinator stores blob id (*present 1 or 0). */
int client_blob_has(client *c, const char *store,
                    const char id[HASH_HEX_BYTES], int *present,
                    tfq_error *e);

/* Uploads buf[0 .. bytes) as blob id, chunk by chunk, each acknowledged;
 * stops after the first when the coordinator says it has it already.  The
 * coordinator checks the whole (TFQ_ECHECKSUM: it is not blob id) and
 * stores nothing that fails. */
int client_blob_put(client *c, const char *store,
                    const char id[HASH_HEX_BYTES], const uint8_t *buf,
                    size_t bytes, tfq_error *e);

/* The same from the file at path, streamed (a pack may be GBs): one chunk
 * in memory at a time.  *sent_bytes (may be NULL): the bytes sent, 0 when
 * the coordinator had it already.  TFQ_ENOENT / TFQ_EIO naming path for a
 * file that cannot be read. */
int client_blob_put_file(client *c, const char *store,
                         const char id[HASH_HEX_BYTES], const char *path,
                         int64_t *sent_bytes, tfq_error *e);

/* Downloads blob id into the file at path as client_ckpt_get_file does
 * (path.part, synced, renamed once verified; removed on failure), each
 * chunk checked as it comes: a data pack by its fingerprint
 * (datapack_hasher), a checkpoint by its SHA-256 and magic.  TFQ_ENOENT:
 * the coordinator has no such blob.  *bytes: its size. */
int client_blob_get_file(client *c, const char *store,
                         const char id[HASH_HEX_BYTES], const char *path,
                         int64_t *bytes, tfq_error *e);

#endif
