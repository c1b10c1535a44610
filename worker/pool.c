#include "pool.h"

#include <string.h>

#include "../common/err.h"

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
    l->hout = (hin - k) / stride + 1;
    l->wout = (win - k) / stride + 1;
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

/* One output row of the 2x2 backward pass: routes each window's gradient to
 * the first of its four inputs (in row order) that equals the maximum,
 * writing every input of the two rows exactly once, so no zeroing pass is
 * needed.  Inlined with a constant width the compiler vectorises it. */
static inline __attribute__((always_inline)) void
backward_row(const float *restrict r0, const float *restrict r1,
             const float *restrict yo, const float *restrict go,
             float *restrict d0, float *restrict d1, int wo)
{
    /* Branch-free: each flag is 0 or 1, and a later input only takes the
     * gradient when no earlier one did. */
    for (int ox = 0; ox < wo; ox++) {
        float m = yo[ox], g = go[ox];
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

static void backward_2x2(const pool_layer *l, const float *restrict x,
                         const float *restrict y, const float *restrict dy,
                         float *restrict dx, long planes)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const int wo = l->wout, wi = l->win;
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw_in;
        float *dp = dx + pl * hw_in;
        for (int oy = 0; oy < l->hout; oy++) {
            const float *r0 = xp + 2 * oy * wi;
            float *d0 = dp + 2 * oy * wi;
            const float *yo = y + pl * hw_out + oy * wo;
            const float *go = dy + pl * hw_out + oy * wo;
            /* The widths of the preset nets, specialised. */
            switch (wo) {
            case 14:
                backward_row(r0, r0 + wi, yo, go, d0, d0 + wi, 14);
                break;
            case 7:
                backward_row(r0, r0 + wi, yo, go, d0, d0 + wi, 7);
                break;
            case 3:
                backward_row(r0, r0 + wi, yo, go, d0, d0 + wi, 3);
                break;
            default:
                backward_row(r0, r0 + wi, yo, go, d0, d0 + wi, wo);
                break;
            }
            for (int x0 = 2 * wo; x0 < wi; x0++)
                d0[x0] = d0[wi + x0] = 0.0f; /* odd width: unpooled column */
        }
        for (long j = (long)2 * l->hout * wi; j < hw_in; j++)
            dp[j] = 0.0f; /* odd height: last row unpooled */
    }
}

void pool_forward(pool_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    const long planes = (long)l->c * n;
    if (POOL_IS_2X2(l)) {
        forward_2x2(l, x, y, planes);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw_in;
        float *yp = y + pl * hw_out;
        int32_t *ap = l->arg + pl * hw_out;
        for (int oy = 0; oy < l->hout; oy++)
            for (int ox = 0; ox < l->wout; ox++) {
                int best = oy * l->stride * l->win + ox * l->stride;
                for (int ky = 0; ky < l->k; ky++)
                    for (int kx = 0; kx < l->k; kx++) {
                        int i = (oy * l->stride + ky) * l->win + ox * l->stride + kx;
                        if (xp[i] > xp[best])
                            best = i;
                    }
                yp[oy * l->wout + ox] = xp[best];
                ap[oy * l->wout + ox] = best;
            }
    }
}

void pool_backward(pool_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)ws;
    const long planes = (long)l->c * n;
    if (POOL_IS_2X2(l)) {
        backward_2x2(l, x, y, dy, dx, planes);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    memset(dx, 0, sizeof(float) * (size_t)(planes * hw_in));
    for (long pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * hw_in;
        const float *gp = dy + pl * hw_out;
        const int32_t *ap = l->arg + pl * hw_out;
        for (int j = 0; j < hw_out; j++)
            dp[ap[j]] += gp[j];
    }
}
