/* The coordinator's internals, shared by its files and by nothing outside
 * coordinator/ (the public interface is coord.h):
 *
 *   coord.c           start-up and shutdown, the loop, batches and replies
 *   coord_handlers.c  the table of message kinds and their handlers
 *   coord_lease.c     lease tokens and holders: who may speak for a lease
 *   coord_submit.c    submits, parsed off the loop and stored as a grid
 *   coord_uploads.c   blob uploads and downloads (checkpoints, data)
 *   coord_auth.c      CURVE: the ZAP allow-list check and handshake monitor
 *
 * A function shared between them is declared here and named after its
 * file: coord_*, handlers_*, lease_*, submit_*, uploads_*, auth_*. */
#ifndef TFQ_COORDINATOR_COORD_INTERNAL_H
#define TFQ_COORDINATOR_COORD_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/blob.h"
#include "common/curve.h"
#include "common/hash.h"
#include "common/jobspec.h"
#include "common/proto.h"
#include "coord.h"
#include "histogram.h"
#include "store.h"

/* Jobs one "ready" is given at most, whatever it asks for: a worker that
 * drains short jobs in batches still leaves work for the others. */
#define COORD_MAX_LEASE STORE_MAX_LEASE

/* Checkpoint uploads in progress at once; a worker uploads one at a time,
 * so this is the number of workers uploading together before the oldest
 * unfinished upload is dropped (its worker gets an error and tries again
 * with its next checkpoint). */
#define COORD_MAX_UPLOADS 64

/* Submits parsed at once, each in a thread of libuv's pool while the loop
 * goes on serving (a grid of 92,160 jobs takes several seconds to parse
 * and expand); a submit beyond them is refused, so that clients cannot
 * queue up parses (each may take hundreds of MB) faster than they
 * finish. */
#define COORD_MAX_PARSES 2

/* One blob arriving in chunks, written to a temporary file as it comes
 * and checked on the way: a worker's checkpoint for its lease (ckpt_put:
 * leased), or a client's blob (blob_put: a data pack or a checkpoint). */
typedef struct {
    int used;
    int leased;       /* ckpt_put: job, attempt, epoch, holder, spec hold */
    blob_store store; /* where it goes once checked */
    int64_t job;
    int attempt, epoch;
    char holder[65]; /* the lease's holder: every chunk must come from it */
    char peer[PROTO_MAX_NAME_BYTES];
    char id[65]; /* the checkpoint's SHA-256, the data's fingerprint */
    int64_t total, got;
    FILE *f;
    char tmp[4200];
    blob_check check;
    int64_t started_ms, last_ms;
    jobspec *spec; /* leased: the job's, to check the checkpoint against */
} upload;

/* A reply held until the batch that produced it is committed. */
typedef struct {
    uint8_t id[256]; /* the peer's routing id */
    size_t id_bytes;
    msgpack_sbuffer body;
} held_reply;

/* Roles a CURVE key has: what its allow-list lets it do. */
enum { ROLE_WORKER = 1, ROLE_CLIENT = 2 };

/* Accepted connections whose peer address the monitor keeps. */
#define AUTH_MAX_CONNS 256

/* The ZAP handler (ZeroMQ's authentication hook) and the handshake monitor
 * run in a thread of their own: a handshake never waits on the store. */
typedef struct {
    int on;
    curve_config key;
    curve_allow workers, clients;
    void *zap, *monitor;
    pthread_t thread;
    volatile int stop;
    /* Accepted connections' peer addresses, by descriptor, read when the
     * monitor reports the accept: a handshake that fails later is logged
     * with the address once the connection's close is reported. */
    struct {
        int fd;
        char address[64];
    } conns[AUTH_MAX_CONNS];
    int nconns;
    unsigned failed_event, failed_code; /* a failure waiting for its close */
    struct refusals {
        int64_t logged_ms; /* the last one logged */
        char last[24];     /* its key's fingerprint, or "" */
        int quiet;         /* not logged since */
        char note[96];     /* says how many, in the next line logged */
    } by_key, by_handshake;
} auth;

/* The coordinator's own counters, since it started (the metrics read). */
typedef struct {
    uint64_t requests[PROTO_KIND_COUNT]; /* [PROTO_KIND_NONE]: frames that
                                            did not decode */
    uint64_t errors[PROTO_KIND_COUNT];   /* error replies, by the kind they
                                            answer (NONE: none) */
    uint64_t leases_lost;                /* attempts lost by expiry */
    uint64_t results_stale;              /* results of attempts no longer
                                            running, refused */
    histogram commits;                   /* the store's commits, seconds */
    int64_t start_ms;                    /* when the coordinator started */
} coord_stats;

struct coord {
    coord_config cfg;
    coord_stats stats;
    int64_t timer_ms;   /* when the lease check last ran (0: not yet) */
    auth auth;
    int batching;       /* replies go to held[] until the commit */
    int nrequests;      /* handled in this batch */
    held_reply *held;   /* one request may hold several replies */
    int nheld, cap_held;
    store *st;
    void *zctx;
    void *sock;
    uv_loop_t loop;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm;
    proto_unpacked up;
    char endpoint[256];
    char ckpt_dir[4096];
    char data_dir[4096]; /* DIR/data: data packs by fingerprint */
    upload uploads[COORD_MAX_UPLOADS];
    uint8_t chunk[PROTO_MAX_CHUNK_BYTES]; /* a checkpoint chunk being sent */
    struct submit_work *parsing[COORD_MAX_PARSES]; /* submits off the loop */
    int nparsing;
    int lock_fd; /* DIR/tfq.lock, flocked for the coordinator's life */
};

