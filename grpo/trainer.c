/* trainer.c — one GRPO step; what it computes and its invariants are in trainer.h.
 *
 * Shapes: P prompts, G samples, R = P·G rollouts; micro-batches of B rows × T positions; C =
 * max_completion_length. Row r of a micro-batch holds prompt p then completion c: position
 * plen − 1 + j predicts completion token j, so logp/entropy of completion token j sit there.
 */
#include "grpo/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/timer.h"

grpo_config grpo_config_default(void) {
    grpo_config c;
    memset(&c, 0, sizeof c);
    c.num_generations = 8;
    c.max_prompt_length = 512;
    c.max_completion_length = 256;
    c.sampling = sampler_config_default();
    c.per_device_train_batch_size = 8;
    c.gradient_accumulation_steps = 1;
    c.num_iterations = 1;
    c.beta = 0.0;
    c.epsilon = 0.2;
    c.epsilon_high = 0.2;
    c.loss_type = GRPO_LOSS_GRPO;
    c.importance_sampling_level = GRPO_IS_TOKEN;
    c.scale_rewards = GRPO_SCALE_GROUP;
    c.max_dynamic_draws = 4;
    c.ref_model_sync_steps = 512;
    c.ref_model_mixup_alpha = 0.6;
    c.optim = optim_config_default();
    c.sched.type = LR_SCHEDULE_CONSTANT;
    c.sched.base_lr = 1e-6;
    c.sched.total_steps = 1;
    c.aux_loss_scale = 1.0;
    c.router_bias_gamma = 0.001;
    c.max_nan_steps = 3;
    c.seed = 42;
    return c;
}

pt_status grpo_config_validate(const grpo_config *c, pt_error *err) {
    PT_CHECK(c->num_generations >= 2, err, PT_ERR_CONFIG, "num_generations must be ≥ 2 (got %d): advantages compare "
             "completions of the same prompt", c->num_generations);
    PT_CHECK(c->max_prompt_length >= 1 && c->max_completion_length >= 1, err, PT_ERR_CONFIG,
             "max_prompt_length and max_completion_length must be ≥ 1");
    PT_CHECK(c->per_device_train_batch_size >= 1, err, PT_ERR_CONFIG, "per_device_train_batch_size must be ≥ 1");
    PT_CHECK(c->gradient_accumulation_steps >= 1, err, PT_ERR_CONFIG, "gradient_accumulation_steps must be ≥ 1");
    PT_CHECK(c->num_iterations >= 1, err, PT_ERR_CONFIG, "num_iterations must be ≥ 1");
    PT_CHECK(isfinite(c->beta) && c->beta >= 0, err, PT_ERR_CONFIG, "beta must be ≥ 0 (got %g)", c->beta);
    PT_CHECK(c->epsilon >= 0 && c->epsilon < 1 && c->epsilon_high >= 0, err, PT_ERR_CONFIG,
             "epsilon must be in [0, 1) and epsilon_high ≥ 0");
    PT_CHECK(c->ref_model_mixup_alpha >= 0 && c->ref_model_mixup_alpha <= 1, err, PT_ERR_CONFIG,
             "ref_model_mixup_alpha must be in [0, 1]");
    PT_CHECK(!c->sync_ref_model || c->ref_model_sync_steps >= 1, err, PT_ERR_CONFIG,
             "ref_model_sync_steps must be ≥ 1");
    PT_CHECK(c->max_nan_steps >= 1, err, PT_ERR_CONFIG, "max_nan_steps must be ≥ 1");
    PT_CHECK(c->max_dynamic_draws >= 0, err, PT_ERR_CONFIG, "max_dynamic_draws must be ≥ 0");
    PT_TRY(sampler_config_check(&c->sampling, err));
    PT_TRY(optim_config_validate(&c->optim, err));
    return lr_schedule_validate(&c->sched, err);
}

static void free_prompt_copies(grpo_prompt *prompts, int n) {
    for (int p = 0; p < n; p++) {
        free((void *)prompts[p].ids);
        free((void *)prompts[p].text);
        free((void *)prompts[p].columns);
        memset(&prompts[p], 0, sizeof prompts[p]);
    }
}

