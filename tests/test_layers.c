/* Numerical kernels against naive references and finite differences. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/rng.h"
#include "worker/engine/conv.h"
#include "worker/engine/dropout.h"
#include "worker/engine/fc.h"
#include "worker/engine/gemm.h"
#include "worker/engine/kern.h"
#include "worker/engine/loss.h"
#include "worker/engine/lrn.h"
#include "worker/engine/par.h"
#include "worker/engine/pool.h"
#include "worker/engine/relu.h"

static uint64_t s_draw;

static void fill(float *v, long n, float scale)
{
    for (long i = 0; i < n; i++)
        v[i] = scale * (2.0f * rng_uniform(77, s_draw++) - 1.0f);
}

static float *vec(long n)
{
    float *v = calloc((size_t)(n ? n : 1), sizeof(float));
    if (v == NULL)
        abort();
    return v;
}

static double max_rel_diff(const float *a, const float *b, long n)
{
    double worst = 0.0, scale = 1e-6;
    for (long i = 0; i < n; i++)
        if (fabs(a[i]) > scale)
            scale = fabs(a[i]);
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / scale;
        if (d > worst)
            worst = d;
    }
    return worst;
}

static int test_gemm_vs_naive(void)
{
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 3, 129}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
                float *a = vec((long)lda * (ta ? k : m));
                float *b = vec((long)ldb * (tb ? n : k));
                float *c1 = vec((long)ldc * m), *c2 = vec((long)ldc * m);
                fill(a, (long)lda * (ta ? k : m), 1.0f);
                fill(b, (long)ldb * (tb ? n : k), 1.0f);
                fill(c1, (long)ldc * m, 1.0f);
                memcpy(c2, c1, sizeof(float) * (size_t)ldc * m);
                gemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c1, ldc);
                gemm_naive(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c2, ldc);
                double d = max_rel_diff(c2, c1, (long)ldc * m);
                free(a);
                free(b);
                free(c1);
                free(c2);
                CHECK_MSG(d < 1e-5, "shape %zu ta %d tb %d: %g", s, ta, tb, d);
            }
    return 0;
}

/* A conv layer with its parameters in one malloc'd block. */
static float *conv_alloc(conv_layer *l)
{
    long nw = l->p.nw, nb = l->p.nb;
    float *blk = vec(3 * (nw + nb));
    l->p.w = blk;
    l->p.b = blk + nw;
    l->p.dw = blk + nw + nb;
    l->p.db = blk + 2 * nw + nb;
    l->p.vw = blk + 2 * (nw + nb);
    l->p.vb = l->p.vw + nw;
    fill(l->p.w, nw, 0.5f);
    fill(l->p.b, nb, 0.5f);
    return blk;
}

/* Runs l's forward and backward passes on n random images and the naive
 * loops on the same data; d gets the largest relative differences of y,
 * dx, dw and db.  With l->relu_after the naive output is rectified too. */
static void compare_with_naive(conv_layer *l, int n, double d[4])
{
    float *blk = conv_alloc(l);
    long xs = (long)l->cin * n * l->hin * l->win;
    long ys = (long)l->cout * n * l->hout * l->wout;
    float *x = vec(xs), *y1 = vec(ys), *y2 = vec(ys), *dy = vec(ys);
    float *dx1 = vec(xs), *dx2 = vec(xs);
    float *ws = vec((long)conv_workspace_floats(l, n));
    float *dw1 = vec(l->p.nw), *db1 = vec(l->p.nb);
    fill(x, xs, 1.0f);
    fill(dy, ys, 1.0f);
    conv_forward(l, x, y1, n, ws);
    conv_forward_naive(l, x, y2, n);
    if (l->relu_after)
        for (long i = 0; i < ys; i++)
            y2[i] = y2[i] > 0.0f ? y2[i] : 0.0f;
    d[0] = max_rel_diff(y2, y1, ys);
    conv_backward(l, x, y1, dy, dx1, n, ws);
    memcpy(dw1, l->p.dw, sizeof(float) * (size_t)l->p.nw);
    memcpy(db1, l->p.db, sizeof(float) * (size_t)l->p.nb);
    memset(l->p.dw, 0, sizeof(float) * (size_t)l->p.nw);
    memset(l->p.db, 0, sizeof(float) * (size_t)l->p.nb);
    conv_backward_naive(l, x, dy, dx2, n);
    d[1] = max_rel_diff(dx2, dx1, xs);
    d[2] = max_rel_diff(l->p.dw, dw1, l->p.nw);
    d[3] = max_rel_diff(l->p.db, db1, l->p.nb);
    free(x); free(y1); free(y2); free(dy); free(dx1); free(dx2);
    free(ws); free(dw1); free(db1); free(blk);
}

