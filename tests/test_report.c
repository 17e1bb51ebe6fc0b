/* test_report.c — `posttrain report` (grpo/report.h) on synthetic run stores written through the
 * run store's own writer: a GRPO-like run (every metric grpo/run.c logs, eval/<name> points, a metric
 * no chart knows, NaN values, rollouts with hostile text: "</script><b>", quotes, invalid UTF-8,
 * control bytes, a reward name with markup), an SFT-like run, a short run and an empty one.
 *
 * The output is checked by an independent, deliberately strict well-formedness checker written
 * here: every element opened is closed, in order (HTML void elements excepted, "/>" allowed for
 * SVG), every attribute value is double-quoted, no raw '<' or '>' in text or attribute values,
 * every '&' starts a character reference, no <script>, and the whole file is valid UTF-8. Then:
 * one <svg> chart per metric family that was logged and none for families that were not; NaN
 * values are gaps (and never coordinates); hostile text appears only escaped; the sample steps
 * and their best/worst rollouts are the ones the selection rule names; errors name the path.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/utf8.h"
#include "datasets/run_store.h"
#include "grpo/report.h"

#define OKE(expr)                                                                                  \
    do {                                                                                           \
        pt_error e_ = {0};                                                                         \
        pt_status s_ = (expr);                                                                     \
        cr_assert_eq(s_, PT_OK, "%s: %s", #expr, e_.msg);                                          \
    } while (0)

#define HOSTILE "</script><b>bold</b> & \"dq\" 'sq' \xff\xfe cut\xc3"

/* ---- a strict well-formedness checker ---------------------------------------------------- */

static const char *const VOID_ELEMENTS[] = {"area", "base", "br", "col", "embed", "hr", "img",
                                             "input", "link", "meta", "source", "track", "wbr"};

static bool is_void(const char *name) {
    for (size_t i = 0; i < sizeof VOID_ELEMENTS / sizeof VOID_ELEMENTS[0]; i++)
        if (strcmp(name, VOID_ELEMENTS[i]) == 0) return true;
    return false;
}

/* A character reference at s: &name; &#digits; &#xhex; — returns its length or 0. */
static size_t entity_len(const char *s, size_t n) {
    size_t i = 1;
    if (i < n && s[i] == '#') {
        i++;
        bool hex = i < n && (s[i] == 'x' || s[i] == 'X');
        if (hex) i++;
        size_t d = i;
        while (i < n && (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) i++;
        if (i == d) return 0;
    } else {
        size_t d = i;
        while (i < n && isalnum((unsigned char)s[i])) i++;
        if (i == d) return 0;
    }
    return i < n && s[i] == ';' ? i + 1 : 0;
}

static size_t read_name(char *out, size_t cap, const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == ':') && i + 1 < cap) {
        out[i] = (char)tolower((unsigned char)s[i]);
        i++;
    }
    out[i] = 0;
    return i;
}

