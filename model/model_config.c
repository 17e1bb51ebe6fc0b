/* model_config.c — DeepseekV3Config <-> struct model_config: parse, validate, save.
 *
 * Parsing is two passes over one document. cJSON checks the syntax and gives the values; a small
 * scanner then walks the (already valid) text once more to find each top-level value's exact
 * text, which serves two purposes: unknown keys are kept byte for byte (numbers such as `1.0`
 * survive, which transformers' strict dataclass needs), and integer fields can reject float
 * literals (`"vocab_size": 2.0`) as transformers does. The i-th top-level member of the cJSON
 * object is the i-th span of the scan; the two are checked to agree.
 *
 * Defaults are transformers 5.24's DeepseekV3Config (configuration_deepseek_v3.py), except
 * num_nextn_predict_layers (0, see model_config.h). Saving writes keys sorted, as
 * `PreTrainedConfig.to_json_string` does, and every float with a decimal point or exponent.
 */
#include "model/model_config.h"

#include "core/utf8.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define CONFIG_MAX_BYTES ((size_t)16 << 20)

void model_config_init(model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->vocab_size = 129280;
    cfg->hidden_size = 7168;
    cfg->intermediate_size = 18432;
    cfg->moe_intermediate_size = 2048;
    cfg->num_hidden_layers = 61;
    cfg->num_attention_heads = 128;
    cfg->num_key_value_heads = 128;
    cfg->n_shared_experts = 1;
    cfg->n_routed_experts = 256;
    cfg->routed_scaling_factor = 2.5;
    cfg->kv_lora_rank = 512;
    cfg->q_lora_rank = 1536;
    cfg->qk_rope_head_dim = 64;
    cfg->v_head_dim = 128;
    cfg->qk_nope_head_dim = 128;
    cfg->n_group = 8;
    cfg->topk_group = 4;
    cfg->num_experts_per_tok = 8;
    cfg->first_k_dense_replace = 3;
    cfg->norm_topk_prob = true;
    cfg->rms_norm_eps = 1e-6;
    cfg->rope.type = MODEL_ROPE_DEFAULT;
    cfg->rope.rope_theta = 10000.0;
    cfg->rope.truncate = true;
    cfg->max_position_embeddings = 4096;
    cfg->tie_word_embeddings = false;
    cfg->initializer_range = 0.02;
    cfg->bos_token_id = 0;
    cfg->pad_token_id = -1;
    cfg->eos_token_ids[0] = 1;
    cfg->n_eos_token_ids = 1;
    cfg->num_nextn_predict_layers = 0;
    cfg->attention_bias = false;
    cfg->rope_interleave = true;
    cfg->quant.weight_block_size[0] = 128;
    cfg->quant.weight_block_size[1] = 128;
    cfg->posttrain_bias_update_speed = 0.001;
    cfg->posttrain_seq_aux_alpha = 0.0001;
    cfg->posttrain_mtp_loss_weight = 0.3;
}

void model_config_free(model_config *cfg) {
    for (int i = 0; i < cfg->n_extra; i++) {
        free(cfg->extra_keys[i]);
        free(cfg->extra_values[i]);
    }
    free(cfg->extra_keys);
    free(cfg->extra_values);
    model_config_init(cfg);
}

/* Appends a kept key (copies both strings). */
static pt_status extra_push(model_config *cfg, const char *key, const char *value, size_t value_len, pt_error *err) {
    size_t n = (size_t)cfg->n_extra + 1;
    char **keys = realloc(cfg->extra_keys, n * sizeof *keys);
    PT_CHECK_ALLOC(keys, err, n * sizeof *keys);
    cfg->extra_keys = keys;
    char **values = realloc(cfg->extra_values, n * sizeof *values);
    PT_CHECK_ALLOC(values, err, n * sizeof *values);
    cfg->extra_values = values;
    char *k = strdup(key);
    PT_CHECK_ALLOC(k, err, strlen(key) + 1);
    char *v = strndup(value, value_len);
    if (!v) free(k);
    PT_CHECK_ALLOC(v, err, value_len + 1);
    cfg->extra_keys[cfg->n_extra] = k;
    cfg->extra_values[cfg->n_extra] = v;
    cfg->n_extra++;
    return PT_OK;
}

pt_status model_config_copy(model_config *dst, const model_config *src, pt_error *err) {
    *dst = *src;
    dst->n_extra = 0;
    dst->extra_keys = NULL;
    dst->extra_values = NULL;
    for (int i = 0; i < src->n_extra; i++) {
        pt_status st = extra_push(dst, src->extra_keys[i], src->extra_values[i], strlen(src->extra_values[i]), err);
        if (st != PT_OK) {
            model_config_free(dst);
            return st;
        }
    }
    return PT_OK;
}

/* ---- the raw-text scanner (input already validated by cJSON) ---------------------------------- */

/* cJSON treats every byte from 0x01 to 0x20 as whitespace; the scanner must agree, or a
 * control byte before a value would make it lose that value's text (found by fuzzing). */
static const char *skip_ws(const char *p) {
    while (*p && (unsigned char)*p <= 32) p++;
    return p;
}

static const char *skip_string(const char *p) {
    p++; /* opening quote */
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) p++;
        p++;
    }
    return *p ? p + 1 : p;
}

static const char *skip_value(const char *p) {
    if (*p == '"') return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        do {
            if (*p == '"') {
                p = skip_string(p);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') depth--;
            p++;
        } while (*p && depth > 0);
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
    return p;
}

typedef struct span {
    const char *begin;
    size_t len;
} span;

/* The text of each top-level member value of the object `text`, in order; returns the count. */
static int scan_members(span *spans, int max, const char *text) {
    const char *p = skip_ws(text);
    if (*p != '{') return -1;
    p++;
    int n = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') break;
        p = skip_ws(skip_string(p));
        if (*p != ':') return -1;
        p = skip_ws(p + 1);
        const char *v = p;
        p = skip_value(p);
        if (n < max) spans[n] = (span){v, (size_t)(p - v)};
        n++;
        p = skip_ws(p);
        if (*p == ',') p++;
    }
    return n;
}

/* ---- typed field access ------------------------------------------------------------------------ */

typedef struct parse_ctx {
    const char *name; /* file name for messages */
    pt_error *err;
} parse_ctx;

