/* test_sampler.c — rollout/sampler against transformers' own logits processors (fixture from
 * tests/ref/make_sampler_fixture.py), against an independent sort-based double-precision
 * implementation written here, and against the distributions it claims to sample from.
 *
 * Tolerances: probabilities 1e-6 absolute — both sides divide the same fp32 scores (penalty and
 * temperature in fp32, as transformers computes them), then the sampler keeps exp(z − z_max) in
 * fp32 (relative error 6e-8) and sums in double, so a correct sampler is within ~1e-7 while a wrong
 * kept set differs by at least one token's probability (≫ 1e-6 for these logits).
 * Log-probabilities and entropies 1e-5 absolute (fp32 result of a double computation), plus 1e-6
 * relative for the far tail at low temperature, where a log-prob of −100 is only fp32-exact to ~1e-5.
 * Frequencies: Pearson's chi-square against the reference distribution with the p = 0.001
 * critical value for its degrees of freedom (table below, checked with mpmath.gammainc); the draws
 * are seeded, so the statistic is deterministic, and a wrong rule is shown to exceed it.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "rollout/sampler.h"
#include "tests/util/check.h"

/* Chi-square critical values at p = 0.001 for 1..10 degrees of freedom. */
static const double CHI2_CRIT_001[11] = {0, 10.828, 13.816, 16.266, 18.467, 20.515,
                                         22.458, 24.322, 26.124, 27.877, 29.588};

/* ----------------------------------------------------------------- independent reference */

typedef struct ranked {
    double z;
    int id;
} ranked;

static int ranked_cmp(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return x->id - y->id;
}

/* The sampling distribution p (V) after penalty, temperature, top-k, top-p, min-p, written from
 * transformers' definitions with a full sort; lp (V, may be NULL) = log_softmax(z) over the full
 * vocabulary and *ent its entropy. z is computed in fp32 exactly as transformers does (penalty,
 * then / T), everything after in double. */
static void ref_distribution(double *p, double *lp, double *ent, const float *logits, const sampler_config *c,
                             const int32_t *hist, size_t nh, int V) {
    double *z = malloc((size_t)V * sizeof *z);
    char *seen = calloc((size_t)V, 1), *alive = malloc((size_t)V);
    ranked *order = malloc((size_t)V * sizeof *order);
    for (size_t j = 0; j < nh; j++)
        if (hist[j] >= 0 && hist[j] < V) seen[hist[j]] = 1;
    for (int i = 0; i < V; i++) {
        float l = logits[i];
        if (seen[i] && c->repetition_penalty != 1.0f) l = l < 0 ? l * c->repetition_penalty : l / c->repetition_penalty;
        if (c->temperature > 0 && c->temperature != 1.0f) l = l / c->temperature;
        z[i] = l;
        alive[i] = l != -INFINITY;
    }
    double zmax = -INFINITY;
    int argmax = 0;
    for (int i = 0; i < V; i++)
        if (z[i] > zmax) zmax = z[i], argmax = i;
    double s = 0;
    for (int i = 0; i < V; i++)
        if (alive[i]) s += exp(z[i] - zmax);
    double h = 0;
    for (int i = 0; i < V; i++) {
        double l = alive[i] ? z[i] - zmax - log(s) : -INFINITY;
        if (lp) lp[i] = l;
        if (alive[i]) h -= exp(l) * l;
    }
    if (ent) *ent = h;
    if (c->temperature == 0) {
        for (int i = 0; i < V; i++) p[i] = i == argmax;
        goto done;
    }
    int n = 0;
    for (int i = 0; i < V; i++)
        if (alive[i]) order[n].z = z[i], order[n].id = i, n++;
    qsort(order, (size_t)n, sizeof *order, ranked_cmp);
    if (c->top_k > 0 && c->top_k < n) {
        double v = order[c->top_k - 1].z;
        for (int i = 0; i < V; i++)
            if (alive[i] && z[i] < v) alive[i] = 0;
    }
    if (c->top_p < 1.0f) {
        double t = 0;
        for (int i = 0; i < V; i++)
            if (alive[i]) t += exp(z[i] - zmax);
        double before = 0;
        int kept = 0;
        for (int j = 0; j < n; j++) {
            int id = order[j].id;
            if (!alive[id]) continue;
            double q = exp(z[id] - zmax) / t;
            if (before >= c->top_p && kept > 0) alive[id] = 0;
            else kept++;
            before += q;
        }
    }
    if (c->min_p > 0) {
        for (int i = 0; i < V; i++)
            if (alive[i] && exp(z[i] - zmax) < c->min_p) alive[i] = 0;
    }
    double t = 0;
    for (int i = 0; i < V; i++)
        if (alive[i]) t += exp(z[i] - zmax);
    for (int i = 0; i < V; i++) p[i] = alive[i] ? exp(z[i] - zmax) / t : 0.0;
done:
    free(z);
    free(seen);
    free(alive);
    free(order);
}

