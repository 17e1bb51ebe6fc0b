/* test_grpo_run.c — a whole GRPO run (grpo/run.h) on a tiny model, a tiny prompt JSONL and two
 * regex rewards, all written into a temporary folder.
 *
 * What carries weight:
 *   - the run store: each of the 4 steps has its metrics and exactly G × P rollouts; every
 *     rollout's per-reward scores are recomputed here from its stored completion text (count of
 *     'e' bytes; 1 when an 'a' occurs), its total from the weights of the rewards file, each
 *     step's `reward` metric from the rollout rows, and each group's advantages from its totals
 *     ((r − mean)/(sample std + 1e-4), TRL's formula, written out here) — a rollout logged under
 *     the wrong group, sample or step, a wrong weight or a wrong metric fails. The final folder
 *     holds the model and the tokenizer; checkpoints step-2 and step-4 exist. Prompt ordinals (the
 *     rollout streams' keys) are 0..7 over the 8 draws of the run, each once, across epochs.
 *   - resume: a run stopped after step 3 (its newest checkpoint is step 2; step 3 is in run.db
 *     and must be redone) and resumed with `resume: auto` to step 4 ends with final weights that
 *     are byte-identical to an uninterrupted 4-step run, with the same loss and reward at every
 *     step and G × P rollouts at step 3 (not twice as many). The run uses β > 0 (the reference
 *     model must be reloaded from the starting model), μ = 2, warm-up and linear decay, two
 *     micro-batches. A run with another seed must end with different weights, so the byte
 *     comparison can see a difference.
 *   - bad input: a rewards file that is not JSON, or names an unknown reward type, gives an
 *     error naming the file (and line:column for JSON) and creates no run folder; an existing
 *     empty --out stays empty.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/run_store.h"
#include "grpo/run.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

#define G_ 4
#define P_ 2

typedef struct world {
    char dir[256];
    char model[320], data[320], rewards[320];
} world;

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void tiny_config(model_config *c, int vocab) {
    test_small_policy_config(c, vocab); /* initializer_range 0.3: completions and rewards vary */
    c->num_nextn_predict_layers = 1;
    c->posttrain_bias_update_speed = 0.01;
}

static void world_init(world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "grpo-run");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    snprintf(w->data, sizeof w->data, "%s/prompts.jsonl", w->dir);
    snprintf(w->rewards, sizeof w->rewards, "%s/rewards.json", w->dir);
    model_config c;
    tiny_config(&c, test_fixture_vocab_size());
    test_save_policy(w->model, &c, 5);
    model_config_free(&c);
    write_file(w->data, "{\"prompt\": \"The answer is\", \"answer\": \"4\"}\n"
                        "{\"prompt\": \"Once upon a time\", \"answer\": \"x\"}\n"
                        "{\"prompt\": \"Add 2 and 2:\", \"answer\": \"4\"}\n");
    write_file(w->rewards, "[{\"name\": \"e_count\", \"type\": \"regex\", \"pattern\": \"e\", \"mode\": \"count\"},\n"
                           " {\"name\": \"has_a\", \"type\": \"regex\", \"pattern\": \"a\", \"weight\": 0.5}]\n");
}

static void world_free(world *w) { test_rmtree(w->dir); }

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The test run's config; extra is more JSON members (may be ""). */
static void make_config(config *cfg, const world *w, const char *out, const char *extra) {
    char json[4096];
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"rewards\": \"%s\", \"out\": \"%s\", \"num_generations\": %d, "
             "\"per_device_train_batch_size\": %d, \"max_prompt_length\": 12, \"max_completion_length\": 8, "
             "\"max_steps\": 4, \"save_steps\": 2, \"learning_rate\": 0.01, \"warmup_steps\": 1, "
             "\"lr_scheduler_type\": \"linear\", \"beta\": 0.04, \"num_iterations\": 2, "
             "\"gradient_accumulation_steps\": 2, \"seed\": 7, \"logging_steps\": 1%s%s}",
             w->model, w->data, w->rewards, out, G_, P_, extra[0] ? ", " : "", extra);
    pt_error err = {0};
    cr_assert_eq(config_init(cfg, &GRPO_SCHEMA, 1, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_load_string(cfg, json, "test.json", &err), PT_OK, "%s\n%s", err.msg, json);
}

