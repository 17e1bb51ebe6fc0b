/* reward_model.h — a reward model: the DeepSeek-V3 trunk (model.h) with a scalar head that scores
 * the last real token of a sequence, stored as Hugging Face sequence-classification heads are.
 *
 * score(sequence) = hn[last] · w, where hn is the final-normed hidden state (model.norm output),
 * w = score.weight [1, H] (no bias) and `last` is transformers' pooling position: the rightmost
 * token that is not the config's pad_token_id (the last token when pad_token_id is null; the
 * first when every token is pad). This is exactly the pooled logit of transformers'
 * DeepseekV3ForSequenceClassification (num_labels 1) — also when EOS == PAD, as in many
 * tokenizers, where the trailing EOS is then not the scored token (tests/test_reward_model.c
 * checks scores and every gradient against its fixture, such a row included).
 *
 * Folders: a Hugging Face model folder whose safetensors hold the trunk under `model.*` and
 * `score.weight`; config.json says architectures [DeepseekV3ForSequenceClassification] with one
 * label, so AutoModelForSequenceClassification loads it. The reward model never uses an LM head
 * or the MTP modules: it is built with tie_word_embeddings true and num_nextn_predict_layers 0
 * (lm_head.weight and MTP tensors in a folder are ignored, so a policy folder can be the start of a
 * reward model), and saves without them.
 *
 * Gradients ACCUMULATE (+=) into base.grads and dscore; zero them with reward_model_zero_grads.
 * The head has its own one-tensor layout (head_layout) so core/optim.h can run AdamW on it
 * beside the trunk's optimizer.
 */
#ifndef POSTTRAIN_MODEL_REWARD_MODEL_H
#define POSTTRAIN_MODEL_REWARD_MODEL_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"
#include "model/tokenizer.h"

typedef struct reward_model {
    policy_model base;        /* the trunk (tied embeddings, no MTP) */
    float *score;             /* (head_layout.total ≥ H) score.weight row; floats past H stay 0 */
    float *dscore;            /* (head_layout.total) its gradient */
    model_layout head_layout; /* one TENSOR_WEIGHT entry "score.weight" [1, H] at offset 0 */
} reward_model;

enum reward_model_flags {
    REWARD_MODEL_NEW_HEAD = 1u << 0, /* a folder without score.weight gets a fresh head (normal(0,
                                        initializer_range) from the seed): start from a policy */
};

/* A random reward model for this config (trunk as model_init draws it, head normal(0,
 * initializer_range)); tie_word_embeddings and MTP are overridden as the file comment says. */
pt_status reward_model_init(reward_model *rm, const model_config *cfg, uint64_t seed, pt_error *err);
/* Loads dir (config.json + safetensors, float dtypes). Without score.weight this is an error
 * naming the folder, unless flags has REWARD_MODEL_NEW_HEAD. On failure *rm is left empty. */
pt_status reward_model_load(reward_model *rm, const char *dir, unsigned flags, uint64_t seed, pt_error *err);
/* Writes dir/config.json (sequence-classification architecture, one label) and the trunk plus
 * score.weight in fp32 (shards above max_shard_bytes; 0: one file); dir is created when missing. */
pt_status reward_model_save(const reward_model *rm, const char *dir, size_t max_shard_bytes, pt_error *err);
void reward_model_free(reward_model *rm);
void reward_model_zero_grads(reward_model *rm);

/* Activations for B sequences padded to T tokens. */
typedef struct reward_model_acts {
    model_acts a;
    model_batch batch;   /* the batch of the last forward (a.batch points here) */
    int *last;           /* (B) row-major index b·T + length_b − 1 of each scored token */
    float *dhn;          /* (B·T, H) scratch for the backward */
} reward_model_acts;

pt_status reward_model_acts_init(reward_model_acts *ra, const reward_model *rm, int B, int T, pt_error *err);
void reward_model_acts_free(reward_model_acts *ra);

/* scores (B) (=) the score of each row (pooled as the file comment says over its first
 * lengths[b] tokens). ids (B, T) must stay valid until the backward; lengths (B) in 1..T; tokens
 * past a row's length are batch padding (any valid id: attention is causal, so they never reach
 * the scored token). */
pt_status reward_model_forward(float *scores, reward_model *rm, reward_model_acts *ra, const int *ids,
                               const int *lengths, pt_error *err);
/* Backward of Σ_b dscores[b]·scores[b] + aux_scale·balance_loss for the last forward on ra:
 * dscore (+=) Σ_b dscores[b]·hn[last_b]; trunk gradients (+=) through hn[last_b] (+=) dscores[b]·w. */
void reward_model_backward(reward_model *rm, reward_model_acts *ra, const float *dscores, float aux_scale);

/* The tokens a prompt/completion pair is scored on, as datasets/ tokenises the preference shape:
 * encode(prompt) with special tokens (BOS), encode(completion), then EOS unless the completion
 * already ends with it; the first max_length tokens are kept (0: no limit). Appends to *out. */
pt_status reward_model_encode(tok_ids *out, tokenizer *tok, const char *prompt, const char *completion,
                              size_t max_length, pt_error *err);
/* The score of one prompt/completion pair, computed alone (B = 1, T = its length), so a score
 * never depends on what else is being scored. Not thread-safe (the tokenizer's scratch). */
pt_status reward_model_score_text(double *score, reward_model *rm, tokenizer *tok, const char *prompt,
                                  const char *completion, size_t max_length, pt_error *err);

#endif
