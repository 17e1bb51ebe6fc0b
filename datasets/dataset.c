/* dataset.c — opening, indexing and reading datasets (see dataset.h).
 *
 * Opening makes one pass: each line (JSONL) or row (SQLite) is parsed, checked and tokenised
 * exactly as dataset_get will later do, so every bad record is found before training starts and
 * the index knows each example's token count (packing plans with it). The index holds, per
 * accepted record, its byte offset and size in the source, its line and its token count; the
 * record itself is re-read (pread on the JSONL file, or the in-memory rows of a query) when asked
 * for. The fingerprint hashes the index (FNV-1a 64) so that a cursor saved against one version
 * of a file refuses another.
 */
#include "datasets/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "datasets/example.h"
#include "datasets/sqlite_source.h"

typedef struct record_ref {
    uint64_t offset; /* of the record's first byte in the file, or in ds->mem */
    uint64_t line;   /* 1-based line or row */
    uint32_t bytes;  /* record length without its line ending */
    uint32_t tokens; /* token count after truncation (the longer sequence for preference) */
} record_ref;

struct dataset {
    char *label;       /* path used in messages */
    bool rows;         /* a SQLite query (locations read "row N") */
    FILE *file;        /* JSONL: the open file (pread on its descriptor after indexing) */
    char *mem;         /* SQLite: the rows as NUL-terminated JSON texts */
    size_t mem_len, mem_cap;
    dataset_options opt;
    example_ctx ctx;
    dataset_format format;
    uint64_t format_line; /* where the shape was detected (0: set by the format option) */
    record_ref *recs;     /* (n) */
    size_t n, cap;
    size_t max_tokens;
    uint64_t fingerprint;
    dataset_skips skips;
    char *buf;            /* scratch for reading one record */
    size_t buf_cap;
};

/* ------------------------------------------------------------------------------- names */

