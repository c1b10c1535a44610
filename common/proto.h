/* The tfq wire protocol: one msgpack map per ZeroMQ frame (schema/PROTOCOL.md).
 *
 * proto_msg is a plain struct holding every field any kind uses; a kind
 * reads and writes only its own (the table in proto.c and PROTOCOL.md say
 * which).  proto_encode writes that kind's fields; proto_decode validates a
 * frame from the network completely (types, ranges, lengths, required
 * fields) and never asserts or crashes on any input. */
#ifndef TFQ_COMMON_PROTO_H
#define TFQ_COMMON_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PROTO_VERSION 1

/* Limits, in bytes.  A frame must fit a checkpoint chunk plus its envelope
 * with room to spare; 4 MiB keeps a hostile peer from making the
 * coordinator buffer much. */
#define PROTO_MAX_FRAME_BYTES (4u << 20)
#define PROTO_MAX_CHUNK_BYTES (1u << 20)             /* "data" of a chunk */
#define PROTO_MAX_CKPT_BYTES ((int64_t)1 << 34)     /* a checkpoint: 16 GiB */
#define PROTO_MAX_BLOB_BYTES ((int64_t)1 << 36) /* "offset", "total": 64 GiB,
                                                   a data pack's bound */
#define PROTO_MAX_STORE_BYTES 16                     /* "store" */
/* Fingerprints one "ready" may say its worker lacks ("lacks"). */
#define PROTO_MAX_LACKS 16
#define PROTO_MAX_LACKS_BYTES (PROTO_MAX_LACKS * 65)
#define PROTO_MAX_NAME_BYTES 128             /* "worker", "grid", "name" */
#define PROTO_MAX_STATE_BYTES 16                     /* "state" */
#define PROTO_MAX_MSG_BYTES 4096                     /* "msg", "error" */
#define PROTO_MAX_TEXT_BYTES (1u << 20)              /* "spec", "result" */
#define PROTO_MAX_ITEMS_BYTES (3u << 20)             /* "items" (JSON) */
#define PROTO_MAX_QUERY_BYTES 4096                   /* "query" (JSON) */
/* Jobs one "ready" may ask for ("max") and so the "job" replies one
 * request may bring. */
#define PROTO_MAX_LEASE 256
/* Caps on the msgpack structure of a frame, checked before msgpack-c
 * allocates anything: our maps have a few dozen entries, so 4096 objects
 * (about 64 KiB of msgpack_object) and depth 16 leave room for extensions. */
#define PROTO_MAX_OBJECTS 4096
#define PROTO_MAX_DEPTH 16

/* X(ENUM, "name"): every message kind.  Worker, coordinator and client
 * kinds share one namespace; PROTOCOL.md says who sends which. */
#define PROTO_KIND_MAP(X)                  \
    X(HELLO, "hello")                      \
    X(WELCOME, "welcome")                  \
    X(READY, "ready")                      \
    X(JOB, "job")                          \
    X(NO_JOB, "no_job")                    \
    X(HEARTBEAT, "heartbeat")              \
    X(ACK, "ack")                          \
    X(CANCEL, "cancel")                    \
    X(PROGRESS, "progress")                \
    X(CKPT_PUT, "ckpt_put")                \
    X(RESULT, "result")                    \
    X(RELEASE, "release")                  \
    X(CKPT_GET, "ckpt_get")                \
    X(CKPT_CHUNK, "ckpt_chunk")            \
    X(BYE, "bye")                          \
    X(SUBMIT, "submit")                    \
    X(SUBMITTED, "submitted")              \
    X(STATUS, "status")                    \
    X(STATUS_REPLY, "status_reply")        \
    X(RESULTS, "results")                  \
    X(RESULTS_REPLY, "results_reply")      \
    X(CURVES, "curves")                    \
    X(CURVES_REPLY, "curves_reply")        \
    X(CANCEL_GRID, "cancel_grid")          \
    X(RETRY, "retry")                      \
    X(CHANGED, "changed")                  \
    X(WORKERS, "workers")                  \
    X(WORKERS_REPLY, "workers_reply")      \
    X(JOB_GET, "job_get")                  \
    X(JOB_INFO, "job_info")                \
    X(GRIDS, "grids")                      \
    X(GRIDS_REPLY, "grids_reply")          \
    X(JOBS, "jobs")                        \
    X(JOBS_REPLY, "jobs_reply")            \
    X(EVENTS, "events")                    \
    X(EVENTS_REPLY, "events_reply")        \
    X(ATTEMPTS, "attempts")                \
    X(ATTEMPTS_REPLY, "attempts_reply")    \
    X(METRICS, "metrics")                  \
    X(METRICS_REPLY, "metrics_reply")      \
    X(BLOB_HAS, "blob_has")                \
    X(BLOB_INFO, "blob_info")              \
    X(BLOB_PUT, "blob_put")                \
    X(BLOB_GET, "blob_get")                \
    X(BLOB_CHUNK, "blob_chunk")            \
    X(ERROR, "error")

typedef enum {
    PROTO_KIND_NONE = 0, /* no kind: "re" absent */
#define PROTO__KIND_ENUM(e, name) PROTO_##e,
    PROTO_KIND_MAP(PROTO__KIND_ENUM)
#undef PROTO__KIND_ENUM
    PROTO_KIND_COUNT
} proto_kind;

/* One message.  Which fields a kind carries, and their ranges, are in
 * PROTOCOL.md.  Absent optional fields read as: NULL strings, empty sha256,
 * re == PROTO_KIND_NONE.
 *
 * Pointers (strings, data) returned by proto_decode point into the frame
 * and into the proto_unpacked storage: they stay valid until that storage
 * is released or reused and the frame is freed, whichever comes first.
 * Strings are NUL-terminated and contain no NUL byte. */
