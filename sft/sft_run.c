/* sft_run.c — a whole SFT run: checks, run folder, step loop, metrics, evaluation, checkpoints,
 * resume and the final model folder (the order and the guarantees are in sft_trainer.h).
 *
 * The run is two phases. prepare() opens and checks everything and allocates everything, and
 * writes nothing; execute() is the only code that touches the run folder. A failure in prepare()
 * therefore leaves the file system as it was; a failure in execute() before the first step is
 * committed removes what execute() created (the run folder when it made it, else the new run.db). */
#include "sft/sft_trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/progress.h"
#include "core/train_state.h"
#include "datasets/dataset.h"
#include "datasets/run_store.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "sft/model_export.h"
#include "sft/run_dir.h"
#include "sft/sft_files.h"

#define RUN_PATH 4096

typedef struct sft_ctx {
    sft_options o;
    const sft_io *io;
    tokenizer *tok;
    dataset *train, *eval;
    policy_model m;
    bool have_model;
    optim opt;
    bool have_optim;
    dataset_cursor cursor;
    bool have_cursor;
    int64_t start_step;
    char ckpt_dir[RUN_PATH];  /* resumed from ("" for a fresh start) */
    char last_ckpt[RUN_PATH]; /* newest checkpoint of this run known to be complete */
    lr_schedule sched;
    int64_t total;
    sft_trainer tr;
    bool have_trainer;
    model_acts eval_acts;
    bool have_eval_acts;
    run_dir dir;              /* the --out folder: what was there, what this run made */
    run_store *rs;
} sft_ctx;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void say(const sft_ctx *c, log_level level, const char *fmt, ...) PT_PRINTF(3, 4);
static void say(const sft_ctx *c, log_level level, const char *fmt, ...) {
    if (!c->io || !c->io->log) return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(c->io->log, level, fmt, ap);
    va_end(ap);
}

/* ---- prepare: check and open everything, write nothing ------------------------------------- */

static pt_status open_data(dataset **ds, sft_ctx *c, const char *path, const char *key, pt_error *err) {
    if (!sft_path_exists(path)) PT_FAIL(err, PT_ERR_IO, "--%s '%s' does not exist", key, path);
    if (dataset_open_jsonl(ds, path, c->tok, &c->o.data, err) != PT_OK) return error_prefix(err, "--%s", key);
    dataset_format f = dataset_get_format(*ds);
    if (f == DATASET_FORMAT_PROMPT || f == DATASET_FORMAT_PREFERENCE)
        PT_FAIL(err, PT_ERR_CONFIG,
                "--%s '%s' holds %s records: SFT needs {\"text\"}, {\"prompt\",\"completion\"} or {\"messages\"}", key,
                path, dataset_format_name(f));
    if (dataset_size(*ds) == 0) PT_FAIL(err, PT_ERR_CONFIG, "--%s '%s' holds no usable example", key, path);
    if (c->o.data.assistant_only_loss && f != DATASET_FORMAT_MESSAGES)
        PT_FAIL(err, PT_ERR_CONFIG, "assistant_only_loss needs {\"messages\"} data, but --%s '%s' is %s", key, path,
                dataset_format_name(f));
    return PT_OK;
}

static pt_status load_model(sft_ctx *c, pt_error *err) {
    if (c->ckpt_dir[0]) {
        train_progress p;
        PT_TRY(train_state_load(&c->m, &c->opt, &p, c->ckpt_dir, &c->o.optim, c->o.config_hash,
                                c->o.allow_config_change, err));
        c->have_model = c->have_optim = true;
        c->start_step = p.step;
        pt_status st = dataset_cursor_decode(&c->cursor, p.cursor, p.cursor_bytes, err);
        train_progress_free(&p);
        if (st != PT_OK) return error_prefix(err, "the data cursor of checkpoint '%s'", c->ckpt_dir);
        c->have_cursor = true;
        snprintf(c->last_ckpt, sizeof c->last_ckpt, "%s", c->ckpt_dir);
        return PT_OK;
    }
    model_load_info info;
    if (model_load(&c->m, c->o.model_dir, &info, err) != PT_OK) return error_prefix(err, "--model '%s'", c->o.model_dir);
    c->have_model = true;
    if (info.nonfinite)
        PT_FAIL(err, PT_ERR_NUMERIC, "--model '%s' holds NaN/Inf values in %d tensor(s): %s", c->o.model_dir,
                info.nonfinite, info.nonfinite_names);
    PT_TRY(optim_init(&c->opt, &c->m.layout, &c->o.optim, err));
    c->have_optim = true;
    return PT_OK;
}

