/* test_log.c — log lines and the progress bar, written into memory streams with fake times:
 * exact line format, level filtering, colour/terminal escapes only when asked for, redraw
 * throttling on a terminal, one plain line per interval elsewhere, and rate/ETA checked against
 * the closed form of the moving average for a known sequence of (done, now). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"

#define ASSERT_HAS(msg, text) cr_assert(strstr((msg), (text)), "expected '%s' in:\n%s", (text), (msg))

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static void capture_open(capture *c) {
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    cr_assert_not_null(c->f);
}

/* The text written so far (valid until the next write). */
static const char *capture_text(capture *c) {
    fflush(c->f);
    return c->buf;
}

static void capture_close(capture *c) {
    fclose(c->f);
    free(c->buf);
}

static size_t count_char(const char *s, char ch) {
    size_t n = 0;
    for (; *s; s++) n += *s == ch;
    return n;
}

static size_t count_str(const char *s, const char *sub) {
    size_t n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

static double fake_clock(void *ctx) { return *(const double *)ctx; }

/* ---- logging -------------------------------------------------------------------------------- */

Test(log, line_format_with_elapsed_time) {
    capture c;
    capture_open(&c);
    double now = 100.0;
    logger lg;
    logger_init(&lg, c.f, LOG_LEVEL_DEBUG, fake_clock, &now);
    cr_assert_not(lg.color, "a memory stream is not a terminal");
    now = 101.5;
    LOG_INFO(&lg, "step %d loss %.2f", 3, 0.25);
    now = 3700.0;
    LOG_WARN(&lg, "already ends in a newline\n");
    LOG_DEBUG(&lg, "%s", "");
    cr_assert_str_eq(capture_text(&c), "[    1.500s] INFO  step 3 loss 0.25\n"
                                        "[ 3600.000s] WARN  already ends in a newline\n"
                                        "[ 3600.000s] DEBUG \n");
    capture_close(&c);
}

Test(log, level_filters_lines) {
    capture c;
    capture_open(&c);
    double now = 0.0;
    logger lg;
    logger_init(&lg, c.f, LOG_LEVEL_WARN, fake_clock, &now);
    LOG_DEBUG(&lg, "d");
    LOG_INFO(&lg, "i");
    LOG_WARN(&lg, "w");
    LOG_ERROR(&lg, "e");
    cr_assert_str_eq(capture_text(&c), "[    0.000s] WARN  w\n[    0.000s] ERROR e\n");
    capture_close(&c);
    LOG_ERROR((logger *)NULL, "a NULL logger drops lines");
}

Test(log, color_and_terminal_escapes_only_when_on) {
    capture c;
    capture_open(&c);
    double now = 0.0;
    logger lg;
    logger_init(&lg, c.f, LOG_LEVEL_DEBUG, fake_clock, &now);
    LOG_ERROR(&lg, "plain");
    const char *t = capture_text(&c);
    cr_assert_null(strchr(t, '\033'), "%s", t);
    cr_assert_null(strchr(t, '\r'), "%s", t);
    lg.color = true;
    lg.tty = true;
    LOG_WARN(&lg, "w");
    LOG_ERROR(&lg, "e");
    t = capture_text(&c);
    ASSERT_HAS(t, "\r\033[K[    0.000s] \033[33mWARN \033[0m w\n");
    ASSERT_HAS(t, "\033[1;31mERROR\033[0m e\n");
    capture_close(&c);
}

Test(log, long_messages_are_written_whole) {
    capture c;
    capture_open(&c);
    double now = 0.0;
    logger lg;
    logger_init(&lg, c.f, LOG_LEVEL_INFO, fake_clock, &now);
    char big[5001];
    memset(big, 'x', 5000);
    big[5000] = '\0';
    LOG_INFO(&lg, "<%s>", big);
    const char *t = capture_text(&c);
    cr_assert_eq(strlen(t), strlen("[    0.000s] INFO  <>\n") + 5000);
    cr_assert_eq(strncmp(t + strlen(t) - 3, "x>\n", 3), 0);
    capture_close(&c);
}

Test(log, level_names_parse) {
    log_level lv;
    pt_error err = {0};
    cr_assert_eq(log_level_parse(&lv, "debug", &err), PT_OK);
    cr_assert_eq(lv, LOG_LEVEL_DEBUG);
    cr_assert_eq(log_level_parse(&lv, "INFO", &err), PT_OK);
    cr_assert_eq(lv, LOG_LEVEL_INFO);
    cr_assert_eq(log_level_parse(&lv, "Warning", &err), PT_OK);
    cr_assert_eq(lv, LOG_LEVEL_WARN);
    cr_assert_eq(log_level_parse(&lv, "error", &err), PT_OK);
    cr_assert_eq(lv, LOG_LEVEL_ERROR);
    cr_assert_eq(log_level_parse(&lv, "verbose", &err), PT_ERR_CONFIG);
    cr_assert_eq(lv, LOG_LEVEL_ERROR, "a failed parse leaves the level alone");
    ASSERT_HAS(err.msg, "unknown log level 'verbose'; expected debug, info, warn or error");
    cr_assert_str_eq(log_level_name(LOG_LEVEL_WARN), "WARN");
}

/* ---- progress ------------------------------------------------------------------------------- */

Test(progress, tty_redraws_in_place_at_most_ten_times_a_second) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "train", 1000, 0.0);
    p.tty = true;
    p.columns = 0;
    int updates = 0;
    for (int i = 1; i <= 200; i++) { /* every 5 ms for 1 s */
        progress_update(&p, i * 5, i * 0.005);
        updates++;
    }
    const char *t = capture_text(&c);
    size_t draws = count_char(t, '\r');
    cr_assert_eq(count_str(t, "\033[K"), draws, "every redraw erases the rest of the line");
    cr_assert_geq(draws, 9, "%zu redraws in 1 s", draws);
    cr_assert_leq(draws, 11, "%zu redraws in 1 s (throttle at 0.1 s)", draws);
    cr_assert_null(strchr(t, '\n'), "no newline before finish");
    ASSERT_HAS(t, "\rtrain   0% [------------------------] 5/1000");
    progress_finish(&p, 1.0);
    t = capture_text(&c);
    cr_assert_eq(count_char(t, '\r'), draws + 1, "finish always draws");
    size_t n = strlen(t);
    cr_assert_eq(strcmp(t + n - 4, "\033[K\n"), 0, "the final line ends the terminal line");
    ASSERT_HAS(t, "\rtrain 100% [########################] 1000/1000");
    ASSERT_HAS(t, "1.00k it/s  done in 1s");
    progress_update(&p, 2000, 5.0);
    progress_finish(&p, 6.0);
    cr_assert_eq(strlen(capture_text(&c)), n, "nothing after finish");
    capture_close(&c);
}

