/* tokenizer.c — the tokenizer's tables and everything but encoding and JSON: hash maps, GPT-2's
 * byte <-> character table, UTF-8, regex compilation, the decode table, lookups, decode, and the
 * batch / benchmark drivers. Encoding lives in tokenizer_encode.c, tokenizer.json in
 * tokenizer_json.c (see tokenizer.h for the algorithm and tokenizer_impl.h for the layout).
 *
 * Decode rule (ByteLevel decoder of `tokenizers`): a token whose characters are all byte
 * characters decodes to those bytes; any other token (added tokens such as
 * "<｜begin▁of▁sentence｜>") decodes to its own UTF-8 text. Invariant: dec_off is non-decreasing
 * and dec_off[n_ids] is the size of dec_bytes.
 */
#include "model/tokenizer_impl.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------- hash maps */

uint64_t tok_hash_bytes(const void *p, size_t n) {
    /* 64-bit multiply-xorshift over 8-byte words; quality is ample for token strings. */
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w ^ (uint64_t)n << 56) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static int strmap_grow(tok_strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    tok_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        tok_strmap_slot s = m->slots[i];
        if (!s.key) continue;
        size_t j = s.hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value, int32_t *old) {
    if ((m->n + 1) * 4 > m->cap * 3 && strmap_grow(m) != 0) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        tok_strmap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            if (old) *old = s->value;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (tok_strmap_slot){.key = key, .len = (uint32_t)len, .hash = h, .value = value};
    m->n++;
    return 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        const tok_strmap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->value;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    *m = (tok_strmap){0};
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static int u64map_grow(tok_u64map *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = calloc(cap, sizeof *keys), *vals = malloc(cap * sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = mix64(m->keys[i]) & (cap - 1);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

uint64_t *tok_u64map_upsert(tok_u64map *m, uint64_t key, uint64_t init) {
    if ((m->n + 1) * 4 > m->cap * 3 && u64map_grow(m) != 0) return NULL;
    uint64_t k = key + 1;
    size_t j = mix64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = k;
    m->vals[j] = init;
    m->n++;
    return &m->vals[j];
}

const uint64_t *tok_u64map_get(const tok_u64map *m, uint64_t key) {
    if (!m->cap) return NULL;
    uint64_t k = key + 1;
    size_t j = mix64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void tok_u64map_free(tok_u64map *m) {
    free(m->keys);
    free(m->vals);
    *m = (tok_u64map){0};
}

/* ------------------------------------------------------------------------------- bytes and UTF-8 */

/* Printable bytes stand for themselves: '!'..'~', 0xA1..0xAC, 0xAE..0xFF. The other 68 bytes, in
 * increasing order, take U+0100, U+0101, ... (GPT-2 encoder.py bytes_to_unicode): 0x00..0x20 are
 * U+0100..U+0120, 0x7F..0xA0 are U+0121..U+0142, and 0xAD is U+0143. */
static bool byte_is_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t tok_byte_char(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b <= 0xA0) return 0x100 + 33 + (b - 0x7Fu);
    return 0x143; /* 0xAD, soft hyphen */
}

int tok_char_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x144) return -1;
    uint32_t n = cp - 0x100;
    if (n < 33) return (int)n;
    if (n < 67) return (int)(0x7F + n - 33);
    return 0xAD;
}

size_t tok_utf8_seq_len(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) ? 4 : 0;
    }
    return 0;
}

uint32_t tok_utf8_decode(const uint8_t *s, size_t k) {
    switch (k) {
    case 1: return s[0];
    case 2: return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3: return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
               (s[3] & 0x3F);
    }
}

size_t tok_utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------------- regexes */

/* Oniguruma (which `tokenizers` runs) and PCRE2 disagree on two shorthand classes: Oniguruma's \s
 * is Unicode White_Space, PCRE2's UCP \s also matches U+180E; Oniguruma's \w is letters, marks,
 * decimal digits and connector punctuation, PCRE2 10.42's is letters, all numbers and '_'. The
 * pattern is rewritten with explicit sets (inside a class the set is spliced in; \S and \W inside
 * a class are left alone). \Q..\E and POSIX [:name:] are copied untouched. */
#define ONIG_SPACE "\\t-\\r \\x{85}\\p{Z}"
#define ONIG_WORD "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"

