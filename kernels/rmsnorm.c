/* rmsnorm.c — RMSNorm forward and backward (DeepseekV3RMSNorm in transformers).
 *
 * Shape legend: N rows (B·T tokens), C channels; strides in floats.
 * Forward, per row x (HF computes in fp32: variance = x.pow(2).mean(-1); x·rsqrt(variance+eps);
 * then weight · that):
 *   r = 1 / sqrt(Σ_c x_c² / C + eps)          (saved as rstd)
 *   y_c = (x_c · r) · w_c                      (that rounding order, as HF)
 * The sum of squares runs in fp32 over blocks of 64 (4 lanes of 16 terms) and the block sums in
 * double, so the statistic is within a few fp32 ulps of the exact value for any C (torch's
 * cascaded fp32 sum agrees to a few ulps).
 * Backward, with g_c = dy_c·w_c:
 *   dr/dx_k = −r³·x_k / C
 *   dx_k   += r·(g_k − x_k·r²·(Σ_c g_c·x_c)/C)
 *   dw_c   += Σ_rows dy_c·x_c·r
 * Speed: the row sums run on 4-float vectors (vec4.h) instead of one add chain, which needs no
 * -ffast-math. When both gradients are wanted the backward reads each row once: rows go in at
 * most RMSNORM_GROUPS groups, each group sums its dweight contribution into its own scratch row
 * while it writes dinp, and the groups are added per channel in group order (two barriers per
 * call, so a preempted thread on a busy machine stalls the other only once). With one gradient
 * alone (or when the scratch cannot be allocated) dinp is one pass over rows and dweight another
 * over channel blocks, each block summing all rows in a local array before adding it once.
 * Invariants: rows are independent (parallel over rows); every dweight sum runs in an order
 * fixed by N and C (rows within a group, then groups; or rows within a channel block), so it is
 * race-free and independent of the thread count.
 */
#include "kernels/rmsnorm.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "kernels/vec4.h"

enum { RMSNORM_SUM_BLOCK = 64 }; /* elements per fp32 partial sum of the row statistics */

/* Σ_j A_j·b_j with A_j = a_j (w NULL) or the float product a_j·w_j (the backward's g_j = dy_j·w_j):
 * fp32 vector lanes over blocks of RMSNORM_SUM_BLOCK (16 terms per lane), each block's sum added
 * to a double. The order depends only on n. */
static double rmsnorm_dot(const float *a, const float *w, const float *b, size_t n) {
    double s = 0.0;
    for (size_t j0 = 0; j0 < n; j0 += RMSNORM_SUM_BLOCK) {
        size_t j1 = j0 + RMSNORM_SUM_BLOCK < n ? j0 + RMSNORM_SUM_BLOCK : n, j = j0;
        vec4 acc = vec4_splat(0.0f);
        if (w)
            for (; j + VEC4_W <= j1; j += VEC4_W) acc += vec4_load(a + j) * vec4_load(w + j) * vec4_load(b + j);
        else
            for (; j + VEC4_W <= j1; j += VEC4_W) acc += vec4_load(a + j) * vec4_load(b + j);
        if (j < j1) {
            vec4 x = vec4_load_tail(a + j, j1 - j, 0.0f);
            if (w) x *= vec4_load_tail(w + j, j1 - j, 0.0f);
            acc += x * vec4_load_tail(b + j, j1 - j, 0.0f);
        }
        s += vec4_hsum(acc);
    }
    return s;
}

void rmsnorm_forward_strided(float *out, float *rstd, const float *inp, const float *weight, float eps, int N,
                             int C, int out_stride, int inp_stride) {
    size_t c = C > 0 ? (size_t)C : 0;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * (size_t)inp_stride;
        float *y = out + (size_t)i * (size_t)out_stride;
        double ss = rmsnorm_dot(x, NULL, x, c);
        float ms = c ? (float)(ss / (double)c) : 0.0f;
        float r = 1.0f / sqrtf(ms + eps);
        rstd[i] = r;
#pragma omp simd /* no dependence across j, even in place (y == x) */
        for (size_t j = 0; j < c; j++) y[j] = (x[j] * r) * weight[j];
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int N, int C) {
    rmsnorm_forward_strided(out, rstd, inp, weight, eps, N, C, C, C);
}

enum {
    RMSNORM_DW_BLOCK = 64,   /* channels per dweight task (two-pass backward and the final reduction) */
    RMSNORM_GROUPS = 64,     /* at most this many row groups in the fused backward */
    RMSNORM_GROUP_ROWS = 16, /* and at least this many rows per group */
};