/* "a string \"abc\"", "the number 2.5", "null", ... for messages. */
static void describe(char *buf, size_t len, const cJSON *item, const span *raw) {
    char text[64];
    if (raw) {
        size_t n = raw->len < sizeof text - 4 ? raw->len : sizeof text - 4;
        memcpy(text, raw->begin, n);
        strcpy(text + n, raw->len > n ? "..." : "");
    } else {
        char *printed = cJSON_PrintUnformatted(item);
        snprintf(text, sizeof text, "%s", printed ? printed : "?");
        if (printed && strlen(printed) >= sizeof text) strcpy(text + sizeof text - 4, "...");
        free(printed);
    }
    const char *kind = cJSON_IsString(item) ? "a string"
                       : cJSON_IsBool(item) ? "a boolean"
                       : cJSON_IsNull(item) ? "null"
                       : cJSON_IsNumber(item) ? "the number"
                       : cJSON_IsArray(item) ? "a list"
                                             : "an object";
    if (cJSON_IsNull(item)) snprintf(buf, len, "null");
    else snprintf(buf, len, "%s %s", kind, text);
}

static pt_status type_error(const parse_ctx *c, const char *field, const char *expected, const cJSON *item,
                            const span *raw) {
    char got[128];
    describe(got, sizeof got, item, raw);
    PT_FAIL(c->err, PT_ERR_CONFIG, "%s: field '%s': expected %s, got %s", c->name, field, expected, got);
}

/* A number literal with a fraction or exponent (only known for top-level values). */
static int is_float_literal(const span *raw) {
    if (!raw) return 0;
    for (size_t i = 0; i < raw->len; i++)
        if (raw->begin[i] == '.' || raw->begin[i] == 'e' || raw->begin[i] == 'E') return 1;
    return 0;
}

static pt_status get_int(int *out, const cJSON *item, const span *raw, const char *field, const parse_ctx *c) {
    if (!cJSON_IsNumber(item) || is_float_literal(raw)) return type_error(c, field, "an integer", item, raw);
    double v = item->valuedouble;
    if (v != floor(v) || v < (double)INT_MIN || v > (double)INT_MAX)
        return type_error(c, field, "an integer between -2147483648 and 2147483647", item, raw);
    *out = (int)v;
    return PT_OK;
}

static pt_status get_double(double *out, const cJSON *item, const span *raw, const char *field, const parse_ctx *c) {
    if (!cJSON_IsNumber(item)) return type_error(c, field, "a number", item, raw);
    if (!isfinite(item->valuedouble)) return type_error(c, field, "a finite number", item, raw);
    *out = item->valuedouble;
    return PT_OK;
}

static pt_status get_bool(bool *out, const cJSON *item, const span *raw, const char *field, const parse_ctx *c) {
    if (!cJSON_IsBool(item)) return type_error(c, field, "true or false", item, raw);
    *out = cJSON_IsTrue(item);
    return PT_OK;
}

/* A token id: a non-negative integer, or null (→ -1). */
static pt_status get_token_id(int *out, const cJSON *item, const span *raw, const char *field, const parse_ctx *c) {
    if (cJSON_IsNull(item)) {
        *out = -1;
        return PT_OK;
    }
    if (!cJSON_IsNumber(item) || is_float_literal(raw) || item->valuedouble < 0 ||
        item->valuedouble != floor(item->valuedouble) || item->valuedouble > (double)INT_MAX)
        return type_error(c, field, "a token id (an integer >= 0) or null", item, raw);
    *out = (int)item->valuedouble;
    return PT_OK;
}

/* ---- the field table --------------------------------------------------------------------------- */

typedef enum field_kind { FIELD_INT, FIELD_DOUBLE, FIELD_BOOL } field_kind;

typedef struct field_desc {
    const char *key;
    field_kind kind;
    size_t offset;
    const char *alias_of; /* non-NULL: another name of the field `alias_of` */
} field_desc;

#define FIELD(k, kind) {#k, kind, offsetof(model_config, k), NULL}
static const field_desc config_fields[] = {
    FIELD(vocab_size, FIELD_INT),
    FIELD(hidden_size, FIELD_INT),
    FIELD(intermediate_size, FIELD_INT),
    FIELD(moe_intermediate_size, FIELD_INT),
    FIELD(num_hidden_layers, FIELD_INT),
    FIELD(num_attention_heads, FIELD_INT),
    FIELD(n_shared_experts, FIELD_INT),
    FIELD(n_routed_experts, FIELD_INT),
    {"num_local_experts", FIELD_INT, offsetof(model_config, n_routed_experts), "n_routed_experts"},
    FIELD(routed_scaling_factor, FIELD_DOUBLE),
    FIELD(kv_lora_rank, FIELD_INT),
    FIELD(qk_rope_head_dim, FIELD_INT),
    FIELD(v_head_dim, FIELD_INT),
    FIELD(qk_nope_head_dim, FIELD_INT),
    FIELD(n_group, FIELD_INT),
    FIELD(topk_group, FIELD_INT),
    FIELD(num_experts_per_tok, FIELD_INT),
    FIELD(first_k_dense_replace, FIELD_INT),
    FIELD(rms_norm_eps, FIELD_DOUBLE),
    FIELD(max_position_embeddings, FIELD_INT),
    FIELD(tie_word_embeddings, FIELD_BOOL),
    FIELD(initializer_range, FIELD_DOUBLE),
    FIELD(num_nextn_predict_layers, FIELD_INT),
    {"num_mtp_layers", FIELD_INT, offsetof(model_config, num_nextn_predict_layers), "num_nextn_predict_layers"},
    FIELD(attention_bias, FIELD_BOOL),
    FIELD(posttrain_bias_update_speed, FIELD_DOUBLE),
    FIELD(posttrain_seq_aux_alpha, FIELD_DOUBLE),
    FIELD(posttrain_mtp_loss_weight, FIELD_DOUBLE),
};
#undef FIELD
#define N_CONFIG_FIELDS (sizeof config_fields / sizeof config_fields[0])

/* Keys transformers writes that are recomputed from others, and keys this file rewrites. */
static const char *const ignored_keys[] = {"head_dim", "qk_head_dim", "architectures"};

/* ---- RoPE block ---------------------------------------------------------------------------------- */

