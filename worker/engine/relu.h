/* Rectified linear unit, elementwise; may run in place (x == y, dy == dx). */
#ifndef TFQ_ENGINE_RELU_H
#define TFQ_ENGINE_RELU_H

typedef struct {
    long size; /* elements per image */
} relu_layer;

void relu_forward(relu_layer *l, const float *x, float *y, int n, float *ws);

/* dx = dy where y > 0, else 0. */
void relu_backward(relu_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws);

#endif
