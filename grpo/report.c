/* report.c — `posttrain report`: the run store of a GRPO or SFT run as one self-contained HTML
 * file (see report.h for what it shows and its invariants).
 *
 * Metrics are matched to known charts by name (TRL's names, as grpo/run.c and sft/sft_run.c log
 * them, plus the eval/<name> family of the evaluation command): a chart lists patterns with at most
 * one '*' ("rewards/ * /mean" without the spaces), each with an optional band pattern whose '*'
 * takes the same text ("rewards/ * /std"). A metric used by a chart, as a line or as a band, is
 * "claimed"; every unclaimed metric gets a small chart of its own under "Other metrics", so
 * nothing logged is hidden. A known chart with no matching metric is listed in a note instead
 * of being drawn empty.
 *
 * Sample rollouts: the steps that have rollouts, all of them when there are at most
 * sample_steps + 1, else sample_steps evenly spaced (the first included) plus the last; per step
 * the rollout with the highest reward and the one with the lowest (ties broken by prompt then
 * sample index; rollouts whose reward is NULL rank last in both).
 */
#include "grpo/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/run_store.h"

void report_options_default(report_options *o) {
    *o = (report_options){.sample_steps = 10, .max_text_bytes = 16384};
}

/* ---- metrics and chart matching -------------------------------------------------------- */

typedef struct metric {
    char *name;
    run_metric_series s;
    bool claimed;
} metric;

typedef struct metrics {
    metric *m;
    size_t n;
} metrics;

typedef struct chart_pattern {
    const char *line; /* exact name or one '*' */
    const char *band; /* NULL, or the band's name with the same '*' */
} chart_pattern;

#define MAX_PATTERNS 4
#define MAX_SERIES 24

typedef struct chart_spec {
    const char *section;
    const char *id;
    const char *title;
    chart_pattern p[MAX_PATTERNS];
} chart_spec;

static const chart_spec CHARTS[] = {
    {"Reward", "reward", "Reward (mean \xC2\xB1 std over rollouts)", {{"reward", "reward_std"}}},
    {"Reward", "rewards", "Per-reward breakdown (rewards/<name>/mean)", {{"rewards/*/mean", "rewards/*/std"}}},
    {"Reward", "frac-zero-std", "Groups with zero reward std (frac_reward_zero_std)", {{"frac_reward_zero_std", 0}}},
    {"Evaluation", "accuracy", "Evaluation accuracy", {{"eval/accuracy", 0}, {"eval/pass@*", 0}}},
    {"Evaluation", "eval-reward", "Evaluation reward", {{"eval/mean_reward", "eval/reward_std"}}},
    {"Policy", "kl", "KL to the reference model (kl)", {{"kl", 0}}},
    {"Policy", "entropy", "Entropy (nats per token)", {{"entropy", 0}}},
    {"Policy", "clip-ratio", "Clip ratios",
     {{"clip_ratio/low_mean", 0}, {"clip_ratio/high_mean", 0}, {"clip_ratio/region_mean", 0}}},
    {"Completions", "completion-length", "Completion length (tokens)",
     {{"completions/mean_length", 0}, {"completions/min_length", 0}, {"completions/max_length", 0}}},
    {"Completions", "clipped-ratio", "Truncated at max length (completions/clipped_ratio)",
     {{"completions/clipped_ratio", 0}}},
    {"Optimisation", "loss", "Loss", {{"loss", 0}, {"eval_loss", 0}, {"eval/loss", 0}, {"mtp_loss", 0}}},
    {"Optimisation", "learning-rate", "Learning rate", {{"learning_rate", 0}}},
    {"Optimisation", "grad-norm", "Gradient norm (before clipping)", {{"grad_norm", 0}}},
    {"Time", "step-time", "Step time (s): total and split",
     {{"step_time", 0}, {"step_time/generation", 0}, {"step_time/scoring", 0}, {"step_time/update", 0}}},
    {"Time", "throughput", "Throughput (tokens/s)", {{"tokens_per_second", 0}}},
};
#define N_CHARTS (sizeof CHARTS / sizeof CHARTS[0])

/* name matches pat (one optional '*' standing for one or more characters): *star = the text the
 * star took (offset and length into name). */
static bool glob_match(const char *pat, const char *name, size_t *star_at, size_t *star_len) {
    const char *st = strchr(pat, '*');
    if (!st) {
        *star_at = *star_len = 0;
        return strcmp(pat, name) == 0;
    }
    size_t pre = (size_t)(st - pat), post = strlen(st + 1), n = strlen(name);
    if (n < pre + post + 1 || strncmp(name, pat, pre) != 0 || strcmp(name + n - post, st + 1) != 0) return false;
    *star_at = pre;
    *star_len = n - pre - post;
    return true;
}