static pt_status run(grpo_result *res, const world *w, const char *out, const char *extra, const grpo_run_hooks *hooks,
                     pt_error *err) {
    config cfg;
    make_config(&cfg, w, out, extra);
    grpo_io io = {.log = NULL, .progress = NULL, .hooks = hooks};
    pt_status st = grpo_run(res, &cfg, &io, err);
    config_free(&cfg);
    return st;
}

static sqlite3 *open_db(const char *run_dir) {
    char p[512];
    snprintf(p, sizeof p, "%s/run.db", run_dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "%s", p);
    return db;
}

static double metric(sqlite3 *db, int64_t step, const char *name) {
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT value FROM metrics WHERE step = ?1 AND name = ?2", -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, step);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "metric %s of step %lld is missing", name, (long long)step);
    double v = sqlite3_column_type(q, 0) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 0);
    sqlite3_finalize(q);
    return v;
}

static int64_t count_rollouts(sqlite3 *db, int64_t step) {
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM rollouts WHERE step = ?1", -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, step);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* A JSON number member of the rewards object. */
static double json_score(const char *json, const char *name) {
    cJSON *o = cJSON_Parse(json);
    cr_assert(o, "rewards column is not JSON: %s", json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(v && cJSON_IsNumber(v), "rewards column %s has no number '%s'", json, name);
    double d = v->valuedouble;
    cJSON_Delete(o);
    return d;
}

/* Checks one step's rollouts against the completion texts and the advantage formula. */
static void check_step_rollouts(sqlite3 *db, int64_t step) {
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT prompt_index, sample_index, completion, rewards, reward, advantage, length, "
                                    "finish_reason FROM rollouts WHERE step = ?1 ORDER BY prompt_index, sample_index",
                                    -1, &q, NULL),
                 SQLITE_OK);
    sqlite3_bind_int64(q, 1, step);
    double r[P_ * G_], adv[P_ * G_];
    int64_t pidx[P_ * G_];
    int n = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        cr_assert(n < P_ * G_, "step %lld has more than %d rollouts", (long long)step, P_ * G_);
        pidx[n] = sqlite3_column_int64(q, 0);
        cr_assert_eq(sqlite3_column_int64(q, 1), n % G_, "step %lld: sample index", (long long)step);
        const char *text = (const char *)sqlite3_column_text(q, 2);
        const char *rj = (const char *)sqlite3_column_text(q, 3);
        cr_assert(text && rj);
        double e = 0, a = strchr(text, 'a') ? 1.0 : 0.0;
        for (const char *s = text; *s; s++) e += *s == 'e';
        cr_assert_eq(json_score(rj, "e_count"), e, "step %lld: e_count of '%s' is %g, counted %g", (long long)step,
                     text, json_score(rj, "e_count"), e);
        cr_assert_eq(json_score(rj, "has_a"), a, "step %lld: has_a of '%s'", (long long)step, text);
        r[n] = sqlite3_column_double(q, 4);
        cr_assert(fabs(r[n] - (e + 0.5 * a)) < 1e-12, "step %lld: total %g, expected %g", (long long)step, r[n], e + 0.5 * a);
        adv[n] = sqlite3_column_double(q, 5);
        int64_t len = sqlite3_column_int64(q, 6);
        const char *fin = (const char *)sqlite3_column_text(q, 7);
        cr_assert(len >= 1 && len <= 8, "length %lld", (long long)len);
        cr_assert(fin && (strcmp(fin, "stop") == 0 || strcmp(fin, "length") == 0), "finish %s", fin ? fin : "(null)");
        cr_assert(strcmp(fin, "length") != 0 || len == 8, "a 'length' finish must have 8 tokens, got %lld", (long long)len);
        n++;
    }
    sqlite3_finalize(q);
    cr_assert_eq(n, P_ * G_, "step %lld has %d rollouts, expected %d", (long long)step, n, P_ * G_);
    double total = 0;
    for (int p = 0; p < P_; p++) {
        double mean = 0, var = 0;
        for (int g = 0; g < G_; g++) {
            cr_assert_eq(pidx[p * G_ + g], pidx[p * G_], "group %d mixes prompts", p);
            mean += r[p * G_ + g] / G_;
        }
        for (int g = 0; g < G_; g++) var += (r[p * G_ + g] - mean) * (r[p * G_ + g] - mean) / (G_ - 1);
        double sd = sqrt(var);
        for (int g = 0; g < G_; g++) {
            double want = sd > 1e-8 ? (r[p * G_ + g] - mean) / (sd + 1e-4) : 0.0;
            cr_assert(fabs(adv[p * G_ + g] - want) < 1e-5 * (1 + fabs(want)), "step %lld group %d sample %d: advantage "
                      "%g, expected %g", (long long)step, p, g, adv[p * G_ + g], want);
        }
        total += mean / P_;
    }
    if (P_ > 1) cr_assert_neq(pidx[0], pidx[G_], "step %lld: both groups have the same prompt ordinal", (long long)step);
    double m = metric(db, step, "reward");
    cr_assert(fabs(m - total) < 1e-9, "step %lld: reward metric %g, rollouts say %g", (long long)step, m, total);
}

