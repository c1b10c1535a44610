/* TEMPORARY (see blob_stub.h): blob uploads are not built in this branch. */
#include "blob_stub.h"

int client_blob_put(client *c, const char *store, const char id_hex[65],
                    const uint8_t *buf, size_t bytes, tfq_error *e)
{
    (void)c, (void)store, (void)id_hex, (void)buf, (void)bytes;
    return tfq_error_set(e, TFQ_ENOTSUP, "blob_put: not built yet");
}

int client_blob_has(client *c, const char *store, const char id_hex[65],
                    int *present, tfq_error *e)
{
    (void)c, (void)store, (void)id_hex;
    *present = 0;
    return tfq_error_set(e, TFQ_ENOTSUP, "blob_has: not built yet");
}
