/* test_model_grad.c — the whole policy's backward against central finite differences.
 *
 * transformers has no MTP modules and no sequence-wise balance loss, so those parts (and the
 * temperature / entropy paths GRPO uses) are checked here against finite differences of the
 * model's own forward, on a tiny config with q_lora, YaRN, a dense and a MoE layer, grouped
 * routing and one MTP module. The objective is
 *     J = Σ_i a_i·logp_i + b_i·entropy_i + mtp_loss + balance_loss
 * with random a, b. Tolerance: the forward runs in fp32, J ~ 10, so rounding in J is ~1e-5,
 * ~2e-3 in a difference quotient with step h = 3e-3; the truncation error h²·J'''/6 stays below
 * ~2e-3 on this model (measured: with h = 1e-2 a few strongly curved elements were off by 5e-3
 * to 2e-2 and converged to the analytic value as h shrank). atol 4e-3 + rtol 2e-2 passes a
 * correct backward; a dropped term moves the affected gradients by O(1) relative.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/util/tiny_model.h"

Test(model_grad, all_experts_routing_matches_finite_differences) { tiny_model_check_gradients(0, 6); }
Test(model_grad, grouped_topk_routing_matches_finite_differences) { tiny_model_check_gradients(1, 6); }

/* no_mtp (GRPO without auxiliary losses) skips the MTP modules: the main head's log-probs and
 * entropies, and the gradient of every tensor outside the MTP module, equal those of the full
 * forward + backward at aux_scale 0 bit for bit; the MTP loss is 0 and the MTP module's
 * parameters get no gradient. Against the full path the test fails if no_mtp is ignored (the
 * MTP loss appears) or if skipping leaks into the main stack (a gradient differs). */
Test(model_grad, no_mtp_skips_the_mtp_module_only) {
    model_config cfg;
    tiny_model_config(&cfg);
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_init(&m, &cfg, 3, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    enum { B = 2, T = 6, N = B * T };
    int ids[N], targets[N];
    for (int i = 0; i < N; i++) ids[i] = (7 * i + 3) % 40;
    for (int i = 0; i < N; i++) targets[i] = i % T == T - 1 ? -1 : ids[i + 1];
    float wa[N], wb[N];
    for (int i = 0; i < N; i++) wa[i] = 0.1f * (float)(i % 5) - 0.2f, wb[i] = 0.05f * (float)(i % 3);
    model_acts a;
    cr_assert_eq(model_acts_init(&a, &m, B, T, &err), PT_OK, "%s", err.msg);
    const size_t n = m.layout.total;
    float *g_full = malloc(n * sizeof(float)), *logp = malloc(N * sizeof(float)), *ent = malloc(N * sizeof(float));

    model_batch full = {ids, targets, NULL, NULL, B, T, 1.0f, false};
    cr_assert_eq(model_forward(&m, &a, &full, &err), PT_OK, "%s", err.msg);
    cr_assert_gt(a.mtp_loss, 0.0);
    memcpy(logp, a.logp, sizeof logp[0] * N);
    memcpy(ent, a.entropy, sizeof ent[0] * N);
    model_zero_grads(&m);
    model_backward(&m, &a, wa, wb, 0.0f);
    memcpy(g_full, m.grads, n * sizeof(float));

    model_batch skip = full;
    skip.no_mtp = true;
    cr_assert_eq(model_forward(&m, &a, &skip, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(a.mtp_loss, 0.0);
    cr_assert_eq(memcmp(logp, a.logp, sizeof logp[0] * N), 0);
    cr_assert_eq(memcmp(ent, a.entropy, sizeof ent[0] * N), 0);
    model_zero_grads(&m);
    model_backward(&m, &a, wa, wb, 0.0f);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "model.layers.%d.", m.cfg.num_hidden_layers);
    int mtp_tensors = 0;
    for (int i = 0; i < m.layout.ntensors; i++) {
        const tensor_entry *t = &m.layout.tensors[i];
        if (t->alias) continue; /* the MTP module's shared embedding/head are the main ones */
        bool in_mtp = strncmp(t->name, prefix, strlen(prefix)) == 0;
        mtp_tensors += in_mtp;
        for (size_t e = 0; e < t->numel; e++) {
            float g = m.grads[t->offset + e];
            if (in_mtp) cr_assert_eq(g, 0.0f, "%s[%zu] got a gradient with no_mtp", t->name, e);
            else cr_assert_eq(g, g_full[t->offset + e], "%s[%zu]: %g with no_mtp, %g without", t->name, e, g, g_full[t->offset + e]);
        }
    }
    cr_assert_gt(mtp_tensors, 3);
    free(g_full), free(logp), free(ent);
    model_acts_free(&a);
    model_free(&m);
}
