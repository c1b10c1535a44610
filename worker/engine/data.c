#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_IMAGES_HEADER_BYTES 16 /* magic, n, rows, cols */
#define IDX_LABELS_HEADER_BYTES 8  /* magic, n */

/* Largest image side we accept; real data sets are 28 or 32, so anything
 * bigger than this is a corrupt header, not a picture. */
#define DATA_MAX_SIDE 4096

/* Labels are bytes; a set may have at most 255 classes (labels 0..254),
 * which leaves 255 unused as an out-of-range value. */
#define DATA_MAX_CLASSES 255

#define CIFAR_SIDE 32
#define CIFAR_CHANNELS 3
#define CIFAR_PIXEL_BYTES (CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE) /* 3072 */
#define CIFAR10_CLASSES 10
#define CIFAR100_COARSE_CLASSES 20

/* Records copied per fread when reading CIFAR files (~770 KiB). */
#define CIFAR_CHUNK_RECORDS 256

/* zlib buffer size: large reads keep gzread from doing many small syscalls. */
#define GZ_BUFFER_BYTES (128 * 1024)

/* Compressed files give no reliable decompressed size, so their payload
 * buffer starts at this size and doubles as data actually arrives: a header
 * that claims absurd counts cannot make us allocate memory the file does
 * not back. */
#define GZ_GROW_START_BYTES (16u << 20)

/* gzread takes an unsigned and returns an int, so read in pieces. */
#define GZ_READ_MAX_BYTES (1u << 30)

/* Longest path data_load builds from a directory and a file name. */
#define DATA_PATH_BYTES 1024

/* ---- reading a plain or gzip file ---------------------------------------- */

/* One open input file, plain or gzip; zlib reads plain files unchanged. */
typedef struct {
    const char *path;
    gzFile gz;
    int is_gzip;
    uint64_t file_bytes; /* size on disk (compressed for gzip) */
} data_file;

/* Opens path for reading.  Fails with TFQ_ENOENT for a missing file,
 * TFQ_EIO for anything else that cannot be read; f->gz is NULL then. */
static int data_file_open(data_file *f, const char *path, tfq_error *e)
{
    int rc = 0;
    memset(f, 0, sizeof *f);
    f->path = path;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = tfq_error_set(e, TFQ_ENOENT, "%s: no such file", path);
        else
            rc = tfq_error_set(e, TFQ_EIO, "%s: cannot open: %s", path,
                               strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = tfq_error_set(e, TFQ_EIO, "%s: not a regular file", path);
        goto fail;
    }
    f->file_bytes = (uint64_t)st.st_size;

    uint8_t magic[2];
    ssize_t r = pread(fd, magic, sizeof magic, 0);
    f->is_gzip = r == 2 && magic[0] == 0x1f && magic[1] == 0x8b;

    f->gz = gzdopen(fd, "rb");
    if (f->gz == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: cannot start zlib reader",
                           path);
        goto fail;
    }
    fd = -1; /* owned by f->gz now */
    gzbuffer(f->gz, GZ_BUFFER_BYTES);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

static void data_file_close(data_file *f)
{
    if (f->gz != NULL)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Turns a failed gzread into an error naming the file. */
static int data_file_error(data_file *f, tfq_error *e)
{
    int saved_errno = errno;
    int zerr = Z_OK;
    const char *zmsg = gzerror(f->gz, &zerr);
    /* zlib prefixes its text with "<fd:N>: "; the path replaces that. */
    const char *sep = strstr(zmsg, ": ");
    if (sep != NULL)
        zmsg = sep + 2;
    switch (zerr) {
    case Z_ERRNO:
        return tfq_error_set(e, TFQ_EIO, "%s: read error: %s", f->path,
                             strerror(saved_errno));
    case Z_MEM_ERROR:
        return tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory in zlib",
                             f->path);
    default:
        return tfq_error_set(e, TFQ_EFORMAT, "%s: corrupt gzip data: %s",
                             f->path, zmsg);
    }
}

/* Reads up to bytes into buf; *got < bytes only at the end of the data
 * (including the end of a truncated gzip stream).  Fails only on read
 * errors and corrupt compressed data. */
