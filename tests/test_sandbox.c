/* test_sandbox.c — the unit-test sandbox: its text helpers against hand-worked cases, the
 * symlink-safe removal against planted links, the start-up refusal, and the attack suite.
 *
 * Every attack runs hostile code through the real sandbox and expects one specific verdict AND
 * an unchanged host: the test process alive, a canary child (in the test's own process group,
 * which kill(-1) or a kill of the parent would hit) still alive, no process left from the run
 * (none in its process group or PID namespace that started before the run was reaped, none
 * carrying the attack's random tag), no file left under the run's root directory, no descriptor
 * leaked, no secret in anything the program could print. Attacks are written in Python (skipped
 * with a message when /usr/bin/python3 is missing) and again in sh where the shell can express
 * them, so the suite still bites on a machine without Python. Limits are tight (1 s CPU, 1.5 s
 * wall for the attacks that must be stopped by time) to keep the suite fast; programs that should
 * finish get a generous wall clock so a loaded machine cannot turn them into TIME_LIMIT.
 *
 * "Layers hold alone": with unsafe=true single layers are switched off and the same attacks are
 * still stopped by the layers that remain (network namespace without seccomp and seccomp without
 * the network namespace; the uid and DAC without the mount namespace; the process group without
 * the PID namespace).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rewards/reward.h"
#include "rewards/sandbox.h"
#include "rewards/sandbox_impl.h" /* the marker parser and payload encoder */
#include "tests/util/check.h"

#define PYTHON "/usr/bin/python3"

/* ---- helpers ------------------------------------------------------------------------------ */

static bool have_python(void) { return access(PYTHON, X_OK) == 0; }
#define NEED_PYTHON()                                                                                              \
    do {                                                                                                           \
        if (!have_python()) cr_skip("/usr/bin/python3 is missing: Python attack skipped (the sh variants run)");   \
    } while (0)

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

typedef struct host_state {
    char root[64];  /* the run's root_dir, must end empty */
    pid_t canary;   /* a child in our process group that must survive */
    int fds;        /* descriptors before the run */
} host_state;

static void host_begin(host_state *h) {
    snprintf(h->root, sizeof h->root, "/tmp/pt-sbx-test-XXXXXX");
    cr_assert(mkdtemp(h->root));
    cr_assert_eq(chmod(h->root, 0755), 0);
    h->canary = fork();
    cr_assert(h->canary >= 0);
    if (h->canary == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) pause();
    }
    h->fds = count_fds();
}

/* State, ppid, process group and start time in ticks since boot (fields 3, 4, 5, 22 of
 * /proc/<pid>/stat); false when the process is gone. */
static bool proc_stat(pid_t pid, char *state, long *ppid, long *pgrp, unsigned long long *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return false;
    int k = sscanf(p + 2, "%c %ld %ld %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", state,
                   ppid, pgrp, start);
    return k == 4;
}

static unsigned long long ticks_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (unsigned long long)ts.tv_sec * (unsigned long long)sysconf(_SC_CLK_TCK) +
           (unsigned long long)ts.tv_nsec / (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static bool cmdline_has(pid_t pid, const char *tag) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0') buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, tag) != NULL;
}

/* The first process left from run r (0 when none): our child other than the canary, a member
 * of the run's process group or PID namespace that started before the run was reaped, or one
 * carrying tag. Zombies count as gone (dead, waiting for the host's init to reap them). */
static long find_leftover(const host_state *h, const sandbox_result *r, const char *tag, unsigned long long reaped,
                          char *why, size_t why_len) {
    DIR *d = opendir("/proc");
    cr_assert(d);
    struct dirent *e;
    long found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        long ppid, pgrp;
        unsigned long long start;
        char state;
        if (!proc_stat((pid_t)pid, &state, &ppid, &pgrp, &start) || state == 'Z' || state == 'X') continue;
        if (pid != h->canary && ppid == getpid()) found = pid, snprintf(why, why_len, "is still our child");
        else if (r && r->pgid > 0 && pgrp == r->pgid && start <= reaped)
            found = pid, snprintf(why, why_len, "is in the run's process group %d", (int)r->pgid);
        else if (r && r->pid_ns) {
            char ns[64];
            struct stat st;
            snprintf(ns, sizeof ns, "/proc/%ld/ns/pid", pid);
            if (stat(ns, &st) == 0 && (unsigned long)st.st_ino == r->pid_ns && start <= reaped)
                found = pid, snprintf(why, why_len, "is in the run's PID namespace");
        }
        if (!found && tag && cmdline_has((pid_t)pid, tag))
            found = pid, snprintf(why, why_len, "carries the attack tag %s", tag);
    }
    closedir(d);
    return found;
}

/* Asserts that nothing of run r is left on the host; tag (may be NULL) marks the attack's
 * processes in their command lines. With a PID namespace the run is gone when sandbox_run
 * returns (the kernel reaps the namespace before its init can be waited for), so that is checked
 * at once; without one, SIGKILL to the process group is asynchronous: allow 2 s. */
static void host_end(host_state *h, const sandbox_result *r, const char *tag) {
    unsigned long long reaped = ticks_now();
    cr_assert_eq(count_fds(), h->fds, "descriptors leaked: %d before, %d after", h->fds, count_fds());
    cr_assert_eq(kill(h->canary, 0), 0, "the canary in the test's process group was killed");
    cr_assert_eq(waitpid(h->canary, NULL, WNOHANG), 0, "the canary died");
    char why[128] = "";
    long left = find_leftover(h, r, tag, reaped, why, sizeof why);
    for (int tries = 0; left && !(r && r->pid_ns) && tries < 100; tries++) {
        usleep(20000);
        left = find_leftover(h, r, tag, reaped, why, sizeof why);
    }
    cr_assert_eq(left, 0, "process %ld %s after the run", left, why);
    DIR *rd = opendir(h->root);
    cr_assert(rd);
    struct dirent *e;
    while ((e = readdir(rd)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            cr_assert_fail("'%s' was left in the sandbox root %s", e->d_name, h->root);
    closedir(rd);
    kill(h->canary, SIGKILL);
    waitpid(h->canary, NULL, 0);
    cr_assert_eq(rmdir(h->root), 0);
}

static sandbox_config test_config(const char *language, const host_state *h) {
    sandbox_config c;
    sandbox_config_default(&c);
    c.language = language;
    c.cpu_seconds = 1.0;
    c.wall_seconds = 20.0; /* programs that end on their own; attacks on time use tight_time */
    c.memory_bytes = (size_t)256 << 20;
    c.disk_bytes = (size_t)8 << 20;
    c.file_bytes = (size_t)4 << 20;
    c.max_processes = 32;
    c.stdout_bytes = 64 << 10;
    c.stderr_bytes = 16 << 10;
    c.root_dir = h->root;
    return c;
}

/* A kernel or container that forbids a layer (e.g. Docker's default seccomp profile blocks new
 * namespaces) cannot run the sandbox at all: sandbox_init refuses, and the test says so and skips
 * rather than fail — the refusal itself is tested in sandbox_init/refuses_without_a_layer. */
static sandbox *init_or_die(const sandbox_config *c) {
    sandbox *sb = NULL;
    pt_error err = {0};
    pt_status st = sandbox_init(&sb, c, &err);
    if (st == PT_ERR_UNSUPPORTED) cr_skip("this machine cannot run the sandbox: %s", err.msg);
    cr_assert_eq(st, PT_OK, "sandbox_init: %s", err.msg);
    return sb;
}

/* Runs code with tests (assert mode; NULL tests → one trivial test). */
static sandbox_result run_assert(const sandbox *sb, const char *code, const char *const *tests, int n) {
    static const char *const trivial_py[] = {"assert True"};
    static const char *const trivial_sh[] = {"true"};
    if (!tests) tests = strcmp(sandbox_get_config(sb)->language, "sh") == 0 ? trivial_sh : trivial_py, n = 1;
    sandbox_job job = {.code = code, .code_len = strlen(code), .tests = tests, .n_tests = n};
    sandbox_result r;
    pt_error err = {0};
    cr_assert_eq(sandbox_run(&r, sb, &job, &err), PT_OK, "sandbox_run: %s", err.msg);
    return r;
}

static sandbox_result run_io(const sandbox *sb, const char *code, const char *input, const char *expected) {
    sandbox_job job = {.code = code, .code_len = strlen(code), .stdin_data = input, .stdin_len = strlen(input),
                       .expected_stdout = expected, .expected_len = strlen(expected)};
    sandbox_result r;
    pt_error err = {0};
    cr_assert_eq(sandbox_run(&r, sb, &job, &err), PT_OK, "sandbox_run: %s", err.msg);
    return r;
}

#define EXPECT_VERDICT(r, v)                                                                                       \
    cr_assert_eq((r).verdict, (v), "verdict %s (%s), expected %s; stderr: %.400s", sandbox_verdict_name((r).verdict), \
                 (r).detail, sandbox_verdict_name(v), (r).err ? (r).err : "")

static void random_tag(char *buf, size_t len, const char *prefix) {
    unsigned long long x = ((unsigned long long)getpid() << 32) ^ (unsigned long long)time(NULL) ^
                           (unsigned long long)(uintptr_t)buf;
    x *= 0x9E3779B97F4A7C15ull;
    snprintf(buf, len, "%s%016llx", prefix, x);
}

/* One attack: fresh sandbox with config tweaks, expected verdict, host checks. */
typedef void (*config_tweak)(sandbox_config *c);
static void tight_time(sandbox_config *c) { c->wall_seconds = 1.5; }

static sandbox_result attack(const char *language, config_tweak tweak, const char *code, sandbox_verdict want,
                             const char *tag) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config(language, &h);
    if (tweak) tweak(&c);
    sandbox *sb = init_or_die(&c);
    sandbox_result r = run_assert(sb, code, NULL, 0);
    sandbox_free(sb);
    EXPECT_VERDICT(r, want);
    host_end(&h, &r, tag);
    return r;
}

/* ---- text helpers ------------------------------------------------------------------------- */

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot create %s", path);
    fputs("keep", f);
    fclose(f);
}

