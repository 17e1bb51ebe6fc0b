/* sampler.c — see sampler.h for the math and the order of the filters.
 *
 * How the kept set is found without sorting the vocabulary: every filter keeps a prefix of the
 * total order "higher z first, lower id first among equal z" (top-k keeps z ≥ v_k, top-p a
 * prefix by construction, min-p z ≥ z_max + log min_p). So the kept set after top-k and top-p is
 * described by its last element (z_t, i_t) in that order, found by quickselect-style partitions
 * in expected O(V); min-p is a second, value-only test. The final pass then walks ids in order,
 * which is also the order of the inverse-CDF draw.
 *
 * Scratch layout (sampler_scratch_bytes): z (V floats: l′/T), w (V floats: exp(z − z_max), then
 * the kept weights), idx (V int32: candidate ids while selecting).
 */
#include "rollout/sampler.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many candidates a partition step is not worth it: insertion-sort and scan. */
#define SAMPLER_SMALL 16

typedef struct sampler_work {
    float *z;     /* (V) penalised, temperature-scaled logits */
    float *w;     /* (V) exp(z − z_max); after filtering: kept weights, 0 elsewhere */
    int32_t *idx; /* (V) candidate ids */
} sampler_work;

/* What a full-distribution pass learns. */
typedef struct sampler_stats {
    double zmax;    /* max z */
    double log_s;   /* log Σ exp(z − zmax): lse = zmax + log_s */
    double entropy; /* −Σ p log p of softmax(z) */
    int argmax;     /* lowest id with z = zmax */
} sampler_stats;

sampler_config sampler_config_default(void) {
    sampler_config c = {1.0f, 0, 1.0f, 0.0f, 1.0f};
    return c;
}

pt_status sampler_config_check(const sampler_config *cfg, pt_error *err) {
    PT_CHECK(cfg != NULL, err, PT_ERR_INVALID, "sampler config is NULL");
    PT_CHECK(isfinite(cfg->temperature) && cfg->temperature >= 0.0f, err, PT_ERR_CONFIG,
             "temperature must be a finite number >= 0 (0 = greedy), got %g", (double)cfg->temperature);
    PT_CHECK(cfg->top_k >= 0, err, PT_ERR_CONFIG, "top_k must be >= 0 (0 = off), got %d", cfg->top_k);
    PT_CHECK(cfg->top_p >= 0.0f && cfg->top_p <= 1.0f, err, PT_ERR_CONFIG,
             "top_p must be in [0, 1] (1 = off), got %g", (double)cfg->top_p);
    PT_CHECK(cfg->min_p >= 0.0f && cfg->min_p <= 1.0f, err, PT_ERR_CONFIG,
             "min_p must be in [0, 1] (0 = off), got %g", (double)cfg->min_p);
    PT_CHECK(isfinite(cfg->repetition_penalty) && cfg->repetition_penalty > 0.0f, err, PT_ERR_CONFIG,
             "repetition_penalty must be a finite number > 0 (1 = off), got %g", (double)cfg->repetition_penalty);
    return PT_OK;
}

size_t sampler_scratch_bytes(int V) {
    if (V <= 0) return 0;
    return (size_t)V * (2 * sizeof(float) + sizeof(int32_t));
}

static sampler_work work_carve(void *scratch, int V) {
    char *b = scratch;
    sampler_work s;
    s.z = (float *)b;
    s.w = (float *)(b + (size_t)V * sizeof(float));
    s.idx = (int32_t *)(b + (size_t)V * 2 * sizeof(float));
    return s;
}

static void penalise_span(float *z, const float *logits, const int32_t *ids, size_t n, float penalty, int V) {
    for (size_t j = 0; j < n; j++) {
        int32_t id = ids[j];
        if (id < 0 || id >= V) continue; /* transformers drops ids beyond the logits' width */
        float l = logits[id];
        /* From the original logit, so an id seen twice is penalised once. */
        z[id] = l < 0.0f ? l * penalty : l / penalty;
    }
}

/* z = penalty(logits) / T (T = 1 when greedy); checks every value; fills the full-distribution
 * statistics and w = exp(z − zmax). */
