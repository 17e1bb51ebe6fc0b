/* sft_fp8_gap.c — see sft_fp8_gap.h. */
#include "sft/sft_fp8_gap.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/optim.h"
#include "model/dtype.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "sft/sft_bench.h"
#include "sft/sft_config.h"
#include "sft/sft_trainer.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* One training run of o->steps steps in precision `prec`, losses into loss[]; bf16_init rounds the
 * initial weights to bf16 first (the noise-floor run). */
static pt_status run_one(double *loss, double *seconds, const model_config *mc, const sft_gap_options *o,
                         const char *data, const char *dir, tokenizer *tok, const char *prec, bool bf16_init,
                         pt_error *err) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s\", \"max_steps\": %d,"
             " \"per_device_train_batch_size\": %d, \"max_length\": %d, \"packing\": true, \"seed\": 1,"
             " \"learning_rate\": %.17g, \"lr_scheduler_type\": \"cosine\", \"min_lr_ratio\": 0.1,"
             " \"warmup_steps\": %d, \"max_grad_norm\": 1.0, \"weight_decay\": 0.01, \"adam_beta1\": 0.9,"
             " \"adam_beta2\": 0.95, \"precision\": \"%s\"}",
             dir, data, dir, o->steps, o->B, o->T, o->lr > 0 ? o->lr : 3e-3, o->steps >= 100 ? 20 : o->steps / 5, prec);
    config cfg;
    sft_options so;
    dataset *ds = NULL;
    policy_model m;
    optim opt;
    sft_trainer t;
    bool have_cfg = false, have_model = false, have_opt = false, have_trainer = false;
    pt_status st = config_init(&cfg, &SFT_SCHEMA, 1, err);
    if (st == PT_OK) have_cfg = true, st = config_load_string(&cfg, json, "fp8 gap", err);
    if (st == PT_OK) st = sft_options_from_config(&so, &cfg, err);
    if (st == PT_OK) st = dataset_open_jsonl(&ds, data, tok, &so.data, err);
    if (st == PT_OK && (st = model_init(&m, mc, 1, err)) == PT_OK) have_model = true;
    if (have_model && bf16_init)
        for (size_t i = 0; i < m.layout.total; i++) m.params[i] = dtype_bf16_to_f32(dtype_f32_to_bf16(m.params[i]));
    if (st == PT_OK && (st = optim_init(&opt, &m.layout, &so.optim, err)) == PT_OK) have_opt = true;
    lr_schedule sched = so.sched;
    sched.total_steps = o->steps;
    if (st == PT_OK && (st = sft_trainer_init(&t, &so, &m, &opt, &sched, ds, NULL, 0, err)) == PT_OK)
        have_trainer = true;
    double t0 = now_seconds();
    for (int i = 0; st == PT_OK && i < o->steps; i++) {
        sft_step_stats s;
        st = sft_trainer_step(&s, &t, NULL, err);
        if (st == PT_OK) loss[i] = s.loss;
    }
    *seconds = now_seconds() - t0;
    if (have_trainer) sft_trainer_free(&t);
    if (have_opt) optim_free(&opt);
    if (have_model) model_free(&m);
    dataset_free(ds);
    if (have_cfg) config_free(&cfg);
    if (st != PT_OK) error_prefix(err, "%s run", prec);
    return st;
}

/* Tail statistics of run k against the fp32 run (see the header). */
static void tail_stats(sft_gap_result *r, int k) {
    int tail = r->steps / 5 > 0 ? r->steps / 5 : 1, used = 0;
    double rel = 0, m32 = 0, mk = 0;
    for (int i = r->steps - tail; i < r->steps; i++) {
        if (!isfinite(r->loss[0][i]) || !isfinite(r->loss[k][i])) continue; /* a step without targets */
        rel += fabs(r->loss[k][i] - r->loss[0][i]) / r->loss[0][i];
        m32 += r->loss[0][i];
        mk += r->loss[k][i];
        used++;
    }
    r->tail_rel_err[k] = used ? rel / used : NAN;
    r->tail_mean[0] = used ? m32 / used : NAN;
    r->tail_mean[k] = used ? mk / used : NAN;
    r->tail_mean_rel_err[k] = used ? fabs(mk - m32) / m32 : NAN;
}

pt_status sft_fp8_gap(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, pt_error *err) {
    memset(r, 0, sizeof *r);
    PT_CHECK(o->steps >= 5 && o->steps <= 100000, err, PT_ERR_INVALID, "steps must be in 5..100000, got %d", o->steps);
    PT_CHECK(o->B >= 1 && o->T >= 2, err, PT_ERR_INVALID, "B must be >= 1 and T >= 2, got %d and %d", o->B, o->T);
    const int nruns = o->noise_floor ? 3 : 2;
    r->steps = o->steps;
    for (int k = 0; k < nruns; k++) {
        r->loss[k] = calloc((size_t)o->steps, sizeof(double));
        if (!r->loss[k]) {
            sft_gap_result_free(r);
            PT_FAIL(err, PT_ERR_NOMEM, "out of memory for %d steps of losses", o->steps);
        }
    }
    char dir[] = "/tmp/pt-fp8-gap-XXXXXX";
    if (!mkdtemp(dir)) {
        sft_gap_result_free(r);
        PT_FAIL(err, PT_ERR_IO, "cannot create a temporary folder under /tmp");
    }
    char data[128];
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    tokenizer *tok = NULL;
    pt_status st = sft_bench_make_data(&tok, data, (size_t)mc->vocab_size, err);
    if (st == PT_OK) st = run_one(r->loss[0], &r->seconds[0], mc, o, data, dir, tok, "fp32", false, err);
    if (st == PT_OK) st = run_one(r->loss[1], &r->seconds[1], mc, o, data, dir, tok, "fp8", false, err);
    if (st == PT_OK && o->noise_floor)
        st = run_one(r->loss[2], &r->seconds[2], mc, o, data, dir, tok, "fp32", true, err);
    tokenizer_free(tok);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (st != PT_OK) {
        sft_gap_result_free(r);
        return error_prefix(err, "fp8 gap");
    }
    for (int k = 1; k < nruns; k++) tail_stats(r, k);
    return PT_OK;
}

void sft_gap_result_free(sft_gap_result *r) {
    for (int k = 0; k < 3; k++) {
        free(r->loss[k]);
        r->loss[k] = NULL;
    }
}
