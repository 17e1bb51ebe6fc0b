/* gemm.h — how posttrain runs BLAS: single-threaded inside, parallel over row blocks outside.
 *
 * OpenBLAS's own thread pool and posttrain's OpenMP threads spin against each other on small
 * machines, and the thread hand-off of a threaded sgemm dominates the many small GEMMs of MoE
 * experts and batched decode (measured: 10–20× slower generation on 2 cores). So BLAS is set to
 * one thread (once, process-wide) and gemm_rows splits the M rows of a large product into one
 * block per OpenMP thread, each a plain single-threaded sgemm. Each output row is computed by one
 * sgemm over the full K, so its value does not depend on how the rows were split.
 */
#ifndef POSTTRAIN_KERNELS_GEMM_H
#define POSTTRAIN_KERNELS_GEMM_H

#include <cblas.h>

/* Idempotent and thread-safe; every gemm_rows call makes it. */
void gemm_init_threads(void);

/* C (M, N) = alpha·op(A)·op(B) + beta·C, row-major, as cblas_sgemm; rows of C split across
 * OpenMP threads when the product is large enough to pay for it. */
void gemm_rows(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

#endif
