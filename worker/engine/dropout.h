/* Inverted dropout: while training, each element is kept with probability
 * 1 - p and scaled by 1 / (1 - p); at test time it is the identity.  The mask
 * is a pure function of `key` (set per step by the net), so the backward
 * pass regenerates it instead of storing it.  May run in place. */
#ifndef TFQ_ENGINE_DROPOUT_H
#define TFQ_ENGINE_DROPOUT_H

#include <stdint.h>

typedef struct {
    long size;    /* elements per image */
    float p;      /* drop probability, 0 <= p < 1 */
    int training; /* 0: identity */
    uint64_t key; /* random stream of this step */
    const uint8_t *fixed_mask; /* if not NULL: (size * n) keep flags to use
                                  instead of random ones (gradient checks) */
} dropout_layer;

void dropout_forward(dropout_layer *l, const float *x, float *y, int n,
                     float *ws);
void dropout_backward(dropout_layer *l, const float *x, const float *y,
                      const float *dy, float *dx, int n, float *ws);

#endif
