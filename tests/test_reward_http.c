/* test_reward_http.c — the http reward against a fault-injecting server (tests/util/fault_server)
 * on 127.0.0.1: scores arrive only from well-formed answers, every fault is masked with its
 * reason and counted, retries happen only for timeouts, connection failures, 429 and 5xx (with
 * back-off inside the full-jitter bound, Retry-After honoured), the circuit breaker opens and
 * recovers, and no batch outlives its deadline (wall time measured against deadline_ms).
 * Judge mode against rollout/server is in test_server.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/timer.h"
#include "rewards/reward_http.h"
#include "tests/util/fault_server.h"

/* Scheduling slack allowed over a deadline on a loaded 2-core machine. */
#define SLACK_S 0.35

static pt_status init_ctx(reward *self, const cJSON *cfg, void *ctx, pt_error *err) {
    (void)ctx;
    return reward_http_init(self, cfg, err);
}

/* The reward through the registry (as a user would configure it), url filled in. */
static reward *make_http(const fault_server *fs, const char *extra) {
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "{\"name\": \"h\", \"type\": \"http_t\", \"url\": \"http://127.0.0.1:%d/score\"%s%s}",
             fault_server_port(fs), extra[0] ? ", " : "", extra);
    reward_registry reg;
    reward_registry_init(&reg);
    pt_error err = {0};
    cr_assert_eq(reward_registry_add(&reg, "http_t", "test", init_ctx, NULL, &err), PT_OK, "%s", err.msg);
    reward *r = NULL;
    cr_assert_eq(reward_create_json(&r, cfg, &reg, &err), PT_OK, "%s", err.msg);
    reward_registry_free(&reg);
    return r;
}

static double run_batch(reward *r, reward_result *out, const char *const *texts, int n) {
    reward_item items[32];
    cr_assert(n <= 32);
    for (int i = 0; i < n; i++) items[i] = (reward_item){"p", texts[i], "{\"id\": 1}", -1};
    pt_error err = {0};
    double t0 = timer_now();
    cr_assert_eq(reward_score(r, out, items, n, &err), PT_OK, "%s", err.msg);
    return timer_now() - t0;
}

static reward_http_stats stats_of(const reward *r) {
    reward_http_stats st;
    pt_error err = {0};
    cr_assert_eq(reward_http_get_stats(&st, r, &err), PT_OK, "%s", err.msg);
    return st;
}

static void expect_error(const reward_result *res, const char *needle, const char *what) {
    cr_assert_eq(res->status, REWARD_ERROR, "%s: expected an error, got status %d score %g", what, res->status,
                 res->score);
    cr_assert(strstr(res->reason, needle), "%s: reason '%s' lacks '%s'", what, res->reason, needle);
}

