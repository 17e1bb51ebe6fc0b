/* test_tokenizer.c — the byte-level BPE tokenizer and the chat formats against `tokenizers` and
 * transformers (fixtures from tests/ref/make_tokenizer_fixture.py), plus properties no peer can
 * check: byte-exact round trips of arbitrary bytes, the invalid-UTF-8 rule, offsets, hostile files.
 *
 * Fixtures (tests/fixtures/tokenizer/): tokenizer.json (a 2000-id BPE trained by `tokenizers` on
 * corpus.jsonl with DeepSeek-V3's pre-tokenizer, special tokens and BOS post-processor),
 * tokenizer_config.json, cases.json (ids, decodes, pre-tokenizer variants, chat renders).
 * Ids are integers, so every comparison is exact.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/bpe_train.h"
#include "model/chat_template.h"
#include "model/tokenizer_impl.h"
#include "tests/util/check.h"

/* ------------------------------------------------------------------------------- helpers */

static char *read_fixture(const char *name, size_t *len) {
    char path[1024];
    fixture_path(path, sizeof path, name);
    char *text = NULL;
    pt_error err = {0};
    cr_assert_eq(tok_read_file(&text, len, path, &err), PT_OK, "%s", err.msg);
    return text;
}

static cJSON *load_cases(void) {
    size_t len;
    char *text = read_fixture("tokenizer/cases.json", &len);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    cr_assert(root, "cases.json does not parse");
    return root;
}

static tokenizer *load_fixture_tokenizer(void) {
    char path[1024];
    pt_error err = {0};
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, fixture_path(path, sizeof path, "tokenizer"), &err), PT_OK, "%s", err.msg);
    return tok;
}

/* The bytes of a case: "hex" when present (cJSON strings stop at NUL), else "text". */
static char *case_bytes(const cJSON *c, size_t *len) {
    const cJSON *hex = cJSON_GetObjectItem(c, "hex");
    if (cJSON_IsString(hex)) {
        size_t n = strlen(hex->valuestring) / 2;
        char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(hex->valuestring + 2 * i, "%2x", &v);
            b[i] = (char)v;
        }
        b[n] = 0;
        *len = n;
        return b;
    }
    const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
    *len = strlen(t);
    return strdup(t);
}

/* ids equal a JSON array; on mismatch a readable report in msg. */
static bool ids_equal(const tok_ids *got, const cJSON *want, char *msg, size_t cap) {
    size_t n = (size_t)cJSON_GetArraySize(want);
    bool ok = n == got->n;
    for (size_t i = 0; ok && i < n; i++) ok = cJSON_GetArrayItem(want, (int)i)->valueint == got->ids[i];
    if (!ok) {
        int w = snprintf(msg, cap, "want %zu ids [", n);
        for (size_t i = 0; i < n && w < (int)cap - 16; i++)
            w += snprintf(msg + w, cap - (size_t)w, " %d", cJSON_GetArrayItem(want, (int)i)->valueint);
        w += snprintf(msg + w, cap - (size_t)w, " ] got %zu [", got->n);
        for (size_t i = 0; i < got->n && w < (int)cap - 16; i++)
            w += snprintf(msg + w, cap - (size_t)w, " %d", got->ids[i]);
        snprintf(msg + w, cap - (size_t)w, " ]");
    }
    return ok;
}

/* Count the cases of a case list whose ids (and ids_special) differ; report the first few. */
static int check_cases(tokenizer *tok, const cJSON *cases, const char *label) {
    int bad = 0;
    const cJSON *c;
    char msg[4096];
    cJSON_ArrayForEach(c, cases) {
        size_t len;
        char *text = case_bytes(c, &len);
        pt_error err = {0};
        for (int special = 0; special < 2; special++) {
            tok_ids ids = {0};
            cr_assert_eq(tokenizer_encode(&ids, tok, text, len, special ? TOK_ADD_SPECIAL : 0, &err), PT_OK, "%s",
                         err.msg);
            if (!ids_equal(&ids, cJSON_GetObjectItem(c, special ? "ids_special" : "ids"), msg, sizeof msg)) {
                if (bad++ < 5) cr_log_error("%s: text %.60s%s: %s", label, special ? "(+special) " : "", text, msg);
            }
            tok_ids_free(&ids);
        }
        free(text);
    }
    return bad;
}

/* GPT-2 bytes_to_unicode written out from its definition, independently of the library. */
static void byte_char_utf8(uint8_t b, char out[3]) {
    int printable[256] = {0}, n = 0;
    for (int x = '!'; x <= '~'; x++) printable[x] = 1;
    for (int x = 0xA1; x <= 0xAC; x++) printable[x] = 1;
    for (int x = 0xAE; x <= 0xFF; x++) printable[x] = 1;
    unsigned cp = b;
    if (!printable[b]) {
        for (int x = 0; x < b; x++) n += !printable[x];
        cp = 256 + (unsigned)n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

static int32_t byte_token(const tokenizer *tok, uint8_t b) {
    char s[3];
    byte_char_utf8(b, s);
    return tokenizer_token_to_id(tok, s, strlen(s));
}

static void encode_ok(tok_ids *ids, tokenizer *tok, const char *text, size_t len, unsigned flags) {
    pt_error err = {0};
    cr_assert_eq(tokenizer_encode(ids, tok, text, len, flags, &err), PT_OK, "%s", err.msg);
}

static void decode_ok(char **out, size_t *len, const tokenizer *tok, const tok_ids *ids, bool skip) {
    pt_error err = {0};
    cr_assert_eq(tokenizer_decode(out, len, tok, ids->ids, ids->n, skip, &err), PT_OK, "%s", err.msg);
}

static void make_tmpdir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/pt_tok_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp");
}

static void remove_tmpdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------- peer: tokenizers */

Test(tokenizer, fixture_ids_match_tokenizers) {
    tokenizer *tok = load_fixture_tokenizer();
    cJSON *root = load_cases();
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    cr_assert_gt(cJSON_GetArraySize(cases), 100);
    int bad = check_cases(tok, cases, "fixture");
    cr_expect_eq(bad, 0, "%d encodings differ from tokenizers (see the log)", bad);
    /* decode: the input back (or what tokenizers decodes where lstrip/rstrip ate whitespace) */
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        size_t len, dlen;
        char *text = case_bytes(c, &len), *dec;
        tok_ids ids = {0};
        encode_ok(&ids, tok, text, len, TOK_ADD_SPECIAL);
        const cJSON *want = cJSON_GetObjectItem(c, "decoded_skip");
        decode_ok(&dec, &dlen, tok, &ids, true);
        const char *w = cJSON_IsString(want) ? want->valuestring : text;
        if (!cJSON_GetObjectItem(c, "hex")) cr_expect_str_eq(dec, w, "decode(skip_special) of %s", text);
        free(dec);
        ids.n = 0;
        encode_ok(&ids, tok, text, len, 0);
        decode_ok(&dec, &dlen, tok, &ids, false);
        want = cJSON_GetObjectItem(c, "decoded");
        if (cJSON_IsString(want)) cr_expect_str_eq(dec, want->valuestring);
        else cr_expect(dlen == len && memcmp(dec, text, len) == 0, "round trip of %s gave %s", text, dec);
        free(dec);
        tok_ids_free(&ids);
        free(text);
    }
    cJSON_Delete(root);
    tokenizer_free(tok);
}

