/* test_optim.c — the trainers' optimizer (core/optim) and learning-rate schedules (core/schedule).
 *
 * optim: on a tiny policy (a dense and a MoE layer, one MTP module, so every tensor role and
 * the alias entries exist) the whole arena after optim_step must equal, bit for bit, what
 * kernels/adamw's adamw_update gives when called tensor by tensor with the decay each role
 * should get — norms with and without decay, router biases, aliases and padding untouched. The
 * kernel itself is checked against torch in test_adamw.c; here the peer is the per-tensor use
 * of that kernel, and exact equality is right because AdamW is elementwise (merging adjacent
 * tensors cannot change a single operation). A decayed norm, a twice-updated alias, a touched
 * router bias or a stray write into padding changes bits and fails. Clipping: the returned norm
 * against an independent double sum over the trainable tensors (rtol 1e-12: both are double sums
 * of the same fp32 squares in different orders), the clipped norm against max_grad_norm
 * (rtol 1e-5: fp32 scaling of ~30k elements), and the step after clipping bitwise against the
 * kernel. Non-finite gradients: the step is skipped and every byte stays as it was.
 *
 * schedules: against transformers' get_{cosine,cosine_with_min_lr,linear,constant}_schedule_
 * with_warmup stepped through torch's LambdaLR (tests/fixtures/schedule.json, written by
 * tests/ref/make_schedule_fixture.py). The Python runs the same double operations in the same
 * order, so values must be identical; the cosine part is allowed 1 ulp because the fixture's
 * math.cos may come from another libm build than this test's cos. An off-by-one step or a wrong
 * warm-up moves values by ≥ 1e-3 relative.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/schedule.h"
#include "kernels/adamw.h"
#include "model/model.h"
#include "tests/util/check.h"

static void optim_tiny_config(model_config *c) {
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
    c->initializer_range = 0.3;
    c->num_nextn_predict_layers = 1;
}

/* A tiny model with norms and router biases away from 1/0, and random values in every float of
 * the gradient arena (padding and router-bias gradients included, so stray use shows). */
