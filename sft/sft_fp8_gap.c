/* sft_fp8_gap.c — see sft_fp8_gap.h. */
#include "sft/sft_fp8_gap.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/optim.h"
#include "datasets/tasks.h"
#include "model/dtype.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "sft/sft_bench.h"
#include "sft/sft_config.h"
#include "sft/sft_step.h"
#include "sft/sft_trainer.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

sft_gap_tail sft_gap_tail_of(const double *ref, const double *x, int from, int n) {
    sft_gap_tail t = {NAN, NAN, NAN, NAN, 0};
    double rel = 0, mr = 0, mx = 0;
    for (int i = from < 0 ? 0 : from; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(x[i])) continue; /* a step without targets */
        rel += fabs(x[i] - ref[i]) / ref[i];
        mr += ref[i];
        mx += x[i];
        t.points++;
    }
    if (t.points == 0) return t;
    t.mean_ref = mr / t.points;
    t.mean = mx / t.points;
    t.rel_diff = (t.mean - t.mean_ref) / t.mean_ref;
    t.mean_rel_err = rel / t.points;
    return t;
}

sft_gap_mean sft_gap_mean_of(const double *v, int n) {
    sft_gap_mean m = {NAN, NAN, 0};
    double s = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) s += v[i], m.count++;
    if (m.count == 0) return m;
    m.mean = s / m.count;
    if (m.count < 2) return m;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) ss += (v[i] - m.mean) * (v[i] - m.mean);
    m.se = sqrt(ss / (m.count - 1) / m.count);
    return m;
}

/* What every run of one process shares: the data files, the tokenizer, the held-out set. */
typedef struct gap_ctx {
    const model_config *mc;
    const sft_gap_options *o;
    const sft_gap_result *r;
    char dir[32];
    char data[128], held[128];
    tokenizer *tok;
} gap_ctx;

/* Writes each held-out line to the file (the training split is not asked for). */
static pt_status held_line(void *ctx, task_split split, const char *line, size_t len, pt_error *err) {
    FILE *f = ctx;
    if (split != TASK_SPLIT_EVAL) return PT_OK;
    if (fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF) PT_FAIL(err, PT_ERR_IO, "writing held-out data failed");
    return PT_OK;
}

/* The held-out file: o->heldout examples of the eval split, 60% arithmetic then 40% countdown. */
static pt_status make_heldout(const char *path, int n, pt_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) PT_FAIL(err, PT_ERR_IO, "cannot create '%s'", path);
    size_t na = (size_t)n * 3 / 5, nc = (size_t)n - na;
    task_make_opts ta = {.kind = TASK_ARITHMETIC, .seed = 1, .difficulty = 1, .n = 0, .eval_n = na};
    task_make_opts tc = {.kind = TASK_COUNTDOWN, .seed = 1, .difficulty = 1, .n = 0, .eval_n = nc};
    pt_status st = PT_OK;
    if (na > 0) st = task_generate(&ta, held_line, f, NULL, err);
    if (st == PT_OK && nc > 0) st = task_generate(&tc, held_line, f, NULL, err);
    if (fclose(f) != 0 && st == PT_OK) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "writing '%s'", path);
    return st;
}

/* Rows and targets of the held-out set packed greedily into rows of T. */
static pt_status count_heldout(int *rows, long *targets, dataset *ds, int T, pt_error *err) {
    data_loader_options lo = {.B = 1, .T = T, .packing = DATASET_PACK_GREEDY, .shuffle = false, .seed = 0,
                              .drop_last = false, .max_epochs = 1, .pad_id = -1};
    data_loader dl;
    data_batch b = {0};
    *rows = 0, *targets = 0;
    PT_TRY(data_loader_init(&dl, ds, &lo, NULL, err));
    pt_status st = data_batch_init(&b, 1, T, err);
    while (st == PT_OK) {
        bool done = false;
        st = data_loader_next(&b, &done, &dl, err);
        if (st != PT_OK || done) break;
        long n = 0;
        for (int i = 0; i < T; i++) n += b.targets[i] >= 0;
        if (n > 0) (*rows)++, *targets += n;
    }
    data_batch_free(&b);
    data_loader_free(&dl);
    return st;
}

