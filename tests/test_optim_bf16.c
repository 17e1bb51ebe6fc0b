/* test_optim_bf16.c — AdamW with bf16 moments (adam_moments: bf16, core/optim.h) and its use in
 * an SFT run.
 *
 * What carries weight:
 *   - the math: five steps (weight decay on matrices, none on norms, router biases untouched) on
 *     the tiny MoE policy of tests/util/tiny_model.h against a reference written here in double:
 *     m ← m + (1−β1)(g − m), v ← β2·v + (1−β2)·g², the parameter update from those unrounded
 *     values with the bias corrections, and then m and v rounded to bf16 (nearest, ties to even,
 *     done here with frexp/nearbyint, not with model/dtype.h). The stored bf16 moments must equal
 *     the reference's bit for bit; the only exception is an element whose double value lies
 *     within fp32 rounding of the midpoint between two bf16 neighbours (fp32 arithmetic may
 *     then pick the other one): either neighbour is accepted there, the reference adopts it, and
 *     such elements must stay under 0.1 %. Parameters to fp32 rounding (atol 5e-7, rtol 1e-6).
 *     Truncating instead of rounding (break-and-verify) failed on the first step.
 *   - the flag matters: the same steps with fp32 moments move the parameters differently (by far
 *     more than the tolerance above), and the bf16 optimizer's arena is what two bf16 moments
 *     need (2 bytes per parameter each plus a fixed 512 KiB working chunk) on a 1M-float layout.
 *   - SFT: a 6-step run with adam_moments bf16 lowers the held-out loss; resumed from its step-2
 *     checkpoint into a new folder it reproduces the straight run's losses, and its step-6
 *     train_state.bin (bf16 moments, optimizer step, data cursor) byte for byte. The resumed run
 *     also has save_dtype fp8 (not part of the config hash): its final/ loads back to exactly the
 *     straight run's final weights block-quantised and dequantised (kernels/fp8.h, 128×128).
 *     Resuming the bf16 checkpoint with adam_moments fp32 is refused naming the key, and bad
 *     values of adam_moments / save_dtype are rejected naming the key and the allowed values.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/optim.h"
#include "core/train_state.h"
#include "datasets/run_store.h"
#include "kernels/fp8.h"
#include "model/checkpoint.h"
#include "model/dtype.h"
#include "model/tokenizer.h"
#include "sft/sft_files.h"
#include "sft/sft_trainer.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"
#include "tests/util/tiny_model.h"

static float *copy_floats(const float *x, size_t n) {
    float *c = malloc(n * sizeof *c);
    cr_assert(c);
    memcpy(c, x, n * sizeof *c);
    return c;
}

/* ---- the reference ---------------------------------------------------------------------------- */

/* x rounded to bf16 (8 significant bits, nearest, ties to even) from the exact double. *lo and
 * *hi receive the two bf16 neighbours around x and *mid_dist its distance to their midpoint. */
static double ref_bf16(double x, double *lo, double *hi, double *mid_dist) {
    if (x == 0.0) {
        *lo = *hi = 0.0;
        *mid_dist = INFINITY;
        return 0.0;
    }
    int e;
    frexp(x, &e); /* |x| = f·2^e, f in [0.5, 1) */
    const double s = ldexp(x, 8 - e); /* |s| in [128, 256): one unit = one bf16 step */
    *lo = ldexp(floor(s), e - 8);
    *hi = ldexp(ceil(s), e - 8);
    *mid_dist = fabs(s - floor(s) - 0.5) * ldexp(1.0, e - 8);
    return ldexp(nearbyint(s), e - 8);
}

typedef struct ref_state {
    double *p, *m, *v;
    size_t near_ties; /* elements where either bf16 neighbour was accepted */
    size_t checked;
} ref_state;

/* One moment: the stored bf16 value must be the reference's rounding of x, or either neighbour
 * when x is within fp32 rounding (err_bound) of their midpoint; the reference keeps what matched. */
static void check_moment(double *ref, double x, double err_bound, uint16_t got_bits, ref_state *r, const char *what,
                         const char *tensor, size_t i, int step) {
    double lo, hi, mid;
    const double want = ref_bf16(x, &lo, &hi, &mid);
    const double got = dtype_bf16_to_f32(got_bits);
    r->checked++;
    if (got == want) {
        *ref = want;
        return;
    }
    cr_assert(mid <= err_bound && (got == lo || got == hi),
              "step %d: %s of %s[%zu] is %.9g (bf16 %#06x); the reference rounds %.17g to %.9g", step, what, tensor, i,
              got, got_bits, x, want);
    r->near_ties++;
    *ref = got;
}

