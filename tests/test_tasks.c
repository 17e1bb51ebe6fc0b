/* test_tasks.c — the built-in tasks checked by code that shares nothing with the generators:
 * determinism and prefix stability of the files, disjoint train / held-out splits (also across
 * seeds), every countdown answer parsed by a recursive-descent evaluator over exact rationals
 * (numbers used at most once, value == target), every arithmetic answer recomputed from the
 * prompt with 128-bit integers and every "=" in the worked steps checked as an equation, and every
 * instruction answer recomputed from the user message per template (unit conversions through a
 * separate table of base-unit factors). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/tasks.h"

#define ASSERT_HAS(msg, text) cr_assert(strstr((msg), (text)), "expected '%s' in:\n%s", (text), (msg))

/* ------------------------------------------------------------------------ file helpers */

typedef struct lines {
    char **v;
    size_t n;
    char *data;
    size_t len;
} lines;

static void lines_read(lines *out, const char *path) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    out->data = malloc((size_t)sz + 1);
    cr_assert_eq(fread(out->data, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    out->data[sz] = 0;
    out->len = (size_t)sz;
    cr_assert(sz == 0 || out->data[sz - 1] == '\n', "%s does not end with a newline", path);
    size_t cap = 16;
    out->v = malloc(cap * sizeof *out->v);
    for (char *p = out->data; *p;) {
        char *nl = strchr(p, '\n');
        *nl = 0;
        if (out->n == cap) out->v = realloc(out->v, (cap *= 2) * sizeof *out->v);
        out->v[out->n++] = p;
        p = nl + 1;
    }
}

static void lines_free(lines *l) {
    free(l->v);
    free(l->data);
}

typedef struct tmpfiles {
    char dir[64];
    char train[96], eval[96];
} tmpfiles;

static void tmp_make(tmpfiles *t) {
    snprintf(t->dir, sizeof t->dir, "/tmp/pt_tasks_XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir));
    snprintf(t->train, sizeof t->train, "%s/train.jsonl", t->dir);
    snprintf(t->eval, sizeof t->eval, "%s/eval.jsonl", t->dir);
}

static void tmp_remove(tmpfiles *t) {
    unlink(t->train);
    unlink(t->eval);
    rmdir(t->dir);
}

static void make_files(tmpfiles *t, task_kind kind, uint64_t seed, int difficulty, size_t n, size_t eval_n) {
    task_make_opts o = {.kind = kind, .seed = seed, .difficulty = difficulty, .n = n, .eval_n = eval_n};
    pt_error err = {0};
    pt_status st = task_write_jsonl(&o, t->train, eval_n ? t->eval : NULL, &err);
    cr_assert_eq(st, PT_OK, "%s", err.msg);
}

static cJSON *parse_line(const char *line) {
    cJSON *j = cJSON_Parse(line);
    cr_assert(cJSON_IsObject(j), "not a JSON object: %s", line);
    return j;
}

static const char *get_str(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(cJSON_IsString(v), "field %s is not a string", key);
    return v->valuestring;
}

/* ------------------------------------------------------- exact rational expression evaluator */

typedef struct rat {
    __int128 num, den; /* den > 0, reduced */
} rat;

static __int128 gcd128(__int128 a, __int128 b) {
    if (a < 0) a = -a;
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t < 0 ? -t : t;
    }
    return a ? a : 1;
}

static rat rat_make(__int128 n, __int128 d) {
    if (d < 0) n = -n, d = -d;
    __int128 g = gcd128(n, d);
    return (rat){n / g, d / g};
}

typedef struct parser {
    const char *s;
    bool allow_unary;
    long long leaves[32];
    int n_leaves;
    bool bad;
} parser;

static void skip_ws(parser *p) {
    while (*p->s == ' ') p->s++;
}

static rat parse_expr(parser *p);

static rat parse_factor(parser *p) {
    skip_ws(p);
    if (*p->s == '(') {
        p->s++;
        rat v = parse_expr(p);
        skip_ws(p);
        if (*p->s != ')') p->bad = true;
        else p->s++;
        return v;
    }
    bool neg = false;
    if (*p->s == '-' && p->allow_unary) {
        neg = true;
        p->s++;
    }
    if (!isdigit((unsigned char)*p->s)) {
        p->bad = true;
        return rat_make(0, 1);
    }
    long long v = 0;
    while (isdigit((unsigned char)*p->s)) v = v * 10 + (*p->s++ - '0');
    if (p->n_leaves < 32) p->leaves[p->n_leaves++] = v;
    return rat_make(neg ? -v : v, 1);
}

static rat parse_term(parser *p) {
    rat a = parse_factor(p);
    for (;;) {
        skip_ws(p);
        char op = *p->s;
        if (op != '*' && op != '/') return a;
        p->s++;
        rat b = parse_factor(p);
        if (op == '*') {
            a = rat_make(a.num * b.num, a.den * b.den);
        } else {
            if (b.num == 0) {
                p->bad = true;
                return a;
            }
            a = rat_make(a.num * b.den, a.den * b.num);
        }
    }
}

static rat parse_expr(parser *p) {
    rat a = parse_term(p);
    for (;;) {
        skip_ws(p);
        char op = *p->s;
        if (op != '+' && op != '-') return a;
        p->s++;
        rat b = parse_term(p);
        a = rat_make(op == '+' ? a.num * b.den + b.num * a.den : a.num * b.den - b.num * a.den, a.den * b.den);
    }
}

/* Evaluates the whole of s; fails the test on a syntax error. */
static rat eval_all(parser *p, const char *s, bool allow_unary) {
    memset(p, 0, sizeof *p);
    p->s = s;
    p->allow_unary = allow_unary;
    rat v = parse_expr(p);
    skip_ws(p);
    cr_assert(!p->bad && *p->s == 0, "cannot parse expression \"%s\"", s);
    return v;
}

/* Every line of the think block that contains '=' is a chain of equal expressions (a clause
 * ", since X = Y" is a second chain); check each. */
static void check_equations(const char *think) {
    char *copy = strdup(think);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strchr(line, '=')) continue;
        size_t n = strlen(line);
        if (n && line[n - 1] == '.') line[n - 1] = 0;
        char *chains[2] = {line, NULL};
        char *since = strstr(line, ", since ");
        if (since) {
            *since = 0;
            chains[1] = since + 8;
        }
        for (int c = 0; c < 2 && chains[c]; c++) {
            char *side = chains[c];
            bool first = true;
            rat first_v = {0, 1};
            for (;;) {
                char *eq = strchr(side, '=');
                if (eq) *eq = 0;
                parser p;
                rat v = eval_all(&p, side, true);
                if (first) first_v = v;
                else cr_assert(v.num == first_v.num && v.den == first_v.den, "false step in: %s", think);
                first = false;
                if (!eq) break;
                side = eq + 1;
            }
            cr_assert(!first, "empty equation");
        }
    }
    free(copy);
}

