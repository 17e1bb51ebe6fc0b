/* attention.c — causal multi-head attention with Dqk ≠ Dv and packed-sequence segments, fp32.
 *
 * Shape legend: B batch, T time, H heads, Dqk query/key head size, Dv value head size.
 * Row (b, t, h) of q/k starts at ((b·T + t)·H + h)·Dqk, of v/out at ((b·T + t)·H + h)·Dv, so one
 * head's rows are strided by H·D and every inner loop runs contiguously over D.
 * Allowed pairs: A(t) = { s ≤ t : segment[s] = segment[t] } (all s ≤ t when segment is NULL);
 * t ∈ A(t) always, so no row is empty.
 * Forward (eager attention in transformers' DeepseekV3Attention, with its causal mask and the
 * softmax in fp32), per (b, h, t):
 *   S_ts = scale·q_t·k_s,  lse_t = log Σ_{s∈A(t)} e^S_ts,  P_ts = e^(S_ts − lse_t)
 *   out_t = Σ_{s∈A(t)} P_ts·v_s
 * computed online over key blocks (running max m and sum l; out_t is the accumulator and is
 * rescaled by e^(m_old − m_new) when the max grows), so no (T, T) matrix is ever held.
 * Backward (FlashAttention-2 form), with δ_t = dout_t·out_t = Σ_s P_ts (dout_t·v_s):
 *   dv_s += Σ_t P_ts·dout_t
 *   dS_ts = P_ts·(dout_t·v_s − δ_t)
 *   dq_t += scale·Σ_s dS_ts·k_s,   dk_s += scale·Σ_t dS_ts·q_t
 * Two paths compute this, chosen by shape and CPU:
 * - The block path (x86-64 with AVX2 + FMA, T ≥ ATTN_BLOCK_MIN_T): one task per (b, h). Queries go
 *   in blocks of ATTN_BQ rows, keys in blocks of ATTN_BK; per pair of blocks the five products
 *   S = scale·Q·Kᵀ, O += P·V (forward) and S, dP = dO·Vᵀ, dV += Pᵀ·dO, dQ += dS·K, dK += dSᵀ·Q
 *   (backward) run through one 6×16 register-tile GEMM that reads the (B, T, H, D) layout with
 *   its H·D strides; only Kᵀ and Vᵀ of the head are packed. The GEMMs follow the causal/segment
 *   band (a 6-row tile only spans the keys its rows may see), so masked pairs cost almost
 *   nothing. e^x is a vectorised Cody–Waite reduction and degree-7 Taylor series (≤ 2 ulp). When
 *   segment ids are non-decreasing along t (packed sequences) each row's keys are one interval;
 *   otherwise every key in [0, t] is compared. Scratch (Kᵀ, Vᵀ, two block matrices) is one
 *   allocation per thread and call; if it fails, that thread's heads take the loop path.
 *   Why not cblas_sgemm: OpenBLAS (pthreads build) called from inside the OpenMP loop over heads
 *   runs each call on all its threads and serialises concurrent calls (measured at B 16, T 256,
 *   2 threads: 10 / 4 GFLOP/s forward / backward), and making it single-threaded means changing
 *   its global thread count; a serial loop over blocks with threaded BLAS leaves the softmax
 *   serial (11 / 16 GFLOP/s). Even with BLAS forced to one thread per call (20 / 32 GFLOP/s) its
 *   per-call packing of these small blocks costs more than this band-aware tile.
 * - The loop path (any CPU, and short T where packing does not pay): queries in groups of
 *   ATTN_G = 4 that share every load of a k_s or v_s row (scores, P·V, dq) or of the dk_s/dv_s
 *   row being updated, eight lanes per row in registers, `omp simd` along D.
 * Invariants: every output row of a head is written by the one thread that owns the task (the
 * forward's (b, h[, query block]), the backward's (b, h)), in an order fixed by the shape and
 * the segments, so there are no races and results do not depend on the thread count. Within a
 * path, the backward recomputes each score exactly as the forward did (same dot-product order),
 * so P matches the saved lse. A masked pair contributes exactly 0·v (inputs must be finite), so
 * tokens in other segments or the future leave out bit-identical. The two paths round
 * differently (fp32 summation order), so a given shape and CPU always take the same path (short
 * of a failed scratch allocation).
 */
#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum {
    ATTN_G = 4,       /* loop path: query rows sharing each load of a key/value row */
    ATTN_QBLOCK = 16, /* loop path: queries per forward task, 4 groups sharing a key block */
    ATTN_KBLOCK = 64, /* loop path: keys per block (the probability scratch on the stack) */
};

/* ================================================================ loop path */

static inline float attn_sum8(const float c[8]) {
    return ((c[0] + c[4]) + (c[1] + c[5])) + ((c[2] + c[6]) + (c[3] + c[7]));
}

/* a·b with eight independent partial sums, so it vectorises without -ffast-math. */
static inline float attn_dot(const float *restrict a, const float *restrict b, int n) {
    float c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
#pragma omp simd
        for (int j = 0; j < 8; j++) c[j] += a[i + j] * b[i + j];
    float tail = 0.0f;
    for (; i < n; i++) tail += a[i] * b[i];
    return attn_sum8(c) + tail;
}

/* r[i] = a[i]·b for four rows a[i], sharing each load of b. Each row is summed in exactly the
 * order attn_dot uses, so a score does not depend on which rows share the call. */
