/* crossentropy.h — softmax cross-entropy over the vocabulary, token log-probabilities and
 * entropies, without materialising the probability matrix.
 *
 * Shapes: N rows (tokens), V vocabulary. logits (N, V); targets (N) with ids in [0, V) or < 0
 * for "ignore" (HF's −100); mask (N) a per-row weight (usually 0/1) or NULL for all ones.
 * Temperature is the caller's: GRPO divides logits by it before calling. See crossentropy.c.
 */
#ifndef POSTTRAIN_KERNELS_CROSSENTROPY_H
#define POSTTRAIN_KERNELS_CROSSENTROPY_H

/* Per row i, all (=):
 *   lse[i]     = log Σ_j exp(z_ij)                       (always written; the backward needs it)
 *   logp[i]    = z_i,target − lse[i], or 0 when target < 0
 *   entropy[i] = −Σ_j p_ij log p_ij
 *   loss[i]    = −mask[i]·logp[i] (0 for ignored rows)
 * loss, logp and entropy may be NULL to skip. A target ≥ V is a caller bug: its logp and loss
 * are NaN so that it cannot pass unnoticed. */
void crossentropy_forward(float *loss, float *logp, float *entropy, float *lse, const float *logits,
                          const int *targets, const float *mask, int N, int V);

/* dlogits (N, V) (+=) for L = Σ_i dlogp[i]·logp[i] + dentropy[i]·entropy[i]:
 *   dlogits_ij += dlogp[i]·(1[j = target_i] − p_ij) − dentropy[i]·p_ij·(log p_ij + H_i)
 * dlogp or dentropy may be NULL (that term is zero); rows with target < 0 (or ≥ V) take no
 * logp term. lse and entropy are the forward's (entropy may be NULL only if dentropy is). */
void crossentropy_backward(float *dlogits, const float *dlogp, const float *dentropy, const float *logits,
                           const int *targets, const float *lse, const float *entropy, int N, int V);

/* The loss convenience: dlogits (+=) for L = Σ_i dloss[i]·loss[i] with loss as in the forward,
 * i.e. crossentropy_backward with dlogp[i] = −dloss[i]·mask[i] (mask NULL = ones). */
void crossentropy_loss_backward(float *dlogits, const float *dloss, const float *logits, const int *targets,
                                const float *mask, const float *lse, int N, int V);

#endif
