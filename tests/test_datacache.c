/* Data caches (common/datacache.h): the default directory from the
 * environment, the layout, and trims that remove the least recently used
 * packs, never the one in use. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/datacache.h"

/* A pack file of fp (any bytes) of the given size, last used `age_s` ago. */
static int put_pack(const char *dir, const char *fp, size_t bytes, int age_s)
{
    char path[4096];
    if (datacache_pack_path(dir, fp, path, sizeof path) != 0)
        return -1;
    char *buf = calloc(1, bytes);
    int rc = buf != NULL ? test_write_file(path, buf, bytes) : -1;
    free(buf);
    struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    return rc != 0 ? rc : utimensat(AT_FDCWD, path, t, 0);
}

static int pack_exists(const char *dir, const char *fp)
{
    char path[4096];
    struct stat st;
    return datacache_pack_path(dir, fp, path, sizeof path) == 0 &&
           stat(path, &st) == 0;
}

/* TFQ_CACHE, then XDG_CACHE_HOME/tfq, then HOME/.cache/tfq, else ENOENT. */
static int datacache_default(void)
{
    char out[256];
    tfq_error e;
    setenv("TFQ_CACHE", "/c/tfq", 1);
    setenv("XDG_CACHE_HOME", "/x", 1);
    setenv("HOME", "/h", 1);
    CHECK(datacache_default_dir(out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "/c/tfq") == 0);
    setenv("TFQ_CACHE", "", 1);
    CHECK(datacache_default_dir(out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "/x/tfq") == 0);
    unsetenv("XDG_CACHE_HOME");
    CHECK(datacache_default_dir(out, sizeof out, &e) == 0);
    CHECK(strcmp(out, "/h/.cache/tfq") == 0);
    CHECK(datacache_default_dir(out, 4, &e) == TFQ_ERANGE);
    unsetenv("HOME");
    unsetenv("TFQ_CACHE");
    CHECK(datacache_default_dir(out, sizeof out, &e) == TFQ_ENOENT);
    CHECK(strstr(e.msg, "--cache") != NULL);
    return 0;
}

/* prepare makes packs/ and sources/ under a directory that did not exist;
 * a file in its way is an error naming it. */
static int datacache_layout(void)
{
    char dir[4096], path[4200];
    tfq_error e;
    snprintf(dir, sizeof dir, "%s/a/b", test_tmpdir());
    CHECK(datacache_prepare(dir, &e) == 0);
    snprintf(path, sizeof path, "%s/sources", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(datacache_pack_path(dir, "ab", path, sizeof path) == 0);
    CHECK(strstr(path, "/a/b/packs/ab.tfqd") != NULL);
    CHECK(datacache_pack_path(dir, "ab", path, 8) == TFQ_ERANGE);
    snprintf(path, sizeof path, "%s/file", test_tmpdir());
    CHECK(test_write_file(path, "x", 1) == 0);
    CHECK(datacache_prepare(path, &e) == TFQ_EIO);
    CHECK(strstr(e.msg, "file") != NULL);
    return 0;
}

/* Oldest packs go first until the cache fits; the kept one stays even when
 * it is the oldest; a fresh temporary file stays, a stale one goes. */
static int datacache_trim_lru(void)
{
    const char *dir = test_tmpdir();
    tfq_error e;
    CHECK(datacache_prepare(dir, &e) == 0);
    CHECK(put_pack(dir, "old", 1000, 300) == 0);
    CHECK(put_pack(dir, "mid", 1000, 200) == 0);
    CHECK(put_pack(dir, "new", 1000, 100) == 0);
    CHECK_EQ_INT(datacache_bytes(dir), 3000);
    int removed = -1;
    CHECK(datacache_trim(dir, 2500, "old", &removed, &e) == 0);
    CHECK_EQ_INT(removed, 1);
    CHECK(pack_exists(dir, "old") && !pack_exists(dir, "mid") &&
          pack_exists(dir, "new"));
    datacache_touch(dir, "old");
    CHECK(datacache_trim(dir, 1000, NULL, &removed, &e) == 0);
    CHECK(pack_exists(dir, "old") && !pack_exists(dir, "new"));
    CHECK(datacache_trim(dir, 500, "old", &removed, &e) == TFQ_ENOSPC);
    CHECK(pack_exists(dir, "old"));
    CHECK(strstr(e.msg, "1000 bytes") != NULL);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/packs/x.tfqd.tmp1", dir);
    CHECK(test_write_file(tmp, "12345", 5) == 0);
    CHECK(datacache_trim(dir, 0, NULL, &removed, &e) == TFQ_ENOSPC);
    CHECK(!pack_exists(dir, "old") && access(tmp, F_OK) == 0);
    struct timespec t[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    CHECK(utimensat(AT_FDCWD, tmp, t, 0) == 0);
    CHECK(datacache_trim(dir, 0, NULL, &removed, &e) == 0);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_EQ_INT(datacache_bytes(dir), 0);
    return 0;
}

static const test_case cases[] = {
    {"datacache_default", datacache_default},
    {"datacache_layout", datacache_layout},
    {"datacache_trim_lru", datacache_trim_lru},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
