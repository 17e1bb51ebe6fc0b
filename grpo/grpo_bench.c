/* grpo_bench.c — see grpo_bench.h. */
#include "grpo/grpo_bench.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/tasks.h"
#include "grpo/trainer.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "rewards/reward.h"
#include "rollout/engine.h"
#include "sft/sft_bench.h"

#define BENCH_PROMPTS 256

typedef struct bench_prompts {
    char *text[BENCH_PROMPTS];
    char *columns[BENCH_PROMPTS];
    int *ids[BENCH_PROMPTS];
    int len[BENCH_PROMPTS];
    int n;
    int64_t next;
} bench_prompts;

/* Keeps each countdown example's prompt and its columns (numbers, target). */
static pt_status keep_line(void *ctx, task_split split, const char *line, size_t len, pt_error *err) {
    (void)split;
    bench_prompts *b = ctx;
    if (b->n == BENCH_PROMPTS) return PT_OK;
    cJSON *j = cJSON_ParseWithLength(line, len);
    PT_CHECK(j, err, PT_ERR_INTERNAL, "the countdown generator wrote a line that is not JSON");
    cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(j, "prompt");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "completion");
    b->text[b->n] = cJSON_IsString(p) ? strdup(p->valuestring) : NULL;
    b->columns[b->n] = cJSON_PrintUnformatted(j);
    cJSON_Delete(p);
    cJSON_Delete(j);
    PT_CHECK(b->text[b->n] && b->columns[b->n], err, PT_ERR_NOMEM, "out of memory keeping bench prompts");
    b->n++;
    return PT_OK;
}

static pt_status next_prompts(void *ctx, grpo_prompt *out, int n, int *got, pt_error *err) {
    (void)err;
    bench_prompts *b = ctx;
    for (int i = 0; i < n; i++) {
        const int k = (int)(b->next % b->n);
        out[i] = (grpo_prompt){.ids = b->ids[k], .len = b->len[k], .index = b->next, .text = b->text[k],
                               .columns = b->columns[k]};
        b->next++;
    }
    *got = n;
    return PT_OK;
}

pt_status grpo_bench(grpo_bench_result *r, const char *model_config_path, int P, int G, int C, int steps,
                     pt_error *err) {
    memset(r, 0, sizeof *r);
    PT_CHECK(P >= 1 && G >= 2 && C >= 1 && steps >= 1 && steps <= 1000, err, PT_ERR_INVALID,
             "grpo_bench: P %d, G %d, C %d, steps %d out of range", P, G, C, steps);
    r->P = P, r->G = G, r->C = C;
    model_config mc;
    PT_TRY(model_config_load(&mc, model_config_path, err));
    char dir[] = "/tmp/pt-grpo-bench-XXXXXX", data[64];
    tokenizer *tok = NULL;
    bench_prompts *bp = calloc(1, sizeof *bp);
    policy_model m;
    bool have_model = false, have_rewards = false, have_trainer = false;
    reward_set rs;
    grpo_trainer t;
    pt_status st = bp ? PT_OK : error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
    if (st == PT_OK && !mkdtemp(dir)) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "mkdtemp failed");
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    if (st == PT_OK) st = sft_bench_make_data(&tok, data, (size_t)mc.vocab_size, err);
    task_make_opts to = {.kind = TASK_COUNTDOWN, .seed = 1, .difficulty = 1, .n = BENCH_PROMPTS, .eval_n = 0};
    if (st == PT_OK) st = task_generate(&to, keep_line, bp, NULL, err);
    for (int i = 0; st == PT_OK && i < bp->n; i++) {
        tok_ids ids = {0}; /* tokenizer_encode appends */
        if ((st = tokenizer_encode(&ids, tok, bp->text[i], strlen(bp->text[i]), TOK_ADD_SPECIAL, err)) != PT_OK) break;
        bp->ids[i] = malloc((ids.n ? ids.n : 1) * sizeof(int));
        if (!bp->ids[i]) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        for (size_t j = 0; bp->ids[i] && j < ids.n; j++) bp->ids[i][j] = (int)ids.ids[j];
        bp->len[i] = (int)ids.n;
        tok_ids_free(&ids);
    }
    if (st == PT_OK && (st = model_init(&m, &mc, 1, err)) == PT_OK) have_model = true;
    if (st == PT_OK) {
        cJSON *rc = cJSON_Parse("[{\"name\": \"countdown\", \"type\": \"countdown\"}]");
        st = rc ? reward_set_init(&rs, rc, NULL, NULL, err) : error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "oom");
        cJSON_Delete(rc);
        have_rewards = st == PT_OK;
    }
    int eos[MODEL_MAX_EOS + 1];
    grpo_config cfg = grpo_config_default();
    if (st == PT_OK) {
        cfg.num_generations = G;
        cfg.per_device_train_batch_size = P;
        cfg.max_prompt_length = 128;
        cfg.max_completion_length = C;
        cfg.sched.base_lr = 1e-5;
        cfg.sched.total_steps = steps + 1;
        cfg.seed = 1;
        cfg.n_eos = rollout_eos_ids(eos, &m, tok);
        cfg.eos_ids = eos;
        if ((st = grpo_trainer_init(&t, &m, tok, &rs, &cfg, err)) == PT_OK) have_trainer = true;
    }
    for (int k = 0; st == PT_OK && k <= steps; k++) {
        grpo_step_stats s;
        if ((st = grpo_trainer_step(&s, &t, next_prompts, bp, err)) != PT_OK) break;
        if (k == 0 || (r->step_seconds > 0 && s.step_seconds >= r->step_seconds)) continue;
        double gen_tokens = s.mean_length * (double)t.R;
        *r = (grpo_bench_result){.P = P, .G = G, .C = C, .step_seconds = s.step_seconds, .gen_seconds = s.gen_seconds,
                                 .score_seconds = s.score_seconds, .update_seconds = s.update_seconds,
                                 .tokens = s.step_tokens, .completion_tokens = gen_tokens,
                                 .tokens_per_s = s.tokens_per_second,
                                 .gen_tokens_per_s = s.gen_seconds > 0 ? gen_tokens / s.gen_seconds : 0,
                                 .update_share = s.step_seconds > 0 ? s.update_seconds / s.step_seconds : 0};
    }
    if (have_trainer) grpo_trainer_free(&t);
    if (have_rewards) reward_set_free(&rs);
    if (have_model) model_free(&m);
    for (int i = 0; bp && i < bp->n; i++) free(bp->text[i]), free(bp->columns[i]), free(bp->ids[i]);
    free(bp);
    tokenizer_free(tok);
    remove(data);
    rmdir(dir);
    model_config_free(&mc);
    return st;
}
