/* train_state.h — checkpoints a run can resume from bit-identically, written crash-safely.
 *
 * A checkpoint is the folder <run_dir>/checkpoints/step-<N>/ holding
 *   - the Hugging Face model folder (model_save: config.json + model.safetensors or shards),
 *   - train_state.bin: everything else the trainer needs to continue exactly (format below),
 *   - manifest.json, written LAST: {"format": "posttrain-checkpoint", "version": 1, "step": N,
 *     "checksum": "fnv1a64", "files": [{"name", "bytes", "fnv1a64": 16 hex digits}, ...]}
 *     listing every other file of the folder, sorted by name.
 * A folder is a complete checkpoint when its manifest parses, names the folder's step, lists
 * exactly the files present (with config.json and train_state.bin among them), every size and
 * FNV-1a 64 checksum matches, and train_state.bin's header is valid for its size.
 *
 * Writing (train_state_save) goes into step-<N>.tmp/: model, state file, fsync of every file,
 * manifest, fsync of the folder, rename to step-<N>, fsync of checkpoints/. A crash at any point
 * leaves either a .tmp folder (ignored by readers, removed by the next save) or a complete
 * checkpoint — never a half-written step-<N>. Re-saving an existing step (a damaged step-<N>
 * met again after a resume) moves the old folder to step-<N>.old for the moment between the two
 * renames and removes it afterwards. Only after the new checkpoint is in place are
 * older ones removed: the newest keep_last complete ones are kept (by step; the new one always
 * counts), each removed one is first renamed to step-<M>.del so that a crash mid-removal does
 * not leave a folder that looks like a broken checkpoint. Folders that are not complete
 * checkpoints are never removed by retention (a human may want to look at them).
 * "Complete" for retention is the cheap test (manifest parses, files present with their sizes),
 * so that a save does not reread every kept checkpoint; readers check the checksums as well.
 *
 * train_state.bin, version 1. Integers little-endian, floats IEEE-754 binary32 little-endian:
 *   header  24 bytes: "PTTS", u32 version = 1, u64 file size, u32 section count = 5, u32 0
 *   then 5 sections in this order, each u32 tag (4 ASCII bytes), u32 0, u64 payload bytes, payload:
 *     STEP  8        i64 trainer step (= N of the folder)
 *     HASH  8        u64 config hash (config_to_json's FNV-1a 64 of the resolved run config)
 *     RNGS  8 + 48n  u32 n, u32 48, then per rng: u64 seed, u64 stream, u64 position,
 *                    u32 block[4], i32 used, u32 0   (core/rng.h's struct, field by field)
 *     CURS  any      the data cursor: opaque bytes from the data loader
 *     ADAM  16 + 8c  i64 optimizer step, u64 c (floats per moment = the layout's total),
 *                    then m[c], then v[c]
 *     or, with adam_moments bf16 (core/optim.h), in the same place:
 *     ADBF  16 + 4c  i64 optimizer step, u64 c, then m[c], then v[c] as bf16 bits (u16), exactly
 *                    the optimizer's stored moments, so a resume is bit-identical
 * A checkpoint resumes only with the adam_moments it was written with: ADAM into a bf16
 * optimizer or ADBF into an fp32 one is PT_ERR_CONFIG naming both settings (nothing converts).
 * A reader rejects a wrong magic, an unknown version, a size that disagrees with the file or
 * with the sections, an unexpected tag, a moment count that is not the model's, and trailing
 * bytes — each with a message naming the file and both values.
 *
 * Resume (train_state_load) verifies the checkpoint as a reader does, then restores the
 * parameters (model_load), the moments and optimizer step, the trainer step, the RNG streams
 * and the data cursor, and compares the config hash with the current run's.
 */
#ifndef POSTTRAIN_CORE_TRAIN_STATE_H
#define POSTTRAIN_CORE_TRAIN_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/optim.h"
#include "core/rng.h"
#include "model/model.h"

#define TRAIN_STATE_VERSION 1
#define TRAIN_STATE_FILE "train_state.bin"
#define TRAIN_STATE_MANIFEST "manifest.json"

