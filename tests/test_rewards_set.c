/* test_rewards_set.c — the registry and the reward set: creation errors, runtime types, weighted
 * totals, masking rules, per-reward stats and metrics, and the error-rate abort.
 *
 * A "scripted" reward registered at runtime reads its verdict from the completion text
 * ("ok:0.5", "mask", "error", "nan", "skip", "batchfail"), so every masking and error path can be
 * driven exactly; real rewards (math, format) check that weights combine real scores. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"

static pt_status scripted_score(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    int *calls = self->impl;
    (*calls)++;
    for (int i = 0; i < n; i++)
        if (strstr(items[i].completion, "batchfail")) PT_FAIL(err, PT_ERR_IO, "batch failed on purpose");
    for (int i = 0; i < n; i++) {
        const char *c = items[i].completion;
        if (strncmp(c, "ok:", 3) == 0) reward_result_ok(&out[i], strtod(c + 3, NULL));
        else if (strcmp(c, "mask") == 0) reward_result_mask(&out[i], REWARD_MASKED, "masked on purpose");
        else if (strcmp(c, "error") == 0) reward_result_mask(&out[i], REWARD_ERROR, "boom");
        else if (strcmp(c, "nan") == 0) reward_result_ok(&out[i], NAN);
        /* "skip": leave the result unwritten */
    }
    return PT_OK;
}

static const reward_vtable SCRIPTED_VTABLE = {scripted_score, NULL};

static pt_status scripted_init(reward *self, const cJSON *cfg, void *ctx, pt_error *err) {
    PT_TRY(reward_cfg_check_keys(cfg, NULL, 0, err));
    self->impl = ctx;
    self->vt = &SCRIPTED_VTABLE;
    return PT_OK;
}

static void registry_with_scripted(reward_registry *reg, int *calls) {
    reward_registry_init(reg);
    pt_error err = {0};
    cr_assert_eq(reward_registry_add(reg, "scripted", "test reward", scripted_init, calls, &err), PT_OK, "%s", err.msg);
}

static void set_from_json(reward_set *set, const char *json, const reward_registry *reg, const reward_set_options *o) {
    cJSON *cfg = cJSON_Parse(json);
    cr_assert_not_null(cfg, "bad test JSON: %s", json);
    pt_error err = {0};
    pt_status st = reward_set_init(set, cfg, reg, o, &err);
    cJSON_Delete(cfg);
    cr_assert_eq(st, PT_OK, "%s", err.msg);
}

static void expect_set_error(const char *json, const reward_registry *reg, const char *needle) {
    cJSON *cfg = cJSON_Parse(json);
    cr_assert_not_null(cfg);
    reward_set set;
    pt_error err = {0};
    pt_status st = reward_set_init(&set, cfg, reg, NULL, &err);
    cJSON_Delete(cfg);
    cr_expect_eq(st, PT_ERR_CONFIG, "%s must be refused", json);
    cr_expect(strstr(err.msg, needle) != NULL, "%s: message '%s' should contain '%s'", json, err.msg, needle);
    if (st == PT_OK) reward_set_free(&set);
}

