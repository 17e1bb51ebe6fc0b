/* test_convert.c — `posttrain convert`'s library half (sft/model_export.h: model_convert).
 *
 * What carries weight:
 *   - fp8: a tiny model converted to fp8 loads back to exactly its weights block-quantised and
 *     dequantised by kernels/fp8.h here (128×128 blocks, amax floor 1e-4) for the attention,
 *     dense-MLP and expert matrices, and unchanged for the rest; the safetensors really hold
 *     F8_E4M3 codes, the tokenizer files come along, and quantisation really moved some weights.
 *     Converting the fp8 folder back to fp32 gives the same weights and no quantization_config.
 *   - greedy rollouts: the rollout engine's greedy tokens from the fp8 folder equal those of an
 *     fp32 model holding the dequantised weights (the FP8 folder loads to plain fp32 inference).
 *   - refusals: an existing non-empty --out is refused (its file unchanged, no .tmp left), --force
 *     replaces it, a folder with subfolders is refused even with --force, a source that fails to
 *     load leaves neither --out nor --out.tmp, and a bad --dtype names the allowed values.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/fp8.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "rollout/engine.h"
#include "sft/model_export.h"
#include "sft/sft_files.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"
#include "tests/util/tiny_model.h"

typedef struct world {
    char dir[256], model[320], fp8[320], back[320];
} world;

/* A tiny model with the fixture tokenizer; hidden size 160 so that 128×128 blocks are partial. */
static void world_init(world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "convert");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    snprintf(w->fp8, sizeof w->fp8, "%s/model-fp8", w->dir);
    snprintf(w->back, sizeof w->back, "%s/model-fp32", w->dir);
    model_config c;
    tiny_model_config(&c);
    c.vocab_size = test_fixture_vocab_size();
    c.hidden_size = 160;
    c.intermediate_size = 200;
    c.max_position_embeddings = 128;
    test_save_policy(w->model, &c, 3);
    model_config_free(&c);
}

/* The first index where a and b differ bitwise, or -1. */
static long first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) return (long)i;
    return -1;
}

static void world_free(world *w) { test_rmtree(w->dir); }

static bool fp8_matrix(const tensor_entry *e) {
    if (e->role != TENSOR_WEIGHT || e->ndim != 2 || e->alias) return false;
    if (strstr(e->name, ".self_attn.")) return true;
    return strstr(e->name, ".mlp.") && !strstr(e->name, ".mlp.gate.");
}

/* orig's weights with the FP8 release matrices quantised and dequantised (into *q, a copy). */
static void dequantised_copy(policy_model *q, const char *dir) {
    pt_error err = {0};
    cr_assert_eq(model_load(q, dir, NULL, &err), PT_OK, "%s", err.msg);
    const fp8_scaling rec = {FP8_DEFAULT_EPS, 0};
    for (int k = 0; k < q->layout.ntensors; k++) {
        const tensor_entry *e = &q->layout.tensors[k];
        if (fp8_matrix(e))
            fp8_fake_quantize(q->params + e->offset, q->params + e->offset, (int)e->shape[0], (int)e->shape[1],
                              FP8_TILE, FP8_TILE, &rec);
    }
}

