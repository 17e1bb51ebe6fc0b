/* safetensors.h — reading and writing the safetensors format, single files and sharded folders.
 *
 * The format (huggingface/safetensors): an 8-byte little-endian header length N; N bytes of
 * UTF-8 JSON {name: {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}} (the header may end with spaces); then the data buffer. Offsets
 * are relative to the buffer start, tensors are row-major little-endian, and the tensors tile the
 * buffer exactly: sorted by offset, each begins where the previous ends, the first at 0, the last
 * ending at the end of the file — no holes, no overlaps.
 *
 * Reading maps the file read-only and hands out views into the mapping; nothing is copied. Every
 * field of a hostile file is checked before any view is handed out, with PT_ERR_FORMAT and a
 * message naming the file, the tensor and the field: a length prefix larger than the file or
 * above 100 MB, a header that is not UTF-8 or not a JSON object, duplicate names, missing or
 * extra fields, unknown dtypes, shapes that are not lists of non-negative integers or whose
 * product overflows, data_offsets that are not [begin, end] with begin ≤ end ≤ buffer size, sizes
 * that differ from prod(shape)·dtype_size, overlaps, holes, metadata values that are not strings.
 *
 * A folder (a Hugging Face checkpoint) holds either model.safetensors, or
 * model.safetensors.index.json {"metadata": {"total_size": bytes}, "weight_map": {name: shard}}
 * and the shards it names (model-00001-of-0000K.safetensors). The index must agree with the
 * shards: every listed tensor is in its shard, every shard tensor is listed, no name twice.
 * metadata.total_size is informational (checkpoints in the wild disagree on what it counts) and
 * is not checked on read.
 *
 * Writing collects (name, dtype, shape, data pointer) and writes the header (padded with spaces
 * so the buffer starts 8-byte aligned), then the data ordered by decreasing element size so every
 * tensor is aligned to its element size; to a temporary file in the same folder, fsync, rename,
 * fsync of the folder. A folder write over the shard limit writes the shards first and the index
 * last, then removes a stale model.safetensors (and a single-file write removes a stale index),
 * so a reader never sees an index naming shards that are not complete.
 *
 * Limits: at most ST_MAX_DIMS dimensions (PT_ERR_UNSUPPORTED beyond); sub-byte dtypes (F4, F6)
 * are not supported. A mapped file that another process truncates while mapped raises SIGBUS on
 * access — checkpoints are written by rename, never in place, so that does not happen here.
 */
#ifndef POSTTRAIN_MODEL_SAFETENSORS_H
#define POSTTRAIN_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/dtype.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((uint64_t)100000000) /* as the Rust reference implementation */

typedef struct st_tensor {
    const char *name;
    pt_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;      /* product of shape (1 for a scalar) */
    size_t nbytes;     /* numel · dtype_size */
    size_t offset;     /* begin, relative to the data buffer */
    const void *data;  /* read-only view into the mapping; aligned only if the writer aligned it */
    const char *file;  /* path of the file holding it (for messages) */
} st_tensor;

typedef struct st_file {
    char *path;
    int fd;
    void *map;            /* whole file, PROT_READ */
    size_t map_size;
    size_t header_len;    /* N */
    const uint8_t *buffer;
    size_t buffer_size;
    st_tensor *tensors;   /* sorted by name */
    int n_tensors;
    char **meta_keys;     /* __metadata__, sorted by key */
    char **meta_values;
    int n_meta;
    char *strings;        /* one allocation holding every name */
} st_file;

/* Opens, maps and validates the file. On failure *f is left closed (nothing to free). */
pt_status st_file_open(st_file *f, const char *path, pt_error *err);
void st_file_close(st_file *f);
/* The tensor with this name, or NULL. */
const st_tensor *st_file_find(const st_file *f, const char *name);
/* The __metadata__ value for key, or NULL. */
const char *st_file_metadata(const st_file *f, const char *key);

/* out (=) the tensor's values as fp32 (any dtype, see dtype_convert_to_f32); n must equal numel. */
pt_status st_tensor_read_f32(float *out, size_t n, const st_tensor *t, pt_error *err);

typedef struct st_folder {
    char *dir;
    st_file *files;
    int n_files;
    const st_tensor **by_name; /* every tensor of every file, sorted by name */
    size_t n_tensors;
} st_folder;

/* Opens dir/model.safetensors.index.json and its shards if the index exists, else
 * dir/model.safetensors. Shard names in the index must be plain file names (no '/'). */
pt_status st_folder_open(st_folder *d, const char *dir, pt_error *err);
void st_folder_close(st_folder *d);
const st_tensor *st_folder_find(const st_folder *d, const char *name);

typedef struct st_entry {
    char *name;
    pt_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* borrowed: must stay valid until the write */
} st_entry;

typedef struct st_writer {
    st_entry *entries;
    int n_entries, cap_entries;
    char **meta_keys, **meta_values;
    int n_meta;
    size_t total_bytes;
} st_writer;

void st_writer_init(st_writer *w);
void st_writer_free(st_writer *w);
/* Adds a tensor (name copied; data borrowed, nbytes = prod(shape)·dtype_size). Duplicate names,
 * empty names, negative dims and more than ST_MAX_DIMS dims are PT_ERR_INVALID. */
pt_status st_writer_add(st_writer *w, const char *name, pt_dtype dtype, int ndim, const int64_t *shape,
                        const void *data, pt_error *err);
/* Sets a __metadata__ entry (replacing an earlier value). "format": "pt" is added on write when
 * not set, as transformers expects. */
pt_status st_writer_set_metadata(st_writer *w, const char *key, const char *value, pt_error *err);
/* Writes every tensor to one file at path, atomically. */
pt_status st_writer_write(const st_writer *w, const char *path, pt_error *err);
/* Writes dir/model.safetensors when the data fits in max_shard_bytes (0: no limit), else shards
 * of at most max_shard_bytes each (a larger tensor gets a shard of its own), in insertion order,
 * named model-%05d-of-%05d.safetensors, plus model.safetensors.index.json. dir must exist. */
pt_status st_writer_write_folder(const st_writer *w, const char *dir, size_t max_shard_bytes, pt_error *err);

#endif
