/* model.c — the whole DeepSeek-V3 network: embedding → L decoder layers → final RMSNorm →
 * lm_head, with the MTP modules and per-token log-probabilities / entropies (see model.h).
 *
 * MTP (V3 report eq. 21–25): module k (1 ≤ k ≤ D) sees, at position i,
 *   h′ = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k−1}_i)]),  h^k = Block_k(h′),
 *   logits = lm_head(shared_head.norm(h^k)),  target t_{i+k+1},
 * with h^0 the main model's final-normed hidden state (what DeepSeek's and vLLM's MTP inference
 * feed it) and the embedding and output head shared with the main model. The MTP loss is
 * λ/D Σ_k mean CE_k. Positions whose t_{i+k} lies beyond their sequence get no MTP target.
 */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/crossentropy.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "model/acts.h"

const char *model_phase_name(model_phase phase) {
    static const char *const names[PHASE_COUNT] = {
        "embedding", "rmsnorm", "attention projections", "rope", "attention core", "router",
        "routed experts", "dense MLP + shared experts", "lm_head + eh_proj", "log-softmax / CE", "other"};
    return phase >= 0 && phase < PHASE_COUNT ? names[phase] : "?";
}

/* ---- parameters ------------------------------------------------------------------------- */

pt_status model_init(policy_model *m, const model_config *cfg, uint64_t seed, pt_error *err) {
    memset(m, 0, sizeof *m);
    pt_status st;
    model_config_init(&m->cfg);
    PT_TRY(model_config_validate(cfg, "model config", err));
    PT_TRY(model_config_copy(&m->cfg, cfg, err));
    PT_TRY_GOTO(st, model_layout_init(&m->layout, cfg, err), fail);
    const int dr = cfg->qk_rope_head_dim;
    arena_slot ps[] = {{"params", (void **)&m->params, m->layout.total, sizeof(float)},
                       {"inv_freq", (void **)&m->inv_freq, (size_t)dr / 2, sizeof(float)}};
    PT_TRY_GOTO(st, arena_init(&m->params_arena, ps, 2, err), fail);
    arena_slot gs[] = {{"grads", (void **)&m->grads, m->layout.total, sizeof(float)}};
    PT_TRY_GOTO(st, arena_init(&m->grads_arena, gs, 1, err), fail);

    rope_yarn y = rope_yarn_default();
    const model_rope *r = &cfg->rope;
    if (r->type == MODEL_ROPE_YARN) {
        y.factor = r->factor;
        y.attention_factor = r->attention_factor;
        y.beta_fast = r->beta_fast;
        y.beta_slow = r->beta_slow;
        y.mscale = r->mscale;
        y.mscale_all_dim = r->mscale_all_dim;
        y.original_max_position_embeddings = r->original_max_position_embeddings;
        y.max_position_embeddings = cfg->max_position_embeddings;
        y.truncate = r->truncate;
    }
    char msg[256] = "";
    if (rope_inv_freq(m->inv_freq, &m->rope_factor, dr, (float)r->rope_theta,
                      r->type == MODEL_ROPE_YARN ? &y : NULL, msg, sizeof msg) != 0) {
        error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "model config: RoPE parameters: %s", msg);
        st = PT_ERR_CONFIG;
        goto fail;
    }
    m->softmax_scale = (float)model_config_softmax_scale(cfg);

    /* Initialisation as HF's _init_weights: normal(0, initializer_range) for every matrix, ones
     * for norms, zeros for router biases; one Philox stream per tensor (by table position). */
    for (int i = 0; i < m->layout.ntensors; i++) {
        const tensor_entry *t = &m->layout.tensors[i];
        if (t->alias) continue;
        float *p = m->params + t->offset;
        if (t->role == TENSOR_NORM) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (t->role == TENSOR_WEIGHT) {
            uint64_t ids[2] = {0x696e6974 /* "init" */, (uint64_t)i};
            rng r0;
            rng_init(&r0, seed, rng_stream_id(ids, 2));
            rng_fill_normal(&r0, p, t->numel, 0.0f, (float)cfg->initializer_range);
        }
    }
    return PT_OK;
fail:
    model_free(m);
    return st;
}

