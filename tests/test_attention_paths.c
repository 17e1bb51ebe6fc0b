/* test_attention_paths.c — both attention implementations (the loop path and the AVX2 block path,
 * forced through attention_*_path) against a naive double-precision forward and backward written
 * here, on shapes that cross the block path's boundaries: T = 1 and 5 (tiny), 63/65 (one query
 * block of 64 ± 1), 130 and 300 (several query blocks; 300 also crosses the 256-key block, with
 * later keys scaled up so the running max must be rescaled between key blocks); head sizes that
 * are not multiples of the 6 × 16 register tile (5/4, 9/17, 12/7, 20/9, 72/40); no segments,
 * sorted segments (packed sequences, including a segment that spans a whole key block so that
 * some rows see nothing in it) and unsorted ids (an id that comes back later: those keys must be
 * compared one by one).
 *
 * Tolerances. Forward: out within 2e-5 + 1e-4·|ref|, lse within 2e-5 + 1e-5·|ref| (fp32 dot
 * products of ≤ 72 terms and sums of ≤ 300 probabilities, each rounding ~6e-8 relative; e^x of
 * the block path is within 2 ulp). Backward against the double reference: 1e-4 + 1e-3·|ref| per
 * element (each gradient sums ≤ 300 fp32 products of order 0.01–1; observed errors are ~1e-6);
 * a dropped δ, scale or band edge moves gradients of order 0.1–1 by O(1). The finite-difference
 * check (atol 1e-3 + rtol 1e-2, h = 1e-2, as in test_attention.c) makes the reference itself
 * answer to an independent peer.
 * The exponential itself, read out of the backward (which takes lse as an input): ≤ 2 ulp.
 * Also: a gradient left NULL is skipped and the others are bit-identical to a full call;
 * bit-identical results for 1 and 3 threads; masked keys (future, other segments, including a
 * reappearing id's other runs) contribute exactly nothing.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention.h"
#include "tests/util/check.h"

typedef enum { SEG_NONE, SEG_SORTED, SEG_UNSORTED } seg_kind;

typedef struct pcase {
    int B, T, H, Dqk, Dv;
    float scale;
    attention_path path;
    float *q, *k, *v, *out, *lse, *wl;
    int *segment;
} pcase;

static size_t pc_nqk(const pcase *c) { return (size_t)c->B * c->T * c->H * c->Dqk; }
static size_t pc_nv(const pcase *c) { return (size_t)c->B * c->T * c->H * c->Dv; }

static float *pc_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert_not_null(p);
    return p;
}

/* Sorted: row b is packed with segments of seg_len + 7·b tokens (ids 10·b + index). Unsorted:
 * ids cycle 0, 1, 2, 0, 1, 2, ... every seg_len tokens, so each id comes back. Keys from
 * big_from on are scaled by 3 (larger scores late in the sequence). */
static void pc_init(pcase *c, int B, int T, int H, int Dqk, int Dv, seg_kind kind, int seg_len, float qk_std,
                    int big_from, uint64_t seed) {
    *c = (pcase){B, T, H, Dqk, Dv, 1.1f / sqrtf((float)Dqk), ATTENTION_PATH_AUTO, 0, 0, 0, 0, 0, 0, 0};
    test_rng r;
    test_rng_seed(&r, seed);
    c->q = pc_alloc(pc_nqk(c));
    c->k = pc_alloc(pc_nqk(c));
    c->v = pc_alloc(pc_nv(c));
    c->out = pc_alloc(pc_nv(c));
    c->wl = pc_alloc(pc_nv(c));
    c->lse = pc_alloc((size_t)B * H * T);
    fill_normal(c->q, pc_nqk(c), qk_std, &r);
    fill_normal(c->k, pc_nqk(c), qk_std, &r);
    fill_normal(c->v, pc_nv(c), 1.0f, &r);
    fill_uniform(c->wl, pc_nv(c), -1.0f, 1.0f, &r);
    for (int b = 0; b < B; b++)
        for (int t = big_from; t < T; t++)
            for (size_t i = 0; i < (size_t)H * Dqk; i++) c->k[((size_t)b * T + t) * H * Dqk + i] *= 3.0f;
    if (kind != SEG_NONE) {
        c->segment = malloc((size_t)B * T * sizeof(int));
        cr_assert_not_null(c->segment);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                c->segment[b * T + t] = kind == SEG_SORTED ? 10 * b + t / (seg_len + 7 * b) : (t / seg_len) % 3;
    }
}

