/* sandbox_child.c — the child side of one sandbox run, from the raw clone to execve.
 *
 * The clone made this process pid 1 of fresh user/PID/net/mount/IPC/UTS namespaces (those in
 * sp->layers). It is a copy of a possibly multi-threaded trainer, so until execve it only makes
 * system calls: no malloc, no stdio, and the raw setres[ug]id syscalls (glibc's wrappers would
 * try to signal the trainer's other threads, which do not exist here, and hang).
 *
 * As init it does, in order (each failure is reported as a setup step on the status pipe):
 *   1. keep only its own descriptors, moved above 63 (everything inherited is closed);
 *   2. wait for the trainer to write the uid/gid maps, then become uid/gid 1000 (the only mapped
 *      id) keeping its capabilities in the new user namespace for the mounts below;
 *   3. new session and process group; parent-death signal SIGKILL once the ids are final (a
 *      credential change clears it), so a trainer that dies takes its runs with it;
 *   4. the private root on the run directory: tmpfs, read-only binds of sb->mounts, /proc, /dev
 *      nodes, a size-limited tmpfs at /sandbox bound again at /tmp; pivot_root into it and
 *      remount it read-only ("/proc" is best effort: a kernel that refuses a fresh procfs, as
 *      some container runtimes do, leaves /proc empty, which only hides information);
 *   5. hostname "sandbox"; the code file written into /sandbox from its memfd;
 *   6. the trainer's argv/environ strings wiped in this copy (/proc/1/cmdline would show them),
 *      all capabilities dropped, not dumpable (so the program cannot read init's memory through
 *      /proc/1/mem or /proc/1/environ), no_new_privs;
 *   7. fork the program (pid 2): stdio and fds 3/4 in place, rlimits, seccomp, execve;
 *   8. reap every process until pid 2 ends, report its wait status and rusage, and exit — which
 *      makes the kernel kill whatever is left in the PID namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rewards/sandbox_impl.h"

enum { FD_STDIN, FD_STDOUT, FD_STDERR, FD_PAYLOAD, FD_RESULT, FD_CODE, FD_STATUS, FD_SYNC, FD_COUNT };

_Noreturn static void fail(int status_fd, int step, int error) {
    sandbox_report r = {.kind = REPORT_SETUP_FAILED, .step = step, .error = error};
    ssize_t w = write(status_fd, &r, sizeof r);
    (void)w;
    _exit(127);
}

#define CHECK(expr, step)                                                                                          \
    do {                                                                                                           \
        if ((expr) < 0) fail(fd[FD_STATUS], (step), errno);                                                        \
    } while (0)

/* Closes every descriptor in [lo, hi]. */
static void close_between(unsigned lo, unsigned hi, long close_max) {
    if (lo > hi) return;
    if (close_range(lo, hi, 0) == 0) return;
    long top = hi < (unsigned long)close_max ? (long)hi : close_max;
    for (long f = lo; f <= top; f++) close((int)f);
}

/* Moves the wanted descriptors above 63 (close-on-exec) and closes everything else. */
static int keep_only(int fd[FD_COUNT], long close_max) {
    int sorted[FD_COUNT], n = 0;
    for (int k = 0; k < FD_COUNT; k++) {
        if (fd[k] < 0) continue;
        int moved = fcntl(fd[k], F_DUPFD_CLOEXEC, 64);
        if (moved < 0) return -1;
        fd[k] = moved;
        int i = n++;
        while (i > 0 && sorted[i - 1] > moved) sorted[i] = sorted[i - 1], i--;
        sorted[i] = moved;
    }
    unsigned lo = 0;
    for (int i = 0; i < n; i++) {
        if (sorted[i] > 0) close_between(lo, (unsigned)sorted[i] - 1, close_max);
        lo = (unsigned)sorted[i] + 1;
    }
    close_between(lo, ~0u, close_max);
    return 0;
}

/* Capabilities: all = effective := permitted; otherwise everything cleared. */
static int caps_set(int all) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (all) {
        if (syscall(SYS_capget, &hdr, data) != 0) return -1;
        for (int i = 0; i < 2; i++) data[i].effective = data[i].permitted;
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

/* mkdir -p of the parent directories of rel (a relative path), mode 0755. */
static int mkdir_parents(const char *rel) {
    char buf[4096];
    size_t n = strlen(rel);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, rel, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        buf[i] = '/';
    }
    return 0;
}

static int make_file(const char *rel, mode_t mode) {
    int f = open(rel, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
    if (f < 0) return -1;
    close(f);
    return 0;
}

static int bind_readonly(const char *src, const char *dst, unsigned long keep) {
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) return -1;
    return mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | keep, NULL);
}

