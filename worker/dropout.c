#include "dropout.h"

#include <string.h>

#include "../common/rng.h"

static float keep_scale(const dropout_layer *l, long i)
{
    int keep = l->fixed_mask ? l->fixed_mask[i] != 0
                             : rng_uniform(l->key, (uint64_t)i) >= l->p;
    return keep ? 1.0f / (1.0f - l->p) : 0.0f;
}

static void apply(const dropout_layer *l, const float *in, float *out, int n)
{
    const long total = l->size * n;
    if (!l->training || l->p <= 0.0f) {
        if (in != out)
            memmove(out, in, sizeof(float) * (size_t)total);
        return;
    }
    for (long i = 0; i < total; i++)
        out[i] = in[i] * keep_scale(l, i);
}

void dropout_forward(dropout_layer *l, const float *x, float *y, int n,
                     float *ws)
{
    (void)ws;
    apply(l, x, y, n);
}

void dropout_backward(dropout_layer *l, const float *x, const float *y,
                      const float *dy, float *dx, int n, float *ws)
{
    (void)x;
    (void)y;
    (void)ws;
    apply(l, dy, dx, n);
}
