/* test_adamw.c — AdamW and gradient clipping against torch (tests/fixtures/adamw.json, written
 * by tests/ref/make_adamw_fixture.py), plus non-finite gradients and the clip threshold.
 *
 * Tolerances: params atol 1e-6 + rtol 1e-5 (the brief's; we follow torch's fp32 operation order,
 * so the observed difference is a few ulps). Moments m and v: rtol 1e-5 with atol 1e-9 / 1e-12
 * (v reaches 1e-11 for the smallest gradients, where atol 1e-6 would accept anything).
 * A dropped bias correction moves the first step by ~2·lr (≥ 4e-4 here) and fails by far.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/adamw.h"
#include "tests/util/check.h"

static cJSON *adamw_load_fixture(void) {
    char path[1024];
    fixture_path(path, sizeof path, "adamw.json");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (regenerate with python3 tests/ref/make_adamw_fixture.py)", path);
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

static cJSON *adamw_field(const cJSON *obj, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(v, "fixture lacks \"%s\"", key);
    return v;
}

/* Copies exactly n numbers of a JSON array into out. */
static void adamw_floats(float *out, const cJSON *arr, size_t n, const char *what) {
    cr_assert(cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == n, "%s should hold %zu numbers", what, n);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) out[i++] = (float)e->valuedouble;
}

static void adamw_expect_close(const float *got, const float *want, size_t n, double atol, double rtol,
                               const char *what, const char *name, int step) {
    cr_assert_eq(first_nonfinite(got, n), -1, "%s %s step %d: non-finite", name, what, step);
    double worst;
    long bad = compare_close(got, want, n, atol, rtol, &worst);
    cr_assert_eq(bad, -1, "%s step %d: %s[%ld] = %.9g, torch %.9g (worst ratio %.3g)", name, step, what, bad,
                 bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0, worst);
}

Test(adamw, matches_torch_adamw_steps) {
    cJSON *root = adamw_load_fixture();
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, adamw_field(root, "adamw")) {
        const char *name = adamw_field(c, "name")->valuestring;
        size_t n = (size_t)adamw_field(c, "n")->valueint;
        int steps = adamw_field(c, "steps")->valueint;
        double lr = adamw_field(c, "lr")->valuedouble, b1 = adamw_field(c, "beta1")->valuedouble,
               b2 = adamw_field(c, "beta2")->valuedouble, eps = adamw_field(c, "eps")->valuedouble,
               wd = adamw_field(c, "weight_decay")->valuedouble;
        float *p = malloc(n * sizeof *p), *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
        float *g = malloc(n * sizeof *g), *want = malloc(n * sizeof *want);
        adamw_floats(p, adamw_field(c, "param0"), n, "param0");
        for (int s = 0; s < steps; s++) {
            adamw_floats(g, cJSON_GetArrayItem(adamw_field(c, "grads"), s), n, "grads");
            adamw_update(p, m, v, g, n, lr, b1, b2, eps, wd, s + 1);
            adamw_floats(want, cJSON_GetArrayItem(adamw_field(c, "params"), s), n, "params");
            adamw_expect_close(p, want, n, 1e-6, 1e-5, "param", name, s + 1);
            adamw_floats(want, cJSON_GetArrayItem(adamw_field(c, "exp_avg"), s), n, "exp_avg");
            adamw_expect_close(m, want, n, 1e-9, 1e-5, "exp_avg", name, s + 1);
            adamw_floats(want, cJSON_GetArrayItem(adamw_field(c, "exp_avg_sq"), s), n, "exp_avg_sq");
            adamw_expect_close(v, want, n, 1e-12, 1e-5, "exp_avg_sq", name, s + 1);
        }
        free(p);
        free(m);
        free(v);
        free(g);
        free(want);
        cases++;
    }
    cr_assert_geq(cases, 4);
    cJSON_Delete(root);
}

