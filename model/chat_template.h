/* chat_template.h — chat formats rendered natively (no Jinja engine), byte-identical to what
 * transformers' apply_chat_template produces with the Jinja template each format records in
 * tokenizer_config.json, plus the byte spans an SFT trainer puts its loss on.
 *
 *   deepseek-v3  <｜begin▁of▁sentence｜>{system prompts joined by "\n\n"} then per message
 *                <｜User｜>{content}  or  <｜Assistant｜>{content}<｜end▁of▁sentence｜>;
 *                the generation prompt is <｜Assistant｜>. (deepseek-ai/DeepSeek-V3)
 *   deepseek-r1  as deepseek-v3, but the system prompt is the last system message, an assistant
 *                message keeps only the text after its last "</think>", and the generation prompt
 *                is <｜Assistant｜><think>\n. (deepseek-ai/DeepSeek-R1)
 *   plain        for base models: BOS, each non-assistant message followed by "\n\n", each
 *                assistant message followed by EOS; no generation prompt.
 * BOS and EOS are the tokenizer's bos_token / eos_token strings (the DeepSeek templates write the
 * end-of-sentence marker literally, as theirs do). Messages with other roles (tool calls, tool
 * outputs) are refused rather than silently dropped.
 *
 * Assistant span: the bytes the model must produce for one assistant message: its rendered
 * content and the end marker that follows it.
 */
#ifndef POSTTRAIN_MODEL_CHAT_TEMPLATE_H
#define POSTTRAIN_MODEL_CHAT_TEMPLATE_H

#include "model/tokenizer.h"

typedef enum chat_format { CHAT_DEEPSEEK_V3, CHAT_DEEPSEEK_R1, CHAT_PLAIN } chat_format;

typedef struct chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} chat_message;

typedef struct chat_span {
    size_t start, end; /* bytes [start, end) of the rendered text */
} chat_span;

typedef struct chat_render {
    char *text; /* NUL-terminated */
    size_t len;
    chat_span *spans; /* (n_spans) one per assistant message, in order */
    size_t n_spans;
} chat_render;

typedef struct chat_options {
    bool add_generation_prompt;
    bool keep_final_think; /* deepseek-r1: the last assistant message keeps its <think> part (for SFT
                              on reasoning traces; the Jinja template would drop it) */
} chat_options;

/* "deepseek-v3", "deepseek-r1", "plain"; anything else is PT_ERR_CONFIG listing these. */
pt_status chat_format_parse(chat_format *out, const char *name, pt_error *err);
const char *chat_format_name(chat_format fmt);
/* The Jinja template transformers runs for this format (what tokenizer_config.json stores). */
const char *chat_format_jinja(chat_format fmt);
/* The format whose Jinja template is exactly `jinja`; false when it is none of ours. */
bool chat_format_from_jinja(chat_format *out, const char *jinja);

/* Render messages; bos / eos may be NULL (rendered as nothing, as Jinja does for an undefined
 * variable). opts may be NULL (no generation prompt). */
pt_status chat_render_messages(chat_render *out, chat_format fmt, const chat_message *msgs, size_t n, const char *bos,
                               const char *eos, const chat_options *opts, pt_error *err);
void chat_render_free(chat_render *r);

/* Tokenize a render (no post-processor: the template carries BOS) into *ids (reset first) and
 * *mask (malloc'd, ids->n bytes): 1 for every token overlapping an assistant span. */
pt_status chat_encode(tok_ids *ids, uint8_t **mask, tokenizer *tok, const chat_render *r, pt_error *err);

#endif