void model_free(policy_model *m) {
    arena_free(&m->params_arena);
    arena_free(&m->grads_arena);
    model_layout_free(&m->layout);
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

void model_zero_grads(policy_model *m) { memset(m->grads, 0, m->layout.total * sizeof(float)); }

/* ---- activations ------------------------------------------------------------------------ */

typedef struct slots {
    arena_slot *s;
    int n, cap;
    int oom;
} slots;

static void slot(slots *t, void *ptr, size_t count, size_t elem) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 128;
        arena_slot *s = realloc(t->s, (size_t)cap * sizeof *s);
        if (!s) {
            t->oom = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    t->s[t->n++] = (arena_slot){"acts", (void **)ptr, count, elem};
}
#define F(ptr, count) slot(&t, &(ptr), (size_t)(count), sizeof(float))
#define I32(ptr, count) slot(&t, &(ptr), (size_t)(count), sizeof(int))

pt_status model_acts_init(model_acts *a, const policy_model *m, int B, int T, pt_error *err) {
    memset(a, 0, sizeof *a);
    const model_config *c = &m->cfg;
    if (B <= 0 || T <= 0) PT_FAIL(err, PT_ERR_INVALID, "batch shape must be positive (B=%d, T=%d)", B, T);
    const size_t N = (size_t)B * T;
    const int H = c->hidden_size, V = c->vocab_size, nh = c->num_attention_heads;
    const int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    const int ql = c->q_lora_rank, kl = c->kv_lora_rank, E = c->n_routed_experts, K = c->num_experts_per_tok;
    const int I = c->intermediate_size, mI = c->moe_intermediate_size, S = mI * c->n_shared_experts;
    const int L = c->num_hidden_layers, D = c->num_nextn_predict_layers;
    a->B = B;
    a->T = T;
    a->layers = calloc((size_t)(L + D), sizeof *a->layers);
    a->mtp = calloc((size_t)(D > 0 ? D : 1), sizeof *a->mtp);
    a->scratch = calloc(1, sizeof *a->scratch);
    slots t = {0};
    if (!a->layers || !a->mtp || !a->scratch) goto oom;

    I32(a->pos, N);
    F(a->h0, N * H);
    F(a->hn, N * H);
    F(a->rstd_final, N);
    F(a->logits, N * V);
    F(a->lse, N);
    F(a->logp, N);
    F(a->entropy, N);
    I32(a->expert_load, (size_t)(L + D) * (E > 0 ? E : 1));
    for (int l = 0; l < L + D; l++) {
        layer_acts *y = &a->layers[l];
        int moe = m->layout.layers[l].moe;
        if (l == 0 || l >= L) F(y->x, N * H); /* else aliases the previous layer's out */
        F(y->ln1, N * H);
        F(y->rstd1, N);
        if (ql > 0) {
            F(y->qa, N * ql);
            F(y->qan, N * ql);
            F(y->rstd_qa, N);
        }
        F(y->q, N * nh * qk);
        F(y->kva, N * (kl + dr));
        F(y->kvn, N * kl);
        F(y->rstd_kv, N);
        F(y->kvb, N * nh * (dn + dv));
        F(y->k, N * nh * qk);
        F(y->v, N * nh * dv);
        F(y->att, N * nh * dv);
        F(y->lse, N * nh);
        F(y->xm, N * H);
        F(y->ln2, N * H);
        F(y->rstd2, N);
        F(y->out, N * H);
        if (!moe) {
            F(y->g, N * I);
            F(y->u, N * I);
            F(y->s, N * I);
        } else {
            F(y->scores, N * E);
            F(y->choice, N * E);
            I32(y->idx, N * K);
            F(y->w, N * K);
            F(y->wsum, N);
            I32(y->plan_buf, moe_plan_ints((int)N, E, K));
            F(y->xs, N * K * H);
            F(y->eg, N * K * mI);
            F(y->eu, N * K * mI);
            F(y->es, N * K * mI);
            F(y->ey, N * K * H);
            if (S > 0) {
                F(y->sg, N * S);
                F(y->su, N * S);
                F(y->ss, N * S);
            }
            F(y->aux_f, N * E);
        }
    }
    for (int k = 0; k < D; k++) {
        mtp_acts *x = &a->mtp[k];
        I32(x->emb_ids, N);
        I32(x->targets, N);
        F(x->emb, N * H);
        F(x->cat, N * 2 * H);
        F(x->rstd_e, N);
        F(x->rstd_h, N);
        F(x->hn, N * H);
        F(x->rstd_n, N);
        F(x->logits, N * V);
        F(x->lse, N);
        F(x->logp, N);
    }
    model_scratch *s = a->scratch;
    size_t ffn = N * (size_t)(I > S ? I : S);
    if (N * K * mI > ffn) ffn = N * K * mI;
    F(s->dres, N * H);
    F(s->dln, N * H);
    F(s->dlogits, N * V);
    F(s->datt, N * nh * dv);
    F(s->dq, N * nh * qk);
    F(s->dk, N * nh * qk);
    F(s->dv, N * nh * dv);
    F(s->dkvb, N * nh * (dn + dv));
    F(s->dkva, N * (kl + dr));
    F(s->dkvn, N * kl);
    if (ql > 0) {
        F(s->dqan, N * ql);
        F(s->dqa, N * ql);
    }
    F(s->ffn, 3 * ffn);
    if (E > 0) {
        F(s->dey, N * K * H);
        F(s->dxs, N * K * H);
        F(s->dw, N * K);
        F(s->dscores, N * E);
    }
    F(s->dh_prev, N * H);
    F(s->dcat, N * 2 * H);
    F(s->dtmp, N * H);
    if (t.oom) goto oom;
    pt_status st = arena_init(&a->mem, t.s, t.n, err);
    free(t.s);
    if (st != PT_OK) {
        model_acts_free(a);
        return error_prefix(err, "activations for B=%d, T=%d", B, T);
    }
    for (int l = 1; l < L; l++) a->layers[l].x = a->layers[l - 1].out;
    a->hL = L > 0 ? a->layers[L - 1].out : a->h0;
    return PT_OK;
oom:
    free(t.s);
    model_acts_free(a);
    PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the activation table (B=%d, T=%d)", B, T);
}
#undef F
#undef I32

void model_acts_free(model_acts *a) {
    arena_free(&a->mem);
    free(a->layers);
    free(a->mtp);
    free(a->scratch);
    memset(a, 0, sizeof *a);
}

/* ---- inference MLP ---------------------------------------------------------------------- */

struct model_mlp_ws {
    layer_acts a;
    arena mem;
    int max_rows;
};

pt_status model_mlp_ws_init(model_mlp_ws **out, const policy_model *m, int max_rows, pt_error *err) {
    const model_config *c = &m->cfg;
    model_mlp_ws *w = calloc(1, sizeof *w);
    PT_CHECK_ALLOC(w, err, sizeof *w);
    const size_t N = (size_t)max_rows;
    const int H = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    const int I = c->intermediate_size, mI = c->moe_intermediate_size, S = mI * c->n_shared_experts;
    layer_acts *y = &w->a;
    slots t = {0};
#define F(ptr, count) slot(&t, &(ptr), (size_t)(count), sizeof(float))
#define I32(ptr, count) slot(&t, &(ptr), (size_t)(count), sizeof(int))
    F(y->ln2, N * H);
    F(y->rstd2, N);
    F(y->g, N * I);
    F(y->u, N * I);
    F(y->s, N * I);
    if (E > 0) {
        F(y->scores, N * E);
        F(y->choice, N * E);
        I32(y->idx, N * K);
        F(y->w, N * K);
        F(y->wsum, N);
        I32(y->plan_buf, moe_plan_ints((int)N, E, K));
        F(y->xs, N * K * H);
        F(y->eg, N * K * mI);
        F(y->eu, N * K * mI);
        F(y->es, N * K * mI);
        F(y->ey, N * K * H);
        F(y->sg, N * S);
        F(y->su, N * S);
        F(y->ss, N * S);
    }
#undef F
#undef I32
    pt_status st = t.oom ? error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for the MLP workspace")
                         : arena_init(&w->mem, t.s, t.n, err);
    free(t.s);
    if (st != PT_OK) {
        free(w);
        return st;
    }
    w->max_rows = max_rows;
    *out = w;
    return PT_OK;
}

void model_mlp_ws_free(model_mlp_ws *w) {
    if (!w) return;
    arena_free(&w->mem);
    free(w);
}

void model_mlp_infer(const policy_model *m, int layer, model_mlp_ws *w, float *out, const float *x, int N,
                     int *load) {
    model_batch b = {NULL, NULL, NULL, NULL, 1, N, 1.0f, false};
    w->a.xm = (float *)x; /* read only: mlp_forward does not write xm */
    w->a.out = out;
    policy_model fp32 = *m; /* rollouts run in fp32 whatever the training precision */
    fp32.precision = MODEL_PRECISION_FP32;
    mlp_forward(&fp32, layer, &w->a, &b, NULL, load);
}

/* ---- forward ---------------------------------------------------------------------------- */

static void layer_forward(const policy_model *m, model_acts *a, int l, const model_batch *b) {
    int E = m->cfg.n_routed_experts;
    mla_forward(m, l, &a->layers[l], b, a->pos);
    mlp_forward(m, l, &a->layers[l], b, &a->balance_loss, E > 0 ? a->expert_load + (size_t)l * E : NULL);
}

/* Log-probabilities of targets (and entropies) for logits scaled by 1/temperature, in place. */
static void head_forward(const policy_model *m, float *logits, float *lse, float *logp, float *entropy, const float *hn,
                         const float *w_head, const int *targets, float temperature, int N, int H, int V) {
    PROFILE(m, PHASE_HEAD, linear_forward(logits, hn, w_head, NULL, N, H, V));
    if (temperature != 1.0f) {
        float inv = 1.0f / temperature;
        for (size_t i = 0; i < (size_t)N * V; i++) logits[i] *= inv;
    }
    if (targets) PROFILE(m, PHASE_SOFTMAX_CE, crossentropy_forward(NULL, logp, entropy, lse, logits, targets, NULL, N, V));
}

/* Does position t have a token k places ahead in its own sequence? */
static int ahead_in_sequence(const model_batch *b, int t, int k) {
    int row = t / b->T;
    if (t + k >= (row + 1) * b->T) return 0;
    return !b->segment || b->segment[t + k] == b->segment[t];
}

pt_status model_forward(policy_model *m, model_acts *a, const model_batch *b, pt_error *err) {
    const model_config *c = &m->cfg;
    if (b->B != a->B || b->T != a->T)
        PT_FAIL(err, PT_ERR_INVALID, "batch shape (%d, %d) does not match the activations (%d, %d)", b->B, b->T,
                a->B, a->T);
    const int N = b->B * b->T, H = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    const int D = c->num_nextn_predict_layers, E = c->n_routed_experts;
    for (int i = 0; i < N; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= V)
            PT_FAIL(err, PT_ERR_INVALID, "token id %d at position %d is outside the vocabulary [0, %d)", b->ids[i], i,
                    V);
        if (b->targets && b->targets[i] >= V)
            PT_FAIL(err, PT_ERR_INVALID, "target id %d at position %d is outside the vocabulary [0, %d)",
                    b->targets[i], i, V);
    }
    if (!(b->temperature > 0.0f)) PT_FAIL(err, PT_ERR_INVALID, "temperature must be > 0, got %g", b->temperature);
    a->batch = b;
    a->mtp_loss = a->balance_loss = 0.0;
    if (E > 0) memset(a->expert_load, 0, (size_t)(L + D) * E * sizeof(int));
    for (int i = 0; i < N; i++) {
        if (b->pos) a->pos[i] = b->pos[i];
        else a->pos[i] = i % b->T;
    }
    const float *P = m->params;
    PROFILE(m, PHASE_EMBED, embedding_forward(a->h0, b->ids, P + m->layout.embed, N, H));
    if (L > 0) memcpy(a->layers[0].x, a->h0, (size_t)N * H * sizeof(float));
    for (int l = 0; l < L; l++) layer_forward(m, a, l, b);
    PROFILE(m, PHASE_NORM, rmsnorm_forward(a->hn, a->rstd_final, a->hL, P + m->layout.final_norm, (float)c->rms_norm_eps, N, H));
    head_forward(m, a->logits, a->lse, a->logp, a->entropy, a->hn, P + m->layout.lm_head, b->targets, b->temperature,
                 N, H, V);

    const float *h_prev = a->hn;
    for (int k = 0; k < D && b->targets && !b->no_mtp; k++) {
        mtp_acts *x = &a->mtp[k];
        const layer_layout *ly = &m->layout.layers[L + k];
        layer_acts *y = &a->layers[L + k];
        x->count = 0;
        for (int t = 0; t < N; t++) {
            int ok = ahead_in_sequence(b, t, k + 1);
            x->emb_ids[t] = ok ? b->ids[t + k + 1] : 0;
            x->targets[t] = ok && ahead_in_sequence(b, t, k + 2) ? b->targets[t + k + 1] : -1;
            x->count += x->targets[t] >= 0;
        }
        PROFILE(m, PHASE_EMBED, embedding_forward(x->emb, x->emb_ids, P + m->layout.embed, N, H));
        PROFILE(m, PHASE_NORM, rmsnorm_forward_strided(x->cat, x->rstd_e, x->emb, P + ly->enorm, (float)c->rms_norm_eps, N, H, 2 * H, H));
        PROFILE(m, PHASE_NORM, rmsnorm_forward_strided(x->cat + H, x->rstd_h, h_prev, P + ly->hnorm, (float)c->rms_norm_eps, N, H, 2 * H,
                                H));
        PROFILE(m, PHASE_HEAD, linear_forward(y->x, x->cat, P + ly->eh_proj, NULL, N, 2 * H, H));
        layer_forward(m, a, L + k, b);
        PROFILE(m, PHASE_NORM, rmsnorm_forward(x->hn, x->rstd_n, y->out, P + ly->head_norm, (float)c->rms_norm_eps, N, H));
        head_forward(m, x->logits, x->lse, x->logp, NULL, x->hn, P + m->layout.lm_head, x->targets, b->temperature, N,
                     H, V);
        double nll = 0.0;
        for (int t = 0; t < N; t++)
            if (x->targets[t] >= 0) nll -= x->logp[t];
        if (x->count > 0) a->mtp_loss += c->posttrain_mtp_loss_weight / D * nll / x->count;
        h_prev = y->out;
    }
    return PT_OK;
}

