/* tokenizer.h — the byte-level BPE tokenizer of DeepSeek-V3 (and GPT-2 style models), read from
 * and written to Hugging Face `tokenizer.json`, giving the ids the `tokenizers` library gives.
 *
 * encode(text) follows `tokenizers`' TokenizerImpl::encode step for step:
 *   1. added tokens are cut out of the raw text, leftmost-longest (first the tokens with
 *      normalized=false, then, in the remaining pieces, those with normalized=true), honouring
 *      lstrip / rstrip (swallow Unicode whitespace beside the token) and single_word;
 *   2. the normalizer must be the identity (null or an empty Sequence);
 *   3. the pre_tokenizer (a Split, a Digits, a ByteLevel, or a Sequence of them with ByteLevel
 *      last) cuts every remaining piece with PCRE2 regexes (UTF + UCP + JIT), each Split running
 *      on one piece at a time, so lookarounds and anchors stop at piece edges exactly as in
 *      `tokenizers` (its Oniguruma runs on each NormalizedString slice);
 *   4. ByteLevel maps each byte to one of 256 printable code points (GPT-2's bytes_to_unicode), so
 *      BPE runs on bytes directly: the initial symbols are the ids of the 256 byte characters and
 *      merges are applied lowest rank first, leftmost first (BPE Word::merge_all);
 *   5. a TemplateProcessing post-processor adds its special tokens (DeepSeek's BOS) when asked.
 * decode(ids) concatenates each token's bytes (its characters mapped back through the byte
 * table; an added token, or any token with a character outside the table, contributes its UTF-8
 * text), which is the ByteLevel decoder of `tokenizers` before its lossy UTF-8 conversion.
 *
 * Invariants: decode(encode(x)) == x byte for byte for every input, including invalid UTF-8,
 * unless the text contains lstrip/rstrip added tokens (which swallow whitespace by design) or the
 * vocabulary lacks one of the 256 byte characters. Python strings cannot hold invalid UTF-8, so
 * `tokenizers` never sees it; posttrain's rule: the input is split at every byte that is not part
 * of a well-formed UTF-8 sequence (Unicode Table 3-7), each such byte becomes its own pre-token
 * (one byte token), and the valid runs between them are tokenized as if they were separate
 * texts. For valid UTF-8 the ids equal those of `tokenizers` (tests/ref/make_tokenizer_fixture.py).
 *
 * Threads: a loaded tokenizer is immutable and may be shared; tokenizer_encode uses a scratch
 * encoder inside the tokenizer (one thread at a time); give each thread its own
 * tokenizer_encoder (PCRE2 match data, JIT stack, merge cache), or call tokenizer_encode_batch.
 */
#ifndef POSTTRAIN_MODEL_TOKENIZER_H
#define POSTTRAIN_MODEL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct tokenizer tokenizer;
typedef struct tokenizer_encoder tokenizer_encoder;

/* A growable list of token ids; encode appends to it. */
typedef struct tok_ids {
    int32_t *ids;    /* (n) */
    size_t *offsets; /* (n, 2) byte range [start, end) of each token in the input; only filled
                        with TOK_OFFSETS (post-processor tokens get an empty range) */
    size_t n, cap;
} tok_ids;

enum tok_encode_flags {
    TOK_ADD_SPECIAL = 1u << 0, /* apply the post-processor (DeepSeek: prepend BOS) */
    TOK_OFFSETS = 1u << 1,     /* fill tok_ids.offsets */
};

void tok_ids_free(tok_ids *v);

/* Load a tokenizer: `path` is a tokenizer.json file or a folder holding tokenizer.json and,
 * optionally, tokenizer_config.json (bos/eos/pad tokens, add_bos_token, chat_template) and
 * chat_template.jinja. Errors name the file, the JSON line:column or the field. */
pt_status tokenizer_load(tokenizer **out, const char *path, pt_error *err);
/* The same from tokenizer.json text in memory; `name` labels error messages. */
pt_status tokenizer_load_json(tokenizer **out, const char *json, size_t len, const char *name, pt_error *err);
void tokenizer_free(tokenizer *tok);

/* Append the ids of text[0..len) to *out (see enum tok_encode_flags). Not thread-safe: uses the
 * tokenizer's own scratch encoder. */
pt_status tokenizer_encode(tok_ids *out, tokenizer *tok, const char *text, size_t len, unsigned flags, pt_error *err);

/* Per-thread encoders over one shared tokenizer. */
pt_status tokenizer_encoder_init(tokenizer_encoder **out, const tokenizer *tok, pt_error *err);
void tokenizer_encoder_free(tokenizer_encoder *enc);
pt_status tokenizer_encoder_encode(tok_ids *out, tokenizer_encoder *enc, const char *text, size_t len, unsigned flags,
                                   pt_error *err);

/* Encode n texts with `threads` OpenMP threads (0: all), one encoder per thread; outs[i] receives
 * texts[i]. On failure the error names the first failing text. */
pt_status tokenizer_encode_batch(tok_ids *outs, const tokenizer *tok, const char *const *texts, const size_t *lens,
                                 size_t n, unsigned flags, int threads, pt_error *err);

/* Throughput of tokenizer_encode_batch on `text` cut into lines (at most ~64 KiB per piece):
 * bytes per second, the best of `repeats` passes after one warm-up pass. For benchmarks. */
pt_status tokenizer_bench_encode(double *bytes_per_s, const tokenizer *tok, const char *text, size_t len, int threads,
                                 int repeats, pt_error *err);

/* *out = malloc'd bytes of the ids (NUL-terminated, *out_len excludes the NUL); special added
 * tokens are left out when skip_special. An id outside the vocabulary is an error. */
pt_status tokenizer_decode(char **out, size_t *out_len, const tokenizer *tok, const int32_t *ids, size_t n,
                           bool skip_special, pt_error *err);

/* Lookups. token_to_id checks added tokens first, then the model vocabulary; -1 when absent. */
int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token, size_t len);
const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id); /* NULL when absent */
size_t tokenizer_n_ids(const tokenizer *tok); /* max id + 1: the embedding rows needed */
bool tokenizer_is_special(const tokenizer *tok, int32_t id);

/* tokenizer_config.json: special token strings (NULL when unset) and their ids (-1). */
const char *tokenizer_bos_token(const tokenizer *tok);
const char *tokenizer_eos_token(const tokenizer *tok);
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
const char *tokenizer_chat_template(const tokenizer *tok); /* the Jinja string, or NULL */
pt_status tokenizer_set_chat_template(tokenizer *tok, const char *jinja, pt_error *err);

/* Write dir/tokenizer.json and dir/tokenizer_config.json (each written to a temporary file,
 * fsynced and renamed). The folder must exist. */
pt_status tokenizer_save(const tokenizer *tok, const char *dir, pt_error *err);
/* *out = malloc'd tokenizer.json text (compact, vocab ordered by id, merges as pairs by rank). */
pt_status tokenizer_to_json(char **out, const tokenizer *tok, pt_error *err);

#endif