static metric *metric_find(metrics *ms, const char *name) {
    for (size_t i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].name, name) == 0) return &ms->m[i];
    return NULL;
}

static void metrics_free(metrics *ms) {
    for (size_t i = 0; i < ms->n; i++) {
        free(ms->m[i].name);
        run_metric_series_free(&ms->m[i].s);
    }
    free(ms->m);
    *ms = (metrics){0};
}

static pt_status metrics_load(metrics *ms, run_store *rs, pt_error *err) {
    char **names = NULL;
    size_t n = 0;
    PT_TRY(run_store_metric_names(&names, &n, rs, err));
    *ms = (metrics){.m = calloc(n ? n : 1, sizeof(metric)), .n = 0};
    if (!ms->m) {
        run_store_names_free(names, n);
        PT_CHECK_ALLOC(ms->m, err, n * sizeof(metric));
    }
    pt_status st = PT_OK;
    for (size_t i = 0; i < n && st == PT_OK; i++) {
        st = run_store_metric_series(&ms->m[i].s, rs, names[i], err);
        if (st != PT_OK) break;
        ms->m[i].name = names[i];
        names[i] = NULL;
        ms->n++;
    }
    run_store_names_free(names, n);
    if (st != PT_OK) metrics_free(ms);
    return st;
}

/* band values aligned to the steps of `line` (NaN where the band has no row). */
static double *band_align(const run_metric_series *line, const run_metric_series *band) {
    double *out = malloc((line->n ? line->n : 1) * sizeof *out);
    if (!out) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < line->n; i++) {
        while (j < band->n && band->steps[j] < line->steps[i]) j++;
        out[i] = j < band->n && band->steps[j] == line->steps[i] ? band->values[j] : NAN;
    }
    return out;
}

/* Draws the known chart `c` when any of its metrics exist; returns whether it drew. */
static bool chart_known(report_buf *b, metrics *ms, const chart_spec *c) {
    report_series sv[MAX_SERIES];
    double *bands[MAX_SERIES] = {0};
    int ns = 0;
    for (int p = 0; p < MAX_PATTERNS && c->p[p].line; p++)
        for (size_t i = 0; i < ms->n && ns < MAX_SERIES; i++) {
            size_t at, len;
            metric *m = &ms->m[i];
            if (!glob_match(c->p[p].line, m->name, &at, &len)) continue;
            /* a band metric of another pattern ("rewards/ * /std") is never a line of its own */
            bool is_band = false;
            for (int q = 0; q < MAX_PATTERNS && c->p[q].line; q++) {
                size_t a2, l2;
                if (c->p[q].band && glob_match(c->p[q].band, m->name, &a2, &l2)) is_band = true;
            }
            if (is_band) continue;
            m->claimed = true;
            sv[ns] = (report_series){.name = m->name, .steps = m->s.steps, .values = m->s.values, .n = m->s.n};
            if (c->p[p].band) {
                char band_name[512];
                const char *st = strchr(c->p[p].band, '*');
                if (st)
                    snprintf(band_name, sizeof band_name, "%.*s%.*s%s", (int)(st - c->p[p].band), c->p[p].band,
                             (int)len, m->name + at, st + 1);
                else
                    snprintf(band_name, sizeof band_name, "%s", c->p[p].band);
                metric *bm = metric_find(ms, band_name);
                if (bm) {
                    bm->claimed = true;
                    bands[ns] = band_align(&m->s, &bm->s);
                    if (!bands[ns]) b->oom = true;
                    sv[ns].band = bands[ns];
                }
            }
            ns++;
        }
    if (ns > 0) report_chart(b, c->id, c->title, sv, ns, false);
    for (int k = 0; k < ns; k++) free(bands[k]);
    return ns > 0;
}

