/* test_attention.c — causal multi-head attention with Dqk ≠ Dv and packed segments.
 *
 * - The forward (out and lse) against a naive double-precision reference written here with an
 *   explicit (T, T) score matrix, with and without segments, B > 1, H > 1, and T long enough
 *   (150) to cross several query blocks and key blocks of the online softmax, with scores large
 *   enough that the running max must be rescaled.
 * - Isolation: changing q/k/v in another segment, another batch row or the future leaves out
 *   bit-identical.
 * - The backward (dq, dk, dv, accumulated onto random prefills) against central finite
 *   differences of L = Σ w·out, with and without segments, and across key blocks.
 *   Tolerance atol 1e-3 + rtol 1e-2: the forward runs in fp32 on outputs of order 1 (rounding
 *   ~6e-8 each, a few hundred terms ⇒ ~1e-6 in L ⇒ ~5e-5 after dividing by 2h = 2e-2), and the
 *   O(h²) truncation of the softmax is ~1e-4; a missing δ_t, a dropped scale or a sign error moves
 *   gradients of order 0.1–1 by O(1).
 * - Thread-count independence of both passes (bit-identical with 1 and 3 threads).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "tests/util/check.h"

#define FD_H 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

#define EXPECT_GRAD(WHAT, X, ANA, NEL, LOSS, CTX, MAXN)                                                      \
    do {                                                                                                     \
        fd_result r_;                                                                                        \
        cr_assert_eq(first_nonfinite((ANA), (NEL)), -1, "%s: non-finite analytic gradient", (WHAT));         \
        int ok_ = fd_check((X), (ANA), (NEL), (LOSS), (CTX), FD_H, FD_ATOL, FD_RTOL, (MAXN), &r_);           \
        cr_assert(ok_, "%s: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", (WHAT),  \
                  r_.worst_index, r_.numeric, r_.analytic, r_.worst_ratio, r_.checked);                     \
    } while (0)

/* One problem: shapes, inputs, outputs, loss weights. */
typedef struct attn_case {
    int B, T, H, Dqk, Dv;
    float scale;
    float *q, *k, *v, *out, *lse, *wl;
    int *segment; /* NULL or (B, T) */
} attn_case;

static size_t nqk(const attn_case *c) { return (size_t)c->B * c->T * c->H * c->Dqk; }
static size_t nv(const attn_case *c) { return (size_t)c->B * c->T * c->H * c->Dv; }

static float *alloc_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

/* seg_len > 0: batch row b is packed with segments of length seg_len + b (ids start at 10·b,
 * so they differ between rows too); seg_len == 0: no segments. */
static void case_init(attn_case *c, int B, int T, int H, int Dqk, int Dv, int seg_len, float qk_std, uint64_t seed) {
    *c = (attn_case){B, T, H, Dqk, Dv, 1.3f / sqrtf((float)Dqk), NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    test_rng r;
    test_rng_seed(&r, seed);
    c->q = alloc_floats(nqk(c));
    c->k = alloc_floats(nqk(c));
    c->v = alloc_floats(nv(c));
    c->out = alloc_floats(nv(c));
    c->wl = alloc_floats(nv(c));
    c->lse = alloc_floats((size_t)B * H * T);
    fill_normal(c->q, nqk(c), qk_std, &r);
    fill_normal(c->k, nqk(c), qk_std, &r);
    fill_normal(c->v, nv(c), 1.0f, &r);
    fill_uniform(c->wl, nv(c), -1.0f, 1.0f, &r);
    if (seg_len > 0) {
        c->segment = malloc((size_t)B * T * sizeof(int));
        cr_assert_not_null(c->segment);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) c->segment[b * T + t] = 10 * b + t / (seg_len + b);
    }
}

static void case_free(attn_case *c) {
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->out);
    free(c->lse);
    free(c->wl);
    free(c->segment);
}

static void case_forward(attn_case *c) {
    attention_forward(c->out, c->lse, c->q, c->k, c->v, c->segment, c->scale, c->B, c->T, c->H, c->Dqk, c->Dv);
}

