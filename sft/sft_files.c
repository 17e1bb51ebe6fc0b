/* sft_files.c — see sft_files.h. */
#include "sft/sft_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SFT_PATH_MAX 4096

pt_status sft_path_join(char *out, size_t cap, const char *a, const char *b, pt_error *err) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) PT_FAIL(err, PT_ERR_INVALID, "path '%s/%s' is too long", a, b);
    return PT_OK;
}

bool sft_path_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

bool sft_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

pt_status sft_fsync_dir(const char *dir, pt_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) PT_FAIL(err, PT_ERR_IO, "cannot open folder '%s': %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0) PT_FAIL(err, PT_ERR_IO, "fsync of folder '%s' failed: %s", dir, strerror(e));
    return PT_OK;
}

/* The folder holding path (for its fsync). */
static void parent_of(char *out, size_t cap, const char *path) {
    char tmp[SFT_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(out, cap, "%s", dirname(tmp));
}

pt_status sft_copy_file(const char *dst, const char *src, pt_error *err) {
    char tmp[SFT_PATH_MAX], dir[SFT_PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    if (n < 0 || (size_t)n >= sizeof tmp) PT_FAIL(err, PT_ERR_INVALID, "path '%s' is too long", dst);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) PT_FAIL(err, PT_ERR_IO, "cannot open '%s': %s", src, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        PT_FAIL(err, PT_ERR_IO, "cannot create '%s': %s", tmp, strerror(e));
    }
    pt_status st = PT_OK;
    char buf[1 << 16];
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "reading '%s' failed: %s", src, strerror(errno));
            break;
        }
        if (got == 0) break;
        for (ssize_t off = 0; off < got && st == PT_OK;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "writing '%s' failed: %s", tmp, strerror(errno));
            else off += w;
        }
        if (st != PT_OK) break;
    }
    if (st == PT_OK && fsync(out) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "fsync of '%s' failed: %s", tmp, strerror(errno));
    if (close(out) != 0 && st == PT_OK)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "closing '%s' failed: %s", tmp, strerror(errno));
    close(in);
    if (st == PT_OK && rename(tmp, dst) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "renaming '%s' to '%s': %s", tmp, dst, strerror(errno));
    if (st != PT_OK) {
        unlink(tmp);
        return st;
    }
    parent_of(dir, sizeof dir, dst);
    return sft_fsync_dir(dir, err);
}

pt_status sft_copy_tokenizer_files(const char *dst_dir, const char *src, pt_error *err) {
    char from[SFT_PATH_MAX], to[SFT_PATH_MAX];
    if (!sft_is_dir(src)) {
        PT_TRY(sft_path_join(to, sizeof to, dst_dir, "tokenizer.json", err));
        return sft_copy_file(to, src, err);
    }
    static const char *const FILES[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "chat_template.jinja"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        PT_TRY(sft_path_join(from, sizeof from, src, FILES[i], err));
        if (i > 0 && !sft_path_exists(from)) continue;
        PT_TRY(sft_path_join(to, sizeof to, dst_dir, FILES[i], err));
        PT_TRY(sft_copy_file(to, from, err));
    }
    return PT_OK;
}

pt_status sft_remove_flat_dir(const char *dir, pt_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return PT_OK;
        PT_FAIL(err, PT_ERR_IO, "cannot open folder '%s': %s", dir, strerror(errno));
    }
    pt_status st = PT_OK;
    struct dirent *e;
    char path[SFT_PATH_MAX];
    while (st == PT_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        st = sft_path_join(path, sizeof path, dir, e->d_name, err);
        if (st == PT_OK && unlink(path) != 0)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot remove '%s': %s", path, strerror(errno));
    }
    closedir(d);
    if (st == PT_OK && rmdir(dir) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot remove folder '%s': %s", dir, strerror(errno));
    return st;
}

pt_status sft_publish_dir(const char *tmp_dir, const char *final_dir, pt_error *err) {
    char old[SFT_PATH_MAX], parent[SFT_PATH_MAX];
    int n = snprintf(old, sizeof old, "%s.old", final_dir);
    if (n < 0 || (size_t)n >= sizeof old) PT_FAIL(err, PT_ERR_INVALID, "path '%s' is too long", final_dir);
    PT_TRY(sft_fsync_dir(tmp_dir, err));
    bool replaced = false;
    if (sft_path_exists(final_dir)) {
        PT_TRY(sft_remove_flat_dir(old, err));
        if (rename(final_dir, old) != 0)
            PT_FAIL(err, PT_ERR_IO, "moving the existing '%s' aside: %s", final_dir, strerror(errno));
        replaced = true;
    }
    if (rename(tmp_dir, final_dir) != 0) {
        int e = errno;
        if (replaced) rename(old, final_dir);
        PT_FAIL(err, PT_ERR_IO, "renaming '%s' to '%s': %s", tmp_dir, final_dir, strerror(e));
    }
    parent_of(parent, sizeof parent, final_dir);
    PT_TRY(sft_fsync_dir(parent, err));
    if (replaced) PT_TRY(sft_remove_flat_dir(old, err));
    return PT_OK;
}
