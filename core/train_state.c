/* train_state.c — checkpoint folders, the train_state.bin format, manifests, retention and
 * resume; see train_state.h for the layout, the format and the crash-safety argument.
 *
 * Every file this module writes is fsync'd before the folder that names it is fsync'd, and a
 * folder becomes a checkpoint only by one rename. Readers never modify anything. Folder
 * removal (retention, leftovers) touches only names this module creates: step-<N> (complete
 * ones, for retention), step-<N>.tmp, step-<N>.del and step-<N>.old. One writer per run_dir.
 */
#include "core/train_state.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/checkpoint.h"

#define PATH_BYTES 4096
#define HEADER_BYTES 24
#define SECTION_HEAD_BYTES 16
#define RNG_RECORD_BYTES 48
#define N_SECTIONS 5
#define MANIFEST_MAX_BYTES ((size_t)64 << 20)

static const char MAGIC[4] = {'P', 'T', 'T', 'S'};
static const char *const SECTION_TAGS[N_SECTIONS] = {"STEP", "HASH", "RNGS", "CURS", "ADAM"};
enum { SEC_STEP, SEC_HASH, SEC_RNGS, SEC_CURS, SEC_ADAM };
/* The tag of the moments section when they are bf16 (adam_moments: bf16), in place of ADAM. */
static const char ADAM_BF16_TAG[4] = {'A', 'D', 'B', 'F'};

/* ---- small helpers ---------------------------------------------------------------------- */

static pt_status join(char *out, const char *a, const char *b, pt_error *err) {
    int n = snprintf(out, PATH_BYTES, "%s/%s", a, b);
    if (n < 0 || n >= PATH_BYTES) PT_FAIL(err, PT_ERR_INVALID, "path '%s/%s' is longer than %d bytes", a, b, PATH_BYTES - 1);
    return PT_OK;
}

static int host_little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_u32(unsigned char *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(x >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t x) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(x >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) x |= (uint32_t)p[i] << (8 * i);
    return x;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

/* FNV-1a 64 (Fowler–Noll–Vo): h ← (h ⊕ byte)·0x100000001b3 from 0xcbf29ce484222325. */
static uint64_t fnv1a64_update(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}
#define FNV1A64_INIT UINT64_C(0xcbf29ce484222325)

static pt_status write_all(int fd, const void *buf, size_t n, const char *path, pt_error *err) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) PT_FAIL(err, PT_ERR_IO, "writing '%s': %s", path, w < 0 ? strerror(errno) : "wrote nothing");
        p += w;
        n -= (size_t)w;
    }
    return PT_OK;
}

/* Reads exactly n bytes at off; a short read means the file ended early (PT_ERR_FORMAT). */
static pt_status read_at(int fd, void *buf, size_t n, uint64_t off, const char *path, pt_error *err) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) PT_FAIL(err, PT_ERR_IO, "reading '%s': %s", path, strerror(errno));
        if (r == 0) PT_FAIL(err, PT_ERR_FORMAT, "'%s' ends early at byte %" PRIu64 "; the file is truncated", path, off);
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return PT_OK;
}

static pt_status fsync_path(const char *path, int is_dir, pt_error *err) {
    int fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) PT_FAIL(err, PT_ERR_IO, "opening '%s' to fsync it: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems refuse fsync on a directory (EINVAL); there is nothing more to do then. */
    if (rc != 0 && !(is_dir && e == EINVAL)) PT_FAIL(err, PT_ERR_IO, "fsync of '%s' failed: %s", path, strerror(e));
    return PT_OK;
}

static pt_status file_checksum(uint64_t *hash, uint64_t *bytes, const char *path, pt_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) PT_FAIL(err, PT_ERR_IO, "opening '%s': %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) close(fd);
    PT_CHECK_ALLOC(buf, err, CHUNK);
    uint64_t h = FNV1A64_INIT, total = 0;
    pt_status st = PT_OK;
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "reading '%s': %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        h = fnv1a64_update(h, buf, (size_t)r);
        total += (uint64_t)r;
    }
    free(buf);
    close(fd);
    *hash = h;
    *bytes = total;
    return st;
}

/* The sorted entry names of a folder ("." and ".." left out). */
static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static pt_status list_names(char ***names, int *count, const char *dir, pt_error *err) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) PT_FAIL(err, PT_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    pt_status st = PT_OK;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **nv = realloc(v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory listing '%s'", dir);
                break;
            }
            v = nv;
            cap = ncap;
        }
        if (!(v[n] = strdup(e->d_name))) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory listing '%s'", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (st != PT_OK) {
        free_names(v, n);
        return st;
    }
    if (n > 1) qsort(v, (size_t)n, sizeof *v, name_cmp);
    *names = v;
    *count = n;
    return PT_OK;
}

/* "step-<digits><suffix>" → the step; -1 when the name is anything else. */
static int64_t parse_step_name(const char *name, const char *suffix) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (step > (INT64_MAX - 9) / 10) return -1;
        step = step * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || strcmp(p, suffix) != 0) return -1;
    return step;
}

