/* safetensors.c — safetensors reader (mmap, full validation), writer, and sharded folders.
 *
 * Validation order on open (each step assumes the previous ones passed):
 *   1. file size ≥ 8; N = le64(bytes 0..7); N ≤ 100 MB; 8 + N ≤ file size.
 *   2. header: no NUL byte, valid UTF-8, first byte '{', one JSON object followed only by
 *      JSON whitespace (the spec pads with spaces).
 *   3. each member: "__metadata__" (null or {str: str}) or a tensor object with exactly the
 *      fields dtype (a known name), shape (≤ 8 non-negative integers ≤ 2^53, product and byte size
 *      free of size_t overflow), data_offsets ([begin, end], integers, begin ≤ end ≤ buffer size),
 *      and end − begin == prod(shape)·dtype_size. Names are unique (cJSON keeps duplicates).
 *   4. sorted by (begin, end), the tensors tile [0, buffer size): begin == previous end.
 * JSON numbers arrive as doubles; an integer field accepts only integral values in [0, 2^53]
 * (exact in a double), which covers every offset a real file can have.
 */
#include "model/safetensors.h"

#include "core/utf8.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

/* ---- small helpers -------------------------------------------------------------------------- */

/* A growable string; `oom` sticks once an allocation fails. */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_append(strbuf *sb, const char *s, size_t n) {
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1) cap *= 2;
        char *p = realloc(sb->p, cap);
        if (!p) {
            sb->oom = 1;
            return;
        }
        sb->p = p;
        sb->cap = cap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s) {
    sb_append(sb, s, strlen(s));
}

static void sb_printf(strbuf *sb, const char *fmt, ...) PT_PRINTF(2, 3);
static void sb_printf(strbuf *sb, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        sb->oom = 1;
        return;
    }
    sb_append(sb, tmp, (size_t)n);
}

