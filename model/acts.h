/* acts.h — per-layer saved activations and backward scratch of the policy model (private to
 * model/). Every buffer is carved from the model_acts arena; shapes use N = B·T rows, H hidden,
 * nh heads, qk = nope + rope, ql q_lora, kl kv_lora, I dense width, S shared width
 * (ns·moe_I), mI expert width, E experts, K experts per token.
 */
#ifndef POSTTRAIN_MODEL_ACTS_H
#define POSTTRAIN_MODEL_ACTS_H

#include "core/timer.h"
#include "kernels/moe.h"
#include "model/model.h"

struct layer_acts {
    float *x;                   /* (N, H) layer input (aliases the previous layer's out) */
    float *ln1, *rstd1;         /* (N, H), (N) */
    float *qa, *qan, *rstd_qa;  /* (N, ql) ×2, (N) — q_lora only */
    float *q;                   /* (N, nh, qk) after RoPE */
    float *kva;                 /* (N, kl + rope): raw c_kv | roped k_pe */
    float *kvn, *rstd_kv;       /* (N, kl), (N) */
    float *kvb;                 /* (N, nh, nope + v) */
    float *k, *v;               /* (N, nh, qk), (N, nh, v) */
    float *att, *lse;           /* (N, nh·v), (B, nh, T) */
    float *xm;                  /* (N, H) after the attention residual */
    float *ln2, *rstd2;         /* (N, H), (N) */
    float *out;                 /* (N, H) layer output */
    float *g, *u, *s;           /* dense: (N, I) */
    /* DeepSeekMoE */
    float *scores;              /* (N, E) sigmoid router scores */
    int *idx;                   /* (N, K) chosen experts */
    float *w;                   /* (N, K) final routing weights */
    float *wsum;                /* (N) Σ of chosen raw scores (+1e-20) when norm_topk_prob */
    float *choice;              /* (N, E) selection scores: s + bias, other groups −inf */
    moe_plan plan;              /* routing plan (points into plan_buf) */
    int *plan_buf;              /* moe_plan_ints(N, E, K) */
    float *xs;                  /* (N·K, H) gathered inputs */
    float *eg, *eu, *es;        /* (N·K, mI) */
    float *ey;                  /* (N·K, H) expert outputs */
    float *sg, *su, *ss;        /* (N, S) shared experts */
    float *sy;                  /* (N, H) shared output */
    float *aux_f;               /* (N, E) f_i of each token's sequence (balance loss), or unused */
};

struct mtp_acts {
    int *emb_ids;               /* (N) token t_{i+k} (0 where it does not exist) */
    int *targets;               /* (N) token t_{i+k+1}, or -1 */
    float *emb;                 /* (N, H) */
    float *cat;                 /* (N, 2H) [enorm(emb) | hnorm(h_prev)] */
    float *rstd_e, *rstd_h;     /* (N) */
    float *hn, *rstd_n;         /* (N, H) shared_head.norm output, (N) */
    float *logits, *lse, *logp; /* (N, V), (N), (N) */
    int count;                  /* positions with a target */
};

/* Backward scratch shared by every layer (sizes are the maxima over layers). */
typedef struct model_scratch {
    float *dres;                /* (N, H) gradient of the residual stream */
    float *dln;                 /* (N, H) gradient of a norm output */
    float *dlogits;             /* (N, V) */
    float *datt, *dq, *dk, *dv; /* (N, nh·v), (N, nh·qk) ×2, (N, nh·v) */
    float *dkvb, *dkva, *dkvn;  /* (N, nh·(nope+v)), (N, kl + rope), (N, kl) */
    float *dqan, *dqa;          /* (N, ql) ×2 */
    float *ffn;                 /* 3 · max(N·I, N·S, N·K·mI) */
    float *dey, *dxs;           /* (N·K, H) ×2 */
    float *dw, *dscores;        /* (N, K), (N, E) */
    float *dh_prev;             /* (N, H) gradient into an MTP module's h_prev */
    float *dcat;                /* (N, 2H) */
    float *dtmp;                /* (N, H) */
} model_scratch;

/* Runs `stmt`, adding its wall time to phase `ph` when the model is being profiled. */
#define PROFILE(m, ph, stmt)                                                                       \
    do {                                                                                           \
        double pt_t0_ = (m)->profile ? timer_now() : 0.0;                                          \
        stmt;                                                                                      \
        if ((m)->profile) (m)->profile->seconds[(ph)] += timer_now() - pt_t0_;                     \
    } while (0)

/* MLA attention sub-block of layer `l` (model/mla.c): xm = x + o_proj(attention(x)). */
void mla_forward(const policy_model *m, int l, layer_acts *a, const model_batch *b, const int *pos);
/* dres holds d(loss)/d(xm) on entry and d(loss)/d(x) on return (+= through the residual). */
void mla_backward(policy_model *m, int l, layer_acts *a, const model_batch *b, const int *pos, model_scratch *s);

/* MLP sub-block of layer `l` (model/moe_block.c): out = xm + mlp(xm), dense or DeepSeekMoE.
 * Adds the α-weighted balance loss of a MoE layer to *balance_loss and loads to load[E]. */
void mlp_forward(const policy_model *m, int l, layer_acts *a, const model_batch *b, double *balance_loss,
                 int *load);
/* dres: d/d(out) on entry, d/d(xm) on return. aux_scale multiplies the balance-loss gradient. */
void mlp_backward(policy_model *m, int l, layer_acts *a, const model_batch *b, model_scratch *s, float aux_scale);

#endif
