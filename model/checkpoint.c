/* checkpoint.c — model folders in and out (see checkpoint.h). */
#include "model/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kernels/fp8.h"
#include "model/safetensors.h"

static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* W = q · scale_inv[block] for DeepSeek's FP8 release: blocks of bs0 × bs1 over (out, in). */
static pt_status read_fp8_blocks(float *out, const st_tensor *t, const st_tensor *scale, const int bs[2],
                                 pt_error *err) {
    int64_t R = t->shape[0], C = t->shape[1];
    int64_t br = (R + bs[0] - 1) / bs[0], bc = (C + bs[1] - 1) / bs[1];
    if (scale->ndim != 2 || scale->shape[0] != br || scale->shape[1] != bc)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: %s_scale_inv must have shape [%lld, %lld] for %dx%d blocks", t->file,
                t->name, (long long)br, (long long)bc, bs[0], bs[1]);
    PT_TRY(st_tensor_read_f32(out, t->numel, t, err));
    float *s = malloc(scale->numel * sizeof *s);
    PT_CHECK_ALLOC(s, err, scale->numel * sizeof *s);
    pt_status st = st_tensor_read_f32(s, scale->numel, scale, err);
    if (st == PT_OK)
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) out[r * C + c] *= s[(r / bs[0]) * bc + c / bs[1]];
    free(s);
    return st;
}

pt_status model_load(policy_model *m, const char *dir, model_load_info *info, pt_error *err) {
    memset(m, 0, sizeof *m);
    model_load_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_config cfg;
    PT_TRY(model_config_load(&cfg, path, err));
    pt_status st = model_init(m, &cfg, 0, err);
    model_config_free(&cfg);
    if (st != PT_OK) return error_prefix(err, "%s", path);

    st_folder f;
    if ((st = st_folder_open(&f, dir, err)) != PT_OK) {
        model_free(m);
        return st;
    }
    const model_layout *lay = &m->layout;
    int used = 0;
    for (int i = 0; i < lay->ntensors && st == PT_OK; i++) {
        const tensor_entry *e = &lay->tensors[i];
        if (e->alias) continue;
        const st_tensor *t = st_folder_find(&f, e->name);
        if (!t) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "%s: tensor '%s' is missing (the config describes it; is this checkpoint for the same "
                           "architecture?)",
                           dir, e->name);
            break;
        }
        used++;
        int64_t want[2] = {e->shape[0], e->shape[1]};
        int shape_ok = t->ndim == e->ndim && t->shape[0] == want[0] && (e->ndim == 1 || t->shape[1] == want[1]);
        if (!shape_ok) {
            char got[96], exp[96];
            shape_text(got, sizeof got, t->ndim, t->shape);
            shape_text(exp, sizeof exp, e->ndim, want);
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: tensor '%s' has shape %s, expected %s",
                           t->file, e->name, got, exp);
            break;
        }
        float *dst = m->params + e->offset;
        if (t->dtype == PT_DTYPE_F8_E4M3 && m->cfg.quant.fp8) {
            char sname[160];
            snprintf(sname, sizeof sname, "%s_scale_inv", e->name);
            const st_tensor *s = st_folder_find(&f, sname);
            if (!s) {
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: FP8 tensor '%s' has no '%s'", t->file,
                               e->name, sname);
                break;
            }
            used++;
            st = read_fp8_blocks(dst, t, s, m->cfg.quant.weight_block_size, err);
        } else {
            st = st_tensor_read_f32(dst, e->numel, t, err);
        }
        if (st == PT_OK) {
            size_t j = 0;
            while (j < e->numel && isfinite(dst[j])) j++;
            if (j < e->numel) {
                size_t used_len = strlen(info->nonfinite_names);
                snprintf(info->nonfinite_names + used_len, sizeof info->nonfinite_names - used_len, "%s%s",
                         info->nonfinite++ ? ", " : "", e->name);
            }
        }
    }
    /* Count what we did not use: MTP copies of the shared embedding/head and unknown tensors. */
    info->ignored = (int)f.n_tensors - used;
    st_folder_close(&f);
    if (st != PT_OK) model_free(m);
    return st;
}

