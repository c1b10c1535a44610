#include "datapack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"

/* What the fingerprint hashes before the header's fields, so that no other
 * SHA-256 of the same bytes is taken for a data set's identity. */
#define FP_DOMAIN "tfq-data-v1\n"
#define FP_DOMAIN_BYTES 12

/* The header's fields the fingerprint covers: bytes 12 .. 36. */
#define FP_FIELDS_OFFSET 12
#define FP_FIELDS_BYTES 24

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

size_t datapack_image_bytes(const datapack_header *h)
{
    return (size_t)h->c * h->h * h->w;
}

int64_t datapack_names_offset(const datapack_header *h)
{
    int64_t per = (int64_t)datapack_image_bytes(h) + 1;
    return DATAPACK_HEADER_BYTES + per * ((int64_t)h->n_train + h->n_test);
}

int64_t datapack_file_bytes(const datapack_header *h)
{
    return datapack_names_offset(h) + h->names_bytes;
}

static int header_check(const datapack_header *h, tfq_error *e)
{
    if (h->c < 1 || h->c > 4)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %u channels (1 to "
                             "4)", h->c);
    if (h->h < 1 || h->h > DATAPACK_MAX_SIDE || h->w < 1 ||
        h->w > DATAPACK_MAX_SIDE)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: images of %ux%u "
                             "(1 to %d a side)", h->h, h->w,
                             DATAPACK_MAX_SIDE);
    if (h->num_classes < 1 || h->num_classes > DATAPACK_MAX_CLASSES)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %u classes (1 to "
                             "%d)", h->num_classes, DATAPACK_MAX_CLASSES);
    if (h->n_train < 1 || h->n_test < 1 || h->n_train > DATAPACK_MAX_IMAGES ||
        h->n_test > DATAPACK_MAX_IMAGES)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %u training and "
                             "%u test images (1 to %u each)", h->n_train,
                             h->n_test, DATAPACK_MAX_IMAGES);
    if (h->names_bytes > h->num_classes * (DATAPACK_MAX_NAME_BYTES + 1u))
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %u bytes of class "
                             "names for %u classes", h->names_bytes,
                             h->num_classes);
    if (datapack_file_bytes(h) > DATAPACK_MAX_BYTES)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %lld bytes (at "
                             "most %lld)", (long long)datapack_file_bytes(h),
                             (long long)DATAPACK_MAX_BYTES);
    return 0;
}

int datapack_header_parse(const uint8_t *buf, size_t bytes,
                          datapack_header *h, tfq_error *e)
{
    if (bytes < DATAPACK_HEADER_BYTES)
        return tfq_error_set(e, TFQ_ETRUNC, "data pack: %zu bytes, shorter "
                             "than its %d-byte header", bytes,
                             DATAPACK_HEADER_BYTES);
    if (memcmp(buf, DATAPACK_MAGIC, 8) != 0)
        return tfq_error_set(e, TFQ_EMAGIC, "data pack: not a tfq data pack "
                             "(no \"TFQDATA\" magic)");
    uint32_t version = get_u32(buf + 8);
    if (version != DATAPACK_VERSION)
        return tfq_error_set(e, TFQ_EVERSION, "data pack: format version %u, "
                             "this tfq reads version %u", version,
                             DATAPACK_VERSION);
    for (int i = 40; i < DATAPACK_HEADER_BYTES; i++)
        if (buf[i] != 0)
            return tfq_error_set(e, TFQ_EFORMAT, "data pack: header byte %d "
                                 "is not zero", i);
    h->c = get_u32(buf + 12);
    h->h = get_u32(buf + 16);
    h->w = get_u32(buf + 20);
    h->num_classes = get_u32(buf + 24);
    h->n_train = get_u32(buf + 28);
    h->n_test = get_u32(buf + 32);
    h->names_bytes = get_u32(buf + 36);
    return header_check(h, e);
}

void datapack_header_write(const datapack_header *h,
                           uint8_t out[DATAPACK_HEADER_BYTES])
{
    memset(out, 0, DATAPACK_HEADER_BYTES);
    memcpy(out, DATAPACK_MAGIC, 8);
    put_u32(out + 8, DATAPACK_VERSION);
    put_u32(out + 12, h->c);
    put_u32(out + 16, h->h);
    put_u32(out + 20, h->w);
    put_u32(out + 24, h->num_classes);
    put_u32(out + 28, h->n_train);
    put_u32(out + 32, h->n_test);
    put_u32(out + 36, h->names_bytes);
}

