/* test_model_config.c — model/model_config.c against transformers' DeepseekV3Config.
 *
 * Peer: tests/fixtures/model_io/config_cases.json holds config.json texts (one written by
 * transformers' save_pretrained, one in DeepSeek's own v4-era layout, the bare defaults, eos lists
 * with null ids, a partial YaRN block) and, for each, every field as transformers reads it plus
 * DeepseekV3Attention's softmax scale (tests/ref/make_safetensors_fixture.py). Numbers are
 * compared exactly (both sides parse the same decimal text with correctly rounded conversions),
 * the softmax scale to 1e-14 relative (libm log/pow vs ours may differ in the last ulp).
 * Documented deviations from transformers, asserted here so they cannot drift silently:
 * num_nextn_predict_layers defaults to 0 (transformers: 1), a missing num_key_value_heads means
 * num_attention_heads (transformers: 128), and the posttrain_* keys default to γ 0.001,
 * α 0.0001, λ 0.3 (DeepSeek-V3 report values; transformers has no such keys).
 * Error tests check status and message: the field, the expected type or broken constraint, and
 * the values involved.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "model/model_config.h"
#include "tests/util/check.h"

static char *read_all(const char *path) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    cr_assert_eq(fread(text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    text[n] = 0;
    return text;
}

static cJSON *load_cases(void) {
    char path[512];
    char *text = read_all(fixture_path(path, sizeof path, "model_io/config_cases.json"));
    cJSON *cases = cJSON_Parse(text);
    free(text);
    cr_assert(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) >= 5);
    return cases;
}

static const cJSON *find_case(const cJSON *cases, const char *name) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cases)
        if (strcmp(cJSON_GetObjectItem(c, "name")->valuestring, name) == 0) return c;
    cr_assert_fail("no case %s", name);
    return NULL;
}

static double num(const cJSON *exp, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(exp, key);
    cr_assert(cJSON_IsNumber(v), "expected.%s is not a number", key);
    return v->valuedouble;
}

/* null in the expectation → `null_value` */
static double num_or(const cJSON *exp, const char *key, double null_value) {
    const cJSON *v = cJSON_GetObjectItem(exp, key);
    return cJSON_IsNull(v) || !v ? null_value : v->valuedouble;
}

static int boolean(const cJSON *exp, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(exp, key);
    cr_assert(cJSON_IsBool(v), "expected.%s is not a bool", key);
    return cJSON_IsTrue(v);
}

