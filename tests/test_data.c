/* Data set readers against small files written here (plain and gzip, whole
 * and broken), class subsets, batch conversion against a naive loop, the
 * directory fingerprint, and the real Fashion-MNIST when it is installed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "worker/engine/data.h"

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define CIFAR_RECORD_PIXELS 3072

static const char *s_dir; /* this process's temporary directory */

/* dir/name in one of a few rotating buffers, so a call can use several. */
static const char *tpath(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, sizeof bufs[0], "%s/%s", s_dir, name);
    return p;
}

static uint8_t pixel_of(size_t image, size_t k)
{
    return (uint8_t)(image * 37 + k * 11 + 5);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX image file: header then n images of rows x cols pixel_of bytes. */
static uint8_t *idx_images(uint32_t magic, uint32_t n, uint32_t rows,
                           uint32_t cols, size_t *len)
{
    size_t image = (size_t)rows * cols;
    *len = 16 + (size_t)n * image;
    uint8_t *b = malloc(*len);
    if (b == NULL)
        return NULL;
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < image; k++)
            b[16 + i * image + k] = pixel_of(i, k);
    return b;
}

/* An IDX label file: label of item i is i % nclasses. */
static uint8_t *idx_labels(uint32_t magic, uint32_t n, int nclasses,
                           size_t *len)
{
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len);
    if (b == NULL)
        return NULL;
    put_be32(b, magic);
    put_be32(b + 4, n);
    for (size_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % (size_t)nclasses);
    return b;
}

/* Writes the first len bytes of data to tpath(name), gzip if gz; frees
 * data.  Returns 0 on success. */
static int put_file(const char *name, uint8_t *data, size_t len, int gz)
{
    if (data == NULL)
        return -1;
    int rc = gz ? test_write_gz(tpath(name), data, len)
                : test_write_file(tpath(name), data, len);
    free(data);
    return rc;
}

/* Writes a well-formed IDX pair (images n x rows x cols, labels i % k). */
static int put_idx_pair(const char *images, const char *labels, uint32_t n,
                        uint32_t rows, uint32_t cols, int k, int gz)
{
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, n, rows, cols, &li);
    uint8_t *bl = idx_labels(0x801, n, k, &ll);
    int rc = put_file(images, bi, li, gz);
    return put_file(labels, bl, ll, gz) | rc;
}

/* Checks d holds what put_idx_pair wrote. */
static int check_idx_set(const data_set *d, int n, int rows, int cols, int k)
{
    CHECK_EQ_INT(d->n, n);
    CHECK_EQ_INT(d->c, 1);
    CHECK_EQ_INT(d->h, rows);
    CHECK_EQ_INT(d->w, cols);
    CHECK_EQ_INT(d->num_classes, n < k ? n : k);
    size_t image = (size_t)rows * cols;
    for (size_t i = 0; i < (size_t)n; i++) {
        CHECK_EQ_INT(d->y[i], i % (size_t)k);
        for (size_t p = 0; p < image; p++)
            CHECK_EQ_INT(d->x[i * image + p], pixel_of(i, p));
    }
    return 0;
}

/* Expects data_idx_read to fail with code, a message naming bad, and a
 * zeroed output. */
static int expect_idx_error(const char *images, const char *labels, int code,
                            const char *bad)
{
    data_set d = {.n = 99};
    tfq_error err = {0};
    int rc = data_idx_read(images, labels, &d, &err);
    CHECK_MSG(rc == code, "%s / %s: got %d (%s), want %d", images, labels, rc,
              err.msg, code);
    CHECK_EQ_INT(err.code, code);
    CHECK_MSG(strstr(err.msg, bad) != NULL, "message '%s' lacks '%s'",
              err.msg, bad);
    CHECK(d.n == 0 && d.x == NULL && d.y == NULL);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    return 0;
}

static int idx_plain(void)
{
    s_dir = test_tmpdir();
    CHECK(put_idx_pair("img", "lab", 7, 5, 3, 4, 0) == 0);
    data_set d;
    tfq_error err = {0};
    CHECK_MSG(data_idx_read(tpath("img"), tpath("lab"), &d, &err) == 0, "%s",
              err.msg);
    CHECK(check_idx_set(&d, 7, 5, 3, 4) == 0);
    data_release(&d);
    CHECK(d.x == NULL && d.y == NULL && d.n == 0);
    data_release(&d); /* a zeroed set is fine */
    data_release(NULL);

    /* Non-square, single image, single class. */
    CHECK(put_idx_pair("img1", "lab1", 1, 2, 9, 1, 0) == 0);
    CHECK(data_idx_read(tpath("img1"), tpath("lab1"), &d, &err) == 0);
    CHECK(check_idx_set(&d, 1, 2, 9, 1) == 0);
    data_release(&d);

    test_rmtree(s_dir);
    return 0;
}

