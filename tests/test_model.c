/* test_model.c — the policy against transformers' DeepseekV3ForCausalLM (tests/ref/
 * make_model_fixture.py): the checkpoint loads by HF names, and logits, loss, expert choices
 * and the gradient of every parameter match. Two tiny configs: q_lora + YaRN + grouped routing
 * with top-k normalisation, and plain q_proj + no scaling + two shared experts + one group.
 *
 * Tolerances: both sides compute in fp32 with different summation orders; logits are O(1)
 * and agree to ~1e-6, so atol 1e-4 + rtol 1e-4 on logits; gradients pass through ~40 more
 * fp32 ops, so atol 1e-5 + rtol 1e-3 per tensor (gradients range from 1e-4 to 1). A wrong term
 * anywhere (a missing scale, a norm eps, the rope layout, the router weights) moves them far
 * beyond that.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "tests/util/check.h"

static void read_ints(int *out, size_t n, const st_tensor *t) {
    cr_assert_eq(t->dtype, PT_DTYPE_I64);
    cr_assert_eq(t->numel, n);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        out[i] = (int)v;
    }
}

static void check_against_hf(const char *name) {
    char dir[1024], io_path[1200], grad_path[1200];
    fixture_path(dir, sizeof dir, "model/");
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    snprintf(grad_path, sizeof grad_path, "%s/grads.safetensors", dir);

    policy_model m;
    pt_error err = {0};
    model_load_info info;
    cr_assert_eq(model_load(&m, dir, &info, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(info.ignored, 0, "every tensor of the checkpoint must be used");
    cr_assert_eq(info.nonfinite, 0);

    st_file io, gr;
    cr_assert_eq(st_file_open(&io, io_path, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(st_file_open(&gr, grad_path, &err), PT_OK, "%s", err.msg);
    const st_tensor *tid = st_file_find(&io, "input_ids");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], N = B * T, V = m.cfg.vocab_size;
    int *ids = malloc(sizeof(int) * N), *labels = malloc(sizeof(int) * N), *targets = malloc(sizeof(int) * N);
    read_ints(ids, (size_t)N, tid);
    read_ints(labels, (size_t)N, st_file_find(&io, "labels"));
    /* HF shifts labels inside its loss: position t predicts labels[t + 1]. */
    for (int i = 0; i < N; i++) targets[i] = (i % T == T - 1) ? -1 : labels[i + 1];

    model_acts a;
    cr_assert_eq(model_acts_init(&a, &m, B, T, &err), PT_OK, "%s", err.msg);
    model_batch b = {ids, targets, NULL, NULL, B, T, 1.0f, false};
    cr_assert_eq(model_forward(&m, &a, &b, &err), PT_OK, "%s", err.msg);

    float *want = malloc(sizeof(float) * (size_t)N * V);
    cr_assert_eq(st_tensor_read_f32(want, (size_t)N * V, st_file_find(&io, "logits"), &err), PT_OK, "%s", err.msg);
    double worst;
    long bad = compare_close(a.logits, want, (size_t)N * V, 1e-4, 1e-4, &worst);
    cr_assert_eq(bad, -1, "%s logits[%ld]: %g vs transformers %g", name, bad, bad >= 0 ? a.logits[bad] : 0.0,
                 bad >= 0 ? want[bad] : 0.0);

    /* Expert choices per MoE layer (the fixture stores them sorted per token). */
    const st_tensor *tk = st_file_find(&io, "router_topk");
    int K = m.cfg.num_experts_per_tok, nmoe = (int)tk->shape[0];
    int *hf_topk = malloc(sizeof(int) * tk->numel);
    read_ints(hf_topk, tk->numel, tk);
    int moe_seen = 0;
    for (int l = 0; l < m.cfg.num_hidden_layers; l++) {
        if (!m.layout.layers[l].moe) continue;
        const int *load = a.expert_load + (size_t)l * m.cfg.n_routed_experts;
        int hf_load[256] = {0};
        for (int i = 0; i < N * K; i++) hf_load[hf_topk[(size_t)moe_seen * N * K + i]]++;
        for (int e = 0; e < m.cfg.n_routed_experts; e++)
            cr_assert_eq(load[e], hf_load[e], "layer %d expert %d: %d tokens, transformers routed %d", l, e, load[e],
                         hf_load[e]);
        expert_load_stats st;
        cr_assert_eq(model_expert_load(&m, &a, l, &st), 0);
        cr_assert_float_eq(st.mean, (double)N * K / m.cfg.n_routed_experts, 1e-12);
        cr_assert_geq(st.max_over_mean, 1.0);
        moe_seen++;
    }
    {
        expert_load_stats st;
        cr_assert_eq(model_expert_load(&m, &a, 0, &st), -1, "layer 0 is dense");
    }
    cr_assert_eq(moe_seen, nmoe);

    float *dlogp = malloc(sizeof(float) * N);
    double loss;
    model_mean_nll(&a, dlogp, &loss);
    float hf_loss;
    cr_assert_eq(st_tensor_read_f32(&hf_loss, 1, st_file_find(&io, "loss"), &err), PT_OK);
    cr_assert_lt(fabs(loss - hf_loss), 1e-5 + 1e-5 * fabs(hf_loss), "loss %.8f vs transformers %.8f", loss, hf_loss);

    model_zero_grads(&m);
    model_backward(&m, &a, dlogp, NULL, 0.0f);
    int compared = 0;
    for (int i = 0; i < m.layout.ntensors; i++) {
        const tensor_entry *e = &m.layout.tensors[i];
        if (e->alias || e->role == TENSOR_BIAS) continue;
        const st_tensor *g = st_file_find(&gr, e->name);
        cr_assert_not_null(g, "no transformers gradient for %s", e->name);
        float *hg = malloc(sizeof(float) * e->numel);
        cr_assert_eq(st_tensor_read_f32(hg, e->numel, g, &err), PT_OK, "%s", err.msg);
        long j = compare_close(m.grads + e->offset, hg, e->numel, 1e-5, 1e-3, &worst);
        cr_assert_eq(j, -1, "%s: d/d%s[%ld] = %g, transformers %g", name, e->name, j,
                     j >= 0 ? m.grads[e->offset + j] : 0.0, j >= 0 ? hg[j] : 0.0);
        free(hg);
        compared++;
    }
    cr_assert_gt(compared, 20);

    /* Save, load back: identical parameters and config. */
    char tmp[] = "/tmp/posttrain-model-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_eq(model_save(&m, tmp, 4096, &err), PT_OK, "%s", err.msg); /* small shards: index path */
    policy_model m2;
    cr_assert_eq(model_load(&m2, tmp, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(m2.layout.total, m.layout.total);
    for (int i = 0; i < m.layout.ntensors; i++) {
        const tensor_entry *e = &m.layout.tensors[i];
        cr_assert_eq(memcmp(m.params + e->offset, m2.params + e->offset, e->numel * sizeof(float)), 0, "%s differs",
                     e->name);
    }
    model_free(&m2);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);

    free(ids), free(labels), free(targets), free(want), free(hf_topk), free(dlogp);
    st_file_close(&io);
    st_file_close(&gr);
    model_acts_free(&a);
    model_free(&m);
}

