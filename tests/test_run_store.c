/* test_run_store.c — the run store's contract: rows round-trip (checked through raw SQL, not only
 * through the store's own readers), a rewritten step replaces its rows, a reader on a second
 * connection sees the last committed step while a step is being written, a writer killed with
 * SIGKILL in the middle of a step (after uncommitted pages have reached the WAL file) loses that
 * step and nothing else and leaves a database that passes `PRAGMA integrity_check`, and files that
 * are not run stores (garbage, a foreign SQLite database, a newer or invalid schema) are refused
 * with a message naming the file. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datasets/run_store.h"
#include "tests/util/check.h"

#define ASSERT_HAS(msg, text) cr_assert(strstr((msg), (text)), "expected '%s' in:\n%s", (text), (msg))
#define OK(expr)                                                                                   \
    do {                                                                                           \
        pt_error e_ = {0};                                                                         \
        pt_status s_ = (expr);                                                                     \
        (void)e_;                                                                                  \
        cr_assert_eq(s_, PT_OK, "%s: %s", #expr, e_.msg);                                           \
    } while (0)

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *d) {
    snprintf(d->path, sizeof d->path, "/tmp/pt_run_store_XXXXXX");
    cr_assert_not_null(mkdtemp(d->path));
}

static void tmpdir_file(char *buf, size_t n, const tmpdir *d, const char *name) {
    snprintf(buf, n, "%s/%s", d->path, name);
}

static void tmpdir_remove(tmpdir *d) {
    const char *names[] = {"run.db", "run.db-wal", "run.db-shm", "run.db-journal", "other.db"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        tmpdir_file(p, sizeof p, d, names[i]);
        unlink(p);
    }
    rmdir(d->path);
}

static run_store *open_store(const tmpdir *d, unsigned flags) {
    run_store *rs = NULL;
    pt_error err = {0};
    pt_status st = run_store_open(&rs, d->path, flags, &err);
    cr_assert_eq(st, PT_OK, "open: %s", err.msg);
    return rs;
}

/* A second, independent connection (as the sqlite3 shell or `posttrain report` would have). */
static sqlite3 *open_raw(const tmpdir *d, int flags) {
    char p[128];
    tmpdir_file(p, sizeof p, d, "run.db");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(p, &db, flags, NULL), SQLITE_OK);
    return db;
}

