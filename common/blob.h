/* Blobs: the content-addressed files the coordinator stores and hands out
 * by id, in two stores:
 *   "data"  data packs (common/datapack.h) by fingerprint: what a stream
 *           of the file's bytes hashes to with datapack_hasher;
 *   "ckpt"  checkpoints by SHA-256 of their bytes, which start with the
 *           checkpoint magic "TFQCKPT".
 * The check of a blob streams: fed in pieces as its chunks arrive (an
 * upload at the coordinator, a download at a worker), so that nothing
 * holds a whole blob in memory. */
#ifndef TFQ_COMMON_BLOB_H
#define TFQ_COMMON_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "datapack.h"
#include "err.h"
#include "hash.h"

typedef enum { BLOB_DATA = 0, BLOB_CKPT = 1 } blob_store;

/* The checkpoint magic a "ckpt" blob starts with (worker/engine/ckpt.h's
 * CKPT_MAGIC, which common cannot include). */
#define BLOB_CKPT_MAGIC "TFQCKPT"
#define BLOB_CKPT_MAGIC_BYTES 7

/* The store called name ("data", "ckpt"); TFQ_EINVAL naming it and the
 * stores there are, for any other (name may be NULL). */
int blob_store_parse(const char *name, blob_store *out, tfq_error *e);

/* The wire name of a store. */
const char *blob_store_name(blob_store s);

/* The file name of blob id in its store's directory: "<id>.tfqd" for data,
 * "<id>" for checkpoints, into out (at least 80 bytes). */
void blob_file_name(blob_store s, const char *id, char *out, size_t bytes);

/* The check of one blob's bytes, fed in order from offset 0. */
typedef struct {
    blob_store store;
    hash_sha256_ctx sha;     /* ckpt */
    datapack_hasher pack;    /* data */
    int64_t seen;
    uint8_t head[BLOB_CKPT_MAGIC_BYTES];
    int magic; /* ckpt: the bytes must start with BLOB_CKPT_MAGIC (set by
                  init; a download of a worker's checkpoint by ckpt_get
                  clears it: a sleep job's is a line of text) */
} blob_check;

void blob_check_init(blob_check *c, blob_store s);

/* Feeds the next bytes.  A data pack whose header is bad, or that runs
 * past its header's size, fails at once (datapack_hasher_update's
 * errors). */
int blob_check_update(blob_check *c, const void *buf, size_t bytes,
                      tfq_error *e);

/* After the last bytes: 0 when what was fed is blob id: TFQ_ECHECKSUM
 * naming both ids when it hashes to another, TFQ_EMAGIC for a checkpoint
 * without the magic, a data pack's TFQ_ETRUNC / TFQ_EFORMAT.  Releases
 * what c holds. */
int blob_check_final(blob_check *c, const char *id, tfq_error *e);

/* Frees what c holds, instead of blob_check_final. */
void blob_check_release(blob_check *c);

#endif