Test(grpo_run, store_holds_every_step_and_rollout) {
    world w;
    world_init(&w);
    char out[512];
    snprintf(out, sizeof out, "%s/run", w.dir);
    grpo_result res;
    pt_error err = {0};
    cr_assert_eq(run(&res, &w, out, "", NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.end_step, 4);
    sqlite3 *db = open_db(out);
    double varied = 0;
    for (int64_t s = 1; s <= 4; s++) {
        cr_assert_eq(count_rollouts(db, s), P_ * G_, "step %lld", (long long)s);
        check_step_rollouts(db, s);
        static const char *const NAMES[] = {"loss", "kl", "entropy", "clip_ratio/region_mean", "completions/mean_length",
                                            "step_time", "num_tokens", "learning_rate", "rewards/e_count/mean",
                                            "rewards/has_a/mean", "frac_reward_zero_std", "grad_norm"};
        for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
            cr_assert(isfinite(metric(db, s, NAMES[i])), "step %lld: %s is not finite", (long long)s, NAMES[i]);
        varied += metric(db, s, "reward_std");
    }
    cr_assert(varied > 0, "every group had equal rewards: the rollout checks above saw only zero advantages");
    cr_assert(metric(db, 4, "num_tokens") > metric(db, 1, "num_tokens"), "num_tokens must be cumulative");
    cr_assert_eq(count_rollouts(db, 5), 0);
    /* prompt ordinals key the rollout streams: one per draw over the run (epoch·N + position) */
    sqlite3_stmt *q;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(DISTINCT prompt_index), MIN(prompt_index), MAX(prompt_index) "
                                        "FROM rollouts", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert(sqlite3_column_int64(q, 0) == 4 * P_ && sqlite3_column_int64(q, 1) == 0 &&
              sqlite3_column_int64(q, 2) == 4 * P_ - 1, "prompt ordinals: %lld distinct in %lld..%lld, expected 0..%d",
              (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 1),
              (long long)sqlite3_column_int64(q, 2), 4 * P_ - 1);
    sqlite3_finalize(q);
    sqlite3_close(db);
    char p[640];
    static const char *const FILES[] = {"final/config.json", "final/model.safetensors", "final/tokenizer.json",
                                        "final/tokenizer_config.json", "checkpoints/step-2", "checkpoints/step-4"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out, FILES[i]);
        cr_assert(exists(p), "%s is missing", p);
    }
    /* a second run into the same folder without resume is refused */
    cr_assert_neq(run(&res, &w, out, "", NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "already holds a run"), "%s", err.msg);
    world_free(&w);
}

/* Dynamic sampling with a reward no completion earns: every group drawn has equal rewards and is
 * dropped, and the run store still holds all of them (2 draws of P prompts a step), without an
 * advantage, with the reward metrics counting them. */