static int test_conv_vs_naive(void)
{
    /* cin, h, w, cout, k, stride, pad, n, workspace target */
    const int cases[][9] = {
        {1, 28, 28, 16, 5, 1, 2, 3, 4000},
        {3, 9, 7, 5, 3, 1, 1, 5, 200},
        {2, 11, 13, 3, 3, 2, 0, 4, 1},
        {4, 8, 9, 6, 5, 2, 2, 3, 100000},
        {3, 5, 5, 2, 5, 1, 0, 2, 60},
        {2, 7, 7, 3, 1, 1, 0, 3, 50},
        /* the direct path: same padding, stride 1, channels 16k */
        {3, 7, 7, 48, 3, 1, 1, 3, 500},
        {16, 14, 14, 32, 5, 1, 2, 2, 5000},
        {2, 8, 8, 32, 3, 1, 1, 3, 500},
        {4, 5, 5, 64, 3, 1, 1, 2, 500},
        {1, 9, 11, 16, 5, 1, 2, 2, 500},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        conv_layer l;
        CHECK(conv_init(&l, c[0], c[1], c[2], c[3], c[4], c[5], c[6],
                        (size_t)c[8]) == 0);
        double d[4];
        compare_with_naive(&l, c[7], d);
        CHECK_MSG(d[0] < 1e-5 && d[1] < 1e-5 && d[2] < 1e-5 && d[3] < 1e-5,
                  "case %zu: fwd %g dx %g dw %g db %g", t, d[0], d[1], d[2],
                  d[3]);
    }
    return 0;
}

/* ---- finite differences -------------------------------------------------
 * For a layer f and a fixed random r, L(x, w) = sum(r * f(x; w)).  Its
 * analytic gradients are what backward returns for dy = r; each sampled
 * coordinate is compared with the central difference (L(+h) - L(-h)) / 2h. */

typedef struct {
    void (*forward)(void *layer, const float *x, float *y);
    void *layer;
    long ysize;
    const float *r;
    float *y;
} probe;

static double probe_loss(probe *p, const float *x)
{
    p->forward(p->layer, x, p->y);
    double acc = 0.0;
    for (long i = 0; i < p->ysize; i++)
        acc += (double)p->r[i] * p->y[i];
    return acc;
}

/* Compares grad (analytic dL/dv) with finite differences on v, perturbing
 * up to 60 coordinates.  x is the layer input passed to forward. */
