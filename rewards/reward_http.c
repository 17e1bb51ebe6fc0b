/* reward_http.c — the `http` reward: each item is judged by a remote endpoint over HTTP, with
 * every transfer of a batch running concurrently on one libcurl multi handle.
 *
 * Modes:
 *   "score"  POST {"prompt", "completion", "columns"} to `url`; the reply is {"score": x}.
 *   "judge"  POST an OpenAI chat-completions request {"model", "messages": [{"role": "user",
 *            "content": template}], "max_tokens", "temperature"} to `url`, where the template's
 *            {prompt}, {completion} and {<column>} are replaced by the item's texts; the score is
 *            the first capture group of `score_regex` in choices[0].message.content, read as a
 *            number.
 *
 * Deadlines: an item's attempts and back-off waits all fit in `deadline_ms` counted from its
 * first attempt (default (retries + 1)·timeout_ms + retries·backoff_max_ms); each attempt is
 * cut at min(timeout_ms, time left). A batch of n ≤ max_concurrency items therefore ends within
 * deadline_ms (plus scheduling slack), whatever the server does.
 *
 * Connections are kept alive and reused unless keep_alive is false. libcurl itself re-sends a
 * request once, on a fresh connection, when a reused connection turns out to have been closed
 * before any answer (the usual keep-alive race); such a re-send is not counted as a retry here,
 * so with keep_alive the server may see up to twice the attempts counted for dropped connections.
 *
 * Retries (attempt k = 1, 2, ...; at most `retries`) only after a timeout, a connection failure
 * (refused, reset, dropped, truncated body), 429 or 5xx. Wait = uniform(0, min(backoff_max,
 * backoff_base·2^(k−1))) ("full jitter"), or Retry-After seconds when the server sent more; a
 * wait that would pass the deadline ends the item instead. Other answers (4xx, bad JSON, a bad
 * score) are final: retrying cannot fix them.
 *
 * Circuit breaker: `breaker_failures` consecutive failed attempts (transport, 429, 5xx, bad
 * reply) open it for `breaker_cooldown_ms`. While open nothing is sent and waiting items end with
 * "circuit open". After the cool-down one probe is let through (half-open): success closes the
 * breaker, failure re-opens it. The state outlives the batch.
 *
 * Results: a score only when the server sent a finite number inside [min_score, max_score];
 * every other outcome is REWARD_ERROR with the reason (a missing template column is
 * REWARD_MASKED: a dataset problem). Nothing is invented. Every attempt failure and every
 * unscored item is counted per reason (reward_http_get_stats). Header values (e.g. the API key
 * taken from an environment variable) never appear in messages.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rewards/reward_http.h"

#include <curl/curl.h>
#include <float.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

typedef enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state;

typedef struct http_reward {
    int judge;
    char *url, *model, *tmpl;
    pcre2_code *re;
    long timeout_connect_ms, timeout_ms, deadline_ms, retries, backoff_base_ms, backoff_max_ms;
    long max_concurrency, breaker_failures, breaker_cooldown_ms, max_tokens;
    size_t max_response;
    double temperature, min_score, max_score;
    bool keep_alive;
    struct curl_slist *headers;
    CURLM *multi;
    uint64_t rng;
    breaker_state breaker;
    double open_until;
    int consecutive;
    reward_http_stats st;
} http_reward;

typedef enum job_state { JOB_WAITING, JOB_RUNNING, JOB_DONE } job_state;

typedef struct http_job {
    CURL *easy;
    char *body;
    size_t body_len;
    char *resp;
    size_t resp_len, resp_cap, resp_max;
    int overflow, attempts, probe;
    double first_start, next_start;
    job_state state;
} http_job;

static const char *const FAILURE_NAMES[HTTP_FAIL_COUNT] = {
    "timeout", "connection", "http 429", "http 5xx", "http 4xx", "bad reply", "bad score", "circuit open", "deadline",
    "other"};

const char *http_failure_name(http_failure f) { return f >= 0 && f < HTTP_FAIL_COUNT ? FAILURE_NAMES[f] : "?"; }

static double rng_uniform(uint64_t *s) { /* splitmix64 → [0, 1) */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- request bodies ------------------------------------------------------------------------ */

