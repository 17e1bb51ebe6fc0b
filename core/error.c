/* error.c — filling and decorating pt_error; see error.h for the contract. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

pt_status error_set(pt_error *err, pt_status status, const char *file, int line, const char *fmt, ...) {
    if (!err) return status;
    err->status = status;
    err->file = file;
    err->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}

void error_append(pt_error *err, const char *fmt, ...) {
    if (!err) return;
    size_t used = strlen(err->msg);
    if (used + 1 >= sizeof err->msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
}

pt_status error_prefix(pt_error *err, const char *fmt, ...) {
    if (!err) return PT_ERR_INTERNAL;
    char head[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head - 2, fmt, ap);
    va_end(ap);
    if (n < 0) return err->status;
    size_t hl = strlen(head);
    memcpy(head + hl, ": ", 3);
    hl += 2;
    size_t ml = strnlen(err->msg, sizeof err->msg - 1);
    if (hl + ml + 1 > sizeof err->msg) ml = sizeof err->msg - 1 - hl; /* keep the head, cut the tail */
    memmove(err->msg + hl, err->msg, ml);
    memcpy(err->msg, head, hl);
    err->msg[hl + ml] = '\0';
    return err->status;
}

void error_clear(pt_error *err) {
    if (!err) return;
    err->status = PT_OK;
    err->file = NULL;
    err->line = 0;
    err->msg[0] = '\0';
}

const char *status_name(pt_status status) {
    switch (status) {
    case PT_OK: return "ok";
    case PT_ERR_INVALID: return "invalid input";
    case PT_ERR_IO: return "I/O error";
    case PT_ERR_FORMAT: return "format error";
    case PT_ERR_CONFIG: return "config error";
    case PT_ERR_NOMEM: return "out of memory";
    case PT_ERR_BACKEND: return "backend error";
    case PT_ERR_NUMERIC: return "numeric error";
    case PT_ERR_UNSUPPORTED: return "unsupported";
    case PT_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
