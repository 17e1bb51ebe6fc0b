/* log.h — levelled log lines with elapsed-time stamps, passed around as a `logger` (no globals).
 *
 * A line reads "[   12.345s] WARN  message": seconds since logger_init on the logger's clock,
 * the level, the message; a trailing newline is added when the message has none. Lines below
 * the logger's level are dropped. Colour (on the level tag only) is on when the output is a
 * terminal and NO_COLOR is unset; on a terminal each line first clears the current line
 * ("\r\033[K"), so a progress bar being redrawn there is not left half-overwritten (it comes
 * back at its next redraw). Each line is written with one call and flushed.
 *
 * The clock is a function (seconds, monotonic); NULL means CLOCK_MONOTONIC. Tests pass a fake.
 */
#ifndef POSTTRAIN_CORE_LOG_H
#define POSTTRAIN_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/error.h"

typedef enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level;

typedef double (*log_clock_fn)(void *ctx);

typedef struct logger {
    FILE *out;          /* NULL: every line is dropped */
    log_level level;    /* lines below it are dropped */
    bool color;         /* ANSI colour on the level tag */
    bool tty;           /* clear the current terminal line before writing */
    log_clock_fn clock; /* seconds on a monotonic clock */
    void *clock_ctx;
    double start;       /* clock value at logger_init */
} logger;

/* color and tty start as isatty(fileno(out)) (color also needs NO_COLOR unset); set them
 * afterwards to force either way. */
void logger_init(logger *lg, FILE *out, log_level level, log_clock_fn clock, void *clock_ctx);
void log_write(const logger *lg, log_level level, const char *fmt, ...) PT_PRINTF(3, 4);
void log_vwrite(const logger *lg, log_level level, const char *fmt, va_list ap);

/* "debug", "info", "warn" (or "warning"), "error", any case. */
pt_status log_level_parse(log_level *level, const char *name, pt_error *err);
const char *log_level_name(log_level level); /* "DEBUG", "INFO", "WARN", "ERROR" */

#define LOG_DEBUG(lg, ...) log_write((lg), LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(lg, ...) log_write((lg), LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(lg, ...) log_write((lg), LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(lg, ...) log_write((lg), LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