Test(grpo_run, dynamic_sampling_stores_the_dropped_groups) {
    world w;
    world_init(&w);
    write_file(w.rewards, "[{\"name\": \"never\", \"type\": \"regex\", \"pattern\": \"QQQQQQQQQQ\"}]\n");
    char out[400];
    snprintf(out, sizeof out, "%s/run", w.dir);
    grpo_result res;
    pt_error err = {0};
    cr_assert_eq(run(&res, &w, out, "\"dynamic_sampling\": true, \"max_resample_draws\": 1", NULL, &err), PT_OK, "%s",
                 err.msg);
    sqlite3 *db = open_db(out);
    for (int64_t s = 1; s <= 4; s++) {
        cr_assert_eq(metric(db, s, "groups"), 0);
        cr_assert_eq(metric(db, s, "prompts_drawn"), 2 * P_);
        cr_assert_eq(metric(db, s, "frac_reward_zero_std"), 1.0);
        cr_assert_eq(metric(db, s, "reward"), 0.0);
        cr_assert_eq(count_rollouts(db, s), 2 * P_ * G_, "step %lld", (long long)s);
        sqlite3_stmt *q;
        cr_assert_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM rollouts WHERE step = ?1 AND advantage IS NULL "
                                            "AND reward = 0 AND rewards LIKE '%never%'",
                                        -1, &q, NULL),
                     SQLITE_OK);
        sqlite3_bind_int64(q, 1, s);
        cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int64(q, 0), 2 * P_ * G_, "step %lld: dropped rollouts need no advantage",
                     (long long)s);
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    world_free(&w);
}

