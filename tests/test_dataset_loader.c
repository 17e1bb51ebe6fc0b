/* test_dataset_loader.c — batching, packing, shuffling and exact resume of the data loader.
 *
 * What carries weight:
 *   - every batch is checked token by token against the examples dataset_get returns (ids,
 *     positions restarting at 0, segment ids, targets from the loss mask, no target at an
 *     example's last token, padding), and the packing rules are replayed independently;
 *   - packing is proven with the model: a tiny DeepSeek-V3 policy's per-token log-probabilities
 *     and entropies on a packed row equal those of each example run alone (|Δ| ≤ 1e-5: the same
 *     fp32 arithmetic on the same values, differing only in the order BLAS sums rows), and the
 *     same row without segment ids differs (so the check can see leakage across examples);
 *   - shuffling is a permutation, deterministic in (seed, epoch), different across epochs and
 *     seeds, and uniform enough that an off-by-one Fisher–Yates fails (position of one element
 *     over 4000 epochs, within 6σ of uniform);
 *   - resuming from a cursor saved after any batch (and passed through its byte encoding) gives
 *     the batches of an uninterrupted run, bit for bit.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/loader.h"
#include "tests/util/check.h"
#include "tests/util/tiny_model.h"

static tokenizer *load_tok(void) {
    char path[1024];
    pt_error err = {0};
    tokenizer *tok = NULL;
    cr_assert_eq(tokenizer_load(&tok, fixture_path(path, sizeof path, "tokenizer"), &err), PT_OK, "%s", err.msg);
    return tok;
}

static dataset *open_fixture(tokenizer *tok, const char *name, const dataset_options *o) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "datasets/%s", name);
    pt_error err = {0};
    dataset *ds = NULL;
    cr_assert_eq(dataset_open_jsonl(&ds, fixture_path(path, sizeof path, rel), tok, o, &err), PT_OK, "%s", err.msg);
    return ds;
}

static data_loader_options loader_opts(int B, int T, dataset_packing packing, bool shuffle, uint64_t seed) {
    return (data_loader_options){.B = B, .T = T, .packing = packing, .shuffle = shuffle, .seed = seed, .pad_id = -1};
}

/* ------------------------------------------------------------------------------- batch checks */

/* Checks b token by token against the examples it claims to hold; fills used[B] with the tokens
 * used per row. */
static void check_batch(const data_batch *b, dataset *ds, int32_t pad, int *used) {
    pt_error err = {0};
    dataset_example ex = {0};
    long targets = 0;
    bool pairs = dataset_get_format(ds) == DATASET_FORMAT_PREFERENCE;
    for (int r = 0; r < b->B; r++) used[r] = 0;
    for (int e = 0; e < b->n_examples; e++) {
        cr_assert_eq(dataset_get(&ex, ds, b->examples[e], &err), PT_OK, "%s", err.msg);
        for (int part = 0; part < (pairs ? 2 : 1); part++) {
            const dataset_seq *s = part ? &ex.rejected : &ex.seq;
            int row = b->rows[e] + part, col = used[row];
            int seg = col == 0 ? 0 : b->segment[(size_t)row * b->T + col - 1] + 1;
            cr_assert_leq(col + (long)s->n, b->T, "example %d overflows row %d", e, row);
            for (size_t t = 0; t < s->n; t++) {
                size_t i = (size_t)row * b->T + col + t;
                cr_assert_eq(b->ids[i], s->ids[t], "example %d token %zu", e, t);
                cr_assert_eq(b->pos[i], (int)t, "position restarts at 0 for each example");
                cr_assert_eq(b->segment[i], seg, "one segment per example");
                int want = t + 1 < s->n && s->loss[t + 1] ? s->ids[t + 1] : -1;
                cr_assert_eq(b->targets[i], want, "example %d token %zu target", e, t);
                targets += want >= 0;
            }
            cr_assert_eq(b->targets[(size_t)row * b->T + col + s->n - 1], -1, "an example's last token has no target");
            used[row] += (int)s->n;
        }
    }
    for (int r = 0; r < b->B; r++)
        for (int c = used[r]; c < b->T; c++) {
            size_t i = (size_t)r * b->T + c;
            cr_assert(b->ids[i] == pad && b->targets[i] == -1 && b->segment[i] == -1 && b->pos[i] == 0,
                      "padding at row %d col %d", r, c);
        }
    cr_assert_eq(b->n_targets, targets);
    dataset_example_free(&ex);
}

