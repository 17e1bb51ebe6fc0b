/* tasks.h — built-in verifiable tasks, generated from a seed and written as JSONL in the shapes
 * TRL users have, with a held-out split.
 *
 *   countdown     {"prompt", "numbers": [..], "target": n, "completion"}: reach the target with
 *                 + - * / using each number at most once (TinyZero's task). Built from a random
 *                 expression tree over all the numbers, integer-valued and positive at every
 *                 node (no division with remainder), so a solution always exists; the completion
 *                 is that solution worked step by step in the R1 format
 *                 "<think>\n...\n</think>\n<answer>EXPR</answer>". Difficulty 1..4: 3..6 numbers,
 *                 drawn from 1..100 (max_number sets another range). With search_trace the
 *                 reasoning is a search: a few random combinations that miss the target, each
 *                 checked ("..., no."), then one that reaches it ("..., yes.").
 *   arithmetic    {"prompt", "answer": "<integer>", "completion"}: a chain of multi-digit
 *                 + - * / (exact integer division) evaluated with the usual precedence; the
 *                 completion works multiplications by place value. Difficulty 1..5 sets the
 *                 operands (2, 2, 3, 3, 4) and their digits (2, 3, 3, 4, 5).
 *   instructions  {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "task": name}:
 *                 short templated tasks with exact reference answers (sort numbers or words,
 *                 reverse, count letters or words, convert units, largest/smallest, capitals).
 *                 Difficulty 1..3 scales list lengths, magnitudes and string lengths.
 *
 * Randomness: candidate j of (kind, seed, difficulty) draws from the core/rng stream keyed by
 * (seed; TASK_STREAM_TAG, kind, difficulty, j), so it is a pure function of those four values.
 * Split and duplicates: each candidate has a canonical content key (countdown: the sorted numbers
 * and the target; arithmetic: the expression; instructions: the user message); the key's FNV-1a
 * 64 hash puts it in the held-out ("eval") split when hash % TASK_EVAL_MODULUS == 0 and in the
 * train split otherwise. The generator walks j = 0, 1, 2, ... and appends each candidate to its
 * split's file unless that split is full or already holds the same key. Therefore: the same seed
 * gives the same bytes; the i-th line of either file does not depend on n or eval_n; no problem
 * appears twice in a file; and train and eval never share a problem, not even across seeds and
 * runs (the split is a property of the problem, not of the run).
 */
#ifndef POSTTRAIN_DATASETS_TASKS_H
#define POSTTRAIN_DATASETS_TASKS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"

#define TASK_STREAM_TAG 0x7461736b73ull /* "tasks" */
#define TASK_TRACE_TAG 0x7472616365ull  /* "trace": the streams of a problem's extra search traces */
#define TASK_EVAL_MODULUS 10            /* 1 in 10 problems is held out */
#define TASK_MAX_TRACES 64               /* search traces per training problem, at most */
#define TASK_SEARCH_MISSES 3            /* countdown search trace: rejected attempts at most, by default */
#define TASK_MAX_MISSES 12              /* ... and the most --max_misses allows */
#define TASK_STALL_LIMIT 2000           /* candidates in a row without a new example: space exhausted */

typedef enum task_kind { TASK_COUNTDOWN, TASK_ARITHMETIC, TASK_INSTRUCTIONS } task_kind;
typedef enum task_split { TASK_SPLIT_TRAIN, TASK_SPLIT_EVAL } task_split;

/* One generated example: the JSONL record and its canonical content key. */
typedef struct task_example {
    cJSON *record;
    char *key;
} task_example;

/* "countdown", "arithmetic", "instructions"; anything else is PT_ERR_CONFIG listing them. */
pt_status task_kind_parse(task_kind *out, const char *name, pt_error *err);
const char *task_kind_name(task_kind kind);
int task_difficulty_max(task_kind kind); /* difficulties are 1..max */
int task_difficulty_default(task_kind kind);

/* The split a content key belongs to (see the file comment). */
task_split task_split_of(const char *key);