/* The held-out loss of m now, into held[j] (and with fp32 GEMMs into as_fp32[j] when not NULL). */
static pt_status eval_point(double *held, double *as_fp32, policy_model *m, model_acts *a, dataset *hds,
                            pt_error *err) {
    long tokens;
    PT_TRY(sft_eval_loss(held, &tokens, m, a, hds, DATASET_PACK_GREEDY, err));
    if (!as_fp32) return PT_OK;
    const model_precision p = m->precision;
    m->precision = MODEL_PRECISION_FP32;
    pt_status st = sft_eval_loss(as_fp32, &tokens, m, a, hds, DATASET_PACK_GREEDY, err);
    m->precision = p;
    return st;
}

/* Run k (SFT_GAP_FP32, _FP8, _FLOOR) of seed s: losses into s->loss[k], held-out losses into
 * s->held[k] (and s->held[SFT_GAP_FP8_AS_FP32] for the fp8 run). */
static pt_status run_one(sft_gap_seed *s, int k, const gap_ctx *c, pt_error *err) {
    const sft_gap_options *o = c->o;
    const char *prec = k == SFT_GAP_FP8 ? "fp8" : "fp32";
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": \"%s\", \"data\": \"%s\", \"out\": \"%s\", \"max_steps\": %d,"
             " \"per_device_train_batch_size\": %d, \"max_length\": %d, \"packing\": true, \"seed\": %llu,"
             " \"learning_rate\": %.17g, \"lr_scheduler_type\": \"cosine\", \"min_lr_ratio\": 0.1,"
             " \"warmup_steps\": %d, \"max_grad_norm\": 1.0, \"weight_decay\": 0.01, \"adam_beta1\": 0.9,"
             " \"adam_beta2\": 0.95, \"precision\": \"%s\"}",
             c->dir, c->data, c->dir, o->steps, o->B, o->T, (unsigned long long)s->seed, o->lr > 0 ? o->lr : 3e-3,
             o->steps >= 100 ? 20 : o->steps / 5, prec);
    config cfg;
    sft_options so;
    dataset *ds = NULL, *hds = NULL;
    policy_model m;
    optim opt;
    sft_trainer t;
    bool have_cfg = false, have_model = false, have_opt = false, have_trainer = false;
    pt_status st = config_init(&cfg, &SFT_SCHEMA, 1, err);
    if (st == PT_OK) have_cfg = true, st = config_load_string(&cfg, json, "fp8 gap", err);
    if (st == PT_OK) st = sft_options_from_config(&so, &cfg, err);
    if (st == PT_OK) st = dataset_open_jsonl(&ds, c->data, c->tok, &so.data, err);
    if (st == PT_OK && o->heldout > 0) st = dataset_open_jsonl(&hds, c->held, c->tok, &so.data, err);
    if (st == PT_OK && (st = model_init(&m, c->mc, s->seed, err)) == PT_OK) have_model = true;
    if (have_model && k == SFT_GAP_FLOOR)
        for (size_t i = 0; i < m.layout.total; i++) m.params[i] = dtype_bf16_to_f32(dtype_f32_to_bf16(m.params[i]));
    if (st == PT_OK && (st = optim_init(&opt, &m.layout, &so.optim, err)) == PT_OK) have_opt = true;
    lr_schedule sched = so.sched;
    sched.total_steps = o->steps;
    if (st == PT_OK && (st = sft_trainer_init(&t, &so, &m, &opt, &sched, ds, NULL, 0, err)) == PT_OK)
        have_trainer = true;
    double *as32 = k == SFT_GAP_FP8 ? s->held[SFT_GAP_FP8_AS_FP32] : NULL;
    int j = 0; /* next evaluation */
    if (st == PT_OK && hds && c->r->eval_step[0] == 0)
        st = eval_point(&s->held[k][j], as32 ? &as32[j] : NULL, &m, &t.acts, hds, err), j++;
    double train_s = 0, train_cpu = 0;
    for (int i = 0; st == PT_OK && i < o->steps; i++) {
        sft_step_stats ss;
        double t0 = now_seconds(), c0 = cpu_seconds();
        st = sft_trainer_step(&ss, &t, NULL, err);
        train_s += now_seconds() - t0;
        train_cpu += cpu_seconds() - c0;
        if (st == PT_OK) s->loss[k][i] = ss.loss;
        if (st == PT_OK && hds && j < c->r->n_evals && c->r->eval_step[j] == i + 1)
            st = eval_point(&s->held[k][j], as32 ? &as32[j] : NULL, &m, &t.acts, hds, err), j++;
    }
    s->seconds[k] = train_s;
    s->cpu_seconds[k] = train_cpu;
    if (st == PT_OK && o->progress) {
        fprintf(o->progress, "fp8 gap: seed %llu, %s run: %d steps in %.0f s (%.0f s CPU), last training loss %.4f",
                (unsigned long long)s->seed, k == SFT_GAP_FLOOR ? "floor" : prec, o->steps, train_s, train_cpu, s->loss[k][o->steps - 1]);
        if (hds) fprintf(o->progress, ", held-out %.4f", s->held[k][c->r->n_evals - 1]);
        fprintf(o->progress, "\n");
        fflush(o->progress);
    }
    if (have_trainer) sft_trainer_free(&t);
    if (have_opt) optim_free(&opt);
    if (have_model) model_free(&m);
    dataset_free(hds);
    dataset_free(ds);
    if (have_cfg) config_free(&cfg);
    if (st != PT_OK) error_prefix(err, "seed %llu, %s run", (unsigned long long)s->seed, k == SFT_GAP_FLOOR ? "floor" : prec);
    return st;
}

