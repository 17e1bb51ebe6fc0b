/* reward_countdown.c — the Countdown reward (TinyZero): an arithmetic expression over the given
 * numbers, each used at most once, that must equal the target.
 *
 * Params: "correct" (1.0), "well_formed" (0.1), "wrong" (0.0: no answer or malformed),
 * "numbers_column" ("numbers": a JSON array of integers), "target_column" ("target": an integer),
 * "allow_unary_minus" (false), "use_all" (false; TinyZero requires every number exactly once),
 * "exact_division" (false), "verified_trace" (false), "sound_trace" (false), "score_verdicts" (false).
 *
 * The expression is the text of the last <answer>…</answer> in the completion (no tag: "wrong").
 * Grammar (recursive descent, never eval):
 *     expr   := term  (('+' | '-' | '−') term)*
 *     term   := factor (('*' | '×' | 'x' | 'X' | '/' | '÷') factor)*
 *     factor := integer | '(' expr ')' | '-' factor   (the last only with allow_unary_minus)
 *     integer:= [0-9]+   (no sign, no decimal point; a literal is one "number used")
 * with ASCII whitespace anywhere between tokens, nesting at most 100 deep. Arithmetic is exact:
 * rationals with int64 numerator/denominator (products in 128-bit); an intermediate that
 * overflows int64, or a division by zero, makes the expression malformed. Division is rational
 * (8/3*3 = 8) unless exact_division, which makes a non-integer quotient "wrong".
 *
 * Scores: "correct" when well-formed, the literals form a sub-multiset of numbers (the whole
 * multiset when use_all) and the value equals target exactly; "well_formed" when it parses and
 * evaluates but uses a number not given, reuses one, or misses the target; "wrong" otherwise.
 * A missing or mistyped numbers/target column masks the item (a dataset problem).
 *
 * verified_trace: a correct answer scores "correct" only when the reasoning found it — the last
 * verdict line of the <think> block (a line ending in ", yes." or ", no.", as in the countdown
 * task's search traces: "7 - 3 = 4, 4 * 6 = 24, yes.") says "yes", every "a op b = v" step on it
 * is exact integer arithmetic, and its last value is the target. Otherwise the answer scores
 * "well_formed": right by luck, its reasoning unearned (an optional ", need T" step is skipped).
 *
 * sound_trace: stricter — a correct answer scores "correct" only when all of the reasoning is
 * sound: every verdict line is a chain of exact steps built from the given numbers (each operand
 * a given number or an earlier value of the same line, each used at most once), every "yes" line
 * ends at the target, and the last verdict is "yes". A right answer after a made-up step
 * ("4 * 5 = 20, 3 * 20 = 120, yes." for 60) or a step over a number that was not given scores
 * "well_formed".
 *
 * score_verdicts: scores the reasoning's verdicts instead of the answer (which is not read):
 * "correct" times the share of verdict lines whose verdict is true. A "yes" is true when its
 * line is sound (as above) and ends at the target; a "no" is true when its line's steps parse
 * and its last value is not the target (its arithmetic is not checked). No verdict line scores
 * "wrong". This pays for checking each attempt against the target and rejecting misses, not for
 * guessing: "3 * 20 = 120, yes." for 60 is a false verdict, and so is "4 * 5 = 20, 3 * 20 = 60,
 * yes.".
 */
#include "rewards/reward_countdown.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"

#define COUNTDOWN_MAX_DEPTH 100
#define COUNTDOWN_MAX_LITERALS 64

typedef struct rational {
    int64_t num, den; /* den > 0, reduced */
} rational;

typedef struct cd_parser {
    const char *s;
    size_t i, n;
    int depth;
    const countdown_rules *rules;
    int64_t literals[COUNTDOWN_MAX_LITERALS];
    int nlit;
    bool inexact_division;
    char why[128];
} cd_parser;

static bool cd_fail(cd_parser *p, const char *fmt, ...) PT_PRINTF(2, 3);
static bool cd_fail(cd_parser *p, const char *fmt, ...) {
    if (p->why[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, sizeof p->why, fmt, ap);
        va_end(ap);
    }
    return false;
}

static __int128 gcd128(__int128 a, __int128 b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    return a ? a : 1;
}

static bool rat_make(cd_parser *p, rational *out, __int128 num, __int128 den) {
    if (den == 0) return cd_fail(p, "division by zero");
    if (den < 0) num = -num, den = -den;
    __int128 g = gcd128(num, den);
    num /= g;
    den /= g;
    if (num > INT64_MAX || num < -INT64_MAX || den > INT64_MAX) return cd_fail(p, "a value overflows 64 bits");
    out->num = (int64_t)num;
    out->den = (int64_t)den;
    return true;
}

