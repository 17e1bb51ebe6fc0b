/* model_config.h — the DeepSeek-V3 architecture as described by a Hugging Face `config.json`
 * (transformers' DeepseekV3Config, model_type "deepseek_v3"), plus posttrain's own training keys.
 *
 * Fields are named exactly as the JSON keys. A key missing from the file takes DeepseekV3Config's
 * default from transformers 5.24 (the 671B values: a small model must set every size), with one
 * deliberate exception: num_nextn_predict_layers defaults to 0, not transformers' 1 — configs
 * without the key come from transformers versions before MTP support and their checkpoints hold
 * no MTP weights (DeepSeek's own configs always set it). Keys accepted on load:
 *   - every DeepseekV3Config field below; aliases num_local_experts (→ n_routed_experts) and
 *     num_mtp_layers (→ num_nextn_predict_layers) as transformers' attribute_map has them;
 *   - RoPE either as transformers v5's `rope_parameters` {rope_type|type, rope_theta, factor, ...}
 *     or as the older top-level `rope_theta` + `rope_scaling` (null or {type|rope_type: "yarn",...}).
 *     Precedence follows transformers: a non-null rope_scaling wins over rope_parameters; a
 *     rope_theta inside the chosen block wins over the top-level one; default 10000.
 *   - `quantization_config` of DeepSeek's FP8 release (fp8, e4m3, dynamic, weight_block_size);
 *   - posttrain_bias_update_speed (γ, default 0.001), posttrain_seq_aux_alpha (α, 0.0001),
 *     posttrain_mtp_loss_weight (λ, 0.3) — names transformers does not use, so HF keeps them;
 *   - derived keys transformers writes (head_dim, qk_head_dim) are ignored (it recomputes them);
 *   - any other key is kept verbatim (its JSON text) and written back by model_config_save.
 * Types are checked as transformers' strict dataclass checks them, with one leniency: a float
 * field accepts an integer literal (`"routed_scaling_factor": 2`); an integer field rejects `2.0`.
 * Values transformers accepts but posttrain cannot run (hidden_act other than silu,
 * attention_bias true, RoPE types other than default/yarn, scoring_func other than sigmoid,
 * topk_method other than noaux_tc) fail with PT_ERR_UNSUPPORTED.
 *
 * Invariants after a successful load: every constraint of model_config_validate holds;
 * q_lora_rank == 0 means null (plain q_proj); token ids are -1 when null; rope.type is DEFAULT
 * (no scaling) or YARN; for YaRN, zero in factor/attention_factor/mscale/mscale_all_dim means the
 * key was absent, exactly where transformers tests the key's truthiness (see kernels/rope.h).
 */
#ifndef POSTTRAIN_MODEL_MODEL_CONFIG_H
#define POSTTRAIN_MODEL_MODEL_CONFIG_H

#include <stdbool.h>

#include "core/error.h"

#define MODEL_MAX_EOS 8 /* eos_token_id may be a list */

typedef enum model_rope_type {
    MODEL_ROPE_DEFAULT, /* plain RoPE (rope_scaling null, rope_type "default") */
    MODEL_ROPE_YARN,
} model_rope_type;

typedef struct model_rope {
    model_rope_type type;
    double rope_theta;                    /* base (10000) */
    /* YaRN only (zeros for DEFAULT): */
    double factor;                        /* ≥ 1, or 0 = absent: max_pos / original_max_pos */
    double attention_factor;              /* > 0, or 0 = absent (inferred from mscale) */
    double beta_fast;                     /* 32 */
    double beta_slow;                     /* 1 */
    double mscale;                        /* 0 = absent (transformers: `if mscale and ...`) */
    double mscale_all_dim;                /* 0 = absent; also scales the softmax (mscale²) */
    int original_max_position_embeddings; /* default max_position_embeddings */
    bool truncate;                        /* true: floor/ceil the correction range */
} model_rope;

typedef struct model_quant {
    bool fp8;                 /* weights stored F8_E4M3 with `<name>_scale_inv` block scales */
    int weight_block_size[2]; /* [out, in] block of one scale ([128, 128]) */
} model_quant;