static int64_t query_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(q);
    cr_assert_eq(rc, SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static void query_text(char *out, size_t n, sqlite3 *db, const char *sql) {
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    const unsigned char *t = sqlite3_column_text(q, 0);
    snprintf(out, n, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(q);
}

/* The rows a test writer puts in step s: metric "m/i" = metric_value(s, i); rollout (p, k) with
 * reward rollout_reward(s, p, k). */
static double metric_value(int64_t s, int i) { return (double)s * 1000.0 + i + 0.25; }
static double rollout_reward(int64_t s, int p, int k) { return (double)(s * 100 + p * 10 + k) / 8.0; }

static void write_rollout(run_store *rs, int64_t s, int p, int k) {
    char prompt[64], completion[64];
    snprintf(prompt, sizeof prompt, "prompt %d of step %lld", p, (long long)s);
    snprintf(completion, sizeof completion, "<answer>%d</answer>", k);
    const char *names[] = {"accuracy", "format"};
    double scores[] = {rollout_reward(s, p, k), NAN};
    run_rollout r = {.prompt_index = p, .sample_index = k, .prompt = prompt, .completion = completion,
                     .reward_names = names, .reward_scores = scores, .n_rewards = 2,
                     .reward = rollout_reward(s, p, k), .advantage = -0.5, .length = 10 + k,
                     .finish_reason = k % 2 ? "length" : "stop"};
    pt_error err = {0};
    cr_assert_eq(run_store_log_rollout(rs, &r, &err), PT_OK, "%s", err.msg);
}

static void write_step(run_store *rs, int64_t s, int n_metrics, int n_prompts, int n_samples) {
    pt_error err = {0};
    cr_assert_eq(run_store_begin_step(rs, s, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < n_metrics; i++) {
        char name[32];
        snprintf(name, sizeof name, "m/%d", i);
        cr_assert_eq(run_store_log_metric(rs, name, metric_value(s, i), &err), PT_OK, "%s", err.msg);
    }
    for (int p = 0; p < n_prompts; p++)
        for (int k = 0; k < n_samples; k++) write_rollout(rs, s, p, k);
    cr_assert_eq(run_store_commit_step(rs, &err), PT_OK, "%s", err.msg);
}

/* Every step in `steps` is complete: exactly n_metrics metrics and n_rollouts rollouts with the
 * values the writer wrote; no row belongs to a step outside `steps`; steps are 0..last. */
static void check_complete(sqlite3 *db, int n_metrics, int n_rollouts, int64_t *last) {
    *last = query_int(db, "SELECT coalesce(max(step), -1) FROM steps");
    cr_assert_eq(query_int(db, "SELECT count(*) FROM steps"), *last + 1, "steps are not contiguous");
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE step NOT IN (SELECT step FROM steps)"), 0);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rollouts WHERE step NOT IN (SELECT step FROM steps)"), 0);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT s.step, (SELECT count(*) FROM metrics m WHERE m.step = s.step),"
                                    " (SELECT count(*) FROM rollouts r WHERE r.step = s.step) FROM steps s",
                                    -1, &q, NULL),
                 SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        cr_assert_eq(sqlite3_column_int64(q, 1), n_metrics, "step %lld has %lld metrics",
                     (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 1));
        cr_assert_eq(sqlite3_column_int64(q, 2), n_rollouts, "step %lld has %lld rollouts",
                     (long long)sqlite3_column_int64(q, 0), (long long)sqlite3_column_int64(q, 2));
    }
    sqlite3_finalize(q);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT step, name, value FROM metrics", -1, &q, NULL), SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        int i = atoi((const char *)sqlite3_column_text(q, 1) + 2);
        cr_assert_eq(sqlite3_column_double(q, 2), metric_value(sqlite3_column_int64(q, 0), i));
    }
    sqlite3_finalize(q);
}