Test(progress, plain_prints_every_interval_and_at_finish) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "sft", 700, 0.0);
    cr_assert_not(p.tty, "a memory stream is not a terminal");
    for (int i = 1; i <= 70; i++) progress_update(&p, i * 10, i * 0.5); /* 20 items/s for 35 s */
    const char *t = capture_text(&c);
    cr_assert_eq(count_char(t, '\n'), 3, "lines at 10 s, 20 s and 30 s:\n%s", t);
    cr_assert_null(strchr(t, '\r'));
    cr_assert_null(strchr(t, '\033'));
    ASSERT_HAS(t, "sft 200/700 (28%)  20.0 it/s  ETA 25s  elapsed 10s\n");
    ASSERT_HAS(t, "sft 400/700 (57%)  20.0 it/s  ETA 15s  elapsed 20s\n");
    ASSERT_HAS(t, "sft 600/700 (85%)  20.0 it/s  ETA 5s  elapsed 30s\n");
    progress_finish(&p, 35.0);
    t = capture_text(&c);
    cr_assert_eq(count_char(t, '\n'), 4);
    ASSERT_HAS(t, "sft 700/700 (100%)  20.0 it/s  done in 35s\n");
    cr_assert_null(strchr(t, '\r'));
    cr_assert_null(strchr(t, '\033'));
    capture_close(&c);

    capture_open(&c);
    progress_init(&p, c.f, "short", 10, 0.0);
    p.interval = 60.0;
    for (int i = 1; i <= 10; i++) progress_update(&p, i, i * 1.0);
    cr_assert_eq(strlen(capture_text(&c)), 0, "nothing before the interval");
    progress_finish(&p, 10.0);
    cr_assert_str_eq(capture_text(&c), "short 10/10 (100%)  1.00 it/s  done in 10s\n");
    capture_close(&c);
}