static int idx_gzip(void)
{
    s_dir = test_tmpdir();
    data_set d;
    tfq_error err = {0};

    /* Larger than zlib's internal buffer, so several inflate calls. */
    CHECK(put_idx_pair("img.gz", "lab.gz", 300, 28, 28, 10, 1) == 0);
    CHECK_MSG(data_idx_read(tpath("img.gz"), tpath("lab.gz"), &d, &err) == 0,
              "%s", err.msg);
    CHECK(check_idx_set(&d, 300, 28, 28, 10) == 0);
    data_release(&d);

    /* Detected by content, not name: gzip without .gz, plain with .gz. */
    CHECK(put_idx_pair("img2", "lab2.gz", 11, 4, 6, 3, 1) == 0);
    CHECK(put_idx_pair("img3.gz", "lab3", 11, 4, 6, 3, 0) == 0);
    CHECK(data_idx_read(tpath("img2"), tpath("lab3"), &d, &err) == 0);
    CHECK(check_idx_set(&d, 11, 4, 6, 3) == 0);
    data_release(&d);
    CHECK(data_idx_read(tpath("img3.gz"), tpath("lab2.gz"), &d, &err) == 0);
    CHECK(check_idx_set(&d, 11, 4, 6, 3) == 0);
    data_release(&d);

    /* data_load over a directory: gzip only for train; both for test,
     * where the plain file (5 images) must win over the .gz one (9). */
    CHECK(put_idx_pair("train-images-idx3-ubyte.gz",
                       "train-labels-idx1-ubyte.gz", 20, 3, 3, 5, 1) == 0);
    CHECK(put_idx_pair("t10k-images-idx3-ubyte.gz",
                       "t10k-labels-idx1-ubyte.gz", 9, 3, 3, 5, 1) == 0);
    CHECK(put_idx_pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 5,
                       3, 3, 5, 0) == 0);
    data_set train, test;
    char fp[HASH_HEX_BYTES];
    CHECK_MSG(data_load(DATA_KIND_IDX, s_dir, &train, &test, fp, &err) == 0, "%s",
              err.msg);
    CHECK(check_idx_set(&train, 20, 3, 3, 5) == 0);
    CHECK_EQ_INT(test.n, 5);
    CHECK_EQ_INT(test.num_classes, 5);
    CHECK_EQ_INT(strlen(fp), 64);
    data_release(&train);
    data_release(&test);

    test_rmtree(s_dir);
    return 0;
}

