/* The wire protocol: roundtrips, validation of hostile frames, fuzzing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "common/proto.h"

/* The fields each kind carries, as PROTOCOL.md documents them: the test's
 * own copy of the spec, so that a change to proto.c's table shows here. */
#define KIND_MAX_FIELDS 12
static const char *const s_kind_fields[PROTO_KIND_COUNT][KIND_MAX_FIELDS] = {
    [PROTO_HELLO] = {"worker", "threads"},
    [PROTO_WELCOME] = {"heartbeat_ms"},
    [PROTO_READY] = {"max", "lacks"},
    [PROTO_JOB] = {"job", "attempt", "spec", "lease", "grid", "sha256",
                   "init", "more"},
    [PROTO_NO_JOB] = {"retry_ms"},
    [PROTO_HEARTBEAT] = {"job", "attempt", "lease", "epoch", "step"},
    [PROTO_ACK] = {"present"},
    [PROTO_CANCEL] = {"job", "attempt"},
    [PROTO_PROGRESS] = {"job", "attempt", "lease", "epoch", "loss",
                        "test_acc", "images_per_s", "eta_s"},
    [PROTO_CKPT_PUT] = {"job", "attempt", "lease", "epoch", "offset",
                        "total", "sha256", "data"},
    [PROTO_RESULT] = {"job", "attempt", "lease", "ok", "result", "error",
                      "sha256"},
    [PROTO_RELEASE] = {"job", "attempt", "lease", "reason", "lacks"},
    [PROTO_CKPT_GET] = {"sha256", "offset"},
    [PROTO_CKPT_CHUNK] = {"sha256", "offset", "total", "data"},
    [PROTO_BYE] = {0},
    [PROTO_SUBMIT] = {"grid", "spec", "force", "fingerprint"},
    [PROTO_SUBMITTED] = {"grid_id", "added", "reused", "kept"},
    [PROTO_STATUS] = {"grid", "after"},
    [PROTO_STATUS_REPLY] = {"queued", "running", "done", "failed", "grid",
                            "items", "lost", "failures", "released",
                            "blocked", "cancelled", "next"},
    [PROTO_RESULTS] = {"grid", "after"},
    [PROTO_RESULTS_REPLY] = {"items", "next"},
    [PROTO_CURVES] = {"grid", "after", "job"},
    [PROTO_CURVES_REPLY] = {"items", "next"},
    [PROTO_CANCEL_GRID] = {"grid"},
    [PROTO_RETRY] = {"grid"},
    [PROTO_CHANGED] = {"count"},
    [PROTO_WORKERS] = {"after"},
    [PROTO_WORKERS_REPLY] = {"items", "next"},
    [PROTO_JOB_GET] = {"job", "name", "grid"},
    [PROTO_JOB_INFO] = {"job", "name", "grid", "state", "sha256", "epoch"},
    [PROTO_GRIDS] = {"after"},
    [PROTO_GRIDS_REPLY] = {"items", "next"},
    [PROTO_JOBS] = {"grid", "query"},
    [PROTO_JOBS_REPLY] = {"items", "count"},
    [PROTO_EVENTS] = {"grid", "job", "after", "count"},
    [PROTO_EVENTS_REPLY] = {"items"},
    [PROTO_ATTEMPTS] = {"job"},
    [PROTO_ATTEMPTS_REPLY] = {"items"},
    [PROTO_METRICS] = {0},
    [PROTO_METRICS_REPLY] = {"items"},
    [PROTO_BLOB_HAS] = {"store", "id"},
    [PROTO_BLOB_INFO] = {"store", "id", "present", "bytes"},
    [PROTO_BLOB_PUT] = {"store", "id", "offset", "total", "data"},
    [PROTO_BLOB_GET] = {"store", "id", "offset"},
    [PROTO_BLOB_CHUNK] = {"store", "id", "offset", "total", "data"},
    [PROTO_ERROR] = {"code", "msg", "re"},
};

static bool kind_has(proto_kind k, const char *key)
{
    for (int i = 0; i < KIND_MAX_FIELDS && s_kind_fields[k][i]; i++)
        if (strcmp(s_kind_fields[k][i], key) == 0)
            return true;
    return false;
}

static uint8_t s_data[1000];

