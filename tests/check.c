#define _GNU_SOURCE
#include "check.h"

#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <zlib.h>

/* The directories test_tmpdir made for the case running now. */
#define MAX_CASE_DIRS 64
static char case_dirs[MAX_CASE_DIRS][256];
static int n_case_dirs;

/* Removes the case's directories; keeps them, and says where, when it
 * failed, for a look at what it left. */
static void case_dirs_end(int failed)
{
    for (int i = 0; i < n_case_dirs; i++) {
        if (failed)
            fprintf(stderr, "kept %s\n", case_dirs[i]);
        else
            test_rmtree(case_dirs[i]);
    }
    n_case_dirs = 0;
}

int test_main(int argc, char **argv, const test_case *cases, int ncases)
{
    int failed = 0, ran = 0, skipped = 0;
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ncases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (int i = 0; i < ncases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        ran++;
        int rc = cases[i].fn();
        case_dirs_end(rc != 0 && rc != TEST_SKIPPED);
        fprintf(stderr, "%s: %s\n", rc == 0 ? "PASS" : rc == TEST_SKIPPED
                ? "SKIP" : "FAIL", cases[i].name);
        if (rc == TEST_SKIPPED)
            skipped++;
        else if (rc != 0)
            failed++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named '%s'\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    /* The exit status meson reads as "skipped", when nothing else ran. */
    return failed ? 1 : skipped == ran ? TEST_SKIPPED : 0;
}

const char *test_tmpdir(void)
{
    if (n_case_dirs == MAX_CASE_DIRS) {
        fprintf(stderr, "test_tmpdir: more than %d directories in one case\n",
                MAX_CASE_DIRS);
        abort();
    }
    char *path = case_dirs[n_case_dirs];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof case_dirs[0], "%s/tfq-test-XXXXXX",
             base ? base : "/tmp");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    n_case_dirs++;
    return path;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : -1;
}

int test_write_gz(const char *path, const void *data, size_t len)
{
    gzFile g = gzopen(path, "wb");
    if (g == NULL)
        return -1;
    int w = len ? gzwrite(g, data, (unsigned)len) : 0;
    int rc = gzclose(g);
    return (w == (int)len && rc == Z_OK) ? 0 : -1;
}

const char *test_json_query(const char *json, const char *sql)
{
    static char out[4][4096];
    static int next;
    char *r = out[next++ % 4];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    r[0] = '\0';
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        snprintf(r, sizeof out[0], "error: %s", sqlite3_errmsg(db));
    else if (sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(r, sizeof out[0], "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}