/* The model, tokenizer and data must fit each other. */
static pt_status check_fit(sft_ctx *c, const config *cfg, pt_error *err) {
    const model_config *mc = &c->m.cfg;
    size_t n_ids = tokenizer_n_ids(c->tok);
    if (n_ids > (size_t)mc->vocab_size)
        PT_FAIL(err, PT_ERR_CONFIG,
                "the tokenizer '%s' has %zu ids but the model's vocab_size is %d (ids ≥ %d have no embedding row): "
                "initialise the model for this tokenizer (posttrain init --tokenizer DIR)",
                c->o.tokenizer_path, n_ids, mc->vocab_size, mc->vocab_size);
    if (c->o.loader.T > mc->max_position_embeddings)
        PT_FAIL(err, PT_ERR_CONFIG, "key 'max_length' (from %s): %d is more than the model's max_position_embeddings %d",
                config_origin(cfg, "max_length"), c->o.loader.T, mc->max_position_embeddings);
    int32_t eos = tokenizer_eos_id(c->tok);
    if (eos >= 0 && mc->n_eos_token_ids > 0) {
        bool found = false;
        for (int i = 0; i < mc->n_eos_token_ids; i++) found |= mc->eos_token_ids[i] == eos;
        if (!found)
            say(c, LOG_LEVEL_WARN, "the tokenizer's EOS id %d is not the model config's eos_token_id %d: generation "
                "will not stop where training put EOS", (int)eos, mc->eos_token_ids[0]);
    }
    return PT_OK;
}

static pt_status plan(sft_ctx *c, const config *cfg, pt_error *err) {
    c->total = sft_plan_steps(&c->o, c->train);
    c->sched = c->o.sched;
    c->sched.total_steps = c->total;
    if (c->sched.warmup_steps == 0 && c->o.warmup_ratio > 0)
        c->sched.warmup_steps = (int64_t)ceil(c->o.warmup_ratio * (double)c->total);
    if (c->sched.type != LR_SCHEDULE_CONSTANT && c->sched.warmup_steps > c->total)
        PT_FAIL(err, PT_ERR_CONFIG, "key 'warmup_steps' (from %s): %lld warm-up steps are more than the run's %lld steps",
                config_origin(cfg, "warmup_steps"), (long long)c->sched.warmup_steps, (long long)c->total);
    return lr_schedule_validate(&c->sched, err);
}

static pt_status prepare(sft_ctx *c, const config *cfg, pt_error *err) {
    if (!sft_is_dir(c->o.model_dir))
        PT_FAIL(err, PT_ERR_IO, "--model '%s' is not a folder (it should hold config.json, model.safetensors and "
                "tokenizer.json: a `posttrain init` or `posttrain sft` output)", c->o.model_dir);
    PT_TRY(run_dir_check(&c->dir, c->o.out_dir, err));
    PT_TRY(run_dir_resolve_resume(c->ckpt_dir, sizeof c->ckpt_dir, &c->dir, c->o.resume, c->io ? c->io->log : NULL, err));
    if (tokenizer_load(&c->tok, c->o.tokenizer_path, err) != PT_OK)
        return error_prefix(err, "%s '%s'", c->o.tokenizer_path == c->o.model_dir ? "--model" : "--tokenizer",
                            c->o.tokenizer_path);
    PT_TRY(open_data(&c->train, c, c->o.data_path, "data", err));
    if (c->o.eval_data_path) PT_TRY(open_data(&c->eval, c, c->o.eval_data_path, "eval-data", err));
    PT_TRY(load_model(c, err));
    PT_TRY(check_fit(c, cfg, err));
    PT_TRY(plan(c, cfg, err));
    if (sft_trainer_init(&c->tr, &c->o, &c->m, &c->opt, &c->sched, c->train, c->have_cursor ? &c->cursor : NULL,
                         c->start_step, err) != PT_OK)
        return error_prefix(err, "--data '%s'", c->o.data_path);
    c->have_trainer = true;
    if (c->eval) {
        PT_TRY(model_acts_init(&c->eval_acts, &c->m, c->o.eval_batch_size, c->o.loader.T, err));
        c->have_eval_acts = true;
    }
    return PT_OK;
}

