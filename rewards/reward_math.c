/* reward_math.c — final-answer correctness for math problems, compared by value.
 *
 * Params: "column" (default "answer"), "hit" (1), "miss" (0).
 *
 * Extraction from the completion, first that applies:
 *   1. the last \boxed{...} (braces nested to any depth; an unclosed one is skipped);
 *   2. the last <answer>...</answer>; when its text does not read as one value (rules below) and
 *      contains no LaTeX command (no '\'), its last number is used instead ("The answer is 42.");
 *   3. the last number anywhere in the completion (same token rules as below).
 * An answer that cannot be extracted or read scores "miss" (it is the policy's fault).
 *
 * The reference: the column as text (a JSON number is printed exactly); when it contains "####"
 * (GSM8K solutions) only the text after the last "####" is used. A missing column or a reference
 * that does not read as one value masks the item (REWARD_MASKED: a dataset problem).
 *
 * Reading a value (the whole text must match, after trimming whitespace):
 *   wrappers   $..$, \(..\), \[..\], \text{..}, \textbf{..}, \mathrm{..}, \mbox{..} around the
 *              whole text are removed; "{,}" is a comma; "\,", "\;", "\!", "~", "\ " are spaces;
 *              a leading single-letter assignment "x =" and a leading currency "$" or "\$" are
 *              dropped.
 *   sign       '+', '-' or U+2212 '−', then optional spaces.
 *   number     digits, with optional thousands separators in groups of exactly three
 *              ("1,234,567"; "1,23" is not a number), then optional ".digits"; or ".digits".
 *              No exponents; at most 125 digits.
 *   fraction   number/number, or \frac, \dfrac, \tfrac with {signed number} arguments (or the
 *              single-digit shorthand \frac12); a zero denominator is not a value.
 *   percent    a trailing "%" or "\%".
 *   trailing   units and a final period are ignored: after the value, any run of ASCII letters,
 *              spaces, \text{..}, \mbox{..}, \mathrm{..}, ^\circ, ^{\circ}, \circ, '°', then an
 *              optional '.', then the end. ("3 cm." reads as 3; so, knowingly, does "3x".)
 *
 * Equality: values are exact rationals with int64 numerator and denominator (decimals are
 * rationals: 0.75 = 3/4 = \frac{3}{4}), compared by cross-multiplication in 128-bit. A value
 * whose digits overflow int64 falls back to long double, and two values are then equal when
 * |a − b| ≤ 1e-12·max(|a|, |b|). Percent: when exactly one side carries '%', the sides are equal
 * when the numbers are equal or when the percent side divided by 100 equals the other (so for a
 * reference "0.5" both "50%" and "0.5" are right, and for a reference "50" so is "50%"); when
 * both carry it, the numbers are compared.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"
#include "rewards/reward_math.h"

typedef struct math_reward {
    char column[REWARD_NAME_MAX];
    double hit, miss;
} math_reward;

/* ---- rationals ---------------------------------------------------------------------------- */

static int64_t gcd64(int64_t a, int64_t b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a ? a : 1;
}

static void mval_reduce(math_value *v) {
    if (!v->exact) return;
    int64_t g = gcd64(v->num, v->den);
    v->num /= g;
    v->den /= g;
    if (v->den < 0) v->num = -v->num, v->den = -v->den;
}

/* v = v·mul / div with overflow checks (falls back to long double). */
static void mval_scale(math_value *v, __int128 mul, __int128 div) {
    v->approx = v->approx * (long double)mul / (long double)div;
    if (!v->exact) return;
    __int128 num = (__int128)v->num * mul, den = (__int128)v->den * div;
    if (den < 0) num = -num, den = -den;
    __int128 a = num < 0 ? -num : num, b = den;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    if (a > 1) num /= a, den /= a;
    if (num > INT64_MAX || num < -INT64_MAX || den > INT64_MAX || den == 0) {
        v->exact = false;
        return;
    }
    v->num = (int64_t)num;
    v->den = (int64_t)den;
}

