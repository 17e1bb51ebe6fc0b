/* sqlite_source.c — rows of one SQL query turned into JSON records (see sqlite_source.h).
 *
 * JSON is written here by hand rather than through cJSON_Print so that numbers keep SQLite's
 * value exactly (%lld for INTEGER, %.17g for REAL round-trips a double) and *_json columns are
 * spliced in byte for byte, as a JSONL file would carry them.
 */
#include "datasets/sqlite_source.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jbuf {
    char *p;
    size_t n, cap;
} jbuf;

static pt_status jput(jbuf *b, const char *s, size_t n, pt_error *err) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        PT_CHECK_ALLOC(p, err, cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return PT_OK;
}

/* A JSON string literal of s[0..n): quotes, backslashes and control bytes escaped; other bytes
 * (UTF-8 or not) copied, so invalid UTF-8 is still caught by the record checks. */
static pt_status jput_string(jbuf *b, const char *s, size_t n, pt_error *err) {
    PT_TRY(jput(b, "\"", 1, err));
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '"' && c != '\\' && c >= 0x20) continue;
        PT_TRY(jput(b, s + run, i - run, err));
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        PT_TRY(jput(b, esc, strlen(esc), err));
        run = i + 1;
    }
    PT_TRY(jput(b, s + run, n - run, err));
    return jput(b, "\"", 1, err);
}

static bool ends_with_json(const char *name) {
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, "_json") == 0;
}

static void row_bad(record_bad *bad, dataset_bad_reason reason, const char *field, const char *msg) {
    bad->reason = reason;
    bad->mixed = false;
    snprintf(bad->field, sizeof bad->field, "%s", field);
    snprintf(bad->msg, sizeof bad->msg, "%s", msg);
}

/* The JSON object of the current row into b; false with *bad when a column cannot be mapped. */
static pt_status row_json(bool *good, record_bad *bad, jbuf *b, sqlite3_stmt *st, pt_error *err) {
    int ncol = sqlite3_column_count(st);
    b->n = 0;
    *good = false;
    PT_TRY(jput(b, "{", 1, err));
    for (int i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(st, i);
        if (!name) PT_FAIL(err, PT_ERR_NOMEM, "SQLite ran out of memory naming column %d", i);
        if (i) PT_TRY(jput(b, ",", 1, err));
        int type = sqlite3_column_type(st, i);
        bool json_col = ends_with_json(name) && type == SQLITE_TEXT;
        PT_TRY(jput_string(b, name, json_col ? strlen(name) - 5 : strlen(name), err));
        PT_TRY(jput(b, ":", 1, err));
        char num[64];
        switch (type) {
        case SQLITE_NULL: PT_TRY(jput(b, "null", 4, err)); break;
        case SQLITE_INTEGER:
            snprintf(num, sizeof num, "%lld", (long long)sqlite3_column_int64(st, i));
            PT_TRY(jput(b, num, strlen(num), err));
            break;
        case SQLITE_FLOAT: {
            double v = sqlite3_column_double(st, i);
            if (!isfinite(v)) {
                row_bad(bad, DATASET_BAD_TYPE, name, "a non-finite REAL has no JSON form");
                return PT_OK;
            }
            snprintf(num, sizeof num, "%.17g", v);
            PT_TRY(jput(b, num, strlen(num), err));
            break;
        }
        case SQLITE_TEXT: {
            const char *t = (const char *)sqlite3_column_text(st, i);
            size_t n = (size_t)sqlite3_column_bytes(st, i);
            if (!t) PT_FAIL(err, PT_ERR_NOMEM, "SQLite ran out of memory reading column '%s'", name);
            if (json_col) {
                cJSON *v = cJSON_ParseWithLength(t, n);
                cJSON_Delete(v);
                if (!v) {
                    row_bad(bad, DATASET_BAD_JSON, name, "a *_json column must hold valid JSON");
                    return PT_OK;
                }
                while (n > 0 && (unsigned char)t[n - 1] <= 0x20) n--;
                while (n > 0 && (unsigned char)*t <= 0x20) t++, n--;
                PT_TRY(jput(b, t, n, err));
            } else PT_TRY(jput_string(b, t, n, err));
            break;
        }
        default:
            row_bad(bad, DATASET_BAD_TYPE, name, "BLOB columns are not supported; select CAST(column AS TEXT)");
            return PT_OK;
        }
    }
    PT_TRY(jput(b, "}", 1, err));
    *good = true;
    return PT_OK;
}

pt_status sqlite_source_each_row(const char *db_path, const char *sql, sqlite_row_fn fn, void *ctx, pt_error *err) {
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot open the SQLite database %s: %s", db_path,
                  db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return PT_ERR_IO;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    pt_status status = PT_OK;
    jbuf b = {0};
    if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK) {
        status = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "%s: the dataset query does not compile: %s (%s)",
                           db_path, sqlite3_errmsg(db), sql);
        goto done;
    }
    while (tail && *tail && (unsigned char)*tail <= 0x20) tail++;
    if (!st || (tail && *tail)) {
        status = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                           "%s: the dataset query must be exactly one SQL statement (%s)", db_path, sql);
        goto done;
    }
    uint64_t row = 0;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            status = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: the dataset query failed at row %llu: %s",
                               db_path, (unsigned long long)row + 1, sqlite3_errmsg(db));
            break;
        }
        row++;
        bool good;
        record_bad bad = {0};
        status = row_json(&good, &bad, &b, st, err);
        if (status == PT_OK) status = fn(ctx, good ? b.p : NULL, good ? b.n : 0, row, good ? NULL : &bad, err);
        if (status != PT_OK) break;
    }
done:
    free(b.p);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}
