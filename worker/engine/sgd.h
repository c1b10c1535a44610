/* Parameters of one learned layer and the SGD update that every learned
 * layer kind shares (Caffe's rule, as in the paper):
 *   v = momentum * v - lr * (g + decay * w);  w = w + v
 * with lr and decay scaled by per-tensor multipliers for the bias. */
#ifndef TFQ_ENGINE_SGD_H
#define TFQ_ENGINE_SGD_H

typedef struct {
    float *w;  /* weights; the layer says their shape */
    float *b;  /* (nb) bias */
    float *dw; /* gradient of the loss, same shape as w */
    float *db; /* (nb) */
    float *vw; /* momentum, same shape as w */
    float *vb; /* (nb) */
    int nw;    /* elements of w */
    int nb;    /* elements of b */
} layer_params;

typedef struct {
    float lr;              /* learning rate of this step */
    float momentum;        /* 0.9 in the paper */
    float weight_decay;    /* 5e-4 in the paper */
    float bias_lr_mult;    /* Caffe's default for biases: 2 */
    float bias_decay_mult; /* Caffe's default for biases: 0 */
} sgd_step;

/* Applies one update to p's weights and bias using p's gradients. */
void sgd_update(layer_params *p, const sgd_step *s);

/* Zeroes p's gradients. */
void sgd_zero_grad(layer_params *p);

#endif
