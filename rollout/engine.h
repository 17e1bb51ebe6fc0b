/* engine.h — the rollout engine: G completions per prompt from the MoE policy, fast.
 *
 * Each prompt is prefilled once (in chunks) into the latent cache; its G samples share the
 * prompt's blocks (rollout/latent_cache.h) and each writes only its own continuation. All live
 * sequences decode together — every matrix multiply runs over all their tokens at once
 * (rollout/decode.h) — and a finished sequence's slot is refilled from the queue at once
 * (continuous batching). A memory budget (max cached tokens) is enforced by reserving, before a
 * group is admitted, every block its G samples could need: work waits in the queue instead of
 * failing mid-flight.
 *
 * Randomness: sample s of prompt p draws from the Philox stream (seed, p, s), token t from block
 * t of that stream; a completion is therefore the same whatever batch, thread count or group
 * layout produced it (up to fp32 rounding of the batched GEMMs, which never changed a token in
 * the tests). Each token comes with its log-probability under the temperature-scaled policy
 * (rollout/sampler.h), so GRPO can use it as the old-policy log-prob.
 */
#ifndef POSTTRAIN_ROLLOUT_ENGINE_H
#define POSTTRAIN_ROLLOUT_ENGINE_H

#include <stdint.h>

#include "model/model.h"
#include "model/tokenizer.h"
#include "rollout/decode.h"
#include "rollout/latent_cache.h"
#include "rollout/sampler.h"
#include "rollout/stop.h"

typedef struct rollout_config {
    int num_generations;       /* G completions per prompt */
    int max_completion_length; /* tokens per completion at most */
    int max_live;              /* sequences decoding at once */
    int64_t max_cached_tokens; /* memory budget of the latent cache, in tokens */
    int block_tokens;          /* tokens per cache block (16) */
    int prefill_chunk;         /* prompt tokens per prefill step */
    int share_prefix;          /* 1: samples share their prompt's blocks; 0: each prefills its own */
    uint64_t seed;
    sampler_config sampling;
    const int *eos_ids;        /* stop on any of these (NULL/0: none) */
    int n_eos;
    const char *const *stop_strings; /* stop on any of these decoded strings (needs a tokenizer) */
    int n_stop;
    int speculative;           /* 1: the model's first MTP module drafts one token per step and the
                                  next step verifies it with the speculative-sampling rule, so the
                                  output distribution is unchanged (needs num_nextn_predict_layers) */
    int vocab_limit;           /* sample only ids below this (the tokenizer's size when the model's
                                  vocabulary is padded beyond it); 0: the model's vocab_size */
} rollout_config;

rollout_config rollout_config_default(void);

typedef struct rollout_prompt {
    const int *ids;
    int len;
    int64_t index; /* global prompt id: keys the random stream (seed, index, sample) */
} rollout_prompt;

typedef struct rollout_completion {
    int64_t prompt_index;
    int sample_index;
    int *ids;        /* (len) completion tokens, through the one that finished it */
    float *logprobs; /* (len) log-probability of each token under the sampling policy */
    int len;
    finish_reason finish;
    int stop_cut;    /* bytes of the decoded text to keep when a stop string ended it, else -1
                        (the stop string and an EOS token's text are not part of the completion) */
} rollout_completion;

typedef struct rollout_stats {
    int64_t prompt_tokens, generated_tokens, steps;
    int peak_live;
    int peak_blocks;        /* most cache blocks in use at once */
    int64_t peak_cached_tokens;
    int64_t drafts, accepted;  /* speculative decoding: drafts verified and accepted */
    double seconds;
} rollout_stats;

typedef struct rollout_engine {
    const policy_model *m;
    const tokenizer *tok; /* for stop strings; may be NULL */
    rollout_config cfg;
    latent_cache cache;
    decode_ws ws;
    void *scratch;        /* sampler scratch */
    token_bytes vocab;    /* each id's bytes, for stop strings */
    float *prefill_logits;/* (V) logits after a prompt's last token */
    float *prefill_hidden;/* (H) final-normed hidden state at a prompt's last token */
    float *q;             /* (max_live, V) each slot's draft distribution */
    float *p;             /* (V) target distribution scratch */
    float *mtp_h;         /* (2·max_live, H) hidden rows fed to the MTP module */
    stop_rules rules;
    int max_len;          /* longest sequence (prompt + completion) */
} rollout_engine;

pt_status rollout_engine_init(rollout_engine *e, const policy_model *m, const tokenizer *tok,
                              const rollout_config *cfg, pt_error *err);
void rollout_engine_free(rollout_engine *e);

/* Generates G completions for each of the n prompts into out[p·G + s] (prompt-major order). */
pt_status rollout_generate(rollout_engine *e, const rollout_prompt *prompts, int n, rollout_completion *out,
                           rollout_stats *stats, pt_error *err);
void rollout_completions_free(rollout_completion *c, int n);

/* The ids that end a completion: the model's eos_token_id(s) and the tokenizer's EOS when it is
 * not among them (tok may be NULL). out holds MODEL_MAX_EOS + 1; returns how many. */
int rollout_eos_ids(int *out, const policy_model *m, const tokenizer *tok);

#endif
