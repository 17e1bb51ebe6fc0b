/* log.c — see log.h. A line is formatted into one buffer (the heap only for long messages) and
 * written with a single fwrite, so lines from different threads do not interleave mid-line. */
#include "core/log.h"

#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static double monotonic_seconds(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void logger_init(logger *lg, FILE *out, log_level level, log_clock_fn clock, void *clock_ctx) {
    int fd = out ? fileno(out) : -1;
    bool term = fd >= 0 && isatty(fd);
    const char *no_color = getenv("NO_COLOR");
    lg->out = out;
    lg->level = level;
    lg->tty = term;
    lg->color = term && !(no_color && *no_color);
    lg->clock = clock ? clock : monotonic_seconds;
    lg->clock_ctx = clock ? clock_ctx : NULL;
    lg->start = lg->clock(lg->clock_ctx);
}

const char *log_level_name(log_level level) {
    switch (level) {
    case LOG_LEVEL_DEBUG: return "DEBUG";
    case LOG_LEVEL_INFO: return "INFO";
    case LOG_LEVEL_WARN: return "WARN";
    case LOG_LEVEL_ERROR: return "ERROR";
    }
    return "?";
}

static const char *level_color(log_level level) {
    switch (level) {
    case LOG_LEVEL_DEBUG: return "\033[2m";
    case LOG_LEVEL_INFO: return "\033[32m";
    case LOG_LEVEL_WARN: return "\033[33m";
    case LOG_LEVEL_ERROR: return "\033[1;31m";
    }
    return "";
}

pt_status log_level_parse(log_level *level, const char *name, pt_error *err) {
    static const struct { const char *name; log_level level; } names[] = {
        {"debug", LOG_LEVEL_DEBUG}, {"info", LOG_LEVEL_INFO},   {"warn", LOG_LEVEL_WARN},
        {"warning", LOG_LEVEL_WARN}, {"error", LOG_LEVEL_ERROR},
    };
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *level = names[i].level;
            return PT_OK;
        }
    PT_FAIL(err, PT_ERR_CONFIG, "unknown log level '%s'; expected debug, info, warn or error", name ? name : "(null)");
}

void log_vwrite(const logger *lg, log_level level, const char *fmt, va_list ap) {
    if (!lg || !lg->out || level < lg->level) return;
    double t = lg->clock(lg->clock_ctx) - lg->start;
    char head[96];
    int hn = snprintf(head, sizeof head, "%s[%9.3fs] %s%-5s%s ", lg->tty ? "\r\033[K" : "", t,
                      lg->color ? level_color(level) : "", log_level_name(level), lg->color ? "\033[0m" : "");
    if (hn < 0) return;
    if ((size_t)hn >= sizeof head) hn = (int)sizeof head - 1; /* an absurd clock value */
    char small[1024];
    va_list copy;
    va_copy(copy, ap);
    int mn = vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (mn < 0) return;
    bool fits = (size_t)mn < sizeof small;
    char *line = fits ? NULL : malloc((size_t)hn + (size_t)mn + 2);
    char stack[sizeof small + sizeof head + 2];
    char *buf = line ? line : stack;
    if (line) /* a long message: format it again straight into the line */
        vsnprintf(line + hn, (size_t)mn + 1, fmt, ap);
    else if (!fits)
        mn = (int)sizeof small - 1; /* out of memory: keep the start of the message */
    const char *msg = line ? NULL : small;
    memcpy(buf, head, (size_t)hn);
    if (msg) memcpy(buf + hn, msg, (size_t)mn);
    size_t n = (size_t)hn + (size_t)mn;
    if (mn == 0 || buf[n - 1] != '\n') buf[n++] = '\n';
    fwrite(buf, 1, n, lg->out);
    fflush(lg->out);
    free(line);
}

void log_write(const logger *lg, log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lg, level, fmt, ap);
    va_end(ap);
}
