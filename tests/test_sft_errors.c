/* test_sft_errors.c — bad configs and bad paths stop `posttrain sft` with a precise message and
 * write nothing.
 *
 * Each case starts from a valid run config, changes one thing, and checks three facts: the
 * status, the message (it must name the key, file, line or path at fault and, where there is
 * one, the fix), and the file system — a run folder that did not exist is still absent, and an
 * existing run folder keeps exactly its files and bytes (run.db included). A control run with the
 * valid config succeeds, so each failure is due to the one change.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "sft/sft_config.h"
#include "sft/sft_files.h"
#include "sft/sft_trainer.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

typedef struct err_world {
    char dir[256];
    char model[320], small_vocab[320], data[1024];
} err_world;

static void write_model(const char *dir, int vocab, int max_pos) {
    model_config c;
    model_config_init(&c);
    c.vocab_size = vocab;
    c.hidden_size = 16;
    c.intermediate_size = 32;
    c.moe_intermediate_size = 8;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 2;
    c.n_shared_experts = 1;
    c.n_routed_experts = 4;
    c.routed_scaling_factor = 1.0;
    c.kv_lora_rank = 8;
    c.q_lora_rank = 0;
    c.qk_rope_head_dim = 4;
    c.qk_nope_head_dim = 4;
    c.v_head_dim = 4;
    c.n_group = 1;
    c.topk_group = 1;
    c.num_experts_per_tok = 2;
    c.first_k_dense_replace = 1;
    c.max_position_embeddings = max_pos;
    c.num_nextn_predict_layers = 0;
    test_save_policy(dir, &c, 3);
    model_config_free(&c);
}

static void world_init(err_world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "sft-err");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    snprintf(w->small_vocab, sizeof w->small_vocab, "%s/small-vocab", w->dir);
    write_model(w->model, test_fixture_vocab_size(), 64);
    write_model(w->small_vocab, 100, 64);
    fixture_path(w->data, sizeof w->data, "datasets/sft_small.jsonl");
}

static void world_free(err_world *w) { test_rmtree(w->dir); }

/* The valid base config for run folder `out`, then `extra` (JSON members, may be "") on top. */
static pt_status run_with(pt_error *err, const err_world *w, const char *out, const char *extra) {
    char base[4096], over[4096];
    snprintf(base, sizeof base,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s\", \"max_steps\": 2,"
             " \"per_device_train_batch_size\": 2, \"max_length\": 48, \"learning_rate\": 0.001, \"save_steps\": 1}",
             w->model, w->data, out);
    snprintf(over, sizeof over, "{%s}", extra);
    config cfg;
    cr_assert_eq(config_init(&cfg, &SFT_SCHEMA, 1, err), PT_OK, "%s", err->msg);
    cr_assert_eq(config_load_string(&cfg, base, "base.json", err), PT_OK, "%s", err->msg);
    cr_assert_eq(config_load_string(&cfg, over, "run.json", err), PT_OK, "%s: %s", over, err->msg);
    sft_result res;
    sft_io io = {0};
    pt_status st = sft_run(&res, &cfg, &io, err);
    config_free(&cfg);
    return st;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Fails with `status`, a message holding every non-NULL part, and no `out` folder made. */
static void expect_fail(const err_world *w, const char *extra, pt_status status, const char *part1, const char *part2) {
    char out[512];
    snprintf(out, sizeof out, "%s/run-%d", w->dir, rand());
    pt_error err = {0};
    pt_status st = run_with(&err, w, out, extra);
    cr_assert_eq(st, status, "{%s}: expected %s, got %s: %s", extra, status_name(status), status_name(st), err.msg);
    cr_assert(!part1 || strstr(err.msg, part1), "{%s}: message lacks '%s':\n  %s", extra, part1, err.msg);
    cr_assert(!part2 || strstr(err.msg, part2), "{%s}: message lacks '%s':\n  %s", extra, part2, err.msg);
    cr_assert(!exists(out), "{%s}: the run folder %s must not be created", extra, out);
    cr_log_info("%s", err.msg);
}

Test(sft_errors, bad_values_name_the_key_and_create_nothing, .timeout = 30) {
    err_world w;
    world_init(&w);
    expect_fail(&w, "\"learning_rate\": -1", PT_ERR_CONFIG, "'learning_rate' (from run.json:1)", "> 0");
    expect_fail(&w, "\"lr_scheduler_type\": \"cosin\"", PT_ERR_CONFIG, "lr_scheduler_type", "cosine");
    expect_fail(&w, "\"per_device_train_batch_size\": 0", PT_ERR_CONFIG, "per_device_train_batch_size", "got 0");
    expect_fail(&w, "\"max_length\": 1", PT_ERR_CONFIG, "max_length", NULL);
    expect_fail(&w, "\"adam_beta2\": 1.0", PT_ERR_CONFIG, "adam_beta2", NULL);
    expect_fail(&w, "\"gradient_accumulation_steps\": 0", PT_ERR_CONFIG, "gradient_accumulation_steps", NULL);
    expect_fail(&w, "\"packing\": true, \"packing_strategy\": \"best\"", PT_ERR_CONFIG, "packing_strategy", "greedy");
    expect_fail(&w, "\"format\": \"prompt\"", PT_ERR_CONFIG, "format", "not prompt");
    expect_fail(&w, "\"max_steps\": -1, \"num_train_epochs\": 0", PT_ERR_CONFIG, "num_train_epochs", NULL);
    expect_fail(&w, "\"warmup_steps\": 5", PT_ERR_CONFIG, "warmup_steps", "more than the run's 2 steps");
    expect_fail(&w, "\"max_nan_steps\": 0", PT_ERR_CONFIG, "max_nan_steps", NULL);
    expect_fail(&w, "\"model\": null", PT_ERR_CONFIG, "--model is required", NULL);
    /* The model does not fit the data: 48-token rows against 64 positions is fine, 80 is not. */
    expect_fail(&w, "\"max_length\": 80", PT_ERR_CONFIG, "max_position_embeddings 64", "run.json:1");
    /* A tokenizer with more ids than the model has embedding rows. */
    char extra[1024];
    snprintf(extra, sizeof extra, "\"model\": \"%s\"", w.small_vocab);
    expect_fail(&w, extra, PT_ERR_CONFIG, "vocab_size is 100", "posttrain init --tokenizer");
    /* An unknown key is caught when the config is read, with a suggestion. */
    config cfg;
    pt_error err = {0};
    cr_assert_eq(config_init(&cfg, &SFT_SCHEMA, 1, &err), PT_OK);
    cr_assert_eq(config_load_string(&cfg, "{\"lerning_rate\": 1e-4}", "run.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "did you mean 'learning_rate'"), "%s", err.msg);
    config_free(&cfg);
    /* Control: the base config runs. */
    char out[512];
    snprintf(out, sizeof out, "%s/control", w.dir);
    cr_assert_eq(run_with(&err, &w, out, ""), PT_OK, "%s", err.msg);
    world_free(&w);
}

Test(sft_errors, bad_paths_and_data_name_the_file, .timeout = 30) {
    err_world w;
    world_init(&w);
    char extra[2048], p[1024];
    snprintf(extra, sizeof extra, "\"model\": \"%s/nope\"", w.dir);
    expect_fail(&w, extra, PT_ERR_IO, "--model", "/nope");
    snprintf(extra, sizeof extra, "\"data\": \"%s/missing.jsonl\"", w.dir);
    expect_fail(&w, extra, PT_ERR_IO, "--data", "missing.jsonl' does not exist");
    snprintf(extra, sizeof extra, "\"eval_data\": \"%s/missing.jsonl\"", w.dir);
    expect_fail(&w, extra, PT_ERR_IO, "--eval-data", "missing.jsonl");
    /* A malformed line: file and line number (line 2 of bad_lines.jsonl has a wrong type). */
    snprintf(extra, sizeof extra, "\"data\": \"%s\"", fixture_path(p, sizeof p, "datasets/bad_lines.jsonl"));
    expect_fail(&w, extra, PT_ERR_FORMAT, "bad_lines.jsonl:2", NULL);
    /* GRPO prompts are not SFT data. */
    snprintf(extra, sizeof extra, "\"data\": \"%s\"", fixture_path(p, sizeof p, "datasets/grpo.jsonl"));
    expect_fail(&w, extra, PT_ERR_CONFIG, "grpo.jsonl", "SFT needs");
    /* An example longer than a row under truncation "error". */
    expect_fail(&w, "\"truncation\": \"error\", \"max_length\": 16", PT_ERR_FORMAT, "sft_small.jsonl:", NULL);
    /* --out: a missing parent, a file. */
    pt_error err = {0};
    snprintf(p, sizeof p, "%s/no/such/run", w.dir);
    cr_assert_eq(run_with(&err, &w, p, ""), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "parent folder") && strstr(err.msg, "/no/such"), "%s", err.msg);
    snprintf(p, sizeof p, "%s/a-file", w.dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    cr_assert_eq(run_with(&err, &w, p, ""), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "is not a folder"), "%s", err.msg);
    /* --resume pointing at something that is not a checkpoint. */
    snprintf(extra, sizeof extra, "\"resume\": \"%s\"", w.model);
    expect_fail(&w, extra, PT_ERR_FORMAT, "not a complete checkpoint", "model");
    world_free(&w);
}

/* Every file under dir with its size and FNV-1a, sorted, as one string. */
static void snapshot(char *out, size_t cap, const char *dir) {
    out[0] = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -type f -o -type d | sort", dir);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    char line[1024];
    size_t len = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, line);
        uint64_t h = SFT_FNV_OFFSET;
        long size = -1;
        FILE *f = fopen(path, "rb");
        struct stat sb;
        if (f && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            unsigned char buf[4096];
            size_t got;
            size = 0;
            while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
                h = sft_fnv1a64(h, buf, got);
                size += (long)got;
            }
        }
        if (f) fclose(f);
        int n = snprintf(out + len, cap - len, "%s %ld %016llx\n", line, size, (unsigned long long)h);
        cr_assert(n > 0 && (size_t)n < cap - len, "snapshot buffer too small");
        len += (size_t)n;
    }
    pclose(p);
}