/* A JSON string literal (UTF-8 passes through; quotes, backslashes and controls are escaped). */
static void sb_json_string(strbuf *sb, const char *s) {
    sb_puts(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') sb_puts(sb, "\\\"");
        else if (c == '\\') sb_puts(sb, "\\\\");
        else if (c < 0x20) sb_printf(sb, "\\u%04x", c);
        else sb_append(sb, (const char *)&c, 1);
    }
    sb_puts(sb, "\"");
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        size_t chunk = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* "a/b/c" → "a/b"; "c" → "."; "/c" → "/". Caller frees. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void fsync_dir(const char *dir) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

/* ---- reading --------------------------------------------------------------------------------- */

/* "a string \"F32\"", "the number 1.5", ... (shortened) for messages. */
static void describe(char *buf, size_t len, const cJSON *item) {
    char *printed = item ? cJSON_PrintUnformatted(item) : NULL;
    char text[48];
    snprintf(text, sizeof text, "%s", printed ? printed : "?");
    if (printed && strlen(printed) >= sizeof text) strcpy(text + sizeof text - 4, "...");
    free(printed);
    const char *kind = !item                 ? "nothing"
                       : cJSON_IsString(item) ? "a string"
                       : cJSON_IsBool(item)   ? "a boolean"
                       : cJSON_IsNull(item)   ? "null"
                       : cJSON_IsNumber(item) ? "the number"
                       : cJSON_IsArray(item)  ? "the list"
                                              : "an object";
    if (!item || cJSON_IsNull(item)) snprintf(buf, len, "%s", kind);
    else if (cJSON_IsObject(item)) snprintf(buf, len, "an object");
    else snprintf(buf, len, "%s %s", kind, text);
}

/* An integer in [0, 2^53], or -1. */
static int64_t json_count(const cJSON *item) {
    if (!cJSON_IsNumber(item)) return -1;
    double v = item->valuedouble;
    if (!(v >= 0) || v > MAX_EXACT_INT || v != floor(v)) return -1;
    return (int64_t)v;
}

typedef struct raw_tensor {
    int index; /* into f->tensors */
    uint64_t begin, end;
} raw_tensor;

static int raw_cmp(const void *a, const void *b) {
    const raw_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static void shape_text(char *buf, size_t len, const st_tensor *t) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

/* Parses one tensor object into t (name already set); begin/end into r. */
static pt_status parse_tensor(st_tensor *t, raw_tensor *r, const cJSON *obj, const st_file *f, pt_error *err) {
    const char *path = f->path, *name = t->name;
    char got[96];
    if (!cJSON_IsObject(obj)) {
        describe(got, sizeof got, obj);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': expected an object {\"dtype\", \"shape\", \"data_offsets\"}, "
                "got %s", path, name, got);
    }
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *it;
    cJSON_ArrayForEach(it, obj) {
        const cJSON **slot = strcmp(it->string, "dtype") == 0          ? &dtype
                             : strcmp(it->string, "shape") == 0        ? &shape
                             : strcmp(it->string, "data_offsets") == 0 ? &offsets
                                                                       : NULL;
        if (!slot)
            PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': unexpected field '%s' (a tensor has exactly dtype, shape "
                    "and data_offsets)", path, name, it->string);
        if (*slot) PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field '%s' appears twice", path, name, it->string);
        *slot = it;
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing) PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': missing field '%s'", path, name, missing);

    if (!cJSON_IsString(dtype)) {
        describe(got, sizeof got, dtype);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'dtype': expected a string such as \"F32\", got %s", path,
                name, got);
    }
    if (dtype_from_name(&t->dtype, dtype->valuestring) != 0)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'dtype': unknown or unsupported dtype \"%.32s\" "
                "(supported: BOOL U8 I8 F8_E5M2 F8_E4M3 F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 I64 U64 F64)", path,
                name, dtype->valuestring);

    if (!cJSON_IsArray(shape)) {
        describe(got, sizeof got, shape);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'shape': expected a list of non-negative integers, got %s",
                path, name, got);
    }
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        PT_FAIL(err, PT_ERR_UNSUPPORTED, "%s: tensor '%s': field 'shape': %d dimensions (posttrain reads at most %d)",
                path, name, ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    size_t numel = 1;
    int overflow = 0;
    int d = 0;
    cJSON_ArrayForEach(it, shape) {
        int64_t v = json_count(it);
        if (v < 0) {
            describe(got, sizeof got, it);
            PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'shape': dimension %d is %s, expected a non-negative "
                    "integer", path, name, d, got);
        }
        t->shape[d++] = v;
        overflow |= __builtin_mul_overflow(numel, (size_t)v, &numel);
    }
    char shp[160];
    shape_text(shp, sizeof shp, t);
    size_t nbytes = 0;
    overflow |= __builtin_mul_overflow(numel, dtype_size(t->dtype), &nbytes);
    if (overflow)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'shape': %s overflows a 64-bit byte count", path, name,
                shp);
    t->numel = numel;
    t->nbytes = nbytes;

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2) {
        describe(got, sizeof got, offsets);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': expected [begin, end], got %s", path, name,
                got);
    }
    int64_t b = json_count(offsets->child), e = json_count(offsets->child->next);
    if (b < 0 || e < 0) {
        describe(got, sizeof got, offsets);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': expected two non-negative integers, got %s",
                path, name, got);
    }
    if (b > e)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': begin %lld > end %lld", path, name,
                (long long)b, (long long)e);
    if ((uint64_t)e > f->buffer_size)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': end %lld is beyond the data buffer (%zu "
                "bytes; file truncated?)", path, name, (long long)e, f->buffer_size);
    if ((uint64_t)(e - b) != nbytes)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': [%lld, %lld] holds %lld bytes, but shape %s "
                "of %s needs %zu", path, name, (long long)b, (long long)e, (long long)(e - b), shp,
                dtype_name(t->dtype), nbytes);
    r->begin = (uint64_t)b;
    r->end = (uint64_t)e;
    t->offset = (size_t)b;
    return PT_OK;
}

