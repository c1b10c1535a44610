#include "pool.h"

#include <math.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

#include "common/err.h"
#include "par.h"

int pool_init(pool_layer *l, int c, int hin, int win, int k, int stride)
{
    if (c < 1 || k < 1 || stride < 1 || hin < k || win < k)
        return TFQ_EINVAL;
    memset(l, 0, sizeof *l);
    l->c = c;
    l->hin = hin;
    l->win = win;
    l->k = k;
    l->stride = stride;
    /* Caffe's rounding (the paper's framework): the last window may hang
     * over the edge, so no input row or column is left out. */
    l->hout = (hin - k + stride - 1) / stride + 1;
    l->wout = (win - k + stride - 1) / stride + 1;
    return 0;
}

/* The common 2x2, stride 2 window.  It keeps no argmax: the backward pass
 * finds each window's maximum again by comparing x with y, which is cheaper
 * than storing and reloading an index per output. */
static void forward_2x2(const pool_layer *l, const float *restrict x,
                        float *restrict y, long planes)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    for (long pl = 0; pl < planes; pl++)
        for (int oy = 0; oy < l->hout; oy++) {
            const float *r0 = x + pl * hw_in + 2 * oy * l->win;
            const float *r1 = r0 + l->win;
            float *yo = y + pl * hw_out + oy * l->wout;
            for (int ox = 0; ox < l->wout; ox++) {
                float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
                float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
                yo[ox] = a > b ? a : b;
            }
        }
}

/* The value a window's maximum must exceed for its gradient to pass: with
 * a ReLU below, a maximum of 0 means the ReLU blocked every input. */
static float relu_floor(const pool_layer *l)
{
    return l->relu_below ? 0.0f : -INFINITY;
}

/* One output row of the 2x2 backward pass: routes each window's gradient to
 * the first of its four inputs (in row order) that equals the maximum and
 * writes every input of the two rows exactly once, so no zeroing pass is
 * needed. */
#ifdef __SSE2__
static void backward_row(const float *restrict r0, const float *restrict r1,
                         const float *restrict yo, const float *restrict go,
                         float *restrict d0, float *restrict d1, int wo,
                         float relu_floor)
{
    /* One window = one 4-lane vector (a b | c d); the lowest lane equal to
     * the maximum gets the gradient. */
    static const uint32_t lane[16][4] = {
        [1] = {~0u, 0, 0, 0},  [3] = {~0u, 0, 0, 0},  [5] = {~0u, 0, 0, 0},
        [7] = {~0u, 0, 0, 0},  [9] = {~0u, 0, 0, 0},  [11] = {~0u, 0, 0, 0},
        [13] = {~0u, 0, 0, 0}, [15] = {~0u, 0, 0, 0}, [2] = {0, ~0u, 0, 0},
        [6] = {0, ~0u, 0, 0},  [10] = {0, ~0u, 0, 0}, [14] = {0, ~0u, 0, 0},
        [4] = {0, 0, ~0u, 0},  [12] = {0, 0, ~0u, 0}, [8] = {0, 0, 0, ~0u},
        [0] = {0, 0, 0, ~0u},
    };
    for (int ox = 0; ox < wo; ox++) {
        __m128 v = _mm_loadh_pi(
            _mm_castpd_ps(_mm_load_sd((const double *)(const void *)(r0 + 2 * ox))),
            (const __m64 *)(const void *)(r1 + 2 * ox));
        int bits = _mm_movemask_ps(_mm_cmpeq_ps(v, _mm_set1_ps(yo[ox])));
        float g = yo[ox] > relu_floor ? go[ox] : 0.0f;
        __m128 out = _mm_and_ps(_mm_loadu_ps((const float *)lane[bits]),
                                _mm_set1_ps(g));
        _mm_storel_pi((__m64 *)(void *)(d0 + 2 * ox), out);
        _mm_storeh_pi((__m64 *)(void *)(d1 + 2 * ox), out);
    }
}
#else
static void backward_row(const float *restrict r0, const float *restrict r1,
                         const float *restrict yo, const float *restrict go,
                         float *restrict d0, float *restrict d1, int wo,
                         float relu_floor)
{
    for (int ox = 0; ox < wo; ox++) {
        float m = yo[ox], g = m > relu_floor ? go[ox] : 0.0f;
        float ea = (float)(r0[2 * ox] == m);
        float eb = (float)(r0[2 * ox + 1] == m) * (1.0f - ea);
        float ec = (float)(r1[2 * ox] == m) * (1.0f - ea - eb);
        float ed = 1.0f - ea - eb - ec;
        d0[2 * ox] = g * ea;
        d0[2 * ox + 1] = g * eb;
        d1[2 * ox] = g * ec;
        d1[2 * ox + 1] = g * ed;
    }
}
#endif

