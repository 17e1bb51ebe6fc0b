/* test_rewards_rules.c — the rule-based rewards on hand-written completions: regex (all four
 * modes, flags, bad patterns, hostile subjects), format (strict/lenient), countdown (the parser's
 * edge cases and the reward's scores), length (DAPO's piecewise penalty) and repetition.
 *
 * Expected values are worked out by hand from each file's stated rules; the regex count cases
 * follow Python's re.findall on the same subject (empty matches included), a peer's semantics. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "datasets/tasks.h"
#include "rewards/reward.h"
#include "rewards/reward_countdown.h"

typedef struct rule_case {
    const char *completion;
    const char *columns;
    int tokens;
    reward_status status;
    double score;
} rule_case;

/* Creates cfg, scores the cases, checks every result (scores to 1e-12). */
static void run_cases(const char *cfg, const rule_case *cases, int n) {
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, cfg, NULL, &err), PT_OK, "%s: %s", cfg, err.msg);
    reward_item items[64];
    reward_result res[64];
    cr_assert(n <= 64);
    for (int i = 0; i < n; i++)
        items[i] = (reward_item){"prompt", cases[i].completion, cases[i].columns ? cases[i].columns : "{}",
                                 cases[i].tokens};
    cr_assert_eq(reward_score(r, res, items, n, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(res[i].status, cases[i].status, "%s case %d ('%s'): status %d, expected %d (%s)", cfg, i,
                     cases[i].completion, res[i].status, cases[i].status, res[i].reason);
        if (cases[i].status == REWARD_OK && res[i].status == REWARD_OK)
            cr_expect(fabs(res[i].score - cases[i].score) <= 1e-12, "%s case %d ('%s'): score %.17g, expected %.17g",
                      cfg, i, cases[i].completion, res[i].score, cases[i].score);
    }
    reward_free(r);
}