/* Step 4: the private root, ending with cwd = /sandbox. */
static void build_root(const sandbox_spawn *sp, int fd[FD_COUNT]) {
    const sandbox *sb = sp->sb;
    CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), STEP_MOUNT_PRIVATE);
    CHECK(mount("tmpfs", sp->run_dir, "tmpfs", MS_NOSUID | MS_NODEV, sb->root_opts), STEP_MOUNT_ROOT);
    CHECK(chdir(sp->run_dir), STEP_MOUNT_ROOT);
    for (int i = 0; i < sb->n_mounts; i++) {
        const sandbox_mount *m = &sb->mounts[i];
        const char *rel = m->path + 1;
        CHECK(mkdir_parents(rel), STEP_MOUNT_BIND);
        if (m->kind == MOUNT_KIND_SYMLINK) {
            CHECK(symlink(m->link, rel), STEP_MOUNT_BIND);
            continue;
        }
        if (m->kind == MOUNT_KIND_DIR) CHECK(mkdir(rel, 0755), STEP_MOUNT_BIND);
        else CHECK(make_file(rel, 0644), STEP_MOUNT_BIND);
        CHECK(bind_readonly(m->path, rel, m->flags), STEP_MOUNT_BIND);
    }
    CHECK(mkdir("proc", 0555), STEP_MOUNT_PROC);
    (void)mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL); /* best effort */
    static const char *const DEVS[] = {"null", "zero", "full", "random", "urandom"};
    CHECK(mkdir("dev", 0755), STEP_MOUNT_DEV);
    for (size_t i = 0; i < sizeof DEVS / sizeof DEVS[0]; i++) {
        char rel[32] = "dev/", host[32] = "/dev/";
        memcpy(rel + 4, DEVS[i], strlen(DEVS[i]) + 1);
        memcpy(host + 5, DEVS[i], strlen(DEVS[i]) + 1);
        CHECK(make_file(rel, 0666), STEP_MOUNT_DEV);
        CHECK(mount(host, rel, NULL, MS_BIND, NULL), STEP_MOUNT_DEV);
    }
    CHECK(symlink("/proc/self/fd", "dev/fd"), STEP_MOUNT_DEV);
    CHECK(symlink("/proc/self/fd/0", "dev/stdin"), STEP_MOUNT_DEV);
    CHECK(symlink("/proc/self/fd/1", "dev/stdout"), STEP_MOUNT_DEV);
    CHECK(symlink("/proc/self/fd/2", "dev/stderr"), STEP_MOUNT_DEV);
    CHECK(mkdir("sandbox", 0755), STEP_MOUNT_WORK);
    CHECK(mount("tmpfs", "sandbox", "tmpfs", MS_NOSUID | MS_NODEV, sb->work_opts), STEP_MOUNT_WORK);
    CHECK(mkdir("tmp", 0755), STEP_MOUNT_WORK);
    CHECK(mount("sandbox", "tmp", NULL, MS_BIND, NULL), STEP_MOUNT_WORK);
    CHECK(syscall(SYS_pivot_root, ".", "."), STEP_PIVOT);
    CHECK(umount2(".", MNT_DETACH), STEP_PIVOT); /* the old root, stacked under the new one */
    CHECK(chdir("/"), STEP_PIVOT);
    CHECK(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL), STEP_PIVOT);
    CHECK(chdir("/sandbox"), STEP_CHDIR);
}

/* Step 5: the code file, copied from its memfd. */
static void write_code(const sandbox_spawn *sp, int fd[FD_COUNT]) {
    int out = open(sp->sb->code_file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    CHECK(out, STEP_CODE_FILE);
    char buf[8192];
    for (;;) {
        ssize_t r = read(fd[FD_CODE], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        CHECK(r, STEP_CODE_FILE);
        if (r == 0) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            CHECK(w, STEP_CODE_FILE);
            off += w;
        }
    }
    close(out);
    close(fd[FD_CODE]);
    fd[FD_CODE] = -1;
}

static int set_limit(int resource, rlim_t soft, rlim_t hard) {
    struct rlimit rl = {soft, hard};
    return setrlimit(resource, &rl);
}

/* Step 7, in pid 2: never returns. */
_Noreturn static void start_program(const sandbox_spawn *sp, int fd[FD_COUNT]) {
    const sandbox_config *c = &sp->sb->cfg;
    CHECK(dup2(fd[FD_STDIN], 0), STEP_FDS);
    CHECK(dup2(fd[FD_STDOUT], 1), STEP_FDS);
    CHECK(dup2(fd[FD_STDERR], 2), STEP_FDS);
    if (fd[FD_PAYLOAD] >= 0) CHECK(dup2(fd[FD_PAYLOAD], SANDBOX_FD_PAYLOAD), STEP_FDS);
    if (fd[FD_RESULT] >= 0) CHECK(dup2(fd[FD_RESULT], SANDBOX_FD_RESULT), STEP_FDS);
    rlim_t cpu = (rlim_t)(c->cpu_seconds + 0.999);
    if (cpu < 1) cpu = 1;
    CHECK(set_limit(RLIMIT_CPU, cpu, cpu + 1), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_AS, c->memory_bytes, c->memory_bytes), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_FSIZE, c->file_bytes, c->file_bytes), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_NOFILE, (rlim_t)c->max_open_files, (rlim_t)c->max_open_files), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_NPROC, (rlim_t)c->max_processes, (rlim_t)c->max_processes), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_CORE, 0, 0), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_MEMLOCK, 0, 0), STEP_RLIMIT);
    CHECK(set_limit(RLIMIT_MSGQUEUE, 0, 0), STEP_RLIMIT);
    if (sp->layers & SANDBOX_LAYER_SECCOMP) {
        struct sock_fprog prog = {sp->sb->filter_len, sp->sb->filter};
        CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0), STEP_SECCOMP);
    }
    execve(sp->argv[0], sp->argv, sp->sb->envp);
    fail(fd[FD_STATUS], STEP_EXEC, errno);
}

