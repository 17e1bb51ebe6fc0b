/* bpe_train.c — BpeTrainer::do_train of `tokenizers`, ported so that the merges come out identical.
 *
 * State (as there): words (symbol ids, with a count each), pair_counts (pair -> Σ count over
 * occurrences), and a max-heap of entries (count, pair, word positions) ordered by count, then
 * by the smaller pair. Each step pops the top entry; if its count is stale it is pushed back with
 * the current count; otherwise the pair's text is added to the vocabulary (or found there: two
 * pairs may spell the same token), the merge is recorded, and only the words in the entry's
 * positions are rewritten (Word::merge, left to right, non-overlapping). Each rewrite reports
 * (pair, -1) for the pairs it broke and (pair, +1) for the pairs it made; counts are updated, and
 * every pair made this step gets a new heap entry with the words where it appeared. The merged
 * pair's own count is not decremented, as in BpeTrainer. Merges are saved in order; when a pair
 * is recorded twice only its last rank is kept (BPE's merge map). Ties between identical heap
 * entries, which BpeTrainer leaves to its heap layout, go to the older entry here.
 */
#include "model/bpe_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer_impl.h"

/* Stable byte storage: blocks never move, so tok_strmap keys may point into them. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

typedef struct train_word {
    int32_t *sym; /* (n) */
    uint32_t n;
} train_word;

typedef struct train_entry {
    uint64_t count;
    int32_t a, b;
    uint64_t seq;  /* push order: older first among equal (count, pair) */
    uint32_t *pos; /* (n_pos) word indices */
    size_t n_pos;
} train_entry;

struct bpe_trainer {
    size_t vocab_size, n_special;
    uint64_t min_frequency;
    char **special;
    char *bos, *eos, *pad, *chat_template;
    bool add_bos;
    bool gpt2;
    bool single_digits; /* "digits": DeepSeek-V3's regexes, one digit per pre-token */
    tokenizer *pre; /* pre-tokenizer and special tokens only */
    tokenizer_encoder *enc;
    arena_block *arena;
    tok_strmap words; /* word bytes -> index */
    size_t n_words, cap_words;
    const char **word_ptr;
    uint32_t *word_len;
    uint64_t *word_count;
};

static char *arena_copy(arena_block **head, const void *p, size_t n) {
    arena_block *b = *head;
    if (!b || b->used + n + 1 > b->cap) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = *head;
        b->used = 0;
        b->cap = cap;
        *head = b;
    }
    char *d = b->data + b->used;
    memcpy(d, p, n);
    d[n] = '\0';
    b->used += n + 1;
    return d;
}

static void arena_free(arena_block *b) {
    while (b) {
        arena_block *n = b->next;
        free(b);
        b = n;
    }
}

static char *dup_or_null(const char *s, bool *ok) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = false;
    return d;
}

/* ------------------------------------------------------------------------------- presets */

static const char DS_DIGITS[] = "\\p{N}{1,3}";
static const char ONE_DIGIT[] = "\\p{N}";
static const char DS_CJK[] = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
static const char DS_MAIN[] = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
                              "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
                              "| ?[\\p{P}\\p{S}]+[\r\n]*"
                              "|\\s*[\r\n]+"
                              "|\\s+(?!\\S)"
                              "|\\s+";

