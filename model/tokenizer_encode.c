/* tokenizer_encode.c — text to ids, exactly as `tokenizers` (0.23) encodes with a byte-level BPE.
 *
 * Pipeline for text[0..len) (positions are byte offsets into the caller's text throughout):
 *   added tokens, pass 0 (normalized=false) then pass 1 (normalized=true), each leftmost-longest
 *     over a byte trie (AddedVocabulary::find_matches: a single_word match next to a \w character
 *     is dropped and scanning resumes after it; lstrip widens the match over the whitespace before
 *     it, never past the previous match; rstrip over the whitespace after it);
 *   invalid UTF-8: every byte that does not begin a well-formed sequence is its own pre-token;
 *   pre-tokenizer steps on each valid run: Split runs the regex on one piece at a time, collects
 *     (gap, match) ranges as Pattern::find_matches does over Oniguruma's find_iter (an empty match
 *     right after the previous match is skipped, the search then advances one character), then
 *     applies the behaviour (NormalizedString::split) and drops empty pieces; ByteLevel marks a
 *     virtual ' ' before a piece not starting with one (add_prefix_space) and may cut with GPT-2's
 *     regex (use_regex);
 *   BPE per piece (Word::merge_all): one symbol per byte (its byte character's id); a min-heap of
 *     (rank, position); an entry is stale when its symbol was merged away, is last, or its current
 *     pair no longer produces the entry's new id; merging updates the neighbours' pairs.
 * Results per piece are cached (bytes -> ids and spans) for pieces up to 256 bytes; the cache is
 * emptied when full.
 */
#include "model/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct tok_piece {
    size_t start, end; /* bytes of the text */
    uint8_t vspace;    /* a virtual ' ' precedes the bytes (ByteLevel add_prefix_space) */
} tok_piece;

typedef struct tok_match {
    size_t start, end; /* in the subject */
    bool flag;         /* find_matches: is a match; after the behaviour: remove */
} tok_match;

typedef struct bpe_sym {
    int32_t c;
    int32_t prev, next;
    uint32_t start, end; /* byte span in the BPE input; start == end: merged away */
} bpe_sym;

typedef struct bpe_item {
    uint32_t rank, pos;
    int32_t new_id;
} bpe_item;

/* About 3.3 MB per encoder: 32K slots (half may fill), 512 KB of keys, 256K cached tokens. */
enum { CACHE_SLOTS = 1 << 15, CACHE_MAX_KEY = 256, CACHE_KEY_BYTES = 512 << 10, CACHE_TOKENS = 256 << 10 };

/* One probe touches one slot: hash and where the key and value live. */
typedef struct cache_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, key_len, val_off, val_n;
} cache_slot;

typedef struct tok_cache {
    cache_slot *slot; /* (CACHE_SLOTS) */
    uint8_t *keys;    /* (CACHE_KEY_BYTES) */
    int32_t *ids;     /* (CACHE_TOKENS) */
    uint16_t *spans;  /* (CACHE_TOKENS, 2) byte span of each token in its piece (pieces <= 256 bytes) */
    size_t keys_n, vals_n, n;
} tok_cache;

struct tokenizer_encoder {
    const tokenizer *tok;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    tok_piece *pa, *pb;
    size_t pa_cap, pb_cap;
    tok_match *m;
    size_t m_cap;
    uint8_t *buf; /* regex subject / BPE input with the virtual space */
    size_t buf_cap;
    uint8_t *sbuf; /* byte-level text of a piece (ignore_merges lookups) */
    size_t sbuf_cap;
    bpe_sym *sym;
    size_t sym_cap;
    bpe_item *heap;
    size_t heap_cap;
    int32_t *res_ids;   /* one BPE result */
    uint32_t *res_span; /* (res, 2) */
    size_t res_cap;
    tok_cache cache;
};

/* Where encoding results go: ids (encode) or the pre-token callback (training). */
typedef struct enc_sink {
    tok_ids *out;
    bool offsets;
    tok_pretoken_fn fn;
    void *ctx;
} enc_sink;

