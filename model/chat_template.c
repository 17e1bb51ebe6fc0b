/* chat_template.c — the DeepSeek-V3 / DeepSeek-R1 / plain chat formats (see chat_template.h).
 *
 * The renderers follow the Jinja templates below statement by statement for the roles they
 * accept; tests/ref/make_tokenizer_fixture.py renders conversations with transformers and the
 * same strings, and the C test compares bytes and token ids. Invariant: every span lies inside
 * the text and spans are in increasing order.
 */
#include "model/chat_template.h"

#include <stdlib.h>
#include <string.h>

#define USER "<\uff5cUser\uff5c>"
#define ASSISTANT "<\uff5cAssistant\uff5c>"
#define END_OF_SENTENCE "<\uff5cend\u2581of\u2581sentence\uff5c>"

/* deepseek-ai/DeepSeek-V3 tokenizer_config.json "chat_template" (Dec 2024). */
static const char TEMPLATE_V3[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'" USER "' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'" ASSISTANT "<\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>' + tool['type'] + "
    "'<\uff5ctool\u2581sep\uff5c>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + "
    "tool['function']['arguments'] + '\\n' + '```' + '<\uff5ctool\u2581call\u2581end\uff5c>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<\uff5ctool\u2581call\u2581begin\uff5c>' + tool['type'] + '<\uff5ctool\u2581sep\uff5c>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<\uff5ctool\u2581call\u2581end\uff5c>'}}"
    "{{'<\uff5ctool\u2581calls\u2581end\uff5c>" END_OF_SENTENCE "'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<\uff5ctool\u2581outputs\u2581end\uff5c>' + message['content'] + '" END_OF_SENTENCE "'}}"
    "{%- set ns.is_tool = false -%}"
    "{%- else %}{{'" ASSISTANT "' + message['content'] + '" END_OF_SENTENCE "'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>' + message['content'] + "
    "'<\uff5ctool\u2581output\u2581end\uff5c>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<\uff5ctool\u2581output\u2581begin\uff5c>' + message['content'] + '<\uff5ctool\u2581output\u2581end\uff5c>'}}"
    "{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<\uff5ctool\u2581outputs\u2581end\uff5c>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'" ASSISTANT "'}}{% endif %}";

/* deepseek-ai/DeepSeek-R1 tokenizer_config.json "chat_template" (Jan 2025). */
static const char TEMPLATE_R1[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'" USER "' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}"
    "{{'" ASSISTANT "<\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>' + tool['type'] + "
    "'<\uff5ctool\u2581sep\uff5c>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + "
    "tool['function']['arguments'] + '\\n' + '```' + '<\uff5ctool\u2581call\u2581end\uff5c>'}}"
    "{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<\uff5ctool\u2581call\u2581begin\uff5c>' + tool['type'] + '<\uff5ctool\u2581sep\uff5c>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<\uff5ctool\u2581call\u2581end\uff5c>'}}"
    "{{'<\uff5ctool\u2581calls\u2581end\uff5c>" END_OF_SENTENCE "'}}{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}"
    "{{'<\uff5ctool\u2581outputs\u2581end\uff5c>' + message['content'] + '" END_OF_SENTENCE "'}}"
    "{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'" ASSISTANT "' + content + '" END_OF_SENTENCE "'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<\uff5ctool\u2581outputs\u2581begin\uff5c><\uff5ctool\u2581output\u2581begin\uff5c>' + message['content'] + "
    "'<\uff5ctool\u2581output\u2581end\uff5c>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'\\n<\uff5ctool\u2581output\u2581begin\uff5c>' + message['content'] + '<\uff5ctool\u2581output\u2581end\uff5c>'}}"
    "{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<\uff5ctool\u2581outputs\u2581end\uff5c>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'" ASSISTANT "<think>\\n'}}{% endif %}";

/* posttrain's format for base models. */
static const char TEMPLATE_PLAIN[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% else %}{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}";

static const struct {
    const char *name;
    const char *jinja;
} FORMATS[] = {
    [CHAT_DEEPSEEK_V3] = {"deepseek-v3", TEMPLATE_V3},
    [CHAT_DEEPSEEK_R1] = {"deepseek-r1", TEMPLATE_R1},
    [CHAT_PLAIN] = {"plain", TEMPLATE_PLAIN},
};
enum { N_FORMATS = sizeof FORMATS / sizeof FORMATS[0] };

pt_status chat_format_parse(chat_format *out, const char *name, pt_error *err) {
    for (int i = 0; i < N_FORMATS; i++) {
        if (name && strcmp(name, FORMATS[i].name) == 0) {
            *out = (chat_format)i;
            return PT_OK;
        }
    }
    PT_FAIL(err, PT_ERR_CONFIG, "chat template \"%s\" is not supported; supported: deepseek-v3, deepseek-r1, plain",
            name ? name : "(null)");
}

const char *chat_format_name(chat_format fmt) { return (unsigned)fmt < N_FORMATS ? FORMATS[fmt].name : "?"; }
const char *chat_format_jinja(chat_format fmt) { return (unsigned)fmt < N_FORMATS ? FORMATS[fmt].jinja : NULL; }

bool chat_format_from_jinja(chat_format *out, const char *jinja) {
    for (int i = 0; jinja && i < N_FORMATS; i++) {
        if (strcmp(jinja, FORMATS[i].jinja) == 0) {
            *out = (chat_format)i;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------------- rendering */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static pt_status put(sbuf *b, const char *s, size_t n, pt_error *err) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        PT_CHECK_ALLOC(p, err, cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return PT_OK;
}

static pt_status puts_(sbuf *b, const char *s, pt_error *err) { return put(b, s ? s : "", s ? strlen(s) : 0, err); }

/* Python's s.split('</think>')[-1]: the text after the last "</think>". */
static const char *after_last_think(const char *s) {
    const char *hit = NULL;
    for (const char *p = strstr(s, "</think>"); p; p = strstr(p + 1, "</think>")) hit = p;
    return hit ? hit + strlen("</think>") : s;
}

void chat_render_free(chat_render *r) {
    if (!r) return;
    free(r->text);
    free(r->spans);
    *r = (chat_render){0};
}

pt_status chat_render_messages(chat_render *out, chat_format fmt, const chat_message *msgs, size_t n, const char *bos,
                               const char *eos, const chat_options *opts, pt_error *err) {
    PT_CHECK((unsigned)fmt < N_FORMATS, err, PT_ERR_INVALID, "unknown chat format %d", (int)fmt);
    bool gen = opts && opts->add_generation_prompt, keep = opts && opts->keep_final_think;
    size_t last_assistant = n;
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        PT_CHECK(r && msgs[i].content, err, PT_ERR_INVALID, "message %zu has no role or no content", i);
        bool known = !strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant");
        PT_CHECK(known, err, PT_ERR_UNSUPPORTED,
                 "message %zu has role \"%s\", which the native %s renderer does not support (supported: system, user, "
                 "assistant)",
                 i, r, FORMATS[fmt].name);
        if (!strcmp(r, "assistant")) last_assistant = i;
    }
    sbuf b = {0};
    chat_span *spans = calloc(n ? n : 1, sizeof *spans);
    size_t ns = 0;
    pt_status st = spans ? PT_OK : error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory rendering a chat");
    if (st == PT_OK) st = puts_(&b, bos, err);
    if (fmt == CHAT_PLAIN) {
        for (size_t i = 0; i < n && st == PT_OK; i++) {
            if (strcmp(msgs[i].role, "assistant") == 0) {
                spans[ns].start = b.n;
                st = puts_(&b, msgs[i].content, err);
                if (st == PT_OK) st = puts_(&b, eos, err);
                spans[ns++].end = b.n;
            } else {
                st = puts_(&b, msgs[i].content, err);
                if (st == PT_OK) st = puts_(&b, "\n\n", err);
            }
        }
    } else {
        /* system prompt: V3 joins every system message with "\n\n"; R1 keeps the last one */
        bool first = true;
        const char *r1_system = "";
        for (size_t i = 0; i < n && st == PT_OK; i++) {
            if (strcmp(msgs[i].role, "system") != 0) continue;
            if (fmt == CHAT_DEEPSEEK_R1) {
                r1_system = msgs[i].content;
                continue;
            }
            if (!first) st = puts_(&b, "\n\n", err);
            if (st == PT_OK) st = puts_(&b, msgs[i].content, err);
            first = false;
        }
        if (st == PT_OK && fmt == CHAT_DEEPSEEK_R1) st = puts_(&b, r1_system, err);
        for (size_t i = 0; i < n && st == PT_OK; i++) {
            const char *role = msgs[i].role, *c = msgs[i].content;
            if (strcmp(role, "user") == 0) {
                st = puts_(&b, USER, err);
                if (st == PT_OK) st = puts_(&b, c, err);
            } else if (strcmp(role, "assistant") == 0) {
                if (fmt == CHAT_DEEPSEEK_R1 && !(keep && i == last_assistant)) c = after_last_think(c);
                st = puts_(&b, ASSISTANT, err);
                spans[ns].start = b.n;
                if (st == PT_OK) st = puts_(&b, c, err);
                if (st == PT_OK) st = puts_(&b, END_OF_SENTENCE, err);
                spans[ns++].end = b.n;
            }
        }
        if (st == PT_OK && gen) st = puts_(&b, fmt == CHAT_DEEPSEEK_R1 ? ASSISTANT "<think>\n" : ASSISTANT, err);
    }
    if (st == PT_OK && !b.p) st = put(&b, "", 0, err); /* an empty render is still a string */
    if (st != PT_OK) {
        free(b.p);
        free(spans);
        return st;
    }
    *out = (chat_render){.text = b.p, .len = b.n, .spans = spans, .n_spans = ns};
    return PT_OK;
}

pt_status chat_encode(tok_ids *ids, uint8_t **mask, tokenizer *tok, const chat_render *r, pt_error *err) {
    ids->n = 0;
    PT_TRY(tokenizer_encode(ids, tok, r->text, r->len, TOK_OFFSETS, err));
    uint8_t *m = malloc(ids->n ? ids->n : 1);
    PT_CHECK_ALLOC(m, err, ids->n);
    size_t s = 0; /* spans and tokens are both in text order */
    for (size_t i = 0; i < ids->n; i++) {
        size_t a = ids->offsets[2 * i], e = ids->offsets[2 * i + 1];
        while (s < r->n_spans && r->spans[s].end <= a) s++;
        m[i] = s < r->n_spans && a < r->spans[s].end && e > r->spans[s].start;
    }
    *mask = m;
    return PT_OK;
}
