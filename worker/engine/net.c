#include "net.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "par.h"

/* Target size of one convolution's im2col block.  Blocks that stay inside the
 * 1-2 MiB L2 caches of current x86 cores keep sgemm near its peak; measured
 * on the reference net, 512 Ki floats (2 MiB) was fastest of 256 Ki-2 Mi. */
#define NET_IM2COL_TARGET_FLOATS (768L * 1024)

/* Standard deviation of the classifier's initial weights (CaffeNet's fc8). */
#define NET_CLASSIFIER_INIT_STD 0.01

/* The largest layer: weights of one learned layer, and floats of one
 * image's output of any operation.  Layer code counts them in int; a net
 * described past this is refused when it is built, with its operation
 * named, instead of overflowing. */
#define NET_MAX_LAYER_ELEMS (1L << 28)

/* The budget for a net's arena (parameters, gradients, momentum,
 * activations for a whole batch, workspace) unless TFQ_NET_MAX_MB says
 * otherwise: more than any preset needs by two orders of magnitude, and
 * less than a worker machine has. */
#define NET_DEFAULT_MAX_MB 8192L

/* Arena buffers are aligned for the widest vector loads. */
#define NET_ALIGN_BYTES 64

/* ---- building ----------------------------------------------------------- */

static size_t align_up(size_t v)
{
    return (v + NET_ALIGN_BYTES - 1) & ~(size_t)(NET_ALIGN_BYTES - 1);
}

/* Sets up op i's geometry from its spec and input shape. */
static int build_op(net *m, int i, netspec_shape in, tfq_error *e)
{
    const netspec_op *s = &m->spec.ops[i];
    net_op *op = &m->ops[i];
    memset(op, 0, sizeof *op);
    op->kind = s->kind;
    op->in_shape = in;
    op->in_size = (long)in.c * in.h * in.w;
    op->out_shape = in;
    if (s->kind == NETSPEC_CONV || s->kind == NETSPEC_FC) {
        /* Sizes from the description, in 64 bits, before anything that
         * counts them in int. */
        long outs = s->out == NETSPEC_CLASSES ? m->classes : s->out;
        long weights = s->kind == NETSPEC_FC
                           ? outs * op->in_size
                           : outs * in.c * (long)s->k * s->k;
        long per_image = s->kind == NETSPEC_FC ? outs : outs * in.h * (long)in.w;
        if (weights > NET_MAX_LAYER_ELEMS || per_image > NET_MAX_LAYER_ELEMS)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "net operation %d (%s %ld): %ld weights and "
                                 "%ld outputs per image on its %dx%dx%d "
                                 "input; a layer may have at most %ld of "
                                 "each", i + 1, netspec_op_name(s->kind), outs,
                                 weights, per_image, in.c, in.h, in.w,
                                 NET_MAX_LAYER_ELEMS);
    }
    int rc = 0;
    switch (s->kind) {
    case NETSPEC_CONV:
        rc = conv_init(&op->u.conv, in.c, in.h, in.w, s->out, s->k, s->stride,
                       s->pad, NET_IM2COL_TARGET_FLOATS);
        if (rc == 0 && m->tune && conv_tune(&op->u.conv, m->batch_max) != 0)
            return tfq_error_set(e, TFQ_ENOMEM, "net operation %d (conv): "
                                 "out of memory choosing its kernels", i + 1);
        op->out_shape = (netspec_shape){s->out, op->u.conv.hout, op->u.conv.wout};
        break;
    case NETSPEC_MAXPOOL:
        rc = pool_init(&op->u.pool, in.c, in.h, in.w, s->k, s->stride);
        if (rc == 0 && i > 0 && m->ops[i - 1].kind == NETSPEC_RELU &&
            m->ops[i - 1].in_place) {
            /* max and ReLU commute, so the pool can pass the ReLU's
             * gradient too and save a pass over the larger map. */
            op->u.pool.relu_below = 1;
            m->ops[i - 1].fused_backward = 1;
        }
        op->out_shape = (netspec_shape){in.c, op->u.pool.hout, op->u.pool.wout};
        break;
    case NETSPEC_FC: {
        int out = s->out == NETSPEC_CLASSES ? m->classes : s->out;
        fc_init(&op->u.fc, in.c, in.h * in.w, out);
        op->out_shape = (netspec_shape){out, 1, 1};
        break;
    }
    case NETSPEC_RELU:
        op->u.relu.size = op->in_size;
        op->in_place = i > 0;
        if (i > 0 && m->ops[i - 1].kind == NETSPEC_CONV)
            op->fused_forward = 1;
        break;
    case NETSPEC_DROPOUT:
        op->u.drop.size = op->in_size;
        op->u.drop.p = s->p;
        op->in_place = i > 0;
        break;
    case NETSPEC_LRN:
        op->u.lrn = (lrn_layer){.c = in.c, .hw = (long)in.h * in.w,
                                .size = s->size, .alpha = s->alpha,
                                .beta = s->beta, .k = s->lrn_k};
        break;
    }
    if (rc != 0)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net operation %d (%s): window %d does not fit "
                             "its %dx%d input", i + 1, netspec_op_name(s->kind),
                             s->k, in.h, in.w);
    op->out_size = (long)op->out_shape.c * op->out_shape.h * op->out_shape.w;
    return 0;
}

