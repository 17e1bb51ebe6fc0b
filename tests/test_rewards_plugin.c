/* test_rewards_plugin.c — reward plugins: C shared objects (dlopen, ABI checks, per-item statuses)
 * and subprocesses speaking JSON lines (kept alive, restarted after death, killed on timeout,
 * protocol violations masked with a reason, never a silent 0).
 *
 * The .so files are built from tests/plugins/<name>.c into <build>/tests/plugins/ next to the test
 * binary; they are found through /proc/self/exe, and a test that needs one that is not there is
 * skipped with a line saying so. The subprocess plugin is tests/fixtures/rewards/scores.sh, run
 * with /bin/sh (no Python needed). `posttrain reward-host` is <build>/tests/reward-host, the same
 * code as the CLI's, found the same way. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/timer.h"
#include "rewards/reward.h"
#include "rewards/reward_host.h"
#include "tests/util/check.h"

/* <dir of the test binary>/<rel>, or NULL when that file is not there (not built). */
static const char *beside_test_binary(char *buf, size_t len, const char *rel) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    snprintf(buf, len, "%s/%s", dirname(exe), rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

/* <dir of the test binary>/plugins/<name>.so, or NULL when it was not built. */
static const char *plugin_path(char *buf, size_t len, const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "plugins/%s.so", name);
    return beside_test_binary(buf, len, rel);
}

#define NEED_PLUGIN(buf, name)                                                                     \
    do {                                                                                           \
        if (!plugin_path(buf, sizeof buf, name))                                                   \
            cr_skip_test("%s not built (the Makefile builds tests/plugins/NAME.c into <build>/tests/plugins/)", \
                         buf);                                                                     \
    } while (0)

static pt_status create(reward **r, const char *fmt, const char *arg, pt_error *err) {
    char cfg[PATH_MAX + 512];
    snprintf(cfg, sizeof cfg, fmt, arg);
    return reward_create_json(r, cfg, NULL, err);
}

/* ---- C shared objects -------------------------------------------------------------------- */

Test(rewards_plugin, shared_object_scores_and_statuses) {
    char so[PATH_MAX];
    NEED_PLUGIN(so, "reward_plugin_keyword");
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(create(&r, "{\"type\": \"plugin\", \"name\": \"kw\", \"path\": \"%s\", \"keyword\": \"because\"}", so,
                        &err),
                 PT_OK, "%s", err.msg);
    reward_item items[6] = {
        {"q", "yes, because 2 > 1", "{}", -1}, {"q", "no reason", "{}", -1}, {"q", "MASK", "{}", -1},
        {"q", "FAIL", "{}", -1},             {"q", "NAN", "{}", -1},        {"q", "NOSTATUS", "{}", -1},
    };
    reward_result res[6];
    cr_assert_eq(reward_score(r, res, items, 6, &err), PT_OK);
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0);
    cr_expect(res[1].status == REWARD_OK && res[1].score == 0.0);
    cr_expect_eq(res[2].status, REWARD_MASKED);
    cr_expect_eq(res[3].status, REWARD_ERROR);
    cr_expect_eq(res[4].status, REWARD_ERROR, "a NaN score is an error, never used");
    cr_expect(strstr(res[4].reason, "non-finite") != NULL, "%s", res[4].reason);
    cr_expect_eq(res[5].status, REWARD_ERROR, "an unwritten status is an error");
    /* state persists across calls; a batch failure errors every item with the plugin's message */
    reward_item calls = {"q", "CALLS", "{}", -1};
    cr_assert_eq(reward_score(r, res, &calls, 1, &err), PT_OK);
    cr_expect_eq(res[0].score, 2.0);
    reward_item fail[2] = {{"q", "fine", "{}", -1}, {"q", "BATCHFAIL", "{}", -1}};
    cr_assert_eq(reward_score(r, res, fail, 2, &err), PT_OK);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(res[i].status, REWARD_ERROR);
        cr_expect(strstr(res[i].reason, "batch failure requested") != NULL, "%s", res[i].reason);
    }
    reward_free(r);
}

