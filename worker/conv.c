#include "conv.h"

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

size_t conv_workspace_floats(const conv_layer *l)
{
    return block_floats(l) + dwt_floats(l);
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

void conv_forward(const conv_layer *l, const float *x, float *y, int n,
                  float *ws)
{
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

void conv_backward(conv_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)y;
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const int kdim = l->cin * l->k * l->k;
    const long ld = (long)n * hw_out;
    /* OpenBLAS runs dW^T = cols dy^T (a tall, narrow product) about 10%
     * faster than dW = dy cols^T; it is summed here and added at the end. */
    float *dwt = ws + block_floats(l); /* (kdim, cout) */
    memset(dwt, 0, sizeof(float) * dwt_floats(l));
    for (int i0 = 0; i0 < n; i0 += l->chunk) {
        int c = n - i0 < l->chunk ? n - i0 : l->chunk;
        int cols = c * hw_out;
        const float *dyc = dy + (long)i0 * hw_out;
        im2col(l, x, n, i0, c, ws);
        gemm(0, 1, kdim, l->cout, cols, 1.0f, ws, cols, dyc, (int)ld, 1.0f,
             dwt, l->cout);
        for (int co = 0; co < l->cout; co++)
            l->p.db[co] += row_sum(dyc + co * ld, cols);
        if (dx == NULL)
            continue;
        gemm(1, 0, kdim, cols, l->cout, 1.0f, l->p.w, kdim, dyc, (int)ld,
             0.0f, ws, cols);
        for (int ci = 0; ci < l->cin; ci++)
            memset(dx + ((long)ci * n + i0) * hw_in, 0,
                   sizeof(float) * (size_t)c * hw_in);
        col2im(l, ws, n, i0, c, dx);
    }
    for (int co = 0; co < l->cout; co++)
        for (int k = 0; k < kdim; k++)
            l->p.dw[(long)co * kdim + k] += dwt[(long)k * l->cout + co];
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
