/* sandbox.h — run untrusted code (Python, shell, any interpreter) against tests, isolated in
 * layers that each hold alone, and return one verdict per run.
 *
 * A run executes one program: either assert tests (the code, then each test statement, inside a
 * harness in the same interpreter) or one stdin/stdout pair (the program reads the input; its
 * stripped stdout must equal the expected output). Verdicts:
 *   OK, WRONG_ANSWER, RUNTIME_ERROR, TIME_LIMIT, MEMORY_LIMIT, OUTPUT_LIMIT, SYSCALL_DENIED,
 *   INFRA_ERROR — the last means the sandbox failed (fork, set-up), never the code; it is retried
 *   once and then left for the caller to mask: it must never be scored 0.
 *
 * Isolation, per run (each layer would stop the attacks it covers even if the others failed):
 *   process group   the run is its own session and process group; the deadline kills the group
 *                   (alone, without the PID namespace, it misses a process that calls setsid).
 *   trainer death   the run's init has the parent-death signal SIGKILL: a trainer that crashes
 *                   takes its runs with it.
 *   namespaces      new user, PID, network, mount, IPC and UTS namespaces (clone flags). The
 *                   run's init (pid 1, our code) reaps everything and, when the program ends,
 *                   exits — the kernel then kills every process left in the PID namespace
 *                   (daemons, zombies, fork bombs).
 *   user            one id, 1000 inside, maps to `uid` outside (65534 by default) when the trainer
 *                   is root, else to the trainer's own id (then only the mount namespace keeps the
 *                   program from the trainer's files). RLIMIT_NPROC counts processes per
 *                   (user namespace, uid) on Linux ≥ 5.14, so each run's process limit is its own
 *                   and never throttles the trainer or other runs (no cgroup needed).
 *   filesystem      a private root: a small tmpfs with read-only binds of the system directories
 *                   (`ro_paths`), a fresh /proc of the run's PID namespace, /dev/{null,zero,full,
 *                   random,urandom}, and a size-limited tmpfs at /sandbox (the working directory,
 *                   also bound at /tmp) that disappears with the run. Nothing of the host is
 *                   writable; /etc is not visible except the few files listed.
 *   rlimits         CPU seconds, address space, file size, open files, processes, no core files.
 *   deadline        wall clock, measured by the trainer; on expiry the whole tree is killed.
 *   host temp dir   each run gets a 0700 directory under `root_dir` (the mount point of its
 *                   private root); it is removed afterwards without following symlinks.
 *   environment     cleared: PATH, HOME=/sandbox, TMPDIR=/tmp, LANG=C.UTF-8 only.
 *   network         the new network namespace has only a down loopback; seccomp also kills any
 *                   socket() that is not AF_UNIX.
 *   seccomp         a BPF filter (rewards/sandbox_seccomp.c) kills the process (SIGSYS →
 *                   SYSCALL_DENIED) on ptrace, mount, namespaces, kexec, bpf, keyctl, modules, ...
 *   output caps     stdout/stderr are captured up to their caps; beyond → OUTPUT_LIMIT, killed.
 * sandbox_init probes which layers the kernel allows and refuses (PT_ERR_UNSUPPORTED, naming the
 * missing ones) unless `unsafe` is set; it then runs one self-test program end to end.
 *
 * The harness marker: a run is scored only when the harness proves that the tests ran. The
 * trainer draws a 128-bit nonce per run (getrandom) and hands it, with the tests, to the harness
 * through a memfd on fd 3; the harness reads fd 3 and closes it before the code runs, so the code
 * can neither read the nonce from a file or descriptor nor see the tests. After the last test
 * the harness writes "PT <nonce> <passed> <total>" to fd 4 (a pipe separate from stdout). A
 * program that exits early (sys.exit(0), os._exit(0), a signal) writes no valid marker and scores
 * nothing. Limit of the design: the code shares the harness's interpreter, so code that searches
 * the interpreter's own memory (frames, gc) for the nonce could forge the marker; nothing else
 * in the sandbox can (the nonce is never on disk, in argv or in the environment).
 *
 * Threads: a sandbox is read-only after init; sandbox_run may be called from many threads at
 * once (sandbox_run_batch does). Each run forks from the calling process with a raw clone and
 * the child uses only system calls until it execs, so it is safe in a multi-threaded trainer.
 * Forking a very large trainer copies its page tables (~1 ms per GB): a pre-forked zygote would
 * avoid that and is not implemented.
 */
