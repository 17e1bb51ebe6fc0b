/* fault_server.c — see fault_server.h. One mutex guards the per-text counters; handlers never
 * hold it while sleeping. */
#include "tests/util/fault_server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/timer.h"

#define FS_KEYS 128
#define FS_TIMES 16
#define FS_BODY_MAX 65536

typedef struct fs_key {
    char text[96];
    int count;
    double times[FS_TIMES];
} fs_key;

struct fault_server {
    struct MHD_Daemon *d;
    int port;
    atomic_int stopping;
    atomic_int active, peak;
    pthread_mutex_t mu;
    fs_key keys[FS_KEYS];
    int n_keys;
};

typedef struct fs_req {
    char *body;
    size_t len;
} fs_req;

/* Counts this request under text; returns how many carried it before (0 for the first). */
static int record(fault_server *s, const char *text) {
    pthread_mutex_lock(&s->mu);
    int k = 0;
    while (k < s->n_keys && strncmp(s->keys[k].text, text, sizeof s->keys[k].text - 1) != 0) k++;
    if (k == s->n_keys && k < FS_KEYS) {
        snprintf(s->keys[k].text, sizeof s->keys[k].text, "%s", text);
        s->n_keys++;
    }
    int before = 0;
    if (k < FS_KEYS) {
        before = s->keys[k].count;
        if (before < FS_TIMES) s->keys[k].times[before] = timer_now();
        s->keys[k].count++;
    }
    pthread_mutex_unlock(&s->mu);
    return before;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body, const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* "trunc": announces 64 bytes, sends 10, then fails the stream so the connection closes. */
static ssize_t trunc_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)cls;
    if (pos >= 10) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = 10 - (size_t)pos < max ? 10 - (size_t)pos : max;
    memcpy(buf, "{\"score\": 0.25}" + pos, n);
    return (ssize_t)n;
}

static enum MHD_Result act(fault_server *s, struct MHD_Connection *c, const char *text) {
    int before = record(s, text);
    double x = 0;
    int ms = 0, k = 0;
    char body[128];
    if (sscanf(text, "ok %lf", &x) == 1) {
        snprintf(body, sizeof body, "{\"score\": %.17g}", x);
        return reply(c, 200, body, NULL);
    }
    if (sscanf(text, "slow %d %lf", &ms, &x) == 2) {
        double until = timer_now() + ms * 1e-3;
        while (timer_now() < until && !atomic_load(&s->stopping)) usleep(5000);
        snprintf(body, sizeof body, "{\"score\": %.17g}", x);
        return reply(c, 200, body, NULL);
    }
    if (strcmp(text, "drop") == 0) return MHD_NO;
    if (strcmp(text, "500") == 0) return reply(c, 500, "{\"error\": \"injected\"}", NULL);
    if (strncmp(text, "429 ", 4) == 0) return reply(c, 429, "{\"error\": \"slow down\"}", text + 4);
    if (sscanf(text, "flaky %d %lf", &k, &x) == 2) {
        if (before < k) return reply(c, 503, "{\"error\": \"warming up\"}", NULL);
        snprintf(body, sizeof body, "{\"score\": %.17g}", x);
        return reply(c, 200, body, NULL);
    }
    if (strcmp(text, "trunc") == 0) {
        struct MHD_Response *r = MHD_create_response_from_callback(64, 64, trunc_reader, NULL, NULL);
        if (!r) return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(text, "badjson") == 0) return reply(c, 200, "{\"score\": 0.5", NULL);
    if (strcmp(text, "nan") == 0) return reply(c, 200, "{\"score\": \"NaN\"}", NULL);
    if (strcmp(text, "inf") == 0) return reply(c, 200, "{\"score\": 1e999}", NULL);
    if (strcmp(text, "null") == 0) return reply(c, 200, "{\"score\": null}", NULL);
    if (strcmp(text, "big") == 0) {
        size_t n = (size_t)2 << 20;
        char *b = malloc(n + 1);
        if (!b) return MHD_NO;
        memset(b, ' ', n);
        memcpy(b, "{\"score\": 1}", 12);
        b[n] = '\0';
        struct MHD_Response *r = MHD_create_response_from_buffer(n, b, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(b);
            return MHD_NO;
        }
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return reply(c, 400, "{\"error\": \"unknown directive\"}", NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)url, (void)version, (void)method;
    fault_server *s = cls;
    fs_req *rq = *state;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *state = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->len + *upload_size <= FS_BODY_MAX) {
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
    int now = atomic_fetch_add(&s->active, 1) + 1;
    int peak = atomic_load(&s->peak);
    while (now > peak && !atomic_compare_exchange_weak(&s->peak, &peak, now)) {
    }
    cJSON *root = rq->body ? cJSON_Parse(rq->body) : NULL;
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(root, "completion");
    enum MHD_Result ret = cJSON_IsString(comp) ? act(s, c, comp->valuestring)
                                               : reply(c, 400, "{\"error\": \"no completion\"}", NULL);
    cJSON_Delete(root);
    atomic_fetch_sub(&s->active, 1);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    fs_req *rq = *state;
    if (rq) free(rq->body);
    free(rq);
    *state = NULL;
}

pt_status fault_server_start(fault_server **out, pt_error *err) {
    *out = NULL;
    fault_server *s = calloc(1, sizeof *s);
    PT_CHECK_ALLOC(s, err, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed,
                            NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        PT_FAIL(err, PT_ERR_IO, "fault server: MHD_start_daemon failed on 127.0.0.1");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return PT_OK;
}

int fault_server_port(const fault_server *s) { return s->port; }

int fault_server_count(fault_server *s, const char *completion) {
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < s->n_keys; k++)
        if (strncmp(s->keys[k].text, completion, sizeof s->keys[k].text - 1) == 0) n = s->keys[k].count;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int fault_server_times(fault_server *s, const char *completion, double *t, int cap) {
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < s->n_keys; k++)
        if (strncmp(s->keys[k].text, completion, sizeof s->keys[k].text - 1) == 0)
            for (n = 0; n < s->keys[k].count && n < FS_TIMES && n < cap; n++) t[n] = s->keys[k].times[n];
    pthread_mutex_unlock(&s->mu);
    return n;
}

int fault_server_peak_concurrency(fault_server *s) { return atomic_load(&s->peak); }

void fault_server_stop(fault_server *s) {
    if (!s) return;
    atomic_store(&s->stopping, 1);
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
