/* Kernel sets: the hot loops of the direct convolution compiled once per
 * instruction set (kern_generic.c, kern_avx2.c, kern_avx512.c, each from
 * kern_tmpl.h with its own vector width and register blocking), and the one
 * set in use, picked once from what the CPU and the OS support, or forced
 * lower with TFQ_KERNELS=generic|avx2|avx512.
 *
 * The direct convolution handles stride 1 with "same" padding.  Output
 * channels go in vector lanes; a block of pixels times a few vectors of
 * channels stays in registers while every (input channel, tap) step adds
 * one weight vector times one broadcast input value.  The block is sized
 * for the set's register file so the inner loop never spills. */
#ifndef TFQ_ENGINE_KERN_H
#define TFQ_ENGINE_KERN_H

#include <stddef.h>

#include "common/err.h"

struct conv_layer_s;

typedef struct kern_set {
    const char *name;  /* "generic", "avx2", "avx512" */
    int lanes;         /* floats per vector register */
    /* The forward block for l (its cout vectors per block and pixels per
     * block) and the padded row width it needs; returns 0 when the direct
     * forward cannot run l (not stride-1 same, or cout not whole vectors). */
    int (*fwd_plan)(const struct conv_layer_s *l, int *cv, int *pb);
    /* y[:, img] = conv(x[:, img]) + bias (may be NULL), then ReLU if relu,
     * then zero where mask (may be NULL; the layout of y) is not above 0.
     * x (cin, n, hin, win), y (cout, n, hout, wout), wt (cin, k, k, cout);
     * xp is scratch of fwd_floats(l) floats. */
    void (*fwd_image)(const struct conv_layer_s *l, const float *wt,
                      const float *bias, int relu, const float *mask,
                      const float *x, float *y, int n, int img, float *xp);
    size_t (*fwd_floats)(const struct conv_layer_s *l);
    /* The weight-gradient block for l: cout vectors and kernel rows per
     * task; returns the number of independent tasks, 0 when the direct
     * weight gradient cannot run l. */
    int (*dw_plan)(const struct conv_layer_s *l, int *cv, int *rows);
    /* Task t of dw_plan over images [i0, i1): dw (cout, cin, k, k) += the
     * products of xpad (cin, n, hin+2pad, win+2pad) and dyt (n, hout*wout,
     * cout).  Tasks write disjoint parts of dw. */
    void (*dw_task)(const struct conv_layer_s *l, const float *xpad,
                    const float *dyt, int n, int i0, int i1, int task,
                    float *dw);
} kern_set;

/* The set in use.  The first call picks it: TFQ_KERNELS when set and
 * valid, else the best one this CPU runs (an invalid TFQ_KERNELS falls back
 * to that, after kern_init has reported it). */
const kern_set *kern_active(void);

/* Reads TFQ_KERNELS (unset or "auto": the best set) and makes that set the
 * active one.  Returns 0, or TFQ_EINVAL with e naming the value and what
 * this CPU supports. */
int kern_init(tfq_error *e);

/* Makes the named set active ("auto" for the best).  Returns 0, or
 * TFQ_EINVAL when the name is unknown or the CPU cannot run that set. */
int kern_select(const char *name, tfq_error *e);

/* The set called name when this CPU can run it, else NULL. */
const kern_set *kern_find(const char *name);

/* Every set this build holds, best last, and their number. */
const kern_set *const *kern_all(int *count);

#endif
