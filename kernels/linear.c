/* linear.c — y = x·Wᵀ + b and its gradients, on OpenBLAS.
 *
 * Shape legend: N rows (B·T tokens), C input channels, OC output channels.
 * Math (torch.nn.Linear, weight stored [OC, C] as in Hugging Face checkpoints):
 *   out[n,o]   = Σ_c inp[n,c]·W[o,c] + b[o]
 *   dinp[n,c] += Σ_o dout[n,o]·W[o,c]          (dout · W,   one sgemm)
 *   dW[o,c]   += Σ_n dout[n,o]·inp[n,c]        (doutᵀ · inp, one sgemm)
 *   db[o]     += Σ_n dout[n,o]
 * GEMMs go through gemm_rows (kernels/gemm.h): single-threaded BLAS on row blocks per OpenMP
 * thread. Invariants: all buffers row-major and dense; backward only ever accumulates (beta = 1), so
 * gradient accumulation across micro-batches is the caller's zeroing policy, not ours. The bias
 * sum runs over rows in a fixed order per output channel, so results do not depend on the
 * thread count. Dimensions are ints (BLAS takes ints); offsets are computed in size_t.
 */
#include "kernels/linear.h"

#include "kernels/gemm.h"

#include <stddef.h>
#include <string.h>

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC) {
    if (N <= 0 || OC <= 0) return;
    size_t n = (size_t)N, oc = (size_t)OC;
    float beta = 0.0f;
    if (bias) {
        /* Start from the bias and let the GEMM add onto it. */
#pragma omp parallel for
        for (size_t i = 0; i < n; i++) memcpy(out + i * oc, bias, oc * sizeof(float));
        beta = 1.0f;
    }
    if (C <= 0) {
        if (!bias) memset(out, 0, n * oc * sizeof(float));
        return;
    }
    gemm_rows(CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

/* Column blocks for the bias reduction: each thread owns whole output channels, so the sum
 * over rows is race-free and its order is fixed. */
enum { LINEAR_BIAS_BLOCK = 256 };

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C > 0 && dinp)
        gemm_rows(CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (C > 0 && dweight)
        gemm_rows(CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        size_t n = (size_t)N, oc = (size_t)OC;
        size_t nblocks = (oc + LINEAR_BIAS_BLOCK - 1) / LINEAR_BIAS_BLOCK;
#pragma omp parallel for
        for (size_t blk = 0; blk < nblocks; blk++) {
            size_t o0 = blk * LINEAR_BIAS_BLOCK;
            size_t o1 = o0 + LINEAR_BIAS_BLOCK < oc ? o0 + LINEAR_BIAS_BLOCK : oc;
            for (size_t i = 0; i < n; i++) {
                const float *row = dout + i * oc;
                for (size_t o = o0; o < o1; o++) dbias[o] += row[o];
            }
        }
    }
}