static void ctx_free(sft_ctx *c) {
    run_store_close(c->rs);
    if (c->have_eval_acts) model_acts_free(&c->eval_acts);
    if (c->have_trainer) sft_trainer_free(&c->tr);
    if (c->have_optim) optim_free(&c->opt);
    if (c->have_model) model_free(&c->m);
    dataset_free(c->eval);
    dataset_free(c->train);
    tokenizer_free(c->tok);
}

/* ---- execute: the run folder ------------------------------------------------------------- */

static pt_status evaluate(double *loss, sft_ctx *c, pt_error *err) {
    long tokens;
    return sft_eval_loss(loss, &tokens, &c->m, &c->eval_acts, c->eval, c->o.loader.packing, err);
}

static pt_status log_step(sft_ctx *c, const sft_step_stats *s, double eval_loss, pt_error *err) {
    const char *names[] = {"loss",         "mtp_loss",   "balance_loss", "learning_rate",
                           "grad_norm",    "grad_clip_coef", "tokens",   "loss_tokens",
                           "tokens_per_second", "step_time", "epoch",    "expert_load/max_over_mean",
                           "expert_load/cv", "nan_skipped", "eval_loss"};
    const double values[] = {s->loss,
                             s->mtp_loss,
                             s->balance_loss,
                             s->lr,
                             s->grad_norm,
                             s->clip_coef,
                             (double)s->tokens,
                             (double)s->loss_tokens,
                             s->seconds > 0 ? (double)s->tokens / s->seconds : NAN,
                             s->seconds,
                             s->epoch,
                             s->expert_max_over_mean,
                             s->expert_cv,
                             s->skipped ? 1.0 : 0.0,
                             eval_loss};
    size_t n = sizeof names / sizeof names[0] - (isnan(eval_loss) ? 1 : 0);
    PT_TRY(run_store_begin_step(c->rs, s->step, err));
    pt_status st = run_store_log_metrics(c->rs, names, values, n, err);
    if (st == PT_OK) return run_store_commit_step(c->rs, err);
    pt_error ignored = {0};
    run_store_rollback_step(c->rs, &ignored);
    return st;
}

/* FNV-1a 64 of the checkpoint's manifest, as the run store's checksum of the checkpoint. */
static void manifest_checksum(char out[17], const char *dir) {
    char path[RUN_PATH];
    snprintf(out, 17, "%s", "");
    if (snprintf(path, sizeof path, "%s/%s", dir, TRAIN_STATE_MANIFEST) >= (int)sizeof path) return;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint64_t h = SFT_FNV_OFFSET;
    unsigned char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = sft_fnv1a64(h, buf, got);
    fclose(f);
    snprintf(out, 17, "%016" PRIx64, h);
}

static pt_status save_checkpoint(sft_ctx *c, int64_t step, pt_error *err) {
    unsigned char cur[DATASET_CURSOR_BYTES];
    dataset_cursor dc = data_loader_cursor(&c->tr.loader);
    dataset_cursor_encode(cur, &dc);
    train_progress p = {.step = step, .config_hash = c->o.config_hash, .rngs = NULL, .n_rngs = 0, .cursor = cur,
                        .cursor_bytes = sizeof cur};
    train_save_options so = {.keep_last = c->o.save_total_limit, .max_shard_bytes = c->o.max_shard_bytes};
    const sft_hooks *h = c->io ? c->io->hooks : NULL;
    if (h && h->before_save) h->before_save(h->ctx, step);
    char dir[RUN_PATH];
    PT_TRY(train_state_save(dir, sizeof dir, c->o.out_dir, &c->m, &c->opt, &p, &so, err));
    snprintf(c->last_ckpt, sizeof c->last_ckpt, "%s", dir);
    char sum[17];
    manifest_checksum(sum, dir);
    PT_TRY(run_store_begin_step(c->rs, step, err));
    pt_status st = run_store_log_checkpoint(c->rs, dir, sum, err);
    if (st == PT_OK) return run_store_commit_step(c->rs, err);
    pt_error ignored = {0};
    run_store_rollback_step(c->rs, &ignored);
    return st;
}

