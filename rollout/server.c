/* server.c — see server.h. One request = one connection thread: the body is gathered (bounded by
 * max_request_bytes; the excess is read and dropped so the 413 can be sent), parsed with cJSON,
 * and the generation runs under the server's mutex on a fresh rollout engine (its latent cache is
 * sized to the request), so concurrent requests never share mutable state.
 * Completion text is the decoded completion cut where a stop string began (rollout_completion
 * .stop_cut); finish_reason is "stop" (EOS or stop string) or "length".
 */
#include "rollout/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout/engine.h"

struct rollout_server {
    struct MHD_Daemon *d;
    int port;
    const policy_model *m;
    tokenizer *tok;
    rollout_server_config cfg;
    char model_name[128];
    pthread_mutex_t gen_mu;
    atomic_long next_id;
};

typedef struct srv_req {
    char *body;
    size_t len;
    int too_large;
} srv_req;

rollout_server_config rollout_server_config_default(void) {
    rollout_server_config c = {"127.0.0.1", 8000, (size_t)1 << 20, 4096, 16, "posttrain", CHAT_DEEPSEEK_V3,
                               NULL, NULL, 1024, 256};
    return c;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, cJSON *obj) {
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* OpenAI's error shape. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *type, const char *param,
                                  const char *fmt, ...) PT_PRINTF(5, 6);
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *type, const char *param,
                                  const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    return send_json(c, code, root);
}

/* Sampling parameters shared by both generation routes; a message names the bad field. */
typedef struct gen_params {
    int max_tokens, n, logprobs;
    double temperature, top_p;
    uint64_t seed;
    const char *stops[4];
    int n_stop;
} gen_params;

static int read_params(gen_params *p, const cJSON *req, const rollout_server_config *cfg, int chat, char *why,
                       size_t len) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 16, p->n = 1, p->temperature = 1.0, p->top_p = 1.0;
    const cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive(req, chat ? "max_completion_tokens" : "max_tokens")) ||
        (x = cJSON_GetObjectItemCaseSensitive(req, "max_tokens"))) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > cfg->max_tokens_cap)
            return snprintf(why, len, "max_tokens must be an integer in [1, %d]", cfg->max_tokens_cap), 0;
        p->max_tokens = (int)x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "n")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > cfg->max_n)
            return snprintf(why, len, "n must be an integer in [1, %d]", cfg->max_n), 0;
        p->n = (int)x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "temperature")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2)
            return snprintf(why, len, "temperature must be a number in [0, 2]"), 0;
        p->temperature = x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "top_p")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) || x->valuedouble <= 0 || x->valuedouble > 1)
            return snprintf(why, len, "top_p must be a number in (0, 1]"), 0;
        p->top_p = x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "seed")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x)) return snprintf(why, len, "seed must be an integer"), 0;
        p->seed = (uint64_t)(int64_t)x->valuedouble;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "logprobs")) && !cJSON_IsNull(x)) {
        if (!cJSON_IsNumber(x) && !cJSON_IsBool(x)) return snprintf(why, len, "logprobs must be an integer or bool"), 0;
        p->logprobs = cJSON_IsBool(x) ? cJSON_IsTrue(x) : x->valuedouble >= 0; /* OpenAI: 0 = the sampled token only */
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(req, "stop")) && !cJSON_IsNull(x)) {
        if (cJSON_IsString(x)) p->stops[p->n_stop++] = x->valuestring;
        else if (cJSON_IsArray(x) && cJSON_GetArraySize(x) <= 4) {
            for (const cJSON *s = x->child; s; s = s->next) {
                if (!cJSON_IsString(s) || !s->valuestring[0]) return snprintf(why, len, "stop items must be strings"), 0;
                p->stops[p->n_stop++] = s->valuestring;
            }
        } else return snprintf(why, len, "stop must be a string or a list of up to 4 strings"), 0;
    }
    return 1;
}

/* Generates n completions for each prompt; appends choices to `choices`, adds usage counts.
 * Runs under the generation mutex. */
