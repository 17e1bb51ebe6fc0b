/* eval.c — see eval.h. */
#include "grpo/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/timer.h"
#include "datasets/run_store.h"
#include "model/checkpoint.h"
#include "rewards/reward_file.h"
#include "rollout/engine.h"

eval_options eval_options_default(void) {
    eval_options o = {0};
    o.num_samples = 1;
    o.max_prompt_length = 512;
    o.max_completion_length = 256;
    o.chunk_prompts = 64;
    o.sampling = sampler_config_default();
    o.sampling.temperature = 0.0f;
    o.pass_k[0] = 1;
    o.n_pass_k = 1;
    o.correct_threshold = 1.0;
    return o;
}

void eval_result_free(eval_result *r) {
    free(r->reward_mean);
    r->reward_mean = NULL;
}

double eval_pass_at_k(int n, int c, int k) {
    if (k < 1 || k > n) return NAN;
    if (n - c < k) return 1.0;
    /* C(n−c, k)/C(n, k) = Π_{i=n−c+1..n} (1 − k/i) */
    double fail = 1.0;
    for (int i = n - c + 1; i <= n; i++) fail *= 1.0 - (double)k / (double)i;
    return 1.0 - fail;
}

pt_status eval_parse_pass_k(int *ks, int *n, const char *text, pt_error *err) {
    *n = 0;
    const char *p = text;
    while (p && *p) {
        char *end = NULL;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || k > 1 << 20)
            PT_FAIL(err, PT_ERR_CONFIG, "pass_k '%s': expected a comma-separated list of integers ≥ 1, e.g. \"1,4,8\"",
                    text);
        if (*n == EVAL_MAX_PASS_K) PT_FAIL(err, PT_ERR_CONFIG, "pass_k '%s': at most %d values", text, EVAL_MAX_PASS_K);
        ks[(*n)++] = (int)k;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p) PT_FAIL(err, PT_ERR_CONFIG, "pass_k '%s': unexpected '%c' (use commas between values)", text, *p);
    }
    if (*n == 0) PT_FAIL(err, PT_ERR_CONFIG, "pass_k is empty: give at least one k, e.g. \"1\"");
    return PT_OK;
}

/* One JSON line per completion. */
static void write_completion(FILE *f, const dataset_example *ex, int sample, const char *text, double score, bool ok,
                             bool correct, int len, finish_reason fin) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return;
    cJSON_AddNumberToObject(o, "index", (double)ex->index);
    cJSON_AddNumberToObject(o, "sample", sample);
    cJSON_AddStringToObject(o, "prompt", ex->prompt_text ? ex->prompt_text : "");
    cJSON_AddStringToObject(o, "completion", text);
    if (ok) cJSON_AddNumberToObject(o, "reward", score);
    else cJSON_AddNullToObject(o, "reward");
    cJSON_AddBoolToObject(o, "correct", correct);
    cJSON_AddNumberToObject(o, "length", len);
    cJSON_AddStringToObject(o, "finish_reason", fin == FINISH_STOP ? "stop" : fin == FINISH_LENGTH ? "length" : "none");
    char *s = cJSON_PrintUnformatted(o);
    if (s) fprintf(f, "%s\n", s);
    free(s);
    cJSON_Delete(o);
}

typedef struct eval_chunk {
    dataset_example *ex;
    int **ids;
    char **columns;
    rollout_prompt *rp;
    rollout_completion *comp;
    char **text;
    reward_item *items;
    reward_result *total, *per;
    int P, G, nr;
} eval_chunk;

static void chunk_clear(eval_chunk *c, int n_prompts) {
    for (int i = 0; i < n_prompts; i++) {
        dataset_example_free(&c->ex[i]);
        memset(&c->ex[i], 0, sizeof c->ex[i]);
        free(c->ids[i]), c->ids[i] = NULL;
    }
    rollout_completions_free(c->comp, n_prompts * c->G);
    for (int i = 0; i < n_prompts * c->G; i++) free(c->text[i]), c->text[i] = NULL;
}

static void chunk_free(eval_chunk *c) {
    for (int i = 0; c->columns && i < c->P; i++) free(c->columns[i]);
    free(c->ex), free(c->ids), free(c->columns), free(c->rp), free(c->comp), free(c->text), free(c->items);
    free(c->total), free(c->per);
}

