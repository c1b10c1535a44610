#include "gemm.h"

#include <cblas.h>

#include "par.h"

/* Multiply-adds under which a product runs on one thread: below this the
 * hand-out costs more than the second core gains. */
#define GEMM_PAR_MIN_MACS (256.0 * 1024)

typedef struct {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, split_n, parts;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

static void sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta,
                  float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
                b, ldb, beta, c, ldc);
}

/* Part p of the product: a band of C's columns (split_n) or rows, cut at
 * multiples of 16 so every part keeps whole vector widths. */
static void gemm_part(void *ctx, int p, int thread)
{
    (void)thread;
    const gemm_job *j = ctx;
    const int len = j->split_n ? j->n : j->m;
    int lo = (int)((long)len * p / j->parts) & ~15;
    int hi = p + 1 == j->parts ? len : (int)((long)len * (p + 1) / j->parts) & ~15;
    if (hi <= lo)
        return;
    if (j->split_n)
        sgemm(j->trans_a, j->trans_b, j->m, hi - lo, j->k, j->alpha, j->a,
              j->lda, j->trans_b ? j->b + (long)lo * j->ldb : j->b + lo,
              j->ldb, j->beta, j->c + lo, j->ldc);
    else
        sgemm(j->trans_a, j->trans_b, hi - lo, j->n, j->k, j->alpha,
              j->trans_a ? j->a + lo : j->a + (long)lo * j->lda, j->lda,
              j->b, j->ldb, j->beta, j->c + (long)lo * j->ldc, j->ldc);
}

void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
          const float *a, int lda, const float *b, int ldb, float beta,
          float *c, int ldc)
{
    const int threads = par_threads();
    if (threads == 1 || (double)m * n * k < GEMM_PAR_MIN_MACS ||
        (m < 32 && n < 32)) {
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job j = {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n,
                  .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
                  .split_n = n >= m, .alpha = alpha, .beta = beta, .a = a,
                  .b = b, .c = c};
    const int len = j.split_n ? n : m;
    j.parts = len / 16 < threads ? (len / 16 > 0 ? len / 16 : 1) : threads;
    par_for(j.parts, gemm_part, &j);
}

void gemm_naive(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta,
                float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(long)p * lda + i] : a[(long)i * lda + p];
                float bv = trans_b ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                acc += (double)av * (double)bv;
            }
            float *cij = &c[(long)i * ldc + j];
            *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0 : beta * *cij));
        }
    }
}

void gemm_set_threads(int threads)
{
    (void)threads;
    /* OpenBLAS's own threads stay unused: their spinning after each call
     * would take the cores from the engine's pool. */
    openblas_set_num_threads(1);
}
