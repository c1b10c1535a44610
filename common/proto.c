#include "proto.h"

#include <math.h>
#include <string.h>

/* ---- the field and kind tables: the one description of the protocol ---- */

typedef enum { T_INT, T_I64, T_DBL, T_BOOL, T_STR, T_SHA, T_BIN, T_KIND } ftype;

typedef struct {
    const char *key;
    ftype type;
    size_t off;       /* offsetof(proto_msg, the field) */
    int64_t min, max; /* T_INT, T_I64: value range; T_STR, T_BIN: max bytes;
                         T_DBL: value range, max -1 meaning no upper bound */
} field_def;

#define X_FIELDS(X)                                                        \
    X(WORKER, "worker", T_STR, worker, 0, PROTO_MAX_NAME_BYTES)            \
    X(THREADS, "threads", T_INT, threads, 1, 4096)                         \
    X(HEARTBEAT_MS, "heartbeat_ms", T_INT, heartbeat_ms, 1, 3600000)       \
    X(RETRY_MS, "retry_ms", T_INT, retry_ms, 0, 3600000)                   \
    X(MAX, "max", T_INT, max, 0, PROTO_MAX_LEASE)                          \
    X(MORE, "more", T_INT, more, 0, PROTO_MAX_LEASE - 1)                   \
    X(JOB, "job", T_I64, job, 1, INT64_MAX)                                \
    X(ATTEMPT, "attempt", T_INT, attempt, 1, 1000000)                      \
    X(EPOCH, "epoch", T_INT, epoch, 0, 1000000)                            \
    X(STEP, "step", T_I64, step, 0, INT64_MAX)                             \
    X(SPEC, "spec", T_STR, spec, 0, PROTO_MAX_TEXT_BYTES)                  \
    X(LOSS, "loss", T_DBL, loss, 0, -1)                                    \
    X(TEST_ACC, "test_acc", T_DBL, test_acc, 0, 1)                         \
    X(IMAGES_PER_S, "images_per_s", T_DBL, images_per_s, 0, -1)            \
    X(ETA_S, "eta_s", T_DBL, eta_s, 0, -1)                                 \
    X(OK, "ok", T_BOOL, ok, 0, 0)                                          \
    X(RESULT, "result", T_STR, result, 0, PROTO_MAX_TEXT_BYTES)            \
    X(ERROR, "error", T_STR, error, 0, PROTO_MAX_MSG_BYTES)                \
    X(SHA256, "sha256", T_SHA, sha256, 0, 0)                               \
    X(INIT, "init", T_SHA, init, 0, 0)                                     \
    X(OFFSET, "offset", T_I64, offset, 0, PROTO_MAX_BLOB_BYTES)            \
    X(TOTAL, "total", T_I64, total, 0, PROTO_MAX_BLOB_BYTES)               \
    X(DATA, "data", T_BIN, data, 0, PROTO_MAX_CHUNK_BYTES)                 \
    X(GRID, "grid", T_STR, grid, 0, PROTO_MAX_NAME_BYTES)                  \
    X(FORCE, "force", T_BOOL, force, 0, 0)                                 \
    X(GRID_ID, "grid_id", T_I64, grid_id, 1, INT64_MAX)                    \
    X(ADDED, "added", T_I64, added, 0, INT64_MAX)                          \
    X(REUSED, "reused", T_I64, reused, 0, INT64_MAX)                       \
    X(KEPT, "kept", T_I64, kept, 0, INT64_MAX)                             \
    X(FINGERPRINT, "fingerprint", T_SHA, fingerprint, 0, 0)                \
    X(QUEUED, "queued", T_I64, queued, 0, INT64_MAX)                       \
    X(RUNNING, "running", T_I64, running, 0, INT64_MAX)                    \
    X(DONE, "done", T_I64, done, 0, INT64_MAX)                             \
    X(FAILED, "failed", T_I64, failed, 0, INT64_MAX)                       \
    X(COUNT, "count", T_I64, count, 0, INT64_MAX)                          \
    X(ITEMS, "items", T_STR, items, 0, PROTO_MAX_ITEMS_BYTES)              \
    X(CODE, "code", T_INT, code, -9999, -1)                                \
    X(MSG, "msg", T_STR, msg, 0, PROTO_MAX_MSG_BYTES)                      \
    X(RE, "re", T_KIND, re, 0, 0)                                          \
    X(LEASE, "lease", T_SHA, lease, 0, 0)                                  \
    X(LOST, "lost", T_I64, lost, 0, INT64_MAX)                             \
    X(FAILURES, "failures", T_I64, failures, 0, INT64_MAX)                 \
    X(RELEASED, "released", T_I64, released, 0, INT64_MAX)                 \
    X(BLOCKED, "blocked", T_I64, blocked, 0, INT64_MAX)                    \
    X(CANCELLED, "cancelled", T_I64, cancelled, 0, INT64_MAX)              \
    X(AFTER, "after", T_I64, after, 0, INT64_MAX)                          \
    X(NEXT, "next", T_I64, next, 0, INT64_MAX)                             \
    X(NAME, "name", T_STR, name, 0, PROTO_MAX_NAME_BYTES)                  \
    X(STATE, "state", T_STR, state, 0, PROTO_MAX_STATE_BYTES)             \
    X(QUERY, "query", T_STR, query, 0, PROTO_MAX_QUERY_BYTES)              \
    X(STORE, "store", T_STR, store, 0, PROTO_MAX_STORE_BYTES)              \
    X(ID, "id", T_SHA, id, 0, 0)                                           \
    X(PRESENT, "present", T_BOOL, present, 0, 0)                           \
    X(BYTES, "bytes", T_I64, bytes, 0, PROTO_MAX_BLOB_BYTES)               \
    X(REASON, "reason", T_STR, reason, 0, PROTO_MAX_MSG_BYTES)             \
    X(LACKS, "lacks", T_STR, lacks, 0, PROTO_MAX_LACKS_BYTES)

