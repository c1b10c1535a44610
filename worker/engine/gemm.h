/* Matrix products for the layers: OpenBLAS sgemm, shared out over the
 * engine's threads (par.h) in bands of C, and the slow, obvious reference
 * it is tested against.  Row-major throughout:
 * C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C. */
#ifndef TFQ_ENGINE_GEMM_H
#define TFQ_ENGINE_GEMM_H

/* Large products are shared out over the engine's threads (par.h), each
 * running single-threaded sgemm on a band of C. */
void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
          const float *a, int lda, const float *b, int ldb, float beta,
          float *c, int ldc);

void gemm_naive(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta,
                float *c, int ldc);

/* Keeps OpenBLAS on one thread per call: gemm shares products out over
 * the engine's threads instead. */
void gemm_set_threads(int threads);

#endif