static void optim_tiny_model(policy_model *m, uint64_t seed) {
    model_config cfg;
    optim_tiny_config(&cfg);
    pt_error err = {0};
    cr_assert_eq(model_init(m, &cfg, seed, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    test_rng r;
    test_rng_seed(&r, seed + 100);
    int roles[3] = {0, 0, 0}, aliases = 0;
    for (int i = 0; i < m->layout.ntensors; i++) {
        const tensor_entry *t = &m->layout.tensors[i];
        aliases += t->alias;
        if (t->alias) continue;
        roles[t->role]++;
        if (t->role == TENSOR_NORM) fill_uniform(m->params + t->offset, t->numel, 0.6f, 1.4f, &r);
        if (t->role == TENSOR_BIAS) fill_uniform(m->params + t->offset, t->numel, -0.5f, 0.5f, &r);
    }
    cr_assert(roles[TENSOR_WEIGHT] > 0 && roles[TENSOR_NORM] > 0 && roles[TENSOR_BIAS] > 0 && aliases > 0,
              "the tiny model must have every tensor role and alias entries (%d %d %d, %d aliases)",
              roles[TENSOR_WEIGHT], roles[TENSOR_NORM], roles[TENSOR_BIAS], aliases);
    fill_uniform(m->grads, m->layout.total, -1.0f, 1.0f, &r);
}

static float *copy_floats(const float *x, size_t n) {
    float *c = malloc(n * sizeof *c);
    cr_assert(c);
    memcpy(c, x, n * sizeof *c);
    return c;
}

/* The first differing float, or -1. */
static long first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return (long)i;
    return -1;
}

/* The tensor holding float i, for messages. */
static const char *owner(const model_layout *lay, long i) {
    for (int k = 0; k < lay->ntensors; k++)
        if (!lay->tensors[k].alias && (size_t)i >= lay->tensors[k].offset &&
            (size_t)i < lay->tensors[k].offset + lay->tensors[k].numel)
            return lay->tensors[k].name;
    return "(padding)";
}

/* ‖g‖ over the trainable tensors (non-alias WEIGHT and NORM), summed independently. */
static double trainable_norm(const policy_model *m, const float *g) {
    double ss = 0.0;
    for (int k = 0; k < m->layout.ntensors; k++) {
        const tensor_entry *t = &m->layout.tensors[k];
        if (t->alias || t->role == TENSOR_BIAS) continue;
        ss += dot_double(g + t->offset, g + t->offset, t->numel);
    }
    return sqrt(ss);
}

/* Applies the reference: adamw_update tensor by tensor with the role's decay. */
static void reference_step(const policy_model *m, float *p, float *mm, float *vv, const float *g, double lr,
                           const optim_config *c, int step) {
    for (int k = 0; k < m->layout.ntensors; k++) {
        const tensor_entry *t = &m->layout.tensors[k];
        if (t->alias || t->role == TENSOR_BIAS) continue;
        double wd = (t->role == TENSOR_WEIGHT || c->weight_decay_norms) ? c->weight_decay : 0.0;
        adamw_update(p + t->offset, mm + t->offset, vv + t->offset, g + t->offset, t->numel, lr, c->beta1, c->beta2,
                     c->eps, wd, step);
    }
}

static void check_against_kernel(bool decay_norms) {
    policy_model m;
    optim_tiny_model(&m, 7);
    const size_t n = m.layout.total;
    optim_config c = {0.9, 0.95, 1e-8, 0.3, 0.0, decay_norms, OPTIM_MOMENTS_FP32};
    optim opt;
    pt_error err = {0};
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_OK, "%s", err.msg);
    size_t trainable = 0;
    for (int k = 0; k < m.layout.ntensors; k++)
        if (!m.layout.tensors[k].alias && m.layout.tensors[k].role != TENSOR_BIAS) trainable += m.layout.tensors[k].numel;
    cr_assert_eq(opt.trainable, trainable, "optimizer covers %zu floats, the trainable tensors hold %zu", opt.trainable,
                 trainable);

    float *p = copy_floats(m.params, n), *mm = calloc(n, sizeof(float)), *vv = calloc(n, sizeof(float));
    cr_assert(mm && vv);
    test_rng r;
    test_rng_seed(&r, 99);
    const double lrs[3] = {0.1, 0.05, 0.2};
    for (int s = 0; s < 3; s++) {
        if (s > 0) fill_uniform(m.grads, n, -1.0f, 1.0f, &r);
        float *g = copy_floats(m.grads, n);
        optim_step_info info;
        cr_assert_eq(optim_step(&info, &opt, m.params, m.grads, lrs[s], &err), PT_OK, "%s", err.msg);
        cr_assert(!info.skipped);
        cr_assert_eq(info.clip_coef, 1.0, "clipping is off");
        double want_norm = trainable_norm(&m, g);
        cr_assert(fabs(info.grad_norm - want_norm) <= 1e-12 * want_norm, "grad norm %.17g, expected %.17g",
                  info.grad_norm, want_norm);
        reference_step(&m, p, mm, vv, g, lrs[s], &c, s + 1);
        cr_assert_eq(opt.step, s + 1);
        long d = first_diff(m.grads, g, n);
        cr_assert_eq(d, -1, "gradients changed without clipping at %ld (%s)", d, d >= 0 ? owner(&m.layout, d) : "");
        d = first_diff(m.params, p, n);
        cr_assert_eq(d, -1, "decay_norms=%d step %d: param %ld (%s) is %.9g, per-tensor AdamW gives %.9g", decay_norms,
                     s + 1, d, d >= 0 ? owner(&m.layout, d) : "", d >= 0 ? m.params[d] : 0.0, d >= 0 ? p[d] : 0.0);
        d = first_diff(opt.m, mm, n);
        cr_assert_eq(d, -1, "first moment %ld (%s) differs", d, d >= 0 ? owner(&m.layout, d) : "");
        d = first_diff(opt.v, vv, n);
        cr_assert_eq(d, -1, "second moment %ld (%s) differs", d, d >= 0 ? owner(&m.layout, d) : "");
        free(g);
    }
    free(p);
    free(mm);
    free(vv);
    optim_free(&opt);
    model_free(&m);
}

Test(optim, matches_per_tensor_adamw_norms_undecayed) { check_against_kernel(false); }
Test(optim, matches_per_tensor_adamw_norms_decayed) { check_against_kernel(true); }

