/* report.h — `posttrain report`: one self-contained HTML file (inline CSS and inline SVG, no
 * scripts, fonts or images from elsewhere) made from a run's SQLite run store
 * (datasets/run_store.h), for GRPO and SFT runs alike.
 *
 * What it shows: a header (the `run` rows: command, start/resume times, config summary; steps
 * and their wall-clock span; checkpoints), line charts over steps of every metric family that
 * was logged (reward with reward_std as a band, the per-reward breakdown rewards/<name>/mean with
 * a legend, eval/<name> accuracy, kl, entropy, completion lengths, clip ratios, loss, learning rate,
 * grad norm, step-time split, throughput), a small chart for every other metric (nothing logged
 * is hidden), a note naming the known charts that had no data (none is drawn empty), and sample
 * rollouts: for a selection of steps the best and the worst rollout by reward with prompt,
 * completion, per-reward scores, advantage, length and finish reason.
 *
 * Invariants: every byte of text that came from the store (metric names, config, prompts,
 * completions, reward names) is HTML-escaped (& < > " ') and invalid UTF-8 is replaced by
 * U+FFFD, so the output is well-formed UTF-8 HTML whatever the model wrote; NaN/Inf values are
 * gaps in the lines, never coordinates; the store is opened RUN_STORE_READ_ONLY; the output file
 * is written atomically (temp file in the same folder, fsync, rename), so a failed run leaves an
 * existing report as it was.
 */
#ifndef POSTTRAIN_GRPO_REPORT_H
#define POSTTRAIN_GRPO_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct report_options {
    int sample_steps;      /* steps with sample rollouts when the run has more: this many evenly
                              spaced plus the last (default 10) */
    size_t max_text_bytes; /* longest prompt or completion shown, in bytes; the rest is cut with a
                              note (default 16384) */
} report_options;

void report_options_default(report_options *o);

/* *html = the report of the run store in run_dir (malloc'd, NUL-terminated; free() it), *len its
 * length. Errors name run_dir: missing, not a directory, no run.db, not a run store. */
pt_status report_render(char **html, size_t *len, const char *run_dir, const report_options *o, pt_error *err);
/* report_render, then writes out_path atomically. */
pt_status report_write(const char *out_path, const char *run_dir, const report_options *o, pt_error *err);

/* ---- building blocks (shared by report.c and report_chart.c; tests use them directly) ---- */

/* A growing text buffer. Allocation failure sets `oom` and makes further appends no-ops, so
 * writers check once at the end. */
typedef struct report_buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len, cap;
    bool oom;
} report_buf;

void report_buf_append(report_buf *b, const char *s, size_t n);
void report_buf_puts(report_buf *b, const char *s);
void report_buf_printf(report_buf *b, const char *fmt, ...) PT_PRINTF(2, 3);
void report_buf_free(report_buf *b);
/* Appends s[0..n) as HTML text or attribute value: & < > " ' as entities, invalid UTF-8 as
 * U+FFFD (one per byte that starts no well-formed sequence), C0 controls other than tab, LF and
 * CR (and DEL) as their visible Control Pictures (U+2400 + c, U+2421). */
void report_html_escape(report_buf *b, const char *s, size_t n);
/* The same for a NUL-terminated string (NULL appends nothing). */
void report_html_escape_str(report_buf *b, const char *s);

/* One line of a chart: values over steps (steps ascending), with an optional ± band (NaN where
 * absent). */
typedef struct report_series {
    const char *name;
    const int64_t *steps;  /* (n) ascending */
    const double *values;  /* (n) NaN/Inf = gap */
    const double *band;    /* (n) or NULL: half-width of the band drawn around values */
    size_t n;
} report_series;

/* Appends one chart: <figure class="chart" id="chart-<id>"> with a heading, an SVG line chart
 * (axes with ticks and labels, one line per series, bands, a hover <title> per step listing
 * every series' value) and an HTML legend when there is more than one series. `small` draws the
 * compact size used for "other metrics". */
void report_chart(report_buf *b, const char *id, const char *title, const report_series *series, int n_series,
                  bool small);

#endif