static void check_integrity(sqlite3 *db) {
    char res[256];
    query_text(res, sizeof res, db, "PRAGMA integrity_check");
    cr_assert_str_eq(res, "ok");
    cr_assert_eq(query_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

Test(run_store, round_trip) {
    tmpdir d;
    tmpdir_make(&d);
    pt_error err = {0};
    run_store *rs = open_store(&d, 0);
    cr_assert_eq(run_store_log_run(rs, "grpo", "{\"beta\": 0.04}", 0x0123456789abcdefull, &err), PT_OK, "%s",
                 err.msg);
    int64_t last = 7;
    OK(run_store_last_step(&last, rs, &e_));
    cr_assert_eq(last, -1);
    for (int64_t s = 0; s < 3; s++) {
        cr_assert_eq(run_store_begin_step(rs, s, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(run_store_open_step(rs), s);
        const char *names[] = {"reward", "kl", "loss"};
        double values[] = {0.5 * (double)s, s == 1 ? NAN : 1e-3, -INFINITY};
        cr_assert_eq(run_store_log_metrics(rs, names, values, 3, &err), PT_OK, "%s", err.msg);
        write_rollout(rs, s, 0, 0);
        write_rollout(rs, s, 0, 1);
        if (s == 2) cr_assert_eq(run_store_log_checkpoint(rs, "ckpt/step-2", "sha256:abc", &err), PT_OK);
        cr_assert_eq(run_store_commit_step(rs, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(run_store_open_step(rs), -1);
    }
    /* Invalid UTF-8 and quotes in a completion are stored byte for byte. */
    const char bad[] = "caf\xc3 \"q\" \xff\xfe end";
    const char *names[] = {"accuracy"};
    double scores[] = {1.0};
    run_rollout r = {.prompt_index = 5, .sample_index = 0, .prompt = "p", .completion = bad,
                     .reward_names = names, .reward_scores = scores, .n_rewards = 1, .reward = 1.0,
                     .advantage = 0.0, .length = 3, .finish_reason = "stop"};
    OK(run_store_begin_step(rs, 3, &e_));
    OK(run_store_log_rollout(rs, &r, &e_));
    OK(run_store_commit_step(rs, &e_));
    run_store_close(rs);

    /* Raw SQL on an independent connection. */
    sqlite3 *db = open_raw(&d, SQLITE_OPEN_READONLY);
    char text[512];
    query_text(text, sizeof text, db, "PRAGMA journal_mode");
    cr_assert_str_eq(text, "wal");
    cr_assert_eq(query_int(db, "SELECT version FROM schema_version"), RUN_STORE_SCHEMA_VERSION);
    query_text(text, sizeof text, db, "SELECT command || ' ' || config || ' ' || config_hash FROM run");
    cr_assert_str_eq(text, "grpo {\"beta\": 0.04} 0123456789abcdef");
    query_text(text, sizeof text, db, "SELECT created FROM run");
    cr_assert_eq(strlen(text), 20, "created should be ISO-8601 UTC, got %s", text);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics"), 9);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE value IS NULL"), 1); /* the NaN */
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rollouts"), 7);
    query_text(text, sizeof text, db, "SELECT path || '|' || checksum FROM checkpoints WHERE step = 2");
    cr_assert_str_eq(text, "ckpt/step-2|sha256:abc");
    query_text(text, sizeof text, db, "SELECT finish_reason FROM rollouts WHERE step = 1 AND sample_index = 1");
    cr_assert_str_eq(text, "length");
    cr_assert_eq(query_int(db, "SELECT length FROM rollouts WHERE step = 1 AND sample_index = 1"), 11);
    /* The rewards column is JSON with null for the abstaining reward. */
    query_text(text, sizeof text, db, "SELECT rewards FROM rollouts WHERE step = 2 AND sample_index = 1");
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j, "rewards is not JSON: %s", text);
    cJSON *acc = cJSON_GetObjectItemCaseSensitive(j, "accuracy");
    cr_assert(cJSON_IsNumber(acc) && acc->valuedouble == rollout_reward(2, 0, 1), "%s", text);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "format")), "%s", text);
    cr_assert_eq(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT completion FROM rollouts WHERE step = 3", -1, &q, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_assert_eq((size_t)sqlite3_column_bytes(q, 0), sizeof bad - 1);
    cr_assert_eq(memcmp(sqlite3_column_blob(q, 0), bad, sizeof bad - 1), 0);
    sqlite3_finalize(q);
    sqlite3_close(db);

    /* The store's own readers, read-only. */
    rs = open_store(&d, RUN_STORE_READ_ONLY);
    OK(run_store_last_step(&last, rs, &e_));
    cr_assert_eq(last, 3);
    run_metric_series ser;
    OK(run_store_metric_series(&ser, rs, "kl", &e_));
    cr_assert_eq(ser.n, 3);
    cr_assert_eq(ser.steps[0], 0);
    cr_assert_eq(ser.steps[2], 2);
    cr_assert_eq(ser.values[0], 1e-3);
    cr_assert(isnan(ser.values[1]));
    run_metric_series_free(&ser);
    OK(run_store_metric_series(&ser, rs, "loss", &e_));
    cr_assert(isinf(ser.values[0]) && ser.values[0] < 0);
    run_metric_series_free(&ser);
    OK(run_store_metric_series(&ser, rs, "never", &e_));
    cr_assert_eq(ser.n, 0);
    run_metric_series_free(&ser);
    char **mn = NULL;
    size_t nn = 0;
    OK(run_store_metric_names(&mn, &nn, rs, &e_));
    cr_assert_eq(nn, 3);
    cr_assert_str_eq(mn[0], "kl");
    cr_assert_str_eq(mn[1], "loss");
    cr_assert_str_eq(mn[2], "reward");
    run_store_names_free(mn, nn);
    /* A read-only store refuses writes. */
    cr_assert_eq(run_store_begin_step(rs, 4, &err), PT_ERR_INVALID);
    ASSERT_HAS(err.msg, "read-only");
    run_store_close(rs);
    tmpdir_remove(&d);
}

Test(run_store, rewritten_step_replaces_rows) {
    tmpdir d;
    tmpdir_make(&d);
    pt_error err = {0};
    run_store *rs = open_store(&d, 0);
    write_step(rs, 2, 4, 2, 2);
    /* Step 3, first time. */
    OK(run_store_begin_step(rs, 3, &e_));
    OK(run_store_log_metric(rs, "reward", 1.0, &e_));
    OK(run_store_log_metric(rs, "kl", 2.0, &e_));
    OK(run_store_log_checkpoint(rs, "ckpt/a", "x", &e_));
    const char *names[] = {"accuracy"};
    double s1[] = {0.0}, s2[] = {1.0};
    run_rollout r = {.prompt_index = 0, .sample_index = 0, .prompt = "p", .completion = "first",
                     .reward_names = names, .reward_scores = s1, .n_rewards = 1, .reward = 0.0,
                     .advantage = -1.0, .length = 5, .finish_reason = "length"};
    OK(run_store_log_rollout(rs, &r, &e_));
    OK(run_store_commit_step(rs, &e_));
    /* Step 3 again (a resumed run redoing it), with other values. */
    OK(run_store_begin_step(rs, 3, &e_));
    OK(run_store_log_metric(rs, "reward", 10.0, &e_));
    OK(run_store_log_metric(rs, "kl", 20.0, &e_));
    OK(run_store_log_metric(rs, "reward", 11.0, &e_)); /* within a step too: the last write wins */
    OK(run_store_log_checkpoint(rs, "ckpt/b", "y", &e_));
    r.completion = "second";
    r.reward_scores = s2;
    r.reward = 1.0;
    r.finish_reason = "stop";
    OK(run_store_log_rollout(rs, &r, &e_));
    OK(run_store_commit_step(rs, &e_));

    sqlite3 *db = open_raw(&d, SQLITE_OPEN_READONLY);
    char text[256];
    cr_assert_eq(query_int(db, "SELECT count(*) FROM steps WHERE step = 3"), 1);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE step = 3"), 2);
    cr_assert_eq(query_int(db, "SELECT value FROM metrics WHERE step = 3 AND name = 'reward'"), 11);
    cr_assert_eq(query_int(db, "SELECT value FROM metrics WHERE step = 3 AND name = 'kl'"), 20);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rollouts WHERE step = 3"), 1);
    query_text(text, sizeof text, db,
               "SELECT completion || '|' || rewards || '|' || reward || '|' || finish_reason FROM rollouts WHERE step = 3");
    cr_assert_str_eq(text, "second|{\"accuracy\":1}|1.0|stop");
    cr_assert_eq(query_int(db, "SELECT count(*) FROM checkpoints"), 1);
    query_text(text, sizeof text, db, "SELECT path FROM checkpoints");
    cr_assert_str_eq(text, "ckpt/b");
    /* Step 2 untouched. */
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE step = 2"), 4);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rollouts WHERE step = 2"), 4);
    sqlite3_close(db);

    /* A resume from step 2 discards step 3 with all its rows (cascade). */
    cr_assert_eq(run_store_discard_after(rs, 2, &err), PT_OK, "%s", err.msg);
    int64_t last = -1;
    OK(run_store_last_step(&last, rs, &e_));
    cr_assert_eq(last, 2);
    db = open_raw(&d, SQLITE_OPEN_READONLY);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE step = 3"), 0);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rollouts WHERE step = 3"), 0);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM checkpoints"), 0);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM metrics WHERE step = 2"), 4);
    check_integrity(db);
    sqlite3_close(db);
    run_store_close(rs);
    tmpdir_remove(&d);
}