static void cd_skip(cd_parser *p) {
    while (p->i < p->n && isspace((unsigned char)p->s[p->i])) p->i++;
}

static bool cd_eat(cd_parser *p, const char *lit) {
    size_t len = strlen(lit);
    if (p->i + len > p->n || memcmp(p->s + p->i, lit, len) != 0) return false;
    p->i += len;
    return true;
}

static bool cd_expr(cd_parser *p, rational *out);

static bool cd_factor(cd_parser *p, rational *out) {
    cd_skip(p);
    if (p->i >= p->n) return cd_fail(p, "expression ends where a number was expected");
    if (++p->depth > COUNTDOWN_MAX_DEPTH) return cd_fail(p, "nested deeper than %d", COUNTDOWN_MAX_DEPTH);
    bool ok;
    if (cd_eat(p, "(")) {
        ok = cd_expr(p, out);
        cd_skip(p);
        if (ok && !cd_eat(p, ")")) ok = cd_fail(p, "missing ')' at offset %zu", p->i);
    } else if (cd_eat(p, "-") || cd_eat(p, "\xE2\x88\x92")) {
        if (!p->rules->allow_unary_minus) ok = cd_fail(p, "unary minus at offset %zu is not allowed", p->i);
        else if ((ok = cd_factor(p, out))) out->num = -out->num;
    } else if (isdigit((unsigned char)p->s[p->i])) {
        __int128 v = 0;
        ok = true;
        while (p->i < p->n && isdigit((unsigned char)p->s[p->i])) {
            v = v * 10 + (p->s[p->i++] - '0');
            if (v > INT64_MAX) ok = cd_fail(p, "number too large");
            if (!ok) break;
        }
        if (ok && p->i < p->n && p->s[p->i] == '.') ok = cd_fail(p, "only integers may be used");
        if (ok && p->nlit == COUNTDOWN_MAX_LITERALS) ok = cd_fail(p, "more than %d numbers", COUNTDOWN_MAX_LITERALS);
        if (ok) {
            p->literals[p->nlit++] = (int64_t)v;
            out->num = (int64_t)v;
            out->den = 1;
        }
    } else {
        ok = cd_fail(p, "unexpected '%c' at offset %zu", p->s[p->i], p->i);
    }
    p->depth--;
    return ok;
}

static bool cd_term(cd_parser *p, rational *out) {
    if (!cd_factor(p, out)) return false;
    for (;;) {
        cd_skip(p);
        bool mul;
        if (cd_eat(p, "*") || cd_eat(p, "\xC3\x97") || cd_eat(p, "x") || cd_eat(p, "X")) mul = true;
        else if (cd_eat(p, "/") || cd_eat(p, "\xC3\xB7")) mul = false;
        else return true;
        rational b;
        if (!cd_factor(p, &b)) return false;
        if (mul) {
            if (!rat_make(p, out, (__int128)out->num * b.num, (__int128)out->den * b.den)) return false;
        } else {
            if (b.num == 0) return cd_fail(p, "division by zero");
            if (!rat_make(p, out, (__int128)out->num * b.den, (__int128)out->den * b.num)) return false;
            if (out->den != 1) p->inexact_division = true;
        }
    }
}

