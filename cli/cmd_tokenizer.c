/* cmd_tokenizer.c — `posttrain tokenizer train|encode|decode`: train a byte-level BPE tokenizer
 * (model/bpe_train.h: the same merges as `tokenizers`' BpeTrainer) into a folder with
 * tokenizer.json and tokenizer_config.json; encode a text to ids; decode ids to text. Encode
 * prints the ids comma-separated, which is what decode's --ids takes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/bpe_train.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

#define BOS "<｜begin▁of▁sentence｜>"
#define EOS "<｜end▁of▁sentence｜>"
#define PAD "<｜▁pad▁｜>"

static const config_key TRAIN_KEYS[] = {
    {"data", CONFIG_JSON, "null",
     "training files: `--data a.txt b.jsonl ...` (several after one --data), or a list in the config file; "
     "*.jsonl files give their \"text\" field per line, other files one text per line"},
    {"vocab_size", CONFIG_INT, "32000", "ids in the vocabulary, special tokens and the 256 byte characters included"},
    {"out", CONFIG_STRING, "null", "folder to write tokenizer.json and tokenizer_config.json into (created when missing)"},
    {"min_frequency", CONFIG_INT, "0", "stop merging when no pair occurs this often (0: merge while any pair occurs)"},
    {"pre_tokenizer", CONFIG_STRING, "\"deepseek-v3\"", "pre-tokenizer regexes: deepseek-v3, digits (deepseek-v3 with one digit per pre-token: numbers become digit sequences) or gpt2"},
    {"special_tokens", CONFIG_JSON, "[\"" BOS "\", \"" EOS "\", \"" PAD "\", \"<｜User｜>\", \"<｜Assistant｜>\"]",
     "special tokens, ids 0, 1, ... in this order (DeepSeek-V3's by default)"},
    {"bos_token", CONFIG_STRING, "\"" BOS "\"", "beginning-of-sequence token (one of the special tokens, or null)"},
    {"eos_token", CONFIG_STRING, "\"" EOS "\"", "end-of-sequence token (one of the special tokens, or null)"},
    {"pad_token", CONFIG_STRING, "\"" PAD "\"", "padding token (one of the special tokens, or null)"},
    {"add_bos", CONFIG_BOOL, "true", "encoding with special tokens prepends bos_token"},
    {"chat_format", CONFIG_STRING, "\"deepseek-v3\"",
     "chat template recorded in tokenizer_config.json: deepseek-v3, deepseek-r1, plain, or null for none"},
};

static const config_key ENCODE_KEYS[] = {
    {"tokenizer", CONFIG_STRING, "null", "a tokenizer folder or tokenizer.json"},
    {"text", CONFIG_STRING, "null", "the text to encode"},
    {"add_special", CONFIG_BOOL, "false", "apply the post-processor (DeepSeek: prepend BOS)"},
    {"show_tokens", CONFIG_BOOL, "false", "also print each token's string, one per line"},
};

static const config_key DECODE_KEYS[] = {
    {"tokenizer", CONFIG_STRING, "null", "a tokenizer folder or tokenizer.json"},
    {"ids", CONFIG_STRING, "null", "token ids separated by commas or spaces (`1,2,3`), brackets allowed"},
    {"skip_special", CONFIG_BOOL, "false", "leave special tokens out of the text"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: posttrain tokenizer train --data FILE... --vocab-size N --out DIR\n"
                 "       posttrain tokenizer encode --tokenizer DIR --text TEXT\n"
                 "       posttrain tokenizer decode --tokenizer DIR --ids 1,2,3\n"
                 "(`posttrain tokenizer <action> --help` lists the keys)\n");
}

static bool wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

static int print_help(const char *line, const char *about, const config_key *keys, size_t n) {
    config_schema s = {keys, n};
    printf("usage: posttrain tokenizer %s\n\n%s\n\nkeys:\n", line, about);
    config_print_help(stdout, &s, 1);
    return 0;
}

static int load_options(config *cfg, const config_schema *schema, int argc, char **argv, const char *cmd) {
    pt_error err = {0};
    if (config_init(cfg, schema, 1, &err) != PT_OK) return cli_fail(cmd, &err);
    if (config_load_cli(cfg, argc, argv, &err) != PT_OK) {
        config_free(cfg);
        fprintf(stderr, "posttrain %s: %s\n(see `posttrain %s --help`)\n", cmd, err.msg, cmd);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------------- train */