static int fd_check(probe *p, const float *x, float *v, const float *grad,
                    long n, float h, double tol, const char *what)
{
    long step = n / 60 + 1;
    for (long i = 0; i < n; i += step) {
        float keep = v[i];
        v[i] = keep + h;
        double lp = probe_loss(p, x);
        v[i] = keep - h;
        double lm = probe_loss(p, x);
        v[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        double err = fabs(num - grad[i]) / fmax(1.0, fabs(num) + fabs(grad[i]));
        if (err > tol) {
            fprintf(stderr, "%s[%ld]: analytic %.6g numeric %.6g\n", what, i,
                    (double)grad[i], num);
            return 1;
        }
    }
    return 0;
}

#define GRAD_H 1e-2f
#define GRAD_TOL 2e-3

static int s_n = 3;
static float *s_ws;

static void conv_fwd(void *l, const float *x, float *y)
{
    conv_forward(l, x, y, s_n, s_ws);
}

/* One conv geometry through finite differences; returns 0 when every
 * sampled coordinate of dx, dw and db agrees. */
static int grad_conv_case(int cin, int h, int w, int cout, int k, int stride,
                          int pad)
{
    conv_layer l;
    CHECK(conv_init(&l, cin, h, w, cout, k, stride, pad, 64) == 0);
    float *blk = conv_alloc(&l);
    long xs = (long)l.cin * s_n * l.hin * l.win;
    long ys = (long)l.cout * s_n * l.hout * l.wout;
    float *x = vec(xs), *y = vec(ys), *r = vec(ys), *dx = vec(xs);
    s_ws = vec((long)conv_workspace_floats(&l, s_n));
    fill(x, xs, 1.0f);
    fill(r, ys, 1.0f);
    conv_forward(&l, x, y, s_n, s_ws);
    conv_backward(&l, x, y, r, dx, s_n, s_ws);
    probe p = {conv_fwd, &l, ys, r, y};
    int bad = fd_check(&p, x, x, dx, xs, GRAD_H, GRAD_TOL, "conv dx") ||
              fd_check(&p, x, l.p.w, l.p.dw, l.p.nw, GRAD_H, GRAD_TOL, "conv dw") ||
              fd_check(&p, x, l.p.b, l.p.db, l.p.nb, GRAD_H, GRAD_TOL, "conv db");
    free(x); free(y); free(r); free(dx); free(s_ws); free(blk);
    CHECK(!bad);
    return 0;
}

static int test_grad_conv(void)
{
    CHECK(grad_conv_case(3, 7, 6, 4, 3, 2, 1) == 0); /* im2col + sgemm */
    CHECK(grad_conv_case(16, 6, 7, 16, 3, 1, 1) == 0); /* direct paths */
    CHECK(grad_conv_case(2, 5, 5, 32, 5, 1, 2) == 0); /* direct; GEMM dx */
    return 0;
}

/* ---- every kernel set ----------------------------------------------------
 * Each set the host runs, at 1 and 2 threads, against the naive loops on
 * the preset nets' shapes and on odd ones, then by finite differences.
 * conv_init puts every pass the set's direct path can run on it; the test
 * says independently which passes those must be, so a set that quietly
 * fell back to im2col + sgemm fails. */

static int expect_direct(const conv_layer *l, int pass, int lanes)
{
    int same = l->stride == 1 && l->hout == l->hin && l->wout == l->win;
    if (pass == 0)
        return same && l->cout % lanes == 0;
    if (pass == 1)
        return same && l->cin % lanes == 0;
    return same && l->cout % lanes == 0 && (l->k == 3 || l->k == 5);
}

/* One geometry: forward, input gradient, weight and bias gradients of the
 * active set against the naive loops; counts the direct passes run. */
static int kernel_case(const int *c, int lanes, int *direct_passes)
{
    conv_layer l;
    CHECK(conv_init(&l, c[0], c[1], c[2], c[3], c[4], c[5], c[6], 4096) == 0);
    CHECK(l.ks == kern_active());
    for (int pass = 0; pass < 3; pass++) {
        conv_algo a = pass == 0 ? l.fwd : pass == 1 ? l.dx : l.dw;
        CHECK_MSG((a == CONV_DIRECT) == expect_direct(&l, pass, lanes),
                  "%s: cin %d cout %d k %d %dx%d stride %d pad %d: pass %d "
                  "is %s", l.ks->name, l.cin, l.cout, l.k, l.hin, l.win,
                  l.stride, l.pad, pass, a == CONV_DIRECT ? "direct" : "gemm");
        *direct_passes += a == CONV_DIRECT;
    }
    l.relu_after = c[8];
    double d[4];
    compare_with_naive(&l, c[7], d);
    CHECK_MSG(d[0] < 1e-5 && d[1] < 1e-5 && d[2] < 1e-5 && d[3] < 1e-5,
              "%s, %d threads, cin %d cout %d k %d %dx%d: fwd %g dx %g dw %g "
              "db %g", kern_active()->name, par_threads(), c[0], c[3], c[4],
              c[1], c[2], d[0], d[1], d[2], d[3]);
    return 0;
}

static int kernel_set_case(const char *name)
{
    tfq_error e = {0};
    if (kern_find(name) == NULL) {
        fprintf(stderr, "kernel set %s: this CPU cannot run it; skipped\n",
                name);
        return TEST_SKIPPED;
    }
    CHECK_MSG(kern_select(name, &e) == 0, "%s", e.msg);
    CHECK(strcmp(kern_active()->name, name) == 0);
    const int lanes = kern_active()->lanes;
    /* cin, h, w, cout, k, stride, pad, n, relu */
    const int shapes[][9] = {
        /* the reference net */
        {1, 28, 28, 16, 5, 1, 2, 3, 1}, {16, 14, 14, 32, 5, 1, 2, 2, 1},
        {32, 7, 7, 48, 3, 1, 1, 3, 1}, {48, 7, 7, 48, 3, 1, 1, 2, 0},
        {48, 7, 7, 32, 3, 1, 1, 3, 1},
        /* the wide net */
        {1, 28, 28, 32, 5, 1, 2, 2, 1}, {32, 14, 14, 64, 5, 1, 2, 2, 1},
        {64, 7, 7, 96, 3, 1, 1, 2, 1}, {96, 7, 7, 96, 3, 1, 1, 2, 1},
        {96, 7, 7, 64, 3, 1, 1, 2, 1},
        /* CaffeNet's first two */
        {3, 32, 32, 96, 5, 1, 2, 2, 1}, {96, 8, 8, 256, 5, 1, 2, 1, 1},
        /* channels not a multiple of 16, then of 8 */
        {3, 9, 7, 24, 3, 1, 1, 3, 0}, {24, 6, 5, 40, 5, 1, 2, 2, 1},
        {5, 6, 6, 8, 3, 1, 1, 4, 0}, {8, 5, 9, 12, 3, 1, 1, 3, 1},
        {12, 7, 6, 20, 3, 1, 1, 2, 0},
        /* 1x1, stride 2, no padding */
        {16, 7, 7, 32, 1, 1, 0, 3, 1}, {32, 6, 5, 16, 1, 1, 0, 2, 0},
        {4, 9, 9, 16, 3, 2, 1, 2, 0}, {16, 10, 11, 32, 5, 2, 2, 2, 1},
        {3, 8, 8, 16, 3, 1, 0, 2, 0}, {16, 9, 9, 32, 5, 1, 0, 2, 1},
        /* rows that are no multiple of any pixel block */
        {2, 13, 11, 32, 3, 1, 1, 2, 1}, {16, 3, 17, 64, 3, 1, 1, 2, 0},
        {16, 1, 1, 16, 3, 1, 1, 5, 1}, {32, 2, 23, 48, 5, 1, 2, 2, 0},
    };
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int threads = 1; threads <= 2; threads++) {
        CHECK(par_set_threads(threads) == 0);
        int direct = 0;
        for (int i = 0; i < nshapes; i++)
            CHECK(kernel_case(shapes[i], lanes, &direct) == 0);
        CHECK_MSG(direct >= 30, "only %d direct passes ran", direct);
        /* finite differences, direct passes wherever the set runs them */
        CHECK(grad_conv_case(16, 6, 7, 16, 3, 1, 1) == 0);
        CHECK(grad_conv_case(2, 5, 5, 32, 5, 1, 2) == 0);
        CHECK(grad_conv_case(8, 5, 6, 8, 3, 1, 1) == 0);
        CHECK(grad_conv_case(16, 5, 5, 48, 5, 1, 2) == 0);
        CHECK(grad_conv_case(1, 9, 8, 16, 5, 1, 2) == 0);
        fprintf(stderr, "%s, %d thread(s): %d shapes, %d direct passes\n",
                name, threads, nshapes, direct);
    }
    par_set_threads(1);
    return 0;
}