int datapack_names_check(const char *names, size_t bytes,
                         uint32_t num_classes, tfq_error *e)
{
    if (bytes == 0)
        return 0;
    uint32_t k = 0;
    size_t start = 0;
    for (size_t i = 0; i < bytes; i++) {
        unsigned char ch = (unsigned char)names[i];
        if (ch != '\0') {
            if (ch < 0x20 || ch == 0x7f || ch == '/')
                return tfq_error_set(e, TFQ_EFORMAT, "data pack: class "
                                     "name %u holds byte 0x%02x", k, ch);
            continue;
        }
        if (i == start || i - start > DATAPACK_MAX_NAME_BYTES)
            return tfq_error_set(e, TFQ_EFORMAT, "data pack: class name %u "
                                 "is %zu bytes (1 to %d)", k, i - start,
                                 DATAPACK_MAX_NAME_BYTES);
        k++;
        start = i + 1;
    }
    if (start != bytes || k != num_classes)
        return tfq_error_set(e, TFQ_EFORMAT, "data pack: %u class names "
                             "for %u classes", k + (start != bytes),
                             num_classes);
    return 0;
}

const char *datapack_class_name(const datapack *p, int k)
{
    if (p->names == NULL || k < 0 || (uint32_t)k >= p->h.num_classes)
        return NULL;
    const char *s = p->names;
    for (int i = 0; i < k; i++)
        s += strlen(s) + 1;
    return s;
}

/* ---- streaming fingerprint --------------------------------------------- */

void datapack_hasher_init(datapack_hasher *d)
{
    memset(d, 0, sizeof *d);
    hash_sha256_init(&d->sha);
    hash_sha256_update(&d->sha, FP_DOMAIN, FP_DOMAIN_BYTES);
}

/* Takes the header once its 64 bytes are in. */
static int hasher_header(datapack_hasher *d, tfq_error *e)
{
    int rc = datapack_header_parse(d->head, DATAPACK_HEADER_BYTES, &d->h, e);
    if (rc != 0)
        return rc;
    hash_sha256_update(&d->sha, d->head + FP_FIELDS_OFFSET, FP_FIELDS_BYTES);
    if (d->h.names_bytes > 0 && (d->names = malloc(d->h.names_bytes)) == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "data pack: out of memory");
    return 0;
}

int datapack_hasher_update(datapack_hasher *d, const void *buf, size_t bytes,
                           tfq_error *e)
{
    const uint8_t *p = buf;
    while (bytes > 0) {
        if (d->seen < DATAPACK_HEADER_BYTES) {
            size_t take = (size_t)(DATAPACK_HEADER_BYTES - d->seen);
            take = take < bytes ? take : bytes;
            memcpy(d->head + d->seen, p, take);
            d->seen += (int64_t)take;
            p += take;
            bytes -= take;
            if (d->seen == DATAPACK_HEADER_BYTES && hasher_header(d, e) != 0)
                return e ? e->code : TFQ_EFORMAT;
            continue;
        }
        int64_t names_at = datapack_names_offset(&d->h);
        int64_t end = datapack_file_bytes(&d->h);
        if (d->seen + (int64_t)bytes > end)
            return tfq_error_set(e, TFQ_EFORMAT, "data pack: more than its "
                                 "%lld bytes", (long long)end);
        if (d->seen < names_at) {
            size_t take = (size_t)(names_at - d->seen);
            take = take < bytes ? take : bytes;
            hash_sha256_update(&d->sha, p, take);
            d->seen += (int64_t)take;
            p += take;
            bytes -= take;
            continue;
        }
        memcpy(d->names + (d->seen - names_at), p, bytes);
        d->seen += (int64_t)bytes;
        bytes = 0;
    }
    return 0;
}

int datapack_hasher_final(datapack_hasher *d, char fp[HASH_HEX_BYTES],
                          tfq_error *e)
{
    if (d->seen < DATAPACK_HEADER_BYTES ||
        d->seen != datapack_file_bytes(&d->h))
        return tfq_error_set(e, TFQ_ETRUNC, "data pack: %lld bytes, its "
                             "header says %lld", (long long)d->seen,
                             d->seen < DATAPACK_HEADER_BYTES
                                 ? (long long)DATAPACK_HEADER_BYTES
                                 : (long long)datapack_file_bytes(&d->h));
    int rc = datapack_names_check(d->names, d->h.names_bytes,
                                  d->h.num_classes, e);
    if (rc != 0)
        return rc;
    uint8_t digest[HASH_BYTES];
    hash_sha256_final(&d->sha, digest);
    hash_hex(digest, fp);
    return 0;
}

