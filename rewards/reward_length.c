/* reward_length.c — length shaping: DAPO's soft over-long penalty (`length`) and a repeated-
 * n-gram penalty (`repetition`).
 *
 * length (DAPO, Yu et al. 2025, eq. 13). Params: "max_length" L_max and "cache_length" L_cache
 * (required, 0 < L_cache ≤ L_max), "unit" auto | tokens | chars (default auto). With |y| the
 * completion length:
 *     R = 0                                   |y| ≤ L_max − L_cache
 *     R = ((L_max − L_cache) − |y|) / L_cache  L_max − L_cache < |y| ≤ L_max   (0 → −1 linearly)
 *     R = −1                                  |y| > L_max
 * |y| is item->completion_tokens when the unit is tokens, or auto and the count is known (≥ 0);
 * otherwise the number of Unicode code points of the completion (UTF-8 lead bytes; an invalid
 * byte counts as one). unit "tokens" with an unknown count is a REWARD_ERROR (the caller did not
 * pass token counts: a bug to surface, not a length to guess).
 *
 * repetition (as open-r1's repetition penalty). Params: "ngram" n (default 3, 1..64), "unit"
 * words | chars (default words: maximal runs of non-ASCII-whitespace), "lowercase" (default true,
 * ASCII only), "max_penalty" P (default 1, ≥ 0). With G the n-grams of the completion (|G| =
 * units − n + 1) and U the distinct ones:
 *     R = −P·(1 − |U|/|G|)      (0 when the completion has fewer than n units)
 * so R ∈ [−P, 0]: 0 for no repeat, → −P as one n-gram fills the text. N-grams are compared
 * exactly (hash set keyed by content, collisions resolved by comparing the units).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"

/* ---- length -------------------------------------------------------------------------------- */

typedef enum length_unit { LENGTH_AUTO, LENGTH_TOKENS, LENGTH_CHARS } length_unit;

typedef struct length_reward {
    long max_length, cache_length;
    length_unit unit;
} length_reward;

static long utf8_code_points(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static pt_status length_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    const length_reward *lr = self->impl;
    for (int i = 0; i < n; i++) {
        long len;
        if (lr->unit == LENGTH_TOKENS || (lr->unit == LENGTH_AUTO && items[i].completion_tokens >= 0)) {
            if (items[i].completion_tokens < 0) {
                reward_result_mask(&out[i], REWARD_ERROR, "unit is tokens but the item has no completion_tokens");
                continue;
            }
            len = items[i].completion_tokens;
        } else {
            len = utf8_code_points(items[i].completion ? items[i].completion : "");
        }
        long free_len = lr->max_length - lr->cache_length;
        double r;
        if (len <= free_len) r = 0.0;
        else if (len <= lr->max_length) r = (double)(free_len - len) / (double)lr->cache_length;
        else r = -1.0;
        reward_result_ok(&out[i], r);
    }
    return PT_OK;
}

static void impl_free(reward *self) {
    free(self->impl);
    self->impl = NULL;
}

static const reward_vtable LENGTH_VTABLE = {length_score_batch, impl_free};

pt_status reward_length_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"max_length", "cache_length", "unit"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, 3, err));
    length_reward lr = {0};
    PT_TRY(reward_cfg_int(&lr.max_length, cfg, "max_length", -1, err));
    PT_TRY(reward_cfg_int(&lr.cache_length, cfg, "cache_length", -1, err));
    if (lr.max_length <= 0 || lr.cache_length <= 0 || lr.cache_length > lr.max_length)
        PT_FAIL(err, PT_ERR_CONFIG,
                "needs \"max_length\" and \"cache_length\" with 0 < cache_length <= max_length (DAPO: e.g. 20480 "
                "and 4096), got %ld and %ld",
                lr.max_length, lr.cache_length);
    const char *unit;
    PT_TRY(reward_cfg_string(&unit, cfg, "unit", "auto", err));
    if (strcmp(unit, "auto") == 0) lr.unit = LENGTH_AUTO;
    else if (strcmp(unit, "tokens") == 0) lr.unit = LENGTH_TOKENS;
    else if (strcmp(unit, "chars") == 0) lr.unit = LENGTH_CHARS;
    else PT_FAIL(err, PT_ERR_CONFIG, "unit '%s' is not one of auto, tokens, chars", unit);
    length_reward *impl = malloc(sizeof *impl);
    PT_CHECK_ALLOC(impl, err, sizeof *impl);
    *impl = lr;
    self->impl = impl;
    self->vt = &LENGTH_VTABLE;
    return PT_OK;
}

/* ---- repetition ---------------------------------------------------------------------------- */

typedef struct repetition_reward {
    int ngram;
    bool words;
    bool lowercase;
    double max_penalty;
} repetition_reward;

