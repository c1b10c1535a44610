/* Writes the seed corpora of the fuzz targets:
 *
 *   fuzz_seeds DIR
 *
 * DIR/fuzz_proto/KIND: one well-formed frame of every kind (proto_encode);
 * DIR/fuzz_handlers/NAME: message sequences in fuzz_handlers' input format
 * (handlers_input.h): a worker's session, a checkpoint upload and
 * download, a client's commands, and hostile frames.  The files are
 * committed under fuzz/corpus; run this again when the formats change. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/proto.h"
#include "handlers_input.h"

static const char *s_dir;

static void write_file(const char *sub, const char *name, const void *data,
                       size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s_dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- fuzz_proto: a frame of each kind ----------------------------------- */

static const uint8_t s_data[48] = "a chunk of a checkpoint, 48 bytes of it........";

static void sample(proto_msg *m, proto_kind k)
{
    proto_msg_init(m, k);
    m->worker = "worker-1";
    m->threads = 4;
    m->heartbeat_ms = 1000;
    m->retry_ms = 200;
    m->max = 8;
    m->more = 2;
    m->job = 42;
    m->attempt = 2;
    m->epoch = 3;
    m->step = 1200;
    m->spec = "kind = sleep\nsleep_ms = 5\n";
    m->loss = 0.38;
    m->test_acc = 0.88;
    m->images_per_s = 2100.5;
    m->eta_s = 19.25;
    m->ok = true;
    m->result = "{}";
    m->error = "diverged";
    memset(m->sha256, 'a', 64);
    memset(m->init, 'b', 64);
    memset(m->lease, 'd', 64);
    m->offset = 0;
    m->total = sizeof s_data;
    m->data = s_data;
    m->data_bytes = sizeof s_data;
    m->grid = "quick";
    m->force = false;
    m->grid_id = 1;
    m->added = 16;
    m->reused = 0;
    m->kept = 0;
    memset(m->fingerprint, 'c', 64);
    m->queued = 10;
    m->running = 2;
    m->done = 3;
    m->failed = 1;
    m->count = 4;
    m->after = 5;
    m->next = 6;
    m->items = "[]";
    m->query = "{\"state\": \"running\", \"limit\": 5}";
    m->name = k == PROTO_JOB_GET ? NULL : "lr-0.1"; /* job or name */
    m->state = "running";
    m->code = TFQ_EMISMATCH;
    m->msg = "no such attempt";
    m->re = PROTO_HEARTBEAT;
}

