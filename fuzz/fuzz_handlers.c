/* libFuzzer target: the coordinator's request handlers against a real store.
 *
 * A coordinator (coord_new) keeps its state in a temporary directory, with
 * its ROUTER socket bound to an inproc endpoint.  Once started it holds
 * grid "fuzz" (a few sleep and train jobs with dependencies and a
 * transfer), submitted as a client would.  Each input is a sequence of
 * messages (handlers_input.h) that the harness packs as msgpack maps,
 * mostly well formed and aimed at the jobs, leases and checkpoints that
 * exist, so that they get past the decoder into ready, heartbeat,
 * progress, result, release, the checkpoint upload and download, submit
 * and the grid commands; each is handled with coord_feed, as one message
 * from the socket is.  The peers the harness names have DEALER sockets
 * connected to the coordinator: every reply they get must decode, and the
 * lease tokens of "job" replies are kept for the next messages to carry.
 * Replies to any other routing id are dropped by the socket.
 *
 * State carries over from input to input; every TFQ_FUZZ_RESET inputs
 * (default 500) the coordinator is destroyed, its directory removed and a
 * fresh one started, so the store and the checkpoint directory stay small
 * however long the run.  A restart checks that no upload left a temporary
 * file and that no descriptor leaked.  A crash leaves the directory
 * (TMPDIR/tfq-fuzz-*) as it was.  To replay a crash from a fresh store:
 * TFQ_FUZZ_RESET=1 fuzz_handlers crash-FILE (one that needed the state of
 * earlier inputs may then pass: run their sequence as one input). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/proto.h"
#include "coordinator/coord.h"
#include "handlers_input.h"
#include "worker/job.h"

#define RESET_DEFAULT 500
#define RECENT 4          /* checkpoint hashes remembered */
#define LEASES 8          /* leases remembered */
#define MAX_ENTRIES 16    /* fields of one message, extras included */
#define MAX_CHUNKS 3
#define ENDPOINT "inproc://tfq-fuzz"
/* How long a peer's connection may take to be known to the coordinator:
 * only says when to give up. */
#define CONNECT_TIMEOUT_MS 10000

/* A sleep job's checkpoint (worker/job.c). */
#define SLEEP_CKPT_FORMAT "tfq sleep checkpoint 1 epoch %d\n"

/* The harness's grid: two sleep jobs, one after the other, and a train job
 * whose final checkpoint a second one copies. */
static const char s_fuzz_grid[] =
    "name = a\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = b\nafter = a\nkind = sleep\nsleep_ms = 0\n---\n"
    "name = base\nkind = train\nclasses = 0,2,3,4,6\n---\n"
    "name = sel\ninit_from = base\nkind = train\ncopy = 3\nfreeze = 3\n";

static const char *const s_specs[HIN_SPEC_COUNT] = {
    [HIN_SPEC_FUZZ_GRID] = s_fuzz_grid,
    [HIN_SPEC_SMALL] = "name = x\nkind = sleep\nsleep_ms = 1\n---\n"
                       "name = y\nafter = x\nkind = sleep\nsleep_ms = 2\n",
    [HIN_SPEC_CHANGED] = "name = a\nkind = sleep\nsleep_ms = 5\n",
    [HIN_SPEC_GRID_YAML] = "name: tiny\n"
                           "dataset:\n  kind: fashion-mnist\n"
                           "  limit_train: 100\n  limit_test: 50\n"
                           "net: reference\ntrain:\n  epochs: 1\n"
                           "splits:\n  random: [1]\ndirections: A->B\n"
                           "layers: 1-2\nvariants: [selffer]\n"
                           "finetune: frozen\nseeds: [1]\nmetric: final\n",
    [HIN_SPEC_BAD] = "name = p\nafter = q\nkind = sleep\n---\n"
                     "name = q\nafter = p\nkind = sleep\n",
};