/* Every field against transformers' reading of the same text. */
static void check_expected(const model_config *c, const cJSON *exp, const char *name, int has_nextn_key) {
#define INT_EQ(f) cr_assert_eq(c->f, (int)num(exp, #f), "[%s] %s: ours %d, transformers %d", name, #f, c->f, \
                               (int)num(exp, #f))
#define DBL_EQ(f, v) cr_assert_eq(v, num(exp, f), "[%s] %s: ours %.17g, transformers %.17g", name, f, (double)(v), \
                                  num(exp, f))
    INT_EQ(vocab_size);
    INT_EQ(hidden_size);
    INT_EQ(intermediate_size);
    INT_EQ(moe_intermediate_size);
    INT_EQ(num_hidden_layers);
    INT_EQ(num_attention_heads);
    INT_EQ(num_key_value_heads);
    INT_EQ(n_shared_experts);
    INT_EQ(n_routed_experts);
    INT_EQ(kv_lora_rank);
    INT_EQ(qk_rope_head_dim);
    INT_EQ(v_head_dim);
    INT_EQ(qk_nope_head_dim);
    INT_EQ(n_group);
    INT_EQ(topk_group);
    INT_EQ(num_experts_per_tok);
    INT_EQ(first_k_dense_replace);
    INT_EQ(max_position_embeddings);
    DBL_EQ("routed_scaling_factor", c->routed_scaling_factor);
    DBL_EQ("rms_norm_eps", c->rms_norm_eps);
    DBL_EQ("initializer_range", c->initializer_range);
    cr_assert_eq(c->q_lora_rank, (int)num_or(exp, "q_lora_rank", 0), "[%s] q_lora_rank", name);
    cr_assert_eq(c->norm_topk_prob, boolean(exp, "norm_topk_prob"), "[%s] norm_topk_prob", name);
    cr_assert_eq(c->tie_word_embeddings, boolean(exp, "tie_word_embeddings"), "[%s]", name);
    cr_assert_eq(c->attention_bias, boolean(exp, "attention_bias"), "[%s]", name);
    cr_assert_eq(c->rope_interleave, boolean(exp, "rope_interleave"), "[%s]", name);
    cr_assert_str_eq(cJSON_GetObjectItem(exp, "hidden_act")->valuestring, "silu");
    cr_assert_eq(c->bos_token_id, (int)num_or(exp, "bos_token_id", -1), "[%s] bos", name);
    cr_assert_eq(c->pad_token_id, (int)num_or(exp, "pad_token_id", -1), "[%s] pad", name);
    const cJSON *eos = cJSON_GetObjectItem(exp, "eos_token_id");
    if (cJSON_IsArray(eos)) {
        cr_assert_eq(c->n_eos_token_ids, cJSON_GetArraySize(eos), "[%s] eos count", name);
        cr_assert(c->eos_is_list);
        for (int i = 0; i < c->n_eos_token_ids; i++)
            cr_assert_eq(c->eos_token_ids[i], (int)cJSON_GetArrayItem(eos, i)->valuedouble, "[%s] eos[%d]", name, i);
    } else if (cJSON_IsNull(eos)) {
        cr_assert_eq(c->n_eos_token_ids, 0);
    } else {
        cr_assert_eq(c->n_eos_token_ids, 1);
        cr_assert_eq(c->eos_token_ids[0], (int)eos->valuedouble, "[%s] eos", name);
    }
    if (has_nextn_key) INT_EQ(num_nextn_predict_layers);
    else cr_assert_eq(c->num_nextn_predict_layers, 0, "[%s] documented default 0 (transformers says %d)", name,
                      (int)num(exp, "num_nextn_predict_layers"));

    const char *rope_type = cJSON_GetObjectItem(exp, "rope_type")->valuestring;
    DBL_EQ("rope_theta", c->rope.rope_theta);
    if (strcmp(rope_type, "yarn") == 0) {
        cr_assert_eq(c->rope.type, MODEL_ROPE_YARN, "[%s]", name);
        cr_assert_eq(c->rope.factor, num_or(exp, "factor", 0), "[%s] factor", name);
        cr_assert_eq(c->rope.attention_factor, num_or(exp, "attention_factor", 0), "[%s] attention_factor", name);
        DBL_EQ("beta_fast", c->rope.beta_fast);
        DBL_EQ("beta_slow", c->rope.beta_slow);
        cr_assert_eq(c->rope.mscale, num_or(exp, "mscale", 0), "[%s] mscale", name);
        cr_assert_eq(c->rope.mscale_all_dim, num_or(exp, "mscale_all_dim", 0), "[%s] mscale_all_dim", name);
        cr_assert_eq(c->rope.original_max_position_embeddings, (int)num(exp, "original_max_position_embeddings"),
                     "[%s]", name);
        cr_assert_eq(c->rope.truncate, boolean(exp, "truncate"), "[%s]", name);
    } else {
        cr_assert_str_eq(rope_type, "default");
        cr_assert_eq(c->rope.type, MODEL_ROPE_DEFAULT, "[%s]", name);
    }
    double want = num(exp, "softmax_scale"), got = model_config_softmax_scale(c);
    cr_assert(fabs(got - want) <= 1e-14 * want, "[%s] softmax scale ours %.17g transformers %.17g", name, got, want);

    cr_assert_eq(c->posttrain_bias_update_speed, num_or(exp, "posttrain_bias_update_speed", 0.001), "[%s]", name);
    cr_assert_eq(c->posttrain_seq_aux_alpha, num_or(exp, "posttrain_seq_aux_alpha", 0.0001), "[%s]", name);
    cr_assert_eq(c->posttrain_mtp_loss_weight, num_or(exp, "posttrain_mtp_loss_weight", 0.3), "[%s]", name);
    const cJSON *q = cJSON_GetObjectItem(exp, "quantization_config");
    cr_assert_eq(c->quant.fp8, !cJSON_IsNull(q), "[%s] quant", name);
    if (!cJSON_IsNull(q)) {
        const cJSON *bs = cJSON_GetObjectItem(q, "weight_block_size");
        cr_assert_eq(c->quant.weight_block_size[0], (int)cJSON_GetArrayItem(bs, 0)->valuedouble);
        cr_assert_eq(c->quant.weight_block_size[1], (int)cJSON_GetArrayItem(bs, 1)->valuedouble);
    }
#undef INT_EQ
#undef DBL_EQ
}

