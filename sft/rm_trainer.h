/* rm_trainer.h — reward-model training on preference pairs (`posttrain rm`): the Bradley–Terry
 * objective of InstructGPT / TRL's RewardTrainer on a model/reward_model.h scalar head.
 *
 * Data: JSONL {"prompt"?, "chosen", "rejected"} (strings or message lists; datasets/dataset.h's
 * preference shape: prompt+chosen and prompt+rejected tokenised as prompt_completion, truncated
 * on the right to max_length). A bad record stops the run with "file:line: field 'x': ..." (or
 * is skipped and counted with on_bad_line skip). Held-out pairs: eval_data, or else the seeded
 * eval_fraction of data (never trained on).
 *
 * One step: B pairs (a seeded shuffle per epoch, crossing epoch boundaries) as 2B rows — chosen
 * rows then rejected rows, right-padded to the longest pair of the data; r = the reward model's
 * scores; loss = mean_i −log σ(r_chosen,i − r_rejected,i) + center_rewards_coefficient ·
 * mean_i (r_chosen,i + r_rejected,i)² (TRL's centring term); plus aux_loss_scale × the balance
 * loss. Gradients are clipped by their global norm over trunk and head together, then AdamW
 * (core/optim.h) updates trunk and head with lr = lr_at(schedule, optimizer steps). A non-finite
 * loss or norm skips the update (counted; max_nan_steps in a row abort). Router biases stay as
 * loaded (the aux-loss-free bias update is not applied while training a reward model).
 *
 * Evaluation (before the first step, every eval_steps and after the last): eval_loss (mean
 * Bradley–Terry loss), eval_accuracy (fraction with r_chosen > r_rejected; a tie counts as
 * wrong), eval_margin (mean r_chosen − r_rejected).
 *
 * Run folder (--out, created; a folder already holding run.db or final/ is refused): run.db with
 * the run's config and per step loss, accuracy, margin, rewards/chosen, rewards/rejected,
 * learning_rate, grad_norm, grad_clip_coef, nan_skipped (and the eval metrics when computed);
 * final/ — the reward model folder (reward_model_save) with the tokenizer files, written as
 * final.tmp and renamed. No intermediate checkpoints: a run is short, and is re-run rather than
 * resumed.
 */
#ifndef POSTTRAIN_SFT_RM_TRAINER_H
#define POSTTRAIN_SFT_RM_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"

/* Every key of `posttrain rm` (rm_trainer.c has defaults and help). */
extern const config_schema RM_SCHEMA;

typedef struct rm_io {
    const logger *log; /* start, every logging_steps, evaluations, warnings; NULL: silent */
} rm_io;

typedef struct rm_result {
    int64_t steps;              /* optimizer steps run (skipped ones included) */
    int64_t skipped_steps;
    int64_t train_pairs, eval_pairs;
    double eval_loss_start, eval_accuracy_start; /* NaN without held-out pairs */
    double eval_loss_end, eval_accuracy_end;
    double train_loss_last;
    double seconds;             /* training time */
    char final_dir[4096];
} rm_result;

/* A whole run from a config of RM_SCHEMA (see the file comment). Everything is checked (keys,
 * paths, every record) before anything is written. */
pt_status rm_run(rm_result *res, const config *cfg, const rm_io *io, pt_error *err);

#endif
