#include "fc.h"

#include <string.h>

#include "gemm.h"

void fc_init(fc_layer *l, int in_c, int in_hw, int out)
{
    memset(l, 0, sizeof *l);
    l->in_c = in_c;
    l->in_hw = in_hw;
    l->in = in_c * in_hw;
    l->out = out;
    l->p.nw = out * l->in;
    l->p.nb = out;
}

long fc_workspace_floats(const fc_layer *l, int n)
{
    return l->in_hw > 1 ? (long)l->in * n : 0;
}

double fc_macs(const fc_layer *l)
{
    return (double)l->in * l->out;
}

/* (c, n, hw) -> (c * hw, n) */
static void to_features(const fc_layer *l, const float *x, float *f, int n)
{
    for (int c = 0; c < l->in_c; c++)
        for (int i = 0; i < n; i++) {
            const float *src = x + ((long)c * n + i) * l->in_hw;
            float *dst = f + (long)c * l->in_hw * n + i;
            for (int p = 0; p < l->in_hw; p++)
                dst[(long)p * n] = src[p];
        }
}

/* (c * hw, n) -> (c, n, hw) */
static void from_features(const fc_layer *l, const float *f, float *x, int n)
{
    for (int c = 0; c < l->in_c; c++)
        for (int i = 0; i < n; i++) {
            float *dst = x + ((long)c * n + i) * l->in_hw;
            const float *src = f + (long)c * l->in_hw * n + i;
            for (int p = 0; p < l->in_hw; p++)
                dst[p] = src[(long)p * n];
        }
}

void fc_forward(fc_layer *l, const float *x, float *y, int n, float *ws)
{
    const float *f = x;
    if (l->in_hw > 1) {
        to_features(l, x, ws, n);
        f = ws;
    }
    for (int o = 0; o < l->out; o++)
        for (int i = 0; i < n; i++)
            y[(long)o * n + i] = l->p.b[o];
    gemm(0, 0, l->out, n, l->in, 1.0f, l->p.w, l->in, f, n, 1.0f, y, n);
}

void fc_backward(fc_layer *l, const float *x, const float *y,
                 const float *dy, float *dx, int n, float *ws)
{
    (void)y;
    const float *f = x;
    if (l->in_hw > 1) {
        to_features(l, x, ws, n);
        f = ws;
    }
    for (int o = 0; o < l->out; o++) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++)
            acc += dy[(long)o * n + i];
        l->p.db[o] += acc;
    }
    gemm(0, 1, l->out, l->in, n, 1.0f, dy, n, f, n, 1.0f, l->p.dw, l->in);
    if (dx == NULL)
        return;
    if (l->in_hw > 1) {
        gemm(1, 0, l->in, n, l->out, 1.0f, l->p.w, l->in, dy, n, 0.0f, ws, n);
        from_features(l, ws, dx, n);
    } else {
        gemm(1, 0, l->in, n, l->out, 1.0f, l->p.w, l->in, dy, n, 0.0f, dx, n);
    }
}

void fc_update(fc_layer *l, const sgd_step *s)
{
    sgd_update(&l->p, s);
}