static pt_status parse_metadata(st_file *f, const cJSON *meta, pt_error *err) {
    char got[96];
    if (cJSON_IsNull(meta)) return PT_OK;
    if (!cJSON_IsObject(meta)) {
        describe(got, sizeof got, meta);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: field '__metadata__': expected an object of strings, got %s", f->path, got);
    }
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = calloc((size_t)n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc((size_t)n + 1, sizeof *f->meta_values);
    PT_CHECK_ALLOC(f->meta_keys, err, (size_t)n * sizeof(char *));
    PT_CHECK_ALLOC(f->meta_values, err, (size_t)n * sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, meta) {
        if (!cJSON_IsString(it)) {
            describe(got, sizeof got, it);
            PT_FAIL(err, PT_ERR_FORMAT, "%s: field '__metadata__': value of '%s' must be a string, got %s", f->path,
                    it->string, got);
        }
        for (int i = 0; i < f->n_meta; i++)
            if (strcmp(f->meta_keys[i], it->string) == 0)
                PT_FAIL(err, PT_ERR_FORMAT, "%s: field '__metadata__': key '%s' appears twice", f->path, it->string);
        char *k = strdup(it->string), *v = strdup(it->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            PT_FAIL(err, PT_ERR_NOMEM, "%s: out of memory reading __metadata__", f->path);
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
    }
    return PT_OK;
}

/* Steps 3 and 4 of the file comment on a parsed header. */
static pt_status parse_header(st_file *f, const cJSON *root, pt_error *err) {
    int n_members = cJSON_GetArraySize(root);
    const cJSON *it, *meta = NULL;
    size_t names_bytes = 0;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (meta) PT_FAIL(err, PT_ERR_FORMAT, "%s: field '__metadata__' appears twice", f->path);
            meta = it;
        } else {
            names_bytes += strlen(it->string) + 1;
        }
    }
    int n = n_members - (meta ? 1 : 0);
    if (meta) PT_TRY(parse_metadata(f, meta, err));

    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    f->strings = malloc(names_bytes + 1);
    raw_tensor *raw = calloc((size_t)n + 1, sizeof *raw);
    if (!f->tensors || !f->strings || !raw) {
        free(raw);
        PT_FAIL(err, PT_ERR_NOMEM, "%s: out of memory for %d tensor entries", f->path, n);
    }
    char *s = f->strings;
    int k = 0;
    pt_status st = PT_OK;
    cJSON_ArrayForEach(it, root) {
        if (it == meta) continue;
        size_t len = strlen(it->string) + 1;
        memcpy(s, it->string, len);
        st_tensor *t = &f->tensors[k];
        t->name = s;
        t->file = f->path;
        s += len;
        raw[k].index = k;
        st = parse_tensor(t, &raw[k], it, f, err);
        if (st != PT_OK) goto done;
        k++;
    }
    f->n_tensors = n;

    /* step 4: the tensors tile the buffer */
    qsort(raw, (size_t)n, sizeof *raw, raw_cmp);
    uint64_t expected = 0;
    const char *prev = NULL;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = &f->tensors[raw[i].index];
        if (raw[i].begin < expected) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: tensor '%s': field 'data_offsets': [%llu, "
                           "%llu] overlaps tensor '%s', which ends at %llu", f->path, t->name,
                           (unsigned long long)raw[i].begin, (unsigned long long)raw[i].end, prev,
                           (unsigned long long)expected);
            goto done;
        }
        if (raw[i].begin > expected) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: tensor '%s': field 'data_offsets': bytes "
                           "[%llu, %llu) of the data buffer before it belong to no tensor (a hole; the spec requires "
                           "the tensors to cover the buffer)", f->path, t->name, (unsigned long long)expected,
                           (unsigned long long)raw[i].begin);
            goto done;
        }
        expected = raw[i].end;
        prev = t->name;
    }
    if (expected != f->buffer_size) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: bytes [%llu, %zu) at the end of the data buffer "
                       "belong to no tensor (trailing data after %s%s%s)", f->path, (unsigned long long)expected,
                       f->buffer_size, prev ? "tensor '" : "the header", prev ? prev : "", prev ? "'" : "");
        goto done;
    }

    /* views, and unique names */
    for (int i = 0; i < n; i++) f->tensors[i].data = f->buffer + f->tensors[i].offset;
    qsort(f->tensors, (size_t)n, sizeof *f->tensors, tensor_name_cmp);
    for (int i = 1; i < n; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: tensor '%s' appears twice in the header",
                           f->path, f->tensors[i].name);
            goto done;
        }
done:
    free(raw);
    return st;
}

