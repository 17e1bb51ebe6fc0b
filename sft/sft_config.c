/* sft_config.c — see sft_config.h. Defaults follow TRL's SFTConfig and transformers'
 * TrainingArguments (learning_rate 2e-5, linear schedule, betas 0.9/0.999, max_length 1024,
 * per_device_train_batch_size 8, 3 epochs, save_steps 500, seed 42), except where posttrain's
 * own pieces decide (packing strategies of datasets/loader.h; MTP and balance losses). */
#include "sft/sft_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/chat_template.h"

static const config_key SFT_KEYS[] = {
    /* where things are */
    {"model", CONFIG_STRING, "null", "the starting model: a Hugging Face folder (config.json, model.safetensors, tokenizer.json)"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"data", CONFIG_STRING, "null",
     "training data, JSONL in a TRL shape: {\"text\"}, {\"prompt\",\"completion\"} or {\"messages\"}"},
    {"eval_data", CONFIG_STRING, "null", "held-out JSONL of the same shape; its loss is reported as eval_loss"},
    {"out", CONFIG_STRING, "null",
     "run folder (created; its parent must exist): run.db, checkpoints/step-N, final/ (an HF model folder)"},
    {"resume", CONFIG_STRING, "null",
     "continue a run: \"auto\" (the newest complete checkpoint under out/checkpoints, or a fresh start when there is "
     "none) or a checkpoint folder; the continuation is bit-identical to an uninterrupted run"},
    {"allow_config_change", CONFIG_BOOL, "false",
     "resume even though the training keys differ from the checkpoint's (the config hash)"},
    /* data */
    {"format", CONFIG_STRING, "\"auto\"", "data shape: auto, text, prompt_completion or messages"},
    {"chat_format", CONFIG_STRING, "null",
     "chat template for conversational data: deepseek-v3, deepseek-r1, plain (default: the tokenizer's)"},
    {"on_bad_line", CONFIG_STRING, "\"error\"", "a malformed record: error (stop, naming file and line) or skip (count it)"},
    {"truncation", CONFIG_STRING, "\"right\"", "an example over max_length: right (keep the first tokens), left, or error"},
    {"max_length", CONFIG_INT, "1024", "tokens per row (T): examples are truncated to it and packed into rows of it"},
    {"completion_only_loss", CONFIG_BOOL, "null",
     "prompt-completion data: train on the completion only (null: true, as TRL)"},
    {"assistant_only_loss", CONFIG_BOOL, "false", "messages data: train on the assistant turns only"},
    {"keep_final_think", CONFIG_BOOL, "false", "deepseek-r1 chat: keep the <think> part of the last assistant turn"},
    {"packing", CONFIG_BOOL, "false",
     "pack several examples into each row (attention and positions never cross examples)"},
    {"packing_strategy", CONFIG_STRING, "\"greedy\"", "with packing: greedy (fill rows in order) or first_fit"},
    {"shuffle", CONFIG_BOOL, "true", "shuffle the examples each epoch (seeded)"},
    {"seed", CONFIG_INT, "42", "seed of the data order"},
    {"per_device_train_batch_size", CONFIG_INT, "8", "rows per micro-batch (B)"},
    {"per_device_eval_batch_size", CONFIG_INT, "null", "rows per evaluation batch (default: the training B)"},
    /* optimisation */
    {"learning_rate", CONFIG_FLOAT, "2e-5", "peak learning rate of AdamW"},
    {"lr_scheduler_type", CONFIG_STRING, "\"linear\"", "constant, linear or cosine (after the warm-up)"},
    {"min_lr_ratio", CONFIG_FLOAT, "0.0", "floor of the linear and cosine decay, as a fraction of learning_rate"},
    {"warmup_steps", CONFIG_INT, "0", "optimizer steps of linear warm-up from 0"},
    {"warmup_ratio", CONFIG_FLOAT, "0.0", "warm-up as a fraction of the run's steps (used when warmup_steps is 0)"},
    {"max_steps", CONFIG_INT, "-1", "optimizer steps to run; -1: num_train_epochs passes over the data"},
    {"num_train_epochs", CONFIG_FLOAT, "3.0", "passes over the data when max_steps is -1 (fractions allowed)"},
    {"gradient_accumulation_steps", CONFIG_INT, "1",
     "micro-batches per optimizer step; the loss is the token mean over all of them"},
    {"max_grad_norm", CONFIG_FLOAT, "1.0", "global gradient-norm clipping (0: off)"},
    {"weight_decay", CONFIG_FLOAT, "0.0", "AdamW decoupled weight decay (matrices; norms only with weight_decay_norms)"},
    {"weight_decay_norms", CONFIG_BOOL, "false", "also decay RMSNorm weights"},
    {"adam_beta1", CONFIG_FLOAT, "0.9", "AdamW β1"},
    {"adam_beta2", CONFIG_FLOAT, "0.999", "AdamW β2"},
    {"adam_epsilon", CONFIG_FLOAT, "1e-8", "AdamW ε"},
    {"adam_moments", CONFIG_STRING, "\"fp32\"",
     "storage of AdamW's two moments: fp32, or bf16 (2 bytes per parameter each, rounded to nearest-even after "
     "each fp32 update; master weights stay fp32); a checkpoint resumes only with the setting it was written with"},
    {"aux_loss_scale", CONFIG_FLOAT, "1.0",
     "weight of the MTP loss and the sequence-wise balance loss in the gradient (their λ and α come from the model "
     "config; 0 trains on the main loss only)"},
    {"precision", CONFIG_STRING, "\"fp32\"",
     "training GEMMs: fp32, or fp8 (DeepSeek-V3's recipe: E4M3 attention/MLP/expert linears with 1x128 activation and "
     "128x128 weight scales, emulated exactly on the CPU); embedding, head, router, norms, attention core, master "
     "weights and optimizer state stay fp32"},
    /* bookkeeping */
    {"eval_steps", CONFIG_INT, "0", "held-out loss every N steps (0: before the first step and after the last only)"},
    {"save_steps", CONFIG_INT, "500", "checkpoint every N steps (0: only at the end; the last step always saves)"},
    {"save_total_limit", CONFIG_INT, "0", "checkpoints kept, the newest ones (0: all)"},
    {"logging_steps", CONFIG_INT, "10", "a log line every N steps (every step goes to run.db)"},
    {"max_nan_steps", CONFIG_INT, "5",
     "steps with a NaN/Inf loss or gradient are skipped; this many in a row abort the run (the last checkpoint, "
     "always from a good step, stays as it was)"},
    {"time_limit", CONFIG_FLOAT, "0",
     "stop early after this many seconds of training, saving a checkpoint and final/ (0: no limit)"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split saved weights into shards above this size"},
    {"save_dtype", CONFIG_STRING, "\"fp32\"",
     "weights of the final/ folder: fp32, or fp8 (DeepSeek's FP8 release format: E4M3 128x128 blocks with "
     "_scale_inv, about a quarter of the bytes); checkpoints stay fp32 for resuming"},
    {"log_level", CONFIG_STRING, "\"info\"", "debug, info, warn or error"},
};

const config_schema SFT_SCHEMA = {SFT_KEYS, sizeof SFT_KEYS / sizeof SFT_KEYS[0]};

/* Keys that do not change what a step computes: left out of the config hash. */
static const char *const UNHASHED[] = {
    "model", "tokenizer", "data", "eval_data", "out", "resume", "allow_config_change", /* where */
    "per_device_eval_batch_size", "eval_steps", "save_steps", "save_total_limit",         /* when */
    "logging_steps", "time_limit", "max_shard_bytes", "log_level", "max_nan_steps", "save_dtype",
};

uint64_t sft_fnv1a64(uint64_t h, const void *bytes, size_t n) {
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* Keys added after the first release count only when not at their default: older checkpoints
 * keep their hash (and resume). */
static const char *const HASHED_UNLESS_DEFAULT[] = {"adam_moments"};

static pt_status hash_config(uint64_t *hash, const config *cfg, pt_error *err) {
    return config_hash_except(hash, cfg, UNHASHED, sizeof UNHASHED / sizeof UNHASHED[0], HASHED_UNLESS_DEFAULT,
                              sizeof HASHED_UNLESS_DEFAULT / sizeof HASHED_UNLESS_DEFAULT[0], err);
}

pt_status sft_options_from_config(sft_options *o, const config *cfg, pt_error *err) {
    memset(o, 0, sizeof *o);
    PT_TRY(config_required(&o->model_dir, cfg, "model", err));
    PT_TRY(config_required(&o->data_path, cfg, "data", err));
    PT_TRY(config_required(&o->out_dir, cfg, "out", err));
    o->tokenizer_path = config_string(cfg, "tokenizer");
    if (!o->tokenizer_path || !*o->tokenizer_path) o->tokenizer_path = o->model_dir;
    o->eval_data_path = config_string(cfg, "eval_data");
    if (o->eval_data_path && !*o->eval_data_path) o->eval_data_path = NULL;
    o->resume = config_string(cfg, "resume");
    if (o->resume && !*o->resume) o->resume = NULL;
    o->allow_config_change = config_bool(cfg, "allow_config_change");

    /* data */
    int64_t v = 0;
    dataset_options_default(&o->data);
    PT_TRY(config_keyed(dataset_format_parse(&o->data.format, config_string(cfg, "format"), err), err, cfg, "format"));
    if (o->data.format == DATASET_FORMAT_PROMPT || o->data.format == DATASET_FORMAT_PREFERENCE)
        return config_bad_key(err, cfg, "format", "SFT trains on text, prompt_completion or messages data, not %s",
                       dataset_format_name(o->data.format));
    PT_TRY(config_keyed(dataset_on_bad_parse(&o->data.on_bad_line, config_string(cfg, "on_bad_line"), err), err, cfg,
                 "on_bad_line"));
    PT_TRY(config_keyed(dataset_truncation_parse(&o->data.truncation, config_string(cfg, "truncation"), err), err, cfg,
                 "truncation"));
    o->data.chat_format = config_string(cfg, "chat_format");
    if (o->data.chat_format) {
        chat_format cf;
        PT_TRY(config_keyed(chat_format_parse(&cf, o->data.chat_format, err), err, cfg, "chat_format"));
    }
    PT_TRY(config_int_in(&v, cfg, "max_length", 2, 1 << 20, err));
    o->data.max_length = (size_t)v;
    o->data.completion_only_loss = config_is_null(cfg, "completion_only_loss") ? -1 : config_bool(cfg, "completion_only_loss");
    o->data.assistant_only_loss = config_bool(cfg, "assistant_only_loss");
    o->data.keep_final_think = config_bool(cfg, "keep_final_think");

    o->loader.T = (int)v;
    PT_TRY(config_int_in(&v, cfg, "per_device_train_batch_size", 1, 1 << 16, err));
    o->loader.B = (int)v;
    if ((size_t)o->loader.B * (size_t)o->loader.T > ((size_t)1 << 26))
        return config_bad_key(err, cfg, "per_device_train_batch_size",
                       "B·T = %d·%d tokens per micro-batch is more than 2^26; use gradient_accumulation_steps",
                       o->loader.B, o->loader.T);
    o->loader.packing = DATASET_PACK_NONE;
    if (config_bool(cfg, "packing"))
        PT_TRY(config_keyed(dataset_packing_parse(&o->loader.packing, config_string(cfg, "packing_strategy"), err), err, cfg,
                     "packing_strategy"));
    if (config_bool(cfg, "packing") && o->loader.packing == DATASET_PACK_NONE)
        return config_bad_key(err, cfg, "packing_strategy", "packing is on: use greedy or first_fit, not none");
    o->loader.shuffle = config_bool(cfg, "shuffle");
    o->loader.seed = (uint64_t)config_int(cfg, "seed");
    o->loader.drop_last = false;
    o->loader.max_epochs = 0; /* endless: the trainer stops after its planned steps */
    o->loader.pad_id = -1;
    o->eval_batch_size = o->loader.B;
    if (!config_is_null(cfg, "per_device_eval_batch_size")) {
        PT_TRY(config_int_in(&v, cfg, "per_device_eval_batch_size", 1, 1 << 16, err));
        o->eval_batch_size = (int)v;
    }

    /* optimisation */
    o->sched.base_lr = config_float(cfg, "learning_rate");
    if (!(o->sched.base_lr > 0) || !isfinite(o->sched.base_lr))
        return config_bad_key(err, cfg, "learning_rate", "must be a finite number > 0, got %g", o->sched.base_lr);
    PT_TRY(config_keyed(lr_schedule_parse_type(&o->sched.type, config_string(cfg, "lr_scheduler_type"), err), err, cfg,
                 "lr_scheduler_type"));
    PT_TRY(config_float_in(&o->sched.min_lr_ratio, cfg, "min_lr_ratio", 0, 1, false, err));
    PT_TRY(config_int_in(&o->sched.warmup_steps, cfg, "warmup_steps", 0, INT64_MAX / 2, err));
    PT_TRY(config_float_in(&o->warmup_ratio, cfg, "warmup_ratio", 0, 1, true, err));
    o->max_steps = config_int(cfg, "max_steps");
    o->num_train_epochs = config_float(cfg, "num_train_epochs");
    if (o->max_steps <= 0 && !(o->num_train_epochs > 0))
        return config_bad_key(err, cfg, "num_train_epochs", "must be > 0 when max_steps is %lld (the run length comes from the epochs), got %g",
                       (long long)o->max_steps, o->num_train_epochs);
    if (o->max_steps > INT64_MAX / 4) return config_bad_key(err, cfg, "max_steps", "is too large (%lld)", (long long)o->max_steps);
    PT_TRY(config_int_in(&v, cfg, "gradient_accumulation_steps", 1, 1 << 16, err));
    o->grad_accum = (int)v;
    o->optim = (optim_config){.beta1 = config_float(cfg, "adam_beta1"),
                              .beta2 = config_float(cfg, "adam_beta2"),
                              .eps = config_float(cfg, "adam_epsilon"),
                              .weight_decay = config_float(cfg, "weight_decay"),
                              .max_grad_norm = config_float(cfg, "max_grad_norm"),
                              .weight_decay_norms = config_bool(cfg, "weight_decay_norms")};
    PT_TRY(config_float_in(&o->optim.beta1, cfg, "adam_beta1", 0, 1, true, err));
    PT_TRY(config_float_in(&o->optim.beta2, cfg, "adam_beta2", 0, 1, true, err));
    if (!(o->optim.eps > 0)) return config_bad_key(err, cfg, "adam_epsilon", "must be > 0, got %g", o->optim.eps);
    PT_TRY(config_float_in(&o->optim.weight_decay, cfg, "weight_decay", 0, 1e6, false, err));
    PT_TRY(config_float_in(&o->optim.max_grad_norm, cfg, "max_grad_norm", 0, 1e30, false, err));
    PT_TRY(config_keyed(optim_moments_parse(&o->optim.moments, config_string(cfg, "adam_moments"), err), err, cfg,
                 "adam_moments"));
    PT_TRY(optim_config_validate(&o->optim, err));
    PT_TRY(config_float_in(&o->aux_loss_scale, cfg, "aux_loss_scale", 0, 1e6, false, err));
    PT_TRY(config_keyed(model_precision_parse(&o->precision, config_string(cfg, "precision"), err), err, cfg, "precision"));

    /* bookkeeping */
    PT_TRY(config_int_in(&o->eval_steps, cfg, "eval_steps", 0, INT64_MAX, err));
    PT_TRY(config_int_in(&o->save_steps, cfg, "save_steps", 0, INT64_MAX, err));
    PT_TRY(config_int_in(&v, cfg, "save_total_limit", 0, 1 << 20, err));
    o->save_total_limit = (int)v;
    PT_TRY(config_int_in(&o->logging_steps, cfg, "logging_steps", 1, INT64_MAX, err));
    PT_TRY(config_int_in(&v, cfg, "max_nan_steps", 1, 1 << 20, err));
    o->max_nan_steps = (int)v;
    PT_TRY(config_float_in(&o->time_limit, cfg, "time_limit", 0, 1e12, false, err));
    PT_TRY(config_int_in(&v, cfg, "max_shard_bytes", 0, INT64_MAX, err));
    o->max_shard_bytes = (size_t)v;
    PT_TRY(config_keyed(model_save_dtype_parse(&o->save_dtype, config_string(cfg, "save_dtype"), "save_dtype", err), err, cfg,
                 "save_dtype"));
    return hash_config(&o->config_hash, cfg, err);
}