/* Every pre-tokenizer variant (Split behaviours, invert, anchors, Digits, GPT-2 ByteLevel with a
 * prefix space, ignore_merges, no post-processor) over the same vocabulary. */
Test(tokenizer, variants_match_tokenizers) {
    size_t len;
    char *base = read_fixture("tokenizer/tokenizer.json", &len);
    cJSON *root = load_cases();
    const cJSON *variants = cJSON_GetObjectItem(root, "variants"), *v;
    int nvar = 0;
    cJSON_ArrayForEach(v, variants) {
        cJSON *doc = cJSON_ParseWithLength(base, len);
        const cJSON *spec = cJSON_GetObjectItem(v, "spec"), *kv;
        cJSON_ArrayForEach(kv, spec) {
            cJSON *target = doc;
            const char *key = kv->string;
            if (strncmp(key, "model.", 6) == 0) {
                target = cJSON_GetObjectItem(doc, "model");
                key += 6;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(target, key);
            cJSON_AddItemToObject(target, key, cJSON_Duplicate(kv, 1));
        }
        char *json = cJSON_PrintUnformatted(doc);
        tokenizer *tok = NULL;
        pt_error err = {0};
        cr_assert_eq(tokenizer_load_json(&tok, json, strlen(json), v->string, &err), PT_OK, "%s: %s", v->string,
                     err.msg);
        int bad = check_cases(tok, cJSON_GetObjectItem(v, "cases"), v->string);
        cr_expect_eq(bad, 0, "variant %s: %d encodings differ from tokenizers", v->string, bad);
        tokenizer_free(tok);
        free(json);
        cJSON_Delete(doc);
        nvar++;
    }
    cr_assert_geq(nvar, 10);
    cJSON_Delete(root);
    free(base);
}

/* The older merges form ("a b" strings, as DeepSeek-V3's file has) gives the same tokenizer. */
Test(tokenizer, legacy_string_merges) {
    size_t len;
    char *base = read_fixture("tokenizer/tokenizer.json", &len);
    cJSON *doc = cJSON_ParseWithLength(base, len);
    cJSON *model = cJSON_GetObjectItem(doc, "model"), *merges = cJSON_GetObjectItem(model, "merges"), *m;
    cJSON *legacy = cJSON_CreateArray();
    cJSON_ArrayForEach(m, merges) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s %s", cJSON_GetArrayItem(m, 0)->valuestring, cJSON_GetArrayItem(m, 1)->valuestring);
        cJSON_AddItemToArray(legacy, cJSON_CreateString(buf));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", legacy);
    char *json = cJSON_PrintUnformatted(doc);
    tokenizer *tok = NULL;
    pt_error err = {0};
    cr_assert_eq(tokenizer_load_json(&tok, json, strlen(json), "legacy", &err), PT_OK, "%s", err.msg);
    cJSON *root = load_cases();
    cr_expect_eq(check_cases(tok, cJSON_GetObjectItem(root, "cases"), "legacy"), 0);
    cJSON_Delete(root);
    tokenizer_free(tok);
    free(json);
    cJSON_Delete(doc);
    free(base);
}

/* ------------------------------------------------------------------------------- properties */

Test(tokenizer, decode_roundtrip_random_bytes) {
    tokenizer *tok = load_fixture_tokenizer();
    test_rng rng;
    test_rng_seed(&rng, 42);
    static const char *const tricky[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xe4\xb8",         /* truncated 中 */
        "a\x80" "b",        /* lone continuation */
        "\xff\xfe\xfd",     /* never valid */
        "\xf0\x9f\x98",     /* truncated emoji */
        "x\xe4\xb8\xad\xe4\xb8\n1234\xa0",
    };
    size_t n_tricky = sizeof tricky / sizeof tricky[0];
    char buf[400];
    for (int t = 0; t < 600; t++) {
        size_t len;
        if ((size_t)t < n_tricky) {
            len = strlen(tricky[t]);
            memcpy(buf, tricky[t], len);
        } else {
            len = (size_t)(test_rng_uniform(&rng) * 300);
            int mode = t % 3; /* raw bytes / mostly ASCII / mostly UTF-8 lead and continuation bytes */
            for (size_t i = 0; i < len; i++) {
                double u = test_rng_uniform(&rng);
                unsigned b = (unsigned)(test_rng_uniform(&rng) * 256);
                if (mode == 1 && u < 0.8) b = 0x20 + (unsigned)(u * 100) % 0x5F;
                if (mode == 2 && u < 0.6) b = u < 0.3 ? 0xE0 + (b & 0x0F) : 0x80 + (b & 0x3F);
                buf[i] = (char)b;
            }
        }
        tok_ids ids = {0};
        encode_ok(&ids, tok, buf, len, TOK_OFFSETS);
        char *dec;
        size_t dlen;
        decode_ok(&dec, &dlen, tok, &ids, false);
        cr_assert(dlen == len && memcmp(dec, buf, len) == 0, "round trip %d of %zu bytes gave %zu bytes", t, len, dlen);
        /* offsets tile the input: each token's bytes are exactly its slice */
        size_t at = 0;
        for (size_t i = 0; i < ids.n; i++) {
            size_t s = ids.offsets[2 * i], e = ids.offsets[2 * i + 1];
            cr_assert_eq(s, at, "token %zu starts at %zu, expected %zu", i, s, at);
            char *one;
            size_t ol;
            pt_error err = {0};
            cr_assert_eq(tokenizer_decode(&one, &ol, tok, &ids.ids[i], 1, false, &err), PT_OK);
            cr_assert(ol == e - s && memcmp(one, buf + s, ol) == 0, "token %zu bytes differ from its offsets", i);
            free(one);
            at = e;
        }
        cr_assert_eq(at, len);
        free(dec);
        tok_ids_free(&ids);
    }
    tokenizer_free(tok);
}

/* posttrain's rule for invalid UTF-8: every invalid byte is its own pre-token, the valid runs
 * between are tokenized as separate texts. */
Test(tokenizer, invalid_utf8_rule) {
    tokenizer *tok = load_fixture_tokenizer();
    struct {
        const char *text;
        const char *parts[4];
    } cases[] = {
        {"hello\xffworld", {"hello", "\xff", "world"}},
        {"\xe4\xb8\xad\xe4\xb8 text", {"\xe4\xb8\xad", "\xe4", "\xb8", " text"}},
        {"12345\x80" "678", {"12345", "\x80", "678"}},
        {"<\xef\xbd\x9cUser\xef\xbd\x9c>\xc0", {"<\xef\xbd\x9cUser\xef\xbd\x9c>", "\xc0"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tok_ids whole = {0}, parts = {0};
        encode_ok(&whole, tok, cases[k].text, strlen(cases[k].text), 0);
        for (int p = 0; p < 4 && cases[k].parts[p]; p++) {
            const char *s = cases[k].parts[p];
            size_t n = strlen(s);
            if (n == 1 && (uint8_t)s[0] >= 0x80) { /* an invalid byte: its byte token */
                int32_t id = byte_token(tok, (uint8_t)s[0]);
                cr_assert_geq(id, 0);
                encode_ok(&parts, tok, s, 1, 0); /* a lone invalid byte as a whole text */
                cr_assert_eq(parts.ids[parts.n - 1], id, "byte 0x%02x must become its byte token", (uint8_t)s[0]);
            } else {
                encode_ok(&parts, tok, s, n, 0);
            }
        }
        cr_assert_eq(whole.n, parts.n, "case %zu: %zu ids vs %zu from the parts", k, whole.n, parts.n);
        for (size_t i = 0; i < whole.n; i++) cr_assert_eq(whole.ids[i], parts.ids[i], "case %zu id %zu", k, i);
        tok_ids_free(&whole);
        tok_ids_free(&parts);
    }
    tokenizer_free(tok);
}

/* The library's byte table against the definition, and decode of every byte token. */
Test(tokenizer, byte_characters) {
    tokenizer *tok = load_fixture_tokenizer();
    for (int b = 0; b < 256; b++) {
        int32_t id = byte_token(tok, (uint8_t)b);
        cr_assert_geq(id, 0, "byte %d has no token", b);
        char *dec;
        size_t n;
        pt_error err = {0};
        cr_assert_eq(tokenizer_decode(&dec, &n, tok, &id, 1, false, &err), PT_OK);
        cr_assert(n == 1 && (uint8_t)dec[0] == b, "byte token of %d decodes wrong", b);
        free(dec);
        char c = (char)b;
        tok_ids ids = {0};
        encode_ok(&ids, tok, &c, 1, 0);
        cr_assert(ids.n == 1 && ids.ids[0] == id, "byte %d encodes to %zu ids", b, ids.n);
        tok_ids_free(&ids);
    }
    tokenizer_free(tok);
}

Test(tokenizer, batch_equals_serial) {
    tokenizer *tok = load_fixture_tokenizer();
    cJSON *root = load_cases();
    const cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    size_t n = (size_t)cJSON_GetArraySize(cases), i = 0;
    char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    tok_ids *outs = calloc(n, sizeof *outs);
    cJSON_ArrayForEach(c, cases) { texts[i] = case_bytes(c, &lens[i]), i++; }
    pt_error err = {0};
    cr_assert_eq(tokenizer_encode_batch(outs, tok, (const char *const *)texts, lens, n, TOK_ADD_SPECIAL, 2, &err), PT_OK,
                 "%s", err.msg);
    for (i = 0; i < n; i++) {
        tok_ids one = {0};
        encode_ok(&one, tok, texts[i], lens[i], TOK_ADD_SPECIAL);
        cr_assert_eq(one.n, outs[i].n);
        cr_assert_eq(memcmp(one.ids, outs[i].ids, one.n * sizeof *one.ids), 0);
        tok_ids_free(&one);
        tok_ids_free(&outs[i]);
        free(texts[i]);
    }
    double bps = 0;
    cr_assert_eq(tokenizer_bench_encode(&bps, tok, "some text to time\n", 18, 1, 1, &err), PT_OK, "%s", err.msg);
    cr_assert_gt(bps, 0);
    free(texts);
    free(lens);
    free(outs);
    cJSON_Delete(root);
    tokenizer_free(tok);
}

Test(tokenizer, lookups_and_config) {
    tokenizer *tok = load_fixture_tokenizer();
    const char *bos = "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    cr_assert_str_eq(tokenizer_bos_token(tok), bos);
    cr_assert_eq(tokenizer_bos_id(tok), 0);
    cr_assert_eq(tokenizer_eos_id(tok), 1);
    cr_assert(tokenizer_is_special(tok, 0));
    int32_t think = tokenizer_token_to_id(tok, "<think>", 7);
    cr_assert_eq(think, 2000, "added tokens are numbered after the vocabulary");
    cr_assert(!tokenizer_is_special(tok, think), "<think> is not special, as in DeepSeek-V3");
    cr_assert_str_eq(tokenizer_id_to_token(tok, think), "<think>");
    cr_assert_eq(tokenizer_n_ids(tok), 2007);
    cr_assert_null(tokenizer_id_to_token(tok, 5000));
    chat_format f;
    cr_assert(chat_format_from_jinja(&f, tokenizer_chat_template(tok)), "tokenizer_config's template is DeepSeek-V3's");
    cr_assert_eq(f, CHAT_DEEPSEEK_V3);
    pt_error err = {0};
    char *dec;
    int32_t bad[] = {5, 99999};
    cr_assert_eq(tokenizer_decode(&dec, NULL, tok, bad, 2, false, &err), PT_ERR_INVALID);
    cr_assert(strstr(err.msg, "id 99999 at position 1"), "%s", err.msg);
    tokenizer_free(tok);
}

/* ByteLevel's prefix space: a virtual byte that decodes as a space and maps to offset 0. */
Test(tokenizer, prefix_space_offsets) {
    size_t len;
    char *base = read_fixture("tokenizer/tokenizer.json", &len);
    cJSON *doc = cJSON_ParseWithLength(base, len);
    cJSON_ReplaceItemInObjectCaseSensitive(
        doc, "pre_tokenizer",
        cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}"));
    char *json = cJSON_PrintUnformatted(doc);
    tokenizer *tok = NULL;
    pt_error err = {0};
    cr_assert_eq(tokenizer_load_json(&tok, json, strlen(json), "gpt2", &err), PT_OK, "%s", err.msg);
    const char *text = "hello world";
    tok_ids ids = {0};
    encode_ok(&ids, tok, text, strlen(text), TOK_OFFSETS);
    char *dec;
    size_t dl;
    decode_ok(&dec, &dl, tok, &ids, false);
    cr_assert_str_eq(dec, " hello world", "the prefix space is part of the first token");
    cr_assert_eq(ids.offsets[0], 0);
    for (size_t i = 1; i < ids.n; i++) cr_assert_eq(ids.offsets[2 * i], ids.offsets[2 * i - 1]);
    cr_assert_eq(ids.offsets[2 * ids.n - 1], strlen(text));
    free(dec);
    tok_ids_free(&ids);
    tokenizer_free(tok);
    free(json);
    cJSON_Delete(doc);
    free(base);
}

/* Save, reload: same ids; the written JSON has the same vocab, merges, added tokens and sections. */
Test(tokenizer, save_load_roundtrip) {
    tokenizer *tok = load_fixture_tokenizer();
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    pt_error err = {0};
    cr_assert_eq(tokenizer_save(tok, dir, &err), PT_OK, "%s", err.msg);
    tokenizer *back = NULL;
    cr_assert_eq(tokenizer_load(&back, dir, &err), PT_OK, "%s", err.msg);
    cJSON *root = load_cases();
    cr_expect_eq(check_cases(back, cJSON_GetObjectItem(root, "cases"), "reloaded"), 0);
    cr_assert_str_eq(tokenizer_chat_template(back), tokenizer_chat_template(tok));
    cr_assert_str_eq(tokenizer_eos_token(back), tokenizer_eos_token(tok));

    size_t la, lb;
    char *orig = read_fixture("tokenizer/tokenizer.json", &la), path[128], *mine;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cr_assert_eq(tok_read_file(&mine, &lb, path, &err), PT_OK);
    cJSON *a = cJSON_Parse(orig), *b = cJSON_Parse(mine);
    static const char *const keys[] = {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"};
    for (int k = 0; k < 5; k++)
        cr_expect(cJSON_Compare(cJSON_GetObjectItem(a, keys[k]), cJSON_GetObjectItem(b, keys[k]), 1), "%s differs",
                  keys[k]);
    cJSON *ma = cJSON_GetObjectItem(a, "model"), *mb = cJSON_GetObjectItem(b, "model");
    cr_expect(cJSON_Compare(cJSON_GetObjectItem(ma, "vocab"), cJSON_GetObjectItem(mb, "vocab"), 1), "vocab differs");
    cr_expect(cJSON_Compare(cJSON_GetObjectItem(ma, "merges"), cJSON_GetObjectItem(mb, "merges"), 1), "merges differ");
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(orig);
    free(mine);
    cJSON_Delete(root);
    tokenizer_free(back);

    /* transformers 5 keeps the template in chat_template.jinja when tokenizer_config.json has none */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    const char *jinja = chat_format_jinja(CHAT_DEEPSEEK_R1);
    cr_assert_eq(tok_write_file_atomic(path, jinja, strlen(jinja), &err), PT_OK);
    cr_assert_eq(tokenizer_load(&back, dir, &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(tokenizer_chat_template(back), jinja);
    cr_assert_null(tokenizer_bos_token(back));
    unlink(path);
    tokenizer_free(back);
    tokenizer_free(tok);
    remove_tmpdir(dir);
}

/* ------------------------------------------------------------------------------- training */

static const char *const SPECIALS[] = {
    "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "<\xef\xbd\x9c\xe2\x96\x81pad\xe2\x96\x81\xef\xbd\x9c>",
    "<\xef\xbd\x9cUser\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81outputs\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "begin\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81output\xe2\x96\x81" "end\xef\xbd\x9c>",
    "<\xef\xbd\x9ctool\xe2\x96\x81sep\xef\xbd\x9c>",
};

/* Write what tests/ref/make_tokenizer_fixture.py --check DIR reads. */
static void export_for_python(const tokenizer *tok, const char *dir, const cJSON *cases) {
    pt_error err = {0};
    cr_assert_eq(tokenizer_save(tok, dir, &err), PT_OK, "%s", err.msg);
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "cases"), *c;
    tokenizer *t = (tokenizer *)tok;
    cJSON_ArrayForEach(c, cases) {
        if (cJSON_GetObjectItem(c, "hex")) continue;
        const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
        tok_ids ids = {0};
        encode_ok(&ids, t, s, strlen(s), 0);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", s);
        cJSON *arr = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.ids[i]));
        cJSON_AddItemToArray(list, o);
        tok_ids_free(&ids);
    }
    cJSON *chat = cJSON_AddArrayToObject(out, "chat");
    chat_message msgs[] = {{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "and 3+3?"}};
    for (int gen = 0; gen < 2; gen++) {
        chat_render r;
        chat_options o = {.add_generation_prompt = gen};
        cr_assert_eq(chat_render_messages(&r, CHAT_DEEPSEEK_V3, msgs, 4, tokenizer_bos_token(tok),
                                          tokenizer_eos_token(tok), &o, &err),
                     PT_OK);
        tok_ids ids = {0};
        encode_ok(&ids, t, r.text, r.len, 0);
        cJSON *o2 = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(o2, "messages");
        for (int i = 0; i < 4; i++) {
            cJSON *mm = cJSON_CreateObject();
            cJSON_AddStringToObject(mm, "role", msgs[i].role);
            cJSON_AddStringToObject(mm, "content", msgs[i].content);
            cJSON_AddItemToArray(m, mm);
        }
        cJSON_AddBoolToObject(o2, "add_generation_prompt", gen);
        cJSON_AddStringToObject(o2, "text", r.text);
        cJSON *arr = cJSON_AddArrayToObject(o2, "ids");
        for (size_t i = 0; i < ids.n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids.ids[i]));
        cJSON_AddItemToArray(chat, o2);
        tok_ids_free(&ids);
        chat_render_free(&r);
    }
    char *text = cJSON_PrintUnformatted(out), path[1100];
    snprintf(path, sizeof path, "%s/c_ids.json", dir);
    cr_assert_eq(tok_write_file_atomic(path, text, strlen(text), &err), PT_OK, "%s", err.msg);
    free(text);
    cJSON_Delete(out);
}

/* Trained on the fixture's corpus with the fixture's options, posttrain's BPE trainer must produce
 * exactly the vocabulary and merges of `tokenizers`' BpeTrainer (same ids, same merge order). */
Test(tokenizer, train_matches_tokenizers) {
    bpe_train_opts o = {
        .vocab_size = 2000,
        .special_tokens = SPECIALS,
        .n_special = sizeof SPECIALS / sizeof SPECIALS[0],
        .bos_token = SPECIALS[0],
        .eos_token = SPECIALS[1],
        .add_bos = true,
        .chat_template = chat_format_jinja(CHAT_DEEPSEEK_V3),
    };
    bpe_trainer *tr = NULL;
    pt_error err = {0};
    cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_OK, "%s", err.msg);
    char path[1024];
    cr_assert_eq(bpe_trainer_feed_file(tr, fixture_path(path, sizeof path, "tokenizer/corpus.jsonl"), &err), PT_OK, "%s",
                 err.msg);
    tokenizer *tok = NULL;
    cr_assert_eq(bpe_trainer_finish(&tok, tr, &err), PT_OK, "%s", err.msg);
    bpe_trainer_free(tr);

    char *mine_json;
    cr_assert_eq(tokenizer_to_json(&mine_json, tok, &err), PT_OK);
    size_t len;
    char *ref_json = read_fixture("tokenizer/tokenizer.json", &len);
    cJSON *mine = cJSON_Parse(mine_json), *ref = cJSON_Parse(ref_json);
    cJSON *mm = cJSON_GetObjectItem(mine, "model"), *rm = cJSON_GetObjectItem(ref, "model");
    cJSON *mv = cJSON_GetObjectItem(mm, "vocab"), *rv = cJSON_GetObjectItem(rm, "vocab");
    cr_assert_eq(cJSON_GetArraySize(mv), cJSON_GetArraySize(rv), "vocab sizes differ");
    const cJSON *e;
    int vocab_bad = 0;
    cJSON_ArrayForEach(e, rv) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(mv, e->string);
        if (!x || x->valueint != e->valueint) {
            if (vocab_bad++ < 5) cr_log_error("token %s: tokenizers id %d, posttrain %d", e->string, e->valueint,
                                              x ? x->valueint : -1);
        }
    }
    cr_expect_eq(vocab_bad, 0, "%d vocabulary ids differ", vocab_bad);
    cJSON *mg = cJSON_GetObjectItem(mm, "merges"), *rg = cJSON_GetObjectItem(rm, "merges");
    int nm = cJSON_GetArraySize(rg), first = -1;
    cr_expect_eq(cJSON_GetArraySize(mg), nm);
    for (int i = 0; i < nm && first < 0; i++)
        if (!cJSON_Compare(cJSON_GetArrayItem(mg, i), cJSON_GetArrayItem(rg, i), 1)) first = i;
    cr_expect_eq(first, -1, "merge %d differs first", first);
    cr_expect(cJSON_Compare(cJSON_GetObjectItem(mine, "pre_tokenizer"), cJSON_GetObjectItem(ref, "pre_tokenizer"), 1));
    cr_expect(cJSON_Compare(cJSON_GetObjectItem(mine, "normalizer"), cJSON_GetObjectItem(ref, "normalizer"), 1));

    /* the trained tokenizer encodes the fixture strings as tokenizers does (no extra added tokens
     * here, so only cases without them) */
    cJSON *root = load_cases();
    const cJSON *c;
    int bad = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        size_t n;
        char *text = case_bytes(c, &n);
        bool has_extra = memmem(text, n, "<think>", 7) || memmem(text, n, "</think>", 8) || memmem(text, n, "<|", 2);
        if (!has_extra) {
            tok_ids ids = {0};
            char msg[2048];
            encode_ok(&ids, tok, text, n, TOK_ADD_SPECIAL);
            if (!ids_equal(&ids, cJSON_GetObjectItem(c, "ids_special"), msg, sizeof msg) && bad++ < 3)
                cr_log_error("trained: %s: %s", text, msg);
            tok_ids_free(&ids);
        }
        free(text);
    }
    cr_expect_eq(bad, 0);
    const char *export = getenv("PT_TOKENIZER_EXPORT");
    if (export && export[0]) export_for_python(tok, export, cJSON_GetObjectItem(root, "cases"));
    cJSON_Delete(root);
    cJSON_Delete(mine);
    cJSON_Delete(ref);
    free(mine_json);
    free(ref_json);
    tokenizer_free(tok);
}

