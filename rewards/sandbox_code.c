/* sandbox_code.c — text helpers around a sandbox run: find the code in an answer, compare a
 * program's stdout with the expected output, and make captured bytes safe to show (UTF-8).
 *
 * Fences follow CommonMark's shape closely enough for model output: an opening line of optional
 * indentation (up to 3 spaces) and three or more backticks, then an info string whose first word
 * is the language; the block ends at a line of at least as many backticks and nothing but
 * spaces, or at the end of the text (a truncated answer keeps its partial block).
 *
 * Output comparison: trailing spaces, tabs and CRs of every line are ignored, and so are blank
 * lines before the first and after the last non-blank line; everything else must be equal
 * byte for byte (so "1 2" ≠ "1  2" and the answer cannot hide among extra lines).
 *
 * UTF-8 validation follows RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "rewards/sandbox_impl.h"

static bool tag_is(const char *tag, size_t tl, const char *name) {
    return name && strlen(name) == tl && strncasecmp(tag, name, tl) == 0;
}

static bool tag_matches(const char *tag, size_t tl, const char *language) {
    if (tag_is(tag, tl, language)) return true;
    const sandbox_language *lang = sandbox_language_find(language);
    if (!lang) return false;
    if (tag_is(tag, tl, lang->name)) return true;
    for (int a = 0; lang->aliases[a]; a++)
        if (tag_is(tag, tl, lang->aliases[a])) return true;
    return false;
}

/* If the line [p, eol) is a fence, returns its backtick count (≥ 3), else 0; *info gets the
 * info string's first word. */
static int fence_at(const char *p, const char *eol, const char **tag, size_t *tl) {
    int indent = 0;
    while (p < eol && *p == ' ' && indent < 4) p++, indent++;
    if (indent > 3) return 0;
    int ticks = 0;
    while (p < eol && *p == '`') p++, ticks++;
    if (ticks < 3) return 0;
    while (p < eol && (*p == ' ' || *p == '\t')) p++;
    const char *t = p;
    while (p < eol && *p != ' ' && *p != '\t' && *p != '{' && *p != '\r' && *p != '`') p++;
    if (memchr(p, '`', (size_t)(eol - p))) return 0; /* CommonMark: no backtick in the info */
    *tag = t;
    *tl = (size_t)(p - t);
    return ticks;
}

static bool is_closing(const char *p, const char *eol, int ticks) {
    int indent = 0;
    while (p < eol && *p == ' ' && indent < 4) p++, indent++;
    if (indent > 3) return false;
    int n = 0;
    while (p < eol && *p == '`') p++, n++;
    if (n < ticks) return false;
    while (p < eol && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    return p == eol;
}

bool sandbox_extract_code(const char **code, size_t *len, const char *text, const char *language,
                          sandbox_block which) {
    size_t n = strlen(text);
    if (which == SANDBOX_BLOCK_WHOLE) {
        *code = text;
        *len = n;
        return true;
    }
    const char *end = text + n, *p = text;
    const char *tagged = NULL, *untagged = NULL;
    size_t tagged_len = 0, untagged_len = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *tag;
        size_t tl;
        int ticks = fence_at(p, eol, &tag, &tl);
        if (!ticks) {
            p = eol < end ? eol + 1 : end;
            continue;
        }
        const char *body = eol < end ? eol + 1 : end, *q = body, *body_end = end, *next = end;
        while (q < end) {
            const char *qe = memchr(q, '\n', (size_t)(end - q));
            if (!qe) qe = end;
            if (is_closing(q, qe, ticks)) {
                body_end = q;
                next = qe < end ? qe + 1 : end;
                break;
            }
            q = qe < end ? qe + 1 : end;
        }
        bool match = tl > 0 && tag_matches(tag, tl, language);
        if (match && (which == SANDBOX_BLOCK_LAST || !tagged)) tagged = body, tagged_len = (size_t)(body_end - body);
        if (tl == 0 && (which == SANDBOX_BLOCK_LAST || !untagged))
            untagged = body, untagged_len = (size_t)(body_end - body);
        p = next;
    }
    if (tagged) {
        *code = tagged;
        *len = tagged_len;
        return true;
    }
    if (untagged) {
        *code = untagged;
        *len = untagged_len;
        return true;
    }
    return false;
}

/* The next line of [*pos, n) with trailing spaces/tabs/CRs removed; false at the end. */
static bool next_line(const char *s, size_t n, size_t *pos, const char **line, size_t *ll) {
    if (*pos >= n) return false;
    const char *p = s + *pos;
    const char *eol = memchr(p, '\n', n - *pos);
    size_t len = eol ? (size_t)(eol - p) : n - *pos;
    *pos += len + (eol ? 1 : 0);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r')) len--;
    *line = p;
    *ll = len;
    return true;
}

/* Position just past the leading blank lines. */
static size_t skip_blank_lines(const char *s, size_t n) {
    size_t pos = 0, at = 0;
    const char *l;
    size_t ll;
    while (at = pos, next_line(s, n, &pos, &l, &ll))
        if (ll > 0) return at;
    return n;
}

bool sandbox_output_matches(const char *got, size_t got_len, const char *want, size_t want_len) {
    size_t pg = skip_blank_lines(got, got_len), pw = skip_blank_lines(want, want_len);
    for (;;) {
        const char *lg = NULL, *lw = NULL;
        size_t ng = 0, nw = 0;
        bool hg = next_line(got, got_len, &pg, &lg, &ng);
        bool hw = next_line(want, want_len, &pw, &lw, &nw);
        if (!hg && !hw) return true;
        if (hg && hw) {
            if (ng != nw || memcmp(lg, lw, ng) != 0) return false;
            continue;
        }
        /* one side ended: the rest of the other must be blank */
        size_t *pp = hg ? &pg : &pw;
        const char *s = hg ? got : want;
        size_t n = hg ? got_len : want_len, l1 = hg ? ng : nw;
        if (l1 > 0) return false;
        const char *l;
        size_t ll;
        while (next_line(s, n, pp, &l, &ll))
            if (ll > 0) return false;
        return true;
    }
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t sandbox_utf8_sanitize(char *dst, size_t cap, const char *src, size_t len) {
    if (cap == 0) return 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, i = 0;
    while (i < len) {
        int k = utf8_seq(s + i, len - i);
        if (k == 0 || (k == 1 && ((s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') || s[i] == 0x7F))) {
            if (o + 1 >= cap) break;
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + (size_t)k >= cap) break;
        memcpy(dst + o, s + i, (size_t)k);
        o += (size_t)k;
        i += (size_t)k;
    }
    dst[o] = '\0';
    return o;
}
