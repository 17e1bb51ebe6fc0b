/* sandbox.c — the sandbox object: configuration, start-up probe of the isolation layers, the
 * self-test, and the names of verdicts and set-up steps. See sandbox.h for the design.
 *
 * Probe: each namespace layer is tried alone (with a user namespace when that works, as an
 * unprivileged trainer needs one for the others) by cloning a child that exits at once; seccomp
 * by installing the real filter in a child. A layer that fails is "missing". Requested layers
 * that are missing or switched off make sandbox_init refuse unless cfg.unsafe; after that a
 * trivial program must pass through the whole sandbox (mounts, ids, exec of the interpreter),
 * so a broken host set-up is found at start-up, not as a stream of INFRA_ERRORs mid-training.
 *
 * Invariant: after sandbox_init the object is never written again, so runs may share it
 * across threads.
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rewards/sandbox_impl.h"

static const char *const DEFAULT_RO_PATHS[] = {
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    NULL,
};

static char *const ENVIRONMENT[] = {
    "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/sandbox", "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", NULL,
};

static const struct {
    unsigned layer;
    const char *name;
    int clone_flag;
} LAYERS[] = {
    {SANDBOX_LAYER_USER, "user", CLONE_NEWUSER}, {SANDBOX_LAYER_PID, "pid", CLONE_NEWPID},
    {SANDBOX_LAYER_NET, "net", CLONE_NEWNET},    {SANDBOX_LAYER_MOUNT, "mount", CLONE_NEWNS},
    {SANDBOX_LAYER_IPC, "ipc", CLONE_NEWIPC},    {SANDBOX_LAYER_UTS, "uts", CLONE_NEWUTS},
    {SANDBOX_LAYER_SECCOMP, "seccomp", 0},
};
#define N_LAYERS ((int)(sizeof LAYERS / sizeof LAYERS[0]))

void sandbox_config_default(sandbox_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->language = "python";
    cfg->cpu_seconds = 2.0;
    cfg->wall_seconds = 5.0;
    cfg->memory_bytes = (size_t)512 << 20;
    cfg->disk_bytes = (size_t)32 << 20;
    cfg->file_bytes = (size_t)16 << 20;
    cfg->max_processes = 64;
    cfg->max_open_files = 64;
    cfg->stdout_bytes = (size_t)1 << 20;
    cfg->stderr_bytes = (size_t)64 << 10;
    cfg->layers = SANDBOX_LAYERS_ALL;
    cfg->uid = 65534;
    cfg->gid = 65534;
}

const char *sandbox_verdict_name(sandbox_verdict v) {
    static const char *const NAMES[SANDBOX_VERDICT_COUNT] = {
        "OK", "WRONG_ANSWER", "RUNTIME_ERROR", "TIME_LIMIT", "MEMORY_LIMIT", "OUTPUT_LIMIT", "SYSCALL_DENIED",
        "INFRA_ERROR",
    };
    return (unsigned)v < SANDBOX_VERDICT_COUNT ? NAMES[v] : "?";
}

const char *sandbox_step_name(int step) {
    switch ((setup_step)step) {
    case STEP_SYNC: return "waiting for the uid map";
    case STEP_FDS: return "descriptors";
    case STEP_IDS: return "switching to the sandbox uid/gid";
    case STEP_CAPS: return "capabilities";
    case STEP_SETSID: return "new session";
    case STEP_MOUNT_PRIVATE: return "making mounts private";
    case STEP_MOUNT_ROOT: return "mounting the private root (tmpfs on the run directory)";
    case STEP_MOUNT_BIND: return "read-only bind of a system directory";
    case STEP_MOUNT_PROC: return "/proc";
    case STEP_MOUNT_DEV: return "/dev nodes";
    case STEP_MOUNT_WORK: return "mounting /sandbox (tmpfs)";
    case STEP_PIVOT: return "pivot_root";
    case STEP_HOSTNAME: return "hostname";
    case STEP_CHDIR: return "chdir to the work directory";
    case STEP_CODE_FILE: return "writing the code file";
    case STEP_FORK: return "starting the program";
    case STEP_RLIMIT: return "rlimits";
    case STEP_SECCOMP: return "seccomp filter";
    case STEP_EXEC: return "exec of the interpreter";
    case STEP_WAIT: return "waiting for the program";
    }
    return "unknown step";
}

void sandbox_result_free(sandbox_result *res) {
    if (!res) return;
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
    res->out_len = res->err_len = 0;
}

/* ---- probe ------------------------------------------------------------------------------- */