static inline void attn_dot4(float r[ATTN_G], const float *const a[ATTN_G], const float *restrict b, int n) {
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2], *restrict a3 = a[3];
    float c0[8] = {0}, c1[8] = {0}, c2[8] = {0}, c3[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
#pragma omp simd
        for (int j = 0; j < 8; j++) {
            float x = b[i + j];
            c0[j] += a0[i + j] * x;
            c1[j] += a1[i + j] * x;
            c2[j] += a2[i + j] * x;
            c3[j] += a3[i + j] * x;
        }
    float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
    for (; i < n; i++) {
        t0 += a0[i] * b[i];
        t1 += a1[i] * b[i];
        t2 += a2[i] * b[i];
        t3 += a3[i] * b[i];
    }
    r[0] = attn_sum8(c0) + t0;
    r[1] = attn_sum8(c1) + t1;
    r[2] = attn_sum8(c2) + t2;
    r[3] = attn_sum8(c3) + t3;
}

/* y[r][0:n] += Σ_{j<m} c[r][j]·x_j[0:n] for rows r < nr, x_j = x + j·ldx: the four rows share
 * each load of x_j, and eight columns of each sum stay in registers across j. */
static void attn_gather4(float *const y[ATTN_G], int nr, const float c[ATTN_G][ATTN_KBLOCK], const float *x,
                         size_t ldx, int m, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8) {
        float a0[8] = {0}, a1[8] = {0}, a2[8] = {0}, a3[8] = {0};
        for (int j = 0; j < m; j++) {
            const float *restrict xj = x + (size_t)j * ldx + d;
            float p0 = c[0][j], p1 = c[1][j], p2 = c[2][j], p3 = c[3][j];
#pragma omp simd
            for (int e = 0; e < 8; e++) {
                float v = xj[e];
                a0[e] += p0 * v;
                a1[e] += p1 * v;
                a2[e] += p2 * v;
                a3[e] += p3 * v;
            }
        }
        float *acc[ATTN_G] = {a0, a1, a2, a3};
        for (int r = 0; r < nr; r++)
            for (int e = 0; e < 8; e++) y[r][d + e] += acc[r][e];
    }
    for (; d < n; d++)
        for (int r = 0; r < nr; r++) {
            float a = 0.0f;
            for (int j = 0; j < m; j++) a += c[r][j] * x[(size_t)j * ldx + d];
            y[r][d] += a;
        }
}

/* y_j[0:n] += Σ_r c[r][j]·x[r][0:n] for j < m, y_j = y + j·ldy. Columns whose four
 * coefficients are all zero (masked keys) are skipped. */
static void attn_scatter4(float *y, size_t ldy, const float c[ATTN_G][ATTN_KBLOCK], const float *const x[ATTN_G],
                          int m, int n) {
    const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3];
    for (int j = 0; j < m; j++) {
        float c0 = c[0][j], c1 = c[1][j], c2 = c[2][j], c3 = c[3][j];
        if (c0 == 0.0f && c1 == 0.0f && c2 == 0.0f && c3 == 0.0f) continue;
        float *restrict yj = y + (size_t)j * ldy;
#pragma omp simd
        for (int d = 0; d < n; d++) yj[d] += ((c0 * x0[d] + c1 * x1[d]) + c2 * x2[d]) + c3 * x3[d];
    }
}

/* Which of the group's rows t = g + r (r < nr) may attend to key s. Returns 0 when none. */
static inline int attn_allowed(int ok[ATTN_G], const int *seg, int g, int nr, int s) {
    int any = 0;
    for (int r = 0; r < ATTN_G; r++) {
        ok[r] = r < nr && s <= g + r && (!seg || seg[s] == seg[g + r]);
        any |= ok[r];
    }
    return any;
}