static void expect_create_error(const char *cfg, const char *needle) {
    reward *r = NULL;
    pt_error err = {0};
    pt_status st = reward_create_json(&r, cfg, NULL, &err);
    cr_expect_neq(st, PT_OK, "%s must be refused", cfg);
    cr_expect_null(r);
    cr_expect(strstr(err.msg, needle) != NULL, "%s: message '%s' should contain '%s'", cfg, err.msg, needle);
    reward_free(r);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- regex ------------------------------------------------------------------------------- */

Test(rewards_regex, match_and_full_match) {
    static const rule_case match[] = {
        {"abc 12", NULL, -1, REWARD_OK, 1}, {"abc", NULL, -1, REWARD_OK, 0}, {"", NULL, -1, REWARD_OK, 0},
        {"\xff\xfe 42 \xc3", NULL, -1, REWARD_OK, 1}, /* invalid UTF-8 never errors */
    };
    run_cases("{\"type\": \"regex\", \"pattern\": \"\\\\d+\"}", match, N(match));
    static const rule_case full[] = {
        {"<answer>42</answer>", NULL, -1, REWARD_OK, 2},
        {" <answer>42</answer>", NULL, -1, REWARD_OK, -1},
        {"<answer>42</answer>x", NULL, -1, REWARD_OK, -1},
        {"<answer>42</answer>\n", NULL, -1, REWARD_OK, -1}, /* ENDANCHORED: no $-style newline slack */
    };
    run_cases("{\"type\": \"regex\", \"mode\": \"full_match\", \"pattern\": \"<answer>\\\\d+</answer>\", \"hit\": 2, "
              "\"miss\": -1}",
              full, N(full));
    static const rule_case caseless[] = {{"The ANSWER", NULL, -1, REWARD_OK, 1}, {"the answr", NULL, -1, REWARD_OK, 0}};
    run_cases("{\"type\": \"regex\", \"pattern\": \"answer\", \"flags\": \"i\"}", caseless, N(caseless));
}

Test(rewards_regex, count_like_python_findall) {
    static const rule_case wait[] = {
        {"wait wait", NULL, -1, REWARD_OK, 1.0},
        {"wait, wait, wait, wait", NULL, -1, REWARD_OK, 1.5}, /* 4 matches, capped at 3 → 3·0.5 */
        {"nothing here", NULL, -1, REWARD_OK, -0.25},
    };
    run_cases("{\"type\": \"regex\", \"mode\": \"count\", \"pattern\": \"wait\", \"hit\": 0.5, \"miss\": -0.25, "
              "\"max_count\": 3}",
              wait, N(wait));
    /* re.findall('x*', 'xxa') == ['xx', '', ''] ; re.findall('x*', 'é') == ['', ''] ; 'ab' → 3 */
    static const rule_case empty[] = {
        {"xxa", NULL, -1, REWARD_OK, 3}, {"\xc3\xa9", NULL, -1, REWARD_OK, 2}, {"ab", NULL, -1, REWARD_OK, 3}};
    run_cases("{\"type\": \"regex\", \"mode\": \"count\", \"pattern\": \"x*\"}", empty, N(empty));
}

Test(rewards_regex, capture_compares_with_column) {
    static const rule_case cap[] = {
        {"so the answer is 42", "{\"answer\": \"42\"}", -1, REWARD_OK, 1},
        {"so the answer is 42", "{\"answer\": 42}", -1, REWARD_OK, 1},
        {"so the answer is 42", "{\"answer\": \"41\"}", -1, REWARD_OK, 0},
        {"so the answer is 42", "{\"answer\": \" 42 \"}", -1, REWARD_OK, 1}, /* trimmed */
        {"no number", "{\"answer\": \"42\"}", -1, REWARD_OK, 0},
        {"the answer is 42", "{\"label\": \"42\"}", -1, REWARD_MASKED, 0},
        {"the answer is 42", "not json", -1, REWARD_MASKED, 0},
    };
    run_cases("{\"type\": \"regex\", \"mode\": \"capture\", \"pattern\": \"answer is (\\\\d+)\"}", cap, N(cap));
    static const rule_case named_last[] = {
        {"first 1 then 2", "{\"y\": 2}", -1, REWARD_OK, 1},
        {"first 1 then 2", "{\"y\": 1}", -1, REWARD_OK, 0},
    };
    run_cases("{\"type\": \"regex\", \"mode\": \"capture\", \"pattern\": \"(?<num>\\\\d)\", \"group\": \"num\", "
              "\"which\": \"last\", \"column\": \"y\"}",
              named_last, N(named_last));
    static const rule_case first[] = {{"first 1 then 2", "{\"answer\": 1}", -1, REWARD_OK, 1}};
    run_cases("{\"type\": \"regex\", \"mode\": \"capture\", \"pattern\": \"(\\\\d)\"}", first, N(first));
    static const rule_case notrim[] = {
        {"<answer> 42 \n</answer>", "{\"answer\": \"42\"}", -1, REWARD_OK, 0},
        {"<answer>42</answer>", "{\"answer\": \"42\"}", -1, REWARD_OK, 1},
    };
    run_cases("{\"type\": \"regex\", \"mode\": \"capture\", \"pattern\": \"<answer>(.*?)</answer>\", \"flags\": \"s\", "
              "\"trim\": false}",
              notrim, N(notrim));
    static const rule_case trim[] = {{"<answer> 42 \n</answer>", "{\"answer\": \"42\"}", -1, REWARD_OK, 1}};
    run_cases("{\"type\": \"regex\", \"mode\": \"capture\", \"pattern\": \"<answer>(.*?)</answer>\", \"flags\": \"s\"}",
              trim, N(trim));
}

Test(rewards_regex, bad_patterns_and_configs) {
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"ab)c\"}", "offset 2");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"ab)c\"}", "unmatched closing parenthesis");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"(abc\"}", "offset 4");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"(abc\"}", "missing closing parenthesis");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"(abc\"}", "reward 'regex' (type regex)");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"a\", \"mdoe\": \"count\"}", "did you mean 'mode'");
    expect_create_error("{\"type\": \"regex\"}", "missing \"pattern\"");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"a\", \"mode\": \"search\"}", "mode 'search'");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"(a)\", \"group\": 2}", "group 2 does not exist");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"(a)\", \"group\": \"nope\"}", "no group named 'nope'");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"a\", \"mode\": \"capture\"}", "needs a capture group");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"a\", \"flags\": \"g\"}", "flag 'g'");
    expect_create_error("{\"type\": \"regex\", \"pattern\": \"a\", \"hit\": \"1\"}", "'hit' expects a finite number");
}

Test(rewards_regex, catastrophic_backtracking_is_an_error_not_a_stall) {
    static const rule_case evil[] = {
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", NULL, -1, REWARD_ERROR, 0},
        {"aaa", NULL, -1, REWARD_OK, 1},
    };
    run_cases("{\"type\": \"regex\", \"pattern\": \"^(a+)+$\", \"match_limit\": 100000}", evil, N(evil));
}

/* ---- format ------------------------------------------------------------------------------ */

