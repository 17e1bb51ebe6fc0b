/* fp8_linear.c — see fp8_linear.h. Each K group is one single-threaded-inside sgemm over the
 * group's 128 columns (gemm_rows splits rows across threads, so a row's value does not depend on
 * the thread count); beta = 1 adds the group into the running fp32 sum. */
#include "kernels/fp8_linear.h"

#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"

size_t fp8_linear_ws_floats(int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return 0;
    return (size_t)N * C + (size_t)OC * C + (size_t)N * OC;
}

void fp8_linear_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                        const fp8_scaling *s, float *ws) {
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {
        memset(out, 0, (size_t)N * OC * sizeof *out);
        return;
    }
    float *xq = ws, *wq = ws + (size_t)N * C;
    fp8_fake_quantize(xq, inp, N, C, 1, FP8_TILE, s);
    fp8_fake_quantize(wq, weight, OC, C, FP8_TILE, FP8_TILE, s);
    for (int k0 = 0; k0 < C; k0 += FP8_TILE) {
        int kg = C - k0 < FP8_TILE ? C - k0 : FP8_TILE;
        gemm_rows(CblasNoTrans, CblasTrans, N, OC, kg, 1.0f, xq + k0, C, wq + k0, C, k0 ? 1.0f : 0.0f, out, OC);
    }
}

void fp8_linear_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         int N, int C, int OC, const fp8_scaling *s, float *ws) {
    if (N <= 0 || OC <= 0 || C <= 0) return;
    float *xq = ws, *wq = ws + (size_t)N * C, *dq = wq + (size_t)OC * C;
    if (dinp) {
        fp8_fake_quantize(dq, dout, N, OC, 1, FP8_TILE, s);
        fp8_fake_quantize(wq, weight, OC, C, FP8_TILE, FP8_TILE, s);
        for (int k0 = 0; k0 < OC; k0 += FP8_TILE) {
            int kg = OC - k0 < FP8_TILE ? OC - k0 : FP8_TILE;
            gemm_rows(CblasNoTrans, CblasNoTrans, N, C, kg, 1.0f, dq + k0, OC, wq + (size_t)k0 * C, C, 1.0f,
                      dinp, C);
        }
    }
    if (dweight) {
        fp8_fake_quantize(dq, dout, N, OC, FP8_TILE, 1, s);
        /* The forward's 1×128 tiles, re-tiled along N (in place: each tile is read before written). */
        fp8_fake_quantize(xq, inp, N, C, 1, FP8_TILE, s);
        fp8_fake_quantize(xq, xq, N, C, FP8_TILE, 1, s);
        for (int k0 = 0; k0 < N; k0 += FP8_TILE) {
            int kg = N - k0 < FP8_TILE ? N - k0 : FP8_TILE;
            gemm_rows(CblasTrans, CblasNoTrans, OC, C, kg, 1.0f, dq + (size_t)k0 * OC, OC, xq + (size_t)k0 * C, C, 1.0f,
                      dweight, C);
        }
    }
}
