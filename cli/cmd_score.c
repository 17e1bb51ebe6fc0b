/* cmd_score.c — `posttrain score --rewards FILE.json --data completions.jsonl`: runs a reward
 * set over completions offline and prints a table (one column per reward, then the weighted
 * total), the masked/failed items with their reasons, and per-reward means, counts and times —
 * for writing and debugging reward functions without a training run.
 *
 * FILE.json is a JSON array of reward configs, or an object {"rewards": [...], "max_error_rate",
 * "error_window", "error_min_items"}. Each data line is a JSON object with "prompt" and
 * "completion" (strings, or TRL conversational lists of {"role", "content"} messages, whose
 * contents are joined with "\n"), an optional integer "completion_tokens", and any other keys,
 * which become the item's columns. A line that is not such an object is reported as
 * FILE:LINE and skipped; the exit code is then 1. Lines are scored in batches of --batch_size (a
 * subprocess or HTTP reward sees one request per batch). Exit codes: 0 all good, 1 bad lines or a
 * reward set that exceeded its error rate, 2 bad options or config.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "rewards/reward_file.h"
#include "rewards/reward.h"

static const config_key SCORE_KEYS[] = {
    {"rewards", CONFIG_STRING, "null", "JSON file: an array of reward configs {\"name\", \"type\", \"weight\", ...}"},
    {"data", CONFIG_STRING, "null", "JSONL file: one {\"prompt\", \"completion\", ...columns} object per line"},
    {"batch_size", CONFIG_INT, "64", "lines scored per call of each reward"},
    {"max_error_rate", CONFIG_FLOAT, "null", "override the rewards file's error-rate limit (0..1)"},
    {"reasons", CONFIG_BOOL, "true", "list every masked or failed item with its reason"},
};

typedef struct score_batch {
    reward_item *items;     /* (cap) */
    char **texts;           /* (3·cap) owned strings: prompt, completion, columns */
    long *lines;            /* (cap) data line numbers */
    int n, cap;
} score_batch;

typedef struct score_run {
    reward_set set;
    reward_result *total, *per; /* (cap), (set.n, cap) */
    int *width;                 /* (set.n + 1) column widths; [set.n] is the total */
    double *sum;                /* (set.n + 1) sums of scored values over the run */
    long *scored;               /* (set.n + 1) scored counts over the run */
    long rows, bad_lines;
    bool reasons;
} score_run;

static char *join_messages(const cJSON *v) {
    if (cJSON_IsString(v)) return strdup(v->valuestring);
    if (!cJSON_IsArray(v)) return NULL;
    size_t len = 1;
    for (const cJSON *m = v->child; m; m = m->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(c)) return NULL;
        len += strlen(c->valuestring) + 1;
    }
    char *out = malloc(len);
    if (!out) return NULL;
    out[0] = '\0';
    for (const cJSON *m = v->child; m; m = m->next) {
        if (m != v->child) strcat(out, "\n");
        strcat(out, cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring);
    }
    return out;
}

/* Turns one data line into batch slot b->n; returns a message for a bad line, NULL on success. */
static const char *add_line(score_batch *b, const char *text, long lineno) {
    cJSON *obj = cJSON_Parse(text);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return "not a JSON object";
    }
    const char *why = NULL;
    char *prompt = NULL, *completion = NULL, *cols = NULL;
    int tokens = -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, "completion");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "completion_tokens");
    if (!c) why = "missing \"completion\"";
    else if (!(completion = join_messages(c))) why = "\"completion\" must be a string or a list of {\"content\"} messages";
    else if (p && !cJSON_IsNull(p) && !(prompt = join_messages(p)))
        why = "\"prompt\" must be a string or a list of {\"content\"} messages";
    else if (t && !(cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble == (double)(int)t->valuedouble))
        why = "\"completion_tokens\" must be a non-negative integer";
    if (!why) {
        if (t) tokens = (int)t->valuedouble;
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "prompt");
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "completion");
        cJSON_DeleteItemFromObjectCaseSensitive(obj, "completion_tokens");
        cols = cJSON_PrintUnformatted(obj);
        if (!prompt) prompt = strdup("");
        if (!cols || !prompt) why = "out of memory";
    }
    cJSON_Delete(obj);
    if (why) {
        free(prompt);
        free(completion);
        cJSON_free(cols);
        return why;
    }
    int i = b->n++;
    b->texts[3 * i] = prompt;
    b->texts[3 * i + 1] = completion;
    b->texts[3 * i + 2] = cols;
    b->items[i] = (reward_item){prompt, completion, cols, tokens};
    b->lines[i] = lineno;
    return NULL;
}