#ifndef POSTTRAIN_REWARDS_SANDBOX_H
#define POSTTRAIN_REWARDS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/error.h"

typedef enum sandbox_verdict {
    VERDICT_OK = 0,
    VERDICT_WRONG_ANSWER,   /* ran to the end, but a test failed or the output differs */
    VERDICT_RUNTIME_ERROR,  /* crashed, non-zero exit, or exited before the harness marker */
    VERDICT_TIME_LIMIT,     /* CPU limit or wall-clock deadline */
    VERDICT_MEMORY_LIMIT,   /* address-space limit (allocation failed) */
    VERDICT_OUTPUT_LIMIT,   /* stdout/stderr over the cap, or a file over the file-size limit */
    VERDICT_SYSCALL_DENIED, /* killed by the seccomp filter (SIGSYS) */
    VERDICT_INFRA_ERROR,    /* the sandbox itself failed: mask, never score */
} sandbox_verdict;
#define SANDBOX_VERDICT_COUNT 8

/* Isolation layers (bit flags). */
enum {
    SANDBOX_LAYER_USER = 1u << 0,
    SANDBOX_LAYER_PID = 1u << 1,
    SANDBOX_LAYER_NET = 1u << 2,
    SANDBOX_LAYER_MOUNT = 1u << 3,
    SANDBOX_LAYER_IPC = 1u << 4,
    SANDBOX_LAYER_UTS = 1u << 5,
    SANDBOX_LAYER_SECCOMP = 1u << 6,
};
#define SANDBOX_LAYERS_ALL 0x7fu

typedef enum sandbox_block {
    SANDBOX_BLOCK_LAST = 0, /* the last fenced block of the language */
    SANDBOX_BLOCK_FIRST,    /* the first one */
    SANDBOX_BLOCK_WHOLE,    /* the whole answer is the code */
} sandbox_block;

typedef struct sandbox_config {
    const char *language;    /* "python" (default) or "sh" have harnesses for assert tests; any
                              * other name runs stdin/stdout tests only */
    const char *interpreter; /* command line split on spaces; NULL: the language's default
                              * ("/usr/bin/python3 -I -S -B", "/bin/sh") */
    double cpu_seconds;      /* RLIMIT_CPU (the hard limit is one second more); default 2 */
    double wall_seconds;     /* deadline for the whole run; default 5 */
    size_t memory_bytes;     /* RLIMIT_AS; default 512 MiB */
    size_t disk_bytes;       /* size of the private tmpfs /sandbox (= /tmp); default 32 MiB */
    size_t file_bytes;       /* RLIMIT_FSIZE; default 16 MiB */
    int max_processes;       /* RLIMIT_NPROC, threads included; default 64 */
    int max_open_files;      /* RLIMIT_NOFILE; default 64 */
    size_t stdout_bytes;     /* stdout capture cap; default 1 MiB */
    size_t stderr_bytes;     /* stderr capture cap; default 64 KiB */
    int workers;             /* sandbox_run_batch parallelism; 0: online CPUs */
    const char *root_dir;    /* where per-run directories are made; NULL: $TMPDIR or /tmp. Every
                              * directory above it must be searchable by the sandbox uid. */
    unsigned layers;         /* layers to use (default SANDBOX_LAYERS_ALL); fewer needs unsafe */
    bool unsafe;             /* run even when layers are missing or disabled */
    uid_t uid;               /* host uid/gid of the sandbox when the trainer is root (65534) */
    gid_t gid;
    const char *const *ro_paths; /* NULL-terminated host paths bound read-only into the private
                                  * root (symlinks recreated, missing ones skipped); NULL: the
                                  * defaults (/usr /bin /sbin /lib* and a few /etc files) */
} sandbox_config;

void sandbox_config_default(sandbox_config *cfg);

/* One program run. Assert mode when tests != NULL: the code, then the n_tests statements (each
 * a pass when it completes without an exception; for "sh", a command that exits 0). Otherwise
 * stdin/stdout mode: the code reads stdin_data and must print expected_stdout (compared after
 * removing trailing whitespace from every line and leading/trailing blank lines). */
typedef struct sandbox_job {
    const char *code;
    size_t code_len;
    const char *const *tests; /* (n_tests) NUL-terminated */
    int n_tests;
    const char *stdin_data;
    size_t stdin_len;
    const char *expected_stdout;
    size_t expected_len;
} sandbox_job;