static void section_charts(report_buf *b, metrics *ms, int64_t n_steps) {
    report_buf_puts(b, "<section id=\"charts\">\n");
    if (n_steps == 0 || ms->n == 0) {
        report_buf_puts(b, "<h2>Metrics</h2><p class=\"note\">No metrics logged yet.</p></section>\n");
        return;
    }
    bool drawn[N_CHARTS] = {0};
    const char *open_section = NULL;
    for (size_t c = 0; c < N_CHARTS; c++) {
        /* the section heading goes out before its first chart that has data */
        report_buf tmp = {0};
        drawn[c] = chart_known(&tmp, ms, &CHARTS[c]);
        if (tmp.oom) b->oom = true;
        if (drawn[c]) {
            if (!open_section || strcmp(open_section, CHARTS[c].section) != 0) {
                if (open_section) report_buf_puts(b, "</div>\n");
                report_buf_printf(b, "<h2>%s</h2>\n<div class=\"grid\">\n", CHARTS[c].section);
                open_section = CHARTS[c].section;
            }
            report_buf_append(b, tmp.data, tmp.len);
        }
        report_buf_free(&tmp);
    }
    if (open_section) report_buf_puts(b, "</div>\n");
    size_t n_missing = 0;
    for (size_t c = 0; c < N_CHARTS; c++) n_missing += !drawn[c];
    if (n_missing) {
        report_buf_puts(b, "<p class=\"note missing\">Not logged in this run, so not charted: ");
        size_t k = 0;
        for (size_t c = 0; c < N_CHARTS; c++) {
            if (drawn[c]) continue;
            report_buf_printf(b, "%s<span data-chart=\"%s\">", k++ ? "; " : "", CHARTS[c].id);
            report_html_escape_str(b, CHARTS[c].title);
            report_buf_puts(b, " (");
            for (int p = 0; p < MAX_PATTERNS && CHARTS[c].p[p].line; p++) {
                report_buf_puts(b, p ? ", " : "");
                report_html_escape_str(b, CHARTS[c].p[p].line);
            }
            report_buf_puts(b, ")</span>");
        }
        report_buf_puts(b, ".</p>\n");
    }
    size_t n_other = 0;
    for (size_t i = 0; i < ms->n; i++) n_other += !ms->m[i].claimed;
    if (n_other) {
        report_buf_printf(b, "<h2 id=\"other\">Other metrics (%zu)</h2>\n<div class=\"grid small\">\n", n_other);
        for (size_t i = 0; i < ms->n; i++) {
            metric *m = &ms->m[i];
            if (m->claimed) continue;
            report_series s = {.name = m->name, .steps = m->s.steps, .values = m->s.values, .n = m->s.n};
            char id[600];
            snprintf(id, sizeof id, "other-%s", m->name);
            report_chart(b, id, m->name, &s, 1, true);
        }
        report_buf_puts(b, "</div>\n");
    }
    report_buf_puts(b, "</section>\n");
}

/* ---- header ------------------------------------------------------------------------------ */

static const char *const SUMMARY_KEYS[] = {
    "model", "data", "eval_data", "rewards", "out", "max_steps", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "num_generations", "max_prompt_length", "max_completion_length", "max_length",
    "temperature", "top_p", "learning_rate", "lr_scheduler_type", "warmup_steps", "beta", "epsilon", "epsilon_high",
    "loss_type", "scale_rewards", "num_iterations", "packing", "seed"};

static void fmt_time(char *out, size_t n, double t) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void fmt_duration(char *out, size_t n, double sec) {
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(out, n, "%ldh %02ldm %02lds", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60) snprintf(out, n, "%ldm %02lds", s / 60, s % 60);
    else snprintf(out, n, "%.1f s", sec);
}

static const char *col_text(sqlite3_stmt *q, int i, size_t *n) {
    const char *t = (const char *)sqlite3_column_text(q, i);
    *n = t ? (size_t)sqlite3_column_bytes(q, i) : 0;
    return t ? t : "";
}

static void kv_row_begin(report_buf *b, const char *key) {
    report_buf_puts(b, "<tr><td>");
    report_html_escape_str(b, key);
    report_buf_puts(b, "</td><td>");
}

static void config_summary(report_buf *b, const char *text, size_t n) {
    cJSON *cfg = cJSON_ParseWithLength(text, n);
    if (!cJSON_IsObject(cfg)) {
        report_buf_puts(b, "<p class=\"note\">The recorded config is not a JSON object; shown as stored.</p>");
    } else {
        report_buf_puts(b, "<table class=\"kv config\">");
        for (size_t k = 0; k < sizeof SUMMARY_KEYS / sizeof SUMMARY_KEYS[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, SUMMARY_KEYS[k]);
            if (!v || cJSON_IsNull(v)) continue;
            kv_row_begin(b, SUMMARY_KEYS[k]);
            if (cJSON_IsString(v)) {
                report_html_escape_str(b, v->valuestring);
            } else {
                char *s = cJSON_PrintUnformatted(v);
                if (s && strlen(s) > 200) strcpy(s + 197, "...");
                report_html_escape_str(b, s ? s : "?");
                free(s);
            }
            report_buf_puts(b, "</td></tr>");
        }
        report_buf_puts(b, "</table>");
    }
    report_buf_printf(b, "<details><summary>Full config (%d keys)</summary><pre>",
                      cJSON_IsObject(cfg) ? cJSON_GetArraySize(cfg) : 0);
    report_html_escape(b, text, n);
    report_buf_puts(b, "</pre></details>");
    cJSON_Delete(cfg);
}