Test(run_store, rollback_leaves_nothing) {
    tmpdir d;
    tmpdir_make(&d);
    run_store *rs = open_store(&d, 0);
    write_step(rs, 0, 3, 1, 2);
    OK(run_store_begin_step(rs, 1, &e_));
    OK(run_store_log_metric(rs, "m/0", 1.0, &e_));
    write_rollout(rs, 1, 0, 0);
    OK(run_store_rollback_step(rs, &e_));
    /* Closing with a step open rolls it back too. */
    OK(run_store_begin_step(rs, 2, &e_));
    OK(run_store_log_metric(rs, "m/0", 1.0, &e_));
    run_store_close(rs);
    sqlite3 *db = open_raw(&d, SQLITE_OPEN_READONLY);
    int64_t last;
    check_complete(db, 3, 2, &last);
    cr_assert_eq(last, 0);
    sqlite3_close(db);
    tmpdir_remove(&d);
}

Test(run_store, misuse_is_a_clear_error) {
    tmpdir d;
    tmpdir_make(&d);
    pt_error err = {0};
    run_store *rs = open_store(&d, 0);
    cr_assert_eq(run_store_log_metric(rs, "reward", 1.0, &err), PT_ERR_INVALID);
    ASSERT_HAS(err.msg, "run_store_begin_step");
    cr_assert_eq(run_store_commit_step(rs, &err), PT_ERR_INVALID);
    cr_assert_eq(run_store_begin_step(rs, -1, &err), PT_ERR_INVALID);
    OK(run_store_begin_step(rs, 0, &e_));
    cr_assert_eq(run_store_begin_step(rs, 1, &err), PT_ERR_INVALID);
    ASSERT_HAS(err.msg, "step 0 is open");
    cr_assert_eq(run_store_log_run(rs, "grpo", NULL, 0, &err), PT_ERR_INVALID);
    cr_assert_eq(run_store_discard_after(rs, 0, &err), PT_ERR_INVALID);
    const char *names[] = {"accuracy", "accuracy"};
    double scores[] = {1.0, 0.0};
    run_rollout r = {.prompt = "p", .completion = "c", .reward_names = names, .reward_scores = scores,
                     .n_rewards = 2, .finish_reason = "stop"};
    cr_assert_eq(run_store_log_rollout(rs, &r, &err), PT_ERR_INVALID);
    ASSERT_HAS(err.msg, "given twice");
    r.finish_reason = NULL;
    r.n_rewards = 1;
    cr_assert_eq(run_store_log_rollout(rs, &r, &err), PT_ERR_INVALID);
    cr_assert_eq(run_store_log_metric(rs, "", 1.0, &err), PT_ERR_INVALID);
    /* The step is still usable after refused calls. */
    OK(run_store_log_metric(rs, "reward", 1.0, &e_));
    OK(run_store_commit_step(rs, &e_));
    run_store_close(rs);
    /* Read-only open of a directory with no store. */
    tmpdir d2;
    tmpdir_make(&d2);
    rs = NULL;
    cr_assert_eq(run_store_open(&rs, d2.path, RUN_STORE_READ_ONLY, &err), PT_ERR_IO);
    cr_assert_null(rs);
    ASSERT_HAS(err.msg, d2.path);
    ASSERT_HAS(err.msg, "does not exist");
    /* A directory that does not exist. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir", d2.path);
    cr_assert_eq(run_store_open(&rs, missing, 0, &err), PT_ERR_IO);
    ASSERT_HAS(err.msg, missing);
    tmpdir_remove(&d2);
    tmpdir_remove(&d);
}

/* A reader on another connection sees the last committed step while a step is being written,
 * and is not blocked by it. */
Test(run_store, reader_during_write) {
    tmpdir d;
    tmpdir_make(&d);
    run_store *w = open_store(&d, 0);
    write_step(w, 0, 5, 2, 2);
    OK(run_store_begin_step(w, 1, &e_));
    for (int i = 0; i < 5; i++) OK(run_store_log_metric(w, "m/0", metric_value(1, 0), &e_));
    write_rollout(w, 1, 0, 0);

    run_store *r = open_store(&d, RUN_STORE_READ_ONLY);
    sqlite3 *raw = open_raw(&d, SQLITE_OPEN_READONLY);
    sqlite3_busy_timeout(raw, 0); /* would fail at once if the writer blocked readers */
    int64_t last = -1;
    OK(run_store_last_step(&last, r, &e_));
    cr_assert_eq(last, 0);
    cr_assert_eq(query_int(raw, "SELECT count(*) FROM metrics WHERE step = 1"), 0);
    cr_assert_eq(query_int(raw, "SELECT count(*) FROM rollouts"), 4);
    /* A second writer cannot start a step while the first holds one. */
    run_store *w2 = open_store(&d, 0);
    sqlite3_busy_timeout(run_store_db(w2), 50);
    pt_error err = {0};
    cr_assert_eq(run_store_begin_step(w2, 1, &err), PT_ERR_IO);
    ASSERT_HAS(err.msg, "another process holds the write lock");
    run_store_close(w2);

    OK(run_store_commit_step(w, &e_));
    OK(run_store_last_step(&last, r, &e_));
    cr_assert_eq(last, 1);
    cr_assert_eq(query_int(raw, "SELECT count(*) FROM metrics WHERE step = 1"), 1);
    cr_assert_eq(query_int(raw, "SELECT count(*) FROM rollouts WHERE step = 1"), 1);
    sqlite3_close(raw);
    run_store_close(r);
    run_store_close(w);
    tmpdir_remove(&d);
}

/* ------------------------------------------------------------------------------ kill test */

enum { KILL_METRICS = 300, KILL_PROMPTS = 8, KILL_SAMPLES = 8 };

static off_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* The child: steps 0, 1, ... each with KILL_METRICS metrics and KILL_PROMPTS × KILL_SAMPLES
 * rollouts in one transaction. After committing step `stop_after` it sends the WAL size on the
 * pipe; when `pause_in_next` it then writes half of the next step, sends the WAL size again and
 * waits to be killed; otherwise it keeps writing steps. A tiny page cache makes SQLite spill the
 * uncommitted pages to the WAL file, and checkpoints are off so the WAL only grows: the killed
 * transaction's frames are really on disk. */
static void kill_child(const char *dir, int fd, int64_t stop_after, bool pause_in_next) {
    run_store *rs = NULL;
    pt_error err = {0};
    if (run_store_open(&rs, dir, 0, &err) != PT_OK) _exit(3);
    sqlite3_exec(run_store_db(rs), "PRAGMA cache_size = 8; PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL);
    char wal[160];
    snprintf(wal, sizeof wal, "%s/run.db-wal", dir);
    for (int64_t s = 0; s < 100000; s++) {
        if (run_store_begin_step(rs, s, &err) != PT_OK) _exit(4);
        for (int i = 0; i < KILL_METRICS; i++) {
            char name[32];
            snprintf(name, sizeof name, "m/%d", i);
            if (run_store_log_metric(rs, name, metric_value(s, i), &err) != PT_OK) _exit(5);
            if (pause_in_next && s == stop_after + 1 && i == KILL_METRICS / 2) {
                off_t sz = file_size(wal);
                if (write(fd, &sz, sizeof sz) != sizeof sz) _exit(6);
                for (;;) pause();
            }
        }
        for (int p = 0; p < KILL_PROMPTS; p++)
            for (int k = 0; k < KILL_SAMPLES; k++) {
                char prompt[64], completion[600];
                snprintf(prompt, sizeof prompt, "prompt %d of step %lld", p, (long long)s);
                memset(completion, 'a' + k, sizeof completion - 1);
                completion[sizeof completion - 1] = 0;
                const char *names[] = {"accuracy"};
                double sc[] = {rollout_reward(s, p, k)};
                run_rollout r = {.prompt_index = p, .sample_index = k, .prompt = prompt, .completion = completion,
                                 .reward_names = names, .reward_scores = sc, .n_rewards = 1, .reward = sc[0],
                                 .advantage = 0.0, .length = 600, .finish_reason = "stop"};
                if (run_store_log_rollout(rs, &r, &err) != PT_OK) _exit(7);
            }
        if (run_store_commit_step(rs, &err) != PT_OK) _exit(8);
        if (s == stop_after) {
            off_t sz = file_size(wal);
            if (write(fd, &sz, sizeof sz) != sizeof sz) _exit(6);
        }
    }
    _exit(0);
}

static pid_t spawn_writer(const char *dir, int *read_fd, int64_t stop_after, bool pause_in_next) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        kill_child(dir, fds[1], stop_after, pause_in_next);
    }
    close(fds[1]);
    *read_fd = fds[0];
    return pid;
}

