/* test_grpo_trainer.c — the GRPO loop on a toy task whose right answer is obvious, and resume.
 *
 * Toy task: a tiny random DeepSeek-V3 MoE (tests/util/tiny_model.h, V = 40) continues a fixed
 * 3-token prompt with 6 tokens; the reward counts how many of them are token 7 (the built-in regex
 * reward in count mode over the tokenizer-free "id id id" text). The random model (init range
 * 0.3, so not uniform) scores ≈ 0.5 of a possible 6 in the first steps; a step's mean over 32
 * completions has noise ≈ 0.1. After 30 steps the mean of the last 5 steps must exceed the first
 * 5 steps' by 0.5 (≈ 5 noise units, and ≈ 12 for the mean of 5 steps): correct GRPO reaches 6.0;
 * a flipped advantage sign (0.04 → 0.00) and a wrong-signed ratio gradient (same) both fail it —
 * checked by editing the code by hand. An inverted ratio value is invisible here (μ = 1 makes the
 * ratio 1) and is caught by the golden loss test instead.
 *
 * Resume: rollouts are keyed by (seed, step, prompt, sample), so a trainer rebuilt after step 2
 * from the parameters, optimizer moments and step count continues bit-identically.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpo/trainer.h"
#include "tests/util/tiny_model.h"

typedef struct toy_source {
    int prompt[3];
    int64_t next;
} toy_source;

static pt_status toy_next(void *ctx, grpo_prompt *out, int n, int *got, pt_error *err) {
    (void)err;
    toy_source *s = ctx;
    for (int i = 0; i < n; i++)
        out[i] = (grpo_prompt){.ids = s->prompt, .len = 3, .index = s->next++, .text = "", .columns = NULL};
    *got = n;
    return PT_OK;
}

static void toy_setup(policy_model *m, reward_set *rs, grpo_config *cfg) {
    model_config mc;
    tiny_model_config(&mc);
    pt_error err = {0};
    cr_assert_eq(model_init(m, &mc, 7, &err), PT_OK, "%s", err.msg);
    cJSON *rcfg = cJSON_Parse("[{\"name\":\"sevens\",\"type\":\"regex\",\"pattern\":\"\\\\b7\\\\b\",\"mode\":\"count\"}]");
    cr_assert(rcfg);
    cr_assert_eq(reward_set_init(rs, rcfg, NULL, NULL, &err), PT_OK, "%s", err.msg);
    cJSON_Delete(rcfg);
    *cfg = grpo_config_default();
    cfg->num_generations = 8;
    cfg->per_device_train_batch_size = 4;
    cfg->max_prompt_length = 3;
    cfg->max_completion_length = 6;
    cfg->gradient_accumulation_steps = 2;
    cfg->sched.base_lr = 3e-2;
    cfg->optim.weight_decay = 0.0;
    cfg->aux_loss_scale = 0.0;
    cfg->seed = 11;
}

Test(grpo_trainer, toy_reward_rises) {
    policy_model m;
    reward_set rs;
    grpo_config cfg;
    toy_setup(&m, &rs, &cfg);
    grpo_trainer t;
    pt_error err = {0};
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    toy_source src = {.prompt = {1, 2, 3}};
    const int steps = 30;
    double first = 0, last = 0;
    for (int k = 0; k < steps; k++) {
        grpo_step_stats s;
        cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "step %d: %s", k + 1, err.msg);
        cr_assert(isfinite(s.loss) && isfinite(s.entropy), "step %d: loss %g entropy %g", k + 1, s.loss, s.entropy);
        cr_assert_eq(s.groups, 4);
        cr_assert(s.engine_logp_diff < 1e-3, "engine and training log-probs differ by %g", s.engine_logp_diff);
        if (k < 5) first += s.reward / 5;
        if (k >= steps - 5) last += s.reward / 5;
    }
    cr_log_info("toy reward: first 5 steps %.3f, last 5 steps %.3f", first, last);
    cr_assert(last > first + 0.5, "mean reward did not rise: first 5 steps %.3f, last 5 steps %.3f", first, last);
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);
}

static void run_steps(grpo_trainer *t, toy_source *src, int n, double *losses) {
    pt_error err = {0};
    for (int k = 0; k < n; k++) {
        grpo_step_stats s;
        cr_assert_eq(grpo_trainer_step(&s, t, toy_next, src, &err), PT_OK, "%s", err.msg);
        losses[k] = s.loss;
    }
}

Test(grpo_trainer, resume_is_bit_identical) {
    policy_model a, b;
    reward_set ra, rb;
    grpo_config cfg;
    toy_setup(&a, &ra, &cfg);
    toy_setup(&b, &rb, &cfg);
    cfg.num_iterations = 2; /* exercise old-policy log-probs and clipping too */
    cfg.beta = 0.04;        /* and the reference model */
    pt_error err = {0};
    grpo_trainer ta, tb;
    double la[4], lb[4];
    toy_source sa = {.prompt = {1, 2, 3}}, sb = sa;
    cr_assert_eq(grpo_trainer_init(&ta, &a, NULL, &ra, &cfg, &err), PT_OK, "%s", err.msg);
    run_steps(&ta, &sa, 4, la);
    /* b: two steps, then a fresh trainer that takes over params, moments and step count */
    cr_assert_eq(grpo_trainer_init(&tb, &b, NULL, &rb, &cfg, &err), PT_OK, "%s", err.msg);
    run_steps(&tb, &sb, 2, lb);
    optim saved = tb.opt;
    size_t bytes = tb.opt.total * sizeof(float);
    float *mm = malloc(bytes), *vv = malloc(bytes), *refp = malloc(b.layout.total * sizeof(float));
    memcpy(mm, saved.m, bytes), memcpy(vv, saved.v, bytes);
    memcpy(refp, tb.ref.params, b.layout.total * sizeof(float));
    int64_t opt_step = saved.step, step = tb.step;
    grpo_trainer_free(&tb);
    cr_assert_eq(grpo_trainer_init(&tb, &b, NULL, &rb, &cfg, &err), PT_OK, "%s", err.msg);
    memcpy(tb.opt.m, mm, bytes), memcpy(tb.opt.v, vv, bytes);
    memcpy(tb.ref.params, refp, b.layout.total * sizeof(float));
    tb.opt.step = opt_step;
    tb.step = step;
    run_steps(&tb, &sb, 2, lb + 2);
    for (int k = 0; k < 4; k++) cr_assert_eq(la[k], lb[k], "step %d: loss %.17g vs %.17g", k + 1, la[k], lb[k]);
    cr_assert_eq(memcmp(a.params, b.params, a.layout.total * sizeof(float)), 0, "parameters differ after resume");
    free(mm), free(vv), free(refp);
    grpo_trainer_free(&ta), grpo_trainer_free(&tb);
    reward_set_free(&ra), reward_set_free(&rb);
    model_free(&a), model_free(&b);
}