static int data_file_read(data_file *f, void *buf, size_t bytes, size_t *got,
                          tfq_error *e)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < bytes) {
        size_t want = bytes - *got;
        if (want > GZ_READ_MAX_BYTES)
            want = GZ_READ_MAX_BYTES;
        int r = gzread(f->gz, p + *got, (unsigned)want);
        if (r < 0)
            return data_file_error(f, e);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* Checks that the data ends exactly after `expected` bytes, and that a gzip
 * stream is complete (its trailer and CRC are read and checked here). */
static int data_file_expect_end(data_file *f, uint64_t expected, tfq_error *e)
{
    uint8_t extra;
    size_t got;
    int rc = data_file_read(f, &extra, 1, &got, e);
    if (rc != 0)
        return rc;
    if (got != 0)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: trailing data after the expected %llu bytes",
                             f->path, (unsigned long long)expected);
    int zerr = Z_OK;
    gzerror(f->gz, &zerr);
    if (zerr == Z_BUF_ERROR)
        return tfq_error_set(e, TFQ_ETRUNC,
                             "%s: truncated: gzip stream ends early", f->path);
    return 0;
}

/* Reads exactly `bytes` bytes that follow a header of header_bytes into a new
 * buffer (*out, owned by the caller), then checks that the file ends there.
 * `what` names the data in the truncation message. */
static int data_file_read_payload(data_file *f, size_t header_bytes,
                                  size_t bytes, const char *what,
                                  uint8_t **out, tfq_error *e)
{
    int rc = 0;
    *out = NULL;
    size_t cap = bytes;
    if (f->is_gzip && cap > GZ_GROW_START_BYTES)
        cap = GZ_GROW_START_BYTES;
    if (!f->is_gzip && cap > f->file_bytes)
        cap = f->file_bytes > 0 ? (size_t)f->file_bytes : 1;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory for %zu bytes",
                           f->path, cap);
        goto fail;
    }

    size_t have = 0;
    for (;;) {
        size_t got;
        rc = data_file_read(f, buf + have, cap - have, &got, e);
        if (rc != 0)
            goto fail;
        have += got;
        if (have < cap || cap == bytes)
            break;
        cap = cap > bytes / 2 ? bytes : cap * 2;
        uint8_t *grown = realloc(buf, cap);
        if (grown == NULL) {
            rc = tfq_error_set(e, TFQ_ENOMEM,
                               "%s: out of memory for %zu bytes", f->path, cap);
            goto fail;
        }
        buf = grown;
    }
    if (have < bytes) {
        int zerr = Z_OK;
        gzerror(f->gz, &zerr);
        rc = tfq_error_set(e, TFQ_ETRUNC,
                           "%s: truncated: expected %zu bytes of %s, got %zu%s",
                           f->path, header_bytes + bytes, what,
                           header_bytes + have,
                           zerr == Z_BUF_ERROR ? " (gzip stream ends early)"
                                               : "");
        goto fail;
    }
    rc = data_file_expect_end(f, header_bytes + bytes, e);
    if (rc != 0)
        goto fail;
    *out = buf;
    return 0;

fail:
    free(buf);
    return rc;
}

/* ---- IDX ----------------------------------------------------------------- */

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads an IDX header of `bytes` bytes into words (big-endian u32s) and
 * checks its magic number. */
static int idx_read_header(data_file *f, uint32_t magic, const char *what,
                           uint32_t *words, size_t bytes, tfq_error *e)
{
    uint8_t header[IDX_IMAGES_HEADER_BYTES];
    size_t got;
    int rc = data_file_read(f, header, bytes, &got, e);
    if (rc != 0)
        return rc;
    if (got < bytes)
        return tfq_error_set(e, TFQ_ETRUNC,
                             "%s: truncated: expected %zu bytes of IDX %s "
                             "header, got %zu",
                             f->path, bytes, what, got);
    for (size_t i = 0; i < bytes / 4; i++)
        words[i] = load_be32(header + 4 * i);
    if (words[0] != magic)
        return tfq_error_set(e, TFQ_EMAGIC,
                             "%s: wrong magic number 0x%08x, expected 0x%08x "
                             "(IDX %s)",
                             f->path, words[0], magic, what);
    if (words[1] == 0)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: holds zero %s", f->path,
                             what);
    if (words[1] > INT_MAX)
        return tfq_error_set(e, TFQ_ERANGE, "%s: absurd count of %u %s",
                             f->path, words[1], what);
    return 0;
}

