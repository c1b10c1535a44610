#include "conv.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "gemm.h"

int conv_init(conv_layer *l, int cin, int hin, int win, int cout, int k,
              int stride, int pad, size_t workspace_target_floats)
{
    if (cin < 1 || cout < 1 || k < 1 || stride < 1 || pad < 0 ||
        hin + 2 * pad < k || win + 2 * pad < k)
        return TFQ_EINVAL;
    memset(l, 0, sizeof *l);
    l->cin = cin;
    l->cout = cout;
    l->k = k;
    l->stride = stride;
    l->pad = pad;
    l->hin = hin;
    l->win = win;
    l->hout = (hin + 2 * pad - k) / stride + 1;
    l->wout = (win + 2 * pad - k) / stride + 1;
    size_t per_image = (size_t)cin * k * k * l->hout * l->wout;
    size_t chunk = workspace_target_floats / per_image;
    l->chunk = chunk < 1 ? 1 : (int)chunk;
    l->p.nw = cout * cin * k * k;
    l->p.nb = cout;
    return 0;
}

/* The workspace: one im2col block, then the transposed weight gradient. */
static size_t block_floats(const conv_layer *l)
{
    return (size_t)l->cin * l->k * l->k * l->hout * l->wout * l->chunk;
}

static size_t dwt_floats(const conv_layer *l)
{
    return (size_t)l->cin * l->k * l->k * l->cout;
}

static size_t direct_floats(const conv_layer *l);
static size_t direct_dw_floats(const conv_layer *l, int n);

size_t conv_workspace_floats(const conv_layer *l, int n)
{
    size_t need = block_floats(l) + dwt_floats(l);
    if (direct_floats(l) > need)
        need = direct_floats(l);
    if (direct_dw_floats(l, n) > need)
        need = direct_dw_floats(l, n);
    return need;
}

double conv_macs(const conv_layer *l)
{
    return (double)l->cout * l->hout * l->wout * l->cin * l->k * l->k;
}

/* The output columns [lo, hi) of one kernel offset that read inside the
 * input row; outside them the padded input is zero. */
static void valid_range(int out, int in, int stride, int offset, int *lo,
                        int *hi)
{
    /* ix = ox * stride + offset must satisfy 0 <= ix < in. */
    int a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int b = in - offset <= 0 ? 0 : (in - offset + stride - 1) / stride;
    if (b > out)
        b = out;
    if (a > b)
        a = b;
    *lo = a;
    *hi = b;
}

/* Stride 1 with "same" padding keeps the image size, so one kernel tap's
 * patch row is the whole input plane shifted by (dy, dx): a single
 * contiguous copy, after which only the columns that wrapped around a row
 * edge need zeroing.  This is the case of every preset net. */
static int is_same_stride1(const conv_layer *l)
{
    return l->stride == 1 && l->hout == l->hin && l->wout == l->win;
}

/* The flat range [*jlo, *jhi) of one plane that a tap shifted by (dy, dx)
 * reads inside the input, and the shift itself. */
static long shift_range(const conv_layer *l, int ky, int kx, long *jlo,
                        long *jhi)
{
    const int w = l->win, h = l->hin, dy = ky - l->pad, dx = kx - l->pad;
    long off = (long)dy * w + dx;
    long lo = (long)(dy < 0 ? -dy : 0) * w;
    long hi = (long)(dy > 0 ? h - dy : h) * w;
    if (lo < -off)
        lo = -off;
    if (hi > (long)h * w - off)
        hi = (long)h * w - off;
    *jlo = lo;
    *jhi = hi > lo ? hi : lo;
    return off;
}

/* Zeroes the columns of a (h, w) block that a horizontal shift dx moved
 * across a row edge. */
