/* reward_format.c — the DeepSeek-R1 format reward: reasoning in <think>…</think>, then the
 * answer in <answer>…</answer>.
 *
 * Params: "mode" strict | lenient (default strict), "hit" (1), "miss" (0), "think_in_prompt"
 * (default false: set it when the chat template already ends the prompt with "<think>", as
 * DeepSeek-R1's does, so the completion starts inside the reasoning and has no opening tag).
 *
 * strict: the completion is exactly
 *     ws <think> T </think> ws <answer> A </answer> ws
 *   where ws is ASCII whitespace only (space, \t, \n, \r, \f, \v; possibly none), each of the four
 *   tags occurs exactly once in the whole completion (so T and A contain no tags), T may be
 *   empty (R1's "no thinking" form) and A must contain something other than whitespace. With
 *   think_in_prompt the leading "ws <think>" is absent (a "<think>" anywhere is then a miss).
 * lenient: "<think>", "</think>", "<answer>", "</answer>" occur in that order (each searched
 *   after the end of the previous one); anything may surround or repeat them; contents may be
 *   empty. With think_in_prompt the first "<think>" is not required.
 * Tags are case-sensitive and must be written exactly (no attributes, no spaces inside).
 */
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"

typedef struct format_reward {
    bool strict;
    bool think_in_prompt;
    double hit, miss;
} format_reward;

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static const char *skip_ws(const char *s) {
    while (is_ws(*s)) s++;
    return s;
}

static int count_occurrences(const char *s, const char *tag) {
    int n = 0;
    size_t len = strlen(tag);
    for (const char *p = strstr(s, tag); p; p = strstr(p + len, tag)) n++;
    return n;
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static bool format_strict(const char *s, bool think_in_prompt) {
    if (count_occurrences(s, "<think>") != (think_in_prompt ? 0 : 1) || count_occurrences(s, "</think>") != 1 ||
        count_occurrences(s, "<answer>") != 1 || count_occurrences(s, "</answer>") != 1)
        return false;
    const char *p = s;
    if (!think_in_prompt) {
        p = skip_ws(p);
        if (!starts_with(p, "<think>")) return false;
        p += strlen("<think>");
    }
    p = strstr(p, "</think>"); /* exactly one, and no other tag can sit before it in T */
    if (!p) return false;
    p = skip_ws(p + strlen("</think>"));
    if (!starts_with(p, "<answer>")) return false;
    const char *a = p + strlen("<answer>");
    const char *end = strstr(a, "</answer>");
    if (!end) return false;
    bool nonblank = false;
    for (const char *q = a; q < end; q++) nonblank |= !is_ws(*q);
    if (!nonblank) return false;
    return *skip_ws(end + strlen("</answer>")) == '\0';
}

static bool format_lenient(const char *s, bool think_in_prompt) {
    static const char *const tags[] = {"<think>", "</think>", "<answer>", "</answer>"};
    const char *p = s;
    for (int i = think_in_prompt ? 1 : 0; i < 4; i++) {
        p = strstr(p, tags[i]);
        if (!p) return false;
        p += strlen(tags[i]);
    }
    return true;
}

static pt_status format_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    const format_reward *f = self->impl;
    for (int i = 0; i < n; i++) {
        const char *c = items[i].completion ? items[i].completion : "";
        bool ok = f->strict ? format_strict(c, f->think_in_prompt) : format_lenient(c, f->think_in_prompt);
        reward_result_ok(&out[i], ok ? f->hit : f->miss);
    }
    return PT_OK;
}

static void format_free(reward *self) {
    free(self->impl);
    self->impl = NULL;
}

static const reward_vtable FORMAT_VTABLE = {format_score_batch, format_free};

pt_status reward_format_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"mode", "hit", "miss", "think_in_prompt"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, 4, err));
    format_reward f = {0};
    const char *mode;
    PT_TRY(reward_cfg_string(&mode, cfg, "mode", "strict", err));
    if (strcmp(mode, "strict") != 0 && strcmp(mode, "lenient") != 0)
        PT_FAIL(err, PT_ERR_CONFIG, "mode '%s' is not 'strict' or 'lenient'", mode);
    f.strict = strcmp(mode, "strict") == 0;
    PT_TRY(reward_cfg_bool(&f.think_in_prompt, cfg, "think_in_prompt", false, err));
    PT_TRY(reward_cfg_number(&f.hit, cfg, "hit", 1.0, err));
    PT_TRY(reward_cfg_number(&f.miss, cfg, "miss", 0.0, err));
    format_reward *impl = malloc(sizeof *impl);
    PT_CHECK_ALLOC(impl, err, sizeof *impl);
    *impl = f;
    self->impl = impl;
    self->vt = &FORMAT_VTABLE;
    return PT_OK;
}
