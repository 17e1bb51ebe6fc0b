/* reward_registry.c — the built-in reward types (a const table) and the registry object that
 * holds types added at runtime.
 *
 * Lookup order in reward_create: runtime entries first, then built-ins — but a runtime entry may
 * not take a built-in's name (reward_registry_add refuses), so the order never matters.
 * Invariant: type names in the table and the registry are unique.
 */
#include "rewards/reward.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

const reward_type reward_builtin_types[] = {
    {"regex", "PCRE2 pattern: match / full_match / count / capture compared with a column", reward_regex_init},
    {"format", "R1 format <think>...</think><answer>...</answer>, strict or lenient", reward_format_init},
    {"math", "final answer (\\boxed{}, <answer>, last number) equal by value to the 'answer' column",
     reward_math_init},
    {"countdown", "arithmetic expression using the 'numbers' (each at most once) equal to the 'target'",
     reward_countdown_init},
    {"length", "DAPO soft over-long penalty: 0, then linear to -1 over the last cache_length", reward_length_init},
    {"repetition", "repeated n-gram fraction penalty in [-1, 0]", reward_repetition_init},
    {"plugin", "a C shared object exporting posttrain_reward_v1 (dlopen)", reward_plugin_init},
    {"subprocess", "an executable speaking JSON lines over stdin/stdout", reward_subprocess_init},
    {"unittest", "extracted code run against the example's tests in a sandbox", reward_unittest_init},
    {"http", "remote scoring endpoint or OpenAI-compatible chat judge (libcurl, retries, circuit breaker)", reward_http_init},
    {"model", "a local reward model trained by `posttrain rm` (score.weight on the last token)", reward_rm_init},
};
const int reward_builtin_count = (int)(sizeof reward_builtin_types / sizeof reward_builtin_types[0]);

void reward_registry_init(reward_registry *reg) { memset(reg, 0, sizeof *reg); }

pt_status reward_registry_add(reward_registry *reg, const char *type, const char *summary, reward_init_ctx_fn init,
                              void *ctx, pt_error *err) {
    PT_CHECK(reg && type && init, err, PT_ERR_INVALID, "reward_registry_add: bad arguments");
    size_t len = strlen(type);
    if (len == 0 || len >= REWARD_NAME_MAX)
        PT_FAIL(err, PT_ERR_CONFIG, "reward type name '%.64s' must be 1-%d bytes", type, REWARD_NAME_MAX - 1);
    for (int i = 0; i < reward_builtin_count; i++)
        if (strcmp(reward_builtin_types[i].type, type) == 0)
            PT_FAIL(err, PT_ERR_CONFIG, "reward type '%s' is built in; register the plugin under another name", type);
    for (int i = 0; i < reg->count; i++)
        if (strcmp(reg->entries[i].type, type) == 0)
            PT_FAIL(err, PT_ERR_CONFIG, "reward type '%s' is already registered", type);
    if (reg->count == reg->capacity) {
        int cap = reg->capacity ? 2 * reg->capacity : 8;
        reward_registry_entry *e = realloc(reg->entries, (size_t)cap * sizeof *e);
        PT_CHECK_ALLOC(e, err, (size_t)cap * sizeof *e);
        reg->entries = e;
        reg->capacity = cap;
    }
    reward_registry_entry *e = &reg->entries[reg->count++];
    memset(e, 0, sizeof *e);
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->summary, sizeof e->summary, "%s", summary ? summary : "");
    e->init = init;
    e->ctx = ctx;
    return PT_OK;
}

void reward_registry_free(reward_registry *reg) {
    if (!reg) return;
    free(reg->entries);
    memset(reg, 0, sizeof *reg);
}