/* One AdamW step of the reference over the trainable tensors (see the file comment). */
static void ref_step(ref_state *r, const optim *opt, const policy_model *m, const float *g, double lr, int step) {
    const optim_config *c = &opt->cfg;
    const double bc1 = 1.0 - pow(c->beta1, step), bc2 = 1.0 - pow(c->beta2, step);
    for (int k = 0; k < m->layout.ntensors; k++) {
        const tensor_entry *t = &m->layout.tensors[k];
        if (t->alias || t->role == TENSOR_BIAS) continue;
        const double wd = t->role == TENSOR_WEIGHT ? c->weight_decay : 0.0;
        for (size_t j = 0; j < t->numel; j++) {
            const size_t i = t->offset + j;
            const double gi = g[i];
            const double mi = r->m[i] + (1.0 - c->beta1) * (gi - r->m[i]);
            const double vi = c->beta2 * r->v[i] + (1.0 - c->beta2) * gi * gi;
            r->p[i] = r->p[i] * (1.0 - lr * wd) - lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + c->eps);
            /* fp32 rounds each of a few operations by ≤ 2^-24 of its operands' size. */
            check_moment(&r->m[i], mi, 1e-6 * (fabs(r->m[i]) + fabs(gi)), opt->m16[i], r, "m", t->name, j, step);
            check_moment(&r->v[i], vi, 1e-6 * (fabs(r->v[i]) + gi * gi), opt->v16[i], r, "v", t->name, j, step);
        }
    }
}

static void tiny_policy(policy_model *m) {
    model_config c;
    tiny_model_config(&c);
    pt_error err = {0};
    cr_assert_eq(model_init(m, &c, 5, &err), PT_OK, "%s", err.msg);
    model_config_free(&c);
}

static const optim_config BF16_OPTIM = {0.9, 0.95, 1e-8, 0.1, 0.0, false, OPTIM_MOMENTS_BF16};
enum { N_STEPS = 5 };
static const double LRS[N_STEPS] = {1e-2, 2e-2, 5e-3, 1e-2, 3e-2};

/* Runs N_STEPS of opt on m with seeded gradients; grads_out (N_STEPS·total) receives them. */
static void run_steps(policy_model *m, optim *opt, float *grads_out, ref_state *ref) {
    const size_t n = m->layout.total;
    test_rng gen;
    test_rng_seed(&gen, 17);
    pt_error err = {0};
    for (int s = 0; s < N_STEPS; s++) {
        fill_uniform(m->grads, n, -1.0f, 1.0f, &gen);
        if (grads_out) memcpy(grads_out + (size_t)s * n, m->grads, n * sizeof(float));
        float *g = copy_floats(m->grads, n);
        optim_step_info info;
        cr_assert_eq(optim_step(&info, opt, m->params, m->grads, LRS[s], &err), PT_OK, "%s", err.msg);
        cr_assert(!info.skipped);
        if (ref) {
            ref_step(ref, opt, m, g, LRS[s], s + 1);
            for (size_t i = 0; i < n; i++)
                cr_assert(fabs(m->params[i] - ref->p[i]) <= 5e-7 + 1e-6 * fabs(ref->p[i]),
                          "step %d: param %zu is %.9g, the reference gives %.9g", s + 1, i, m->params[i], ref->p[i]);
        }
        free(g);
    }
}

