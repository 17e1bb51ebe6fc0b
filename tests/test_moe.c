/* test_moe.c — MoE primitives: top-k against an independent sort, the routing plan's invariants,
 * gather→experts→scatter against the dense sum Σ_k w·f_e(x), and every backward against finite
 * differences (plus the composite toy MoE layer end to end).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/moe.h"
#include "tests/util/check.h"

/* ---- top-k ------------------------------------------------------------------------------ */

typedef struct moe_ref_item {
    float s;
    int e;
} moe_ref_item;

/* The reference order, written independently of the kernel: qsort with (NaN last, larger
 * first, lower index first). */
static int moe_ref_cmp(const void *pa, const void *pb) {
    const moe_ref_item *a = pa, *b = pb;
    int na = isnan(a->s), nb = isnan(b->s);
    if (na != nb) return na - nb;
    if (!na && a->s != b->s) return a->s > b->s ? -1 : 1;
    return a->e - b->e;
}

static void moe_ref_topk(int *idx, const float *scores, int E, int K) {
    moe_ref_item items[64];
    cr_assert_leq(E, 64);
    for (int e = 0; e < E; e++) items[e] = (moe_ref_item){scores[e], e};
    qsort(items, (size_t)E, sizeof items[0], moe_ref_cmp);
    for (int k = 0; k < K; k++) idx[k] = items[k].e;
}

Test(moe, topk_matches_sorted_reference_with_ties_and_nan) {
    enum { N = 200, E = 16 };
    test_rng rng;
    test_rng_seed(&rng, 3);
    float scores[N * E];
    /* few distinct values so that ties are everywhere; some rows get NaN and ±inf */
    for (int i = 0; i < N * E; i++) scores[i] = (float)(int)(test_rng_uniform(&rng) * 5.0) * 0.25f;
    for (int t = 0; t < N; t += 7) scores[t * E + t % E] = NAN;
    for (int t = 3; t < N; t += 11) scores[t * E + (t * 5) % E] = -INFINITY;
    for (int t = 5; t < N; t += 13) scores[t * E + (t * 3) % E] = INFINITY;
    for (int K = 1; K <= E; K += 3) {
        int idx[N * E], ref[E];
        float val[N * E];
        moe_topk(idx, val, scores, N, E, K);
        for (int t = 0; t < N; t++) {
            moe_ref_topk(ref, scores + t * E, E, K);
            for (int k = 0; k < K; k++) {
                cr_assert_eq(idx[t * K + k], ref[k], "K=%d token %d slot %d: expert %d, reference %d", K, t, k,
                             idx[t * K + k], ref[k]);
                float want = scores[t * E + ref[k]], got = val[t * K + k];
                cr_assert(got == want || (isnan(got) && isnan(want)), "K=%d token %d slot %d value", K, t, k);
            }
        }
    }
    /* val may be NULL */
    int idx1[N * 2], idx2[N * 2];
    moe_topk(idx1, NULL, scores, N, E, 2);
    float v[N * 2];
    moe_topk(idx2, v, scores, N, E, 2);
    cr_assert_eq(memcmp(idx1, idx2, sizeof idx1), 0);
}

typedef struct moe_topk_fd_ctx {
    float *scores, *val, *w;
    int *idx;
    int N, E, K;
} moe_topk_fd_ctx;

static double moe_topk_fd_loss(void *p) {
    moe_topk_fd_ctx *c = p;
    moe_topk(c->idx, c->val, c->scores, c->N, c->E, c->K);
    return dot_double(c->w, c->val, (size_t)c->N * c->K);
}