/* Groups dynamic sampling may drop in one step, at most. */
static size_t drop_room(const grpo_config *c) {
    return c->dynamic_sampling ? (size_t)c->per_device_train_batch_size * (size_t)(c->max_dynamic_draws + 1) : 0;
}

static void free_dropped(grpo_trainer *t) {
    const size_t D = (size_t)t->dropped * (size_t)t->cfg.num_generations;
    if (D) rollout_completions_free(t->drop_comp, (int)D);
    for (size_t i = 0; i < D; i++) free(t->drop_text[i]), t->drop_text[i] = NULL;
    free_prompt_copies(t->drop_prompts, t->dropped);
    t->dropped = 0;
}

/* A set of group slots: the batch's or the dropped groups'. */
typedef struct group_slots {
    grpo_prompt *prompts;
    rollout_completion *comp;
    char **text;
    double *reward;
    uint8_t *reward_ok;
    reward_result *per_reward; /* reward r of completion i at [r·stride + i] */
    size_t stride;
} group_slots;

static group_slots batch_slots(grpo_trainer *t) {
    return (group_slots){t->prompts, t->comp, t->text, t->reward, t->reward_ok, t->per_reward,
                         (size_t)t->cfg.per_device_train_batch_size * (size_t)t->cfg.num_generations};
}

/* Moves group `from` of src into slot `to` of dst, with ownership of its copies. */
static void move_group_to(const grpo_trainer *t, const group_slots *dst, int to, const group_slots *src, int from) {
    const int G = t->cfg.num_generations;
    if (dst->prompts == src->prompts && to == from) return;
    dst->prompts[to] = src->prompts[from];
    memset(&src->prompts[from], 0, sizeof src->prompts[from]);
    for (int g = 0; g < G; g++) {
        size_t a = (size_t)to * G + g, b = (size_t)from * G + g;
        dst->comp[a] = src->comp[b];
        memset(&src->comp[b], 0, sizeof src->comp[b]);
        dst->text[a] = src->text[b], src->text[b] = NULL;
        dst->reward[a] = src->reward[b], dst->reward_ok[a] = src->reward_ok[b];
        for (int r = 0; r < t->rewards->n; r++)
            dst->per_reward[(size_t)r * dst->stride + a] = src->per_reward[(size_t)r * src->stride + b];
    }
}

/* Moves group `from` of the batch into the next dropped slot. */
static void drop_group(grpo_trainer *t, int from) {
    const group_slots batch = batch_slots(t);
    const group_slots dropped = {t->drop_prompts, t->drop_comp, t->drop_text, t->drop_reward, t->drop_reward_ok,
                                 t->drop_per_reward, t->drop_stride};
    move_group_to(t, &dropped, t->dropped++, &batch, from);
}

static void free_rollouts(grpo_trainer *t) {
    if (!t->comp) return;
    free_dropped(t);
    rollout_completions_free(t->comp, t->R);
    for (int i = 0; i < t->R; i++) free(t->text[i]), t->text[i] = NULL;
    free_prompt_copies(t->prompts, t->groups);
    t->R = t->groups = 0;
}

void grpo_trainer_free(grpo_trainer *t) {
    free_rollouts(t);
    rollout_engine_free(&t->engine);
    optim_free(&t->opt);
    model_acts_free(&t->acts);
    if (t->has_ref) model_free(&t->ref);
    free(t->comp), free(t->prompts), free(t->reward), free(t->reward_ok), free(t->per_reward), free(t->text);
    free(t->drawn_per_reward);
    free(t->drop_prompts), free(t->drop_comp), free(t->drop_text), free(t->drop_reward), free(t->drop_reward_ok);
    free(t->drop_per_reward);
    free(t->adv), free(t->valid), free(t->tok_off), free(t->old_logp), free(t->ref_logp), free(t->cur_logp);
    free(t->flat_dlogp), free(t->flat_mask), free(t->ids), free(t->targets), free(t->dlogp), free(t->seq_start);
    free(t->mb_adv);
    memset(t, 0, sizeof *t);
}

