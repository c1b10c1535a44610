/* Grid files: parsing, the expansion into the paper's table of nets, and
 * the errors, each naming its line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "common/settings.h"
#include "coordinator/gridspec.h"
#include "coordinator/jobfile.h"
#include "worker/job.h"

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char *s_grid =
    "# every variant, both directions, two seeds\n"
    "name: g\n"
    "dataset:\n"
    "  kind: fashion-mnist\n"
    "  fingerprint: " FP "\n"
    "  limit_train: 1000\n"
    "net: reference\n"
    "train:\n"
    "  epochs: 2\n"
    "  lr: 0.02\n"
    "splits:\n"
    "  random: [0]\n"
    "  dissimilar: true\n"
    "directions: both\n"
    "layers: 1-3\n"
    "variants: [selffer, transfer, random]\n"
    "finetune: both\n"
    "seeds: [1, 2]\n"
    "metric: top5\n";

/* Parses and expands text into f. */
static int expand(const char *text, gridspec *g, jobfile *f)
{
    tfq_error e = {0};
    char *jobs = NULL;
    CHECK_MSG(gridspec_parse(text, g, &e) == 0, "%s", e.msg);
    if (g->fingerprint[0] == '\0')
        snprintf(g->fingerprint, sizeof g->fingerprint, "%s", FP);
    CHECK_MSG(gridspec_expand(g, &jobs, &e) == 0, "%s", e.msg);
    int rc = jobfile_parse(jobs, f, &e);
    free(jobs);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_EQ_INT(f->njobs, gridspec_count(g));
    return 0;
}

static const jobfile_job *find(const jobfile *f, const char *name)
{
    for (int i = 0; i < f->njobs; i++)
        if (strcmp(f->jobs[i].name, name) == 0)
            return &f->jobs[i];
    return NULL;
}