static int add_text(cJSON *obj, const char *key, const char *text) {
    char *clean = reward_utf8_sanitize(text ? text : "");
    int ok = clean && cJSON_AddStringToObject(obj, key, clean) != NULL;
    free(clean);
    return ok;
}

/* Appends s[0..n) to *buf; 0 when out of memory. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = (*cap ? *cap : 256);
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return 0;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 1;
}

/* The judge prompt. Returns NULL and fills why (masked) when a column is missing, or NULL with
 * why empty when out of memory. */
static char *render_template(const char *tmpl, const reward_item *it, const cJSON *cols, char *why, size_t whylen) {
    char *out = NULL, num[64];
    size_t len = 0, cap = 0;
    why[0] = '\0';
    for (const char *p = tmpl; *p;) {
        const char *q = p;
        size_t nlen = 0;
        if (*p == '{') {
            q = p + 1;
            while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
            nlen = (size_t)(q - p - 1);
        }
        if (*p != '{' || nlen == 0 || *q != '}' || nlen >= 64) {
            if (!buf_add(&out, &len, &cap, p, 1)) goto nomem;
            p++;
            continue;
        }
        char name[64];
        memcpy(name, p + 1, nlen);
        name[nlen] = '\0';
        const char *val;
        if (strcmp(name, "prompt") == 0) val = it->prompt ? it->prompt : "";
        else if (strcmp(name, "completion") == 0) val = it->completion ? it->completion : "";
        else val = reward_column_text(num, sizeof num, cols, name);
        if (!val) {
            snprintf(why, whylen, "template column '%s' is missing or not text/number", name);
            free(out);
            return NULL;
        }
        if (!buf_add(&out, &len, &cap, val, strlen(val))) goto nomem;
        p = q + 1;
    }
    if (!out && !buf_add(&out, &len, &cap, "", 0)) goto nomem;
    return out;
nomem:
    free(out);
    return NULL;
}

