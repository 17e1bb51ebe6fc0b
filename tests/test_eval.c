/* test_eval.c — held-out evaluation (grpo/eval.h) and rejection sampling (sft/rejection.h) on a
 * tiny random model, a tiny prompt file and regex rewards.
 *
 * What carries weight:
 *   - pass@k against brute force: for every n ≤ 9, c ≤ n, k ≤ n, the fraction of the C(n, k)
 *     k-subsets of n samples (c of them correct) that hold a correct one, counted by enumeration.
 *   - eval_policy's numbers against the completions it reports: every completion is re-scored
 *     here from its text (count of 'e' and presence of 'a', the rewards file's weights), and the
 *     accuracy, mean reward, per-reward means, pass@1 and pass@n are recomputed from those scores;
 *     two greedy runs are identical; greedy with n > 1 and an unknown accuracy reward are refused.
 *   - rejection sampling: every kept sample, re-scored here, passes the threshold; best-of-N keeps
 *     exactly the maximum of its prompt's samples; no prompt keeps the same text twice; the cap
 *     holds; the yield histogram adds up; the output is a prompt/completion dataset the SFT loader
 *     reads back, with the input's other columns kept and its old "completion" replaced.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/utf8.h"
#include "datasets/dataset.h"
#include "grpo/eval.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "rewards/reward_file.h"
#include "sft/rejection.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

typedef struct world {
    char dir[256], data[320], rewards[320];
    tokenizer *tok;
    policy_model m;
    reward_set set;
    dataset *ds;
} world;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void tiny_config(model_config *c, int vocab) {
    test_small_policy_config(c, vocab); /* initializer_range 0.3: completions and rewards vary */
}

static void world_init(world *w, const char *prompts) {
    memset(w, 0, sizeof *w);
    test_tmpdir(w->dir, sizeof w->dir, "eval");
    snprintf(w->data, sizeof w->data, "%s/prompts.jsonl", w->dir);
    snprintf(w->rewards, sizeof w->rewards, "%s/rewards.json", w->dir);
    w->tok = test_fixture_tokenizer();
    pt_error err = {0};
    model_config c;
    tiny_config(&c, (int)tokenizer_n_ids(w->tok));
    cr_assert_eq(model_init(&w->m, &c, 11, &err), PT_OK, "%s", err.msg);
    model_config_free(&c);
    write_file(w->data, prompts);
    write_file(w->rewards, "[{\"name\": \"e_count\", \"type\": \"regex\", \"pattern\": \"e\", \"mode\": \"count\"},\n"
                           " {\"name\": \"has_a\", \"type\": \"regex\", \"pattern\": \"a\", \"weight\": 0.5}]\n");
    cr_assert_eq(reward_set_load_file(&w->set, w->rewards, -1, NULL, &err), PT_OK, "%s", err.msg);
    dataset_options o;
    dataset_options_default(&o);
    o.format = DATASET_FORMAT_PROMPT;
    o.truncation = DATASET_TRUNCATE_LEFT;
    o.max_length = 16;
    cr_assert_eq(dataset_open_jsonl(&w->ds, w->data, w->tok, &o, &err), PT_OK, "%s", err.msg);
}

static void world_free(world *w) {
    dataset_free(w->ds);
    reward_set_free(&w->set);
    model_free(&w->m);
    tokenizer_free(w->tok);
    test_rmtree(w->dir);
}

static const char PROMPTS[] = "{\"prompt\": \"The answer is\", \"answer\": \"4\"}\n"
                              "{\"prompt\": \"Once upon a time\", \"answer\": \"x\", \"completion\": \"old\"}\n"
                              "{\"prompt\": \"Add 2 and 2:\", \"answer\": \"4\"}\n"
                              "{\"prompt\": \"Seven\", \"answer\": \"7\"}\n"
                              "{\"prompt\": [{\"role\": \"user\", \"content\": \"hello there\"}], \"answer\": \"h\"}\n";

/* The rewards, recomputed from the text. */
static double e_count(const char *s) {
    double n = 0;
    for (; *s; s++) n += *s == 'e';
    return n;
}
static double has_a(const char *s) { return strchr(s, 'a') ? 1.0 : 0.0; }
static double total_of(const char *s) { return e_count(s) + 0.5 * has_a(s); }