static bool cd_expr(cd_parser *p, rational *out) {
    if (!cd_term(p, out)) return false;
    for (;;) {
        cd_skip(p);
        int sign;
        if (cd_eat(p, "+")) sign = 1;
        else if (cd_eat(p, "-") || cd_eat(p, "\xE2\x88\x92")) sign = -1;
        else return true;
        rational b;
        if (!cd_term(p, &b)) return false;
        if (!rat_make(p, out, (__int128)out->num * b.den + sign * (__int128)b.num * out->den,
                      (__int128)out->den * b.den))
            return false;
    }
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

countdown_verdict countdown_check(char *why, size_t why_len, const char *expr, size_t len, const int64_t *numbers,
                                  int n, int64_t target, const countdown_rules *rules) {
    static const countdown_rules defaults = {0};
    cd_parser p = {.s = expr, .n = len, .rules = rules ? rules : &defaults};
    rational v;
    bool ok = cd_expr(&p, &v);
    cd_skip(&p);
    if (ok && p.i != p.n) ok = cd_fail(&p, "unexpected '%c' at offset %zu", p.s[p.i], p.i);
    if (!ok) {
        if (why) snprintf(why, why_len, "malformed: %s", p.why);
        return COUNTDOWN_MALFORMED;
    }
    /* multiset inclusion: sort both, walk */
    int64_t given[COUNTDOWN_MAX_LITERALS];
    int ng = n < COUNTDOWN_MAX_LITERALS ? n : COUNTDOWN_MAX_LITERALS;
    memcpy(given, numbers, (size_t)ng * sizeof *given);
    qsort(given, (size_t)ng, sizeof *given, cmp_i64);
    qsort(p.literals, (size_t)p.nlit, sizeof *p.literals, cmp_i64);
    int g = 0;
    for (int k = 0; k < p.nlit; k++) {
        while (g < ng && given[g] < p.literals[k]) g++;
        if (g == ng || given[g] != p.literals[k]) {
            bool reused = false;
            for (int j = 0; j < ng; j++) reused |= given[j] == p.literals[k];
            if (why)
                snprintf(why, why_len, "%s %lld", reused ? "uses more often than given:" : "uses a number not given:",
                         (long long)p.literals[k]);
            return COUNTDOWN_WRONG;
        }
        g++;
    }
    if (p.rules->use_all && p.nlit != ng) {
        if (why) snprintf(why, why_len, "uses %d of the %d numbers; all are required", p.nlit, ng);
        return COUNTDOWN_WRONG;
    }
    if (p.rules->exact_division && p.inexact_division) {
        if (why) snprintf(why, why_len, "a division leaves a remainder");
        return COUNTDOWN_WRONG;
    }
    if (v.den != 1 || v.num != target) {
        if (why)
            snprintf(why, why_len, "evaluates to %lld/%lld, target %lld", (long long)v.num, (long long)v.den,
                     (long long)target);
        return COUNTDOWN_WRONG;
    }
    if (why) snprintf(why, why_len, "correct");
    return COUNTDOWN_CORRECT;
}

/* ---- the reward ---------------------------------------------------------------------------- */

typedef struct countdown_reward {
    double correct, well_formed, wrong;
    bool verified_trace, sound_trace, score_verdicts;
    char numbers_column[REWARD_NAME_MAX], target_column[REWARD_NAME_MAX];
    countdown_rules rules;
} countdown_reward;

/* Reads an unsigned decimal integer at *s (below 10^15), advancing *s. */
static bool trace_int(int64_t *out, const char **s, const char *end) {
    const char *p = *s;
    int64_t v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 15; p++, digits++) v = v * 10 + (*p - '0');
    if (!digits || (p < end && *p >= '0' && *p <= '9')) return false;
    *out = v;
    *s = p;
    return true;
}

static bool trace_lit(const char **s, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *s) < n || memcmp(*s, lit, n) != 0) return false;
    *s += n;
    return true;
}

/* Takes one v from the multiset pool[0..*n) (swapping the last in); false when v is not there. */
static bool pool_take(int64_t *pool, int *n, int64_t v) {
    for (int i = 0; i < *n; i++)
        if (pool[i] == v) {
            pool[i] = pool[--*n];
            return true;
        }
    return false;
}

/* The steps of a verdict line, its verdict cut off ("a op b = v, v op c = w[, need T]"): true
 * when there is at least one step and (when exact) every step's arithmetic is exact integer
 * arithmetic; *last is the last step's value. With numbers (n of them), the steps must also be
 * built from them: each operand is a given number or an earlier step's value, and each is used at
 * most once. */
static bool trace_steps(int64_t *last, const char *s, const char *end, const int64_t *numbers, int n, bool exact) {
    int64_t pool[2 * COUNTDOWN_MAX_LITERALS];
    int have = 0, steps = 0;
    for (int i = 0; numbers && i < n; i++) pool[have++] = numbers[i];
    while (s < end) {
        if (steps && !trace_lit(&s, end, ", ")) return false;
        int64_t a, b, v, want;
        if (trace_lit(&s, end, "need ")) {
            if (!trace_int(&a, &s, end)) return false;
            continue;
        }
        char op;
        if (!trace_int(&a, &s, end) || !trace_lit(&s, end, " ") || s >= end) return false;
        op = *s++;
        if (!trace_lit(&s, end, " ") || !trace_int(&b, &s, end) || !trace_lit(&s, end, " = ") ||
            !trace_int(&v, &s, end))
            return false;
        switch (op) {
        case '+': want = a + b; break;
        case '-': want = a - b; break;
        case '*':
            if (a && b > INT64_MAX / a) return false;
            want = a * b;
            break;
        case '/': want = b && a % b == 0 ? a / b : -1; break;
        default: return false;
        }
        if (exact && want != v) return false;
        if (numbers) {
            if (!pool_take(pool, &have, a) || !pool_take(pool, &have, b)) return false;
            pool[have++] = v; /* room: each step takes two and gives back one */
        }
        *last = v;
        if (++steps > COUNTDOWN_MAX_LITERALS) return false;
    }
    return steps > 0;
}