Test(progress, rate_and_eta_follow_the_moving_average) {
    progress p;
    progress_init(&p, NULL, "x", 10000, 50.0);
    cr_assert_lt(progress_rate(&p), 0.0, "unknown before the first interval");
    cr_assert_lt(progress_eta(&p), 0.0);
    /* steady 5 items/s, updates every 2 s: the rate is exact */
    int64_t done = 0;
    double now = 50.0;
    for (int k = 0; k < 10; k++) {
        now += 2.0;
        done += 10;
        progress_update(&p, done, now);
    }
    cr_assert_float_eq(progress_rate(&p), 5.0, 1e-12);
    cr_assert_float_eq(progress_eta(&p), (10000.0 - 100.0) / 5.0, 1e-9);
    /* a second update at the same instant is merged into the next interval */
    progress_update(&p, done + 10, now);
    cr_assert_float_eq(progress_rate(&p), 5.0, 1e-12);
    done += 10;
    now += 1.0;
    done += 5;
    progress_update(&p, done, now); /* 15 items in 1 s */
    double a = 1.0 - exp(-1.0 / 5.0);
    cr_assert_float_eq(progress_rate(&p), 5.0 + a * (15.0 - 5.0), 1e-12);
    /* then 20 items/s in steps of 0.5 s: r(k) = 20 − (20 − r0)·e^{−0.5k/τ} */
    double r0 = progress_rate(&p);
    for (int k = 1; k <= 30; k++) {
        now += 0.5;
        done += 10;
        progress_update(&p, done, now);
        double expect = 20.0 - (20.0 - r0) * exp(-0.5 * k / 5.0);
        cr_assert_float_eq(progress_rate(&p), expect, 1e-9, "step %d: %g vs %g", k, progress_rate(&p), expect);
    }
    cr_assert_float_eq(progress_eta(&p), (double)(10000 - done) / progress_rate(&p), 1e-9);
    progress_update(&p, 10000, now + 1.0);
    cr_assert_eq(progress_eta(&p), 0.0);
    progress_update(&p, 10050, now + 2.0);
    cr_assert_eq(progress_eta(&p), 0.0, "past the total is done, not negative");
}

Test(progress, eta_and_rate_in_the_line) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "grpo", 100, 0.0);
    p.interval = 1.0;
    progress_update(&p, 1, 4.0); /* 0.25 items/s: 4 s per item, 99 left → 396 s */
    progress_update(&p, 1, 4.5);
    ASSERT_HAS(capture_text(&c), "grpo 1/100 (1%)  4.00 s/it  ETA 6m36s  elapsed 4s\n");
    capture_close(&c);

    capture_open(&c);
    progress_init(&p, c.f, "gen", 100000000, 0.0);
    p.interval = 1.0;
    progress_update(&p, 2500000, 2.0); /* 1.25M/s, 97.5M left → 78 s */
    ASSERT_HAS(capture_text(&c), "gen 2500000/100000000 (2%)  1.25M it/s  ETA 1m18s  elapsed 2s\n");
    progress_init(&p, c.f, "long", 1000000, 0.0);
    p.interval = 1.0;
    progress_update(&p, 10, 100.0); /* 0.1 items/s: 999990 × 10 s ≈ 115.7 days */
    ASSERT_HAS(capture_text(&c), "long 10/1000000 (0%)  10.00 s/it  ETA 115d17h  elapsed 1m40s\n");
    capture_close(&c);
}

