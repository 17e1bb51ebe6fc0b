/* test_config.c — the config contract: defaults, file and command-line sources in order, the
 * messages a user gets for every kind of mistake (positions worked out by hand from the test
 * texts), the saved JSON and its hash (checked against an FNV-1a written here from the published
 * definition and its reference vectors), help, and the abort on a key that is not in the schema. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tests/util/check.h"

static const config_key COMMON[] = {
    {"learning_rate", CONFIG_FLOAT, "3e-4", "Peak learning rate."},
    {"batch_size", CONFIG_INT, "8", "Prompts per step."},
    {"seed", CONFIG_INT, "42", "Run seed."},
    {"scheduler", CONFIG_STRING, "\"cosine\"", "Learning-rate schedule: cosine, linear or constant."},
    {"output_dir", CONFIG_STRING, "null", "Where the run is written; null picks runs/<time>."},
};
static const config_key GRPO[] = {
    {"mask_truncated_completions", CONFIG_BOOL, "false", "Leave truncated completions out of the loss."},
    {"reward_weights", CONFIG_JSON, "null", "One weight per reward function."},
    {"rewards", CONFIG_JSON, "[\"accuracy\", \"format\"]", "Reward functions, in order."},
    {"max_steps", CONFIG_INT, "null", "Stop after this many steps; null runs every epoch."},
    {"beta", CONFIG_FLOAT, "0.04", "KL coefficient."},
};

static void init_cfg(config *cfg) {
    config_schema s[2] = {CONFIG_SCHEMA(COMMON), CONFIG_SCHEMA(GRPO)};
    pt_error err = {0};
    cr_assert_eq(config_init(cfg, s, 2, &err), PT_OK, "%s", err.msg);
}

/* Loads text as "run.json" into a fresh config, expecting failure; returns the message. */
static const char *load_fails(pt_error *err, const char *text) {
    config cfg;
    init_cfg(&cfg);
    pt_status st = config_load_string(&cfg, text, "run.json", err);
    config_free(&cfg);
    cr_assert_neq(st, PT_OK, "expected an error for:\n%s", text);
    cr_assert_eq(err->status, st);
    return err->msg;
}

static const char *args_fail(pt_error *err, int argc, char **argv) {
    config cfg;
    init_cfg(&cfg);
    pt_status st = config_apply_args(&cfg, argc, argv, err);
    config_free(&cfg);
    cr_assert_eq(st, PT_ERR_CONFIG, "expected PT_ERR_CONFIG for %s", argv[0]);
    return err->msg;
}

#define ASSERT_HAS(msg, text) cr_assert(strstr((msg), (text)), "expected '%s' in:\n%s", (text), (msg))

/* FNV-1a 64 from its definition (offset basis 14695981039346656037, prime 1099511628211). */
static uint64_t ref_fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/pt_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(config, defaults_from_every_schema) {
    config cfg;
    init_cfg(&cfg);
    cr_assert_float_eq(config_float(&cfg, "learning_rate"), 3e-4, 1e-18);
    cr_assert_eq(config_int(&cfg, "batch_size"), 8);
    cr_assert_str_eq(config_string(&cfg, "scheduler"), "cosine");
    cr_assert_null(config_string(&cfg, "output_dir"));
    cr_assert(config_is_null(&cfg, "output_dir"));
    cr_assert(config_is_null(&cfg, "max_steps"));
    cr_assert_not(config_bool(&cfg, "mask_truncated_completions"));
    const cJSON *r = config_json(&cfg, "rewards");
    cr_assert(cJSON_IsArray(r) && cJSON_GetArraySize(r) == 2);
    cr_assert_str_eq(cJSON_GetArrayItem(r, 1)->valuestring, "format");
    cr_assert_not(config_is_set(&cfg, "seed"));
    cr_assert_str_eq(config_origin(&cfg, "seed"), "default");
    cr_assert(config_has(&cfg, "beta"));
    cr_assert_not(config_has(&cfg, "lerning_rate"));
    config_free(&cfg);
}

Test(config, file_overrides_defaults) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    const char *text = "{\n"
                       "  \"learning_rate\": 1e-5,\n"
                       "  \"batch_size\": 16,\n"
                       "  \"output_dir\": \"runs/a\",\n"
                       "  \"rewards\": [\"countdown\", {\"name\": \"len\", \"max\": 512}],\n"
                       "  \"max_steps\": 100,\n"
                       "  \"beta\": 0\n"
                       "}\n";
    cr_assert_eq(config_load_string(&cfg, text, "run.json", &err), PT_OK, "%s", err.msg);
    cr_assert_float_eq(config_float(&cfg, "learning_rate"), 1e-5, 1e-20);
    cr_assert_eq(config_int(&cfg, "batch_size"), 16);
    cr_assert_eq(config_int(&cfg, "seed"), 42, "untouched keys keep their default");
    cr_assert_str_eq(config_string(&cfg, "output_dir"), "runs/a");
    cr_assert_eq(config_int(&cfg, "max_steps"), 100);
    cr_assert_float_eq(config_float(&cfg, "beta"), 0.0, 0.0, "a float key takes an integer");
    const cJSON *r = config_json(&cfg, "rewards");
    cr_assert_eq(cJSON_GetArraySize(r), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(r, 0)->valuestring, "countdown");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(r, 1), "max")->valueint, 512);
    cr_assert(config_is_set(&cfg, "batch_size"));
    cr_assert_not(config_is_set(&cfg, "seed"));
    cr_assert_str_eq(config_origin(&cfg, "batch_size"), "run.json:3");
    cr_assert_str_eq(config_origin(&cfg, "rewards"), "run.json:5");
    config_free(&cfg);
}