/* The loop-path forward of queries [qb·ATTN_QBLOCK, +ATTN_QBLOCK) of head (b, h). */
static void attn_loop_forward_block(float *out, float *lse, const float *q, const float *k, const float *v,
                                    const int *segment, float scale, int T, int H, int Dqk, int Dv, int b, int h,
                                    int qb) {
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv; /* time strides */
    int t0 = qb * ATTN_QBLOCK, t1 = t0 + ATTN_QBLOCK < T ? t0 + ATTN_QBLOCK : T;
    const float *qh = q + (size_t)b * T * sqk + (size_t)h * Dqk;
    const float *kh = k + (size_t)b * T * sqk + (size_t)h * Dqk;
    const float *vh = v + (size_t)b * T * sv + (size_t)h * Dv;
    float *oh = out + (size_t)b * T * sv + (size_t)h * Dv;
    const int *seg = segment ? segment + (size_t)b * T : NULL;
    float m[ATTN_QBLOCK], l[ATTN_QBLOCK], p[ATTN_G][ATTN_KBLOCK];
    for (int t = t0; t < t1; t++) {
        m[t - t0] = -INFINITY;
        l[t - t0] = 0.0f;
        float *o = oh + (size_t)t * sv;
        for (int d = 0; d < Dv; d++) o[d] = 0.0f;
    }
    for (int s0 = 0; s0 < t1; s0 += ATTN_KBLOCK) {
        int s1 = s0 + ATTN_KBLOCK < t1 ? s0 + ATTN_KBLOCK : t1;
        for (int g = t0; g < t1; g += ATTN_G) {
            int nr = t1 - g < ATTN_G ? t1 - g : ATTN_G, tl = g + nr - 1;
            if (s0 > tl) continue; /* the whole key block is in this group's future */
            int ns = (s1 < tl + 1 ? s1 : tl + 1) - s0;
            const float *qr[ATTN_G];
            float *orow[ATTN_G];
            for (int r = 0; r < ATTN_G; r++) {
                int t = g + (r < nr ? r : nr - 1); /* padding rows repeat the last one */
                qr[r] = qh + (size_t)t * sqk;
                orow[r] = oh + (size_t)t * sv;
            }
            /* scores, −inf where masked */
            for (int j = 0; j < ns; j++) {
                int ok[ATTN_G];
                float sc[ATTN_G];
                if (!attn_allowed(ok, seg, g, nr, s0 + j)) {
                    for (int r = 0; r < ATTN_G; r++) p[r][j] = -INFINITY;
                    continue;
                }
                attn_dot4(sc, qr, kh + (size_t)(s0 + j) * sqk, Dqk);
                for (int r = 0; r < ATTN_G; r++) p[r][j] = ok[r] ? scale * sc[r] : -INFINITY;
            }
            /* online softmax per row: rescale the accumulator when the max grows */
            for (int r = 0; r < ATTN_G; r++) {
                float bm = -INFINITY;
                for (int j = 0; j < ns; j++) bm = p[r][j] > bm ? p[r][j] : bm;
                if (r >= nr || bm == -INFINITY) { /* padding, or no allowed key here */
                    for (int j = 0; j < ns; j++) p[r][j] = 0.0f;
                    continue;
                }
                int i = g + r - t0;
                if (bm > m[i]) {
                    float corr = expf(m[i] - bm); /* 0 on the first allowed block */
                    l[i] *= corr;
                    for (int d = 0; d < Dv; d++) orow[r][d] *= corr;
                    m[i] = bm;
                }
                float sum = 0.0f;
                for (int j = 0; j < ns; j++) {
                    float e = expf(p[r][j] - m[i]); /* exp(−inf) = 0 for masked keys */
                    p[r][j] = e;
                    sum += e;
                }
                l[i] += sum;
            }
            attn_gather4(orow, nr, (const float(*)[ATTN_KBLOCK])p, vh + (size_t)s0 * sv, sv, ns, Dv);
        }
    }
    for (int t = t0; t < t1; t++) {
        float *o = oh + (size_t)t * sv;
        float inv = 1.0f / l[t - t0];
        for (int d = 0; d < Dv; d++) o[d] *= inv;
        lse[((size_t)b * H + h) * T + t] = m[t - t0] + logf(l[t - t0]);
    }
}

/* The loop-path backward of head (b, h). */
static void attn_loop_backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                    const float *k, const float *v, const float *out, const float *lse,
                                    const int *segment, float scale, int T, int H, int Dqk, int Dv, int b, int h) {
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv;
    size_t qoff = (size_t)b * T * sqk + (size_t)h * Dqk, voff = (size_t)b * T * sv + (size_t)h * Dv;
    const float *qh = q + qoff, *kh = k + qoff, *vh = v + voff, *oh = out + voff, *doh = dout + voff;
    float *dqh = dq ? dq + qoff : NULL, *dkh = dk ? dk + qoff : NULL, *dvh = dv ? dv + voff : NULL;
    const float *lseh = lse + ((size_t)b * H + h) * T;
    const int *seg = segment ? segment + (size_t)b * T : NULL;
    float P[ATTN_G][ATTN_KBLOCK], dS[ATTN_G][ATTN_KBLOCK];
    /* Key blocks outer: the block's dk/dv rows stay in cache while every later query visits. */
    for (int s0 = 0; s0 < T; s0 += ATTN_KBLOCK) {
        int s1 = s0 + ATTN_KBLOCK < T ? s0 + ATTN_KBLOCK : T;
        for (int g = s0; g < T; g += ATTN_G) {
            int nr = T - g < ATTN_G ? T - g : ATTN_G, tl = g + nr - 1;
            int ns = (s1 < tl + 1 ? s1 : tl + 1) - s0;
            const float *qr[ATTN_G], *gr[ATTN_G]; /* q_t and dout_t */
            float *dqr[ATTN_G], delta[ATTN_G], lr[ATTN_G];
            for (int r = 0; r < ATTN_G; r++) {
                int t = g + (r < nr ? r : nr - 1);
                qr[r] = qh + (size_t)t * sqk;
                gr[r] = doh + (size_t)t * sv;
                dqr[r] = dqh ? dqh + (size_t)t * sqk : NULL;
                delta[r] = attn_dot(gr[r], oh + (size_t)t * sv, Dv); /* δ_t = dout_t·out_t */
                lr[r] = lseh[t];
            }
            for (int j = 0; j < ns; j++) {
                int ok[ATTN_G];
                float sc[ATTN_G], dp[ATTN_G];
                if (!attn_allowed(ok, seg, g, nr, s0 + j)) {
                    for (int r = 0; r < ATTN_G; r++) P[r][j] = dS[r][j] = 0.0f;
                    continue;
                }
                attn_dot4(sc, qr, kh + (size_t)(s0 + j) * sqk, Dqk);
                attn_dot4(dp, gr, vh + (size_t)(s0 + j) * sv, Dv);
                for (int r = 0; r < ATTN_G; r++) {
                    float pr = ok[r] ? expf(scale * sc[r] - lr[r]) : 0.0f;
                    P[r][j] = pr;
                    dS[r][j] = ok[r] ? scale * pr * (dp[r] - delta[r]) : 0.0f;
                }
            }
            if (dvh) attn_scatter4(dvh + (size_t)s0 * sv, sv, (const float(*)[ATTN_KBLOCK])P, gr, ns, Dv);
            if (dkh) attn_scatter4(dkh + (size_t)s0 * sqk, sqk, (const float(*)[ATTN_KBLOCK])dS, qr, ns, Dqk);
            if (dqh) attn_gather4(dqr, nr, (const float(*)[ATTN_KBLOCK])dS, kh + (size_t)s0 * sqk, sqk, ns, Dqk);
        }
    }
}