static const char *const s_grids[HIN_GRID_COUNT] = {"fuzz", "other", ""};
static const char *const s_workers[] = {"w", "worker-1", "a name with spaces"};
static const char *const s_results[] = {
    "{}",
    "{\"final_acc\": 0.5, \"best_acc\": 0.6, \"topk_acc\": 0.9, \"topk\": 5, "
    "\"epochs\": 3, \"final_loss\": null, \"train_seconds\": 1.5, "
    "\"data_fingerprint\": \"\", \"accs\": [0.4, 0.5]}",
    "{\"final_acc\": 2}",
    "[]",
    "{\"unknown\": 1}",
    "{\"accs\": [0.1, [0.2]]}",
};
static const char *const s_errors[] = {"boom", "diverged", ""};
/* Queries of a jobs request: good ones, and a bad key, value or type. */
static const char *const s_queries[] = {
    "{}",
    "{\"state\": \"running\", \"sort\": \"n\", \"desc\": true, "
    "\"limit\": 2}",
    "{\"q\": \"a\", \"offset\": 1, \"sort\": \"updated\"}",
    "{\"split\": \"random\", \"variant\": \"selffer\", \"n\": 1, "
    "\"target\": \"B\"}",
    "{\"sort\": \"bogus\"}",
    "{\"limit\": 0}",
    "{\"unknown\": 1}",
    "[1]",
    "{\"state\": 3",
};
static const char s_zero_hash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- reading the input -------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, pos;
} reader;

static unsigned rd_u8(reader *r)
{
    return r->pos < r->n ? r->p[r->pos++] : 0;
}

static uint64_t rd_u64(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | rd_u8(r);
    return v;
}

/* The next bytes of the input, at most want of them; their count goes to
 * *got. */
static const uint8_t *rd_bytes(reader *r, size_t want, size_t *got)
{
    const uint8_t *p = r->p + r->pos;
    *got = want < r->n - r->pos ? want : r->n - r->pos;
    r->pos += *got;
    return p;
}

static size_t rd_len16(reader *r)
{
    size_t hi = rd_u8(r);
    return hi << 8 | rd_u8(r);
}

/* ---- messages ----------------------------------------------------------- */

typedef enum { V_NIL, V_INT, V_UINT, V_DBL, V_FLOAT, V_BOOL, V_STR, V_BIN,
               V_ARRAY, V_MAP } vtype;

typedef struct {
    vtype type;
    int64_t i;
    uint64_t u;
    double d;
    const void *p;
    size_t n;
} value;

typedef struct {
    const char *key;
    value v;
} entry;

/* The fields the harness fills, and the kinds that carry them. */
typedef enum {
    HF_WORKER, HF_THREADS, HF_MAX, HF_JOB, HF_ATTEMPT, HF_LEASE, HF_EPOCH,
    HF_STEP, HF_LOSS,
    HF_TEST_ACC, HF_IMAGES_PER_S, HF_ETA_S, HF_OK, HF_RESULT, HF_ERROR, HF_SHA256,
    HF_OFFSET, HF_TOTAL, HF_DATA, HF_GRID, HF_SPEC, HF_FORCE, HF_FINGERPRINT,
    HF_CODE, HF_MSG, HF_RE, HF_AFTER, HF_QUERY,
    HF_ROWS, /* "count" of an events request */
    HF_COUNT
} field;

static const char *const s_keys[HF_COUNT] = {
    "worker", "threads", "max", "job", "attempt", "lease", "epoch", "step",
    "loss",
    "test_acc", "images_per_s", "eta_s", "ok", "result", "error", "sha256",
    "offset", "total", "data", "grid", "spec", "force", "fingerprint", "code",
    "msg", "re", "after", "query", "count"};

#define END HF_COUNT
typedef struct {
    proto_kind kind;
    field fields[10]; /* up to END */
} op_def;

