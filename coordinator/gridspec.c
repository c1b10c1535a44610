#include "gridspec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/rng.h"
#include "common/text.h"
#include "common/data_kind.h"
#include "common/jobspec.h"
#include "common/metric.h"
#include "common/settings.h"

/* The semantic partitions of PAPER.md, task A first. */
static const int s_fashion_tops[] = {0, 2, 3, 4, 6}; /* upper-body garments */
static const int s_cifar100_made[] = {3, 5, 6, 9, 18, 19}; /* man-made */

/* ---- reading the YAML tree ---------------------------------------------- */

typedef struct {
    yaml_document_t *doc;
    tfq_error *e;
} reader;

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static int fail(reader *r, const yaml_node_t *n, const char *key,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tfq_error_set(r->e, TFQ_EINVAL, "line %d: %s: %s", line_of(n), key,
                         msg);
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                       : NULL;
}

static int is_word(const char *s)
{
    if (*s == '\0' || strlen(s) >= GRID_WORD_BYTES)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int get_int(reader *r, const yaml_node_t *n, const char *key, long lo,
                   long hi, int *out)
{
    const char *v = scalar(n);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *end != '\0' || x < lo || x > hi)
        return fail(r, n, key, "'%.40s' is not a whole number from %ld to %ld",
                    v ? v : "(not a scalar)", lo, hi);
    *out = (int)x;
    return 0;
}

static int get_str(reader *r, const yaml_node_t *n, const char *key,
                   char *out, size_t bytes)
{
    const char *v = scalar(n);
    if (v == NULL || *v == '\0')
        return fail(r, n, key, "expected a value");
    if (strlen(v) >= bytes)
        return fail(r, n, key, "longer than %zu characters", bytes - 1);
    snprintf(out, bytes, "%s", v);
    return 0;
}

