/* reward_host.c — see reward_host.h. */
#include "rewards/reward_host.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rewards/reward.h"

/* One request: the items borrow their strings from the parsed request, except columns, which
 * are printed into texts[]. */
typedef struct host_batch {
    reward_item *items;
    reward_result *res;
    char **columns;
    int n;
} host_batch;

static void batch_free(host_batch *b) {
    for (int i = 0; i < b->n; i++) cJSON_free(b->columns[i]);
    free(b->items);
    free(b->res);
    free(b->columns);
    *b = (host_batch){0};
}

/* Reads the request's items into b; false with why on a malformed request. */
static bool read_items(host_batch *b, const cJSON *req, char *why, size_t why_len) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(req, "items");
    if (!cJSON_IsObject(req) || !cJSON_IsArray(items)) {
        snprintf(why, why_len, "request is not {\"items\": [...]}");
        return false;
    }
    int n = cJSON_GetArraySize(items);
    b->items = calloc((size_t)(n ? n : 1), sizeof *b->items);
    b->res = calloc((size_t)(n ? n : 1), sizeof *b->res);
    b->columns = calloc((size_t)(n ? n : 1), sizeof *b->columns);
    if (!b->items || !b->res || !b->columns) {
        snprintf(why, why_len, "out of memory for %d items", n);
        return false;
    }
    const cJSON *it = items->child;
    for (int i = 0; i < n; i++, it = it->next) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(it, "prompt");
        const cJSON *completion = cJSON_GetObjectItemCaseSensitive(it, "completion");
        const cJSON *columns = cJSON_GetObjectItemCaseSensitive(it, "columns");
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(it, "completion_tokens");
        if (!cJSON_IsObject(it) || !cJSON_IsString(prompt) || !cJSON_IsString(completion)) {
            snprintf(why, why_len, "item %d: \"prompt\" and \"completion\" must be strings", i);
            return false;
        }
        if (columns && !cJSON_IsObject(columns) && !cJSON_IsNull(columns)) {
            snprintf(why, why_len, "item %d: \"columns\" must be an object or null", i);
            return false;
        }
        if (tokens && (!cJSON_IsNumber(tokens) || tokens->valuedouble != floor(tokens->valuedouble) ||
                       tokens->valuedouble < 0 || tokens->valuedouble > 1e9)) {
            snprintf(why, why_len, "item %d: \"completion_tokens\" must be a non-negative integer", i);
            return false;
        }
        b->columns[i] = cJSON_IsObject(columns) ? cJSON_PrintUnformatted(columns) : NULL;
        b->n = i + 1;
        if (cJSON_IsObject(columns) && !b->columns[i]) {
            snprintf(why, why_len, "out of memory for item %d's columns", i);
            return false;
        }
        b->items[i] = (reward_item){prompt->valuestring, completion->valuestring, b->columns[i],
                                    tokens ? (int)tokens->valuedouble : -1};
    }
    return true;
}

/* The reply to a scored batch, or NULL when out of memory. */
static char *scores_reply(const host_batch *b) {
    cJSON *root = cJSON_CreateObject();
    cJSON *scores = root ? cJSON_AddArrayToObject(root, "scores") : NULL;
    cJSON *reasons = root ? cJSON_AddArrayToObject(root, "reasons") : NULL;
    cJSON *errors = root ? cJSON_AddArrayToObject(root, "errors") : NULL;
    bool ok = scores && reasons && errors;
    for (int i = 0; i < b->n && ok; i++) {
        const reward_result *r = &b->res[i];
        ok = cJSON_AddItemToArray(scores, r->status == REWARD_OK ? cJSON_CreateNumber(r->score) : cJSON_CreateNull()) &&
             cJSON_AddItemToArray(reasons, cJSON_CreateString(r->status == REWARD_OK ? "" : r->reason)) &&
             cJSON_AddItemToArray(errors, cJSON_CreateBool(r->status == REWARD_ERROR));
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static char *error_reply(const char *msg) {
    cJSON *root = cJSON_CreateObject();
    char *text = root && cJSON_AddStringToObject(root, "error", msg) ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

/* The reply line to one request line (without its '\n'). */
static char *answer(reward *r, const char *line) {
    cJSON *req = cJSON_Parse(line);
    host_batch b = {0};
    char why[sizeof(((pt_error *)0)->msg) + 64] = "";
    char *reply = NULL;
    if (!req) {
        snprintf(why, sizeof why, "request is not JSON: '%.60s'", line);
    } else if (read_items(&b, req, why, sizeof why)) {
        pt_error err = {0};
        if (reward_score(r, b.res, b.items, b.n, &err) == PT_OK) reply = scores_reply(&b);
        else snprintf(why, sizeof why, "%s", err.msg);
        if (!reply && !why[0]) snprintf(why, sizeof why, "out of memory for the reply to %d items", b.n);
    }
    if (!reply) reply = error_reply(why);
    batch_free(&b);
    cJSON_Delete(req);
    return reply;
}

pt_status reward_host_serve(const char *cfg_json, FILE *in, FILE *out, pt_error *err) {
    reward *r = NULL;
    PT_TRY(reward_create_json(&r, cfg_json, NULL, err));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    pt_status st = PT_OK;
    while ((len = getline(&line, &cap, in)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        char *reply = answer(r, line);
        if (!reply || fprintf(out, "%s\n", reply) < 0 || fflush(out) != 0) {
            cJSON_free(reply);
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot write the reply to standard output");
            break;
        }
        cJSON_free(reply);
    }
    free(line);
    reward_free(r);
    return st;
}

int reward_host_main(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(stderr,
                "usage: posttrain reward-host CONFIG_JSON\n\n"
                "Serves one reward (CONFIG_JSON: its config object, e.g. {\"type\": \"plugin\", \"path\": \"./kw.so\"})\n"
                "over the subprocess reward's JSON-lines protocol on stdin/stdout. Name it as a subprocess\n"
                "reward's command to run a reward that may crash in its own process.\n");
        return 2;
    }
    /* Replies go to a private copy of stdout; stdout itself becomes stderr, so that whatever the
     * reward prints cannot fall into the protocol. */
    int fd = dup(STDOUT_FILENO);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        fprintf(stderr, "reward-host: cannot set up its output: %s\n", strerror(errno));
        if (out) fclose(out);
        else if (fd >= 0) close(fd);
        return 1;
    }
    pt_error err = {0};
    pt_status st = reward_host_serve(argv[1], stdin, out, &err);
    fclose(out);
    if (st == PT_OK) return 0;
    fprintf(stderr, "reward-host: %s\n", err.msg);
    return st == PT_ERR_IO ? 1 : 2;
}