Test(optim_bf16, matches_a_double_reference_with_bf16_rounding) {
    policy_model m;
    tiny_policy(&m);
    const size_t n = m.layout.total;
    optim opt;
    pt_error err = {0};
    cr_assert_eq(optim_init(&opt, &m.layout, &BF16_OPTIM, &err), PT_OK, "%s", err.msg);
    cr_assert(opt.m == NULL && opt.v == NULL && opt.m16 && opt.v16, "bf16 mode keeps no fp32 moments");
    ref_state r = {calloc(n, sizeof(double)), calloc(n, sizeof(double)), calloc(n, sizeof(double)), 0, 0};
    cr_assert(r.p && r.m && r.v);
    for (size_t i = 0; i < n; i++) r.p[i] = m.params[i];
    float *start = copy_floats(m.params, n);
    run_steps(&m, &opt, NULL, &r);
    cr_log_info("%zu moment values checked, %zu within fp32 rounding of a bf16 midpoint", r.checked, r.near_ties);
    cr_assert_gt(r.checked, 0);
    cr_assert(r.near_ties * 1000 < r.checked, "%zu of %zu moments disagree near a midpoint", r.near_ties, r.checked);
    /* Router biases are never touched. */
    for (int k = 0; k < m.layout.ntensors; k++) {
        const tensor_entry *t = &m.layout.tensors[k];
        if (t->role == TENSOR_BIAS && !t->alias)
            cr_assert_eq(memcmp(m.params + t->offset, start + t->offset, t->numel * sizeof(float)), 0, "%s moved",
                         t->name);
    }
    free(start);
    free(r.p), free(r.m), free(r.v);
    optim_free(&opt);
    model_free(&m);
}

Test(optim_bf16, differs_from_fp32_moments) {
    policy_model a, b;
    tiny_policy(&a);
    tiny_policy(&b);
    const size_t n = a.layout.total;
    optim oa, ob;
    pt_error err = {0};
    optim_config c32 = BF16_OPTIM;
    c32.moments = OPTIM_MOMENTS_FP32;
    cr_assert_eq(optim_init(&oa, &a.layout, &BF16_OPTIM, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(optim_init(&ob, &b.layout, &c32, &err), PT_OK, "%s", err.msg);
    run_steps(&a, &oa, NULL, NULL);
    run_steps(&b, &ob, NULL, NULL);
    double worst = 0;
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a.params[i] - b.params[i]);
        differ += d > 5e-7 + 1e-6 * fabs(b.params[i]);
        if (d > worst) worst = d;
    }
    cr_log_info("bf16 vs fp32 moments: %zu of %zu parameters differ beyond the tolerance, at most by %.3g", differ, n,
                worst);
    cr_assert_gt(worst, 1e-5, "bf16 moments must change the parameters (largest difference %.3g)", worst);
    cr_assert_gt(differ, n / 20, "only %zu of %zu parameters differ", differ, n);
    optim_free(&oa), optim_free(&ob);
    model_free(&a), model_free(&b);
}

/* Two bytes per parameter and moment: on a 1M-float layout the bf16 arena is half the fp32 one
 * plus the fixed working chunk. */
