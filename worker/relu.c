#include "relu.h"

void relu_forward(relu_layer *l, const float *x, float *y, int n, float *ws)
{
    (void)ws;
    const long total = l->size * n;
    for (long i = 0; i < total; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(relu_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)x;
    (void)ws;
    const long total = l->size * n;
    for (long i = 0; i < total; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