Test(rewards_format, strict_and_lenient) {
    typedef struct {
        const char *text;
        double strict, lenient;
    } fcase;
    static const fcase cases[] = {
        {"<think>reasoning</think><answer>42</answer>", 1, 1},
        {"<think>\nstep 1\nstep 2\n</think>\n\n<answer>\n42\n</answer>\n", 1, 1},
        {"  <think>x</think> \t<answer>42</answer>  ", 1, 1},
        {"<think></think><answer>42</answer>", 1, 1},
        {"<think>x</think><answer> \n</answer>", 0, 1},
        {"Sure! <think>x</think><answer>42</answer>", 0, 1},
        {"<think>x</think><answer>42</answer> Hope this helps", 0, 1},
        {"<think>x</think>so<answer>42</answer>", 0, 1},
        {"<answer>42</answer><think>x</think>", 0, 0},
        {"<think>x<think>y</think><answer>42</answer>", 0, 1},
        {"<think>x</think><answer>42</answer><answer>43</answer>", 0, 1},
        {"<think>x</think><answer>42", 0, 0},
        {"<THINK>x</THINK><answer>42</answer>", 0, 0},
        {"<think>x</think><answer>4</answer>2</answer>", 0, 1},
        {"", 0, 0},
    };
    rule_case strict[N(cases)], lenient[N(cases)];
    for (int i = 0; i < N(cases); i++) {
        strict[i] = (rule_case){cases[i].text, NULL, -1, REWARD_OK, cases[i].strict};
        lenient[i] = (rule_case){cases[i].text, NULL, -1, REWARD_OK, cases[i].lenient};
    }
    run_cases("{\"type\": \"format\"}", strict, N(cases));
    run_cases("{\"type\": \"format\", \"mode\": \"lenient\"}", lenient, N(cases));
}

Test(rewards_format, think_in_prompt) {
    static const rule_case strict[] = {
        {"step by step</think>\n<answer>7</answer>", NULL, -1, REWARD_OK, 1},
        {"<think>step</think>\n<answer>7</answer>", NULL, -1, REWARD_OK, 0},
        {"step by step\n<answer>7</answer>", NULL, -1, REWARD_OK, 0},
    };
    run_cases("{\"type\": \"format\", \"think_in_prompt\": true}", strict, N(strict));
    static const rule_case without[] = {{"step by step</think>\n<answer>7</answer>", NULL, -1, REWARD_OK, 0}};
    run_cases("{\"type\": \"format\"}", without, N(without));
    expect_create_error("{\"type\": \"format\", \"mode\": \"loose\"}", "mode 'loose'");
}

/* ---- countdown --------------------------------------------------------------------------- */

static countdown_verdict check(const char *expr, const int64_t *nums, int n, int64_t target, const countdown_rules *r) {
    char why[128];
    return countdown_check(why, sizeof why, expr, strlen(expr), nums, n, target, r);
}

