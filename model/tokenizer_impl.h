/* tokenizer_impl.h — the tokenizer's insides, shared by tokenizer.c (tables, lookups, decode),
 * tokenizer_encode.c (added tokens, pre-tokenizer, BPE, merge cache), tokenizer_json.c
 * (tokenizer.json / tokenizer_config.json) and bpe_train.c. Not for use outside model/.
 *
 * Ids: every id in [0, n_ids) is a model-vocabulary token, an added token, both (DeepSeek's BOS is
 * in both), or a hole (tok_str NULL). Byte-level: byte b is the character bytes_to_unicode(b)
 * (printable Latin-1 for itself, the rest mapped to U+0100..U+0143), and byte_id[b] is that
 * character's id. Merges map the pair (a, b) to (rank, new id); the lowest rank merges first.
 */
#ifndef POSTTRAIN_MODEL_TOKENIZER_IMPL_H
#define POSTTRAIN_MODEL_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>

#include "model/tokenizer.h"

/* ------------------------------------------------------------------------------- hash maps */

/* Byte string -> int32. Keys are not copied: they must outlive the map. */
typedef struct tok_strmap_slot {
    const char *key;
    uint32_t len;
    uint32_t hash;
    int32_t value;
} tok_strmap_slot;

typedef struct tok_strmap {
    tok_strmap_slot *slots; /* (cap), key NULL = empty */
    size_t cap, n;
} tok_strmap;

uint64_t tok_hash_bytes(const void *p, size_t n);
/* Returns 0 when inserted, 1 when the key existed (value left unchanged, *old set), -1 on OOM. */
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value, int32_t *old);
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len); /* -1 when absent */
void tok_strmap_free(tok_strmap *m);

/* uint64 -> uint64 (keys are stored + 1, so every uint64 but UINT64_MAX is a valid key). */
typedef struct tok_u64map {
    uint64_t *keys; /* (cap), 0 = empty */
    uint64_t *vals; /* (cap) */
    size_t cap, n;
} tok_u64map;

static inline uint64_t tok_pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
/* Pointer to the value slot for key, inserting `init` when absent; NULL on OOM. */
uint64_t *tok_u64map_upsert(tok_u64map *m, uint64_t key, uint64_t init);
const uint64_t *tok_u64map_get(const tok_u64map *m, uint64_t key);
void tok_u64map_free(tok_u64map *m);

/* ------------------------------------------------------------------------------- bytes and UTF-8 */

/* GPT-2's bytes_to_unicode: the code point (< 0x144) standing for each byte. */
uint32_t tok_byte_char(uint8_t b);
/* Byte of a code point, or -1 when the code point is not one of the 256 byte characters. */
int tok_char_byte(uint32_t cp);
/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n) (Unicode Table 3-7), or 0. */
size_t tok_utf8_seq_len(const uint8_t *s, size_t n);
/* Decode one well-formed sequence of length k (from tok_utf8_seq_len). */
uint32_t tok_utf8_decode(const uint8_t *s, size_t k);
size_t tok_utf8_encode(uint32_t cp, uint8_t out[4]);

/* ------------------------------------------------------------------------------- pieces */

typedef struct tok_regex {
    pcre2_code *code;
    bool jit; /* pcre2_jit_compile succeeded: use pcre2_jit_match */
} tok_regex;

/* PCRE2 with PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE (Oniguruma's ^ and $ are line anchors);
 * `literal` escapes the whole pattern (a Split {"String": ...}). */
pt_status tok_regex_compile(tok_regex *re, const char *pattern, size_t len, bool literal, const char *name,
                            const char *field, pt_error *err);
void tok_regex_free(tok_regex *re);

typedef enum tok_split_behavior {
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum tok_step_kind { TOK_STEP_SPLIT, TOK_STEP_BYTELEVEL } tok_step_kind;

typedef struct tok_step {
    tok_step_kind kind;
    tok_regex re;               /* SPLIT */
    tok_split_behavior behavior;/* SPLIT */
    bool invert;                /* SPLIT: the pattern matches what to keep */
    bool add_prefix_space;      /* BYTELEVEL: prepend ' ' to a piece that does not start with one */
    bool use_regex;             /* BYTELEVEL: cut with GPT-2's regex first */
} tok_step;

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized, single_word;
} tok_added;

