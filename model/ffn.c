/* ffn.c — SwiGLU feed-forward forward and backward on the kernels of kernels/. */
#include "model/ffn.h"

#include <string.h>

#include "kernels/linear.h"
#include "kernels/swiglu.h"

void ffn_forward(float *y, float *g, float *u, float *s, const float *x, const float *w_gate, const float *w_up,
                 const float *w_down, int N, int C, int I) {
    if (N == 0) return;
    linear_forward(g, x, w_gate, NULL, N, C, I);
    linear_forward(u, x, w_up, NULL, N, C, I);
    swiglu_forward(s, g, u, (size_t)N * I);
    linear_forward(y, s, w_down, NULL, N, I, C);
}

void ffn_backward(float *dx, float *dw_gate, float *dw_up, float *dw_down, const float *dy, const float *x,
                  const float *g, const float *u, const float *s, const float *w_gate, const float *w_up,
                  const float *w_down, float *scratch, int N, int C, int I) {
    if (N == 0) return;
    size_t n = (size_t)N * I;
    float *ds = scratch, *dg = scratch + n, *du = scratch + 2 * n;
    memset(scratch, 0, 3 * n * sizeof *scratch);
    linear_backward(ds, dw_down, NULL, dy, s, w_down, N, I, C);
    swiglu_backward(dg, du, ds, g, u, n);
    linear_backward(dx, dw_gate, NULL, dg, x, w_gate, N, C, I);
    linear_backward(dx, dw_up, NULL, du, x, w_up, N, C, I);
}
