/* adamw.h — the AdamW update (torch.optim.AdamW) and global-norm gradient clipping
 * (torch.nn.utils.clip_grad_norm_), on flat fp32 buffers. See adamw.c for the math.
 */
#ifndef POSTTRAIN_KERNELS_ADAMW_H
#define POSTTRAIN_KERNELS_ADAMW_H

#include <stddef.h>

/* One AdamW step on n parameters, in place: param, m (first moment) and v (second moment) are
 * updated (=, read-modify-write); grad is read. step is this update's number t ≥ 1 (torch's
 * state["step"] after its increment), used for the bias corrections 1 − β^t. m and v start at 0.
 * The hyper-parameters are double because torch computes its scalars (1 − lr·wd, the bias
 * corrections, lr/bc1) in Python doubles; a float β2 = 0.999f would move 1 − β2 by 2e-5
 * relative. */
void adamw_update(float *param, float *m, float *v, const float *grad, size_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int step);

/* sqrt(Σ_i Σ_j grads[i][j]²) over n buffers of sizes[i] floats, accumulated in double. NaN/Inf
 * in any gradient gives a non-finite result. */
double grad_global_norm(const float *const *grads, const size_t *sizes, int n);

/* clip_grad_norm_(max_norm, norm_type=2): norm = grad_global_norm; coef = max_norm/(norm + 1e-6);
 * when coef < 1 every gradient is multiplied (in place, =) by coef. Returns the pre-clip norm.
 * When the norm is not finite the gradients are left as they are (torch would scale them by 0
 * or NaN) and the NaN/Inf is returned so that the caller can skip the step. */
double grad_clip_scale(float *const *grads, const size_t *sizes, int n, double max_norm);

#endif
