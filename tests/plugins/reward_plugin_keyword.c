/* reward_plugin_keyword.c — a test reward plugin (built as a .so next to the test binary):
 * 1 for completions containing the configured "keyword", 0 otherwise; and, to drive the error
 * paths from the test, "MASK" → masked, "FAIL" → failed item, "NAN" → a NaN score,
 * "BATCHFAIL" → the whole call fails, "NOSTATUS" → the status is left unwritten.
 * init refuses a config without "keyword". Depends on nothing but libc (crude key lookup: the
 * config is the unformatted JSON that posttrain hands over). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/plugin_abi.h"

typedef struct keyword_state {
    char keyword[128];
    int calls;
} keyword_state;

static void *kw_init(const char *config_json, char *err, size_t err_len) {
    const char *k = strstr(config_json, "\"keyword\":\"");
    if (!k) {
        snprintf(err, err_len, "config needs \"keyword\" (got %s)", config_json);
        return NULL;
    }
    k += strlen("\"keyword\":\"");
    const char *end = strchr(k, '"');
    keyword_state *s = calloc(1, sizeof *s);
    if (!s || !end || (size_t)(end - k) >= sizeof s->keyword) {
        free(s);
        snprintf(err, err_len, "bad keyword");
        return NULL;
    }
    memcpy(s->keyword, k, (size_t)(end - k));
    return s;
}

static int kw_score(void *handle, const posttrain_reward_item *items, int n, double *scores, unsigned char *status,
                    char *err, size_t err_len) {
    keyword_state *s = handle;
    s->calls++;
    for (int i = 0; i < n; i++)
        if (strstr(items[i].completion, "BATCHFAIL")) {
            snprintf(err, err_len, "keyword plugin: batch failure requested");
            return 7;
        }
    for (int i = 0; i < n; i++) {
        const char *c = items[i].completion;
        if (strstr(c, "NOSTATUS")) continue;
        status[i] = POSTTRAIN_REWARD_SCORED;
        if (strstr(c, "MASK")) status[i] = POSTTRAIN_REWARD_MASKED;
        else if (strstr(c, "FAIL")) status[i] = POSTTRAIN_REWARD_FAILED;
        else if (strstr(c, "NAN")) scores[i] = NAN;
        else if (strstr(c, "CALLS")) scores[i] = s->calls;
        else scores[i] = strstr(c, s->keyword) ? 1.0 : 0.0;
    }
    return 0;
}

static void kw_free(void *handle) { free(handle); }

const posttrain_reward_plugin_v1 posttrain_reward_v1 = {
    .abi_version = POSTTRAIN_REWARD_ABI_VERSION,
    .struct_size = sizeof(posttrain_reward_plugin_v1),
    .name = "keyword-test",
    .init = kw_init,
    .score = kw_score,
    .free = kw_free,
};