static pt_status parse_rope_block(model_config *cfg, const cJSON *block, const char *block_name,
                                  const cJSON *top_theta, int *orig_max_set, const parse_ctx *c) {
    char field[96];
    /* rope_type wins over type (transformers: setdefault("rope_type", get("type", "default"))). */
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "rope_type");
    const char *type_key = "rope_type";
    if (!type) {
        type = cJSON_GetObjectItemCaseSensitive(block, "type");
        type_key = "type";
    }
    const char *type_name = "default";
    if (type) {
        snprintf(field, sizeof field, "%s.%s", block_name, type_key);
        if (!cJSON_IsString(type)) return type_error(c, field, "a string (\"default\" or \"yarn\")", type, NULL);
        type_name = type->valuestring;
    }
    if (strcmp(type_name, "default") == 0) cfg->rope.type = MODEL_ROPE_DEFAULT;
    else if (strcmp(type_name, "yarn") == 0) cfg->rope.type = MODEL_ROPE_YARN;
    else
        PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: %s.%s \"%s\" is not supported (posttrain implements \"default\" and "
                "\"yarn\", as DeepSeek-V3 uses)", c->name, block_name, type_key, type_name);

    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(block, "rope_theta");
    if (theta) {
        snprintf(field, sizeof field, "%s.rope_theta", block_name);
        PT_TRY(get_double(&cfg->rope.rope_theta, theta, NULL, field, c));
    } else if (top_theta) {
        PT_TRY(get_double(&cfg->rope.rope_theta, top_theta, NULL, "rope_theta", c));
    }

    const cJSON *item;
    cJSON_ArrayForEach(item, block) {
        const char *k = item->string;
        snprintf(field, sizeof field, "%s.%s", block_name, k);
        if (strcmp(k, "rope_type") == 0 || strcmp(k, "type") == 0) {
            if (!cJSON_IsString(item)) return type_error(c, field, "a string", item, NULL);
            continue;
        }
        if (strcmp(k, "rope_theta") == 0) continue;
        if (strcmp(k, "partial_rotary_factor") == 0) {
            double f;
            PT_TRY(get_double(&f, item, NULL, field, c));
            if (f != 1.0)
                PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: %s = %g is not supported (DeepSeek-V3 rotates all "
                        "qk_rope_head_dim dims: use 1.0)", c->name, field, f);
            continue;
        }
        int yarn_key = 1;
        double *dst = NULL;
        if (strcmp(k, "factor") == 0) dst = &cfg->rope.factor;
        else if (strcmp(k, "attention_factor") == 0) dst = &cfg->rope.attention_factor;
        else if (strcmp(k, "beta_fast") == 0) dst = &cfg->rope.beta_fast;
        else if (strcmp(k, "beta_slow") == 0) dst = &cfg->rope.beta_slow;
        else if (strcmp(k, "mscale") == 0) dst = &cfg->rope.mscale;
        else if (strcmp(k, "mscale_all_dim") == 0) dst = &cfg->rope.mscale_all_dim;
        else if (strcmp(k, "original_max_position_embeddings") != 0 && strcmp(k, "truncate") != 0) yarn_key = 0;
        if (!yarn_key || cfg->rope.type != MODEL_ROPE_YARN)
            PT_FAIL(c->err, PT_ERR_CONFIG, "%s: unknown key '%s' in %s for rope_type \"%s\" (expected rope_type, "
                    "rope_theta%s)", c->name, k, block_name, type_name,
                    cfg->rope.type == MODEL_ROPE_YARN ? ", factor, attention_factor, beta_fast, beta_slow, mscale, "
                                                        "mscale_all_dim, original_max_position_embeddings, truncate"
                                                      : "");
        if (dst) {
            /* transformers treats null like absence (it tests `is None` or truthiness). */
            if (cJSON_IsNull(item)) continue;
            PT_TRY(get_double(dst, item, NULL, field, c)); /* beta 0 → default: see parse_members */
        } else if (strcmp(k, "truncate") == 0) {
            if (cJSON_IsNull(item)) continue;
            PT_TRY(get_bool(&cfg->rope.truncate, item, NULL, field, c));
        } else {
            PT_TRY(get_int(&cfg->rope.original_max_position_embeddings, item, NULL, field, c));
            *orig_max_set = 1;
        }
    }
    return PT_OK;
}

/* ---- quantization_config ----------------------------------------------------------------------- */

static pt_status parse_quant(model_config *cfg, const cJSON *q, const parse_ctx *c) {
    if (cJSON_IsNull(q)) return PT_OK;
    if (!cJSON_IsObject(q)) return type_error(c, "quantization_config", "an object or null", q, NULL);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method");
    if (!method)
        PT_FAIL(c->err, PT_ERR_CONFIG, "%s: quantization_config has no quant_method (expected \"fp8\")", c->name);
    if (!cJSON_IsString(method))
        return type_error(c, "quantization_config.quant_method", "a string (\"fp8\")", method, NULL);
    if (strcmp(method->valuestring, "fp8") != 0)
        PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: quantization_config.quant_method \"%s\" is not supported (posttrain "
                "reads DeepSeek's \"fp8\" block-scaled checkpoints)", c->name, method->valuestring);
    const char *want[][2] = {{"fmt", "e4m3"}, {"activation_scheme", "dynamic"}};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, want[i][0]);
        if (!v) continue;
        char field[64];
        snprintf(field, sizeof field, "quantization_config.%s", want[i][0]);
        if (!cJSON_IsString(v)) return type_error(c, field, "a string", v, NULL);
        if (strcmp(v->valuestring, want[i][1]) != 0)
            PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported (expected \"%s\")", c->name, field,
                    v->valuestring, want[i][1]);
    }
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(q, "weight_block_size");
    if (bs) {
        if (!cJSON_IsArray(bs) || cJSON_GetArraySize(bs) != 2)
            return type_error(c, "quantization_config.weight_block_size", "a list of 2 integers", bs, NULL);
        for (int i = 0; i < 2; i++)
            PT_TRY(get_int(&cfg->quant.weight_block_size[i], cJSON_GetArrayItem(bs, i), NULL,
                           "quantization_config.weight_block_size", c));
    }
    cfg->quant.fp8 = true;
    return PT_OK;
}

/* ---- parse --------------------------------------------------------------------------------------- */

