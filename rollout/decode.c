/* decode.c — the absorbed MLA step of decode.h. */
#include "rollout/decode.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

#define LOWRANK_EPS 1e-6f

pt_status decode_ws_init(decode_ws *w, const policy_model *m, int max_tokens, int max_len, pt_error *err) {
    memset(w, 0, sizeof *w);
    const model_config *c = &m->cfg;
    const size_t M = (size_t)max_tokens;
    const int H = c->hidden_size, nh = c->num_attention_heads, dn = c->qk_nope_head_dim;
    const int dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr, kl = c->kv_lora_rank;
    const int ql = c->q_lora_rank > 0 ? c->q_lora_rank : 1;
    w->max_tokens = max_tokens;
    w->max_len = max_len;
    w->nthreads = omp_get_max_threads();
    arena_slot slots[] = {
        {"x", (void **)&w->x, M * H, sizeof(float)},
        {"xm", (void **)&w->xm, M * H, sizeof(float)},
        {"ln1", (void **)&w->ln1, M * H, sizeof(float)},
        {"rstd", (void **)&w->rstd, M, sizeof(float)},
        {"qa", (void **)&w->qa, M * ql, sizeof(float)},
        {"qan", (void **)&w->qan, M * ql, sizeof(float)},
        {"q", (void **)&w->q, M * nh * qk, sizeof(float)},
        {"kva", (void **)&w->kva, M * (kl + dr), sizeof(float)},
        {"kvn", (void **)&w->kvn, M * kl, sizeof(float)},
        {"qlat", (void **)&w->qlat, M * nh * kl, sizeof(float)},
        {"lat", (void **)&w->lat, M * nh * kl, sizeof(float)},
        {"att", (void **)&w->att, M * nh * dv, sizeof(float)},
        {"hsel", (void **)&w->hsel, M * H, sizeof(float)},
        {"hidden", (void **)&w->hidden, M * H, sizeof(float)},
        {"cat", (void **)&w->cat, c->num_nextn_predict_layers > 0 ? M * 2 * H : 0, sizeof(float)},
        {"logits", (void **)&w->logits, M * c->vocab_size, sizeof(float)},
        {"scores", (void **)&w->scores, (size_t)w->nthreads * max_len, sizeof(float)},
    };
    PT_TRY(arena_init(&w->mem, slots, (int)(sizeof slots / sizeof slots[0]), err));
    pt_status st = model_mlp_ws_init(&w->mlp, m, max_tokens, err);
    if (st != PT_OK) arena_free(&w->mem);
    return st;
}

void decode_ws_free(decode_ws *w) {
    model_mlp_ws_free(w->mlp);
    arena_free(&w->mem);
    memset(w, 0, sizeof *w);
}

