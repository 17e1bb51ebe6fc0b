/* test_sft.c — the SFT trainer end to end: exact resume after SIGKILL (also in the middle of
 * writing a checkpoint), the NaN guard, the loss mask, and a held-out loss that really falls.
 *
 * What carries weight:
 *   - resume: a 6-step run (two micro-batches per step, packing, shuffling, warm-up + cosine,
 *     clipping, weight decay, MTP and balance losses, router-bias updates, evaluation) is run
 *     straight through; the same run is SIGKILLed (a) after step 5, one step past its step-4
 *     checkpoint, and (b) in the middle of writing its step-4 checkpoint (the child's file-size
 *     limit fires inside train_state.bin and its handler SIGKILLs it there, so the point is
 *     exact, not timed); both are resumed with `resume: auto` and run to step 6. Every step's
 *     loss and eval_loss in run.db, the final model's safetensors and the last checkpoint's
 *     train_state.bin (moments, optimizer step, data cursor) must be bit-identical to the
 *     straight run's. A run with another seed must differ (the comparison can see a change).
 *   - NaN guard: gradients poisoned with NaN at steps 3–5 (max_nan_steps 3) abort the run with
 *     PT_ERR_NUMERIC; the step-2 checkpoint survives untouched and no checkpoint is written after
 *     a skipped step. A single poisoned step is skipped: params and moments stay as they were
 *     (the optimizer step count lags the trainer step by one) and the run finishes.
 *   - loss mask: the trainer's gradient on a prompt/completion example equals (to fp32 rounding)
 *     the gradient of the model's own NLL with targets the test builds itself from the tokenizer
 *     (completion and EOS only); with completion_only_loss false it equals the all-token
 *     reference instead and differs from the completion-only one by far more than rounding.
 *   - loss falls: a tiny model trained for 20 steps on generated arithmetic (about a second)
 *     lowers its held-out loss by more than 2 nats (7.6 → about 1.9) and below the held-out
 *     completions' unigram entropy minus 0.25 (about 4.1, computed here from token counts: no
 *     predictor that ignores context can go below it); the same run with learning rate 1e-9 (a
 *     broken optimizer) moves less than 0.1 and stays above the entropy. A flipped loss sign
 *     (break-and-verify) drove the loss up to 18.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/train_state.h"
#include "datasets/run_store.h"
#include "datasets/tasks.h"
#include "model/checkpoint.h"
#include "model/tokenizer.h"
#include "sft/sft_files.h"
#include "sft/sft_trainer.h"
#include "tests/util/check.h"
#include "tests/util/test_world.h"

/* ---- a world: a temporary folder with a tiny model (and the fixture tokenizer) ------------- */

typedef struct sft_world {
    char dir[256];
    char model[320];
    size_t n_ids;
} sft_world;

static void tiny_config(model_config *c, int vocab) {
    test_small_policy_config(c, vocab);
    c->max_position_embeddings = 256;
    c->initializer_range = 0.05;
    c->num_nextn_predict_layers = 1;
    c->posttrain_bias_update_speed = 0.01;
    c->posttrain_seq_aux_alpha = 0.01;
    c->posttrain_mtp_loss_weight = 0.3;
}

static void world_init(sft_world *w) {
    test_tmpdir(w->dir, sizeof w->dir, "sft");
    snprintf(w->model, sizeof w->model, "%s/model", w->dir);
    w->n_ids = (size_t)test_fixture_vocab_size();
    model_config c;
    tiny_config(&c, (int)w->n_ids);
    test_save_policy(w->model, &c, 11);
    model_config_free(&c);
}

static void world_free(sft_world *w) { test_rmtree(w->dir); }

