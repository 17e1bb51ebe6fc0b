/* test_sft_fp8_gap.c — the loss-gap measurement's statistics and held-out evaluation
 * (sft/sft_fp8_gap.h).
 *
 *   - sft_gap_tail_of: tail means, the signed relative difference of the means and the mean
 *     per-point relative error, against values worked by hand; NaN points are left out;
 *   - sft_gap_mean_of: mean and standard error (sd/√n) against a hand-worked set, NaN left out,
 *     one value has no standard error;
 *   - a tiny two-seed run with a held-out set: the evaluation schedule (before step 1, every K
 *     steps, after the last; the tail starts after steps − steps/5); before any step the fp8 run's
 *     weights under fp32 GEMMs give exactly the fp32 run's held-out loss (same initial weights)
 *     while its fp8 forward differs by more than 0 and less than 1%; the held-out loss falls with
 *     training; the per-seed tail figures are those of sft_gap_tail_of over the returned series
 *     and the averages those of sft_gap_mean_of; the seeds differ; and the run split over two
 *     processes (jobs 2) returns bit-identical series (and its timings).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "sft/sft_fp8_gap.h"
#include "tests/util/test_world.h"

Test(fp8_gap, tail_statistics) {
    const double ref[] = {9, 9, 2.0, 4.0, NAN, 5.0};
    const double x[] = {1, 1, 2.2, 3.0, 7.0, 5.5};
    sft_gap_tail t = sft_gap_tail_of(ref, x, 2, 6); /* points 2, 3, 5 */
    cr_assert_eq(t.points, 3);
    cr_assert_float_eq(t.mean_ref, 11.0 / 3, 1e-12);
    cr_assert_float_eq(t.mean, 10.7 / 3, 1e-12);
    cr_assert_float_eq(t.rel_diff, (10.7 - 11.0) / 11.0, 1e-12);
    cr_assert_float_eq(t.mean_rel_err, (0.1 + 0.25 + 0.1) / 3, 1e-12);
    sft_gap_tail none = sft_gap_tail_of(ref, x, 4, 5);
    cr_assert_eq(none.points, 0);
    cr_assert(isnan(none.rel_diff) && isnan(none.mean_rel_err));
}

Test(fp8_gap, mean_and_standard_error) {
    const double v[] = {1.0, NAN, 2.0, 4.0, 5.0};
    sft_gap_mean m = sft_gap_mean_of(v, 5);
    cr_assert_eq(m.count, 4);
    cr_assert_float_eq(m.mean, 3.0, 1e-12);
    /* sample variance (4 + 1 + 1 + 4) / 3, se = sqrt(10/3 / 4) */
    cr_assert_float_eq(m.se, sqrt(10.0 / 3.0 / 4.0), 1e-12);
    sft_gap_mean one = sft_gap_mean_of(v, 2);
    cr_assert_eq(one.count, 1);
    cr_assert_float_eq(one.mean, 1.0, 1e-12);
    cr_assert(isnan(one.se));
}

static void small_config(model_config *c) { test_fp8_policy_config(c); }

static void same_series(const sft_gap_result *a, const sft_gap_result *b) {
    for (int i = 0; i < a->seeds; i++)
        for (int k = 0; k < SFT_GAP_SERIES; k++) {
            if (k < a->runs)
                cr_assert_eq(memcmp(a->seed[i].loss[k], b->seed[i].loss[k], (size_t)a->steps * sizeof(double)), 0,
                             "seed %d run %d: training losses differ between jobs 1 and 2", i, k);
            if (a->seed[i].held[k])
                cr_assert_eq(memcmp(a->seed[i].held[k], b->seed[i].held[k], (size_t)a->n_evals * sizeof(double)), 0,
                             "seed %d series %d: held-out losses differ between jobs 1 and 2", i, k);
        }
}

