/* precision.h — the training precision of the policy's GEMMs: fp32, or DeepSeek-V3's FP8 recipe.
 *
 * In MODEL_PRECISION_FP8 every linear layer of the attention (q_a, q_b or q_proj, kv_a, kv_b,
 * o_proj), the dense MLPs, the shared experts and the routed experts runs kernels/fp8_linear.h:
 * E4M3 operands with 1×128 activation/gradient tiles and 128×128 weight blocks, fp32
 * accumulation per 128-wide K group. The embedding, the output head (and the MTP eh_proj), the
 * router, the norms and the attention core stay fp32, and so do the master weights, their
 * gradients and the optimizer state (V3 report §3.3.1). Rollouts (model_mlp_infer and the
 * rollout engine's decode path) run in fp32 from the master weights.
 */
#ifndef POSTTRAIN_MODEL_PRECISION_H
#define POSTTRAIN_MODEL_PRECISION_H

#include "core/error.h"

typedef enum model_precision { MODEL_PRECISION_FP32, MODEL_PRECISION_FP8 } model_precision;

/* "fp32" or "fp8"; anything else is PT_ERR_CONFIG naming the accepted values. */
pt_status model_precision_parse(model_precision *p, const char *name, pt_error *err);
const char *model_precision_name(model_precision p);

/* linear_forward / linear_backward (kernels/linear.h, no bias) in precision p: out (=),
 * dinp and dweight (+=, either may be NULL). The FP8 path allocates its workspace per call; if
 * that allocation fails it writes NaN into its outputs so the trainers' non-finite guard stops
 * the step instead of silently changing the numerics. */
void precision_linear_forward(model_precision p, float *out, const float *inp, const float *weight, int N, int C,
                              int OC);
void precision_linear_backward(model_precision p, float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, int N, int C, int OC);

#endif
