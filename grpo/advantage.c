/* advantage.c — group-relative advantages; the definition and TRL correspondence are in
 * advantage.h. Statistics are accumulated in double. */
#include "grpo/advantage.h"

#include <math.h>
#include <string.h>

pt_status grpo_scale_rewards_parse(grpo_scale_rewards *out, const char *s, pt_error *err) {
    if (s && strcmp(s, "group") == 0) *out = GRPO_SCALE_GROUP;
    else if (s && strcmp(s, "batch") == 0) *out = GRPO_SCALE_BATCH;
    else if (s && strcmp(s, "none") == 0) *out = GRPO_SCALE_NONE;
    else PT_FAIL(err, PT_ERR_CONFIG, "scale_rewards '%s' is not known: use group, batch or none", s ? s : "(null)");
    return PT_OK;
}

const char *grpo_scale_rewards_name(grpo_scale_rewards s) {
    return s == GRPO_SCALE_GROUP ? "group" : s == GRPO_SCALE_BATCH ? "batch" : "none";
}

/* mean and Bessel-corrected std of the valid members of r[0..n); returns the valid count. */
static int masked_mean_std(double *mean, double *std, const double *r, const uint8_t *ok, int n) {
    double sum = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!ok || ok[i]) sum += r[i], k++;
    *mean = k ? sum / k : 0.0;
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        if (!ok || ok[i]) ss += (r[i] - *mean) * (r[i] - *mean);
    *std = k >= 2 ? sqrt(ss / (k - 1)) : 0.0;
    return k;
}

/* A group is "zero std" with fewer than two valid rewards or std_g ≤ 1e-8 (see the header). */
static int zero_std(int valid, double std) { return valid < 2 || std <= 1e-8; }

/* Adds one group r[0..G) whose k valid rewards have sample std `std`. */
static void tally_group(grpo_reward_tally *t, const double *r, const uint8_t *ok, int G, int k, double std) {
    for (int i = 0; i < G; i++)
        if (!ok || ok[i]) t->sum += r[i];
    t->valid += k;
    t->masked += G - k;
    t->std_sum += std;
    t->zero_std_groups += zero_std(k, std);
    t->groups++;
}

void grpo_reward_tally_add(grpo_reward_tally *t, const double *rewards, const uint8_t *reward_ok, int n_groups, int G) {
    for (int g = 0; g < n_groups; g++) {
        const double *r = rewards + (size_t)g * G;
        const uint8_t *ok = reward_ok ? reward_ok + (size_t)g * G : NULL;
        double mean, std;
        int k = masked_mean_std(&mean, &std, r, ok, G);
        tally_group(t, r, ok, G, k, std);
    }
}

grpo_adv_stats grpo_reward_tally_stats(const grpo_reward_tally *t) {
    grpo_adv_stats st = {.zero_std_groups = t->zero_std_groups, .masked = t->masked};
    st.reward = t->valid ? t->sum / t->valid : 0.0;
    if (t->groups > 0) {
        st.reward_std = t->std_sum / t->groups;
        st.frac_reward_zero_std = (double)t->zero_std_groups / t->groups;
    }
    return st;
}

pt_status grpo_advantages(float *adv, uint8_t *valid, grpo_adv_stats *stats, const double *rewards,
                          const uint8_t *reward_ok, int n_groups, int G, grpo_scale_rewards scale, pt_error *err) {
    PT_CHECK(adv && rewards && n_groups >= 0 && G >= 1, err, PT_ERR_INVALID, "grpo_advantages: bad arguments");
    const int n = n_groups * G;
    for (int i = 0; i < n; i++)
        PT_CHECK(!(reward_ok && !reward_ok[i]) ? isfinite(rewards[i]) : 1, err, PT_ERR_NUMERIC,
                 "grpo_advantages: reward %d (prompt %d, sample %d) is %g; a reward must be finite or masked", i,
                 i / G, i % G, rewards[i]);
    double batch_mean, batch_std;
    masked_mean_std(&batch_mean, &batch_std, rewards, reward_ok, n);
    grpo_reward_tally tally = {0};
    for (int g = 0; g < n_groups; g++) {
        const double *r = rewards + (size_t)g * G;
        const uint8_t *ok = reward_ok ? reward_ok + (size_t)g * G : NULL;
        double mean, std;
        const int k = masked_mean_std(&mean, &std, r, ok, G);
        tally_group(&tally, r, ok, G, k, std);
        double denom = scale == GRPO_SCALE_GROUP ? std + GRPO_ADV_EPS
                       : scale == GRPO_SCALE_BATCH ? batch_std + GRPO_ADV_EPS : 1.0;
        for (int s = 0; s < G; s++) {
            size_t i = (size_t)g * G + s;
            int on = !ok || ok[s];
            adv[i] = on ? (float)((r[s] - mean) / denom) : 0.0f;
            if (valid) valid[i] = (uint8_t)on;
        }
    }
    if (stats) *stats = grpo_reward_tally_stats(&tally);
    return PT_OK;
}

int grpo_group_informative(const double *rewards, const uint8_t *reward_ok, int G) {
    int first = -1;
    for (int s = 0; s < G; s++) {
        if (reward_ok && !reward_ok[s]) continue;
        if (first < 0) first = s;
        else if (rewards[s] != rewards[first]) return 1;
    }
    return 0;
}
