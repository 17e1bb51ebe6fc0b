/* test_rm_trainer.c — `posttrain rm` (sft/rm_trainer.h) end to end on a tiny model.
 *
 * What carries weight:
 *   - it learns: a synthetic preference task where the chosen completion is the rejected one
 *     with one word (at a random position) replaced by "please" — same length, so only the token
 *     itself tells them apart, and it must travel to the last token through attention. A run of
 *     60 steps raises held-out pairwise accuracy from about chance to ≥ 0.9 and the held-out
 *     loss far below ln 2; the same run with learning rate 1e-9 stays where it started. Flipping
 *     the sign of the Bradley–Terry gradient (break-and-verify) drove held-out accuracy to 0.
 *   - the written folder is a reward model (score.weight, no LM head) that scores fresh pairs of
 *     the task the right way round through reward_model_score_text (the tokenisation the reward
 *     and the server use), and run.db holds the metrics.
 *   - bad records stop the run before anything is written, naming file, line and field.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/run_store.h"
#include "model/checkpoint.h"
#include "model/reward_model.h"
#include "sft/rm_trainer.h"
#include "sft/sft_files.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

typedef struct rm_world {
    char dir[64];
    char model[128];
    char data[128];
} rm_world;

static const char *const WORDS[] = {"the",  "cat",   "dog",  "sun",   "tree",  "blue", "red",
                                    "green", "house", "river", "stone", "bird", "fish", "cloud",
                                    "rain", "wind",  "road", "book",  "door",  "light"};
#define NWORDS ((int)(sizeof WORDS / sizeof WORDS[0]))

/* One pair of the task as prompt / chosen / rejected strings. */
static void make_pair(char *prompt, char *chosen, char *rejected, size_t cap, test_rng *r) {
    int n = 3 + (int)(test_rng_uniform(r) * 4), k = (int)(test_rng_uniform(r) * n);
    snprintf(prompt, cap, "Say: %s %s %s.", WORDS[(int)(test_rng_uniform(r) * NWORDS)],
             WORDS[(int)(test_rng_uniform(r) * NWORDS)], WORDS[(int)(test_rng_uniform(r) * NWORDS)]);
    chosen[0] = rejected[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *w = WORDS[(int)(test_rng_uniform(r) * NWORDS)];
        const char *other = WORDS[(int)(test_rng_uniform(r) * NWORDS)];
        snprintf(chosen + strlen(chosen), cap - strlen(chosen), " %s", i == k ? "please" : w);
        snprintf(rejected + strlen(rejected), cap - strlen(rejected), " %s", i == k ? other : w);
    }
}

static void write_pairs(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    test_rng r;
    test_rng_seed(&r, seed);
    char p[256], c[256], j[256];
    for (int i = 0; i < n; i++) {
        make_pair(p, c, j, sizeof p, &r);
        fprintf(f, "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\"}\n", p, c, j);
    }
    fclose(f);
}

static void world_init(rm_world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "rmt");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    snprintf(w->data, sizeof w->data, "%s/pairs.jsonl", w->dir);
    model_config c;
    model_config_init(&c);
    c.vocab_size = 2048;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.moe_intermediate_size = 16;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 2;
    c.n_shared_experts = 1;
    c.n_routed_experts = 4;
    c.routed_scaling_factor = 1.0;
    c.kv_lora_rank = 16;
    c.q_lora_rank = 0;
    c.qk_rope_head_dim = 8;
    c.qk_nope_head_dim = 8;
    c.v_head_dim = 8;
    c.n_group = 1;
    c.topk_group = 1;
    c.num_experts_per_tok = 2;
    c.first_k_dense_replace = 1;
    c.max_position_embeddings = 256;
    c.initializer_range = 0.05;
    c.bos_token_id = 0;
    c.eos_token_ids[0] = 1;
    c.n_eos_token_ids = 1;
    c.num_nextn_predict_layers = 1;
    test_save_policy(w->model, &c, 11);
    model_config_free(&c);
    write_pairs(w->data, 400, 1);
}

static void world_free(rm_world *w) { test_rmtree(w->dir); }

/* rm_run with the world's paths plus extra JSON members. */
static pt_status run_rm(rm_result *res, const rm_world *w, const char *out, double lr, pt_error *err) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s/%s\", \"eval_fraction\": 0.25, "
             "\"per_device_train_batch_size\": 16, \"max_steps\": 60, \"learning_rate\": %g, \"eval_steps\": 30}",
             w->model, w->data, w->dir, out, lr);
    config cfg;
    cr_assert_eq(config_init(&cfg, &RM_SCHEMA, 1, err), PT_OK, "%s", err->msg);
    cr_assert_eq(config_load_string(&cfg, json, "test", err), PT_OK, "%s", err->msg);
    pt_status st = rm_run(res, &cfg, NULL, err);
    config_free(&cfg);
    return st;
}

