/* Nets as a whole: descriptions, shapes, the backward pass of a whole net
 * against finite differences, freezing, and the trainer's determinism and
 * frozen-prefix cache. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "synth.h"
#include "common/rng.h"
#include "worker/engine/gemm.h"
#include "worker/engine/loss.h"
#include "worker/engine/net.h"
#include "worker/engine/train.h"
#include "worker/job.h"


static float *vec(long n)
{
    float *v = calloc((size_t)(n ? n : 1), sizeof(float));
    if (v == NULL)
        abort();
    return v;
}

/* Uniform in [-scale, scale), the i-th draw of stream key. */
static void fill(float *v, long n, float scale, uint64_t key)
{
    for (long i = 0; i < n; i++)
        v[i] = scale * (2.0f * rng_uniform(key, (uint64_t)i) - 1.0f);
}



/* ---- descriptions ------------------------------------------------------- */

static int test_spec_parse(void)
{
    static const char *const presets[] = {"reference", "wide", "caffenet"};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        netspec a, b;
        tfq_error e = {0};
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        CHECK_MSG(netspec_preset(presets[i], 1.0, &a, &e) == 0, "%s: %s",
                  presets[i], e.msg);
        CHECK_EQ_INT(netspec_learned_layers(&a), 8);
        char text[NETSPEC_TEXT_BYTES], again[NETSPEC_TEXT_BYTES];
        CHECK(netspec_format(&a, text, sizeof text) == 0);
        CHECK_MSG(netspec_parse(text, &b, &e) == 0, "%s: '%s': %s",
                  presets[i], text, e.msg);
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "%s: '%s' parses to a "
                  "different spec", presets[i], text);
        CHECK(netspec_format(&b, again, sizeof again) == 0);
        CHECK_MSG(strcmp(text, again) == 0, "'%s' vs '%s'", text, again);
        /* A resolved preset name is the preset itself. */
        CHECK(netspec_resolve(presets[i], 1.0, &b, &e) == 0);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
    }
    /* Separators, keys and defaults of a hand-written description. */
    netspec s;
    tfq_error e = {0};
    CHECK_MSG(netspec_parse(" conv out=6 k=3 stride=2 pad=1 ,relu\n"
                             "maxpool 2; lrn size=3 alpha=0.5 beta=0.5 k=2; "
                             "fc 10; dropout 0.25; fc classes", &s, &e) == 0,
              "%s", e.msg);
    CHECK_EQ_INT(s.nops, 7);
    CHECK_EQ_INT(s.ops[0].kind, NETSPEC_CONV);
    CHECK_EQ_INT(s.ops[0].out, 6);
    CHECK_EQ_INT(s.ops[0].k, 3);
    CHECK_EQ_INT(s.ops[0].stride, 2);
    CHECK_EQ_INT(s.ops[0].pad, 1);
    CHECK_EQ_INT(s.ops[1].kind, NETSPEC_RELU);
    CHECK_EQ_INT(s.ops[2].kind, NETSPEC_MAXPOOL);
    CHECK_EQ_INT(s.ops[2].k, 2);
    CHECK_EQ_INT(s.ops[2].stride, 2); /* stride defaults to the window */
    CHECK_EQ_INT(s.ops[3].kind, NETSPEC_LRN);
    CHECK_EQ_INT(s.ops[3].size, 3);
    CHECK(s.ops[3].alpha == 0.5f && s.ops[3].beta == 0.5f &&
          s.ops[3].lrn_k == 2.0f);
    CHECK_EQ_INT(s.ops[4].out, 10);
    CHECK(s.ops[5].kind == NETSPEC_DROPOUT && s.ops[5].p == 0.25f);
    CHECK_EQ_INT(s.ops[6].out, NETSPEC_CLASSES);
    CHECK_EQ_INT(netspec_learned_layers(&s), 3);
    /* Width scales the preset's channel counts. */
    netspec half;
    CHECK(netspec_preset("reference", 0.5, &half, &e) == 0);
    CHECK_EQ_INT(half.ops[0].out, 8);
    CHECK(netspec_preset("reference", 0.0, &half, &e) == TFQ_EINVAL);
    CHECK(netspec_preset("nonesuch", 1.0, &half, &e) == TFQ_EINVAL);
    CHECK(strstr(e.msg, "nonesuch") != NULL);
    /* Too small a buffer is reported, not overrun. */
    char tiny[16];
    CHECK(netspec_format(&s, tiny, sizeof tiny) == TFQ_ERANGE);
    return 0;
}

/* A pooling window's explicit stride survives parsing (stride=2 with a 3x3
 * window is CaffeNet's overlapping pooling). */