static bool probe_clone(int flags) {
    long pid = syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid < 0) return false;
    int ws = 0;
    while (waitpid((pid_t)pid, &ws, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static bool probe_seccomp(const sandbox *sb) {
    long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        struct sock_fprog prog = {sb->filter_len, sb->filter};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(1);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) _exit(2);
        _exit(0);
    }
    if (pid < 0) return false;
    int ws = 0;
    while (waitpid((pid_t)pid, &ws, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static unsigned probe_layers(const sandbox *sb) {
    unsigned ok = 0;
    bool user = probe_clone(CLONE_NEWUSER);
    if (user) ok |= SANDBOX_LAYER_USER;
    for (int i = 0; i < N_LAYERS; i++) {
        if (!LAYERS[i].clone_flag || LAYERS[i].layer == SANDBOX_LAYER_USER) continue;
        if (probe_clone(LAYERS[i].clone_flag | (user ? CLONE_NEWUSER : 0))) ok |= LAYERS[i].layer;
    }
    if (probe_seccomp(sb)) ok |= SANDBOX_LAYER_SECCOMP;
    return ok;
}

static void layer_list(char *buf, size_t len, unsigned mask) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_LAYERS; i++)
        if (mask & LAYERS[i].layer)
            at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? " " : "", LAYERS[i].name);
    if (at == 0) snprintf(buf, len, "none");
}

/* ---- init -------------------------------------------------------------------------------- */

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static pt_status split_command(sandbox *sb, const char *cmd, pt_error *err) {
    size_t n = strlen(cmd);
    sb->interp_argv = calloc(n / 2 + 2, sizeof *sb->interp_argv);
    PT_CHECK_ALLOC(sb->interp_argv, err, (n / 2 + 2) * sizeof *sb->interp_argv);
    const char *p = cmd;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        char *w = malloc((size_t)(p - s) + 1);
        PT_CHECK_ALLOC(w, err, (size_t)(p - s) + 1);
        memcpy(w, s, (size_t)(p - s));
        w[p - s] = '\0';
        sb->interp_argv[sb->interp_argc++] = w;
    }
    PT_CHECK(sb->interp_argc > 0, err, PT_ERR_CONFIG, "sandbox interpreter command is empty");
    PT_CHECK(sb->interp_argv[0][0] == '/', err, PT_ERR_CONFIG,
             "sandbox interpreter '%s' must be an absolute path (the sandbox has no PATH search at exec)",
             sb->interp_argv[0]);
    return PT_OK;
}