static layer_params *params_of(net_op *op)
{
    if (op->kind == NETSPEC_CONV)
        return &op->u.conv.p;
    if (op->kind == NETSPEC_FC)
        return &op->u.fc.p;
    return NULL;
}

/* Walks the arena layout; with base == NULL it only measures. */
static size_t lay_out(net *m, char *base)
{
    size_t off = 0;
    unsigned nbuf = 0;
    /* Buffers of equal power-of-two-ish sizes would start at the same offset
     * modulo 4 KiB, so a loop reading one and writing the other stalls on
     * false store-to-load dependencies (4K aliasing).  Skewing each start by
     * a different number of cache lines avoids that. */
#define TAKE(ptr, type, count)                                         \
    do {                                                               \
        if (base)                                                      \
            (ptr) = (type *)(void *)(base + off);                      \
        off = align_up(off + sizeof(type) * (size_t)(count)) +         \
              NET_ALIGN_BYTES * (1 + (nbuf++ % 13) * 5);               \
    } while (0)
    float *params = NULL, *grads = NULL, *moments = NULL;
    TAKE(params, float, m->nparams);
    TAKE(grads, float, m->nparams);
    TAKE(moments, float, m->nparams);
    TAKE(m->ws, float, m->ws_floats);
    if (base) {
        m->params = params;
        m->grads = grads;
        m->moments = moments;
    }
    long poff = 0;
    for (int i = 0; i < m->nops; i++) {
        net_op *op = &m->ops[i];
        layer_params *p = params_of(op);
        if (p != NULL && base) {
            p->w = params + poff;
            p->dw = grads + poff;
            p->vw = moments + poff;
            p->b = params + poff + p->nw;
            p->db = grads + poff + p->nw;
            p->vb = moments + poff + p->nw;
        }
        if (p != NULL)
            poff += p->nw + p->nb;
        long acts = op->out_size * m->batch_max;
        if (op->in_place) {
            if (base) {
                op->y = m->ops[i - 1].y;
                op->dy = m->ops[i - 1].dy;
            }
        } else {
            TAKE(op->y, float, acts);
            TAKE(op->dy, float, acts);
        }
        if (op->kind == NETSPEC_MAXPOOL && !POOL_IS_2X2(&op->u.pool))
            TAKE(op->u.pool.arg, int32_t, acts);
        if (op->kind == NETSPEC_LRN)
            TAKE(op->u.lrn.scale, float, acts);
    }
#undef TAKE
    return off;
}

/* Everything of net_new but the arena: the operations' shapes and sizes,
 * checked, and the arena's size against the budget.  With tune, each conv
 * layer's algorithms are chosen by timing (conv_tune); without, they are
 * conv_init's.  Returns 0, or an error naming the operation. */
