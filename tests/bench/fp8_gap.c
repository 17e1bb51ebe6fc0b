/* fp8_gap.c — see fp8_gap.h.
 *
 *   bench fp8 [STEPS [B [T]]] [floor] [seeds N] [seed S] [lr X] [heldout N] [every K] [jobs J]
 *
 * STEPS B T: optimizer steps and the batch (default 60, 4, 128); floor: add the noise-floor run
 * (fp32 from bf16-rounded initial weights); seeds N from seed S (default 4 from 1: each seed sets
 * the initial weights and the data order); lr: peak learning rate (default 1e-3); heldout: held-out
 * examples (default 96; 0: none); every: held-out evaluation interval (default STEPS / 10); jobs:
 * seeds trained in J processes at once (default 1; with OMP_NUM_THREADS=1, J = cores uses them).
 * The measurement of the README: `fp8 floor jobs 2` (about 15 CPU-minutes).
 * The single-seed measurement of earlier versions is `fp8 300 8 256 floor seeds 1 lr 3e-3 heldout 0`.
 * Only when named: it trains for many minutes (fp8 costs about 3x fp32 on the CPU).
 */
#include "tests/bench/fp8_gap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_config.h"
#include "sft/sft_fp8_gap.h"

static const char USAGE[] =
    "usage: bench fp8 [STEPS [B [T]]] [floor] [seeds N] [seed S] [lr X] [heldout N] [every K] [jobs J]\n"
    "  defaults: 60 4 128, seeds 4, seed 1, lr 1e-3, heldout 96 (examples), every STEPS/10, jobs 1\n"
    "  the single-seed run of earlier versions: fp8 300 8 256 floor seeds 1 lr 3e-3 heldout 0\n";

/* "+1.234%" of a relative value; "-" for NaN. */
static const char *pct(char *buf, double v, bool sign) {
    if (!isfinite(v)) return "-";
    snprintf(buf, 32, sign ? "%+.3f%%" : "%.3f%%", 100 * v);
    return buf;
}

static const char *pm(char *buf, sft_gap_mean m, bool sign) {
    if (!isfinite(m.mean)) return "-";
    if (!isfinite(m.se)) return pct(buf, m.mean, sign);
    snprintf(buf, 48, sign ? "%+.3f ± %.3f%%" : "%.3f ± %.3f%%", 100 * m.mean, 100 * m.se);
    return buf;
}

/* Mean over seeds of series k at index i (a = loss or held), and of |x − fp32| / fp32. */
static void at_step(double *mean, double *rel, const sft_gap_result *r, bool held, int k, int i) {
    double s = 0, e = 0;
    int n = 0;
    for (int j = 0; j < r->seeds; j++) {
        const double *x = held ? r->seed[j].held[k] : r->seed[j].loss[k], *ref = held ? r->seed[j].held[0] : r->seed[j].loss[0];
        if (!x || !isfinite(x[i]) || !isfinite(ref[i])) continue;
        s += x[i], e += fabs(x[i] - ref[i]) / ref[i], n++;
    }
    *mean = n ? s / n : NAN;
    *rel = n ? e / n : NAN;
}

static void print_step_table(const sft_gap_result *r) {
    const bool fl = r->runs == 3, held = r->n_evals > 0;
    char b[32];
    printf("\nPer step (mean over %d seed%s; relative error = mean over seeds of |x − fp32| / fp32):\n\n", r->seeds,
           r->seeds > 1 ? "s" : "");
    printf("| step | train fp32 | train fp8 | rel. error |%s%s\n", fl ? " train floor | rel. error |" : "",
           held ? " held-out fp32 | held-out fp8 | rel. error | fp8, fp32 fwd | rel. error |" : "");
    printf("|-----:|-----------:|----------:|-----------:|%s%s\n", fl ? "------------:|-----------:|" : "",
           held ? "--------------:|-------------:|-----------:|--------------:|-----------:|" : "");
    const int every = r->steps >= 200 ? r->steps / 20 : (r->steps >= 20 ? r->steps / 10 : 1);
    const int rows = held ? r->n_evals : r->steps;
    for (int j = 0; j < rows; j++) {
        const int step = held ? r->eval_step[j] : j + 1;
        if (!held && !((j + 1) % every == 0 || j == 0)) continue;
        double m, e;
        printf("| %4d |", step);
        for (int k = 0; k < r->runs; k++) {
            if (step == 0) { /* before training: held-out only */
                if (k == 0) printf(" %10s |", "-");
                else printf(" %*s | %10s |", k == 1 ? 9 : 11, "-", "-");
                continue;
            }
            at_step(&m, &e, r, false, k, step - 1);
            if (k == 0) printf(" %10.4f |", m);
            else printf(" %*.4f | %10s |", k == 1 ? 9 : 11, m, pct(b, e, false));
        }
        if (held) {
            at_step(&m, &e, r, true, SFT_GAP_FP32, j);
            printf(" %13.4f |", m);
            at_step(&m, &e, r, true, SFT_GAP_FP8, j);
            printf(" %12.4f | %10s |", m, pct(b, e, false));
            at_step(&m, &e, r, true, SFT_GAP_FP8_AS_FP32, j);
            printf(" %13.4f | %10s |", m, pct(b, e, false));
        }
        printf("\n");
    }
    if (held && fl) {
        printf("\nHeld-out loss of the noise floor (fp32 from bf16-rounded initial weights):\n\n");
        printf("| step | held-out fp32 | held-out floor | rel. error |\n|-----:|--------------:|---------------:|-----------:|\n");
        for (int j = 0; j < r->n_evals; j++) {
            double m0, m, e;
            at_step(&m0, &e, r, true, SFT_GAP_FP32, j);
            at_step(&m, &e, r, true, SFT_GAP_FLOOR, j);
            printf("| %4d | %13.4f | %14.4f | %10s |\n", r->eval_step[j], m0, m, pct(b, e, false));
        }
    }
}

