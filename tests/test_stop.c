/* test_stop.c — rollout/stop: EOS, stop strings over the decoded text, length limit, and what
 * is kept, on hand-made decode tables (every tricky placement of a stop string), against a
 * brute-force oracle that re-decodes and re-searches the whole text after every token (random
 * token streams), and on the real BPE tokenizer fixture, where the oracle is tokenizer_decode of
 * each prefix. Everything is exact (byte offsets and counts), so there is no tolerance.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"
#include "rollout/stop.h"
#include "tests/util/check.h"

/* ------------------------------------------------------------------ helpers */

typedef struct fixture {
    token_bytes vocab;
    stop_rules rules;
} fixture;

/* A decode table from NUL-terminated token strings and rules over it. */
static void fixture_init(fixture *f, const char *const *tokens, int V, const int32_t *eos, int n_eos,
                         const char *const *stops, int n_stops, int max_len) {
    pt_error err = {0};
    cr_assert_eq(token_bytes_from_strings(&f->vocab, tokens, NULL, V, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(stop_rules_init(&f->rules, eos, n_eos, stops, NULL, n_stops, max_len, &f->vocab, &err), PT_OK, "%s",
                 err.msg);
}

static void fixture_free(fixture *f) {
    stop_rules_free(&f->rules);
    token_bytes_free(&f->vocab);
}

/* Feed ids until the completion finishes (or they run out); *steps = tokens fed. */
static stop_result feed(const stop_rules *r, const int32_t *ids, int n, int *steps) {
    stop_state s;
    stop_state_init(&s);
    stop_result res = {0};
    pt_error err = {0};
    int i = 0;
    while (i < n) {
        cr_assert_eq(stop_step(&res, &s, r, ids[i], &err), PT_OK, "%s", err.msg);
        i++;
        if (res.reason != FINISH_NONE) break;
    }
    if (steps) *steps = i;
    return res;
}

static void expect(stop_result got, finish_reason reason, size_t text_len, int n_tokens, int before, int which,
                   const char *what) {
    cr_assert_eq(got.reason, reason, "%s: reason %d, want %d", what, got.reason, reason);
    cr_assert_eq(got.text_len, text_len, "%s: text_len %zu, want %zu", what, got.text_len, text_len);
    cr_assert_eq(got.n_tokens, n_tokens, "%s: n_tokens %d, want %d", what, got.n_tokens, n_tokens);
    cr_assert_eq(got.n_tokens_before_cut, before, "%s: n_tokens_before_cut %d, want %d", what,
                 got.n_tokens_before_cut, before);
    cr_assert_eq(got.stop_string, which, "%s: stop string %d, want %d", what, got.stop_string, which);
}

/* ------------------------------------------------------------------ hand-made cases */

/* ids:                      0       1         2      3     4      5      6          7      8 */
static const char *TOKS[] = {"<eos>", "Hello", " wor", "ld", "</", "a>", "ab</a>cd", "<",  "/a",
                             /* 9    10    11   12   13      14         15          16      17 */
                             ">",   "a",  "b",  "x", "x\xC3", "\xA9!z", "\xC3\xA9!", "",     "<pad>"};
enum { NT = sizeof TOKS / sizeof TOKS[0] };

Test(stop, eos_finishes_and_is_not_text) {
    fixture f;
    int32_t eos[2] = {0, 17};
    fixture_init(&f, TOKS, NT, eos, 2, NULL, 0, 100);
    int32_t ids[] = {1, 2, 3, 0, 1};
    int steps;
    stop_result r = feed(&f.rules, ids, 5, &steps);
    expect(r, FINISH_STOP, 11, 4, 3, -1, "EOS after 'Hello world'");
    cr_assert_eq(steps, 4);
    cr_assert_eq(r.eos_id, 0);
    int32_t ids2[] = {1, 17};
    r = feed(&f.rules, ids2, 2, NULL);
    expect(r, FINISH_STOP, 5, 2, 1, -1, "second EOS id (a token with text of its own)");
    cr_assert_eq(r.eos_id, 17);
    fixture_free(&f);
}

Test(stop, stop_string_inside_one_token) {
    fixture f;
    const char *stops[] = {"</a>"};
    fixture_init(&f, TOKS, NT, NULL, 0, stops, 1, 100);
    int32_t ids[] = {1, 6, 1};
    stop_result r = feed(&f.rules, ids, 3, NULL);
    /* "Hello" + "ab</a>cd": cut after "Helloab"; the token's "cd" goes too */
    expect(r, FINISH_STOP, 7, 2, 1, 0, "inside one token");
    fixture_free(&f);
}

Test(stop, stop_string_spanning_two_and_three_tokens) {
    fixture f;
    const char *stops[] = {"</a>"};
    fixture_init(&f, TOKS, NT, NULL, 0, stops, 1, 100);
    int32_t two[] = {1, 4, 5, 1};
    expect(feed(&f.rules, two, 4, NULL), FINISH_STOP, 5, 3, 1, 0, "'</' + 'a>'");
    int32_t three[] = {1, 7, 8, 9, 1};
    expect(feed(&f.rules, three, 5, NULL), FINISH_STOP, 5, 4, 1, 0, "'<' + '/a' + '>'");
    /* an empty-text token in the middle changes nothing but the count */
    int32_t gap[] = {1, 7, 16, 8, 9};
    expect(feed(&f.rules, gap, 5, NULL), FINISH_STOP, 5, 5, 1, 0, "'<' + '' + '/a' + '>'");
    /* no stop string: runs to the end of the input */
    int32_t none[] = {1, 7, 8, 1};
    int steps;
    stop_result r = feed(&f.rules, none, 4, &steps);
    cr_assert_eq(r.reason, FINISH_NONE);
    cr_assert_eq(steps, 4);
    cr_assert_eq(r.text_len, 5 + 1 + 2 + 5);
    fixture_free(&f);
}

Test(stop, stop_string_across_a_utf8_character_split_between_tokens) {
    fixture f;
    const char *stops[] = {"\xC3\xA9!"}; /* "é!" */
    fixture_init(&f, TOKS, NT, NULL, 0, stops, 1, 100);
    /* "x\xC3" + "\xA9!z": the token boundary falls inside é */
    int32_t ids[] = {12, 13, 14, 1};
    expect(feed(&f.rules, ids, 4, NULL), FINISH_STOP, 2, 3, 1, 0, "é split across tokens");
    /* whole in one token */
    int32_t whole[] = {12, 15};
    expect(feed(&f.rules, whole, 2, NULL), FINISH_STOP, 1, 2, 1, 0, "é! in one token");
    fixture_free(&f);
    /* a stop string that is not valid UTF-8 (a lone continuation byte) is refused */
    token_bytes v;
    stop_rules rules;
    pt_error err = {0};
    cr_assert_eq(token_bytes_from_strings(&v, TOKS, NULL, NT, &err), PT_OK);
    const char *bad[] = {"ok", "\xA9!"};
    cr_assert_eq(stop_rules_init(&rules, NULL, 0, bad, NULL, 2, 10, &v, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "stop string 1") && strstr(err.msg, "UTF-8"), "%s", err.msg);
    token_bytes_free(&v);
}

Test(stop, prefix_and_suffix_stop_strings_and_list_order) {
    fixture f;
    const char *toks[] = {"x", "a", "b", "c", "abc", "xab"};
    /* "ab" completes before "abc": the earlier end wins whatever the list order */
    const char *s1[] = {"abc", "ab"}, *s2[] = {"ab", "abc"};
    int32_t ids[] = {0, 4};
    fixture_init(&f, toks, 6, NULL, 0, s1, 2, 100);
    expect(feed(&f.rules, ids, 2, NULL), FINISH_STOP, 1, 2, 1, 1, "ab before abc (list abc, ab)");
    fixture_free(&f);
    fixture_init(&f, toks, 6, NULL, 0, s2, 2, 100);
    expect(feed(&f.rules, ids, 2, NULL), FINISH_STOP, 1, 2, 1, 0, "ab before abc (list ab, abc)");
    fixture_free(&f);
    /* "b" and "ab" end at the same byte: the longer one (earlier cut) wins */
    const char *s3[] = {"b", "ab"};
    fixture_init(&f, toks, 6, NULL, 0, s3, 2, 100);
    int32_t ids3[] = {5};
    expect(feed(&f.rules, ids3, 1, NULL), FINISH_STOP, 1, 1, 0, 1, "ab over b at the same end");
    int32_t ids4[] = {0, 1, 2};
    expect(feed(&f.rules, ids4, 3, NULL), FINISH_STOP, 1, 3, 1, 1, "a | b tokens: ab over b");
    fixture_free(&f);
}

Test(stop, overlapping_partial_matches) {
    fixture f;
    const char *toks[] = {"a", "b", "aa", "ab"};
    const char *stops[] = {"aab"};
    fixture_init(&f, toks, 4, NULL, 0, stops, 1, 100);
    int32_t ids[] = {0, 0, 0, 1}; /* "aaab": a naive matcher that restarts after "aa" + "a" misses it */
    expect(feed(&f.rules, ids, 4, NULL), FINISH_STOP, 1, 4, 1, 0, "aab in a|a|a|b");
    int32_t ids2[] = {2, 3}; /* "aa" + "ab" */
    expect(feed(&f.rules, ids2, 2, NULL), FINISH_STOP, 1, 2, 0, 0, "aab in aa|ab (cut inside token 0)");
    fixture_free(&f);
}

Test(stop, length_limit_and_precedence) {
    fixture f;
    int32_t eos[1] = {0};
    const char *stops[] = {"</a>"};
    fixture_init(&f, TOKS, NT, eos, 1, stops, 1, 3);
    int32_t ids[] = {1, 2, 3, 1, 1};
    int steps;
    stop_result r = feed(&f.rules, ids, 5, &steps);
    expect(r, FINISH_LENGTH, 11, 3, 3, -1, "three tokens");
    cr_assert_eq(steps, 3);
    /* EOS or a stop string on the last allowed token is a stop, not a truncation */
    int32_t eos_last[] = {1, 2, 0};
    expect(feed(&f.rules, eos_last, 3, NULL), FINISH_STOP, 9, 3, 2, -1, "EOS as token 3 of 3");
    int32_t stop_last[] = {1, 4, 5};
    expect(feed(&f.rules, stop_last, 3, NULL), FINISH_STOP, 5, 3, 1, 0, "stop string completed by token 3 of 3");
    fixture_free(&f);
    /* 0 = no limit */
    fixture_init(&f, TOKS, NT, NULL, 0, NULL, 0, 0);
    int32_t many[200];
    for (int i = 0; i < 200; i++) many[i] = 10;
    cr_assert_eq(feed(&f.rules, many, 200, &steps).reason, FINISH_NONE);
    cr_assert_eq(steps, 200);
    fixture_free(&f);
}

Test(stop, hostile_configs_and_misuse) {
    token_bytes v;
    stop_rules r;
    pt_error err = {0};
    cr_assert_eq(token_bytes_from_strings(&v, TOKS, NULL, NT, &err), PT_OK);
    const char *empty[] = {""};
    cr_assert_eq(stop_rules_init(&r, NULL, 0, empty, NULL, 1, 10, &v, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
    char longs[STOP_STRING_MAX + 2];
    memset(longs, 'q', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    const char *too_long[] = {"fine", longs};
    cr_assert_eq(stop_rules_init(&r, NULL, 0, too_long, NULL, 2, 10, &v, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "stop string 1"), "%s", err.msg);
    cr_assert_eq(stop_rules_init(&r, NULL, 0, NULL, NULL, 0, -1, &v, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "max_completion_length"), "%s", err.msg);
    /* a NUL inside a stop string given with its length is just a byte */
    const char nul[] = {'a', 0, 'b'};
    const char *with_nul[] = {nul};
    size_t nul_len = 3;
    cr_assert_eq(stop_rules_init(&r, NULL, 0, with_nul, &nul_len, 1, 10, &v, &err), PT_OK, "%s", err.msg);
    stop_state s;
    stop_state_init(&s);
    stop_result res;
    cr_assert_eq(stop_step(&res, &s, &r, NT, &err), PT_ERR_INVALID, "id past the table");
    cr_assert_eq(stop_step(&res, &s, &r, -1, &err), PT_ERR_INVALID);
    cr_assert_eq(stop_step_bytes(&res, &s, &r, 0, "xa", 2, &err), PT_OK);
    cr_assert_eq(stop_step_bytes(&res, &s, &r, 0, "\0b", 2, &err), PT_OK);
    expect(res, FINISH_STOP, 1, 2, 0, 0, "stop string with a NUL byte");
    cr_assert_eq(stop_step(&res, &s, &r, 1, &err), PT_ERR_INVALID, "a step after the finish");
    cr_assert(strstr(err.msg, "finished"), "%s", err.msg);
    stop_rules_free(&r);
    /* stop strings but no table: stop_step refuses, stop_step_bytes works */
    const char *stops[] = {"zz"};
    cr_assert_eq(stop_rules_init(&r, NULL, 0, stops, NULL, 1, 10, NULL, &err), PT_OK);
    stop_state_init(&s);
    cr_assert_eq(stop_step(&res, &s, &r, 1, &err), PT_ERR_INVALID);
    stop_rules_free(&r);
    token_bytes_free(&v);
}

/* ------------------------------------------------------------------ brute-force oracle */

/* The earliest-ending occurrence of any stop string in text[0, n) (longest among equal ends):
 * returns its index and *start, or -1. Searches the whole text. */
static int oracle_search(const char *text, size_t n, const char *const *stops, int n_stops, size_t *start) {
    for (size_t end = 1; end <= n; end++) {
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < n_stops; k++) {
            size_t L = strlen(stops[k]);
            if (L <= end && L > best_len && memcmp(text + end - L, stops[k], L) == 0) best = k, best_len = L;
        }
        if (best >= 0) {
            *start = end - best_len;
            return best;
        }
    }
    return -1;
}

Test(stop, random_streams_match_whole_text_oracle) {
    /* A small alphabet makes partial matches, overlaps and spans frequent. */
    const char *toks[] = {"a", "b", "ab", "ba", "aab", "", "bab", "abba", "<e>", "c"};
    enum { V = 10, LEN = 40 };
    const char *stop_sets[3][3] = {{"aba", "bb", "abab"}, {"aaa", "ba", "aba"}, {"babb", "cab", "abbab"}};
    int n_sets[3] = {3, 3, 3}; /* prefixes, suffixes ("ba" of "aba") and self-overlaps */
    int32_t eos[1] = {8};
    test_rng tr;
    test_rng_seed(&tr, 99);
    int finished_by_string = 0, spans = 0;
    for (int set = 0; set < 3; set++) {
        fixture f;
        fixture_init(&f, toks, V, eos, 1, stop_sets[set], n_sets[set], LEN - 5);
        for (int trial = 0; trial < 400; trial++) {
            int32_t ids[LEN];
            for (int i = 0; i < LEN; i++) {
                ids[i] = (int32_t)(test_rng_uniform(&tr) * V);
                if (ids[i] == 8 && test_rng_uniform(&tr) < 0.8) ids[i] = 9; /* EOS now and then */
            }
            int steps;
            stop_result got = feed(&f.rules, ids, LEN, &steps);
            /* oracle: re-decode and re-search the whole text after every token */
            char text[LEN * 4 + 1];
            size_t n = 0;
            stop_result want = {FINISH_NONE, 0, 0, 0, -1, -1};
            size_t tok_end[LEN];
            for (int i = 0; i < LEN; i++) {
                want.n_tokens = i + 1;
                if (ids[i] == 8) {
                    want.reason = FINISH_STOP, want.eos_id = 8, want.text_len = n, want.n_tokens_before_cut = i;
                    break;
                }
                size_t L = strlen(toks[ids[i]]);
                memcpy(text + n, toks[ids[i]], L);
                n += L;
                tok_end[i] = n;
                size_t start;
                int k = oracle_search(text, n, stop_sets[set], n_sets[set], &start);
                if (k >= 0) {
                    want.reason = FINISH_STOP, want.stop_string = k, want.text_len = start;
                    int before = 0;
                    while (before < i && tok_end[before] <= start) before++;
                    /* tokens with no bytes right before the cut also end at or before it */
                    want.n_tokens_before_cut = before;
                    spans += start < (i > 0 ? tok_end[i - 1] : 0);
                    break;
                }
                if (i + 1 == LEN - 5) {
                    want.reason = FINISH_LENGTH, want.text_len = n, want.n_tokens_before_cut = i + 1;
                    break;
                }
            }
            if (want.reason == FINISH_NONE) want.text_len = n, want.n_tokens_before_cut = LEN;
            char what[64];
            snprintf(what, sizeof what, "set %d trial %d", set, trial);
            expect(got, want.reason, want.text_len, want.n_tokens, want.n_tokens_before_cut, want.stop_string, what);
            cr_assert_eq(steps, want.n_tokens, "%s", what);
            finished_by_string += want.stop_string >= 0;
        }
        fixture_free(&f);
    }
    cr_assert_geq(finished_by_string, 600, "the streams should hit stop strings often (%d)", finished_by_string);
    cr_assert_geq(spans, 200, "stop strings should often span token boundaries (%d)", spans);
}

Test(stop, long_completion_is_incremental) {
    /* 200k tokens of 7 bytes with a stop string at the very end: re-scanning the text each step
     * would be ~10^11 byte comparisons; the tail keeps it linear. */
    const char *toks[] = {"abcdefg", "STOP"};
    const char *stops[] = {"gST", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"};
    fixture f;
    fixture_init(&f, toks, 2, NULL, 0, stops, 2, 0);
    stop_state s;
    stop_state_init(&s);
    stop_result r;
    pt_error err = {0};
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(stop_step(&r, &s, &f.rules, 0, &err), PT_OK);
        cr_assert_eq(r.reason, FINISH_NONE);
    }
    cr_assert_eq(stop_step(&r, &s, &f.rules, 1, &err), PT_OK);
    expect(r, FINISH_STOP, (size_t)N * 7 - 1, N + 1, N - 1, 0, "stop after 1.4 MB");
    fixture_free(&f);
}

/* ------------------------------------------------------------------ the real tokenizer */

Test(stop, real_tokenizer_prefix_decode_oracle) {
    char path[1024];
    pt_error err = {0};
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, fixture_path(path, sizeof path, "tokenizer"), &err), PT_OK, "%s", err.msg);
    token_bytes vocab;
    cr_assert_eq(token_bytes_from_tokenizer(&vocab, tok, &err), PT_OK, "%s", err.msg);
    int32_t eos = tokenizer_eos_id(tok);
    cr_assert_geq(eos, 0);
    cr_assert_eq(vocab.offsets[eos + 1] - vocab.offsets[eos], 0, "special tokens decode to nothing");

    struct {
        const char *text;
        const char *stops[2];
        int n_stops;
    } cases[] = {
        {"Let me think. The answer is 42.</answer> and then more text", {"</answer>", NULL}, 1},
        {"答案是四十二。结束了，谢谢！", {"。结束", NULL}, 1},
        {"emoji 🙂🙃 stop here 🙃!", {"🙃!", "here 🙃"}, 2},
        {"Überprüfung: größer als ß — ende", {"ße", "ß —"}, 2},
        {"no stop string anywhere in this text", {"</answer>", NULL}, 1},
    };
    int split_chars = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tok_ids ids = {0};
        cr_assert_eq(tokenizer_encode(&ids, tok, cases[c].text, strlen(cases[c].text), 0, &err), PT_OK, "%s", err.msg);
        stop_rules rules;
        cr_assert_eq(stop_rules_init(&rules, &eos, 1, cases[c].stops, NULL, cases[c].n_stops, 0, &vocab, &err), PT_OK,
                     "%s", err.msg);
        int steps;
        stop_result got = feed(&rules, ids.ids, (int)ids.n, &steps);
        /* oracle: decode every prefix with the tokenizer and search it whole */
        stop_result want = {FINISH_NONE, 0, (int)ids.n, (int)ids.n, -1, -1};
        for (size_t k = 1; k <= ids.n; k++) {
            char *text;
            size_t n;
            cr_assert_eq(tokenizer_decode(&text, &n, tok, ids.ids, k, true, &err), PT_OK);
            /* a token boundary inside a multi-byte character (a continuation byte next) */
            if (k < ids.n) {
                char *next;
                size_t nn;
                cr_assert_eq(tokenizer_decode(&next, &nn, tok, ids.ids + k, 1, true, &err), PT_OK);
                split_chars += nn > 0 && ((unsigned char)next[0] & 0xC0) == 0x80;
                free(next);
            }
            size_t start;
            int which = oracle_search(text, n, cases[c].stops, cases[c].n_stops, &start);
            if (which >= 0) {
                want.reason = FINISH_STOP, want.text_len = start, want.n_tokens = (int)k, want.stop_string = which;
                int before = 0; /* the longest prefix whose decode fits in the cut */
                for (size_t b = 1; b <= k; b++) {
                    char *pt;
                    size_t pn;
                    cr_assert_eq(tokenizer_decode(&pt, &pn, tok, ids.ids, b, true, &err), PT_OK);
                    free(pt);
                    if (pn <= start) before = (int)b;
                }
                want.n_tokens_before_cut = before;
                free(text);
                break;
            }
            want.text_len = n;
            free(text);
        }
        expect(got, want.reason, want.text_len, want.n_tokens, want.n_tokens_before_cut, want.stop_string,
               cases[c].text);
        cr_assert_eq(got.reason, c == 4 ? FINISH_NONE : FINISH_STOP, "case %zu", c);
        stop_rules_free(&rules);
        tok_ids_free(&ids);
    }
    cr_assert_geq(split_chars, 1, "no token boundary fell inside a UTF-8 character: the case is not exercised");
    token_bytes_free(&vocab);
    tokenizer_free(tok);
}