static void expect_block(const char *text, const char *lang, sandbox_block which, const char *want) {
    const char *code = NULL;
    size_t len = 0;
    bool found = sandbox_extract_code(&code, &len, text, lang, which);
    if (!want) {
        cr_assert(!found, "expected no block in:\n%s", text);
        return;
    }
    cr_assert(found, "no block found in:\n%s", text);
    cr_assert(len == strlen(want) && memcmp(code, want, len) == 0, "got [%.*s], want [%s]", (int)len, code, want);
}

Test(sandbox_text, extract_code) {
    const char *two = "Here:\n```python\nx = 1\n```\ntext\n```py\ny = 2\n```\n";
    expect_block(two, "python", SANDBOX_BLOCK_LAST, "y = 2\n");
    expect_block(two, "python", SANDBOX_BLOCK_FIRST, "x = 1\n");
    expect_block(two, "python", SANDBOX_BLOCK_WHOLE, two);
    /* other languages are skipped; untagged only when no tagged block exists */
    expect_block("```js\nalert(1)\n```\n```\nprint(1)\n```\n", "python", SANDBOX_BLOCK_LAST, "print(1)\n");
    expect_block("```\nuntagged\n```\n```Python3\ntagged\n```\n```\nlater\n```\n", "python", SANDBOX_BLOCK_LAST,
                 "tagged\n");
    expect_block("no code at all", "python", SANDBOX_BLOCK_LAST, NULL);
    expect_block("```js\nx\n```", "python", SANDBOX_BLOCK_LAST, NULL);
    /* unterminated (truncated answer): to the end of the text */
    expect_block("```python\ndef f():\n    return 1", "python", SANDBOX_BLOCK_LAST, "def f():\n    return 1");
    /* a longer fence is closed only by one at least as long; 4-space indent is not a fence */
    expect_block("````python\n```\ninner\n````\n", "python", SANDBOX_BLOCK_LAST, "```\ninner\n");
    expect_block("    ```python\n    x\n    ```\n", "python", SANDBOX_BLOCK_LAST, NULL);
    expect_block("  ```python {.numberLines}\nz\n  ```  \n", "python", SANDBOX_BLOCK_LAST, "z\n");
    expect_block("```bash\necho hi\n```", "sh", SANDBOX_BLOCK_FIRST, "echo hi\n");
    expect_block("```python\n```\n", "python", SANDBOX_BLOCK_LAST, "");
}

Test(sandbox_text, output_matches) {
    cr_assert(sandbox_output_matches("3\n", 2, "3", 1));
    cr_assert(sandbox_output_matches("\n\n1 2  \r\n3\t\n\n", 12, "1 2\n3", 5));
    cr_assert(!sandbox_output_matches("1  2\n", 5, "1 2\n", 4)); /* inner spaces count */
    cr_assert(!sandbox_output_matches("1\n\n2\n", 5, "1\n2\n", 4)); /* inner blank lines count */
    cr_assert(!sandbox_output_matches("3\n4\n", 4, "3\n", 2));
    cr_assert(!sandbox_output_matches("", 0, "0", 1));
    cr_assert(sandbox_output_matches("", 0, "\n  \n", 4));
    cr_assert(!sandbox_output_matches(" 3", 2, "3", 1)); /* leading spaces on a line count */
    cr_assert(!sandbox_output_matches("3\0", 2, "3", 1));
}

Test(sandbox_text, utf8_sanitize) {
    char out[64];
    const char in[] = "ok \xc3\xa9 \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82\xac\x01\n\x00z";
    size_t n = sandbox_utf8_sanitize(out, sizeof out, in, sizeof in - 1);
    /* é and € stay; 0xff 0xfe, the overlong C0 AF, the surrogate ED A0 80, the >U+10FFFF F4 90 80 80
     * and the control bytes (0x01, NUL) become one '?' per byte */
    const char *want = "ok \xc3\xa9 ?? ?? ??? ???? \xe2\x82\xac?\n?z";
    cr_assert_str_eq(out, want);
    cr_assert_eq(n, strlen(want));
    /* a multi-byte character that does not fit is cut whole */
    char small[5];
    sandbox_utf8_sanitize(small, sizeof small, "ab\xe2\x82\xac", 5);
    cr_assert_str_eq(small, "ab");
}

Test(sandbox_text, remove_tree_never_follows_symlinks) {
    char base[] = "/tmp/pt-sbx-rm-XXXXXX";
    cr_assert(mkdtemp(base));
    char canary_dir[128], canary_file[160], victim[160], tree[128], p[256];
    snprintf(canary_dir, sizeof canary_dir, "%s/canary", base);
    snprintf(canary_file, sizeof canary_file, "%s/keep.txt", canary_dir);
    snprintf(victim, sizeof victim, "%s/victim.txt", base);
    snprintf(tree, sizeof tree, "%s/run", base);
    cr_assert_eq(mkdir(canary_dir, 0755), 0);
    touch(canary_file);
    touch(victim);
    cr_assert_eq(mkdir(tree, 0755), 0);
    snprintf(p, sizeof p, "%s/a", tree);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/b", tree);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/b/file", tree);
    touch(p);
    snprintf(p, sizeof p, "%s/to_dir", tree);
    cr_assert_eq(symlink(canary_dir, p), 0);
    snprintf(p, sizeof p, "%s/a/to_file", tree);
    cr_assert_eq(symlink(victim, p), 0);
    snprintf(p, sizeof p, "%s/a/to_root", tree);
    cr_assert_eq(symlink("/", p), 0);
    snprintf(p, sizeof p, "%s/locked", tree);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/locked/inside", tree);
    touch(p);
    snprintf(p, sizeof p, "%s/locked", tree);
    cr_assert_eq(chmod(p, 0), 0);
    pt_error err = {0};
    cr_assert_eq(sandbox_remove_tree(tree, &err), PT_OK, "%s", err.msg);
    struct stat st;
    cr_assert_neq(lstat(tree, &st), 0, "the tree is still there");
    cr_assert_eq(stat(canary_file, &st), 0, "a symlinked directory's contents were removed");
    cr_assert_eq(stat(victim, &st), 0, "a symlinked file was removed");
    cr_assert_eq(sandbox_remove_tree(tree, &err), PT_OK, "a missing path is not an error");
    /* a symlink given as the path itself is removed as a link */
    snprintf(p, sizeof p, "%s/link", base);
    cr_assert_eq(symlink(canary_dir, p), 0);
    cr_assert_eq(sandbox_remove_tree(p, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(stat(canary_file, &st), 0);
    unlink(canary_file), rmdir(canary_dir), unlink(victim), rmdir(base);
}

/* ---- start-up ------------------------------------------------------------------------------ */

Test(sandbox_init, refuses_without_a_layer_unless_unsafe) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    c.layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_NET;
    sandbox *sb = NULL;
    pt_error err = {0};
    cr_assert_eq(sandbox_init(&sb, &c, &err), PT_ERR_UNSUPPORTED);
    cr_assert_null(sb);
    cr_assert(strstr(err.msg, "missing") && strstr(err.msg, "net"), "message should name the missing layer: %s",
              err.msg);
    c.unsafe = true;
    sb = init_or_die(&c);
    cr_assert(strstr(sandbox_describe(sb), "missing: net"), "%s", sandbox_describe(sb));
    cr_assert_eq(sandbox_layers_used(sb) & SANDBOX_LAYER_NET, 0u);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_init, bad_config_is_an_error) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("python", &h);
    sandbox *sb = NULL;
    pt_error err = {0};
    c.interpreter = "/nonexistent/python9";
    cr_assert_eq(sandbox_init(&sb, &c, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "/nonexistent/python9"), "%s", err.msg);
    c = test_config("cobol", &h);
    cr_assert_eq(sandbox_init(&sb, &c, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "interpreter"), "%s", err.msg);
    c = test_config("sh", &h);
    c.memory_bytes = 1 << 20;
    cr_assert_eq(sandbox_init(&sb, &c, &err), PT_ERR_CONFIG);
    /* an interpreter outside the bound directories fails the self-test, at start-up */
    c = test_config("sh", &h);
    static const char *const only_etc[] = {"/etc/alternatives", NULL};
    c.ro_paths = only_etc;
    cr_assert_eq(sandbox_init(&sb, &c, &err), PT_ERR_BACKEND);
    cr_assert(strstr(err.msg, "self-test"), "%s", err.msg);
    host_end(&h, NULL, NULL);
}