/* NULL when h[0..n) is well formed, else a message (static buffer). */
static const char *html_problem(const char *h, size_t n) {
    static char why[512];
    char stack[256][32];
    int depth = 0;
    bool saw_html = false;
    if (utf8_valid_prefix(h, n) != n) {
        snprintf(why, sizeof why, "invalid UTF-8 at byte %zu", utf8_valid_prefix(h, n));
        return why;
    }
    size_t i = 0;
    while (i < n) {
        char c = h[i];
        if (c == '&') {
            size_t k = entity_len(h + i, n - i);
            if (!k) return snprintf(why, sizeof why, "bare '&' at %zu: %.40s", i, h + i), why;
            i += k;
        } else if (c == '>') {
            return snprintf(why, sizeof why, "raw '>' in text at %zu: %.40s", i > 20 ? i - 20 : 0, h + (i > 20 ? i - 20 : 0)), why;
        } else if (c != '<') {
            i++;
        } else if (strncmp(h + i, "<!--", 4) == 0) {
            const char *e = strstr(h + i, "-->");
            if (!e) return "unterminated comment";
            i = (size_t)(e - h) + 3;
        } else if (strncmp(h + i, "<!DOCTYPE html>", 15) == 0) {
            if (i != 0) return "DOCTYPE not at the start";
            i += 15;
        } else if (h[i + 1] == '/') {
            char name[32];
            size_t k = read_name(name, sizeof name, h + i + 2, n - i - 2);
            if (!k || h[i + 2 + k] != '>')
                return snprintf(why, sizeof why, "malformed end tag at %zu: %.40s", i, h + i), why;
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0)
                return snprintf(why, sizeof why, "</%s> at %zu closes <%s>", name, i, depth ? stack[depth - 1] : "(nothing)"),
                       why;
            depth--;
            i += 3 + k;
        } else if (isalpha((unsigned char)h[i + 1])) {
            char name[32];
            size_t k = read_name(name, sizeof name, h + i + 1, n - i - 1);
            size_t at = i;
            i += 1 + k;
            if (strcmp(name, "script") == 0) return "a <script> element";
            bool self_close = false;
            for (;;) {
                while (i < n && h[i] == ' ') i++;
                if (i < n && h[i] == '>') {
                    i++;
                    break;
                }
                if (i + 1 < n && h[i] == '/' && h[i + 1] == '>') {
                    self_close = true;
                    i += 2;
                    break;
                }
                char attr[32];
                size_t a = read_name(attr, sizeof attr, h + i, n - i);
                if (!a) return snprintf(why, sizeof why, "bad attribute in <%s> at %zu: %.40s", name, i, h + i), why;
                i += a;
                if (i + 1 >= n || h[i] != '=' || h[i + 1] != '"')
                    return snprintf(why, sizeof why, "attribute %s of <%s> at %zu is not \"quoted\"", attr, name, at), why;
                i += 2;
                while (i < n && h[i] != '"') {
                    if (h[i] == '<' || h[i] == '>')
                        return snprintf(why, sizeof why, "raw '%c' in attribute %s at %zu", h[i], attr, i), why;
                    if (h[i] == '&') {
                        size_t e = entity_len(h + i, n - i);
                        if (!e) return snprintf(why, sizeof why, "bare '&' in attribute %s at %zu", attr, i), why;
                        i += e;
                    } else {
                        i++;
                    }
                }
                if (i >= n) return "unterminated attribute value";
                i++;
            }
            if (strcmp(name, "html") == 0) saw_html = true;
            if (strcmp(name, "style") == 0) { /* raw text up to </style>, which must not hold '<' */
                const char *e = strstr(h + i, "</style>");
                if (!e) return "unterminated <style>";
                if (memchr(h + i, '<', (size_t)(e - h) - i)) return "'<' inside <style>";
                i = (size_t)(e - h) + 8;
                continue;
            }
            if (self_close || is_void(name)) continue;
            if (depth == 256) return "nesting deeper than 256";
            snprintf(stack[depth++], sizeof stack[0], "%s", name);
        } else {
            return snprintf(why, sizeof why, "raw '<' in text at %zu: %.40s", i, h + i), why;
        }
    }
    if (depth) return snprintf(why, sizeof why, "<%s> (and %d more) never closed", stack[depth - 1], depth - 1), why;
    if (!saw_html) return "no <html> element";
    return NULL;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static size_t count(const char *h, const char *needle) {
    size_t c = 0;
    for (const char *p = strstr(h, needle); p; p = strstr(p + 1, needle)) c++;
    return c;
}

/* The text of the <figure> with id "chart-<id>" (malloc'd), or NULL. */
static char *figure(const char *h, const char *id) {
    char key[128];
    snprintf(key, sizeof key, "id=\"chart-%s\"", id);
    const char *a = strstr(h, key);
    if (!a) return NULL;
    const char *e = strstr(a, "</figure>");
    cr_assert_not_null(e);
    return strndup(a, (size_t)(e - a));
}