static const op_def s_ops[HIN_OP_COUNT] = {
    [HIN_OP_HELLO] = {PROTO_HELLO, {HF_WORKER, HF_THREADS, END}},
    [HIN_OP_READY] = {PROTO_READY, {HF_MAX, END}},
    [HIN_OP_HEARTBEAT] = {PROTO_HEARTBEAT,
                          {HF_JOB, HF_ATTEMPT, HF_LEASE, HF_EPOCH, HF_STEP,
                           END}},
    [HIN_OP_PROGRESS] = {PROTO_PROGRESS,
                         {HF_JOB, HF_ATTEMPT, HF_LEASE, HF_EPOCH, HF_LOSS,
                          HF_TEST_ACC, HF_IMAGES_PER_S, HF_ETA_S, END}},
    [HIN_OP_CKPT_PUT] = {PROTO_CKPT_PUT,
                         {HF_JOB, HF_ATTEMPT, HF_LEASE, HF_EPOCH, HF_OFFSET,
                          HF_TOTAL, HF_SHA256, HF_DATA, END}},
    [HIN_OP_RESULT] = {PROTO_RESULT,
                       {HF_JOB, HF_ATTEMPT, HF_LEASE, HF_OK, HF_RESULT,
                        HF_ERROR, HF_SHA256, END}},
    [HIN_OP_RELEASE] = {PROTO_RELEASE, {HF_JOB, HF_ATTEMPT, HF_LEASE, END}},
    [HIN_OP_CKPT_GET] = {PROTO_CKPT_GET, {HF_SHA256, HF_OFFSET, END}},
    [HIN_OP_BYE] = {PROTO_BYE, {END}},
    [HIN_OP_SUBMIT] = {PROTO_SUBMIT,
                       {HF_GRID, HF_SPEC, HF_FORCE, HF_FINGERPRINT, END}},
    [HIN_OP_STATUS] = {PROTO_STATUS, {HF_GRID, HF_AFTER, END}},
    [HIN_OP_RESULTS] = {PROTO_RESULTS, {HF_GRID, HF_AFTER, END}},
    [HIN_OP_CANCEL_GRID] = {PROTO_CANCEL_GRID, {HF_GRID, END}},
    [HIN_OP_RETRY] = {PROTO_RETRY, {HF_GRID, END}},
    [HIN_OP_WORKERS] = {PROTO_WORKERS, {HF_AFTER, END}},
    [HIN_OP_ERROR] = {PROTO_ERROR, {HF_CODE, HF_MSG, HF_RE, END}},
    [HIN_OP_JOB] = {PROTO_JOB, {HF_JOB, HF_ATTEMPT, HF_SPEC, HF_LEASE, END}},
    [HIN_OP_RAW] = {PROTO_KIND_NONE, {END}},
    [HIN_OP_CURVES] = {PROTO_CURVES, {HF_GRID, HF_AFTER, HF_JOB, END}},
    [HIN_OP_GRIDS] = {PROTO_GRIDS, {HF_AFTER, END}},
    [HIN_OP_JOBS] = {PROTO_JOBS, {HF_GRID, HF_QUERY, END}},
    [HIN_OP_EVENTS] = {PROTO_EVENTS,
                       {HF_GRID, HF_JOB, HF_AFTER, HF_ROWS, END}},
    [HIN_OP_ATTEMPTS] = {PROTO_ATTEMPTS, {HF_JOB, END}},
    [HIN_OP_METRICS] = {PROTO_METRICS, {END}},
};

/* The peers with a connection, by HIN_PEER_*. */
static const char *const s_ids[HIN_PEER_BYTES] = {"w0", "w1", "w0/beat",
                                                  "c0"};

/* A lease a "job" reply gave. */
typedef struct {
    int64_t job;
    int attempt;
    char token[HASH_HEX_BYTES];
} lease;

/* The harness: one coordinator, restarted now and then. */
static struct {
    char dir[4096];   /* the temporary directory */
    char state[4200]; /* the coordinator's state directory in it */
    coord *c;
    void *peers[HIN_PEER_BYTES]; /* DEALER sockets, by HIN_PEER_* */
    long inputs, reset_every;
    int fds; /* open descriptors with a coordinator running, at the start */
    char recent[RECENT][HASH_HEX_BYTES]; /* checkpoints uploaded */
    int nrecent;
    lease leases[LEASES]; /* newest first */
    int nleases;
    proto_unpacked up;
} s_h;

/* Hex digits, made into a message's scratch space. */
typedef struct {
    char hex[MAX_ENTRIES][HASH_HEX_BYTES];
    int nhex;
} scratch;

static value v_str(const char *s)
{
    return (value){.type = V_STR, .p = s, .n = strlen(s)};
}

static value v_int(int64_t i)
{
    return (value){.type = V_INT, .i = i};
}

static value v_dbl(double d)
{
    return (value){.type = V_DBL, .d = d};
}

