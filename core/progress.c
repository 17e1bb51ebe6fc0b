/* progress.c — see progress.h. Each draw renders the whole line into a buffer and writes it with
 * one fwrite + fflush, so a terminal never shows half a line. */
#include "core/progress.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PROGRESS_BAR_WIDTH 24
#define PROGRESS_LINE_MAX 1024

static int terminal_columns(FILE *out) {
    struct winsize ws;
    int fd = fileno(out);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 0;
}

void progress_init(progress *p, FILE *out, const char *label, int64_t total, double now) {
    memset(p, 0, sizeof *p);
    int fd = out ? fileno(out) : -1;
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "it");
    p->total = total;
    p->tty = fd >= 0 && isatty(fd);
    p->interval = 10.0;
    p->redraw = 0.1;
    p->tau = 5.0;
    p->columns = p->tty ? terminal_columns(out) : 0;
    p->start = p->last_draw = p->sample_time = now;
    p->rate = -1.0;
}

void progress_resume(progress *p, int64_t done) { p->done = p->done_at_start = p->sample_done = done; }

void progress_set_field(progress *p, const char *name, const char *fmt, ...) {
    progress_field *f = NULL;
    for (int i = 0; i < p->n_fields && !f; i++)
        if (strncmp(p->fields[i].name, name, sizeof p->fields[i].name - 1) == 0) f = &p->fields[i];
    if (!f) {
        if (p->n_fields >= PROGRESS_MAX_FIELDS) return;
        f = &p->fields[p->n_fields++];
        snprintf(f->name, sizeof f->name, "%s", name);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->value, sizeof f->value, fmt, ap);
    va_end(ap);
}

double progress_rate(const progress *p) { return p->rate; }

double progress_eta(const progress *p) {
    if (p->total <= 0) return -1.0;
    if (p->done >= p->total) return 0.0;
    if (!(p->rate > 0.0)) return -1.0;
    return (double)(p->total - p->done) / p->rate;
}

