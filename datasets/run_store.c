/* run_store.c — see run_store.h for the tables, the transaction rules and the invariants.
 *
 * Why the pieces are there: BEGIN IMMEDIATE takes the write lock at the start of a step, so a
 * second writer waits (busy_timeout) or fails at begin, never half-way through a step; the
 * `steps` row is written inside the step's transaction, so "step s is committed" and "step s has
 * its rows" are the same fact, and the foreign keys make a row without its step impossible;
 * upserts (INSERT ... ON CONFLICT DO UPDATE, never INSERT OR REPLACE, which would delete and so
 * cascade) keep rows unique when a resumed step writes them again.
 */
#include "datasets/run_store.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct run_store {
    sqlite3 *db;
    char *path;
    bool read_only;
    int64_t step;         /* the open step, -1 when none */
    sqlite3_stmt *begin;  /* BEGIN IMMEDIATE */
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *put_step;
    sqlite3_stmt *put_metric;
    sqlite3_stmt *put_rollout;
    sqlite3_stmt *put_checkpoint;
};

static const char *SCHEMA_SQL =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "CREATE TABLE run (id INTEGER PRIMARY KEY, created TEXT NOT NULL, command TEXT NOT NULL, config TEXT,"
    "  config_hash TEXT);"
    "CREATE TABLE steps (step INTEGER PRIMARY KEY, written_at REAL NOT NULL);"
    "CREATE TABLE metrics (step INTEGER NOT NULL REFERENCES steps(step) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, value REAL, UNIQUE (step, name));"
    "CREATE INDEX metrics_by_name ON metrics (name, step);"
    "CREATE TABLE rollouts (step INTEGER NOT NULL REFERENCES steps(step) ON DELETE CASCADE,"
    "  prompt_index INTEGER NOT NULL, sample_index INTEGER NOT NULL, prompt TEXT NOT NULL,"
    "  completion TEXT NOT NULL, rewards TEXT NOT NULL, reward REAL, advantage REAL,"
    "  length INTEGER NOT NULL, finish_reason TEXT NOT NULL,"
    "  UNIQUE (step, prompt_index, sample_index));"
    "CREATE TABLE checkpoints (step INTEGER NOT NULL REFERENCES steps(step) ON DELETE CASCADE,"
    "  path TEXT NOT NULL, checksum TEXT, UNIQUE (step));";

/* ------------------------------------------------------------------------------ errors */

/* An error from SQLite: "<path>: <what>: <sqlite message> (SQLite <code name>)" plus a hint for
 * the codes a user can do something about. The status is FORMAT for a file that is not a
 * (healthy) database, IO otherwise. */
static pt_status db_error(pt_error *err, const run_store *rs, int rc, int line, const char *what) {
    const char *msg = rs && rs->db ? sqlite3_errmsg(rs->db) : sqlite3_errstr(rc);
    int primary = rc & 0xff;
    const char *hint = "";
    pt_status st = PT_ERR_IO;
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
        st = PT_ERR_FORMAT;
        hint = "; this file is not a healthy posttrain run store (a run store is <run_dir>/" RUN_STORE_FILE
               ", written by posttrain)";
    } else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
        hint = "; another process holds the write lock (is a second run writing to the same directory?)";
    } else if (primary == SQLITE_READONLY) {
        hint = "; the store was opened read-only or the file is not writable";
    } else if (primary == SQLITE_FULL) {
        hint = "; the disk is full";
    } else if (primary == SQLITE_CANTOPEN) {
        hint = "; check that the directory exists and is writable";
    }
    return error_set(err, st, __FILE__, line, "%s: %s: %s (SQLite %s)%s", rs && rs->path ? rs->path : "run store",
                     what, msg, sqlite3_errstr(rc), hint);
}
#define DB_FAIL(err, rs, rc, what) return db_error((err), (rs), (rc), __LINE__, (what))