/* The two settings must give different norms (otherwise the tests above could not tell them apart). */
Test(optim, norm_decay_setting_matters) {
    policy_model a, b;
    optim_tiny_model(&a, 7);
    optim_tiny_model(&b, 7);
    optim_config c = {0.9, 0.95, 1e-8, 0.3, 0.0, false, OPTIM_MOMENTS_FP32};
    optim oa, ob;
    pt_error err = {0};
    cr_assert_eq(optim_init(&oa, &a.layout, &c, &err), PT_OK, "%s", err.msg);
    c.weight_decay_norms = true;
    cr_assert_eq(optim_init(&ob, &b.layout, &c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(optim_step(NULL, &oa, a.params, a.grads, 0.1, &err), PT_OK);
    cr_assert_eq(optim_step(NULL, &ob, b.params, b.grads, 0.1, &err), PT_OK);
    for (int k = 0; k < a.layout.ntensors; k++) {
        const tensor_entry *t = &a.layout.tensors[k];
        if (t->alias) continue;
        long d = first_diff(a.params + t->offset, b.params + t->offset, t->numel);
        if (t->role == TENSOR_NORM) cr_assert_neq(d, -1, "%s: decay on norms made no difference", t->name);
        else cr_assert_eq(d, -1, "%s: only norms may depend on weight_decay_norms", t->name);
    }
    optim_free(&oa);
    optim_free(&ob);
    model_free(&a);
    model_free(&b);
}

Test(optim, clipping) {
    policy_model m;
    optim_tiny_model(&m, 3);
    const size_t n = m.layout.total;
    /* Huge router-bias gradients: were they counted, the norm would be ~1e6. */
    for (int k = 0; k < m.layout.ntensors; k++)
        if (m.layout.tensors[k].role == TENSOR_BIAS)
            for (size_t j = 0; j < m.layout.tensors[k].numel; j++) m.grads[m.layout.tensors[k].offset + j] = 1e6f;
    optim_config c = {0.9, 0.95, 1e-8, 0.1, 0.5, false, OPTIM_MOMENTS_FP32};
    optim opt;
    pt_error err = {0};
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_OK, "%s", err.msg);
    float *g0 = copy_floats(m.grads, n), *p = copy_floats(m.params, n);
    float *mm = calloc(n, sizeof(float)), *vv = calloc(n, sizeof(float));
    double want = trainable_norm(&m, g0);
    cr_assert_gt(want, 10.0, "the test needs a norm well above the threshold");

    optim_step_info info;
    cr_assert_eq(optim_step(&info, &opt, m.params, m.grads, 0.01, &err), PT_OK, "%s", err.msg);
    cr_assert(!info.skipped);
    cr_assert(fabs(info.grad_norm - want) <= 1e-12 * want, "pre-clip norm %.17g, expected %.17g", info.grad_norm, want);
    double coef = 0.5 / (want + 1e-6);
    cr_assert(fabs(info.clip_coef - coef) <= 1e-12 * coef, "clip coefficient %.17g, expected %.17g", info.clip_coef, coef);
    double after = trainable_norm(&m, m.grads);
    cr_assert(fabs(after - 0.5) <= 1e-5 * 0.5, "clipped norm %.9g, expected 0.5", after);
    for (int k = 0; k < m.layout.ntensors; k++) {
        const tensor_entry *t = &m.layout.tensors[k];
        if (t->alias) continue;
        for (size_t j = 0; j < t->numel; j++) {
            size_t i = t->offset + j;
            float expect = t->role == TENSOR_BIAS ? g0[i] : g0[i] * (float)info.clip_coef;
            cr_assert(m.grads[i] == expect, "%s[%zu]: gradient %.9g after clipping, expected %.9g", t->name, j,
                      m.grads[i], expect);
        }
    }
    /* The update used the clipped gradients. */
    reference_step(&m, p, mm, vv, m.grads, 0.01, &c, 1);
    long d = first_diff(m.params, p, n);
    cr_assert_eq(d, -1, "param %ld (%s) differs from AdamW on the clipped gradients", d, d >= 0 ? owner(&m.layout, d) : "");

    /* Below the threshold nothing is scaled. */
    optim_free(&opt);
    c.max_grad_norm = 1e9;
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_OK, "%s", err.msg);
    memcpy(m.grads, g0, n * sizeof(float));
    cr_assert_eq(optim_step(&info, &opt, m.params, m.grads, 0.01, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(info.clip_coef, 1.0);
    cr_assert_eq(first_diff(m.grads, g0, n), -1, "gradients below the threshold must not change");
    free(g0);
    free(p);
    free(mm);
    free(vv);
    optim_free(&opt);
    model_free(&m);
}

/* One good step (so moments are non-zero), then a poisoned gradient: nothing may change. */
static void check_skip(float poison, double max_grad_norm) {
    policy_model m;
    optim_tiny_model(&m, 5);
    const size_t n = m.layout.total;
    optim_config c = {0.9, 0.95, 1e-8, 0.1, max_grad_norm, false, OPTIM_MOMENTS_FP32};
    optim opt;
    pt_error err = {0};
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(optim_step(NULL, &opt, m.params, m.grads, 0.01, &err), PT_OK, "%s", err.msg);
    const tensor_entry *t = model_layout_find(&m.layout, "model.layers.1.mlp.experts.5.down_proj.weight");
    cr_assert(t);
    m.grads[t->offset + 3] = poison;
    float *p = copy_floats(m.params, n), *g = copy_floats(m.grads, n), *mm = copy_floats(opt.m, n),
          *vv = copy_floats(opt.v, n);
    optim_step_info info;
    cr_assert_eq(optim_step(&info, &opt, m.params, m.grads, 0.01, &err), PT_OK, "a skipped step is not an error");
    cr_assert(info.skipped, "a %g gradient must skip the step", (double)poison);
    cr_assert(!isfinite(info.grad_norm), "the reported norm must show the NaN/Inf, got %g", info.grad_norm);
    cr_assert_eq(opt.step, 1, "the step counter must not advance on a skipped step");
    cr_assert_eq(first_diff(m.params, p, n), -1, "params changed on a skipped step");
    cr_assert_eq(first_diff(opt.m, mm, n), -1, "first moments changed on a skipped step");
    cr_assert_eq(first_diff(opt.v, vv, n), -1, "second moments changed on a skipped step");
    cr_assert_eq(memcmp(m.grads, g, n * sizeof(float)), 0, "gradients changed on a skipped step");
    free(p);
    free(g);
    free(mm);
    free(vv);
    optim_free(&opt);
    model_free(&m);
}

Test(optim, nan_gradient_skips_step) { check_skip(NAN, 1.0); }
Test(optim, inf_gradient_skips_step) { check_skip(INFINITY, 0.0); }
Test(optim, neg_inf_gradient_skips_step_with_clipping) { check_skip(-INFINITY, 1.0); }

Test(optim, nan_guard_aborts_after_k_in_a_row) {
    nan_guard g;
    nan_guard_init(&g, 3);
    pt_error err = {0};
    optim_step_info ok = {1.0, 1.0, false}, bad = {NAN, 1.0, true};
    const optim_step_info *seq[] = {&bad, &bad, &ok, &bad, &bad};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        cr_assert_eq(nan_guard_record(&g, seq[i], &err), PT_OK, "step %zu: two skips in a row must not abort", i);
    cr_assert_eq(g.consecutive, 2);
    cr_assert_eq(nan_guard_record(&g, &bad, &err), PT_ERR_NUMERIC, "the third skip in a row must abort");
    cr_assert(strstr(err.msg, "3 optimizer steps in a row"), "message: %s", err.msg);
    cr_assert_eq(g.total, 5);
}

Test(optim, rejects_bad_arguments) {
    policy_model m;
    optim_tiny_model(&m, 1);
    pt_error err = {0};
    optim opt;
    optim_config c = optim_config_default();
    c.beta2 = 1.0;
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "adam_beta2"), "%s", err.msg);
    c = optim_config_default();
    c.max_grad_norm = -1.0;
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_ERR_CONFIG);
    c = optim_config_default();
    cr_assert_eq(optim_init(&opt, &m.layout, &c, &err), PT_OK, "%s", err.msg);
    float *p = copy_floats(m.params, m.layout.total);
    cr_assert_eq(optim_step(NULL, &opt, m.params, m.grads, NAN, &err), PT_ERR_INVALID);
    cr_assert_eq(optim_step(NULL, &opt, m.params, m.grads, -1e-3, &err), PT_ERR_INVALID);
    cr_assert_eq(first_diff(m.params, p, m.layout.total), -1, "a rejected call must change nothing");
    cr_assert_eq(opt.step, 0);
    free(p);
    optim_free(&opt);
    model_free(&m);
}

