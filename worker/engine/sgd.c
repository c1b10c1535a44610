#include "sgd.h"

#include <string.h>

#include "par.h"

/* Weights under which a chunk is not worth another thread. */
#define SGD_MIN_CHUNK 16384

typedef struct {
    float *w, *v;
    const float *g;
    float lr, mom, decay;
} sgd_job;

static void update_range(void *ctx, long lo, long hi)
{
    const sgd_job *j = ctx;
    float *restrict w = j->w, *restrict v = j->v;
    const float *restrict g = j->g;
    for (long i = lo; i < hi; i++) {
        v[i] = j->mom * v[i] - j->lr * (g[i] + j->decay * w[i]);
        w[i] += v[i];
    }
}

void sgd_update(layer_params *p, const sgd_step *s)
{
    sgd_job w = {p->w, p->vw, p->dw, s->lr, s->momentum, s->weight_decay};
    sgd_job b = {p->b, p->vb, p->db, s->lr * s->bias_lr_mult, s->momentum,
                 s->weight_decay * s->bias_decay_mult};
    par_range(p->nw, SGD_MIN_CHUNK, update_range, &w);
    update_range(&b, 0, p->nb);
}

void sgd_zero_grad(layer_params *p)
{
    memset(p->dw, 0, sizeof(float) * (size_t)p->nw);
    memset(p->db, 0, sizeof(float) * (size_t)p->nb);
}