/* Data, tokenizer and held-out set in a fresh temporary folder (c->dir). */
static pt_status ctx_open(gap_ctx *c, sft_gap_result *r, pt_error *err) {
    strcpy(c->dir, "/tmp/pt-fp8-gap-XXXXXX");
    if (!mkdtemp(c->dir)) {
        c->dir[0] = '\0';
        PT_FAIL(err, PT_ERR_IO, "cannot create a temporary folder under /tmp");
    }
    snprintf(c->data, sizeof c->data, "%s/data.jsonl", c->dir);
    snprintf(c->held, sizeof c->held, "%s/heldout.jsonl", c->dir);
    pt_status st = sft_bench_make_data(&c->tok, c->data, (size_t)c->mc->vocab_size, err);
    if (st == PT_OK && c->o->heldout > 0) st = make_heldout(c->held, c->o->heldout, err);
    if (st == PT_OK && c->o->heldout > 0) {
        /* the shape options as the runs will resolve them */
        char json[1024];
        snprintf(json, sizeof json, "{\"model\": \"m\", \"data\": \"%s\", \"out\": \"o\", \"max_length\": %d, \"packing\": true}",
                 c->data, c->o->T);
        config cfg;
        sft_options so;
        dataset *hds = NULL;
        if ((st = config_init(&cfg, &SFT_SCHEMA, 1, err)) == PT_OK) {
            st = config_load_string(&cfg, json, "fp8 gap", err);
            if (st == PT_OK) st = sft_options_from_config(&so, &cfg, err);
            if (st == PT_OK) st = dataset_open_jsonl(&hds, c->held, c->tok, &so.data, err);
            if (st == PT_OK) st = count_heldout(&r->heldout_rows, &r->heldout_tokens, hds, c->o->T, err);
            dataset_free(hds);
            config_free(&cfg);
        }
    }
    return st;
}

static void ctx_close(gap_ctx *c) {
    tokenizer_free(c->tok);
    c->tok = NULL;
    if (c->dir[0]) nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Seeds i ≡ job (mod jobs) of r, in this process. */
static pt_status run_seeds(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, int job, int jobs,
                           pt_error *err) {
    gap_ctx c = {.mc = mc, .o = o, .r = r, .tok = NULL};
    pt_status st = ctx_open(&c, r, err);
    for (int i = job; st == PT_OK && i < r->seeds; i += jobs)
        for (int k = 0; st == PT_OK && k < r->runs; k++) st = run_one(&r->seed[i], k, &c, err);
    ctx_close(&c);
    return st;
}

static bool write_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w, n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *p, size_t n) {
    char *b = p;
    while (n > 0) {
        ssize_t g = read(fd, b, n);
        if (g < 0 && errno == EINTR) continue;
        if (g <= 0) return false;
        b += g, n -= (size_t)g;
    }
    return true;
}

/* What a job process sends back: its status and error, the held-out counts, then per seed of the
 * job its losses, held-out losses and seconds. (write: dir 1; read: dir 0) */
