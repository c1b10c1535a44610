/* SHA-256 (FIPS 180-4): content hashes of checkpoints and data set files.
 * Streaming interface plus helpers for whole files and hex output. */
#ifndef TFQ_COMMON_HASH_H
#define TFQ_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define HASH_BYTES 32
#define HASH_HEX_BYTES 65 /* 64 hex digits and a NUL */

typedef struct {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    size_t block_bytes;
} hash_sha256_ctx;

void hash_sha256_init(hash_sha256_ctx *h);
void hash_sha256_update(hash_sha256_ctx *h, const void *data, size_t bytes);
void hash_sha256_final(hash_sha256_ctx *h, uint8_t out[HASH_BYTES]);

/* One-shot hash of a buffer. */
void hash_sha256(const void *data, size_t bytes, uint8_t out[HASH_BYTES]);

/* Hash of a file's raw bytes (not decompressed).  Fails with TFQ_ENOENT or
 * TFQ_EIO and a message naming the file. */
int hash_sha256_file(const char *path, uint8_t out[HASH_BYTES], tfq_error *e);

/* Lower-case hex of a digest into out (HASH_HEX_BYTES, NUL-terminated). */
void hash_hex(const uint8_t digest[HASH_BYTES], char out[HASH_HEX_BYTES]);

#endif