/* Every d="..." and points="..." holds only path/coordinate characters: no nan, no inf. */
static void check_coordinates(const char *h) {
    const char *attrs[] = {" d=\"", " points=\"", " cx=\"", " cy=\"", " x=\"", " y=\""};
    for (size_t a = 0; a < sizeof attrs / sizeof attrs[0]; a++)
        for (const char *p = strstr(h, attrs[a]); p; p = strstr(p + 1, attrs[a])) {
            const char *v = p + strlen(attrs[a]);
            for (; *v != '"'; v++)
                cr_assert(strchr("0123456789.-+ ,MLVHZ", *v), "non-coordinate '%c' in %.60s", *v, p);
        }
}

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *d) {
    snprintf(d->path, sizeof d->path, "/tmp/pt_report_XXXXXX");
    cr_assert_not_null(mkdtemp(d->path));
}

static void tmpdir_remove(tmpdir *d) {
    DIR *dir = opendir(d->path);
    if (!dir) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", d->path, e->d_name);
            unlink(p);
        }
    closedir(dir);
    rmdir(d->path);
}

static void log_metric(run_store *rs, const char *name, double v) { OKE(run_store_log_metric(rs, name, v, &e_)); }

static void log_rollout(run_store *rs, int p, int k, const char *completion, double reward, double fmt_score) {
    const char *names[] = {"format", "acc<ur>&\"acy"};
    double scores[] = {fmt_score, isnan(reward) ? NAN : reward};
    run_rollout r = {.prompt_index = p, .sample_index = k, .prompt = "<prompt & \"x\">\x01 " HOSTILE,
                     .completion = completion, .reward_names = names, .reward_scores = scores, .n_rewards = 2,
                     .reward = reward, .advantage = isnan(reward) || reward == -1.0 ? NAN : reward / 2, .length = 10 + k,
                     .finish_reason = k % 2 ? "length" : "stop"};
    OKE(run_store_log_rollout(rs, &r, &e_));
}

/* A GRPO-like run of n_steps steps 0..n_steps-1 (the names grpo/run.c logs). Per step four
 * rollouts: BEST-s (reward 1+s), WORST-s (-1-s), MID-s (0) and NANR-s (NaN reward); advantage
 * reward/2, none for WORST-0 (a group dynamic sampling dropped). */
static void make_grpo_store(const char *dir, int n_steps) {
    run_store *rs = NULL;
    OKE(run_store_open(&rs, dir, 0, &e_));
    OKE(run_store_log_run(rs, "grpo", "{\"model\": \"" HOSTILE "\", \"learning_rate\": 1e-06, \"num_generations\": 4}",
                          0x1234, &e_));
    OKE(run_store_log_run(rs, "grpo", "{\"model\": \"m\", \"learning_rate\": 1e-06, \"num_generations\": 4}", 0x1234,
                          &e_));
    const char *plain[] = {"frac_reward_zero_std", "loss", "kl", "entropy", "clip_ratio/low_mean",
                           "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/mean_length",
                           "completions/min_length", "completions/max_length", "completions/clipped_ratio",
                           "grad_norm", "learning_rate", "step_time", "step_time/generation", "step_time/scoring",
                           "step_time/update", "num_tokens", "custom/thing", "x<y>&\"z'"};
    for (int s = 0; s < n_steps; s++) {
        OKE(run_store_begin_step(rs, s, &e_));
        log_metric(rs, "reward", s == 7 ? NAN : 0.1 + 0.02 * s);
        log_metric(rs, "reward_std", 0.2);
        log_metric(rs, "rewards/format/mean", 0.5 + 0.01 * s);
        log_metric(rs, "rewards/format/std", 0.1);
        log_metric(rs, "rewards/acc<ur>&\"acy/mean", s == 3 ? INFINITY : 0.2 + 0.01 * s);
        log_metric(rs, "rewards/acc<ur>&\"acy/std", NAN);
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) log_metric(rs, plain[i], 0.001 * (double)(s * (int)i));
        if (s % 10 == 0 || s == n_steps - 1) log_metric(rs, "eval/accuracy", 0.3 + 0.01 * s);
        char text[256];
        snprintf(text, sizeof text, "BEST-%d " HOSTILE, s);
        log_rollout(rs, 0, 0, text, 1.0 + s, 1.0);
        snprintf(text, sizeof text, "WORST-%d", s);
        log_rollout(rs, 0, 1, text, -1.0 - s, NAN);
        snprintf(text, sizeof text, "MID-%d", s);
        log_rollout(rs, 1, 0, text, 0.0, 0.0);
        snprintf(text, sizeof text, "NANR-%d", s);
        log_rollout(rs, 1, 1, text, NAN, NAN);
        OKE(run_store_commit_step(rs, &e_));
    }
    OKE(run_store_begin_step(rs, 0, &e_));
    OKE(run_store_log_checkpoint(rs, "checkpoints/step-0", "00", &e_));
    OKE(run_store_commit_step(rs, &e_));
    run_store_close(rs);
}