static int test_kernels_generic(void)
{
    return kernel_set_case("generic");
}

static int test_kernels_avx2(void)
{
    return kernel_set_case("avx2");
}

static int test_kernels_avx512(void)
{
    return kernel_set_case("avx512");
}

/* TFQ_KERNELS and kern_select: a known set the CPU runs is taken, an
 * unknown name is refused with the names this build has, and the best set
 * is the default. */
static int test_kernels_select(void)
{
    tfq_error e = {0};
    int count;
    const kern_set *const *all = kern_all(&count);
    CHECK(count >= 1 && strcmp(all[0]->name, "generic") == 0);
    CHECK(kern_find("generic") != NULL);
    unsetenv("TFQ_KERNELS");
    CHECK(kern_init(&e) == 0);
    const kern_set *best = kern_active();
    for (int i = 0; i < count; i++)
        if (kern_find(all[i]->name) != NULL)
            CHECK(best->lanes >= all[i]->lanes);
    setenv("TFQ_KERNELS", "generic", 1);
    CHECK(kern_init(&e) == 0);
    CHECK(strcmp(kern_active()->name, "generic") == 0);
    setenv("TFQ_KERNELS", "sse9", 1);
    CHECK(kern_init(&e) == TFQ_EINVAL);
    CHECK_MSG(strstr(e.msg, "TFQ_KERNELS=sse9") != NULL &&
              strstr(e.msg, "unknown kernel set") != NULL &&
              strstr(e.msg, "generic") != NULL, "%s", e.msg);
    CHECK(kern_active() == best); /* a bad value leaves the best set */
    for (int i = 0; i < count; i++)
        if (kern_find(all[i]->name) == NULL) {
            CHECK(kern_select(all[i]->name, &e) == TFQ_EINVAL);
            CHECK_MSG(strstr(e.msg, "lacks") != NULL, "%s", e.msg);
        }
    CHECK(kern_select("auto", &e) == 0 && kern_active() == best);
    unsetenv("TFQ_KERNELS");
    return 0;
}