Test(moe, topk_backward_finite_differences) {
    enum { N = 6, E = 10, K = 3 };
    test_rng rng;
    test_rng_seed(&rng, 5);
    float scores[N * E], val[N * K], w[N * K], dscores[N * E];
    int idx[N * K];
    /* well separated scores (gaps ≥ 0.1, steps ≤ 2e-3): the FD never changes the selection */
    for (int t = 0; t < N; t++) {
        int perm[E];
        for (int e = 0; e < E; e++) perm[e] = e;
        for (int e = E - 1; e > 0; e--) {
            int j = (int)(test_rng_uniform(&rng) * (e + 1));
            int tmp = perm[e];
            perm[e] = perm[j];
            perm[j] = tmp;
        }
        for (int e = 0; e < E; e++) scores[t * E + e] = -1.0f + 0.2f * perm[e] + 0.05f * (float)test_rng_uniform(&rng);
    }
    fill_normal(w, N * K, 1.0f, &rng);
    moe_topk(idx, val, scores, N, E, K);
    for (int i = 0; i < N * E; i++) dscores[i] = 0.5f; /* (+=): the test subtracts this back */
    moe_topk_backward(dscores, w, idx, N, E, K);
    for (int i = 0; i < N * E; i++) dscores[i] -= 0.5f;
    cr_assert_eq(first_nonfinite(dscores, N * E), -1);
    /* val is a copy of the chosen scores, so L is exactly linear in them: the only FD error is
     * rounding of x ± h (exact here) and of the double sum: atol 1e-4, rtol 1e-3 is generous;
     * a dropped or misplaced term gives an error of |w| ~ 1. */
    moe_topk_fd_ctx ctx = {scores, val, w, idx, N, E, K};
    fd_result res;
    int ok = fd_check(scores, dscores, N * E, moe_topk_fd_loss, &ctx, 1e-3, 1e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "topk backward: element %ld numeric %.6g analytic %.6g", res.worst_index,
              res.numeric, res.analytic);
    /* and the unchosen scores got exactly nothing */
    int chosen = 0;
    for (int i = 0; i < N * E; i++) chosen += dscores[i] != 0.0f;
    cr_assert_eq(chosen, N * K);
}

/* ---- routing plan ------------------------------------------------------------------------ */

static void moe_check_plan(const moe_plan *plan, const int *idx, int N, int E, int K, int distinct) {
    int pairs = N * K;
    int *seen = calloc((size_t)pairs, sizeof *seen);
    int total = 0;
    for (int e = 0; e < E; e++) {
        int naive = 0;
        for (int p = 0; p < pairs; p++) naive += idx[p] == e;
        cr_assert_eq(plan->counts[e], naive, "expert %d count", e);
        cr_assert_eq(plan->offsets[e + 1] - plan->offsets[e], naive, "expert %d offsets", e);
        total += plan->counts[e];
    }
    cr_assert_eq(plan->offsets[0], 0);
    cr_assert_eq(plan->offsets[E], pairs);
    cr_assert_eq(total, pairs, "counts sum to N·K");
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            int row = plan->row_of[t * K + k];
            cr_assert(row >= 0 && row < pairs, "row out of range");
            cr_assert_eq(seen[row], 0, "row %d used twice", row);
            seen[row] = 1;
            cr_assert_eq(plan->token_of[row], t, "token_of inverts row_of");
            cr_assert_eq(plan->slot_of[row], k, "slot_of inverts row_of");
            int e = idx[t * K + k];
            cr_assert(row >= plan->offsets[e] && row < plan->offsets[e + 1], "row outside its expert's block");
        }
    for (int e = 0; e < E; e++)
        for (int r = plan->offsets[e] + 1; r < plan->offsets[e + 1]; r++) {
            int t0 = plan->token_of[r - 1], t1 = plan->token_of[r];
            cr_assert(t0 < t1 || (!distinct && t0 == t1 && plan->slot_of[r - 1] < plan->slot_of[r]),
                      "expert %d rows %d,%d not in token order (%d, %d)", e, r - 1, r, t0, t1);
        }
    free(seen);
}