/* Runs a prepared statement that returns no rows, then resets it for the next use. */
static int stmt_run(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------- schema */

/* Version migrations: MIGRATIONS[v - 1] brings schema v to v + 1. None yet. */
static const char *const MIGRATIONS[] = {NULL};

/* Called inside a transaction: checks the schema of an existing database. An empty database, or
 * one with an older schema, needs writing: with `write` false that only sets *needs_write, with
 * `write` true (inside BEGIN IMMEDIATE) it creates the tables or migrates them. */
static pt_status schema_check(run_store *rs, bool write, bool *needs_write, pt_error *err) {
    *needs_write = false;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(rs->db,
                                "SELECT (SELECT count(*) FROM sqlite_master),"
                                " (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
                                -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading the schema");
    rc = sqlite3_step(q);
    int64_t n_objects = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    int64_t has_version = rc == SQLITE_ROW ? sqlite3_column_int64(q, 1) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) DB_FAIL(err, rs, rc, "reading the schema");

    if (n_objects == 0) {
        if (rs->read_only)
            PT_FAIL(err, PT_ERR_FORMAT, "%s: the database is empty, not a posttrain run store (no tables)", rs->path);
        *needs_write = true;
        if (!write) return PT_OK;
        rc = sqlite3_exec(rs->db, SCHEMA_SQL, NULL, NULL, NULL);
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "creating the tables");
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version (version) VALUES (%d)", RUN_STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(rs->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "writing the schema version");
        return PT_OK;
    }
    if (!has_version)
        PT_FAIL(err, PT_ERR_FORMAT,
                "%s: an SQLite database without a schema_version table: not a posttrain run store; "
                "point at a run directory written by posttrain or move this file away",
                rs->path);
    rc = sqlite3_prepare_v2(rs->db, "SELECT count(*), max(version) FROM schema_version", -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading the schema version");
    rc = sqlite3_step(q);
    int64_t rows = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    bool null_version = rc != SQLITE_ROW || sqlite3_column_type(q, 1) == SQLITE_NULL;
    int64_t version = null_version ? 0 : sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) DB_FAIL(err, rs, rc, "reading the schema version");
    if (rows != 1 || null_version)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: schema_version must hold exactly one version, found %lld rows", rs->path,
                (long long)rows);
    if (version > RUN_STORE_SCHEMA_VERSION)
        PT_FAIL(err, PT_ERR_UNSUPPORTED,
                "%s: run store schema version %lld was written by a newer posttrain; this build reads version %d. "
                "Upgrade posttrain to read it",
                rs->path, (long long)version, RUN_STORE_SCHEMA_VERSION);
    if (version < 1)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: run store schema version %lld is not valid (versions start at 1)",
                rs->path, (long long)version);
    for (int64_t v = version; v < RUN_STORE_SCHEMA_VERSION; v++) {
        const char *sql = MIGRATIONS[v - 1];
        if (!sql || rs->read_only)
            PT_FAIL(err, PT_ERR_UNSUPPORTED,
                    "%s: run store schema version %lld is older than this build's version %d and %s; "
                    "read it with the posttrain that wrote it",
                    rs->path, (long long)version, RUN_STORE_SCHEMA_VERSION,
                    sql ? "the store was opened read-only, so it cannot be migrated" : "no migration exists");
        *needs_write = true;
        if (!write) return PT_OK;
        rc = sqlite3_exec(rs->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "migrating the schema");
    }
    if (version != RUN_STORE_SCHEMA_VERSION) {
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", RUN_STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(rs->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "writing the schema version");
    }
    return PT_OK;
}

