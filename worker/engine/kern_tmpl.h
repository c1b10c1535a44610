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
typedef int vi __attribute__((vector_size(KERN_LANES * 4)));

static int same_stride1(const conv_layer *l)
{
    return l->stride == 1 && l->hout == l->hin && l->wout == l->win;
}

/* ---- forward ---------------------------------------------------------- */

/* One block: pixels [ox0, ox0 + PB) of output row oy, channels co0 ..
 * co0 + CV * VL.  xp: (cin, hp, row) padded image; wt: (cin, k, k, cout);
 * out: (PB, CV * VL).  (Unrolling the taps for a fixed k lets the compiler
 * load weights ahead and spill accumulators: k stays a loop.) */
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

/* Accumulators that hide the multiply-add latency: about the latency (4-5
 * cycles) times the two FMA pipes of current x86 cores. */
#define KERN_ENOUGH_ACC 9.0

/* Ranks a block: one with enough accumulators (acc, counting the lanes
 * wasted past a row's end) beats one without; among those with enough,
 * fewer loads per multiply-add (lpf: weight or gradient vectors plus
 * broadcasts, over the FMAs they feed) wins, then more accumulators;
 * among the rest, more accumulators.  Returns 1 when (acc, lpf) is better
 * than (best_acc, best_lpf). */
static int better(double acc, double lpf, double best_acc, double best_lpf)
{
    int enough = acc >= KERN_ENOUGH_ACC - 1e-9;
    int best_enough = best_acc >= KERN_ENOUGH_ACC - 1e-9;
    if (enough != best_enough)
        return enough;
    if (enough) {
        if (lpf < best_lpf - 1e-9)
            return 1;
        return lpf < best_lpf + 1e-9 && acc > best_acc + 1e-9;
    }
    return acc > best_acc + 1e-9;
}

/* Picks the pixel block for l (better() above); the vectors of channels
 * are spread evenly over the blocks. */
static int fwd_plan(const conv_layer *l, int *cv_out, int *pb_out)
{
    if (!same_stride1(l) || l->cout % VL != 0)
        return 0;
    const int nvec = l->cout / VL;
    double best_acc = -1.0, best_lpf = 1e9;
    int best_pb = 0, best_cv = 0;
    for (int i = 0; i < FWD_COUNT; i++) {
        int pb = fwd_table[i].pb;
        if (fwd_table[i].cv != fwd_cvmax(pb))
            continue;
        int blocks = (nvec + fwd_table[i].cv - 1) / fwd_table[i].cv;
        int cv = (nvec + blocks - 1) / blocks;
        double mean_cv = (double)nvec / blocks;
        double fill = (double)l->wout / ((l->wout + pb - 1) / pb * pb);
        double acc = mean_cv * pb * fill;
        double lpf = (mean_cv + pb) / (mean_cv * pb * fill);
        if (better(acc, lpf, best_acc, best_lpf)) {
            best_acc = acc;
            best_lpf = lpf;
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

/* Copies n floats; rows of a few floats cost more as memcpy calls. */
static void copy_row(float *restrict d, const float *restrict s, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = s[i];
}

/* v where m > 0, else 0, without a branch: the mask of a ReLU's output is
 * as unpredictable as a coin. */
static inline float keep_if(float v, float m)
{
    union {
        float f;
        unsigned u;
    } a = {v};
    a.u &= -(unsigned)(m > 0.0f);
    return a.f;
}

/* Stores a block out (np, nc) into nc rows of y, ld apart: one channel's
 * pixels are np consecutive floats.  Always inlined, so that the common
 * widths, passed as constants, unroll fully. */
static inline __attribute__((always_inline)) void
store_block(float *restrict y, long ld, const float *restrict out, int nc,
            int np)
{
    for (int c = 0; c < nc; c++)
        for (int p = 0; p < np; p++)
            y[c * ld + p] = out[(long)p * nc + c];
}

static void store_masked(float *restrict y, const float *restrict mask,
                         long ld, const float *restrict out, int nc, int np)
{
    for (int c = 0; c < nc; c++)
        for (int p = 0; p < np; p++)
            y[c * ld + p] = keep_if(out[(long)p * nc + c], mask[c * ld + p]);
}

/* A block's bias and ReLU, on its vectors: the ReLU as a mask that keeps
 * the lanes not below 0 (NaN included).  out: (np, cv * VL). */
static void finish(float *out, int cv, int np, const float *bias, int relu)
{
    const vi keep = relu ? (vi){0} : ~(vi){0};
    for (int v = 0; v < cv; v++) {
        const vf b = bias != NULL ? *(const vf_u *)(bias + v * VL) : (vf){0};
        for (int p = 0; p < np; p++) {
            vf_u *o = (vf_u *)(out + ((long)p * cv + v) * VL);
            vf a = *o + b;
            *o = (vf)((vi)a & (~(vi)(a < (vf){0}) | keep));
        }
    }
}

static void fwd_image(const conv_layer *l, const float *wt, const float *bias,
                      int relu, const float *mask, const float *x, float *y,
                      int n, int img, float *xp)
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
            copy_row(xp + ((long)ci * hp + iy + pad) * row + pad,
                     x + ((long)ci * n + img) * hw_in + (long)iy * l->win,
                     l->win);
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
                finish(out, cv, np, bias != NULL ? bias + co0 : NULL, relu);
                /* The block holds pixels x channels; y wants each
                 * channel's pixels together. */
                const long at = ((long)co0 * n + img) * hw +
                                (long)oy * l->wout + ox0;
                if (mask != NULL)
                    store_masked(y + at, mask + at, n * hw, out, cv * VL, np);
                else if (np == 7)
                    store_block(y + at, n * hw, out, cv * VL, 7);
                else if (np == 14)
                    store_block(y + at, n * hw, out, cv * VL, 14);
                else
                    store_block(y + at, n * hw, out, cv * VL, np);
                co0 += cv * VL;
            }
        }
}