/* Splits "<think>\nT\n</think>\n<answer>A</answer>" (the whole completion) into T and A. */
static void split_completion(const char *c, char **think, char **answer) {
    const char *t0 = "<think>\n", *t1 = "\n</think>\n<answer>", *a1 = "</answer>";
    cr_assert_eq(strncmp(c, t0, strlen(t0)), 0, "completion does not start with <think>: %s", c);
    const char *mid = strstr(c, t1);
    cr_assert_not_null(mid, "no </think><answer> in %s", c);
    size_t n = strlen(c);
    cr_assert(n > strlen(a1) && strcmp(c + n - strlen(a1), a1) == 0, "completion does not end with </answer>");
    *think = strndup(c + strlen(t0), (size_t)(mid - c) - strlen(t0));
    const char *a = mid + strlen(t1);
    *answer = strndup(a, (size_t)(c + n - strlen(a1) - a));
    cr_assert_null(strstr(*answer, "<"), "answer holds a tag: %s", *answer);
}

/* ---------------------------------------------------------------------------- tests */

Test(tasks, names_and_difficulty_ranges) {
    task_kind k;
    pt_error err = {0};
    cr_assert_eq(task_kind_parse(&k, "arithmetic", &err), PT_OK);
    cr_assert_eq(k, TASK_ARITHMETIC);
    cr_assert_eq(task_kind_parse(&k, "sudoku", &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "sudoku");
    ASSERT_HAS(err.msg, "countdown, arithmetic, instructions");
    task_example ex;
    cr_assert_eq(task_candidate(&ex, TASK_COUNTDOWN, 1, 5, 0, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "1..4");
    cr_assert_eq(task_candidate(&ex, TASK_INSTRUCTIONS, 1, 0, 0, &err), PT_ERR_CONFIG);
    task_make_opts o = {.kind = TASK_ARITHMETIC, .seed = 1, .n = 5, .eval_n = 2};
    cr_assert_eq(task_write_jsonl(&o, "/tmp/unused.jsonl", NULL, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "--eval-out");
    cr_assert_eq(task_write_jsonl(&o, "/tmp/same.jsonl", "/tmp/same.jsonl", &err), PT_ERR_CONFIG);
    /* An unwritable destination names the file and leaves nothing behind. */
    tmpfiles t;
    tmp_make(&t);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/missing/train.jsonl", t.dir);
    o.eval_n = 0;
    cr_assert_eq(task_write_jsonl(&o, bad, NULL, &err), PT_ERR_IO);
    ASSERT_HAS(err.msg, bad);
    /* When the second file cannot be created, the first is not left half-written. */
    o.eval_n = 2;
    cr_assert_eq(task_write_jsonl(&o, t.train, bad, &err), PT_ERR_IO);
    cr_assert_neq(access(t.train, F_OK), 0);
    cr_assert_eq(rmdir(t.dir), 0, "temporary files were left in %s", t.dir);
}

Test(tasks, same_seed_same_bytes_and_prefix_stable) {
    for (int kind = 0; kind < 3; kind++) {
        tmpfiles a, b, c;
        tmp_make(&a);
        tmp_make(&b);
        tmp_make(&c);
        make_files(&a, (task_kind)kind, 42, 0, 60, 8);
        make_files(&b, (task_kind)kind, 42, 0, 60, 8);
        make_files(&c, (task_kind)kind, 42, 0, 25, 3); /* fewer of each */
        lines la, lb, lc, ea, eb, ec;
        lines_read(&la, a.train);
        lines_read(&lb, b.train);
        lines_read(&lc, c.train);
        lines_read(&ea, a.eval);
        lines_read(&eb, b.eval);
        lines_read(&ec, c.eval);
        cr_assert_eq(la.n, 60);
        cr_assert_eq(ea.n, 8);
        cr_assert_eq(lc.n, 25);
        cr_assert_eq(ec.n, 3);
        cr_assert(la.len == lb.len && memcmp(la.data, lb.data, la.len) == 0, "%s: same seed, other bytes",
                  task_kind_name((task_kind)kind));
        cr_assert(ea.len == eb.len && memcmp(ea.data, eb.data, ea.len) == 0);
        /* Example i does not depend on n or eval_n. */
        for (size_t i = 0; i < lc.n; i++) cr_assert_str_eq(lc.v[i], la.v[i], "%s train line %zu", task_kind_name((task_kind)kind), i);
        for (size_t i = 0; i < ec.n; i++) cr_assert_str_eq(ec.v[i], ea.v[i]);
        /* Another seed gives other problems. */
        tmpfiles d;
        tmp_make(&d);
        make_files(&d, (task_kind)kind, 43, 0, 60, 0);
        lines ld;
        lines_read(&ld, d.train);
        size_t same = 0;
        for (size_t i = 0; i < ld.n; i++) same += strcmp(ld.v[i], la.v[i]) == 0;
        cr_assert_lt(same, 10, "%s: seeds 42 and 43 agree on %zu of 60 lines", task_kind_name((task_kind)kind), same);
        lines_free(&ld);
        tmp_remove(&d);
        lines_free(&la);
        lines_free(&lb);
        lines_free(&lc);
        lines_free(&ea);
        lines_free(&eb);
        lines_free(&ec);
        tmp_remove(&a);
        tmp_remove(&b);
        tmp_remove(&c);
    }
}

/* The prompt (or user message) of a record. */
static char *prompt_of(const char *line) {
    cJSON *j = parse_line(line);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "messages");
    char *p = strdup(m ? get_str(cJSON_GetArrayItem(m, 0), "content") : get_str(j, "prompt"));
    cJSON_Delete(j);
    return p;
}

/* A countdown problem's identity: sorted numbers and target (worked out here from the record). */
static char *countdown_identity(const char *line) {
    cJSON *j = parse_line(line);
    const cJSON *nums = cJSON_GetObjectItemCaseSensitive(j, "numbers");
    long long v[8];
    int n = cJSON_GetArraySize(nums);
    cr_assert(n >= 3 && n <= 6);
    for (int i = 0; i < n; i++) v[i] = (long long)cJSON_GetArrayItem(nums, i)->valuedouble;
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && v[k - 1] > v[k]; k--) {
            long long t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    char buf[128];
    int len = 0;
    for (int i = 0; i < n; i++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%lld,", v[i]);
    snprintf(buf + len, sizeof buf - (size_t)len, "=%lld",
             (long long)cJSON_GetObjectItemCaseSensitive(j, "target")->valuedouble);
    cJSON_Delete(j);
    return strdup(buf);
}

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* No string appears twice within a, within b, or across them. */
static void assert_all_distinct(char **a, size_t na, char **b, size_t nb, const char *what) {
    size_t n = na + nb;
    char **all = malloc(n * sizeof *all);
    memcpy(all, a, na * sizeof *a);
    memcpy(all + na, b, nb * sizeof *b);
    qsort(all, n, sizeof *all, cmp_strp);
    for (size_t i = 1; i < n; i++) cr_assert_str_neq(all[i - 1], all[i], "%s: duplicate problem", what);
    free(all);
}

Test(tasks, held_out_split_is_disjoint) {
    for (int kind = 0; kind < 3; kind++) {
        tmpfiles s1, s2;
        tmp_make(&s1);
        tmp_make(&s2);
        make_files(&s1, (task_kind)kind, 1, 1, 300, 40);
        make_files(&s2, (task_kind)kind, 2, 1, 300, 40);
        lines t1, e1, t2, e2;
        lines_read(&t1, s1.train);
        lines_read(&e1, s1.eval);
        lines_read(&t2, s2.train);
        lines_read(&e2, s2.eval);
        char *pt[300], *pe[40], *pt2[300], *pe2[40];
        for (size_t i = 0; i < 300; i++) {
            pt[i] = kind == TASK_COUNTDOWN ? countdown_identity(t1.v[i]) : prompt_of(t1.v[i]);
            pt2[i] = kind == TASK_COUNTDOWN ? countdown_identity(t2.v[i]) : prompt_of(t2.v[i]);
        }
        for (size_t i = 0; i < 40; i++) {
            pe[i] = kind == TASK_COUNTDOWN ? countdown_identity(e1.v[i]) : prompt_of(e1.v[i]);
            pe2[i] = kind == TASK_COUNTDOWN ? countdown_identity(e2.v[i]) : prompt_of(e2.v[i]);
        }
        assert_all_distinct(pt, 300, pe, 40, task_kind_name((task_kind)kind));
        /* The split is a property of the problem: seed 2's held-out set shares nothing with seed 1's
         * training set (and the other way round), at the easiest difficulty where repeats are common. */
        assert_all_distinct(pt, 300, pe2, 40, "seed 1 train vs seed 2 eval");
        assert_all_distinct(pt2, 300, pe, 40, "seed 2 train vs seed 1 eval");
        for (size_t i = 0; i < 300; i++) free(pt[i]), free(pt2[i]);
        for (size_t i = 0; i < 40; i++) free(pe[i]), free(pe2[i]);
        lines_free(&t1);
        lines_free(&e1);
        lines_free(&t2);
        lines_free(&e2);
        tmp_remove(&s1);
        tmp_remove(&s2);
    }
}

/* Generates n candidates of (kind, d) in memory through task_candidate, for the verifiers. */
typedef void (*record_check)(const cJSON *rec, int difficulty, void *ctx);

static void check_candidates(task_kind kind, int n, record_check check, void *ctx) {
    for (int d = 1; d <= task_difficulty_max(kind); d++)
        for (int j = 0; j < n; j++) {
            task_example ex;
            pt_error err = {0};
            cr_assert_eq(task_candidate(&ex, kind, 7, d, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            check(ex.record, d, ctx);
            task_example_free(&ex);
        }
}

typedef struct countdown_variant {
    int max_number;
    bool short_prompt;
    bool search; /* the think block is a search trace (checked by check_search) */
    bool name_target; /* ... whose attempts name the target ("..., need T, no.") */
    int max_attempts; /* ... of at most this many lines (0: 4, the default search's) */
} countdown_variant;

static void check_countdown(const cJSON *rec, int d, void *ctx) {
    const countdown_variant *var = ctx;
    const int max_number = var ? var->max_number : 100;
    const char *prompt = get_str(rec, "prompt");
    const cJSON *nums = cJSON_GetObjectItemCaseSensitive(rec, "numbers");
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(rec, "target");
    cr_assert(cJSON_IsArray(nums) && cJSON_IsNumber(target));
    int n = cJSON_GetArraySize(nums);
    cr_assert_eq(n, d + 2, "difficulty %d should give %d numbers", d, d + 2);
    long long have[8];
    char list[128] = "[";
    for (int i = 0; i < n; i++) {
        have[i] = (long long)cJSON_GetArrayItem(nums, i)->valuedouble;
        cr_assert(have[i] >= 1 && have[i] <= max_number, "number %lld is outside 1..%d", have[i], max_number);
        snprintf(list + strlen(list), sizeof list - strlen(list), i ? ", %lld" : "%lld", have[i]);
    }
    strcat(list, "]");
    long long tgt = (long long)target->valuedouble;
    char eq[64];
    snprintf(eq, sizeof eq, "equals %lld.", tgt);
    ASSERT_HAS(prompt, list);
    if (var && var->short_prompt) {
        char want[256];
        snprintf(want, sizeof want, "Using the numbers %s, make %lld.", list, tgt);
        cr_assert_str_eq(prompt, want);
    } else {
        ASSERT_HAS(prompt, eq);
        ASSERT_HAS(prompt, "<answer>");
    }
    char *think, *answer;
    split_completion(get_str(rec, "completion"), &think, &answer);
    parser p;
    rat v = eval_all(&p, answer, false);
    cr_assert(v.den == 1 && v.num == tgt, "%s does not make %lld", answer, tgt);
    /* Each number at most once: every literal is matched to a distinct given number. */
    bool used[8] = {false};
    for (int i = 0; i < p.n_leaves; i++) {
        int k = 0;
        while (k < n && (used[k] || have[k] != p.leaves[i])) k++;
        cr_assert_lt(k, n, "%s uses %lld, which is not available in %s", answer, p.leaves[i], list);
        used[k] = true;
    }
    if (!var || !var->search) check_equations(think);
    free(think);
    free(answer);
}

Test(tasks, countdown_solutions_verify) { check_candidates(TASK_COUNTDOWN, 250, check_countdown, NULL); }

/* The search trace: every attempt line is a chain of true equations over all the numbers
 * ("a op b = v, v op c = w, no." / "..., yes."), the misses end away from the target, only the
 * last line says yes and ends at the target, attempts are distinct, and the answer is a solution
 * (check_countdown on the record). */
static void check_search(const cJSON *rec, int d, void *ctx) {
    const countdown_variant *var = ctx;
    check_countdown(rec, d, ctx);
    const long long tgt = (long long)cJSON_GetObjectItemCaseSensitive(rec, "target")->valuedouble;
    char *think, *answer;
    split_completion(get_str(rec, "completion"), &think, &answer);
    char *copy = strdup(think), *tries[16];
    int n = 0;
    for (char *line = strtok(copy, "\n"); line && n < 16; line = strtok(NULL, "\n"))
        if (strncmp(line, "I need", 6) != 0) tries[n++] = line;
    const int most = var->max_attempts ? var->max_attempts : 4;
    cr_assert(n >= 1 && n <= most, "%d attempts (at most %d) in: %s", n, most, think);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) cr_assert_str_neq(tries[i], tries[j], "an attempt is repeated in: %s", think);
        const bool yes = strstr(tries[i], ", yes.") != NULL;
        cr_assert(yes == (i == n - 1), "only the last attempt may say yes: %s", think);
        cr_assert(yes || strstr(tries[i], ", no."), "attempt without a verdict: %s", tries[i]);
        char *verdict = strrchr(tries[i], ',');
        *verdict = 0;
        if (var->name_target) { /* "..., need T, no." */
            char *need = strrchr(tries[i], ',');
            cr_assert(need && strncmp(need, ", need ", 7) == 0, "attempt without the target named: %s", think);
            cr_assert_eq(atoll(need + 7), tgt, "attempt names %s, not the target %lld", need + 2, tgt);
            *need = 0;
        }
        long long last = 0;
        for (char *eq = strtok(tries[i], ","); eq; eq = strtok(NULL, ",")) {
            char *rhs = strchr(eq, '=');
            cr_assert(rhs, "no '=' in %s", eq);
            *rhs = 0;
            parser p;
            rat l = eval_all(&p, eq, true), r = eval_all(&p, rhs + 1, true);
            cr_assert(l.num == r.num && l.den == r.den && r.den == 1, "false step '%s=%s' in %s", eq, rhs + 1, think);
            last = r.num;
        }
        cr_assert(yes ? last == tgt : last != tgt, "attempt %d ends at %lld (target %lld, %s)", i, last, tgt,
                  yes ? "yes" : "no");
        /* strtok above consumed the line; the outer list of lines stays valid (separate buffer) */
    }
    free(copy);
    free(think);
    free(answer);
}

Test(tasks, countdown_search_trace) {
    int with_misses = 0;
    for (int d = 1; d <= 3; d++)
        for (int j = 0; j < 200; j++) {
            task_make_opts o = {.kind = TASK_COUNTDOWN, .seed = 7, .difficulty = d, .max_number = 10,
                                .short_prompt = true, .search_trace = true};
            task_example a, b;
            pt_error err = {0};
            cr_assert_eq(task_candidate_with(&a, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            countdown_variant var = {10, true, true, false, 0};
            check_search(a.record, d, &var);
            with_misses += strstr(get_str(a.record, "completion"), ", no.") != NULL;
            /* naming the target changes each attempt by ", need T" and nothing else */
            task_example c;
            o.name_target = var.name_target = true;
            cr_assert_eq(task_candidate_with(&c, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            check_search(c.record, d, &var);
            char need[32], *plain = strdup(get_str(c.record, "completion"));
            snprintf(need, sizeof need, ", need %lld,", (long long)cJSON_GetObjectItemCaseSensitive(c.record, "target")->valuedouble);
            for (char *at; (at = strstr(plain, need));) memmove(at + 1, at + strlen(need), strlen(at + strlen(need)) + 1);
            cr_assert_str_eq(plain, get_str(a.record, "completion"));
            cr_assert_str_eq(a.key, c.key);
            free(plain);
            task_example_free(&c);
            o.name_target = false;
            o.search_trace = false;
            cr_assert_eq(task_candidate_with(&b, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            cr_assert_str_eq(a.key, b.key, "the search trace must not change the problem");
            o.name_target = true;
            cr_assert_neq(task_candidate_with(&c, &o, (uint64_t)j, &err), PT_OK, "naming the target needs the search trace");
            cr_assert_null(c.record);
            task_example_free(&a), task_example_free(&b);
        }
    cr_assert(with_misses > 300, "too few traces with a rejected attempt (%d of 600)", with_misses);
}

static int attempt_lines(const cJSON *rec) {
    int n = 0;
    for (const char *c = get_str(rec, "completion"); (c = strstr(c, ", no.")) != NULL; c++) n++;
    return n + 1;
}

/* How many attempts a search makes: with geometric_misses every attempt is the last with about
 * the same odds (the draws stop with probability 1/2, a random hit ends a search a little
 * earlier), where the uniform count makes the last possible attempt always the last; max_misses
 * bounds both; the problem never changes; bad settings are refused. */
Test(tasks, countdown_geometric_misses) {
    enum { N = 3000, MAXM = 8 };
    int reach[MAXM + 3] = {0}, reach_uniform[MAXM + 3] = {0};
    for (int j = 0; j < N; j++) {
        task_make_opts o = {.kind = TASK_COUNTDOWN, .seed = 5, .difficulty = 2, .max_number = 20,
                            .short_prompt = true, .search_trace = true, .name_target = true};
        task_example plain, three, geo, uni;
        pt_error err = {0};
        cr_assert_eq(task_candidate_with(&plain, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
        o.max_misses = 3; /* the default, spelled out */
        cr_assert_eq(task_candidate_with(&three, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
        cr_assert_str_eq(get_str(three.record, "completion"), get_str(plain.record, "completion"));
        o.max_misses = MAXM;
        cr_assert_eq(task_candidate_with(&uni, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
        o.geometric_misses = true;
        cr_assert_eq(task_candidate_with(&geo, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
        countdown_variant var = {20, true, true, true, MAXM + 1};
        check_search(geo.record, 2, &var);
        check_search(uni.record, 2, &var);
        cr_assert_str_eq(geo.key, plain.key, "the number of misses must not change the problem");
        cr_assert_str_eq(uni.key, plain.key);
        for (int k = 1, a = attempt_lines(geo.record); k <= a; k++) reach[k]++;
        for (int k = 1, a = attempt_lines(uni.record); k <= a; k++) reach_uniform[k]++;
        task_example_free(&plain), task_example_free(&three), task_example_free(&geo), task_example_free(&uni);
    }
    /* the share of searches that end at attempt k, of those that got there */
    for (int k = 1; k <= 4; k++) {
        const double stop = 1.0 - (double)reach[k + 1] / reach[k];
        cr_assert(stop > 0.45 && stop < 0.62, "geometric: %.3f of the searches reaching attempt %d end there", stop, k);
    }
    cr_assert_gt(reach[7], 0, "no geometric search reached 7 attempts");
    cr_assert_eq(reach_uniform[MAXM + 1] > N / 20 && reach_uniform[MAXM + 2] == 0, true,
                 "uniform up to %d misses: %d searches reach attempt %d", MAXM, reach_uniform[MAXM + 1], MAXM + 1);
    /* refusals */
    task_make_opts bad = {.kind = TASK_COUNTDOWN, .seed = 5, .difficulty = 1, .geometric_misses = true};
    task_example ex;
    pt_error err = {0};
    cr_assert_neq(task_candidate_with(&ex, &bad, 0, &err), PT_OK);
    ASSERT_HAS(err.msg, "search trace");
    bad.geometric_misses = false, bad.search_trace = true, bad.max_misses = TASK_MAX_MISSES + 1;
    cr_assert_neq(task_candidate_with(&ex, &bad, 0, &err), PT_OK);
    ASSERT_HAS(err.msg, "max_misses");
    cr_assert_null(ex.record);
}

/* Several searches per problem: each training problem is written `traces` times in a row, the
 * first line is the line written without traces, every copy is a valid search of the same problem
 * (check_search), the copies are not all alike, and the held-out file does not change. */
Test(tasks, countdown_several_traces) {
    tmpfiles one, three;
    tmp_make(&one);
    tmp_make(&three);
    task_make_opts o = {.kind = TASK_COUNTDOWN, .seed = 3, .difficulty = 1, .max_number = 10, .short_prompt = true,
                        .search_trace = true, .n = 60, .eval_n = 8};
    pt_error err = {0};
    cr_assert_eq(task_write_jsonl(&o, one.train, one.eval, &err), PT_OK, "%s", err.msg);
    o.traces = 3;
    cr_assert_eq(task_write_jsonl(&o, three.train, three.eval, &err), PT_OK, "%s", err.msg);
    lines a, b, ea, eb;
    lines_read(&a, one.train), lines_read(&b, three.train), lines_read(&ea, one.eval), lines_read(&eb, three.eval);
    cr_assert_eq(b.n, 3 * a.n);
    cr_assert_eq(ea.n, eb.n);
    for (size_t i = 0; i < ea.n; i++) cr_assert_str_eq(ea.v[i], eb.v[i]);
    countdown_variant var = {10, true, true, false, 0};
    int differ = 0;
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_str_eq(b.v[3 * i], a.v[i], "copy 0 of problem %zu is not the single-trace line", i);
        cJSON *first = cJSON_Parse(b.v[3 * i]);
        for (int c = 1; c < 3; c++) {
            cJSON *rec = cJSON_Parse(b.v[3 * i + c]);
            cr_assert_not_null(rec);
            check_search(rec, 1, &var);
            cr_assert_str_eq(get_str(rec, "prompt"), get_str(first, "prompt"));
            differ += strcmp(get_str(rec, "completion"), get_str(first, "completion")) != 0;
            cJSON_Delete(rec);
        }
        cJSON_Delete(first);
    }
    cr_assert(differ > (int)a.n, "only %d of %zu copies differ from the first search", differ, 2 * a.n);
    lines_free(&a), lines_free(&b), lines_free(&ea), lines_free(&eb);
    /* refused without a search trace, and out of range */
    o.search_trace = false;
    cr_assert_neq(task_write_jsonl(&o, three.train, three.eval, &err), PT_OK);
    ASSERT_HAS(err.msg, "search trace");
    o.search_trace = true;
    o.traces = TASK_MAX_TRACES + 1;
    cr_assert_neq(task_write_jsonl(&o, three.train, three.eval, &err), PT_OK);
    ASSERT_HAS(err.msg, "traces");
    tmp_remove(&one), tmp_remove(&three);
}

/* max_number and the short prompt: numbers stay in range, every solution verifies, the style
 * changes nothing but the prompt, and the default range keeps task_candidate's stream. */
Test(tasks, countdown_variants) {
    for (int d = 1; d <= 2; d++)
        for (int j = 0; j < 200; j++) {
            task_make_opts o = {.kind = TASK_COUNTDOWN, .seed = 7, .difficulty = d, .max_number = 20, .short_prompt = true};
            task_example a, b, c, e;
            pt_error err = {0};
            cr_assert_eq(task_candidate_with(&a, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            countdown_variant var = {20, true, false, false, 0};
            check_countdown(a.record, d, &var);
            o.short_prompt = false;
            cr_assert_eq(task_candidate_with(&b, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            var.short_prompt = false;
            check_countdown(b.record, d, &var);
            cr_assert_str_eq(a.key, b.key);
            cr_assert_str_eq(get_str(a.record, "completion"), get_str(b.record, "completion"));
            cr_assert_str_neq(get_str(a.record, "prompt"), get_str(b.record, "prompt"));
            o.max_number = 0;
            cr_assert_eq(task_candidate_with(&c, &o, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            cr_assert_eq(task_candidate(&e, TASK_COUNTDOWN, 7, d, (uint64_t)j, &err), PT_OK, "%s", err.msg);
            cr_assert_str_eq(c.key, e.key, "the default range must keep task_candidate's problems");
            task_example_free(&a), task_example_free(&b), task_example_free(&c), task_example_free(&e);
        }
    task_make_opts bad = {.kind = TASK_ARITHMETIC, .seed = 1, .difficulty = 1, .short_prompt = true};
    task_example x;
    pt_error err = {0};
    cr_assert_eq(task_candidate_with(&x, &bad, 0, &err), PT_ERR_CONFIG);
    bad = (task_make_opts){.kind = TASK_COUNTDOWN, .seed = 1, .difficulty = 1, .max_number = 1};
    cr_assert_eq(task_candidate_with(&x, &bad, 0, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "max_number");
}

static int count_digits(long long v) {
    int n = 1;
    while (v >= 10) v /= 10, n++;
    return n;
}

static void check_arithmetic(const cJSON *rec, int d, void *ctx) {
    static const int operands[] = {2, 2, 3, 3, 4}, digits[] = {2, 3, 3, 4, 5};
    const char *prompt = get_str(rec, "prompt");
    const char *head = "Compute ";
    cr_assert_eq(strncmp(prompt, head, strlen(head)), 0);
    const char *end = strstr(prompt, ". Work it out");
    cr_assert_not_null(end);
    char *expr = strndup(prompt + strlen(head), (size_t)(end - prompt) - strlen(head));
    parser p;
    rat v = eval_all(&p, expr, false);
    cr_assert_eq(v.den, 1, "%s is not an integer", expr);
    cr_assert_eq(p.n_leaves, operands[d - 1], "%s: difficulty %d", expr, d);
    for (int i = 0; i < p.n_leaves; i++) cr_assert_leq(count_digits(p.leaves[i]), digits[d - 1], "%s", expr);
    /* Exact division: the evaluator works in rationals, so check each quotient separately. */
    for (const char *s = strchr(expr, '/'); s; s = strchr(s + 1, '/')) {
        const char *a = s - 2;
        while (a > expr && isdigit((unsigned char)a[-1])) a--;
        long long dividend = atoll(a), divisor = atoll(s + 2);
        cr_assert(divisor > 1 && dividend % divisor == 0, "%s: inexact division", expr);
    }
    char want[48];
    snprintf(want, sizeof want, "%lld", (long long)v.num);
    cr_assert_str_eq(get_str(rec, "answer"), want, "%s", expr);
    char *think, *answer;
    split_completion(get_str(rec, "completion"), &think, &answer);
    cr_assert_str_eq(answer, want);
    check_equations(think);
    free(think);
    free(answer);
    free(expr);
}

Test(tasks, arithmetic_answers_verify) { check_candidates(TASK_ARITHMETIC, 250, check_arithmetic, NULL); }

/* Text between the k-th pair of double quotes (k = 0, 1). */
static char *quoted(const char *s, int k) {
    const char *a = s;
    for (int i = 0; i <= k; i++) {
        a = strchr(a, '"');
        cr_assert_not_null(a, "no quoted text %d in %s", k, s);
        if (i < k) a = strchr(a + 1, '"') + 1;
    }
    const char *b = strchr(a + 1, '"');
    cr_assert_not_null(b);
    return strndup(a + 1, (size_t)(b - a - 1));
}

/* Text after `after` up to `until`. */
static char *between(const char *s, const char *after, const char *until) {
    const char *a = strstr(s, after);
    cr_assert_not_null(a, "'%s' not in %s", after, s);
    a += strlen(after);
    const char *b = strstr(a, until);
    cr_assert_not_null(b, "'%s' not in %s", until, s);
    return strndup(a, (size_t)(b - a));
}

static int split_list(char *list, char **items, int max) {
    int n = 0;
    for (char *t = strtok(list, ","); t && n < max; t = strtok(NULL, ",")) {
        while (*t == ' ') t++;
        items[n++] = t;
    }
    return n;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Factor of a unit to its quantity's base unit (millimetre, inch, gram, second, millilitre). */
static long long unit_factor(const char *u, int *quantity) {
    static const struct { const char *name; int q; long long f; } T[] = {
        {"kilometers", 0, 1000000}, {"meters", 0, 1000}, {"centimeters", 0, 10}, {"millimeters", 0, 1},
        {"yards", 1, 36}, {"feet", 1, 12}, {"inches", 1, 1},
        {"kilograms", 2, 1000}, {"grams", 2, 1},
        {"weeks", 3, 604800}, {"days", 3, 86400}, {"hours", 3, 3600}, {"minutes", 3, 60}, {"seconds", 3, 1},
        {"liters", 4, 1000}, {"milliliters", 4, 1},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (strcmp(T[i].name, u) == 0) {
            *quantity = T[i].q;
            return T[i].f;
        }
    cr_assert_fail("unknown unit %s", u);
    return 0;
}

/* ctx: int[8], how often each template was seen. */
static void check_instruction(const cJSON *rec, int d, void *ctx) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, "messages");
    cr_assert(cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) == 2);
    const cJSON *mu = cJSON_GetArrayItem(msgs, 0), *ma = cJSON_GetArrayItem(msgs, 1);
    cr_assert_str_eq(get_str(mu, "role"), "user");
    cr_assert_str_eq(get_str(ma, "role"), "assistant");
    const char *user = get_str(mu, "content"), *reply = get_str(ma, "content");
    const char *task = get_str(rec, "task");
    char want[1024] = "";
    static const char *const names[] = {"sort_numbers", "sort_words", "reverse", "count_letter",
                                        "count_words",  "convert_units", "extreme", "uppercase"};
    int which = -1;
    for (int i = 0; i < 8; i++)
        if (strcmp(task, names[i]) == 0) which = i;
    cr_assert_geq(which, 0, "unknown task %s", task);
    ((int *)ctx)[which]++;
    if (which == 0 || which == 6) {
        char *list = which == 0 ? between(user, ": ", ". Reply") : between(user, ": ", "? Reply");
        char *items[32];
        int n = split_list(list, items, 32);
        cr_assert_eq(n, 3 + 2 * d, "%s", user);
        long long v[32];
        for (int i = 0; i < n; i++) v[i] = atoll(items[i]);
        qsort(v, (size_t)n, sizeof v[0], cmp_ll);
        if (which == 0) {
            bool desc = strstr(user, "largest to smallest") != NULL;
            for (int i = 0; i < n; i++)
                snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %lld" : "%lld", v[desc ? n - 1 - i : i]);
        } else {
            snprintf(want, sizeof want, "%lld", strstr(user, "largest") ? v[n - 1] : v[0]);
        }
        free(list);
    } else if (which == 1) {
        char *list = between(user, "alphabetically: ", ". Reply");
        char *items[32];
        int n = split_list(list, items, 32);
        cr_assert_eq(n, 2 + 2 * d);
        qsort(items, (size_t)n, sizeof items[0], cmp_strp);
        for (int i = 0; i < n; i++) snprintf(want + strlen(want), sizeof want - strlen(want), i ? ", %s" : "%s", items[i]);
        free(list);
    } else if (which == 2) {
        char *s = quoted(user, 0);
        size_t n = strlen(s);
        for (size_t i = 0; i < n; i++) want[i] = s[n - 1 - i];
        want[n] = 0;
        free(s);
    } else if (which == 3) {
        char *letter = quoted(user, 0), *text = quoted(user, 1);
        cr_assert_eq(strlen(letter), 1);
        int c = 0;
        for (const char *q = text; *q; q++) c += *q == letter[0];
        snprintf(want, sizeof want, "%d", c);
        free(letter);
        free(text);
    } else if (which == 4) {
        char *text = quoted(user, 0);
        int c = 0;
        for (char *t = strtok(text, " "); t; t = strtok(NULL, " ")) c++;
        snprintf(want, sizeof want, "%d", c);
        free(text);
    } else if (which == 5) {
        long long amount = 0;
        char from[32], to[32];
        cr_assert_eq(sscanf(user, "Convert %lld %31s to %31[a-z].", &amount, from, to), 3, "%s", user);
        int qa, qb;
        long long fa = unit_factor(from, &qa), fb = unit_factor(to, &qb);
        cr_assert_eq(qa, qb, "%s converts between quantities", user);
        cr_assert_eq((amount * fa) % fb, 0, "%s is not exact", user);
        snprintf(want, sizeof want, "%lld", amount * fa / fb);
    } else {
        char *s = quoted(user, 0);
        size_t n = strlen(s);
        for (size_t i = 0; i < n; i++) want[i] = (char)toupper((unsigned char)s[i]);
        want[n] = 0;
        cr_assert_eq(strlen(want), n);
        free(s);
    }
    cr_assert_str_eq(reply, want, "task %s: %s", task, user);
}

Test(tasks, instruction_answers_verify) {
    int seen_templates[8] = {0};
    check_candidates(TASK_INSTRUCTIONS, 300, check_instruction, seen_templates);
    for (int i = 0; i < 8; i++) cr_assert_gt(seen_templates[i], 20, "template %d appeared %d times", i, seen_templates[i]);
}

/* The records are the shapes TRL reads: countdown and arithmetic have prompt/completion plus their
 * verifier columns; instructions have messages. */
Test(tasks, record_shapes) {
    task_example ex;
    pt_error err = {0};
    cr_assert_eq(task_candidate(&ex, TASK_COUNTDOWN, 3, 2, 0, &err), PT_OK);
    const char *keys_cd[] = {"prompt", "numbers", "target", "completion"};
    cr_assert_eq(cJSON_GetArraySize(ex.record), 4);
    for (int i = 0; i < 4; i++) cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(ex.record, keys_cd[i]));
    task_example_free(&ex);
    cr_assert_eq(task_candidate(&ex, TASK_ARITHMETIC, 3, 2, 0, &err), PT_OK);
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ex.record, "answer")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ex.record, "prompt")));
    cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ex.record, "completion")));
    task_example_free(&ex);
}

static pt_status count_emit(void *ctx, task_split split, const char *line, size_t len, pt_error *err) {
    ((size_t *)ctx)[split]++;
    return PT_OK;
}

/* Asking for more distinct problems than a difficulty has ends with a clear error, not a hang. */
Test(tasks, exhausted_space_is_a_clear_error) {
    task_make_opts o = {.kind = TASK_ARITHMETIC, .seed = 1, .difficulty = 1, .n = 40000, .eval_n = 10};
    size_t counts[2] = {0, 0}, candidates = 0;
    pt_error err = {0};
    cr_assert_eq(task_generate(&o, count_emit, counts, &candidates, &err), PT_ERR_CONFIG);
    ASSERT_HAS(err.msg, "raise --difficulty");
    cr_assert_lt(counts[0], 40000);
    cr_assert_eq(counts[1], 10);
    cr_assert_lt(candidates, 2000000);
}