static bool transfer(int fd, int dir, sft_gap_result *r, int job, int jobs, pt_status *st, pt_error *err) {
    bool ok = dir ? write_all(fd, st, sizeof *st) && write_all(fd, err, sizeof *err)
                  : read_all(fd, st, sizeof *st) && read_all(fd, err, sizeof *err);
    if (!ok || *st != PT_OK) return ok;
#define XFER(p, n) (dir ? write_all(fd, (p), (n)) : read_all(fd, (p), (n)))
    ok = XFER(&r->heldout_rows, sizeof r->heldout_rows) && XFER(&r->heldout_tokens, sizeof r->heldout_tokens);
    for (int i = job; ok && i < r->seeds; i += jobs) {
        sft_gap_seed *s = &r->seed[i];
        for (int k = 0; ok && k < r->runs; k++) ok = XFER(s->loss[k], (size_t)r->steps * sizeof(double));
        for (int k = 0; ok && k < SFT_GAP_SERIES; k++)
            if (s->held[k]) ok = XFER(s->held[k], (size_t)r->n_evals * sizeof(double));
        if (ok) ok = XFER(s->seconds, sizeof s->seconds);
        if (ok) ok = XFER(s->cpu_seconds, sizeof s->cpu_seconds);
    }
#undef XFER
    return ok;
}

/* The seeds in `jobs` forked processes (each with its own data folder), results back by pipe. */
static pt_status run_jobs(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, int jobs, pt_error *err) {
    pid_t pid[64];
    int fd[64], started = 0;
    fflush(NULL);
    for (; started < jobs; started++) {
        int p[2];
        if (pipe(p) != 0) break;
        pid_t c = fork();
        if (c < 0) {
            close(p[0]), close(p[1]);
            break;
        }
        if (c == 0) {
            close(p[0]);
            pt_error e = {0};
            pt_status st = run_seeds(r, mc, o, started, jobs, &e);
            _exit(transfer(p[1], 1, r, started, jobs, &st, &e) ? 0 : 1);
        }
        close(p[1]);
        pid[started] = c, fd[started] = p[0];
    }
    pt_status st = started == jobs ? PT_OK : error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot start %d processes: %s", jobs, strerror(errno));
    for (int j = 0; j < started; j++) {
        pt_status cst = PT_OK;
        pt_error cerr = {0};
        bool ok = transfer(fd[j], 0, r, j, jobs, &cst, &cerr);
        close(fd[j]);
        int ws = 0;
        waitpid(pid[j], &ws, 0);
        if (st != PT_OK) continue;
        if (ok && cst != PT_OK) *err = cerr, st = cst;
        else if (!ok || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            st = error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__, "job %d of %d ended without its results", j + 1, jobs);
    }
    return st;
}

