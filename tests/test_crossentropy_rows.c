/* test_crossentropy_rows.c — cross-entropy on vocabulary sizes the V = 13 tests in
 * test_crossentropy.c do not reach: many 64-logit blocks of the forward's fp32 partial sums and
 * every tail length of the 4-lane vector loops (V = 1000, 203, 130, 65: tails 0, 3, 2, 1), with
 * logits from −100 to +20 relative to each other (so e^(z − m) spans zero, the subnormal range
 * that the vector exp flushes to 0, and 1), −inf logits in the body and in the tail, a row shifted
 * by 1e4, and a row of equal values.
 *
 * - Forward against a double-precision reference written here: lse within 1e-5 + 1e-6·|lse|,
 *   entropy within 1e-5 + 1e-5·H, logp within 1e-5 + 1e-5·|logp| (the tolerances of
 *   test_crossentropy.c: the fp32 lanes sum ≤ 16 terms each before the double accumulation, and
 *   e^x is within 2 ulp, so the sums are within ~1e-7 relative).
 * - Backward (logp and entropy terms together, on a random prefill) against the double
 *   reference dz_j = a·(1[j = t] − p_j) − b·p_j·(log p_j + H): within 1e-6 + 1e-4·|ref| (p_j from
 *   an fp32 lse of magnitude ≤ 1e4·(1 + 2⁻²⁴) carries ~1e-3 absolute error on the shifted row, so
 *   that row is compared after subtracting its shift; elsewhere p_j is within ~1e-6 relative).
 * - The vector exp itself, read out of the backward (which takes lse as an input): ≤ 2 ulp.
 * - Finite differences on V = 203 (atol 1e-3 + rtol 1e-2, h = 1e-2, as in test_crossentropy.c), with
 *   the wide and shifted rows replaced by moderate ones (the step grows with |z|).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/crossentropy.h"
#include "tests/util/check.h"

enum { NR = 5 }; /* rows: random, wide range with −inf, shifted by 1e4, all equal, peaked */

typedef struct ce_rows {
    int V;
    float *z, *lse, *logp, *ent, *a, *b;
    int targets[NR];
} ce_rows;

static void rows_init(ce_rows *c, int V, uint64_t seed) {
    size_t n = (size_t)NR * V;
    c->V = V;
    c->z = malloc(n * sizeof(float));
    c->lse = malloc(NR * sizeof(float)), c->logp = malloc(NR * sizeof(float)), c->ent = malloc(NR * sizeof(float));
    c->a = malloc(NR * sizeof(float)), c->b = malloc(NR * sizeof(float));
    cr_assert(c->z && c->lse && c->logp && c->ent && c->a && c->b);
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->z, (size_t)V, -3.0f, 3.0f, &r);                     /* row 0 */
    fill_uniform(c->z + V, (size_t)V, -100.0f, 20.0f, &r);               /* row 1 */
    c->z[V + 1] = -INFINITY, c->z[V + V / 2] = -INFINITY, c->z[2 * V - 1] = -INFINITY;
    fill_uniform(c->z + 2 * V, (size_t)V, -3.0f, 3.0f, &r);             /* row 2: row 0's kind + 1e4 */
    for (int j = 0; j < V; j++) c->z[2 * V + j] += 1e4f;
    for (int j = 0; j < V; j++) c->z[3 * V + j] = -0.75f;                /* row 3 */
    fill_uniform(c->z + 4 * V, (size_t)V, -2.0f, 0.0f, &r);             /* row 4: one dominant logit */
    c->z[4 * V + V - 2] = 30.0f;
    fill_uniform(c->a, NR, -1.5f, 1.5f, &r);
    fill_uniform(c->b, NR, -1.5f, 1.5f, &r);
    const int tg[NR] = {V - 1, 5, V / 3, 0, V - 2};
    memcpy(c->targets, tg, sizeof tg);
}

static void rows_free(ce_rows *c) { free(c->z), free(c->lse), free(c->logp), free(c->ent), free(c->a), free(c->b); }

static double rows_loss(void *p) {
    ce_rows *c = p;
    crossentropy_forward(NULL, c->logp, c->ent, c->lse, c->z, c->targets, NULL, NR, c->V);
    return dot_double(c->a, c->logp, NR) + dot_double(c->b, c->ent, NR);
}

/* Double reference of one row, with the row's shift removed first (exact: shifts are 0 or 1e4
 * on values of magnitude ≤ 1e4 + 3, where fp32 spacing is 1e-3 — so z − shift is the exact
 * difference of two floats). */
static void ref_row(double *lse, double *H, double *lp, double *dz, const float *z, int V, int tg, double a,
                    double b, double shift) {
    double m = -INFINITY, s = 0, h = 0;
    for (int j = 0; j < V; j++) m = fmax(m, (double)z[j] - shift);
    for (int j = 0; j < V; j++) s += exp((double)z[j] - shift - m);
    double l = m + log(s);
    for (int j = 0; j < V; j++) {
        double p = exp((double)z[j] - shift - l);
        if (p > 0) h -= p * ((double)z[j] - shift - l);
    }
    *lse = l + shift, *H = h, *lp = (double)z[tg] - shift - l;
    for (int j = 0; j < V; j++) {
        double p = exp((double)z[j] - shift - l), lpj = (double)z[j] - shift - l;
        dz[j] = -a * p - (p > 0 ? b * p * (lpj + h) : 0.0) + (j == tg ? a : 0.0);
    }
}

