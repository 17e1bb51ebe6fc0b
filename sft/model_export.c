/* model_export.c — see model_export.h. */
#include "sft/model_export.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "model/checkpoint.h"
#include "sft/sft_files.h"

#define EXPORT_PATH 4096

pt_status model_save_dtype_parse(model_save_dtype *out, const char *name, const char *what, pt_error *err) {
    if (name && strcmp(name, "fp32") == 0) *out = MODEL_SAVE_FP32;
    else if (name && strcmp(name, "fp8") == 0) *out = MODEL_SAVE_FP8;
    else PT_FAIL(err, PT_ERR_CONFIG, "%s must be fp32 or fp8, got '%s'", what, name ? name : "null");
    return PT_OK;
}

const char *model_save_dtype_name(model_save_dtype d) { return d == MODEL_SAVE_FP8 ? "fp8" : "fp32"; }

pt_status model_save_as(const policy_model *m, const char *dir, model_save_dtype d, size_t max_shard_bytes,
                        pt_error *err) {
    if (d == MODEL_SAVE_FP8) return model_save_fp8(m, dir, max_shard_bytes, err);
    if (!m->cfg.quant.fp8) return model_save(m, dir, max_shard_bytes, err);
    policy_model view = *m; /* a shallow view: only the config's quantisation flag changes */
    view.cfg.quant.fp8 = false;
    return model_save(&view, dir, max_shard_bytes, err);
}

/* What an existing path holds: 0 missing, 1 an empty folder, 2 a folder of files only, 3 a
 * folder with a subfolder, 4 not a folder. PT_ERR_IO when it cannot be read. */
static pt_status out_kind(int *kind, const char *path, pt_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) PT_FAIL(err, PT_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        *kind = 0;
        return PT_OK;
    }
    if (!S_ISDIR(sb.st_mode)) {
        *kind = 4;
        return PT_OK;
    }
    DIR *dir = opendir(path);
    if (!dir) PT_FAIL(err, PT_ERR_IO, "cannot open folder '%s': %s", path, strerror(errno));
    *kind = 1;
    struct dirent *e;
    char child[EXPORT_PATH];
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (*kind < 2) *kind = 2;
        if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) < (int)sizeof child && lstat(child, &sb) == 0 &&
            S_ISDIR(sb.st_mode))
            *kind = 3;
    }
    closedir(dir);
    return PT_OK;
}

pt_status model_convert(model_convert_info *info, const char *model_dir, const char *out_dir, model_save_dtype d,
                        bool force, size_t max_shard_bytes, pt_error *err) {
    model_convert_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    char out[EXPORT_PATH], tmp[EXPORT_PATH + 8], tok[EXPORT_PATH + 32];
    size_t n = strlen(out_dir);
    while (n > 1 && out_dir[n - 1] == '/') n--; /* "out/" → "out", so that the temp folder is "out.tmp" */
    if (n == 0) PT_FAIL(err, PT_ERR_CONFIG, "--out is empty; give the folder to write");
    if (n >= sizeof out) PT_FAIL(err, PT_ERR_INVALID, "path '%s' is too long", out_dir);
    memcpy(out, out_dir, n);
    out[n] = '\0';
    snprintf(tmp, sizeof tmp, "%s.tmp", out);

    /* Every refusal comes before anything is read or written. */
    int kind = 0;
    PT_TRY(out_kind(&kind, out, err));
    if (kind == 4) PT_FAIL(err, PT_ERR_CONFIG, "--out '%s' exists and is not a folder; nothing was written", out);
    if (kind >= 2 && !force)
        PT_FAIL(err, PT_ERR_CONFIG,
                "--out '%s' exists and is not empty; nothing was written (pass --force to replace it, or choose "
                "another folder)",
                out);
    if (kind == 3)
        PT_FAIL(err, PT_ERR_CONFIG,
                "--out '%s' holds subfolders, so it is not a model folder; --force replaces only a folder of files, "
                "nothing was written",
                out);
    PT_TRY(out_kind(&kind, tmp, err));
    if (kind == 3 || kind == 4)
        PT_FAIL(err, PT_ERR_CONFIG, "'%s' is in the way of the temporary folder (it is not a leftover model folder); "
                "move it and run again", tmp);

    policy_model m;
    model_load_info li;
    PT_TRY(model_load(&m, model_dir, &li, err));
    info->ignored = li.ignored;
    info->params = m.layout.total;
    pt_status st = sft_remove_flat_dir(tmp, err); /* a leftover of an interrupted conversion */
    if (st == PT_OK) st = model_save_as(&m, tmp, d, max_shard_bytes, err);
    model_free(&m);
    if (st == PT_OK) st = sft_path_join(tok, sizeof tok, model_dir, "tokenizer.json", err);
    if (st == PT_OK && sft_path_exists(tok)) {
        st = sft_copy_tokenizer_files(tmp, model_dir, err);
        info->copied_tokenizer = st == PT_OK;
    }
    if (st == PT_OK) st = sft_publish_dir(tmp, out, err);
    if (st != PT_OK) {
        pt_error ignored = {0};
        sft_remove_flat_dir(tmp, &ignored);
        return error_prefix(err, "converting '%s' to %s in '%s'", model_dir, model_save_dtype_name(d), out);
    }
    return PT_OK;
}