static int path_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Removes a folder holding only files (what this module writes); refuses anything deeper. */
static pt_status remove_flat_dir(const char *dir, pt_error *err) {
    char **names;
    int n;
    PT_TRY(list_names(&names, &n, dir, err));
    char path[PATH_BYTES];
    pt_status st = PT_OK;
    for (int i = 0; i < n && st == PT_OK; i++) {
        if ((st = join(path, dir, names[i], err)) != PT_OK) break;
        if (unlink(path) != 0)
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot remove '%s': %s", path, strerror(errno));
    }
    free_names(names, n);
    if (st != PT_OK) return st;
    if (rmdir(dir) != 0) PT_FAIL(err, PT_ERR_IO, "cannot remove folder '%s': %s", dir, strerror(errno));
    return PT_OK;
}

/* mkdir that accepts an existing folder (but not an existing file). */
static pt_status ensure_dir(const char *dir, pt_error *err) {
    if (mkdir(dir, 0755) == 0) return PT_OK;
    int e = errno;
    struct stat sb;
    if (e == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return PT_OK;
    PT_FAIL(err, PT_ERR_IO, "cannot create folder '%s': %s", dir, e == EEXIST ? "a file of that name exists" : strerror(e));
}

/* ---- train_state.bin -------------------------------------------------------------------- */

void train_progress_free(train_progress *p) {
    free(p->rngs);
    free(p->cursor);
    memset(p, 0, sizeof *p);
}

static unsigned char *put_section_head(unsigned char *q, int sec, uint64_t bytes) {
    memcpy(q, SECTION_TAGS[sec], 4);
    put_u32(q + 4, 0);
    put_u64(q + 8, bytes);
    return q + SECTION_HEAD_BYTES;
}

pt_status train_state_write_file(const char *path, const optim *opt, const train_progress *p, pt_error *err) {
    if (!host_little_endian())
        PT_FAIL(err, PT_ERR_UNSUPPORTED, "%s: the training-state format is little-endian; this host is not", path);
    PT_CHECK(p->n_rngs >= 0 && (p->n_rngs == 0 || p->rngs), err, PT_ERR_INVALID, "%s: bad RNG list (%d streams)",
             path, p->n_rngs);
    PT_CHECK(p->cursor_bytes == 0 || p->cursor, err, PT_ERR_INVALID, "%s: data cursor of %zu bytes has no buffer", path,
             p->cursor_bytes);
    const uint64_t count = opt->total;
    PT_CHECK(count <= (UINT64_MAX - 16) / 8, err, PT_ERR_INVALID, "%s: %" PRIu64 " moments overflow", path, count);
    const bool bf16 = opt->cfg.moments == OPTIM_MOMENTS_BF16;
    const size_t elem = bf16 ? sizeof(uint16_t) : sizeof(float);
    const uint64_t rngs_bytes = 8 + (uint64_t)RNG_RECORD_BYTES * (uint64_t)p->n_rngs;
    const uint64_t adam_bytes = 16 + 2 * (uint64_t)elem * count;
    const uint64_t total = HEADER_BYTES + N_SECTIONS * SECTION_HEAD_BYTES + 8 + 8 + rngs_bytes +
                           (uint64_t)p->cursor_bytes + adam_bytes;

    /* Everything before the cursor in one buffer: header, STEP, HASH, RNGS, CURS head. */
    size_t head_len = HEADER_BYTES + 3 * SECTION_HEAD_BYTES + 16 + (size_t)rngs_bytes + SECTION_HEAD_BYTES;
    unsigned char *head = calloc(1, head_len);
    PT_CHECK_ALLOC(head, err, head_len);
    unsigned char *q = head;
    memcpy(q, MAGIC, 4);
    put_u32(q + 4, TRAIN_STATE_VERSION);
    put_u64(q + 8, total);
    put_u32(q + 16, N_SECTIONS);
    put_u32(q + 20, 0);
    q += HEADER_BYTES;
    q = put_section_head(q, SEC_STEP, 8);
    put_u64(q, (uint64_t)p->step);
    q = put_section_head(q + 8, SEC_HASH, 8);
    put_u64(q, p->config_hash);
    q = put_section_head(q + 8, SEC_RNGS, rngs_bytes);
    put_u32(q, (uint32_t)p->n_rngs);
    put_u32(q + 4, RNG_RECORD_BYTES);
    q += 8;
    for (int i = 0; i < p->n_rngs; i++, q += RNG_RECORD_BYTES) {
        const rng *r = &p->rngs[i];
        put_u64(q, r->seed);
        put_u64(q + 8, r->stream);
        put_u64(q + 16, r->position);
        for (int j = 0; j < 4; j++) put_u32(q + 24 + 4 * j, r->block[j]);
        put_u32(q + 40, (uint32_t)r->used);
        put_u32(q + 44, 0);
    }
    q = put_section_head(q, SEC_CURS, p->cursor_bytes);
    unsigned char adam_head[SECTION_HEAD_BYTES + 16];
    put_section_head(adam_head, SEC_ADAM, adam_bytes);
    if (bf16) memcpy(adam_head, ADAM_BF16_TAG, 4);
    put_u64(adam_head + SECTION_HEAD_BYTES, (uint64_t)opt->step);
    put_u64(adam_head + SECTION_HEAD_BYTES + 8, count);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(head);
        PT_FAIL(err, PT_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    }
    pt_status st = write_all(fd, head, head_len, path, err);
    free(head);
    if (st == PT_OK) st = write_all(fd, p->cursor, p->cursor_bytes, path, err);
    if (st == PT_OK) st = write_all(fd, adam_head, sizeof adam_head, path, err);
    if (st == PT_OK) st = write_all(fd, bf16 ? (const void *)opt->m16 : opt->m, (size_t)count * elem, path, err);
    if (st == PT_OK) st = write_all(fd, bf16 ? (const void *)opt->v16 : opt->v, (size_t)count * elem, path, err);
    if (st == PT_OK && fsync(fd) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "fsync of '%s' failed: %s", path, strerror(errno));
    if (close(fd) != 0 && st == PT_OK)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "closing '%s' failed: %s", path, strerror(errno));
    if (st != PT_OK) unlink(path);
    return st;
}

