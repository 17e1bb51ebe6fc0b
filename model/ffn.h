/* ffn.h — the SwiGLU feed-forward block y = down(silu(gate(x)) ⊙ up(x)) used by the dense MLP,
 * the shared experts and each routed expert (DeepseekV3MLP). Shapes: N rows, C model width,
 * I hidden width; weights gate/up (I, C), down (C, I).
 */
#ifndef POSTTRAIN_MODEL_FFN_H
#define POSTTRAIN_MODEL_FFN_H

#include "model/precision.h"

/* y (N, C) (=); g, u, s (N, I) saved for the backward. The three linears run in precision p
 * (model/precision.h). */
void ffn_forward(float *y, float *g, float *u, float *s, const float *x, const float *w_gate, const float *w_up,
                 const float *w_down, int N, int C, int I, model_precision p);

/* dx (N, C) and the weight gradients ACCUMULATE (+=); dx may be NULL. scratch holds 3·N·I
 * floats. */
void ffn_backward(float *dx, float *dw_gate, float *dw_up, float *dw_down, const float *dy, const float *x,
                  const float *g, const float *u, const float *s, const float *w_gate, const float *w_up,
                  const float *w_down, float *scratch, int N, int C, int I, model_precision p);

#endif
