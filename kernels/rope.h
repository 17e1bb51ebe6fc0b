/* rope.h — rotary position embedding (RoPE) in DeepSeek's interleaved-pair layout, with YaRN.
 *
 * Shapes: N rows (tokens), H heads per row, D rope dims per head (even), D/2 frequencies.
 * A head's rope vector x (D floats) has its pair i = (x[2i], x[2i+1]) rotated by the angle
 * pos·inv_freq[i] and scaled by attention_factor (transformers multiplies cos and sin by it).
 * The rope vectors may sit inside wider head vectors: see rope_forward. See rope.c for the math.
 */
#ifndef POSTTRAIN_KERNELS_ROPE_H
#define POSTTRAIN_KERNELS_ROPE_H

#include <stddef.h>

/* YaRN parameters, the `rope_scaling` / `rope_parameters` block of a DeepseekV3Config with
 * rope_type "yarn". A zero field means "absent" exactly where transformers treats the key as
 * absent (Python falsiness): factor 0 → max_position_embeddings / original_max_position_embeddings;
 * attention_factor 0 → inferred from factor, mscale, mscale_all_dim; beta_fast 0 → 32;
 * beta_slow 0 → 1; mscale / mscale_all_dim 0 → absent. truncate has no "absent" value: set it
 * (transformers' default is 1); rope_yarn_default() returns the defaults. */
typedef struct rope_yarn {
    double factor;                        /* context extension factor (≥ 1), or 0 */
    double attention_factor;              /* explicit cos/sin scale, or 0 = infer */
    double beta_fast;                     /* rotations at the extrapolation edge (32) */
    double beta_slow;                     /* rotations at the interpolation edge (1) */
    double mscale;                        /* numerator mscale of attention_factor, or 0 */
    double mscale_all_dim;                /* denominator mscale; also drives the softmax scale */
    int original_max_position_embeddings; /* pre-YaRN context length (4096 for V3) */
    int max_position_embeddings;          /* post-YaRN context length (only used when factor is 0) */
    int truncate;                         /* 1: floor/ceil the correction range (HF default) */
} rope_yarn;

/* transformers' defaults: beta_fast 32, beta_slow 1, truncate 1, everything else 0/absent. */
rope_yarn rope_yarn_default(void);

/* inv_freq (D/2) (=) and *attention_factor (=) for rope dim D = dim and base theta, exactly as
 * transformers computes them: DeepseekV3RotaryEmbedding.compute_default_rope_parameters when
 * yarn is NULL (attention_factor 1), _compute_yarn_parameters otherwise. Returns 0, or -1 with a
 * message in msg (msglen bytes; msg may be NULL) when the parameters cannot give finite
 * frequencies (odd or non-positive dim, theta ≤ 0 or 1, factor < 0, non-positive context
 * lengths, non-finite values); nothing is written then. */
int rope_inv_freq(float *inv_freq, float *attention_factor, int dim, float theta, const rope_yarn *yarn,
                  char *msg, size_t msglen);

/* Attention softmax scale as DeepseekV3Attention.scaling: qk_head_dim^-0.5, times mscale² with
 * mscale = 0.1·mscale_all_dim·ln(factor) + 1 when yarn is set, mscale_all_dim ≠ 0 and factor > 1
 * (factor resolved as in rope_inv_freq). qk_head_dim = qk_nope_head_dim + qk_rope_head_dim. */
float rope_softmax_scale(int qk_head_dim, const rope_yarn *yarn);

/* out (=) from inp: for each row n < N and head h < H, the D rope floats starting at
 * inp + (n·H + h)·stride are rotated by pos[n] (stride ≥ D, in floats; out uses the same
 * layout). For q laid out (N, H, nope+rope) pass inp = q + nope, stride = nope + rope; for the
 * shared k_pe inside kv_a's output (N, kv_lora + rope) pass inp = kv + kv_lora, H = 1,
 * stride = kv_lora + rope. Floats between the rope slices are neither read nor written.
 * out == inp (in place) is allowed; other overlaps are not. */
void rope_forward(float *out, const float *inp, const int *pos, const float *inv_freq, float attention_factor,
                  int N, int H, int stride, int D);

/* dinp (=) from dout: the transpose of rope_forward (rotation by −angle, same attention_factor),
 * same layout and arguments. dinp == dout (in place) is allowed. For the shared k_pe, sum the
 * heads' gradients first, then call this once with H = 1. */
void rope_backward(float *dinp, const float *dout, const int *pos, const float *inv_freq, float attention_factor,
                   int N, int H, int stride, int D);

#endif