Test(config, load_file_and_unreadable_file) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    char *path = write_temp("{\"seed\": 7,\n\"scheduler\": \"linear\"}");
    cr_assert_eq(config_load_file(&cfg, path, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_int(&cfg, "seed"), 7);
    cr_assert_str_eq(config_string(&cfg, "scheduler"), "linear");
    char where[256];
    snprintf(where, sizeof where, "%s:2", path);
    cr_assert_str_eq(config_origin(&cfg, "scheduler"), where);
    unlink(path);
    cr_assert_eq(config_load_file(&cfg, path, &err), PT_ERR_IO);
    ASSERT_HAS(err.msg, path);
    ASSERT_HAS(err.msg, "No such file");
    cr_assert_eq(config_load_file(&cfg, "/tmp", &err), PT_ERR_IO, "a directory: %s", err.msg);
    free(path);
    char *bad = write_temp("{\"seed\": 7,\n  \"scheduler\": \"x\"}");
    FILE *f = fopen(bad, "r+b");
    fseek(f, 14, SEEK_SET); /* the byte after "  " on line 2 */
    fputc('\0', f);
    fclose(f);
    cr_assert_eq(config_load_file(&cfg, bad, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, ":2:3: the file contains a NUL byte");
    unlink(bad);
    free(bad);
    config_free(&cfg);
}

Test(config, command_line_overrides_file) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    cr_assert_eq(config_load_string(&cfg, "{\"batch_size\": 16, \"seed\": 1, \"beta\": 0.1}", "run.json", &err), PT_OK);
    char *argv[] = {"--batch-size", "32", "--learning_rate=2e-6", "--learning-rate", "5e-6", "--beta=-0.5",
                    "--seed",       "-3", "--scheduler",          "constant"};
    cr_assert_eq(config_apply_args(&cfg, 10, argv, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_int(&cfg, "batch_size"), 32);
    cr_assert_float_eq(config_float(&cfg, "learning_rate"), 5e-6, 1e-21, "the later repetition wins");
    cr_assert_float_eq(config_float(&cfg, "beta"), -0.5, 0.0);
    cr_assert_eq(config_int(&cfg, "seed"), -3, "a negative value after its key");
    cr_assert_str_eq(config_string(&cfg, "scheduler"), "constant");
    cr_assert_str_eq(config_origin(&cfg, "batch_size"), "--batch-size");
    cr_assert_str_eq(config_origin(&cfg, "learning_rate"), "--learning-rate");
    /* a file loaded later wins over earlier arguments */
    cr_assert_eq(config_load_string(&cfg, "{\"batch_size\": 4}", "late.json", &err), PT_OK);
    cr_assert_eq(config_int(&cfg, "batch_size"), 4);
    config_free(&cfg);
}

Test(config, load_cli_reads_config_option_first) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    char *path = write_temp("{\"batch_size\": 16, \"seed\": 5}");
    char opt[300];
    snprintf(opt, sizeof opt, "--config=%s", path);
    char *argv[] = {"--batch-size", "64", opt};
    cr_assert_eq(config_load_cli(&cfg, 3, argv, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_int(&cfg, "batch_size"), 64, "arguments win even when given before --config");
    cr_assert_eq(config_int(&cfg, "seed"), 5);
    char *twice[] = {"--config", path, opt};
    cr_assert_eq(config_load_cli(&cfg, 3, twice, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "--config given twice");
    char *missing[] = {"--config"};
    cr_assert_eq(config_load_cli(&cfg, 1, missing, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "--config: missing file name");
    unlink(path);
    free(path);
    config_free(&cfg);
}

Test(config, bool_flags) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    char *on[] = {"--mask-truncated-completions", "--seed", "1"};
    cr_assert_eq(config_apply_args(&cfg, 3, on, &err), PT_OK, "%s", err.msg);
    cr_assert(config_bool(&cfg, "mask_truncated_completions"));
    cr_assert_eq(config_int(&cfg, "seed"), 1);
    char *off[] = {"--no-mask-truncated-completions"};
    cr_assert_eq(config_apply_args(&cfg, 1, off, &err), PT_OK, "%s", err.msg);
    cr_assert_not(config_bool(&cfg, "mask_truncated_completions"));
    char *word[] = {"--mask_truncated_completions", "true"};
    cr_assert_eq(config_apply_args(&cfg, 2, word, &err), PT_OK, "%s", err.msg);
    cr_assert(config_bool(&cfg, "mask_truncated_completions"));
    char *eq[] = {"--mask-truncated-completions=false"};
    cr_assert_eq(config_apply_args(&cfg, 1, eq, &err), PT_OK, "%s", err.msg);
    cr_assert_not(config_bool(&cfg, "mask_truncated_completions"));
    char *last[] = {"--mask-truncated-completions"};
    cr_assert_eq(config_apply_args(&cfg, 1, last, &err), PT_OK, "%s", err.msg);
    cr_assert(config_bool(&cfg, "mask_truncated_completions"), "a flag at the very end");
    cr_assert_eq(config_load_string(&cfg, "{\"mask_truncated_completions\": false}", "run.json", &err), PT_OK);
    cr_assert_not(config_bool(&cfg, "mask_truncated_completions"));

    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--mask-truncated-completions=maybe"}),
               "key 'mask_truncated_completions' expects a boolean (true or false), got 'maybe'");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--no-batch-size"}),
               "--no-batch-size: only boolean keys have a --no- form; 'batch_size' expects an integer");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--no-mask-truncated-completions=true"}), "takes no value");
    config_free(&cfg);
}