Test(model_config, loads_the_file_transformers_saved) {
    char path[512];
    pt_error err = {0};
    model_config c;
    cr_assert_eq(model_config_load(&c, fixture_path(path, sizeof path, "model_io/hf_tiny_config.json"), &err), PT_OK,
                 "%s", err.msg);
    cJSON *cases = load_cases();
    check_expected(&c, cJSON_GetObjectItem(find_case(cases, "hf_tiny"), "expected"), "hf_tiny", 1);
    /* transformers' own keys that posttrain does not model are kept, verbatim */
    int kept = 0;
    for (int i = 0; i < c.n_extra; i++) {
        if (strcmp(c.extra_keys[i], "attention_dropout") == 0) {
            cr_assert_str_eq(c.extra_values[i], "0.0");
            kept++;
        }
        if (strcmp(c.extra_keys[i], "transformers_version") == 0) {
            cr_assert_str_eq(c.extra_values[i], "\"5.24.0\"");
            kept++;
        }
        cr_assert_neq(strcmp(c.extra_keys[i], "head_dim"), 0, "derived keys are recomputed, not kept");
        cr_assert_neq(strcmp(c.extra_keys[i], "rope_parameters"), 0);
    }
    cr_assert_eq(kept, 2);
    /* derived values, by their definitions: L = 3, first_k_dense_replace = 1, one MTP module */
    cr_assert_eq(model_config_qk_head_dim(&c), 16 + 8);
    cr_assert_eq(model_config_n_moe_layers(&c), 2);
    cr_assert(!model_config_is_moe_layer(&c, 0));
    cr_assert(model_config_is_moe_layer(&c, 1) && model_config_is_moe_layer(&c, 2));
    cr_assert(model_config_is_moe_layer(&c, 3), "the MTP module (layer L) is a MoE block");
    cr_assert(!model_config_is_moe_layer(&c, 4) && !model_config_is_moe_layer(&c, -1));
    model_config_free(&c);
    cJSON_Delete(cases);
}

Test(model_config, every_case_reads_as_transformers_reads_it) {
    cJSON *cases = load_cases();
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(cs, "text")->valuestring;
        model_config c;
        pt_error err = {0};
        cr_assert_eq(model_config_parse(&c, text, name, &err), PT_OK, "[%s] %s", name, err.msg);
        check_expected(&c, cJSON_GetObjectItem(cs, "expected"), name, strstr(text, "num_nextn_predict_layers") ||
                                                                            strstr(text, "num_mtp_layers"));
        model_config_free(&c);
    }
    cJSON_Delete(cases);
}

/* The literal text of top-level key `key` in a saved file (up to ',' or end of line). */
static void literal_of(char *out, size_t len, const char *text, const char *key) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    cr_assert_not_null(p, "key %s not in saved text", key);
    p += strlen(pat);
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strcspn(p, ",\n");
    if (n >= len) n = len - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

static void make_tmpdir(char *dir, size_t len) {
    snprintf(dir, len, "/tmp/pt_model_config_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

Test(model_config, save_then_load_round_trips_every_case) {
    cJSON *cases = load_cases();
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        const char *text = cJSON_GetObjectItem(cs, "text")->valuestring;
        model_config a, b;
        pt_error err = {0};
        cr_assert_eq(model_config_parse(&a, text, name, &err), PT_OK, "[%s] %s", name, err.msg);
        cr_assert_eq(model_config_save(&a, path, &err), PT_OK, "[%s] %s", name, err.msg);
        cr_assert_eq(count_files(dir), 1, "[%s] temporary file left behind", name);
        cr_assert_eq(model_config_load(&b, path, &err), PT_OK, "[%s] %s", name, err.msg);
        /* the saved file reads back to what transformers reads from the original */
        check_expected(&b, cJSON_GetObjectItem(cs, "expected"), name,
                       strstr(text, "num_nextn_predict_layers") || strstr(text, "num_mtp_layers"));
        cr_assert_eq(b.num_nextn_predict_layers, a.num_nextn_predict_layers);
        cr_assert_eq(b.n_extra, a.n_extra, "[%s] kept keys", name);
        for (int i = 0; i < a.n_extra; i++) {
            cr_assert_str_eq(b.extra_keys[i], a.extra_keys[i], "[%s]", name);
            cr_assert_str_eq(b.extra_values[i], a.extra_values[i], "[%s] %s", name, a.extra_keys[i]);
        }
        /* floats keep a decimal point (transformers' strict dataclass refuses 2 for a float field) */
        char *saved = read_all(path), lit[64];
        const char *floats[] = {"routed_scaling_factor", "rms_norm_eps", "initializer_range", "rope_theta",
                                "posttrain_bias_update_speed", "posttrain_seq_aux_alpha", "posttrain_mtp_loss_weight"};
        for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
            literal_of(lit, sizeof lit, saved, floats[k]);
            cr_assert(strpbrk(lit, ".eE"), "[%s] %s written as %s", name, floats[k], lit);
        }
        literal_of(lit, sizeof lit, saved, "model_type");
        cr_assert_str_eq(lit, "\"deepseek_v3\"");
        cr_assert(strstr(saved, "DeepseekV3ForCausalLM"), "[%s] architectures", name);
        if (strcmp(name, "deepseek_style") == 0) {
            literal_of(lit, sizeof lit, saved, "attention_dropout");
            cr_assert_str_eq(lit, "0.0", "kept verbatim");
            literal_of(lit, sizeof lit, saved, "aux_loss_alpha");
            cr_assert_str_eq(lit, "0.001");
            cr_assert(strstr(saved, "\"quant_method\": \"fp8\""), "the FP8 block travels with FP8 weights");
        }
        free(saved);
        model_config_free(&a);
        model_config_free(&b);
    }
    unlink(path);
    rmdir(dir);
    cJSON_Delete(cases);
}

