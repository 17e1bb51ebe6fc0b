/* layout.c — builds the tensor table of layout.h from a model_config.
 *
 * Tensors are appended in a fixed order (embedding, then each layer's attention and MLP, then
 * the final norm and head); each starts at a multiple of 16 floats so rows stay 64-byte aligned
 * when the arena base is. Routed experts of a layer are one block: expert e's gate_proj starts
 * at experts_gate + e·moe_I·H, and so on.
 */
#include "model/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct builder {
    model_layout *lay;
    int cap;
    size_t next;
    pt_error *err;
} builder;

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static pt_status push(builder *b, const char *name, size_t offset, int64_t d0, int64_t d1, tensor_role role,
                      int alias) {
    model_layout *lay = b->lay;
    if (lay->ntensors == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        tensor_entry *t = realloc(lay->tensors, (size_t)cap * sizeof *t);
        PT_CHECK_ALLOC(t, b->err, (size_t)cap * sizeof *t);
        lay->tensors = t;
        b->cap = cap;
    }
    tensor_entry *e = &lay->tensors[lay->ntensors++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->offset = offset;
    e->ndim = d1 > 0 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1 > 0 ? d1 : 0;
    e->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    e->role = role;
    e->alias = alias;
    return PT_OK;
}

/* Reserve a new tensor; returns its offset through *off. d1 = 0 for a vector. */
static pt_status add(builder *b, size_t *off, const char *name, int64_t d0, int64_t d1, tensor_role role) {
    *off = b->next;
    PT_TRY(push(b, name, b->next, d0, d1, role, 0));
    b->next += round16((size_t)d0 * (size_t)(d1 > 0 ? d1 : 1));
    return PT_OK;
}

static pt_status add_layer(builder *b, const model_config *c, int l, int mtp) {
    layer_layout *ly = &b->lay->layers[l];
    char p[64], n[112];
    snprintf(p, sizeof p, "model.layers.%d.", l);
    const int64_t H = c->hidden_size, nh = c->num_attention_heads;
    const int64_t qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
#define NAME(suffix) (snprintf(n, sizeof n, "%s%s", p, suffix), n)
    if (mtp) {
        PT_TRY(add(b, &ly->enorm, NAME("enorm.weight"), H, 0, TENSOR_NORM));
        PT_TRY(add(b, &ly->hnorm, NAME("hnorm.weight"), H, 0, TENSOR_NORM));
        PT_TRY(add(b, &ly->eh_proj, NAME("eh_proj.weight"), H, 2 * H, TENSOR_WEIGHT));
    }
    PT_TRY(add(b, &ly->input_norm, NAME("input_layernorm.weight"), H, 0, TENSOR_NORM));
    if (c->q_lora_rank > 0) {
        PT_TRY(add(b, &ly->q_a, NAME("self_attn.q_a_proj.weight"), c->q_lora_rank, H, TENSOR_WEIGHT));
        PT_TRY(add(b, &ly->q_a_norm, NAME("self_attn.q_a_layernorm.weight"), c->q_lora_rank, 0, TENSOR_NORM));
        PT_TRY(add(b, &ly->q_b, NAME("self_attn.q_b_proj.weight"), nh * qk, c->q_lora_rank, TENSOR_WEIGHT));
    } else {
        PT_TRY(add(b, &ly->q_proj, NAME("self_attn.q_proj.weight"), nh * qk, H, TENSOR_WEIGHT));
    }
    PT_TRY(add(b, &ly->kv_a, NAME("self_attn.kv_a_proj_with_mqa.weight"), c->kv_lora_rank + c->qk_rope_head_dim, H,
               TENSOR_WEIGHT));
    PT_TRY(add(b, &ly->kv_a_norm, NAME("self_attn.kv_a_layernorm.weight"), c->kv_lora_rank, 0, TENSOR_NORM));
    PT_TRY(add(b, &ly->kv_b, NAME("self_attn.kv_b_proj.weight"), nh * (c->qk_nope_head_dim + c->v_head_dim),
               c->kv_lora_rank, TENSOR_WEIGHT));
    PT_TRY(add(b, &ly->o_proj, NAME("self_attn.o_proj.weight"), H, nh * c->v_head_dim, TENSOR_WEIGHT));
    PT_TRY(add(b, &ly->post_norm, NAME("post_attention_layernorm.weight"), H, 0, TENSOR_NORM));
    ly->moe = model_config_is_moe_layer(c, l);
    if (!ly->moe) {
        PT_TRY(add(b, &ly->gate, NAME("mlp.gate_proj.weight"), c->intermediate_size, H, TENSOR_WEIGHT));
        PT_TRY(add(b, &ly->up, NAME("mlp.up_proj.weight"), c->intermediate_size, H, TENSOR_WEIGHT));
        PT_TRY(add(b, &ly->down, NAME("mlp.down_proj.weight"), H, c->intermediate_size, TENSOR_WEIGHT));
    } else {
        const int64_t E = c->n_routed_experts, I = c->moe_intermediate_size, S = I * c->n_shared_experts;
        PT_TRY(add(b, &ly->router, NAME("mlp.gate.weight"), E, H, TENSOR_WEIGHT));
        PT_TRY(add(b, &ly->router_bias, NAME("mlp.gate.e_score_correction_bias"), E, 0, TENSOR_BIAS));
        /* Three contiguous expert blocks, then one named entry per expert slice. */
        size_t per = (size_t)I * (size_t)H;
        ly->experts_gate = b->next;
        b->next += round16(per * (size_t)E);
        ly->experts_up = b->next;
        b->next += round16(per * (size_t)E);
        ly->experts_down = b->next;
        b->next += round16(per * (size_t)E);
        for (int64_t e = 0; e < E; e++) {
            char en[112];
            snprintf(en, sizeof en, "%smlp.experts.%lld.gate_proj.weight", p, (long long)e);
            PT_TRY(push(b, en, ly->experts_gate + (size_t)e * per, I, H, TENSOR_WEIGHT, 0));
            snprintf(en, sizeof en, "%smlp.experts.%lld.up_proj.weight", p, (long long)e);
            PT_TRY(push(b, en, ly->experts_up + (size_t)e * per, I, H, TENSOR_WEIGHT, 0));
            snprintf(en, sizeof en, "%smlp.experts.%lld.down_proj.weight", p, (long long)e);
            PT_TRY(push(b, en, ly->experts_down + (size_t)e * per, H, I, TENSOR_WEIGHT, 0));
        }
        if (S > 0) {
            PT_TRY(add(b, &ly->shared_gate, NAME("mlp.shared_experts.gate_proj.weight"), S, H, TENSOR_WEIGHT));
            PT_TRY(add(b, &ly->shared_up, NAME("mlp.shared_experts.up_proj.weight"), S, H, TENSOR_WEIGHT));
            PT_TRY(add(b, &ly->shared_down, NAME("mlp.shared_experts.down_proj.weight"), H, S, TENSOR_WEIGHT));
        }
    }
    if (mtp) {
        PT_TRY(add(b, &ly->head_norm, NAME("shared_head.norm.weight"), H, 0, TENSOR_NORM));
        /* DeepSeek's release stores copies of the shared embedding and head in each module. */
        PT_TRY(push(b, NAME("embed_tokens.weight"), b->lay->embed, c->vocab_size, H, TENSOR_WEIGHT, 1));
        PT_TRY(push(b, NAME("shared_head.head.weight"), b->lay->lm_head, c->vocab_size, H, TENSOR_WEIGHT, 1));
    }
#undef NAME
    return PT_OK;
}

pt_status model_layout_init(model_layout *lay, const model_config *c, pt_error *err) {
    memset(lay, 0, sizeof *lay);
    int L = c->num_hidden_layers, D = c->num_nextn_predict_layers;
    lay->nlayers = L + D;
    lay->layers = calloc((size_t)(L + D > 0 ? L + D : 1), sizeof *lay->layers);
    PT_CHECK_ALLOC(lay->layers, err, (size_t)(L + D) * sizeof *lay->layers);
    for (int l = 0; l < L + D; l++) {
        size_t *f = (size_t *)&lay->layers[l];
        for (size_t i = 0; i < offsetof(layer_layout, moe) / sizeof(size_t); i++) f[i] = LAYOUT_NONE;
    }
    builder b = {lay, 0, 0, err};
    pt_status st;
    PT_TRY_GOTO(st, add(&b, &lay->embed, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, TENSOR_WEIGHT),
                fail);
    if (c->tie_word_embeddings) lay->lm_head = lay->embed;
    for (int l = 0; l < L; l++) PT_TRY_GOTO(st, add_layer(&b, c, l, 0), fail);
    PT_TRY_GOTO(st, add(&b, &lay->final_norm, "model.norm.weight", c->hidden_size, 0, TENSOR_NORM), fail);
    if (!c->tie_word_embeddings)
        PT_TRY_GOTO(st, add(&b, &lay->lm_head, "lm_head.weight", c->vocab_size, c->hidden_size, TENSOR_WEIGHT), fail);
    for (int k = 0; k < D; k++) PT_TRY_GOTO(st, add_layer(&b, c, L + k, 1), fail);
    lay->total = b.next;
    return PT_OK;
fail:
    model_layout_free(lay);
    return st;
}

void model_layout_free(model_layout *lay) {
    free(lay->layers);
    free(lay->tensors);
    memset(lay, 0, sizeof *lay);
}

const tensor_entry *model_layout_find(const model_layout *lay, const char *name) {
    for (int i = 0; i < lay->ntensors; i++)
        if (strcmp(lay->tensors[i].name, name) == 0) return &lay->tensors[i];
    return NULL;
}
