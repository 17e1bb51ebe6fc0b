/* test_rm_reward.c — the `model` reward (rewards/reward_rm.c) and `/v1/score` of the server
 * (rollout/server.c), on a small random reward model with the fixture tokenizer.
 *
 * What carries weight:
 *   - the `model` reward's scores equal an independent path: the test's own tokenisation
 *     (BOS + prompt, completion, EOS, cut at max_length) fed through reward_model_forward as one
 *     padded batch (a different batch shape) — to 1e-5; an item over max_length is cut, so its
 *     score changes when max_length does.
 *   - over real HTTP: a separate process (forked before this process runs any model code) serves
 *     the reward model with rollout_server; the `http` reward (mode "score", libcurl) sends it
 *     the items and must get back exactly (==) the in-process `model` reward's scores, UTF-8 and
 *     truncated items included; the batch form returns the same numbers; bad requests get 400
 *     in OpenAI's error shape; generation routes of a reward-only server answer 501; SIGTERM
 *     stops the server process with exit status 0.
 *   - configuration errors: no path, an unknown key, a policy folder without score.weight.
 */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/reward_model.h"
#include "rewards/reward.h"
#include "rollout/server.h"
#include "sft/sft_files.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

typedef struct rm_world {
    char dir[64];
    char rm[128];
    char policy[128];
} rm_world;

static void small_config(model_config *c) {
    test_small_policy_config(c, 2048);
    c->intermediate_size = 48;
    c->max_position_embeddings = 256;
    c->initializer_range = 0.2;
}

/* A random reward model folder and a policy folder (no head), both with the fixture tokenizer. No
 * model code runs here (initialisation and saving only), so a fork afterwards is safe. */
