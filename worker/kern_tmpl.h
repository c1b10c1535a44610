/* The direct convolution kernels, written once and compiled per instruction
 * set.  The including file defines, before including this one:
 *
 *   KERN_NAME        the set's name ("avx2")
 *   KERN_SET         the kern_set object to define (kern_set_avx2)
 *   KERN_LANES       floats per vector register
 *   KERN_FWD(X)      the forward blocks, X(CV, PB): CV vectors of output
 *                    channels times PB pixels in registers; for every PB
 *                    listed, every CV from 1 to its largest must be listed
 *   KERN_DW(X)       the weight-gradient blocks, X(CV, K, KR): CV vectors
 *                    of output channels times KR rows of a K x K kernel;
 *                    likewise every CV from 1 up for each (K, KR)
 *
 * and compiles it with the flags of the set.  The blocks are sized so that
 * the accumulators, the CV weight (or gradient) vectors and one broadcast
 * fit the register file: the inner loops keep everything in registers. */
#include <string.h>

#include "conv.h"
#include "kern.h"

#define VL KERN_LANES

typedef float vf __attribute__((vector_size(KERN_LANES * 4)));
typedef float vf_u __attribute__((vector_size(KERN_LANES * 4), aligned(4)));

static int same_stride1(const conv_layer *l)
{
    return l->stride == 1 && l->hout == l->hin && l->wout == l->win;
}

/* ---- forward ---------------------------------------------------------- */

/* One block: pixels [ox0, ox0 + PB) of output row oy, channels co0 ..
 * co0 + CV * VL.  xp: (cin, hp, row) padded image; wt: (cin, k, k, cout);
 * out: (PB, CV * VL). */
#define FWD_BLOCK(CV, PB)                                                     \
    static void fwd_##CV##_##PB(const float *restrict xp,                     \
                                const float *restrict wt, int cin, int k,     \
                                int hp, int row, int cout, int oy, int ox0,   \
                                int co0, float *restrict out)                 \
    {                                                                         \
        vf acc[PB][CV];                                                       \
        for (int p = 0; p < PB; p++)                                          \
            for (int v = 0; v < CV; v++)                                      \
                acc[p][v] = (vf){0};                                          \
        for (int ci = 0; ci < cin; ci++)                                      \
            for (int ky = 0; ky < k; ky++) {                                  \
                const float *xr = xp + ((long)ci * hp + oy + ky) * row + ox0; \
                const float *wr = wt + ((long)(ci * k + ky) * k) * cout + co0;\
                for (int kx = 0; kx < k; kx++) {                              \
                    vf w[CV];                                                 \
                    for (int v = 0; v < CV; v++)                              \
                        w[v] = *(const vf_u *)(wr + (long)kx * cout + v * VL);\
                    for (int p = 0; p < PB; p++) {                            \
                        const float xv = xr[p + kx];                          \
                        for (int v = 0; v < CV; v++)                          \
                            acc[p][v] += w[v] * xv;                           \
                    }                                                         \
                }                                                             \
            }                                                                 \
        for (int p = 0; p < PB; p++)                                          \
            for (int v = 0; v < CV; v++)                                      \
                *(vf_u *)(out + ((long)p * CV + v) * VL) = acc[p][v];         \
    }

typedef void (*fwd_fn)(const float *, const float *, int, int, int, int, int,
                       int, int, int, float *);

KERN_FWD(FWD_BLOCK)

#define FWD_ENTRY(CV, PB) {CV, PB, fwd_##CV##_##PB},
static const struct {
    int cv, pb;
    fwd_fn fn;
} fwd_table[] = {KERN_FWD(FWD_ENTRY)};
#define FWD_COUNT ((int)(sizeof fwd_table / sizeof fwd_table[0]))

static fwd_fn fwd_find(int cv, int pb)
{
    for (int i = 0; i < FWD_COUNT; i++)
        if (fwd_table[i].cv == cv && fwd_table[i].pb == pb)
            return fwd_table[i].fn;
    return NULL;
}

static int fwd_cvmax(int pb)
{
    int m = 0;
    for (int i = 0; i < FWD_COUNT; i++)
        if (fwd_table[i].pb == pb && fwd_table[i].cv > m)
            m = fwd_table[i].cv;
    return m;
}

/* Picks the pixel block that keeps the most accumulators busy, counting
 * the pixels a block computes past the row's end as lost: score = (mean
 * vectors per block) x PB x (wout / padded row).  Ties go to the fuller
 * row, then to more vectors per block (fewer broadcasts per FMA). */
