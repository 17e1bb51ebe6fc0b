/* sampler.h — next-token sampling from one position's logits, as transformers' generate does it,
 * and the speculative-sampling acceptance rule.
 *
 * Pipeline (the order of transformers 5.x `GenerationMixin._get_logits_processor`: processors
 * first, then the sampling warpers in the order temperature, top-k, top-p, min-p):
 *   1. repetition penalty (RepetitionPenaltyLogitsProcessor): for every id present in
 *      prompt + completion so far (once per id, however often it occurs), l′ = l / penalty when
 *      l ≥ 0, l′ = l · penalty when l < 0; other ids keep l′ = l. Ids outside [0, V) are ignored.
 *   2. temperature: z = l′ / T (fp32 division, like TemperatureLogitsWarper).
 *   3. top-k (TopKLogitsWarper): keep z ≥ the k-th largest z (ties with it are all kept).
 *   4. top-p (TopPLogitsWarper): over the survivors, p = softmax(z); sort descending and keep a
 *      token when the mass strictly before it is < top_p — so the token that crosses top_p is
 *      kept and at least one token always is. Equal values are ordered by id (lower id first);
 *      transformers' unstable sort leaves that order unspecified.
 *   5. min-p (MinPLogitsWarper): over the survivors, drop p < min_p · max p, i.e.
 *      exp(z − z_max) < min_p.
 *   6. sample from the survivors renormalised: ONE uniform u = rng_uniform_double (two 32-bit
 *      words) per token, inverse CDF over the kept tokens in id order: the first kept id whose
 *      cumulative weight exceeds u · total. The draw count is fixed, so an engine that seeks the
 *      rng to (completion, position) gets the same token whatever else it sampled.
 * Greedy (temperature 0, transformers' do_sample=False) applies only step 1 and returns the
 * argmax of l′ (ties → lowest id), consuming no random numbers.
 *
 * The log-probability returned with a token is log_softmax(l′ / T)[token] over the FULL
 * vocabulary: after the repetition penalty and the temperature, but NOT after top-k/top-p/min-p
 * truncation (T = 1 for greedy). This is what GRPO uses as the old-policy log-prob and what the
 * training forward recomputes from its own logits (TRL divides the logits by the temperature
 * and takes log_softmax); the truncation only decides which tokens can be drawn. The entropy is
 * that of the same full distribution, −Σ p log p. Caveat: with repetition_penalty ≠ 1 this is the
 * log-prob of the penalised distribution that was sampled, not the policy's own (the training
 * forward, like TRL's, never applies the penalty), so GRPO's first-iteration ratio is then ≠ 1.
 *
 * Random numbers per call: sampler_sample 2 words (half a Philox block), spec_accept 4 words (one
 * block when the rng was just seeked). An engine that seeks one block per position must give
 * draft sampling and acceptance separate streams (or separate blocks) so they never share words.
 *
 * Scratch: every call works in a caller-provided buffer of sampler_scratch_bytes(V) bytes
 * (4-byte aligned; one per thread) and never allocates. Shape legend: V vocabulary size.
 * Invariant: for one config and history, sampler_probs gives exactly the distribution that
 * sampler_sample draws from (same code path), which spec_accept relies on.
 */
#ifndef POSTTRAIN_ROLLOUT_SAMPLER_H
#define POSTTRAIN_ROLLOUT_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

typedef struct sampler_config {
    float temperature;        /* 0: greedy; > 0: sample (TRL `temperature`) */
    int top_k;                /* 0: off (TRL `top_k`) */
    float top_p;              /* 1: off; in [0, 1] (TRL `top_p`) */
    float min_p;              /* 0: off; in [0, 1] (TRL `min_p`) */
    float repetition_penalty; /* 1: off; > 0 (TRL `repetition_penalty`) */
} sampler_config;

/* The ids the repetition penalty looks at: prompt then completion so far (either may be empty).
 * Two spans so a group's shared prompt need not be copied per completion. */
typedef struct sampler_history {
    const int32_t *prompt;     /* (n_prompt) */
    size_t n_prompt;
    const int32_t *completion; /* (n_completion) */
    size_t n_completion;
} sampler_history;

/* transformers' defaults with sampling on: T 1, no truncation, no penalty. */
sampler_config sampler_config_default(void);

/* Checks ranges; the message names the TRL key and the allowed values. */
pt_status sampler_config_check(const sampler_config *cfg, pt_error *err);

/* Bytes of scratch one call needs for a vocabulary of V. */
size_t sampler_scratch_bytes(int V);

/* Sample one token. token: the id; logprob: log_softmax(l′/T)[token] over the full vocabulary
 * (may be NULL); entropy: of that distribution (may be NULL). history may be NULL (no ids seen).
 * r: positioned for this step; one rng_uniform_double is drawn unless greedy.
 * Errors: bad config (PT_ERR_CONFIG), a NaN or +Inf logit or no finite logit (PT_ERR_NUMERIC). */
pt_status sampler_sample(int *token, float *logprob, float *entropy, const float *logits, const sampler_config *cfg,
                         const sampler_history *history, int V, void *scratch, rng *r, pt_error *err);

/* B rows at once, each as sampler_sample: row b samples from logits + b·V with histories[b]
 * (histories may be NULL) and rngs[b], writing tokens[b], logprobs[b], entropies[b] (either
 * array may be NULL). OpenMP over rows with `threads` ≥ 1 threads; scratch holds
 * sampler_batch_scratch_bytes(V, threads) bytes. Results do not depend on `threads`. On failure
 * the error names the first failing row. */
size_t sampler_batch_scratch_bytes(int V, int threads);
pt_status sampler_sample_batch(int *tokens, float *logprobs, float *entropies, const float *logits,
                               const sampler_config *cfg, const sampler_history *histories, int B, int V, void *scratch,
                               int threads, rng *rngs, pt_error *err);

/* The final sampling distribution: p (V) = the kept tokens' probabilities after every filter,
 * renormalised to sum 1, and exactly 0 elsewhere; one-hot at the argmax for greedy. */
pt_status sampler_probs(float *p, const float *logits, const sampler_config *cfg, const sampler_history *history,
                        int V, void *scratch, pt_error *err);

/* log_softmax(l′/T)[token] and the entropy of that distribution for a token chosen elsewhere
 * (e.g. by spec_accept); either output may be NULL. */
pt_status sampler_logprob(float *logprob, float *entropy, const float *logits, const sampler_config *cfg,
                          const sampler_history *history, int token, int V, void *scratch, pt_error *err);

/* Speculative sampling (Leviathan et al. 2023, Chen et al. 2023): the draft token d was drawn
 * from q_draft; accept it with probability min(1, p(d)/q(d)) (*accepted = 1, *token = d);
 * otherwise (*accepted = 0) *token is drawn from normalize(max(0, p − q)). The token is then
 * distributed exactly as p_target. Both inputs are distributions over V ids as sampler_probs
 * writes them. Always draws two rng_uniform_double (accept test, then residual), so the count
 * is fixed. With greedy p and q (one-hot) this accepts iff d = argmax p and otherwise returns
 * argmax p. Should the residual mass be 0 (p = q up to rounding), the token is drawn from p. */
pt_status spec_accept(int *token, int *accepted, const float *p_target, const float *q_draft, int draft_token, int V,
                      rng *r, pt_error *err);

#endif
