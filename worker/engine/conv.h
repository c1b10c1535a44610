/* 2-D convolution on activations stored channel-major for the whole batch:
 * x (cin, n, hin, win), y (cout, n, hout, wout).  Each pass (forward, input
 * gradient, weight gradient) runs one of two algorithms (conv_algo), which
 * conv_tune picks per layer:
 *
 *   im2col + GEMM (OpenBLAS sgemm), for any geometry.  In this layout the
 *   GEMM output of a chunk of images is a column block of y, so no
 *   transposes are needed.  The im2col workspace holds `chunk` images at a
 *   time, which keeps it inside the cache and its size independent of the
 *   batch; with stride 1 and "same" padding each tap's patch rows are one
 *   shifted copy of the input planes.
 *
 *   direct: the register-blocked loops of the kernel set in use (kern.h),
 *   for stride 1, "same" padding and output channels in whole vectors.  The
 *   weights are rearranged so output channels are contiguous; the input
 *   gradient runs as the forward pass of the transposed geometry (channels
 *   swapped, kernel rotated 180 degrees); the weight gradient reads dy
 *   transposed to (n, h*w, cout), the images cut into slices when a layer
 *   has too few tasks for the threads.
 *
 * A ReLU after the layer (relu_after) and the backward of one below it
 * (dx_mask) are folded into its passes.  conv_forward_naive and
 * conv_backward_naive, plain loops, are the reference both algorithms are
 * tested against. */
#ifndef TFQ_ENGINE_CONV_H
#define TFQ_ENGINE_CONV_H

#include <stddef.h>

#include "kern.h"
#include "sgd.h"

/* How one pass (forward, input gradient, weight gradient) is computed. */
typedef enum {
    CONV_GEMM = 0,   /* im2col + OpenBLAS sgemm: any geometry */
    CONV_DIRECT = 1, /* the kernel set's direct loops: stride 1, same
                        padding, channels in whole vectors */
} conv_algo;

typedef struct conv_layer_s {
    int cin, cout, k, stride, pad;
    int hin, win, hout, wout;
    int chunk;      /* images per im2col block */
    layer_params p; /* w: (cout, cin, k, k), b: (cout) */
    int relu_after; /* the forward pass also applies a ReLU to its output
                       (the net's next operation, which then need not) */
    const kern_set *ks; /* the kernel set of the direct passes */
    int threads;        /* the workspace has room for this many threads */
    conv_algo fwd, dx, dw; /* per pass */
    const float *dx_mask; /* when not NULL, (cin, n, hin, win): the input
                             gradient is zeroed where it is not above 0 (the
                             backward pass of the ReLU below, folded in) */
} conv_layer;

/* Fills the geometry of l (not its parameter pointers); chunk is derived
 * from workspace_target_floats (at least one image).  The kernel set is
 * kern_active(), the threads par_threads(), and every pass the direct
 * path runs is direct, the others im2col + sgemm.  Returns 0, or
 * TFQ_EINVAL when the kernel does not fit the padded input. */
int conv_init(conv_layer *l, int cin, int hin, int win, int cout, int k,
              int stride, int pad, size_t workspace_target_floats);

/* Whether the direct path of l's kernel set can run pass (0 forward, 1
 * input gradient, 2 weight gradient). */
int conv_direct_ok(const conv_layer *l, int pass);

/* Chooses each pass's algorithm for n-image batches: with TFQ_CONV_ALGO
 * =direct (or gemm) the direct path wherever it runs (or nowhere); unset
 * or "auto", by timing both on a few images, once per geometry, kernel set
 * and thread count in this process (cuDNN's benchmark mode), im2col +
 * sgemm only where it is clearly faster.  Returns 0 or TFQ_ENOMEM. */
int conv_tune(conv_layer *l, int n);

/* Checks TFQ_CONV_ALGO (unset, auto, direct or gemm).  Returns 0, or
 * TFQ_EINVAL with e naming the value. */
int conv_check_env(tfq_error *e);

/* One line for logs: each pass's algorithm and block (the input gradient
 * as not needed unless needs_dx). */
void conv_describe(const conv_layer *l, int needs_dx, char *buf,
                   size_t bytes);

/* Floats of workspace forward and backward need for n images with the
 * algorithms chosen. */
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