/* PRAGMA that returns one text row; *out receives it (truncated to n). */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t n) {
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(q);
    out[0] = 0;
    if (rc == SQLITE_ROW && sqlite3_column_text(q, 0))
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static pt_status prepare(run_store *rs, sqlite3_stmt **s, const char *sql, pt_error *err) {
    int rc = sqlite3_prepare_v3(rs->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "preparing a statement");
    return PT_OK;
}

static pt_status open_db(run_store *rs, pt_error *err) {
    if (rs->read_only && access(rs->path, F_OK) != 0)
        PT_FAIL(err, PT_ERR_IO, "%s: no run store here (the file does not exist)", rs->path);
    int oflags = rs->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(rs->path, &rs->db, oflags, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "opening the database");
    sqlite3_extended_result_codes(rs->db, 1);
    sqlite3_busy_timeout(rs->db, 10000);
    /* The first read of the header: a file that is not SQLite fails here with NOTADB. */
    char mode[32];
    rc = pragma_text(rs->db, "PRAGMA schema_version", mode, sizeof mode);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading the database header");
    rc = sqlite3_exec(rs->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "turning foreign keys on");
    /* The schema is checked in a plain read transaction first (opening a store never waits for a
     * writer in the middle of a step, and a database that is not ours is refused before anything
     * in it changes, its journal mode included); only creating or migrating takes the write lock,
     * and then checks again, so two processes opening a new store at once cannot both create the
     * tables. */
    for (int pass = 0; pass < 2; pass++) {
        rc = sqlite3_exec(rs->db, pass == 0 ? "BEGIN" : "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "starting the schema check");
        bool needs_write = false;
        pt_status st = schema_check(rs, pass == 1, &needs_write, err);
        rc = sqlite3_exec(rs->db, st == PT_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
        if (st != PT_OK) return st;
        if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "committing the schema");
        if (pass == 0 && !rs->read_only) {
            rc = pragma_text(rs->db, "PRAGMA journal_mode = WAL", mode, sizeof mode);
            if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "switching to WAL");
            if (strcmp(mode, "wal") != 0)
                PT_FAIL(err, PT_ERR_IO,
                        "%s: SQLite refused WAL mode (journal_mode is \"%s\"); WAL needs shared memory, which some "
                        "network file systems lack: put the run directory on a local disk",
                        rs->path, mode);
            rc = sqlite3_exec(rs->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
            if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "setting synchronous");
        }
        if (!needs_write) break;
    }

    PT_TRY(prepare(rs, &rs->begin, "BEGIN IMMEDIATE", err));
    PT_TRY(prepare(rs, &rs->commit, "COMMIT", err));
    PT_TRY(prepare(rs, &rs->rollback, "ROLLBACK", err));
    PT_TRY(prepare(rs, &rs->put_step,
                   "INSERT INTO steps (step, written_at) VALUES (?1, ?2)"
                   " ON CONFLICT (step) DO UPDATE SET written_at = excluded.written_at",
                   err));
    PT_TRY(prepare(rs, &rs->put_metric,
                   "INSERT INTO metrics (step, name, value) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (step, name) DO UPDATE SET value = excluded.value",
                   err));
    PT_TRY(prepare(rs, &rs->put_rollout,
                   "INSERT INTO rollouts (step, prompt_index, sample_index, prompt, completion, rewards, reward,"
                   " advantage, length, finish_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                   " ON CONFLICT (step, prompt_index, sample_index) DO UPDATE SET prompt = excluded.prompt,"
                   " completion = excluded.completion, rewards = excluded.rewards, reward = excluded.reward,"
                   " advantage = excluded.advantage, length = excluded.length,"
                   " finish_reason = excluded.finish_reason",
                   err));
    PT_TRY(prepare(rs, &rs->put_checkpoint,
                   "INSERT INTO checkpoints (step, path, checksum) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (step) DO UPDATE SET path = excluded.path, checksum = excluded.checksum",
                   err));
    return PT_OK;
}

pt_status run_store_open_file(run_store **out, const char *path, unsigned flags, pt_error *err) {
    *out = NULL;
    PT_CHECK(path && *path, err, PT_ERR_INVALID, "run store path is empty");
    run_store *rs = calloc(1, sizeof *rs);
    PT_CHECK_ALLOC(rs, err, sizeof *rs);
    rs->step = -1;
    rs->read_only = (flags & RUN_STORE_READ_ONLY) != 0;
    rs->path = strdup(path);
    if (!rs->path) {
        free(rs);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory opening the run store");
    }
    pt_status st = open_db(rs, err);
    if (st != PT_OK) {
        run_store_close(rs);
        return st;
    }
    *out = rs;
    return PT_OK;
}

pt_status run_store_open(run_store **out, const char *run_dir, unsigned flags, pt_error *err) {
    *out = NULL;
    PT_CHECK(run_dir && *run_dir, err, PT_ERR_INVALID, "run directory is empty");
    size_t n = strlen(run_dir) + sizeof "/" RUN_STORE_FILE;
    char *path = malloc(n);
    PT_CHECK_ALLOC(path, err, n);
    snprintf(path, n, "%s/%s", run_dir, RUN_STORE_FILE);
    pt_status st = run_store_open_file(out, path, flags, err);
    free(path);
    return st;
}

void run_store_close(run_store *rs) {
    if (!rs) return;
    if (rs->db && rs->step >= 0) sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_stmt *all[] = {rs->begin,      rs->commit,      rs->rollback,      rs->put_step,
                           rs->put_metric, rs->put_rollout, rs->put_checkpoint};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
    if (rs->db) sqlite3_close(rs->db);
    free(rs->path);
    free(rs);
}

sqlite3 *run_store_db(run_store *rs) { return rs->db; }

/* -------------------------------------------------------------------------------- writes */

static pt_status need_writable(const run_store *rs, const char *what, pt_error *err) {
    PT_CHECK(!rs->read_only, err, PT_ERR_INVALID, "%s: %s: the run store was opened read-only", rs->path, what);
    return PT_OK;
}

static pt_status need_step(const run_store *rs, const char *what, pt_error *err) {
    PT_CHECK(rs->step >= 0, err, PT_ERR_INVALID,
             "%s: %s outside a step: call run_store_begin_step first (every row belongs to a step)", rs->path, what);
    return PT_OK;
}

static pt_status need_no_step(const run_store *rs, const char *what, pt_error *err) {
    PT_CHECK(rs->step < 0, err, PT_ERR_INVALID, "%s: %s while step %lld is open: commit or roll it back first",
             rs->path, what, (long long)rs->step);
    return PT_OK;
}

pt_status run_store_log_run(run_store *rs, const char *command, const char *config_json, uint64_t config_hash,
                            pt_error *err) {
    PT_TRY(need_writable(rs, "logging the run", err));
    PT_TRY(need_no_step(rs, "logging the run", err));
    PT_CHECK(command && *command, err, PT_ERR_INVALID, "%s: the run's command is empty", rs->path);
    char created[32], hash[17];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)config_hash);
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(rs->db, "INSERT INTO run (created, command, config, config_hash) VALUES (?1, ?2, ?3, ?4)",
                                -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "logging the run");
    sqlite3_bind_text(q, 1, created, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, command, -1, SQLITE_TRANSIENT);
    if (config_json) sqlite3_bind_text(q, 3, config_json, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, hash, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) DB_FAIL(err, rs, rc, "logging the run");
    return PT_OK;
}

