/* .npz: what numpy.savez writes, a zip of .npy files (format 1.0), plus
 * __metadata__.json.  Written with libzip. */
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "report_json.h"

/* numpy aligns the data of an .npy to 64 bytes. */
#define NPY_ALIGN 64
/* A fixed time for every entry, so the same weights give the same bytes. */
#define NPZ_MTIME ((time_t)946684800) /* 2000-01-01 */

/* The .npy bytes of t in a new buffer. */
static uint8_t *npy_encode(const weights_tensor *t, size_t *bytes)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': "
                     "False, 'shape': (");
    for (int d = 0; d < t->ndim; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld",
                      d ? ", " : "", (long long)t->dims[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }",
                  t->ndim == 1 ? "," : "");
    size_t head = 10 + (size_t)n + 1; /* magic, version, length, '\n' */
    size_t pad = (NPY_ALIGN - head % NPY_ALIGN) % NPY_ALIGN;
    size_t hlen = (size_t)n + pad + 1;
    size_t data = sizeof(float) * (size_t)t->count;
    uint8_t *b = malloc(10 + hlen + data);
    if (b == NULL)
        return NULL;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)(hlen & 0xff);
    b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + 10, dict, (size_t)n);
    memset(b + 10 + n, ' ', pad);
    b[10 + hlen - 1] = '\n';
    memcpy(b + 10 + hlen, t->data, data);
    *bytes = 10 + hlen + data;
    return b;
}

/* The metadata as one JSON object of strings, in a new buffer. */
static uint8_t *meta_json(const weights_set *w, size_t *bytes)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, bytes);
    if (f == NULL)
        return NULL;
    fputc('{', f);
    for (int i = 0; i < w->nmeta; i++) {
        fputs(i ? ", " : "", f);
        report_json_string(f, w->meta[i].key);
        fputs(": ", f);
        report_json_string(f, w->meta[i].value);
    }
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return (uint8_t *)out;
}

/* Adds buf (taken: libzip frees it) as entry name. */
static int add(zip_t *z, const char *name, uint8_t *buf, size_t bytes,
               const char *path, tfq_error *e)
{
    if (buf == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "%s: out of memory", path);
    zip_source_t *src = zip_source_buffer(z, buf, bytes, 1);
    if (src == NULL) {
        free(buf);
        return tfq_error_set(e, TFQ_ENOMEM, "%s: %s", path, zip_strerror(z));
    }
    zip_int64_t at = zip_file_add(z, name, src, ZIP_FL_ENC_UTF_8);
    if (at < 0) {
        zip_source_free(src);
        return tfq_error_set(e, TFQ_EIO, "%s: %s: %s", path, name,
                             zip_strerror(z));
    }
    zip_file_set_mtime(z, (zip_uint64_t)at, NPZ_MTIME, 0);
    return 0;
}

int weights_npz_write(const weights_set *w, const char *path, tfq_error *e)
{
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    if (z == NULL) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        int rc = tfq_error_set(e, TFQ_EIO, "%s: %s", path,
                               zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    int rc = 0;
    for (int i = 0; i < w->ntensors && rc == 0; i++) {
        char name[WEIGHTS_NAME_BYTES + 8];
        size_t bytes = 0;
        snprintf(name, sizeof name, "%s.npy", w->t[i].name);
        uint8_t *npy = npy_encode(&w->t[i], &bytes);
        rc = add(z, name, npy, bytes, path, e);
    }
    size_t bytes = 0;
    if (rc == 0) {
        uint8_t *json = meta_json(w, &bytes);
        rc = add(z, "__metadata__.json", json, bytes, path, e);
    }
    if (rc != 0) {
        zip_discard(z);
        return rc;
    }
    if (zip_close(z) != 0) {
        rc = tfq_error_set(e, TFQ_EIO, "%s: %s", path, zip_strerror(z));
        zip_discard(z);
    }
    return rc;
}