typedef struct model_config {
    int vocab_size;            /* V */
    int hidden_size;           /* H */
    int intermediate_size;     /* dense MLP width */
    int moe_intermediate_size; /* per routed expert; shared experts use × n_shared_experts */
    int num_hidden_layers;     /* L */
    int num_attention_heads;   /* nh */
    int num_key_value_heads;   /* == nh (MLA); null in the file means nh */
    int n_shared_experts;
    int n_routed_experts;      /* E */
    double routed_scaling_factor;
    int kv_lora_rank;
    int q_lora_rank;           /* 0: null → plain q_proj */
    int qk_rope_head_dim;
    int v_head_dim;
    int qk_nope_head_dim;
    int n_group;
    int topk_group;
    int num_experts_per_tok;   /* K */
    int first_k_dense_replace; /* layers [0, k) are dense, the rest MoE */
    bool norm_topk_prob;
    double rms_norm_eps;
    model_rope rope;           /* rope_theta + rope_scaling / rope_parameters */
    int max_position_embeddings;
    bool tie_word_embeddings;
    double initializer_range;
    int bos_token_id;          /* -1: null */
    int pad_token_id;          /* -1: null */
    int eos_token_ids[MODEL_MAX_EOS];
    int n_eos_token_ids;       /* 0: null */
    bool eos_is_list;          /* written back as a list even with one id */
    int num_nextn_predict_layers; /* MTP depth D (0) */
    bool attention_bias;       /* only false is supported */
    bool rope_interleave;      /* true: DeepSeek's interleaved rope pairs */
    model_quant quant;
    /* posttrain's training keys */
    double posttrain_bias_update_speed; /* γ of auxiliary-loss-free balancing (0.001) */
    double posttrain_seq_aux_alpha;     /* α of the sequence-wise balance loss (0.0001) */
    double posttrain_mtp_loss_weight;   /* λ of the MTP loss (0.3) */
    /* keys posttrain does not interpret, in file order: name and JSON text of the value */
    int n_extra;
    char **extra_keys;
    char **extra_values;
} model_config;

/* Sets every field to its default (see the file comment); no allocation. */
void model_config_init(model_config *cfg);
/* Frees the kept unknown keys; cfg is left as after model_config_init. */
void model_config_free(model_config *cfg);
/* dst (=) a deep copy of src (dst must not hold allocations: init'ed or freed). */
pt_status model_config_copy(model_config *dst, const model_config *src, pt_error *err);

/* Parses config.json text (NUL-terminated); `name` is used in messages (e.g. the path).
 * cfg is overwritten; on failure it is left initialised and empty (nothing to free). */
pt_status model_config_parse(model_config *cfg, const char *json_text, const char *name, pt_error *err);
/* Reads and parses the file at path (at most 16 MiB). */
pt_status model_config_load(model_config *cfg, const char *path, pt_error *err);
/* Checks every constraint; messages read "<name>: <constraint> (<values>)". PT_ERR_CONFIG for a
 * broken constraint, PT_ERR_UNSUPPORTED for a valid value posttrain cannot run. */
pt_status model_config_validate(const model_config *cfg, const char *name, pt_error *err);

/* The JSON text transformers accepts (model_type, architectures, every field with floats always
 * written with a decimal point, posttrain_* keys, kept unknown keys). *out is malloc'ed. */
pt_status model_config_to_json(char **out, const model_config *cfg, pt_error *err);
/* Validates, then writes model_config_to_json atomically: temp file in the same folder, fsync,
 * rename, fsync of the folder. */
pt_status model_config_save(const model_config *cfg, const char *path, pt_error *err);

/* Derived values. */
int model_config_qk_head_dim(const model_config *cfg); /* qk_nope_head_dim + qk_rope_head_dim */
/* MoE layers among the L main layers: L − first_k_dense_replace. */
int model_config_n_moe_layers(const model_config *cfg);
/* Layer l (0 ≤ l < L + D; MTP module k is layer L + k) uses DeepSeekMoE: l ≥ first_k_dense_replace. */
bool model_config_is_moe_layer(const model_config *cfg, int layer);
/* DeepseekV3Attention.scaling: qk_head_dim^-0.5 × mscale² under YaRN when mscale_all_dim ≠ 0,
 * mscale = 0.1·mscale_all_dim·ln(factor) + 1 (1 when factor ≤ 1); factor 0 resolves to
 * max_position_embeddings / original_max_position_embeddings. */
double model_config_softmax_scale(const model_config *cfg);

#endif