static double case_loss(void *p) {
    attn_case *c = p;
    case_forward(c);
    return dot_double(c->wl, c->out, nv(c));
}

/* Naive reference in double: the full (T, T) score matrix per (b, h), masked by causality and
 * segment, softmax, then P·V. */
static void ref_attention(double *out, double *lse, const attn_case *c) {
    int B = c->B, T = c->T, H = c->H, Dqk = c->Dqk, Dv = c->Dv;
    double *S = malloc((size_t)T * T * sizeof(double));
    cr_assert_not_null(S);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++)
                for (int s = 0; s < T; s++) {
                    int allowed = s <= t && (!c->segment || c->segment[b * T + s] == c->segment[b * T + t]);
                    double x = -INFINITY;
                    if (allowed) {
                        x = 0;
                        for (int d = 0; d < Dqk; d++)
                            x += (double)c->q[((size_t)(b * T + t) * H + h) * Dqk + d] *
                                 c->k[((size_t)(b * T + s) * H + h) * Dqk + d];
                        x *= c->scale;
                    }
                    S[(size_t)t * T + s] = x;
                }
            for (int t = 0; t < T; t++) {
                double m = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) m = fmax(m, S[(size_t)t * T + s]);
                for (int s = 0; s < T; s++) sum += exp(S[(size_t)t * T + s] - m);
                lse[((size_t)b * H + h) * T + t] = m + log(sum);
                for (int d = 0; d < Dv; d++) {
                    double o = 0;
                    for (int s = 0; s < T; s++)
                        o += exp(S[(size_t)t * T + s] - m) / sum * c->v[((size_t)(b * T + s) * H + h) * Dv + d];
                    out[((size_t)(b * T + t) * H + h) * Dv + d] = o;
                }
            }
        }
    free(S);
}

static void check_forward(attn_case *c, const char *what) {
    for (size_t i = 0; i < nv(c); i++) c->out[i] = NAN; /* must be overwritten */
    case_forward(c);
    size_t no = nv(c), nl = (size_t)c->B * c->H * c->T;
    double *ro = malloc(no * sizeof(double)), *rl = malloc(nl * sizeof(double));
    cr_assert(ro && rl);
    ref_attention(ro, rl, c);
    cr_assert_eq(first_nonfinite(c->out, no), -1, "%s: non-finite out", what);
    /* fp32 dot products and sums over ≤ 150 terms of order 1: ~1e-6 */
    for (size_t i = 0; i < no; i++)
        cr_assert(fabs(c->out[i] - ro[i]) <= 2e-5 + 1e-4 * fabs(ro[i]), "%s: out[%zu] = %.8g, want %.8g", what, i,
                  c->out[i], ro[i]);
    for (size_t i = 0; i < nl; i++)
        cr_assert(fabs(c->lse[i] - rl[i]) <= 2e-5 + 1e-5 * fabs(rl[i]), "%s: lse[%zu] = %.8g, want %.8g", what, i,
                  c->lse[i], rl[i]);
    free(ro);
    free(rl);
}

Test(attention, forward_matches_naive_double_reference) {
    attn_case c;
    case_init(&c, 2, 9, 3, 5, 4, 0, 1.0f, 1);
    check_forward(&c, "B2 T9 H3 5/4 no segments");
    case_free(&c);
    case_init(&c, 2, 9, 3, 5, 4, 3, 1.0f, 2);
    check_forward(&c, "B2 T9 H3 5/4 segments");
    case_free(&c);
    /* many query and key blocks; scores up to ~±30 so the running max is rescaled */
    case_init(&c, 2, 150, 2, 12, 7, 0, 2.0f, 3);
    check_forward(&c, "B2 T150 H2 12/7 no segments");
    case_free(&c);
    case_init(&c, 2, 150, 2, 12, 7, 41, 2.0f, 4);
    check_forward(&c, "B2 T150 H2 12/7 segments");
    case_free(&c);
    case_init(&c, 1, 1, 1, 3, 2, 0, 1.0f, 5); /* a single token attends to itself: out = v */
    case_forward(&c);
    cr_assert(c.out[0] == c.v[0] && c.out[1] == c.v[1]);
    case_free(&c);
}