pt_status model_save(const policy_model *m, const char *dir, size_t max_shard_bytes, pt_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        PT_FAIL(err, PT_ERR_IO, "cannot create model folder '%s': %s", dir, strerror(errno));
    st_writer w;
    st_writer_init(&w);
    pt_status st = PT_OK;
    const model_layout *lay = &m->layout;
    for (int i = 0; i < lay->ntensors && st == PT_OK; i++) {
        const tensor_entry *e = &lay->tensors[i];
        int64_t shape[2] = {e->shape[0], e->shape[1]};
        st = st_writer_add(&w, e->name, PT_DTYPE_F32, e->ndim, shape, m->params + e->offset, err);
    }
    if (st == PT_OK) st = st_writer_write_folder(&w, dir, max_shard_bytes, err);
    st_writer_free(&w);
    if (st != PT_OK) return error_prefix(err, "saving model to '%s'", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return model_config_save(&m->cfg, path, err);
}

/* The tensors DeepSeek's FP8 release stores in E4M3: the matrices of attention, dense MLPs, shared
 * and routed experts. The embedding, the heads, eh_proj, the router and the norms stay as they are. */
static int fp8_release_tensor(const tensor_entry *e) {
    if (e->role != TENSOR_WEIGHT || e->ndim != 2 || e->alias) return 0;
    if (strstr(e->name, ".self_attn.")) return 1;
    return strstr(e->name, ".mlp.") != NULL && strstr(e->name, ".mlp.gate.") == NULL;
}

pt_status model_save_fp8(const policy_model *m, const char *dir, size_t max_shard_bytes, pt_error *err) {
    const model_layout *lay = &m->layout;
    const int bs = FP8_TILE;
    size_t ncodes = 0, nscales = 0;
    for (int i = 0; i < lay->ntensors; i++) {
        const tensor_entry *e = &lay->tensors[i];
        if (!fp8_release_tensor(e)) continue;
        ncodes += e->numel;
        nscales += fp8_scale_count((int)e->shape[0], (int)e->shape[1], bs, bs);
    }
    uint8_t *codes = malloc(ncodes ? ncodes : 1);
    float *scales = malloc((nscales ? nscales : 1) * sizeof *scales);
    char (*names)[160] = calloc((size_t)lay->ntensors, sizeof *names);
    if (!codes || !scales || !names) {
        free(codes), free(scales), free(names);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the FP8 copy of the weights (%zu bytes)", ncodes + 4 * nscales);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        free(codes), free(scales), free(names);
        PT_FAIL(err, PT_ERR_IO, "cannot create model folder '%s': %s", dir, strerror(errno));
    }
    const fp8_scaling recipe = {FP8_DEFAULT_EPS, 0};
    st_writer w;
    st_writer_init(&w);
    pt_status st = PT_OK;
    size_t co = 0, so = 0;
    for (int i = 0; i < lay->ntensors && st == PT_OK; i++) {
        const tensor_entry *e = &lay->tensors[i];
        int64_t shape[2] = {e->shape[0], e->shape[1]};
        if (!fp8_release_tensor(e)) {
            st = st_writer_add(&w, e->name, PT_DTYPE_F32, e->ndim, shape, m->params + e->offset, err);
            continue;
        }
        const int R = (int)e->shape[0], C = (int)e->shape[1];
        int64_t sshape[2] = {(R + bs - 1) / bs, (C + bs - 1) / bs};
        fp8_quantize(codes + co, scales + so, m->params + e->offset, R, C, bs, bs, &recipe);
        snprintf(names[i], sizeof names[i], "%s_scale_inv", e->name);
        st = st_writer_add(&w, e->name, PT_DTYPE_F8_E4M3, 2, shape, codes + co, err);
        if (st == PT_OK) st = st_writer_add(&w, names[i], PT_DTYPE_F32, 2, sshape, scales + so, err);
        co += e->numel;
        so += (size_t)(sshape[0] * sshape[1]);
    }
    if (st == PT_OK) st = st_writer_write_folder(&w, dir, max_shard_bytes, err);
    st_writer_free(&w);
    free(codes), free(scales), free(names);
    if (st != PT_OK) return error_prefix(err, "saving FP8 model to '%s'", dir);
    model_config cfg = m->cfg; /* a shallow view: only the quantisation fields change */
    cfg.quant.fp8 = true;
    cfg.quant.weight_block_size[0] = cfg.quant.weight_block_size[1] = bs;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return model_config_save(&cfg, path, err);
}