static void summarise(sft_gap_result *r) {
    const int n = r->seeds, tail = r->steps / 5 > 0 ? r->steps / 5 : 1;
    double *v = malloc(3 * (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        sft_gap_seed *s = &r->seed[i];
        for (int k = 1; k < r->runs; k++) s->train[k] = sft_gap_tail_of(s->loss[0], s->loss[k], r->steps - tail, r->steps);
        for (int k = 1; k < SFT_GAP_SERIES; k++)
            if (s->held[k]) s->held_tail[k] = sft_gap_tail_of(s->held[0], s->held[k], r->held_from, r->n_evals);
    }
    for (int k = 1; v && k < SFT_GAP_SERIES; k++) {
        if (k < r->runs) {
            for (int i = 0; i < n; i++) {
                const sft_gap_tail *t = &r->seed[i].train[k];
                v[i] = t->rel_diff, v[n + i] = fabs(t->rel_diff), v[2 * n + i] = t->mean_rel_err;
            }
            r->train_rel_diff[k] = sft_gap_mean_of(v, n);
            r->train_abs_rel_diff[k] = sft_gap_mean_of(v + n, n);
            r->train_mean_rel_err[k] = sft_gap_mean_of(v + 2 * n, n);
        }
        if (!r->seed[0].held[k]) continue;
        for (int i = 0; i < n; i++) {
            const sft_gap_tail *t = &r->seed[i].held_tail[k];
            v[i] = t->rel_diff, v[n + i] = fabs(t->rel_diff), v[2 * n + i] = t->mean_rel_err;
        }
        r->held_rel_diff[k] = sft_gap_mean_of(v, n);
        r->held_abs_rel_diff[k] = sft_gap_mean_of(v + n, n);
        r->held_mean_rel_err[k] = sft_gap_mean_of(v + 2 * n, n);
    }
    free(v);
    for (int k = 0; k < 3; k++) {
        r->loss[k] = r->seed[0].loss[k];
        r->seconds[k] = r->seed[0].seconds[k];
        const sft_gap_tail *t = &r->seed[0].train[k > 0 ? k : 1];
        r->tail_mean[k] = k == 0 ? t->mean_ref : (k < r->runs ? t->mean : NAN);
        r->tail_rel_err[k] = k > 0 && k < r->runs ? t->mean_rel_err : 0;
        r->tail_mean_rel_err[k] = k > 0 && k < r->runs ? fabs(t->rel_diff) : 0;
    }
}

pt_status sft_fp8_gap(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, pt_error *err) {
    memset(r, 0, sizeof *r);
    PT_CHECK(o->steps >= 5 && o->steps <= 100000, err, PT_ERR_INVALID, "steps must be in 5..100000, got %d", o->steps);
    PT_CHECK(o->B >= 1 && o->T >= 2, err, PT_ERR_INVALID, "B must be >= 1 and T >= 2, got %d and %d", o->B, o->T);
    PT_CHECK(o->seeds >= 0 && o->seeds <= 1000, err, PT_ERR_INVALID, "seeds must be in 1..1000, got %d", o->seeds);
    PT_CHECK(o->heldout >= 0 && o->heldout <= 100000, err, PT_ERR_INVALID, "heldout must be in 0..100000 examples, got %d",
             o->heldout);
    PT_CHECK(o->eval_every >= 0, err, PT_ERR_INVALID, "eval_every must be >= 0, got %d", o->eval_every);
    PT_CHECK(o->jobs >= 0 && o->jobs <= 64, err, PT_ERR_INVALID, "jobs must be in 1..64, got %d", o->jobs);
    sft_gap_options oo = *o;
    if (oo.seeds == 0) oo.seeds = 1;
    if (oo.first_seed == 0) oo.first_seed = 1;
    if (oo.eval_every == 0) oo.eval_every = oo.steps / 20 > 0 ? oo.steps / 20 : 1;
    r->steps = oo.steps;
    r->seeds = oo.seeds;
    r->runs = oo.noise_floor ? 3 : 2;
    r->heldout_examples = oo.heldout;
    bool ok = (r->seed = calloc((size_t)r->seeds, sizeof *r->seed)) != NULL;
    if (ok && oo.heldout > 0) {
        /* before step 1, every eval_every steps, and after the last */
        r->n_evals = 1 + oo.steps / oo.eval_every + (oo.steps % oo.eval_every != 0);
        ok = (r->eval_step = malloc((size_t)r->n_evals * sizeof(int))) != NULL;
        for (int j = 0; ok && j < r->n_evals; j++) r->eval_step[j] = j * oo.eval_every < oo.steps ? j * oo.eval_every : oo.steps;
        const int tail = oo.steps / 5 > 0 ? oo.steps / 5 : 1;
        r->held_from = r->n_evals;
        while (ok && r->held_from > 0 && r->eval_step[r->held_from - 1] > oo.steps - tail) r->held_from--;
    }
    for (int i = 0; ok && i < r->seeds; i++) {
        sft_gap_seed *s = &r->seed[i];
        s->seed = oo.first_seed + (uint64_t)i;
        for (int k = 0; ok && k < r->runs; k++) ok = (s->loss[k] = calloc((size_t)oo.steps, sizeof(double))) != NULL;
        for (int k = 0; ok && oo.heldout > 0 && k < SFT_GAP_SERIES; k++)
            if (k < r->runs || k == SFT_GAP_FP8_AS_FP32)
                ok = (s->held[k] = calloc((size_t)r->n_evals, sizeof(double))) != NULL;
    }
    if (!ok) {
        sft_gap_result_free(r);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for %d seeds of %d steps", oo.seeds, oo.steps);
    }
    const int jobs = oo.jobs < 1 ? 1 : (oo.jobs > r->seeds ? r->seeds : oo.jobs);
    pt_status st = jobs > 1 ? run_jobs(r, mc, &oo, jobs, err) : run_seeds(r, mc, &oo, 0, 1, err);
    if (st != PT_OK) {
        sft_gap_result_free(r);
        return error_prefix(err, "fp8 gap");
    }
    summarise(r);
    return PT_OK;
}

void sft_gap_result_free(sft_gap_result *r) {
    for (int i = 0; r->seed && i < r->seeds; i++) {
        for (int k = 0; k < 3; k++) free(r->seed[i].loss[k]);
        for (int k = 0; k < SFT_GAP_SERIES; k++) free(r->seed[i].held[k]);
    }
    free(r->seed);
    free(r->eval_step);
    memset(r, 0, sizeof *r);
}
