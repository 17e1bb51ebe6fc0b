/* config.c — schema-checked run configuration from a JSON file and `--key value` arguments.
 *
 * cJSON parses; this file adds what a user needs when the text is wrong. On a parse failure
 * cJSON hands back the byte where it gave up; a small tokenizer re-reads the text up to that byte
 * to name the cause (missing ',' or ':', trailing ',', unterminated string, unclosed bracket,
 * bare word) and to move the reported position to where the fix goes (a missing ',' belongs
 * after the previous value, not before the next key). On success a scanner that trusts the
 * validated text walks the top-level members in the same order as cJSON's child list, giving
 * each key its line and each value its exact source text (integers are read from that text, so
 * int64 values beyond 2^53 stay exact). Lines are 1-based; columns are 1-based in characters
 * (UTF-8 code points), as editors count them.
 *
 * Invariants: every entry's def is valid for its type; val is NULL (not given) or valid; a load
 * stages all of its changes and commits them only when every one is valid.
 */
#include "core/config.h"

#include "core/utf8.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_ORIGIN_LEN 192
#define CONFIG_FILE_MAX ((size_t)16 << 20) /* a config file larger than this is a mistake */
#define CONFIG_SHOW_MAX 48                 /* longest value or excerpt quoted in a message */

struct config_entry {
    const config_key *key;
    cJSON *def;      /* parsed default (owned) */
    int64_t def_int; /* exact default of a CONFIG_INT key */
    cJSON *val;      /* given value (owned), NULL when only the default applies */
    int64_t val_int; /* exact value of a CONFIG_INT key */
    char origin[CONFIG_ORIGIN_LEN];
};

/* One staged assignment of a load, committed only when the whole load is valid. */
typedef struct config_change {
    size_t entry;
    cJSON *val;
    int64_t val_int;
    char origin[CONFIG_ORIGIN_LEN];
} config_change;

static bool entry_nullable(const struct config_entry *e) { return cJSON_IsNull(e->def); }

static const char *type_expect(config_type t) {
    switch (t) {
    case CONFIG_INT: return "an integer";
    case CONFIG_FLOAT: return "a number";
    case CONFIG_BOOL: return "a boolean (true or false)";
    case CONFIG_STRING: return "a string";
    case CONFIG_JSON: return "a JSON value";
    }
    return "?";
}

static const char *type_label(config_type t) {
    switch (t) {
    case CONFIG_INT: return "INT";
    case CONFIG_FLOAT: return "FLOAT";
    case CONFIG_BOOL: return "BOOL";
    case CONFIG_STRING: return "STRING";
    case CONFIG_JSON: return "JSON";
    }
    return "?";
}

/* ---- text positions and excerpts ------------------------------------------------------------ */