/* ---- schedules ---------------------------------------------------------------------------- */

static cJSON *schedule_fixture(void) {
    char path[1024];
    fixture_path(path, sizeof path, "schedule.json");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (regenerate with python3 tests/ref/make_schedule_fixture.py)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    cr_assert(text);
    cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert(root, "%s is not valid JSON", path);
    return root;
}

static const cJSON *sched_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(v, "fixture case lacks \"%s\"", k);
    return v;
}

Test(schedule, matches_transformers) {
    cJSON *root = schedule_fixture();
    const cJSON *cases = sched_field(root, "cases"), *cs;
    int ncases = 0, kinds[3] = {0, 0, 0};
    cJSON_ArrayForEach(cs, cases) {
        const char *name = sched_field(cs, "name")->valuestring;
        lr_schedule s;
        pt_error err = {0};
        cr_assert_eq(lr_schedule_parse_type(&s.type, sched_field(cs, "type")->valuestring, &err), PT_OK, "%s", err.msg);
        s.base_lr = sched_field(cs, "base_lr")->valuedouble;
        s.warmup_steps = (int64_t)sched_field(cs, "warmup_steps")->valuedouble;
        s.total_steps = (int64_t)sched_field(cs, "total_steps")->valuedouble;
        s.min_lr_ratio = sched_field(cs, "min_lr_ratio")->valuedouble;
        cr_assert_eq(lr_schedule_validate(&s, &err), PT_OK, "%s: %s", name, err.msg);
        kinds[s.type]++;
        const cJSON *lrs = sched_field(cs, "lrs"), *v;
        cr_assert_eq(cJSON_GetArraySize(lrs), (int)s.total_steps + 1, "%s: one lr per step 0..total", name);
        int64_t step = 0;
        cJSON_ArrayForEach(v, lrs) {
            double want = v->valuedouble, got = lr_at(&s, step);
            int cosine_part = s.type == LR_SCHEDULE_COSINE && step >= s.warmup_steps;
            double tol = cosine_part ? fabs(nextafter(want, INFINITY) - want) : 0.0;
            cr_assert(fabs(got - want) <= tol, "%s step %lld: lr %.17g, transformers %.17g", name, (long long)step, got,
                      want);
            step++;
        }
        ncases++;
    }
    cr_assert(ncases >= 6 && kinds[LR_SCHEDULE_COSINE] && kinds[LR_SCHEDULE_LINEAR] && kinds[LR_SCHEDULE_CONSTANT],
              "the fixture must cover every schedule");
    cJSON_Delete(root);
}