/* The fused backward: dinp (+=) and dweight (+=) in one pass over the rows. Rows go in a number
 * of groups fixed by N (not by the thread count); each group sums its dweight contribution into
 * its own row of scratch, then each channel block adds the groups in group order. Returns 0 when
 * the scratch cannot be allocated (the caller then takes the two-pass backward). */
static int rmsnorm_backward_fused(float *dinp, float *dweight, const float *dout, const float *inp,
                                  const float *weight, const float *rstd, int N, size_t c, int dinp_stride,
                                  int dout_stride, int inp_stride) {
    int ngroups = (N + RMSNORM_GROUP_ROWS - 1) / RMSNORM_GROUP_ROWS;
    ngroups = ngroups < RMSNORM_GROUPS ? ngroups : RMSNORM_GROUPS;
    int rows = (N + ngroups - 1) / ngroups;
    float *part = calloc((size_t)ngroups * c, sizeof(float)); /* (ngroups, C) */
    if (!part) return 0;
    size_t nblocks = (c + RMSNORM_DW_BLOCK - 1) / RMSNORM_DW_BLOCK;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int g = 0; g < ngroups; g++) {
            float *acc = part + (size_t)g * c;
            int i1 = (g + 1) * rows < N ? (g + 1) * rows : N;
            for (int i = g * rows; i < i1; i++) {
                const float *x = inp + (size_t)i * (size_t)inp_stride, *dy = dout + (size_t)i * (size_t)dout_stride;
                const float *w = weight;
                float *dx = dinp + (size_t)i * (size_t)dinp_stride;
                float r = rstd[i];
                float k = (float)(rmsnorm_dot(dy, w, x, c) / (double)c) * r * r;
#pragma omp simd /* elementwise in j: no dependence across j */
                for (size_t j = 0; j < c; j++) {
                    dx[j] += r * (dy[j] * w[j] - x[j] * k);
                    acc[j] += dy[j] * x[j] * r;
                }
            }
        }
#pragma omp for schedule(static)
        for (size_t blk = 0; blk < nblocks; blk++) {
            size_t j0 = blk * RMSNORM_DW_BLOCK, nj = j0 + RMSNORM_DW_BLOCK < c ? RMSNORM_DW_BLOCK : c - j0;
            float sum[RMSNORM_DW_BLOCK] = {0};
            for (int g = 0; g < ngroups; g++) {
                const float *restrict pg = part + (size_t)g * c + j0;
#pragma omp simd
                for (size_t j = 0; j < nj; j++) sum[j] += pg[j];
            }
            for (size_t j = 0; j < nj; j++) dweight[j0 + j] += sum[j];
        }
    }
    free(part);
    return 1;
}

void rmsnorm_backward_strided(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C, int dinp_stride,
                              int dout_stride, int inp_stride) {
    if (N <= 0 || C <= 0) return;
    size_t c = (size_t)C;
    if (dinp && dweight &&
        rmsnorm_backward_fused(dinp, dweight, dout, inp, weight, rstd, N, c, dinp_stride, dout_stride, inp_stride))
        return;
    if (dinp) {
#pragma omp parallel for
        for (int i = 0; i < N; i++) {
            const float *x = inp + (size_t)i * (size_t)inp_stride;
            const float *dy = dout + (size_t)i * (size_t)dout_stride;
            float *dx = dinp + (size_t)i * (size_t)dinp_stride;
            float r = rstd[i];
            double gx = rmsnorm_dot(dy, weight, x, c); /* Σ_c dy_c·w_c·x_c */
            float k = (float)(gx / (double)c) * r * r;
            for (size_t j = 0; j < c; j++) dx[j] += r * (dy[j] * weight[j] - x[j] * k);
        }
    }
    if (dweight) {
        size_t nblocks = (c + RMSNORM_DW_BLOCK - 1) / RMSNORM_DW_BLOCK;
#pragma omp parallel for
        for (size_t blk = 0; blk < nblocks; blk++) {
            size_t j0 = blk * RMSNORM_DW_BLOCK;
            size_t nj = j0 + RMSNORM_DW_BLOCK < c ? RMSNORM_DW_BLOCK : c - j0;
            float acc[RMSNORM_DW_BLOCK] = {0};
            for (int i = 0; i < N; i++) {
                const float *restrict x = inp + (size_t)i * (size_t)inp_stride + j0;
                const float *restrict dy = dout + (size_t)i * (size_t)dout_stride + j0;
                float r = rstd[i];
#pragma omp simd
                for (size_t j = 0; j < nj; j++) acc[j] += dy[j] * x[j] * r;
            }
            for (size_t j = 0; j < nj; j++) dweight[j0 + j] += acc[j];
        }
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    rmsnorm_backward_strided(dinp, dweight, dout, inp, weight, rstd, N, C, C, C, C);
}