static int fwd_plan(const conv_layer *l, int *cv_out, int *pb_out)
{
    if (!same_stride1(l) || l->cout % VL != 0)
        return 0;
    const int nvec = l->cout / VL;
    double best = -1.0, best_fill = 0.0;
    int best_pb = 0, best_cv = 0;
    for (int i = 0; i < FWD_COUNT; i++) {
        int pb = fwd_table[i].pb;
        if (fwd_table[i].cv != fwd_cvmax(pb))
            continue;
        int blocks = (nvec + fwd_table[i].cv - 1) / fwd_table[i].cv;
        int cv = (nvec + blocks - 1) / blocks;
        double fill = (double)l->wout / ((l->wout + pb - 1) / pb * pb);
        double score = (double)nvec / blocks * pb * fill;
        if (score > best + 1e-9 ||
            (score > best - 1e-9 &&
             (fill > best_fill + 1e-9 ||
              (fill > best_fill - 1e-9 && cv > best_cv)))) {
            best = score;
            best_fill = fill;
            best_pb = pb;
            best_cv = cv;
        }
    }
    *cv_out = best_cv;
    *pb_out = best_pb;
    return 1;
}

static int fwd_row(const conv_layer *l, int pb)
{
    return (l->wout + pb - 1) / pb * pb + 2 * l->pad;
}

static size_t fwd_floats(const conv_layer *l)
{
    int cv, pb;
    if (!fwd_plan(l, &cv, &pb))
        return 0;
    return (size_t)l->cin * (l->hin + 2 * l->pad) * fwd_row(l, pb);
}

static void fwd_image(const conv_layer *l, const float *wt, const float *bias,
                      int relu, const float *x, float *y, int n, int img,
                      float *xp)
{
    int cvmax, pb;
    if (!fwd_plan(l, &cvmax, &pb))
        return;
    const int cin = l->cin, cout = l->cout, pad = l->pad;
    const int hp = l->hin + 2 * pad, row = fwd_row(l, pb);
    const long hw_in = (long)l->hin * l->win, hw = (long)l->hout * l->wout;
    memset(xp, 0, sizeof(float) * (size_t)cin * hp * row);
    for (int ci = 0; ci < cin; ci++)
        for (int iy = 0; iy < l->hin; iy++)
            memcpy(xp + ((long)ci * hp + iy + pad) * row + pad,
                   x + ((long)ci * n + img) * hw_in + (long)iy * l->win,
                   sizeof(float) * (size_t)l->win);
    /* The vectors are spread evenly over the blocks: 4 vectors in blocks
     * of at most 3 run as 2 + 2, not 3 + 1. */
    const int nvec = cout / VL;
    const int blocks = (nvec + cvmax - 1) / cvmax;
    float out[64 * 4 * VL] __attribute__((aligned(64)));
    for (int oy = 0; oy < l->hout; oy++)
        for (int ox0 = 0; ox0 < l->wout; ox0 += pb) {
            const int np = l->wout - ox0 < pb ? l->wout - ox0 : pb;
            int co0 = 0;
            for (int b = 0; b < blocks; b++) {
                int cv = nvec / blocks + (b < nvec % blocks);
                fwd_find(cv, pb)(xp, wt, cin, l->k, hp, row, cout, oy, ox0,
                                 co0, out);
                for (int c = 0; c < cv * VL; c++) {
                    const int co = co0 + c;
                    const float bv = bias != NULL ? bias[co] : 0.0f;
                    float *dst = y + ((long)co * n + img) * hw +
                                 (long)oy * l->wout + ox0;
                    for (int p = 0; p < np; p++) {
                        float v = out[(long)p * cv * VL + c] + bv;
                        dst[p] = relu && v < 0.0f ? 0.0f : v;
                    }
                }
                co0 += cv * VL;
            }
        }
}

/* ---- weight gradient -------------------------------------------------- */

/* One task's block: kernel rows [ky0, ky0 + KR) of input channel ci, for
 * channels co0 .. co0 + CV * VL, summed over images [i0, i1).
 * out: (KR, K, CV * VL). */
#define DW_BLOCK(CV, K, KR)                                                   \
    static void dw_##CV##_##K##_##KR(                                         \
        const float *restrict xpad, const float *restrict dyt, int n,         \
        int hp, int wp, int hout, int wout, int cout, int i0, int i1,         \
        int co0, int ci, int ky0, float *restrict out)                        \
    {                                                                         \
        vf acc[KR][K][CV];                                                    \
        for (int r = 0; r < KR; r++)                                          \
            for (int t = 0; t < K; t++)                                       \
                for (int v = 0; v < CV; v++)                                  \
                    acc[r][t][v] = (vf){0};                                   \
        const long hw = (long)hout * wout;                                    \
        for (int img = i0; img < i1; img++)                                   \
            for (int oy = 0; oy < hout; oy++) {                               \
                const float *xr =                                             \
                    xpad + (((long)ci * n + img) * hp + oy + ky0) * wp;       \
                const float *dr =                                             \
                    dyt + ((long)img * hw + (long)oy * wout) * cout + co0;    \
                for (int ox = 0; ox < wout; ox++) {                           \
                    vf d[CV];                                                 \
                    for (int v = 0; v < CV; v++)                              \
                        d[v] = *(const vf_u *)(dr + (long)ox * cout + v * VL);\
                    for (int r = 0; r < KR; r++)                              \
                        for (int t = 0; t < K; t++) {                         \
                            const float xb = xr[(long)r * wp + ox + t];       \
                            for (int v = 0; v < CV; v++)                      \
                                acc[r][t][v] += d[v] * xb;                    \
                        }                                                     \
                }                                                             \
            }                                                                 \
        for (int r = 0; r < KR; r++)                                          \
            for (int t = 0; t < K; t++)                                       \
                for (int v = 0; v < CV; v++)                                  \
                    *(vf_u *)(out + (((long)r * K + t) * CV + v) * VL) =      \
                        acc[r][t][v];                                         \
    }