pt_status grpo_trainer_init(grpo_trainer *t, policy_model *m, const tokenizer *tok, reward_set *rewards,
                            const grpo_config *cfg, pt_error *err) {
    memset(t, 0, sizeof *t);
    PT_TRY(grpo_config_validate(cfg, err));
    PT_CHECK(m && rewards, err, PT_ERR_INVALID, "grpo_trainer_init: a model and a reward set are needed");
    t->cfg = *cfg;
    t->m = m;
    m->precision = cfg->precision;
    t->tok = tok;
    t->rewards = rewards;
    const int P = cfg->per_device_train_batch_size, G = cfg->num_generations, C = cfg->max_completion_length;
    const size_t R = (size_t)P * (size_t)G;
    t->B = (int)((R + (size_t)cfg->gradient_accumulation_steps - 1) / (size_t)cfg->gradient_accumulation_steps);
    t->T = cfg->max_prompt_length + C;
    PT_CHECK(t->T <= m->cfg.max_position_embeddings || m->cfg.max_position_embeddings <= 0, err, PT_ERR_CONFIG,
             "max_prompt_length + max_completion_length = %d exceeds the model's max_position_embeddings %d", t->T,
             m->cfg.max_position_embeddings);
    pt_status st = PT_OK;
    rollout_config rc = rollout_config_default();
    rc.num_generations = G;
    rc.max_completion_length = C;
    rc.max_live = cfg->max_live > 0 ? cfg->max_live : (int)R;
    rc.seed = cfg->seed;
    rc.sampling = cfg->sampling;
    rc.eos_ids = cfg->eos_ids;
    rc.n_eos = cfg->n_eos;
    rc.speculative = cfg->speculative;
    if (rc.max_cached_tokens < (int64_t)rc.max_live * t->T) rc.max_cached_tokens = (int64_t)rc.max_live * t->T;
    /* A model's vocabulary may be padded beyond the tokenizer's ids: never sample those rows. */
    if (tok && (int)tokenizer_n_ids(tok) < m->cfg.vocab_size) rc.vocab_limit = (int)tokenizer_n_ids(tok);
    PT_TRY_GOTO(st, rollout_engine_init(&t->engine, m, tok, &rc, err), fail);
    PT_TRY_GOTO(st, optim_init(&t->opt, &m->layout, &cfg->optim, err), fail);
    PT_TRY_GOTO(st, model_acts_init(&t->acts, m, t->B, t->T, err), fail);
    if (cfg->beta != 0.0) {
        PT_TRY_GOTO(st, model_init(&t->ref, &m->cfg, 0, err), fail);
        t->has_ref = 1;
        t->ref.precision = cfg->precision;
        memcpy(t->ref.params, m->params, m->layout.total * sizeof(float));
    }
    nan_guard_init(&t->guard, cfg->max_nan_steps);
    const size_t flat = R * (size_t)C, BT = (size_t)t->B * (size_t)t->T;
    t->comp = calloc(R, sizeof *t->comp);
    t->prompts = calloc((size_t)P, sizeof *t->prompts);
    t->reward = calloc(R, sizeof *t->reward);
    t->reward_ok = calloc(R, 1);
    t->per_reward = calloc(R * (size_t)rewards->n, sizeof *t->per_reward);
    t->drawn_per_reward = calloc(3 * (size_t)(rewards->n ? rewards->n : 1), sizeof *t->drawn_per_reward);
    const size_t room = drop_room(cfg), droom = room * (size_t)G + 1;
    t->drop_stride = room * (size_t)G;
    t->drop_prompts = calloc(room + 1, sizeof *t->drop_prompts);
    t->drop_comp = calloc(droom, sizeof *t->drop_comp);
    t->drop_text = calloc(droom, sizeof *t->drop_text);
    t->drop_reward = calloc(droom, sizeof *t->drop_reward);
    t->drop_reward_ok = calloc(droom, 1);
    t->drop_per_reward = calloc(droom * (size_t)(rewards->n ? rewards->n : 1), sizeof *t->drop_per_reward);
    t->text = calloc(R, sizeof *t->text);
    t->adv = calloc(R, sizeof *t->adv);
    t->valid = calloc(R, 1);
    t->tok_off = calloc(R + 1, sizeof *t->tok_off);
    t->old_logp = calloc(flat, sizeof(float));
    t->ref_logp = calloc(flat, sizeof(float));
    t->cur_logp = calloc(flat, sizeof(float));
    t->flat_dlogp = calloc(flat, sizeof(float));
    t->flat_mask = calloc(flat, 1);
    t->ids = calloc(BT, sizeof(int));
    t->targets = calloc(BT, sizeof(int));
    t->dlogp = calloc(BT, sizeof(float));
    t->seq_start = calloc((size_t)t->B + 1, sizeof(int));
    t->mb_adv = calloc((size_t)t->B, sizeof(float));
    if (!t->comp || !t->prompts || !t->reward || !t->reward_ok || !t->per_reward || !t->drawn_per_reward ||
        !t->drop_prompts || !t->drop_comp || !t->drop_text || !t->drop_reward || !t->drop_reward_ok ||
        !t->drop_per_reward || !t->text || !t->adv ||
        !t->valid || !t->tok_off || !t->old_logp || !t->ref_logp || !t->cur_logp || !t->flat_dlogp ||
        !t->flat_mask || !t->ids || !t->targets || !t->dlogp || !t->seq_start || !t->mb_adv) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %zu rollouts of %d tokens", R, C);
        goto fail;
    }
    return PT_OK;