/* A message of kind k with every field of proto_msg set. */
static void sample(proto_msg *m, proto_kind k)
{
    proto_msg_init(m, k);
    for (size_t i = 0; i < sizeof s_data; i++)
        s_data[i] = (uint8_t)(i * 7 + 3);
    m->worker = "worker-1";
    m->threads = 4;
    m->heartbeat_ms = 1000;
    m->retry_ms = 500;
    m->max = 64;
    m->more = 5;
    m->job = 42;
    m->attempt = 3;
    m->epoch = 7;
    m->step = 123456789012LL;
    m->spec = "conv 96 11 4 relu\npool 3 2\nfc 10";
    m->loss = 0.381;
    m->test_acc = 0.8832;
    m->images_per_s = 2122.5;
    m->eta_s = 199.25;
    m->ok = true;
    m->result = "{\"test_acc\": 0.88}";
    m->error = "diverged";
    for (int i = 0; i < 64; i++)
        m->sha256[i] = "0123456789abcdef"[(i * 5) % 16];
    m->sha256[64] = '\0';
    for (int i = 0; i < 64; i++)
        m->init[i] = "0123456789abcdef"[(i * 7) % 16];
    m->init[64] = '\0';
    for (int i = 0; i < 64; i++)
        m->lease[i] = "0123456789abcdef"[(i * 11) % 16];
    m->lease[64] = '\0';
    m->offset = 1000;
    m->total = 5000;
    m->data = s_data;
    m->data_bytes = sizeof s_data;
    m->grid = "yosinski";
    m->force = true;
    m->grid_id = 9;
    m->added = 5;
    m->reused = 2;
    m->kept = 7;
    for (int i = 0; i < 64; i++)
        m->fingerprint[i] = "0123456789abcdef"[(i * 3) % 16];
    m->fingerprint[64] = '\0';
    m->queued = 1;
    m->running = 2;
    m->done = 3;
    m->failed = 4;
    m->count = 6;
    m->lost = 8;
    m->failures = 10;
    m->released = 13;
    m->blocked = 11;
    m->cancelled = 12;
    m->items = "[{\"job\": 1}]";
    m->code = TFQ_ECHECKSUM;
    m->msg = "checksum mismatch";
    m->re = PROTO_CKPT_PUT;
    m->after = 4500;
    m->next = 9001;
    /* A job_get names its job one way: here by id (by name in
     * job_get_one_way). */
    m->name = k == PROTO_JOB_GET ? NULL : "random0/1/A3B+";
    m->state = "succeeded";
    m->query = "{\"state\": \"running\", \"sort\": \"n\", \"desc\": true}";
    m->store = "data";
    for (int i = 0; i < 64; i++)
        m->id[i] = "0123456789abcdef"[(i * 13) % 16];
    m->id[64] = '\0';
    m->present = true;
    m->bytes = 54880064;
    m->reason = "no such blob on the coordinator";
    m->lacks = "3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a3f2a";
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Compares field key of a (the original) with b (decoded). */
static bool field_eq(const proto_msg *a, const proto_msg *b, const char *key)
{
#define INT_F(name) if (strcmp(key, #name) == 0) return a->name == b->name;
#define STR_F(name) if (strcmp(key, #name) == 0) return str_eq(a->name, b->name);
    INT_F(threads) INT_F(heartbeat_ms) INT_F(retry_ms) INT_F(max)
    INT_F(more) INT_F(job)
    INT_F(attempt) INT_F(epoch) INT_F(step) INT_F(loss) INT_F(test_acc)
    INT_F(images_per_s) INT_F(eta_s) INT_F(ok) INT_F(offset) INT_F(total)
    INT_F(force) INT_F(grid_id) INT_F(added) INT_F(reused) INT_F(kept) INT_F(queued)
    INT_F(running) INT_F(done) INT_F(failed) INT_F(count) INT_F(code)
    INT_F(re) INT_F(lost) INT_F(failures) INT_F(released) INT_F(after)
    INT_F(next)
    INT_F(blocked) INT_F(cancelled) INT_F(present) INT_F(bytes)
    STR_F(worker) STR_F(spec) STR_F(result) STR_F(error) STR_F(grid)
    STR_F(items) STR_F(msg) STR_F(sha256) STR_F(init) STR_F(fingerprint)
    STR_F(lease) STR_F(name) STR_F(state) STR_F(query) STR_F(store)
    STR_F(id) STR_F(reason) STR_F(lacks)
#undef INT_F
#undef STR_F
    if (strcmp(key, "data") == 0)
        return a->data_bytes == b->data_bytes &&
               (a->data_bytes == 0 ||
                memcmp(a->data, b->data, a->data_bytes) == 0);
    return false;
}

static const char *const s_all_keys[] = {
    "worker", "threads", "heartbeat_ms", "retry_ms", "max", "more", "job",
    "attempt",
    "epoch", "step", "spec", "loss", "test_acc", "images_per_s", "eta_s",
    "ok", "result", "error", "sha256", "init", "offset", "total", "data",
    "grid",
    "force", "grid_id", "added", "reused", "kept", "fingerprint", "queued", "running", "done",
    "failed", "count", "items", "code", "msg", "re", "lease", "lost", "failures",
    "released", "blocked", "cancelled",
    "after", "next", "name", "state", "query", "store", "id", "present",
    "bytes", "reason", "lacks"};
#define N_KEYS (sizeof s_all_keys / sizeof s_all_keys[0])

static int test_roundtrip_all_kinds(void)
{
    proto_unpacked st;
    proto_unpacked_init(&st);
    for (int k = PROTO_KIND_NONE + 1; k < PROTO_KIND_COUNT; k++) {
        const char *name = proto_kind_name((proto_kind)k);
        CHECK_EQ_INT(proto_kind_parse(name, strlen(name)), k);
        proto_msg m, d, empty;
        sample(&m, (proto_kind)k);
        proto_msg_init(&empty, (proto_kind)k);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        tfq_error e = {0};
        int rc = proto_encode(&m, &sb, &e);
        CHECK_MSG(rc == 0, "%s: encode: %s", name, e.msg);
        rc = proto_decode(sb.data, sb.size, &d, &st, &e);
        CHECK_MSG(rc == 0, "%s: decode: %s", name, e.msg);
        CHECK_EQ_INT(d.version, PROTO_VERSION);
        CHECK_EQ_INT(d.kind, k);
        int nfields = 0;
        for (size_t i = 0; i < N_KEYS; i++) {
            const char *key = s_all_keys[i];
            if (kind_has((proto_kind)k, key) &&
                !(k == PROTO_JOB_GET && strcmp(key, "name") == 0)) {
                nfields++;
                CHECK_MSG(field_eq(&m, &d, key), "%s: field %s differs", name,
                          key);
            } else {
                CHECK_MSG(field_eq(&empty, &d, key),
                          "%s: field %s should be absent", name, key);
            }
        }
        /* Exactly v, k and the kind's fields are on the wire. */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL) ==
              MSGPACK_UNPACK_SUCCESS);
        CHECK_EQ_INT(up.data.via.map.size, 2 + nfields);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
    }
    /* Optional fields may be left out. */
    proto_msg m, d;
    proto_msg_init(&m, PROTO_RESULT);
    m.job = 1;
    m.attempt = 1;
    memset(m.lease, 'a', 64);
    m.ok = false;
    m.error = "out of memory";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ_INT(proto_encode(&m, &sb, NULL), 0);
    CHECK_EQ_INT(proto_decode(sb.data, sb.size, &d, &st, NULL), 0);
    CHECK(d.result == NULL && d.sha256[0] == '\0' && !d.ok);
    CHECK(str_eq(d.error, "out of memory"));
    msgpack_sbuffer_destroy(&sb);
    proto_unpacked_release(&st);
    return 0;
}