static const char *const FORMAT_NAMES[] = {
    [DATASET_FORMAT_AUTO] = "auto",         [DATASET_FORMAT_TEXT] = "text",
    [DATASET_FORMAT_PROMPT_COMPLETION] = "prompt_completion", [DATASET_FORMAT_MESSAGES] = "messages",
    [DATASET_FORMAT_PROMPT] = "prompt",     [DATASET_FORMAT_PREFERENCE] = "preference",
};
static const char *const TRUNCATION_NAMES[] = {
    [DATASET_TRUNCATE_AUTO] = "auto", [DATASET_TRUNCATE_RIGHT] = "right",
    [DATASET_TRUNCATE_LEFT] = "left", [DATASET_TRUNCATE_ERROR] = "error",
};
static const char *const ON_BAD_NAMES[] = {[DATASET_ON_BAD_ERROR] = "error", [DATASET_ON_BAD_SKIP] = "skip"};
static const char *const REASON_NAMES[] = {
    [DATASET_BAD_JSON] = "json",         [DATASET_BAD_TYPE] = "type",     [DATASET_BAD_MISSING] = "missing",
    [DATASET_BAD_EMPTY] = "empty",       [DATASET_BAD_TOO_LONG] = "too_long", [DATASET_BAD_UTF8] = "utf8",
    [DATASET_BAD_MESSAGE] = "message",
};
static const char *const REASON_TEXT[] = {
    [DATASET_BAD_JSON] = "malformed JSON",    [DATASET_BAD_TYPE] = "wrong type",
    [DATASET_BAD_MISSING] = "missing field",  [DATASET_BAD_EMPTY] = "empty",
    [DATASET_BAD_TOO_LONG] = "over max_length", [DATASET_BAD_UTF8] = "invalid UTF-8",
    [DATASET_BAD_MESSAGE] = "unsupported message",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static pt_status parse_name(int *out, const char *const *names, size_t n, const char *what, const char *name,
                            pt_error *err) {
    char list[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (name && strcmp(name, names[i]) == 0) {
            *out = (int)i;
            return PT_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    PT_FAIL(err, PT_ERR_CONFIG, "%s \"%s\" is not one of: %s", what, name ? name : "(null)", list);
}

pt_status dataset_format_parse(dataset_format *out, const char *name, pt_error *err) {
    int v;
    PT_TRY(parse_name(&v, FORMAT_NAMES, N_OF(FORMAT_NAMES), "dataset format", name, err));
    *out = (dataset_format)v;
    return PT_OK;
}
pt_status dataset_on_bad_parse(dataset_on_bad *out, const char *name, pt_error *err) {
    int v;
    PT_TRY(parse_name(&v, ON_BAD_NAMES, N_OF(ON_BAD_NAMES), "on_bad_line", name, err));
    *out = (dataset_on_bad)v;
    return PT_OK;
}
pt_status dataset_truncation_parse(dataset_truncation *out, const char *name, pt_error *err) {
    int v;
    PT_TRY(parse_name(&v, TRUNCATION_NAMES, N_OF(TRUNCATION_NAMES), "truncation", name, err));
    *out = (dataset_truncation)v;
    return PT_OK;
}
const char *dataset_format_name(dataset_format f) { return (unsigned)f < N_OF(FORMAT_NAMES) ? FORMAT_NAMES[f] : "?"; }
const char *dataset_bad_reason_name(dataset_bad_reason r) {
    return (unsigned)r < N_OF(REASON_NAMES) ? REASON_NAMES[r] : "?";
}

void dataset_options_default(dataset_options *o) {
    *o = (dataset_options){.format = DATASET_FORMAT_AUTO,
                           .on_bad_line = DATASET_ON_BAD_ERROR,
                           .truncation = DATASET_TRUNCATE_AUTO,
                           .max_length = 1024,
                           .completion_only_loss = -1,
                           .assistant_only_loss = false,
                           .chat_format = NULL,
                           .keep_final_think = false};
}

/* ------------------------------------------------------------------------------- accessors */

size_t dataset_size(const dataset *ds) { return ds->n; }
dataset_format dataset_get_format(const dataset *ds) { return ds->format; }
const char *dataset_label(const dataset *ds) { return ds->label; }
size_t dataset_tokens(const dataset *ds, size_t i) { return i < ds->n ? ds->recs[i].tokens : 0; }
size_t dataset_max_tokens(const dataset *ds) { return ds->max_tokens; }
uint64_t dataset_line(const dataset *ds, size_t i) { return i < ds->n ? ds->recs[i].line : 0; }
uint64_t dataset_fingerprint(const dataset *ds) { return ds->fingerprint; }
int32_t dataset_eos_id(const dataset *ds) { return ds->ctx.eos_id; }
const dataset_skips *dataset_skip_stats(const dataset *ds) { return &ds->skips; }

void dataset_free(dataset *ds) {
    if (!ds) return;
    if (ds->file) fclose(ds->file);
    free(ds->label);
    free(ds->mem);
    free(ds->recs);
    free(ds->buf);
    free(ds);
}

/* "train.jsonl:17" or "run.db:row 17" */
static void location(char *out, size_t len, const dataset *ds, uint64_t line) {
    snprintf(out, len, "%s:%s%llu", ds->label, ds->rows ? "row " : "", (unsigned long long)line);
}

static void bad_message(char *out, size_t len, const dataset *ds, uint64_t line, const record_bad *bad) {
    char loc[600];
    location(loc, sizeof loc, ds, line);
    if (bad->field[0]) snprintf(out, len, "%s: field '%s': %s", loc, bad->field, bad->msg);
    else snprintf(out, len, "%s: %s", loc, bad->msg);
}

size_t dataset_skip_report(char *buf, size_t len, const dataset *ds) {
    const dataset_skips *s = &ds->skips;
    if (len) buf[0] = '\0';
    if (s->total == 0 && s->blank_lines == 0) return 0;
    size_t used = 0;
#define ADD(...)                                                                                                       \
    do {                                                                                                               \
        int k_ = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0, __VA_ARGS__);                  \
        if (k_ > 0) used += (size_t)k_;                                                                                \
    } while (0)
    ADD("%s: skipped %zu of %zu records", ds->label, s->total, s->total + ds->n);
    const char *sep = ": ";
    for (int r = 0; r < DATASET_BAD_COUNT; r++) {
        if (!s->by_reason[r]) continue;
        ADD("%s%zu %s (first: %s)", sep, s->by_reason[r], REASON_TEXT[r], s->first[r]);
        sep = "; ";
    }
    if (s->blank_lines) ADD("; %zu blank line%s ignored", s->blank_lines, s->blank_lines == 1 ? "" : "s");
#undef ADD
    return used;
}

/* ------------------------------------------------------------------------------- indexing */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static pt_status resolve_format(dataset *ds, dataset_format f, uint64_t line, pt_error *err) {
    ds->format = f;
    ds->format_line = line;
    if (ds->opt.truncation == DATASET_TRUNCATE_AUTO)
        ds->ctx.truncation = f == DATASET_FORMAT_PROMPT ? DATASET_TRUNCATE_LEFT : DATASET_TRUNCATE_RIGHT;
    if (ds->opt.assistant_only_loss && (f == DATASET_FORMAT_TEXT || f == DATASET_FORMAT_PROMPT))
        PT_FAIL(err, PT_ERR_CONFIG,
                "%s: assistant_only_loss needs conversational data (messages, or prompt/completion as lists of "
                "messages), but the dataset has the shape '%s'",
                ds->label, dataset_format_name(f));
    return PT_OK;
}

/* A rejected record: an error, or a counted skip. */
static pt_status reject(dataset *ds, uint64_t line, const record_bad *bad, pt_error *err) {
    char msg[1024];
    bad_message(msg, sizeof msg, ds, line, bad);
    if (bad->mixed) {
        char from[64];
        if (ds->format_line) snprintf(from, sizeof from, "detected from %s %llu", ds->rows ? "row" : "line",
                                      (unsigned long long)ds->format_line);
        else snprintf(from, sizeof from, "set by the format option");
        PT_FAIL(err, PT_ERR_FORMAT, "%s, but the dataset's shape is '%s' (%s); a dataset holds one shape", msg,
                dataset_format_name(ds->format), from);
    }
    if (ds->opt.on_bad_line == DATASET_ON_BAD_ERROR)
        PT_FAIL(err, PT_ERR_FORMAT, "%s (set on_bad_line to skip to leave such records out)", msg);
    dataset_skips *s = &ds->skips;
    if (s->by_reason[bad->reason]++ == 0) {
        size_t k = strnlen(msg, sizeof s->first[0] - 1); /* a long message is cut, not overrun */
        memcpy(s->first[bad->reason], msg, k);
        s->first[bad->reason][k] = '\0';
    }
    s->total++;
    return PT_OK;
}

/* Parse, check and tokenise one record; *tokens gets its length. *good false: already rejected
 * (counted or turned into an error by reject). */
static pt_status check_record(dataset *ds, dataset_example *ex, bool *good, const char *text, size_t len,
                              uint64_t line, pt_error *err) {
    record r;
    record_bad bad = {0};
    PT_TRY(record_parse(&r, good, &bad, text, len, ds->format, err));
    if (*good) {
        if (ds->format == DATASET_FORMAT_AUTO) {
            pt_status st = resolve_format(ds, r.format, line, err);
            if (st != PT_OK) {
                record_free(&r);
                return st;
            }
        }
        pt_status st = example_build(ex, good, &bad, &ds->ctx, &r, text, err);
        record_free(&r);
        if (st != PT_OK) {
            char loc[600];
            location(loc, sizeof loc, ds, line);
            return error_prefix(err, "%s", loc);
        }
    }
    if (!*good) return reject(ds, line, &bad, err);
    return PT_OK;
}

static pt_status index_record(dataset *ds, const char *text, size_t len, uint64_t offset, uint64_t line,
                              const record_bad *pre, pt_error *err) {
    if (pre) return reject(ds, line, pre, err);
    if (len > UINT32_MAX)
        PT_FAIL(err, PT_ERR_FORMAT, "%s:%llu: a record of %zu bytes is over the 4 GiB limit", ds->label,
                (unsigned long long)line, len);
    dataset_example ex = {0};
    bool good;
    PT_TRY(check_record(ds, &ex, &good, text, len, line, err));
    if (!good) return PT_OK;
    size_t tokens = ex.seq.n > ex.rejected.n ? ex.seq.n : ex.rejected.n;
    dataset_example_free(&ex);
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? 2 * ds->cap : 1024;
        record_ref *p = realloc(ds->recs, cap * sizeof *p);
        PT_CHECK_ALLOC(p, err, cap * sizeof *p);
        ds->recs = p;
        ds->cap = cap;
    }
    ds->recs[ds->n++] =
        (record_ref){.offset = offset, .line = line, .bytes = (uint32_t)len, .tokens = (uint32_t)tokens};
    if (tokens > ds->max_tokens) ds->max_tokens = tokens;
    return PT_OK;
}

static bool blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 0x20) return false;
    return true;
}

