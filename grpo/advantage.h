/* advantage.h — group-relative advantages (GRPO, DeepSeekMath §4.1.2) and DAPO's group filter.
 *
 * Rewards come in groups of G completions of the same prompt, prompt-major (r[g·G + s]). With
 * the valid (unmasked) members V_g of group g, as TRL's GRPOTrainer computes it:
 *   mean_g = mean of r over V_g
 *   std_g  = sample std over V_g with Bessel's correction (torch.std's default, which TRL uses);
 *            0 when |V_g| < 2
 *   A_i    = (r_i − mean_g) / (σ + 1e-4), σ = std_g (scale_rewards = group), the std of every
 *            valid reward of the batch (batch), or A_i = r_i − mean_g without division (none —
 *            Dr. GRPO)
 * A masked reward (rewards/reward.h: REWARD_MASKED or REWARD_ERROR) is left out of every statistic;
 * its completion gets A = 0 and valid = 0, and the trainer drops it from the loss (TRL would count
 * a masked reward as 0 through nansum; counting it would move the whole group's baseline for a
 * dataset problem that is not the policy's fault).
 * A group is "zero std" when std_g ≤ 1e-8 (torch.isclose(std, 0)) or it has fewer than two valid
 * rewards; frac_reward_zero_std is the share of such groups. Such a group's advantages are 0.
 */
#ifndef POSTTRAIN_GRPO_ADVANTAGE_H
#define POSTTRAIN_GRPO_ADVANTAGE_H

#include <stdint.h>
#include "core/error.h"

typedef enum grpo_scale_rewards {
    GRPO_SCALE_GROUP = 0,
    GRPO_SCALE_BATCH,
    GRPO_SCALE_NONE,
} grpo_scale_rewards;

#define GRPO_ADV_EPS 1e-4

/* Metrics of one call, named for TRL's log keys. */
typedef struct grpo_adv_stats {
    double reward;               /* mean of valid rewards */
    double reward_std;           /* mean over groups of std_g (TRL's reward_std) */
    double frac_reward_zero_std; /* share of groups with zero std */
    int zero_std_groups;
    int masked;                  /* completions without a valid reward */
} grpo_adv_stats;

/* The reward statistics of groups added one call at a time: with dynamic sampling the trainer adds
 * every group it draws, kept or dropped, so the step's reward metrics describe the policy's
 * samples rather than the informative part it trains on (with every group dropped but the
 * informative ones, frac_reward_zero_std of the trained batch would always be 0). */
typedef struct grpo_reward_tally {
    double sum;     /* of valid rewards */
    double std_sum; /* of std_g */
    int valid, masked, groups, zero_std_groups;
} grpo_reward_tally;

void grpo_reward_tally_add(grpo_reward_tally *t, const double *rewards, const uint8_t *reward_ok, int n_groups, int G);
/* reward, reward_std, frac_reward_zero_std (0 with no groups), zero_std_groups and masked. */
grpo_adv_stats grpo_reward_tally_stats(const grpo_reward_tally *t);

pt_status grpo_scale_rewards_parse(grpo_scale_rewards *out, const char *s, pt_error *err);
const char *grpo_scale_rewards_name(grpo_scale_rewards s);

/* adv (n_groups·G) (=) advantages; valid (n_groups·G) (=) 1 where the reward counts, or NULL;
 * stats may be NULL. rewards (n_groups·G); reward_ok (n_groups·G) 1 = valid, or NULL (all valid).
 * PT_ERR_NUMERIC when a valid reward is not finite. */
pt_status grpo_advantages(float *adv, uint8_t *valid, grpo_adv_stats *stats, const double *rewards,
                          const uint8_t *reward_ok, int n_groups, int G, grpo_scale_rewards scale, pt_error *err);

/* DAPO's dynamic sampling: 1 when the group is worth training on, i.e. at least two of its valid
 * rewards differ (0 < correct < G for 0/1 rewards); 0 when they are all equal or fewer than two
 * are valid. */
int grpo_group_informative(const double *rewards, const uint8_t *reward_ok, int G);

#endif