/* ---- raw maps for hostile input ---- */

/* Packs one value described by spec: "i:N" int, "u:N" uint, "d:X" double,
 * "s:TEXT" str, "b:1"/"b:0" bool, "x:N" N bytes of bin, "n" nil,
 * "a" an array [1, {"a": 2}]. */
static void pack_value(msgpack_packer *pk, const char *spec)
{
    const char *arg = spec + 2;
    switch (spec[0]) {
    case 'i': msgpack_pack_int64(pk, strtoll(arg, NULL, 10)); break;
    case 'u': msgpack_pack_uint64(pk, strtoull(arg, NULL, 10)); break;
    case 'd': msgpack_pack_double(pk, strtod(arg, NULL)); break;
    case 's':
        msgpack_pack_str(pk, strlen(arg));
        msgpack_pack_str_body(pk, arg, strlen(arg));
        break;
    case 'b':
        if (arg[0] == '1')
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case 'x': {
        size_t n = (size_t)strtoull(arg, NULL, 10);
        char *buf = calloc(n ? n : 1, 1);
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, buf, n);
        free(buf);
        break;
    }
    case 'a':
        msgpack_pack_array(pk, 2);
        msgpack_pack_int(pk, 1);
        msgpack_pack_map(pk, 1);
        msgpack_pack_str(pk, 1);
        msgpack_pack_str_body(pk, "a", 1);
        msgpack_pack_int(pk, 2);
        break;
    default: msgpack_pack_nil(pk); break;
    }
}

/* Packs a map of n (key, value spec) pairs into sb (cleared first). */
static void pack_map(msgpack_sbuffer *sb, const char *const *kv, int n)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        const char *key = kv[2 * i];
        msgpack_pack_str(&pk, strlen(key));
        msgpack_pack_str_body(&pk, key, strlen(key));
        pack_value(&pk, kv[2 * i + 1]);
    }
}

/* Decodes a raw map; returns the code and leaves the message in e. */
static int decode_map(const char *const *kv, int n, proto_msg *m,
                      tfq_error *e)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_map(&sb, kv, n);
    proto_unpacked st;
    proto_unpacked_init(&st);
    tfq_error_clear(e);
    int rc = proto_decode(sb.data, sb.size, m, &st, e);
    /* m's strings are not looked at after this. */
    proto_unpacked_release(&st);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

#define SHA "s:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int test_unknown_keys_ignored(void)
{
    const char *kv[] = {"zz", "a", "v", "u:1", "k", "s:heartbeat",
                        "job", "i:5", "future", "s:x", "attempt", "i:1",
                        "epoch", "i:0", "step", "i:9", "grid", "i:3",
                        "nothing", "n", "lease", SHA};
    proto_msg m;
    tfq_error e;
    int rc = decode_map(kv, 11, &m, &e);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_EQ_INT(m.kind, PROTO_HEARTBEAT);
    CHECK_EQ_INT(m.job, 5);
    CHECK_EQ_INT(m.step, 9);
    CHECK(m.grid == NULL); /* a field of another kind is ignored too */
    return 0;
}

