/* rejection.c — see rejection.h. */
#include "sft/rejection.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/utf8.h"
#include "datasets/run_store.h"
#include "rollout/engine.h"

void rs_result_free(rs_result *r) {
    free(r->yield);
    r->yield = NULL;
    eval_result_free(&r->eval);
}

typedef struct rs_ctx {
    const rs_options *o;
    rs_result *res;
    FILE *out;
    run_store *rs;
    reward_set *rewards;
    int *order;      /* (N) candidate sample indices */
    uint8_t *keep;   /* (N) */
} rs_ctx;

/* The output record: prompt as given, the sample as completion, every other column. */
static pt_status write_record(rs_ctx *c, const dataset_example *ex, const char *text, pt_error *err) {
    cJSON *o = cJSON_CreateObject(), *prompt = ex->prompt_json ? cJSON_Parse(ex->prompt_json) : NULL;
    pt_status st = PT_OK;
    if (!o || !prompt) {
        st = error_set(err, prompt || !ex->prompt_json ? PT_ERR_NOMEM : PT_ERR_FORMAT, __FILE__, __LINE__,
                       "record %zu (line %llu): cannot rebuild its prompt", ex->index, (unsigned long long)ex->line);
        goto done;
    }
    const bool chat = cJSON_IsArray(prompt);
    cJSON_AddItemToObject(o, "prompt", prompt);
    prompt = NULL;
    if (chat) {
        cJSON *list = cJSON_AddArrayToObject(o, "completion"), *msg = cJSON_CreateObject();
        if (msg) {
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", text);
            cJSON_AddItemToArray(list, msg);
        }
    } else {
        cJSON_AddStringToObject(o, "completion", text);
    }
    for (size_t i = 0; i < ex->n_columns; i++) {
        const char *name = ex->columns[i].name;
        if (strcmp(name, "prompt") == 0 || strcmp(name, "completion") == 0) continue;
        cJSON *v = cJSON_Parse(ex->columns[i].json);
        if (v) cJSON_AddItemToObject(o, name, v);
    }
    char *line = cJSON_PrintUnformatted(o);
    if (!line) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory writing a sample");
    else if (fprintf(c->out, "%s\n", line) < 0) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "writing a sample failed");
    free(line);
done:
    cJSON_Delete(prompt);
    cJSON_Delete(o);
    return st;
}

static pt_status log_rollouts(rs_ctx *c, const eval_prompt_view *v, pt_error *err) {
    const int nr = c->rewards->n;
    double *scores = calloc((size_t)(nr ? nr : 1), sizeof *scores);
    const char **names = calloc((size_t)(nr ? nr : 1), sizeof *names);
    pt_status st = PT_OK;
    if (!scores || !names) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
    for (int k = 0; k < nr && st == PT_OK; k++) names[k] = c->rewards->rewards[k]->name;
    for (int g = 0; g < v->n && st == PT_OK; g++) {
        for (int k = 0; k < nr; k++) {
            const reward_result *r = &v->per_reward[(size_t)k * v->stride + (size_t)g];
            scores[k] = r->status == REWARD_OK ? r->score : NAN;
        }
        run_rollout ro = {.prompt_index = (int64_t)v->ex->index, .sample_index = g,
                          .prompt = v->ex->prompt_text ? v->ex->prompt_text : "", .completion = v->text[g],
                          .reward_names = names, .reward_scores = scores, .n_rewards = nr,
                          .reward = v->total[g].status == REWARD_OK ? v->total[g].score : NAN, .advantage = NAN,
                          .length = v->comp[g].len,
                          .finish_reason = v->comp[g].finish == FINISH_STOP ? "stop"
                                           : v->comp[g].finish == FINISH_LENGTH ? "length" : "none"};
        st = run_store_log_rollout(c->rs, &ro, err);
    }
    free(scores);
    free(names);
    return st;
}

static pt_status on_prompt(void *ctx, const eval_prompt_view *v, pt_error *err) {
    rs_ctx *c = ctx;
    const rs_options *o = c->o;
    int n_cand = 0;
    double best = -INFINITY;
    for (int g = 0; g < v->n; g++) {
        const reward_result *r = &v->total[g];
        if (r->status != REWARD_OK || (o->use_threshold && !(r->score >= o->threshold))) continue;
        const size_t len = strlen(v->text[g]);
        if (utf8_valid_prefix(v->text[g], len) != len) { /* not writable as JSON text */
            c->res->invalid_utf8++;
            continue;
        }
        c->order[n_cand++] = g;
        if (r->score > best) best = r->score;
    }
    int kept = 0;
    if (v->n > 0) memset(c->keep, 0, (size_t)v->n);
    for (int i = 0; i < n_cand; i++) {
        const int g = c->order[i];
        if (o->best_of_n && v->total[g].score < best) continue;
        if (o->max_per_prompt > 0 && kept >= o->max_per_prompt) break;
        bool dup = false;
        for (int h = 0; h < g && !dup; h++) dup = c->keep[h] && strcmp(v->text[h], v->text[g]) == 0;
        if (dup) {
            c->res->duplicates++;
            continue;
        }
        c->keep[g] = 1;
        kept++;
        PT_TRY(write_record(c, v->ex, v->text[g], err));
    }
    c->res->prompts++;
    c->res->samples += (size_t)v->n;
    c->res->kept += (size_t)kept;
    c->res->prompts_kept += kept > 0;
    c->res->yield[kept]++;
    if (c->rs) PT_TRY(log_rollouts(c, v, err));
    return PT_OK;
}

pt_status rejection_sample(rs_result *res, const policy_model *m, const tokenizer *tok, reward_set *rewards,
                           dataset *ds, const rs_options *o, FILE *out, run_store *rs, pt_error *err) {
    memset(res, 0, sizeof *res);
    const int N = o->gen.num_samples;
    PT_CHECK(N >= 1, err, PT_ERR_CONFIG, "num_samples must be ≥ 1, got %d", N);
    PT_CHECK(o->max_per_prompt >= 0, err, PT_ERR_CONFIG, "max_per_prompt must be ≥ 0, got %d", o->max_per_prompt);
    PT_CHECK(!o->use_threshold || isfinite(o->threshold), err, PT_ERR_CONFIG, "threshold must be a finite number");
    res->n = N;
    res->yield = calloc((size_t)N + 1, sizeof *res->yield);
    rs_ctx c = {.o = o, .res = res, .out = out, .rs = rs, .rewards = rewards, .order = calloc((size_t)N, sizeof(int)),
                .keep = calloc((size_t)N, 1)};
    pt_status st = PT_OK;
    if (!res->yield || !c.order || !c.keep) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
    eval_options gen = o->gen;
    gen.on_prompt = on_prompt;
    gen.on_prompt_ctx = &c;
    if (st == PT_OK) st = eval_policy(&res->eval, m, tok, rewards, ds, &gen, err);
    free(c.order);
    free(c.keep);
    if (st != PT_OK) rs_result_free(res);
    return st;
}