static void zero_wrapped(float *d, int h, int w, int dx)
{
    if (dx == 0)
        return;
    int c0 = dx < 0 ? 0 : w - dx, c1 = dx < 0 ? -dx : w;
    for (int x = c0; x < c1; x++)
        for (int y = 0; y < h; y++)
            d[(long)y * w + x] = 0.0f;
}

/* The c planes of one channel for images [i0, i0+c) are contiguous in x, as
 * is one patch row of the block in cols, so each kernel tap is one shifted
 * copy of the whole block.  What the shift pulls in from a neighbouring
 * plane (the padding rows) and across a row edge (the padding columns) is
 * then zeroed. */
static void im2col_same(const conv_layer *l, const float *x, int n, int i0,
                        int c, float *cols)
{
    const long hw = (long)l->hin * l->win, ncols = (long)c * hw;
    for (int ci = 0; ci < l->cin; ci++)
        for (int ky = 0; ky < l->k; ky++)
            for (int kx = 0; kx < l->k; kx++) {
                long jlo, jhi;
                long off = shift_range(l, ky, kx, &jlo, &jhi);
                float *row = cols + ((long)(ci * l->k + ky) * l->k + kx) * ncols;
                const float *src = x + ((long)ci * n + i0) * hw;
                long glo = off < 0 ? -off : 0;
                long ghi = off > 0 ? ncols - off : ncols;
                memcpy(row + glo, src + glo + off,
                       sizeof(float) * (size_t)(ghi - glo));
                for (int img = 0; img < c; img++) {
                    float *d = row + img * hw;
                    for (long j = 0; j < jlo; j++)
                        d[j] = 0.0f;
                    for (long j = jhi; j < hw; j++)
                        d[j] = 0.0f;
                }
                zero_wrapped(row, c * l->hin, l->win, kx - l->pad);
            }
}

/* The inverse: the padding entries of each patch row are zeroed (they are
 * the gradient of the zero padding, which is dropped), after which the
 * whole block is one shifted add.  cols is scratch and is modified. */
static void col2im_same(const conv_layer *l, float *cols, int n, int i0,
                        int c, float *dx)
{
    const long hw = (long)l->hin * l->win, ncols = (long)c * hw;
    for (int ci = 0; ci < l->cin; ci++)
        for (int ky = 0; ky < l->k; ky++)
            for (int kx = 0; kx < l->k; kx++) {
                long jlo, jhi;
                long off = shift_range(l, ky, kx, &jlo, &jhi);
                float *restrict s = cols + ((long)(ci * l->k + ky) * l->k + kx) * ncols;
                float *restrict dst = dx + ((long)ci * n + i0) * hw + off;
                for (int img = 0; img < c; img++) {
                    float *d = s + img * hw;
                    for (long j = 0; j < jlo; j++)
                        d[j] = 0.0f;
                    for (long j = jhi; j < hw; j++)
                        d[j] = 0.0f;
                }
                zero_wrapped(s, c * l->hin, l->win, kx - l->pad);
                long glo = off < 0 ? -off : 0;
                long ghi = off > 0 ? ncols - off : ncols;
                for (long j = glo; j < ghi; j++)
                    dst[j] += s[j];
            }
}