static int idx_broken(void)
{
    s_dir = test_tmpdir();
    size_t len;
    uint8_t *b;
    CHECK(put_idx_pair("img", "lab", 10, 4, 4, 3, 0) == 0);
    CHECK(put_idx_pair("img.gz", "lab.gz", 10, 4, 4, 3, 1) == 0);

    /* Wrong magic: swapped files, and garbage. */
    CHECK(!expect_idx_error(tpath("lab"), tpath("lab"), TFQ_EMAGIC,
                            tpath("lab")));
    CHECK(!expect_idx_error(tpath("img"), tpath("img"), TFQ_EMAGIC,
                            tpath("img")));
    b = idx_images(0x12345678, 10, 4, 4, &len);
    CHECK(put_file("magic.gz", b, len, 1) == 0);
    CHECK(!expect_idx_error(tpath("magic.gz"), tpath("lab"), TFQ_EMAGIC,
                            tpath("magic.gz")));

    /* Truncated images, plain and gzip, in the pixels and in the header. */
    b = idx_images(0x803, 10, 4, 4, &len);
    CHECK(put_file("short", b, len - 1, 0) == 0);
    CHECK(!expect_idx_error(tpath("short"), tpath("lab"), TFQ_ETRUNC,
                            tpath("short")));
    b = idx_images(0x803, 10, 4, 4, &len);
    CHECK(put_file("short.gz", b, 100, 1) == 0);
    CHECK(!expect_idx_error(tpath("short.gz"), tpath("lab"), TFQ_ETRUNC,
                            "expected 176 bytes of image data, got 100"));
    b = idx_images(0x803, 10, 4, 4, &len);
    CHECK(put_file("hdr", b, 10, 0) == 0);
    CHECK(!expect_idx_error(tpath("hdr"), tpath("lab"), TFQ_ETRUNC,
                            tpath("hdr")));

    /* A gzip stream cut in the middle, and one cut just before its CRC and
     * length trailer (all pixels present). */
    struct stat st;
    CHECK(stat(tpath("img.gz"), &st) == 0);
    FILE *f = fopen(tpath("img.gz"), "rb");
    CHECK(f != NULL);
    size_t zlen = (size_t)st.st_size;
    b = malloc(zlen);
    size_t got = b ? fread(b, 1, zlen, f) : 0;
    fclose(f);
    CHECK(got == zlen);
    CHECK(test_write_file(tpath("cut.gz"), b, zlen / 2) == 0);
    CHECK(test_write_file(tpath("cut_trailer.gz"), b, zlen - 8) == 0);
    b[zlen - 8] ^= 0x01; /* first byte of the CRC-32 */
    CHECK(put_file("bad_crc.gz", b, zlen, 0) == 0);
    CHECK(!expect_idx_error(tpath("bad_crc.gz"), tpath("lab"), TFQ_EFORMAT,
                            tpath("bad_crc.gz")));
    CHECK(!expect_idx_error(tpath("cut.gz"), tpath("lab"), TFQ_ETRUNC,
                            tpath("cut.gz")));
    CHECK(!expect_idx_error(tpath("cut_trailer.gz"), tpath("lab"), TFQ_ETRUNC,
                            tpath("cut_trailer.gz")));

    /* Truncated labels, plain and gzip. */
    b = idx_labels(0x801, 10, 3, &len);
    CHECK(put_file("lshort", b, len - 3, 0) == 0);
    CHECK(!expect_idx_error(tpath("img"), tpath("lshort"), TFQ_ETRUNC,
                            tpath("lshort")));
    b = idx_labels(0x801, 10, 3, &len);
    CHECK(put_file("lshort.gz", b, len - 1, 1) == 0);
    CHECK(!expect_idx_error(tpath("img.gz"), tpath("lshort.gz"), TFQ_ETRUNC,
                            "expected 18 bytes of label data, got 17"));

    /* Counts that disagree, and trailing bytes after the data. */
    b = idx_labels(0x801, 9, 3, &len);
    CHECK(put_file("l9", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("img"), tpath("l9"), TFQ_EMISMATCH,
                            tpath("l9")));
    b = idx_labels(0x801, 11, 3, &len);
    CHECK(put_file("l11.gz", b, len, 1) == 0);
    CHECK(!expect_idx_error(tpath("img"), tpath("l11.gz"), TFQ_EMISMATCH,
                            tpath("img")));
    b = idx_labels(0x801, 11, 3, &len);
    put_be32(b + 4, 10);
    CHECK(put_file("ltrail", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("img"), tpath("ltrail"), TFQ_EFORMAT,
                            tpath("ltrail")));

    /* Empty files, plain and gzip; a missing file. */
    CHECK(test_write_file(tpath("empty"), "", 0) == 0);
    CHECK(test_write_gz(tpath("empty.gz"), "", 0) == 0);
    CHECK(!expect_idx_error(tpath("empty"), tpath("lab"), TFQ_ETRUNC,
                            tpath("empty")));
    CHECK(!expect_idx_error(tpath("img"), tpath("empty.gz"), TFQ_ETRUNC,
                            tpath("empty.gz")));
    CHECK(!expect_idx_error(tpath("nope"), tpath("lab"), TFQ_ENOENT,
                            tpath("nope")));
    CHECK(!expect_idx_error(tpath("img"), tpath("nope"), TFQ_ENOENT,
                            tpath("nope")));
    CHECK(!expect_idx_error(s_dir, tpath("lab"), TFQ_EIO, s_dir));

    /* Zero images; absurd sizes (the counts would need terabytes). */
    b = idx_images(0x803, 0, 4, 4, &len);
    CHECK(put_file("zero", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("zero"), tpath("lab"), TFQ_EFORMAT,
                            tpath("zero")));
    b = idx_images(0x803, 1, 4, 4, &len);
    put_be32(b + 8, 0);
    CHECK(put_file("rows0", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("rows0"), tpath("lab"), TFQ_ERANGE,
                            tpath("rows0")));
    b = idx_images(0x803, 1, 4, 4, &len);
    put_be32(b + 4, 2000000000);
    put_be32(b + 12, 5000);
    CHECK(put_file("wide.gz", b, len, 1) == 0);
    CHECK(!expect_idx_error(tpath("wide.gz"), tpath("lab"), TFQ_ERANGE,
                            tpath("wide.gz")));
    b = idx_images(0x803, 1, 4, 4, &len);
    put_be32(b + 4, 2000000000);
    put_be32(b + 8, 4096);
    put_be32(b + 12, 4096);
    CHECK(put_file("huge.gz", b, len, 1) == 0);
    CHECK(!expect_idx_error(tpath("huge.gz"), tpath("lab"), TFQ_ETRUNC,
                            tpath("huge.gz")));
    b = idx_images(0x803, 1, 4, 4, &len);
    put_be32(b + 4, 0xffffffffu);
    CHECK(put_file("count", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("count"), tpath("lab"), TFQ_ERANGE,
                            tpath("count")));

    /* Label 255 would make 256 classes. */
    b = idx_labels(0x801, 10, 3, &len);
    b[8 + 4] = 255;
    CHECK(put_file("l255", b, len, 0) == 0);
    CHECK(!expect_idx_error(tpath("img"), tpath("l255"), TFQ_ERANGE,
                            tpath("l255")));

    /* data_load: a missing file names the plain path; output is zeroed. */
    data_set tr = {.n = 5}, te = {.n = 5};
    tfq_error err = {0};
    CHECK_EQ_INT(data_load(DATA_KIND_IDX, s_dir, &tr, &te, NULL, &err), TFQ_ENOENT);
    CHECK_MSG(strstr(err.msg, tpath("train-images-idx3-ubyte")) != NULL, "%s",
              err.msg);
    CHECK(tr.n == 0 && te.n == 0 && tr.x == NULL && te.x == NULL);

    /* data_load: test images of another size than the training ones. */
    CHECK(put_idx_pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                       6, 4, 4, 2, 0) == 0);
    CHECK(put_idx_pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 6,
                       4, 5, 2, 0) == 0);
    CHECK_EQ_INT(data_load(DATA_KIND_IDX, s_dir, &tr, &te, NULL, &err),
                 TFQ_EMISMATCH);
    CHECK_MSG(strstr(err.msg, tpath("t10k-images-idx3-ubyte")) != NULL, "%s",
              err.msg);
    CHECK(tr.n == 0 && te.n == 0 && tr.x == NULL && te.x == NULL);

    /* Errors with a NULL tfq_error still return their code. */
    data_set d;
    CHECK_EQ_INT(data_idx_read(tpath("img"), tpath("l9"), &d, NULL),
                 TFQ_EMISMATCH);

    test_rmtree(s_dir);
    return 0;
}

