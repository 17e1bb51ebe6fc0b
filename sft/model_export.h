/* model_export.h — a model folder written in a chosen weight format: the final/ folder of SFT and
 * GRPO runs (their save_dtype key) and `posttrain convert`.
 *
 * Formats: fp32 (model_save: every tensor F32, config.json without quantization_config) or fp8
 * (model_save_fp8: DeepSeek's FP8 release format, E4M3 codes of 128×128 blocks with fp32
 * `_scale_inv` for the attention, dense-MLP and expert matrices; the rest fp32). An fp8 folder
 * loads back (model_load) to exactly the block-quantised/dequantised weights; it is for inference
 * and for the next run's starting point, not for resuming (checkpoints keep fp32 master weights).
 *
 * model_convert is crash-safe: the new folder is written completely as "<out>.tmp" (weights,
 * config.json, the tokenizer files) and only then renamed into place (sft/sft_files.h's
 * sft_publish_dir), so a failure or a crash leaves no half-written <out>. An existing non-empty
 * <out> is replaced only when asked (force), and only when it holds files alone (a model folder),
 * never subfolders (a run folder, say).
 */
#ifndef POSTTRAIN_SFT_MODEL_EXPORT_H
#define POSTTRAIN_SFT_MODEL_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "model/model.h"

typedef enum model_save_dtype { MODEL_SAVE_FP32, MODEL_SAVE_FP8 } model_save_dtype;

/* "fp32" or "fp8"; anything else is PT_ERR_CONFIG "<what> must be fp32 or fp8, got '<name>'"
 * (what: the key or option being parsed, e.g. "save_dtype" or "--dtype"). */
pt_status model_save_dtype_parse(model_save_dtype *out, const char *name, const char *what, pt_error *err);
const char *model_save_dtype_name(model_save_dtype d);

/* Writes m into dir (created when missing) in format d; shards above max_shard_bytes (0: one
 * file). fp32 drops the starting model's quantization_config (the weights are no longer FP8). */
pt_status model_save_as(const policy_model *m, const char *dir, model_save_dtype d, size_t max_shard_bytes,
                        pt_error *err);

/* What model_convert did besides writing the weights. */
typedef struct model_convert_info {
    bool copied_tokenizer; /* the source had tokenizer.json (and friends), now copied */
    int ignored;           /* tensors of the source model_load did not read (MTP copies of the
                              shared embedding/head, unknown names) */
    size_t params;         /* parameters of the model */
} model_convert_info;

/* Loads model_dir (fp32, bf16, fp16 or FP8 weights: anything model_load reads) and writes it to
 * out_dir in format d with the tokenizer files of model_dir when it has them, as described in the
 * file comment. out_dir that exists and is not empty is PT_ERR_CONFIG unless force (nothing is
 * touched then). info may be NULL. */
pt_status model_convert(model_convert_info *info, const char *model_dir, const char *out_dir, model_save_dtype d,
                        bool force, size_t max_shard_bytes, pt_error *err);

#endif