typedef struct {
    int version;     /* PROTO_VERSION after decode; ignored by encode */
    proto_kind kind;

    /* worker session */
    const char *worker; /* hello: worker name */
    int threads;        /* hello: training threads */
    int heartbeat_ms;   /* welcome: heartbeat interval to use */
    int retry_ms;       /* no_job: ask again after this long */
    int max;            /* ready: jobs wanted at most; 0 reads as 1 */
    int more;           /* job: replies still to come for the same ready */

    /* a job attempt */
    int64_t job;
    int attempt; /* 1 for the first run of a job */
    char lease[65]; /* the lease's token, 64 hex digits: the coordinator's
                       job reply gives it, and every later message about
                       the attempt must carry it back */
    int epoch;   /* epochs completed */
    int64_t step;
    const char *spec; /* job: job config text; submit: grid file text */
    double loss, test_acc, images_per_s, eta_s; /* NaN: not measured */
    bool ok;
    const char *result; /* JSON text */
    const char *error;

    /* checkpoint chunks; job: the checkpoint to resume from */
    char sha256[65]; /* lowercase hex of the whole checkpoint; "" = absent */
    char init[65];   /* job: the checkpoint to copy layers from; "" = none */
    int64_t offset, total;
    const uint8_t *data; /* chunk bytes: data[0 .. data_bytes) */
    size_t data_bytes;

    /* blobs: content-addressed files of a store ("data": data packs by
     * fingerprint, "ckpt": checkpoints by SHA-256) */
    const char *store;
    char id[65];   /* 64 hex digits */
    bool present;  /* blob_info; ack of a blob_put: already stored */
    int64_t bytes; /* blob_info: its size (0 when absent) */
    /* release: why the worker hands the job back (NULL: it stops);
     * release, ready: the data fingerprints it cannot get, space-separated
     * (ready: at most PROTO_MAX_LACKS) */
    const char *reason;
    const char *lacks;

    /* clients */
    const char *grid; /* grid name */
    bool force;
    int64_t grid_id, added, reused, kept;
    char fingerprint[65]; /* submit: the data set's, for a grid file */
    int64_t queued, running, done, failed;
    int64_t blocked, cancelled; /* status_reply: of the failed, those
                                   blocked and those cancelled */
    int64_t lost, failures; /* status_reply: attempts lost (worker gone) and
                               attempts failed (the job reported an error) */
    int64_t released; /* status_reply: attempts handed back by a worker
                         that stopped */
    int64_t count;
    const char *items; /* JSON array text; metrics_reply: the Prometheus
                          text exposition */
    const char *query; /* jobs: a JSON object of filters, sort and page */
    const char *name;  /* job_get, job_info: a job's name in its grid */
    const char *state; /* job_info: the job's state ("succeeded", ...) */

    /* error */
    int code;         /* a TFQ_E* value */
    const char *msg;
    proto_kind re;    /* the kind being answered, or PROTO_KIND_NONE */

    /* paged reads (status, results, curves, workers, grids): the reply's items
     * start after row `after` (0: at the first); `next` is the `after` that
     * asks for the page that follows, 0 when this page was the last */
    int64_t after, next;
} proto_msg;

/* The storage a decoded message points into; init before the first decode,
 * release when done.  One storage may serve many decodes in turn. */
typedef struct {
    msgpack_unpacked up;
} proto_unpacked;

void proto_unpacked_init(proto_unpacked *s);
void proto_unpacked_release(proto_unpacked *s);

/* Clears m (all zero, NULL strings, re none) and sets version and kind. */
void proto_msg_init(proto_msg *m, proto_kind kind);

/* Wire name of a kind ("heartbeat"); "?" for values outside the enum. */
const char *proto_kind_name(proto_kind k);

/* The kind called name[0 .. len), or PROTO_KIND_NONE if there is none. */
proto_kind proto_kind_parse(const char *name, size_t len);

/* Appends the encoding of m (its kind's fields only) to out, which the
 * caller has initialised.  Checks the fields as proto_decode would: a
 * missing required string gives TFQ_EINVAL, a value out of range or too
 * long TFQ_ERANGE, an oversized frame TFQ_ERANGE, allocation failure
 * TFQ_ENOMEM; on failure out is left as it was. */
int proto_encode(const proto_msg *m, msgpack_sbuffer *out, tfq_error *e);

/* Decodes one frame into m; m's pointers point into frame and storage
 * (see proto_msg).  Fails, with a message naming what was wrong, with:
 *   TFQ_ERANGE   frame over PROTO_MAX_FRAME_BYTES (not read), a number or
 *                length out of range, too many or too deep objects;
 *   TFQ_EFORMAT  not msgpack, trailing bytes, not a map, a non-string key,
 *                a duplicate key, a field of the wrong type, a missing
 *                required field;
 *   TFQ_EVERSION "v" missing or not PROTO_VERSION;
 *   TFQ_EINVAL   "k" missing or an unknown kind;
 *   TFQ_ENOMEM.
 * Unknown keys are ignored.  m is unspecified after a failure. */
int proto_decode(const void *frame, size_t bytes, proto_msg *m,
                 proto_unpacked *storage, tfq_error *e);

/* Appends an "error" message to out: code (made TFQ_EINVAL when it is not a
 * valid negative code), msg (tfq_strerror(code) when NULL; cut to
 * PROTO_MAX_MSG_BYTES), re (PROTO_KIND_NONE to omit).  Returns 0 or
 * TFQ_ENOMEM. */
int proto_error_reply(int code, const char *msg, proto_kind re,
                      msgpack_sbuffer *out);

#endif