Test(progress, unknown_total_has_no_bar_percent_or_eta) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "read", 0, 0.0);
    p.tty = true;
    snprintf(p.unit, sizeof p.unit, "rows");
    progress_update(&p, 250, 2.0);
    progress_finish(&p, 4.0);
    const char *t = capture_text(&c);
    ASSERT_HAS(t, "\rread 250 rows  125.0 rows/s  elapsed 2s\033[K");
    ASSERT_HAS(t, "\rread 250 rows  62.5 rows/s  done in 4s\033[K\n");
    cr_assert_null(strchr(t, '%'));
    cr_assert_null(strstr(t, "[#"));
    cr_assert_null(strstr(t, "[-"));
    cr_assert_null(strstr(t, "ETA"));
    capture_close(&c);
}

Test(progress, fields_keep_order_and_update_in_place) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "rl", 10, 0.0);
    p.interval = 1.0;
    progress_set_field(&p, "loss", "%.4f", 1.5);
    progress_set_field(&p, "lr", "%.1e", 3e-4);
    progress_set_field(&p, "loss", "%.4f", 0.25);
    progress_update(&p, 1, 1.0);
    const char *t = capture_text(&c);
    ASSERT_HAS(t, "  loss=0.2500  lr=3.0e-04\n");
    cr_assert_eq(count_str(t, "loss="), 1);
    for (int i = 0; i < PROGRESS_MAX_FIELDS + 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        progress_set_field(&p, name, "%d", i);
    }
    cr_assert_eq(p.n_fields, PROGRESS_MAX_FIELDS, "names past the limit are dropped");
    progress_set_field(&p, "lr", "%s", "x");
    progress_finish(&p, 2.0);
    t = capture_text(&c);
    ASSERT_HAS(t, "  loss=0.2500  lr=x  f0=0  f1=1");
    char last[16];
    snprintf(last, sizeof last, "f%d=", PROGRESS_MAX_FIELDS - 3);
    ASSERT_HAS(t, last);
    snprintf(last, sizeof last, "f%d=", PROGRESS_MAX_FIELDS - 2);
    cr_assert_null(strstr(t, last));
    capture_close(&c);
}

Test(progress, tty_line_is_cut_to_the_terminal_width) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "wide", 100, 0.0);
    p.tty = true;
    p.columns = 40;
    progress_set_field(&p, "reward", "%s", "0.123456789");
    progress_update(&p, 50, 1.0);
    const char *t = capture_text(&c);
    cr_assert_eq(strlen(t), 1 + 39 + 3, "'\\r', 39 columns, '\\033[K': %s", t);
    cr_assert_eq(strncmp(t, "\rwide  50% [############------------] 50", 40), 0, "%s", t);
    capture_close(&c);
}

Test(progress, resume_leaves_earlier_items_out_of_the_rate) {
    capture c;
    capture_open(&c);
    progress p;
    progress_init(&p, c.f, "resume", 1000, 0.0);
    progress_resume(&p, 900);
    progress_update(&p, 910, 2.0);
    cr_assert_float_eq(progress_rate(&p), 5.0, 1e-12);
    cr_assert_float_eq(progress_eta(&p), 18.0, 1e-12);
    progress_update(&p, 1000, 20.0);
    progress_finish(&p, 20.0);
    ASSERT_HAS(capture_text(&c), "resume 1000/1000 (100%)  5.00 it/s  done in 20s\n");
    capture_close(&c);
}

Test(progress, durations) {
    char b[32];
    struct { double s; const char *want; } cases[] = {
        {0.0, "0s"},      {59.4, "59s"},         {59.6, "1m00s"},    {65.0, "1m05s"},  {3599.0, "59m59s"},
        {3723.0, "1h02m03s"}, {86399.0, "23h59m59s"}, {90000.0, "1d01h"}, {-1.0, "?"}, {NAN, "?"}, {INFINITY, "?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        progress_format_duration(b, sizeof b, cases[i].s);
        cr_assert_str_eq(b, cases[i].want, "%g s", cases[i].s);
    }
}