static void text_line_col(int *line, int *col, const char *text, size_t pos) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int text_line(const char *text, size_t pos) {
    int line, col;
    text_line_col(&line, &col, text, pos);
    return line;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Copies src[0, n) into dst as one printable line: control characters become spaces, and the
 * copy stops at a UTF-8 boundary, adding "..." when it was cut. */
static void show_text(char *dst, size_t cap, const char *src, size_t n, size_t max_bytes) {
    size_t keep = n < max_bytes ? n : max_bytes;
    while (keep > 0 && keep < n && ((unsigned char)src[keep] & 0xC0) == 0x80) keep--;
    size_t o = 0;
    for (size_t i = 0; i < keep && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[o++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    if (keep < n)
        for (int k = 0; k < 3 && o + 1 < cap; k++) dst[o++] = '.';
    dst[o] = '\0';
}

/* The part of the line around pos (or of the nearest non-blank line above), trimmed. */
static void text_excerpt(char *dst, size_t cap, const char *text, size_t len, size_t pos) {
    if (pos > len) pos = len;
    size_t ls = pos, le = pos;
    for (;;) {
        while (ls > 0 && text[ls - 1] != '\n') ls--;
        le = ls;
        while (le < len && text[le] != '\n') le++;
        size_t a = ls;
        while (a < le && is_space((unsigned char)text[a])) a++;
        if (a < le || ls == 0) break;
        ls--; /* blank line: look at the one above */
        if (pos > ls) pos = ls;
    }
    size_t content = ls; /* first non-blank character of the line */
    while (content < le && is_space((unsigned char)text[content])) content++;
    size_t start = content;
    if (pos > start + 24) start = pos - 24;
    while (start > content && ((unsigned char)text[start] & 0xC0) == 0x80) start--;
    size_t end = le;
    while (end > start && is_space((unsigned char)text[end - 1])) end--;
    char body[160];
    show_text(body, sizeof body, text + start, end - start, 56);
    snprintf(dst, cap, "%s%s", start > content ? "..." : "", body);
}

/* ---- why a JSON text failed to parse -------------------------------------------------------- */

typedef enum tok_kind { TOK_NONE, TOK_PUNCT, TOK_STRING, TOK_WORD } tok_kind;

typedef struct json_tok {
    tok_kind kind;
    char c;            /* the punctuation character */
    size_t start, end; /* [start, end) in the text */
    bool multiline;    /* a string with a raw line break: its closing quote is probably missing */
} json_tok;

#define DIAG_DEPTH 64

static bool tok_ends_value(const json_tok *t) {
    return t->kind == TOK_STRING || t->kind == TOK_WORD ||
           (t->kind == TOK_PUNCT && (t->c == '}' || t->c == ']'));
}

static bool tok_is(const json_tok *t, char c) { return t->kind == TOK_PUNCT && t->c == c; }

static bool starts_value(unsigned char c) {
    return c == '"' || c == '{' || c == '[' || c == '-' || isalnum(c);
}

/* Inside the string opened at `open`: the first line break, bad escape or the end of input. */
static void diagnose_string(size_t *where, char *why, size_t cap, const char *text, size_t len, size_t open) {
    for (size_t j = open + 1; j < len; j++) {
        char c = text[j];
        if (c == '\n' || c == '\r') break;
        if (c == '"') { /* closed: something else in it is wrong */
            *where = open;
            snprintf(why, cap, "invalid string (check its \\u escapes: a lone surrogate is not allowed)");
            return;
        }
        if (c == '\\') {
            char e = j + 1 < len ? text[j + 1] : '\0';
            if (e && strchr("\"\\/bfnrt", e)) {
                j++;
                continue;
            }
            if (e == 'u') {
                size_t k = 0;
                while (k < 4 && j + 2 + k < len && isxdigit((unsigned char)text[j + 2 + k])) k++;
                if (k == 4) {
                    j += 5;
                    continue;
                }
                *where = j;
                snprintf(why, cap, "'\\u' must be followed by 4 hex digits");
                return;
            }
            *where = j;
            if (e == '\0' || e == '\n' || e == '\r')
                snprintf(why, cap, "unterminated string (a '\\' at the end of the line)");
            else
                snprintf(why, cap, "invalid escape '\\%c' in string (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)", e);
            return;
        }
    }
    *where = open;
    snprintf(why, cap, "unterminated string (no closing '\"' on this line)");
}

/* Given cJSON's failure offset, find the cause: *where = the byte to report, why = the reason. */
static void json_diagnose(size_t *where, char *why, size_t cap, const char *text, size_t len, size_t fail) {
    json_tok prev1 = {0}, prev2 = {0};
    char open_c[DIAG_DEPTH];
    size_t open_at[DIAG_DEPTH];
    int depth = 0;
    if (fail > len) fail = len;
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < fail) {
        unsigned char c = (unsigned char)text[i];
        json_tok t = {TOK_PUNCT, (char)c, i, i + 1, false};
        if (c <= ' ') {
            i++;
            continue;
        } else if (c == '"') {
            size_t j = i + 1;
            while (j < len && text[j] != '"') {
                if (text[j] == '\n') t.multiline = true;
                j += text[j] == '\\' ? 2 : 1;
            }
            if (j >= fail || j >= len) { /* cJSON gave up inside this string */
                diagnose_string(where, why, cap, text, len, i);
                return;
            }
            t.kind = TOK_STRING;
            t.end = j + 1;
        } else if (c == '{' || c == '[') {
            if (depth < DIAG_DEPTH) {
                open_c[depth] = (char)c;
                open_at[depth] = i;
            }
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c != ',' && c != ':') {
            size_t j = i;
            while (j < len && (unsigned char)text[j] > ' ' && !strchr(",:{}[]\"", text[j])) j++;
            if (j > fail) break; /* cJSON gave up inside this word: judged below */
            t.kind = TOK_WORD;
            t.end = j > i ? j : i + 1; /* always advance */
        }
        prev2 = prev1;
        prev1 = t;
        i = t.end;
    }
    size_t q = i; /* the first token at or after the failure */
    while (q < len && (unsigned char)text[q] <= ' ') q++;
    unsigned char cur = q < len ? (unsigned char)text[q] : 0;
    bool in_object = depth > 0 && depth <= DIAG_DEPTH && open_c[depth - 1] == '{';
    bool key_slot = in_object && (tok_is(&prev1, '{') || tok_is(&prev1, ','));

    if ((tok_is(&prev1, '}') || tok_is(&prev1, ']')) && tok_is(&prev2, ',')) {
        *where = prev2.start;
        snprintf(why, cap, "trailing ',' before '%c' (JSON allows no comma after the last item)", prev1.c);
    } else if ((cur == '}' || cur == ']') && tok_is(&prev1, ',')) {
        *where = prev1.start;
        snprintf(why, cap, "trailing ',' before '%c' (JSON allows no comma after the last item)", cur);
    } else if ((prev1.kind == TOK_STRING && prev1.multiline) || (prev2.kind == TOK_STRING && prev2.multiline)) {
        *where = prev1.kind == TOK_STRING && prev1.multiline ? prev1.start : prev2.start;
        snprintf(why, cap, "unterminated string (a line break before its closing '\"')");
    } else if ((cur == '{' || cur == '[') && depth >= CJSON_NESTING_LIMIT) {
        *where = q;
        snprintf(why, cap, "nested more than %d levels deep", CJSON_NESTING_LIMIT);
    } else if (cur == 0) {
        *where = len;
        if (depth > 0 && depth <= DIAG_DEPTH) {
            int l, c;
            text_line_col(&l, &c, text, open_at[depth - 1]);
            snprintf(why, cap, "unexpected end of input: '%c' opened at %d:%d is never closed", open_c[depth - 1], l, c);
        } else {
            snprintf(why, cap, "unexpected end of input");
        }
    } else if (depth == 0 && prev1.kind != TOK_NONE) {
        *where = q;
        snprintf(why, cap, "unexpected text after the end of the top-level value");
    } else if ((tok_is(&prev1, '{') || tok_is(&prev1, '[')) && (tok_is(&prev2, '{') || tok_is(&prev2, ',')) &&
               depth >= 2 && depth <= DIAG_DEPTH && open_c[depth - 2] == '{') {
        *where = prev1.start;
        snprintf(why, cap, "expected a key in double quotes, not '%c'", prev1.c);
    } else if (in_object && cur == ':' && prev1.kind == TOK_WORD && (tok_is(&prev2, '{') || tok_is(&prev2, ','))) {
        *where = prev1.start;
        snprintf(why, cap, "keys must be in double quotes");
    } else if (starts_value(cur) && key_slot && cur != '"') {
        *where = q;
        snprintf(why, cap, "keys must be in double quotes");
    } else if (starts_value(cur) && tok_ends_value(&prev1)) {
        bool after_key = in_object && prev1.kind == TOK_STRING && (tok_is(&prev2, '{') || tok_is(&prev2, ','));
        *where = prev1.end;
        if (after_key)
            snprintf(why, cap, "missing ':' after the key");
        else
            snprintf(why, cap, "missing ',' after this value (the next item starts at line %d)", text_line(text, q));
    } else if (cur == '-' || isalnum(cur)) {
        size_t j = q;
        while (j < len && (unsigned char)text[j] > ' ' && !strchr(",:{}[]\"", text[j])) j++;
        char word[CONFIG_SHOW_MAX + 8];
        show_text(word, sizeof word, text + q, j - q, 24);
        *where = q;
        if (cur == '-' || isdigit(cur))
            snprintf(why, cap, "invalid number '%s'", word);
        else
            snprintf(why, cap, "invalid value '%s' (strings need double quotes; the literals are true, false, null)", word);
    } else if ((cur == '}' || cur == ']') && depth > 0 && depth <= DIAG_DEPTH) {
        int l, c;
        text_line_col(&l, &c, text, open_at[depth - 1]);
        *where = q;
        snprintf(why, cap, "'%c' does not match '%c' opened at %d:%d", cur, open_c[depth - 1], l, c);
    } else {
        *where = q;
        if (cur < 0x20 || cur >= 0x7f)
            snprintf(why, cap, "unexpected byte 0x%02x", cur);
        else
            snprintf(why, cap, "unexpected '%c'", cur);
    }
}

/* The error for a text that failed to parse: "<name>:L:C: invalid JSON near '...': why". With
 * one_line (a command-line value) the position is a column only. */
static pt_status json_parse_error(pt_error *err, const char *name, const char *text, size_t len, size_t fail,
                                  bool one_line) {
    size_t where = fail;
    char why[256];
    json_diagnose(&where, why, sizeof why, text, len, fail);
    int line, col;
    text_line_col(&line, &col, text, where);
    char near[200];
    text_excerpt(near, sizeof near, text, len, where);
    if (one_line)
        PT_FAIL(err, PT_ERR_CONFIG, "%s: invalid JSON at column %d near '%s': %s", name, col, near, why);
    PT_FAIL(err, PT_ERR_CONFIG, "%s:%d:%d: invalid JSON near '%s': %s", name, line, col, near, why);
}

/* ---- where each top-level member is in a valid text ----------------------------------------- */

typedef struct json_member {
    int line;           /* line of the key */
    size_t val, val_len; /* the value's source text */
} json_member;

/* Skips whitespace as cJSON does (every byte <= ' '). */
static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len && (unsigned char)s[i] <= ' ') i++;
    return i;
}

