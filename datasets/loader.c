/* loader.c — shuffling, batching, packing and the resumable cursor (see loader.h).
 *
 * Invariant that makes resume exact: building a batch reads only (cursor.epoch,
 * cursor.position), the dataset and the options, and writes only the batch and the cursor;
 * nothing else carries over between calls, so a loader restored from a cursor hands out the
 * same batches as the one that saved it.
 */
#include "datasets/loader.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

#define SHUFFLE_TAG 0x73687566666c65ull /* "shuffle" */

pt_status dataset_packing_parse(dataset_packing *out, const char *name, pt_error *err) {
    static const char *const names[] = {"none", "greedy", "first_fit"};
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (dataset_packing)i;
            return PT_OK;
        }
    PT_FAIL(err, PT_ERR_CONFIG, "packing \"%s\" is not one of: none, greedy, first_fit", name ? name : "(null)");
}

/* ------------------------------------------------------------------------------- cursor */

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void dataset_cursor_encode(unsigned char out[DATASET_CURSOR_BYTES], const dataset_cursor *c) {
    memcpy(out, "PTDC", 4);
    for (int i = 0; i < 4; i++) out[4 + i] = (unsigned char)((uint32_t)DATASET_CURSOR_VERSION >> (8 * i));
    const uint64_t v[7] = {c->epoch, c->position, c->batches, c->seed, c->shuffle, c->n_examples, c->fingerprint};
    for (int i = 0; i < 7; i++) put_u64(out + 8 + 8 * i, v[i]);
}

pt_status dataset_cursor_decode(dataset_cursor *c, const unsigned char *bytes, size_t n, pt_error *err) {
    if (n != DATASET_CURSOR_BYTES || !bytes || memcmp(bytes, "PTDC", 4) != 0)
        PT_FAIL(err, PT_ERR_FORMAT, "the saved data cursor is not a posttrain dataset cursor (%zu bytes, expected %d "
                "starting with PTDC)", n, DATASET_CURSOR_BYTES);
    uint32_t version = 0;
    for (int i = 0; i < 4; i++) version |= (uint32_t)bytes[4 + i] << (8 * i);
    if (version != DATASET_CURSOR_VERSION)
        PT_FAIL(err, PT_ERR_FORMAT, "the saved data cursor has version %u; this build reads version %d", version,
                DATASET_CURSOR_VERSION);
    uint64_t v[7];
    for (int i = 0; i < 7; i++) v[i] = get_u64(bytes + 8 + 8 * i);
    *c = (dataset_cursor){.epoch = v[0], .position = v[1], .batches = v[2], .seed = v[3], .shuffle = v[4],
                          .n_examples = v[5], .fingerprint = v[6]};
    return PT_OK;
}

/* ------------------------------------------------------------------------------- order */