Test(rewards_plugin, shared_object_load_errors_name_the_file) {
    char so[PATH_MAX];
    reward *r = NULL;
    pt_error err = {0};
    cr_expect_eq(create(&r, "{\"type\": \"plugin\", \"path\": \"%s\"}", "/nonexistent/dir/x.so", &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "cannot load plugin /nonexistent/dir/x.so") != NULL, "%s", err.msg);
    cr_expect_eq(create(&r, "{\"type\": \"plugin\"%s}", "", &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "missing \"path\"") != NULL, "%s", err.msg);

    NEED_PLUGIN(so, "reward_plugin_bad_abi");
    cr_expect_eq(create(&r, "{\"type\": \"plugin\", \"path\": \"%s\"}", so, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, so) != NULL && strstr(err.msg, "ABI version 99") != NULL &&
                  strstr(err.msg, "speaks version 1") != NULL,
              "%s", err.msg);
    NEED_PLUGIN(so, "reward_plugin_no_symbol");
    cr_expect_eq(create(&r, "{\"type\": \"plugin\", \"path\": \"%s\"}", so, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, so) != NULL && strstr(err.msg, "does not export 'posttrain_reward_v1'") != NULL, "%s",
              err.msg);
    NEED_PLUGIN(so, "reward_plugin_keyword");
    cr_expect_eq(create(&r, "{\"type\": \"plugin\", \"path\": \"%s\"}", so, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "refused its config: config needs \"keyword\"") != NULL, "%s", err.msg);
    cr_expect_null(r);
}

/* ---- subprocesses ------------------------------------------------------------------------ */

typedef struct script {
    reward *r;
    char pidfile[128];
} script;

static void script_start(script *s, double timeout) {
    char sh[PATH_MAX], cfg[PATH_MAX + 1024];
    fixture_path(sh, sizeof sh, "rewards/scores.sh");
    snprintf(s->pidfile, sizeof s->pidfile, "/tmp/pt_reward_test_%d_%ld.pid", (int)getpid(), (long)(timer_now() * 1e6));
    snprintf(cfg, sizeof cfg,
             "{\"type\": \"subprocess\", \"name\": \"sh\", \"command\": [\"/bin/sh\", \"%s\", \"%s\"], "
             "\"timeout\": %g}",
             sh, s->pidfile, timeout);
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&s->r, cfg, NULL, &err), PT_OK, "%s", err.msg);
}

static long script_pid(const script *s) {
    for (int k = 0; k < 200; k++) { /* the script writes it right after it starts */
        FILE *f = fopen(s->pidfile, "r");
        long pid = 0;
        if (f) {
            int ok = fscanf(f, "%ld", &pid);
            fclose(f);
            if (ok == 1 && pid > 0) return pid;
        }
        usleep(5000);
    }
    return -1;
}

static void script_stop(script *s) {
    reward_free(s->r);
    unlink(s->pidfile);
}

static void score1(reward *r, reward_result *res, const char *completion) {
    reward_item it = {"q", completion, "{\"answer\": 1}", 3};
    pt_error err = {0};
    cr_assert_eq(reward_score(r, res, &it, 1, &err), PT_OK, "%s", err.msg);
}

/* Whether any process of the group is still running (zombies waiting for a reaper do not count:
 * who reaps orphans depends on the machine). Waits up to 1 s for the group to go. */