/* Where each section's payload lies, plus the small fields, after checking the structure. */
typedef struct state_layout {
    uint64_t off[N_SECTIONS], len[N_SECTIONS];
    int64_t step;
    uint64_t config_hash;
    uint32_t n_rngs;
    int64_t optim_step;
    uint64_t moments; /* elements per moment */
    bool moments_bf16; /* the section is ADBF (bf16 moments) rather than ADAM (fp32) */
} state_layout;

static void printable_magic(char out[20], const unsigned char m[4]) {
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        if (m[i] >= 0x20 && m[i] < 0x7f) out[k++] = (char)m[i];
        else k += (size_t)snprintf(out + k, 20 - k, "\\x%02x", m[i]);
    }
    out[k] = '\0';
}

static pt_status state_scan(state_layout *s, int fd, const char *path, pt_error *err) {
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (fstat(fd, &sb) != 0) PT_FAIL(err, PT_ERR_IO, "stat of '%s' failed: %s", path, strerror(errno));
    const uint64_t size = (uint64_t)sb.st_size;
    if (size < HEADER_BYTES)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s' has %" PRIu64 " bytes, less than the %d-byte header; the file is truncated",
                path, size, HEADER_BYTES);
    unsigned char h[HEADER_BYTES];
    PT_TRY(read_at(fd, h, sizeof h, 0, path, err));
    if (memcmp(h, MAGIC, 4) != 0) {
        char got[20];
        printable_magic(got, h);
        PT_FAIL(err, PT_ERR_FORMAT, "'%s' is not a posttrain training-state file: magic '%s', expected 'PTTS'", path, got);
    }
    uint32_t version = get_u32(h + 4);
    if (version != TRAIN_STATE_VERSION)
        PT_FAIL(err, PT_ERR_FORMAT,
                "'%s' is training-state version %u; this build reads version %d (use the posttrain that wrote it)",
                path, version, TRAIN_STATE_VERSION);
    uint64_t declared = get_u64(h + 8);
    if (declared != size)
        PT_FAIL(err, PT_ERR_FORMAT,
                "'%s': the header says %" PRIu64 " bytes but the file has %" PRIu64 "; it is truncated or damaged",
                path, declared, size);
    uint32_t nsec = get_u32(h + 16);
    if (nsec != N_SECTIONS)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s' has %u sections; version %d has %d", path, nsec, TRAIN_STATE_VERSION,
                N_SECTIONS);
    uint64_t off = HEADER_BYTES;
    for (int i = 0; i < N_SECTIONS; i++) {
        unsigned char sh[SECTION_HEAD_BYTES];
        if (size - off < SECTION_HEAD_BYTES)
            PT_FAIL(err, PT_ERR_FORMAT, "'%s' ends inside the header of section %s", path, SECTION_TAGS[i]);
        PT_TRY(read_at(fd, sh, sizeof sh, off, path, err));
        if (i == SEC_ADAM && memcmp(sh, ADAM_BF16_TAG, 4) == 0) {
            s->moments_bf16 = true;
        } else if (memcmp(sh, SECTION_TAGS[i], 4) != 0) {
            char got[20];
            printable_magic(got, sh);
            PT_FAIL(err, PT_ERR_FORMAT, "'%s': section %d is '%s', expected '%s'%s", path, i, got, SECTION_TAGS[i],
                    i == SEC_ADAM ? " or 'ADBF'" : "");
        }
        uint64_t len = get_u64(sh + 8);
        off += SECTION_HEAD_BYTES;
        if (len > size - off)
            PT_FAIL(err, PT_ERR_FORMAT, "'%s': section %s claims %" PRIu64 " bytes, only %" PRIu64 " remain", path,
                    SECTION_TAGS[i], len, size - off);
        s->off[i] = off;
        s->len[i] = len;
        off += len;
    }
    if (off != size)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s' has %" PRIu64 " bytes after its last section", path, size - off);

    unsigned char b[16];
    if (s->len[SEC_STEP] != 8 || s->len[SEC_HASH] != 8)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s': STEP and HASH sections must hold 8 bytes (have %" PRIu64 " and %" PRIu64 ")",
                path, s->len[SEC_STEP], s->len[SEC_HASH]);
    PT_TRY(read_at(fd, b, 8, s->off[SEC_STEP], path, err));
    s->step = (int64_t)get_u64(b);
    PT_TRY(read_at(fd, b, 8, s->off[SEC_HASH], path, err));
    s->config_hash = get_u64(b);
    if (s->len[SEC_RNGS] < 8) PT_FAIL(err, PT_ERR_FORMAT, "'%s': the RNGS section is too short", path);
    PT_TRY(read_at(fd, b, 8, s->off[SEC_RNGS], path, err));
    s->n_rngs = get_u32(b);
    uint32_t rec = get_u32(b + 4);
    if (rec != RNG_RECORD_BYTES || s->len[SEC_RNGS] != 8 + (uint64_t)RNG_RECORD_BYTES * s->n_rngs ||
        s->n_rngs > INT32_MAX)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s': RNGS holds %u records of %u bytes in %" PRIu64 " bytes (records are %d bytes)",
                path, s->n_rngs, rec, s->len[SEC_RNGS], RNG_RECORD_BYTES);
    if (s->len[SEC_ADAM] < 16) PT_FAIL(err, PT_ERR_FORMAT, "'%s': the ADAM section is too short", path);
    PT_TRY(read_at(fd, b, 16, s->off[SEC_ADAM], path, err));
    s->optim_step = (int64_t)get_u64(b);
    s->moments = get_u64(b + 8);
    const uint64_t pair = s->moments_bf16 ? 4 : 8; /* bytes of m[i] and v[i] together */
    if (s->moments > (s->len[SEC_ADAM] - 16) / pair || s->len[SEC_ADAM] != 16 + pair * s->moments)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s': %s declares %" PRIu64 " %s per moment but holds %" PRIu64 " bytes", path,
                s->moments_bf16 ? "ADBF" : "ADAM", s->moments, s->moments_bf16 ? "bf16 values" : "floats",
                s->len[SEC_ADAM]);
    if (s->step < 0 || s->optim_step < 0)
        PT_FAIL(err, PT_ERR_FORMAT, "'%s': negative step (%lld) or optimizer step (%lld)", path, (long long)s->step,
                (long long)s->optim_step);
    return PT_OK;
}