/* The body for one item; NULL with res masked (bad template column) or NULL for out of memory. */
static char *build_body(const http_reward *h, const reward_item *it, reward_result *res, int *masked) {
    *masked = 0;
    cJSON *cols = cJSON_Parse(it->columns ? it->columns : "{}");
    if (!cJSON_IsObject(cols)) {
        cJSON_Delete(cols);
        cols = NULL;
    }
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (!h->judge) {
        ok = ok && add_text(root, "prompt", it->prompt) && add_text(root, "completion", it->completion);
        cJSON *c = cols ? cJSON_Duplicate(cols, 1) : cJSON_CreateNull();
        ok = ok && c && cJSON_AddItemToObject(root, "columns", c);
    } else {
        char why[REWARD_REASON_MAX];
        char *content = render_template(h->tmpl, it, cols, why, sizeof why);
        if (!content && why[0]) {
            reward_result_mask(res, REWARD_MASKED, "%s", why);
            *masked = 1;
            ok = 0;
        }
        ok = ok && cJSON_AddStringToObject(root, "model", h->model);
        cJSON *msgs = ok ? cJSON_AddArrayToObject(root, "messages") : NULL;
        cJSON *m = msgs ? cJSON_CreateObject() : NULL;
        ok = m && cJSON_AddItemToArray(msgs, m) && cJSON_AddStringToObject(m, "role", "user") &&
             add_text(m, "content", content);
        ok = ok && cJSON_AddNumberToObject(root, "max_tokens", (double)h->max_tokens) &&
             cJSON_AddNumberToObject(root, "temperature", h->temperature);
        free(content);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(cols);
    return text;
}

/* ---- replies ------------------------------------------------------------------------------- */

/* Validates x; on success writes the score and returns 1. */
static int accept_score(const http_reward *h, reward_result *res, double x, char *why, size_t whylen) {
    if (!isfinite(x)) {
        snprintf(why, whylen, "score is not finite (%g)", x);
        return 0;
    }
    if (x < h->min_score || x > h->max_score) {
        snprintf(why, whylen, "score %g outside [%g, %g]", x, h->min_score, h->max_score);
        return 0;
    }
    reward_result_ok(res, x);
    return 1;
}

/* Parses a 2xx body into res. Returns HTTP_FAIL_COUNT on success, else the failure kind (why set). */
static http_failure parse_reply(const http_reward *h, reward_result *res, const char *body, size_t len, char *why,
                                size_t whylen) {
    cJSON *root = cJSON_ParseWithLength(body ? body : "", len);
    http_failure f = HTTP_FAIL_BAD_REPLY;
    if (!cJSON_IsObject(root)) {
        snprintf(why, whylen, "reply is not a JSON object: '%.50s'", body ? body : "");
        goto done;
    }
    if (!h->judge) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "score");
        if (!s) {
            snprintf(why, whylen, "reply has no \"score\"");
            goto done;
        }
        f = HTTP_FAIL_BAD_SCORE;
        if (!cJSON_IsNumber(s)) {
            char *t = cJSON_PrintUnformatted(s);
            snprintf(why, whylen, "score %.40s is not a number", t ? t : "?");
            cJSON_free(t);
            goto done;
        }
        if (accept_score(h, res, s->valuedouble, why, whylen)) f = HTTP_FAIL_COUNT;
        goto done;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!cJSON_IsString(content)) {
        snprintf(why, whylen, "reply has no choices[0].message.content");
        goto done;
    }
    f = HTTP_FAIL_BAD_SCORE;
    const char *text = content->valuestring;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(h->re, NULL);
    if (!md) {
        snprintf(why, whylen, "out of memory for regex match data");
        goto done;
    }
    int rc = pcre2_match(h->re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (rc < 2 || ov[2] == PCRE2_UNSET) {
        snprintf(why, whylen, "no score in the judge's reply: '%.60s'", text);
    } else {
        char num[64];
        size_t n = ov[3] - ov[2];
        char *end = NULL;
        if (n == 0 || n >= sizeof num) {
            snprintf(why, whylen, "captured score '%.*s' is not a number", (int)(n < 40 ? n : 40), text + ov[2]);
        } else {
            memcpy(num, text + ov[2], n);
            num[n] = '\0';
            double x = strtod(num, &end);
            if (end != num + n) snprintf(why, whylen, "captured score '%s' is not a number", num);
            else if (accept_score(h, res, x, why, whylen)) f = HTTP_FAIL_COUNT;
        }
    }
    pcre2_match_data_free(md);
done:
    cJSON_Delete(root);
    return f;
}