/* ---- backward --------------------------------------------------------------------------- */

static void layer_backward(policy_model *m, model_acts *a, int l, float aux_scale) {
    model_scratch *s = a->scratch;
    mlp_backward(m, l, &a->layers[l], a->batch, s, aux_scale);
    mla_backward(m, l, &a->layers[l], a->batch, a->pos, s);
}

/* dlogits for Σ dlogp·logp + dentropy·H under temperature τ, then the head's backward:
 * dhn (+=), dW_head (+=). */
static void head_backward(const policy_model *m, model_scratch *s, float *dhn, float *dw_head, const float *dlogp, const float *dentropy,
                          const float *logits, const int *targets, const float *lse, const float *entropy,
                          const float *hn, const float *w_head, float temperature, int N, int H, int V) {
    memset(s->dlogits, 0, (size_t)N * V * sizeof(float));
    PROFILE(m, PHASE_SOFTMAX_CE, crossentropy_backward(s->dlogits, dlogp, dentropy, logits, targets, lse, entropy, N, V));
    if (temperature != 1.0f) {
        float inv = 1.0f / temperature;
        for (size_t i = 0; i < (size_t)N * V; i++) s->dlogits[i] *= inv;
    }
    PROFILE(m, PHASE_HEAD, linear_backward(dhn, dw_head, NULL, s->dlogits, hn, w_head, N, H, V));
}

