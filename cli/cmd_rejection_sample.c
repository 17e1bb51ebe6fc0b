/* cmd_rejection_sample.c — `posttrain rejection-sample --model DIR --data FILE --rewards
 * REWARDS.json --out FILE.jsonl`: N samples per prompt, scored; the kept ones (threshold or best
 * of N, de-duplicated, capped per prompt) become an SFT dataset (sft/rejection.h). Prints the
 * yield per prompt; with --run-dir every sample also goes into RUN_DIR/run.db. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "datasets/run_store.h"
#include "sft/rejection.h"

static const config_key RS_KEYS[] = {
    {"model", CONFIG_STRING, "null", "model folder to sample from, e.g. RUN_DIR/final"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"data", CONFIG_STRING, "null", "prompts: JSONL {\"prompt\", ...columns the rewards read}"},
    {"rewards", CONFIG_STRING, "null", "rewards file (a JSON array of reward configs)"},
    {"out", CONFIG_STRING, "null", "the SFT dataset to write (JSONL; written to a temporary name, then renamed)"},
    {"run_dir", CONFIG_STRING, "null", "also log every sample and the yield into RUN_DIR/run.db (created when missing)"},
    {"chat_format", CONFIG_STRING, "null", "chat template for conversational prompts: deepseek-v3, deepseek-r1, plain"},
    {"limit", CONFIG_INT, "0", "use the first N prompts only (0: all)"},
    {"num_samples", CONFIG_INT, "8", "samples per prompt (N)"},
    {"temperature", CONFIG_FLOAT, "1.0", "sampling temperature (> 0 when num_samples > 1)"},
    {"top_p", CONFIG_FLOAT, "1.0", "nucleus sampling (1: off)"},
    {"top_k", CONFIG_INT, "0", "top-k sampling (0: off)"},
    {"seed", CONFIG_INT, "0", "sampling seed (sample s of prompt p uses the stream (seed, p, s))"},
    {"max_prompt_length", CONFIG_INT, "512", "prompt tokens kept (the last ones)"},
    {"max_completion_length", CONFIG_INT, "256", "tokens generated per sample at most"},
    {"threshold", CONFIG_FLOAT, "null", "keep samples whose total reward is ≥ this (null: no threshold)"},
    {"best_of_n", CONFIG_BOOL, "false", "keep only the best-scoring sample(s) of each prompt"},
    {"max_per_prompt", CONFIG_INT, "1", "kept samples per prompt at most, after de-duplication (0: no cap)"},
    {"accuracy_reward", CONFIG_STRING, "null", "for the printed accuracy: the reward deciding correctness (default: total)"},
    {"correct_threshold", CONFIG_FLOAT, "1.0", "for the printed accuracy: correct when that score is ≥ this"},
};

static const char SUMMARY[] =
    "Rejection sampling: num_samples completions per prompt from the model, scored by the rewards file; keeps the "
    "samples at or above --threshold and/or the best of N, drops duplicates, keeps at most max_per_prompt per "
    "prompt, and writes them as prompt/completion JSONL for `posttrain sft`. Prints the yield per prompt.\n\n"
    "  posttrain rejection-sample --model DIR --data FILE --rewards REWARDS.json --out rs.jsonl\n"
    "                             [--num_samples 8 --threshold 1.0 --max_per_prompt 1] [--run_dir RUN_DIR]";

static int fail(const pt_error *err) { return cli_fail("rejection-sample", err); }

static void print_yield(const rs_result *r, const char *out) {
    printf("\nrejection sampling: %zu prompts × %d samples = %zu; kept %zu (%.1f%%); dropped %zu duplicate(s) and %zu "
           "sample(s) that are not valid UTF-8\n",
           r->prompts, r->n, r->samples, r->kept, r->samples ? 100.0 * (double)r->kept / (double)r->samples : 0.0,
           r->duplicates, r->invalid_utf8);
    printf("prompts with at least one kept sample: %zu of %zu (%.1f%%); mean reward of all samples %.4f, accuracy "
           "%.2f%%\n",
           r->prompts_kept, r->prompts, r->prompts ? 100.0 * (double)r->prompts_kept / (double)r->prompts : 0.0,
           r->eval.mean_reward, 100.0 * r->eval.accuracy);
    printf("\n| kept per prompt | prompts |\n|----------------:|--------:|\n");
    for (int k = 0; k <= r->n; k++)
        if (r->yield[k]) printf("| %15d | %7zu |\n", k, r->yield[k]);
    printf("\nwrote %s\n", out);
}

static pt_status open_run(run_store **rs, const char *dir, pt_error *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT || mkdir(dir, 0755) != 0)
            PT_FAIL(err, PT_ERR_IO, "--run_dir '%s' cannot be created: %s", dir, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        PT_FAIL(err, PT_ERR_CONFIG, "--run_dir '%s' exists and is not a folder", dir);
    }
    PT_TRY(run_store_open(rs, dir, 0, err));
    pt_status st = run_store_log_run(*rs, "rejection-sample", NULL, 0, err);
    if (st == PT_OK) st = run_store_begin_step(*rs, 0, err);
    if (st != PT_OK) {
        run_store_close(*rs);
        *rs = NULL;
    }
    return st;
}

static pt_status log_yield(run_store *rs, const rs_result *r, const reward_set *rewards, pt_error *err) {
    const char *names[] = {"rs/prompts", "rs/samples", "rs/kept", "rs/duplicates", "rs/invalid_utf8",
                           "rs/prompts_kept", "rs/yield"};
    const double values[] = {(double)r->prompts, (double)r->samples, (double)r->kept, (double)r->duplicates,
                             (double)r->invalid_utf8,
                             (double)r->prompts_kept, r->samples ? (double)r->kept / (double)r->samples : NAN};
    PT_TRY(run_store_log_metrics(rs, names, values, sizeof names / sizeof names[0], err));
    PT_TRY(eval_log_metrics(rs, &r->eval, rewards, "rs", err));
    return run_store_commit_step(rs, err);
}

int cmd_rejection_sample(int argc, char **argv) {
    config cfg;
    int rc = cli_parse(&cfg, (const config_schema[]){{RS_KEYS, sizeof RS_KEYS / sizeof RS_KEYS[0]}}, 1, argc, argv,
                       SUMMARY);
    if (rc) return rc < 0 ? 0 : rc;
    const char *cmd = "rejection-sample";
    const char *model_dir = cli_require(&cfg, cmd, "model"), *data = cli_require(&cfg, cmd, "data"),
               *rewards_path = cli_require(&cfg, cmd, "rewards"), *out_path = cli_require(&cfg, cmd, "out");
    if (!model_dir || !data || !rewards_path || !out_path) {
        config_free(&cfg);
        return 2;
    }
    pt_error err = {0};
    rs_options o = {.gen = eval_options_default()};
    eval_setup su;
    bool have_setup = false;
    FILE *out = NULL;
    run_store *rs = NULL;
    rs_result res = {0};
    char tmp[4200] = "";
    rc = 2;

    long v = config_int(&cfg, "num_samples");
    if (v < 1 || v > 1 << 16) {
        fprintf(stderr, "posttrain %s: --num_samples must be in 1..65536, got %ld\n", cmd, v);
        goto done;
    }
    o.gen.num_samples = (int)v;
    o.gen.sampling.temperature = (float)config_float(&cfg, "temperature");
    o.gen.sampling.top_p = (float)config_float(&cfg, "top_p");
    o.gen.sampling.top_k = (int)config_int(&cfg, "top_k");
    o.gen.seed = (uint64_t)config_int(&cfg, "seed");
    o.gen.max_prompt_length = (int)config_int(&cfg, "max_prompt_length");
    o.gen.max_completion_length = (int)config_int(&cfg, "max_completion_length");
    o.gen.limit = config_int(&cfg, "limit") > 0 ? (size_t)config_int(&cfg, "limit") : 0;
    o.gen.accuracy_reward = config_is_null(&cfg, "accuracy_reward") ? NULL : config_string(&cfg, "accuracy_reward");
    o.gen.correct_threshold = config_float(&cfg, "correct_threshold");
    o.use_threshold = !config_is_null(&cfg, "threshold");
    o.threshold = o.use_threshold ? config_float(&cfg, "threshold") : 0;
    o.best_of_n = config_bool(&cfg, "best_of_n");
    v = config_int(&cfg, "max_per_prompt");
    if (v < 0 || v > 1 << 16) {
        fprintf(stderr, "posttrain %s: --max_per_prompt must be in 0..65536, got %ld\n", cmd, v);
        goto done;
    }
    o.max_per_prompt = (int)v;
    if (!o.use_threshold && !o.best_of_n) {
        fprintf(stderr, "posttrain %s: give --threshold T, --best_of_n true, or both (otherwise every sample is kept)\n",
                cmd);
        goto done;
    }
    if (!(o.gen.sampling.temperature >= 0) || (o.gen.num_samples > 1 && !(o.gen.sampling.temperature > 0))) {
        fprintf(stderr, "posttrain %s: --temperature must be > 0 when num_samples > 1 (greedy samples are identical)\n",
                cmd);
        goto done;
    }
    if (eval_setup_open(&su, model_dir, config_string(&cfg, "tokenizer"), data, rewards_path,
                        config_is_null(&cfg, "chat_format") ? NULL : config_string(&cfg, "chat_format"), o.gen.max_prompt_length,
                        &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    have_setup = true;
    o.gen.eos_ids = su.eos;
    o.gen.n_eos = su.n_eos;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp) {
        fprintf(stderr, "posttrain %s: --out path is too long\n", cmd);
        goto done;
    }
    if (!(out = fopen(tmp, "w"))) {
        fprintf(stderr, "posttrain %s: cannot write '%s': %s\n", cmd, tmp, strerror(errno));
        tmp[0] = '\0';
        rc = 1;
        goto done;
    }
    if (!config_is_null(&cfg, "run_dir") && open_run(&rs, config_string(&cfg, "run_dir"), &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    fprintf(stderr, "rejection-sample: %zu prompts from %s, %d samples each\n",
            o.gen.limit && o.gen.limit < dataset_size(su.ds) ? o.gen.limit : dataset_size(su.ds), data, o.gen.num_samples);
    if (rejection_sample(&res, &su.m, su.tok, &su.rewards, su.ds, &o, out, rs, &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    if (rs && log_yield(rs, &res, &su.rewards, &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    int bad = fflush(out) != 0 || fsync(fileno(out)) != 0;
    bad |= fclose(out) != 0;
    out = NULL;
    if (bad || rename(tmp, out_path) != 0) {
        fprintf(stderr, "posttrain %s: writing '%s' failed: %s\n", cmd, out_path, strerror(errno));
        rc = 1;
        goto done;
    }
    tmp[0] = '\0';
    print_yield(&res, out_path);
    rc = 0;
done:
    if (out) fclose(out);
    if (tmp[0]) unlink(tmp);
    run_store_close(rs);
    rs_result_free(&res);
    if (have_setup) eval_setup_close(&su);
    config_free(&cfg);
    return rc;
}
