/* sqlite_source.h — a SQLite query's result rows as JSON records (the mapping is in dataset.h:
 * TEXT → string, INTEGER / REAL → number, NULL → null, <name>_json with valid JSON → field <name>
 * holding that JSON verbatim; BLOB, non-finite REAL and invalid *_json text make a bad row).
 *
 * The database is opened read-only with a busy timeout, so a run store being written in WAL
 * mode by a live trainer can be queried. Only one SQL statement is accepted.
 */
#ifndef POSTTRAIN_DATASETS_SQLITE_SOURCE_H
#define POSTTRAIN_DATASETS_SQLITE_SOURCE_H

#include <stdint.h>

#include "datasets/record.h"

/* Called once per row (1-based) with the row's JSON object text (NUL-terminated at len), or with
 * json NULL and *bad saying why the row cannot be a record. */
typedef pt_status (*sqlite_row_fn)(void *ctx, const char *json, size_t len, uint64_t row, const record_bad *bad,
                                   pt_error *err);

pt_status sqlite_source_each_row(const char *db_path, const char *sql, sqlite_row_fn fn, void *ctx, pt_error *err);

#endif