Test(rewards_set, config_errors_name_the_problem) {
    int calls = 0;
    reward_registry reg;
    registry_with_scripted(&reg, &calls);
    expect_set_error("[]", NULL, "empty");
    expect_set_error("{\"type\": \"math\"}", NULL, "JSON array");
    expect_set_error("[{\"type\": \"math\"}, {\"type\": \"math\"}]", NULL, "both named 'math'");
    expect_set_error("[{\"type\": \"maths\"}]", NULL, "unknown type 'maths'; known types: regex, format, math");
    expect_set_error("[{\"type\": \"scripted\"}]", NULL, "unknown type 'scripted'");
    expect_set_error("[{\"name\": \"x\"}]", NULL, "missing \"type\"");
    expect_set_error("[{\"type\": \"math\", \"name\": \"a b\"}]", NULL, "reward name 'a b'");
    expect_set_error("[{\"type\": \"math\", \"weight\": \"1\"}]", NULL, "'weight' expects a finite number");
    expect_set_error("[{\"type\": \"math\"}, {\"type\": \"math\", \"name\": \"m2\", \"colum\": \"x\"}]", NULL,
                     "rewards[1]: reward 'm2' (type math): unknown key 'colum' (did you mean 'column'?)");
    expect_set_error("[{\"type\": \"scripted\", \"extra\": 1}]", &reg, "unknown key 'extra'");
    pt_error err = {0};
    cr_expect_eq(reward_registry_add(&reg, "scripted", "", scripted_init, &calls, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "already registered"));
    cr_expect_eq(reward_registry_add(&reg, "math", "", scripted_init, &calls, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "built in"));
    reward_set_options bad = reward_set_options_default();
    bad.max_error_rate = 1.5;
    reward_set set;
    cJSON *cfg = cJSON_Parse("[{\"type\": \"math\"}]");
    cr_expect_eq(reward_set_init(&set, cfg, NULL, &bad, &err), PT_ERR_CONFIG);
    cJSON_Delete(cfg);
    reward_registry_free(&reg);
}