Test(moe, plan_invariants) {
    test_rng rng;
    test_rng_seed(&rng, 9);
    int shapes[][3] = {{1, 4, 1}, {13, 8, 3}, {40, 16, 6}, {7, 5, 5}, {25, 64, 8}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], E = shapes[s][1], K = shapes[s][2];
        int *idx = malloc((size_t)N * K * sizeof *idx);
        int *buf = malloc(moe_plan_ints(N, E, K) * sizeof *buf);
        float *scores = malloc((size_t)N * E * sizeof *scores);
        /* distinct experts per token, as a router produces; expert 0 never chosen (an empty expert) */
        fill_uniform(scores, (size_t)N * E, 0.0f, 1.0f, &rng);
        for (int t = 0; t < N; t++) scores[(size_t)t * E] = -1.0f;
        if (K < E) {
            moe_topk(idx, NULL, scores, N, E, K);
            moe_plan plan;
            moe_plan_build(&plan, buf, idx, N, E, K);
            cr_assert_eq(plan.counts[0], 0);
            moe_check_plan(&plan, idx, N, E, K, 1);
        }
        /* arbitrary idx, repeats within a token allowed */
        for (int p = 0; p < N * K; p++) idx[p] = (int)(test_rng_uniform(&rng) * E);
        moe_plan plan;
        moe_plan_build(&plan, buf, idx, N, E, K);
        moe_check_plan(&plan, idx, N, E, K, 0);
        free(idx);
        free(buf);
        free(scores);
    }
    cr_assert_eq(moe_plan_ints(3, 4, 2), (size_t)(4 + 5 + 3 * 6));
}

/* ---- gather / scatter ----------------------------------------------------------------------- */

enum { TN = 9, TE = 5, TK = 2, TC = 6, TC2 = 4 };

typedef struct moe_toy {
    int idx[TN * TK];
    int buf[TE + TE + 1 + 3 * TN * TK];
    moe_plan plan;
} moe_toy;

static void moe_toy_route(moe_toy *m, test_rng *rng) {
    float scores[TN * TE];
    fill_uniform(scores, TN * TE, -1.0f, 1.0f, rng);
    moe_topk(m->idx, NULL, scores, TN, TE, TK);
    cr_assert_eq(moe_plan_ints(TN, TE, TK), sizeof m->buf / sizeof m->buf[0]);
    moe_plan_build(&m->plan, m->buf, m->idx, TN, TE, TK);
}

typedef struct moe_gather_fd_ctx {
    float *x, *xs, *w;
    const moe_plan *plan;
} moe_gather_fd_ctx;

static double moe_gather_fd_loss(void *p) {
    moe_gather_fd_ctx *c = p;
    moe_gather_forward(c->xs, c->x, c->plan, TC);
    return dot_double(c->w, c->xs, TN * TK * TC);
}

Test(moe, gather_forward_and_backward) {
    test_rng rng;
    test_rng_seed(&rng, 21);
    moe_toy m;
    moe_toy_route(&m, &rng);
    float x[TN * TC], xs[TN * TK * TC], w[TN * TK * TC], dx[TN * TC], dx0[TN * TC];
    fill_normal(x, TN * TC, 1.0f, &rng);
    fill_normal(w, TN * TK * TC, 1.0f, &rng);
    moe_gather_forward(xs, x, &m.plan, TC);
    for (int r = 0; r < TN * TK; r++)
        for (int c = 0; c < TC; c++) cr_assert_eq(xs[r * TC + c], x[m.plan.token_of[r] * TC + c]);
    fill_normal(dx0, TN * TC, 1.0f, &rng);
    memcpy(dx, dx0, sizeof dx);
    moe_gather_backward(dx, w, &m.plan, TC); /* (+=) onto dx0 */
    for (int i = 0; i < TN * TC; i++) dx[i] -= dx0[i];
    cr_assert_eq(first_nonfinite(dx, TN * TC), -1);
    /* gather is a copy, L is linear: the FD error is the fp32 rounding of (dx0 + g) − dx0 above
     * (~1e-7·|dx0|) plus that of the double sum; atol 1e-4, rtol 1e-3 vs O(1) for a lost term. */
    moe_gather_fd_ctx ctx = {x, xs, w, &m.plan};
    fd_result res;
    int ok = fd_check(x, dx, TN * TC, moe_gather_fd_loss, &ctx, 1e-2, 1e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "gather backward: element %ld numeric %.6g analytic %.6g", res.worst_index,
              res.numeric, res.analytic);
}

typedef struct moe_scatter_fd_ctx {
    float *ys, *weights, *out, *w;
    const moe_plan *plan;
} moe_scatter_fd_ctx;

