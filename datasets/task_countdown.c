/* task_countdown.c — the countdown task: numbers and a target reachable with + - * / using each
 * number at most once (as in TinyZero).
 *
 * Construction: draw k = difficulty + 2 numbers uniform in [1, max_number] (default 100); then,
 * while more than one value is left, take two at random (a, b) and combine them with an operator
 * drawn uniformly from those that keep every intermediate value a positive integer no larger than
 * CD_MAX_VALUE:
 *   a + b always;  a - b when a > b;  a * b when a, b > 1 and a·b <= CD_MAX_VALUE;
 *   a / b when b > 1 and b divides a.
 * The last value is the target. A draw is kept when 1 <= target <= CD_MAX_TARGET and the target
 * is not itself one of the numbers (that problem would be trivial); otherwise the stream draws
 * again. The tree's creation order is an evaluation order, so the worked solution lists one
 * "a op b = v" line per combination, and the answer prints the tree with the fewest parentheses
 * that keep its meaning under the usual precedence (a right operand of - or / that is itself
 * + - or * / is parenthesised). Every number is used exactly once in the reference solution.
 * The search trace (search_trace) instead lists, one line each, distinct random combinations of
 * all the numbers that miss the target ("a op b = v, v op c = w, no.") and then the reference
 * solution ("..., yes."); a random combination that reaches the target ends the search and is the
 * answer. How many miss: uniform in 0..max_misses (default TASK_SEARCH_MISSES), or with
 * geometric_misses one more with probability 1/2 after each, up to max_misses. With a uniform
 * count the last possible attempt is always a "yes", and a model learns to say "yes" there
 * whatever the value; the geometric count gives every attempt the same odds of being the last. With name_target each attempt names the target before its
 * verdict ("a op b = v, v op c = w, need T, no."), so the verdict compares two numbers on the same
 * line instead of the line's value with the target stated at the top of the reasoning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tasks.h"

enum { CD_MAX_NUMBERS = 6, CD_MAX_VALUE = 100000, CD_MAX_TARGET = 999, CD_MAX_DRAWS = 10000 };

typedef struct cd_node {
    int64_t value;
    char op; /* 0 for a number, else one of + - * / */
    int left, right;
} cd_node;

static int precedence(char op) { return op == '+' || op == '-' ? 1 : op ? 2 : 3; }

