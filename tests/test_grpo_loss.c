/* test_grpo_loss.c — GRPO-family losses against torch autograd (tests/fixtures/grpo_loss.json,
 * written by tests/ref/make_grpo_fixture.py from TRL's _compute_loss and GSPO's sequence ratio):
 * every loss_type × importance_sampling_level × beta ∈ {0, 0.04}, on six completions of different
 * lengths with padding, a hole in one mask, a fully masked completion and a zero advantage.
 *
 * Tolerances: the fixture's inputs are fp32 values and torch works on them in float64; grpo_loss
 * also works in double and rounds only dlogp to fp32 at the end. So the loss agrees to ~1e-12 and
 * dlogp to fp32 rounding (6e-8 relative): loss rtol 1e-9, dlogp atol 1e-9 + rtol 1e-6. A wrong
 * branch of the clip (gradient through the clipped side), a missing 1/n, a wrong normaliser or a
 * dropped KL term changes values by ≥ 1e-3 relative and fails. Metrics (clip ratios are counts
 * over ≤ 66 items; kl is a mean) must agree to 1e-9.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpo/loss.h"
#include "tests/util/check.h"

static cJSON *grpo_load_fixture(void) {
    char path[1024];
    fixture_path(path, sizeof path, "grpo_loss.json");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (regenerate with python3 tests/ref/make_grpo_fixture.py)", path);
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

static const cJSON *grpo_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(v, "fixture lacks \"%s\"", key);
    return v;
}

static void grpo_floats(float *out, const cJSON *arr, size_t n, const char *what) {
    cr_assert(cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == n, "%s should hold %zu numbers", what, n);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) out[i++] = (float)e->valuedouble;
}

typedef struct grpo_inputs {
    int S, T;
    float *logp, *old, *ref, *adv;
    uint8_t *mask;
    int *seq_start;
    int max_len;
    double num_items;
} grpo_inputs;

static void grpo_inputs_load(grpo_inputs *in, const cJSON *root) {
    in->S = grpo_field(root, "S")->valueint;
    in->T = grpo_field(root, "T")->valueint;
    in->max_len = grpo_field(root, "max_completion_length")->valueint;
    in->num_items = grpo_field(root, "num_items")->valuedouble;
    size_t N = (size_t)in->S * (size_t)in->T;
    in->logp = malloc(N * sizeof(float));
    in->old = malloc(N * sizeof(float));
    in->ref = malloc(N * sizeof(float));
    in->adv = malloc((size_t)in->S * sizeof(float));
    in->mask = malloc(N);
    in->seq_start = malloc(((size_t)in->S + 1) * sizeof(int));
    float *m = malloc(N * sizeof(float));
    grpo_floats(in->logp, grpo_field(root, "logp"), N, "logp");
    grpo_floats(in->old, grpo_field(root, "old_logp"), N, "old_logp");
    grpo_floats(in->ref, grpo_field(root, "ref_logp"), N, "ref_logp");
    grpo_floats(in->adv, grpo_field(root, "advantages"), (size_t)in->S, "advantages");
    grpo_floats(m, grpo_field(root, "mask"), N, "mask");
    for (size_t i = 0; i < N; i++) in->mask[i] = m[i] != 0.0f;
    free(m);
    /* the padded (S, T) grid as S segments of T tokens: padding is masked */
    for (int i = 0; i <= in->S; i++) in->seq_start[i] = i * in->T;
}

static void grpo_inputs_free(grpo_inputs *in) {
    free(in->logp), free(in->old), free(in->ref), free(in->adv), free(in->mask), free(in->seq_start);
}

Test(grpo_loss, matches_torch_every_variant) {
    cJSON *root = grpo_load_fixture();
    grpo_inputs in;
    grpo_inputs_load(&in, root);
    size_t N = (size_t)in.S * (size_t)in.T;
    float *dlogp = malloc(N * sizeof(float)), *want = malloc(N * sizeof(float));
    const cJSON *c;
    int ncases = 0;
    cJSON_ArrayForEach(c, grpo_field(root, "cases")) {
        grpo_loss_config cfg = {0};
        pt_error err = {0};
        cr_assert_eq(grpo_loss_type_parse(&cfg.loss_type, grpo_field(c, "loss_type")->valuestring, &err), PT_OK);
        cr_assert_eq(grpo_is_level_parse(&cfg.is_level, grpo_field(c, "level")->valuestring, &err), PT_OK);
        cfg.beta = grpo_field(c, "beta")->valuedouble;
        cfg.epsilon_low = grpo_field(c, "epsilon_low")->valuedouble;
        cfg.epsilon_high = grpo_field(c, "epsilon_high")->valuedouble;
        cfg.max_completion_length = in.max_len;
        cfg.num_items = in.num_items;
        char name[96];
        snprintf(name, sizeof name, "%s/%s/beta=%g", grpo_loss_type_name(cfg.loss_type),
                 grpo_is_level_name(cfg.is_level), cfg.beta);
        double loss;
        grpo_loss_stats st;
        pt_status s = grpo_loss(&loss, dlogp, &st, in.logp, in.old, in.ref, in.adv, in.mask, in.seq_start, in.S,
                                &cfg, &err);
        cr_assert_eq(s, PT_OK, "%s: %s", name, err.msg);
        double want_loss = grpo_field(c, "loss")->valuedouble;
        cr_assert(fabs(loss - want_loss) <= 1e-9 * fabs(want_loss) + 1e-12, "%s: loss %.12g, torch %.12g", name,
                  loss, want_loss);
        grpo_floats(want, grpo_field(c, "dlogp"), N, "dlogp");
        cr_assert_eq(first_nonfinite(dlogp, N), -1, "%s: non-finite dlogp", name);
        double worst;
        long bad = compare_close(dlogp, want, N, 1e-9, 1e-6, &worst);
        cr_assert_eq(bad, -1, "%s: dlogp[%ld] = %.9g, torch %.9g (worst ratio %.3g)", name, bad,
                     bad >= 0 ? dlogp[bad] : 0.0, bad >= 0 ? want[bad] : 0.0, worst);
        double kl = st.kl_sum / st.tokens;
        cr_assert(fabs(kl - grpo_field(c, "kl")->valuedouble) < 1e-9, "%s: kl %.12g", name, kl);
        cr_assert(fabs(st.clip_low_sum / st.clip_count - grpo_field(c, "clip_low")->valuedouble) < 1e-9,
                  "%s: clip_ratio/low_mean", name);
        cr_assert(fabs(st.clip_high_sum / st.clip_count - grpo_field(c, "clip_high")->valuedouble) < 1e-9,
                  "%s: clip_ratio/high_mean", name);
        cr_assert(fabs(st.clip_region_sum / st.clip_count - grpo_field(c, "clip_region")->valuedouble) < 1e-9,
                  "%s: clip_ratio/region_mean", name);
        ncases++;
    }
    cr_assert_eq(ncases, 16, "expected 4 loss types x 2 levels x 2 betas, got %d cases", ncases);
    free(dlogp), free(want);
    grpo_inputs_free(&in);
    cJSON_Delete(root);
}