static void read_size(int fd, off_t *sz, pid_t pid) {
    ssize_t n = read(fd, sz, sizeof *sz);
    if (n != (ssize_t)sizeof *sz) {
        int status = 0;
        waitpid(pid, &status, 0);
        cr_assert_fail("the writer died before signalling (exit status %d)",
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
}

static void kill_and_reap(pid_t pid) {
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was not killed (status %d)", status);
}

/* After the kill: the database passes integrity_check, committed steps are complete, the killed
 * step is absent, and the store opens and takes new steps. */
static void check_after_kill(const tmpdir *d, int64_t *last) {
    sqlite3 *db = open_raw(d, SQLITE_OPEN_READWRITE); /* read-write: recovery may replay the WAL */
    check_integrity(db);
    check_complete(db, KILL_METRICS, KILL_PROMPTS * KILL_SAMPLES, last);
    sqlite3_close(db);
    run_store *rs = open_store(d, 0);
    write_step(rs, *last + 1, 2, 1, 1);
    run_store_close(rs);
}

Test(run_store, kill_mid_step_loses_only_that_step) {
    tmpdir d;
    tmpdir_make(&d);
    const int64_t k = 3;
    int fd;
    pid_t pid = spawn_writer(d.path, &fd, k, true);
    off_t committed_wal = 0, killed_wal = 0;
    read_size(fd, &committed_wal, pid);
    read_size(fd, &killed_wal, pid);
    close(fd);
    kill_and_reap(pid);
    cr_assert_gt(killed_wal, committed_wal,
                 "the uncommitted step never reached the WAL (%lld vs %lld bytes): the test would prove nothing",
                 (long long)killed_wal, (long long)committed_wal);
    int64_t last;
    check_after_kill(&d, &last);
    cr_assert_eq(last, k, "expected steps 0..%lld to survive, found 0..%lld", (long long)k, (long long)last);
    tmpdir_remove(&d);
}

/* The same with the kill at an arbitrary moment: after a random delay while the writer loops. */
Test(run_store, kill_at_random_moments) {
    test_rng g;
    test_rng_seed(&g, (uint64_t)time(NULL));
    for (int round = 0; round < 3; round++) {
        tmpdir d;
        tmpdir_make(&d);
        int fd;
        pid_t pid = spawn_writer(d.path, &fd, 0, false);
        off_t sz;
        read_size(fd, &sz, pid); /* step 0 committed */
        close(fd);
        long us = 5000 + (long)(test_rng_uniform(&g) * 150000.0);
        cr_log_info("round %d: SIGKILL %ld us after step 0 committed", round, us);
        struct timespec ts = {0, us * 1000L};
        nanosleep(&ts, NULL);
        kill_and_reap(pid);
        int64_t last;
        check_after_kill(&d, &last);
        cr_assert_geq(last, 0);
        tmpdir_remove(&d);
    }
}

/* ------------------------------------------------------------------------ hostile files */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

Test(run_store, garbage_file_is_refused) {
    tmpdir d;
    tmpdir_make(&d);
    char p[128];
    tmpdir_file(p, sizeof p, &d, "run.db");
    char junk[8192];
    test_rng g;
    test_rng_seed(&g, 7);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(test_rng_uniform(&g) * 256.0);
    write_file(p, junk, sizeof junk);
    run_store *rs = NULL;
    pt_error err = {0};
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_FORMAT, "%s", err.msg);
    cr_assert_null(rs);
    ASSERT_HAS(err.msg, p);
    ASSERT_HAS(err.msg, "not a database");
    cr_assert_eq(run_store_open(&rs, d.path, RUN_STORE_READ_ONLY, &err), PT_ERR_FORMAT, "%s", err.msg);
    /* The file was not touched. */
    FILE *f = fopen(p, "rb");
    char back[sizeof junk];
    cr_assert_eq(fread(back, 1, sizeof back, f), sizeof back);
    fclose(f);
    cr_assert_eq(memcmp(back, junk, sizeof junk), 0);

    /* A real store whose header is overwritten. */
    unlink(p);
    rs = open_store(&d, 0);
    write_step(rs, 0, 2, 1, 1);
    run_store_close(rs); /* the last connection checkpoints the WAL into the file */
    f = fopen(p, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("not SQLite at all", 1, 16, f), 16);
    fclose(f);
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_FORMAT, "%s", err.msg);
    ASSERT_HAS(err.msg, p);
    tmpdir_remove(&d);
}