static void line_column(int *line, int *col, const char *text, const char *at) {
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static pt_status parse_members(model_config *cfg, const cJSON *root, const span *spans, const parse_ctx *c) {
    const cJSON *rope_scaling = NULL, *rope_parameters = NULL, *top_theta = NULL, *model_type = NULL;
    int kv_heads_given = 0, orig_max_set = 0;
    int seen[N_CONFIG_FIELDS] = {0};
    int idx = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *k = item->string;
        const span *raw = &spans[idx++];
        /* duplicate keys: Python keeps the last, cJSON finds the first; refuse the ambiguity */
        for (const cJSON *prev = root->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, k) == 0)
                PT_FAIL(c->err, PT_ERR_CONFIG, "%s: key '%s' appears more than once", c->name, k);

        size_t f = 0;
        while (f < N_CONFIG_FIELDS && strcmp(config_fields[f].key, k) != 0) f++;
        if (f < N_CONFIG_FIELDS) {
            const field_desc *d = &config_fields[f];
            char *dst = (char *)cfg + d->offset;
            /* An alias and its field must agree; find the canonical entry's seen flag. */
            size_t canon = f;
            if (d->alias_of)
                for (canon = 0; canon < N_CONFIG_FIELDS && strcmp(config_fields[canon].key, d->alias_of) != 0;)
                    canon++;
            if (d->kind == FIELD_INT) {
                int v;
                PT_TRY(get_int(&v, item, raw, k, c));
                if (seen[canon] && *(int *)dst != v)
                    PT_FAIL(c->err, PT_ERR_CONFIG, "%s: '%s' (%d) disagrees with its alias given earlier (%d); keep "
                            "one of them", c->name, k, v, *(int *)dst);
                *(int *)dst = v;
            } else if (d->kind == FIELD_DOUBLE) {
                PT_TRY(get_double((double *)dst, item, raw, k, c));
            } else {
                PT_TRY(get_bool((bool *)dst, item, raw, k, c));
            }
            seen[canon] = 1;
            continue;
        }
        if (strcmp(k, "model_type") == 0) {
            model_type = item;
        } else if (strcmp(k, "q_lora_rank") == 0) {
            if (cJSON_IsNull(item)) {
                cfg->q_lora_rank = 0;
            } else {
                PT_TRY(get_int(&cfg->q_lora_rank, item, raw, k, c));
                if (cfg->q_lora_rank <= 0)
                    PT_FAIL(c->err, PT_ERR_CONFIG, "%s: q_lora_rank must be > 0, or null for a plain q_proj "
                            "(q_lora_rank=%d)", c->name, cfg->q_lora_rank);
            }
        } else if (strcmp(k, "num_key_value_heads") == 0) {
            kv_heads_given = !cJSON_IsNull(item);
            if (kv_heads_given) PT_TRY(get_int(&cfg->num_key_value_heads, item, raw, k, c));
        } else if (strcmp(k, "norm_topk_prob") == 0 || strcmp(k, "rope_interleave") == 0) {
            /* bool | None in transformers; None is falsy where it is used */
            bool *dst = k[0] == 'n' ? &cfg->norm_topk_prob : &cfg->rope_interleave;
            if (cJSON_IsNull(item)) *dst = false;
            else PT_TRY(get_bool(dst, item, raw, k, c));
        } else if (strcmp(k, "bos_token_id") == 0) {
            PT_TRY(get_token_id(&cfg->bos_token_id, item, raw, k, c));
        } else if (strcmp(k, "pad_token_id") == 0) {
            PT_TRY(get_token_id(&cfg->pad_token_id, item, raw, k, c));
        } else if (strcmp(k, "eos_token_id") == 0) {
            cfg->eos_is_list = cJSON_IsArray(item);
            if (cJSON_IsArray(item)) {
                int n = cJSON_GetArraySize(item);
                if (n < 1 || n > MODEL_MAX_EOS)
                    return type_error(c, k, "a token id, null, or a list of 1 to 8 token ids", item, raw);
                for (int i = 0; i < n; i++)
                    PT_TRY(get_token_id(&cfg->eos_token_ids[i], cJSON_GetArrayItem(item, i), NULL, k, c));
                for (int i = 0; i < n; i++)
                    if (cfg->eos_token_ids[i] < 0) return type_error(c, k, "a list of token ids (not null)", item, raw);
                cfg->n_eos_token_ids = n;
            } else {
                PT_TRY(get_token_id(&cfg->eos_token_ids[0], item, raw, k, c));
                cfg->n_eos_token_ids = cfg->eos_token_ids[0] < 0 ? 0 : 1;
            }
        } else if (strcmp(k, "hidden_act") == 0) {
            if (!cJSON_IsString(item)) return type_error(c, k, "a string (\"silu\")", item, raw);
            if (strcmp(item->valuestring, "silu") != 0)
                PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (DeepSeek-V3 uses \"silu\", "
                        "the only activation posttrain implements)", c->name, item->valuestring);
        } else if (strcmp(k, "rope_theta") == 0) {
            double t;
            PT_TRY(get_double(&t, item, raw, k, c));
            top_theta = item;
        } else if (strcmp(k, "rope_scaling") == 0 || strcmp(k, "rope_parameters") == 0) {
            if (!cJSON_IsNull(item) && !cJSON_IsObject(item)) return type_error(c, k, "an object or null", item, raw);
            if (k[5] == 's') rope_scaling = item;
            else rope_parameters = item;
        } else {
            int ignored = 0;
            for (size_t i = 0; i < sizeof ignored_keys / sizeof ignored_keys[0]; i++)
                ignored |= strcmp(k, ignored_keys[i]) == 0;
            if (ignored) continue;
            if (strcmp(k, "quantization_config") == 0) {
                PT_TRY(parse_quant(cfg, item, c));
            } else if (strcmp(k, "scoring_func") == 0 || strcmp(k, "topk_method") == 0) {
                /* DeepSeek's own keys: transformers ignores them and always computes sigmoid + noaux_tc */
                const char *want = k[0] == 's' ? "sigmoid" : "noaux_tc";
                if (!cJSON_IsString(item)) return type_error(c, k, "a string", item, raw);
                if (strcmp(item->valuestring, want) != 0)
                    PT_FAIL(c->err, PT_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported (DeepSeek-V3 uses \"%s\")",
                            c->name, k, item->valuestring, want);
            }
            PT_TRY(extra_push(cfg, k, raw->begin, raw->len, c->err));
        }
    }

    if (!model_type)
        PT_FAIL(c->err, PT_ERR_CONFIG, "%s: missing \"model_type\"; a DeepSeek-V3 config.json has \"model_type\": "
                "\"deepseek_v3\"", c->name);
    if (!cJSON_IsString(model_type) || strcmp(model_type->valuestring, "deepseek_v3") != 0) {
        char got[128];
        describe(got, sizeof got, model_type, NULL);
        PT_FAIL(c->err, PT_ERR_CONFIG, "%s: model_type is %s, expected \"deepseek_v3\" (posttrain trains the "
                "DeepSeek-V3 architecture only)", c->name, got);
    }
    /* null means num_attention_heads in transformers; a missing key too here (transformers' default 128
     * only fits the 671B model, and MLA never reads the value) */
    if (!kv_heads_given) cfg->num_key_value_heads = cfg->num_attention_heads;

    /* transformers: rope_parameters = rope_scaling or rope_parameters (an empty dict is falsy). */
    const cJSON *block = NULL;
    const char *block_name = NULL;
    if (rope_scaling && cJSON_IsObject(rope_scaling) && rope_scaling->child) {
        block = rope_scaling;
        block_name = "rope_scaling";
    } else if (rope_parameters && cJSON_IsObject(rope_parameters) && rope_parameters->child) {
        block = rope_parameters;
        block_name = "rope_parameters";
    }
    if (block) {
        PT_TRY(parse_rope_block(cfg, block, block_name, top_theta, &orig_max_set, c));
    } else if (top_theta) {
        cfg->rope.rope_theta = top_theta->valuedouble;
    }
    if (cfg->rope.type == MODEL_ROPE_YARN) {
        /* transformers: `get("beta_fast") or 32`, so absent, null and 0 all mean the default */
        if (cfg->rope.beta_fast == 0) cfg->rope.beta_fast = 32;
        if (cfg->rope.beta_slow == 0) cfg->rope.beta_slow = 1;
        if (!orig_max_set) cfg->rope.original_max_position_embeddings = cfg->max_position_embeddings;
    }
    return PT_OK;
}