static cJSON *split_json(const char *regex) {
    cJSON *s = cJSON_CreateObject(), *pat = cJSON_CreateObject();
    if (!s || !pat || !cJSON_AddStringToObject(s, "type", "Split") || !cJSON_AddStringToObject(pat, "Regex", regex)) {
        cJSON_Delete(s);
        cJSON_Delete(pat);
        return NULL;
    }
    cJSON_AddItemToObject(s, "pattern", pat);
    if (!cJSON_AddStringToObject(s, "behavior", "Isolated") || !cJSON_AddBoolToObject(s, "invert", false)) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

static cJSON *bytelevel_json(bool prefix, bool regex) {
    cJSON *b = cJSON_CreateObject();
    if (!b || !cJSON_AddStringToObject(b, "type", "ByteLevel") || !cJSON_AddBoolToObject(b, "add_prefix_space", prefix) ||
        !cJSON_AddBoolToObject(b, "trim_offsets", true) || !cJSON_AddBoolToObject(b, "use_regex", regex)) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

/* DeepSeek-V3's pre-tokenizer (its tokenizer.json), the same with single digits, or GPT-2's
 * ByteLevel regex. */
static cJSON *pretok_json(bool gpt2, bool single_digits) {
    if (gpt2) return bytelevel_json(false, true);
    cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray();
    if (!seq || !list || !cJSON_AddStringToObject(seq, "type", "Sequence")) {
        cJSON_Delete(seq);
        cJSON_Delete(list);
        return NULL;
    }
    cJSON_AddItemToObject(seq, "pretokenizers", list);
    cJSON *items[4] = {split_json(single_digits ? ONE_DIGIT : DS_DIGITS), split_json(DS_CJK), split_json(DS_MAIN), bytelevel_json(false, false)};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        if (items[i] && ok) ok = cJSON_AddItemToArray(list, items[i]);
        else cJSON_Delete(items[i]), ok = false;
    }
    if (!ok) {
        cJSON_Delete(seq);
        return NULL;
    }
    return seq;
}

/* A tokenizer.json skeleton: the given vocab/merges (may be empty), specials, pre-tokenizer. */
static cJSON *skeleton(const bpe_trainer *tr, cJSON *vocab, cJSON *merges) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *added = cJSON_CreateArray();
    bool ok = root && model && added && vocab && merges;
    for (size_t i = 0; ok && i < tr->n_special; i++) {
        cJSON *a = cJSON_CreateObject();
        ok = a && cJSON_AddNumberToObject(a, "id", (double)i) && cJSON_AddStringToObject(a, "content", tr->special[i]) &&
             cJSON_AddBoolToObject(a, "single_word", false) && cJSON_AddBoolToObject(a, "lstrip", false) &&
             cJSON_AddBoolToObject(a, "rstrip", false) && cJSON_AddBoolToObject(a, "normalized", false) &&
             cJSON_AddBoolToObject(a, "special", true) && cJSON_AddItemToArray(added, a);
        if (!ok) cJSON_Delete(a);
    }
    ok = ok && cJSON_AddStringToObject(root, "version", "1.0") && cJSON_AddNullToObject(root, "truncation") &&
         cJSON_AddNullToObject(root, "padding");
    if (ok) {
        cJSON_AddItemToObject(root, "added_tokens", added);
        added = NULL;
        cJSON *norm = cJSON_CreateObject();
        ok = norm && cJSON_AddStringToObject(norm, "type", "Sequence") && cJSON_AddArrayToObject(norm, "normalizers");
        if (ok) cJSON_AddItemToObject(root, "normalizer", norm);
        else cJSON_Delete(norm);
    }
    cJSON *pre = ok ? pretok_json(tr->gpt2, tr->single_digits) : NULL;
    ok = ok && pre;
    if (ok) cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    if (ok && tr->add_bos && tr->bos) { /* TemplateProcessing "<bos> $A" / "<bos> $A <bos> $B" */
        int32_t bos_id = -1;
        for (size_t i = 0; i < tr->n_special; i++)
            if (bos_id < 0 && strcmp(tr->special[i], tr->bos) == 0) bos_id = (int32_t)i;
        cJSON *pp = cJSON_CreateObject(), *single = cJSON_CreateArray(), *pair = cJSON_CreateArray();
        cJSON *sp = cJSON_CreateObject(), *entry = cJSON_CreateObject();
        ok = pp && single && pair && sp && entry && cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
        for (int k = 0; ok && k < 6; k++) {
            /* single: BOS A; pair: BOS A BOS B */
            bool is_seq = k == 1 || k == 3 || k == 5;
            cJSON *list = k < 2 ? single : pair;
            cJSON *it = cJSON_CreateObject(), *inner = cJSON_CreateObject();
            ok = it && inner && cJSON_AddStringToObject(inner, "id", is_seq ? (k == 5 ? "B" : "A") : tr->bos) &&
                 cJSON_AddNumberToObject(inner, "type_id", k == 5 ? 1 : 0);
            if (ok) {
                cJSON_AddItemToObject(it, is_seq ? "Sequence" : "SpecialToken", inner);
                inner = NULL;
                ok = cJSON_AddItemToArray(list, it);
            }
            if (!ok) {
                cJSON_Delete(it);
                cJSON_Delete(inner);
            }
        }
        const char *toks[1] = {tr->bos};
        int ids[1] = {bos_id};
        cJSON *ids_arr = cJSON_CreateIntArray(ids, 1), *tok_arr = cJSON_CreateStringArray(toks, 1);
        ok = ok && ids_arr && tok_arr && bos_id >= 0 && cJSON_AddStringToObject(entry, "id", tr->bos);
        if (ok) {
            cJSON_AddItemToObject(entry, "ids", ids_arr);
            cJSON_AddItemToObject(entry, "tokens", tok_arr);
            cJSON_AddItemToObject(sp, tr->bos, entry);
            cJSON_AddItemToObject(pp, "single", single);
            cJSON_AddItemToObject(pp, "pair", pair);
            cJSON_AddItemToObject(pp, "special_tokens", sp);
            cJSON_AddItemToObject(root, "post_processor", pp);
        } else {
            cJSON_Delete(ids_arr);
            cJSON_Delete(tok_arr);
            cJSON_Delete(entry);
            cJSON_Delete(sp);
            cJSON_Delete(single);
            cJSON_Delete(pair);
            cJSON_Delete(pp);
        }
    } else if (ok) {
        ok = cJSON_AddNullToObject(root, "post_processor") != NULL;
    }
    cJSON *dec = ok ? bytelevel_json(true, true) : NULL;
    ok = ok && dec;
    if (ok) cJSON_AddItemToObject(root, "decoder", dec);
    ok = ok && cJSON_AddStringToObject(model, "type", "BPE") && cJSON_AddNullToObject(model, "dropout") &&
         cJSON_AddNullToObject(model, "unk_token") && cJSON_AddNullToObject(model, "continuing_subword_prefix") &&
         cJSON_AddNullToObject(model, "end_of_word_suffix") && cJSON_AddBoolToObject(model, "fuse_unk", false) &&
         cJSON_AddBoolToObject(model, "byte_fallback", false) && cJSON_AddBoolToObject(model, "ignore_merges", false);
    if (ok) {
        cJSON_AddItemToObject(model, "vocab", vocab);
        cJSON_AddItemToObject(model, "merges", merges);
        cJSON_AddItemToObject(root, "model", model);
        return root;
    }
    cJSON_Delete(added);
    cJSON_Delete(model);
    cJSON_Delete(root);
    cJSON_Delete(vocab);
    cJSON_Delete(merges);
    return NULL;
}