static void pool_fwd(void *l, const float *x, float *y)
{
    pool_forward(l, x, y, s_n, NULL);
}

static int pool_case(int k, int stride, int h, int w)
{
    pool_layer l;
    CHECK(pool_init(&l, 2, h, w, k, stride) == 0);
    long xs = 2L * s_n * h * w, ys = 2L * s_n * l.hout * l.wout;
    float *x = vec(xs), *y = vec(ys), *r = vec(ys), *dx = vec(xs);
    l.arg = malloc(sizeof(int32_t) * (size_t)ys);
    /* Distinct values far apart, so +-h never changes which one is largest. */
    for (long i = 0; i < xs; i++)
        x[i] = 0.1f * (float)((i * 7919) % xs);
    fill(r, ys, 1.0f);
    pool_forward(&l, x, y, s_n, NULL);
    pool_backward(&l, x, y, r, dx, s_n, NULL);
    probe p = {pool_fwd, &l, ys, r, y};
    int bad = fd_check(&p, x, x, dx, xs, GRAD_H, GRAD_TOL, "pool dx");
    free(x); free(y); free(r); free(dx); free(l.arg);
    CHECK(!bad);
    return 0;
}

static int test_grad_pool(void)
{
    CHECK(pool_case(2, 2, 6, 7) == 0);
    CHECK(pool_case(3, 2, 7, 7) == 0);
    CHECK(pool_case(2, 1, 5, 4) == 0);
    return 0;
}

static int s_fc_hw;

static void fc_fwd(void *l, const float *x, float *y)
{
    fc_forward(l, x, y, s_n, s_ws);
}

static int fc_case(int in_c, int in_hw, int out)
{
    fc_layer l;
    fc_init(&l, in_c, in_hw, out);
    s_fc_hw = in_hw;
    float *blk = vec(3L * (l.p.nw + l.p.nb));
    l.p.w = blk;
    l.p.b = blk + l.p.nw;
    l.p.dw = blk + l.p.nw + l.p.nb;
    l.p.db = l.p.dw + l.p.nw;
    fill(l.p.w, l.p.nw, 0.5f);
    fill(l.p.b, l.p.nb, 0.5f);
    long xs = (long)l.in * s_n, ys = (long)out * s_n;
    float *x = vec(xs), *y = vec(ys), *r = vec(ys), *dx = vec(xs);
    s_ws = vec(fc_workspace_floats(&l, s_n));
    fill(x, xs, 1.0f);
    fill(r, ys, 1.0f);
    fc_forward(&l, x, y, s_n, s_ws);
    fc_backward(&l, x, y, r, dx, s_n, s_ws);
    probe p = {fc_fwd, &l, ys, r, y};
    int bad = fd_check(&p, x, x, dx, xs, GRAD_H, GRAD_TOL, "fc dx") ||
              fd_check(&p, x, l.p.w, l.p.dw, l.p.nw, GRAD_H, GRAD_TOL, "fc dw") ||
              fd_check(&p, x, l.p.b, l.p.db, l.p.nb, GRAD_H, GRAD_TOL, "fc db");
    free(x); free(y); free(r); free(dx); free(s_ws); free(blk);
    CHECK(!bad);
    return 0;
}