static bool mval_div(math_value *a, const math_value *b) {
    if (b->exact ? b->num == 0 : b->approx == 0.0L) return false;
    if (a->exact && b->exact) {
        mval_scale(a, b->den, b->num);
    } else {
        a->exact = false;
        a->approx /= b->approx;
    }
    return true;
}

static bool mval_equal_plain(const math_value *a, const math_value *b) {
    if (a->exact && b->exact) return (__int128)a->num * b->den == (__int128)b->num * a->den;
    long double x = a->approx, y = b->approx;
    long double scale = fabsl(x) > fabsl(y) ? fabsl(x) : fabsl(y);
    return fabsl(x - y) <= 1e-12L * scale;
}

bool math_value_equal(const math_value *a, const math_value *b) {
    if (a->percent == b->percent) return mval_equal_plain(a, b);
    if (mval_equal_plain(a, b)) return true;
    math_value p = a->percent ? *a : *b;
    const math_value *q = a->percent ? b : a;
    mval_scale(&p, 1, 100);
    return mval_equal_plain(&p, q);
}

/* ---- reading values ----------------------------------------------------------------------- */

typedef struct cursor {
    const char *s;
    size_t i, n;
} cursor;

static bool at(const cursor *c, const char *lit) {
    size_t len = strlen(lit);
    return c->i + len <= c->n && memcmp(c->s + c->i, lit, len) == 0;
}
static bool eat(cursor *c, const char *lit) {
    if (!at(c, lit)) return false;
    c->i += strlen(lit);
    return true;
}
static bool digit_at(const cursor *c, size_t i) { return i < c->n && isdigit((unsigned char)c->s[i]); }
static void skip_spaces(cursor *c) {
    while (c->i < c->n && isspace((unsigned char)c->s[c->i])) c->i++;
}

/* Accumulates decimal digits exactly while they fit, and as text for the long double. */
typedef struct digit_acc {
    __int128 num;
    int64_t den;
    bool overflow;
    char text[128];
    size_t len;
    bool too_long; /* more digits than text holds: not read as a value */
} digit_acc;

static void acc_push(digit_acc *a, char ch, bool fractional) {
    if (!a->overflow) {
        a->num = a->num * 10 + (ch - '0');
        if (a->num > INT64_MAX) a->overflow = true;
        if (fractional) {
            if (a->den > INT64_MAX / 10) a->overflow = true;
            else a->den *= 10;
        }
    }
    if (a->len < sizeof a->text - 2) a->text[a->len++] = ch;
    else a->too_long = true;
}

/* digits[,ddd]*[.digits] | .digits */
static bool parse_unsigned(cursor *c, math_value *v) {
    size_t start = c->i;
    digit_acc a = {.num = 0, .den = 1};
    if (digit_at(c, c->i)) {
        size_t first = 0;
        for (; digit_at(c, c->i); c->i++, first++) acc_push(&a, c->s[c->i], false);
        /* thousands groups: only after a first group of 1-3 digits, exactly three per group */
        while (first <= 3 && c->i < c->n && c->s[c->i] == ',' && digit_at(c, c->i + 1) && digit_at(c, c->i + 2) &&
               digit_at(c, c->i + 3) && !digit_at(c, c->i + 4)) {
            for (size_t k = 1; k <= 3; k++) acc_push(&a, c->s[c->i + k], false);
            c->i += 4;
        }
    }
    if (c->i < c->n && c->s[c->i] == '.' && digit_at(c, c->i + 1)) {
        if (a.len < sizeof a.text - 2) a.text[a.len++] = '.';
        for (c->i++; digit_at(c, c->i); c->i++) acc_push(&a, c->s[c->i], true);
    }
    if (c->i == start || a.too_long) return false;
    a.text[a.len] = '\0';
    memset(v, 0, sizeof *v);
    v->approx = strtold(a.text, NULL);
    v->exact = !a.overflow;
    if (v->exact) {
        v->num = (int64_t)a.num;
        v->den = a.den;
        mval_reduce(v);
    }
    return true;
}

