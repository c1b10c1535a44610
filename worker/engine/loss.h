/* Softmax cross-entropy on feature-major logits (classes, n). */
#ifndef TFQ_ENGINE_LOSS_H
#define TFQ_ENGINE_LOSS_H

/* Returns the mean loss over the n images; writes dL/dlogits (classes, n)
 * into dlogits when not NULL, and adds the number of images whose largest
 * logit is their label to *correct when not NULL. */
double loss_softmax_xent(const float *logits, const int *labels, int classes,
                         int n, float *dlogits, int *correct);

/* Adds to *correct the images whose largest logit is their label. */
void loss_count_correct(const float *logits, const int *labels, int classes,
                        int n, int *correct);

#endif
