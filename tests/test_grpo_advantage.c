/* test_grpo_advantage.c — group-relative advantages on hand-computed cases: Bessel-corrected
 * group std (TRL uses torch.std), masked rewards left out of the statistics, zero-variance groups,
 * batch and no scaling, and DAPO's informative-group filter.
 *
 * Expected values are written out by hand below from the definition (not from the code).
 * Tolerance 1e-6 absolute on advantages of order 1 (they are stored as fp32: 6e-8 relative);
 * using the population std instead of Bessel's changes the first case by 15% and fails.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "grpo/advantage.h"

#define ADV_TOL 1e-6

Test(grpo_advantage, group_scaling_bessel) {
    /* group 0: {1,0,0,1}: mean 0.5, std = sqrt(4·0.25/3) = sqrt(1/3)
     * group 1: {2,2,2,2}: zero std, advantages 0 */
    double r[8] = {1, 0, 0, 1, 2, 2, 2, 2};
    float adv[8];
    uint8_t valid[8];
    grpo_adv_stats st;
    pt_error err = {0};
    cr_assert_eq(grpo_advantages(adv, valid, &st, r, NULL, 2, 4, GRPO_SCALE_GROUP, &err), PT_OK);
    double a = 0.5 / (sqrt(1.0 / 3.0) + 1e-4);
    double want[8] = {a, -a, -a, a, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) {
        cr_assert(fabs(adv[i] - want[i]) < ADV_TOL, "adv[%d] = %.9g, want %.9g", i, adv[i], want[i]);
        cr_assert_eq(valid[i], 1);
    }
    cr_assert(fabs(st.frac_reward_zero_std - 0.5) < 1e-12);
    cr_assert_eq(st.zero_std_groups, 1);
    cr_assert(fabs(st.reward - 1.25) < 1e-12, "reward %g", st.reward);
    cr_assert(fabs(st.reward_std - sqrt(1.0 / 3.0) / 2) < 1e-12, "reward_std %g", st.reward_std);
}

Test(grpo_advantage, masked_rewards_excluded) {
    /* group {3, masked(100), 0, 0}: valid {3,0,0}: mean 1, std = sqrt((4+1+1)/2) = sqrt(3) */
    double r[4] = {3, 100, 0, 0};
    uint8_t ok[4] = {1, 0, 1, 1};
    float adv[4];
    uint8_t valid[4];
    grpo_adv_stats st;
    pt_error err = {0};
    cr_assert_eq(grpo_advantages(adv, valid, &st, r, ok, 1, 4, GRPO_SCALE_GROUP, &err), PT_OK);
    double d = sqrt(3.0) + 1e-4;
    double want[4] = {2 / d, 0, -1 / d, -1 / d};
    for (int i = 0; i < 4; i++) cr_assert(fabs(adv[i] - want[i]) < ADV_TOL, "adv[%d] = %.9g want %.9g", i, adv[i], want[i]);
    cr_assert_eq(valid[1], 0);
    cr_assert_eq(valid[0] + valid[2] + valid[3], 3);
    cr_assert_eq(st.masked, 1);
    cr_assert(fabs(st.reward - 1.0) < 1e-12);
    /* a masked reward may be NaN: it is never read */
    r[1] = NAN;
    cr_assert_eq(grpo_advantages(adv, valid, &st, r, ok, 1, 4, GRPO_SCALE_GROUP, &err), PT_OK);
    cr_assert(fabs(adv[0] - 2 / d) < ADV_TOL);
    /* ... but a valid NaN is an error */
    ok[1] = 1;
    cr_assert_eq(grpo_advantages(adv, valid, &st, r, ok, 1, 4, GRPO_SCALE_GROUP, &err), PT_ERR_NUMERIC);
}

Test(grpo_advantage, one_valid_member_is_zero_std) {
    double r[3] = {5, 1, 2};
    uint8_t ok[3] = {1, 0, 0};
    float adv[3];
    grpo_adv_stats st;
    pt_error err = {0};
    cr_assert_eq(grpo_advantages(adv, NULL, &st, r, ok, 1, 3, GRPO_SCALE_GROUP, &err), PT_OK);
    cr_assert_eq(adv[0], 0.0f);
    cr_assert_eq(st.zero_std_groups, 1);
}