/* Index of the first mismatch between a sampler distribution and the reference (set and value). */
static int first_prob_mismatch(const float *got, const double *want, int V, double atol) {
    for (int i = 0; i < V; i++) {
        if ((got[i] > 0) != (want[i] > 0)) return i;
        if (fabs(got[i] - want[i]) > atol) return i;
    }
    return -1;
}

/* Field by field: the struct has padding that memcmp would read. */
static int rng_same(const rng *a, const rng *b) {
    return a->seed == b->seed && a->stream == b->stream && a->position == b->position && a->used == b->used &&
           memcmp(a->block, b->block, sizeof a->block) == 0;
}

static sampler_history hist_of(const int32_t *ids, size_t n) {
    sampler_history h = {ids, n, NULL, 0};
    return h;
}

static double chi_square(const long *counts, const double *p, int V, long N, int *df) {
    double chi = 0;
    int k = 0;
    for (int i = 0; i < V; i++) {
        if (p[i] <= 0) continue;
        double e = p[i] * (double)N;
        chi += (counts[i] - e) * (counts[i] - e) / e;
        k++;
    }
    *df = k - 1;
    return chi;
}

/* ----------------------------------------------------------------- transformers fixture */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

static double json_num(const cJSON *v) {
    if (cJSON_IsString(v)) {
        cr_assert_str_eq(v->valuestring, "-inf");
        return -INFINITY;
    }
    return v->valuedouble;
}

Test(sampler, matches_transformers_logits_processors) {
    char path[1024];
    char *text = read_text(fixture_path(path, sizeof path, "sampler.json"));
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert(root);
    /* The order generate() builds, recorded by the script: the order sampler.h implements. */
    const char *order[] = {"RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper",
                           "TopPLogitsWarper", "MinPLogitsWarper"};
    const cJSON *ord = cJSON_GetObjectItem(root, "order");
    cr_assert_eq(cJSON_GetArraySize(ord), 5);
    for (int i = 0; i < 5; i++) cr_assert_str_eq(cJSON_GetArrayItem(ord, i)->valuestring, order[i]);

    const cJSON *c;
    int n_cases = 0, n_multi = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        int V = cJSON_GetObjectItem(c, "V")->valueint;
        const cJSON *jh = cJSON_GetObjectItem(c, "history");
        int nh = cJSON_GetArraySize(jh);
        float *logits = malloc((size_t)V * sizeof *logits), *p = malloc((size_t)V * sizeof *p);
        double *want = malloc((size_t)V * sizeof *want), *want_lp = malloc((size_t)V * sizeof *want_lp);
        int32_t *hist = malloc((size_t)(nh + 1) * sizeof *hist);
        for (int i = 0; i < V; i++) {
            logits[i] = (float)json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "logits"), i));
            want[i] = json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "probs"), i));
            want_lp[i] = json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "logprobs"), i));
        }
        for (int j = 0; j < nh; j++) hist[j] = cJSON_GetArrayItem(jh, j)->valueint;
        sampler_config cfg = {(float)cJSON_GetObjectItem(c, "temperature")->valuedouble,
                              cJSON_GetObjectItem(c, "top_k")->valueint,
                              (float)cJSON_GetObjectItem(c, "top_p")->valuedouble,
                              (float)cJSON_GetObjectItem(c, "min_p")->valuedouble,
                              (float)cJSON_GetObjectItem(c, "repetition_penalty")->valuedouble};
        sampler_history h = hist_of(hist, (size_t)nh);
        void *scratch = malloc(sampler_scratch_bytes(V));
        pt_error err = {0};
        cr_assert_eq(sampler_probs(p, logits, &cfg, &h, V, scratch, &err), PT_OK, "%s: %s", name, err.msg);
        int bad = first_prob_mismatch(p, want, V, 1e-6);
        cr_assert_eq(bad, -1, "%s: token %d: sampler p = %.9g, transformers p = %.9g", name, bad,
                     bad >= 0 ? p[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
        int kept = 0;
        for (int i = 0; i < V; i++) kept += want[i] > 0;
        n_multi += kept > 1;
        for (int t = 0; t < V; t++) {
            float lp;
            cr_assert_eq(sampler_logprob(&lp, NULL, logits, &cfg, &h, t, V, scratch, &err), PT_OK, "%s", err.msg);
            if (isinf(want_lp[t])) cr_assert(isinf(lp) && lp < 0, "%s: token %d: logprob %g, want -inf", name, t, lp);
            else cr_assert(fabs(lp - want_lp[t]) <= 1e-5, "%s: token %d: logprob %.8g, want %.8g", name, t, lp,
                           want_lp[t]);
        }
        /* A sampled token is always one transformers could have produced. */
        rng r;
        rng_init(&r, 7, (uint64_t)n_cases);
        for (int k = 0; k < 20; k++) {
            int tok;
            float lp;
            cr_assert_eq(sampler_sample(&tok, &lp, NULL, logits, &cfg, &h, V, scratch, &r, &err), PT_OK);
            cr_assert(want[tok] > 0, "%s: sampled token %d has transformers probability 0", name, tok);
            cr_assert(fabs(lp - want_lp[tok]) <= 1e-5);
        }
        free(scratch);
        free(logits);
        free(p);
        free(want);
        free(want_lp);
        free(hist);
        n_cases++;
    }
    cr_assert_geq(n_cases, 40);
    cr_assert_geq(n_multi, 15, "the fixture should exercise distributions with several kept tokens");
    cJSON_Delete(root);
}