/* The "digits" preset is DeepSeek-V3's pre-tokenizer with one digit per pre-token: on a corpus
 * full of numbers, deepseek-v3 learns multi-digit tokens and digits never does, and the two
 * tokenizer.json files differ only in the first Split's regex. */
Test(tokenizer, train_digits_preset) {
    char text[1 << 15];
    size_t len = 0;
    for (int i = 0; i < 600; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%d + %d = %d, make %d. ", i % 37, i % 11 * 7,
                                i % 37 + i % 11 * 7, 126);
    tokenizer *tok[2] = {NULL, NULL};
    const char *presets[2] = {"deepseek-v3", "digits"};
    for (int k = 0; k < 2; k++) {
        bpe_train_opts o = {.vocab_size = 400, .pre_tokenizer = presets[k]};
        bpe_trainer *tr = NULL;
        pt_error err = {0};
        cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(bpe_trainer_feed(tr, text, len, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(bpe_trainer_finish(&tok[k], tr, &err), PT_OK, "%s", err.msg);
        bpe_trainer_free(tr);
    }
    tok_ids ids[2] = {{0}, {0}};
    const char *probe = "make 126, 43 + 70 = 113.";
    for (int k = 0; k < 2; k++) encode_ok(&ids[k], tok[k], probe, strlen(probe), 0);
    int multi[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < ids[k].n; i++) {
            const char *t = tokenizer_id_to_token(tok[k], ids[k].ids[i]);
            int digits = 0;
            for (; *t; t++) digits += *t >= '0' && *t <= '9';
            multi[k] += digits > 1;
        }
    cr_expect_gt(multi[0], 0, "deepseek-v3 should learn multi-digit tokens on this corpus");
    cr_expect_eq(multi[1], 0, "digits must keep every digit its own token");
    pt_error err = {0};
    char *json[2];
    for (int k = 0; k < 2; k++) cr_assert_eq(tokenizer_to_json(&json[k], tok[k], &err), PT_OK);
    cJSON *ra = cJSON_Parse(json[0]), *rb = cJSON_Parse(json[1]);
    cJSON *la = cJSON_GetObjectItem(cJSON_GetObjectItem(ra, "pre_tokenizer"), "pretokenizers");
    cJSON *lb = cJSON_GetObjectItem(cJSON_GetObjectItem(rb, "pre_tokenizer"), "pretokenizers");
    cr_assert_eq(cJSON_GetArraySize(la), cJSON_GetArraySize(lb));
    cr_assert_gt(cJSON_GetArraySize(la), 1);
    for (int i = 0; i < cJSON_GetArraySize(la); i++) {
        if (i == 0)
            cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(lb, 0), "pattern"), "Regex")->valuestring,
                             "\\p{N}");
        else cr_expect(cJSON_Compare(cJSON_GetArrayItem(la, i), cJSON_GetArrayItem(lb, i), 1), "pretokenizer %d differs", i);
    }
    cJSON_Delete(ra), cJSON_Delete(rb);
    for (int k = 0; k < 2; k++) {
        free(json[k]);
        tok_ids_free(&ids[k]);
        tokenizer_free(tok[k]);
    }
}