/* A toy set-up with one binary reward: token 7 anywhere in a 1-token completion (p ≈ 1/40 per
 * sample at init, so about half of the groups of 8 have no hit and zero reward variance). */
static void sparse_setup(policy_model *m, reward_set *rs, grpo_config *cfg, const char *reward_json) {
    toy_setup(m, rs, cfg);
    reward_set_free(rs);
    cJSON *rcfg = cJSON_Parse(reward_json);
    cr_assert(rcfg);
    pt_error err = {0};
    cr_assert_eq(reward_set_init(rs, rcfg, NULL, NULL, &err), PT_OK, "%s", err.msg);
    cJSON_Delete(rcfg);
    cfg->max_completion_length = 1;
}

static const char SEVEN[] = "[{\"name\":\"seven\",\"type\":\"regex\",\"pattern\":\"\\\\b7\\\\b\"}]";

static bool group_has_spread(const grpo_trainer *t, int p) {
    const int G = t->cfg.num_generations;
    for (int g = 1; g < G; g++)
        if (t->reward[(size_t)p * G + g] != t->reward[(size_t)p * G]) return true;
    return false;
}

/* DAPO's dynamic sampling: every kept group has reward spread, and zero-spread groups were drawn
 * and dropped (more prompts drawn than P); without it such groups stay in the batch. The step's
 * reward metrics count the dropped groups too: they describe the policy's samples, not the
 * informative part trained on. */