static pt_status generate(rollout_server *s, cJSON *choices, long *prompt_tokens, long *completion_tokens,
                          const tok_ids *prompts, int n_prompts, const gen_params *p, int chat, pt_error *err) {
    rollout_config rc = rollout_config_default();
    int maxlen = 0;
    for (int i = 0; i < n_prompts; i++) maxlen = (int)prompts[i].n > maxlen ? (int)prompts[i].n : maxlen;
    if (maxlen + p->max_tokens > s->m->cfg.max_position_embeddings)
        PT_FAIL(err, PT_ERR_INVALID, "prompt (%d tokens) + max_tokens (%d) exceeds the model's context of %d tokens",
                maxlen, p->max_tokens, s->m->cfg.max_position_embeddings);
    rc.num_generations = p->n;
    rc.max_completion_length = p->max_tokens;
    rc.max_live = n_prompts * p->n < 64 ? n_prompts * p->n : 64;
    rc.max_cached_tokens = (int64_t)(maxlen + p->max_tokens + 32) * rc.max_live * 2;
    rc.seed = p->seed;
    rc.sampling.temperature = (float)p->temperature;
    rc.sampling.top_p = (float)p->top_p;
    rc.vocab_limit = (int)tokenizer_n_ids(s->tok);
    int eos = tokenizer_eos_id(s->tok);
    if (eos >= 0) rc.eos_ids = &eos, rc.n_eos = 1;
    rc.stop_strings = p->stops;
    rc.n_stop = p->n_stop;
    rollout_prompt *rp = calloc((size_t)n_prompts, sizeof *rp);
    rollout_completion *out = calloc((size_t)n_prompts * (size_t)p->n, sizeof *out);
    pt_status st = PT_OK;
    rollout_engine e;
    int have_engine = 0;
    if (!rp || !out) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %d prompts", n_prompts);
        goto done;
    }
    for (int i = 0; i < n_prompts; i++) rp[i] = (rollout_prompt){(const int *)prompts[i].ids, (int)prompts[i].n, i};
    PT_TRY_GOTO(st, rollout_engine_init(&e, s->m, s->tok, &rc, err), done);
    have_engine = 1;
    PT_TRY_GOTO(st, rollout_generate(&e, rp, n_prompts, out, NULL, err), done);
    for (int k = 0; k < n_prompts * p->n; k++) {
        char *text = NULL;
        size_t len = 0;
        PT_TRY_GOTO(st, tokenizer_decode(&text, &len, s->tok, (const int32_t *)out[k].ids, (size_t)out[k].len, true, err),
                    done);
        if (out[k].stop_cut >= 0 && (size_t)out[k].stop_cut < len) text[out[k].stop_cut] = '\0';
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", k);
        if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", text);
        } else {
            cJSON_AddStringToObject(ch, "text", text);
        }
        free(text);
        if (p->logprobs) {
            cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
            cJSON *toks = cJSON_AddArrayToObject(lp, "tokens");
            cJSON *vals = cJSON_AddArrayToObject(lp, "token_logprobs");
            for (int t = 0; t < out[k].len; t++) {
                const char *tt = tokenizer_id_to_token(s->tok, out[k].ids[t]);
                cJSON_AddItemToArray(toks, cJSON_CreateString(tt ? tt : ""));
                cJSON_AddItemToArray(vals, cJSON_CreateNumber(out[k].logprobs[t]));
            }
        } else if (!chat) {
            cJSON_AddNullToObject(ch, "logprobs");
        }
        cJSON_AddStringToObject(ch, "finish_reason", out[k].finish == FINISH_STOP ? "stop" : "length");
        cJSON_AddItemToArray(choices, ch);
        *completion_tokens += out[k].len;
    }
    for (int i = 0; i < n_prompts; i++) *prompt_tokens += (long)prompts[i].n;
done:
    if (have_engine) rollout_engine_free(&e);
    if (out) rollout_completions_free(out, n_prompts * p->n);
    free(out);
    free(rp);
    return st;
}