Test(run_store, foreign_database_is_refused) {
    tmpdir d;
    tmpdir_make(&d);
    sqlite3 *db = open_raw(&d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE users (id INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    run_store *rs = NULL;
    pt_error err = {0};
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_FORMAT);
    ASSERT_HAS(err.msg, "not a posttrain run store");
    ASSERT_HAS(err.msg, d.path);
    db = open_raw(&d, SQLITE_OPEN_READONLY);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM sqlite_master"), 1, "the foreign database was modified");
    char mode[32];
    query_text(mode, sizeof mode, db, "PRAGMA journal_mode");
    cr_assert_str_eq(mode, "delete", "the foreign database's journal mode was changed");
    sqlite3_close(db);
    tmpdir_remove(&d);
}

Test(run_store, schema_version_mismatch) {
    tmpdir d;
    tmpdir_make(&d);
    run_store *rs = open_store(&d, 0);
    write_step(rs, 0, 2, 1, 1);
    run_store_close(rs);
    pt_error err = {0};
    char sql[80];
    snprintf(sql, sizeof sql, "UPDATE schema_version SET version = %d", RUN_STORE_SCHEMA_VERSION + 1);
    sqlite3 *db = open_raw(&d, SQLITE_OPEN_READWRITE);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_UNSUPPORTED);
    ASSERT_HAS(err.msg, "newer posttrain");
    ASSERT_HAS(err.msg, "Upgrade");
    cr_assert_eq(run_store_open(&rs, d.path, RUN_STORE_READ_ONLY, &err), PT_ERR_UNSUPPORTED);
    /* Not rewritten by the refused open. */
    db = open_raw(&d, SQLITE_OPEN_READWRITE);
    cr_assert_eq(query_int(db, "SELECT version FROM schema_version"), RUN_STORE_SCHEMA_VERSION + 1);
    cr_assert_eq(sqlite3_exec(db, "UPDATE schema_version SET version = 0", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_FORMAT);
    ASSERT_HAS(err.msg, "version 0");
    db = open_raw(&d, SQLITE_OPEN_READWRITE);
    cr_assert_eq(sqlite3_exec(db, "DELETE FROM schema_version", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(run_store_open(&rs, d.path, 0, &err), PT_ERR_FORMAT);
    ASSERT_HAS(err.msg, "exactly one version");
    tmpdir_remove(&d);
}
