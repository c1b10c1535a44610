/* Local response normalisation across channels (Krizhevsky et al., as in
 * Caffe): scale_c = k + alpha / size * sum over the `size` channels centred
 * on c of x^2, and y_c = x_c * scale_c^-beta.  x, y: (c, n, h, w). */
#ifndef TFQ_ENGINE_LRN_H
#define TFQ_ENGINE_LRN_H

typedef struct {
    int c;        /* channels */
    long hw;      /* h * w */
    int size;     /* odd window of channels, 5 in CaffeNet */
    float alpha;  /* 1e-4 */
    float beta;   /* 0.75 */
    float k;      /* 1 */
    float *scale; /* (c, n, h, w) kept for the backward pass */
} lrn_layer;

/* Floats of workspace the backward pass needs for n images. */
long lrn_workspace_floats(const lrn_layer *l, int n);

void lrn_forward(lrn_layer *l, const float *x, float *y, int n, float *ws);
void lrn_backward(lrn_layer *l, const float *x, const float *y,
                  const float *dy, float *dx, int n, float *ws);

#endif