Test(config, nullable_keys) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    char *set[] = {"--output-dir", "runs/x", "--max-steps", "10"};
    cr_assert_eq(config_apply_args(&cfg, 4, set, &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(config_string(&cfg, "output_dir"), "runs/x");
    cr_assert_eq(config_int(&cfg, "max_steps"), 10);
    char *unset[] = {"--output-dir", "null", "--max-steps=null"};
    cr_assert_eq(config_apply_args(&cfg, 3, unset, &err), PT_OK, "%s", err.msg);
    cr_assert_null(config_string(&cfg, "output_dir"));
    cr_assert(config_is_null(&cfg, "max_steps"));
    cr_assert(config_is_set(&cfg, "max_steps"), "explicitly null is still set");
    cr_assert_eq(config_load_string(&cfg, "{\"output_dir\": \"o\", \"max_steps\": null}", "run.json", &err), PT_OK);
    cr_assert_str_eq(config_string(&cfg, "output_dir"), "o");
    cr_assert(config_is_null(&cfg, "max_steps"));
    /* null is only for keys whose default is null */
    ASSERT_HAS(load_fails(&err, "{\"scheduler\": null}"), "run.json:1: key 'scheduler' expects a string, got null");
    ASSERT_HAS(load_fails(&err, "{\"seed\": null}"), "key 'seed' expects an integer, got null");
    ASSERT_HAS(load_fails(&err, "{\"max_steps\": \"10\"}"), "key 'max_steps' expects an integer or null, got string \"10\"");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--seed", "null"}), "key 'seed' expects an integer, got 'null'");
    config_free(&cfg);
}

Test(config, json_values_from_file_and_command_line) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    char *argv[] = {"--reward-weights", "[1.0, 0.5]", "--rewards", "[\"countdown\", {\"name\": \"len\"}]"};
    cr_assert_eq(config_apply_args(&cfg, 4, argv, &err), PT_OK, "%s", err.msg);
    const cJSON *w = config_json(&cfg, "reward_weights");
    cr_assert_eq(cJSON_GetArraySize(w), 2);
    cr_assert_float_eq(cJSON_GetArrayItem(w, 1)->valuedouble, 0.5, 0.0);
    const cJSON *r = config_json(&cfg, "rewards");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(r, 1), "name")->valuestring, "len");
    const char *msg = args_fail(&err, 2, (char *[]){"--rewards", "[\"a\",]"});
    ASSERT_HAS(msg, "--rewards: invalid JSON at column 5");
    ASSERT_HAS(msg, "trailing ','");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--rewards", "accuracy"}), "--rewards '\"accuracy\"'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--rewards", "[{\"a\": 1, \"a\": 2}]"}), "duplicate key 'a' inside 'rewards'");
    config_free(&cfg);
}

