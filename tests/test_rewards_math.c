/* test_rewards_math.c — the `math` reward on hand-written completions: extraction (\boxed with
 * nesting, <answer>, last number) and comparison by value (fractions, decimals, percent,
 * signs, thousands separators, units), and masking for unreadable references.
 *
 * Every expected score below was worked out by hand from the rules in reward_math.c. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "rewards/reward.h"
#include "rewards/reward_math.h"

typedef struct math_case {
    const char *completion;
    const char *columns;
    reward_status status;
    double score;
} math_case;

static const math_case CASES[] = {
    {"The answer is \\boxed{\\frac{3}{4}}", "{\"answer\": \"0.75\"}", REWARD_OK, 1},
    {"So we get \\boxed{0.75}.", "{\"answer\": \"3/4\"}", REWARD_OK, 1},
    {"\\boxed{\\dfrac{3}{4}}", "{\"answer\": \"\\\\frac{3}{4}\"}", REWARD_OK, 1},
    {"\\boxed{\\tfrac34}", "{\"answer\": 0.75}", REWARD_OK, 1},
    {"so x = \\boxed{-5}", "{\"answer\": \"-5\"}", REWARD_OK, 1},
    {"\\boxed{\xE2\x88\x92" "5}", "{\"answer\": -5}", REWARD_OK, 1},
    {"\\boxed{5}", "{\"answer\": \"-5\"}", REWARD_OK, 0},
    {"\\boxed{\\frac{-1}{2}}", "{\"answer\": \"-0.5\"}", REWARD_OK, 1},
    {"\\boxed{-\\frac{1}{2}}", "{\"answer\": \"-1/2\"}", REWARD_OK, 1},
    {"\\boxed{1,234}", "{\"answer\": \"1234\"}", REWARD_OK, 1},
    {"\\boxed{1,234}", "{\"answer\": 1234}", REWARD_OK, 1},
    {"\\boxed{1{,}234{,}567}", "{\"answer\": 1234567}", REWARD_OK, 1},
    {"\\boxed{1,23}", "{\"answer\": \"123\"}", REWARD_OK, 0},
    {"The total is $1,234.50.", "{\"answer\": \"1234.5\"}", REWARD_OK, 1},
    {"\\boxed{50\\%}", "{\"answer\": \"0.5\"}", REWARD_OK, 1},
    {"\\boxed{50\\%}", "{\"answer\": \"50\"}", REWARD_OK, 1},
    {"\\boxed{50\\%}", "{\"answer\": \"50%\"}", REWARD_OK, 1},
    {"\\boxed{50\\%}", "{\"answer\": \"5\"}", REWARD_OK, 0},
    {"\\boxed{25%}", "{\"answer\": \"0.5\"}", REWARD_OK, 0},
    {"\\boxed{0.5}", "{\"answer\": \"50%\"}", REWARD_OK, 1},
    {"<think>6*7</think> <answer>42</answer>", "{\"answer\": \"42\"}", REWARD_OK, 1},
    {"<answer>The answer is 42.</answer>", "{\"answer\": \"42\"}", REWARD_OK, 1},
    {"<answer>2\\sqrt{3}</answer>", "{\"answer\": \"3\"}", REWARD_OK, 0},
    {"It could be 8 or 7", "{\"answer\": \"8\"}", REWARD_OK, 0},
    {"It could be 8 or 7", "{\"answer\": \"7\"}", REWARD_OK, 1},
    {"the difference is 3-2", "{\"answer\": \"-2\"}", REWARD_OK, 0},
    {"the difference is 3-2", "{\"answer\": \"2\"}", REWARD_OK, 1},
    {"the temperature is -2 today", "{\"answer\": \"-2\"}", REWARD_OK, 1},
    {"\\boxed{+7}", "{\"answer\": \"7\"}", REWARD_OK, 1},
    {"\\boxed{7.}", "{\"answer\": \"7\"}", REWARD_OK, 1},
    {"\\boxed{7.0}", "{\"answer\": \"7\"}", REWARD_OK, 1},
    {"\\boxed{12 \\text{ cm}}", "{\"answer\": \"12\"}", REWARD_OK, 1},
    {"\\boxed{90^\\circ}", "{\"answer\": \"90\"}", REWARD_OK, 1},
    {"\\boxed{2\\sqrt{3}}", "{\"answer\": \"2\"}", REWARD_OK, 0},
    {"\\boxed{\\frac{1}{0}}", "{\"answer\": \"0\"}", REWARD_OK, 0},
    {"\\boxed{\\text{5}}", "{\"answer\": \"5\"}", REWARD_OK, 1},
    {"first \\boxed{\\dfrac{1}{2}} then \\boxed{3", "{\"answer\": \"0.5\"}", REWARD_OK, 1},
    {"\\boxed{4} no wait \\boxed{5}", "{\"answer\": \"4\"}", REWARD_OK, 0},
    {"\\boxed{0.333}", "{\"answer\": \"1/3\"}", REWARD_OK, 0},
    {"\\boxed{x = 5}", "{\"answer\": \"5\"}", REWARD_OK, 1},
    {"\\boxed{\\$18}", "{\"answer\": \"18\"}", REWARD_OK, 1},
    {"\\boxed{.5}", "{\"answer\": \"1/2\"}", REWARD_OK, 1},
    {"$\\boxed{3}$", "{\"answer\": \"$3$\"}", REWARD_OK, 1},
    {"He pays 18 dollars.", "{\"answer\": \"Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\\n#### 18\"}", REWARD_OK, 1},
    {"I cannot solve this.", "{\"answer\": \"12\"}", REWARD_OK, 0},
    {"", "{\"answer\": \"12\"}", REWARD_OK, 0},
    {"\\boxed{}", "{\"answer\": \"0\"}", REWARD_OK, 0},
    {"\\boxed{12}", "{\"answer\": \"twelve\"}", REWARD_MASKED, 0},
    {"\\boxed{12}", "{\"solution\": \"12\"}", REWARD_MASKED, 0},
    {"\\boxed{12}", "[1, 2]", REWARD_MASKED, 0},
    {"\\boxed{12}", "{\"answer\": [12]}", REWARD_MASKED, 0},
};

Test(rewards_math, table_of_completions) {
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"math\", \"name\": \"acc\"}", NULL, &err), PT_OK, "%s", err.msg);
    int n = (int)(sizeof CASES / sizeof CASES[0]);
    reward_item items[64];
    reward_result res[64];
    cr_assert(n <= 64);
    for (int i = 0; i < n; i++)
        items[i] = (reward_item){.prompt = "q", .completion = CASES[i].completion, .columns = CASES[i].columns,
                                 .completion_tokens = -1};
    cr_assert_eq(reward_score(r, res, items, n, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(res[i].status, CASES[i].status, "case %d (%s | %s): status %d, expected %d (%s)", i,
                     CASES[i].completion, CASES[i].columns, res[i].status, CASES[i].status, res[i].reason);
        if (CASES[i].status == REWARD_OK)
            cr_expect_eq(res[i].score, CASES[i].score, "case %d (%s | %s): score %g, expected %g", i,
                         CASES[i].completion, CASES[i].columns, res[i].score, CASES[i].score);
        else
            cr_expect(res[i].reason[0] != '\0', "case %d: a masked item needs a reason", i);
    }
    reward_free(r);
}

Test(rewards_math, hit_and_miss_scores_are_configurable) {
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"math\", \"hit\": 2, \"miss\": -1, \"column\": \"gold\"}", NULL,
                                    &err),
                 PT_OK, "%s", err.msg);
    reward_item items[2] = {{"q", "\\boxed{3}", "{\"gold\": 3}", -1}, {"q", "\\boxed{4}", "{\"gold\": 3}", -1}};
    reward_result res[2];
    cr_assert_eq(reward_score(r, res, items, 2, &err), PT_OK);
    cr_expect_eq(res[0].score, 2.0);
    cr_expect_eq(res[1].score, -1.0);
    reward_free(r);
}

Test(rewards_math, reader_exact_rationals) {
    math_value a, b;
    /* 0.1 + 0.2 style traps: decimals are exact rationals, so 0.3 == 3/10 exactly */
    cr_assert(math_value_read(&a, "0.30", 4));
    cr_assert(math_value_read(&b, "\\frac{3}{10}", 12));
    cr_expect(a.exact && b.exact && a.num == 3 && a.den == 10 && b.num == 3 && b.den == 10);
    cr_expect(math_value_equal(&a, &b));
    /* 1/3 vs 0.3333333333 differ exactly even though they are within 1e-9 */
    cr_assert(math_value_read(&a, "1/3", 3));
    cr_assert(math_value_read(&b, "0.3333333333", 12));
    cr_expect(!math_value_equal(&a, &b));
    /* a denominator product that needs more than 64 bits is still compared exactly */
    cr_assert(math_value_read(&a, "1/3000000000", 12));
    cr_assert(math_value_read(&b, "2/6000000000", 12));
    cr_expect(math_value_equal(&a, &b));
    cr_assert(math_value_read(&b, "1/3000000001", 12));
    cr_expect(!math_value_equal(&a, &b));
    /* beyond int64: long double with relative tolerance */
    const char *big = "123456789012345678901234";
    cr_assert(math_value_read(&a, big, strlen(big)));
    cr_expect(!a.exact);
    cr_assert(math_value_read(&b, "123456789012345678901234.0", 26));
    cr_expect(math_value_equal(&a, &b));
    cr_assert(math_value_read(&b, "123456789012345", 15));
    cr_expect(!math_value_equal(&a, &b));
    /* not values */
    static const char *const bad[] = {"", "abc", "1/0", "\\frac{1}{}", "1,2345", "--3", "3 + 4", "\\sqrt{2}", "1e5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!math_value_read(&a, bad[i], strlen(bad[i])), "'%s' must not read as a value", bad[i]);
}
