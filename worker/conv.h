/* 2-D convolution by im2col + GEMM, on activations stored channel-major for
 * the whole batch: x (cin, n, hin, win), y (cout, n, hout, wout).  In that
 * layout the GEMM output of a chunk of images is a column block of y, so no
 * transposes are needed.  The im2col workspace holds `chunk` images at a time,
 * which keeps it inside the cache and its size independent of the batch. */
#ifndef TFQ_WORKER_CONV_H
#define TFQ_WORKER_CONV_H

#include <stddef.h>

#include "sgd.h"

typedef struct {
    int cin, cout, k, stride, pad;
    int hin, win, hout, wout;
    int chunk;      /* images per im2col block */
    layer_params p; /* w: (cout, cin, k, k), b: (cout) */
    int relu_after; /* the forward pass also applies a ReLU to its output
                       (the net's next operation, which then need not) */
} conv_layer;

/* Fills the geometry of l (not its parameter pointers); chunk is derived
 * from workspace_target_floats (at least one image).  Returns 0, or
 * TFQ_EINVAL when the kernel does not fit the padded input. */
int conv_init(conv_layer *l, int cin, int hin, int win, int cout, int k,
              int stride, int pad, size_t workspace_target_floats);

/* Floats of workspace forward and backward need for n images. */
size_t conv_workspace_floats(const conv_layer *l, int n);

/* y = conv(x) + b for n images. */
void conv_forward(const conv_layer *l, const float *x, float *y, int n,
                  float *ws);

/* Accumulates dL/dw and dL/db into l->p.dw, l->p.db and, when dx is not
 * NULL, writes dL/dx.  y is unused (the shared argument order). */
void conv_backward(conv_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws);

void conv_update(conv_layer *l, const sgd_step *s);

/* Direct seven-loop convolution: the reference the fast path is tested
 * against.  Same layouts and contracts as conv_forward / conv_backward. */
void conv_forward_naive(const conv_layer *l, const float *x, float *y, int n);
void conv_backward_naive(conv_layer *l, const float *x, const float *dy,
                         float *dx, int n);

/* Nominal multiply-adds of one image's forward pass. */
double conv_macs(const conv_layer *l);

#endif
