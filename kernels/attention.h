/* attention.h — causal multi-head scaled-dot-product attention with separate query/key and value
 * head sizes (MLA: Dqk = qk_nope + qk_rope, Dv = v_head_dim) and optional packed-sequence
 * segments. Flash-style: the forward saves only the row log-sum-exp; the backward recomputes the
 * probabilities. See attention.c for the math.
 *
 * Shapes: B batch, T time, H heads.
 *   q, k (B, T, H, Dqk); v (B, T, H, Dv); out (B, T, H, Dv); lse (B, H, T);
 *   segment (B, T) ints or NULL (NULL = each batch row is one sequence).
 * Query t of batch b attends to keys s ≤ t with segment[b,s] == segment[b,t].
 */
#ifndef POSTTRAIN_KERNELS_ATTENTION_H
#define POSTTRAIN_KERNELS_ATTENTION_H

/* out (=), lse (=). scores = scale·q·k; out = softmax(scores)·v over the allowed keys;
 * lse[b,h,t] = log Σ_allowed exp(score). out must not alias q, k or v; inputs must be finite
 * (a masked key contributes exactly 0·v). */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *segment,
                       float scale, int B, int T, int H, int Dqk, int Dv);

/* dq, dk, dv (+=), from dout and the forward's out and lse. Any of dq, dk, dv may be NULL. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int *segment, float scale, int B,
                        int T, int H, int Dqk, int Dv);

/* Which implementation runs (attention.c): AUTO picks by shape and CPU, as the two calls above do;
 * LOOP and BLOCK force one (BLOCK falls back to LOOP on CPUs without AVX2 and FMA). The paths
 * round differently, so tests compare each with the reference; callers use AUTO. */
typedef enum attention_path { ATTENTION_PATH_AUTO, ATTENTION_PATH_LOOP, ATTENTION_PATH_BLOCK } attention_path;

void attention_forward_path(float *out, float *lse, const float *q, const float *k, const float *v,
                            const int *segment, float scale, int B, int T, int H, int Dqk, int Dv,
                            attention_path path);
void attention_backward_path(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *out, const float *lse, const int *segment, float scale,
                             int B, int T, int H, int Dqk, int Dv, attention_path path);

#endif