static bool group_alive(long pgid) {
    for (int k = 0; k < 100; k++) {
        bool alive = false;
        DIR *d = opendir("/proc");
        for (struct dirent *e; d && !alive && (e = readdir(d));) {
            char path[300], buf[512];
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            /* pid (comm) state ppid pgrp ...; comm may contain spaces, so start after the last ')' */
            char *p = strrchr(buf, ')');
            char state;
            long ppid, pgrp;
            if (p && sscanf(p + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z')
                alive = true;
        }
        if (d) closedir(d);
        if (!alive) return false;
        usleep(10000);
    }
    return true;
}

Test(rewards_subprocess, scores_masks_and_stays_alive) {
    script s;
    script_start(&s, 10);
    reward_item items[4] = {{"q", "GOOD", "{}", -1}, {"q", "bad", "not json", -1}, {"q", "SKIP", "{}", 5},
                            {"q", "COUNT", "{}", -1}};
    reward_result res[4];
    pt_error err = {0};
    cr_assert_eq(reward_score(s.r, res, items, 4, &err), PT_OK);
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "%d %s", res[0].status, res[0].reason);
    cr_expect(res[1].status == REWARD_OK && res[1].score == 0.0);
    cr_expect_eq(res[2].status, REWARD_MASKED);
    cr_expect_str_eq(res[2].reason, "skipped");
    cr_expect(res[3].status == REWARD_OK && res[3].score == 1.0);
    long pid = script_pid(&s);
    score1(s.r, res, "COUNT");
    cr_expect_eq(res[0].score, 2.0, "the same process serves the second call");
    cr_expect_eq(script_pid(&s), pid);
    script_stop(&s);
    usleep(20000);
    cr_expect(!group_alive(pid), "freeing the reward ends the process");
}

Test(rewards_subprocess, restarted_after_it_dies) {
    script s;
    script_start(&s, 10);
    reward_result res[2];
    score1(s.r, res, "COUNT");
    long pid1 = script_pid(&s);
    /* dies during the call: the item is an error naming the exit status */
    score1(s.r, res, "DIE");
    cr_expect_eq(res[0].status, REWARD_ERROR);
    cr_expect(strstr(res[0].reason, "exited with status 3") != NULL, "%s", res[0].reason);
    score1(s.r, res, "COUNT");
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "a fresh process (count 1): %d %g %s", res[0].status,
              res[0].score, res[0].reason);
    long pid2 = script_pid(&s);
    cr_expect_neq(pid1, pid2);
    /* dies between calls: restarted before the next request, nothing lost */
    score1(s.r, res, "EXITAFTER");
    cr_expect(res[0].status == REWARD_OK);
    score1(s.r, res, "COUNT"); /* at once: the exit may or may not have happened yet */
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "%d %g %s", res[0].status, res[0].score,
              res[0].reason);
    score1(s.r, res, "EXITAFTER");
    usleep(50000);
    score1(s.r, res, "COUNT"); /* and after it surely has */
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "%d %g %s", res[0].status, res[0].score,
              res[0].reason);
    script_stop(&s);
}

Test(rewards_subprocess, timeout_kills_the_group_and_restarts) {
    script s;
    script_start(&s, 1.0); /* long enough for a fresh sh + awk on a loaded machine */
    reward_result res[2];
    long pid = script_pid(&s);
    double t0 = timer_now();
    reward_item two[2] = {{"q", "HANG", "{}", -1}, {"q", "GOOD", "{}", -1}};
    pt_error err = {0};
    cr_assert_eq(reward_score(s.r, res, two, 2, &err), PT_OK);
    double dt = timer_now() - t0;
    cr_expect(dt >= 0.99 && dt < 3.0, "returned after %.3f s", dt);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(res[i].status, REWARD_ERROR);
        cr_expect_str_eq(res[i].reason, "timeout after 1 s");
    }
    cr_expect(!group_alive(pid), "the script and its sleep are gone");
    score1(s.r, res, "COUNT");
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "%d %s", res[0].status, res[0].reason);
    script_stop(&s);
}