pt_status train_state_read_file(train_progress *p, optim *opt, const char *path, pt_error *err) {
    memset(p, 0, sizeof *p);
    if (!host_little_endian())
        PT_FAIL(err, PT_ERR_UNSUPPORTED, "%s: the training-state format is little-endian; this host is not", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) PT_FAIL(err, PT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    state_layout s;
    pt_status st = state_scan(&s, fd, path, err);
    if (st == PT_OK && s.moments != (uint64_t)opt->total)
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                       "'%s' holds optimizer moments for %" PRIu64 " floats but the model has %zu; the checkpoint "
                       "belongs to a different model config",
                       path, s.moments, opt->total);
    const bool bf16 = opt->cfg.moments == OPTIM_MOMENTS_BF16;
    if (st == PT_OK && s.moments_bf16 != bf16)
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "'%s' holds %s AdamW moments (written with adam_moments: %s) but this run has adam_moments: %s; "
                       "resume with adam_moments: %s (the moments are not converted between the two)",
                       path, s.moments_bf16 ? "bf16" : "fp32", s.moments_bf16 ? "bf16" : "fp32",
                       optim_moments_name(opt->cfg.moments), s.moments_bf16 ? "bf16" : "fp32");
    unsigned char *recs = NULL;
    if (st == PT_OK && s.n_rngs > 0) {
        recs = malloc((size_t)s.len[SEC_RNGS]);
        p->rngs = calloc(s.n_rngs, sizeof *p->rngs);
        if (!recs || !p->rngs)
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %u RNG states", s.n_rngs);
        if (st == PT_OK) st = read_at(fd, recs, (size_t)s.len[SEC_RNGS], s.off[SEC_RNGS], path, err);
        for (uint32_t i = 0; st == PT_OK && i < s.n_rngs; i++) {
            const unsigned char *q = recs + 8 + (size_t)i * RNG_RECORD_BYTES;
            rng *r = &p->rngs[i];
            r->seed = get_u64(q);
            r->stream = get_u64(q + 8);
            r->position = get_u64(q + 16);
            for (int j = 0; j < 4; j++) r->block[j] = get_u32(q + 24 + 4 * j);
            r->used = (int)get_u32(q + 40);
            if (r->used < 0 || r->used > 4)
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s': RNG %u has %d words used (0..4)", path, i,
                               r->used);
        }
    }
    free(recs);
    if (st == PT_OK && s.len[SEC_CURS] > 0) {
        p->cursor = malloc((size_t)s.len[SEC_CURS]);
        if (!p->cursor)
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for a %" PRIu64 "-byte data cursor",
                           s.len[SEC_CURS]);
        else
            st = read_at(fd, p->cursor, (size_t)s.len[SEC_CURS], s.off[SEC_CURS], path, err);
    }
    const size_t mbytes = opt->total * (bf16 ? sizeof(uint16_t) : sizeof(float));
    void *mdst = bf16 ? (void *)opt->m16 : (void *)opt->m, *vdst = bf16 ? (void *)opt->v16 : (void *)opt->v;
    if (st == PT_OK) st = read_at(fd, mdst, mbytes, s.off[SEC_ADAM] + 16, path, err);
    if (st == PT_OK) st = read_at(fd, vdst, mbytes, s.off[SEC_ADAM] + 16 + mbytes, path, err);
    close(fd);
    if (st != PT_OK) {
        train_progress_free(p);
        return st;
    }
    p->step = s.step;
    p->config_hash = s.config_hash;
    p->n_rngs = (int)s.n_rngs;
    p->cursor_bytes = (size_t)s.len[SEC_CURS];
    opt->step = s.optim_step;
    return PT_OK;
}