static enum MHD_Result handle_generate(rollout_server *s, struct MHD_Connection *c, const cJSON *req, int chat) {
    gen_params p;
    char why[256];
    if (!read_params(&p, req, &s->cfg, chat, why, sizeof why))
        return send_error(c, 400, "invalid_request_error", NULL, "%s", why);
    tok_ids ids[16];
    int n_prompts = 0;
    memset(ids, 0, sizeof ids);
    pt_error err = {0};
    pt_status st = PT_OK;
    cJSON *resp = cJSON_CreateObject(), *choices = cJSON_CreateArray();
    long pt = 0, ct = 0;
    pthread_mutex_lock(&s->gen_mu);
    if (chat) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
        int n = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : 0;
        chat_message *cm = n > 0 ? calloc((size_t)n, sizeof *cm) : NULL;
        if (!cm) {
            st = error_set(&err, PT_ERR_INVALID, __FILE__, __LINE__, "messages must be a non-empty list");
        } else {
            int k = 0;
            for (const cJSON *m = msgs->child; m && st == PT_OK; m = m->next, k++) {
                const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
                const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
                if (!cJSON_IsString(role) || !cJSON_IsString(content))
                    st = error_set(&err, PT_ERR_INVALID, __FILE__, __LINE__,
                                   "messages[%d] needs string \"role\" and \"content\"", k);
                else cm[k] = (chat_message){role->valuestring, content->valuestring};
            }
            chat_render r;
            chat_options opts = {true, false};
            uint8_t *mask = NULL;
            if (st == PT_OK)
                st = chat_render_messages(&r, s->cfg.chat, cm, (size_t)n, tokenizer_bos_token(s->tok),
                                          tokenizer_eos_token(s->tok), &opts, &err);
            if (st == PT_OK) {
                st = chat_encode(&ids[0], &mask, s->tok, &r, &err);
                chat_render_free(&r);
                n_prompts = 1;
            }
            free(mask);
        }
        free(cm);
    } else {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req, "prompt");
        const cJSON *list = cJSON_IsArray(prompt) ? prompt->child : prompt;
        int n = cJSON_IsArray(prompt) ? cJSON_GetArraySize(prompt) : 1;
        if (!prompt || n < 1 || n > 16)
            st = error_set(&err, PT_ERR_INVALID, __FILE__, __LINE__, "prompt must be a string or 1-16 strings");
        for (const cJSON *x = list; st == PT_OK && x && n_prompts < n; x = x->next) {
            if (!cJSON_IsString(x))
                st = error_set(&err, PT_ERR_INVALID, __FILE__, __LINE__, "prompt must be a string or a list of strings");
            else st = tokenizer_encode(&ids[n_prompts], s->tok, x->valuestring, strlen(x->valuestring),
                                       TOK_ADD_SPECIAL, &err);
            n_prompts++;
        }
    }
    if (st == PT_OK) st = generate(s, choices, &pt, &ct, ids, n_prompts, &p, chat, &err);
    pthread_mutex_unlock(&s->gen_mu);
    for (int i = 0; i < 16; i++) tok_ids_free(&ids[i]);
    if (st != PT_OK) {
        cJSON_Delete(resp);
        cJSON_Delete(choices);
        unsigned code = st == PT_ERR_INVALID || st == PT_ERR_CONFIG ? 400 : 500;
        return send_error(c, code, code == 400 ? "invalid_request_error" : "server_error", NULL, "%s", err.msg);
    }
    char id[48];
    snprintf(id, sizeof id, "%s-%ld", chat ? "chatcmpl" : "cmpl", atomic_fetch_add(&s->next_id, 1));
    cJSON_AddStringToObject(resp, "id", id);
    cJSON_AddStringToObject(resp, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(resp, "created", (double)time(NULL));
    cJSON_AddStringToObject(resp, "model", s->model_name);
    cJSON_AddItemToObject(resp, "choices", choices);
    cJSON *usage = cJSON_AddObjectToObject(resp, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", (double)pt);
    cJSON_AddNumberToObject(usage, "completion_tokens", (double)ct);
    cJSON_AddNumberToObject(usage, "total_tokens", (double)(pt + ct));
    return send_json(c, 200, resp);
}

/* One /v1/score item: "prompt" (a string, or absent: "") and "completion" (a string). */
static int score_item(const char **prompt, const char **completion, const cJSON *obj, const char *where, char *why,
                      size_t len) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "completion");
    if (!cJSON_IsObject(obj)) return snprintf(why, len, "%s must be an object", where), 0;
    if (p && !cJSON_IsString(p)) return snprintf(why, len, "%s\"prompt\" must be a string", where), 0;
    if (!cJSON_IsString(q)) return snprintf(why, len, "%s\"completion\" must be a string", where), 0;
    *prompt = p ? p->valuestring : "";
    *completion = q->valuestring;
    return 1;
}

