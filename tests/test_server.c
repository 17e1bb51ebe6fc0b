/* test_server.c — rollout/server (posttrain serve) on 127.0.0.1 with a tiny model built from the
 * tokenizer fixture: OpenAI error shapes and status codes (400, 404, 413, 501), concurrent
 * requests all answered, the port freed on stop, and the http reward's judge mode doing a full
 * chat-completions round trip against it.
 *
 * The judge model is rigged so that its greedy reply is known without running our own code:
 * the final norm keeps only hidden channel 0 and the output head has two non-zero rows, +e0 for
 * the token "7" and −e0 for "3", so every greedy token is "7" or "3" (whichever sign channel 0
 * has) and a reply of one token is a digit the regex must find. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rewards/reward_http.h"
#include "rollout/server.h"
#include "tests/util/check.h"
#include "tests/util/tiny_model.h"

typedef struct served {
    policy_model m;
    tokenizer *tok;
    rollout_server *srv;
    int port;
} served;

static void serve_tiny(served *sv, int rig_digits, size_t max_request) {
    pt_error err = {0};
    char path[4096];
    cr_assert_eq(tokenizer_load(&sv->tok, fixture_path(path, sizeof path, "tokenizer"), &err), PT_OK, "%s", err.msg);
    model_config cfg;
    tiny_model_config(&cfg);
    cfg.vocab_size = (int)tokenizer_n_ids(sv->tok);
    cfg.max_position_embeddings = 512;
    cfg.rope.type = MODEL_ROPE_DEFAULT;
    cr_assert_eq(model_init(&sv->m, &cfg, 3, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    if (rig_digits) {
        const int H = sv->m.cfg.hidden_size, V = sv->m.cfg.vocab_size;
        float *norm = sv->m.params + sv->m.layout.final_norm, *head = sv->m.params + sv->m.layout.lm_head;
        memset(norm, 0, sizeof(float) * (size_t)H);
        norm[0] = 1.0f;
        memset(head, 0, sizeof(float) * (size_t)V * H);
        int32_t seven = tokenizer_token_to_id(sv->tok, "7", 1), three = tokenizer_token_to_id(sv->tok, "3", 1);
        cr_assert(seven >= 0 && three >= 0);
        head[(size_t)seven * H] = 10.0f;
        head[(size_t)three * H] = -10.0f;
    }
    rollout_server_config sc = rollout_server_config_default();
    sc.port = 0;
    sc.model_name = "tiny";
    if (max_request) sc.max_request_bytes = max_request;
    cr_assert_eq(rollout_server_start(&sv->srv, &sv->m, sv->tok, &sc, &err), PT_OK, "%s", err.msg);
    sv->port = rollout_server_port(sv->srv);
    cr_assert_gt(sv->port, 0);
}

static void serve_stop(served *sv) {
    rollout_server_stop(sv->srv);
    model_free(&sv->m);
    tokenizer_free(sv->tok);
}

typedef struct body_buf {
    char data[1 << 16];
    size_t len;
} body_buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    body_buf *b = ud;
    size_t k = size * n;
    if (b->len + k >= sizeof b->data) return 0;
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
    return k;
}

/* One request; returns the HTTP status (0 on a transport failure) and the parsed body. */
static long request(int port, const char *method, const char *path, const char *body, size_t body_len, cJSON **json) {
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body_buf *b = calloc(1, sizeof *b);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    long code = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (json) *json = cJSON_Parse(b->data);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(b);
    return code;
}

static void expect_openai_error(const cJSON *j, const char *what) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cr_assert(cJSON_IsObject(e), "%s: no error object", what);
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")), "%s: no message", what);
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")), "%s: no type", what);
    cr_assert(cJSON_HasObjectItem(e, "param") && cJSON_HasObjectItem(e, "code"), "%s: no param/code", what);
}

Test(server, errors_have_openai_shape_and_codes) {
    served sv;
    serve_tiny(&sv, 0, 4096);
    cJSON *j = NULL;
    cr_assert_eq(request(sv.port, "POST", "/v1/completions", "{\"prompt\": ", 11, &j), 400);
    expect_openai_error(j, "malformed JSON");
    cJSON_Delete(j);
    cr_assert_eq(request(sv.port, "POST", "/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": -3}", 34, &j), 400);
    expect_openai_error(j, "bad max_tokens");
    cr_assert(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring, "max_tokens"));
    cJSON_Delete(j);
    cr_assert_eq(request(sv.port, "GET", "/v2/nothing", NULL, 0, &j), 404);
    expect_openai_error(j, "unknown route");
    cJSON_Delete(j);
    char *big = malloc(10000);
    memset(big, ' ', 10000);
    memcpy(big, "{\"prompt\": \"x\"}", 15);
    cr_assert_eq(request(sv.port, "POST", "/v1/completions", big, 10000, &j), 413);
    expect_openai_error(j, "too large");
    cJSON_Delete(j);
    free(big);
    cr_assert_eq(request(sv.port, "POST", "/v1/score", "{}", 2, &j), 501);
    expect_openai_error(j, "score");
    cJSON_Delete(j);
    cr_assert_eq(request(sv.port, "GET", "/v1/models", NULL, 0, &j), 200);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "id")->valuestring,
                     "tiny");
    cJSON_Delete(j);
    serve_stop(&sv);
}

typedef struct client_arg {
    int port, ok, choices;
} client_arg;