/* cols (cin*k*k, c*hout*wout) <- the patches of images [i0, i0+c). */
static void im2col(const conv_layer *l, const float *x, int n, int i0, int c,
                   float *cols)
{
    if (is_same_stride1(l)) {
        im2col_same(l, x, n, i0, c, cols);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const long ncols = (long)c * hw_out;
    for (int ci = 0; ci < l->cin; ci++)
        for (int ky = 0; ky < l->k; ky++)
            for (int kx = 0; kx < l->k; kx++) {
                float *row = cols + ((long)(ci * l->k + ky) * l->k + kx) * ncols;
                int lo, hi;
                valid_range(l->wout, l->win, l->stride, kx - l->pad, &lo, &hi);
                for (int img = 0; img < c; img++) {
                    const float *src = x + ((long)ci * n + i0 + img) * hw_in;
                    float *d = row + (long)img * hw_out;
                    for (int oy = 0; oy < l->hout; oy++, d += l->wout) {
                        int iy = oy * l->stride - l->pad + ky;
                        if (iy < 0 || iy >= l->hin) {
                            memset(d, 0, sizeof(float) * (size_t)l->wout);
                            continue;
                        }
                        const float *s = src + (long)iy * l->win + kx - l->pad;
                        for (int ox = 0; ox < lo; ox++)
                            d[ox] = 0.0f;
                        for (int ox = lo; ox < hi; ox++)
                            d[ox] = s[ox * l->stride];
                        for (int ox = hi; ox < l->wout; ox++)
                            d[ox] = 0.0f;
                    }
                }
            }
}

/* dx of images [i0, i0+c) += the patches in cols, summed back in place.
 * cols is scratch and may be modified. */
static void col2im(const conv_layer *l, float *cols, int n, int i0, int c,
                   float *dx)
{
    if (is_same_stride1(l)) {
        col2im_same(l, cols, n, i0, c, dx);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const long ncols = (long)c * hw_out;
    for (int ci = 0; ci < l->cin; ci++)
        for (int ky = 0; ky < l->k; ky++)
            for (int kx = 0; kx < l->k; kx++) {
                const float *row =
                    cols + ((long)(ci * l->k + ky) * l->k + kx) * ncols;
                int lo, hi;
                valid_range(l->wout, l->win, l->stride, kx - l->pad, &lo, &hi);
                for (int img = 0; img < c; img++) {
                    float *dst = dx + ((long)ci * n + i0 + img) * hw_in;
                    const float *s = row + (long)img * hw_out;
                    for (int oy = 0; oy < l->hout; oy++, s += l->wout) {
                        int iy = oy * l->stride - l->pad + ky;
                        if (iy < 0 || iy >= l->hin)
                            continue;
                        float *d = dst + (long)iy * l->win + kx - l->pad;
                        for (int ox = lo; ox < hi; ox++)
                            d[ox * l->stride] += s[ox];
                    }
                }
            }
}

/* Sum of n floats in 16 independent lanes, which the compiler can keep in
 * one vector register (a single running sum would serialise every add). */
static float row_sum(const float *v, long n)
{
    float lane[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++)
            lane[k] += v[j + k];
    float acc = 0.0f;
    for (; j < n; j++)
        acc += v[j];
    for (int k = 0; k < 16; k++)
        acc += lane[k];
    return acc;
}

/* ---- direct convolution ------------------------------------------------
 * For stride 1, "same" padding and output channels in multiples of 16 (every
 * preset net), the forward pass skips im2col: each block of output pixels
 * of one row keeps up to 3 x 16 output channels in vector registers, and
 * every (input channel, tap) step is one weight vector load per 16 channels
 * and one broadcast input value per pixel, so the multiply-adds run from
 * registers instead of a patch matrix in memory.  The input is first copied
 * into a zero-padded image, which removes every bounds test. */

typedef float v16sf __attribute__((vector_size(64)));
typedef float v16sf_u __attribute__((vector_size(64), aligned(4)));

#define DIRECT_LANES 16

static int direct_pixels(const conv_layer *l)
{
    return l->wout % 7 == 0 ? 7 : 8;
}

static int use_direct(const conv_layer *l)
{
    return is_same_stride1(l) && l->cout % DIRECT_LANES == 0;
}

/* Width of one padded row: room for whole pixel blocks plus the padding. */
static int direct_row(const conv_layer *l)
{
    int pb = direct_pixels(l);
    return (l->wout + pb - 1) / pb * pb + 2 * l->pad;
}

static size_t direct_floats(const conv_layer *l)
{
    size_t fwd = (size_t)l->cin * (l->hin + 2 * l->pad) * direct_row(l);
    conv_layer t = *l;
    t.cin = l->cout;
    t.hin = l->hout;
    size_t bwd = (size_t)t.cin * (t.hin + 2 * t.pad) * direct_row(&t);
    return (size_t)l->cin * l->k * l->k * l->cout + (fwd > bwd ? fwd : bwd);
}

/* One block: pixels [ox0, ox0 + PB) of row oy, channels co0 .. co0 + 16 CV.
 * xp: (cin, hp, row) padded image; wt: (cin, k, k, cout). */
#define DIRECT_BLOCK(CV, PB)                                                  \
    static void direct_block_##CV##_##PB(                                     \
        const conv_layer *l, const float *xp, const float *wt, int row,       \
        int oy, int ox0, int co0, v16sf out[PB][CV])                          \
    {                                                                         \
        v16sf acc[PB][CV];                                                    \
        for (int p = 0; p < PB; p++)                                          \
            for (int v = 0; v < CV; v++)                                      \
                acc[p][v] = (v16sf){0};                                       \
        const int hp = l->hin + 2 * l->pad, k = l->k, cout = l->cout;         \
        for (int ci = 0; ci < l->cin; ci++)                                   \
            for (int ky = 0; ky < k; ky++) {                                  \
                const float *xr = xp + ((long)ci * hp + oy + ky) * row + ox0; \
                const float *wr = wt + ((long)(ci * k + ky) * k) * cout + co0;\
                for (int kx = 0; kx < k; kx++) {                              \
                    v16sf w[CV];                                              \
                    for (int v = 0; v < CV; v++)                              \
                        w[v] = *(const v16sf_u *)(wr + (long)kx * cout +      \
                                                  v * DIRECT_LANES);          \
                    for (int p = 0; p < PB; p++) {                            \
                        const float xv = xr[p + kx];                          \
                        for (int v = 0; v < CV; v++)                          \
                            acc[p][v] += w[v] * xv;                           \
                    }                                                         \
                }                                                             \
            }                                                                 \
        for (int p = 0; p < PB; p++)                                          \
            for (int v = 0; v < CV; v++)                                      \
                out[p][v] = acc[p][v];                                        \
    }

DIRECT_BLOCK(1, 7)
DIRECT_BLOCK(2, 7)
DIRECT_BLOCK(3, 7)
DIRECT_BLOCK(1, 8)
DIRECT_BLOCK(2, 8)
DIRECT_BLOCK(3, 8)

/* Writes a block's channels into y (cout, n, hout, wout) for image img,
 * adding the bias and, when the net folded one in, the ReLU. */
static void direct_store(const conv_layer *l, const float *blk, int pb,
                         int cv, const float *bias, int relu, float *y, int n,
                         int img, int oy, int ox0, int co0)
{
    const long hw = (long)l->hout * l->wout;
    int np = l->wout - ox0 < pb ? l->wout - ox0 : pb;
    for (int v = 0; v < cv; v++)
        for (int j = 0; j < DIRECT_LANES; j++) {
            int co = co0 + v * DIRECT_LANES + j;
            float b = bias != NULL ? bias[co] : 0.0f;
            float *dst = y + ((long)co * n + img) * hw + (long)oy * l->wout + ox0;
            for (int p = 0; p < np; p++) {
                float val = blk[((long)p * cv + v) * DIRECT_LANES + j] + b;
                dst[p] = relu && val < 0.0f ? 0.0f : val;
            }
        }
}

/* y = conv(x) with the geometry of l, weights wt (cin, k, k, cout), bias
 * (may be NULL) and an optional ReLU; xp is room for one padded image. */
static void direct_run(const conv_layer *l, const float *wt,
                       const float *bias, int relu, const float *x, float *y,
                       int n, float *xp)
{
    const int cout = l->cout, cin = l->cin, pad = l->pad;
    const int hp = l->hin + 2 * pad, row = direct_row(l);
    const int pb = direct_pixels(l);
    memset(xp, 0, sizeof(float) * (size_t)cin * hp * row);
    const long hw_in = (long)l->hin * l->win;
    v16sf blk[8][3];
    for (int img = 0; img < n; img++) {
        for (int ci = 0; ci < cin; ci++)
            for (int iy = 0; iy < l->hin; iy++)
                memcpy(xp + ((long)ci * hp + iy + pad) * row + pad,
                       x + ((long)ci * n + img) * hw_in + (long)iy * l->win,
                       sizeof(float) * (size_t)l->win);
        for (int oy = 0; oy < l->hout; oy++)
            for (int ox0 = 0; ox0 < l->wout; ox0 += pb)
                for (int co0 = 0; co0 < cout;) {
                    int cv = (cout - co0) / DIRECT_LANES;
                    cv = cv > 3 ? 3 : cv;
                    if (pb == 7) {
                        if (cv == 3)
                            direct_block_3_7(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[3])blk);
                        else if (cv == 2)
                            direct_block_2_7(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[2])blk);
                        else
                            direct_block_1_7(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[1])blk);
                    } else {
                        if (cv == 3)
                            direct_block_3_8(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[3])blk);
                        else if (cv == 2)
                            direct_block_2_8(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[2])blk);
                        else
                            direct_block_1_8(l, xp, wt, row, oy, ox0, co0, (v16sf(*)[1])blk);
                    }
                    direct_store(l, (const float *)blk, pb, cv, bias, relu,
                                 y, n, img, oy, ox0, co0);
                    co0 += cv * DIRECT_LANES;
                }
    }
}