Test(config, unknown_key_suggests_the_closest) {
    pt_error err = {0};
    const char *msg = load_fails(&err, "{\n  \"seed\": 1,\n  \"batch_size\": 2,\n  \"lerning_rate\": 1e-5\n}");
    cr_assert_eq(err.status, PT_ERR_CONFIG);
    ASSERT_HAS(msg, "unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
    ASSERT_HAS(msg, "run.json:4: ");
    msg = load_fails(&err, "{\"learning-rate\": 1}");
    ASSERT_HAS(msg, "unknown key 'learning-rate' (did you mean 'learning_rate'?)");
    msg = load_fails(&err, "{\"temperature\": 1}");
    ASSERT_HAS(msg, "unknown key 'temperature'");
    cr_assert_null(strstr(msg, "did you mean"), "no suggestion for a key nothing like it: %s", msg);

    msg = args_fail(&err, 2, (char *[]){"--lerning-rate", "1e-5"});
    ASSERT_HAS(msg, "--lerning-rate: unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
    ASSERT_HAS(msg, "--learning-rate");
    msg = args_fail(&err, 1, (char *[]){"--mask-truncated-completion"});
    ASSERT_HAS(msg, "did you mean 'mask_truncated_completions'?");
    msg = args_fail(&err, 2, (char *[]){"--sede", "1"});
    ASSERT_HAS(msg, "did you mean 'seed'?");
}

Test(config, type_errors_name_key_type_and_value) {
    pt_error err = {0};
    ASSERT_HAS(load_fails(&err, "{\n\"seed\": 1,\n\"batch_size\": \"32\"}"),
               "run.json:3: key 'batch_size' expects an integer, got string \"32\"");
    cr_assert_eq(err.status, PT_ERR_CONFIG);
    ASSERT_HAS(load_fails(&err, "{\"batch_size\": 2.5}"), "run.json:1: key 'batch_size' expects an integer, got number 2.5");
    ASSERT_HAS(load_fails(&err, "{\"mask_truncated_completions\": \"yes\"}"),
               "key 'mask_truncated_completions' expects a boolean (true or false), got string \"yes\"");
    ASSERT_HAS(load_fails(&err, "{\"mask_truncated_completions\": 1}"), "expects a boolean (true or false), got number 1");
    ASSERT_HAS(load_fails(&err, "{\"scheduler\": [\"cosine\"]}"), "key 'scheduler' expects a string, got array [\"cosine\"]");
    ASSERT_HAS(load_fails(&err, "{\"learning_rate\": \"3e-4\"}"), "key 'learning_rate' expects a number, got string \"3e-4\"");
    ASSERT_HAS(load_fails(&err, "{\"learning_rate\": 1e999}"), "key 'learning_rate' expects a number, got number 1e999");
    ASSERT_HAS(load_fails(&err, "{\"seed\": 9223372036854775808}"), "outside the 64-bit integer range");
    ASSERT_HAS(load_fails(&err, "{\"seed\": -1e19}"), "outside the 64-bit integer range");

    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--batch-size", "2.5"}), "--batch-size: key 'batch_size' expects an integer, got '2.5'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--batch-size", "32x"}), "expects an integer, got '32x'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--learning-rate", "fast"}), "expects a number, got 'fast'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--learning-rate", "inf"}), "expects a number, got 'inf'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--learning-rate", "nan"}), "expects a number, got 'nan'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--seed", "99999999999999999999"}), "outside the 64-bit integer range");

    /* integers stay exact beyond 2^53, and integral number forms are accepted */
    config cfg;
    init_cfg(&cfg);
    cr_assert_eq(config_load_string(&cfg, "{\"seed\": 9007199254740993, \"batch_size\": 1e3}", "run.json", &err), PT_OK,
                 "%s", err.msg);
    cr_assert_eq(config_int(&cfg, "seed"), 9007199254740993LL);
    cr_assert_eq(config_int(&cfg, "batch_size"), 1000);
    char *argv[] = {"--seed", "-9223372036854775808", "--max-steps", "2e2"};
    cr_assert_eq(config_apply_args(&cfg, 4, argv, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_int(&cfg, "seed"), INT64_MIN);
    cr_assert_eq(config_int(&cfg, "max_steps"), 200);
    config_free(&cfg);
}

Test(config, bad_json_points_at_line_and_column) {
    pt_error err = {0};
    /* line 3 is `  "batch_size": 2`: the value ends at column 17, the ',' belongs at 18 */
    const char *msg = load_fails(&err, "{\n  \"learning_rate\": 1e-5,\n  \"batch_size\": 2\n  \"seed\": 3\n}\n");
    cr_assert_eq(err.status, PT_ERR_CONFIG);
    ASSERT_HAS(msg, "run.json:3:18: invalid JSON near '\"batch_size\": 2'");
    ASSERT_HAS(msg, "missing ','");
    /* trailing comma: the ',' is column 17 of `{"batch_size": 1,}` */
    msg = load_fails(&err, "{\"batch_size\": 1,}");
    ASSERT_HAS(msg, "run.json:1:17: invalid JSON near '{\"batch_size\": 1,}'");
    ASSERT_HAS(msg, "trailing ','");
    /* trailing comma inside a list on line 3: `  "rewards": ["a", "b",],` has it at column 23 */
    msg = load_fails(&err, "{\n  \"seed\": 1,\n  \"rewards\": [\"a\", \"b\",],\n  \"beta\": 0\n}");
    ASSERT_HAS(msg, "run.json:3:23:");
    ASSERT_HAS(msg, "trailing ','");
    /* unterminated string: its opening quote is column 16 of line 2 */
    msg = load_fails(&err, "{\n  \"scheduler\": \"cosine,\n  \"seed\": 2\n}");
    ASSERT_HAS(msg, "run.json:2:16:");
    ASSERT_HAS(msg, "unterminated string");
    msg = load_fails(&err, "{\"scheduler\": \"cos");
    ASSERT_HAS(msg, "run.json:1:15:");
    ASSERT_HAS(msg, "unterminated string");
    /* columns count characters, not bytes: "é" is one column */
    msg = load_fails(&err, "{\"scheduler\": \"é\" \"x\"}");
    ASSERT_HAS(msg, "run.json:1:18:");
    /* empty and blank files */
    ASSERT_HAS(load_fails(&err, ""), "run.json:1:1: invalid JSON: the file is empty");
    ASSERT_HAS(load_fails(&err, " \n\t\n"), "run.json:1:1: invalid JSON: the file is empty");
    /* an unclosed object, reported at the end with where it opened */
    msg = load_fails(&err, "{\n  \"seed\": 1\n");
    ASSERT_HAS(msg, "run.json:3:1:");
    ASSERT_HAS(msg, "'{' opened at 1:1 is never closed");
    /* missing ':' after a key; a bare word; an unquoted key; an invalid escape */
    ASSERT_HAS(load_fails(&err, "{\"seed\" 1}"), "run.json:1:8: invalid JSON near '{\"seed\" 1}': missing ':'");
    ASSERT_HAS(load_fails(&err, "{\"seed\": tru}"), "run.json:1:10:");
    ASSERT_HAS(load_fails(&err, "{\n seed: 1}"), "run.json:2:2:");
    ASSERT_HAS(load_fails(&err, "{\"scheduler\": \"a\\qb\"}"), "run.json:1:17:");
    ASSERT_HAS(load_fails(&err, "{\"seed\": 1} {}"), "run.json:1:13:");
}

Test(config, rejects_duplicates_non_objects_and_bad_utf8) {
    pt_error err = {0};
    const char *msg = load_fails(&err, "{\n  \"seed\": 1,\n  \"beta\": 0.1,\n  \"seed\": 2\n}");
    ASSERT_HAS(msg, "run.json:4: duplicate key 'seed' (already set on line 2");
    msg = load_fails(&err, "{\n  \"rewards\": [{\"name\": \"a\", \"name\": \"b\"}]\n}");
    ASSERT_HAS(msg, "run.json:2: duplicate key 'name' inside 'rewards'");
    ASSERT_HAS(load_fails(&err, "[1, 2]"), "run.json: the top level must be a JSON object");
    ASSERT_HAS(load_fails(&err, "\"seed\""), "got string \"seed\"");
    ASSERT_HAS(load_fails(&err, "{\n\"scheduler\": \"a\xff\"}"), "run.json:2:16: not valid UTF-8 (byte 0xff)");
    ASSERT_HAS(load_fails(&err, "{\"scheduler\": \"\xc0\xaf\"}"), "not valid UTF-8"); /* overlong '/' */
    ASSERT_HAS(load_fails(&err, "{\"scheduler\": \"\xed\xa0\x80\"}"), "not valid UTF-8"); /* a surrogate */
}

/* Random edits of a valid file: every result is a load or a PT_ERR_CONFIG naming the file, and
 * a reported line:column lies inside the text (never a crash, never the scanner disagreeing
 * with cJSON, which would be PT_ERR_INTERNAL). */
Test(config, hostile_edits_get_positioned_errors) {
    static const char base[] = "{\n  \"learning_rate\": 1e-5,\n  \"batch_size\": 16,\n  \"scheduler\": \"lin\\u00e9ar\",\n"
                               "  \"output_dir\": null,\n  \"mask_truncated_completions\": true,\n"
                               "  \"rewards\": [\"a\", {\"b\": [1, 2.5, -3e2]}]\n}\n";
    static const char alphabet[] = "{}[]:,\"\\ \n\t01-.eEtrfalsnu\xc3\xa9\xff";
    test_rng rng;
    test_rng_seed(&rng, 7);
    int loaded = 0;
    for (int it = 0; it < 3000; it++) {
        char buf[512];
        size_t n = sizeof base - 1;
        memcpy(buf, base, n + 1);
        for (int m = 0, muts = 1 + (int)(test_rng_uniform(&rng) * 3); m < muts; m++) {
            size_t pos = (size_t)(test_rng_uniform(&rng) * (double)n);
            char c = alphabet[(size_t)(test_rng_uniform(&rng) * (double)(sizeof alphabet - 1))];
            double op = test_rng_uniform(&rng);
            if (op < 0.33) {
                memmove(buf + pos, buf + pos + 1, n - pos); /* delete */
                n--;
            } else if (op < 0.66) {
                memmove(buf + pos + 1, buf + pos, n - pos + 1); /* insert */
                buf[pos] = c;
                n++;
            } else {
                buf[pos] = c; /* replace */
            }
        }
        config cfg;
        init_cfg(&cfg);
        pt_error err = {0};
        pt_status st = config_load_string(&cfg, buf, "run.json", &err);
        config_free(&cfg);
        if (st == PT_OK) {
            loaded++;
            continue;
        }
        cr_assert_eq(st, PT_ERR_CONFIG, "%s\n---\n%s", err.msg, buf);
        cr_assert_eq(strncmp(err.msg, "run.json:", 9), 0, "%s", err.msg);
        int line = 0, col = 0, lines = 1;
        for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
        if (sscanf(err.msg, "run.json:%d:%d:", &line, &col) == 2)
            cr_assert(line >= 1 && line <= lines && col >= 1, "%s\n---\n%s", err.msg, buf);
    }
    cr_assert_gt(loaded, 0, "some edits (inside strings, whitespace) leave a valid file");
}

Test(config, failed_load_changes_nothing) {
    config cfg;
    init_cfg(&cfg);
    pt_error err = {0};
    cr_assert_eq(config_load_string(&cfg, "{\"seed\": 1, \"batch_size\": 2}", "a.json", &err), PT_OK);
    cr_assert_eq(config_load_string(&cfg, "{\"seed\": 5, \"batch_size\": \"x\"}", "b.json", &err), PT_ERR_CONFIG);
    cr_assert_eq(config_int(&cfg, "seed"), 1, "the valid key before the bad one must not apply");
    char *argv[] = {"--seed", "9", "--beta", "x"};
    cr_assert_eq(config_apply_args(&cfg, 4, argv, &err), PT_ERR_CONFIG);
    cr_assert_eq(config_int(&cfg, "seed"), 1);
    cr_assert_str_eq(config_origin(&cfg, "seed"), "a.json:1");
    config_free(&cfg);
}

Test(config, malformed_arguments_are_named) {
    pt_error err = {0};
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"1"}), "unexpected argument '1'");
    ASSERT_HAS(args_fail(&err, 3, (char *[]){"--seed", "1", "extra"}), "unexpected argument 'extra'");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"-s"}), "'-s': options take two dashes");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--"}), "malformed option '--'");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--=3"}), "malformed option '--=3'");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"---seed"}), "malformed option '---seed'");
    ASSERT_HAS(args_fail(&err, 1, (char *[]){"--seed"}), "--seed: missing value (expects an integer)");
    ASSERT_HAS(args_fail(&err, 3, (char *[]){"--seed", "--beta", "1"}), "--seed: missing value before '--beta'");
    ASSERT_HAS(args_fail(&err, 2, (char *[]){"--scheduler", "a\xff"}), "--scheduler: the value is not valid UTF-8");
}

