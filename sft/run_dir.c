/* run_dir.c — see run_dir.h. */
#include "sft/run_dir.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/train_state.h"
#include "sft/sft_files.h"

#define RUN_DIR_PATH 4096

pt_status run_dir_check(run_dir *d, const char *out, pt_error *err) {
    memset(d, 0, sizeof *d);
    d->out = out;
    struct stat sb;
    if (stat(out, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) PT_FAIL(err, PT_ERR_CONFIG, "--out '%s' exists and is not a folder", out);
        if (access(out, W_OK) != 0) PT_FAIL(err, PT_ERR_IO, "--out '%s' is not writable: %s", out, strerror(errno));
        d->existed = true;
        static const char *const MARKS[] = {RUN_STORE_FILE, "checkpoints", "final"};
        for (size_t i = 0; i < sizeof MARKS / sizeof MARKS[0]; i++) {
            char p[RUN_DIR_PATH];
            PT_TRY(sft_path_join(p, sizeof p, out, MARKS[i], err));
            if (sft_path_exists(p)) d->holds_run = true;
        }
        return PT_OK;
    }
    if (errno != ENOENT) PT_FAIL(err, PT_ERR_IO, "--out '%s': %s", out, strerror(errno));
    char tmp[RUN_DIR_PATH];
    snprintf(tmp, sizeof tmp, "%s", out);
    const char *parent = dirname(tmp);
    if (!sft_is_dir(parent))
        PT_FAIL(err, PT_ERR_CONFIG, "--out '%s': its parent folder '%s' does not exist (create it first)", out, parent);
    if (access(parent, W_OK) != 0)
        PT_FAIL(err, PT_ERR_IO, "--out '%s' cannot be created: '%s' is not writable", out, parent);
    return PT_OK;
}

pt_status run_dir_resolve_resume(char *ckpt, size_t cap, const run_dir *d, const char *resume, const logger *log,
                                 pt_error *err) {
    ckpt[0] = '\0';
    const char *out = d->out;
    if (!resume) {
        if (d->holds_run)
            PT_FAIL(err, PT_ERR_CONFIG,
                    "--out '%s' already holds a run (run.db, checkpoints/ or final/): continue it with --resume auto, "
                    "or choose a new --out",
                    out);
        return PT_OK;
    }
    if (strcmp(resume, "auto") == 0) {
        if (!d->existed) {
            if (log) log_write(log, LOG_LEVEL_INFO, "resume auto: '%s' does not exist yet, starting from step 0", out);
            return PT_OK;
        }
        ckpt_scan scan;
        PT_TRY(train_state_find_latest(&scan, out, err));
        for (int i = 0; log && i < scan.n_skipped; i++)
            log_write(log, LOG_LEVEL_WARN, "resume auto: passing over %s: %s", scan.skipped[i].path,
                      scan.skipped[i].reason);
        if (scan.found) snprintf(ckpt, cap, "%s", scan.dir);
        else if (log)
            log_write(log, LOG_LEVEL_INFO, "resume auto: no complete checkpoint under %s/checkpoints, starting from step 0",
                      out);
        ckpt_scan_free(&scan);
        return PT_OK;
    }
    if (train_state_verify(NULL, resume, err) != PT_OK)
        return error_prefix(err, "--resume '%s' is not a complete checkpoint", resume);
    PT_CHECK(strlen(resume) < cap, err, PT_ERR_CONFIG, "--resume '%s': the path is too long", resume);
    snprintf(ckpt, cap, "%s", resume);
    return PT_OK;
}

void run_dir_undo(const run_dir *d) {
    static const char *const DB[] = {RUN_STORE_FILE, RUN_STORE_FILE "-wal", RUN_STORE_FILE "-shm",
                                     RUN_STORE_FILE "-journal"};
    if (!d->created_db) return;
    char p[RUN_DIR_PATH];
    pt_error ignored = {0};
    for (size_t i = 0; i < sizeof DB / sizeof DB[0]; i++)
        if (sft_path_join(p, sizeof p, d->out, DB[i], &ignored) == PT_OK) unlink(p);
    if (d->created_dir) rmdir(d->out);
}

pt_status run_dir_open_store(run_store **rs, run_dir *d, const char *kind, const config *cfg, int64_t start_step,
                             pt_error *err) {
    *rs = NULL;
    d->created_dir = d->created_db = false;
    char db[RUN_DIR_PATH];
    PT_TRY(sft_path_join(db, sizeof db, d->out, RUN_STORE_FILE, err));
    if (!d->existed) {
        if (mkdir(d->out, 0755) != 0) PT_FAIL(err, PT_ERR_IO, "cannot create --out '%s': %s", d->out, strerror(errno));
        d->created_dir = true;
    }
    d->created_db = !sft_path_exists(db);
    char *json = NULL;
    uint64_t full_hash = 0;
    pt_status st = run_store_open(rs, d->out, 0, err);
    if (st == PT_OK) st = config_to_json(&json, &full_hash, cfg, err);
    if (st == PT_OK) st = run_store_log_run(*rs, kind, json, full_hash, err);
    free(json);
    if (st == PT_OK) st = run_store_discard_after(*rs, start_step > 0 ? start_step : -1, err);
    if (st != PT_OK) {
        run_store_close(*rs);
        *rs = NULL;
        run_dir_undo(d);
    }
    return st;
}
