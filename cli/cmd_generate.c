/* cmd_generate.c — `posttrain generate`: G completions per prompt with the rollout engine.
 *
 *   posttrain generate --model DIR --prompt TEXT [--num-generations G] [--temperature T] ...
 *   posttrain generate --model DIR --data prompts.jsonl --out completions.jsonl
 *   posttrain generate --model DIR            (stdin a terminal: interactive chat)
 *
 * Output is JSONL, one line per prompt: {"prompt", "completions": [...], "finish_reasons":
 * ["stop"|"length"], "lengths": [...]} plus "logprobs" with --logprobs. A prompt from --data is
 * rendered as the dataset layer renders GRPO prompts (a string as is; a messages list through the
 * chat template). --prompt TEXT is used as is, or as one user message with --chat-template.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "datasets/dataset.h"
#include "model/chat_template.h"
#include "model/checkpoint.h"
#include "rollout/engine.h"

static const config_key GENERATE_KEYS[] = {
    {"model", CONFIG_STRING, "null", "model folder (config.json + safetensors)"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"prompt", CONFIG_STRING, "null", "one prompt (text)"},
    {"data", CONFIG_STRING, "null", "JSONL of prompts ({\"prompt\": text or messages, ...})"},
    {"out", CONFIG_STRING, "null", "JSONL file to write (default: standard output)"},
    {"chat_template", CONFIG_STRING, "null",
     "render --prompt as a user message: deepseek-v3, deepseek-r1 or plain (default: raw text)"},
    {"num_generations", CONFIG_INT, "1", "completions per prompt (G)"},
    {"max_completion_length", CONFIG_INT, "256", "tokens per completion at most"},
    {"temperature", CONFIG_FLOAT, "1.0", "sampling temperature (0: greedy)"},
    {"top_p", CONFIG_FLOAT, "1.0", "nucleus sampling mass (1: off)"},
    {"top_k", CONFIG_INT, "0", "keep the k most likely tokens (0: off)"},
    {"min_p", CONFIG_FLOAT, "0.0", "drop tokens below min_p times the most likely one (0: off)"},
    {"repetition_penalty", CONFIG_FLOAT, "1.0", "penalise tokens already present (1: off)"},
    {"stop", CONFIG_JSON, "[]", "stop strings, e.g. [\"</answer>\"]"},
    {"seed", CONFIG_INT, "0", "random seed; completion s of prompt p uses stream (seed, p, s)"},
    {"logprobs", CONFIG_BOOL, "false", "also write each token's log-probability"},
    {"speculative", CONFIG_BOOL, "false", "draft with the model's MTP module and verify (same distribution)"},
    {"max_live", CONFIG_INT, "64", "sequences decoded together"},
    {"max_cached_tokens", CONFIG_INT, "1048576", "latent-cache budget in tokens (work queues beyond it)"},
};

typedef struct gen_ctx {
    policy_model m;
    tokenizer *tok;
    rollout_config rc;
    const char **stops;
    int n_stop;
    int eos;
} gen_ctx;

static cJSON *completion_json(const gen_ctx *g, const rollout_completion *c, int G, int logprobs, pt_error *err,
                              int *ok) {
    cJSON *texts = cJSON_CreateArray(), *reasons = cJSON_CreateArray(), *lens = cJSON_CreateArray();
    cJSON *lps = logprobs ? cJSON_CreateArray() : NULL;
    for (int s = 0; s < G; s++) {
        char *text = NULL;
        size_t len = 0;
        if (tokenizer_decode(&text, &len, g->tok, (const int32_t *)c[s].ids, (size_t)c[s].len, true, err) != PT_OK) {
            *ok = 0;
            break;
        }
        if (c[s].stop_cut >= 0 && (size_t)c[s].stop_cut < len) text[c[s].stop_cut] = '\0';
        cJSON_AddItemToArray(texts, cJSON_CreateString(text));
        free(text);
        cJSON_AddItemToArray(reasons, cJSON_CreateString(c[s].finish == FINISH_STOP ? "stop" : "length"));
        cJSON_AddItemToArray(lens, cJSON_CreateNumber(c[s].len));
        if (lps) {
            cJSON *row = cJSON_CreateArray();
            for (int k = 0; k < c[s].len; k++) cJSON_AddItemToArray(row, cJSON_CreateNumber(c[s].logprobs[k]));
            cJSON_AddItemToArray(lps, row);
        }
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "completions", texts);
    cJSON_AddItemToObject(o, "finish_reasons", reasons);
    cJSON_AddItemToObject(o, "lengths", lens);
    if (lps) cJSON_AddItemToObject(o, "logprobs", lps);
    return o;
}

/* Generates for n prompts and writes one JSON line each. */
static int run_batch(gen_ctx *g, rollout_prompt *prompts, cJSON **prompt_json, int n, FILE *out, int logprobs) {
    pt_error err = {0};
    rollout_engine e;
    int G = g->rc.num_generations;
    rollout_completion *c = calloc((size_t)n * G, sizeof *c);
    if (!c) return 1;
    if (rollout_engine_init(&e, &g->m, g->tok, &g->rc, &err) != PT_OK ||
        rollout_generate(&e, prompts, n, c, NULL, &err) != PT_OK) {
        free(c);
        rollout_engine_free(&e);
        return cli_fail("generate", &err);
    }
    int ok = 1;
    for (int p = 0; p < n && ok; p++) {
        cJSON *o = completion_json(g, c + (size_t)p * G, G, logprobs, &err, &ok);
        cJSON_AddItemReferenceToObject(o, "prompt", prompt_json[p]);
        char *line = cJSON_PrintUnformatted(o);
        fprintf(out, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    rollout_completions_free(c, n * G);
    free(c);
    rollout_engine_free(&e);
    return ok ? 0 : cli_fail("generate", &err);
}

/* Interactive chat on a terminal: one user line in, one reply out, history kept. */
static int chat_loop(gen_ctx *g, chat_format fmt) {
    chat_message *msgs = NULL;
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    pt_error err = {0};
    rollout_engine e;
    g->rc.num_generations = 1;
    if (rollout_engine_init(&e, &g->m, g->tok, &g->rc, &err) != PT_OK) return cli_fail("generate", &err);
    fprintf(stderr, "posttrain chat (%s) — an empty line or end of input quits\n", chat_format_name(fmt));
    for (;;) {
        fprintf(stderr, "> ");
        ssize_t got = getline(&line, &cap, stdin);
        if (got <= 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) break;
        chat_message *grown = realloc(msgs, sizeof *msgs * (n + 2));
        if (!grown) break;
        msgs = grown;
        msgs[n++] = (chat_message){"user", strdup(line)};
        chat_render r;
        chat_options opts = {true, false};
        tok_ids ids = {0};
        uint8_t *mask = NULL;
        rollout_completion c = {0};
        char *text = NULL;
        size_t len = 0;
        int failed = chat_render_messages(&r, fmt, msgs, n, tokenizer_bos_token(g->tok), tokenizer_eos_token(g->tok),
                                          &opts, &err) != PT_OK;
        if (!failed) {
            failed = chat_encode(&ids, &mask, g->tok, &r, &err) != PT_OK;
            chat_render_free(&r);
        }
        if (!failed) {
            rollout_prompt p = {(const int *)ids.ids, (int)ids.n, (int64_t)n};
            failed = rollout_generate(&e, &p, 1, &c, NULL, &err) != PT_OK ||
                     tokenizer_decode(&text, &len, g->tok, (const int32_t *)c.ids, (size_t)c.len, true, &err) != PT_OK;
        }
        free(mask);
        tok_ids_free(&ids);
        if (failed) {
            fprintf(stderr, "posttrain generate: %s\n", err.msg);
            n--;
            free((char *)msgs[n].content);
            continue;
        }
        if (c.stop_cut >= 0 && (size_t)c.stop_cut < len) text[c.stop_cut] = '\0';
        printf("%s\n", text);
        fflush(stdout);
        msgs[n++] = (chat_message){"assistant", text};
        rollout_completions_free(&c, 1);
    }
    for (size_t i = 0; i < n; i++) free((char *)msgs[i].content);
    free(msgs);
    free(line);
    rollout_engine_free(&e);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(GENERATE_KEYS);
    config cfg;
    int rc = cli_parse(&cfg, &schema, 1, argc, argv, "Sample completions from a model with the rollout engine.");
    if (rc) return rc < 0 ? 0 : rc;
    rc = 2;
    gen_ctx g;
    memset(&g, 0, sizeof g);
    int have_model = 0;
    pt_error err = {0};
    FILE *out = stdout;
    dataset *ds = NULL;
    const char *dir = cli_require(&cfg, "generate", "model");
    if (!dir) goto done;
    const char *tpath = config_is_null(&cfg, "tokenizer") ? dir : config_string(&cfg, "tokenizer");
    if (tokenizer_load(&g.tok, tpath, &err) != PT_OK) {
        rc = cli_fail("generate", &err);
        goto done;
    }
    model_load_info info;
    if (model_load(&g.m, dir, &info, &err) != PT_OK) {
        rc = cli_fail("generate", &err);
        goto done;
    }
    have_model = 1;
    if (info.nonfinite) fprintf(stderr, "posttrain generate: warning: NaN/Inf in %s\n", info.nonfinite_names);
    if ((int64_t)tokenizer_n_ids(g.tok) > g.m.cfg.vocab_size) {
        fprintf(stderr, "posttrain generate: the tokenizer has %zu ids but the model's vocab_size is %d\n",
                tokenizer_n_ids(g.tok), g.m.cfg.vocab_size);
        goto done;
    }
    g.rc = rollout_config_default();
    g.rc.num_generations = (int)config_int(&cfg, "num_generations");
    g.rc.max_completion_length = (int)config_int(&cfg, "max_completion_length");
    g.rc.max_live = (int)config_int(&cfg, "max_live");
    g.rc.max_cached_tokens = config_int(&cfg, "max_cached_tokens");
    g.rc.seed = (uint64_t)config_int(&cfg, "seed");
    g.rc.sampling.temperature = (float)config_float(&cfg, "temperature");
    g.rc.sampling.top_p = (float)config_float(&cfg, "top_p");
    g.rc.sampling.top_k = (int)config_int(&cfg, "top_k");
    g.rc.sampling.min_p = (float)config_float(&cfg, "min_p");
    g.rc.sampling.repetition_penalty = (float)config_float(&cfg, "repetition_penalty");
    g.rc.vocab_limit = (int)tokenizer_n_ids(g.tok);
    g.rc.speculative = config_bool(&cfg, "speculative");
    g.eos = tokenizer_eos_id(g.tok);
    if (g.eos >= 0) {
        g.rc.eos_ids = &g.eos;
        g.rc.n_eos = 1;
    }
    const cJSON *stop = config_json(&cfg, "stop");
    if (!cJSON_IsArray(stop)) {
        fprintf(stderr, "posttrain generate: --stop must be a JSON list of strings\n");
        goto done;
    }
    g.n_stop = cJSON_GetArraySize(stop);
    g.stops = calloc((size_t)(g.n_stop > 0 ? g.n_stop : 1), sizeof *g.stops);
    for (int i = 0; i < g.n_stop; i++) {
        const cJSON *s = cJSON_GetArrayItem(stop, i);
        if (!cJSON_IsString(s)) {
            fprintf(stderr, "posttrain generate: --stop item %d is not a string\n", i);
            goto done;
        }
        g.stops[i] = s->valuestring;
    }
    g.rc.stop_strings = g.stops;
    g.rc.n_stop = g.n_stop;
    if (!config_is_null(&cfg, "out") && !(out = fopen(config_string(&cfg, "out"), "w"))) {
        fprintf(stderr, "posttrain generate: cannot write '%s'\n", config_string(&cfg, "out"));
        out = stdout;
        goto done;
    }
    int logprobs = config_bool(&cfg, "logprobs");
    chat_format fmt = CHAT_DEEPSEEK_V3;
    int use_chat = !config_is_null(&cfg, "chat_template");
    if (use_chat && chat_format_parse(&fmt, config_string(&cfg, "chat_template"), &err) != PT_OK) {
        rc = cli_fail("generate", &err);
        goto done;
    }

    if (!config_is_null(&cfg, "prompt")) {
        const char *text = config_string(&cfg, "prompt");
        tok_ids ids = {0};
        uint8_t *mask = NULL;
        pt_status st;
        if (use_chat) {
            chat_message msg = {"user", text};
            chat_options opts = {true, false};
            chat_render r;
            st = chat_render_messages(&r, fmt, &msg, 1, tokenizer_bos_token(g.tok), tokenizer_eos_token(g.tok), &opts,
                                      &err);
            if (st == PT_OK) {
                st = chat_encode(&ids, &mask, g.tok, &r, &err);
                chat_render_free(&r);
            }
        } else {
            st = tokenizer_encode(&ids, g.tok, text, strlen(text), TOK_ADD_SPECIAL, &err);
        }
        free(mask);
        if (st != PT_OK) {
            tok_ids_free(&ids);
            rc = cli_fail("generate", &err);
            goto done;
        }
        rollout_prompt p = {(const int *)ids.ids, (int)ids.n, 0};
        cJSON *pj = cJSON_CreateString(text);
        rc = run_batch(&g, &p, &pj, 1, out, logprobs);
        cJSON_Delete(pj);
        tok_ids_free(&ids);
    } else if (!config_is_null(&cfg, "data")) {
        dataset_options o;
        dataset_options_default(&o);
        o.format = DATASET_FORMAT_PROMPT;
        if (dataset_open_jsonl(&ds, config_string(&cfg, "data"), g.tok, &o, &err) != PT_OK) {
            rc = cli_fail("generate", &err);
            goto done;
        }
        size_t n = dataset_size(ds);
        rollout_prompt *prompts = calloc(n ? n : 1, sizeof *prompts);
        dataset_example *ex = calloc(n ? n : 1, sizeof *ex);
        cJSON **pj = calloc(n ? n : 1, sizeof *pj);
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (dataset_get(&ex[i], ds, i, &err) != PT_OK) {
                rc = cli_fail("generate", &err);
                break;
            }
            prompts[i] = (rollout_prompt){(const int *)ex[i].seq.ids, (int)ex[i].seq.n, (int64_t)i};
            pj[i] = cJSON_Parse(ex[i].prompt_json);
        }
        if (rc == 0) rc = run_batch(&g, prompts, pj, (int)n, out, logprobs);
        for (size_t i = 0; i < n; i++) {
            dataset_example_free(&ex[i]);
            cJSON_Delete(pj[i]);
        }
        free(prompts), free(ex), free(pj);
    } else if (isatty(STDIN_FILENO)) {
        rc = chat_loop(&g, fmt);
    } else {
        fprintf(stderr, "posttrain generate: give --prompt TEXT or --data FILE (or run it on a terminal to chat)\n");
    }
done:
    if (out != stdout) fclose(out);
    dataset_free(ds);
    free(g.stops);
    if (have_model) model_free(&g.m);
    tokenizer_free(g.tok);
    config_free(&cfg);
    return rc;
}