pt_status model_config_parse(model_config *cfg, const char *json_text, const char *name, pt_error *err) {
    model_config_init(cfg);
    parse_ctx c = {name ? name : "config.json", err};
    size_t len = strlen(json_text);
    size_t valid = utf8_valid_prefix(json_text, len);
    long bad = valid < len ? (long)valid : -1;
    if (bad >= 0) {
        int line, col;
        line_column(&line, &col, json_text, json_text + bad);
        PT_FAIL(err, PT_ERR_CONFIG, "%s:%d:%d: invalid UTF-8 (byte 0x%02X at offset %ld); save the file as UTF-8",
                c.name, line, col, (unsigned char)json_text[bad], bad);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json_text, &end, 1);
    if (!root) {
        int line, col;
        line_column(&line, &col, json_text, end ? end : json_text);
        PT_FAIL(err, PT_ERR_CONFIG, "%s:%d:%d: not valid JSON (near \"%.20s\")", c.name, line, col,
                end ? end : json_text);
    }
    pt_status st = PT_OK;
    span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        char got[128];
        describe(got, sizeof got, root, NULL);
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "%s: the top level must be a JSON object, got %s",
                       c.name, got);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    spans = calloc((size_t)n + 1, sizeof *spans);
    if (!spans) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading %s", c.name);
        goto done;
    }
    if (scan_members(spans, n, json_text) != n) {
        st = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "%s: the raw-text scan disagrees with cJSON", c.name);
        goto done;
    }
    st = parse_members(cfg, root, spans, &c);
    if (st == PT_OK) st = model_config_validate(cfg, c.name, err);
done:
    free(spans);
    cJSON_Delete(root);
    if (st != PT_OK) model_config_free(cfg);
    return st;
}

pt_status model_config_load(model_config *cfg, const char *path, pt_error *err) {
    model_config_init(cfg);
    int fd;
    PT_CHECK_ERRNO(fd = open(path, O_RDONLY | O_CLOEXEC), err, "cannot open model config '%s'", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        PT_FAIL(err, PT_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)sb.st_size > CONFIG_MAX_BYTES) {
        close(fd);
        PT_FAIL(err, PT_ERR_CONFIG, "%s: %lld bytes is too large for a config.json (limit %zu)", path,
                (long long)sb.st_size, CONFIG_MAX_BYTES);
    }
    size_t size = (size_t)sb.st_size;
    char *text = malloc(size + 1);
    if (!text) close(fd);
    PT_CHECK_ALLOC(text, err, size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(text);
            close(fd);
            PT_FAIL(err, PT_ERR_IO, "%s: read failed after %zu of %zu bytes: %s", path, got, size,
                    r < 0 ? strerror(e) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    close(fd);
    text[size] = '\0';
    if (strlen(text) != size) {
        size_t at = strlen(text);
        free(text);
        PT_FAIL(err, PT_ERR_CONFIG, "%s: contains a NUL byte at offset %zu; a config.json is UTF-8 text", path, at);
    }
    pt_status st = model_config_parse(cfg, text, path, err);
    free(text);
    return st;
}

/* ---- validate ------------------------------------------------------------------------------------ */

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) PT_FAIL(err, PT_ERR_CONFIG, __VA_ARGS__);                                     \
    } while (0)

