/* gemm.c — see gemm.h. */
#include "kernels/gemm.h"

#include <omp.h>
#include <pthread.h>
#include <stddef.h>

/* OpenBLAS exports this (both its pthread and OpenMP builds). */
void openblas_set_num_threads(int num_threads);

static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

static void set_single(void) { openblas_set_num_threads(1); }

void gemm_init_threads(void) { pthread_once(&gemm_once, set_single); }

/* Below this many multiply-adds a product runs on one thread. */
#define GEMM_PARALLEL_MIN ((double)(1 << 18))

void gemm_rows(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_init_threads();
    if (M <= 0 || N <= 0) return;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)M * N * K < GEMM_PARALLEL_MIN || M < 2 * threads) threads = 1;
    if (threads == 1) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Row blocks rounded to 8 rows so the micro-kernels see aligned panels. */
    int per = (M + threads - 1) / threads;
    per = (per + 7) & ~7;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        int m0 = t * per, m1 = m0 + per < M ? m0 + per : M;
        if (m0 >= m1) continue;
        const float *Ab = ta == CblasNoTrans ? A + (size_t)m0 * lda : A + m0;
        cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, N, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
    }
}
