/* eval.h — held-out evaluation of a policy: n completions per prompt from the rollout engine,
 * scored by a reward set, summarised as mean reward, accuracy and pass@k.
 *
 * A completion is *correct* when the score of the accuracy reward (one reward of the set by
 * name, or the weighted total when none is named) is at least `correct_threshold`. A completion
 * that the reward set masks (no score) counts as incorrect and is counted in `masked`.
 *
 *   accuracy   correct completions / all completions (with n = 1 and greedy decoding: the
 *              fraction of prompts solved)
 *   pass@k     the unbiased estimator of Chen et al. (2021), averaged over prompts:
 *              1 − C(n − c, k) / C(n, k) for a prompt with c correct of n samples (k ≤ n),
 *              computed as a running product so large n do not overflow
 *   mean_reward  mean weighted total over scored completions
 *
 * Sampling follows the engine's rules (rollout/engine.h): temperature 0 is greedy (then n must
 * be 1 — greedy samples are all the same); otherwise sample s of prompt p draws from the stream
 * (seed, p, s), so an evaluation is reproducible. Prompts are processed in chunks of
 * `chunk_prompts` to bound memory.
 */
#ifndef POSTTRAIN_GRPO_EVAL_H
#define POSTTRAIN_GRPO_EVAL_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "datasets/dataset.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "rewards/reward.h"
#include "rollout/sampler.h"

struct rollout_completion;

#define EVAL_MAX_PASS_K 8

/* One prompt's n completions, handed to eval_options.on_prompt after scoring. Pointers live
 * until the callback returns. per_reward[k * stride + g] is reward k's result for sample g. */
typedef struct eval_prompt_view {
    const dataset_example *ex;
    int n;                              /* samples */
    char *const *text;                  /* (n) decoded completions */
    const struct rollout_completion *comp; /* (n) tokens, finish reasons */
    const reward_result *total;         /* (n) weighted totals */
    const reward_result *per_reward;    /* see above */
    size_t stride;
    const uint8_t *correct;             /* (n) */
} eval_prompt_view;

typedef struct eval_options {
    int num_samples;           /* n completions per prompt (1 for greedy) */
    int max_prompt_length;     /* prompt tokens kept (the last ones) */
    int max_completion_length; /* tokens per completion at most */
    int max_live;              /* sequences decoding at once (0: a chunk's n · prompts) */
    int chunk_prompts;         /* prompts generated at once (0: 64) */
    size_t limit;              /* the first `limit` prompts of the dataset (0: all) */
    uint64_t seed;
    sampler_config sampling;   /* temperature 0: greedy */
    const int *eos_ids;
    int n_eos;
    int pass_k[EVAL_MAX_PASS_K];
    int n_pass_k;
    const char *accuracy_reward; /* a reward's name, or NULL: the weighted total */
    double correct_threshold;
    FILE *completions;         /* when set: one JSON line per completion */
    /* when set: called for every prompt, in dataset order; a non-OK return stops the run */
    pt_status (*on_prompt)(void *ctx, const eval_prompt_view *v, pt_error *err);
    void *on_prompt_ctx;
} eval_options;

eval_options eval_options_default(void);


typedef struct eval_result {
    size_t prompts, completions, correct, masked;
    double accuracy, mean_reward;
    double pass_at[EVAL_MAX_PASS_K]; /* pass@pass_k[i]; NaN when k > n */
    int pass_k[EVAL_MAX_PASS_K];
    int n_pass_k;
    int n_rewards;
    double *reward_mean;       /* (n_rewards) mean of each reward over its scored items (NaN: none) */
    double mean_length;        /* completion tokens */
    double clipped_ratio;      /* completions cut by max_completion_length */
    double seconds, tokens_per_second;
} eval_result;

void eval_result_free(eval_result *r);

/* Evaluates the prompts of ds (a prompt-format dataset: dataset_example.seq holds the prompt
 * ids, columns the extra fields the rewards read). */
pt_status eval_policy(eval_result *out, const policy_model *m, const tokenizer *tok, reward_set *rewards,
                      dataset *ds, const eval_options *o, pt_error *err);

/* What `posttrain eval` and `rejection-sample` load: the rewards file, the tokenizer, the prompts
 * (prompt format, left-truncated to max_prompt_length) and the model, with its EOS ids. Errors
 * name the option (--model, --data, ...) and the path. */
typedef struct eval_setup {
    reward_set rewards;
    tokenizer *tok;
    dataset *ds;
    policy_model m;
    int eos[MODEL_MAX_EOS + 1];
    int n_eos;
    bool have_rewards, have_model;
} eval_setup;

pt_status eval_setup_open(eval_setup *s, const char *model_dir, const char *tokenizer_path, const char *data,
                          const char *rewards_path, const char *chat_format, int max_prompt_length, pt_error *err);
void eval_setup_close(eval_setup *s);

/* pass@k of one prompt with c correct among n samples (k ≤ n). */
double eval_pass_at_k(int n, int c, int k);

/* Parses "1,4,8" into ks (at most EVAL_MAX_PASS_K, each ≥ 1). */
pt_status eval_parse_pass_k(int *ks, int *n, const char *text, pt_error *err);

/* Logs eval/accuracy, eval/mean_reward, eval/pass@k, eval/rewards/<name>/mean, eval/mean_length
 * (prefix "eval" replaced by `prefix` when given) as metrics of the run store's open step. */
struct run_store;
pt_status eval_log_metrics(struct run_store *rs, const eval_result *r, const reward_set *rewards, const char *prefix,
                           pt_error *err);

#endif