void model_backward(policy_model *m, model_acts *a, const float *dlogp, const float *dentropy, float aux_scale) {
    const model_config *c = &m->cfg;
    const model_batch *b = a->batch;
    model_scratch *s = a->scratch;
    const int N = b->B * b->T, H = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    const int D = b->targets && !b->no_mtp ? c->num_nextn_predict_layers : 0;
    const float *P = m->params;
    float *G = m->grads;
    const size_t NH = (size_t)N * H;

    /* MTP modules, last first: each passes a gradient to its h_prev (dh_prev). */
    memset(s->dh_prev, 0, NH * sizeof(float));
    for (int k = D - 1; k >= 0; k--) {
        mtp_acts *x = &a->mtp[k];
        const layer_layout *ly = &m->layout.layers[L + k];
        layer_acts *y = &a->layers[L + k];
        /* dres = d/d(block out): from this module's loss plus what module k+1 sent back. */
        memcpy(s->dres, s->dh_prev, NH * sizeof(float));
        if (x->count > 0 && aux_scale != 0.0f) {
            float *dl = s->dtmp; /* N floats suffice: dtmp is N·H */
            float coef = (float)(-aux_scale * c->posttrain_mtp_loss_weight / D / x->count);
            for (int t = 0; t < N; t++) dl[t] = x->targets[t] >= 0 ? coef : 0.0f;
            memset(s->dln, 0, NH * sizeof(float));
            head_backward(m, s, s->dln, G + m->layout.lm_head, dl, NULL, x->logits, x->targets, x->lse, NULL, x->hn,
                          P + m->layout.lm_head, b->temperature, N, H, V);
            PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dres, G + ly->head_norm, s->dln, y->out, P + ly->head_norm, x->rstd_n, N, H));
        }
        layer_backward(m, a, L + k, aux_scale);
        /* dres = d/d(eh_proj output) → [enorm(emb) | hnorm(h_prev)]. */
        memset(s->dcat, 0, 2 * NH * sizeof(float));
        PROFILE(m, PHASE_HEAD, linear_backward(s->dcat, G + ly->eh_proj, NULL, s->dres, x->cat, P + ly->eh_proj, N, 2 * H, H));
        memset(s->dtmp, 0, NH * sizeof(float));
        PROFILE(m, PHASE_NORM, rmsnorm_backward_strided(s->dtmp, G + ly->enorm, s->dcat, x->emb, P + ly->enorm, x->rstd_e, N, H, H, 2 * H, H));
        PROFILE(m, PHASE_EMBED, embedding_backward(G + m->layout.embed, s->dtmp, x->emb_ids, N, H));
        const float *h_prev = k == 0 ? a->hn : a->layers[L + k - 1].out;
        memset(s->dh_prev, 0, NH * sizeof(float));
        PROFILE(m, PHASE_NORM, rmsnorm_backward_strided(s->dh_prev, G + ly->hnorm, s->dcat + H, h_prev, P + ly->hnorm, x->rstd_h, N, H, H,
                                 2 * H, H));
    }

    /* Main head: d/d(hn) = head gradient + what MTP module 1 sent to h^0 = hn. */
    float *dhn = s->dtmp;
    memcpy(dhn, s->dh_prev, NH * sizeof(float));
    if (dlogp || dentropy)
        head_backward(m, s, dhn, G + m->layout.lm_head, dlogp, dentropy, a->logits, b->targets, a->lse, a->entropy,
                      a->hn, P + m->layout.lm_head, b->temperature, N, H, V);
    memset(s->dres, 0, NH * sizeof(float));
    PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dres, G + m->layout.final_norm, dhn, a->hL, P + m->layout.final_norm, a->rstd_final, N, H));
    for (int l = L - 1; l >= 0; l--) layer_backward(m, a, l, aux_scale);
    PROFILE(m, PHASE_EMBED, embedding_backward(G + m->layout.embed, s->dres, b->ids, N, H));
}