Test(reward_http, scores_arrive_concurrently) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    reward *r = make_http(fs, "\"max_concurrency\": 4, \"min_score\": -1, \"max_score\": 1");
    const char *texts[] = {"slow 300 0.25", "slow 300 -0.5", "slow 300 1", "slow 300 0.125", "ok 0"};
    const double want[] = {0.25, -0.5, 1, 0.125, 0};
    reward_result out[5];
    double secs = run_batch(r, out, texts, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(out[i].status, REWARD_OK, "item %d: %s", i, out[i].reason);
        cr_assert_eq(out[i].score, want[i], "item %d: %g != %g", i, out[i].score, want[i]);
    }
    /* serially the four slow answers take 1.2 s */
    cr_assert_lt(secs, 0.9, "batch took %.3f s: transfers did not overlap", secs);
    cr_assert_geq(fault_server_peak_concurrency(fs), 2);
    reward_http_stats st = stats_of(r);
    cr_assert_eq(st.requests, 5);
    cr_assert_eq(st.scored, 5);
    cr_assert_eq(st.retries, 0);
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, every_fault_is_masked_with_its_reason) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    reward *r = make_http(fs, "\"retries\": 0, \"breaker_failures\": 0, \"min_score\": 0, \"max_score\": 1, "
                              "\"max_response_bytes\": 65536");
    const char *texts[] = {"drop", "500", "trunc", "badjson", "nan", "inf", "null", "ok 5", "big", "teapot", "ok 0.5"};
    const char *needle[] = {"connection", "HTTP 500", "connection", "not a JSON object", "not a number",
                            "not finite", "not a number", "outside [0, 1]", "max_response_bytes", "HTTP 400", NULL};
    int n = (int)(sizeof texts / sizeof *texts);
    reward_result out[16];
    run_batch(r, out, texts, n);
    for (int i = 0; i < n - 1; i++) expect_error(&out[i], needle[i], texts[i]);
    cr_assert_eq(out[n - 1].status, REWARD_OK, "%s", out[n - 1].reason);
    cr_assert_eq(out[n - 1].score, 0.5);
    reward_http_stats st = stats_of(r);
    cr_assert_eq(st.requests, n, "one attempt each with retries 0, got %ld", st.requests);
    cr_assert_eq(st.scored, 1);
    cr_assert_eq(st.item_failures[HTTP_FAIL_CONNECT], 2);
    cr_assert_eq(st.item_failures[HTTP_FAIL_5XX], 1);
    cr_assert_eq(st.item_failures[HTTP_FAIL_BAD_REPLY], 2);
    cr_assert_eq(st.item_failures[HTTP_FAIL_BAD_SCORE], 4);
    cr_assert_eq(st.item_failures[HTTP_FAIL_4XX], 1);
    long total = 0;
    for (int f = 0; f < HTTP_FAIL_COUNT; f++) total += st.item_failures[f];
    cr_assert_eq(total, n - 1, "every failure counted once");
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, retries_only_where_allowed_with_jittered_backoff) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    /* keep_alive off: libcurl would silently re-send on a reused connection the server dropped,
     * and the server-side counts below must equal the reward's own attempts */
    reward *r = make_http(fs, "\"keep_alive\": false, \"retries\": 2, \"backoff_base_ms\": 40, \"backoff_max_ms\": 60, "
                              "\"breaker_failures\": 0, \"max_score\": 1, \"seed\": 7");
    const char *texts[] = {"500", "drop", "flaky 2 0.75", "badjson", "ok 5", "teapot", "trunc"};
    reward_result out[8];
    run_batch(r, out, texts, 7);
    /* retryable: 1 + 2 attempts */
    cr_assert_eq(fault_server_count(fs, "500"), 3);
    cr_assert_eq(fault_server_count(fs, "drop"), 3, "drop: %d", fault_server_count(fs, "drop"));
    cr_assert_eq(fault_server_count(fs, "trunc"), 3);
    cr_assert_eq(fault_server_count(fs, "flaky 2 0.75"), 3);
    cr_assert_eq(out[2].status, REWARD_OK, "%s", out[2].reason);
    cr_assert_eq(out[2].score, 0.75);
    expect_error(&out[0], "gave up after 3 attempts", "500");
    expect_error(&out[1], "gave up after 3 attempts", "drop");
    /* final answers: never retried */
    cr_assert_eq(fault_server_count(fs, "badjson"), 1);
    cr_assert_eq(fault_server_count(fs, "ok 5"), 1);
    cr_assert_eq(fault_server_count(fs, "teapot"), 1);
    reward_http_stats st = stats_of(r);
    cr_assert_eq(st.retries, 8, "retries %ld", st.retries);
    /* full jitter: wait k is in [0, min(60, 40·2^(k-1))] ms; measured gaps add transfer time */
    double t[4];
    cr_assert_eq(fault_server_times(fs, "500", t, 4), 3);
    cr_assert_lt(t[1] - t[0], 0.040 + 0.15);
    cr_assert_lt(t[2] - t[1], 0.060 + 0.15);
    cr_assert_leq(st.max_backoff_s, 0.060 + 1e-9);
    cr_assert_gt(st.max_backoff_s, 0.0);
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, retry_after_is_honoured_within_the_deadline) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    reward *r = make_http(fs, "\"retries\": 1, \"backoff_base_ms\": 1, \"backoff_max_ms\": 1, "
                              "\"breaker_failures\": 0, \"deadline_ms\": 3000");
    const char *texts[] = {"429 1"};
    reward_result out[1];
    double secs = run_batch(r, out, texts, 1);
    double t[2];
    cr_assert_eq(fault_server_times(fs, "429 1", t, 2), 2);
    cr_assert_geq(t[1] - t[0], 0.95, "retried %.3f s after a Retry-After of 1 s", t[1] - t[0]);
    expect_error(&out[0], "HTTP 429", "429");
    cr_assert_lt(secs, 3.0 + SLACK_S);
    reward_free(r);

    /* a Retry-After beyond the deadline ends the item at once instead of sleeping past it */
    r = make_http(fs, "\"retries\": 3, \"breaker_failures\": 0, \"deadline_ms\": 500");
    const char *texts2[] = {"429 2"};
    secs = run_batch(r, out, texts2, 1);
    cr_assert_eq(fault_server_count(fs, "429 2"), 1);
    expect_error(&out[0], "deadline", "429 beyond deadline");
    cr_assert_lt(secs, 0.5 + SLACK_S);
    cr_assert_eq(stats_of(r).item_failures[HTTP_FAIL_DEADLINE], 1);
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, nothing_outlives_its_deadline) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    /* per-attempt timeout 250 ms, 1 retry, back-off ≤ 50 ms: default deadline 550 ms */
    reward *r = make_http(fs, "\"timeout_ms\": 250, \"retries\": 1, \"backoff_base_ms\": 50, \"backoff_max_ms\": 50, "
                              "\"breaker_failures\": 0, \"max_concurrency\": 8");
    const char *texts[] = {"slow 5000 1", "slow 5000 2", "slow 5000 3", "slow 5000 4", "ok 1"};
    reward_result out[5];
    double secs = run_batch(r, out, texts, 5);
    for (int i = 0; i < 4; i++) expect_error(&out[i], "timeout", texts[i]);
    cr_assert_eq(out[4].status, REWARD_OK);
    cr_assert_lt(secs, 0.55 + SLACK_S, "batch took %.3f s against a 0.55 s deadline", secs);
    cr_assert_geq(secs, 0.25, "timeouts fired before timeout_ms (%.3f s)", secs);
    reward_http_stats st = stats_of(r);
    cr_assert_eq(st.attempt_failures[HTTP_FAIL_TIMEOUT], 8);
    reward_free(r);

    /* an explicit deadline shorter than the retries would need wins */
    r = make_http(fs, "\"timeout_ms\": 350, \"retries\": 10, \"backoff_base_ms\": 5, \"backoff_max_ms\": 10, "
                      "\"deadline_ms\": 400, \"breaker_failures\": 0");
    secs = run_batch(r, out, texts, 2);
    /* the retry starts at ~0.36 s and must be cut at 0.4 s, not run its full 0.35 s (→ 0.71 s) */
    cr_assert_lt(secs, 0.4 + 0.25, "batch took %.3f s against a 0.4 s deadline", secs);
    cr_assert_eq(stats_of(r).retries, 2, "one retry each fits before the deadline");
    for (int i = 0; i < 2; i++) cr_assert_eq(out[i].status, REWARD_ERROR);
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, circuit_breaker_opens_and_recovers) {
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    reward *r = make_http(fs, "\"retries\": 0, \"max_concurrency\": 1, \"breaker_failures\": 3, "
                              "\"breaker_cooldown_ms\": 300");
    const char *fails[] = {"500", "500", "500", "500", "500", "500"};
    reward_result out[6];
    run_batch(r, out, fails, 6);
    cr_assert_eq(fault_server_count(fs, "500"), 3, "nothing is sent once the breaker is open");
    for (int i = 0; i < 3; i++) expect_error(&out[i], "HTTP 500", "before opening");
    for (int i = 3; i < 6; i++) expect_error(&out[i], "circuit open", "while open");
    reward_http_stats st = stats_of(r);
    cr_assert_eq(st.circuit_opened, 1);
    cr_assert_eq(st.circuit_open, 1);
    cr_assert_eq(st.item_failures[HTTP_FAIL_CIRCUIT], 3);

    /* still open in the next batch: masked without a request */
    const char *oks[] = {"ok 1", "ok 2"};
    run_batch(r, out, oks, 2);
    cr_assert_eq(fault_server_count(fs, "ok 1"), 0);
    expect_error(&out[0], "circuit open", "next batch");

    /* after the cool-down a probe goes through; success closes the breaker */
    usleep(350 * 1000);
    run_batch(r, out, oks, 2);
    for (int i = 0; i < 2; i++) cr_assert_eq(out[i].status, REWARD_OK, "%s", out[i].reason);
    cr_assert_eq(out[1].score, 2);
    st = stats_of(r);
    cr_assert_eq(st.circuit_open, 0);

    /* a failed probe re-opens it */
    run_batch(r, out, fails, 3); /* 3 failures: open again */
    usleep(350 * 1000);
    const char *mixed[] = {"drop", "ok 3"};
    run_batch(r, out, mixed, 2);
    expect_error(&out[0], "connection", "probe");
    expect_error(&out[1], "circuit open", "after a failed probe");
    cr_assert_eq(stats_of(r).circuit_opened, 3);
    reward_free(r);
    fault_server_stop(fs);
}