Test(rewards_subprocess, protocol_violations_are_errors_with_reasons) {
    script s;
    script_start(&s, 10);
    reward_result res[3];
    pt_error err = {0};
    score1(s.r, res, "COUNT");
    /* a non-number and an infinite score: those items only; the process is kept */
    reward_item mixed[3] = {{"q", "GOOD", "{}", -1}, {"q", "STRING", "{}", -1}, {"q", "HUGE", "{}", -1}};
    cr_assert_eq(reward_score(s.r, res, mixed, 3, &err), PT_OK);
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0);
    cr_expect_eq(res[1].status, REWARD_ERROR);
    cr_expect(strstr(res[1].reason, "\"high\" is not a number or null") != NULL, "%s", res[1].reason);
    cr_expect_eq(res[2].status, REWARD_ERROR);
    score1(s.r, res, "COUNT");
    cr_expect_eq(res[0].score, 3.0, "still the first process");
    /* wrong count: every item, then a fresh process */
    reward_item two[2] = {{"q", "GOOD", "{}", -1}, {"q", "SHORT", "{}", -1}};
    cr_assert_eq(reward_score(s.r, res, two, 2, &err), PT_OK);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(res[i].status, REWARD_ERROR);
        cr_expect_str_eq(res[i].reason, "reply has 1 scores for 2 items");
    }
    score1(s.r, res, "COUNT");
    cr_expect_eq(res[0].score, 1.0, "restarted after a wrong count");
    /* not JSON */
    score1(s.r, res, "GARBAGE");
    cr_expect_eq(res[0].status, REWARD_ERROR);
    cr_expect(strstr(res[0].reason, "reply is not {\"scores\": [...]}: 'this is not json'") != NULL, "%s",
              res[0].reason);
    score1(s.r, res, "COUNT");
    cr_expect_eq(res[0].score, 1.0, "restarted after garbage");
    /* an {"error"} reply: every item fails with the plugin's message; the process is kept */
    score1(s.r, res, "RAISE");
    cr_expect_eq(res[0].status, REWARD_ERROR);
    cr_expect_str_eq(res[0].reason, "plugin error: raised on purpose");
    score1(s.r, res, "COUNT");
    cr_expect_eq(res[0].score, 3.0, "kept after an error reply");
    /* stray output after a reply is discarded, not taken as the next reply */
    score1(s.r, res, "STRAY");
    cr_expect(res[0].status == REWARD_OK && res[0].score == 0.0);
    score1(s.r, res, "COUNT");
    cr_expect(res[0].status == REWARD_OK && res[0].score == 5.0, "%d %g %s", res[0].status, res[0].score,
              res[0].reason);
    script_stop(&s);
}

Test(rewards_subprocess, invalid_utf8_is_replaced_on_the_wire) {
    script s;
    script_start(&s, 10);
    reward_result res[1];
    score1(s.r, res, "UTF \xff\xfe bytes");
    cr_expect(res[0].status == REWARD_OK && res[0].score == 2.0, "the plugin saw U+FFFD, not 0xFF: %d %g %s",
              res[0].status, res[0].score, res[0].reason);
    script_stop(&s);
}

Test(rewards_subprocess, utf8_sanitize_rules) {
    typedef struct {
        const char *in, *out;
    } ucase;
    static const ucase cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"}, /* é € 😀 */
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},                                  /* invalid byte */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                     /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},   /* surrogate D800 */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"end\xe2\x82", "end\xef\xbf\xbd\xef\xbf\xbd"},                /* truncated € */
        {"\xc3(", "\xef\xbf\xbd("},                                        /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = reward_utf8_sanitize(cases[i].in);
        cr_assert_not_null(got);
        cr_expect_str_eq(got, cases[i].out, "case %zu", i);
        free(got);
    }
}

Test(rewards_subprocess, large_batches_do_not_deadlock) {
    script s;
    script_start(&s, 10);
    enum { N = 300 };
    static char text[N][1024];
    reward_item items[N];
    reward_result res[N];
    for (int i = 0; i < N; i++) {
        memset(text[i], 'a' + i % 26, sizeof text[i] - 1);
        text[i][sizeof text[i] - 1] = '\0';
        if (i % 3 == 0) memcpy(text[i], "GOOD", 4);
        items[i] = (reward_item){"q", text[i], "{}", -1};
    }
    pt_error err = {0};
    cr_assert_eq(reward_score(s.r, res, items, N, &err), PT_OK); /* ~300 KB: more than a socket buffer */
    for (int i = 0; i < N; i++)
        cr_expect(res[i].status == REWARD_OK && res[i].score == (i % 3 == 0 ? 1.0 : 0.0), "item %d: %d %g %s", i,
                  res[i].status, res[i].score, res[i].reason);
    script_stop(&s);
}