/* ----------------------------------------------------------------- reference comparisons */

static sampler_config random_config(test_rng *tr, int V) {
    static const float temps[] = {0.3f, 0.7f, 1.0f, 1.6f};
    static const float top_ps[] = {1.0f, 1.0f, 0.5f, 0.9f, 0.99f, 0.0f};
    static const float min_ps[] = {0.0f, 0.0f, 0.01f, 0.2f};
    static const float pens[] = {1.0f, 1.0f, 1.2f, 0.7f, 3.0f};
    sampler_config c;
    c.temperature = test_rng_uniform(tr) < 0.1 ? 0.0f : temps[(int)(test_rng_uniform(tr) * 4)];
    int k = (int)(test_rng_uniform(tr) * 5);
    c.top_k = k == 0 ? 0 : k == 1 ? 1 : k == 2 ? 1 + (int)(test_rng_uniform(tr) * V) : k == 3 ? V + 3 : 0;
    c.top_p = top_ps[(int)(test_rng_uniform(tr) * 6)];
    c.min_p = min_ps[(int)(test_rng_uniform(tr) * 4)];
    c.repetition_penalty = pens[(int)(test_rng_uniform(tr) * 5)];
    return c;
}

static void check_against_reference(int V, int trials, uint64_t seed) {
    test_rng tr;
    test_rng_seed(&tr, seed);
    float *logits = malloc((size_t)V * sizeof *logits), *p = malloc((size_t)V * sizeof *p);
    double *want = malloc((size_t)V * sizeof *want), *want_lp = malloc((size_t)V * sizeof *want_lp);
    int32_t *hist = malloc((size_t)(2 * V + 1) * sizeof *hist);
    void *scratch = malloc(sampler_scratch_bytes(V));
    for (int t = 0; t < trials; t++) {
        fill_normal(logits, (size_t)V, test_rng_uniform(&tr) < 0.5 ? 1.0f : 3.0f, &tr);
        if (t % 4 == 3) /* masked vocabulary rows */
            for (int i = 0; i < V; i++)
                if (test_rng_uniform(&tr) < 0.2 && i != V / 2) logits[i] = -INFINITY;
        if (t % 6 == 5) /* exact ties */
            for (int i = 0; i < V; i++)
                if (isfinite(logits[i])) logits[i] = (float)(int)(logits[i] * 2);
        size_t nh = (size_t)(test_rng_uniform(&tr) * 2 * V);
        for (size_t j = 0; j < nh; j++) hist[j] = (int32_t)(test_rng_uniform(&tr) * (V + 4)) - 2;
        sampler_config cfg = random_config(&tr, V);
        sampler_history h = hist_of(hist, nh);
        pt_error err = {0};
        cr_assert_eq(sampler_probs(p, logits, &cfg, &h, V, scratch, &err), PT_OK, "%s", err.msg);
        double ent;
        ref_distribution(want, want_lp, &ent, logits, &cfg, hist, nh, V);
        int bad = first_prob_mismatch(p, want, V, 1e-6);
        cr_assert_eq(bad, -1, "V %d trial %d (T %g k %d p %g min_p %g pen %g): token %d: %.9g vs reference %.9g", V, t,
                     cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p, cfg.repetition_penalty, bad,
                     bad >= 0 ? p[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
        int probe = (int)(test_rng_uniform(&tr) * V);
        float lp, h_got;
        cr_assert_eq(sampler_logprob(&lp, &h_got, logits, &cfg, &h, probe, V, scratch, &err), PT_OK);
        if (isinf(want_lp[probe])) cr_assert(isinf(lp));
        else cr_assert(fabs(lp - want_lp[probe]) <= 1e-5 + 1e-6 * fabs(want_lp[probe]), "trial %d: logprob %.8g vs %.8g",
                       t, lp, want_lp[probe]);
        cr_assert(fabs(h_got - ent) <= 1e-5, "trial %d: entropy %.8g vs %.8g", t, h_got, ent);
    }
    free(logits);
    free(p);
    free(want);
    free(want_lp);
    free(hist);
    free(scratch);
}

Test(sampler, filters_match_reference_small_vocab) {
    for (int V = 1; V <= 40; V++) check_against_reference(V, 12, (uint64_t)V);
}

Test(sampler, filters_match_reference_large_vocab) {
    /* Large enough that top-k and top-p go through the partition rounds, not the small sort. */
    check_against_reference(257, 60, 11);
    check_against_reference(20000, 6, 12);
}

Test(sampler, top_p_keeps_the_crossing_token) {
    /* p = (0.2, 0.5, 0.3): by mass, 0.5 then 0.3 then 0.2. */
    float logits[3] = {logf(0.2f), logf(0.5f), logf(0.3f)};
    struct {
        float top_p;
        int kept[3];
    } cases[] = {
        {0.0f, {0, 1, 0}},  /* at least one token */
        {0.4f, {0, 1, 0}},  /* 0.5 crosses 0.4 and is kept */
        {0.75f, {0, 1, 1}}, /* 0.5 + 0.3 crosses 0.75 */
        {0.85f, {1, 1, 1}},
    };
    float p[3];
    char scratch[64];
    cr_assert_leq(sampler_scratch_bytes(3), sizeof scratch);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sampler_config cfg = sampler_config_default();
        cfg.top_p = cases[c].top_p;
        pt_error err = {0};
        cr_assert_eq(sampler_probs(p, logits, &cfg, NULL, 3, scratch, &err), PT_OK, "%s", err.msg);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(p[i] > 0, cases[c].kept[i], "top_p %g token %d: p %g", cases[c].top_p, i, p[i]);
    }
}

Test(sampler, min_p_is_relative_to_the_max_after_temperature) {
    float logits[4] = {logf(1), logf(8), logf(2), logf(4)};
    float p[4];
    char scratch[64];
    pt_error err = {0};
    sampler_config cfg = sampler_config_default();
    cfg.min_p = 0.3f; /* keeps p ≥ 0.3·p_max: 8 and 4 (4/8 = 0.5), not 2 (0.25) */
    cr_assert_eq(sampler_probs(p, logits, &cfg, NULL, 4, scratch, &err), PT_OK);
    cr_assert(p[0] == 0 && p[1] > 0 && p[2] == 0 && p[3] > 0);
    cr_assert_float_eq(p[1], 8.0f / 12.0f, 1e-6);
    cfg.temperature = 2.0f; /* p ∝ (1, 2.83, 1.41, 2): every ratio to the max is ≥ 0.35 */
    cr_assert_eq(sampler_probs(p, logits, &cfg, NULL, 4, scratch, &err), PT_OK);
    for (int i = 0; i < 4; i++) cr_assert(p[i] > 0, "token %d dropped at T = 2", i);
}

Test(sampler, top_k_keeps_every_tie_of_the_kth_value) {
    float logits[6] = {1.0f, 2.0f, 0.5f, 2.0f, 2.0f, -1.0f};
    float p[6];
    char scratch[128];
    pt_error err = {0};
    sampler_config cfg = sampler_config_default();
    cfg.top_k = 2;
    cr_assert_eq(sampler_probs(p, logits, &cfg, NULL, 6, scratch, &err), PT_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(p[i] > 0, logits[i] == 2.0f, "token %d", i);
    for (int i = 0; i < 6; i++)
        if (p[i] > 0) cr_assert_float_eq(p[i], 1.0f / 3.0f, 1e-6);
}

Test(sampler, repetition_penalty_signs_and_once_per_id) {
    /* l = (2, −1, 0, 1.5, −0.5), seen {0, 1, 2} (1 three times), penalty 1.5:
     * l′ = (2/1.5, −1·1.5, 0, 1.5, −0.5) — differences of log-probs are differences of l′. */
    float logits[5] = {2.0f, -1.0f, 0.0f, 1.5f, -0.5f};
    int32_t hist[5] = {0, 1, 2, 1, 1};
    double want[5] = {2.0 / 1.5, -1.5, 0.0, 1.5, -0.5};
    char scratch[128];
    pt_error err = {0};
    sampler_config cfg = sampler_config_default();
    cfg.repetition_penalty = 1.5f;
    sampler_history h = hist_of(hist, 5);
    float lp[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sampler_logprob(&lp[i], NULL, logits, &cfg, &h, i, 5, scratch, &err), PT_OK);
    for (int i = 1; i < 5; i++)
        cr_assert(fabs((lp[i] - lp[0]) - (want[i] - want[0])) < 1e-5, "token %d: %g vs %g", i, lp[i] - lp[0],
                  want[i] - want[0]);
    /* A penalty below 1 rewards: positive logits grow, negative ones shrink toward 0. */
    cfg.repetition_penalty = 0.5f;
    double want2[5] = {4.0, -0.5, 0.0, 1.5, -0.5};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sampler_logprob(&lp[i], NULL, logits, &cfg, &h, i, 5, scratch, &err), PT_OK);
    for (int i = 1; i < 5; i++) cr_assert(fabs((lp[i] - lp[0]) - (want2[i] - want2[0])) < 1e-5, "token %d", i);
    /* The completion span counts like the prompt span. */
    sampler_history split = {hist, 2, hist + 2, 3};
    float lp2;
    cfg.repetition_penalty = 1.5f;
    cr_assert_eq(sampler_logprob(&lp[0], NULL, logits, &cfg, &h, 2, 5, scratch, &err), PT_OK);
    cr_assert_eq(sampler_logprob(&lp2, NULL, logits, &cfg, &split, 2, 5, scratch, &err), PT_OK);
    cr_assert_eq(lp[0], lp2);
}

Test(sampler, greedy_is_argmax_lowest_id_and_draws_nothing) {
    float logits[5] = {0.5f, 3.0f, 1.0f, 3.0f, 3.0f};
    char scratch[128];
    pt_error err = {0};
    sampler_config cfg = sampler_config_default();
    cfg.temperature = 0.0f;
    rng r, before;
    rng_init(&r, 1, 2);
    rng_seek(&r, 9);
    before = r;
    int tok;
    float lp;
    cr_assert_eq(sampler_sample(&tok, &lp, NULL, logits, &cfg, NULL, 5, scratch, &r, &err), PT_OK);
    cr_assert_eq(tok, 1);
    cr_assert(rng_same(&r, &before), "greedy must not consume random numbers");
    /* log-prob at T = 1 */
    double s = exp(0.5) + 3 * exp(3.0) + exp(1.0);
    cr_assert(fabs(lp - (3.0 - log(s))) < 1e-6);
    /* The penalty applies before the argmax: 2/1.25 = 1.6 < 1.9. */
    float l2[3] = {2.0f, 1.9f, -3.0f};
    int32_t seen = 0;
    sampler_history h = hist_of(&seen, 1);
    cfg.repetition_penalty = 1.25f;
    cr_assert_eq(sampler_sample(&tok, NULL, NULL, l2, &cfg, &h, 3, scratch, NULL, &err), PT_OK);
    cr_assert_eq(tok, 1);
}

Test(sampler, logprob_is_of_the_full_tempered_distribution) {
    enum { V = 300 };
    float logits[V];
    test_rng tr;
    test_rng_seed(&tr, 5);
    fill_normal(logits, V, 2.0f, &tr);
    int32_t hist[40];
    for (int j = 0; j < 40; j++) hist[j] = (int32_t)(test_rng_uniform(&tr) * V);
    sampler_history h = hist_of(hist, 40);
    void *scratch = malloc(sampler_scratch_bytes(V));
    sampler_config full = {0.7f, 0, 1.0f, 0.0f, 1.3f};
    sampler_config cut = {0.7f, 5, 0.6f, 0.1f, 1.3f};
    double lp_ref[V], p_ref[V], ent;
    ref_distribution(p_ref, lp_ref, &ent, logits, &full, hist, 40, V);
    rng r;
    rng_init(&r, 3, 4);
    pt_error err = {0};
    for (int k = 0; k < 50; k++) {
        int tok;
        float lp, e;
        cr_assert_eq(sampler_sample(&tok, &lp, &e, logits, &cut, &h, V, scratch, &r, &err), PT_OK);
        /* truncation decides what can be drawn, not the reported log-prob */
        cr_assert(fabs(lp - lp_ref[tok]) <= 1e-5, "token %d: %.8g vs log_softmax %.8g", tok, lp, lp_ref[tok]);
        cr_assert(fabs(e - ent) <= 1e-5);
    }
    free(scratch);
}

/* ----------------------------------------------------------------- frequencies and determinism */

Test(sampler, frequencies_match_the_filtered_distribution) {
    enum { V = 8 };
    const long N = 100000;
    float logits[V] = {1.2f, 0.3f, -0.4f, 2.0f, 0.9f, -2.5f, 1.6f, 0.0f};
    int32_t hist[3] = {3, 6, 3};
    sampler_history h = hist_of(hist, 3);
    /* Every filter active, none of them deciding everything: 6 tokens survive. */
    sampler_config cfg = {0.8f, 7, 0.97f, 0.02f, 1.3f};
    double p[V];
    ref_distribution(p, NULL, &(double){0}, logits, &cfg, hist, 3, V);
    int kept = 0;
    for (int i = 0; i < V; i++) kept += p[i] > 0;
    cr_assert(kept >= 4 && kept < V, "the test wants a truncated distribution, got %d kept", kept);
    char scratch[256];
    long counts[V] = {0};
    rng r;
    uint64_t ids[2] = {17, 1};
    rng_init(&r, 2024, rng_stream_id(ids, 2));
    pt_error err = {0};
    for (long i = 0; i < N; i++) {
        rng_seek(&r, (uint64_t)i);
        int tok;
        cr_assert_eq(sampler_sample(&tok, NULL, NULL, logits, &cfg, &h, V, scratch, &r, &err), PT_OK);
        counts[tok]++;
    }
    for (int i = 0; i < V; i++)
        if (p[i] == 0) cr_assert_eq(counts[i], 0, "filtered token %d was drawn %ld times", i, counts[i]);
    int df;
    double chi = chi_square(counts, p, V, N, &df);
    cr_log_info("sampler frequencies: chi-square %.2f, df %d, critical %.3f", chi, df, CHI2_CRIT_001[df]);
    cr_assert(chi < CHI2_CRIT_001[df], "chi-square %.2f ≥ %.3f (df %d)", chi, CHI2_CRIT_001[df], df);
}

Test(sampler, same_position_same_token_one_draw_per_token) {
    enum { V = 50 };
    float logits[V];
    test_rng tr;
    test_rng_seed(&tr, 9);
    fill_normal(logits, V, 1.0f, &tr);
    char scratch[1024];
    sampler_config cfg = {1.0f, 20, 0.95f, 0.0f, 1.0f};
    pt_error err = {0};
    rng a, b, c;
    rng_init(&a, 77, 5);
    rng_init(&b, 77, 5);
    rng_init(&c, 77, 5);
    for (uint64_t pos = 0; pos < 200; pos++) {
        rng_seek(&a, pos);
        int ta, tb;
        cr_assert_eq(sampler_sample(&ta, NULL, NULL, logits, &cfg, NULL, V, scratch, &a, &err), PT_OK);
        /* b samples other things first (another batch layout), then seeks back to pos */
        rng_seek(&b, pos + 1000);
        for (int k = 0; k < (int)(pos % 3); k++)
            cr_assert_eq(sampler_sample(&tb, NULL, NULL, logits, &cfg, NULL, V, scratch, &b, &err), PT_OK);
        rng_seek(&b, pos);
        cr_assert_eq(sampler_sample(&tb, NULL, NULL, logits, &cfg, NULL, V, scratch, &b, &err), PT_OK);
        cr_assert_eq(ta, tb, "position %lu", (unsigned long)pos);
        /* exactly one rng_uniform_double was consumed */
        rng_seek(&c, pos);
        (void)rng_uniform_double(&c);
        cr_assert(rng_same(&a, &c), "position %lu: draw count differs", (unsigned long)pos);
    }
}

Test(sampler, batch_equals_rows_whatever_the_thread_count) {
    enum { B = 37, V = 300 };
    float *logits = malloc((size_t)B * V * sizeof *logits);
    test_rng tr;
    test_rng_seed(&tr, 31);
    fill_normal(logits, (size_t)B * V, 2.0f, &tr);
    int32_t hist[B][5];
    sampler_history hs[B];
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < 5; j++) hist[b][j] = (int32_t)(test_rng_uniform(&tr) * V);
        hs[b] = hist_of(hist[b], 5);
    }
    sampler_config cfg = {0.9f, 40, 0.9f, 0.01f, 1.2f};
    int want[B];
    float want_lp[B];
    void *one = malloc(sampler_scratch_bytes(V));
    pt_error err = {0};
    for (int b = 0; b < B; b++) {
        rng r;
        rng_init(&r, 5, (uint64_t)b);
        cr_assert_eq(sampler_sample(&want[b], &want_lp[b], NULL, logits + (size_t)b * V, &cfg, &hs[b], V, one, &r,
                                    &err), PT_OK);
    }
    for (int threads = 1; threads <= 3; threads++) {
        rng rs[B];
        for (int b = 0; b < B; b++) rng_init(&rs[b], 5, (uint64_t)b);
        int got[B];
        float got_lp[B], got_h[B];
        void *scratch = malloc(sampler_batch_scratch_bytes(V, threads));
        cr_assert_eq(sampler_sample_batch(got, got_lp, got_h, logits, &cfg, hs, B, V, scratch, threads, rs, &err),
                     PT_OK, "%s", err.msg);
        for (int b = 0; b < B; b++) {
            cr_assert_eq(got[b], want[b], "threads %d row %d", threads, b);
            cr_assert_eq(got_lp[b], want_lp[b]);
        }
        /* a bad row is named */
        float keep = logits[(size_t)20 * V + 3];
        logits[(size_t)20 * V + 3] = NAN;
        for (int b = 0; b < B; b++) rng_init(&rs[b], 5, (uint64_t)b);
        cr_assert_eq(sampler_sample_batch(got, NULL, NULL, logits, &cfg, hs, B, V, scratch, threads, rs, &err),
                     PT_ERR_NUMERIC);
        cr_assert(strstr(err.msg, "row 20 of 37"), "%s", err.msg);
        logits[(size_t)20 * V + 3] = keep;
        free(scratch);
    }
    free(one);
    free(logits);
}