static pt_status dataset_new(dataset **out, const char *label, tokenizer *tok, const dataset_options *opts,
                             pt_error *err) {
    dataset *ds = calloc(1, sizeof *ds);
    PT_CHECK_ALLOC(ds, err, sizeof *ds);
    *out = ds;
    ds->label = strdup(label);
    PT_CHECK_ALLOC(ds->label, err, strlen(label));
    if (opts) ds->opt = *opts;
    else dataset_options_default(&ds->opt);
    const dataset_options *o = &ds->opt;
    PT_CHECK(tok, err, PT_ERR_INVALID, "%s: a dataset needs a tokenizer", label);
    PT_CHECK((unsigned)o->format < N_OF(FORMAT_NAMES) && (unsigned)o->truncation < N_OF(TRUNCATION_NAMES) &&
                 (unsigned)o->on_bad_line < N_OF(ON_BAD_NAMES),
             err, PT_ERR_CONFIG, "%s: dataset options out of range", label);
    example_ctx *c = &ds->ctx;
    c->tok = tok;
    c->bos = tokenizer_bos_token(tok);
    c->eos = tokenizer_eos_token(tok);
    c->eos_id = tokenizer_eos_id(tok);
    c->truncation = o->truncation;
    c->max_length = o->max_length;
    c->completion_only = o->completion_only_loss != 0;
    c->assistant_only = o->assistant_only_loss;
    c->keep_final_think = o->keep_final_think;
    if (o->chat_format) {
        PT_TRY(chat_format_parse(&c->chat, o->chat_format, err));
        c->has_chat = true;
    } else c->has_chat = chat_format_from_jinja(&c->chat, tokenizer_chat_template(tok));
    if (o->format != DATASET_FORMAT_AUTO) PT_TRY(resolve_format(ds, o->format, 0, err));
    return PT_OK;
}