/* Perturb q, k, v at the positions of batch row pb where pick(t) holds. */
static void perturb(attn_case *c, int pb, int (*pick)(const attn_case *, int, int), int ref_t, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    for (int t = 0; t < c->T; t++) {
        if (!pick(c, ref_t, t)) continue;
        size_t oqk = (size_t)(pb * c->T + t) * c->H * c->Dqk, ov = (size_t)(pb * c->T + t) * c->H * c->Dv;
        fill_normal(c->q + oqk, (size_t)c->H * c->Dqk, 3.0f, &r);
        fill_normal(c->k + oqk, (size_t)c->H * c->Dqk, 3.0f, &r);
        fill_normal(c->v + ov, (size_t)c->H * c->Dv, 3.0f, &r);
    }
}

static int other_segment(const attn_case *c, int ref_t, int t) { return c->segment[ref_t] != c->segment[t]; }
static int future(const attn_case *c, int ref_t, int t) { return t > ref_t; }
static int everything(const attn_case *c, int ref_t, int t) { return 1; }

Test(attention, no_attention_across_segments_batch_rows_or_future) {
    attn_case c;
    case_init(&c, 2, 70, 2, 6, 5, 20, 1.0f, 10); /* row 0: segments of 20, 20, 20, 10 */
    size_t n = nv(&c), row = (size_t)c.T * c.H * c.Dv;
    float *base = alloc_floats(n);
    case_forward(&c);
    memcpy(base, c.out, n * sizeof(float));
    /* every token outside segment 1 (t = 20..39) of row 0 changes; segment 1's outputs must not */
    perturb(&c, 0, other_segment, 25, 11);
    case_forward(&c);
    for (int t = 20; t < 40; t++) {
        size_t o = (size_t)t * c.H * c.Dv;
        cr_assert_eq(memcmp(c.out + o, base + o, (size_t)c.H * c.Dv * sizeof(float)), 0,
                     "token %d attended across a segment boundary", t);
    }
    cr_assert_eq(memcmp(c.out + row, base + row, row * sizeof(float)), 0, "batch row 1 changed");
    /* sanity: the perturbation did reach the other segments' outputs */
    cr_assert_neq(memcmp(c.out, base, 20 * (size_t)c.H * c.Dv * sizeof(float)), 0);
    case_free(&c);
    free(base);

    /* Causality without segments: perturbing t > 33 leaves t ≤ 33 unchanged; and row 0 leaves row 1. */
    case_init(&c, 2, 70, 2, 6, 5, 0, 1.0f, 12);
    base = alloc_floats(n);
    case_forward(&c);
    memcpy(base, c.out, n * sizeof(float));
    perturb(&c, 0, future, 33, 13);
    case_forward(&c);
    cr_assert_eq(memcmp(c.out, base, 34 * (size_t)c.H * c.Dv * sizeof(float)), 0, "a token saw the future");
    cr_assert_neq(memcmp(c.out + 34 * (size_t)c.H * c.Dv, base + 34 * (size_t)c.H * c.Dv, sizeof(float) * c.H * c.Dv),
                  0);
    perturb(&c, 0, everything, 0, 14);
    case_forward(&c);
    cr_assert_eq(memcmp(c.out + row, base + row, row * sizeof(float)), 0, "batch row 1 saw batch row 0");
    case_free(&c);
    free(base);
}