typedef void (*dw_fn)(const float *, const float *, int, int, int, int, int,
                      int, int, int, int, int, int, float *);

KERN_DW(DW_BLOCK)

#define DW_ENTRY(CV, K, KR) {CV, K, KR, dw_##CV##_##K##_##KR},
static const struct {
    int cv, k, kr;
    dw_fn fn;
} dw_table[] = {KERN_DW(DW_ENTRY)};
#define DW_COUNT ((int)(sizeof dw_table / sizeof dw_table[0]))

static dw_fn dw_find(int cv, int k, int kr)
{
    for (int i = 0; i < DW_COUNT; i++)
        if (dw_table[i].cv == cv && dw_table[i].k == k && dw_table[i].kr == kr)
            return dw_table[i].fn;
    return NULL;
}

static int dw_cvmax(int k, int kr)
{
    int m = 0;
    for (int i = 0; i < DW_COUNT; i++)
        if (dw_table[i].k == k && dw_table[i].kr == kr && dw_table[i].cv > m)
            m = dw_table[i].cv;
    return m;
}

/* The block with the most accumulators, (mean vectors per block) x KR x K;
 * ties go to fewer rows per task (more tasks to share out). */
static int dw_plan(const conv_layer *l, int *cv_out, int *kr_out)
{
    if (!same_stride1(l) || l->cout % VL != 0)
        return 0;
    const int nvec = l->cout / VL;
    double best = 0.0;
    int best_cv = 0, best_kr = 0;
    for (int i = 0; i < DW_COUNT; i++) {
        const int k = dw_table[i].k, kr = dw_table[i].kr;
        if (k != l->k || dw_table[i].cv != dw_cvmax(k, kr))
            continue;
        int blocks = (nvec + dw_table[i].cv - 1) / dw_table[i].cv;
        double score = (double)nvec / blocks * kr * k;
        if (score > best + 1e-9 || (score > best - 1e-9 && kr < best_kr)) {
            best = score;
            best_cv = dw_table[i].cv;
            best_kr = kr;
        }
    }
    if (best_cv == 0)
        return 0;
    *cv_out = best_cv;
    *kr_out = best_kr;
    int blocks = (nvec + best_cv - 1) / best_cv;
    return blocks * l->cin * (l->k / best_kr);
}

static void dw_task(const conv_layer *l, const float *xpad, const float *dyt,
                    int n, int i0, int i1, int task, float *dw)
{
    int cvmax, kr;
    if (dw_plan(l, &cvmax, &kr) == 0)
        return;
    const int k = l->k, cin = l->cin, nvec = l->cout / VL;
    const int blocks = (nvec + cvmax - 1) / cvmax, groups = k / kr;
    const int b = task / (cin * groups), rest = task % (cin * groups);
    const int ci = rest / groups, ky0 = rest % groups * kr;
    const int cv = nvec / blocks + (b < nvec % blocks);
    int co0 = 0;
    for (int j = 0; j < b; j++)
        co0 += (nvec / blocks + (j < nvec % blocks)) * VL;
    float out[7 * 7 * 4 * VL] __attribute__((aligned(64)));
    dw_find(cv, k, kr)(xpad, dyt, n, l->hin + 2 * l->pad, l->win + 2 * l->pad,
                       l->hout, l->wout, l->cout, i0, i1, co0, ci, ky0, out);
    for (int r = 0; r < kr; r++)
        for (int t = 0; t < k; t++)
            for (int c = 0; c < cv * VL; c++)
                dw[(((long)(co0 + c) * cin + ci) * k + ky0 + r) * k + t] +=
                    out[(((long)r * k + t) * cv) * VL + c];
}

const kern_set KERN_SET = {
    .name = KERN_NAME,
    .lanes = KERN_LANES,
    .fwd_plan = fwd_plan,
    .fwd_image = fwd_image,
    .fwd_floats = fwd_floats,
    .dw_plan = dw_plan,
    .dw_task = dw_task,
};