enum {
#define F_ENUM(e, key, type, member, lo, hi) F_##e,
    X_FIELDS(F_ENUM)
#undef F_ENUM
    F_N
};
_Static_assert(F_N <= 64, "a kind's fields are bits of a uint64_t");

#define F_DEF(e, key, type, member, lo, hi) \
    [F_##e] = {key, type, offsetof(proto_msg, member), lo, hi},
static const field_def s_fields[F_N] = {X_FIELDS(F_DEF)};
#undef F_DEF

#define B(f) ((uint64_t)1 << F_##f)

typedef struct {
    const char *name;
    uint64_t req, opt; /* bit F_x: the kind carries field x */
} kind_def;

static const kind_def s_kinds[PROTO_KIND_COUNT] = {
    [PROTO_HELLO] = {"hello", B(WORKER) | B(THREADS), 0},
    [PROTO_WELCOME] = {"welcome", B(HEARTBEAT_MS), 0},
    [PROTO_READY] = {"ready", 0, B(MAX) | B(LACKS)},
    [PROTO_JOB] = {"job", B(JOB) | B(ATTEMPT) | B(SPEC) | B(LEASE),
                   B(GRID) | B(SHA256) | B(INIT) | B(MORE)},
    [PROTO_NO_JOB] = {"no_job", B(RETRY_MS), 0},
    [PROTO_HEARTBEAT] = {"heartbeat",
                         B(JOB) | B(ATTEMPT) | B(EPOCH) | B(STEP), B(LEASE)},
    [PROTO_ACK] = {"ack", 0, B(PRESENT)},
    [PROTO_CANCEL] = {"cancel", B(JOB) | B(ATTEMPT), 0},
    [PROTO_PROGRESS] = {"progress",
                        B(JOB) | B(ATTEMPT) | B(EPOCH) | B(LOSS) |
                            B(TEST_ACC) | B(IMAGES_PER_S) | B(ETA_S),
                        B(LEASE)},
    [PROTO_CKPT_PUT] = {"ckpt_put",
                        B(JOB) | B(ATTEMPT) | B(EPOCH) | B(OFFSET) |
                            B(TOTAL) | B(SHA256) | B(DATA),
                        B(LEASE)},
    [PROTO_RESULT] = {"result", B(JOB) | B(ATTEMPT) | B(OK),
                      B(RESULT) | B(ERROR) | B(SHA256) | B(LEASE)},
    [PROTO_RELEASE] = {"release", B(JOB) | B(ATTEMPT),
                       B(LEASE) | B(REASON) | B(LACKS)},
    [PROTO_CKPT_GET] = {"ckpt_get", B(SHA256) | B(OFFSET), 0},
    [PROTO_CKPT_CHUNK] = {"ckpt_chunk",
                          B(SHA256) | B(OFFSET) | B(TOTAL) | B(DATA), 0},
    [PROTO_BYE] = {"bye", 0, 0},
    [PROTO_SUBMIT] = {"submit", B(GRID) | B(SPEC) | B(FORCE),
                      B(FINGERPRINT)},
    [PROTO_SUBMITTED] = {"submitted", B(GRID_ID) | B(ADDED) | B(REUSED),
                         B(KEPT)},
    [PROTO_STATUS] = {"status", 0, B(GRID) | B(AFTER)},
    [PROTO_STATUS_REPLY] = {"status_reply",
                            B(QUEUED) | B(RUNNING) | B(DONE) | B(FAILED),
                            B(GRID) | B(ITEMS) | B(LOST) | B(FAILURES) |
                                B(RELEASED) | B(BLOCKED) | B(CANCELLED) |
                                B(NEXT)},
    [PROTO_RESULTS] = {"results", B(GRID), B(AFTER)},
    [PROTO_RESULTS_REPLY] = {"results_reply", B(ITEMS), B(NEXT)},
    [PROTO_CURVES] = {"curves", B(GRID), B(AFTER) | B(JOB)},
    [PROTO_CURVES_REPLY] = {"curves_reply", B(ITEMS), B(NEXT)},
    [PROTO_CANCEL_GRID] = {"cancel_grid", B(GRID), 0},
    [PROTO_RETRY] = {"retry", B(GRID), 0},
    [PROTO_CHANGED] = {"changed", B(COUNT), 0},
    [PROTO_WORKERS] = {"workers", 0, B(AFTER)},
    [PROTO_WORKERS_REPLY] = {"workers_reply", B(ITEMS), B(NEXT)},
    [PROTO_JOB_GET] = {"job_get", 0, B(JOB) | B(NAME) | B(GRID)},
    [PROTO_JOB_INFO] = {"job_info", B(JOB) | B(NAME) | B(GRID) | B(STATE),
                        B(SHA256) | B(EPOCH)},
    [PROTO_GRIDS] = {"grids", 0, B(AFTER)},
    [PROTO_GRIDS_REPLY] = {"grids_reply", B(ITEMS), B(NEXT)},
    [PROTO_JOBS] = {"jobs", B(GRID), B(QUERY)},
    [PROTO_JOBS_REPLY] = {"jobs_reply", B(ITEMS) | B(COUNT), 0},
    [PROTO_EVENTS] = {"events", 0, B(GRID) | B(JOB) | B(AFTER) | B(COUNT)},
    [PROTO_EVENTS_REPLY] = {"events_reply", B(ITEMS), 0},
    [PROTO_ATTEMPTS] = {"attempts", B(JOB), 0},
    [PROTO_ATTEMPTS_REPLY] = {"attempts_reply", B(ITEMS), 0},
    [PROTO_METRICS] = {"metrics", 0, 0},
    [PROTO_METRICS_REPLY] = {"metrics_reply", B(ITEMS), 0},
    [PROTO_BLOB_HAS] = {"blob_has", B(STORE) | B(ID), 0},
    [PROTO_BLOB_INFO] = {"blob_info", B(STORE) | B(ID) | B(PRESENT),
                         B(BYTES)},
    [PROTO_BLOB_PUT] = {"blob_put",
                        B(STORE) | B(ID) | B(OFFSET) | B(TOTAL) | B(DATA), 0},
    [PROTO_BLOB_GET] = {"blob_get", B(STORE) | B(ID) | B(OFFSET), 0},
    [PROTO_BLOB_CHUNK] = {"blob_chunk",
                          B(STORE) | B(ID) | B(OFFSET) | B(TOTAL) | B(DATA),
                          0},
    [PROTO_ERROR] = {"error", B(CODE) | B(MSG), B(RE)},
};

const char *proto_kind_name(proto_kind k)
{
    if (k <= PROTO_KIND_NONE || k >= PROTO_KIND_COUNT)
        return "?";
    return s_kinds[k].name;
}

proto_kind proto_kind_parse(const char *name, size_t len)
{
    for (int k = PROTO_KIND_NONE + 1; k < PROTO_KIND_COUNT; k++)
        if (strlen(s_kinds[k].name) == len &&
            memcmp(s_kinds[k].name, name, len) == 0)
            return (proto_kind)k;
    return PROTO_KIND_NONE;
}

void proto_msg_init(proto_msg *m, proto_kind kind)
{
    memset(m, 0, sizeof *m);
    m->version = PROTO_VERSION;
    m->kind = kind;
    m->re = PROTO_KIND_NONE;
}

void proto_unpacked_init(proto_unpacked *s)
{
    msgpack_unpacked_init(&s->up);
}

void proto_unpacked_release(proto_unpacked *s)
{
    msgpack_unpacked_destroy(&s->up);
}

/* ---- field access and checks, shared by encode and decode ---- */

#define AT(m, f, T) ((T *)(void *)((char *)(m) + s_fields[f].off))
#define AT_C(m, f, T) ((const T *)(const void *)((const char *)(m) + s_fields[f].off))

static bool s_is_hex(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static int s_check_int(int f, int64_t v, tfq_error *e)
{
    const field_def *d = &s_fields[f];
    if (v < d->min || v > d->max)
        return tfq_error_set(e, TFQ_ERANGE,
                             "field \"%s\" is %lld, must be in [%lld, %lld]",
                             d->key, (long long)v, (long long)d->min,
                             (long long)d->max);
    return 0;
}

static int s_check_double(int f, double v, tfq_error *e)
{
    const field_def *d = &s_fields[f];
    double lo = (double)d->min, hi = d->max < 0 ? HUGE_VAL : (double)d->max;
    if (v < lo || v > hi) /* false for NaN: "not measured" */
        return tfq_error_set(e, TFQ_ERANGE,
                             "field \"%s\" is %g, must be in [%g, %g]",
                             d->key, v, lo, hi);
    return 0;
}

static int s_check_len(int f, size_t len, tfq_error *e)
{
    const field_def *d = &s_fields[f];
    if (len > (uint64_t)d->max)
        return tfq_error_set(e, TFQ_ERANGE,
                             "field \"%s\" is %zu bytes, at most %lld allowed",
                             d->key, len, (long long)d->max);
    return 0;
}

/* Checks between fields, after each field is valid on its own. */
static int s_check_cross(const proto_msg *m, uint64_t fields, tfq_error *e)
{
    if ((fields & B(OFFSET)) && (fields & B(TOTAL))) {
        if (m->offset > m->total)
            return tfq_error_set(e, TFQ_ERANGE,
                                 "field \"offset\" is %lld, past \"total\" %lld",
                                 (long long)m->offset, (long long)m->total);
        if ((fields & B(DATA)) &&
            (int64_t)m->data_bytes > m->total - m->offset)
            return tfq_error_set(
                e, TFQ_ERANGE,
                "field \"data\": %zu bytes at offset %lld run past \"total\" %lld",
                m->data_bytes, (long long)m->offset, (long long)m->total);
    }
    /* job_get names its job one way: by id or by name. */
    if (m->kind == PROTO_JOB_GET &&
        !(fields & B(JOB)) == !(fields & B(NAME)))
        return tfq_error_set(e, TFQ_EFORMAT, "job_get: give \"job\" or "
                             "\"name\", not %s",
                             (fields & B(JOB)) ? "both" : "neither");
    return 0;
}

/* ---- encode ---- */

/* Whether optional field f is present in m. */
static bool s_present(const proto_msg *m, int f)
{
    switch (s_fields[f].type) {
    case T_STR:
        return *AT_C(m, f, char *) != NULL;
    case T_SHA:
        return *AT_C(m, f, char) != '\0';
    case T_KIND:
        return m->re != PROTO_KIND_NONE;
    case T_BOOL: /* an optional flag is sent only when set */
        return *AT_C(m, f, bool);
    case T_INT:
    case T_I64:
        /* 0 in a field whose range starts at 1 (an id): absent. */
        return s_fields[f].min < 1 ||
               (s_fields[f].type == T_INT ? *AT_C(m, f, int)
                                          : *AT_C(m, f, int64_t)) != 0;
    default:
        return true;
    }
}

static int s_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

/* Checks field f of m and packs it as key and value; returns 0, a
 * validation error or TFQ_ENOMEM. */
static int s_pack_field(msgpack_packer *pk, const proto_msg *m, int f,
                        tfq_error *e)
{
    const field_def *d = &s_fields[f];
    int rc = 0, bad = s_pack_str(pk, d->key, strlen(d->key));
    switch (d->type) {
    case T_INT:
        if ((rc = s_check_int(f, *AT_C(m, f, int), e)) == 0)
            bad |= msgpack_pack_int64(pk, *AT_C(m, f, int));
        break;
    case T_I64:
        if ((rc = s_check_int(f, *AT_C(m, f, int64_t), e)) == 0)
            bad |= msgpack_pack_int64(pk, *AT_C(m, f, int64_t));
        break;
    case T_DBL:
        if ((rc = s_check_double(f, *AT_C(m, f, double), e)) == 0)
            bad |= msgpack_pack_double(pk, *AT_C(m, f, double));
        break;
    case T_BOOL:
        bad |= *AT_C(m, f, bool) ? msgpack_pack_true(pk)
                                 : msgpack_pack_false(pk);
        break;
    case T_STR: {
        const char *s = *AT_C(m, f, char *);
        if (s == NULL)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "%s: required field \"%s\" is NULL",
                                 proto_kind_name(m->kind), d->key);
        size_t len = strnlen(s, (size_t)d->max + 1);
        if ((rc = s_check_len(f, len, e)) == 0)
            bad |= s_pack_str(pk, s, len);
        break;
    }
    case T_SHA: {
        const char *sha = AT_C(m, f, char);
        size_t len = strnlen(sha, sizeof m->sha256);
        if (!s_is_hex(sha, len))
            return tfq_error_set(e, TFQ_ERANGE,
                                 "field \"%s\" must be 64 lowercase hex "
                                 "digits", d->key);
        bad |= s_pack_str(pk, sha, len);
        break;
    }
    case T_BIN:
        if (m->data == NULL && m->data_bytes > 0)
            return tfq_error_set(e, TFQ_EINVAL, "field \"data\" is NULL");
        if ((rc = s_check_len(f, m->data_bytes, e)) == 0)
            bad |= msgpack_pack_bin(pk, m->data_bytes) |
                   msgpack_pack_bin_body(pk, m->data, m->data_bytes);
        break;
    case T_KIND: {
        const char *name = proto_kind_name(m->re);
        if (m->re <= PROTO_KIND_NONE || m->re >= PROTO_KIND_COUNT)
            return tfq_error_set(e, TFQ_ERANGE, "field \"re\" is not a kind");
        bad |= s_pack_str(pk, name, strlen(name));
        break;
    }
    }
    if (rc < 0)
        return rc;
    if (bad)
        return tfq_error_set(e, TFQ_ENOMEM, "encoding field \"%s\"", d->key);
    return 0;
}

static int popcount64(uint64_t x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

int proto_encode(const proto_msg *m, msgpack_sbuffer *out, tfq_error *e)
{
    if (m->kind <= PROTO_KIND_NONE || m->kind >= PROTO_KIND_COUNT)
        return tfq_error_set(e, TFQ_EINVAL, "encode: unknown kind %d",
                             (int)m->kind);
    const kind_def *k = &s_kinds[m->kind];
    uint64_t fields = k->req;
    for (int f = 0; f < F_N; f++)
        if ((k->opt & ((uint64_t)1 << f)) && s_present(m, f))
            fields |= (uint64_t)1 << f;
    int rc = s_check_cross(m, fields, e);
    if (rc < 0)
        return rc;

    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int bad = msgpack_pack_map(&pk, 2 + (size_t)popcount64(fields));
    bad |= s_pack_str(&pk, "v", 1) | msgpack_pack_uint32(&pk, PROTO_VERSION);
    bad |= s_pack_str(&pk, "k", 1) | s_pack_str(&pk, k->name, strlen(k->name));
    for (int f = 0; f < F_N && rc == 0 && !bad; f++)
        if (fields & ((uint64_t)1 << f))
            rc = s_pack_field(&pk, m, f, e);
    if (rc == 0 && bad)
        rc = tfq_error_set(e, TFQ_ENOMEM, "encoding %s", k->name);
    if (rc == 0 && out->size - start > PROTO_MAX_FRAME_BYTES)
        rc = tfq_error_set(e, TFQ_ERANGE,
                           "%s: encoded frame is %zu bytes, at most %u allowed",
                           k->name, out->size - start, PROTO_MAX_FRAME_BYTES);
    if (rc < 0) {
        out->size = start;
        return rc;
    }
    return 0;
}

int proto_error_reply(int code, const char *msg, proto_kind re,
                      msgpack_sbuffer *out)
{
    proto_msg m;
    proto_msg_init(&m, PROTO_ERROR);
    if (code < s_fields[F_CODE].min || code > s_fields[F_CODE].max)
        code = TFQ_EINVAL;
    m.code = code;
    if (msg == NULL)
        msg = tfq_strerror(code);
    char cut[PROTO_MAX_MSG_BYTES + 1];
    size_t len = strnlen(msg, PROTO_MAX_MSG_BYTES + 1);
    if (len > PROTO_MAX_MSG_BYTES) {
        len = PROTO_MAX_MSG_BYTES;
        /* Do not split a UTF-8 sequence. */
        while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(cut, msg, len);
    cut[len] = '\0';
    m.msg = cut;
    m.re = (re > PROTO_KIND_NONE && re < PROTO_KIND_COUNT) ? re
                                                          : PROTO_KIND_NONE;
    return proto_encode(&m, out, NULL);
}

/* ---- decode ---- */

/* Makes a printable, bounded copy of untrusted bytes for a message. */
static const char *s_printable(char *buf, size_t cap, const char *p,
                               size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap; i++)
        buf[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
    if (len > 0 && n + 4 >= cap && n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

typedef struct {
    const uint8_t *p;
    size_t n, pos;
    long objects;
} scan_state;

/* Walks one msgpack object at s->pos without allocating, so that
 * msgpack-c only ever sees well-formed input whose container counts are
 * backed by bytes and whose size is capped: a claimed count of 2^32
 * elements in a 5-byte header would otherwise make it allocate for them. */
static int s_scan(scan_state *s, int depth, tfq_error *e)
{
    if (depth > PROTO_MAX_DEPTH)
        return tfq_error_set(e, TFQ_ERANGE, "msgpack nesting deeper than %d",
                             PROTO_MAX_DEPTH);
    if (++s->objects > PROTO_MAX_OBJECTS)
        return tfq_error_set(e, TFQ_ERANGE, "more than %d msgpack objects",
                             PROTO_MAX_OBJECTS);
    if (s->pos >= s->n)
        return tfq_error_set(e, TFQ_EFORMAT, "truncated msgpack at byte %zu",
                             s->pos);
    uint8_t b = s->p[s->pos++];
    uint64_t len = 0, items = 0; /* payload bytes; child objects */
    int hdr = 0;                 /* length bytes following b */
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if (b >= 0x80 && b <= 0x8f)
        items = 2u * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f)
        items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf)
        len = b & 0x1f;
    else {
        switch (b) {
        case 0xc4: case 0xd9: hdr = 1; break;          /* bin8, str8 */
        case 0xc5: case 0xda: hdr = 2; break;          /* bin16, str16 */
        case 0xc6: case 0xdb: hdr = 4; break;          /* bin32, str32 */
        case 0xc7: hdr = 1; len = 1; break;            /* ext8: + type */
        case 0xc8: hdr = 2; len = 1; break;
        case 0xc9: hdr = 4; len = 1; break;
        case 0xca: len = 4; break;                     /* float32 */
        case 0xcb: len = 8; break;                     /* float64 */
        case 0xcc: case 0xd0: len = 1; break;          /* (u)int8 */
        case 0xcd: case 0xd1: len = 2; break;
        case 0xce: case 0xd2: len = 4; break;
        case 0xcf: case 0xd3: len = 8; break;
        case 0xd4: len = 2; break;                     /* fixext1 + type */
        case 0xd5: len = 3; break;
        case 0xd6: len = 5; break;
        case 0xd7: len = 9; break;
        case 0xd8: len = 17; break;
        case 0xdc: case 0xde: hdr = 2; break;          /* array16, map16 */
        case 0xdd: case 0xdf: hdr = 4; break;          /* array32, map32 */
        default:
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "invalid msgpack byte 0x%02x at byte %zu", b,
                                 s->pos - 1);
        }
    }
    if (hdr) {
        if (s->n - s->pos < (size_t)hdr)
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "truncated msgpack at byte %zu", s->pos);
        uint64_t v = s_be(s->p + s->pos, hdr);
        s->pos += (size_t)hdr;
        if (b >= 0xdc && b <= 0xdd)
            items = v;
        else if (b >= 0xde)
            items = 2 * v;
        else
            len += v;
    }
    if (len > s->n - s->pos)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "truncated msgpack: %llu bytes claimed at byte "
                             "%zu, %zu left",
                             (unsigned long long)len, s->pos, s->n - s->pos);
    s->pos += (size_t)len;
    /* Each child takes at least one byte. */
    if (items > s->n - s->pos)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "truncated msgpack: %llu objects claimed at byte "
                             "%zu, %zu bytes left",
                             (unsigned long long)items, s->pos, s->n - s->pos);
    if (items > PROTO_MAX_OBJECTS)
        return tfq_error_set(e, TFQ_ERANGE, "more than %d msgpack objects",
                             PROTO_MAX_OBJECTS);
    for (uint64_t i = 0; i < items; i++) {
        int rc = s_scan(s, depth + 1, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *s_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

static int s_wrong_type(proto_kind k, const char *key, const char *want,
                        msgpack_object_type got, tfq_error *e)
{
    return tfq_error_set(e, TFQ_EFORMAT,
                         "%s: field \"%s\" is %s, expected %s",
                         proto_kind_name(k), key, s_type_name(got), want);
}

/* An integer object as int64; TFQ_ERANGE if it does not fit. */
static int s_get_int(const msgpack_object *o, int f, int64_t *v, tfq_error *e)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    if (o->via.u64 > (uint64_t)INT64_MAX)
        return tfq_error_set(e, TFQ_ERANGE, "field \"%s\" is %llu, too large",
                             s_fields[f].key, (unsigned long long)o->via.u64);
    *v = (int64_t)o->via.u64;
    return 0;
}

/* Sets field f of m from o, checking its type and range. */
static int s_set_field(proto_msg *m, int f, const msgpack_object *o,
                       msgpack_zone *zone, tfq_error *e)
{
    const field_def *d = &s_fields[f];
    bool is_int = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                  o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    int64_t v = 0;
    int rc;
    switch (d->type) {
    case T_INT:
    case T_I64:
        if (!is_int)
            return s_wrong_type(m->kind, d->key, "int", o->type, e);
        if ((rc = s_get_int(o, f, &v, e)) < 0 ||
            (rc = s_check_int(f, v, e)) < 0)
            return rc;
        if (d->type == T_INT)
            *AT(m, f, int) = (int)v; /* ranges of T_INT fields fit an int */
        else
            *AT(m, f, int64_t) = v;
        return 0;
    case T_DBL: {
        double x;
        /* Integers are accepted: some encoders write 2.0 as 2. */
        if (o->type == MSGPACK_OBJECT_FLOAT32 ||
            o->type == MSGPACK_OBJECT_FLOAT64)
            x = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            x = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            x = (double)o->via.i64;
        else
            return s_wrong_type(m->kind, d->key, "float", o->type, e);
        if ((rc = s_check_double(f, x, e)) < 0)
            return rc;
        *AT(m, f, double) = x;
        return 0;
    }
    case T_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return s_wrong_type(m->kind, d->key, "bool", o->type, e);
        *AT(m, f, bool) = o->via.boolean;
        return 0;
    case T_STR: {
        if (o->type != MSGPACK_OBJECT_STR)
            return s_wrong_type(m->kind, d->key, "str", o->type, e);
        size_t len = o->via.str.size;
        if ((rc = s_check_len(f, len, e)) < 0)
            return rc;
        if (len > 0 && memchr(o->via.str.ptr, '\0', len) != NULL)
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "field \"%s\" contains a NUL byte", d->key);
        char *s = msgpack_zone_malloc(zone, len + 1);
        if (s == NULL)
            return tfq_error_set(e, TFQ_ENOMEM, "field \"%s\"", d->key);
        if (len > 0)
            memcpy(s, o->via.str.ptr, len);
        s[len] = '\0';
        *AT(m, f, const char *) = s;
        return 0;
    }
    case T_SHA:
        if (o->type != MSGPACK_OBJECT_STR)
            return s_wrong_type(m->kind, d->key, "str", o->type, e);
        if (!s_is_hex(o->via.str.ptr, o->via.str.size))
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "field \"%s\" must be 64 lowercase hex "
                                 "digits", d->key);
        memcpy(AT(m, f, char), o->via.str.ptr, 64);
        AT(m, f, char)[64] = '\0';
        return 0;
    case T_BIN:
        if (o->type != MSGPACK_OBJECT_BIN)
            return s_wrong_type(m->kind, d->key, "bin", o->type, e);
        if ((rc = s_check_len(f, o->via.bin.size, e)) < 0)
            return rc;
        m->data = (const uint8_t *)o->via.bin.ptr;
        m->data_bytes = o->via.bin.size;
        return 0;
    case T_KIND: {
        if (o->type != MSGPACK_OBJECT_STR)
            return s_wrong_type(m->kind, d->key, "str", o->type, e);
        proto_kind k = proto_kind_parse(o->via.str.ptr, o->via.str.size);
        if (k == PROTO_KIND_NONE) {
            char buf[80];
            return tfq_error_set(e, TFQ_EINVAL,
                                 "field \"re\": unknown kind \"%s\"",
                                 s_printable(buf, sizeof buf, o->via.str.ptr,
                                             o->via.str.size));
        }
        m->re = k;
        return 0;
    }
    }
    return tfq_error_set(e, TFQ_EFORMAT, "field \"%s\"", d->key);
}