/* sign: '+', '-', U+2212 */
static int parse_sign(cursor *c) {
    if (eat(c, "+")) return 1;
    if (eat(c, "-") || eat(c, "\xE2\x88\x92")) return -1;
    return 0;
}

static void mval_negate(math_value *v) {
    v->num = -v->num;
    v->approx = -v->approx;
}

static bool parse_signed_number(cursor *c, math_value *v) {
    skip_spaces(c);
    int sign = parse_sign(c);
    skip_spaces(c);
    if (!parse_unsigned(c, v)) return false;
    if (sign < 0) mval_negate(v);
    return true;
}

static bool parse_frac_arg(cursor *c, math_value *v) {
    skip_spaces(c);
    if (eat(c, "{")) {
        if (!parse_signed_number(c, v)) return false;
        skip_spaces(c);
        return eat(c, "}");
    }
    if (!digit_at(c, c->i)) return false;
    memset(v, 0, sizeof *v);
    v->exact = true;
    v->num = c->s[c->i] - '0';
    v->den = 1;
    v->approx = (long double)v->num;
    c->i++;
    return true;
}

/* \frac-family or number[/number] */
static bool parse_core(cursor *c, math_value *v) {
    if (eat(c, "\\frac") || eat(c, "\\dfrac") || eat(c, "\\tfrac")) {
        math_value b;
        return parse_frac_arg(c, v) && parse_frac_arg(c, &b) && mval_div(v, &b);
    }
    if (!parse_unsigned(c, v)) return false;
    size_t save = c->i;
    skip_spaces(c);
    if (eat(c, "/")) {
        skip_spaces(c);
        math_value b;
        if (parse_unsigned(c, &b)) return mval_div(v, &b);
    }
    c->i = save;
    return true;
}

static bool parse_percent(cursor *c) { return eat(c, "\\%") || eat(c, "%"); }

/* sign? core percent? */
static bool parse_token(cursor *c, math_value *v, bool allow_spaces) {
    int sign = parse_sign(c);
    if (sign && allow_spaces) skip_spaces(c);
    if (!parse_core(c, v)) return false;
    if (sign < 0) mval_negate(v);
    size_t save = c->i;
    if (allow_spaces) skip_spaces(c);
    if (parse_percent(c)) v->percent = true;
    else c->i = save;
    return true;
}

static bool skip_braced(cursor *c) {
    if (!eat(c, "{")) return false;
    int depth = 1;
    while (c->i < c->n && depth > 0) {
        if (c->s[c->i] == '{') depth++;
        else if (c->s[c->i] == '}') depth--;
        c->i++;
    }
    return depth == 0;
}

/* units and an optional final period, then the end */
static bool parse_trailing(cursor *c) {
    for (;;) {
        size_t before = c->i;
        while (c->i < c->n && (isalpha((unsigned char)c->s[c->i]) || isspace((unsigned char)c->s[c->i]))) c->i++;
        if ((eat(c, "\\text") || eat(c, "\\mbox") || eat(c, "\\mathrm")) && !skip_braced(c)) return false;
        if (eat(c, "^\\circ") || eat(c, "^{\\circ}") || eat(c, "\\circ") || eat(c, "\xC2\xB0")) continue;
        if (c->i == before) break;
    }
    eat(c, ".");
    skip_spaces(c);
    return c->i == c->n;
}