Test(adamw, clip_matches_torch_clip_grad_norm) {
    cJSON *root = adamw_load_fixture();
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, adamw_field(root, "clip")) {
        const char *name = adamw_field(c, "name")->valuestring;
        const cJSON *sz = adamw_field(c, "sizes");
        int nb = cJSON_GetArraySize(sz);
        cr_assert_leq(nb, 8);
        float *grads[8], *want[8];
        size_t sizes[8];
        for (int b = 0; b < nb; b++) {
            sizes[b] = (size_t)cJSON_GetArrayItem(sz, b)->valueint;
            grads[b] = malloc(sizes[b] * sizeof *grads[b]);
            want[b] = malloc(sizes[b] * sizeof *want[b]);
            adamw_floats(grads[b], cJSON_GetArrayItem(adamw_field(c, "grads"), b), sizes[b], "grads");
            adamw_floats(want[b], cJSON_GetArrayItem(adamw_field(c, "clipped"), b), sizes[b], "clipped");
        }
        double want_norm = adamw_field(c, "norm")->valuedouble;
        double pre = grad_global_norm((const float *const *)grads, sizes, nb);
        double norm = grad_clip_scale(grads, sizes, nb, adamw_field(c, "max_norm")->valuedouble);
        /* torch sums fp32 per-tensor norms: relative 1e-6 covers that summation order */
        cr_assert(fabs(norm - want_norm) <= 1e-6 * want_norm, "%s: norm %.9g, torch %.9g", name, norm, want_norm);
        cr_assert_eq(norm, pre, "%s: clip returns the pre-clip norm", name);
        /* coef differs from torch's fp32 coef by ~1e-7 relative: rtol 1e-6 */
        for (int b = 0; b < nb; b++) adamw_expect_close(grads[b], want[b], sizes[b], 1e-9, 1e-6, "grad", name, 0);
        for (int b = 0; b < nb; b++) {
            free(grads[b]);
            free(want[b]);
        }
        cases++;
    }
    cr_assert_geq(cases, 3);
    cJSON_Delete(root);
}

Test(adamw, clip_threshold_and_non_finite_gradients) {
    /* 3-4-5: the norm is 5 exactly; max_norm 5 gives coef 5/(5 + 1e-6) < 1, so it still scales
     * (as torch); max_norm 6 leaves the gradients bit-for-bit alone. */
    float a[1] = {3.0f}, b[1] = {4.0f};
    float *g[2] = {a, b};
    size_t sizes[2] = {1, 1};
    cr_assert_eq(grad_global_norm((const float *const *)g, sizes, 2), 5.0);
    cr_assert_eq(grad_clip_scale(g, sizes, 2, 6.0), 5.0);
    cr_assert(a[0] == 3.0f && b[0] == 4.0f, "coef ≥ 1 must not touch the gradients");
    cr_assert_eq(grad_clip_scale(g, sizes, 2, 5.0), 5.0);
    cr_assert(a[0] < 3.0f && a[0] > 2.999998f, "coef just below 1 scales: %.9g", a[0]);
    double pre = grad_global_norm((const float *const *)g, sizes, 2);
    cr_assert_eq(grad_clip_scale(g, sizes, 2, 1.0), pre, "returns the pre-clip norm");
    cr_assert(fabsf(a[0] - 0.6f) < 1e-6f && fabsf(b[0] - 0.8f) < 1e-6f, "clipped to norm 1: %g %g", a[0], b[0]);

    /* non-finite: the NaN/Inf comes back and nothing is scaled */
    float c[3] = {1.0f, INFINITY, 2.0f}, d[2] = {3.0f, 4.0f};
    float *h[2] = {c, d};
    size_t hs[2] = {3, 2};
    cr_assert(isinf(grad_clip_scale(h, hs, 2, 1.0)));
    cr_assert(c[0] == 1.0f && c[2] == 2.0f && d[0] == 3.0f && d[1] == 4.0f);
    c[1] = NAN;
    cr_assert(isnan(grad_clip_scale(h, hs, 2, 1.0)));
    cr_assert(c[0] == 1.0f && d[1] == 4.0f);
    /* empty buffers and zero buffers */
    cr_assert_eq(grad_global_norm(NULL, NULL, 0), 0.0);
}

Test(adamw, zero_grad_with_decay_only_decays) {
    /* g = 0 from the start: m = v = 0, the Adam term is 0/(0 + eps) = 0, so p ← p·(1 − lr·wd)
     * exactly as torch; with wd = 0 the parameters must not move at all. */
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f}, m[4] = {0}, v[4] = {0}, g[4] = {0};
    float p0[4];
    memcpy(p0, p, sizeof p);
    adamw_update(p, m, v, g, 4, 0.1, 0.9, 0.999, 1e-8, 0.0, 1);
    cr_assert_eq(memcmp(p, p0, sizeof p), 0);
    adamw_update(p, m, v, g, 4, 0.1, 0.9, 0.999, 1e-8, 0.5, 2);
    for (int i = 0; i < 4; i++) cr_assert_eq(p[i], p0[i] * (float)(1.0 - 0.1 * 0.5));
    cr_assert_eq(first_nonfinite(m, 4), -1);
    cr_assert_eq(first_nonfinite(v, 4), -1);
}
