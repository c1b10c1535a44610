/* Error codes shared by every tfq component.
 *
 * Functions that can fail return int: 0 (TFQ_OK) on success, a negative
 * TFQ_E* code on failure.  Where a caller needs to know *what* was wrong
 * (which file, which field), the function also takes a tfq_error * and fills
 * in a human-readable message; passing NULL is always allowed. */
#ifndef TFQ_COMMON_ERR_H
#define TFQ_COMMON_ERR_H

#include <stddef.h>

/* X(NAME, value, message): the one table of error codes and their text. */
#define TFQ_ERRNO_MAP(X)                                          \
    X(NOMEM, -1, "out of memory")                                 \
    X(IO, -2, "input/output error")                               \
    X(NOENT, -3, "no such file or directory")                     \
    X(FORMAT, -4, "malformed data")                               \
    X(MAGIC, -5, "wrong magic number")                            \
    X(VERSION, -6, "unsupported format version")                  \
    X(TRUNC, -7, "truncated data")                                \
    X(CHECKSUM, -8, "checksum mismatch")                          \
    X(MISMATCH, -9, "does not match what was expected")           \
    X(INVAL, -10, "invalid argument")                             \
    X(RANGE, -11, "value out of range")                           \
    X(NOTSUP, -12, "not supported")                               \
    X(INTR, -13, "interrupted")                                   \
    X(PERM, -14, "not permitted")                                 \
    X(NOSPC, -15, "no space left")

typedef enum {
    TFQ_OK = 0,
#define TFQ__ERR_ENUM(name, value, msg) TFQ_E##name = (value),
    TFQ_ERRNO_MAP(TFQ__ERR_ENUM)
#undef TFQ__ERR_ENUM
} tfq_errno;

#define TFQ_ERROR_MSG_BYTES 512

/* The detail of one failure: its code and a message that names what was
 * wrong and where ("train-images-idx3-ubyte.gz: truncated: ..."). */
typedef struct {
    int code;
    char msg[TFQ_ERROR_MSG_BYTES];
} tfq_error;

/* Text of an error code; never NULL ("unknown error" for unknown codes). */
const char *tfq_strerror(int code);

/* Records code and a printf-style message in e (if e is not NULL) and
 * returns code, so that failing paths read `return tfq_error_set(...)`. */
int tfq_error_set(tfq_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in e with a printf-style context
 * ("loading checkpoint x: " + old message). Returns e->code, or code when e
 * is NULL. */
int tfq_error_wrap(tfq_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears e (code 0, empty message). */
void tfq_error_clear(tfq_error *e);

#endif