static size_t skip_string(const char *s, size_t i, size_t len) {
    for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    return i < len ? i + 1 : len;
}

static size_t skip_value(const char *s, size_t i, size_t len) {
    if (i >= len) return len;
    if (s[i] == '"') return skip_string(s, i, len);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, i, len);
                continue;
            }
            if (c == '{' || c == '[') depth++;
            if (c == '}' || c == ']') depth--;
            i++;
            if (depth == 0) break;
        }
        return i;
    }
    while (i < len && (unsigned char)s[i] > ' ' && !strchr(",}]", s[i])) i++;
    return i;
}

/* Fills m[0, n) for the members of the top-level object of a text cJSON accepted; returns how
 * many it found (the caller checks that against cJSON's count). */
static size_t scan_members(json_member *m, size_t cap, const char *s, size_t len) {
    size_t i = 0, n = 0;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) i = 3;
    i = skip_ws(s, i, len);
    if (i >= len || s[i] != '{') return 0;
    i = skip_ws(s, i + 1, len);
    while (i < len && s[i] == '"') {
        size_t key = i;
        i = skip_ws(s, skip_string(s, i, len), len);
        if (i >= len || s[i] != ':') break;
        i = skip_ws(s, i + 1, len);
        size_t val = i;
        i = skip_value(s, i, len);
        if (n < cap) m[n] = (json_member){text_line(s, key), val, i - val};
        n++;
        i = skip_ws(s, i, len);
        if (i < len && s[i] == ',') i = skip_ws(s, i + 1, len);
    }
    return n;
}

/* ---- keys: lookup and suggestions ----------------------------------------------------------- */

static bool key_name_valid(const char *k) {
    if (!k || !islower((unsigned char)k[0])) return false;
    for (const char *p = k; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') return false;
    return true;
}

static struct config_entry *find_entry(const config *cfg, const char *key) {
    for (size_t i = 0; i < cfg->n_keys; i++)
        if (strcmp(cfg->entries[i].key->key, key) == 0) return &cfg->entries[i];
    return NULL;
}

/* Optimal-string-alignment distance (Levenshtein plus adjacent transpositions); SIZE_MAX when
 * either string is too long to bother. */
static size_t edit_distance(const char *a, const char *b) {
    enum { MAXK = 64 };
    size_t na = strlen(a), nb = strlen(b);
    if (na >= MAXK || nb >= MAXK) return SIZE_MAX;
    unsigned short d[MAXK + 1][MAXK + 1]; /* every entry ≤ 64 */
    for (size_t i = 0; i <= na; i++) d[i][0] = (unsigned short)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (unsigned short)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = (size_t)d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = (size_t)d[i - 1][j] + 1, ins = (size_t)d[i][j - 1] + 1;
            size_t best = sub < del ? sub : del;
            if (ins < best) best = ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && (size_t)d[i - 2][j - 2] + 1 < best)
                best = (size_t)d[i - 2][j - 2] + 1;
            d[i][j] = (unsigned short)best;
        }
    return d[na][nb];
}

/* The closest key when it is close enough to be a typo (distance ≤ a third of its length, at
 * least 1), else NULL. `name` has '-' already turned into '_'. */
static const char *suggest_key(const config *cfg, const char *name) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < cfg->n_keys; i++) {
        const char *k = cfg->entries[i].key->key;
        size_t d = edit_distance(name, k);
        size_t limit = strlen(k) / 3 > 1 ? strlen(k) / 3 : 1;
        if (d <= limit && d < best_d) {
            best = k;
            best_d = d;
        }
    }
    return best;
}

/* ---- values: checking and converting -------------------------------------------------------- */

