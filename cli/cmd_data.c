/* cmd_data.c — `posttrain data make TASK ...` writes a built-in task as JSONL (datasets/tasks.h);
 * `posttrain data inspect FILE [--tokenizer DIR]` reports what a JSONL file holds: records per
 * shape, every bad line with its line number and reason (datasets/record.h checks each line on
 * its own, so one bad line does not hide the next), and with a tokenizer a histogram of the
 * token lengths training would see (datasets/dataset.h tokenises the good records exactly as the
 * trainers do, with no truncation). inspect exits 1 when it found bad lines, so it can gate a
 * pipeline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "datasets/dataset.h"
#include "datasets/record.h"
#include "datasets/tasks.h"
#include "model/tokenizer.h"

static const config_key MAKE_KEYS[] = {
    {"n", CONFIG_INT, "1000", "training examples to write to --out"},
    {"seed", CONFIG_INT, "0", "generator seed: the same seed writes the same bytes"},
    {"out", CONFIG_STRING, "null", "the training JSONL file"},
    {"eval_n", CONFIG_INT, "0",
     "held-out examples to write to --eval-out; a problem is held out by a hash of its content, so it never "
     "appears in any training file of any seed"},
    {"eval_out", CONFIG_STRING, "null", "the held-out JSONL file (needed when --eval-n > 0)"},
    {"difficulty", CONFIG_INT, "null",
     "countdown 1..4 (3..6 numbers), arithmetic 1..5 (operands and digits), instructions 1..3; default 2"},
    {"max_number", CONFIG_INT, "100", "countdown: the numbers are drawn from 1..max_number"},
    {"trace", CONFIG_STRING, "\"direct\"",
     "countdown's worked solution: direct (the combinations that reach the target), search (0-3 random "
     "combinations checked and rejected first, then the one that reaches it: \"a + b = v, v * c = w, no.\") "
     "or check (the search, each attempt naming the target before its verdict: \"..., v * c = w, need T, no.\")"},
    {"traces", CONFIG_INT, "1",
     "countdown with --trace search or check: write each training problem this many times, each with its own "
     "random search (--n counts problems; held-out problems are written once)"},
    {"misses", CONFIG_STRING, "\"uniform\"",
     "countdown with --trace search or check: how many rejected attempts come before the solution: uniform "
     "(0..--max_misses, equally likely) or geometric (after each, another with probability 1/2, up to "
     "--max_misses), which gives every attempt the same odds of being the last"},
    {"max_misses", CONFIG_INT, "3", "countdown with --trace search or check: rejected attempts at most (1..12)"},
    {"prompt_style", CONFIG_STRING, "\"tinyzero\"",
     "countdown: tinyzero (the task's instructions in full) or short (\"Using the numbers [a, b, c], make T.\")"},
};

static const config_key INSPECT_KEYS[] = {
    {"tokenizer", CONFIG_STRING, "null", "a tokenizer folder or tokenizer.json: adds a token-length histogram"},
    {"format", CONFIG_STRING, "\"auto\"",
     "shape for the token count: auto, text, prompt_completion, messages, prompt, preference"},
    {"chat_format", CONFIG_STRING, "null", "chat template for messages: deepseek-v3, deepseek-r1, plain (default: the tokenizer's)"},
    {"max_bad_lines", CONFIG_INT, "20", "bad lines to list (all are counted)"},
    {"bins", CONFIG_INT, "12", "histogram rows"},
};

static void data_usage(FILE *out) {
    fprintf(out,
            "usage: posttrain data make countdown|arithmetic|instructions --n N --seed S --out FILE\n"
            "                           [--eval-n M --eval-out FILE] [--difficulty D]\n"
            "       posttrain data inspect FILE [--tokenizer DIR]\n"
            "(`posttrain data make --help` and `posttrain data inspect --help` list the keys)\n");
}

static bool wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

/* Builds cfg from options argv[0..argc) (`--config FILE` first). Returns 0, or the exit code. */
static int load_options(config *cfg, const config_schema *schema, int argc, char **argv, const char *cmd) {
    pt_error err = {0};
    if (config_init(cfg, schema, 1, &err) != PT_OK) return cli_fail(cmd, &err);
    if (config_load_cli(cfg, argc, argv, &err) != PT_OK) {
        config_free(cfg);
        fprintf(stderr, "posttrain %s: %s\n(see `posttrain %s --help`)\n", cmd, err.msg, cmd);
        return 2;
    }
    return 0;
}

/* -------------------------------------------------------------------------------- make */

