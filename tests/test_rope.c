/* test_rope.c — RoPE/YaRN against transformers (tests/fixtures/rope_yarn.json, written by
 * tests/ref/make_yarn_fixture.py), finite differences and the adjoint identity for the backward,
 * the strided/in-place layout, and rejected parameters.
 *
 * Tolerances: inv_freq and attention_factor relative 1e-6 (we follow torch's fp32 operation
 * order, so only a last-ulp difference in pow/div may remain, ~1e-7; a wrong ramp, factor or
 * correction range moves them by 1e-3 or more). Rotated values atol 1e-5: the kernel gets the
 * fixture's own inv_freq, so the fp32 angle is identical and only cos/sin rounding (~1 ulp of
 * values of order 1, plus the ×af product) separates us from torch.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rope.h"
#include "tests/util/check.h"

static cJSON *rope_load_fixture(void) {
    char path[1024];
    fixture_path(path, sizeof path, "rope_yarn.json");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (regenerate with python3 tests/ref/make_yarn_fixture.py)", path);
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

static cJSON *rope_field(const cJSON *obj, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(v, "fixture lacks \"%s\"", key);
    return v;
}

/* A JSON number array as a fresh float array of exactly n values. */
static float *rope_floats(const cJSON *obj, const char *key, size_t n) {
    cJSON *arr = rope_field(obj, key);
    cr_assert(cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == n, "\"%s\" should hold %zu numbers", key,
              n);
    float *out = malloc(n * sizeof *out);
    cr_assert(out);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) out[i++] = (float)e->valuedouble;
    return out;
}

/* The fixture's yarn block as a rope_yarn: absent keys and null factor map to 0, truncate to 1. */
static rope_yarn rope_yarn_from_json(const cJSON *y, int max_pos) {
    rope_yarn r = {0};
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "factor")) && cJSON_IsNumber(v)) r.factor = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "attention_factor"))) r.attention_factor = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "beta_fast"))) r.beta_fast = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "beta_slow"))) r.beta_slow = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "mscale"))) r.mscale = v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(y, "mscale_all_dim"))) r.mscale_all_dim = v->valuedouble;
    r.original_max_position_embeddings = rope_field(y, "original_max_position_embeddings")->valueint;
    r.max_position_embeddings = max_pos;
    v = cJSON_GetObjectItemCaseSensitive(y, "truncate");
    r.truncate = v ? cJSON_IsTrue(v) : 1;
    return r;
}

static double rel_err(double a, double b) { return fabs(a - b) / fabs(b); }

Test(rope, inv_freq_attention_factor_softmax_scale_match_transformers) {
    cJSON *root = rope_load_fixture();
    const cJSON *cfg;
    int n_cfg = 0;
    cJSON_ArrayForEach(cfg, rope_field(root, "configs")) {
        const char *name = rope_field(cfg, "name")->valuestring;
        int dim = rope_field(cfg, "rope_dim")->valueint;
        int qk_head_dim = rope_field(cfg, "qk_head_dim")->valueint;
        float theta = (float)rope_field(cfg, "theta")->valuedouble;
        const cJSON *yj = rope_field(cfg, "yarn");
        rope_yarn yarn;
        const rope_yarn *yp = NULL;
        if (!cJSON_IsNull(yj)) {
            yarn = rope_yarn_from_json(yj, rope_field(cfg, "max_position_embeddings")->valueint);
            yp = &yarn;
        }
        float *want = rope_floats(cfg, "inv_freq", (size_t)dim / 2);
        float *got = malloc((size_t)dim / 2 * sizeof *got);
        float af = -1.0f;
        char msg[256] = "";
        cr_assert_eq(rope_inv_freq(got, &af, dim, theta, yp, msg, sizeof msg), 0, "%s: rejected: %s", name, msg);
        cr_assert_eq(first_nonfinite(got, (size_t)dim / 2), -1, "%s: non-finite inv_freq", name);
        double worst;
        long bad = compare_close(got, want, (size_t)dim / 2, 0.0, 1e-6, &worst);
        cr_assert_eq(bad, -1, "%s: inv_freq[%ld] = %.9g, transformers %.9g (worst ratio %.3g)", name, bad,
                     bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0, worst);
        double want_af = rope_field(cfg, "attention_factor")->valuedouble;
        cr_assert(rel_err(af, want_af) <= 1e-6, "%s: attention_factor %.9g, transformers %.9g", name, af, want_af);
        double want_scale = rope_field(cfg, "softmax_scale")->valuedouble;
        float scale = rope_softmax_scale(qk_head_dim, yp);
        cr_assert(rel_err(scale, want_scale) <= 1e-6, "%s: softmax scale %.9g, transformers %.9g", name, scale,
                  want_scale);
        free(want);
        free(got);
        n_cfg++;
    }
    cr_assert_geq(n_cfg, 6, "fixture should hold the configurations listed in make_yarn_fixture.py");
    cJSON_Delete(root);
}

