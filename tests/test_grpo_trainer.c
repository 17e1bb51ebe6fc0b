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