Test(grpo_trainer, dynamic_sampling_keeps_informative_groups) {
    policy_model m;
    reward_set rs;
    grpo_config cfg;
    sparse_setup(&m, &rs, &cfg, SEVEN);
    cfg.dynamic_sampling = true;
    cfg.max_dynamic_draws = 16;
    cfg.sched.base_lr = 1e-9; /* the policy stays put: each step sees the same odds */
    grpo_trainer t;
    pt_error err = {0};
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    toy_source src = {.prompt = {1, 2, 3}};
    int extra = 0, kept = 0;
    for (int k = 0; k < 4; k++) {
        grpo_step_stats s;
        cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "%s", err.msg);
        cr_assert(s.groups <= 4);
        double hits = 0;
        for (int p = 0; p < s.groups; p++) {
            cr_assert(group_has_spread(&t, p), "step %d kept group %d with no spread", k, p);
            for (int g = 0; g < 8; g++) hits += t.reward[p * 8 + g];
        }
        /* a dropped group is all misses (all hits has odds of about 40^-8) */
        cr_assert_eq(s.frac_reward_zero_std, (double)(s.prompts_drawn - s.groups) / s.prompts_drawn);
        cr_assert_float_eq(s.reward, hits / (8.0 * s.prompts_drawn), 1e-12, "step %d: reward %.6f over %d prompts", k,
                           s.reward, s.prompts_drawn);
        cr_assert_float_eq(t.drawn_per_reward[0] / t.drawn_per_reward[2], s.reward, 1e-12);
        cr_assert_eq(t.drawn_per_reward[2], 8.0 * s.prompts_drawn);
        /* the dropped groups are kept for the run store: whole, and without spread */
        cr_assert_eq(t.dropped, s.prompts_drawn - s.groups);
        for (int i = 0; i < t.dropped * 8; i++) {
            cr_assert_eq(t.drop_reward[i], t.drop_reward[i / 8 * 8], "dropped group %d has spread", i / 8);
            cr_assert_not_null(t.drop_text[i]);
            cr_assert_eq(t.drop_comp[i].len, 1);
        }
        for (int p = 0; p < t.dropped; p++) cr_assert_not_null(t.drop_prompts[p].text);
        extra += s.prompts_drawn - 4;
        kept += s.groups;
    }
    cr_assert(extra > 0, "no zero-spread group was ever drawn: the test does not exercise the refill");
    cr_assert(kept > 4, "dynamic sampling kept too few groups (%d in 4 steps)", kept);
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);

    /* control: the same run without dynamic sampling keeps zero-spread groups */
    sparse_setup(&m, &rs, &cfg, SEVEN);
    cfg.sched.base_lr = 1e-9;
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    toy_source src2 = {.prompt = {1, 2, 3}};
    double zero_std = 0;
    for (int k = 0; k < 4; k++) {
        grpo_step_stats s;
        cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src2, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(s.groups, 4);
        cr_assert_eq(s.prompts_drawn, 4);
        zero_std += s.frac_reward_zero_std;
    }
    cr_assert(zero_std > 0, "the control never saw a zero-spread group");
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);
}

/* sync_ref_model: the reference is untouched until step N, then becomes α·policy + (1 − α)·ref. */
Test(grpo_trainer, reference_sync_mixes_the_policy_in) {
    policy_model m;
    reward_set rs;
    grpo_config cfg;
    toy_setup(&m, &rs, &cfg);
    cfg.beta = 0.04;
    cfg.sync_ref_model = true;
    cfg.ref_model_sync_steps = 2;
    cfg.ref_model_mixup_alpha = 0.6;
    grpo_trainer t;
    pt_error err = {0};
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    const size_t n = m.layout.total;
    float *start = malloc(n * sizeof(float));
    memcpy(start, m.params, n * sizeof(float));
    toy_source src = {.prompt = {1, 2, 3}};
    grpo_step_stats s;
    cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(memcmp(t.ref.params, start, n * sizeof(float)), 0, "the reference moved before its sync step");
    cr_assert_neq(memcmp(m.params, start, n * sizeof(float)), 0, "the policy did not move");
    cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "%s", err.msg);
    cr_assert(s.kl > 0, "step 2's policy has moved from its reference: kl %g", s.kl);
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        const float want = (float)(0.6 * m.params[i] + 0.4 * start[i]);
        cr_assert_eq(t.ref.params[i], want, "param %zu: ref %.9g, α·policy + (1 − α)·ref = %.9g", i, t.ref.params[i], want);
        moved += t.ref.params[i] != start[i];
    }
    cr_assert(moved > n / 2, "the sync moved only %zu of %zu parameters", moved, n);
    free(start);
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);
}