static pt_status chunk_init(eval_chunk *c, int P, int G, int nr, pt_error *err) {
    memset(c, 0, sizeof *c);
    c->P = P, c->G = G, c->nr = nr;
    const size_t R = (size_t)P * (size_t)G;
    c->ex = calloc((size_t)P, sizeof *c->ex);
    c->ids = calloc((size_t)P, sizeof *c->ids);
    c->columns = calloc((size_t)P, sizeof *c->columns);
    c->rp = calloc((size_t)P, sizeof *c->rp);
    c->comp = calloc(R, sizeof *c->comp);
    c->text = calloc(R, sizeof *c->text);
    c->items = calloc(R, sizeof *c->items);
    c->total = calloc(R, sizeof *c->total);
    c->per = calloc(R * (size_t)(nr ? nr : 1), sizeof *c->per);
    if (!c->ex || !c->ids || !c->columns || !c->rp || !c->comp || !c->text || !c->items || !c->total || !c->per) {
        chunk_free(c);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for an evaluation chunk of %d prompts × %d samples", P, G);
    }
    return PT_OK;
}

pt_status eval_policy(eval_result *out, const policy_model *m, const tokenizer *tok, reward_set *rewards,
                      dataset *ds, const eval_options *o, pt_error *err) {
    memset(out, 0, sizeof *out);
    const int G = o->num_samples;
    PT_CHECK(G >= 1, err, PT_ERR_CONFIG, "num_samples must be ≥ 1, got %d", G);
    PT_CHECK(o->sampling.temperature > 0 || G == 1, err, PT_ERR_CONFIG,
             "num_samples is %d with greedy decoding (temperature 0): greedy samples are all the same; use "
             "num_samples 1, or a temperature > 0 for pass@k", G);
    PT_CHECK(o->max_completion_length >= 1 && o->max_prompt_length >= 1, err, PT_ERR_CONFIG,
             "max_prompt_length and max_completion_length must be ≥ 1");
    int acc_index = -1;
    if (o->accuracy_reward && *o->accuracy_reward) {
        for (int k = 0; k < rewards->n; k++)
            if (strcmp(rewards->rewards[k]->name, o->accuracy_reward) == 0) acc_index = k;
        if (acc_index < 0) {
            char names[512] = "";
            for (int k = 0; k < rewards->n; k++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", k ? ", " : "",
                         rewards->rewards[k]->name);
            PT_FAIL(err, PT_ERR_CONFIG, "accuracy_reward '%s' is not one of the rewards (%s)", o->accuracy_reward, names);
        }
    }
    for (int i = 0; i < o->n_pass_k; i++) out->pass_k[i] = o->pass_k[i];
    out->n_pass_k = o->n_pass_k;
    out->n_rewards = rewards->n;
    out->reward_mean = calloc((size_t)(rewards->n ? rewards->n : 1), sizeof *out->reward_mean);
    PT_CHECK_ALLOC(out->reward_mean, err, (size_t)rewards->n * sizeof(double));

    size_t n_prompts = dataset_size(ds);
    if (o->limit && o->limit < n_prompts) n_prompts = o->limit;
    const int P = (int)((size_t)(o->chunk_prompts > 0 ? o->chunk_prompts : 64) < n_prompts
                            ? (size_t)(o->chunk_prompts > 0 ? o->chunk_prompts : 64)
                            : (n_prompts ? n_prompts : 1));
    const int T = o->max_prompt_length + o->max_completion_length;
    PT_CHECK(m->cfg.max_position_embeddings <= 0 || T <= m->cfg.max_position_embeddings, err, PT_ERR_CONFIG,
             "max_prompt_length + max_completion_length = %d exceeds the model's max_position_embeddings %d", T,
             m->cfg.max_position_embeddings);

    rollout_config rc = rollout_config_default();
    rc.num_generations = G;
    rc.max_completion_length = o->max_completion_length;
    rc.max_live = o->max_live > 0 ? o->max_live : P * G;
    rc.seed = o->seed;
    rc.sampling = o->sampling;
    rc.eos_ids = o->eos_ids;
    rc.n_eos = o->n_eos;
    if (rc.max_cached_tokens < (int64_t)rc.max_live * T) rc.max_cached_tokens = (int64_t)rc.max_live * T;
    if (tok && (int)tokenizer_n_ids(tok) < m->cfg.vocab_size) rc.vocab_limit = (int)tokenizer_n_ids(tok);

    rollout_engine engine;
    PT_TRY(rollout_engine_init(&engine, m, tok, &rc, err));
    eval_chunk c;
    pt_status st = chunk_init(&c, P, G, rewards->n, err);
    if (st != PT_OK) {
        rollout_engine_free(&engine);
        return st;
    }
    int live = 0; /* prompts of the chunk in flight, cleared on the way out */
    double *rsum = calloc((size_t)(rewards->n ? rewards->n : 1), sizeof *rsum);
    double *rcount = calloc((size_t)(rewards->n ? rewards->n : 1), sizeof *rcount);
    double *pass_sum = calloc(EVAL_MAX_PASS_K, sizeof *pass_sum);
    uint8_t *good_of = calloc((size_t)G, 1);
    if (!rsum || !rcount || !pass_sum || !good_of) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        goto done;
    }
    double total_sum = 0, total_n = 0, len_sum = 0, clipped = 0, tokens = 0;
    const double t0 = timer_now();
    for (size_t at = 0; at < n_prompts && st == PT_OK; at += (size_t)P) {
        const int np = (int)(n_prompts - at < (size_t)P ? n_prompts - at : (size_t)P);
        live = np;
        for (int p = 0; p < np && st == PT_OK; p++) {
            dataset_example *ex = &c.ex[p];
            if ((st = dataset_get(ex, ds, at + (size_t)p, err)) != PT_OK) break;
            if ((st = dataset_columns_json(&c.columns[p], ex, err)) != PT_OK) break;
            int len = (int)ex->seq.n, keep = len > o->max_prompt_length ? o->max_prompt_length : len;
            if (keep < 1) {
                st = error_set(err, PT_ERR_INVALID, __FILE__, __LINE__, "prompt %zu (line %llu) is empty", at + (size_t)p,
                               (unsigned long long)ex->line);
                break;
            }
            c.ids[p] = malloc((size_t)keep * sizeof(int));
            if (!c.ids[p]) {
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
                break;
            }
            for (int j = 0; j < keep; j++) c.ids[p][j] = (int)ex->seq.ids[len - keep + j];
            c.rp[p] = (rollout_prompt){.ids = c.ids[p], .len = keep, .index = (int64_t)(at + (size_t)p)};
        }
        rollout_stats rs;
        if (st == PT_OK) st = rollout_generate(&engine, c.rp, np, c.comp, &rs, err);
        for (int i = 0; i < np * G && st == PT_OK; i++) {
            size_t len = 0;
            st = tokenizer_decode(&c.text[i], &len, tok, (const int32_t *)c.comp[i].ids, (size_t)c.comp[i].len, true, err);
            if (st != PT_OK) break;
            if (c.comp[i].stop_cut >= 0 && (size_t)c.comp[i].stop_cut < len) c.text[i][c.comp[i].stop_cut] = '\0';
            c.items[i] = (reward_item){.prompt = c.ex[i / G].prompt_text, .completion = c.text[i],
                                       .columns = c.columns[i / G], .completion_tokens = c.comp[i].len};
        }
        if (st == PT_OK) st = reward_set_score(rewards, c.total, c.per, c.items, np * G, err);
        for (int p = 0; p < np && st == PT_OK; p++) {
            int correct = 0;
            for (int g = 0; g < G; g++) {
                const int i = p * G + g;
                const reward_result *acc = acc_index >= 0 ? &c.per[(size_t)acc_index * (size_t)(np * G) + (size_t)i]
                                                          : &c.total[i];
                const bool ok = c.total[i].status == REWARD_OK;
                const bool good = acc->status == REWARD_OK && acc->score >= o->correct_threshold;
                correct += good;
                good_of[g] = good;
                if (ok) total_sum += c.total[i].score, total_n += 1;
                else out->masked++;
                for (int k = 0; k < rewards->n; k++) {
                    const reward_result *r = &c.per[(size_t)k * (size_t)(np * G) + (size_t)i];
                    if (r->status == REWARD_OK) rsum[k] += r->score, rcount[k] += 1;
                }
                len_sum += c.comp[i].len;
                tokens += c.comp[i].len;
                clipped += c.comp[i].finish == FINISH_LENGTH;
                if (o->completions)
                    write_completion(o->completions, &c.ex[p], g, c.text[i], c.total[i].score, ok, good, c.comp[i].len,
                                     c.comp[i].finish);
            }
            out->correct += (size_t)correct;
            if (o->on_prompt) {
                eval_prompt_view v = {.ex = &c.ex[p], .n = G, .text = c.text + p * G, .comp = c.comp + p * G,
                                      .total = c.total + p * G, .per_reward = c.per + p * G,
                                      .stride = (size_t)(np * G), .correct = good_of};
                st = o->on_prompt(o->on_prompt_ctx, &v, err);
            }
            for (int j = 0; j < o->n_pass_k; j++) pass_sum[j] += eval_pass_at_k(G, correct, o->pass_k[j]);
        }
        out->prompts += (size_t)np;
        out->completions += (size_t)np * (size_t)G;
        chunk_clear(&c, np);
        live = 0;
    }
    if (st == PT_OK) {
        out->seconds = timer_now() - t0;
        const double n = (double)out->completions;
        out->accuracy = n > 0 ? (double)out->correct / n : NAN;
        out->mean_reward = total_n > 0 ? total_sum / total_n : NAN;
        out->mean_length = n > 0 ? len_sum / n : NAN;
        out->clipped_ratio = n > 0 ? clipped / n : NAN;
        out->tokens_per_second = out->seconds > 0 ? tokens / out->seconds : 0;
        for (int k = 0; k < rewards->n; k++) out->reward_mean[k] = rcount[k] > 0 ? rsum[k] / rcount[k] : NAN;
        for (int j = 0; j < o->n_pass_k; j++)
            out->pass_at[j] = o->pass_k[j] <= G && out->prompts ? pass_sum[j] / (double)out->prompts : NAN;
    }