int model_mean_nll(const model_acts *a, float *dlogp, double *loss) {
    const model_batch *b = a->batch;
    const int N = a->B * a->T;
    int count = 0;
    double nll = 0.0;
    for (int i = 0; i < N; i++)
        if (b->targets && b->targets[i] >= 0) {
            count++;
            nll -= a->logp[i];
        }
    for (int i = 0; i < N; i++)
        dlogp[i] = (b->targets && b->targets[i] >= 0 && count > 0) ? -1.0f / (float)count : 0.0f;
    *loss = count > 0 ? nll / count : 0.0;
    return count;
}

void model_update_router_bias(policy_model *m, const model_acts *a, float gamma) {
    const model_config *c = &m->cfg;
    const int E = c->n_routed_experts;
    for (int l = 0; l < m->layout.nlayers; l++) {
        const layer_layout *ly = &m->layout.layers[l];
        if (!ly->moe) continue;
        const int *load = a->expert_load + (size_t)l * E;
        double mean = 0.0;
        for (int e = 0; e < E; e++) mean += load[e];
        mean /= E;
        float *bias = m->params + ly->router_bias;
        for (int e = 0; e < E; e++) {
            if (load[e] > mean) bias[e] -= gamma;
            else if (load[e] < mean) bias[e] += gamma;
        }
    }
}