static void conv_forward_direct(const conv_layer *l, const float *x,
                                float *y, int n, float *ws)
{
    const int k = l->k, cout = l->cout, cin = l->cin;
    float *wt = ws; /* (cin, k, k, cout) */
    for (int co = 0; co < cout; co++)
        for (int t = 0; t < cin * k * k; t++)
            wt[(long)t * cout + co] = l->p.w[(long)co * cin * k * k + t];
    direct_run(l, wt, l->p.b, l->relu_after, x, y, n,
               ws + (size_t)cin * k * k * cout);
}

/* With stride 1 and same padding, dL/dx is itself a same-padded convolution
 * of dL/dy, with input and output channels swapped and the kernel rotated
 * by 180 degrees; it runs on the direct path when cin is a multiple of 16. */
static int use_direct_backward(const conv_layer *l)
{
    return is_same_stride1(l) && l->cin % DIRECT_LANES == 0;
}

static conv_layer transposed_geometry(const conv_layer *l)
{
    conv_layer t = *l;
    t.cin = l->cout;
    t.cout = l->cin;
    t.hin = l->hout;
    t.win = l->wout;
    t.hout = l->hin;
    t.wout = l->win;
    return t;
}

static void conv_input_grad_direct(const conv_layer *l, const float *dy,
                                   float *dx, int n, float *ws)
{
    const int k = l->k, cout = l->cout, cin = l->cin;
    conv_layer t = transposed_geometry(l);
    float *wt = ws; /* (cout, k, k, cin): the rotated kernel */
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    wt[(((long)co * k + a) * k + b) * cin + ci] =
                        l->p.w[(((long)co * cin + ci) * k + (k - 1 - a)) * k +
                               (k - 1 - b)];
    direct_run(&t, wt, NULL, 0, dy, dx, n, ws + (size_t)cin * k * k * cout);
}