static int same_classes(const jobspec *s, const int *c, int n)
{
    if (s->nclasses != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (s->classes[i] != c[i])
            return 0;
    return 1;
}

/* One expected net: what it copies from, how many layers it copies and
 * freezes, which task it trains on. */
static int check_net(const jobfile *f, const grid_split *s, int seed,
                     const char *job, const char *from, int copy, int freeze,
                     char target, const char *variant, int finetune, int n)
{
    char name[64], src[64];
    snprintf(name, sizeof name, "%s/%d/%s", s->name, seed, job);
    const jobfile_job *j = find(f, name);
    CHECK_MSG(j != NULL, "no job %s", name);
    CHECK_EQ_INT(j->spec.copy_layers, copy);
    CHECK_EQ_INT(j->spec.freeze_layers, freeze);
    CHECK_EQ_INT((int)j->spec.seed, seed);
    CHECK_EQ_INT(j->spec.epochs, 2);
    CHECK_EQ_INT(j->spec.limit_train, 1000);
    CHECK(strcmp(j->spec.fingerprint, FP) == 0);
    CHECK_MSG(same_classes(&j->spec, target == 'A' ? s->a : s->b,
                           target == 'A' ? s->na : s->nb),
              "%s trains on the wrong classes", name);
    CHECK(strcmp(j->split, s->name) == 0);
    CHECK(strcmp(j->similarity, s->similarity) == 0);
    CHECK(j->target[0] == target && j->target[1] == '\0');
    CHECK(strcmp(j->variant, variant) == 0);
    CHECK_EQ_INT(j->finetune, finetune);
    CHECK_EQ_INT(j->n, n);
    if (from == NULL) {
        CHECK_MSG(j->nafter == 0 && j->init_from < 0, "%s waits", name);
        return 0;
    }
    snprintf(src, sizeof src, "%s/%d/%s", s->name, seed, from);
    CHECK_MSG(j->init_from >= 0 && strcmp(f->jobs[j->init_from].name, src) == 0,
              "%s does not copy from %s", name, src);
    CHECK_EQ_INT(j->nafter, 1);
    CHECK(j->after[0] == j->init_from);
    return 0;
}

/* The table of PAPER.md, built here net by net, is exactly the expansion. */
static int test_expand_table(void)
{
    static gridspec g;
    jobfile f;
    CHECK(expand(s_grid, &g, &f) == 0);
    /* 2 splits x 2 seeds x (2 bases + 2 directions x 3 n x 5 nets) */
    CHECK_EQ_INT(f.njobs, 2 * 2 * (2 + 2 * 3 * 5));
    CHECK(strcmp(g.metric, "top5") == 0);
    CHECK_EQ_INT(g.nsplits, 2);
    static const int tops[] = {0, 2, 3, 4, 6}, rest[] = {1, 5, 7, 8, 9};
    const grid_split *dis = &g.splits[1];
    CHECK(strcmp(dis->name, "dissimilar") == 0);
    CHECK_EQ_INT(dis->na, 5);
    CHECK(memcmp(dis->a, tops, sizeof tops) == 0);
    CHECK(memcmp(dis->b, rest, sizeof rest) == 0);
    int checked = 0;
    for (int si = 0; si < 2; si++)
        for (int seed = 1; seed <= 2; seed++) {
            const grid_split *s = &g.splits[si];
            CHECK(check_net(&f, s, seed, "baseA", NULL, 0, 0, 'A', "base", 0,
                            0) == 0);
            CHECK(check_net(&f, s, seed, "baseB", NULL, 0, 0, 'B', "base", 0,
                            0) == 0);
            checked += 2;
            for (int d = 0; d < 2; d++) {
                char x = d ? 'A' : 'B', y = d ? 'B' : 'A';
                char bx[8], by[8];
                snprintf(bx, sizeof bx, "base%c", x);
                snprintf(by, sizeof by, "base%c", y);
                for (int n = 1; n <= 3; n++) {
                    char nm[16];
                    snprintf(nm, sizeof nm, "%c%d%c", x, n, x); /* selffer */
                    CHECK(check_net(&f, s, seed, nm, bx, n, n, x, "selffer",
                                    0, n) == 0);
                    strcat(nm, "+");
                    CHECK(check_net(&f, s, seed, nm, bx, n, 0, x, "selffer",
                                    1, n) == 0);
                    snprintf(nm, sizeof nm, "%c%d%c", y, n, x); /* transfer */
                    CHECK(check_net(&f, s, seed, nm, by, n, n, x, "transfer",
                                    0, n) == 0);
                    strcat(nm, "+");
                    CHECK(check_net(&f, s, seed, nm, by, n, 0, x, "transfer",
                                    1, n) == 0);
                    snprintf(nm, sizeof nm, "R%d%c", n, x); /* random */
                    CHECK(check_net(&f, s, seed, nm, NULL, 0, n, x, "random",
                                    0, n) == 0);
                    checked += 5;
                }
            }
        }
    CHECK_EQ_INT(checked, f.njobs); /* and nothing else */
    /* bases first: every derived net waits on one */
    CHECK(find(&f, "random0/1/baseA")->depth > find(&f, "random0/1/A1B")->depth);
    jobfile_release(&f);
    return 0;
}

/* A random split: half the classes each, disjoint, fixed by its seed. */
static int test_random_split(void)
{
    static gridspec g1, g2;
    tfq_error e = {0};
    const char *text = "splits: {random: [0, 1, 2, 3]}\nlayers: 1\n";
    CHECK_MSG(gridspec_parse(text, &g1, &e) == 0, "%s", e.msg);
    CHECK(gridspec_parse(text, &g2, &e) == 0);
    CHECK_EQ_INT(g1.nsplits, 4);
    int differ = 0;
    for (int i = 0; i < 4; i++) {
        const grid_split *s = &g1.splits[i];
        CHECK_EQ_INT(s->na, 5);
        CHECK_EQ_INT(s->nb, 5);
        int seen[10] = {0};
        for (int k = 0; k < 5; k++) {
            seen[s->a[k]]++;
            seen[s->b[k]]++;
        }
        for (int c = 0; c < 10; c++)
            CHECK_EQ_INT(seen[c], 1);
        CHECK(memcmp(s, &g2.splits[i], sizeof *s) == 0);
        if (i > 0)
            differ |= memcmp(s->a, g1.splits[0].a, sizeof s->a) != 0;
    }
    CHECK(differ);
    return 0;
}

/* The presets parse, and quick is small. */
static int test_presets(void)
{
    static gridspec g;
    jobfile f;
    CHECK(gridspec_preset("quick") != NULL);
    CHECK(gridspec_preset("nosuch") == NULL);
    CHECK(expand(gridspec_preset("quick"), &g, &f) == 0);
    CHECK_EQ_INT(f.njobs, 16);
    CHECK(strcmp(g.name, "quick") == 0);
    jobfile_release(&f);
    CHECK(expand(gridspec_preset("paper"), &g, &f) == 0);
    CHECK_EQ_INT(f.njobs, 5 * (2 + 2 * 7 * 5));
    jobfile_release(&f);
    CHECK(gridspec_is_grid(gridspec_preset("paper")));
    CHECK(gridspec_is_grid("\n# c\n  name: x\n"));
    CHECK(!gridspec_is_grid("name = x\nkind = sleep\n"));
    CHECK(!gridspec_is_grid("# only a comment\n"));
    return 0;
}

/* The identity covers the configuration and the source's identity. */
static int test_identity(void)
{
    static gridspec g;
    jobfile a, b;
    CHECK(expand(s_grid, &g, &a) == 0);
    CHECK(expand(s_grid, &g, &b) == 0);
    for (int i = 0; i < a.njobs; i++)
        CHECK(strcmp(a.jobs[i].identity, b.jobs[i].identity) == 0);
    jobfile_release(&b);
    /* another learning rate: every net is another */
    char *other = strdup(s_grid);
    memcpy(strstr(other, "lr: 0.02"), "lr: 0.03", 8);
    CHECK(expand(other, &g, &b) == 0);
    for (int i = 0; i < a.njobs; i++)
        CHECK(strcmp(a.jobs[i].identity, b.jobs[i].identity) != 0);
    jobfile_release(&b);
    free(other);
    jobfile_release(&a);
    return 0;
}

/* Bad files: each error names the line and says what is wrong. */
static int test_errors(void)
{
    static const struct {
        const char *text;
        const char *want; /* in the message */
    } cases[] = {
        {"splits: {random: [0]}\nlayerz: 1-7\n", "line 2: grid: unknown key 'layerz'"},
        {"splits: {random: [0]}\nlayers: 1-9\n", "line 2: layers: n = 8, but the net has 8 learned layers"},
        {"splits: {random: [0]}\nlayers: 0-3\n", "line 2: layers: 0..3 is outside 1..32"},
        {"splits: {random: [0]}\nlayers: 3-1\n", "line 2: layers: '3-1' is not a number or a range"},
        {"layers: 1\nsplits:\n  random: [0]\n  dissimilar: maybe\n", "line 4: splits.dissimilar: 'maybe' is not true or false"},
        {"dataset: {kind: cifar10}\nlayers: 1\nsplits:\n  dissimilar: true\n", "line 4: splits.dissimilar: no dissimilar split is defined for cifar10"},
        {"dataset: {kind: imagenet}\n", "line 1: dataset.kind: 'imagenet' is not"},
        {"splits: {random: [0]}\nlayers: 1\nvariants: [random]\nfinetune: finetuned\n", "line 3: variants: the random control is frozen by definition"},
        {"splits: {random: [0]}\nlayers: 1\nvariants: [selffer, selfer]\n", "line 3: variants: 'selfer' is not one of selffer, transfer, random"},
        {"splits: {random: [0]}\nlayers: 1\ndirections: A->C\n", "line 3: directions: 'A->C' is not one of"},
        {"splits: {random: [0]}\nlayers: 1\ntrain:\n  epochs: -2\n", "line 4: train.epochs:"},
        {"splits: {random: [0]}\nlayers: 1\ntrain:\n  momentun: 0.9\n", "line 4: train: unknown key 'momentun'"},
        {"splits: {random: [0]}\nlayers: 1\nmetric: top0\n", "line 3: metric: 'top0' is not final, best or topK"},
        /* tfq report refuses these: so must the grid (a bug: it took them) */
        {"splits: {random: [0]}\nlayers: 1\nmetric: top05\n", "line 3: metric: 'top05' is not final, best or topK"},
        {"splits: {random: [0]}\nlayers: 1\nmetric: top+5\n", "line 3: metric: 'top+5' is not final, best or topK"},
        {"splits: {random: [0]}\nlayers: 1\nseeds: [1]\nrepeats: 2\n", "line 3: seeds: give seeds or repeats, not both"},
        {"splits: {random: [0]}\nlayers: 1\nlayers: 2\n", "line 3: grid: 'layers' is given twice"},
        {"splits: {random: [0, 0]}\nlayers: 1\n", "line 1: splits.random: 0 is listed twice"},
        {"layers: 1\nsplits:\n  custom:\n    - {name: s, A: [0, 1], B: [1, 2]}\n", "line 4: splits.custom: class 1 is in both A and B"},
        {"layers: 1\nsplits:\n  custom:\n    - {name: s, A: [0, 10], B: [1]}\n", "line 4: splits.custom.A: 10..10 is outside 0..9"},
        {"layers: 1\nsplits: {random: [0]}\nnet: [conv 16 5, blah]\n", "line 3: net:"},
        {"splits: {random: [0]\nlayers: 1\n", "line 2 column 1: not YAML"},
        {"layers: 1\n", "splits: no split"},
        {"- a\n- b\n", "line 1: the grid file is not a mapping"},
        {"splits: {random: [0]}\nlayers: 1\ndataset:\n  limit_train: lots\n", "line 4: dataset.limit_train: 'lots' is not a whole number"},
        {"splits: {random: [0]}\nlayers: 1\ndataset:\n  fingerprint: abc\n", "line 4: dataset.fingerprint: not 64 lowercase hex digits"},
        {"splits: {random: [0]}\nlayers: 1\nnet: []\n", "line 3: net: the list of operations is empty"},
        {"splits: {random: [0]}\nlayers: 1\n---\nlayers: 2\n", "line 3: a second YAML document ('---')"},
        {"splits: {random: [0]}\nlayers: 1\n...\n%TAG ! tag:x,2024:\n---\na: 1\n", "line 4: a YAML directive"},
    };
    static gridspec g;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tfq_error e = {0};
        int rc = gridspec_parse(cases[i].text, &g, &e);
        CHECK_MSG(rc != 0, "case %zu parsed: %s", i, cases[i].text);
        CHECK_MSG(strstr(e.msg, cases[i].want) != NULL,
                  "case %zu: '%s' does not say '%s'", i, e.msg, cases[i].want);
    }
    /* no fingerprint: no expansion */
    tfq_error e = {0};
    char *jobs = NULL;
    CHECK(gridspec_parse("splits: {random: [0]}\nlayers: 1\n", &g, &e) == 0);
    CHECK(gridspec_expand(&g, &jobs, &e) != 0);
    CHECK(strstr(e.msg, "fingerprint") != NULL);
    CHECK(jobs == NULL);
    return 0;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "splits: " then depth [ and as many ], then rest: malloc'd. */
static char *nested(int depth, const char *rest)
{
    size_t n = 8 + 2 * (size_t)depth + strlen(rest);
    char *t = malloc(n + 1);
    if (t == NULL)
        return NULL;
    memcpy(t, "splits: ", 8);
    memset(t + 8, '[', (size_t)depth);
    memset(t + 8 + depth, ']', (size_t)depth);
    memcpy(t + 8 + 2 * (size_t)depth, rest, strlen(rest) + 1);
    return t;
}

/* A parse within the limits takes time linear in the file (a deadline
 * that the quadratic parse of the 1 MiB file, about 25 minutes, would
 * miss by far, and a slow machine meets by far: it takes milliseconds). */
#define PARSE_DEADLINE_S 30.0

/* Files made to make the parser work: nesting, anchors, nodes and NUL
 * bytes are refused, each naming the limit and where, in a time that does
 * not grow with the square of the file. */
static int test_hostile(void)
{
    static gridspec g;
    tfq_error e = {0};
    /* 240 KB and 1 MiB of nested lists: refused at the 32nd level (the
     * root mapping is the first) */
    int depths[] = {120000, 524288};
    for (int i = 0; i < 2; i++) {
        char *t = nested(depths[i], "\n");
        CHECK(t != NULL);
        double t0 = seconds();
        int rc = gridspec_parse(t, &g, &e);
        double took = seconds() - t0;
        free(t);
        CHECK(rc == TFQ_EINVAL);
        CHECK_MSG(strstr(e.msg, "line 1 column 40: lists and mappings nested "
                         "deeper than 32 levels") != NULL, "%s", e.msg);
        CHECK_MSG(took < PARSE_DEADLINE_S, "%d levels took %.1f s",
                  depths[i], took);
    }
    /* 31 levels below the root: past the nesting check (refused for what
     * it means instead) */
    char *t = nested(GRID_MAX_DEPTH - 1, "\n");
    CHECK(t != NULL);
    CHECK(gridspec_parse(t, &g, &e) != 0);
    free(t);
    CHECK_MSG(strstr(e.msg, "nested") == NULL, "%s", e.msg);
    /* the deepest level allowed, over and over, to nearly GRID_MAX_NODES:
     * linear */
    size_t cap = 1 << 20, n = 0;
    char *big = malloc(cap + 64);
    CHECK(big != NULL);
    n += (size_t)sprintf(big, "layers: [");
    for (int nodes = 3; nodes + GRID_MAX_DEPTH < GRID_MAX_NODES;
         nodes += GRID_MAX_DEPTH - 2) {
        memset(big + n, '[', GRID_MAX_DEPTH - 2);
        memset(big + n + GRID_MAX_DEPTH - 2, ']', GRID_MAX_DEPTH - 2);
        n += 2 * (GRID_MAX_DEPTH - 2);
        big[n++] = ',';
    }
    strcpy(big + n, "]\n");
    double t0 = seconds();
    CHECK(gridspec_parse(big, &g, &e) != 0);
    double took = seconds() - t0;
    CHECK_MSG(strstr(e.msg, "line 1: layers: expected a list of numbers") !=
                  NULL, "%s", e.msg);
    CHECK_MSG(took < PARSE_DEADLINE_S, "%zu bytes at depth %d took %.1f s",
              n, GRID_MAX_DEPTH, took);
    /* 1 MiB of numbers: refused at node GRID_MAX_NODES + 1 */
    n = (size_t)sprintf(big, "layers: [");
    while (n + 8 < cap)
        n += (size_t)sprintf(big + n, "1,");
    strcpy(big + n, "1]\n");
    CHECK(gridspec_parse(big, &g, &e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "line 1: more than 65536 values, lists and "
                     "mappings") != NULL, "%s", e.msg);
    /* anchors: each new one is checked against every other by libyaml */
    n = (size_t)sprintf(big, "layers: [");
    for (int i = 0; n + 32 < cap; i++)
        n += (size_t)sprintf(big + n, "&a%d 1,", i);
    strcpy(big + n, "1]\n");
    t0 = seconds();
    CHECK(gridspec_parse(big, &g, &e) == TFQ_EINVAL);
    took = seconds() - t0;
    CHECK_MSG(strstr(e.msg, "line 1: more than 64 anchors") != NULL, "%s",
              e.msg);
    CHECK_MSG(took < PARSE_DEADLINE_S, "anchors took %.1f s", took);
    free(big);
    /* a few anchors are fine */
    CHECK_MSG(gridspec_parse("splits: {random: &s [0, 1]}\nlayers: &n 1\n"
                             "seeds: *s\n", &g, &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(g.nseeds, 2);
    /* a NUL byte: not the end of the file, an error naming its offset */
    static const char with_nul[] = "splits: {random: [0]}\nlayers: 1\n\0"
                                   "layers: 2\n";
    CHECK(gridspec_parse_bytes(with_nul, sizeof with_nul - 1, &g, &e) ==
          TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "line 3 (byte offset 32): a NUL byte") != NULL,
              "%s", e.msg);
    return 0;
}

/* One value of a setting in a job spec and in a grid's train: section:
 * both take it, or both refuse it with a message naming the setting. */
static int check_value(const char *name, double v, int want_ok)
{
    char text[128], grid[256];
    snprintf(text, sizeof text, "kind = train\n%s = %.17g\n", name, v);
    snprintf(grid, sizeof grid, "splits: {random: [0]}\nlayers: 1\n"
             "train:\n  %s: %.17g\n", name, v);
    static jobspec js;
    static gridspec g;
    tfq_error je = {0}, ge = {0};
    int spec_ok = jobspec_parse(text, &js, &je) == 0;
    int grid_ok = gridspec_parse(grid, &g, &ge) == 0;
    CHECK_MSG(spec_ok == want_ok, "job spec %s = %.17g: %s", name, v,
              spec_ok ? "taken" : je.msg);
    CHECK_MSG(grid_ok == want_ok, "grid train.%s: %.17g: %s", name, v,
              grid_ok ? "taken" : ge.msg);
    if (!want_ok) {
        char where[64];
        snprintf(where, sizeof where, "line 4: train.%s:", name);
        CHECK_MSG(strstr(je.msg, name) && strstr(je.msg, "bad value"),
                  "job spec %s: %s", name, je.msg);
        CHECK_MSG(strstr(ge.msg, where) && strstr(ge.msg, "bad value"),
                  "grid %s: %s", name, ge.msg);
    }
    return 0;
}

/* The settings table (common/settings.c) is the one range of every entry
 * point: a grid's train: keys are its grid settings, the same set as
 * always, and each takes its range's ends and refuses what lies past them
 * exactly as a job spec does (tfq train: tests/test_cli.sh). */
static int test_settings_agree(void)
{
    static const char *const keys[] = {
        "epochs", "batch", "lr", "momentum", "weight_decay", "lr_step",
        "lr_gamma", "bias_lr_mult", "bias_decay_mult", "cache_mb",
        "ckpt_every", "init", NULL};
    const char *got[SETTING_COUNT + 1];
    settings_grid_keys(got);
    for (int i = 0; keys[i] != NULL || got[i] != NULL; i++)
        CHECK_MSG(keys[i] && got[i] && strcmp(keys[i], got[i]) == 0,
                  "grid key %d: %s, expected %s", i, got[i] ? got[i] : "end",
                  keys[i] ? keys[i] : "end");
    for (int i = 0; got[i] != NULL; i++) {
        const setting *s = settings_find_grid(got[i]);
        if (s->type == SETTING_ENUM)
            continue; /* words: test_sweep_errors */
        double step = s->type == SETTING_DOUBLE ? 0.5 : 1;
        /* a grid checks a train: key with the reference net, which at
         * batch 65536 is over the memory budget: a smaller batch there */
        double top = s == &settings_table[SETTING_BATCH] ? 256 : s->hi;
        if (check_value(s->name, s->lo, 1) || check_value(s->name, top, 1) ||
            check_value(s->name, s->hi + step, 0) ||
            check_value(s->name, s->lo - step, 0))
            return 1;
    }
    /* the example of the issue: lr 10 is taken, 10.5 is not */
    if (check_value("lr", 10, 1) || check_value("lr", 10.5, 0))
        return 1;
    /* a metric tfq report takes, the grid takes too */
    static gridspec g;
    tfq_error e = {0};
    CHECK_MSG(gridspec_parse("splits: {random: [0]}\nlayers: 1\n"
                             "metric: top2000\n", &g, &e) == 0, "%s", e.msg);
    return 0;
}

/* A swept grid: train: keys given as lists expand to their product, the
 * combinations in the settings table's order whatever the file's, each
 * under its own names, with its own base nets, the values canonical. */
static int test_sweep_expand(void)
{
    static gridspec g;
    jobfile f;
    if (expand("splits: {random: [0]}\nlayers: 1-2\nvariants: [transfer, "
               "random]\ntrain: {init: [he, caffe], epochs: 2, lr: [0.010, "
               "1e-3, 0.1]}\n", &g, &f))
        return 1;
    CHECK_EQ_INT(g.nsweeps, 2);
    CHECK(strcmp(g.sweeps[0].key, "lr") == 0);
    CHECK(strcmp(g.sweeps[1].key, "init") == 0);
    CHECK(strcmp(g.sweeps[1].spec_key, "weight_init") == 0);
    CHECK(strcmp(g.sweeps[0].values[0], "0.01") == 0);
    CHECK(strcmp(g.sweeps[0].values[1], "0.001") == 0);
    CHECK_EQ_INT(f.njobs, 3 * 2 * (2 + 2 * 2));
    const jobfile_job *j = find(&f, "lr=0.001/init=caffe/random0/1/A2B");
    CHECK(j != NULL);
    CHECK(strcmp(j->sweep, "lr=0.001/init=caffe") == 0);
    CHECK(j->spec.lr == 0.001 && j->spec.weight_init == WEIGHT_INIT_CAFFE);
    CHECK_EQ_INT(j->spec.epochs, 2);
    CHECK(strcmp(f.jobs[j->init_from].name,
                 "lr=0.001/init=caffe/random0/1/baseA") == 0);
    const jobfile_job *r = find(&f, "lr=0.1/init=he/random0/1/R1B");
    CHECK(r != NULL && r->spec.weight_init == WEIGHT_INIT_HE);
    /* every name once; a list of one is a coordinate, a scalar is not */
    for (int a = 0; a < f.njobs; a++)
        for (int b = a + 1; b < f.njobs; b++)
            CHECK(strcmp(f.jobs[a].name, f.jobs[b].name) != 0);
    /* the same value written alike gives the same job: 0.010 is 0.01 */
    const jobfile_job *base = find(&f, "lr=0.01/init=he/random0/1/baseB");
    CHECK(base != NULL);
    char id[HASH_HEX_BYTES];
    snprintf(id, sizeof id, "%s", base->identity);
    jobfile_release(&f);
    if (expand("splits: {random: [0]}\nlayers: 1\ntrain: {epochs: 2, lr: "
               "[0.01]}\n", &g, &f))
        return 1;
    base = find(&f, "lr=0.01/random0/1/baseB");
    CHECK(base != NULL && strcmp(base->sweep, "lr=0.01") == 0);
    jobfile_release(&f);
    if (expand("splits: {random: [0]}\nlayers: 1\ntrain: {epochs: 2, lr: "
               "0.010}\n", &g, &f))
        return 1;
    base = find(&f, "random0/1/baseB");
    CHECK(base != NULL && base->sweep[0] == '\0');
    jobfile_release(&f);
    if (expand("splits: {random: [0]}\nlayers: 1\ntrain: {epochs: 2, lr: "
               "[0.01], init: [he]}\n", &g, &f))
        return 1;
    base = find(&f, "lr=0.01/init=he/random0/1/baseB");
    CHECK(base != NULL && strcmp(base->identity, id) == 0);
    jobfile_release(&f);
    return 0;
}

/* A sweep's errors name the line, the key and the item. */
static int test_sweep_errors(void)
{
    static const struct {
        const char *train, *want;
    } cases[] = {
        {"{lr: [[0.01, 0.1]]}", "line 3: train.lr: item 1 is a list: a "
                                "sweep lists values"},
        {"{lr: [0.01, {a: 1}]}", "train.lr: item 2 is a mapping"},
        {"{lr: []}", "line 3: train.lr: the list is empty"},
        {"{lr: [0.01, 0.1, 0.010]}", "train.lr: item 3, '0.010', is the "
                                     "value 0.01 of item 1 again"},
        {"{init: [he, he]}", "train.init: item 2, 'he', is the value he of "
                             "item 1 again"},
        {"{epochs: [1, 2, x]}", "train.epochs: item 3: bad value 'x': "
                                "expected an integer from 1 to 1024"},
        {"{lr: [0.01, 11]}", "train.lr: item 2: bad value '11': expected a "
                             "number from 1e-09 to 10"},
        {"{init: [he, xavier]}", "train.init: item 2: bad value 'xavier': "
                                 "expected one of he, caffe, torch"},
        {"{init: xavier}", "train.init: job spec line 2: weight_init: bad value 'xavier': "
                           "expected one of he, caffe, torch"},
        {"{weight_init: he}", "unknown key 'weight_init'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "splits: {random: [0]}\nlayers: 1\n"
                 "train: %s\n", cases[i].train);
        static gridspec g;
        tfq_error e = {0};
        CHECK_MSG(gridspec_parse(text, &g, &e) == TFQ_EINVAL, "%s taken",
                  cases[i].train);
        CHECK_MSG(strstr(e.msg, cases[i].want) != NULL, "%s: %s",
                  cases[i].train, e.msg);
    }
    return 0;
}

/* base: {A, B}: no base nets; each derived net copies from its task's
 * imported checkpoint (init = its sha256); the random control copies
 * nothing.  A file name is resolved into "sha256:HEX" in the text. */
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
static int test_base(void)
{
    static gridspec g;
    jobfile f;
    tfq_error e = {0};
    const char *grid = "splits: {random: [0]}\ndirections: both\n"
                       "layers: 1-2\nvariants: [selffer, transfer, random]\n"
                       "finetune: both\nbase: {A: a.safetensors, B: "
                       "\"dir/\u00e9b.ckpt\"}\n";
    CHECK_MSG(gridspec_parse(grid, &g, &e) == 0, "%s", e.msg);
    CHECK(g.has_base && strcmp(g.base_file[1], "dir/\u00e9b.ckpt") == 0);
    snprintf(g.fingerprint, sizeof g.fingerprint, "%s", FP);
    char *jobs = NULL;
    CHECK(gridspec_expand(&g, &jobs, &e) == TFQ_EINVAL && jobs == NULL);
    CHECK_MSG(strstr(e.msg, "base.A: 'a.safetensors'") != NULL, "%s", e.msg);
    memcpy(g.base_sha[0], SHA_A, sizeof g.base_sha[0]);
    memcpy(g.base_sha[1], SHA_B, sizeof g.base_sha[1]);
    char *resolved = NULL;
    CHECK_MSG(gridspec_base_resolved(grid, &g, &resolved, &e) == 0, "%s",
              e.msg);
    CHECK_MSG(strstr(resolved, "base: {A: \"sha256:" SHA_A "\", B: "
                     "\"sha256:" SHA_B "\"}\n") != NULL, "%s", resolved);
    int rc = expand(resolved, &g, &f);
    free(resolved);
    CHECK(rc == 0);
    CHECK_EQ_INT(f.njobs, 2 * 2 * 5); /* directions x n x nets, no bases */
    for (int i = 0; i < f.njobs; i++) {
        const jobfile_job *j = &f.jobs[i];
        const char *job = strrchr(j->name, '/') + 1;
        CHECK_MSG(strstr(job, "base") == NULL, "%s", j->name);
        CHECK_MSG(j->init_from < 0 && j->nafter == 0, "%s waits", j->name);
        /* XnY copies from X's base: A1B from A's file, B2B from B's */
        const char *want = job[0] == 'R' ? "" : job[0] == 'A' ? SHA_A : SHA_B;
        CHECK_MSG(strcmp(j->spec.init, want) == 0, "%s copies from '%s'",
                  j->name, j->spec.init);
        CHECK_EQ_INT(j->spec.copy_layers, job[0] == 'R' ? 0 : j->n);
    }
    CHECK(find(&f, "random0/1/A2B+") && find(&f, "random0/1/R1A"));
    jobfile_release(&f);
    CHECK(gridspec_parse("splits: {random: [0]}\nseeds: [1, 2]\nlayers: 1\n"
                         "base: {A: a, B: b}\n", &g, &e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "line 4: base: imported base nets need exactly "
                     "one split and one seed") != NULL, "%s", e.msg);
    CHECK(gridspec_parse("splits: {random: [0]}\nlayers: 1\n"
                         "base: {A: a}\n", &g, &e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "selffer nets copy from task B's base: give "
                     "base.B") != NULL, "%s", e.msg);
    CHECK(gridspec_parse("splits: {random: [0]}\nlayers: 1\n"
                         "base: {A: \"sha256:12\", B: b}\n", &g,
                         &e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "base.A: 'sha256:' is not followed") != NULL,
              "%s", e.msg);
    return 0;
}

static const test_case cases[] = {
    {"sweep_expand", test_sweep_expand},
    {"sweep_errors", test_sweep_errors},
    {"expand_table", test_expand_table},
    {"random_split", test_random_split},
    {"presets", test_presets},
    {"identity", test_identity},
    {"errors", test_errors},
    {"hostile", test_hostile},
    {"settings_agree", test_settings_agree},
    {"base", test_base},
};

int main(int argc, char **argv)
{
    job_engine_register(); /* jobs are checked as the tfq executable checks them */
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
