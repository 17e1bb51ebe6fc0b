/* record.c — parsing and checking one dataset record (see record.h for the order of checks).
 *
 * The raw span of each top-level member is found by a small scanner run after cJSON accepted
 * the text, so it only has to skip well-formed JSON: strings (with escapes), nested brackets and
 * literals, with cJSON's notion of whitespace (every byte ≤ 0x20). GRPO columns are handed on as
 * these spans, so a column's JSON reaches reward functions byte for byte as the file has it.
 */
#include "datasets/record.h"

#include "core/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------- helpers */

static bool set_bad(record_bad *bad, dataset_bad_reason reason, const char *field, const char *fmt, ...)
    PT_PRINTF(4, 5);

static bool set_bad(record_bad *bad, dataset_bad_reason reason, const char *field, const char *fmt, ...) {
    bad->reason = reason;
    bad->mixed = false;
    snprintf(bad->field, sizeof bad->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(bad->msg, sizeof bad->msg, fmt, ap);
    va_end(ap);
    return false;
}

static const char *json_type_name(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "list";
    if (cJSON_IsObject(v)) return "object";
    return "invalid value";
}

size_t record_utf8_check(const unsigned char *s, size_t n) { return utf8_valid_prefix(s, n); }

/* Appends ".name" or "[i]" to a field path (kept short enough for record_bad.field). */
static void path_push(char *dst, size_t cap, const char *base, const cJSON *child, int index) {
    if (child->string) {
        if (record_utf8_check((const unsigned char *)child->string, strlen(child->string)) != strlen(child->string))
            snprintf(dst, cap, "%s%s(a key)", base, *base ? "." : "");
        else snprintf(dst, cap, "%s%s%s", base, *base ? "." : "", child->string);
    } else snprintf(dst, cap, "%s[%d]", base, index);
}

/* The first string or key below v that is not UTF-8; fills bad and returns false. */
static bool check_utf8_tree(const cJSON *v, const char *path, record_bad *bad) {
    if (cJSON_IsString(v) && v->valuestring) {
        size_t n = strlen(v->valuestring);
        size_t at = record_utf8_check((const unsigned char *)v->valuestring, n);
        if (at != n)
            return set_bad(bad, DATASET_BAD_UTF8, path, "invalid UTF-8 (byte 0x%02X at offset %zu of the string)",
                           (unsigned char)v->valuestring[at], at);
    }
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        char sub[sizeof bad->field];
        path_push(sub, sizeof sub, path, c, i);
        if (c->string) {
            size_t n = strlen(c->string);
            if (record_utf8_check((const unsigned char *)c->string, n) != n)
                return set_bad(bad, DATASET_BAD_UTF8, sub, "a key is not valid UTF-8");
        }
        if (!check_utf8_tree(c, sub, bad)) return false;
    }
    return true;
}

/* A real "\u0000" escape (not an escaped backslash followed by "u0000") anywhere in the text. */
static bool has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\' || s[i + 1] != 'u' || memcmp(s + i + 2, "0000", 4) != 0) continue;
        size_t slashes = 0;
        for (size_t j = i + 1; j-- > 0 && s[j] == '\\';) slashes++;
        if (slashes % 2 == 1) return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------- raw spans */

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (unsigned char)s[i] <= 0x20) i++;
    return i;
}

static size_t skip_string(const char *s, size_t i, size_t n) {
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\') i++;
    return i + 1;
}

static size_t skip_value(const char *s, size_t i, size_t n) {
    if (i >= n) return n;
    if (s[i] == '"') return skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            if (s[i] == '"') {
                i = skip_string(s, i, n);
                continue;
            }
            if (s[i] == '{' || s[i] == '[') depth++;
            else if (s[i] == '}' || s[i] == ']') depth--;
            i++;
            if (depth == 0) return i;
        }
        return n;
    }
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && (unsigned char)s[i] > 0x20) i++;
    return i;
}