/* CIFAR records: label bytes (coarse i % 20 or class i % 10, then fine
 * (i * 7) % 100), then pixel_of(first + i, k). */
static uint8_t *cifar_records(int n, int label_bytes, int first, size_t *len)
{
    size_t rec = (size_t)label_bytes + CIFAR_RECORD_PIXELS;
    *len = (size_t)n * rec;
    uint8_t *b = malloc(*len);
    if (b == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        uint8_t *r = b + (size_t)i * rec;
        int g = first + i;
        if (label_bytes == 1) {
            r[0] = (uint8_t)(g % 10);
        } else {
            r[0] = (uint8_t)(g % 20);
            r[1] = (uint8_t)((g * 7) % 100);
        }
        for (size_t k = 0; k < CIFAR_RECORD_PIXELS; k++)
            r[label_bytes + k] = pixel_of((size_t)g, k);
    }
    return b;
}

static int put_cifar(const char *name, int n, int label_bytes, int first)
{
    size_t len;
    uint8_t *b = cifar_records(n, label_bytes, first, &len);
    return put_file(name, b, len, 0);
}

/* Checks images [0, n) of d are records [first, first + n). */
static int check_cifar_set(const data_set *d, int n, int classes, int first)
{
    CHECK_EQ_INT(d->n, n);
    CHECK_EQ_INT(d->c, 3);
    CHECK_EQ_INT(d->h, 32);
    CHECK_EQ_INT(d->w, 32);
    CHECK_EQ_INT(d->num_classes, classes);
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(d->y[i], (first + i) % classes);
        for (size_t k = 0; k < CIFAR_RECORD_PIXELS; k++)
            CHECK_EQ_INT(d->x[(size_t)i * CIFAR_RECORD_PIXELS + k],
                         pixel_of((size_t)(first + i), k));
    }
    return 0;
}

static int cifar10(void)
{
    s_dir = test_tmpdir();
    static const char *const names[6] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
    };
    /* Batch b holds records 4b .. 4b+3 except batch 3 (index 2), which
     * holds 300 so that a read spans several chunks. */
    int first = 0, counts[6] = {4, 4, 300, 4, 4, 7};
    for (int i = 0; i < 6; i++) {
        CHECK(put_cifar(names[i], counts[i], 1, first) == 0);
        first += counts[i];
    }

    data_set d;
    tfq_error err = {0};
    const char *paths[2] = {tpath(names[1]), tpath(names[2])};
    CHECK_MSG(data_cifar_read(paths, 2, 1, 0, 10, &d, &err) == 0, "%s",
              err.msg);
    CHECK(check_cifar_set(&d, 304, 10, 4) == 0);
    data_release(&d);

    data_set train, test;
    char fp[HASH_HEX_BYTES];
    CHECK_MSG(data_load(DATA_KIND_CIFAR10, s_dir, &train, &test, fp, &err) == 0,
              "%s", err.msg);
    CHECK(check_cifar_set(&train, 316, 10, 0) == 0);
    CHECK(check_cifar_set(&test, 7, 10, 316) == 0);
    CHECK_EQ_INT(strlen(fp), 64);
    data_release(&train);
    data_release(&test);

    test_rmtree(s_dir);
    return 0;
}