/* An SFT-like run (the names sft/sft_run.c logs): steps 1..20, eval_loss every 5 steps. */
static void make_sft_store(const char *dir) {
    run_store *rs = NULL;
    OKE(run_store_open(&rs, dir, 0, &e_));
    OKE(run_store_log_run(rs, "sft", "{\"model\": \"tiny\", \"learning_rate\": 0.0003}", 0x99, &e_));
    for (int s = 1; s <= 20; s++) {
        OKE(run_store_begin_step(rs, s, &e_));
        log_metric(rs, "loss", 3.0 / s);
        log_metric(rs, "learning_rate", 3e-4);
        log_metric(rs, "grad_norm", s == 4 ? NAN : 1.0 / s);
        log_metric(rs, "tokens_per_second", 1000.0 + s);
        log_metric(rs, "step_time", 0.5);
        log_metric(rs, "epoch", s / 20.0);
        if (s % 5 == 0) log_metric(rs, "eval_loss", 3.2 / s);
        OKE(run_store_commit_step(rs, &e_));
    }
    run_store_close(rs);
}

static char *render(const char *dir, const report_options *o, size_t *len) {
    char *html = NULL;
    OKE(report_render(&html, len, dir, o, &e_));
    cr_assert_eq(strlen(html), *len, "report holds a NUL byte or a wrong length");
    const char *why = html_problem(html, *len);
    cr_assert_null(why, "report is not well formed: %s", why);
    check_coordinates(html);
    cr_assert_null(strstr(html, "<script"));
    cr_assert_null(strstr(html, "<link"));
    cr_assert_null(strstr(html, "<img"));
    cr_assert_null(strstr(html, "url("));
    cr_assert_null(strstr(html, "@import"));
    cr_assert_eq(count(html, "http"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""),
                 "a link to somewhere other than the SVG namespace");
    cr_assert_eq(count(html, "<svg"), count(html, "<figure class=\"chart"), "an <svg> outside a chart figure");
    return html;
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(report, checker_rejects_broken_html) {
    const char *bad[] = {"<html><b>x</i></html>", "<html><a href=x>y</a></html>", "<html>a < b</html>",
                         "<html><p>", "<html>a & b</html>", "<html><a title=\"<\">y</a></html>",
                         "<html><script></script></html>", "<html>a > b</html>", "<html>\xff</html>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not_null(html_problem(bad[i], strlen(bad[i])), "checker accepted %s", bad[i]);
    const char *good = "<!DOCTYPE html>\n<html><meta charset=\"utf-8\"><style>a{b:c}</style><p class=\"x\">a &amp; "
                       "&#39;<svg><path d=\"M1 2\"/></svg></p></html>";
    cr_assert_null(html_problem(good, strlen(good)), "%s", html_problem(good, strlen(good)));
}

Test(report, escape) {
    report_buf b = {0};
    const char in[] = "a<b>&\"'\xff\xc3(\x01z\x7f \xc0\xaf \xed\xa0\x80 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\t\n";
    report_html_escape(&b, in, sizeof in - 1);
    const char want[] = "a&lt;b&gt;&amp;&quot;&#39;\xEF\xBF\xBD\xEF\xBF\xBD(\xE2\x90\x81z\xE2\x90\xA1 "
                        "\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\t\n";
    cr_assert_not(b.oom);
    cr_assert_eq(b.len, sizeof want - 1, "got '%s'", b.data);
    cr_assert_eq(memcmp(b.data, want, b.len), 0, "got '%s'", b.data);
    /* a NUL byte inside the text, and a sequence cut by the end of the input */
    b.len = 0;
    report_html_escape(&b, "x\0y\xe2\x82", 5);
    cr_assert_str_eq(b.data, "x\xE2\x90\x80y\xEF\xBF\xBD\xEF\xBF\xBD");
    report_buf_free(&b);
}

Test(report, grpo_run) {
    tmpdir d;
    tmpdir_make(&d);
    make_grpo_store(d.path, 30);
    size_t len;
    char *h = render(d.path, NULL, &len);

    /* one chart per logged family, none for the families that were not logged */
    const char *present[] = {"reward", "rewards", "frac-zero-std", "accuracy", "kl", "entropy", "clip-ratio",
                             "completion-length", "clipped-ratio", "loss", "learning-rate", "grad-norm",
                             "step-time", "other-custom-thing", "other-num_tokens", "other-x-y---z-"};
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++) {
        char *f = figure(h, present[i]);
        cr_assert_not_null(f, "no chart-%s", present[i]);
        cr_assert_eq(count(f, "<svg"), 1, "chart-%s", present[i]);
        free(f);
    }
    cr_assert_eq(count(h, "<svg"), sizeof present / sizeof present[0], "an unexpected chart");
    const char *absent[] = {"eval-reward", "throughput"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        cr_assert_null(figure(h, absent[i]), "chart-%s drawn without data", absent[i]);
        char key[64];
        snprintf(key, sizeof key, "data-chart=\"%s\"", absent[i]);
        cr_assert_not_null(strstr(h, key), "the note does not name %s", absent[i]);
    }
    /* bands are not charts of their own; the per-reward chart has both rewards and a legend */
    cr_assert_null(figure(h, "other-reward_std"));
    cr_assert_null(figure(h, "other-rewards-format-std"));
    char *f = figure(h, "rewards");
    cr_assert_not_null(strstr(f, "data-series=\"rewards/format/mean\""));
    cr_assert_not_null(strstr(f, "data-series=\"rewards/acc&lt;ur&gt;&amp;&quot;acy/mean\""));
    cr_assert_not_null(strstr(f, "class=\"legend\""));
    cr_assert_eq(count(f, "<polygon class=\"band\""), 1, "the all-NaN std must draw no band");
    free(f);
    /* NaN at step 7 splits the reward line in two; its band is drawn */
    f = figure(h, "reward");
    const char *path = strstr(f, "data-series=\"reward\" d=\"");
    cr_assert_not_null(path);
    const char *end = strchr(path + 24, '"');
    size_t moves = 0;
    for (const char *p = path + 24; p < end; p++) moves += *p == 'M';
    cr_assert_eq(moves, 2, "NaN did not make a gap");
    cr_assert_not_null(strstr(f, "<polygon class=\"band\""));
    cr_assert_not_null(strstr(f, "NaN/Inf value shown as gap"));
    cr_assert_not_null(strstr(f, "<title>step 7\nreward: NaN \xC2\xB1 0.2</title>"));
    free(f);
    f = figure(h, "step-time");
    cr_assert_eq(count(f, "data-series=\"step_time"), 4);
    free(f);

    /* hostile text only escaped */
    cr_assert_null(strstr(h, "</script>"));
    cr_assert_null(strstr(h, "<b>bold"));
    cr_assert_null(strstr(h, "acc<ur>"));
    cr_assert_not_null(strstr(h, "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; &quot;dq&quot; &#39;sq&#39; "
                                 "\xEF\xBF\xBD\xEF\xBF\xBD cut\xEF\xBF\xBD"));
    cr_assert_not_null(strstr(h, "&lt;prompt &amp; &quot;x&quot;&gt;\xE2\x90\x81"));
    cr_assert_not_null(strstr(h, "<td>acc&lt;ur&gt;&amp;&quot;acy</td>"));

    /* 30 steps with rollouts: 10 evenly spaced (round(k * 29 / 10)) plus the last */
    const int want[] = {0, 3, 6, 9, 12, 15, 17, 20, 23, 26, 29};
    cr_assert_eq(count(h, "class=\"sample-step\""), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "id=\"step-%d\"", want[i]);
        cr_assert_not_null(strstr(h, key), "no sample step %d", want[i]);
        snprintf(key, sizeof key, "BEST-%d ", want[i]);
        cr_assert_not_null(strstr(h, key), "no best rollout for step %d", want[i]);
        snprintf(key, sizeof key, "WORST-%d<", want[i]);
        cr_assert_not_null(strstr(h, key), "no worst rollout for step %d", want[i]);
    }
    cr_assert_null(strstr(h, "id=\"step-1\""));
    cr_assert_eq(count(h, "href=\"#step-"), sizeof want / sizeof want[0]);
    cr_assert_null(strstr(h, "MID-"), "a middle rollout shown as best or worst");
    cr_assert_null(strstr(h, "NANR-"), "a rollout without reward shown as best or worst");
    cr_assert_not_null(strstr(h, "reward <b>30</b> \xC2\xB7 advantage <b>+15</b> \xC2\xB7 10 tokens \xC2\xB7 finish <b>stop</b>"));
    cr_assert_not_null(strstr(h, "reward <b>-30</b> \xC2\xB7 advantage <b>-15</b> \xC2\xB7 11 tokens \xC2\xB7 finish <b>length</b>"));
    cr_assert_not_null(strstr(h, "reward <b>-1</b> \xC2\xB7 advantage <b>none</b> (its group was not trained on) "
                                 "\xC2\xB7 11 tokens"));
    /* header: the command, both starts, the config summary (escaped) */
    cr_assert_not_null(strstr(h, "<h1>posttrain report: grpo run</h1>"));
    cr_assert_eq(count(h, "</td><td>grpo</td>"), 2);
    cr_assert_not_null(strstr(h, "<tr><td>num_generations</td><td>4</td></tr>"));
    cr_assert_not_null(strstr(h, "30</p><p>steps 0 \xE2\x80\x93 29 committed"));
    cr_assert_not_null(strstr(h, "checkpoints/step-0"));
    free(h);
    tmpdir_remove(&d);
}