static pt_status finish_open(dataset *ds, pt_error *err) {
    if (ds->n == 0) {
        char report[2048];
        dataset_skip_report(report, sizeof report, ds);
        PT_FAIL(err, PT_ERR_FORMAT, "%s holds no usable records%s%s", ds->label, report[0] ? ": " : "", report);
    }
    uint64_t h = fnv1a(0xcbf29ce484222325ull, &ds->format, sizeof ds->format);
    for (size_t i = 0; i < ds->n; i++) {
        const record_ref *r = &ds->recs[i];
        uint64_t v[4] = {r->offset, r->line, r->bytes, r->tokens};
        h = fnv1a(h, v, sizeof v);
    }
    ds->fingerprint = h;
    return PT_OK;
}

pt_status dataset_open_jsonl(dataset **out, const char *path, tokenizer *tok, const dataset_options *opts,
                             pt_error *err) {
    dataset *ds = NULL;
    pt_status st = dataset_new(&ds, path, tok, opts, err);
    if (st != PT_OK) goto fail;
    ds->file = fopen(path, "rb");
    if (!ds->file) {
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "cannot open dataset %s: %s", path, strerror(errno));
        goto fail;
    }
    char *line = NULL;
    size_t cap = 0;
    uint64_t offset = 0, line_no = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, ds->file)) != -1) {
        size_t n = (size_t)got, skip = 0;
        uint64_t at = offset;
        offset += n;
        line_no++;
        if (line_no == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) skip = 3; /* a UTF-8 BOM */
        while (n > skip && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        line[n] = '\0';
        if (blank(line + skip, n - skip)) {
            ds->skips.blank_lines++;
            continue;
        }
        st = index_record(ds, line + skip, n - skip, at + skip, line_no, NULL, err);
        if (st != PT_OK) break;
    }
    if (st == PT_OK && ferror(ds->file))
        st = error_set(err, PT_ERR_IO, __FILE__, __LINE__, "reading dataset %s failed: %s", path, strerror(errno));
    free(line);
    if (st == PT_OK) st = finish_open(ds, err);
    if (st != PT_OK) goto fail;
    *out = ds;
    return PT_OK;
fail:
    dataset_free(ds);
    *out = NULL;
    return st;
}

static pt_status sqlite_row(void *ctx, const char *json, size_t len, uint64_t row, const record_bad *bad,
                            pt_error *err) {
    dataset *ds = ctx;
    if (!json) return index_record(ds, NULL, 0, 0, row, bad, err);
    if (ds->mem_len + len + 1 > ds->mem_cap) {
        size_t cap = ds->mem_cap ? ds->mem_cap : 4096;
        while (cap < ds->mem_len + len + 1) cap *= 2;
        char *p = realloc(ds->mem, cap);
        PT_CHECK_ALLOC(p, err, cap);
        ds->mem = p;
        ds->mem_cap = cap;
    }
    memcpy(ds->mem + ds->mem_len, json, len + 1);
    size_t before = ds->n;
    PT_TRY(index_record(ds, ds->mem + ds->mem_len, len, ds->mem_len, row, NULL, err));
    if (ds->n > before) ds->mem_len += len + 1; /* rejected rows are not kept */
    return PT_OK;
}

