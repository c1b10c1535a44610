#include "sgd.h"

#include <string.h>

static void update_tensor(float *restrict w, const float *restrict g,
                          float *restrict v, int n, float lr, float mom,
                          float decay)
{
    for (int i = 0; i < n; i++) {
        v[i] = mom * v[i] - lr * (g[i] + decay * w[i]);
        w[i] += v[i];
    }
}

void sgd_update(layer_params *p, const sgd_step *s)
{
    update_tensor(p->w, p->dw, p->vw, p->nw, s->lr, s->momentum,
                  s->weight_decay);
    update_tensor(p->b, p->db, p->vb, p->nb, s->lr * s->bias_lr_mult,
                  s->momentum, s->weight_decay * s->bias_decay_mult);
}

void sgd_zero_grad(layer_params *p)
{
    memset(p->dw, 0, sizeof(float) * (size_t)p->nw);
    memset(p->db, 0, sizeof(float) * (size_t)p->nb);
}
