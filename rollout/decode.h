/* decode.h — one step of the policy over new tokens of many sequences, with the MLA latent cache
 * and the absorbed attention (DeepSeek-V2 §2.1.3 / V3 REFERENCE "MLA decode"):
 *
 *   q_nope′_h = q_nope_h · W_UK_h            (W_UK_h: kv_b's k_nope rows of head h, nope × kl)
 *   s_t       = (q_nope′_h · c_t + q_rope_h · k_pe_t) · scale       over cached t ≤ pos
 *   lat_h     = Σ_t softmax(s)_t · c_t ;   out_h = lat_h · W_UV_hᵀ   (W_UV_h: v rows, v × kl)
 *
 * so keys and values are never expanded from the latent. Token i of a step is ids[i] at position
 * pos[i] of sequence seqs[i]; its latent and rope key are written to the cache before any token
 * of the step attends, so a step may hold a whole prompt (prefill), one token of many sequences
 * (decode), or a mix. Every matrix multiply runs over all M tokens of the step at once.
 * Results equal the training forward (model_forward) up to fp32 rounding: tests/test_rollout.c.
 */
#ifndef POSTTRAIN_ROLLOUT_DECODE_H
#define POSTTRAIN_ROLLOUT_DECODE_H

#include "model/model.h"
#include "rollout/latent_cache.h"

typedef struct decode_ws {
    int max_tokens;      /* M capacity of one step */
    int max_len;         /* longest sequence (attention scratch) */
    float *x, *xm;       /* (M, H) residual stream */
    float *ln1, *rstd;   /* (M, H), (M) */
    float *qa, *qan;     /* (M, ql) */
    float *q;            /* (M, nh, qk) */
    float *kva, *kvn;    /* (M, kl + rope), (M, kl) */
    float *qlat, *lat;   /* (M, nh, kl) */
    float *att;          /* (M, nh·v) */
    float *hsel;         /* (R, H) rows that need logits */
    float *hidden;       /* (M, H) final-normed hidden state of every token (MTP drafting) */
    float *cat;          /* (M, 2H) MTP input [enorm(emb) | hnorm(h)]; NULL without MTP */
    float *logits;       /* (M, V) */
    float *scores;       /* (threads, max_len) attention scratch */
    int nthreads;
    model_mlp_ws *mlp;
    arena mem;
} decode_ws;

pt_status decode_ws_init(decode_ws *w, const policy_model *m, int max_tokens, int max_len, pt_error *err);
void decode_ws_free(decode_ws *w);

/* Runs layers [0, L) for the M tokens; writes their cache entries in layers [0, L) and sets each
 * sequence's len to at least pos + 1 (the caller reserved the blocks with cache_seq_reserve).
 * Then writes logits (R, V) for the tokens listed in logit_rows (R indices into 0..M-1) to
 * w->logits, and every token's final-normed hidden state to w->hidden. */
void decode_step(decode_ws *w, const policy_model *m, latent_cache *c, cache_seq *const *seqs, const int *ids,
                 const int *pos, int M, const int *logit_rows, int R);

/* The first MTP module (layer L) as a draft model (DeepSeek-V3 §2.2 used for speculative
 * decoding): for M positions, h (M, H) is the main model's final-normed hidden state at pos[i]
 * and next_ids[i] the token at pos[i] + 1; writes the module's cache entries (cache layer L) at
 * pos[i] and the draft logits for the token at pos[i] + 2 into w->logits (M, V). The cache must
 * have L + 1 layers. w->hidden is not touched, so h may point into it. */
void decode_mtp_step(decode_ws *w, const policy_model *m, latent_cache *c, cache_seq *const *seqs,
                     const int *next_ids, const int *pos, const float *h, int M);

#endif
