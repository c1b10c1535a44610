/* Job files: jobs, dependencies, transfer sources, and the errors. */
#include <string.h>

#include "check.h"
#include "coordinator/jobfile.h"
#include "worker/job.h"

static const char *s_grid =
    "# a base net and two jobs that copy it\n"
    "name = base\n"
    "kind = train\n"
    "classes = 0,2,3,4,6\n"
    "---\n"
    "name = sel\n"
    "init_from = base\n"
    "kind = train\n"
    "copy = 3\n"
    "freeze = 3\n"
    "---\n"
    "name = late\n"
    "after = sel, base\n"
    "max_attempts = 7\n"
    "kind = sleep\n"
    "sleep_ms = 5\n";

static int test_parse(void)
{
    jobfile f;
    tfq_error e = {0};
    CHECK_MSG(jobfile_parse(s_grid, &f, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(f.njobs, 3);
    CHECK(strcmp(f.jobs[1].name, "sel") == 0);
    CHECK_EQ_INT(f.jobs[1].init_from, 0);
    CHECK_EQ_INT(f.jobs[1].nafter, 1); /* init_from implies the dependency */
    CHECK_EQ_INT(f.jobs[1].after[0], 0);
    CHECK_EQ_INT(f.jobs[2].nafter, 2);
    CHECK_EQ_INT(f.jobs[2].max_attempts, 7);
    CHECK_EQ_INT(f.jobs[0].max_attempts, 0);
    /* base waits for nothing and has the longest chain behind it */
    CHECK_EQ_INT(f.jobs[0].depth, 2);
    CHECK_EQ_INT(f.jobs[1].depth, 1);
    CHECK_EQ_INT(f.jobs[2].depth, 0);
    CHECK(f.jobs[1].spec.freeze_layers == 3);
    CHECK(strstr(f.jobs[1].text, "copy = 3\n") != NULL);
    /* A transfer job's identity covers its source's configuration. */
    char other[2048];
    snprintf(other, sizeof other, "%s", s_grid);
    char *p = strstr(other, "classes = 0,2,3,4,6");
    memcpy(p, "classes = 0,2,3,4,7", 19);
    jobfile g;
    CHECK_MSG(jobfile_parse(other, &g, &e) == 0, "%s", e.msg);
    CHECK(strcmp(f.jobs[1].text, g.jobs[1].text) == 0);
    CHECK(strcmp(f.jobs[1].identity, g.jobs[1].identity) != 0);
    CHECK(strcmp(f.jobs[2].identity, g.jobs[2].identity) == 0);
    jobfile_release(&f);
    jobfile_release(&g);
    return 0;
}

static int rejects(const char *text, const char *w1, const char *w2)
{
    jobfile f;
    tfq_error e = {0};
    int rc = jobfile_parse(text, &f, &e);
    CHECK_MSG(rc != 0, "accepted:\n%s", text);
    CHECK_MSG(strstr(e.msg, w1) != NULL, "'%s' not in '%s'", w1, e.msg);
    CHECK_MSG(w2 == NULL || strstr(e.msg, w2) != NULL, "'%s' not in '%s'",
              w2, e.msg);
    CHECK(f.jobs == NULL);
    return 0;
}

static int test_errors(void)
{
    CHECK(rejects("", "no jobs", NULL) == 0);
    CHECK(rejects("name = a\nmax_attempts = 0\nkind = sleep\n", "line 2",
                  "max_attempts") == 0);
    CHECK(rejects("kind = sleep\n", "line 1", "name") == 0);
    CHECK(rejects("name = a\nkind = sleep\n---\nname = a\nkind = sleep\n",
                  "line 4", "twice") == 0);
    CHECK(rejects("name = a b\nkind = sleep\n", "line 1", "name") == 0);
    CHECK(rejects("name = a\nafter = b\nkind = sleep\n", "line 2",
                  "does not exist") == 0);
    CHECK(rejects("name = a\nafter = a\nkind = sleep\n", "line 2",
                  "itself") == 0);
    CHECK(rejects("name = a\nafter = b\nkind = sleep\n---\nname = b\n"
                  "after = a\nkind = sleep\n", "cycle", NULL) == 0);
    CHECK(rejects("name = a\nkind = sleep\nepochs = 3\n", "job 'a'",
                  "epochs") == 0);
    CHECK(rejects("name = a\nkind = train\ncopy = 2\n", "copy",
                  "init_from") == 0);
    CHECK(rejects("name = a\nkind = sleep\n---\nname = b\ninit_from = a\n"
                  "kind = train\n", "line 5", "train") == 0);
    return 0;
}

/* Errors name the line of the file as an editor numbers it: blank lines,
 * comments, the job file's own keys and CRLF line ends all count. */
static int test_error_lines(void)
{
    CHECK(rejects("name = a\n\nkind = sleep\n\n# c\n\nafter = nosuch\n",
                  "line 7:", "does not exist") == 0);
    CHECK(rejects("name = a\nkind = sleep\n\n---\n\nname = a\n"
                  "kind = sleep\n", "line 6:", "twice") == 0);
    /* spec lines: the file's line, not the line within the job's spec */
    CHECK(rejects("name = a\nmax_attempts = 2\nkind = sleep\nepochs = 3\n",
                  "line 4: job 'a'", "epochs") == 0);
    CHECK(rejects("name = a\r\n\r\n# x\r\nkind = sleep\r\n\r\nfrob = 1\r\n",
                  "line 6: job 'a'", "unknown key 'frob'") == 0);
    CHECK(rejects("name = a\nkind = sleep\n---\n\nname = b\nseed = 1\n"
                  "kind = sleep\n", "line 6: job 'b'", "first") == 0);
    CHECK(rejects("# jobs\n\nname = a\r\nkind = sleep\r\n"
                  "max_attempts = 0\r\n", "line 5:", "max_attempts") == 0);
    return 0;
}

/* sweep: a swept grid's coordinate, KEY=VALUE joined by '/', kept as
 * given; a name may hold '=' (it starts with the coordinate). */
static int test_sweep(void)
{
    jobfile f;
    tfq_error e = {0};
    CHECK_MSG(jobfile_parse("name = lr=0.01/init=caffe/random0/1/baseA\n"
                            "sweep = lr=0.01/init=caffe\nkind = sleep\n---\n"
                            "name = b\nafter = lr=0.01/init=caffe/random0/1/"
                            "baseA\nsweep = lr=1e-05\nkind = sleep\n---\n"
                            "name = plain\nkind = sleep\n", &f, &e) == 0,
              "%s", e.msg);
    CHECK(strcmp(f.jobs[0].name, "lr=0.01/init=caffe/random0/1/baseA") == 0);
    CHECK(strcmp(f.jobs[0].sweep, "lr=0.01/init=caffe") == 0);
    CHECK(strcmp(f.jobs[1].sweep, "lr=1e-05") == 0);
    CHECK_EQ_INT(f.jobs[1].nafter, 1);
    CHECK(f.jobs[2].sweep[0] == '\0');
    /* the coordinate is not part of the spec: the identity is the same */
    CHECK(strcmp(f.jobs[0].identity, f.jobs[2].identity) == 0);
    jobfile_release(&f);
    static const char *const bad[] = {"lr", "lr=", "=0.01", "lr=0.01/",
                                      "lr=0.01//init=he", "lr=a b",
                                      "lr=0.01,init=he", "l r=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "name = a\nkind = sleep\nsweep = %s\n",
                 bad[i]);
        CHECK(rejects(text, "line 3: bad or repeated sweep", NULL) == 0);
    }
    CHECK(rejects("name = a\nsweep = lr=1\nsweep = lr=1\nkind = sleep\n",
                  "line 3: bad or repeated sweep", NULL) == 0);
    return 0;
}

static const test_case cases[] = {
    {"sweep", test_sweep},
    {"parse", test_parse},
    {"errors", test_errors},
    {"error_lines", test_error_lines},
};

int main(int argc, char **argv)
{
    job_engine_register(); /* jobs are checked as the tfq executable checks them */
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