/* ---- manifest --------------------------------------------------------------------------- */

pt_status train_state_write_manifest(const char *dir, int64_t step, pt_error *err) {
    char **names;
    int n;
    PT_TRY(list_names(&names, &n, dir, err));
    char path[PATH_BYTES], tmp[PATH_BYTES];
    pt_status st = PT_OK;
    cJSON *root = cJSON_CreateObject(), *list = NULL;
    if (root && cJSON_AddStringToObject(root, "format", "posttrain-checkpoint") &&
        cJSON_AddNumberToObject(root, "version", 1) && cJSON_AddNumberToObject(root, "step", (double)step) &&
        cJSON_AddStringToObject(root, "checksum", "fnv1a64"))
        list = cJSON_AddArrayToObject(root, "files");
    if (!list) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory building the manifest");
    for (int i = 0; i < n && st == PT_OK; i++) {
        if (strcmp(names[i], TRAIN_STATE_MANIFEST) == 0 || strcmp(names[i], TRAIN_STATE_MANIFEST ".tmp") == 0) continue;
        if ((st = join(path, dir, names[i], err)) != PT_OK) break;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "'%s' is not a regular file; a checkpoint folder holds files only", path);
            break;
        }
        uint64_t h, bytes;
        if ((st = file_checksum(&h, &bytes, path, err)) != PT_OK) break;
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, h);
        cJSON *e = cJSON_CreateObject();
        if (!e) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory building the manifest");
            break;
        }
        cJSON_AddStringToObject(e, "name", names[i]);
        cJSON_AddNumberToObject(e, "bytes", (double)bytes);
        cJSON_AddStringToObject(e, "fnv1a64", hex);
        cJSON_AddItemToArray(list, e);
    }
    free_names(names, n);
    char *text = st == PT_OK ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (st == PT_OK && !text) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory printing the manifest");
    if (st == PT_OK) st = join(path, dir, TRAIN_STATE_MANIFEST, err);
    if (st == PT_OK) st = join(tmp, dir, TRAIN_STATE_MANIFEST ".tmp", err);
    if (st == PT_OK) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot create '%s': %s", tmp, strerror(errno));
        } else {
            st = write_all(fd, text, strlen(text), tmp, err);
            if (st == PT_OK) st = write_all(fd, "\n", 1, tmp, err);
            if (st == PT_OK && fsync(fd) != 0)
                st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "fsync of '%s' failed: %s", tmp, strerror(errno));
            close(fd);
            if (st == PT_OK && rename(tmp, path) != 0)
                st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "renaming '%s' to '%s': %s", tmp, path,
                               strerror(errno));
            if (st != PT_OK) unlink(tmp);
        }
    }
    free(text);
    if (st == PT_OK) st = fsync_path(dir, 1, err);
    return st;
}