static double moe_scatter_fd_loss(void *p) {
    moe_scatter_fd_ctx *c = p;
    memset(c->out, 0, TN * TC * sizeof *c->out);
    moe_scatter_forward(c->out, c->ys, c->weights, c->plan, TC);
    return dot_double(c->w, c->out, TN * TC);
}

Test(moe, scatter_forward_and_backward) {
    test_rng rng;
    test_rng_seed(&rng, 22);
    moe_toy m;
    moe_toy_route(&m, &rng);
    float ys[TN * TK * TC], weights[TN * TK], out[TN * TC], base[TN * TC], w[TN * TC];
    float dys[TN * TK * TC], dweights[TN * TK], dw0[TN * TK];
    fill_normal(ys, TN * TK * TC, 1.0f, &rng);
    fill_uniform(weights, TN * TK, 0.1f, 1.5f, &rng);
    fill_normal(w, TN * TC, 1.0f, &rng);
    /* forward (+=) onto a non-zero base, against the naive double sum */
    fill_normal(base, TN * TC, 1.0f, &rng);
    memcpy(out, base, sizeof out);
    moe_scatter_forward(out, ys, weights, &m.plan, TC);
    for (int t = 0; t < TN; t++)
        for (int c = 0; c < TC; c++) {
            double want = base[t * TC + c];
            for (int k = 0; k < TK; k++) {
                /* find the row by search, not through row_of */
                int row = -1;
                for (int r = 0; r < TN * TK; r++)
                    if (m.plan.token_of[r] == t && m.plan.slot_of[r] == k) row = r;
                want += (double)weights[t * TK + k] * ys[row * TC + c];
            }
            cr_assert(fabs(out[t * TC + c] - want) <= 1e-5 * (1 + fabs(want)), "scatter out[%d,%d]", t, c);
        }
    /* backward: dys (=) — prefill with garbage that must be overwritten; dweights (+=) */
    for (int i = 0; i < TN * TK * TC; i++) dys[i] = 1e30f;
    fill_normal(dw0, TN * TK, 1.0f, &rng);
    memcpy(dweights, dw0, sizeof dweights);
    moe_scatter_backward(dys, dweights, w, ys, weights, &m.plan, TC);
    for (int i = 0; i < TN * TK; i++) dweights[i] -= dw0[i];
    cr_assert_eq(first_nonfinite(dys, TN * TK * TC), -1);
    cr_assert_eq(first_nonfinite(dweights, TN * TK), -1);
    for (int i = 0; i < TN * TK * TC; i++) cr_assert(fabsf(dys[i]) < 1e3f, "dys[%d] not overwritten", i);
    /* L is linear in ys and in weights separately (bilinear overall, and FD moves one element at
     * a time): FD error is fp32 rounding of out (~1e-7·Σ|terms| ~ 1e-6) over 2h = 2e-2, ~1e-4;
     * atol 5e-4 + rtol 1e-3 passes it, while a missing weight factor or wrong row is O(1). */
    moe_scatter_fd_ctx ctx = {ys, weights, out, w, &m.plan};
    fd_result res;
    int ok = fd_check(ys, dys, TN * TK * TC, moe_scatter_fd_loss, &ctx, 1e-2, 5e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "scatter dys: element %ld numeric %.6g analytic %.6g", res.worst_index,
              res.numeric, res.analytic);
    ok = fd_check(weights, dweights, TN * TK, moe_scatter_fd_loss, &ctx, 1e-2, 5e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "scatter dweights: element %ld numeric %.6g analytic %.6g", res.worst_index,
              res.numeric, res.analytic);
    /* NULL outputs are allowed */
    float dys2[TN * TK * TC];
    moe_scatter_backward(dys2, NULL, w, ys, weights, &m.plan, TC);
    cr_assert_eq(memcmp(dys2, dys, sizeof dys), 0);
    moe_scatter_backward(NULL, dweights, w, ys, weights, &m.plan, TC);
}

/* ---- the toy MoE layer: y_t = base_t + Σ_k w[t,k]·W_{e_k} x_t, linear experts (TC2, TC) ---- */

typedef struct moe_layer_ctx {
    float *x, *weights, *wexp, *out, *lw;
    moe_toy *m;
    float xs[TN * TK * TC], ys[TN * TK * TC2];
} moe_layer_ctx;

