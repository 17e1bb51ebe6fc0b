/* moe_block.c — the MLP half of a decoder layer: out = xm + mlp(RMSNorm(xm)).
 *
 * Dense layers (l < first_k_dense_replace) use one SwiGLU MLP. MoE layers use DeepSeekMoE as
 * DeepseekV3MoE / DeepseekV3TopkRouter compute it:
 *   s = sigmoid(x·W_rᵀ) (fp32); c = s + e_score_correction_bias (selection only);
 *   group score = sum of the top-2 c in each of n_group groups; keep topk_group groups;
 *   idx = top-k of c over the kept groups; w = s[idx], / (Σw + 1e-20) if norm_topk_prob,
 *   × routed_scaling_factor;  y = Σ_k w_k·expert_{idx_k}(x) + shared(x).
 * Gradients flow to W_r through w (the choice itself is discrete).
 *
 * Complementary sequence-wise balance loss (DeepSeek-V3 eq. 17–20), averaged over sequences:
 *   L_bal = α Σ_i f_i P_i,  f_i = E/(K·T_s) Σ_t 1[i ∈ idx_t],  P_i = 1/T_s Σ_t s_it / Σ_j s_jt
 * where a sequence is a row of the batch, or a packed segment when segment ids are given.
 */
#include <math.h>
#include <string.h>

#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "model/acts.h"
#include "model/ffn.h"

/* Sequence boundaries: token t starts a new sequence when its row or segment changes. */
static int same_sequence(const model_batch *b, int t) {
    if (t % b->T == 0) return 0;
    return !b->segment || b->segment[t] == b->segment[t - 1];
}

