/* reward_subprocess.c — the `subprocess` reward: any executable speaking JSON lines.
 *
 * Protocol (one request and one reply per batch, each a single line ending in '\n'):
 *   → {"items": [{"prompt": "...", "completion": "...", "columns": {...}, "completion_tokens": 12}, ...]}
 *   ← {"scores": [0.5, null, 1, ...]}            (optionally "reasons": ["", "why null", ...]
 *                                                  and "errors": [false, true, false, ...])
 *   ← {"error": "message"}                       (the plugin failed on the whole batch)
 * "columns" is the example's columns object (null when the item's columns are not a JSON object);
 * "completion_tokens" is present only when known. Strings are sent as valid UTF-8: invalid bytes
 * become U+FFFD, so a strict decoder on the other side never chokes. A null score is REWARD_MASKED
 * (reason: the reply's "reasons"[i] when it is a non-empty string, else "masked by the plugin"),
 * or REWARD_ERROR when "errors"[i] is true (the plugin failed on that item; rewards/reward_host.h
 * answers that way).
 *
 * Params: "command" (required: an array of strings, exec'd directly with PATH lookup, or one
 * string, run as /bin/sh -c STRING), "timeout" (seconds per batch, default 60: sending the
 * request and reading the reply together), "max_reply_bytes" (default 16 MiB).
 *
 * Process life: started at creation (so a command that cannot start fails early), in its own
 * process group, stdin and stdout both one end of a socketpair (send with MSG_NOSIGNAL: a dead
 * child cannot SIGPIPE the trainer), stderr inherited (plugin logs show up in the trainer's),
 * descriptors above 2 closed. Kept alive across calls. Before each call a child that has exited
 * is reaped and a new one started (it "died" between calls). A child that ends during a call
 * without having written a byte of its reply may have been exiting already when the request went
 * out, which the trainer cannot tell from dying on this batch: the batch is sent once more to a
 * fresh process (so a deterministic crash runs twice and then counts). During a call:
 *   - the deadline passes → the whole process group is SIGKILLed and reaped; every item is
 *     REWARD_ERROR "timeout after T s"; a new process starts on the next call;
 *   - the child closes its output or exits → every item is REWARD_ERROR naming the exit status;
 *     restarted on the next call;
 *   - the reply is not one JSON object with a "scores" array of exactly n entries, or is longer
 *     than max_reply_bytes → every item is REWARD_ERROR naming the problem, and the child is killed
 *     (its output can no longer be trusted to be in step) and restarted on the next call;
 *   - an entry that is neither a finite number nor null → that item is REWARD_ERROR;
 *   - an {"error": "..."} reply (e.g. the wrapped function raised) → every item is REWARD_ERROR
 *     "plugin error: ..."; the process is kept (it is still in step).
 * Bytes the child wrote outside a call (stray output) are discarded before the next request.
 * Freeing closes the socket (the child sees EOF and should exit), waits up to 0.5 s, then kills
 * the group.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/timer.h"
#include "rewards/reward.h"

extern char **environ;

typedef struct subprocess_reward {
    char **argv;          /* (argc + 1), NULL-terminated, owned */
    int argc;
    pid_t pid;            /* 0: not running */
    int fd;               /* our end of the socketpair; -1 when not running */
    char *buf;            /* bytes read and not yet consumed (cap) */
    size_t len, cap;
    double timeout;       /* seconds per batch */
    size_t max_reply;     /* bytes */
    long starts;          /* processes started so far */
    char died[REWARD_REASON_MAX]; /* how the last process ended, for messages */
} subprocess_reward;

static void describe_status(char *out, size_t len, int status) {
    if (WIFEXITED(status)) snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(out, len, "ended (wait status %d)", status);
}