static pt_status grow(void **p, size_t *cap, size_t need, size_t elem, pt_error *err) {
    if (need <= *cap) return PT_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    PT_CHECK_ALLOC(q, err, c * elem);
    *p = q;
    *cap = c;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- lifecycle */

pt_status tokenizer_encoder_init(tokenizer_encoder **out, const tokenizer *tok, pt_error *err) {
    tokenizer_encoder *enc = calloc(1, sizeof *enc);
    PT_CHECK_ALLOC(enc, err, sizeof *enc);
    enc->tok = tok;
    enc->md = pcre2_match_data_create(1, NULL);
    enc->mctx = pcre2_match_context_create(NULL);
    enc->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    tok_cache *c = &enc->cache;
    c->slot = calloc(CACHE_SLOTS, sizeof *c->slot);
    c->keys = malloc(CACHE_KEY_BYTES);
    c->ids = malloc(CACHE_TOKENS * sizeof *c->ids);
    c->spans = malloc(CACHE_TOKENS * 2 * sizeof *c->spans);
    if (!enc->md || !enc->mctx || !enc->jit_stack || !c->slot || !c->keys || !c->ids || !c->spans) {
        tokenizer_encoder_free(enc);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory creating a tokenizer encoder (about 3.3 MiB of merge cache)");
    }
    pcre2_jit_stack_assign(enc->mctx, NULL, enc->jit_stack);
    *out = enc;
    return PT_OK;
}

void tokenizer_encoder_free(tokenizer_encoder *enc) {
    if (!enc) return;
    pcre2_match_data_free(enc->md);
    pcre2_match_context_free(enc->mctx);
    pcre2_jit_stack_free(enc->jit_stack);
    free(enc->pa);
    free(enc->pb);
    free(enc->m);
    free(enc->buf);
    free(enc->sbuf);
    free(enc->sym);
    free(enc->heap);
    free(enc->res_ids);
    free(enc->res_span);
    tok_cache *c = &enc->cache;
    free(c->slot);
    free(c->keys);
    free(c->ids);
    free(c->spans);
    free(enc);
}

/* ------------------------------------------------------------------------------- output */

static pt_status emit(enc_sink *s, int32_t id, size_t start, size_t end, pt_error *err) {
    tok_ids *o = s->out;
    if (o->n == o->cap || (s->offsets && !o->offsets)) {
        size_t cap = o->n == o->cap ? (o->cap ? o->cap * 2 : 64) : o->cap;
        int32_t *ids = realloc(o->ids, cap * sizeof *ids);
        PT_CHECK_ALLOC(ids, err, cap * sizeof *ids);
        o->ids = ids;
        if (o->offsets || s->offsets) {
            size_t *off = realloc(o->offsets, cap * 2 * sizeof *off);
            PT_CHECK_ALLOC(off, err, cap * 2 * sizeof *off);
            if (!o->offsets) memset(off, 0, o->n * 2 * sizeof *off); /* earlier tokens: no offsets asked */
            o->offsets = off;
        }
        o->cap = cap;
    }
    o->ids[o->n] = id;
    if (o->offsets) {
        o->offsets[2 * o->n] = s->offsets ? start : 0;
        o->offsets[2 * o->n + 1] = s->offsets ? end : 0;
    }
    o->n++;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- regex splitting */

static size_t char_len_at(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return k <= n ? k : n;
}

/* Pattern::find_matches: (gap, false) and (match, true) ranges covering subj[0..len). */
static pt_status find_matches(tokenizer_encoder *enc, size_t *n_out, const uint8_t *subj, size_t len,
                              const tok_regex *re, pt_error *err) {
    size_t n = 0;
    if (len == 0) {
        PT_TRY(grow((void **)&enc->m, &enc->m_cap, 1, sizeof *enc->m, err));
        enc->m[n++] = (tok_match){0, 0, false};
        *n_out = n;
        return PT_OK;
    }
    size_t prev = 0, pos = 0, last_end = 0;
    bool have_last = false;
    while (pos <= len) {
        int rc = re->jit ? pcre2_jit_match(re->code, subj, len, pos, 0, enc->md, enc->mctx)
                         : pcre2_match(re->code, subj, len, pos, PCRE2_NO_UTF_CHECK, enc->md, enc->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            PT_FAIL(err, PT_ERR_BACKEND, "%s: pre-tokenizer regex failed on a %zu-byte piece: %s", enc->tok->name, len,
                    (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(enc->md);
        size_t ms = ov[0], me = ov[1] > ov[0] ? ov[1] : ov[0];
        if (ms == me && have_last && last_end == me) { /* Oniguruma's FindMatches skips this one */
            pos = me < len ? me + char_len_at(subj + me, len - me) : len + 1;
            continue;
        }
        PT_TRY(grow((void **)&enc->m, &enc->m_cap, n + 2, sizeof *enc->m, err));
        if (prev != ms) enc->m[n++] = (tok_match){prev, ms, false};
        enc->m[n++] = (tok_match){ms, me, true};
        prev = me;
        have_last = true;
        last_end = me;
        pos = me > ms ? me : (me < len ? me + char_len_at(subj + me, len - me) : len + 1);
    }
    if (prev != len) {
        PT_TRY(grow((void **)&enc->m, &enc->m_cap, n + 1, sizeof *enc->m, err));
        enc->m[n++] = (tok_match){prev, len, false};
    }
    *n_out = n;
    return PT_OK;
}

/* NormalizedString::split's behaviours, in place on enc->m: afterwards flag means "remove". */
static size_t apply_behavior(tok_match *m, size_t n, tok_split_behavior beh) {
    size_t w = 0;
    bool prev = false;
    switch (beh) {
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++) m[i].flag = false;
        return n;
    case TOK_SPLIT_REMOVED: return n;
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            bool is = m[i].flag;
            if (is == prev && w > 0) m[w - 1].end = m[i].end;
            else m[w++] = (tok_match){m[i].start, m[i].end, false};
            prev = is;
        }
        return w;
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < n; i++) {
            bool is = m[i].flag;
            if (is && !prev && w > 0) m[w - 1].end = m[i].end;
            else m[w++] = (tok_match){m[i].start, m[i].end, false};
            prev = is;
        }
        return w;
    case TOK_SPLIT_MERGED_NEXT: {
        /* fold from the back, writing downwards from n (the write index never passes the read index) */
        size_t top = n;
        for (size_t i = n; i-- > 0;) {
            bool is = m[i].flag;
            if (is && !prev && top < n) m[top].start = m[i].start;
            else m[--top] = (tok_match){m[i].start, m[i].end, false};
            prev = is;
        }
        memmove(m, m + top, (n - top) * sizeof *m);
        return n - top;
    }
    }
    return n;
}

/* Append the pieces of subj (which is text + base, or enc->buf holding ' ' + text[base..]) to pb. */
static pt_status split_into(tokenizer_encoder *enc, size_t *nb, const uint8_t *subj, size_t len, size_t base,
                            bool vspace, const tok_regex *re, tok_split_behavior beh, bool invert, pt_error *err) {
    size_t n;
    PT_TRY(find_matches(enc, &n, subj, len, re, err));
    if (invert)
        for (size_t i = 0; i < n; i++) enc->m[i].flag = !enc->m[i].flag;
    n = apply_behavior(enc->m, n, beh);
    PT_TRY(grow((void **)&enc->pb, &enc->pb_cap, *nb + n, sizeof *enc->pb, err));
    for (size_t i = 0; i < n; i++) {
        tok_match mt = enc->m[i];
        if (mt.flag || mt.start == mt.end) continue;
        tok_piece p;
        if (vspace) { /* subject position x is text position base + x - 1; position 0 is the virtual space */
            p.vspace = mt.start == 0;
            p.start = mt.start == 0 ? base : base + mt.start - 1;
            p.end = base + mt.end - 1;
        } else {
            p = (tok_piece){base + mt.start, base + mt.end, 0};
        }
        enc->pb[(*nb)++] = p;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------------- BPE */

static void heap_push(bpe_item *h, size_t *n, bpe_item it) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].rank < it.rank || (h[p].rank == it.rank && h[p].pos <= it.pos)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static bpe_item heap_pop(bpe_item *h, size_t *n) {
    bpe_item top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos))) c++;
        if (last.rank < h[c].rank || (last.rank == h[c].rank && last.pos <= h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static void push_pair(const tokenizer *tok, bpe_item *h, size_t *nh, const bpe_sym *sym, int32_t pos) {
    const uint64_t *v = tok_u64map_get(&tok->merges, tok_pair_key(sym[pos].c, sym[sym[pos].next].c));
    if (v) heap_push(h, nh, (bpe_item){(uint32_t)(*v >> 32), (uint32_t)pos, (int32_t)(uint32_t)*v});
}

/* BPE of bytes[0..n) into enc->res_ids / res_span; *n_res tokens. */
static pt_status bpe_run(tokenizer_encoder *enc, size_t *n_res, const uint8_t *bytes, size_t n, pt_error *err) {
    const tokenizer *tok = enc->tok;
    PT_CHECK(n < UINT32_MAX, err, PT_ERR_INVALID, "%s: a pre-token of %zu bytes is too long to encode", tok->name, n);
    PT_TRY(grow((void **)&enc->sym, &enc->sym_cap, n, sizeof *enc->sym, err));
    bpe_sym *sym = enc->sym;
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[bytes[i]];
        if (id < 0) {
            if (tok->unk_id < 0) continue; /* dropped, as `tokenizers` does without unk_token */
            if (tok->fuse_unk && ns > 0 && sym[ns - 1].c == tok->unk_id && sym[ns - 1].end == i) {
                sym[ns - 1].end = (uint32_t)i + 1;
                continue;
            }
            id = tok->unk_id;
        }
        sym[ns] = (bpe_sym){id, (int32_t)ns - 1, (int32_t)ns + 1, (uint32_t)i, (uint32_t)i + 1};
        ns++;
    }
    if (ns) sym[ns - 1].next = -1;
    PT_TRY(grow((void **)&enc->heap, &enc->heap_cap, 2 * ns + 1, sizeof *enc->heap, err));
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) push_pair(tok, enc->heap, &nh, sym, (int32_t)i);
    while (nh > 0) {
        bpe_item top = heap_pop(enc->heap, &nh);
        bpe_sym *s = &sym[top.pos];
        if (s->start == s->end || s->next < 0) continue;
        bpe_sym right = sym[s->next];
        const uint64_t *v = tok_u64map_get(&tok->merges, tok_pair_key(s->c, right.c));
        if (!v || (int32_t)(uint32_t)*v != top.new_id) continue; /* expired entry */
        sym[s->next].end = sym[s->next].start;                 /* merged away */
        s->c = top.new_id;
        s->end = right.end;
        s->next = right.next;
        if (right.next >= 0) sym[right.next].prev = (int32_t)top.pos;
        if (nh + 2 > enc->heap_cap) PT_TRY(grow((void **)&enc->heap, &enc->heap_cap, nh + 2, sizeof *enc->heap, err));
        if (s->prev >= 0) push_pair(tok, enc->heap, &nh, sym, s->prev);
        if (s->next >= 0) push_pair(tok, enc->heap, &nh, sym, (int32_t)top.pos);
    }
    if (ns > enc->res_cap) { /* ns bounds the result */
        int32_t *ids = realloc(enc->res_ids, ns * sizeof *ids);
        PT_CHECK_ALLOC(ids, err, ns * sizeof *ids);
        enc->res_ids = ids;
        uint32_t *sp = realloc(enc->res_span, ns * 2 * sizeof *sp);
        PT_CHECK_ALLOC(sp, err, ns * 2 * sizeof *sp);
        enc->res_span = sp;
        enc->res_cap = ns;
    }
    size_t k = 0;
    for (int32_t i = ns ? 0 : -1; i >= 0; i = sym[i].next) {
        enc->res_ids[k] = sym[i].c;
        enc->res_span[2 * k] = sym[i].start;
        enc->res_span[2 * k + 1] = sym[i].end;
        k++;
    }
    *n_res = k;
    return PT_OK;
}

static void cache_clear(tok_cache *c) {
    memset(c->slot, 0, CACHE_SLOTS * sizeof *c->slot);
    c->n = c->keys_n = c->vals_n = 0;
}

/* Encode one pre-token and hand its ids to the sink. */
static pt_status encode_piece(tokenizer_encoder *enc, enc_sink *sink, const char *text, tok_piece p, pt_error *err) {
    const tokenizer *tok = enc->tok;
    size_t len = p.end - p.start + p.vspace;
    const uint8_t *bytes = (const uint8_t *)text + p.start;
    if (p.vspace) {
        PT_TRY(grow((void **)&enc->buf, &enc->buf_cap, len, 1, err));
        enc->buf[0] = ' ';
        memcpy(enc->buf + 1, bytes, len - 1);
        bytes = enc->buf;
    }
    if (sink->fn) return sink->fn(sink->ctx, bytes, len, err);

    const int32_t *ids = NULL;
    const uint16_t *cspans = NULL; /* from the cache */
    const uint32_t *spans = NULL;  /* from bpe_run */
    size_t k = 0;
    if (tok->ignore_merges) { /* BPE::tokenize_with_cache: a whole piece in the vocabulary is one token */
        PT_TRY(grow((void **)&enc->sbuf, &enc->sbuf_cap, 2 * len, 1, err));
        size_t m = 0;
        for (size_t i = 0; i < len; i++) m += tok_utf8_encode(tok_byte_char(bytes[i]), enc->sbuf + m);
        int32_t id = tok_strmap_get(&tok->vocab, (const char *)enc->sbuf, m);
        if (id >= 0) return emit(sink, id, p.start, p.end, err);
    }
    tok_cache *c = &enc->cache;
    uint64_t h = 0;
    size_t slot = 0;
    bool cacheable = len <= CACHE_MAX_KEY;
    if (cacheable) {
        h = tok_hash_bytes(bytes, len) | 1;
        slot = (h >> 20) & (CACHE_SLOTS - 1);
        for (const cache_slot *cs; (cs = &c->slot[slot])->hash; slot = (slot + 1) & (CACHE_SLOTS - 1)) {
            if (cs->hash == h && cs->key_len == len && memcmp(c->keys + cs->key_off, bytes, len) == 0) {
                ids = c->ids + cs->val_off;
                cspans = c->spans + 2 * (size_t)cs->val_off;
                k = cs->val_n;
                break;
            }
        }
    }
    if (!ids) {
        PT_TRY(bpe_run(enc, &k, bytes, len, err));
        ids = enc->res_ids;
        spans = enc->res_span;
        if (cacheable) {
            if (c->n + 1 > CACHE_SLOTS / 2 || c->keys_n + len > CACHE_KEY_BYTES || c->vals_n + k > CACHE_TOKENS) {
                cache_clear(c);
                slot = (h >> 20) & (CACHE_SLOTS - 1);
            }
            while (c->slot[slot].hash) slot = (slot + 1) & (CACHE_SLOTS - 1);
            c->slot[slot] = (cache_slot){h, (uint32_t)c->keys_n, (uint32_t)len, (uint32_t)c->vals_n, (uint32_t)k};
            memcpy(c->keys + c->keys_n, bytes, len);
            memcpy(c->ids + c->vals_n, ids, k * sizeof *ids);
            for (size_t i = 0; i < 2 * k; i++) c->spans[2 * c->vals_n + i] = (uint16_t)spans[i];
            c->keys_n += len;
            c->vals_n += k;
            c->n++;
        }
    }
    for (size_t i = 0; i < k; i++) {
        /* input position x is text position p.start + x - vspace (the virtual space maps to p.start) */
        size_t a = cspans ? cspans[2 * i] : spans[2 * i], b = cspans ? cspans[2 * i + 1] : spans[2 * i + 1];
        size_t s = a < p.vspace ? p.start : p.start + a - p.vspace, e = b < p.vspace ? p.start : p.start + b - p.vspace;
        PT_TRY(emit(sink, ids[i], s, e, err));
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------------- pre-tokenizer */

/* A run of well-formed UTF-8: the pre-tokenizer steps, then BPE of every piece. */
static pt_status encode_valid(tokenizer_encoder *enc, enc_sink *sink, const char *text, size_t s, size_t e,
                              pt_error *err) {
    const tokenizer *tok = enc->tok;
    PT_TRY(grow((void **)&enc->pa, &enc->pa_cap, 1, sizeof *enc->pa, err));
    enc->pa[0] = (tok_piece){s, e, 0};
    size_t na = 1;
    const uint8_t *u = (const uint8_t *)text;
    for (size_t k = 0; k < tok->n_steps; k++) {
        const tok_step *st = &tok->steps[k];
        size_t nb = 0;
        for (size_t i = 0; i < na; i++) {
            tok_piece p = enc->pa[i];
            size_t len = p.end - p.start;
            if (st->kind == TOK_STEP_SPLIT) {
                PT_TRY(split_into(enc, &nb, u + p.start, len, p.start, false, &st->re, st->behavior, st->invert, err));
                continue;
            }
            bool vs = st->add_prefix_space && u[p.start] != ' ';
            if (!st->use_regex) {
                PT_TRY(grow((void **)&enc->pb, &enc->pb_cap, nb + 1, sizeof *enc->pb, err));
                enc->pb[nb++] = (tok_piece){p.start, p.end, vs};
            } else if (!vs) {
                PT_TRY(split_into(enc, &nb, u + p.start, len, p.start, false, &tok->gpt2_re, TOK_SPLIT_ISOLATED, false,
                                  err));
            } else {
                PT_TRY(grow((void **)&enc->buf, &enc->buf_cap, len + 1, 1, err));
                enc->buf[0] = ' ';
                memcpy(enc->buf + 1, u + p.start, len);
                PT_TRY(split_into(enc, &nb, enc->buf, len + 1, p.start, true, &tok->gpt2_re, TOK_SPLIT_ISOLATED, false,
                                  err));
            }
        }
        tok_piece *t = enc->pa;
        size_t tc = enc->pa_cap;
        enc->pa = enc->pb;
        enc->pa_cap = enc->pb_cap;
        enc->pb = t;
        enc->pb_cap = tc;
        na = nb;
    }
    for (size_t i = 0; i < na; i++) PT_TRY(encode_piece(enc, sink, text, enc->pa[i], err));
    return PT_OK;
}

/* Text between added tokens: valid UTF-8 runs, and every invalid byte as its own pre-token. */
static pt_status encode_plain(tokenizer_encoder *enc, enc_sink *sink, const char *text, size_t s, size_t e,
                              pt_error *err) {
    const uint8_t *u = (const uint8_t *)text;
    size_t run = s, i = s;
    while (i < e) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = tok_utf8_seq_len(u + i, e - i);
        if (k) {
            i += k;
            continue;
        }
        if (run < i) PT_TRY(encode_valid(enc, sink, text, run, i, err));
        PT_TRY(encode_piece(enc, sink, text, (tok_piece){i, i + 1, 0}, err));
        run = ++i;
    }
    if (run < e) PT_TRY(encode_valid(enc, sink, text, run, e, err));
    return PT_OK;
}

/* ------------------------------------------------------------------------------- added tokens */

/* Unicode White_Space (what Rust regex's \s matches). */
static bool is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The code point ending at text[end) (not before lo), its start in *start; false when invalid. */
static bool cp_before(const uint8_t *u, size_t lo, size_t end, uint32_t *cp, size_t *start) {
    for (size_t k = 1; k <= 4 && end >= lo + k; k++) {
        if (tok_utf8_seq_len(u + end - k, k) == k) {
            *cp = tok_utf8_decode(u + end - k, k);
            *start = end - k;
            return true;
        }
    }
    return false;
}

static size_t space_start_before(const uint8_t *u, size_t lo, size_t end) {
    uint32_t cp;
    size_t st;
    while (end > lo && cp_before(u, lo, end, &cp, &st) && is_space_cp(cp)) end = st;
    return end;
}

static size_t space_end_after(const uint8_t *u, size_t start, size_t hi) {
    while (start < hi) {
        size_t k = tok_utf8_seq_len(u + start, hi - start);
        if (!k || !is_space_cp(tok_utf8_decode(u + start, k))) break;
        start += k;
    }
    return start;
}

static bool is_word_at(tokenizer_encoder *enc, const uint8_t *u, size_t at, size_t k) {
    const tok_regex *re = &enc->tok->word_re;
    int rc = pcre2_match(re->code, u + at, k, 0, PCRE2_ANCHORED, enc->md, enc->mctx);
    return rc >= 0;
}

static pt_status added_pass(tokenizer_encoder *enc, enc_sink *sink, const char *text, size_t rs, size_t re, int pass,
                            pt_error *err);

static pt_status after_pass(tokenizer_encoder *enc, enc_sink *sink, const char *text, size_t s, size_t e, int pass,
                            pt_error *err) {
    if (pass == 0) return added_pass(enc, sink, text, s, e, 1, err);
    return encode_plain(enc, sink, text, s, e, err);
}

/* AddedVocabulary::find_matches over text[rs..re) with trie `pass`. */
static pt_status added_pass(tokenizer_encoder *enc, enc_sink *sink, const char *text, size_t rs, size_t re, int pass,
                            pt_error *err) {
    const tokenizer *tok = enc->tok;
    const tok_trie *t = &tok->trie[pass];
    const uint8_t *u = (const uint8_t *)text;
    if (t->count == 0) return after_pass(enc, sink, text, rs, re, pass, err);
    size_t done = rs, i = rs;
    while (i < re) {
        int32_t node = t->root[u[i]];
        if (node < 0) {
            i++;
            continue;
        }
        int32_t best = -1;
        size_t best_end = 0, j = i;
        for (;;) {
            if (t->nodes[node].added >= 0) {
                best = t->nodes[node].added;
                best_end = j + 1;
            }
            if (++j >= re) break;
            node = t->nodes[node].child;
            while (node >= 0 && t->nodes[node].byte != u[j]) node = t->nodes[node].sibling;
            if (node < 0) break;
        }
        if (best < 0) {
            i++;
            continue;
        }
        const tok_added *a = &tok->added[best];
        size_t ms = i, me = best_end;
        if (a->single_word) {
            uint32_t cp;
            size_t st;
            bool word_before = ms > rs && cp_before(u, rs, ms, &cp, &st) && is_word_at(enc, u, st, ms - st);
            size_t k = me < re ? tok_utf8_seq_len(u + me, re - me) : 0;
            bool word_after = k && is_word_at(enc, u, me, k);
            if (word_before || word_after) {
                i = me; /* the matcher moves on past a discarded match */
                continue;
            }
        }
        if (a->lstrip) {
            size_t ns = space_start_before(u, rs, ms);
            ms = ns > done ? ns : done;
        }
        if (a->rstrip) me = space_end_after(u, me, re);
        if (done < ms) PT_TRY(after_pass(enc, sink, text, done, ms, pass, err));
        if (!sink->fn) PT_TRY(emit(sink, a->id, ms, me, err));
        done = i = me;
    }
    if (done < re) PT_TRY(after_pass(enc, sink, text, done, re, pass, err));
    return PT_OK;
}

/* ------------------------------------------------------------------------------- entry points */

pt_status tokenizer_encoder_encode(tok_ids *out, tokenizer_encoder *enc, const char *text, size_t len, unsigned flags,
                                   pt_error *err) {
    const tokenizer *tok = enc->tok;
    enc_sink sink = {.out = out, .offsets = (flags & TOK_OFFSETS) != 0};
    size_t n0 = out->n;
    pt_status st = PT_OK;
    if (flags & TOK_ADD_SPECIAL)
        for (size_t i = 0; i < tok->n_pp_prefix && st == PT_OK; i++) st = emit(&sink, tok->pp_prefix[i], 0, 0, err);
    if (st == PT_OK) st = added_pass(enc, &sink, text, 0, len, 0, err);
    if (flags & TOK_ADD_SPECIAL)
        for (size_t i = 0; i < tok->n_pp_suffix && st == PT_OK; i++) st = emit(&sink, tok->pp_suffix[i], len, len, err);
    if (st != PT_OK) out->n = n0; /* nothing half-written stays behind */
    return st;
}

pt_status tok_encoder_pretokenize(tokenizer_encoder *enc, const char *text, size_t len, tok_pretoken_fn fn, void *ctx,
                                  pt_error *err) {
    enc_sink sink = {.fn = fn, .ctx = ctx};
    return added_pass(enc, &sink, text, 0, len, 0, err);
}