Test(tokenizer, train_errors) {
    bpe_trainer *tr = NULL;
    pt_error err = {0};
    bpe_train_opts o = {.vocab_size = 100};
    cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "256 byte characters"), "%s", err.msg);
    o = (bpe_train_opts){.vocab_size = 300, .pre_tokenizer = "llama"};
    cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "deepseek-v3, digits, gpt2"), "%s", err.msg);
    o = (bpe_train_opts){.vocab_size = 300, .bos_token = "<s>"};
    cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "bos_token \"<s>\" must be one of the special tokens"), "%s", err.msg);

    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"text\": \"fine\"}\n\n{\"txt\": \"no text field\"}\n", f);
    fclose(f);
    o = (bpe_train_opts){.vocab_size = 300, .pre_tokenizer = "gpt2"};
    cr_assert_eq(bpe_trainer_init(&tr, &o, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(bpe_trainer_feed_file(tr, path, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "bad.jsonl:3:") && strstr(err.msg, "\"text\""), "%s", err.msg);
    cr_assert_eq(bpe_trainer_feed_file(tr, "/nonexistent/corpus.txt", &err), PT_ERR_IO);
    /* a small GPT-2-style training still works and round-trips */
    const char *text = "low lower lowest newer wider low low";
    cr_assert_eq(bpe_trainer_feed(tr, text, strlen(text), &err), PT_OK);
    tokenizer *tok = NULL;
    cr_assert_eq(bpe_trainer_finish(&tok, tr, &err), PT_OK, "%s", err.msg);
    cr_assert(tokenizer_n_ids(tok) > 256 && tokenizer_n_ids(tok) < 300, "this corpus runs out of pairs");
    tok_ids ids = {0};
    encode_ok(&ids, tok, " lowest", 7, 0);
    cr_assert_eq(ids.n, 1, "\" lowest\" is frequent enough to be one token here (%zu ids)", ids.n);
    tok_ids_free(&ids);
    tokenizer_free(tok);
    bpe_trainer_free(tr);
    remove_tmpdir(dir);
}

/* ------------------------------------------------------------------------------- hostile input */

static pt_status load_str(const char *json, pt_error *err) {
    tokenizer *tok = NULL;
    pt_status st = tokenizer_load_json(&tok, json, strlen(json), "t.json", err);
    tokenizer_free(tok);
    return st;
}

#define MINI_PRE "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
#define MINI_MODEL "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}"

Test(tokenizer, hostile_tokenizer_json) {
    pt_error err = {0};
    cr_assert_eq(load_str("{" MINI_PRE "," MINI_MODEL "}", &err), PT_OK, "%s", err.msg);

    cr_assert_eq(load_str("{\n  \"model\": {\n    \"vocab\": {\"a\": 0,,}\n  }\n}", &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "t.json:3:") && strstr(err.msg, "not valid JSON"), "%s", err.msg);
    cr_assert_eq(load_str("", &err), PT_ERR_FORMAT);
    cr_assert_eq(load_str("[1,2]", &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "top level"), "%s", err.msg);

    cr_assert_eq(load_str("{" MINI_PRE "}", &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "\"model\" is missing"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", &err), PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "model.type \"Unigram\"") && strstr(err.msg, "\"BPE\""), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}",
                          &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "model.merges[0]") && strstr(err.msg, "\"ab\", which is not in model.vocab"), "%s",
              err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\",\"zz\"]]}}",
                          &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "\"zz\", which is not in model.vocab"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a  b\"]}}", &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "one space"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "model.vocab[\"a\"] must be an integer id"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4000000000},\"merges\":[]}}", &err),
                 PT_ERR_FORMAT);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "gives id 0 to both"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_PRE ",\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},\"merges\":[]}}",
                          &err),
                 PT_ERR_UNSUPPORTED);

    /* a bad regex: PCRE2's message and offset */
    cr_assert_eq(load_str("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
                          "\"pattern\":{\"Regex\":\"ab(c\"},\"behavior\":\"Isolated\",\"invert\":false},"
                          "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}," MINI_MODEL "}",
                          &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "pre_tokenizer.pretokenizers[0].pattern.Regex") && strstr(err.msg, "at offset 4") &&
                  strstr(err.msg, "missing closing parenthesis"),
              "%s", err.msg);
    cr_assert_eq(load_str("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Wrong\"},"
                          MINI_MODEL "}",
                          &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "behavior must be one of"), "%s", err.msg);
    cr_assert_eq(load_str("{\"pre_tokenizer\":{\"type\":\"Whitespace\"}," MINI_MODEL "}", &err), PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "\"Whitespace\"") && strstr(err.msg, "Split"), "%s", err.msg);
    cr_assert_eq(load_str("{" MINI_MODEL "}", &err), PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "ByteLevel"), "%s", err.msg);
    cr_assert_eq(load_str("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":"
                          "\"Isolated\"}," MINI_MODEL "}",
                          &err),
                 PT_ERR_UNSUPPORTED, "a Split without ByteLevel is not byte-level BPE");
    cr_assert_eq(load_str("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},"
                          "{\"type\":\"Digits\"}]}," MINI_MODEL "}",
                          &err),
                 PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "not at the end"), "%s", err.msg);
    cr_assert_eq(load_str("{\"normalizer\":{\"type\":\"NFC\"}," MINI_PRE "," MINI_MODEL "}", &err), PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "normalizer \"NFC\""), "%s", err.msg);
    cr_assert_eq(load_str("{\"decoder\":{\"type\":\"Metaspace\"}," MINI_PRE "," MINI_MODEL "}", &err),
                 PT_ERR_UNSUPPORTED);
    cr_assert_eq(load_str("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
                          "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{}},"
                          MINI_PRE "," MINI_MODEL "}",
                          &err),
                 PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "no ids for \"<s>\""), "%s", err.msg);
    cr_assert_eq(load_str("{\"version\":\"2.0\"," MINI_PRE "," MINI_MODEL "}", &err), PT_ERR_FORMAT);

    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, "/nonexistent/tokenizer.json", &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/tokenizer.json"), "%s", err.msg);

    /* a folder whose tokenizer_config.json names a bos_token the tokenizer lacks */
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *good = "{" MINI_PRE "," MINI_MODEL "}";
    cr_assert_eq(tok_write_file_atomic(path, good, strlen(good), &err), PT_OK);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    const char *cfg = "{\"bos_token\": {\"content\": \"<missing>\"}}";
    cr_assert_eq(tok_write_file_atomic(path, cfg, strlen(cfg), &err), PT_OK);
    cr_assert_eq(tokenizer_load(&tok, dir, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "\"<missing>\""), "%s", err.msg);
    remove_tmpdir(dir);
}