static bool stop_after_3(void *ctx, const grpo_step_stats *s) {
    (void)ctx;
    return s->step < 3;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_slurp(a, &na), *y = test_slurp(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

Test(grpo_run, resume_is_bit_identical) {
    world w;
    world_init(&w);
    char a[512], b[512], c[512], fa[640], fb[640], fc[640];
    snprintf(a, sizeof a, "%s/straight", w.dir);
    snprintf(b, sizeof b, "%s/resumed", w.dir);
    snprintf(c, sizeof c, "%s/other-seed", w.dir);
    grpo_result res;
    pt_error err = {0};
    cr_assert_eq(run(&res, &w, a, "", NULL, &err), PT_OK, "%s", err.msg);
    grpo_run_hooks stop = {.ctx = NULL, .after_step = stop_after_3};
    cr_assert_eq(run(&res, &w, b, "", &stop, &err), PT_OK, "%s", err.msg);
    cr_assert(res.stopped && res.end_step == 3);
    snprintf(fb, sizeof fb, "%s/final", b);
    cr_assert(!exists(fb), "a stopped run wrote final/");
    cr_assert_eq(run(&res, &w, b, "\"resume\": \"auto\"", NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 2, "resumed from step %lld, expected the step-2 checkpoint", (long long)res.start_step);
    cr_assert_eq(res.end_step, 4);
    snprintf(fa, sizeof fa, "%s/final/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/final/model.safetensors", b);
    cr_assert(same_file(fa, fb), "the resumed run's final weights differ from the straight run's");
    sqlite3 *da = open_db(a), *db = open_db(b);
    for (int64_t s = 1; s <= 4; s++) {
        static const char *const NAMES[] = {"loss", "reward", "kl", "grad_norm", "num_tokens", "learning_rate"};
        for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
            double x = metric(da, s, NAMES[i]), y = metric(db, s, NAMES[i]);
            cr_assert(x == y || (isnan(x) && isnan(y)), "step %lld %s: %.17g straight vs %.17g resumed", (long long)s,
                      NAMES[i], x, y);
        }
        cr_assert_eq(count_rollouts(db, s), P_ * G_, "step %lld of the resumed run has %lld rollouts", (long long)s,
                     (long long)count_rollouts(db, s));
    }
    sqlite3_close(da), sqlite3_close(db);
    /* the comparison can see a difference */
    config cfg;
    make_config(&cfg, &w, c, "");
    char *args[] = {"--seed", "8"};
    cr_assert_eq(config_apply_args(&cfg, 2, args, &err), PT_OK, "%s", err.msg);
    grpo_io io = {0};
    cr_assert_eq(grpo_run(&res, &cfg, &io, &err), PT_OK, "%s", err.msg);
    config_free(&cfg);
    snprintf(fc, sizeof fc, "%s/final/model.safetensors", c);
    cr_assert(!same_file(fa, fc), "another seed gave the same final weights");
    world_free(&w);
}

/* The folder holds nothing (or does not exist). */
static bool empty_or_missing(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' 2>/dev/null)\"", dir);
    return system(cmd) == 0;
}

Test(grpo_run, bad_rewards_file_creates_nothing) {
    world w;
    world_init(&w);
    char out[512];
    snprintf(out, sizeof out, "%s/run", w.dir);
    grpo_result res;
    pt_error err = {0};
    write_file(w.rewards, "[{\"name\": \"e\", \"type\": \"regex\",\n  \"pattern\": \"e\",]\n");
    cr_assert_eq(run(&res, &w, out, "", NULL, &err), PT_ERR_CONFIG, "%s", err.msg);
    cr_assert(strstr(err.msg, w.rewards) && strstr(err.msg, ":2:"), "the error must name the file and line 2: %s", err.msg);
    cr_assert(!exists(out), "a failed start created %s", out);

    write_file(w.rewards, "[{\"name\": \"e\", \"type\": \"regexp\", \"pattern\": \"e\"}]\n");
    cr_assert_neq(run(&res, &w, out, "", NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, w.rewards) && strstr(err.msg, "regexp"), "the error must name the file and the type: %s",
              err.msg);
    cr_assert(!exists(out), "a failed start created %s", out);

    write_file(w.rewards, "{\"name\": \"e\", \"type\": \"regex\", \"pattern\": \"e\"}\n");
    cr_assert_eq(mkdir(out, 0755), 0);
    cr_assert_eq(run(&res, &w, out, "", NULL, &err), PT_ERR_CONFIG, "%s", err.msg);
    cr_assert(strstr(err.msg, "array"), "%s", err.msg);
    cr_assert(empty_or_missing(out), "a failed start wrote into the existing %s", out);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.json", w.dir);
    config cfg;
    make_config(&cfg, &w, out, "");
    char *args[] = {"--rewards", missing};
    cr_assert_eq(config_apply_args(&cfg, 2, args, &err), PT_OK, "%s", err.msg);
    grpo_io io = {0};
    cr_assert_neq(grpo_run(&res, &cfg, &io, &err), PT_OK);
    cr_assert(strstr(err.msg, missing), "%s", err.msg);
    config_free(&cfg);
    cr_assert(empty_or_missing(out), "a failed start wrote into the existing %s", out);
    world_free(&w);
}

/* A reward plugin process that crashes is restarted, and the run goes on with every rollout
 * scored. The plugin (a `subprocess` reward: a shell script speaking the JSON-lines protocol)
 * counts its requests in a file and kills itself with SIGSEGV on every odd one before replying; the
 * reward resends that batch to a fresh process, which answers. Also: eval_data puts eval/accuracy
 * and eval/mean_reward into run.db before the first step, at eval_steps and after the last. */
Test(grpo_run, crashing_plugin_is_restarted_and_eval_is_logged) {
    world w;
    world_init(&w);
    char script[400], counter[400], out[400], rewards[1200];
    snprintf(script, sizeof script, "%s/plugin.sh", w.dir);
    snprintf(counter, sizeof counter, "%s/calls", w.dir);
    snprintf(out, sizeof out, "%s/run", w.dir);
    char body[1400];
    snprintf(body, sizeof body,
             "#!/bin/sh\n"
             "while read -r line; do\n"
             "  c=$(cat '%s' 2>/dev/null || echo 0); c=$((c + 1)); echo $c > '%s'\n"
             "  if [ $((c %% 2)) -eq 1 ]; then kill -SEGV $$; fi\n"
             "  n=$(printf '%%s' \"$line\" | grep -o '\"prompt\"' | wc -l); s=''; i=0\n"
             "  while [ $i -lt $n ]; do s=\"$s${s:+,}1\"; i=$((i + 1)); done\n"
             "  printf '{\"scores\": [%%s]}\\n' \"$s\"\n"
             "done\n",
             counter, counter);
    write_file(script, body);
    cr_assert_eq(chmod(script, 0755), 0);
    snprintf(rewards, sizeof rewards,
             "[{\"name\": \"e_count\", \"type\": \"regex\", \"pattern\": \"e\", \"mode\": \"count\"},\n"
             " {\"name\": \"plugin\", \"type\": \"subprocess\", \"command\": [\"%s\"], \"timeout\": 20}]\n",
             script);
    write_file(w.rewards, rewards);
    grpo_result res;
    pt_error err = {0};
    char extra[700];
    snprintf(extra, sizeof extra, "\"eval_data\": \"%s\", \"eval_steps\": 2", w.data);
    cr_assert_eq(run(&res, &w, out, extra, NULL, &err), PT_OK, "%s", err.msg);
    sqlite3 *db = open_db(out);
    for (int64_t step = 1; step <= 4; step++) {
        cr_assert_eq(metric(db, step, "masked"), 0.0, "step %lld: every rollout must be scored", (long long)step);
        cr_assert_eq(metric(db, step, "rewards/plugin/mean"), 1.0, "step %lld", (long long)step);
    }
    for (int64_t step = 0; step <= 4; step += 2) {
        const double acc = metric(db, step, "eval/accuracy"), mr = metric(db, step, "eval/mean_reward");
        cr_assert(acc >= 0 && acc <= 1 && isfinite(mr), "step %lld: eval/accuracy %g, eval/mean_reward %g",
                  (long long)step, acc, mr);
        cr_assert(mr >= 1.0, "every held-out completion gets the plugin's 1 (mean reward %g)", mr);
    }
    sqlite3_close(db);
    FILE *f = fopen(counter, "r");
    int calls = 0;
    cr_assert(f && fscanf(f, "%d", &calls) == 1);
    fclose(f);
    /* 4 steps plus 3 evaluations, each batch sent twice (a crash, then a fresh process) */
    cr_assert(calls >= 2 * 7, "the plugin saw %d requests; every batch should have needed a restart", calls);
    world_free(&w);
}

/* Killed for real: a child process runs the GRPO run and SIGKILLs itself right after step 3 is
 * committed (its newest checkpoint is step 2), with no chance to clean up; `resume: auto` in
 * this process then finishes the run, and its final weights and every step's metrics equal an
 * uninterrupted run's. */
static bool kill_after_3(void *ctx, const grpo_step_stats *s) {
    (void)ctx;
    if (s->step == 3) raise(SIGKILL);
    return true;
}

Test(grpo_run, resume_after_sigkill_is_bit_identical) {
    world w;
    world_init(&w);
    char a[512], b[512], fa[640], fb[640];
    snprintf(a, sizeof a, "%s/straight", w.dir);
    snprintf(b, sizeof b, "%s/killed", w.dir);
    grpo_result res;
    pt_error err = {0};
    cr_assert_eq(run(&res, &w, a, "", NULL, &err), PT_OK, "%s", err.msg);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        grpo_run_hooks hk = {.ctx = NULL, .after_step = kill_after_3};
        grpo_result r;
        pt_error e = {0};
        run(&r, &w, b, "", &hk, &e);
        _exit(3); /* not reached: the hook kills the process */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was not killed by SIGKILL (status %d)",
              status);
    cr_assert_eq(run(&res, &w, b, "\"resume\": \"auto\"", NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 2);
    snprintf(fa, sizeof fa, "%s/final/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/final/model.safetensors", b);
    cr_assert(same_file(fa, fb), "the run resumed after SIGKILL ends with other weights than the straight run");
    sqlite3 *da = open_db(a), *db = open_db(b);
    for (int64_t s = 1; s <= 4; s++) {
        static const char *const NAMES[] = {"loss", "reward", "kl", "grad_norm", "entropy"};
        for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
            double x = metric(da, s, NAMES[i]), y = metric(db, s, NAMES[i]);
            cr_assert(x == y || (isnan(x) && isnan(y)), "step %lld %s: %.17g vs %.17g", (long long)s, NAMES[i], x, y);
        }
        cr_assert_eq(count_rollouts(db, s), P_ * G_);
    }
    sqlite3_close(da), sqlite3_close(db);
    world_free(&w);
}