void progress_format_duration(char *buf, size_t cap, double seconds) {
    if (!(seconds >= 0.0) || !isfinite(seconds) || seconds > 9.0e15) {
        snprintf(buf, cap, "?");
        return;
    }
    long long t = (long long)(seconds + 0.5);
    if (t < 60) snprintf(buf, cap, "%llds", t);
    else if (t < 3600) snprintf(buf, cap, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, cap, "%lldh%02lldm%02llds", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%lldd%02lldh", t / 86400, t / 3600 % 24);
}

/* "12.3 it/s"; below one item per second "4.00 s/it"; "?" before the rate is known. */
static void format_rate(char *buf, size_t cap, double rate, const char *unit) {
    if (rate < 0.0 || !isfinite(rate)) snprintf(buf, cap, "? %s/s", unit);
    else if (rate == 0.0) snprintf(buf, cap, "0 %s/s", unit);
    else if (rate < 1.0) snprintf(buf, cap, "%.2f s/%s", 1.0 / rate, unit);
    else if (rate < 10.0) snprintf(buf, cap, "%.2f %s/s", rate, unit);
    else if (rate < 1000.0) snprintf(buf, cap, "%.1f %s/s", rate, unit);
    else if (rate < 1e6) snprintf(buf, cap, "%.2fk %s/s", rate / 1e3, unit);
    else snprintf(buf, cap, "%.2fM %s/s", rate / 1e6, unit);
}

/* Folds the interval since the last sample into the smoothed rate. */
static void fold_rate(progress *p, int64_t done, double now) {
    if (done < p->sample_done) { /* the count went back (a restart): start measuring again */
        p->sample_done = done;
        p->sample_time = now;
        return;
    }
    double dt = now - p->sample_time;
    if (!(dt > 0.0)) return; /* same instant: merged into the next interval */
    double inst = (double)(done - p->sample_done) / dt;
    if (p->rate < 0.0) p->rate = inst;
    else p->rate += (1.0 - exp(-dt / (p->tau > 0.0 ? p->tau : 1e-9))) * (inst - p->rate);
    p->sample_done = done;
    p->sample_time = now;
}

/* Appends to buf (length *n, capacity cap), never past the end. */
static void append(char *buf, size_t *n, size_t cap, const char *fmt, ...) PT_PRINTF(4, 5);
static void append(char *buf, size_t *n, size_t cap, const char *fmt, ...) {
    if (*n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0) *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
}

/* The line (without "\r", escapes or newline). */
static size_t render(char *buf, size_t cap, const progress *p, double now, bool final) {
    size_t n = 0;
    char rate[48], when[32], took[32];
    double elapsed = now - p->start;
    progress_format_duration(took, sizeof took, elapsed);
    if (final) {
        double avg = elapsed > 0.0 ? (double)(p->done - p->done_at_start) / elapsed : -1.0;
        format_rate(rate, sizeof rate, avg, p->unit);
    } else {
        format_rate(rate, sizeof rate, p->rate, p->unit);
    }
    progress_format_duration(when, sizeof when, progress_eta(p));
    if (p->label[0]) append(buf, &n, cap, "%s ", p->label);
    if (p->total > 0) {
        double frac = (double)p->done / (double)p->total;
        frac = frac < 0.0 ? 0.0 : frac > 1.0 ? 1.0 : frac;
        if (p->tty) {
            int fill = (int)(frac * PROGRESS_BAR_WIDTH);
            char bar[PROGRESS_BAR_WIDTH + 1];
            for (int i = 0; i < PROGRESS_BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '-';
            bar[PROGRESS_BAR_WIDTH] = '\0';
            append(buf, &n, cap, "%3d%% [%s] %lld/%lld", (int)(frac * 100.0), bar, (long long)p->done,
                   (long long)p->total);
        } else {
            append(buf, &n, cap, "%lld/%lld (%d%%)", (long long)p->done, (long long)p->total, (int)(frac * 100.0));
        }
    } else {
        append(buf, &n, cap, "%lld %s", (long long)p->done, p->unit);
    }
    append(buf, &n, cap, "  %s", rate);
    if (final) append(buf, &n, cap, "  done in %s", took);
    else if (p->total > 0) append(buf, &n, cap, "  ETA %s  elapsed %s", when, took);
    else append(buf, &n, cap, "  elapsed %s", took);
    for (int i = 0; i < p->n_fields; i++) append(buf, &n, cap, "  %s=%s", p->fields[i].name, p->fields[i].value);
    return n;
}

/* Cuts s[0, n) to at most `columns` characters (UTF-8 code points); returns the new length. */
static size_t cut_columns(const char *s, size_t n, int columns) {
    if (columns <= 0) return n;
    int chars = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++chars > columns) return i;
    return n;
}

static void draw(progress *p, double now, bool final) {
    char line[PROGRESS_LINE_MAX + 16];
    size_t n = 0;
    if (p->tty) append(line, &n, sizeof line, "\r");
    char body[PROGRESS_LINE_MAX];
    size_t bn = render(body, sizeof body, p, now, final);
    if (p->tty) bn = cut_columns(body, bn, p->columns - 1); /* the last column would wrap */
    append(line, &n, sizeof line, "%.*s", (int)bn, body);
    if (p->tty) append(line, &n, sizeof line, "\033[K");
    if (final || !p->tty) append(line, &n, sizeof line, "\n");
    fwrite(line, 1, n, p->out);
    fflush(p->out);
    p->last_draw = now;
    p->drawn = true;
}

void progress_update(progress *p, int64_t done, double now) {
    if (p->finished) return;
    p->done = done;
    fold_rate(p, done, now);
    if (!p->out) return;
    double since = now - p->last_draw;
    if (p->tty ? (!p->drawn || since >= p->redraw) : since >= p->interval) draw(p, now, false);
}

void progress_finish(progress *p, double now) {
    if (p->finished) return;
    fold_rate(p, p->done, now);
    if (p->out) draw(p, now, true);
    p->finished = true;
}