static void pc_free(pcase *c) {
    free(c->q), free(c->k), free(c->v), free(c->out), free(c->lse), free(c->wl), free(c->segment);
}

static void pc_forward(pcase *c) {
    attention_forward_path(c->out, c->lse, c->q, c->k, c->v, c->segment, c->scale, c->B, c->T, c->H, c->Dqk, c->Dv,
                           c->path);
}

static void pc_backward(pcase *c, float *dq, float *dk, float *dv) {
    attention_backward_path(dq, dk, dv, c->wl, c->q, c->k, c->v, c->out, c->lse, c->segment, c->scale, c->B, c->T,
                            c->H, c->Dqk, c->Dv, c->path);
}

static int pc_allowed(const pcase *c, int b, int t, int s) {
    return s <= t && (!c->segment || c->segment[b * c->T + s] == c->segment[b * c->T + t]);
}

/* Naive double reference of the forward and of the backward of L = Σ wl·out: the full (T, T)
 * probability matrix per head. Any output pointer may be NULL. */
static void pc_reference(const pcase *c, double *out, double *lse, double *dq, double *dk, double *dv) {
    int T = c->T, H = c->H, Dqk = c->Dqk, Dv = c->Dv;
    double *P = malloc((size_t)T * T * sizeof(double)), *o = malloc((size_t)T * Dv * sizeof(double));
    cr_assert(P && o);
#define QK(X, b, t, h, d) ((double)(X)[((size_t)((b) * T + (t)) * H + (h)) * Dqk + (d)])
#define VV(X, b, t, h, d) ((double)(X)[((size_t)((b) * T + (t)) * H + (h)) * Dv + (d)])
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++) {
                double m = -INFINITY, sum = 0;
                for (int s = 0; s < T; s++) {
                    double x = -INFINITY;
                    if (pc_allowed(c, b, t, s)) {
                        x = 0;
                        for (int d = 0; d < Dqk; d++) x += QK(c->q, b, t, h, d) * QK(c->k, b, s, h, d);
                        x *= c->scale;
                    }
                    P[(size_t)t * T + s] = x;
                    m = fmax(m, x);
                }
                for (int s = 0; s < T; s++) sum += exp(P[(size_t)t * T + s] - m);
                if (lse) lse[((size_t)b * H + h) * T + t] = m + log(sum);
                for (int s = 0; s < T; s++) P[(size_t)t * T + s] = exp(P[(size_t)t * T + s] - m) / sum;
                for (int d = 0; d < Dv; d++) {
                    double a = 0;
                    for (int s = 0; s <= t; s++) a += P[(size_t)t * T + s] * VV(c->v, b, s, h, d);
                    o[(size_t)t * Dv + d] = a;
                    if (out) out[((size_t)(b * T + t) * H + h) * Dv + d] = a;
                }
            }
            if (!dq) continue;
            for (int t = 0; t < T; t++) {
                double delta = 0;
                for (int d = 0; d < Dv; d++) delta += VV(c->wl, b, t, h, d) * o[(size_t)t * Dv + d];
                for (int s = 0; s <= t; s++) {
                    double p = P[(size_t)t * T + s], dp = 0;
                    if (p == 0) continue;
                    for (int d = 0; d < Dv; d++) dp += VV(c->wl, b, t, h, d) * VV(c->v, b, s, h, d);
                    double ds = c->scale * p * (dp - delta);
                    for (int d = 0; d < Dqk; d++) {
                        dq[((size_t)(b * T + t) * H + h) * Dqk + d] += ds * QK(c->k, b, s, h, d);
                        dk[((size_t)(b * T + s) * H + h) * Dqk + d] += ds * QK(c->q, b, t, h, d);
                    }
                    for (int d = 0; d < Dv; d++)
                        dv[((size_t)(b * T + s) * H + h) * Dv + d] += p * VV(c->wl, b, t, h, d);
                }
            }
        }