/* ---- honest programs ---------------------------------------------------------------------- */

Test(sandbox_run, python_asserts_and_score) {
    NEED_PYTHON();
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("python", &h);
    sandbox *sb = init_or_die(&c);
    static const char *const tests[] = {"assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 5"};
    sandbox_result r = run_assert(sb, "def add(a, b):\n    return a + b\n", tests, 2);
    EXPECT_VERDICT(r, VERDICT_OK);
    cr_assert_eq(r.tests_passed, 2);
    cr_assert_eq(r.tests_total, 2);
    sandbox_result_free(&r);
    r = run_assert(sb, "def add(a, b):\n    return a + b\n", tests, 3);
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    cr_assert_eq(r.tests_passed, 2);
    cr_assert_eq(r.tests_total, 3);
    cr_assert(strstr(r.err, "test 2 failed: AssertionError"), "%s", r.err);
    sandbox_result_free(&r);
    /* an exception inside a test (SystemExit included) fails that test only */
    static const char *const raising[] = {"add(None, 1)", "import sys; sys.exit(0)", "assert add(1, 1) == 2"};
    r = run_assert(sb, "def add(a, b):\n    return a + b\n", raising, 3);
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    cr_assert_eq(r.tests_passed, 1);
    sandbox_result_free(&r);
    /* a syntax error in the code is a runtime error, not a wrong answer */
    r = run_assert(sb, "def add(a, b)\n    return a + b\n", tests, 1);
    EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR);
    cr_assert(strstr(r.err, "SyntaxError"), "%s", r.err);
    sandbox_result_free(&r);
    /* inside: uid 1000, pid 2, hostname sandbox, empty environment, /sandbox working dir */
    static const char *const inside[] = {
        "import os; assert os.getuid() == 1000 and os.getgid() == 1000, os.getuid()",
        "import os; assert os.getpid() == 2, os.getpid()",
        "import os; assert os.uname().nodename == 'sandbox'",
        "import os; assert os.getcwd() == '/sandbox', os.getcwd()",
        "import os; assert sorted(os.environ) == ['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR'], dict(os.environ)",
        "open('/tmp/scratch', 'w').write('x'); assert open('/sandbox/scratch').read() == 'x'",
    };
    r = run_assert(sb, "pass\n", inside, 6);
    EXPECT_VERDICT(r, VERDICT_OK);
    sandbox_result_free(&r);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, stdin_stdout_mode) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    sandbox *sb = init_or_die(&c);
    sandbox_result r = run_io(sb, "read a b; echo $((a + b))\n", "2 3\n", "5\n");
    EXPECT_VERDICT(r, VERDICT_OK);
    cr_assert_eq(r.tests_passed, 1);
    sandbox_result_free(&r);
    r = run_io(sb, "read a b; echo $((a * b))\n", "2 3\n", "5\n");
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    cr_assert_str_eq(r.out, "6\n");
    sandbox_result_free(&r);
    r = run_io(sb, "read a b; echo $((a + b)); exit 3\n", "2 3\n", "5\n");
    EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR);
    cr_assert_eq(r.exit_code, 3);
    sandbox_result_free(&r);
    /* large input through stdin (bigger than a pipe buffer) */
    size_t n = 300000;
    char *big = malloc(n + 2);
    memset(big, 'a', n);
    big[n] = '\n', big[n + 1] = '\0';
    r = run_io(sb, "wc -c\n", big, "300001\n");
    EXPECT_VERDICT(r, VERDICT_OK);
    sandbox_result_free(&r);
    free(big);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, python_stdin_stdout_mode) {
    NEED_PYTHON();
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("python", &h);
    sandbox *sb = init_or_die(&c);
    sandbox_result r = run_io(sb, "import sys\nn = int(input())\nprint(n * 2)\nsys.exit(0)\n", "21\n", "42");
    EXPECT_VERDICT(r, VERDICT_OK);
    sandbox_result_free(&r);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, batch_keeps_job_order) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    sandbox *sb = init_or_die(&c);
    enum { N = 8 };
    sandbox_job jobs[N];
    char codes[N][64], want[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(codes[i], sizeof codes[i], "sleep 0.0%d; echo %d\n", (N - i) % 10, i * i);
        snprintf(want[i], sizeof want[i], "%d", i % 3 == 0 ? -1 : i * i); /* every third is wrong */
        jobs[i] = (sandbox_job){.code = codes[i], .code_len = strlen(codes[i]), .stdin_data = "",
                                .expected_stdout = want[i], .expected_len = strlen(want[i])};
    }
    sandbox_result res[N];
    pt_error err = {0};
    cr_assert_eq(sandbox_run_batch(res, sb, jobs, N, 3, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        EXPECT_VERDICT(res[i], i % 3 == 0 ? VERDICT_WRONG_ANSWER : VERDICT_OK);
        char expect_out[16];
        snprintf(expect_out, sizeof expect_out, "%d\n", i * i);
        cr_assert_str_eq(res[i].out, expect_out);
        sandbox_result_free(&res[i]);
    }
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, process_limit_is_per_run) {
    /* RLIMIT_NPROC counts per (user namespace, uid): two runs at once may each use the whole
     * limit. 20 sleepers + the shell + init fit in 26; two runs together (44) would not if the
     * count were shared (same host uid 65534 for both). */
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    c.max_processes = 26;
    sandbox *sb = init_or_die(&c);
    const char *code = "i=0\nwhile [ $i -lt 20 ]; do sleep 1 & i=$((i+1)); done\nwait\necho done\n";
    sandbox_job jobs[2];
    for (int i = 0; i < 2; i++)
        jobs[i] = (sandbox_job){.code = code, .code_len = strlen(code), .stdin_data = "", .expected_stdout = "done",
                                .expected_len = 4};
    sandbox_result res[2];
    pt_error err = {0};
    cr_assert_eq(sandbox_run_batch(res, sb, jobs, 2, 2, &err), PT_OK, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        EXPECT_VERDICT(res[i], VERDICT_OK);
        sandbox_result_free(&res[i]);
    }
    sandbox_free(sb);
    /* and the limit is real: 10 processes cannot hold 20 sleepers */
    c.max_processes = 10;
    sb = init_or_die(&c);
    sandbox_result r = run_io(sb, code, "", "done");
    EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR);
    cr_assert(strstr(r.err, "Cannot fork"), "%s", r.err);
    sandbox_result_free(&r);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, trainer_death_kills_the_run) {
    /* a "trainer" process starts a run that would sleep for 1000 s and is SIGKILLed: the run's
     * init gets its parent-death signal and the kernel ends the whole PID namespace */
    host_state h;
    host_begin(&h);
    char tag[48], code[256];
    random_tag(tag, sizeof tag, "pt-orphaned-run-");
    snprintf(code, sizeof code, "exec sh -c 'sleep 1000; :' %s\n", tag);
    sandbox_config probe = test_config("sh", &h);
    sandbox_free(init_or_die(&probe)); /* skips where the sandbox cannot run */
    pid_t trainer = fork();
    cr_assert(trainer >= 0);
    if (trainer == 0) {
        sandbox_config c = test_config("sh", &h);
        c.wall_seconds = 600;
        sandbox *sb = NULL;
        pt_error err = {0};
        if (sandbox_init(&sb, &c, &err) != PT_OK) _exit(1);
        sandbox_result r;
        sandbox_run(&r, sb, &(sandbox_job){.code = code, .code_len = strlen(code), .stdin_data = "",
                                           .expected_stdout = ""},
                    &err);
        _exit(2);
    }
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) { /* wait until the run is up */
        usleep(20000);
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL)
            if (atoi(e->d_name) > 0 && cmdline_has((pid_t)atoi(e->d_name), tag)) seen = true;
        if (d) closedir(d);
    }
    cr_assert(seen, "the run never started");
    kill(trainer, SIGKILL);
    waitpid(trainer, NULL, 0);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        usleep(20000);
        gone = true;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            long ppid, pgrp;
            unsigned long long start;
            char state;
            pid_t pid = (pid_t)atoi(e->d_name);
            if (pid > 0 && cmdline_has(pid, tag) && proc_stat(pid, &state, &ppid, &pgrp, &start) && state != 'Z')
                gone = false;
        }
        if (d) closedir(d);
    }
    cr_assert(gone, "the run outlived its trainer");
    DIR *d = opendir(h.root); /* the dead trainer could not remove its run directory */
    cr_assert(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[352];
        pt_error err = {0};
        snprintf(path, sizeof path, "%s/%s", h.root, e->d_name);
        cr_assert_eq(sandbox_remove_tree(path, &err), PT_OK, "%s", err.msg);
    }
    closedir(d);
    host_end(&h, NULL, tag);
}