Test(rewards_countdown, parser_edge_cases) {
    static const int64_t nums[] = {3, 5, 7, 2}; /* target 29 = 3·5 + 7·2 */
    typedef struct {
        const char *expr;
        countdown_verdict v;
    } ccase;
    static const ccase cases[] = {
        {"3*5+7*2", COUNTDOWN_CORRECT},
        {"(3*5)+(7*2)", COUNTDOWN_CORRECT},
        {" 7 * 2 + 3 * 5 ", COUNTDOWN_CORRECT},
        {"3 \xC3\x97 5 + 7 \xC3\x97 2", COUNTDOWN_CORRECT}, /* × */
        {"3x5+7X2", COUNTDOWN_CORRECT},
        {"((3*5)+((7)*(2)))", COUNTDOWN_CORRECT},
        {"7*2+3*5-2+2", COUNTDOWN_WRONG},       /* 2 used twice */
        {"3*5+7+7", COUNTDOWN_WRONG},           /* = 29 but reuses 7 */
        {"3*5+7*2+0", COUNTDOWN_WRONG},         /* 0 is not given */
        {"30-1", COUNTDOWN_WRONG},              /* unknown numbers */
        {"3*5+7", COUNTDOWN_WRONG},             /* 22 */
        {"3*5+7*2=29", COUNTDOWN_MALFORMED},    /* '=' is not part of the grammar */
        {"3*5+7*", COUNTDOWN_MALFORMED},
        {"(3*5+7*2", COUNTDOWN_MALFORMED},
        {"3*5)+7*2", COUNTDOWN_MALFORMED},
        {"", COUNTDOWN_MALFORMED},
        {"3.0*5+7*2", COUNTDOWN_MALFORMED},
        {"-3+5*7-2", COUNTDOWN_MALFORMED},      /* unary minus off by default */
        {"3--5", COUNTDOWN_MALFORMED},
        {"3 5", COUNTDOWN_MALFORMED},
        {"3*5+7*2 \xE2\x88\x92 0", COUNTDOWN_WRONG}, /* U+2212 minus parses; 0 not given */
        {"sqrt(9)", COUNTDOWN_MALFORMED},
        {"3**5", COUNTDOWN_MALFORMED},
    };
    for (int i = 0; i < N(cases); i++)
        cr_expect_eq(check(cases[i].expr, nums, 4, 29, NULL), cases[i].v, "'%s': verdict %d, expected %d",
                     cases[i].expr, check(cases[i].expr, nums, 4, 29, NULL), cases[i].v);

    countdown_rules unary = {.allow_unary_minus = true};
    cr_expect_eq(check("-3+5*7-2", nums, 4, 30, &unary), COUNTDOWN_CORRECT);
    cr_expect_eq(check("-(3-5)*7*2", nums, 4, 28, &unary), COUNTDOWN_CORRECT);

    static const int64_t n55[] = {5, 5, 7};
    cr_expect_eq(check("7/(5-5)", n55, 3, 1, NULL), COUNTDOWN_MALFORMED); /* ÷0 */
    cr_expect_eq(check("7*(5+5)", n55, 3, 70, NULL), COUNTDOWN_CORRECT);  /* duplicates in the multiset */

    /* rational division: 6/4·4 = 6 exactly; with exact_division the remainder is refused */
    static const int64_t n644[] = {6, 4, 4};
    countdown_rules exact = {.exact_division = true};
    cr_expect_eq(check("6/4*4", n644, 3, 6, NULL), COUNTDOWN_CORRECT);
    cr_expect_eq(check("6/4*4", n644, 3, 6, &exact), COUNTDOWN_WRONG);
    cr_expect_eq(check("4/4*6", n644, 3, 6, &exact), COUNTDOWN_CORRECT);
    static const int64_t n72[] = {7, 2};
    cr_expect_eq(check("7/2", n72, 2, 3, NULL), COUNTDOWN_WRONG); /* 3.5 ≠ 3: no truncation */

    countdown_rules all = {.use_all = true};
    cr_expect_eq(check("3*5", nums, 4, 15, NULL), COUNTDOWN_CORRECT);
    cr_expect_eq(check("3*5", nums, 4, 15, &all), COUNTDOWN_WRONG);
    cr_expect_eq(check("3*5*(7-2-2)", nums, 4, 45, &all), COUNTDOWN_WRONG); /* 2 twice */

    static const int64_t hundreds[] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 100};
    cr_expect_eq(check("100*100*100*100*100*100*100*100*100*100", hundreds, 10, 1, NULL), COUNTDOWN_MALFORMED);
    char deep[512];
    size_t k = 0;
    for (int i = 0; i < 150; i++) deep[k++] = '(';
    deep[k++] = '3';
    for (int i = 0; i < 150; i++) deep[k++] = ')';
    deep[k] = '\0';
    cr_expect_eq(check(deep, nums, 4, 3, NULL), COUNTDOWN_MALFORMED);
}

Test(rewards_countdown, tinyzero_scores) {
    const char *cols = "{\"numbers\": [3, 5, 7, 2], \"target\": 29}";
    const rule_case cases[] = {
        {"<think>15 + 14</think>\n<answer>3*5+7*2</answer>", cols, -1, REWARD_OK, 1.0},
        {"<think>hmm</think><answer>3*5+7</answer>", cols, -1, REWARD_OK, 0.1},
        {"<answer>3*5+7+7</answer>", cols, -1, REWARD_OK, 0.1},
        {"<answer>3*5+7*</answer>", cols, -1, REWARD_OK, 0.0},
        {"3*5+7*2", cols, -1, REWARD_OK, 0.0},
        {"<answer>1+1</answer> no wait <answer>(3*5)+(7*2)</answer>", cols, -1, REWARD_OK, 1.0},
        {"<answer>3*5+7*2</answer>", "{\"numbers\": [3, 5, 7, 2]}", -1, REWARD_MASKED, 0},
        {"<answer>3*5+7*2</answer>", "{\"numbers\": \"3 5 7 2\", \"target\": 29}", -1, REWARD_MASKED, 0},
        {"<answer>3*5+7*2</answer>", "{\"numbers\": [3, 5, 7, 2.5], \"target\": 29}", -1, REWARD_MASKED, 0},
    };
    run_cases("{\"type\": \"countdown\"}", cases, N(cases));
    const rule_case custom[] = {
        {"<answer>3*5+7*2</answer>", cols, -1, REWARD_OK, 2.0},
        {"<answer>3*5</answer>", cols, -1, REWARD_OK, 0.5},
        {"no answer", cols, -1, REWARD_OK, -1.0},
        {"<answer>3</answer>", "{\"nums\": [3], \"goal\": 3}", -1, REWARD_OK, 2.0},
    };
    run_cases("{\"type\": \"countdown\", \"correct\": 2, \"well_formed\": 0.5, \"wrong\": -1}", custom, 3);
    run_cases("{\"type\": \"countdown\", \"correct\": 2, \"numbers_column\": \"nums\", \"target_column\": \"goal\"}",
              custom + 3, 1);
}

