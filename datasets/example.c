/* example.c — records to token sequences with loss masks (see example.h and dataset.h).
 *
 * Invariants of every dataset_seq produced here: ids and loss have n entries (room for one
 * more, the EOS); n_prompt ≤ n; truncated counts the tokens removed; under truncation "error"
 * n ≤ max_length or the record is reported bad, never cut.
 */
#include "datasets/example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dataset_example_free(dataset_example *ex) {
    if (!ex) return;
    free(ex->seq.ids);
    free(ex->seq.loss);
    free(ex->rejected.ids);
    free(ex->rejected.loss);
    free(ex->prompt_text);
    free(ex->prompt_json);
    for (size_t i = 0; i < ex->n_columns; i++) {
        free(ex->columns[i].name);
        free(ex->columns[i].json);
    }
    free(ex->columns);
    *ex = (dataset_example){0};
}

/* s = ids[0..n) with room for an EOS; loss left for the caller. */
static pt_status seq_from_ids(dataset_seq *s, const int32_t *ids, size_t n, pt_error *err) {
    s->ids = malloc((n + 1) * sizeof *s->ids);
    s->loss = malloc(n + 1);
    if (!s->ids || !s->loss) {
        free(s->ids);
        free(s->loss);
        *s = (dataset_seq){0};
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for a %zu-token example", n);
    }
    if (n) memcpy(s->ids, ids, n * sizeof *ids);
    s->n = n;
    return PT_OK;
}

/* TRL appends eos_token unless the text already ends with it. */
static void seq_add_eos(dataset_seq *s, int32_t eos_id, uint8_t loss) {
    if (eos_id < 0 || (s->n > 0 && s->ids[s->n - 1] == eos_id)) return;
    s->ids[s->n] = eos_id;
    s->loss[s->n++] = loss;
}

/* A string prompt (may be NULL: nothing but BOS) and completion (NULL: language modelling). */
static pt_status seq_plain(dataset_seq *s, const example_ctx *c, const char *prompt, const char *completion,
                           pt_error *err) {
    tok_ids t = {0};
    const char *p = prompt ? prompt : "";
    pt_status st = tokenizer_encode(&t, c->tok, p, strlen(p), TOK_ADD_SPECIAL, err);
    size_t np = t.n;
    if (st == PT_OK && completion) st = tokenizer_encode(&t, c->tok, completion, strlen(completion), 0, err);
    if (st == PT_OK) st = seq_from_ids(s, t.ids, t.n, err);
    tok_ids_free(&t);
    if (st != PT_OK) return st;
    for (size_t i = 0; i < s->n; i++) s->loss[i] = !completion || i >= np || !c->completion_only;
    s->n_prompt = completion ? np : 0;
    seq_add_eos(s, c->eos_id, 1);
    return PT_OK;
}

static size_t count_assistant(const chat_message *m, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += strcmp(m[i].role, "assistant") == 0;
    return k;
}

/* A conversation: prompt messages (may be absent) then completion messages (may be absent: the
 * messages shape). With gen_prompt (a GRPO prompt) the render ends with the generation prompt
 * and nothing is trained on; *render_out (may be NULL) receives the rendered text. */