static long choose(int n, int k) {
    long r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

Test(eval, pass_at_k_matches_enumeration) {
    for (int n = 1; n <= 9; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                /* samples 0..c-1 are the correct ones; count k-subsets that hold one */
                long hit = 0, all = 0;
                for (unsigned mask = 0; mask < 1u << n; mask++) {
                    if (__builtin_popcount(mask) != k) continue;
                    all++;
                    hit += (mask & ((1u << c) - 1)) != 0;
                }
                cr_assert_eq(all, choose(n, k));
                double want = (double)hit / (double)all, got = eval_pass_at_k(n, c, k);
                cr_assert(fabs(got - want) < 1e-12, "pass@%d with %d of %d correct: %.15f, enumeration %.15f", k, c, n,
                          got, want);
            }
    cr_assert(isnan(eval_pass_at_k(3, 1, 4)), "k > n has no estimate");
}

Test(eval, parse_pass_k) {
    int ks[EVAL_MAX_PASS_K], n = 0;
    pt_error err = {0};
    cr_assert_eq(eval_parse_pass_k(ks, &n, "1, 4,16", &err), PT_OK, "%s", err.msg);
    cr_assert(n == 3 && ks[0] == 1 && ks[1] == 4 && ks[2] == 16);
    cr_assert_eq(eval_parse_pass_k(ks, &n, "1,x", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "1,x"), "%s", err.msg);
    cr_assert_eq(eval_parse_pass_k(ks, &n, "0", &err), PT_ERR_CONFIG);
    cr_assert_eq(eval_parse_pass_k(ks, &n, "", &err), PT_ERR_CONFIG);
}

typedef struct seen {
    int prompts;
    double correct_by_prompt[16];
    int n;
    double score_sum, e_sum, a_sum, count;
    size_t correct;
} seen;

static pt_status record(void *ctx, const eval_prompt_view *v, pt_error *err) {
    (void)err;
    seen *s = ctx;
    int c = 0;
    for (int g = 0; g < v->n; g++) {
        const double t = total_of(v->text[g]);
        cr_assert_eq(v->total[g].status, REWARD_OK);
        cr_assert(fabs(v->total[g].score - t) < 1e-12, "'%s': total %g, recomputed %g", v->text[g], v->total[g].score, t);
        const bool good = t >= 1.0;
        cr_assert_eq(v->correct[g], good, "'%s': correct flag %d, score %g", v->text[g], v->correct[g], t);
        c += good;
        s->score_sum += t, s->e_sum += e_count(v->text[g]), s->a_sum += has_a(v->text[g]), s->count += 1;
    }
    s->correct_by_prompt[s->prompts++] = c;
    s->correct += (size_t)c;
    s->n = v->n;
    return PT_OK;
}

static void run_eval(eval_result *r, seen *s, world *w, int n, float temperature) {
    eval_options o = eval_options_default();
    o.num_samples = n;
    o.sampling.temperature = temperature;
    o.max_prompt_length = 16;
    o.max_completion_length = 10;
    o.seed = 3;
    o.pass_k[0] = 1;
    o.pass_k[1] = n;
    o.n_pass_k = 2;
    o.chunk_prompts = 2; /* several chunks */
    o.on_prompt = record;
    o.on_prompt_ctx = s;
    memset(s, 0, sizeof *s);
    pt_error err = {0};
    cr_assert_eq(eval_policy(r, &w->m, w->tok, &w->set, w->ds, &o, &err), PT_OK, "%s", err.msg);
}

Test(eval, numbers_match_the_completions) {
    world w;
    world_init(&w, PROMPTS);
    eval_result r;
    seen s;
    run_eval(&r, &s, &w, 6, 1.0f);
    cr_assert_eq(r.prompts, 5);
    cr_assert_eq(s.prompts, 5);
    cr_assert_eq(r.completions, 30);
    cr_assert_eq(r.correct, s.correct);
    cr_assert(s.correct > 0 && s.correct < 30, "the test needs a mix of right and wrong (got %zu of 30)", s.correct);
    cr_assert(fabs(r.accuracy - (double)s.correct / 30.0) < 1e-12);
    cr_assert(fabs(r.mean_reward - s.score_sum / s.count) < 1e-9, "%g vs %g", r.mean_reward, s.score_sum / s.count);
    cr_assert(fabs(r.reward_mean[0] - s.e_sum / s.count) < 1e-9);
    cr_assert(fabs(r.reward_mean[1] - s.a_sum / s.count) < 1e-9);
    double p1 = 0, pn = 0;
    for (int p = 0; p < 5; p++) p1 += s.correct_by_prompt[p] / 6.0, pn += s.correct_by_prompt[p] > 0;
    cr_assert(fabs(r.pass_at[0] - p1 / 5) < 1e-12, "pass@1 %g vs %g", r.pass_at[0], p1 / 5);
    cr_assert(fabs(r.pass_at[1] - pn / 5) < 1e-12, "pass@6 %g vs %g", r.pass_at[1], pn / 5);
    eval_result_free(&r);

    /* greedy: reproducible, and n > 1 is refused */
    eval_result g1, g2;
    seen s1, s2;
    run_eval(&g1, &s1, &w, 1, 0.0f);
    run_eval(&g2, &s2, &w, 1, 0.0f);
    cr_assert(g1.accuracy == g2.accuracy && g1.mean_reward == g2.mean_reward);
    eval_result_free(&g1);
    eval_result_free(&g2);
    eval_options o = eval_options_default();
    o.num_samples = 4;
    pt_error err = {0};
    eval_result bad;
    cr_assert_eq(eval_policy(&bad, &w.m, w.tok, &w.set, w.ds, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "greedy"), "%s", err.msg);
    o = eval_options_default();
    o.accuracy_reward = "no_such";
    cr_assert_eq(eval_policy(&bad, &w.m, w.tok, &w.set, w.ds, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "no_such") && strstr(err.msg, "e_count"), "%s", err.msg);
    world_free(&w);
}

/* The kept samples written by rejection_sample, parsed back. */
static cJSON **read_lines(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    cr_assert(f);
    cJSON **out = calloc(256, sizeof *out);
    char line[8192];
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        out[*n] = cJSON_Parse(line);
        cr_assert(out[*n], "not JSON: %s", line);
        (*n)++;
    }
    fclose(f);
    return out;
}