Test(rewards_subprocess, bad_commands_fail_at_creation) {
    reward *r = NULL;
    pt_error err = {0};
    cr_expect_eq(reward_create_json(&r, "{\"type\": \"subprocess\", \"command\": [\"/no/such/binary\"]}", NULL, &err),
                 PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "cannot start reward command '/no/such/binary'") != NULL, "%s", err.msg);
    cr_expect_eq(reward_create_json(&r, "{\"type\": \"subprocess\"}", NULL, &err), PT_ERR_CONFIG);
    cr_expect(strstr(err.msg, "missing \"command\"") != NULL, "%s", err.msg);
    cr_expect_eq(reward_create_json(&r, "{\"type\": \"subprocess\", \"command\": [\"sh\", 3]}", NULL, &err),
                 PT_ERR_CONFIG);
    cr_expect_eq(reward_create_json(&r, "{\"type\": \"subprocess\", \"command\": \"true\", \"timeout\": 0}", NULL, &err),
                 PT_ERR_CONFIG);
    /* a shell string that exits at once: created fine, and the first call reports the exit */
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"subprocess\", \"command\": \"exit 5\", \"timeout\": 5}", NULL,
                                    &err),
                 PT_OK, "%s", err.msg);
    reward_result res[1];
    score1(r, res, "GOOD");
    cr_expect_eq(res[0].status, REWARD_ERROR);
    cr_expect(strstr(res[0].reason, "exited with status 5") != NULL, "%s", res[0].reason);
    reward_free(r);
}

/* ---- a C plugin in its own process (reward-host) ------------------------------------------- */

/* A subprocess reward running <build>/tests/reward-host on the plugin config plugin_cfg. */
static pt_status hosted(reward **r, const char *plugin_cfg, pt_error *err) {
    char host[PATH_MAX];
    if (!beside_test_binary(host, sizeof host, "reward-host"))
        cr_skip_test("%s not built (make test builds it)", host);
    cJSON *cfg = cJSON_CreateObject(), *cmd = cJSON_AddArrayToObject(cfg, "command");
    cJSON_AddStringToObject(cfg, "type", "subprocess");
    cJSON_AddStringToObject(cfg, "name", "hosted");
    cJSON_AddNumberToObject(cfg, "timeout", 10);
    cJSON_AddItemToArray(cmd, cJSON_CreateString(host));
    cJSON_AddItemToArray(cmd, cJSON_CreateString(plugin_cfg));
    char *text = cJSON_PrintUnformatted(cfg);
    pt_status rc = reward_create_json(r, text, NULL, err);
    cJSON_free(text);
    cJSON_Delete(cfg);
    return rc;
}

/* Hosted in its own process, a plugin scores, masks and fails items exactly as it does loaded
 * into the trainer: same statuses, scores and reasons. */
