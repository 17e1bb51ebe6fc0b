/* sandbox_fs.c — the per-run host directory: made private (0700) before the run, removed after
 * it without ever following a symlink.
 *
 * Removal walks the tree with file descriptors only: every directory is opened with
 * openat(parent, name, O_DIRECTORY | O_NOFOLLOW), so a symlink planted by the code (to /etc, to
 * the trainer's checkpoints) fails that open with ELOOP/ENOTDIR and is unlinked as the link it
 * is; its target is never touched. Names are resolved one component at a time relative to an
 * fd we hold, so no path string is ever re-resolved after the code could have changed it.
 * A directory the code made unreadable (chmod 000) is chmod'ed back (through its fd) first.
 * Depth is bounded (SANDBOX_RM_DEPTH): a deeper tree is an error, reported, not a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rewards/sandbox_impl.h"

#define SANDBOX_RM_DEPTH 256

pt_status sandbox_run_dir_create(char **path, const char *root, bool chown_to, uid_t uid, gid_t gid, pt_error *err) {
    size_t n = strlen(root) + sizeof "/pt-sandbox-XXXXXX";
    char *p = malloc(n);
    PT_CHECK_ALLOC(p, err, n);
    snprintf(p, n, "%s/pt-sandbox-XXXXXX", root);
    if (!mkdtemp(p)) {
        int e = errno;
        free(p);
        PT_FAIL(err, PT_ERR_IO, "cannot create a sandbox directory under '%s': %s; set the sandbox root_dir to a "
                "writable directory", root, strerror(e));
    }
    if (chown_to && chown(p, uid, gid) != 0) {
        int e = errno;
        rmdir(p);
        free(p);
        PT_FAIL(err, PT_ERR_IO, "cannot hand the sandbox directory to uid %d: %s", (int)uid, strerror(e));
    }
    *path = p;
    return PT_OK;
}

/* Removes the entry `name` of directory fd `parent` (a file, a symlink or a whole directory). */
static int remove_at(int parent, const char *name, int depth) {
    if (unlinkat(parent, name, 0) == 0) return 0; /* a file, symlink, fifo, socket... */
    if (errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -1; /* unlink of a directory: EISDIR (EPERM on some fs) */
    if (depth >= SANDBOX_RM_DEPTH) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) {
        /* chmod through an O_PATH descriptor of the directory itself, never through a path */
        int pfd = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (pfd >= 0) {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
            if (chmod(proc, 0700) != 0) (void)fchmodat(parent, name, 0700, AT_SYMLINK_NOFOLLOW);
            close(pfd);
        }
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) return errno == ENOENT ? 0 : -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = 0, saved = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (remove_at(fd, de->d_name, depth + 1) != 0 && rc == 0) rc = -1, saved = errno;
    }
    closedir(d);
    if (rc != 0) {
        errno = saved;
        return -1;
    }
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return -1;
    return 0;
}

pt_status sandbox_remove_tree(const char *path, pt_error *err) {
    PT_CHECK(path && path[0], err, PT_ERR_INVALID, "sandbox_remove_tree: empty path");
    size_t n = strlen(path);
    char *copy = malloc(n + 1);
    PT_CHECK_ALLOC(copy, err, n + 1);
    memcpy(copy, path, n + 1);
    while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
    char *slash = strrchr(copy, '/');
    const char *parent = ".", *base = copy;
    if (slash == copy) parent = "/", base = copy + 1;
    else if (slash) *slash = '\0', parent = copy, base = slash + 1;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        free(copy);
        PT_FAIL(err, PT_ERR_INVALID, "sandbox_remove_tree: refusing to remove '%s'", path);
    }
    /* The parent is ours (root_dir), so resolving it by path is fine; only what lies below it
     * may have been written by the code. */
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        int e = errno;
        free(copy);
        if (e == ENOENT) return PT_OK;
        PT_FAIL(err, PT_ERR_IO, "cannot open '%s' to remove '%s': %s", parent, path, strerror(e));
    }
    int rc = remove_at(pfd, base, 0);
    int e = errno;
    close(pfd);
    free(copy);
    if (rc != 0) PT_FAIL(err, PT_ERR_IO, "cannot remove sandbox directory '%s': %s", path, strerror(e));
    return PT_OK;
}