static int test_spec_pool_stride(void)
{
    netspec s;
    tfq_error e = {0};
    CHECK_MSG(netspec_parse("conv 4 3; maxpool 3 stride=2; fc classes", &s,
                             &e) == 0, "%s", e.msg);
    CHECK_EQ_INT(s.ops[1].k, 3);
    CHECK_EQ_INT(s.ops[1].stride, 2);
    CHECK(netspec_parse("conv 4 3; maxpool k=2 stride=1; fc classes", &s,
                         &e) == 0);
    CHECK_EQ_INT(s.ops[1].stride, 1);
    /* CaffeNet on 32x32 keeps a 4x4 map after pool5 (Caffe's rounding). */
    CHECK(netspec_preset("caffenet", 1.0, &s, &e) == 0);
    net *m = net_new(&s, (netspec_shape){3, 32, 32}, 10, 1, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    int fc6 = m->learned_op[5];
    netspec_shape before = m->ops[fc6 - 1].out_shape;
    netspec_shape pool1 = m->ops[2].out_shape;
    net_destroy(&m);
    CHECK_EQ_INT(pool1.h, 16);
    CHECK_EQ_INT(before.c, 256);
    CHECK_EQ_INT(before.h, 4);
    CHECK_EQ_INT(before.w, 4);
    return 0;
}

/* Parsing `text` fails with TFQ_EINVAL and a message holding each of the
 * NULL-terminated words. */
static int parse_fails(const char *text, const char *const *words)
{
    netspec s;
    tfq_error e = {0};
    int rc = netspec_parse(text, &s, &e);
    CHECK_MSG(rc == TFQ_EINVAL, "'%s' gave %d", text, rc);
    CHECK_MSG(e.code == TFQ_EINVAL, "'%s': e.code %d", text, e.code);
    for (int i = 0; words[i] != NULL; i++)
        CHECK_MSG(strstr(e.msg, words[i]) != NULL,
                  "'%s': message '%s' lacks '%s'", text, e.msg, words[i]);
    return 0;
}

static int test_spec_errors(void)
{
    CHECK(parse_fails("conv 16 5; frob",
                      (const char *[]){"operation 2", "'frob'", NULL}) == 0);
    CHECK(parse_fails("conv x 5; fc classes",
                      (const char *[]){"operation 1", "'x'", NULL}) == 0);
    CHECK(parse_fails("conv 16 5; relu; fc 10 20; fc classes",
                      (const char *[]){"operation 3", "'20'", NULL}) == 0);
    CHECK(parse_fails("conv; fc classes",
                      (const char *[]){"operation 1", "conv", "missing",
                                       NULL}) == 0);
    CHECK(parse_fails("conv 16 5; relu; maxpool; fc classes",
                      (const char *[]){"operation 3", "maxpool", NULL}) == 0);
    /* Checked after parsing: the message names the kind but, unlike the
     * others, not the operation's number. */
    CHECK(parse_fails("conv 16 5; relu",
                      (const char *[]){"last", "relu", NULL}) == 0);
    CHECK(parse_fails("conv 16 5; fc classes; fc 10",
                      (const char *[]){"operation 2", "classes", NULL}) == 0);
    CHECK(parse_fails("", (const char *[]){"empty", NULL}) == 0);
    CHECK(parse_fails(" ; ;\n", (const char *[]){"empty", NULL}) == 0);
    CHECK(parse_fails("conv 16 5 foo=3; fc classes",
                      (const char *[]){"operation 1", "foo=3", NULL}) == 0);
    CHECK(parse_fails("relu; fc classes",
                      (const char *[]){"operation 1", "relu", NULL}) == 0);
    CHECK(parse_fails("conv 16 5; lrn size=4; fc classes",
                      (const char *[]){"operation 2", "size=4", NULL}) == 0);
    CHECK(parse_fails("conv 16 5; dropout 1.5; fc classes",
                      (const char *[]){"operation 2", "1.5", NULL}) == 0);
    CHECK(parse_fails("fc 10; conv 4 3; fc classes",
                      (const char *[]){"operation 2", "conv", NULL}) == 0);
    /* More operations than a net may hold. */
    char many[NETSPEC_TEXT_BYTES];
    size_t n = 0;
    for (int i = 0; i < NETSPEC_MAX_OPS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "fc 2; ");
    snprintf(many + n, sizeof many - n, "fc classes");
    CHECK(parse_fails(many, (const char *[]){"more than", NULL}) == 0);
    /* Resolving a non-preset name parses it. */
    netspec s;
    tfq_error e = {0};
    CHECK(netspec_resolve("refrence", 1.0, &s, &e) == TFQ_EINVAL);
    CHECK(strstr(e.msg, "refrence") != NULL);
    return 0;
}

/* ---- shapes ------------------------------------------------------------- */

static int shape_is(const net_op *op, int c, int h, int w)
{
    return op->out_shape.c == c && op->out_shape.h == h &&
           op->out_shape.w == w;
}

/* A description whose sizes would overflow the layer code, or whose arena
 * is over the budget, is refused when built, with the operation named. */
static int test_oversized(void)
{
    tfq_error e = {0};
    netspec spec;
    CHECK(netspec_parse("conv 8 5 pad=2; relu; fc 684785; fc classes",
                         &spec, &e) == 0);
    net *m = net_new(&spec, (netspec_shape){1, 28, 28}, 10, 64, &e);
    CHECK(m == NULL);
    CHECK_MSG(strstr(e.msg, "net operation 3 (fc 684785)") != NULL &&
              strstr(e.msg, "weights") != NULL, "%s", e.msg);
    CHECK(netspec_parse("conv 60000 5 pad=2; fc classes", &spec, &e) == 0);
    CHECK(net_new(&spec, (netspec_shape){1, 100, 100}, 10, 64, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "net operation 1 (conv 60000)") != NULL &&
              strstr(e.msg, "outputs per image") != NULL, "%s", e.msg);
    CHECK(netspec_preset("reference", 1.0, &spec, &e) == 0);
    setenv("TFQ_NET_MAX_MB", "1", 1);
    m = net_new(&spec, (netspec_shape){1, 28, 28}, 10, 64, &e);
    unsetenv("TFQ_NET_MAX_MB");
    CHECK(m == NULL);
    CHECK_MSG(strstr(e.msg, "over the budget of 1 MiB") != NULL, "%s", e.msg);
    m = net_new(&spec, (netspec_shape){1, 28, 28}, 10, 64, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    net_destroy(&m);
    return 0;
}

static int test_shapes(void)
{
    netspec s;
    tfq_error e = {0};
    CHECK(netspec_preset("reference", 1.0, &s, &e) == 0);
    net *m = net_new(&s, (netspec_shape){1, 28, 28}, 10, 4, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    /* name, op index, c, h, w */
    static const struct {
        const char *name;
        int op, c, h, w;
    } want[] = {
        {"conv1", 0, 16, 28, 28}, {"pool1", 2, 16, 14, 14},
        {"conv2", 3, 32, 14, 14}, {"pool2", 5, 32, 7, 7},
        {"conv3", 6, 48, 7, 7},   {"conv4", 8, 48, 7, 7},
        {"conv5", 10, 32, 7, 7},  {"pool5", 12, 32, 4, 4},
        {"fc6", 13, 128, 1, 1},   {"fc7", 16, 128, 1, 1},
        {"fc8", 19, 10, 1, 1},
    };
    int bad = -1;
    for (size_t i = 0; i < sizeof want / sizeof want[0] && bad < 0; i++)
        if (!shape_is(&m->ops[want[i].op], want[i].c, want[i].h, want[i].w))
            bad = (int)i;
    int nops = m->nops, nlearned = m->nlearned;
    int learned_ok = m->learned_op[0] == 0 && m->learned_op[5] == 13 &&
                     m->learned_op[7] == 19;
    int groups_ok = m->ops[2].group == 1 && m->ops[12].group == 5 &&
                    m->ops[13].group == 6 && m->ops[19].group == 8;
    int above_ok = net_first_op_above(m, 0) == 0 &&
                   net_first_op_above(m, 5) == 13 &&
                   net_first_op_above(m, 8) == m->nops;
    long nparams = 0;
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g);
        nparams += p->nw + p->nb;
    }
    int dims[4], ndims;
    net_layer_shape(m, 2, dims, &ndims);
    int conv2_ok = ndims == 4 && dims[0] == 32 && dims[1] == 16 &&
                   dims[2] == 5 && dims[3] == 5;
    net_layer_shape(m, 6, dims, &ndims);
    int fc6_ok = ndims == 2 && dims[0] == 128 && dims[1] == 32 * 4 * 4;
    int nparams_ok = nparams == m->nparams;
    net_destroy(&m);
    CHECK(m == NULL);
    net_destroy(&m); /* NULL is fine */
    CHECK_MSG(bad < 0, "%s has the wrong shape", want[bad].name);
    CHECK_EQ_INT(nops, 20);
    CHECK_EQ_INT(nlearned, 8);
    CHECK(learned_ok);
    CHECK(groups_ok);
    CHECK(above_ok);
    CHECK(conv2_ok);
    CHECK(fc6_ok);
    CHECK(nparams_ok);

    /* CaffeNet builds for CIFAR-shaped inputs. */
    CHECK(netspec_preset("caffenet", 1.0, &s, &e) == 0);
    m = net_new(&s, (netspec_shape){3, 32, 32}, 10, 2, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    int fc6 = m->learned_op[5];
    int last_ok = shape_is(&m->ops[m->nops - 1], 10, 1, 1);
    net_destroy(&m);
    CHECK(fc6 > 0);
    CHECK(last_ok);

    /* A kernel that does not fit is refused with a message naming it. */
    CHECK(netspec_parse("conv 4 9; relu; fc classes", &s, &e) == 0);
    tfq_error_clear(&e);
    m = net_new(&s, (netspec_shape){1, 6, 6}, 3, 2, &e);
    CHECK(m == NULL);
    CHECK_EQ_INT(e.code, TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "operation 1") && strstr(e.msg, "conv"), "%s",
              e.msg);
    CHECK(netspec_parse("conv 4 3; maxpool 8; fc classes", &s, &e) == 0);
    tfq_error_clear(&e);
    m = net_new(&s, (netspec_shape){1, 6, 6}, 3, 2, &e);
    CHECK(m == NULL);
    CHECK_MSG(strstr(e.msg, "operation 2") && strstr(e.msg, "maxpool"), "%s",
              e.msg);
    /* Nor a net with fewer than two classes or no batch. */
    CHECK(net_new(&s, (netspec_shape){1, 28, 28}, 1, 2, &e) == NULL);
    CHECK(net_new(&s, (netspec_shape){1, 28, 28}, 3, 0, &e) == NULL);
    return 0;
}

/* ---- the whole net against finite differences --------------------------- */

#define GN_BATCH 4
#define GN_CLASSES 3

typedef struct {
    net *m;
    const float *x;
    const int *labels;
} loss_probe;

static double probe_loss(const loss_probe *p)
{
    const float *z = net_forward(p->m, p->x, GN_BATCH, 0, 1, 99);
    return loss_softmax_xent(z, p->labels, GN_CLASSES, GN_BATCH, NULL, NULL);
}

/* Central difference of the loss in v[i] with step h. */
static double numeric(const loss_probe *p, float *v, long i, float h)
{
    float keep = v[i];
    v[i] = keep + h;
    double lp = probe_loss(p);
    v[i] = keep - h;
    double lm = probe_loss(p);
    v[i] = keep;
    return (lp - lm) / (2.0 * (double)h);
}

/* A step of 1e-2 moves enough pre-activations across a ReLU's or a max
 * pool's kink that the difference quotient is off by tens of percent on
 * this net (measured); at 1e-3 every coordinate agrees within 0.5%, with
 * float32 noise still far below the tolerance. */
#define GN_H 1e-3f
#define GN_TOL 2e-2
/* Below this size a gradient is compared absolutely: float32 losses carry
 * about 1e-7 of noise, 5e-5 after dividing by 2h. */
#define GN_FLOOR 2e-3

/* Checks every coordinate of v (n floats) against grad. */
static int check_coords(const loss_probe *p, float *v, const float *grad,
                        long n, const char *what, int g)
{
    for (long i = 0; i < n; i++) {
        double num = numeric(p, v, i, GN_H), ana = grad[i];
        double err = fabs(num - ana) / fmax(GN_FLOOR, fabs(num) + fabs(ana));
        if (err > GN_TOL) {
            fprintf(stderr, "layer %d %s[%ld]: analytic %.6g numeric %.6g\n",
                    g, what, i, ana, num);
            return 1;
        }
    }
    return 0;
}

static int test_grad_net(void)
{
    netspec s;
    tfq_error e = {0};
    CHECK_MSG(netspec_parse("conv 4 3 pad=1; relu; maxpool 2; "
                             "lrn size=3 alpha=0.5; conv 5 3 stride=2 pad=1; "
                             "relu; fc 7; relu; fc classes", &s, &e) == 0,
              "%s", e.msg);
    net *m = net_new(&s, (netspec_shape){2, 8, 8}, GN_CLASSES, GN_BATCH, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    net_init_layers(m, 1, m->nlearned, 5);
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g);
        fill(p->b, p->nb, 0.3f, rng_key(5, 0x62696173, (uint64_t)g));
    }
    long xs = 2L * 8 * 8 * GN_BATCH;
    float *x = vec(xs);
    fill(x, xs, 1.5f, 17);
    int labels[GN_BATCH] = {0, 2, 1, 2};
    loss_probe p = {m, x, labels};

    const float *z = net_forward(m, x, GN_BATCH, 0, 1, 99);
    double loss = loss_softmax_xent(z, labels, GN_CLASSES, GN_BATCH,
                                    net_output_grad(m), NULL);
    net_zero_grad(m);
    net_backward(m);
    /* A copy, so that the check does not rely on forward passes leaving
     * net->grads alone. */
    float *grads = vec(m->nparams);
    memcpy(grads, m->grads, sizeof(float) * (size_t)m->nparams);

    int bad = 0;
    long off = 0;
    for (int g = 1; g <= m->nlearned && !bad; g++) {
        layer_params *lp = net_layer_params(m, g);
        /* The layer's gradient pointers lie in net->grads, in order. */
        bad = lp->dw != m->grads + off || lp->db != m->grads + off + lp->nw;
        if (bad) {
            fprintf(stderr, "layer %d: gradients not at offset %ld\n", g, off);
            break;
        }
        bad = check_coords(&p, lp->w, grads + off, lp->nw, "w", g) ||
              check_coords(&p, lp->b, grads + off + lp->nw, lp->nb, "b", g);
        off += lp->nw + lp->nb;
    }
    /* Backward accumulates: a second pass without zeroing doubles grads. */
    z = net_forward(m, x, GN_BATCH, 0, 1, 99);
    loss_softmax_xent(z, labels, GN_CLASSES, GN_BATCH, net_output_grad(m),
                      NULL);
    net_backward(m);
    double worst = 0.0;
    for (long i = 0; i < m->nparams; i++)
        worst = fmax(worst, fabs(m->grads[i] - 2.0f * grads[i]));
    net_destroy(&m);
    free(x);
    free(grads);
    CHECK(isfinite(loss) && loss > 0.0);
    CHECK(!bad);
    CHECK_MSG(worst < 1e-5, "accumulated gradients off by %g", worst);
    return 0;
}