static pt_status prepare(sampler_stats *st, sampler_work *s, const float *logits, const sampler_config *cfg,
                         const sampler_history *history, int V, pt_error *err) {
    PT_TRY(sampler_config_check(cfg, err));
    PT_CHECK(V > 0, err, PT_ERR_INVALID, "vocabulary size V must be > 0, got %d", V);
    PT_CHECK(logits != NULL, err, PT_ERR_INVALID, "logits are NULL");
    float *z = s->z;
    memcpy(z, logits, (size_t)V * sizeof(float));
    if (cfg->repetition_penalty != 1.0f && history != NULL) {
        if (history->prompt) penalise_span(z, logits, history->prompt, history->n_prompt, cfg->repetition_penalty, V);
        if (history->completion)
            penalise_span(z, logits, history->completion, history->n_completion, cfg->repetition_penalty, V);
    }
    if (cfg->temperature > 0.0f && cfg->temperature != 1.0f)
        for (int i = 0; i < V; i++) z[i] = z[i] / cfg->temperature;

    float zmax = -INFINITY;
    int argmax = -1;
    for (int i = 0; i < V; i++) {
        float v = z[i];
        if (isnan(v) || v == INFINITY) {
            if (isnan(logits[i]) || logits[i] == INFINITY)
                PT_FAIL(err, PT_ERR_NUMERIC, "logit %d of %d is %g: the model produced a non-finite value", i, V,
                        (double)logits[i]);
            PT_FAIL(err, PT_ERR_NUMERIC, "logit %d (%g) overflows at temperature %g; raise the temperature", i,
                    (double)logits[i], (double)cfg->temperature);
        }
        if (v > zmax) {
            zmax = v;
            argmax = i;
        }
    }
    PT_CHECK(argmax >= 0, err, PT_ERR_NUMERIC, "all %d logits are -inf: no token can be sampled", V);

    double s_sum = 0.0, sa = 0.0;
    for (int i = 0; i < V; i++) {
        if (z[i] == -INFINITY) {
            s->w[i] = 0.0f;
            continue;
        }
        double a = (double)z[i] - zmax;
        double e = exp(a);
        s_sum += e;
        sa += e * a;
        s->w[i] = (float)e;
    }
    st->zmax = zmax;
    st->log_s = log(s_sum);
    st->entropy = st->log_s - sa / s_sum;
    st->argmax = argmax;
    return PT_OK;
}

/* ------------------------------------------------------------------ selection in the total order */

/* a comes before b: higher z, then lower id. */
static inline int ranks_before(const float *z, int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); }

static inline void swap_ids(int32_t *idx, size_t a, size_t b) {
    int32_t t = idx[a];
    idx[a] = idx[b];
    idx[b] = t;
}

static void insertion_sort(int32_t *idx, size_t lo, size_t hi, const float *z) {
    for (size_t j = lo + 1; j < hi; j++) {
        int32_t v = idx[j];
        size_t k = j;
        while (k > lo && ranks_before(z, v, idx[k - 1])) {
            idx[k] = idx[k - 1];
            k--;
        }
        idx[k] = v;
    }
}

/* Partitions idx[lo, hi) (hi − lo ≥ 3) around a median-of-three pivot; returns the pivot's final
 * position g: idx[lo, g) rank before it, idx[g+1, hi) after it. */
static size_t partition(int32_t *idx, size_t lo, size_t hi, const float *z) {
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (ranks_before(z, idx[mid], idx[lo])) swap_ids(idx, mid, lo);
    if (ranks_before(z, idx[last], idx[lo])) swap_ids(idx, last, lo);
    if (ranks_before(z, idx[last], idx[mid])) swap_ids(idx, last, mid);
    swap_ids(idx, mid, last);
    int32_t pivot = idx[last];
    size_t g = lo;
    for (size_t j = lo; j < last; j++)
        if (ranks_before(z, idx[j], pivot)) swap_ids(idx, g++, j);
    swap_ids(idx, g, last);
    return g;
}