/* The trainer's progress besides the model and the optimizer. For saving, the pointers are the
 * caller's own memory; train_state_load / train_state_read_file fill them with malloc'd copies
 * that train_progress_free releases. */
typedef struct train_progress {
    int64_t step;           /* trainer steps completed; the folder is step-<step> */
    uint64_t config_hash;   /* hash of the run config that produced this state */
    rng *rngs;              /* (n_rngs) the trainer's random streams, by value */
    int n_rngs;
    unsigned char *cursor;  /* (cursor_bytes) the data loader's position, opaque here */
    size_t cursor_bytes;
} train_progress;

void train_progress_free(train_progress *p);

typedef struct train_save_options {
    int keep_last;          /* complete checkpoints kept, the new one included; <= 0 keeps all */
    size_t max_shard_bytes; /* passed to model_save (0: one safetensors file) */
} train_save_options;

/* Writes <run_dir>/checkpoints/step-<p->step>/ as described above (run_dir and checkpoints/
 * are created when missing; an existing step-<N> is replaced only once the new one is
 * complete). saved_dir (may be NULL) receives the folder's path. On failure the .tmp folder is
 * removed and every earlier checkpoint is left as it was. */
pt_status train_state_save(char *saved_dir, size_t saved_len, const char *run_dir, const policy_model *m,
                           const optim *opt, const train_progress *p, const train_save_options *o, pt_error *err);

/* One folder that find_latest passed over, and why. */
typedef struct ckpt_skipped {
    char *path;
    char *reason;
} ckpt_skipped;

typedef struct ckpt_scan {
    bool found;            /* a complete checkpoint exists */
    int64_t step;          /* its step */
    char *dir;             /* its folder (malloc'd), NULL when none */
    ckpt_skipped *skipped; /* (n_skipped) newer folders that failed verification, and leftovers */
    int n_skipped;
} ckpt_scan;

/* The newest complete checkpoint under <run_dir>/checkpoints/, fully verified (checksums
 * included). Newer folders that fail are listed in scan->skipped with the reason, as are
 * leftover .tmp/.del folders; nothing is modified or deleted. No checkpoints folder, or no
 * complete checkpoint, is not an error (found = false). PT_ERR_IO when the folder cannot be
 * read. Free with ckpt_scan_free. */
pt_status train_state_find_latest(ckpt_scan *scan, const char *run_dir, pt_error *err);
void ckpt_scan_free(ckpt_scan *scan);

/* Verifies that ckpt_dir is a complete checkpoint (see the file comment); *step (may be NULL)
 * receives its step. The error says what is wrong (PT_ERR_FORMAT, or PT_ERR_IO). */
pt_status train_state_verify(int64_t *step, const char *ckpt_dir, pt_error *err);

/* Writes ckpt_dir/manifest.json for the files now in the folder (temp file + fsync + rename +
 * fsync of the folder). train_state_save calls it last; exposed for tools and tests. */
pt_status train_state_write_manifest(const char *ckpt_dir, int64_t step, pt_error *err);

/* Resume: verifies ckpt_dir, then initialises *m (model_load), *opt (optim_init with ocfg and
 * the restored moments and step) and *p (malloc'd rngs and cursor). A config hash other than
 * config_hash is PT_ERR_CONFIG naming both, unless allow_config_change. On failure nothing
 * needs freeing. */
pt_status train_state_load(policy_model *m, optim *opt, train_progress *p, const char *ckpt_dir,
                           const optim_config *ocfg, uint64_t config_hash, bool allow_config_change, pt_error *err);

/* The state file alone. write: creates path (fsync'd). read: opt must already be initialised
 * for the model's layout; fills its moments and step, and *p (malloc'd). On failure *p is
 * empty and opt's moments are unspecified. */
pt_status train_state_write_file(const char *path, const optim *opt, const train_progress *p, pt_error *err);
pt_status train_state_read_file(train_progress *p, optim *opt, const char *path, pt_error *err);

#endif