/* A JSON list of strings (or one string) as a NULL-terminated array of borrowed pointers. */
static const char **string_list(const cJSON *j, size_t *n, const char *key, int *rc) {
    *n = 0;
    *rc = 0;
    if (!j || cJSON_IsNull(j)) return calloc(1, sizeof(char *));
    size_t count = cJSON_IsArray(j) ? (size_t)cJSON_GetArraySize(j) : 1;
    const char **v = calloc(count + 1, sizeof *v);
    if (!v) {
        *rc = 1;
        return NULL;
    }
    if (cJSON_IsString(j)) {
        v[(*n)++] = j->valuestring;
        return v;
    }
    if (cJSON_IsArray(j))
        for (const cJSON *it = j->child; it && cJSON_IsString(it); it = it->next) v[(*n)++] = it->valuestring;
    if (!cJSON_IsArray(j) || *n != count) {
        fprintf(stderr, "posttrain tokenizer train: %s must be a string or a list of strings\n", key);
        free(v);
        *rc = 2;
        return NULL;
    }
    return v;
}

static int tokenizer_train(int argc, char **argv) {
    if (wants_help(argc, argv))
        return print_help("train --data FILE... --vocab-size N --out DIR",
                          "Trains a byte-level BPE tokenizer (the merges `tokenizers`' BpeTrainer makes) and writes "
                          "tokenizer.json and tokenizer_config.json.",
                          TRAIN_KEYS, sizeof TRAIN_KEYS / sizeof TRAIN_KEYS[0]);
    /* `--data a b c`: every argument up to the next option is a file. */
    const char **files = calloc((size_t)argc + 1, sizeof *files);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!files || !rest) {
        free(files);
        free(rest);
        fprintf(stderr, "posttrain tokenizer train: out of memory\n");
        return 1;
    }
    size_t n_files = 0;
    int n_rest = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) files[n_files++] = argv[++i];
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            files[n_files++] = argv[i] + 7;
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    const config_schema schema = CONFIG_SCHEMA(TRAIN_KEYS);
    config cfg;
    int rc = load_options(&cfg, &schema, n_rest, rest, "tokenizer train");
    if (rc) {
        free(files);
        free(rest);
        return rc;
    }
    rc = 2;
    pt_error err = {0};
    const char **cfg_files = NULL, **specials = NULL;
    bpe_trainer *tr = NULL;
    tokenizer *tok = NULL;
    size_t n_cfg_files = 0, n_specials = 0;
    int list_rc = 0;
    if (!n_files) {
        cfg_files = string_list(config_json(&cfg, "data"), &n_cfg_files, "data", &list_rc);
        if (!cfg_files) {
            rc = list_rc;
            goto done;
        }
        for (size_t i = 0; i < n_cfg_files; i++) files[n_files++] = cfg_files[i];
    }
    specials = string_list(config_json(&cfg, "special_tokens"), &n_specials, "special_tokens", &list_rc);
    if (!specials) {
        rc = list_rc;
        goto done;
    }
    const char *out = cli_require(&cfg, "tokenizer train", "out");
    if (!out) goto done;
    if (!n_files) {
        fprintf(stderr, "posttrain tokenizer train: --data is required (one or more files)\n");
        goto done;
    }
    if (config_int(&cfg, "vocab_size") < 1 || config_int(&cfg, "min_frequency") < 0) {
        fprintf(stderr, "posttrain tokenizer train: --vocab-size must be positive and --min-frequency not negative\n");
        goto done;
    }
    const char *chat = config_string(&cfg, "chat_format");
    chat_format fmt = CHAT_DEEPSEEK_V3;
    if (chat && chat_format_parse(&fmt, chat, &err) != PT_OK) {
        rc = cli_fail("tokenizer train", &err);
        goto done;
    }
    bpe_train_opts o = {.vocab_size = (size_t)config_int(&cfg, "vocab_size"),
                        .special_tokens = specials,
                        .n_special = n_specials,
                        .min_frequency = (uint64_t)config_int(&cfg, "min_frequency"),
                        .pre_tokenizer = config_string(&cfg, "pre_tokenizer"),
                        .bos_token = config_string(&cfg, "bos_token"),
                        .eos_token = config_string(&cfg, "eos_token"),
                        .pad_token = config_string(&cfg, "pad_token"),
                        .add_bos = config_bool(&cfg, "add_bos"),
                        .chat_template = chat ? chat_format_jinja(fmt) : NULL};
    pt_status st = bpe_trainer_init(&tr, &o, &err);
    for (size_t i = 0; st == PT_OK && i < n_files; i++) st = bpe_trainer_feed_file(tr, files[i], &err);
    if (st == PT_OK) st = bpe_trainer_finish(&tok, tr, &err);
    if (st == PT_OK && mkdir(out, 0777) != 0 && errno != EEXIST)
        st = error_set(&err, PT_ERR_IO, __FILE__, __LINE__, "%s: cannot create the folder: %s", out, strerror(errno));
    if (st == PT_OK) st = tokenizer_save(tok, out, &err);
    if (st != PT_OK) {
        rc = cli_fail("tokenizer train", &err);
        goto done;
    }
    printf("trained a tokenizer with %zu ids on %zu file%s; wrote %s/tokenizer.json and tokenizer_config.json\n",
           tokenizer_n_ids(tok), n_files, n_files == 1 ? "" : "s", out);
    rc = 0;