static pt_status open_checked(st_file *f, const char *path, pt_error *err) {
    f->path = strdup(path);
    PT_CHECK_ALLOC(f->path, err, strlen(path) + 1);
    PT_CHECK_ERRNO(f->fd = open(path, O_RDONLY | O_CLOEXEC), err, "cannot open safetensors file '%s'", path);
    struct stat sb;
    PT_CHECK_ERRNO(fstat(f->fd, &sb), err, "cannot stat '%s'", path);
    if (!S_ISREG(sb.st_mode)) PT_FAIL(err, PT_ERR_IO, "%s: not a regular file", path);
    size_t size = (size_t)sb.st_size;
    if (size < 8)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: truncated: %zu bytes, but a safetensors file starts with an 8-byte header "
                "length", path, size);
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (map == MAP_FAILED) PT_FAIL(err, PT_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, size, strerror(errno));
    f->map = map;
    f->map_size = size;
    const uint8_t *bytes = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    if (n > ST_MAX_HEADER)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu bytes): not a safetensors file, or "
                "a corrupted one", path, (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n > size - 8)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header length %llu exceeds the %zu bytes after the length field (file "
                "truncated?)", path, (unsigned long long)n, size - 8);
    if (n == 0) PT_FAIL(err, PT_ERR_FORMAT, "%s: header length is 0; the header must be a JSON object", path);
    f->header_len = (size_t)n;
    f->buffer = bytes + 8 + n;
    f->buffer_size = size - 8 - (size_t)n;

    const char *h = (const char *)bytes + 8;
    const char *nul = memchr(h, '\0', (size_t)n);
    if (nul)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header: NUL byte at offset %zu; the header must be UTF-8 JSON", path,
                (size_t)(nul - h));
    size_t valid = utf8_valid_prefix(h, (size_t)n);
    long bad = valid < (size_t)n ? (long)valid : -1;
    if (bad >= 0)
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header: invalid UTF-8 at offset %ld (byte 0x%02X)", path, bad,
                (unsigned char)h[bad]);
    if (h[0] != '{')
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header: expected a JSON object starting with '{', got byte 0x%02X", path,
                (unsigned char)h[0]);
    char *text = strndup(h, (size_t)n);
    PT_CHECK_ALLOC(text, err, (size_t)n + 1);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: header: not valid JSON (error at header byte %zu of %llu)", path, at,
                (unsigned long long)n);
    }
    size_t at = (size_t)(end - text);
    while (at < n && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) at++;
    pt_status st = PT_OK;
    if (at != n) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: header: unexpected byte 0x%02X at offset %zu after "
                       "the JSON object (only spaces may pad the header)", path, (unsigned char)text[at], at);
    } else if (!cJSON_IsObject(root)) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: header: expected a JSON object", path);
    } else {
        st = parse_header(f, root, err);
    }
    cJSON_Delete(root);
    free(text);
    return st;
}

pt_status st_file_open(st_file *f, const char *path, pt_error *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    pt_status st = open_checked(f, path, err);
    if (st != PT_OK) st_file_close(f);
    return st;
}

void st_file_close(st_file *f) {
    if (f->map) munmap(f->map, f->map_size);
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->tensors);
    free(f->strings);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, tensor_name_cmp);
}