static void proto_seeds(void)
{
    for (int k = PROTO_KIND_NONE + 1; k < PROTO_KIND_COUNT; k++) {
        proto_msg m;
        sample(&m, (proto_kind)k);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        tfq_error e = {0};
        if (proto_encode(&m, &sb, &e) != 0) {
            fprintf(stderr, "%s: %s\n", proto_kind_name((proto_kind)k), e.msg);
            exit(1);
        }
        write_file("fuzz_proto", proto_kind_name((proto_kind)k), sb.data,
                   sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- fuzz_handlers: message sequences ----------------------------------- */

typedef struct {
    uint8_t b[1024];
    size_t n;
} seq;

static void put(seq *s, const int *v, size_t n)
{
    for (size_t i = 0; i < n && s->n < sizeof s->b; i++)
        s->b[s->n++] = (uint8_t)v[i];
}

static void put_text(seq *s, const char *t)
{
    size_t n = strlen(t);
    s->b[s->n++] = (uint8_t)n;
    memcpy(s->b + s->n, t, n);
    s->n += n;
}

#define PUT(s, ...)                                 \
    put(s, (const int[]){__VA_ARGS__},              \
        sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* Usual values: a control byte 0, then the value byte. */
#define U(v) 0, (v)
#define ABSENT HIN_CTL_ABSENT
#define NO_EXTRA 0

/* A lease the harness was given, by age (0 the newest): its job,
 * attempt and token. */
#define LEASE(k) U(k), U(k), U(k)

static void handlers_seeds(void)
{
    seq s = {.n = 0};
    /* A worker: hello, ready for two, heartbeats from its beat socket,
     * progress, a result and a release, ready again, a failure, a
     * heartbeat with a token it was not given, bye. */
    PUT(&s, HIN_OP_HELLO, HIN_PEER_W0, U(1), U(3), NO_EXTRA);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(2), NO_EXTRA);
    for (int k = 0; k < 2; k++)
        PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0_BEAT, LEASE(k), U(0), U(10),
            NO_EXTRA);
    PUT(&s, HIN_OP_PROGRESS, HIN_PEER_W0, LEASE(0), U(1), U(8), U(200),
        U(50), U(3), NO_EXTRA);
    PUT(&s, HIN_OP_RESULT, HIN_PEER_W0, LEASE(0), U(1), U(0), ABSENT, ABSENT,
        NO_EXTRA);
    PUT(&s, HIN_OP_RELEASE, HIN_PEER_W0, LEASE(1), NO_EXTRA);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(8), NO_EXTRA);
    PUT(&s, HIN_OP_RESULT, HIN_PEER_W0, LEASE(0), U(0), ABSENT, U(0), ABSENT,
        NO_EXTRA);
    PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0_BEAT, U(HIN_LEASE_PICK + 1),
        U(HIN_LEASE_PICK), U(HIN_LEASE_PICK + 1), U(0), U(10), NO_EXTRA);
    PUT(&s, HIN_OP_BYE, HIN_PEER_W0, NO_EXTRA);
    write_file("fuzz_handlers", "worker_session", s.b, s.n);

    /* Checkpoints: a sleep job's in two chunks for each lease, a result
     * naming it, an upload of bytes no job would write, the download,
     * then ready again for the jobs that waited. */
    s.n = 0;
    PUT(&s, HIN_OP_HELLO, HIN_PEER_W1, U(0), U(1), NO_EXTRA);
    PUT(&s, HIN_OP_READY, HIN_PEER_W1, U(4), NO_EXTRA);
    for (int k = 0; k < 2; k++) {
        PUT(&s, HIN_OP_CKPT_PUT, HIN_PEER_W1, k, k, k, 1, 1, HIN_PLAN_SLEEP);
        for (int chunk = 0; chunk < 2; chunk++)
            PUT(&s, 0, 0, 0, 0, 0, 0, 0, 0, NO_EXTRA);
        PUT(&s, HIN_OP_RESULT, HIN_PEER_W1, LEASE(k), U(1), U(0), ABSENT,
            U(0), NO_EXTRA);
    }
    PUT(&s, HIN_OP_READY, HIN_PEER_W1, U(4), NO_EXTRA);
    PUT(&s, HIN_OP_CKPT_PUT, HIN_PEER_W1, 0, 0, 0, 1, 0, HIN_PLAN_RIGHT);
    put_text(&s, "not a checkpoint");
    PUT(&s, 0, 0, 0, 0, 0, 0, 0, 0, NO_EXTRA);
    PUT(&s, HIN_OP_CKPT_GET, HIN_PEER_W1, U(4), U(0), NO_EXTRA);
    PUT(&s, HIN_OP_CKPT_GET, HIN_PEER_W1, U(4), U(1), NO_EXTRA);
    write_file("fuzz_handlers", "checkpoints", s.b, s.n);

    /* Uploads of three chunks that go wrong: a wrong hash (three sent),
     * the second missing (two sent), the first twice (four sent). */
    s.n = 0;
    PUT(&s, HIN_OP_READY, HIN_PEER_W1, U(4), NO_EXTRA);
    static const int sent[HIN_PLAN_COUNT] = {
        [HIN_PLAN_WRONG_HASH] = 3, [HIN_PLAN_SKIP] = 2, [HIN_PLAN_REPEAT] = 4};
    for (int plan = HIN_PLAN_WRONG_HASH; plan <= HIN_PLAN_REPEAT; plan++) {
        PUT(&s, HIN_OP_CKPT_PUT, HIN_PEER_W1, 0, 0, 0, 2, 2, plan);
        put_text(&s, "one");
        put_text(&s, "two");
        put_text(&s, "three");
        for (int chunk = 0; chunk < sent[plan]; chunk++)
            PUT(&s, 0, 0, 0, 0, 0, 0, 0, 0, NO_EXTRA);
    }
    write_file("fuzz_handlers", "bad_uploads", s.b, s.n);

    /* A client: submits, status, results, curves, workers, the dashboard's
     * reads, cancel and retry. */
    s.n = 0;
    PUT(&s, HIN_OP_SUBMIT, HIN_PEER_CLIENT, U(HIN_GRID_OTHER),
        U(HIN_SPEC_SMALL), U(0), ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_SUBMIT, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ),
        U(HIN_SPEC_FUZZ_GRID), U(1), ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_SUBMIT, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ),
        U(HIN_SPEC_CHANGED), U(0), ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_SUBMIT, HIN_PEER_CLIENT, U(HIN_GRID_OTHER),
        U(HIN_SPEC_BAD), U(0), ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_SUBMIT, HIN_PEER_CLIENT, U(HIN_GRID_EMPTY),
        U(HIN_SPEC_GRID_YAML), U(0), U(3), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
        29, 30, 31, 32, NO_EXTRA);
    PUT(&s, HIN_OP_STATUS, HIN_PEER_CLIENT, ABSENT, ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_STATUS, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), U(2),
        NO_EXTRA);
    PUT(&s, HIN_OP_RESULTS, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), ABSENT,
        NO_EXTRA);
    PUT(&s, HIN_OP_RESULTS, HIN_PEER_CLIENT, U(HIN_GRID_EMPTY), U(1),
        NO_EXTRA);
    PUT(&s, HIN_OP_CURVES, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), ABSENT,
        ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_CURVES, HIN_PEER_CLIENT, U(HIN_GRID_EMPTY), U(1),
        ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_CURVES, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), ABSENT,
        U(HIN_LEASE_PICK + 2), NO_EXTRA);
    PUT(&s, HIN_OP_GRIDS, HIN_PEER_CLIENT, ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_GRIDS, HIN_PEER_CLIENT, U(1), NO_EXTRA);
    for (int q = 0; q < 9; q++) /* each of fuzz_handlers' s_queries */
        PUT(&s, HIN_OP_JOBS, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), U(q),
            NO_EXTRA);
    PUT(&s, HIN_OP_JOBS, HIN_PEER_CLIENT, U(HIN_GRID_OTHER), ABSENT,
        NO_EXTRA);
    PUT(&s, HIN_OP_EVENTS, HIN_PEER_CLIENT, ABSENT, ABSENT, ABSENT, ABSENT,
        NO_EXTRA);
    PUT(&s, HIN_OP_EVENTS, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ),
        U(HIN_LEASE_PICK), U(2), U(3), NO_EXTRA);
    PUT(&s, HIN_OP_ATTEMPTS, HIN_PEER_CLIENT, U(HIN_LEASE_PICK + 1),
        NO_EXTRA);
    PUT(&s, HIN_OP_ATTEMPTS, HIN_PEER_CLIENT, HIN_CTL_EXTREME, 0, 0, 0, 0,
        0, 0, 0x30, 0x39, NO_EXTRA); /* job 12345: none such */
    PUT(&s, HIN_OP_METRICS, HIN_PEER_CLIENT, NO_EXTRA);
    PUT(&s, HIN_OP_WORKERS, HIN_PEER_CLIENT, ABSENT, NO_EXTRA);
    PUT(&s, HIN_OP_WORKERS, HIN_PEER_CLIENT, U(1), NO_EXTRA);
    PUT(&s, HIN_OP_CANCEL_GRID, HIN_PEER_CLIENT, U(HIN_GRID_OTHER), NO_EXTRA);
    PUT(&s, HIN_OP_RETRY, HIN_PEER_CLIENT, U(HIN_GRID_OTHER), NO_EXTRA);
    PUT(&s, HIN_OP_RETRY, HIN_PEER_CLIENT, U(HIN_GRID_FUZZ), NO_EXTRA);
    write_file("fuzz_handlers", "client", s.b, s.n);

    /* Hostile peers: fields left out, of the wrong type, extreme, unknown
     * and duplicate keys, another version, no kind, a kind of the
     * coordinator's, an error, a raw frame, a binary routing id. */
    s.n = 0;
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), NO_EXTRA);
    PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0, ABSENT, U(0), U(0), U(0), U(0),
        NO_EXTRA);
    PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0, HIN_CTL_WRONG_TYPE, 6, U(0), U(0),
        U(0), U(0), NO_EXTRA);
    PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0, HIN_CTL_EXTREME, 0x7f, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, U(0), U(0), U(0), U(0), NO_EXTRA);
    PUT(&s, HIN_OP_HEARTBEAT, HIN_PEER_W0, U(0), U(0), HIN_CTL_EXTREME, 0, 5,
        'a', 'b', 'c', 'd', 'e', U(0), U(0), NO_EXTRA);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), HIN_EXTRA_UNKNOWN_KEY);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), HIN_EXTRA_DUPLICATE);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), HIN_EXTRA_VERSION);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), HIN_EXTRA_NO_KIND);
    PUT(&s, HIN_OP_READY, HIN_PEER_W0, U(1), HIN_EXTRA_KIND_NAME);
    put_text(&s, "readyish");
    PUT(&s, HIN_OP_JOB, HIN_PEER_W0, U(0), U(0), U(1), U(0), NO_EXTRA);
    PUT(&s, HIN_OP_ERROR, HIN_PEER_W0, U(3), U(0), U(5), NO_EXTRA);
    PUT(&s, HIN_OP_RAW, HIN_PEER_BYTES, 3, 0, 0xff, 1, 0, 4, 0x81, 0xa1,
        0x76, 0x01);
    PUT(&s, HIN_OP_PROGRESS, HIN_PEER_W0, LEASE(0), U(0), HIN_CTL_EXTREME,
        0x7f, 0xf8, 0, 0, 0, 0, 0, 1, U(255), U(0), U(0), NO_EXTRA);
    write_file("fuzz_handlers", "hostile", s.b, s.n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    s_dir = argv[1];
    if (mkdir(s_dir, 0755) != 0 && errno != EEXIST) {
        perror(s_dir);
        return 1;
    }
    proto_seeds();
    handlers_seeds();
    return 0;
}