static void batch_clear(score_batch *b) {
    for (int i = 0; i < 3 * b->n; i++) free(b->texts[i]);
    b->n = 0;
}

static void print_cell(score_run *run, int col, const reward_result *r) {
    int width = run->width[col];
    if (r->status == REWARD_OK) {
        printf(" %*.4f", width, r->score);
        run->sum[col] += r->score;
        run->scored[col]++;
    }
    else printf(" %*s", width, r->status == REWARD_MASKED ? "masked" : "ERROR");
}

static void print_header(const score_run *run) {
    printf("%8s", "line");
    for (int k = 0; k < run->set.n; k++) printf(" %*s", run->width[k], run->set.rewards[k]->name);
    printf(" %*s\n", run->width[run->set.n], "total");
}

/* Scores and prints one batch; PT_ERR_BACKEND when the error rate was exceeded (rows printed). */
static pt_status score_and_print(score_run *run, score_batch *b, pt_error *err) {
    if (b->n == 0) return PT_OK;
    pt_status st = reward_set_score(&run->set, run->total, run->per, b->items, b->n, err);
    if (st != PT_OK && st != PT_ERR_BACKEND) return st;
    int nr = run->set.n;
    for (int i = 0; i < b->n; i++) {
        printf("%8ld", b->lines[i]);
        for (int k = 0; k < nr; k++) print_cell(run, k, &run->per[(size_t)k * (size_t)b->n + (size_t)i]);
        print_cell(run, nr, &run->total[i]);
        printf("\n");
        if (!run->reasons) continue;
        for (int k = 0; k < nr; k++) {
            const reward_result *r = &run->per[(size_t)k * (size_t)b->n + (size_t)i];
            if (r->status != REWARD_OK)
                printf("%8s   %s %s: %s\n", "", run->set.rewards[k]->name, r->status == REWARD_MASKED ? "masked" : "failed",
                       r->reason);
        }
    }
    run->rows += b->n;
    batch_clear(b);
    return st;
}

static void print_summary(const score_run *run) {
    int nr = run->set.n;
    printf("%8s", "mean");
    for (int k = 0; k <= nr; k++) {
        if (run->scored[k]) printf(" %*.4f", run->width[k], run->sum[k] / (double)run->scored[k]);
        else printf(" %*s", run->width[k], "-");
    }
    printf("\n");
    printf("\n%-16s %10s %8s %8s %8s %10s\n", "reward", "weight", "scored", "masked", "errors", "seconds");
    for (int k = 0; k < nr; k++) {
        const reward_stats *s = &run->set.stats[k];
        printf("%-16s %10g %8ld %8ld %8ld %10.3f\n", run->set.rewards[k]->name, run->set.rewards[k]->weight,
               s->total_scored, s->total_masked, s->total_errors, s->total_seconds);
    }
    printf("%-16s %10s %8ld %8ld\n", "total", "", run->scored[nr], run->set.total_masked);
}

static pt_status load_rewards(reward_set *set, const char *path, const config *cfg, pt_error *err) {
    double rate = config_is_null(cfg, "max_error_rate") ? -1.0 : config_float(cfg, "max_error_rate");
    return reward_set_load_file(set, path, rate, NULL, err);
}

