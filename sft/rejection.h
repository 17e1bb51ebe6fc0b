/* rejection.h — rejection sampling (DeepSeek-R1's second SFT round): N samples per prompt from
 * the current model, scored by a reward set; keep those at or above a threshold, or the best of
 * N; drop duplicates (identical completion text for the same prompt); cap the kept samples per
 * prompt; write them as an SFT dataset, one JSON line per kept sample:
 *
 *   {"prompt": <the prompt field as it was>, "completion": "<sample>", <the other columns>}
 *
 * (a conversational prompt — a list of messages — gets "completion": [{"role": "assistant",
 * "content": "<sample>"}], TRL's conversational prompt-completion shape). The input's own
 * "completion" column, if any, is replaced. Keeping is decided per prompt from its N scored
 * samples: candidates are the samples with a score (masked ones never pass), whose text is valid
 * UTF-8 (a byte-level model can emit other bytes; SFT data must be text) and, with a threshold,
 * score ≥ threshold; best_of_n keeps only the highest-scoring candidates (ties: the earliest
 * sample first); then duplicates are dropped and the first max_per_prompt kept.
 */
#ifndef POSTTRAIN_SFT_REJECTION_H
#define POSTTRAIN_SFT_REJECTION_H

#include <stdbool.h>
#include <stdio.h>

#include "grpo/eval.h"

typedef struct rs_options {
    eval_options gen;   /* sampling (num_samples = N, temperature > 0 for N > 1) */
    bool use_threshold;
    double threshold;   /* keep total ≥ threshold */
    bool best_of_n;     /* keep only the best-scoring candidate(s) */
    int max_per_prompt; /* kept samples per prompt at most (0: no cap) */
} rs_options;

typedef struct rs_result {
    size_t prompts, samples, kept, duplicates, prompts_kept; /* prompts_kept: prompts with ≥ 1 kept */
    size_t invalid_utf8; /* candidates dropped because their text is not valid UTF-8 */
    size_t *yield;      /* (N + 1) prompts by number of kept samples */
    int n;              /* N */
    eval_result eval;   /* the samples' summary (mean reward, accuracy, pass@k) */
} rs_result;

void rs_result_free(rs_result *r);

/* Samples, scores, selects and writes kept samples to `out` (JSONL). When rs is not NULL every
 * sample goes into its open step as a rollout (advantage NaN). */
struct run_store;
pt_status rejection_sample(rs_result *res, const policy_model *m, const tokenizer *tok, reward_set *rewards,
                           dataset *ds, const rs_options *o, FILE *out, struct run_store *rs, pt_error *err);

#endif