/* Candidate j (see the file comment); difficulty must be in range. */
pt_status task_candidate(task_example *out, task_kind kind, uint64_t seed, int difficulty, uint64_t j, pt_error *err);
/* The same with the options of task_make_opts (kind, seed, difficulty, and countdown's
 * max_number and prompt style; n and eval_n are not read). Countdown's numbers come from
 * 1..max_number (0 or TASK_COUNTDOWN_MAX_NUMBER: the default range, drawn from the same stream as
 * task_candidate; another range has its own streams). The prompt style changes only the prompt
 * text: the same seed gives the same problems and solutions in either style. */
#define TASK_COUNTDOWN_MAX_NUMBER 100
struct task_make_opts;
pt_status task_candidate_with(task_example *out, const struct task_make_opts *opts, uint64_t j, pt_error *err);
void task_example_free(task_example *ex);

/* The per-task generators behind task_candidate, each drawing from `r`. */
/* A bounded text buffer the generators print into; overflow is a bug (texts are small). */
typedef struct task_text {
    char buf[4096];
    size_t len;
    bool overflow;
} task_text;
void task_text_printf(task_text *t, const char *fmt, ...) PT_PRINTF(2, 3);

pt_status task_arithmetic_generate(task_example *out, rng *r, int difficulty, pt_error *err);
pt_status task_instructions_generate(task_example *out, rng *r, int difficulty, pt_error *err);

typedef struct task_make_opts {
    task_kind kind;
    uint64_t seed;
    int difficulty; /* 0: the task's default */
    int max_number; /* countdown: numbers are drawn from 1..max_number (0: 100) */
    bool short_prompt; /* countdown: "Using the numbers [a, b, c], make T." instead of TinyZero's
                          prompt with its instructions (the completion is the same) */
    bool search_trace; /* countdown: the reasoning tries random combinations that miss ("a + b = v,
                          v * c = w, no.", 0-3 by default) before the one that reaches the target
                          ("... yes.") */
    bool name_target;  /* countdown search trace: each attempt names the target before its verdict
                          ("a + b = v, v * c = w, need T, no.") */
    int traces;        /* countdown search trace: each training problem is written this many times
                          (0 or 1: once), each copy with its own random search; the first copy is
                          the line written without it, n counts problems, held-out problems are
                          written once */
    int trace_variant; /* read by task_candidate_with: which copy (0: the first) */
    int max_misses;    /* countdown search trace: rejected attempts before the solution, at most
                          (0: TASK_SEARCH_MISSES; 1..TASK_MAX_MISSES) */
    bool geometric_misses; /* countdown search trace: after each rejected attempt another follows with
                              probability 1/2 (up to max_misses), so the verdict's odds do not depend
                              on how many attempts came before; default: uniform in 0..max_misses */
    size_t n;       /* train examples */
    size_t eval_n;  /* held-out examples */
} task_make_opts;

/* The countdown generator behind task_candidate_with: the problem from r, the search trace's
 * attempts (opts: search_trace, name_target, max_misses, geometric_misses) from search_rng (NULL:
 * r) after it; opts' short_prompt picks the prompt. */
pt_status task_countdown_generate(task_example *out, rng *r, int difficulty, int max_number,
                                  const task_make_opts *opts, rng *search_rng, pt_error *err);

/* Receives each accepted example as one line of compact JSON (no newline), in file order. */
typedef pt_status (*task_emit_fn)(void *ctx, task_split split, const char *line, size_t len, pt_error *err);

/* Walks candidates until both splits are full. When the content space at this difficulty is too
 * small (TASK_STALL_LIMIT candidates in a row brought nothing new to a split that needs more),
 * fails with PT_ERR_CONFIG saying how many were found. *candidates (may be NULL) receives how many candidates were drawn. */
pt_status task_generate(const task_make_opts *opts, task_emit_fn emit, void *ctx, size_t *candidates, pt_error *err);

/* task_generate into files: train lines to `out`, held-out lines to `eval_out` (which may be NULL
 * only when eval_n is 0). Each file is written to a temporary name beside it, fsynced and renamed,
 * so a failed run leaves no half-written file. */
pt_status task_write_jsonl(const task_make_opts *opts, const char *out, const char *eval_out, pt_error *err);

#endif