Test(reward_http, config_errors_name_the_key_not_the_secret) {
    pt_error err = {0};
    reward *r = NULL;
    reward_registry reg;
    reward_registry_init(&reg);
    cr_assert_eq(reward_registry_add(&reg, "http_t", "test", init_ctx, NULL, &err), PT_OK);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\"}", &reg, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "url"), "%s", err.msg);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\", \"url\": \"http://x\", \"retrys\": 1}", &reg, &err),
                 PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "retrys"), "%s", err.msg);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\", \"url\": \"http://x\", \"mode\": \"judge\", "
                                        "\"score_regex\": \"(\\\\d\"}", &reg, &err),
                 PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "offset"), "%s", err.msg);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\", \"url\": \"http://x\", \"mode\": \"judge\", "
                                        "\"score_regex\": \"\\\\d+\"}", &reg, &err),
                 PT_ERR_CONFIG);
    unsetenv("PT_TEST_NO_SUCH_KEY");
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\", \"url\": \"http://x\", \"api_key_env\": "
                                        "\"PT_TEST_NO_SUCH_KEY\"}", &reg, &err),
                 PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "PT_TEST_NO_SUCH_KEY"), "%s", err.msg);
    setenv("PT_TEST_SECRET_KEY", "sk-very-secret", 1);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"http_t\", \"url\": \"http://x\", \"api_key_env\": "
                                        "\"PT_TEST_SECRET_KEY\", \"retries\": -1}", &reg, &err),
                 PT_ERR_CONFIG);
    cr_assert_null(strstr(err.msg, "sk-very-secret"), "%s", err.msg);
    cr_assert_null(r);
    reward_registry_free(&reg);
}

Test(reward_http, unreachable_server_is_a_connection_error) {
    /* a port that was just closed: connection refused, retried, then masked */
    fault_server *fs;
    pt_error err = {0};
    cr_assert_eq(fault_server_start(&fs, &err), PT_OK, "%s", err.msg);
    reward *r = make_http(fs, "\"retries\": 1, \"backoff_base_ms\": 10, \"breaker_failures\": 0");
    fault_server_stop(fs);
    const char *texts[] = {"ok 1"};
    reward_result out[1];
    double secs = run_batch(r, out, texts, 1);
    expect_error(&out[0], "connection", "refused");
    cr_assert_eq(stats_of(r).requests, 2);
    cr_assert_lt(secs, 1.0);
    reward_free(r);
}
