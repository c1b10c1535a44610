#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read size for hash_sha256_file: large enough that fread overhead is
 * negligible, small enough to live comfortably on any heap. */
#define HASH_FILE_CHUNK_BYTES (64 * 1024)

/* FIPS 180-4 section 4.2.2: first 32 bits of the fractional parts of the
 * cube roots of the first 64 primes. */
static const uint32_t s_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Applies the compression function to one 64-byte block. */
static void hash_compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + ch + s_k[t] + w[t];
        uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void hash_sha256_init(hash_sha256_ctx *h)
{
    /* FIPS 180-4 section 5.3.3. */
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(h->state, iv, sizeof iv);
    h->total_bytes = 0;
    h->block_bytes = 0;
}

void hash_sha256_update(hash_sha256_ctx *h, const void *data, size_t bytes)
{
    const uint8_t *p = data;
    h->total_bytes += bytes;

    if (h->block_bytes > 0) {
        size_t take = 64 - h->block_bytes;
        if (take > bytes)
            take = bytes;
        memcpy(h->block + h->block_bytes, p, take);
        h->block_bytes += take;
        p += take;
        bytes -= take;
        if (h->block_bytes < 64)
            return;
        hash_compress(h->state, h->block);
        h->block_bytes = 0;
    }
    for (; bytes >= 64; p += 64, bytes -= 64)
        hash_compress(h->state, p);
    if (bytes > 0) {
        memcpy(h->block, p, bytes);
        h->block_bytes = bytes;
    }
}

/* Pads with 0x80, zeros and the message length in bits (big-endian), writes
 * the digest and leaves h to be re-initialised before reuse. */
void hash_sha256_final(hash_sha256_ctx *h, uint8_t out[HASH_BYTES])
{
    uint64_t total_bits = h->total_bytes * 8;
    size_t used = h->block_bytes;

    h->block[used++] = 0x80;
    if (used > 56) {
        memset(h->block + used, 0, 64 - used);
        hash_compress(h->state, h->block);
        used = 0;
    }
    memset(h->block + used, 0, 56 - used);
    store_be32(h->block + 56, (uint32_t)(total_bits >> 32));
    store_be32(h->block + 60, (uint32_t)total_bits);
    hash_compress(h->state, h->block);

    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, h->state[i]);
    memset(h, 0, sizeof *h);
}

void hash_sha256(const void *data, size_t bytes, uint8_t out[HASH_BYTES])
{
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    hash_sha256_update(&h, data, bytes);
    hash_sha256_final(&h, out);
}

int hash_sha256_file(const char *path, uint8_t out[HASH_BYTES], tfq_error *e)
{
    int rc = 0;
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            rc = tfq_error_set(e, TFQ_ENOENT, "%s: no such file", path);
        else
            rc = tfq_error_set(e, TFQ_EIO, "%s: cannot open: %s", path,
                               strerror(errno));
        goto fail;
    }
    buf = malloc(HASH_FILE_CHUNK_BYTES);
    if (buf == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory for read buffer",
                           path);
        goto fail;
    }

    hash_sha256_ctx h;
    hash_sha256_init(&h);
    size_t got;
    while ((got = fread(buf, 1, HASH_FILE_CHUNK_BYTES, f)) > 0)
        hash_sha256_update(&h, buf, got);
    if (ferror(f)) {
        rc = tfq_error_set(e, TFQ_EIO, "%s: read error: %s", path,
                           strerror(errno));
        goto fail;
    }
    hash_sha256_final(&h, out);

fail:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

void hash_hex(const uint8_t digest[HASH_BYTES], char out[HASH_HEX_BYTES])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < HASH_BYTES; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 0x0f];
    }
    out[2 * HASH_BYTES] = '\0';
}
