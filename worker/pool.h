/* Max pooling on channel-major activations: x (c, n, hin, win) ->
 * y (c, n, hout, wout), hout = (hin - k) / stride + 1.  The position of each
 * maximum is kept for the backward pass. */
#ifndef TFQ_WORKER_POOL_H
#define TFQ_WORKER_POOL_H

#include <stdint.h>

typedef struct {
    int c, hin, win, k, stride, hout, wout;
    int32_t *arg; /* (c, n, hout, wout) index of the max within its plane */
} pool_layer;

/* Fills the geometry; TFQ_EINVAL when the window does not fit. */
int pool_init(pool_layer *l, int c, int hin, int win, int k, int stride);

void pool_forward(pool_layer *l, const float *x, float *y, int n, float *ws);

/* dx = the gradient routed to each window's maximum; x and y unused. */
void pool_backward(pool_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws);

#endif