static void *client(void *p) {
    client_arg *a = p;
    const char *body = "{\"prompt\": [\"hello\", \"world\"], \"max_tokens\": 4, \"n\": 2, \"seed\": 5, \"logprobs\": 0}";
    cJSON *j = NULL;
    a->ok = request(a->port, "POST", "/v1/completions", body, strlen(body), &j) == 200;
    const cJSON *ch = cJSON_GetObjectItem(j, "choices");
    a->choices = cJSON_GetArraySize(ch);
    for (const cJSON *c = ch ? ch->child : NULL; c; c = c->next) {
        const cJSON *fr = cJSON_GetObjectItem(c, "finish_reason");
        const cJSON *lp = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "token_logprobs");
        if (!cJSON_IsString(cJSON_GetObjectItem(c, "text")) || !cJSON_IsString(fr) || !cJSON_IsArray(lp)) a->ok = 0;
        for (const cJSON *x = lp ? lp->child : NULL; x; x = x->next)
            if (!(x->valuedouble <= 0)) a->ok = 0; /* log-probabilities */
    }
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    if (!cJSON_IsNumber(cJSON_GetObjectItem(u, "total_tokens"))) a->ok = 0;
    cJSON_Delete(j);
    return NULL;
}

Test(server, concurrent_requests_are_all_answered_and_stop_frees_the_port) {
    served sv;
    serve_tiny(&sv, 0, 0);
    pthread_t th[4];
    client_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (client_arg){sv.port, 0, 0};
        pthread_create(&th[i], NULL, client, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert(args[i].ok, "client %d failed", i);
        cr_assert_eq(args[i].choices, 4, "2 prompts × n 2");
    }
    int port = sv.port;
    serve_stop(&sv);
    /* the port is free again: binding it succeeds at once */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "port %d still held after stop", port);
    close(fd);
}

static pt_status init_ctx(reward *self, const cJSON *cfg, void *ctx, pt_error *err) {
    (void)ctx;
    return reward_http_init(self, cfg, err);
}

static reward *make_judge(int port, const char *extra) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"type\": \"http_t\", \"mode\": \"judge\", \"url\": \"http://127.0.0.1:%d/v1/chat/completions\", "
             "\"model\": \"tiny\", \"max_tokens\": 1, \"temperature\": 0, \"timeout_ms\": 20000, "
             "\"template\": \"Question: {prompt} Answer: {completion} Reference: {answer}\"%s}",
             port, extra);
    reward_registry reg;
    reward_registry_init(&reg);
    pt_error err = {0};
    cr_assert_eq(reward_registry_add(&reg, "http_t", "test", init_ctx, NULL, &err), PT_OK);
    reward *r = NULL;
    cr_assert_eq(reward_create_json(&r, cfg, &reg, &err), PT_OK, "%s", err.msg);
    reward_registry_free(&reg);
    return r;
}

Test(server, judge_round_trip_parses_or_masks) {
    served sv;
    serve_tiny(&sv, 1, 0);
    /* the raw round trip first: a one-token reply that is a digit */
    const char *body = "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"Rate 2+2=4\"}], "
                       "\"max_tokens\": 1, \"temperature\": 0}";
    cJSON *j = NULL;
    cr_assert_eq(request(sv.port, "POST", "/v1/chat/completions", body, strlen(body), &j), 200);
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content");
    cr_assert(cJSON_IsString(content));
    cr_assert(strcmp(content->valuestring, "7") == 0 || strcmp(content->valuestring, "3") == 0, "reply '%s'",
              content->valuestring);
    cr_assert_str_eq(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens")->valueint, 1);
    cJSON_Delete(j);

    reward_item items[3] = {{"2+2?", "4", "{\"answer\": \"4\"}", -1},
                            {"3*3?", "9", "{\"answer\": 9}", -1},
                            {"no answer column", "x", "{}", -1}};
    reward_result out[3];
    pt_error err = {0};
    reward *r = make_judge(sv.port, ", \"score_regex\": \"([0-9])\", \"min_score\": 0, \"max_score\": 10");
    cr_assert_eq(reward_score(r, out, items, 3, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(out[i].status, REWARD_OK, "item %d: %s", i, out[i].reason);
        cr_assert(out[i].score == 7 || out[i].score == 3, "score %g", out[i].score);
    }
    cr_assert_eq(out[2].status, REWARD_MASKED);
    cr_assert(strstr(out[2].reason, "answer"), "%s", out[2].reason);
    reward_free(r);

    /* a score outside the range, and a reply without the pattern: masked, never invented */
    r = make_judge(sv.port, ", \"score_regex\": \"([0-9])\", \"min_score\": 0, \"max_score\": 2");
    cr_assert_eq(reward_score(r, out, items, 2, &err), PT_OK);
    for (int i = 0; i < 2; i++) cr_assert(out[i].status == REWARD_ERROR && strstr(out[i].reason, "outside"), "%s",
                                          out[i].reason);
    reward_free(r);
    r = make_judge(sv.port, ", \"score_regex\": \"Score: ([0-9])\"");
    cr_assert_eq(reward_score(r, out, items, 2, &err), PT_OK);
    for (int i = 0; i < 2; i++) cr_assert(out[i].status == REWARD_ERROR && strstr(out[i].reason, "no score"), "%s",
                                          out[i].reason);
    reward_http_stats st;
    cr_assert_eq(reward_http_get_stats(&st, r, &err), PT_OK);
    cr_assert_eq(st.item_failures[HTTP_FAIL_BAD_SCORE], 2);
    cr_assert_eq(st.retries, 0, "a bad judge reply is not retried");
    reward_free(r);
    serve_stop(&sv);
}