/* ------------------------------------------------------------------------------- feeding */

pt_status bpe_trainer_init(bpe_trainer **out, const bpe_train_opts *opts, pt_error *err) {
    PT_CHECK(opts->vocab_size >= 256 + opts->n_special, err, PT_ERR_CONFIG,
             "vocab_size %zu is too small: it must hold the %zu special tokens and the 256 byte characters",
             opts->vocab_size, opts->n_special);
    PT_CHECK(opts->vocab_size < (1u << 24), err, PT_ERR_CONFIG, "vocab_size %zu is too large (limit 2^24)",
             opts->vocab_size);
    const char *pre = opts->pre_tokenizer ? opts->pre_tokenizer : "deepseek-v3";
    PT_CHECK(strcmp(pre, "deepseek-v3") == 0 || strcmp(pre, "digits") == 0 || strcmp(pre, "gpt2") == 0, err,
             PT_ERR_CONFIG, "pre_tokenizer \"%s\" is not known; supported: deepseek-v3, digits, gpt2", pre);
    const char *named[3] = {opts->bos_token, opts->eos_token, opts->pad_token};
    for (int k = 0; k < 3; k++) {
        bool found = !named[k];
        for (size_t i = 0; i < opts->n_special && !found; i++) found = strcmp(opts->special_tokens[i], named[k]) == 0;
        PT_CHECK(found, err, PT_ERR_CONFIG, "%s \"%s\" must be one of the special tokens",
                 k == 0 ? "bos_token" : k == 1 ? "eos_token" : "pad_token", named[k]);
    }
    PT_CHECK(!opts->add_bos || opts->bos_token, err, PT_ERR_CONFIG, "add_bos needs a bos_token");
    for (size_t i = 0; i < opts->n_special; i++)
        PT_CHECK(opts->special_tokens[i] && opts->special_tokens[i][0], err, PT_ERR_CONFIG,
                 "special token %zu is empty", i);

    bpe_trainer *tr = calloc(1, sizeof *tr);
    PT_CHECK_ALLOC(tr, err, sizeof *tr);
    tr->vocab_size = opts->vocab_size;
    tr->min_frequency = opts->min_frequency;
    tr->add_bos = opts->add_bos;
    tr->gpt2 = strcmp(pre, "gpt2") == 0;
    tr->single_digits = strcmp(pre, "digits") == 0;
    bool ok = true;
    tr->special = calloc(opts->n_special ? opts->n_special : 1, sizeof *tr->special);
    ok = tr->special != NULL;
    for (size_t i = 0; ok && i < opts->n_special; i++) {
        tr->special[i] = strdup(opts->special_tokens[i]);
        ok = tr->special[i] != NULL;
        tr->n_special = i + 1;
    }
    tr->bos = dup_or_null(opts->bos_token, &ok);
    tr->eos = dup_or_null(opts->eos_token, &ok);
    tr->pad = dup_or_null(opts->pad_token, &ok);
    tr->chat_template = dup_or_null(opts->chat_template, &ok);
    if (!ok) {
        bpe_trainer_free(tr);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory creating the BPE trainer");
    }
    bool save_bos = tr->add_bos;
    tr->add_bos = false; /* the pre-tokenizing skeleton needs no post-processor */
    cJSON *root = skeleton(tr, cJSON_CreateObject(), cJSON_CreateArray());
    tr->add_bos = save_bos;
    pt_status st = root ? tok_from_cjson(&tr->pre, root, "bpe trainer", err)
                        : error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory creating the BPE trainer");
    cJSON_Delete(root);
    if (st == PT_OK) st = tokenizer_encoder_init(&tr->enc, tr->pre, err);
    if (st != PT_OK) {
        bpe_trainer_free(tr);
        return st;
    }
    *out = tr;
    return PT_OK;
}