/* A string: template t[v % n], or text from the input when v is HIN_TEXT. */
static value text(reader *r, const char *const *t, size_t n)
{
    unsigned v = rd_u8(r);
    if (v == HIN_TEXT) {
        value x = {.type = V_STR};
        x.p = rd_bytes(r, rd_u8(r), &x.n);
        return x;
    }
    return v_str(t[v % n]);
}

/* 64 hex digits of the next 32 bytes of the input. */
static value hex_value(reader *r, scratch *s)
{
    if (s->nhex == MAX_ENTRIES)
        return v_str(s_zero_hash);
    char *hex = s->hex[s->nhex++];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", rd_u8(r));
    return v_str(hex);
}

static value hash_value(reader *r, scratch *s)
{
    unsigned v = rd_u8(r);
    if (v % 4 == 0 && s_h.nrecent > 0)
        return v_str(s_h.recent[(v / 4) % (unsigned)s_h.nrecent]);
    if (v % 4 == 3)
        return hex_value(r, s);
    return v_str(s_zero_hash);
}

/* The lease a usual-value byte picks, or NULL. */
static const lease *lease_pick(unsigned v)
{
    if (v >= HIN_LEASE_PICK || s_h.nleases == 0)
        return NULL;
    return &s_h.leases[v % (unsigned)s_h.nleases];
}

/* The usual value of field f, chosen by the input. */
static value usual(reader *r, field f, scratch *s)
{
    switch (f) {
    case HF_WORKER:
        return text(r, s_workers, sizeof s_workers / sizeof s_workers[0]);
    case HF_THREADS:
        return v_int(1 + rd_u8(r) % 8);
    case HF_MAX:
        return v_int(rd_u8(r) % 9);
    case HF_JOB: { /* the harness's grid has 4 jobs; submits add some */
        unsigned v = rd_u8(r);
        const lease *l = lease_pick(v);
        return v_int(l ? l->job : 1 + v % 8);
    }
    case HF_ATTEMPT: {
        unsigned v = rd_u8(r);
        const lease *l = lease_pick(v);
        return v_int(l ? l->attempt : 1 + v % 4);
    }
    case HF_LEASE: {
        unsigned v = rd_u8(r);
        const lease *l = lease_pick(v);
        if (l != NULL)
            return v_str(l->token);
        return v % 2 ? v_str(s_zero_hash) : hex_value(r, s);
    }
    case HF_EPOCH:
        return v_int(rd_u8(r) % 4);
    case HF_STEP:
        return v_int(rd_u8(r));
    case HF_OFFSET:
        return v_int(16 * (int64_t)rd_u8(r));
    case HF_TOTAL:
        return v_int(rd_u8(r));
    case HF_AFTER: /* a row (job, worker) to page after */
        return v_int(rd_u8(r) % 8);
    case HF_CODE:
        return v_int(-1 - (int64_t)(rd_u8(r) % 14));
    case HF_LOSS:
    case HF_IMAGES_PER_S:
    case HF_ETA_S:
    case HF_TEST_ACC: {
        unsigned v = rd_u8(r);
        if (v == 255)
            return v_dbl(NAN);
        return v_dbl(f == HF_TEST_ACC ? v / 254.0 : v / 16.0);
    }
    case HF_OK:
    case HF_FORCE:
        return (value){.type = V_BOOL, .i = rd_u8(r) & 1};
    case HF_RESULT:
        return text(r, s_results, sizeof s_results / sizeof s_results[0]);
    case HF_ERROR:
    case HF_MSG:
        return text(r, s_errors, sizeof s_errors / sizeof s_errors[0]);
    case HF_GRID:
        return text(r, s_grids, HIN_GRID_COUNT);
    case HF_SPEC:
        return text(r, s_specs, HIN_SPEC_COUNT);
    case HF_QUERY:
        return text(r, s_queries, sizeof s_queries / sizeof s_queries[0]);
    case HF_ROWS:
        return v_int(rd_u8(r) % 12);
    case HF_SHA256:
    case HF_FINGERPRINT:
        return hash_value(r, s);
    case HF_DATA: {
        value x = {.type = V_BIN};
        x.p = rd_bytes(r, rd_u8(r), &x.n);
        return x;
    }
    case HF_RE:
        return v_str(proto_kind_name((proto_kind)(rd_u8(r) % PROTO_KIND_COUNT)));
    case HF_COUNT:
        break;
    }
    return (value){.type = V_NIL};
}

