/* moe.h — Mixture-of-Experts primitives: top-k selection, the routing plan, and the gather /
 * weighted scatter-add that move token rows into and out of an expert-sorted buffer.
 *
 * Shapes: N tokens, E experts, K experts per token, C channels. A (token t, slot k) pair is
 * flat index t·K + k; the expert-sorted buffer has N·K rows, expert 0's rows first, tokens in
 * ascending order within an expert. See moe.c for the math.
 */
#ifndef POSTTRAIN_KERNELS_MOE_H
#define POSTTRAIN_KERNELS_MOE_H

#include <stddef.h>

/* idx (N, K) (=) the K largest scores of each row of scores (N, E), in descending order, ties
 * broken by the lower expert index; val (N, K) (=) those scores (val may be NULL). NaN ranks
 * below every number (−inf included). Requires 1 ≤ K ≤ E. */
void moe_topk(int *idx, float *val, const float *scores, int N, int E, int K);

/* dscores (N, E) (+=): dscores[t, idx[t,k]] += dval[t,k]. The backward of moe_topk's val, and
 * of any "take scores at idx" (the router's weights s at the experts chosen on s + bias). */
void moe_topk_backward(float *dscores, const float *dval, const int *idx, int N, int E, int K);

/* The routing plan: where each (token, slot) goes in the expert-sorted buffer. All arrays live
 * in one caller-provided int buffer of moe_plan_ints(N, E, K) ints; nothing is allocated. */
typedef struct moe_plan {
    int N, E, K;
    int *counts;   /* (E)    rows routed to each expert */
    int *offsets;  /* (E+1)  first row of each expert; offsets[E] = N·K */
    int *row_of;   /* (N·K)  row of pair t·K + k */
    int *token_of; /* (N·K)  token of each row */
    int *slot_of;  /* (N·K)  slot k of each row (its weight is weights[token_of·K + slot_of]) */
} moe_plan;

/* Ints needed for a plan: E + (E+1) + 3·N·K. */
size_t moe_plan_ints(int N, int E, int K);

/* plan (=) from idx (N, K) with every idx in [0, E) (a token may list an expert twice: it then
 * gets two rows). Points plan's arrays into buf (moe_plan_ints(N, E, K) ints). Rows of expert e
 * are offsets[e] .. offsets[e+1]−1, ordered by token, then slot (a stable counting sort). */
void moe_plan_build(moe_plan *plan, int *buf, const int *idx, int N, int E, int K);

/* xs (N·K, C) (=): xs[row] = x[token_of[row]]. x is (N, C). */
void moe_gather_forward(float *xs, const float *x, const moe_plan *plan, int C);

/* dx (N, C) (+=): dx[t] += Σ_k dxs[row_of[t·K + k]], summed per token in slot order (race-free,
 * deterministic for any thread count). */
void moe_gather_backward(float *dx, const float *dxs, const moe_plan *plan, int C);

/* out (N, C) (+=): out[t] += Σ_k weights[t,k]·ys[row_of[t·K + k]], slots in order. ys is
 * (N·K, C), weights (N, K). Accumulating lets the shared experts' output (or the residual) be
 * written first. */
void moe_scatter_forward(float *out, const float *ys, const float *weights, const moe_plan *plan, int C);

/* dys (N·K, C) (=): dys[row_of[t·K+k]] = weights[t,k]·dout[t];
 * dweights (N, K) (+=): dweights[t,k] += dout[t]·ys[row_of[t·K+k]] (dot accumulated in double).
 * Either output may be NULL. */
void moe_scatter_backward(float *dys, float *dweights, const float *dout, const float *ys, const float *weights,
                          const moe_plan *plan, int C);

#endif