/* ------------------------------------------------------------------------------- chat formats */

Test(chat, templates_recorded_as_in_fixture) {
    cJSON *root = load_cases();
    const cJSON *t = cJSON_GetObjectItem(root, "templates");
    for (int f = 0; f < 3; f++) {
        const cJSON *want = cJSON_GetObjectItem(t, chat_format_name((chat_format)f));
        cr_assert(cJSON_IsString(want), "fixture lacks %s", chat_format_name((chat_format)f));
        cr_expect_str_eq(chat_format_jinja((chat_format)f), want->valuestring, "%s template",
                         chat_format_name((chat_format)f));
        chat_format back;
        cr_assert(chat_format_from_jinja(&back, want->valuestring));
        cr_assert_eq(back, f);
    }
    chat_format f;
    pt_error err = {0};
    cr_assert_eq(chat_format_parse(&f, "deepseek-r1", &err), PT_OK);
    cr_assert_eq(f, CHAT_DEEPSEEK_R1);
    cr_assert_eq(chat_format_parse(&f, "chatml", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "\"chatml\"") && strstr(err.msg, "deepseek-v3, deepseek-r1, plain"), "%s", err.msg);
    cr_assert(!chat_format_from_jinja(&f, "{{ messages }}"));
    chat_message tool[] = {{"user", "x"}, {"tool", "{}"}};
    chat_render r;
    cr_assert_eq(chat_render_messages(&r, CHAT_DEEPSEEK_V3, tool, 2, "<s>", "</s>", NULL, &err), PT_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "role \"tool\"") && strstr(err.msg, "system, user, assistant"), "%s", err.msg);
    cJSON_Delete(root);
}