static int cifar100(void)
{
    s_dir = test_tmpdir();
    CHECK(put_cifar("train.bin", 45, 2, 0) == 0);
    CHECK(put_cifar("test.bin", 5, 2, 45) == 0);

    data_set train, test;
    tfq_error err = {0};
    CHECK_MSG(data_load(DATA_KIND_CIFAR100, s_dir, &train, &test, NULL, &err) == 0,
              "%s", err.msg);
    CHECK(check_cifar_set(&train, 45, 20, 0) == 0);
    CHECK(check_cifar_set(&test, 5, 20, 45) == 0);
    data_release(&train);
    data_release(&test);

    /* label_offset 1 reads the fine label. */
    data_set d;
    const char *paths[1] = {tpath("train.bin")};
    CHECK_MSG(data_cifar_read(paths, 1, 2, 1, 100, &d, &err) == 0, "%s",
              err.msg);
    for (int i = 0; i < d.n; i++)
        CHECK_EQ_INT(d.y[i], (i * 7) % 100);
    data_release(&d);

    test_rmtree(s_dir);
    return 0;
}

/* Expects data_cifar_read to fail with code and a message naming bad. */
static int expect_cifar_error(const char *const *paths, int npaths,
                              int label_bytes, int offset, int classes,
                              int code, const char *bad)
{
    data_set d = {.n = 99};
    tfq_error err = {0};
    int rc = data_cifar_read(paths, npaths, label_bytes, offset, classes, &d,
                             &err);
    CHECK_MSG(rc == code, "got %d (%s), want %d", rc, err.msg, code);
    CHECK_EQ_INT(err.code, code);
    CHECK_MSG(strstr(err.msg, bad) != NULL, "message '%s' lacks '%s'",
              err.msg, bad);
    CHECK(d.n == 0 && d.x == NULL && d.y == NULL);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    return 0;
}

static int cifar_broken(void)
{
    s_dir = test_tmpdir();
    size_t len;
    uint8_t *b;
    CHECK(put_cifar("good", 3, 1, 0) == 0);

    b = cifar_records(3, 1, 0, &len);
    CHECK(put_file("odd", b, len - 1, 0) == 0);
    const char *odd[2] = {tpath("good"), tpath("odd")};
    CHECK(!expect_cifar_error(odd, 2, 1, 0, 10, TFQ_EFORMAT, tpath("odd")));

    /* The right size for CIFAR-10 is the wrong size for CIFAR-100. */
    const char *good[1] = {tpath("good")};
    CHECK(!expect_cifar_error(good, 1, 2, 0, 20, TFQ_EFORMAT, tpath("good")));

    CHECK(test_write_file(tpath("empty"), "", 0) == 0);
    const char *empty[1] = {tpath("empty")};
    CHECK(!expect_cifar_error(empty, 1, 1, 0, 10, TFQ_EFORMAT,
                              tpath("empty")));

    const char *missing[2] = {tpath("good"), tpath("missing")};
    CHECK(!expect_cifar_error(missing, 2, 1, 0, 10, TFQ_ENOENT,
                              tpath("missing")));

    /* A label outside the class count (records 0..2 have labels 0..2). */
    CHECK(!expect_cifar_error(good, 1, 1, 0, 2, TFQ_ERANGE, tpath("good")));

    /* Bad arguments. */
    CHECK(!expect_cifar_error(good, 0, 1, 0, 10, TFQ_EINVAL, "CIFAR"));
    CHECK(!expect_cifar_error(good, 1, 3, 0, 10, TFQ_EINVAL, "CIFAR"));
    CHECK(!expect_cifar_error(good, 1, 1, 1, 10, TFQ_EINVAL, "CIFAR"));
    CHECK(!expect_cifar_error(good, 1, 1, 0, 0, TFQ_EINVAL, "CIFAR"));

    /* data_load with one batch missing. */
    static const char *const names[5] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_4.bin",
        "data_batch_5.bin", "test_batch.bin",
    };
    for (int i = 0; i < 5; i++)
        CHECK(put_cifar(names[i], 2, 1, 0) == 0);
    data_set tr = {.n = 1}, te = {.n = 1};
    tfq_error err = {0};
    CHECK_EQ_INT(data_load(DATA_KIND_CIFAR10, s_dir, &tr, &te, NULL, &err),
                 TFQ_ENOENT);
    CHECK_MSG(strstr(err.msg, tpath("data_batch_3.bin")) != NULL, "%s",
              err.msg);
    CHECK(tr.n == 0 && te.n == 0 && tr.x == NULL && te.x == NULL);

    /* CIFAR-100 with a broken test file: the loaded train set is freed. */
    CHECK(put_cifar("train.bin", 4, 2, 0) == 0);
    b = cifar_records(4, 2, 0, &len);
    CHECK(put_file("test.bin", b, len - 5, 0) == 0);
    CHECK_EQ_INT(data_load(DATA_KIND_CIFAR100, s_dir, &tr, &te, NULL, &err),
                 TFQ_EFORMAT);
    CHECK_MSG(strstr(err.msg, tpath("test.bin")) != NULL, "%s", err.msg);
    CHECK(tr.n == 0 && te.n == 0 && tr.x == NULL && te.x == NULL);

    test_rmtree(s_dir);
    return 0;
}