/* Reads an IDX image file into out->n, h, w, c and out->x. */
static int idx_read_images(const char *path, data_set *out, tfq_error *e)
{
    data_file f;
    uint32_t hdr[4];
    int rc = data_file_open(&f, path, e);
    if (rc != 0)
        goto fail;
    rc = idx_read_header(&f, IDX_IMAGES_MAGIC, "images", hdr,
                         IDX_IMAGES_HEADER_BYTES, e);
    if (rc != 0)
        goto fail;
    uint32_t rows = hdr[2], cols = hdr[3];
    if (rows == 0 || cols == 0 || rows > DATA_MAX_SIDE || cols > DATA_MAX_SIDE) {
        rc = tfq_error_set(e, TFQ_ERANGE,
                           "%s: absurd image size %ux%u (each side must be "
                           "1..%d)",
                           path, rows, cols, DATA_MAX_SIDE);
        goto fail;
    }
    rc = data_file_read_payload(&f, IDX_IMAGES_HEADER_BYTES,
                                (size_t)hdr[1] * rows * cols, "image data",
                                &out->x, e);
    if (rc != 0)
        goto fail;
    out->n = (int)hdr[1];
    out->c = 1;
    out->h = (int)rows;
    out->w = (int)cols;

fail:
    data_file_close(&f);
    return rc;
}

/* Checks every label of y[0..n) is below limit; returns the number of
 * classes (max label + 1) in *num_classes. */
static int data_check_labels(const char *path, const uint8_t *y, int n,
                             int limit, int *num_classes, tfq_error *e)
{
    int max = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] >= limit)
            return tfq_error_set(e, TFQ_ERANGE,
                                 "%s: label %d of item %d is outside 0..%d",
                                 path, y[i], i, limit - 1);
        if (y[i] > max)
            max = y[i];
    }
    *num_classes = max + 1;
    return 0;
}

/* Reads an IDX label file whose count must equal images->n into
 * images->y and images->num_classes. */
static int idx_read_labels(const char *path, const char *images_path,
                           data_set *images, tfq_error *e)
{
    data_file f;
    uint32_t hdr[2];
    int rc = data_file_open(&f, path, e);
    if (rc != 0)
        goto fail;
    rc = idx_read_header(&f, IDX_LABELS_MAGIC, "labels", hdr,
                         IDX_LABELS_HEADER_BYTES, e);
    if (rc != 0)
        goto fail;
    if (hdr[1] != (uint32_t)images->n) {
        rc = tfq_error_set(e, TFQ_EMISMATCH,
                           "%s: holds %u labels but %s holds %d images", path,
                           hdr[1], images_path, images->n);
        goto fail;
    }
    rc = data_file_read_payload(&f, IDX_LABELS_HEADER_BYTES, hdr[1],
                                "label data", &images->y, e);
    if (rc != 0)
        goto fail;
    rc = data_check_labels(path, images->y, images->n, DATA_MAX_CLASSES,
                           &images->num_classes, e);

fail:
    data_file_close(&f);
    return rc;
}

int data_idx_read(const char *images_path, const char *labels_path,
                  data_set *out, tfq_error *e)
{
    data_set d = {0};
    int rc = idx_read_images(images_path, &d, e);
    if (rc != 0)
        goto fail;
    rc = idx_read_labels(labels_path, images_path, &d, e);
    if (rc != 0)
        goto fail;
    *out = d;
    return 0;

fail:
    data_release(&d);
    memset(out, 0, sizeof *out);
    return rc;
}

/* ---- CIFAR --------------------------------------------------------------- */