static unsigned long locked_flags(const char *path) {
    struct statvfs v;
    if (statvfs(path, &v) != 0) return 0;
    unsigned long f = 0;
    if (v.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (v.f_flag & ST_NODEV) f |= MS_NODEV;
    if (v.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (v.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (v.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (v.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static pt_status collect_mounts(sandbox *sb, const char *const *paths, pt_error *err) {
    int n = 0;
    while (paths[n]) n++;
    sb->ro_paths = calloc((size_t)n + 1, sizeof *sb->ro_paths);
    sb->mounts = calloc((size_t)n + 1, sizeof *sb->mounts);
    PT_CHECK_ALLOC(sb->ro_paths, err, ((size_t)n + 1) * sizeof *sb->ro_paths);
    PT_CHECK_ALLOC(sb->mounts, err, ((size_t)n + 1) * sizeof *sb->mounts);
    for (int i = 0; i < n; i++) {
        const char *p = paths[i];
        PT_CHECK(p[0] == '/' && p[1] && !strstr(p, "/../") && !strstr(p, "/./"), err, PT_ERR_CONFIG,
                 "sandbox ro_paths entry '%s' must be a clean absolute path", p);
        sb->ro_paths[i] = dup_str(p);
        PT_CHECK_ALLOC(sb->ro_paths[i], err, strlen(p) + 1);
        struct stat st;
        if (lstat(p, &st) != 0) continue; /* missing on this host: skipped */
        sandbox_mount *m = &sb->mounts[sb->n_mounts];
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t k = readlink(p, target, sizeof target - 1);
            if (k <= 0) continue;
            target[k] = '\0';
            m->link = dup_str(target);
            PT_CHECK_ALLOC(m->link, err, (size_t)k + 1);
            m->kind = MOUNT_KIND_SYMLINK;
        } else if (S_ISDIR(st.st_mode)) {
            m->kind = MOUNT_KIND_DIR;
        } else if (S_ISREG(st.st_mode)) {
            m->kind = MOUNT_KIND_FILE;
        } else {
            continue;
        }
        m->path = sb->ro_paths[i];
        m->flags = locked_flags(p);
        sb->n_mounts++;
    }
    return PT_OK;
}

static pt_status validate(const sandbox_config *c, pt_error *err) {
    PT_CHECK(c->cpu_seconds > 0 && c->cpu_seconds <= 3600, err, PT_ERR_CONFIG,
             "sandbox cpu_seconds must be in (0, 3600], got %g", c->cpu_seconds);
    PT_CHECK(c->wall_seconds > 0 && c->wall_seconds <= 3600, err, PT_ERR_CONFIG,
             "sandbox wall_seconds must be in (0, 3600], got %g", c->wall_seconds);
    PT_CHECK(c->memory_bytes >= ((size_t)16 << 20), err, PT_ERR_CONFIG,
             "sandbox memory must be at least 16 MiB (an interpreter needs that to start), got %zu bytes",
             c->memory_bytes);
    PT_CHECK(c->disk_bytes >= 4096 && c->file_bytes >= 4096, err, PT_ERR_CONFIG,
             "sandbox disk_bytes and file_bytes must be at least 4096");
    PT_CHECK(c->max_processes >= 2 && c->max_open_files >= 8, err, PT_ERR_CONFIG,
             "sandbox max_processes must be >= 2 and max_open_files >= 8 (got %d, %d)", c->max_processes,
             c->max_open_files);
    PT_CHECK(c->stdout_bytes >= 1 && c->stderr_bytes >= 1, err, PT_ERR_CONFIG, "sandbox output caps must be >= 1");
    PT_CHECK((c->layers & ~SANDBOX_LAYERS_ALL) == 0, err, PT_ERR_CONFIG, "sandbox layers 0x%x: unknown bits",
             c->layers);
    PT_CHECK(c->language && c->language[0] && strlen(c->language) < 32, err, PT_ERR_CONFIG,
             "sandbox language must be a short name such as \"python\"");
    for (const char *p = c->language; *p; p++)
        PT_CHECK((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                     *p == '+' || *p == '-',
                 err, PT_ERR_CONFIG, "sandbox language '%s' holds a character other than [A-Za-z0-9_+-]",
                 c->language);
    return PT_OK;
}

static pt_status self_test(const sandbox *sb, pt_error *err) {
    sandbox_job job = {0};
    const char *tests[1] = {NULL};
    if (sb->lang && strcmp(sb->lang->name, "python") == 0) {
        job.code = "def f(x):\n    return x + 1\n";
        tests[0] = "assert f(1) == 2";
    } else if (sb->lang && strcmp(sb->lang->name, "sh") == 0) {
        job.code = "f() { echo $(($1 + 1)); }\n";
        tests[0] = "[ \"$(f 1)\" = 2 ]";
    } else {
        job.code = ""; /* stdin/stdout only: an empty program prints nothing */
    }
    job.code_len = strlen(job.code);
    if (tests[0]) job.tests = tests, job.n_tests = 1;
    sandbox_result res;
    PT_TRY(sandbox_run(&res, sb, &job, err));
    if (res.verdict != VERDICT_OK) {
        char excerpt[300];
        sandbox_utf8_sanitize(excerpt, sizeof excerpt, res.err ? res.err : "", res.err_len);
        error_set(err, PT_ERR_BACKEND, __FILE__, __LINE__,
                  "sandbox self-test failed: %s (%s); stderr: %s. Check that the interpreter '%s' lies under "
                  "one of the sandbox ro_paths and that root_dir '%s' is reachable by uid %d",
                  sandbox_verdict_name(res.verdict), res.detail, excerpt[0] ? excerpt : "(empty)",
                  sb->interp_argv[0], sb->root_dir, (int)(geteuid() == 0 ? sb->cfg.uid : geteuid()));
        sandbox_result_free(&res);
        return PT_ERR_BACKEND;
    }
    sandbox_result_free(&res);
    return PT_OK;
}

/* Fields 48-51 of /proc/self/stat: where the kernel finds this process's argv and environ strings
 * (what /proc/<pid>/cmdline and /environ show). The run's init is a copy of this process and wipes
 * them, so the program cannot read the trainer's command line through /proc/1/cmdline. */
static void read_arg_env_range(sandbox *sb) {
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return;
    p += 2; /* field 3 */
    for (int field = 3; field < 48 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    unsigned long v[4];
    if (p && sscanf(p, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) == 4 && v[0] < v[1] && v[2] < v[3])
        sb->arg_start = v[0], sb->arg_end = v[1], sb->env_start = v[2], sb->env_end = v[3];
}

static pt_status init_fields(sandbox *sb, const sandbox_config *cfg, pt_error *err) {
    sb->cfg = *cfg;
    PT_TRY(validate(cfg, err));
    sb->language = dup_str(cfg->language);
    PT_CHECK_ALLOC(sb->language, err, strlen(cfg->language) + 1);
    sb->lang = sandbox_language_find(cfg->language);
    if (sb->lang) snprintf(sb->code_file, sizeof sb->code_file, "%s", sb->lang->code_file);
    else snprintf(sb->code_file, sizeof sb->code_file, "main.%s", cfg->language);
    const char *interp = cfg->interpreter ? cfg->interpreter : sb->lang ? sb->lang->interpreter : NULL;
    PT_CHECK(interp, err, PT_ERR_CONFIG,
             "sandbox language '%s' has no built-in interpreter; set \"interpreter\" to its command line",
             cfg->language);
    sb->interpreter = dup_str(interp);
    PT_CHECK_ALLOC(sb->interpreter, err, strlen(interp) + 1);
    PT_TRY(split_command(sb, sb->interpreter, err));
    PT_CHECK(access(sb->interp_argv[0], X_OK) == 0, err, PT_ERR_CONFIG,
             "sandbox interpreter '%s' is not an executable file on this machine", sb->interp_argv[0]);
    const char *root = cfg->root_dir ? cfg->root_dir : getenv("TMPDIR");
    if (!root || !root[0]) root = "/tmp";
    sb->root_dir = dup_str(root);
    PT_CHECK_ALLOC(sb->root_dir, err, strlen(root) + 1);
    struct stat st;
    PT_CHECK(stat(root, &st) == 0 && S_ISDIR(st.st_mode), err, PT_ERR_CONFIG,
             "sandbox root_dir '%s' is not a directory", root);
    PT_TRY(collect_mounts(sb, cfg->ro_paths ? cfg->ro_paths : DEFAULT_RO_PATHS, err));
    sb->cfg.language = sb->language;
    sb->cfg.interpreter = sb->interpreter;
    sb->cfg.root_dir = sb->root_dir;
    sb->cfg.ro_paths = (const char *const *)sb->ro_paths;
    sb->envp = ENVIRONMENT;
    read_arg_env_range(sb);
    PT_TRY(sandbox_seccomp_build(&sb->filter, &sb->filter_len, err));
    return PT_OK;
}

/* Ids and mount options once the layers in use are known. */
static void init_ids(sandbox *sb) {
    bool userns = sb->used & SANDBOX_LAYER_USER;
    unsigned long outside_uid = geteuid() == 0 ? (unsigned long)sb->cfg.uid : (unsigned long)geteuid();
    unsigned long outside_gid = geteuid() == 0 ? (unsigned long)sb->cfg.gid : (unsigned long)getegid();
    snprintf(sb->uid_map, sizeof sb->uid_map, "%d %lu 1\n", SANDBOX_INSIDE_ID, outside_uid);
    snprintf(sb->gid_map, sizeof sb->gid_map, "%d %lu 1\n", SANDBOX_INSIDE_ID, outside_gid);
    unsigned long owner_uid = userns ? SANDBOX_INSIDE_ID : outside_uid;
    unsigned long owner_gid = userns ? SANDBOX_INSIDE_ID : outside_gid;
    snprintf(sb->root_opts, sizeof sb->root_opts, "size=1m,nr_inodes=1024,mode=0755,uid=%lu,gid=%lu", owner_uid,
             owner_gid);
    snprintf(sb->work_opts, sizeof sb->work_opts, "size=%zu,nr_inodes=16384,mode=0700,uid=%lu,gid=%lu",
             sb->cfg.disk_bytes, owner_uid, owner_gid);
}

pt_status sandbox_init(sandbox **out, const sandbox_config *cfg, pt_error *err) {
    *out = NULL;
    sandbox *sb = calloc(1, sizeof *sb);
    PT_CHECK_ALLOC(sb, err, sizeof *sb);
    pt_status st = init_fields(sb, cfg, err);
    if (st != PT_OK) {
        sandbox_free(sb);
        return st;
    }
    sb->available = probe_layers(sb);
    sb->used = sb->cfg.layers & sb->available;
    unsigned missing = SANDBOX_LAYERS_ALL & ~sb->used;
    char have[96], miss[96];
    layer_list(have, sizeof have, sb->used);
    layer_list(miss, sizeof miss, missing);
    snprintf(sb->describe, sizeof sb->describe, "sandbox layers: %s; missing: %s%s", have, miss,
             missing ? (sb->cfg.unsafe ? " (unsafe: running without them)" : "") : "");
    if (missing && !sb->cfg.unsafe) {
        char absent[96];
        layer_list(absent, sizeof absent, SANDBOX_LAYERS_ALL & ~sb->available);
        error_set(err, PT_ERR_UNSUPPORTED, __FILE__, __LINE__,
                  "sandbox refuses to run untrusted code without every isolation layer: missing %s (not "
                  "available on this kernel: %s). Allow unprivileged user namespaces "
                  "(sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces) or run where they "
                  "work; set \"unsafe\": true only for trusted code",
                  miss, absent);
        sandbox_free(sb);
        return PT_ERR_UNSUPPORTED;
    }
    init_ids(sb);
    st = self_test(sb, err);
    if (st != PT_OK) {
        sandbox_free(sb);
        return st;
    }
    *out = sb;
    return PT_OK;
}

void sandbox_free(sandbox *sb) {
    if (!sb) return;
    free(sb->language);
    free(sb->interpreter);
    free(sb->root_dir);
    if (sb->interp_argv)
        for (int i = 0; i < sb->interp_argc; i++) free(sb->interp_argv[i]);
    free(sb->interp_argv);
    if (sb->ro_paths)
        for (int i = 0; sb->ro_paths[i]; i++) free(sb->ro_paths[i]);
    free(sb->ro_paths);
    if (sb->mounts)
        for (int i = 0; i < sb->n_mounts; i++) free(sb->mounts[i].link);
    free(sb->mounts);
    free(sb->filter);
    free(sb);
}

const char *sandbox_describe(const sandbox *sb) { return sb->describe; }
unsigned sandbox_layers_available(const sandbox *sb) { return sb->available; }
unsigned sandbox_layers_used(const sandbox *sb) { return sb->used; }
const sandbox_config *sandbox_get_config(const sandbox *sb) { return &sb->cfg; }