static bool s_key_is(const msgpack_object *k, const char *name)
{
    size_t len = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
           memcmp(k->via.str.ptr, name, len) == 0;
}

/* Reads "v" and "k" from the top-level map. */
static int s_envelope(const msgpack_object_map *map, proto_msg *m,
                      tfq_error *e)
{
    const msgpack_object *v = NULL, *k = NULL;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *key = &map->ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "map key %u is %s, expected str", i,
                                 s_type_name(key->type));
        for (uint32_t j = 0; j < i; j++)
            if (map->ptr[j].key.via.str.size == key->via.str.size &&
                (key->via.str.size == 0 || /* "": ptr may be NULL */
                 memcmp(map->ptr[j].key.via.str.ptr, key->via.str.ptr,
                        key->via.str.size) == 0)) {
                char buf[80];
                return tfq_error_set(e, TFQ_EFORMAT, "duplicate key \"%s\"",
                                     s_printable(buf, sizeof buf,
                                                 key->via.str.ptr,
                                                 key->via.str.size));
            }
        if (s_key_is(key, "v"))
            v = &map->ptr[i].val;
        else if (s_key_is(key, "k"))
            k = &map->ptr[i].val;
    }
    if (v == NULL)
        return tfq_error_set(e, TFQ_EVERSION,
                             "no protocol version \"v\", expected %d",
                             PROTO_VERSION);
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return tfq_error_set(e, TFQ_EVERSION,
                             "protocol version \"v\" is %s, expected uint %d",
                             s_type_name(v->type), PROTO_VERSION);
    if (v->via.u64 != PROTO_VERSION)
        return tfq_error_set(e, TFQ_EVERSION,
                             "protocol version %llu, expected %d",
                             (unsigned long long)v->via.u64, PROTO_VERSION);
    m->version = PROTO_VERSION;
    if (k == NULL)
        return tfq_error_set(e, TFQ_EINVAL, "no message kind \"k\"");
    if (k->type != MSGPACK_OBJECT_STR)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "message kind \"k\" is %s, expected str",
                             s_type_name(k->type));
    m->kind = proto_kind_parse(k->via.str.ptr, k->via.str.size);
    if (m->kind == PROTO_KIND_NONE) {
        char buf[80];
        return tfq_error_set(e, TFQ_EINVAL, "unknown message kind \"%s\"",
                             s_printable(buf, sizeof buf, k->via.str.ptr,
                                         k->via.str.size));
    }
    return 0;
}