/* The weight gradient on the direct path: dw[co][ci][ky][kx] sums
 * dy[co] x (the input shifted by the tap) over every pixel of the batch.
 * Output channels go in vector lanes, so dy is first transposed to
 * (n, h*w, cout); each (ci, ky) keeps the k taps of one kernel row times up
 * to 3 x 16 channels in registers while it sweeps the batch. */
static int use_direct_dw(const conv_layer *l)
{
    return use_direct(l) && (l->k == 3 || l->k == 5);
}

static size_t direct_dw_floats(const conv_layer *l, int n)
{
    if (!use_direct_dw(l))
        return 0;
    size_t hp = (size_t)l->hin + 2 * l->pad, wp = (size_t)l->win + 2 * l->pad;
    return (size_t)l->cin * n * hp * wp +
           (size_t)n * l->hout * l->wout * l->cout;
}

#define DIRECT_DW(CV, K)                                                      \
    static void direct_dw_##CV##_##K(const conv_layer *l, const float *xpad,  \
                                     const float *dyt, int n, int co0,        \
                                     int ci, int ky, v16sf out[K][CV])        \
    {                                                                         \
        v16sf acc[K][CV];                                                     \
        for (int t = 0; t < K; t++)                                           \
            for (int v = 0; v < CV; v++)                                      \
                acc[t][v] = (v16sf){0};                                       \
        const int hp = l->hin + 2 * l->pad, wp = l->win + 2 * l->pad;         \
        const int w = l->wout, cout = l->cout;                                \
        const long hw = (long)l->hout * w;                                    \
        for (int img = 0; img < n; img++)                                     \
            for (int oy = 0; oy < l->hout; oy++) {                            \
                const float *xr =                                             \
                    xpad + (((long)ci * n + img) * hp + oy + ky) * wp;        \
                const float *dr = dyt + ((long)img * hw + (long)oy * w) * cout\
                                  + co0;                                      \
                for (int ox = 0; ox < w; ox++) {                              \
                    v16sf d[CV];                                              \
                    for (int v = 0; v < CV; v++)                              \
                        d[v] = *(const v16sf_u *)(dr + (long)ox * cout +      \
                                                  v * DIRECT_LANES);          \
                    for (int t = 0; t < K; t++) {                             \
                        const float xb = xr[ox + t];                          \
                        for (int v = 0; v < CV; v++)                          \
                            acc[t][v] += d[v] * xb;                           \
                    }                                                         \
                }                                                             \
            }                                                                 \
        for (int t = 0; t < K; t++)                                           \
            for (int v = 0; v < CV; v++)                                      \
                out[t][v] = acc[t][v];                                        \
    }