Test(sandbox_run, infra_error_is_retried_once) {
    host_state h;
    host_begin(&h);
    char root[96];
    snprintf(root, sizeof root, "%s/gone", h.root);
    cr_assert_eq(mkdir(root, 0755), 0);
    sandbox_config c = test_config("sh", &h);
    c.root_dir = root;
    sandbox *sb = init_or_die(&c);
    cr_assert_eq(rmdir(root), 0); /* now no run can make its directory */
    sandbox_result r = run_io(sb, "echo 1\n", "", "1");
    EXPECT_VERDICT(r, VERDICT_INFRA_ERROR);
    cr_assert_eq(r.attempts, 2);
    cr_assert(strstr(r.detail, "cannot create a sandbox directory") && strstr(r.detail, "retried"), "%s", r.detail);
    sandbox_result_free(&r);
    cr_assert_eq(mkdir(root, 0755), 0); /* and it recovers */
    r = run_io(sb, "echo 1\n", "", "1");
    EXPECT_VERDICT(r, VERDICT_OK);
    cr_assert_eq(r.attempts, 1);
    sandbox_result_free(&r);
    cr_assert_eq(rmdir(root), 0);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_run, bench_smoke) {
    NEED_PYTHON();
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("python", &h);
    sandbox *sb = init_or_die(&c);
    double rps = 0;
    pt_error err = {0};
    cr_assert_eq(sandbox_bench(&rps, sb, 0.3, 2, &err), PT_OK, "%s", err.msg);
    cr_assert(rps > 0);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

/* ---- the harness marker --------------------------------------------------------------------- */

Test(sandbox_marker, exit_before_the_asserts_scores_nothing) {
    NEED_PYTHON();
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("python", &h);
    sandbox *sb = init_or_die(&c);
    static const char *const tests[] = {"assert f() == 1"};
    const char *early[] = {
        "def f():\n    return 1\nimport sys\nsys.exit(0)\n",
        "def f():\n    return 1\nimport os\nos._exit(0)\n",
        "def f():\n    return 1\nraise SystemExit\n",
        "def f():\n    return 1\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        /* forge a marker without the nonce, on fd 4 and on stdout, then leave */
        "def f():\n    return 0\nimport os\nfor fd in (1, 4):\n"
        "    os.write(fd, b'PT 0123456789abcdef0123456789abcdef 1 1\\n')\n"
        "os._exit(0)\n",
        /* read the nonce: fd 3 is closed before the code runs */
        "def f():\n    return 0\nimport os\nn = os.read(3, 64)\nos.write(4, b'PT ' + n.split(b'\\n')[0] + b' 1 1\\n')\n"
        "os._exit(0)\n",
    };
    for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
        sandbox_result r = run_assert(sb, early[i], tests, 1);
        cr_assert_eq(r.tests_passed, 0, "program %zu scored: %s", i, early[i]);
        cr_assert(r.verdict != VERDICT_OK, "program %zu passed: %s", i, early[i]);
        if (i < 3) EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR);
        sandbox_result_free(&r);
    }
    /* rebinding exec/compile/os._exit does not turn the tests into no-ops */
    sandbox_result r = run_assert(sb,
                                  "import builtins, os\ndef f():\n    return 0\n"
                                  "builtins.exec = lambda *a, **k: None\nbuiltins.compile = lambda *a, **k: None\n"
                                  "os._exit = lambda *a: None\n",
                                  tests, 1);
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    sandbox_result_free(&r);
    /* closing stdout and stderr does not hide the marker (it has its own pipe) */
    r = run_assert(sb, "import os\nos.close(1)\nos.close(2)\ndef f():\n    return 1\n", tests, 1);
    EXPECT_VERDICT(r, VERDICT_OK);
    sandbox_result_free(&r);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

Test(sandbox_marker, parse_rejects_forgeries) {
    const char *nonce = "00112233445566778899aabbccddeeff";
    int p = -1, t = -1;
    const char *good = "noise\nPT 00112233445566778899aabbccddeeff 3 4\n";
    cr_assert(sandbox_marker_parse(&p, &t, good, strlen(good), nonce));
    cr_assert_eq(p, 3);
    cr_assert_eq(t, 4);
    const char *bad[] = {
        "PT 00112233445566778899aabbccddeeff 3 4",        /* not a whole line */
        "PT 00112233445566778899aabbccddeefe 4 4\n",      /* another nonce */
        "PT 00112233445566778899aabbccddeeff0 4 4\n",     /* a longer one */
        "PT 00112233445566778899aabbccddee 4 4\n",        /* a prefix of it */
        "PT 00112233445566778899aabbccddeeff 5 4\n",      /* passed > total */
        "PT 00112233445566778899aabbccddeeff -1 4\n",
        "PT 00112233445566778899aabbccddeeff 4 4 x\n",
        "PT 00112233445566778899aabbccddeeff 4\n",
        "PT 00112233445566778899aabbccddeeff 1234567890 1234567890\n", /* overflow */
        " PT 00112233445566778899aabbccddeeff 4 4\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!sandbox_marker_parse(&p, &t, bad[i], strlen(bad[i]), nonce), "accepted: %s", bad[i]);
    /* the payload the harness parses: lengths, then raw bytes (newlines kept) */
    static const char *const tests[] = {"assert f(1) == 2", "x = '''a\nb'''\nassert x"};
    char *buf = NULL;
    size_t len = 0;
    pt_error err = {0};
    cr_assert_eq(sandbox_payload_build(&buf, &len, PAYLOAD_LENGTHS, nonce, tests, 2, &err), PT_OK);
    const char *want = "00112233445566778899aabbccddeeff\n2\n16\nassert f(1) == 2"
                       "22\nx = '''a\nb'''\nassert x";
    cr_assert_eq(len, strlen(want));
    cr_assert(memcmp(buf, want, len) == 0, "%.*s", (int)len, buf);
    free(buf);
    cr_assert_eq(sandbox_payload_build(&buf, &len, PAYLOAD_LINES, nonce, tests, 2, &err), PT_ERR_INVALID);
}

Test(sandbox_marker, sh_harness_counts) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    sandbox *sb = init_or_die(&c);
    static const char *const tests[] = {"[ \"$(f 2)\" = 4 ]", "[ \"$(f 3)\" = 7 ]", "exit 0", "exit 1"};
    sandbox_result r = run_assert(sb, "f() { echo $(($1 * 2)); }\n", tests, 4);
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    cr_assert_eq(r.tests_passed, 2);
    cr_assert_eq(r.tests_total, 4);
    sandbox_result_free(&r);
    r = run_assert(sb, "exit 0\n", tests, 1);
    EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR);
    sandbox_result_free(&r);
    /* an sh test holding a newline cannot be encoded: the job is invalid, not a verdict */
    static const char *const bad[] = {"true\nfalse"};
    sandbox_job job = {.code = "true\n", .code_len = 5, .tests = bad, .n_tests = 1};
    pt_error err = {0};
    cr_assert_eq(sandbox_run(&r, sb, &job, &err), PT_ERR_INVALID);
    sandbox_free(sb);
    host_end(&h, NULL, NULL);
}

