/* reward_regex.c — a PCRE2 pattern as a reward: match / full_match / count / capture.
 *
 * Params: "pattern" (required), "mode" (match | full_match | count | capture; default match),
 * "flags" (any of "i" caseless, "m" multiline, "s" dot matches newline, "x" extended; default ""),
 * "hit" (default 1), "miss" (default 0), and per mode:
 *   match       hit when the pattern matches anywhere in the completion, else miss.
 *   full_match  hit when it matches the whole completion (PCRE2_ANCHORED | PCRE2_ENDANCHORED).
 *   count       c = number of non-overlapping matches; miss when c = 0, else hit·min(c, max_count)
 *               ("max_count", default 0 = no cap). An empty match advances one code point.
 *   capture     the text of group "group" (a number, default 1, or a name) of the "first" or
 *               "last" match ("which", default first), compared with column "column" (default
 *               "answer") after trimming ASCII whitespace on both sides ("trim", default true):
 *               hit when equal, miss when different or the pattern/group does not match; the
 *               item is REWARD_MASKED when the column is missing (a dataset problem).
 * Patterns are compiled once with PCRE2_UTF | PCRE2_MATCH_INVALID_UTF (invalid UTF-8 in a
 * completion never matches across the bad bytes, and is never an error) and JIT-compiled when
 * the library has JIT (silently interpreted otherwise). A bad pattern fails at creation with
 * PCRE2's message and the offset. Matching runs under a match limit ("match_limit", default
 * 10^7) so a catastrophic pattern cannot stall the trainer: hitting it is a REWARD_ERROR.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"

typedef enum regex_mode { REGEX_MATCH, REGEX_FULL_MATCH, REGEX_COUNT, REGEX_CAPTURE } regex_mode;

typedef struct regex_reward {
    pcre2_code *code;
    pcre2_match_context *mctx;
    regex_mode mode;
    double hit, miss;
    long max_count;
    int group;            /* group number (resolved from the name at creation) */
    bool last;            /* capture: use the last match */
    bool trim;
    char column[REWARD_NAME_MAX];
} regex_reward;

static void regex_free(reward *self) {
    regex_reward *rx = self->impl;
    if (!rx) return;
    pcre2_code_free(rx->code);
    pcre2_match_context_free(rx->mctx);
    free(rx);
    self->impl = NULL;
}

static void trim_span(const char **s, size_t *len) {
    while (*len && (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r' || **s == '\f' || **s == '\v')) (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\n' ||
                    (*s)[*len - 1] == '\r' || (*s)[*len - 1] == '\f' || (*s)[*len - 1] == '\v'))
        (*len)--;
}

/* Advance past one UTF-8 code point (or one byte when invalid). */
static size_t next_code_point(const char *s, size_t len, size_t pos) {
    if (pos >= len) return pos + 1;
    pos++;
    while (pos < len && ((unsigned char)s[pos] & 0xC0) == 0x80) pos++;
    return pos;
}