static void path_in(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    cr_assert(n > 0 && (size_t)n < cap);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A config of SFT_SCHEMA from JSON text; cr_asserts that it loads. */
static void make_config(config *cfg, const char *json) {
    pt_error err = {0};
    cr_assert_eq(config_init(cfg, &SFT_SCHEMA, 1, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(config_load_string(cfg, json, "test.json", &err), PT_OK, "%s\n%s", err.msg, json);
}

static pt_status run_json(sft_result *res, const char *json, const sft_hooks *hooks, pt_error *err) {
    config cfg;
    make_config(&cfg, json);
    sft_io io = {.log = NULL, .progress = NULL, .hooks = hooks};
    pt_status st = sft_run(res, &cfg, &io, err);
    config_free(&cfg);
    return st;
}

static void expect_same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_slurp(a, &na), *y = test_slurp(b, &nb);
    cr_assert_gt(na, 0, "%s is empty", a);
    cr_assert_eq(na, nb, "%s and %s differ in size (%zu vs %zu bytes)", a, b, na, nb);
    size_t i = 0;
    while (i < na && x[i] == y[i]) i++;
    cr_assert_eq(i, na, "%s and %s differ first at byte %zu", a, b, i);
    free(x);
    free(y);
}

/* The metric's series from run_dir/run.db. */
static void read_series(run_metric_series *s, const char *run_dir, const char *name) {
    char db[1024];
    path_in(db, sizeof db, run_dir, RUN_STORE_FILE);
    run_store *rs = NULL;
    pt_error err = {0};
    cr_assert_eq(run_store_open_file(&rs, db, RUN_STORE_READ_ONLY, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(run_store_metric_series(s, rs, name, &err), PT_OK, "%s", err.msg);
    run_store_close(rs);
}

static void expect_same_series(const char *run, const char *ref, const char *name, size_t want_n) {
    run_metric_series a, b;
    read_series(&a, run, name);
    read_series(&b, ref, name);
    cr_assert_eq(b.n, want_n, "%s: the reference run logged %zu values, expected %zu", name, b.n, want_n);
    cr_assert_eq(a.n, b.n, "%s: %zu values after the resume vs %zu uninterrupted", name, a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_eq(a.steps[i], b.steps[i]);
        cr_assert(memcmp(&a.values[i], &b.values[i], sizeof(double)) == 0,
                  "%s at step %lld: %.17g after the kill and resume, %.17g uninterrupted", name,
                  (long long)a.steps[i], a.values[i], b.values[i]);
    }
    run_metric_series_free(&a);
    run_metric_series_free(&b);
}

/* ---- resume after SIGKILL ------------------------------------------------------------------ */

enum { RESUME_STEPS = 6 };

static void resume_json(char *out, size_t cap, const sft_world *w, const char *run, int seed) {
    char data[1024];
    fixture_path(data, sizeof data, "datasets/sft_small.jsonl");
    int n = snprintf(out, cap,
                     "{\"model\": \"%s\", \"data\": \"%s\", \"eval_data\": \"%s\", \"out\": \"%s/%s\","
                     " \"resume\": \"auto\", \"max_steps\": %d, \"per_device_train_batch_size\": 2,"
                     " \"max_length\": 48, \"packing\": true, \"gradient_accumulation_steps\": 2,"
                     " \"learning_rate\": 0.01, \"lr_scheduler_type\": \"cosine\", \"warmup_steps\": 2,"
                     " \"min_lr_ratio\": 0.1, \"weight_decay\": 0.1, \"max_grad_norm\": 0.5, \"seed\": %d,"
                     " \"eval_steps\": 3, \"save_steps\": 2, \"save_total_limit\": 0}",
                     w->model, data, data, w->dir, run, RESUME_STEPS, seed);
    cr_assert(n > 0 && (size_t)n < cap);
}

/* after_step hook of child (a): tell the parent step 5 is done, then wait for the kill. */
typedef struct kill_ctx {
    int fd;
    int64_t at;
} kill_ctx;

static void signal_and_wait(void *ctx, int64_t step) {
    kill_ctx *k = ctx;
    if (step != k->at) return;
    char c = 'k';
    if (write(k->fd, &c, 1) != 1) _exit(3);
    for (;;) pause();
}

/* before_save hook of child (b): at step `at`, files may grow only to `limit` bytes; going past
 * it raises SIGXFSZ inside the write, whose handler SIGKILLs the process on the spot. */
static void sigkill_self(int sig) {
    (void)sig;
    kill(getpid(), SIGKILL);
}

typedef struct fsize_ctx {
    int64_t at;
    long limit;
} fsize_ctx;

static void limit_file_size(void *ctx, int64_t step) {
    fsize_ctx *f = ctx;
    if (step != f->at) return;
    signal(SIGXFSZ, sigkill_self);
    struct rlimit lim;
    getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = (rlim_t)f->limit;
    setrlimit(RLIMIT_FSIZE, &lim);
}

/* Runs the config in a child that is expected to die by SIGKILL. */
static pid_t spawn_run(const char *json, const sft_hooks *hooks) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        config cfg;
        pt_error err = {0};
        if (config_init(&cfg, &SFT_SCHEMA, 1, &err) != PT_OK || config_load_string(&cfg, json, "child", &err) != PT_OK)
            _exit(4);
        sft_io io = {.log = NULL, .progress = NULL, .hooks = hooks};
        sft_result res;
        pt_status st = sft_run(&res, &cfg, &io, &err);
        if (st != PT_OK) fprintf(stderr, "child run failed: %s\n", err.msg);
        _exit(st == PT_OK ? 0 : 5);
    }
    return pid;
}

static void expect_sigkilled(pid_t pid, const char *what) {
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s: the child should die by SIGKILL (status %#x)",
              what, status);
}

static void expect_same_run(const char *run, const char *ref) {
    expect_same_series(run, ref, "loss", RESUME_STEPS);
    expect_same_series(run, ref, "mtp_loss", RESUME_STEPS);
    expect_same_series(run, ref, "grad_norm", RESUME_STEPS);
    expect_same_series(run, ref, "eval_loss", 3); /* steps 0, 3 and 6 */
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/final/model.safetensors", run);
    snprintf(b, sizeof b, "%s/final/model.safetensors", ref);
    expect_same_file(a, b);
    snprintf(a, sizeof a, "%s/checkpoints/step-%d/" TRAIN_STATE_FILE, run, RESUME_STEPS);
    snprintf(b, sizeof b, "%s/checkpoints/step-%d/" TRAIN_STATE_FILE, ref, RESUME_STEPS);
    expect_same_file(a, b);
}

Test(sft, resume_after_sigkill_is_bit_identical, .timeout = 60) {
    sft_world w;
    world_init(&w);
    char json[4096], ref[512], run_a[512], run_b[512];
    snprintf(ref, sizeof ref, "%s/straight", w.dir);
    snprintf(run_a, sizeof run_a, "%s/killed-after-step", w.dir);
    snprintf(run_b, sizeof run_b, "%s/killed-in-save", w.dir);

    /* (a) killed after step 5 (its newest checkpoint is step-4). Children run first, before this
     * process has started any OpenMP threads. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    kill_ctx kc = {fds[1], 5};
    sft_hooks ha = {.ctx = &kc, .after_step = signal_and_wait};
    resume_json(json, sizeof json, &w, "killed-after-step", 7);
    pid_t pid = spawn_run(json, &ha);
    char c;
    cr_assert_eq(read(fds[0], &c, 1), 1, "child (a) never reached step 5");
    kill(pid, SIGKILL);
    expect_sigkilled(pid, "after step 5");
    close(fds[0]);
    close(fds[1]);
    char p[1024];
    snprintf(p, sizeof p, "%s/checkpoints/step-4", run_a);
    cr_assert(exists(p), "child (a) should have written step-4 before it was killed");

    /* (b) killed while writing step-4: the limit lets model.safetensors through (it has the size
     * of the starting model's) and stops train_state.bin (twice as large: the moments) part-way. */
    path_in(p, sizeof p, w.model, "model.safetensors");
    resume_json(json, sizeof json, &w, "killed-in-save", 7);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0, "%s: %s", p, strerror(errno));
    fsize_ctx fc = {4, (long)sb.st_size + 4096};
    sft_hooks hb = {.ctx = &fc, .before_save = limit_file_size};
    pid = spawn_run(json, &hb);
    expect_sigkilled(pid, "while saving step 4");
    char tmp[1024], done[1024];
    snprintf(tmp, sizeof tmp, "%s/checkpoints/step-4.tmp/" TRAIN_STATE_FILE, run_b);
    snprintf(done, sizeof done, "%s/checkpoints/step-4", run_b);
    cr_assert(exists(tmp) && !exists(done), "the kill should land inside the step-4 save (a partial "
              "train_state.bin in step-4.tmp and no step-4)");

    /* The uninterrupted run, then both resumes, all in this process. */
    sft_result res;
    pt_error err = {0};
    resume_json(json, sizeof json, &w, "straight", 7);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 0);
    cr_assert_eq(res.end_step, RESUME_STEPS);
    cr_assert(res.eval_loss_end < res.eval_loss_start, "eval loss %g → %g", res.eval_loss_start, res.eval_loss_end);

    resume_json(json, sizeof json, &w, "killed-after-step", 7);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 4, "(a) resumes from its newest checkpoint");
    expect_same_run(run_a, ref);

    resume_json(json, sizeof json, &w, "killed-in-save", 7);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.start_step, 2, "(b) resumes from step-2, passing over the half-written step-4.tmp");
    cr_assert(!exists(tmp), "the redone save of step 4 replaces the leftover");
    expect_same_run(run_b, ref);

    /* The comparison can fail: another seed (another data order) gives other losses. */
    resume_json(json, sizeof json, &w, "other-seed", 8);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    run_metric_series x, y;
    read_series(&x, ref, "loss");
    snprintf(p, sizeof p, "%s/other-seed", w.dir);
    read_series(&y, p, "loss");
    cr_assert(x.n == y.n && memcmp(x.values, y.values, x.n * sizeof(double)) != 0,
              "a run with another data order must not reproduce the losses");
    run_metric_series_free(&x);
    run_metric_series_free(&y);
    world_free(&w);
}

