/* sft_config.h — the SFT run's keys (TRL's SFTConfig / transformers' TrainingArguments names
 * where they have one), their defaults, and the checked options the trainer runs from.
 *
 * A run is configured by one JSON file plus `--key value` overrides (core/config.h); every key
 * of SFT_KEYS is listed by `posttrain sft --help`. sft_options_from_config turns the resolved
 * config into sft_options and checks every value and every relation between values, with a
 * message that names the key, where its value came from ("run.json:7", "--max-length",
 * "default") and what is accepted. Nothing is opened or created here: file checks belong to the
 * trainer (sft/sft_trainer.h), which does them all before it writes anything.
 *
 * The config hash saved in checkpoints (and compared on resume) covers only the keys that change
 * the numbers a step computes — the optimiser, schedule, batch shape, data shape and loss keys.
 * Paths (the data may move; its content is checked by the data cursor's fingerprint),
 * bookkeeping (logging, evaluation, checkpoint cadence, time limit) and resume keys are left out,
 * so moving a run or evaluating more often does not block a resume.
 *
 * Invariant: the string pointers in sft_options point into the config and live as long as it.
 */
#ifndef POSTTRAIN_SFT_SFT_CONFIG_H
#define POSTTRAIN_SFT_SFT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/optim.h"
#include "core/schedule.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "model/precision.h"
#include "sft/model_export.h"

/* Every key of `posttrain sft` (see sft_config.c for defaults and help). */
extern const config_schema SFT_SCHEMA;

typedef struct sft_options {
    /* where things are */
    const char *model_dir;      /* the starting HF model folder */
    const char *tokenizer_path; /* tokenizer folder or tokenizer.json (NULL: model_dir) */
    const char *data_path;      /* training JSONL */
    const char *eval_data_path; /* held-out JSONL, or NULL */
    const char *out_dir;        /* the run folder */
    const char *resume;         /* NULL: fresh run; "auto": newest checkpoint in out_dir/checkpoints if any;
                                   else a checkpoint folder */
    bool allow_config_change;   /* resume even when the config hash differs */
    /* data */
    dataset_options data;       /* shape, masks, truncation; max_length = T */
    data_loader_options loader; /* B, T, packing, shuffle, seed (endless: the trainer counts steps) */
    int eval_batch_size;        /* rows per eval batch (default: B) */
    /* optimisation */
    optim_config optim;
    lr_schedule sched;          /* total_steps and warmup_steps are final only after sft_plan_steps */
    double warmup_ratio;        /* used when warmup_steps is 0 */
    int64_t max_steps;          /* > 0: the run's length in optimizer steps; ≤ 0: from num_train_epochs */
    double num_train_epochs;
    int grad_accum;             /* micro-batches per optimizer step */
    double aux_loss_scale;      /* weight of the MTP and balance losses in the backward */
    model_precision precision;  /* the policy's training GEMMs (model/precision.h) */
    /* bookkeeping */
    int64_t eval_steps;         /* evaluate every N steps (0: at the start and the end only) */
    int64_t save_steps;         /* checkpoint every N steps (0: only at the end) */
    int save_total_limit;       /* checkpoints kept (0: all) */
    int64_t logging_steps;      /* a log line every N steps */
    int max_nan_steps;          /* abort after this many non-finite steps in a row */
    double time_limit;          /* seconds of training before stopping early (0: none) */
    size_t max_shard_bytes;     /* model shards above this size */
    model_save_dtype save_dtype; /* weights of final/ (checkpoints are always fp32) */
    uint64_t config_hash;       /* FNV-1a 64 of the math keys (see the file comment) */
} sft_options;

/* Resolves and checks the config (see the file comment). On failure *o is unspecified. */
pt_status sft_options_from_config(sft_options *o, const config *cfg, pt_error *err);

/* FNV-1a 64 over n bytes, continuing from h (start with SFT_FNV_OFFSET). */
#define SFT_FNV_OFFSET UINT64_C(0xcbf29ce484222325)
uint64_t sft_fnv1a64(uint64_t h, const void *bytes, size_t n);

#endif
