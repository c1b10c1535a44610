/* Fully connected layer.  Its activations are feature-major: x (in, n),
 * y (out, n), so y = W x + b is one GEMM with the batch as columns.  When
 * the input comes from a spatial layer, stored (c, n, hw), the layer
 * transposes it into (c * hw, n) in the workspace first. */
#ifndef TFQ_ENGINE_FC_H
#define TFQ_ENGINE_FC_H

#include "sgd.h"

typedef struct {
    int in, out;    /* in = in_c * in_hw */
    int in_c;       /* channels of the input */
    int in_hw;      /* pixels per channel of the input; 1 when flat */
    layer_params p; /* w: (out, in), b: (out) */
} fc_layer;

void fc_init(fc_layer *l, int in_c, int in_hw, int out);

/* Floats of workspace for n images (0 when the input is flat). */
long fc_workspace_floats(const fc_layer *l, int n);

void fc_forward(fc_layer *l, const float *x, float *y, int n, float *ws);

/* Accumulates dw, db; writes dx when not NULL. */
void fc_backward(fc_layer *l, const float *x, const float *y,
                 const float *dy, float *dx, int n, float *ws);

void fc_update(fc_layer *l, const sgd_step *s);

double fc_macs(const fc_layer *l);

#endif