#define DB_CHECK(rc, db, err, what)                                                                \
    do {                                                                                           \
        if ((rc) != SQLITE_OK)                                                                     \
            PT_FAIL(err, PT_ERR_FORMAT, "%s: %s: %s", run_dir, what, sqlite3_errmsg(db));           \
    } while (0)

static pt_status section_header(report_buf *b, sqlite3 *db, const char *run_dir, int64_t *n_steps, pt_error *err) {
    sqlite3_stmt *q = NULL;
    /* steps */
    DB_CHECK(sqlite3_prepare_v2(db, "SELECT count(*), min(step), max(step), min(written_at), max(written_at) FROM steps",
                                -1, &q, NULL),
             db, err, "reading the steps");
    int64_t count = 0, first = 0, last = 0;
    double t0 = 0, t1 = 0;
    if (sqlite3_step(q) == SQLITE_ROW) {
        count = sqlite3_column_int64(q, 0);
        first = sqlite3_column_int64(q, 1), last = sqlite3_column_int64(q, 2);
        t0 = sqlite3_column_double(q, 3), t1 = sqlite3_column_double(q, 4);
    }
    sqlite3_finalize(q);
    *n_steps = count;
    /* run rows: the latest names the command and config */
    DB_CHECK(sqlite3_prepare_v2(db, "SELECT created, command, config, config_hash FROM run ORDER BY id", -1, &q, NULL),
             db, err, "reading the run table");
    report_buf runs = {0}, cfg = {0}, command = {0};
    int n_runs = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        size_t n;
        const char *s;
        n_runs++;
        report_buf_puts(&runs, "<tr><td>");
        s = col_text(q, 0, &n);
        report_html_escape(&runs, s, n);
        report_buf_puts(&runs, "</td><td>");
        command.len = 0;
        s = col_text(q, 1, &n);
        report_html_escape(&command, s, n);
        report_buf_append(&runs, command.data ? command.data : "", command.len);
        report_buf_puts(&runs, "</td><td><code>");
        s = col_text(q, 3, &n);
        report_html_escape(&runs, s, n);
        report_buf_printf(&runs, "</code></td><td>%s</td></tr>", n_runs == 1 ? "start" : "resume");
        cfg.len = 0;
        if (sqlite3_column_type(q, 2) != SQLITE_NULL) {
            s = col_text(q, 2, &n);
            config_summary(&cfg, s, n);
        }
    }
    sqlite3_finalize(q);

    report_buf_puts(b, "<header><h1>posttrain report");
    if (command.len) {
        report_buf_puts(b, ": ");
        report_buf_append(b, command.data, command.len);
        report_buf_puts(b, " run");
    }
    report_buf_puts(b, "</h1><p class=\"sub\"><code>");
    report_html_escape_str(b, run_dir);
    report_buf_puts(b, "</code></p><nav><a href=\"#summary\">Summary</a><a href=\"#charts\">Charts</a>"
                       "<a href=\"#samples\">Sample rollouts</a></nav></header>\n"
                       "<section id=\"summary\"><div class=\"cards\">");
    char a[64], z[64], d[64];
    report_buf_puts(b, "<div class=\"card\"><h3>Steps</h3>");
    if (count > 0)
        report_buf_printf(b, "<p class=\"big\">%lld</p><p>steps %lld \xE2\x80\x93 %lld committed</p>", (long long)count,
                          (long long)first, (long long)last);
    else
        report_buf_puts(b, "<p class=\"big\">0</p><p>no step committed yet</p>");
    report_buf_puts(b, "</div><div class=\"card\"><h3>When</h3>");
    if (count > 0) {
        fmt_time(a, sizeof a, t0), fmt_time(z, sizeof z, t1), fmt_duration(d, sizeof d, t1 - t0);
        report_buf_printf(b, "<p>first step %s<br>last step %s<br>span %s</p>", a, z, d);
    } else {
        report_buf_puts(b, "<p>\xE2\x80\x94</p>");
    }
    time_t now = time(NULL);
    fmt_time(a, sizeof a, (double)now);
    report_buf_printf(b, "<p class=\"note\">report made %s</p></div>", a);
    report_buf_printf(b, "<div class=\"card wide\"><h3>Starts and resumes (%d)</h3>", n_runs);
    if (n_runs)
        report_buf_printf(b, "<table class=\"kv\"><tr><th>started</th><th>command</th><th>config hash</th><th></th></tr>"
                             "%s</table>",
                          runs.data);
    else
        report_buf_puts(b, "<p class=\"note\">The run table is empty.</p>");
    report_buf_puts(b, "</div></div>");
    if (cfg.len) {
        report_buf_puts(b, "<h2>Config</h2><div class=\"card config\">");
        report_buf_append(b, cfg.data, cfg.len);
        report_buf_puts(b, "</div>");
    }
    if (runs.oom || cfg.oom || command.oom) b->oom = true;
    report_buf_free(&runs), report_buf_free(&cfg), report_buf_free(&command);

    /* checkpoints */
    DB_CHECK(sqlite3_prepare_v2(db, "SELECT step, path FROM checkpoints ORDER BY step", -1, &q, NULL), db, err,
             "reading the checkpoints");
    int n_ck = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        size_t n;
        const char *s = col_text(q, 1, &n);
        if (n_ck++ == 0) report_buf_puts(b, "<details class=\"checkpoints\"><summary>Checkpoints</summary><table class=\"kv\">");
        report_buf_printf(b, "<tr><td>step %lld</td><td><code>", (long long)sqlite3_column_int64(q, 0));
        report_html_escape(b, s, n);
        report_buf_puts(b, "</code></td></tr>");
    }
    sqlite3_finalize(q);
    if (n_ck) report_buf_puts(b, "</table></details>");
    report_buf_puts(b, "</section>\n");
    return PT_OK;
}