/* ================================================================ block path */

#if defined(__x86_64__) && defined(__GNUC__)
#define ATTN_HAVE_BLOCK 1
#include <immintrin.h>
#define ATTN_AVX2 __attribute__((target("avx2,fma")))

enum {
    ATTN_BLOCK_MIN_T = 6,  /* shorter sequences take the loop path (measured crossover ~5) */
    ATTN_BQ = 64,          /* queries per block */
    ATTN_BK = 256,         /* keys per block: the row length of the two block matrices */
    ATTN_MR = 6,           /* register tile: 6 rows × 16 columns = 12 ymm accumulators */
    ATTN_NR = 16,
};

/* Lanes < n (n may be ≤ 0 or ≥ 8). */
ATTN_AVX2 static inline __m256i attn_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* One register tile: C[r][0:nc] = alpha·Σ_{k0≤k<k1} A(r, k)·B[k][0:nc], plus the old C[r][0:nc]
 * when acc, for r < mr ≤ 6 and nc ≤ 16, where A(r, k) = a[r·ars + k·acs] and B[k] = b + k·ldb.
 * Each element is one FMA chain over k in increasing order, so it does not depend on the tile
 * it falls in. Rows ≥ mr repeat row 0 and are not stored; columns ≥ nc are neither read nor
 * written. */
ATTN_AVX2 static void attn_tile(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b,
                                size_t ldb, int mr, int nc, int k0, int k1, float alpha, int acc) {
    size_t o1 = mr > 1 ? ars : 0, o2 = mr > 2 ? 2 * ars : 0, o3 = mr > 3 ? 3 * ars : 0;
    size_t o4 = mr > 4 ? 4 * ars : 0, o5 = mr > 5 ? 5 * ars : 0;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *ak = a + (size_t)k0 * acs, *bk = b + (size_t)k0 * ldb;
    __m256i m0 = attn_mask8(nc), m1 = attn_mask8(nc - 8);
#define ATTN_TILE_STEP(B0, B1)                                                                                      \
    do {                                                                                                            \
        __m256 b0_ = (B0), b1_ = (B1), x_;                                                                          \
        x_ = _mm256_broadcast_ss(ak);                                                                               \
        c00 = _mm256_fmadd_ps(x_, b0_, c00), c01 = _mm256_fmadd_ps(x_, b1_, c01);                                   \
        x_ = _mm256_broadcast_ss(ak + o1);                                                                          \
        c10 = _mm256_fmadd_ps(x_, b0_, c10), c11 = _mm256_fmadd_ps(x_, b1_, c11);                                   \
        x_ = _mm256_broadcast_ss(ak + o2);                                                                          \
        c20 = _mm256_fmadd_ps(x_, b0_, c20), c21 = _mm256_fmadd_ps(x_, b1_, c21);                                   \
        x_ = _mm256_broadcast_ss(ak + o3);                                                                          \
        c30 = _mm256_fmadd_ps(x_, b0_, c30), c31 = _mm256_fmadd_ps(x_, b1_, c31);                                   \
        x_ = _mm256_broadcast_ss(ak + o4);                                                                          \
        c40 = _mm256_fmadd_ps(x_, b0_, c40), c41 = _mm256_fmadd_ps(x_, b1_, c41);                                   \
        x_ = _mm256_broadcast_ss(ak + o5);                                                                          \
        c50 = _mm256_fmadd_ps(x_, b0_, c50), c51 = _mm256_fmadd_ps(x_, b1_, c51);                                   \
    } while (0)
    if (nc == ATTN_NR) {
        for (int k = k0; k < k1; k++, ak += acs, bk += ldb)
            ATTN_TILE_STEP(_mm256_loadu_ps(bk), _mm256_loadu_ps(bk + 8));
    } else {
        for (int k = k0; k < k1; k++, ak += acs, bk += ldb)
            ATTN_TILE_STEP(_mm256_maskload_ps(bk, m0), _mm256_maskload_ps(bk + 8, m1));
    }
#undef ATTN_TILE_STEP
    __m256 va = _mm256_set1_ps(alpha);
    __m256 r0[ATTN_MR] = {c00, c10, c20, c30, c40, c50}, r1[ATTN_MR] = {c01, c11, c21, c31, c41, c51};
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc;
        __m256 v0 = _mm256_mul_ps(va, r0[r]), v1 = _mm256_mul_ps(va, r1[r]);
        if (nc == ATTN_NR) {
            if (acc) v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cr)), v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cr + 8));
            _mm256_storeu_ps(cr, v0);
            _mm256_storeu_ps(cr + 8, v1);
        } else {
            if (acc) {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, m0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, m1));
            }
            _mm256_maskstore_ps(cr, m0, v0);
            _mm256_maskstore_ps(cr + 8, m1, v1);
        }
    }
}

/* Per-row half-open intervals, or NULL for [0, full). */
typedef struct attn_band {
    const int *lo, *hi;
} attn_band;

/* The union of rows [i0, i0 + mr)'s intervals, clipped to [0, full). */
static inline void attn_band_span(int *lo, int *hi, attn_band band, int i0, int mr, int full) {
    if (!band.lo) {
        *lo = 0, *hi = full;
        return;
    }
    int l = full, u = 0;
    for (int r = 0; r < mr; r++) {
        l = band.lo[i0 + r] < l ? band.lo[i0 + r] : l;
        u = band.hi[i0 + r] > u ? band.hi[i0 + r] : u;
    }
    *lo = l < 0 ? 0 : l, *hi = u > full ? full : u;
}