/* ---- transfers ----------------------------------------------------------------------------- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
    http_job *j = ud;
    size_t n = size * nmemb;
    if (j->resp_len + n > j->resp_max) {
        j->overflow = 1;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (!buf_add(&j->resp, &j->resp_len, &j->resp_cap, ptr, n)) return 0;
    return n;
}

static int job_start(http_reward *h, http_job *j, double now) {
    if (j->attempts == 0) j->first_start = now;
    double left_ms = (j->first_start + h->deadline_ms * 1e-3 - now) * 1e3;
    long total = h->timeout_ms < left_ms ? h->timeout_ms : (long)left_ms;
    if (total < 1) total = 1;
    long conn = h->timeout_connect_ms < total ? h->timeout_connect_ms : total;
    CURL *e = curl_easy_init();
    if (!e) return 0;
    j->resp_len = 0;
    j->overflow = 0;
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conn);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!h->keep_alive) curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return 0;
    }
    j->easy = e;
    j->state = JOB_RUNNING;
    if (j->attempts > 0) h->st.retries++;
    j->attempts++;
    h->st.requests++;
    return 1;
}

static void breaker_fail(http_reward *h, double now) {
    h->consecutive++;
    if (h->breaker == BREAKER_HALF_OPEN ||
        (h->breaker == BREAKER_CLOSED && h->breaker_failures > 0 && h->consecutive >= h->breaker_failures)) {
        h->breaker = BREAKER_OPEN;
        h->open_until = now + h->breaker_cooldown_ms * 1e-3;
        h->st.circuit_opened++;
    }
}

static void item_fail(http_reward *h, http_job *j, reward_result *res, http_failure f, const char *why) {
    reward_result_mask(res, REWARD_ERROR, "%s", why);
    h->st.item_failures[f]++;
    j->state = JOB_DONE;
}

/* Handles a finished attempt: the item gets its result, or is scheduled for a retry. */
static void job_finish(http_reward *h, http_job *j, reward_result *res, CURLcode cc, double now) {
    long code = 0;
    curl_off_t retry_after = -1;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(h->multi, j->easy);
    curl_easy_cleanup(j->easy);
    j->easy = NULL;
    int probe = j->probe;
    j->probe = 0;
    char why[REWARD_REASON_MAX];
    http_failure f = HTTP_FAIL_COUNT;
    int retryable = 0;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        f = HTTP_FAIL_TIMEOUT, retryable = 1;
        snprintf(why, sizeof why, "timeout (attempt %d)", j->attempts);
    } else if (cc == CURLE_WRITE_ERROR && j->overflow) {
        f = HTTP_FAIL_BAD_REPLY;
        snprintf(why, sizeof why, "reply larger than max_response_bytes (%zu)", j->resp_max);
    } else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_GOT_NOTHING ||
               cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_PARTIAL_FILE) {
        f = HTTP_FAIL_CONNECT, retryable = 1;
        snprintf(why, sizeof why, "connection failed: %s", curl_easy_strerror(cc));
    } else if (cc != CURLE_OK) {
        f = HTTP_FAIL_OTHER;
        snprintf(why, sizeof why, "transfer failed: %s", curl_easy_strerror(cc));
    } else if (code == 429) {
        f = HTTP_FAIL_429, retryable = 1;
        snprintf(why, sizeof why, "HTTP 429 (rate limited)");
    } else if (code >= 500 && code <= 599) {
        f = HTTP_FAIL_5XX, retryable = 1;
        snprintf(why, sizeof why, "HTTP %ld", code);
    } else if (code < 200 || code > 299) {
        f = HTTP_FAIL_4XX;
        snprintf(why, sizeof why, "HTTP %ld", code);
    } else {
        f = parse_reply(h, res, j->resp, j->resp_len, why, sizeof why);
    }
    if (f == HTTP_FAIL_COUNT) { /* scored */
        h->consecutive = 0;
        if (probe || h->breaker == BREAKER_HALF_OPEN) h->breaker = BREAKER_CLOSED;
        h->st.scored++;
        j->state = JOB_DONE;
        return;
    }
    h->st.attempt_failures[f]++;
    if (f == HTTP_FAIL_BAD_SCORE) { /* the server works; this item's answer is bad */
        h->consecutive = 0;
        if (probe) h->breaker = BREAKER_CLOSED;
    } else {
        breaker_fail(h, now);
    }
    if (!retryable || j->attempts > h->retries) {
        if (retryable) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, "; gave up after %d attempts", j->attempts);
        }
        item_fail(h, j, res, f, why);
        return;
    }
    double cap = h->backoff_base_ms * 1e-3 * ldexp(1.0, j->attempts - 1);
    if (cap > h->backoff_max_ms * 1e-3) cap = h->backoff_max_ms * 1e-3;
    double wait = cap * rng_uniform(&h->rng);
    if (retry_after > 0 && (double)retry_after > wait) wait = (double)retry_after;
    if (now + wait >= j->first_start + h->deadline_ms * 1e-3) {
        size_t l = strlen(why);
        snprintf(why + l, sizeof why - l, "; no time left for a retry within deadline_ms %ld", h->deadline_ms);
        item_fail(h, j, res, HTTP_FAIL_DEADLINE, why);
        return;
    }
    if (h->st.max_backoff_s < wait) h->st.max_backoff_s = wait;
    if (h->st.min_backoff_s == 0 || h->st.min_backoff_s > wait) h->st.min_backoff_s = wait;
    j->next_start = now + wait;
    j->state = JOB_WAITING;
}