/* Native renders equal transformers' apply_chat_template output byte for byte, tokenize to the
 * same ids, and the assistant mask covers exactly the assistant spans. */
Test(chat, renders_match_transformers) {
    tokenizer *tok = load_fixture_tokenizer();
    cJSON *root = load_cases();
    const cJSON *convs = cJSON_GetObjectItem(root, "conversations"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "chat")) {
        chat_format fmt;
        pt_error err = {0};
        cr_assert_eq(chat_format_parse(&fmt, cJSON_GetObjectItem(c, "format")->valuestring, &err), PT_OK);
        const cJSON *conv = cJSON_GetArrayItem(convs, cJSON_GetObjectItem(c, "conversation")->valueint), *m;
        chat_message msgs[16];
        size_t nm = 0;
        cJSON_ArrayForEach(m, conv) {
            msgs[nm].role = cJSON_GetObjectItem(m, "role")->valuestring;
            msgs[nm].content = cJSON_GetObjectItem(m, "content")->valuestring;
            nm++;
        }
        chat_options o = {.add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"))};
        chat_render r;
        cr_assert_eq(chat_render_messages(&r, fmt, msgs, nm, tokenizer_bos_token(tok), tokenizer_eos_token(tok), &o,
                                          &err),
                     PT_OK, "%s", err.msg);
        const char *want = cJSON_GetObjectItem(c, "text")->valuestring;
        cr_expect_str_eq(r.text, want, "%s render (generation prompt %d)", chat_format_name(fmt),
                         (int)o.add_generation_prompt);
        tok_ids ids = {0};
        uint8_t *mask = NULL;
        cr_assert_eq(chat_encode(&ids, &mask, tok, &r, &err), PT_OK, "%s", err.msg);
        char msg[4096];
        cr_expect(ids_equal(&ids, cJSON_GetObjectItem(c, "ids"), msg, sizeof msg), "%s ids: %s",
                  chat_format_name(fmt), msg);
        /* the masked tokens decode to the concatenated assistant spans */
        size_t want_len = 0;
        for (size_t s = 0; s < r.n_spans; s++) want_len += r.spans[s].end - r.spans[s].start;
        char *spans = malloc(want_len + 1), *got = malloc(r.len + 1);
        size_t o1 = 0, o2 = 0;
        for (size_t s = 0; s < r.n_spans; s++) {
            memcpy(spans + o1, r.text + r.spans[s].start, r.spans[s].end - r.spans[s].start);
            o1 += r.spans[s].end - r.spans[s].start;
        }
        for (size_t i = 0; i < ids.n; i++) {
            if (!mask[i]) continue;
            char *one;
            size_t ol;
            cr_assert_eq(tokenizer_decode(&one, &ol, tok, &ids.ids[i], 1, false, &err), PT_OK);
            memcpy(got + o2, one, ol);
            o2 += ol;
            free(one);
        }
        cr_expect(o1 == o2 && memcmp(spans, got, o1) == 0, "assistant mask does not cover exactly the spans");
        /* and every span ends with the end marker */
        const char *eos = fmt == CHAT_PLAIN ? tokenizer_eos_token(tok) : SPECIALS[1];
        for (size_t s = 0; s < r.n_spans; s++) {
            size_t el = strlen(eos);
            cr_expect(r.spans[s].end - r.spans[s].start >= el &&
                          memcmp(r.text + r.spans[s].end - el, eos, el) == 0,
                      "span %zu does not end with the end-of-sentence token", s);
        }
        free(spans);
        free(got);
        free(mask);
        tok_ids_free(&ids);
        chat_render_free(&r);
        n++;
    }
    cr_assert_geq(n, 24);
    cJSON_Delete(root);
    tokenizer_free(tok);
}

