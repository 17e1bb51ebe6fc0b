/* report_chart.c — one SVG line chart over steps (see report.h).
 *
 * Axes use "nice" ticks: the step between ticks is 1, 2 or 5 × 10^k, chosen so that about five
 * ticks cover the data; the y range is widened to whole ticks, the x range is the steps logged
 * (x ticks are whole steps). A non-finite value (NaN/Inf: a skipped update, a reward that
 * abstained everywhere) ends the current polyline and the next finite value starts a new one, so
 * gaps show as gaps; a finite value with no finite neighbour is drawn as a dot. Bands (value ±
 * half-width) are drawn under the lines per run of points where both are finite.
 *
 * Hover text: the plot is covered by one transparent column per logged step (at most
 * MAX_COLUMNS; beyond that, consecutive steps share a column that reports its last step), each
 * with a <title> listing every series' value at that step, so tooltips need no script.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpo/report.h"

#define MAX_COLUMNS 300
#define MARKERS_UP_TO 40 /* points per series that are also drawn as dots */

static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
                                      "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#7f7f7f"};
#define N_PALETTE (sizeof PALETTE / sizeof PALETTE[0])

typedef struct frame {
    double W, H, L, R, T, B;  /* size and margins */
    double x0, x1, y0, y1;    /* data ranges shown */
    double ystep;             /* between y ticks */
} frame;

static double px(const frame *f, double x) { return f->L + (x - f->x0) / (f->x1 - f->x0) * (f->W - f->L - f->R); }
static double py(const frame *f, double y) { return f->H - f->B - (y - f->y0) / (f->y1 - f->y0) * (f->H - f->T - f->B); }

