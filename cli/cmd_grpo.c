/* cmd_grpo.c — `posttrain grpo --model DIR --data FILE --rewards REWARDS.json --out RUN_DIR
 * [--config FILE] [--key value ...]`: GRPO reinforcement learning (grpo/run.h). Log lines and the
 * progress line go to stderr; the summary (reward at the first and last step, where the final
 * model is) to stdout. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "grpo/run.h"

static const char SUMMARY[] =
    "GRPO on prompt data ({\"prompt\", ...columns} JSONL): each step samples num_generations completions for "
    "per_device_train_batch_size prompts, scores them with the rewards of REWARDS.json (a JSON array of reward "
    "configs), turns group-relative advantages into num_iterations clipped policy updates (loss_type grpo, bnpo, dapo "
    "or dr_grpo; token or sequence ratios; optional k3 KL to the starting model with beta > 0). Keys use TRL's "
    "GRPOConfig names. Writes RUN_DIR/run.db (metrics and every rollout per step), RUN_DIR/checkpoints/step-N (which "
    "`--resume auto` continues bit-identically) and RUN_DIR/final (a Hugging Face model folder with the tokenizer).\n\n"
    "  posttrain grpo --model DIR --data FILE --rewards REWARDS.json --out RUN_DIR [--config FILE] [--key value ...]";

int cmd_grpo(int argc, char **argv) {
    config cfg;
    int rc = cli_parse(&cfg, &GRPO_SCHEMA, 1, argc, argv, SUMMARY);
    if (rc) return rc < 0 ? 0 : rc;
    pt_error err = {0};
    log_level level;
    if (log_level_parse(&level, config_string(&cfg, "log_level"), &err) != PT_OK) {
        rc = cli_fail("grpo", &err);
        config_free(&cfg);
        return rc;
    }
    logger lg;
    logger_init(&lg, stderr, level, NULL, NULL);
    grpo_io io = {.log = &lg, .progress = stderr, .hooks = NULL};
    grpo_result res;
    if (grpo_run(&res, &cfg, &io, &err) != PT_OK) {
        rc = cli_fail("grpo", &err);
    } else {
        if (res.end_step == res.start_step)
            printf("nothing to train: the run is already at step %lld of %lld\n", (long long)res.end_step,
                   (long long)res.total_steps);
        else
            printf("trained steps %lld..%lld of %lld in %.1f s; mean reward %.4f at the first step, %.4f at the last\n",
                   (long long)res.start_step, (long long)res.end_step, (long long)res.total_steps, res.seconds,
                   res.reward_first, res.reward_last);
        if (res.skipped_steps) printf("%lld update(s) skipped for NaN/Inf\n", (long long)res.skipped_steps);
        printf("final model: %s\nmetrics and rollouts: %s/run.db\n", res.final_dir, config_string(&cfg, "out"));
        rc = 0;
    }
    config_free(&cfg);
    return rc;
}