pt_status model_config_validate(const model_config *cfg, const char *name, pt_error *err) {
    const char *n = name ? name : "config.json";
    const struct {
        const char *key;
        int value;
        int min;
    } mins[] = {
        {"vocab_size", cfg->vocab_size, 1},
        {"hidden_size", cfg->hidden_size, 1},
        {"intermediate_size", cfg->intermediate_size, 1},
        {"moe_intermediate_size", cfg->moe_intermediate_size, 1},
        {"num_hidden_layers", cfg->num_hidden_layers, 1},
        {"num_attention_heads", cfg->num_attention_heads, 1},
        {"n_shared_experts", cfg->n_shared_experts, 0},
        {"n_routed_experts", cfg->n_routed_experts, 1},
        {"kv_lora_rank", cfg->kv_lora_rank, 1},
        {"q_lora_rank", cfg->q_lora_rank, 0},
        {"qk_rope_head_dim", cfg->qk_rope_head_dim, 1},
        {"qk_nope_head_dim", cfg->qk_nope_head_dim, 1},
        {"v_head_dim", cfg->v_head_dim, 1},
        {"n_group", cfg->n_group, 1},
        {"topk_group", cfg->topk_group, 1},
        {"num_experts_per_tok", cfg->num_experts_per_tok, 1},
        {"first_k_dense_replace", cfg->first_k_dense_replace, 0},
        {"max_position_embeddings", cfg->max_position_embeddings, 1},
        {"num_nextn_predict_layers", cfg->num_nextn_predict_layers, 0},
    };
    for (size_t i = 0; i < sizeof mins / sizeof mins[0]; i++)
        REQUIRE(mins[i].value >= mins[i].min, "%s: %s %s (%s=%d)", n, mins[i].key, mins[i].min ? "<= 0" : "< 0",
                mins[i].key, mins[i].value);

    REQUIRE(cfg->num_key_value_heads == cfg->num_attention_heads,
            "%s: num_key_value_heads != num_attention_heads (num_key_value_heads=%d, num_attention_heads=%d); MLA "
            "gives every head its own key and value", n, cfg->num_key_value_heads, cfg->num_attention_heads);
    REQUIRE(cfg->qk_rope_head_dim % 2 == 0, "%s: qk_rope_head_dim is odd (qk_rope_head_dim=%d); RoPE rotates pairs",
            n, cfg->qk_rope_head_dim);
    REQUIRE(cfg->topk_group <= cfg->n_group, "%s: topk_group > n_group (topk_group=%d, n_group=%d)", n,
            cfg->topk_group, cfg->n_group);
    REQUIRE(cfg->n_routed_experts % cfg->n_group == 0,
            "%s: n_routed_experts %% n_group != 0 (n_routed_experts=%d, n_group=%d)", n, cfg->n_routed_experts,
            cfg->n_group);
    REQUIRE(cfg->n_routed_experts / cfg->n_group >= 2,
            "%s: n_routed_experts / n_group < 2 (n_routed_experts=%d, n_group=%d); a group's score is the sum of its "
            "top-2 experts", n, cfg->n_routed_experts, cfg->n_group);
    REQUIRE(cfg->num_experts_per_tok <= cfg->n_routed_experts,
            "%s: num_experts_per_tok > n_routed_experts (num_experts_per_tok=%d, n_routed_experts=%d)", n,
            cfg->num_experts_per_tok, cfg->n_routed_experts);
    REQUIRE((long long)cfg->num_experts_per_tok <= (long long)cfg->topk_group * (cfg->n_routed_experts / cfg->n_group),
            "%s: num_experts_per_tok > topk_group * (n_routed_experts / n_group) (num_experts_per_tok=%d, "
            "topk_group=%d, n_routed_experts=%d, n_group=%d); the kept groups hold too few experts", n,
            cfg->num_experts_per_tok, cfg->topk_group, cfg->n_routed_experts, cfg->n_group);
    REQUIRE(cfg->first_k_dense_replace <= cfg->num_hidden_layers,
            "%s: first_k_dense_replace > num_hidden_layers (first_k_dense_replace=%d, num_hidden_layers=%d)", n,
            cfg->first_k_dense_replace, cfg->num_hidden_layers);

    const struct {
        const char *key;
        double value;
        int strict; /* 1: > 0, 0: >= 0 */
    } reals[] = {
        {"routed_scaling_factor", cfg->routed_scaling_factor, 1},
        {"rms_norm_eps", cfg->rms_norm_eps, 1},
        {"initializer_range", cfg->initializer_range, 0},
        {"posttrain_bias_update_speed", cfg->posttrain_bias_update_speed, 0},
        {"posttrain_seq_aux_alpha", cfg->posttrain_seq_aux_alpha, 0},
        {"posttrain_mtp_loss_weight", cfg->posttrain_mtp_loss_weight, 0},
        {"rope_theta", cfg->rope.rope_theta, 1},
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        REQUIRE(isfinite(reals[i].value) && (reals[i].strict ? reals[i].value > 0 : reals[i].value >= 0),
                "%s: %s %s (%s=%g)", n, reals[i].key, reals[i].strict ? "<= 0" : "< 0", reals[i].key, reals[i].value);
    REQUIRE(cfg->rope.rope_theta > 1, "%s: rope_theta <= 1 (rope_theta=%g); RoPE frequencies theta^(-2i/d) need a "
            "base above 1", n, cfg->rope.rope_theta);

    const int ids[] = {cfg->bos_token_id, cfg->pad_token_id};
    const char *id_names[] = {"bos_token_id", "pad_token_id"};
    for (int i = 0; i < 2; i++)
        REQUIRE(ids[i] >= -1 && ids[i] < cfg->vocab_size, "%s: %s >= vocab_size (%s=%d, vocab_size=%d)", n,
                id_names[i], id_names[i], ids[i], cfg->vocab_size);
    REQUIRE(cfg->n_eos_token_ids >= 0 && cfg->n_eos_token_ids <= MODEL_MAX_EOS,
            "%s: eos_token_id lists %d ids (at most %d)", n, cfg->n_eos_token_ids, MODEL_MAX_EOS);
    for (int i = 0; i < cfg->n_eos_token_ids; i++)
        REQUIRE(cfg->eos_token_ids[i] >= 0 && cfg->eos_token_ids[i] < cfg->vocab_size,
                "%s: eos_token_id outside [0, vocab_size) (eos_token_id=%d, vocab_size=%d)", n, cfg->eos_token_ids[i],
                cfg->vocab_size);

    if (cfg->rope.type == MODEL_ROPE_YARN) {
        const model_rope *r = &cfg->rope;
        REQUIRE(isfinite(r->factor) && (r->factor == 0 || r->factor >= 1),
                "%s: rope_scaling factor < 1 (factor=%g); YaRN only extends the context", n, r->factor);
        REQUIRE(r->original_max_position_embeddings > 0,
                "%s: rope_scaling original_max_position_embeddings <= 0 (original_max_position_embeddings=%d)", n,
                r->original_max_position_embeddings);
        REQUIRE(isfinite(r->beta_fast) && isfinite(r->beta_slow) && r->beta_fast > 0 && r->beta_slow > 0,
                "%s: rope_scaling beta_fast <= 0 or beta_slow <= 0 (beta_fast=%g, beta_slow=%g)", n, r->beta_fast,
                r->beta_slow);
        REQUIRE(r->beta_fast >= r->beta_slow, "%s: rope_scaling beta_fast < beta_slow (beta_fast=%g, beta_slow=%g)", n,
                r->beta_fast, r->beta_slow);
        REQUIRE(isfinite(r->mscale) && isfinite(r->mscale_all_dim) && r->mscale >= 0 && r->mscale_all_dim >= 0,
                "%s: rope_scaling mscale < 0 or mscale_all_dim < 0 (mscale=%g, mscale_all_dim=%g)", n, r->mscale,
                r->mscale_all_dim);
        REQUIRE(isfinite(r->attention_factor) && r->attention_factor >= 0,
                "%s: rope_scaling attention_factor < 0 (attention_factor=%g)", n, r->attention_factor);
    }
    if (cfg->quant.fp8)
        REQUIRE(cfg->quant.weight_block_size[0] > 0 && cfg->quant.weight_block_size[1] > 0,
                "%s: quantization_config weight_block_size has a size <= 0 ([%d, %d])", n,
                cfg->quant.weight_block_size[0], cfg->quant.weight_block_size[1]);
    if (cfg->attention_bias)
        PT_FAIL(err, PT_ERR_UNSUPPORTED, "%s: attention_bias true is not supported (DeepSeek-V3's projections have "
                "no bias; set it to false)", n);
    return PT_OK;
}
#undef REQUIRE

/* ---- save ---------------------------------------------------------------------------------------- */

/* Shortest decimal that reads back as exactly x, with a '.' or exponent so Python sees a float. */
static void format_float(char *buf, size_t len, double x) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eE")) strncat(buf, ".0", len - strlen(buf) - 1);
}

