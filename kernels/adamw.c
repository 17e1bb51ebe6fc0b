/* adamw.c — AdamW (Loshchilov & Hutter; torch.optim.AdamW) and global-norm gradient clipping.
 *
 * Shape legend: n parameters (flat). AdamW step t ≥ 1 with gradient g, as torch's
 * _single_tensor_adam with decoupled weight decay (operation order kept, fp32 element math, the
 * scalars in double and rounded once to fp32 as torch does with Python scalars):
 *   p ← p·(1 − lr·wd)                            (decoupled decay first; skipped when wd = 0)
 *   m ← m + (1 − β1)·(g − m)                      (torch's lerp_, weight < 0.5 branch)
 *   v ← v·β2 + ((1 − β2)·g)·g                    (mul_ then addcmul_)
 *   bc1 = 1 − β1^t,  bc2 = 1 − β2^t,  step = lr/bc1
 *   p ← p − step·m / (sqrt(v)/sqrt(bc2) + eps)   (eps added after the bias-corrected sqrt)
 * Clipping (clip_grad_norm_, L2): N = sqrt(Σ g²) over all buffers (double here; torch sums
 * per-tensor fp32 norms, the same to ~1e-7 relative); coef = max_norm/(N + 1e-6); if coef < 1,
 * g ← g·coef.
 * torch's vectorised CPU kernels fuse some of these steps into FMAs (lerp_ is
 * fmadd(w, g − m, m)), so individual elements can differ from torch by a few ulps, more in
 * relative terms where m − g cancels; absolute differences stay below 1e-9 on the fixture.
 * Invariants: elements are independent (parallel over i, race-free); the norm is summed in a
 * fixed order per buffer, so it does not depend on the thread count.
 */
#include "kernels/adamw.h"

#include <math.h>

void adamw_update(float *param, float *m, float *v, const float *grad, size_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int step) {
    float decay = (float)(1.0 - lr * weight_decay);
    int decays = weight_decay != 0.0;
    float one_minus_b1 = (float)(1.0 - beta1);
    float b2 = (float)beta2;
    float one_minus_b2 = (float)(1.0 - beta2);
    double bc1 = 1.0 - pow(beta1, (double)step);
    double bc2 = 1.0 - pow(beta2, (double)step);
    float neg_step = (float)(-(lr / bc1));
    float bc2_sqrt = (float)sqrt(bc2);
    float eps_f = (float)eps;
    ptrdiff_t count = (ptrdiff_t)n;
#pragma omp parallel for
    for (ptrdiff_t i = 0; i < count; i++) {
        float p = param[i], g = grad[i];
        if (decays) p = p * decay;
        float mi = m[i] + one_minus_b1 * (g - m[i]);
        float vi = v[i] * b2;
        vi = vi + one_minus_b2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps_f;
        p = p + neg_step * mi / denom;
        m[i] = mi;
        v[i] = vi;
        param[i] = p;
    }
}

double grad_global_norm(const float *const *grads, const size_t *sizes, int n) {
    double ss = 0.0;
    for (int b = 0; b < n; b++) {
        const float *g = grads[b];
        double part = 0.0;
        for (size_t i = 0; i < sizes[b]; i++) part += (double)g[i] * g[i];
        ss += part;
    }
    return sqrt(ss);
}

double grad_clip_scale(float *const *grads, const size_t *sizes, int n, double max_norm) {
    double norm = grad_global_norm((const float *const *)grads, sizes, n);
    if (!isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return norm;
    float c = (float)coef;
    for (int b = 0; b < n; b++) {
        float *g = grads[b];
        ptrdiff_t count = (ptrdiff_t)sizes[b];
#pragma omp parallel for
        for (ptrdiff_t i = 0; i < count; i++) g[i] *= c;
    }
    return norm;
}
