/* test_kernels_dense.c — linear, RMSNorm, SwiGLU and embedding kernels: forwards against naive
 * double-precision loops written here, backwards against central finite differences, the
 * accumulate (+=) contract, and thread-count independence.
 *
 * Finite differences (tests/util/check.h): L = Σ w·out with w random and fixed; the kernel runs in
 * fp32, L is summed in double; step h = 1e-2·max(1, |x|). Tolerance atol 1e-3 + rtol 1e-2 on
 * each gradient element: fp32 rounding of the outputs (~6e-8 relative, at most a few hundred
 * terms of order 1) perturbs L by ~1e-6, i.e. ~5e-5 in the gradient after dividing by 2h, and the
 * O(h²) truncation of the nonlinear kernels is ~1e-4 relative — both well under the tolerance —
 * while a dropped term, flipped sign or missing factor moves gradients of order 0.1–1 by O(1).
 * Every backward is called on gradient buffers pre-filled with random values and the analytic
 * gradient is taken as (after − before), so a kernel that overwrites instead of accumulating fails.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"
#include "tests/util/check.h"

#define FD_H 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

/* Assert that analytic matches finite differences of loss in x (all elements). */
#define EXPECT_GRAD(WHAT, X, ANA, NEL, LOSS, CTX)                                                            \
    do {                                                                                                     \
        fd_result r_;                                                                                        \
        cr_assert_eq(first_nonfinite((ANA), (NEL)), -1, "%s: non-finite analytic gradient", (WHAT));         \
        int ok_ = fd_check((X), (ANA), (NEL), (LOSS), (CTX), FD_H, FD_ATOL, FD_RTOL, 0, &r_);                \
        cr_assert(ok_, "%s: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", (WHAT),  \
                  r_.worst_index, r_.numeric, r_.analytic, r_.worst_ratio, r_.checked);                     \
    } while (0)

/* The gradient a backward added on top of a random prefill. */
static void added(float *delta, const float *after, const float *before, size_t n) {
    for (size_t i = 0; i < n; i++) delta[i] = after[i] - before[i];
}

/* ---------------------------------------------------------------- linear */

enum { LN = 5, LC = 7, LOC = 6 };

typedef struct lin_ctx {
    float out[LN * LOC], inp[LN * LC], w[LOC * LC], b[LOC], wl[LN * LOC];
    int use_bias;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out, c->inp, c->w, c->use_bias ? c->b : NULL, LN, LC, LOC);
    return dot_double(c->wl, c->out, LN * LOC);
}

static void lin_init(lin_ctx *c, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->inp, LN * LC, -1.5f, 1.5f, &r);
    fill_uniform(c->w, LOC * LC, -1.0f, 1.0f, &r);
    fill_uniform(c->b, LOC, -1.0f, 1.0f, &r);
    fill_uniform(c->wl, LN * LOC, -1.0f, 1.0f, &r);
    c->use_bias = 1;
}

Test(linear, forward_matches_triple_loop) {
    lin_ctx c;
    lin_init(&c, 1);
    for (int use_bias = 0; use_bias <= 1; use_bias++) {
        c.use_bias = use_bias;
        for (size_t i = 0; i < LN * LOC; i++) c.out[i] = NAN; /* must be overwritten */
        lin_loss(&c);
        float ref[LN * LOC];
        for (int n = 0; n < LN; n++)
            for (int o = 0; o < LOC; o++) {
                double s = use_bias ? c.b[o] : 0.0;
                for (int k = 0; k < LC; k++) s += (double)c.inp[n * LC + k] * c.w[o * LC + k];
                ref[n * LOC + o] = (float)s;
            }
        double worst;
        /* sums of 7 products of order 1: fp32 rounding ~1e-6 */
        long bad = compare_close(c.out, ref, LN * LOC, 1e-5, 1e-5, &worst);
        cr_assert_eq(bad, -1, "bias=%d: out[%ld] = %g, want %g", use_bias, bad, c.out[bad < 0 ? 0 : bad],
                     ref[bad < 0 ? 0 : bad]);
    }
}

Test(linear, backward_matches_finite_differences) {
    lin_ctx c;
    lin_init(&c, 2);
    test_rng r;
    test_rng_seed(&r, 3);
    float dinp0[LN * LC], dw0[LOC * LC], db0[LOC], dinp[LN * LC], dw[LOC * LC], db[LOC];
    fill_uniform(dinp0, LN * LC, -1, 1, &r);
    fill_uniform(dw0, LOC * LC, -1, 1, &r);
    fill_uniform(db0, LOC, -1, 1, &r);
    memcpy(dinp, dinp0, sizeof dinp);
    memcpy(dw, dw0, sizeof dw);
    memcpy(db, db0, sizeof db);
    linear_backward(dinp, dw, db, c.wl, c.inp, c.w, LN, LC, LOC); /* dL/dout = wl */
    float g[LOC * LC];
    added(g, dinp, dinp0, LN * LC);
    EXPECT_GRAD("linear dinp", c.inp, g, LN * LC, lin_loss, &c);
    added(g, dw, dw0, LOC * LC);
    EXPECT_GRAD("linear dweight", c.w, g, LOC * LC, lin_loss, &c);
    added(g, db, db0, LOC);
    EXPECT_GRAD("linear dbias", c.b, g, LOC, lin_loss, &c);
}