/* "a number 2.5", "string \"32\"", "array [1, 2]": what the user wrote, quoted from the source. */
static void describe_json(char *dst, size_t cap, const cJSON *v, const char *raw, size_t raw_len) {
    char shown[CONFIG_SHOW_MAX + 8];
    show_text(shown, sizeof shown, raw, raw_len, CONFIG_SHOW_MAX);
    if (cJSON_IsNull(v)) snprintf(dst, cap, "null");
    else if (cJSON_IsBool(v)) snprintf(dst, cap, "boolean %s", shown);
    else if (cJSON_IsNumber(v)) snprintf(dst, cap, "number %s", shown);
    else if (cJSON_IsString(v)) snprintf(dst, cap, "string %s", shown);
    else if (cJSON_IsArray(v)) snprintf(dst, cap, "array %s", shown);
    else snprintf(dst, cap, "object %s", shown);
}

/* Whether s is an optional '-' and then decimal digits only. */
static bool is_plain_integer(const char *s, size_t n) {
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    if (i == n) return false;
    for (; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* A whole number from its text: digits exactly through strtoll, other forms (1e4, 3.0) through
 * the double when that is integral. Returns 0, or 1 "not whole", 2 "out of range", 3 "not a
 * number". */
static int parse_int64(int64_t *out, const char *s, size_t n) {
    char buf[400];
    if (n == 0 || n >= sizeof buf) return n == 0 ? 3 : 2;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (is_plain_integer(buf, n)) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) return 2;
        *out = (int64_t)v;
        return 0;
    }
    char *end;
    double d = strtod(buf, &end);
    if (end == buf || *end != '\0' || is_space((unsigned char)buf[0])) return 3;
    if (!isfinite(d)) return 2;
    if (d != floor(d)) return 1;
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return 2;
    *out = (int64_t)d;
    return 0;
}

static pt_status type_error(pt_error *err, const char *where, const struct config_entry *e, const char *got,
                            const char *why) {
    PT_FAIL(err, PT_ERR_CONFIG, "%s: key '%s' expects %s%s, got %s%s", where, e->key->key, type_expect(e->key->type),
            entry_nullable(e) && e->key->type != CONFIG_JSON ? " or null" : "", got, why);
}

/* Rejects an object with the same key twice, at any depth; `path` names v for the message. */
static pt_status check_duplicates(const cJSON *v, const char *where, const char *path, pt_error *err) {
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return PT_OK;
    for (const cJSON *a = v->child; a; a = a->next) {
        if (cJSON_IsObject(v))
            for (const cJSON *b = v->child; b != a; b = b->next)
                if (strcmp(a->string, b->string) == 0)
                    PT_FAIL(err, PT_ERR_CONFIG, "%s: duplicate key '%s' inside '%s'", where, a->string, path);
        PT_TRY(check_duplicates(a, where, path, err));
    }
    return PT_OK;
}

/* A value from a JSON document: v with its source text raw; `where` is "run.json:5". */
static pt_status value_from_json(cJSON **out, int64_t *out_int, const struct config_entry *e, const cJSON *v,
                                 const char *raw, size_t raw_len, const char *where, pt_error *err) {
    char got[CONFIG_SHOW_MAX + 64];
    describe_json(got, sizeof got, v, raw, raw_len);
    *out_int = 0;
    if (cJSON_IsNull(v) && entry_nullable(e)) {
        *out = cJSON_CreateNull();
    } else {
        switch (e->key->type) {
        case CONFIG_INT: {
            if (!cJSON_IsNumber(v)) return type_error(err, where, e, got, "");
            int r = parse_int64(out_int, raw, raw_len);
            if (r == 1) return type_error(err, where, e, got, " (not a whole number)");
            if (r != 0) return type_error(err, where, e, got, " (outside the 64-bit integer range)");
            *out = cJSON_CreateNumber((double)*out_int);
            break;
        }
        case CONFIG_FLOAT:
            if (!cJSON_IsNumber(v)) return type_error(err, where, e, got, "");
            if (!isfinite(v->valuedouble)) return type_error(err, where, e, got, " (too large for a double)");
            *out = cJSON_CreateNumber(v->valuedouble);
            break;
        case CONFIG_BOOL:
            if (!cJSON_IsBool(v)) return type_error(err, where, e, got, "");
            *out = cJSON_CreateBool(cJSON_IsTrue(v));
            break;
        case CONFIG_STRING:
            if (!cJSON_IsString(v)) return type_error(err, where, e, got, "");
            *out = cJSON_CreateString(v->valuestring);
            break;
        case CONFIG_JSON:
            PT_TRY(check_duplicates(v, where, e->key->key, err));
            *out = cJSON_Duplicate(v, 1);
            break;
        }
    }
    PT_CHECK_ALLOC(*out, err, sizeof(cJSON));
    return PT_OK;
}

static bool bool_word(bool *out, const char *s) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(s, yes[i]) == 0) return *out = true, true;
        if (strcmp(s, no[i]) == 0) return *out = false, true;
    }
    return false;
}