/* The paging fields: absent reads as 0 (an old client asks for the first
 * page), out of range or of the wrong type is refused naming the field,
 * and a reply whose items are at their limit still fits a frame. */
static int test_paging_fields(void)
{
    proto_msg m;
    tfq_error e;
    const char *old[] = {"v", "u:1", "k", "s:status"};
    CHECK_EQ_INT(decode_map(old, 2, &m, &e), 0);
    CHECK_EQ_INT(m.after, 0);
    const char *neg[] = {"v", "u:1", "k", "s:results", "grid", "s:g",
                         "after", "i:-1"};
    CHECK_EQ_INT(decode_map(neg, 4, &m, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "after"), "%s", e.msg);
    const char *str[] = {"v", "u:1", "k", "s:workers_reply", "items", "s:[]",
                         "next", "s:7"};
    CHECK_EQ_INT(decode_map(str, 4, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "next"), "%s", e.msg);

    char *items = malloc(PROTO_MAX_ITEMS_BYTES + 1);
    char grid[PROTO_MAX_NAME_BYTES + 1];
    CHECK(items != NULL);
    memset(items, 'x', PROTO_MAX_ITEMS_BYTES);
    items[PROTO_MAX_ITEMS_BYTES] = '\0';
    memset(grid, 'g', PROTO_MAX_NAME_BYTES);
    grid[PROTO_MAX_NAME_BYTES] = '\0';
    proto_msg_init(&m, PROTO_STATUS_REPLY);
    m.queued = m.running = m.done = m.failed = m.next = INT64_MAX;
    m.grid = grid;
    m.items = items;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = proto_encode(&m, &sb, &e);
    free(items);
    msgpack_sbuffer_destroy(&sb);
    CHECK_MSG(rc == 0, "a status_reply with %u bytes of items: %s",
              PROTO_MAX_ITEMS_BYTES, e.msg);
    return 0;
}

/* The dashboard's reads: a jobs request needs its grid, a query string over
 * PROTO_MAX_QUERY_BYTES or not a string is refused naming "query", the
 * optional fields of events and curves read as 0 when absent, and an
 * attempts request needs its job. */
static int test_dashboard_fields(void)
{
    proto_msg m;
    tfq_error e;
    const char *nogrid[] = {"v", "u:1", "k", "s:jobs", "query", "s:{}"};
    CHECK_EQ_INT(decode_map(nogrid, 3, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "\"grid\""), "%s", e.msg);
    const char *num[] = {"v", "u:1", "k", "s:jobs", "grid", "s:g",
                         "query", "i:3"};
    CHECK_EQ_INT(decode_map(num, 4, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "\"query\""), "%s", e.msg);
    char q[PROTO_MAX_QUERY_BYTES + 4] = "s:";
    memset(q + 2, ' ', PROTO_MAX_QUERY_BYTES + 1);
    q[PROTO_MAX_QUERY_BYTES + 3] = '\0';
    const char *big[] = {"v", "u:1", "k", "s:jobs", "grid", "s:g",
                         "query", q};
    CHECK_EQ_INT(decode_map(big, 4, &m, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "\"query\""), "%s", e.msg);
    const char *events[] = {"v", "u:1", "k", "s:events"};
    CHECK_EQ_INT(decode_map(events, 2, &m, &e), 0);
    CHECK(m.grid == NULL && m.job == 0 && m.after == 0 && m.count == 0);
    const char *curves[] = {"v", "u:1", "k", "s:curves", "grid", "s:g"};
    CHECK_EQ_INT(decode_map(curves, 3, &m, &e), 0);
    CHECK_EQ_INT(m.job, 0);
    const char *attempts[] = {"v", "u:1", "k", "s:attempts"};
    CHECK_EQ_INT(decode_map(attempts, 2, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "\"job\""), "%s", e.msg);
    const char *count[] = {"v", "u:1", "k", "s:jobs_reply", "items", "s:[]"};
    CHECK_EQ_INT(decode_map(count, 3, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "\"count\""), "%s", e.msg);
    return 0;
}

/* A job_get names its job by id or by name, never both or neither; an id
 * of 0 is no id. */
