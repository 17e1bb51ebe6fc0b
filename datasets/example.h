/* example.h — a checked record turned into token sequences with loss masks (the rules are in
 * dataset.h: EOS, BOS, completion-only and assistant-only masks, truncation).
 *
 * Chat masks are byte spans mapped to tokens: a token belongs to a span when its byte range
 * overlaps it (tokenizer offsets). The completion of a conversational prompt-completion record
 * starts at the first assistant span that belongs to a completion message and runs to the end
 * of the render, which is what TRL's "tokens after the prompt rendered with the generation
 * prompt" amounts to for these templates.
 */
#ifndef POSTTRAIN_DATASETS_EXAMPLE_H
#define POSTTRAIN_DATASETS_EXAMPLE_H

#include "datasets/record.h"

typedef struct example_ctx {
    tokenizer *tok;
    bool has_chat;        /* a chat format is known (needed only by conversational records) */
    chat_format chat;
    const char *bos, *eos; /* the strings the templates write (may be NULL) */
    int32_t eos_id;        /* appended after text and completions; -1: none */
    dataset_truncation truncation; /* resolved (never AUTO) */
    size_t max_length;     /* 0: no limit */
    bool completion_only, assistant_only, keep_final_think;
} example_ctx;

/* Tokenise record r (whose text is `raw`) into *ex (which must be empty). A record that cannot
 * become an example (too long under truncation "error", a conversation without the assistant
 * message the mask needs) sets *good false and fills *bad. Errors: out of memory, tokenizer
 * failures, and PT_ERR_CONFIG for a conversational record without a chat format. */
pt_status example_build(dataset_example *ex, bool *good, record_bad *bad, const example_ctx *c, const record *r,
                        const char *raw, pt_error *err);

#endif
