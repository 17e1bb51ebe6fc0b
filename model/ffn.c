/* ffn.c — SwiGLU feed-forward forward and backward on the kernels of kernels/, its linears in the
 * requested precision (model/precision.h). */
#include "model/ffn.h"

#include <string.h>

#include "kernels/swiglu.h"

void ffn_forward(float *y, float *g, float *u, float *s, const float *x, const float *w_gate, const float *w_up,
                 const float *w_down, int N, int C, int I, model_precision p) {
    if (N == 0) return;
    precision_linear_forward(p, g, x, w_gate, N, C, I);
    precision_linear_forward(p, u, x, w_up, N, C, I);
    swiglu_forward(s, g, u, (size_t)N * I);
    precision_linear_forward(p, y, s, w_down, N, I, C);
}

void ffn_backward(float *dx, float *dw_gate, float *dw_up, float *dw_down, const float *dy, const float *x,
                  const float *g, const float *u, const float *s, const float *w_gate, const float *w_up,
                  const float *w_down, float *scratch, int N, int C, int I, model_precision p) {
    if (N == 0) return;
    size_t n = (size_t)N * I;
    float *ds = scratch, *dg = scratch + n, *du = scratch + 2 * n;
    memset(scratch, 0, 3 * n * sizeof *scratch);
    precision_linear_backward(p, ds, dw_down, dy, s, w_down, N, I, C);
    swiglu_backward(dg, du, ds, g, u, n);
    precision_linear_backward(p, dx, dw_gate, dg, x, w_gate, N, C, I);
    precision_linear_backward(p, dx, dw_up, du, x, w_up, N, C, I);
}