#undef QK
#undef VV
    free(P);
    free(o);
}

static const char *path_name(attention_path p) { return p == ATTENTION_PATH_LOOP ? "loop" : "block"; }

/* got (after − before) vs want, |err| ≤ atol + rtol·|want|, all finite. */
static void expect_close(const char *what, const float *after, const float *before, const double *want, size_t n,
                         double atol, double rtol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double got = (double)after[i] - (before ? (double)before[i] : 0.0);
        cr_assert(isfinite(after[i]), "%s: element %zu is %g", what, i, after[i]);
        double r = fabs(got - want[i]) / (atol + rtol * fabs(want[i]));
        if (r > worst) worst = r, wi = i;
    }
    cr_assert(worst <= 1.0, "%s: element %zu = %.8g, want %.8g (%.3g of the tolerance)", what, wi,
              (double)after[wi] - (before ? (double)before[wi] : 0.0), want[wi], worst);
}

typedef struct shape {
    int B, T, H, Dqk, Dv;
    seg_kind kind;
    int seg_len;
    float qk_std;
    int big_from;
} shape;

static const shape SHAPES[] = {
    {1, 1, 1, 3, 2, SEG_NONE, 0, 1.0f, 1 << 30},        /* one token */
    {2, 5, 2, 5, 4, SEG_SORTED, 2, 1.0f, 1 << 30},      /* tiny */
    {2, 9, 3, 5, 4, SEG_UNSORTED, 2, 1.0f, 1 << 30},    /* tiny, ids come back */
    {1, 63, 2, 16, 16, SEG_NONE, 0, 2.0f, 1 << 30},     /* one query block minus one */
    {1, 65, 1, 20, 9, SEG_SORTED, 30, 1.5f, 1 << 30},   /* one query block plus one */
    {3, 130, 2, 9, 17, SEG_SORTED, 41, 1.0f, 1 << 30},  /* segments across query blocks */
    {1, 200, 1, 8, 8, SEG_UNSORTED, 13, 1.0f, 1 << 30}, /* unsorted ids across blocks */
    {2, 300, 1, 12, 7, SEG_NONE, 0, 1.0f, 256},         /* two key blocks, max grows in the second */
    {1, 300, 2, 72, 40, SEG_SORTED, 280, 1.0f, 256},    /* rows ≥ 280 see nothing in keys [0, 256) */
};
enum { NSHAPES = sizeof SHAPES / sizeof SHAPES[0] };
static const attention_path PATHS[2] = {ATTENTION_PATH_LOOP, ATTENTION_PATH_BLOCK};

static void shape_init(pcase *c, const shape *s, uint64_t seed) {
    pc_init(c, s->B, s->T, s->H, s->Dqk, s->Dv, s->kind, s->seg_len, s->qk_std, s->big_from, seed);
}

Test(attention_paths, forward_matches_double_reference_across_blocks) {
    for (int si = 0; si < NSHAPES; si++) {
        pcase c;
        shape_init(&c, &SHAPES[si], 100 + si);
        size_t no = pc_nv(&c), nl = (size_t)c.B * c.H * c.T;
        double *ro = malloc(no * sizeof(double)), *rl = malloc(nl * sizeof(double));
        cr_assert(ro && rl);
        pc_reference(&c, ro, rl, NULL, NULL, NULL);
        for (int pi = 0; pi < 2; pi++) {
            char what[96];
            c.path = PATHS[pi];
            for (size_t i = 0; i < no; i++) c.out[i] = NAN; /* must be overwritten */
            pc_forward(&c);
            snprintf(what, sizeof what, "%s T%d %d/%d shape %d out", path_name(c.path), c.T, c.Dqk, c.Dv, si);
            expect_close(what, c.out, NULL, ro, no, 2e-5, 1e-4);
            snprintf(what, sizeof what, "%s T%d %d/%d shape %d lse", path_name(c.path), c.T, c.Dqk, c.Dv, si);
            expect_close(what, c.lse, NULL, rl, nl, 2e-5, 1e-5);
        }
        free(ro), free(rl);
        pc_free(&c);
    }
}

