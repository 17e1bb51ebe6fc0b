/* reward_plugin.c — the `plugin` reward: a C shared object loaded with dlopen that exports
 * posttrain_reward_v1 (rewards/plugin_abi.h).
 *
 * Params: "path" (required; a path with a '/' is opened as given, relative to the working
 * directory; a bare file name goes through the dynamic linker's search path), and any other keys,
 * which belong to the plugin: the whole config object is handed to its init as JSON text.
 *
 * Loading checks, each a PT_ERR_CONFIG naming the file: dlopen fails (dlerror's text); the symbol
 * is missing; abi_version differs from POSTTRAIN_REWARD_ABI_VERSION; struct_size is smaller than
 * ours; init/score is NULL; init returns NULL (the plugin's message). The library is opened
 * RTLD_NOW | RTLD_LOCAL (unresolved symbols fail at load, plugins do not see each other) and
 * closed when the reward is freed, after the plugin's free.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/plugin_abi.h"
#include "rewards/reward.h"

typedef struct plugin_reward {
    void *dl;
    const posttrain_reward_plugin_v1 *api;
    void *handle;
    char path[512];
    posttrain_reward_item *items; /* (cap) */
    double *scores;               /* (cap) */
    unsigned char *status;        /* (cap) */
    int cap;
} plugin_reward;

static void plugin_free(reward *self) {
    plugin_reward *p = self->impl;
    if (!p) return;
    if (p->handle && p->api->free) p->api->free(p->handle);
    if (p->dl) dlclose(p->dl);
    free(p->items);
    free(p->scores);
    free(p->status);
    free(p);
    self->impl = NULL;
}

static pt_status plugin_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    plugin_reward *p = self->impl;
    if (n > p->cap) {
        free(p->items);
        free(p->scores);
        free(p->status);
        p->items = malloc((size_t)n * sizeof *p->items);
        p->scores = malloc((size_t)n * sizeof *p->scores);
        p->status = malloc((size_t)n);
        p->cap = n;
        if (!p->items || !p->scores || !p->status) {
            p->cap = 0;
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory for a batch of %d items", n);
        }
    }
    for (int i = 0; i < n; i++) {
        p->items[i] = (posttrain_reward_item){items[i].prompt ? items[i].prompt : "",
                                              items[i].completion ? items[i].completion : "",
                                              items[i].columns ? items[i].columns : "{}", items[i].completion_tokens};
        p->scores[i] = NAN;
        p->status[i] = 0xFF; /* not written */
    }
    char msg[512] = "";
    int rc = p->api->score(p->handle, p->items, n, p->scores, p->status, msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    if (rc != 0)
        PT_FAIL(err, PT_ERR_BACKEND, "plugin %s failed (%d): %s", p->path, rc, msg[0] ? msg : "no message");
    for (int i = 0; i < n; i++) {
        switch (p->status[i]) {
        case POSTTRAIN_REWARD_SCORED: reward_result_ok(&out[i], p->scores[i]); break; /* NaN caught by reward_score */
        case POSTTRAIN_REWARD_MASKED: reward_result_mask(&out[i], REWARD_MASKED, "masked by the plugin"); break;
        case POSTTRAIN_REWARD_FAILED: reward_result_mask(&out[i], REWARD_ERROR, "the plugin failed on this item"); break;
        default:
            reward_result_mask(&out[i], REWARD_ERROR, "the plugin wrote no valid status (%u)", (unsigned)p->status[i]);
        }
    }
    return PT_OK;
}

static const reward_vtable PLUGIN_VTABLE = {plugin_score_batch, plugin_free};

static pt_status plugin_load(plugin_reward *p, const cJSON *cfg, pt_error *err) {
    dlerror();
    p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (!p->dl) {
        const char *e = dlerror();
        PT_FAIL(err, PT_ERR_CONFIG, "cannot load plugin %s: %s", p->path, e ? e : "unknown dlopen error");
    }
    dlerror();
    void *sym = dlsym(p->dl, POSTTRAIN_REWARD_SYMBOL);
    if (!sym)
        PT_FAIL(err, PT_ERR_CONFIG,
                "plugin %s does not export '%s' (define `const posttrain_reward_plugin_v1 %s = {...}` as in "
                "examples/reward-plugin-c/)",
                p->path, POSTTRAIN_REWARD_SYMBOL, POSTTRAIN_REWARD_SYMBOL);
    p->api = sym;
    if (p->api->abi_version != POSTTRAIN_REWARD_ABI_VERSION)
        PT_FAIL(err, PT_ERR_CONFIG,
                "plugin %s was built for reward plugin ABI version %u; this posttrain speaks version %u: rebuild it "
                "against this posttrain's rewards/plugin_abi.h",
                p->path, p->api->abi_version, POSTTRAIN_REWARD_ABI_VERSION);
    if (p->api->struct_size < sizeof(posttrain_reward_plugin_v1))
        PT_FAIL(err, PT_ERR_CONFIG, "plugin %s: struct_size %u is smaller than this ABI's %zu; rebuild it", p->path,
                p->api->struct_size, sizeof(posttrain_reward_plugin_v1));
    if (!p->api->init || !p->api->score)
        PT_FAIL(err, PT_ERR_CONFIG, "plugin %s: init and score must not be NULL", p->path);
    char *json = cJSON_PrintUnformatted(cfg);
    PT_CHECK_ALLOC(json, err, 1);
    char msg[512] = "";
    p->handle = p->api->init(json, msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    cJSON_free(json);
    if (!p->handle)
        PT_FAIL(err, PT_ERR_CONFIG, "plugin %s refused its config: %s", p->path, msg[0] ? msg : "no message");
    return PT_OK;
}

pt_status reward_plugin_init(reward *self, const cJSON *cfg, pt_error *err) {
    const char *path;
    PT_TRY(reward_cfg_string(&path, cfg, "path", NULL, err));
    if (!path || !path[0]) PT_FAIL(err, PT_ERR_CONFIG, "missing \"path\" to the plugin's .so file");
    plugin_reward *p = calloc(1, sizeof *p);
    PT_CHECK_ALLOC(p, err, sizeof *p);
    if (strlen(path) >= sizeof p->path) {
        free(p);
        PT_FAIL(err, PT_ERR_CONFIG, "plugin path is longer than %zu bytes", sizeof p->path - 1);
    }
    snprintf(p->path, sizeof p->path, "%s", path);
    self->impl = p;
    pt_status st = plugin_load(p, cfg, err);
    if (st != PT_OK) {
        p->handle = NULL; /* never call the plugin's free without a handle */
        plugin_free(self);
        return st;
    }
    self->vt = &PLUGIN_VTABLE;
    return PT_OK;
}