static void backward_2x2(const pool_layer *l, const float *restrict x,
                         const float *restrict y, const float *restrict dy,
                         float *restrict dx, long planes)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const int wo = l->wout, wi = l->win;
    const float floor = relu_floor(l);
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw_in;
        float *dp = dx + pl * hw_in;
        for (int oy = 0; oy < l->hout; oy++) {
            const float *r0 = xp + 2 * oy * wi;
            float *d0 = dp + 2 * oy * wi;
            const float *yo = y + pl * hw_out + oy * wo;
            const float *go = dy + pl * hw_out + oy * wo;
            backward_row(r0, r0 + wi, yo, go, d0, d0 + wi, wo, floor);
        }
    }
}

/* Planes under which a chunk is not worth another thread. */
#define POOL_MIN_PLANES 16

typedef struct {
    const pool_layer *l;
    const float *x, *y, *dy;
    float *out;
} pool_job;

static void forward_general(const pool_layer *l, const float *x, float *y,
                            long p0, long p1)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    for (long pl = p0; pl < p1; pl++) {
        const float *xp = x + pl * hw_in;
        float *yp = y + pl * hw_out;
        int32_t *ap = l->arg + pl * hw_out;
        for (int oy = 0; oy < l->hout; oy++)
            for (int ox = 0; ox < l->wout; ox++) {
                int y0 = oy * l->stride, x0 = ox * l->stride;
                int y1 = y0 + l->k < l->hin ? y0 + l->k : l->hin;
                int x1 = x0 + l->k < l->win ? x0 + l->k : l->win;
                int best = y0 * l->win + x0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        int i = iy * l->win + ix;
                        if (xp[i] > xp[best])
                            best = i;
                    }
                yp[oy * l->wout + ox] = xp[best];
                ap[oy * l->wout + ox] = best;
            }
    }
}

static void backward_general(const pool_layer *l, const float *y,
                             const float *dy, float *dx, long p0, long p1)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const float floor = relu_floor(l);
    memset(dx + p0 * hw_in, 0, sizeof(float) * (size_t)((p1 - p0) * hw_in));
    for (long pl = p0; pl < p1; pl++) {
        float *dp = dx + pl * hw_in;
        const float *gp = dy + pl * hw_out;
        const float *yp = y + pl * hw_out;
        const int32_t *ap = l->arg + pl * hw_out;
        for (int j = 0; j < hw_out; j++)
            if (yp[j] > floor)
                dp[ap[j]] += gp[j];
    }
}

static void forward_range(void *ctx, long p0, long p1)
{
    pool_job *j = ctx;
    const pool_layer *l = j->l;
    if (POOL_IS_2X2(l))
        forward_2x2(l, j->x + p0 * l->hin * l->win,
                    j->out + p0 * l->hout * l->wout, p1 - p0);
    else
        forward_general(l, j->x, j->out, p0, p1);
}

static void backward_range(void *ctx, long p0, long p1)
{
    pool_job *j = ctx;
    const pool_layer *l = j->l;
    const long hw_in = (long)l->hin * l->win, hw_out = (long)l->hout * l->wout;
    if (POOL_IS_2X2(l))
        backward_2x2(l, j->x + p0 * hw_in, j->y + p0 * hw_out,
                     j->dy + p0 * hw_out, j->out + p0 * hw_in, p1 - p0);
    else
        backward_general(l, j->y, j->dy, j->out, p0, p1);
}

void pool_forward(pool_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    pool_job j = {.l = l, .x = x, .out = y};
    par_range((long)l->c * n, POOL_MIN_PLANES, forward_range, &j);
}

void pool_backward(pool_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)ws;
    pool_job j = {.l = l, .x = x, .y = y, .dy = dy, .out = dx};
    par_range((long)l->c * n, POOL_MIN_PLANES, backward_range, &j);
}
