/* reward_set.c — several rewards combined by weight, each timed and counted, with an error-rate
 * limit that aborts a run whose rewards are failing instead of training on holes.
 *
 * total_i = Σ_k w_k·s_k,i over rewards with w_k ≠ 0; masked when any of those masked or errored
 * on item i (reason "<name>: <reason>" of the first in config order). Rewards with w_k = 0 are
 * scored and reported but neither add to nor mask the total. See reward.h for the contract.
 *
 * Error window: per reward a ring of the last opt.error_window items (1 = REWARD_ERROR). After
 * each call the errors in the ring are counted over min(seen, window) items; once that count of
 * items reaches opt.error_min_items and errors/items > opt.max_error_rate, the call returns
 * PT_ERR_BACKEND. Invariants: stats[k] describe the last call; total_* only grow.
 */
#include "rewards/reward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

reward_set_options reward_set_options_default(void) {
    reward_set_options o = {.max_error_rate = 0.1, .error_window = 512, .error_min_items = 32};
    return o;
}

void reward_set_free(reward_set *set) {
    if (!set) return;
    for (int k = 0; k < set->n && set->rewards; k++) reward_free(set->rewards[k]);
    free(set->rewards);
    free(set->stats);
    free(set->window);
    free(set->window_seen);
    free(set->scratch);
    memset(set, 0, sizeof *set);
}

pt_status reward_set_init(reward_set *set, const cJSON *cfg, const reward_registry *reg, const reward_set_options *opt,
                          pt_error *err) {
    memset(set, 0, sizeof *set);
    set->opt = opt ? *opt : reward_set_options_default();
    if (!(set->opt.max_error_rate >= 0.0 && set->opt.max_error_rate <= 1.0))
        PT_FAIL(err, PT_ERR_CONFIG, "reward max_error_rate must be in [0, 1], got %g", set->opt.max_error_rate);
    if (set->opt.error_window < 1 || set->opt.error_window > (1 << 20))
        PT_FAIL(err, PT_ERR_CONFIG, "reward error_window must be in [1, 2^20], got %d", set->opt.error_window);
    if (set->opt.error_min_items < 1)
        PT_FAIL(err, PT_ERR_CONFIG, "reward error_min_items must be at least 1, got %d", set->opt.error_min_items);
    if (!cJSON_IsArray(cfg)) PT_FAIL(err, PT_ERR_CONFIG, "the rewards config must be a JSON array of reward objects");
    int n = cJSON_GetArraySize(cfg);
    if (n == 0) PT_FAIL(err, PT_ERR_CONFIG, "the rewards list is empty; give at least one {\"type\": ...} object");
    set->rewards = calloc((size_t)n, sizeof *set->rewards);
    set->stats = calloc((size_t)n, sizeof *set->stats);
    set->window = calloc((size_t)n * (size_t)set->opt.error_window, 1);
    set->window_seen = calloc((size_t)n, sizeof *set->window_seen);
    if (!set->rewards || !set->stats || !set->window || !set->window_seen) {
        reward_set_free(set);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for a set of %d rewards", n);
    }
    int k = 0;
    for (const cJSON *c = cfg->child; c; c = c->next, k++) {
        pt_status st = reward_create(&set->rewards[k], c, reg, err);
        if (st != PT_OK) {
            error_prefix(err, "rewards[%d]", k);
            reward_set_free(set);
            return st;
        }
        set->n = k + 1;
        for (int j = 0; j < k; j++)
            if (strcmp(set->rewards[j]->name, set->rewards[k]->name) == 0) {
                error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                          "rewards[%d] and rewards[%d] are both named '%s'; give each a distinct \"name\"", j, k,
                          set->rewards[k]->name);
                reward_set_free(set);
                return PT_ERR_CONFIG;
            }
    }
    return PT_OK;
}

static void tally_reason(reward_set *set, const char *reason) {
    for (int i = 0; i < set->n_reasons; i++)
        if (strcmp(set->reasons[i].reason, reason) == 0) {
            set->reasons[i].count++;
            return;
        }
    if (set->n_reasons < REWARD_REASON_TALLY) {
        reward_reason_count *rc = &set->reasons[set->n_reasons++];
        snprintf(rc->reason, sizeof rc->reason, "%s", reason);
        rc->count = 1;
        return;
    }
    reward_reason_count *other = &set->reasons[REWARD_REASON_TALLY];
    snprintf(other->reason, sizeof other->reason, "%s", "other");
    other->count++;
}

static void mean_std(double *mean, double *std, double sum, double sumsq, long cnt) {
    *mean = cnt ? sum / (double)cnt : 0.0;
    double var = cnt ? sumsq / (double)cnt - *mean * *mean : 0.0;
    *std = var > 0.0 ? sqrt(var) : 0.0;
}