/* verified_trace: the answer counts only when the last verdict line says yes truthfully. */
Test(rewards_countdown, verified_trace) {
    const char *cols = "{\"numbers\": [6, 7, 3], \"target\": 24}";
    const rule_case cases[] = {
        {"<think>\nI need to reach 24 using 6, 7, 3.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>\n<answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 1.0},
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols,
         -1, REWARD_OK, 1.0},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, need 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK,
         1.0},
        {"<think>\n18 / 3 = 6, 6 * 4 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 1.0},
        /* a right answer, unearned: a wrong value said yes, a false step, a last "no", no verdict */
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 5, 5 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n6 + 7 = 13, 13 * 3 = 39, no.\n</think><answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 0.1},
        {"<think>\n(7 - 3) * 6 = 24\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, need 24, maybe.\n</think><answer>(7 - 3) * 6</answer>", cols, -1,
         REWARD_OK, 0.1},
        {"<think>\n7 / 2 = 3, 3 * 8 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4,4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n9999999999 * 9999999999 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK,
         0.1},
        {"<think>\n99999999999999999 + 1 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        /* a truthful yes does not rescue a wrong answer */
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>7 - 3 * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>", cols, -1, REWARD_OK, 0.0},
    };
    run_cases("{\"type\": \"countdown\", \"verified_trace\": true}", cases, N(cases));
    run_cases("{\"type\": \"countdown\"}", cases, 4); /* off by default: the same first four score 1 */
    const rule_case off[] = {{cases[4].completion, cols, -1, REWARD_OK, 1.0}};
    run_cases("{\"type\": \"countdown\"}", off, 1);
    expect_create_error("{\"type\": \"countdown\", \"verified_trace\": 1}", "verified_trace");
}

/* sound_trace: the answer counts only when every verdict line is built truthfully from the given
 * numbers and the last one reaches the target. */
Test(rewards_countdown, sound_trace) {
    const char *cols = "{\"numbers\": [6, 7, 3], \"target\": 24}";
    const char *twice = "{\"numbers\": [6, 6, 4], \"target\": 24}";
    const rule_case cases[] = {
        {"<think>\nI need to reach 24 using 6, 7, 3.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>\n<answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 1.0},
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, no.\n7 - 3 = 4, 6 * 4 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols,
         -1, REWARD_OK, 1.0},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, need 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK,
         1.0},
        {"<think>\n6 / 6 = 1, 4 * 6 = 24, yes.\n</think><answer>4 * 6</answer>", twice, -1, REWARD_OK, 0.1},
        {"<think>\n6 + 6 = 12, 4 * 6 = 24, yes.\n</think><answer>4 * 6</answer>", twice, -1, REWARD_OK, 0.1},
        {"<think>\n6 - 4 = 2, 6 * 4 = 24, yes.\n</think><answer>4 * 6</answer>", twice, -1, REWARD_OK, 0.1},
        {"<think>\n6 * 4 = 24, yes.\n</think><answer>6 * 4</answer>", twice, -1, REWARD_OK, 1.0},
        {"<think>\n6 * 6 = 36, 36 - 4 = 32, no.\n4 * 6 = 24, yes.\n</think><answer>6 * 4</answer>", twice, -1,
         REWARD_OK, 1.0},
        /* what verified_trace accepts and sound_trace does not: a number that was not given, a
         * value used twice, a false step on a rejected attempt, an earlier false "yes" */
        {"<think>\n18 / 3 = 6, 6 * 4 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, 24 * 1 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1,
         REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 + 4 = 8, 8 * 3 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK,
         0.1},
        {"<think>\n6 + 7 = 12, 12 * 3 = 36, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 0.1},
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, yes.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 0.1},
        {"<think>\n6 + 7 = 13, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1,
         REWARD_OK, 1.0},
        {"<think>\n6 + 7 = 13, 13 + x = 39, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>",
         cols, -1, REWARD_OK, 0.1},
        /* and what neither accepts */
        {"<think>\n7 - 3 = 5, 5 * 6 = 24, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n6 + 7 = 13, no.\n</think><answer>(7 - 3) * 6</answer>", cols, -1,
         REWARD_OK, 0.1},
        {"<answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.1},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think><answer>7 - 3 * 6</answer>", cols, -1, REWARD_OK, 0.1},
    };
    run_cases("{\"type\": \"countdown\", \"sound_trace\": true}", cases, N(cases));
    const rule_case verified[] = {{cases[8].completion, cols, -1, REWARD_OK, 1.0},
                                  {cases[9].completion, cols, -1, REWARD_OK, 1.0},
                                  {cases[10].completion, cols, -1, REWARD_OK, 1.0},
                                  {cases[11].completion, cols, -1, REWARD_OK, 1.0},
                                  {cases[12].completion, cols, -1, REWARD_OK, 1.0}};
    run_cases("{\"type\": \"countdown\", \"verified_trace\": true}", verified, N(verified));
    expect_create_error("{\"type\": \"countdown\", \"sound_trace\": \"yes\"}", "sound_trace");
}

