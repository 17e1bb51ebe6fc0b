/* sandbox_run.c — the trainer side of one sandbox run: prepare, clone, feed the uid map, watch
 * the pipes against the deadline and the output caps, kill and reap, classify.
 *
 * Order of events: memfds (code, stdin, payload) and pipes (stdout, stderr, marker, status) are
 * made close-on-exec; the per-run directory is created; a raw clone(SIGCHLD | CLONE_NEW*)
 * starts the child (sandbox_child.c), which waits on a socketpair until the trainer has written
 * its uid/gid maps (a socket, so a dead child gives EPIPE and never SIGPIPE). The trainer then
 * polls stdout, stderr, the marker pipe and the status pipe until all four are closed — the
 * status pipe closes when the run's init exits, and with a PID namespace that exit kills every
 * process of the run, so the other pipes follow at once. The wall deadline or an output cap ends
 * the poll early. In every case the trainer then sends SIGKILL to the run's process group and to
 * its init (still unreaped, so neither id can have been reused) and reaps the init.
 *
 * Classification, first rule that applies:
 *   1. a set-up failure reported by the child, or a child that died without a report → INFRA_ERROR
 *   2. an output cap exceeded → OUTPUT_LIMIT;  the wall deadline → TIME_LIMIT
 *   3. assert mode with a valid marker → OK when every test passed, else WRONG_ANSWER
 *   4. killed by SIGSYS → SYSCALL_DENIED; SIGXCPU, or SIGKILL after using the CPU limit →
 *      TIME_LIMIT; SIGXFSZ → OUTPUT_LIMIT; any other signal → RUNTIME_ERROR (MEMORY_LIMIT when
 *      stderr shows an allocation failure)
 *   5. non-zero exit → RUNTIME_ERROR (MEMORY_LIMIT as above; OUTPUT_LIMIT when stderr shows a write
 *      that failed with EFBIG, "File too large", from a program that ignores SIGXFSZ, as Python does)
 *   6. exit 0: assert mode without a marker → RUNTIME_ERROR ("exited before the tests ran");
 *      stdin/stdout mode → OK when the output matches, else WRONG_ANSWER.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rewards/sandbox_impl.h"

static const char *const GENERIC_MEMORY_PATTERNS[] = {
    "MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory", "memory exhausted", NULL,
};

/* A file write over RLIMIT_FSIZE fails with EFBIG in programs that ignore SIGXFSZ (Python does). */
static const char *const FILE_LIMIT_PATTERNS[] = {"File too large", NULL};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct capture {
    int fd;
    char *buf;
    size_t len, alloc, cap; /* keep at most cap bytes; one more means over the cap */
    bool over;
} capture;

/* Reads what fd has; returns 0 on data, 1 on EOF, -1 on error. Marks over when len > cap. */
static int capture_read(capture *c) {
    char chunk[65536];
    ssize_t r = read(c->fd, chunk, sizeof chunk);
    if (r < 0) return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    if (r == 0) return 1;
    size_t room = c->cap + 1 - c->len; /* keep one byte past the cap to know it was crossed */
    size_t take = (size_t)r < room ? (size_t)r : room;
    if (c->len + take + 1 > c->alloc) {
        size_t na = c->alloc ? c->alloc : 4096;
        while (na < c->len + take + 1) na *= 2;
        if (na > c->cap + 2) na = c->cap + 2;
        char *nb = realloc(c->buf, na);
        if (!nb) return -1;
        c->buf = nb;
        c->alloc = na;
    }
    memcpy(c->buf + c->len, chunk, take);
    c->len += take;
    if ((size_t)r > take || c->len > c->cap) c->over = true;
    return 0;
}

static int memfd_with(const char *name, const char *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    errno = e;
    return w == (ssize_t)n ? 0 : -1;
}