/* ---- freezing ----------------------------------------------------------- */

#define FZ_BATCH 8

/* Runs `steps` SGD steps on m with fixed random input. */
static void run_steps(net *m, int steps)
{
    long xs = (long)m->ops[0].in_size * FZ_BATCH;
    float *x = vec(xs);
    fill(x, xs, 1.0f, 23);
    int labels[FZ_BATCH];
    for (int i = 0; i < FZ_BATCH; i++)
        labels[i] = (int)rng_below(29, (uint64_t)i, (uint32_t)m->classes);
    sgd_step s = {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f,
                  .bias_lr_mult = 2.0f, .bias_decay_mult = 0.0f};
    for (int k = 0; k < steps; k++) {
        const float *z = net_forward(m, x, FZ_BATCH, 0, 1, (uint64_t)k);
        loss_softmax_xent(z, labels, m->classes, FZ_BATCH, net_output_grad(m),
                          NULL);
        net_zero_grad(m);
        net_backward(m);
        net_update(m, &s);
    }
    free(x);
}

static int test_freeze_no_backward(void)
{
    netspec s;
    tfq_error e = {0};
    CHECK(netspec_preset("reference", 1.0, &s, &e) == 0);
    net *m = net_new(&s, (netspec_shape){1, 28, 28}, 10, FZ_BATCH, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    net_init_layers(m, 1, m->nlearned, 3);
    float *before = vec(m->nparams);
    memcpy(before, m->params, sizeof(float) * (size_t)m->nparams);
    m->frozen = 5;
    run_steps(m, 3);
    int first = net_first_op_above(m, 5);
    int calls_bad = -1;
    for (int i = 0; i < m->nops && calls_bad < 0; i++)
        if ((i < first) != (m->ops[i].backward_calls == 0))
            calls_bad = i;
    long calls_at = calls_bad >= 0 ? m->ops[calls_bad].backward_calls : 0;
    int frozen_same = -1, trained_same = -1;
    for (int g = 1; g <= m->nlearned; g++) {
        layer_params *p = net_layer_params(m, g);
        const float *old = before + (p->w - m->params);
        int same = memcmp(p->w, old, sizeof(float) * (size_t)p->nw) == 0 &&
                   memcmp(p->b, old + p->nw, sizeof(float) * (size_t)p->nb)
                       == 0;
        if (g <= 5 && !same && frozen_same < 0)
            frozen_same = g;
        if (g > 5 && same && trained_same < 0)
            trained_same = g;
    }
    net_destroy(&m);

    /* Nothing frozen: every operation's backward runs. */
    m = net_new(&s, (netspec_shape){1, 28, 28}, 10, FZ_BATCH, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    net_init_layers(m, 1, m->nlearned, 3);
    run_steps(m, 2);
    int unfrozen_bad = -1;
    for (int i = 0; i < m->nops && unfrozen_bad < 0; i++)
        if (m->ops[i].backward_calls != 2)
            unfrozen_bad = i;
    int changed = memcmp(m->params, before,
                         sizeof(float) * (size_t)net_layer_params(m, 1)->nw);
    net_destroy(&m);
    free(before);

    CHECK_EQ_INT(first, 13);
    CHECK_MSG(calls_bad < 0, "op %d ran backward %ld times with 5 layers "
              "frozen (first trainable op %d)", calls_bad, calls_at, first);
    CHECK_MSG(frozen_same < 0, "frozen layer %d changed", frozen_same);
    CHECK_MSG(trained_same < 0, "trainable layer %d did not change",
              trained_same);
    CHECK_MSG(unfrozen_bad < 0, "op %d: backward did not run on every step",
              unfrozen_bad);
    CHECK(changed != 0);
    return 0;
}

/* ---- the trainer -------------------------------------------------------- */


static void small_config(train_config *cfg)
{
    train_config_default(cfg);
    cfg->epochs = 2;
    cfg->batch = 32;
    cfg->seed = 11;
}

/* Trains a fresh trainer to the end of cfg; returns it or NULL. */
static trainer *train_to_end(const train_config *cfg, const synth_sets *d)
{
    tfq_error e = {0};
    trainer *t = trainer_new(cfg, &d->train, &d->test, &synth_norm, NULL, &e);
    if (t == NULL) {
        fprintf(stderr, "trainer_new: %s\n", e.msg);
        return NULL;
    }
    if (trainer_run(t, NULL, NULL, NULL, NULL, 0, &e) != 0) {
        fprintf(stderr, "trainer_run: %s\n", e.msg);
        trainer_destroy(&t);
    }
    return t;
}

static int same_params(trainer *a, trainer *b)
{
    net *ma = trainer_net(a), *mb = trainer_net(b);
    return ma->nparams == mb->nparams &&
           memcmp(ma->params, mb->params,
                  sizeof(float) * (size_t)ma->nparams) == 0;
}

static int test_deterministic(void)
{
    gemm_set_threads(1);
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg);
    trainer *a = train_to_end(&cfg, &d);
    trainer *b = train_to_end(&cfg, &d);
    cfg.seed = 12;
    trainer *c = train_to_end(&cfg, &d);
    int ok_built = a && b && c;
    int ab = ok_built && same_params(a, b);
    int ac = ok_built && same_params(a, c);
    train_result ra = {0}, rb = {0};
    if (ok_built) {
        trainer_result_get(a, &ra);
        trainer_result_get(b, &rb);
    }
    int moments_same = ok_built &&
        memcmp(trainer_net(a)->moments, trainer_net(b)->moments,
               sizeof(float) * (size_t)trainer_net(a)->nparams) == 0;
    trainer_destroy(&a);
    trainer_destroy(&b);
    trainer_destroy(&c);
    synth_sets_release(&d);
    CHECK(ok_built);
    CHECK_MSG(ab, "same seed, different weights");
    CHECK(moments_same);
    CHECK_MSG(!ac, "different seeds, same weights");
    CHECK_EQ_INT(ra.epochs_done, 2);
    CHECK(ra.final_acc == rb.final_acc && ra.final_loss == rb.final_loss);
    /* The pattern is easy: two epochs learn it. */
    CHECK_MSG(ra.final_acc > 0.5, "accuracy %g", ra.final_acc);
    return 0;
}

/* The bytes of address space this process has mapped, or 0. */
static size_t mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

#define OOM_BATCH 65536 /* the largest batch: 256 KiB of indexes */
#define OOM_SLACK (64 * 1024) /* for the stack: less than those indexes */

/* In a child process of one thread: trains and evaluates with the address
 * space capped at what is mapped once the trainer is built and has taken a
 * step, so the evaluation's indexes cannot be had.  Returns 0 when the run
 * and the evaluation fail with TFQ_ENOMEM and record nothing, and an
 * evaluation succeeds once the cap is lifted. */
static int evaluate_capped(void)
{
    gemm_set_threads(1);
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg);
    cfg.epochs = 1;
    cfg.batch = OOM_BATCH;
    tfq_error e = {0};
    CHECK_MSG(netspec_resolve("fc classes", 1.0, &cfg.spec, &e) == 0, "%s",
              e.msg);
    trainer *t = trainer_new(&cfg, &d.train, &d.test, &synth_norm, NULL, &e);
    CHECK_MSG(t != NULL, "trainer_new: %s", e.msg);
    trainer_time_steps(t, 1); /* whatever a step allocates on first use */
    /* Fails only when no free block of the heap holds the indexes: what
     * the heap holds free past its top goes back first. */
    malloc_trim(0);
    size_t need = sizeof(int) * OOM_BATCH;
    struct mallinfo2 mi = mallinfo2();
    CHECK_MSG(mi.fordblks + OOM_SLACK < need, "%zu bytes free in the heap: "
              "the indexes would fit without a new mapping", mi.fordblks);
    struct rlimit old, cap;
    CHECK(getrlimit(RLIMIT_AS, &old) == 0);
    cap = old;
    cap.rlim_cur = mapped_bytes() + OOM_SLACK;
    CHECK(cap.rlim_cur > OOM_SLACK && cap.rlim_cur < old.rlim_cur);
    CHECK(setrlimit(RLIMIT_AS, &cap) == 0);
    int run_rc = trainer_run(t, NULL, NULL, NULL, NULL, 0, &e);
    tfq_error ee = {0};
    double acc = 42.0;
    int eval_rc = trainer_evaluate(t, &acc, &ee);
    CHECK(setrlimit(RLIMIT_AS, &old) == 0);
    CHECK_MSG(run_rc == TFQ_ENOMEM, "trainer_run returned %d: %s", run_rc,
              e.msg);
    CHECK_MSG(strstr(e.msg, "epoch 1: evaluating on the test set: out of "
                     "memory") != NULL, "message '%s'", e.msg);
    CHECK_EQ_INT(trainer_meta(t)->nevals, 0); /* no accuracy recorded */
    CHECK_EQ_INT(trainer_meta(t)->epoch, 0);
    CHECK_EQ_INT(eval_rc, TFQ_ENOMEM);
    CHECK(acc == 42.0);
    CHECK(trainer_evaluate(t, &acc, &ee) == 0);
    CHECK_MSG(acc >= 0.0 && acc <= 1.0, "accuracy %g", acc);
    trainer_destroy(&t);
    synth_sets_release(&d);
    return 0;
}