int proto_decode(const void *frame, size_t bytes, proto_msg *m,
                 proto_unpacked *storage, tfq_error *e)
{
    proto_msg_init(m, PROTO_KIND_NONE);
    m->version = 0;
    proto_unpacked_release(storage);
    proto_unpacked_init(storage);
    if (bytes > PROTO_MAX_FRAME_BYTES)
        return tfq_error_set(e, TFQ_ERANGE,
                             "frame is %zu bytes, at most %u allowed", bytes,
                             PROTO_MAX_FRAME_BYTES);
    if (frame == NULL && bytes > 0)
        return tfq_error_set(e, TFQ_EINVAL, "frame is NULL");

    scan_state s = {frame, bytes, 0, 0};
    int rc = s_scan(&s, 0, e);
    if (rc < 0)
        return tfq_error_wrap(e, rc, "not a message");
    if (s.pos != bytes)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%zu trailing bytes after the message",
                             bytes - s.pos);

    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack_next(&storage->up, frame, bytes, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return tfq_error_set(e, TFQ_ENOMEM, "unpacking a %zu-byte frame",
                             bytes);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != bytes)
        return tfq_error_set(e, TFQ_EFORMAT, "not a msgpack message");
    const msgpack_object *root = &storage->up.data;
    if (root->type != MSGPACK_OBJECT_MAP)
        return tfq_error_set(e, TFQ_EFORMAT, "message is %s, expected map",
                             s_type_name(root->type));
    const msgpack_object_map *map = &root->via.map;
    if ((rc = s_envelope(map, m, e)) < 0)
        return rc;

    const kind_def *k = &s_kinds[m->kind];
    uint64_t want = k->req | k->opt, seen = 0;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *key = &map->ptr[i].key;
        for (int f = 0; f < F_N; f++) {
            if (!(want & ((uint64_t)1 << f)) || !s_key_is(key, s_fields[f].key))
                continue;
            rc = s_set_field(m, f, &map->ptr[i].val, storage->up.zone, e);
            if (rc < 0)
                return rc;
            seen |= (uint64_t)1 << f;
            break;
        }
    }
    uint64_t missing = k->req & ~seen;
    for (int f = 0; f < F_N; f++)
        if (missing & ((uint64_t)1 << f))
            return tfq_error_set(e, TFQ_EFORMAT,
                                 "%s: missing required field \"%s\"", k->name,
                                 s_fields[f].key);
    return s_check_cross(m, seen, e);
}
