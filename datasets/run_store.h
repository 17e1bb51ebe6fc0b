/* run_store.h — the durable record of a run: one SQLite database per run directory,
 * `<run_dir>/run.db`, that the trainers write once per step and `posttrain report` (or the
 * sqlite3 shell, while the run is still writing) reads.
 *
 * Tables (schema version RUN_STORE_SCHEMA_VERSION, recorded in `schema_version`):
 *   run          (id, created, command, config, config_hash)   one row per start or resume
 *   steps        (step PRIMARY KEY, written_at)                 one row per committed step
 *   metrics      (step → steps, name, value)                    UNIQUE(step, name)
 *   rollouts     (step → steps, prompt_index, sample_index, prompt, completion, rewards,
 *                 reward, advantage, length, finish_reason)     UNIQUE(step, prompt_index, sample_index)
 *   checkpoints  (step → steps, path, checksum)                 UNIQUE(step)
 * `rewards` is a JSON object {name: score|null} (null: that reward abstained); `config` is the
 * resolved run config as JSON and `config_hash` its FNV-1a 64 hash in 16 hex digits
 * (core/config.h). A NaN metric or score is stored as NULL and read back as NaN.
 *
 * Durability and concurrency: journal_mode=WAL (readers never block the writer and see the
 * last committed step), synchronous=FULL (a committed step survives power loss), foreign_keys
 * on (a row's step must exist in `steps`; deleting a step deletes its rows), busy_timeout 10 s.
 * All writes of a step happen in one transaction: run_store_begin_step (BEGIN IMMEDIATE, then the
 * step's row in `steps`), the log calls, run_store_commit_step. A writer killed at any moment
 * therefore loses at most the step it had not committed: that step has no rows at all.
 * Rows are upserts keyed by their UNIQUE columns, so a resumed step that writes the same keys
 * again replaces the values instead of adding rows; run_store_discard_after drops the steps a
 * resume is about to redo, so keys that the redo does not write do not linger.
 *
 * Opening checks the schema: a database written by a newer posttrain is refused (upgrade
 * posttrain); an older schema is migrated when a migration exists and refused otherwise; a file
 * that is not SQLite, or SQLite without our tables, is PT_ERR_FORMAT naming the path.
 *
 * A run_store is one connection: use it from one thread at a time. Statements for the per-step
 * writes are prepared once at open and reused.
 */
#ifndef POSTTRAIN_DATASETS_RUN_STORE_H
#define POSTTRAIN_DATASETS_RUN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define RUN_STORE_SCHEMA_VERSION 1
#define RUN_STORE_FILE "run.db"

typedef struct run_store run_store;
typedef struct sqlite3 sqlite3;

enum run_store_flags {
    RUN_STORE_READ_ONLY = 1u << 0, /* no schema creation, no writes; the database must exist */
};

/* One sampled completion and its scores. Strings are NUL-terminated UTF-8 (invalid UTF-8 is
 * stored as given). reward_scores[i] is the score of reward_names[i]; NaN records null. */
typedef struct run_rollout {
    int64_t prompt_index;
    int64_t sample_index;
    const char *prompt;
    const char *completion;
    const char *const *reward_names; /* (n_rewards) distinct names */
    const double *reward_scores;     /* (n_rewards) */
    int n_rewards;
    double reward;    /* the weighted total */
    double advantage;
    int64_t length;   /* completion tokens */
    const char *finish_reason; /* "stop", "length", ... */
} run_rollout;

/* A metric's values over steps, in step order. */
typedef struct run_metric_series {
    int64_t *steps;  /* (n) */
    double *values;  /* (n) NaN where the value was NaN/NULL */
    size_t n;
} run_metric_series;

/* Opens (creating when missing and not read-only) run_dir/run.db; run_dir must exist. */
pt_status run_store_open(run_store **out, const char *run_dir, unsigned flags, pt_error *err);
/* The same for an explicit database file. */
pt_status run_store_open_file(run_store **out, const char *path, unsigned flags, pt_error *err);
/* Rolls back a step left open. NULL is fine. */
void run_store_close(run_store *rs);

/* Records a start or resume of the run: command ("grpo", "sft", ...), the resolved config as
 * JSON text (may be NULL) and its hash. Its own transaction; not inside a step. */
pt_status run_store_log_run(run_store *rs, const char *command, const char *config_json, uint64_t config_hash,
                            pt_error *err);

/* BEGIN IMMEDIATE and the step's row in `steps`. One step at a time; step >= 0. */
pt_status run_store_begin_step(run_store *rs, int64_t step, pt_error *err);
pt_status run_store_commit_step(run_store *rs, pt_error *err);
/* Undoes everything since run_store_begin_step (the database is as before it). */
pt_status run_store_rollback_step(run_store *rs, pt_error *err);
/* The step being written, or -1 when none is open. */
int64_t run_store_open_step(const run_store *rs);

/* Rows of the open step (an error when no step is open). Upserts: see the file comment. */
pt_status run_store_log_metric(run_store *rs, const char *name, double value, pt_error *err);
pt_status run_store_log_metrics(run_store *rs, const char *const *names, const double *values, size_t n,
                                pt_error *err);
pt_status run_store_log_rollout(run_store *rs, const run_rollout *r, pt_error *err);
pt_status run_store_log_checkpoint(run_store *rs, const char *path, const char *checksum, pt_error *err);

/* Deletes every step > step and its rows (own transaction; not inside a step). */
pt_status run_store_discard_after(run_store *rs, int64_t step, pt_error *err);

/* Reading. */
/* *step = the last committed step, or -1 when there is none. */
pt_status run_store_last_step(int64_t *step, run_store *rs, pt_error *err);
/* *out = the series of metric `name` (n = 0 when never logged); free with run_metric_series_free. */
pt_status run_store_metric_series(run_metric_series *out, run_store *rs, const char *name, pt_error *err);
void run_metric_series_free(run_metric_series *s);
/* *names = the distinct metric names, sorted (malloc'd array of malloc'd strings); free with
 * run_store_names_free. */
pt_status run_store_metric_names(char ***names, size_t *n, run_store *rs, pt_error *err);
void run_store_names_free(char **names, size_t n);
/* The connection, for read queries of callers that build datasets or reports from the store.
 * Do not write through it. */
sqlite3 *run_store_db(run_store *rs);

#endif