/* Our interleaved result, read in transformers' de-interleaved order: HF[j] = ours[2j],
 * HF[D/2 + j] = ours[2j + 1]. */
static float rope_as_hf(const float *v, int j, int D) { return j < D / 2 ? v[2 * j] : v[2 * (j - D / 2) + 1]; }

Test(rope, rotation_matches_transformers_interleave_path) {
    cJSON *root = rope_load_fixture();
    const cJSON *rot;
    int n_rot = 0;
    cJSON_ArrayForEach(rot, rope_field(root, "rotations")) {
        const char *name = rope_field(rot, "name")->valuestring;
        const cJSON *cfg = cJSON_GetArrayItem(rope_field(root, "configs"), rope_field(rot, "config")->valueint);
        int D = rope_field(cfg, "rope_dim")->valueint;
        int H = rope_field(rot, "heads")->valueint;
        const cJSON *pj = rope_field(rot, "positions");
        int T = cJSON_GetArraySize(pj);
        int *pos = malloc((size_t)T * sizeof *pos);
        for (int t = 0; t < T; t++) pos[t] = cJSON_GetArrayItem(pj, t)->valueint;
        float *inv_freq = rope_floats(rot, "inv_freq", (size_t)D / 2);
        float af = (float)rope_field(rot, "attention_factor")->valuedouble;
        size_t nq = (size_t)H * T * D, nk = (size_t)T * D;
        float *q_in = rope_floats(rot, "q_in", nq), *q_want = rope_floats(rot, "q_out", nq);
        float *k_in = rope_floats(rot, "k_in", nk), *k_want = rope_floats(rot, "k_out", nk);

        /* q as the model holds it, (T, H, nope + D) with the rope slice last in each head, roped in
         * place; k_pe inside a (T, kv_lora + D) row. Padding is a sentinel that must survive. */
        const int nope = 3, kv_lora = 5, qs = nope + D, ks = kv_lora + D;
        const float sentinel = 12345.0f;
        float *q = malloc((size_t)T * H * qs * sizeof *q), *k = malloc((size_t)T * ks * sizeof *k);
        for (size_t i = 0; i < (size_t)T * H * qs; i++) q[i] = sentinel;
        for (size_t i = 0; i < (size_t)T * ks; i++) k[i] = sentinel;
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) {
                for (int h = 0; h < H; h++) q[((size_t)t * H + h) * qs + nope + d] = q_in[((size_t)h * T + t) * D + d];
                k[(size_t)t * ks + kv_lora + d] = k_in[(size_t)t * D + d];
            }
        rope_forward(q + nope, q + nope, pos, inv_freq, af, T, H, qs, D);
        rope_forward(k + kv_lora, k + kv_lora, pos, inv_freq, af, T, 1, ks, D);

        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                const float *row = q + ((size_t)t * H + h) * qs;
                for (int j = 0; j < nope; j++) cr_assert_eq(row[j], sentinel, "%s: q nope part touched", name);
                for (int j = 0; j < D; j++) {
                    float got = rope_as_hf(row + nope, j, D), want = q_want[((size_t)h * T + t) * D + j];
                    cr_assert(isfinite(got), "%s: non-finite q", name);
                    cr_assert(fabsf(got - want) <= 1e-5f, "%s: q[t=%d,h=%d,%d] = %.8g, transformers %.8g (pos %d)",
                              name, t, h, j, got, want, pos[t]);
                }
            }
            const float *row = k + (size_t)t * ks;
            for (int j = 0; j < kv_lora; j++) cr_assert_eq(row[j], sentinel, "%s: kv latent part touched", name);
            for (int j = 0; j < D; j++) {
                float got = rope_as_hf(row + kv_lora, j, D), want = k_want[(size_t)t * D + j];
                cr_assert(isfinite(got), "%s: non-finite k", name);
                cr_assert(fabsf(got - want) <= 1e-5f, "%s: k[t=%d,%d] = %.8g, transformers %.8g", name, t, j, got,
                          want);
            }
        }
        /* Scores need no permutation at all: q·k over our interleaved layout equals transformers'
         * q·k over its de-interleaved one. |q·k| ≲ 3·sqrt(D); fp32 sums of D terms: atol 1e-4. */
        for (int h = 0; h < H; h++)
            for (int tq = 0; tq < T; tq++)
                for (int tk = 0; tk < T; tk++) {
                    double ours = 0, theirs = 0;
                    for (int d = 0; d < D; d++) {
                        ours += (double)q[((size_t)tq * H + h) * qs + nope + d] * k[(size_t)tk * ks + kv_lora + d];
                        theirs += (double)q_want[((size_t)h * T + tq) * D + d] * k_want[(size_t)tk * D + d];
                    }
                    cr_assert(fabs(ours - theirs) <= 1e-4 + 1e-5 * fabs(theirs),
                              "%s: q·k (h=%d, %d, %d) = %.8g, transformers %.8g", name, h, tq, tk, ours, theirs);
                }
        free(pos);
        free(inv_freq);
        free(q_in);
        free(q_want);
        free(k_in);
        free(k_want);
        free(q);
        free(k);
        n_rot++;
    }
    cr_assert_geq(n_rot, 3);
    cJSON_Delete(root);
}