/* Fills r->members from the text; false when the scan disagrees with cJSON (a bug). */
static bool scan_members(record *r, const char *s, size_t n) {
    size_t i = skip_ws(s, 0, n), k = 0;
    if (i >= n || s[i] != '{') return false;
    i = skip_ws(s, i + 1, n);
    const cJSON *c = r->root->child;
    while (i < n && s[i] != '}') {
        if (s[i] != '"' || !c || k >= r->n_members) return false;
        i = skip_ws(s, skip_string(s, i, n), n);
        if (i >= n || s[i] != ':') return false;
        i = skip_ws(s, i + 1, n);
        size_t start = i;
        i = skip_value(s, i, n);
        size_t end = i;
        while (end > start && (unsigned char)s[end - 1] <= 0x20) end--;
        r->members[k++] = (record_member){.name = c->string, .raw_start = start, .raw_end = end};
        c = c->next;
        i = skip_ws(s, i, n);
        if (i < n && s[i] == ',') i = skip_ws(s, i + 1, n);
    }
    return k == r->n_members && !c;
}

/* ------------------------------------------------------------------------------- shapes */

dataset_format record_detect(const cJSON *root) {
    if (!cJSON_IsObject(root)) return DATASET_FORMAT_AUTO;
#define HAS(k) (cJSON_GetObjectItemCaseSensitive(root, k) != NULL)
    if (HAS("messages")) return DATASET_FORMAT_MESSAGES;
    if (HAS("chosen") && HAS("rejected")) return DATASET_FORMAT_PREFERENCE;
    if (HAS("prompt") && HAS("completion")) return DATASET_FORMAT_PROMPT_COMPLETION;
    if (HAS("text")) return DATASET_FORMAT_TEXT;
    if (HAS("prompt")) return DATASET_FORMAT_PROMPT;
#undef HAS
    return DATASET_FORMAT_AUTO;
}

/* The fields each shape requires (a record with none of them may be of another shape). */
static const char *const *required_fields(dataset_format f) {
    static const char *const text[] = {"text", NULL}, *const pc[] = {"prompt", "completion", NULL},
                             *const msgs[] = {"messages", NULL}, *const prompt[] = {"prompt", NULL},
                             *const pref[] = {"chosen", "rejected", NULL}, *const none[] = {NULL};
    switch (f) {
    case DATASET_FORMAT_TEXT: return text;
    case DATASET_FORMAT_PROMPT_COMPLETION: return pc;
    case DATASET_FORMAT_MESSAGES: return msgs;
    case DATASET_FORMAT_PROMPT: return prompt;
    case DATASET_FORMAT_PREFERENCE: return pref;
    default: return none;
    }
}

static void member_span(const record *r, const cJSON *v, size_t *start, size_t *end) {
    size_t k = 0;
    for (const cJSON *c = r->root->child; c; c = c->next, k++)
        if (c == v) {
            *start = r->members[k].raw_start;
            *end = r->members[k].raw_end;
            return;
        }
    *start = *end = 0;
}

/* Messages list → chat_message array (strings inside the tree). */
static pt_status get_messages(record_part *p, bool *ok, const cJSON *list, const char *field, record_bad *bad,
                              pt_error *err) {
    size_t n = (size_t)cJSON_GetArraySize(list);
    *ok = false;
    if (n == 0) {
        set_bad(bad, DATASET_BAD_EMPTY, field, "empty list of messages");
        return PT_OK;
    }
    chat_message *m = calloc(n, sizeof *m);
    PT_CHECK_ALLOC(m, err, n * sizeof *m);
    size_t i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        char at[sizeof bad->field - 16], sub[sizeof bad->field];
        snprintf(at, sizeof at, "%s[%zu]", field, i);
        if (!cJSON_IsObject(e)) {
            set_bad(bad, DATASET_BAD_TYPE, at, "expected a message object with role and content, got %s",
                    json_type_name(e));
            goto bad;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        snprintf(sub, sizeof sub, "%s.role", at);
        if (!role) {
            set_bad(bad, DATASET_BAD_MISSING, sub, "missing");
            goto bad;
        }
        if (!cJSON_IsString(role)) {
            set_bad(bad, DATASET_BAD_TYPE, sub, "expected a string, got %s", json_type_name(role));
            goto bad;
        }
        const char *rs = role->valuestring;
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            set_bad(bad, DATASET_BAD_MESSAGE, sub,
                    "role \"%s\" is not supported by the native chat templates (system, user, assistant)", rs);
            goto bad;
        }
        snprintf(sub, sizeof sub, "%s.content", at);
        if (!content) {
            set_bad(bad, DATASET_BAD_MISSING, sub, "missing");
            goto bad;
        }
        if (!cJSON_IsString(content)) {
            set_bad(bad, DATASET_BAD_TYPE, sub, "expected a string, got %s", json_type_name(content));
            goto bad;
        }
        m[i] = (chat_message){.role = rs, .content = content->valuestring};
    }
    p->msgs = m;
    p->n_msgs = n;
    p->is_chat = true;
    *ok = true;
    return PT_OK;
