/* reward_model.c — the scalar-head reward model (see reward_model.h).
 *
 * Forward: model_forward_hidden gives hn (N, H); score_b = Σ_j hn[last_b, j]·w[j], last_b the
 * rightmost of row b's real tokens that is not pad_token_id (see reward_model.h).
 * Backward of J = Σ_b c_b·score_b:  dJ/dw = Σ_b c_b·hn[last_b];  dJ/dhn[last_b] = c_b·w and 0 at
 * every other position; model_backward_hidden carries dJ/dhn through the trunk.
 *
 * Loading reads the trunk tensors by their transformers names from the folder's safetensors
 * (float dtypes) and score.weight beside them. Saving writes the same names in fp32 and a
 * config.json whose architectures and label maps are those of a one-label sequence classifier.
 */
#include "model/reward_model.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "model/safetensors.h"

#define SCORE_NAME "score.weight"

/* ---- parameters -------------------------------------------------------------------------- */

static pt_status head_init(reward_model *rm, pt_error *err) {
    const int H = rm->base.cfg.hidden_size;
    model_layout *hl = &rm->head_layout;
    memset(hl, 0, sizeof *hl);
    hl->total = ((size_t)H + 15) & ~(size_t)15;
    hl->tensors = calloc(1, sizeof *hl->tensors);
    rm->score = calloc(hl->total, sizeof(float));
    rm->dscore = calloc(hl->total, sizeof(float));
    if (!hl->tensors || !rm->score || !rm->dscore)
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the score head (%d floats)", H);
    tensor_entry *t = &hl->tensors[0];
    snprintf(t->name, sizeof t->name, "%s", SCORE_NAME);
    t->offset = 0;
    t->numel = (size_t)H;
    t->ndim = 2;
    t->shape[0] = 1;
    t->shape[1] = H;
    t->role = TENSOR_WEIGHT;
    hl->ntensors = 1;
    return PT_OK;
}

/* HF's _init_weights for the head: normal(0, initializer_range), from the (seed, "score") stream. */
static void head_draw(reward_model *rm, uint64_t seed) {
    uint64_t ids[1] = {0x73636f7265 /* "score" */};
    rng r;
    rng_init(&r, seed, rng_stream_id(ids, 1));
    rng_fill_normal(&r, rm->score, (size_t)rm->base.cfg.hidden_size, 0.0f, (float)rm->base.cfg.initializer_range);
}

/* The trunk's config: no LM head of its own, no MTP modules. */
static pt_status trunk_init(reward_model *rm, const model_config *cfg, uint64_t seed, pt_error *err) {
    model_config c;
    model_config_init(&c);
    PT_TRY(model_config_copy(&c, cfg, err));
    c.tie_word_embeddings = true;
    c.num_nextn_predict_layers = 0;
    pt_status st = model_init(&rm->base, &c, seed, err);
    model_config_free(&c);
    return st;
}

pt_status reward_model_init(reward_model *rm, const model_config *cfg, uint64_t seed, pt_error *err) {
    memset(rm, 0, sizeof *rm);
    PT_TRY(trunk_init(rm, cfg, seed, err));
    pt_status st = head_init(rm, err);
    if (st != PT_OK) {
        reward_model_free(rm);
        return st;
    }
    head_draw(rm, seed);
    return PT_OK;
}

void reward_model_free(reward_model *rm) {
    if (rm->base.params) model_free(&rm->base);
    free(rm->score);
    free(rm->dscore);
    model_layout_free(&rm->head_layout);
    memset(rm, 0, sizeof *rm);
}

void reward_model_zero_grads(reward_model *rm) {
    model_zero_grads(&rm->base);
    memset(rm->dscore, 0, rm->head_layout.total * sizeof(float));
}

/* ---- folders ----------------------------------------------------------------------------- */

static pt_status read_tensor(float *dst, const st_tensor *t, const char *name, int ndim, const int64_t *shape,
                             pt_error *err) {
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char got[96] = "[", want[96] = "[";
        for (int d = 0; d < t->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)shape[d]);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s' has shape %s], expected %s]", t->file, name, got, want);
    }
    if (t->dtype == PT_DTYPE_F8_E4M3)
        PT_FAIL(err, PT_ERR_UNSUPPORTED,
                "%s: tensor '%s' is FP8; reward models load float checkpoints (dequantise it with posttrain sft or "
                "transformers first)",
                t->file, name);
    return st_tensor_read_f32(dst, t->numel, t, err);
}