/* A value from the command line: text as typed; `opt` is "--batch-size". */
static pt_status value_from_arg(cJSON **out, int64_t *out_int, const struct config_entry *e, const char *text,
                                const char *opt, pt_error *err) {
    char got[CONFIG_SHOW_MAX + 16], shown[CONFIG_SHOW_MAX + 8];
    show_text(shown, sizeof shown, text, strlen(text), CONFIG_SHOW_MAX);
    snprintf(got, sizeof got, "'%s'", shown);
    size_t n = strlen(text);
    *out_int = 0;
    if (utf8_valid_prefix(text, n) != n) PT_FAIL(err, PT_ERR_CONFIG, "%s: the value is not valid UTF-8", opt);
    if (strcmp(text, "null") == 0 && entry_nullable(e) && e->key->type != CONFIG_JSON) {
        *out = cJSON_CreateNull();
    } else {
        switch (e->key->type) {
        case CONFIG_INT: {
            int r = parse_int64(out_int, text, n);
            if (r == 1) return type_error(err, opt, e, got, " (not a whole number)");
            if (r == 2) return type_error(err, opt, e, got, " (outside the 64-bit integer range)");
            if (r == 3) return type_error(err, opt, e, got, "");
            *out = cJSON_CreateNumber((double)*out_int);
            break;
        }
        case CONFIG_FLOAT: {
            char *end;
            double d = strtod(text, &end);
            if (end == text || *end != '\0' || is_space((unsigned char)text[0])) return type_error(err, opt, e, got, "");
            if (!isfinite(d)) return type_error(err, opt, e, got, " (not a finite number)");
            *out = cJSON_CreateNumber(d);
            break;
        }
        case CONFIG_BOOL: {
            bool b;
            if (!bool_word(&b, text)) return type_error(err, opt, e, got, " (true/false, yes/no, on/off or 1/0)");
            *out = cJSON_CreateBool(b);
            break;
        }
        case CONFIG_STRING: *out = cJSON_CreateString(text); break;
        case CONFIG_JSON: {
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithOpts(text, &end, 1);
            if (!v) {
                pt_status st = json_parse_error(err, opt, text, n, end ? (size_t)(end - text) : n, true);
                bool bare = n > 0 && !strpbrk(text, "\"{}[],:");
                if (bare) error_append(err, " (a string value needs quotes: --%s '\"%s\"')", opt + 2, shown);
                return st;
            }
            pt_status st = check_duplicates(v, opt, e->key->key, err);
            if (st != PT_OK) {
                cJSON_Delete(v);
                return st;
            }
            *out = v;
            break;
        }
        }
    }
    PT_CHECK_ALLOC(*out, err, sizeof(cJSON));
    return PT_OK;
}

/* ---- building a config ---------------------------------------------------------------------- */

static void change_origin(config_change *c, const char *fmt, ...) PT_PRINTF(2, 3);
static void change_origin(config_change *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->origin, sizeof c->origin, fmt, ap);
    va_end(ap);
}

static void changes_commit(config *cfg, config_change *ch, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct config_entry *e = &cfg->entries[ch[i].entry];
        cJSON_Delete(e->val);
        e->val = ch[i].val;
        e->val_int = ch[i].val_int;
        memcpy(e->origin, ch[i].origin, sizeof e->origin);
        ch[i].val = NULL;
    }
}

static void changes_free(config_change *ch, size_t n) {
    for (size_t i = 0; ch && i < n; i++) cJSON_Delete(ch[i].val);
    free(ch);
}

void config_free(config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; cfg->entries && i < cfg->n_keys; i++) {
        cJSON_Delete(cfg->entries[i].def);
        cJSON_Delete(cfg->entries[i].val);
    }
    free(cfg->entries);
    cfg->entries = NULL;
    cfg->n_keys = 0;
}

/* Parses and checks one schema default into e->def / e->def_int. */
static pt_status entry_set_default(struct config_entry *e, pt_error *err) {
    const char *text = e->key->def ? e->key->def : "null";
    const char *end = NULL;
    cJSON *parsed = cJSON_ParseWithOpts(text, &end, 1);
    if (!parsed)
        PT_FAIL(err, PT_ERR_INTERNAL, "config schema: the default of key '%s' is not valid JSON: '%s'", e->key->key, text);
    e->def = parsed; /* nullable when it parsed to null: value_from_json asks */
    size_t a = 0, b = strlen(text);
    while (a < b && is_space((unsigned char)text[a])) a++;
    while (b > a && is_space((unsigned char)text[b - 1])) b--;
    cJSON *checked = NULL;
    pt_status st = value_from_json(&checked, &e->def_int, e, parsed, text + a, b - a, "config schema", err);
    e->def = NULL;
    cJSON_Delete(parsed);
    if (st != PT_OK) {
        err->status = PT_ERR_INTERNAL;
        return error_prefix(err, "a bug in the key table");
    }
    e->def = checked;
    return PT_OK;
}

pt_status config_init(config *cfg, const config_schema *schemas, size_t n_schemas, pt_error *err) {
    cfg->entries = NULL;
    cfg->n_keys = 0;
    size_t n = 0;
    for (size_t s = 0; s < n_schemas; s++) n += schemas[s].count;
    struct config_entry *entries = calloc(n ? n : 1, sizeof *entries);
    PT_CHECK_ALLOC(entries, err, (n ? n : 1) * sizeof *entries);
    cfg->entries = entries;
    for (size_t s = 0; s < n_schemas; s++)
        for (size_t k = 0; k < schemas[s].count; k++) {
            const config_key *key = &schemas[s].keys[k];
            if (!key_name_valid(key->key)) {
                config_free(cfg);
                PT_FAIL(err, PT_ERR_INTERNAL,
                        "config schema: key name '%s' must be lower-case letters, digits and '_', starting with a letter",
                        key->key ? key->key : "(null)");
            }
            if (find_entry(cfg, key->key)) {
                config_free(cfg);
                PT_FAIL(err, PT_ERR_INTERNAL, "config schema: key '%s' is declared twice", key->key);
            }
            struct config_entry *e = &entries[cfg->n_keys];
            e->key = key;
            snprintf(e->origin, sizeof e->origin, "default");
            pt_status st = entry_set_default(e, err);
            if (st != PT_OK) {
                config_free(cfg);
                return st;
            }
            cfg->n_keys++;
        }
    return PT_OK;
}

/* The message for a key that is not in the schema. `shown` is the key as the user wrote it
 * (quoted in the message), `name` the same with '-' turned into '_'. */
static pt_status unknown_key(pt_error *err, const config *cfg, const char *where, const char *shown,
                             const char *name, bool cli, bool dashes) {
    const char *sug = suggest_key(cfg, name);
    if (!sug) PT_FAIL(err, PT_ERR_CONFIG, "%s: unknown key '%s' (--help lists the known keys)", where, shown);
    if (!cli) PT_FAIL(err, PT_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?)", where, shown, sug);
    char opt[160];
    snprintf(opt, sizeof opt, "%s", sug);
    for (char *p = opt; dashes && *p; p++)
        if (*p == '_') *p = '-';
    PT_FAIL(err, PT_ERR_CONFIG, "%s: unknown key '%s' (did you mean '%s'?); use --%s", where, shown, sug, opt);
}

