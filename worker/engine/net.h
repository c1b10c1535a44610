/* Nets built from their descriptions (common/netspec.h): the operations'
 * layers, with learned layers numbered 1.. as the description numbers them.
 *
 * A built net owns one arena holding parameters, gradients, momentum,
 * activations for up to batch_max images and one workspace shared by all
 * layers; nothing is allocated while training. */
#ifndef TFQ_ENGINE_NET_H
#define TFQ_ENGINE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/netspec.h"
#include "common/settings.h"
#include "conv.h"
#include "dropout.h"
#include "fc.h"
#include "lrn.h"
#include "pool.h"
#include "relu.h"

typedef struct {
    netspec_op_kind kind;
    int group;      /* the learned layer (1-based) this operation belongs to */
    int in_place;   /* y and dy alias the previous operation's buffers */
    int fused_backward; /* the next operation's backward pass does this
                           one's (a ReLU under a max pool or a conv) */
    int fused_forward;  /* the previous operation's forward pass does this
                           one's (a ReLU after a conv) */
    netspec_shape in_shape, out_shape;
    long in_size, out_size; /* floats per image */
    union {
        conv_layer conv;
        fc_layer fc;
        pool_layer pool;
        relu_layer relu;
        lrn_layer lrn;
        dropout_layer drop;
    } u;
    float *y;  /* (out_size * n) activations, layout of the kind */
    float *dy; /* gradient of the loss with respect to y */
    long backward_calls; /* counts backward passes; tests read it */
} net_op;

typedef struct {
    netspec spec;
    netspec_shape in;      /* one input image */
    int classes;
    int batch_max;
    int tune;          /* conv algorithms chosen by timing (net_new) */
    int nops;
    net_op ops[NETSPEC_MAX_OPS];
    int nlearned;
    int learned_op[NETSPEC_MAX_OPS]; /* op index of learned layer g at [g-1] */
    int frozen;        /* learned layers 1..frozen receive no update and no
                          backward pass */
    long nparams;      /* floats in each of params, grads, moments */
    float *params;     /* every layer's w then b, layer after layer */
    float *grads;      /* same layout */
    float *moments;    /* same layout */
    float *ws;         /* shared workspace */
    long ws_floats;
    void *arena;
    size_t arena_bytes;
    /* what the last forward pass ran, for the backward pass */
    const float *fwd_input;
    int fwd_from, fwd_n;
} net;

/* Builds a net for inputs of shape in with `classes` outputs and activations
 * for up to batch_max images.  Parameters are zero until net_init_layers.
 * Fails with a message naming the operation whose shapes do not fit. */
net *net_new(const netspec *spec, netspec_shape in, int classes, int batch_max,
             tfq_error *e);
void net_destroy(net **m);

/* What net_new would refuse, without building anything: shapes that do
 * not fit, a layer past the size the layer code counts, or an arena over
 * the budget (TFQ_NET_MAX_MB, default 8 GiB).  Cheap: for checking a job
 * where it is submitted.  Returns 0 or TFQ_EINVAL naming the operation. */
int net_check(const netspec *spec, netspec_shape in, int classes, int batch_max,
              tfq_error *e);

/* net_check that also gives the net's learned parameters (weights and
 * biases, in floats). */
int net_check_params(const netspec *spec, netspec_shape in, int classes,
                     int batch_max, int64_t *nparams, tfq_error *e);

/* Initialises learned layers first..last (1-based, inclusive) from seed,
 * as kind says (common/settings.h), and zeroes their momentum:
 *  - WEIGHT_INIT_HE: weights ~ N(0, 2 / fan_in) (He et al. 2015, for ReLU
 *    nets) except the classifier's, ~ N(0, 0.01^2) as in CaffeNet; biases 0;
 *  - WEIGHT_INIT_CAFFE: CaffeNet's Gaussians and constant biases, the k-th
 *    conv as conv k (conv5 past 5), an fc as fc6/fc7 and the last learned
 *    layer as fc8: conv N(0, 0.01^2) with biases 0, 1, 0, 1, 1 for conv1..5;
 *    fc6/fc7 N(0, 0.005^2), bias 1; fc8 N(0, 0.01^2), bias 0;
 *  - WEIGHT_INIT_TORCH: PyTorch's default for Conv2d and Linear
 *    (kaiming_uniform_(a = sqrt(5)) and its bias rule): weights and biases
 *    ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 * fan_in is a conv's cin*k*k, an fc's inputs.  Each layer draws from its
 * own streams (weights, biases), so re-initialising layer 6 gives the same
 * values whatever happened to layers 1-5; he and caffe weights share a
 * stream (the same normals, scaled). */
void net_init_layers_as(net *m, int first, int last, uint64_t seed,
                        weight_init kind);

/* net_init_layers_as with WEIGHT_INIT_HE. */
void net_init_layers(net *m, int first, int last, uint64_t seed);

/* The parameters of learned layer g (1-based). */
layer_params *net_layer_params(net *m, int g);

/* Shape of learned layer g's weight tensor: dims[0..*ndims). */
void net_layer_shape(const net *m, int g, int dims[4], int *ndims);

/* Index of the first operation that does not belong to layers 1..n, i.e.
 * where training starts when the first n layers are frozen. */
int net_first_op_above(const net *m, int n);

/* Runs operations [from, to] on x (the input of operation from, in its
 * layout) for n <= batch_max images and returns operation to's output.
 * training selects dropout; step_key seeds its masks. */
const float *net_forward_range(net *m, const float *x, int n, int from,
                               int to, int training, uint64_t step_key);

/* net_forward_range through the last operation: the logits (classes, n). */
const float *net_forward(net *m, const float *x, int n, int from,
                         int training, uint64_t step_key);

/* The buffer the loss writes dL/dlogits into, (classes, n). */
float *net_output_grad(net *m);

/* Zeroes the gradients of the trainable layers. */
void net_zero_grad(net *m);

/* Backward pass of the last net_forward, from the output down to the first
 * trainable layer; nothing below it runs, and that layer computes no input
 * gradient. */
void net_backward(net *m);

/* SGD step on every layer above m->frozen. */
void net_update(net *m, const sgd_step *s);

/* The kernel set and threads, then one line per conv layer naming the
 * algorithm and register block of each pass, for logs. */
void net_describe_kernels(const net *m, char *buf, size_t bytes);

/* Nominal multiply-adds of one image's forward pass. */
double net_macs(const net *m);

/* Whether operations [0, to] are the same function in training and test
 * (no dropout among them). */
int net_is_deterministic(const net *m, int to);

#endif
