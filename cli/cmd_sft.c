/* cmd_sft.c — `posttrain sft --model DIR --data FILE --out RUN_DIR [--config FILE] [--key value ...]`:
 * supervised fine-tuning (sft/sft_trainer.h). Log lines and the progress bar go to stderr; the
 * summary (held-out loss before and after, where the final model is) to stdout. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/log.h"
#include "sft/sft_trainer.h"

static const char SUMMARY[] =
    "Supervised fine-tuning of a DeepSeek-V3-style model on JSONL data ({\"text\"}, {\"prompt\",\"completion\"} or "
    "{\"messages\"}): token-mean NLL on the completion (or assistant turns), plus the MTP and balance losses; AdamW "
    "with warm-up and decay; held-out loss every eval_steps; checkpoints every save_steps that `--resume auto` "
    "continues bit-identically. Writes RUN_DIR/run.db (metrics per step), RUN_DIR/checkpoints/step-N and "
    "RUN_DIR/final (a Hugging Face model folder with the tokenizer).\n\n"
    "  posttrain sft --model DIR --data FILE --out RUN_DIR [--eval-data FILE] [--config FILE] [--key value ...]";

int cmd_sft(int argc, char **argv) {
    config cfg;
    int rc = cli_parse(&cfg, &SFT_SCHEMA, 1, argc, argv, SUMMARY);
    if (rc) return rc < 0 ? 0 : rc;
    pt_error err = {0};
    log_level level;
    if (log_level_parse(&level, config_string(&cfg, "log_level"), &err) != PT_OK) {
        rc = cli_fail("sft", &err);
        config_free(&cfg);
        return rc;
    }
    logger lg;
    logger_init(&lg, stderr, level, NULL, NULL);
    sft_io io = {.log = &lg, .progress = stderr, .hooks = NULL};
    sft_result res;
    if (sft_run(&res, &cfg, &io, &err) != PT_OK) {
        rc = cli_fail("sft", &err);
    } else {
        if (!isnan(res.eval_loss_start) || !isnan(res.eval_loss_end))
            printf("held-out loss: %.4f before training, %.4f after step %lld\n", res.eval_loss_start,
                   res.eval_loss_end, (long long)res.end_step);
        printf("trained steps %lld..%lld of %lld in %.1f s (%.0f tokens/s)%s; last training loss %.4f\n",
               (long long)res.start_step, (long long)res.end_step, (long long)res.total_steps, res.seconds,
               res.tokens_per_s, res.stopped_early ? ", stopped by time_limit" : "", res.train_loss_last);
        if (res.skipped_steps) printf("%lld step(s) skipped for NaN/Inf\n", (long long)res.skipped_steps);
        printf("final model: %s\nmetrics: %s/run.db\n", res.final_dir, config_string(&cfg, "out"));
        rc = 0;
    }
    config_free(&cfg);
    return rc;
}
