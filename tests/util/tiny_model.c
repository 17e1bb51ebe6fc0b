/* tiny_model.c — see tiny_model.h. */
#include "tests/util/tiny_model.h"

#include <criterion/criterion.h>
#include <math.h>

#include "tests/util/check.h"

double tiny_model_objective(void *p) {
    tiny_model_ctx *c = p;
    pt_error err = {0};
    cr_assert_eq(model_forward(c->m, c->a, c->b, &err), PT_OK, "%s", err.msg);
    int N = c->b->B * c->b->T;
    double j = c->a->mtp_loss + c->a->balance_loss;
    for (int i = 0; i < N; i++) j += (double)c->wa[i] * c->a->logp[i] + (double)c->wb[i] * c->a->entropy[i];
    return j;
}

void tiny_model_config(model_config *c) {
    model_config_init(c);
    c->vocab_size = 40;
    c->hidden_size = 16;
    c->intermediate_size = 24;
    c->moe_intermediate_size = 8;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 2;
    c->n_shared_experts = 1;
    c->n_routed_experts = 8;
    c->routed_scaling_factor = 2.5;
    c->kv_lora_rank = 8;
    c->q_lora_rank = 6;
    c->qk_rope_head_dim = 4;
    c->qk_nope_head_dim = 4;
    c->v_head_dim = 6;
    c->n_group = 4;
    c->topk_group = 2;
    c->num_experts_per_tok = 2;
    c->first_k_dense_replace = 1;
    c->norm_topk_prob = true;
    c->max_position_embeddings = 32;
    c->rope.type = MODEL_ROPE_YARN;
    c->rope.rope_theta = 10000.0;
    c->rope.factor = 4.0;
    c->rope.beta_fast = 32;
    c->rope.beta_slow = 1;
    c->rope.mscale = 1.0;
    c->rope.mscale_all_dim = 1.0;
    c->rope.original_max_position_embeddings = 8;
    c->rope.truncate = true;
    c->initializer_range = 0.3;
    c->num_nextn_predict_layers = 1;
    c->posttrain_seq_aux_alpha = 0.05; /* large, so its gradient is visible in the check */
    c->posttrain_mtp_loss_weight = 0.3;
}


/* Routing is discrete: a finite-difference step that changes an expert choice makes the
 * difference quotient meaningless. `routing` picks how the test avoids that:
 *   0: every expert is chosen (K = E, one group): the router weights still depend smoothly
 *      on the scores (normalisation, scaling, balance loss);
 *   1: grouped top-2 of 8 with router biases far apart (10·e), so the biased choice cannot
 *      flip while the gathered/scattered paths and group masking are exercised. */
void tiny_model_check_gradients(int routing, long max_checks) {
    model_config cfg;
    tiny_model_config(&cfg);
    if (routing == 0) {
        cfg.num_experts_per_tok = 8;
        cfg.n_group = 1;
        cfg.topk_group = 1;
    }
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_init(&m, &cfg, 11, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    /* Norm weights and router biases away from their 1/0 initial values. */
    test_rng r;
    test_rng_seed(&r, 5);
    for (int i = 0; i < m.layout.ntensors; i++) {
        const tensor_entry *t = &m.layout.tensors[i];
        if (t->role == TENSOR_NORM) fill_uniform(m.params + t->offset, t->numel, 0.6f, 1.4f, &r);
        if (t->role == TENSOR_BIAS)
            for (size_t e = 0; e < t->numel; e++)
                m.params[t->offset + e] = routing == 1 ? 10.0f * (float)((e * 5) % 8) : 0.1f * (float)e - 0.3f;
    }
    enum { B = 2, T = 6, N = B * T };
    int ids[N], targets[N], segment[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (int)(test_rng_uniform(&r) * 40);
        segment[i] = i < 8 ? 0 : 1; /* row 1 packs two sequences: tokens 6-7 and 8-11 */
    }
    for (int i = 0; i < N; i++) targets[i] = (i % T == T - 1 || i == 7) ? -1 : ids[i + 1];
    model_batch b = {ids, targets, segment, NULL, B, T, 0.7f, false};
    model_acts a;
    cr_assert_eq(model_acts_init(&a, &m, B, T, &err), PT_OK, "%s", err.msg);
    float wa[N], wb[N];
    fill_uniform(wa, N, -1.0f, 1.0f, &r);
    fill_uniform(wb, N, -0.5f, 0.5f, &r);
    tiny_model_ctx c = {&m, &a, &b, wa, wb};

    double j0 = tiny_model_objective(&c);
    cr_assert(isfinite(j0));
    cr_assert_gt(a.mtp_loss, 0.0, "the MTP loss must be computed");
    cr_assert_gt(a.balance_loss, 0.0, "the balance loss must be computed");
    model_zero_grads(&m);
    model_backward(&m, &a, wa, wb, 1.0f);
    cr_assert_eq(first_nonfinite(m.grads, m.layout.total), -1, "NaN/Inf in gradients");

    int failed = 0, checked = 0;
    for (int i = 0; i < m.layout.ntensors; i++) {
        const tensor_entry *t = &m.layout.tensors[i];
        if (t->alias || t->role == TENSOR_BIAS) continue;
        fd_result res;
        int ok = fd_check(m.params + t->offset, m.grads + t->offset, t->numel, tiny_model_objective, &c, 3e-3, 4e-3, 2e-2, max_checks,
                          &res);
        checked++;
        if (!ok) {
            failed++;
            cr_log_error("%s[%ld]: numeric %.6g analytic %.6g (ratio %.3g)", t->name, res.worst_index, res.numeric,
                         res.analytic, res.worst_ratio);
        }
    }
    cr_assert_gt(checked, 30);
    cr_assert_eq(failed, 0, "%d of %d tensors disagree with finite differences", failed, checked);
    model_acts_free(&a);
    model_free(&m);
}