pt_status run_store_begin_step(run_store *rs, int64_t step, pt_error *err) {
    PT_TRY(need_writable(rs, "beginning a step", err));
    PT_TRY(need_no_step(rs, "beginning a step", err));
    PT_CHECK(step >= 0, err, PT_ERR_INVALID, "%s: step %lld is negative", rs->path, (long long)step);
    int rc = stmt_run(rs->begin);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "beginning the step's transaction");
    sqlite3_bind_int64(rs->put_step, 1, step);
    sqlite3_bind_double(rs->put_step, 2, wall_seconds());
    rc = stmt_run(rs->put_step);
    if (rc != SQLITE_OK) {
        pt_status st = db_error(err, rs, rc, __LINE__, "writing the step row");
        stmt_run(rs->rollback);
        return st;
    }
    rs->step = step;
    return PT_OK;
}

pt_status run_store_commit_step(run_store *rs, pt_error *err) {
    PT_TRY(need_step(rs, "committing", err));
    int rc = stmt_run(rs->commit);
    if (rc != SQLITE_OK) {
        /* The transaction is still open (COMMIT failed): the caller may retry or roll back. */
        char what[64];
        snprintf(what, sizeof what, "committing step %lld", (long long)rs->step);
        DB_FAIL(err, rs, rc, what);
    }
    rs->step = -1;
    return PT_OK;
}

