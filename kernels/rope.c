/* rope.c — RoPE forward/backward in DeepSeek's interleaved-pair layout, and the YaRN parameters.
 *
 * Shape legend: N rows (tokens), H heads, D rope dims (even), i < D/2 frequency index.
 * Forward (DeepSeek-V3 reference `apply_rotary_emb`; transformers' apply_rotary_pos_emb_interleave
 * computes the same numbers and stores them de-interleaved, [evens | odds], which is a fixed
 * permutation applied to q and k alike, so every q·k is unchanged):
 *   a_i = fl32(pos · inv_freq_i)                (the angle rounded to fp32, as both references)
 *   c_i = fl32(cos a_i)·af,  s_i = fl32(sin a_i)·af   (af = attention_factor, HF scales cos/sin)
 *   y_2i   = x_2i·c_i − x_2i+1·s_i
 *   y_2i+1 = x_2i+1·c_i + x_2i·s_i
 * Backward (the transpose, i.e. rotation by −a_i with the same af):
 *   dx_2i   = dy_2i·c_i + dy_2i+1·s_i
 *   dx_2i+1 = dy_2i+1·c_i − dy_2i·s_i
 * Frequencies (transformers 5, modeling_rope_utils._compute_yarn_parameters), computed in fp32
 * in torch's operation order so the result is within an ulp or two of torch's:
 *   p_i = theta^(2i/D);  extrap_i = 1/p_i;  interp_i = 1/(factor·p_i)
 *   corr(r) = D·ln(L_orig / (2π r)) / (2 ln theta);  lo = corr(beta_fast), hi = corr(beta_slow)
 *     (floor/ceil when truncate), clamped to [0, D−1]; hi += 0.001 when lo == hi
 *   ramp_i = clamp((i − lo)/(hi − lo), 0, 1);  e_i = 1 − ramp_i
 *   inv_freq_i = interp_i·(1 − e_i) + extrap_i·e_i
 *   attention_factor = m(factor, mscale)/m(factor, mscale_all_dim) when both are non-zero,
 *     else m(factor, 1);  m(s, k) = 1 if s ≤ 1 else 0.1·k·ln s + 1
 * and the softmax scale (modeling_deepseek_v3.yarn_apply_mscale) uses m(factor, mscale_all_dim)².
 * Note the factor used is the explicit `factor`; max_position_embeddings/original is only the
 * fallback when factor is absent (HF does the same and warns when they disagree).
 * Invariants: rows are independent (parallel over rows, race-free); the floats of a row outside
 * its H rope slices are never touched; out == inp is safe because each pair is read before it
 * is written.
 */
#include "kernels/rope.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

rope_yarn rope_yarn_default(void) {
    rope_yarn y = {0};
    y.beta_fast = 32.0;
    y.beta_slow = 1.0;
    y.truncate = 1;
    return y;
}