/* Evaluation out of memory fails the run with the error instead of
 * recording an accuracy of -1.  The memory runs out for real, under
 * RLIMIT_AS in a child (a process of its own: the cap and a one-thread
 * engine do not leak into other cases).  AddressSanitizer maps its own
 * memory and aborts when it cannot, so that build skips it. */
static int test_evaluate_oom(void)
{
#ifdef __SANITIZE_ADDRESS__
    return TEST_SKIPPED;
#endif
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(evaluate_capped());
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st), "the capped child died of signal %d",
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    CHECK_MSG(WEXITSTATUS(st) == 0, "the capped child failed (above)");
    return 0;
}

/* Largest |a - b| over the largest |a|, per learned layer; the worst. */
static double max_rel_layer_diff(net *a, net *b)
{
    double worst = 0.0;
    for (int g = 1; g <= a->nlearned; g++) {
        layer_params *pa = net_layer_params(a, g), *pb = net_layer_params(b, g);
        long n = pa->nw + pa->nb;
        double scale = 1e-12, diff = 0.0;
        for (long i = 0; i < n; i++) {
            scale = fmax(scale, fabs(pa->w[i]));
            diff = fmax(diff, fabs((double)pa->w[i] - pb->w[i]));
        }
        worst = fmax(worst, diff / scale);
    }
    return worst;
}