/* Replays the placement rule on the lengths: each example went where the rule says. */
static void check_rule(const data_batch *b, dataset *ds, dataset_packing packing) {
    int used[64] = {0}, row = 0;
    for (int e = 0; e < b->n_examples; e++) {
        int len = (int)dataset_tokens(ds, b->examples[e]), want = -1;
        if (packing == DATASET_PACK_NONE) want = e;
        else if (packing == DATASET_PACK_GREEDY) {
            while (used[row] + len > b->T) row++;
            want = row;
        } else
            for (int r = 0; r < b->B && want < 0; r++)
                if (used[r] + len <= b->T) want = r;
        cr_assert_eq(b->rows[e], want, "example %d (%d tokens) in row %d, rule says %d", e, len, b->rows[e], want);
        used[want] += len;
    }
}

/* The batch ended for a reason: the next example fitted nowhere (or the epoch ran out). */
static void check_batch_end(const data_batch *b, const int *used, size_t next_len, dataset_packing packing) {
    if (packing == DATASET_PACK_NONE) {
        cr_assert_eq(b->n_examples, b->B);
        return;
    }
    int last = b->rows[b->n_examples - 1];
    for (int r = packing == DATASET_PACK_GREEDY ? last : 0; r < b->B; r++)
        cr_assert_gt((long)used[r] + (long)next_len, b->T, "the next example (%zu tokens) would fit in row %d",
                     next_len, r);
}

static void run_epochs_and_check(dataset_packing packing, bool shuffle, int B, int T) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    size_t n = dataset_size(ds);
    data_loader_options o = loader_opts(B, T, packing, shuffle, 1234);
    o.max_epochs = 2;
    data_loader dl;
    data_batch b, prev;
    pt_error err = {0};
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(data_batch_init(&b, B, T, &err), PT_OK);
    cr_assert_eq(data_batch_init(&prev, B, T, &err), PT_OK);
    int *seen = calloc(n, sizeof *seen), used[64], prev_used[64];
    uint64_t epoch = 0;
    size_t in_epoch = 0;
    bool have_prev = false, done = false;
    int packed_rows = 0;
    for (int step = 0; step < 1000; step++) {
        cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
        if (done) break;
        check_batch(&b, ds, tokenizer_eos_id(tok), used);
        check_rule(&b, ds, packing);
        if (b.epoch != epoch) { /* every example exactly once per epoch */
            cr_assert_eq(in_epoch, n);
            for (size_t i = 0; i < n; i++) cr_assert_eq(seen[i], 1, "epoch %llu: example %zu seen %d times",
                                                         (unsigned long long)epoch, i, seen[i]);
            memset(seen, 0, n * sizeof *seen);
            in_epoch = 0;
            epoch = b.epoch;
        } else if (have_prev)
            check_batch_end(&prev, prev_used, dataset_tokens(ds, b.examples[0]), packing);
        for (int e = 0; e < b.n_examples; e++) seen[b.examples[e]]++;
        in_epoch += (size_t)b.n_examples;
        for (int r = 0; r < B; r++) {
            int segs = 0;
            for (int e = 0; e < b.n_examples; e++) segs += b.rows[e] == r;
            packed_rows += segs > 1;
        }
        data_batch tmp = prev;
        prev = b;
        b = tmp;
        memcpy(prev_used, used, sizeof used);
        have_prev = true;
    }
    cr_assert(done);
    cr_assert_eq(epoch, 1);
    cr_assert_eq(in_epoch, n);
    if (packing != DATASET_PACK_NONE) cr_assert_gt(packed_rows, 0, "no row held two examples: packing untested");
    free(seen);
    data_batch_free(&b);
    data_batch_free(&prev);
    data_loader_free(&dl);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_packing, greedy_rows_are_exact) { run_epochs_and_check(DATASET_PACK_GREEDY, true, 2, 64); }