/* ---- NaN guard ----------------------------------------------------------------------------- */

typedef struct poison_ctx {
    int64_t from, to; /* steps whose gradients become NaN */
} poison_ctx;

static void poison_grads(void *ctx, int64_t step, policy_model *m) {
    const poison_ctx *p = ctx;
    if (step >= p->from && step <= p->to) m->grads[m->layout.total / 2] = NAN;
}

static void nan_json(char *out, size_t cap, const sft_world *w, const char *run, int max_steps) {
    char data[1024];
    fixture_path(data, sizeof data, "datasets/sft_small.jsonl");
    int n = snprintf(out, cap,
                     "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s/%s\", \"max_steps\": %d,"
                     " \"per_device_train_batch_size\": 2, \"max_length\": 48, \"learning_rate\": 0.01,"
                     " \"save_steps\": 2, \"max_nan_steps\": 3}",
                     w->model, data, w->dir, run, max_steps);
    cr_assert(n > 0 && (size_t)n < cap);
}

Test(sft, nan_steps_are_skipped_then_abort, .timeout = 30) {
    sft_world w;
    world_init(&w);
    char json[4096], dir[1024], p[1200];
    sft_result res;
    pt_error err = {0};

    /* Three poisoned steps in a row (3, 4, 5) with max_nan_steps 3: abort at step 5. */
    poison_ctx pc = {3, 5};
    sft_hooks h = {.ctx = &pc, .after_backward = poison_grads};
    nan_json(json, sizeof json, &w, "abort", 8);
    cr_assert_eq(run_json(&res, json, &h, &err), PT_ERR_NUMERIC, "three NaN steps in a row must abort: %s", err.msg);
    cr_assert(strstr(err.msg, "step-2") && strstr(err.msg, "3"), "the message names the count and the checkpoint: %s",
              err.msg);
    snprintf(dir, sizeof dir, "%s/abort", w.dir);
    ckpt_scan scan;
    cr_assert_eq(train_state_find_latest(&scan, dir, &err), PT_OK, "%s", err.msg);
    cr_assert(scan.found && scan.step == 2 && scan.n_skipped == 0,
              "step-2 must be the newest checkpoint (no save after a skipped step), found %lld", (long long)scan.step);
    ckpt_scan_free(&scan);
    snprintf(p, sizeof p, "%s/final", dir);
    cr_assert(!exists(p), "an aborted run writes no final model");
    run_metric_series s;
    read_series(&s, dir, "nan_skipped");
    cr_assert_eq(s.n, 5, "steps 1..5 are in run.db");
    for (size_t i = 0; i < s.n; i++)
        cr_assert_eq(s.values[i], s.steps[i] >= 3 ? 1.0 : 0.0, "step %lld", (long long)s.steps[i]);
    run_metric_series_free(&s);

    /* One poisoned step: skipped, the run finishes; the optimizer took one update fewer. */
    pc = (poison_ctx){3, 3};
    nan_json(json, sizeof json, &w, "one", 4);
    cr_assert_eq(run_json(&res, json, &h, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(res.skipped_steps, 1);
    snprintf(dir, sizeof dir, "%s/one/checkpoints/step-4", w.dir);
    policy_model m;
    optim o;
    train_progress tp;
    optim_config oc = optim_config_default();
    cr_assert_eq(train_state_load(&m, &o, &tp, dir, &oc, 0, true, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(tp.step, 4);
    cr_assert_eq(o.step, 3, "the skipped step must not count as an update");
    cr_assert_eq(first_nonfinite(m.params, m.layout.total), -1, "the weights stay finite");
    train_progress_free(&tp);
    optim_free(&o);
    model_free(&m);
    world_free(&w);
}

/* ---- the loss mask ------------------------------------------------------------------------- */

typedef struct grab_ctx {
    float *grads;
    size_t n;
} grab_ctx;

static void grab_grads(void *ctx, int64_t step, policy_model *m) {
    (void)step;
    grab_ctx *g = ctx;
    memcpy(g->grads, m->grads, g->n * sizeof(float));
}

/* The trainer's gradient for one step over `data` (one example, B = 1, T = its length). */
static void trainer_grads(float *out, int32_t *targets_out, const sft_world *w, const char *data, int T,
                          bool completion_only) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"/nonexistent\", \"max_steps\": 1,"
             " \"per_device_train_batch_size\": 1, \"max_length\": %d, \"completion_only_loss\": %s}",
             w->model, data, T, completion_only ? "true" : "false");
    config cfg;
    make_config(&cfg, json);
    sft_options o;
    pt_error err = {0};
    cr_assert_eq(sft_options_from_config(&o, &cfg, &err), PT_OK, "%s", err.msg);
    tokenizer *tok = NULL;
    dataset *ds = NULL;
    cr_assert_eq(tokenizer_load(&tok, w->model, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(dataset_open_jsonl(&ds, data, tok, &o.data, &err), PT_OK, "%s", err.msg);
    policy_model m;
    optim opt;
    cr_assert_eq(model_load(&m, w->model, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(optim_init(&opt, &m.layout, &o.optim, &err), PT_OK, "%s", err.msg);
    lr_schedule s = o.sched;
    s.total_steps = 1;
    sft_trainer t;
    cr_assert_eq(sft_trainer_init(&t, &o, &m, &opt, &s, ds, NULL, 0, &err), PT_OK, "%s", err.msg);
    grab_ctx g = {out, m.layout.total};
    sft_hooks h = {.ctx = &g, .after_backward = grab_grads};
    sft_step_stats st;
    cr_assert_eq(sft_trainer_step(&st, &t, &h, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(t.micro[0].B, 1);
    for (int i = 0; i < T; i++) targets_out[i] = t.micro[0].targets[i];
    sft_trainer_free(&t);
    optim_free(&opt);
    model_free(&m);
    dataset_free(ds);
    tokenizer_free(tok);
    config_free(&cfg);
}

/* The model's own gradient of the mean NLL over `targets` (+ MTP and balance losses, weight 1). */
static void reference_grads(float *out, const sft_world *w, const int *ids, const int *targets, int T) {
    policy_model m;
    model_acts a;
    pt_error err = {0};
    cr_assert_eq(model_load(&m, w->model, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(model_acts_init(&a, &m, 1, T, &err), PT_OK, "%s", err.msg);
    model_batch b = {ids, targets, NULL, NULL, 1, T, 1.0f, false};
    cr_assert_eq(model_forward(&m, &a, &b, &err), PT_OK, "%s", err.msg);
    float *dlogp = malloc((size_t)T * sizeof *dlogp);
    double loss;
    cr_assert_gt(model_mean_nll(&a, dlogp, &loss), 0);
    model_zero_grads(&m);
    model_backward(&m, &a, dlogp, NULL, 1.0f);
    memcpy(out, m.grads, m.layout.total * sizeof(float));
    free(dlogp);
    model_acts_free(&a);
    model_free(&m);
}

Test(sft, prompt_tokens_get_no_loss, .timeout = 30) {
    sft_world w;
    world_init(&w);
    const char *prompt = "Reverse the word stressed.", *completion = " The word stressed reversed is desserts.";
    char data[600];
    path_in(data, sizeof data, w.dir, "one.jsonl");
    FILE *f = fopen(data, "w");
    cr_assert(f);
    fprintf(f, "{\"prompt\": \"%s\", \"completion\": \"%s\"}\n", prompt, completion);
    fclose(f);

    /* The sequence the test expects: BOS + prompt, then completion + EOS, tokenised here. */
    tokenizer *tok = NULL;
    pt_error err = {0};
    cr_assert_eq(tokenizer_load(&tok, w.model, &err), PT_OK, "%s", err.msg);
    tok_ids p = {0}, c = {0};
    cr_assert_eq(tokenizer_encode(&p, tok, prompt, strlen(prompt), TOK_ADD_SPECIAL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(tokenizer_encode(&c, tok, completion, strlen(completion), 0, &err), PT_OK, "%s", err.msg);
    const int np = (int)p.n, T = (int)(p.n + c.n + 1);
    cr_assert(np >= 4 && c.n >= 4, "the example needs a few tokens on each side");
    int *ids = malloc((size_t)T * sizeof *ids), *only = malloc((size_t)T * sizeof *only),
        *all = malloc((size_t)T * sizeof *all);
    int32_t *got = malloc((size_t)T * sizeof *got);
    for (int i = 0; i < np; i++) ids[i] = p.ids[i];
    for (size_t i = 0; i < c.n; i++) ids[np + (int)i] = c.ids[i];
    ids[T - 1] = tokenizer_eos_id(tok);
    for (int i = 0; i < T; i++) {
        all[i] = i + 1 < T ? ids[i + 1] : -1;
        only[i] = i + 1 < T && i + 1 >= np ? ids[i + 1] : -1; /* predicts a completion token or EOS */
    }

    policy_model probe;
    cr_assert_eq(model_load(&probe, w.model, NULL, &err), PT_OK, "%s", err.msg);
    const size_t total = probe.layout.total;
    model_free(&probe);
    float *g_train = malloc(total * sizeof(float)), *g_only = malloc(total * sizeof(float)),
          *g_all = malloc(total * sizeof(float));
    reference_grads(g_only, &w, ids, only, T);
    reference_grads(g_all, &w, ids, all, T);

    /* completion_only_loss: the loader's targets are exactly the completion's, and so is the
     * gradient. */
    trainer_grads(g_train, got, &w, data, T, true);
    for (int i = 0; i < T; i++) cr_assert_eq(got[i], only[i], "target of position %d (prompt has %d tokens)", i, np);
    double worst = 0;
    long bad = compare_close(g_train, g_only, total, 1e-6, 1e-4, &worst);
    cr_assert_eq(bad, -1, "completion-only gradient differs from the reference at %ld (ratio %g)", bad, worst);
    bad = compare_close(g_train, g_all, total, 1e-6, 1e-4, &worst);
    cr_assert(bad >= 0 && worst > 100, "the all-token gradient must differ clearly (worst ratio %g)", worst);

    /* completion_only_loss false: every next token is a target. */
    trainer_grads(g_train, got, &w, data, T, false);
    for (int i = 0; i < T; i++) cr_assert_eq(got[i], all[i], "target of position %d", i);
    bad = compare_close(g_train, g_all, total, 1e-6, 1e-4, &worst);
    cr_assert_eq(bad, -1, "all-token gradient differs from the reference at %ld (ratio %g)", bad, worst);

    free(g_train);
    free(g_only);
    free(g_all);
    free(ids);
    free(only);
    free(all);
    free(got);
    tok_ids_free(&p);
    tok_ids_free(&c);
    tokenizer_free(tok);
    world_free(&w);
}

/* ---- the held-out loss falls --------------------------------------------------------------- */

/* Entropy (nats) of the completion tokens (and EOS) of a prompt/completion JSONL file: the
 * lowest loss a predictor that ignores context can reach on those targets. */
static double completion_unigram_entropy(const char *path, tokenizer *tok) {
    dataset_options o;
    dataset_options_default(&o);
    o.max_length = 0;
    dataset *ds = NULL;
    pt_error err = {0};
    cr_assert_eq(dataset_open_jsonl(&ds, path, tok, &o, &err), PT_OK, "%s", err.msg);
    size_t V = tokenizer_n_ids(tok);
    double *count = calloc(V, sizeof *count), total = 0;
    dataset_example ex = {0};
    for (size_t i = 0; i < dataset_size(ds); i++) {
        cr_assert_eq(dataset_get(&ex, ds, i, &err), PT_OK, "%s", err.msg);
        for (size_t t = 1; t < ex.seq.n; t++)
            if (ex.seq.loss[t]) {
                count[ex.seq.ids[t]] += 1;
                total += 1;
            }
    }
    dataset_example_free(&ex);
    double h = 0;
    for (size_t v = 0; v < V; v++)
        if (count[v] > 0) h -= count[v] / total * log(count[v] / total);
    free(count);
    dataset_free(ds);
    return h;
}

static void learn_json(char *out, size_t cap, const sft_world *w, const char *run, double lr) {
    int n = snprintf(out, cap,
                     "{\"model\": \"%s\", \"data\": \"%s/train.jsonl\", \"eval_data\": \"%s/eval.jsonl\","
                     " \"out\": \"%s/%s\", \"max_steps\": 20, \"per_device_train_batch_size\": 4,"
                     " \"max_length\": 160, \"packing\": true, \"learning_rate\": %g,"
                     " \"lr_scheduler_type\": \"cosine\", \"warmup_steps\": 4, \"save_steps\": 0}",
                     w->model, w->dir, w->dir, w->dir, run, lr);
    cr_assert(n > 0 && (size_t)n < cap);
}

Test(sft, held_out_loss_falls, .timeout = 60) {
    sft_world w;
    world_init(&w);
    char train[600], eval[600], json[4096];
    path_in(train, sizeof train, w.dir, "train.jsonl");
    path_in(eval, sizeof eval, w.dir, "eval.jsonl");
    task_make_opts to = {.kind = TASK_ARITHMETIC, .seed = 5, .difficulty = 1, .n = 400, .eval_n = 24};
    pt_error err = {0};
    cr_assert_eq(task_write_jsonl(&to, train, eval, &err), PT_OK, "%s", err.msg);
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, w.model, &err), PT_OK, "%s", err.msg);
    const double h1 = completion_unigram_entropy(eval, tok);
    tokenizer_free(tok);

    sft_result res;
    learn_json(json, sizeof json, &w, "learn", 2e-2);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    const double before = res.eval_loss_start, after = res.eval_loss_end;
    cr_log_info("held-out loss %.3f → %.3f after 20 steps; unigram entropy of the completions %.3f", before, after, h1);
    cr_assert(before - after > 2.0, "held-out loss must fall by more than 2 nats: %.3f → %.3f", before, after);
    cr_assert(after < h1 - 0.25, "held-out loss %.3f must beat the completions' unigram entropy %.3f", after, h1);

    /* A broken optimizer (no effective update) misses both. */
    learn_json(json, sizeof json, &w, "frozen", 1e-9);
    cr_assert_eq(run_json(&res, json, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert(res.eval_loss_start - res.eval_loss_end < 0.1, "with lr 1e-9 the loss barely moves: %.3f → %.3f",
              res.eval_loss_start, res.eval_loss_end);
    cr_assert(res.eval_loss_end > h1, "an untrained model cannot beat the unigram entropy");
    world_free(&w);
}