/* score_verdicts: the share of true verdicts, the answer unread. A "yes" is true on a sound line
 * that ends at the target; a "no" on a line that parses and ends elsewhere. */
Test(rewards_countdown, score_verdicts) {
    const char *cols = "{\"numbers\": [6, 7, 3], \"target\": 24}";
    const rule_case cases[] = {
        /* one sound yes; the answer is not read, so a wrong one does not matter */
        {"<think>\nI need to reach 24 using 6, 7, 3.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>\n<answer>7 - 3</answer>",
         cols, -1, REWARD_OK, 1.0},
        /* two true rejections (one with false arithmetic: a "no" is judged on its stated value),
         * then a sound yes */
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, no.\n6 + 7 = 12, 12 * 3 = 37, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>",
         cols, -1, REWARD_OK, 1.0},
        /* a guess: the yes line's value is not the target */
        {"<think>\n6 + 7 = 13, 13 * 3 = 39, yes.\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.0},
        /* a made-up step that lands on the target, and a number that was not given */
        {"<think>\n6 + 7 = 13, 13 * 3 = 24, yes.\n</think>", cols, -1, REWARD_OK, 0.0},
        {"<think>\n8 * 3 = 24, yes.\n</think>", cols, -1, REWARD_OK, 0.0},
        /* three true rejections, then a false yes: 3 of 4 */
        {"<think>\n6 + 7 = 13, no.\n6 * 7 = 42, no.\n7 * 3 = 21, no.\n6 + 3 = 9, 9 + 7 = 16, yes.\n</think>", cols, -1,
         REWARD_OK, 0.75},
        /* a rejected value at the target (with or without ", need T"): 1 of 2 */
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, no.\n7 - 3 = 4, 4 * 6 = 24, need 24, yes.\n</think>", cols, -1, REWARD_OK,
         0.5},
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, need 24, no.\n6 + 7 = 13, need 24, no.\n</think>", cols, -1, REWARD_OK, 0.5},
        /* an unreadable "no" line is not a true verdict; lines outside <think> are not verdicts */
        {"<think>\nthat is wrong, no.\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>\n6 + 7 = 13, no.", cols, -1, REWARD_OK,
         0.5},
        /* no verdict line: "wrong" */
        {"<think>\n7 - 3 = 4, 4 * 6 = 24\n</think><answer>(7 - 3) * 6</answer>", cols, -1, REWARD_OK, 0.0},
        {"", cols, -1, REWARD_OK, 0.0},
        /* a missing column still masks */
        {"<think>\n7 - 3 = 4, 4 * 6 = 24, yes.\n</think>", "{\"numbers\": [6, 7, 3]}", -1, REWARD_MASKED, 0.0},
    };
    run_cases("{\"type\": \"countdown\", \"score_verdicts\": true}", cases, N(cases));
    const rule_case scaled[] = {{cases[5].completion, cols, -1, REWARD_OK, 1.5}, {cases[9].completion, cols, -1, REWARD_OK, -1.0}};
    run_cases("{\"type\": \"countdown\", \"score_verdicts\": true, \"correct\": 2, \"wrong\": -1}", scaled,
              N(scaled));
    expect_create_error("{\"type\": \"countdown\", \"score_verdicts\": true, \"sound_trace\": true}",
                        "score_verdicts");
    expect_create_error("{\"type\": \"countdown\", \"score_verdicts\": 1}", "score_verdicts");
}

/* Every worked solution of the countdown task's search traces (both styles) is verified and
 * sound, and all its verdicts are true; the same solution with its "yes" line's last value
 * changed is neither, and has one false verdict; with a rejected attempt's first step made false
 * it is verified but not sound, and its verdicts are still all true. */