typedef struct sandbox_result {
    sandbox_verdict verdict;
    int tests_passed;  /* from the harness marker; stdin/stdout mode: 1 when OK */
    int tests_total;   /* n_tests; stdin/stdout mode: 1 */
    int exit_code;     /* the program's exit status, -1 when killed by a signal or not run */
    int term_signal;   /* the signal that killed it, 0 when none */
    double wall_seconds;
    double cpu_seconds; /* the program and the children it waited for */
    long max_rss_kb;
    char *out;         /* captured stdout (malloc'd, NUL-terminated, may hold any bytes) */
    size_t out_len;
    char *err;         /* captured stderr, likewise */
    size_t err_len;
    bool out_truncated, err_truncated;
    char detail[256];  /* why this verdict, in ASCII ("harness marker missing: ...") */
    int attempts;      /* 2 when an INFRA_ERROR was retried */
    pid_t pgid;        /* the run's process group on the host (for tests checking clean-up) */
    unsigned long pid_ns; /* inode of the run's PID namespace, 0 when none */
} sandbox_result;

void sandbox_result_free(sandbox_result *res);
const char *sandbox_verdict_name(sandbox_verdict v); /* "OK", "WRONG_ANSWER", ... */

typedef struct sandbox sandbox;

/* Probes the layers, refuses when one of cfg->layers is missing and !cfg->unsafe, and runs a
 * self-test program through the whole sandbox. Copies every string of cfg. */
pt_status sandbox_init(sandbox **out, const sandbox_config *cfg, pt_error *err);
void sandbox_free(sandbox *sb);
/* "layers: user pid net mount ipc uts seccomp; missing: none" — for the start-up log line. */
const char *sandbox_describe(const sandbox *sb);
unsigned sandbox_layers_available(const sandbox *sb); /* probed */
unsigned sandbox_layers_used(const sandbox *sb);      /* requested ∩ available */
const sandbox_config *sandbox_get_config(const sandbox *sb);

/* Runs one job (= writes *res; free it with sandbox_result_free). Sandbox failures are a verdict
 * (INFRA_ERROR, retried once), not an error: the return is PT_OK unless the job is invalid
 * (PT_ERR_INVALID) or memory ran out. */
pt_status sandbox_run(sandbox_result *res, const sandbox *sb, const sandbox_job *job, pt_error *err);

/* PT_ERR_INVALID naming what is wrong with job for this sandbox (NULL code, an assert job for a
 * language without a harness, an sh test holding a line break), else PT_OK. sandbox_run checks
 * the same; callers use it to tell a dataset problem from a verdict before running. */
pt_status sandbox_job_check(const sandbox *sb, const sandbox_job *job, pt_error *err);

/* Runs n jobs on `workers` threads (≤ 0: the config's workers). res: (n), = written. */
pt_status sandbox_run_batch(sandbox_result *res, const sandbox *sb, const sandbox_job *jobs, size_t n, int workers,
                            pt_error *err);

/* Sandboxed runs per second of a trivial Python assert test on `workers` threads (≤ 0: the
 * config's) for about `seconds`. Fails if any run is not OK. */
pt_status sandbox_bench(double *runs_per_s, const sandbox *sb, double seconds, int workers, pt_error *err);

/* --- code and output helpers (rewards/sandbox_code.c) --- */

/* Finds the code in an answer: the first/last fenced block (```lang ... ```) whose info string's
 * first word is `language` or an alias (python: py, python3; sh: bash, shell), or, when there
 * is none, an untagged block; or the whole text. The block runs from the line after the opening
 * fence to the line before a closing fence (a line of only ``` and spaces) or the end of the
 * text. Returns false when no block is found (whole: never). *code points into text. */
bool sandbox_extract_code(const char **code, size_t *len, const char *text, const char *language,
                          sandbox_block which);
/* The stdin/stdout comparison: equal after removing trailing spaces/tabs/CRs of each line and
 * leading/trailing blank lines. */
bool sandbox_output_matches(const char *got, size_t got_len, const char *want, size_t want_len);
/* Copies at most cap-1 bytes of src into dst as valid UTF-8 (each invalid byte → '?', control
 * bytes except \n and \t → '?'), NUL-terminated. Returns the bytes written. */
size_t sandbox_utf8_sanitize(char *dst, size_t cap, const char *src, size_t len);

/* Removes path and everything under it without following any symlink (openat with O_NOFOLLOW,
 * unlinkat): a symlink is removed, never its target; unreadable directories are chmod'ed first.
 * PT_OK when path does not exist (rewards/sandbox_fs.c). */
pt_status sandbox_remove_tree(const char *path, pt_error *err);

#endif