static pt_status http_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    http_reward *h = self->impl;
    http_job *jobs = calloc((size_t)n, sizeof *jobs);
    PT_CHECK_ALLOC(jobs, err, (size_t)n * sizeof *jobs);
    pt_status st = PT_OK;
    for (int i = 0; i < n; i++) {
        int masked = 0;
        reward_result_mask(&out[i], REWARD_ERROR, "not scored");
        jobs[i].resp_max = h->max_response;
        jobs[i].body = build_body(h, &items[i], &out[i], &masked);
        if (masked) jobs[i].state = JOB_DONE;
        else if (!jobs[i].body) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "http reward: out of memory building request %d", i);
            goto done;
        } else jobs[i].body_len = strlen(jobs[i].body);
    }
    for (;;) {
        double now = timer_now();
        if (h->breaker == BREAKER_OPEN && now >= h->open_until) h->breaker = BREAKER_HALF_OPEN;
        int running = 0, waiting = 0, probing = 0;
        for (int i = 0; i < n; i++) {
            running += jobs[i].state == JOB_RUNNING;
            probing += jobs[i].state == JOB_RUNNING && jobs[i].probe;
        }
        double next = now + 0.05;
        for (int i = 0; i < n; i++) {
            http_job *j = &jobs[i];
            if (j->state != JOB_WAITING) continue;
            if (h->breaker == BREAKER_OPEN) {
                item_fail(h, j, &out[i], HTTP_FAIL_CIRCUIT, "circuit open");
                continue;
            }
            waiting++;
            if (j->next_start > now) {
                if (j->next_start < next) next = j->next_start;
                continue;
            }
            if (running >= h->max_concurrency) continue;
            if (h->breaker == BREAKER_HALF_OPEN) {
                if (probing) continue;
                j->probe = 1;
                probing = 1;
            }
            if (!job_start(h, j, now)) {
                st = error_set(err, PT_ERR_BACKEND, __FILE__, __LINE__, "http reward: cannot start a transfer");
                goto done;
            }
            running++;
        }
        if (running == 0 && waiting == 0) break;
        int still = 0;
        curl_multi_perform(h->multi, &still);
        CURLMsg *msg;
        int left = 0, finished = 0;
        while ((msg = curl_multi_info_read(h->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            http_job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            job_finish(h, j, &out[j - jobs], msg->data.result, timer_now());
            finished++;
        }
        if (finished) continue;
        int ms = (int)((next - timer_now()) * 1e3);
        if (ms < 0) ms = 0;
        if (ms > 50) ms = 50;
        curl_multi_poll(h->multi, NULL, 0, ms, NULL);
    }
done:
    for (int i = 0; i < n; i++) {
        if (jobs[i].easy) {
            curl_multi_remove_handle(h->multi, jobs[i].easy);
            curl_easy_cleanup(jobs[i].easy);
        }
        free(jobs[i].body);
        free(jobs[i].resp);
    }
    free(jobs);
    h->st.circuit_open = h->breaker == BREAKER_OPEN;
    return st;
}

static void http_free(reward *self) {
    http_reward *h = self->impl;
    if (!h) return;
    if (h->multi) curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers);
    pcre2_code_free(h->re);
    free(h->url);
    free(h->model);
    free(h->tmpl);
    free(h);
    self->impl = NULL;
    curl_global_cleanup();
}

static const reward_vtable HTTP_VTABLE = {http_score_batch, http_free};

pt_status reward_http_get_stats(reward_http_stats *out, const reward *r, pt_error *err) {
    PT_CHECK(r && r->vt == &HTTP_VTABLE && r->impl, err, PT_ERR_INVALID, "reward_http_get_stats: not an http reward");
    *out = ((const http_reward *)r->impl)->st;
    return PT_OK;
}

static pt_status add_header(http_reward *h, const char *name, const char *value, pt_error *err) {
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);
    PT_CHECK_ALLOC(line, err, len);
    snprintf(line, len, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(h->headers, line);
    free(line);
    PT_CHECK_ALLOC(l, err, len);
    h->headers = l;
    return PT_OK;
}