DIRECT_DW(1, 3)
DIRECT_DW(2, 3)
DIRECT_DW(3, 3)
DIRECT_DW(1, 5)
DIRECT_DW(2, 5)
DIRECT_DW(3, 5)

static void conv_weight_grad_direct(conv_layer *l, const float *x,
                                    const float *dy, int n, float *ws)
{
    const int cin = l->cin, cout = l->cout, k = l->k, pad = l->pad;
    const int hp = l->hin + 2 * pad, wp = l->win + 2 * pad;
    const long hw_in = (long)l->hin * l->win, hw = (long)l->hout * l->wout;
    float *xpad = ws;                                /* (cin, n, hp, wp) */
    float *dyt = ws + (size_t)cin * n * hp * wp;     /* (n, hw, cout) */
    memset(xpad, 0, sizeof(float) * (size_t)cin * n * hp * wp);
    for (long pl = 0; pl < (long)cin * n; pl++)
        for (int iy = 0; iy < l->hin; iy++)
            memcpy(xpad + (pl * hp + iy + pad) * wp + pad,
                   x + pl * hw_in + (long)iy * l->win,
                   sizeof(float) * (size_t)l->win);
    for (int img = 0; img < n; img++)
        for (int co = 0; co < cout; co++) {
            const float *src = dy + ((long)co * n + img) * hw;
            float *dst = dyt + (long)img * hw * cout + co;
            for (long p = 0; p < hw; p++)
                dst[p * cout] = src[p];
        }
    v16sf out[5][3];
    for (int co0 = 0; co0 < cout;) {
        int cv = (cout - co0) / DIRECT_LANES;
        cv = cv > 3 ? 3 : cv;
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++) {
                if (k == 3) {
                    if (cv == 3)
                        direct_dw_3_3(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[3])out);
                    else if (cv == 2)
                        direct_dw_2_3(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[2])out);
                    else
                        direct_dw_1_3(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[1])out);
                } else {
                    if (cv == 3)
                        direct_dw_3_5(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[3])out);
                    else if (cv == 2)
                        direct_dw_2_5(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[2])out);
                    else
                        direct_dw_1_5(l, xpad, dyt, n, co0, ci, ky, (v16sf(*)[1])out);
                }
                const float *o = (const float *)out;
                for (int kx = 0; kx < k; kx++)
                    for (int v = 0; v < cv; v++)
                        for (int j = 0; j < DIRECT_LANES; j++) {
                            int co = co0 + v * DIRECT_LANES + j;
                            l->p.dw[(((long)co * cin + ci) * k + ky) * k + kx] +=
                                o[((long)kx * cv + v) * DIRECT_LANES + j];
                        }
            }
        co0 += cv * DIRECT_LANES;
    }
}