/* keep_final_think changes only the last assistant message of an R1 render. */
Test(chat, r1_keep_final_think) {
    chat_message msgs[] = {{"user", "q1"}, {"assistant", "<think>a</think>A"}, {"user", "q2"},
                           {"assistant", "<think>\nb\n</think>\n\nB"}};
    chat_render plain, keep;
    chat_options o = {.keep_final_think = true};
    pt_error err = {0};
    cr_assert_eq(chat_render_messages(&plain, CHAT_DEEPSEEK_R1, msgs, 4, "<s>", "</s>", NULL, &err), PT_OK);
    cr_assert_eq(chat_render_messages(&keep, CHAT_DEEPSEEK_R1, msgs, 4, "<s>", "</s>", &o, &err), PT_OK);
    const char *head = "<s>" "<\xef\xbd\x9cUser\xef\xbd\x9c>q1<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>A";
    cr_assert(strncmp(plain.text, head, strlen(head)) == 0, "%s", plain.text);
    cr_assert(strncmp(keep.text, head, strlen(head)) == 0, "%s", keep.text);
    cr_assert(strstr(keep.text, "<think>\nb\n</think>\n\nB"));
    cr_assert(!strstr(plain.text, "<think>\nb"));
    cr_assert(strstr(plain.text, "\n\nB"));
    cr_assert_eq(keep.n_spans, 2);
    chat_render_free(&plain);
    chat_render_free(&keep);
}