static pt_status dup_string(char **out, const char *s, pt_error *err) {
    *out = strdup(s);
    PT_CHECK_ALLOC(*out, err, strlen(s) + 1);
    return PT_OK;
}

static const char *const HTTP_KEYS[] = {
    "url", "mode", "model", "template", "score_regex", "max_tokens", "temperature", "timeout_connect_ms",
    "timeout_ms", "deadline_ms", "retries", "backoff_base_ms", "backoff_max_ms", "max_concurrency",
    "breaker_failures", "breaker_cooldown_ms", "min_score", "max_score", "headers", "headers_env", "api_key_env",
    "max_response_bytes", "seed", "keep_alive"};

#define DEFAULT_TEMPLATE                                                                           \
    "Rate the answer to the question on a scale from 0 to 10. Reply with 'Score: <n>'.\n\n"        \
    "Question:\n{prompt}\n\nAnswer:\n{completion}"

static pt_status http_configure(http_reward *h, const cJSON *cfg, pt_error *err) {
    PT_TRY(reward_cfg_check_keys(cfg, HTTP_KEYS, (int)(sizeof HTTP_KEYS / sizeof *HTTP_KEYS), err));
    const char *url, *mode, *model, *tmpl, *rx;
    PT_TRY(reward_cfg_string(&url, cfg, "url", NULL, err));
    if (!url || !*url) PT_FAIL(err, PT_ERR_CONFIG, "missing \"url\" (e.g. \"http://127.0.0.1:8000/v1/chat/completions\")");
    PT_TRY(reward_cfg_string(&mode, cfg, "mode", "score", err));
    if (strcmp(mode, "score") != 0 && strcmp(mode, "judge") != 0)
        PT_FAIL(err, PT_ERR_CONFIG, "\"mode\" is '%s'; expected \"score\" or \"judge\"", mode);
    h->judge = strcmp(mode, "judge") == 0;
    PT_TRY(reward_cfg_string(&model, cfg, "model", "posttrain", err));
    PT_TRY(reward_cfg_string(&tmpl, cfg, "template", DEFAULT_TEMPLATE, err));
    PT_TRY(reward_cfg_string(&rx, cfg, "score_regex", "(-?[0-9]+(?:\\.[0-9]+)?)", err));
    PT_TRY(dup_string(&h->url, url, err));
    PT_TRY(dup_string(&h->model, model, err));
    PT_TRY(dup_string(&h->tmpl, tmpl, err));
    long resp = 0, seed = 0;
    struct {
        long *out;
        const char *key;
        long def, min;
    } ints[] = {{&h->timeout_connect_ms, "timeout_connect_ms", 2000, 1}, {&h->timeout_ms, "timeout_ms", 30000, 1},
                {&h->retries, "retries", 2, 0},          {&h->backoff_base_ms, "backoff_base_ms", 100, 0},
                {&h->backoff_max_ms, "backoff_max_ms", 5000, 0}, {&h->max_concurrency, "max_concurrency", 8, 1},
                {&h->breaker_failures, "breaker_failures", 5, 0},
                {&h->breaker_cooldown_ms, "breaker_cooldown_ms", 10000, 0}, {&h->max_tokens, "max_tokens", 64, 1},
                {&resp, "max_response_bytes", 1 << 20, 64},  {&seed, "seed", 0, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        PT_TRY(reward_cfg_int(ints[i].out, cfg, ints[i].key, ints[i].def, err));
        if (*ints[i].out < ints[i].min) PT_FAIL(err, PT_ERR_CONFIG, "\"%s\" must be >= %ld", ints[i].key, ints[i].min);
    }
    h->max_response = (size_t)resp;
    h->rng = (uint64_t)seed ^ 0x5eed5eedull;
    long def_deadline = h->timeout_ms * (h->retries + 1) + h->backoff_max_ms * h->retries;
    PT_TRY(reward_cfg_int(&h->deadline_ms, cfg, "deadline_ms", def_deadline, err));
    if (h->deadline_ms < 1) PT_FAIL(err, PT_ERR_CONFIG, "\"deadline_ms\" must be >= 1");
    PT_TRY(reward_cfg_bool(&h->keep_alive, cfg, "keep_alive", true, err));
    PT_TRY(reward_cfg_number(&h->temperature, cfg, "temperature", 0.0, err));
    PT_TRY(reward_cfg_number(&h->min_score, cfg, "min_score", -DBL_MAX, err));
    PT_TRY(reward_cfg_number(&h->max_score, cfg, "max_score", DBL_MAX, err));
    if (!(h->min_score <= h->max_score))
        PT_FAIL(err, PT_ERR_CONFIG, "\"min_score\" %g is above \"max_score\" %g", h->min_score, h->max_score);
    if (h->judge) {
        int code;
        PCRE2_SIZE off;
        h->re = pcre2_compile((PCRE2_SPTR)rx, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
        if (!h->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            PT_FAIL(err, PT_ERR_CONFIG, "\"score_regex\" at offset %zu: %s", (size_t)off, (const char *)msg);
        }
        uint32_t ncap = 0;
        pcre2_pattern_info(h->re, PCRE2_INFO_CAPTURECOUNT, &ncap);
        if (ncap < 1) PT_FAIL(err, PT_ERR_CONFIG, "\"score_regex\" needs a capture group around the score");
    }
    PT_TRY(add_header(h, "Content-Type", "application/json", err));
    PT_TRY(add_header(h, "Expect", "", err)); /* no 100-continue round trip */
    const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(cfg, "headers");
    if (hdrs && !cJSON_IsObject(hdrs)) PT_FAIL(err, PT_ERR_CONFIG, "\"headers\" must be an object of strings");
    for (const cJSON *x = hdrs ? hdrs->child : NULL; x; x = x->next) {
        if (!cJSON_IsString(x)) PT_FAIL(err, PT_ERR_CONFIG, "\"headers\".\"%s\" must be a string", x->string);
        PT_TRY(add_header(h, x->string, x->valuestring, err));
    }
    /* values from the environment: the message names the variable, never its value */
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(cfg, "headers_env");
    if (env && !cJSON_IsObject(env))
        PT_FAIL(err, PT_ERR_CONFIG, "\"headers_env\" must map header names to environment variable names");
    for (const cJSON *x = env ? env->child : NULL; x; x = x->next) {
        const char *v = cJSON_IsString(x) ? getenv(x->valuestring) : NULL;
        if (!v) PT_FAIL(err, PT_ERR_CONFIG, "\"headers_env\".\"%s\": environment variable '%s' is not set", x->string,
                        cJSON_IsString(x) ? x->valuestring : "?");
        PT_TRY(add_header(h, x->string, v, err));
    }
    const char *key_env;
    PT_TRY(reward_cfg_string(&key_env, cfg, "api_key_env", NULL, err));
    if (key_env) {
        const char *v = getenv(key_env);
        if (!v || !*v) PT_FAIL(err, PT_ERR_CONFIG, "\"api_key_env\": environment variable '%s' is not set", key_env);
        size_t len = strlen(v) + 8;
        char *bearer = malloc(len);
        PT_CHECK_ALLOC(bearer, err, len);
        snprintf(bearer, len, "Bearer %s", v);
        pt_status st = add_header(h, "Authorization", bearer, err);
        memset(bearer, 0, len);
        free(bearer);
        PT_TRY(st);
    }
    h->multi = curl_multi_init();
    if (!h->multi) PT_FAIL(err, PT_ERR_BACKEND, "curl_multi_init failed");
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, h->max_concurrency);
    return PT_OK;
}

pt_status reward_http_init(reward *self, const cJSON *cfg, pt_error *err) {
    self->impl = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) PT_FAIL(err, PT_ERR_BACKEND, "curl_global_init failed");
    http_reward *h = calloc(1, sizeof *h);
    if (!h) curl_global_cleanup();
    PT_CHECK_ALLOC(h, err, sizeof *h);
    self->impl = h;
    self->vt = &HTTP_VTABLE;
    pt_status st = http_configure(h, cfg, err);
    if (st != PT_OK) {
        http_free(self);
        self->vt = NULL;
    }
    return st;
}