int model_expert_load(const policy_model *m, const model_acts *a, int layer, expert_load_stats *out) {
    if (layer < 0 || layer >= m->layout.nlayers || !m->layout.layers[layer].moe) return -1;
    const int E = m->cfg.n_routed_experts;
    const int *load = a->expert_load + (size_t)layer * E;
    double sum = 0.0, sq = 0.0;
    out->min = out->max = load[0];
    for (int e = 0; e < E; e++) {
        sum += load[e];
        sq += (double)load[e] * load[e];
        if (load[e] < out->min) out->min = load[e];
        if (load[e] > out->max) out->max = load[e];
    }
    out->mean = sum / E;
    out->max_over_mean = out->mean > 0 ? out->max / out->mean : 0.0;
    double var = sq / E - out->mean * out->mean;
    out->cv = out->mean > 0 ? sqrt(var > 0 ? var : 0) / out->mean : 0.0;
    return 0;
}

/* ---- trunk only (score heads) ------------------------------------------------------------ */

pt_status model_forward_hidden(policy_model *m, model_acts *a, const model_batch *b, pt_error *err) {
    const model_config *c = &m->cfg;
    if (b->B != a->B || b->T != a->T)
        PT_FAIL(err, PT_ERR_INVALID, "batch shape (%d, %d) does not match the activations (%d, %d)", b->B, b->T,
                a->B, a->T);
    const int N = b->B * b->T, H = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    const int D = c->num_nextn_predict_layers, E = c->n_routed_experts;
    for (int i = 0; i < N; i++)
        if (b->ids[i] < 0 || b->ids[i] >= V)
            PT_FAIL(err, PT_ERR_INVALID, "token id %d at position %d is outside the vocabulary [0, %d)", b->ids[i], i,
                    V);
    a->batch = b;
    a->mtp_loss = a->balance_loss = 0.0;
    if (E > 0) memset(a->expert_load, 0, (size_t)(L + D) * E * sizeof(int));
    for (int i = 0; i < N; i++) a->pos[i] = b->pos ? b->pos[i] : i % b->T;
    const float *P = m->params;
    PROFILE(m, PHASE_EMBED, embedding_forward(a->h0, b->ids, P + m->layout.embed, N, H));
    if (L > 0) memcpy(a->layers[0].x, a->h0, (size_t)N * H * sizeof(float));
    for (int l = 0; l < L; l++) layer_forward(m, a, l, b);
    PROFILE(m, PHASE_NORM,
            rmsnorm_forward(a->hn, a->rstd_final, a->hL, P + m->layout.final_norm, (float)c->rms_norm_eps, N, H));
    return PT_OK;
}

void model_backward_hidden(policy_model *m, model_acts *a, const float *dhn, float aux_scale) {
    const model_config *c = &m->cfg;
    const model_batch *b = a->batch;
    model_scratch *s = a->scratch;
    const int N = b->B * b->T, H = c->hidden_size, L = c->num_hidden_layers;
    memset(s->dres, 0, (size_t)N * H * sizeof(float));
    PROFILE(m, PHASE_NORM, rmsnorm_backward(s->dres, m->grads + m->layout.final_norm, dhn, a->hL,
                                            m->params + m->layout.final_norm, a->rstd_final, N, H));
    for (int l = L - 1; l >= 0; l--) layer_backward(m, a, l, aux_scale);
    PROFILE(m, PHASE_EMBED, embedding_backward(m->grads + m->layout.embed, s->dres, b->ids, N, H));
}