static char *onig_compatible(const char *p, size_t n, size_t *out_len) {
    char *out = malloc(n * 24 + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool in_class = false;
#define APPEND(s) (memcpy(out + o, (s), sizeof(s) - 1), o += sizeof(s) - 1)
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 'Q') { /* quoted run: copy through \E */
                size_t j = i + 2;
                while (j < n && !(p[j] == '\\' && j + 1 < n && p[j + 1] == 'E')) j++;
                j = j < n ? j + 2 : n;
                memcpy(out + o, p + i, j - i);
                o += j - i;
                i = j;
                continue;
            }
            if (d == 's' || d == 'w' || (!in_class && (d == 'S' || d == 'W'))) {
                if (!in_class) APPEND("[");
                if (d == 'S' || d == 'W') APPEND("^");
                if (d == 's' || d == 'S') APPEND(ONIG_SPACE);
                else APPEND(ONIG_WORD);
                if (!in_class) APPEND("]");
                i += 2;
                continue;
            }
            out[o++] = c;
            out[o++] = d;
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out[o++] = p[i++];
            if (i < n && p[i] == '^') out[o++] = p[i++];
            if (i < n && p[i] == ']') out[o++] = p[i++]; /* a leading ] is literal */
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
            size_t j = i + 2;
            while (j + 1 < n && !(p[j] == ':' && p[j + 1] == ']')) j++;
            j = j + 1 < n ? j + 2 : n;
            memcpy(out + o, p + i, j - i);
            o += j - i;
            i = j;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        out[o++] = p[i++];
    }
#undef APPEND
    out[o] = '\0';
    *out_len = o;
    return out;
}

pt_status tok_regex_compile(tok_regex *re, const char *pattern, size_t len, bool literal, const char *name,
                            const char *field, pt_error *err) {
    int code;
    PCRE2_SIZE at;
    uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
    /* the pattern as written first, so that error offsets point into it */
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &at, NULL);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: %s: PCRE2 cannot compile the regex: %s at offset %zu (pattern: \"%.*s\")",
                name, field, (const char *)msg, (size_t)at, (int)(len < 200 ? len : 200), pattern);
    }
    if (!literal) {
        size_t n;
        char *compat = onig_compatible(pattern, len, &n);
        PT_CHECK_ALLOC(compat, err, len * 24 + 1);
        pcre2_code *c2 = pcre2_compile((PCRE2_SPTR)compat, n, opts, &code, &at, NULL);
        free(compat);
        PT_CHECK(c2, err, PT_ERR_INTERNAL, "%s: %s: the Oniguruma-compatible rewrite of the regex does not compile",
                 name, field);
        pcre2_code_free(re->code);
        re->code = c2;
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    return PT_OK;
}

void tok_regex_free(tok_regex *re) {
    pcre2_code_free(re->code);
    *re = (tok_regex){0};
}

/* ------------------------------------------------------------------------------- tables */

static pt_status trie_insert(tok_trie *t, const char *s, size_t len, int32_t added_index, pt_error *err) {
    if (t->count == 0) {
        for (int b = 0; b < 256; b++) t->root[b] = -1;
    }
    int32_t parent = -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t byte = (uint8_t)s[i];
        int32_t node = parent < 0 ? t->root[byte] : t->nodes[parent].child;
        if (parent >= 0)
            while (node >= 0 && t->nodes[node].byte != byte) node = t->nodes[node].sibling;
        if (node < 0) {
            if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 256;
                tok_trie_node *nodes = realloc(t->nodes, cap * sizeof *nodes);
                PT_CHECK_ALLOC(nodes, err, cap * sizeof *nodes);
                t->nodes = nodes;
                t->cap = cap;
            }
            node = (int32_t)t->n++;
            t->nodes[node] = (tok_trie_node){.child = -1, .sibling = -1, .added = -1, .byte = byte};
            if (parent < 0) {
                t->root[byte] = node;
            } else {
                t->nodes[node].sibling = t->nodes[parent].child;
                t->nodes[parent].child = node;
            }
        }
        parent = node;
    }
    t->nodes[parent].added = added_index;
    t->count++;
    return PT_OK;
}

/* Bytes of one token for decode: all characters are byte characters -> those bytes, else its UTF-8. */
static size_t token_decoded(const char *s, uint8_t *out) {
    size_t n = strlen(s), o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = tok_utf8_seq_len((const uint8_t *)s + i, n - i);
        int b = k ? tok_char_byte(tok_utf8_decode((const uint8_t *)s + i, k)) : -1;
        if (b < 0) {
            if (out) memcpy(out, s, n);
            return n;
        }
        if (out) out[o] = (uint8_t)b;
        o++;
        i += k;
    }
    return o;
}

