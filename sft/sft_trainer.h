/* sft_trainer.h — supervised fine-tuning: the step loop (sft_trainer) and a whole run with its
 * run folder, metrics, evaluation, checkpoints and exact resume (sft_run).
 *
 * One trainer step, in order:
 *   1. gradient_accumulation_steps batches of (B, T) from the data loader (datasets/loader.h:
 *      seeded shuffle per epoch, optional packing, loss masks from the data shape);
 *   2. forward and backward of the step's loss (sft/sft_step.h: token mean NLL over the step,
 *      plus aux_loss_scale × (MTP + balance losses)), gradients accumulated and zeroed per step;
 *   3. a loss, MTP loss, balance loss or gradient norm that is NaN/Inf skips the update (params,
 *      moments, router biases and the optimizer's step count stay as they were; the data moves
 *      on) and counts in a nan_guard; max_nan_steps in a row abort the run with PT_ERR_NUMERIC;
 *   4. otherwise AdamW (core/optim.h) with lr = lr_at(schedule, optimizer steps taken), then
 *      DeepSeek-V3's router-bias update with γ = the model's posttrain_bias_update_speed, using
 *      the step's summed expert loads.
 * Nothing in a step is random besides the data order, which is a pure function of (seed, epoch),
 * so the state to resume is: parameters (router biases included), AdamW moments and step count,
 * the trainer step and the data cursor — exactly what core/train_state.h saves (no RNG streams).
 *
 * A run (sft_run), in order — everything that can be checked is checked before anything is
 * written, so a bad config, path or data file leaves no run folder (or, for an existing run
 * folder, leaves it exactly as it was):
 *   - resolve the options (sft/sft_config.h); open the tokenizer, the training and eval data
 *     (every record is validated and tokenised here); load the starting model — or, resuming,
 *     the checkpoint (which must verify) — and check that the vocabulary, positions and data
 *     cursor fit; plan the number of steps (max_steps, or num_train_epochs over the packed
 *     batches) and the warm-up;
 *   - refuse an --out that already holds a run (run.db or checkpoints) unless resuming;
 *   - create the run folder, open RUN/run.db (datasets/run_store.h), record the run and, when
 *     resuming from step s, drop the store's steps after s (they are redone identically);
 *   - step 0: eval_loss on a fresh run with eval data;
 *   - each step: metrics (loss, mtp_loss, balance_loss, learning_rate, grad_norm, grad_clip_coef,
 *     tokens (not padding), loss_tokens, tokens_per_second, step_time, epoch,
 *     expert_load/max_over_mean, expert_load/cv, nan_skipped) committed to run.db in one
 *     transaction, eval_loss every
 *     eval_steps and at the last step, then a checkpoint every save_steps and at the last step
 *     (RUN/checkpoints/step-N, with keep-newest save_total_limit) — never after a skipped step,
 *     so the newest checkpoint always holds finite weights;
 *   - at the end RUN/final: an HF model folder (config.json, weights, tokenizer.json and
 *     tokenizer_config.json), written beside as final.tmp and renamed into place.
 * A run killed at any moment resumes with `resume: auto` from its newest complete checkpoint, and
 * the steps after it come out bit-identical to those of a run that was never interrupted.
 */
#ifndef POSTTRAIN_SFT_SFT_TRAINER_H
#define POSTTRAIN_SFT_SFT_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/log.h"
#include "core/optim.h"
#include "core/schedule.h"
#include "datasets/loader.h"
#include "model/model.h"
#include "sft/sft_config.h"
#include "sft/sft_step.h"

/* Observation points for tests and tools; every member may be NULL. step is 1-based: the step
 * being computed (after_backward) or just finished. */
typedef struct sft_hooks {
    void *ctx;
    /* gradients of the step are in m->grads, the optimizer has not run (a test may poison them) */
    void (*after_backward)(void *ctx, int64_t step, policy_model *m);
    /* the checkpoint of `step` is about to be written */
    void (*before_save)(void *ctx, int64_t step);
    /* the step's metrics are committed (and its checkpoint written when one was due) */
    void (*after_step)(void *ctx, int64_t step);
} sft_hooks;

/* What one step did. */
typedef struct sft_step_stats {
    int64_t step;           /* 1-based trainer step just done */
    double loss;            /* token mean NLL of the step (NaN when it had no target) */
    double mtp_loss;        /* model-weighted MTP loss, mean over micro-batches */
    double balance_loss;    /* model-weighted balance loss, mean over micro-batches */
    double lr;              /* learning rate used (or that would have been used when skipped) */
    double grad_norm;       /* global norm before clipping */
    double clip_coef;       /* factor applied by clipping (1: none) */
    bool skipped;           /* non-finite: nothing was updated */
    long loss_tokens, tokens, positions;
    double seconds;         /* wall time of the step */
    double expert_max_over_mean; /* max over MoE layers of max load / mean load (1: balanced) */
    double expert_cv;            /* mean over MoE layers of the load's coefficient of variation */
    double epoch;           /* epochs done, with the fraction of the current one */
} sft_step_stats;

typedef struct sft_trainer {
    const sft_options *opt;
    policy_model *m;        /* borrowed */
    optim *optim;           /* borrowed */
    lr_schedule sched;      /* resolved: total and warm-up steps final */
    data_loader loader;
    model_acts acts;        /* (B, T) */
    data_batch *micro;      /* (grad_accum) */
    float *dlogp;           /* (B·T) */
    int *load_sum;          /* (L + D, E) */
    nan_guard guard;
    int64_t step;           /* trainer steps done, skipped ones included */
    float gamma;            /* router-bias update speed */
} sft_trainer;

/* Counts the optimizer steps of num_train_epochs passes over ds in batches of o's shape (packing
 * simulated from the token counts, as the loader packs), rounded up; at least 1. */
int64_t sft_plan_steps(const sft_options *o, const dataset *ds);

/* A trainer over m and opt (borrowed; opt matching m's layout) at trainer step `step`, reading ds
 * from `cursor` (NULL: the start). sched must be resolved. On failure nothing needs freeing. */
pt_status sft_trainer_init(sft_trainer *t, const sft_options *o, policy_model *m, optim *opt, const lr_schedule *sched,
                           dataset *ds, const dataset_cursor *cursor, int64_t step, pt_error *err);
void sft_trainer_free(sft_trainer *t);
/* One step (see the file comment). PT_ERR_NUMERIC when the NaN guard runs out (s is filled). */
pt_status sft_trainer_step(sft_step_stats *s, sft_trainer *t, const sft_hooks *hooks, pt_error *err);

/* How a run talks to the outside. Every member may be NULL (silent). */
typedef struct sft_io {
    const logger *log;      /* log lines (start, every logging_steps, eval, checkpoints, warnings) */
    FILE *progress;         /* the progress bar */
    const sft_hooks *hooks;
} sft_io;

typedef struct sft_result {
    int64_t start_step;     /* 0, or the checkpoint resumed from */
    int64_t end_step;       /* steps done at the end */
    int64_t total_steps;    /* planned */
    double eval_loss_start; /* held-out loss at step 0 (NaN without eval data) */
    double eval_loss_end;   /* at the end */
    double train_loss_last; /* loss of the last step */
    int64_t skipped_steps;  /* in this process */
    double seconds;         /* training time in this process */
    double tokens_per_s;    /* non-padding tokens per second in this process */
    bool stopped_early;     /* time_limit reached */
    char final_dir[4096];
} sft_result;

/* A whole run from a config of SFT_SCHEMA (see the file comment). */
pt_status sft_run(sft_result *res, const config *cfg, const sft_io *io, pt_error *err);

#endif
