/* Networks as data: a net is a list of operations (conv, relu, maxpool, lrn,
 * fc, dropout) written as text, e.g.
 *
 *   conv 16 5 pad=2; relu; maxpool 2; ...; fc 128; relu; dropout 0.5; fc classes
 *
 * Conv and fc operations are the *learned layers*, numbered 1.. in order as in
 * the paper; every other operation belongs to the learned layer before it
 * (relu1 and pool1 are part of layer 1).  Transfer operations work on those
 * numbers: copy the first n layers, freeze the first n layers.
 *
 * A built net owns one arena holding parameters, gradients, momentum,
 * activations for up to batch_max images and one workspace shared by all
 * layers; nothing is allocated while training. */
#ifndef TFQ_WORKER_NET_H
#define TFQ_WORKER_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../common/err.h"
#include "conv.h"
#include "dropout.h"
#include "fc.h"
#include "lrn.h"
#include "pool.h"
#include "relu.h"

#define NET_MAX_OPS 64
#define NET_CLASSES (-1) /* "fc classes": as many outputs as the task has */
#define NET_SPEC_TEXT_BYTES 2048

typedef enum {
    OP_CONV = 0,
    OP_RELU,
    OP_MAXPOOL,
    OP_LRN,
    OP_FC,
    OP_DROPOUT,
} op_kind;

/* One operation as written in a net description. */
typedef struct {
    op_kind kind;
    int out;          /* conv channels / fc outputs, or NET_CLASSES */
    int k;            /* conv kernel / pooling window */
    int stride;       /* conv / pool stride */
    int pad;          /* conv zero padding */
    float p;          /* dropout probability */
    int size;         /* lrn window (channels) */
    float alpha, beta, lrn_k; /* lrn constants */
} op_spec;

typedef struct {
    int nops;
    op_spec ops[NET_MAX_OPS];
} net_spec;

typedef struct {
    int c, h, w;
} net_shape;

/* Parses a net description (operations separated by ';', ',' or newlines).
 * Errors name the operation number and the offending word. */
int net_spec_parse(const char *text, net_spec *spec, tfq_error *e);

/* The built-in nets: "reference", "wide" and "caffenet" (the paper's
 * CaffeNet, with LRN, re-shaped for 32x32 inputs); channel and fc widths are
 * multiplied by width (> 0). */
int net_spec_preset(const char *name, double width, net_spec *spec,
                    tfq_error *e);

/* A preset name, or else a description to parse. */
int net_spec_resolve(const char *name_or_text, double width, net_spec *spec,
                     tfq_error *e);

/* The canonical text of spec (parses back to the same spec).  Returns 0 or
 * TFQ_ERANGE when buf is too small. */
int net_spec_format(const net_spec *spec, char *buf, size_t bytes);

/* Number of learned (conv + fc) layers. */
int net_spec_learned_layers(const net_spec *spec);

typedef struct {
    op_kind kind;
    int group;      /* the learned layer (1-based) this operation belongs to */
    int in_place;   /* y and dy alias the previous operation's buffers */
    int fused_backward; /* the next operation's backward pass does this
                           one's (a ReLU under a max pool or a conv) */
    int fused_forward;  /* the previous operation's forward pass does this
                           one's (a ReLU after a conv) */
    net_shape in_shape, out_shape;
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
    net_spec spec;
    net_shape in;      /* one input image */
    int classes;
    int batch_max;
    int tune;          /* conv algorithms chosen by timing (net_new) */
    int nops;
    net_op ops[NET_MAX_OPS];
    int nlearned;
    int learned_op[NET_MAX_OPS]; /* op index of learned layer g at [g-1] */
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
net *net_new(const net_spec *spec, net_shape in, int classes, int batch_max,
             tfq_error *e);
void net_destroy(net **m);

/* What net_new would refuse, without building anything: shapes that do
 * not fit, a layer past the size the layer code counts, or an arena over
 * the budget (TFQ_NET_MAX_MB, default 8 GiB).  Cheap: for checking a job
 * where it is submitted.  Returns 0 or TFQ_EINVAL naming the operation. */
int net_check(const net_spec *spec, net_shape in, int classes, int batch_max,
              tfq_error *e);

/* net_check that also gives the net's learned parameters (weights and
 * biases, in floats). */
int net_check_params(const net_spec *spec, net_shape in, int classes,
                     int batch_max, int64_t *nparams, tfq_error *e);

/* Initialises learned layers first..last (1-based, inclusive) from seed:
 * weights ~ N(0, 2 / fan_in) (He et al. 2015, for ReLU nets) except the
 * classifier's, ~ N(0, 0.01^2) as in CaffeNet; biases 0, momentum 0.  Each layer draws from its own stream, so re-initialising
 * layer 6 gives the same weights whatever happened to layers 1-5. */
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
