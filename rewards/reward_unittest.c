/* reward_unittest.c — the `unittest` reward: the code in the completion, run against the
 * example's tests in the sandbox (rewards/sandbox.h).
 *
 * Params (all optional):
 *   "column"        the column holding the tests (default "tests")
 *   "language"      fence tag and harness: "python" (default), "sh", or another name with an
 *                   "interpreter" (stdin/stdout tests only)
 *   "interpreter"   command line of the interpreter (default: the language's)
 *   "block"         "last" (default) or "first" fenced block of the language, or "whole" answer
 *   "scoring"       "fraction" (default: passed/total) or "all" (1 when every test passes, else 0)
 *   "cpu_seconds" (2), "wall_seconds" (5), "memory_mb" (512), "disk_mb" (32), "max_processes" (64):
 *                   per-run limits; "workers" (0: online CPUs) runs in parallel; "root_dir" where
 *                   the per-run directories go; "ro_paths" (a list replacing the default read-only
 *                   system directories: add the interpreter's own tree, e.g. "/opt/conda");
 *                   "unsafe" (false) runs without a missing isolation layer instead of refusing to
 *                   start (a warning names the missing ones).
 *
 * The tests column, one of:
 *   ["assert f(1) == 2", ...]                         assert statements, run after the code in
 *                                                     one process; passed = those that complete
 *   [{"input": "1 2\n", "output": "3\n"}, ...]        stdin/stdout pairs, one run each
 *   {"inputs": [...], "outputs": [...]}              the same pairs (APPS "input_output" shape)
 *   a string holding one of the above as JSON (APPS stores it so), or else the string itself as
 *   a single test (a block of asserts, as MBPP/HumanEval test code is written): all or nothing.
 *
 * Results: no code block of the language in the completion → score 0 (the policy's fault); a
 * missing or malformed tests column, or no tests → REWARD_MASKED (the dataset's fault); a sandbox
 * INFRA_ERROR that persists after its retry → REWARD_ERROR (never a 0); otherwise the score.
 * Every verdict other than OK/WRONG_ANSWER scores no tests for that run (a crash, a timeout or
 * exiting before the harness marker passes nothing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/reward.h"
#include "rewards/sandbox.h"

typedef struct unittest_reward {
    sandbox *sb;
    char column[REWARD_NAME_MAX];
    char language[32];
    sandbox_block block;
    bool all_or_nothing;
    int workers;
} unittest_reward;

/* One item's tests, pointing into cJSON trees the item keeps until the batch ends. */
typedef struct item_plan {
    cJSON *cols, *inner;  /* the columns object; a JSON string column parsed again */
    bool skip;            /* result already written (masked, or no code) */
    bool io;
    int n;                /* tests or pairs */
    const char **tests;   /* (n) assert mode */
    const char **inputs;  /* (n) io mode */
    const char **outputs; /* (n) */
    const char *code;
    size_t code_len;
    size_t first_job;     /* index of its first job */
} item_plan;

/* Fills plan->tests / inputs / outputs from v; returns a reason when v is not a tests value. */
static const char *plan_from_json(item_plan *plan, const cJSON *v) {
    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        if (n == 0) return "the tests list is empty";
        const cJSON *first = cJSON_GetArrayItem(v, 0);
        plan->io = cJSON_IsObject(first);
        plan->n = n;
        plan->tests = calloc((size_t)n, sizeof *plan->tests);
        plan->inputs = calloc((size_t)n, sizeof *plan->inputs);
        plan->outputs = calloc((size_t)n, sizeof *plan->outputs);
        if (!plan->tests || !plan->inputs || !plan->outputs) return "out of memory";
        int k = 0;
        for (const cJSON *e = v->child; e; e = e->next, k++) {
            if (!plan->io) {
                if (!cJSON_IsString(e)) return "a test is not a string";
                plan->tests[k] = e->valuestring;
                continue;
            }
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "input");
            const cJSON *out = cJSON_GetObjectItemCaseSensitive(e, "output");
            if (!cJSON_IsString(in) || !cJSON_IsString(out)) return "a test pair lacks string \"input\"/\"output\"";
            plan->inputs[k] = in->valuestring;
            plan->outputs[k] = out->valuestring;
        }
        return NULL;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(v, "inputs");
        const cJSON *outs = cJSON_GetObjectItemCaseSensitive(v, "outputs");
        if (!cJSON_IsArray(ins) || !cJSON_IsArray(outs)) return "a tests object needs \"inputs\" and \"outputs\" lists";
        int n = cJSON_GetArraySize(ins);
        if (n != cJSON_GetArraySize(outs)) return "\"inputs\" and \"outputs\" differ in length";
        if (n == 0) return "the tests list is empty";
        plan->io = true;
        plan->n = n;
        plan->inputs = calloc((size_t)n, sizeof *plan->inputs);
        plan->outputs = calloc((size_t)n, sizeof *plan->outputs);
        if (!plan->inputs || !plan->outputs) return "out of memory";
        const cJSON *a = ins->child, *b = outs->child;
        for (int k = 0; k < n; k++, a = a->next, b = b->next) {
            if (!cJSON_IsString(a) || !cJSON_IsString(b)) return "an input or output is not a string";
            plan->inputs[k] = a->valuestring;
            plan->outputs[k] = b->valuestring;
        }
        return NULL;
    }
    return "the tests column is neither a list nor an object";
}