Test(dataset_packing, first_fit_rows_are_exact) { run_epochs_and_check(DATASET_PACK_FIRST_FIT, true, 3, 64); }
Test(dataset_packing, unpacked_rows_are_exact) { run_epochs_and_check(DATASET_PACK_NONE, false, 4, 48); }

Test(dataset_packing, first_fit_fills_earlier_rows_greedy_does_not) {
    /* Some row length T makes the two rules place the first batch differently; each placement
     * must match its own rule (check_rule), so both code paths are exercised and told apart. */
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    pt_error err = {0};
    data_batch g, f;
    bool done;
    int differ = 0;
    for (int T = 43; T <= 96 && !differ; T++) {
        data_loader lg, lf;
        data_loader_options og = loader_opts(3, T, DATASET_PACK_GREEDY, false, 0), of = og;
        of.packing = DATASET_PACK_FIRST_FIT;
        cr_assert_eq(data_loader_init(&lg, ds, &og, NULL, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(data_loader_init(&lf, ds, &of, NULL, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(data_batch_init(&g, 3, T, &err), PT_OK);
        cr_assert_eq(data_batch_init(&f, 3, T, &err), PT_OK);
        cr_assert_eq(data_loader_next(&g, &done, &lg, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(data_loader_next(&f, &done, &lf, &err), PT_OK, "%s", err.msg);
        check_rule(&g, ds, DATASET_PACK_GREEDY);
        check_rule(&f, ds, DATASET_PACK_FIRST_FIT);
        differ = g.n_examples != f.n_examples || memcmp(g.rows, f.rows, (size_t)g.n_examples * sizeof *g.rows) != 0;
        data_batch_free(&g);
        data_batch_free(&f);
        data_loader_free(&lg);
        data_loader_free(&lf);
    }
    cr_assert(differ, "first_fit and greedy never placed differently: the first_fit path is untested");
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_packing, preference_pairs_take_two_rows) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "preference.jsonl", NULL);
    data_loader_options o = loader_opts(4, 32, DATASET_PACK_NONE, false, 0);
    data_loader dl;
    data_batch b;
    pt_error err = {0};
    bool done;
    int used[4];
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(data_batch_init(&b, 4, 32, &err), PT_OK);
    cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(b.n_examples, 2);
    cr_assert_eq(b.rows[0], 0);
    cr_assert_eq(b.rows[1], 2);
    check_batch(&b, ds, tokenizer_eos_id(tok), used);
    data_loader_free(&dl);
    o.packing = DATASET_PACK_GREEDY;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_ERR_UNSUPPORTED);
    o.packing = DATASET_PACK_NONE;
    o.B = 3;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "even B"), "%s", err.msg);
    data_batch_free(&b);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_packing, configuration_errors) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    data_loader dl;
    pt_error err = {0};
    data_loader_options o = loader_opts(2, 40, DATASET_PACK_GREEDY, false, 0);
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "sft_small.jsonl:12: the example is 43 tokens, longer than a batch row (T = 40); set "
                              "max_length ≤ T"),
              "%s", err.msg);
    /* drop_last with fewer examples than one batch would loop forever: refused */
    o = loader_opts(64, 64, DATASET_PACK_NONE, false, 0);
    o.drop_last = true;
    data_batch b;
    bool done;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(data_batch_init(&b, 64, 64, &err), PT_OK);
    cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "do not fill one batch"), "%s", err.msg);
    data_batch_free(&b);
    data_loader_free(&dl);
    dataset_packing p;
    cr_assert_eq(dataset_packing_parse(&p, "first_fit", &err), PT_OK);
    cr_assert_eq(p, DATASET_PACK_FIRST_FIT);
    cr_assert_eq(dataset_packing_parse(&p, "bfd", &err), PT_ERR_CONFIG);
    dataset_free(ds);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------------------------- the model */

