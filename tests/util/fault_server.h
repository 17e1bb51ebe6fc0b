/* fault_server.h — a misbehaving HTTP scoring server for the http reward's tests (libmicrohttpd,
 * 127.0.0.1, an ephemeral port, a thread per connection).
 *
 * Every request is a POST whose JSON body has a "completion" string; that string tells the server
 * what to do with this request, so concurrent items can each get their own fault:
 *   "ok X"          200 {"score": X}
 *   "slow MS X"     wait MS milliseconds (cut short by fault_server_stop), then 200 {"score": X}
 *   "drop"          close the connection without an answer
 *   "500"           500 {"error": "injected"}
 *   "429 S"         429 with "Retry-After: S"
 *   "flaky K X"     503 for the first K requests carrying this exact text, then 200 {"score": X}
 *   "trunc"         200 announcing 64 bytes of body, sending 10, then closing
 *   "badjson"       200 '{"score": 0.5' (cut JSON)
 *   "nan"           200 {"score": "NaN"};   "inf": 200 {"score": 1e999};  "null": {"score": null}
 *   "big"           200 with a 2 MiB body
 * anything else     400.
 * The server records how many requests carried each text and when each arrived.
 */
#ifndef POSTTRAIN_TESTS_FAULT_SERVER_H
#define POSTTRAIN_TESTS_FAULT_SERVER_H

#include "core/error.h"

typedef struct fault_server fault_server;

pt_status fault_server_start(fault_server **out, pt_error *err);
int fault_server_port(const fault_server *s);
/* Requests that carried exactly this completion text so far. */
int fault_server_count(fault_server *s, const char *completion);
/* Arrival times (timer_now seconds) of those requests, up to cap; returns how many were written. */
int fault_server_times(fault_server *s, const char *completion, double *t, int cap);
/* Highest number of requests being handled at once. */
int fault_server_peak_concurrency(fault_server *s);
/* Stops (slow handlers return at once), frees; the port is closed when it returns. */
void fault_server_stop(fault_server *s);

#endif
