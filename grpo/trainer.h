/* trainer.h — one GRPO step: prompts → G completions each → rewards → advantages → μ policy
 * updates (DeepSeekMath Alg. 1 as TRL's GRPOTrainer runs it).
 *
 * A step draws P prompts (per_device_train_batch_size) through a callback, samples G completions
 * per prompt with the rollout engine (built once on the policy's parameters, so it always samples
 * from the current weights), decodes them, scores them with the reward set (the example's columns
 * pass through), computes advantages (grpo/advantage.h), and then takes num_iterations optimizer
 * steps over the same rollouts, each step split into gradient_accumulation_steps micro-batches of
 * rows [prompt | completion] (B rows of T = max_prompt_length + max_completion_length, padded;
 * targets only on completion tokens). The forward runs at the sampling temperature, so its
 * log-probs are those of the sampling policy.
 *
 * Old policy: like TRL, the log-probs of the first pass (before any update) are the old-policy
 * log-probs for every pass, so pass 1 has ratio exactly 1 and later passes measure drift from the
 * weights that sampled. (The engine's own sampling log-probs differ from them only by fp32
 * rounding of batched GEMMs; their mean |difference| is reported as engine_logp_diff.)
 * Reference model: a frozen copy of the starting policy, kept and run only when beta ≠ 0; with
 * sync_ref_model it becomes α·policy + (1−α)·ref every ref_model_sync_steps steps (TRL).
 * Dynamic sampling (DAPO): groups whose valid rewards are all equal are dropped and more prompts
 * are drawn until P groups are kept or max_dynamic_draws extra draws were made; the step then
 * trains on what it has (at least one group, or it is skipped with frac 1 of zero-std groups).
 * Randomness: the rollout of (step, prompt index, sample) uses Philox stream
 * (seed ⊕ step, prompt index, sample), so a resumed run regenerates a step's rollouts exactly.
 * NaN: a non-finite loss or gradient skips the optimizer step; max_nan_steps in a row abort.
 * Invariant: the trainer never owns the model, the reward set or the tokenizer.
 */
#ifndef POSTTRAIN_GRPO_TRAINER_H
#define POSTTRAIN_GRPO_TRAINER_H

#include <stdint.h>

#include "core/error.h"
#include "core/optim.h"
#include "core/schedule.h"
#include "grpo/advantage.h"
#include "grpo/loss.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "rewards/reward.h"
#include "rollout/engine.h"

typedef struct grpo_config {
    int num_generations;          /* G */
    int max_prompt_length;        /* prompts are left-truncated to their last tokens */
    int max_completion_length;
    sampler_config sampling;      /* temperature, top_p, top_k, min_p, repetition_penalty */
    int speculative;              /* rollout engine MTP drafting */
    int per_device_train_batch_size; /* P prompts per step */
    int gradient_accumulation_steps; /* micro-batches per optimizer step */
    int num_iterations;           /* μ optimizer steps per generation */
    double beta, epsilon, epsilon_high;
    grpo_loss_type loss_type;
    grpo_is_level importance_sampling_level;
    grpo_scale_rewards scale_rewards;
    int mask_truncated_completions;
    int dynamic_sampling, max_dynamic_draws;
    int sync_ref_model, ref_model_sync_steps;
    double ref_model_mixup_alpha;
    optim_config optim;
    lr_schedule sched;
    double aux_loss_scale;        /* multiplies the model's MTP and balance losses */
    double router_bias_gamma;     /* DeepSeek-V3 bias update speed (0: off) */
    int max_nan_steps;            /* K for the NaN guard */
    uint64_t seed;
    const int *eos_ids;           /* stop tokens (borrowed) */
    int n_eos;
    int max_live;                 /* engine: sequences decoding at once (0: P·G) */
    model_precision precision;    /* training GEMMs of the policy and the reference (rollouts: fp32) */
} grpo_config;

/* TRL's defaults where TRL has one (G 8, completion 256, prompt 512, T 1, β 0, ε 0.2, μ 1, grpo,
 * token level, group scaling, lr 1e-6 constant) and ours for the rest. */
grpo_config grpo_config_default(void);
pt_status grpo_config_validate(const grpo_config *c, pt_error *err);

