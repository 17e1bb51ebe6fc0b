/* model.h — the DeepSeek-V3 policy: parameters, training forward and backward (fp32 CPU).
 *
 * Computes what transformers' DeepseekV3ForCausalLM computes (tests/test_model.c checks logits,
 * loss and every gradient against its fixtures), plus what transformers leaves out: the
 * multi-token-prediction modules (V3 report §2.2, eq. 21–25) and the complementary
 * sequence-wise balance loss (§2.1.2, eq. 17–20).
 *
 * Shapes: B sequences of T tokens, N = B·T rows; H hidden, V vocab, nh heads, E routed experts,
 * K experts per token. Token-level results of the forward (log-probability of each target and
 * the entropy of each position's distribution) are what SFT and GRPO build their losses from:
 * the backward takes d(objective)/d(logp) and d(objective)/d(entropy) per token, so one model
 * serves every loss. Gradients ACCUMULATE into model->grads (+=); zero them with
 * model_zero_grads between optimizer steps, not between micro-batches.
 */
#ifndef POSTTRAIN_MODEL_MODEL_H
#define POSTTRAIN_MODEL_MODEL_H

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/layout.h"
#include "model/model_config.h"
#include "model/precision.h"

/* Where the time goes (`make bench`): seconds per phase, forward and backward together. */
typedef enum model_phase {
    PHASE_EMBED,      /* embedding lookup and its backward */
    PHASE_NORM,       /* every RMSNorm */
    PHASE_ATTN_PROJ,  /* q/kv/o projections (q_a, q_b or q_proj, kv_a, kv_b, o_proj) */
    PHASE_ROPE,       /* rotary embedding */
    PHASE_ATTN_CORE,  /* softmax(q·kᵀ)·v */
    PHASE_ROUTER,     /* router GEMM, sigmoid, group/top-k choice, routing-weight backward */
    PHASE_EXPERTS,    /* routed experts: gather, SwiGLU FFNs, weighted scatter */
    PHASE_DENSE_MLP,  /* dense MLP and shared experts */
    PHASE_HEAD,       /* lm_head GEMMs (main and MTP) and eh_proj */
    PHASE_SOFTMAX_CE, /* log-softmax, log-probabilities, entropy */
    PHASE_OTHER,      /* residual adds, copies, balance loss */
    PHASE_COUNT
} model_phase;

typedef struct model_profile {
    double seconds[PHASE_COUNT];
} model_profile;

const char *model_phase_name(model_phase phase);

typedef struct policy_model {
    model_config cfg;
    model_layout layout;
    float *params;   /* (layout.total) fp32 master weights */
    float *grads;    /* (layout.total) same layout */
    arena params_arena, grads_arena;
    float *inv_freq;          /* (rope/2) RoPE inverse frequencies */
    float rope_factor;        /* YaRN attention factor multiplying cos/sin */
    float softmax_scale;      /* qk_head_dim^-0.5 · mscale² */
    model_profile *profile;   /* NULL, or where phase timings accumulate */
    model_precision precision; /* GEMMs of the training forward/backward (model/precision.h); fp32 after init */
} policy_model;

/* The inputs of one forward pass. */
typedef struct model_batch {
    const int *ids;       /* (B, T) token ids */
    const int *targets;   /* (B, T) the token each position predicts, < 0 = none (NULL: no loss) */
    const int *segment;   /* (B, T) packed-sequence ids, or NULL: one sequence per row */
    const int *pos;       /* (B, T) RoPE positions, or NULL: 0..T-1 in each row */
    int B, T;
    float temperature;    /* logits are divided by it before log-softmax (1 for SFT) */
    bool no_mtp;          /* skip the MTP modules entirely (no MTP loss, nothing of them computed or
                           * backpropagated): for forwards that only need the main head's log-probs */
} model_batch;

typedef struct layer_acts layer_acts;
typedef struct mtp_acts mtp_acts;