pt_status reward_model_load(reward_model *rm, const char *dir, unsigned flags, uint64_t seed, pt_error *err) {
    memset(rm, 0, sizeof *rm);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_config cfg;
    PT_TRY(model_config_load(&cfg, path, err));
    pt_status st = trunk_init(rm, &cfg, seed, err);
    model_config_free(&cfg);
    if (st != PT_OK) return error_prefix(err, "%s", path);
    if ((st = head_init(rm, err)) != PT_OK) goto fail;
    st_folder f;
    if ((st = st_folder_open(&f, dir, err)) != PT_OK) goto fail;
    const model_layout *lay = &rm->base.layout;
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
        st = read_tensor(rm->base.params + e->offset, t, e->name, e->ndim, e->shape, err);
    }
    if (st == PT_OK) {
        const st_tensor *t = st_folder_find(&f, SCORE_NAME);
        const int64_t shape[2] = {1, rm->base.cfg.hidden_size};
        if (t) st = read_tensor(rm->score, t, SCORE_NAME, 2, shape, err);
        else if (flags & REWARD_MODEL_NEW_HEAD) head_draw(rm, seed);
        else
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "%s: no tensor '" SCORE_NAME "': this is not a reward model (train one with "
                           "`posttrain rm --model %s ...`)",
                           dir, dir);
    }
    st_folder_close(&f);
    if (st == PT_OK) return PT_OK;
fail:
    reward_model_free(rm);
    return st;
}

/* Writes text to path atomically: path.tmp, fsync, rename, fsync of the folder. */
static pt_status write_atomic(const char *path, const char *text, pt_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) PT_FAIL(err, PT_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            PT_FAIL(err, PT_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot fsync '%s': %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
    }
    char dcopy[4096];
    snprintf(dcopy, sizeof dcopy, "%s", path);
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return PT_OK;
}

/* config.json of a one-label DeepseekV3ForSequenceClassification: model_config_to_json's text with
 * its architectures swapped and the label maps added (edited as text, so its number formatting —
 * floats always with a decimal point, which transformers' strict config checks need — stays). */
static pt_status save_config(const model_config *cfg, const char *path, pt_error *err) {
    static const char FROM[] = "\"architectures\": [\"DeepseekV3ForCausalLM\"]";
    static const char TO[] = "\"architectures\": [\"DeepseekV3ForSequenceClassification\"]";
    static const char LABELS[] = "\n  \"id2label\": {\"0\": \"LABEL_0\"},\n  \"label2id\": {\"LABEL_0\": 0},";
    char *text = NULL;
    PT_TRY(model_config_to_json(&text, cfg, err));
    const char *at = strstr(text, FROM);
    if (!at || text[0] != '{') {
        free(text);
        PT_FAIL(err, PT_ERR_INTERNAL, "%s: the config text has no \"architectures\" entry to rewrite", path);
    }
    bool labels = strstr(text, "\"id2label\"") == NULL;
    size_t n = strlen(text), cap = n + sizeof TO + sizeof LABELS + 2;
    char *out = malloc(cap);
    if (!out) {
        free(text);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory writing '%s'", path);
    }
    size_t pre = (size_t)(at - text);
    snprintf(out, cap, "{%s%.*s%s%s\n", labels ? LABELS : "", (int)(pre - 1), text + 1, TO, at + strlen(FROM));
    free(text);
    pt_status st = write_atomic(path, out, err);
    free(out);
    return st;
}

