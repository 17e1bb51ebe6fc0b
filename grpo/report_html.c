/* report_html.c — the report's text buffer and HTML escaping (see report.h).
 *
 * Escaping covers both contexts the report writes text into: element content and double- or
 * single-quoted attribute values, so one function serves both. Invalid UTF-8 (a byte that starts
 * no well-formed sequence, per core/utf8.h) becomes U+FFFD and escaping resumes at the next byte,
 * so a truncated sequence costs one replacement character and never swallows the text after it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "grpo/report.h"

static bool buf_reserve(report_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void report_buf_append(report_buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void report_buf_puts(report_buf *b, const char *s) { report_buf_append(b, s, strlen(s)); }

void report_buf_printf(report_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void report_buf_free(report_buf *b) {
    free(b->data);
    *b = (report_buf){0};
}

void report_html_escape(report_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* bytes [i - run, i) are plain and not yet appended */
    while (i < n) {
        unsigned char c = p[i];
        const char *rep = NULL;
        char ctl[4];
        size_t k = 1;
        if (c == '&') rep = "&amp;";
        else if (c == '<') rep = "&lt;";
        else if (c == '>') rep = "&gt;";
        else if (c == '"') rep = "&quot;";
        else if (c == '\'') rep = "&#39;";
        else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
            unsigned cp = c == 0x7f ? 0x2421 : 0x2400 + c; /* U+24xx: three UTF-8 bytes */
            ctl[0] = (char)(0xE0 | (cp >> 12));
            ctl[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            ctl[2] = (char)(0x80 | (cp & 0x3F));
            ctl[3] = 0;
            rep = ctl;
        } else if (c >= 0x80) {
            k = utf8_sequence_len(p + i, n - i);
            if (k == 0) {
                rep = "\xEF\xBF\xBD"; /* U+FFFD */
                k = 1;
            }
        }
        if (rep) {
            report_buf_append(b, s + i - run, run);
            report_buf_puts(b, rep);
            run = 0;
            i += k;
        } else {
            run += k;
            i += k;
        }
    }
    report_buf_append(b, s + n - run, run);
}

void report_html_escape_str(report_buf *b, const char *s) {
    if (s) report_html_escape(b, s, strlen(s));
}