Test(config, to_json_round_trips_with_the_same_hash) {
    config a, b;
    init_cfg(&a);
    init_cfg(&b);
    pt_error err = {0};
    char *argv[] = {"--seed",   "9007199254740993", "--learning-rate", "0.1", "--rewards", "[\"x\", {\"k\": [1, 2.5]}]",
                    "--output-dir", "runs/é \"q\"", "--mask-truncated-completions", "--beta", "1e-300"};
    cr_assert_eq(config_apply_args(&a, 11, argv, &err), PT_OK, "%s", err.msg);
    char *json = NULL;
    uint64_t ha = 0, hb = 0;
    cr_assert_eq(config_to_json(&json, &ha, &a, &err), PT_OK);
    cr_assert(strstr(json, "9007199254740993"), "integers are printed exactly:\n%s", json);
    cr_assert_eq(config_load_string(&b, json, "saved.json", &err), PT_OK, "%s\n%s", err.msg, json);
    cr_assert_eq(config_to_json(NULL, &hb, &b, &err), PT_OK);
    cr_assert_eq(ha, hb, "the reloaded config hashes the same");
    cr_assert_eq(config_int(&b, "seed"), 9007199254740993LL);
    cr_assert_eq(config_float(&b, "learning_rate"), 0.1, "doubles print exactly");
    cr_assert_eq(config_float(&b, "beta"), 1e-300);
    cr_assert_str_eq(config_string(&b, "output_dir"), "runs/é \"q\"");
    cr_assert(config_bool(&b, "mask_truncated_completions"));
    cr_assert(config_is_null(&b, "max_steps"));
    cr_assert_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(config_json(&b, "rewards"), 1), "k"), 1)->valuedouble, 2.5);
    /* every key is written, in schema order */
    const char *order[] = {"learning_rate", "batch_size", "seed", "scheduler", "output_dir",
                           "mask_truncated_completions", "reward_weights", "rewards", "max_steps", "beta"};
    const char *at = json;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", order[i]);
        const char *p = strstr(at, quoted);
        cr_assert(p, "'%s' missing or out of order in\n%s", order[i], json);
        at = p;
    }
    free(json);
    /* the hash follows the values, not where they came from */
    char *other[] = {"--beta", "0.5"};
    cr_assert_eq(config_apply_args(&b, 2, other, &err), PT_OK);
    cr_assert_eq(config_to_json(NULL, &hb, &b, &err), PT_OK);
    cr_assert_neq(ha, hb, "a different value must change the hash");
    config_free(&a);
    config_free(&b);
}