pt_status tok_build_tables(tokenizer *tok, pt_error *err) {
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t k = tok_utf8_encode(tok_byte_char((uint8_t)b), u);
        tok->byte_id[b] = tok_strmap_get(&tok->vocab, (const char *)u, k);
    }
    free(tok->dec_off);
    free(tok->dec_bytes);
    tok->dec_off = malloc((tok->n_ids + 1) * sizeof *tok->dec_off);
    PT_CHECK_ALLOC(tok->dec_off, err, (tok->n_ids + 1) * sizeof *tok->dec_off);
    size_t total = 0;
    for (size_t i = 0; i < tok->n_ids; i++) {
        tok->dec_off[i] = total;
        if (tok->tok_str[i]) total += token_decoded(tok->tok_str[i], NULL);
    }
    tok->dec_off[tok->n_ids] = total;
    tok->dec_bytes = malloc(total + 1);
    PT_CHECK_ALLOC(tok->dec_bytes, err, total + 1);
    for (size_t i = 0; i < tok->n_ids; i++)
        if (tok->tok_str[i]) token_decoded(tok->tok_str[i], (uint8_t *)tok->dec_bytes + tok->dec_off[i]);

    bool need_word = false;
    for (size_t i = 0; i < tok->n_added; i++) {
        const tok_added *a = &tok->added[i];
        if (a->len == 0) continue; /* `tokenizers` ignores empty added tokens */
        PT_TRY(trie_insert(&tok->trie[a->normalized ? 1 : 0], a->content, a->len, (int32_t)i, err));
        need_word |= a->single_word;
    }
    if (need_word && !tok->word_re.code) {
        /* Rust regex's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners. */
        static const char word[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";
        PT_TRY(tok_regex_compile(&tok->word_re, word, sizeof word - 1, false, "builtin", "single_word", err));
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------------- lifecycle, lookups */

void tok_ids_free(tok_ids *v) {
    if (!v) return;
    free(v->ids);
    free(v->offsets);
    *v = (tok_ids){0};
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    tokenizer_encoder_free(tok->scratch);
    for (size_t i = 0; i < tok->n_ids; i++) free(tok->tok_str[i]);
    free(tok->tok_str);
    free(tok->tok_flags);
    free(tok->dec_off);
    free(tok->dec_bytes);
    tok_strmap_free(&tok->vocab);
    tok_u64map_free(&tok->merges);
    free(tok->merge_list);
    for (size_t i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    tok_strmap_free(&tok->added_map);
    for (int t = 0; t < 2; t++) free(tok->trie[t].nodes);
    tok_regex_free(&tok->word_re);
    for (size_t i = 0; i < tok->n_steps; i++) tok_regex_free(&tok->steps[i].re);
    free(tok->steps);
    tok_regex_free(&tok->gpt2_re);
    free(tok->pp_prefix);
    free(tok->pp_suffix);
    cJSON_Delete(tok->normalizer_json);
    cJSON_Delete(tok->pre_tokenizer_json);
    cJSON_Delete(tok->post_processor_json);
    cJSON_Delete(tok->decoder_json);
    cJSON_Delete(tok->config_json);
    free(tok->bos_token);
    free(tok->eos_token);
    free(tok->pad_token);
    free(tok->chat_template);
    free(tok->name);
    free(tok);
}

int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token, size_t len) {
    int32_t a = tok_strmap_get(&tok->added_map, token, len);
    if (a >= 0) return tok->added[a].id;
    return tok_strmap_get(&tok->vocab, token, len);
}

const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id) {
    if (id < 0 || (size_t)id >= tok->n_ids) return NULL;
    return tok->tok_str[id];
}

size_t tokenizer_n_ids(const tokenizer *tok) { return tok->n_ids; }

bool tokenizer_is_special(const tokenizer *tok, int32_t id) {
    return id >= 0 && (size_t)id < tok->n_ids && (tok->tok_flags[id] & TOKF_SPECIAL);
}

const char *tokenizer_bos_token(const tokenizer *tok) { return tok->bos_token; }
const char *tokenizer_eos_token(const tokenizer *tok) { return tok->eos_token; }
int32_t tokenizer_bos_id(const tokenizer *tok) {
    return tok->bos_token ? tokenizer_token_to_id(tok, tok->bos_token, strlen(tok->bos_token)) : -1;
}
int32_t tokenizer_eos_id(const tokenizer *tok) {
    return tok->eos_token ? tokenizer_token_to_id(tok, tok->eos_token, strlen(tok->eos_token)) : -1;
}
const char *tokenizer_chat_template(const tokenizer *tok) { return tok->chat_template; }

pt_status tokenizer_set_chat_template(tokenizer *tok, const char *jinja, pt_error *err) {
    char *copy = NULL;
    if (jinja) {
        copy = strdup(jinja);
        PT_CHECK_ALLOC(copy, err, strlen(jinja) + 1);
    }
    free(tok->chat_template);
    tok->chat_template = copy;
    return PT_OK;
}

pt_status tokenizer_encode(tok_ids *out, tokenizer *tok, const char *text, size_t len, unsigned flags, pt_error *err) {
    if (!tok->scratch) PT_TRY(tokenizer_encoder_init(&tok->scratch, tok, err));
    return tokenizer_encoder_encode(out, tok->scratch, text, len, flags, err);
}

/* ------------------------------------------------------------------------------- decode */

pt_status tokenizer_decode(char **out, size_t *out_len, const tokenizer *tok, const int32_t *ids, size_t n,
                           bool skip_special, pt_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        PT_CHECK(id >= 0 && (size_t)id < tok->n_ids && tok->tok_str[id], err, PT_ERR_INVALID,
                 "decode: id %d at position %zu is not in the vocabulary of %s (ids 0..%zu)", (int)id, i, tok->name,
                 tok->n_ids ? tok->n_ids - 1 : 0);
        if (skip_special && (tok->tok_flags[id] & TOKF_SPECIAL)) continue;
        total += tok->dec_off[id + 1] - tok->dec_off[id];
    }
    char *buf = malloc(total + 1);
    PT_CHECK_ALLOC(buf, err, total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (skip_special && (tok->tok_flags[id] & TOKF_SPECIAL)) continue;
        size_t k = tok->dec_off[id + 1] - tok->dec_off[id];
        memcpy(buf + o, tok->dec_bytes + tok->dec_off[id], k);
        o += k;
    }
    buf[o] = '\0';
    *out = buf;
    if (out_len) *out_len = o;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- batches */

pt_status tokenizer_encode_batch(tok_ids *outs, const tokenizer *tok, const char *const *texts, const size_t *lens,
                                 size_t n, unsigned flags, int threads, pt_error *err) {
    int nt = threads > 0 ? threads : omp_get_max_threads();
    size_t first_bad = n;
    pt_error bad = {0};
#pragma omp parallel num_threads(nt)
    {
        pt_error lerr = {0};
        tokenizer_encoder *enc = NULL;
        pt_status st = tokenizer_encoder_init(&enc, tok, &lerr);
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) {
            if (st != PT_OK) continue; /* this thread has no encoder: recorded below */
            pt_status s = tokenizer_encoder_encode(&outs[i], enc, texts[i], lens[i], flags, &lerr);
            if (s != PT_OK) {
#pragma omp critical(tok_batch_error)
                if (i < first_bad) {
                    first_bad = i;
                    bad = lerr;
                    error_prefix(&bad, "text %zu of %zu", i, n);
                }
            }
        }
        if (st != PT_OK) {
#pragma omp critical(tok_batch_error)
            if (first_bad == n) {
                first_bad = 0;
                bad = lerr;
            }
        }
        tokenizer_encoder_free(enc);
    }
    if (first_bad < n) {
        *err = bad;
        return bad.status;
    }
    return PT_OK;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

pt_status tokenizer_bench_encode(double *bytes_per_s, const tokenizer *tok, const char *text, size_t len, int threads,
                                 int repeats, pt_error *err) {
    const size_t chunk = 64 * 1024;
    size_t n = len / (chunk / 2) + 1, k = 0;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    tok_ids *outs = calloc(n, sizeof *outs);
    pt_status st = PT_OK;
    if (!texts || !lens || !outs) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %zu benchmark chunks", n);
        goto done;
    }
    for (size_t at = 0; at < len && k < n;) {
        size_t end = at + chunk < len ? at + chunk : len;
        if (end < len) { /* end the chunk after a newline when there is one in its second half */
            const char *nl = memrchr(text + at + chunk / 2, '\n', end - at - chunk / 2);
            if (nl) end = (size_t)(nl - text) + 1;
        }
        texts[k] = text + at;
        lens[k++] = end - at;
        at = end;
    }
    double best = 0;
    for (int r = 0; r <= (repeats > 0 ? repeats : 1); r++) {
        for (size_t i = 0; i < k; i++) outs[i].n = 0;
        double t0 = now_seconds();
        PT_TRY_GOTO(st, tokenizer_encode_batch(outs, tok, texts, lens, k, 0, threads, err), done);
        double dt = now_seconds() - t0;
        if (r > 0 && dt > 0 && (double)len / dt > best) best = (double)len / dt; /* pass 0 warms the caches */
    }
    *bytes_per_s = best;
done:
    if (outs)
        for (size_t i = 0; i < k; i++) tok_ids_free(&outs[i]);
    free(outs);
    free(texts);
    free(lens);
    return st;
}
