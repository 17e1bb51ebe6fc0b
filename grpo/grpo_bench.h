/* grpo_bench.h — one GRPO step on the demo model for `make bench grpo`: its time split between
 * generation, scoring and the update, tokens per second, and the update measured against the
 * model's bare forward + backward over the same tokens.
 *
 * Setup (in memory and a temporary folder, removed afterwards): the model of `model_config_path`
 * initialised from seed 1; the benchmark tokenizer of sft/sft_bench.h; countdown prompts from the
 * built-in generator (seed 1, difficulty 1, the demo's task) scored by the countdown reward. A step
 * is P prompts × G samples of at most C completion tokens, μ = 1, β = 0; a random model rarely
 * stops early, so completions run to C — the worst case of a step. Round 0 warms up; each number
 * is from the fastest of `steps` timed rounds.
 */
#ifndef POSTTRAIN_GRPO_GRPO_BENCH_H
#define POSTTRAIN_GRPO_GRPO_BENCH_H

#include "core/error.h"

typedef struct grpo_bench_result {
    int P, G, C;                 /* prompts, samples per prompt, completion tokens at most */
    double step_seconds, gen_seconds, score_seconds, update_seconds;
    double tokens;               /* prompt + completion tokens of the step */
    double completion_tokens;    /* generated tokens of the step */
    double tokens_per_s;         /* step tokens / step seconds */
    double gen_tokens_per_s;     /* generated tokens / generation seconds */
    double update_share;         /* update / step */
} grpo_bench_result;

pt_status grpo_bench(grpo_bench_result *r, const char *model_config_path, int P, int G, int C, int steps,
                     pt_error *err);

#endif