static int data_make(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(MAKE_KEYS);
    if (wants_help(argc, argv)) {
        printf("usage: posttrain data make countdown|arithmetic|instructions --n N --seed S --out FILE "
               "[--eval-n M --eval-out FILE] [--difficulty D]\n\n"
               "Writes a built-in verifiable task as JSONL: countdown {prompt, numbers, target, completion}, "
               "arithmetic {prompt, answer, completion}, instructions {messages, task}. Completions are "
               "worked solutions in the R1 format <think>...</think><answer>...</answer>.\n\nkeys:\n");
        config_print_help(stdout, &schema, 1);
        return 0;
    }
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "posttrain data make: name the task: countdown, arithmetic or instructions\n");
        return 2;
    }
    pt_error err = {0};
    task_kind kind;
    if (task_kind_parse(&kind, argv[0], &err) != PT_OK) return cli_fail("data make", &err);
    config cfg;
    int rc = load_options(&cfg, &schema, argc - 1, argv + 1, "data make");
    if (rc) return rc;
    rc = 2;
    const char *out = config_string(&cfg, "out"), *eval_out = config_string(&cfg, "eval_out");
    int64_t n = config_int(&cfg, "n"), eval_n = config_int(&cfg, "eval_n");
    int64_t difficulty = config_is_null(&cfg, "difficulty") ? task_difficulty_default(kind) : config_int(&cfg, "difficulty");
    if (n < 0 || eval_n < 0) {
        fprintf(stderr, "posttrain data make: --n and --eval-n must not be negative\n");
        goto done;
    }
    if (n > 0 && !out) {
        fprintf(stderr, "posttrain data make: --out is required\n");
        goto done;
    }
    if (difficulty < 1 || difficulty > task_difficulty_max(kind)) {
        fprintf(stderr, "posttrain data make: --difficulty %lld is out of range for %s: use 1..%d\n",
                (long long)difficulty, task_kind_name(kind), task_difficulty_max(kind));
        goto done;
    }
    const char *style = config_string(&cfg, "prompt_style");
    const char *trace = config_string(&cfg, "trace");
    if (kind != TASK_COUNTDOWN && (config_int(&cfg, "max_number") != TASK_COUNTDOWN_MAX_NUMBER ||
                                   strcmp(style, "tinyzero") != 0 || strcmp(trace, "direct") != 0)) {
        fprintf(stderr, "posttrain data make: --max_number, --prompt_style and --trace apply to countdown only\n");
        goto done;
    }
    if (strcmp(trace, "direct") != 0 && strcmp(trace, "search") != 0 && strcmp(trace, "check") != 0) {
        fprintf(stderr, "posttrain data make: --trace '%s': expected direct, search or check\n", trace);
        goto done;
    }
    if (strcmp(style, "tinyzero") != 0 && strcmp(style, "short") != 0) {
        fprintf(stderr, "posttrain data make: --prompt_style '%s': expected tinyzero or short\n", style);
        goto done;
    }
    int64_t traces = config_int(&cfg, "traces");
    if (traces < 1 || traces > TASK_MAX_TRACES) { /* the rest is task_generate's to check */
        fprintf(stderr, "posttrain data make: --traces %lld: expected 1..%d\n", (long long)traces, TASK_MAX_TRACES);
        goto done;
    }
    const char *misses = config_string(&cfg, "misses");
    if (strcmp(misses, "uniform") != 0 && strcmp(misses, "geometric") != 0) {
        fprintf(stderr, "posttrain data make: --misses '%s': expected uniform or geometric\n", misses);
        goto done;
    }
    int64_t max_misses = config_int(&cfg, "max_misses");
    if (max_misses < 1 || max_misses > TASK_MAX_MISSES) {
        fprintf(stderr, "posttrain data make: --max_misses %lld: expected 1..%d\n", (long long)max_misses, TASK_MAX_MISSES);
        goto done;
    }
    const bool geometric = strcmp(misses, "geometric") == 0;
    if ((geometric || max_misses != TASK_SEARCH_MISSES) && strcmp(trace, "direct") == 0) {
        fprintf(stderr, "posttrain data make: --misses and --max_misses need --trace search or check\n");
        goto done;
    }
    task_make_opts o = {.kind = kind,
                        .seed = (uint64_t)config_int(&cfg, "seed"),
                        .difficulty = (int)difficulty,
                        .n = (size_t)n,
                        .eval_n = (size_t)eval_n,
                        .max_number = kind == TASK_COUNTDOWN ? (int)config_int(&cfg, "max_number") : 0,
                        .short_prompt = strcmp(style, "short") == 0,
                        .search_trace = strcmp(trace, "direct") != 0,
                        .name_target = strcmp(trace, "check") == 0,
                        .traces = (int)traces,
                        .max_misses = max_misses == TASK_SEARCH_MISSES ? 0 : (int)max_misses,
                        .geometric_misses = geometric};
    if (task_write_jsonl(&o, out, eval_out, &err) != PT_OK) {
        rc = cli_fail("data make", &err);
        goto done;
    }
    printf("wrote %lld %s examples (difficulty %lld, seed %lld)", (long long)n, task_kind_name(kind),
           (long long)difficulty, (long long)o.seed);
    if (n) printf(" to %s", out);
    if (n && traces > 1) printf(" (%lld lines: %lld searches per problem)", (long long)(n * traces), (long long)traces);
    if (eval_n) printf("%s %lld held out to %s", n ? " and" : "", (long long)eval_n, eval_out);
    printf("\n");
    rc = 0;
