/* cmd_rm.c — `posttrain rm --model DIR --data pairs.jsonl --out RUN_DIR [--eval-data FILE] [--key value ...]`:
 * reward-model training on preference pairs (sft/rm_trainer.h). Log lines go to stderr; the
 * summary (held-out pairwise accuracy and loss before and after, where the model is) to stdout. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "sft/rm_trainer.h"

static const char SUMMARY[] =
    "Train a reward model on preference pairs, JSONL {\"prompt\", \"chosen\", \"rejected\"}: the model's trunk with a "
    "scalar head (score.weight) on the last token, Bradley-Terry loss -log sigmoid(r_chosen - r_rejected), AdamW. "
    "Reports pairwise accuracy and loss on held-out pairs (--eval-data, or eval_fraction of --data). Writes "
    "RUN_DIR/run.db (metrics per step) and RUN_DIR/final (a Hugging Face sequence-classification folder with the "
    "tokenizer), which `posttrain serve --reward-model` and the \"model\" reward load.\n\n"
    "  posttrain rm --model DIR --data FILE --out RUN_DIR [--eval-data FILE] [--config FILE] [--key value ...]";

int cmd_rm(int argc, char **argv) {
    config cfg;
    int rc = cli_parse(&cfg, &RM_SCHEMA, 1, argc, argv, SUMMARY);
    if (rc) return rc < 0 ? 0 : rc;
    pt_error err = {0};
    log_level level;
    if (log_level_parse(&level, config_string(&cfg, "log_level"), &err) != PT_OK) {
        rc = cli_fail("rm", &err);
        config_free(&cfg);
        return rc;
    }
    logger lg;
    logger_init(&lg, stderr, level, NULL, NULL);
    rm_io io = {.log = &lg};
    rm_result res;
    if (rm_run(&res, &cfg, &io, &err) != PT_OK) {
        rc = cli_fail("rm", &err);
    } else {
        if (res.eval_pairs > 0)
            printf("held-out pairs: %lld; pairwise accuracy %.3f -> %.3f, loss %.4f -> %.4f\n",
                   (long long)res.eval_pairs, res.eval_accuracy_start, res.eval_accuracy_end, res.eval_loss_start,
                   res.eval_loss_end);
        printf("trained %lld steps on %lld pairs in %.1f s; last training loss %.4f\n", (long long)res.steps,
               (long long)res.train_pairs, res.seconds, res.train_loss_last);
        if (res.skipped_steps) printf("%lld step(s) skipped for NaN/Inf\n", (long long)res.skipped_steps);
        printf("reward model: %s\nmetrics: %s/run.db\n", res.final_dir, config_string(&cfg, "out"));
        rc = 0;
    }
    config_free(&cfg);
    return rc;
}