static void greedy(int *out, int n_out, const policy_model *m) {
    rollout_config c = rollout_config_default();
    c.num_generations = 1;
    c.max_live = 2;
    c.max_completion_length = n_out;
    c.max_cached_tokens = 1024;
    c.sampling.temperature = 0.0f;
    c.seed = 1;
    int p0[4] = {5, 17, 33, 8}, p1[3] = {40, 2, 71};
    rollout_prompt prompts[2] = {{p0, 4, 0}, {p1, 3, 1}};
    rollout_completion comp[2];
    rollout_stats st;
    rollout_engine e;
    pt_error err = {0};
    cr_assert_eq(rollout_engine_init(&e, m, NULL, &c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(rollout_generate(&e, prompts, 2, comp, &st, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        cr_assert_gt(comp[i].len, 0, "prompt %d generated nothing", i);
        for (int t = 0; t < n_out / 2; t++) out[i * (n_out / 2) + t] = t < comp[i].len ? comp[i].ids[t] : -1;
    }
    rollout_completions_free(comp, 2);
    rollout_engine_free(&e);
}

Test(convert, fp8_loads_to_the_dequantised_weights, .timeout = 60) {
    world w;
    world_init(&w);
    pt_error err = {0};
    model_convert_info info;
    cr_assert_eq(model_convert(&info, w.model, w.fp8, MODEL_SAVE_FP8, false, 0, &err), PT_OK, "%s", err.msg);
    cr_assert(info.copied_tokenizer);
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", w.fp8);
    cr_assert(sft_path_exists(p), "the tokenizer is copied");
    snprintf(p, sizeof p, "%s.tmp", w.fp8);
    cr_assert(!sft_path_exists(p), "no temporary folder is left");

    st_folder f;
    cr_assert_eq(st_folder_open(&f, w.fp8, &err), PT_OK, "%s", err.msg);
    const st_tensor *t = st_folder_find(&f, "model.layers.0.self_attn.o_proj.weight");
    cr_assert(t && t->dtype == PT_DTYPE_F8_E4M3, "attention matrices are stored as E4M3");
    cr_assert(st_folder_find(&f, "model.layers.0.self_attn.o_proj.weight_scale_inv"));
    st_folder_close(&f);

    policy_model orig, want, got;
    cr_assert_eq(model_load(&orig, w.model, NULL, &err), PT_OK, "%s", err.msg);
    dequantised_copy(&want, w.model);
    cr_assert_eq(model_load(&got, w.fp8, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert(got.cfg.quant.fp8);
    cr_assert_eq(got.layout.total, want.layout.total);
    size_t moved = 0;
    for (int k = 0; k < want.layout.ntensors; k++) {
        const tensor_entry *e = &want.layout.tensors[k];
        long d = first_diff(got.params + e->offset, want.params + e->offset, e->numel);
        cr_assert_eq(d, -1, "%s[%ld]: loaded %.9g, quantised reference %.9g", e->name, d,
                     d >= 0 ? got.params[e->offset + d] : 0.0, d >= 0 ? want.params[e->offset + d] : 0.0);
        for (size_t i = 0; i < e->numel; i++) moved += orig.params[e->offset + i] != want.params[e->offset + i];
    }
    cr_assert_gt(moved, want.layout.total / 10, "quantisation must change weights (%zu moved)", moved);

    /* Greedy rollouts: the fp8 folder against fp32 weights holding the same dequantised values. */
    enum { N = 24 };
    int a[N], b[N];
    greedy(a, N, &got);
    greedy(b, N, &want);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "greedy tokens of the fp8 folder differ from the dequantised fp32 model");

    /* And back to fp32: the same weights, no quantization_config. */
    cr_assert_eq(model_convert(NULL, w.fp8, w.back, MODEL_SAVE_FP32, false, 0, &err), PT_OK, "%s", err.msg);
    policy_model back;
    cr_assert_eq(model_load(&back, w.back, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert(!back.cfg.quant.fp8, "an fp32 folder carries no quantization_config");
    cr_assert_eq(first_diff(back.params, got.params, got.layout.total), -1);
    model_free(&back);
    model_free(&orig), model_free(&want), model_free(&got);
    world_free(&w);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void expect_text(const char *path, const char *text) {
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cr_assert_str_eq(buf, text, "%s changed", path);
}

Test(convert, refuses_to_overwrite_and_leaves_no_half_folder, .timeout = 60) {
    world w;
    world_init(&w);
    pt_error err = {0};
    char keep[1024], tmp[1024], cfg_path[1024];
    cr_assert_eq(mkdir(w.fp8, 0755), 0);
    snprintf(keep, sizeof keep, "%s/keep.txt", w.fp8);
    snprintf(tmp, sizeof tmp, "%s.tmp", w.fp8);
    write_text(keep, "precious");
    cr_assert_eq(model_convert(NULL, w.model, w.fp8, MODEL_SAVE_FP8, false, 0, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, w.fp8) && strstr(err.msg, "--force") && strstr(err.msg, "not empty"), "%s", err.msg);
    expect_text(keep, "precious");
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", w.fp8);
    cr_assert(!sft_path_exists(cfg_path) && !sft_path_exists(tmp), "nothing is written after a refusal");

    /* --force replaces a folder of files. */
    cr_assert_eq(model_convert(NULL, w.model, w.fp8, MODEL_SAVE_FP8, true, 0, &err), PT_OK, "%s", err.msg);
    cr_assert(!sft_path_exists(keep) && sft_path_exists(cfg_path) && !sft_path_exists(tmp));

    /* A folder with subfolders is not a model folder: refused even with --force. */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/run", w.dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(keep, sizeof keep, "%s/checkpoints", sub);
    cr_assert_eq(mkdir(keep, 0755), 0);
    cr_assert_eq(model_convert(NULL, w.model, sub, MODEL_SAVE_FP8, true, 0, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "subfolders"), "%s", err.msg);
    cr_assert(sft_is_dir(keep));

    /* A source that fails to load (a tensor missing) leaves neither --out nor --out.tmp. */
    char bad[600], out[600], st_path[1024];
    snprintf(bad, sizeof bad, "%s/bad", w.dir);
    snprintf(out, sizeof out, "%s/bad-out", w.dir);
    cr_assert_eq(mkdir(bad, 0755), 0);
    snprintf(st_path, sizeof st_path, "%s/config.json", bad);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", w.model);
    cr_assert_eq(sft_copy_file(st_path, cfg_path, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_convert(NULL, bad, out, MODEL_SAVE_FP8, false, 0, &err) == PT_OK, false);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    cr_assert(!sft_path_exists(out) && !sft_path_exists(tmp), "a failed conversion leaves no folder");

    /* A bad --dtype names the accepted values. */
    model_save_dtype d;
    cr_assert_eq(model_save_dtype_parse(&d, "fp16", "--dtype", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "--dtype") && strstr(err.msg, "fp32 or fp8") && strstr(err.msg, "fp16"), "%s", err.msg);
    world_free(&w);
}