Test(fp8_gap, heldout_and_seeds) {
    model_config c;
    small_config(&c);
    sft_gap_options o = {.steps = 12, .B = 2, .T = 128, .lr = 3e-3, .noise_floor = 1, .seeds = 2, .first_seed = 5,
                         .heldout = 20, .eval_every = 5};
    sft_gap_result r, r2;
    pt_error err = {0};
    cr_assert_eq(sft_fp8_gap(&r, &c, &o, &err), PT_OK, "%s", err.msg);
    /* schedule: 0, 5, 10, 12; the tail is steps > 12 − 2, i.e. the evaluation after step 12 */
    cr_assert_eq(r.n_evals, 4);
    const int want[] = {0, 5, 10, 12};
    for (int j = 0; j < 4; j++) cr_assert_eq(r.eval_step[j], want[j], "eval %d after step %d", j, r.eval_step[j]);
    cr_assert_eq(r.held_from, 3);
    cr_assert(r.heldout_rows > 0 && r.heldout_tokens > r.heldout_rows, "%d rows, %ld targets", r.heldout_rows,
              r.heldout_tokens);
    double rel[2][3];
    for (int i = 0; i < 2; i++) {
        const sft_gap_seed *s = &r.seed[i];
        cr_assert_eq(s->seed, 5 + (uint64_t)i);
        /* before training: the fp8 run's weights are the fp32 run's */
        cr_assert_eq(s->held[SFT_GAP_FP8_AS_FP32][0], s->held[SFT_GAP_FP32][0], "seed %d: %.9g vs %.9g", i,
                     s->held[SFT_GAP_FP8_AS_FP32][0], s->held[SFT_GAP_FP32][0]);
        const double d8 = fabs(s->held[SFT_GAP_FP8][0] - s->held[SFT_GAP_FP32][0]) / s->held[SFT_GAP_FP32][0];
        cr_assert(d8 > 0 && d8 < 0.01, "seed %d: fp8 forward of the initial weights differs by %.3g", i, d8);
        for (int k = 0; k < SFT_GAP_SERIES; k++) {
            cr_assert(isfinite(s->held[k][0]) && isfinite(s->held[k][3]), "seed %d series %d", i, k);
            cr_assert(s->held[k][3] < s->held[k][0] - 0.5, "seed %d series %d: held-out %.4f -> %.4f", i, k,
                      s->held[k][0], s->held[k][3]);
        }
        for (int k = 1; k < SFT_GAP_SERIES; k++) {
            sft_gap_tail t = sft_gap_tail_of(s->held[0], s->held[k], 3, 4);
            cr_assert_float_eq(s->held_tail[k].rel_diff, t.rel_diff, 1e-15);
            cr_assert_float_eq(s->held_tail[k].rel_diff, (s->held[k][3] - s->held[0][3]) / s->held[0][3], 1e-12);
            if (k < 3) rel[i][k] = s->held_tail[k].rel_diff;
        }
        sft_gap_tail tt = sft_gap_tail_of(s->loss[0], s->loss[1], 10, 12);
        cr_assert_float_eq(s->train[1].mean_rel_err, tt.mean_rel_err, 1e-15);
    }
    cr_assert_neq(r.seed[0].held[0][0], r.seed[1].held[0][0], "the seeds must start from other weights");
    for (int k = 1; k < 3; k++) {
        const double v[] = {rel[0][k], rel[1][k]};
        sft_gap_mean m = sft_gap_mean_of(v, 2);
        cr_assert_float_eq(r.held_rel_diff[k].mean, m.mean, 1e-15);
        cr_assert_float_eq(r.held_rel_diff[k].se, m.se, 1e-15);
        cr_assert_float_eq(r.held_abs_rel_diff[k].mean, (fabs(v[0]) + fabs(v[1])) / 2, 1e-15);
    }
    cr_log_info("held-out: fp32 %.4f -> %.4f, fp8 Δ %+.3f%%, floor Δ %+.3f%% (seed 5)", r.seed[0].held[0][0],
                r.seed[0].held[0][3], 100 * r.seed[0].held_tail[1].rel_diff, 100 * r.seed[0].held_tail[2].rel_diff);
    o.jobs = 2;
    cr_assert_eq(sft_fp8_gap(&r2, &c, &o, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(r2.heldout_rows, r.heldout_rows);
    cr_assert_eq(r2.heldout_tokens, r.heldout_tokens);
    same_series(&r, &r2);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            cr_assert(r2.seed[i].cpu_seconds[k] > 0 && r2.seed[i].seconds[k] > 0, "seed %d run %d: no time came back", i, k);
    sft_gap_result_free(&r);
    sft_gap_result_free(&r2);
    model_config_free(&c);
}