/* Rearranges idx[0, n) so that idx[0, k) are the first k in the total order (unsorted). */
static void select_first_k(int32_t *idx, size_t n, size_t k, const float *z) {
    size_t lo = 0, hi = n;
    while (hi - lo > SAMPLER_SMALL) {
        size_t g = partition(idx, lo, hi, z);
        if (g == k - 1 || g == k) return;
        if (g > k) hi = g;
        else lo = g + 1;
    }
    insertion_sort(idx, lo, hi, z);
}

/* Top-p over idx[0, n) with probabilities w[i]·inv_s: returns c = the least j with mass of the
 * first j ≥ top_p (n when rounding leaves none), and rearranges idx so idx[0, c) are the first c
 * in the total order. Expected O(n): each round partitions, sums one side and keeps one side. */
static size_t select_top_p(int32_t *idx, size_t n, double top_p, const float *z, const float *w, double inv_s) {
    size_t lo = 0, hi = n; /* idx[0, lo) are settled with mass acc < top_p; the answer is in (lo, hi] */
    double acc = 0.0;
    while (hi - lo > SAMPLER_SMALL) {
        size_t g = partition(idx, lo, hi, z);
        double mass = 0.0;
        for (size_t j = lo; j < g; j++) mass += w[idx[j]] * inv_s;
        if (acc + mass >= top_p) {
            hi = g; /* the crossing token ranks before the pivot (g > lo since acc < top_p) */
        } else {
            acc += mass + w[idx[g]] * inv_s;
            if (acc >= top_p) return g + 1; /* the pivot itself crosses */
            lo = g + 1;
        }
    }
    insertion_sort(idx, lo, hi, z);
    for (size_t j = lo; j < hi; j++) {
        acc += w[idx[j]] * inv_s;
        if (acc >= top_p) return j + 1;
    }
    return hi;
}

/* The kept set: finite z, ranking no later than (zt, it) when has_threshold, and z − zmax ≥
 * log_min_p. */
typedef struct kept_rule {
    int has_threshold;
    float zt;
    int32_t it;
    double log_min_p; /* -inf when min-p is off */
} kept_rule;

static kept_rule kept_rule_compute(sampler_work *s, const sampler_config *cfg, int V) {
    kept_rule k = {0, 0.0f, 0, -INFINITY};
    if (cfg->min_p > 0.0f) k.log_min_p = log((double)cfg->min_p);
    int top_k_on = cfg->top_k > 0, top_p_on = cfg->top_p < 1.0f;
    if (!top_k_on && !top_p_on) return k;

    const float *z = s->z;
    int32_t *idx = s->idx;
    size_t n = 0;
    for (int i = 0; i < V; i++)
        if (z[i] != -INFINITY) idx[n++] = i;
    size_t m = n;
    if (top_k_on && (size_t)cfg->top_k < n) {
        size_t k_keep = (size_t)cfg->top_k;
        select_first_k(idx, n, k_keep, z);
        /* transformers keeps every token equal to the k-th value: the ties that ranked after it */
        float vk = z[idx[0]];
        for (size_t j = 1; j < k_keep; j++)
            if (z[idx[j]] < vk) vk = z[idx[j]];
        m = k_keep;
        for (size_t j = k_keep; j < n; j++)
            if (z[idx[j]] == vk) swap_ids(idx, m++, j);
    }
    if (top_p_on) {
        double s_m = 0.0;
        for (size_t j = 0; j < m; j++) s_m += s->w[idx[j]];
        m = select_top_p(idx, m, (double)cfg->top_p, z, s->w, 1.0 / s_m);
    }
    if (m == n) return k;
    int32_t last = idx[0];
    for (size_t j = 1; j < m; j++)
        if (ranks_before(z, last, idx[j])) last = idx[j];
    k.has_threshold = 1;
    k.zt = z[last];
    k.it = last;
    return k;
}