static int test_cache_equivalence(void)
{
    gemm_set_threads(1);
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg);
    cfg.freeze_layers = 5;
    cfg.cache_bytes = (size_t)64 << 20;
    trainer *cached = train_to_end(&cfg, &d);
    cfg.cache_bytes = 0;
    trainer *plain = train_to_end(&cfg, &d);
    int ok_built = cached && plain;
    train_result rc = {0}, rp = {0};
    int bitwise = 0;
    double rel = INFINITY;
    if (ok_built) {
        trainer_result_get(cached, &rc);
        trainer_result_get(plain, &rp);
        bitwise = same_params(cached, plain);
        rel = max_rel_layer_diff(trainer_net(cached), trainer_net(plain));
    }
    trainer_destroy(&cached);
    trainer_destroy(&plain);
    synth_sets_release(&d);
    CHECK(ok_built);
    /* pool5's output, 32 x 3 x 3 floats per image. */
    CHECK_EQ_INT(rc.cached_floats_per_image, 32 * 4 * 4);
    CHECK_EQ_INT(rc.cache_op, 12);
    CHECK_EQ_INT(rp.cached_floats_per_image, 0);
    CHECK_EQ_INT(rp.cache_op, -1);
    if (bitwise) {
        fprintf(stderr, "note: cached and uncached training are "
                "bit-identical\n");
    } else {
        fprintf(stderr, "note: cached and uncached training differ in the "
                "last bits: max relative difference %g\n", rel);
        CHECK_MSG(rel < 1e-5, "max relative difference %g", rel);
    }
    return 0;
}