static int test_job_get_one_way(void)
{
    proto_msg m, d;
    proto_unpacked st;
    proto_unpacked_init(&st);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    tfq_error e;
    proto_msg_init(&m, PROTO_JOB_GET);
    m.name = "random0/1/A3B+";
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), 0);
    CHECK_EQ_INT(proto_decode(sb.data, sb.size, &d, &st, &e), 0);
    CHECK(str_eq(d.name, "random0/1/A3B+") && d.job == 0 && d.grid == NULL);
    sb.size = 0;
    m.job = 7; /* both */
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "both"), "%s", e.msg);
    m.job = 0;
    m.name = NULL; /* neither */
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "neither"), "%s", e.msg);
    CHECK_EQ_INT(sb.size, 0);
    const char *both[] = {"v", "u:1", "k", "s:job_get", "job", "i:3",
                          "name", "s:a"};
    CHECK_EQ_INT(decode_map(both, 4, &d, &e), TFQ_EFORMAT);
    const char *neither[] = {"v", "u:1", "k", "s:job_get", "grid", "s:g"};
    CHECK_EQ_INT(decode_map(neither, 3, &d, &e), TFQ_EFORMAT);
    const char *zero[] = {"v", "u:1", "k", "s:job_get", "job", "i:0"};
    CHECK_EQ_INT(decode_map(zero, 3, &d, &e), TFQ_ERANGE);
    msgpack_sbuffer_destroy(&sb);
    proto_unpacked_release(&st);
    return 0;
}

/* Keys compared for duplicates, the empty key included (msgpack gives an
 * empty string a NULL pointer: memcmp must not see it). */
static int test_duplicate_keys(void)
{
    proto_msg m;
    tfq_error e;
    const char *empty[] = {"", "n", "v", "u:1", "k", "s:status"};
    CHECK_MSG(decode_map(empty, 3, &m, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(m.kind, PROTO_STATUS);
    const char *twice[] = {"", "n", "", "n", "v", "u:1", "k", "s:status"};
    CHECK_EQ_INT(decode_map(twice, 4, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "duplicate key") != NULL, "%s", e.msg);
    const char *grid[] = {"v", "u:1", "k", "s:status", "grid", "s:a",
                          "grid", "s:b"};
    CHECK_EQ_INT(decode_map(grid, 4, &m, &e), TFQ_EFORMAT);
    CHECK_MSG(strstr(e.msg, "duplicate key \"grid\"") != NULL, "%s", e.msg);
    const char *no_kind[] = {"v", "u:1", "k", "s:"};
    CHECK_EQ_INT(decode_map(no_kind, 2, &m, &e), TFQ_EINVAL);
    return 0;
}

static int test_wrong_version(void)
{
    proto_msg m;
    tfq_error e;
    const char *v2[] = {"v", "u:2", "k", "s:ready"};
    CHECK_EQ_INT(decode_map(v2, 2, &m, &e), TFQ_EVERSION);
    CHECK_MSG(strstr(e.msg, "2") && strstr(e.msg, "1"), "%s", e.msg);
    const char *none[] = {"k", "s:ready"};
    CHECK_EQ_INT(decode_map(none, 1, &m, &e), TFQ_EVERSION);
    CHECK_MSG(strstr(e.msg, "v") && strstr(e.msg, "1"), "%s", e.msg);
    const char *str[] = {"v", "s:1", "k", "s:ready"};
    CHECK_EQ_INT(decode_map(str, 2, &m, &e), TFQ_EVERSION);
    CHECK_MSG(strstr(e.msg, "str") && strstr(e.msg, "1"), "%s", e.msg);
    const char *ok[] = {"v", "u:1", "k", "s:ready"};
    CHECK_EQ_INT(decode_map(ok, 2, &m, &e), 0);
    return 0;
}

static int test_unknown_kind(void)
{
    proto_msg m;
    tfq_error e;
    const char *kv[] = {"v", "u:1", "k", "s:frobnicate"};
    CHECK_EQ_INT(decode_map(kv, 2, &m, &e), TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "frobnicate"), "%s", e.msg);
    const char *none[] = {"v", "u:1"};
    CHECK_EQ_INT(decode_map(none, 1, &m, &e), TFQ_EINVAL);
    const char *num[] = {"v", "u:1", "k", "i:3"};
    CHECK_EQ_INT(decode_map(num, 2, &m, &e), TFQ_EFORMAT);
    const char *re[] = {"v", "u:1", "k", "s:error", "code", "i:-4",
                        "msg", "s:x", "re", "s:nope"};
    CHECK_EQ_INT(decode_map(re, 5, &m, &e), TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "nope"), "%s", e.msg);
    CHECK_EQ_INT(proto_kind_parse("nope", 4), PROTO_KIND_NONE);
    CHECK(strcmp(proto_kind_name(PROTO_KIND_COUNT), "?") == 0);
    return 0;
}

/* Each field of a ckpt_put, a progress and a result given a value of the
 * wrong type. */