Test(config, hash_is_fnv1a_of_the_canonical_text) {
    /* reference vectors of FNV-1a 64 (the published test suite) check the helper above */
    cr_assert_eq(ref_fnv1a64(""), 0xcbf29ce484222325ull);
    cr_assert_eq(ref_fnv1a64("a"), 0xaf63dc4c8601ec8cull);
    cr_assert_eq(ref_fnv1a64("foobar"), 0x85944171f73967e8ull);
    static const config_key small[] = {
        {"steps", CONFIG_INT, "3", ""},
        {"name", CONFIG_STRING, "\"a b\"", ""},
        {"on", CONFIG_BOOL, "true", ""},
        {"list", CONFIG_JSON, "[1, {\"x\": null}]", ""},
    };
    config cfg;
    config_schema s = CONFIG_SCHEMA(small);
    pt_error err = {0};
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_OK, "%s", err.msg);
    uint64_t h;
    cr_assert_eq(config_to_json(NULL, &h, &cfg, &err), PT_OK);
    cr_assert_eq(h, ref_fnv1a64("{\"steps\":3,\"name\":\"a b\",\"on\":true,\"list\":[1,{\"x\":null}]}"));
    config_free(&cfg);
}

/* A run's checkpoint hash: the canonical text without the skipped keys, and without the
 * skipped-at-default keys while they hold their default (given explicitly or not). */