static pt_status seq_chat(dataset_seq *s, bool *good, record_bad *bad, const example_ctx *c, const record_part *prompt,
                          const record_part *completion, const char *field, bool gen_prompt, char **render_out,
                          pt_error *err) {
    *good = false;
    if (!c->has_chat)
        PT_FAIL(err, PT_ERR_CONFIG,
                "field '%s' is a list of messages, but the tokenizer has no chat template posttrain knows; set "
                "chat_format to deepseek-v3, deepseek-r1 or plain",
                field);
    size_t np = prompt && prompt->present ? prompt->n_msgs : 0;
    size_t nc = completion && completion->present ? completion->n_msgs : 0;
    chat_message *all = malloc((np + nc ? np + nc : 1) * sizeof *all);
    PT_CHECK_ALLOC(all, err, (np + nc) * sizeof *all);
    if (np) memcpy(all, prompt->msgs, np * sizeof *all);
    if (nc) memcpy(all + np, completion->msgs, nc * sizeof *all);
    size_t k0 = count_assistant(all, np); /* spans before k0 belong to the prompt */
    bool no_assistant = (completion && completion->present && count_assistant(completion->msgs, nc) == 0) ||
                        (!gen_prompt && c->assistant_only && count_assistant(all, np + nc) == 0);
    if (no_assistant) {
        free(all);
        bad->reason = DATASET_BAD_EMPTY;
        bad->mixed = false;
        snprintf(bad->field, sizeof bad->field, "%s", field);
        snprintf(bad->msg, sizeof bad->msg, "no assistant message: nothing for the model to learn");
        return PT_OK;
    }
    chat_render r = {0};
    chat_options o = {.add_generation_prompt = gen_prompt, .keep_final_think = c->keep_final_think};
    pt_status st = chat_render_messages(&r, c->chat, all, np + nc, c->bos, c->eos, &o, err);
    free(all);
    if (st != PT_OK) return st;
    tok_ids t = {0};
    st = tokenizer_encode(&t, c->tok, r.text, r.len, TOK_OFFSETS, err);
    if (st == PT_OK) st = seq_from_ids(s, t.ids, t.n, err);
    if (st == PT_OK) {
        bool has_completion = completion && completion->present;
        size_t region = has_completion ? r.spans[k0].start : 0; /* the completion starts here */
        size_t sp = 0;
        s->n_prompt = 0;
        for (size_t i = 0; i < s->n; i++) {
            size_t a = t.offsets[2 * i], e = t.offsets[2 * i + 1];
            while (sp < r.n_spans && r.spans[sp].end <= a) sp++;
            bool in_span = sp < r.n_spans && a < r.spans[sp].end && e > r.spans[sp].start;
            bool in_completion = e > region;
            if (has_completion && !in_completion) s->n_prompt = i + 1;
            bool m = gen_prompt ? false : true;
            if (has_completion && c->completion_only) m = m && in_completion;
            if (c->assistant_only) m = m && in_span;
            s->loss[i] = m;
        }
        if (render_out) {
            *render_out = r.text;
            r.text = NULL;
        }
        *good = true;
    }
    tok_ids_free(&t);
    chat_render_free(&r);
    return st;
}

/* Applies the truncation policy to one sequence; false (with *bad) under "error". */
static bool seq_truncate(dataset_seq *s, const example_ctx *c, const char *field, record_bad *bad) {
    if (c->max_length == 0 || s->n <= c->max_length) return true;
    size_t drop = s->n - c->max_length;
    switch (c->truncation) {
    case DATASET_TRUNCATE_RIGHT:
        s->n = c->max_length;
        if (s->n_prompt > s->n) s->n_prompt = s->n;
        break;
    case DATASET_TRUNCATE_LEFT:
        memmove(s->ids, s->ids + drop, c->max_length * sizeof *s->ids);
        memmove(s->loss, s->loss + drop, c->max_length);
        s->n = c->max_length;
        s->n_prompt = s->n_prompt > drop ? s->n_prompt - drop : 0;
        break;
    default:
        bad->reason = DATASET_BAD_TOO_LONG;
        bad->mixed = false;
        snprintf(bad->field, sizeof bad->field, "%s", field);
        snprintf(bad->msg, sizeof bad->msg, "the example is %zu tokens, over max_length %zu (truncation: error)", s->n,
                 c->max_length);
        return false;
    }
    s->truncated = drop;
    return true;
}

/* prompt (may be absent) + completion, string or conversational. */
static pt_status seq_pair(dataset_seq *s, bool *good, record_bad *bad, const example_ctx *c, const record_part *prompt,
                          const record_part *completion, const char *field, pt_error *err) {
    if (completion->is_chat) return seq_chat(s, good, bad, c, prompt, completion, field, false, NULL, err);
    if (c->assistant_only) /* as TRL: assistant spans only exist in a chat render */
        PT_FAIL(err, PT_ERR_CONFIG,
                "assistant_only_loss needs conversational records, but field '%s' is a string; use "
                "completion_only_loss for prompt/completion strings",
                field);
    *good = true;
    return seq_plain(s, c, prompt->present ? prompt->text : NULL, completion->text, err);
}

static char *dup_span(const char *raw, size_t a, size_t b) {
    char *p = malloc(b - a + 1);
    if (!p) return NULL;
    memcpy(p, raw + a, b - a);
    p[b - a] = '\0';
    return p;
}