Test(report, sft_run) {
    tmpdir d;
    tmpdir_make(&d);
    make_sft_store(d.path);
    size_t len;
    char *h = render(d.path, NULL, &len);
    const char *present[] = {"loss", "learning-rate", "grad-norm", "step-time", "throughput", "other-epoch"};
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++) {
        char *f = figure(h, present[i]);
        cr_assert_not_null(f, "no chart-%s", present[i]);
        free(f);
    }
    cr_assert_eq(count(h, "<svg"), sizeof present / sizeof present[0]);
    const char *absent[] = {"reward", "rewards", "kl", "entropy", "clip-ratio", "accuracy", "completion-length"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_assert_null(figure(h, absent[i]), "chart-%s drawn without data", absent[i]);
    char *f = figure(h, "loss");
    cr_assert_not_null(strstr(f, "data-series=\"loss\""));
    cr_assert_not_null(strstr(f, "data-series=\"eval_loss\""));
    free(f);
    cr_assert_not_null(strstr(h, "<h1>posttrain report: sft run</h1>"));
    cr_assert_not_null(strstr(h, "No rollouts recorded"));
    free(h);
    tmpdir_remove(&d);
}

Test(report, few_steps_show_all_and_empty_store) {
    tmpdir d;
    tmpdir_make(&d);
    make_grpo_store(d.path, 5);
    size_t len;
    char *h = render(d.path, NULL, &len);
    cr_assert_eq(count(h, "class=\"sample-step\""), 5);
    free(h);
    tmpdir_remove(&d);

    tmpdir_make(&d);
    run_store *rs = NULL;
    OKE(run_store_open(&rs, d.path, 0, &e_));
    run_store_close(rs);
    h = render(d.path, NULL, &len);
    cr_assert_eq(count(h, "<svg"), 0);
    cr_assert_not_null(strstr(h, "No metrics logged yet"));
    cr_assert_not_null(strstr(h, "No rollouts recorded"));
    free(h);
    tmpdir_remove(&d);
}

