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
 * rescaled by e^(m_old − m_new) when the max grows), so no (T, T) matrix and no heap scratch.
 * Backward (FlashAttention-2 form), with δ_t = dout_t·out_t = Σ_s P_ts (dout_t·v_s):
 *   dv_s += Σ_t P_ts·dout_t
 *   dS_ts = P_ts·(dout_t·v_s − δ_t)
 *   dq_t += scale·Σ_s dS_ts·k_s,   dk_s += scale·Σ_t dS_ts·q_t
 * Speed: queries go in groups of ATTN_G = 4 that share every load of a k_s or v_s row (scores,
 * P·V, dq) or of the dk_s/dv_s row being updated; eight lanes per row stay in registers, and
 * `omp simd` pins the vectorisation along D so that -O2 and -O3 -march=native both vectorise.
 * Invariants: the forward is parallel over (b, h, query block) — rows are independent. The
 * backward is parallel over (b, h) only: every dq/dk/dv row of a head is written by the one
 * thread that owns that head, so there are no races and the summation order is fixed (results do
 * not depend on the thread count). Scores come from the same attn_dot4 in both passes, each row
 * summed in an order that does not depend on its group, so the recomputed P matches the
 * forward's lse. A masked pair inside a group contributes exactly 0·v (inputs must be finite),
 * so tokens in other segments or the future leave out bit-identical.
 */
#include "kernels/attention.h"

#include <math.h>
#include <stddef.h>

enum {
    ATTN_G = 4,       /* query rows sharing each load of a key/value row (register blocking) */
    ATTN_QBLOCK = 16, /* queries per forward task: 4 groups sharing one pass over a key block */
    ATTN_KBLOCK = 64, /* keys per block: the probability scratch on the stack */
};

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

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *segment,
                       float scale, int B, int T, int H, int Dqk, int Dv) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv; /* time strides */
    int nqb = (T + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
    long ntasks = (long)B * H * nqb;
#pragma omp parallel for schedule(dynamic, 1)
    for (long task = 0; task < ntasks; task++) {
        int qb = (int)(task % nqb), h = (int)((task / nqb) % H), b = (int)(task / ((long)nqb * H));
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
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int *segment, float scale, int B,
                        int T, int H, int Dqk, int Dv) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    if (!dq && !dk && !dv) return;
    size_t sqk = (size_t)H * (size_t)Dqk, sv = (size_t)H * (size_t)Dv;
    long ntasks = (long)B * H;
#pragma omp parallel for schedule(dynamic, 1)
    for (long task = 0; task < ntasks; task++) {
        int h = (int)(task % H), b = (int)(task / H);
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
}