static int test_grad_fc(void)
{
    CHECK(fc_case(7, 1, 5) == 0);  /* flat input */
    CHECK(fc_case(3, 4, 6) == 0);  /* spatial input, transposed inside */
    return 0;
}

static void relu_fwd(void *l, const float *x, float *y)
{
    relu_forward(l, x, y, s_n, NULL);
}

static int test_grad_relu(void)
{
    relu_layer l = {.size = 40};
    long xs = l.size * s_n;
    float *x = vec(xs), *y = vec(xs), *r = vec(xs), *dx = vec(xs);
    fill(x, xs, 1.0f);
    for (long i = 0; i < xs; i++) /* stay away from the kink at 0 */
        if (fabsf(x[i]) < 0.05f)
            x[i] = 0.5f;
    fill(r, xs, 1.0f);
    relu_forward(&l, x, y, s_n, NULL);
    relu_backward(&l, x, y, r, dx, s_n, NULL);
    probe p = {relu_fwd, &l, xs, r, y};
    int bad = fd_check(&p, x, x, dx, xs, GRAD_H, GRAD_TOL, "relu dx");
    /* In place gives the same as out of place. */
    float *z = vec(xs);
    memcpy(z, x, sizeof(float) * (size_t)xs);
    relu_forward(&l, z, z, s_n, NULL);
    int same = memcmp(z, y, sizeof(float) * (size_t)xs) == 0;
    free(x); free(y); free(r); free(dx); free(z);
    CHECK(!bad);
    CHECK(same);
    return 0;
}

static void drop_fwd(void *l, const float *x, float *y)
{
    dropout_forward(l, x, y, s_n, NULL);
}

static int test_grad_dropout(void)
{
    long size = 50, xs = size * s_n;
    uint8_t *mask = malloc((size_t)xs);
    for (long i = 0; i < xs; i++)
        mask[i] = (uint8_t)(i % 3 != 0);
    dropout_layer l = {.size = size, .p = 0.5f, .training = 1,
                       .fixed_mask = mask};
    float *x = vec(xs), *y = vec(xs), *r = vec(xs), *dx = vec(xs);
    fill(x, xs, 1.0f);
    fill(r, xs, 1.0f);
    dropout_forward(&l, x, y, s_n, NULL);
    dropout_backward(&l, x, y, r, dx, s_n, NULL);
    probe p = {drop_fwd, &l, xs, r, y};
    int bad = fd_check(&p, x, x, dx, xs, GRAD_H, GRAD_TOL, "dropout dx");
    int scaled_ok = y[1] == x[1] * 2.0f && y[0] == 0.0f;
    /* The random mask keeps about 1 - p, and is a function of the key. */
    l.fixed_mask = NULL;
    l.key = 1234;
    long big = 20000, kept = 0;
    dropout_layer lb = l;
    lb.size = big;
    float *ones = vec(big), *out = vec(big), *out2 = vec(big);
    for (long i = 0; i < big; i++)
        ones[i] = 1.0f;
    dropout_forward(&lb, ones, out, 1, NULL);
    dropout_forward(&lb, ones, out2, 1, NULL);
    for (long i = 0; i < big; i++)
        kept += out[i] != 0.0f;
    int same = memcmp(out, out2, sizeof(float) * (size_t)big) == 0;
    lb.training = 0;
    dropout_forward(&lb, ones, out, 1, NULL);
    int identity = memcmp(out, ones, sizeof(float) * (size_t)big) == 0;
    free(x); free(y); free(r); free(dx); free(mask); free(ones); free(out);
    free(out2);
    CHECK(!bad);
    CHECK(scaled_ok);
    CHECK_MSG(kept > 9500 && kept < 10500, "kept %ld of 20000", kept);
    CHECK(same);
    CHECK(identity);
    return 0;
}

