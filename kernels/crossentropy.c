/* crossentropy.c — softmax cross-entropy, log-probabilities and entropy over a vocabulary.
 *
 * Shape legend: N rows (tokens), V vocabulary.
 * Forward, per row z with m = max_j z_j (subtracted first, so logits like 1e4 never overflow):
 *   s = Σ_j e^(z_j − m),  t = Σ_j e^(z_j − m)·(z_j − m)          (accumulated in double)
 *   lse = m + log s,   logp = z_target − lse
 *   H = −Σ p_j log p_j = −Σ p_j (z_j − lse) = lse − m − t/s = log s − t/s
 * so logp and H come from two streaming passes (max, then s and t) with no probability matrix.
 * Terms with e^(z_j − m) = 0 (e.g. z_j = −inf) contribute 0 to t rather than 0·(−inf) = NaN.
 * Backward, with p_j = e^(z_j − lse):
 *   d logp / dz_j = 1[j = target] − p_j
 *   dH / dz_j     = −p_j (log p_j + H)
 * (from dp_k/dz_j = p_k(δ_kj − p_j): dH/dz_j = −Σ_k p_k(δ_kj − p_j)(log p_k + 1)
 *  = −p_j(log p_j + 1) + p_j Σ_k p_k(log p_k + 1) = −p_j(log p_j + 1) + p_j(1 − H)).
 * Invariants: rows are independent (parallel over rows); the backward only adds into dlogits.
 * Temperature is applied by the caller (z = logits/τ) so this kernel has a single meaning.
 */
#include "kernels/crossentropy.h"

#include <math.h>
#include <stddef.h>

void crossentropy_forward(float *loss, float *logp, float *entropy, float *lse, const float *logits,
                          const int *targets, const float *mask, int N, int V) {
    size_t v = V > 0 ? (size_t)V : 0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *z = logits + (size_t)i * v;
        float m = -INFINITY;
        for (size_t j = 0; j < v; j++) m = z[j] > m ? z[j] : m;
        double s = 0.0, t = 0.0;
        for (size_t j = 0; j < v; j++) {
            float d = z[j] - m;
            float e = expf(d);
            s += e;
            t += e > 0.0f ? (double)e * d : 0.0;
        }
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
    for (size_t j = 0; j < v; j++) {
        float lp = z[j] - lse;
        float p = expf(lp);
        float dH = p > 0.0f ? -p * (lp + H) : 0.0f;
        dz[j] += -a * p + b * dH;
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