done:
    free(rsum), free(rcount), free(pass_sum), free(good_of);
    chunk_clear(&c, live);
    chunk_free(&c);
    rollout_engine_free(&engine);
    if (st != PT_OK) eval_result_free(out);
    return st;
}

pt_status eval_setup_open(eval_setup *s, const char *model_dir, const char *tokenizer_path, const char *data,
                          const char *rewards_path, const char *chat_format, int max_prompt_length, pt_error *err) {
    memset(s, 0, sizeof *s);
    const char *tok_path = tokenizer_path && *tokenizer_path ? tokenizer_path : model_dir;
    pt_status st = reward_set_load_file(&s->rewards, rewards_path, -1, NULL, err);
    s->have_rewards = st == PT_OK;
    if (st == PT_OK && (st = tokenizer_load(&s->tok, tok_path, err)) != PT_OK)
        error_prefix(err, "%s '%s'", tok_path == model_dir ? "--model" : "--tokenizer", tok_path);
    if (st == PT_OK) {
        dataset_options o;
        dataset_options_default(&o);
        o.format = DATASET_FORMAT_PROMPT;
        o.truncation = DATASET_TRUNCATE_LEFT;
        o.max_length = (size_t)(max_prompt_length > 0 ? max_prompt_length : 1);
        o.chat_format = chat_format && *chat_format ? chat_format : NULL;
        if ((st = dataset_open_jsonl(&s->ds, data, s->tok, &o, err)) != PT_OK) error_prefix(err, "--data");
        else if (dataset_size(s->ds) == 0)
            st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__, "--data '%s' holds no usable prompt", data);
    }
    if (st == PT_OK && (st = model_load(&s->m, model_dir, NULL, err)) != PT_OK) error_prefix(err, "--model '%s'", model_dir);
    s->have_model = st == PT_OK;
    if (st == PT_OK) s->n_eos = rollout_eos_ids(s->eos, &s->m, s->tok);
    if (st != PT_OK) eval_setup_close(s);
    return st;
}