/* A set with labels i % k and pixels pixel_of(i, p); NULL x on failure. */
static data_set make_set(int n, int c, int h, int w, int k)
{
    data_set d = {.n = n, .c = c, .h = h, .w = w, .num_classes = k};
    size_t image = (size_t)c * h * w;
    d.x = malloc((size_t)n * image);
    d.y = malloc((size_t)n);
    if (d.x == NULL || d.y == NULL) {
        data_release(&d);
        return d;
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        d.y[i] = (uint8_t)(i % (size_t)k);
        for (size_t p = 0; p < image; p++)
            d.x[i * image + p] = pixel_of(i, p);
    }
    return d;
}

/* Expects data_subset to refuse classes with TFQ_EINVAL. */
static int expect_subset_error(const data_set *src, const int *classes,
                               int nclasses)
{
    data_set out = {.n = 3};
    tfq_error err = {0};
    CHECK_EQ_INT(data_subset(src, classes, nclasses, &out, &err), TFQ_EINVAL);
    CHECK_EQ_INT(err.code, TFQ_EINVAL);
    CHECK(err.msg[0] != '\0');
    CHECK(out.n == 0 && out.x == NULL && out.y == NULL);
    fprintf(stderr, "  expected error: %s\n", err.msg);
    return 0;
}

