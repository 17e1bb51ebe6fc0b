/* test_reward_model.c — the scalar-head reward model (model/reward_model.h).
 *
 * What carries weight:
 *   - against transformers: tests/ref/make_rm_fixture.py saves a DeepseekV3ForSequenceClassification
 *     (num_labels 1, three right-padded rows, q_lora + grouped routing) with its pooled scores and
 *     the gradient of Σ coef·score for every parameter. The folder (no lm_head, score.weight
 *     [1, H]) must load, the scores must match to 1e-4 and every gradient — score.weight and the
 *     whole trunk behind model_backward_hidden — to atol 1e-5 + rtol 1e-3 per tensor.
 *   - finite differences on a tiny model (every expert chosen, so routing is smooth, and a large
 *     balance-loss weight): score.weight and a spread of trunk tensors, for
 *     J = Σ c_b·score_b + balance_loss, rows of different lengths (padding must not leak in).
 *   - save → load gives bit-identical scores, and the config says what transformers needs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/reward_model.h"
#include "model/safetensors.h"
#include "tests/util/check.h"
#include "tests/util/tiny_model.h"

static void read_ints(int *out, size_t n, const st_tensor *t) {
    cr_assert_eq(t->dtype, PT_DTYPE_I64);
    cr_assert_eq(t->numel, n);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        out[i] = (int)v;
    }
}

Test(reward_model, matches_transformers_sequence_classification) {
    char dir[1024], io_path[1200], grad_path[1200];
    fixture_path(dir, sizeof dir, "reward_model/tiny");
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    snprintf(grad_path, sizeof grad_path, "%s/grads.safetensors", dir);
    reward_model rm;
    pt_error err = {0};
    cr_assert_eq(reward_model_load(&rm, dir, 0, 0, &err), PT_OK, "%s", err.msg);
    st_file io, gr;
    cr_assert_eq(st_file_open(&io, io_path, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(st_file_open(&gr, grad_path, &err), PT_OK, "%s", err.msg);
    const st_tensor *tid = st_file_find(&io, "input_ids");
    int B = (int)tid->shape[0], T = (int)tid->shape[1];
    int *ids = malloc(sizeof(int) * B * T), lengths[8];
    read_ints(ids, (size_t)B * T, tid);
    read_ints(lengths, (size_t)B, st_file_find(&io, "lengths"));
    float want[8], coef[8], got[8];
    cr_assert_eq(st_tensor_read_f32(want, (size_t)B, st_file_find(&io, "scores"), &err), PT_OK, "%s", err.msg);
    cr_assert_eq(st_tensor_read_f32(coef, (size_t)B, st_file_find(&io, "coef"), &err), PT_OK, "%s", err.msg);

    reward_model_acts ra;
    cr_assert_eq(reward_model_acts_init(&ra, &rm, B, T, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(reward_model_forward(got, &rm, &ra, ids, lengths, &err), PT_OK, "%s", err.msg);
    double worst;
    long bad = compare_close(got, want, (size_t)B, 1e-4, 1e-4, &worst);
    cr_assert_eq(bad, -1, "score[%ld]: %g vs transformers %g", bad, bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
    /* The scores differ from each other: a head reading the wrong position would not match. */
    cr_assert_gt(fabsf(want[0] - want[1]) + fabsf(want[1] - want[2]), 1e-2);

    reward_model_zero_grads(&rm);
    reward_model_backward(&rm, &ra, coef, 0.0f);
    int checked = 0;
    for (int i = 0; i < gr.n_tensors; i++) {
        const st_tensor *g = &gr.tensors[i];
        float *mine;
        if (strcmp(g->name, "score.weight") == 0) {
            mine = rm.dscore;
        } else {
            const tensor_entry *e = model_layout_find(&rm.base.layout, g->name);
            cr_assert(e, "the fixture has a gradient for '%s', which the reward model lacks", g->name);
            mine = rm.base.grads + e->offset;
        }
        float *ref = malloc(sizeof(float) * g->numel);
        cr_assert_eq(st_tensor_read_f32(ref, g->numel, g, &err), PT_OK, "%s", err.msg);
        bad = compare_close(mine, ref, g->numel, 1e-5, 1e-3, &worst);
        cr_assert_eq(bad, -1, "d/d %s [%ld]: %g vs transformers %g", g->name, bad, bad >= 0 ? mine[bad] : 0.0,
                     bad >= 0 ? ref[bad] : 0.0);
        free(ref);
        checked++;
    }
    cr_assert_gt(checked, 40, "gradients compared: %d", checked);
    reward_model_acts_free(&ra);
    st_file_close(&io);
    st_file_close(&gr);
    free(ids);
    reward_model_free(&rm);
}

Test(reward_model, missing_head_is_a_clear_error) {
    char dir[1024];
    fixture_path(dir, sizeof dir, "model/tiny_qlora");
    reward_model rm;
    pt_error err = {0};
    cr_assert_eq(reward_model_load(&rm, dir, 0, 0, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "score.weight") && strstr(err.msg, "tiny_qlora"), "%s", err.msg);
    /* A policy folder starts a reward model with a fresh head. */
    cr_assert_eq(reward_model_load(&rm, dir, REWARD_MODEL_NEW_HEAD, 3, &err), PT_OK, "%s", err.msg);
    double ss = 0.0;
    for (int j = 0; j < rm.base.cfg.hidden_size; j++) ss += (double)rm.score[j] * rm.score[j];
    cr_assert_gt(ss, 0.0);
    cr_assert(rm.base.cfg.tie_word_embeddings);
    reward_model_free(&rm);
}

/* ---- finite differences ------------------------------------------------------------------ */