static void print_expr(task_text *t, const cd_node *nodes, int i) {
    const cd_node *n = &nodes[i];
    if (!n->op) {
        task_text_printf(t, "%lld", (long long)n->value);
        return;
    }
    int p = precedence(n->op);
    int pl = precedence(nodes[n->left].op), pr = precedence(nodes[n->right].op);
    bool paren_l = pl < p;
    bool paren_r = pr < p || (pr == p && (n->op == '-' || n->op == '/'));
    if (paren_l) task_text_printf(t, "(");
    print_expr(t, nodes, n->left);
    task_text_printf(t, paren_l ? ") %c " : " %c ", n->op);
    if (paren_r) task_text_printf(t, "(");
    print_expr(t, nodes, n->right);
    if (paren_r) task_text_printf(t, ")");
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Combines the k leaves nodes[0..k) at random into one value (k - 1 combinations appended in
 * creation order); returns the root index, or -1 when a value outgrows CD_MAX_VALUE. */
static int combine(cd_node *nodes, rng *r, int k) {
    int pool[CD_MAX_NUMBERS];
    for (int i = 0; i < k; i++) pool[i] = i;
    int n_nodes = k, size = k;
    while (size > 1) {
        int i = (int)rng_below(r, (uint32_t)size);
        int j = (int)rng_below(r, (uint32_t)size - 1);
        if (j >= i) j++;
        int64_t a = nodes[pool[i]].value, b = nodes[pool[j]].value;
        char ops[4];
        int n_ops = 0;
        ops[n_ops++] = '+';
        if (a > b) ops[n_ops++] = '-';
        if (a > 1 && b > 1 && a * b <= CD_MAX_VALUE) ops[n_ops++] = '*';
        if (b > 1 && a % b == 0) ops[n_ops++] = '/';
        char op = ops[rng_below(r, (uint32_t)n_ops)];
        int64_t v = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
        if (v > CD_MAX_VALUE) return -1;
        nodes[n_nodes] = (cd_node){.value = v, .op = op, .left = pool[i], .right = pool[j]};
        pool[i] = n_nodes++;
        pool[j] = pool[--size];
    }
    return pool[0];
}

/* One draw: fills nodes (k leaves, then k - 1 combinations in creation order); returns the root
 * index, or -1 when the draw is rejected. */
static int draw_tree(cd_node *nodes, rng *r, int k, int max_number) {
    for (int i = 0; i < k; i++)
        nodes[i] = (cd_node){.value = 1 + (int64_t)rng_below(r, (uint32_t)max_number), .op = 0, .left = -1, .right = -1};
    int root = combine(nodes, r, k);
    if (root < 0) return -1;
    int64_t target = nodes[root].value;
    if (target < 1 || target > CD_MAX_TARGET) return -1;
    for (int i = 0; i < k; i++)
        if (nodes[i].value == target) return -1;
    return root;
}

/* One attempt of a search trace: "a op b = v, v op c = w, no." (or "yes."); with name_target,
 * "..., need T, no.". */
static void print_attempt(task_text *t, const cd_node *nodes, int k, int root, bool hit, bool name_target,
                          int64_t target) {
    for (int i = k; i <= root; i++)
        task_text_printf(t, "%s%lld %c %lld = %lld", i > k ? ", " : "", (long long)nodes[nodes[i].left].value,
                         nodes[i].op, (long long)nodes[nodes[i].right].value, (long long)nodes[i].value);
    if (name_target) task_text_printf(t, ", need %lld", (long long)target);
    task_text_printf(t, hit ? ", yes.\n" : ", no.\n");
}

pt_status task_countdown_generate(task_example *out, rng *r, int difficulty, int max_number,
                                  const task_make_opts *opts, rng *search_rng, pt_error *err) {
    const bool short_prompt = opts->short_prompt, search = opts->search_trace, name_target = opts->name_target;
    out->record = NULL;
    out->key = NULL;
    const int k = difficulty + 2;
    PT_CHECK(k >= 3 && k <= CD_MAX_NUMBERS, err, PT_ERR_CONFIG, "countdown difficulty %d is out of range 1..4",
             difficulty);
    cd_node nodes[2 * CD_MAX_NUMBERS];
    int root = -1;
    for (int draw = 0; draw < CD_MAX_DRAWS && root < 0; draw++) root = draw_tree(nodes, r, k, max_number);
    PT_CHECK(root >= 0, err, PT_ERR_INTERNAL, "countdown: no acceptable problem in %d draws", CD_MAX_DRAWS);
    const int64_t target = nodes[root].value;

    task_text list = {0}, expr = {0}, prompt = {0}, completion = {0}, key = {0};
    for (int i = 0; i < k; i++) task_text_printf(&list, i ? ", %lld" : "%lld", (long long)nodes[i].value);
    print_expr(&expr, nodes, root);
    if (short_prompt)
        task_text_printf(&prompt, "Using the numbers [%s], make %lld.", list.buf, (long long)target);
    else
        task_text_printf(&prompt,
                         "Using the numbers [%s], create an equation that equals %lld. You can use +, -, * and /, "
                         "and each number at most once. Show your reasoning in <think> </think> tags and give only "
                         "the equation in <answer> </answer> tags, for example <answer>(1 + 2) / 3</answer>.",
                         list.buf, (long long)target);
    task_text_printf(&completion, "<think>\nI need to reach %lld using %s.\n", (long long)target, list.buf);
    if (search) {
        /* Random combinations of the numbers that miss the target, then the reference solution;
         * an attempt that happens to hit the target ends the search (it is a solution too, and
         * becomes the answer). Drawn after the problem: the problem and its key are those of the
         * direct trace. */
        if (search_rng) r = search_rng;
        const int max_misses = opts->max_misses ? opts->max_misses : TASK_SEARCH_MISSES;
        int misses = 0;
        if (opts->geometric_misses)
            while (misses < max_misses && rng_below(r, 2)) misses++;
        else
            misses = (int)rng_below(r, (uint64_t)max_misses + 1);
        bool hit = false;
        task_text tried[TASK_MAX_MISSES];
        for (int m = 0, tries = 0; m < misses && !hit && tries < 64; tries++) {
            cd_node att[2 * CD_MAX_NUMBERS];
            memcpy(att, nodes, (size_t)k * sizeof *att);
            int a_root = combine(att, r, k);
            if (a_root < 0) continue;
            hit = att[a_root].value == target;
            tried[m].len = 0, tried[m].overflow = false, tried[m].buf[0] = '\0';
            print_attempt(&tried[m], att, k, a_root, hit, name_target, target);
            bool again = false; /* the same attempt twice teaches nothing */
            for (int q = 0; q < m && !again; q++) again = strcmp(tried[q].buf, tried[m].buf) == 0;
            if (again) {
                hit = false;
                continue;
            }
            task_text_printf(&completion, "%s", tried[m].buf);
            if (hit) {
                expr.len = 0;
                expr.buf[0] = '\0';
                print_expr(&expr, att, a_root);
            }
            m++;
        }
        if (!hit) print_attempt(&completion, nodes, k, root, true, name_target, target);
        task_text_printf(&completion, "</think>\n<answer>%s</answer>", expr.buf);
    } else {
        for (int i = k; i <= root; i++)
            task_text_printf(&completion, "%lld %c %lld = %lld\n", (long long)nodes[nodes[i].left].value, nodes[i].op,
                             (long long)nodes[nodes[i].right].value, (long long)nodes[i].value);
        task_text_printf(&completion, "That reaches %lld, so the equation is %s.\n</think>\n<answer>%s</answer>",
                         (long long)target, expr.buf, expr.buf);
    }
    int64_t sorted[CD_MAX_NUMBERS];
    for (int i = 0; i < k; i++) sorted[i] = nodes[i].value;
    qsort(sorted, (size_t)k, sizeof sorted[0], cmp_i64);
    task_text_printf(&key, "countdown:");
    for (int i = 0; i < k; i++) task_text_printf(&key, i ? ",%lld" : "%lld", (long long)sorted[i]);
    task_text_printf(&key, "=%lld", (long long)target);
    PT_CHECK(!list.overflow && !expr.overflow && !prompt.overflow && !completion.overflow && !key.overflow, err,
             PT_ERR_INTERNAL, "countdown: a text outgrew its buffer");

    cJSON *rec = cJSON_CreateObject();
    cJSON *nums = cJSON_CreateArray();
    bool ok = rec && nums && cJSON_AddStringToObject(rec, "prompt", prompt.buf) && cJSON_AddItemToObject(rec, "numbers", nums);
    if (!ok) cJSON_Delete(nums);
    for (int i = 0; ok && i < k; i++) {
        cJSON *v = cJSON_CreateNumber((double)nodes[i].value);
        ok = v && cJSON_AddItemToArray(nums, v);
        if (!ok) cJSON_Delete(v);
    }
    ok = ok && cJSON_AddNumberToObject(rec, "target", (double)target) &&
         cJSON_AddStringToObject(rec, "completion", completion.buf);
    char *key_copy = ok ? strdup(key.buf) : NULL;
    if (!key_copy) {
        cJSON_Delete(rec);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory building a countdown example");
    }
    out->record = rec;
    out->key = key_copy;
    return PT_OK;
}