/* A value of some msgpack type, most likely not the field's. */
static value wrong_type(reader *r)
{
    static const uint8_t one = 1;
    switch (rd_u8(r) % 10) {
    case 0: return (value){.type = V_NIL};
    case 1: return (value){.type = V_BOOL, .i = 1};
    case 2: return v_int(-1);
    case 3: return (value){.type = V_UINT, .u = UINT64_MAX};
    case 4: return v_dbl(1.5);
    case 5: return (value){.type = V_FLOAT, .d = 0.25};
    case 6: return v_str("x");
    case 7: return (value){.type = V_BIN, .p = &one, .n = 1};
    case 8: return (value){.type = V_ARRAY};
    default: return (value){.type = V_MAP};
    }
}

/* A raw value of the field's msgpack type from the input. */
static value extreme(reader *r, field f)
{
    value x;
    switch (f) {
    case HF_LOSS:
    case HF_TEST_ACC:
    case HF_IMAGES_PER_S:
    case HF_ETA_S: {
        uint64_t bits = rd_u64(r);
        x.type = V_DBL;
        memcpy(&x.d, &bits, sizeof x.d);
        return x;
    }
    case HF_WORKER:
    case HF_RESULT:
    case HF_ERROR:
    case HF_SHA256:
    case HF_LEASE:
    case HF_GRID:
    case HF_SPEC:
    case HF_QUERY:
    case HF_FINGERPRINT:
    case HF_MSG:
    case HF_RE:
    case HF_DATA:
        x.type = f == HF_DATA ? V_BIN : V_STR;
        x.p = rd_bytes(r, rd_len16(r), &x.n);
        return x;
    default: {
        /* The top two bits say which: a uint past INT64_MAX, a negative
         * int, or a non-negative one. */
        uint64_t u = rd_u64(r), low = u & (((uint64_t)1 << 62) - 1);
        if (u >> 62 == 3)
            return (value){.type = V_UINT, .u = u};
        if (u >> 62 == 2)
            return v_int(-(int64_t)low - 1);
        return v_int((int64_t)u);
    }
    }
}

/* Reads field f's control byte and, unless it is left out, adds it to
 * es; planned is its usual value when given (ckpt_put), else one is read. */
static void add_field(reader *r, field f, const value *planned, scratch *s,
                      entry *es, int *n)
{
    unsigned ctl = rd_u8(r);
    value v;
    if (ctl < HIN_CTL_ABSENT)
        v = planned ? *planned : usual(r, f, s);
    else if (ctl < HIN_CTL_WRONG_TYPE)
        return;
    else if (ctl < HIN_CTL_EXTREME)
        v = wrong_type(r);
    else
        v = extreme(r, f);
    es[(*n)++] = (entry){s_keys[f], v};
}

static void pack_str(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, p, n);
}

static void pack_value(msgpack_packer *pk, const value *v)
{
    switch (v->type) {
    case V_NIL: msgpack_pack_nil(pk); break;
    case V_INT: msgpack_pack_int64(pk, v->i); break;
    case V_UINT: msgpack_pack_uint64(pk, v->u); break;
    case V_DBL: msgpack_pack_double(pk, v->d); break;
    case V_FLOAT: msgpack_pack_float(pk, (float)v->d); break;
    case V_BOOL:
        if (v->i)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case V_STR: pack_str(pk, v->p, v->n); break;
    case V_BIN:
        msgpack_pack_bin(pk, v->n);
        msgpack_pack_bin_body(pk, v->p, v->n);
        break;
    case V_ARRAY:
        msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 1);
        break;
    case V_MAP:
        msgpack_pack_map(pk, 1);
        pack_str(pk, "a", 1);
        msgpack_pack_int(pk, 2);
        break;
    }
}

/* Packs the envelope of kind k, the entries, and the extras the input
 * asks for, into sb (cleared first). */