static void run_rs(rs_result *res, world *w, const rs_options *o, const char *out_path) {
    FILE *f = fopen(out_path, "w");
    cr_assert(f);
    pt_error err = {0};
    cr_assert_eq(rejection_sample(res, &w->m, w->tok, &w->set, w->ds, o, f, NULL, &err), PT_OK, "%s", err.msg);
    fclose(f);
}

static rs_options rs_defaults(void) {
    rs_options o = {.gen = eval_options_default()};
    o.gen.num_samples = 8;
    o.gen.sampling.temperature = 1.0f;
    o.gen.max_prompt_length = 16;
    o.gen.max_completion_length = 6;
    o.gen.seed = 5;
    return o;
}

Test(rejection, threshold_cap_dedupe_and_format) {
    world w;
    world_init(&w, PROMPTS);
    char out[400];
    snprintf(out, sizeof out, "%s/rs.jsonl", w.dir);
    rs_options o = rs_defaults();
    o.use_threshold = true;
    o.threshold = 1.0;
    o.max_per_prompt = 3;
    rs_result r;
    run_rs(&r, &w, &o, out);
    int n = 0;
    cJSON **lines = read_lines(out, &n);
    cr_assert_eq((size_t)n, r.kept);
    cr_assert(n > 0, "nothing passed the threshold: the test needs some");
    cr_assert(r.invalid_utf8 > 0, "this random byte-level model emits invalid UTF-8 that must be left out");
    size_t sum = 0, prompts = 0;
    for (int k = 0; k <= r.n; k++) sum += (size_t)k * r.yield[k], prompts += r.yield[k];
    cr_assert_eq(sum, r.kept);
    cr_assert_eq(prompts, 5);
    cr_assert_eq(r.samples, 40);
    int per_prompt[8] = {0};
    for (int i = 0; i < n; i++) {
        const cJSON *p = cJSON_GetObjectItem(lines[i], "prompt"), *c = cJSON_GetObjectItem(lines[i], "completion"),
                    *ans = cJSON_GetObjectItem(lines[i], "answer");
        cr_assert(p && c && cJSON_IsString(ans), "record %d lacks prompt, completion or the answer column", i);
        const char *text = NULL;
        if (cJSON_IsArray(p)) { /* conversational: [{"role": "assistant", "content": ...}] */
            const cJSON *msg = cJSON_GetArrayItem(c, 0);
            cr_assert(cJSON_IsArray(c) && msg && strcmp(cJSON_GetObjectItem(msg, "role")->valuestring, "assistant") == 0);
            text = cJSON_GetObjectItem(msg, "content")->valuestring;
            per_prompt[4]++;
        } else {
            cr_assert(cJSON_IsString(c));
            text = c->valuestring;
            cr_assert_str_neq(text, "old", "the input's completion column must be replaced");
            const char *ps = p->valuestring;
            per_prompt[strcmp(ps, "The answer is") == 0 ? 0 : strcmp(ps, "Once upon a time") == 0 ? 1
                       : strcmp(ps, "Add 2 and 2:") == 0 ? 2 : 3]++;
        }
        cr_assert(total_of(text) >= 1.0, "kept '%s' scores %g < 1", text, total_of(text));
        for (int j = 0; j < i; j++) {
            const cJSON *pj = cJSON_GetObjectItem(lines[j], "prompt"), *cj = cJSON_GetObjectItem(lines[j], "completion");
            char *a = cJSON_PrintUnformatted(p), *b = cJSON_PrintUnformatted(pj), *x = cJSON_PrintUnformatted(c),
                 *y = cJSON_PrintUnformatted(cj);
            cr_assert(!(strcmp(a, b) == 0 && strcmp(x, y) == 0), "duplicate kept: %s / %s", a, x);
            free(a), free(b), free(x), free(y);
        }
    }
    for (int p = 0; p < 5; p++) cr_assert(per_prompt[p] <= 3, "prompt %d kept %d > max_per_prompt", p, per_prompt[p]);
    for (int i = 0; i < n; i++) cJSON_Delete(lines[i]);
    free(lines);
    rs_result_free(&r);

    /* the output is an SFT dataset */
    dataset *ds = NULL;
    dataset_options dopt;
    dataset_options_default(&dopt);
    dopt.chat_format = "plain";
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, out, w.tok, &dopt, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(dataset_size(ds), (size_t)n);
    dataset_free(ds);
    world_free(&w);
}

