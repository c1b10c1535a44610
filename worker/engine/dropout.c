#include "dropout.h"

#include <string.h>

#include "common/rng.h"
#include "par.h"

static float keep_scale(const dropout_layer *l, long i)
{
    int keep = l->fixed_mask ? l->fixed_mask[i] != 0
                             : rng_uniform(l->key, (uint64_t)i) >= l->p;
    return keep ? 1.0f / (1.0f - l->p) : 0.0f;
}

/* Elements under which a chunk is not worth another thread (each one
 * draws a random number). */
#define DROPOUT_MIN_CHUNK 2048

typedef struct {
    const dropout_layer *l;
    const float *in;
    float *out;
} dropout_job;

static void apply_range(void *ctx, long lo, long hi)
{
    dropout_job *j = ctx;
    for (long i = lo; i < hi; i++)
        j->out[i] = j->in[i] * keep_scale(j->l, i);
}

static void apply(const dropout_layer *l, const float *in, float *out, int n)
{
    const long total = l->size * n;
    if (!l->training || l->p <= 0.0f) {
        if (in != out)
            memmove(out, in, sizeof(float) * (size_t)total);
        return;
    }
    dropout_job j = {.l = l, .in = in, .out = out};
    par_range(total, DROPOUT_MIN_CHUNK, apply_range, &j);
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