/* Byte trie of added-token contents: root_child[b] starts the sibling list of the second level. */
typedef struct tok_trie_node {
    int32_t child;   /* first child, -1 none */
    int32_t sibling; /* next sibling, -1 none */
    int32_t added;   /* index into tokenizer.added ending here, -1 none */
    uint8_t byte;
} tok_trie_node;

typedef struct tok_trie {
    tok_trie_node *nodes;
    size_t n, cap;
    int32_t root[256]; /* node for each first byte, -1 none */
    size_t count;      /* tokens inserted */
} tok_trie;

enum tok_id_flags { TOKF_MODEL = 1, TOKF_ADDED = 2, TOKF_SPECIAL = 4 };

struct tokenizer {
    char *name; /* source, for messages */

    /* vocabulary */
    size_t n_ids;      /* max id + 1 */
    char **tok_str;    /* (n_ids) token text as tokenizer.json stores it; NULL = hole */
    uint8_t *tok_flags;/* (n_ids) enum tok_id_flags */
    size_t *dec_off;   /* (n_ids + 1) decoded bytes of id i: dec_bytes[dec_off[i] .. dec_off[i+1]) */
    char *dec_bytes;
    tok_strmap vocab;  /* model vocabulary: text -> id */
    int32_t byte_id[256];
    tok_u64map merges;         /* tok_pair_key(a, b) -> rank << 32 | new id */
    int32_t (*merge_list)[2];  /* (n_merges) pairs in file order; entry r is live when merges says rank r */
    size_t n_merges;
    bool ignore_merges;
    int32_t unk_id; /* -1: unknown characters are dropped, as `tokenizers` does without unk_token */
    bool fuse_unk;

    /* added tokens */
    tok_added *added;
    size_t n_added;
    tok_strmap added_map; /* content -> index into added */
    tok_trie trie[2];     /* [0] normalized=false (matched first), [1] normalized=true */
    tok_regex word_re;    /* Unicode \w, for single_word */

    /* pre-tokenizer */
    tok_step *steps;
    size_t n_steps;
    tok_regex gpt2_re;

    /* post-processor (TemplateProcessing "single"): ids before and after the sequence */
    int32_t *pp_prefix, *pp_suffix;
    size_t n_pp_prefix, n_pp_suffix;

    /* tokenizer.json sections kept as read, written back by tokenizer_save */
    cJSON *normalizer_json, *pre_tokenizer_json, *post_processor_json, *decoder_json;

    /* tokenizer_config.json: kept whole (unknown keys survive a save); the fields below win */
    cJSON *config_json;
    char *bos_token, *eos_token, *pad_token, *chat_template;
    bool add_bos_token, add_eos_token;

    tokenizer_encoder *scratch; /* used by tokenizer_encode */
};

/* Build a tokenizer from a parsed tokenizer.json (tokenizer_json.c); root is not kept. */
pt_status tok_from_cjson(tokenizer **out, const cJSON *root, const char *name, pt_error *err);
/* Build byte_id, the decode table and the added-token tries (tokenizer.c). */
pt_status tok_build_tables(tokenizer *tok, pt_error *err);

/* Visit every pre-token of text[0..len) after added tokens are removed (tokenizer_encode.c): the
 * bytes BPE would see (a ByteLevel prefix space included). Used by the trainer. */
typedef pt_status (*tok_pretoken_fn)(void *ctx, const uint8_t *bytes, size_t len, pt_error *err);
pt_status tok_encoder_pretokenize(tokenizer_encoder *enc, const char *text, size_t len, tok_pretoken_fn fn,
                                  void *ctx, pt_error *err);

/* Read a whole file (tokenizer_json.c): *out is malloc'd and NUL-terminated. */
pt_status tok_read_file(char **out, size_t *len, const char *path, pt_error *err);
/* Write bytes to path atomically (temporary file, fsync, rename). */
pt_status tok_write_file_atomic(const char *path, const char *data, size_t len, pt_error *err);

#endif