/* ---- sample rollouts --------------------------------------------------------------------- */

static void fmt_num(report_buf *b, double v) {
    if (isnan(v)) report_buf_puts(b, "NaN");
    else report_buf_printf(b, "%.4g", v);
}

/* Text of at most max bytes (cut at a UTF-8 boundary), escaped, with a note of what was cut. */
static void text_block(report_buf *b, const char *cls, const char *s, size_t n, size_t max) {
    size_t show = n;
    if (show > max) {
        show = max;
        for (int k = 0; k < 3 && show > 0 && ((unsigned char)s[show] & 0xC0) == 0x80; k++) show--;
    }
    report_buf_printf(b, "<pre class=\"%s\">", cls);
    report_html_escape(b, s, show);
    if (show < n) report_buf_printf(b, "<span class=\"cut\">\n[\xE2\x80\xA6 %zu more bytes not shown]</span>", n - show);
    report_buf_puts(b, "</pre>");
}

static void scores_table(report_buf *b, const char *json, size_t n) {
    cJSON *r = cJSON_ParseWithLength(json, n);
    if (!cJSON_IsObject(r)) {
        report_buf_puts(b, "<p class=\"note\">per-reward scores (not a JSON object): <code>");
        report_html_escape(b, json, n);
        report_buf_puts(b, "</code></p>");
    } else if (cJSON_GetArraySize(r) > 0) {
        report_buf_puts(b, "<table class=\"kv scores\">");
        const cJSON *it;
        cJSON_ArrayForEach(it, r) {
            kv_row_begin(b, it->string);
            if (cJSON_IsNumber(it)) fmt_num(b, it->valuedouble);
            else if (cJSON_IsNull(it)) report_buf_puts(b, "<span class=\"note\">abstained</span>");
            else report_buf_puts(b, "?");
            report_buf_puts(b, "</td></tr>");
        }
        report_buf_puts(b, "</table>");
    }
    cJSON_Delete(r);
}