static int run_score(score_run *run, const config *cfg, const char *rewards_path, const char *data_path) {
    pt_error err = {0};
    if (load_rewards(&run->set, rewards_path, cfg, &err) != PT_OK) return cli_fail("score", &err);
    int rc = 0;
    long bs = config_int(cfg, "batch_size");
    FILE *f = NULL;
    score_batch b = {0};
    char *line = NULL;
    size_t line_cap = 0;
    if (bs < 1 || bs > 1000000) {
        fprintf(stderr, "posttrain score: --batch_size must be in [1, 1000000], got %ld\n", bs);
        rc = 2;
        goto done;
    }
    f = fopen(data_path, "rb");
    if (!f) {
        fprintf(stderr, "posttrain score: cannot open %s: %s\n", data_path, strerror(errno));
        rc = 1;
        goto done;
    }
    int nr = run->set.n;
    b.cap = (int)bs;
    b.items = calloc((size_t)bs, sizeof *b.items);
    b.texts = calloc(3 * (size_t)bs, sizeof *b.texts);
    b.lines = calloc((size_t)bs, sizeof *b.lines);
    run->total = calloc((size_t)bs, sizeof *run->total);
    run->per = calloc((size_t)bs * (size_t)nr, sizeof *run->per);
    run->width = calloc((size_t)nr + 1, sizeof *run->width);
    run->sum = calloc((size_t)nr + 1, sizeof *run->sum);
    run->scored = calloc((size_t)nr + 1, sizeof *run->scored);
    if (!b.items || !b.texts || !b.lines || !run->total || !run->per || !run->width || !run->sum || !run->scored) {
        fprintf(stderr, "posttrain score: out of memory for a batch of %ld\n", bs);
        rc = 1;
        goto done;
    }
    for (int k = 0; k <= nr; k++) {
        int w = k < nr ? (int)strlen(run->set.rewards[k]->name) : 5;
        run->width[k] = w > 10 ? w : 10;
    }
    print_header(run);
    long lineno = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        size_t skip = strspn(line, " \t");
        if (line[skip] == '\0') continue;
        const char *why = add_line(&b, line, lineno);
        if (why) {
            fprintf(stderr, "%s:%ld: %s; line skipped\n", data_path, lineno, why);
            run->bad_lines++;
            continue;
        }
        if (b.n == b.cap && score_and_print(run, &b, &err) != PT_OK) break;
    }
    if (err.status == PT_OK) score_and_print(run, &b, &err);
    fflush(stdout);
    if (err.status != PT_OK) {
        rc = cli_fail("score", &err);
        if (rc == 2) rc = 1;
    }
    if (run->rows == 0 && err.status == PT_OK) fprintf(stderr, "posttrain score: %s has no scorable lines\n", data_path);
    print_summary(run);
    if (rc == 0 && run->bad_lines) {
        fprintf(stderr, "posttrain score: %ld bad line(s) in %s were skipped\n", run->bad_lines, data_path);
        rc = 1;
    }
done:
    if (f) fclose(f);
    free(line);
    batch_clear(&b);
    free(b.items);
    free(b.texts);
    free(b.lines);
    return rc;
}

int cmd_score(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(SCORE_KEYS);
    config cfg;
    int rc = cli_parse(&cfg, &schema, 1, argc, argv,
                       "Score completions with a reward set and print each reward's column and the weighted total.");
    if (rc) return rc < 0 ? 0 : rc;
    const char *rewards_path = cli_require(&cfg, "score", "rewards");
    const char *data_path = cli_require(&cfg, "score", "data");
    rc = 2;
    if (rewards_path && data_path) {
        score_run run = {0};
        run.reasons = config_bool(&cfg, "reasons");
        rc = run_score(&run, &cfg, rewards_path, data_path);
        reward_set_free(&run.set);
        free(run.total);
        free(run.per);
        free(run.width);
        free(run.sum);
        free(run.scored);
    }
    config_free(&cfg);
    return rc;
}