Test(dataset_packing, attention_never_crosses_examples_in_the_model) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    const int T = 64;
    data_loader_options o = loader_opts(1, T, DATASET_PACK_GREEDY, false, 0);
    data_loader dl;
    data_batch b;
    pt_error err = {0};
    bool done;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(data_batch_init(&b, 1, T, &err), PT_OK);
    cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
    cr_assert_geq(b.n_examples, 3, "the packed row should hold at least three examples");

    model_config cfg;
    tiny_model_config(&cfg);
    cfg.vocab_size = (int)tokenizer_n_ids(tok);
    cfg.max_position_embeddings = T;
    policy_model m;
    cr_assert_eq(model_init(&m, &cfg, 3, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    model_acts a;
    cr_assert_eq(model_acts_init(&a, &m, 1, T, &err), PT_OK, "%s", err.msg);

    model_batch mb;
    data_batch_model(&mb, &b);
    cr_assert_eq(model_forward(&m, &a, &mb, &err), PT_OK, "%s", err.msg);
    float *packed_logp = malloc(T * sizeof(float)), *packed_ent = malloc(T * sizeof(float));
    memcpy(packed_logp, a.logp, T * sizeof(float));
    memcpy(packed_ent, a.entropy, T * sizeof(float));
    cr_assert_eq(first_nonfinite(packed_logp, T), -1);

    /* each example alone in a row: no segments, default positions */
    int ids[64], targets[64];
    dataset_example ex = {0};
    int col = 0;
    double worst = 0.0;
    for (int e = 0; e < b.n_examples; e++) {
        cr_assert_eq(dataset_get(&ex, ds, b.examples[e], &err), PT_OK, "%s", err.msg);
        int n = (int)ex.seq.n, counted = 0;
        for (int t = 0; t < T; t++) {
            ids[t] = t < n ? ex.seq.ids[t] : tokenizer_eos_id(tok);
            targets[t] = t + 1 < n && ex.seq.loss[t + 1] ? ex.seq.ids[t + 1] : -1;
        }
        model_batch alone = {.ids = ids, .targets = targets, .B = 1, .T = T, .temperature = 1.0f};
        cr_assert_eq(model_forward(&m, &a, &alone, &err), PT_OK, "%s", err.msg);
        for (int t = 0; t < n; t++) {
            double dl_ = fabs((double)packed_logp[col + t] - a.logp[t]);
            double de = fabs((double)packed_ent[col + t] - a.entropy[t]);
            if (dl_ > worst) worst = dl_;
            if (de > worst) worst = de;
            cr_assert_leq(dl_, 1e-5, "example %d token %d: logp packed %.8f alone %.8f", e, t, packed_logp[col + t],
                          a.logp[t]);
            cr_assert_leq(de, 1e-5, "example %d token %d: entropy packed %.8f alone %.8f", e, t, packed_ent[col + t],
                          a.entropy[t]);
            counted += targets[t] >= 0;
        }
        cr_assert_gt(counted, 0);
        col += n;
    }

    /* negative control: the same row read as one sequence must differ after the first example */
    model_batch leaky = mb;
    leaky.segment = NULL;
    leaky.pos = NULL;
    cr_assert_eq(model_forward(&m, &a, &leaky, &err), PT_OK, "%s", err.msg);
    int first_len = (int)dataset_tokens(ds, b.examples[0]);
    double leak = 0.0;
    for (int t = first_len; t < col; t++) leak = fmax(leak, fabs((double)a.entropy[t] - packed_ent[t]));
    cr_assert_gt(leak, 1e-3, "without segments the later examples should see the earlier ones (leak %.3g)", leak);

    free(packed_logp);
    free(packed_ent);
    dataset_example_free(&ex);
    model_acts_free(&a);
    model_free(&m);
    data_batch_free(&b);
    data_loader_free(&dl);
    dataset_free(ds);
    tokenizer_free(tok);
}

/* ------------------------------------------------------------------------------- shuffling */

Test(dataset_shuffle, permutation_deterministic_per_seed_and_epoch) {
    enum { N = 1000 };
    size_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    pt_error err = {0};
    cr_assert_eq(dataset_order(a, N, 42, 0, true, &err), PT_OK);
    char *hit = calloc(N, 1);
    for (size_t i = 0; i < N; i++) {
        cr_assert_lt(a[i], N);
        cr_assert_eq(hit[a[i]], 0, "index %zu twice", a[i]);
        hit[a[i]] = 1;
    }
    cr_assert_eq(dataset_order(b, N, 42, 0, true, &err), PT_OK);
    cr_assert_arr_eq(a, b, N * sizeof *a, "same seed and epoch: same order");
    size_t fixed = 0;
    for (size_t i = 0; i < N; i++) fixed += a[i] == i;
    cr_assert_lt(fixed, 10, "a shuffle of 1000 leaves ~1 element in place, not %zu", fixed);
    cr_assert_eq(dataset_order(b, N, 42, 1, true, &err), PT_OK);
    size_t same = 0;
    for (size_t i = 0; i < N; i++) same += a[i] == b[i];
    cr_assert_lt(same, 10, "epoch 1 repeats epoch 0 at %zu places", same);
    cr_assert_eq(dataset_order(b, N, 43, 0, true, &err), PT_OK);
    same = 0;
    for (size_t i = 0; i < N; i++) same += a[i] == b[i];
    cr_assert_lt(same, 10, "seed 43 repeats seed 42 at %zu places", same);
    cr_assert_eq(dataset_order(b, N, 42, 0, false, &err), PT_OK);
    for (size_t i = 0; i < N; i++) cr_assert_eq(b[i], i);
    free(a);
    free(b);
    free(hit);
}

Test(dataset_shuffle, uniform_positions) {
    /* Where does element 0 land, over 4000 epochs of an 8-element shuffle? Uniform: 500 each,
     * σ = sqrt(4000·(1/8)(7/8)) ≈ 20.9. Sattolo's variant (j < i) never leaves it in place and
     * a biased draw (j ≤ i+1, modulo) shifts counts by far more than 6σ. */
    enum { N = 8, E = 4000 };
    size_t perm[N];
    int count[N] = {0};
    pt_error err = {0};
    for (uint64_t e = 0; e < E; e++) {
        cr_assert_eq(dataset_order(perm, N, 7, e, true, &err), PT_OK);
        for (int i = 0; i < N; i++)
            if (perm[i] == 0) count[i]++;
    }
    double sigma = sqrt(E * (1.0 / N) * (1.0 - 1.0 / N));
    for (int i = 0; i < N; i++)
        cr_assert_leq(fabs(count[i] - (double)E / N), 6 * sigma, "position %d: %d of %d", i, count[i], E);
}

/* ------------------------------------------------------------------------------- cursor */

typedef struct saved_batch {
    int *ids, *targets, *segment, *pos;
    size_t examples[256];
    int n_examples;
    uint64_t epoch;
} saved_batch;

static void save_batch(saved_batch *s, const data_batch *b) {
    size_t N = (size_t)b->B * b->T;
    s->ids = malloc(N * sizeof(int));
    s->targets = malloc(N * sizeof(int));
    s->segment = malloc(N * sizeof(int));
    s->pos = malloc(N * sizeof(int));
    memcpy(s->ids, b->ids, N * sizeof(int));
    memcpy(s->targets, b->targets, N * sizeof(int));
    memcpy(s->segment, b->segment, N * sizeof(int));
    memcpy(s->pos, b->pos, N * sizeof(int));
    memcpy(s->examples, b->examples, (size_t)b->n_examples * sizeof(size_t));
    s->n_examples = b->n_examples;
    s->epoch = b->epoch;
}

static void expect_same(const saved_batch *s, const data_batch *b, int k, int step) {
    size_t N = (size_t)b->B * b->T;
    cr_assert_eq(s->n_examples, b->n_examples, "resume after %d: batch %d", k, step);
    cr_assert_arr_eq(s->examples, b->examples, (size_t)b->n_examples * sizeof(size_t), "resume after %d: batch %d", k,
                     step);
    cr_assert_arr_eq(s->ids, b->ids, N * sizeof(int), "resume after %d: batch %d ids", k, step);
    cr_assert_arr_eq(s->targets, b->targets, N * sizeof(int), "resume after %d: batch %d targets", k, step);
    cr_assert_arr_eq(s->segment, b->segment, N * sizeof(int), "resume after %d: batch %d segments", k, step);
    cr_assert_arr_eq(s->pos, b->pos, N * sizeof(int), "resume after %d: batch %d positions", k, step);
    cr_assert_eq(s->epoch, b->epoch);
}

static void resume_everywhere(const data_loader_options *o) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    pt_error err = {0};
    data_loader dl;
    data_batch b;
    bool done = false;
    saved_batch run[64];
    int total = 0;
    cr_assert_eq(data_loader_init(&dl, ds, o, NULL, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(data_batch_init(&b, o->B, o->T, &err), PT_OK);
    for (;;) {
        cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
        if (done) break;
        cr_assert_lt(total, 64);
        save_batch(&run[total++], &b);
    }
    data_loader_free(&dl);
    cr_assert_gt(total, 4);
    cr_assert_eq(run[total - 1].epoch, o->max_epochs - 1);

    for (int k = 0; k <= total; k++) {
        cr_assert_eq(data_loader_init(&dl, ds, o, NULL, &err), PT_OK, "%s", err.msg);
        for (int s = 0; s < k; s++) cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
        dataset_cursor c = data_loader_cursor(&dl);
        cr_assert_eq(c.batches, (uint64_t)k);
        unsigned char bytes[DATASET_CURSOR_BYTES];
        dataset_cursor_encode(bytes, &c);
        data_loader_free(&dl); /* the "crash" */
        dataset_cursor back;
        cr_assert_eq(dataset_cursor_decode(&back, bytes, sizeof bytes, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(data_loader_init(&dl, ds, o, &back, &err), PT_OK, "%s", err.msg);
        for (int s = k; s < total; s++) {
            cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
            cr_assert(!done, "resume after %d ended early at %d", k, s);
            expect_same(&run[s], &b, k, s);
        }
        cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_OK, "%s", err.msg);
        cr_assert(done, "resume after %d: more batches than the uninterrupted run", k);
        data_loader_free(&dl);
    }
    for (int i = 0; i < total; i++) {
        free(run[i].ids);
        free(run[i].targets);
        free(run[i].segment);
        free(run[i].pos);
    }
    data_batch_free(&b);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_cursor, resume_is_exact_greedy_shuffled) {
    data_loader_options o = loader_opts(2, 64, DATASET_PACK_GREEDY, true, 99);
    o.max_epochs = 3;
    resume_everywhere(&o);
}

Test(dataset_cursor, resume_is_exact_first_fit_drop_last) {
    data_loader_options o = loader_opts(2, 48, DATASET_PACK_FIRST_FIT, true, 5);
    o.max_epochs = 3;
    o.drop_last = true;
    resume_everywhere(&o);
}

Test(dataset_cursor, resume_is_exact_unpacked) {
    data_loader_options o = loader_opts(5, 48, DATASET_PACK_NONE, true, 1);
    o.max_epochs = 2;
    resume_everywhere(&o);
}

Test(dataset_cursor, grpo_groups_cross_epochs_and_resume) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", &(dataset_options){.format = DATASET_FORMAT_PROMPT,
                                                                          .max_length = 1024,
                                                                          .completion_only_loss = -1});
    size_t n = dataset_size(ds);
    data_loader_options o = {.shuffle = true, .seed = 8, .max_epochs = 2, .pad_id = -1};
    data_loader dl;
    pt_error err = {0};
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
    dataset_example ex[5] = {0};
    size_t order[64], k = 0, got;
    for (;;) {
        cr_assert_eq(data_loader_next_examples(ex, &got, 5, &dl, &err), PT_OK, "%s", err.msg);
        for (size_t i = 0; i < got; i++) order[k++] = ex[i].index;
        if (got < 5) break;
    }
    cr_assert_eq(k, 2 * n);
    size_t perm[64];
    for (uint64_t e = 0; e < 2; e++) {
        cr_assert_eq(dataset_order(perm, n, 8, e, true, &err), PT_OK);
        cr_assert_arr_eq(order + e * n, perm, n * sizeof(size_t), "epoch %llu", (unsigned long long)e);
    }
    data_loader_free(&dl);
    /* resume after the second group (mid-epoch 0) and after the third (crosses into epoch 1) */
    for (int stop = 1; stop <= 3; stop++) {
        cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK, "%s", err.msg);
        for (int g = 0; g < stop; g++) cr_assert_eq(data_loader_next_examples(ex, &got, 5, &dl, &err), PT_OK);
        dataset_cursor c = data_loader_cursor(&dl);
        data_loader_free(&dl);
        cr_assert_eq(data_loader_init(&dl, ds, &o, &c, &err), PT_OK, "%s", err.msg);
        cr_assert_eq(data_loader_next_examples(ex, &got, 5, &dl, &err), PT_OK);
        cr_assert_eq(got, 5);
        for (size_t i = 0; i < 5; i++) cr_assert_eq(ex[i].index, order[5 * stop + i]);
        data_loader_free(&dl);
    }
    for (int i = 0; i < 5; i++) dataset_example_free(&ex[i]);
    /* token batches are refused for prompts */
    data_batch b;
    bool done;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK);
    cr_assert_eq(data_batch_init(&b, 1, 8, &err), PT_OK);
    cr_assert_eq(data_loader_next(&b, &done, &dl, &err), PT_ERR_INVALID);
    data_batch_free(&b);
    data_loader_free(&dl);
    dataset_free(ds);
    tokenizer_free(tok);
}

