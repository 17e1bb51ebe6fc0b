/* test_utf8.c — strict UTF-8 validation (RFC 3629 table 3-7 boundaries), shared by the parsers. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/utf8.h"

static size_t check(const char *s) { return utf8_valid_prefix(s, strlen(s)); }

Test(utf8, accepts_well_formed_text_at_every_boundary) {
    const char *ok[] = {"", "ascii", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
                        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x98\x80"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_eq(check(ok[i]), strlen(ok[i]), "case %zu rejected at %zu", i, check(ok[i]));
}

Test(utf8, rejects_overlongs_surrogates_out_of_range_and_truncation_at_the_right_offset) {
    struct { const char *s; size_t at; } bad[] = {
        {"ab\x80", 2},               /* lone continuation byte */
        {"\xC0\xAF", 0},             /* overlong '/' */
        {"\xC1\xBF", 0},             /* overlong */
        {"x\xE0\x9F\xBF", 1},        /* overlong 3-byte */
        {"\xED\xA0\x80", 0},         /* surrogate U+D800 */
        {"\xF0\x8F\xBF\xBF", 0},     /* overlong 4-byte */
        {"\xF4\x90\x80\x80", 0},     /* above U+10FFFF */
        {"\xF5\x80\x80\x80", 0},     /* never a start byte */
        {"ok\xE6\x97", 2},           /* truncated at the end */
        {"\xC3\x28", 0},             /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(check(bad[i].s), bad[i].at, "case %zu: got %zu, want %zu", i, check(bad[i].s), bad[i].at);
}