done:
    tokenizer_free(tok);
    bpe_trainer_free(tr);
    free(specials);
    free(cfg_files);
    free(files);
    free(rest);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------------------ encode, decode */

static int tokenizer_encode_cmd(int argc, char **argv) {
    if (wants_help(argc, argv))
        return print_help("encode --tokenizer DIR --text TEXT", "Prints the ids of TEXT, comma-separated.",
                          ENCODE_KEYS, sizeof ENCODE_KEYS / sizeof ENCODE_KEYS[0]);
    const config_schema schema = CONFIG_SCHEMA(ENCODE_KEYS);
    config cfg;
    int rc = load_options(&cfg, &schema, argc, argv, "tokenizer encode");
    if (rc) return rc;
    rc = 2;
    pt_error err = {0};
    tokenizer *tok = NULL;
    tok_ids ids = {0};
    const char *path = cli_require(&cfg, "tokenizer encode", "tokenizer");
    const char *text = config_string(&cfg, "text");
    if (!path) goto done;
    if (!text) {
        fprintf(stderr, "posttrain tokenizer encode: --text is required\n");
        goto done;
    }
    unsigned flags = config_bool(&cfg, "add_special") ? TOK_ADD_SPECIAL : 0;
    if (tokenizer_load(&tok, path, &err) != PT_OK || tokenizer_encode(&ids, tok, text, strlen(text), flags, &err) != PT_OK) {
        rc = cli_fail("tokenizer encode", &err);
        goto done;
    }
    for (size_t i = 0; i < ids.n; i++) printf(i ? ",%d" : "%d", (int)ids.ids[i]);
    printf("\n");
    if (config_bool(&cfg, "show_tokens"))
        for (size_t i = 0; i < ids.n; i++) {
            const char *s = tokenizer_id_to_token(tok, ids.ids[i]);
            printf("%8d  %s\n", (int)ids.ids[i], s ? s : "?");
        }
    rc = 0;
done:
    tok_ids_free(&ids);
    tokenizer_free(tok);
    config_free(&cfg);
    return rc;
}

/* "1,2,3", "1 2 3" or "[1, 2, 3]" → ids; a bad entry is reported with its position. */
static int parse_ids(int32_t **out, size_t *n, const char *s) {
    size_t cap = strlen(s) / 2 + 1;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return 1;
    *n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end = NULL;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && !strchr(" ,[]\t\n", *end))) {
            fprintf(stderr, "posttrain tokenizer decode: --ids: '%.*s' at character %zu is not a token id\n",
                    (int)strcspn(p, " ,[]\t\n"), p, (size_t)(p - s) + 1);
            free(v);
            return 2;
        }
        if (*n == cap) {
            free(v);
            return 1;
        }
        v[(*n)++] = (int32_t)x;
        p = end;
    }
    *out = v;
    return 0;
}

static int tokenizer_decode_cmd(int argc, char **argv) {
    if (wants_help(argc, argv))
        return print_help("decode --tokenizer DIR --ids 1,2,3", "Prints the text of the ids (bytes as they are).",
                          DECODE_KEYS, sizeof DECODE_KEYS / sizeof DECODE_KEYS[0]);
    const config_schema schema = CONFIG_SCHEMA(DECODE_KEYS);
    config cfg;
    int rc = load_options(&cfg, &schema, argc, argv, "tokenizer decode");
    if (rc) return rc;
    rc = 2;
    pt_error err = {0};
    tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    size_t n = 0, len = 0;
    const char *path = cli_require(&cfg, "tokenizer decode", "tokenizer");
    const char *ids_s = cli_require(&cfg, "tokenizer decode", "ids");
    if (!path || !ids_s) goto done;
    if ((rc = parse_ids(&ids, &n, ids_s)) != 0) goto done;
    rc = 2;
    if (tokenizer_load(&tok, path, &err) != PT_OK ||
        tokenizer_decode(&text, &len, tok, ids, n, config_bool(&cfg, "skip_special"), &err) != PT_OK) {
        rc = cli_fail("tokenizer decode", &err);
        goto done;
    }
    fwrite(text, 1, len, stdout);
    printf("\n");
    rc = 0;
done:
    free(text);
    free(ids);
    tokenizer_free(tok);
    config_free(&cfg);
    return rc;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "train") == 0) return tokenizer_train(argc - 2, argv + 2);
    if (strcmp(argv[1], "encode") == 0) return tokenizer_encode_cmd(argc - 2, argv + 2);
    if (strcmp(argv[1], "decode") == 0) return tokenizer_decode_cmd(argc - 2, argv + 2);
    fprintf(stderr, "posttrain tokenizer: unknown action '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