static pt_status write_final(char *final_dir, size_t cap, sft_ctx *c, pt_error *err) {
    char tmp[RUN_PATH];
    PT_TRY(sft_path_join(final_dir, cap, c->o.out_dir, "final", err));
    if (snprintf(tmp, sizeof tmp, "%s.tmp", final_dir) >= (int)sizeof tmp)
        PT_FAIL(err, PT_ERR_INVALID, "path '%s' is too long", final_dir);
    PT_TRY(sft_remove_flat_dir(tmp, err));
    pt_status st = model_save_as(&c->m, tmp, c->o.save_dtype, c->o.max_shard_bytes, err);
    if (st == PT_OK) st = sft_copy_tokenizer_files(tmp, c->o.tokenizer_path, err);
    if (st == PT_OK) st = sft_publish_dir(tmp, final_dir, err);
    if (st != PT_OK) {
        pt_error ignored = {0};
        sft_remove_flat_dir(tmp, &ignored);
        return error_prefix(err, "writing the final model '%s'", final_dir);
    }
    return PT_OK;
}

/* The eval_loss the store holds for step 0 (a resumed run's "before"). */
static double stored_start_eval(run_store *rs) {
    run_metric_series s;
    pt_error ignored = {0};
    double v = NAN;
    if (run_store_metric_series(&s, rs, "eval_loss", &ignored) != PT_OK) return v;
    if (s.n > 0 && s.steps[0] == 0) v = s.values[0];
    run_metric_series_free(&s);
    return v;
}

static void show_step(sft_ctx *c, progress *bar, const sft_step_stats *s, double eval_loss, double now) {
    progress_set_field(bar, "loss", "%.4f", s->loss);
    progress_set_field(bar, "lr", "%.2e", s->lr);
    progress_set_field(bar, "tok/s", "%.0f", s->seconds > 0 ? (double)s->tokens / s->seconds : 0.0);
    if (!isnan(eval_loss)) progress_set_field(bar, "eval", "%.4f", eval_loss);
    progress_update(bar, s->step, now);
    if (s->skipped)
        say(c, LOG_LEVEL_WARN,
            "step %lld: loss %g, grad norm %g is not finite: update skipped (%d in a row; max_nan_steps %d)",
            (long long)s->step, s->loss, s->grad_norm, c->tr.guard.consecutive, c->o.max_nan_steps);
    else if (s->step % c->o.logging_steps == 0 || s->step == c->total)
        say(c, LOG_LEVEL_INFO,
            "step %lld/%lld  loss %.4f  mtp %.4f  balance %.2e  lr %.3e  grad_norm %.3f  %.0f tok/s  epoch %.2f",
            (long long)s->step, (long long)c->total, s->loss, s->mtp_loss, s->balance_loss, s->lr, s->grad_norm,
            s->seconds > 0 ? (double)s->tokens / s->seconds : 0.0, s->epoch);
    if (!isnan(eval_loss)) say(c, LOG_LEVEL_INFO, "step %lld: eval_loss %.4f", (long long)s->step, eval_loss);
}

static pt_status train_loop(sft_result *res, sft_ctx *c, pt_error *err) {
    const sft_hooks *hooks = c->io ? c->io->hooks : NULL;
    progress bar;
    const double t0 = now_seconds();
    progress_init(&bar, c->io ? c->io->progress : NULL, "sft", c->total, t0);
    snprintf(bar.unit, sizeof bar.unit, "step");
    progress_resume(&bar, c->start_step);
    long tokens = 0;
    pt_status st = PT_OK;
    while (c->tr.step < c->total) {
        sft_step_stats s;
        st = sft_trainer_step(&s, &c->tr, hooks, err);
        if (st != PT_OK && st != PT_ERR_NUMERIC) break;
        const bool aborted = st == PT_ERR_NUMERIC;
        pt_error nan_err = {0};
        if (aborted) nan_err = *err; /* kept while the step's metrics are written */
        tokens += s.tokens;
        res->end_step = s.step;
        res->train_loss_last = s.loss;
        res->skipped_steps += s.skipped;
        const double now = now_seconds();
        const bool time_up = c->o.time_limit > 0 && now - t0 >= c->o.time_limit;
        const bool last = s.step >= c->total || time_up || aborted;
        double eval_loss = NAN;
        if (c->eval && !aborted && ((c->o.eval_steps > 0 && s.step % c->o.eval_steps == 0) || last)) {
            if ((st = evaluate(&eval_loss, c, err)) != PT_OK) break;
            res->eval_loss_end = eval_loss;
        }
        if ((st = log_step(c, &s, eval_loss, err)) != PT_OK) break;
        show_step(c, &bar, &s, eval_loss, now);
        if (aborted) {
            *err = nan_err;
            if (c->last_ckpt[0])
                error_prefix(err, "stopped at step %lld; the newest checkpoint '%s' is from a good step and is "
                             "untouched — resume from it with a lower learning_rate or cleaner data",
                             (long long)s.step, c->last_ckpt);
            else
                error_prefix(err, "stopped at step %lld before any checkpoint was written", (long long)s.step);
            st = PT_ERR_NUMERIC;
            break;
        }
        const bool save_due = (c->o.save_steps > 0 && s.step % c->o.save_steps == 0) || last;
        if (save_due && c->tr.guard.consecutive == 0) {
            if ((st = save_checkpoint(c, s.step, err)) != PT_OK) break;
            say(c, LOG_LEVEL_DEBUG, "checkpoint %s", c->last_ckpt);
        }
        if (hooks && hooks->after_step) hooks->after_step(hooks->ctx, s.step);
        if (time_up && s.step < c->total) {
            res->stopped_early = true;
            say(c, LOG_LEVEL_INFO, "time_limit %g s reached after step %lld of %lld", c->o.time_limit,
                (long long)s.step, (long long)c->total);
            break;
        }
    }
    progress_finish(&bar, now_seconds());
    res->seconds = now_seconds() - t0;
    res->tokens_per_s = res->seconds > 0 ? (double)tokens / res->seconds : 0;
    return st;
}

