/* loader.h — a dataset's examples in a seeded order, epoch after epoch, as fixed (B, T) token
 * batches for SFT (packed or one example per row) or as groups of examples for GRPO, with a
 * cursor that a checkpoint saves and that resumes the exact same sequence.
 *
 * Order: epoch e visits the examples in the permutation drawn by Fisher–Yates from the Philox
 * stream keyed by (seed, stream id of ("shuffle", e)) — identity without shuffle — so the order
 * of any epoch is a pure function of (seed, epoch, dataset size).
 *
 * Rows (T tokens each) hold whole examples; an example never continues into another row. In a
 * row, each example gets its own segment id (0, 1, ...) and positions 0..len−1, so the model's
 * attention (which only pairs tokens of equal segment) never crosses examples and RoPE sees each
 * example as if alone. targets[t] = ids[t+1] when token t+1 of the same example is in the loss
 * mask, else −1: the last token of an example has no target, so no target crosses an example
 * boundary. Padding: ids = pad_id, targets = −1, segment = −1, position 0.
 *   none       one example per row (preference: chosen in row 2k, rejected in row 2k+1)
 *   greedy     examples in order fill row 0 until the next one does not fit, then row 1, ...
 *   first_fit  each example in order goes to the first row with room
 * Both packings end the batch at the first example that fits nowhere, and a batch never spans
 * two epochs (the last one of an epoch may be partly empty; drop_last leaves it out).
 *
 * Cursor: since a batch is a function of (epoch, position of its first example), the cursor is
 * those two numbers plus what they are only meaningful against (seed, shuffle, dataset size and
 * fingerprint), which resuming checks. The batch size may change between runs: a resumed run
 * continues from the first example not yet handed out.
 */
#ifndef POSTTRAIN_DATASETS_LOADER_H
#define POSTTRAIN_DATASETS_LOADER_H

#include "datasets/dataset.h"
#include "model/model.h"

typedef enum dataset_packing { DATASET_PACK_NONE, DATASET_PACK_GREEDY, DATASET_PACK_FIRST_FIT } dataset_packing;

/* "none" | "greedy" | "first_fit" */
pt_status dataset_packing_parse(dataset_packing *out, const char *name, pt_error *err);

typedef struct data_loader_options {
    int B, T;                /* rows per batch and tokens per row (GRPO groups ignore them) */
    dataset_packing packing;
    bool shuffle;
    uint64_t seed;
    bool drop_last;          /* leave out the last, partly filled batch of each epoch */
    uint64_t max_epochs;     /* 0: endless */
    int32_t pad_id;          /* −1: the tokenizer's EOS (0 when it has none) */
} data_loader_options;

typedef struct dataset_cursor {
    uint64_t epoch;       /* the epoch in progress, from 0 */
    uint64_t position;    /* index, in this epoch's order, of the next example to hand out */
    uint64_t batches;     /* batches / groups handed out so far */
    uint64_t seed;        /* checked on resume */
    uint64_t shuffle;     /* 0 or 1, checked on resume */
    uint64_t n_examples;  /* checked on resume */
    uint64_t fingerprint; /* dataset_fingerprint, checked on resume */
} dataset_cursor;

/* The cursor as bytes for train_state's CURS section: "PTDC", u32 version 1, then the seven
 * fields as u64 little-endian. decode rejects a wrong magic, version or size. */
#define DATASET_CURSOR_VERSION 1
#define DATASET_CURSOR_BYTES 64
void dataset_cursor_encode(unsigned char out[DATASET_CURSOR_BYTES], const dataset_cursor *c);
pt_status dataset_cursor_decode(dataset_cursor *c, const unsigned char *bytes, size_t n, pt_error *err);

typedef struct data_batch {
    int B, T;
    int *ids;       /* (B, T) */
    int *targets;   /* (B, T) next token of the same example in the loss mask, else −1 */
    int *segment;   /* (B, T) example number within the row, −1 for padding */
    int *pos;       /* (B, T) position within the example */
    size_t *examples; /* (n_examples) dataset indices in the batch, in placement order */
    int *rows;        /* (n_examples) the row of each (preference: the chosen row) */
    int n_examples;
    long n_targets;   /* positions with a target */
    uint64_t epoch;   /* the epoch the batch belongs to */
} data_batch;

pt_status data_batch_init(data_batch *b, int B, int T, pt_error *err);
void data_batch_free(data_batch *b);
/* The model's view of a batch (temperature 1). */
void data_batch_model(model_batch *mb, const data_batch *b);

typedef struct data_loader {
    dataset *ds;
    data_loader_options opt;
    dataset_cursor cur;
    size_t *order;        /* (dataset size) the permutation of cur.epoch */
    uint64_t order_epoch; /* the epoch `order` was drawn for */
    bool have_order;
    int *used;            /* (B) tokens used in each row of the batch being built */
    dataset_example ex;   /* scratch */
} data_loader;

/* The permutation of epoch `epoch`: perm[i] = the dataset index visited i-th. */
pt_status dataset_order(size_t *perm, size_t n, uint64_t seed, uint64_t epoch, bool shuffle, pt_error *err);

/* A loader at the start (resume NULL) or at a saved cursor (checked against the dataset and
 * options). Fails when an example is longer than T (B and T are checked only for SFT and
 * preference datasets). ds must outlive the loader. */
pt_status data_loader_init(data_loader *dl, dataset *ds, const data_loader_options *o, const dataset_cursor *resume,
                           pt_error *err);
void data_loader_free(data_loader *dl);

/* The next (B, T) batch into *b (made by data_batch_init with the loader's B and T). *done is
 * set, and b left alone, once max_epochs epochs are complete. */
pt_status data_loader_next(data_batch *b, bool *done, data_loader *dl, pt_error *err);

/* The next n examples (GRPO prompts), continuing across epochs; out[0..n) must be zeroed or
 * hold earlier examples (they are freed first). *got < n only when max_epochs ran out. */
pt_status data_loader_next_examples(dataset_example *out, size_t *got, size_t n, data_loader *dl, pt_error *err);

/* Where the next batch / group starts: save this in a checkpoint. */
dataset_cursor data_loader_cursor(const data_loader *dl);

#endif
