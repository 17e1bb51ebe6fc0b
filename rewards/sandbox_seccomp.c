/* sandbox_seccomp.c — the sandbox's seccomp filter: a classic BPF program over struct
 * seccomp_data, written out instruction by instruction.
 *
 * Policy (a deny list: interpreters use a wide and changing set of ordinary calls, while the
 * dangerous ones are few and well known):
 *   - a foreign architecture (e.g. i386 calls from an x86-64 process) or an x32 call  → kill;
 *   - ptrace, process_vm_readv/writev, pidfd_getfd, kcmp, mount and the new mount API, umount2,
 *     pivot_root, chroot, unshare, setns, kexec, modules, bpf, perf_event_open, keyctl and the
 *     key calls, userfaultfd, io_uring (its requests bypass seccomp), open/name_to_handle_at,
 *     swap, reboot, acct, quotactl, syslog, clock/time setting, sethostname/setdomainname,
 *     fanotify, iopl/ioperm                                                           → kill;
 *   - socket() of any family but AF_UNIX                                              → kill;
 *   - clone() with a CLONE_NEW* flag                                                  → kill;
 *   - clone3(): its flags sit in memory BPF cannot read, so it fails with ENOSYS, and
 *     glibc falls back to clone() (checked above);
 *   - everything else                                                                 → allow.
 * "Kill" is SECCOMP_RET_KILL_PROCESS: the whole process dies of SIGSYS, which the sandbox
 * reports as SYSCALL_DENIED (a per-thread kill could leave a half-dead interpreter).
 *
 * Layout: the checks come first and every match jumps forward to one of three return
 * instructions at the end (allow, kill, ENOSYS). Conditional jumps hold 8-bit offsets, so the
 * program stays well under 255 instructions.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "rewards/sandbox_impl.h"

#if defined(__x86_64__)
#define SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_ARCH AUDIT_ARCH_AARCH64
#else
#error "sandbox_seccomp.c: add this architecture's AUDIT_ARCH value"
#endif

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define NS_FLAGS                                                                                                   \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP |    \
     CLONE_NEWTIME)

/* System calls that kill the process. Those missing on an architecture are left out by #ifdef. */
static const int DENIED[] = {
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp,
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_unshare, SYS_setns,
    SYS_kexec_load, SYS_init_module, SYS_finit_module, SYS_delete_module,
    SYS_bpf, SYS_perf_event_open, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_userfaultfd,
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_open_by_handle_at, SYS_name_to_handle_at,
    SYS_swapon, SYS_swapoff, SYS_reboot, SYS_acct, SYS_quotactl, SYS_syslog,
    SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex,
    SYS_sethostname, SYS_setdomainname, SYS_fanotify_init,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
#ifdef SYS_pidfd_getfd
    SYS_pidfd_getfd,
#endif
#ifdef SYS_open_tree
    SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick,
#endif
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
#ifdef SYS_iopl
    SYS_iopl, SYS_ioperm,
#endif
#ifdef SYS_uselib
    SYS_uselib,
#endif
};
#define N_DENIED ((int)(sizeof DENIED / sizeof DENIED[0]))

#define ARG0_LOW offsetof(struct seccomp_data, args[0]) /* little-endian: low 32 bits first */

pt_status sandbox_seccomp_build(struct sock_filter **prog, unsigned short *len, pt_error *err) {
    /* 4 (arch) + 1 (x32) + N_DENIED + 3 (clone3, socket, clone) + 2 (socket arg) + 2 (clone
     * arg) + 3 (returns). */
    enum { HEAD = 4, TAIL = 3 };
    int n = HEAD + 1 + N_DENIED + 3 + 2 + 2 + TAIL;
    struct sock_filter *f = calloc((size_t)n, sizeof *f);
    PT_CHECK_ALLOC(f, err, (size_t)n * sizeof *f);
    const int ret_allow = n - 3, ret_kill = n - 2, ret_enosys = n - 1;
    int i = 0;
#define AT(target) ((unsigned char)((target) - i - 1)) /* forward offset from instruction i */
    f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), i++;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SECCOMP_ARCH, 1, 0), i++;
    f[i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS), i++;
    f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)), i++;
#if defined(__x86_64__)
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, AT(ret_kill), 0), i++; /* x32 */
#else
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA | BPF_K, 0, 0, 0), i++; /* no x32: a no-op keeps the count */
#endif
    for (int k = 0; k < N_DENIED; k++)
        f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)DENIED[k], AT(ret_kill), 0), i++;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, AT(ret_enosys), 0), i++;
    const int check_socket = i + 2, check_clone = i + 4;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, AT(check_socket), 0), i++;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, AT(check_clone), AT(ret_allow)), i++;
    /* socket(domain, ...): only AF_UNIX */
    f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW), i++;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, AT(ret_allow), AT(ret_kill)), i++;
    /* clone(flags, ...): no new namespaces (the flags are the first argument on x86-64 and arm64) */
    f[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW), i++;
    f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, AT(ret_kill), AT(ret_allow)), i++;
#undef AT
    if (i != ret_allow) {
        free(f);
        PT_FAIL(err, PT_ERR_INTERNAL, "seccomp program layout is off (%d instructions, allow at %d)", i, ret_allow);
    }
    f[ret_allow] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[ret_kill] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[ret_enosys] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
    *prog = f;
    *len = (unsigned short)n;
    return PT_OK;
}