Test(rewards_countdown, verified_trace_accepts_the_task_traces) {
    reward *r = NULL;
    pt_error err = {0};
    reward *sound = NULL, *verdicts = NULL;
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"countdown\", \"verified_trace\": true}", NULL, &err), PT_OK,
                 "%s", err.msg);
    cr_assert_eq(reward_create_json(&verdicts, "{\"type\": \"countdown\", \"score_verdicts\": true}", NULL, &err),
                 PT_OK, "%s", err.msg);
    cr_assert_eq(reward_create_json(&sound, "{\"type\": \"countdown\", \"sound_trace\": true}", NULL, &err),
                 PT_OK, "%s", err.msg);
    int false_misses = 0;
    for (int style = 0; style < 2; style++) {
        task_make_opts o = {.kind = TASK_COUNTDOWN, .seed = 7, .difficulty = 1, .max_number = 10,
                            .short_prompt = true, .search_trace = true, .name_target = style == 1};
        int changed = 0;
        for (uint64_t j = 0; j < 200; j++) {
            task_example ex = {0};
            cr_assert_eq(task_candidate_with(&ex, &o, j, &err), PT_OK, "%s", err.msg);
            const char *completion = cJSON_GetObjectItem(ex.record, "completion")->valuestring;
            cJSON *cols = cJSON_CreateObject();
            cJSON_AddItemToObject(cols, "numbers", cJSON_Duplicate(cJSON_GetObjectItem(ex.record, "numbers"), 1));
            cJSON_AddItemToObject(cols, "target", cJSON_Duplicate(cJSON_GetObjectItem(ex.record, "target"), 1));
            char *colj = cJSON_PrintUnformatted(cols);
            /* the broken copy: the last digit of the yes line's value changed */
            char *broken = strdup(completion);
            char *end = strstr(broken, ", yes.");
            cr_assert_not_null(end, "no yes line in %s", completion);
            if (style == 1)
                while (end > broken && strncmp(end, ", need ", 7) != 0) end--;
            char *d = end - 1;
            cr_assert(*d >= '0' && *d <= '9', "no value before the verdict in %s", completion);
            *d = *d == '9' ? '8' : (char)(*d + 1);
            reward_item items[2] = {{"prompt", completion, colj, -1}, {"prompt", broken, colj, -1}};
            reward_result res[2];
            cr_assert_eq(reward_score(r, res, items, 2, &err), PT_OK, "%s", err.msg);
            cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "not verified (%s): %s", res[0].reason,
                      completion);
            cr_expect(res[1].status == REWARD_OK && res[1].score == 0.1, "verified after a change: %s", broken);
            cr_assert_eq(reward_score(sound, res, items, 2, &err), PT_OK, "%s", err.msg);
            cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "not sound (%s): %s", res[0].reason,
                      completion);
            cr_expect(res[1].status == REWARD_OK && res[1].score == 0.1, "sound after a change: %s", broken);
            int lines = 0;
            for (const char *q = completion; (q = strstr(q, ", no.")) != NULL; q++) lines++;
            lines++; /* the yes line */
            cr_assert_eq(reward_score(verdicts, res, items, 2, &err), PT_OK, "%s", err.msg);
            cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "a false verdict (%g): %s", res[0].score,
                      completion);
            cr_expect(res[1].status == REWARD_OK && fabs(res[1].score - (double)(lines - 1) / lines) < 1e-12,
                      "verdicts %g after a change, expected %d of %d true: %s", res[1].score, lines - 1, lines, broken);
            /* a rejected attempt's first value made false ("a op b = v" -> v + 1) */
            const char *no = strstr(completion, ", no.");
            if (no) {
                char *lie = strdup(completion);
                char *v = strstr(strchr(lie, '.') + 1, " = "); /* the first step after "I need ... ." */
                cr_assert(v && v < lie + (no - completion), "no step before the first verdict in %s", completion);
                v += 3;
                cr_assert(*v >= '0' && *v <= '9');
                char *last = v;
                while (last[1] >= '0' && last[1] <= '9') last++;
                *last = *last == '9' ? '8' : (char)(*last + 1);
                reward_item one = {"prompt", lie, colj, -1};
                cr_assert_eq(reward_score(r, res, &one, 1, &err), PT_OK, "%s", err.msg);
                cr_expect(res[0].score == 1.0, "a false rejected attempt should still be verified: %s", lie);
                cr_assert_eq(reward_score(sound, res, &one, 1, &err), PT_OK, "%s", err.msg);
                cr_expect(res[0].score == 0.1, "sound with a false step: %s", lie);
                cr_assert_eq(reward_score(verdicts, res, &one, 1, &err), PT_OK, "%s", err.msg);
                cr_expect(res[0].score == 1.0, "a rejection is judged on its stated value (%g): %s", res[0].score, lie);
                false_misses++;
                free(lie);
            }
            changed++;
            free(broken);
            free(colj);
            cJSON_Delete(cols);
            task_example_free(&ex);
        }
        cr_expect_eq(changed, 200);
    }
    cr_expect_gt(false_misses, 200, "too few traces with a rejected attempt (%d)", false_misses);
    reward_free(r);
    reward_free(sound);
    reward_free(verdicts);
}

/* ---- length and repetition --------------------------------------------------------------- */