void datapack_hasher_release(datapack_hasher *d)
{
    free(d->names);
    d->names = NULL;
}

/* ---- canonical order ---------------------------------------------------- */

typedef struct {
    uint8_t digest[HASH_BYTES];
    uint32_t index;
} sort_key;

static int key_cmp(const void *a, const void *b)
{
    return memcmp(((const sort_key *)a)->digest,
                  ((const sort_key *)b)->digest, HASH_BYTES);
}

/* Sorts one set (n images of `image` bytes) by the digest of label and
 * pixels; what == "training" or "test" for errors. */
static int sort_set(uint8_t *y, uint8_t *x, uint32_t n, size_t image,
                    uint32_t classes, const char *what, tfq_error *e)
{
    sort_key *keys = malloc((size_t)n * sizeof *keys);
    uint8_t *tmp = malloc((size_t)n * image);
    uint8_t *ty = malloc(n);
    if (keys == NULL || tmp == NULL || ty == NULL) {
        free(keys);
        free(tmp);
        free(ty);
        return tfq_error_set(e, TFQ_ENOMEM, "data pack: out of memory "
                             "sorting %u %s images", n, what);
    }
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (y[i] >= classes) {
            rc = tfq_error_set(e, TFQ_EFORMAT, "data pack: %s image %u has "
                               "label %u of %u classes", what, i, y[i],
                               classes);
            break;
        }
        hash_sha256_ctx h;
        hash_sha256_init(&h);
        hash_sha256_update(&h, &y[i], 1);
        hash_sha256_update(&h, x + (size_t)i * image, image);
        hash_sha256_final(&h, keys[i].digest);
        keys[i].index = i;
    }
    if (rc == 0) {
        qsort(keys, n, sizeof *keys, key_cmp);
        for (uint32_t i = 0; i < n; i++) {
            memcpy(tmp + (size_t)i * image, x + (size_t)keys[i].index * image,
                   image);
            ty[i] = y[keys[i].index];
        }
        memcpy(x, tmp, (size_t)n * image);
        memcpy(y, ty, n);
    }
    free(keys);
    free(tmp);
    free(ty);
    return rc;
}

int datapack_canonicalize(datapack *p, tfq_error *e)
{
    int rc = header_check(&p->h, e);
    if (rc != 0)
        return rc;
    size_t image = datapack_image_bytes(&p->h);
    rc = sort_set(p->train_y, p->train_x, p->h.n_train, image,
                  p->h.num_classes, "training", e);
    if (rc == 0)
        rc = sort_set(p->test_y, p->test_x, p->h.n_test, image,
                      p->h.num_classes, "test", e);
    return rc;
}

/* The four content arrays in file order, and their sizes. */
static void content_parts(const datapack *p, const uint8_t *part[4],
                          size_t bytes[4])
{
    size_t image = datapack_image_bytes(&p->h);
    part[0] = p->train_y;
    bytes[0] = p->h.n_train;
    part[1] = p->train_x;
    bytes[1] = (size_t)p->h.n_train * image;
    part[2] = p->test_y;
    bytes[2] = p->h.n_test;
    part[3] = p->test_x;
    bytes[3] = (size_t)p->h.n_test * image;
}

void datapack_fingerprint(const datapack *p, char fp[HASH_HEX_BYTES])
{
    uint8_t head[DATAPACK_HEADER_BYTES], digest[HASH_BYTES];
    const uint8_t *part[4];
    size_t bytes[4];
    datapack_header_write(&p->h, head);
    content_parts(p, part, bytes);
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    hash_sha256_update(&h, FP_DOMAIN, FP_DOMAIN_BYTES);
    hash_sha256_update(&h, head + FP_FIELDS_OFFSET, FP_FIELDS_BYTES);
    for (int i = 0; i < 4; i++)
        hash_sha256_update(&h, part[i], bytes[i]);
    hash_sha256_final(&h, digest);
    hash_hex(digest, fp);
}

