#include "conv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "gemm.h"
#include "par.h"
#include "relu.h"
#include "tile.h"

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
    l->ks = kern_active();
    l->threads = par_threads();
    l->fwd = conv_direct_ok(l, 0) ? CONV_DIRECT : CONV_GEMM;
    l->dx = conv_direct_ok(l, 1) ? CONV_DIRECT : CONV_GEMM;
    l->dw = conv_direct_ok(l, 2) ? CONV_DIRECT : CONV_GEMM;
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
                        int c, float *cols, long ci0, long ci1)
{
    const long hw = (long)l->hin * l->win, ncols = (long)c * hw;
    for (int ci = (int)ci0; ci < ci1; ci++)
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
                        int c, float *dx, long ci0, long ci1)
{
    const long hw = (long)l->hin * l->win, ncols = (long)c * hw;
    for (int ci = (int)ci0; ci < ci1; ci++)
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

/* The rows of input channels [ci0, ci1) of im2col below. */
static void im2col_rows(const conv_layer *l, const float *x, int n, int i0,
                        int c, float *cols, long ci0, long ci1)
{
    if (is_same_stride1(l)) {
        im2col_same(l, x, n, i0, c, cols, ci0, ci1);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const long ncols = (long)c * hw_out;
    for (int ci = (int)ci0; ci < ci1; ci++)
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

/* The planes of input channels [ci0, ci1) of col2im below. */
static void col2im_rows(const conv_layer *l, float *cols, int n, int i0,
                        int c, float *dx, long ci0, long ci1)
{
    if (is_same_stride1(l)) {
        col2im_same(l, cols, n, i0, c, dx, ci0, ci1);
        return;
    }
    const int hw_in = l->hin * l->win, hw_out = l->hout * l->wout;
    const long ncols = (long)c * hw_out;
    for (int ci = (int)ci0; ci < ci1; ci++)
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

/* Runs fn over the range [0, total) on the training threads (par_range),
 * or on this one alone when the pool has grown past the threads l's
 * workspace was sized for. */
static void conv_par_range(const conv_layer *l, long total, long min_chunk,
                           par_range_fn fn, void *ctx)
{
    if (par_threads() <= l->threads)
        par_range(total, min_chunk, fn, ctx);
    else
        fn(ctx, 0, total);
}

/* im2col and col2im shared over the training threads by input channel:
 * each channel's patch rows, and its planes of dx, are its own. */
typedef struct {
    const conv_layer *l;
    const float *x;
    float *cols, *dx;
    int n, i0, c;
} col_job;

static void im2col_range(void *ctx, long ci0, long ci1)
{
    const col_job *j = ctx;
    im2col_rows(j->l, j->x, j->n, j->i0, j->c, j->cols, ci0, ci1);
}

static void col2im_range(void *ctx, long ci0, long ci1)
{
    const col_job *j = ctx;
    col2im_rows(j->l, j->cols, j->n, j->i0, j->c, j->dx, ci0, ci1);
}

/* cols (cin*k*k, c*hout*wout) <- the patches of images [i0, i0+c). */
static void im2col(const conv_layer *l, const float *x, int n, int i0, int c,
                   float *cols)
{
    col_job j = {.l = l, .x = x, .cols = cols, .n = n, .i0 = i0, .c = c};
    conv_par_range(l, l->cin, 1, im2col_range, &j);
}

/* dx of images [i0, i0+c) += the patches in cols, summed back in place.
 * cols is scratch and may be modified. */
static void col2im(const conv_layer *l, float *cols, int n, int i0, int c,
                   float *dx)
{
    col_job j = {.l = l, .cols = cols, .dx = dx, .n = n, .i0 = i0, .c = c};
    conv_par_range(l, l->cin, 1, col2im_range, &j);
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
 * The loops themselves are the kernel set's (kern.h); here they are fed:
 * weights transposed so that output channels are contiguous, the images
 * shared out over the training threads, the input gradient run as the
 * forward pass of the transposed geometry. */

/* With stride 1 and same padding, dL/dx is itself a same-padded convolution
 * of dL/dy, with input and output channels swapped and the kernel rotated
 * by 180 degrees. */
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

int conv_direct_ok(const conv_layer *l, int pass)
{
    int a, b;
    if (l->ks == NULL)
        return 0;
    if (pass == 0)
        return l->ks->fwd_plan(l, &a, &b);
    if (pass == 1) {
        conv_layer t = transposed_geometry(l);
        return l->ks->fwd_plan(&t, &a, &b);
    }
    return l->ks->dw_plan(l, &a, &b) > 0;
}

/* Runs fn over tasks on the training threads, or on this one alone when
 * the pool has grown past the threads l's workspace was sized for. */
static void conv_par(const conv_layer *l, int tasks, par_fn fn, void *ctx)
{
    if (par_threads() <= l->threads) {
        par_for(tasks, fn, ctx);
        return;
    }
    for (int t = 0; t < tasks; t++)
        fn(ctx, t, 0);
}

static size_t direct_floats(const conv_layer *l)
{
    const size_t wt = (size_t)l->cin * l->k * l->k * l->cout;
    size_t need = 0;
    if (l->fwd == CONV_DIRECT)
        need = wt + (size_t)l->threads * l->ks->fwd_floats(l);
    if (l->dx == CONV_DIRECT) {
        conv_layer t = transposed_geometry(l);
        size_t b = wt + (size_t)l->threads * l->ks->fwd_floats(&t);
        need = b > need ? b : need;
    }
    return need;
}

typedef struct {
    const conv_layer *l;
    const float *wt, *bias, *mask, *x;
    float *y, *xp;
    int relu, n;
    size_t xp_floats;
} fwd_job;

/* Tasks of contiguous images (or planes): a 7x7 plane is 196 bytes, so
 * neighbouring images share cache lines in every channel, and two threads
 * writing them in turn would pass those lines back and forth.  A few runs
 * per thread meet at few boundaries and still balance the load. */
#define CONV_RUNS_PER_THREAD 4

static int runs(long count)
{
    long r = (long)par_threads() * CONV_RUNS_PER_THREAD;
    return (int)(r < count ? r : count);
}

static long run_start(long count, int nruns, int run)
{
    return count * run / nruns;
}

static void fwd_task(void *ctx, int run, int thread)
{
    fwd_job *j = ctx;
    const int nruns = runs(j->n);
    for (long img = run_start(j->n, nruns, run);
         img < run_start(j->n, nruns, run + 1); img++)
        j->l->ks->fwd_image(j->l, j->wt, j->bias, j->relu, j->mask, j->x,
                            j->y, j->n, (int)img,
                            j->xp + (size_t)thread * j->xp_floats);
}

/* y = conv(x) with the geometry of l, weights wt (cin, k, k, cout), bias
 * (may be NULL), an optional ReLU and an optional mask (fwd_image); xp:
 * room for l->threads padded images. */
static void direct_run(const conv_layer *l, const float *wt,
                       const float *bias, int relu, const float *mask,
                       const float *x, float *y, int n, float *xp)
{
    fwd_job j = {.l = l, .wt = wt, .bias = bias, .mask = mask, .x = x,
                 .y = y, .xp = xp, .relu = relu, .n = n,
                 .xp_floats = l->ks->fwd_floats(l)};
    conv_par(l, runs(n), fwd_task, &j);
}

/* The weights rearranged for the direct kernels: (cin, k, k, cout)
 * forward, or rotated by 180 degrees with input and output channels
 * swapped, (cout, k, k, cin), for the input gradient.  Each chunk writes
 * whole rows of the result, so no two threads write the same cache line. */
typedef struct {
    const conv_layer *l;
    float *wt;
    int rotated;
} wt_job;

static void wt_range(void *ctx, long lo, long hi)
{
    const wt_job *j = ctx;
    const conv_layer *l = j->l;
    const int k = l->k, cin = l->cin, cout = l->cout;
    if (!j->rotated) {
        /* row t = (ci, ky, kx) holds every output channel */
        for (long t = lo; t < hi; t++)
            for (int co = 0; co < cout; co++)
                j->wt[t * cout + co] = l->p.w[(long)co * cin * k * k + t];
        return;
    }
    /* row r = (co, a, b) holds every input channel */
    for (long r = lo; r < hi; r++) {
        const long co = r / (k * k), a = r / k % k, b = r % k;
        for (int ci = 0; ci < cin; ci++)
            j->wt[r * cin + ci] =
                l->p.w[((co * cin + ci) * k + (k - 1 - a)) * k + (k - 1 - b)];
    }
}

/* Rows under which a chunk of the rearrangement is not worth a thread. */
#define WT_MIN_ROWS 64

static void rearrange(const conv_layer *l, float *wt, int rotated)
{
    wt_job j = {.l = l, .wt = wt, .rotated = rotated};
    const long rows = rotated ? (long)l->cout * l->k * l->k
                              : (long)l->cin * l->k * l->k;
    conv_par_range(l, rows, WT_MIN_ROWS, wt_range, &j);
}

static void conv_forward_direct(const conv_layer *l, const float *x,
                                float *y, int n, float *ws)
{
    const int k = l->k, cout = l->cout, cin = l->cin;
    rearrange(l, ws, 0);
    direct_run(l, ws, l->p.b, l->relu_after, NULL, x, y, n,
               ws + (size_t)cin * k * k * cout);
}

static void conv_input_grad_direct(const conv_layer *l, const float *dy,
                                   float *dx, int n, float *ws)
{
    const int k = l->k, cout = l->cout, cin = l->cin;
    conv_layer t = transposed_geometry(l);
    rearrange(l, ws, 1);
    direct_run(&t, ws, NULL, 0, l->dx_mask, dy, dx, n,
               ws + (size_t)cin * k * k * cout);
}

/* The weight gradient on the direct path: dw[co][ci][ky][kx] sums
 * dy[co] x (the input shifted by the tap) over every pixel of the batch.
 * Output channels go in vector lanes, so dy is first transposed to
 * (n, h*w, cout) and x padded.  The kernel set's tasks write disjoint parts
 * of dw; when there are fewer of them than twice the threads (the first
 * layer, with one input channel), the images are cut into slices as well,
 * each summed into its own copy of dw and added in slice order. */
static int dw_slices(const conv_layer *l, int n)
{
    int cv, kr, tasks = l->ks->dw_plan(l, &cv, &kr);
    if (l->threads <= 1 || tasks <= 0 || tasks >= 2 * l->threads)
        return 1;
    int s = (2 * l->threads + tasks - 1) / tasks;
    return s < n ? s : n;
}

static size_t direct_dw_floats(const conv_layer *l, int n)
{
    if (l->dw != CONV_DIRECT)
        return 0;
    size_t hp = (size_t)l->hin + 2 * l->pad, wp = (size_t)l->win + 2 * l->pad;
    return (size_t)l->cin * n * hp * wp +
           (size_t)n * l->hout * l->wout * l->cout +
           (size_t)(dw_slices(l, n) - 1) * l->p.nw;
}

typedef struct {
    const conv_layer *l;
    const float *x, *dy;
    float *xpad, *dyt, *partial;
    int n, tasks, slices;
} dw_job;

static void dw_pad_task(void *ctx, int run, int thread)
{
    dw_job *j = ctx;
    const conv_layer *l = j->l;
    const int hp = l->hin + 2 * l->pad, wp = l->win + 2 * l->pad;
    const long planes = (long)l->cin * j->n;
    const int nruns = runs(planes);
    for (long pl = run_start(planes, nruns, run);
         pl < run_start(planes, nruns, run + 1); pl++) {
        float *d = j->xpad + pl * hp * wp;
        const float *s = j->x + pl * l->hin * l->win;
        memset(d, 0, sizeof(float) * (size_t)hp * wp);
        for (int iy = 0; iy < l->hin; iy++)
            memcpy(d + (long)(iy + l->pad) * wp + l->pad,
                   s + (long)iy * l->win, sizeof(float) * (size_t)l->win);
    }
}

static void dw_transpose_task(void *ctx, int img, int thread)
{
    dw_job *j = ctx;
    const conv_layer *l = j->l;
    const long hw = (long)l->hout * l->wout, ld = (long)j->n * hw;
    const int cout = l->cout;
    const float *src = j->dy + (long)img * hw;   /* plane co at co * ld */
    float *dst = j->dyt + (long)img * hw * cout; /* pixel p at p * cout */
    /* 4 x 4 tiles (the direct path has channels in whole vectors, so cout
     * is a multiple of 4), then the pixels past the last whole tile. */
    const long p4 = hw & ~3L;
    for (int co = 0; co < cout; co += 4) {
        for (long p = 0; p < p4; p += 4)
            tile_transpose4(src + co * ld + p, ld, dst + p * cout + co, cout);
        for (int c = co; c < co + 4; c++)
            for (long p = p4; p < hw; p++)
                dst[p * cout + c] = src[c * ld + p];
    }
}

static void dw_compute_task(void *ctx, int t, int thread)
{
    dw_job *j = ctx;
    const int slice = t / j->tasks, task = t % j->tasks;
    const int i0 = (int)((long)j->n * slice / j->slices);
    const int i1 = (int)((long)j->n * (slice + 1) / j->slices);
    float *dw = slice == 0 ? j->l->p.dw
                           : j->partial + (size_t)(slice - 1) * j->l->p.nw;
    j->l->ks->dw_task(j->l, j->xpad, j->dyt, j->n, i0, i1, task, dw);
}

static void conv_weight_grad_direct(conv_layer *l, const float *x,
                                    const float *dy, int n, float *ws)
{
    const int hp = l->hin + 2 * l->pad, wp = l->win + 2 * l->pad;
    int cv, kr;
    dw_job j = {.l = l, .x = x, .dy = dy, .n = n,
                .tasks = l->ks->dw_plan(l, &cv, &kr),
                .slices = dw_slices(l, n)};
    j.xpad = ws;                                       /* (cin, n, hp, wp) */
    j.dyt = ws + (size_t)l->cin * n * hp * wp;         /* (n, hw, cout) */
    j.partial = j.dyt + (size_t)n * l->hout * l->wout * l->cout;
    if (j.slices > 1)
        memset(j.partial, 0,
               sizeof(float) * (size_t)(j.slices - 1) * l->p.nw);
    conv_par(l, runs((long)l->cin * n), dw_pad_task, &j);
    conv_par(l, n, dw_transpose_task, &j);
    conv_par(l, j.tasks * j.slices, dw_compute_task, &j);
    for (int s = 1; s < j.slices; s++)
        for (long i = 0; i < l->p.nw; i++)
            l->p.dw[i] += j.partial[(size_t)(s - 1) * l->p.nw + i];
}

void conv_forward(const conv_layer *l, const float *x, float *y, int n,
                  float *ws)
{
    if (l->fwd == CONV_DIRECT) {
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

typedef struct {
    const float *dy;
    float *db;
    long ld;
} db_job;

static void db_task(void *ctx, int co, int thread)
{
    (void)thread;
    db_job *j = ctx;
    j->db[co] += row_sum(j->dy + co * j->ld, j->ld);
}

void conv_backward(conv_layer *l, const float *x, const float *y,
                   const float *dy, float *dx, int n, float *ws)
{
    (void)y;
    db_job j = {.dy = dy, .db = l->p.db, .ld = (long)n * l->hout * l->wout};
    conv_par(l, l->cout, db_task, &j);
    if (l->dw == CONV_DIRECT)
        conv_weight_grad_direct(l, x, dy, n, ws);
    else
        weight_grad_gemm(l, x, dy, n, ws);
    if (dx == NULL)
        return;
    if (l->dx == CONV_DIRECT) {
        conv_input_grad_direct(l, dy, dx, n, ws);
    } else {
        input_grad_gemm(l, dy, dx, n, ws);
        if (l->dx_mask != NULL) {
            /* the folded ReLU's backward pass, in place */
            relu_layer r = {.size = (long)l->cin * l->hin * l->win};
            relu_backward(&r, NULL, l->dx_mask, dx, dx, n, NULL);
        }
    }
}

void conv_update(conv_layer *l, const sgd_step *s)
{
    sgd_update(&l->p, s);
}

/* ---- choosing the algorithm ------------------------------------------- */

/* Images per timed pass: enough to rank the two algorithms, and at most
 * CONV_TUNE_MACS multiply-adds, so that a slow CPU spends well under a
 * second on a whole net, CaffeNet's included. */
#define CONV_TUNE_IMAGES 8
#define CONV_TUNE_MACS 4e7
/* Timed runs of each algorithm per pass; the fastest counts, which is the
 * figure least disturbed by other work on the machine. */
#define CONV_TUNE_REPEATS 5
/* im2col + sgemm replaces a direct pass only below this fraction of its
 * time: on near ties the choice stays the same from run to run (and so do
 * the numbers it computes), and a burst of noise on a busy machine does not
 * move a pass onto the path that shares out worse over threads. */
#define CONV_TUNE_MARGIN 0.9
#define CONV_TUNE_CACHE 64

typedef struct {
    int cin, cout, k, stride, pad, hin, win, n, threads;
    const kern_set *ks;
    conv_algo fwd, dx, dw;
} tune_entry;

static struct {
    pthread_mutex_t lock;
    int count;
    tune_entry e[CONV_TUNE_CACHE];
} tune_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int same_key(const tune_entry *t, const conv_layer *l, int n)
{
    return t->cin == l->cin && t->cout == l->cout && t->k == l->k &&
           t->stride == l->stride && t->pad == l->pad && t->hin == l->hin &&
           t->win == l->win && t->n == n && t->threads == l->threads &&
           t->ks == l->ks;
}

/* Seconds of one run of one pass with algo. */
static double time_once(conv_layer *l, int pass, conv_algo algo,
                        const float *x, float *y, const float *dy, float *dx,
                        int n, float *ws)
{
    double t0 = clock_mono_s();
    if (pass == 0) {
        l->fwd = algo;
        conv_forward(l, x, y, n, ws);
    } else if (pass == 1) {
        if (algo == CONV_DIRECT)
            conv_input_grad_direct(l, dy, dx, n, ws);
        else
            input_grad_gemm(l, dy, dx, n, ws);
    } else {
        if (algo == CONV_DIRECT)
            conv_weight_grad_direct(l, x, dy, n, ws);
        else
            weight_grad_gemm(l, x, dy, n, ws);
    }
    return clock_mono_s() - t0;
}

/* The fastest of CONV_TUNE_REPEATS runs of each algorithm, the two taking
 * turns, so that a spell of other work on the machine slows both and
 * cannot decide alone.  Run 0 of each warms the caches. */
static void time_pass(conv_layer *l, int pass, const float *x, float *y,
                      const float *dy, float *dx, int n, float *ws,
                      double *direct, double *sgemm)
{
    *direct = *sgemm = 1e30;
    for (int r = 0; r <= CONV_TUNE_REPEATS; r++) {
        double d = time_once(l, pass, CONV_DIRECT, x, y, dy, dx, n, ws);
        double g = time_once(l, pass, CONV_GEMM, x, y, dy, dx, n, ws);
        if (r > 0 && d < *direct)
            *direct = d;
        if (r > 0 && g < *sgemm)
            *sgemm = g;
    }
}

/* Times both algorithms of every pass the direct path runs, on copies of
 * l's geometry with buffers of its own. */
static int tune_measure(const conv_layer *l, conv_algo out[3])
{
    conv_layer t = *l;
    const double fit = CONV_TUNE_MACS / conv_macs(l);
    const int n = fit >= CONV_TUNE_IMAGES ? CONV_TUNE_IMAGES
                                          : fit >= 1.0 ? (int)fit : 1;
    const size_t nx = (size_t)l->cin * n * l->hin * l->win;
    const size_t ny = (size_t)l->cout * n * l->hout * l->wout;
    const size_t nws = conv_workspace_floats(&t, n);
    float *buf = malloc(sizeof(float) *
                        (2 * nx + 2 * ny + nws + 2 * (size_t)l->p.nw + 2 * (size_t)l->p.nb));
    if (buf == NULL)
        return TFQ_ENOMEM;
    float *x = buf, *dx = x + nx, *y = dx + nx, *dy = y + ny, *ws = dy + ny;
    t.p.w = ws + nws;
    t.p.dw = t.p.w + l->p.nw;
    t.p.b = t.p.dw + l->p.nw;
    t.p.db = t.p.b + l->p.nb;
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < ny; i++)
        dy[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    for (long i = 0; i < l->p.nw; i++)
        t.p.w[i] = (float)((i * 31) % 100) * 1e-2f - 0.5f;
    memset(t.p.dw, 0, sizeof(float) * (size_t)(l->p.nw + 2 * l->p.nb));
    t.relu_after = 0;
    for (int pass = 0; pass < 3; pass++) {
        out[pass] = CONV_GEMM;
        if (!conv_direct_ok(l, pass))
            continue;
        out[pass] = CONV_DIRECT;
        double direct, sgemm;
        time_pass(&t, pass, x, y, dy, dx, n, ws, &direct, &sgemm);
        if (sgemm < CONV_TUNE_MARGIN * direct)
            out[pass] = CONV_GEMM;
        log_debug("conv %dx%dx%d -> %d k%d, %s, %d threads: %s: direct "
                  "%.3f ms, im2col+sgemm %.3f ms", l->cin, l->hin, l->win,
                  l->cout, l->k, l->ks->name, l->threads,
                  pass == 0 ? "forward" : pass == 1 ? "input grad"
                                                    : "weight grad",
                  direct * 1e3, sgemm * 1e3);
    }
    free(buf);
    return 0;
}

int conv_check_env(tfq_error *e)
{
    const char *mode = getenv("TFQ_CONV_ALGO");
    if (mode == NULL || mode[0] == '\0' || strcmp(mode, "auto") == 0 ||
        strcmp(mode, "direct") == 0 || strcmp(mode, "gemm") == 0)
        return 0;
    return tfq_error_set(e, TFQ_EINVAL,
                         "TFQ_CONV_ALGO=%s: expected auto, direct or gemm",
                         mode);
}

int conv_tune(conv_layer *l, int n)
{
    const char *mode = getenv("TFQ_CONV_ALGO");
    if (mode != NULL && strcmp(mode, "gemm") == 0) {
        l->fwd = l->dx = l->dw = CONV_GEMM;
        return 0;
    }
    if (mode != NULL && strcmp(mode, "direct") == 0)
        return 0; /* conv_init's choice: direct wherever it runs */
    if (!conv_direct_ok(l, 0) && !conv_direct_ok(l, 1) &&
        !conv_direct_ok(l, 2))
        return 0;
    pthread_mutex_lock(&tune_cache.lock);
    for (int i = 0; i < tune_cache.count; i++)
        if (same_key(&tune_cache.e[i], l, n)) {
            l->fwd = tune_cache.e[i].fwd;
            l->dx = tune_cache.e[i].dx;
            l->dw = tune_cache.e[i].dw;
            pthread_mutex_unlock(&tune_cache.lock);
            return 0;
        }
    conv_algo a[3];
    int rc = tune_measure(l, a);
    if (rc == 0) {
        l->fwd = a[0];
        l->dx = a[1];
        l->dw = a[2];
        tune_entry *t = &tune_cache.e[tune_cache.count < CONV_TUNE_CACHE
                                          ? tune_cache.count++
                                          : CONV_TUNE_CACHE - 1];
        *t = (tune_entry){l->cin, l->cout, l->k, l->stride, l->pad, l->hin,
                          l->win, n, l->threads, l->ks, a[0], a[1], a[2]};
    }
    pthread_mutex_unlock(&tune_cache.lock);
    return rc;
}

void conv_describe(const conv_layer *l, int needs_dx, char *buf,
                   size_t bytes)
{
    char part[3][48];
    for (int pass = 0; pass < 3; pass++) {
        conv_algo a = pass == 0 ? l->fwd : pass == 1 ? l->dx : l->dw;
        int cv = 0, b = 0;
        if (pass == 1 && !needs_dx) {
            snprintf(part[pass], sizeof part[pass], "not needed");
            continue;
        }
        if (a != CONV_DIRECT) {
            snprintf(part[pass], sizeof part[pass], "im2col+sgemm");
            continue;
        }
        if (pass == 0) {
            l->ks->fwd_plan(l, &cv, &b);
        } else if (pass == 1) {
            conv_layer t = transposed_geometry(l);
            l->ks->fwd_plan(&t, &cv, &b);
        } else {
            l->ks->dw_plan(l, &cv, &b);
        }
        if (pass < 2)
            snprintf(part[pass], sizeof part[pass], "direct %d px x %d vec",
                     b, cv);
        else
            snprintf(part[pass], sizeof part[pass], "direct %d row x %d vec",
                     b, cv);
    }
    snprintf(buf, bytes, "%dx%dx%d -> %d k%d s%d: forward %s, input grad %s, "
             "weight grad %s", l->cin, l->hin, l->win, l->cout, l->k,
             l->stride, part[0], part[1], part[2]);
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