static enum MHD_Result handle_score(rollout_server *s, struct MHD_Connection *c, const cJSON *req) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(req, "items");
    int batch = items != NULL, n = batch ? cJSON_GetArraySize(items) : 1;
    size_t cap = s->cfg.max_score_items;
    if (batch && (!cJSON_IsArray(items) || n < 1))
        return send_error(c, 400, "invalid_request_error", "items", "\"items\" must be a non-empty list of objects");
    if ((size_t)n > cap)
        return send_error(c, 400, "invalid_request_error", "items", "%d items; at most %zu per request", n, cap);
    const char **prompts = calloc((size_t)n, sizeof *prompts), **completions = calloc((size_t)n, sizeof *completions);
    double *scores = calloc((size_t)n, sizeof *scores);
    if (!prompts || !completions || !scores) {
        free(prompts), free(completions), free(scores);
        return send_error(c, 500, "server_error", NULL, "out of memory");
    }
    char why[256] = "";
    int ok = 1, k = 0;
    if (!batch) ok = score_item(&prompts[0], &completions[0], req, "", why, sizeof why);
    for (const cJSON *it = batch ? items->child : NULL; it && ok; it = it->next, k++) {
        char where[48];
        snprintf(where, sizeof where, "items[%d]%s", k, cJSON_IsObject(it) ? "." : "");
        ok = score_item(&prompts[k], &completions[k], it, where, why, sizeof why);
    }
    enum MHD_Result ret;
    if (!ok) {
        ret = send_error(c, 400, "invalid_request_error", NULL, "%s", why);
    } else {
        pt_error err = {0};
        pt_status st = PT_OK;
        tokenizer *tok = s->cfg.reward_tokenizer ? s->cfg.reward_tokenizer : s->tok;
        pthread_mutex_lock(&s->gen_mu);
        for (int i = 0; i < n && st == PT_OK; i++)
            st = reward_model_score_text(&scores[i], s->cfg.reward_model, tok, prompts[i], completions[i],
                                         s->cfg.reward_max_length, &err);
        pthread_mutex_unlock(&s->gen_mu);
        if (st != PT_OK) {
            ret = send_error(c, st == PT_ERR_INVALID ? 400 : 500, st == PT_ERR_INVALID ? "invalid_request_error"
                                                                                      : "server_error",
                             NULL, "scoring failed: %s", err.msg);
        } else {
            cJSON *root = cJSON_CreateObject();
            if (batch) {
                cJSON *arr = cJSON_AddArrayToObject(root, "scores");
                for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(scores[i]));
            } else {
                cJSON_AddNumberToObject(root, "score", scores[0]);
            }
            ret = send_json(c, 200, root);
        }
    }
    free(prompts);
    free(completions);
    free(scores);
    return ret;
}