static void route(const policy_model *m, layer_acts *a, const float *bias, int N) {
    const model_config *c = &m->cfg;
    const int E = c->n_routed_experts, K = c->num_experts_per_tok, G = c->n_group, TG = c->topk_group;
    const int per = E / G;
    for (int t = 0; t < N; t++) {
        float *s = a->scores + (size_t)t * E, *ch = a->choice + (size_t)t * E;
        for (int e = 0; e < E; e++) {
            s[e] = 1.0f / (1.0f + expf(-s[e]));
            ch[e] = s[e] + bias[e];
        }
        if (G > 1 && TG < G) {
            float gscore[256];
            int keep[256];
            for (int g = 0; g < G; g++) {
                float b1 = -INFINITY, b2 = -INFINITY;
                for (int e = g * per; e < (g + 1) * per; e++) {
                    if (ch[e] > b1) b2 = b1, b1 = ch[e];
                    else if (ch[e] > b2) b2 = ch[e];
                }
                gscore[g] = per >= 2 ? b1 + b2 : b1;
                keep[g] = 0;
            }
            for (int r = 0; r < TG; r++) {
                int best = -1;
                for (int g = 0; g < G; g++)
                    if (!keep[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
                keep[best] = 1;
            }
            for (int g = 0; g < G; g++)
                if (!keep[g])
                    for (int e = g * per; e < (g + 1) * per; e++) ch[e] = -INFINITY;
        }
    }
    moe_topk(a->idx, NULL, a->choice, N, E, K);
    const float rsf = (float)c->routed_scaling_factor;
    for (int t = 0; t < N; t++) {
        float *w = a->w + (size_t)t * K;
        const float *s = a->scores + (size_t)t * E;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) {
            w[k] = s[a->idx[(size_t)t * K + k]];
            sum += w[k];
        }
        sum += 1e-20f;
        a->wsum[t] = sum;
        for (int k = 0; k < K; k++) w[k] = c->norm_topk_prob ? w[k] / sum * rsf : w[k] * rsf;
    }
}

/* Returns the α-weighted balance loss (mean over sequences) and fills aux_f with each token's
 * dL/ds′ coefficient α·f_i/(T_s·nseq). */
static double balance_loss(const policy_model *m, layer_acts *a, const model_batch *b, int N) {
    const int E = m->cfg.n_routed_experts, K = m->cfg.num_experts_per_tok;
    const double alpha = m->cfg.posttrain_seq_aux_alpha;
    int nseq = 0;
    for (int t = 0; t < N; t++) nseq += !same_sequence(b, t);
    double total = 0.0, f[1024], P[1024];
    for (int t0 = 0; t0 < N;) {
        int t1 = t0 + 1;
        while (t1 < N && same_sequence(b, t1)) t1++;
        int Ts = t1 - t0;
        for (int e = 0; e < E; e++) f[e] = P[e] = 0.0;
        for (int t = t0; t < t1; t++) {
            const float *s = a->scores + (size_t)t * E;
            double z = 0.0;
            for (int e = 0; e < E; e++) z += s[e];
            for (int e = 0; e < E; e++) P[e] += s[e] / z / Ts;
            for (int k = 0; k < K; k++) f[a->idx[(size_t)t * K + k]] += (double)E / ((double)K * Ts);
        }
        for (int e = 0; e < E; e++) total += alpha * f[e] * P[e] / nseq;
        for (int t = t0; t < t1; t++)
            for (int e = 0; e < E; e++) a->aux_f[(size_t)t * E + e] = (float)(alpha * f[e] / ((double)Ts * nseq));
        t0 = t1;
    }
    return total;
}

void mlp_forward(const policy_model *m, int l, layer_acts *a, const model_batch *b, double *bal, int *load) {
    const model_config *c = &m->cfg;
    const layer_layout *ly = &m->layout.layers[l];
    const float *P = m->params;
    const int N = b->B * b->T, H = c->hidden_size;

    PROFILE(m, PHASE_NORM, rmsnorm_forward(a->ln2, a->rstd2, a->xm, P + ly->post_norm, (float)c->rms_norm_eps, N, H));
    if (!ly->moe) {
        PROFILE(m, PHASE_DENSE_MLP, ffn_forward(a->out, a->g, a->u, a->s, a->ln2, P + ly->gate, P + ly->up, P + ly->down, N, H,
                    c->intermediate_size, m->precision));
        for (size_t i = 0; i < (size_t)N * H; i++) a->out[i] += a->xm[i];
        return;
    }
    const int E = c->n_routed_experts, K = c->num_experts_per_tok, I = c->moe_intermediate_size;
    const int S = I * c->n_shared_experts;
    PROFILE(m, PHASE_ROUTER, linear_forward(a->scores, a->ln2, P + ly->router, NULL, N, H, E));
    PROFILE(m, PHASE_ROUTER, route(m, a, P + ly->router_bias, N));
    PROFILE(m, PHASE_EXPERTS, moe_plan_build(&a->plan, a->plan_buf, a->idx, N, E, K));
    PROFILE(m, PHASE_EXPERTS, moe_gather_forward(a->xs, a->ln2, &a->plan, H));
    const size_t per = (size_t)I * H;
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)a->plan.offsets[e];
        int ne = a->plan.counts[e];
        if (load) load[e] += ne;
        PROFILE(m, PHASE_EXPERTS, ffn_forward(a->ey + r0 * H, a->eg + r0 * I, a->eu + r0 * I, a->es + r0 * I, a->xs + r0 * H,
                    P + ly->experts_gate + e * per, P + ly->experts_up + e * per, P + ly->experts_down + e * per,
                    ne, H, I, m->precision));
    }
    if (S > 0) {
        PROFILE(m, PHASE_DENSE_MLP, ffn_forward(a->out, a->sg, a->su, a->ss, a->ln2, P + ly->shared_gate, P + ly->shared_up,
                    P + ly->shared_down, N, H, S, m->precision));
        for (size_t i = 0; i < (size_t)N * H; i++) a->out[i] += a->xm[i];
    } else {
        memcpy(a->out, a->xm, (size_t)N * H * sizeof *a->out);
    }
    PROFILE(m, PHASE_EXPERTS, moe_scatter_forward(a->out, a->ey, a->w, &a->plan, H));
    if (c->posttrain_seq_aux_alpha > 0 && bal) *bal += balance_loss(m, a, b, N);
}