/* One item. Returns the PCRE2 error code (< 0, not NOMATCH) for a REWARD_ERROR, else 0. */
static int regex_score_one(const regex_reward *rx, reward_result *out, const reward_item *item,
                           pcre2_match_data *md) {
    const char *subj = item->completion ? item->completion : "";
    size_t len = strlen(subj);
    uint32_t opts = rx->mode == REGEX_FULL_MATCH ? (PCRE2_ANCHORED | PCRE2_ENDANCHORED) : 0;
    long count = 0;
    size_t cap_start = 0, cap_len = 0;
    bool captured = false;
    size_t pos = 0;
    while (pos <= len) {
        int rc = pcre2_match(rx->code, (PCRE2_SPTR)subj, len, pos, opts, md, rx->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return rc;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        count++;
        if (rx->mode == REGEX_CAPTURE) {
            if ((uint32_t)rx->group < pcre2_get_ovector_count(md) && rc > rx->group &&
                ov[2 * rx->group] != PCRE2_UNSET) {
                cap_start = ov[2 * rx->group];
                cap_len = ov[2 * rx->group + 1] - cap_start;
                captured = true;
            } else {
                captured = false;
            }
            if (!rx->last) break;
        } else if (rx->mode != REGEX_COUNT) {
            break;
        }
        pos = ov[1] > ov[0] ? ov[1] : next_code_point(subj, len, ov[1]);
    }
    if (rx->mode == REGEX_MATCH || rx->mode == REGEX_FULL_MATCH) {
        reward_result_ok(out, count ? rx->hit : rx->miss);
        return 0;
    }
    if (rx->mode == REGEX_COUNT) {
        long c = rx->max_count > 0 && count > rx->max_count ? rx->max_count : count;
        reward_result_ok(out, count ? rx->hit * (double)c : rx->miss);
        return 0;
    }
    /* capture */
    cJSON *cols = NULL;
    pt_error perr = {0};
    if (reward_item_columns(&cols, item, &perr) != PT_OK) {
        reward_result_mask(out, REWARD_MASKED, "%s", perr.msg);
        return 0;
    }
    char buf[64];
    const char *want = reward_column_text(buf, sizeof buf, cols, rx->column);
    if (!want) {
        reward_result_mask(out, REWARD_MASKED, "column '%s' is missing or not a string/number", rx->column);
        cJSON_Delete(cols);
        return 0;
    }
    bool equal = false;
    if (captured) {
        const char *got = subj + cap_start;
        size_t want_len = strlen(want);
        if (rx->trim) {
            trim_span(&got, &cap_len);
            trim_span(&want, &want_len);
        }
        equal = cap_len == want_len && memcmp(got, want, cap_len) == 0;
    }
    reward_result_ok(out, equal ? rx->hit : rx->miss);
    cJSON_Delete(cols);
    return 0;
}

static pt_status regex_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    const regex_reward *rx = self->impl;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(rx->code, NULL);
    PT_CHECK_ALLOC(md, err, sizeof(void *));
    for (int i = 0; i < n; i++) {
        int rc = regex_score_one(rx, &out[i], &items[i], md);
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            reward_result_mask(&out[i], REWARD_ERROR, "pcre2 match failed: %s", (const char *)msg);
        }
    }
    pcre2_match_data_free(md);
    return PT_OK;
}

static const reward_vtable REGEX_VTABLE = {regex_score_batch, regex_free};

static pt_status regex_parse_options(regex_reward *rx, uint32_t *copts, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"pattern", "mode", "flags", "hit", "miss", "max_count",
                                       "group", "which", "column", "trim", "match_limit"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, (int)(sizeof keys / sizeof keys[0]), err));
    const char *mode, *flags, *which, *column;
    PT_TRY(reward_cfg_string(&mode, cfg, "mode", "match", err));
    if (strcmp(mode, "match") == 0) rx->mode = REGEX_MATCH;
    else if (strcmp(mode, "full_match") == 0) rx->mode = REGEX_FULL_MATCH;
    else if (strcmp(mode, "count") == 0) rx->mode = REGEX_COUNT;
    else if (strcmp(mode, "capture") == 0) rx->mode = REGEX_CAPTURE;
    else PT_FAIL(err, PT_ERR_CONFIG, "mode '%s' is not one of match, full_match, count, capture", mode);
    PT_TRY(reward_cfg_number(&rx->hit, cfg, "hit", 1.0, err));
    PT_TRY(reward_cfg_number(&rx->miss, cfg, "miss", 0.0, err));
    PT_TRY(reward_cfg_int(&rx->max_count, cfg, "max_count", 0, err));
    if (rx->max_count < 0) PT_FAIL(err, PT_ERR_CONFIG, "max_count must be >= 0 (0: no cap)");
    PT_TRY(reward_cfg_string(&which, cfg, "which", "first", err));
    if (strcmp(which, "first") != 0 && strcmp(which, "last") != 0)
        PT_FAIL(err, PT_ERR_CONFIG, "which '%s' is not 'first' or 'last'", which);
    rx->last = strcmp(which, "last") == 0;
    PT_TRY(reward_cfg_bool(&rx->trim, cfg, "trim", true, err));
    PT_TRY(reward_cfg_string(&column, cfg, "column", "answer", err));
    if (strlen(column) >= sizeof rx->column) PT_FAIL(err, PT_ERR_CONFIG, "column name '%.40s...' is too long", column);
    snprintf(rx->column, sizeof rx->column, "%s", column);
    PT_TRY(reward_cfg_string(&flags, cfg, "flags", "", err));
    *copts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    for (const char *f = flags; *f; f++) {
        switch (*f) {
        case 'i': *copts |= PCRE2_CASELESS; break;
        case 'm': *copts |= PCRE2_MULTILINE; break;
        case 's': *copts |= PCRE2_DOTALL; break;
        case 'x': *copts |= PCRE2_EXTENDED; break;
        default: PT_FAIL(err, PT_ERR_CONFIG, "flag '%c' in flags \"%s\" is not one of i, m, s, x", *f, flags);
        }
    }
    return PT_OK;
}

