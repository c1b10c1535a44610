/* Files written whole or not at all: a temporary name beside the target,
 * every byte written and synced, then renamed over it and the directory
 * synced, so a reader (or a crash) never sees half of one. */
#ifndef TFQ_COMMON_FILE_H
#define TFQ_COMMON_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* One piece of what a file holds. */
typedef struct {
    const void *data;
    size_t bytes;
} file_part;

/* Writes parts[0..nparts) in order to path atomically.  Fails with
 * TFQ_ENOSPC when the disk is full, else TFQ_EIO, naming the file; the
 * temporary file is removed and path is left as it was. */
int file_write_atomic(const char *path, const file_part *parts, int nparts,
                      tfq_error *e);

#endif