Test(rewards_length, dapo_overlong_penalty) {
    /* L_max 100, L_cache 20: free up to 80, then (80 − L)/20, −1 beyond 100 */
    static const rule_case tok[] = {
        {"x", NULL, 0, REWARD_OK, 0},          {"x", NULL, 80, REWARD_OK, 0},
        {"x", NULL, 81, REWARD_OK, -1.0 / 20}, {"x", NULL, 90, REWARD_OK, -0.5},
        {"x", NULL, 99, REWARD_OK, -19.0 / 20}, {"x", NULL, 100, REWARD_OK, -1},
        {"x", NULL, 101, REWARD_OK, -1},       {"x", NULL, 100000, REWARD_OK, -1},
    };
    run_cases("{\"type\": \"length\", \"max_length\": 100, \"cache_length\": 20}", tok, N(tok));

    char ascii90[91], e90[181];
    memset(ascii90, 'a', 90);
    ascii90[90] = '\0';
    for (int i = 0; i < 90; i++) e90[2 * i] = (char)0xC3, e90[2 * i + 1] = (char)0xA9; /* é: 2 bytes, 1 code point */
    e90[180] = '\0';
    const rule_case chars[] = {
        {ascii90, NULL, -1, REWARD_OK, -0.5}, {e90, NULL, -1, REWARD_OK, -0.5}, {"short", NULL, -1, REWARD_OK, 0},
        {ascii90, NULL, 10, REWARD_OK, 0}, /* auto: a known token count wins */
    };
    run_cases("{\"type\": \"length\", \"max_length\": 100, \"cache_length\": 20}", chars, N(chars));
    const rule_case forced_chars[] = {{ascii90, NULL, 10, REWARD_OK, -0.5}};
    run_cases("{\"type\": \"length\", \"max_length\": 100, \"cache_length\": 20, \"unit\": \"chars\"}", forced_chars, 1);
    static const rule_case need_tokens[] = {{"x", NULL, -1, REWARD_ERROR, 0}, {"x", NULL, 90, REWARD_OK, -0.5}};
    run_cases("{\"type\": \"length\", \"max_length\": 100, \"cache_length\": 20, \"unit\": \"tokens\"}", need_tokens,
              N(need_tokens));
    expect_create_error("{\"type\": \"length\", \"max_length\": 100}", "cache_length");
    expect_create_error("{\"type\": \"length\", \"max_length\": 10, \"cache_length\": 20}", "cache_length <= max_length");
    expect_create_error("{\"type\": \"length\", \"max_length\": 10.5, \"cache_length\": 2}", "expects an integer");
}

Test(rewards_repetition, repeated_ngram_fraction) {
    static const rule_case tri[] = {
        {"the cat sat on the mat", NULL, -1, REWARD_OK, 0},          /* 4 distinct of 4 trigrams */
        {"a b a b a b", NULL, -1, REWARD_OK, -0.5},                  /* aba bab aba bab: 2 of 4 */
        {"go go go go go", NULL, -1, REWARD_OK, -(1.0 - 1.0 / 3.0)}, /* 1 of 3 */
        {"Go  go\n\tGO go GO", NULL, -1, REWARD_OK, -(1.0 - 1.0 / 3.0)},
        {"hi there", NULL, -1, REWARD_OK, 0},
        {"", NULL, -1, REWARD_OK, 0},
    };
    run_cases("{\"type\": \"repetition\"}", tri, N(tri));
    static const rule_case uni[] = {{"Go go GO go", NULL, -1, REWARD_OK, -0.25}}; /* Go, go, GO: 3 of 4 */
    run_cases("{\"type\": \"repetition\", \"ngram\": 1, \"lowercase\": false}", uni, 1);
    static const rule_case uni_lower[] = {{"Go go GO go", NULL, -1, REWARD_OK, -0.75}};
    run_cases("{\"type\": \"repetition\", \"ngram\": 1}", uni_lower, 1);
    static const rule_case half[] = {{"a b a b a b", NULL, -1, REWARD_OK, -0.25}};
    run_cases("{\"type\": \"repetition\", \"max_penalty\": 0.5}", half, 1);
    static const rule_case chars[] = {
        {"aaaa", NULL, -1, REWARD_OK, -(1.0 - 1.0 / 3.0)},            /* aa aa aa */
        {"\xc3\xa9\xc3\xa9\xc3\xa9", NULL, -1, REWARD_OK, -0.5},     /* éé éé: 1 of 2 */
        {"abcd", NULL, -1, REWARD_OK, 0},
    };
    run_cases("{\"type\": \"repetition\", \"ngram\": 2, \"unit\": \"chars\"}", chars, N(chars));
    expect_create_error("{\"type\": \"repetition\", \"ngram\": 0}", "ngram must be in [1, 64]");
}