Test(config, hash_except_leaves_out_keys) {
    static const config_key small[] = {
        {"steps", CONFIG_INT, "3", ""},
        {"out", CONFIG_STRING, "\"runs/x\"", ""},
        {"moments", CONFIG_STRING, "\"fp32\"", ""},
        {"lr", CONFIG_FLOAT, "0.5", ""},
    };
    const char *skip[] = {"out"}, *at_default[] = {"moments"};
    config cfg;
    config_schema s = CONFIG_SCHEMA(small);
    pt_error err = {0};
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_OK, "%s", err.msg);
    uint64_t h;
    cr_assert_eq(config_hash_except(&h, &cfg, skip, 1, at_default, 1, &err), PT_OK);
    cr_assert_eq(h, ref_fnv1a64("{\"steps\":3,\"lr\":0.5}"));
    char *same[] = {"--moments", "fp32", "--out", "elsewhere"};
    cr_assert_eq(config_apply_args(&cfg, 4, same, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_hash_except(&h, &cfg, skip, 1, at_default, 1, &err), PT_OK);
    cr_assert_eq(h, ref_fnv1a64("{\"steps\":3,\"lr\":0.5}"));
    char *other[] = {"--moments", "bf16", "--steps", "800"};
    cr_assert_eq(config_apply_args(&cfg, 4, other, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_hash_except(&h, &cfg, skip, 1, at_default, 1, &err), PT_OK);
    cr_assert_eq(h, ref_fnv1a64("{\"steps\":800,\"moments\":\"bf16\",\"lr\":0.5}"));
    config_free(&cfg);
}

Test(config, help_lists_every_key) {
    config_schema s[2] = {CONFIG_SCHEMA(COMMON), CONFIG_SCHEMA(GRPO)};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    config_print_help(out, s, 2);
    fclose(out);
    ASSERT_HAS(buf, "--learning-rate FLOAT (default: 3e-4)");
    ASSERT_HAS(buf, "--batch-size INT (default: 8)");
    ASSERT_HAS(buf, "--output-dir STRING or null (default: null)");
    ASSERT_HAS(buf, "--[no-]mask-truncated-completions (default: false)");
    ASSERT_HAS(buf, "--rewards JSON (default: [\"accuracy\", \"format\"])");
    ASSERT_HAS(buf, "--max-steps INT or null (default: null)");
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < s[k].count; i++) {
            char opt[80];
            snprintf(opt, sizeof opt, "%s", s[k].keys[i].key);
            for (char *p = opt; *p; p++)
                if (*p == '_') *p = '-';
            ASSERT_HAS(buf, opt);
            /* help text is wrapped: compare its first three words */
            char words[80];
            snprintf(words, sizeof words, "%s", s[k].keys[i].help);
            char *cut = words;
            for (int w = 0; w < 3 && cut; w++) cut = strchr(cut + 1, ' ');
            if (cut) *cut = '\0';
            ASSERT_HAS(buf, words);
        }
    free(buf);
}

Test(config, broken_schemas_are_internal_errors) {
    pt_error err = {0};
    config cfg;
    static const config_key bad_default[] = {{"steps", CONFIG_INT, "2.5", ""}};
    static const config_key bad_json[] = {{"steps", CONFIG_INT, "[", ""}};
    static const config_key bad_name[] = {{"Learning-Rate", CONFIG_FLOAT, "1", ""}};
    static const config_key wrong_type[] = {{"name", CONFIG_STRING, "3", ""}};
    config_schema s = CONFIG_SCHEMA(bad_default);
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_ERR_INTERNAL);
    ASSERT_HAS(err.msg, "'steps'");
    s = CONFIG_SCHEMA(bad_json);
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_ERR_INTERNAL);
    ASSERT_HAS(err.msg, "not valid JSON");
    s = CONFIG_SCHEMA(bad_name);
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_ERR_INTERNAL);
    ASSERT_HAS(err.msg, "'Learning-Rate'");
    s = CONFIG_SCHEMA(wrong_type);
    cr_assert_eq(config_init(&cfg, &s, 1, &err), PT_ERR_INTERNAL);
    config_schema twice[2] = {CONFIG_SCHEMA(COMMON), CONFIG_SCHEMA(COMMON)};
    cr_assert_eq(config_init(&cfg, twice, 2, &err), PT_ERR_INTERNAL);
    ASSERT_HAS(err.msg, "declared twice");
}