_Noreturn void sandbox_child_main(const sandbox_spawn *sp) {
    const sandbox *sb = sp->sb;
    int fd[FD_COUNT] = {sp->fd_stdin, sp->fd_stdout, sp->fd_stderr, sp->fd_payload,
                        sp->fd_result, sp->fd_code,  sp->fd_status, sp->fd_sync};
    if (keep_only(fd, sp->close_max) != 0) _exit(126); /* no status fd we could trust yet */
    char go = 0;
    ssize_t r;
    do r = read(fd[FD_SYNC], &go, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1 || go != 'G') fail(fd[FD_STATUS], STEP_SYNC, r < 0 ? errno : EPIPE);
    close(fd[FD_SYNC]);
    fd[FD_SYNC] = -1;
    CHECK(setsid(), STEP_SETSID);

    bool userns = (sp->layers & SANDBOX_LAYER_USER) != 0;
    if (userns) {
        CHECK(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS, 0, 0, 0), STEP_IDS);
        CHECK(syscall(SYS_setresgid, SANDBOX_INSIDE_ID, SANDBOX_INSIDE_ID, SANDBOX_INSIDE_ID), STEP_IDS);
        CHECK(syscall(SYS_setresuid, SANDBOX_INSIDE_ID, SANDBOX_INSIDE_ID, SANDBOX_INSIDE_ID), STEP_IDS);
        CHECK(caps_set(1), STEP_CAPS);
    }
    if (sp->layers & SANDBOX_LAYER_MOUNT) build_root(sp, fd);
    else CHECK(chdir(sp->run_dir), STEP_CHDIR);
    if (sp->layers & SANDBOX_LAYER_UTS) CHECK(sethostname("sandbox", 7), STEP_HOSTNAME);
    if (!userns && geteuid() == 0) {
        CHECK(syscall(SYS_setgroups, 0, NULL), STEP_IDS);
        CHECK(syscall(SYS_setresgid, sb->cfg.gid, sb->cfg.gid, sb->cfg.gid), STEP_IDS);
        CHECK(syscall(SYS_setresuid, sb->cfg.uid, sb->cfg.uid, sb->cfg.uid), STEP_IDS);
    }
    /* the parent-death signal: set after the last credential change, which would clear it; a
     * trainer that died before this shows as an error on the status pipe's write end */
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), STEP_SETSID);
    struct pollfd alive = {fd[FD_STATUS], POLLOUT, 0};
    if (poll(&alive, 1, 0) == 1 && (alive.revents & POLLERR)) _exit(125);
    write_code(sp, fd);
    /* this process is a copy of the trainer: wipe its argv/environ strings (our copy only) */
    if (sb->arg_end > sb->arg_start) memset((void *)sb->arg_start, 0, sb->arg_end - sb->arg_start);
    if (sb->env_end > sb->env_start) memset((void *)sb->env_start, 0, sb->env_end - sb->env_start);
    (void)prctl(PR_SET_NAME, "pt-sandbox-init", 0, 0, 0);
    CHECK(caps_set(0), STEP_CAPS);
    CHECK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), STEP_CAPS);
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_CAPS);
    if (!(sp->layers & SANDBOX_LAYER_PID)) (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    CHECK(child, STEP_FORK);
    if (child == 0) start_program(sp, fd);
    for (int k = 0; k < FD_COUNT; k++)
        if (k != FD_STATUS && fd[k] >= 0) close(fd[k]);

    for (;;) {
        int ws = 0;
        struct rusage ru;
        pid_t p = wait4(-1, &ws, 0, &ru);
        if (p < 0 && errno == EINTR) continue;
        if (p < 0) fail(fd[FD_STATUS], STEP_WAIT, errno);
        if (p != child) continue; /* an orphan: reaped, nothing to report */
        sandbox_report rep = {.kind = REPORT_EXITED, .wstatus = ws, .max_rss_kb = ru.ru_maxrss};
        rep.cpu_us = (long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
                     ru.ru_stime.tv_usec;
        ssize_t w = write(fd[FD_STATUS], &rep, sizeof rep);
        (void)w;
        _exit(0);
    }
}