/* ----------------------------------------------------------------- speculative sampling */

/* A WRONG rule, for the negative control: on rejection sample from p instead of max(0, p − q). */
static int wrong_spec_accept(const float *p, const float *q, int d, int V, rng *r) {
    double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
    if (u1 * q[d] < p[d]) return d;
    double cum = 0;
    for (int i = 0; i < V; i++) {
        cum += p[i];
        if (cum > u2 && p[i] > 0) return i;
    }
    return V - 1;
}

Test(sampler, speculative_sampling_preserves_the_target_distribution) {
    enum { V = 6 };
    const long N = 200000;
    float lt[V] = {0.2f, 1.5f, -0.3f, 0.9f, -1.0f, 0.4f}; /* target */
    float ld[V] = {1.1f, 0.1f, 0.8f, 0.9f, 0.7f, -2.0f};  /* draft: a different opinion */
    sampler_config ct = {0.9f, 5, 1.0f, 0.0f, 1.0f};      /* target drops token 4 */
    sampler_config cd = {1.2f, 0, 0.9f, 0.0f, 1.0f};      /* draft truncates differently */
    char scratch[256];
    pt_error err = {0};
    float p[V], q[V];
    cr_assert_eq(sampler_probs(p, lt, &ct, NULL, V, scratch, &err), PT_OK);
    cr_assert_eq(sampler_probs(q, ld, &cd, NULL, V, scratch, &err), PT_OK);
    double p_ref[V];
    ref_distribution(p_ref, NULL, &(double){0}, lt, &ct, NULL, 0, V);
    double beta = 0;
    for (int i = 0; i < V; i++) beta += fmin(p[i], q[i]);
    cr_assert(p_ref[4] == 0 && q[4] > 0, "the test wants a draft token the target cannot produce");

    long counts[V] = {0}, wrong[V] = {0}, acc = 0;
    rng rd, ra, rw;
    rng_init(&rd, 11, 1); /* draft draws */
    rng_init(&ra, 11, 2); /* acceptance draws */
    rng_init(&rw, 11, 3);
    for (long i = 0; i < N; i++) {
        int d, tok, accepted;
        rng_seek(&rd, (uint64_t)i);
        cr_assert_eq(sampler_sample(&d, NULL, NULL, ld, &cd, NULL, V, scratch, &rd, &err), PT_OK);
        rng_seek(&ra, (uint64_t)i);
        cr_assert_eq(spec_accept(&tok, &accepted, p, q, d, V, &ra, &err), PT_OK, "%s", err.msg);
        counts[tok]++;
        acc += accepted;
        cr_assert(!accepted || tok == d);
        rng_seek(&rw, (uint64_t)i);
        wrong[wrong_spec_accept(p, q, d, V, &rw)]++;
    }
    cr_assert_eq(counts[4], 0);
    int df;
    double chi = chi_square(counts, p_ref, V, N, &df);
    cr_assert(chi < CHI2_CRIT_001[df], "speculative output: chi-square %.2f ≥ %.3f (df %d)", chi, CHI2_CRIT_001[df],
              df);
    /* The acceptance rate is Σ min(p, q) (Leviathan et al., eq. 1 of §3.3): 5 standard errors. */
    double rate = (double)acc / (double)N, se = sqrt(beta * (1 - beta) / (double)N);
    cr_assert(fabs(rate - beta) < 5 * se, "acceptance rate %.4f, expected %.4f ± %.4f", rate, beta, 5 * se);
    /* The negative control: the wrong residual is detected by the same statistic. */
    double chi_wrong = chi_square(wrong, p_ref, V, N, &df);
    cr_log_info("speculative: chi-square %.2f (wrong rule %.2f), df %d, critical %.3f, acceptance %.4f vs %.4f", chi,
                chi_wrong, df, CHI2_CRIT_001[df], rate, beta);
    cr_assert(chi_wrong > CHI2_CRIT_001[df], "the wrong rule went undetected: chi-square %.2f", chi_wrong);
}

