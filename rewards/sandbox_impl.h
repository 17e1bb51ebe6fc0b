/* sandbox_impl.h — what the sandbox's files share and nothing outside rewards/sandbox*.c uses:
 * the sandbox object, the per-run spawn description handed to the child, the child's report,
 * the language table, the seccomp builder and the per-run directory helpers.
 *
 * Invariant: everything the child needs (argv, environment, mount list, BPF program, uid maps,
 * paths) is prepared by the parent before clone, because the child of a raw clone in a
 * multi-threaded process may only make system calls (no malloc, no stdio, no glibc setxid).
 */
#ifndef POSTTRAIN_REWARDS_SANDBOX_IMPL_H
#define POSTTRAIN_REWARDS_SANDBOX_IMPL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rewards/sandbox.h"

#define SANDBOX_INSIDE_ID 1000  /* uid and gid of the program inside its user namespace */
#define SANDBOX_FD_PAYLOAD 3    /* the harness's nonce and tests (a memfd), closed by the harness */
#define SANDBOX_FD_RESULT 4     /* the harness marker pipe */
#define SANDBOX_MARKER_CAP 4096 /* bytes of fd 4 kept; more is OUTPUT_LIMIT */

typedef enum payload_format {
    PAYLOAD_LENGTHS, /* "nonce\nN\n" then per test "len\n" + bytes (python) */
    PAYLOAD_LINES,   /* "nonce\nN\n" then one test per line (sh: tests may not hold newlines) */
} payload_format;

typedef struct sandbox_language {
    const char *name;                   /* the fence tag */
    const char *aliases[4];             /* other fence tags, NULL-terminated */
    const char *interpreter;            /* default command line */
    const char *code_file;              /* written into /sandbox before the program starts */
    const char *harness;                /* script run with "-c" in assert mode; NULL: none */
    payload_format payload;
    const char *memory_patterns[6];     /* stderr text that means an allocation failed */
} sandbox_language;

/* The built-in language called name (or one of its aliases); NULL when there is none. */
const sandbox_language *sandbox_language_find(const char *name);

/* The payload read by the harness from fd 3 (malloc'd). PT_ERR_INVALID when a test cannot be
 * encoded in the language's format (a newline in an sh test). */
pt_status sandbox_payload_build(char **buf, size_t *len, payload_format fmt, const char *nonce,
                                const char *const *tests, int n_tests, pt_error *err);
/* Finds "PT <nonce> <passed> <total>\n" in what fd 4 carried; true when a line matches the nonce
 * exactly and 0 ≤ passed ≤ total. */
bool sandbox_marker_parse(int *passed, int *total, const char *buf, size_t len, const char *nonce);

typedef enum sandbox_mount_kind { MOUNT_KIND_DIR, MOUNT_KIND_FILE, MOUNT_KIND_SYMLINK } sandbox_mount_kind;

typedef struct sandbox_mount {
    char *path;          /* absolute host path; the same path inside the private root */
    sandbox_mount_kind kind;
    char *link;          /* the symlink's target (MOUNT_KIND_SYMLINK) */
    unsigned long flags; /* MS_* flags of the host mount that a read-only remount must keep */
} sandbox_mount;

struct sandbox {
    sandbox_config cfg;           /* string fields point at the copies below */
    char *language, *interpreter, *root_dir;
    const sandbox_language *lang; /* NULL for a language without a built-in harness */
    char code_file[64];           /* "main.py"; "main.<language>" for other languages */
    char **interp_argv;           /* (interp_argc + 1) the interpreter command, NULL-terminated */
    int interp_argc;
    char **ro_paths;              /* owned copy of cfg.ro_paths, NULL-terminated */
    sandbox_mount *mounts;        /* (n_mounts) what exists of ro_paths on this host */
    int n_mounts;
    unsigned available;           /* probed layers */
    unsigned used;                /* cfg.layers & available */
    char describe[256];
    char root_opts[128];          /* mount options of the private root's tmpfs */
    char work_opts[128];          /* mount options of /sandbox */
    char uid_map[64], gid_map[64];
    struct sock_filter *filter;   /* (filter_len) the seccomp program */
    unsigned short filter_len;
    char *const *envp;            /* the cleared environment (static strings) */
    unsigned long arg_start, arg_end, env_start, env_end; /* the trainer's argv/environ strings
                                                           * (/proc/self/stat), wiped in the init */
};

/* A child's report on the status pipe: one fixed-size write, so it arrives whole. */
typedef enum report_kind { REPORT_EXITED = 1, REPORT_SETUP_FAILED } report_kind;

typedef enum setup_step {
    STEP_SYNC = 1, STEP_FDS, STEP_IDS, STEP_CAPS, STEP_SETSID, STEP_MOUNT_PRIVATE, STEP_MOUNT_ROOT,
    STEP_MOUNT_BIND, STEP_MOUNT_PROC, STEP_MOUNT_DEV, STEP_MOUNT_WORK, STEP_PIVOT, STEP_HOSTNAME,
    STEP_CHDIR, STEP_CODE_FILE, STEP_FORK, STEP_RLIMIT, STEP_SECCOMP, STEP_EXEC, STEP_WAIT,
} setup_step;
const char *sandbox_step_name(int step);

typedef struct sandbox_report {
    int kind;        /* report_kind */
    int step;        /* setup_step that failed (REPORT_SETUP_FAILED) */
    int error;       /* its errno */
    int wstatus;     /* the program's wait status (REPORT_EXITED) */
    long max_rss_kb;
    long cpu_us;
} sandbox_report;

/* Everything the child of one run needs; fds are the child's ends, all O_CLOEXEC. */
typedef struct sandbox_spawn {
    const sandbox *sb;
    const char *run_dir;   /* the host directory made for this run */
    char *const *argv;     /* program argv */
    unsigned layers;       /* sb->used */
    int fd_stdin;          /* memfd holding the input (empty in assert mode) */
    int fd_stdout, fd_stderr, fd_result; /* write ends */
    int fd_payload;        /* memfd for fd 3, or -1 */
    int fd_code;           /* memfd holding the code */
    int fd_status;         /* write end of the report pipe */
    int fd_sync;           /* read end: one byte once the uid maps are written */
    long close_max;        /* highest fd to close when close_range is missing */
} sandbox_spawn;

/* The child side of a run (rewards/sandbox_child.c): sets up the layers, starts the program as
 * pid 2 of the PID namespace, reaps until it ends, reports on fd_status and exits. */
_Noreturn void sandbox_child_main(const sandbox_spawn *sp);

/* The seccomp program (rewards/sandbox_seccomp.c), malloc'd. */
pt_status sandbox_seccomp_build(struct sock_filter **prog, unsigned short *len, pt_error *err);

/* Per-run host directory: root/pt-sandbox-XXXXXX, mode 0700 (rewards/sandbox_fs.c). When the
 * trainer is root it is handed to uid:gid so a run without a mount namespace can write there. */
pt_status sandbox_run_dir_create(char **path, const char *root, bool chown_to, uid_t uid, gid_t gid, pt_error *err);

/* Runs one job once (rewards/sandbox_run.c); sandbox_run adds the retry. */
pt_status sandbox_run_once(sandbox_result *res, const sandbox *sb, const sandbox_job *job, pt_error *err);

#endif
