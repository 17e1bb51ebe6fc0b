/* cmd_serve.c — `posttrain serve --model DIR [--reward-model DIR] [--port P] [--host 127.0.0.1]`: an
 * OpenAI-compatible server (rollout/server.h) on the model, with /v1/score on the reward model
 * (either may be given alone), until SIGTERM or SIGINT. The signals are blocked before
 * the server's threads start (they inherit the mask) and taken with sigwait here, so shutdown
 * runs in this thread: stop accepting, finish requests in flight, free, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/checkpoint.h"
#include "model/reward_model.h"
#include "rollout/server.h"

static const config_key SERVE_KEYS[] = {
    {"model", CONFIG_STRING, "null", "model folder (config.json + safetensors + tokenizer)"},
    {"tokenizer", CONFIG_STRING, "null", "tokenizer folder or tokenizer.json (default: the model folder)"},
    {"host", CONFIG_STRING, "\"127.0.0.1\"", "IPv4 address to listen on (0.0.0.0 exposes it to the network)"},
    {"port", CONFIG_INT, "8000", "TCP port"},
    {"model_name", CONFIG_STRING, "\"posttrain\"", "the model id reported by /v1/models"},
    {"chat_template", CONFIG_STRING, "null", "deepseek-v3, deepseek-r1 or plain (default: from the tokenizer)"},
    {"max_request_bytes", CONFIG_INT, "1048576", "larger request bodies are refused with 413"},
    {"max_tokens_cap", CONFIG_INT, "4096", "the largest max_tokens a request may ask for"},
    {"reward_model", CONFIG_STRING, "null",
     "a reward model folder (`posttrain rm` writes RUN_DIR/final) served on POST /v1/score; its tokenizer is the "
     "folder's own"},
    {"reward_max_length", CONFIG_INT, "1024", "tokens of prompt + completion that /v1/score scores (the first ones)"},
};

int cmd_serve(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(SERVE_KEYS);
    config cfg;
    int rc = cli_parse(&cfg, &schema, 1, argc, argv, "Serve a model over an OpenAI-compatible HTTP API.");
    if (rc) return rc < 0 ? 0 : rc;
    rc = 1;
    pt_error err = {0};
    tokenizer *tok = NULL, *rtok = NULL;
    policy_model m;
    reward_model rm;
    int have_model = 0, have_rm = 0;
    rollout_server *srv = NULL;
    const char *rdir = config_string(&cfg, "reward_model");
    const char *dir = rdir && config_is_null(&cfg, "model") ? NULL : cli_require(&cfg, "serve", "model");
    if (!dir && !rdir) {
        rc = 2;
        goto done;
    }
    if (config_int(&cfg, "reward_max_length") < 1) {
        fprintf(stderr, "posttrain serve: --reward-max-length must be >= 1\n");
        rc = 2;
        goto done;
    }
    if (dir) {
        const char *tpath = config_is_null(&cfg, "tokenizer") ? dir : config_string(&cfg, "tokenizer");
        model_load_info info;
        if (tokenizer_load(&tok, tpath, &err) != PT_OK || model_load(&m, dir, &info, &err) != PT_OK) {
            rc = cli_fail("serve", &err);
            goto done;
        }
        have_model = 1;
    }
    if (rdir) {
        if (tokenizer_load(&rtok, rdir, &err) != PT_OK || reward_model_load(&rm, rdir, 0, 0, &err) != PT_OK) {
            error_prefix(&err, "--reward-model");
            rc = cli_fail("serve", &err);
            goto done;
        }
        have_rm = 1;
    }
    rollout_server_config sc = rollout_server_config_default();
    sc.reward_model = have_rm ? &rm : NULL;
    sc.reward_tokenizer = rtok;
    sc.reward_max_length = (size_t)config_int(&cfg, "reward_max_length");
    sc.host = config_string(&cfg, "host");
    sc.port = (int)config_int(&cfg, "port");
    sc.model_name = config_string(&cfg, "model_name");
    sc.max_request_bytes = (size_t)config_int(&cfg, "max_request_bytes");
    sc.max_tokens_cap = (int)config_int(&cfg, "max_tokens_cap");
    if (!config_is_null(&cfg, "chat_template")) {
        if (chat_format_parse(&sc.chat, config_string(&cfg, "chat_template"), &err) != PT_OK) {
            rc = cli_fail("serve", &err);
            goto done;
        }
    } else if (tok && tokenizer_chat_template(tok) && !chat_format_from_jinja(&sc.chat, tokenizer_chat_template(tok))) {
        fprintf(stderr, "posttrain serve: the tokenizer's chat template is not one of ours; using deepseek-v3 "
                        "(pass --chat_template to choose)\n");
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (rollout_server_start(&srv, have_model ? &m : NULL, tok, &sc, &err) != PT_OK) {
        rc = cli_fail("serve", &err);
        goto done;
    }
    fprintf(stderr, "posttrain serve: http://%s:%d/v1 (%s%s%s); Ctrl-C or SIGTERM stops\n", sc.host,
            rollout_server_port(srv), have_model ? "model '" : "", have_model ? sc.model_name : "",
            have_model ? (have_rm ? "', /v1/score on the reward model" : "'") : "/v1/score on the reward model");
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "posttrain serve: %s received, shutting down\n", strsignal(sig));
    rollout_server_stop(srv);
    rc = 0;
done:
    if (have_model) model_free(&m);
    if (have_rm) reward_model_free(&rm);
    tokenizer_free(tok);
    tokenizer_free(rtok);
    config_free(&cfg);
    return rc;
}