fail:
    grpo_trainer_free(t);
    return st;
}

static char *dup_or_empty(const char *s, const char *empty) {
    const char *v = s ? s : empty;
    size_t n = strlen(v);
    char *c = malloc(n + 1);
    if (c) memcpy(c, v, n + 1);
    return c;
}

/* Completion text for the rewards: the tokenizer's decoding cut at a stop string, or "id id id". */
static pt_status completion_text(char **out, const grpo_trainer *t, const rollout_completion *c, pt_error *err) {
    if (t->tok) {
        size_t len;
        PT_TRY(tokenizer_decode(out, &len, t->tok, (const int32_t *)c->ids, (size_t)c->len, true, err));
        if (c->stop_cut >= 0 && (size_t)c->stop_cut < len) (*out)[c->stop_cut] = '\0';
        return PT_OK;
    }
    size_t cap = (size_t)c->len * 12 + 1, k = 0;
    char *s = malloc(cap);
    PT_CHECK_ALLOC(s, err, cap);
    s[0] = '\0';
    for (int i = 0; i < c->len; i++) k += (size_t)snprintf(s + k, cap - k, i ? " %d" : "%d", c->ids[i]);
    *out = s;
    return PT_OK;
}

/* Generates and scores n prompts into rollout slots [at·G, (at + n)·G). */
static pt_status generate_and_score(grpo_trainer *t, const grpo_prompt *in, int n, int at, grpo_step_stats *s,
                                    pt_error *err) {
    const int G = t->cfg.num_generations;
    rollout_prompt *rp = calloc((size_t)n, sizeof *rp);
    reward_item *items = calloc((size_t)n * (size_t)G, sizeof *items);
    reward_result *total = calloc((size_t)n * (size_t)G, sizeof *total);
    reward_result *per = calloc((size_t)n * (size_t)G * (size_t)t->rewards->n, sizeof *per);
    pt_status st = PT_OK;
    if (!rp || !items || !total || !per) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory scoring %d prompts", n);
        goto done;
    }
    for (int p = 0; p < n; p++) { /* own copies: the source's memory lives only until its next call */
        grpo_prompt *dst = &t->prompts[at + p];
        int keep = in[p].len > t->cfg.max_prompt_length ? t->cfg.max_prompt_length : in[p].len;
        int *ids = malloc((size_t)(keep ? keep : 1) * sizeof(int));
        dst->text = dup_or_empty(in[p].text, "");
        dst->columns = dup_or_empty(in[p].columns, "{}");
        dst->ids = ids;
        dst->len = keep;
        dst->index = in[p].index;
        t->groups = at + p + 1;
        if (!ids || !dst->text || !dst->columns) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory copying prompts");
            goto done;
        }
        if (keep < 1) {
            st = error_set(err, PT_ERR_INVALID, __FILE__, __LINE__, "prompt %lld is empty", (long long)in[p].index);
            goto done;
        }
        memcpy(ids, in[p].ids + (in[p].len - keep), (size_t)keep * sizeof(int));
        rp[p] = (rollout_prompt){.ids = ids, .len = keep, .index = in[p].index};
    }
    double t0 = timer_now();
    /* per-step stream: (seed, step) → engine seed; the engine keys (seed, prompt, sample) */
    uint64_t key[2] = {t->cfg.seed, (uint64_t)(t->step + 1)};
    t->engine.cfg.seed = rng_stream_id(key, 2);
    rollout_stats rs;
    PT_TRY_GOTO(st, rollout_generate(&t->engine, rp, n, t->comp + (size_t)at * G, &rs, err), done);
    t->R = (at + n) * G;
    double t1 = timer_now();
    s->gen_seconds += t1 - t0;
    for (int p = 0; p < n; p++)
        for (int g = 0; g < G; g++) {
            size_t i = (size_t)(at + p) * G + g, k = (size_t)p * G + g;
            PT_TRY_GOTO(st, completion_text(&t->text[i], t, &t->comp[i], err), done);
            items[k] = (reward_item){.prompt = t->prompts[at + p].text, .completion = t->text[i],
                                     .columns = t->prompts[at + p].columns, .completion_tokens = t->comp[i].len};
        }
    PT_TRY_GOTO(st, reward_set_score(t->rewards, total, per, items, n * G, err), done);
    for (int k = 0; k < n * G; k++) {
        size_t i = (size_t)at * G + (size_t)k;
        t->reward[i] = total[k].score;
        t->reward_ok[i] = total[k].status == REWARD_OK;
        for (int r = 0; r < t->rewards->n; r++)
            t->per_reward[(size_t)r * (size_t)t->cfg.per_device_train_batch_size * G + i] =
                per[(size_t)r * (size_t)n * G + (size_t)k];
    }
    s->score_seconds += timer_now() - t1;