typedef struct span {
    size_t start, len;
} span;

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Units of text as spans: words (runs of non-space) or code points. */
static size_t split_units(span *units, const char *s, size_t len, bool words) {
    size_t n = 0, i = 0;
    while (i < len) {
        if (words) {
            while (i < len && is_space((unsigned char)s[i])) i++;
            if (i == len) break;
            size_t st = i;
            while (i < len && !is_space((unsigned char)s[i])) i++;
            units[n++] = (span){st, i - st};
        } else {
            size_t st = i++;
            while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
            units[n++] = (span){st, i - st};
        }
    }
    return n;
}

static uint64_t ngram_hash(const char *s, const span *u, int n) {
    uint64_t h = 1469598103934665603ULL;
    for (int k = 0; k < n; k++) {
        for (size_t j = 0; j < u[k].len; j++) h = (h ^ (unsigned char)s[u[k].start + j]) * 1099511628211ULL;
        h = (h ^ 0xFFu) * 1099511628211ULL; /* unit separator: never a byte of valid text */
    }
    return h;
}

static bool ngram_equal(const char *s, const span *a, const span *b, int n) {
    for (int k = 0; k < n; k++)
        if (a[k].len != b[k].len || memcmp(s + a[k].start, s + b[k].start, a[k].len) != 0) return false;
    return true;
}

/* Distinct n-grams among the g = nunits − n + 1 n-grams; -1 when out of memory. */
static long count_distinct(const char *s, const span *units, size_t g, int n) {
    size_t cap = 16;
    while (cap < 2 * g) cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot); /* index of the n-gram + 1; 0 = empty */
    if (!slot) return -1;
    memset(slot, 0, cap * sizeof *slot);
    long distinct = 0;
    for (size_t i = 0; i < g; i++) {
        size_t h = (size_t)ngram_hash(s, units + i, n) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (slot[h] == 0) {
                slot[h] = i + 1;
                distinct++;
                break;
            }
            if (ngram_equal(s, units + slot[h] - 1, units + i, n)) break;
        }
    }
    free(slot);
    return distinct;
}

static pt_status repetition_score_batch(reward *self, reward_result *out, const reward_item *items, int n,
                                        pt_error *err) {
    const repetition_reward *rr = self->impl;
    for (int i = 0; i < n; i++) {
        const char *c = items[i].completion ? items[i].completion : "";
        size_t len = strlen(c);
        char *text = malloc(len + 1);
        span *units = malloc((len + 1) * sizeof *units);
        if (!text || !units) {
            free(text);
            free(units);
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory for a %zu-byte completion", len);
        }
        for (size_t j = 0; j <= len; j++) text[j] = rr->lowercase ? (char)tolower((unsigned char)c[j]) : c[j];
        size_t nu = split_units(units, text, len, rr->words);
        if (nu < (size_t)rr->ngram) {
            reward_result_ok(&out[i], 0.0);
        } else {
            size_t g = nu - (size_t)rr->ngram + 1;
            long d = count_distinct(text, units, g, rr->ngram);
            if (d < 0) {
                free(text);
                free(units);
                PT_FAIL(err, PT_ERR_NOMEM, "out of memory counting n-grams");
            }
            reward_result_ok(&out[i], -rr->max_penalty * (1.0 - (double)d / (double)g));
        }
        free(text);
        free(units);
    }
    return PT_OK;
}

static const reward_vtable REPETITION_VTABLE = {repetition_score_batch, impl_free};

pt_status reward_repetition_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"ngram", "unit", "lowercase", "max_penalty"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, 4, err));
    repetition_reward rr = {0};
    long ngram;
    PT_TRY(reward_cfg_int(&ngram, cfg, "ngram", 3, err));
    if (ngram < 1 || ngram > 64) PT_FAIL(err, PT_ERR_CONFIG, "ngram must be in [1, 64], got %ld", ngram);
    rr.ngram = (int)ngram;
    const char *unit;
    PT_TRY(reward_cfg_string(&unit, cfg, "unit", "words", err));
    if (strcmp(unit, "words") != 0 && strcmp(unit, "chars") != 0)
        PT_FAIL(err, PT_ERR_CONFIG, "unit '%s' is not 'words' or 'chars'", unit);
    rr.words = strcmp(unit, "words") == 0;
    PT_TRY(reward_cfg_bool(&rr.lowercase, cfg, "lowercase", true, err));
    PT_TRY(reward_cfg_number(&rr.max_penalty, cfg, "max_penalty", 1.0, err));
    if (rr.max_penalty < 0) PT_FAIL(err, PT_ERR_CONFIG, "max_penalty must be >= 0 (the score is -max_penalty*fraction)");
    repetition_reward *impl = malloc(sizeof *impl);
    PT_CHECK_ALLOC(impl, err, sizeof *impl);
    *impl = rr;
    self->impl = impl;
    self->vt = &REPETITION_VTABLE;
    return PT_OK;
}
