/* Max pooling on channel-major activations: x (c, n, hin, win) ->
 * y (c, n, hout, wout), hout = ceil((hin - k) / stride) + 1 as in Caffe: a
 * last window that hangs over the edge covers what is left.  The gradient goes to
 * the first input of each window that holds its maximum. */
#ifndef TFQ_ENGINE_POOL_H
#define TFQ_ENGINE_POOL_H

#include <stdint.h>

/* Widest output row of the 2x2 fast path (its scratch lives on the stack);
 * wider maps take the general path. */
#define POOL_MAX_WIDTH 1024

/* Whether l takes the 2x2, stride-2 path (even sizes, so every window is
 * whole) that needs no argmax buffer. */
#define POOL_IS_2X2(l)                                                    \
    ((l)->k == 2 && (l)->stride == 2 && (l)->hin == 2 * (l)->hout &&      \
     (l)->win == 2 * (l)->wout && (l)->wout <= POOL_MAX_WIDTH)

typedef struct {
    int c, hin, win, k, stride, hout, wout;
    int relu_below; /* the input is a ReLU's output: backward also applies
                       the ReLU's gradient, so the ReLU need not run its own */
    int32_t *arg; /* (c, n, hout, wout) index of the max within its plane;
                     unused by the 2x2 stride-2 path, which finds it again */
} pool_layer;

/* Fills the geometry; TFQ_EINVAL when the window does not fit. */
int pool_init(pool_layer *l, int c, int hin, int win, int k, int stride);

void pool_forward(pool_layer *l, const float *x, float *y, int n, float *ws);

/* dx = the gradient routed to each window's maximum. */
void pool_backward(pool_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws);

#endif