static int test_wrong_types(void)
{
    static const char *const good[][2] = {
        {"job", "i:1"}, {"attempt", "i:1"}, {"epoch", "i:2"},
        {"offset", "i:0"}, {"total", "i:10"}, {"sha256", SHA},
        {"data", "x:10"}, {"loss", "d:0.5"}, {"test_acc", "d:0.5"},
        {"images_per_s", "d:10"}, {"eta_s", "i:3"}, {"ok", "b:1"},
        {"result", "s:{}"}, {"lease", SHA}};
    static const char *const bad[][2] = {
        {"job", "s:1"}, {"attempt", "d:1"}, {"epoch", "b:1"},
        {"offset", "n"}, {"total", "s:10"}, {"sha256", "x:64"},
        {"data", "s:0123456789"}, {"loss", "s:0.5"}, {"test_acc", "b:0"},
        {"images_per_s", "a"}, {"eta_s", "n"}, {"ok", "i:1"},
        {"result", "a"}, {"lease", "i:5"}};
    static const char *const kinds[] = {"ckpt_put", "progress", "result"};
    for (size_t ki = 0; ki < 3; ki++) {
        proto_kind k = proto_kind_parse(kinds[ki], strlen(kinds[ki]));
        for (size_t bi = 0; bi < sizeof bad / sizeof bad[0]; bi++) {
            if (!kind_has(k, bad[bi][0]))
                continue;
            char kspec[32];
            snprintf(kspec, sizeof kspec, "s:%s", kinds[ki]);
            const char *kv[40];
            int n = 0;
            kv[n++] = "v", kv[n++] = "u:1", kv[n++] = "k", kv[n++] = kspec;
            for (size_t gi = 0; gi < sizeof good / sizeof good[0]; gi++) {
                if (!kind_has(k, good[gi][0]))
                    continue;
                kv[n++] = good[gi][0];
                kv[n++] = gi == bi ? bad[bi][1] : good[gi][1];
            }
            proto_msg m;
            tfq_error e;
            int rc = decode_map(kv, n / 2, &m, &e);
            CHECK_MSG(rc == TFQ_EFORMAT, "%s.%s: rc %d", kinds[ki],
                      bad[bi][0], rc);
            CHECK_MSG(strstr(e.msg, bad[bi][0]) != NULL, "%s.%s: %s",
                      kinds[ki], bad[bi][0], e.msg);
        }
        /* And all good values decode. */
        const char *kv[40];
        char kspec[32];
        snprintf(kspec, sizeof kspec, "s:%s", kinds[ki]);
        int n = 0;
        kv[n++] = "v", kv[n++] = "u:1", kv[n++] = "k", kv[n++] = kspec;
        for (size_t gi = 0; gi < sizeof good / sizeof good[0]; gi++)
            if (kind_has(k, good[gi][0])) {
                kv[n++] = good[gi][0];
                kv[n++] = good[gi][1];
            }
        proto_msg m;
        tfq_error e;
        CHECK_MSG(decode_map(kv, n / 2, &m, &e) == 0, "%s: %s", kinds[ki],
                  e.msg);
    }
    return 0;
}