/* ---- files --------------------------------------------------------------- */

int datapack_write(const char *path, datapack *p, char fp[HASH_HEX_BYTES],
                   tfq_error *e)
{
    int rc = datapack_names_check(p->names, p->h.names_bytes,
                                  p->h.num_classes, e);
    if (rc == 0)
        rc = datapack_canonicalize(p, e);
    if (rc != 0)
        return rc;
    datapack_fingerprint(p, fp);
    uint8_t head[DATAPACK_HEADER_BYTES];
    const uint8_t *part[4];
    size_t bytes[4];
    datapack_header_write(&p->h, head);
    content_parts(p, part, bytes);
    file_part parts[6] = {{head, sizeof head}};
    for (int i = 0; i < 4; i++)
        parts[1 + i] = (file_part){part[i], bytes[i]};
    parts[5] = (file_part){p->names, p->h.names_bytes};
    return file_write_atomic(path, parts, 6, e);
}

static int read_exact(FILE *f, void *buf, size_t bytes)
{
    return bytes == 0 || fread(buf, 1, bytes, f) == bytes ? 0 : -1;
}

/* Reads the arrays that follow the header into p (allocated here). */
static int read_body(FILE *f, const char *path, datapack *p, tfq_error *e)
{
    size_t image = datapack_image_bytes(&p->h);
    p->train_y = malloc(p->h.n_train);
    p->train_x = malloc((size_t)p->h.n_train * image);
    p->test_y = malloc(p->h.n_test);
    p->test_x = malloc((size_t)p->h.n_test * image);
    if (p->h.names_bytes > 0)
        p->names = malloc(p->h.names_bytes);
    if (p->train_y == NULL || p->train_x == NULL || p->test_y == NULL ||
        p->test_x == NULL || (p->h.names_bytes > 0 && p->names == NULL))
        return tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory for %lld "
                             "bytes", path,
                             (long long)datapack_file_bytes(&p->h));
    const uint8_t *part[4];
    size_t bytes[4];
    content_parts(p, part, bytes);
    for (int i = 0; i < 4; i++)
        if (read_exact(f, (void *)part[i], bytes[i]) != 0)
            return tfq_error_set(e, TFQ_ETRUNC, "%s: truncated: shorter "
                                 "than the %lld bytes its header says",
                                 path, (long long)datapack_file_bytes(&p->h));
    if (read_exact(f, p->names, p->h.names_bytes) != 0 || fgetc(f) != EOF)
        return tfq_error_set(e, TFQ_ETRUNC, "%s: not the %lld bytes its "
                             "header says", path,
                             (long long)datapack_file_bytes(&p->h));
    return datapack_names_check(p->names, p->h.names_bytes, p->h.num_classes,
                                e) != 0
               ? tfq_error_wrap(e, TFQ_EFORMAT, "%s", path)
               : 0;
}

int datapack_read(const char *path, const char *expect_fp, datapack *p,
                  char fp[HASH_HEX_BYTES], tfq_error *e)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tfq_error_set(e, errno == ENOENT ? TFQ_ENOENT : TFQ_EIO,
                             "%s: %s", path, strerror(errno));
    uint8_t head[DATAPACK_HEADER_BYTES];
    size_t got = fread(head, 1, sizeof head, f);
    int rc = datapack_header_parse(head, got, &p->h, e);
    if (rc != 0)
        rc = tfq_error_wrap(e, rc, "%s", path);
    else
        rc = read_body(f, path, p, e);
    fclose(f);
    char have[HASH_HEX_BYTES];
    if (rc == 0) {
        datapack_fingerprint(p, have);
        if (expect_fp != NULL && strcmp(have, expect_fp) != 0)
            rc = tfq_error_set(e, TFQ_EMISMATCH, "%s: fingerprint %.12s..., "
                               "expected %.12s...", path, have, expect_fp);
    }
    if (rc != 0) {
        datapack_release(p);
        return rc;
    }
    if (fp != NULL)
        memcpy(fp, have, HASH_HEX_BYTES);
    return 0;
}

void datapack_release(datapack *p)
{
    if (p == NULL)
        return;
    free(p->train_y);
    free(p->train_x);
    free(p->test_y);
    free(p->test_x);
    free(p->names);
    memset(p, 0, sizeof *p);
}

int datapack_is_fingerprint(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}