static void print_seed_table(const sft_gap_result *r) {
    const bool fl = r->runs == 3, held = r->n_evals > 0;
    const int tail = r->steps / 5 > 0 ? r->steps / 5 : 1;
    char b[8][48];
    printf("\nLast 20%% of steps (training loss: steps %d..%d; held-out: the %d evaluations after steps %d..%d).\n"
           "Δ = (tail mean − fp32 tail mean) / fp32 tail mean, signed; per-step = mean of |x − fp32| / fp32 over the"
           " tail points.\n\n",
           r->steps - tail + 1, r->steps, r->n_evals - r->held_from, held ? r->eval_step[r->held_from] : 0, r->steps);
    printf("| seed | train fp8 Δ | per-step |%s%s\n", fl ? " train floor Δ | per-step |" : "",
           held ? (fl ? " held-out fp8 Δ | per-step | fp8, fp32 fwd Δ | held-out floor Δ | per-step |"
                      : " held-out fp8 Δ | per-step | fp8, fp32 fwd Δ |")
                : "");
    printf("|-----:|------------:|---------:|%s%s\n", fl ? "--------------:|---------:|" : "",
           held ? (fl ? "---------------:|---------:|----------------:|-----------------:|---------:|"
                      : "---------------:|---------:|----------------:|")
                : "");
    for (int i = 0; i < r->seeds; i++) {
        const sft_gap_seed *s = &r->seed[i];
        printf("| %4llu | %11s | %8s |", (unsigned long long)s->seed, pct(b[0], s->train[1].rel_diff, true),
               pct(b[1], s->train[1].mean_rel_err, false));
        if (fl) printf(" %13s | %8s |", pct(b[2], s->train[2].rel_diff, true), pct(b[3], s->train[2].mean_rel_err, false));
        if (held) {
            printf(" %14s | %8s | %15s |", pct(b[4], s->held_tail[1].rel_diff, true),
                   pct(b[5], s->held_tail[1].mean_rel_err, false), pct(b[6], s->held_tail[3].rel_diff, true));
            if (fl)
                printf(" %16s | %8s |", pct(b[7], s->held_tail[2].rel_diff, true),
                       pct(b[0], s->held_tail[2].mean_rel_err, false));
        }
        printf("\n");
    }
    if (r->seeds < 2) return;
    for (int row = 0; row < 2; row++) {
        const sft_gap_mean *tr = row ? r->train_abs_rel_diff : r->train_rel_diff;
        const sft_gap_mean *he = row ? r->held_abs_rel_diff : r->held_rel_diff;
        const bool sg = row == 0;
        printf("| %s | %11s | %8s |", row ? "mean abs Δ ± se" : "mean ± se", pm(b[0], tr[1], sg),
               row ? "" : pm(b[1], r->train_mean_rel_err[1], false));
        if (fl) printf(" %13s | %8s |", pm(b[2], tr[2], sg), row ? "" : pm(b[3], r->train_mean_rel_err[2], false));
        if (held) {
            printf(" %14s | %8s | %15s |", pm(b[4], he[1], sg), row ? "" : pm(b[5], r->held_mean_rel_err[1], false),
                   pm(b[6], he[3], sg));
            if (fl) printf(" %16s | %8s |", pm(b[7], he[2], sg), row ? "" : pm(b[0], r->held_mean_rel_err[2], false));
        }
        printf("\n");
    }
}