/* The next verdict line of the reasoning [*ln, to) — a line ending in ", yes." or ", no." — from
 * *ln on: its text without the verdict in [*from, *end), *yes its verdict; false when none is left. */
static bool next_verdict(const char **ln, const char *to, const char **from, const char **end, bool *yes) {
    while (*ln < to) {
        const char *nl = memchr(*ln, '\n', (size_t)(to - *ln));
        const char *t = nl ? nl : to, *line = *ln;
        *ln = nl ? nl + 1 : to;
        while (t > line && (t[-1] == ' ' || t[-1] == '\r')) t--;
        *yes = t - line >= 6 && memcmp(t - 6, ", yes.", 6) == 0;
        if (*yes || (t - line >= 5 && memcmp(t - 5, ", no.", 5) == 0)) {
            *from = line, *end = t - (*yes ? 6 : 5);
            return true;
        }
    }
    return false;
}

/* The reasoning of completion c: from after "<think>" (or the start) to "</think>" (or the end). */
static void think_span(const char *c, const char **from, const char **to) {
    const char *open = strstr(c, "<think>");
    *from = open ? open + strlen("<think>") : c;
    const char *close = strstr(*from, "</think>");
    *to = close ? close : *from + strlen(*from);
}

/* verified_trace's test (numbers NULL) or sound_trace's (see the file comment) on completion c. */
static bool trace_checked(const char *c, int64_t target, const int64_t *numbers, int n) {
    const char *ln, *to;
    think_span(c, &ln, &to);
    const char *from = NULL, *end = NULL, *last = NULL, *last_end = NULL;
    bool yes = false, last_yes = false;
    int64_t v;
    while (next_verdict(&ln, to, &from, &end, &yes)) {
        last = from, last_end = end, last_yes = yes;
        if (numbers && (!trace_steps(&v, from, end, numbers, n, true) || (yes && v != target))) return false;
    }
    if (!last || !last_yes) return false;
    if (numbers) return true; /* every line, the last "yes" too, was checked above */
    return trace_steps(&v, last, last_end, NULL, 0, true) && v == target;
}

/* score_verdicts' share of true verdicts in completion c (see the file comment); -1 when c has
 * no verdict line. */
static double verdicts_true(const char *c, int64_t target, const int64_t *numbers, int n) {
    const char *ln, *to, *from, *end;
    think_span(c, &ln, &to);
    bool yes;
    int lines = 0, right = 0;
    int64_t v;
    while (next_verdict(&ln, to, &from, &end, &yes)) {
        lines++;
        if (yes) right += trace_steps(&v, from, end, numbers, n, true) && v == target;
        else right += trace_steps(&v, from, end, NULL, 0, false) && v != target;
    }
    return lines ? (double)right / lines : -1.0;
}

static bool read_int(int64_t *out, const cJSON *v) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (d != (double)(int64_t)d || d > 9.0e15 || d < -9.0e15) return false;
    *out = (int64_t)d;
    return true;
}