typedef struct out_member {
    const char *key;
    cJSON *value;
} out_member;

/* cJSON_Print indents with tabs and writes `"key":\tvalue`; json.dumps(indent=2), which
 * transformers uses, writes two spaces and `"key": value`. Every tab in cJSON's output is
 * whitespace (tabs inside strings are escaped, and kept raw values are valid JSON), so each can be
 * rewritten. Returns a malloc'ed copy, or NULL when out of memory. */
static char *indent_like_python(const char *text) {
    size_t tabs = 0, n = strlen(text);
    for (size_t i = 0; i < n; i++) tabs += text[i] == '\t';
    char *out = malloc(n + tabs + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] != '\t') {
            out[o++] = text[i];
        } else {
            out[o++] = ' ';
            if (i == 0 || text[i - 1] != ':') out[o++] = ' ';
        }
    }
    out[o] = '\0';
    return out;
}

static int member_cmp(const void *a, const void *b) {
    return strcmp(((const out_member *)a)->key, ((const out_member *)b)->key);
}

static cJSON *json_float(double x) {
    char buf[40];
    format_float(buf, sizeof buf, x);
    return cJSON_CreateRaw(buf);
}

static cJSON *json_token(int id) {
    return id < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(id);
}

static cJSON *rope_block_json(const model_config *cfg, int with_theta) {
    const model_rope *r = &cfg->rope;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (with_theta) cJSON_AddItemToObject(o, "rope_theta", json_float(r->rope_theta));
    if (r->type == MODEL_ROPE_DEFAULT) {
        cJSON_AddItemToObject(o, "rope_type", cJSON_CreateString("default"));
        return o;
    }
    cJSON_AddItemToObject(o, "rope_type", cJSON_CreateString("yarn"));
    if (!with_theta) cJSON_AddItemToObject(o, "type", cJSON_CreateString("yarn"));
    if (r->factor != 0) cJSON_AddItemToObject(o, "factor", json_float(r->factor));
    if (r->attention_factor != 0) cJSON_AddItemToObject(o, "attention_factor", json_float(r->attention_factor));
    cJSON_AddItemToObject(o, "beta_fast", json_float(r->beta_fast));
    cJSON_AddItemToObject(o, "beta_slow", json_float(r->beta_slow));
    if (r->mscale != 0) cJSON_AddItemToObject(o, "mscale", json_float(r->mscale));
    if (r->mscale_all_dim != 0) cJSON_AddItemToObject(o, "mscale_all_dim", json_float(r->mscale_all_dim));
    cJSON_AddItemToObject(o, "original_max_position_embeddings",
                          cJSON_CreateNumber(r->original_max_position_embeddings));
    if (!r->truncate) cJSON_AddItemToObject(o, "truncate", cJSON_CreateFalse());
    return o;
}

pt_status model_config_to_json(char **out, const model_config *cfg, pt_error *err) {
    *out = NULL;
    const model_config *c = cfg;
    out_member m[96];
    size_t n = 0;
#define PUT(k, v) (m[n].key = (k), m[n].value = (v), n++)
    cJSON *arch = cJSON_CreateArray();
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("DeepseekV3ForCausalLM"));
    PUT("architectures", arch);
    PUT("attention_bias", cJSON_CreateBool(c->attention_bias));
    PUT("bos_token_id", json_token(c->bos_token_id));
    if (c->n_eos_token_ids == 0) {
        PUT("eos_token_id", cJSON_CreateNull());
    } else if (c->n_eos_token_ids == 1 && !c->eos_is_list) {
        PUT("eos_token_id", cJSON_CreateNumber(c->eos_token_ids[0]));
    } else {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; a && i < c->n_eos_token_ids; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(c->eos_token_ids[i]));
        PUT("eos_token_id", a);
    }
    PUT("first_k_dense_replace", cJSON_CreateNumber(c->first_k_dense_replace));
    PUT("head_dim", cJSON_CreateNumber(c->qk_rope_head_dim));
    PUT("hidden_act", cJSON_CreateString("silu"));
    PUT("hidden_size", cJSON_CreateNumber(c->hidden_size));
    PUT("initializer_range", json_float(c->initializer_range));
    PUT("intermediate_size", cJSON_CreateNumber(c->intermediate_size));
    PUT("kv_lora_rank", cJSON_CreateNumber(c->kv_lora_rank));
    PUT("max_position_embeddings", cJSON_CreateNumber(c->max_position_embeddings));
    PUT("model_type", cJSON_CreateString("deepseek_v3"));
    PUT("moe_intermediate_size", cJSON_CreateNumber(c->moe_intermediate_size));
    PUT("n_group", cJSON_CreateNumber(c->n_group));
    PUT("n_routed_experts", cJSON_CreateNumber(c->n_routed_experts));
    PUT("n_shared_experts", cJSON_CreateNumber(c->n_shared_experts));
    PUT("norm_topk_prob", cJSON_CreateBool(c->norm_topk_prob));
    PUT("num_attention_heads", cJSON_CreateNumber(c->num_attention_heads));
    PUT("num_experts_per_tok", cJSON_CreateNumber(c->num_experts_per_tok));
    PUT("num_hidden_layers", cJSON_CreateNumber(c->num_hidden_layers));
    PUT("num_key_value_heads", cJSON_CreateNumber(c->num_key_value_heads));
    PUT("num_nextn_predict_layers", cJSON_CreateNumber(c->num_nextn_predict_layers));
    PUT("pad_token_id", json_token(c->pad_token_id));
    PUT("posttrain_bias_update_speed", json_float(c->posttrain_bias_update_speed));
    PUT("posttrain_mtp_loss_weight", json_float(c->posttrain_mtp_loss_weight));
    PUT("posttrain_seq_aux_alpha", json_float(c->posttrain_seq_aux_alpha));
    PUT("q_lora_rank", c->q_lora_rank > 0 ? cJSON_CreateNumber(c->q_lora_rank) : cJSON_CreateNull());
    PUT("qk_head_dim", cJSON_CreateNumber(model_config_qk_head_dim(c)));
    PUT("qk_nope_head_dim", cJSON_CreateNumber(c->qk_nope_head_dim));
    PUT("qk_rope_head_dim", cJSON_CreateNumber(c->qk_rope_head_dim));
    PUT("rms_norm_eps", json_float(c->rms_norm_eps));
    PUT("rope_interleave", cJSON_CreateBool(c->rope_interleave));
    /* transformers v5 reads rope_parameters; v4-era readers (and vLLM) read rope_theta + rope_scaling. */
    PUT("rope_parameters", rope_block_json(c, 1));
    PUT("rope_scaling", c->rope.type == MODEL_ROPE_YARN ? rope_block_json(c, 0) : cJSON_CreateNull());
    PUT("rope_theta", json_float(c->rope.rope_theta));
    PUT("routed_scaling_factor", json_float(c->routed_scaling_factor));
    PUT("tie_word_embeddings", cJSON_CreateBool(c->tie_word_embeddings));
    PUT("topk_group", cJSON_CreateNumber(c->topk_group));
    PUT("v_head_dim", cJSON_CreateNumber(c->v_head_dim));
    PUT("vocab_size", cJSON_CreateNumber(c->vocab_size));
    size_t n_fixed = n;
    int have_quant_text = 0;
    for (int i = 0; i < c->n_extra; i++) have_quant_text |= strcmp(c->extra_keys[i], "quantization_config") == 0;
    if (c->quant.fp8 && !have_quant_text) {
        cJSON *q = cJSON_CreateObject();
        if (q) {
            cJSON_AddItemToObject(q, "activation_scheme", cJSON_CreateString("dynamic"));
            cJSON_AddItemToObject(q, "fmt", cJSON_CreateString("e4m3"));
            cJSON_AddItemToObject(q, "quant_method", cJSON_CreateString("fp8"));
            cJSON_AddItemToObject(q, "weight_block_size", cJSON_CreateIntArray(c->quant.weight_block_size, 2));
        }
        PUT("quantization_config", q);
    }