pt_status run_store_rollback_step(run_store *rs, pt_error *err) {
    PT_TRY(need_step(rs, "rolling back", err));
    int rc = stmt_run(rs->rollback);
    rs->step = -1;
    /* A failed ROLLBACK means SQLite already rolled the transaction back itself. */
    if (rc != SQLITE_OK && sqlite3_get_autocommit(rs->db) == 0) DB_FAIL(err, rs, rc, "rolling back the step");
    return PT_OK;
}

int64_t run_store_open_step(const run_store *rs) { return rs->step; }

pt_status run_store_log_metric(run_store *rs, const char *name, double value, pt_error *err) {
    PT_TRY(need_step(rs, "logging a metric", err));
    PT_CHECK(name && *name, err, PT_ERR_INVALID, "%s: a metric name is empty", rs->path);
    sqlite3_bind_int64(rs->put_metric, 1, rs->step);
    sqlite3_bind_text(rs->put_metric, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_double(rs->put_metric, 3, value); /* NaN binds as NULL */
    int rc = stmt_run(rs->put_metric);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "logging a metric");
    return PT_OK;
}

pt_status run_store_log_metrics(run_store *rs, const char *const *names, const double *values, size_t n,
                                pt_error *err) {
    for (size_t i = 0; i < n; i++) PT_TRY(run_store_log_metric(rs, names[i], values[i], err));
    return PT_OK;
}

/* {name: score|null, ...} as compact JSON (malloc'd). */
static pt_status rewards_json(char **out, const run_store *rs, const run_rollout *r, pt_error *err) {
    *out = NULL;
    PT_CHECK(r->n_rewards >= 0 && (r->n_rewards == 0 || (r->reward_names && r->reward_scores)), err,
             PT_ERR_INVALID, "%s: rollout (%lld, %lld) has %d rewards but no names or scores", rs->path,
             (long long)r->prompt_index, (long long)r->sample_index, r->n_rewards);
    cJSON *obj = cJSON_CreateObject();
    PT_CHECK_ALLOC(obj, err, sizeof(cJSON));
    for (int i = 0; i < r->n_rewards; i++) {
        const char *name = r->reward_names[i];
        if (!name || !*name || cJSON_GetObjectItemCaseSensitive(obj, name)) {
            cJSON_Delete(obj);
            PT_FAIL(err, PT_ERR_INVALID, "%s: rollout (%lld, %lld): reward name %d is %s", rs->path,
                    (long long)r->prompt_index, (long long)r->sample_index, i,
                    !name || !*name ? "empty" : "given twice");
        }
        double v = r->reward_scores[i];
        cJSON *item = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
        if (!item || !cJSON_AddItemToObject(obj, name, item)) {
            cJSON_Delete(item);
            cJSON_Delete(obj);
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory building a rollout's rewards");
        }
    }
    *out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    PT_CHECK_ALLOC(*out, err, 64);
    return PT_OK;
}

pt_status run_store_log_rollout(run_store *rs, const run_rollout *r, pt_error *err) {
    PT_TRY(need_step(rs, "logging a rollout", err));
    PT_CHECK(r->prompt && r->completion && r->finish_reason, err, PT_ERR_INVALID,
             "%s: rollout (%lld, %lld) lacks its prompt, completion or finish_reason", rs->path,
             (long long)r->prompt_index, (long long)r->sample_index);
    char *rewards = NULL;
    PT_TRY(rewards_json(&rewards, rs, r, err));
    sqlite3_stmt *s = rs->put_rollout;
    sqlite3_bind_int64(s, 1, rs->step);
    sqlite3_bind_int64(s, 2, r->prompt_index);
    sqlite3_bind_int64(s, 3, r->sample_index);
    sqlite3_bind_text(s, 4, r->prompt, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, r->completion, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, rewards, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 7, r->reward);
    sqlite3_bind_double(s, 8, r->advantage);
    sqlite3_bind_int64(s, 9, r->length);
    sqlite3_bind_text(s, 10, r->finish_reason, -1, SQLITE_STATIC);
    int rc = stmt_run(s);
    free(rewards);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "logging a rollout");
    return PT_OK;
}

