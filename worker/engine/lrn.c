#include "lrn.h"

#include <math.h>

long lrn_workspace_floats(const lrn_layer *l, int n)
{
    return (long)l->c * n * l->hw;
}

void lrn_forward(lrn_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    const long plane = (long)n * l->hw;
    const int half = l->size / 2;
    const float a = l->alpha / (float)l->size;
    for (int c = 0; c < l->c; c++) {
        float *s = l->scale + c * plane;
        for (long j = 0; j < plane; j++)
            s[j] = l->k;
        int lo = c - half < 0 ? 0 : c - half;
        int hi = c + half >= l->c ? l->c - 1 : c + half;
        for (int q = lo; q <= hi; q++) {
            const float *xq = x + q * plane;
            for (long j = 0; j < plane; j++)
                s[j] += a * xq[j] * xq[j];
        }
    }
    const long total = (long)l->c * plane;
    for (long j = 0; j < total; j++)
        y[j] = x[j] * powf(l->scale[j], -l->beta);
}

void lrn_backward(lrn_layer *l, const float *x, const float *y,
                  const float *dy, float *dx, int n, float *ws)
{
    const long plane = (long)n * l->hw;
    const long total = (long)l->c * plane;
    const int half = l->size / 2;
    const float coef = 2.0f * l->alpha * l->beta / (float)l->size;
    /* ws: dy * y / scale, the term every neighbour's gradient sums over. */
    for (long j = 0; j < total; j++)
        ws[j] = dy[j] * y[j] / l->scale[j];
    for (int c = 0; c < l->c; c++) {
        const float *xc = x + c * plane, *dyc = dy + c * plane;
        const float *sc = l->scale + c * plane;
        float *dxc = dx + c * plane;
        for (long j = 0; j < plane; j++)
            dxc[j] = dyc[j] * powf(sc[j], -l->beta);
        int lo = c - half < 0 ? 0 : c - half;
        int hi = c + half >= l->c ? l->c - 1 : c + half;
        for (int q = lo; q <= hi; q++) {
            const float *r = ws + q * plane;
            for (long j = 0; j < plane; j++)
                dxc[j] -= coef * xc[j] * r[j];
        }
    }
}