void conv_forward(const conv_layer *l, const float *x, float *y, int n,
                  float *ws)
{
    if (use_direct(l)) {
        conv_forward_direct(l, x, y, n, ws);
        return;
    }
    const int hw_out = l->hout * l->wout;
    const int kdim = l->cin * l->k * l->k;
    const long ld = (long)n * hw_out;
    for (int i0 = 0; i0 < n; i0 += l->chunk) {
        int c = n - i0 < l->chunk ? n - i0 : l->chunk;
        int cols = c * hw_out;
        im2col(l, x, n, i0, c, ws);
        float *yc = y + (long)i0 * hw_out;
        gemm(0, 0, l->cout, cols, kdim, 1.0f, l->p.w, kdim, ws, cols, 0.0f,
             yc, (int)ld);
        /* The bias (and a following ReLU) go in while the block is still
         * in cache. */
        for (int co = 0; co < l->cout; co++) {
            float *row = yc + co * ld;
            const float b = l->p.b[co];
            if (l->relu_after)
                for (int j = 0; j < cols; j++)
                    row[j] = row[j] + b > 0.0f ? row[j] + b : 0.0f;
            else
                for (int j = 0; j < cols; j++)
                    row[j] += b;
        }
    }
}

/* dw += dy cols^T through im2col and sgemm, one block of images at a
 * time.  OpenBLAS runs the transposed product dw^T = cols dy^T (tall and
 * narrow) about 10% faster, so that is what is summed, then added. */
static void weight_grad_gemm(conv_layer *l, const float *x, const float *dy,
                             int n, float *ws)
{
    const int hw_out = l->hout * l->wout;
    const int kdim = l->cin * l->k * l->k;
    const long ld = (long)n * hw_out;
    float *dwt = ws + block_floats(l); /* (kdim, cout) */
    memset(dwt, 0, sizeof(float) * dwt_floats(l));
    for (int i0 = 0; i0 < n; i0 += l->chunk) {
        int c = n - i0 < l->chunk ? n - i0 : l->chunk;
        int cols = c * hw_out;
        im2col(l, x, n, i0, c, ws);
        gemm(0, 1, kdim, l->cout, cols, 1.0f, ws, cols, dy + (long)i0 * hw_out,
             (int)ld, 1.0f, dwt, l->cout);
    }
    for (int co = 0; co < l->cout; co++)
        for (int k = 0; k < kdim; k++)
            l->p.dw[(long)co * kdim + k] += dwt[(long)k * l->cout + co];
}