/* FD on dq, dk, dv; max_checks bounds the work on the long case. */
static void check_backward(attn_case *c, const char *what, long max_checks) {
    case_forward(c); /* out and lse at the unperturbed point */
    size_t a = nqk(c), b = nv(c);
    float *g0q = alloc_floats(a), *g0k = alloc_floats(a), *g0v = alloc_floats(b);
    float *dq = alloc_floats(a), *dk = alloc_floats(a), *dv = alloc_floats(b), *g = alloc_floats(a > b ? a : b);
    test_rng r;
    test_rng_seed(&r, 99);
    fill_uniform(g0q, a, -1, 1, &r);
    fill_uniform(g0k, a, -1, 1, &r);
    fill_uniform(g0v, b, -1, 1, &r);
    memcpy(dq, g0q, a * sizeof(float));
    memcpy(dk, g0k, a * sizeof(float));
    memcpy(dv, g0v, b * sizeof(float));
    attention_backward(dq, dk, dv, c->wl, c->q, c->k, c->v, c->out, c->lse, c->segment, c->scale, c->B, c->T, c->H,
                       c->Dqk, c->Dv);
    char name[160];
    for (size_t i = 0; i < a; i++) g[i] = dq[i] - g0q[i];
    snprintf(name, sizeof name, "%s dq", what);
    EXPECT_GRAD(name, c->q, g, a, case_loss, c, max_checks);
    for (size_t i = 0; i < a; i++) g[i] = dk[i] - g0k[i];
    snprintf(name, sizeof name, "%s dk", what);
    EXPECT_GRAD(name, c->k, g, a, case_loss, c, max_checks);
    for (size_t i = 0; i < b; i++) g[i] = dv[i] - g0v[i];
    snprintf(name, sizeof name, "%s dv", what);
    EXPECT_GRAD(name, c->v, g, b, case_loss, c, max_checks);
    free(g0q);
    free(g0k);
    free(g0v);
    free(dq);
    free(dk);
    free(dv);
    free(g);
}

Test(attention, backward_matches_finite_differences) {
    attn_case c;
    case_init(&c, 2, 9, 3, 5, 4, 0, 1.0f, 20);
    check_backward(&c, "B2 T9 H3 5/4 no segments", 0);
    case_free(&c);
    case_init(&c, 2, 9, 3, 5, 4, 3, 1.0f, 21);
    check_backward(&c, "B2 T9 H3 5/4 segments", 0);
    case_free(&c);
    /* across key blocks (64) and segment boundaries inside a block; a subset of elements */
    case_init(&c, 1, 80, 2, 4, 3, 30, 1.0f, 22);
    check_backward(&c, "B1 T80 H2 4/3 segments", 160);
    case_free(&c);
}

Test(attention, results_do_not_depend_on_thread_count) {
    attn_case c;
    case_init(&c, 2, 100, 3, 8, 6, 33, 1.0f, 30);
    size_t a = nqk(&c), b = nv(&c);
    float *out[2], *dq[2], *dk[2], *dv[2];
    int threads[2] = {1, 3};
    for (int i = 0; i < 2; i++) {
        omp_set_num_threads(threads[i]);
        out[i] = alloc_floats(b);
        dq[i] = alloc_floats(a);
        dk[i] = alloc_floats(a);
        dv[i] = alloc_floats(b);
        case_forward(&c);
        memcpy(out[i], c.out, b * sizeof(float));
        attention_backward(dq[i], dk[i], dv[i], c.wl, c.q, c.k, c.v, c.out, c.lse, c.segment, c.scale, c.B, c.T, c.H,
                           c.Dqk, c.Dv);
    }
    omp_set_num_threads(1);
    cr_assert_eq(memcmp(out[0], out[1], b * sizeof(float)), 0, "out depends on thread count");
    cr_assert_eq(memcmp(dq[0], dq[1], a * sizeof(float)), 0, "dq depends on thread count");
    cr_assert_eq(memcmp(dk[0], dk[1], a * sizeof(float)), 0, "dk depends on thread count");
    cr_assert_eq(memcmp(dv[0], dv[1], b * sizeof(float)), 0, "dv depends on thread count");
    for (int i = 0; i < 2; i++) {
        free(out[i]);
        free(dq[i]);
        free(dk[i]);
        free(dv[i]);
    }
    case_free(&c);
}