Test(sampler, speculative_greedy_accepts_iff_draft_is_argmax) {
    enum { V = 7 };
    test_rng tr;
    test_rng_seed(&tr, 21);
    char scratch[256];
    pt_error err = {0};
    sampler_config greedy = sampler_config_default();
    greedy.temperature = 0.0f;
    rng r;
    rng_init(&r, 5, 5);
    for (int t = 0; t < 200; t++) {
        float lt[V], ld[V], p[V], q[V];
        fill_normal(lt, V, 1.0f, &tr);
        fill_normal(ld, V, 1.0f, &tr);
        if (t % 3 == 0) memcpy(ld, lt, sizeof ld); /* the draft agrees */
        cr_assert_eq(sampler_probs(p, lt, &greedy, NULL, V, scratch, &err), PT_OK);
        cr_assert_eq(sampler_probs(q, ld, &greedy, NULL, V, scratch, &err), PT_OK);
        int a = 0, d = 0;
        for (int i = 1; i < V; i++) {
            if (lt[i] > lt[a]) a = i;
            if (ld[i] > ld[d]) d = i;
        }
        int tok, accepted;
        rng_seek(&r, (uint64_t)t);
        cr_assert_eq(spec_accept(&tok, &accepted, p, q, d, V, &r, &err), PT_OK);
        cr_assert_eq(accepted, d == a, "trial %d: draft %d, argmax %d", t, d, a);
        /* two uniform doubles, accepted or not */
        rng c;
        rng_init(&c, 5, 5);
        rng_seek(&c, (uint64_t)t);
        (void)rng_uniform_double(&c);
        (void)rng_uniform_double(&c);
        cr_assert(rng_same(&r, &c), "trial %d: spec_accept's draw count varies", t);
        cr_assert_eq(tok, a);
    }
}