/* C[i][j] = alpha·Σ_k A(i, k)·B[k][j] (+ the old C[i][j] when acc) for i < M, over bands: the
 * 6-row tile at i0 sums k over the union of kband's rows and covers the columns of the union of
 * nband's rows (columns outside are not written). The caller guarantees that A(i, k) = 0 for k
 * in a tile's union but outside row i's own interval, and reads row i of C only inside its own
 * column interval. A(i, k) = a[i·ars + k·acs], B[k] = b + k·ldb. */
ATTN_AVX2 static void attn_gemm(float *c, size_t ldc, const float *a, size_t ars, size_t acs, const float *b,
                                size_t ldb, int M, int N, int K, attn_band kband, attn_band nband, float alpha,
                                int acc) {
    for (int i0 = 0; i0 < M; i0 += ATTN_MR) {
        int mr = M - i0 < ATTN_MR ? M - i0 : ATTN_MR, k0, k1, n0, n1;
        attn_band_span(&k0, &k1, kband, i0, mr, K);
        attn_band_span(&n0, &n1, nband, i0, mr, N);
        if (n0 >= n1 || (k0 >= k1 && acc)) continue;
        for (int j0 = n0; j0 < n1; j0 += ATTN_NR)
            attn_tile(c + (size_t)i0 * ldc + j0, ldc, a + (size_t)i0 * ars, ars, acs, b + j0, ldb, mr,
                      n1 - j0 < ATTN_NR ? n1 - j0 : ATTN_NR, k0, k1 > k0 ? k1 : k0, alpha, acc);
    }
}

/* e^x for x ≤ 88 (x = −inf gives 0): x = n·ln2 + r with n = round(x/ln2), |r| ≤ ln2/2 (ln2 split
 * in a 9-bit head and a tail, so n·ln2_hi is exact); e^r by its Taylor series to r⁷, whose
 * truncation r⁸/8! < 6e-9 is a tenth of an fp32 ulp; then 2^n through the exponent bits. Below
 * −87.33 (e^x under the smallest normal float) the result is 0. Error ≤ 2 ulp. */
ATTN_AVX2 static inline __m256 attn_exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
}

ATTN_AVX2 static inline float attn_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

ATTN_AVX2 static inline float attn_hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* max of x[a:b) (−inf when empty). */
ATTN_AVX2 static float attn_row_max(const float *x, int a, int b) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (int j = a; j < b; j += 8) {
        __m256i k = attn_mask8(b - j);
        m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + j, k), _mm256_castsi256_ps(k)));
    }
    return attn_hmax8(m);
}

/* p[0:n) = e^(x[j] − sub) inside [a, b), 0 outside; returns Σ p (eight lanes, then across).
 * x and p may be the same row. */
ATTN_AVX2 static float attn_row_exp(float *p, const float *x, float sub, int a, int b, int n) {
    __m256 vs = _mm256_set1_ps(sub), sum = _mm256_setzero_ps();
    for (int j = 0; j < a; j++) p[j] = 0.0f;
    for (int j = a; j < b; j += 8) {
        __m256i k = attn_mask8(b - j);
        __m256 e = _mm256_and_ps(attn_exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), vs)), _mm256_castsi256_ps(k));
        sum = _mm256_add_ps(sum, e);
        _mm256_maskstore_ps(p + j, k, e);
    }
    for (int j = b > a ? b : a; j < n; j++) p[j] = 0.0f;
    return attn_hsum8(sum);
}

/* Σ a[0:n)·b[0:n) in eight lanes. */
ATTN_AVX2 static float attn_dot8(const float *a, const float *b, int n) {
    __m256 s = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) {
        __m256i k = attn_mask8(n - j);
        s = _mm256_fmadd_ps(_mm256_maskload_ps(a + j, k), _mm256_maskload_ps(b + j, k), s);
    }
    return attn_hsum8(s);
}

/* dst[d·ld + j] = src[j·stride + d] for j < n, d < D: one head's rows, transposed, in 8 × 8
 * register blocks (unpack, shuffle, then swap 128-bit halves). */
ATTN_AVX2 static void attn_pack_transposed(float *dst, size_t ld, const float *src, size_t stride, int n, int D) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *s = src + (size_t)j * stride;
        int d = 0;
        for (; d + 8 <= D; d += 8) {
            __m256 r0 = _mm256_loadu_ps(s + d), r1 = _mm256_loadu_ps(s + stride + d);
            __m256 r2 = _mm256_loadu_ps(s + 2 * stride + d), r3 = _mm256_loadu_ps(s + 3 * stride + d);
            __m256 r4 = _mm256_loadu_ps(s + 4 * stride + d), r5 = _mm256_loadu_ps(s + 5 * stride + d);
            __m256 r6 = _mm256_loadu_ps(s + 6 * stride + d), r7 = _mm256_loadu_ps(s + 7 * stride + d);
            __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1);
            __m256 u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3);
            __m256 u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5);
            __m256 u6 = _mm256_unpacklo_ps(r6, r7), u7 = _mm256_unpackhi_ps(r6, r7);
            __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xEE);
            __m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xEE);
            __m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xEE);
            __m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xEE);
            float *o = dst + (size_t)d * ld + j;
            _mm256_storeu_ps(o, _mm256_permute2f128_ps(v0, v4, 0x20));
            _mm256_storeu_ps(o + ld, _mm256_permute2f128_ps(v1, v5, 0x20));
            _mm256_storeu_ps(o + 2 * ld, _mm256_permute2f128_ps(v2, v6, 0x20));
            _mm256_storeu_ps(o + 3 * ld, _mm256_permute2f128_ps(v3, v7, 0x20));
            _mm256_storeu_ps(o + 4 * ld, _mm256_permute2f128_ps(v0, v4, 0x31));
            _mm256_storeu_ps(o + 5 * ld, _mm256_permute2f128_ps(v1, v5, 0x31));
            _mm256_storeu_ps(o + 6 * ld, _mm256_permute2f128_ps(v2, v6, 0x31));
            _mm256_storeu_ps(o + 7 * ld, _mm256_permute2f128_ps(v3, v7, 0x31));
        }
        for (; d < D; d++)
            for (int u = 0; u < 8; u++) dst[(size_t)d * ld + j + u] = s[(size_t)u * stride + d];
    }
    for (; j < n; j++)
        for (int d = 0; d < D; d++) dst[(size_t)d * ld + j] = src[(size_t)j * stride + d];
}