void bpe_trainer_free(bpe_trainer *tr) {
    if (!tr) return;
    for (size_t i = 0; i < tr->n_special; i++) free(tr->special[i]);
    free(tr->special);
    free(tr->bos);
    free(tr->eos);
    free(tr->pad);
    free(tr->chat_template);
    tokenizer_encoder_free(tr->enc);
    tokenizer_free(tr->pre);
    arena_free(tr->arena);
    tok_strmap_free(&tr->words);
    free(tr->word_ptr);
    free(tr->word_len);
    free(tr->word_count);
    free(tr);
}

static pt_status count_word(void *ctx, const uint8_t *bytes, size_t len, pt_error *err) {
    bpe_trainer *tr = ctx;
    int32_t w = tok_strmap_get(&tr->words, (const char *)bytes, len);
    if (w >= 0) {
        tr->word_count[w]++;
        return PT_OK;
    }
    PT_CHECK(len < UINT32_MAX && tr->n_words < INT32_MAX, err, PT_ERR_INVALID, "training word too long or too many words");
    if (tr->n_words == tr->cap_words) {
        size_t cap = tr->cap_words ? tr->cap_words * 2 : 1024;
        const char **p = realloc(tr->word_ptr, cap * sizeof *p);
        if (p) tr->word_ptr = p;
        uint32_t *l = realloc(tr->word_len, cap * sizeof *l);
        if (l) tr->word_len = l;
        uint64_t *c = realloc(tr->word_count, cap * sizeof *c);
        if (c) tr->word_count = c;
        PT_CHECK(p && l && c, err, PT_ERR_NOMEM, "out of memory counting %zu training words", cap);
        tr->cap_words = cap;
    }
    char *copy = arena_copy(&tr->arena, bytes, len);
    PT_CHECK_ALLOC(copy, err, len + 1);
    w = (int32_t)tr->n_words;
    PT_CHECK(tok_strmap_put(&tr->words, copy, len, w, NULL) >= 0, err, PT_ERR_NOMEM, "out of memory counting words");
    tr->word_ptr[w] = copy;
    tr->word_len[w] = (uint32_t)len;
    tr->word_count[w] = 1;
    tr->n_words++;
    return PT_OK;
}