static int rope_fail(char *msg, size_t msglen, const char *fmt, ...) {
    if (msg && msglen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* transformers' get_mscale / yarn_get_mscale. */
static double rope_yarn_mscale(double scale, double mscale) {
    if (scale <= 1.0) return 1.0;
    return 0.1 * mscale * log(scale) + 1.0;
}

/* The factor transformers uses: the explicit one, else the ratio of the context lengths. */
static double rope_yarn_factor(const rope_yarn *yarn) {
    if (yarn->factor != 0.0) return yarn->factor;
    return (double)yarn->max_position_embeddings / (double)yarn->original_max_position_embeddings;
}

/* find_correction_dim: the dimension whose wavelength makes `rotations` turns over L positions. */
static double rope_correction_dim(double rotations, int dim, double theta, int max_pos) {
    const double two_pi = 6.283185307179586;
    return ((double)dim * log((double)max_pos / (rotations * two_pi))) / (2.0 * log(theta));
}

/* theta^(2i/dim) in fp32, as torch's `base ** (arange(0, dim, 2).float() / dim)`. */
static float rope_pos_freq(float theta, int i, int dim) {
    float e = (float)(2 * i) / (float)dim;
    return (float)pow((double)theta, (double)e);
}

int rope_inv_freq(float *inv_freq, float *attention_factor, int dim, float theta, const rope_yarn *yarn,
                  char *msg, size_t msglen) {
    if (dim <= 0 || dim % 2 != 0)
        return rope_fail(msg, msglen, "rope dim must be a positive even number (qk_rope_head_dim), got %d", dim);
    if (!isfinite(theta) || theta <= 0.0f || theta == 1.0f)
        return rope_fail(msg, msglen, "rope_theta must be finite, positive and not 1, got %g", (double)theta);
    int half = dim / 2;
    if (!yarn) {
        for (int i = 0; i < half; i++) inv_freq[i] = 1.0f / rope_pos_freq(theta, i, dim);
        *attention_factor = 1.0f;
        return 0;
    }

    if (yarn->original_max_position_embeddings <= 0)
        return rope_fail(msg, msglen,
                         "rope_scaling.original_max_position_embeddings must be positive, got %d (DeepSeek-V3 "
                         "uses 4096)",
                         yarn->original_max_position_embeddings);
    if (yarn->factor == 0.0 && yarn->max_position_embeddings <= 0)
        return rope_fail(msg, msglen,
                         "rope_scaling.factor is absent, so max_position_embeddings must be positive to derive "
                         "it, got %d",
                         yarn->max_position_embeddings);
    double factor = rope_yarn_factor(yarn);
    if (!isfinite(factor) || factor <= 0.0)
        return rope_fail(msg, msglen, "rope_scaling.factor must be a finite number > 0 (normally ≥ 1), got %g",
                         factor);
    if (!isfinite(yarn->beta_fast) || !isfinite(yarn->beta_slow) || yarn->beta_fast < 0.0 ||
        yarn->beta_slow < 0.0)
        return rope_fail(msg, msglen, "rope_scaling.beta_fast/beta_slow must be finite and ≥ 0, got %g/%g",
                         yarn->beta_fast, yarn->beta_slow);
    if (!isfinite(yarn->mscale) || !isfinite(yarn->mscale_all_dim) || !isfinite(yarn->attention_factor) ||
        yarn->attention_factor < 0.0)
        return rope_fail(msg, msglen,
                         "rope_scaling.mscale/mscale_all_dim must be finite and attention_factor finite and "
                         "≥ 0, got %g/%g/%g",
                         yarn->mscale, yarn->mscale_all_dim, yarn->attention_factor);

    double af = yarn->attention_factor;
    if (af == 0.0) {
        if (yarn->mscale != 0.0 && yarn->mscale_all_dim != 0.0)
            af = rope_yarn_mscale(factor, yarn->mscale) / rope_yarn_mscale(factor, yarn->mscale_all_dim);
        else
            af = rope_yarn_mscale(factor, 1.0);
    }
    if (!isfinite(af))
        return rope_fail(msg, msglen, "rope_scaling gives a non-finite attention factor (mscale %g / %g)",
                         yarn->mscale, yarn->mscale_all_dim);

    double beta_fast = yarn->beta_fast != 0.0 ? yarn->beta_fast : 32.0;
    double beta_slow = yarn->beta_slow != 0.0 ? yarn->beta_slow : 1.0;
    int orig = yarn->original_max_position_embeddings;
    double lo = rope_correction_dim(beta_fast, dim, (double)theta, orig);
    double hi = rope_correction_dim(beta_slow, dim, (double)theta, orig);
    if (yarn->truncate) {
        lo = floor(lo);
        hi = ceil(hi);
    }
    if (lo < 0.0) lo = 0.0;
    if (hi > (double)(dim - 1)) hi = (double)(dim - 1);
    if (lo == hi) hi += 0.001; /* HF: "prevent singularity" */
    /* torch: (arange(half).float() − lo) / (hi − lo), with both Python scalars cast to fp32. */
    float lo_f = (float)lo, span_f = (float)(hi - lo);
    float factor_f = (float)factor;
    for (int i = 0; i < half; i++) {
        float p = rope_pos_freq(theta, i, dim);
        float extrap = 1.0f / p;
        float interp = 1.0f / (factor_f * p);
        float ramp = ((float)i - lo_f) / span_f;
        ramp = ramp < 0.0f ? 0.0f : (ramp > 1.0f ? 1.0f : ramp);
        float e = 1.0f - ramp;
        float a = interp * (1.0f - e);
        float b = extrap * e;
        inv_freq[i] = a + b;
    }
    *attention_factor = (float)af;
    return 0;
}

float rope_softmax_scale(int qk_head_dim, const rope_yarn *yarn) {
    double scale = pow((double)qk_head_dim, -0.5);
    if (yarn && yarn->mscale_all_dim != 0.0) {
        double m = rope_yarn_mscale(rope_yarn_factor(yarn), yarn->mscale_all_dim);
        scale = scale * m * m;
    }
    return (float)scale;
}

/* cos/sin of pos·inv_freq_i, scaled: the fp32 angle, then cos/sin, then × af (HF's order). */
static void rope_cos_sin(float *c, float *s, int pos, float inv_freq, float attention_factor) {
    float angle = (float)pos * inv_freq;
    *c = (float)cos((double)angle) * attention_factor;
    *s = (float)sin((double)angle) * attention_factor;
}

void rope_forward(float *out, const float *inp, const int *pos, const float *inv_freq, float attention_factor,
                  int N, int H, int stride, int D) {
    int half = D / 2;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < half; i++) {
            float c, s;
            rope_cos_sin(&c, &s, pos[n], inv_freq[i], attention_factor);
            for (int h = 0; h < H; h++) {
                size_t at = ((size_t)n * (size_t)H + (size_t)h) * (size_t)stride + 2 * (size_t)i;
                float x0 = inp[at], x1 = inp[at + 1];
                float y0 = x0 * c - x1 * s;
                float y1 = x1 * c + x0 * s;
                out[at] = y0;
                out[at + 1] = y1;
            }
        }
    }
}

void rope_backward(float *dinp, const float *dout, const int *pos, const float *inv_freq, float attention_factor,
                   int N, int H, int stride, int D) {
    int half = D / 2;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        for (int i = 0; i < half; i++) {
            float c, s;
            rope_cos_sin(&c, &s, pos[n], inv_freq[i], attention_factor);
            for (int h = 0; h < H; h++) {
                size_t at = ((size_t)n * (size_t)H + (size_t)h) * (size_t)stride + 2 * (size_t)i;
                float g0 = dout[at], g1 = dout[at + 1];
                float d0 = g0 * c + g1 * s;
                float d1 = g1 * c - g0 * s;
                dinp[at] = d0;
                dinp[at + 1] = d1;
            }
        }
    }
}
