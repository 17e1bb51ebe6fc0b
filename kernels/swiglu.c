/* swiglu.c — SwiGLU forward and backward (act_fn(gate_proj(x)) * up_proj(x) in transformers'
 * DeepseekV3MLP, act_fn = silu).
 *
 * Shape legend: n elements (N rows × I intermediate channels, flattened).
 * Math, with σ(g) = 1/(1 + e^−g):
 *   out   = g·σ(g)·u
 *   dg   += dout·u·σ(g)·(1 + g·(1 − σ(g)))      (d silu/dg = σ + g·σ·(1 − σ))
 *   du   += dout·g·σ(g)
 * Invariants: σ is evaluated as 1/(1 + expf(−g)), which saturates cleanly to 0 or 1 for |g|
 * large (expf overflows to +inf → σ = 0, never NaN), so huge pre-activations give finite output.
 */
#include "kernels/swiglu.h"

#include <math.h>

static inline float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * sigmoidf(g) * up[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf(g), dy = dout[i];
        if (dgate) dgate[i] += dy * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dy * g * s;
    }
}