/* 1 when segment ids never decrease along t (or there are none): then every id is one run, and
 * the keys a query may see form the interval [start of its run, t]. */
static int attn_segments_sorted(const int *seg, int T) {
    if (!seg) return 1;
    for (int t = 1; t < T; t++)
        if (seg[t] < seg[t - 1]) return 0;
    return 1;
}

/* Each query row's first visible key, qlo[i] for t = t0 + i < t1: the start of its run (sorted
 * ids) or 0 (no segments, or unsorted ids: keys are then compared one by one). */
static void attn_query_starts(int *qlo, const int *seg, int sorted, int t0, int t1) {
    int lo = 0;
    if (seg && sorted)
        for (lo = t0; lo > 0 && seg[lo - 1] == seg[t0];) lo--;
    for (int t = t0; t < t1; t++) {
        if (seg && sorted && t > t0 && seg[t] != seg[t - 1]) lo = t;
        qlo[t - t0] = lo;
    }
}

/* Row i's visible keys inside key block [s0, s1), relative to s0: [a[i], b[i]) (may be empty). */
static void attn_row_intervals(int *a, int *b, const int *qlo, int t0, int nq, int s0, int s1) {
    for (int i = 0; i < nq; i++) {
        int lo = qlo[i] > s0 ? qlo[i] : s0, hi = t0 + i + 1 < s1 ? t0 + i + 1 : s1;
        if (lo > s1) lo = s1;
        a[i] = lo - s0;
        b[i] = hi > lo ? hi - s0 : lo - s0;
    }
}

/* Unsorted segment ids: −inf where key s0 + j is in another segment than query t0 + i. */
static void attn_mask_segments(float *S, size_t lds, const int *seg, int t0, int nq, int s0, const int *a,
                               const int *b) {
    for (int i = 0; i < nq; i++)
        for (int j = a[i]; j < b[i]; j++)
            if (seg[s0 + j] != seg[t0 + i]) S[(size_t)i * lds + j] = -INFINITY;
}

/* Scratch floats of one thread: Kᵀ and Vᵀ of a head, and two ATTN_BQ × ATTN_BK block matrices. */
static size_t attn_scratch_floats(int T, int Dqk, int Dv) {
    return (size_t)T * (size_t)(Dqk + Dv) + 2 * (size_t)ATTN_BQ * ATTN_BK;
}

/* The block-path forward of head (b, h). */
ATTN_AVX2 static void attn_block_forward_head(float *out, float *lse, const float *q, const float *k,
                                              const float *v, const int *segment, float scale, int T, int H,
                                              int Dqk, int Dv, int b, int h, float *scratch) {
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv;
    const float *qh = q + (size_t)b * T * sqk + (size_t)h * Dqk;
    const float *kh = k + (size_t)b * T * sqk + (size_t)h * Dqk;
    const float *vh = v + (size_t)b * T * sv + (size_t)h * Dv;
    float *oh = out + (size_t)b * T * sv + (size_t)h * Dv, *lseh = lse + ((size_t)b * H + h) * T;
    const int *seg = segment ? segment + (size_t)b * T : NULL;
    int sorted = attn_segments_sorted(seg, T);
    float *kt = scratch, *S = kt + (size_t)T * Dqk; /* Kᵀ (Dqk, T); S/P (ATTN_BQ, ATTN_BK) */
    attn_pack_transposed(kt, (size_t)T, kh, sqk, T, Dqk);
    int qlo[ATTN_BQ], ra[ATTN_BQ], rb[ATTN_BQ];
    float m[ATTN_BQ], l[ATTN_BQ];
    for (int t0 = 0; t0 < T; t0 += ATTN_BQ) {
        int t1 = t0 + ATTN_BQ < T ? t0 + ATTN_BQ : T, nq = t1 - t0;
        attn_query_starts(qlo, seg, sorted, t0, t1);
        for (int i = 0; i < nq; i++) {
            m[i] = -INFINITY, l[i] = 0.0f;
            memset(oh + (size_t)(t0 + i) * sv, 0, (size_t)Dv * sizeof(float));
        }
        for (int s0 = qlo[0]; s0 < t1; s0 += ATTN_BK) {
            int s1 = s0 + ATTN_BK < t1 ? s0 + ATTN_BK : t1, nk = s1 - s0;
            attn_row_intervals(ra, rb, qlo, t0, nq, s0, s1);
            attn_band band = {ra, rb};
            attn_gemm(S, ATTN_BK, qh + (size_t)t0 * sqk, sqk, 1, kt + s0, (size_t)T, nq, nk, Dqk,
                      (attn_band){NULL, NULL}, band, scale, 0);
            if (!sorted) attn_mask_segments(S, ATTN_BK, seg, t0, nq, s0, ra, rb);
            for (int i = 0; i < nq; i++) {
                float *Si = S + (size_t)i * ATTN_BK, bm = attn_row_max(Si, ra[i], rb[i]);
                if (bm == -INFINITY) { /* nothing visible in this block */
                    memset(Si, 0, (size_t)nk * sizeof(float));
                    continue;
                }
                if (bm > m[i]) { /* rescale the accumulator; corr = 0 on the first visible block */
                    float corr = expf(m[i] - bm), *o = oh + (size_t)(t0 + i) * sv;
                    l[i] *= corr;
                    for (int d = 0; d < Dv; d++) o[d] *= corr;
                    m[i] = bm;
                }
                l[i] += attn_row_exp(Si, Si, m[i], ra[i], rb[i], nk);
            }
            attn_gemm(oh + (size_t)t0 * sv, sv, S, ATTN_BK, 1, vh + (size_t)s0 * sv, sv, nq, Dv, nk, band,
                      (attn_band){NULL, NULL}, 1.0f, 1);
        }
        for (int i = 0; i < nq; i++) {
            float *o = oh + (size_t)(t0 + i) * sv, inv = 1.0f / l[i];
            for (int d = 0; d < Dv; d++) o[d] *= inv;
            lseh[t0 + i] = m[i] + logf(l[i]);
        }
    }
}