pt_status bpe_trainer_feed(bpe_trainer *tr, const char *text, size_t len, pt_error *err) {
    return tok_encoder_pretokenize(tr->enc, text, len, count_word, tr, err);
}

pt_status bpe_trainer_feed_file(bpe_trainer *tr, const char *path, pt_error *err) {
    FILE *f = fopen(path, "rb");
    PT_CHECK(f, err, PT_ERR_IO, "cannot open training file '%s': %s", path, strerror(errno));
    size_t plen = strlen(path);
    bool jsonl = plen > 6 && strcmp(path + plen - 6, ".jsonl") == 0;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    pt_status st = PT_OK;
    while (st == PT_OK && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (!jsonl) {
            st = bpe_trainer_feed(tr, line, (size_t)n, err);
            continue;
        }
        size_t k = (size_t)n;
        while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' ' || line[k - 1] == '\t')) k--;
        if (k == 0) continue;
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(line, k, &end, 0);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
        if (!obj || !cJSON_IsString(t)) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "%s:%zu: %s; each line must be a JSON object with a string field \"text\"", path, lineno,
                           !obj ? "not valid JSON" : "no string field \"text\"");
        } else {
            st = bpe_trainer_feed(tr, t->valuestring, strlen(t->valuestring), err);
            if (st != PT_OK) error_prefix(err, "%s:%zu", path, lineno);
        }
        cJSON_Delete(obj);
    }
    if (st == PT_OK && ferror(f))
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot read '%s': %s", path, strerror(errno));
    free(line);
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------------------- merging */

typedef struct train_state {
    char **id_str; /* (n_ids) token text (byte-level characters), in the arena */
    size_t n_ids, cap_ids;
    tok_strmap w2id;
    train_word *words;
    tok_u64map pair_counts; /* pair -> int64 count */
    train_entry *heap;
    size_t n_heap, cap_heap;
    uint64_t seq;
    int32_t (*merges)[3]; /* (n_merges) a, b, new id */
    size_t n_merges, cap_merges;
    arena_block *arena;
} train_state;

/* heap order: larger count first, then the smaller pair, then the older entry */
static bool entry_before(const train_entry *x, const train_entry *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    if (x->b != y->b) return x->b < y->b;
    return x->seq < y->seq;
}