Test(report, write_atomically_and_errors) {
    tmpdir d;
    tmpdir_make(&d);
    make_sft_store(d.path);
    char out[256], p[256];
    snprintf(out, sizeof out, "%s/report.html", d.path);
    OKE(report_write(out, d.path, NULL, &e_));
    struct stat sb;
    cr_assert_eq(stat(out, &sb), 0);
    cr_assert_gt(sb.st_size, 1000);
    DIR *dir = opendir(d.path);
    struct dirent *e;
    while ((e = readdir(dir))) cr_assert_null(strstr(e->d_name, ".tmp-"), "temp file left: %s", e->d_name);
    closedir(dir);

    snprintf(p, sizeof p, "%s/other.html", d.path);
    pt_error err = {0};
    /* a missing run directory, a file, a directory without run.db, a file that is not a store */
    cr_assert_neq(report_write(out, "/nonexistent/run", NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "/nonexistent/run") && strstr(err.msg, "run directory"), "%s", err.msg);
    cr_assert_neq(report_write(p, out, NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, "not a directory"), "%s", err.msg);
    tmpdir d2;
    tmpdir_make(&d2);
    err = (pt_error){0};
    cr_assert_neq(report_write(out, d2.path, NULL, &err), PT_OK);
    cr_assert(strstr(err.msg, d2.path) && strstr(err.msg, "run.db"), "%s", err.msg);
    snprintf(p, sizeof p, "%s/run.db", d2.path);
    FILE *g = fopen(p, "wb");
    cr_assert_not_null(g);
    for (int i = 0; i < 4096; i++) fputc("garbage!"[i % 8], g);
    fclose(g);
    err = (pt_error){0};
    cr_assert_eq(report_write(out, d2.path, NULL, &err), PT_ERR_FORMAT, "%s", err.msg);
    cr_assert(strstr(err.msg, p), "%s", err.msg);
    tmpdir_remove(&d2);
    /* an output that cannot be written; the report written before is untouched */
    err = (pt_error){0};
    cr_assert_eq(report_write("/nonexistent-dir/r.html", d.path, NULL, &err), PT_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent-dir/r.html") && strstr(err.msg, "-o"), "%s", err.msg);
    err = (pt_error){0};
    cr_assert_eq(report_write(d.path, d.path, NULL, &err), PT_ERR_INVALID);
    cr_assert(strstr(err.msg, "is a directory"), "%s", err.msg);
    struct stat sb2;
    cr_assert_eq(stat(out, &sb2), 0);
    cr_assert_eq(sb2.st_size, sb.st_size);
    tmpdir_remove(&d);
}