pt_status reward_model_save(const reward_model *rm, const char *dir, size_t max_shard_bytes, pt_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        PT_FAIL(err, PT_ERR_IO, "cannot create model folder '%s': %s", dir, strerror(errno));
    st_writer w;
    st_writer_init(&w);
    pt_status st = PT_OK;
    const model_layout *lay = &rm->base.layout;
    for (int i = 0; i < lay->ntensors && st == PT_OK; i++) {
        const tensor_entry *e = &lay->tensors[i];
        if (e->alias) continue;
        int64_t shape[2] = {e->shape[0], e->shape[1]};
        st = st_writer_add(&w, e->name, PT_DTYPE_F32, e->ndim, shape, rm->base.params + e->offset, err);
    }
    const int64_t hshape[2] = {1, rm->base.cfg.hidden_size};
    if (st == PT_OK) st = st_writer_add(&w, SCORE_NAME, PT_DTYPE_F32, 2, hshape, rm->score, err);
    if (st == PT_OK) st = st_writer_write_folder(&w, dir, max_shard_bytes, err);
    st_writer_free(&w);
    if (st != PT_OK) return error_prefix(err, "saving reward model to '%s'", dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return save_config(&rm->base.cfg, path, err);
}

/* ---- forward and backward ----------------------------------------------------------------- */

pt_status reward_model_acts_init(reward_model_acts *ra, const reward_model *rm, int B, int T, pt_error *err) {
    memset(ra, 0, sizeof *ra);
    PT_TRY(model_acts_init(&ra->a, &rm->base, B, T, err));
    ra->last = malloc((size_t)B * sizeof *ra->last);
    ra->dhn = malloc((size_t)B * T * rm->base.cfg.hidden_size * sizeof *ra->dhn);
    if (!ra->last || !ra->dhn) {
        reward_model_acts_free(ra);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for reward-model activations (B=%d, T=%d)", B, T);
    }
    return PT_OK;
}

void reward_model_acts_free(reward_model_acts *ra) {
    model_acts_free(&ra->a);
    free(ra->last);
    free(ra->dhn);
    memset(ra, 0, sizeof *ra);
}

pt_status reward_model_forward(float *scores, reward_model *rm, reward_model_acts *ra, const int *ids,
                               const int *lengths, pt_error *err) {
    const int B = ra->a.B, T = ra->a.T, H = rm->base.cfg.hidden_size, pad = rm->base.cfg.pad_token_id;
    for (int b = 0; b < B; b++) {
        if (lengths[b] < 1 || lengths[b] > T)
            PT_FAIL(err, PT_ERR_INVALID, "sequence %d has length %d; expected 1..%d", b, lengths[b], T);
        /* transformers' pooling: the rightmost token that is not pad_token_id (the first when every
         * token is), so with EOS == PAD a trailing EOS is not what gets scored. */
        int t = lengths[b] - 1;
        if (pad >= 0)
            while (t > 0 && ids[b * T + t] == pad) t--;
        ra->last[b] = b * T + t;
    }
    ra->batch = (model_batch){ids, NULL, NULL, NULL, B, T, 1.0f, false};
    PT_TRY(model_forward_hidden(&rm->base, &ra->a, &ra->batch, err));
    for (int b = 0; b < B; b++) {
        const float *h = ra->a.hn + (size_t)ra->last[b] * H;
        float s = 0.0f;
        for (int j = 0; j < H; j++) s += h[j] * rm->score[j];
        scores[b] = s;
    }
    return PT_OK;
}

void reward_model_backward(reward_model *rm, reward_model_acts *ra, const float *dscores, float aux_scale) {
    const int B = ra->a.B, T = ra->a.T, H = rm->base.cfg.hidden_size;
    memset(ra->dhn, 0, (size_t)B * T * H * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *h = ra->a.hn + (size_t)ra->last[b] * H;
        float *dh = ra->dhn + (size_t)ra->last[b] * H;
        for (int j = 0; j < H; j++) {
            rm->dscore[j] += dscores[b] * h[j];
            dh[j] += dscores[b] * rm->score[j];
        }
    }
    model_backward_hidden(&rm->base, &ra->a, ra->dhn, aux_scale);
}

/* ---- text -------------------------------------------------------------------------------- */

pt_status reward_model_encode(tok_ids *out, tokenizer *tok, const char *prompt, const char *completion,
                              size_t max_length, pt_error *err) {
    const char *p = prompt ? prompt : "", *c = completion ? completion : "";
    size_t start = out->n;
    PT_TRY(tokenizer_encode(out, tok, p, strlen(p), TOK_ADD_SPECIAL, err));
    PT_TRY(tokenizer_encode(out, tok, c, strlen(c), 0, err));
    int32_t eos = tokenizer_eos_id(tok);
    if (eos >= 0 && !(out->n > start && out->ids[out->n - 1] == eos)) {
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 16;
            int32_t *ids = realloc(out->ids, cap * sizeof *ids);
            PT_CHECK_ALLOC(ids, err, cap * sizeof *ids);
            out->ids = ids;
            if (out->offsets) {
                size_t *off = realloc(out->offsets, cap * 2 * sizeof *off);
                PT_CHECK_ALLOC(off, err, cap * 2 * sizeof *off);
                out->offsets = off;
            }
            out->cap = cap;
        }
        if (out->offsets) out->offsets[2 * out->n] = out->offsets[2 * out->n + 1] = 0;
        out->ids[out->n++] = eos;
    }
    if (max_length > 0 && out->n - start > max_length) out->n = start + max_length;
    return PT_OK;
}

pt_status reward_model_score_text(double *score, reward_model *rm, tokenizer *tok, const char *prompt,
                                  const char *completion, size_t max_length, pt_error *err) {
    tok_ids t = {0};
    pt_status st = reward_model_encode(&t, tok, prompt, completion, max_length, err);
    if (st == PT_OK && t.n == 0)
        st = error_set(err, PT_ERR_INVALID, __FILE__, __LINE__, "nothing to score: the text has no tokens");
    if (st == PT_OK && t.n > (size_t)1 << 20)
        st = error_set(err, PT_ERR_INVALID, __FILE__, __LINE__, "the text is %zu tokens; set a max_length", t.n);
    reward_model_acts ra;
    int have_acts = 0;
    int *ids = NULL;
    if (st == PT_OK) {
        ids = malloc(t.n * sizeof *ids);
        if (!ids) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %zu ids", t.n);
    }
    if (st == PT_OK) {
        for (size_t i = 0; i < t.n; i++) ids[i] = t.ids[i];
        st = reward_model_acts_init(&ra, rm, 1, (int)t.n, err);
        have_acts = st == PT_OK;
    }
    float s = 0.0f;
    int len = (int)t.n;
    if (st == PT_OK) st = reward_model_forward(&s, rm, &ra, ids, &len, err);
    if (st == PT_OK) *score = s;
    if (have_acts) reward_model_acts_free(&ra);
    free(ids);
    tok_ids_free(&t);
    return st;
}
