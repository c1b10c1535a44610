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

/* The common 2x2, stride 2 window, unrolled. */
static void forward_2x2(pool_layer *l, const float *x, float *y, long planes)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    for (long pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * hw_in;
        float *yp = y + pl * hw_out;
        int32_t *ap = l->arg + pl * hw_out;
        for (int oy = 0; oy < l->hout; oy++) {
            const float *r0 = xp + 2 * oy * l->win, *r1 = r0 + l->win;
            for (int ox = 0; ox < l->wout; ox++) {
                int i = 2 * ox;
                float m = r0[i];
                int32_t a = (int32_t)(2 * oy * l->win + i);
                if (r0[i + 1] > m) {
                    m = r0[i + 1];
                    a = (int32_t)(2 * oy * l->win + i + 1);
                }
                if (r1[i] > m) {
                    m = r1[i];
                    a = (int32_t)((2 * oy + 1) * l->win + i);
                }
                if (r1[i + 1] > m) {
                    m = r1[i + 1];
                    a = (int32_t)((2 * oy + 1) * l->win + i + 1);
                }
                yp[oy * l->wout + ox] = m;
                ap[oy * l->wout + ox] = a;
            }
        }
    }
}

void pool_forward(pool_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    const long planes = (long)l->c * n;
    if (l->k == 2 && l->stride == 2) {
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
    (void)x;
    (void)y;
    (void)ws;
    const long planes = (long)l->c * n;
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