Test(dataset_cursor, hostile_and_mismatched_cursors_are_refused) {
    tokenizer *tok = load_tok();
    dataset *ds = open_fixture(tok, "sft_small.jsonl", NULL);
    pt_error err = {0};
    data_loader_options o = loader_opts(2, 64, DATASET_PACK_GREEDY, true, 11);
    data_loader dl;
    cr_assert_eq(data_loader_init(&dl, ds, &o, NULL, &err), PT_OK);
    dataset_cursor c = data_loader_cursor(&dl), back;
    data_loader_free(&dl);
    unsigned char bytes[DATASET_CURSOR_BYTES];
    dataset_cursor_encode(bytes, &c);
    cr_assert_eq(dataset_cursor_decode(&back, bytes, sizeof bytes - 1, &err), PT_ERR_FORMAT);
    bytes[0] = 'X';
    cr_assert_eq(dataset_cursor_decode(&back, bytes, sizeof bytes, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "not a posttrain dataset cursor"), "%s", err.msg);
    dataset_cursor_encode(bytes, &c);
    bytes[4] = 2;
    cr_assert_eq(dataset_cursor_decode(&back, bytes, sizeof bytes, &err), PT_ERR_FORMAT);
    cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);

    dataset_cursor bad = c;
    bad.fingerprint ^= 1;
    cr_assert_eq(data_loader_init(&dl, ds, &o, &bad, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "the data changed since the checkpoint"), "%s", err.msg);
    bad = c;
    bad.seed = 12;
    cr_assert_eq(data_loader_init(&dl, ds, &o, &bad, &err), PT_ERR_CONFIG);
    cr_assert(strstr(err.msg, "the example order would differ"), "%s", err.msg);
    bad = c;
    bad.position = dataset_size(ds);
    cr_assert_eq(data_loader_init(&dl, ds, &o, &bad, &err), PT_ERR_FORMAT);
    /* a different file gives a different fingerprint */
    dataset *other = open_fixture(tok, "prompt_completion.jsonl", NULL);
    cr_assert_neq(dataset_fingerprint(other), dataset_fingerprint(ds));
    dataset_free(other);
    dataset_free(ds);
    tokenizer_free(tok);
}