Test(linear, backward_null_outputs_are_skipped) {
    lin_ctx c;
    lin_init(&c, 4);
    float dinp_all[LN * LC] = {0}, dw_all[LOC * LC] = {0}, db_all[LOC] = {0};
    linear_backward(dinp_all, dw_all, db_all, c.wl, c.inp, c.w, LN, LC, LOC);
    float dinp[LN * LC] = {0}, dw[LOC * LC] = {0}, db[LOC] = {0};
    linear_backward(dinp, NULL, NULL, c.wl, c.inp, c.w, LN, LC, LOC);
    linear_backward(NULL, dw, NULL, c.wl, c.inp, c.w, LN, LC, LOC);
    linear_backward(NULL, NULL, db, c.wl, c.inp, c.w, LN, LC, LOC);
    cr_assert_eq(memcmp(dinp, dinp_all, sizeof dinp), 0);
    cr_assert_eq(memcmp(dw, dw_all, sizeof dw), 0);
    cr_assert_eq(memcmp(db, db_all, sizeof db), 0);
}

/* ---------------------------------------------------------------- rmsnorm */

enum { RN = 4, RC = 16 };
#define RMS_EPS 1e-6f

typedef struct rms_ctx {
    float out[RN * RC], rstd[RN], inp[RN * RC], w[RC], wl[RN * RC];
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, RMS_EPS, RN, RC);
    return dot_double(c->wl, c->out, RN * RC);
}

static void rms_init(rms_ctx *c, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->inp, RN * RC, -2.0f, 2.0f, &r);
    fill_uniform(c->w, RC, 0.5f, 1.5f, &r);
    fill_uniform(c->wl, RN * RC, -1.0f, 1.0f, &r);
}

Test(rmsnorm, forward_matches_double_reference) {
    rms_ctx c;
    rms_init(&c, 10);
    c.inp[0 * RC + 3] = 1e3f; /* one large value: the statistic must not lose the rest */
    rms_loss(&c);
    for (int i = 0; i < RN; i++) {
        double ss = 0;
        for (int j = 0; j < RC; j++) ss += (double)c.inp[i * RC + j] * c.inp[i * RC + j];
        double r = 1.0 / sqrt(ss / RC + RMS_EPS);
        cr_assert(fabs(c.rstd[i] - r) <= 1e-6 * r, "rstd[%d] = %.9g, want %.9g", i, c.rstd[i], r);
        for (int j = 0; j < RC; j++) {
            double want = c.inp[i * RC + j] * r * c.w[j];
            cr_assert(fabs(c.out[i * RC + j] - want) <= 1e-6 + 1e-6 * fabs(want), "out[%d,%d] = %.9g, want %.9g",
                      i, j, c.out[i * RC + j], want);
        }
    }
}

Test(rmsnorm, backward_matches_finite_differences) {
    rms_ctx c;
    rms_init(&c, 11);
    rms_loss(&c); /* rstd for the backward */
    test_rng r;
    test_rng_seed(&r, 12);
    float dinp0[RN * RC], dw0[RC], dinp[RN * RC], dw[RC], g[RN * RC];
    fill_uniform(dinp0, RN * RC, -1, 1, &r);
    fill_uniform(dw0, RC, -1, 1, &r);
    memcpy(dinp, dinp0, sizeof dinp);
    memcpy(dw, dw0, sizeof dw);
    rmsnorm_backward(dinp, dw, c.wl, c.inp, c.w, c.rstd, RN, RC);
    added(g, dinp, dinp0, RN * RC);
    EXPECT_GRAD("rmsnorm dinp", c.inp, g, RN * RC, rms_loss, &c);
    added(g, dw, dw0, RC);
    EXPECT_GRAD("rmsnorm dweight", c.w, g, RC, rms_loss, &c);
}

/* The strided variant on slices of wider rows (as MLA's kv_a_layernorm on [kv_lora | rope])
 * must equal the dense kernel on the packed slice and leave the other columns alone. */