Test(rewards_set, weighted_total_of_real_rewards) {
    reward_set set;
    set_from_json(&set,
                  "[{\"name\": \"accuracy\", \"type\": \"math\", \"weight\": 1.0},"
                  " {\"name\": \"fmt\", \"type\": \"format\", \"weight\": 0.5},"
                  " {\"name\": \"long\", \"type\": \"length\", \"max_length\": 40, \"cache_length\": 10, \"weight\": 2}]",
                  NULL, NULL);
    cr_assert_eq(set.n, 3);
    const char *cols = "{\"answer\": \"12\"}";
    reward_item items[4] = {
        {"q", "<think>3*4</think><answer>12</answer>", cols, 5},  /* 1 + 0.5·1 + 2·0 */
        {"q", "<think>3*4</think><answer>13</answer>", cols, 35}, /* 0 + 0.5 + 2·(30−35)/10 */
        {"q", "it is 12", cols, 45},                               /* 1 + 0 + 2·(−1) */
        {"q", "no idea", cols, -1},                                /* 0 + 0 + 2·0 (7 chars) */
    };
    const double expect[4] = {1.5, 0.5 - 1.0, 1.0 - 2.0, 0.0};
    reward_result total[4], per[12];
    pt_error err = {0};
    cr_assert_eq(reward_set_score(&set, total, per, items, 4, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(total[i].status, REWARD_OK);
        cr_expect(fabs(total[i].score - expect[i]) < 1e-12, "item %d: total %.17g, expected %.17g", i, total[i].score,
                  expect[i]);
    }
    /* per-reward rows */
    cr_expect_eq(per[0 * 4 + 2].score, 1.0);
    cr_expect_eq(per[1 * 4 + 1].score, 1.0);
    cr_expect(fabs(per[2 * 4 + 1].score + 0.5) < 1e-12);
    /* stats of "accuracy": scores 1, 0, 1, 0 → mean 0.5, population std 0.5 */
    cr_expect(fabs(set.stats[0].mean - 0.5) < 1e-12 && fabs(set.stats[0].std - 0.5) < 1e-12);
    cr_expect_eq(set.stats[0].scored, 4);
    /* totals: 1.5, −0.5, −1, 0 → mean 0, std sqrt((2.25+0.25+1+0)/4) */
    cr_expect(fabs(set.mean) < 1e-12);
    cr_expect(fabs(set.std - sqrt(3.5 / 4)) < 1e-12);

    reward_metric m[32];
    int nm = reward_set_metrics(m, 32, &set);
    cr_assert_eq(nm, 2 + 5 * 3);
    cr_expect_str_eq(m[0].name, "reward");
    cr_expect_str_eq(m[1].name, "reward_std");
    cr_expect_str_eq(m[2].name, "rewards/accuracy/mean");
    cr_expect_str_eq(m[3].name, "rewards/accuracy/std");
    cr_expect_str_eq(m[4].name, "rewards/accuracy/time");
    cr_expect_str_eq(m[5].name, "rewards/accuracy/masked");
    cr_expect_str_eq(m[6].name, "rewards/accuracy/errors");
    cr_expect_str_eq(m[7].name, "rewards/fmt/mean");
    cr_expect(fabs(m[7].value - 0.5) < 1e-12);
    cr_expect(m[4].value >= 0.0);
    cr_expect_eq(reward_set_metrics(m, 3, &set), nm, "a short buffer still reports the full count");
    reward_set_free(&set);
}

Test(rewards_set, masking_rules) {
    int calls = 0;
    reward_registry reg;
    registry_with_scripted(&reg, &calls);
    reward_set set;
    set_from_json(&set,
                  "[{\"name\": \"a\", \"type\": \"scripted\", \"weight\": 2},"
                  " {\"name\": \"zero\", \"type\": \"scripted\", \"weight\": 0},"
                  " {\"name\": \"acc\", \"type\": \"math\", \"weight\": 1}]",
                  &reg, NULL);
    reward_item items[6] = {
        {"q", "ok:0.25", "{\"answer\": 1}", -1}, /* 2·0.25 + 0 = 0.5 */
        {"q", "mask", "{\"answer\": 1}", -1},    /* masked by a */
        {"q", "error", "{\"answer\": 1}", -1},   /* error from a */
        {"q", "ok:1", "{\"answer\": \"n/a\"}", -1}, /* acc masks: bad reference */
        {"q", "skip", "{\"answer\": 1}", -1},    /* a wrote nothing: error, never 0 */
        {"q", "nan", "{\"answer\": 1}", -1},     /* NaN: error */
    };
    reward_result total[6], per[18];
    pt_error err = {0};
    cr_assert_eq(reward_set_score(&set, total, per, items, 6, &err), PT_OK, "%s", err.msg);
    cr_expect_eq(calls, 2, "each scripted reward scored the batch once (ctx reaches the constructor)");
    cr_expect_eq(total[0].status, REWARD_OK);
    cr_expect(fabs(total[0].score - 0.5) < 1e-15);
    cr_expect_eq(total[1].status, REWARD_MASKED);
    cr_expect_str_eq(total[1].reason, "a: masked on purpose");
    cr_expect_eq(total[2].status, REWARD_ERROR);
    cr_expect_str_eq(total[2].reason, "a: boom");
    cr_expect_eq(total[3].status, REWARD_MASKED);
    cr_expect(strncmp(total[3].reason, "acc: reference answer 'n/a'", 27) == 0, "%s", total[3].reason);
    cr_expect_eq(total[4].status, REWARD_ERROR);
    cr_expect_str_eq(total[4].reason, "a: reward wrote no result");
    cr_expect_eq(total[5].status, REWARD_ERROR);
    cr_expect(strstr(total[5].reason, "non-finite") != NULL, "%s", total[5].reason);
    /* the zero-weight reward masked/errored the same items, but only weighted rewards mask */
    cr_expect_eq(per[1 * 6 + 1].status, REWARD_MASKED);
    cr_expect_eq(set.stats[1].masked, 1);
    cr_expect_eq(set.stats[1].errors, 3);
    cr_expect_eq(set.stats[0].scored, 2);
    cr_expect_eq(set.stats[2].masked, 1);
    cr_expect_eq(set.masked, 5);
    cr_expect(fabs(set.mean - 0.5) < 1e-15 && set.std == 0.0);
    /* a zero-weight reward's mask does not mask the total */
    reward_set_free(&set);
    set_from_json(&set,
                  "[{\"name\": \"a\", \"type\": \"scripted\", \"weight\": 1},"
                  " {\"name\": \"acc\", \"type\": \"math\", \"weight\": 0}]",
                  &reg, NULL);
    reward_item one = {"q", "ok:0.75", "{\"answer\": \"n/a\"}", -1};
    cr_assert_eq(reward_set_score(&set, total, NULL, &one, 1, &err), PT_OK, "%s", err.msg);
    cr_expect_eq(total[0].status, REWARD_OK);
    cr_expect_eq(total[0].score, 0.75);
    cr_expect_eq(set.stats[1].masked, 1);
    reward_set_free(&set);
    reward_registry_free(&reg);
}

Test(rewards_set, batch_failure_errors_every_item) {
    int calls = 0;
    reward_registry reg;
    registry_with_scripted(&reg, &calls);
    reward_set set;
    set_from_json(&set, "[{\"type\": \"scripted\"}]", &reg, NULL);
    reward_item items[3] = {{"q", "ok:1", NULL, -1}, {"q", "batchfail", NULL, -1}, {"q", "ok:1", NULL, -1}};
    reward_result total[3];
    pt_error err = {0};
    cr_assert_eq(reward_set_score(&set, total, NULL, items, 3, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(total[i].status, REWARD_ERROR);
        cr_expect(strstr(total[i].reason, "scripted: batch failed on purpose") != NULL, "%s", total[i].reason);
    }
    cr_expect_eq(set.stats[0].errors, 3);
    cr_expect_eq(set.stats[0].total_errors, 3);
    cr_expect_str_eq(set.stats[0].last_error, "batch failed on purpose");
    reward_set_free(&set);
    reward_registry_free(&reg);
}

static pt_status score_texts(reward_set *set, const char *const *texts, int n, pt_error *err) {
    reward_item items[16];
    reward_result total[16];
    for (int i = 0; i < n; i++) items[i] = (reward_item){"q", texts[i], NULL, -1};
    return reward_set_score(set, total, NULL, items, n, err);
}

Test(rewards_set, error_rate_aborts_over_a_window) {
    int calls = 0;
    reward_registry reg;
    registry_with_scripted(&reg, &calls);
    reward_set_options o = {.max_error_rate = 0.25, .error_window = 16, .error_min_items = 8};
    reward_set set;
    set_from_json(&set, "[{\"name\": \"judge\", \"type\": \"scripted\"}]", &reg, &o);
    static const char *const two_bad[8] = {"error", "ok:1", "error", "ok:1", "ok:1", "ok:1", "ok:1", "ok:1"};
    static const char *const three_bad[8] = {"error", "error", "error", "ok:1", "ok:1", "ok:1", "ok:1", "ok:1"};
    static const char *const clean[8] = {"ok:1", "ok:1", "ok:1", "ok:1", "ok:1", "ok:1", "ok:1", "ok:1"};
    pt_error err = {0};
    /* 2/8 = 25%: not over the limit */
    cr_expect_eq(score_texts(&set, two_bad, 8, &err), PT_OK, "%s", err.msg);
    /* window now 16 items with 2 + 3 = 5 errors: 31% > 25% */
    cr_expect_eq(score_texts(&set, three_bad, 8, &err), PT_ERR_BACKEND);
    cr_expect(strstr(err.msg, "reward 'judge' failed on 5 of its last 16 items") != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "last error: boom") != NULL, "%s", err.msg);
    cr_expect_eq(set.stats[0].total_errors, 5);
    /* a clean batch pushes the first two errors out of the 16-item window: 3/16 = 18.75% */
    error_clear(&err);
    cr_expect_eq(score_texts(&set, clean, 8, &err), PT_OK, "%s", err.msg);
    /* 5 errors now: the window holds the clean batch and this one (5/16), not the whole run (10/32) */
    static const char *const five_bad[8] = {"error", "error", "error", "error", "error", "ok:1", "ok:1", "ok:1"};
    cr_expect_eq(score_texts(&set, five_bad, 8, &err), PT_ERR_BACKEND);
    cr_expect(strstr(err.msg, "failed on 5 of its last 16 items") != NULL, "%s", err.msg);
    reward_set_free(&set);

    /* below error_min_items nothing is judged, even at 100% */
    set_from_json(&set, "[{\"name\": \"judge\", \"type\": \"scripted\"}]", &reg, &o);
    static const char *const all_bad[4] = {"error", "error", "error", "error"};
    cr_expect_eq(score_texts(&set, all_bad, 4, &err), PT_OK);
    cr_expect_eq(score_texts(&set, all_bad, 4, &err), PT_ERR_BACKEND, "8 items now: 100%% errors");
    reward_set_free(&set);
    reward_registry_free(&reg);
}