/* Activations of one (B, T) shape, in one arena; reused across micro-batches of that shape. */
typedef struct model_acts {
    int B, T;
    arena mem;
    int *pos;            /* (N) positions used */
    float *h0;           /* (N, H) embeddings */
    layer_acts *layers;  /* (L + D) */
    float *hL;           /* (N, H) main stack output (before the final norm) */
    float *hn;           /* (N, H) final norm output */
    float *rstd_final;   /* (N) */
    float *logits;       /* (N, V) temperature-scaled logits */
    float *lse;          /* (N) */
    float *logp;         /* (N) log-probability of each target (0 where none) */
    float *entropy;      /* (N) entropy of each position's distribution */
    mtp_acts *mtp;       /* (D) */
    /* results */
    double mtp_loss;     /* λ/D Σ_k mean CE_k, already weighted (0 without MTP or targets) */
    double balance_loss; /* α-weighted sequence-wise balance loss summed over MoE layers */
    int *expert_load;    /* (L + D, E) tokens routed to each expert in this forward */
    struct model_scratch *scratch; /* backward temporaries */
    const model_batch *batch; /* the batch of the last forward */
} model_acts;

/* A model with this config; parameters drawn as HF initialises them (normal(0, initializer_range)
 * for matrices, ones for norms, zeros for router biases) from the (seed, "init") stream. */
pt_status model_init(policy_model *m, const model_config *cfg, uint64_t seed, pt_error *err);
void model_free(policy_model *m);
void model_zero_grads(policy_model *m);

pt_status model_acts_init(model_acts *a, const policy_model *m, int B, int T, pt_error *err);
void model_acts_free(model_acts *a);

/* Training forward: fills a->logits, a->logp, a->entropy (where batch->targets is set), the MTP
 * loss and the balance loss. */
pt_status model_forward(policy_model *m, model_acts *a, const model_batch *batch, pt_error *err);

/* Backward of  Σ_i dlogp[i]·logp[i] + dentropy[i]·entropy[i]  + aux_scale·(mtp_loss + balance_loss)
 * for the last forward on `a`; dlogp/dentropy may be NULL. Gradients accumulate (+=). */
void model_backward(policy_model *m, model_acts *a, const float *dlogp, const float *dentropy, float aux_scale);

/* Mean next-token cross-entropy over positions with a target, and dlogp for it (−1/count),
 * the SFT loss. Returns the number of counted positions. */
int model_mean_nll(const model_acts *a, float *dlogp, double *loss);

/* Inference-only MLP half of a decoder layer for N rows (the rollout engine's decode path):
 * out (N, H) (=) x + mlp_l(RMSNorm(x)), dense or DeepSeekMoE exactly as the training forward
 * computes it, without saving anything for a backward. out must not alias x. load (E), when
 * not NULL, accumulates tokens per routed expert. */
typedef struct model_mlp_ws model_mlp_ws;
pt_status model_mlp_ws_init(model_mlp_ws **ws, const policy_model *m, int max_rows, pt_error *err);
void model_mlp_ws_free(model_mlp_ws *ws);
void model_mlp_infer(const policy_model *m, int layer, model_mlp_ws *ws, float *out, const float *x, int N,
                     int *load);

/* Expert load of one layer in the last forward (for metrics). max_over_mean is 1 when perfectly
 * balanced; DeepSeekMoE as implemented here never drops tokens, so there is no dropped share. */
typedef struct expert_load_stats {
    int min, max;          /* tokens routed to the least and most loaded expert */
    double mean;           /* N·K / E */
    double max_over_mean;  /* max / mean */
    double cv;             /* coefficient of variation of the per-expert load */
} expert_load_stats;
/* Returns 0 for a MoE layer, -1 for a dense one. */
int model_expert_load(const policy_model *m, const model_acts *a, int layer, expert_load_stats *out);

/* DeepSeek-V3's auxiliary-loss-free balancing: after an optimizer step, each MoE layer's router
 * bias moves by −γ·sign(load − mean load) using the loads of the last forward. */
void model_update_router_bias(policy_model *m, const model_acts *a, float gamma);

/* The trunk alone, for heads other than the LM head (a reward model's score head): embedding →
 * L decoder layers → final RMSNorm, filling a->hn (N, H) and the balance loss; no logits, no
 * log-probabilities, no MTP (batch->targets is ignored). model_backward_hidden is its backward:
 * given dhn = d(objective)/d(hn) (N, H), it ACCUMULATES (+=) into model->grads the gradient of
 *   Σ dhn·hn + aux_scale·balance_loss
 * for the last model_forward_hidden on `a`. */
pt_status model_forward_hidden(policy_model *m, model_acts *a, const model_batch *batch, pt_error *err);
void model_backward_hidden(policy_model *m, model_acts *a, const float *dhn, float aux_scale);

#endif
