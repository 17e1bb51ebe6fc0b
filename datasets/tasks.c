/* tasks.c — what the built-in tasks share: names and difficulty ranges, the per-candidate random
 * stream, the content-hash split, duplicate removal and the JSONL files. The generators live in
 * task_countdown.c, task_arithmetic.c and task_instructions.c. See tasks.h for the invariants.
 */
#include "datasets/tasks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const KIND_NAMES[] = {"countdown", "arithmetic", "instructions"};
static const int KIND_MAX_DIFFICULTY[] = {4, 5, 3};
static const int KIND_DEFAULT_DIFFICULTY[] = {2, 2, 2};

void task_text_printf(task_text *t, const char *fmt, ...) {
    if (t->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof t->buf - t->len) {
        t->overflow = true;
        t->buf[t->len] = 0;
        return;
    }
    t->len += (size_t)n;
}

pt_status task_kind_parse(task_kind *out, const char *name, pt_error *err) {
    for (int k = 0; k < 3; k++)
        if (name && strcmp(name, KIND_NAMES[k]) == 0) {
            *out = (task_kind)k;
            return PT_OK;
        }
    PT_FAIL(err, PT_ERR_CONFIG, "unknown task \"%s\"; the built-in tasks are countdown, arithmetic, instructions",
            name ? name : "(null)");
}

const char *task_kind_name(task_kind kind) { return (unsigned)kind < 3 ? KIND_NAMES[kind] : "?"; }
int task_difficulty_max(task_kind kind) { return (unsigned)kind < 3 ? KIND_MAX_DIFFICULTY[kind] : 0; }
int task_difficulty_default(task_kind kind) { return (unsigned)kind < 3 ? KIND_DEFAULT_DIFFICULTY[kind] : 0; }

/* FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211). */
static uint64_t fnv1a64(const char *s) {
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

task_split task_split_of(const char *key) {
    return fnv1a64(key) % TASK_EVAL_MODULUS == 0 ? TASK_SPLIT_EVAL : TASK_SPLIT_TRAIN;
}

void task_example_free(task_example *ex) {
    cJSON_Delete(ex->record);
    free(ex->key);
    ex->record = NULL;
    ex->key = NULL;
}

pt_status task_candidate(task_example *out, task_kind kind, uint64_t seed, int difficulty, uint64_t j, pt_error *err) {
    task_make_opts o = {.kind = kind, .seed = seed, .difficulty = difficulty};
    return task_candidate_with(out, &o, j, err);
}

pt_status task_candidate_with(task_example *out, const task_make_opts *opts, uint64_t j, pt_error *err) {
    const task_kind kind = opts->kind;
    const uint64_t seed = opts->seed;
    const int difficulty = opts->difficulty;
    int max_number = opts->max_number;
    out->record = NULL;
    out->key = NULL;
    PT_CHECK((unsigned)kind < 3, err, PT_ERR_INVALID, "task kind %d is not a built-in task", (int)kind);
    if (difficulty < 1 || difficulty > task_difficulty_max(kind))
        PT_FAIL(err, PT_ERR_CONFIG, "difficulty %d is out of range for %s: use 1..%d", difficulty, task_kind_name(kind),
                task_difficulty_max(kind));
    if (max_number == TASK_COUNTDOWN_MAX_NUMBER) max_number = 0; /* the default: the same stream as before */
    if (max_number && (kind != TASK_COUNTDOWN || max_number < 2 || max_number > 100000))
        PT_FAIL(err, PT_ERR_CONFIG, "max_number %d: only countdown takes it, in 2..100000", max_number);
    if (opts->name_target && !opts->search_trace)
        PT_FAIL(err, PT_ERR_CONFIG, "naming the target in each attempt needs the search trace");
    if (opts->trace_variant && !opts->search_trace)
        PT_FAIL(err, PT_ERR_CONFIG, "several traces per problem need the search trace");
    if ((opts->max_misses || opts->geometric_misses) && !opts->search_trace)
        PT_FAIL(err, PT_ERR_CONFIG, "the number of rejected attempts applies to the search trace only");
    if (opts->max_misses < 0 || opts->max_misses > TASK_MAX_MISSES)
        PT_FAIL(err, PT_ERR_CONFIG, "max_misses %d: expected 1..%d", opts->max_misses, TASK_MAX_MISSES);
    if ((opts->short_prompt || opts->search_trace) && kind != TASK_COUNTDOWN)
        PT_FAIL(err, PT_ERR_CONFIG, "the short prompt style and the search trace are countdown's only");
    /* a non-default number range is its own family of problems: its own streams */
    uint64_t ids[5] = {TASK_STREAM_TAG, (uint64_t)kind, (uint64_t)difficulty, j, (uint64_t)max_number};
    rng r, search;
    rng_init(&r, seed, rng_stream_id(ids, max_number ? 5 : 4));
    if (opts->trace_variant) { /* copy v's search: its own stream; the problem still comes from r */
        uint64_t sids[7] = {TASK_STREAM_TAG, (uint64_t)kind, (uint64_t)difficulty, j, (uint64_t)max_number,
                            TASK_TRACE_TAG, (uint64_t)opts->trace_variant};
        rng_init(&search, seed, rng_stream_id(sids, 7));
    }
    switch (kind) {
    case TASK_COUNTDOWN:
        return task_countdown_generate(out, &r, difficulty, max_number ? max_number : TASK_COUNTDOWN_MAX_NUMBER, opts,
                                       opts->trace_variant ? &search : NULL, err);
    case TASK_ARITHMETIC: return task_arithmetic_generate(out, &r, difficulty, err);
    case TASK_INSTRUCTIONS: return task_instructions_generate(out, &r, difficulty, err);
    }
    PT_FAIL(err, PT_ERR_INTERNAL, "unreachable task kind %d", (int)kind);
}

/* ----------------------------------------------------------------- duplicate removal */

/* An open-addressing set of 64-bit key hashes (0 marks an empty slot; hash 0 is stored as 1). */
typedef struct hash_set {
    uint64_t *slots; /* (cap) */
    size_t cap, n;
} hash_set;

static size_t slot_of(uint64_t h, size_t cap) { return (size_t)((h * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1); }

/* Inserts h; *added = false when it was already there. */
static pt_status hash_set_add(hash_set *s, uint64_t h, bool *added, pt_error *err) {
    if (h == 0) h = 1;
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 1024;
        uint64_t *ns = calloc(ncap, sizeof *ns);
        PT_CHECK_ALLOC(ns, err, ncap * sizeof *ns);
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i]) continue;
            size_t k = slot_of(s->slots[i], ncap);
            while (ns[k]) k = (k + 1) & (ncap - 1);
            ns[k] = s->slots[i];
        }
        free(s->slots);
        s->slots = ns;
        s->cap = ncap;
    }
    size_t k = slot_of(h, s->cap);
    while (s->slots[k] && s->slots[k] != h) k = (k + 1) & (s->cap - 1);
    *added = s->slots[k] == 0;
    if (*added) {
        s->slots[k] = h;
        s->n++;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------------ generation */

/* Prints ex's record as one compact JSON line and hands it to emit. */
static pt_status emit_example(const task_example *ex, task_split split, task_emit_fn emit, void *ctx, pt_error *err) {
    char *line = cJSON_PrintUnformatted(ex->record);
    if (!line) return error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory printing an example");
    pt_status st = emit(ctx, split, line, strlen(line), err);
    free(line);
    return st;
}

/* Emits copy v of candidate j (its own search trace), which must be the problem of key. */
static pt_status emit_variant(const task_make_opts *cand, uint64_t j, int v, const char *key, task_emit_fn emit,
                              void *ctx, pt_error *err) {
    task_make_opts o = *cand;
    o.trace_variant = v;
    task_example ex;
    PT_TRY(task_candidate_with(&ex, &o, j, err));
    pt_status st = strcmp(ex.key, key) == 0
                       ? emit_example(&ex, TASK_SPLIT_TRAIN, emit, ctx, err)
                       : error_set(err, PT_ERR_INTERNAL, __FILE__, __LINE__,
                                   "trace copy %d of candidate %llu is another problem", v, (unsigned long long)j);
    task_example_free(&ex);
    return st;
}

pt_status task_generate(const task_make_opts *opts, task_emit_fn emit, void *ctx, size_t *candidates, pt_error *err) {
    if (candidates) *candidates = 0;
    task_make_opts cand = *opts;
    cand.difficulty = opts->difficulty ? opts->difficulty : task_difficulty_default(opts->kind);
    const int difficulty = cand.difficulty;
    if (opts->n + opts->eval_n == 0) PT_FAIL(err, PT_ERR_CONFIG, "nothing to generate: --n and --eval-n are both 0");
    if (opts->traces < 0 || opts->traces > TASK_MAX_TRACES)
        PT_FAIL(err, PT_ERR_CONFIG, "traces %d per problem: expected 1..%d", opts->traces, TASK_MAX_TRACES);
    if (opts->traces > 1 && (opts->kind != TASK_COUNTDOWN || !opts->search_trace))
        PT_FAIL(err, PT_ERR_CONFIG, "several traces per problem need countdown's search trace (--trace search or check)");
    /* Give up when TASK_STALL_LIMIT candidates in a row added nothing to a split that still needs
     * examples: the content space is (nearly) exhausted. A healthy run never stalls that long: the
     * held-out split takes 1 candidate in TASK_EVAL_MODULUS, and 0.9^2000 is ~1e-92. */
    size_t want[2] = {opts->n, opts->eval_n}, have[2] = {0, 0};
    hash_set seen[2] = {{0}, {0}};
    pt_status st = PT_OK;
    size_t j = 0, stall = 0;
    for (; (have[0] < want[0] || have[1] < want[1]) && stall < TASK_STALL_LIMIT; j++) {
        task_example ex;
        st = task_candidate_with(&ex, &cand, j, err);
        if (st != PT_OK) break;
        task_split split = task_split_of(ex.key);
        bool added = false;
        if (have[split] < want[split]) st = hash_set_add(&seen[split], fnv1a64(ex.key), &added, err);
        if (st == PT_OK && added) {
            st = emit_example(&ex, split, emit, ctx, err);
            have[split]++;
            for (int v = 1; st == PT_OK && split == TASK_SPLIT_TRAIN && v < opts->traces; v++)
                st = emit_variant(&cand, j, v, ex.key, emit, ctx, err);
        }
        stall = added ? 0 : stall + 1;
        task_example_free(&ex);
        if (st != PT_OK) break;
    }
    free(seen[0].slots);
    free(seen[1].slots);
    if (candidates) *candidates = j;
    if (st != PT_OK) return st;
    if (have[0] < want[0] || have[1] < want[1])
        PT_FAIL(err, PT_ERR_CONFIG,
                "%s at difficulty %d: only %zu distinct train and %zu held-out problems among %zu candidates "
                "(asked for %zu and %zu); ask for fewer or raise --difficulty%s",
                task_kind_name(opts->kind), difficulty, have[0], have[1], j, want[0], want[1],
                opts->kind == TASK_COUNTDOWN ? " or --max_number" : "");
    return PT_OK;
}

/* ----------------------------------------------------------------------------- files */

typedef struct file_sink {
    FILE *f[2];
    const char *path[2];
} file_sink;

static pt_status sink_emit(void *ctx, task_split split, const char *line, size_t len, pt_error *err) {
    file_sink *s = ctx;
    FILE *f = s->f[split];
    if (fwrite(line, 1, len, f) != len || fputc('\n', f) == EOF)
        PT_FAIL(err, PT_ERR_IO, "%s: write failed: %s", s->path[split], strerror(errno));
    return PT_OK;
}

/* Flushes, fsyncs and closes f; then renames tmp to path. */
static pt_status finish_file(FILE *f, const char *tmp, const char *path, pt_error *err) {
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    bad |= fclose(f) != 0;
    if (bad) PT_FAIL(err, PT_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
    PT_CHECK_ERRNO(rename(tmp, path), err, "renaming %s to %s", tmp, path);
    return PT_OK;
}

pt_status task_write_jsonl(const task_make_opts *opts, const char *out, const char *eval_out, pt_error *err) {
    if (!out && opts->n > 0) PT_FAIL(err, PT_ERR_CONFIG, "--out is required for %zu train examples", opts->n);
    if (!eval_out && opts->eval_n > 0)
        PT_FAIL(err, PT_ERR_CONFIG, "--eval-out is required for %zu held-out examples (--eval-n)", opts->eval_n);
    if (out && eval_out && strcmp(out, eval_out) == 0)
        PT_FAIL(err, PT_ERR_CONFIG, "--out and --eval-out are the same file (%s)", out);
    const char *path[2] = {opts->n ? out : NULL, opts->eval_n ? eval_out : NULL};
    char *tmp[2] = {NULL, NULL};
    file_sink sink = {{NULL, NULL}, {path[0], path[1]}};
    pt_status st = PT_OK;
    for (int s = 0; s < 2 && st == PT_OK; s++) {
        if (!path[s]) continue;
        size_t n = strlen(path[s]) + 32;
        tmp[s] = malloc(n);
        if (!tmp[s]) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
            break;
        }
        snprintf(tmp[s], n, "%s.tmp.%ld", path[s], (long)getpid());
        sink.f[s] = fopen(tmp[s], "wb");
        if (!sink.f[s])
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: cannot create: %s (is the folder there?)",
                           path[s], strerror(errno));
    }
    if (st == PT_OK) st = task_generate(opts, sink_emit, &sink, NULL, err);
    for (int s = 0; s < 2; s++) {
        if (!sink.f[s]) continue;
        if (st == PT_OK) {
            st = finish_file(sink.f[s], tmp[s], path[s], err);
        } else {
            fclose(sink.f[s]);
        }
        sink.f[s] = NULL;
    }
    for (int s = 0; s < 2; s++) {
        if (tmp[s] && st != PT_OK) unlink(tmp[s]);
        free(tmp[s]);
    }
    return st;
}