static int plan(net *m, const netspec *spec, netspec_shape in, int classes,
                int batch_max, int tune, tfq_error *e)
{
    if (classes < 2 || batch_max < 1 || in.c < 1 || in.h < 1 || in.w < 1)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net: bad input %dx%dx%d, %d classes or batch %d",
                             in.c, in.h, in.w, classes, batch_max);
    m->spec = *spec;
    m->in = in;
    m->classes = classes;
    m->batch_max = batch_max;
    m->nops = spec->nops;
    m->tune = tune;
    netspec_shape shape = in;
    int group = 0;
    for (int i = 0; i < m->nops; i++) {
        if (spec->ops[i].kind == NETSPEC_CONV && shape.h * shape.w == 1 &&
            i > 0 && m->ops[i - 1].kind == NETSPEC_FC)
            return tfq_error_set(e, TFQ_EINVAL,
                                 "net operation %d: conv after fc", i + 1);
        int rc = build_op(m, i, shape, e);
        if (rc != 0)
            return rc;
        if (netspec_op_is_learned(m->ops[i].kind)) {
            m->learned_op[group++] = i;
            layer_params *p = params_of(&m->ops[i]);
            m->nparams += p->nw + p->nb;
        }
        m->ops[i].group = group;
        shape = m->ops[i].out_shape;
        long need = 0;
        const net_op *op = &m->ops[i];
        if (op->kind == NETSPEC_CONV)
            need = (long)conv_workspace_floats(&op->u.conv, batch_max);
        else if (op->kind == NETSPEC_FC)
            need = fc_workspace_floats(&op->u.fc, batch_max);
        else if (op->kind == NETSPEC_LRN)
            need = lrn_workspace_floats(&op->u.lrn, batch_max);
        if (need > m->ws_floats)
            m->ws_floats = need;
    }
    m->nlearned = group;
    m->arena_bytes = lay_out(m, NULL);
    const char *cap = getenv("TFQ_NET_MAX_MB");
    long max_mb = cap != NULL && atol(cap) > 0 ? atol(cap) : NET_DEFAULT_MAX_MB;
    if (m->arena_bytes > (size_t)max_mb << 20)
        return tfq_error_set(e, TFQ_EINVAL,
                             "net: needs %.1f MiB for batch %d (parameters, "
                             "gradients, momentum, activations and "
                             "workspace), over the budget of %ld MiB "
                             "(TFQ_NET_MAX_MB)",
                             (double)m->arena_bytes / (1 << 20), batch_max,
                             max_mb);
    return 0;
}

int net_check(const netspec *spec, netspec_shape in, int classes, int batch_max,
              tfq_error *e)
{
    int64_t nparams;
    return net_check_params(spec, in, classes, batch_max, &nparams, e);
}

int net_check_params(const netspec *spec, netspec_shape in, int classes,
                     int batch_max, int64_t *nparams, tfq_error *e)
{
    *nparams = 0;
    net *m = calloc(1, sizeof *m);
    if (m == NULL)
        return tfq_error_set(e, TFQ_ENOMEM, "net: out of memory");
    int rc = plan(m, spec, in, classes, batch_max, 0, e);
    if (rc == 0)
        *nparams = m->nparams;
    free(m);
    return rc;
}

net *net_new(const netspec *spec, netspec_shape in, int classes, int batch_max,
             tfq_error *e)
{
    net *m = calloc(1, sizeof *m);
    if (m == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "net: out of memory");
        return NULL;
    }
    if (plan(m, spec, in, classes, batch_max, 1, e) != 0)
        goto fail;
    m->arena = aligned_alloc(NET_ALIGN_BYTES, m->arena_bytes);
    if (m->arena == NULL) {
        tfq_error_set(e, TFQ_ENOMEM, "net: cannot allocate %zu bytes",
                      m->arena_bytes);
        goto fail;
    }
    lay_out(m, m->arena);
    memset(m->params, 0, sizeof(float) * (size_t)m->nparams * 3);
    /* A conv above an in-place ReLU zeroes its input gradient where the
     * ReLU's output is 0, which is that ReLU's whole backward pass. */
    for (int i = 2; i < m->nops; i++) {
        net_op *r = &m->ops[i - 1];
        if (m->ops[i].kind == NETSPEC_CONV && r->kind == NETSPEC_RELU && r->in_place &&
            !r->fused_backward) {
            m->ops[i].u.conv.dx_mask = r->y;
            r->fused_backward = 1;
        }
    }
    return m;
fail:
    free(m);
    return NULL;
}

void net_destroy(net **m)
{
    if (m == NULL || *m == NULL)
        return;
    free((*m)->arena);
    free(*m);
    *m = NULL;
}

layer_params *net_layer_params(net *m, int g)
{
    return params_of(&m->ops[m->learned_op[g - 1]]);
}

void net_layer_shape(const net *m, int g, int dims[4], int *ndims)
{
    const net_op *op = &m->ops[m->learned_op[g - 1]];
    if (op->kind == NETSPEC_CONV) {
        const conv_layer *c = &op->u.conv;
        dims[0] = c->cout;
        dims[1] = c->cin;
        dims[2] = c->k;
        dims[3] = c->k;
        *ndims = 4;
    } else {
        dims[0] = op->u.fc.out;
        dims[1] = op->u.fc.in;
        *ndims = 2;
    }
}

/* How learned layer g of m starts under CaffeNet's prototxt
 * (models/bvlc_reference_caffenet/train_val.prototxt of 2014, BVLC/caffe
 * commit 74bf4b72): the layers are matched by position, the k-th conv of
 * the net to conv k (conv5 for k > 5), every fc but the classifier to
 * fc6/fc7 (they start alike) and the last learned layer, the classifier,
 * to fc8. */