/* The block-path backward of head (b, h). */
ATTN_AVX2 static void attn_block_backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                               const float *k, const float *v, const float *out, const float *lse,
                                               const int *segment, float scale, int T, int H, int Dqk, int Dv,
                                               int b, int h, float *scratch) {
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv;
    size_t qoff = (size_t)b * T * sqk + (size_t)h * Dqk, voff = (size_t)b * T * sv + (size_t)h * Dv;
    const float *qh = q + qoff, *kh = k + qoff, *vh = v + voff, *oh = out + voff, *doh = dout + voff;
    float *dqh = dq ? dq + qoff : NULL, *dkh = dk ? dk + qoff : NULL, *dvh = dv ? dv + voff : NULL;
    const float *lseh = lse + ((size_t)b * H + h) * T;
    const int *seg = segment ? segment + (size_t)b * T : NULL;
    int sorted = attn_segments_sorted(seg, T);
    /* Kᵀ (Dqk, T), Vᵀ (Dv, T), P and dP/dS (ATTN_BQ, ATTN_BK) */
    float *kt = scratch, *vt = kt + (size_t)T * Dqk, *P = vt + (size_t)T * Dv, *dS = P + (size_t)ATTN_BQ * ATTN_BK;
    attn_pack_transposed(kt, (size_t)T, kh, sqk, T, Dqk);
    if (dqh || dkh) attn_pack_transposed(vt, (size_t)T, vh, sv, T, Dv);
    int qlo[ATTN_BQ], ra[ATTN_BQ], rb[ATTN_BQ], ca[ATTN_BK], cb[ATTN_BK];
    float delta[ATTN_BQ];
    const attn_band full = {NULL, NULL};
    for (int t0 = 0; t0 < T; t0 += ATTN_BQ) {
        int t1 = t0 + ATTN_BQ < T ? t0 + ATTN_BQ : T, nq = t1 - t0;
        attn_query_starts(qlo, seg, sorted, t0, t1);
        for (int i = 0; i < nq; i++) /* δ_t = dout_t·out_t */
            delta[i] = attn_dot8(doh + (size_t)(t0 + i) * sv, oh + (size_t)(t0 + i) * sv, Dv);
        for (int s0 = qlo[0]; s0 < t1; s0 += ATTN_BK) {
            int s1 = s0 + ATTN_BK < t1 ? s0 + ATTN_BK : t1, nk = s1 - s0;
            attn_row_intervals(ra, rb, qlo, t0, nq, s0, s1);
            attn_band rows = {ra, rb};
            /* Key j's visible queries, relative to t0: from its own position (causality) to the
             * end of its run (sorted ids) or of the block; P and dS are 0 outside anyway. */
            for (int j = nk - 1, end = t1; j >= 0; j--) { /* end: absolute, one past the run */
                int s = s0 + j;
                if (seg && sorted) {
                    if (j == nk - 1) /* the run of the block's last key may go on past s1 */
                        for (end = s + 1; end < t1 && seg[end] == seg[s];) end++;
                    else if (seg[s + 1] != seg[s])
                        end = s + 1;
                }
                ca[j] = s > t0 ? s - t0 : 0;
                cb[j] = end - t0;
            }
            attn_band cols = {ca, cb};
            attn_gemm(P, ATTN_BK, qh + (size_t)t0 * sqk, sqk, 1, kt + s0, (size_t)T, nq, nk, Dqk, full, rows, scale,
                      0);
            if (!sorted) attn_mask_segments(P, ATTN_BK, seg, t0, nq, s0, ra, rb);
            for (int i = 0; i < nq; i++) {
                float *Pi = P + (size_t)i * ATTN_BK;
                attn_row_exp(Pi, Pi, lseh[t0 + i], ra[i], rb[i], nk);
            }
            if (dvh) /* dV[s0:s1) += Pᵀ·dO */
                attn_gemm(dvh + (size_t)s0 * sv, sv, P, 1, ATTN_BK, doh + (size_t)t0 * sv, sv, nk, Dv, nq, cols, full,
                          1.0f, 1);
            if (!dqh && !dkh) continue;
            /* dP = dO·Vᵀ on the visible band, then dS = scale·P·(dP − δ), 0 outside */
            attn_gemm(dS, ATTN_BK, doh + (size_t)t0 * sv, sv, 1, vt + s0, (size_t)T, nq, nk, Dv, full, rows, 1.0f, 0);
            for (int i = 0; i < nq; i++) {
                float *Pi = P + (size_t)i * ATTN_BK, *Di = dS + (size_t)i * ATTN_BK;
                __m256 vd = _mm256_set1_ps(delta[i]), vsc = _mm256_set1_ps(scale);
                for (int j = 0; j < ra[i]; j++) Di[j] = 0.0f;
                for (int j = ra[i]; j < rb[i]; j += 8) {
                    __m256i km = attn_mask8(rb[i] - j);
                    __m256 x = _mm256_sub_ps(_mm256_maskload_ps(Di + j, km), vd);
                    __m256 p = _mm256_mul_ps(vsc, _mm256_maskload_ps(Pi + j, km));
                    _mm256_maskstore_ps(Di + j, km, _mm256_mul_ps(p, x));
                }
                for (int j = rb[i] > ra[i] ? rb[i] : ra[i]; j < nk; j++) Di[j] = 0.0f;
            }
            if (dqh) /* dQ[t0:t1) += dS·K */
                attn_gemm(dqh + (size_t)t0 * sqk, sqk, dS, ATTN_BK, 1, kh + (size_t)s0 * sqk, sqk, nq, Dqk, nk, rows,
                          full, 1.0f, 1);
            if (dkh) /* dK[s0:s1) += dSᵀ·Q */
                attn_gemm(dkh + (size_t)s0 * sqk, sqk, dS, 1, ATTN_BK, qh + (size_t)t0 * sqk, sqk, nk, Dqk, nq, cols,
                          full, 1.0f, 1);
        }
    }
}