/* Who sent a message. */
typedef struct {
    const void *data; /* the peer's routing id */
    size_t bytes;
    char name[PROTO_MAX_NAME_BYTES]; /* printable form, for logs and store */
    unsigned roles;                  /* ROLE_*: what it may ask */
    const char *user;                /* CURVE: "ROLES FINGERPRINT"; "" */
    const char *address;             /* its IP address, or "" */
} peer;

/* What answers one kind of message.  It replies (coord_reply*) at least
 * once, unless the message is one that is never answered (bye, error). */
typedef void handler_fn(coord *c, const peer *p, const proto_msg *m);

/* ---- coord.c ---- */

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t coord_now_ms(void);

/* Fills p for routing id data[0 .. bytes) (borrowed: p->data points into
 * it) with roles, no CURVE user and no address. */
void coord_peer_of(peer *p, const void *data, size_t bytes, unsigned roles);

/* Encodes m and sends it to p, or holds it until the open batch commits.
 * A message that cannot be encoded is logged and answered with an error
 * instead: the peer is never left waiting. */
void coord_reply(coord *c, const peer *p, const proto_msg *m);

/* An error reply (code, msg) answering a message of kind re
 * (PROTO_KIND_NONE: undecodable). */
void coord_reply_error(coord *c, const peer *p, int code, const char *msg,
                       proto_kind re);

/* A reply with no fields but its kind (ack). */
void coord_reply_kind(coord *c, const peer *p, proto_kind k);

/* Commits the open batch, then sends its replies; when the commit fails,
 * each peer gets an error instead (nothing of what it asked was recorded).
 * Nothing when no batch is open. */
void coord_end_batch(coord *c);

/* Reads and handles every message waiting on the socket, in batches. */
void coord_read(coord *c);

/* ---- coord_handlers.c ---- */

/* Decodes frame, checks that p's roles allow its kind and hands it to its
 * handler; anything wrong is answered with an error. */
void handlers_dispatch(coord *c, const peer *p, const void *frame,
                       size_t bytes);

/* Whether the coordinator serves kind k (it has a handler). */
int handlers_serves(proto_kind k);

/* How long unseen makes a worker gone in the workers report. */
int64_t handlers_gone_after_ms(const coord *c);

/* ---- coord_metrics.c ---- */

/* The metrics text (Prometheus text exposition format 0.0.4) into *text,
 * which the caller frees; TFQ_ENOMEM, or the store's error. */
int metrics_text(coord *c, char **text, tfq_error *e);

/* ---- coord_lease.c ---- */

/* Fills out[0 .. n) (n at most COORD_MAX_LEASE) with fresh lease tokens;
 * -1 when the system gives no random bytes. */
int lease_tokens(char (*out)[HASH_HEX_BYTES], int n);

/* The holder of a lease taken by p with token (what the store keeps). */
void lease_holder(const peer *p, const char *token, char out[HASH_HEX_BYTES]);

/* The holder m speaks for, from its lease token and p's key: 1.  When m
 * carries no token, answers TFQ_EPERM and returns 0. */
int lease_holder_of_msg(coord *c, const peer *p, const proto_msg *m,
                        char holder[HASH_HEX_BYTES]);

/* Answers m, a message about a lease, with error rc (why); a TFQ_EPERM is
 * logged with the peer, its address and key. */
void lease_refuse(coord *c, const peer *p, const proto_msg *m, int rc,
                  const char *why);

/* ---- coord_submit.c ---- */

/* submit: parsed in a work thread, then stored and answered on the loop. */
handler_fn submit_queue;

/* Cancels the submits not yet being parsed (they are answered that
 * nothing was stored); those being parsed finish. */
void submit_cancel_all(coord *c);

/* ---- coord_uploads.c ---- */

handler_fn uploads_put;      /* ckpt_put: one chunk of a checkpoint upload */
handler_fn uploads_get;      /* ckpt_get, blob_get: one chunk of a blob */
handler_fn uploads_blob_has; /* blob_has: whether a blob is stored */
handler_fn uploads_blob_put; /* blob_put: one chunk of a client's blob */

/* Drops the uploads of an attempt whose lease has ended. */
void uploads_drop_attempt(coord *c, int64_t job, int attempt);

/* Drops uploads whose lease has ended (expired, cancelled) or that have
 * been silent for silent_ms (a client's blob too): abandoned ones take no
 * disk. */
void uploads_sweep(coord *c, int64_t now, int64_t silent_ms);

/* Drops every upload in progress (their temporary files removed). */
void uploads_drop_all(coord *c);

/* Removes what uploads in progress left in dir when a coordinator
 * stopped: an upload does not survive a restart. */
void uploads_clean(const char *dir);

/* ---- coord_auth.c ---- */

/* Without c->cfg.curve_key: nothing, 0.  Else loads the key and
 * allow-lists and starts the ZAP handler's thread, before the socket
 * binds, so that no peer is ever served unchecked; TFQ_EINVAL without an
 * allow-list, the loader's error for a bad key or list, TFQ_EIO or
 * TFQ_ENOMEM when ZeroMQ or the thread cannot start.  auth_stop undoes
 * it, whether it succeeded or not. */
int auth_start(coord *c, tfq_error *e);
void auth_stop(auth *a);

#endif