Test(grpo_advantage, batch_and_none_scaling) {
    /* groups {1,0} and {4,2}: group means 0.5 and 3; batch valid {1,0,4,2}: mean 1.75,
     * Bessel std = sqrt((0.5625+3.0625+5.0625+0.0625)/3) = sqrt(8.75/3) */
    double r[4] = {1, 0, 4, 2};
    float adv[4];
    pt_error err = {0};
    cr_assert_eq(grpo_advantages(adv, NULL, NULL, r, NULL, 2, 2, GRPO_SCALE_BATCH, &err), PT_OK);
    double d = sqrt(8.75 / 3.0) + 1e-4;
    double want[4] = {0.5 / d, -0.5 / d, 1 / d, -1 / d};
    for (int i = 0; i < 4; i++) cr_assert(fabs(adv[i] - want[i]) < ADV_TOL, "batch adv[%d] = %.9g want %.9g", i, adv[i], want[i]);
    cr_assert_eq(grpo_advantages(adv, NULL, NULL, r, NULL, 2, 2, GRPO_SCALE_NONE, &err), PT_OK);
    double want_none[4] = {0.5, -0.5, 1, -1};
    for (int i = 0; i < 4; i++) cr_assert(fabs(adv[i] - want_none[i]) < ADV_TOL, "none adv[%d] = %.9g", i, adv[i]);
    grpo_scale_rewards s;
    cr_assert_eq(grpo_scale_rewards_parse(&s, "batch", &err), PT_OK);
    cr_assert_eq(s, GRPO_SCALE_BATCH);
    cr_assert_eq(grpo_scale_rewards_parse(&s, "std", &err), PT_ERR_CONFIG);
}

Test(grpo_advantage, informative_groups) {
    double all_same[4] = {1, 1, 1, 1}, mixed[4] = {1, 1, 0, 1}, r[4] = {0, 7, 0, 0};
    uint8_t ok[4] = {1, 0, 1, 1};
    cr_assert_eq(grpo_group_informative(all_same, NULL, 4), 0);
    cr_assert_eq(grpo_group_informative(mixed, NULL, 4), 1);
    cr_assert_eq(grpo_group_informative(r, ok, 4), 0, "the only differing reward is masked");
    cr_assert_eq(grpo_group_informative(r, NULL, 4), 1);
}

/* The tally adds groups call by call: three groups added as 1 + 2 give the statistics worked by
 * hand, and the same as grpo_advantages's over all three at once. */
Test(grpo_advantage, reward_tally_adds_groups) {
    /* groups of 3: {1, 0, 0} std sqrt(1/3); {2, 2, 2} zero std; {4, masked, 0} std sqrt(8) */
    double r[9] = {1, 0, 0, 2, 2, 2, 4, 7, 0};
    uint8_t ok[9] = {1, 1, 1, 1, 1, 1, 1, 0, 1};
    grpo_reward_tally t = {0};
    grpo_reward_tally_add(&t, r, ok, 1, 3);
    grpo_reward_tally_add(&t, r + 3, ok + 3, 2, 3);
    grpo_adv_stats st = grpo_reward_tally_stats(&t);
    cr_assert_float_eq(st.reward, 11.0 / 8.0, 1e-15);
    cr_assert_float_eq(st.reward_std, (sqrt(1.0 / 3.0) + 0.0 + sqrt(8.0)) / 3.0, 1e-15);
    cr_assert_float_eq(st.frac_reward_zero_std, 1.0 / 3.0, 1e-15);
    cr_assert_eq(st.zero_std_groups, 1);
    cr_assert_eq(st.masked, 1);
    float adv[9];
    grpo_adv_stats all;
    pt_error err = {0};
    cr_assert_eq(grpo_advantages(adv, NULL, &all, r, ok, 3, 3, GRPO_SCALE_GROUP, &err), PT_OK);
    cr_assert(all.reward == st.reward && all.reward_std == st.reward_std &&
              all.frac_reward_zero_std == st.frac_reward_zero_std && all.masked == st.masked);
    grpo_reward_tally none = {0};
    grpo_adv_stats empty = grpo_reward_tally_stats(&none);
    cr_assert(empty.reward == 0 && empty.reward_std == 0 && empty.frac_reward_zero_std == 0);
}
