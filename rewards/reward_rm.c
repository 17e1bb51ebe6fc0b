/* reward_rm.c — the `model` reward: a local reward model (model/reward_model.h) trained by
 * `posttrain rm` scores prompt + completion.
 *
 * Config: {"name", "type": "model", "weight", "path": DIR, "tokenizer": DIR or tokenizer.json
 * (default: DIR), "max_length": tokens kept (default 1024)}. DIR must hold score.weight: a policy
 * folder is refused, naming the folder, since a random head would score noise.
 *
 * Each item is tokenised as the trainer tokenised its pairs — encode(prompt) with BOS,
 * encode(completion), EOS, the first max_length tokens — and scored alone
 * (reward_model_score_text), so an item's score does not depend on the batch it arrives in; the
 * `/v1/score` route of `posttrain serve --reward-model` computes exactly the same number. A
 * failure on one item (a token the model cannot embed) is REWARD_ERROR with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/reward_model.h"
#include "model/tokenizer.h"
#include "rewards/reward.h"

typedef struct rm_reward {
    reward_model rm;
    tokenizer *tok;
    size_t max_length;
} rm_reward;

static pt_status rm_score_batch(reward *self, reward_result *out, const reward_item *items, int n, pt_error *err) {
    (void)err;
    rm_reward *r = self->impl;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        pt_error e = {0};
        if (reward_model_score_text(&s, &r->rm, r->tok, items[i].prompt, items[i].completion, r->max_length, &e) ==
            PT_OK)
            reward_result_ok(&out[i], s);
        else
            reward_result_mask(&out[i], REWARD_ERROR, "reward model: %s", e.msg);
    }
    return PT_OK;
}

static void rm_free(reward *self) {
    rm_reward *r = self->impl;
    if (!r) return;
    reward_model_free(&r->rm);
    tokenizer_free(r->tok);
    free(r);
    self->impl = NULL;
}

static const reward_vtable RM_VTABLE = {rm_score_batch, rm_free};

static const char *const RM_KEYS[] = {"path", "tokenizer", "max_length"};

pt_status reward_rm_init(reward *self, const cJSON *cfg, pt_error *err) {
    PT_TRY(reward_cfg_check_keys(cfg, RM_KEYS, (int)(sizeof RM_KEYS / sizeof *RM_KEYS), err));
    const char *path, *tok_path;
    long max_length;
    PT_TRY(reward_cfg_string(&path, cfg, "path", NULL, err));
    if (!path || !*path)
        PT_FAIL(err, PT_ERR_CONFIG, "missing \"path\": the reward model folder (`posttrain rm` writes RUN_DIR/final)");
    PT_TRY(reward_cfg_string(&tok_path, cfg, "tokenizer", path, err));
    PT_TRY(reward_cfg_int(&max_length, cfg, "max_length", 1024, err));
    if (max_length < 1) PT_FAIL(err, PT_ERR_CONFIG, "\"max_length\" must be >= 1, got %ld", max_length);
    rm_reward *r = calloc(1, sizeof *r);
    PT_CHECK_ALLOC(r, err, sizeof *r);
    r->max_length = (size_t)max_length;
    pt_status st = reward_model_load(&r->rm, path, 0, 0, err);
    if (st != PT_OK) {
        free(r);
        return st;
    }
    if ((st = tokenizer_load(&r->tok, tok_path, err)) == PT_OK && (int64_t)tokenizer_n_ids(r->tok) > r->rm.base.cfg.vocab_size)
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "tokenizer '%s' has %zu ids but the model's vocab_size is %d",
                       tok_path, tokenizer_n_ids(r->tok), r->rm.base.cfg.vocab_size);
    self->impl = r;
    self->vt = &RM_VTABLE;
    if (st != PT_OK) {
        rm_free(self);
        self->vt = NULL;
    }
    return st;
}