Test(model_config, quantization_block_follows_the_fp8_flag_and_copy_is_deep) {
    cJSON *cases = load_cases();
    const char *text = cJSON_GetObjectItem(find_case(cases, "deepseek_style"), "text")->valuestring;
    model_config a, b;
    pt_error err = {0};
    cr_assert_eq(model_config_parse(&a, text, "ds", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_config_copy(&b, &a, &err), PT_OK);
    model_config_free(&a);
    b.quant.fp8 = false; /* e.g. after dequantising to train in fp32 */
    char *json = NULL;
    cr_assert_eq(model_config_to_json(&json, &b, &err), PT_OK);
    cr_assert_null(strstr(json, "quantization_config"), "dequantised weights must not claim FP8");
    cr_assert(strstr(json, "auto_map"), "other kept keys survive the copy");
    free(json);
    model_config_free(&b);

    model_config_init(&a);
    a.quant.fp8 = true; /* a config made in code, no kept text */
    cr_assert_eq(model_config_to_json(&json, &a, &err), PT_OK);
    cr_assert(strstr(json, "\"weight_block_size\""), "%s", json);
    cr_assert_eq(model_config_parse(&b, json, "generated", &err), PT_OK, "%s", err.msg);
    cr_assert(b.quant.fp8 && b.quant.weight_block_size[0] == 128 && b.quant.weight_block_size[1] == 128);
    model_config_free(&b);
    free(json);
    cJSON_Delete(cases);
}

Test(model_config, documented_defaults_and_deviations) {
    model_config c;
    pt_error err = {0};
    cr_assert_eq(model_config_parse(&c, "{\"model_type\": \"deepseek_v3\", \"num_attention_heads\": 16, "
                                        "\"q_lora_rank\": null}", "t", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(c.num_key_value_heads, 16, "missing num_key_value_heads follows num_attention_heads");
    cr_assert_eq(c.num_nextn_predict_layers, 0);
    cr_assert_eq(c.q_lora_rank, 0);
    cr_assert_eq(c.posttrain_bias_update_speed, 0.001);
    cr_assert_eq(c.posttrain_seq_aux_alpha, 0.0001);
    cr_assert_eq(c.posttrain_mtp_loss_weight, 0.3);
    model_config_free(&c);
    /* aliases from transformers' attribute_map */
    cr_assert_eq(model_config_parse(&c, "{\"model_type\": \"deepseek_v3\", \"num_mtp_layers\": 2, "
                                        "\"num_local_experts\": 128}", "t", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(c.num_nextn_predict_layers, 2);
    cr_assert_eq(c.n_routed_experts, 128);
    model_config_free(&c);
}

/* ---- errors ----------------------------------------------------------------------------------- */

static const char *BASE =
    "{\"model_type\":\"deepseek_v3\",\"vocab_size\":64,\"hidden_size\":16,\"intermediate_size\":24,"
    "\"moe_intermediate_size\":8,\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":2,"
    "\"n_routed_experts\":4,\"n_group\":2,\"topk_group\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"kv_lora_rank\":8,\"q_lora_rank\":8,\"qk_rope_head_dim\":4,\"qk_nope_head_dim\":4,\"v_head_dim\":4,"
    "\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":2.0,\"original_max_position_embeddings\":64,"
    "\"rope_theta\":10000.0}}";

/* BASE with key set to the raw JSON text of each (key, value) pair; NULL-terminated. */
static char *with_fields(const char *const *kv) {
    cJSON *root = cJSON_Parse(BASE);
    cr_assert_not_null(root);
    for (int i = 0; kv[i]; i += 2) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, kv[i]);
        cJSON_AddItemToObject(root, kv[i], cJSON_CreateRaw(kv[i + 1]));
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static void expect_parse_error(const char *const *kv, pt_status status, const char *a, const char *b) {
    char *text = with_fields(kv);
    model_config c;
    pt_error err = {0};
    pt_status st = model_config_parse(&c, text, "cfg.json", &err);
    cr_assert_eq(st, status, "[%s=%s] expected %s, got %s: %s", kv[0], kv[1], status_name(status), status_name(st),
                 err.msg);
    cr_assert(strstr(err.msg, "cfg.json"), "message does not name the file: %s", err.msg);
    cr_assert(strstr(err.msg, a), "[%s=%s] message lacks \"%s\": %s", kv[0], kv[1], a, err.msg);
    if (b) cr_assert(strstr(err.msg, b), "[%s=%s] message lacks \"%s\": %s", kv[0], kv[1], b, err.msg);
    cr_assert_eq(c.n_extra, 0, "a failed parse must leave nothing to free");
    free(text);
}

#define KV(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(model_config, base_config_is_valid) {
    char *text = with_fields(KV("vocab_size", "64"));
    model_config c;
    pt_error err = {0};
    cr_assert_eq(model_config_parse(&c, text, "cfg.json", &err), PT_OK, "%s", err.msg);
    model_config_free(&c);
    free(text);
}

Test(model_config, wrong_model_type_names_the_value) {
    expect_parse_error(KV("model_type", "\"llama\""), PT_ERR_CONFIG, "model_type is a string \"llama\"",
                       "expected \"deepseek_v3\"");
    expect_parse_error(KV("model_type", "3"), PT_ERR_CONFIG, "model_type is the number 3", NULL);
    model_config c;
    pt_error err = {0};
    cr_assert_eq(model_config_parse(&c, "{\"vocab_size\": 10}", "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "missing \"model_type\""), "%s", err.msg);
}

Test(model_config, wrong_type_names_field_expected_type_and_value) {
    const char *ints[] = {"vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
                          "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "n_shared_experts",
                          "n_routed_experts", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "v_head_dim",
                          "qk_nope_head_dim", "n_group", "topk_group", "num_experts_per_tok",
                          "first_k_dense_replace", "max_position_embeddings", "num_nextn_predict_layers"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char field[80];
        snprintf(field, sizeof field, "field '%s'", ints[i]);
        expect_parse_error(KV(ints[i], "\"8\""), PT_ERR_CONFIG, field, "expected an integer, got a string \"8\"");
        expect_parse_error(KV(ints[i], "8.0"), PT_ERR_CONFIG, field, "got the number 8.0");
        expect_parse_error(KV(ints[i], "2.5"), PT_ERR_CONFIG, field, "expected an integer");
        expect_parse_error(KV(ints[i], "true"), PT_ERR_CONFIG, field, "got a boolean true");
        expect_parse_error(KV(ints[i], "1e10"), PT_ERR_CONFIG, field, "expected an integer");
    }
    const char *reals[] = {"routed_scaling_factor", "rms_norm_eps", "initializer_range", "rope_theta",
                           "posttrain_bias_update_speed", "posttrain_seq_aux_alpha", "posttrain_mtp_loss_weight"};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        char field[80];
        snprintf(field, sizeof field, "field '%s'", reals[i]);
        expect_parse_error(KV(reals[i], "\"0.1\""), PT_ERR_CONFIG, field, "expected a number, got a string \"0.1\"");
        expect_parse_error(KV(reals[i], "null"), PT_ERR_CONFIG, field, "got null");
        expect_parse_error(KV(reals[i], "1e999"), PT_ERR_CONFIG, field, "expected a finite number");
    }
    const char *bools[] = {"norm_topk_prob", "tie_word_embeddings", "attention_bias", "rope_interleave"};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char field[80];
        snprintf(field, sizeof field, "field '%s'", bools[i]);
        expect_parse_error(KV(bools[i], "1"), PT_ERR_CONFIG, field, "expected true or false, got the number 1");
    }
    expect_parse_error(KV("hidden_act", "5"), PT_ERR_CONFIG, "field 'hidden_act'", "expected a string");
    expect_parse_error(KV("bos_token_id", "-1"), PT_ERR_CONFIG, "field 'bos_token_id'", "token id");
    expect_parse_error(KV("pad_token_id", "\"<pad>\""), PT_ERR_CONFIG, "field 'pad_token_id'", "token id");
    expect_parse_error(KV("eos_token_id", "[]"), PT_ERR_CONFIG, "field 'eos_token_id'", "list of 1 to 8");
    expect_parse_error(KV("eos_token_id", "[1,null]"), PT_ERR_CONFIG, "field 'eos_token_id'", "not null");
    expect_parse_error(KV("rope_scaling", "\"yarn\""), PT_ERR_CONFIG, "field 'rope_scaling'", "an object or null");
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":\"4\"}"), PT_ERR_CONFIG,
                       "field 'rope_parameters.factor'", "expected a number");
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":2.0,\"truncate\":0}"),
                       PT_ERR_CONFIG, "field 'rope_parameters.truncate'", "true or false");
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":2.0,"
                          "\"original_max_position_embeddings\":64.5}"),
                       PT_ERR_CONFIG, "rope_parameters.original_max_position_embeddings", "an integer");
    expect_parse_error(KV("quantization_config", "{\"quant_method\":\"fp8\",\"weight_block_size\":[128]}"),
                       PT_ERR_CONFIG, "quantization_config.weight_block_size", "list of 2 integers");
    expect_parse_error(KV("quantization_config", "{\"fmt\":\"e4m3\"}"), PT_ERR_CONFIG, "no quant_method", NULL);
}

