/* cmd_init.c — `posttrain init --config MODEL_CONFIG.json --out DIR`: a randomly initialised
 * model folder (config.json + model.safetensors) that transformers can load. Here --config is
 * the model's Hugging Face config.json, not a run config. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/checkpoint.h"

static const config_key INIT_KEYS[] = {
    {"config", CONFIG_STRING, "null", "the model's config.json (DeepseekV3Config), e.g. examples/configs/tiny-moe.json"},
    {"out", CONFIG_STRING, "null", "folder to write the model into (created when missing)"},
    {"seed", CONFIG_INT, "0", "seed of the initialisation (normal(0, initializer_range) per matrix)"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split the weights into shards above this size"},
};

int cmd_init(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(INIT_KEYS);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: posttrain init --config MODEL_CONFIG.json --out DIR [--seed N]\n\nkeys:\n");
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
    policy_model m;
    pt_status st = model_init(&m, &mc, (uint64_t)config_int(&cfg, "seed"), &err);
    model_config_free(&mc);
    if (st != PT_OK) {
        error_prefix(&err, "%s", cpath);
        rc = cli_fail("init", &err);
        goto done;
    }
    st = model_save(&m, out, (size_t)config_int(&cfg, "max_shard_bytes"), &err);
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