static void caffe_layer(const net *m, int g, double *sd, float *bias)
{
    static const float conv_bias[5] = {0, 1, 0, 1, 1}; /* conv1..conv5 */
    if (g == m->nlearned) {              /* fc8 */
        *sd = 0.01;
        *bias = 0;
        return;
    }
    int convs = 0;
    for (int h = 1; h <= g; h++)
        convs += m->ops[m->learned_op[h - 1]].kind == NETSPEC_CONV;
    if (m->ops[m->learned_op[g - 1]].kind == NETSPEC_CONV) {
        *sd = 0.01;
        *bias = conv_bias[convs < 5 ? convs - 1 : 4];
    } else {                             /* fc6, fc7 */
        *sd = 0.005;
        *bias = 1;
    }
}

/* Uniform in [-bound, bound), 53 bits of the stream's i-th draw. */
static float uniform_sym(uint64_t key, uint64_t i, double bound)
{
    double u = (double)(rng_u64(key, i) >> 11) * 0x1.0p-53;
    return (float)(bound * (2.0 * u - 1.0));
}

void net_init_layers_as(net *m, int first, int last, uint64_t seed,
                        weight_init kind)
{
    for (int g = first; g <= last && g <= m->nlearned; g++) {
        if (g < 1)
            continue;
        layer_params *p = net_layer_params(m, g);
        int fan_in = p->nw / p->nb;
        /* The He classifier starts near zero, as Caffe's CaffeNet does, so
         * the first predictions are near uniform; measured on Fashion-MNIST
         * it adds about 0.6 points after 10 epochs over He for this
         * layer. */
        double sd = g == m->nlearned ? NET_CLASSIFIER_INIT_STD
                                     : sqrt(2.0 / fan_in);
        float bias = 0;
        uint64_t key = rng_key(seed, 0x696e6974 /* "init" */, (uint64_t)g);
        uint64_t bkey = rng_key(seed, 0x62696173 /* "bias" */, (uint64_t)g);
        double bound = 1.0 / sqrt((double)fan_in);
        if (kind == WEIGHT_INIT_CAFFE)
            caffe_layer(m, g, &sd, &bias);
        for (int i = 0; i < p->nw; i++)
            p->w[i] = kind == WEIGHT_INIT_TORCH
                              ? uniform_sym(key, (uint64_t)i, bound)
                              : (float)(sd * rng_normal(key, (uint64_t)i));
        for (int i = 0; i < p->nb; i++)
            p->b[i] = kind == WEIGHT_INIT_TORCH
                              ? uniform_sym(bkey, (uint64_t)i, bound)
                              : bias;
        memset(p->vw, 0, sizeof(float) * (size_t)p->nw);
        memset(p->vb, 0, sizeof(float) * (size_t)p->nb);
    }
}

void net_init_layers(net *m, int first, int last, uint64_t seed)
{
    net_init_layers_as(m, first, last, seed, WEIGHT_INIT_HE);
}

int net_first_op_above(const net *m, int n)
{
    if (n <= 0)
        return 0;
    if (n >= m->nlearned)
        return m->nops;
    return m->learned_op[n];
}

int net_is_deterministic(const net *m, int to)
{
    for (int i = 0; i <= to && i < m->nops; i++)
        if (m->ops[i].kind == NETSPEC_DROPOUT && m->ops[i].u.drop.p > 0.0f)
            return 0;
    return 1;
}

/* ---- running ------------------------------------------------------------ */

static void op_forward(net *m, net_op *op, const float *x, int n)
{
    switch (op->kind) {
    case NETSPEC_CONV:
        conv_forward(&op->u.conv, x, op->y, n, m->ws);
        break;
    case NETSPEC_FC:
        fc_forward(&op->u.fc, x, op->y, n, m->ws);
        break;
    case NETSPEC_MAXPOOL:
        pool_forward(&op->u.pool, x, op->y, n, m->ws);
        break;
    case NETSPEC_RELU:
        relu_forward(&op->u.relu, x, op->y, n, m->ws);
        break;
    case NETSPEC_LRN:
        lrn_forward(&op->u.lrn, x, op->y, n, m->ws);
        break;
    case NETSPEC_DROPOUT:
        dropout_forward(&op->u.drop, x, op->y, n, m->ws);
        break;
    }
}