static char *read_text(const char *path, pt_error *err, pt_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = error_set(err, errno == ENOENT ? PT_ERR_FORMAT : PT_ERR_IO, __FILE__, __LINE__,
                        errno == ENOENT ? "'%s' is missing; the checkpoint was not finished" : "cannot open '%s': %s",
                        path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MANIFEST_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MANIFEST_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MANIFEST_MAX_BYTES;
    fclose(f);
    if (bad) {
        *st = error_set(err, buf ? PT_ERR_FORMAT : PT_ERR_NOMEM, __FILE__, __LINE__,
                        "'%s' cannot be read or is larger than %zu bytes", path, MANIFEST_MAX_BYTES);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *st = PT_OK;
    return buf;
}

/* A manifest entry's name must be a plain file name. */
static int plain_name(const char *s) {
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strcmp(s, TRAIN_STATE_MANIFEST) != 0;
}

/* The checks of train_state_verify; checksums only when asked (retention skips them). */
static pt_status verify_dir(int64_t *step_out, const char *dir, int checksums, pt_error *err) {
    char path[PATH_BYTES];
    PT_TRY(join(path, dir, TRAIN_STATE_MANIFEST, err));
    pt_status st;
    char *text = read_text(path, err, &st);
    if (!text) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) PT_FAIL(err, PT_ERR_FORMAT, "'%s' is not valid JSON; the manifest is damaged", path);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *stp = cJSON_GetObjectItemCaseSensitive(root, "step");
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "checksum");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    char **names = NULL;
    int n = 0, listed = 0;
    int64_t step = -1;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "posttrain-checkpoint") != 0 || !cJSON_IsNumber(ver) ||
        ver->valuedouble != 1 || !cJSON_IsNumber(stp) || stp->valuedouble < 0 || stp->valuedouble > 9e15 ||
        stp->valuedouble != (double)(int64_t)stp->valuedouble || !cJSON_IsString(sum) ||
        strcmp(sum->valuestring, "fnv1a64") != 0 || !cJSON_IsArray(files)) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                       "'%s' is not a version-1 posttrain manifest (format, version, step, checksum \"fnv1a64\" and "
                       "files are required)",
                       path);
        goto done;
    }
    step = (int64_t)stp->valuedouble;
    if ((st = list_names(&names, &n, dir, err)) != PT_OK) goto done;
    int has_config = 0, has_state = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, files) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *by = cJSON_GetObjectItemCaseSensitive(e, "bytes");
        const cJSON *hx = cJSON_GetObjectItemCaseSensitive(e, "fnv1a64");
        if (!cJSON_IsString(nm) || !plain_name(nm->valuestring) || !cJSON_IsNumber(by) || by->valuedouble < 0 ||
            !cJSON_IsString(hx) || strlen(hx->valuestring) != 16) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                           "'%s': entry %d needs a plain file name, bytes >= 0 and a 16-digit fnv1a64", path, listed);
            goto done;
        }
        listed++;
        /* A name listed twice would let one file stand for another. */
        for (const cJSON *o = files->child; o != e; o = o->next)
            if (strcmp(cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring, nm->valuestring) == 0) {
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s' lists '%s' twice", path, nm->valuestring);
                goto done;
            }
        has_config |= strcmp(nm->valuestring, "config.json") == 0;
        has_state |= strcmp(nm->valuestring, TRAIN_STATE_FILE) == 0;
        char fpath[PATH_BYTES];
        if ((st = join(fpath, dir, nm->valuestring, err)) != PT_OK) goto done;
        struct stat sb;
        if (lstat(fpath, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s' is listed in the manifest but missing", fpath);
            goto done;
        }
        if ((double)sb.st_size != by->valuedouble) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s' has %lld bytes, the manifest says %.0f", fpath,
                           (long long)sb.st_size, by->valuedouble);
            goto done;
        }
        if (checksums) {
            uint64_t h, bytes;
            if ((st = file_checksum(&h, &bytes, fpath, err)) != PT_OK) goto done;
            char hex[17];
            snprintf(hex, sizeof hex, "%016" PRIx64, h);
            if (strcmp(hex, hx->valuestring) != 0 || (double)bytes != by->valuedouble) {
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__,
                               "'%s': checksum %s does not match the manifest's %s; the file is corrupted", fpath, hex,
                               hx->valuestring);
                goto done;
            }
        }
    }
    if (!has_config || !has_state) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s' does not list %s", path,
                       !has_config ? "config.json" : TRAIN_STATE_FILE);
        goto done;
    }
    /* Every file present must be listed (an unlisted one could change what model_load reads). */
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], TRAIN_STATE_MANIFEST) == 0) continue;
        int found = 0;
        cJSON_ArrayForEach(e, files) found |= strcmp(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, names[i]) == 0;
        if (!found) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s/%s' is not in the manifest", dir, names[i]);
            goto done;
        }
    }
    /* The state file's own structure, and its step against the manifest's. */
    char spath[PATH_BYTES];
    if ((st = join(spath, dir, TRAIN_STATE_FILE, err)) != PT_OK) goto done;
    int fd = open(spath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot open '%s': %s", spath, strerror(errno));
        goto done;
    }
    state_layout sl;
    st = state_scan(&sl, fd, spath, err);
    close(fd);
    if (st == PT_OK && sl.step != step)
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "'%s' is for step %lld but the manifest says %lld", spath,
                       (long long)sl.step, (long long)step);
done:
    free_names(names, n);
    cJSON_Delete(root);
    if (st == PT_OK && step_out) *step_out = step;
    return st;
}

pt_status train_state_verify(int64_t *step, const char *ckpt_dir, pt_error *err) {
    return verify_dir(step, ckpt_dir, 1, err);
}

/* ---- find the newest ---------------------------------------------------------------------- */

void ckpt_scan_free(ckpt_scan *scan) {
    for (int i = 0; i < scan->n_skipped; i++) {
        free(scan->skipped[i].path);
        free(scan->skipped[i].reason);
    }
    free(scan->skipped);
    free(scan->dir);
    memset(scan, 0, sizeof *scan);
}

static pt_status add_skipped(ckpt_scan *scan, const char *path, const char *reason, pt_error *err) {
    ckpt_skipped *v = realloc(scan->skipped, (size_t)(scan->n_skipped + 1) * sizeof *v);
    PT_CHECK_ALLOC(v, err, (size_t)(scan->n_skipped + 1) * sizeof *v);
    scan->skipped = v;
    v[scan->n_skipped].path = strdup(path);
    v[scan->n_skipped].reason = strdup(reason);
    scan->n_skipped++;
    PT_CHECK_ALLOC(v[scan->n_skipped - 1].path, err, strlen(path) + 1);
    PT_CHECK_ALLOC(v[scan->n_skipped - 1].reason, err, strlen(reason) + 1);
    return PT_OK;
}

typedef struct step_dir {
    int64_t step;
    const char *name;
} step_dir;

static int step_desc(const void *a, const void *b) {
    const step_dir *x = a, *y = b;
    return (x->step < y->step) - (x->step > y->step);
}

static int leftover_name(const char *name) {
    return parse_step_name(name, ".tmp") >= 0 || parse_step_name(name, ".del") >= 0 ||
           parse_step_name(name, ".old") >= 0;
}