/* The same values through the packed layout (each completion only its own length, no padding)
 * the trainer uses: the padded and packed calls must agree exactly for grpo (per-sequence means). */
Test(grpo_loss, packed_equals_padded) {
    cJSON *root = grpo_load_fixture();
    grpo_inputs in;
    grpo_inputs_load(&in, root);
    size_t N = (size_t)in.S * (size_t)in.T;
    float *lp = malloc(N * sizeof(float)), *old = malloc(N * sizeof(float)), *ref = malloc(N * sizeof(float));
    uint8_t *mask = malloc(N);
    int *start = malloc(((size_t)in.S + 1) * sizeof(int));
    size_t *from = malloc(N * sizeof(size_t));
    size_t k = 0;
    start[0] = 0;
    for (int i = 0; i < in.S; i++) {
        int last = -1; /* keep tokens up to the last masked one (holes stay, padding goes) */
        for (int t = 0; t < in.T; t++)
            if (in.mask[(size_t)i * in.T + t]) last = t;
        for (int t = 0; t <= last; t++) {
            size_t j = (size_t)i * in.T + t;
            lp[k] = in.logp[j], old[k] = in.old[j], ref[k] = in.ref[j], mask[k] = in.mask[j], from[k] = j;
            k++;
        }
        start[i + 1] = (int)k;
    }
    grpo_loss_config cfg = {.loss_type = GRPO_LOSS_GRPO, .is_level = GRPO_IS_SEQUENCE, .epsilon_low = 0.05,
                            .epsilon_high = 0.08, .beta = 0.04, .max_completion_length = in.max_len};
    float *d_pad = malloc(N * sizeof(float)), *d_pack = malloc(N * sizeof(float));
    double l_pad, l_pack;
    pt_error err = {0};
    cr_assert_eq(grpo_loss(&l_pad, d_pad, NULL, in.logp, in.old, in.ref, in.adv, in.mask, in.seq_start, in.S, &cfg,
                           &err), PT_OK);
    cr_assert_eq(grpo_loss(&l_pack, d_pack, NULL, lp, old, ref, in.adv, mask, start, in.S, &cfg, &err), PT_OK);
    cr_assert(fabs(l_pad - l_pack) < 1e-12, "padded %.15g packed %.15g", l_pad, l_pack);
    for (size_t i = 0; i < k; i++) cr_assert_eq(d_pack[i], d_pad[from[i]], "token %zu", i);
    free(lp), free(old), free(ref), free(mask), free(start), free(from), free(d_pad), free(d_pack);
    grpo_inputs_free(&in);
    cJSON_Delete(root);
}

Test(grpo_loss, rejects_bad_input) {
    float lp[3] = {-1, -2, -3}, old[3] = {-1, -2, -3}, adv[1] = {1};
    int start[2] = {0, 3}, bad_start[2] = {1, 3};
    grpo_loss_config cfg = {.loss_type = GRPO_LOSS_GRPO, .epsilon_low = 0.2, .epsilon_high = 0.2, .beta = 0.1};
    double loss;
    pt_error err = {0};
    /* beta without a reference */
    cr_assert_eq(grpo_loss(&loss, NULL, NULL, lp, old, NULL, adv, NULL, start, 1, &cfg, &err), PT_ERR_INVALID);
    cr_assert(strstr(err.msg, "reference"), "%s", err.msg);
    cfg.beta = 0;
    cr_assert_eq(grpo_loss(&loss, NULL, NULL, lp, old, NULL, adv, NULL, bad_start, 1, &cfg, &err), PT_ERR_INVALID);
    cfg.loss_type = GRPO_LOSS_DR_GRPO;
    cr_assert_eq(grpo_loss(&loss, NULL, NULL, lp, old, NULL, adv, NULL, start, 1, &cfg, &err), PT_ERR_INVALID);
    cfg.loss_type = GRPO_LOSS_GRPO;
    lp[1] = NAN;
    cr_assert_eq(grpo_loss(&loss, NULL, NULL, lp, old, NULL, adv, NULL, start, 1, &cfg, &err), PT_ERR_NUMERIC);
    grpo_loss_type t;
    cr_assert_eq(grpo_loss_type_parse(&t, "ppo", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "dr_grpo"), "%s", err.msg);
}
