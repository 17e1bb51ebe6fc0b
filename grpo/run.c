/* run.c — a whole GRPO run: options, checks, run folder, step loop, run store, checkpoints,
 * resume and the final model folder (the order and the guarantees are in run.h).
 *
 * As in the SFT run, the work is two phases: prepare() opens, checks and allocates everything and
 * writes nothing; execute() is the only code that touches the run folder, and a failure before its
 * first committed step removes what it created. The config hash stored in checkpoints covers the
 * keys that change what a step computes plus the rewards file's bytes; paths and bookkeeping
 * (logging, checkpoint cadence, log level) are left out so that a moved or re-logged run resumes.
 */
#include "grpo/run.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/progress.h"
#include "core/timer.h"
#include "core/train_state.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "datasets/run_store.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "grpo/eval.h"
#include "rollout/engine.h"
#include "rewards/reward_file.h"
#include "sft/model_export.h"
#include "sft/run_dir.h"
#include "sft/sft_files.h"

#define RUN_PATH 4096

static const config_key GRPO_KEYS[] = {
    /* where things are */
    {"model", CONFIG_STRING, "null", "the starting policy: a Hugging Face folder (config.json, model.safetensors, tokenizer.json)"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"data", CONFIG_STRING, "null",
     "prompts, JSONL {\"prompt\": str|messages, ...columns}; the other columns (answer, target, ...) reach the rewards"},
    {"rewards", CONFIG_STRING, "null",
     "JSON file: an array of reward configs [{\"name\", \"type\", \"weight\", ...params}] (see `posttrain score --help`)"},
    {"out", CONFIG_STRING, "null",
     "run folder (created; its parent must exist): run.db, checkpoints/step-N, final/ (an HF model folder)"},
    {"resume", CONFIG_STRING, "null",
     "continue a run: \"auto\" (the newest complete checkpoint under out/checkpoints, or a fresh start when there is "
     "none) or a checkpoint folder; the continuation is bit-identical to an uninterrupted run"},
    {"allow_config_change", CONFIG_BOOL, "false", "resume even though the training keys or rewards differ from the checkpoint's"},
    /* data */
    {"chat_format", CONFIG_STRING, "null", "chat template for conversational prompts: deepseek-v3, deepseek-r1, plain"},
    {"on_bad_line", CONFIG_STRING, "\"error\"", "a malformed record: error (stop, naming file and line) or skip"},
    {"shuffle", CONFIG_BOOL, "true", "shuffle the prompts each epoch (seeded)"},
    {"seed", CONFIG_INT, "42", "seed of the prompt order and of every rollout (keyed by step, prompt and sample)"},
    /* generation */
    {"num_generations", CONFIG_INT, "8", "completions per prompt (G)"},
    {"max_prompt_length", CONFIG_INT, "512", "prompt tokens kept (the last ones)"},
    {"max_completion_length", CONFIG_INT, "256", "tokens generated per completion at most"},
    {"temperature", CONFIG_FLOAT, "1.0", "sampling temperature (> 0)"},
    {"top_p", CONFIG_FLOAT, "1.0", "nucleus sampling (1: off)"},
    {"top_k", CONFIG_INT, "0", "top-k sampling (0: off)"},
    {"min_p", CONFIG_FLOAT, "0.0", "min-p sampling (0: off)"},
    {"repetition_penalty", CONFIG_FLOAT, "1.0", "repetition penalty over prompt and completion (1: off)"},
    {"speculative", CONFIG_BOOL, "false", "draft with the model's MTP modules while sampling"},
    {"max_live", CONFIG_INT, "0", "sequences decoding at once (0: all of a step's P·G)"},
    /* loss */
    {"beta", CONFIG_FLOAT, "0.0", "k3 KL coefficient against the frozen starting model (0: no reference model)"},
    {"epsilon", CONFIG_FLOAT, "0.2", "lower clip range of the ratio"},
    {"epsilon_high", CONFIG_FLOAT, "null", "upper clip range (DAPO's clip-higher; default: epsilon)"},
    {"num_iterations", CONFIG_INT, "1", "optimizer passes (μ) over each step's rollouts"},
    {"loss_type", CONFIG_STRING, "\"grpo\"", "grpo, bnpo, dapo or dr_grpo"},
    {"scale_rewards", CONFIG_STRING, "\"group\"", "advantage scaling: group, batch or none (Dr. GRPO)"},
    {"importance_sampling_level", CONFIG_STRING, "\"token\"", "token (PPO ratio) or sequence (GSPO)"},
    {"mask_truncated_completions", CONFIG_BOOL, "false", "leave completions cut by max_completion_length out of the loss"},
    {"dynamic_sampling", CONFIG_BOOL, "false", "DAPO: drop groups whose rewards are all equal and draw more prompts"},
    {"max_resample_draws", CONFIG_INT, "4", "dynamic sampling: extra draws per step at most"},
    {"sync_ref_model", CONFIG_BOOL, "false", "mix the policy into the reference model every ref_model_sync_steps"},
    {"ref_model_sync_steps", CONFIG_INT, "512", "steps between reference syncs"},
    {"ref_model_mixup_alpha", CONFIG_FLOAT, "0.6", "ref ← α·policy + (1−α)·ref at a sync"},
    {"aux_loss_scale", CONFIG_FLOAT, "1.0", "weight of the model's MTP and balance losses in the gradient"},
    {"precision", CONFIG_STRING, "\"fp32\"",
     "training GEMMs: fp32, or fp8 (DeepSeek-V3's recipe: E4M3 attention/MLP/expert linears, 1x128 and 128x128 "
     "scales, emulated exactly on the CPU); rollouts and master weights stay fp32"},
    /* optimisation */
    {"learning_rate", CONFIG_FLOAT, "1e-6", "peak learning rate of AdamW"},
    {"lr_scheduler_type", CONFIG_STRING, "\"linear\"", "constant, linear or cosine (after the warm-up)"},
    {"min_lr_ratio", CONFIG_FLOAT, "0.0", "floor of the linear and cosine decay, as a fraction of learning_rate"},
    {"warmup_steps", CONFIG_INT, "0", "optimizer steps of linear warm-up from 0"},
    {"per_device_train_batch_size", CONFIG_INT, "8", "prompts per step (P); a step trains on P·G completions"},
    {"gradient_accumulation_steps", CONFIG_INT, "1", "micro-batches per optimizer step"},
    {"max_steps", CONFIG_INT, "100", "GRPO steps to run"},
    {"max_grad_norm", CONFIG_FLOAT, "1.0", "global gradient-norm clipping (0: off)"},
    {"weight_decay", CONFIG_FLOAT, "0.0", "AdamW decoupled weight decay"},
    {"adam_beta1", CONFIG_FLOAT, "0.9", "AdamW β1"},
    {"adam_beta2", CONFIG_FLOAT, "0.999", "AdamW β2"},
    {"adam_epsilon", CONFIG_FLOAT, "1e-8", "AdamW ε"},
    {"adam_moments", CONFIG_STRING, "\"fp32\"",
     "storage of AdamW's two moments: fp32, or bf16 (2 bytes per parameter each, rounded to nearest-even after "
     "each fp32 update; master weights stay fp32); a checkpoint resumes only with the setting it was written with"},
    /* bookkeeping */
    {"save_steps", CONFIG_INT, "500", "checkpoint every N steps (0: only at the end; the last step always saves)"},
    {"save_total_limit", CONFIG_INT, "0", "checkpoints kept, the newest ones (0: all)"},
    {"logging_steps", CONFIG_INT, "10", "a log line every N steps (every step goes to run.db)"},
    {"max_nan_steps", CONFIG_INT, "3", "non-finite updates are skipped; this many in a row abort the run"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split saved weights into shards above this size"},
    {"save_dtype", CONFIG_STRING, "\"fp32\"",
     "weights of the final/ folder: fp32, or fp8 (DeepSeek's FP8 release format: E4M3 128x128 blocks with "
     "_scale_inv, about a quarter of the bytes); checkpoints stay fp32 for resuming"},
    {"log_level", CONFIG_STRING, "\"info\"", "debug, info, warn or error"},
    /* held-out evaluation during the run (grpo/eval.h) */
    {"eval_data", CONFIG_STRING, "null",
     "held-out prompts (JSONL, like data): evaluated before the first step, every eval_steps and after the last, as "
     "eval/accuracy, eval/mean_reward, eval/pass@k in run.db"},
    {"eval_steps", CONFIG_INT, "0", "evaluate every N steps (0: only before the first and after the last step)"},
    {"eval_limit", CONFIG_INT, "0", "evaluate the first N prompts of eval_data (0: all)"},
    {"eval_num_samples", CONFIG_INT, "1", "completions per held-out prompt (> 1 needs eval_temperature > 0)"},
    {"eval_temperature", CONFIG_FLOAT, "0.0", "sampling temperature of the evaluation (0: greedy)"},
    {"eval_accuracy_reward", CONFIG_STRING, "null", "the reward deciding correctness (default: the weighted total)"},
    {"eval_correct_threshold", CONFIG_FLOAT, "1.0", "a held-out completion is correct when that score is ≥ this"},
};

const config_schema GRPO_SCHEMA = {GRPO_KEYS, sizeof GRPO_KEYS / sizeof GRPO_KEYS[0]};

static const char *const UNHASHED[] = {"model",      "tokenizer",        "data",          "rewards",
                                       "out",        "resume",           "allow_config_change", "save_steps",
                                       "save_total_limit", "logging_steps", "max_nan_steps", "max_shard_bytes",
                                       "log_level",  "eval_data",        "eval_steps",    "eval_limit",
                                       "eval_num_samples", "eval_temperature", "eval_accuracy_reward",
                                       "eval_correct_threshold", "save_dtype"};

/* ---- options ------------------------------------------------------------------------------ */

typedef struct grpo_options {
    const char *model_dir, *tokenizer_path, *data_path, *rewards_path, *out_dir, *resume;
    bool allow_config_change;
    dataset_options data;
    bool shuffle;
    grpo_config g;
    int64_t max_steps, save_steps, logging_steps;
    int save_total_limit;
    size_t max_shard_bytes;
    model_save_dtype save_dtype;  /* weights of final/ (checkpoints are always fp32) */
    const char *eval_path;        /* NULL: no evaluation */
    int64_t eval_steps;
    eval_options eval;
    uint64_t config_hash; /* the math keys; the rewards file is folded in once read */
} grpo_options;

/* Keys added after the first release count only when not at their default: older checkpoints
 * keep their hash (and resume). */
static const char *const HASHED_UNLESS_DEFAULT[] = {"adam_moments"};

static pt_status hash_config(uint64_t *hash, const config *cfg, pt_error *err) {
    return config_hash_except(hash, cfg, UNHASHED, sizeof UNHASHED / sizeof UNHASHED[0], HASHED_UNLESS_DEFAULT,
                              sizeof HASHED_UNLESS_DEFAULT / sizeof HASHED_UNLESS_DEFAULT[0], err);
}

static pt_status options_from_config(grpo_options *o, const config *cfg, pt_error *err) {
    memset(o, 0, sizeof *o);
    PT_TRY(config_required(&o->model_dir, cfg, "model", err));
    PT_TRY(config_required(&o->data_path, cfg, "data", err));
    PT_TRY(config_required(&o->rewards_path, cfg, "rewards", err));
    PT_TRY(config_required(&o->out_dir, cfg, "out", err));
    o->tokenizer_path = config_string(cfg, "tokenizer");
    if (!o->tokenizer_path || !*o->tokenizer_path) o->tokenizer_path = o->model_dir;
    o->resume = config_string(cfg, "resume");
    if (o->resume && !*o->resume) o->resume = NULL;
    if (o->resume && strcmp(o->resume, "auto") != 0 && o->resume[0] == '-')
        return config_bad_key(err, cfg, "resume", "expects \"auto\" or a checkpoint folder, got '%s'", o->resume);
    o->allow_config_change = config_bool(cfg, "allow_config_change");

    int64_t v = 0;
    double d = 0;
    grpo_config *g = &o->g;
    *g = grpo_config_default();
    dataset_options_default(&o->data);
    o->data.format = DATASET_FORMAT_PROMPT;
    o->data.truncation = DATASET_TRUNCATE_LEFT;
    PT_TRY(config_keyed(dataset_on_bad_parse(&o->data.on_bad_line, config_string(cfg, "on_bad_line"), err), err, cfg, "on_bad_line"));
    o->data.chat_format = config_string(cfg, "chat_format");
    o->shuffle = config_bool(cfg, "shuffle");
    g->seed = (uint64_t)config_int(cfg, "seed");

    PT_TRY(config_int_in(&v, cfg, "num_generations", 2, 1 << 16, err));
    g->num_generations = (int)v;
    PT_TRY(config_int_in(&v, cfg, "max_prompt_length", 1, 1 << 20, err));
    g->max_prompt_length = (int)v;
    o->data.max_length = (size_t)v;
    PT_TRY(config_int_in(&v, cfg, "max_completion_length", 1, 1 << 20, err));
    g->max_completion_length = (int)v;
    PT_TRY(config_float_in(&d, cfg, "temperature", 0, 100, false, err));
    if (!(d > 0)) return config_bad_key(err, cfg, "temperature", "must be > 0 for GRPO (the loss needs the sampling policy), got %g", d);
    g->sampling.temperature = (float)d;
    PT_TRY(config_float_in(&d, cfg, "top_p", 0, 1, false, err));
    if (!(d > 0)) return config_bad_key(err, cfg, "top_p", "must be in (0, 1], got %g", d);
    g->sampling.top_p = (float)d;
    PT_TRY(config_int_in(&v, cfg, "top_k", 0, 1 << 30, err));
    g->sampling.top_k = (int)v;
    PT_TRY(config_float_in(&d, cfg, "min_p", 0, 1, false, err));
    g->sampling.min_p = (float)d;
    PT_TRY(config_float_in(&d, cfg, "repetition_penalty", 1e-6, 1e6, false, err));
    g->sampling.repetition_penalty = (float)d;
    g->speculative = config_bool(cfg, "speculative");
    PT_TRY(config_int_in(&v, cfg, "max_live", 0, 1 << 24, err));
    g->max_live = (int)v;

    PT_TRY(config_float_in(&g->beta, cfg, "beta", 0, 1e6, false, err));
    PT_TRY(config_float_in(&g->epsilon, cfg, "epsilon", 0, 0.999999, false, err));
    g->epsilon_high = g->epsilon;
    if (!config_is_null(cfg, "epsilon_high")) PT_TRY(config_float_in(&g->epsilon_high, cfg, "epsilon_high", 0, 1e6, false, err));
    PT_TRY(config_int_in(&v, cfg, "num_iterations", 1, 1 << 16, err));
    g->num_iterations = (int)v;
    PT_TRY(config_keyed(grpo_loss_type_parse(&g->loss_type, config_string(cfg, "loss_type"), err), err, cfg, "loss_type"));
    PT_TRY(config_keyed(grpo_scale_rewards_parse(&g->scale_rewards, config_string(cfg, "scale_rewards"), err), err, cfg,
                 "scale_rewards"));
    PT_TRY(config_keyed(grpo_is_level_parse(&g->importance_sampling_level, config_string(cfg, "importance_sampling_level"), err),
                 err, cfg, "importance_sampling_level"));
    g->mask_truncated_completions = config_bool(cfg, "mask_truncated_completions");
    g->dynamic_sampling = config_bool(cfg, "dynamic_sampling");
    PT_TRY(config_int_in(&v, cfg, "max_resample_draws", 0, 1 << 16, err));
    g->max_dynamic_draws = (int)v;
    g->sync_ref_model = config_bool(cfg, "sync_ref_model");
    PT_TRY(config_int_in(&v, cfg, "ref_model_sync_steps", 1, INT32_MAX, err));
    g->ref_model_sync_steps = (int)v;
    PT_TRY(config_float_in(&g->ref_model_mixup_alpha, cfg, "ref_model_mixup_alpha", 0, 1, false, err));
    if (g->sync_ref_model && g->beta == 0)
        return config_bad_key(err, cfg, "sync_ref_model", "needs beta > 0 (with beta 0 there is no reference model to sync)");
    PT_TRY(config_float_in(&g->aux_loss_scale, cfg, "aux_loss_scale", 0, 1e6, false, err));
    PT_TRY(config_keyed(model_precision_parse(&g->precision, config_string(cfg, "precision"), err), err, cfg, "precision"));

    g->sched.base_lr = config_float(cfg, "learning_rate");
    if (!(g->sched.base_lr > 0))
        return config_bad_key(err, cfg, "learning_rate", "must be a finite number > 0, got %g", g->sched.base_lr);
    PT_TRY(config_keyed(lr_schedule_parse_type(&g->sched.type, config_string(cfg, "lr_scheduler_type"), err), err, cfg,
                 "lr_scheduler_type"));
    PT_TRY(config_float_in(&g->sched.min_lr_ratio, cfg, "min_lr_ratio", 0, 1, false, err));
    PT_TRY(config_int_in(&g->sched.warmup_steps, cfg, "warmup_steps", 0, INT64_MAX / 4, err));
    PT_TRY(config_int_in(&v, cfg, "per_device_train_batch_size", 1, 1 << 16, err));
    g->per_device_train_batch_size = (int)v;
    PT_TRY(config_int_in(&v, cfg, "gradient_accumulation_steps", 1, 1 << 16, err));
    g->gradient_accumulation_steps = (int)v;
    PT_TRY(config_int_in(&o->max_steps, cfg, "max_steps", 1, INT64_MAX / 4, err));
    g->sched.total_steps = o->max_steps * g->num_iterations; /* the schedule counts optimizer steps */
    if (g->sched.type != LR_SCHEDULE_CONSTANT && g->sched.warmup_steps > g->sched.total_steps)
        return config_bad_key(err, cfg, "warmup_steps", "%lld warm-up steps are more than the run's %lld optimizer steps",
                       (long long)g->sched.warmup_steps, (long long)g->sched.total_steps);
    g->optim = (optim_config){.beta1 = config_float(cfg, "adam_beta1"), .beta2 = config_float(cfg, "adam_beta2"),
                              .eps = config_float(cfg, "adam_epsilon"), .weight_decay = config_float(cfg, "weight_decay"),
                              .max_grad_norm = config_float(cfg, "max_grad_norm"), .weight_decay_norms = false};
    PT_TRY(config_float_in(&d, cfg, "adam_beta1", 0, 0.999999999, false, err));
    PT_TRY(config_float_in(&d, cfg, "adam_beta2", 0, 0.999999999, false, err));
    if (!(g->optim.eps > 0)) return config_bad_key(err, cfg, "adam_epsilon", "must be > 0, got %g", g->optim.eps);
    PT_TRY(config_float_in(&d, cfg, "weight_decay", 0, 1e6, false, err));
    PT_TRY(config_float_in(&d, cfg, "max_grad_norm", 0, 1e30, false, err));
    PT_TRY(config_keyed(optim_moments_parse(&g->optim.moments, config_string(cfg, "adam_moments"), err), err, cfg,
                 "adam_moments"));

    PT_TRY(config_int_in(&o->save_steps, cfg, "save_steps", 0, INT64_MAX, err));
    PT_TRY(config_int_in(&v, cfg, "save_total_limit", 0, 1 << 20, err));
    o->save_total_limit = (int)v;
    PT_TRY(config_int_in(&o->logging_steps, cfg, "logging_steps", 1, INT64_MAX, err));
    PT_TRY(config_int_in(&v, cfg, "max_nan_steps", 1, 1 << 20, err));
    g->max_nan_steps = (int)v;
    PT_TRY(config_int_in(&v, cfg, "max_shard_bytes", 0, INT64_MAX, err));
    o->max_shard_bytes = (size_t)v;
    PT_TRY(config_keyed(model_save_dtype_parse(&o->save_dtype, config_string(cfg, "save_dtype"), "save_dtype", err), err, cfg,
                 "save_dtype"));
    PT_TRY(grpo_config_validate(g, err));
    o->eval_path = config_is_null(cfg, "eval_data") ? NULL : config_string(cfg, "eval_data");
    if (o->eval_path && !*o->eval_path) o->eval_path = NULL;
    PT_TRY(config_int_in(&o->eval_steps, cfg, "eval_steps", 0, INT64_MAX, err));
    o->eval = eval_options_default();
    PT_TRY(config_int_in(&v, cfg, "eval_limit", 0, INT64_MAX, err));
    o->eval.limit = (size_t)v;
    PT_TRY(config_int_in(&v, cfg, "eval_num_samples", 1, 1 << 16, err));
    o->eval.num_samples = (int)v;
    PT_TRY(config_float_in(&d, cfg, "eval_temperature", 0, 100, false, err));
    o->eval.sampling.temperature = (float)d;
    if (o->eval.num_samples > 1 && !(d > 0))
        return config_bad_key(err, cfg, "eval_num_samples", "is %d with greedy evaluation (eval_temperature 0): greedy samples "
                       "are all the same; use 1, or set eval_temperature > 0", o->eval.num_samples);
    o->eval.pass_k[0] = 1;
    o->eval.pass_k[1] = o->eval.num_samples;
    o->eval.n_pass_k = o->eval.num_samples > 1 ? 2 : 1;
    o->eval.accuracy_reward = config_is_null(cfg, "eval_accuracy_reward") ? NULL : config_string(cfg, "eval_accuracy_reward");
    o->eval.correct_threshold = config_float(cfg, "eval_correct_threshold");
    o->eval.max_prompt_length = g->max_prompt_length;
    o->eval.max_completion_length = g->max_completion_length;
    o->eval.seed = g->seed;
    return hash_config(&o->config_hash, cfg, err);
}

/* ---- the prompt feed: the data loader as a grpo_prompt_source ------------------------------ */

typedef struct prompt_feed {
    data_loader loader;
    dataset_example *ex; /* (P) */
    int **ids;           /* (P) int copies of the prompt ids */
    char **columns;      /* (P) the example's columns as a JSON object */
    int P;
} prompt_feed;

static void feed_free(prompt_feed *f) {
    for (int i = 0; f->ex && i < f->P; i++) {
        dataset_example_free(&f->ex[i]);
        free(f->ids[i]), free(f->columns[i]);
    }
    free(f->ex), free(f->ids), free(f->columns);
    data_loader_free(&f->loader);
    memset(f, 0, sizeof *f);
}

static pt_status feed_next(void *ctx, grpo_prompt *out, int n, int *got, pt_error *err) {
    prompt_feed *f = ctx;
    PT_CHECK(n <= f->P, err, PT_ERR_INTERNAL, "the trainer asked for %d prompts, more than P = %d", n, f->P);
    dataset_cursor c = data_loader_cursor(&f->loader);
    /* the ordinal of a draw over the whole run: unique, and restored with the cursor */
    int64_t ordinal = (int64_t)(c.epoch * c.n_examples + c.position);
    size_t have = 0;
    PT_TRY(data_loader_next_examples(f->ex, &have, (size_t)n, &f->loader, err));
    for (size_t i = 0; i < have; i++) {
        const dataset_example *ex = &f->ex[i];
        size_t len = ex->seq.n;
        int *ids = realloc(f->ids[i], (len ? len : 1) * sizeof(int));
        PT_CHECK_ALLOC(ids, err, len * sizeof(int));
        f->ids[i] = ids;
        for (size_t j = 0; j < len; j++) ids[j] = (int)ex->seq.ids[j];
        PT_TRY(dataset_columns_json(&f->columns[i], ex, err));
        out[i] = (grpo_prompt){.ids = ids, .len = (int)len, .index = ordinal + (int64_t)i, .text = ex->prompt_text,
                               .columns = f->columns[i]};
    }
    *got = (int)have;
    return PT_OK;
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct grpo_ctx {
    grpo_options o;
    const grpo_io *io;
    tokenizer *tok;
    dataset *train;
    dataset *eval_ds;           /* NULL without eval_data */
    reward_set rewards;
    bool have_rewards;
    policy_model m;
    bool have_model;
    prompt_feed feed;
    bool have_feed;
    grpo_trainer tr;
    bool have_trainer;
    int eos[MODEL_MAX_EOS + 1];
    int64_t start_step;
    char ckpt_dir[RUN_PATH];  /* resumed from ("" for a fresh start) */
    char last_ckpt[RUN_PATH]; /* newest checkpoint known to be complete */
    run_dir dir;              /* the --out folder: what was there, what this run made */
    run_store *rs;
    char **reward_names;      /* (rewards.n) borrowed from the reward set */
} grpo_ctx;

static void say(const grpo_ctx *c, log_level level, const char *fmt, ...) PT_PRINTF(3, 4);
static void say(const grpo_ctx *c, log_level level, const char *fmt, ...) {
    if (!c->io || !c->io->log) return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(c->io->log, level, fmt, ap);
    va_end(ap);
}

/* Reads the rewards file, builds the set and folds the file's bytes into the config hash. */
static pt_status load_rewards(grpo_ctx *c, pt_error *err) {
    if (reward_set_load_file(&c->rewards, c->o.rewards_path, -1, &c->o.config_hash, err) != PT_OK)
        return error_prefix(err, "--rewards");
    c->have_rewards = true;
    return PT_OK;
}

static pt_status open_data(grpo_ctx *c, pt_error *err) {
    const char *path = c->o.data_path;
    if (!sft_path_exists(path)) PT_FAIL(err, PT_ERR_IO, "--data '%s' does not exist", path);
    if (dataset_open_jsonl(&c->train, path, c->tok, &c->o.data, err) != PT_OK) return error_prefix(err, "--data");
    if (dataset_size(c->train) == 0) PT_FAIL(err, PT_ERR_CONFIG, "--data '%s' holds no usable prompt", path);
    if (!c->o.eval_path) return PT_OK;
    if (!sft_path_exists(c->o.eval_path)) PT_FAIL(err, PT_ERR_IO, "eval_data '%s' does not exist", c->o.eval_path);
    if (dataset_open_jsonl(&c->eval_ds, c->o.eval_path, c->tok, &c->o.data, err) != PT_OK)
        return error_prefix(err, "eval_data");
    if (dataset_size(c->eval_ds) == 0)
        PT_FAIL(err, PT_ERR_CONFIG, "eval_data '%s' holds no usable prompt", c->o.eval_path);
    return PT_OK;
}

/* The policy (model folder or checkpoint) and the trainer. */
static pt_status load_model(grpo_ctx *c, pt_error *err) {
    const char *from = c->ckpt_dir[0] ? c->ckpt_dir : c->o.model_dir;
    model_load_info info;
    if (model_load(&c->m, from, &info, err) != PT_OK)
        return error_prefix(err, "%s '%s'", c->ckpt_dir[0] ? "checkpoint" : "--model", from);
    c->have_model = true;
    if (info.nonfinite)
        PT_FAIL(err, PT_ERR_NUMERIC, "'%s' holds NaN/Inf values in %d tensor(s): %s", from, info.nonfinite,
                info.nonfinite_names);
    size_t n_ids = tokenizer_n_ids(c->tok);
    if (n_ids > (size_t)c->m.cfg.vocab_size)
        PT_FAIL(err, PT_ERR_CONFIG, "the tokenizer '%s' has %zu ids but the model's vocab_size is %d",
                c->o.tokenizer_path, n_ids, c->m.cfg.vocab_size);
    const int n = rollout_eos_ids(c->eos, &c->m, c->tok);
    c->o.g.eos_ids = c->eos;
    c->o.g.n_eos = n;
    c->o.g.router_bias_gamma = c->m.cfg.posttrain_bias_update_speed;
    return PT_OK;
}

/* Resuming: the optimizer moments and step, the cursor and the reference model. */
static pt_status restore(grpo_ctx *c, dataset_cursor *cursor, bool *have_cursor, pt_error *err) {
    char path[RUN_PATH];
    PT_TRY(sft_path_join(path, sizeof path, c->ckpt_dir, TRAIN_STATE_FILE, err));
    train_progress p;
    if (train_state_read_file(&p, &c->tr.opt, path, err) != PT_OK) return error_prefix(err, "checkpoint '%s'", c->ckpt_dir);
    pt_status st = PT_OK;
    if (p.config_hash != c->o.config_hash && !c->o.allow_config_change)
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "checkpoint '%s' was made with other training keys or rewards (config hash %016" PRIx64
                       ", now %016" PRIx64 "): resume with the same config, or set allow_config_change",
                       c->ckpt_dir, p.config_hash, c->o.config_hash);
    if (st == PT_OK && dataset_cursor_decode(cursor, p.cursor, p.cursor_bytes, err) != PT_OK)
        st = error_prefix(err, "the data cursor of checkpoint '%s'", c->ckpt_dir);
    c->start_step = p.step;
    train_progress_free(&p);
    PT_TRY(st);
    *have_cursor = true;
    c->tr.step = c->start_step;
    if (c->tr.has_ref) {
        if (c->o.g.sync_ref_model && c->start_step >= c->o.g.ref_model_sync_steps)
            PT_FAIL(err, PT_ERR_UNSUPPORTED, "checkpoint '%s' is past a reference-model sync (sync_ref_model, step %lld "
                    "≥ ref_model_sync_steps %d): the synced reference is not saved, so this run cannot resume exactly",
                    c->ckpt_dir, (long long)c->start_step, c->o.g.ref_model_sync_steps);
        policy_model start;
        if (model_load(&start, c->o.model_dir, NULL, err) != PT_OK)
            return error_prefix(err, "--model '%s' (the reference model of the resumed run)", c->o.model_dir);
        if (start.layout.total != c->m.layout.total) {
            model_free(&start);
            PT_FAIL(err, PT_ERR_CONFIG, "--model '%s' is not the model this run started from (its shape differs from "
                    "checkpoint '%s')", c->o.model_dir, c->ckpt_dir);
        }
        memcpy(c->tr.ref.params, start.params, c->m.layout.total * sizeof(float));
        model_free(&start);
    }
    snprintf(c->last_ckpt, sizeof c->last_ckpt, "%s", c->ckpt_dir);
    return PT_OK;
}

static pt_status prepare(grpo_ctx *c, pt_error *err) {
    if (!sft_is_dir(c->o.model_dir))
        PT_FAIL(err, PT_ERR_IO, "--model '%s' is not a folder (it should hold config.json, model.safetensors and "
                "tokenizer.json)", c->o.model_dir);
    if (!sft_path_exists(c->o.rewards_path)) PT_FAIL(err, PT_ERR_IO, "--rewards '%s' does not exist", c->o.rewards_path);
    PT_TRY(run_dir_check(&c->dir, c->o.out_dir, err));
    PT_TRY(run_dir_resolve_resume(c->ckpt_dir, sizeof c->ckpt_dir, &c->dir, c->o.resume, c->io ? c->io->log : NULL, err));
    PT_TRY(load_rewards(c, err));
    if (tokenizer_load(&c->tok, c->o.tokenizer_path, err) != PT_OK)
        return error_prefix(err, "%s '%s'", c->o.tokenizer_path == c->o.model_dir ? "--model" : "--tokenizer",
                            c->o.tokenizer_path);
    PT_TRY(open_data(c, err));
    PT_TRY(load_model(c, err));
    PT_TRY(grpo_trainer_init(&c->tr, &c->m, c->tok, &c->rewards, &c->o.g, err));
    c->have_trainer = true;
    dataset_cursor cursor;
    bool have_cursor = false;
    if (c->ckpt_dir[0]) PT_TRY(restore(c, &cursor, &have_cursor, err));
    const int P = c->o.g.per_device_train_batch_size;
    c->feed.P = P;
    c->feed.ex = calloc((size_t)P, sizeof *c->feed.ex);
    c->feed.ids = calloc((size_t)P, sizeof *c->feed.ids);
    c->feed.columns = calloc((size_t)P, sizeof *c->feed.columns);
    c->have_feed = true;
    if (!c->feed.ex || !c->feed.ids || !c->feed.columns)
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for %d prompts", P);
    data_loader_options lo = {.B = 1, .T = 2, .packing = DATASET_PACK_NONE, .shuffle = c->o.shuffle, .seed = c->o.g.seed,
                              .drop_last = false, .max_epochs = 0, .pad_id = -1};
    if (data_loader_init(&c->feed.loader, c->train, &lo, have_cursor ? &cursor : NULL, err) != PT_OK)
        return error_prefix(err, "--data '%s'", c->o.data_path);
    return PT_OK;
}

static void ctx_free(grpo_ctx *c) {
    run_store_close(c->rs);
    if (c->have_feed) feed_free(&c->feed);
    if (c->have_trainer) grpo_trainer_free(&c->tr);
    if (c->have_model) model_free(&c->m);
    if (c->have_rewards) reward_set_free(&c->rewards);
    dataset_free(c->train);
    dataset_free(c->eval_ds);
    tokenizer_free(c->tok);
}

/* ---- execute ------------------------------------------------------------------------------ */

static const char *finish_name(finish_reason f) {
    return f == FINISH_STOP ? "stop" : f == FINISH_LENGTH ? "length" : "none";
}

/* The step's metrics (TRL names) and rollouts in the open step of the store. */
static pt_status log_step_rows(grpo_ctx *c, const grpo_step_stats *s, pt_error *err) {
    const char *names[] = {"reward", "reward_std", "frac_reward_zero_std", "loss", "kl", "entropy",
                           "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                           "completions/mean_length", "completions/min_length", "completions/max_length",
                           "completions/clipped_ratio", "grad_norm", "learning_rate", "step_time",
                           "step_time/generation", "step_time/scoring", "step_time/update", "num_tokens",
                           "tokens_per_second", "engine_logp_diff", "groups", "prompts_drawn", "masked", "nan_skipped"};
    const double values[] = {s->reward, s->reward_std, s->frac_reward_zero_std, s->loss, s->kl, s->entropy,
                             s->clip_low, s->clip_high, s->clip_region, s->mean_length, s->min_length, s->max_length,
                             s->clipped_ratio, s->grad_norm, s->lr, s->step_seconds, s->gen_seconds,
                             s->score_seconds, s->update_seconds, s->num_tokens, s->tokens_per_second,
                             s->engine_logp_diff, s->groups, s->prompts_drawn, s->masked, s->skipped};
    PT_TRY(run_store_log_metrics(c->rs, names, values, sizeof names / sizeof names[0], err));
    const grpo_trainer *t = &c->tr;
    const int G = t->cfg.num_generations, nr = c->rewards.n;
    const size_t stride = (size_t)t->cfg.per_device_train_batch_size * (size_t)G;
    /* per reward over every drawn rollout (kept or not): rewards/<name>/mean and std of the scored items */
    for (int k = 0; k < nr; k++) {
        const double *acc = t->drawn_per_reward + 3 * (size_t)k, sum = acc[0], sq = acc[1], n = acc[2];
        /* TRL logs torch.std: the sample std (Bessel), NaN for fewer than two scores */
        double mean = n > 0 ? sum / n : NAN, var = n > 1 ? (sq - n * mean * mean) / (n - 1) : NAN;
        char name[REWARD_NAME_MAX + 32];
        snprintf(name, sizeof name, "rewards/%s/mean", c->rewards.rewards[k]->name);
        PT_TRY(run_store_log_metric(c->rs, name, mean, err));
        snprintf(name, sizeof name, "rewards/%s/std", c->rewards.rewards[k]->name);
        PT_TRY(run_store_log_metric(c->rs, name, n > 1 ? sqrt(var > 0 ? var : 0) : NAN, err));
    }
    double *scores = calloc((size_t)(nr ? nr : 1), sizeof *scores);
    PT_CHECK_ALLOC(scores, err, (size_t)nr * sizeof *scores);
    pt_status st = PT_OK;
    /* the rollouts trained on, then those of the groups dynamic sampling dropped (no advantage) */
    const int D = t->dropped * G;
    for (int j = 0; j < t->R + D && st == PT_OK; j++) {
        const bool kept = j < t->R;
        const int i = kept ? j : j - t->R;
        for (int k = 0; k < nr; k++) {
            const reward_result *r = kept ? &t->per_reward[(size_t)k * stride + (size_t)i]
                                          : &t->drop_per_reward[(size_t)k * t->drop_stride + (size_t)i];
            scores[k] = r->status == REWARD_OK ? r->score : NAN;
        }
        const grpo_prompt *p = kept ? &t->prompts[i / G] : &t->drop_prompts[i / G];
        const rollout_completion *comp = kept ? &t->comp[i] : &t->drop_comp[i];
        const bool ok = kept ? t->reward_ok[i] : t->drop_reward_ok[i];
        run_rollout ro = {.prompt_index = p->index, .sample_index = i % G, .prompt = p->text,
                          .completion = kept ? t->text[i] : t->drop_text[i],
                          .reward_names = (const char *const *)c->reward_names, .reward_scores = scores,
                          .n_rewards = nr, .reward = ok ? (kept ? t->reward[i] : t->drop_reward[i]) : NAN,
                          .advantage = kept ? t->adv[i] : NAN, .length = comp->len,
                          .finish_reason = finish_name(comp->finish)};
        st = run_store_log_rollout(c->rs, &ro, err);
    }
    free(scores);
    return st;
}

static pt_status log_step(grpo_ctx *c, const grpo_step_stats *s, pt_error *err) {
    PT_TRY(run_store_begin_step(c->rs, s->step, err));
    pt_status st = log_step_rows(c, s, err);
    if (st == PT_OK) return run_store_commit_step(c->rs, err);
    pt_error ignored = {0};
    run_store_rollback_step(c->rs, &ignored);
    return st;
}

static pt_status save_checkpoint(grpo_ctx *c, int64_t step, pt_error *err) {
    unsigned char cur[DATASET_CURSOR_BYTES];
    dataset_cursor dc = data_loader_cursor(&c->feed.loader);
    dataset_cursor_encode(cur, &dc);
    train_progress p = {.step = step, .config_hash = c->o.config_hash, .rngs = NULL, .n_rngs = 0, .cursor = cur,
                        .cursor_bytes = sizeof cur};
    train_save_options so = {.keep_last = c->o.save_total_limit, .max_shard_bytes = c->o.max_shard_bytes};
    char dir[RUN_PATH];
    PT_TRY(train_state_save(dir, sizeof dir, c->o.out_dir, &c->m, &c->tr.opt, &p, &so, err));
    snprintf(c->last_ckpt, sizeof c->last_ckpt, "%s", dir);
    PT_TRY(run_store_begin_step(c->rs, step, err));
    pt_status st = run_store_log_checkpoint(c->rs, dir, "", err);
    if (st == PT_OK) return run_store_commit_step(c->rs, err);
    pt_error ignored = {0};
    run_store_rollback_step(c->rs, &ignored);
    return st;
}

static pt_status write_final(char *final_dir, size_t cap, grpo_ctx *c, pt_error *err) {
    char tmp[RUN_PATH], old[RUN_PATH];
    PT_TRY(sft_path_join(final_dir, cap, c->o.out_dir, "final", err));
    if (snprintf(tmp, sizeof tmp, "%.4000s.tmp", final_dir) >= (int)sizeof tmp ||
        snprintf(old, sizeof old, "%.4000s.old", final_dir) >= (int)sizeof old || strlen(final_dir) > 4000)
        PT_FAIL(err, PT_ERR_INVALID, "path '%s' is too long", final_dir);
    PT_TRY(sft_remove_flat_dir(tmp, err));
    pt_status st = model_save_as(&c->m, tmp, c->o.save_dtype, c->o.max_shard_bytes, err);
    if (st == PT_OK) st = sft_copy_tokenizer_files(tmp, c->o.tokenizer_path, err);
    if (st == PT_OK) st = sft_remove_flat_dir(old, err);
    if (st == PT_OK && sft_path_exists(final_dir) && rename(final_dir, old) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "moving the old '%s' aside: %s", final_dir, strerror(errno));
    if (st == PT_OK && rename(tmp, final_dir) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "renaming '%s' to '%s': %s", tmp, final_dir, strerror(errno));
    if (st != PT_OK) {
        pt_error ignored = {0};
        sft_remove_flat_dir(tmp, &ignored);
        final_dir[0] = '\0';
        return error_prefix(err, "writing the final model");
    }
    return sft_remove_flat_dir(old, err);
}

static void show_step(grpo_ctx *c, progress *bar, const grpo_step_stats *s) {
    progress_set_field(bar, "reward", "%.3f", s->reward);
    progress_set_field(bar, "kl", "%.4f", s->kl);
    progress_set_field(bar, "clip", "%.3f", s->clip_region);
    progress_set_field(bar, "len", "%.1f/%.0f", s->mean_length, s->max_length);
    progress_set_field(bar, "s/step", "%.2f", s->step_seconds);
    progress_update(bar, s->step, timer_now());
    if (s->skipped)
        say(c, LOG_LEVEL_WARN, "step %lld: non-finite loss or gradient: %d update(s) skipped (%d in a row; max_nan_steps %d)",
            (long long)s->step, s->skipped, c->tr.guard.consecutive, c->o.g.max_nan_steps);
    else if (s->step % c->o.logging_steps == 0 || s->step == c->o.max_steps)
        say(c, LOG_LEVEL_INFO, "step %lld/%lld  reward %.4f ± %.4f  kl %.4f  entropy %.3f  clip %.3f  len %.1f "
            "(clipped %.2f)  loss %.4f  lr %.2e  %.2f s (gen %.2f, score %.2f, update %.2f)  %.0f tok/s",
            (long long)s->step, (long long)c->o.max_steps, s->reward, s->reward_std, s->kl, s->entropy, s->clip_region,
            s->mean_length, s->clipped_ratio, s->loss, s->lr, s->step_seconds, s->gen_seconds, s->score_seconds,
            s->update_seconds, s->tokens_per_second);
}

/* Held-out evaluation of the current policy, logged as eval/... metrics of `step`. */
static pt_status evaluate(grpo_ctx *c, int64_t step, pt_error *err) {
    eval_options o = c->o.eval;
    o.eos_ids = c->o.g.eos_ids;
    o.n_eos = c->o.g.n_eos;
    eval_result r;
    PT_TRY(eval_policy(&r, &c->m, c->tok, &c->rewards, c->eval_ds, &o, err));
    pt_status st = run_store_begin_step(c->rs, step, err);
    if (st == PT_OK) {
        st = eval_log_metrics(c->rs, &r, &c->rewards, "eval", err);
        if (st == PT_OK) st = run_store_commit_step(c->rs, err);
        else {
            pt_error ignored = {0};
            run_store_rollback_step(c->rs, &ignored);
        }
    }
    if (st == PT_OK)
        say(c, LOG_LEVEL_INFO, "step %lld: held-out accuracy %.2f%% (%zu/%zu), mean reward %.4f, %.1f s", (long long)step,
            100.0 * r.accuracy, r.correct, r.completions, r.mean_reward, r.seconds);
    eval_result_free(&r);
    return st;
}

static pt_status train_loop(grpo_result *res, grpo_ctx *c, pt_error *err) {
    const grpo_run_hooks *hooks = c->io ? c->io->hooks : NULL;
    progress bar;
    const double t0 = timer_now();
    progress_init(&bar, c->io ? c->io->progress : NULL, "grpo", c->o.max_steps, t0);
    snprintf(bar.unit, sizeof bar.unit, "step");
    progress_resume(&bar, c->start_step);
    pt_status st = PT_OK;
    if (c->eval_ds && c->tr.step == 0 && (st = evaluate(c, 0, err)) != PT_OK) return st;
    while (c->tr.step < c->o.max_steps) {
        grpo_step_stats s;
        st = grpo_trainer_step(&s, &c->tr, feed_next, &c->feed, err);
        if (st == PT_ERR_NUMERIC) {
            if (c->last_ckpt[0])
                error_prefix(err, "stopped at step %lld; the newest checkpoint '%s' is from a good step and is "
                             "untouched — resume from it with a lower learning_rate", (long long)s.step, c->last_ckpt);
            else
                error_prefix(err, "stopped at step %lld before any checkpoint was written", (long long)s.step);
            break;
        }
        if (st != PT_OK) break;
        res->end_step = s.step;
        if (isnan(res->reward_first)) res->reward_first = s.reward;
        res->reward_last = s.reward;
        res->skipped_steps += s.skipped;
        if ((st = log_step(c, &s, err)) != PT_OK) break;
        show_step(c, &bar, &s);
        const bool last = s.step >= c->o.max_steps;
        const bool save_due = (c->o.save_steps > 0 && s.step % c->o.save_steps == 0) || last;
        if (save_due && c->tr.guard.consecutive == 0) {
            if ((st = save_checkpoint(c, s.step, err)) != PT_OK) break;
            say(c, LOG_LEVEL_DEBUG, "checkpoint %s", c->last_ckpt);
        }
        const bool eval_due = c->eval_ds && (last || (c->o.eval_steps > 0 && s.step % c->o.eval_steps == 0));
        if (eval_due && (st = evaluate(c, s.step, err)) != PT_OK) break;
        if (hooks && hooks->after_step && !hooks->after_step(hooks->ctx, &s)) {
            res->stopped = true;
            break;
        }
    }
    progress_finish(&bar, timer_now());
    res->seconds = timer_now() - t0;
    return st;
}

/* num_tokens is cumulative (TRL): a resumed run continues from the stored value. */
static void restore_num_tokens(grpo_ctx *c) {
    run_metric_series s;
    pt_error ignored = {0};
    if (run_store_metric_series(&s, c->rs, "num_tokens", &ignored) != PT_OK) return;
    for (size_t i = 0; i < s.n; i++)
        if (s.steps[i] == c->start_step) c->tr.num_tokens = s.values[i];
    run_metric_series_free(&s);
}

static pt_status execute(grpo_result *res, grpo_ctx *c, const config *cfg, pt_error *err) {
    PT_TRY(run_dir_open_store(&c->rs, &c->dir, "grpo", cfg, c->start_step, err));
    if (c->start_step > 0) restore_num_tokens(c);
    PT_TRY(train_loop(res, c, err));
    if (res->stopped) return PT_OK;
    return write_final(res->final_dir, sizeof res->final_dir, c, err);
}

pt_status grpo_run(grpo_result *res, const config *cfg, const grpo_io *io, pt_error *err) {
    memset(res, 0, sizeof *res);
    res->reward_first = res->reward_last = NAN;
    grpo_ctx *c = calloc(1, sizeof *c);
    PT_CHECK_ALLOC(c, err, sizeof *c);
    c->io = io;
    pt_status st = options_from_config(&c->o, cfg, err);
    if (st == PT_OK) st = prepare(c, err);
    if (st == PT_OK) {
        c->reward_names = calloc((size_t)c->rewards.n, sizeof *c->reward_names);
        if (!c->reward_names) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        for (int k = 0; st == PT_OK && k < c->rewards.n; k++) c->reward_names[k] = c->rewards.rewards[k]->name;
    }
    if (st == PT_OK) {
        res->start_step = res->end_step = c->start_step;
        res->total_steps = c->o.max_steps;
        say(c, LOG_LEVEL_INFO, "grpo: %zu prompts from %s; %d reward(s) from %s; %lld steps of %d prompts × %d "
            "completions; %s step %lld", dataset_size(c->train), c->o.data_path, c->rewards.n, c->o.rewards_path,
            (long long)c->o.max_steps, c->o.g.per_device_train_batch_size, c->o.g.num_generations,
            c->ckpt_dir[0] ? "resuming from" : "starting at", (long long)c->start_step);
        st = execute(res, c, cfg, err);
    }
    free(c->reward_names);
    ctx_free(c);
    free(c);
    return st;
}