bad:
    free(m);
    return PT_OK;
}

typedef enum part_kind { PART_STRING, PART_CHAT, PART_EITHER } part_kind;

/* Fills p from root[name]: a string or a list of messages, as `kind` allows. */
static pt_status get_part(record_part *p, bool *ok, const record *r, const char *name, bool required, part_kind kind,
                          bool nonempty, const char *why_chat, record_bad *bad, pt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, name);
    *p = (record_part){0};
    *ok = false;
    if (!v) {
        if (required) set_bad(bad, DATASET_BAD_MISSING, name, "missing");
        else *ok = true;
        return PT_OK;
    }
    member_span(r, v, &p->raw_start, &p->raw_end);
    p->present = true;
    if (cJSON_IsString(v) && kind != PART_CHAT) {
        p->text = v->valuestring;
        if (nonempty && !*p->text) set_bad(bad, DATASET_BAD_EMPTY, name, "empty string");
        else *ok = true;
        return PT_OK;
    }
    if (cJSON_IsArray(v) && kind != PART_STRING) return get_messages(p, ok, v, name, bad, err);
    /* the reason is worth saying only when the value is of the other accepted kind */
    const char *why = cJSON_IsString(v) || cJSON_IsArray(v) ? why_chat : "";
    if (kind == PART_STRING)
        set_bad(bad, DATASET_BAD_TYPE, name, "expected a string%s, got %s", why, json_type_name(v));
    else if (kind == PART_CHAT)
        set_bad(bad, DATASET_BAD_TYPE, name, "expected a list of messages%s, got %s", why, json_type_name(v));
    else set_bad(bad, DATASET_BAD_TYPE, name, "expected a string or a list of messages, got %s", json_type_name(v));
    return PT_OK;
}

/* Same kind as an earlier part: the strings of TRL's standard shapes, or all conversational. */
static part_kind kind_like(const record_part *p) {
    return p->present ? (p->is_chat ? PART_CHAT : PART_STRING) : PART_EITHER;
}
static const char *why_like(const record_part *p) {
    if (!p->present) return "";
    return p->is_chat ? " (the prompt is a list of messages)" : " (the prompt is a string)";
}

static pt_status check_shape(record *r, bool *ok, record_bad *bad, pt_error *err) {
    *ok = false;
    switch (r->format) {
    case DATASET_FORMAT_TEXT:
        return get_part(&r->text, ok, r, "text", true, PART_STRING, true, "", bad, err);
    case DATASET_FORMAT_PROMPT_COMPLETION:
        PT_TRY(get_part(&r->prompt, ok, r, "prompt", true, PART_EITHER, false, "", bad, err));
        if (!*ok) return PT_OK;
        return get_part(&r->completion, ok, r, "completion", true, kind_like(&r->prompt), true,
                        why_like(&r->prompt), bad, err);
    case DATASET_FORMAT_MESSAGES:
        return get_part(&r->messages, ok, r, "messages", true, PART_CHAT, true, "", bad, err);
    case DATASET_FORMAT_PROMPT:
        return get_part(&r->prompt, ok, r, "prompt", true, PART_EITHER, true, "", bad, err);
    case DATASET_FORMAT_PREFERENCE: {
        PT_TRY(get_part(&r->prompt, ok, r, "prompt", false, PART_EITHER, false, "", bad, err));
        if (!*ok) return PT_OK;
        PT_TRY(get_part(&r->chosen, ok, r, "chosen", true, kind_like(&r->prompt), true, why_like(&r->prompt),
                        bad, err));
        if (!*ok) return PT_OK;
        const record_part *lead = r->prompt.present ? &r->prompt : &r->chosen;
        const char *why = r->prompt.present ? why_like(&r->prompt)
                          : r->chosen.is_chat ? " (chosen is a list of messages)"
                                              : " (chosen is a string)";
        return get_part(&r->rejected, ok, r, "rejected", true, kind_like(lead), true, why, bad, err);
    }
    default: return error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "record shape %d", (int)r->format);
    }
}