/* Our own inv_freq fed through the kernel: the whole YaRN path end to end, at small positions
 * where an inv_freq ulp cannot move the fp32 angle by more than ~1e-6. */
Test(rope, own_inv_freq_end_to_end_small_positions) {
    cJSON *root = rope_load_fixture();
    const cJSON *rot;
    cJSON_ArrayForEach(rot, rope_field(root, "rotations")) {
        const cJSON *cfg = cJSON_GetArrayItem(rope_field(root, "configs"), rope_field(rot, "config")->valueint);
        int D = rope_field(cfg, "rope_dim")->valueint, H = rope_field(rot, "heads")->valueint;
        const cJSON *pj = rope_field(rot, "positions"), *yj = rope_field(cfg, "yarn");
        int T = cJSON_GetArraySize(pj);
        rope_yarn yarn;
        if (!cJSON_IsNull(yj)) yarn = rope_yarn_from_json(yj, rope_field(cfg, "max_position_embeddings")->valueint);
        float inv_freq[64], af;
        cr_assert_leq(D / 2, 64);
        cr_assert_eq(rope_inv_freq(inv_freq, &af, D, (float)rope_field(cfg, "theta")->valuedouble,
                                   cJSON_IsNull(yj) ? NULL : &yarn, NULL, 0),
                     0);
        size_t nq = (size_t)H * T * D;
        float *q_in = rope_floats(rot, "q_in", nq), *q_want = rope_floats(rot, "q_out", nq);
        float out[64 * 2];
        for (int t = 0; t < T; t++) {
            int p = cJSON_GetArrayItem(pj, t)->valueint;
            if (p > 64) continue;
            for (int h = 0; h < H; h++) {
                const float *x = q_in + ((size_t)h * T + t) * D;
                rope_forward(out, x, &p, inv_freq, af, 1, 1, D, D);
                for (int j = 0; j < D; j++)
                    cr_assert(fabsf(rope_as_hf(out, j, D) - q_want[((size_t)h * T + t) * D + j]) <= 1e-5f,
                              "pos %d head %d element %d", p, h, j);
            }
        }
        free(q_in);
        free(q_want);
    }
    cJSON_Delete(root);
}