static int test_random_control(void)
{
    gemm_set_threads(1);
    synth_sets d;
    synth_sets_make(&d);
    train_config cfg;
    small_config(&cfg);
    cfg.freeze_layers = 3;
    trainer *t = train_to_end(&cfg, &d);
    tfq_error e = {0};
    net *init = net_new(&cfg.spec, (netspec_shape){1, SYNTH_HW, SYNTH_HW},
                        SYNTH_CLASSES, 1, &e);
    int ok_built = t && init;
    int bad = -1, moved = -1;
    if (ok_built) {
        net_init_layers(init, 1, init->nlearned, cfg.seed);
        net *m = trainer_net(t);
        for (int g = 1; g <= m->nlearned; g++) {
            layer_params *p = net_layer_params(m, g);
            layer_params *q = net_layer_params(init, g);
            int same = memcmp(p->w, q->w, sizeof(float) * (size_t)p->nw) == 0 &&
                       memcmp(p->b, q->b, sizeof(float) * (size_t)p->nb) == 0;
            if (g <= 3 && !same && bad < 0)
                bad = g;
            if (g > 3 && same && moved < 0)
                moved = g;
        }
    }
    trainer_destroy(&t);
    net_destroy(&init);
    synth_sets_release(&d);
    CHECK(ok_built);
    CHECK_MSG(bad < 0, "frozen layer %d left its initialisation", bad);
    CHECK_MSG(moved < 0, "trainable layer %d never moved", moved);
    return 0;
}

