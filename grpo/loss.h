/* loss.h — the GRPO family of policy losses (GRPO, BNPO, DAPO, Dr. GRPO; token or GSPO sequence
 * ratios) and their gradient with respect to the new log-probabilities.
 *
 * Matches TRL's GRPOTrainer._compute_loss. For S completions, completion i owning tokens
 * t ∈ [seq_start[i], seq_start[i+1]) with mask m_t ∈ {0,1}, n_i = max(1, Σ_t m_t):
 *   token level:     log w_t = logp_t − old_t
 *   sequence level:  log w_t = (1/n_i) Σ_{t∈i} m_t (logp_t − old_t)   (GSPO; same for every t of i)
 *   ρ = exp(log w),  ℓ_t = −min(ρ·A_i, clip(ρ, 1−ε_low, 1+ε_high)·A_i) + β·KL_t,
 *   KL_t = exp(ref_t − logp_t) − (ref_t − logp_t) − 1   (k3; only when β ≠ 0)
 *   grpo:     L = (1/S) Σ_i (1/n_i) Σ_t m_t ℓ_t
 *   bnpo:     L = Σ m_t ℓ_t / max(1, Σ m_t)              (this micro-batch's tokens)
 *   dr_grpo:  L = Σ m_t ℓ_t / (S · max_completion_length)
 *   dapo:     L = Σ m_t ℓ_t / max(1, num_items)          (num_items: completion tokens of the
 *             whole optimizer step, all micro-batches; ≤ 0 means this call's Σ m_t)
 * TRL further divides grpo/bnpo/dr_grpo by the gradient-accumulation count; that is the caller's
 * job (the trainer scales dlogp), so this function returns the unscaled micro-batch loss.
 *
 * Gradient: where the clipped branch is the minimum (ρ > 1+ε_high with A > 0, or ρ < 1−ε_low with
 * A < 0) the policy term has no gradient; elsewhere d(−ρA)/d log w = −ρA. For sequence level a
 * token's d log w / d logp_t = m_t / n_i, collecting the whole sequence's weight.
 *
 * Metrics as TRL logs them: clip_ratio/low_mean = mean of [ρ < 1−ε_low ∧ A < 0],
 * high_mean = mean of [ρ > 1+ε_high ∧ A > 0], region_mean = mean of their union — over masked
 * tokens at token level, over sequences at sequence level; kl = mean KL over masked tokens.
 * Sums and counts are returned so that a trainer can aggregate several micro-batches exactly.
 */
#ifndef POSTTRAIN_GRPO_LOSS_H
#define POSTTRAIN_GRPO_LOSS_H

#include <stdint.h>
#include "core/error.h"

typedef enum grpo_loss_type {
    GRPO_LOSS_GRPO = 0,  /* mean over each sequence, then over sequences */
    GRPO_LOSS_BNPO,      /* token mean over the micro-batch */
    GRPO_LOSS_DAPO,      /* token sum over the optimizer step's token count */
    GRPO_LOSS_DR_GRPO,   /* token sum over S · max_completion_length */
} grpo_loss_type;

typedef enum grpo_is_level {
    GRPO_IS_TOKEN = 0,   /* per-token ratio (PPO/GRPO) */
    GRPO_IS_SEQUENCE,    /* length-normalised sequence ratio (GSPO) */
} grpo_is_level;

typedef struct grpo_loss_config {
    grpo_loss_type loss_type;
    grpo_is_level is_level;
    double epsilon_low;          /* TRL epsilon */
    double epsilon_high;         /* TRL epsilon_high (= epsilon when not set) */
    double beta;                 /* k3 KL coefficient; 0: ref_logp is not read */
    int max_completion_length;   /* dr_grpo's constant */
    double num_items;            /* dapo's normaliser; ≤ 0: the masked tokens of this call */
} grpo_loss_config;

/* Sums and counts of one call (add them across micro-batches; divide for means). */
typedef struct grpo_loss_stats {
    double loss;                 /* the returned loss */
    double tokens;               /* Σ m_t */
    double kl_sum;               /* Σ m_t KL_t (0 when β = 0 and no ref given) */
    double clip_low_sum, clip_high_sum, clip_region_sum;
    double clip_count;           /* tokens (token level) or sequences (sequence level) */
} grpo_loss_stats;

const char *grpo_loss_type_name(grpo_loss_type t);
const char *grpo_is_level_name(grpo_is_level l);
/* Parse "grpo" | "bnpo" | "dapo" | "dr_grpo"; "token" | "sequence". PT_ERR_CONFIG otherwise. */
pt_status grpo_loss_type_parse(grpo_loss_type *out, const char *s, pt_error *err);
pt_status grpo_is_level_parse(grpo_is_level *out, const char *s, pt_error *err);

/* Loss L and dlogp (=) dL/dlogp for N = seq_start[S] tokens.
 *   dlogp       (N) written everywhere (0 on masked-out tokens); may be NULL
 *   stats       may be NULL
 *   logp, old_logp (N); ref_logp (N) or NULL (required when beta ≠ 0; when given with beta = 0 only
 *               the kl metric uses it); advantages (S) one per sequence; mask (N) 0/1 or NULL (all 1)
 *   seq_start   (S+1) non-decreasing offsets, seq_start[0] = 0
 * PT_ERR_INVALID for bad arguments (also beta ≠ 0 without ref_logp), PT_ERR_NUMERIC when the loss
 * is not finite (dlogp is still written). */
pt_status grpo_loss(double *loss, float *dlogp, grpo_loss_stats *stats, const float *logp, const float *old_logp,
                    const float *ref_logp, const float *advantages, const uint8_t *mask, const int *seq_start, int S,
                    const grpo_loss_config *cfg, pt_error *err);

#endif