static pt_status heap_push(train_state *s, train_entry e, pt_error *err) {
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
        train_entry *h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            free(e.pos);
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory in the BPE merge queue");
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    e.seq = s->seq++;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!entry_before(&e, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
    return PT_OK;
}

static train_entry heap_pop(train_state *s) {
    train_entry top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && entry_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!entry_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static pt_status add_id(train_state *s, int32_t *id, const char *text, size_t len, pt_error *err) {
    int32_t have = tok_strmap_get(&s->w2id, text, len);
    if (have >= 0) {
        *id = have;
        return PT_OK;
    }
    if (s->n_ids == s->cap_ids) {
        size_t cap = s->cap_ids ? s->cap_ids * 2 : 1024;
        char **p = realloc(s->id_str, cap * sizeof *p);
        PT_CHECK_ALLOC(p, err, cap * sizeof *p);
        s->id_str = p;
        s->cap_ids = cap;
    }
    char *copy = arena_copy(&s->arena, text, len);
    PT_CHECK_ALLOC(copy, err, len + 1);
    *id = (int32_t)s->n_ids;
    s->id_str[s->n_ids++] = copy;
    PT_CHECK(tok_strmap_put(&s->w2id, copy, len, *id, NULL) >= 0, err, PT_ERR_NOMEM, "out of memory");
    return PT_OK;
}

/* Pairs made or broken by merges, with the word they happened in. */
typedef struct change {
    int32_t a, b;
    int32_t delta;
    uint32_t word;
} change;

typedef struct change_list {
    change *c;
    size_t n, cap;
} change_list;

static bool push_change(change_list *l, int32_t a, int32_t b, int32_t delta, uint32_t word) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        change *c = realloc(l->c, cap * sizeof *c);
        if (!c) return false;
        l->c = c;
        l->cap = cap;
    }
    l->c[l->n++] = (change){a, b, delta, word};
    return true;
}

/* Word::merge: replace every non-overlapping (c1, c2), left to right. */
static bool word_merge(train_word *w, int32_t c1, int32_t c2, int32_t rep, uint32_t wi, change_list *l) {
    for (uint32_t i = 0; i < w->n; i++) {
        if (w->sym[i] != c1 || i + 1 >= w->n || w->sym[i + 1] != c2) continue;
        if (i > 0 && (!push_change(l, w->sym[i - 1], c1, -1, wi) || !push_change(l, w->sym[i - 1], rep, 1, wi)))
            return false;
        w->sym[i] = rep;
        memmove(w->sym + i + 1, w->sym + i + 2, (w->n - i - 2) * sizeof *w->sym);
        w->n--;
        if (i + 1 < w->n && (!push_change(l, c2, w->sym[i + 1], -1, wi) || !push_change(l, rep, w->sym[i + 1], 1, wi)))
            return false;
    }
    return true;
}

/* New heap entries for the pairs made this step: pair -> words (each word once). */
typedef struct made_pairs {
    tok_u64map index; /* pair -> slot */
    train_entry *e;
    size_t n, cap;
} made_pairs;

static pt_status made_add(made_pairs *m, int32_t a, int32_t b, uint32_t word, pt_error *err) {
    uint64_t *slot = tok_u64map_upsert(&m->index, tok_pair_key(a, b), UINT64_MAX);
    PT_CHECK(slot, err, PT_ERR_NOMEM, "out of memory in BPE training");
    if (*slot == UINT64_MAX) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            train_entry *e = realloc(m->e, cap * sizeof *e);
            PT_CHECK_ALLOC(e, err, cap * sizeof *e);
            m->e = e;
            m->cap = cap;
        }
        *slot = m->n;
        m->e[m->n++] = (train_entry){.a = a, .b = b};
    }
    train_entry *e = &m->e[*slot];
    if (e->n_pos && e->pos[e->n_pos - 1] == word) return PT_OK; /* a word's changes are contiguous */
    if ((e->n_pos & (e->n_pos - 1)) == 0) { /* grow at powers of two */
        uint32_t *p = realloc(e->pos, (e->n_pos ? 2 * e->n_pos : 1) * sizeof *p);
        PT_CHECK_ALLOC(p, err, 2 * e->n_pos * sizeof *p);
        e->pos = p;
    }
    e->pos[e->n_pos++] = word;
    return PT_OK;
}

static pt_status push_made(train_state *s, made_pairs *m, pt_error *err) {
    pt_status st = PT_OK;
    for (size_t i = 0; i < m->n; i++) {
        train_entry e = m->e[i];
        const uint64_t *c = tok_u64map_get(&s->pair_counts, tok_pair_key(e.a, e.b));
        int64_t count = c ? (int64_t)*c : 0;
        if (count > 0 && st == PT_OK) {
            e.count = (uint64_t)count;
            st = heap_push(s, e, err); /* owns e.pos now */
        } else {
            free(e.pos);
        }
    }
    free(m->e);
    tok_u64map_free(&m->index);
    *m = (made_pairs){0};
    return st;
}

