/* cmd_eval.c — `posttrain eval --model DIR --data FILE --rewards REWARDS.json`: held-out
 * evaluation (grpo/eval.h): mean reward, accuracy and pass@k, printed as a table; with --out
 * RUN_DIR also written to RUN_DIR/run.db as eval/... metrics at --step, with --output FILE every
 * completion as JSONL. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "datasets/run_store.h"
#include "grpo/eval.h"

static const config_key EVAL_KEYS[] = {
    {"model", CONFIG_STRING, "null", "model folder (config.json, weights, tokenizer.json), e.g. RUN_DIR/final"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"data", CONFIG_STRING, "null", "held-out prompts: JSONL {\"prompt\", ...columns the rewards read}"},
    {"rewards", CONFIG_STRING, "null", "rewards file (a JSON array of reward configs, as for grpo)"},
    {"chat_format", CONFIG_STRING, "null", "chat template for conversational prompts: deepseek-v3, deepseek-r1, plain"},
    {"limit", CONFIG_INT, "0", "evaluate the first N prompts only (0: all)"},
    {"num_samples", CONFIG_INT, "1", "completions per prompt (n; > 1 needs temperature > 0)"},
    {"temperature", CONFIG_FLOAT, "0.0", "sampling temperature; 0 = greedy"},
    {"top_p", CONFIG_FLOAT, "1.0", "nucleus sampling (1: off)"},
    {"top_k", CONFIG_INT, "0", "top-k sampling (0: off)"},
    {"seed", CONFIG_INT, "0", "sampling seed (sample s of prompt p uses the stream (seed, p, s))"},
    {"max_prompt_length", CONFIG_INT, "512", "prompt tokens kept (the last ones)"},
    {"max_completion_length", CONFIG_INT, "256", "tokens generated per completion at most"},
    {"pass_k", CONFIG_STRING, "\"1\"", "pass@k values to report, e.g. \"1,4,8\" (each ≤ num_samples)"},
    {"accuracy_reward", CONFIG_STRING, "null", "the reward whose score decides correctness (default: the weighted total)"},
    {"correct_threshold", CONFIG_FLOAT, "1.0", "a completion is correct when that score is ≥ this"},
    {"output", CONFIG_STRING, "null", "write every completion with its reward to this JSONL file"},
    {"out", CONFIG_STRING, "null", "a run folder: log the eval/* metrics into its run.db (created when missing)"},
    {"step", CONFIG_INT, "-1", "with --out: the step to log at (-1: the run's last step, or 0)"},
    {"metric_prefix", CONFIG_STRING, "\"eval\"", "with --out: metric names are PREFIX/accuracy, PREFIX/pass@k, ..."},
};

static const char SUMMARY[] =
    "Evaluates a model on held-out prompts: num_samples completions per prompt (greedy by default), scored by the "
    "rewards file; prints mean reward, accuracy (the share of completions whose accuracy_reward score is ≥ "
    "correct_threshold) and pass@k (unbiased estimator), and each reward's mean.\n\n"
    "  posttrain eval --model DIR --data FILE --rewards REWARDS.json [--num_samples 8 --temperature 1 --pass_k 1,8]\n"
    "                 [--out RUN_DIR --step N] [--output completions.jsonl]";

static int fail(const pt_error *err) { return cli_fail("eval", err); }

static pt_status log_to_run(const char *dir, int64_t step, const eval_result *r, const reward_set *rewards,
                            const char *prefix, int64_t *logged_at, pt_error *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT || mkdir(dir, 0755) != 0)
            PT_FAIL(err, PT_ERR_IO, "--out '%s' cannot be created: %s", dir, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode)) {
        PT_FAIL(err, PT_ERR_CONFIG, "--out '%s' exists and is not a folder", dir);
    }
    run_store *rs = NULL;
    PT_TRY(run_store_open(&rs, dir, 0, err));
    pt_status st = PT_OK;
    if (step < 0) {
        int64_t last = -1;
        st = run_store_last_step(&last, rs, err);
        step = last < 0 ? 0 : last;
    }
    if (st == PT_OK) st = run_store_begin_step(rs, step, err);
    if (st == PT_OK) {
        st = eval_log_metrics(rs, r, rewards, prefix, err);
        if (st == PT_OK) st = run_store_commit_step(rs, err);
        else {
            pt_error ignored = {0};
            run_store_rollback_step(rs, &ignored);
        }
    }
    run_store_close(rs);
    *logged_at = step;
    return st;
}

static void print_table(const eval_result *r, const reward_set *rewards, const eval_options *o) {
    printf("\n| metric                 |     value |\n|------------------------|----------:|\n");
    printf("| prompts                | %9zu |\n| completions            | %9zu |\n", r->prompts, r->completions);
    printf("| accuracy               | %8.2f%% |\n", 100.0 * r->accuracy);
    for (int j = 0; j < r->n_pass_k; j++)
        if (!isnan(r->pass_at[j])) printf("| pass@%-17d | %8.2f%% |\n", r->pass_k[j], 100.0 * r->pass_at[j]);
    printf("| mean reward            | %9.4f |\n", r->mean_reward);
    for (int k = 0; k < rewards->n; k++) {
        char label[REWARD_NAME_MAX + 8];
        snprintf(label, sizeof label, "  %s", rewards->rewards[k]->name);
        printf("| %-22.22s | %9.4f |\n", label, r->reward_mean[k]);
    }
    printf("| masked (no score)      | %9zu |\n", r->masked);
    printf("| mean length (tokens)   | %9.1f |\n| cut at max length      | %8.2f%% |\n", r->mean_length,
           100.0 * r->clipped_ratio);
    printf("| time                   | %7.1f s |\n| tokens/s               | %9.0f |\n", r->seconds, r->tokens_per_second);
    printf("(%s decoding; correct: %s ≥ %g)\n", o->sampling.temperature > 0 ? "sampled" : "greedy",
           o->accuracy_reward ? o->accuracy_reward : "total reward", o->correct_threshold);
}

int cmd_eval(int argc, char **argv) {
    config cfg;
    int rc = cli_parse(&cfg, (const config_schema[]){{EVAL_KEYS, sizeof EVAL_KEYS / sizeof EVAL_KEYS[0]}}, 1, argc,
                       argv, SUMMARY);
    if (rc) return rc < 0 ? 0 : rc;
    const char *model_dir = cli_require(&cfg, "eval", "model"), *data = cli_require(&cfg, "eval", "data"),
               *rewards_path = cli_require(&cfg, "eval", "rewards");
    if (!model_dir || !data || !rewards_path) {
        config_free(&cfg);
        return 2;
    }
    pt_error err = {0};
    eval_options o = eval_options_default();
    eval_setup su;
    bool have_setup = false;
    FILE *out = NULL;
    eval_result res = {0};
    rc = 2;

    long v = config_int(&cfg, "num_samples");
    if (v < 1 || v > 1 << 16) {
        fprintf(stderr, "posttrain eval: --num_samples must be in 1..65536, got %ld\n", v);
        goto done;
    }
    o.num_samples = (int)v;
    o.sampling.temperature = (float)config_float(&cfg, "temperature");
    o.sampling.top_p = (float)config_float(&cfg, "top_p");
    o.sampling.top_k = (int)config_int(&cfg, "top_k");
    o.seed = (uint64_t)config_int(&cfg, "seed");
    o.max_prompt_length = (int)config_int(&cfg, "max_prompt_length");
    o.max_completion_length = (int)config_int(&cfg, "max_completion_length");
    o.limit = config_int(&cfg, "limit") > 0 ? (size_t)config_int(&cfg, "limit") : 0;
    o.accuracy_reward = config_is_null(&cfg, "accuracy_reward") ? NULL : config_string(&cfg, "accuracy_reward");
    o.correct_threshold = config_float(&cfg, "correct_threshold");
    if (!(o.sampling.temperature >= 0) || !(o.sampling.top_p > 0 && o.sampling.top_p <= 1)) {
        fprintf(stderr, "posttrain eval: --temperature must be ≥ 0 and --top_p in (0, 1]\n");
        goto done;
    }
    if (eval_parse_pass_k(o.pass_k, &o.n_pass_k, config_string(&cfg, "pass_k"), &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    for (int j = 0; j < o.n_pass_k; j++)
        if (o.pass_k[j] > o.num_samples) {
            fprintf(stderr, "posttrain eval: pass@%d needs num_samples ≥ %d (got %d)\n", o.pass_k[j], o.pass_k[j],
                    o.num_samples);
            goto done;
        }
    if (eval_setup_open(&su, model_dir, config_string(&cfg, "tokenizer"), data, rewards_path,
                        config_is_null(&cfg, "chat_format") ? NULL : config_string(&cfg, "chat_format"), o.max_prompt_length,
                        &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    have_setup = true;
    o.eos_ids = su.eos;
    o.n_eos = su.n_eos;
    const char *output = config_is_null(&cfg, "output") ? NULL : config_string(&cfg, "output");
    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "posttrain eval: cannot write --output '%s': %s\n", output, strerror(errno));
        rc = 1;
        goto done;
    }
    o.completions = out;
    fprintf(stderr, "eval: %zu prompts from %s, %d sample(s) each\n",
            o.limit && o.limit < dataset_size(su.ds) ? o.limit : dataset_size(su.ds), data, o.num_samples);
    if (eval_policy(&res, &su.m, su.tok, &su.rewards, su.ds, &o, &err) != PT_OK) {
        rc = fail(&err);
        goto done;
    }
    print_table(&res, &su.rewards, &o);
    rc = 0;
    if (!config_is_null(&cfg, "out")) {
        int64_t at = 0;
        if (log_to_run(config_string(&cfg, "out"), config_int(&cfg, "step"), &res, &su.rewards,
                       config_string(&cfg, "metric_prefix"), &at, &err) != PT_OK)
            rc = fail(&err);
        else
            printf("logged as %s/* at step %lld of %s/run.db\n", config_string(&cfg, "metric_prefix"), (long long)at,
                   config_string(&cfg, "out"));
    }
    if (out && fclose(out) != 0) {
        fprintf(stderr, "posttrain eval: writing --output '%s' failed: %s\n", output, strerror(errno));
        rc = 1;
    }
    out = NULL;
done:
    if (out) fclose(out);
    eval_result_free(&res);
    if (have_setup) eval_setup_close(&su);
    config_free(&cfg);
    return rc;
}
