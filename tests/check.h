/* A minimal test harness.  A test executable holds several cases; meson runs
 * each case as its own process (the case name is argv[1]) with a timeout, so
 * one crashing case cannot hide the others.  A case returns 0 on success;
 * CHECK* macros print the failing expression with file and line and return 1. */
#ifndef TFQ_TESTS_CHECK_H
#define TFQ_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>

typedef struct {
    const char *name;
    int (*fn)(void);
} test_case;

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                   \
            return 1;                                                   \
        }                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                            \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__,      \
                    __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            return 1;                                                   \
        }                                                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                              \
    do {                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);             \
        if (a_ != b_) {                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_);                \
            return 1;                                                   \
        }                                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                           \
    do {                                                                \
        double a_ = (double)(a), b_ = (double)(b);                      \
        if (!(fabs(a_ - b_) <= (tol))) {                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s ~ %s (%g vs %g, tol %g)\n", \
                    __FILE__, __LINE__, #a, #b, a_, b_, (double)(tol)); \
            return 1;                                                   \
        }                                                               \
    } while (0)

/* What a case returns when it cannot run here (a CPU without the kernel
 * set it tests): meson's "skipped" exit status. */
#define TEST_SKIPPED 77

/* Runs the case named argv[1] (or every case when none is named) and returns
 * the process exit status: 0 when all ran cases passed, TEST_SKIPPED when
 * every one ran was skipped.  "--list" prints the case names, one a line,
 * and runs none.  Each test file has one table of cases, `test_case
 * cases[] = {{"name", fn}, ...}`: tests/meson.build reads the names from
 * it (tools/test_cases.py), and test 'case_lists' checks --list agrees. */
int test_main(int argc, char **argv, const test_case *cases, int ncases);

/* A fresh temporary directory, removed with all it holds when the running
 * case ends (kept when it failed); a case may remove it sooner with
 * test_rmtree.  The path stays valid until the case ends. */
const char *test_tmpdir(void);
void test_rmtree(const char *path);

/* Writes len bytes to path; returns 0 on success. */
int test_write_file(const char *path, const void *data, size_t len);

/* Writes len bytes gzip-compressed to path; returns 0 on success. */
int test_write_gz(const char *path, const void *data, size_t len);

/* The first column of the first row of sql run over the JSON text json,
 * bound as ?1, in an in-memory SQLite database (its JSON functions read the
 * replies a test gets): "" for no row or NULL, "error: ..." when sql does
 * not prepare.  At most 4095 bytes; valid for the next 3 calls. */
const char *test_json_query(const char *json, const char *sql);

#endif