static void state_free(train_state *s, size_t n_words) {
    free(s->id_str);
    tok_strmap_free(&s->w2id);
    if (s->words)
        for (size_t i = 0; i < n_words; i++) free(s->words[i].sym);
    free(s->words);
    tok_u64map_free(&s->pair_counts);
    for (size_t i = 0; i < s->n_heap; i++) free(s->heap[i].pos);
    free(s->heap);
    free(s->merges);
    arena_free(s->arena);
}

static pt_status train(train_state *s, bpe_trainer *tr, pt_error *err) {
    /* 1. special tokens, 2. the 256 byte characters by code point */
    for (size_t i = 0; i < tr->n_special; i++) {
        int32_t id;
        PT_TRY(add_id(s, &id, tr->special[i], strlen(tr->special[i]), err));
    }
    int32_t byte_id[256];
    for (int pass = 0; pass < 2; pass++) /* printable bytes are code points < 0x100, the others map above */
        for (int b = 0; b < 256; b++) {
            uint32_t cp = tok_byte_char((uint8_t)b);
            if ((cp < 0x100) != (pass == 0)) continue;
            uint8_t u[4];
            size_t k = tok_utf8_encode(cp, u);
            PT_TRY(add_id(s, &byte_id[b], (const char *)u, k, err));
        }
    /* 3. words as symbols, 4. pair counts and where each pair occurs */
    s->words = calloc(tr->n_words ? tr->n_words : 1, sizeof *s->words);
    PT_CHECK_ALLOC(s->words, err, tr->n_words * sizeof *s->words);
    made_pairs made = {0};
    pt_status st = PT_OK;
    for (size_t w = 0; w < tr->n_words && st == PT_OK; w++) {
        train_word *tw = &s->words[w];
        tw->n = tr->word_len[w];
        tw->sym = malloc((tw->n ? tw->n : 1) * sizeof *tw->sym);
        if (!tw->sym) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
            break;
        }
        for (uint32_t i = 0; i < tw->n; i++) tw->sym[i] = byte_id[(uint8_t)tr->word_ptr[w][i]];
        for (uint32_t i = 0; i + 1 < tw->n && st == PT_OK; i++) {
            uint64_t *c = tok_u64map_upsert(&s->pair_counts, tok_pair_key(tw->sym[i], tw->sym[i + 1]), 0);
            if (!c) {
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
                break;
            }
            *c += tr->word_count[w];
            st = made_add(&made, tw->sym[i], tw->sym[i + 1], (uint32_t)w, err);
        }
    }
    if (st == PT_OK) st = push_made(s, &made, err);
    else (void)push_made(s, &made, err);
    PT_TRY(st);

    /* 5. merges */
    change_list changes = {0};
    char *buf = NULL;
    size_t buf_cap = 0;
    while (st == PT_OK && s->n_ids < tr->vocab_size && s->n_heap > 0) {
        train_entry top = heap_pop(s);
        const uint64_t *cur = tok_u64map_get(&s->pair_counts, tok_pair_key(top.a, top.b));
        uint64_t count = cur ? *cur : 0;
        if (top.count != count) {
            top.count = count;
            st = heap_push(s, top, err);
            continue;
        }
        if ((int64_t)top.count < 1 || tr->min_frequency > top.count) {
            free(top.pos);
            break;
        }
        size_t la = strlen(s->id_str[top.a]), lb = strlen(s->id_str[top.b]);
        if (la + lb + 1 > buf_cap) {
            buf_cap = 2 * (la + lb + 1);
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                free(top.pos);
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
                break;
            }
            buf = nb;
        }
        memcpy(buf, s->id_str[top.a], la);
        memcpy(buf + la, s->id_str[top.b], lb);
        int32_t new_id;
        st = add_id(s, &new_id, buf, la + lb, err);
        if (st == PT_OK && s->n_merges == s->cap_merges) {
            size_t cap = s->cap_merges ? s->cap_merges * 2 : 1024;
            int32_t(*mm)[3] = realloc(s->merges, cap * sizeof *mm);
            if (!mm) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
            else s->merges = mm, s->cap_merges = cap;
        }
        if (st != PT_OK) {
            free(top.pos);
            break;
        }
        s->merges[s->n_merges][0] = top.a;
        s->merges[s->n_merges][1] = top.b;
        s->merges[s->n_merges][2] = new_id;
        s->n_merges++;
        changes.n = 0;
        for (size_t i = 0; i < top.n_pos && st == PT_OK; i++)
            if (!word_merge(&s->words[top.pos[i]], top.a, top.b, new_id, top.pos[i], &changes))
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
        free(top.pos);
        for (size_t i = 0; i < changes.n && st == PT_OK; i++) {
            change c = changes.c[i];
            uint64_t *pc = tok_u64map_upsert(&s->pair_counts, tok_pair_key(c.a, c.b), 0);
            if (!pc) {
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory in BPE training");
                break;
            }
            *pc = (uint64_t)((int64_t)*pc + (int64_t)c.delta * (int64_t)tr->word_count[c.word]);
            if (c.delta > 0) st = made_add(&made, c.a, c.b, c.word, err);
        }
        if (st == PT_OK) st = push_made(s, &made, err);
        else (void)push_made(s, &made, err);
    }
    free(changes.c);
    free(buf);
    return st;
}