void mlp_backward(policy_model *m, int l, layer_acts *a, const model_batch *b, model_scratch *s, float aux_scale) {
    const model_config *c = &m->cfg;
    const layer_layout *ly = &m->layout.layers[l];
    const float *P = m->params;
    float *G = m->grads;
    const int N = b->B * b->T, H = c->hidden_size;

    memset(s->dln, 0, (size_t)N * H * sizeof(float));
    if (!ly->moe) {
        PROFILE(m, PHASE_DENSE_MLP, ffn_backward(s->dln, G + ly->gate, G + ly->up, G + ly->down, s->dres, a->ln2, a->g, a->u, a->s,
                     P + ly->gate, P + ly->up, P + ly->down, s->ffn, N, H, c->intermediate_size, m->precision));
    } else {
        const int E = c->n_routed_experts, K = c->num_experts_per_tok, I = c->moe_intermediate_size;
        const int S = I * c->n_shared_experts;
        const size_t per = (size_t)I * H;
        memset(s->dw, 0, (size_t)N * K * sizeof(float));
        PROFILE(m, PHASE_EXPERTS, moe_scatter_backward(s->dey, s->dw, s->dres, a->ey, a->w, &a->plan, H));
        memset(s->dxs, 0, (size_t)N * K * H * sizeof(float));
        for (int e = 0; e < E; e++) {
            size_t r0 = (size_t)a->plan.offsets[e];
            PROFILE(m, PHASE_EXPERTS, ffn_backward(s->dxs + r0 * H, G + ly->experts_gate + e * per, G + ly->experts_up + e * per,
                         G + ly->experts_down + e * per, s->dey + r0 * H, a->xs + r0 * H, a->eg + r0 * I,
                         a->eu + r0 * I, a->es + r0 * I, P + ly->experts_gate + e * per,
                         P + ly->experts_up + e * per, P + ly->experts_down + e * per, s->ffn, a->plan.counts[e], H,
                         I, m->precision));
        }
        PROFILE(m, PHASE_EXPERTS, moe_gather_backward(s->dln, s->dxs, &a->plan, H));
        if (S > 0)
            PROFILE(m, PHASE_DENSE_MLP, ffn_backward(s->dln, G + ly->shared_gate, G + ly->shared_up, G + ly->shared_down, s->dres, a->ln2, a->sg,
                         a->su, a->ss, P + ly->shared_gate, P + ly->shared_up, P + ly->shared_down, s->ffn, N, H, S, m->precision));

        /* Routing weights → raw scores → router logits. */
        const float rsf = (float)c->routed_scaling_factor;
        memset(s->dscores, 0, (size_t)N * E * sizeof(float));
        for (int t = 0; t < N; t++) {
            const int *idx = a->idx + (size_t)t * K;
            const float *dw = s->dw + (size_t)t * K, *sc = a->scores + (size_t)t * E;
            float *ds = s->dscores + (size_t)t * E;
            if (c->norm_topk_prob) {
                double S1 = a->wsum[t], dot = 0.0;
                for (int k = 0; k < K; k++) dot += (double)dw[k] * sc[idx[k]];
                for (int k = 0; k < K; k++) ds[idx[k]] += (float)(rsf * (dw[k] / S1 - dot / (S1 * S1)));
            } else {
                for (int k = 0; k < K; k++) ds[idx[k]] += rsf * dw[k];
            }
        }
        if (c->posttrain_seq_aux_alpha > 0 && aux_scale != 0.0f) {
            /* d/ds_j of Σ_i g_i·s_i/Z with Z = Σ s: (g_j − Σ_i g_i s_i/Z)/Z. */
            for (int t = 0; t < N; t++) {
                const float *sc = a->scores + (size_t)t * E, *g = a->aux_f + (size_t)t * E;
                double Z = 0.0, gs = 0.0;
                for (int e = 0; e < E; e++) Z += sc[e], gs += (double)g[e] * sc[e];
                for (int e = 0; e < E; e++)
                    s->dscores[(size_t)t * E + e] += (float)(aux_scale * (g[e] - gs / Z) / Z);
            }
        }
        for (size_t i = 0; i < (size_t)N * E; i++) s->dscores[i] *= a->scores[i] * (1.0f - a->scores[i]);
        PROFILE(m, PHASE_ROUTER, linear_backward(s->dln, G + ly->router, NULL, s->dscores, a->ln2, P + ly->router, N, H, E));
    }
    PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dres, G + ly->post_norm, s->dln, a->xm, P + ly->post_norm, a->rstd2, N, H));
}
