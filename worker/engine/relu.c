#include "relu.h"

#include "par.h"

/* Elements under which a chunk is not worth another thread. */
#define RELU_MIN_CHUNK 16384

typedef struct {
    const float *x, *y, *dy;
    float *out;
} relu_job;

static void forward_range(void *ctx, long lo, long hi)
{
    relu_job *j = ctx;
    for (long i = lo; i < hi; i++)
        j->out[i] = j->x[i] > 0.0f ? j->x[i] : 0.0f;
}

static void backward_range(void *ctx, long lo, long hi)
{
    relu_job *j = ctx;
    for (long i = lo; i < hi; i++)
        j->out[i] = j->y[i] > 0.0f ? j->dy[i] : 0.0f;
}

void relu_forward(relu_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    relu_job j = {.x = x, .out = y};
    par_range(l->size * n, RELU_MIN_CHUNK, forward_range, &j);
}

void relu_backward(relu_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)x;
    (void)ws;
    relu_job j = {.y = y, .dy = dy, .out = dx};
    par_range(l->size * n, RELU_MIN_CHUNK, backward_range, &j);
}