pt_status bpe_trainer_finish(tokenizer **out, bpe_trainer *tr, pt_error *err) {
    train_state s = {0};
    pt_status st = train(&s, tr, err);
    cJSON *vocab = NULL, *merges = NULL, *root = NULL;
    tok_u64map last = {0}; /* pair -> index of its last merge */
    if (st == PT_OK) {
        vocab = cJSON_CreateObject();
        merges = cJSON_CreateArray();
        bool ok = vocab && merges;
        for (size_t i = 0; ok && i < s.n_ids; i++) ok = cJSON_AddNumberToObject(vocab, s.id_str[i], (double)i) != NULL;
        for (size_t r = 0; ok && r < s.n_merges; r++) {
            uint64_t *v = tok_u64map_upsert(&last, tok_pair_key(s.merges[r][0], s.merges[r][1]), r);
            ok = v != NULL;
            if (ok) *v = r;
        }
        for (size_t r = 0; ok && r < s.n_merges; r++) {
            if (*tok_u64map_get(&last, tok_pair_key(s.merges[r][0], s.merges[r][1])) != r) continue;
            const char *pair[2] = {s.id_str[s.merges[r][0]], s.id_str[s.merges[r][1]]};
            cJSON *p = cJSON_CreateStringArray(pair, 2);
            ok = p && cJSON_AddItemToArray(merges, p);
            if (!ok) cJSON_Delete(p);
        }
        if (ok) {
            root = skeleton(tr, vocab, merges); /* takes vocab and merges */
            vocab = merges = NULL;
            ok = root != NULL;
        }
        if (!ok) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory building the trained tokenizer");
    }
    cJSON_Delete(vocab);
    cJSON_Delete(merges);
    tok_u64map_free(&last);
    state_free(&s, tr->n_words);
    tokenizer *tok = NULL;
    if (st == PT_OK) st = tok_from_cjson(&tok, root, "trained tokenizer", err);
    cJSON_Delete(root);
    if (st != PT_OK) return st;
    bool ok = true;
    tok->bos_token = dup_or_null(tr->bos, &ok);
    tok->eos_token = dup_or_null(tr->eos, &ok);
    tok->pad_token = dup_or_null(tr->pad, &ok);
    tok->chat_template = dup_or_null(tr->chat_template, &ok);
    tok->add_bos_token = tr->add_bos;
    if (!ok) {
        tokenizer_free(tok);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory");
    }
    *out = tok;
    return PT_OK;
}