/* One rollout card from a row of ROLLOUT_SQL. */
static void rollout_card(report_buf *b, sqlite3_stmt *q, const char *label, const char *cls, size_t max_text) {
    size_t n;
    const char *s;
    report_buf_printf(b, "<article class=\"rollout %s\"><h4>%s</h4><p class=\"meta\">reward <b>", cls, label);
    fmt_num(b, sqlite3_column_type(q, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(q, 5));
    report_buf_puts(b, "</b> \xC2\xB7 advantage ");
    if (sqlite3_column_type(q, 6) == SQLITE_NULL) report_buf_puts(b, "<b>none</b> (its group was not trained on)");
    else report_buf_printf(b, "<b>%+.4g</b>", sqlite3_column_double(q, 6));
    report_buf_printf(b, " \xC2\xB7 %lld tokens \xC2\xB7 finish <b>", (long long)sqlite3_column_int64(q, 7));
    s = col_text(q, 8, &n);
    report_html_escape(b, s, n);
    report_buf_printf(b, "</b> \xC2\xB7 prompt %lld, sample %lld</p>", (long long)sqlite3_column_int64(q, 0),
                      (long long)sqlite3_column_int64(q, 1));
    s = col_text(q, 4, &n);
    scores_table(b, s, n);
    s = col_text(q, 2, &n);
    report_buf_puts(b, "<div class=\"label\">Prompt</div>");
    text_block(b, "prompt", s, n, max_text);
    report_buf_puts(b, "<div class=\"label\">Completion</div>");
    s = col_text(q, 3, &n);
    text_block(b, "completion", s, n, max_text);
    report_buf_puts(b, "</article>");
}

#define ROLLOUT_SQL                                                                                \
    "SELECT prompt_index, sample_index, prompt, completion, rewards, reward, advantage, length, finish_reason " \
    "FROM rollouts WHERE step = ?1 ORDER BY reward IS NULL, reward %s, prompt_index, sample_index LIMIT 1"

static pt_status section_samples(report_buf *b, sqlite3 *db, const char *run_dir, const report_options *o,
                                 pt_error *err) {
    sqlite3_stmt *q = NULL;
    DB_CHECK(sqlite3_prepare_v2(db, "SELECT step, count(*), avg(reward), count(reward) FROM rollouts GROUP BY step "
                                    "ORDER BY step",
                                -1, &q, NULL),
             db, err, "reading the rollouts");
    size_t n = 0, cap = 0;
    struct step_info {
        int64_t step, count, scored;
        double mean;
    } *steps = NULL;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            void *p = realloc(steps, cap * sizeof *steps);
            if (!p) {
                free(steps);
                sqlite3_finalize(q);
                PT_CHECK_ALLOC(p, err, cap * sizeof *steps);
            }
            steps = p;
        }
        steps[n++] = (struct step_info){sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1),
                                        sqlite3_column_int64(q, 3), sqlite3_column_double(q, 2)};
    }
    sqlite3_finalize(q);
    report_buf_puts(b, "<section id=\"samples\"><h2>Sample rollouts</h2>\n");
    if (n == 0) {
        report_buf_puts(b, "<p class=\"note\">No rollouts recorded in this run.</p></section>\n");
        free(steps);
        return PT_OK;
    }
    size_t want = o->sample_steps > 0 ? (size_t)o->sample_steps : 1;
    bool all = n <= want + 1;
    report_buf_printf(b, "<p class=\"note\">%s of the %zu steps with rollouts: the best and the worst rollout by reward.</p>\n",
                      all ? "All" : "An even selection", n);
    /* the selection: index i of steps[] for k = 0..count-1 */
#define SAMPLE_INDEX(k) (all ? (k) : (k) == want ? n - 1 : (size_t)((double)(k) * (double)(n - 1) / (double)want + 0.5))
    size_t n_pick = all ? n : want + 1;
    report_buf_puts(b, "<p class=\"steps\">");
    for (size_t k = 0, prev = (size_t)-1; k < n_pick; k++) {
        size_t i = SAMPLE_INDEX(k);
        if (i == prev) continue;
        prev = i;
        report_buf_printf(b, "<a href=\"#step-%lld\">step %lld</a>", (long long)steps[i].step, (long long)steps[i].step);
    }
    report_buf_puts(b, "</p>\n");
    sqlite3_stmt *best = NULL, *worst = NULL;
    char sql[512];
    snprintf(sql, sizeof sql, ROLLOUT_SQL, "DESC");
    int rc = sqlite3_prepare_v2(db, sql, -1, &best, NULL);
    snprintf(sql, sizeof sql, ROLLOUT_SQL, "ASC");
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, sql, -1, &worst, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(best);
        free(steps);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: reading the rollouts: %s", run_dir, sqlite3_errmsg(db));
    }
    size_t prev = (size_t)-1;
    for (size_t k = 0; k < n_pick; k++) {
        size_t i = SAMPLE_INDEX(k);
        if (i == prev) continue;
        prev = i;
        const struct step_info *si = &steps[i];
        report_buf_printf(b, "<section class=\"sample-step\" id=\"step-%lld\"><h3>Step %lld <span class=\"meta\">%lld "
                             "rollout%s \xC2\xB7 mean reward ",
                          (long long)si->step, (long long)si->step, (long long)si->count, si->count == 1 ? "" : "s");
        fmt_num(b, si->scored ? si->mean : NAN);
        report_buf_puts(b, "</span></h3><div class=\"pair\">");
        sqlite3_bind_int64(best, 1, si->step);
        sqlite3_bind_int64(worst, 1, si->step);
        if (sqlite3_step(best) == SQLITE_ROW && sqlite3_step(worst) == SQLITE_ROW) {
            bool same = sqlite3_column_int64(best, 0) == sqlite3_column_int64(worst, 0) &&
                        sqlite3_column_int64(best, 1) == sqlite3_column_int64(worst, 1);
            if (same)
                rollout_card(b, best, si->count == 1 ? "Only rollout" : si->scored ? "Best = worst (all rewards equal)"
                                                                                   : "No reward recorded",
                             "best", o->max_text_bytes);
            else {
                rollout_card(b, best, "Best", "best", o->max_text_bytes);
                rollout_card(b, worst, "Worst", "worst", o->max_text_bytes);
            }
        }
        sqlite3_reset(best);
        sqlite3_reset(worst);
        report_buf_puts(b, "</div></section>\n");
    }
