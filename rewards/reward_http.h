/* reward_http.h — the `http` reward: scores from a remote endpoint (a plain scoring service or an
 * OpenAI-compatible chat-completions judge), with deadlines, retries, a circuit breaker and
 * failure counts per reason. See reward_http.c for the protocol and the rules. */
#ifndef POSTTRAIN_REWARDS_REWARD_HTTP_H
#define POSTTRAIN_REWARDS_REWARD_HTTP_H

#include "rewards/reward.h"

pt_status reward_http_init(reward *self, const cJSON *cfg, pt_error *err);

/* Why an attempt or an item failed. */
typedef enum http_failure {
    HTTP_FAIL_TIMEOUT = 0, /* connect or total timeout of an attempt (retryable) */
    HTTP_FAIL_CONNECT,     /* refused, reset, dropped or truncated by the peer (retryable) */
    HTTP_FAIL_429,         /* rate limited (retryable, honours Retry-After) */
    HTTP_FAIL_5XX,         /* server error (retryable) */
    HTTP_FAIL_4XX,         /* other non-2xx answer (not retried) */
    HTTP_FAIL_BAD_REPLY,   /* body is not the expected JSON, or too large (not retried) */
    HTTP_FAIL_BAD_SCORE,   /* NaN/Inf, not a number, out of [min_score, max_score], no regex match */
    HTTP_FAIL_CIRCUIT,     /* not sent: the circuit breaker was open */
    HTTP_FAIL_DEADLINE,    /* a retry was due but the item's deadline left no time for it */
    HTTP_FAIL_OTHER,       /* any other transport error */
    HTTP_FAIL_COUNT
} http_failure;

const char *http_failure_name(http_failure f);

/* Counters since init (each attempt counts once in `attempt_failures`; each item that ends
 * without a score counts once in `item_failures` under its final reason). */
typedef struct reward_http_stats {
    long requests;                        /* attempts sent */
    long retries;                         /* attempts that were retries */
    long scored;                          /* items with a score */
    long attempt_failures[HTTP_FAIL_COUNT];
    long item_failures[HTTP_FAIL_COUNT];
    long circuit_opened;                  /* times the breaker opened */
    double max_backoff_s;                 /* longest wait before a retry */
    double min_backoff_s;                 /* shortest wait before a retry (0 when none) */
    int circuit_open;                     /* 1 while open (as of the last call) */
} reward_http_stats;

/* PT_ERR_INVALID when r is not an http reward. */
pt_status reward_http_get_stats(reward_http_stats *out, const reward *r, pt_error *err);

#endif
