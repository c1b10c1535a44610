#include "datacache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PACK_SUFFIX ".tfqd"

/* A temporary file left by a write that has not touched it for this long is
 * taken for the remains of a crashed writer and removed by a trim (a live
 * download writes a chunk every few seconds at most). */
#define STALE_TMP_S 3600

int datacache_pack_path(const char *dir, const char *fp, char *out,
                        size_t bytes)
{
    int n = snprintf(out, bytes, "%s/packs/%s" PACK_SUFFIX, dir, fp);
    return n < 0 || (size_t)n >= bytes ? TFQ_ERANGE : TFQ_OK;
}

int datacache_default_dir(char *out, size_t bytes, tfq_error *e)
{
    const char *v = getenv("TFQ_CACHE");
    const char *fmt = "%s";
    if (v == NULL || *v == '\0') {
        v = getenv("XDG_CACHE_HOME");
        fmt = "%s/tfq";
    }
    if (v == NULL || *v == '\0') {
        v = getenv("HOME");
        fmt = "%s/.cache/tfq";
    }
    if (v == NULL || *v == '\0')
        return tfq_error_set(e, TFQ_ENOENT, "no data cache directory: none "
                             "of TFQ_CACHE, XDG_CACHE_HOME, HOME is set "
                             "(give --cache DIR)");
    int n = snprintf(out, bytes, fmt, v);
    if (n < 0 || (size_t)n >= bytes)
        return tfq_error_set(e, TFQ_ERANGE, "data cache directory %s: path "
                             "too long", v);
    return TFQ_OK;
}

int datacache_mkdir_p(const char *dir, tfq_error *e)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return tfq_error_set(e, TFQ_ERANGE, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return tfq_error_set(e, TFQ_EIO, "%s: cannot create directory: "
                                 "%s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tfq_error_set(e, TFQ_EIO, "%s: not a directory", dir);
    return TFQ_OK;
}

int datacache_prepare(const char *dir, tfq_error *e)
{
    static const char *const subs[] = {"packs", "sources"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, subs[i]) >=
            (int)sizeof path)
            return tfq_error_set(e, TFQ_ERANGE, "data cache %s: path too "
                                 "long", dir);
        int rc = datacache_mkdir_p(path, e);
        if (rc < 0)
            return tfq_error_wrap(e, rc, "data cache: ");
    }
    return TFQ_OK;
}

void datacache_touch(const char *dir, const char *fp)
{
    char path[4096];
    if (datacache_pack_path(dir, fp, path, sizeof path) == 0)
        (void)utimensat(AT_FDCWD, path, NULL, 0);
}

/* One file of DIR/packs. */
typedef struct {
    char name[256];
    int64_t bytes;
    time_t mtime;
    int is_pack; /* a finished pack (else a temporary file) */
} cache_entry;

typedef struct {
    cache_entry *v;
    size_t n, cap;
} cache_list;

static int list_push(cache_list *l, const cache_entry *en)
{
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 16;
        cache_entry *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return TFQ_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *en;
    return TFQ_OK;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every regular file of packs (a path to DIR/packs) into l. */
static int list_packs(const char *packs, cache_list *l, tfq_error *e)
{
    DIR *d = opendir(packs);
    if (d == NULL)
        return errno == ENOENT ? TFQ_OK
                               : tfq_error_set(e, TFQ_EIO, "%s: cannot read "
                                               "the directory: %s", packs,
                                               strerror(errno));
    int rc = TFQ_OK;
    struct dirent *de;
    while (rc == TFQ_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        cache_entry en = {0};
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof en.name ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        memcpy(en.name, de->d_name, strlen(de->d_name) + 1);
        en.bytes = (int64_t)st.st_size;
        en.mtime = st.st_mtime;
        en.is_pack = has_suffix(en.name, PACK_SUFFIX);
        rc = list_push(l, &en);
        if (rc < 0)
            tfq_error_set(e, rc, "%s: out of memory listing the cache",
                          packs);
    }
    closedir(d);
    return rc;
}

int64_t datacache_bytes(const char *dir)
{
    char packs[4096];
    if (snprintf(packs, sizeof packs, "%s/packs", dir) >= (int)sizeof packs)
        return 0;
    cache_list l = {0};
    int64_t total = 0;
    if (list_packs(packs, &l, NULL) == 0)
        for (size_t i = 0; i < l.n; i++)
            total += l.v[i].bytes;
    free(l.v);
    return total;
}

/* Oldest first. */
static int by_mtime(const void *a, const void *b)
{
    const cache_entry *x = a, *y = b;
    return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/* Whether en may be removed now: a pack other than the one kept, or a
 * temporary file untouched for STALE_TMP_S. */
static int removable(const cache_entry *en, const char *keep, time_t now)
{
    if (!en->is_pack)
        return now - en->mtime > STALE_TMP_S;
    return keep[0] == '\0' || strcmp(en->name, keep) != 0;
}

int datacache_trim(const char *dir, int64_t max_bytes, const char *keep_fp,
                   int *removed, tfq_error *e)
{
    char packs[4096], keep[256] = "";
    if (removed != NULL)
        *removed = 0;
    if (snprintf(packs, sizeof packs, "%s/packs", dir) >= (int)sizeof packs ||
        (keep_fp != NULL && snprintf(keep, sizeof keep, "%s" PACK_SUFFIX,
                                     keep_fp) >= (int)sizeof keep))
        return tfq_error_set(e, TFQ_ERANGE, "data cache %s: path too long",
                             dir);
    cache_list l = {0};
    int rc = list_packs(packs, &l, e);
    if (rc < 0) {
        free(l.v);
        return rc;
    }
    int64_t total = 0;
    for (size_t i = 0; i < l.n; i++)
        total += l.v[i].bytes;
    qsort(l.v, l.n, sizeof *l.v, by_mtime);
    time_t now = time(NULL);
    for (size_t i = 0; i < l.n && total > max_bytes; i++) {
        char path[4096 + 256];
        if (!removable(&l.v[i], keep, now))
            continue;
        snprintf(path, sizeof path, "%s/%s", packs, l.v[i].name);
        if (unlink(path) == 0 || errno == ENOENT) {
            total -= l.v[i].bytes;
            if (removed != NULL)
                *removed += 1;
        }
    }
    free(l.v);
    if (total > max_bytes)
        return tfq_error_set(e, TFQ_ENOSPC, "data cache %s: %lld bytes in "
                             "use, over its limit of %lld bytes with every "
                             "pack it may remove removed", dir,
                             (long long)total, (long long)max_bytes);
    return TFQ_OK;
}