/* FD harness context: L = Σ w·rope_forward(x) over the strided layout. */
typedef struct rope_fd_ctx {
    float *x, *out, *w;
    const int *pos;
    const float *inv_freq;
    float af;
    int N, H, stride, D;
    int offset; /* where the rope slice starts inside each head vector */
    size_t n;
} rope_fd_ctx;

static double rope_fd_loss(void *p) {
    rope_fd_ctx *c = p;
    memset(c->out, 0, c->n * sizeof *c->out);
    rope_forward(c->out + c->offset, c->x + c->offset, c->pos, c->inv_freq, c->af, c->N, c->H, c->stride, c->D);
    return dot_double(c->w, c->out, c->n);
}

Test(rope, backward_finite_differences_and_adjoint) {
    enum { N = 5, H = 3, NOPE = 2, D = 16, STRIDE = NOPE + D };
    const size_t n = (size_t)N * H * STRIDE;
    test_rng rng;
    test_rng_seed(&rng, 7);
    float x[N * H * STRIDE], out[N * H * STRIDE], w[N * H * STRIDE], dx[N * H * STRIDE];
    fill_normal(x, n, 1.0f, &rng);
    fill_normal(w, n, 1.0f, &rng);
    /* The loss only sees the rope slices: zero the weights of the padding, so its gradient is 0. */
    for (size_t r = 0; r < (size_t)N * H; r++)
        for (int j = 0; j < NOPE; j++) w[r * STRIDE + j] = 0.0f;
    int pos[N] = {0, 1, 13, 700, 40000};
    float inv_freq[D / 2], af;
    rope_yarn yarn = rope_yarn_default();
    yarn.factor = 8.0;
    yarn.mscale = 0.707;
    yarn.mscale_all_dim = 1.0;
    yarn.original_max_position_embeddings = 512;
    cr_assert_eq(rope_inv_freq(inv_freq, &af, D, 10000.0f, &yarn, NULL, 0), 0);
    cr_assert(fabsf(af - 1.0f) > 0.01f, "want attention_factor != 1 so its use in the backward is tested");

    /* dx = rope_backward(w) on the rope slices; the padding of dx must stay as it is (0). */
    memset(dx, 0, sizeof dx);
    float g[N * H * STRIDE];
    memcpy(g, w, sizeof g);
    rope_backward(dx + NOPE, g + NOPE, pos, inv_freq, af, N, H, STRIDE, D);
    cr_assert_eq(first_nonfinite(dx, n), -1, "non-finite gradient");
    for (size_t r = 0; r < (size_t)N * H; r++)
        for (int j = 0; j < NOPE; j++) cr_assert_eq(dx[r * STRIDE + j], 0.0f, "backward wrote the padding");

    /* L is linear in x, so central differences have no truncation error; what is left is the fp32
     * rounding of the forward (|y| ~ 1, ~1e-7 each, ~1e-6 summed over 240 terms) divided by
     * 2h = 2e-2: ~1e-4. atol 5e-4 + rtol 1e-3 passes that; a dropped term, a sign flip or a
     * missing attention_factor changes the gradient by O(0.1–1) and fails. */
    rope_fd_ctx ctx = {x, out, w, pos, inv_freq, af, N, H, STRIDE, D, NOPE, n};
    fd_result res;
    int ok = fd_check(x, dx, n, rope_fd_loss, &ctx, 1e-2, 5e-4, 1e-3, 0, &res);
    cr_assert(ok && !res.nonfinite, "rope_backward vs finite differences: element %ld numeric %.6g analytic %.6g",
              res.worst_index, res.numeric, res.analytic);

    /* Adjoint identity <rope(x), w> = <x, rope_backward(w)>, in double: tight, and it covers every
     * element at once (fp32 products, |terms| ~ 1, 240 terms: 1e-4 is ~100x the rounding). */
    memset(out, 0, sizeof out);
    rope_forward(out + NOPE, x + NOPE, pos, inv_freq, af, N, H, STRIDE, D);
    double lhs = dot_double(w, out, n), rhs = dot_double(x, dx, n);
    cr_assert(fabs(lhs - rhs) <= 1e-4 * (1.0 + fabs(lhs)), "adjoint: <Rx,w> = %.9g, <x,R'w> = %.9g", lhs, rhs);

    /* In place gives the same as out of place, both directions. */
    rope_backward(g + NOPE, g + NOPE, pos, inv_freq, af, N, H, STRIDE, D);
    for (size_t i = 0; i < n; i++)
        if (i % STRIDE >= NOPE) cr_assert_eq(g[i], dx[i], "in-place backward differs at %zu", i);
    float y[N * H * STRIDE];
    memcpy(y, x, sizeof y);
    rope_forward(y + NOPE, y + NOPE, pos, inv_freq, af, N, H, STRIDE, D);
    for (size_t i = 0; i < n; i++)
        if (i % STRIDE >= NOPE) cr_assert_eq(y[i], out[i], "in-place forward differs at %zu", i);
}