static void moe_layer_forward(moe_layer_ctx *c) {
    const moe_plan *plan = &c->m->plan;
    moe_gather_forward(c->xs, c->x, plan, TC);
    for (int e = 0; e < TE; e++)
        for (int r = plan->offsets[e]; r < plan->offsets[e + 1]; r++)
            for (int o = 0; o < TC2; o++) {
                float s = 0;
                for (int i = 0; i < TC; i++) s += c->wexp[(e * TC2 + o) * TC + i] * c->xs[r * TC + i];
                c->ys[r * TC2 + o] = s;
            }
    memset(c->out, 0, TN * TC2 * sizeof *c->out);
    moe_scatter_forward(c->out, c->ys, c->weights, plan, TC2);
}

static double moe_layer_loss(void *p) {
    moe_layer_ctx *c = p;
    moe_layer_forward(c);
    return dot_double(c->lw, c->out, TN * TC2);
}

Test(moe, layer_matches_dense_sum_and_finite_differences) {
    test_rng rng;
    test_rng_seed(&rng, 23);
    moe_toy m;
    moe_toy_route(&m, &rng);
    float x[TN * TC], weights[TN * TK], wexp[TE * TC2 * TC], out[TN * TC2], lw[TN * TC2];
    fill_normal(x, TN * TC, 1.0f, &rng);
    fill_uniform(weights, TN * TK, 0.1f, 1.0f, &rng);
    fill_normal(wexp, TE * TC2 * TC, 0.5f, &rng);
    fill_normal(lw, TN * TC2, 1.0f, &rng);
    moe_layer_ctx c;
    c = (moe_layer_ctx){.x = x, .weights = weights, .wexp = wexp, .out = out, .lw = lw, .m = &m};
    moe_layer_forward(&c);
    /* dense reference in double, straight from idx: no plan involved */
    for (int t = 0; t < TN; t++)
        for (int o = 0; o < TC2; o++) {
            double want = 0;
            for (int k = 0; k < TK; k++) {
                int e = m.idx[t * TK + k];
                double f = 0;
                for (int i = 0; i < TC; i++) f += (double)wexp[(e * TC2 + o) * TC + i] * x[t * TC + i];
                want += weights[t * TK + k] * f;
            }
            cr_assert(fabs(out[t * TC2 + o] - want) <= 1e-5 + 1e-5 * fabs(want), "y[%d,%d] = %.8g, dense %.8g", t,
                      o, out[t * TC2 + o], want);
        }
    /* backward through the chain: scatter → experts (dxs = Wᵀ dys) → gather */
    float dys[TN * TK * TC2], dweights[TN * TK] = {0}, dxs[TN * TK * TC], dx[TN * TC] = {0};
    moe_scatter_backward(dys, dweights, lw, c.ys, weights, &m.plan, TC2);
    for (int e = 0; e < TE; e++)
        for (int r = m.plan.offsets[e]; r < m.plan.offsets[e + 1]; r++)
            for (int i = 0; i < TC; i++) {
                float s = 0;
                for (int o = 0; o < TC2; o++) s += wexp[(e * TC2 + o) * TC + i] * dys[r * TC2 + o];
                dxs[r * TC + i] = s;
            }
    moe_gather_backward(dx, dxs, &m.plan, TC);
    cr_assert_eq(first_nonfinite(dx, TN * TC), -1);
    cr_assert_eq(first_nonfinite(dweights, TN * TK), -1);
    /* L is linear in x and in the weights: atol 5e-4 + rtol 1e-3 covers fp32 forward rounding
     * over 2h (see above); a broken gather/scatter term is O(0.1–1). */
    fd_result res;
    int ok = fd_check(x, dx, TN * TC, moe_layer_loss, &c, 1e-2, 5e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "layer dx: element %ld numeric %.6g analytic %.6g", res.worst_index, res.numeric,
              res.analytic);
    ok = fd_check(weights, dweights, TN * TK, moe_layer_loss, &c, 1e-2, 5e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "layer dweights: element %ld numeric %.6g analytic %.6g", res.worst_index,
              res.numeric, res.analytic);
}