Test(config, unknown_key_in_getter_aborts, .signal = SIGABRT) {
    config cfg;
    init_cfg(&cfg);
    (void)config_int(&cfg, "lerning_rate");
}

Test(config, wrong_getter_type_aborts, .signal = SIGABRT) {
    config cfg;
    init_cfg(&cfg);
    (void)config_int(&cfg, "learning_rate");
}

Test(config, null_int_aborts, .signal = SIGABRT) {
    config cfg;
    init_cfg(&cfg);
    (void)config_int(&cfg, "max_steps");
}

/* ---- the checked getters: range errors name the key, where it came from, the bound and the value */

/* A fresh config with `text` loaded as "run.json" and then argv applied. */
static void load_cfg(config *cfg, const char *text, int argc, char **argv) {
    init_cfg(cfg);
    pt_error err = {0};
    if (text) cr_assert_eq(config_load_string(cfg, text, "run.json", &err), PT_OK, "%s", err.msg);
    if (argc) cr_assert_eq(config_apply_args(cfg, argc, argv, &err), PT_OK, "%s", err.msg);
}

Test(config, int_in_checks_both_bounds_inclusive) {
    config cfg;
    load_cfg(&cfg, "{\n  \"seed\": 1,\n  \"batch_size\": 9\n}", 0, NULL);
    pt_error err = {0};
    int64_t v = -7;
    cr_assert_eq(config_int_in(&v, &cfg, "batch_size", 1, 8, &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'batch_size' (from run.json:3): must be in 1..8, got 9");
    cr_assert_eq(v, -7, "*out is left alone on error");
    cr_assert_eq(config_int_in(&v, &cfg, "batch_size", 9, 9, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(v, 9);
    cr_assert_eq(config_int_in(&v, &cfg, "seed", 1, 8, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(v, 1);
    error_clear(&err);
    cr_assert_eq(config_int_in(&v, &cfg, "seed", 2, 8, &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'seed' (from run.json:2): must be in 2..8, got 1");
    config_free(&cfg);
}

Test(config, float_in_closed_and_half_open) {
    config cfg;
    char *argv[] = {"--beta", "1"};
    load_cfg(&cfg, NULL, 2, argv);
    pt_error err = {0};
    double d = -1;
    cr_assert_eq(config_float_in(&d, &cfg, "beta", 0, 1, false, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(d, 1.0);
    d = -1;
    cr_assert_eq(config_float_in(&d, &cfg, "beta", 0, 1, true, &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'beta' (from --beta): must be in [0, 1), got 1");
    cr_assert_eq(d, -1.0);
    error_clear(&err);
    cr_assert_eq(config_float_in(&d, &cfg, "beta", 1.5, 2, false, &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'beta' (from --beta): must be in [1.5, 2], got 1");
    error_clear(&err);
    cr_assert_eq(config_float_in(&d, &cfg, "learning_rate", 0, 1e-4, false, &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'learning_rate' (from default): must be in [0, 0.0001], got 0.0003");
    config_free(&cfg);
}

Test(config, required_rejects_null_and_empty) {
    config cfg;
    load_cfg(&cfg, "{\"scheduler\": \"\"}", 0, NULL);
    pt_error err = {0};
    const char *s = "untouched";
    cr_assert_eq(config_required(&s, &cfg, "output_dir", &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "--output_dir is required (or \"output_dir\" in the config file)");
    cr_assert_str_eq(s, "untouched");
    error_clear(&err);
    cr_assert_eq(config_required(&s, &cfg, "scheduler", &err), PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "--scheduler is required (or \"scheduler\" in the config file)");
    config_free(&cfg);
    char *argv[] = {"--output-dir", "runs/a"};
    load_cfg(&cfg, NULL, 2, argv);
    cr_assert_eq(config_required(&s, &cfg, "output_dir", &err), PT_OK, "%s", err.msg);
    cr_assert_str_eq(s, "runs/a");
    config_free(&cfg);
}

Test(config, bad_key_and_keyed_name_the_origin) {
    config cfg;
    load_cfg(&cfg, "{\n\n  \"scheduler\": \"cosine\"\n}", 0, NULL);
    pt_error err = {0};
    cr_assert_eq(config_bad_key(&err, &cfg, "scheduler", "expects %s, got '%s'", "linear", "cosine"), PT_ERR_CONFIG);
    cr_assert_eq(err.status, PT_ERR_CONFIG);
    cr_assert_str_eq(err.msg, "key 'scheduler' (from run.json:3): expects linear, got 'cosine'");
    error_clear(&err);
    cr_assert_eq(config_keyed(PT_OK, &err, &cfg, "scheduler"), PT_OK);
    cr_assert_eq(err.msg[0], '\0', "an OK status leaves err alone");
    pt_status st = error_set(&err, PT_ERR_INVALID, __FILE__, __LINE__, "unknown schedule 'x'");
    cr_assert_eq(config_keyed(st, &err, &cfg, "scheduler"), PT_ERR_INVALID);
    cr_assert_str_eq(err.msg, "key 'scheduler' (from run.json:3): unknown schedule 'x'");
    config_free(&cfg);
}
