/* reward_file.c — see reward_file.h. */
#include "rewards/reward_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define REWARD_FILE_MAX (16L << 20)

static pt_status read_all(char **out, size_t *len, const char *path, pt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) PT_FAIL(err, PT_ERR_IO, "rewards file '%s' cannot be opened: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1 || (long)n >= REWARD_FILE_MAX) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger, cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    PT_CHECK_ALLOC(buf, err, cap);
    if (bad || (long)n >= REWARD_FILE_MAX) {
        free(buf);
        PT_FAIL(err, PT_ERR_IO, "rewards file '%s' %s", path, bad ? "could not be read" : "is larger than 16 MiB");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return PT_OK;
}

static const char *const OPTION_KEYS[] = {"rewards", "max_error_rate", "error_window", "error_min_items"};

pt_status reward_set_load_file(reward_set *set, const char *path, double max_error_rate, uint64_t *hash,
                               pt_error *err) {
    char *text = NULL;
    size_t len = 0;
    PT_TRY(read_all(&text, &len, path, err));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0, line = 1, col = 1;
        for (size_t i = 0; i < at && i < len; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
        free(text);
        PT_FAIL(err, PT_ERR_CONFIG, "rewards file '%s':%zu:%zu: not valid JSON (expected an array of reward configs "
                "[{\"name\", \"type\", \"weight\", ...}] or {\"rewards\": [...], ...})", path, line, col);
    }
    if (hash) {
        uint64_t h = *hash;
        for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)text[i]) * UINT64_C(0x100000001b3);
        *hash = h;
    }
    free(text);
    reward_set_options opt = reward_set_options_default();
    const cJSON *list = root;
    pt_status st = PT_OK;
    if (cJSON_IsObject(root)) {
        list = cJSON_GetObjectItemCaseSensitive(root, "rewards");
        long l = 0;
        if (cJSON_GetObjectItemCaseSensitive(root, "type") && !list)
            st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                           "this is one reward config, but the file must hold an array of them: wrap it in [ ]");
        for (const cJSON *it = root->child; st == PT_OK && it; it = it->next) {
            bool known = false;
            for (size_t k = 0; k < sizeof OPTION_KEYS / sizeof OPTION_KEYS[0]; k++) known |= strcmp(it->string, OPTION_KEYS[k]) == 0;
            if (!known)
                st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                               "unknown key '%s' (expected rewards, max_error_rate, error_window, error_min_items)",
                               it->string);
        }
        if (st == PT_OK) st = reward_cfg_number(&opt.max_error_rate, root, "max_error_rate", opt.max_error_rate, err);
        if (st == PT_OK && (st = reward_cfg_int(&l, root, "error_window", opt.error_window, err)) == PT_OK)
            opt.error_window = (int)l;
        if (st == PT_OK && (st = reward_cfg_int(&l, root, "error_min_items", opt.error_min_items, err)) == PT_OK)
            opt.error_min_items = (int)l;
        if (st == PT_OK && !cJSON_IsArray(list))
            st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "key 'rewards': expected an array of reward configs "
                           "[{\"name\", \"type\", \"weight\", ...}]");
    } else if (!cJSON_IsArray(root)) {
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "expected a JSON array of reward configs [{\"name\", \"type\", \"weight\", ...}] or an object "
                       "{\"rewards\": [...]}, got another JSON value");
    }
    if (max_error_rate >= 0) opt.max_error_rate = max_error_rate;
    if (st == PT_OK) st = reward_set_init(set, list, NULL, &opt, err);
    cJSON_Delete(root);
    if (st != PT_OK) error_prefix(err, "rewards file '%s'", path);
    return st;
}
