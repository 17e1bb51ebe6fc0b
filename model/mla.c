/* mla.c — Multi-head Latent Attention (DeepSeek-V2/V3), training path, as DeepseekV3Attention:
 *
 *   q        = q_b(RMSNorm₁₀⁻⁶(q_a(x)))   or q_proj(x)        per head [q_nope | q_rope]
 *   [c | kₚ] = kv_a_proj_with_mqa(x)                          c: kv_lora, kₚ: rope (shared)
 *   [k_nope | v] per head = kv_b(RMSNorm₁₀⁻⁶(c))
 *   q_rope, kₚ ← RoPE(pos)                                     k = [k_nope | kₚ] for every head
 *   xm = x + o_proj(softmax(q·kᵀ·scale + causal/segment mask)·v)
 *
 * The low-rank norms use eps 1e-6 whatever rms_norm_eps says (HF builds them with the default).
 * RoPE rotates interleaved pairs in place; transformers de-interleaves instead, a permutation
 * applied to both q and k, so scores and outputs are identical. The latent decode path (absorbed
 * kv_b, cached c and kₚ) lives in rollout/ and is tested against this one. The five projections
 * run in the model's training precision (model/precision.h); the attention core stays fp32.
 */
#include <string.h>

#include "kernels/attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "model/acts.h"
#include "model/precision.h"

#define LOWRANK_EPS 1e-6f

void mla_forward(const policy_model *m, int l, layer_acts *a, const model_batch *b, const int *pos) {
    const model_config *c = &m->cfg;
    const layer_layout *ly = &m->layout.layers[l];
    const float *P = m->params;
    const int N = b->B * b->T, H = c->hidden_size, nh = c->num_attention_heads;
    const int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    const int ql = c->q_lora_rank, kl = c->kv_lora_rank;

    PROFILE(m, PHASE_NORM, rmsnorm_forward(a->ln1, a->rstd1, a->x, P + ly->input_norm, (float)c->rms_norm_eps, N, H));
    if (ql > 0) {
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->qa, a->ln1, P + ly->q_a, N, H, ql));
        PROFILE(m, PHASE_NORM, rmsnorm_forward(a->qan, a->rstd_qa, a->qa, P + ly->q_a_norm, LOWRANK_EPS, N, ql));
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->q, a->qan, P + ly->q_b, N, ql, nh * qk));
    } else {
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->q, a->ln1, P + ly->q_proj, N, H, nh * qk));
    }
    PROFILE(m, PHASE_ROPE, rope_forward(a->q + dn, a->q + dn, pos, m->inv_freq, m->rope_factor, N, nh, qk, dr));

    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->kva, a->ln1, P + ly->kv_a, N, H, kl + dr));
    PROFILE(m, PHASE_NORM, rmsnorm_forward_strided(a->kvn, a->rstd_kv, a->kva, P + ly->kv_a_norm, LOWRANK_EPS, N, kl, kl, kl + dr));
    PROFILE(m, PHASE_ROPE, rope_forward(a->kva + kl, a->kva + kl, pos, m->inv_freq, m->rope_factor, N, 1, kl + dr, dr));
    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->kvb, a->kvn, P + ly->kv_b, N, kl, nh * (dn + dv)));

    /* Assemble per-head keys [k_nope | shared k_pe] and values for the attention kernel. */
    for (int n = 0; n < N; n++)
        for (int h = 0; h < nh; h++) {
            const float *src = a->kvb + ((size_t)n * nh + h) * (dn + dv);
            float *kd = a->k + ((size_t)n * nh + h) * qk;
            memcpy(kd, src, (size_t)dn * sizeof *kd);
            memcpy(kd + dn, a->kva + (size_t)n * (kl + dr) + kl, (size_t)dr * sizeof *kd);
            memcpy(a->v + ((size_t)n * nh + h) * dv, src + dn, (size_t)dv * sizeof *kd);
        }
    PROFILE(m, PHASE_ATTN_CORE, attention_forward(a->att, a->lse, a->q, a->k, a->v, b->segment, m->softmax_scale, b->B, b->T, nh, qk, dv));
    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_forward(m->precision, a->xm, a->att, P + ly->o_proj, N, nh * dv, H));
    for (size_t i = 0; i < (size_t)N * H; i++) a->xm[i] += a->x[i];
}