static int get_bool(reader *r, const yaml_node_t *n, const char *key,
                    int *out)
{
    const char *v = scalar(n);
    if (v && (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")))
        *out = 1;
    else if (v && (!strcmp(v, "false") || !strcmp(v, "no") ||
                   !strcmp(v, "off")))
        *out = 0;
    else
        return fail(r, n, key, "'%.40s' is not true or false",
                    v ? v : "(not a scalar)");
    return 0;
}

/* Whole numbers from lo to hi, as a list ([0, 1, 2]), one number, or a
 * scalar of ranges and numbers ("1-7", "1,3,5-7").  Ascending, each once. */
static int get_ints(reader *r, const yaml_node_t *n, const char *key, int lo,
                    int hi, int *out, int *count, int max)
{
    int got = 0;
    char text[512];
    if (n->type == YAML_SEQUENCE_NODE) {
        size_t off = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            const char *v = scalar(yaml_document_get_node(r->doc, *it));
            if (v == NULL || off + strlen(v) + 2 >= sizeof text)
                return fail(r, n, key, "expected a list of numbers");
            off += (size_t)snprintf(text + off, sizeof text - off, "%s%s",
                                    off ? "," : "", v);
        }
        if (off == 0)
            return fail(r, n, key, "the list is empty");
    } else if (get_str(r, n, key, text, sizeof text) != 0) {
        return TFQ_EINVAL;
    }
    char *save = NULL;
    for (char *t = strtok_r(text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        char *end;
        long a = strtol(t, &end, 10), b = a;
        if (end != t && *end == '-')
            b = strtol(end + 1, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (end == t || *end != '\0' || a > b)
            return fail(r, n, key, "'%.40s' is not a number or a range a-b", t);
        if (a < lo || b > hi)
            return fail(r, n, key, "%ld..%ld is outside %d..%d", a, b, lo, hi);
        for (long x = a; x <= b; x++) {
            for (int i = 0; i < got; i++)
                if (out[i] == x)
                    return fail(r, n, key, "%ld is listed twice", x);
            if (got == max)
                return fail(r, n, key, "more than %d values", max);
            out[got++] = (int)x;
        }
    }
    for (int i = 1; i < got; i++) /* insertion sort: short lists */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    *count = got;
    return 0;
}

/* Calls fn for every key of a mapping, after checking the key is one of
 * allowed and appears once. */
typedef int (*key_fn)(reader *r, gridspec *g, const char *key,
                      const yaml_node_t *key_node, const yaml_node_t *value);

static int each_key(reader *r, gridspec *g, const yaml_node_t *map,
                    const char *what, const char *const *allowed, key_fn fn)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(r, map, what, "expected a mapping of keys");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(r->doc, p->value);
        const char *key = scalar(k);
        if (key == NULL)
            return fail(r, k, what, "a key must be a plain word");
        int known = 0;
        for (int i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            char list[512] = "";
            size_t off = 0;
            for (int i = 0; allowed[i] && off < sizeof list; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
                                        i ? ", " : "", allowed[i]);
            return fail(r, k, what, "unknown key '%.40s' (known: %s)", key,
                        list);
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (strcmp(scalar(yaml_document_get_node(r->doc, q->key)), key) == 0)
                return fail(r, k, what, "'%s' is given twice", key);
        int rc = fn(r, g, key, k, v);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- sections ----------------------------------------------------------- */

static int on_dataset(reader *r, gridspec *g, const char *key,
                      const yaml_node_t *k, const yaml_node_t *v)
{
    (void)k;
    char path[64];
    snprintf(path, sizeof path, "dataset.%s", key);
    if (strcmp(key, "kind") == 0) {
        data_kind kind;
        if (get_str(r, v, path, g->dataset, sizeof g->dataset) != 0)
            return TFQ_EINVAL;
        if (data_kind_parse(g->dataset, &kind) != 0 ||
            strcmp(g->dataset, "idx") == 0)
            return fail(r, v, path, "'%s' is not fashion-mnist, mnist, "
                        "cifar10 or cifar100", g->dataset);
        return 0;
    }
    if (strcmp(key, "path") == 0)
        return get_str(r, v, path, g->data_path, sizeof g->data_path);
    if (strcmp(key, "fingerprint") == 0) {
        if (get_str(r, v, path, g->fingerprint, sizeof g->fingerprint) != 0)
            return TFQ_EINVAL;
        int ok = strlen(g->fingerprint) == 64;
        for (int i = 0; ok && i < 64; i++)
            ok = isxdigit((unsigned char)g->fingerprint[i]) &&
                 !isupper((unsigned char)g->fingerprint[i]);
        return ok ? 0 : fail(r, v, path, "not 64 lowercase hex digits");
    }
    return get_int(r, v, path, 0, 100000000,
                   strcmp(key, "limit_train") == 0 ? &g->limit_train
                                                   : &g->limit_test);
}

/* A train: key given one value: a line of every job's spec, checked as a
 * job spec checks it. */
static int train_value(reader *r, gridspec *g, const setting *st,
                       const char *path, const yaml_node_t *v)
{
    char line[160], spec[256];
    const char *val = scalar(v);
    if (val == NULL || *val == '\0' || strlen(val) > 64)
        return fail(r, v, path, "expected a number%s, or a list of them",
                    st->type == SETTING_ENUM ? " or word" : "");
    snprintf(line, sizeof line, "%s = %s\n", st->name, val);
    snprintf(spec, sizeof spec, "kind = train\n%s", line);
    jobspec js;
    tfq_error je = {0};
    if (jobspec_parse(spec, &js, &je) != 0)
        return fail(r, v, path, "%s", je.msg);
    size_t used = strlen(g->train);
    if (used + strlen(line) >= sizeof g->train)
        return fail(r, v, path, "the train section is too long");
    memcpy(g->train + used, line, strlen(line) + 1);
    return 0;
}

/* The length of the longest sweep coordinate, "lr=0.01/init=caffe". */
static size_t sweep_name_max(const gridspec *g)
{
    size_t n = 0;
    for (int i = 0; i < g->nsweeps; i++) {
        size_t longest = 0;
        for (int k = 0; k < g->sweeps[i].nvalues; k++)
            if (strlen(g->sweeps[i].values[k]) > longest)
                longest = strlen(g->sweeps[i].values[k]);
        n += (i ? 1 : 0) + strlen(g->sweeps[i].key) + 1 + longest;
    }
    return n;
}

/* A train: key given a list: a sweep.  Each item a value of the setting,
 * kept canonical (settings_format), each once; an error names the item by
 * its position (1-based). */
static int train_sweep(reader *r, gridspec *g, const setting *st,
                       const char *path, const yaml_node_t *v)
{
    grid_sweep sw = {settings_grid_key(st), st->name,
                     (int)(st - settings_table), {{0}}, 0};
    int pos = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(r->doc, *it);
        const char *val = scalar(item);
        char what[32];
        double x;
        tfq_error se = {0};
        snprintf(what, sizeof what, "item %d", ++pos);
        if (val == NULL)
            return fail(r, item, path, "%s is a %s: a sweep lists values",
                        what, item->type == YAML_SEQUENCE_NODE ? "list"
                                                               : "mapping");
        if (sw.nvalues == GRID_MAX_SWEEP_VALUES)
            return fail(r, item, path, "more than %d values",
                        GRID_MAX_SWEEP_VALUES);
        if (settings_parse(st, what, val, &x, &se) != 0)
            return fail(r, item, path, "%s", se.msg);
        char *canon = sw.values[sw.nvalues];
        settings_format(st, x, canon, GRID_WORD_BYTES);
        for (int k = 0; k < sw.nvalues; k++)
            if (strcmp(sw.values[k], canon) == 0)
                return fail(r, item, path, "%s, '%s', is the value %s of "
                            "item %d again", what, val, canon, k + 1);
        sw.nvalues++;
    }
    if (sw.nvalues == 0)
        return fail(r, v, path, "the list is empty (give a value, or a "
                    "list of at least one)");
    int at = g->nsweeps++; /* kept in the settings table's order */
    while (at > 0 && g->sweeps[at - 1].setting > sw.setting) {
        g->sweeps[at] = g->sweeps[at - 1];
        at--;
    }
    g->sweeps[at] = sw;
    if (sweep_name_max(g) >= GRID_SWEEP_BYTES)
        return fail(r, v, path, "the sweep's coordinates (key=value/...) "
                    "take more than %d characters of each job's name",
                    GRID_SWEEP_BYTES - 1);
    return 0;
}

static int on_train(reader *r, gridspec *g, const char *key,
                    const yaml_node_t *k, const yaml_node_t *v)
{
    (void)k;
    char path[64];
    snprintf(path, sizeof path, "train.%s", key);
    const setting *st = settings_find_grid(key);
    return v->type == YAML_SEQUENCE_NODE ? train_sweep(r, g, st, path, v)
                                         : train_value(r, g, st, path, v);
}

static int split_add(reader *r, gridspec *g, const yaml_node_t *at,
                     const char *name, const char *similarity)
{
    if (g->nsplits == GRID_MAX_SPLITS)
        return fail(r, at, "splits", "more than %d splits", GRID_MAX_SPLITS);
    for (int i = 0; i < g->nsplits; i++)
        if (strcmp(g->splits[i].name, name) == 0)
            return fail(r, at, "splits", "two splits are named '%s'", name);
    grid_split *s = &g->splits[g->nsplits++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->similarity, sizeof s->similarity, "%s", similarity);
    return 0;
}

/* A random split: the classes shuffled by seed, cut in two. */
static void split_random(grid_split *s, int classes, int seed)
{
    int perm[GRID_MAX_CLASSES];
    for (int i = 0; i < classes; i++)
        perm[i] = i;
    uint64_t key = rng_key((uint64_t)seed, 0x73706c6974 /* "split" */, 0);
    for (int i = classes - 1; i > 0; i--) {
        int j = (int)rng_below(key, (uint64_t)i, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int half = classes / 2;
    int in_a[GRID_MAX_CLASSES] = {0};
    for (int i = 0; i < half; i++)
        in_a[perm[i]] = 1;
    for (int c = 0; c < classes; c++)
        if (in_a[c])
            s->a[s->na++] = c;
        else
            s->b[s->nb++] = c;
}

/* Task A is the partition's listed classes, B the rest. */
static void split_partition(grid_split *s, int classes, const int *a, int na)
{
    int in_a[GRID_MAX_CLASSES] = {0};
    for (int i = 0; i < na; i++)
        in_a[a[i]] = 1;
    for (int c = 0; c < classes; c++)
        if (in_a[c])
            s->a[s->na++] = c;
        else
            s->b[s->nb++] = c;
}

static int on_custom_split(reader *r, gridspec *g, const yaml_node_t *m)
{
    static const char *const keys[] = {"name", "A", "B", NULL};
    if (m->type != YAML_MAPPING_NODE)
        return fail(r, m, "splits.custom", "each split is a mapping with "
                    "name, A and B");
    const yaml_node_t *name = NULL, *a = NULL, *b = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start;
         p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(r->doc, p->value);
        const char *key = scalar(k);
        int i = 0;
        while (keys[i] && (key == NULL || strcmp(keys[i], key) != 0))
            i++;
        if (keys[i] == NULL)
            return fail(r, k, "splits.custom", "unknown key '%.40s' (known: "
                        "name, A, B)", key ? key : "?");
        const yaml_node_t **slot = i == 0 ? &name : i == 1 ? &a : &b;
        if (*slot != NULL)
            return fail(r, k, "splits.custom", "'%s' is given twice", key);
        *slot = v;
    }
    if (name == NULL || a == NULL || b == NULL)
        return fail(r, m, "splits.custom", "a split needs name, A and B");
    const char *nm = scalar(name);
    if (nm == NULL || !is_word(nm))
        return fail(r, name, "splits.custom.name", "'%.40s' is not a word of "
                    "letters, digits, _ and - (at most %d)", nm ? nm : "?",
                    GRID_WORD_BYTES - 1);
    if (strncmp(nm, "random", 6) == 0 || strcmp(nm, "dissimilar") == 0)
        return fail(r, name, "splits.custom.name", "'%s' is a built-in "
                    "split's name", nm);
    int rc = split_add(r, g, name, nm, "custom");
    if (rc != 0)
        return rc;
    grid_split *s = &g->splits[g->nsplits - 1];
    if (get_ints(r, a, "splits.custom.A", 0, g->classes - 1, s->a, &s->na,
                 GRID_MAX_CLASSES) ||
        get_ints(r, b, "splits.custom.B", 0, g->classes - 1, s->b, &s->nb,
                 GRID_MAX_CLASSES))
        return TFQ_EINVAL;
    for (int i = 0; i < s->na; i++)
        for (int j = 0; j < s->nb; j++)
            if (s->a[i] == s->b[j])
                return fail(r, b, "splits.custom", "class %d is in both A "
                            "and B", s->a[i]);
    return 0;
}

static int on_splits(reader *r, gridspec *g, const char *key,
                     const yaml_node_t *k, const yaml_node_t *v)
{
    if (strcmp(key, "random") == 0) {
        int seeds[GRID_MAX_SPLITS], n = 0;
        if (get_ints(r, v, "splits.random", 0, 1000000, seeds, &n,
                     GRID_MAX_SPLITS) != 0)
            return TFQ_EINVAL;
        for (int i = 0; i < n; i++) {
            char name[GRID_WORD_BYTES];
            snprintf(name, sizeof name, "random%d", seeds[i]);
            if (split_add(r, g, v, name, "random") != 0)
                return TFQ_EINVAL;
            split_random(&g->splits[g->nsplits - 1], g->classes, seeds[i]);
        }
        return 0;
    }
    if (strcmp(key, "dissimilar") == 0) {
        int on = 0;
        if (get_bool(r, v, "splits.dissimilar", &on) != 0)
            return TFQ_EINVAL;
        if (!on)
            return 0;
        const int *a = NULL;
        int na = 0;
        if (strcmp(g->dataset, "fashion-mnist") == 0) {
            a = s_fashion_tops;
            na = (int)(sizeof s_fashion_tops / sizeof *s_fashion_tops);
        } else if (strcmp(g->dataset, "cifar100") == 0) {
            a = s_cifar100_made;
            na = (int)(sizeof s_cifar100_made / sizeof *s_cifar100_made);
        } else {
            return fail(r, k, "splits.dissimilar", "no dissimilar split is "
                        "defined for %s (only fashion-mnist and cifar100); "
                        "give a custom split", g->dataset);
        }
        if (split_add(r, g, k, "dissimilar", "dissimilar") != 0)
            return TFQ_EINVAL;
        split_partition(&g->splits[g->nsplits - 1], g->classes, a, na);
        return 0;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(r, v, "splits.custom", "expected a list of splits");
    for (yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++)
        if (on_custom_split(r, g, yaml_document_get_node(r->doc, *it)) != 0)
            return TFQ_EINVAL;
    return 0;
}

/* A list of words, or one word; *bits gets bit i for allowed[i]. */
static int get_words(reader *r, const yaml_node_t *v, const char *key,
                     const char *const *allowed, unsigned *bits)
{
    *bits = 0;
    const yaml_node_t *one[1] = {v};
    const yaml_node_t *const *items = one;
    int n = 1;
    yaml_node_t *list[16];
    if (v->type == YAML_SEQUENCE_NODE) {
        n = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top && n < 16; it++)
            list[n++] = yaml_document_get_node(r->doc, *it);
        items = (const yaml_node_t *const *)list;
        if (n == 0)
            return fail(r, v, key, "the list is empty");
    }
    for (int i = 0; i < n; i++) {
        const char *w = scalar(items[i]);
        int k = 0;
        while (allowed[k] && (w == NULL || strcmp(allowed[k], w) != 0))
            k++;
        if (allowed[k] == NULL) {
            char list_text[256] = "";
            size_t off = 0;
            for (int j = 0; allowed[j]; j++)
                off += (size_t)snprintf(list_text + off, sizeof list_text - off,
                                        "%s%s", j ? ", " : "", allowed[j]);
            return fail(r, items[i], key, "'%.40s' is not one of %s",
                        w ? w : "(not a scalar)", list_text);
        }
        if (*bits & 1u << k)
            return fail(r, items[i], key, "'%s' is listed twice", w);
        *bits |= 1u << k;
    }
    return 0;
}

/* base.A / base.B: a file of the submitter, or "sha256:HEX" once tfq
 * submit has resolved it. */
static int on_base(reader *r, gridspec *g, const char *key,
                   const yaml_node_t *k, const yaml_node_t *v)
{
    (void)k;
    char path[16], text[1100];
    int t = key[0] == 'A' ? 0 : 1;
    snprintf(path, sizeof path, "base.%s", key);
    if (get_str(r, v, path, text, sizeof text) != 0)
        return TFQ_EINVAL;
    g->has_base = 1;
    g->base_span[t][0] = (long)v->start_mark.index;
    g->base_span[t][1] = (long)v->end_mark.index;
    if (strncmp(text, "sha256:", 7) != 0) {
        if (strlen(text) >= sizeof g->base_file[t])
            return fail(r, v, path, "the file name is too long");
        snprintf(g->base_file[t], sizeof g->base_file[t], "%s", text);
        return 0;
    }
    int ok = strlen(text + 7) == HASH_HEX_BYTES - 1;
    for (const char *c = text + 7; ok && *c; c++)
        ok = isxdigit((unsigned char)*c) && !isupper((unsigned char)*c);
    if (!ok)
        return fail(r, v, path, "'sha256:' is not followed by 64 lowercase "
                    "hex digits");
    memcpy(g->base_sha[t], text + 7, HASH_HEX_BYTES);
    return 0;
}

static int on_top(reader *r, gridspec *g, const char *key,
                  const yaml_node_t *k, const yaml_node_t *v)
{
    (void)k;
    if (strcmp(key, "name") == 0) {
        if (get_str(r, v, key, g->name, sizeof g->name) != 0)
            return TFQ_EINVAL;
        for (const char *p = g->name; *p; p++)
            if (!isalnum((unsigned char)*p) && strchr("_-.+/", *p) == NULL)
                return fail(r, v, key, "'%s' has a character other than "
                            "letters, digits, _ - . + /", g->name);
        return 0;
    }
    if (strcmp(key, "net") == 0) {
        if (v->type == YAML_SEQUENCE_NODE) {
            size_t off = 0;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                const char *op = scalar(yaml_document_get_node(r->doc, *it));
                if (op == NULL || off + strlen(op) + 3 >= sizeof g->net)
                    return fail(r, v, key, "expected a list of operations "
                                "(at most %zu characters)", sizeof g->net);
                off += (size_t)snprintf(g->net + off, sizeof g->net - off,
                                        "%s%s", off ? "; " : "", op);
            }
            if (off == 0)
                return fail(r, v, key, "the list of operations is empty "
                            "(leave net out for the reference net)");
        } else if (get_str(r, v, key, g->net, sizeof g->net) != 0) {
            return TFQ_EINVAL;
        }
        netspec ns;
        tfq_error ne = {0};
        if (netspec_resolve(g->net, 1.0, &ns, &ne) != 0)
            return fail(r, v, key, "%s", ne.msg);
        g->learned = netspec_learned_layers(&ns);
        return 0;
    }
    if (strcmp(key, "directions") == 0) {
        static const char *const dirs[] = {"A->B", "B->A", "both", NULL};
        unsigned bits;
        if (get_words(r, v, key, dirs, &bits) != 0)
            return TFQ_EINVAL;
        g->a_to_b = (bits & 5) != 0;
        g->b_to_a = (bits & 6) != 0;
        return 0;
    }
    if (strcmp(key, "variants") == 0) {
        static const char *const vs[] = {"selffer", "transfer", "random",
                                         NULL};
        unsigned bits;
        if (get_words(r, v, key, vs, &bits) != 0)
            return TFQ_EINVAL;
        g->selffer = bits & 1;
        g->transfer = (bits >> 1) & 1;
        g->random = (bits >> 2) & 1;
        return 0;
    }
    if (strcmp(key, "finetune") == 0) {
        static const char *const fs[] = {"frozen", "finetuned", "both", NULL};
        unsigned bits;
        if (get_words(r, v, key, fs, &bits) != 0)
            return TFQ_EINVAL;
        g->frozen = (bits & 5) != 0;
        g->finetuned = (bits & 6) != 0;
        return 0;
    }
    if (strcmp(key, "layers") == 0)
        return get_ints(r, v, key, 1, GRID_MAX_LAYERS, g->layers, &g->nlayers,
                        GRID_MAX_LAYERS);
    if (strcmp(key, "seeds") == 0)
        return get_ints(r, v, key, 0, 1000000000, g->seeds, &g->nseeds,
                        GRID_MAX_SEEDS);
    if (strcmp(key, "repeats") == 0) {
        int n = 0;
        if (get_int(r, v, key, 1, GRID_MAX_SEEDS, &n) != 0)
            return TFQ_EINVAL;
        for (int i = 0; i < n; i++)
            g->seeds[i] = i + 1;
        g->nseeds = n;
        return 0;
    }
    if (strcmp(key, "metric") == 0) {
        metric m;
        if (get_str(r, v, key, g->metric, sizeof g->metric) != 0)
            return TFQ_EINVAL;
        if (metric_parse(g->metric, &m) != 0)
            return fail(r, v, key, "'%s' is not final, best or topK (the mean "
                        "of the K highest evaluations, e.g. top10)", g->metric);
        return 0;
    }
    return get_int(r, v, key, 1, 100, &g->max_attempts);
}

/* ---- the whole file ------------------------------------------------------ */

static const yaml_node_t *find_key(yaml_document_t *doc, const yaml_node_t *map,
                                   const char *key)
{
    if (map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(doc, p->key));
        if (k != NULL && strcmp(k, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

/* base: needs one split and one seed (the imported nets were trained on
 * one split, once), and the base of every task a derived net copies from. */
static int check_base(reader *r, gridspec *g, const yaml_node_t *root)
{
    if (!g->has_base)
        return 0;
    const yaml_node_t *at = find_key(r->doc, root, "base");
    if (g->nsplits != 1 || g->nseeds != 1)
        return fail(r, at, "base", "imported base nets need exactly one "
                    "split and one seed (the grid has %d and %d)", g->nsplits,
                    g->nseeds);
    for (int t = 0; t < 2; t++) {
        int x_is_t = t == 0 ? g->b_to_a : g->a_to_b; /* t is a target */
        int y_is_t = t == 0 ? g->a_to_b : g->b_to_a; /* t is a source */
        int needed = (x_is_t && g->selffer) || (y_is_t && g->transfer);
        if (needed && g->nlayers > 0 && g->base_file[t][0] == '\0' &&
            g->base_sha[t][0] == '\0')
            return fail(r, at, "base", "the grid's %s nets copy from task "
                        "%c's base: give base.%c", y_is_t && g->transfer
                        ? "transfer" : "selffer", 'A' + t, 'A' + t);
    }
    return 0;
}

/* What the file left out, then the combinations that cannot run. */
static int check(reader *r, gridspec *g, const yaml_node_t *root)
{
    if (g->nsplits == 0)
        return fail(r, root, "splits", "no split: give splits.random, "
                    "splits.dissimilar or splits.custom");
    for (int i = 0; i < g->nsplits; i++)
        if (g->splits[i].na == 0 || g->splits[i].nb == 0)
            return fail(r, root, "splits", "split '%s' leaves task %s with "
                        "no class", g->splits[i].name,
                        g->splits[i].na == 0 ? "A" : "B");
    int derived = g->selffer || g->transfer || g->random;
    if (derived && g->nlayers == 0)
        return fail(r, root, "layers", "variants are asked for but no layers "
                    "n (e.g. layers: 1-7)");
    for (int i = 0; i < g->nlayers; i++)
        if (g->layers[i] >= g->learned)
            return fail(r, find_key(r->doc, root, "layers"), "layers",
                        "n = %d, but the net has %d learned layers and the "
                        "last (the classifier) is always new: n is at most %d",
                        g->layers[i], g->learned, g->learned - 1);
    if (g->random && !g->frozen)
        return fail(r, find_key(r->doc, root, "variants"), "variants",
                    "the random control is frozen by definition: add frozen "
                    "to finetune, or drop random");
    if ((g->selffer || g->transfer) && !g->frozen && !g->finetuned)
        return fail(r, root, "finetune", "no finetune mode");
    if (check_base(r, g, root) != 0)
        return TFQ_EINVAL;
    if (gridspec_count(g) > GRID_MAX_JOBS)
        return fail(r, root, "grid", "%d jobs, more than %d",
                    gridspec_count(g), GRID_MAX_JOBS);
    return 0;
}

static int parse_doc(reader *r, gridspec *g)
{
    yaml_node_t *root = yaml_document_get_root_node(r->doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE)
        return tfq_error_set(r->e, TFQ_EINVAL, "line %d: the grid file is "
                             "not a mapping of keys",
                             root ? line_of(root) : 1);
    static const char *const top[] = {
        "name", "dataset", "net", "train", "splits", "directions", "layers",
        "variants", "finetune", "seeds", "repeats", "metric", "max_attempts",
        "base", NULL};
    static const char *const base[] = {"A", "B", NULL};
    static const char *const dataset[] = {"kind", "path", "fingerprint",
                                          "limit_train", "limit_test", NULL};
    static const char *const splits[] = {"random", "dissimilar", "custom",
                                         NULL};
    /* dataset and net first: splits and layers are checked against them */
    const yaml_node_t *d = find_key(r->doc, root, "dataset");
    if (d != NULL && each_key(r, g, d, "dataset", dataset, on_dataset) != 0)
        return TFQ_EINVAL;
    data_kind kind;
    data_kind_parse(g->dataset, &kind);
    g->classes = kind == DATA_KIND_CIFAR100 ? 20 : 10;
    if (g->data_path[0] == '\0')
        snprintf(g->data_path, sizeof g->data_path, DATA_KIND_ROOT "/%s",
                 g->dataset);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(r->doc, p->value);
        const char *key = scalar(k);
        int known = 0;
        for (int i = 0; top[i] && !known; i++)
            known = key && strcmp(top[i], key) == 0;
        if (!known)
            return fail(r, k, "grid", "unknown key '%.40s' (known: name, "
                        "dataset, net, train, splits, directions, layers, "
                        "variants, finetune, seeds, repeats, metric, "
                        "max_attempts, base)", key ? key : "?");
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < p; q++)
            if (strcmp(scalar(yaml_document_get_node(r->doc, q->key)), key) == 0)
                return fail(r, k, "grid", "'%s' is given twice", key);
        if (!strcmp(key, "seeds") && find_key(r->doc, root, "repeats"))
            return fail(r, k, "seeds", "give seeds or repeats, not both");
        int rc = 0;
        if (strcmp(key, "dataset") == 0)
            continue;
        const char *train_keys[SETTING_COUNT + 1];
        settings_grid_keys(train_keys);
        if (strcmp(key, "train") == 0)
            rc = each_key(r, g, v, "train", train_keys, on_train);
        else if (strcmp(key, "splits") == 0)
            rc = each_key(r, g, v, "splits", splits, on_splits);
        else if (strcmp(key, "base") == 0)
            rc = each_key(r, g, v, "base", base, on_base);
        else
            rc = on_top(r, g, key, k, v);
        if (rc != 0)
            return rc;
    }
    return check(r, g, root);
}

static void defaults(gridspec *g)
{
    memset(g, 0, sizeof *g);
    snprintf(g->dataset, sizeof g->dataset, "fashion-mnist");
    snprintf(g->net, sizeof g->net, "reference");
    g->learned = 8;
    g->a_to_b = 1;
    g->selffer = g->transfer = 1;
    g->frozen = 1;
    g->seeds[0] = 1;
    g->nseeds = 1;
    snprintf(g->metric, sizeof g->metric, "%s", METRIC_DEFAULT);
}

static int not_yaml(const yaml_parser_t *parser, tfq_error *e)
{
    return tfq_error_set(e, TFQ_EINVAL, "line %d column %d: not YAML: %s%s%s",
                         (int)parser->problem_mark.line + 1,
                         (int)parser->problem_mark.column + 1,
                         parser->problem ? parser->problem : "error",
                         parser->context ? " " : "",
                         parser->context ? parser->context : "");
}

/* Checks the file's shape on libyaml's events, which it gives one at a
 * time as far as it has read (so a hostile file is refused as soon as it
 * is past a limit): one document, no directive, at most GRID_MAX_DEPTH
 * levels, GRID_MAX_NODES nodes and GRID_MAX_ANCHORS anchors. */
static int check_shape(const char *text, size_t bytes, tfq_error *e)
{
    /* libyaml checks each %TAG against every one before it: refuse them
     * before it reads any.  A grid file starts with a key, so it has no
     * use for them. */
    int line = 1;
    for (const char *p = text, *end = text + bytes; p < end; line++) {
        if (*p == '%')
            return tfq_error_set(e, TFQ_EINVAL, "line %d: a YAML directive "
                                 "('%%...'): a grid file has none", line);
        p = memchr(p, '\n', (size_t)(end - p));
        if (p == NULL)
            break;
        p++;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return tfq_error_set(e, TFQ_ENOMEM, "grid file: out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, bytes);
    int depth = 0, nodes = 0, anchors = 0, docs = 0, rc = 0, end = 0;
    while (rc == 0 && !end) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = not_yaml(&parser, e);
            break;
        }
        int at = (int)ev.start_mark.line + 1;
        int column = (int)ev.start_mark.column + 1;
        const yaml_char_t *anchor = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d: a second YAML "
                                   "document ('---'): a grid file is one "
                                   "document", at);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SEQUENCE_START_EVENT
                         ? ev.data.sequence_start.anchor
                         : ev.data.mapping_start.anchor;
            if (++depth > GRID_MAX_DEPTH)
                rc = tfq_error_set(e, TFQ_EINVAL, "line %d column %d: lists "
                                   "and mappings nested deeper than %d "
                                   "levels (a grid file needs 5)", at, column,
                                   GRID_MAX_DEPTH);
            nodes++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            nodes++;
            break;
        case YAML_ALIAS_EVENT:
            nodes++;
            break;
        case YAML_STREAM_END_EVENT:
            end = 1;
            break;
        default:
            break;
        }
        if (rc == 0 && nodes > GRID_MAX_NODES)
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: more than %d values, "
                               "lists and mappings", at, GRID_MAX_NODES);
        if (rc == 0 && anchor != NULL && ++anchors > GRID_MAX_ANCHORS)
            rc = tfq_error_set(e, TFQ_EINVAL, "line %d: more than %d anchors "
                               "(&name)", at, GRID_MAX_ANCHORS);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int gridspec_parse_bytes(const char *text, size_t bytes, gridspec *g,
                         tfq_error *e)
{
    defaults(g);
    int rc = text_check_nul(text, bytes, e);
    if (rc == 0)
        rc = check_shape(text, bytes, e);
    if (rc != 0)
        return rc;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return tfq_error_set(e, TFQ_ENOMEM, "grid file: out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, bytes);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = not_yaml(&parser, e);
        yaml_parser_delete(&parser);
        return rc;
    }
    reader r = {&doc, e};
    /* "net" may come after "layers": resolve the net's depth first. */
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const yaml_node_t *net_node = root ? find_key(&doc, root, "net") : NULL;
    if (root == NULL)
        rc = tfq_error_set(e, TFQ_EINVAL, "line 1: the grid file is empty");
    else if (net_node != NULL && on_top(&r, g, "net", net_node, net_node) != 0)
        rc = TFQ_EINVAL;
    else
        rc = parse_doc(&r, g);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int gridspec_parse(const char *text, gridspec *g, tfq_error *e)
{
    return gridspec_parse_bytes(text, strlen(text), g, e);
}

int gridspec_count(const gridspec *g)
{
    int per_n = (g->selffer + g->transfer) * (g->frozen + g->finetuned) +
                g->random;
    long per_split = (g->has_base ? 0 : 2) +
                     (long)(g->a_to_b + g->b_to_a) * g->nlayers * per_n;
    long total = per_split * g->nsplits * g->nseeds;
    for (int i = 0; i < g->nsweeps && total <= GRID_MAX_JOBS; i++)
        total *= g->sweeps[i].nvalues;
    return total > GRID_MAX_JOBS ? GRID_MAX_JOBS + 1 : (int)total;
}

/* ---- expansion ----------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void put(strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 1;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void put_classes(strbuf *b, const int *c, int n)
{
    put(b, "classes = ");
    for (int i = 0; i < n; i++)
        put(b, "%s%d", i ? "," : "", c[i]);
    put(b, "\n");
}

/* With base:, a derived net's source is its task's imported checkpoint
 * (from: "baseA" or "baseB"). */
static void put_base_init(strbuf *b, const gridspec *g, const char *from)
{
    if (g->has_base && from != NULL)
        put(b, "init = %s\n", g->base_sha[from[4] == 'A' ? 0 : 1]);
}

/* One job: its name and coordinates, then the spec every job shares. */
typedef struct {
    const gridspec *g;
    const grid_split *s;
    int seed;
    const char *sweep;  /* the combination's coordinate, "" without sweeps */
    const char *prefix; /* sweep and '/' (or ""): the names' start */
    const char *lines;  /* the combination's job spec lines */
} cell;

static void put_job(strbuf *b, const cell *c, const char *job, char target,
                    int n, const char *variant, int finetune,
                    const char *from, int copy, int freeze)
{
    const gridspec *g = c->g;
    put(b, "%sname = %s%s/%d/%s\n", b->len ? "---\n" : "", c->prefix,
        c->s->name, c->seed, job);
    if (from != NULL && !g->has_base)
        put(b, "init_from = %s%s/%d/%s\n", c->prefix, c->s->name, c->seed,
            from);
    if (c->sweep[0] != '\0')
        put(b, "sweep = %s\n", c->sweep);
    put(b, "split = %s\nsimilarity = %s\ntarget = %c\nn = %d\nvariant = %s\n"
           "finetune = %d\n", c->s->name, c->s->similarity, target, n, variant,
        finetune);
    if (g->max_attempts > 0)
        put(b, "max_attempts = %d\n", g->max_attempts);
    put(b, "kind = train\ndataset = %s\nfingerprint = %s\n", g->dataset,
        g->fingerprint);
    if (target == 'A')
        put_classes(b, c->s->a, c->s->na);
    else
        put_classes(b, c->s->b, c->s->nb);
    if (g->limit_train > 0)
        put(b, "limit_train = %d\n", g->limit_train);
    if (g->limit_test > 0)
        put(b, "limit_test = %d\n", g->limit_test);
    put(b, "net = %s\n%s%sseed = %d\n", g->net, g->train, c->lines,
        c->seed);
    if (copy > 0)
        put(b, "copy = %d\n", copy);
    put_base_init(b, g, from);
    if (freeze > 0)
        put(b, "freeze = %d\n", freeze);
}

/* The derived nets of target X (other task Y) at layer n. */
static void put_derived(strbuf *b, const cell *c, char x, char y, int n)
{
    const gridspec *g = c->g;
    char name[32], base_x[16], base_y[16];
    snprintf(base_x, sizeof base_x, "base%c", x);
    snprintf(base_y, sizeof base_y, "base%c", y);
    for (int ft = 0; ft <= 1; ft++) {
        if (ft ? !g->finetuned : !g->frozen)
            continue;
        const char *plus = ft ? "+" : "";
        if (g->selffer) {
            snprintf(name, sizeof name, "%c%d%c%s", x, n, x, plus);
            put_job(b, c, name, x, n, "selffer", ft, base_x, n, ft ? 0 : n);
        }
        if (g->transfer) {
            snprintf(name, sizeof name, "%c%d%c%s", y, n, x, plus);
            put_job(b, c, name, x, n, "transfer", ft, base_y, n, ft ? 0 : n);
        }
    }
    if (g->random) { /* random layers 1..n, frozen: nothing to copy */
        snprintf(name, sizeof name, "R%d%c", n, x);
        put_job(b, c, name, x, n, "random", 0, NULL, 0, n);
    }
}

/* The setting combination at[] (an index into each sweep's values): its
 * coordinate "lr=0.01/init=caffe", that and '/' as the names' prefix, and
 * its job spec lines. */
static void sweep_cell(const gridspec *g, const int *at, char *sweep,
                       char *prefix, char *lines, size_t lines_bytes)
{
    size_t n = 0, l = 0;
    sweep[0] = prefix[0] = lines[0] = '\0';
    for (int i = 0; i < g->nsweeps; i++) {
        const grid_sweep *sw = &g->sweeps[i];
        n += (size_t)snprintf(sweep + n, GRID_SWEEP_BYTES - n, "%s%s=%s",
                              i ? "/" : "", sw->key, sw->values[at[i]]);
        l += (size_t)snprintf(lines + l, lines_bytes - l, "%s = %s\n",
                              sw->spec_key, sw->values[at[i]]);
    }
    if (n > 0)
        snprintf(prefix, GRID_SWEEP_BYTES + 1, "%s/", sweep);
}

/* The next combination, the last sweep's value varying fastest; 0 after
 * the last. */
static int sweep_next(const gridspec *g, int *at)
{
    for (int i = g->nsweeps - 1; i >= 0; i--) {
        if (++at[i] < g->sweeps[i].nvalues)
            return 1;
        at[i] = 0;
    }
    return 0;
}

/* Every net of one setting combination. */
static void put_combination(strbuf *b, const gridspec *g, const int *at)
{
    char sweep[GRID_SWEEP_BYTES], prefix[GRID_SWEEP_BYTES + 1], lines[1024];
    sweep_cell(g, at, sweep, prefix, lines, sizeof lines);
    for (int si = 0; si < g->nsplits; si++)
        for (int ri = 0; ri < g->nseeds; ri++) {
            cell c = {g, &g->splits[si], g->seeds[ri], sweep, prefix, lines};
            if (!g->has_base) {
                put_job(b, &c, "baseA", 'A', 0, "base", 0, NULL, 0, 0);
                put_job(b, &c, "baseB", 'B', 0, "base", 0, NULL, 0, 0);
            }
            for (int li = 0; li < g->nlayers; li++) {
                if (g->a_to_b)
                    put_derived(b, &c, 'B', 'A', g->layers[li]);
                if (g->b_to_a)
                    put_derived(b, &c, 'A', 'B', g->layers[li]);
            }
        }
}

int gridspec_expand(const gridspec *g, char **text, tfq_error *e)
{
    *text = NULL;
    if (strlen(g->fingerprint) != 64)
        return tfq_error_set(e, TFQ_EINVAL, "grid: the data set's "
                             "fingerprint is not known");
    for (int t = 0; g->has_base && t < 2; t++)
        if (g->base_file[t][0] != '\0')
            return tfq_error_set(e, TFQ_EINVAL, "grid: base.%c: '%s' is a "
                                 "file where the grid was submitted; tfq "
                                 "submit uploads it and names it by its "
                                 "sha256", 'A' + t, g->base_file[t]);
    strbuf b = {malloc(65536), 0, 65536, 0};
    if (b.p == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "grid: out of memory");
    b.p[0] = '\0';
    int at[SETTING_COUNT] = {0};
    do
        put_combination(&b, g, at);
    while (sweep_next(g, at));
    if (b.failed) {
        free(b.p);
        return tfq_error_set(e, TFQ_ENOMEM, "grid: out of memory");
    }
    *text = b.p;
    return 0;
}

/* The byte offset of character index `chars` of UTF-8 text (libyaml's
 * marks count characters), past a byte order mark libyaml skips. */
static size_t byte_offset(const char *text, long chars)
{
    size_t i = strncmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    for (long n = 0; text[i] != '\0' && n < chars; n++)
        do
            i++;
        while (((unsigned char)text[i] & 0xc0) == 0x80);
    return i;
}

int gridspec_base_resolved(const char *text, const gridspec *g, char **out,
                           tfq_error *e)
{
    *out = NULL;
    strbuf b = {malloc(strlen(text) + 256), 0, strlen(text) + 256, 0};
    if (b.p == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "grid: out of memory");
    b.p[0] = '\0';
    int first = g->base_span[0][0] <= g->base_span[1][0] ? 0 : 1;
    size_t at = 0;
    for (int k = 0; k < 2; k++) {
        int t = k == 0 ? first : 1 - first;
        if (g->base_span[t][1] <= g->base_span[t][0])
            continue; /* not given */
        if (g->base_sha[t][0] == '\0') {
            free(b.p);
            return tfq_error_set(e, TFQ_EINVAL, "grid: base.%c has no "
                                 "sha256 yet", 'A' + t);
        }
        size_t s0 = byte_offset(text, g->base_span[t][0]);
        size_t s1 = byte_offset(text, g->base_span[t][1]);
        put(&b, "%.*s\"sha256:%s\"", (int)(s0 - at), text + at,
            g->base_sha[t]);
        at = s1;
    }
    put(&b, "%s", text + at);
    if (b.failed) {
        free(b.p);
        return tfq_error_set(e, TFQ_ENOMEM, "grid: out of memory");
    }
    *out = b.p;
    return 0;
}

/* ---- presets and sniffing ------------------------------------------------ */

#include "presets.h" /* generated: s_presets[] = {name, text}, NULL-ended */

const char *gridspec_preset(const char *name)
{
    for (int i = 0; s_presets[i].name != NULL; i++)
        if (strcmp(s_presets[i].name, name) == 0)
            return s_presets[i].text;
    return NULL;
}

int gridspec_is_grid(const char *text)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        size_t i = 0;
        while (i < len && isspace((unsigned char)p[i]))
            i++;
        if (i < len && p[i] != '#') {
            /* a job file line is "key = value"; a grid file's "key:" */
            size_t j = i;
            while (j < len && (isalnum((unsigned char)p[j]) || p[j] == '_'))
                j++;
            return j > i && j < len && p[j] == ':';
        }
        if (eol == NULL)
            break;
        p = eol + 1;
    }
    return 0;
}