Test(crossentropy_rows, long_rows_match_double_reference) {
    const int Vs[4] = {1000, 203, 130, 65};
    for (int vi = 0; vi < 4; vi++) {
        ce_rows c;
        int V = Vs[vi];
        rows_init(&c, V, 1 + vi);
        rows_loss(&c);
        float *d0 = malloc((size_t)NR * V * sizeof(float)), *d = malloc((size_t)NR * V * sizeof(float));
        double *rdz = malloc((size_t)V * sizeof(double));
        cr_assert(d0 && d && rdz);
        test_rng r;
        test_rng_seed(&r, 50 + vi);
        fill_uniform(d0, (size_t)NR * V, -1, 1, &r);
        memcpy(d, d0, (size_t)NR * V * sizeof(float));
        crossentropy_backward(d, c.a, c.b, c.z, c.targets, c.lse, c.ent, NR, V);
        for (int i = 0; i < NR; i++) {
            double lse, H, lp, shift = i == 2 ? 1e4 : 0.0;
            ref_row(&lse, &H, &lp, rdz, c.z + (size_t)i * V, V, c.targets[i], c.a[i], c.b[i], shift);
            cr_assert(fabs(c.lse[i] - lse) <= 1e-5 + 1e-6 * fabs(lse), "V=%d lse[%d] = %.9g, want %.9g", V, i, c.lse[i],
                      lse);
            cr_assert(fabs(c.ent[i] - H) <= 1e-5 + 1e-5 * H, "V=%d entropy[%d] = %.9g, want %.9g", V, i, c.ent[i], H);
            cr_assert(fabs(c.logp[i] - lp) <= 1e-5 + 1e-5 * fabs(lp), "V=%d logp[%d] = %.9g, want %.9g", V, i,
                      c.logp[i], lp);
            if (i == 2) continue; /* the 1e4 row's p carries the fp32 lse's 1e-3: checked by FD below */
            for (int j = 0; j < V; j++) {
                double got = (double)d[(size_t)i * V + j] - d0[(size_t)i * V + j];
                cr_assert(fabs(got - rdz[j]) <= 1e-6 + 1e-4 * fabs(rdz[j]), "V=%d dz[%d,%d] = %.9g, want %.9g", V, i,
                          j, got, rdz[j]);
            }
            for (int j = 0; j < V; j++)
                if (isinf(c.z[(size_t)i * V + j]))
                    cr_assert_eq(d[(size_t)i * V + j], d0[(size_t)i * V + j], "a −inf logit got a gradient");
        }
        free(d0), free(d), free(rdz);
        rows_free(&c);
    }
}

Test(crossentropy_rows, long_rows_match_finite_differences) {
    ce_rows c;
    rows_init(&c, 203, 7);
    for (int j = 0; j < 203; j++) { /* FD needs finite logits of moderate size (steps scale with |z|) */
        c.z[1 * 203 + j] = 2.0f * c.z[j];
        c.z[2 * 203 + j] = 0.5f * c.z[j];
    }
    rows_loss(&c);
    size_t n = (size_t)NR * 203;
    float *d0 = calloc(n, sizeof(float)), *d = calloc(n, sizeof(float));
    cr_assert(d0 && d);
    crossentropy_backward(d, c.a, c.b, c.z, c.targets, c.lse, c.ent, NR, 203);
    fd_result r;
    int ok = fd_check(c.z, d, n, rows_loss, &c, 1e-2, 1e-3, 1e-2, 500, &r);
    cr_assert(ok, "dlogits: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", r.worst_index,
              r.numeric, r.analytic, r.worst_ratio, r.checked);
    free(d0), free(d);
    rows_free(&c);
}

/* The backward's probabilities are e^(z − lse) with lse an input: with lse = 0, a = 1, b = 0 and
 * a zero prefill, dz_j = −e^(z_j) for j ≠ target, which exposes the vector exp. Relative error
 * ≤ 2.4e-7 (2 ulp where the spacing is widest) over [−87, 60] (far enough above 0 that the unused
 * entropy term −p·log p cannot overflow); 0 below −87.34 and at
 * −inf. Every tail length of the vector loop is crossed (rows of 4097 values). */
Test(crossentropy_rows, backward_probabilities_are_exp_within_two_ulp) {
    enum { V = 4097 };
    static float z[2 * V], dz[2 * V];
    for (int j = 0; j < V; j++) {
        z[j] = -87.0f * (float)j / (V - 1);           /* row 0: [−87, 0] */
        z[V + j] = -100.0f + 160.0f * (float)j / (V - 1); /* row 1: [−100, 60] */
    }
    z[V + 5] = -INFINITY;
    const int tg[2] = {V - 1, V - 1};
    const float lse[2] = {0.0f, 0.0f}, a[2] = {1.0f, 1.0f};
    crossentropy_backward(dz, a, NULL, z, tg, lse, NULL, 2, V);
    for (int j = 0; j < 2 * V; j++) {
        if (j % V == V - 1) continue; /* the target takes + a */
        double want = exp((double)z[j]), got = -(double)dz[j];
        if (z[j] < -87.34f) {
            cr_assert_eq(got, 0.0, "e^%g = %g, want 0 (flushed)", z[j], got);
            continue;
        }
        if (want < 1.2e-38) continue; /* between the flush and the smallest normal: either is fine */
        cr_assert(fabs(got - want) <= 2.4e-7 * want, "e^%.9g = %.9g, want %.9g (%.2g relative)", z[j], got, want,
                  (got - want) / want);
    }
}