/* Kills the process group (if running), reaps the child, closes our end. */
static void sp_kill(subprocess_reward *sp) {
    if (sp->fd >= 0) close(sp->fd);
    sp->fd = -1;
    if (sp->pid > 0) {
        kill(-sp->pid, SIGKILL);
        int status = 0;
        while (waitpid(sp->pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    sp->pid = 0;
    sp->len = 0;
}

/* Reaps a child that has exited; true when it was running and is now gone. */
static bool sp_reap_if_dead(subprocess_reward *sp) {
    if (sp->pid <= 0) return false;
    int status = 0;
    pid_t r = waitpid(sp->pid, &status, WNOHANG);
    if (r == 0) return false;
    if (r == sp->pid) describe_status(sp->died, sizeof sp->died, status);
    else snprintf(sp->died, sizeof sp->died, "vanished (waitpid: %s)", strerror(errno));
    kill(-sp->pid, SIGKILL); /* leftovers in its group */
    if (sp->fd >= 0) close(sp->fd);
    sp->fd = -1;
    sp->pid = 0;
    sp->len = 0;
    return true;
}

static pt_status sp_start(subprocess_reward *sp, pt_error *err) {
    int sv[2];
    PT_CHECK_ERRNO(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), err, "subprocess reward: socketpair");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, sp->argv[0], &fa, &at, sp->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        PT_FAIL(err, PT_ERR_CONFIG, "cannot start reward command '%s': %s", sp->argv[0], strerror(rc));
    }
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    sp->pid = pid;
    sp->fd = sv[0];
    sp->len = 0;
    sp->starts++;
    return PT_OK;
}

/* ---- JSON building with valid UTF-8 ------------------------------------------------------- */

static bool add_text(cJSON *obj, const char *key, const char *text) {
    char *clean = reward_utf8_sanitize(text ? text : "");
    if (!clean) return false;
    bool ok = cJSON_AddStringToObject(obj, key, clean) != NULL;
    free(clean);
    return ok;
}

/* The request line (with '\n'), or NULL when out of memory. */
static char *build_request(const reward_item *items, int n, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "items") : NULL;
    bool ok = arr != NULL;
    for (int i = 0; i < n && ok; i++) {
        cJSON *it = cJSON_CreateObject();
        ok = it && cJSON_AddItemToArray(arr, it);
        ok = ok && add_text(it, "prompt", items[i].prompt) && add_text(it, "completion", items[i].completion);
        if (!ok) break;
        cJSON *cols = cJSON_Parse(items[i].columns ? items[i].columns : "{}");
        if (!cJSON_IsObject(cols)) {
            cJSON_Delete(cols);
            cols = cJSON_CreateNull();
        }
        ok = cols && cJSON_AddItemToObject(it, "columns", cols);
        if (ok && items[i].completion_tokens >= 0)
            ok = cJSON_AddNumberToObject(it, "completion_tokens", items[i].completion_tokens) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return NULL;
    size_t l = strlen(text);
    char *line = malloc(l + 2);
    if (line) {
        memcpy(line, text, l);
        line[l] = '\n';
        line[l + 1] = '\0';
        *len = l + 1;
    }
    cJSON_free(text);
    return line;
}

/* ---- one exchange -------------------------------------------------------------------------- */

typedef enum exchange_result { EXCHANGE_OK, EXCHANGE_TIMEOUT, EXCHANGE_DIED, EXCHANGE_TOO_LONG, EXCHANGE_NOMEM } exchange_result;

/* Discards whatever the child wrote outside a call (bounded: a child that never stops writing
 * is caught by the reply checks instead). */
static void drain_stray(subprocess_reward *sp) {
    char tmp[4096];
    size_t total = 0;
    ssize_t r;
    while (total < sp->max_reply && (r = read(sp->fd, tmp, sizeof tmp)) > 0) total += (size_t)r;
    sp->len = 0;
}

/* Sends req and reads one line into sp->buf (NUL-terminated, without '\n'; *line_len). */
static exchange_result exchange(subprocess_reward *sp, const char *req, size_t req_len, size_t *line_len) {
    double deadline = timer_now() + sp->timeout;
    size_t sent = 0;
    for (;;) {
        char *nl = sp->len ? memchr(sp->buf, '\n', sp->len) : NULL;
        if (nl) {
            *line_len = (size_t)(nl - sp->buf);
            *nl = '\0';
            return EXCHANGE_OK;
        }
        if (sp->len > sp->max_reply) return EXCHANGE_TOO_LONG;
        double left = deadline - timer_now();
        if (left <= 0) return EXCHANGE_TIMEOUT;
        struct pollfd pfd = {sp->fd, (short)(POLLIN | (sent < req_len ? POLLOUT : 0)), 0};
        int ms = (int)(left * 1000.0) + 1;
        int pr = poll(&pfd, 1, ms);
        if (pr < 0) {
            if (errno == EINTR) continue;
            return EXCHANGE_DIED;
        }
        if (pr == 0) continue; /* re-check the deadline */
        if ((pfd.revents & POLLOUT) && sent < req_len) {
            ssize_t w = send(sp->fd, req + sent, req_len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return EXCHANGE_DIED;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (sp->cap - sp->len < 65536) {
                size_t cap = sp->cap ? 2 * sp->cap : 131072;
                char *b = realloc(sp->buf, cap + 1);
                if (!b) return EXCHANGE_NOMEM;
                sp->buf = b;
                sp->cap = cap;
            }
            ssize_t r = read(sp->fd, sp->buf + sp->len, sp->cap - sp->len);
            if (r > 0) sp->len += (size_t)r;
            else if (r == 0) return EXCHANGE_DIED;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return EXCHANGE_DIED;
        }
    }
}

/* Wait briefly for a child whose output closed, so the message can name its exit status. */
static void reap_after_eof(subprocess_reward *sp) {
    for (int k = 0; k < 100 && !sp_reap_if_dead(sp); k++) usleep(2000);
    if (sp->pid > 0) {
        snprintf(sp->died, sizeof sp->died, "closed its output");
        sp_kill(sp);
    }
}

static void all_error(reward_result *out, int n, const char *fmt, const char *a) {
    for (int i = 0; i < n; i++) reward_result_mask(&out[i], REWARD_ERROR, fmt, a);
}

/* Parses the reply line into out; false (after marking every item) on a protocol violation. */
static bool parse_reply(reward_result *out, int n, const char *line) {
    cJSON *root = cJSON_Parse(line);
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(root, "scores");
    char why[REWARD_REASON_MAX];
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(root) && !scores && cJSON_IsString(error)) {
        snprintf(why, sizeof why, "plugin error: %s", error->valuestring);
        all_error(out, n, "%s", why);
        cJSON_Delete(root);
        return true;
    }
    if (!cJSON_IsObject(root) || !cJSON_IsArray(scores)) {
        snprintf(why, sizeof why, "reply is not {\"scores\": [...]}: '%.60s'", line);
        all_error(out, n, "%s", why);
        cJSON_Delete(root);
        return false;
    }
    if (cJSON_GetArraySize(scores) != n) {
        snprintf(why, sizeof why, "reply has %d scores for %d items", cJSON_GetArraySize(scores), n);
        all_error(out, n, "%s", why);
        cJSON_Delete(root);
        return false;
    }
    const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(root, "reasons");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(root, "errors");
    const cJSON *s = scores->child;
    for (int i = 0; i < n; i++, s = s->next) {
        if (cJSON_IsNumber(s) && isfinite(s->valuedouble)) {
            reward_result_ok(&out[i], s->valuedouble);
        } else if (cJSON_IsNull(s)) {
            const cJSON *r = cJSON_IsArray(reasons) ? cJSON_GetArrayItem(reasons, i) : NULL;
            bool failed = cJSON_IsArray(errors) && cJSON_IsTrue(cJSON_GetArrayItem(errors, i));
            reward_result_mask(&out[i], failed ? REWARD_ERROR : REWARD_MASKED, "%s",
                               cJSON_IsString(r) && r->valuestring[0] ? r->valuestring
                               : failed                               ? "the plugin failed on this item"
                                                                      : "masked by the plugin");
        } else {
            char *txt = cJSON_PrintUnformatted(s);
            reward_result_mask(&out[i], REWARD_ERROR, "score %.40s is not a number or null", txt ? txt : "?");
            cJSON_free(txt);
        }
    }
    cJSON_Delete(root);
    return true;
}

static pt_status subprocess_score_batch(reward *self, reward_result *out, const reward_item *items, int n,
                                        pt_error *err) {
    subprocess_reward *sp = self->impl;
    size_t req_len = 0, line_len = 0;
    char *req = build_request(items, n, &req_len);
    PT_CHECK_ALLOC(req, err, (size_t)n * 64);
    exchange_result ex = EXCHANGE_DIED;
    for (int attempt = 0; attempt < 2 && ex == EXCHANGE_DIED; attempt++) {
        if (attempt > 0) reap_after_eof(sp);
        sp_reap_if_dead(sp);
        if (sp->pid <= 0) {
            pt_status st = sp_start(sp, err);
            if (st != PT_OK) {
                free(req);
                return st;
            }
        }
        drain_stray(sp);
        ex = exchange(sp, req, req_len, &line_len);
        /* a child that ended without writing a byte may have been on its way out before the
         * request (it died between calls): one fresh process gets the batch again */
        if (ex == EXCHANGE_DIED && sp->len > 0) break;
    }
    free(req);
    char why[REWARD_REASON_MAX];
    switch (ex) {
    case EXCHANGE_OK:
        if (!parse_reply(out, n, sp->buf)) sp_kill(sp);
        else {
            /* keep bytes after the line (they are stray output; drained before the next call) */
            sp->len = 0;
        }
        return PT_OK;
    case EXCHANGE_TIMEOUT:
        snprintf(why, sizeof why, "timeout after %g s", sp->timeout);
        sp_kill(sp);
        all_error(out, n, "%s", why);
        return PT_OK;
    case EXCHANGE_DIED:
        reap_after_eof(sp);
        all_error(out, n, "the reward process %s before replying", sp->died);
        return PT_OK;
    case EXCHANGE_TOO_LONG:
        snprintf(why, sizeof why, "reply longer than max_reply_bytes (%zu)", sp->max_reply);
        sp_kill(sp);
        all_error(out, n, "%s", why);
        return PT_OK;
    case EXCHANGE_NOMEM: sp_kill(sp); PT_FAIL(err, PT_ERR_NOMEM, "out of memory reading a reward reply");
    }
    return PT_OK;
}

static void subprocess_free(reward *self) {
    subprocess_reward *sp = self->impl;
    if (!sp) return;
    if (sp->fd >= 0) {
        close(sp->fd);
        sp->fd = -1;
        for (int k = 0; k < 50 && sp->pid > 0 && !sp_reap_if_dead(sp); k++) usleep(10000);
    }
    sp_kill(sp);
    for (int i = 0; i < sp->argc; i++) free(sp->argv[i]);
    free(sp->argv);
    free(sp->buf);
    free(sp);
    self->impl = NULL;
}

static const reward_vtable SUBPROCESS_VTABLE = {subprocess_score_batch, subprocess_free};

static pt_status parse_command(subprocess_reward *sp, const cJSON *cfg, pt_error *err) {
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(cfg, "command");
    int n = cJSON_IsArray(cmd) ? cJSON_GetArraySize(cmd) : cJSON_IsString(cmd) ? 3 : 0;
    if (n == 0 || (cJSON_IsString(cmd) && !cmd->valuestring[0]))
        PT_FAIL(err, PT_ERR_CONFIG,
                "missing \"command\": an array of strings such as [\"python3\", \"reward.py\"], or one shell string");
    sp->argv = calloc((size_t)n + 1, sizeof *sp->argv);
    PT_CHECK_ALLOC(sp->argv, err, ((size_t)n + 1) * sizeof *sp->argv);
    if (cJSON_IsString(cmd)) {
        const char *sh[3] = {"/bin/sh", "-c", cmd->valuestring};
        for (int i = 0; i < 3; i++) {
            sp->argv[i] = strdup(sh[i]);
            PT_CHECK_ALLOC(sp->argv[i], err, strlen(sh[i]) + 1);
            sp->argc = i + 1;
        }
        return PT_OK;
    }
    int i = 0;
    for (const cJSON *a = cmd->child; a; a = a->next, i++) {
        if (!cJSON_IsString(a) || (i == 0 && !a->valuestring[0]))
            PT_FAIL(err, PT_ERR_CONFIG, "command[%d] must be a (non-empty for [0]) string", i);
        sp->argv[i] = strdup(a->valuestring);
        PT_CHECK_ALLOC(sp->argv[i], err, strlen(a->valuestring) + 1);
        sp->argc = i + 1;
    }
    return PT_OK;
}

static pt_status subprocess_setup(subprocess_reward *sp, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"command", "timeout", "max_reply_bytes"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, 3, err));
    PT_TRY(reward_cfg_number(&sp->timeout, cfg, "timeout", 60.0, err));
    if (!(sp->timeout > 0 && sp->timeout <= 86400)) PT_FAIL(err, PT_ERR_CONFIG, "timeout must be in (0, 86400] seconds");
    long max_reply;
    PT_TRY(reward_cfg_int(&max_reply, cfg, "max_reply_bytes", 16L << 20, err));
    if (max_reply < 64) PT_FAIL(err, PT_ERR_CONFIG, "max_reply_bytes must be at least 64");
    sp->max_reply = (size_t)max_reply;
    PT_TRY(parse_command(sp, cfg, err));
    return sp_start(sp, err);
}

pt_status reward_subprocess_init(reward *self, const cJSON *cfg, pt_error *err) {
    subprocess_reward *sp = calloc(1, sizeof *sp);
    PT_CHECK_ALLOC(sp, err, sizeof *sp);
    sp->fd = -1;
    self->impl = sp;
    pt_status st = subprocess_setup(sp, cfg, err);
    if (st != PT_OK) {
        subprocess_free(self);
        return st;
    }
    self->vt = &SUBPROCESS_VTABLE;
    return PT_OK;
}