Test(model_config, each_constraint_names_field_and_values) {
    expect_parse_error(KV("n_routed_experts", "6", "n_group", "4", "topk_group", "1", "num_experts_per_tok", "1"),
                       PT_ERR_CONFIG, "cfg.json: n_routed_experts % n_group != 0 (n_routed_experts=6, n_group=4)",
                       NULL);
    expect_parse_error(KV("topk_group", "3"), PT_ERR_CONFIG, "topk_group > n_group (topk_group=3, n_group=2)", NULL);
    expect_parse_error(KV("num_experts_per_tok", "5", "topk_group", "2"), PT_ERR_CONFIG,
                       "num_experts_per_tok > n_routed_experts (num_experts_per_tok=5, n_routed_experts=4)", NULL);
    expect_parse_error(KV("n_routed_experts", "8", "n_group", "4", "topk_group", "1", "num_experts_per_tok", "3"),
                       PT_ERR_CONFIG, "num_experts_per_tok > topk_group * (n_routed_experts / n_group)",
                       "num_experts_per_tok=3, topk_group=1, n_routed_experts=8, n_group=4");
    expect_parse_error(KV("n_group", "4", "num_experts_per_tok", "1"), PT_ERR_CONFIG,
                       "n_routed_experts / n_group < 2 (n_routed_experts=4, n_group=4)", NULL);
    expect_parse_error(KV("qk_rope_head_dim", "5"), PT_ERR_CONFIG, "qk_rope_head_dim is odd (qk_rope_head_dim=5)",
                       NULL);
    expect_parse_error(KV("num_key_value_heads", "1"), PT_ERR_CONFIG,
                       "num_key_value_heads != num_attention_heads (num_key_value_heads=1, num_attention_heads=2)",
                       NULL);
    expect_parse_error(KV("first_k_dense_replace", "3"), PT_ERR_CONFIG,
                       "first_k_dense_replace > num_hidden_layers (first_k_dense_replace=3, num_hidden_layers=2)",
                       NULL);
    const char *positive[] = {"vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size",
                              "num_hidden_layers", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
                              "v_head_dim", "max_position_embeddings"};
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        char want[96];
        snprintf(want, sizeof want, "%s <= 0 (%s=0)", positive[i], positive[i]);
        expect_parse_error(KV(positive[i], "0"), PT_ERR_CONFIG, want, NULL);
    }
    expect_parse_error(KV("num_attention_heads", "0", "num_key_value_heads", "0"), PT_ERR_CONFIG,
                       "num_attention_heads <= 0", NULL);
    expect_parse_error(KV("n_shared_experts", "-1"), PT_ERR_CONFIG, "n_shared_experts < 0 (n_shared_experts=-1)", NULL);
    expect_parse_error(KV("num_nextn_predict_layers", "-1"), PT_ERR_CONFIG, "num_nextn_predict_layers < 0", NULL);
    expect_parse_error(KV("q_lora_rank", "0"), PT_ERR_CONFIG, "q_lora_rank must be > 0, or null", NULL);
    expect_parse_error(KV("rms_norm_eps", "0.0"), PT_ERR_CONFIG, "rms_norm_eps <= 0 (rms_norm_eps=0)", NULL);
    expect_parse_error(KV("routed_scaling_factor", "-2.5"), PT_ERR_CONFIG, "routed_scaling_factor <= 0", NULL);
    expect_parse_error(KV("initializer_range", "-0.1"), PT_ERR_CONFIG, "initializer_range < 0", NULL);
    expect_parse_error(KV("posttrain_seq_aux_alpha", "-1.0"), PT_ERR_CONFIG, "posttrain_seq_aux_alpha < 0", NULL);
    expect_parse_error(KV("eos_token_id", "64"), PT_ERR_CONFIG,
                       "eos_token_id outside [0, vocab_size) (eos_token_id=64, vocab_size=64)", NULL);
    expect_parse_error(KV("bos_token_id", "70"), PT_ERR_CONFIG, "bos_token_id >= vocab_size (bos_token_id=70", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"default\",\"rope_theta\":1.0}"), PT_ERR_CONFIG,
                       "rope_theta <= 1 (rope_theta=1)", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":0.5}"), PT_ERR_CONFIG,
                       "factor < 1 (factor=0.5)", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":2.0,\"beta_fast\":1.0,"
                          "\"beta_slow\":2.0}"), PT_ERR_CONFIG, "beta_fast < beta_slow (beta_fast=1, beta_slow=2)",
                       NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":2.0,\"mscale\":-1.0}"),
                       PT_ERR_CONFIG, "mscale < 0", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"yarn\",\"factor\":2.0,\"beta_fsat\":32}"),
                       PT_ERR_CONFIG, "unknown key 'beta_fsat' in rope_parameters", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"default\",\"factor\":2.0}"), PT_ERR_CONFIG,
                       "unknown key 'factor' in rope_parameters for rope_type \"default\"", NULL);
    expect_parse_error(KV("num_local_experts", "8"), PT_ERR_CONFIG, "disagrees with its alias", NULL);
    expect_parse_error(KV("quantization_config", "{\"quant_method\":\"fp8\",\"weight_block_size\":[0,128]}"),
                       PT_ERR_CONFIG, "weight_block_size has a size <= 0", NULL);
}