Test(sft_errors, existing_run_is_left_as_it_was, .timeout = 30) {
    err_world w;
    world_init(&w);
    char out[512];
    snprintf(out, sizeof out, "%s/run", w.dir);
    pt_error err = {0};
    cr_assert_eq(run_with(&err, &w, out, ""), PT_OK, "%s", err.msg);
    static char before[1 << 16], after[1 << 16];
    snapshot(before, sizeof before, out);
    cr_assert(strstr(before, "checkpoints/step-2/manifest.json") && strstr(before, "final/tokenizer.json"), "%s", before);

    /* No resume: refused, naming the fix. */
    cr_assert_eq(run_with(&err, &w, out, ""), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "already holds a run") && strstr(err.msg, "--resume auto"), "%s", err.msg);
    snapshot(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused start must not touch the run folder");

    /* Resume with another learning rate: the config hash differs. */
    cr_assert_eq(run_with(&err, &w, out, "\"resume\": \"auto\", \"learning_rate\": 0.5"), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "config hash") && strstr(err.msg, "step-2"), "%s", err.msg);
    snapshot(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused resume must not touch the run folder");

    /* Resume with other data: the cursor's fingerprint differs. */
    char extra[2048], p[1024];
    snprintf(extra, sizeof extra, "\"resume\": \"auto\", \"data\": \"%s\"",
             fixture_path(p, sizeof p, "datasets/prompt_completion.jsonl"));
    cr_assert_neq(run_with(&err, &w, out, extra), PT_OK);
    cr_assert(strstr(err.msg, "prompt_completion.jsonl") && strstr(err.msg, "data changed"), "%s", err.msg);
    snapshot(after, sizeof after, out);
    cr_assert_str_eq(after, before, "a refused resume must not touch the run folder");

    /* Control: the same config resumes (nothing left to train) and succeeds. */
    cr_assert_eq(run_with(&err, &w, out, "\"resume\": \"auto\""), PT_OK, "%s", err.msg);
    world_free(&w);
}