typedef struct maxes {
    double max[16];
    int p;
} maxes;

static pt_status take_max(void *ctx, const eval_prompt_view *v, pt_error *err) {
    (void)err;
    maxes *m = ctx;
    double best = -1;
    for (int g = 0; g < v->n; g++)
        if (utf8_valid_prefix(v->text[g], strlen(v->text[g])) == strlen(v->text[g])) best = fmax(best, total_of(v->text[g]));
    m->max[m->p++] = best;
    return PT_OK;
}

Test(rejection, best_of_n_keeps_the_maximum) {
    world w;
    world_init(&w, PROMPTS);
    char out[400];
    snprintf(out, sizeof out, "%s/best.jsonl", w.dir);
    rs_options o = rs_defaults();
    o.best_of_n = true;
    o.max_per_prompt = 1;
    rs_result r;
    run_rs(&r, &w, &o, out);
    /* the same samples again (same seed and streams), to know each prompt's maximum */
    maxes mx = {{0}, 0};
    eval_options eo = o.gen;
    eo.on_prompt = take_max;
    eo.on_prompt_ctx = &mx;
    eval_result er;
    pt_error err = {0};
    cr_assert_eq(eval_policy(&er, &w.m, w.tok, &w.set, w.ds, &eo, &err), PT_OK, "%s", err.msg);
    eval_result_free(&er);
    int n = 0, with = 0;
    cJSON **lines = read_lines(out, &n);
    /* one line per prompt that has a sample with valid UTF-8 (every sample is scored), in order */
    int order[16];
    for (int p = 0; p < mx.p; p++)
        if (mx.max[p] >= 0) order[with++] = p;
    cr_assert_eq(n, with, "best of N keeps one sample per prompt with a candidate: %d lines, %d prompts", n, with);
    cr_assert(with >= 3, "too few prompts with a valid sample (%d) for the test to mean much", with);
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetObjectItem(lines[i], "completion");
        const char *text = cJSON_IsArray(c) ? cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "content")->valuestring
                                            : c->valuestring;
        cr_assert(total_of(text) == mx.max[order[i]], "prompt %d: kept '%s' scoring %g, the best of N scored %g",
                  order[i], text, total_of(text), mx.max[order[i]]);
        cJSON_Delete(lines[i]);
    }
    free(lines);
    rs_result_free(&r);
    world_free(&w);
}