static void lrn_fwd(void *l, const float *x, float *y)
{
    lrn_forward(l, x, y, s_n, NULL);
}

static int test_grad_lrn(void)
{
    /* A large alpha makes the normalisation matter at this scale. */
    lrn_layer l = {.c = 7, .hw = 6, .size = 5, .alpha = 2.0f, .beta = 0.75f,
                   .k = 1.0f};
    long xs = l.c * s_n * l.hw;
    float *x = vec(xs), *y = vec(xs), *r = vec(xs), *dx = vec(xs);
    float *ws = vec(lrn_workspace_floats(&l, s_n));
    l.scale = vec(xs);
    fill(x, xs, 1.0f);
    fill(r, xs, 1.0f);
    lrn_forward(&l, x, y, s_n, NULL);
    lrn_backward(&l, x, y, r, dx, s_n, ws);
    probe p = {lrn_fwd, &l, xs, r, y};
    int bad = fd_check(&p, x, x, dx, xs, 1e-2f, GRAD_TOL, "lrn dx");
    /* One value against the formula written out. */
    long j = 2 * s_n * l.hw + 1; /* channel 2, first image, pixel 1 */
    double sum = 0.0;
    for (int c = 0; c <= 4; c++) {
        double v = x[c * s_n * l.hw + 1];
        sum += v * v;
    }
    double want = x[j] * pow(1.0 + 2.0 / 5.0 * sum, -0.75);
    free(x); free(r); free(dx); free(ws); free(l.scale);
    float got = y[j];
    free(y);
    CHECK(!bad);
    CHECK_NEAR(got, want, 1e-5);
    return 0;
}

static int test_grad_softmax(void)
{
    int classes = 5, n = 4;
    int labels[] = {0, 3, 4, 1};
    float *z = vec(classes * n), *dz = vec(classes * n);
    fill(z, classes * n, 3.0f);
    loss_softmax_xent(z, labels, classes, n, dz, NULL);
    for (int i = 0; i < classes * n; i++) {
        float keep = z[i];
        z[i] = keep + 1e-2f;
        double lp = loss_softmax_xent(z, labels, classes, n, NULL, NULL);
        z[i] = keep - 1e-2f;
        double lm = loss_softmax_xent(z, labels, classes, n, NULL, NULL);
        z[i] = keep;
        CHECK_NEAR((lp - lm) / 2e-2, dz[i], 2e-4);
    }
    /* Uniform logits: loss log(classes), and counting correct works. */
    memset(z, 0, sizeof(float) * (size_t)(classes * n));
    z[3 * n + 1] = 1.0f; /* image 1 predicts class 3 = its label */
    int correct = 0;
    loss_count_correct(z, labels, classes, n, &correct);
    memset(z, 0, sizeof(float) * (size_t)(classes * n));
    double l0 = loss_softmax_xent(z, labels, classes, n, NULL, NULL);
    free(z);
    free(dz);
    CHECK_NEAR(l0, log(5.0), 1e-6);
    CHECK(correct >= 1);
    return 0;
}

static const test_case cases[] = {
    {"gemm_vs_naive", test_gemm_vs_naive},
    {"conv_vs_naive", test_conv_vs_naive},
    {"grad_conv", test_grad_conv},
    {"grad_pool", test_grad_pool},
    {"grad_fc", test_grad_fc},
    {"grad_relu", test_grad_relu},
    {"grad_dropout", test_grad_dropout},
    {"grad_lrn", test_grad_lrn},
    {"grad_softmax", test_grad_softmax},
    {"kernels_generic", test_kernels_generic},
    {"kernels_avx2", test_kernels_avx2},
    {"kernels_avx512", test_kernels_avx512},
    {"kernels_select", test_kernels_select},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
