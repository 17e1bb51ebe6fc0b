/* layout.h — where every tensor of a DeepSeek-V3 model lives inside one flat float arena.
 *
 * The parameter arena, the gradient arena and the optimizer's moment arenas share one layout:
 * a tensor's offset is the same in all of them, so `grads + off` is the gradient of
 * `params + off`. Tensors are named exactly as transformers' DeepseekV3ForCausalLM names them
 * ([out, in] for every linear weight); each routed expert's gate/up/down is a separately named
 * slice of one contiguous (E, ...) block so the MoE code can index experts by stride.
 *
 * Layers 0..L-1 are the main stack; layers L..L+D-1 are the D multi-token-prediction modules,
 * stored under `model.layers.{L+k}.` as DeepSeek's release stores them (enorm, hnorm, eh_proj,
 * shared_head.norm, plus a full decoder block). The MTP modules share the main embedding and
 * output head (DeepSeek-V3 §2.2); their own copies are written on save and not read on load.
 * An absent tensor has offset LAYOUT_NONE.
 */
#ifndef POSTTRAIN_MODEL_LAYOUT_H
#define POSTTRAIN_MODEL_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model_config.h"

#define LAYOUT_NONE ((size_t)-1)

typedef struct layer_layout {
    size_t input_norm, post_norm;         /* (H) */
    size_t q_proj;                        /* (nh·qk, H) when q_lora_rank is null */
    size_t q_a, q_a_norm, q_b;            /* (ql, H), (ql), (nh·qk, ql) */
    size_t kv_a;                          /* (kl + rope, H): rows [c_kv | k_pe] */
    size_t kv_a_norm;                     /* (kl) */
    size_t kv_b;                          /* (nh·(nope + v), kl): per head [k_nope | v] */
    size_t o_proj;                        /* (H, nh·v) */
    size_t gate, up, down;                /* dense MLP: (I, H), (I, H), (H, I) */
    size_t router, router_bias;           /* (E, H), (E) e_score_correction_bias */
    size_t experts_gate, experts_up;      /* (E, moe_I, H) */
    size_t experts_down;                  /* (E, H, moe_I) */
    size_t shared_gate, shared_up;        /* (ns·moe_I, H) */
    size_t shared_down;                   /* (H, ns·moe_I) */
    /* MTP modules only */
    size_t enorm, hnorm;                  /* (H) */
    size_t eh_proj;                       /* (H, 2H): input [enorm(emb); hnorm(h)] */
    size_t head_norm;                     /* (H) shared_head.norm */
    int moe;                              /* 1 when the MLP is DeepSeekMoE */
} layer_layout;

typedef enum tensor_role {
    TENSOR_WEIGHT,   /* a matrix: trained, weight decay applies */
    TENSOR_NORM,     /* an RMSNorm weight: trained, no weight decay */
    TENSOR_BIAS,     /* the router's e_score_correction_bias: not trained by gradients */
} tensor_role;

typedef struct tensor_entry {
    char name[112];
    size_t offset;     /* floats from the arena base */
    size_t numel;
    int ndim;
    int64_t shape[2];
    tensor_role role;
    int alias;         /* 1: a copy of another tensor written on save (MTP embed/head) */
} tensor_entry;

typedef struct model_layout {
    size_t embed;       /* (V, H) */
    size_t final_norm;  /* (H) */
    size_t lm_head;     /* (V, H); equals embed when tie_word_embeddings */
    int nlayers;        /* L + D */
    layer_layout *layers;
    tensor_entry *tensors;
    int ntensors;
    size_t total;       /* floats in the arena */
} model_layout;

pt_status model_layout_init(model_layout *lay, const model_config *cfg, pt_error *err);
void model_layout_free(model_layout *lay);
/* The entry with this name, or NULL. */
const tensor_entry *model_layout_find(const model_layout *lay, const char *name);

#endif