pt_status train_state_find_latest(ckpt_scan *scan, const char *run_dir, pt_error *err) {
    memset(scan, 0, sizeof *scan);
    char ckdir[PATH_BYTES], path[PATH_BYTES];
    PT_TRY(join(ckdir, run_dir, "checkpoints", err));
    struct stat sb;
    if (stat(ckdir, &sb) != 0 && errno == ENOENT) return PT_OK;
    char **names;
    int n;
    PT_TRY(list_names(&names, &n, ckdir, err));
    step_dir *cands = malloc((size_t)(n > 0 ? n : 1) * sizeof *cands);
    if (!cands) free_names(names, n);
    PT_CHECK_ALLOC(cands, err, (size_t)(n > 0 ? n : 1) * sizeof *cands);
    int nc = 0;
    pt_status st = PT_OK;
    for (int i = 0; i < n && st == PT_OK; i++) {
        int64_t s = parse_step_name(names[i], "");
        if (s >= 0) {
            cands[nc++] = (step_dir){s, names[i]};
        } else if (leftover_name(names[i])) {
            if ((st = join(path, ckdir, names[i], err)) == PT_OK)
                st = add_skipped(scan, path, "left over from an interrupted write or removal; not a checkpoint", err);
        }
    }
    qsort(cands, (size_t)nc, sizeof *cands, step_desc);
    for (int i = 0; i < nc && st == PT_OK && !scan->found; i++) {
        if ((st = join(path, ckdir, cands[i].name, err)) != PT_OK) break;
        pt_error why = {0};
        int64_t step;
        if (verify_dir(&step, path, 1, &why) != PT_OK) {
            st = add_skipped(scan, path, why.msg, err);
        } else if (step != cands[i].step) {
            char reason[160];
            snprintf(reason, sizeof reason, "the manifest is for step %lld, not %lld", (long long)step,
                     (long long)cands[i].step);
            st = add_skipped(scan, path, reason, err);
        } else {
            scan->found = true;
            scan->step = step;
            scan->dir = strdup(path);
            if (!scan->dir) st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        }
    }
    free(cands);
    free_names(names, n);
    if (st != PT_OK) ckpt_scan_free(scan);
    return st;
}

/* ---- save ------------------------------------------------------------------------------- */

static pt_status fsync_files_in(const char *dir, pt_error *err) {
    char **names;
    int n;
    PT_TRY(list_names(&names, &n, dir, err));
    char path[PATH_BYTES];
    pt_status st = PT_OK;
    for (int i = 0; i < n && st == PT_OK; i++)
        if ((st = join(path, dir, names[i], err)) == PT_OK) st = fsync_path(path, 0, err);
    free_names(names, n);
    return st;
}

/* Renames dir to <dir>.del (fsync'd), then removes it: a crash mid-way leaves a leftover, not a
 * folder that looks like a damaged checkpoint. */
static pt_status remove_checkpoint(const char *ckdir, const char *name, pt_error *err) {
    char from[PATH_BYTES], to[PATH_BYTES], del[PATH_BYTES];
    PT_TRY(join(from, ckdir, name, err));
    int n = snprintf(del, sizeof del, "%s.del", name);
    if (n < 0 || (size_t)n >= sizeof del) PT_FAIL(err, PT_ERR_INVALID, "checkpoint name '%s' is too long", name);
    PT_TRY(join(to, ckdir, del, err));
    if (path_exists(to)) PT_TRY(remove_flat_dir(to, err));
    if (rename(from, to) != 0) PT_FAIL(err, PT_ERR_IO, "renaming '%s' to '%s': %s", from, to, strerror(errno));
    PT_TRY(fsync_path(ckdir, 1, err));
    return remove_flat_dir(to, err);
}

/* Keeps the new checkpoint and the newest keep − 1 complete ones older than it; removes the other
 * complete older ones and leftover .tmp/.del folders. Newer folders and incomplete ones stay. */
static pt_status apply_retention(const char *ckdir, int64_t new_step, int keep, pt_error *err) {
    char **names;
    int n;
    PT_TRY(list_names(&names, &n, ckdir, err));
    step_dir *old = malloc((size_t)(n > 0 ? n : 1) * sizeof *old);
    if (!old) free_names(names, n);
    PT_CHECK_ALLOC(old, err, (size_t)(n > 0 ? n : 1) * sizeof *old);
    char path[PATH_BYTES];
    pt_status st = PT_OK;
    int nold = 0;
    for (int i = 0; i < n && st == PT_OK; i++) {
        if (parse_step_name(names[i], ".tmp") >= 0 || parse_step_name(names[i], ".del") >= 0) {
            if ((st = join(path, ckdir, names[i], err)) == PT_OK) st = remove_flat_dir(path, err);
            continue;
        }
        int64_t s = parse_step_name(names[i], "");
        if (keep <= 0 || s < 0 || s >= new_step) continue;
        if ((st = join(path, ckdir, names[i], err)) != PT_OK) break;
        pt_error ignored = {0};
        int64_t ms;
        if (verify_dir(&ms, path, 0, &ignored) == PT_OK && ms == s) old[nold++] = (step_dir){s, names[i]};
    }
    qsort(old, (size_t)nold, sizeof *old, step_desc);
    for (int i = keep - 1; i >= 0 && i < nold && st == PT_OK; i++) st = remove_checkpoint(ckdir, old[i].name, err);
    free(old);
    free_names(names, n);
    return st;
}

