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

#define NETSPEC_MAX_OPS 64
#define NETSPEC_CLASSES (-1) /* "fc classes": as many outputs as the task has */
#define NETSPEC_TEXT_BYTES 2048

typedef enum {
    NETSPEC_CONV = 0,
    NETSPEC_RELU,
    NETSPEC_MAXPOOL,
    NETSPEC_LRN,
    NETSPEC_FC,
    NETSPEC_DROPOUT,
} netspec_op_kind;

/* One operation as written in a net description. */
typedef struct {
    netspec_op_kind kind;
    int out;          /* conv channels / fc outputs, or NETSPEC_CLASSES */
    int k;            /* conv kernel / pooling window */
    int stride;       /* conv / pool stride */
    int pad;          /* conv zero padding */
    float p;          /* dropout probability */
    int size;         /* lrn window (channels) */
    float alpha, beta, lrn_k; /* lrn constants */
} netspec_op;

typedef struct {
    int nops;
    netspec_op ops[NETSPEC_MAX_OPS];
} netspec;

/* An image or feature map: channels, height, width. */
typedef struct {
    int c, h, w;
} netspec_shape;

/* Parses a net description (operations separated by ';', ',' or newlines).
 * Errors name the operation number and the offending word. */
int netspec_parse(const char *text, netspec *spec, tfq_error *e);

/* The built-in nets: "reference", "wide" and "caffenet" (the paper's
 * CaffeNet, with LRN, re-shaped for 32x32 inputs); channel and fc widths are
 * multiplied by width (> 0). */
int netspec_preset(const char *name, double width, netspec *spec,
                    tfq_error *e);

/* A preset name, or else a description to parse. */
int netspec_resolve(const char *name_or_text, double width, netspec *spec,
                     tfq_error *e);

/* The canonical text of spec (parses back to the same spec).  Returns 0 or
 * TFQ_ERANGE when buf is too small. */
int netspec_format(const netspec *spec, char *buf, size_t bytes);

/* Number of learned (conv + fc) layers. */
int netspec_learned_layers(const netspec *spec);

/* The operation's word in a description ("conv", "relu", ...). */
const char *netspec_op_name(netspec_op_kind k);

/* Whether operations of kind k have learned parameters (conv and fc). */
int netspec_op_is_learned(netspec_op_kind k);

#endif