done:
    free(rp), free(items), free(total), free(per);
    return st;
}

/* Moves group `from` into slot `to` (dynamic sampling compaction). */
static void move_group(grpo_trainer *t, int to, int from) {
    const group_slots batch = batch_slots(t);
    move_group_to(t, &batch, to, &batch, from);
}

/* Draws prompts, generates and scores until the batch is full (dynamic sampling: of informative
 * groups). */
static pt_status collect(grpo_trainer *t, grpo_prompt_source source, void *ctx, grpo_step_stats *s, pt_error *err) {
    const int P = t->cfg.per_device_train_batch_size, G = t->cfg.num_generations;
    grpo_prompt *in = calloc((size_t)P, sizeof *in);
    PT_CHECK_ALLOC(in, err, (size_t)P * sizeof *in);
    pt_status st = PT_OK;
    int kept = 0;
    const int nr = t->rewards->n;
    const size_t stride = (size_t)P * G;
    t->drawn = (grpo_reward_tally){0};
    memset(t->drawn_per_reward, 0, 3 * (size_t)nr * sizeof *t->drawn_per_reward);
    for (int draw = 0; kept < P && draw <= (t->cfg.dynamic_sampling ? t->cfg.max_dynamic_draws : 0); draw++) {
        int want = P - kept, got = 0;
        PT_TRY_GOTO(st, source(ctx, in, want, &got, err), done);
        if (got == 0) break;
        PT_TRY_GOTO(st, generate_and_score(t, in, got, kept, s, err), done);
        s->prompts_drawn += got;
        int before = kept;
        grpo_reward_tally_add(&t->drawn, t->reward + (size_t)before * G, t->reward_ok + (size_t)before * G, got, G);
        for (int k = 0; k < nr; k++)
            for (size_t i = (size_t)before * G; i < (size_t)(before + got) * G; i++) {
                const reward_result *r = &t->per_reward[(size_t)k * stride + i];
                double *acc = t->drawn_per_reward + 3 * (size_t)k;
                if (r->status == REWARD_OK) acc[0] += r->score, acc[1] += r->score * r->score, acc[2] += 1;
            }
        for (int p = before; p < before + got; p++) {
            int keep = !t->cfg.dynamic_sampling ||
                       grpo_group_informative(t->reward + (size_t)p * G, t->reward_ok + (size_t)p * G, G);
            if (keep) {
                move_group(t, kept, p);
                kept++;
            } else {
                drop_group(t, p);
            }
        }
        t->groups = kept;
        t->R = kept * G;
    }
done:
    free(in);
    return st;
}