/* Normalised copy of text (wrappers, LaTeX spaces, assignment and currency removed). */
static char *normalize(const char *text, size_t len) {
    char *out = malloc(len + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp(text + i, "{,}", 3) == 0) out[o++] = ',', i += 3;
        else if (i + 2 <= len && text[i] == '\\' && text[i + 1] && strchr(",;! ", text[i + 1])) out[o++] = ' ', i += 2;
        else if (text[i] == '~') out[o++] = ' ', i++;
        else out[o++] = text[i++];
    }
    out[o] = '\0';
    /* strip wrappers repeatedly */
    static const char *const pairs[][2] = {{"$", "$"}, {"\\(", "\\)"}, {"\\[", "\\]"}, {"\\text{", "}"},
                                           {"\\textbf{", "}"}, {"\\mathrm{", "}"}, {"\\mbox{", "}"}};
    for (bool changed = true; changed;) {
        changed = false;
        size_t a = 0, b = strlen(out);
        while (a < b && isspace((unsigned char)out[a])) a++;
        while (b > a && isspace((unsigned char)out[b - 1])) b--;
        memmove(out, out + a, b - a);
        out[b - a] = '\0';
        size_t n = b - a;
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            size_t l0 = strlen(pairs[p][0]), l1 = strlen(pairs[p][1]);
            if (n >= l0 + l1 && strncmp(out, pairs[p][0], l0) == 0 && strcmp(out + n - l1, pairs[p][1]) == 0) {
                if (pairs[p][1][0] == '}') { /* the closing brace must match the opening one */
                    int depth = 1;
                    size_t k = l0;
                    for (; k < n && depth > 0; k++) depth += out[k] == '{' ? 1 : out[k] == '}' ? -1 : 0;
                    if (k != n) continue;
                }
                memmove(out, out + l0, n - l0 - l1);
                out[n - l0 - l1] = '\0';
                changed = true;
                break;
            }
        }
    }
    /* "x =" and currency */
    size_t i = 0;
    if (isalpha((unsigned char)out[0])) {
        i = 1;
        while (out[i] == ' ') i++;
        if (out[i] == '=') {
            i++;
            while (out[i] == ' ') i++;
        } else {
            i = 0;
        }
    }
    if (strncmp(out + i, "\\$", 2) == 0) i += 2;
    else if (out[i] == '$') i++;
    memmove(out, out + i, strlen(out + i) + 1);
    return out;
}

bool math_value_read(math_value *v, const char *text, size_t len) {
    char *norm = normalize(text, len);
    if (!norm) return false;
    cursor c = {norm, 0, strlen(norm)};
    skip_spaces(&c);
    /* a sign may sit before the currency: "-$5" */
    bool ok = parse_token(&c, v, true) && parse_trailing(&c);
    if (!ok) {
        c.i = 0;
        skip_spaces(&c);
        int sign = parse_sign(&c);
        if (sign && (eat(&c, "\\$") || eat(&c, "$")) && parse_token(&c, v, true) && parse_trailing(&c)) {
            if (sign < 0) mval_negate(v);
            ok = true;
        }
    }
    free(norm);
    return ok;
}

bool math_value_last_number(math_value *v, const char *text, size_t len) {
    cursor c = {text, 0, len};
    bool found = false;
    while (c.i < c.n) {
        bool starts = digit_at(&c, c.i) || (c.s[c.i] == '.' && digit_at(&c, c.i + 1)) || at(&c, "\\frac") ||
                      at(&c, "\\dfrac") || at(&c, "\\tfrac");
        if (!starts) {
            c.i++;
            continue;
        }
        /* a sign right before the token counts when it is not a binary operator ("3-2") */
        size_t start = c.i;
        if (start >= 1 && (c.s[start - 1] == '-' || c.s[start - 1] == '+') &&
            (start < 2 || !isalnum((unsigned char)c.s[start - 2])))
            start -= 1;
        else if (start >= 3 && memcmp(c.s + start - 3, "\xE2\x88\x92", 3) == 0)
            start -= 3;
        cursor t = {text, start, len};
        math_value tv;
        if (parse_token(&t, &tv, false)) {
            *v = tv;
            found = true;
            c.i = t.i > c.i ? t.i : c.i + 1;
        } else {
            c.i++;
        }
    }
    return found;
}

/* ---- extraction ---------------------------------------------------------------------------- */

static const char *find_last(const char *s, const char *needle) {
    const char *last = NULL;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) last = p;
    return last;
}