/* Zeroes w outside the kept set; returns Σ w over it. */
static double apply_kept(sampler_work *s, const kept_rule *k, const sampler_stats *st, int V) {
    const float *z = s->z;
    float *w = s->w;
    double total = 0.0;
    for (int i = 0; i < V; i++) {
        float v = z[i];
        int keep = v != -INFINITY;
        if (keep && k->has_threshold && (v < k->zt || (v == k->zt && i > k->it))) keep = 0;
        if (keep && (double)v - st->zmax < k->log_min_p) keep = 0;
        if (keep) total += w[i];
        else w[i] = 0.0f;
    }
    return total;
}

/* Greedy: w one-hot at the argmax. Sampling: the kept weights. Returns their total. */
static double final_weights(sampler_work *s, const sampler_stats *st, const sampler_config *cfg, int V) {
    if (cfg->temperature == 0.0f) {
        memset(s->w, 0, (size_t)V * sizeof(float));
        s->w[st->argmax] = 1.0f;
        return 1.0;
    }
    kept_rule k = kept_rule_compute(s, cfg, V);
    return apply_kept(s, &k, st, V);
}

/* The first id whose cumulative weight exceeds target; the last positive one if rounding runs out. */
static int inverse_cdf(const float *w, int V, double target) {
    double cum = 0.0;
    int last = -1;
    for (int i = 0; i < V; i++) {
        if (w[i] <= 0.0f) continue;
        cum += w[i];
        last = i;
        if (cum > target) return i;
    }
    return last;
}

static void write_stats(float *logprob, float *entropy, const sampler_stats *st, const float *z, int token) {
    if (logprob) *logprob = (float)((double)z[token] - st->zmax - st->log_s);
    if (entropy) *entropy = (float)st->entropy;
}

pt_status sampler_sample(int *token, float *logprob, float *entropy, const float *logits, const sampler_config *cfg,
                         const sampler_history *history, int V, void *scratch, rng *r, pt_error *err) {
    PT_CHECK(token != NULL && scratch != NULL, err, PT_ERR_INVALID, "sampler_sample needs token and scratch");
    PT_CHECK(r != NULL || (cfg && cfg->temperature == 0.0f), err, PT_ERR_INVALID, "sampling needs an rng");
    sampler_work s = work_carve(scratch, V);
    sampler_stats st;
    PT_TRY(prepare(&st, &s, logits, cfg, history, V, err));
    int tok;
    if (cfg->temperature == 0.0f) {
        tok = st.argmax;
    } else {
        double total = final_weights(&s, &st, cfg, V);
        double u = rng_uniform_double(r);
        tok = inverse_cdf(s.w, V, u * total);
        PT_CHECK(tok >= 0, err, PT_ERR_INTERNAL, "no token kept after filtering (a bug: the max is always kept)");
    }
    *token = tok;
    write_stats(logprob, entropy, &st, s.z, tok);
    return PT_OK;
}

size_t sampler_batch_scratch_bytes(int V, int threads) {
    size_t one = sampler_scratch_bytes(V);
    one = (one + 63) / 64 * 64; /* each thread's slice on its own cache lines */
    return threads > 0 ? one * (size_t)threads : 0;
}

pt_status sampler_sample_batch(int *tokens, float *logprobs, float *entropies, const float *logits,
                               const sampler_config *cfg, const sampler_history *histories, int B, int V, void *scratch,
                               int threads, rng *rngs, pt_error *err) {
    PT_CHECK(tokens && logits && scratch && rngs && B >= 0 && threads >= 1, err, PT_ERR_INVALID,
             "sampler_sample_batch: bad arguments (B %d, threads %d)", B, threads);
    size_t slice = sampler_batch_scratch_bytes(V, 1);
    int first_bad = B;
    pt_error bad = {0};
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
    for (int b = 0; b < B; b++) {
        pt_error row_err = {0};
        char *mine = (char *)scratch + slice * (size_t)omp_get_thread_num();
        pt_status st = sampler_sample(&tokens[b], logprobs ? &logprobs[b] : NULL, entropies ? &entropies[b] : NULL,
                                      logits + (size_t)b * (size_t)V, cfg, histories ? &histories[b] : NULL, V, mine,
                                      &rngs[b], &row_err);
        if (st != PT_OK) {
#pragma omp critical(sampler_batch_error)
            if (b < first_bad) {
                first_bad = b;
                bad = row_err;
            }
        }
    }
    if (first_bad < B) {
        if (!err) return bad.status;
        *err = bad;
        return error_prefix(err, "sampling row %d of %d", first_bad, B);
    }
    return PT_OK;
}