/* ---- weight gradient -------------------------------------------------- */

/* One task's block: kernel rows [ky0, ky0 + KR) of input channel ci, for
 * channels co0 .. co0 + CV * VL, summed over images [i0, i1) onto what out
 * holds.  out: (KR, K, CV * VL). */
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
                    acc[r][t][v] = *(const vf_u *)(out +                      \
                                   (((long)r * K + t) * CV + v) * VL);        \
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

/* A task sums the blocks of up to DW_GROUP input channels, sweeping the
 * images in chunks of about DW_CHUNK_FLOATS floats of dy, so that every
 * channel of the group reads a chunk while it is in the L2 cache instead
 * of streaming the whole batch's gradient from memory once per channel.
 * Groups shrink until there are four tasks per thread where the layer has
 * that many. */
#define DW_GROUP 8
#define DW_CHUNK_FLOATS 32768

static int dw_group(const conv_layer *l, int blocks, int kr)
{
    long per_ci = (long)blocks * (l->k / kr);
    long g = per_ci * l->cin / (4L * (l->threads > 0 ? l->threads : 1));
    return g < 1 ? 1 : g > DW_GROUP ? DW_GROUP : (int)g;
}

/* Picks the weight-gradient block for l (better() above). */
static int dw_plan(const conv_layer *l, int *cv_out, int *kr_out)
{
    if (!same_stride1(l) || l->cout % VL != 0)
        return 0;
    const int nvec = l->cout / VL;
    double best_acc = -1.0, best_lpf = 1e9;
    int best_cv = 0, best_kr = 0;
    for (int i = 0; i < DW_COUNT; i++) {
        const int k = dw_table[i].k, kr = dw_table[i].kr;
        if (k != l->k || dw_table[i].cv != dw_cvmax(k, kr))
            continue;
        int blocks = (nvec + dw_table[i].cv - 1) / dw_table[i].cv;
        double mean_cv = (double)nvec / blocks;
        double acc = mean_cv * kr * k;
        double lpf = (mean_cv + kr * k) / acc;
        if (better(acc, lpf, best_acc, best_lpf)) {
            best_acc = acc;
            best_lpf = lpf;
            best_cv = dw_table[i].cv;
            best_kr = kr;
        }
    }
    if (best_cv == 0)
        return 0;
    /* The widest block as spread: 2 vectors in blocks of up to 4 are one
     * block of 2 (and the same number of blocks follows from it). */
    int blocks = (nvec + best_cv - 1) / best_cv;
    *cv_out = (nvec + blocks - 1) / blocks;
    *kr_out = best_kr;
    const int g = dw_group(l, blocks, best_kr);
    return blocks * ((l->cin + g - 1) / g) * (l->k / best_kr);
}

static void dw_task(const conv_layer *l, const float *xpad, const float *dyt,
                    int n, int i0, int i1, int task, float *dw)
{
    int cv, kr;
    if (dw_plan(l, &cv, &kr) == 0)
        return;
    const int k = l->k, cin = l->cin, nvec = l->cout / VL;
    const int blocks = (nvec + cv - 1) / cv, rows = k / kr;
    const int g = dw_group(l, blocks, kr), ngroups = (cin + g - 1) / g;
    const int b = task / (ngroups * rows), rest = task % (ngroups * rows);
    const int ci0 = rest / rows * g, ky0 = rest % rows * kr;
    const int ci1 = ci0 + g < cin ? ci0 + g : cin;
    const int cvb = nvec / blocks + (b < nvec % blocks);
    int co0 = 0;
    for (int j = 0; j < b; j++)
        co0 += (nvec / blocks + (j < nvec % blocks)) * VL;
    const int slot = kr * k * cvb * VL;
    float out[DW_GROUP * 5 * 5 * 4 * VL] __attribute__((aligned(64)));
    memset(out, 0, sizeof(float) * (size_t)(ci1 - ci0) * slot);
    const long per_image = (long)l->hout * l->wout * l->cout;
    const int chunk = per_image >= DW_CHUNK_FLOATS
                          ? 1 : (int)(DW_CHUNK_FLOATS / per_image);
    const dw_fn fn = dw_find(cvb, k, kr);
    for (int c0 = i0; c0 < i1; c0 += chunk) {
        const int c1 = c0 + chunk < i1 ? c0 + chunk : i1;
        for (int ci = ci0; ci < ci1; ci++)
            fn(xpad, dyt, n, l->hin + 2 * l->pad, l->win + 2 * l->pad,
               l->hout, l->wout, l->cout, c0, c1, co0, ci, ky0,
               out + (long)(ci - ci0) * slot);
    }
    for (int ci = ci0; ci < ci1; ci++) {
        const float *o = out + (long)(ci - ci0) * slot;
        for (int r = 0; r < kr; r++)
            for (int t = 0; t < k; t++)
                for (int c = 0; c < cvb * VL; c++)
                    dw[(((long)(co0 + c) * cin + ci) * k + ky0 + r) * k + t] +=
                        o[(((long)r * k + t) * cvb) * VL + c];
    }
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