static void countdown_one(const countdown_reward *cd, reward_result *out, const reward_item *item) {
    cJSON *cols = NULL;
    pt_error perr = {0};
    if (reward_item_columns(&cols, item, &perr) != PT_OK) {
        reward_result_mask(out, REWARD_MASKED, "%s", perr.msg);
        return;
    }
    const cJSON *nums = cJSON_GetObjectItemCaseSensitive(cols, cd->numbers_column);
    const cJSON *tgt = cJSON_GetObjectItemCaseSensitive(cols, cd->target_column);
    int64_t numbers[COUNTDOWN_MAX_LITERALS], target = 0;
    int n = 0;
    bool ok = cJSON_IsArray(nums) && cJSON_GetArraySize(nums) <= COUNTDOWN_MAX_LITERALS && read_int(&target, tgt);
    for (const cJSON *e = ok ? nums->child : NULL; e && ok; e = e->next) ok = read_int(&numbers[n++], e);
    if (!ok) {
        reward_result_mask(out, REWARD_MASKED,
                           "columns '%s' (an array of at most %d integers) and '%s' (an integer) are required",
                           cd->numbers_column, COUNTDOWN_MAX_LITERALS, cd->target_column);
        cJSON_Delete(cols);
        return;
    }
    cJSON_Delete(cols);
    const char *c = item->completion ? item->completion : "";
    if (cd->score_verdicts) {
        double share = verdicts_true(c, target, numbers, n);
        reward_result_ok(out, share < 0 ? cd->wrong : cd->correct * share);
        return;
    }
    const char *open = NULL;
    for (const char *q = strstr(c, "<answer>"); q; q = strstr(q + 1, "<answer>")) open = q;
    const char *close = open ? strstr(open, "</answer>") : NULL;
    if (!close) {
        reward_result_ok(out, cd->wrong);
        return;
    }
    const char *e = open + strlen("<answer>");
    countdown_verdict v = countdown_check(NULL, 0, e, (size_t)(close - e), numbers, n, target, &cd->rules);
    if (v == COUNTDOWN_CORRECT && cd->verified_trace && !trace_checked(c, target, NULL, 0)) v = COUNTDOWN_WRONG;
    if (v == COUNTDOWN_CORRECT && cd->sound_trace && !trace_checked(c, target, numbers, n)) v = COUNTDOWN_WRONG;
    reward_result_ok(out, v == COUNTDOWN_CORRECT ? cd->correct : v == COUNTDOWN_WRONG ? cd->well_formed : cd->wrong);
}

static pt_status countdown_score_batch(reward *self, reward_result *out, const reward_item *items, int n,
                                       pt_error *err) {
    for (int i = 0; i < n; i++) countdown_one(self->impl, &out[i], &items[i]);
    return PT_OK;
}

static void countdown_free(reward *self) {
    free(self->impl);
    self->impl = NULL;
}

static const reward_vtable COUNTDOWN_VTABLE = {countdown_score_batch, countdown_free};

static pt_status column_param(char *dst, size_t cap, const cJSON *cfg, const char *key, const char *def,
                              pt_error *err) {
    const char *s;
    PT_TRY(reward_cfg_string(&s, cfg, key, def, err));
    if (strlen(s) >= cap) PT_FAIL(err, PT_ERR_CONFIG, "%s '%.40s...' is too long", key, s);
    snprintf(dst, cap, "%s", s);
    return PT_OK;
}

pt_status reward_countdown_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"correct",        "well_formed",   "wrong",   "numbers_column",
                                       "target_column",  "allow_unary_minus", "use_all", "exact_division", "verified_trace",
                                       "sound_trace", "score_verdicts"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, (int)(sizeof keys / sizeof keys[0]), err));
    countdown_reward cd = {0};
    PT_TRY(reward_cfg_number(&cd.correct, cfg, "correct", 1.0, err));
    PT_TRY(reward_cfg_number(&cd.well_formed, cfg, "well_formed", 0.1, err));
    PT_TRY(reward_cfg_number(&cd.wrong, cfg, "wrong", 0.0, err));
    PT_TRY(column_param(cd.numbers_column, sizeof cd.numbers_column, cfg, "numbers_column", "numbers", err));
    PT_TRY(column_param(cd.target_column, sizeof cd.target_column, cfg, "target_column", "target", err));
    PT_TRY(reward_cfg_bool(&cd.rules.allow_unary_minus, cfg, "allow_unary_minus", false, err));
    PT_TRY(reward_cfg_bool(&cd.rules.use_all, cfg, "use_all", false, err));
    PT_TRY(reward_cfg_bool(&cd.rules.exact_division, cfg, "exact_division", false, err));
    PT_TRY(reward_cfg_bool(&cd.verified_trace, cfg, "verified_trace", false, err));
    PT_TRY(reward_cfg_bool(&cd.sound_trace, cfg, "sound_trace", false, err));
    PT_TRY(reward_cfg_bool(&cd.score_verdicts, cfg, "score_verdicts", false, err));
    if (cd.score_verdicts && (cd.verified_trace || cd.sound_trace))
        PT_FAIL(err, PT_ERR_CONFIG, "score_verdicts scores the reasoning, not the answer: it does not combine with "
                                    "verified_trace or sound_trace");
    countdown_reward *impl = malloc(sizeof *impl);
    PT_CHECK_ALLOC(impl, err, sizeof *impl);
    *impl = cd;
    self->impl = impl;
    self->vt = &COUNTDOWN_VTABLE;
    return PT_OK;
}
