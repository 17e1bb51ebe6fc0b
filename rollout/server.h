/* server.h — an OpenAI-compatible HTTP server on the rollout engine (libmicrohttpd).
 *
 * Routes: GET /v1/models; POST /v1/completions (prompt: a string or a list of strings;
 * max_tokens, temperature, top_p, n, stop, seed, logprobs); POST /v1/chat/completions (messages
 * rendered with the model's chat template, generation prompt added); POST /v1/score scores with
 * a local reward model (model/reward_model.h) when one is given — {"prompt", "completion"} →
 * {"score": x}, or {"items": [{"prompt", "completion"}, ...]} → {"scores": [x, ...]}, each item
 * scored alone exactly as the `model` reward scores it — and answers 501 without one. A server
 * may hold only a reward model (m NULL): the generation routes then answer 501. Errors use OpenAI's shape {"error": {"message", "type",
 * "param", "code"}}: 400 malformed request, 404 unknown route, 405 wrong method, 413 body over
 * max_request_bytes, 500 generation failure. Requests are served concurrently (a thread per
 * connection); generation is serialised on one mutex (the tokenizer scratch and the model's
 * workspaces are single-threaded).
 */
#ifndef POSTTRAIN_ROLLOUT_SERVER_H
#define POSTTRAIN_ROLLOUT_SERVER_H

#include <stddef.h>

#include "model/chat_template.h"
#include "model/model.h"
#include "model/reward_model.h"
#include "model/tokenizer.h"

typedef struct rollout_server_config {
    const char *host;         /* IPv4 address to bind; default "127.0.0.1" */
    int port;                 /* 0: an ephemeral port (see rollout_server_port) */
    size_t max_request_bytes; /* larger bodies get 413; default 1 MiB */
    int max_tokens_cap;       /* max_tokens above this is refused (400); default 4096 */
    int max_n;                /* n above this is refused (400); default 16 */
    const char *model_name;   /* the id /v1/models reports; default "posttrain" */
    chat_format chat;         /* how messages are rendered */
    reward_model *reward_model;  /* NULL: /v1/score answers 501 (borrowed; must outlive the server) */
    tokenizer *reward_tokenizer; /* the reward model's tokenizer (NULL: the policy's) */
    size_t reward_max_length;    /* tokens scored per item (0: 1024) */
    size_t max_score_items;      /* items per /v1/score request (0: 256) */
} rollout_server_config;

rollout_server_config rollout_server_config_default(void);

typedef struct rollout_server rollout_server;

/* Starts listening; m and tok are borrowed and must outlive the server. m may be NULL when
 * cfg->reward_model is set (tok may then be NULL too when cfg->reward_tokenizer is set). */
pt_status rollout_server_start(rollout_server **out, const policy_model *m, tokenizer *tok,
                               const rollout_server_config *cfg, pt_error *err);
int rollout_server_port(const rollout_server *s);
/* Stops accepting, waits for requests in flight, closes the port and frees. */
void rollout_server_stop(rollout_server *s);

#endif