static int subset(void)
{
    data_set src = make_set(23, 3, 2, 3, 5);
    CHECK(src.x != NULL);
    size_t image = 3 * 2 * 3;

    const int classes[2] = {3, 1};
    data_set s;
    tfq_error err = {0};
    CHECK_MSG(data_subset(&src, classes, 2, &s, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(s.num_classes, 2);
    CHECK_EQ_INT(s.c, 3);
    CHECK_EQ_INT(s.h, 2);
    CHECK_EQ_INT(s.w, 3);
    int j = 0;
    for (int i = 0; i < src.n; i++) {
        int want = src.y[i] == 3 ? 0 : src.y[i] == 1 ? 1 : -1;
        if (want < 0)
            continue;
        CHECK(j < s.n);
        CHECK_EQ_INT(s.y[j], want);
        CHECK(memcmp(s.x + (size_t)j * image, src.x + (size_t)i * image,
                     image) == 0);
        j++;
    }
    CHECK_EQ_INT(s.n, j);
    CHECK_EQ_INT(j, 9); /* labels 1 and 3 among i % 5, i < 23 */
    data_release(&s);

    /* All classes in reverse order: every image kept, labels mirrored. */
    const int all[5] = {4, 3, 2, 1, 0};
    CHECK(data_subset(&src, all, 5, &s, &err) == 0);
    CHECK_EQ_INT(s.n, src.n);
    for (int i = 0; i < s.n; i++)
        CHECK_EQ_INT(s.y[i], 4 - src.y[i]);
    CHECK(memcmp(s.x, src.x, (size_t)src.n * image) == 0);
    data_release(&s);

    const int twice[3] = {1, 2, 1};
    const int high[2] = {0, 5};
    const int negative[1] = {-1};
    const int six[6] = {0, 1, 2, 3, 4, 0};
    CHECK(!expect_subset_error(&src, twice, 3));
    CHECK(!expect_subset_error(&src, high, 2));
    CHECK(!expect_subset_error(&src, negative, 1));
    CHECK(!expect_subset_error(&src, classes, 0));
    CHECK(!expect_subset_error(&src, six, 6));
    CHECK(!expect_subset_error(&src, NULL, 1));

    /* A class with no image gives an empty subset, which is refused. */
    data_set few = make_set(3, 1, 2, 2, 5); /* labels 0, 1, 2 only */
    CHECK(few.x != NULL);
    const int absent[1] = {4};
    CHECK(!expect_subset_error(&few, absent, 1));
    data_release(&few);

    data_release(&src);
    return 0;
}

/* Naive reference for data_norm_compute: two passes in double. */
static void norm_naive(const data_set *d, double mean[3], double std[3])
{
    size_t plane = (size_t)d->h * d->w;
    for (int ch = 0; ch < d->c; ch++) {
        double sum = 0, count = (double)d->n * plane;
        for (int i = 0; i < d->n; i++)
            for (size_t p = 0; p < plane; p++)
                sum += d->x[((size_t)i * d->c + ch) * plane + p] / 255.0;
        mean[ch] = sum / count;
        double ss = 0;
        for (int i = 0; i < d->n; i++)
            for (size_t p = 0; p < plane; p++) {
                double v = d->x[((size_t)i * d->c + ch) * plane + p] / 255.0;
                ss += (v - mean[ch]) * (v - mean[ch]);
            }
        std[ch] = sqrt(ss / count);
    }
}

/* data_batch against the formula in the header, for idx (with repeats). */
static int check_batch(const data_set *d, const int *idx, int n)
{
    data_norm norm;
    data_norm_compute(d, &norm);
    double mean[3], std[3];
    norm_naive(d, mean, std);
    CHECK_EQ_INT(norm.c, d->c);
    for (int ch = 0; ch < d->c; ch++) {
        CHECK_NEAR(norm.mean[ch], mean[ch], 1e-6);
        CHECK_NEAR(norm.std[ch], std[ch], 1e-6);
    }

    size_t plane = (size_t)d->h * d->w;
    size_t total = (size_t)d->c * n * plane;
    float *out = malloc(total * sizeof *out);
    int *labels = malloc((size_t)n * sizeof *labels);
    CHECK(out != NULL && labels != NULL);
    data_batch(d, &norm, idx, n, out, labels);
    int bad = 0;
    for (int ch = 0; ch < d->c; ch++)
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < plane; p++) {
                uint8_t x = d->x[((size_t)idx[i] * d->c + ch) * plane + p];
                float want = ((float)x / 255.0f - norm.mean[ch]) / norm.std[ch];
                float got = out[((size_t)ch * n + i) * plane + p];
                if (fabsf(got - want) > 1e-5f * (1.0f + fabsf(want)))
                    bad++;
            }
    for (int i = 0; i < n; i++)
        bad += labels[i] != d->y[idx[i]];
    /* labels may be NULL. */
    data_batch(d, &norm, idx, n, out, NULL);
    free(out);
    free(labels);
    CHECK_EQ_INT(bad, 0);
    return 0;
}

static int batch(void)
{
    /* 3 channels, odd plane size (not a multiple of any vector width). */
    data_set rgb = make_set(9, 3, 5, 7, 4);
    CHECK(rgb.x != NULL);
    const int idx[6] = {8, 0, 3, 3, 5, 1};
    CHECK(check_batch(&rgb, idx, 6) == 0);

    /* The layout by hand: image 1's channel-2 plane sits at (2 * n + 1). */
    data_norm unit = {.c = 3, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    const int two[2] = {4, 7};
    float out[3 * 2 * 35];
    data_batch(&rgb, &unit, two, 2, out, NULL);
    CHECK_NEAR(out[(2 * 2 + 1) * 35 + 6], rgb.x[7 * 105 + 2 * 35 + 6] / 255.0,
               1e-6);
    CHECK_NEAR(out[(1 * 2 + 0) * 35 + 0], rgb.x[4 * 105 + 35] / 255.0, 1e-6);
    data_release(&rgb);

    data_set gray = make_set(17, 1, 28, 28, 10);
    CHECK(gray.x != NULL);
    int all[17];
    for (int i = 0; i < 17; i++)
        all[i] = 16 - i;
    CHECK(check_batch(&gray, all, 17) == 0);
    data_release(&gray);

    /* A constant channel gets std 1, so the batch stays finite. */
    data_set flat = make_set(2, 1, 1, 3, 1);
    CHECK(flat.x != NULL);
    memset(flat.x, 7, 6);
    data_norm norm;
    data_norm_compute(&flat, &norm);
    CHECK_NEAR(norm.std[0], 1.0, 0);
    const int second[1] = {1};
    data_batch(&flat, &norm, second, 1, out, NULL);
    CHECK_NEAR(out[0], 0.0, 1e-6);
    data_release(&flat);
    return 0;
}

static int load_fingerprint(char fp[HASH_HEX_BYTES])
{
    data_set train, test;
    tfq_error err = {0};
    CHECK_MSG(data_load(DATA_KIND_IDX, s_dir, &train, &test, fp, &err) == 0, "%s",
              err.msg);
    data_release(&train);
    data_release(&test);
    return 0;
}

static int fingerprint(void)
{
    s_dir = test_tmpdir();
    CHECK(put_idx_pair("train-images-idx3-ubyte.gz",
                       "train-labels-idx1-ubyte.gz", 12, 4, 4, 3, 1) == 0);
    CHECK(put_idx_pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 6,
                       4, 4, 3, 0) == 0);
    char a[HASH_HEX_BYTES], b[HASH_HEX_BYTES], c[HASH_HEX_BYTES];
    CHECK(load_fingerprint(a) == 0);
    CHECK(load_fingerprint(b) == 0);
    CHECK_EQ_INT(strlen(a), 64);
    CHECK(strcmp(a, b) == 0);

    /* One label byte of one file changes (still a valid label). */
    size_t len;
    uint8_t *l = idx_labels(0x801, 6, 3, &len);
    CHECK(l != NULL);
    l[8 + 5] = 0;
    CHECK(put_file("t10k-labels-idx1-ubyte", l, len, 0) == 0);
    CHECK(load_fingerprint(c) == 0);
    CHECK_MSG(strcmp(a, c) != 0, "fingerprint unchanged: %s", c);

    /* Restoring the byte restores the fingerprint. */
    CHECK(put_idx_pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 6,
                       4, 4, 3, 0) == 0);
    CHECK(load_fingerprint(c) == 0);
    CHECK(strcmp(a, c) == 0);

    /* The same bytes under another name (plain test images now found as
     * .gz) are another file set. */
    size_t li;
    uint8_t *img = idx_images(0x803, 6, 4, 4, &li);
    CHECK(put_file("t10k-images-idx3-ubyte.gz", img, li, 0) == 0);
    CHECK(remove(tpath("t10k-images-idx3-ubyte")) == 0);
    CHECK(load_fingerprint(c) == 0);
    CHECK(strcmp(a, c) != 0);

    test_rmtree(s_dir);
    return 0;
}

