#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int io_error(tfq_error *e, int err, const char *what, const char *path)
{
    return tfq_error_set(e, err == ENOSPC ? TFQ_ENOSPC : TFQ_EIO,
                         "%s: %s: %s", path, what, strerror(err));
}

int file_write_atomic(const char *path, const file_part *parts, int nparts,
                      tfq_error *e)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return io_error(e, errno, "cannot create temporary file", path);
    int bad = 0;
    for (int i = 0; i < nparts && !bad; i++)
        bad = write_all(fd, parts[i].data, parts[i].bytes);
    if (!bad)
        bad = fsync(fd);
    int err = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        return io_error(e, err, "write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        return io_error(e, err, "rename failed", path);
    }
    /* Make the rename itself durable. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
