/* cmd_init.c — `posttrain init --config MODEL_CONFIG.json --out DIR [--tokenizer DIR]`: a randomly
 * initialised model folder (config.json + model.safetensors) that transformers can load. Here
 * --config is the model's Hugging Face config.json, not a run config.
 *
 * With --tokenizer the tokenizer's files are copied into the folder byte for byte (a trainer and
 * `posttrain sample` then find everything in one place) and the config is made to agree with the
 * tokenizer before anything is written: vocab_size must cover every id of the tokenizer (an id
 * without an embedding row would be out of bounds), and bos_token_id / eos_token_id /
 * pad_token_id are set to the ids of the tokenizer's bos_token / eos_token / pad_token (pad falls
 * back to EOS, as the data loader pads with EOS when the tokenizer has no pad token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "sft/sft_files.h"

static const config_key INIT_KEYS[] = {
    {"config", CONFIG_STRING, "null", "the model's config.json (DeepseekV3Config), e.g. examples/configs/tiny-moe.json"},
    {"out", CONFIG_STRING, "null", "folder to write the model into (created when missing)"},
    {"tokenizer", CONFIG_STRING, "null",
     "a tokenizer folder (tokenizer.json, tokenizer_config.json) or tokenizer.json to copy into the model folder; "
     "the config's vocab_size must cover it and its BOS/EOS/PAD ids are written into config.json"},
    {"seed", CONFIG_INT, "0", "seed of the initialisation (normal(0, initializer_range) per matrix)"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split the weights into shards above this size"},
};

/* The pad_token of tokenizer_config.json beside a tokenizer folder's tokenizer.json (a string
 * or an AddedToken object), or NULL. *json holds the parsed file for the caller to free. */
static const char *pad_token_of(cJSON **json, const char *tok_path) {
    *json = NULL;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer_config.json", tok_path) >= (int)sizeof path) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > 0 && size < (16L << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1)))
            len = fread(buf, 1, (size_t)size, f);
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = 0;
    *json = cJSON_Parse(buf);
    free(buf);
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(*json, "pad_token");
    if (cJSON_IsObject(pad)) pad = cJSON_GetObjectItemCaseSensitive(pad, "content");
    return cJSON_IsString(pad) ? pad->valuestring : NULL;
}

/* Checks that mc fits the tokenizer and sets its special-token ids (see the file comment). */
static pt_status adopt_tokenizer(model_config *mc, const char *tok_path, const char *cpath, pt_error *err) {
    tokenizer *tok = NULL;
    if (tokenizer_load(&tok, tok_path, err) != PT_OK) return error_prefix(err, "--tokenizer '%s'", tok_path);
    size_t n_ids = tokenizer_n_ids(tok);
    pt_status st = PT_OK;
    if (n_ids > (size_t)mc->vocab_size) {
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "%s: vocab_size %d is smaller than the tokenizer '%s' (%zu ids): set vocab_size to at least %zu",
                       cpath, mc->vocab_size, tok_path, n_ids, n_ids);
    } else {
        int32_t bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok), pad = -1;
        cJSON *json = NULL;
        const char *pad_token = pad_token_of(&json, tok_path);
        if (pad_token) pad = tokenizer_token_to_id(tok, pad_token, strlen(pad_token));
        cJSON_Delete(json);
        if (pad < 0) pad = eos;
        mc->bos_token_id = bos;
        mc->n_eos_token_ids = eos >= 0 ? 1 : 0;
        mc->eos_token_ids[0] = eos;
        mc->eos_is_list = false;
        mc->pad_token_id = pad;
        printf("tokenizer %s: %zu ids; bos_token_id %d, eos_token_id %d, pad_token_id %d\n", tok_path, n_ids, (int)bos,
               (int)eos, (int)pad);
    }
    tokenizer_free(tok);
    return st;
}

int cmd_init(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(INIT_KEYS);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: posttrain init --config MODEL_CONFIG.json --out DIR [--tokenizer DIR] [--seed N]\n\nkeys:\n");
            config_print_help(stdout, &schema, 1);
            return 0;
        }
    config cfg;
    pt_error err = {0};
    if (config_init(&cfg, &schema, 1, &err) != PT_OK) return cli_fail("init", &err);
    if (config_apply_args(&cfg, argc - 1, argv + 1, &err) != PT_OK) {
        config_free(&cfg);
        return cli_fail("init", &err);
    }
    int rc = 2;
    const char *cpath = cli_require(&cfg, "init", "config"), *out = cli_require(&cfg, "init", "out");
    if (!cpath || !out) goto done;
    model_config mc;
    if (model_config_load(&mc, cpath, &err) != PT_OK) {
        rc = cli_fail("init", &err);
        goto done;
    }
    const char *tok_path = config_string(&cfg, "tokenizer");
    if (tok_path && adopt_tokenizer(&mc, tok_path, cpath, &err) != PT_OK) {
        model_config_free(&mc);
        rc = cli_fail("init", &err);
        goto done;
    }
    policy_model m;
    pt_status st = model_init(&m, &mc, (uint64_t)config_int(&cfg, "seed"), &err);
    model_config_free(&mc);
    if (st != PT_OK) {
        error_prefix(&err, "%s", cpath);
        rc = cli_fail("init", &err);
        goto done;
    }
    st = model_save(&m, out, (size_t)config_int(&cfg, "max_shard_bytes"), &err);
    if (st == PT_OK && tok_path && (st = sft_copy_tokenizer_files(out, tok_path, &err)) != PT_OK)
        error_prefix(&err, "copying the tokenizer '%s' into '%s'", tok_path, out);
    if (st == PT_OK) {
        size_t n = 0;
        for (int i = 0; i < m.layout.ntensors; i++)
            if (!m.layout.tensors[i].alias) n += m.layout.tensors[i].numel;
        printf("wrote %s: %zu parameters in %d tensors\n", out, n, m.layout.ntensors);
        rc = 0;
    } else {
        rc = cli_fail("init", &err);
    }
    model_free(&m);
done:
    config_free(&cfg);
    return rc;
}