done:
    config_free(&cfg);
    return rc;
}

/* ----------------------------------------------------------------------------- inspect */

typedef struct inspect_tally {
    size_t lines, blank, good, bad;
    size_t by_shape[DATASET_FORMAT_PREFERENCE + 1];
    size_t by_reason[DATASET_BAD_COUNT];
} inspect_tally;

/* Reads path line by line, checking each on its own; prints up to max_bad bad lines. */
static pt_status inspect_lines(inspect_tally *t, const char *path, int64_t max_bad, pt_error *err) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) PT_FAIL(err, PT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    pt_status st = PT_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        t->lines++;
        size_t n = (size_t)len;
        if (n && line[n - 1] == '\n') line[--n] = 0;
        if (n && line[n - 1] == '\r') line[--n] = 0;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == n) {
            t->blank++;
            continue;
        }
        record r;
        bool good = false;
        record_bad bad;
        st = record_parse(&r, &good, &bad, line, n, DATASET_FORMAT_AUTO, err);
        if (st != PT_OK) break;
        if (good) {
            t->good++;
            if ((unsigned)r.format <= DATASET_FORMAT_PREFERENCE) t->by_shape[r.format]++;
            record_free(&r);
            continue;
        }
        t->bad++;
        if ((unsigned)bad.reason < DATASET_BAD_COUNT) t->by_reason[bad.reason]++;
        if ((int64_t)t->bad <= max_bad) {
            if (t->bad == 1) printf("bad lines:\n");
            printf("  %s:%zu: %s%s%s%s\n", path, t->lines, dataset_bad_reason_name(bad.reason),
                   bad.field[0] ? ": field '" : "", bad.field, bad.field[0] ? "'" : "");
            printf("      %s\n", bad.msg);
        }
    }
    if (st == PT_OK && ferror(f)) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: read failed", path);
    free(line);
    fclose(f);
    if (st == PT_OK && (int64_t)t->bad > max_bad)
        printf("  ... and %zu more (raise --max-bad-lines to list them)\n", t->bad - (size_t)max_bad);
    return st;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* A width of 1, 2 or 5 × 10^k that covers [min, max] in about `bins` rows. */
static size_t nice_width(size_t min, size_t max, int bins) {
    double raw = (double)(max - min + 1) / (double)bins;
    size_t w = 1;
    for (;;) {
        if ((double)w >= raw) return w;
        if ((double)(2 * w) >= raw) return 2 * w;
        if ((double)(5 * w) >= raw) return 5 * w;
        w *= 10;
    }
}