/* One prompt as the trainer sees it (borrowed until the next call of the source). */
typedef struct grpo_prompt {
    const int *ids;
    int len;
    int64_t index;        /* global example id: keys the random stream */
    const char *text;     /* for rewards; NULL: "" */
    const char *columns;  /* JSON object text; NULL: "{}" */
} grpo_prompt;

/* Writes up to n prompts into out, *got of them (0: no more data). */
typedef pt_status (*grpo_prompt_source)(void *ctx, grpo_prompt *out, int n, int *got, pt_error *err);

/* The metrics of one step (TRL names in comments). */
typedef struct grpo_step_stats {
    int64_t step;
    double reward, reward_std, frac_reward_zero_std;   /* reward, reward_std, frac_reward_zero_std */
    double loss, kl, entropy;                          /* loss, kl, entropy */
    double clip_low, clip_high, clip_region;           /* clip_ratio/low_mean, high_mean, region_mean */
    double mean_length, min_length, max_length;        /* completions/mean_length, ... */
    double clipped_ratio;                              /* completions/clipped_ratio */
    double grad_norm, lr;
    double gen_seconds, score_seconds, update_seconds, step_seconds; /* step_time and its split */
    double num_tokens;            /* prompt + completion tokens since the start (TRL: cumulative) */
    double step_tokens;           /* tokens of this step */
    double tokens_per_second;
    double engine_logp_diff;      /* mean |engine logp − first-pass training logp| */
    int groups, prompts_drawn, masked;
    int skipped;                  /* optimizer steps skipped for non-finite values */
} grpo_step_stats;

typedef struct grpo_trainer {
    grpo_config cfg;
    policy_model *m;              /* borrowed */
    policy_model ref;             /* owned; only when beta ≠ 0 */
    int has_ref;
    const tokenizer *tok;         /* borrowed; NULL: completions are "id id id" text */
    reward_set *rewards;          /* borrowed */
    rollout_engine engine;
    optim opt;
    nan_guard guard;
    model_acts acts;
    int B, T;                     /* micro-batch rows and row length */
    int64_t step;                 /* steps done */
    double num_tokens;
    /* the last step's rollouts, kept for logging (R = groups·G) */
    int R, groups;
    rollout_completion *comp;     /* (P·G) */
    grpo_prompt *prompts;         /* (P) copies: ids, text, columns owned */
    double *reward;               /* (R) weighted totals */
    uint8_t *reward_ok;           /* (R) */
    reward_result *per_reward;    /* (n_rewards, R) */
    /* every group the last step drew, kept or not (what its reward metrics report) */
    grpo_reward_tally drawn;
    double *drawn_per_reward;     /* (n_rewards, 3): Σ score, Σ score², count of the valid scores */
    /* the groups dynamic sampling dropped in the last step, kept for logging (D = dropped·G; room
     * for P·(max_dynamic_draws + 1) groups); laid out like the kept ones */
    int dropped;
    grpo_prompt *drop_prompts;    /* (dropped) copies, owned */
    rollout_completion *drop_comp;
    char **drop_text;
    double *drop_reward;
    uint8_t *drop_reward_ok;
    reward_result *drop_per_reward; /* (n_rewards, drop_stride) */
    size_t drop_stride;           /* room·G */
    char **text;                  /* (R) decoded completions */
    float *adv;                   /* (R) */
    uint8_t *valid;               /* (R) the completion is in the loss */
    /* scratch */
    int *tok_off;                 /* (R+1) offsets of each completion's tokens in the flat arrays */
    float *old_logp, *ref_logp, *cur_logp, *flat_dlogp; /* (R·max_completion_length) */
    uint8_t *flat_mask;
    int *ids, *targets;           /* (B, T) */
    float *dlogp;                 /* (B, T) */
    int *seq_start;               /* (B+1) */
    float *mb_adv;                /* (B) */
} grpo_trainer;

/* m (and tok, rewards) must outlive the trainer. */
pt_status grpo_trainer_init(grpo_trainer *t, policy_model *m, const tokenizer *tok, reward_set *rewards,
                            const grpo_config *cfg, pt_error *err);
void grpo_trainer_free(grpo_trainer *t);

/* One GRPO step; prompts come from `source`. */
pt_status grpo_trainer_step(grpo_step_stats *s, grpo_trainer *t, grpo_prompt_source source, void *source_ctx,
                            pt_error *err);

#endif