Test(model_config, valid_but_unsupported_values) {
    expect_parse_error(KV("hidden_act", "\"gelu\""), PT_ERR_UNSUPPORTED, "hidden_act \"gelu\" is not supported", NULL);
    expect_parse_error(KV("attention_bias", "true"), PT_ERR_UNSUPPORTED, "attention_bias true", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"llama3\",\"factor\":8.0}"), PT_ERR_UNSUPPORTED,
                       "rope_parameters.rope_type \"llama3\" is not supported", NULL);
    expect_parse_error(KV("rope_scaling", "{\"type\":\"linear\",\"factor\":2.0}"), PT_ERR_UNSUPPORTED,
                       "rope_scaling.type \"linear\"", NULL);
    expect_parse_error(KV("rope_parameters", "{\"rope_type\":\"default\",\"partial_rotary_factor\":0.5}"),
                       PT_ERR_UNSUPPORTED, "partial_rotary_factor = 0.5", NULL);
    expect_parse_error(KV("scoring_func", "\"softmax\""), PT_ERR_UNSUPPORTED, "scoring_func \"softmax\"", NULL);
    expect_parse_error(KV("topk_method", "\"greedy\""), PT_ERR_UNSUPPORTED, "topk_method \"greedy\"", NULL);
    expect_parse_error(KV("quantization_config", "{\"quant_method\":\"bitsandbytes\"}"), PT_ERR_UNSUPPORTED,
                       "quant_method \"bitsandbytes\"", NULL);
    expect_parse_error(KV("quantization_config", "{\"quant_method\":\"fp8\",\"fmt\":\"e5m2\"}"), PT_ERR_UNSUPPORTED,
                       "quantization_config.fmt \"e5m2\"", NULL);
}

