/* test_swiglu_blocks.c — SwiGLU on a length the 40-element tests in test_kernels_dense.c do not
 * reach: two 4096-element thread blocks plus a tail of 3 (so the vector loop's padded tail runs),
 * with gates in [−20, 20] and extreme gates (±88.8, ±1e4, ±3e38) placed at block boundaries and
 * in the tail.
 *
 * - Forward and backward (on random prefills, +=) against double-precision formulas written here:
 *   out within 1e-6 + 1e-5·|ref| (as test_kernels_dense.c: σ from a ≤ 2-ulp e^x, three fp32
 *   products), dgate and dup within 2e-6 + 2e-5·|ref| (a few more fp32 roundings; the factor
 *   1 + g(1 − σ) cancels near g ≈ −1.28, where the absolute term covers it). A dropped σ' term or
 *   a sign flip moves values of order 0.1–1 by O(1).
 * - out may alias gate (in place) and gives the same bits; a NULL dgate or dup is skipped and the
 *   other is bit-identical to a full call.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/swiglu.h"
#include "tests/util/check.h"

enum { SN = 2 * 4096 + 3 };

static float *sw_alloc(void) {
    float *p = calloc(SN, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

Test(swiglu_blocks, long_runs_match_double_reference) {
    float *g = sw_alloc(), *u = sw_alloc(), *dy = sw_alloc(), *out = sw_alloc(), *dg0 = sw_alloc(), *du0 = sw_alloc();
    float *dg = sw_alloc(), *du = sw_alloc(), *inplace = sw_alloc(), *one = sw_alloc();
    test_rng r;
    test_rng_seed(&r, 1);
    fill_uniform(g, SN, -20.0f, 20.0f, &r);
    fill_uniform(u, SN, -2.0f, 2.0f, &r);
    fill_uniform(dy, SN, -1.0f, 1.0f, &r);
    fill_uniform(dg0, SN, -1.0f, 1.0f, &r);
    fill_uniform(du0, SN, -1.0f, 1.0f, &r);
    const float extreme[6] = {-88.8f, 88.8f, -1e4f, 1e4f, -3e38f, 3e38f};
    const int at[6] = {4095, 4096, 4097, SN - 3, SN - 2, SN - 1};
    for (int i = 0; i < 6; i++) g[at[i]] = extreme[i], u[at[i]] = 0.5f;
    swiglu_forward(out, g, u, SN);
    memcpy(dg, dg0, SN * sizeof(float));
    memcpy(du, du0, SN * sizeof(float));
    swiglu_backward(dg, du, dy, g, u, SN);
    for (int i = 0; i < SN; i++) {
        double gi = g[i], s = 1.0 / (1.0 + exp(-gi));
        double want = gi * s * u[i], wdu = (double)dy[i] * gi * s;
        double wdg = (double)dy[i] * u[i] * s * (1.0 + gi * (1.0 - s));
        cr_assert(isfinite(out[i]) && isfinite(dg[i]) && isfinite(du[i]), "element %d (gate %g) not finite", i, g[i]);
        cr_assert(fabs(out[i] - want) <= 1e-6 + 1e-5 * fabs(want), "out[%d] = %.9g, want %.9g (gate %g)", i, out[i],
                  want, g[i]);
        cr_assert(fabs((dg[i] - (double)dg0[i]) - wdg) <= 2e-6 + 2e-5 * fabs(wdg), "dgate[%d] = %.9g, want %.9g", i,
                  dg[i] - (double)dg0[i], wdg);
        cr_assert(fabs((du[i] - (double)du0[i]) - wdu) <= 2e-6 + 2e-5 * fabs(wdu), "dup[%d] = %.9g, want %.9g", i,
                  du[i] - (double)du0[i], wdu);
    }
    memcpy(inplace, g, SN * sizeof(float));
    swiglu_forward(inplace, inplace, u, SN);
    cr_assert_eq(memcmp(inplace, out, SN * sizeof(float)), 0, "in-place forward differs");
    memcpy(one, dg0, SN * sizeof(float));
    swiglu_backward(one, NULL, dy, g, u, SN);
    cr_assert_eq(memcmp(one, dg, SN * sizeof(float)), 0, "dgate alone differs");
    memcpy(one, du0, SN * sizeof(float));
    swiglu_backward(NULL, one, dy, g, u, SN);
    cr_assert_eq(memcmp(one, du, SN * sizeof(float)), 0, "dup alone differs");
    free(g), free(u), free(dy), free(out), free(dg0), free(du0), free(dg), free(du), free(inplace), free(one);
}
