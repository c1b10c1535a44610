/* The input format of fuzz_handlers, shared with the seed writer (seeds.c).
 *
 * An input is a sequence of messages (at most HIN_MAX_MESSAGES; a short
 * input ends the sequence, missing bytes read as 0):
 *
 *   op peer [peer bytes] fields... extras
 *
 * op       a byte: the kind to send, HIN_OP_* modulo HIN_OP_COUNT.
 * peer     a byte: the routing id, HIN_PEER_* modulo HIN_PEER_COUNT;
 *          HIN_PEER_BYTES is followed by a length byte (0 read as 1) and
 *          that many bytes of id.
 * fields   for each field the kind carries (the harness's table, in the
 *          order of HIN_F_*), a control byte:
 *            < HIN_CTL_ABSENT          the usual value, chosen by the next
 *                                      byte: a few well-formed values, the
 *                                      hashes of checkpoints uploaded;
 *                                      strings: a template, or, when the
 *                                      byte is HIN_TEXT, a length byte and
 *                                      text; "job", "attempt" and "lease":
 *                                      below HIN_LEASE_PICK, those of lease
 *                                      byte % n of the last n the harness
 *                                      was given (0 the newest), else a job
 *                                      id or attempt of the grid's range, or
 *                                      a token of zeros or of 32 bytes
 *            < HIN_CTL_WRONG_TYPE      the field is left out;
 *            < HIN_CTL_EXTREME         a value of another msgpack type,
 *                                      chosen by the next byte;
 *            else                      a raw value: 8 bytes for a number,
 *                                      a 2-byte length (big-endian) and
 *                                      bytes for a string or bin.
 *          ckpt_put is a whole upload instead: job, attempt, lease and
 *          epoch bytes (usual values), a chunk count byte (1 + n % 3), a
 *          plan byte (HIN_PLAN_* modulo HIN_PLAN_COUNT), each chunk's
 *          length byte and bytes (none for HIN_PLAN_SLEEP), and then for
 *          each chunk sent the control bytes of its fields (the usual
 *          value: the planned one, no value byte).
 * extras   a byte: HIN_EXTRA_* (below HIN_EXTRA_UNKNOWN_KEY: nothing).
 *
 * HIN_OP_RAW sends a 2-byte length (big-endian) and that many bytes as
 * the frame, whatever they are.
 *
 * The named peers are connected to the coordinator: the harness reads
 * their replies, and keeps the leases of the "job" replies. */
#ifndef TFQ_FUZZ_HANDLERS_INPUT_H
#define TFQ_FUZZ_HANDLERS_INPUT_H

#define HIN_MAX_MESSAGES 32

enum {
    HIN_OP_HELLO,
    HIN_OP_READY,
    HIN_OP_HEARTBEAT,
    HIN_OP_PROGRESS,
    HIN_OP_CKPT_PUT,
    HIN_OP_RESULT,
    HIN_OP_RELEASE,
    HIN_OP_CKPT_GET,
    HIN_OP_BYE,
    HIN_OP_SUBMIT,
    HIN_OP_STATUS,
    HIN_OP_RESULTS,
    HIN_OP_CANCEL_GRID,
    HIN_OP_RETRY,
    HIN_OP_WORKERS,
    HIN_OP_ERROR,
    HIN_OP_JOB, /* a coordinator's kind: not served */
    HIN_OP_RAW,
    HIN_OP_CURVES, /* after RAW: the seeds written before keep their ops */
    HIN_OP_GRIDS,
    HIN_OP_JOBS,
    HIN_OP_EVENTS,
    HIN_OP_ATTEMPTS,
    HIN_OP_METRICS,
    HIN_OP_COUNT
};

enum {
    HIN_PEER_W0,      /* "w0" */
    HIN_PEER_W1,      /* "w1" */
    HIN_PEER_W0_BEAT, /* "w0/beat": w0's heartbeat socket */
    HIN_PEER_CLIENT,  /* "c0" */
    HIN_PEER_BYTES,   /* from the input */
    HIN_PEER_COUNT
};

#define HIN_CTL_ABSENT 200
#define HIN_CTL_WRONG_TYPE 215
#define HIN_CTL_EXTREME 235

/* Usual-value bytes of strings: 255 reads a length byte and text. */
#define HIN_TEXT 255

/* Usual-value bytes of "job", "attempt" and "lease" below this pick a
 * lease the harness was given. */
#define HIN_LEASE_PICK 0x80

/* Templates of the usual "spec" of a submit (the byte modulo the count). */
enum {
    HIN_SPEC_FUZZ_GRID,  /* the harness's own grid file: kept as it is */
    HIN_SPEC_SMALL,      /* two sleep jobs, one after the other */
    HIN_SPEC_CHANGED,    /* a job of the harness's grid, changed */
    HIN_SPEC_GRID_YAML,  /* a small grid file */
    HIN_SPEC_BAD,        /* a job file with a cycle */
    HIN_SPEC_COUNT
};

/* Usual "grid" names (the byte modulo the count). */
enum { HIN_GRID_FUZZ, HIN_GRID_OTHER, HIN_GRID_EMPTY, HIN_GRID_COUNT };

/* How a ckpt_put upload goes. */
enum {
    HIN_PLAN_RIGHT,      /* in order, the right hash */
    HIN_PLAN_WRONG_HASH, /* in order, another hash */
    HIN_PLAN_SKIP,       /* the second chunk is not sent */
    HIN_PLAN_REPEAT,     /* the first chunk is sent twice */
    HIN_PLAN_SLEEP,      /* a sleep job's checkpoint at the epoch, in order,
                            the right hash */
    HIN_PLAN_COUNT
};

enum {
    HIN_EXTRA_UNKNOWN_KEY = 240, /* .. 247: a key no kind has */
    HIN_EXTRA_DUPLICATE = 248,   /* .. 251: the first field twice */
    HIN_EXTRA_VERSION = 252,     /* .. 253: "v" 2 */
    HIN_EXTRA_NO_KIND = 254,     /* no "k" */
    HIN_EXTRA_KIND_NAME = 255,   /* "k" a length byte and text */
};

#endif