/* Token lengths of the good records, as training tokenises them, as a text table. */
static pt_status inspect_tokens(const char *path, const char *tok_path, const config *cfg, pt_error *err) {
    dataset_options o;
    dataset_options_default(&o);
    PT_TRY(dataset_format_parse(&o.format, config_string(cfg, "format"), err));
    o.on_bad_line = DATASET_ON_BAD_SKIP;
    o.max_length = 0;
    o.chat_format = config_string(cfg, "chat_format");
    tokenizer *tok = NULL;
    PT_TRY(tokenizer_load(&tok, tok_path, err));
    dataset *ds = NULL;
    pt_status st = dataset_open_jsonl(&ds, path, tok, &o, err);
    if (st != PT_OK) {
        tokenizer_free(tok);
        return error_prefix(err, "token lengths");
    }
    size_t n = dataset_size(ds);
    size_t *len = malloc((n ? n : 1) * sizeof *len);
    if (!len) {
        dataset_free(ds);
        tokenizer_free(tok);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory");
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        len[i] = dataset_tokens(ds, i);
        sum += (double)len[i];
    }
    printf("token lengths (%s shape, tokenizer %s, %zu records):\n", dataset_format_name(dataset_get_format(ds)),
           tok_path, n);
    if (n) {
        qsort(len, n, sizeof *len, cmp_size);
        size_t p50 = len[(n - 1) / 2], p95 = len[(size_t)ceil(0.95 * (double)n) - 1];
        printf("  min %zu  median %zu  mean %.1f  p95 %zu  max %zu  total %.0f\n", len[0], p50, sum / (double)n, p95,
               len[n - 1], sum);
        int bins = (int)config_int(cfg, "bins");
        if (bins < 1) bins = 1;
        size_t width = nice_width(len[0], len[n - 1], bins);
        size_t first = len[0] / width, rows = len[n - 1] / width + 1 - first, peak = 0;
        size_t *count = calloc(rows, sizeof *count);
        if (count) {
            for (size_t i = 0; i < n; i++) count[len[i] / width - first]++;
            for (size_t r = 0; r < rows; r++) peak = count[r] > peak ? count[r] : peak;
            printf("  %-17s %8s\n", "tokens", "records");
            for (size_t r = 0; r < rows; r++) {
                char range[48];
                snprintf(range, sizeof range, "[%zu, %zu)", (first + r) * width, (first + r + 1) * width);
                int bar = peak ? (int)((40 * count[r] + peak - 1) / peak) : 0;
                printf("  %-17s %8zu  %.*s\n", range, count[r], bar, "########################################");
            }
            free(count);
        }
    }
    free(len);
    dataset_free(ds);
    tokenizer_free(tok);
    return PT_OK;
}

static int data_inspect(int argc, char **argv) {
    const config_schema schema = CONFIG_SCHEMA(INSPECT_KEYS);
    if (wants_help(argc, argv)) {
        printf("usage: posttrain data inspect FILE [--tokenizer DIR]\n\n"
               "Counts the records of a JSONL file per shape (text, prompt_completion, messages, prompt, "
               "preference), lists bad lines with their line number and reason, and with a tokenizer prints a "
               "token-length histogram. Exits 1 when there are bad lines.\n\nkeys:\n");
        config_print_help(stdout, &schema, 1);
        return 0;
    }
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "posttrain data inspect: name the JSONL file: posttrain data inspect FILE\n");
        return 2;
    }
    const char *path = argv[0];
    config cfg;
    int rc = load_options(&cfg, &schema, argc - 1, argv + 1, "data inspect");
    if (rc) return rc;
    pt_error err = {0};
    inspect_tally t;
    if (inspect_lines(&t, path, config_int(&cfg, "max_bad_lines"), &err) != PT_OK) {
        rc = cli_fail("data inspect", &err);
        goto done;
    }
    printf("%s: %zu lines: %zu records, %zu bad, %zu blank\n", path, t.lines, t.good, t.bad, t.blank);
    size_t n_shapes = 0;
    for (int s = DATASET_FORMAT_TEXT; s <= DATASET_FORMAT_PREFERENCE; s++)
        if (t.by_shape[s]) {
            if (!n_shapes++) printf("shapes:\n");
            printf("  %-18s %zu\n", dataset_format_name((dataset_format)s), t.by_shape[s]);
        }
    if (n_shapes > 1) printf("  (mixed shapes: a training file must hold one shape)\n");
    if (t.bad) {
        printf("bad lines by reason:\n");
        for (int r = 0; r < DATASET_BAD_COUNT; r++)
            if (t.by_reason[r]) printf("  %-18s %zu\n", dataset_bad_reason_name((dataset_bad_reason)r), t.by_reason[r]);
    }
    const char *tok_path = config_string(&cfg, "tokenizer");
    if (tok_path && t.good) {
        if (inspect_tokens(path, tok_path, &cfg, &err) != PT_OK) {
            rc = cli_fail("data inspect", &err);
            goto done;
        }
    }
    rc = t.bad ? 1 : 0;
done:
    config_free(&cfg);
    return rc;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "make") == 0) return data_make(argc - 2, argv + 2);
    if (strcmp(argv[1], "inspect") == 0) return data_inspect(argc - 2, argv + 2);
    fprintf(stderr, "posttrain data: unknown action '%s'\n", argv[1]);
    data_usage(stderr);
    return 2;
}