pt_status dataset_order(size_t *perm, size_t n, uint64_t seed, uint64_t epoch, bool shuffle, pt_error *err) {
    PT_CHECK(n <= UINT32_MAX, err, PT_ERR_UNSUPPORTED, "shuffling %zu examples (over 2^32) is not supported", n);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return PT_OK;
    const uint64_t ids[2] = {SHUFFLE_TAG, epoch};
    rng r;
    rng_init(&r, seed, rng_stream_id(ids, 2));
    for (size_t i = n; i > 1; i--) { /* Fisher–Yates: perm[i-1] swaps with a uniform j in [0, i) */
        size_t j = rng_below(&r, (uint32_t)i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    return PT_OK;
}

static pt_status ensure_order(data_loader *dl, pt_error *err) {
    if (dl->have_order && dl->order_epoch == dl->cur.epoch) return PT_OK;
    PT_TRY(dataset_order(dl->order, dataset_size(dl->ds), dl->opt.seed, dl->cur.epoch, dl->opt.shuffle, err));
    dl->order_epoch = dl->cur.epoch;
    dl->have_order = true;
    return PT_OK;
}

/* ------------------------------------------------------------------------------- batches */

pt_status data_batch_init(data_batch *b, int B, int T, pt_error *err) {
    *b = (data_batch){0};
    PT_CHECK(B > 0 && T > 1, err, PT_ERR_CONFIG, "a batch needs B ≥ 1 rows of T ≥ 2 tokens (got B %d, T %d)", B, T);
    size_t N = (size_t)B * (size_t)T;
    b->B = B;
    b->T = T;
    b->ids = malloc(N * sizeof *b->ids);
    b->targets = malloc(N * sizeof *b->targets);
    b->segment = malloc(N * sizeof *b->segment);
    b->pos = malloc(N * sizeof *b->pos);
    b->examples = malloc(N * sizeof *b->examples); /* at most one example per token */
    b->rows = malloc(N * sizeof *b->rows);
    if (!b->ids || !b->targets || !b->segment || !b->pos || !b->examples || !b->rows) {
        data_batch_free(b);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for a (%d, %d) batch", B, T);
    }
    return PT_OK;
}

void data_batch_free(data_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->targets);
    free(b->segment);
    free(b->pos);
    free(b->examples);
    free(b->rows);
    *b = (data_batch){0};
}

void data_batch_model(model_batch *mb, const data_batch *b) {
    *mb = (model_batch){.ids = b->ids, .targets = b->targets, .segment = b->segment, .pos = b->pos, .B = b->B,
                        .T = b->T, .temperature = 1.0f};
}

static void batch_clear(data_batch *b, int32_t pad) {
    size_t N = (size_t)b->B * (size_t)b->T;
    for (size_t i = 0; i < N; i++) {
        b->ids[i] = pad;
        b->targets[i] = -1;
        b->segment[i] = -1;
        b->pos[i] = 0;
    }
    b->n_examples = 0;
    b->n_targets = 0;
}

/* Writes seq at (row, col) as segment seg. */
static void place(data_batch *b, int row, int col, int seg, const dataset_seq *s) {
    size_t base = (size_t)row * (size_t)b->T + (size_t)col;
    for (size_t t = 0; t < s->n; t++) {
        b->ids[base + t] = s->ids[t];
        b->pos[base + t] = (int)t;
        b->segment[base + t] = seg;
        bool has = t + 1 < s->n && s->loss[t + 1];
        b->targets[base + t] = has ? s->ids[t + 1] : -1;
        b->n_targets += has;
    }
}

static int32_t pad_id(const data_loader *dl) {
    if (dl->opt.pad_id >= 0) return dl->opt.pad_id;
    int32_t eos = dataset_eos_id(dl->ds);
    return eos >= 0 ? eos : 0;
}

/* The row for an example of len tokens, or −1 when the batch is full for it. */
static int choose_row(const data_loader *dl, const data_batch *b, int *greedy_row, size_t len) {
    int B = dl->opt.B;
    switch (dl->opt.packing) {
    case DATASET_PACK_NONE: return b->n_examples < B ? b->n_examples : -1;
    case DATASET_PACK_GREEDY:
        while (*greedy_row < B && (size_t)dl->used[*greedy_row] + len > (size_t)dl->opt.T) (*greedy_row)++;
        return *greedy_row < B ? *greedy_row : -1;
    case DATASET_PACK_FIRST_FIT:
        for (int r = 0; r < B; r++)
            if ((size_t)dl->used[r] + len <= (size_t)dl->opt.T) return r;
        return -1;
    }
    return -1;
}

/* Fills b from the cursor; *epoch_end tells whether the epoch ran out while filling. */
static pt_status fill_batch(data_batch *b, bool *epoch_end, data_loader *dl, pt_error *err) {
    dataset *ds = dl->ds;
    size_t n = dataset_size(ds);
    bool pairs = dataset_get_format(ds) == DATASET_FORMAT_PREFERENCE;
    batch_clear(b, pad_id(dl));
    b->epoch = dl->cur.epoch;
    memset(dl->used, 0, (size_t)dl->opt.B * sizeof *dl->used);
    PT_TRY(ensure_order(dl, err));
    int greedy_row = 0;
    *epoch_end = false;
    while (dl->cur.position < n) {
        size_t idx = dl->order[dl->cur.position];
        int row;
        if (pairs) row = 2 * b->n_examples < dl->opt.B ? 2 * b->n_examples : -1;
        else row = choose_row(dl, b, &greedy_row, dataset_tokens(ds, idx));
        if (row < 0) break;
        PT_TRY(dataset_get(&dl->ex, ds, idx, err));
        if (pairs) {
            place(b, row, 0, 0, &dl->ex.seq);
            place(b, row + 1, 0, 0, &dl->ex.rejected);
        } else {
            int u = dl->used[row], seg = u ? b->segment[(size_t)row * b->T + (size_t)u - 1] + 1 : 0;
            place(b, row, u, seg, &dl->ex.seq);
            dl->used[row] += (int)dl->ex.seq.n;
        }
        b->examples[b->n_examples] = idx;
        b->rows[b->n_examples++] = row;
        dl->cur.position++;
    }
    *epoch_end = dl->cur.position >= n;
    return PT_OK;
}

static bool epochs_done(const data_loader *dl) { return dl->opt.max_epochs && dl->cur.epoch >= dl->opt.max_epochs; }

static void next_epoch(data_loader *dl) {
    dl->cur.epoch++;
    dl->cur.position = 0;
}

pt_status data_loader_next(data_batch *b, bool *done, data_loader *dl, pt_error *err) {
    dataset_format f = dataset_get_format(dl->ds);
    PT_CHECK(f != DATASET_FORMAT_PROMPT, err, PT_ERR_INVALID,
             "%s is a prompt dataset: take its examples with data_loader_next_examples", dataset_label(dl->ds));
    PT_CHECK(b->B == dl->opt.B && b->T == dl->opt.T, err, PT_ERR_INVALID,
             "the batch is (%d, %d) but the loader makes (%d, %d)", b->B, b->T, dl->opt.B, dl->opt.T);
    *done = false;
    for (;;) {
        if (epochs_done(dl)) {
            *done = true;
            return PT_OK;
        }
        uint64_t start = dl->cur.position;
        bool epoch_end;
        PT_TRY(fill_batch(b, &epoch_end, dl, err));
        if (!epoch_end) break;
        next_epoch(dl);
        if (!dl->opt.drop_last) break;
        PT_CHECK(start > 0, err, PT_ERR_CONFIG,
                 "%s: its %zu examples do not fill one batch of (%d, %d), so drop_last leaves nothing; set drop_last "
                 "false or use a smaller batch",
                 dataset_label(dl->ds), dataset_size(dl->ds), dl->opt.B, dl->opt.T);
        /* the partly filled last batch is dropped: build the first batch of the next epoch */
    }
    dl->cur.batches++;
    return PT_OK;
}

pt_status data_loader_next_examples(dataset_example *out, size_t *got, size_t n, data_loader *dl, pt_error *err) {
    *got = 0;
    size_t size = dataset_size(dl->ds);
    for (size_t i = 0; i < n; i++) {
        if (epochs_done(dl)) break;
        PT_TRY(ensure_order(dl, err));
        PT_TRY(dataset_get(&out[i], dl->ds, dl->order[dl->cur.position], err));
        (*got)++;
        if (++dl->cur.position >= size) next_epoch(dl);
    }
    dl->cur.batches++;
    return PT_OK;
}

dataset_cursor data_loader_cursor(const data_loader *dl) { return dl->cur; }

/* ------------------------------------------------------------------------------- setup */

void data_loader_free(data_loader *dl) {
    if (!dl) return;
    free(dl->order);
    free(dl->used);
    dataset_example_free(&dl->ex);
    *dl = (data_loader){0};
}

pt_status data_loader_init(data_loader *dl, dataset *ds, const data_loader_options *o, const dataset_cursor *resume,
                           pt_error *err) {
    *dl = (data_loader){.ds = ds, .opt = *o};
    size_t n = dataset_size(ds);
    dataset_format f = dataset_get_format(ds);
    const char *label = dataset_label(ds);
    if (f != DATASET_FORMAT_PROMPT) {
        PT_CHECK(o->B > 0 && o->T > 1, err, PT_ERR_CONFIG,
                 "a batch needs B ≥ 1 rows of T ≥ 2 tokens (got B %d, T %d)", o->B, o->T);
        PT_CHECK((unsigned)o->packing <= DATASET_PACK_FIRST_FIT, err, PT_ERR_CONFIG, "packing %d is out of range",
                 (int)o->packing);
        if (f == DATASET_FORMAT_PREFERENCE) {
            PT_CHECK(o->packing == DATASET_PACK_NONE, err, PT_ERR_UNSUPPORTED,
                     "%s: preference pairs are batched one sequence per row; set packing to none", label);
            PT_CHECK(o->B % 2 == 0, err, PT_ERR_CONFIG, "%s: preference pairs need an even B (chosen and rejected "
                     "rows), got %d", label, o->B);
        }
        if (dataset_max_tokens(ds) > (size_t)o->T) {
            size_t worst = 0;
            for (size_t i = 0; i < n; i++)
                if (dataset_tokens(ds, i) > dataset_tokens(ds, worst)) worst = i;
            PT_FAIL(err, PT_ERR_CONFIG,
                    "%s:%llu: the example is %zu tokens, longer than a batch row (T = %d); set max_length ≤ T",
                    label, (unsigned long long)dataset_line(ds, worst), dataset_tokens(ds, worst), o->T);
        }
    }
    dl->cur = (dataset_cursor){.seed = o->seed, .shuffle = o->shuffle, .n_examples = n,
                               .fingerprint = dataset_fingerprint(ds)};
    if (resume) {
        if (resume->n_examples != n || resume->fingerprint != dataset_fingerprint(ds))
            PT_FAIL(err, PT_ERR_CONFIG,
                    "%s does not match the saved data cursor (%llu examples, fingerprint %016llx; now %zu, %016llx): "
                    "the data changed since the checkpoint",
                    label, (unsigned long long)resume->n_examples, (unsigned long long)resume->fingerprint, n,
                    (unsigned long long)dataset_fingerprint(ds));
        if (resume->shuffle != (uint64_t)o->shuffle || (o->shuffle && resume->seed != o->seed))
            PT_FAIL(err, PT_ERR_CONFIG,
                    "the saved data cursor was made with shuffle %llu and seed %llu, the run has shuffle %d and "
                    "seed %llu: the example order would differ",
                    (unsigned long long)resume->shuffle, (unsigned long long)resume->seed, (int)o->shuffle,
                    (unsigned long long)o->seed);
        PT_CHECK(resume->position < n, err, PT_ERR_FORMAT, "the saved data cursor points at example %llu of %zu",
                 (unsigned long long)resume->position, n);
        dl->cur = *resume;
    }
    dl->order = malloc((n ? n : 1) * sizeof *dl->order);
    dl->used = calloc(o->B > 0 ? (size_t)o->B : 1, sizeof *dl->used);
    if (!dl->order || !dl->used) {
        data_loader_free(dl);
        PT_FAIL(err, PT_ERR_NOMEM, "out of memory for the order of %zu examples", n);
    }
    return PT_OK;
}