typedef struct fd_ctx {
    reward_model *rm;
    reward_model_acts *ra;
    const int *ids, *lengths;
    const float *c;
    int B;
} fd_ctx;

static double rm_objective(void *p) {
    fd_ctx *x = p;
    float s[8];
    pt_error err = {0};
    cr_assert_eq(reward_model_forward(s, x->rm, x->ra, x->ids, x->lengths, &err), PT_OK, "%s", err.msg);
    double j = x->ra->a.balance_loss;
    for (int b = 0; b < x->B; b++) j += (double)x->c[b] * s[b];
    return j;
}

Test(reward_model, gradients_match_finite_differences) {
    model_config cfg;
    tiny_model_config(&cfg);
    cfg.num_experts_per_tok = 8; /* every expert chosen: routing is smooth */
    cfg.n_group = 1;
    cfg.topk_group = 1;
    reward_model rm;
    pt_error err = {0};
    cr_assert_eq(reward_model_init(&rm, &cfg, 7, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    test_rng r;
    test_rng_seed(&r, 9);
    for (int i = 0; i < rm.base.layout.ntensors; i++) {
        const tensor_entry *t = &rm.base.layout.tensors[i];
        if (t->role == TENSOR_NORM) fill_uniform(rm.base.params + t->offset, t->numel, 0.6f, 1.4f, &r);
    }
    fill_normal(rm.score, (size_t)rm.base.cfg.hidden_size, 1.0f, &r);
    enum { B = 3, T = 6 };
    int ids[B * T], lengths[B] = {6, 3, 1};
    for (int i = 0; i < B * T; i++) ids[i] = (int)(test_rng_uniform(&r) * 40);
    float c[B] = {0.9f, -1.1f, 0.6f};
    reward_model_acts ra;
    cr_assert_eq(reward_model_acts_init(&ra, &rm, B, T, &err), PT_OK, "%s", err.msg);
    fd_ctx x = {&rm, &ra, ids, lengths, c, B};
    double j0 = rm_objective(&x);
    cr_assert(isfinite(j0));
    cr_assert_gt(ra.a.balance_loss, 0.0);
    reward_model_zero_grads(&rm);
    reward_model_backward(&rm, &ra, c, 1.0f);

    fd_result res;
    cr_assert(fd_check(rm.score, rm.dscore, (size_t)rm.base.cfg.hidden_size, rm_objective, &x, 3e-3, 4e-3, 2e-2, 0,
                       &res),
              "score.weight[%ld]: numeric %g analytic %g", res.worst_index, res.numeric, res.analytic);
    int checked = 0, failed = 0;
    for (int i = 0; i < rm.base.layout.ntensors; i++) {
        const tensor_entry *t = &rm.base.layout.tensors[i];
        if (t->alias || t->role == TENSOR_BIAS) continue;
        int ok = fd_check(rm.base.params + t->offset, rm.base.grads + t->offset, t->numel, rm_objective, &x, 3e-3,
                          4e-3, 2e-2, 6, &res);
        checked++;
        if (!ok) {
            failed++;
            cr_log_error("%s[%ld]: numeric %.6g analytic %.6g", t->name, res.worst_index, res.numeric, res.analytic);
        }
    }
    cr_assert_gt(checked, 20);
    cr_assert_eq(failed, 0, "%d of %d tensors disagree with finite differences", failed, checked);
    /* Padding never reaches a scored token: changing it leaves every score as it was. */
    float s0[B], s1[B];
    cr_assert_eq(reward_model_forward(s0, &rm, &ra, ids, lengths, &err), PT_OK);
    for (int b = 0; b < B; b++)
        for (int t = lengths[b]; t < T; t++) ids[b * T + t] = (ids[b * T + t] + 7) % 40;
    cr_assert_eq(reward_model_forward(s1, &rm, &ra, ids, lengths, &err), PT_OK);
    for (int b = 0; b < B; b++) cr_assert_eq(s0[b], s1[b], "row %d: %g vs %g", b, s0[b], s1[b]);
    reward_model_acts_free(&ra);
    reward_model_free(&rm);
}

/* ---- save and load ----------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

Test(reward_model, save_load_roundtrip) {
    char src[1024];
    fixture_path(src, sizeof src, "reward_model/tiny");
    reward_model a, b;
    pt_error err = {0};
    cr_assert_eq(reward_model_load(&a, src, 0, 0, &err), PT_OK, "%s", err.msg);
    char dir[64] = "/tmp/pt-rm-XXXXXX";
    cr_assert(mkdtemp(dir));
    char out[128];
    snprintf(out, sizeof out, "%s/rm", dir);
    cr_assert_eq(reward_model_save(&a, out, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(reward_model_load(&b, out, 0, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(memcmp(a.score, b.score, sizeof(float) * a.base.cfg.hidden_size), 0);
    cr_assert_eq(memcmp(a.base.params, b.base.params, sizeof(float) * a.base.layout.total), 0);
    char path[200];
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert(strstr(text, "DeepseekV3ForSequenceClassification"), "%s", text);
    cr_assert(strstr(text, "\"id2label\""), "%s", text);
    st_folder sf;
    cr_assert_eq(st_folder_open(&sf, out, &err), PT_OK, "%s", err.msg);
    const st_tensor *t = st_folder_find(&sf, "score.weight");
    cr_assert(t && t->ndim == 2 && t->shape[0] == 1 && t->shape[1] == a.base.cfg.hidden_size);
    cr_assert_null(st_folder_find(&sf, "lm_head.weight"));
    st_folder_close(&sf);
    reward_model_free(&a);
    reward_model_free(&b);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