void mla_backward(policy_model *m, int l, layer_acts *a, const model_batch *b, const int *pos, model_scratch *s) {
    const model_config *c = &m->cfg;
    const layer_layout *ly = &m->layout.layers[l];
    const float *P = m->params;
    float *G = m->grads;
    const int N = b->B * b->T, H = c->hidden_size, nh = c->num_attention_heads;
    const int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    const int ql = c->q_lora_rank, kl = c->kv_lora_rank;

    memset(s->datt, 0, (size_t)N * nh * dv * sizeof(float));
    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->datt, G + ly->o_proj, s->dres, a->att, P + ly->o_proj, N, nh * dv, H));

    memset(s->dq, 0, (size_t)N * nh * qk * sizeof(float));
    memset(s->dk, 0, (size_t)N * nh * qk * sizeof(float));
    memset(s->dv, 0, (size_t)N * nh * dv * sizeof(float));
    PROFILE(m, PHASE_ATTN_CORE, attention_backward(s->dq, s->dk, s->dv, s->datt, a->q, a->k, a->v, a->att, a->lse, b->segment,
                       m->softmax_scale, b->B, b->T, nh, qk, dv));

    /* Split dk/dv back into kv_b's output rows and the shared k_pe (summed over heads). */
    memset(s->dkva, 0, (size_t)N * (kl + dr) * sizeof(float));
    for (int n = 0; n < N; n++) {
        float *dpe = s->dkva + (size_t)n * (kl + dr) + kl;
        for (int h = 0; h < nh; h++) {
            float *dst = s->dkvb + ((size_t)n * nh + h) * (dn + dv);
            const float *dkh = s->dk + ((size_t)n * nh + h) * qk;
            memcpy(dst, dkh, (size_t)dn * sizeof *dst);
            memcpy(dst + dn, s->dv + ((size_t)n * nh + h) * dv, (size_t)dv * sizeof *dst);
            for (int i = 0; i < dr; i++) dpe[i] += dkh[dn + i];
        }
    }
    PROFILE(m, PHASE_ROPE, rope_backward(s->dkva + kl, s->dkva + kl, pos, m->inv_freq, m->rope_factor, N, 1, kl + dr, dr));
    memset(s->dkvn, 0, (size_t)N * kl * sizeof(float));
    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->dkvn, G + ly->kv_b, s->dkvb, a->kvn, P + ly->kv_b, N, kl, nh * (dn + dv)));
    PROFILE(m, PHASE_NORM, rmsnorm_backward_strided(s->dkva, G + ly->kv_a_norm, s->dkvn, a->kva, P + ly->kv_a_norm, a->rstd_kv, N, kl,
                             kl + dr, kl, kl + dr));

    memset(s->dln, 0, (size_t)N * H * sizeof(float));
    PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->dln, G + ly->kv_a, s->dkva, a->ln1, P + ly->kv_a, N, H, kl + dr));

    PROFILE(m, PHASE_ROPE, rope_backward(s->dq + dn, s->dq + dn, pos, m->inv_freq, m->rope_factor, N, nh, qk, dr));
    if (ql > 0) {
        memset(s->dqan, 0, (size_t)N * ql * sizeof(float));
        memset(s->dqa, 0, (size_t)N * ql * sizeof(float));
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->dqan, G + ly->q_b, s->dq, a->qan, P + ly->q_b, N, ql, nh * qk));
        PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dqa, G + ly->q_a_norm, s->dqan, a->qa, P + ly->q_a_norm, a->rstd_qa, N, ql));
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->dln, G + ly->q_a, s->dqa, a->ln1, P + ly->q_a, N, H, ql));
    } else {
        PROFILE(m, PHASE_ATTN_PROJ, precision_linear_backward(m->precision, s->dln, G + ly->q_proj, s->dq, a->ln1, P + ly->q_proj, N, H, nh * qk));
    }
    /* dres already carries d/dxm = d/dx through the residual; add the path through the norm. */
    PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dres, G + ly->input_norm, s->dln, a->x, P + ly->input_norm, a->rstd1, N, H));
}