/* Attention of token i, head h over its sequence's cached positions 0..pos (layer l). */
static void attend(float *lat, float *sc, const float *qlat, const float *qrope, const latent_cache *c,
                   const cache_seq *s, int l, int pos, float scale) {
    const int kl = c->kl, dr = c->dr;
    float mx = -INFINITY;
    for (int t = 0; t <= pos; t++) {
        const float *ct = cache_c(c, s, l, t), *kt = cache_kpe(c, s, l, t);
        float d = 0.0f;
        for (int j = 0; j < kl; j++) d += qlat[j] * ct[j];
        for (int j = 0; j < dr; j++) d += qrope[j] * kt[j];
        sc[t] = d * scale;
        if (sc[t] > mx) mx = sc[t];
    }
    double sum = 0.0;
    for (int t = 0; t <= pos; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    float inv = (float)(1.0 / sum);
    memset(lat, 0, (size_t)kl * sizeof *lat);
    for (int t = 0; t <= pos; t++) {
        const float *ct = cache_c(c, s, l, t);
        float p = sc[t] * inv;
        for (int j = 0; j < kl; j++) lat[j] += p * ct[j];
    }
}

/* One decoder layer (attention with the latent cache, then the MLP) over w->x in place; l is
 * both the model layer and the cache layer (MTP module k is layer L + k in both). */
static void decode_layer(decode_ws *w, const policy_model *m, latent_cache *c, cache_seq *const *seqs, const int *pos,
                         int M, int l) {
    const model_config *cf = &m->cfg;
    const float *P = m->params;
    const int H = cf->hidden_size, nh = cf->num_attention_heads, dn = cf->qk_nope_head_dim;
    const int dr = cf->qk_rope_head_dim, dv = cf->v_head_dim, qk = dn + dr, kl = cf->kv_lora_rank;
    const int ql = cf->q_lora_rank;
    const float eps = (float)cf->rms_norm_eps;
    const layer_layout *ly = &m->layout.layers[l];
    rmsnorm_forward(w->ln1, w->rstd, w->x, P + ly->input_norm, eps, M, H);
    if (ql > 0) {
        linear_forward(w->qa, w->ln1, P + ly->q_a, NULL, M, H, ql);
        rmsnorm_forward(w->qan, w->rstd, w->qa, P + ly->q_a_norm, LOWRANK_EPS, M, ql);
        linear_forward(w->q, w->qan, P + ly->q_b, NULL, M, ql, nh * qk);
    } else {
        linear_forward(w->q, w->ln1, P + ly->q_proj, NULL, M, H, nh * qk);
    }
    rope_forward(w->q + dn, w->q + dn, pos, m->inv_freq, m->rope_factor, M, nh, qk, dr);
    linear_forward(w->kva, w->ln1, P + ly->kv_a, NULL, M, H, kl + dr);
    rmsnorm_forward_strided(w->kvn, w->rstd, w->kva, P + ly->kv_a_norm, LOWRANK_EPS, M, kl, kl, kl + dr);
    rope_forward(w->kva + kl, w->kva + kl, pos, m->inv_freq, m->rope_factor, M, 1, kl + dr, dr);
    for (int i = 0; i < M; i++) {
        memcpy(cache_c(c, seqs[i], l, pos[i]), w->kvn + (size_t)i * kl, (size_t)kl * sizeof(float));
        memcpy(cache_kpe(c, seqs[i], l, pos[i]), w->kva + (size_t)i * (kl + dr) + kl, (size_t)dr * sizeof(float));
    }
    /* Absorb W_UK into the queries: qlat[:, h] = q_nope[:, h] · W_UK_h. */
    const float *kvb = P + ly->kv_b;
    for (int h = 0; h < nh; h++)
        gemm_rows(CblasNoTrans, CblasNoTrans, M, kl, dn, 1.0f, w->q + (size_t)h * qk, nh * qk,
                  kvb + (size_t)h * (dn + dv) * kl, kl, 0.0f, w->qlat + (size_t)h * kl, nh * kl);
#pragma omp parallel for schedule(dynamic)
    for (int ih = 0; ih < M * nh; ih++) {
        int i = ih / nh;
        float *sc = w->scores + (size_t)omp_get_thread_num() * w->max_len;
        attend(w->lat + (size_t)ih * kl, sc, w->qlat + (size_t)ih * kl, w->q + (size_t)ih * qk + dn, c, seqs[i], l,
               pos[i], m->softmax_scale);
    }
    /* Values from the latent: att[:, h] = lat[:, h] · W_UV_hᵀ. */
    for (int h = 0; h < nh; h++)
        gemm_rows(CblasNoTrans, CblasTrans, M, dv, kl, 1.0f, w->lat + (size_t)h * kl, nh * kl,
                  kvb + ((size_t)h * (dn + dv) + dn) * kl, kl, 0.0f, w->att + (size_t)h * dv, nh * dv);
    linear_forward(w->xm, w->att, P + ly->o_proj, NULL, M, nh * dv, H);
    for (size_t j = 0; j < (size_t)M * H; j++) w->xm[j] += w->x[j];
    model_mlp_infer(m, l, w->mlp, w->x, w->xm, M, NULL);
}

void decode_step(decode_ws *w, const policy_model *m, latent_cache *c, cache_seq *const *seqs, const int *ids,
                 const int *pos, int M, const int *logit_rows, int R) {
    const model_config *cf = &m->cfg;
    const float *P = m->params;
    const int H = cf->hidden_size, L = cf->num_hidden_layers, V = cf->vocab_size;
    embedding_forward(w->x, ids, P + m->layout.embed, M, H);
    for (int l = 0; l < L; l++) decode_layer(w, m, c, seqs, pos, M, l);
    for (int i = 0; i < M; i++) {
        int L_pos = pos[i] + 1;
        if (seqs[i]->len < L_pos) seqs[i]->len = L_pos;
    }
    rmsnorm_forward(w->hidden, w->rstd, w->x, P + m->layout.final_norm, (float)cf->rms_norm_eps, M, H);
    for (int r = 0; r < R; r++)
        memcpy(w->hsel + (size_t)r * H, w->hidden + (size_t)logit_rows[r] * H, (size_t)H * sizeof(float));
    if (R > 0) linear_forward(w->logits, w->hsel, P + m->layout.lm_head, NULL, R, H, V);
}

void decode_mtp_step(decode_ws *w, const policy_model *m, latent_cache *c, cache_seq *const *seqs,
                     const int *next_ids, const int *pos, const float *h, int M) {
    const model_config *cf = &m->cfg;
    const float *P = m->params;
    const int H = cf->hidden_size, L = cf->num_hidden_layers, V = cf->vocab_size;
    const float eps = (float)cf->rms_norm_eps;
    const layer_layout *ly = &m->layout.layers[L];
    /* h′ = eh_proj([enorm(Emb(t_{i+1})) ; hnorm(h_i)]) — embedding first, as DeepSeek's weights. */
    embedding_forward(w->hsel, next_ids, P + m->layout.embed, M, H);
    rmsnorm_forward_strided(w->cat, w->rstd, w->hsel, P + ly->enorm, eps, M, H, 2 * H, H);
    rmsnorm_forward_strided(w->cat + H, w->rstd, h, P + ly->hnorm, eps, M, H, 2 * H, H);
    linear_forward(w->x, w->cat, P + ly->eh_proj, NULL, M, 2 * H, H);
    decode_layer(w, m, c, seqs, pos, M, L);
    rmsnorm_forward(w->hsel, w->rstd, w->x, P + ly->head_norm, eps, M, H);
    linear_forward(w->logits, w->hsel, P + m->layout.lm_head, NULL, M, H, V);
}