/* A ReLU folded into the conv below it (forward) and into the pool above it
 * (backward) changes nothing: a pass that stops at the conv returns the
 * conv's own output, the ReLU's output is its positive part, and gradients
 * equal those of a net with the ReLU and pool kept apart by an identity
 * dropout (p = 0), which disables both fusions. */
static int test_fused_relu(void)
{
    const int n = 4;
    tfq_error e = {0};
    netspec fused, apart;
    CHECK(netspec_parse("conv 3 3 pad=1; relu; maxpool 2; fc classes",
                         &fused, &e) == 0);
    CHECK(netspec_parse("conv 3 3 pad=1; dropout 0; relu; dropout 0; "
                         "maxpool 2; fc classes", &apart, &e) == 0);
    net *a = net_new(&fused, (netspec_shape){2, 6, 6}, 3, n, &e);
    net *b = net_new(&apart, (netspec_shape){2, 6, 6}, 3, n, &e);
    CHECK(a != NULL && b != NULL);
    CHECK(a->ops[1].fused_forward && a->ops[1].fused_backward);
    CHECK(a->ops[2].u.pool.relu_below);
    CHECK(!b->ops[2].fused_forward && !b->ops[4].u.pool.relu_below);
    net_init_layers(a, 1, 2, 5);
    net_init_layers(b, 1, 2, 5);
    float x[2 * 4 * 36];
    for (int i = 0; i < 2 * n * 36; i++)
        x[i] = 2.0f * rng_uniform(9, (uint64_t)i) - 1.0f;
    const float *conv = net_forward_range(a, x, n, 0, 0, 1, 1);
    float pre[3 * 4 * 36];
    memcpy(pre, conv, sizeof pre);
    int negatives = 0;
    for (int i = 0; i < 3 * n * 36; i++)
        negatives += pre[i] < 0.0f;
    CHECK(negatives > 0); /* the ReLU was not applied early */
    int labels[4] = {0, 1, 2, 1};
    const float *za = net_forward(a, x, n, 0, 1, 1);
    for (int i = 0; i < 3 * n * 36; i++)
        CHECK(a->ops[1].y[i] == (pre[i] > 0.0f ? pre[i] : 0.0f));
    loss_softmax_xent(za, labels, 3, n, net_output_grad(a), NULL);
    net_zero_grad(a);
    net_backward(a);
    const float *zb = net_forward(b, x, n, 0, 1, 1);
    loss_softmax_xent(zb, labels, 3, n, net_output_grad(b), NULL);
    net_zero_grad(b);
    net_backward(b);
    for (int g = 1; g <= 2; g++) {
        layer_params *pa = net_layer_params(a, g), *pb = net_layer_params(b, g);
        for (int i = 0; i < pa->nw; i++)
            CHECK_NEAR(pa->dw[i], pb->dw[i], 1e-6);
        for (int i = 0; i < pa->nb; i++)
            CHECK_NEAR(pa->db[i], pb->db[i], 1e-6);
    }
    net_destroy(&a);
    net_destroy(&b);
    return 0;
}

/* CaffeNet-shaped nets (LRN, overlapping 3x3 pooling, channel counts that
 * take both the direct and the im2col convolution paths) learn a fixed
 * batch of CIFAR-shaped inputs: the loss falls and stays finite. */
static int test_caffenet_steps(void)
{
    const double widths[] = {1.0 / 16, 1.0 / 6};
    for (int wi = 0; wi < 2; wi++) {
        const int n = 8;
        tfq_error e = {0};
        netspec spec;
        CHECK(netspec_preset("caffenet", widths[wi], &spec, &e) == 0);
        net *m = net_new(&spec, (netspec_shape){3, 32, 32}, 4, n, &e);
        CHECK_MSG(m != NULL, "%s", e.msg);
        net_init_layers(m, 1, m->nlearned, 3);
        float *x = malloc(sizeof(float) * 3 * n * 32 * 32);
        CHECK(x != NULL);
        for (int i = 0; i < 3 * n * 32 * 32; i++)
            x[i] = 2.0f * rng_uniform(11, (uint64_t)i) - 1.0f;
        int labels[8] = {0, 1, 2, 3, 0, 1, 2, 3};
        sgd_step st = {.lr = 0.01f, .momentum = 0.9f, .weight_decay = 0.0f,
                       .bias_lr_mult = 1.0f, .bias_decay_mult = 0.0f};
        double first = 0.0, last = 0.0;
        for (int step = 0; step < 30; step++) {
            const float *z = net_forward(m, x, n, 0, 0, (uint64_t)step);
            double loss = loss_softmax_xent(z, labels, 4, n,
                                            net_output_grad(m), NULL);
            if (step == 0)
                first = loss;
            last = loss;
            net_zero_grad(m);
            net_backward(m);
            net_update(m, &st);
        }
        free(x);
        net_destroy(&m);
        CHECK_MSG(isfinite(last) && last < 0.7 * first,
                  "width %g: loss %g -> %g", widths[wi], first, last);
    }
    return 0;
}

