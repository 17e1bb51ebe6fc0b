/* plugin_abi.h — the C ABI of posttrain reward plugins (shared objects loaded with dlopen).
 *
 * This header stands alone (only the C standard library) so that a plugin can be built outside
 * the posttrain tree: copy it or point -I at rewards/. A plugin exports one object:
 *
 *     const posttrain_reward_plugin_v1 posttrain_reward_v1 = {
 *         .abi_version = POSTTRAIN_REWARD_ABI_VERSION, .struct_size = sizeof(posttrain_reward_plugin_v1),
 *         .name = "keyword", .init = my_init, .score = my_score, .free = my_free};
 *
 * Contract:
 *   init(config_json, err, err_len) gets the reward's whole config object as JSON text (its
 *     "name", "type", "weight", "path" and any other keys, which are the plugin's own params) and
 *     returns a handle, or NULL after writing a message into err (NUL-terminated, at most
 *     err_len bytes). A plugin with no state may return any non-NULL pointer.
 *   score(handle, items, n, scores, status, err, err_len) writes, for every i < n, status[i]:
 *     POSTTRAIN_REWARD_SCORED (scores[i] holds a finite score), POSTTRAIN_REWARD_MASKED (no score
 *     by design) or POSTTRAIN_REWARD_FAILED (the plugin failed on this item). It returns 0, or
 *     non-zero when it could not score the batch at all (message in err; every item is then
 *     counted as failed). Item strings are valid only during the call. Scores that are NaN/Inf
 *     are counted as failures, never used.
 *   free(handle) releases the handle; called once, after the last score.
 * posttrain calls a plugin from one thread at a time. A crash inside a plugin takes the trainer
 * down with it — run a plugin that may crash under `posttrain reward-host` as a subprocess
 * reward's command (rewards/reward_host.h), or write untrusted reward code as a subprocess plugin.
 *
 * Versioning: abi_version is checked first and struct_size second; a plugin built for another
 * version is refused with a message naming the file and both versions.
 */
#ifndef POSTTRAIN_REWARD_PLUGIN_ABI_H
#define POSTTRAIN_REWARD_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#define POSTTRAIN_REWARD_ABI_VERSION 1u
#define POSTTRAIN_REWARD_SYMBOL "posttrain_reward_v1"

enum { POSTTRAIN_REWARD_SCORED = 0, POSTTRAIN_REWARD_MASKED = 1, POSTTRAIN_REWARD_FAILED = 2 };

typedef struct posttrain_reward_item {
    const char *prompt;       /* never NULL */
    const char *completion;   /* never NULL */
    const char *columns_json; /* the example's extra columns as a JSON object text; never NULL */
    int completion_tokens;    /* < 0 when unknown */
} posttrain_reward_item;

typedef struct posttrain_reward_plugin_v1 {
    uint32_t abi_version; /* POSTTRAIN_REWARD_ABI_VERSION */
    uint32_t struct_size; /* sizeof(posttrain_reward_plugin_v1) */
    const char *name;     /* for messages */
    void *(*init)(const char *config_json, char *err, size_t err_len);
    int (*score)(void *handle, const posttrain_reward_item *items, int n, double *scores, unsigned char *status,
                 char *err, size_t err_len);
    void (*free)(void *handle);
} posttrain_reward_plugin_v1;

#endif