const char *st_file_metadata(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

pt_status st_tensor_read_f32(float *out, size_t n, const st_tensor *t, pt_error *err) {
    if (n != t->numel)
        PT_FAIL(err, PT_ERR_INVALID, "%s: tensor '%s' has %zu elements, the destination %zu", t->file, t->name,
                t->numel, n);
    return dtype_convert_to_f32(out, t->data, t->dtype, n, err);
}

/* ---- folders --------------------------------------------------------------------------------- */

static int tensor_ptr_cmp(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
static pt_status read_text(char **out, const char *path, size_t limit, pt_error *err) {
    *out = NULL;
    int fd;
    PT_CHECK_ERRNO(fd = open(path, O_RDONLY | O_CLOEXEC), err, "cannot open '%s'", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (size_t)sb.st_size > limit) {
        close(fd);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: larger than %zu bytes, or unreadable", path, limit);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    char *text = malloc(size + 1);
    if (!text) close(fd);
    PT_CHECK_ALLOC(text, err, size + 1);
    while (got < size) {
        ssize_t r = read(fd, text + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(text);
        PT_FAIL(err, PT_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    text[size] = '\0';
    if (strlen(text) != size) {
        free(text);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: contains a NUL byte; expected JSON text", path);
    }
    *out = text;
    return PT_OK;
}

/* Checks the index against the opened shards (names of d->files match `shards`). */
static pt_status check_index(const st_folder *d, const cJSON *wm, const char *index_path, pt_error *err) {
    const cJSON *it;
    size_t listed = 0;
    cJSON_ArrayForEach(it, wm) {
        listed++;
        const st_tensor *t = NULL;
        for (int i = 0; i < d->n_files && !t; i++) {
            const char *base = strrchr(d->files[i].path, '/');
            base = base ? base + 1 : d->files[i].path;
            if (strcmp(base, it->valuestring) == 0) {
                t = st_file_find(&d->files[i], it->string);
                if (!t)
                    PT_FAIL(err, PT_ERR_FORMAT, "%s: weight_map lists tensor '%s' in '%s', which does not hold it",
                            index_path, it->string, it->valuestring);
            }
        }
    }
    for (size_t i = 1; i < d->n_tensors; i++)
        if (strcmp(d->by_name[i - 1]->name, d->by_name[i]->name) == 0)
            PT_FAIL(err, PT_ERR_FORMAT, "%s: tensor '%s' is in two shards ('%s' and '%s')", index_path,
                    d->by_name[i]->name, d->by_name[i - 1]->file, d->by_name[i]->file);
    if (listed != d->n_tensors) {
        for (size_t i = 0; i < d->n_tensors; i++)
            if (!cJSON_GetObjectItemCaseSensitive(wm, d->by_name[i]->name))
                PT_FAIL(err, PT_ERR_FORMAT, "%s: shard '%s' holds tensor '%s', which weight_map does not list",
                        index_path, d->by_name[i]->file, d->by_name[i]->name);
        PT_FAIL(err, PT_ERR_FORMAT, "%s: weight_map lists %zu tensors, the shards hold %zu", index_path, listed,
                d->n_tensors);
    }
    return PT_OK;
}

static pt_status build_by_name(st_folder *d, pt_error *err) {
    size_t n = 0;
    for (int i = 0; i < d->n_files; i++) n += (size_t)d->files[i].n_tensors;
    d->by_name = calloc(n + 1, sizeof *d->by_name);
    PT_CHECK_ALLOC(d->by_name, err, (n + 1) * sizeof *d->by_name);
    for (int i = 0; i < d->n_files; i++)
        for (int j = 0; j < d->files[i].n_tensors; j++) d->by_name[d->n_tensors++] = &d->files[i].tensors[j];
    qsort(d->by_name, d->n_tensors, sizeof *d->by_name, tensor_ptr_cmp);
    return PT_OK;
}

static pt_status open_index(st_folder *d, const char *index_path, pt_error *err) {
    char *text = NULL;
    PT_TRY(read_text(&text, index_path, (size_t)256 << 20, err));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    pt_status st = PT_OK;
    const char **shards = NULL;
    if (!root) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: not valid JSON (error at byte %zu)", index_path,
                       end ? (size_t)(end - text) : 0);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: expected an object with a \"weight_map\" object "
                       "{tensor name: shard file}", index_path);
        goto done;
    }
    if (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta)) {
        st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: field 'metadata': expected an object",
                       index_path);
        goto done;
    }
    int n = cJSON_GetArraySize(wm);
    shards = calloc((size_t)n + 1, sizeof *shards);
    if (!shards) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory reading %s", index_path);
        goto done;
    }
    int n_shards = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        const char *s = cJSON_IsString(it) ? it->valuestring : NULL;
        if (!s || !*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
            st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: weight_map: tensor '%s': the shard must be "
                           "a file name in the same folder (no '/'), got %s%s%s", index_path, it->string,
                           s ? "\"" : "", s ? s : "a non-string", s ? "\"" : "");
            goto done;
        }
        for (const cJSON *p = wm->child; p != it; p = p->next)
            if (strcmp(p->string, it->string) == 0) {
                st = error_set(err, PT_ERR_FORMAT, __FILE__, __LINE__, "%s: weight_map lists tensor '%s' twice",
                               index_path, it->string);
                goto done;
            }
        shards[n_shards++] = s;
    }
    qsort(shards, (size_t)n_shards, sizeof *shards, str_ptr_cmp);
    int unique = 0;
    for (int i = 0; i < n_shards; i++)
        if (unique == 0 || strcmp(shards[unique - 1], shards[i]) != 0) shards[unique++] = shards[i];
    d->files = calloc((size_t)unique + 1, sizeof *d->files);
    if (!d->files) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory opening %d shards", unique);
        goto done;
    }
    for (int i = 0; i < unique; i++) {
        char *p = join_path(d->dir, shards[i]);
        if (!p) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
            goto done;
        }
        st = st_file_open(&d->files[i], p, err);
        free(p);
        if (st != PT_OK) {
            error_prefix(err, "%s names shard '%s'", index_path, shards[i]);
            goto done;
        }
        d->n_files++;
    }
    st = build_by_name(d, err);
    if (st == PT_OK) st = check_index(d, wm, index_path, err);
done:
    free(shards);
    cJSON_Delete(root);
    free(text);
    return st;
}