static double nice_step(double span, int target) {
    double raw = span / target;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/* A tick label: the value rounded to the tick step (so 0.30000000000000004 prints as 0.3). */
static void fmt_tick(char *out, size_t n, double v, double step) {
    v = round(v / step) * step;
    if (fabs(v) < step * 1e-6) v = 0;
    /* large counts (tokens, samples) read better as 40k, 8M than as 40000, 8e+06 */
    static const struct { double scale; const char *suffix; } SI[] = {{1e9, "G"}, {1e6, "M"}, {1e4, "k"}};
    for (size_t i = 0; i < sizeof SI / sizeof SI[0]; i++)
        if (fabs(v) >= SI[i].scale && step >= SI[i].scale / 1e3) {
            double div = SI[i].scale == 1e4 ? 1e3 : SI[i].scale;
            snprintf(out, n, "%.6g%s", v / div, SI[i].suffix);
            return;
        }
    snprintf(out, n, "%.6g", v);
}

static bool finite_at(const report_series *s, size_t i) { return isfinite(s->values[i]); }

static bool band_at(const report_series *s, size_t i) {
    return s->band && isfinite(s->values[i]) && isfinite(s->band[i]);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Index of step in s, or -1. */
static long find_step(const report_series *s, int64_t step) {
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->steps[mid] < step) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->n && s->steps[lo] == step ? (long)lo : -1;
}

static void slug(report_buf *b, const char *id) {
    for (const char *p = id; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a'), ok = true;
        report_buf_append(b, ok ? &c : "-", 1);
    }
}

static void draw_axes(report_buf *b, const frame *f, bool small) {
    char lab[48];
    double ystep = f->ystep;
    for (double y = ceil(f->y0 / ystep - 1e-9) * ystep; y <= f->y1 + ystep * 1e-9; y += ystep) {
        fmt_tick(lab, sizeof lab, y, ystep);
        double yy = py(f, y);
        report_buf_printf(b, "<line class=\"gl\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", f->L, yy,
                          f->W - f->R, yy);
        report_buf_printf(b, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\">%s</text>", f->L - 6, yy + 4, lab);
    }
    double span = f->x1 - f->x0, xstep = nice_step(span, small ? 4 : 6);
    if (xstep < 1) xstep = 1;
    for (double x = ceil(f->x0 / xstep - 1e-9) * xstep; x <= f->x1 + 1e-9; x += xstep) {
        double xx = px(f, x);
        fmt_tick(lab, sizeof lab, x, xstep);
        report_buf_printf(b, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", xx,
                          f->H - f->B, xx, f->H - f->B + 4);
        report_buf_printf(b, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\">%s</text>", xx, f->H - f->B + 16, lab);
    }
    report_buf_printf(b, "<path class=\"axis\" d=\"M%.1f %.1fV%.1fH%.1f\"/>", f->L, f->T, f->H - f->B, f->W - f->R);
    report_buf_printf(b, "<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\">step</text>", f->W - f->R, f->H - 4);
}

static void draw_band(report_buf *b, const frame *f, const report_series *s, const char *color) {
    size_t i = 0;
    while (i < s->n) {
        if (!band_at(s, i)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < s->n && band_at(s, j)) j++;
        if (j - i >= 2) {
            report_buf_printf(b, "<polygon class=\"band\" fill=\"%s\" points=\"", color);
            for (size_t k = i; k < j; k++)
                report_buf_printf(b, "%.1f,%.1f ", px(f, (double)s->steps[k]), py(f, s->values[k] + fabs(s->band[k])));
            for (size_t k = j; k-- > i;)
                report_buf_printf(b, "%.1f,%.1f ", px(f, (double)s->steps[k]), py(f, s->values[k] - fabs(s->band[k])));
            report_buf_puts(b, "\"/>");
        }
        i = j;
    }
}

static void draw_line(report_buf *b, const frame *f, const report_series *s, const char *color) {
    size_t finite = 0;
    for (size_t i = 0; i < s->n; i++) finite += finite_at(s, i);
    report_buf_printf(b, "<path class=\"line\" stroke=\"%s\" data-series=\"", color);
    report_html_escape_str(b, s->name);
    report_buf_puts(b, "\" d=\"");
    bool pen = false;
    for (size_t i = 0; i < s->n; i++) {
        if (!finite_at(s, i)) {
            pen = false;
            continue;
        }
        report_buf_printf(b, "%s%.1f %.1f", pen ? "L" : "M", px(f, (double)s->steps[i]), py(f, s->values[i]));
        pen = true;
    }
    report_buf_puts(b, "\"/>");
    for (size_t i = 0; i < s->n; i++) {
        if (!finite_at(s, i)) continue;
        bool alone = (i == 0 || !finite_at(s, i - 1)) && (i + 1 == s->n || !finite_at(s, i + 1));
        if (alone || finite <= MARKERS_UP_TO)
            report_buf_printf(b, "<circle fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%s\"/>", color,
                              px(f, (double)s->steps[i]), py(f, s->values[i]), alone ? "3" : "2");
    }
}

static void fmt_value(report_buf *b, double v) {
    if (isnan(v)) report_buf_puts(b, "NaN");
    else if (isinf(v)) report_buf_puts(b, v > 0 ? "Inf" : "-Inf");
    else report_buf_printf(b, "%.6g", v);
}

/* Hover columns over the union of the series' steps. */
static void draw_columns(report_buf *b, const frame *f, const report_series *series, int n_series) {
    size_t total = 0;
    for (int k = 0; k < n_series; k++) total += series[k].n;
    int64_t *u = malloc((total ? total : 1) * sizeof *u);
    if (!u) {
        b->oom = true;
        return;
    }
    size_t m = 0;
    for (int k = 0; k < n_series; k++)
        for (size_t i = 0; i < series[k].n; i++) u[m++] = series[k].steps[i];
    qsort(u, m, sizeof *u, cmp_i64);
    size_t nu = 0;
    for (size_t i = 0; i < m; i++)
        if (nu == 0 || u[nu - 1] != u[i]) u[nu++] = u[i];
    size_t per = (nu + MAX_COLUMNS - 1) / MAX_COLUMNS;
    if (per < 1) per = 1;
    for (size_t c = 0; c < nu; c += per) {
        size_t last = c + per - 1 < nu ? c + per - 1 : nu - 1;
        double left = c == 0 ? f->L : (px(f, (double)u[c - 1]) + px(f, (double)u[c])) / 2;
        double right = last + 1 == nu ? f->W - f->R : (px(f, (double)u[last]) + px(f, (double)u[last + 1])) / 2;
        report_buf_printf(b, "<rect class=\"hit\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>step %lld",
                          left, f->T, right - left > 0 ? right - left : 0.1, f->H - f->T - f->B, (long long)u[last]);
        for (int k = 0; k < n_series; k++) {
            long i = find_step(&series[k], u[last]);
            if (i < 0) continue;
            report_buf_puts(b, "\n");
            report_html_escape_str(b, series[k].name);
            report_buf_puts(b, ": ");
            fmt_value(b, series[k].values[i]);
            if (series[k].band && isfinite(series[k].band[i])) {
                report_buf_puts(b, " \xC2\xB1 ");
                fmt_value(b, series[k].band[i]);
            }
        }
        report_buf_puts(b, "</title></rect>");
    }
    free(u);
}

void report_chart(report_buf *b, const char *id, const char *title, const report_series *series, int n_series,
                  bool small) {
    frame f = small ? (frame){.W = 380, .H = 190, .L = 52, .R = 12, .T = 10, .B = 32}
                    : (frame){.W = 600, .H = 270, .L = 60, .R = 16, .T = 12, .B = 36};
    bool any_step = false, any_value = false;
    double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
    size_t nonfinite = 0;
    for (int k = 0; k < n_series; k++) {
        const report_series *s = &series[k];
        for (size_t i = 0; i < s->n; i++) {
            double x = (double)s->steps[i];
            if (!any_step || x < xmin) xmin = x;
            if (!any_step || x > xmax) xmax = x;
            any_step = true;
            if (!finite_at(s, i)) {
                nonfinite++;
                continue;
            }
            double lo = s->values[i], hi = s->values[i];
            if (band_at(s, i)) lo -= fabs(s->band[i]), hi += fabs(s->band[i]);
            if (!any_value || lo < ymin) ymin = lo;
            if (!any_value || hi > ymax) ymax = hi;
            any_value = true;
        }
    }
    if (xmax <= xmin) xmin -= 1, xmax += 1;
    if (!any_value) ymin = 0, ymax = 1;
    if (ymax <= ymin) {
        double pad = ymin != 0 ? fabs(ymin) * 0.1 : 1.0;
        ymin -= pad, ymax += pad;
    }
    double ystep = nice_step(ymax - ymin, small ? 3 : 5);
    f.x0 = xmin, f.x1 = xmax;
    f.y0 = floor(ymin / ystep + 1e-9) * ystep, f.y1 = ceil(ymax / ystep - 1e-9) * ystep;
    if (f.y1 <= f.y0) f.y1 = f.y0 + ystep;
    f.ystep = ystep;
    /* room for the widest y tick label (digits of 12px text are about 7 units wide) */
    size_t widest = 1;
    char lab[48];
    for (double y = ceil(f.y0 / ystep - 1e-9) * ystep; y <= f.y1 + ystep * 1e-9; y += ystep) {
        fmt_tick(lab, sizeof lab, y, ystep);
        if (strlen(lab) > widest) widest = strlen(lab);
    }
    f.L = 16 + 7.0 * (double)widest;

    report_buf_printf(b, "<figure class=\"chart%s\" id=\"chart-", small ? " small" : "");
    slug(b, id);
    report_buf_puts(b, "\"><figcaption>");
    report_html_escape_str(b, title);
    report_buf_printf(b,
                      "</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
                      "role=\"img\"><title>",
                      f.W, f.H);
    report_html_escape_str(b, title);
    report_buf_puts(b, "</title>");
    draw_axes(b, &f, small);
    for (int k = 0; k < n_series; k++) draw_band(b, &f, &series[k], PALETTE[k % N_PALETTE]);
    for (int k = 0; k < n_series; k++) draw_line(b, &f, &series[k], PALETTE[k % N_PALETTE]);
    if (!any_value)
        report_buf_printf(b, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\">no finite values</text>",
                          (f.L + f.W - f.R) / 2, (f.T + f.H - f.B) / 2);
    draw_columns(b, &f, series, n_series);
    report_buf_puts(b, "</svg>");
    if (n_series > 1) {
        report_buf_puts(b, "<div class=\"legend\">");
        for (int k = 0; k < n_series; k++) {
            report_buf_printf(b, "<span><i style=\"background:%s\"></i>", PALETTE[k % N_PALETTE]);
            report_html_escape_str(b, series[k].name);
            report_buf_puts(b, series[k].band ? " (\xC2\xB1 std)</span>" : "</span>");
        }
        report_buf_puts(b, "</div>");
    } else if (n_series == 1 && series[0].band) {
        report_buf_puts(b, "<div class=\"legend\"><span>band: \xC2\xB1 std</span></div>");
    }
    if (nonfinite)
        report_buf_printf(b, "<p class=\"note\">%zu NaN/Inf value%s shown as gaps</p>", nonfinite,
                          nonfinite == 1 ? "" : "s");
    report_buf_puts(b, "</figure>\n");
}