/* dx = col2im(w^T dy), one block of images at a time. */
static void input_grad_gemm(const conv_layer *l, const float *dy, float *dx,
                            int n, float *ws)
{
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const int kdim = l->cin * l->k * l->k;
    const long ld = (long)n * hw_out;
    for (int i0 = 0; i0 < n; i0 += l->chunk) {
        int c = n - i0 < l->chunk ? n - i0 : l->chunk;
        int cols = c * hw_out;
        gemm(1, 0, kdim, cols, l->cout, 1.0f, l->p.w, kdim,
             dy + (long)i0 * hw_out, (int)ld, 0.0f, ws, cols);
        for (int ci = 0; ci < l->cin; ci++)
            memset(dx + ((long)ci * n + i0) * hw_in, 0,
                   sizeof(float) * (size_t)c * hw_in);
        col2im(l, ws, n, i0, c, dx);
    }
}

void conv_backward(conv_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)y;
    const long ld = (long)n * l->hout * l->wout;
    for (int co = 0; co < l->cout; co++)
        l->p.db[co] += row_sum(dy + co * ld, ld);
    if (use_direct_dw(l))
        conv_weight_grad_direct(l, x, dy, n, ws);
    else
        weight_grad_gemm(l, x, dy, n, ws);
    if (dx == NULL)
        return;
    if (use_direct_backward(l))
        conv_input_grad_direct(l, dy, dx, n, ws);
    else
        input_grad_gemm(l, dy, dx, n, ws);
}

void conv_update(conv_layer *l, const sgd_step *s)
{
    sgd_update(&l->p, s);
}

/* The input pixel under output (oy, ox) and kernel tap (ky, kx), or -1 when
 * it falls in the zero padding. */
static long tap(const conv_layer *l, int oy, int ox, int ky, int kx)
{
    int iy = oy * l->stride - l->pad + ky;
    int ix = ox * l->stride - l->pad + kx;
    if (iy < 0 || iy >= l->hin || ix < 0 || ix >= l->win)
        return -1;
    return (long)iy * l->win + ix;
}

void conv_forward_naive(const conv_layer *l, const float *x, float *y, int n)
{
    const long hw_in = (long)l->hin * l->win, hw_out = (long)l->hout * l->wout;
    for (int co = 0; co < l->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oy = 0; oy < l->hout; oy++)
                for (int ox = 0; ox < l->wout; ox++) {
                    double acc = l->p.b[co];
                    for (int ci = 0; ci < l->cin; ci++)
                        for (int ky = 0; ky < l->k; ky++)
                            for (int kx = 0; kx < l->k; kx++) {
                                long t = tap(l, oy, ox, ky, kx);
                                if (t < 0)
                                    continue;
                                float wv = l->p.w[((co * l->cin + ci) * l->k + ky) * l->k + kx];
                                acc += (double)wv * x[((long)ci * n + i) * hw_in + t];
                            }
                    y[((long)co * n + i) * hw_out + (long)oy * l->wout + ox] = (float)acc;
                }
}

void conv_backward_naive(conv_layer *l, const float *x, const float *dy,
                         float *dx, int n)
{
    const long hw_in = (long)l->hin * l->win, hw_out = (long)l->hout * l->wout;
    if (dx != NULL)
        memset(dx, 0, sizeof(float) * (size_t)(l->cin * n * hw_in));
    for (int co = 0; co < l->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oy = 0; oy < l->hout; oy++)
                for (int ox = 0; ox < l->wout; ox++) {
                    float g = dy[((long)co * n + i) * hw_out + (long)oy * l->wout + ox];
                    l->p.db[co] += g;
                    for (int ci = 0; ci < l->cin; ci++)
                        for (int ky = 0; ky < l->k; ky++)
                            for (int kx = 0; kx < l->k; kx++) {
                                long t = tap(l, oy, ox, ky, kx);
                                if (t < 0)
                                    continue;
                                long wi = ((co * l->cin + ci) * l->k + ky) * l->k + kx;
                                long xi = ((long)ci * n + i) * hw_in + t;
                                l->p.dw[wi] += g * x[xi];
                                if (dx != NULL)
                                    dx[xi] += g * l->p.w[wi];
                            }
                }
}