Test(schedule, holds_minimum_past_the_end) {
    lr_schedule cos = {LR_SCHEDULE_COSINE, 1e-3, 4, 20, 0.1};
    lr_schedule lin = {LR_SCHEDULE_LINEAR, 1e-3, 4, 20, 0.0};
    for (int64_t s = 20; s < 60; s += 7) {
        cr_assert(fabs(lr_at(&cos, s) - 1e-4) <= 1e-18, "cosine past the end: %.17g", lr_at(&cos, s));
        cr_assert_eq(lr_at(&lin, s), 0.0);
    }
    cr_assert_eq(lr_at(&cos, -5), 0.0, "negative steps count as step 0 (warm-up starts at 0)");
    cr_assert_eq(lr_at(&cos, 4), 1e-3, "the peak is reached when warm-up ends");
}

Test(schedule, rejects_bad_settings) {
    pt_error err = {0};
    lr_schedule s = {LR_SCHEDULE_COSINE, 1e-3, 30, 20, 0.0};
    cr_assert_eq(lr_schedule_validate(&s, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "warmup_steps"), "%s", err.msg);
    s = (lr_schedule){LR_SCHEDULE_LINEAR, 1e-3, 0, 20, 1.5};
    cr_assert_eq(lr_schedule_validate(&s, &err), PT_ERR_CONFIG);
    s = (lr_schedule){LR_SCHEDULE_CONSTANT, 0.0, 0, 0, 0.0};
    cr_assert_eq(lr_schedule_validate(&s, &err), PT_ERR_CONFIG);
    s = (lr_schedule){LR_SCHEDULE_CONSTANT, 1e-3, 30, 0, 0.0};
    cr_assert_eq(lr_schedule_validate(&s, &err), PT_OK, "constant needs no total: %s", err.msg);
    lr_schedule_type t;
    cr_assert_eq(lr_schedule_parse_type(&t, "cosine_with_restarts", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "constant, linear, cosine"), "%s", err.msg);
}