/* mask_truncated_completions: rows cut by max_completion_length leave the loss; when every row
 * is cut, nothing trains, and that is not a non-finite step. */
Test(grpo_trainer, truncated_completions_are_masked) {
    policy_model m;
    reward_set rs;
    grpo_config cfg;
    toy_setup(&m, &rs, &cfg);
    cfg.mask_truncated_completions = true;
    cfg.max_completion_length = 3;
    int eos[1] = {5}; /* a frequent-enough id: some rows stop, the rest are cut */
    cfg.eos_ids = eos;
    cfg.n_eos = 1;
    cfg.router_bias_gamma = 0;
    grpo_trainer t;
    pt_error err = {0};
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    toy_source src = {.prompt = {1, 2, 3}};
    int stopped = 0, cut = 0;
    for (int k = 0; k < 3; k++) {
        grpo_step_stats s;
        cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "%s", err.msg);
        for (int r = 0; r < t.R; r++) {
            const bool trunc = t.comp[r].finish == FINISH_LENGTH;
            if (trunc) cr_assert_eq(t.valid[r], 0, "row %d was cut at the length limit but is in the loss", r);
            stopped += !trunc, cut += trunc;
        }
    }
    cr_assert(stopped > 0 && cut > 0, "need both kinds of rows (stopped %d, cut %d)", stopped, cut);
    grpo_trainer_free(&t);

    cfg.eos_ids = NULL, cfg.n_eos = 0; /* now every row is cut */
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    const size_t n = m.layout.total;
    float *before = malloc(n * sizeof(float));
    memcpy(before, m.params, n * sizeof(float));
    grpo_step_stats s;
    cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(s.skipped, 0, "a batch with every row masked is not a non-finite step");
    cr_assert_eq(memcmp(before, m.params, n * sizeof(float)), 0, "masked rows changed the weights");
    free(before);
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);
}

/* Non-finite updates are skipped with the weights untouched, and max_nan_steps in a row stop the
 * run with PT_ERR_NUMERIC. Non-finite rewards never get this far (the reward set masks them, and
 * advantages of masked items are 0), so the NaN comes from a corrupted weight of the MTP module:
 * sampling never runs it (no speculative decoding), the training forward does, and its loss and
 * every gradient it feeds become NaN. */
Test(grpo_trainer, non_finite_steps_skip_then_abort) {
    policy_model m;
    reward_set rs;
    grpo_config cfg;
    toy_setup(&m, &rs, &cfg);
    cfg.aux_loss_scale = 1.0;
    cfg.max_nan_steps = 3;
    cfg.router_bias_gamma = 0;
    grpo_trainer t;
    pt_error err = {0};
    cr_assert_eq(grpo_trainer_init(&t, &m, NULL, &rs, &cfg, &err), PT_OK, "%s", err.msg);
    char name[64];
    snprintf(name, sizeof name, "model.layers.%d.eh_proj.weight", m.cfg.num_hidden_layers);
    const tensor_entry *mtp = model_layout_find(&m.layout, name);
    cr_assert(mtp, "no tensor %s", name);
    m.params[mtp->offset + 3] = NAN;
    const size_t n = m.layout.total;
    float *before = malloc(n * sizeof(float));
    memcpy(before, m.params, n * sizeof(float));
    toy_source src = {.prompt = {1, 2, 3}};
    grpo_step_stats s;
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_OK, "step %d: %s", k + 1, err.msg);
        cr_assert_eq(s.skipped, 1, "step %d should be skipped (loss %g, grad norm %g)", k + 1, s.loss, s.grad_norm);
        cr_assert_eq(memcmp(before, m.params, n * sizeof(float)), 0, "a skipped step changed the weights");
        cr_assert_eq(s.groups, 4, "the rollouts themselves are fine");
    }
    cr_assert_eq(grpo_trainer_step(&s, &t, toy_next, &src, &err), PT_ERR_NUMERIC, "the third bad step must stop the run");
    cr_assert(strstr(err.msg, "3"), "%s", err.msg);
    free(before);
    grpo_trainer_free(&t);
    reward_set_free(&rs);
    model_free(&m);
}