Test(attention_paths, backward_matches_double_reference_across_blocks) {
    for (int si = 0; si < NSHAPES; si++) {
        pcase c;
        shape_init(&c, &SHAPES[si], 200 + si);
        size_t a = pc_nqk(&c), b = pc_nv(&c);
        double *rq = calloc(a, sizeof(double)), *rk = calloc(a, sizeof(double)), *rv = calloc(b, sizeof(double));
        float *q0 = pc_alloc(a), *k0 = pc_alloc(a), *v0 = pc_alloc(b), *dq = pc_alloc(a), *dk = pc_alloc(a),
              *dv = pc_alloc(b);
        cr_assert(rq && rk && rv);
        pc_reference(&c, NULL, NULL, rq, rk, rv);
        test_rng r;
        test_rng_seed(&r, 300 + si);
        fill_uniform(q0, a, -1, 1, &r); /* random prefills: the backward must add (+=) */
        fill_uniform(k0, a, -1, 1, &r);
        fill_uniform(v0, b, -1, 1, &r);
        for (int pi = 0; pi < 2; pi++) {
            char what[96];
            c.path = PATHS[pi];
            pc_forward(&c);
            memcpy(dq, q0, a * sizeof(float));
            memcpy(dk, k0, a * sizeof(float));
            memcpy(dv, v0, b * sizeof(float));
            pc_backward(&c, dq, dk, dv);
            snprintf(what, sizeof what, "%s T%d %d/%d shape %d dq", path_name(c.path), c.T, c.Dqk, c.Dv, si);
            expect_close(what, dq, q0, rq, a, 1e-4, 1e-3);
            snprintf(what, sizeof what, "%s T%d %d/%d shape %d dk", path_name(c.path), c.T, c.Dqk, c.Dv, si);
            expect_close(what, dk, k0, rk, a, 1e-4, 1e-3);
            snprintf(what, sizeof what, "%s T%d %d/%d shape %d dv", path_name(c.path), c.T, c.Dqk, c.Dv, si);
            expect_close(what, dv, v0, rv, b, 1e-4, 1e-3);
        }
        free(rq), free(rk), free(rv), free(q0), free(k0), free(v0), free(dq), free(dk), free(dv);
        pc_free(&c);
    }
}

static double pc_loss(void *p) {
    pcase *c = p;
    pc_forward(c);
    return dot_double(c->wl, c->out, pc_nv(c));
}

#define EXPECT_FD(WHAT, X, ANA, NEL, CTX, MAXN)                                                              \
    do {                                                                                                     \
        fd_result r_;                                                                                        \
        int ok_ = fd_check((X), (ANA), (NEL), pc_loss, (CTX), 1e-2, 1e-3, 1e-2, (MAXN), &r_);                \
        cr_assert(ok_, "%s: FD mismatch at %ld: numeric %.7g, analytic %.7g (ratio %.3g over %ld)", (WHAT),  \
                  r_.worst_index, r_.numeric, r_.analytic, r_.worst_ratio, r_.checked);                     \
    } while (0)