static int kind_names(void)
{
    static const struct {
        const char *name;
        data_kind kind;
    } ok[] = {
        {"idx", DATA_KIND_IDX},         {"mnist", DATA_KIND_IDX},
        {"fashion-mnist", DATA_KIND_IDX}, {"cifar10", DATA_KIND_CIFAR10},
        {"cifar100", DATA_KIND_CIFAR100},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        data_kind k = DATA_KIND_CIFAR100;
        CHECK_EQ_INT(data_kind_parse(ok[i].name, &k), 0);
        CHECK_EQ_INT(k, ok[i].kind);
    }
    data_kind k;
    CHECK_EQ_INT(data_kind_parse("cifar", &k), TFQ_EINVAL);
    CHECK_EQ_INT(data_kind_parse("", &k), TFQ_EINVAL);
    CHECK_EQ_INT(data_kind_parse(NULL, &k), TFQ_EINVAL);
    CHECK(strcmp(data_kind_name(DATA_KIND_IDX), "idx") == 0);
    CHECK(strcmp(data_kind_name(DATA_KIND_CIFAR10), "cifar10") == 0);
    CHECK(strcmp(data_kind_name(DATA_KIND_CIFAR100), "cifar100") == 0);
    return 0;
}

static int fashion_mnist_real(void)
{
    struct stat st;
    if (stat(FASHION_MNIST_DIR, &st) != 0) {
        fprintf(stderr, "note: %s not found, skipping\n", FASHION_MNIST_DIR);
        return 0;
    }
    data_set train, test;
    char fp[HASH_HEX_BYTES];
    tfq_error err = {0};
    CHECK_MSG(data_load(DATA_KIND_IDX, FASHION_MNIST_DIR, &train, &test, fp, &err)
                  == 0,
              "%s", err.msg);
    fprintf(stderr, "  fingerprint %s\n", fp);
    int per_train[256] = {0}, per_test[256] = {0};
    for (int i = 0; i < train.n; i++)
        per_train[train.y[i]]++;
    for (int i = 0; i < test.n; i++)
        per_test[test.y[i]]++;
    int n_train = train.n, n_test = test.n;
    int shape_ok = train.c == 1 && train.h == 28 && train.w == 28 &&
                   test.c == 1 && test.h == 28 && test.w == 28;
    int classes_ok = train.num_classes == 10 && test.num_classes == 10;
    data_release(&train);
    data_release(&test);
    CHECK_EQ_INT(n_train, 60000);
    CHECK_EQ_INT(n_test, 10000);
    CHECK(shape_ok);
    CHECK(classes_ok);
    for (int k = 0; k < 10; k++) {
        CHECK_EQ_INT(per_train[k], 6000);
        CHECK_EQ_INT(per_test[k], 1000);
    }
    return 0;
}

static const test_case cases[] = {
    {"idx_plain", idx_plain},
    {"idx_gzip", idx_gzip},
    {"idx_broken", idx_broken},
    {"cifar10", cifar10},
    {"cifar100", cifar100},
    {"cifar_broken", cifar_broken},
    {"subset", subset},
    {"batch", batch},
    {"fingerprint", fingerprint},
    {"kind_names", kind_names},
    {"fashion_mnist_real", fashion_mnist_real},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, 11);
}