static pt_status write_id_maps(pid_t pid, const sandbox *sb, char *why, size_t why_len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    if (write_file(path, "deny") != 0 && errno != ENOENT) {
        snprintf(why, why_len, "writing %s: %s", path, strerror(errno));
        return PT_ERR_BACKEND;
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (write_file(path, sb->uid_map) != 0) {
        snprintf(why, why_len, "writing %s (\"%.20s\"): %s", path, sb->uid_map, strerror(errno));
        return PT_ERR_BACKEND;
    }
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    if (write_file(path, sb->gid_map) != 0) {
        snprintf(why, why_len, "writing %s (\"%.20s\"): %s", path, sb->gid_map, strerror(errno));
        return PT_ERR_BACKEND;
    }
    return PT_OK;
}

static bool has_pattern(const char *s, size_t n, const char *const *patterns) {
    for (int i = 0; patterns[i]; i++)
        if (memmem(s, n, patterns[i], strlen(patterns[i]))) return true;
    return false;
}

static const char *signal_name(int sig) {
    const char *d = sigabbrev_np(sig);
    return d ? d : "?";
}

typedef enum run_limit { LIMIT_NONE, LIMIT_TIME, LIMIT_OUTPUT } run_limit;

typedef struct run_outcome {
    run_limit limit;
    const char *limit_stream; /* "stdout", "stderr", "the marker pipe" */
    bool reported, setup_failed;
    sandbox_report exit_rep, fail_rep;
    int init_status; /* wait status of the run's init */
    bool have_marker;
    int passed, total;
} run_outcome;

static void classify(sandbox_result *res, const sandbox *sb, const sandbox_job *job, const run_outcome *o) {
    const sandbox_config *c = &sb->cfg;
    const char *const *mem = sb->lang ? sb->lang->memory_patterns : GENERIC_MEMORY_PATTERNS;
    bool assert_mode = job->tests != NULL;
    res->exit_code = -1;
    if (o->setup_failed) {
        res->verdict = VERDICT_INFRA_ERROR;
        snprintf(res->detail, sizeof res->detail, "sandbox set-up failed at %s: %s%s",
                 sandbox_step_name(o->fail_rep.step), strerror(o->fail_rep.error),
                 o->fail_rep.step == STEP_EXEC ? " (is the interpreter under the sandbox's ro_paths?)" : "");
        return;
    }
    if (o->reported) {
        int ws = o->exit_rep.wstatus;
        res->cpu_seconds = 1e-6 * (double)o->exit_rep.cpu_us;
        res->max_rss_kb = o->exit_rep.max_rss_kb;
        if (WIFEXITED(ws)) res->exit_code = WEXITSTATUS(ws);
        if (WIFSIGNALED(ws)) res->term_signal = WTERMSIG(ws);
    }
    if (o->limit == LIMIT_OUTPUT) {
        res->verdict = VERDICT_OUTPUT_LIMIT;
        snprintf(res->detail, sizeof res->detail, "%s went over its cap", o->limit_stream);
        return;
    }
    if (o->limit == LIMIT_TIME) {
        res->verdict = VERDICT_TIME_LIMIT;
        snprintf(res->detail, sizeof res->detail, "wall-clock deadline of %.3g s", c->wall_seconds);
        return;
    }
    if (!o->reported) {
        res->verdict = VERDICT_INFRA_ERROR;
        snprintf(res->detail, sizeof res->detail, "the sandbox's init ended without a report (wait status 0x%x)",
                 (unsigned)o->init_status);
        return;
    }
    if (assert_mode && o->have_marker) {
        res->tests_passed = o->passed;
        res->verdict = o->passed == o->total ? VERDICT_OK : VERDICT_WRONG_ANSWER;
        snprintf(res->detail, sizeof res->detail, "%d/%d tests passed", o->passed, o->total);
        return;
    }
    bool alloc_failed = has_pattern(res->err ? res->err : "", res->err_len, mem);
    if (res->term_signal) {
        int sig = res->term_signal;
        /* the hard CPU limit (soft + 1 s) sends SIGKILL to a program that ignores SIGXCPU;
         * rusage counts CPU in ticks, so allow 10% below the soft limit */
        bool cpu_kill = sig == SIGKILL && res->cpu_seconds >= 0.9 * c->cpu_seconds;
        if (sig == SIGSYS) res->verdict = VERDICT_SYSCALL_DENIED;
        else if (sig == SIGXCPU || cpu_kill) res->verdict = VERDICT_TIME_LIMIT;
        else if (sig == SIGXFSZ) res->verdict = VERDICT_OUTPUT_LIMIT;
        else res->verdict = alloc_failed ? VERDICT_MEMORY_LIMIT : VERDICT_RUNTIME_ERROR;
        snprintf(res->detail, sizeof res->detail, "killed by SIG%s%s", signal_name(sig),
                 sig == SIGSYS    ? " (a system call the seccomp filter denies)"
                 : sig == SIGXFSZ ? " (file size limit)"
                 : sig == SIGXCPU || cpu_kill ? " (CPU time limit)"
                                              : "");
        return;
    }
    if (res->exit_code != 0) {
        bool file_limit = !alloc_failed && has_pattern(res->err ? res->err : "", res->err_len, FILE_LIMIT_PATTERNS);
        res->verdict = alloc_failed ? VERDICT_MEMORY_LIMIT
                       : file_limit ? VERDICT_OUTPUT_LIMIT
                                    : VERDICT_RUNTIME_ERROR;
        snprintf(res->detail, sizeof res->detail, "exit status %d%s", res->exit_code,
                 alloc_failed ? " after an allocation failure"
                 : file_limit ? " after a write over the file size limit"
                              : "");
        return;
    }
    if (assert_mode) {
        res->verdict = VERDICT_RUNTIME_ERROR;
        snprintf(res->detail, sizeof res->detail,
                 "exited with status 0 before the harness marker: the tests did not all run");
        return;
    }
    bool match = sandbox_output_matches(res->out ? res->out : "", res->out_len, job->expected_stdout,
                                        job->expected_len);
    res->tests_passed = match ? 1 : 0;
    res->verdict = match ? VERDICT_OK : VERDICT_WRONG_ANSWER;
    snprintf(res->detail, sizeof res->detail, "%s", match ? "output matches" : "output differs");
}

static void infra(sandbox_result *res, const char *what, int e) {
    res->verdict = VERDICT_INFRA_ERROR;
    snprintf(res->detail, sizeof res->detail, "%s: %s", what, strerror(e));
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Polls the four pipes until they close, the deadline passes or a cap is crossed. */
static void watch(run_outcome *o, capture caps[3], int *status_fd, double deadline, char *rep_buf, size_t *rep_len,
                  size_t rep_cap) {
    const char *names[3] = {"stdout", "stderr", "the marker pipe"};
    double grace_end = 0; /* without a PID namespace, descendants may hold pipes after init exits */
    for (;;) {
        struct pollfd pf[4];
        int map[4], n = 0;
        for (int k = 0; k < 3; k++)
            if (caps[k].fd >= 0) pf[n].fd = caps[k].fd, pf[n].events = POLLIN, map[n++] = k;
        if (*status_fd >= 0) pf[n].fd = *status_fd, pf[n].events = POLLIN, map[n++] = 3;
        if (n == 0) return;
        double t = now_s();
        double until = grace_end > 0 && grace_end < deadline ? grace_end : deadline;
        if (t >= until) {
            if (t >= deadline) o->limit = LIMIT_TIME;
            return;
        }
        int ms = (int)((until - t) * 1000.0) + 1;
        int r = poll(pf, (nfds_t)n, ms);
        if (r < 0 && errno != EINTR) return;
        for (int i = 0; i < n && r > 0; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int k = map[i];
            if (k == 3) {
                ssize_t got = read(*status_fd, rep_buf + *rep_len, rep_cap - *rep_len);
                if (got > 0) *rep_len += (size_t)got;
                else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                    close_fd(status_fd);
                    grace_end = now_s() + 0.2;
                }
                if (*rep_len == rep_cap) { /* more than two reports cannot happen; stop reading */
                    close_fd(status_fd);
                    grace_end = now_s() + 0.2;
                }
                continue;
            }
            int st = capture_read(&caps[k]);
            if (st != 0) close_fd(&caps[k].fd);
            if (caps[k].over) {
                o->limit = LIMIT_OUTPUT;
                o->limit_stream = names[k];
                return;
            }
        }
    }
}

pt_status sandbox_job_check(const sandbox *sb, const sandbox_job *job, pt_error *err) {
    PT_CHECK(job->code || job->code_len == 0, err, PT_ERR_INVALID, "sandbox job: code is NULL");
    PT_CHECK(job->tests || (job->expected_stdout || job->expected_len == 0), err, PT_ERR_INVALID,
             "sandbox job: neither tests nor an expected output");
    PT_CHECK(!job->stdin_data ? job->stdin_len == 0 : true, err, PT_ERR_INVALID, "sandbox job: stdin is NULL");
    if (!job->tests) return PT_OK;
    PT_CHECK(job->n_tests >= 0, err, PT_ERR_INVALID, "sandbox job: negative test count");
    PT_CHECK(sb->lang, err, PT_ERR_INVALID, "sandbox language '%s' has no assert harness; use stdin/stdout tests",
             sb->language);
    for (int i = 0; i < job->n_tests; i++) {
        PT_CHECK(job->tests[i], err, PT_ERR_INVALID, "test %d is NULL", i);
        if (sb->lang->payload == PAYLOAD_LINES && strpbrk(job->tests[i], "\r\n"))
            PT_FAIL(err, PT_ERR_INVALID, "test %d holds a line break; %s tests are one command per line", i,
                    sb->lang->name);
    }
    return PT_OK;
}

pt_status sandbox_run_once(sandbox_result *res, const sandbox *sb, const sandbox_job *job, pt_error *err) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->tests_total = job->tests ? job->n_tests : 1;
    PT_TRY(sandbox_job_check(sb, job, err));
    bool assert_mode = job->tests != NULL;

    /* the nonce: 128 bits from the kernel, never on disk, argv or environment */
    unsigned char raw[16];
    char nonce[33];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        infra(res, "getrandom", errno);
        return PT_OK;
    }
    for (int i = 0; i < 16; i++) snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
    char *payload = NULL;
    size_t payload_len = 0;
    if (assert_mode)
        PT_TRY(sandbox_payload_build(&payload, &payload_len, sb->lang->payload, nonce, job->tests, job->n_tests, err));

    /* argv: interpreter words, then "-c harness" or the code file */
    size_t argc = (size_t)sb->interp_argc + 3;
    char **argv = calloc(argc, sizeof *argv);
    if (!argv) {
        free(payload);
        PT_CHECK_ALLOC(argv, err, argc * sizeof *argv);
    }
    int a = 0;
    for (int i = 0; i < sb->interp_argc; i++) argv[a++] = sb->interp_argv[i];
    if (assert_mode) argv[a++] = "-c", argv[a++] = (char *)sb->lang->harness;
    else argv[a++] = (char *)sb->code_file;

    int fd_code = -1, fd_stdin = -1, fd_payload = -1, out[2] = {-1, -1}, errp[2] = {-1, -1}, mark[2] = {-1, -1},
        statp[2] = {-1, -1}, sync[2] = {-1, -1};
    char *run_dir = NULL;
    capture caps[3] = {{.fd = -1, .cap = sb->cfg.stdout_bytes},
                       {.fd = -1, .cap = sb->cfg.stderr_bytes},
                       {.fd = -1, .cap = SANDBOX_MARKER_CAP}};
    pt_status st = PT_OK;
    pid_t pid = -1;
    run_outcome o = {0};

    if ((fd_code = memfd_with("pt-sandbox-code", job->code ? job->code : "", job->code_len)) < 0 ||
        (fd_stdin = memfd_with("pt-sandbox-stdin", job->stdin_data ? job->stdin_data : "", job->stdin_len)) < 0 ||
        (assert_mode && (fd_payload = memfd_with("pt-sandbox-payload", payload, payload_len)) < 0)) {
        infra(res, "memfd for the run", errno);
        goto done;
    }
    if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || (assert_mode && pipe2(mark, O_CLOEXEC)) ||
        pipe2(statp, O_CLOEXEC) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync)) {
        infra(res, "pipes for the run", errno);
        goto done;
    }
    pt_error derr = {0};
    if (sandbox_run_dir_create(&run_dir, sb->root_dir, geteuid() == 0, sb->cfg.uid, sb->cfg.gid, &derr) != PT_OK) {
        res->verdict = VERDICT_INFRA_ERROR;
        snprintf(res->detail, sizeof res->detail, "%.250s", derr.msg);
        goto done;
    }

    sandbox_spawn sp = {
        .sb = sb, .run_dir = run_dir, .argv = argv, .layers = sb->used,
        .fd_stdin = fd_stdin, .fd_stdout = out[1], .fd_stderr = errp[1], .fd_result = mark[1],
        .fd_payload = fd_payload, .fd_code = fd_code, .fd_status = statp[1], .fd_sync = sync[1],
        .close_max = sysconf(_SC_OPEN_MAX) > 0 ? sysconf(_SC_OPEN_MAX) : 65536,
    };
    unsigned long flags = SIGCHLD;
    if (sb->used & SANDBOX_LAYER_USER) flags |= CLONE_NEWUSER;
    if (sb->used & SANDBOX_LAYER_PID) flags |= CLONE_NEWPID;
    if (sb->used & SANDBOX_LAYER_NET) flags |= CLONE_NEWNET;
    if (sb->used & SANDBOX_LAYER_MOUNT) flags |= CLONE_NEWNS;
    if (sb->used & SANDBOX_LAYER_IPC) flags |= CLONE_NEWIPC;
    if (sb->used & SANDBOX_LAYER_UTS) flags |= CLONE_NEWUTS;
    double t0 = now_s();
    long child = syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (child == 0) sandbox_child_main(&sp);
    if (child < 0) {
        infra(res, "clone of the sandbox", errno);
        goto done;
    }
    pid = (pid_t)child;
    res->pgid = pid;
    close_fd(&out[1]), close_fd(&errp[1]), close_fd(&mark[1]), close_fd(&statp[1]), close_fd(&sync[1]);
    close_fd(&fd_code), close_fd(&fd_stdin), close_fd(&fd_payload);

    char why[200] = "";
    if ((sb->used & SANDBOX_LAYER_USER) && write_id_maps(pid, sb, why, sizeof why) != PT_OK) {
        close_fd(&sync[0]); /* the child sees EOF and reports STEP_SYNC */
        res->verdict = VERDICT_INFRA_ERROR;
        snprintf(res->detail, sizeof res->detail, "uid map: %s", why);
    } else {
        char nspath[64];
        struct stat ns;
        snprintf(nspath, sizeof nspath, "/proc/%d/ns/pid", (int)pid);
        if ((sb->used & SANDBOX_LAYER_PID) && stat(nspath, &ns) == 0) res->pid_ns = (unsigned long)ns.st_ino;
        ssize_t w = send(sync[0], "G", 1, MSG_NOSIGNAL);
        (void)w; /* a child that died already shows up as a missing report */
        close_fd(&sync[0]);
        caps[0].fd = out[0], caps[1].fd = errp[0], caps[2].fd = mark[0];
        out[0] = errp[0] = mark[0] = -1;
        char rep_buf[2 * sizeof(sandbox_report)];
        size_t rep_len = 0;
        watch(&o, caps, &statp[0], t0 + sb->cfg.wall_seconds, rep_buf, &rep_len, sizeof rep_buf);
        for (size_t off = 0; off + sizeof(sandbox_report) <= rep_len; off += sizeof(sandbox_report)) {
            sandbox_report r;
            memcpy(&r, rep_buf + off, sizeof r);
            if (r.kind == REPORT_SETUP_FAILED && !o.setup_failed) o.setup_failed = true, o.fail_rep = r;
            if (r.kind == REPORT_EXITED) o.reported = true, o.exit_rep = r;
        }
    }
    kill(-pid, SIGKILL); /* the run's process group (ESRCH when already gone) */
    kill(pid, SIGKILL);  /* its init: with a PID namespace this takes every process of the run */
    while (waitpid(pid, &o.init_status, 0) < 0 && errno == EINTR) {}
    res->wall_seconds = now_s() - t0;
    /* drain what the pipes still hold (all writers are dead now), within the caps */
    for (int k = 0; k < 3; k++) {
        if (caps[k].fd < 0 || o.limit != LIMIT_NONE) continue;
        fcntl(caps[k].fd, F_SETFL, O_NONBLOCK);
        while (!caps[k].over && capture_read(&caps[k]) == 0 && caps[k].len < caps[k].cap + 1) {
            struct pollfd pf = {caps[k].fd, POLLIN, 0};
            if (poll(&pf, 1, 0) <= 0) break;
        }
        if (caps[k].over && o.limit == LIMIT_NONE) {
            o.limit = LIMIT_OUTPUT;
            o.limit_stream = k == 0 ? "stdout" : k == 1 ? "stderr" : "the marker pipe";
        }
    }
    if (res->verdict != VERDICT_INFRA_ERROR || !res->detail[0]) {
        res->out_truncated = caps[0].len > caps[0].cap;
        res->err_truncated = caps[1].len > caps[1].cap;
        if (caps[0].len > caps[0].cap) caps[0].len = caps[0].cap;
        if (caps[1].len > caps[1].cap) caps[1].len = caps[1].cap;
        if (assert_mode && caps[2].buf)
            o.have_marker = sandbox_marker_parse(&o.passed, &o.total, caps[2].buf, caps[2].len, nonce) &&
                            o.total == job->n_tests;
        res->out = caps[0].buf, res->out_len = caps[0].len;
        res->err = caps[1].buf, res->err_len = caps[1].len;
        caps[0].buf = caps[1].buf = NULL;
        classify(res, sb, job, &o);
    }

