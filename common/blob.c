#include "blob.h"

#include <stdio.h>
#include <string.h>

static const char *const s_names[] = {[BLOB_DATA] = "data",
                                      [BLOB_CKPT] = "ckpt"};

int blob_store_parse(const char *name, blob_store *out, tfq_error *e)
{
    for (size_t i = 0; i < sizeof s_names / sizeof s_names[0]; i++)
        if (name != NULL && strcmp(name, s_names[i]) == 0) {
            *out = (blob_store)i;
            return 0;
        }
    return tfq_error_set(e, TFQ_EINVAL, "no blob store '%.16s' (the stores "
                         "are \"data\" and \"ckpt\")",
                         name != NULL ? name : "");
}

const char *blob_store_name(blob_store s)
{
    return s == BLOB_CKPT ? "ckpt" : "data";
}

void blob_file_name(blob_store s, const char *id, char *out, size_t bytes)
{
    snprintf(out, bytes, "%.64s%s", id, s == BLOB_DATA ? ".tfqd" : "");
}

void blob_check_init(blob_check *c, blob_store s)
{
    memset(c, 0, sizeof *c);
    c->store = s;
    c->magic = s == BLOB_CKPT;
    if (s == BLOB_DATA)
        datapack_hasher_init(&c->pack);
    else
        hash_sha256_init(&c->sha);
}

int blob_check_update(blob_check *c, const void *buf, size_t bytes,
                      tfq_error *e)
{
    if (c->store == BLOB_DATA) {
        c->seen += (int64_t)bytes;
        return datapack_hasher_update(&c->pack, buf, bytes, e);
    }
    for (size_t i = 0; c->seen + (int64_t)i < BLOB_CKPT_MAGIC_BYTES &&
                       i < bytes; i++)
        c->head[c->seen + (int64_t)i] = ((const uint8_t *)buf)[i];
    c->seen += (int64_t)bytes;
    hash_sha256_update(&c->sha, buf, bytes);
    return 0;
}

int blob_check_final(blob_check *c, const char *id, tfq_error *e)
{
    char hex[HASH_HEX_BYTES];
    int rc = 0;
    if (c->store == BLOB_DATA) {
        rc = datapack_hasher_final(&c->pack, hex, e);
        blob_check_release(c);
        if (rc != 0)
            return tfq_error_wrap(e, rc, "data pack %.12s: ", id);
    } else {
        uint8_t digest[HASH_BYTES];
        hash_sha256_final(&c->sha, digest);
        hash_hex(digest, hex);
    }
    if (strcmp(hex, id) != 0)
        return tfq_error_set(e, TFQ_ECHECKSUM, "%s %.12s arrived as %.12s "
                             "(%s)", c->store == BLOB_DATA ? "data pack"
                                                           : "checkpoint",
                             id, hex, c->store == BLOB_DATA
                                          ? "its fingerprint differs"
                                          : "its SHA-256 differs");
    if (c->store == BLOB_CKPT && c->magic &&
        (c->seen < BLOB_CKPT_MAGIC_BYTES ||
         memcmp(c->head, BLOB_CKPT_MAGIC, BLOB_CKPT_MAGIC_BYTES) != 0))
        return tfq_error_set(e, TFQ_EMAGIC, "checkpoint %.12s does not start "
                             "with \"%s\"", id, BLOB_CKPT_MAGIC);
    return 0;
}

void blob_check_release(blob_check *c)
{
    if (c->store == BLOB_DATA)
        datapack_hasher_release(&c->pack);
}
