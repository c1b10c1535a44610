/* SHA-256 against the FIPS 180-4 / NIST example vectors, the streaming
 * interface against the one-shot one, and file hashing. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/hash.h"

static void hex_of(const void *data, size_t bytes, char hex[HASH_HEX_BYTES])
{
    uint8_t digest[HASH_BYTES];
    hash_sha256(data, bytes, digest);
    hash_hex(digest, hex);
}

static int sha256_vectors(void)
{
    static const struct {
        const char *msg;
        const char *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc",
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char hex[HASH_HEX_BYTES];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        hex_of(vectors[i].msg, strlen(vectors[i].msg), hex);
        CHECK_MSG(strcmp(hex, vectors[i].hex) == 0, "\"%s\": got %s",
                  vectors[i].msg, hex);
    }

    /* One million 'a', fed in pieces of 1000 as the NIST example does. */
    char piece[1000];
    memset(piece, 'a', sizeof piece);
    hash_sha256_ctx h;
    hash_sha256_init(&h);
    for (int i = 0; i < 1000; i++)
        hash_sha256_update(&h, piece, sizeof piece);
    uint8_t digest[HASH_BYTES];
    hash_sha256_final(&h, digest);
    hash_hex(digest, hex);
    CHECK_MSG(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e04"
                          "6d39ccc7112cd0") == 0,
              "million a: got %s", hex);

    /* And in one piece, through the one-shot function. */
    char *million = malloc(1000000);
    CHECK(million != NULL);
    memset(million, 'a', 1000000);
    hex_of(million, 1000000, hex);
    free(million);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e04"
                      "6d39ccc7112cd0") == 0);
    return 0;
}

static int sha256_streaming(void)
{
    static const size_t lengths[] = {0,  1,  54,  55,  56,  57,  62,  63,
                                     64, 65, 119, 120, 127, 128, 129, 1000};
    uint8_t data[1000];
    srand(12345);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)rand();

    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
        size_t len = lengths[l];
        uint8_t want[HASH_BYTES];
        hash_sha256(data, len, want);
        for (int trial = 0; trial < 50; trial++) {
            hash_sha256_ctx h;
            hash_sha256_init(&h);
            size_t at = 0;
            while (at < len) {
                size_t piece = (size_t)rand() % 70; /* empty pieces too */
                if (piece > len - at)
                    piece = len - at;
                hash_sha256_update(&h, data + at, piece);
                at += piece;
            }
            uint8_t got[HASH_BYTES];
            hash_sha256_final(&h, got);
            CHECK_MSG(memcmp(got, want, HASH_BYTES) == 0,
                      "length %zu, trial %d", len, trial);
        }
    }
    return 0;
}

static int sha256_file(void)
{
    const char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/blob", dir);

    /* Larger than the 64 KiB read chunk and not a multiple of it. */
    size_t len = 200000;
    uint8_t *data = malloc(len);
    CHECK(data != NULL);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 9));
    int wrote = test_write_file(path, data, len);
    uint8_t want[HASH_BYTES], got[HASH_BYTES];
    hash_sha256(data, len, want);
    free(data);
    CHECK(wrote == 0);

    tfq_error err = {0};
    CHECK_EQ_INT(hash_sha256_file(path, got, &err), 0);
    CHECK(memcmp(got, want, HASH_BYTES) == 0);

    /* The empty file. */
    CHECK(test_write_file(path, "", 0) == 0);
    CHECK_EQ_INT(hash_sha256_file(path, got, &err), 0);
    hash_sha256("", 0, want);
    CHECK(memcmp(got, want, HASH_BYTES) == 0);

    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK_EQ_INT(hash_sha256_file(path, got, &err), TFQ_ENOENT);
    CHECK_EQ_INT(err.code, TFQ_ENOENT);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message: %s", err.msg);
    CHECK_EQ_INT(hash_sha256_file(path, got, NULL), TFQ_ENOENT);

    /* A directory opens but cannot be read. */
    CHECK_EQ_INT(hash_sha256_file(dir, got, &err), TFQ_EIO);
    CHECK_MSG(strstr(err.msg, dir) != NULL, "message: %s", err.msg);

    test_rmtree(dir);
    return 0;
}

static const test_case cases[] = {
    {"sha256_vectors", sha256_vectors},
    {"sha256_streaming", sha256_streaming},
    {"sha256_file", sha256_file},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, 3);
}