pt_status sampler_probs(float *p, const float *logits, const sampler_config *cfg, const sampler_history *history,
                        int V, void *scratch, pt_error *err) {
    PT_CHECK(p != NULL && scratch != NULL, err, PT_ERR_INVALID, "sampler_probs needs p and scratch");
    sampler_work s = work_carve(scratch, V);
    sampler_stats st;
    PT_TRY(prepare(&st, &s, logits, cfg, history, V, err));
    double total = final_weights(&s, &st, cfg, V);
    double inv = 1.0 / total;
    for (int i = 0; i < V; i++) p[i] = (float)(s.w[i] * inv);
    return PT_OK;
}

pt_status sampler_logprob(float *logprob, float *entropy, const float *logits, const sampler_config *cfg,
                          const sampler_history *history, int token, int V, void *scratch, pt_error *err) {
    PT_CHECK(scratch != NULL, err, PT_ERR_INVALID, "sampler_logprob needs scratch");
    PT_CHECK(token >= 0 && token < V, err, PT_ERR_INVALID, "token %d is outside the vocabulary [0, %d)", token, V);
    sampler_work s = work_carve(scratch, V);
    sampler_stats st;
    PT_TRY(prepare(&st, &s, logits, cfg, history, V, err));
    write_stats(logprob, entropy, &st, s.z, token);
    return PT_OK;
}

/* ------------------------------------------------------------------ speculative acceptance */

pt_status spec_accept(int *token, int *accepted, const float *p_target, const float *q_draft, int draft_token, int V,
                      rng *r, pt_error *err) {
    PT_CHECK(token && accepted && p_target && q_draft && r, err, PT_ERR_INVALID, "spec_accept: NULL argument");
    PT_CHECK(draft_token >= 0 && draft_token < V, err, PT_ERR_INVALID,
             "draft token %d is outside the vocabulary [0, %d)", draft_token, V);
    double pd = p_target[draft_token], qd = q_draft[draft_token];
    PT_CHECK(isfinite(pd) && isfinite(qd) && pd >= 0.0 && qd >= 0.0, err, PT_ERR_NUMERIC,
             "draft token %d has target probability %g and draft probability %g; both must be finite and >= 0",
             draft_token, pd, qd);
    double u_accept = rng_uniform_double(r);
    double u_resample = rng_uniform_double(r);
    /* u < p/q without dividing: q = 0 with p > 0 accepts, as min(1, p/q) = 1 says. */
    if (u_accept * qd < pd) {
        *token = draft_token;
        *accepted = 1;
        return PT_OK;
    }
    *accepted = 0;
    double residual = 0.0;
    for (int i = 0; i < V; i++) {
        double d = (double)p_target[i] - q_draft[i];
        if (d > 0.0) residual += d;
    }
    PT_CHECK(isfinite(residual), err, PT_ERR_NUMERIC, "spec_accept: p_target or q_draft holds NaN/Inf");
    double target;
    int last = -1, tok = -1;
    double cum = 0.0;
    if (residual > 0.0) {
        target = u_resample * residual;
        for (int i = 0; i < V && tok < 0; i++) {
            double d = (double)p_target[i] - q_draft[i];
            if (d <= 0.0) continue;
            cum += d;
            last = i;
            if (cum > target) tok = i;
        }
    } else {
        double total = 0.0;
        for (int i = 0; i < V; i++) total += p_target[i];
        PT_CHECK(total > 0.0, err, PT_ERR_NUMERIC, "spec_accept: p_target has no mass");
        target = u_resample * total;
        for (int i = 0; i < V && tok < 0; i++) {
            if (p_target[i] <= 0.0f) continue;
            cum += p_target[i];
            last = i;
            if (cum > target) tok = i;
        }
    }
    *token = tok >= 0 ? tok : last;
    return PT_OK;
}
