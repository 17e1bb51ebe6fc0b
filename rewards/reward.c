/* reward.c — creating a reward from its JSON config, running it with result validation, and the
 * small helpers every reward implementation shares (results, columns, typed config params).
 *
 * reward_create reads the common keys — "type" (required string), "name" (default: the type;
 * [A-Za-z0-9_.-], at most REWARD_NAME_MAX−1 bytes, so it can be part of a metric name) and
 * "weight" (default 1.0; finite) — looks the type up in the runtime registry first and then in
 * the built-in table, and calls the type's init. Every error is prefixed with the reward it
 * concerns: "reward 'acc' (type math): ...".
 *
 * reward_score is the only path from an implementation to its caller: it pre-fills every result
 * as REWARD_ERROR ("reward wrote no result") so an implementation that forgets an item cannot
 * produce a silent 0, turns a batch-level failure into REWARD_ERROR on every item, and turns a
 * non-finite score into REWARD_ERROR.
 */
#include "rewards/reward.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reward_result_ok(reward_result *res, double score) {
    res->status = REWARD_OK;
    res->score = score;
    res->reason[0] = '\0';
}

void reward_result_mask(reward_result *res, reward_status status, const char *fmt, ...) {
    res->status = status == REWARD_OK ? REWARD_ERROR : status;
    res->score = 0.0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof res->reason, fmt, ap);
    va_end(ap);
    if (res->reason[0] == '\0') snprintf(res->reason, sizeof res->reason, "%s", "no reason given");
}

pt_status reward_item_columns(cJSON **out, const reward_item *item, pt_error *err) {
    *out = NULL;
    const char *text = item->columns ? item->columns : "{}";
    cJSON *obj = cJSON_Parse(text);
    if (!obj || !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        PT_FAIL(err, PT_ERR_FORMAT, "the item's columns are not a JSON object: '%.60s'", text);
    }
    *out = obj;
    return PT_OK;
}