static void plan_free(item_plan *p) {
    cJSON_Delete(p->cols);
    cJSON_Delete(p->inner);
    free(p->tests);
    free(p->inputs);
    free(p->outputs);
}

/* Reads the item's tests and code; writes out (and sets skip) when there is nothing to run. */
static void plan_item(item_plan *plan, reward_result *out, const unittest_reward *u, const reward_item *item) {
    pt_error perr = {0};
    if (reward_item_columns(&plan->cols, item, &perr) != PT_OK) {
        reward_result_mask(out, REWARD_MASKED, "%s", perr.msg);
        plan->skip = true;
        return;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(plan->cols, u->column);
    if (!v || cJSON_IsNull(v)) {
        reward_result_mask(out, REWARD_MASKED, "column '%s' is missing", u->column);
        plan->skip = true;
        return;
    }
    const char *why;
    if (cJSON_IsString(v)) {
        plan->inner = cJSON_Parse(v->valuestring);
        if (plan->inner && (cJSON_IsArray(plan->inner) || cJSON_IsObject(plan->inner))) {
            why = plan_from_json(plan, plan->inner);
        } else if (v->valuestring[0]) { /* test code as it is: one all-or-nothing test */
            plan->n = 1;
            plan->tests = calloc(1, sizeof *plan->tests);
            if (plan->tests) plan->tests[0] = v->valuestring;
            why = plan->tests ? NULL : "out of memory";
        } else {
            why = "the tests column is an empty string";
        }
    } else {
        why = plan_from_json(plan, v);
    }
    if (why) {
        reward_result_mask(out, REWARD_MASKED, "column '%s': %s", u->column, why);
        plan->skip = true;
        return;
    }
    /* tests this language's harness cannot carry are the dataset's problem */
    sandbox_job probe = {.code = "", .stdin_data = "", .expected_stdout = ""};
    if (!plan->io) probe.tests = plan->tests, probe.n_tests = plan->n;
    if (sandbox_job_check(u->sb, &probe, &perr) != PT_OK) {
        reward_result_mask(out, REWARD_MASKED, "column '%s': %s", u->column, perr.msg);
        plan->skip = true;
        return;
    }
    const char *completion = item->completion ? item->completion : "";
    if (!sandbox_extract_code(&plan->code, &plan->code_len, completion, u->language, u->block)) {
        reward_result_ok(out, 0.0); /* no code block: the policy's fault */
        plan->skip = true;
    }
}

static pt_status unittest_score_batch(reward *self, reward_result *out, const reward_item *items, int n,
                                      pt_error *err) {
    const unittest_reward *u = self->impl;
    item_plan *plans = calloc((size_t)(n > 0 ? n : 1), sizeof *plans);
    PT_CHECK_ALLOC(plans, err, (size_t)n * sizeof *plans);
    size_t n_jobs = 0;
    for (int i = 0; i < n; i++) {
        plan_item(&plans[i], &out[i], u, &items[i]);
        plans[i].first_job = n_jobs;
        if (!plans[i].skip) n_jobs += plans[i].io ? (size_t)plans[i].n : 1;
    }
    sandbox_job *jobs = calloc(n_jobs ? n_jobs : 1, sizeof *jobs);
    sandbox_result *res = calloc(n_jobs ? n_jobs : 1, sizeof *res);
    pt_status st = PT_OK;
    if (!jobs || !res) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %zu sandbox jobs", n_jobs);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const item_plan *p = &plans[i];
        if (p->skip) continue;
        sandbox_job base = {.code = p->code, .code_len = p->code_len};
        if (!p->io) {
            base.tests = p->tests, base.n_tests = p->n;
            jobs[p->first_job] = base;
            continue;
        }
        for (int k = 0; k < p->n; k++) {
            sandbox_job j = base;
            j.stdin_data = p->inputs[k], j.stdin_len = strlen(p->inputs[k]);
            j.expected_stdout = p->outputs[k], j.expected_len = strlen(p->outputs[k]);
            jobs[p->first_job + (size_t)k] = j;
        }
    }
    /* every job was checked while planning, so a failure here leaves INFRA_ERROR results (out of
     * memory inside a run); the loop below turns them into REWARD_ERROR items */
    pt_error berr = {0};
    if (n_jobs) (void)sandbox_run_batch(res, u->sb, jobs, n_jobs, u->workers, &berr);
    for (int i = 0; i < n; i++) {
        const item_plan *p = &plans[i];
        if (p->skip) continue;
        int runs = p->io ? p->n : 1, passed = 0, total = p->n;
        const sandbox_result *infra = NULL;
        for (int k = 0; k < runs; k++) {
            const sandbox_result *r = &res[p->first_job + (size_t)k];
            if (r->verdict == VERDICT_INFRA_ERROR && !infra) infra = r;
            if (p->io) passed += r->verdict == VERDICT_OK;
            else if (r->verdict == VERDICT_OK || r->verdict == VERDICT_WRONG_ANSWER) passed = r->tests_passed;
        }
        if (infra) {
            reward_result_mask(&out[i], REWARD_ERROR, "sandbox INFRA_ERROR: %s", infra->detail);
            continue;
        }
        double score = u->all_or_nothing ? (passed == total ? 1.0 : 0.0) : (double)passed / (double)total;
        reward_result_ok(&out[i], score);
    }
done:
    for (size_t j = 0; res && j < n_jobs; j++) sandbox_result_free(&res[j]);
    free(res);
    free(jobs);
    for (int i = 0; i < n; i++) plan_free(&plans[i]);
    free(plans);
    return st;
}