static int test_missing_required(void)
{
    static const char *const fields[][2] = {
        {"job", "i:1"}, {"attempt", "i:1"}, {"epoch", "i:2"}, {"step", "i:5"}};
    for (int drop = 0; drop < 4; drop++) {
        const char *kv[12] = {"v", "u:1", "k", "s:heartbeat"};
        int n = 4;
        for (int i = 0; i < 4; i++)
            if (i != drop) {
                kv[n++] = fields[i][0];
                kv[n++] = fields[i][1];
            }
        proto_msg m;
        tfq_error e;
        CHECK_EQ_INT(decode_map(kv, n / 2, &m, &e), TFQ_EFORMAT);
        CHECK_MSG(strstr(e.msg, fields[drop][0]) && strstr(e.msg, "missing"),
                  "%s", e.msg);
    }
    /* Encoding refuses a NULL required string. */
    proto_msg m;
    proto_msg_init(&m, PROTO_HELLO);
    m.threads = 1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    tfq_error e;
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "worker"), "%s", e.msg);
    CHECK_EQ_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static int test_oversized(void)
{
    /* 5 MiB of which only the first page may be read: a decoder that looks
     * further faults. */
    size_t bytes = 5u << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    CHECK(p != MAP_FAILED);
    CHECK(mprotect(p, page, PROT_READ | PROT_WRITE) == 0);
    p[0] = 0x82; /* a map header, then nothing the decoder may see */
    proto_msg m;
    proto_unpacked st;
    proto_unpacked_init(&st);
    tfq_error e;
    CHECK_EQ_INT(proto_decode(p, bytes, &m, &st, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "bytes"), "%s", e.msg);
    CHECK_EQ_INT(proto_decode(p, PROTO_MAX_FRAME_BYTES + 1, &m, &st, &e),
                 TFQ_ERANGE);
    munmap(p, bytes);

    /* A message right at the limit is fine if its fields are. */
    const char *kv[] = {"v", "u:1", "k", "s:ready", "pad", "x:4194000"};
    CHECK_EQ_INT(decode_map(kv, 3, &m, &e), 0);
    const char *kv2[] = {"v", "u:1", "k", "s:ready", "pad", "x:4194304"};
    CHECK_EQ_INT(decode_map(kv2, 3, &m, &e), TFQ_ERANGE);
    proto_unpacked_release(&st);
    return 0;
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/* Decodes bytes; the result must be OK or a negative code with a message. */
static int fuzz_one(const uint8_t *buf, size_t n, proto_unpacked *st,
                    int *nok)
{
    proto_msg m;
    tfq_error e;
    tfq_error_clear(&e);
    int rc = proto_decode(buf, n, &m, st, &e);
    if (rc == 0) {
        (*nok)++;
        /* Touch every string so the sanitizer checks the pointers. */
        size_t sum = 0;
        const char *strs[] = {m.worker, m.spec, m.result, m.error,
                              m.grid, m.items, m.msg};
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
            if (strs[i])
                sum += strlen(strs[i]);
        for (size_t i = 0; i < m.data_bytes; i++)
            sum += m.data[i];
        return sum == (size_t)-1;
    }
    return !(rc < 0 && e.msg[0] != '\0' && e.code == rc);
}

static int test_garbage_fuzz(void)
{
    proto_unpacked st;
    proto_unpacked_init(&st);
    uint8_t buf[4096];
    int nok = 0;

    /* Hostile headers: claimed counts and lengths with nothing behind. */
    static const uint8_t hostile[][8] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdf, 0xff, 0xff, 0xff, 0xff},
        {0xdb, 0xff, 0xff, 0xff, 0xff}, {0xc6, 0xff, 0xff, 0xff, 0xff},
        {0xc9, 0xff, 0xff, 0xff, 0xff}, {0x81, 0xdd, 0x7f, 0xff, 0xff, 0xff},
        {0xc1}, {0x81, 0xa1, 'v'}, {0x00, 0x00}};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        CHECK_MSG(fuzz_one(hostile[i], 6, &st, &nok) == 0, "hostile %zu", i);
    /* Deep nesting. */
    memset(buf, 0x91, sizeof buf);
    buf[sizeof buf - 1] = 0x00;
    CHECK(fuzz_one(buf, sizeof buf, &st, &nok) == 0);
    CHECK_EQ_INT(nok, 0);

    for (int i = 0; i < 20000; i++) {
        size_t n = rnd() % 64;
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)rnd();
        if (n > 0 && i % 2)
            buf[0] = (uint8_t)(0x80 | (rnd() % 16)); /* start as a map */
        CHECK_MSG(fuzz_one(buf, n, &st, &nok) == 0, "random %d", i);
    }

    /* Valid messages of every kind, with one byte changed or cut short. */
    msgpack_sbuffer enc[PROTO_KIND_COUNT];
    for (int k = PROTO_KIND_NONE + 1; k < PROTO_KIND_COUNT; k++) {
        proto_msg m;
        sample(&m, (proto_kind)k);
        m.data_bytes = 40; /* keep messages short so mutations hit fields */
        msgpack_sbuffer_init(&enc[k]);
        CHECK(proto_encode(&m, &enc[k], NULL) == 0);
    }
    int nvalid = nok;
    for (int i = 0; i < 20000; i++) {
        int k = 1 + (int)(rnd() % (PROTO_KIND_COUNT - 1));
        size_t n = enc[k].size;
        memcpy(buf, enc[k].data, n);
        switch (rnd() % 4) {
        case 0: buf[rnd() % n] = (uint8_t)rnd(); break;
        case 1: buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
        case 2: buf[rnd() % n] += (rnd() % 2) ? 1 : 0xff; break;
        default: n = rnd() % n; break;
        }
        CHECK_MSG(fuzz_one(buf, n, &st, &nok) == 0, "mutation %d", i);
    }
    for (int k = PROTO_KIND_NONE + 1; k < PROTO_KIND_COUNT; k++)
        msgpack_sbuffer_destroy(&enc[k]);
    /* Some mutations (a changed digit) stay valid; most must not. */
    CHECK(nok - nvalid > 100 && nok - nvalid < 15000);
    proto_unpacked_release(&st);
    return 0;
}