/* The two block-path shapes that stress the band logic, and the loop path on a small case. */
Test(attention_paths, backward_matches_finite_differences) {
    const shape fd_shapes[3] = {
        {1, 300, 1, 12, 7, SEG_SORTED, 280, 1.0f, 256},
        {1, 90, 2, 6, 5, SEG_UNSORTED, 11, 1.0f, 1 << 30},
        {2, 9, 2, 5, 4, SEG_SORTED, 3, 1.0f, 1 << 30},
    };
    const attention_path fd_paths[3] = {ATTENTION_PATH_BLOCK, ATTENTION_PATH_BLOCK, ATTENTION_PATH_LOOP};
    for (int si = 0; si < 3; si++) {
        pcase c;
        shape_init(&c, &fd_shapes[si], 400 + si);
        c.path = fd_paths[si];
        pc_forward(&c);
        size_t a = pc_nqk(&c), b = pc_nv(&c);
        float *dq = pc_alloc(a), *dk = pc_alloc(a), *dv = pc_alloc(b);
        pc_backward(&c, dq, dk, dv);
        char what[96];
        snprintf(what, sizeof what, "%s fd shape %d dq", path_name(c.path), si);
        EXPECT_FD(what, c.q, dq, a, &c, 150);
        snprintf(what, sizeof what, "%s fd shape %d dk", path_name(c.path), si);
        EXPECT_FD(what, c.k, dk, a, &c, 150);
        snprintf(what, sizeof what, "%s fd shape %d dv", path_name(c.path), si);
        EXPECT_FD(what, c.v, dv, b, &c, 150);
        free(dq), free(dk), free(dv);
        pc_free(&c);
    }
}

/* dq, dk, dv requested one at a time equal the same gradient from a full call, bit for bit, and a
 * NULL gradient is not touched (it is NULL: a crash would show it). */
Test(attention_paths, null_gradients_are_skipped) {
    for (int pi = 0; pi < 2; pi++) {
        pcase c;
        pc_init(&c, 2, 140, 2, 10, 6, SEG_SORTED, 50, 1.0f, 1 << 30, 500);
        c.path = PATHS[pi];
        pc_forward(&c);
        size_t a = pc_nqk(&c), b = pc_nv(&c);
        float *dq = pc_alloc(a), *dk = pc_alloc(a), *dv = pc_alloc(b), *one = pc_alloc(a > b ? a : b);
        pc_backward(&c, dq, dk, dv);
        pc_backward(&c, one, NULL, NULL);
        cr_assert_eq(memcmp(one, dq, a * sizeof(float)), 0, "%s: dq alone differs", path_name(c.path));
        memset(one, 0, a * sizeof(float));
        pc_backward(&c, NULL, one, NULL);
        cr_assert_eq(memcmp(one, dk, a * sizeof(float)), 0, "%s: dk alone differs", path_name(c.path));
        memset(one, 0, b * sizeof(float));
        pc_backward(&c, NULL, NULL, one);
        cr_assert_eq(memcmp(one, dv, b * sizeof(float)), 0, "%s: dv alone differs", path_name(c.path));
        free(dq), free(dk), free(dv), free(one);
        pc_free(&c);
    }
}

Test(attention_paths, results_do_not_depend_on_thread_count) {
    for (int pi = 0; pi < 2; pi++)
        for (int kind = SEG_SORTED; kind <= SEG_UNSORTED; kind++) {
            pcase c;
            pc_init(&c, 2, 300, 3, 12, 8, (seg_kind)kind, kind == SEG_SORTED ? 90 : 17, 1.0f, 200, 600 + kind);
            c.path = PATHS[pi];
            size_t a = pc_nqk(&c), b = pc_nv(&c), nl = (size_t)c.B * c.H * c.T;
            float *out[2], *lse[2], *dq[2], *dk[2], *dv[2];
            const int threads[2] = {1, 3};
            for (int i = 0; i < 2; i++) {
                omp_set_num_threads(threads[i]);
                out[i] = pc_alloc(b), lse[i] = pc_alloc(nl);
                dq[i] = pc_alloc(a), dk[i] = pc_alloc(a), dv[i] = pc_alloc(b);
                pc_forward(&c);
                memcpy(out[i], c.out, b * sizeof(float));
                memcpy(lse[i], c.lse, nl * sizeof(float));
                pc_backward(&c, dq[i], dk[i], dv[i]);
            }
            omp_set_num_threads(1);
            const char *p = path_name(c.path);
            cr_assert_eq(memcmp(out[0], out[1], b * sizeof(float)), 0, "%s: out depends on thread count", p);
            cr_assert_eq(memcmp(lse[0], lse[1], nl * sizeof(float)), 0, "%s: lse depends on thread count", p);
            cr_assert_eq(memcmp(dq[0], dq[1], a * sizeof(float)), 0, "%s: dq depends on thread count", p);
            cr_assert_eq(memcmp(dk[0], dk[1], a * sizeof(float)), 0, "%s: dk depends on thread count", p);
            cr_assert_eq(memcmp(dv[0], dv[1], b * sizeof(float)), 0, "%s: dv depends on thread count", p);
            for (int i = 0; i < 2; i++) free(out[i]), free(lse[i]), free(dq[i]), free(dk[i]), free(dv[i]);
            pc_free(&c);
        }
}