static void pack_message(reader *r, proto_kind k, const entry *es, int n,
                         msgpack_sbuffer *sb)
{
    unsigned extra = rd_u8(r);
    value kind = v_str(proto_kind_name(k));
    int version = extra >= HIN_EXTRA_VERSION && extra < HIN_EXTRA_NO_KIND
                      ? 2
                      : PROTO_VERSION;
    int with_kind = extra != HIN_EXTRA_NO_KIND;
    int unknown = extra >= HIN_EXTRA_UNKNOWN_KEY && extra < HIN_EXTRA_DUPLICATE;
    int duplicate = extra >= HIN_EXTRA_DUPLICATE &&
                    extra < HIN_EXTRA_VERSION && n > 0;
    if (extra == HIN_EXTRA_KIND_NAME) {
        kind.p = rd_bytes(r, rd_u8(r), &kind.n);
    }
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)(1 + with_kind + n + unknown + duplicate));
    pack_str(&pk, "v", 1);
    msgpack_pack_int(&pk, version);
    if (with_kind) {
        pack_str(&pk, "k", 1);
        pack_value(&pk, &kind);
    }
    for (int i = 0; i < n; i++) {
        pack_str(&pk, es[i].key, strlen(es[i].key));
        pack_value(&pk, &es[i].v);
    }
    if (unknown) {
        pack_str(&pk, "later_field", 11);
        msgpack_pack_int(&pk, 7);
    }
    if (duplicate) {
        pack_str(&pk, es[0].key, strlen(es[0].key));
        pack_value(&pk, &es[0].v);
    }
}

/* Reads the replies waiting for peer i: each must decode, and the leases
 * of "job" replies are kept, newest first.  Returns how many there were. */
static int drain(int i)
{
    int n = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, s_h.peers[i], ZMQ_DONTWAIT) >= 0) {
        proto_msg m;
        tfq_error e = {0};
        n++;
        if (proto_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &m, &s_h.up,
                         &e) != 0) {
            fprintf(stderr, "fuzz_handlers: the coordinator sent %s a frame "
                    "that does not decode: %s\n", s_ids[i], e.msg);
            abort();
        }
        if (m.kind != PROTO_JOB)
            continue;
        memmove(&s_h.leases[1], &s_h.leases[0],
                (LEASES - 1) * sizeof s_h.leases[0]);
        s_h.leases[0].job = m.job;
        s_h.leases[0].attempt = m.attempt;
        memcpy(s_h.leases[0].token, m.lease, sizeof m.lease);
        if (s_h.nleases < LEASES)
            s_h.nleases++;
    }
    zmq_msg_close(&msg);
    return n;
}

static void feed(const uint8_t *id, size_t id_bytes, const void *frame,
                 size_t bytes)
{
    if (coord_feed(s_h.c, id, id_bytes, frame, bytes) != 0) {
        fprintf(stderr, "fuzz_handlers: coord_feed could not begin a batch\n");
        abort();
    }
    for (int i = 0; i < HIN_PEER_BYTES; i++)
        drain(i);
}

