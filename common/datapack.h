/* Data packs: a labelled image data set, decoded, in one file whose
 * fingerprint is the data's identity.  Whatever a data set was read from
 * (IDX or CIFAR files, an image folder, .npz/.npy arrays), it becomes a
 * pack: what `tfq submit` uploads, the coordinator stores and hands out by
 * fingerprint, and workers and submit keep in their caches.
 *
 *   offset  bytes           field
 *   0       8               magic "TFQDATA\0"
 *   8       4               format version (DATAPACK_VERSION)
 *   12      4               c: channels (1 grey, 3 RGB)
 *   16      4               h: height
 *   20      4               w: width
 *   24      4               num_classes: labels are 0 .. num_classes-1
 *   28      4               n_train
 *   32      4               n_test
 *   36      4               names_bytes: size of the class names at the end
 *   40      24              zero
 *   64      n_train         training labels
 *   ...     n_train*c*h*w   training images, each (c, h, w) bytes
 *   ...     n_test          test labels
 *   ...     n_test*c*h*w    test images
 *   ...     names_bytes     num_classes names, each ended by a NUL (UTF-8,
 *                           no '/' or control character); 0 bytes: none
 *
 * All integers are little-endian u32.
 *
 * Canonical order: within each of the two sets the images are sorted by
 * the SHA-256 of their label byte followed by their pixel bytes (as
 * unsigned big-endian numbers; images with the same digest are the same
 * image and label, so their order does not matter).  The order does not
 * depend on where the images came from or in what order they were read,
 * so the same images give the same pack, and `limit_train: N` (the first N)
 * is a sample that no file order biases.
 *
 * Fingerprint: the SHA-256 of the 12 bytes "tfq-data-v1\n", then bytes
 * 12 .. 36 of the header (shape, classes and counts), then the labels and
 * images (bytes 64 .. the names), in lowercase hex.  The class names are
 * not part of it: renaming a class changes no result, so it changes no
 * identity. */
#ifndef TFQ_COMMON_DATAPACK_H
#define TFQ_COMMON_DATAPACK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hash.h"

#define DATAPACK_MAGIC "TFQDATA"
#define DATAPACK_VERSION 1u
#define DATAPACK_HEADER_BYTES 64

/* Bounds a header must keep, so a hostile one cannot ask for absurd
 * allocations: images of at most 4 channels of 4096 x 4096, at most 256
 * classes (labels are bytes), 10^8 images a set, and 64 GiB a pack. */
#define DATAPACK_MAX_SIDE 4096
#define DATAPACK_MAX_CLASSES 256
#define DATAPACK_MAX_IMAGES 100000000u
#define DATAPACK_MAX_BYTES ((int64_t)64 << 30)
#define DATAPACK_MAX_NAME_BYTES 256

typedef struct {
    uint32_t c, h, w;
    uint32_t num_classes;
    uint32_t n_train, n_test;
    uint32_t names_bytes;
} datapack_header;

/* A pack in memory; every array is malloc'd and owned by the pack. */
typedef struct {
    datapack_header h;
    uint8_t *train_y; /* (n_train) */
    uint8_t *train_x; /* (n_train, c, h, w) */
    uint8_t *test_y;  /* (n_test) */
    uint8_t *test_x;  /* (n_test, c, h, w) */
    char *names;      /* (names_bytes): num_classes NUL-ended names; NULL
                         when there are none */
} datapack;

/* Bytes of one image. */
size_t datapack_image_bytes(const datapack_header *h);

/* Offset of the class names (the end of the content), and the size of the
 * whole file. */
int64_t datapack_names_offset(const datapack_header *h);
int64_t datapack_file_bytes(const datapack_header *h);

/* Parses and checks a header: magic, version, the bounds above, the zero
 * bytes.  TFQ_EMAGIC / TFQ_EVERSION / TFQ_EFORMAT with what was found; bytes
 * < DATAPACK_HEADER_BYTES is TFQ_ETRUNC. */
int datapack_header_parse(const uint8_t *buf, size_t bytes,
                          datapack_header *h, tfq_error *e);

/* The header's 64 bytes. */
void datapack_header_write(const datapack_header *h,
                           uint8_t out[DATAPACK_HEADER_BYTES]);

/* Checks that a names block holds exactly num_classes non-empty names of
 * at most DATAPACK_MAX_NAME_BYTES, each NUL-ended, without '/' or control
 * characters.  bytes 0 (no names) is fine. */
int datapack_names_check(const char *names, size_t bytes,
                         uint32_t num_classes, tfq_error *e);

/* Class k's name, or NULL when the pack has no names or k is out of range. */
const char *datapack_class_name(const datapack *p, int k);

/* The fingerprint of a pack file's bytes fed in order from offset 0, in
 * pieces of any size: what the coordinator computes while an upload
 * arrives and a worker while a download does.  _final checks that exactly
 * the header's file size arrived and that the names are well-formed
 * (TFQ_ETRUNC, TFQ_EFORMAT); bytes past the end are TFQ_EFORMAT at once. */
typedef struct {
    hash_sha256_ctx sha;
    datapack_header h;
    uint8_t head[DATAPACK_HEADER_BYTES];
    int64_t seen;      /* bytes fed */
    char *names;       /* (h.names_bytes), collected for the check */
} datapack_hasher;

void datapack_hasher_init(datapack_hasher *d);
int datapack_hasher_update(datapack_hasher *d, const void *buf, size_t bytes,
                           tfq_error *e);
int datapack_hasher_final(datapack_hasher *d, char fp[HASH_HEX_BYTES],
                          tfq_error *e);
/* Frees what the hasher holds (after _final or instead of it). */
void datapack_hasher_release(datapack_hasher *d);

/* Sorts both sets into the canonical order and checks every label is below
 * num_classes (TFQ_EFORMAT naming the set and the image).  Allocates one
 * set's images again while it sorts (TFQ_ENOMEM). */
int datapack_canonicalize(datapack *p, tfq_error *e);

/* The fingerprint of a pack in memory, which must be in canonical order. */
void datapack_fingerprint(const datapack *p, char fp[HASH_HEX_BYTES]);

/* Canonicalizes p, then writes it to path atomically (a temporary name,
 * fsync, rename) and gives its fingerprint. */
int datapack_write(const char *path, datapack *p, char fp[HASH_HEX_BYTES],
                   tfq_error *e);

/* Reads and verifies a pack file.  expect_fp (NULL: any) is the fingerprint
 * it must have, else TFQ_EMISMATCH naming both; fp (may be NULL) receives
 * it.  On failure p is left zeroed. */
int datapack_read(const char *path, const char *expect_fp, datapack *p,
                  char fp[HASH_HEX_BYTES], tfq_error *e);

/* Frees what p owns and zeroes it; NULL and zeroed packs are fine. */
void datapack_release(datapack *p);

/* Whether s is 64 lowercase hex digits. */
int datapack_is_fingerprint(const char *s);

#endif