Test(rm_trainer, learns_a_preference_and_writes_a_reward_model, .timeout = 300) {
    rm_world w;
    world_init(&w);
    rm_result res, ctl;
    pt_error err = {0};
    cr_assert_eq(run_rm(&res, &w, "run", 1e-3, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.eval_pairs, 100);
    cr_assert_eq(res.train_pairs, 300);
    cr_assert_eq(res.steps, 60);
    cr_log_info("held-out accuracy %.3f -> %.3f, loss %.4f -> %.4f", res.eval_accuracy_start, res.eval_accuracy_end,
                res.eval_loss_start, res.eval_loss_end);
    cr_assert_geq(res.eval_accuracy_end, 0.9, "held-out accuracy %.3f", res.eval_accuracy_end);
    cr_assert_lt(res.eval_loss_end, 0.3, "held-out loss %.4f", res.eval_loss_end);

    /* The control: an optimizer that cannot move leaves the held-out numbers where they were. */
    cr_assert_eq(run_rm(&ctl, &w, "control", 1e-9, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(ctl.eval_accuracy_start, res.eval_accuracy_start, "same seed, same start");
    cr_assert_lt(fabs(ctl.eval_accuracy_end - ctl.eval_accuracy_start), 0.05);
    cr_assert_gt(ctl.eval_loss_end, 0.6);

    /* The folder is a reward model that ranks fresh pairs the right way round. */
    reward_model rm;
    cr_assert_eq(reward_model_load(&rm, res.final_dir, 0, 0, &err), PT_OK, "%s", err.msg);
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, res.final_dir, &err), PT_OK, "%s", err.msg);
    test_rng r;
    test_rng_seed(&r, 777);
    int right = 0;
    char p[256], c[256], j[256];
    for (int i = 0; i < 40; i++) {
        make_pair(p, c, j, sizeof p, &r);
        double sc, sr;
        cr_assert_eq(reward_model_score_text(&sc, &rm, tok, p, c, 1024, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(reward_model_score_text(&sr, &rm, tok, p, j, 1024, &err), PT_OK, "%s", err.msg);
        right += sc > sr;
    }
    cr_assert_geq(right, 36, "%d of 40 fresh pairs ranked right", right);
    tokenizer_free(tok);
    reward_model_free(&rm);

    /* run.db: one row per step and the evaluations at 0, 30 and 60. */
    run_store *rs;
    char run_dir[200];
    snprintf(run_dir, sizeof run_dir, "%s/run", w.dir);
    cr_assert_eq(run_store_open(&rs, run_dir, RUN_STORE_READ_ONLY, &err), PT_OK, "%s", err.msg);
    run_metric_series s;
    cr_assert_eq(run_store_metric_series(&s, rs, "loss", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(s.n, 60);
    run_metric_series_free(&s);
    cr_assert_eq(run_store_metric_series(&s, rs, "eval_accuracy", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.steps[0], 0);
    cr_assert_eq(s.steps[2], 60);
    cr_assert_eq(s.values[2], res.eval_accuracy_end);
    run_metric_series_free(&s);
    run_store_close(rs);

    /* A second run into the same --out is refused. */
    cr_assert_eq(run_rm(&ctl, &w, "run", 1e-3, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "already holds a run"), "%s", err.msg);
    world_free(&w);
}

static void expect_bad(const rm_world *w, const char *lines, const char *want1, const char *want2) {
    FILE *f = fopen(w->data, "w");
    cr_assert(f);
    fputs(lines, f);
    fclose(f);
    rm_result res;
    pt_error err = {0};
    char out[200];
    cr_assert_neq(run_rm(&res, w, "bad", 1e-3, &err), PT_OK, "bad data was accepted: %s", lines);
    cr_assert(strstr(err.msg, want1) && strstr(err.msg, want2), "message '%s' should name '%s' and '%s'", err.msg, want1,
              want2);
    snprintf(out, sizeof out, "%s/bad", w->dir);
    cr_assert(!sft_path_exists(out), "nothing may be written for bad data");
}

Test(rm_trainer, bad_records_name_file_line_and_field) {
    rm_world w;
    world_init(&w);
    const char *ok = "{\"prompt\": \"a\", \"chosen\": \" b\", \"rejected\": \" c\"}\n";
    char text[1024];
    snprintf(text, sizeof text, "%s%s{\"prompt\": \"a\", \"chosen\": \" b\"}\n", ok, ok);
    expect_bad(&w, text, "pairs.jsonl:3", "rejected");
    snprintf(text, sizeof text, "%s{\"prompt\": \"a\", \"chosen\": 7, \"rejected\": \" c\"}\n", ok);
    expect_bad(&w, text, "pairs.jsonl:2", "chosen");
    snprintf(text, sizeof text, "%s{\"prompt\": \"a\", \"chosen\": \" b\", \"rejected\": \" c\"\n", ok);
    expect_bad(&w, text, "pairs.jsonl:2", "JSON");
    expect_bad(&w, "{\"prompt\": \"a\", \"completion\": \" b\"}\n", "pairs.jsonl:1", "preference");
    world_free(&w);
}