pt_status reward_set_score(reward_set *set, reward_result *total, reward_result *per_reward, const reward_item *items,
                           int n, pt_error *err) {
    PT_CHECK(set && set->n > 0 && n >= 0 && (n == 0 || (items && total)), err, PT_ERR_INVALID,
             "reward_set_score: bad arguments");
    if (!per_reward && n > 0) {
        if (n > set->scratch_cap) {
            size_t bytes = (size_t)set->n * (size_t)n * sizeof(reward_result);
            reward_result *s = realloc(set->scratch, bytes);
            PT_CHECK_ALLOC(s, err, bytes);
            set->scratch = s;
            set->scratch_cap = n;
        }
        per_reward = set->scratch;
    }
    for (int k = 0; k < set->n; k++) {
        reward_result *res = per_reward + (size_t)k * (size_t)n;
        reward_stats *s = &set->stats[k];
        double t0 = timer_now();
        PT_TRY(reward_score(set->rewards[k], res, items, n, err));
        s->seconds = timer_now() - t0;
        s->total_seconds += s->seconds;
        s->scored = s->masked = s->errors = 0;
        double sum = 0.0, sumsq = 0.0;
        size_t w = (size_t)set->opt.error_window;
        uint8_t *ring = set->window + (size_t)k * w;
        for (int i = 0; i < n; i++) {
            ring[(size_t)set->window_seen[k] % w] = res[i].status == REWARD_ERROR;
            set->window_seen[k]++;
            if (res[i].status == REWARD_OK) {
                s->scored++;
                sum += res[i].score;
                sumsq += res[i].score * res[i].score;
            } else if (res[i].status == REWARD_MASKED) {
                s->masked++;
            } else {
                s->errors++;
                snprintf(s->last_error, sizeof s->last_error, "%s", res[i].reason);
            }
        }
        mean_std(&s->mean, &s->std, sum, sumsq, s->scored);
        s->total_scored += s->scored;
        s->total_masked += s->masked;
        s->total_errors += s->errors;
    }

    double sum = 0.0, sumsq = 0.0;
    long scored = 0;
    set->masked = 0;
    for (int i = 0; i < n; i++) {
        double t = 0.0;
        int masked_by = -1;
        for (int k = 0; k < set->n && masked_by < 0; k++) {
            const reward_result *r = &per_reward[(size_t)k * (size_t)n + (size_t)i];
            if (set->rewards[k]->weight == 0.0) continue;
            if (r->status != REWARD_OK) masked_by = k;
            else t += set->rewards[k]->weight * r->score;
        }
        if (masked_by >= 0) {
            const reward_result *r = &per_reward[(size_t)masked_by * (size_t)n + (size_t)i];
            reward_result_mask(&total[i], r->status, "%s: %s", set->rewards[masked_by]->name, r->reason);
            tally_reason(set, total[i].reason);
            set->masked++;
        } else {
            reward_result_ok(&total[i], t);
            sum += t;
            sumsq += t * t;
            scored++;
        }
    }
    set->total_masked += set->masked;
    mean_std(&set->mean, &set->std, sum, sumsq, scored);

    for (int k = 0; k < set->n; k++) {
        long w = set->opt.error_window;
        long items_in = set->window_seen[k] < w ? set->window_seen[k] : w;
        if (items_in < set->opt.error_min_items) continue;
        const uint8_t *ring = set->window + (size_t)k * (size_t)w;
        long errors = 0;
        for (long i = 0; i < items_in; i++) errors += ring[i];
        double rate = (double)errors / (double)items_in;
        if (rate > set->opt.max_error_rate)
            PT_FAIL(err, PT_ERR_BACKEND,
                    "reward '%s' failed on %ld of its last %ld items (%.1f%% > max_error_rate %.1f%%); last error: %s. "
                    "Fix the reward (or its plugin/server), or raise max_error_rate",
                    set->rewards[k]->name, errors, items_in, 100.0 * rate, 100.0 * set->opt.max_error_rate,
                    set->stats[k].last_error);
    }
    return PT_OK;
}

static void metric_put(reward_metric *out, int cap, int *cnt, const char *name, const char *suffix, double value) {
    if (*cnt < cap) {
        if (suffix) snprintf(out[*cnt].name, sizeof out[*cnt].name, "rewards/%s/%s", name, suffix);
        else snprintf(out[*cnt].name, sizeof out[*cnt].name, "%s", name);
        out[*cnt].value = value;
    }
    (*cnt)++;
}

int reward_set_metrics(reward_metric *out, int cap, const reward_set *set) {
    int cnt = 0;
    metric_put(out, cap, &cnt, "reward", NULL, set->mean);
    metric_put(out, cap, &cnt, "reward_std", NULL, set->std);
    for (int k = 0; k < set->n; k++) {
        const reward_stats *s = &set->stats[k];
        const char *nm = set->rewards[k]->name;
        metric_put(out, cap, &cnt, nm, "mean", s->mean);
        metric_put(out, cap, &cnt, nm, "std", s->std);
        metric_put(out, cap, &cnt, nm, "time", s->seconds);
        metric_put(out, cap, &cnt, nm, "masked", (double)s->masked);
        metric_put(out, cap, &cnt, nm, "errors", (double)s->errors);
    }
    return cnt;
}
