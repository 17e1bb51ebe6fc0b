/* progress.h — a progress line for long loops: done/total, percent, rate, ETA, elapsed and a few
 * named fields (loss, lr, reward ...).
 *
 * Times are seconds on the caller's monotonic clock, passed in as `now` (tests use fake times).
 * On a terminal the line is redrawn in place ("\r" + line + "\033[K": erase what a longer
 * previous line left), at most once per `redraw` seconds (0.1), and cut to the terminal width;
 * elsewhere (a log file, a pipe) a plain line without "\r" or escape codes is printed at most
 * once per `interval` seconds (10) and always at progress_finish.
 *
 * Rate: the time-weighted exponential moving average of items per second over the updates,
 *   r ← r + (1 − e^(−Δt/τ))·(Δn/Δt − r),   τ = `tau` seconds (5),
 * starting from the first interval's rate, so a steady rate is reported exactly and a change
 * shows through with time constant τ whatever the update frequency. Updates at the same `now`
 * are merged into the next interval. ETA = (total − done)/r. total ≤ 0 means unknown: no bar,
 * no percent, no ETA. The finish line shows the average rate over the whole run instead.
 */
#ifndef POSTTRAIN_CORE_PROGRESS_H
#define POSTTRAIN_CORE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

#define PROGRESS_MAX_FIELDS 8

typedef struct progress_field {
    char name[24];
    char value[40];
} progress_field;

typedef struct progress {
    FILE *out;
    char label[64];
    char unit[16];     /* what is counted: "it" (default), "step", "tok" */
    int64_t total;     /* ≤ 0: unknown */
    int64_t done;
    bool tty;          /* redraw in place; starts as isatty(fileno(out)); set to force a mode */
    double interval;   /* plain mode: seconds between lines (default 10) */
    double redraw;     /* tty mode: seconds between redraws (default 0.1) */
    double tau;        /* rate smoothing time constant, seconds (default 5) */
    int columns;       /* tty mode: cut lines to this width; ≤ 0 = no limit (default: the terminal's) */
    double start;      /* now at progress_init */
    int64_t done_at_start; /* progress_resume's count, left out of the rates */
    double last_draw;  /* when a line was last written (start before the first) */
    bool drawn;        /* a line has been written */
    bool finished;
    double sample_time;  /* last (time, done) folded into the rate */
    int64_t sample_done;
    double rate;       /* smoothed items per second; < 0 until known */
    int n_fields;      /* in insertion order */
    progress_field fields[PROGRESS_MAX_FIELDS];
} progress;

/* out NULL: nothing is written, but done, rate and ETA are still tracked. */
void progress_init(progress *p, FILE *out, const char *label, int64_t total, double now);
/* Continue from `done` items (a resumed run) without counting them towards the rate. */
void progress_resume(progress *p, int64_t done);
/* Sets the field `name` (kept in insertion order, updated in place). At most
 * PROGRESS_MAX_FIELDS names; further names are ignored. Shown at the next redraw. */
void progress_set_field(progress *p, const char *name, const char *fmt, ...) PT_PRINTF(3, 4);
/* Records `done` items at time `now` and redraws when it is time to. */
void progress_update(progress *p, int64_t done, double now);
/* Writes the final line (always) and ends it with a newline; later calls do nothing. */
void progress_finish(progress *p, double now);

/* Smoothed items per second, or -1 before the first interval. */
double progress_rate(const progress *p);
/* Seconds left at the smoothed rate; 0 when done ≥ total; -1 when unknown. */
double progress_eta(const progress *p);
/* "45s", "3m05s", "1h02m03s", "3d04h"; "?" for a negative or non-finite time. */
void progress_format_duration(char *buf, size_t cap, double seconds);

#endif