/* Perturbing every token that query row t0 must not see (its future, and other ids) leaves the
 * outputs of t0's id up to t0 bit-identical; with unsorted ids that includes the id's earlier
 * runs, which t0 does see (so they are left alone). */
Test(attention_paths, masked_keys_contribute_exactly_zero) {
    for (int pi = 0; pi < 2; pi++)
        for (int kind = SEG_SORTED; kind <= SEG_UNSORTED; kind++) {
            pcase c;
            pc_init(&c, 1, 280, 2, 9, 6, (seg_kind)kind, kind == SEG_SORTED ? 70 : 23, 1.0f, 1 << 30, 700 + kind);
            c.path = PATHS[pi];
            const int t0 = 200;
            size_t row = (size_t)c.H * c.Dv, n = pc_nv(&c);
            float *base = pc_alloc(n);
            pc_forward(&c);
            memcpy(base, c.out, n * sizeof(float));
            test_rng r;
            test_rng_seed(&r, 800);
            for (int t = 0; t < c.T; t++) {
                if (t <= t0 && c.segment[t] == c.segment[t0]) continue;
                fill_normal(c.q + (size_t)t * c.H * c.Dqk, (size_t)c.H * c.Dqk, 3.0f, &r);
                fill_normal(c.k + (size_t)t * c.H * c.Dqk, (size_t)c.H * c.Dqk, 3.0f, &r);
                fill_normal(c.v + (size_t)t * row, row, 3.0f, &r);
            }
            pc_forward(&c);
            for (int t = 0; t <= t0; t++)
                if (c.segment[t] == c.segment[t0])
                    cr_assert_eq(memcmp(c.out + t * row, base + t * row, row * sizeof(float)), 0,
                                 "%s kind %d: token %d saw a masked key", path_name(c.path), kind, t);
            cr_assert_neq(memcmp(c.out + (t0 + 1) * row, base + (t0 + 1) * row, row * sizeof(float)), 0);
            free(base);
            pc_free(&c);
        }
}

/* The backward's probabilities are e^(scale·q·k − lse) with lse an input: with T = 1, Dqk = Dv = 1,
 * k = 1, scale = 1, lse = 0 and dout = 1, dv = e^q per head, which exposes each path's exp (the
 * block path's vector exp, the loop path's expf). Relative error ≤ 2.4e-7 (2 ulp where the
 * spacing is widest) over [−87, 0]. */
Test(attention_paths, backward_probabilities_are_exp_within_two_ulp) {
    enum { NH = 2001 };
    static float q[NH], k[NH], v[NH], out[NH], lse[NH], dout[NH], dv[NH];
    for (int i = 0; i < NH; i++) {
        q[i] = -87.0f * (float)i / (NH - 1);
        k[i] = 1.0f, v[i] = 0.5f, out[i] = 0.5f, lse[i] = 0.0f, dout[i] = 1.0f;
    }
    for (int pi = 0; pi < 2; pi++) {
        memset(dv, 0, sizeof dv);
        attention_backward_path(NULL, NULL, dv, dout, q, k, v, out, lse, NULL, 1.0f, 1, 1, NH, 1, 1, PATHS[pi]);
        for (int i = 0; i < NH; i++) {
            double want = exp((double)q[i]);
            cr_assert(fabs(dv[i] - want) <= 2.4e-7 * want, "%s: e^%.9g = %.9g, want %.9g", path_name(PATHS[pi]), q[i],
                      dv[i], want);
        }
    }
}