Test(rmsnorm, strided_slices_equal_dense) {
    enum { IS = RC + 3, OS = RC + 2, GS = RC + 5 };
    rms_ctx c;
    rms_init(&c, 13);
    rms_loss(&c);
    test_rng r;
    test_rng_seed(&r, 14);
    float inp[RN * IS], out[RN * OS], rstd[RN], dout[RN * GS];
    fill_uniform(inp, RN * IS, -3, 3, &r);
    fill_uniform(dout, RN * GS, -3, 3, &r);
    for (int i = 0; i < RN * OS; i++) out[i] = -7.0f;
    for (int i = 0; i < RN; i++)
        for (int j = 0; j < RC; j++) {
            inp[i * IS + j] = c.inp[i * RC + j];
            dout[i * GS + j] = c.wl[i * RC + j];
        }
    rmsnorm_forward_strided(out, rstd, inp, c.w, RMS_EPS, RN, RC, OS, IS);
    cr_assert_eq(memcmp(rstd, c.rstd, sizeof rstd), 0);
    for (int i = 0; i < RN; i++) {
        cr_assert_eq(memcmp(out + i * OS, c.out + i * RC, RC * sizeof(float)), 0, "row %d", i);
        for (int j = RC; j < OS; j++) cr_assert_eq(out[i * OS + j], -7.0f, "padding [%d,%d] written", i, j);
    }
    float dx_dense[RN * RC] = {0}, dw_dense[RC] = {0}, dx[RN * IS], dw[RC] = {0};
    for (int i = 0; i < RN * IS; i++) dx[i] = 5.0f;
    rmsnorm_backward(dx_dense, dw_dense, c.wl, c.inp, c.w, c.rstd, RN, RC);
    rmsnorm_backward_strided(dx, dw, dout, inp, c.w, rstd, RN, RC, IS, GS, IS);
    for (int i = 0; i < RN; i++)
        for (int j = 0; j < IS; j++) {
            float want = j < RC ? 5.0f + dx_dense[i * RC + j] : 5.0f;
            cr_assert_eq(dx[i * IS + j], want, "dinp[%d,%d] = %g, want %g", i, j, dx[i * IS + j], want);
        }
    cr_assert_eq(memcmp(dw, dw_dense, sizeof dw), 0);
}

/* ---------------------------------------------------------------- swiglu */

enum { SWN = 40 };

typedef struct swi_ctx {
    float out[SWN], gate[SWN], up[SWN], wl[SWN];
} swi_ctx;

static double swi_loss(void *p) {
    swi_ctx *c = p;
    swiglu_forward(c->out, c->gate, c->up, SWN);
    return dot_double(c->wl, c->out, SWN);
}

static void swi_init(swi_ctx *c, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->gate, SWN, -5.0f, 5.0f, &r);
    fill_uniform(c->up, SWN, -2.0f, 2.0f, &r);
    fill_uniform(c->wl, SWN, -1.0f, 1.0f, &r);
}

Test(swiglu, forward_matches_double_reference_and_saturates) {
    swi_ctx c;
    swi_init(&c, 20);
    const float huge[] = {-1e4f, -100.0f, -88.8f, 88.8f, 100.0f, 1e4f, -3e38f, 3e38f};
    for (int i = 0; i < 8; i++) c.gate[i] = huge[i];
    swi_loss(&c);
    for (int i = 0; i < SWN; i++) {
        double g = c.gate[i];
        double want = g / (1.0 + exp(-g)) * c.up[i];
        if (i == 7) { /* silu(3e38)·u overflows float only through the product with |u| > 1 */
            cr_assert(!isnan(c.out[i]), "silu(3e38)·u is NaN");
            continue;
        }
        cr_assert(isfinite(c.out[i]), "out[%d] = %g for gate %g", i, c.out[i], g);
        cr_assert(fabs(c.out[i] - want) <= 1e-6 + 1e-5 * fabs(want), "out[%d] = %.9g, want %.9g", i, c.out[i],
                  want);
    }
    float dg[SWN] = {0}, du[SWN] = {0};
    swiglu_backward(dg, du, c.wl, c.gate, c.up, 7); /* not the 3e38 product */
    cr_assert_eq(first_nonfinite(dg, SWN), -1);
    cr_assert_eq(first_nonfinite(du, SWN), -1);
}

Test(swiglu, backward_matches_finite_differences) {
    swi_ctx c;
    swi_init(&c, 21);
    test_rng r;
    test_rng_seed(&r, 22);
    float dg0[SWN], du0[SWN], dg[SWN], du[SWN], g[SWN];
    fill_uniform(dg0, SWN, -1, 1, &r);
    fill_uniform(du0, SWN, -1, 1, &r);
    memcpy(dg, dg0, sizeof dg);
    memcpy(du, du0, sizeof du);
    swiglu_backward(dg, du, c.wl, c.gate, c.up, SWN);
    added(g, dg, dg0, SWN);
    EXPECT_GRAD("swiglu dgate", c.gate, g, SWN, swi_loss, &c);
    added(g, du, du0, SWN);
    EXPECT_GRAD("swiglu dup", c.up, g, SWN, swi_loss, &c);
    /* NULL skips one side without touching the other. */
    float only[SWN];
    memcpy(only, du0, sizeof only);
    swiglu_backward(NULL, only, c.wl, c.gate, c.up, SWN);
    cr_assert_eq(memcmp(only, du, sizeof only), 0);
}