Test(model_config, rope_scaling_wins_over_rope_parameters_as_in_transformers) {
    model_config c;
    pt_error err = {0};
    char *text = with_fields(KV("rope_scaling", "{\"type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":32}",
                                "rope_theta", "5000.0"));
    cr_assert_eq(model_config_parse(&c, text, "cfg.json", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(c.rope.factor, 4.0);
    cr_assert_eq(c.rope.rope_theta, 5000.0, "the block has no rope_theta: the top-level one applies");
    cr_assert_eq(c.rope.original_max_position_embeddings, 32);
    model_config_free(&c);
    free(text);
    /* an empty rope_scaling is falsy in Python: rope_parameters applies */
    text = with_fields(KV("rope_scaling", "{}"));
    cr_assert_eq(model_config_parse(&c, text, "cfg.json", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(c.rope.factor, 2.0);
    model_config_free(&c);
    free(text);
}

Test(model_config, malformed_json_reports_line_and_column) {
    model_config c;
    pt_error err = {0};
    /* line 3 is `  "vocab_size": [1,}`: the '}' at column 20 is where the JSON breaks */
    const char *text = "{\n  \"model_type\": \"deepseek_v3\",\n  \"vocab_size\": [1,}\n}";
    cr_assert_eq(model_config_parse(&c, text, "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "cfg.json:3:20: not valid JSON"), "%s", err.msg);
    cr_assert_eq(model_config_parse(&c, "{\"model_type\": \"deepseek_v3\"} x", "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "cfg.json:1:31"), "%s", err.msg);
    cr_assert_eq(model_config_parse(&c, "{\"a\": NaN}", "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "cfg.json:1:7"), "%s", err.msg);
    cr_assert_eq(model_config_parse(&c, "[1, 2]", "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "the top level must be a JSON object, got a list"), "%s", err.msg);
    cr_assert_eq(model_config_parse(&c, "{\"model_type\": \"deep\xff\"}", "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "cfg.json:1:21: invalid UTF-8"), "%s", err.msg);
    cr_assert_eq(model_config_parse(&c, "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 8, \"vocab_size\": 9}",
                                    "cfg.json", &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "key 'vocab_size' appears more than once"), "%s", err.msg);
}

Test(model_config, file_errors_name_the_path) {
    model_config c;
    pt_error err = {0};
    cr_assert_eq(model_config_load(&c, "/nonexistent_pt/config.json", &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent_pt/config.json") && strstr(err.msg, "No such file"), "%s", err.msg);
    cr_assert_eq(model_config_load(&c, "/tmp", &err), PT_ERR_IO);
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "wb");
    fwrite("{\"model_type\": \"deepseek_v3\"}\0{}", 1, 32, fp);
    fclose(fp);
    cr_assert_eq(model_config_load(&c, path, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "NUL byte at offset 29"), "%s", err.msg);
    unlink(path);
    /* saving refuses an invalid config and writes nothing; a missing folder is an I/O error */
    model_config_init(&c);
    c.n_group = 6;
    cr_assert_eq(model_config_save(&c, path, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "n_routed_experts % n_group"), "%s", err.msg);
    cr_assert_eq(count_files(dir), 0);
    model_config_init(&c);
    cr_assert_eq(model_config_save(&c, "/nonexistent_pt/config.json", &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent_pt/config.json"), "%s", err.msg);
    rmdir(dir);
}

/* Found by fuzzing: cJSON accepts any byte 0x01–0x20 as whitespace, and an unknown key whose
 * value followed such a byte was kept with an empty text, so a saved config.json was invalid. */
Test(model_config, unknown_key_after_a_control_byte_round_trips) {
    const char *text = "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 64,\n \"custom_knob\":\x15 0.3\n}";
    model_config c, c2;
    pt_error err = {0};
    cr_assert_eq(model_config_parse(&c, text, "ctl.json", &err), PT_OK, "%s", err.msg);
    char *a = NULL, *b = NULL;
    cr_assert_eq(model_config_to_json(&a, &c, &err), PT_OK, "%s", err.msg);
    cr_assert(strstr(a, "\"custom_knob\": 0.3"), "%s", a);
    cr_assert_eq(model_config_parse(&c2, a, "saved.json", &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_config_to_json(&b, &c2, &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    model_config_free(&c);
    model_config_free(&c2);
}