/* The old He draw written out: N(0, 2 / fan_in) by Box-Muller on the
 * layer's stream, the classifier N(0, 0.01^2). */
static float he_reference(uint64_t seed, int g, int i, int fan_in,
                          int classifier)
{
    uint64_t key = rng_key(seed, 0x696e6974, (uint64_t)g);
    double u1 = ((double)(rng_u64(key, 2 * (uint64_t)i) >> 11) + 0.5) /
                9007199254740992.0;
    double u2 = (double)(rng_u64(key, 2 * (uint64_t)i + 1) >> 11) /
                9007199254740992.0;
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    return (float)((classifier ? 0.01 : sqrt(2.0 / fan_in)) * z);
}

/* Mean and (population) standard deviation of n floats. */
static void moments(const float *x, int n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / n);
}

/* Each weight_init draws what its definition says, layer by layer, on a
 * net with more convolutions than CaffeNet (the sixth is matched to conv5)
 * and two hidden fc layers (fc6, fc7); he draws exactly the old weights. */
static int test_weight_init(void)
{
    static const double caffe_sd[9] = {0.01, 0.01, 0.01, 0.01, 0.01, 0.01,
                                       0.005, 0.005, 0.01};
    static const float caffe_bias[9] = {0, 1, 0, 1, 1, 1, 1, 1, 0};
    tfq_error e = {0};
    netspec spec;
    CHECK(netspec_parse("conv 64 3 pad=1; relu; conv 64 3 pad=1; relu; "
                        "conv 64 3 pad=1; relu; conv 64 3 pad=1; relu; "
                        "conv 64 3 pad=1; relu; conv 64 3 pad=1; relu; "
                        "fc 256; relu; fc 256; relu; fc classes", &spec,
                        &e) == 0);
    net *m = net_new(&spec, (netspec_shape){8, 8, 8}, 10, 1, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    CHECK_EQ_INT(m->nlearned, 9);
    for (int kind = 0; kind < WEIGHT_INIT_COUNT; kind++) {
        net_init_layers_as(m, 1, m->nlearned, 7, (weight_init)kind);
        for (int g = 1; g <= m->nlearned; g++) {
            layer_params *p = net_layer_params(m, g);
            int fan_in = p->nw / p->nb;
            double mean, sd, bmean, bsd, bound = 1.0 / sqrt(fan_in);
            moments(p->w, p->nw, &mean, &sd);
            moments(p->b, p->nb, &bmean, &bsd);
            if (kind == WEIGHT_INIT_HE) {
                for (int i = 0; i < p->nw; i++)
                    CHECK(p->w[i] == he_reference(7, g, i, fan_in,
                                                  g == m->nlearned));
                CHECK(bmean == 0 && bsd == 0);
            } else if (kind == WEIGHT_INIT_CAFFE) {
                CHECK_NEAR(sd / caffe_sd[g - 1], 1, 0.05);
                CHECK_NEAR(mean, 0, 4 * caffe_sd[g - 1] / sqrt(p->nw));
                CHECK(bsd == 0 && bmean == caffe_bias[g - 1]);
            } else {
                float lo = 0, hi = 0;
                for (int i = 0; i < p->nw; i++) {
                    lo = p->w[i] < lo ? p->w[i] : lo;
                    hi = p->w[i] > hi ? p->w[i] : hi;
                }
                CHECK(lo >= -bound && hi <= bound);
                CHECK(lo < -0.99 * bound && hi > 0.99 * bound);
                CHECK_NEAR(sd / (bound / sqrt(3.0)), 1, 0.05);
                for (int i = 0; i < p->nb; i++)
                    CHECK(fabsf(p->b[i]) <= bound);
                CHECK(bsd > 0.3 * bound); /* drawn, not constant */
            }
        }
    }
    net_destroy(&m);
    return 0;
}

static const test_case cases[] = {
    {"weight_init", test_weight_init},
    {"caffenet_steps", test_caffenet_steps},
    {"fused_relu", test_fused_relu},
    {"spec_parse", test_spec_parse},
    {"spec_pool_stride", test_spec_pool_stride},
    {"spec_errors", test_spec_errors},
    {"oversized", test_oversized},
    {"shapes", test_shapes},
    {"grad_net", test_grad_net},
    {"freeze_no_backward", test_freeze_no_backward},
    {"deterministic", test_deterministic},
    {"evaluate_oom", test_evaluate_oom},
    {"cache_equivalence", test_cache_equivalence},
    {"random_control", test_random_control},
};

int main(int argc, char **argv)
{
    job_engine_register(); /* jobs are checked as the tfq executable checks them */
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