pt_status dataset_open_sqlite(dataset **out, const char *db_path, const char *sql, tokenizer *tok,
                              const dataset_options *opts, pt_error *err) {
    dataset *ds = NULL;
    pt_status st = dataset_new(&ds, db_path, tok, opts, err);
    if (st == PT_OK) {
        ds->rows = true;
        st = sqlite_source_each_row(db_path, sql, sqlite_row, ds, err);
    }
    if (st == PT_OK) st = finish_open(ds, err);
    if (st != PT_OK) {
        dataset_free(ds);
        *out = NULL;
        return st;
    }
    *out = ds;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- reading */

static pt_status read_record(const char **text, dataset *ds, const record_ref *r, pt_error *err) {
    if (ds->rows) {
        *text = ds->mem + r->offset;
        return PT_OK;
    }
    if (ds->buf_cap < (size_t)r->bytes + 1) {
        char *p = realloc(ds->buf, (size_t)r->bytes + 1);
        PT_CHECK_ALLOC(p, err, (size_t)r->bytes + 1);
        ds->buf = p;
        ds->buf_cap = (size_t)r->bytes + 1;
    }
    size_t done = 0;
    while (done < r->bytes) {
        ssize_t k = pread(fileno(ds->file), ds->buf + done, r->bytes - done, (off_t)(r->offset + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            PT_FAIL(err, PT_ERR_IO, "%s:%llu: cannot re-read the record (%s); was the file changed or truncated?",
                    ds->label, (unsigned long long)r->line, k < 0 ? strerror(errno) : "end of file");
        done += (size_t)k;
    }
    ds->buf[r->bytes] = '\0';
    *text = ds->buf;
    return PT_OK;
}

pt_status dataset_get(dataset_example *ex, dataset *ds, size_t i, pt_error *err) {
    dataset_example_free(ex);
    PT_CHECK(i < ds->n, err, PT_ERR_INVALID, "%s: record %zu is out of range (the dataset has %zu)", ds->label, i,
             ds->n);
    const record_ref *r = &ds->recs[i];
    const char *text = NULL;
    PT_TRY(read_record(&text, ds, r, err));
    record rec;
    record_bad bad = {0};
    bool good;
    char loc[600];
    location(loc, sizeof loc, ds, r->line);
    PT_TRY(record_parse(&rec, &good, &bad, text, r->bytes, ds->format, err));
    if (good) {
        pt_status st = example_build(ex, &good, &bad, &ds->ctx, &rec, text, err);
        record_free(&rec);
        if (st != PT_OK) return error_prefix(err, "%s", loc);
    }
    size_t tokens = good ? (ex->seq.n > ex->rejected.n ? ex->seq.n : ex->rejected.n) : 0;
    if (!good || tokens != r->tokens) {
        char msg[1024];
        if (!good) bad_message(msg, sizeof msg, ds, r->line, &bad);
        else snprintf(msg, sizeof msg, "%s: now %zu tokens, %u when indexed", loc, tokens, r->tokens);
        dataset_example_free(ex);
        PT_FAIL(err, PT_ERR_FORMAT, "%s changed after it was opened: %s", ds->label, msg);
    }
    ex->index = i;
    ex->line = r->line;
    return PT_OK;
}

pt_status dataset_columns_json(char **out, const dataset_example *ex, pt_error *err) {
    size_t cap = 3;
    char **names = calloc(ex->n_columns ? ex->n_columns : 1, sizeof *names);
    PT_CHECK_ALLOC(names, err, ex->n_columns * sizeof *names);
    pt_status st = PT_OK;
    for (size_t i = 0; i < ex->n_columns; i++) {
        cJSON *s = cJSON_CreateString(ex->columns[i].name);
        names[i] = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
        if (!names[i]) {
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory building the columns of a prompt");
            goto done;
        }
        cap += strlen(names[i]) + strlen(ex->columns[i].json) + 2;
    }
    char *s = malloc(cap);
    if (!s) {
        st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory (%zu bytes)", cap);
        goto done;
    }
    size_t k = 0;
    s[k++] = '{';
    for (size_t i = 0; i < ex->n_columns; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%s:%s", i ? "," : "", names[i], ex->columns[i].json);
    s[k++] = '}';
    s[k] = '\0';
    free(*out);
    *out = s;
done:
    for (size_t i = 0; i < ex->n_columns; i++) free(names[i]);
    free(names);
    return st;
}