static pt_status regex_compile(regex_reward *rx, const cJSON *cfg, uint32_t copts, pt_error *err) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cfg, "pattern");
    if (!cJSON_IsString(pat)) PT_FAIL(err, PT_ERR_CONFIG, "missing \"pattern\" (a PCRE2 regular expression string)");
    int errcode = 0;
    PCRE2_SIZE erroff = 0;
    rx->code = pcre2_compile((PCRE2_SPTR)pat->valuestring, PCRE2_ZERO_TERMINATED, copts, &errcode, &erroff, NULL);
    if (!rx->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        PT_FAIL(err, PT_ERR_CONFIG, "bad pattern at offset %zu: %s\n  %s\n  %*s^", (size_t)erroff, (const char *)msg,
                pat->valuestring, (int)erroff, "");
    }
    (void)pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    long limit;
    PT_TRY(reward_cfg_int(&limit, cfg, "match_limit", 10000000L, err));
    if (limit < 1 || limit > 4000000000L) PT_FAIL(err, PT_ERR_CONFIG, "match_limit must be in [1, 4e9]");
    rx->mctx = pcre2_match_context_create(NULL);
    PT_CHECK_ALLOC(rx->mctx, err, sizeof(void *));
    pcre2_set_match_limit(rx->mctx, (uint32_t)limit);

    rx->group = 1;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(cfg, "group");
    uint32_t ncap = 0;
    pcre2_pattern_info(rx->code, PCRE2_INFO_CAPTURECOUNT, &ncap);
    if (cJSON_IsString(g)) {
        int num = pcre2_substring_number_from_name(rx->code, (PCRE2_SPTR)g->valuestring);
        if (num < 0) PT_FAIL(err, PT_ERR_CONFIG, "the pattern has no group named '%s'", g->valuestring);
        rx->group = num;
    } else if (g && !cJSON_IsNull(g)) {
        long num;
        PT_TRY(reward_cfg_int(&num, cfg, "group", 1, err));
        if (num < 0 || num > (long)ncap)
            PT_FAIL(err, PT_ERR_CONFIG, "group %ld does not exist: the pattern has %u capture group(s)", num, ncap);
        rx->group = (int)num;
    } else if (rx->mode == REGEX_CAPTURE && ncap < 1) {
        PT_FAIL(err, PT_ERR_CONFIG, "mode capture needs a capture group in the pattern, e.g. \"answer: (\\\\d+)\"");
    }
    return PT_OK;
}

pt_status reward_regex_init(reward *self, const cJSON *cfg, pt_error *err) {
    regex_reward *rx = calloc(1, sizeof *rx);
    PT_CHECK_ALLOC(rx, err, sizeof *rx);
    uint32_t copts = 0;
    pt_status st = regex_parse_options(rx, &copts, cfg, err);
    if (st == PT_OK) st = regex_compile(rx, cfg, copts, err);
    self->impl = rx;
    if (st != PT_OK) {
        regex_free(self);
        return st;
    }
    self->vt = &REGEX_VTABLE;
    return PT_OK;
}
