/* test_rmsnorm_paths.c — the two RMSNorm backward schedules on shapes the small tests in
 * test_kernels_dense.c do not reach: the fused one-pass backward (both gradients: row groups with
 * per-group dweight sums added in group order) with strided rows, an odd C, an uneven last group
 * (N = 71: groups of 15, last 11), the 64-group cap with an empty last group (N = 2000: groups of
 * 32) and wide rows (C = 4500); and the two-pass backward (one gradient alone).
 *
 * - Both schedules against finite differences (atol 1e-3 + rtol 1e-2, h = 1e-2, as in
 *   test_kernels_dense.c: fp32 rounding of L = Σ w·y is ~1e-6, i.e. ~5e-5 after dividing by 2h;
 *   a dropped r² or sign moves gradients of order 0.1–1 by O(1)).
 * - Both against a double-precision reference of the forward and of the backward formulas
 *   (dx = r·(g − x·r²·Σ g·x / C), dw = Σ dy·x·r): dinp within 1e-6 + 1e-5·|ref| (a few fp32
 *   roundings of values of order 1), dweight within 1e-4 + 1e-4·|ref| (fp32 sums of ≤ 2000
 *   products of order 1 with random signs, |dw| up to ~50: ≤ 96 sequential roundings of partial
 *   sums ≤ 50 at 6e-8 relative ≈ 3e-4 worst case, ~1e-5 typical).
 * - The schedules agree: dinp of a call with both gradients (fused) is bit-identical to dinp
 *   alone (two-pass), since every row runs the same expressions.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rmsnorm.h"
#include "tests/util/check.h"

#define EPS 1e-6f

typedef struct rms_case {
    int N, C, is, os; /* rows, channels, input and output row strides */
    float *inp, *out, *w, *rstd, *wl;
} rms_case;

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

static void rc_init(rms_case *c, int N, int C, int is, int os, uint64_t seed) {
    *c = (rms_case){N, C, is, os, falloc((size_t)N * is), falloc((size_t)N * os), falloc((size_t)C), falloc((size_t)N),
                    falloc((size_t)N * os)};
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->inp, (size_t)N * is, -2.0f, 2.0f, &r);
    fill_uniform(c->w, (size_t)C, 0.5f, 1.5f, &r);
    fill_uniform(c->wl, (size_t)N * os, -1.0f, 1.0f, &r);
    for (int i = 0; i < N; i++) /* the loss ignores the padding columns */
        for (int j = C; j < os; j++) c->wl[(size_t)i * os + j] = 0.0f;
}

static void rc_free(rms_case *c) { free(c->inp), free(c->out), free(c->w), free(c->rstd), free(c->wl); }

static double rc_loss(void *p) {
    rms_case *c = p;
    rmsnorm_forward_strided(c->out, c->rstd, c->inp, c->w, EPS, c->N, c->C, c->os, c->is);
    return dot_double(c->wl, c->out, (size_t)c->N * c->os);
}

/* Backward with dout = wl (row stride os) into dinp (row stride is) and dweight; either NULL. */
static void rc_backward(rms_case *c, float *dinp, float *dw) {
    rmsnorm_backward_strided(dinp, dw, c->wl, c->inp, c->w, c->rstd, c->N, c->C, c->is, c->os, c->is);
}

/* Double reference: dinp (row stride is) and dweight of L = Σ wl·y. */
static void rc_reference(const rms_case *c, double *dinp, double *dw) {
    for (int i = 0; i < c->N; i++) {
        const float *x = c->inp + (size_t)i * c->is, *dy = c->wl + (size_t)i * c->os;
        double ss = 0, gx = 0;
        for (int j = 0; j < c->C; j++) ss += (double)x[j] * x[j];
        double r = 1.0 / sqrt(ss / c->C + EPS);
        for (int j = 0; j < c->C; j++) gx += (double)dy[j] * c->w[j] * x[j];
        for (int j = 0; j < c->C; j++) {
            dinp[(size_t)i * c->is + j] = r * ((double)dy[j] * c->w[j] - x[j] * r * r * gx / c->C);
            dw[j] += (double)dy[j] * x[j] * r;
        }
    }
}

static void expect_close(const char *what, const float *after, const float *before, const double *want, size_t n,
                         double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        double got = (double)after[i] - before[i];
        cr_assert(fabs(got - want[i]) <= atol + rtol * fabs(want[i]), "%s[%zu] = %.9g, want %.9g", what, i, got,
                  want[i]);
    }
}

#define EXPECT_FD(WHAT, X, ANA, NEL, CTX)                                                                    \
    do {                                                                                                     \
        fd_result r_;                                                                                        \
        cr_assert_eq(first_nonfinite((ANA), (NEL)), -1, "%s: non-finite analytic gradient", (WHAT));         \
        int ok_ = fd_check((X), (ANA), (NEL), rc_loss, (CTX), 1e-2, 1e-3, 1e-2, 400, &r_);                   \
        cr_assert(ok_, "%s: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", (WHAT),  \
                  r_.worst_index, r_.numeric, r_.analytic, r_.worst_ratio, r_.checked);                     \
    } while (0)

