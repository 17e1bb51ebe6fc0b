/* sandbox_pool.c — many sandbox runs at once: a batch on W worker threads, and the benchmark.
 *
 * Workers take the next job index from one atomic counter, so a batch of mixed slow and fast
 * jobs keeps every worker busy; each result lands at its job's index, so the output order never
 * depends on timing. Each run is its own process tree with its own namespaces and limits, so
 * runs never see each other; the threads share only the read-only sandbox.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rewards/sandbox_impl.h"

typedef struct batch_ctx {
    const sandbox *sb;
    const sandbox_job *jobs;
    sandbox_result *res;
    size_t n;
    atomic_size_t next;
    pthread_mutex_t lock; /* guards first_err */
    pt_status first_status;
    pt_error first_err;
} batch_ctx;

static void *batch_worker(void *arg) {
    batch_ctx *b = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&b->next, 1);
        if (i >= b->n) return NULL;
        pt_error e = {0};
        pt_status st = sandbox_run(&b->res[i], b->sb, &b->jobs[i], &e);
        if (st != PT_OK) {
            memset(&b->res[i], 0, sizeof b->res[i]);
            b->res[i].verdict = VERDICT_INFRA_ERROR;
            snprintf(b->res[i].detail, sizeof b->res[i].detail, "%.250s", e.msg);
            pthread_mutex_lock(&b->lock);
            if (b->first_status == PT_OK) b->first_status = st, b->first_err = e;
            pthread_mutex_unlock(&b->lock);
        }
    }
}

static int default_workers(const sandbox *sb) {
    if (sb->cfg.workers > 0) return sb->cfg.workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

pt_status sandbox_run_batch(sandbox_result *res, const sandbox *sb, const sandbox_job *jobs, size_t n, int workers,
                            pt_error *err) {
    PT_CHECK(sb && (n == 0 || (res && jobs)), err, PT_ERR_INVALID, "sandbox_run_batch: NULL argument");
    if (n == 0) return PT_OK;
    if (workers <= 0) workers = default_workers(sb);
    if ((size_t)workers > n) workers = (int)n;
    batch_ctx b = {.sb = sb, .jobs = jobs, .res = res, .n = n, .first_status = PT_OK};
    atomic_init(&b.next, 0);
    pthread_mutex_init(&b.lock, NULL);
    pthread_t *th = calloc((size_t)workers, sizeof *th);
    if (!th) {
        pthread_mutex_destroy(&b.lock);
        PT_CHECK_ALLOC(th, err, (size_t)workers * sizeof *th);
    }
    int started = 0;
    for (; started < workers; started++)
        if (pthread_create(&th[started], NULL, batch_worker, &b) != 0) break;
    if (started == 0) batch_worker(&b); /* no thread could start: run them here */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&b.lock);
    if (b.first_status != PT_OK) {
        if (err) *err = b.first_err;
        return b.first_status;
    }
    return PT_OK;
}

/* ---- benchmark ---------------------------------------------------------------------------- */

typedef struct bench_ctx {
    const sandbox *sb;
    double until;
    atomic_long runs;
    atomic_long bad;
    pthread_mutex_t lock;
    char bad_detail[300];
} bench_ctx;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *bench_worker(void *arg) {
    bench_ctx *b = arg;
    static const char *const tests[] = {"assert add(2, 3) == 5"};
    sandbox_job job = {.code = "def add(a, b):\n    return a + b\n", .tests = tests, .n_tests = 1};
    job.code_len = strlen(job.code);
    while (mono_now() < b->until) {
        sandbox_result r;
        pt_error e = {0};
        if (sandbox_run(&r, b->sb, &job, &e) != PT_OK || r.verdict != VERDICT_OK) {
            pthread_mutex_lock(&b->lock);
            if (!b->bad_detail[0])
                snprintf(b->bad_detail, sizeof b->bad_detail, "%s: %.200s", sandbox_verdict_name(r.verdict),
                         e.msg[0] ? e.msg : r.detail);
            pthread_mutex_unlock(&b->lock);
            atomic_fetch_add(&b->bad, 1);
        }
        sandbox_result_free(&r);
        atomic_fetch_add(&b->runs, 1);
    }
    return NULL;
}

pt_status sandbox_bench(double *runs_per_s, const sandbox *sb, double seconds, int workers, pt_error *err) {
    PT_CHECK(sb && runs_per_s && seconds > 0, err, PT_ERR_INVALID, "sandbox_bench: bad arguments");
    PT_CHECK(sb->lang && strcmp(sb->lang->name, "python") == 0, err, PT_ERR_INVALID,
             "sandbox_bench runs a Python test; the sandbox is configured for '%s'", sb->language);
    if (workers <= 0) workers = default_workers(sb);
    bench_ctx b = {.sb = sb};
    atomic_init(&b.runs, 0);
    atomic_init(&b.bad, 0);
    pthread_mutex_init(&b.lock, NULL);
    pthread_t *th = calloc((size_t)workers, sizeof *th);
    if (!th) {
        pthread_mutex_destroy(&b.lock);
        PT_CHECK_ALLOC(th, err, (size_t)workers * sizeof *th);
    }
    double t0 = mono_now();
    b.until = t0 + seconds;
    int started = 0;
    for (; started < workers; started++)
        if (pthread_create(&th[started], NULL, bench_worker, &b) != 0) break;
    if (started == 0) bench_worker(&b);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double elapsed = mono_now() - t0;
    free(th);
    pthread_mutex_destroy(&b.lock);
    long runs = atomic_load(&b.runs), bad = atomic_load(&b.bad);
    PT_CHECK(bad == 0, err, PT_ERR_BACKEND, "sandbox_bench: %ld of %ld runs were not OK (first: %s)", bad, runs,
             b.bad_detail);
    *runs_per_s = (double)runs / elapsed;
    return PT_OK;
}
