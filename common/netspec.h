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
 * This module is the description only: its text, parsing and canonical
 * form, shared by everything that handles a job (the coordinator checks and
 * stores it, the worker builds it with worker/engine/net.h). */
#ifndef TFQ_COMMON_NETSPEC_H
#define TFQ_COMMON_NETSPEC_H

#include <stddef.h>

#include "err.h"

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

/* An image or feature map: channels, height, width. */
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

/* The operation's word in a description ("conv", "relu", ...). */
const char *netspec_op_name(op_kind k);

/* Whether operations of kind k have learned parameters (conv and fc). */
int netspec_op_is_learned(op_kind k);

#endif