const char *reward_column_text(char *buf, size_t len, const cJSON *cols, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cols, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
    if (!cJSON_IsNumber(v)) return NULL;
    double d = v->valuedouble;
    if (d == floor(d) && fabs(d) <= 9007199254740992.0) snprintf(buf, len, "%.0f", d);
    else {
        for (int prec = 15; prec <= 17; prec++) { /* shortest text that reads back as d */
            snprintf(buf, len, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
    }
    return buf;
}

char *reward_utf8_sanitize(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    if (!out) return NULL;
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (u[i + k] & 0xC0) == 0x80;
        if (ok && len > 1) { /* overlongs, surrogates, > U+10FFFF */
            unsigned cp = c & (0x7Fu >> len);
            for (size_t k = 1; k < len; k++) cp = (cp << 6) | (u[i + k] & 0x3Fu);
            static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
            ok = cp >= min_cp[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        }
        if (ok) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += 1;
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- config params ------------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

pt_status reward_cfg_check_keys(const cJSON *cfg, const char *const *allowed, int n, pt_error *err) {
    static const char *const common[] = {"name", "type", "weight"};
    for (const cJSON *it = cfg ? cfg->child : NULL; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        bool ok = false;
        for (int i = 0; i < 3 && !ok; i++) ok = strcmp(k, common[i]) == 0;
        for (int i = 0; i < n && !ok; i++) ok = strcmp(k, allowed[i]) == 0;
        if (ok) continue;
        const char *best = NULL;
        size_t best_d = 3;
        for (int i = 0; i < n; i++) {
            size_t d = edit_distance(k, allowed[i]);
            if (d < best_d) best_d = d, best = allowed[i];
        }
        if (best) PT_FAIL(err, PT_ERR_CONFIG, "unknown key '%s' (did you mean '%s'?)", k, best);
        char list[512] = "";
        size_t len = 0;
        for (int i = 0; i < n && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", allowed[i]);
        PT_FAIL(err, PT_ERR_CONFIG, "unknown key '%s'; this type takes: %s", k, n ? list : "no parameters");
    }
    return PT_OK;
}

pt_status reward_cfg_number(double *out, const cJSON *cfg, const char *key, double def, pt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return PT_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        PT_FAIL(err, PT_ERR_CONFIG, "key '%s' expects a finite number", key);
    *out = v->valuedouble;
    return PT_OK;
}

pt_status reward_cfg_int(long *out, const cJSON *cfg, const char *key, long def, pt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return PT_OK;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d == floor(d)) || fabs(d) > 9.0e15)
        PT_FAIL(err, PT_ERR_CONFIG, "key '%s' expects an integer", key);
    *out = (long)d;
    return PT_OK;
}

pt_status reward_cfg_bool(bool *out, const cJSON *cfg, const char *key, bool def, pt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return PT_OK;
    if (!cJSON_IsBool(v)) PT_FAIL(err, PT_ERR_CONFIG, "key '%s' expects true or false", key);
    *out = cJSON_IsTrue(v);
    return PT_OK;
}

pt_status reward_cfg_string(const char **out, const cJSON *cfg, const char *key, const char *def, pt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return PT_OK;
    if (!cJSON_IsString(v)) PT_FAIL(err, PT_ERR_CONFIG, "key '%s' expects a string", key);
    *out = v->valuestring;
    return PT_OK;
}

/* ---- create / score / free ----------------------------------------------------------------- */

static bool name_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= REWARD_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') return false;
    }
    return true;
}

static pt_status create_common(reward *r, const cJSON *cfg, pt_error *err) {
    if (!cJSON_IsObject(cfg)) PT_FAIL(err, PT_ERR_CONFIG, "a reward config must be a JSON object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cfg, "type");
    if (!cJSON_IsString(type) || !type->valuestring[0])
        PT_FAIL(err, PT_ERR_CONFIG, "missing \"type\" (a string such as \"math\", \"regex\", \"format\")");
    if (!name_valid(type->valuestring)) PT_FAIL(err, PT_ERR_CONFIG, "invalid type '%.64s'", type->valuestring);
    snprintf(r->type, sizeof r->type, "%s", type->valuestring);
    const char *name;
    PT_TRY(reward_cfg_string(&name, cfg, "name", r->type, err));
    if (!name_valid(name))
        PT_FAIL(err, PT_ERR_CONFIG,
                "reward name '%.64s' must be 1-%d characters of letters, digits, '_', '-', '.' (it becomes a metric "
                "name)",
                name, REWARD_NAME_MAX - 1);
    snprintf(r->name, sizeof r->name, "%s", name);
    PT_TRY(reward_cfg_number(&r->weight, cfg, "weight", 1.0, err));
    return PT_OK;
}

pt_status reward_create(reward **out, const cJSON *cfg, const reward_registry *reg, pt_error *err) {
    *out = NULL;
    reward *r = calloc(1, sizeof *r);
    PT_CHECK_ALLOC(r, err, sizeof *r);
    pt_status st = create_common(r, cfg, err);
    if (st != PT_OK) {
        error_prefix(err, "reward '%s'", r->name[0] ? r->name : (r->type[0] ? r->type : "?"));
        free(r);
        return st;
    }
    st = PT_ERR_CONFIG;
    bool found = false;
    for (int i = 0; reg && i < reg->count && !found; i++)
        if (strcmp(reg->entries[i].type, r->type) == 0) {
            found = true;
            st = reg->entries[i].init(r, cfg, reg->entries[i].ctx, err);
        }
    for (int i = 0; i < reward_builtin_count && !found; i++)
        if (strcmp(reward_builtin_types[i].type, r->type) == 0) {
            found = true;
            st = reward_builtin_types[i].init(r, cfg, err);
        }
    if (!found) {
        char list[512] = "";
        size_t len = 0;
        for (int i = 0; i < reward_builtin_count && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", reward_builtin_types[i].type);
        for (int i = 0; reg && i < reg->count && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, ", %s", reg->entries[i].type);
        error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "unknown type '%s'; known types: %s", r->type, list);
    }
    if (st == PT_OK && (!r->vt || !r->vt->score_batch)) {
        st = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "type's init left no score_batch");
        if (r->vt && r->vt->free) r->vt->free(r);
    }
    if (st != PT_OK) {
        error_prefix(err, "reward '%s' (type %s)", r->name, r->type);
        free(r);
        return st;
    }
    *out = r;
    return PT_OK;
}

pt_status reward_create_json(reward **out, const char *cfg_json, const reward_registry *reg, pt_error *err) {
    *out = NULL;
    cJSON *cfg = cJSON_Parse(cfg_json);
    if (!cfg) PT_FAIL(err, PT_ERR_CONFIG, "reward config is not valid JSON: '%.80s'", cfg_json);
    pt_status st = reward_create(out, cfg, reg, err);
    cJSON_Delete(cfg);
    return st;
}

void reward_free(reward *r) {
    if (!r) return;
    if (r->vt && r->vt->free) r->vt->free(r);
    free(r);
}

pt_status reward_score(reward *r, reward_result *out, const reward_item *items, int n, pt_error *err) {
    PT_CHECK(r && r->vt && (n == 0 || (out && items)) && n >= 0, err, PT_ERR_INVALID, "reward_score: bad arguments");
    for (int i = 0; i < n; i++) reward_result_mask(&out[i], REWARD_ERROR, "reward wrote no result");
    if (n == 0) return PT_OK;
    pt_error local = {0};
    pt_status st = r->vt->score_batch(r, out, items, n, &local);
    if (st != PT_OK) {
        for (int i = 0; i < n; i++) reward_result_mask(&out[i], REWARD_ERROR, "%s", local.msg);
        return PT_OK;
    }
    for (int i = 0; i < n; i++) {
        if (out[i].status == REWARD_OK && !isfinite(out[i].score))
            reward_result_mask(&out[i], REWARD_ERROR, "non-finite score %g", out[i].score);
        else if (out[i].status != REWARD_OK && out[i].status != REWARD_MASKED && out[i].status != REWARD_ERROR)
            reward_result_mask(&out[i], REWARD_ERROR, "invalid result status %d", (int)out[i].status);
        else if (out[i].status != REWARD_OK && out[i].reason[0] == '\0')
            snprintf(out[i].reason, sizeof out[i].reason, "%s", "no reason given");
    }
    return PT_OK;
}
