/* cmd_report.c — `posttrain report RUN_DIR [-o FILE] [--samples N] [--max-text BYTES]`: one
 * self-contained HTML file (inline CSS and SVG) with the charts and sample rollouts of a run's
 * store (grpo/report.h). The store is opened read-only, so a report can be made while the run
 * is still writing; the file is replaced atomically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "grpo/report.h"

static const char USAGE[] =
    "usage: posttrain report RUN_DIR [-o FILE] [--samples N] [--max-text BYTES]\n\n"
    "Writes one self-contained HTML file (no scripts, fonts or images from elsewhere) from RUN_DIR/run.db:\n"
    "the run's commands and config, charts over steps of every logged metric (reward with its std band,\n"
    "per-reward breakdown, eval/*, kl, entropy, completion lengths, clip ratios, loss, learning rate,\n"
    "step time, ...; metrics outside the known charts get small charts of their own) and, for a\n"
    "selection of steps, the best and the worst rollout by reward.\n\n"
    "  -o, --out FILE      the report (default RUN_DIR/report.html)\n"
    "  --samples N         steps with sample rollouts: N evenly spaced plus the last (default 10)\n"
    "  --max-text BYTES    longest prompt or completion shown (default 16384)\n";

static int parse_count(long *out, const char *opt, const char *v, long lo) {
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo) {
        fprintf(stderr, "posttrain report: %s expects an integer >= %ld, got '%s'\n", opt, lo, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL;
    report_options o;
    report_options_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (!v) {
                fprintf(stderr, "posttrain report: %s needs a file name\n", a);
                return 2;
            }
            out = v, i++;
        } else if (strcmp(a, "--samples") == 0) {
            if (parse_count(&x, a, v, 1) != 0 || x > 10000) return 2;
            o.sample_steps = (int)x, i++;
        } else if (strcmp(a, "--max-text") == 0) {
            if (parse_count(&x, a, v, 1) != 0) return 2;
            o.max_text_bytes = (size_t)x, i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "posttrain report: unknown option '%s'\n\n%s", a, USAGE);
            return 2;
        } else if (run_dir) {
            fprintf(stderr, "posttrain report: one RUN_DIR expected, got '%s' and '%s'\n", run_dir, a);
            return 2;
        } else {
            run_dir = a;
        }
    }
    if (!run_dir) {
        fprintf(stderr, "posttrain report: RUN_DIR is required\n\n%s", USAGE);
        return 2;
    }
    char *def = NULL;
    if (!out) {
        size_t n = strlen(run_dir) + sizeof "/report.html";
        def = malloc(n);
        if (!def) return 1;
        snprintf(def, n, "%s/report.html", run_dir);
        out = def;
    }
    pt_error err = {0};
    int rc = 0;
    if (report_write(out, run_dir, &o, &err) != PT_OK) rc = cli_fail("report", &err);
    else printf("report: %s\n", out);
    free(def);
    return rc;
}