Test(optim_bf16, moments_take_two_bytes_per_parameter) {
    tensor_entry t = {.name = "w", .offset = 0, .numel = (size_t)1 << 20, .ndim = 2, .shape = {1024, 1024},
                      .role = TENSOR_WEIGHT, .alias = 0};
    model_layout lay = {0};
    lay.tensors = &t;
    lay.ntensors = 1;
    lay.total = t.numel;
    optim a, b;
    pt_error err = {0};
    optim_config c32 = BF16_OPTIM;
    c32.moments = OPTIM_MOMENTS_FP32;
    cr_assert_eq(optim_init(&a, &lay, &BF16_OPTIM, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(optim_init(&b, &lay, &c32, &err), PT_OK, "%s", err.msg);
    const size_t want = 2 * 2 * lay.total + 2 * 4 * OPTIM_BF16_CHUNK;
    cr_log_info("optimizer state for 1M parameters: bf16 %zu bytes, fp32 %zu bytes", a.mem.bytes, b.mem.bytes);
    cr_assert(a.mem.bytes >= want && a.mem.bytes <= want + 6 * ARENA_ALIGN, "bf16 arena %zu bytes, expected %zu",
              a.mem.bytes, want);
    cr_assert(b.mem.bytes >= 8 * lay.total, "fp32 arena %zu bytes", b.mem.bytes);
    optim_free(&a), optim_free(&b);
}

Test(optim_bf16, bad_value_names_the_key) {
    optim_moments mo;
    pt_error err = {0};
    cr_assert_eq(optim_moments_parse(&mo, "fp16", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "adam_moments") && strstr(err.msg, "fp32 or bf16") && strstr(err.msg, "fp16"), "%s",
              err.msg);
}

/* ---- SFT with bf16 moments -------------------------------------------------------------------- */

typedef struct world {
    char dir[256];
    char model[320];
} world;

static void world_init(world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "bf16");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    model_config c;
    tiny_model_config(&c);
    c.vocab_size = test_fixture_vocab_size();
    c.max_position_embeddings = 256;
    c.bos_token_id = 0;
    c.eos_token_ids[0] = 1;
    c.n_eos_token_ids = 1;
    test_save_policy(w->model, &c, 11);
    model_config_free(&c);
}

static void sft_json(char *out, size_t cap, const world *w, const char *run, const char *extra) {
    char data[1024];
    fixture_path(data, sizeof data, "datasets/sft_small.jsonl");
    int n = snprintf(out, cap,
                     "{\"model\": \"%s\", \"data\": \"%s\", \"eval_data\": \"%s\", \"out\": \"%s/%s\","
                     " \"max_steps\": 6, \"per_device_train_batch_size\": 2, \"max_length\": 48, \"packing\": true,"
                     " \"gradient_accumulation_steps\": 2, \"learning_rate\": 0.01, \"lr_scheduler_type\": \"cosine\","
                     " \"warmup_steps\": 2, \"weight_decay\": 0.1, \"max_grad_norm\": 0.5, \"eval_steps\": 3,"
                     " \"save_steps\": 2, \"adam_moments\": \"bf16\"%s}",
                     w->model, data, data, w->dir, run, extra);
    cr_assert(n > 0 && (size_t)n < cap);
}

static pt_status run_json(sft_result *res, const char *json, pt_error *err) {
    config cfg;
    cr_assert_eq(config_init(&cfg, &SFT_SCHEMA, 1, err), PT_OK, "%s", err->msg);
    cr_assert_eq(config_load_string(&cfg, json, "test.json", err), PT_OK, "%s\n%s", err->msg, json);
    sft_io io = {.log = NULL, .progress = NULL, .hooks = NULL};
    pt_status st = sft_run(res, &cfg, &io, err);
    config_free(&cfg);
    return st;
}

static void read_series(run_metric_series *s, const char *run_dir, const char *name) {
    char db[1024];
    snprintf(db, sizeof db, "%s/%s", run_dir, RUN_STORE_FILE);
    run_store *rs = NULL;
    pt_error err = {0};
    cr_assert_eq(run_store_open_file(&rs, db, RUN_STORE_READ_ONLY, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(run_store_metric_series(s, rs, name, &err), PT_OK, "%s", err.msg);
    run_store_close(rs);
}

/* DeepSeek's FP8 release matrices (model/checkpoint.c's choice, restated from checkpoint.h). */
static bool fp8_matrix(const tensor_entry *e) {
    if (e->role != TENSOR_WEIGHT || e->ndim != 2 || e->alias) return false;
    if (strstr(e->name, ".self_attn.")) return true;
    return strstr(e->name, ".mlp.") && !strstr(e->name, ".mlp.gate.");
}

Test(optim_bf16, sft_run_learns_and_resumes_bit_identically, .timeout = 120) {
    world w;
    world_init(&w);
    char json[4096], ref[512], run[512], a[1024], b[1024];
    snprintf(ref, sizeof ref, "%s/straight", w.dir);
    snprintf(run, sizeof run, "%s/resumed", w.dir);
    sft_result res;
    pt_error err = {0};
    sft_json(json, sizeof json, &w, "straight", "");
    cr_assert_eq(run_json(&res, json, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.end_step, 6);
    cr_log_info("bf16 moments: held-out loss %.4f → %.4f", res.eval_loss_start, res.eval_loss_end);
    cr_assert(res.eval_loss_end < res.eval_loss_start - 0.1, "held-out loss must fall: %.4f → %.4f",
              res.eval_loss_start, res.eval_loss_end);

    /* Resume from step 2 in a new folder; final/ in fp8 this time. */
    char extra[1200];
    snprintf(extra, sizeof extra, ", \"resume\": \"%s/checkpoints/step-2\", \"save_dtype\": \"fp8\"", ref);
    sft_json(json, sizeof json, &w, "resumed", extra);
    cr_assert_eq(run_json(&res, json, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 2);
    cr_assert_eq(res.end_step, 6);
    run_metric_series x, y;
    read_series(&x, ref, "loss");
    read_series(&y, run, "loss");
    cr_assert_eq(x.n, 6);
    cr_assert_eq(y.n, 4, "the resumed run logs steps 3..6");
    for (size_t i = 0; i < y.n; i++) {
        cr_assert_eq(y.steps[i], x.steps[i + 2]);
        cr_assert(memcmp(&y.values[i], &x.values[i + 2], sizeof(double)) == 0, "loss at step %lld: %.17g vs %.17g",
                  (long long)y.steps[i], y.values[i], x.values[i + 2]);
    }
    run_metric_series_free(&x), run_metric_series_free(&y);
    snprintf(a, sizeof a, "%s/checkpoints/step-6/" TRAIN_STATE_FILE, ref);
    snprintf(b, sizeof b, "%s/checkpoints/step-6/" TRAIN_STATE_FILE, run);
    size_t na, nb;
    unsigned char *sa = test_slurp(a, &na), *sb = test_slurp(b, &nb);
    cr_assert(na == nb && memcmp(sa, sb, na) == 0, "step-6 train_state.bin differs (%zu vs %zu bytes)", na, nb);
    cr_assert(memmem(sa, na, "ADBF", 4) && !memmem(sa, na, "ADAM", 4), "the checkpoint holds its moments as bf16 (ADBF)");
    free(sa), free(sb);
    snprintf(a, sizeof a, "%s/checkpoints/step-6/model.safetensors", ref);
    snprintf(b, sizeof b, "%s/checkpoints/step-6/model.safetensors", run);
    sa = test_slurp(a, &na), sb = test_slurp(b, &nb);
    cr_assert(na == nb && memcmp(sa, sb, na) == 0, "step-6 weights differ");
    free(sa), free(sb);

    /* final/ of the resumed run is the straight run's final/ in DeepSeek's FP8 format. */
    policy_model m32, m8;
    snprintf(a, sizeof a, "%s/final", ref);
    snprintf(b, sizeof b, "%s/final", run);
    cr_assert_eq(model_load(&m32, a, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_load(&m8, b, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert(m8.cfg.quant.fp8 && !m32.cfg.quant.fp8, "save_dtype fp8 writes an FP8 final/, the default fp32");
    const fp8_scaling rec = {FP8_DEFAULT_EPS, 0};
    int quantised = 0;
    for (int k = 0; k < m32.layout.ntensors; k++) {
        const tensor_entry *e = &m32.layout.tensors[k];
        float *want = copy_floats(m32.params + e->offset, e->numel);
        if (fp8_matrix(e)) {
            fp8_fake_quantize(want, want, (int)e->shape[0], (int)e->shape[1], FP8_TILE, FP8_TILE, &rec);
            quantised++;
        }
        cr_assert_eq(memcmp(want, m8.params + e->offset, e->numel * sizeof(float)), 0,
                     "%s of the fp8 final/ is not the quantised straight run", e->name);
        free(want);
    }
    cr_assert_gt(quantised, 4);
    model_free(&m32), model_free(&m8);

    /* The bf16 checkpoint does not resume into fp32 moments, even when the config may change. */
    snprintf(extra, sizeof extra, ", \"resume\": \"%s/checkpoints/step-4\", \"allow_config_change\": true", ref);
    sft_json(json, sizeof json, &w, "wrong-moments", extra);
    char *bf16 = strstr(json, "\"bf16\"");
    cr_assert(bf16);
    memcpy(bf16, "\"fp32\"", 6);
    cr_assert_eq(run_json(&res, json, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "adam_moments: bf16") && strstr(err.msg, "adam_moments: fp32"), "%s", err.msg);
    test_rmtree(w.dir);
}

Test(optim_bf16, sft_bad_values_name_the_key) {
    static const char *const CASES[][3] = {
        {"adam_moments", "fp16", "fp32 or bf16"},
        {"save_dtype", "bf16", "fp32 or fp8"},
    };
    for (size_t i = 0; i < 2; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"model\": \"m\", \"data\": \"d\", \"out\": \"o\", \"%s\": \"%s\"}", CASES[i][0],
                 CASES[i][1]);
        config cfg;
        pt_error err = {0};
        cr_assert_eq(config_init(&cfg, &SFT_SCHEMA, 1, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(config_load_string(&cfg, json, "run.json", &err), PT_OK, "%s", err.msg);
        sft_options o;
        cr_assert_eq(sft_options_from_config(&o, &cfg, &err), PT_ERR_CONFIG);
        cr_assert(strstr(err.msg, CASES[i][0]) && strstr(err.msg, CASES[i][2]) && strstr(err.msg, CASES[i][1]) &&
                      strstr(err.msg, "run.json"),
                  "%s", err.msg);
        config_free(&cfg);
    }
}