void eval_setup_close(eval_setup *s) {
    if (s->have_model) model_free(&s->m);
    dataset_free(s->ds);
    tokenizer_free(s->tok);
    if (s->have_rewards) reward_set_free(&s->rewards);
    memset(s, 0, sizeof *s);
}

pt_status eval_log_metrics(run_store *rs, const eval_result *r, const reward_set *rewards, const char *prefix,
                           pt_error *err) {
    const char *pre = prefix && *prefix ? prefix : "eval";
    char name[REWARD_NAME_MAX + 64];
    struct {
        const char *n;
        double v;
    } rows[] = {{"accuracy", r->accuracy},       {"mean_reward", r->mean_reward}, {"mean_length", r->mean_length},
                {"clipped_ratio", r->clipped_ratio}, {"masked", (double)r->masked}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(name, sizeof name, "%s/%s", pre, rows[i].n);
        PT_TRY(run_store_log_metric(rs, name, rows[i].v, err));
    }
    for (int j = 0; j < r->n_pass_k; j++) {
        if (isnan(r->pass_at[j])) continue;
        snprintf(name, sizeof name, "%s/pass@%d", pre, r->pass_k[j]);
        PT_TRY(run_store_log_metric(rs, name, r->pass_at[j], err));
    }
    for (int k = 0; k < r->n_rewards && k < rewards->n; k++) {
        snprintf(name, sizeof name, "%s/rewards/%s/mean", pre, rewards->rewards[k]->name);
        PT_TRY(run_store_log_metric(rs, name, r->reward_mean[k], err));
    }
    return PT_OK;
}