/* Content of the last closed \boxed{...}; false when none. */
static bool extract_boxed(const char **start, size_t *len, const char *s) {
    const char *best = NULL;
    size_t best_len = 0;
    for (const char *p = strstr(s, "\\boxed"); p; p = strstr(p + 1, "\\boxed")) {
        const char *q = p + strlen("\\boxed");
        while (*q == ' ') q++;
        if (*q != '{') continue;
        int depth = 1;
        const char *r = q + 1;
        for (; *r && depth > 0; r++) depth += *r == '{' ? 1 : *r == '}' ? -1 : 0;
        if (depth != 0) continue;
        best = q + 1;
        best_len = (size_t)(r - 1 - (q + 1));
    }
    if (!best) return false;
    *start = best;
    *len = best_len;
    return true;
}

static bool extract_answer_tag(const char **start, size_t *len, const char *s) {
    const char *open = find_last(s, "<answer>");
    if (!open) return false;
    const char *a = open + strlen("<answer>");
    const char *close = strstr(a, "</answer>");
    if (!close) return false;
    *start = a;
    *len = (size_t)(close - a);
    return true;
}

bool math_extract_answer(math_value *v, const char *completion) {
    const char *start;
    size_t len;
    if (extract_boxed(&start, &len, completion)) return math_value_read(v, start, len);
    if (extract_answer_tag(&start, &len, completion)) {
        if (math_value_read(v, start, len)) return true;
        if (memchr(start, '\\', len)) return false;
        return math_value_last_number(v, start, len);
    }
    return math_value_last_number(v, completion, strlen(completion));
}

bool math_reference_read(math_value *v, const char *reference) {
    const char *hash = find_last(reference, "####");
    const char *s = hash ? hash + 4 : reference;
    return math_value_read(v, s, strlen(s));
}

/* ---- the reward ---------------------------------------------------------------------------- */

static pt_status math_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    const math_reward *m = self->impl;
    for (int i = 0; i < n; i++) {
        cJSON *cols = NULL;
        pt_error perr = {0};
        if (reward_item_columns(&cols, &items[i], &perr) != PT_OK) {
            reward_result_mask(&out[i], REWARD_MASKED, "%s", perr.msg);
            continue;
        }
        char buf[64];
        const char *ref = reward_column_text(buf, sizeof buf, cols, m->column);
        math_value want, got;
        if (!ref) reward_result_mask(&out[i], REWARD_MASKED, "column '%s' is missing or not a string/number", m->column);
        else if (!math_reference_read(&want, ref))
            reward_result_mask(&out[i], REWARD_MASKED, "reference answer '%.60s' (column '%s') is not a number",
                               ref, m->column);
        else
            reward_result_ok(&out[i], math_extract_answer(&got, items[i].completion ? items[i].completion : "") &&
                                              math_value_equal(&got, &want)
                                          ? m->hit
                                          : m->miss);
        cJSON_Delete(cols);
    }
    return PT_OK;
}

static void math_free(reward *self) {
    free(self->impl);
    self->impl = NULL;
}

static const reward_vtable MATH_VTABLE = {math_score_batch, math_free};

pt_status reward_math_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"column", "hit", "miss"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, 3, err));
    math_reward m = {0};
    const char *column;
    PT_TRY(reward_cfg_string(&column, cfg, "column", "answer", err));
    if (strlen(column) >= sizeof m.column) PT_FAIL(err, PT_ERR_CONFIG, "column name '%.40s...' is too long", column);
    snprintf(m.column, sizeof m.column, "%s", column);
    PT_TRY(reward_cfg_number(&m.hit, cfg, "hit", 1.0, err));
    PT_TRY(reward_cfg_number(&m.miss, cfg, "miss", 0.0, err));
    math_reward *impl = malloc(sizeof *impl);
    PT_CHECK_ALLOC(impl, err, sizeof *impl);
    *impl = m;
    self->impl = impl;
    self->vt = &MATH_VTABLE;
    return PT_OK;
}