static pt_status execute(sft_result *res, sft_ctx *c, const config *cfg, pt_error *err) {
    pt_status st = run_dir_open_store(&c->rs, &c->dir, "sft", cfg, c->start_step, err);
    if (st != PT_OK) return st;
    if (c->eval) {
        if (c->start_step == 0) {
            st = evaluate(&res->eval_loss_start, c, err);
            if (st == PT_OK) st = run_store_begin_step(c->rs, 0, err);
            if (st == PT_OK) st = run_store_log_metric(c->rs, "eval_loss", res->eval_loss_start, err);
            if (st == PT_OK) st = run_store_commit_step(c->rs, err);
            if (st == PT_OK) say(c, LOG_LEVEL_INFO, "step 0: eval_loss %.4f (before training)", res->eval_loss_start);
        } else {
            res->eval_loss_start = stored_start_eval(c->rs);
        }
    }
    if (st != PT_OK) {
        run_store_close(c->rs);
        c->rs = NULL;
        run_dir_undo(&c->dir);
        return st;
    }
    PT_TRY(train_loop(res, c, err));
    if (c->eval && isnan(res->eval_loss_end)) PT_TRY(evaluate(&res->eval_loss_end, c, err)); /* nothing was left to train */
    PT_TRY(write_final(res->final_dir, sizeof res->final_dir, c, err));
    return PT_OK;
}

pt_status sft_run(sft_result *res, const config *cfg, const sft_io *io, pt_error *err) {
    memset(res, 0, sizeof *res);
    res->eval_loss_start = res->eval_loss_end = res->train_loss_last = NAN;
    sft_ctx *c = calloc(1, sizeof *c);
    PT_CHECK_ALLOC(c, err, sizeof *c);
    c->io = io;
    pt_status st = sft_options_from_config(&c->o, cfg, err);
    if (st == PT_OK) st = prepare(c, cfg, err);
    if (st == PT_OK) {
        res->start_step = res->end_step = c->start_step;
        res->total_steps = c->total;
        say(c, LOG_LEVEL_INFO,
            "sft: %zu training examples (%s) from %s%s%s; %lld steps of %d × %d × %d tokens; %s step %lld",
            dataset_size(c->train), dataset_format_name(dataset_get_format(c->train)), c->o.data_path,
            c->eval ? ", held-out " : "", c->eval ? c->o.eval_data_path : "", (long long)c->total,
            c->o.grad_accum, c->o.loader.B, c->o.loader.T, c->ckpt_dir[0] ? "resuming from" : "starting at",
            (long long)c->start_step);
        st = execute(res, c, cfg, err);
    }
    if (st == PT_OK && dataset_skip_stats(c->train)->total) {
        char report[2048];
        dataset_skip_report(report, sizeof report, c->train);
        say(c, LOG_LEVEL_WARN, "%s", report);
    }
    ctx_free(c);
    free(c);
    return st;
}