pt_status st_folder_open(st_folder *d, const char *dir, pt_error *err) {
    memset(d, 0, sizeof *d);
    d->dir = strdup(dir);
    PT_CHECK_ALLOC(d->dir, err, strlen(dir) + 1);
    char *index = join_path(dir, INDEX_NAME), *single = join_path(dir, SINGLE_NAME);
    pt_status st = PT_OK;
    struct stat sb;
    if (!index || !single) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
    } else if (stat(index, &sb) == 0) {
        st = open_index(d, index, err);
    } else if (stat(single, &sb) == 0) {
        d->files = calloc(1, sizeof *d->files);
        if (!d->files) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
        } else {
            st = st_file_open(&d->files[0], single, err);
            if (st == PT_OK) d->n_files = 1;
            if (st == PT_OK) st = build_by_name(d, err);
        }
    } else {
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "%s: no %s or %s (is this a Hugging Face checkpoint "
                       "folder?)", dir, SINGLE_NAME, INDEX_NAME);
    }
    free(index);
    free(single);
    if (st != PT_OK) st_folder_close(d);
    return st;
}

void st_folder_close(st_folder *d) {
    for (int i = 0; i < d->n_files; i++) st_file_close(&d->files[i]);
    free(d->files);
    free(d->by_name);
    free(d->dir);
    memset(d, 0, sizeof *d);
}

const st_tensor *st_folder_find(const st_folder *d, const char *name) {
    st_tensor key = {.name = name};
    const st_tensor *kp = &key;
    const st_tensor *const *hit = bsearch(&kp, d->by_name, d->n_tensors, sizeof *d->by_name, tensor_ptr_cmp);
    return hit ? *hit : NULL;
}

/* ---- writing --------------------------------------------------------------------------------- */

void st_writer_init(st_writer *w) {
    memset(w, 0, sizeof *w);
}

void st_writer_free(st_writer *w) {
    for (int i = 0; i < w->n_entries; i++) free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}

pt_status st_writer_add(st_writer *w, const char *name, pt_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, pt_error *err) {
    if (!name || !*name || strcmp(name, "__metadata__") == 0)
        PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: invalid tensor name '%s'", name ? name : "(null)");
    if (utf8_valid_prefix(name, strlen(name)) != strlen(name))
        PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor name '%s' is not valid UTF-8", name);
    if (dtype_size(dtype) == 0) PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s': invalid dtype", name);
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s': %d dimensions (0..%d allowed)", name, ndim,
                ST_MAX_DIMS);
    size_t numel = 1, nbytes;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s': dimension %d is %lld", name, i,
                    (long long)shape[i]);
        overflow |= __builtin_mul_overflow(numel, (size_t)shape[i], &numel);
    }
    overflow |= __builtin_mul_overflow(numel, dtype_size(dtype), &nbytes);
    overflow |= __builtin_add_overflow(w->total_bytes, nbytes, &(size_t){0});
    if (overflow) PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s': size overflows", name);
    if (!data && nbytes) PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s': NULL data", name);
    if (w->n_entries == w->cap_entries) {
        int cap = w->cap_entries ? 2 * w->cap_entries : 64;
        st_entry *e = realloc(w->entries, (size_t)cap * sizeof *e);
        PT_CHECK_ALLOC(e, err, (size_t)cap * sizeof *e);
        w->entries = e;
        w->cap_entries = cap;
    }
    st_entry *e = &w->entries[w->n_entries];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    PT_CHECK_ALLOC(e->name, err, strlen(name) + 1);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = data;
    w->n_entries++;
    w->total_bytes += nbytes;
    return PT_OK;
}

pt_status st_writer_set_metadata(st_writer *w, const char *key, const char *value, pt_error *err) {
    if (utf8_valid_prefix(key, strlen(key)) != strlen(key) ||
        utf8_valid_prefix(value, strlen(value)) != strlen(value))
        PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: metadata '%s' is not valid UTF-8", key);
    char *v = strdup(value);
    PT_CHECK_ALLOC(v, err, strlen(value) + 1);
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return PT_OK;
        }
    size_t n = (size_t)w->n_meta + 1;
    char **keys = realloc(w->meta_keys, n * sizeof *keys);
    if (!keys) free(v);
    PT_CHECK_ALLOC(keys, err, n * sizeof *keys);
    w->meta_keys = keys;
    char **values = realloc(w->meta_values, n * sizeof *values);
    if (!values) free(v);
    PT_CHECK_ALLOC(values, err, n * sizeof *values);
    w->meta_values = values;
    char *k = strdup(key);
    if (!k) free(v);
    PT_CHECK_ALLOC(k, err, strlen(key) + 1);
    w->meta_keys[w->n_meta] = k;
    w->meta_values[w->n_meta] = v;
    w->n_meta++;
    return PT_OK;
}