/* ----------------------------------------------------------------- hostile input */

Test(sampler, rejects_bad_logits_and_configs) {
    float logits[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    char scratch[128];
    pt_error err = {0};
    rng r;
    rng_init(&r, 1, 1);
    int tok;
    sampler_config cfg = sampler_config_default();

    logits[2] = NAN;
    cr_assert_eq(sampler_sample(&tok, NULL, NULL, logits, &cfg, NULL, 4, scratch, &r, &err), PT_ERR_NUMERIC);
    cr_assert(strstr(err.msg, "logit 2"), "%s", err.msg);
    logits[2] = INFINITY;
    cr_assert_eq(sampler_sample(&tok, NULL, NULL, logits, &cfg, NULL, 4, scratch, &r, &err), PT_ERR_NUMERIC);
    float masked[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    cr_assert_eq(sampler_sample(&tok, NULL, NULL, masked, &cfg, NULL, 4, scratch, &r, &err), PT_ERR_NUMERIC);
    /* -inf rows are legal and never drawn */
    masked[1] = 0.0f;
    for (int k = 0; k < 20; k++) {
        cr_assert_eq(sampler_sample(&tok, NULL, NULL, masked, &cfg, NULL, 4, scratch, &r, &err), PT_OK);
        cr_assert_eq(tok, 1);
    }
    /* a tiny temperature that overflows fp32 is reported, not sampled as NaN */
    float big[2] = {3e38f, 1.0f};
    sampler_config cold = cfg;
    cold.temperature = 1e-3f;
    cr_assert_eq(sampler_sample(&tok, NULL, NULL, big, &cold, NULL, 2, scratch, &r, &err), PT_ERR_NUMERIC);
    cr_assert(strstr(err.msg, "temperature"), "%s", err.msg);

    float ok[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    sampler_config bad[] = {
        {-1.0f, 0, 1.0f, 0.0f, 1.0f}, {NAN, 0, 1.0f, 0.0f, 1.0f},  {1.0f, -2, 1.0f, 0.0f, 1.0f},
        {1.0f, 0, 1.5f, 0.0f, 1.0f},  {1.0f, 0, 1.0f, -0.1f, 1.0f}, {1.0f, 0, 1.0f, 0.0f, 0.0f},
    };
    const char *key[] = {"temperature", "temperature", "top_k", "top_p", "min_p", "repetition_penalty"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(sampler_sample(&tok, NULL, NULL, ok, &bad[i], NULL, 4, scratch, &r, &err), PT_ERR_CONFIG);
        cr_assert(strstr(err.msg, key[i]), "config %zu: %s", i, err.msg);
    }
    /* spec_accept: a draft id outside the vocabulary */
    float p[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    int accepted;
    cr_assert_eq(spec_accept(&tok, &accepted, p, p, 4, 4, &r, &err), PT_ERR_INVALID);
}
