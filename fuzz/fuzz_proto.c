/* libFuzzer target: the wire codec, common/proto.c.
 *
 * Every input is decoded as a frame.  One that fails must say so with a
 * code of proto_decode's list and a message.  One that decodes must encode
 * again (the decoder accepts only what the encoder writes), its encoding
 * must decode to the same message, and that must encode to the same bytes:
 * a round trip is stable.  The input is also an error message for
 * proto_error_reply (repeated past PROTO_MAX_MSG_BYTES when its first byte
 * is odd), whose frame must decode to that message, cut where it is too
 * long.  Any breach aborts with what differed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_proto: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The first field of a and b that differs, or NULL; doubles compare by
 * their bits, so NaN equals NaN and -0 differs from 0. */
static const char *msg_diff(const proto_msg *a, const proto_msg *b)
{
#define NUM(f) if (a->f != b->f) return #f;
#define DBL(f) if (memcmp(&a->f, &b->f, sizeof a->f) != 0) return #f;
#define STR(f) if (!str_eq(a->f, b->f)) return #f;
    NUM(version) NUM(kind) NUM(threads) NUM(heartbeat_ms) NUM(retry_ms)
    NUM(max) NUM(more) NUM(job) NUM(attempt) NUM(epoch) NUM(step)
    DBL(loss) DBL(test_acc) DBL(images_per_s) DBL(eta_s) NUM(ok)
    NUM(offset) NUM(total) NUM(data_bytes) NUM(force) NUM(grid_id)
    NUM(added) NUM(reused) NUM(kept) NUM(queued) NUM(running) NUM(done)
    NUM(failed) NUM(count) NUM(code) NUM(re)
    STR(worker) STR(spec) STR(result) STR(error) STR(grid) STR(items)
    STR(msg) STR(sha256) STR(init) STR(fingerprint)
#undef NUM
#undef DBL
#undef STR
    if (a->data_bytes > 0 && memcmp(a->data, b->data, a->data_bytes) != 0)
        return "data";
    return NULL;
}

static void check_failure(int rc, const tfq_error *e)
{
    if (rc != TFQ_ERANGE && rc != TFQ_EFORMAT && rc != TFQ_EVERSION &&
        rc != TFQ_EINVAL && rc != TFQ_ENOMEM)
        fail("decode failed with a code not in its contract",
             tfq_strerror(rc));
    if (e->code != rc)
        fail("decode's error carries another code than it returned", e->msg);
    if (e->msg[0] == '\0' || memchr(e->msg, '\0', sizeof e->msg) == NULL)
        fail("decode failed without a message", NULL);
}

static void check_roundtrip(const proto_msg *m)
{
    msgpack_sbuffer one, two;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_init(&two);
    proto_unpacked up;
    proto_unpacked_init(&up);
    proto_msg again;
    tfq_error e = {0};
    if (proto_encode(m, &one, &e) != 0)
        fail("a decoded message does not encode", e.msg);
    if (proto_decode(one.data, one.size, &again, &up, &e) != 0)
        fail("a re-encoded message does not decode", e.msg);
    const char *field = msg_diff(m, &again);
    if (field != NULL)
        fail("a field changed in the round trip", field);
    if (proto_encode(&again, &two, &e) != 0)
        fail("a message decoded twice does not encode", e.msg);
    if (two.size != one.size || memcmp(one.data, two.data, one.size) != 0)
        fail("encoding a message twice gave other bytes",
             proto_kind_name(m->kind));
    proto_unpacked_release(&up);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&two);
}

static void check_error_reply(const uint8_t *data, size_t size)
{
    size_t len = size;
    if (size > 0 && (data[0] & 1))
        len = PROTO_MAX_MSG_BYTES + 1 + size;
    char *text = malloc(len + 1);
    if (text == NULL)
        return;
    for (size_t i = 0; i < len; i++)
        text[i] = (char)data[i % size];
    text[len] = '\0';
    int code = -(int)(size % 20); /* 0 and -15 .. -19 are no TFQ_E* */
    proto_kind re = (proto_kind)(size % (PROTO_KIND_COUNT + 2));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (proto_error_reply(code, text, re, &sb) != 0)
        fail("proto_error_reply failed", NULL);
    proto_unpacked up;
    proto_unpacked_init(&up);
    proto_msg m;
    tfq_error e = {0};
    if (proto_decode(sb.data, sb.size, &m, &up, &e) != 0)
        fail("an error reply does not decode", e.msg);
    size_t given = strlen(text), got = strlen(m.msg);
    if (m.kind != PROTO_ERROR || m.code > -1 || m.code < -9999)
        fail("an error reply decodes as something else", NULL);
    if (got > PROTO_MAX_MSG_BYTES || got > given ||
        memcmp(m.msg, text, got) != 0 ||
        (given <= PROTO_MAX_MSG_BYTES && got != given))
        fail("an error reply's message is not the one given, cut", NULL);
    check_roundtrip(&m);
    proto_unpacked_release(&up);
    msgpack_sbuffer_destroy(&sb);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_unpacked up;
    proto_unpacked_init(&up);
    proto_msg m;
    tfq_error e = {0};
    int rc = proto_decode(data, size, &m, &up, &e);
    if (rc != 0)
        check_failure(rc, &e);
    else
        check_roundtrip(&m);
    proto_unpacked_release(&up);
    check_error_reply(data, size);
    return 0;
}