static enum MHD_Result route(rollout_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             srv_req *rq) {
    int post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    if (strcmp(url, "/v1/models") == 0) {
        if (!get) return send_error(c, 405, "invalid_request_error", NULL, "use GET for /v1/models");
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(root, "data");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", s->model_name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "posttrain");
        cJSON_AddItemToArray(data, m);
        return send_json(c, 200, root);
    }
    int is_comp = strcmp(url, "/v1/completions") == 0, is_chat = strcmp(url, "/v1/chat/completions") == 0;
    int is_score = strcmp(url, "/v1/score") == 0;
    if (!is_comp && !is_chat && !is_score)
        return send_error(c, 404, "invalid_request_error", NULL, "unknown route %s %s", method, url);
    if (!post) return send_error(c, 405, "invalid_request_error", NULL, "use POST for %s", url);
    if (rq->too_large)
        return send_error(c, 413, "invalid_request_error", NULL, "request body is larger than %zu bytes",
                          s->cfg.max_request_bytes);
    if (is_score && !s->cfg.reward_model)
        return send_error(c, 501, "not_implemented", NULL,
                          "/v1/score needs a reward model: start the server with --reward-model DIR");
    if (!is_score && !s->m)
        return send_error(c, 501, "not_implemented", NULL,
                          "this server holds only a reward model: start it with --model DIR to generate");
    cJSON *req = rq->body ? cJSON_ParseWithLength(rq->body, rq->len) : NULL;
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return send_error(c, 400, "invalid_request_error", NULL, "the body is not a JSON object");
    }
    enum MHD_Result ret = is_score ? handle_score(s, c, req) : handle_generate(s, c, req, is_chat);
    cJSON_Delete(req);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version;
    rollout_server *s = cls;
    srv_req *rq = *state;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *state = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rq->too_large && rq->len + *upload_size > s->cfg.max_request_bytes) {
            rq->too_large = 1;
            free(rq->body);
            rq->body = NULL;
        }
        if (!rq->too_large) {
            char *b = realloc(rq->body, rq->len + *upload_size + 1);
            if (!b) return MHD_NO;
            memcpy(b + rq->len, upload, *upload_size);
            rq->body = b;
            rq->len += *upload_size;
            b[rq->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    srv_req *rq = *state;
    if (rq) free(rq->body);
    free(rq);
    *state = NULL;
}

pt_status rollout_server_start(rollout_server **out, const policy_model *m, tokenizer *tok,
                               const rollout_server_config *cfg, pt_error *err) {
    *out = NULL;
    PT_CHECK(cfg && (m || cfg->reward_model) && (tok || (!m && cfg->reward_tokenizer)), err, PT_ERR_INVALID,
             "rollout_server_start: bad arguments");
    if (cfg->reward_model) {
        const tokenizer *rt = cfg->reward_tokenizer ? cfg->reward_tokenizer : tok;
        if ((int64_t)tokenizer_n_ids(rt) > cfg->reward_model->base.cfg.vocab_size)
            PT_FAIL(err, PT_ERR_CONFIG, "the reward model's tokenizer has %zu ids but its vocab_size is %d",
                    tokenizer_n_ids(rt), cfg->reward_model->base.cfg.vocab_size);
    }
    if (m && (int64_t)tokenizer_n_ids(tok) > m->cfg.vocab_size)
        PT_FAIL(err, PT_ERR_CONFIG, "the tokenizer has %zu ids but the model's vocab_size is %d", tokenizer_n_ids(tok),
                m->cfg.vocab_size);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    if (cfg->port < 0 || cfg->port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        PT_FAIL(err, PT_ERR_CONFIG, "cannot listen on '%s' port %d: give an IPv4 address and a port in [0, 65535]",
                host, cfg->port);
    rollout_server *s = calloc(1, sizeof *s);
    PT_CHECK_ALLOC(s, err, sizeof *s);
    s->m = m;
    s->tok = tok;
    s->cfg = *cfg;
    if (!s->cfg.max_request_bytes) s->cfg.max_request_bytes = (size_t)1 << 20;
    if (s->cfg.max_tokens_cap <= 0) s->cfg.max_tokens_cap = 4096;
    if (s->cfg.max_n <= 0 || s->cfg.max_n > 16) s->cfg.max_n = 16;
    if (!s->cfg.reward_max_length) s->cfg.reward_max_length = 1024;
    if (!s->cfg.max_score_items) s->cfg.max_score_items = 256;
    snprintf(s->model_name, sizeof s->model_name, "%s", cfg->model_name ? cfg->model_name : "posttrain");
    pthread_mutex_init(&s->gen_mu, NULL);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed,
                            NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_END);
    if (!s->d) {
        pthread_mutex_destroy(&s->gen_mu);
        free(s);
        PT_FAIL(err, PT_ERR_IO, "cannot listen on %s:%d (port in use, or no permission)", host, cfg->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return PT_OK;
}

int rollout_server_port(const rollout_server *s) { return s->port; }

void rollout_server_stop(rollout_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->gen_mu);
    free(s);
}