Test(rmsnorm_paths, fused_and_two_pass_backward_match_finite_differences) {
    rms_case c;
    rc_init(&c, 71, 37, 41, 39, 1); /* five groups of 15, 15, 15, 15, 11 rows; strided rows */
    rc_loss(&c);
    size_t nx = (size_t)c.N * c.is;
    float *dx0 = falloc(nx), *dw0 = falloc((size_t)c.C), *dx = falloc(nx), *dw = falloc((size_t)c.C);
    float *g = falloc(nx);
    test_rng r;
    test_rng_seed(&r, 2);
    fill_uniform(dx0, nx, -1, 1, &r); /* random prefills: the backward must add (+=) */
    fill_uniform(dw0, (size_t)c.C, -1, 1, &r);
    for (int pass = 0; pass < 3; pass++) { /* both (fused), dinp alone, dweight alone */
        rc_loss(&c); /* rstd at the unperturbed point (fd_check leaves the last perturbed one) */
        memcpy(dx, dx0, nx * sizeof(float));
        memcpy(dw, dw0, (size_t)c.C * sizeof(float));
        rc_backward(&c, pass == 2 ? NULL : dx, pass == 1 ? NULL : dw);
        if (pass != 2) {
            for (int i = 0; i < c.N; i++) /* only the C columns of each row belong to the input */
                for (int j = 0; j < c.is; j++)
                    g[(size_t)i * c.is + j] = j < c.C ? dx[(size_t)i * c.is + j] - dx0[(size_t)i * c.is + j] : 0.0f;
            EXPECT_FD(pass == 0 ? "dinp (fused)" : "dinp (alone)", c.inp, g, nx, &c);
            for (int i = 0; i < c.N; i++)
                for (int j = c.C; j < c.is; j++)
                    cr_assert_eq(dx[(size_t)i * c.is + j], dx0[(size_t)i * c.is + j], "padding of dinp written");
        }
        if (pass != 1) {
            for (int j = 0; j < c.C; j++) g[j] = dw[j] - dw0[j];
            EXPECT_FD(pass == 0 ? "dweight (fused)" : "dweight (alone)", c.w, g, (size_t)c.C, &c);
        }
    }
    free(dx0), free(dw0), free(dx), free(dw), free(g);
    rc_free(&c);
}

Test(rmsnorm_paths, both_schedules_match_double_reference_and_each_other) {
    const int shapes[3][2] = {{71, 37}, {2000, 9}, {9, 4500}};
    for (int si = 0; si < 3; si++) {
        rms_case c;
        int N = shapes[si][0], C = shapes[si][1];
        rc_init(&c, N, C, C + 3, C + 1, 10 + si);
        rc_loss(&c);
        /* forward against double */
        for (int i = 0; i < N; i++) {
            double ss = 0;
            for (int j = 0; j < C; j++) ss += (double)c.inp[(size_t)i * c.is + j] * c.inp[(size_t)i * c.is + j];
            double rr = 1.0 / sqrt(ss / C + EPS);
            cr_assert(fabs(c.rstd[i] - rr) <= 1e-6 * rr, "C=%d rstd[%d] = %.9g, want %.9g", C, i, c.rstd[i], rr);
            for (int j = 0; j < C; j++) {
                double want = c.inp[(size_t)i * c.is + j] * rr * c.w[j];
                cr_assert(fabs(c.out[(size_t)i * c.os + j] - want) <= 1e-6 + 1e-6 * fabs(want), "C=%d out[%d,%d]", C,
                          i, j);
            }
        }
        size_t nx = (size_t)N * c.is;
        double *rdx = calloc(nx, sizeof(double)), *rdw = calloc((size_t)C, sizeof(double));
        float *dx0 = falloc(nx), *dw0 = falloc((size_t)C), *dx = falloc(nx), *dw = falloc((size_t)C), *dxa = falloc(nx);
        float *dwa = falloc((size_t)C);
        cr_assert(rdx && rdw);
        rc_reference(&c, rdx, rdw);
        test_rng r;
        test_rng_seed(&r, 20 + si);
        fill_uniform(dx0, nx, -1, 1, &r);
        fill_uniform(dw0, (size_t)C, -1, 1, &r);
        memcpy(dx, dx0, nx * sizeof(float));
        memcpy(dw, dw0, (size_t)C * sizeof(float));
        memcpy(dxa, dx0, nx * sizeof(float));
        memcpy(dwa, dw0, (size_t)C * sizeof(float));
        rc_backward(&c, dx, dw);   /* fused */
        rc_backward(&c, dxa, NULL); /* two-pass, one gradient at a time */
        rc_backward(&c, NULL, dwa);
        for (int i = 0; i < N; i++) {
            char what[64];
            snprintf(what, sizeof what, "N=%d C=%d dinp row %d", N, C, i);
            expect_close(what, dx + (size_t)i * c.is, dx0 + (size_t)i * c.is, rdx + (size_t)i * c.is, (size_t)C,
                         1e-6, 1e-5);
        }
        expect_close("dweight (fused)", dw, dw0, rdw, (size_t)C, 1e-4, 1e-4);
        expect_close("dweight (two-pass)", dwa, dw0, rdw, (size_t)C, 1e-4, 1e-4);
        cr_assert_eq(memcmp(dx, dxa, nx * sizeof(float)), 0, "N=%d C=%d: dinp differs between the schedules", N, C);
        free(rdx), free(rdw), free(dx0), free(dw0), free(dx), free(dw), free(dxa), free(dwa);
        rc_free(&c);
    }
}