#undef SAMPLE_INDEX
    sqlite3_finalize(best);
    sqlite3_finalize(worst);
    free(steps);
    report_buf_puts(b, "</section>\n");
    return PT_OK;
}

/* ---- the document ------------------------------------------------------------------------ */

static const char CSS[] =
    "*{box-sizing:border-box}"
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1f2328;"
    "background:#f6f7f9;margin:0}"
    "main{max-width:1400px;margin:0 auto;padding:24px 28px 64px}"
    "h1{font-size:26px;margin:0 0 2px}h2{font-size:20px;margin:30px 0 12px;padding-bottom:4px;"
    "border-bottom:1px solid #d0d7de}h3{font-size:15px;margin:0 0 6px}h4{margin:0 0 4px;font-size:15px}"
    "nav{margin:8px 0 0;font-size:14px}nav a{margin-right:14px;color:#0969da;text-decoration:none}"
    ".sub{color:#57606a;margin:0;overflow-wrap:anywhere}"
    "code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:14px;margin-top:16px}"
    ".card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px;min-width:0}"
    ".card p{margin:2px 0}.card.wide{grid-column:span 2}.big{font-size:28px;font-weight:600}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:16px}"
    ".grid.small{grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}"
    "figure.chart{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 12px;min-width:0}"
    "figcaption{font-weight:600;font-size:14px;margin-bottom:4px;overflow-wrap:anywhere}"
    "svg{width:100%;height:auto;display:block}"
    "svg text{font:12px system-ui,'DejaVu Sans',sans-serif;fill:#57606a}"
    ".ytick{text-anchor:end}.xtick{text-anchor:middle}.xlabel{text-anchor:end}.empty{text-anchor:middle}"
    ".gl{stroke:#eaeef2}.tick{stroke:#8c959f}.axis{fill:none;stroke:#8c959f}"
    ".line{fill:none;stroke-width:1.8;stroke-linejoin:round;stroke-linecap:round}"
    ".band{opacity:.18;stroke:none}.hit{fill:transparent}.hit:hover{fill:rgba(31,35,40,.07)}"
    ".legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:13px;margin-top:4px;overflow-wrap:anywhere}"
    ".legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px}"
    ".note{color:#57606a;font-size:13px;margin:6px 0}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"
    "'DejaVu Sans Mono',monospace;background:#f6f8fa;border:1px solid #eaeef2;border-radius:6px;padding:8px;"
    "max-height:340px;overflow:auto;margin:6px 0}"
    ".cut{color:#9a6700}pre.prompt{max-height:150px;color:#3d444d}"
    "table{border-collapse:collapse;font-size:13px}td,th{padding:2px 12px 2px 0;text-align:left;vertical-align:top}"
    "th{color:#57606a;font-weight:600}.kv td:first-child{color:#57606a}"
    ".config td{overflow-wrap:anywhere}"
    "summary{cursor:pointer;color:#57606a;font-size:13px;margin-top:6px}"
    ".steps a{margin-right:12px;color:#0969da;text-decoration:none;font-size:14px}"
    ".sample-step{margin:18px 0}.sample-step h3 .meta{font-weight:400;color:#57606a;margin-left:8px}"
    ".pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:14px}"
    "article.rollout{background:#fff;border:1px solid #d0d7de;border-left:4px solid #59a14f;border-radius:8px;"
    "padding:10px 12px;min-width:0}article.worst{border-left-color:#e15759}"
    ".meta{font-size:13px;color:#57606a;margin:0 0 4px}.label{font-size:13px;color:#57606a;margin-top:6px}";