static void world_init(rm_world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "rmr");
    snprintf(w->rm, sizeof w->rm, "%s/rm", w->dir);
    snprintf(w->policy, sizeof w->policy, "%s/policy", w->dir);
    char tok_dir[1024];
    fixture_path(tok_dir, sizeof tok_dir, "tokenizer");
    model_config c;
    small_config(&c);
    pt_error err = {0};
    reward_model rm;
    cr_assert_eq(reward_model_init(&rm, &c, 5, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(reward_model_save(&rm, w->rm, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(sft_copy_tokenizer_files(w->rm, tok_dir, &err), PT_OK, "%s", err.msg);
    reward_model_free(&rm);
    test_save_policy(w->policy, &c, 5);
    model_config_free(&c);
}

static void world_free(rm_world *w) { test_rmtree(w->dir); }

static const reward_item ITEMS[] = {
    {"What is 2+2?", " 4", NULL, -1},
    {"What is 2+2?", " five, I think", NULL, -1},
    {"Name a colour.", " café au lait ☕ — a brown", NULL, -1},
    {"", " no prompt at all", NULL, -1},
    {"Say something long.", " one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                            "fifteen sixteen seventeen eighteen nineteen twenty",
     "{\"answer\": 1}", -1},
    {"Empty completion:", "", NULL, -1},
};
#define NITEMS ((int)(sizeof ITEMS / sizeof ITEMS[0]))
#define MAXLEN 40

static reward *make_model_reward(const rm_world *w, int max_length) {
    char json[512];
    snprintf(json, sizeof json, "{\"name\": \"rm\", \"type\": \"model\", \"path\": \"%s\", \"max_length\": %d}", w->rm,
             max_length);
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, json, NULL, &err), PT_OK, "%s", err.msg);
    return r;
}

Test(rm_reward, scores_match_an_independent_batch) {
    rm_world w;
    world_init(&w);
    reward *r = make_model_reward(&w, MAXLEN);
    reward_result out[NITEMS];
    pt_error err = {0};
    cr_assert_eq(reward_score(r, out, ITEMS, NITEMS, &err), PT_OK, "%s", err.msg);

    /* The same numbers another way: tokens built here, all items in one padded batch. */
    reward_model rm;
    tokenizer *tok = NULL;
    cr_assert_eq(reward_model_load(&rm, w.rm, 0, 0, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(tokenizer_load(&tok, w.rm, &err), PT_OK, "%s", err.msg);
    int ids[NITEMS * MAXLEN] = {0}, lengths[NITEMS];
    int cut = 0;
    for (int i = 0; i < NITEMS; i++) {
        tok_ids t = {0};
        cr_assert_eq(tokenizer_encode(&t, tok, ITEMS[i].prompt, strlen(ITEMS[i].prompt), TOK_ADD_SPECIAL, &err), PT_OK);
        cr_assert_eq(t.ids[0], tokenizer_bos_id(tok), "BOS first");
        cr_assert_eq(tokenizer_encode(&t, tok, ITEMS[i].completion, strlen(ITEMS[i].completion), 0, &err), PT_OK);
        size_t n = t.n < MAXLEN ? t.n : MAXLEN;
        for (size_t k = 0; k < n; k++) ids[i * MAXLEN + (int)k] = t.ids[k];
        if (t.n < MAXLEN) ids[i * MAXLEN + (int)n++] = tokenizer_eos_id(tok);
        else cut++;
        lengths[i] = (int)n;
        tok_ids_free(&t);
    }
    cr_assert_eq(cut, 1, "exactly one item is over max_length");
    reward_model_acts ra;
    cr_assert_eq(reward_model_acts_init(&ra, &rm, NITEMS, MAXLEN, &err), PT_OK, "%s", err.msg);
    float want[NITEMS];
    cr_assert_eq(reward_model_forward(want, &rm, &ra, ids, lengths, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < NITEMS; i++) {
        cr_assert_eq(out[i].status, REWARD_OK, "item %d: %s", i, out[i].reason);
        cr_assert(fabs(out[i].score - want[i]) <= 1e-5 + 1e-5 * fabs(want[i]), "item %d: %.9g vs %.9g", i,
                  out[i].score, want[i]);
    }
    cr_assert_gt(fabs(out[0].score - out[1].score), 1e-4, "different completions, different scores");
    /* A longer max_length sees the whole long item: its score changes, the others do not. */
    reward *r2 = make_model_reward(&w, 1024);
    reward_result out2[NITEMS];
    cr_assert_eq(reward_score(r2, out2, ITEMS, NITEMS, &err), PT_OK);
    for (int i = 0; i < NITEMS; i++)
        if (i == 4) cr_assert_neq(out2[i].score, out[i].score);
        else cr_assert_eq(out2[i].score, out[i].score, "item %d", i);
    reward_free(r2);
    reward_model_acts_free(&ra);
    tokenizer_free(tok);
    reward_model_free(&rm);
    reward_free(r);
    world_free(&w);
}

Test(rm_reward, config_errors) {
    rm_world w;
    world_init(&w);
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"model\"}", NULL, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "path"), "%s", err.msg);
    char json[512];
    snprintf(json, sizeof json, "{\"type\": \"model\", \"path\": \"%s\", \"max_lenght\": 3}", w.rm);
    cr_assert_eq(reward_create_json(&r, json, NULL, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "max_lenght"), "%s", err.msg);
    snprintf(json, sizeof json, "{\"type\": \"model\", \"path\": \"%s\"}", w.policy);
    cr_assert_neq(reward_create_json(&r, json, NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "score.weight") && strstr(err.msg, w.policy), "%s", err.msg);
    cr_assert_null(r);
    world_free(&w);
}

/* ---- a server in another process ---------------------------------------------------------- */

/* The child: load the reward model, serve it on an ephemeral port, report the port on fd, and
 * stop cleanly on SIGTERM. Exit status 0 only after a clean stop. */
static void serve_child(const rm_world *w, int fd) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    /* A failed assertion ends the test process: take this server down with it. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() == 1) _exit(4);
    pt_error err = {0};
    reward_model rm;
    tokenizer *tok = NULL;
    int port = -1;
    rollout_server *srv = NULL;
    if (reward_model_load(&rm, w->rm, 0, 0, &err) == PT_OK && tokenizer_load(&tok, w->rm, &err) == PT_OK) {
        rollout_server_config sc = rollout_server_config_default();
        sc.port = 0;
        sc.reward_model = &rm;
        sc.reward_tokenizer = tok;
        sc.reward_max_length = MAXLEN;
        if (rollout_server_start(&srv, NULL, NULL, &sc, &err) == PT_OK) port = rollout_server_port(srv);
    }
    if (write(fd, &port, sizeof port) != sizeof port || port < 0) _exit(3);
    close(fd);
    int sig = 0;
    sigwait(&stop, &sig);
    rollout_server_stop(srv);
    tokenizer_free(tok);
    reward_model_free(&rm);
    _exit(0);
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

static long post(int port, const char *path, const char *body, cJSON **json) {
    CURL *e = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body_buf *b = calloc(1, sizeof *b);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    long code = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    *json = cJSON_Parse(b->data);
    curl_easy_cleanup(e);
    free(b);
    return code;
}

static void expect_error(int port, const char *path, const char *body, long status, const char *needle) {
    cJSON *j = NULL;
    cr_assert_eq(post(port, path, body, &j), status, "%s %s", path, body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    cr_assert(cJSON_IsString(m) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")), "%s: no OpenAI error",
              body);
    cr_assert(strstr(m->valuestring, needle), "'%s' should mention '%s'", m->valuestring, needle);
    cJSON_Delete(j);
}

Test(rm_reward, http_reward_against_a_serving_process_equals_local_scores, .timeout = 120) {
    rm_world w;
    world_init(&w);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        serve_child(&w, fds[1]);
    }
    close(fds[1]);
    int port = -1;
    cr_assert_eq(read(fds[0], &port, sizeof port), (ssize_t)sizeof port, "the server process died");
    close(fds[0]);
    cr_assert_gt(port, 0);

    reward *local = make_model_reward(&w, MAXLEN);
    char json[512];
    snprintf(json, sizeof json,
             "{\"name\": \"remote\", \"type\": \"http\", \"url\": \"http://127.0.0.1:%d/v1/score\", \"retries\": 0}",
             port);
    reward *remote = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&remote, json, NULL, &err), PT_OK, "%s", err.msg);
    reward_result a[NITEMS], b[NITEMS];
    cr_assert_eq(reward_score(local, a, ITEMS, NITEMS, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(reward_score(remote, b, ITEMS, NITEMS, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < NITEMS; i++) {
        cr_assert_eq(a[i].status, REWARD_OK, "local %d: %s", i, a[i].reason);
        cr_assert_eq(b[i].status, REWARD_OK, "remote %d: %s", i, b[i].reason);
        cr_assert_eq(a[i].score, b[i].score, "item %d: local %.17g, over HTTP %.17g", i, a[i].score, b[i].score);
    }

    /* The batch form gives the same numbers, in order. */
    cJSON *req = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(req, "items");
    for (int i = 0; i < NITEMS; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "prompt", ITEMS[i].prompt);
        cJSON_AddStringToObject(it, "completion", ITEMS[i].completion);
        cJSON_AddItemToArray(arr, it);
    }
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *j = NULL;
    cr_assert_eq(post(port, "/v1/score", body, &j), 200);
    free(body);
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(j, "scores");
    cr_assert_eq(cJSON_GetArraySize(scores), NITEMS);
    for (int i = 0; i < NITEMS; i++)
        cr_assert_eq(cJSON_GetArrayItem(scores, i)->valuedouble, a[i].score, "batch item %d", i);
    cJSON_Delete(j);

    expect_error(port, "/v1/score", "{\"prompt\": \"x\"}", 400, "completion");
    expect_error(port, "/v1/score", "{\"prompt\": 3, \"completion\": \"x\"}", 400, "prompt");
    expect_error(port, "/v1/score", "{\"items\": [{\"completion\": \"x\"}, 5]}", 400, "items[1]");
    expect_error(port, "/v1/score", "{\"items\": []}", 400, "items");
    expect_error(port, "/v1/score", "[1]", 400, "JSON object");
    expect_error(port, "/v1/completions", "{\"prompt\": \"x\"}", 501, "--model");

    reward_free(local);
    reward_free(remote);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server process status %d", status);
    world_free(&w);
}