pt_status train_state_save(char *saved_dir, size_t saved_len, const char *run_dir, const policy_model *m,
                           const optim *opt, const train_progress *p, const train_save_options *o, pt_error *err) {
    if (p->step < 0) PT_FAIL(err, PT_ERR_INVALID, "checkpoint step must be >= 0, got %lld", (long long)p->step);
    if (opt->total != m->layout.total)
        PT_FAIL(err, PT_ERR_INVALID, "optimizer state has %zu floats per moment but the model has %zu", opt->total,
                m->layout.total);
    char ckdir[PATH_BYTES], name[64], final_dir[PATH_BYTES], tmp_dir[PATH_BYTES], old_dir[PATH_BYTES],
        state_path[PATH_BYTES];
    PT_TRY(ensure_dir(run_dir, err));
    PT_TRY(join(ckdir, run_dir, "checkpoints", err));
    PT_TRY(ensure_dir(ckdir, err));
    snprintf(name, sizeof name, "step-%lld", (long long)p->step);
    PT_TRY(join(final_dir, ckdir, name, err));
    int n1 = snprintf(tmp_dir, sizeof tmp_dir, "%s.tmp", final_dir);
    int n2 = snprintf(old_dir, sizeof old_dir, "%s.old", final_dir);
    if (n1 < 0 || n1 >= PATH_BYTES || n2 < 0 || n2 >= PATH_BYTES)
        PT_FAIL(err, PT_ERR_INVALID, "checkpoint path '%s' is too long", final_dir);
    PT_TRY(join(state_path, tmp_dir, TRAIN_STATE_FILE, err));

    pt_status st = PT_OK;
    if (path_exists(tmp_dir)) st = remove_flat_dir(tmp_dir, err);
    if (st == PT_OK && mkdir(tmp_dir, 0755) != 0)
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot create '%s': %s", tmp_dir, strerror(errno));
    if (st != PT_OK) return error_prefix(err, "writing checkpoint step %lld", (long long)p->step);
    st = model_save(m, tmp_dir, o->max_shard_bytes, err);
    if (st == PT_OK) st = train_state_write_file(state_path, opt, p, err);
    if (st == PT_OK) st = fsync_files_in(tmp_dir, err);
    if (st == PT_OK) st = train_state_write_manifest(tmp_dir, p->step, err);
    if (st == PT_OK) st = fsync_path(ckdir, 1, err);
    if (st != PT_OK) {
        pt_error ignored = {0};
        remove_flat_dir(tmp_dir, &ignored); /* best effort: the next save removes it otherwise */
        return error_prefix(err, "writing checkpoint '%s' (earlier checkpoints are untouched)", final_dir);
    }

    /* An existing step-<N> (e.g. a damaged one from before a resume) moves aside until the new
     * one is in place. */
    int replaced = 0;
    if (path_exists(final_dir)) {
        if (path_exists(old_dir)) PT_TRY(remove_flat_dir(old_dir, err));
        if (rename(final_dir, old_dir) != 0)
            PT_FAIL(err, PT_ERR_IO, "moving the existing '%s' aside: %s", final_dir, strerror(errno));
        replaced = 1;
    }
    if (rename(tmp_dir, final_dir) != 0) {
        int e = errno;
        if (replaced) rename(old_dir, final_dir);
        PT_FAIL(err, PT_ERR_IO, "renaming '%s' to '%s': %s", tmp_dir, final_dir, strerror(e));
    }
    if (saved_dir && saved_len) snprintf(saved_dir, saved_len, "%s", final_dir);
    st = fsync_path(ckdir, 1, err);
    if (st == PT_OK && replaced) st = remove_flat_dir(old_dir, err);
    if (st == PT_OK) st = apply_retention(ckdir, p->step, o->keep_last, err);
    if (st != PT_OK)
        return error_prefix(err, "checkpoint '%s' is in place, but syncing its folder or removing older ones failed",
                            final_dir);
    return PT_OK;
}

/* ---- resume ----------------------------------------------------------------------------- */

pt_status train_state_load(policy_model *m, optim *opt, train_progress *p, const char *ckpt_dir,
                           const optim_config *ocfg, uint64_t config_hash, bool allow_config_change, pt_error *err) {
    memset(m, 0, sizeof *m);
    memset(opt, 0, sizeof *opt);
    memset(p, 0, sizeof *p);
    int64_t step;
    if (verify_dir(&step, ckpt_dir, 1, err) != PT_OK) return error_prefix(err, "cannot resume from '%s'", ckpt_dir);
    char path[PATH_BYTES];
    PT_TRY(join(path, ckpt_dir, TRAIN_STATE_FILE, err));
    pt_status st = model_load(m, ckpt_dir, NULL, err);
    if (st != PT_OK) return error_prefix(err, "resuming from '%s'", ckpt_dir);
    if ((st = optim_init(opt, &m->layout, ocfg, err)) == PT_OK && (st = train_state_read_file(p, opt, path, err)) == PT_OK &&
        p->config_hash != config_hash && !allow_config_change)
        st = error_set(err, PT_ERR_CONFIG, __FILE__, __LINE__,
                       "checkpoint '%s' was written with config hash %016" PRIx64 " but this run's config hashes to "
                       "%016" PRIx64 "; resume with the same config, or allow the change deliberately",
                       ckpt_dir, p->config_hash, config_hash);
    if (st != PT_OK) {
        train_progress_free(p);
        optim_free(opt);
        model_free(m);
        return error_prefix(err, "resuming from '%s'", ckpt_dir);
    }
    return PT_OK;
}