static void op_backward(net *m, net_op *op, const float *x, float *dx, int n)
{
    op->backward_calls++;
    switch (op->kind) {
    case NETSPEC_CONV:
        conv_backward(&op->u.conv, x, op->y, op->dy, dx, n, m->ws);
        break;
    case NETSPEC_FC:
        fc_backward(&op->u.fc, x, op->y, op->dy, dx, n, m->ws);
        break;
    case NETSPEC_MAXPOOL:
        pool_backward(&op->u.pool, x, op->y, op->dy, dx, n, m->ws);
        break;
    case NETSPEC_RELU:
        relu_backward(&op->u.relu, x, op->y, op->dy, dx, n, m->ws);
        break;
    case NETSPEC_LRN:
        lrn_backward(&op->u.lrn, x, op->y, op->dy, dx, n, m->ws);
        break;
    case NETSPEC_DROPOUT:
        dropout_backward(&op->u.drop, x, op->y, op->dy, dx, n, m->ws);
        break;
    }
}

const float *net_forward_range(net *m, const float *x, int n, int from,
                               int to, int training, uint64_t step_key)
{
    if (from < m->nops && m->ops[from].in_place) {
        /* An in-place operation would overwrite the caller's input (a
         * cached activation): give it its own copy. */
        float *buf = m->ops[from - 1].y;
        memcpy(buf, x, sizeof(float) * (size_t)(m->ops[from].in_size * n));
        x = buf;
    }
    m->fwd_input = x;
    m->fwd_from = from;
    m->fwd_n = n;
    const float *in = x;
    for (int i = from; i <= to; i++) {
        net_op *op = &m->ops[i];
        if (op->kind == NETSPEC_CONV) {
            /* The ReLU above is folded in only when it runs in this pass. */
            op->u.conv.relu_after = i < to && m->ops[i + 1].fused_forward;
        }
        if (op->kind == NETSPEC_DROPOUT) {
            op->u.drop.training = training;
            op->u.drop.key = rng_key(step_key, 0x64726f70 /* "drop" */,
                                     (uint64_t)i);
        }
        /* A ReLU fused into the conv below it has already been applied,
         * unless the pass starts at the ReLU itself. */
        if (!(op->fused_forward && i > from))
            op_forward(m, op, in, n);
        in = op->y;
    }
    return in;
}

const float *net_forward(net *m, const float *x, int n, int from,
                         int training, uint64_t step_key)
{
    return net_forward_range(m, x, n, from, m->nops - 1, training, step_key);
}

float *net_output_grad(net *m)
{
    return m->ops[m->nops - 1].dy;
}

void net_zero_grad(net *m)
{
    for (int g = m->frozen + 1; g <= m->nlearned; g++)
        sgd_zero_grad(net_layer_params(m, g));
}

void net_backward(net *m)
{
    int lowest = net_first_op_above(m, m->frozen);
    if (lowest < m->fwd_from)
        lowest = m->fwd_from;
    for (int i = m->nops - 1; i >= lowest; i--) {
        net_op *op = &m->ops[i];
        const float *x = i == m->fwd_from ? m->fwd_input : m->ops[i - 1].y;
        float *dx = i == lowest ? NULL : m->ops[i - 1].dy;
        if (dx == NULL && !netspec_op_is_learned(op->kind))
            continue; /* nothing below needs it and it holds no parameters */
        if (op->fused_backward && i + 1 < m->nops) {
            op->backward_calls++; /* done by the pool above */
            continue;
        }
        op_backward(m, op, x, dx, m->fwd_n);
    }
}

void net_update(net *m, const sgd_step *s)
{
    for (int g = m->frozen + 1; g <= m->nlearned; g++) {
        net_op *op = &m->ops[m->learned_op[g - 1]];
        if (op->kind == NETSPEC_CONV)
            conv_update(&op->u.conv, s);
        else
            fc_update(&op->u.fc, s);
    }
}

void net_describe_kernels(const net *m, char *buf, size_t bytes)
{
    size_t n = (size_t)snprintf(buf, bytes, "kernels: %s, %d thread%s",
                                kern_active()->name, par_threads(),
                                par_threads() == 1 ? "" : "s");
    for (int i = 0; i < m->nops && n < bytes; i++) {
        if (m->ops[i].kind != NETSPEC_CONV)
            continue;
        char one[256];
        conv_describe(&m->ops[i].u.conv, i > 0, one, sizeof one);
        n += (size_t)snprintf(buf + n, bytes - n, "\n  layer %d conv %s",
                              m->ops[i].group, one);
    }
}

double net_macs(const net *m)
{
    double macs = 0.0;
    for (int i = 0; i < m->nops; i++) {
        if (m->ops[i].kind == NETSPEC_CONV)
            macs += conv_macs(&m->ops[i].u.conv);
        else if (m->ops[i].kind == NETSPEC_FC)
            macs += fc_macs(&m->ops[i].u.fc);
    }
    return macs;
}
