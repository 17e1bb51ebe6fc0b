/* test_crossentropy.c — softmax cross-entropy, log-probabilities and entropy over a vocabulary:
 * the forward against a naive double-precision computation written here (including logits of
 * 1e4, −inf logits, ignored −100 targets, masks and an out-of-range target), and the backward
 * against central finite differences on both the logp path and the entropy path, plus the loss
 * convenience.
 *
 * FD tolerance atol 1e-3 + rtol 1e-2 per element, step h = 1e-2·max(1,|z|): logp and H are
 * computed in double and rounded once to fp32 (relative 6e-8 of values of order 1–3), summed
 * over N rows with random weights, so rounding moves L by ~1e-6 → ~5e-5 in the gradient after
 * dividing by 2h; the O(h²) truncation with second derivatives of order 1 is ~1e-4. A dropped or
 * sign-flipped term (the one-hot, the −p, the H inside −p(log p + H)) changes gradients of order
 * 0.05–1 by as much, so it fails.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "kernels/crossentropy.h"
#include "tests/util/check.h"

#define FD_H 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

#define EXPECT_GRAD(WHAT, X, ANA, NEL, LOSS, CTX)                                                            \
    do {                                                                                                     \
        fd_result r_;                                                                                        \
        cr_assert_eq(first_nonfinite((ANA), (NEL)), -1, "%s: non-finite analytic gradient", (WHAT));         \
        int ok_ = fd_check((X), (ANA), (NEL), (LOSS), (CTX), FD_H, FD_ATOL, FD_RTOL, 0, &r_);                \
        cr_assert(ok_, "%s: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", (WHAT),  \
                  r_.worst_index, r_.numeric, r_.analytic, r_.worst_ratio, r_.checked);                     \
    } while (0)

/* Naive double reference for one row: lse, entropy and logp (of target tg, if 0 ≤ tg < V). */
static void ref_row(double *lse, double *H, double *logp, const float *z, int tg, int V) {
    double m = -INFINITY;
    for (int j = 0; j < V; j++) m = fmax(m, (double)z[j]);
    double s = 0;
    for (int j = 0; j < V; j++) s += exp((double)z[j] - m);
    *lse = m + log(s);
    double h = 0;
    for (int j = 0; j < V; j++) {
        double p = exp((double)z[j] - *lse);
        if (p > 0) h -= p * ((double)z[j] - *lse);
    }
    *H = h;
    *logp = (tg >= 0 && tg < V) ? (double)z[tg] - *lse : 0.0;
}

enum { N = 6, V = 13 };

typedef struct ce_ctx {
    float logits[N * V], loss[N], logp[N], ent[N], lse[N], mask[N];
    float a[N], b[N], c[N]; /* L = Σ a·logp + b·H + c·loss */
    int targets[N];
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *x = p;
    crossentropy_forward(x->loss, x->logp, x->ent, x->lse, x->logits, x->targets, x->mask, N, V);
    return dot_double(x->a, x->logp, N) + dot_double(x->b, x->ent, N) + dot_double(x->c, x->loss, N);
}

static void ce_init(ce_ctx *x, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    fill_uniform(x->logits, N * V, -3.0f, 3.0f, &r);
    fill_uniform(x->a, N, -1.5f, 1.5f, &r);
    fill_uniform(x->b, N, -1.5f, 1.5f, &r);
    fill_uniform(x->c, N, -1.5f, 1.5f, &r);
    /* two ignored rows (HF's −100 and another negative), the rest real targets */
    const int tg[N] = {4, -100, 0, 12, -1, 7};
    const float mask[N] = {1.0f, 1.0f, 0.0f, 1.0f, 1.0f, 0.5f}; /* row 2 masked out */
    memcpy(x->targets, tg, sizeof tg);
    memcpy(x->mask, mask, sizeof mask);
}