/* Largest element first (stable), so every tensor is aligned to its element size. */
static int entry_order_cmp(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    size_t sx = dtype_size(x->dtype), sy = dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int entry_name_cmp(const void *a, const void *b) {
    return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

/* Creates a temp file beside `path`; on success *fd and *tmp (malloc'ed) are set. */
static pt_status create_temp(int *fd, char **tmp, const char *path, pt_error *err) {
    size_t n = strlen(path) + 16;
    *tmp = malloc(n);
    PT_CHECK_ALLOC(*tmp, err, n);
    snprintf(*tmp, n, "%s.tmp.XXXXXX", path);
    *fd = mkstemp(*tmp);
    if (*fd < 0) {
        int e = errno;
        free(*tmp);
        *tmp = NULL;
        PT_FAIL(err, PT_ERR_IO, "cannot create a temporary file beside '%s': %s", path, strerror(e));
    }
    (void)fchmod(*fd, 0644); /* best effort: mkstemp's 0600 would hide checkpoints from other users */
    return PT_OK;
}

/* fsync, close, rename over path, fsync the folder; unlinks the temp file on failure. */
static pt_status commit_temp(int fd, char *tmp, const char *path, int write_ok, int write_errno, pt_error *err) {
    int e = write_errno;
    int ok = write_ok;
    if (ok && fsync(fd) != 0) ok = 0, e = errno;
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        free(tmp);
        PT_FAIL(err, PT_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    free(tmp);
    char *dir = dir_of(path);
    if (dir) fsync_dir(dir);
    free(dir);
    return PT_OK;
}

/* Writes the n entries of `list` (in that order of preference, reordered for alignment) to path. */
static pt_status write_entries(const st_entry **list, int n, const st_writer *w, const char *path, pt_error *err) {
    const st_entry **order = malloc(((size_t)n + 1) * sizeof *order);
    PT_CHECK_ALLOC(order, err, ((size_t)n + 1) * sizeof *order);
    memcpy(order, list, (size_t)n * sizeof *order);
    qsort(order, (size_t)n, sizeof *order, entry_order_cmp);

    strbuf h = {0};
    sb_puts(&h, "{\"__metadata__\":{");
    int has_format = 0;
    for (int i = 0; i < w->n_meta; i++) {
        if (i) sb_puts(&h, ",");
        sb_json_string(&h, w->meta_keys[i]);
        sb_puts(&h, ":");
        sb_json_string(&h, w->meta_values[i]);
        has_format |= strcmp(w->meta_keys[i], "format") == 0;
    }
    if (!has_format) sb_puts(&h, w->n_meta ? ",\"format\":\"pt\"" : "\"format\":\"pt\"");
    sb_puts(&h, "}");
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = order[i];
        sb_puts(&h, ",");
        sb_json_string(&h, e->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(e->dtype));
        for (int k = 0; k < e->ndim; k++) sb_printf(&h, "%s%lld", k ? "," : "", (long long)e->shape[k]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + e->nbytes);
        offset += e->nbytes;
    }
    sb_puts(&h, "}");
    while ((8 + h.len) % 8) sb_puts(&h, " ");
    if (h.oom) {
        free(h.p);
        free(order);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory building the safetensors header for '%s'", path);
    }

    int fd;
    char *tmp;
    pt_status st = create_temp(&fd, &tmp, path, err);
    if (st != PT_OK) {
        free(h.p);
        free(order);
        return st;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    int ok = write_all(fd, len8, 8) == 0 && write_all(fd, h.p, h.len) == 0;
    for (int i = 0; ok && i < n; i++)
        if (order[i]->nbytes) ok = write_all(fd, order[i]->data, order[i]->nbytes) == 0;
    int e = errno;
    free(h.p);
    free(order);
    return commit_temp(fd, tmp, path, ok, e, err);
}

/* Duplicate names are a caller bug: refuse before writing anything. */
static pt_status check_unique(const st_writer *w, pt_error *err) {
    const st_entry **sorted = malloc(((size_t)w->n_entries + 1) * sizeof *sorted);
    PT_CHECK_ALLOC(sorted, err, ((size_t)w->n_entries + 1) * sizeof *sorted);
    for (int i = 0; i < w->n_entries; i++) sorted[i] = &w->entries[i];
    qsort(sorted, (size_t)w->n_entries, sizeof *sorted, entry_name_cmp);
    for (int i = 1; i < w->n_entries; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            const char *name = sorted[i]->name;
            free(sorted);
            PT_FAIL(err, PT_ERR_INVALID, "safetensors writer: tensor '%s' was added twice", name);
        }
    free(sorted);
    return PT_OK;
}

pt_status st_writer_write(const st_writer *w, const char *path, pt_error *err) {
    PT_TRY(check_unique(w, err));
    const st_entry **list = malloc(((size_t)w->n_entries + 1) * sizeof *list);
    PT_CHECK_ALLOC(list, err, ((size_t)w->n_entries + 1) * sizeof *list);
    for (int i = 0; i < w->n_entries; i++) list[i] = &w->entries[i];
    pt_status st = write_entries(list, w->n_entries, w, path, err);
    free(list);
    return st;
}

static pt_status remove_if_present(const char *dir, const char *name, pt_error *err) {
    char *p = join_path(dir, name);
    PT_CHECK_ALLOC(p, err, strlen(dir) + strlen(name) + 2);
    int rc = unlink(p);
    int e = errno;
    free(p);
    if (rc != 0 && e != ENOENT) PT_FAIL(err, PT_ERR_IO, "cannot remove stale '%s/%s': %s", dir, name, strerror(e));
    if (rc == 0) fsync_dir(dir);
    return PT_OK;
}

static pt_status write_index(const st_writer *w, const int *shard_of, int n_shards, const char *dir, pt_error *err) {
    const st_entry **sorted = malloc(((size_t)w->n_entries + 1) * sizeof *sorted);
    PT_CHECK_ALLOC(sorted, err, ((size_t)w->n_entries + 1) * sizeof *sorted);
    for (int i = 0; i < w->n_entries; i++) sorted[i] = &w->entries[i];
    qsort(sorted, (size_t)w->n_entries, sizeof *sorted, entry_name_cmp);
    strbuf s = {0};
    sb_printf(&s, "{\n  \"metadata\": {\n    \"total_size\": %zu\n  },\n  \"weight_map\": {", w->total_bytes);
    for (int i = 0; i < w->n_entries; i++) {
        sb_puts(&s, i ? ",\n    " : "\n    ");
        sb_json_string(&s, sorted[i]->name);
        sb_printf(&s, ": \"model-%05d-of-%05d.safetensors\"", shard_of[sorted[i] - w->entries] + 1, n_shards);
    }
    sb_puts(&s, "\n  }\n}\n");
    free(sorted);
    char *path = join_path(dir, INDEX_NAME);
    if (s.oom || !path) {
        free(s.p);
        free(path);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory writing the safetensors index");
    }
    int fd;
    char *tmp;
    pt_status st = create_temp(&fd, &tmp, path, err);
    if (st == PT_OK) {
        int ok = write_all(fd, s.p, s.len) == 0;
        st = commit_temp(fd, tmp, path, ok, errno, err);
    }
    free(s.p);
    free(path);
    return st;
}

pt_status st_writer_write_folder(const st_writer *w, const char *dir, size_t max_shard_bytes, pt_error *err) {
    PT_TRY(check_unique(w, err));
    if (max_shard_bytes == 0 || w->total_bytes <= max_shard_bytes) {
        char *path = join_path(dir, SINGLE_NAME);
        PT_CHECK_ALLOC(path, err, strlen(dir) + sizeof SINGLE_NAME + 1);
        pt_status st = st_writer_write(w, path, err);
        free(path);
        PT_TRY(st);
        return remove_if_present(dir, INDEX_NAME, err);
    }
    /* greedy shards in insertion order */
    int *shard_of = malloc(((size_t)w->n_entries + 1) * sizeof *shard_of);
    const st_entry **list = malloc(((size_t)w->n_entries + 1) * sizeof *list);
    if (!shard_of || !list) {
        free(shard_of);
        free(list);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory planning shards");
    }
    int n_shards = 0;
    size_t used = 0;
    for (int i = 0; i < w->n_entries; i++) {
        size_t b = w->entries[i].nbytes;
        if (n_shards == 0 || (used > 0 && used + b > max_shard_bytes)) {
            n_shards++;
            used = 0;
        }
        shard_of[i] = n_shards - 1;
        used += b;
    }
    pt_status st = PT_OK;
    for (int s = 0; s < n_shards && st == PT_OK; s++) {
        int n = 0;
        for (int i = 0; i < w->n_entries; i++)
            if (shard_of[i] == s) list[n++] = &w->entries[i];
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *path = join_path(dir, name);
        if (!path) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory");
            break;
        }
        st = write_entries(list, n, w, path, err);
        free(path);
    }
    if (st == PT_OK) st = write_index(w, shard_of, n_shards, dir, err);
    if (st == PT_OK) st = remove_if_present(dir, SINGLE_NAME, err);
    free(shard_of);
    free(list);
    return st;
}
