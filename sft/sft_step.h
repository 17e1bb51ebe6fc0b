/* sft_step.h — the SFT loss of one optimizer step and its gradient, and the held-out loss.
 *
 * One optimizer step runs n micro-batches (gradient accumulation). Its loss is the token mean of
 * the negative log-likelihood over every position with a target in all n micro-batches
 *     L = Σ_k Σ_{i ∈ targets(k)} −log p(target_i)  /  Σ_k |targets(k)|
 * (what transformers' Trainer computes with num_items_in_batch: a step's loss does not depend on
 * how its tokens are split into micro-batches), plus aux_scale times the mean over micro-batches
 * of the model's MTP loss (λ/D Σ CE_k, V3 report eq. 25) and sequence-wise balance loss
 * (α Σ f_i P_i, eq. 17–20), whose weights come from the model config. Targets exist only where
 * the data loader put them: the next token of the same example when that token is in the loss
 * mask (completion-only, assistant-only; datasets/loader.h), so prompt tokens, padding and
 * example boundaries contribute nothing. The MTP module k predicts the target of position t + k
 * at position t, so it obeys the same mask (model.c takes its targets from the batch's).
 *
 * Expert loads of the n forwards are summed per layer; DeepSeek-V3's bias update depends only on
 * the sign of load − mean, so the sum is the step's load, whatever the micro-batching.
 */
#ifndef POSTTRAIN_SFT_SFT_STEP_H
#define POSTTRAIN_SFT_SFT_STEP_H

#include "core/error.h"
#include "datasets/loader.h"
#include "model/model.h"

/* What the micro-batches of one step gave. */
typedef struct sft_micro_stats {
    double nll_sum;      /* Σ −logp over positions with a target */
    long loss_tokens;    /* positions with a target */
    double mtp_loss;     /* mean over micro-batches of the (λ-weighted) MTP loss */
    double balance_loss; /* mean over micro-batches of the (α-weighted) balance loss */
    long tokens;         /* tokens that are not padding */
    long positions;      /* B·T·n */
} sft_micro_stats;

/* Forward and backward of the n micro-batches mb[0..n) of one step: gradients of L (above)
 * ACCUMULATE (+=) into m->grads — zero them before the step. load_sum (L + D, E) (=) the summed
 * expert loads. dlogp is scratch of B·T floats. All batches have a's (B, T). */
pt_status sft_accumulate(sft_micro_stats *s, int *load_sum, float *dlogp, policy_model *m, model_acts *a,
                         const data_batch *mb, int n, float aux_scale, pt_error *err);

/* Held-out loss: Σ −logp / Σ targets over one pass of ds in file order, in batches of a's (B, T)
 * (packing as given). The model is not changed. *tokens receives the targets counted (0: no loss
 * is defined and *loss is NaN). */
pt_status sft_eval_loss(double *loss, long *tokens, policy_model *m, model_acts *a, dataset *ds,
                        dataset_packing packing, pt_error *err);

#endif