pt_status config_load_string(config *cfg, const char *text, const char *name, pt_error *err) {
    size_t len = strlen(text);
    size_t bad = utf8_valid_prefix(text, len);
    if (bad < len) {
        int l, c;
        text_line_col(&l, &c, text, bad);
        PT_FAIL(err, PT_ERR_CONFIG, "%s:%d:%d: not valid UTF-8 (byte 0x%02x); save the file as UTF-8", name, l, c,
                (unsigned char)text[bad]);
    }
    size_t first = (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
    while (first < len && is_space((unsigned char)text[first])) first++;
    if (first == len)
        PT_FAIL(err, PT_ERR_CONFIG, "%s:1:1: invalid JSON: the file is empty; expected an object such as "
                "{\"learning_rate\": 1e-5}", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) return json_parse_error(err, name, text, len, end ? (size_t)(end - text) : len, false);
    pt_status st = PT_OK;
    json_member *m = NULL;
    config_change *ch = NULL;
    size_t n = 0, nch = 0;
    if (!cJSON_IsObject(root)) {
        char got[CONFIG_SHOW_MAX + 64];
        describe_json(got, sizeof got, root, text + first, len - first);
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "%s: the top level must be a JSON object ({\"key\": value, ...}), got %s", name, got);
        goto done;
    }
    for (const cJSON *c = root->child; c; c = c->next) n++;
    m = calloc(n ? n : 1, sizeof *m);
    ch = calloc(n ? n : 1, sizeof *ch);
    if (!m || !ch) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading %s", name);
        goto done;
    }
    if (scan_members(m, n, text, len) != n) {
        st = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "%s: the member scanner disagrees with cJSON", name);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *c = root->child; c; c = c->next, i++) {
        char where[CONFIG_ORIGIN_LEN], shown[CONFIG_SHOW_MAX + 8];
        snprintf(where, sizeof where, "%s:%d", name, m[i].line);
        show_text(shown, sizeof shown, c->string, strlen(c->string), CONFIG_SHOW_MAX);
        size_t j = 0;
        for (const cJSON *b = root->child; b != c; b = b->next, j++)
            if (strcmp(b->string, c->string) == 0) {
                st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                               "%s: duplicate key '%s' (already set on line %d; keep one)", where, shown, m[j].line);
                goto done;
            }
        const struct config_entry *e = find_entry(cfg, c->string);
        if (!e) {
            char norm[CONFIG_SHOW_MAX + 8];
            snprintf(norm, sizeof norm, "%s", shown);
            for (char *p = norm; *p; p++)
                if (*p == '-') *p = '_';
            st = unknown_key(err, cfg, where, shown, norm, false, false);
            goto done;
        }
        st = value_from_json(&ch[nch].val, &ch[nch].val_int, e, c, text + m[i].val, m[i].val_len, where, err);
        if (st != PT_OK) goto done;
        ch[nch].entry = (size_t)(e - cfg->entries);
        change_origin(&ch[nch], "%s", where);
        nch++;
    }
    changes_commit(cfg, ch, nch);
done:
    changes_free(ch, nch);
    free(m);
    cJSON_Delete(root);
    return st;
}

pt_status config_load_file(config *cfg, const char *path, pt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) PT_FAIL(err, PT_ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    pt_status st = PT_OK;
    bool too_big = false;
    while (buf) {
        if (n + 1 >= cap) {
            too_big = cap > CONFIG_FILE_MAX;
            char *grown = too_big ? NULL : realloc(buf, cap * 2);
            if (!grown) break;
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || (n + 1 >= cap && !too_big)) {
        free(buf);
        return error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading '%s'", path);
    }
    buf[n] = '\0';
    if (read_errno) {
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot read config file '%s': %s", path, strerror(read_errno));
    } else if (too_big) {
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "%s: larger than %zu MiB; is this really a config file?",
                       path, CONFIG_FILE_MAX >> 20);
    } else if (strlen(buf) != n) {
        int l, c;
        text_line_col(&l, &c, buf, strlen(buf));
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "%s:%d:%d: the file contains a NUL byte (is it a binary file?)",
                       path, l, c);
    } else {
        st = config_load_string(cfg, buf, path, err);
    }
    free(buf);
    return st;
}

/* One option of argv starting at argv[*i] (advancing *i past a separate value) into *c. */
static pt_status parse_option(config_change *c, const config *cfg, int argc, char **argv, int *i, pt_error *err) {
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0) {
        if (a[0] == '-' && a[1] && !isdigit((unsigned char)a[1]) && a[1] != '.')
            PT_FAIL(err, PT_ERR_CONFIG, "'%s': options take two dashes (--key value)", a);
        PT_FAIL(err, PT_ERR_CONFIG,
                "unexpected argument '%s': options are --key value pairs (is it a value without its --key, or a "
                "value with spaces that needs quotes?)", a);
    }
    const char *eq = strchr(a, '=');
    size_t nlen = eq ? (size_t)(eq - a) - 2 : strlen(a) - 2;
    if (nlen == 0 || a[2] == '-' || a[2] == '=')
        PT_FAIL(err, PT_ERR_CONFIG, "malformed option '%s' (expected --key value or --key=value)", a);
    char opt[CONFIG_ORIGIN_LEN], name[CONFIG_ORIGIN_LEN];
    if (nlen + 3 > sizeof opt) PT_FAIL(err, PT_ERR_CONFIG, "'%.40s...': unknown key (far too long)", a);
    snprintf(opt, sizeof opt, "%.*s", (int)(nlen + 2), a);
    snprintf(name, sizeof name, "%s", opt + 2);
    bool dashes = strchr(name, '-') != NULL;
    for (char *p = name; *p; p++)
        if (*p == '-') *p = '_';
    const struct config_entry *e = find_entry(cfg, name);
    bool negated = false;
    if (!e && strncmp(name, "no_", 3) == 0 && find_entry(cfg, name + 3)) {
        e = find_entry(cfg, name + 3);
        if (e->key->type != CONFIG_BOOL)
            PT_FAIL(err, PT_ERR_CONFIG, "%s: only boolean keys have a --no- form; '%s' expects %s", opt, e->key->key,
                    type_expect(e->key->type));
        if (eq) PT_FAIL(err, PT_ERR_CONFIG, "%s takes no value (write --%s=false, or just %s)", opt, opt + 5, opt);
        negated = true;
    }
    if (!e) return unknown_key(err, cfg, opt, name, name, true, dashes);
    const char *text;
    if (negated) {
        text = "false";
    } else if (eq) {
        text = eq + 1;
    } else if (e->key->type == CONFIG_BOOL) {
        bool b;
        const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
        if (next && (bool_word(&b, next) || (strcmp(next, "null") == 0 && entry_nullable(e))))
            text = argv[++*i];
        else
            text = "true";
    } else {
        if (*i + 1 >= argc)
            PT_FAIL(err, PT_ERR_CONFIG, "%s: missing value (expects %s)", opt, type_expect(e->key->type));
        const char *next = argv[*i + 1];
        if (strncmp(next, "--", 2) == 0 && isalpha((unsigned char)next[2]))
            PT_FAIL(err, PT_ERR_CONFIG,
                    "%s: missing value before '%s' (expects %s; write %s=VALUE for a value that starts with --)", opt,
                    next, type_expect(e->key->type), opt);
        text = argv[++*i];
    }
    PT_TRY(value_from_arg(&c->val, &c->val_int, e, text, opt, err));
    c->entry = (size_t)(e - cfg->entries);
    change_origin(c, "%s", opt);
    return PT_OK;
}

