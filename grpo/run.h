/* run.h — a whole GRPO run: config (TRL key names), run folder, step loop, run store, progress
 * line, checkpoints, exact resume and the final model folder. One step is grpo/trainer.h's.
 *
 * A run, in order — everything that can be checked is checked before anything is written, so a
 * bad config, path, rewards file or data file leaves no run folder (or, for an existing run
 * folder, leaves it as it was):
 *   - resolve the options (GRPO_SCHEMA; every key names where its value came from in errors);
 *     read the rewards file (a JSON array of reward configs, rewards/reward.h) and build the
 *     reward set; open the tokenizer (the model folder's, or `tokenizer`); open the prompt data
 *     (datasets/dataset.h, format "prompt", prompts left-truncated to max_prompt_length); load
 *     the model — or, resuming, the checkpoint (train_state_load, config hash checked) and the
 *     starting model again as the frozen reference when beta ≠ 0; build the trainer;
 *   - refuse an --out that already holds a run unless resuming;
 *   - create the run folder and RUN/run.db, record the run, and when resuming from step s drop
 *     the store's steps after s (they are redone identically);
 *   - each step: the trainer's step with per_device_train_batch_size prompts from the data
 *     loader (data_loader_next_examples: seeded order per epoch, endless); the step's metrics
 *     (TRL names) and every rollout (prompt, completion, per-reward scores, total, advantage,
 *     length, finish reason) in one run-store transaction; the progress line; a checkpoint every
 *     save_steps and at the last step (never after a skipped step, so the newest checkpoint
 *     always holds finite weights) holding the parameters, AdamW moments and step, the trainer
 *     step and the loader cursor;
 *   - at the end RUN/final: an HF model folder with the tokenizer files, written as final.tmp
 *     and renamed into place.
 * Randomness: a step's rollouts are keyed by (seed, step, prompt ordinal, sample), the prompt
 * ordinal being epoch·N + position of the prompt in the data order — unique over the run and
 * restored by the cursor — so the checkpoint needs no RNG stream and `resume: auto` continues
 * bit-identically. NaN: the trainer skips a non-finite update; max_nan_steps in a row abort the
 * run with PT_ERR_NUMERIC, leaving the last checkpoint untouched.
 * Known limit: a run with beta ≠ 0 and sync_ref_model cannot resume after its first sync (the
 * mixed reference model is not in the checkpoint); that resume is refused with a clear error.
 */
#ifndef POSTTRAIN_GRPO_RUN_H
#define POSTTRAIN_GRPO_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "grpo/trainer.h"

/* Every key of `posttrain grpo` (see run.c for defaults and help). */
extern const config_schema GRPO_SCHEMA;

/* Observation points for tests and tools; every member may be NULL. */
typedef struct grpo_run_hooks {
    void *ctx;
    /* the step's metrics and rollouts are committed (and its checkpoint written when due); return
     * false to stop the run right there, as if it were killed (no final folder is written) */
    bool (*after_step)(void *ctx, const grpo_step_stats *s);
} grpo_run_hooks;

/* How a run talks to the outside. Every member may be NULL (silent). */
typedef struct grpo_io {
    const logger *log;        /* start, every logging_steps, checkpoints, warnings */
    FILE *progress;           /* the progress line */
    const grpo_run_hooks *hooks;
} grpo_io;

typedef struct grpo_result {
    int64_t start_step;       /* 0, or the checkpoint resumed from */
    int64_t end_step;         /* steps done at the end */
    int64_t total_steps;      /* max_steps */
    double reward_first;      /* mean reward of the first step of this process (NaN: none) */
    double reward_last;       /* of the last step */
    int64_t skipped_steps;    /* optimizer steps skipped for NaN/Inf in this process */
    double seconds;           /* training time in this process */
    bool stopped;             /* a hook stopped the run */
    char final_dir[4096];     /* "" when not written */
} grpo_result;

/* A whole run from a config of GRPO_SCHEMA (see the file comment). */
pt_status grpo_run(grpo_result *res, const config *cfg, const grpo_io *io, pt_error *err);

#endif