/* ---- attacks: time ------------------------------------------------------------------------- */

Test(sandbox_attack, busy_loop) {
    NEED_PYTHON();
    sandbox_result r = attack("python", tight_time, "while True:\n    pass\n", VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, busy_loop_sh) {
    sandbox_result r = attack("sh", tight_time, "while :; do :; done\n", VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, sleep_forever) {
    NEED_PYTHON();
    sandbox_result r = attack("python", tight_time, "import time\ntime.sleep(10**6)\n", VERDICT_TIME_LIMIT, NULL);
    cr_assert_lt(r.wall_seconds, 10.0);
    sandbox_result_free(&r);
}

Test(sandbox_attack, sleep_forever_sh) {
    sandbox_result r = attack("sh", tight_time, "sleep 1000000\n", VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, ignore_sigterm) {
    NEED_PYTHON();
    sandbox_result r = attack("python", tight_time,
                              "import signal\n"
                              "for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):\n"
                              "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n",
                              VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, ignore_sigterm_sh) {
    sandbox_result r = attack("sh", tight_time, "trap '' TERM XCPU INT HUP\nwhile :; do :; done\n", VERDICT_TIME_LIMIT,
                              NULL);
    sandbox_result_free(&r);
}

/* ---- attacks: processes ---------------------------------------------------------------------- */

Test(sandbox_attack, fork_bomb) {
    NEED_PYTHON();
    sandbox_result r = attack("python", tight_time,
                              "import os\nwhile True:\n    try:\n        os.fork()\n"
                              "    except OSError:\n        pass\n",
                              VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, fork_bomb_sh) {
    /* dash gives up when fork fails ("Cannot fork"): the sleepers it left must die with the run */
    sandbox_result r = attack("sh", tight_time, "while :; do sh -c 'sleep 1000' & done\n", VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "Cannot fork"), "%s", r.err);
    sandbox_result_free(&r);
}

Test(sandbox_attack, thread_bomb) {
    NEED_PYTHON();
    sandbox_result r = attack("python", NULL,
                              "import threading, time\nwhile True:\n"
                              "    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n",
                              VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "can't start new thread"), "%s", r.err);
    sandbox_result_free(&r);
}

static void many_processes(sandbox_config *c) { c->max_processes = 1100; }

Test(sandbox_attack, thousand_zombies) {
    NEED_PYTHON();
    /* with room for them: 1000 children that are never waited for; init reaps them all */
    const char *zombies = "import os\nfor i in range(1000):\n    if os.fork() == 0:\n        os._exit(0)\n";
    sandbox_result r = attack("python", many_processes, zombies, VERDICT_OK, NULL);
    sandbox_result_free(&r);
    /* with the default process limit, fork fails: the program dies of it */
    r = attack("python", NULL, zombies, VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "BlockingIOError") || strstr(r.err, "Resource temporarily unavailable"), "%s", r.err);
    sandbox_result_free(&r);
}

Test(sandbox_attack, double_forked_daemon) {
    NEED_PYTHON();
    char tag[48], code[1024];
    random_tag(tag, sizeof tag, "pt-daemon-");
    snprintf(code, sizeof code,
             "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
             "        os.execv('/bin/sh', ['/bin/sh', '-c', 'sleep 30; :', '%s'])\n    os._exit(0)\n"
             "os.wait()\n",
             tag);
    sandbox_result r = attack("python", NULL, code, VERDICT_OK, tag);
    sandbox_result_free(&r);
}

Test(sandbox_attack, double_forked_daemon_sh) {
    char tag[48], code[256];
    random_tag(tag, sizeof tag, "pt-daemon-");
    snprintf(code, sizeof code, "( setsid sh -c 'sleep 30; :' %s & )\nsleep 0.2\n", tag);
    sandbox_result r = attack("sh", NULL, code, VERDICT_OK, tag);
    sandbox_result_free(&r);
}

Test(sandbox_attack, kill_parent_and_everyone) {
    NEED_PYTHON();
    char code[512];
    snprintf(code, sizeof code,
             "import os, time\nfor pid in (os.getppid(), %d, -1, -%d):\n    try:\n        os.kill(pid, 9)\n"
             "    except OSError:\n        pass\ntime.sleep(0.2)\n",
             (int)getpid(), (int)getpgrp());
    sandbox_result r = attack("python", NULL, code, VERDICT_OK, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, kill_parent_and_everyone_sh) {
    char code[256];
    snprintf(code, sizeof code, "kill -9 $PPID %d -- -%d 2>/dev/null; kill -9 -1 2>/dev/null; sleep 0.2\n",
             (int)getpid(), (int)getpgrp());
    sandbox_result r = attack("sh", NULL, code, VERDICT_OK, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, ptrace) {
    NEED_PYTHON();
    sandbox_result r = attack("python", NULL, "import ctypes\nctypes.CDLL(None).ptrace(16, 1, 0, 0)\n",
                              VERDICT_SYSCALL_DENIED, NULL); /* PTRACE_ATTACH to init */
    sandbox_result_free(&r);
    r = attack("python", NULL, "import ctypes\nctypes.CDLL(None).ptrace(0, 0, 0, 0)\n", VERDICT_SYSCALL_DENIED,
               NULL); /* PTRACE_TRACEME */
    sandbox_result_free(&r);
}

/* ---- attacks: memory, disk, output ----------------------------------------------------------- */

Test(sandbox_attack, memory_bomb) {
    NEED_PYTHON();
    sandbox_result r = attack("python", NULL, "x = bytearray(1 << 40)\n", VERDICT_MEMORY_LIMIT, NULL);
    sandbox_result_free(&r);
    r = attack("python", NULL, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n",
               VERDICT_MEMORY_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, memory_bomb_sh) {
    sandbox_result r = attack("sh", NULL, "exec tail /dev/zero\n", VERDICT_MEMORY_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, disk_fill) {
    NEED_PYTHON();
    /* many files under the file-size limit until the 8 MiB tmpfs is full */
    sandbox_result r = attack("python", NULL,
                              "i = 0\nwhile True:\n    open('f%d' % i, 'wb').write(b'x' * (1 << 20))\n    i += 1\n",
                              VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "No space left on device"), "%s", r.err);
    sandbox_result_free(&r);
    /* one file over the file-size limit (Python ignores SIGXFSZ and gets EFBIG) */
    r = attack("python", NULL, "open('/tmp/big', 'wb').write(b'x' * (6 << 20))\n", VERDICT_OUTPUT_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, disk_fill_sh) {
    sandbox_result r = attack("sh", NULL,
                              "i=0\nwhile :; do head -c 1000000 /dev/zero > f$i || exit 1; i=$((i+1)); done\n",
                              VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "No space left on device"), "%s", r.err);
    sandbox_result_free(&r);
    r = attack("sh", NULL, "exec head -c 30000000 /dev/zero > big\n", VERDICT_OUTPUT_LIMIT, NULL);
    cr_assert_eq(r.term_signal, SIGXFSZ);
    sandbox_result_free(&r);
}

Test(sandbox_attack, gigabytes_of_output) {
    NEED_PYTHON();
    sandbox_result r = attack("python", NULL, "import os\nb = b'x' * (1 << 20)\nwhile True:\n    os.write(1, b)\n",
                              VERDICT_OUTPUT_LIMIT, NULL);
    cr_assert_eq(r.out_len, (size_t)64 << 10);
    cr_assert(r.out_truncated);
    cr_assert_lt(r.wall_seconds, 10.0);
    sandbox_result_free(&r);
    r = attack("python", NULL, "import sys\nwhile True:\n    sys.stderr.write('e' * 4096)\n", VERDICT_OUTPUT_LIMIT,
               NULL);
    cr_assert_eq(r.err_len, (size_t)16 << 10);
    sandbox_result_free(&r);
}

Test(sandbox_attack, gigabytes_of_output_sh) {
    sandbox_result r = attack("sh", NULL, "exec head -c 3000000000 /dev/zero\n", VERDICT_OUTPUT_LIMIT, NULL);
    cr_assert_eq(r.out_len, (size_t)64 << 10);
    sandbox_result_free(&r);
    r = attack("sh", NULL, "yes >&2\n", VERDICT_OUTPUT_LIMIT, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_attack, invalid_utf8_and_closed_stdout) {
    host_state h;
    host_begin(&h);
    sandbox_config c = test_config("sh", &h);
    sandbox *sb = init_or_die(&c);
    sandbox_result r = run_io(sb, "printf 'hello\\377\\376\\000\\300\\n'\n", "", "hello");
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    cr_assert_eq(r.out_len, 10);
    char shown[64];
    sandbox_utf8_sanitize(shown, sizeof shown, r.out, r.out_len);
    cr_assert_str_eq(shown, "hello????\n");
    sandbox_result_free(&r);
    r = run_io(sb, "exec 1>&-\necho hello\n", "", "hello");
    EXPECT_VERDICT(r, VERDICT_RUNTIME_ERROR); /* echo fails on the closed stdout: exit status 2 */
    cr_assert_eq(r.out_len, 0);
    sandbox_result_free(&r);
    r = run_io(sb, "exec 1>&- 2>&-\nexit 0\n", "", "hello");
    EXPECT_VERDICT(r, VERDICT_WRONG_ANSWER);
    sandbox_result_free(&r);
    sandbox_free(sb);
    host_end(&h, &r, NULL);
}

/* ---- attacks: files ------------------------------------------------------------------------ */

/* A host directory the sandbox must not be able to write to (root-owned, 0777 to make DAC no
 * obstacle: only the private root keeps the code out). */
static void make_outside(char *dir, size_t len, const host_state *h) {
    snprintf(dir, len, "/tmp/pt-sbx-outside-XXXXXX");
    cr_assert(mkdtemp(dir));
    cr_assert_eq(chmod(dir, 0777), 0);
    (void)h;
}

static void expect_empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            cr_assert_fail("the sandbox wrote '%s' into the host directory %s", e->d_name, dir);
    closedir(d);
}

Test(sandbox_attack, write_outside_and_through_symlink) {
    NEED_PYTHON();
    char outside[64], code[2048];
    make_outside(outside, sizeof outside, NULL);
    const char *writes[] = {"%s/pwned", "../../%s/pwned", "/usr/pwned", "/etc/pwned", "/pwned",
                            "/proc/sys/kernel/hostname"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, writes[i], outside);
        snprintf(code, sizeof code, "open('%s', 'w').write('x')\n", path);
        sandbox_result r = attack("python", NULL, code, VERDICT_RUNTIME_ERROR, NULL);
        sandbox_result_free(&r);
    }
    /* a symlink planted by the code: to a host path, then written through */
    snprintf(code, sizeof code,
             "import os\nos.symlink('%s', 'link')\nos.symlink('%s/victim', 'flink')\n"
             "open('flink', 'w').write('x')\n",
             outside, outside);
    sandbox_result r = attack("python", NULL, code, VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    snprintf(code, sizeof code, "import os\nos.symlink('%s', 'link')\nopen('link/pwned', 'w').write('x')\n", outside);
    r = attack("python", NULL, code, VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    expect_empty_dir(outside);
    struct stat st;
    cr_assert_neq(stat("/usr/pwned", &st), 0);
    cr_assert_neq(stat("/etc/pwned", &st), 0);
    rmdir(outside);
}

Test(sandbox_attack, write_outside_sh) {
    char outside[64], code[512];
    make_outside(outside, sizeof outside, NULL);
    snprintf(code, sizeof code, "echo x > %s/pwned || exit 3\n", outside);
    sandbox_result r = attack("sh", NULL, code, VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    snprintf(code, sizeof code, "ln -s %s link && echo x > link/pwned || exit 3\n", outside);
    r = attack("sh", NULL, code, VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    r = attack("sh", NULL, "echo x > /usr/pwned || exit 3\n", VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    expect_empty_dir(outside);
    rmdir(outside);
}

static const char SECRET_NAME[] = "PT_SANDBOX_TEST_SECRET";

Test(sandbox_attack, read_secrets) {
    NEED_PYTHON();
    char secret[48], code[2048];
    random_tag(secret, sizeof secret, "s3cr3t-");
    cr_assert_eq(setenv(SECRET_NAME, secret, 1), 0);
    snprintf(code, sizeof code,
             "import os\nfor p in ('/etc/shadow', '/proc/1/environ', '/proc/self/environ', '/proc/%d/environ',\n"
             "          '/proc/%d/environ', '/proc/1/mem', '/proc/1/cmdline'):\n"
             "    try:\n        print(p, open(p, 'rb').read()[:4000])\n"
             "    except OSError as e:\n        print(p, 'denied', e)\n"
             "print(dict(os.environ))\n",
             (int)getpid(), (int)getppid());
    sandbox_result r = attack("python", NULL, code, VERDICT_OK, NULL);
    cr_assert(strstr(r.out, "/etc/shadow denied"), "%s", r.out);
    cr_assert(strstr(r.out, "/proc/1/environ denied"), "%s", r.out);
    cr_assert_null(strstr(r.out, secret), "the trainer's secret leaked:\n%s", r.out);
    cr_assert_null(strstr(r.out, SECRET_NAME), "the secret's name leaked:\n%s", r.out);
    cr_assert_null(strstr(r.out, "root:"), "/etc/shadow leaked:\n%s", r.out);
    /* the run's init is a copy of this process: its command line must not show ours */
    char self[256] = "";
    FILE *f = fopen("/proc/self/cmdline", "r");
    cr_assert(f);
    cr_assert(fgets(self, sizeof self, f) != NULL || self[0]);
    fclose(f);
    const char *base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
    cr_assert(strlen(base) >= 3);
    cr_assert_null(strstr(r.out, base), "the trainer's command line (%s) leaked:\n%s", base, r.out);
    sandbox_result_free(&r);
    unsetenv(SECRET_NAME);
}

Test(sandbox_attack, read_secrets_sh) {
    char secret[48], code[512];
    random_tag(secret, sizeof secret, "s3cr3t-");
    cr_assert_eq(setenv(SECRET_NAME, secret, 1), 0);
    snprintf(code, sizeof code,
             "cat /etc/shadow /proc/1/environ /proc/%d/environ /proc/%d/environ 2>&1\nenv\nset\n", (int)getpid(),
             (int)getppid());
    sandbox_result r = attack("sh", NULL, code, VERDICT_OK, NULL);
    cr_assert_null(strstr(r.out, secret), "the trainer's secret leaked:\n%s", r.out);
    cr_assert_null(strstr(r.out, "root:"), "/etc/shadow leaked:\n%s", r.out);
    cr_assert(strstr(r.out, "HOME=/sandbox"), "%s", r.out);
    sandbox_result_free(&r);
    unsetenv(SECRET_NAME);
}

/* ---- attacks: network ------------------------------------------------------------------------ */

typedef struct listeners { int tcp, udp, tcp_port, udp_port; } listeners;

static listeners listen_loopback(void) {
    listeners l;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    l.tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(l.tcp >= 0);
    cr_assert_eq(bind(l.tcp, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(l.tcp, 8), 0);
    cr_assert_eq(getsockname(l.tcp, (struct sockaddr *)&a, &al), 0);
    l.tcp_port = ntohs(a.sin_port);
    a.sin_port = 0;
    l.udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(l.udp >= 0);
    cr_assert_eq(bind(l.udp, (struct sockaddr *)&a, sizeof a), 0);
    al = sizeof a;
    cr_assert_eq(getsockname(l.udp, (struct sockaddr *)&a, &al), 0);
    l.udp_port = ntohs(a.sin_port);
    return l;
}

static void expect_no_contact(listeners *l) {
    int c = accept(l->tcp, NULL, NULL);
    cr_assert(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "the sandbox connected to the trainer's port");
    char b[16];
    cr_assert(recv(l->udp, b, sizeof b, 0) < 0, "the sandbox sent a datagram to the trainer");
    close(l->tcp);
    close(l->udp);
}

/* The network attacks under a given layer set; want is the verdict those layers give. */
static void network_attacks(config_tweak tweak, sandbox_verdict want) {
    listeners l = listen_loopback();
    char code[512];
    snprintf(code, sizeof code,
             "import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=1)\ns.sendall(b'pwned')\n",
             l.tcp_port);
    sandbox_result r = attack("python", tweak, code, want, NULL);
    sandbox_result_free(&r);
    snprintf(code, sizeof code,
             "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', %d))\n",
             l.udp_port);
    r = attack("python", tweak, code, want, NULL);
    sandbox_result_free(&r);
    r = attack("python", tweak, "import socket\nprint(socket.getaddrinfo('example.com', 80))\n", want, NULL);
    sandbox_result_free(&r);
    r = attack("python", tweak,
               "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=1)\n", want, NULL);
    sandbox_result_free(&r);
    expect_no_contact(&l);
}

Test(sandbox_attack, network) {
    NEED_PYTHON();
    network_attacks(NULL, VERDICT_SYSCALL_DENIED);
}

static void bash_interpreter(sandbox_config *c) { c->interpreter = "/bin/bash"; }

Test(sandbox_attack, network_bash) {
    if (access("/bin/bash", X_OK) != 0) cr_skip("/bin/bash is missing: the shell network attack needs /dev/tcp");
    listeners l = listen_loopback();
    char code[256];
    snprintf(code, sizeof code, "exec 5<>/dev/tcp/127.0.0.1/%d\necho pwned >&5\n", l.tcp_port);
    sandbox_result r = attack("sh", bash_interpreter, code, VERDICT_SYSCALL_DENIED, NULL);
    sandbox_result_free(&r);
    snprintf(code, sizeof code, "echo x > /dev/udp/127.0.0.1/%d\n", l.udp_port);
    r = attack("sh", bash_interpreter, code, VERDICT_SYSCALL_DENIED, NULL);
    sandbox_result_free(&r);
    expect_no_contact(&l);
}

/* ---- each layer holds alone (unsafe mode switches the others off) ----------------------------- */

static void without_seccomp(sandbox_config *c) {
    c->layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_SECCOMP;
    c->unsafe = true;
}
static void without_netns(sandbox_config *c) {
    c->layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_NET;
    c->unsafe = true;
}
static void without_mountns(sandbox_config *c) {
    c->layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_MOUNT;
    c->unsafe = true;
}
static void without_userns(sandbox_config *c) {
    c->layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_USER;
    c->unsafe = true;
}
static void without_pidns(sandbox_config *c) {
    c->layers = SANDBOX_LAYERS_ALL & ~SANDBOX_LAYER_PID;
    c->unsafe = true;
}

Test(sandbox_layers, network_namespace_alone) {
    NEED_PYTHON();
    network_attacks(without_seccomp, VERDICT_RUNTIME_ERROR); /* ENETUNREACH / no resolver */
}

Test(sandbox_layers, seccomp_alone) {
    NEED_PYTHON();
    network_attacks(without_netns, VERDICT_SYSCALL_DENIED);
    sandbox_result r = attack("python", without_netns, "import ctypes\nctypes.CDLL(None).ptrace(0, 0, 0, 0)\n",
                              VERDICT_SYSCALL_DENIED, NULL);
    sandbox_result_free(&r);
}

Test(sandbox_layers, ids_alone_without_mount_namespace) {
    NEED_PYTHON();
    if (geteuid() != 0) cr_skip("not root: the sandbox runs as the trainer's own uid, so only the mount namespace "
                                "keeps it from the trainer's files");
    char outside[64], code[1024];
    snprintf(outside, sizeof outside, "/tmp/pt-sbx-outside-XXXXXX");
    cr_assert(mkdtemp(outside));
    cr_assert_eq(chmod(outside, 0755), 0); /* root's, not writable by the sandbox uid */
    snprintf(code, sizeof code, "open('%s/pwned', 'w').write('x')\n", outside);
    sandbox_result r = attack("python", without_mountns, code, VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "PermissionError"), "%s", r.err);
    sandbox_result_free(&r);
    r = attack("python", without_mountns, "print(open('/etc/shadow').read())\n", VERDICT_RUNTIME_ERROR, NULL);
    cr_assert(strstr(r.err, "PermissionError"), "%s", r.err);
    sandbox_result_free(&r);
    /* the code writes into the host run directory and plants symlinks there: the removal after
     * the run deletes the links, not what they point to */
    char canary[128];
    snprintf(canary, sizeof canary, "%s/canary.txt", outside);
    FILE *f = fopen(canary, "w");
    cr_assert(f);
    fclose(f);
    snprintf(code, sizeof code,
             "import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\nos.symlink('%s', 'to_dir')\n"
             "os.symlink('%s', 'a/to_file')\nos.chmod('a', 0)\n",
             outside, canary);
    r = attack("python", without_mountns, code, VERDICT_OK, NULL);
    sandbox_result_free(&r);
    struct stat st;
    cr_assert_eq(stat(canary, &st), 0, "the removal followed a planted symlink");
    unlink(canary);
    expect_empty_dir(outside);
    rmdir(outside);
}

Test(sandbox_layers, process_group_alone_without_pid_namespace) {
    NEED_PYTHON();
    char tag[48], code[512];
    random_tag(tag, sizeof tag, "pt-orphan-");
    /* an orphan that stays in the group (no setsid) is killed with the group */
    snprintf(code, sizeof code,
             "import os\nif os.fork() == 0:\n    if os.fork() == 0:\n"
             "        os.execv('/bin/sh', ['/bin/sh', '-c', 'sleep 30; :', '%s'])\n    os._exit(0)\nos.wait()\n",
             tag);
    sandbox_result r = attack("python", without_pidns, code, VERDICT_OK, tag);
    sandbox_result_free(&r);
    r = attack("python", without_pidns, "while True:\n    pass\n", VERDICT_TIME_LIMIT, NULL);
    sandbox_result_free(&r);
}

/* ---- the `unittest` reward ------------------------------------------------------------------ */

static reward *make_reward(const char *json) {
    reward *r = NULL;
    pt_error err = {0};
    pt_status st = reward_create_json(&r, json, NULL, &err);
    if (st == PT_ERR_UNSUPPORTED) cr_skip("this machine cannot run the sandbox: %s", err.msg);
    cr_assert_eq(st, PT_OK, "%s\n%s", json, err.msg);
    return r;
}

static void score(reward *r, reward_result *out, const reward_item *items, int n) {
    pt_error err = {0};
    cr_assert_eq(reward_score(r, out, items, n, &err), PT_OK, "%s", err.msg);
}

#define EXPECT_SCORE(res, want)                                                                                    \
    do {                                                                                                           \
        cr_assert_eq((res).status, REWARD_OK, "status %d (%s), expected a score", (int)(res).status, (res).reason); \
        cr_assert_float_eq((res).score, (want), 1e-12, "score %g, expected %g", (res).score, (double)(want));       \
        cr_assert_str_empty((res).reason);                                                                         \
    } while (0)

Test(reward_unittest, python_asserts_fraction_and_all) {
    NEED_PYTHON();
    host_state h;
    host_begin(&h);
    char json[512];
    snprintf(json, sizeof json, "{\"type\": \"unittest\", \"name\": \"code\", \"root_dir\": \"%s\"}", h.root);
    reward *r = make_reward(json);
    const char *cols = "{\"tests\": [\"assert add(1, 2) == 3\", \"assert add(0, 0) == 0\", \"assert add(2, 2) == 5\"]}";
    reward_item items[] = {
        {.completion = "Sure:\n```python\ndef add(a, b):\n    return a - b\n```\nFixed:\n```python\ndef add(a, b):\n"
                       "    return a + b\n```\n",
         .columns = cols},
        {.completion = "```python\ndef add(a, b):\n    return a - b\n```", .columns = cols},
        {.completion = "I cannot write code today.", .columns = cols},
        {.completion = "```python\nimport sys\ndef add(a, b):\n    return a + b\nsys.exit(0)\n```", .columns = cols},
        {.completion = "```python\nwhile True:\n    pass\n```", .columns = cols},
        {.completion = "```python\ndef add(a, b): return a + b\n```", .columns = "{\"answer\": 3}"},
        {.completion = "```python\ndef add(a, b): return a + b\n```", .columns = "{\"tests\": []}"},
        {.completion = "```python\ndef add(a, b): return a + b\n```", .columns = "{\"tests\": [1, 2]}"},
        {.completion = "```python\ndef add(a, b): return a + b\n```",
         .columns = "{\"tests\": \"assert add(1, 1) == 2\\nassert add(1, 2) == 3\"}"},
        {.completion = "```python\ndef add(a, b): return a + b\n```", .columns = "not json"},
    };
    enum { N = sizeof items / sizeof items[0] };
    reward_result out[N];
    score(r, out, items, N);
    EXPECT_SCORE(out[0], 2.0 / 3.0);   /* the last block is the fixed one: 2 of 3 */
    EXPECT_SCORE(out[1], 1.0 / 3.0);   /* add(0, 0) == 0 still passes with a - b */
    EXPECT_SCORE(out[2], 0.0);         /* no code: the policy's fault, a real 0 */
    EXPECT_SCORE(out[3], 0.0);         /* exit(0) before the asserts */
    EXPECT_SCORE(out[4], 0.0);         /* time limit */
    cr_assert_eq(out[5].status, REWARD_MASKED);
    cr_assert(strstr(out[5].reason, "column 'tests' is missing"), "%s", out[5].reason);
    cr_assert_eq(out[6].status, REWARD_MASKED);
    cr_assert_eq(out[7].status, REWARD_MASKED);
    EXPECT_SCORE(out[8], 1.0);         /* test code as one string */
    cr_assert_eq(out[9].status, REWARD_MASKED);
    reward_free(r);
    snprintf(json, sizeof json,
             "{\"type\": \"unittest\", \"scoring\": \"all\", \"block\": \"first\", \"root_dir\": \"%s\"}", h.root);
    r = make_reward(json);
    score(r, out, items, 2);
    EXPECT_SCORE(out[0], 0.0); /* the first block (a - b) passes 1 of 3: all-or-nothing gives 0 */
    EXPECT_SCORE(out[1], 0.0);
    reward_item good = {.completion = "```py\ndef add(a, b):\n    return a + b\n```", .columns = cols};
    const char *two = "{\"tests\": [\"assert add(1, 2) == 3\", \"assert add(0, 0) == 0\"]}";
    good.columns = two;
    score(r, out, &good, 1);
    EXPECT_SCORE(out[0], 1.0);
    reward_free(r);
    host_end(&h, NULL, NULL);
}

Test(reward_unittest, stdin_stdout_pairs) {
    host_state h;
    host_begin(&h);
    char json[512];
    snprintf(json, sizeof json, "{\"type\": \"unittest\", \"language\": \"sh\", \"root_dir\": \"%s\", \"workers\": 2}",
             h.root);
    reward *r = make_reward(json);
    const char *pairs = "{\"tests\": [{\"input\": \"1 2\\n\", \"output\": \"3\\n\"}, {\"input\": \"5 5\\n\", "
                        "\"output\": \"10\"}, {\"input\": \"2 2\\n\", \"output\": \"5\\n\"}]}";
    const char *apps = "{\"tests\": \"{\\\"inputs\\\": [\\\"2 2\\\\n\\\", \\\"1 1\\\\n\\\"], "
                       "\\\"outputs\\\": [\\\"4\\\\n\\\", \\\"2\\\\n\\\"]}\"}";
    reward_item items[] = {
        {.completion = "```sh\nread a b\necho $((a + b))\n```", .columns = pairs},
        {.completion = "```bash\nread a b\necho $((a + b))\n```", .columns = apps},
        {.completion = "```sh\nread a b\necho $((a * b))\n```", .columns = apps},
        {.completion = "```sh\nexit 1\n```", .columns = pairs},
        {.completion = "```sh\ntrue\n```", .columns = "{\"tests\": [\"true\\nfalse\"]}"},
    };
    reward_result out[5];
    score(r, out, items, 5);
    EXPECT_SCORE(out[0], 2.0 / 3.0);
    EXPECT_SCORE(out[1], 1.0);
    EXPECT_SCORE(out[2], 0.5); /* 2*2 = 4 passes, 1*1 = 1 does not */
    EXPECT_SCORE(out[3], 0.0);
    cr_assert_eq(out[4].status, REWARD_MASKED, "an sh test with a newline is the dataset's problem");
    cr_assert(strstr(out[4].reason, "line break"), "%s", out[4].reason);
    reward_free(r);
    host_end(&h, NULL, NULL);
}

Test(reward_unittest, infra_error_is_never_a_zero) {
    host_state h;
    host_begin(&h);
    char root[96], json[512];
    snprintf(root, sizeof root, "%s/gone", h.root);
    cr_assert_eq(mkdir(root, 0755), 0);
    snprintf(json, sizeof json, "{\"type\": \"unittest\", \"language\": \"sh\", \"root_dir\": \"%s\"}", root);
    reward *r = make_reward(json);
    cr_assert_eq(rmdir(root), 0); /* every run now fails to make its directory */
    reward_item item = {.completion = "```sh\necho 3\n```",
                        .columns = "{\"tests\": [{\"input\": \"\", \"output\": \"3\"}]}"};
    reward_result out;
    score(r, &out, &item, 1);
    cr_assert_eq(out.status, REWARD_ERROR, "status %d (%s)", (int)out.status, out.reason);
    cr_assert(strstr(out.reason, "INFRA_ERROR"), "%s", out.reason);
    reward_free(r);
    host_end(&h, NULL, NULL);
}

Test(reward_unittest, config_errors) {
    reward *r = NULL;
    pt_error err = {0};
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"unittest\", \"langauge\": \"sh\"}", NULL, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "language"), "%s", err.msg);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"unittest\", \"language\": \"sh\", \"block\": \"middle\"}", NULL,
                                    &err),
                 PT_ERR_CONFIG);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"unittest\", \"language\": \"sh\", \"scoring\": 1}", NULL, &err),
                 PT_ERR_CONFIG);
    cr_assert_eq(reward_create_json(&r, "{\"type\": \"unittest\", \"language\": \"cobol\"}", NULL, &err),
                 PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "interpreter"), "%s", err.msg);
    cr_assert_eq(
        reward_create_json(&r, "{\"type\": \"unittest\", \"language\": \"sh\", \"ro_paths\": \"/usr\"}", NULL, &err),
        PT_ERR_CONFIG);
    /* ro_paths without the shell's directories: the start-up self-test fails, naming the fix */
    pt_status st = reward_create_json(
        &r, "{\"type\": \"unittest\", \"language\": \"sh\", \"ro_paths\": [\"/etc/localtime\"]}", NULL, &err);
    if (st == PT_ERR_UNSUPPORTED) cr_skip("this machine cannot run the sandbox: %s", err.msg);
    cr_assert_eq(st, PT_ERR_BACKEND, "%s", err.msg);
    cr_assert(strstr(err.msg, "ro_paths"), "%s", err.msg);
    cr_assert_null(r);
}

Test(sandbox_layers, root_without_user_namespace) {
    NEED_PYTHON();
    if (geteuid() != 0) cr_skip("not root: without a user namespace no other namespace can be made");
    /* the trainer is root: the program runs as host uid 65534 with no capabilities */
    sandbox_result r = attack("python", without_userns,
                              "import os\nprint(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
                              "print(open('/proc/self/status').read())\n",
                              VERDICT_OK, NULL);
    cr_assert(strncmp(r.out, "65534 65534 65534 []", 20) == 0, "%s", r.out);
    cr_assert(strstr(r.out, "CapEff:\t0000000000000000"), "%s", r.out);
    sandbox_result_free(&r);
    char tag[48], code[512];
    random_tag(tag, sizeof tag, "pt-daemon-");
    snprintf(code, sizeof code,
             "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
             "        os.execv('/bin/sh', ['/bin/sh', '-c', 'sleep 30; :', '%s'])\n    os._exit(0)\nos.wait()\n",
             tag);
    r = attack("python", without_userns, code, VERDICT_OK, tag);
    sandbox_result_free(&r);
    r = attack("python", without_userns, "open('/usr/pwned', 'w')\n", VERDICT_RUNTIME_ERROR, NULL);
    sandbox_result_free(&r);
    network_attacks(without_userns, VERDICT_SYSCALL_DENIED);
}
