/* rmsnorm.c — RMSNorm forward and backward (DeepseekV3RMSNorm in transformers).
 *
 * Shape legend: N rows (B·T tokens), C channels; strides in floats.
 * Forward, per row x (HF computes in fp32: variance = x.pow(2).mean(-1); x·rsqrt(variance+eps);
 * then weight · that):
 *   r = 1 / sqrt(Σ_c x_c² / C + eps)          (saved as rstd)
 *   y_c = (x_c · r) · w_c                      (that rounding order, as HF)
 * The sum of squares is accumulated in double and rounded once, so the statistic is within an
 * fp32 ulp of the exact value for any C (torch's cascaded fp32 sum agrees to a few ulps).
 * Backward, with g_c = dy_c·w_c:
 *   dr/dx_k = −r³·x_k / C
 *   dx_k   += r·(g_k − x_k·r²·(Σ_c g_c·x_c)/C)
 *   dw_c   += Σ_rows dy_c·x_c·r
 * Invariants: rows are independent (parallel over rows); dweight is reduced per channel block by
 * one thread each, in row order, so it is race-free and independent of the thread count.
 */
#include "kernels/rmsnorm.h"

#include <math.h>
#include <stddef.h>

void rmsnorm_forward_strided(float *out, float *rstd, const float *inp, const float *weight, float eps, int N,
                             int C, int out_stride, int inp_stride) {
    size_t c = C > 0 ? (size_t)C : 0;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * (size_t)inp_stride;
        float *y = out + (size_t)i * (size_t)out_stride;
        double ss = 0.0;
        for (size_t j = 0; j < c; j++) ss += (double)x[j] * x[j];
        float ms = c ? (float)(ss / (double)c) : 0.0f;
        float r = 1.0f / sqrtf(ms + eps);
        rstd[i] = r;
        for (size_t j = 0; j < c; j++) y[j] = (x[j] * r) * weight[j];
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int N, int C) {
    rmsnorm_forward_strided(out, rstd, inp, weight, eps, N, C, C, C);
}

enum { RMSNORM_DW_BLOCK = 64 };

void rmsnorm_backward_strided(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C, int dinp_stride,
                              int dout_stride, int inp_stride) {
    if (N <= 0 || C <= 0) return;
    size_t c = (size_t)C;
    if (dinp) {
#pragma omp parallel for
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * (size_t)inp_stride;
            const float *dy = dout + (size_t)i * (size_t)dout_stride;
            float *dx = dinp + (size_t)i * (size_t)dinp_stride;
            float r = rstd[i];
            double gx = 0.0; /* Σ_c dy_c·w_c·x_c */
            for (size_t j = 0; j < c; j++) gx += (double)(dy[j] * weight[j]) * x[j];
            float k = (float)(gx / (double)c) * r * r;
            for (size_t j = 0; j < c; j++) dx[j] += r * (dy[j] * weight[j] - x[j] * k);
        }
    }
    if (dweight) {
        size_t nblocks = (c + RMSNORM_DW_BLOCK - 1) / RMSNORM_DW_BLOCK;
#pragma omp parallel for
        for (size_t blk = 0; blk < nblocks; blk++) {
            size_t j0 = blk * RMSNORM_DW_BLOCK;
            size_t j1 = j0 + RMSNORM_DW_BLOCK < c ? j0 + RMSNORM_DW_BLOCK : c;
            for (int i = 0; i < N; i++) {
                const float *x = inp + (size_t)i * (size_t)inp_stride;
                const float *dy = dout + (size_t)i * (size_t)dout_stride;
                float r = rstd[i];
                for (size_t j = j0; j < j1; j++) dweight[j] += dy[j] * x[j] * r;
            }
        }
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    rmsnorm_backward_strided(dinp, dweight, dout, inp, weight, rstd, N, C, C, C, C);
}