/* One ckpt_put upload: planned chunks, each sent as its own message. */
static void send_upload(reader *r, const uint8_t *id, size_t id_bytes,
                        scratch *s, msgpack_sbuffer *sb)
{
    value job = usual(r, HF_JOB, s), attempt = usual(r, HF_ATTEMPT, s),
          token = usual(r, HF_LEASE, s), epoch = usual(r, HF_EPOCH, s);
    int nchunks = 1 + (int)(rd_u8(r) % MAX_CHUNKS);
    unsigned plan = rd_u8(r) % HIN_PLAN_COUNT;
    const uint8_t *chunk[MAX_CHUNKS];
    size_t bytes[MAX_CHUNKS], total = 0;
    char line[64];
    if (plan == HIN_PLAN_SLEEP) { /* the line, cut in nchunks pieces */
        size_t len = (size_t)snprintf(line, sizeof line, SLEEP_CKPT_FORMAT,
                                      (int)epoch.i);
        for (int i = 0; i < nchunks; i++) {
            chunk[i] = (const uint8_t *)line + len * (size_t)i / (size_t)nchunks;
            bytes[i] = len * (size_t)(i + 1) / (size_t)nchunks -
                       len * (size_t)i / (size_t)nchunks;
        }
    } else {
        for (int i = 0; i < nchunks; i++)
            chunk[i] = rd_bytes(r, rd_u8(r), &bytes[i]);
    }
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    for (int i = 0; i < nchunks; i++) {
        hash_sha256_update(&h, chunk[i], bytes[i]);
        total += bytes[i];
    }
    if (plan == HIN_PLAN_WRONG_HASH)
        hash_sha256_update(&h, "x", 1);
    uint8_t digest[HASH_BYTES];
    char hex[HASH_HEX_BYTES];
    hash_sha256_final(&h, digest);
    hash_hex(digest, hex);
    if (plan == HIN_PLAN_RIGHT || plan == HIN_PLAN_SLEEP) {
        memmove(s_h.recent[1], s_h.recent[0],
                (RECENT - 1) * sizeof s_h.recent[0]);
        memcpy(s_h.recent[0], hex, sizeof hex);
        if (s_h.nrecent < RECENT)
            s_h.nrecent++;
    }
    /* The chunks sent, in order: 0, 1, ... or with one skipped or one
     * sent twice. */
    int order[MAX_CHUNKS + 1], norder = 0;
    for (int i = 0; i < nchunks; i++) {
        if (plan == HIN_PLAN_SKIP && i == 1)
            continue;
        order[norder++] = i;
        if (plan == HIN_PLAN_REPEAT && i == 0)
            order[norder++] = 0;
    }
    for (int o = 0; o < norder; o++) {
        int i = order[o];
        size_t offset = 0;
        for (int j = 0; j < i; j++)
            offset += bytes[j];
        value planned[] = {job,
                           attempt,
                           token,
                           epoch,
                           v_int((int64_t)offset),
                           v_int((int64_t)total),
                           v_str(hex),
                           {.type = V_BIN, .p = chunk[i], .n = bytes[i]}};
        entry es[MAX_ENTRIES];
        int n = 0;
        for (int f = 0; s_ops[HIN_OP_CKPT_PUT].fields[f] != END; f++)
            add_field(r, s_ops[HIN_OP_CKPT_PUT].fields[f], &planned[f], s, es,
                      &n);
        pack_message(r, PROTO_CKPT_PUT, es, n, sb);
        feed(id, id_bytes, sb->data, sb->size);
    }
}

/* Reads one message (or upload) from the input and feeds it. */
static void send_one(reader *r, msgpack_sbuffer *sb)
{
    unsigned op = rd_u8(r) % HIN_OP_COUNT, who = rd_u8(r) % HIN_PEER_COUNT;
    const uint8_t *id;
    size_t id_bytes;
    if (who == HIN_PEER_BYTES) {
        size_t want = rd_u8(r);
        id = rd_bytes(r, want ? want : 1, &id_bytes);
        if (id_bytes == 0) { /* a ROUTER's ids are never empty */
            id = (const uint8_t *)"?";
            id_bytes = 1;
        }
    } else {
        id = (const uint8_t *)s_ids[who];
        id_bytes = strlen(s_ids[who]);
    }
    if (op == HIN_OP_RAW) {
        size_t bytes;
        const uint8_t *frame = rd_bytes(r, rd_len16(r), &bytes);
        feed(id, id_bytes, frame, bytes);
        return;
    }
    scratch s = {.nhex = 0};
    if (op == HIN_OP_CKPT_PUT) {
        send_upload(r, id, id_bytes, &s, sb);
        return;
    }
    entry es[MAX_ENTRIES];
    int n = 0;
    for (int f = 0; s_ops[op].fields[f] != END; f++)
        add_field(r, s_ops[op].fields[f], NULL, &s, es, &n);
    pack_message(r, s_ops[op].kind, es, n, sb);
    feed(id, id_bytes, sb->data, sb->size);
}

/* ---- the coordinator's lifetime ----------------------------------------- */

/* The number of open descriptors but pipes (libFuzzer talks to a
 * symbolizer process through pipes it opens when it first needs one);
 * with show, each descriptor is printed with what it refers to. */
static int open_fds(int show)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[300], target[4096] = "";
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0 && strncmp(target, "pipe:", 5) != 0)
            n++;
        if (show && len > 0)
            fprintf(stderr, "  %s -> %.*s\n", de->d_name, (int)len, target);
    }
    closedir(d);
    return n;
}

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Connects peer i and waits until the coordinator knows it: a reply to it
 * arrives (the answer to an empty frame). */