Test(crossentropy, forward_matches_double_reference) {
    ce_ctx x;
    ce_init(&x, 1);
    /* row 3: huge logits (would overflow exp without the max subtraction) */
    for (int j = 0; j < V; j++) x.logits[3 * V + j] += 1e4f;
    /* row 5: a few logits at −inf (banned tokens) and one at −1e4 */
    x.logits[5 * V + 0] = -INFINITY;
    x.logits[5 * V + 9] = -INFINITY;
    x.logits[5 * V + 10] = -1e4f;
    ce_loss(&x);
    for (int i = 0; i < N; i++) {
        double lse, H, lp;
        ref_row(&lse, &H, &lp, x.logits + i * V, x.targets[i], V);
        cr_assert(isfinite(x.lse[i]) && isfinite(x.ent[i]) && isfinite(x.logp[i]) && isfinite(x.loss[i]),
                  "row %d not finite", i);
        /* lse of 1e4 carries ulp(1e4) ≈ 1e-3 in fp32: relative tolerance on lse */
        cr_assert(fabs(x.lse[i] - lse) <= 1e-5 + 1e-6 * fabs(lse), "lse[%d] = %.9g, want %.9g", i, x.lse[i], lse);
        cr_assert(fabs(x.ent[i] - H) <= 1e-5 + 1e-5 * H, "entropy[%d] = %.9g, want %.9g", i, x.ent[i], H);
        /* logp is taken in double before rounding, so it stays accurate even at 1e4 */
        cr_assert(fabs(x.logp[i] - lp) <= 1e-5 + 1e-5 * fabs(lp), "logp[%d] = %.9g, want %.9g", i, x.logp[i], lp);
        double loss = x.targets[i] < 0 ? 0.0 : -x.mask[i] * lp;
        cr_assert(fabs(x.loss[i] - loss) <= 1e-5 + 1e-5 * fabs(loss), "loss[%d] = %.9g, want %.9g", i, x.loss[i],
                  loss);
    }
    cr_assert_eq(x.logp[1], 0.0f, "ignored row has logp 0");
    cr_assert_eq(x.loss[1], 0.0f, "ignored row has loss 0");
    cr_assert_eq(x.loss[2], 0.0f, "masked row has loss 0");
    cr_assert(x.logp[2] < 0.0f, "a masked row still reports its logp");
    /* Shifting a row by 1e4 changes lse by 1e4 and nothing else (up to fp32 input rounding). */
    ce_ctx y;
    ce_init(&y, 1);
    ce_loss(&y);
    cr_assert(fabs(x.logp[3] - y.logp[3]) < 2e-3, "logp moved under a 1e4 shift: %g vs %g", x.logp[3], y.logp[3]);
    cr_assert(fabs(x.ent[3] - y.ent[3]) < 2e-3, "entropy moved under a 1e4 shift: %g vs %g", x.ent[3], y.ent[3]);

    /* The backward stays finite with −inf logits and huge logits. */
    float dz[N * V] = {0};
    crossentropy_backward(dz, x.a, x.b, x.logits, x.targets, x.lse, x.ent, N, V);
    cr_assert_eq(first_nonfinite(dz, N * V), -1);
    cr_assert_eq(dz[5 * V + 0], 0.0f, "a −inf logit has zero gradient");
}

Test(crossentropy, all_one_value_row_and_skipped_outputs) {
    /* V equal logits: uniform p, H = log V, logp = −log V; NULL outputs are skipped. */
    float z[2 * V], lse[2], lp[2];
    for (int j = 0; j < 2 * V; j++) z[j] = 0.37f;
    int tg[2] = {3, 5};
    crossentropy_forward(NULL, lp, NULL, lse, z, tg, NULL, 2, V);
    cr_assert(fabs(lp[0] + log((double)V)) < 1e-6 && fabs(lse[1] - (0.37 + log((double)V))) < 1e-6);
}

Test(crossentropy, out_of_range_target_is_nan_not_silent) {
    float z[V], lse, lp, loss, ent;
    test_rng r;
    test_rng_seed(&r, 5);
    fill_uniform(z, V, -1, 1, &r);
    int tg = V;
    crossentropy_forward(&loss, &lp, &ent, &lse, z, &tg, NULL, 1, V);
    cr_assert(isnan(lp) && isnan(loss), "target == V must poison logp/loss, got %g %g", lp, loss);
    cr_assert(isfinite(lse) && isfinite(ent));
}

Test(crossentropy, backward_logp_and_entropy_paths_match_finite_differences) {
    ce_ctx x;
    ce_init(&x, 2);
    memset(x.c, 0, sizeof x.c);
    ce_loss(&x);
    test_rng r;
    test_rng_seed(&r, 3);
    float d0[N * V], d[N * V], g[N * V];
    fill_uniform(d0, N * V, -1, 1, &r);
    /* logp path alone, then the entropy path alone, then both, each on a random prefill (+=) */
    for (int path = 0; path < 3; path++) {
        ce_ctx y = x;
        if (path == 0) memset(y.b, 0, sizeof y.b);
        if (path == 1) memset(y.a, 0, sizeof y.a);
        memcpy(d, d0, sizeof d);
        crossentropy_backward(d, path == 1 ? NULL : y.a, path == 0 ? NULL : y.b, y.logits, y.targets, y.lse, y.ent,
                              N, V);
        for (int i = 0; i < N * V; i++) g[i] = d[i] - d0[i];
        const char *what[3] = {"dlogits (logp path)", "dlogits (entropy path)", "dlogits (both)"};
        EXPECT_GRAD(what[path], y.logits, g, N * V, ce_loss, &y);
        /* the ignored rows take only the entropy term: nothing at all on the logp path */
        if (path == 0)
            for (int j = 0; j < V; j++) cr_assert_eq(g[1 * V + j], 0.0f, "ignored row got a logp gradient");
    }
}

Test(crossentropy, loss_backward_matches_finite_differences_with_mask) {
    ce_ctx x;
    ce_init(&x, 4);
    memset(x.a, 0, sizeof x.a);
    memset(x.b, 0, sizeof x.b);
    ce_loss(&x);
    test_rng r;
    test_rng_seed(&r, 6);
    float d0[N * V], d[N * V], g[N * V];
    fill_uniform(d0, N * V, -1, 1, &r);
    memcpy(d, d0, sizeof d);
    crossentropy_loss_backward(d, x.c, x.logits, x.targets, x.mask, x.lse, N, V);
    for (int i = 0; i < N * V; i++) g[i] = d[i] - d0[i];
    EXPECT_GRAD("dlogits (loss)", x.logits, g, N * V, ce_loss, &x);
    for (int j = 0; j < V; j++) {
        cr_assert_eq(g[2 * V + j], 0.0f, "masked row got a gradient");
        cr_assert_eq(g[4 * V + j], 0.0f, "ignored row got a gradient");
    }
}