#undef PUT
    pt_status st = PT_OK;
    cJSON *root = cJSON_CreateObject();
    out_member *all = calloc(n + (size_t)c->n_extra, sizeof *all);
    int ok = root && all;
    for (size_t i = 0; i < n; i++) ok = ok && m[i].value;
    if (ok) {
        memcpy(all, m, n * sizeof *m);
        size_t total = n;
        for (int i = 0; i < c->n_extra; i++) {
            const char *k = c->extra_keys[i];
            /* the kept quantization_config text goes back only while the weights are FP8 */
            if (strcmp(k, "quantization_config") == 0 && !c->quant.fp8) continue;
            int clash = 0;
            for (size_t j = 0; j < n_fixed; j++) clash |= strcmp(m[j].key, k) == 0;
            if (clash) continue;
            cJSON *raw = cJSON_CreateRaw(c->extra_values[i]);
            if (!raw) {
                ok = 0;
                break;
            }
            all[total].key = k;
            all[total].value = raw;
            total++;
        }
        if (ok) {
            qsort(all, total, sizeof *all, member_cmp);
            for (size_t i = 0; i < total; i++) {
                cJSON_AddItemToObject(root, all[i].key, all[i].value);
                all[i].value = NULL; /* owned by root now */
            }
            for (size_t i = 0; i < n; i++) m[i].value = NULL;
            char *printed = cJSON_Print(root);
            *out = printed ? indent_like_python(printed) : NULL;
            cJSON_free(printed);
            ok = *out != NULL;
        } else {
            for (size_t i = n; i < total; i++) cJSON_Delete(all[i].value);
        }
    }
    for (size_t i = 0; i < n; i++) cJSON_Delete(m[i].value);
    if (!ok) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory writing the model config JSON");
    free(all);
    cJSON_Delete(root);
    return st;
}

/* Writes all of data to fd, retrying short writes. */
static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

pt_status model_config_save(const model_config *cfg, const char *path, pt_error *err) {
    PT_TRY(model_config_validate(cfg, path, err));
    char *text = NULL;
    PT_TRY(model_config_to_json(&text, cfg, err));
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) free(text);
    PT_CHECK_ALLOC(tmp, err, plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(text);
        free(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot create a temporary file beside '%s': %s", path, strerror(e));
    }
    size_t len = strlen(text);
    int ok = fchmod(fd, 0644) == 0 && write_all(fd, text, len) == 0 && write_all(fd, "\n", 1) == 0 && fsync(fd) == 0;
    int e = errno;
    ok = (close(fd) == 0) && ok;
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = 0;
    }
    free(text);
    if (!ok) {
        unlink(tmp);
        free(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot write model config '%s': %s", path, strerror(e));
    }
    free(tmp);
    /* make the rename durable */
    char *dir = strdup(path);
    PT_CHECK_ALLOC(dir, err, plen + 1);
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    return PT_OK;
}

/* ---- derived values ------------------------------------------------------------------------------- */

int model_config_qk_head_dim(const model_config *cfg) {
    return cfg->qk_nope_head_dim + cfg->qk_rope_head_dim;
}

int model_config_n_moe_layers(const model_config *cfg) {
    return cfg->num_hidden_layers - cfg->first_k_dense_replace;
}

bool model_config_is_moe_layer(const model_config *cfg, int layer) {
    return layer >= cfg->first_k_dense_replace && layer < cfg->num_hidden_layers + cfg->num_nextn_predict_layers;
}

double model_config_softmax_scale(const model_config *cfg) {
    double scale = 1.0 / sqrt((double)model_config_qk_head_dim(cfg));
    const model_rope *r = &cfg->rope;
    if (r->type != MODEL_ROPE_YARN || r->mscale_all_dim == 0) return scale;
    double factor = r->factor != 0 ? r->factor
                                   : (double)cfg->max_position_embeddings / r->original_max_position_embeddings;
    if (factor <= 1) return scale;
    double m = 0.1 * r->mscale_all_dim * log(factor) + 1.0;
    return scale * m * m;
}