static int test_chunk_limits(void)
{
    proto_unpacked st;
    proto_unpacked_init(&st);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint8_t *big = calloc(PROTO_MAX_CHUNK_BYTES + 1, 1);
    CHECK(big != NULL);
    proto_msg m, d;
    tfq_error e;

    /* A full 1 MiB chunk goes through. */
    sample(&m, PROTO_CKPT_PUT);
    m.data = big;
    m.data_bytes = PROTO_MAX_CHUNK_BYTES;
    m.offset = 0;
    m.total = 3 * (int64_t)PROTO_MAX_CHUNK_BYTES;
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), 0);
    CHECK_EQ_INT(proto_decode(sb.data, sb.size, &d, &st, &e), 0);
    CHECK_EQ_INT(d.data_bytes, PROTO_MAX_CHUNK_BYTES);

    /* One byte more is refused by encode and by decode. */
    m.data_bytes = PROTO_MAX_CHUNK_BYTES + 1;
    msgpack_sbuffer_clear(&sb);
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "data"), "%s", e.msg);
    CHECK_EQ_INT(sb.size, 0);
    char total[32];
    snprintf(total, sizeof total, "i:%lld", 3LL * PROTO_MAX_CHUNK_BYTES);
    const char *kv[] = {"v", "u:1", "k", "s:ckpt_put", "job", "i:1",
                        "attempt", "i:1", "epoch", "i:1", "offset", "i:0",
                        "total", total, "sha256", SHA, "data", "x:1048577",
                        "lease", SHA};
    CHECK_EQ_INT(decode_map(kv, 10, &d, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "data"), "%s", e.msg);

    /* Values out of range, each named. */
    static const struct {
        int i;            /* index of the value in kv */
        const char *spec; /* replacement */
        const char *name; /* expected in the message */
        int code;
    } cases[] = {
        {17, "x:100", "", 0},
        {7, "i:0", "attempt", TFQ_ERANGE},
        {7, "i:-1", "attempt", TFQ_ERANGE},
        {9, "i:-1", "epoch", TFQ_ERANGE},
        {5, "i:0", "job", TFQ_ERANGE},
        {5, "u:18446744073709551615", "job", TFQ_ERANGE},
        {11, "i:-5", "offset", TFQ_ERANGE},
        {11, "i:4000000", "offset", TFQ_ERANGE},
        {11, "i:3145700", "data", TFQ_ERANGE}, /* runs past total */
        {13, "i:99999999999999", "total", TFQ_ERANGE},
        {15, "s:ABCDEF", "sha256", TFQ_EFORMAT},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *kv2[20];
        memcpy(kv2, kv, sizeof kv2);
        kv2[17] = "x:100";
        kv2[cases[c].i] = cases[c].spec;
        int rc = decode_map(kv2, 10, &d, &e);
        CHECK_MSG(rc == cases[c].code, "case %zu: rc %d: %s", c, rc, e.msg);
        CHECK_MSG(rc == 0 || strstr(e.msg, cases[c].name), "case %zu: %s", c,
                  e.msg);
    }

    /* Encode checks ranges too. */
    sample(&m, PROTO_CKPT_PUT);
    m.offset = m.total + 1;
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "offset"), "%s", e.msg);
    sample(&m, PROTO_HEARTBEAT);
    m.attempt = 0;
    CHECK_EQ_INT(proto_encode(&m, &sb, &e), TFQ_ERANGE);
    CHECK_MSG(strstr(e.msg, "attempt"), "%s", e.msg);

    free(big);
    msgpack_sbuffer_destroy(&sb);
    proto_unpacked_release(&st);
    return 0;
}

static int test_error_reply(void)
{
    proto_unpacked st;
    proto_unpacked_init(&st);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_msg d;
    tfq_error e;
    CHECK_EQ_INT(proto_error_reply(TFQ_ECHECKSUM, "chunk 3: sha256 mismatch",
                                   PROTO_CKPT_PUT, &sb), 0);
    CHECK_MSG(proto_decode(sb.data, sb.size, &d, &st, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(d.kind, PROTO_ERROR);
    CHECK_EQ_INT(d.code, TFQ_ECHECKSUM);
    CHECK_EQ_INT(d.re, PROTO_CKPT_PUT);
    CHECK(str_eq(d.msg, "chunk 3: sha256 mismatch"));

    /* No message, no kind, a bad code, an over-long message. */
    msgpack_sbuffer_clear(&sb);
    CHECK_EQ_INT(proto_error_reply(5, NULL, PROTO_KIND_NONE, &sb), 0);
    CHECK_EQ_INT(proto_decode(sb.data, sb.size, &d, &st, &e), 0);
    CHECK_EQ_INT(d.code, TFQ_EINVAL);
    CHECK_EQ_INT(d.re, PROTO_KIND_NONE);
    CHECK(d.msg != NULL && d.msg[0] != '\0');
    char *longmsg = malloc(10000);
    CHECK(longmsg != NULL);
    memset(longmsg, 'x', 9999);
    longmsg[9999] = '\0';
    msgpack_sbuffer_clear(&sb);
    CHECK_EQ_INT(proto_error_reply(TFQ_EIO, longmsg, PROTO_SUBMIT, &sb), 0);
    CHECK_EQ_INT(proto_decode(sb.data, sb.size, &d, &st, &e), 0);
    CHECK_EQ_INT(strlen(d.msg), PROTO_MAX_MSG_BYTES);
    free(longmsg);
    msgpack_sbuffer_destroy(&sb);
    proto_unpacked_release(&st);
    return 0;
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"roundtrip_all_kinds", test_roundtrip_all_kinds},
        {"unknown_keys_ignored", test_unknown_keys_ignored},
        {"paging_fields", test_paging_fields},
        {"dashboard_fields", test_dashboard_fields},
        {"job_get_one_way", test_job_get_one_way},
        {"duplicate_keys", test_duplicate_keys},
        {"wrong_version", test_wrong_version},
        {"unknown_kind", test_unknown_kind},
        {"wrong_types", test_wrong_types},
        {"missing_required", test_missing_required},
        {"oversized", test_oversized},
        {"garbage_fuzz", test_garbage_fuzz},
        {"chunk_limits", test_chunk_limits},
        {"error_reply", test_error_reply},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
