/* cmd_convert.c — `posttrain convert --model DIR --out DIR --dtype fp8|fp32 [--force]`: rewrites
 * a model folder in another weight format (sft/model_export.h). The source may be anything
 * posttrain loads (fp32, bf16, fp16 or DeepSeek FP8 weights); the tokenizer files go along. fp8
 * is DeepSeek's FP8 release format (E4M3 128×128 blocks + `_scale_inv`), fp32 a plain folder.
 * The output is written as <out>.tmp and renamed into place, so a failure leaves no half folder;
 * an existing non-empty --out is replaced only with --force. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "sft/model_export.h"

static const config_key CONVERT_KEYS[] = {
    {"model", CONFIG_STRING, "null", "the model folder to read (config.json + safetensors, any float or FP8 dtype)"},
    {"out", CONFIG_STRING, "null",
     "folder to write (written as <out>.tmp, then renamed; an existing non-empty folder needs --force)"},
    {"dtype", CONFIG_STRING, "null",
     "weights of the output: fp8 (DeepSeek's FP8 release format: E4M3 attention/MLP/expert matrices in 128x128 "
     "blocks with fp32 _scale_inv; embedding, head, router and norms fp32) or fp32"},
    {"force", CONFIG_BOOL, "false", "replace an existing non-empty --out (a folder of files only)"},
    {"max_shard_bytes", CONFIG_INT, "5000000000", "split the weights into shards above this size"},
};

int cmd_convert(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(CONVERT_KEYS);
    config cfg;
    int rc = cli_parse(&cfg, &schema, 1, argc, argv,
                       "Rewrite a model folder in fp8 (DeepSeek's FP8 release format) or fp32, with its tokenizer.\n"
                       "e.g. posttrain convert --model runs/sft/final --out runs/sft/final-fp8 --dtype fp8");
    if (rc != 0) return rc < 0 ? 0 : rc;
    rc = 2;
    pt_error err = {0};
    const char *model = cli_require(&cfg, "convert", "model"), *out = model ? cli_require(&cfg, "convert", "out") : NULL;
    const char *dtype = out ? cli_require(&cfg, "convert", "dtype") : NULL;
    model_save_dtype d;
    int64_t shard = config_int(&cfg, "max_shard_bytes");
    if (!dtype) goto done;
    if (model_save_dtype_parse(&d, dtype, "--dtype", &err) != PT_OK) {
        rc = cli_fail("convert", &err);
        goto done;
    }
    if (shard < 0) {
        fprintf(stderr, "posttrain convert: --max_shard_bytes must be >= 0 (0: one file), got %lld\n", (long long)shard);
        goto done;
    }
    model_convert_info info;
    if (model_convert(&info, model, out, d, config_bool(&cfg, "force"), (size_t)shard, &err) != PT_OK) {
        rc = cli_fail("convert", &err);
        goto done;
    }
    printf("wrote %s: %zu parameters, %s weights%s\n", out, info.params, model_save_dtype_name(d),
           info.copied_tokenizer ? ", tokenizer copied" : "");
    if (!info.copied_tokenizer)
        printf("note: %s has no tokenizer.json; the new folder holds the weights and config.json only\n", model);
    rc = 0;
done:
    config_free(&cfg);
    return rc;
}
