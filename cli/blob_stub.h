/* TEMPORARY, until the data shipping branch lands: the declarations that
 * branch adds to common/client.h, so that submit's base: upload builds and
 * its tests run.  At the merge: delete this file and blob_stub.c. */
#ifndef TFQ_CLI_BLOB_STUB_H
#define TFQ_CLI_BLOB_STUB_H

#include <stddef.h>
#include <stdint.h>

#include "common/client.h"

int client_blob_put(client *c, const char *store, const char id_hex[65],
                    const uint8_t *buf, size_t bytes, tfq_error *e);
int client_blob_has(client *c, const char *store, const char id_hex[65],
                    int *present, tfq_error *e);

#endif