static void unittest_free(reward *self) {
    unittest_reward *u = self->impl;
    if (!u) return;
    sandbox_free(u->sb);
    free(u);
    self->impl = NULL;
}

static const reward_vtable UNITTEST_VTABLE = {unittest_score_batch, unittest_free};

pt_status reward_unittest_init(reward *self, const cJSON *cfg, pt_error *err) {
    static const char *const keys[] = {"column",      "language",     "interpreter", "block",         "scoring",
                                       "cpu_seconds", "wall_seconds", "memory_mb",   "disk_mb",       "max_processes",
                                       "workers",     "unsafe",       "root_dir",    "ro_paths"};
    PT_TRY(reward_cfg_check_keys(cfg, keys, (int)(sizeof keys / sizeof keys[0]), err));
    unittest_reward u = {0};
    sandbox_config sc;
    sandbox_config_default(&sc);
    const char *column, *language, *interp, *block, *scoring, *root;
    PT_TRY(reward_cfg_string(&column, cfg, "column", "tests", err));
    PT_TRY(reward_cfg_string(&language, cfg, "language", "python", err));
    PT_TRY(reward_cfg_string(&interp, cfg, "interpreter", NULL, err));
    PT_TRY(reward_cfg_string(&block, cfg, "block", "last", err));
    PT_TRY(reward_cfg_string(&scoring, cfg, "scoring", "fraction", err));
    PT_TRY(reward_cfg_string(&root, cfg, "root_dir", NULL, err));
    if (strlen(column) >= sizeof u.column) PT_FAIL(err, PT_ERR_CONFIG, "column name '%.40s...' is too long", column);
    if (strlen(language) >= sizeof u.language) PT_FAIL(err, PT_ERR_CONFIG, "language '%.40s...' is too long", language);
    snprintf(u.column, sizeof u.column, "%s", column);
    snprintf(u.language, sizeof u.language, "%s", language);
    if (strcmp(block, "last") == 0) u.block = SANDBOX_BLOCK_LAST;
    else if (strcmp(block, "first") == 0) u.block = SANDBOX_BLOCK_FIRST;
    else if (strcmp(block, "whole") == 0) u.block = SANDBOX_BLOCK_WHOLE;
    else PT_FAIL(err, PT_ERR_CONFIG, "key 'block' expects \"last\", \"first\" or \"whole\", got \"%.40s\"", block);
    if (strcmp(scoring, "fraction") == 0) u.all_or_nothing = false;
    else if (strcmp(scoring, "all") == 0) u.all_or_nothing = true;
    else PT_FAIL(err, PT_ERR_CONFIG, "key 'scoring' expects \"fraction\" or \"all\", got \"%.40s\"", scoring);
    double cpu, wall, mem_mb, disk_mb;
    long nproc, workers;
    bool unsafe;
    PT_TRY(reward_cfg_number(&cpu, cfg, "cpu_seconds", sc.cpu_seconds, err));
    PT_TRY(reward_cfg_number(&wall, cfg, "wall_seconds", sc.wall_seconds, err));
    PT_TRY(reward_cfg_number(&mem_mb, cfg, "memory_mb", (double)(sc.memory_bytes >> 20), err));
    PT_TRY(reward_cfg_number(&disk_mb, cfg, "disk_mb", (double)(sc.disk_bytes >> 20), err));
    PT_TRY(reward_cfg_int(&nproc, cfg, "max_processes", sc.max_processes, err));
    PT_TRY(reward_cfg_int(&workers, cfg, "workers", 0, err));
    PT_TRY(reward_cfg_bool(&unsafe, cfg, "unsafe", false, err));
    PT_CHECK(mem_mb >= 16 && mem_mb <= 1 << 20 && disk_mb >= 1 && disk_mb <= 1 << 20, err, PT_ERR_CONFIG,
             "memory_mb must be in [16, 2^20] and disk_mb in [1, 2^20] (got %g, %g)", mem_mb, disk_mb);
    PT_CHECK(nproc >= 2 && nproc <= 1 << 20 && workers >= 0 && workers <= 4096, err, PT_ERR_CONFIG,
             "max_processes must be in [2, 2^20] and workers in [0, 4096] (got %ld, %ld)", nproc, workers);
    sc.language = u.language;
    sc.interpreter = interp;
    sc.root_dir = root;
    sc.cpu_seconds = cpu;
    sc.wall_seconds = wall;
    sc.memory_bytes = (size_t)(mem_mb * (double)(1 << 20));
    sc.disk_bytes = (size_t)(disk_mb * (double)(1 << 20));
    sc.max_processes = (int)nproc;
    sc.workers = (int)workers;
    sc.unsafe = unsafe;
    u.workers = (int)workers;
    const cJSON *ro = cJSON_GetObjectItemCaseSensitive(cfg, "ro_paths");
    const char *ro_list[65];
    if (ro && !cJSON_IsNull(ro)) {
        PT_CHECK(cJSON_IsArray(ro) && cJSON_GetArraySize(ro) <= 64, err, PT_ERR_CONFIG,
                 "key 'ro_paths' expects a list of at most 64 absolute paths");
        int k = 0;
        for (const cJSON *e = ro->child; e; e = e->next) {
            PT_CHECK(cJSON_IsString(e), err, PT_ERR_CONFIG, "key 'ro_paths': entry %d is not a string", k);
            ro_list[k++] = e->valuestring;
        }
        ro_list[k] = NULL;
        sc.ro_paths = ro_list; /* sandbox_init copies them */
    }
    PT_TRY(sandbox_init(&u.sb, &sc, err));
    if (sandbox_layers_used(u.sb) != SANDBOX_LAYERS_ALL)
        fprintf(stderr, "posttrain: warning: reward '%s': %s\n", self->name, sandbox_describe(u.sb));
    unittest_reward *impl = malloc(sizeof *impl);
    if (!impl) {
        sandbox_free(u.sb);
        PT_CHECK_ALLOC(impl, err, sizeof *impl);
    }
    *impl = u;
    self->impl = impl;
    self->vt = &UNITTEST_VTABLE;
    return PT_OK;
}
