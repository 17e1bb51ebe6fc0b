/* run_dir.h — the --out folder of a training run (`posttrain sft`, `posttrain grpo`): checked
 * before anything is written, the checkpoint that --resume names or finds in it, and its run
 * store opened with an undo for a start that fails before the first step.
 *
 * A folder "holds a run" when it has run.db, checkpoints/ or final/; such a folder is only
 * continued (--resume auto or a checkpoint path), never silently reused. A start that fails
 * after opening the store removes what it made: the folder when it created it, else the run.db
 * (and its -wal, -shm, -journal) when it created that, so the folder is as it was.
 */
#ifndef POSTTRAIN_SFT_RUN_DIR_H
#define POSTTRAIN_SFT_RUN_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "datasets/run_store.h"

typedef struct run_dir {
    const char *out;              /* the --out folder (borrowed) */
    bool existed;                 /* it was there before this run */
    bool holds_run;               /* ... with run.db, checkpoints/ or final/ in it */
    bool created_dir, created_db; /* what run_dir_open_store made (run_dir_undo removes it) */
} run_dir;

/* Checks --out: an existing writable folder, or a path whose parent is a writable folder.
 * Writes nothing. */
pt_status run_dir_check(run_dir *d, const char *out, pt_error *err);

/* The checkpoint to start from into ckpt (cap bytes; "" for step 0). resume: NULL (refused when
 * the folder holds a run), "auto" (the newest complete checkpoint under out/checkpoints, if
 * any; incomplete ones are passed over with a warning on log, which may be NULL) or a
 * checkpoint folder (verified complete). */
pt_status run_dir_resolve_resume(char *ckpt, size_t cap, const run_dir *d, const char *resume, const logger *log,
                                 pt_error *err);

/* Creates the folder when needed, opens its run store into *rs, records the run (kind, the
 * resolved config and its hash) and drops steps after start_step (all of them for a fresh
 * start, start_step 0). On failure *rs is NULL and run_dir_undo has run. */
pt_status run_dir_open_store(run_store **rs, run_dir *d, const char *kind, const config *cfg, int64_t start_step,
                             pt_error *err);

/* Removes what run_dir_open_store made (call with the store closed). */
void run_dir_undo(const run_dir *d);

#endif