pt_status config_apply_args(config *cfg, int argc, char **argv, pt_error *err) {
    if (argc <= 0) return PT_OK;
    config_change *ch = calloc((size_t)argc, sizeof *ch);
    PT_CHECK_ALLOC(ch, err, (size_t)argc * sizeof *ch);
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        pt_status st = parse_option(&ch[n], cfg, argc, argv, &i, err);
        if (st != PT_OK) {
            changes_free(ch, n);
            return st;
        }
        n++;
    }
    changes_commit(cfg, ch, n);
    changes_free(ch, n);
    return PT_OK;
}

pt_status config_load_cli(config *cfg, int argc, char **argv, pt_error *err) {
    char **rest = calloc(argc > 0 ? (size_t)argc : 1, sizeof *rest);
    PT_CHECK_ALLOC(rest, err, (size_t)argc * sizeof *rest);
    const char *path = NULL;
    int n = 0;
    pt_status st = PT_OK;
    for (int i = 0; i < argc; i++) {
        const char *given = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "--config: missing file name");
                goto done;
            }
            given = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            given = argv[i] + 9;
        } else {
            rest[n++] = argv[i];
            continue;
        }
        if (path) {
            st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                           "--config given twice ('%s' and '%s'); merge them into one file", path, given);
            goto done;
        }
        path = given;
    }
    if (path) PT_TRY_GOTO(st, config_load_file(cfg, path, err), done);
    st = config_apply_args(cfg, n, rest, err);
done:
    free(rest);
    return st;
}

/* ---- reading values ------------------------------------------------------------------------- */

static _Noreturn void config_bug(const char *fn, const char *key, const char *what) {
    fprintf(stderr, "posttrain: bug: %s(\"%s\"): %s\n", fn, key ? key : "(null)", what);
    fflush(stderr);
    abort();
}

/* The entry for key, checked for the getter fn: type `want` (-1: any) and, with need_value, not
 * null. Aborts on a mismatch, which is a bug in the caller. */
static const struct config_entry *get_entry(const config *cfg, const char *key, const char *fn, int want,
                                            bool need_value) {
    const struct config_entry *e = key ? find_entry(cfg, key) : NULL;
    if (!e) config_bug(fn, key, "no such key in the schema");
    if (want >= 0 && e->key->type != (config_type)want) {
        char what[128];
        snprintf(what, sizeof what, "the key is %s, not %s", type_label(e->key->type), type_label((config_type)want));
        config_bug(fn, key, what);
    }
    if (need_value && cJSON_IsNull(e->val ? e->val : e->def))
        config_bug(fn, key, "the value is null; check config_is_null first");
    return e;
}

static const cJSON *entry_value(const struct config_entry *e) { return e->val ? e->val : e->def; }

int64_t config_int(const config *cfg, const char *key) {
    const struct config_entry *e = get_entry(cfg, key, "config_int", CONFIG_INT, true);
    return e->val ? e->val_int : e->def_int;
}

double config_float(const config *cfg, const char *key) {
    return entry_value(get_entry(cfg, key, "config_float", CONFIG_FLOAT, true))->valuedouble;
}

bool config_bool(const config *cfg, const char *key) {
    return cJSON_IsTrue(entry_value(get_entry(cfg, key, "config_bool", CONFIG_BOOL, true)));
}

const char *config_string(const config *cfg, const char *key) {
    const cJSON *v = entry_value(get_entry(cfg, key, "config_string", CONFIG_STRING, false));
    return cJSON_IsNull(v) ? NULL : v->valuestring;
}

const cJSON *config_json(const config *cfg, const char *key) {
    return entry_value(get_entry(cfg, key, "config_json", -1, false));
}

bool config_is_null(const config *cfg, const char *key) {
    return cJSON_IsNull(entry_value(get_entry(cfg, key, "config_is_null", -1, false)));
}

bool config_is_set(const config *cfg, const char *key) {
    return get_entry(cfg, key, "config_is_set", -1, false)->val != NULL;
}

const char *config_origin(const config *cfg, const char *key) {
    return get_entry(cfg, key, "config_origin", -1, false)->origin;
}

bool config_has(const config *cfg, const char *key) { return key && find_entry(cfg, key) != NULL; }

/* ---- checked getters ------------------------------------------------------------------------- */

pt_status config_bad_key(pt_error *err, const config *cfg, const char *key, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "key '%s' (from %s): %s", key, config_origin(cfg, key),
                     msg);
}