Test(rope, backward_inverts_forward_without_attention_factor) {
    /* With af = 1 the rotation is orthogonal: backward(forward(x)) = x up to fp32 rounding. */
    enum { N = 4, D = 8 };
    test_rng rng;
    test_rng_seed(&rng, 11);
    float x[N * D], y[N * D], z[N * D], inv_freq[D / 2], af;
    fill_uniform(x, N * D, -2.0f, 2.0f, &rng);
    int pos[N] = {3, 99, 1023, 65535};
    cr_assert_eq(rope_inv_freq(inv_freq, &af, D, 10000.0f, NULL, NULL, 0), 0);
    cr_assert_eq(af, 1.0f);
    rope_forward(y, x, pos, inv_freq, af, N, 1, D, D);
    rope_backward(z, y, pos, inv_freq, af, N, 1, D, D);
    double worst;
    cr_assert_eq(compare_close(z, x, N * D, 1e-6, 1e-6, &worst), -1, "round trip worst ratio %.3g", worst);
    /* and it really rotated: position 99 moves the vector */
    cr_assert(fabsf(y[D] - x[D]) > 1e-3f || fabsf(y[D + 1] - x[D + 1]) > 1e-3f);
}

Test(rope, rejects_parameters_that_cannot_give_frequencies) {
    float inv_freq[8] = {0}, af = 0;
    char msg[256];
    rope_yarn y = rope_yarn_default();
    y.factor = 4.0;
    y.original_max_position_embeddings = 4096;
    msg[0] = '\0';
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 15, 10000.0f, &y, msg, sizeof msg), -1);
    cr_assert(strstr(msg, "even"), "message: %s", msg);
    msg[0] = '\0';
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, 1.0f, NULL, msg, sizeof msg), -1);
    cr_assert(strstr(msg, "rope_theta"), "message: %s", msg);
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, NAN, NULL, msg, sizeof msg), -1);
    y.original_max_position_embeddings = 0;
    msg[0] = '\0';
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, 10000.0f, &y, msg, sizeof msg), -1);
    cr_assert(strstr(msg, "original_max_position_embeddings"), "message: %s", msg);
    y.original_max_position_embeddings = 4096;
    y.factor = 0.0; /* absent, and no max_position_embeddings to derive it from */
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, 10000.0f, &y, msg, sizeof msg), -1);
    y.factor = -2.0;
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, 10000.0f, &y, msg, sizeof msg), -1);
    y.factor = INFINITY;
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 16, 10000.0f, &y, msg, sizeof msg), -1);
    cr_assert_eq(af, 0.0f, "nothing is written on failure");
    for (int i = 0; i < 8; i++) cr_assert_eq(inv_freq[i], 0.0f, "nothing is written on failure");
    /* NULL msg is allowed */
    cr_assert_eq(rope_inv_freq(inv_freq, &af, 0, 10000.0f, NULL, NULL, 0), -1);
}