/* The block path runs where the CPU has AVX2 and FMA (and, for AUTO, the sequence is long enough). */
static int attn_use_block(attention_path path, int T) {
    if (path == ATTENTION_PATH_LOOP || (path == ATTENTION_PATH_AUTO && T < ATTN_BLOCK_MIN_T)) return 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define ATTN_HAVE_BLOCK 0
#endif

/* ================================================================ entry points */

void attention_forward_path(float *out, float *lse, const float *q, const float *k, const float *v,
                            const int *segment, float scale, int B, int T, int H, int Dqk, int Dv,
                            attention_path path) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    int nqb = (T + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
#if ATTN_HAVE_BLOCK
    if (attn_use_block(path, T)) {
        long nheads = (long)B * H;
        size_t nscratch = attn_scratch_floats(T, Dqk, Dv);
#pragma omp parallel
        {
            float *scratch = malloc(nscratch * sizeof(float));
#pragma omp for schedule(dynamic, 1)
            for (long task = 0; task < nheads; task++) {
                int h = (int)(task % H), b = (int)(task / H);
                if (scratch)
                    attn_block_forward_head(out, lse, q, k, v, segment, scale, T, H, Dqk, Dv, b, h, scratch);
                else
                    for (int qb = 0; qb < nqb; qb++)
                        attn_loop_forward_block(out, lse, q, k, v, segment, scale, T, H, Dqk, Dv, b, h, qb);
            }
            free(scratch);
        }
        return;
    }
#endif
    long ntasks = (long)B * H * nqb;
#pragma omp parallel for schedule(dynamic, 1)
    for (long task = 0; task < ntasks; task++) {
        int qb = (int)(task % nqb), h = (int)((task / nqb) % H), b = (int)(task / ((long)nqb * H));
        attn_loop_forward_block(out, lse, q, k, v, segment, scale, T, H, Dqk, Dv, b, h, qb);
    }
}

void attention_backward_path(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *out, const float *lse, const int *segment, float scale,
                             int B, int T, int H, int Dqk, int Dv, attention_path path) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    if (!dq && !dk && !dv) return;
    long nheads = (long)B * H;
#if ATTN_HAVE_BLOCK
    if (attn_use_block(path, T)) {
        size_t nscratch = attn_scratch_floats(T, Dqk, Dv);
#pragma omp parallel
        {
            float *scratch = malloc(nscratch * sizeof(float));
#pragma omp for schedule(dynamic, 1)
            for (long task = 0; task < nheads; task++) {
                int h = (int)(task % H), b = (int)(task / H);
                if (scratch)
                    attn_block_backward_head(dq, dk, dv, dout, q, k, v, out, lse, segment, scale, T, H, Dqk, Dv, b,
                                             h, scratch);
                else
                    attn_loop_backward_head(dq, dk, dv, dout, q, k, v, out, lse, segment, scale, T, H, Dqk, Dv, b, h);
            }
            free(scratch);
        }
        return;
    }
#endif
#pragma omp parallel for schedule(dynamic, 1)
    for (long task = 0; task < nheads; task++)
        attn_loop_backward_head(dq, dk, dv, dout, q, k, v, out, lse, segment, scale, T, H, Dqk, Dv, (int)(task / H),
                                (int)(task % H));
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *segment,
                       float scale, int B, int T, int H, int Dqk, int Dv) {
    attention_forward_path(out, lse, q, k, v, segment, scale, B, T, H, Dqk, Dv, ATTENTION_PATH_AUTO);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int *segment, float scale, int B,
                        int T, int H, int Dqk, int Dv) {
    attention_backward_path(dq, dk, dv, dout, q, k, v, out, lse, segment, scale, B, T, H, Dqk, Dv,
                            ATTENTION_PATH_AUTO);
}
