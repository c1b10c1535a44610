/* Data packs (common/datapack.h): the canonical order, the fingerprint
 * (streamed in any pieces and whole agree), files written and read back,
 * and headers and files that are wrong. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/datapack.h"

/* A pack of n_train + n_test random 1x3x2 images of 3 classes, named. */
static int make_pack(datapack *p, uint32_t n_train, uint32_t n_test,
                     uint32_t seed)
{
    memset(p, 0, sizeof *p);
    p->h = (datapack_header){1, 3, 2, 3, n_train, n_test, 0};
    size_t image = datapack_image_bytes(&p->h);
    p->train_y = malloc(n_train);
    p->train_x = malloc(n_train * image);
    p->test_y = malloc(n_test);
    p->test_x = malloc(n_test * image);
    static const char names[] = "cat\0dog\0ship";
    p->names = malloc(sizeof names);
    if (!p->train_y || !p->train_x || !p->test_y || !p->test_x || !p->names)
        return -1;
    memcpy(p->names, names, sizeof names);
    p->h.names_bytes = sizeof names;
    uint32_t s = seed * 2654435761u + 1;
    for (uint32_t i = 0; i < n_train * image; i++)
        p->train_x[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    for (uint32_t i = 0; i < n_test * image; i++)
        p->test_x[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    for (uint32_t i = 0; i < n_train; i++)
        p->train_y[i] = (uint8_t)(i % 3);
    for (uint32_t i = 0; i < n_test; i++)
        p->test_y[i] = (uint8_t)((i + 1) % 3);
    return 0;
}

/* Reverses the order of the training images (and their labels). */
static void reverse_train(datapack *p)
{
    size_t image = datapack_image_bytes(&p->h);
    uint8_t tmp[64];
    for (uint32_t i = 0, j = p->h.n_train - 1; i < j; i++, j--) {
        uint8_t t = p->train_y[i];
        p->train_y[i] = p->train_y[j];
        p->train_y[j] = t;
        memcpy(tmp, p->train_x + i * image, image);
        memcpy(p->train_x + i * image, p->train_x + j * image, image);
        memcpy(p->train_x + j * image, tmp, image);
    }
}

/* Two copies in different orders canonicalize to the same pack. */
static int datapack_order(void)
{
    datapack a, b;
    CHECK(make_pack(&a, 50, 9, 1) == 0);
    CHECK(make_pack(&b, 50, 9, 1) == 0);
    reverse_train(&b);
    CHECK(memcmp(a.train_x, b.train_x, 6 * 50) != 0);
    tfq_error e = {0};
    CHECK(datapack_canonicalize(&a, &e) == 0);
    CHECK(datapack_canonicalize(&b, &e) == 0);
    CHECK(memcmp(a.train_x, b.train_x, 6 * 50) == 0);
    CHECK(memcmp(a.train_y, b.train_y, 50) == 0);
    char fa[HASH_HEX_BYTES], fb[HASH_HEX_BYTES];
    datapack_fingerprint(&a, fa);
    datapack_fingerprint(&b, fb);
    CHECK(strcmp(fa, fb) == 0 && datapack_is_fingerprint(fa));
    /* One pixel changed, or one label: another fingerprint. */
    b.test_x[5] ^= 1;
    datapack_fingerprint(&b, fb);
    CHECK(strcmp(fa, fb) != 0);
    b.test_x[5] ^= 1;
    b.train_y[7] = (uint8_t)((b.train_y[7] + 1) % 3);
    datapack_fingerprint(&b, fb);
    CHECK(strcmp(fa, fb) != 0);
    b.train_y[7] = a.train_y[7];
    /* Renaming a class changes no fingerprint. */
    b.names[0] = 'b';
    datapack_fingerprint(&b, fb);
    CHECK(strcmp(fa, fb) == 0);
    CHECK(strcmp(datapack_class_name(&b, 2), "ship") == 0);
    CHECK(datapack_class_name(&b, 3) == NULL);
    datapack_release(&a);
    datapack_release(&b);
    return 0;
}

static long file_bytes(const char *path, uint8_t **buf)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    *buf = malloc((size_t)n);
    if (*buf == NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n)
        n = -1;
    fclose(f);
    return n;
}

/* Written, read back, and streamed in pieces of every size from 1 to 97:
 * the same fingerprint each way. */
static int datapack_file_roundtrip(void)
{
    datapack p, q;
    CHECK(make_pack(&p, 40, 7, 2) == 0);
    char path[512], fp[HASH_HEX_BYTES], fq[HASH_HEX_BYTES];
    snprintf(path, sizeof path, "%s/x.tfqd", test_tmpdir());
    tfq_error e = {0};
    CHECK_MSG(datapack_write(path, &p, fp, &e) == 0, "%s", e.msg);
    CHECK_MSG(datapack_read(path, fp, &q, fq, &e) == 0, "%s", e.msg);
    CHECK(strcmp(fp, fq) == 0);
    CHECK(memcmp(&p.h, &q.h, sizeof p.h) == 0);
    CHECK(memcmp(p.test_x, q.test_x, 6 * 7) == 0);
    CHECK(strcmp(datapack_class_name(&q, 1), "dog") == 0);
    datapack_release(&q);
    uint8_t *buf = NULL;
    long n = file_bytes(path, &buf);
    CHECK(n == datapack_file_bytes(&p.h));
    for (size_t piece = 1; piece < 98; piece++) {
        datapack_hasher d;
        datapack_hasher_init(&d);
        for (long off = 0; off < n; off += (long)piece) {
            size_t take = (size_t)(n - off) < piece ? (size_t)(n - off) : piece;
            CHECK(datapack_hasher_update(&d, buf + off, take, &e) == 0);
        }
        char fs[HASH_HEX_BYTES];
        CHECK_MSG(datapack_hasher_final(&d, fs, &e) == 0, "%s", e.msg);
        datapack_hasher_release(&d);
        CHECK(strcmp(fs, fp) == 0);
    }
    /* A wrong expected fingerprint is refused, naming both. */
    char other[HASH_HEX_BYTES];
    memset(other, 'a', 64);
    other[64] = '\0';
    CHECK(datapack_read(path, other, &q, NULL, &e) == TFQ_EMISMATCH);
    CHECK(strstr(e.msg, "aaaaaaaaaaaa") != NULL);
    /* A byte missing, or one more. */
    datapack_hasher d;
    datapack_hasher_init(&d);
    CHECK(datapack_hasher_update(&d, buf, (size_t)n - 1, &e) == 0);
    CHECK(datapack_hasher_final(&d, fq, &e) == TFQ_ETRUNC);
    CHECK(datapack_hasher_update(&d, buf + n - 1, 1, &e) == 0);
    CHECK(datapack_hasher_update(&d, buf, 1, &e) == TFQ_EFORMAT);
    datapack_hasher_release(&d);
    CHECK(test_write_file(path, buf, (size_t)n - 3) == 0);
    CHECK(datapack_read(path, NULL, &q, NULL, &e) == TFQ_ETRUNC);
    CHECK(q.train_x == NULL);
    free(buf);
    datapack_release(&p);
    datapack_release(&q);
    return 0;
}

/* Headers that lie are refused with what they say. */
static int datapack_bad_headers(void)
{
    datapack_header h = {1, 28, 28, 10, 100, 10, 0}, g;
    uint8_t head[DATAPACK_HEADER_BYTES];
    tfq_error e = {0};
    datapack_header_write(&h, head);
    CHECK(datapack_header_parse(head, sizeof head, &g, &e) == 0);
    CHECK(memcmp(&h, &g, sizeof h) == 0);
    CHECK(datapack_header_parse(head, 10, &g, &e) == TFQ_ETRUNC);
    head[0] = 'X';
    CHECK(datapack_header_parse(head, sizeof head, &g, &e) == TFQ_EMAGIC);
    datapack_header_write(&h, head);
    head[8] = 2;
    CHECK(datapack_header_parse(head, sizeof head, &g, &e) == TFQ_EVERSION);
    CHECK(strstr(e.msg, "version 2") != NULL);
    datapack_header bad[] = {
        {0, 28, 28, 10, 100, 10, 0},     {1, 5000, 28, 10, 100, 10, 0},
        {1, 28, 28, 0, 100, 10, 0},      {1, 28, 28, 300, 100, 10, 0},
        {1, 28, 28, 10, 0, 10, 0},       {3, 4096, 4096, 10, 100000, 10, 0},
        {1, 28, 28, 2, 100, 10, 100000},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        datapack_header_write(&bad[i], head);
        CHECK_MSG(datapack_header_parse(head, sizeof head, &g, &e) ==
                      TFQ_EFORMAT, "case %zu", i);
    }
    datapack_header_write(&h, head);
    head[50] = 1;
    CHECK(datapack_header_parse(head, sizeof head, &g, &e) == TFQ_EFORMAT);
    /* Names: the count must match, none empty, no '/' or control byte. */
    CHECK(datapack_names_check("a\0b", 4, 2, &e) == 0);
    CHECK(datapack_names_check("a\0b", 4, 3, &e) == TFQ_EFORMAT);
    CHECK(datapack_names_check("a\0\0", 3, 2, &e) == TFQ_EFORMAT);
    CHECK(datapack_names_check("a/b", 4, 1, &e) == TFQ_EFORMAT);
    CHECK(datapack_names_check("a\nb", 4, 1, &e) == TFQ_EFORMAT);
    CHECK(datapack_names_check("ab", 2, 1, &e) == TFQ_EFORMAT);
    /* A label past the classes is refused when canonicalizing. */
    datapack p;
    CHECK(make_pack(&p, 4, 2, 3) == 0);
    p.train_y[2] = 3;
    CHECK(datapack_canonicalize(&p, &e) == TFQ_EFORMAT);
    CHECK(strstr(e.msg, "training image 2") != NULL);
    datapack_release(&p);
    return 0;
}

static const test_case cases[] = {
    {"datapack_order", datapack_order},
    {"datapack_file_roundtrip", datapack_file_roundtrip},
    {"datapack_bad_headers", datapack_bad_headers},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
