/* error.h — status codes, error messages and the check macros every fallible call goes through.
 *
 * Library code never exits: a fallible function returns a pt_status and, on failure, fills the
 * caller's pt_error with a message written for the user (it names the file, line, field and what
 * was expected) plus the source location that raised it (for bug reports). Only cli/ decides to
 * exit. Callers add context on the way up with error_prefix ("loading run.json: ...").
 *
 * Invariant: a function that returns PT_OK leaves *err untouched; one that returns anything else
 * has set err->status to that value and err->msg to a non-empty message.
 */
#ifndef POSTTRAIN_CORE_ERROR_H
#define POSTTRAIN_CORE_ERROR_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

typedef enum pt_status {
    PT_OK = 0,
    PT_ERR_INVALID,     /* a bad argument or bad user input */
    PT_ERR_IO,          /* open/read/write/fsync/rename failed */
    PT_ERR_FORMAT,      /* a file is not what it claims to be (JSON, safetensors, ...) */
    PT_ERR_CONFIG,      /* unknown config key, wrong type, broken constraint */
    PT_ERR_NOMEM,       /* an allocation failed */
    PT_ERR_BACKEND,     /* CUDA, BLAS, MPI or another backend refused */
    PT_ERR_NUMERIC,     /* NaN/Inf where a finite value was required */
    PT_ERR_UNSUPPORTED, /* valid, but not built or not implemented here */
    PT_ERR_INTERNAL,    /* a broken invariant: a bug in posttrain */
} pt_status;

typedef struct pt_error {
    pt_status status;
    const char *file; /* source file that raised it */
    int line;         /* source line that raised it */
    char msg[2048];   /* what went wrong and what to do about it */
} pt_error;

#if defined(__GNUC__)
#define PT_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define PT_PRINTF(fmt_idx, arg_idx)
#endif

/* Sets *err (when err is not NULL) and returns status, so `return error_set(...)` reads well. */
pt_status error_set(pt_error *err, pt_status status, const char *file, int line, const char *fmt, ...)
    PT_PRINTF(5, 6);
/* Prepends context to err->msg ("while X: " + old message); returns err->status. */
pt_status error_prefix(pt_error *err, const char *fmt, ...) PT_PRINTF(2, 3);
void error_clear(pt_error *err);
const char *status_name(pt_status status);

/* Fail with a formatted message: PT_FAIL(err, PT_ERR_CONFIG, "%s: ...", path); */
#define PT_FAIL(err, status, ...) return error_set((err), (status), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failure from a call that already filled err. */
#define PT_TRY(expr)                                                                               \
    do {                                                                                           \
        pt_status pt_try_status_ = (expr);                                                         \
        if (pt_try_status_ != PT_OK) return pt_try_status_;                                        \
    } while (0)

/* Same, but jump to a cleanup label, keeping the status in `st`. */
#define PT_TRY_GOTO(st, expr, label)                                                               \
    do {                                                                                           \
        (st) = (expr);                                                                             \
        if ((st) != PT_OK) goto label;                                                             \
    } while (0)

/* Check a condition; on failure the message is "<hint> (check `cond` failed)". */
#define PT_CHECK(cond, err, status, ...)                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            error_set((err), (status), __FILE__, __LINE__, __VA_ARGS__);                           \
            error_append((err), " (check `%s` failed)", #cond);                                    \
            return (status);                                                                       \
        }                                                                                          \
    } while (0)

/* A POSIX call that returns -1 and sets errno: the message names the expression and strerror. */
#define PT_CHECK_ERRNO(expr, err, ...)                                                             \
    do {                                                                                           \
        if ((expr) == -1) {                                                                        \
            int pt_errno_ = errno;                                                                 \
            error_set((err), PT_ERR_IO, __FILE__, __LINE__, __VA_ARGS__);                          \
            error_append((err), ": %s (`%s`)", strerror(pt_errno_), #expr);                        \
            return PT_ERR_IO;                                                                      \
        }                                                                                          \
    } while (0)

/* An allocation: `ptr` NULL means out of memory for `bytes`. */
#define PT_CHECK_ALLOC(ptr, err, bytes)                                                            \
    do {                                                                                           \
        if ((ptr) == NULL)                                                                         \
            return error_set((err), PT_ERR_NOMEM, __FILE__, __LINE__,                              \
                             "out of memory allocating %zu bytes for `%s`; reduce the batch or "  \
                             "model size",                                                         \
                             (size_t)(bytes), #ptr);                                               \
    } while (0)

/* Appends to err->msg (used by the macros above). */
void error_append(pt_error *err, const char *fmt, ...) PT_PRINTF(2, 3);

#endif