/* ---------------------------------------------------------------- embedding */

enum { EV = 6, EN = 9, EC = 5 };

typedef struct emb_ctx {
    float out[EN * EC], table[EV * EC], wl[EN * EC];
    int ids[EN];
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    embedding_forward(c->out, c->ids, c->table, EN, EC);
    return dot_double(c->wl, c->out, EN * EC);
}

static void emb_init(emb_ctx *c, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(c->table, EV * EC, -1, 1, &r);
    fill_uniform(c->wl, EN * EC, -1, 1, &r);
    const int ids[EN] = {3, 1, 3, 0, 5, 3, 1, 2, 3}; /* repeats; id 4 never used */
    memcpy(c->ids, ids, sizeof ids);
}

Test(embedding, forward_copies_rows) {
    emb_ctx c;
    emb_init(&c, 30);
    emb_loss(&c);
    for (int i = 0; i < EN; i++)
        cr_assert_eq(memcmp(c.out + i * EC, c.table + c.ids[i] * EC, EC * sizeof(float)), 0, "row %d", i);
}

Test(embedding, backward_matches_finite_differences_with_repeated_ids) {
    emb_ctx c;
    emb_init(&c, 31);
    test_rng r;
    test_rng_seed(&r, 32);
    float dt0[EV * EC], dt[EV * EC], g[EV * EC];
    fill_uniform(dt0, EV * EC, -1, 1, &r);
    memcpy(dt, dt0, sizeof dt);
    embedding_backward(dt, c.wl, c.ids, EN, EC);
    added(g, dt, dt0, EV * EC);
    EXPECT_GRAD("embedding dtable", c.table, g, EV * EC, emb_loss, &c);
    for (int j = 0; j < EC; j++) cr_assert_eq(dt[4 * EC + j], dt0[4 * EC + j], "unused row 4 changed");
}

/* ---------------------------------------------------------------- threads */

/* The reductions over rows (linear dbias, rmsnorm dweight, embedding dtable) are split by
 * channel block, so 1 and 4 threads must give bit-identical results, with no races on repeats. */
Test(dense_kernels, results_do_not_depend_on_thread_count) {
    enum { N = 37, C = 300, V = 7 };
    static float x[N * C], dy[N * C], w[C], rstd[N], y[N * C], table[V * C];
    static float db[2][C], dw[2][C], dx[2][N * C], dt[2][V * C];
    int ids[N];
    test_rng r;
    test_rng_seed(&r, 40);
    fill_uniform(x, N * C, -2, 2, &r);
    fill_uniform(dy, N * C, -2, 2, &r);
    fill_uniform(w, C, 0.5f, 1.5f, &r);
    fill_uniform(table, V * C, -1, 1, &r);
    for (int i = 0; i < N; i++) ids[i] = (int)(test_rng_uniform(&r) * V);
    rmsnorm_forward(y, rstd, x, w, RMS_EPS, N, C);
    int threads[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(threads[k]);
        memset(db[k], 0, sizeof db[k]);
        memset(dw[k], 0, sizeof dw[k]);
        memset(dx[k], 0, sizeof dx[k]);
        memset(dt[k], 0, sizeof dt[k]);
        linear_backward(NULL, NULL, db[k], dy, x, w, N, 1, C); /* only the bias path matters here */
        rmsnorm_backward(dx[k], dw[k], dy, x, w, rstd, N, C);
        embedding_backward(dt[k], dy, ids, N, C);
    }
    omp_set_num_threads(1);
    cr_assert_eq(memcmp(db[0], db[1], sizeof db[0]), 0, "linear dbias differs across thread counts");
    cr_assert_eq(memcmp(dw[0], dw[1], sizeof dw[0]), 0, "rmsnorm dweight differs across thread counts");
    cr_assert_eq(memcmp(dx[0], dx[1], sizeof dx[0]), 0, "rmsnorm dinp differs across thread counts");
    cr_assert_eq(memcmp(dt[0], dt[1], sizeof dt[0]), 0, "embedding dtable differs across thread counts");
    /* and the embedding sum equals a serial double reference */
    for (int v = 0; v < V; v++)
        for (int j = 0; j < C; j++) {
            double s = 0;
            for (int i = 0; i < N; i++)
                if (ids[i] == v) s += dy[i * C + j];
            cr_assert(fabs(dt[1][v * C + j] - s) <= 1e-5 + 1e-5 * fabs(s), "dtable[%d,%d]", v, j);
        }
}
