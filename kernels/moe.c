/* moe.c — MoE top-k, routing plan, gather and weighted scatter-add (forward and backward).
 *
 * Shape legend: N tokens, E experts, K experts per token, C channels; pair p = t·K + k.
 * The MoE layer (DeepseekV3MoE; V3 report eq. 12–16) computes, for token t with chosen experts
 * e_k = idx[t,k] and gate weights w[t,k]:
 *   y_t = Σ_k w[t,k]·f_{e_k}(x_t)
 * Done expert by expert, it is: gather  xs[r] = x[token(r)]  (r runs over the expert-sorted
 * rows), run each expert on its contiguous block of rows, then scatter  y_t += Σ_k w[t,k]·ys[row(t,k)].
 * Backward:
 *   scatter: dys[row(t,k)] = w[t,k]·dy_t            (=, each row has exactly one source)
 *            dw[t,k]      += dy_t · ys[row(t,k)]     (+=, dot in double)
 *   gather:  dx_t         += Σ_k dxs[row(t,k)]      (+=, per token: no two threads share a row)
 *   top-k:   dscores[t, idx[t,k]] += dval[t,k]       (+=; the selection itself has no gradient)
 * Top-k order is total: larger score first, equal scores by lower expert index, NaN last — so
 * the choice is reproducible and matches torch.topk on tie-free inputs.
 * The plan is a stable counting sort of the N·K pairs by expert: counts, exclusive prefix sums
 * (offsets), then pairs placed in (t, k) order, so within an expert rows go by token then slot.
 * Invariants: row_of and (token_of, slot_of) are inverse bijections between pairs and rows;
 * Σ counts = N·K; nothing here allocates.
 */
#include "kernels/moe.h"

#include <math.h>
#include <string.h>

/* a ranks strictly above b: larger, and any number above NaN. */
static int moe_ranks_above(float a, float b) { return a > b || (isnan(b) && !isnan(a)); }

void moe_topk(int *idx, float *val, const float *scores, int N, int E, int K) {
#pragma omp parallel for
    for (int t = 0; t < N; t++) {
        const float *s = scores + (size_t)t * (size_t)E;
        int *id = idx + (size_t)t * (size_t)K;
        int filled = 0;
        /* insertion into the sorted top-K so far; a later expert must rank strictly above an
         * earlier one to pass it, which is the lower-index tie break */
        for (int e = 0; e < E; e++) {
            if (filled == K && !moe_ranks_above(s[e], s[id[K - 1]])) continue;
            int p = filled < K ? filled : K - 1;
            while (p > 0 && moe_ranks_above(s[e], s[id[p - 1]])) {
                id[p] = id[p - 1];
                p--;
            }
            id[p] = e;
            if (filled < K) filled++;
        }
        if (val)
            for (int k = 0; k < K; k++) val[(size_t)t * (size_t)K + k] = s[id[k]];
    }
}

void moe_topk_backward(float *dscores, const float *dval, const int *idx, int N, int E, int K) {
#pragma omp parallel for
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            size_t p = (size_t)t * (size_t)K + (size_t)k;
            dscores[(size_t)t * (size_t)E + (size_t)idx[p]] += dval[p];
        }
}

size_t moe_plan_ints(int N, int E, int K) {
    size_t pairs = (size_t)N * (size_t)K;
    return (size_t)E + ((size_t)E + 1) + 3 * pairs;
}

void moe_plan_build(moe_plan *plan, int *buf, const int *idx, int N, int E, int K) {
    size_t pairs = (size_t)N * (size_t)K;
    plan->N = N;
    plan->E = E;
    plan->K = K;
    plan->counts = buf;
    plan->offsets = plan->counts + E;
    plan->row_of = plan->offsets + E + 1;
    plan->token_of = plan->row_of + pairs;
    plan->slot_of = plan->token_of + pairs;

    memset(plan->counts, 0, (size_t)E * sizeof *plan->counts);
    for (size_t p = 0; p < pairs; p++) plan->counts[idx[p]]++;
    plan->offsets[0] = 0;
    for (int e = 0; e < E; e++) plan->offsets[e + 1] = plan->offsets[e] + plan->counts[e];
    /* counts doubles as the fill cursor: reset, then count up again while placing */
    memset(plan->counts, 0, (size_t)E * sizeof *plan->counts);
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            size_t p = (size_t)t * (size_t)K + (size_t)k;
            int e = idx[p];
            int row = plan->offsets[e] + plan->counts[e]++;
            plan->row_of[p] = row;
            plan->token_of[row] = t;
            plan->slot_of[row] = k;
        }
}

void moe_gather_forward(float *xs, const float *x, const moe_plan *plan, int C) {
    int rows = plan->N * plan->K;
#pragma omp parallel for
    for (int r = 0; r < rows; r++)
        memcpy(xs + (size_t)r * (size_t)C, x + (size_t)plan->token_of[r] * (size_t)C, (size_t)C * sizeof *xs);
}

void moe_gather_backward(float *dx, const float *dxs, const moe_plan *plan, int C) {
    int K = plan->K;
#pragma omp parallel for
    for (int t = 0; t < plan->N; t++) {
        float *d = dx + (size_t)t * (size_t)C;
        for (int k = 0; k < K; k++) {
            const float *g = dxs + (size_t)plan->row_of[(size_t)t * (size_t)K + (size_t)k] * (size_t)C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    }
}

void moe_scatter_forward(float *out, const float *ys, const float *weights, const moe_plan *plan, int C) {
    int K = plan->K;
#pragma omp parallel for
    for (int t = 0; t < plan->N; t++) {
        float *o = out + (size_t)t * (size_t)C;
        for (int k = 0; k < K; k++) {
            size_t p = (size_t)t * (size_t)K + (size_t)k;
            float w = weights[p];
            const float *y = ys + (size_t)plan->row_of[p] * (size_t)C;
            for (int c = 0; c < C; c++) o[c] += w * y[c];
        }
    }
}

void moe_scatter_backward(float *dys, float *dweights, const float *dout, const float *ys, const float *weights,
                          const moe_plan *plan, int C) {
    int K = plan->K;
#pragma omp parallel for
    for (int t = 0; t < plan->N; t++) {
        const float *g = dout + (size_t)t * (size_t)C;
        for (int k = 0; k < K; k++) {
            size_t p = (size_t)t * (size_t)K + (size_t)k;
            size_t row = (size_t)plan->row_of[p];
            if (dys) {
                float w = weights[p];
                float *d = dys + row * (size_t)C;
                for (int c = 0; c < C; c++) d[c] = w * g[c];
            }
            if (dweights) {
                const float *y = ys + row * (size_t)C;
                double dot = 0.0;
                for (int c = 0; c < C; c++) dot += (double)g[c] * y[c];
                dweights[p] += (float)dot;
            }
        }
    }
}