pt_status run_store_log_checkpoint(run_store *rs, const char *path, const char *checksum, pt_error *err) {
    PT_TRY(need_step(rs, "logging a checkpoint", err));
    PT_CHECK(path && *path, err, PT_ERR_INVALID, "%s: a checkpoint path is empty", rs->path);
    sqlite3_bind_int64(rs->put_checkpoint, 1, rs->step);
    sqlite3_bind_text(rs->put_checkpoint, 2, path, -1, SQLITE_STATIC);
    if (checksum) sqlite3_bind_text(rs->put_checkpoint, 3, checksum, -1, SQLITE_STATIC);
    int rc = stmt_run(rs->put_checkpoint);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "logging a checkpoint");
    return PT_OK;
}

pt_status run_store_discard_after(run_store *rs, int64_t step, pt_error *err) {
    PT_TRY(need_writable(rs, "discarding steps", err));
    PT_TRY(need_no_step(rs, "discarding steps", err));
    int rc = stmt_run(rs->begin);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "discarding steps");
    sqlite3_stmt *q = NULL;
    rc = sqlite3_prepare_v2(rs->db, "DELETE FROM steps WHERE step > ?1", -1, &q, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, step);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(rs->db);
        sqlite3_finalize(q);
    }
    if (rc == SQLITE_OK) rc = stmt_run(rs->commit);
    if (rc != SQLITE_OK) {
        pt_status st = db_error(err, rs, rc, __LINE__, "discarding steps");
        if (!sqlite3_get_autocommit(rs->db)) stmt_run(rs->rollback);
        return st;
    }
    return PT_OK;
}

/* --------------------------------------------------------------------------------- reads */

pt_status run_store_last_step(int64_t *step, run_store *rs, pt_error *err) {
    *step = -1;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(rs->db, "SELECT max(step) FROM steps", -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading the last step");
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) *step = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) DB_FAIL(err, rs, rc, "reading the last step");
    return PT_OK;
}

void run_metric_series_free(run_metric_series *s) {
    free(s->steps);
    free(s->values);
    memset(s, 0, sizeof *s);
}

pt_status run_store_metric_series(run_metric_series *out, run_store *rs, const char *name, pt_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(rs->db, "SELECT step, value FROM metrics WHERE name = ?1 ORDER BY step", -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading a metric");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    size_t cap = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (out->n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            int64_t *s = realloc(out->steps, ncap * sizeof *s);
            if (s) out->steps = s;
            double *v = realloc(out->values, ncap * sizeof *v);
            if (v) out->values = v;
            if (!s || !v) {
                sqlite3_finalize(q);
                run_metric_series_free(out);
                PT_FAIL(err, PT_ERR_NOMEM, "out of memory reading metric '%s'", name);
            }
            cap = ncap;
        }
        out->steps[out->n] = sqlite3_column_int64(q, 0);
        out->values[out->n] = sqlite3_column_type(q, 1) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 1);
        out->n++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        run_metric_series_free(out);
        DB_FAIL(err, rs, rc, "reading a metric");
    }
    return PT_OK;
}

void run_store_names_free(char **names, size_t n) {
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

pt_status run_store_metric_names(char ***names, size_t *n, run_store *rs, pt_error *err) {
    *names = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(rs->db, "SELECT DISTINCT name FROM metrics ORDER BY name", -1, &q, NULL);
    if (rc != SQLITE_OK) DB_FAIL(err, rs, rc, "reading metric names");
    size_t cap = 0;
    char **v = NULL;
    size_t k = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char *s = strdup((const char *)sqlite3_column_text(q, 0));
        if (s && k == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            char **nv = realloc(v, ncap * sizeof *nv);
            if (nv) {
                v = nv;
                cap = ncap;
            }
        }
        if (!s || k == cap) {
            free(s);
            sqlite3_finalize(q);
            run_store_names_free(v, k);
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory reading metric names");
        }
        v[k++] = s;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        run_store_names_free(v, k);
        DB_FAIL(err, rs, rc, "reading metric names");
    }
    *names = v;
    *n = k;
    return PT_OK;
}