done:
    if (!res->out) res->out = calloc(1, 1), res->out_len = 0;
    if (!res->err) res->err = calloc(1, 1), res->err_len = 0;
    if (res->out) res->out[res->out_len] = '\0';
    if (res->err) res->err[res->err_len] = '\0';
    for (int k = 0; k < 3; k++) {
        close_fd(&caps[k].fd);
        free(caps[k].buf);
    }
    int *fds[] = {&fd_code, &fd_stdin, &fd_payload, &out[0], &out[1], &errp[0], &errp[1], &mark[0], &mark[1],
                  &statp[0], &statp[1], &sync[0], &sync[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close_fd(fds[i]);
    if (run_dir) {
        pt_error rerr = {0};
        if (sandbox_remove_tree(run_dir, &rerr) != PT_OK && res->verdict != VERDICT_INFRA_ERROR) {
            /* the verdict stands; a directory we could not remove is the trainer's problem to report */
            snprintf(res->detail + strlen(res->detail), sizeof res->detail - strlen(res->detail),
                     " [cleanup: %.120s]", rerr.msg);
        }
        free(run_dir);
    }
    free(argv);
    free(payload);
    return st;
}

pt_status sandbox_run(sandbox_result *res, const sandbox *sb, const sandbox_job *job, pt_error *err) {
    PT_CHECK(res && sb && job, err, PT_ERR_INVALID, "sandbox_run: NULL argument");
    PT_TRY(sandbox_run_once(res, sb, job, err));
    res->attempts = 1;
    if (res->verdict == VERDICT_INFRA_ERROR) {
        char first[sizeof res->detail];
        memcpy(first, res->detail, sizeof first);
        sandbox_result_free(res);
        PT_TRY(sandbox_run_once(res, sb, job, err));
        res->attempts = 2;
        if (res->verdict == VERDICT_INFRA_ERROR) {
            char both[sizeof res->detail];
            snprintf(both, sizeof both, "%.190s (retried; first: %.40s)", res->detail, first);
            memcpy(res->detail, both, sizeof both);
        }
    }
    return PT_OK;
}