int bench_fp8_gap(int argc, char **argv, int at) {
    int num[3] = {60, 4, 128}, floor_run = 0, seeds = 4, first = 1, heldout = 96, every = 0, jobs = 1;
    double lr = 1e-3;
    int i = at + 1;
    for (int k = 0; k < 3 && i < argc && atoi(argv[i]) > 0; k++, i++) num[k] = atoi(argv[i]);
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "floor") == 0) {
            floor_run = 1;
            continue;
        }
        int *dst = strcmp(a, "seeds") == 0 ? &seeds : strcmp(a, "seed") == 0 ? &first : strcmp(a, "heldout") == 0 ? &heldout
                 : strcmp(a, "every") == 0 ? &every : strcmp(a, "jobs") == 0 ? &jobs : NULL;
        if (dst && v) {
            long x = strtol(v, &end, 10);
            if (*end == '\0' && end != v && x >= 0 && x <= 1000000) {
                *dst = (int)x, i++;
                continue;
            }
        } else if (strcmp(a, "lr") == 0 && v) {
            double x = strtod(v, &end);
            if (*end == '\0' && end != v && x > 0 && x < 1) {
                lr = x, i++;
                continue;
            }
        }
        fprintf(stderr, "bench fp8: bad argument '%s'%s%s%s\n%s", a, v ? " (followed by '" : "", v ? v : "", v ? "')" : "",
                USAGE);
        return 2;
    }
    if (first < 1) first = 1;
    if (every == 0) every = num[0] / 10 > 0 ? num[0] / 10 : 1;
    model_config mc;
    pt_error err = {0};
    if (model_config_load(&mc, PT_SOURCE_DIR "/examples/configs/tiny-moe.json", &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    sft_gap_options o = {.steps = num[0], .B = num[1], .T = num[2], .lr = lr, .noise_floor = floor_run, .seeds = seeds,
                         .first_seed = (uint64_t)first, .heldout = heldout, .eval_every = every, .jobs = jobs, .progress = stderr};
    char cmd[256];
    snprintf(cmd, sizeof cmd, "make bench ARGS=\"fp8 %d %d %d%s seeds %d seed %d lr %g heldout %d every %d jobs %d\"",
             o.steps, o.B, o.T, floor_run ? " floor" : "", seeds, first, lr, heldout,
             every ? every : (o.steps / 20 > 0 ? o.steps / 20 : 1), jobs);
    printf("\nfp8 loss gap: SFT of examples/configs/tiny-moe.json, %d steps of %d x %d tokens, peak lr %g, seeds %d..%d;"
           " per seed fp32 vs fp8 GEMMs%s from the same weights and data order (training...)\n%s\n",
           o.steps, o.B, o.T, lr, first, first + (seeds ? seeds : 1) - 1, floor_run ? " (and the fp32 noise floor)" : "", cmd);
    fflush(stdout);
    sft_gap_result r;
    pt_status st = sft_fp8_gap(&r, &mc, &o, &err);
    model_config_free(&mc);
    if (st != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    if (r.n_evals > 0)
        printf("held-out set: %d examples of the generators' held-out split, %d packed rows of %d, %ld target tokens,"
               " evaluated every %d steps in each run's precision (and the fp8 run's weights with fp32 GEMMs)\n",
               r.heldout_examples, r.heldout_rows, o.T, r.heldout_tokens, r.eval_step[1] - r.eval_step[0]);
    print_step_table(&r);
    print_seed_table(&r);
    double sec[3] = {0, 0, 0}, cpu[3] = {0, 0, 0};
    for (int j = 0; j < r.seeds; j++)
        for (int k = 0; k < r.runs; k++) sec[k] += r.seed[j].seconds[k], cpu[k] += r.seed[j].cpu_seconds[k];
    const double steps = (double)r.steps * r.seeds, pos = (double)o.B * o.T * steps;
    printf("\nCost of the emulation (training steps only): fp32 %.2f CPU-s/step (%.0f tokens per CPU-s), fp8 %.2f"
           " CPU-s/step (%.0f tokens per CPU-s): %.2fx the CPU time; wall time fp32 %.2f s/step, fp8 %.2f s/step\n"
           "(goal: fp8's held-out Δ under 0.25%% and within the noise floor's)\n%s\n",
           cpu[0] / steps, pos / cpu[0], cpu[1] / steps, pos / cpu[1], cpu[1] / cpu[0], sec[0] / steps, sec[1] / steps, cmd);
    sft_gap_result_free(&r);
    return 0;
}
