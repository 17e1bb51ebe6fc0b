/* crossentropy.c — softmax cross-entropy, log-probabilities and entropy over a vocabulary.
 *
 * Shape legend: N rows (tokens), V vocabulary.
 * Forward, per row z with m = max_j z_j (subtracted first, so logits like 1e4 never overflow):
 *   s = Σ_j e^(z_j − m),  t = Σ_j e^(z_j − m)·(z_j − m)          (fp32 blocks, summed in double)
 *   lse = m + log s,   logp = z_target − lse
 *   H = −Σ p_j log p_j = −Σ p_j (z_j − lse) = lse − m − t/s = log s − t/s
 * so logp and H come from two streaming passes (max, then s and t) with no probability matrix.
 * Terms with e^(z_j − m) = 0 (e.g. z_j = −inf) contribute 0 to t rather than 0·(−inf) = NaN.
 * Backward, with p_j = e^(z_j − lse):
 *   d logp / dz_j = 1[j = target] − p_j
 *   dH / dz_j     = −p_j (log p_j + H)
 * (from dp_k/dz_j = p_k(δ_kj − p_j): dH/dz_j = −Σ_k p_k(δ_kj − p_j)(log p_k + 1)
 *  = −p_j(log p_j + 1) + p_j Σ_k p_k(log p_k + 1) = −p_j(log p_j + 1) + p_j(1 − H)).
 * Speed: every loop over the vocabulary works on 4-float vectors with e^x inline (vec4.h: the
 * same code and rounding on every CPU, ≤ 2 ulp). The row's tail goes through the same vector
 * code on a padded copy. The forward's sums run in fp32 lanes over blocks of CE_BLOCK logits
 * and are added to double accumulators once per block (each lane sums 16 terms of ≤ 1, so the
 * fp32 part costs ~1e-7 relative).
 * Invariants: rows are independent (parallel over rows); the backward only adds into dlogits.
 * Every sum runs in an order fixed by V, so results do not depend on the thread count.
 * Temperature is applied by the caller (z = logits/τ) so this kernel has a single meaning.
 */
#include "kernels/crossentropy.h"

#include <math.h>
#include <stddef.h>

#include "kernels/vec4.h"

enum { CE_BLOCK = 64 }; /* logits per fp32 partial sum of the forward */

/* max_j z_j; s = Σ e^(z_j − m), t = Σ e^(z_j − m)·(z_j − m) (0 where the exponential is 0). */
static void ce_row_sums(float *m_out, double *s_out, double *t_out, const float *z, size_t v) {
    vec4 vm = vec4_splat(-INFINITY);
    size_t full = v / VEC4_W * VEC4_W;
    for (size_t j = 0; j < full; j += VEC4_W) {
        vec4 x = vec4_load(z + j);
        vm = vec4_select(x > vm, x, vm);
    }
    if (full < v) {
        vec4 x = vec4_load_tail(z + full, v - full, -INFINITY);
        vm = vec4_select(x > vm, x, vm);
    }
    float m = vm[0];
    for (int u = 1; u < VEC4_W; u++) m = vm[u] > m ? vm[u] : m;
    double s = 0.0, t = 0.0;
    for (size_t j0 = 0; j0 < v; j0 += CE_BLOCK) {
        size_t j1 = j0 + CE_BLOCK < v ? j0 + CE_BLOCK : v;
        vec4 sb = vec4_splat(0.0f), tb = sb;
        for (size_t j = j0; j < j1; j += VEC4_W) {
            vec4 d = (j + VEC4_W <= v ? vec4_load(z + j) : vec4_load_tail(z + j, v - j, -INFINITY)) - m;
            vec4 e = vec4_exp(d), ed = e * d;
            sb += e;
            tb += vec4_select(e > 0.0f, ed, vec4_splat(0.0f)); /* skip 0·(−inf) */
        }
        s += vec4_hsum(sb);
        t += vec4_hsum(tb);
    }
    *m_out = m, *s_out = s, *t_out = t;
}

void crossentropy_forward(float *loss, float *logp, float *entropy, float *lse, const float *logits,
                          const int *targets, const float *mask, int N, int V) {
    size_t v = V > 0 ? (size_t)V : 0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * v;
        float m;
        double s, t;
        ce_row_sums(&m, &s, &t, z, v);
        double lse_i = (double)m + log(s);
        lse[i] = (float)lse_i;
        if (entropy) entropy[i] = (float)(log(s) - t / s);
        int tg = targets[i];
        float lp;
        if (tg < 0) lp = 0.0f;
        else if ((size_t)tg >= v) lp = NAN;
        else lp = (float)((double)z[tg] - lse_i);
        if (logp) logp[i] = lp;
        if (loss) loss[i] = tg < 0 ? 0.0f : -(mask ? mask[i] : 1.0f) * lp;
    }
}

/* One row: dz_j += a·(1[j = tg] − p_j) − b·p_j·(log p_j + H). */
static void crossentropy_row_backward(float *dz, const float *z, int tg, float a, float b, float lse, float H,
                                      size_t v) {
    if (a == 0.0f && b == 0.0f) return;
    for (size_t j = 0; j < v; j += VEC4_W) {
        size_t n = v - j < VEC4_W ? v - j : VEC4_W;
        vec4 lp = (n == VEC4_W ? vec4_load(z + j) : vec4_load_tail(z + j, n, -INFINITY)) - lse;
        vec4 p = vec4_exp(lp), dHp = -p * (lp + H);
        vec4 dH = vec4_select(p > 0.0f, dHp, vec4_splat(0.0f)); /* p = 0 (z = −inf): no entropy term */
        vec4 g = -a * p + b * dH;
        if (n == VEC4_W)
            vec4_store(dz + j, vec4_load(dz + j) + g);
        else
            vec4_store_tail(dz + j, vec4_load_tail(dz + j, n, 0.0f) + g, n);
    }
    if (tg >= 0 && (size_t)tg < v) dz[tg] += a;
}

void crossentropy_backward(float *dlogits, const float *dlogp, const float *dentropy, const float *logits,
                           const int *targets, const float *lse, const float *entropy, int N, int V) {
    size_t v = V > 0 ? (size_t)V : 0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        int tg = targets[i];
        int valid = tg >= 0 && (size_t)tg < v;
        float a = (dlogp && valid) ? dlogp[i] : 0.0f;
        float b = dentropy ? dentropy[i] : 0.0f;
        float H = dentropy ? entropy[i] : 0.0f;
        crossentropy_row_backward(dlogits + (size_t)i * v, logits + (size_t)i * v, tg, a, b, lse[i], H, v);
    }
}

void crossentropy_loss_backward(float *dlogits, const float *dloss, const float *logits, const int *targets,
                                const float *mask, const float *lse, int N, int V) {
    size_t v = V > 0 ? (size_t)V : 0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        int tg = targets[i];
        if (tg < 0 || (size_t)tg >= v) continue;
        float a = -dloss[i] * (mask ? mask[i] : 1.0f);
        crossentropy_row_backward(dlogits + (size_t)i * v, logits + (size_t)i * v, tg, a, 0.0f, lse[i], 0.0f, v);
    }
}