/* Fills rows [r0, r1) into the micro-batch and its flat completion layout. */
static void build_rows(grpo_trainer *t, int r0, int r1, model_batch *mb) {
    const int G = t->cfg.num_generations, T = t->T;
    memset(t->ids, 0, (size_t)t->B * T * sizeof(int));
    for (size_t i = 0; i < (size_t)t->B * T; i++) t->targets[i] = -1;
    for (int r = r0; r < r1; r++) {
        const grpo_prompt *p = &t->prompts[r / G];
        const rollout_completion *c = &t->comp[r];
        int *ids = t->ids + (size_t)(r - r0) * T, *tg = t->targets + (size_t)(r - r0) * T;
        memcpy(ids, p->ids, (size_t)p->len * sizeof(int));
        memcpy(ids + p->len, c->ids, (size_t)c->len * sizeof(int));
        for (int j = 0; j < c->len; j++) tg[p->len - 1 + j] = c->ids[j];
    }
    /* Without auxiliary losses the MTP modules would only be computed and backpropagated to zero. */
    *mb = (model_batch){.ids = t->ids, .targets = t->targets, .B = t->B, .T = T,
                        .temperature = t->cfg.sampling.temperature > 0 ? t->cfg.sampling.temperature : 1.0f,
                        .no_mtp = t->cfg.aux_loss_scale == 0};
}

/* logp at completion tokens of rows [r0, r1) of the last forward → flat (from tok_off). */
static void gather_logp(float *flat, const grpo_trainer *t, const float *logp, int r0, int r1) {
    const int G = t->cfg.num_generations;
    for (int r = r0; r < r1; r++) {
        const float *row = logp + (size_t)(r - r0) * t->T + (t->prompts[r / G].len - 1);
        memcpy(flat + t->tok_off[r], row, (size_t)t->comp[r].len * sizeof(float));
    }
}

static pt_status reference_logps(grpo_trainer *t, pt_error *err) {
    model_batch mb;
    for (int r0 = 0; r0 < t->R; r0 += t->B) {
        int r1 = r0 + t->B < t->R ? r0 + t->B : t->R;
        build_rows(t, r0, r1, &mb);
        mb.no_mtp = true; /* only the main head's log-probs are needed */
        PT_TRY(model_forward(&t->ref, &t->acts, &mb, err));
        gather_logp(t->ref_logp, t, t->acts.logp, r0, r1);
    }
    return PT_OK;
}

/* ref ← α·policy + (1 − α)·ref */
static void sync_reference(grpo_trainer *t) {
    const double a = t->cfg.ref_model_mixup_alpha;
    for (size_t i = 0; i < t->m->layout.total; i++)
        t->ref.params[i] = (float)(a * t->m->params[i] + (1.0 - a) * t->ref.params[i]);
}