static pt_status render(report_buf *b, run_store *rs, const char *run_dir, const report_options *o, pt_error *err) {
    sqlite3 *db = run_store_db(rs);
    report_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>posttrain report: ");
    report_html_escape_str(b, run_dir);
    report_buf_printf(b, "</title><style>%s</style></head>\n<body><main>\n", CSS);
    report_buf body = {0};
    int64_t n_steps = 0;
    pt_status st = section_header(&body, db, run_dir, &n_steps, err);
    metrics ms = {0};
    if (st == PT_OK) st = metrics_load(&ms, rs, err);
    if (st == PT_OK) {
        section_charts(&body, &ms, n_steps);
        st = section_samples(&body, db, run_dir, o, err);
    }
    metrics_free(&ms);
    if (st == PT_OK) {
        report_buf_append(b, body.data, body.len);
        report_buf_puts(b, "</main></body></html>\n");
        if (body.oom) b->oom = true;
    }
    report_buf_free(&body);
    return st;
}

static pt_status check_run_dir(const char *run_dir, pt_error *err) {
    struct stat sb;
    if (stat(run_dir, &sb) != 0)
        PT_FAIL(err, PT_ERR_IO, "%s: %s; pass the run directory (the --out of `posttrain grpo` or `posttrain sft`)",
                run_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        PT_FAIL(err, PT_ERR_INVALID,
                "%s: not a directory; pass the run directory that holds " RUN_STORE_FILE
                " (the --out of `posttrain grpo` or `posttrain sft`)",
                run_dir);
    return PT_OK;
}

pt_status report_render(char **html, size_t *len, const char *run_dir, const report_options *o, pt_error *err) {
    *html = NULL;
    *len = 0;
    report_options def;
    if (!o) report_options_default(&def), o = &def;
    PT_TRY(check_run_dir(run_dir, err));
    run_store *rs = NULL;
    pt_status st = run_store_open(&rs, run_dir, RUN_STORE_READ_ONLY, err);
    if (st != PT_OK) {
        error_prefix(err, "reading the run store of %s", run_dir);
        return st;
    }
    report_buf b = {0};
    st = render(&b, rs, run_dir, o, err);
    run_store_close(rs);
    if (st == PT_OK && b.oom) {
        report_buf_free(&b);
        PT_FAIL(err, PT_ERR_NOMEM, "%s: out of memory building the report; lower --samples or --max-text", run_dir);
    }
    if (st != PT_OK) {
        report_buf_free(&b);
        return st;
    }
    *html = b.data;
    *len = b.len;
    return PT_OK;
}

static pt_status write_all(int fd, const char *data, size_t n, const char *path, pt_error *err) {
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) PT_FAIL(err, PT_ERR_IO, "%s: writing the report: %s", path, strerror(w < 0 ? errno : EIO));
        data += w;
        n -= (size_t)w;
    }
    return PT_OK;
}

pt_status report_write(const char *out_path, const char *run_dir, const report_options *o, pt_error *err) {
    struct stat sb;
    if (stat(out_path, &sb) == 0 && S_ISDIR(sb.st_mode))
        PT_FAIL(err, PT_ERR_INVALID, "%s: is a directory; give the report's file name, e.g. -o %s/report.html",
                out_path, out_path);
    char *html = NULL;
    size_t len = 0;
    PT_TRY(report_render(&html, &len, run_dir, o, err));
    size_t pn = strlen(out_path) + 16;
    char *tmp = malloc(pn);
    if (!tmp) free(html);
    PT_CHECK_ALLOC(tmp, err, pn);
    snprintf(tmp, pn, "%s.tmp-XXXXXX", out_path);
    int fd = mkstemp(tmp);
    pt_status st = PT_OK;
    if (fd < 0) {
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__,
                       "%s: cannot write the report there: %s; choose a writable path with -o", out_path,
                       strerror(errno));
    } else {
        st = write_all(fd, html, len, out_path, err);
        if (st == PT_OK && fchmod(fd, 0644) != 0)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: chmod: %s", tmp, strerror(errno));
        if (st == PT_OK && fsync(fd) != 0)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: fsync: %s", tmp, strerror(errno));
        if (close(fd) != 0 && st == PT_OK)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: close: %s", tmp, strerror(errno));
        if (st == PT_OK && rename(tmp, out_path) != 0)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: renaming the finished report into place: %s",
                           out_path, strerror(errno));
        if (st != PT_OK) unlink(tmp);
    }
    free(tmp);
    free(html);
    return st;
}
