/* keyword.c — an example posttrain reward plugin (C shared object, ABI v1).
 *
 * Scores a completion by the keywords it contains: the config's "keywords" (a list of strings)
 * each add "per_keyword" (default 1/len(keywords)), so the score is in [0, 1] by default;
 * "case_sensitive" (default false). A completion that is empty is masked (no score), to show
 * how a plugin says "this item cannot be judged".
 *
 *     {"name": "kw", "type": "plugin", "path": "examples/reward-plugin-c/keyword.so",
 *      "keywords": ["because", "therefore"], "weight": 0.2}
 *
 * Build: make -C examples/reward-plugin-c   (needs libcjson-dev; see the Makefile)
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/plugin_abi.h"

typedef struct keyword_plugin {
    char **keywords; /* (n) lower-cased unless case_sensitive */
    int n;
    double per_keyword;
    int case_sensitive;
} keyword_plugin;

static void kw_free(void *handle) {
    keyword_plugin *k = handle;
    if (!k) return;
    for (int i = 0; i < k->n; i++) free(k->keywords[i]);
    free(k->keywords);
    free(k);
}

static void lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static void *kw_init(const char *config_json, char *err, size_t err_len) {
    cJSON *cfg = cJSON_Parse(config_json);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cfg, "keywords");
    keyword_plugin *k = calloc(1, sizeof *k);
    if (!k || !cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
        snprintf(err, err_len, "\"keywords\" must be a non-empty list of strings");
        cJSON_Delete(cfg);
        free(k);
        return NULL;
    }
    k->n = cJSON_GetArraySize(list);
    k->keywords = calloc((size_t)k->n, sizeof *k->keywords);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(cfg, "case_sensitive");
    k->case_sensitive = cJSON_IsTrue(cs);
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(cfg, "per_keyword");
    k->per_keyword = cJSON_IsNumber(per) ? per->valuedouble : 1.0 / k->n;
    int i = 0;
    for (const cJSON *e = list->child; e && k->keywords; e = e->next, i++) {
        if (!cJSON_IsString(e) || !(k->keywords[i] = strdup(e->valuestring))) {
            snprintf(err, err_len, "keywords[%d] must be a string", i);
            cJSON_Delete(cfg);
            kw_free(k);
            return NULL;
        }
        if (!k->case_sensitive) lower(k->keywords[i]);
    }
    cJSON_Delete(cfg);
    if (!k->keywords) {
        snprintf(err, err_len, "out of memory");
        kw_free(k);
        return NULL;
    }
    return k;
}

static int kw_score(void *handle, const posttrain_reward_item *items, int n, double *scores, unsigned char *status,
                    char *err, size_t err_len) {
    const keyword_plugin *k = handle;
    for (int i = 0; i < n; i++) {
        if (items[i].completion[0] == '\0') {
            status[i] = POSTTRAIN_REWARD_MASKED;
            continue;
        }
        char *text = strdup(items[i].completion);
        if (!text) {
            snprintf(err, err_len, "out of memory");
            return 1;
        }
        if (!k->case_sensitive) lower(text);
        double s = 0.0;
        for (int j = 0; j < k->n; j++)
            if (strstr(text, k->keywords[j])) s += k->per_keyword;
        free(text);
        scores[i] = s;
        status[i] = POSTTRAIN_REWARD_SCORED;
    }
    return 0;
}

const posttrain_reward_plugin_v1 posttrain_reward_v1 = {
    .abi_version = POSTTRAIN_REWARD_ABI_VERSION,
    .struct_size = sizeof(posttrain_reward_plugin_v1),
    .name = "keyword",
    .init = kw_init,
    .score = kw_score,
    .free = kw_free,
};