pt_status config_int_in(int64_t *out, const config *cfg, const char *key, int64_t lo, int64_t hi, pt_error *err) {
    int64_t v = config_int(cfg, key);
    if (v < lo || v > hi)
        return config_bad_key(err, cfg, key, "must be in %lld..%lld, got %lld", (long long)lo, (long long)hi,
                              (long long)v);
    *out = v;
    return PT_OK;
}

pt_status config_float_in(double *out, const config *cfg, const char *key, double lo, double hi, bool hi_open,
                          pt_error *err) {
    double v = config_float(cfg, key);
    if (!(v >= lo) || (hi_open ? !(v < hi) : !(v <= hi)))
        return config_bad_key(err, cfg, key, "must be in [%g, %g%c, got %g", lo, hi, hi_open ? ')' : ']', v);
    *out = v;
    return PT_OK;
}

pt_status config_required(const char **out, const config *cfg, const char *key, pt_error *err) {
    const char *v = config_string(cfg, key);
    if (!v || !*v) PT_FAIL(err, PT_ERR_CONFIG, "--%s is required (or \"%s\" in the config file)", key, key);
    *out = v;
    return PT_OK;
}

pt_status config_keyed(pt_status st, pt_error *err, const config *cfg, const char *key) {
    if (st != PT_OK) error_prefix(err, "key '%s' (from %s)", key, config_origin(cfg, key));
    return st;
}

/* ---- saving and hashing --------------------------------------------------------------------- */

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Every key in schema order; integers as exact raw text (cJSON would print them as doubles). */
static cJSON *resolved_object(const config *cfg) {
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; obj && i < cfg->n_keys; i++) {
        const struct config_entry *e = &cfg->entries[i];
        const cJSON *v = entry_value(e);
        cJSON *item;
        if (e->key->type == CONFIG_INT && !cJSON_IsNull(v)) {
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)(e->val ? e->val_int : e->def_int));
            item = cJSON_CreateRaw(num);
        } else {
            item = cJSON_Duplicate(v, 1);
        }
        if (!item || !cJSON_AddItemToObject(obj, e->key->key, item)) {
            cJSON_Delete(item);
            cJSON_Delete(obj);
            return NULL;
        }
    }
    return obj;
}

pt_status config_to_json(char **json, uint64_t *hash, const config *cfg, pt_error *err) {
    cJSON *obj = resolved_object(cfg);
    PT_CHECK_ALLOC(obj, err, cfg->n_keys * sizeof(cJSON));
    char *pretty = json ? cJSON_Print(obj) : NULL;
    char *flat = hash ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    char *copy = pretty ? strdup(pretty) : NULL;
    if (flat) *hash = fnv1a64(flat);
    bool ok = (!json || copy) && (!hash || flat);
    cJSON_free(pretty);
    cJSON_free(flat);
    if (!ok) {
        free(copy);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory printing the config");
    }
    if (json) *json = copy;
    return PT_OK;
}

pt_status config_hash_except(uint64_t *hash, const config *cfg, const char *const *skip, size_t n_skip,
                             const char *const *skip_at_default, size_t n_skip_at_default, pt_error *err) {
    /* Through the printed JSON and back, as the hash was first defined: checkpoints store it. */
    char *json = NULL;
    PT_TRY(config_to_json(&json, NULL, cfg, err));
    cJSON *root = cJSON_Parse(json);
    free(json);
    PT_CHECK_ALLOC(root, err, 0);
    for (size_t i = 0; i < n_skip; i++) cJSON_DeleteItemFromObjectCaseSensitive(root, skip[i]);
    for (size_t i = 0; i < n_skip_at_default; i++) {
        const struct config_entry *e = find_entry(cfg, skip_at_default[i]);
        if (e && cJSON_Compare(entry_value(e), e->def, true))
            cJSON_DeleteItemFromObjectCaseSensitive(root, skip_at_default[i]);
    }
    char *flat = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    PT_CHECK_ALLOC(flat, err, 0);
    *hash = fnv1a64(flat);
    cJSON_free(flat);
    return PT_OK;
}

/* ---- help ----------------------------------------------------------------------------------- */

/* Writes text word-wrapped at `width` columns, each line indented by `indent` spaces. */
static void print_wrapped(FILE *out, const char *text, int indent, int width) {
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        int col = indent;
        fprintf(out, "%*s", indent, "");
        bool first = true;
        while (*p) {
            size_t w = strcspn(p, " \n");
            if (!first && col + 1 + (int)w > width) break;
            fprintf(out, "%s%.*s", first ? "" : " ", (int)w, p);
            col += (first ? 0 : 1) + (int)w;
            first = false;
            p += w;
            while (*p == ' ') p++;
            if (*p == '\n') {
                p++;
                break;
            }
        }
        fputc('\n', out);
    }
}

void config_print_help(FILE *out, const config_schema *schemas, size_t n_schemas) {
    fprintf(out, "Keys (in the JSON config file as written with '_'; on the command line as --key value,\n"
                 "with '-' or '_'; the command line wins over the file):\n");
    for (size_t s = 0; s < n_schemas; s++)
        for (size_t k = 0; k < schemas[s].count; k++) {
            const config_key *key = &schemas[s].keys[k];
            char opt[CONFIG_ORIGIN_LEN];
            snprintf(opt, sizeof opt, "%s", key->key);
            for (char *p = opt; *p; p++)
                if (*p == '_') *p = '-';
            const char *def = key->def ? key->def : "null";
            bool nullable = strcmp(def, "null") == 0 && key->type != CONFIG_JSON;
            if (key->type == CONFIG_BOOL)
                fprintf(out, "\n  --[no-]%s%s (default: %s)\n", opt, nullable ? " (or null)" : "", def);
            else
                fprintf(out, "\n  --%s %s%s (default: %s)\n", opt, type_label(key->type), nullable ? " or null" : "", def);
            if (key->help && *key->help) print_wrapped(out, key->help, 6, 78);
        }
}