static void connect_peer(int i)
{
    void *sock = zmq_socket(coord_zmq_context(s_h.c), ZMQ_DEALER);
    int zero = 0;
    if (sock == NULL ||
        zmq_setsockopt(sock, ZMQ_ROUTING_ID, s_ids[i], strlen(s_ids[i])) ||
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_connect(sock, ENDPOINT) != 0) {
        fprintf(stderr, "fuzz_handlers: cannot connect %s: %s\n", s_ids[i],
                zmq_strerror(errno));
        abort();
    }
    s_h.peers[i] = sock;
    for (int waited_ms = 0; waited_ms < CONNECT_TIMEOUT_MS; waited_ms += 10) {
        coord_feed(s_h.c, s_ids[i], strlen(s_ids[i]), "", 0);
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 10) > 0 && drain(i) > 0)
            return;
    }
    fprintf(stderr, "fuzz_handlers: %s got no reply from the coordinator "
            "within %d ms of connecting\n", s_ids[i], CONNECT_TIMEOUT_MS);
    abort();
}

static void start(void)
{
    coord_config cfg = {
        .state_dir = s_h.state,
        .bind = ENDPOINT,
        .heartbeat_ms = 60000, /* leases outlive a coordinator's inputs */
    };
    tfq_error e = {0};
    s_h.c = coord_new(&cfg, &e);
    if (s_h.c == NULL) {
        fprintf(stderr, "fuzz_handlers: cannot start a coordinator in %s: "
                "%s\n", s_h.state, e.msg);
        abort();
    }
    proto_msg m;
    proto_msg_init(&m, PROTO_SUBMIT);
    m.grid = "fuzz";
    m.spec = s_fuzz_grid;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (proto_encode(&m, &sb, &e) != 0) {
        fprintf(stderr, "fuzz_handlers: encoding the grid: %s\n", e.msg);
        abort();
    }
    s_h.nrecent = 0;
    s_h.nleases = 0;
    for (int i = 0; i < HIN_PEER_BYTES; i++)
        connect_peer(i);
    feed((const uint8_t *)"c0", 2, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Destroys the coordinator and removes its state; aborts when an upload
 * left its temporary file behind. */
static void stop(void)
{
    for (int i = 0; i < HIN_PEER_BYTES; i++) {
        zmq_close(s_h.peers[i]);
        s_h.peers[i] = NULL;
    }
    coord_destroy(&s_h.c);
    char ckpt[4300];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", s_h.state);
    DIR *d = opendir(ckpt);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, ".upload-", 8) == 0) {
            fprintf(stderr, "fuzz_handlers: %s/%s left behind after the "
                    "coordinator was destroyed\n", ckpt, de->d_name);
            abort();
        }
    if (d != NULL)
        closedir(d);
    nftw(s_h.state, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    if (s_h.c != NULL)
        stop();
    rmdir(s_h.dir);
    proto_unpacked_release(&s_h.up);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (getenv("TFQ_LOG") == NULL) /* a bad message is logged: quiet */
        tfq_log_set_level(TFQ_LOG_ERROR);
    const char *every = getenv("TFQ_FUZZ_RESET");
    s_h.reset_every = every ? atol(every) : RESET_DEFAULT;
    job_engine_register();
    if (s_h.reset_every < 1)
        s_h.reset_every = 1;
    const char *tmp = getenv("TMPDIR");
    snprintf(s_h.dir, sizeof s_h.dir, "%s/tfq-fuzz-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(s_h.dir) == NULL) {
        perror(s_h.dir);
        abort();
    }
    snprintf(s_h.state, sizeof s_h.state, "%s/state", s_h.dir);
    proto_unpacked_init(&s_h.up);
    atexit(cleanup);
    start();
    s_h.fds = open_fds(0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (++s_h.inputs > s_h.reset_every) {
        stop();
        start();
        s_h.inputs = 1;
        int fds = open_fds(0);
        if (fds > s_h.fds) {
            fprintf(stderr, "fuzz_handlers: %d descriptors open after a "
                    "restart, %d after the first start:\n", fds, s_h.fds);
            open_fds(1);
            abort();
        }
    }
    reader r = {data, size, 0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < HIN_MAX_MESSAGES && r.pos < r.n; i++)
        send_one(&r, &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
