/* stop.h — when a completion ends, and what of it is kept: EOS ids, stop strings matched against
 * the decoded text (also across token boundaries and inside a token), max_completion_length.
 *
 * The engine feeds each generated token to stop_step in order; the first token that ends the
 * completion returns a finish reason other than FINISH_NONE, in this precedence:
 *   1. the token is one of the EOS ids  → FINISH_STOP; the EOS token's own text is not part of
 *      the completion text (vLLM strips it; a special EOS decodes to nothing anyway);
 *   2. the token's bytes complete a stop string → FINISH_STOP; the text is cut at the FIRST byte
 *      of the stop string, which is excluded (vLLM's default, include_stop_str_in_output=False;
 *      the bytes the same token carries after the stop string are dropped too);
 *   3. the completion reached max_completion_length tokens → FINISH_LENGTH, text kept whole.
 * An EOS or stop string on the last allowed token is therefore a stop, not a truncation (TRL's
 * mask_truncated_completions treats a completion that ends in EOS as finished).
 *
 * Matching is on bytes: the text is the concatenation of each token's bytes (what
 * tokenizer_decode gives for the id alone, special tokens contributing nothing as with
 * skip_special_tokens=True), which is exactly the decoded completion for byte-level BPE. Stop
 * strings must be valid UTF-8, so a match in valid UTF-8 text always starts and ends on
 * character boundaries, even when a token boundary falls inside a multi-byte character. When
 * one token completes several stop strings, the one that ends first in the text wins (what
 * appending the bytes one at a time gives; vLLM checks its list in order and can pick a later
 * one); among matches ending at the same byte the longest (earliest start) wins. Both rules make
 * the result independent of the order of the list.
 *
 * Tokens kept: n_tokens counts every token through the one that finished the completion (the
 * EOS, or the token completing the stop string) — vLLM's output token_ids and what TRL trains on,
 * since each of them was sampled and has a log-prob. n_tokens_before_cut counts the tokens whose
 * bytes lie wholly before the cut (for callers that want ids decoding to a prefix of the text).
 *
 * Incremental: a stop_state remembers only the last (longest stop string − 1) bytes, so a step
 * costs O(new bytes × total stop-string length), never a re-scan of the text. A stop_state is a
 * plain value (no pointers): copy it to fork a completion, memcpy it into a checkpoint.
 */
#ifndef POSTTRAIN_ROLLOUT_STOP_H
#define POSTTRAIN_ROLLOUT_STOP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/tokenizer.h"

/* The longest stop string accepted, in bytes. */
#define STOP_STRING_MAX 256

typedef enum finish_reason {
    FINISH_NONE = 0, /* still generating */
    FINISH_STOP,     /* EOS or a stop string */
    FINISH_LENGTH,   /* max_completion_length reached */
} finish_reason;

/* The bytes of every token id, back to back: id i is data[offsets[i], offsets[i + 1]). */
typedef struct token_bytes {
    char *data;      /* (offsets[V]) */
    size_t *offsets; /* (V + 1) */
    int V;
} token_bytes;

/* Every id of the tokenizer decoded alone with skip_special (special tokens and ids missing
 * from the vocabulary get no bytes). */
pt_status token_bytes_from_tokenizer(token_bytes *out, const tokenizer *tok, pt_error *err);
/* From explicit byte strings (lens NULL: NUL-terminated). */
pt_status token_bytes_from_strings(token_bytes *out, const char *const *strings, const size_t *lens, int V,
                                   pt_error *err);
void token_bytes_free(token_bytes *t);

/* The rules of one generation request, shared by all its completions (immutable after init). */
typedef struct stop_rules {
    int32_t *eos_ids;          /* (n_eos) */
    int n_eos;
    char **strings;            /* (n_strings) stop strings, copied */
    size_t *lens;              /* (n_strings) their lengths in bytes */
    int n_strings;
    size_t max_len;            /* longest stop string (0 when none) */
    int max_completion_length; /* tokens; 0 = no limit */
    const token_bytes *vocab;  /* borrowed: decodes ids for stop_step; NULL with stop_step_bytes */
} stop_rules;

/* Copies the ids and strings. lens NULL: NUL-terminated strings. Errors (PT_ERR_CONFIG) name the
 * offending stop string: empty, longer than STOP_STRING_MAX bytes, or not valid UTF-8. */
pt_status stop_rules_init(stop_rules *out, const int32_t *eos_ids, int n_eos, const char *const *strings,
                          const size_t *lens, int n_strings, int max_completion_length, const token_bytes *vocab,
                          pt_error *err);
void stop_rules_free(stop_rules *r);

/* Where a finished completion ends. */
typedef struct stop_result {
    finish_reason reason;    /* FINISH_NONE while generating */
    size_t text_len;         /* bytes of completion text to keep (stop string and EOS text excluded) */
    int n_tokens;            /* tokens to keep: through the finishing token */
    int n_tokens_before_cut; /* tokens whose bytes end at or before text_len */
    int stop_string;         /* index of the matched stop string, or -1 */
    int32_t eos_id;          /* the EOS id that stopped it, or -1 */
} stop_result;

/* Per-completion state; a plain value. */
typedef struct stop_state {
    int n_tokens;                       /* tokens fed so far */
    size_t text_len;                    /* bytes of decoded text so far */
    int finished;                       /* a finish was returned: further steps are errors */
    int tail_len;                       /* bytes in tail */
    char tail[STOP_STRING_MAX];         /* the last tail_len bytes of the text */
    int32_t tail_token[STOP_STRING_MAX]; /* index of the token each tail byte came from */
} stop_state;

void stop_state_init(stop_state *s);

/* Feed the next generated token (its bytes from rules->vocab). res->reason says whether the
 * completion ended with it; the other fields of res are set then (and while generating,
 * text_len/n_tokens describe everything so far). Errors: an id outside the vocab table, a
 * step after the completion finished, stop strings without a vocab table. */
pt_status stop_step(stop_result *res, stop_state *s, const stop_rules *rules, int32_t token, pt_error *err);
/* The same with the token's bytes given by the caller. */
pt_status stop_step_bytes(stop_result *res, stop_state *s, const stop_rules *rules, int32_t token, const char *bytes,
                          size_t n_bytes, pt_error *err);

#endif