Test(reward_host, serves_a_plugin_as_in_process) {
    char so[PATH_MAX], cfg[PATH_MAX + 128];
    NEED_PLUGIN(so, "reward_plugin_keyword");
    snprintf(cfg, sizeof cfg, "{\"type\": \"plugin\", \"path\": \"%s\", \"keyword\": \"because\"}", so);
    reward *local = NULL, *remote = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&local, cfg, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(hosted(&remote, cfg, &err), PT_OK, "%s", err.msg);
    reward_item items[6] = {{"q", "yes, because 2 > 1", "{}", -1},       {"q", "no reason", "{}", -1},
                            {"q", "MASK", "{}", -1},                     {"q", "FAIL", "{}", 7},
                            {"q", "because because", "{\"a\": 1}", 3}, {"q", "", NULL, -1}};
    reward_result a[6], b[6];
    cr_assert_eq(reward_score(local, a, items, 6, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(reward_score(remote, b, items, 6, &err), PT_OK, "%s", err.msg);
    int kinds[3] = {0};
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(b[i].status, a[i].status, "item %d: status %d hosted, %d in process (%s)", i, b[i].status,
                     a[i].status, b[i].reason);
        cr_expect_eq(b[i].score, a[i].score, "item %d", i);
        cr_expect_str_eq(b[i].reason, a[i].reason, "item %d", i);
        kinds[a[i].status]++;
    }
    cr_expect(kinds[REWARD_OK] >= 2 && kinds[REWARD_MASKED] >= 1 && kinds[REWARD_ERROR] >= 1,
              "the batch should hold scores, masks and failures (%d %d %d)", kinds[REWARD_OK], kinds[REWARD_MASKED],
              kinds[REWARD_ERROR]);
    reward_free(local);
    reward_free(remote);
}

/* A plugin that segfaults costs its batch, not the trainer: the batch's items are errors naming
 * the signal, and the next batch is scored by a fresh host. What the plugin prints to stdout
 * does not reach the protocol. */
Test(reward_host, a_crashing_plugin_costs_one_batch) {
    char so[PATH_MAX], cfg[PATH_MAX + 64];
    NEED_PLUGIN(so, "reward_plugin_crash");
    snprintf(cfg, sizeof cfg, "{\"type\": \"plugin\", \"path\": \"%s\"}", so);
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(hosted(&r, cfg, &err), PT_OK, "%s", err.msg);
    reward_item ok[2] = {{"q", "PRINT", "{}", -1}, {"q", "FAIL", "{}", -1}};
    reward_item crash[2] = {{"q", "fine", "{}", -1}, {"q", "CRASH", "{}", -1}};
    reward_result res[2];
    cr_assert_eq(reward_score(r, res, ok, 2, &err), PT_OK, "%s", err.msg);
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "%d %s", res[0].status, res[0].reason);
    cr_expect_eq(res[1].status, REWARD_ERROR, "a per-item failure stays an error, not a mask");
    cr_assert_eq(reward_score(r, res, crash, 2, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(res[i].status, REWARD_ERROR);
        cr_expect(strstr(res[i].reason, "signal 11") != NULL, "item %d: %s", i, res[i].reason);
    }
    cr_assert_eq(reward_score(r, res, ok, 2, &err), PT_OK, "%s", err.msg);
    cr_expect(res[0].status == REWARD_OK && res[0].score == 1.0, "after the crash: %d %s", res[0].status,
              res[0].reason);
    reward_free(r);
}

/* A config the plugin cannot load: every item is an error naming how the host ended (its message
 * goes to stderr); a malformed request line gets a protocol error, and the host stays in step. */
Test(reward_host, refusals) {
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(hosted(&r, "{\"type\": \"plugin\", \"path\": \"/nonexistent/plugin.so\"}", &err), PT_OK, "%s",
                 err.msg);
    reward_item one = {"q", "fine", "{}", -1};
    reward_result res[1];
    cr_assert_eq(reward_score(r, res, &one, 1, &err), PT_OK, "%s", err.msg);
    cr_expect_eq(res[0].status, REWARD_ERROR);
    cr_expect(strstr(res[0].reason, "exited with status 2") != NULL, "%s", res[0].reason);
    reward_free(r);

    static char requests[] = "not json\n{\"items\": [{\"prompt\": \"q\"}]}\n\n{\"items\": []}\n";
    FILE *in = fmemopen(requests, strlen(requests), "r");
    char *out = NULL;
    size_t out_len = 0;
    FILE *o = open_memstream(&out, &out_len);
    cr_assert(in && o);
    cr_assert_eq(reward_host_serve("{\"type\": \"countdown\"}", in, o, &err), PT_OK, "%s", err.msg);
    fclose(o);
    fclose(in);
    cr_expect_str_eq(out, "{\"error\":\"request is not JSON: 'not json'\"}\n"
                          "{\"error\":\"item 0: \\\"prompt\\\" and \\\"completion\\\" must be strings\"}\n"
                          "{\"scores\":[],\"reasons\":[],\"errors\":[]}\n");
    free(out);
    cr_expect_neq(reward_host_serve("{\"type\": \"nope\"}", stdin, stdout, &err), PT_OK);
    cr_expect(strstr(err.msg, "nope") != NULL, "%s", err.msg);
}
