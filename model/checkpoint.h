/* checkpoint.h — a policy_model to and from a Hugging Face model folder: config.json plus
 * model.safetensors (or shards with model.safetensors.index.json), with transformers'
 * DeepseekV3ForCausalLM tensor names, so a model saved here loads there and vice versa.
 *
 * Loading accepts any float dtype (F32, BF16, F16, F64) and DeepSeek's FP8 release format
 * (F8_E4M3 weights with `<name>_scale_inv` fp32 block scales of weight_block_size, W = q·s).
 * Every tensor of the layout must be present with its exact shape; the MTP modules' copies of
 * the embedding and head are not read (they are shared with the main model) and tensors
 * posttrain does not use are ignored and counted. Saving writes fp32 atomically.
 */
#ifndef POSTTRAIN_MODEL_CHECKPOINT_H
#define POSTTRAIN_MODEL_CHECKPOINT_H

#include "model/model.h"

/* What a load noticed without failing. */
typedef struct model_load_info {
    int ignored;           /* tensors in the files that the model does not use */
    int nonfinite;         /* tensors holding NaN or Inf (loaded as they are: the caller warns) */
    char nonfinite_names[512]; /* their names, comma-separated, cut at the buffer's end */
} model_load_info;

/* Initialises *m from dir (config.json + weights). On failure *m is left empty. info may be
 * NULL. */
pt_status model_load(policy_model *m, const char *dir, model_load_info *info, pt_error *err);
/* Writes dir/config.json and the weights (dir is created when missing); shards above
 * max_shard_bytes (0: one file). */
pt_status model_save(const policy_model *m, const char *dir, size_t max_shard_bytes, pt_error *err);
/* The same folder in DeepSeek's FP8 release format: every matrix of attention, dense MLPs and
 * experts as F8_E4M3 codes of 128×128 blocks (scale = max(amax, 1e-4)/448, kernels/fp8.h) plus its
 * `<name>_scale_inv` fp32 [ceil(out/128), ceil(in/128)] (W = code·scale_inv); the embedding, heads,
 * eh_proj, router, router bias and norms in fp32; config.json with quantization_config {fp8, e4m3,
 * dynamic, [128, 128]}. model_load reads it back to exactly the dequantised weights. */
pt_status model_save_fp8(const policy_model *m, const char *dir, size_t max_shard_bytes, pt_error *err);

#endif
