/* cmd_logits.c — `posttrain logits --model DIR --ids 1,2,3 --out FILE.safetensors`: one forward
 * pass over a token sequence, writing logits (T, V) and the log-probability of each next token
 * (T) — a direct way to compare a model folder with another implementation
 * (tests/ref/check_posttrain_checkpoint.py does so with transformers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

static const config_key LOGITS_KEYS[] = {
    {"model", CONFIG_STRING, "null", "model folder (config.json + safetensors)"},
    {"ids", CONFIG_STRING, "null", "comma-separated token ids"},
    {"out", CONFIG_STRING, "null", "safetensors file to write: logits (T, V) f32, logp (T) f32"},
};

static int parse_ids(int **ids, int *n, const char *text) {
    int cap = 16;
    *ids = malloc(sizeof(int) * (size_t)cap);
    *n = 0;
    const char *p = text;
    while (*ids && *p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffff || (*end && *end != ',')) return -1;
        if (*n == cap) {
            int *g = realloc(*ids, sizeof(int) * (size_t)(cap *= 2));
            if (!g) return -1;
            *ids = g;
        }
        (*ids)[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return *ids && *n > 0 ? 0 : -1;
}

int cmd_logits(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(LOGITS_KEYS);
    config cfg;
    int rc = cli_parse(&cfg, &schema, 1, argc, argv, "Run one forward pass and write the logits.");
    if (rc) return rc < 0 ? 0 : rc;
    rc = 2;
    const char *dir = cli_require(&cfg, "logits", "model"), *ids_text = cli_require(&cfg, "logits", "ids");
    const char *out = cli_require(&cfg, "logits", "out");
    int *ids = NULL, *targets = NULL, T = 0;
    policy_model m;
    model_acts a;
    int have_model = 0, have_acts = 0;
    pt_error err = {0};
    if (!dir || !ids_text || !out) goto done;
    if (parse_ids(&ids, &T, ids_text) != 0) {
        fprintf(stderr, "posttrain logits: --ids must be comma-separated non-negative integers, got '%s'\n", ids_text);
        goto done;
    }
    model_load_info info;
    if (model_load(&m, dir, &info, &err) != PT_OK) {
        rc = cli_fail("logits", &err);
        goto done;
    }
    have_model = 1;
    if (info.nonfinite) fprintf(stderr, "posttrain logits: warning: NaN/Inf in %s\n", info.nonfinite_names);
    targets = malloc(sizeof(int) * (size_t)T);
    if (!targets) goto done;
    for (int t = 0; t < T; t++) targets[t] = t + 1 < T ? ids[t + 1] : -1;
    if (model_acts_init(&a, &m, 1, T, &err) != PT_OK) {
        rc = cli_fail("logits", &err);
        goto done;
    }
    have_acts = 1;
    model_batch b = {ids, targets, NULL, NULL, 1, T, 1.0f, false};
    if (model_forward(&m, &a, &b, &err) != PT_OK) {
        rc = cli_fail("logits", &err);
        goto done;
    }
    st_writer w;
    st_writer_init(&w);
    int64_t s_logits[2] = {T, m.cfg.vocab_size}, s_logp[1] = {T};
    pt_status st = st_writer_add(&w, "logits", PT_DTYPE_F32, 2, s_logits, a.logits, &err);
    if (st == PT_OK) st = st_writer_add(&w, "logp", PT_DTYPE_F32, 1, s_logp, a.logp, &err);
    if (st == PT_OK) st = st_writer_write(&w, out, &err);
    st_writer_free(&w);
    rc = st == PT_OK ? 0 : cli_fail("logits", &err);
done:
    if (have_acts) model_acts_free(&a);
    if (have_model) model_free(&m);
    free(ids);
    free(targets);
    config_free(&cfg);
    return rc;
}