/* Number of records in a CIFAR file, from its size. */
static int cifar_count_records(const char *path, size_t record_bytes,
                               int *records, tfq_error *e)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return tfq_error_set(e, TFQ_ENOENT, "%s: no such file", path);
        return tfq_error_set(e, TFQ_EIO, "%s: cannot stat: %s", path,
                             strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return tfq_error_set(e, TFQ_EIO, "%s: not a regular file", path);
    uint64_t bytes = (uint64_t)st.st_size;
    if (bytes == 0)
        return tfq_error_set(e, TFQ_EFORMAT, "%s: empty file, no records",
                             path);
    if (bytes % record_bytes != 0)
        return tfq_error_set(e, TFQ_EFORMAT,
                             "%s: size %llu bytes is not a multiple of the "
                             "%zu-byte record",
                             path, (unsigned long long)bytes, record_bytes);
    if (bytes / record_bytes > INT_MAX)
        return tfq_error_set(e, TFQ_ERANGE, "%s: too many records", path);
    *records = (int)(bytes / record_bytes);
    return 0;
}

/* Reads `records` records of one CIFAR file into x and y (each already
 * sized for them), taking the label at label_offset of each record. */
static int cifar_read_file(const char *path, int records,
                           size_t record_label_bytes, size_t label_offset,
                           uint8_t *x, uint8_t *y, tfq_error *e)
{
    int rc = 0;
    size_t record_bytes = record_label_bytes + CIFAR_PIXEL_BYTES;
    uint8_t *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rc = tfq_error_set(e, errno == ENOENT ? TFQ_ENOENT : TFQ_EIO,
                           "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    buf = malloc(CIFAR_CHUNK_RECORDS * record_bytes);
    if (buf == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int done = 0; done < records;) {
        size_t want = (size_t)(records - done);
        if (want > CIFAR_CHUNK_RECORDS)
            want = CIFAR_CHUNK_RECORDS;
        size_t got = fread(buf, record_bytes, want, f);
        if (got < want) {
            rc = ferror(f)
                     ? tfq_error_set(e, TFQ_EIO, "%s: read error: %s", path,
                                     strerror(errno))
                     : tfq_error_set(e, TFQ_ETRUNC,
                                     "%s: truncated: expected %d records, "
                                     "got %zu",
                                     path, records, (size_t)done + got);
            goto fail;
        }
        for (size_t r = 0; r < got; r++, done++) {
            const uint8_t *rec = buf + r * record_bytes;
            y[done] = rec[label_offset];
            memcpy(x + (size_t)done * CIFAR_PIXEL_BYTES,
                   rec + record_label_bytes, CIFAR_PIXEL_BYTES);
        }
    }
    if (fgetc(f) != EOF) {
        rc = tfq_error_set(e, TFQ_EFORMAT,
                           "%s: file grew while being read (expected %d "
                           "records)",
                           path, records);
        goto fail;
    }

fail:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

int data_cifar_read(const char *const *paths, int npaths,
                    int record_label_bytes, int label_offset,
                    int num_classes, data_set *out, tfq_error *e)
{
    int rc = 0;
    int *counts = NULL;
    data_set d = {0};
    if (paths == NULL || npaths <= 0 || record_label_bytes < 1 ||
        record_label_bytes > 2 || label_offset < 0 ||
        label_offset >= record_label_bytes || num_classes < 1 ||
        num_classes > DATA_MAX_CLASSES) {
        rc = tfq_error_set(e, TFQ_EINVAL,
                           "CIFAR reader: bad arguments (%d files, %d label "
                           "bytes, label offset %d, %d classes)",
                           npaths, record_label_bytes, label_offset,
                           num_classes);
        goto fail;
    }
    size_t record_bytes = (size_t)record_label_bytes + CIFAR_PIXEL_BYTES;
    counts = malloc((size_t)npaths * sizeof *counts);
    if (counts == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "CIFAR reader: out of memory");
        goto fail;
    }
    int64_t total = 0;
    for (int i = 0; i < npaths; i++) {
        rc = cifar_count_records(paths[i], record_bytes, &counts[i], e);
        if (rc != 0)
            goto fail;
        total += counts[i];
    }
    if (total > INT_MAX) {
        rc = tfq_error_set(e, TFQ_ERANGE, "%s: too many records in all",
                           paths[npaths - 1]);
        goto fail;
    }

    d.n = (int)total;
    d.c = CIFAR_CHANNELS;
    d.h = CIFAR_SIDE;
    d.w = CIFAR_SIDE;
    d.num_classes = num_classes;
    d.x = malloc((size_t)d.n * CIFAR_PIXEL_BYTES);
    d.y = malloc((size_t)d.n);
    if (d.x == NULL || d.y == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory for %d images",
                           paths[0], d.n);
        goto fail;
    }
    int at = 0;
    for (int i = 0; i < npaths; i++) {
        rc = cifar_read_file(paths[i], counts[i], (size_t)record_label_bytes,
                             (size_t)label_offset,
                             d.x + (size_t)at * CIFAR_PIXEL_BYTES, d.y + at,
                             e);
        if (rc != 0)
            goto fail;
        int unused;
        rc = data_check_labels(paths[i], d.y + at, counts[i], num_classes,
                               &unused, e);
        if (rc != 0)
            goto fail;
        at += counts[i];
    }
    free(counts);
    *out = d;
    return 0;

fail:
    free(counts);
    data_release(&d);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- directories and fingerprints ---------------------------------------- */

static int data_join(char out[DATA_PATH_BYTES], const char *dir,
                     const char *name, const char *suffix, tfq_error *e)
{
    int len = snprintf(out, DATA_PATH_BYTES, "%s/%s%s", dir, name, suffix);
    if (len < 0 || len >= DATA_PATH_BYTES)
        return tfq_error_set(e, TFQ_EINVAL, "%s/%s%s: path too long", dir,
                             name, suffix);
    return 0;
}

/* Finds dir/name or else dir/name.gz. */
static int data_find_idx(char out[DATA_PATH_BYTES], const char *dir,
                         const char *name, tfq_error *e)
{
    struct stat st;
    int rc = data_join(out, dir, name, "", e);
    if (rc != 0 || stat(out, &st) == 0)
        return rc;
    rc = data_join(out, dir, name, ".gz", e);
    if (rc != 0 || stat(out, &st) == 0)
        return rc;
    return tfq_error_set(e, TFQ_ENOENT, "%s/%s: no such file (nor %s.gz)",
                         dir, name, name);
}

/* The files data_load reads, in fingerprint order: train files first. */
typedef struct {
    char paths[6][DATA_PATH_BYTES];
    int ntrain, ntest;
} data_files;

/* Hex SHA-256 over, for each file of fs in order, its base name (with its
 * NUL) and the SHA-256 of its raw bytes. */
static int data_fingerprint(const data_files *fs, char out[HASH_HEX_BYTES],
                            tfq_error *e)
{
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    for (int i = 0; i < fs->ntrain + fs->ntest; i++) {
        const char *path = fs->paths[i];
        uint8_t digest[HASH_BYTES];
        int rc = hash_sha256_file(path, digest, e);
        if (rc != 0)
            return rc;
        const char *slash = strrchr(path, '/');
        const char *base = slash != NULL ? slash + 1 : path;
        hash_sha256_update(&h, base, strlen(base) + 1);
        hash_sha256_update(&h, digest, sizeof digest);
    }
    uint8_t digest[HASH_BYTES];
    hash_sha256_final(&h, digest);
    hash_hex(digest, out);
    return 0;
}

static int data_files_idx(const char *dir, data_files *fs, tfq_error *e)
{
    static const char *const names[4] = {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    };
    for (int i = 0; i < 4; i++) {
        int rc = data_find_idx(fs->paths[i], dir, names[i], e);
        if (rc != 0)
            return rc;
    }
    fs->ntrain = 2;
    fs->ntest = 2;
    return 0;
}

static int data_files_cifar(data_kind kind, const char *dir, data_files *fs,
                            tfq_error *e)
{
    static const char *const cifar10[6] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
    };
    static const char *const cifar100[2] = {"train.bin", "test.bin"};
    const char *const *names = kind == DATA_KIND_CIFAR10 ? cifar10 : cifar100;
    fs->ntrain = kind == DATA_KIND_CIFAR10 ? 5 : 1;
    fs->ntest = 1;
    for (int i = 0; i < fs->ntrain + fs->ntest; i++) {
        int rc = data_join(fs->paths[i], dir, names[i], "", e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Reads files [first, first + count) of fs as one set of the given kind. */
static int data_read_part(data_kind kind, const data_files *fs, int first,
                          int count, data_set *out, tfq_error *e)
{
    if (kind == DATA_KIND_IDX)
        return data_idx_read(fs->paths[first], fs->paths[first + 1], out, e);
    const char *paths[5];
    for (int i = 0; i < count; i++)
        paths[i] = fs->paths[first + i];
    if (kind == DATA_KIND_CIFAR10)
        return data_cifar_read(paths, count, 1, 0, CIFAR10_CLASSES, out, e);
    return data_cifar_read(paths, count, 2, 0, CIFAR100_COARSE_CLASSES, out,
                           e);
}

int data_load(data_kind kind, const char *dir, data_set *train,
              data_set *test, char fingerprint[HASH_HEX_BYTES],
              tfq_error *e)
{
    int rc = 0;
    data_files *fs = NULL;
    data_set tr = {0}, te = {0};
    if (dir == NULL || (kind != DATA_KIND_IDX && kind != DATA_KIND_CIFAR10 &&
                        kind != DATA_KIND_CIFAR100)) {
        rc = tfq_error_set(e, TFQ_EINVAL, "data_load: bad arguments");
        goto fail;
    }
    fs = calloc(1, sizeof *fs);
    if (fs == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", dir);
        goto fail;
    }
    rc = kind == DATA_KIND_IDX ? data_files_idx(dir, fs, e)
                          : data_files_cifar(kind, dir, fs, e);
    if (rc != 0)
        goto fail;
    rc = data_read_part(kind, fs, 0, fs->ntrain, &tr, e);
    if (rc != 0)
        goto fail;
    rc = data_read_part(kind, fs, fs->ntrain, fs->ntest, &te, e);
    if (rc != 0)
        goto fail;
    if (tr.c != te.c || tr.h != te.h || tr.w != te.w) {
        rc = tfq_error_set(e, TFQ_EMISMATCH,
                           "%s: test images are %dx%dx%d but training images "
                           "are %dx%dx%d",
                           fs->paths[fs->ntrain], te.c, te.h, te.w, tr.c, tr.h,
                           tr.w);
        goto fail;
    }
    /* Either part may miss the highest classes; both share one label space. */
    if (tr.num_classes < te.num_classes)
        tr.num_classes = te.num_classes;
    te.num_classes = tr.num_classes;
    if (fingerprint != NULL) {
        rc = data_fingerprint(fs, fingerprint, e);
        if (rc != 0)
            goto fail;
    }
    free(fs);
    *train = tr;
    *test = te;
    return 0;

fail:
    free(fs);
    data_release(&tr);
    data_release(&te);
    if (train != NULL)
        memset(train, 0, sizeof *train);
    if (test != NULL)
        memset(test, 0, sizeof *test);
    return rc;
}

/* ---- subsets, release, normalisation, batches ---------------------------- */

/* out must not be src.  A subset that holds no image is TFQ_EINVAL too; on
 * failure *out is zeroed. */
int data_subset(const data_set *src, const int *classes, int nclasses,
                data_set *out, tfq_error *e)
{
    int rc = 0;
    data_set d = {0};
    int map[256];
    for (int i = 0; i < 256; i++)
        map[i] = -1;
    if (classes == NULL) {
        rc = tfq_error_set(e, TFQ_EINVAL, "subset: no class list");
        goto fail;
    }
    if (nclasses < 1 || nclasses > src->num_classes) {
        rc = tfq_error_set(e, TFQ_EINVAL,
                           "subset: %d classes listed, expected 1..%d",
                           nclasses, src->num_classes);
        goto fail;
    }
    for (int k = 0; k < nclasses; k++) {
        int c = classes[k];
        if (c < 0 || c >= src->num_classes || c > 255) {
            rc = tfq_error_set(e, TFQ_EINVAL,
                               "subset: class %d is outside 0..%d", c,
                               src->num_classes - 1);
            goto fail;
        }
        if (map[c] >= 0) {
            rc = tfq_error_set(e, TFQ_EINVAL, "subset: class %d listed twice",
                               c);
            goto fail;
        }
        map[c] = k;
    }

    for (int i = 0; i < src->n; i++)
        d.n += map[src->y[i]] >= 0;
    if (d.n == 0) {
        rc = tfq_error_set(e, TFQ_EINVAL,
                           "subset: no image has any of the %d listed classes",
                           nclasses);
        goto fail;
    }
    size_t image_bytes = (size_t)src->c * src->h * src->w;
    d.c = src->c;
    d.h = src->h;
    d.w = src->w;
    d.num_classes = nclasses;
    d.x = malloc((size_t)d.n * image_bytes);
    d.y = malloc((size_t)d.n);
    if (d.x == NULL || d.y == NULL) {
        rc = tfq_error_set(e, TFQ_ENOMEM, "subset: out of memory for %d images",
                           d.n);
        goto fail;
    }
    for (int i = 0, j = 0; i < src->n; i++) {
        int k = map[src->y[i]];
        if (k < 0)
            continue;
        memcpy(d.x + (size_t)j * image_bytes,
               src->x + (size_t)i * image_bytes, image_bytes);
        d.y[j++] = (uint8_t)k;
    }
    *out = d;
    return 0;

fail:
    data_release(&d);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    return rc;
}

void data_release(data_set *d)
{
    if (d == NULL)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* Uses a per-channel histogram so the sums are exact whatever n is.  A
 * channel without variance (or an empty set) gets std 1, so that data_batch
 * stays finite. */
void data_norm_compute(const data_set *d, data_norm *norm)
{
    int c = d->c < 3 ? d->c : 3;
    size_t plane = (size_t)d->h * d->w;
    memset(norm, 0, sizeof *norm);
    norm->c = c;
    for (int ch = 0; ch < c; ch++) {
        uint64_t hist[256] = {0};
        for (int i = 0; i < d->n; i++) {
            const uint8_t *p = d->x + ((size_t)i * d->c + ch) * plane;
            for (size_t k = 0; k < plane; k++)
                hist[p[k]]++;
        }
        double count = (double)d->n * (double)plane;
        double sum = 0, sum_sq = 0;
        for (int v = 0; v < 256; v++) {
            double x = v / 255.0;
            sum += x * (double)hist[v];
            sum_sq += x * x * (double)hist[v];
        }
        double mean = count > 0 ? sum / count : 0;
        double var = count > 0 ? sum_sq / count - mean * mean : 0;
        double std = var > 1e-12 ? sqrt(var) : 1.0;
        norm->mean[ch] = (float)mean;
        norm->std[ch] = (float)std;
    }
    for (int ch = c; ch < 3; ch++)
        norm->std[ch] = 1.0f;
}

/* One plane: dst[p] = src[p] * scale + offset. */
static void data_convert_plane(const uint8_t *restrict src,
                               float *restrict dst, size_t plane, float scale,
                               float offset)
{
    for (size_t p = 0; p < plane; p++)
        dst[p] = (float)src[p] * scale + offset;
}

void data_batch(const data_set *d, const data_norm *norm, const int *idx,
                int n, float *out, int *labels)
{
    size_t plane = (size_t)d->h * d->w;
    size_t image_bytes = (size_t)d->c * plane;
    for (int ch = 0; ch < d->c; ch++) {
        /* (x / 255 - mean) / std folded into one multiply-add. */
        float scale = 1.0f / (255.0f * norm->std[ch]);
        float offset = -norm->mean[ch] / norm->std[ch];
        float *dst = out + (size_t)ch * n * plane;
        for (int i = 0; i < n; i++)
            data_convert_plane(d->x + (size_t)idx[i] * image_bytes + ch * plane,
                               dst + (size_t)i * plane, plane, scale, offset);
    }
    if (labels != NULL)
        for (int i = 0; i < n; i++)
            labels[i] = d->y[idx[i]];
}