pt_status grpo_trainer_step(grpo_step_stats *s, grpo_trainer *t, grpo_prompt_source source, void *source_ctx,
                            pt_error *err) {
    memset(s, 0, sizeof *s);
    const double t_start = timer_now();
    const int G = t->cfg.num_generations, GA = t->cfg.gradient_accumulation_steps;
    free_rollouts(t);
    s->step = t->step + 1;
    PT_TRY(collect(t, source, source_ctx, s, err));
    PT_CHECK(t->groups > 0 || s->prompts_drawn > 0, err, PT_ERR_INVALID, "step %lld: the prompt source gave no prompts",
             (long long)s->step);
    const int R = t->R;
    s->groups = t->groups;

    /* advantages and the completion mask */
    PT_TRY(grpo_advantages(t->adv, t->valid, NULL, t->reward, t->reward_ok, t->groups, G, t->cfg.scale_rewards, err));
    const grpo_adv_stats drawn = grpo_reward_tally_stats(&t->drawn);
    s->reward = drawn.reward, s->reward_std = drawn.reward_std, s->frac_reward_zero_std = drawn.frac_reward_zero_std;
    s->masked = drawn.masked;
    double len_sum = 0, truncated = 0, prompt_tokens = 0;
    s->min_length = R ? 1e300 : 0;
    t->tok_off[0] = 0;
    for (int r = 0; r < R; r++) {
        const rollout_completion *c = &t->comp[r];
        int trunc = c->finish == FINISH_LENGTH;
        if (trunc && t->cfg.mask_truncated_completions) t->valid[r] = 0;
        truncated += trunc;
        len_sum += c->len;
        if (c->len < s->min_length) s->min_length = c->len;
        if (c->len > s->max_length) s->max_length = c->len;
        t->tok_off[r + 1] = t->tok_off[r] + c->len;
        memset(t->flat_mask + t->tok_off[r], t->valid[r], (size_t)c->len);
        prompt_tokens += t->prompts[r / G].len;
    }
    s->mean_length = R ? len_sum / R : 0;
    s->clipped_ratio = R ? truncated / R : 0;
    s->step_tokens = prompt_tokens + len_sum;
    double loss_tokens = 0;
    for (int i = 0; i < t->tok_off[R]; i++) loss_tokens += t->flat_mask[i];

    double t_update = timer_now();
    if (t->has_ref) PT_TRY(reference_logps(t, err));

    grpo_loss_config lc = {.loss_type = t->cfg.loss_type, .is_level = t->cfg.importance_sampling_level,
                           .epsilon_low = t->cfg.epsilon, .epsilon_high = t->cfg.epsilon_high, .beta = t->cfg.beta,
                           .max_completion_length = t->cfg.max_completion_length, .num_items = loss_tokens};
    const float grad_scale = t->cfg.loss_type == GRPO_LOSS_DAPO ? 1.0f : 1.0f / (float)GA;
    const size_t loads = (size_t)(t->m->layout.nlayers + t->m->cfg.num_nextn_predict_layers) *
                         (size_t)(t->m->cfg.n_routed_experts > 0 ? t->m->cfg.n_routed_experts : 1);
    int *load_sum = calloc(loads, sizeof(int));
    PT_CHECK_ALLOC(load_sum, err, loads * sizeof(int));
    pt_status st = PT_OK;
    double ent_sum = 0, ent_n = 0, diff_sum = 0;
    grpo_loss_stats total = {0};
    double loss_sum = 0;
    int iters_done = 0;
    for (int it = 0; it < t->cfg.num_iterations && R > 0; it++) {
        model_zero_grads(t->m);
        memset(load_sum, 0, loads * sizeof(int));
        int finite = 1;
        double step_loss = 0;
        for (int r0 = 0; r0 < R; r0 += t->B) {
            int r1 = r0 + t->B < R ? r0 + t->B : R;
            model_batch mb;
            build_rows(t, r0, r1, &mb);
            PT_TRY_GOTO(st, model_forward(t->m, &t->acts, &mb, err), done);
            gather_logp(t->cur_logp, t, t->acts.logp, r0, r1);
            if (it == 0) { /* the weights that sampled: these are the old-policy log-probs */
                gather_logp(t->old_logp, t, t->acts.logp, r0, r1);
                for (int r = r0; r < r1; r++) {
                    const float *row = t->acts.entropy + (size_t)(r - r0) * t->T + (t->prompts[r / G].len - 1);
                    for (int j = 0; j < t->comp[r].len; j++) {
                        if (t->valid[r]) ent_sum += row[j], ent_n += 1;
                        diff_sum += fabs((double)t->comp[r].logprobs[j] - (double)t->old_logp[t->tok_off[r] + j]);
                    }
                }
            }
            const int nseq = r1 - r0, base = t->tok_off[r0];
            for (int k = 0; k <= nseq; k++) t->seq_start[k] = t->tok_off[r0 + k] - base;
            for (int k = 0; k < nseq; k++) t->mb_adv[k] = t->adv[r0 + k];
            double loss;
            grpo_loss_stats ls;
            pt_status ls_st = grpo_loss(&loss, t->flat_dlogp + base, &ls, t->cur_logp + base, t->old_logp + base,
                                        t->has_ref ? t->ref_logp + base : NULL, t->mb_adv, t->flat_mask + base,
                                        t->seq_start, nseq, &lc, err);
            if (ls_st == PT_ERR_NUMERIC) finite = 0;
            else if (ls_st != PT_OK) { st = ls_st; goto done; }
            step_loss += lc.loss_type == GRPO_LOSS_DAPO ? loss : loss / GA;
            if (it == 0) {
                total.kl_sum += ls.kl_sum, total.tokens += ls.tokens;
            }
            total.clip_low_sum += ls.clip_low_sum, total.clip_high_sum += ls.clip_high_sum;
            total.clip_region_sum += ls.clip_region_sum, total.clip_count += ls.clip_count;
            /* scatter dlogp to the (B, T) grid */
            memset(t->dlogp, 0, (size_t)t->B * t->T * sizeof(float));
            for (int r = r0; r < r1; r++) {
                float *row = t->dlogp + (size_t)(r - r0) * t->T + (t->prompts[r / G].len - 1);
                for (int j = 0; j < t->comp[r].len; j++) row[j] = grad_scale * t->flat_dlogp[t->tok_off[r] + j];
            }
            if (!finite) continue;
            for (size_t i = 0; i < loads; i++) load_sum[i] += t->acts.expert_load[i];
            model_backward(t->m, &t->acts, t->dlogp, NULL, (float)t->cfg.aux_loss_scale / (float)GA);
        }
        s->lr = lr_at(&t->cfg.sched, t->opt.step);
        optim_step_info info = {.grad_norm = NAN, .clip_coef = 1.0, .skipped = true};
        if (finite) PT_TRY_GOTO(st, optim_step(&info, &t->opt, t->m->params, t->m->grads, s->lr, err), done);
        s->grad_norm = info.grad_norm;
        if (info.skipped) s->skipped++;
        else if (t->cfg.router_bias_gamma > 0) {
            model_acts view = t->acts;
            view.expert_load = load_sum;
            model_update_router_bias(t->m, &view, (float)t->cfg.router_bias_gamma);
        }
        PT_TRY_GOTO(st, nan_guard_record(&t->guard, &info, err), done);
        loss_sum += step_loss;
        iters_done++;
    }
    t->step++;
    if (t->has_ref && t->cfg.sync_ref_model && t->step % t->cfg.ref_model_sync_steps == 0) sync_reference(t);
    s->loss = iters_done ? loss_sum / iters_done : NAN;
    s->kl = t->has_ref && total.tokens > 0 ? total.kl_sum / total.tokens : 0;
    s->entropy = ent_n > 0 ? ent_sum / ent_n : 0;
    s->engine_logp_diff = t->tok_off[R] > 0 ? diff_sum / t->tok_off[R] : 0;
    s->clip_low = total.clip_count > 0 ? total.clip_low_sum / total.clip_count : 0;
    s->clip_high = total.clip_count > 0 ? total.clip_high_sum / total.clip_count : 0;
    s->clip_region = total.clip_count > 0 ? total.clip_region_sum / total.clip_count : 0;
    s->update_seconds = timer_now() - t_update;
    s->step_seconds = timer_now() - t_start;
    t->num_tokens += s->step_tokens;
    s->num_tokens = t->num_tokens;
    s->tokens_per_second = s->step_seconds > 0 ? s->step_tokens / s->step_seconds : 0;
done:
    free(load_sum);
    return st;
}