static pt_status build_prompt(dataset_example *ex, bool *good, record_bad *bad, const example_ctx *c, const record *r,
                              const char *raw, pt_error *err) {
    if (r->prompt.is_chat) {
        PT_TRY(seq_chat(&ex->seq, good, bad, c, &r->prompt, NULL, "prompt", true, &ex->prompt_text, err));
        if (!*good) return PT_OK;
    } else {
        /* As SFT encodes the prompt of prompt/completion data (seq_plain): the tokenizer's
         * post-processor, i.e. BOS + text, so that a policy is sampled from the context it was
         * fine-tuned on. (TRL's GRPO encodes string prompts without special tokens; an SFT'd
         * model then sees a start it never saw in training.) */
        tok_ids t = {0};
        pt_status st = tokenizer_encode(&t, c->tok, r->prompt.text, strlen(r->prompt.text), TOK_ADD_SPECIAL, err);
        if (st == PT_OK) st = seq_from_ids(&ex->seq, t.ids, t.n, err);
        tok_ids_free(&t);
        if (st != PT_OK) return st;
        memset(ex->seq.loss, 0, ex->seq.n);
        ex->prompt_text = strdup(r->prompt.text);
        PT_CHECK_ALLOC(ex->prompt_text, err, strlen(r->prompt.text));
        *good = true;
    }
    ex->prompt_json = dup_span(raw, r->prompt.raw_start, r->prompt.raw_end);
    PT_CHECK_ALLOC(ex->prompt_json, err, r->prompt.raw_end - r->prompt.raw_start);
    ex->columns = calloc(r->n_members ? r->n_members : 1, sizeof *ex->columns);
    PT_CHECK_ALLOC(ex->columns, err, r->n_members * sizeof *ex->columns);
    bool prompt_seen = false;
    for (size_t i = 0; i < r->n_members; i++) {
        const record_member *m = &r->members[i];
        if (!prompt_seen && strcmp(m->name, "prompt") == 0) { /* cJSON reads the first of duplicates */
            prompt_seen = true;
            continue;
        }
        dataset_column *col = &ex->columns[ex->n_columns++];
        col->name = strdup(m->name);
        col->json = dup_span(raw, m->raw_start, m->raw_end);
        PT_CHECK_ALLOC(col->name, err, strlen(m->name));
        PT_CHECK_ALLOC(col->json, err, m->raw_end - m->raw_start);
    }
    return PT_OK;
}

static pt_status build(dataset_example *ex, bool *good, record_bad *bad, const example_ctx *c, const record *r,
                       const char *raw, pt_error *err) {
    *good = false;
    ex->format = r->format;
    switch (r->format) {
    case DATASET_FORMAT_TEXT:
        PT_TRY(seq_plain(&ex->seq, c, r->text.text, NULL, err));
        *good = seq_truncate(&ex->seq, c, "text", bad);
        return PT_OK;
    case DATASET_FORMAT_PROMPT_COMPLETION:
        PT_TRY(seq_pair(&ex->seq, good, bad, c, &r->prompt, &r->completion, "completion", err));
        if (*good) *good = seq_truncate(&ex->seq, c, "completion", bad);
        return PT_OK;
    case DATASET_FORMAT_MESSAGES:
        PT_TRY(seq_chat(&ex->seq, good, bad, c, &r->messages, NULL, "messages", false, NULL, err));
        if (*good) *good = seq_truncate(&ex->seq, c, "messages", bad);
        return PT_OK;
    case DATASET_FORMAT_PROMPT:
        PT_TRY(build_prompt(ex, good, bad, c, r, raw, err));
        if (*good) *good = seq_truncate(&ex->seq, c, "prompt", bad);
        return PT_OK;
    case DATASET_FORMAT_PREFERENCE:
        PT_TRY(seq_pair(&ex->seq, good, bad, c, &r->prompt, &r->chosen, "chosen", err));
        if (*good) *good = seq_truncate(&ex->seq, c, "chosen", bad);
        if (!*good) return PT_OK;
        PT_TRY(seq_pair(&ex->rejected, good, bad, c, &r->prompt, &r->rejected, "rejected", err));
        if (*good) *good = seq_truncate(&ex->rejected, c, "rejected", bad);
        return PT_OK;
    default: PT_FAIL(err, PT_ERR_INTERNAL, "record shape %d has no tokenisation", (int)r->format);
    }
}

pt_status example_build(dataset_example *ex, bool *good, record_bad *bad, const example_ctx *c, const record *r,
                        const char *raw, pt_error *err) {
    *ex = (dataset_example){0};
    pt_status st = build(ex, good, bad, c, r, raw, err);
    if (st != PT_OK || !*good) dataset_example_free(ex);
    return st;
}
