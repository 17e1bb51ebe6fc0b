/* sft_files.h — the file operations a run folder needs beyond checkpoints: copying a tokenizer's
 * files into a model folder, and publishing a folder written beside its final name.
 *
 * Every file is written to "<name>.tmp" in its folder, fsynced and renamed, and the folder is
 * fsynced, so a crash leaves either the old file or the new one. A folder is published by
 * writing it completely as "<dir>.tmp" and renaming it into place; an existing "<dir>" moves to
 * "<dir>.old" for the moment between the two renames and is removed afterwards. Only flat
 * folders (files, no subfolders) are removed, which is all a model folder holds.
 */
#ifndef POSTTRAIN_SFT_SFT_FILES_H
#define POSTTRAIN_SFT_SFT_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

/* out (=) "a/b"; PT_ERR_INVALID when it does not fit in cap bytes. */
pt_status sft_path_join(char *out, size_t cap, const char *a, const char *b, pt_error *err);
bool sft_path_exists(const char *path);
bool sft_is_dir(const char *path);

/* Copies src to dst atomically (dst.tmp, fsync, rename). */
pt_status sft_copy_file(const char *dst, const char *src, pt_error *err);

/* Copies a tokenizer into dst_dir: src is a tokenizer.json file, or a folder whose
 * tokenizer.json (required), tokenizer_config.json, special_tokens_map.json and
 * chat_template.jinja (when present) are copied byte for byte. */
pt_status sft_copy_tokenizer_files(const char *dst_dir, const char *src, pt_error *err);

/* Removes the files of a flat folder, then the folder. A missing folder is fine. */
pt_status sft_remove_flat_dir(const char *dir, pt_error *err);
pt_status sft_fsync_dir(const char *dir, pt_error *err);

/* Renames the complete folder tmp_dir to final_dir as described above. */
pt_status sft_publish_dir(const char *tmp_dir, const char *final_dir, pt_error *err);

#endif