Test(model, qlora_grouped_routing_matches_transformers) { check_against_hf("tiny_qlora"); }
Test(model, qproj_yarn_shared2_matches_transformers) { check_against_hf("tiny_qproj_yarn"); }

Test(model, load_rejects_wrong_shapes_and_missing_tensors) {
    char dir[1024];
    fixture_path(dir, sizeof dir, "model/tiny_qproj_yarn");
    char tmp[] = "/tmp/posttrain-bad-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    char cmd[3000];
    /* A config that claims a different hidden size than the weights. */
    snprintf(cmd, sizeof cmd,
             "cp '%s/model.safetensors' '%s/' && sed 's/\"hidden_size\": 24/\"hidden_size\": 32/' '%s/config.json' > "
             "'%s/config.json'",
             dir, tmp, dir, tmp);
    cr_assert_eq(system(cmd), 0);
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_load(&m, tmp, NULL, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "model.embed_tokens.weight") && strstr(err.msg, "expected [80, 32]"), "%s", err.msg);
    /* More layers than the file holds. */
    snprintf(cmd, sizeof cmd,
             "sed 's/\"num_hidden_layers\": 2/\"num_hidden_layers\": 3/' '%s/config.json' > '%s/config.json'", dir, tmp);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(model_load(&m, tmp, NULL, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "model.layers.2.") && strstr(err.msg, "missing"), "%s", err.msg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

Test(model, load_reports_nonfinite_weights_by_name) {
    char dir[1024];
    fixture_path(dir, sizeof dir, "model/tiny_qproj_yarn");
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_load(&m, dir, NULL, &err), PT_OK, "%s", err.msg);
    const tensor_entry *e = model_layout_find(&m.layout, "model.layers.1.mlp.experts.3.up_proj.weight");
    cr_assert_not_null(e);
    m.params[e->offset + 5] = NAN;
    m.params[m.layout.final_norm] = INFINITY;
    char tmp[] = "/tmp/posttrain-nan-XXXXXX";
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_eq(model_save(&m, tmp, 0, &err), PT_OK, "%s", err.msg);
    policy_model m2;
    model_load_info info;
    cr_assert_eq(model_load(&m2, tmp, &info, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(info.nonfinite, 2);
    cr_assert(strstr(info.nonfinite_names, "model.layers.1.mlp.experts.3.up_proj.weight"), "%s", info.nonfinite_names);
    cr_assert(strstr(info.nonfinite_names, "model.norm.weight"), "%s", info.nonfinite_names);
    model_free(&m2);
    model_free(&m);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}