void record_free(record *r) {
    if (!r) return;
    record_part *parts[] = {&r->text, &r->prompt, &r->completion, &r->messages, &r->chosen, &r->rejected};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) free(parts[i]->msgs);
    free(r->members);
    cJSON_Delete(r->root);
    *r = (record){0};
}

pt_status record_parse(record *r, bool *good, record_bad *bad, const char *text, size_t len, dataset_format want,
                       pt_error *err) {
    *r = (record){0};
    *good = false;
    if (memchr(text, '\0', len)) {
        set_bad(bad, DATASET_BAD_JSON, NULL, "malformed JSON: the line holds a NUL byte at column %zu",
                (size_t)((const char *)memchr(text, '\0', len) - text) + 1);
        return PT_OK;
    }
    const char *end = NULL;
    /* the NUL at text[len] is part of the buffer: cJSON's "require_null_terminated" looks for it
     * there, which rejects anything but whitespace after the object */
    r->root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!r->root) {
        size_t col = end && end >= text && end <= text + len ? (size_t)(end - text) + 1 : 1;
        set_bad(bad, DATASET_BAD_JSON, NULL, "malformed JSON at column %zu (near \"%.20s\")", col,
                end && end < text + len ? end : "");
        return PT_OK;
    }
    if (!cJSON_IsObject(r->root)) {
        set_bad(bad, DATASET_BAD_JSON, NULL, "expected a JSON object per line, got %s", json_type_name(r->root));
        goto bad;
    }
    if (has_nul_escape(text, len)) {
        set_bad(bad, DATASET_BAD_JSON, NULL, "a string holds \\u0000 (NUL), which cannot be tokenised as text");
        goto bad;
    }
    if (!check_utf8_tree(r->root, "", bad)) goto bad;
    r->n_members = (size_t)cJSON_GetArraySize(r->root);
    r->members = calloc(r->n_members ? r->n_members : 1, sizeof *r->members);
    if (!r->members) {
        record_free(r);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory indexing a record's %zu fields", r->n_members);
    }
    if (!scan_members(r, text, len)) {
        record_free(r);
        PT_FAIL(err, PT_ERR_INTERNAL, "the member scanner disagrees with cJSON on a record (a bug): %.80s", text);
    }

    dataset_format mine = record_detect(r->root);
    if (want == DATASET_FORMAT_AUTO) {
        if (mine == DATASET_FORMAT_AUTO) {
            set_bad(bad, DATASET_BAD_MISSING, NULL,
                    "no dataset shape fits this record: expected \"text\", \"prompt\"+\"completion\", \"messages\", "
                    "\"prompt\" (GRPO) or \"chosen\"+\"rejected\"");
            goto bad;
        }
        want = mine;
    } else {
        bool has_any = false;
        for (const char *const *f = required_fields(want); *f; f++)
            has_any |= cJSON_GetObjectItemCaseSensitive(r->root, *f) != NULL;
        if (!has_any && mine != DATASET_FORMAT_AUTO && mine != want) {
            set_bad(bad, DATASET_BAD_MISSING, NULL, "the record has the shape '%s'", dataset_format_name(mine));
            bad->mixed = true;
            goto bad;
        }
    }
    r->format = want;
    bool ok;
    pt_status st = check_shape(r, &ok, bad, err);
    if (st != PT_OK) {
        record_free(r);
        return st;
    }
    if (!ok) goto bad;
    *good = true;
    return PT_OK;
bad:
    record_free(r);
    return PT_OK;
}
