/* test_rollout.c — the cached, absorbed, batched decode path against the training forward.
 *
 * Tolerance: both paths compute in fp32, but the absorbed form reassociates the attention
 * products (q·W_UK·c instead of q·(W_UK·c)) and batches GEMMs differently, so logits (O(1)) agree
 * to ~1e-6; atol 2e-4 + rtol 2e-4 is tight enough that a wrong position, a missing rope, a
 * stale cache entry or a wrong latent block moves logits far beyond it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "rollout/decode.h"
#include "tests/util/check.h"

static void load_fixture(policy_model *m, const char *name) {
    char dir[1024], rel[256];
    snprintf(rel, sizeof rel, "model/%s", name);
    pt_error err = {0};
    cr_assert_eq(model_load(m, fixture_path(dir, sizeof dir, rel), NULL, &err), PT_OK, "%s", err.msg);
}

/* Logits of the training forward for one sequence: (T, V). */
static float *reference_logits(policy_model *m, const int *ids, int T) {
    model_acts a;
    pt_error err = {0};
    cr_assert_eq(model_acts_init(&a, m, 1, T, &err), PT_OK, "%s", err.msg);
    model_batch b = {ids, NULL, NULL, NULL, 1, T, 1.0f};
    cr_assert_eq(model_forward(m, &a, &b, &err), PT_OK, "%s", err.msg);
    size_t n = (size_t)T * m->cfg.vocab_size;
    float *out = malloc(n * sizeof *out);
    memcpy(out, a.logits, n * sizeof *out);
    model_acts_free(&a);
    return out;
}

static void expect_close(const float *got, const float *want, int V, const char *what, int pos) {
    double worst;
    long bad = compare_close(got, want, (size_t)V, 2e-4, 2e-4, &worst);
    cr_assert_eq(bad, -1, "%s, position %d: logit %ld is %g, training forward %g", what, pos, bad,
                 bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
}

typedef struct engine_fixture {
    latent_cache cache;
    decode_ws ws;
} engine_fixture;

static void setup(engine_fixture *f, const policy_model *m, int blocks, int block_tokens, int max_tokens) {
    pt_error err = {0};
    cr_assert_eq(latent_cache_init(&f->cache, m->cfg.num_hidden_layers, blocks, block_tokens, m->cfg.kv_lora_rank,
                                   m->cfg.qk_rope_head_dim, &err),
                 PT_OK, "%s", err.msg);
    cr_assert_eq(decode_ws_init(&f->ws, m, max_tokens, 64, &err), PT_OK, "%s", err.msg);
}

static void teardown(engine_fixture *f) {
    decode_ws_free(&f->ws);
    latent_cache_free(&f->cache);
}

/* Prefill ids[0..split) in one step (logits for every row), then one token per step. */
static void check_prefill_then_decode(const char *name) {
    policy_model m;
    load_fixture(&m, name);
    const int T = 12, V = m.cfg.vocab_size;
    int ids[12];
    for (int i = 0; i < T; i++) ids[i] = (7 * i + 3) % V;
    float *want = reference_logits(&m, ids, T);
    engine_fixture f;
    setup(&f, &m, 16, 4, T);
    cache_seq s;
    pt_error err = {0};
    cr_assert_eq(cache_seq_init(&s, 64, 4, &err), PT_OK);
    const int split = 5;
    cache_seq *seqs[12];
    int pos[12], rows[12];
    for (int i = 0; i < T; i++) seqs[i] = &s, pos[i] = i, rows[i] = i;
    cr_assert_eq(cache_seq_reserve(&f.cache, &s, split), 0);
    decode_step(&f.ws, &m, &f.cache, seqs, ids, pos, split, rows, split);
    cr_assert_eq(s.len, split);
    for (int i = 0; i < split; i++) expect_close(f.ws.logits + (size_t)i * V, want + (size_t)i * V, V, name, i);
    for (int t = split; t < T; t++) {
        cr_assert_eq(cache_seq_reserve(&f.cache, &s, 1), 0);
        int r = 0;
        decode_step(&f.ws, &m, &f.cache, seqs, ids + t, pos + t, 1, &r, 1);
        expect_close(f.ws.logits, want + (size_t)t * V, V, name, t);
    }
    cache_seq_release(&f.cache, &s);
    cr_assert_eq(f.cache.nfree, f.cache.nblocks, "every block returns to the pool");
    cache_seq_free(&s);
    teardown(&f);
    free(want);
    model_free(&m);
}

Test(rollout, prefill_then_decode_matches_training_forward_qlora) { check_prefill_then_decode("tiny_qlora"); }
Test(rollout, prefill_then_decode_matches_training_forward_qproj_yarn) { check_prefill_then_decode("tiny_qproj_yarn"); }

/* Three sequences in mixed steps: two samples share a 6-token prompt (block size 4, so the
 * partially filled second block is copied on write), a third sequence is prefilled in the
 * same step as the samples' decode tokens. */
Test(rollout, shared_prefix_and_mixed_batches_match_training_forward) {
    policy_model m;
    load_fixture(&m, "tiny_qlora");
    const int V = m.cfg.vocab_size, Tp = 6, Tc = 5;
    int a_ids[11], b_ids[11], c_ids[8];
    for (int i = 0; i < Tp; i++) a_ids[i] = b_ids[i] = (5 * i + 1) % V;
    for (int i = Tp; i < Tp + Tc; i++) a_ids[i] = (3 * i + 2) % V, b_ids[i] = (11 * i + 7) % V;
    for (int i = 0; i < 8; i++) c_ids[i] = (13 * i + 4) % V;
    float *want_a = reference_logits(&m, a_ids, Tp + Tc), *want_b = reference_logits(&m, b_ids, Tp + Tc);
    float *want_c = reference_logits(&m, c_ids, 8);

    engine_fixture f;
    setup(&f, &m, 32, 4, 16);
    pt_error err = {0};
    cache_seq prompt, sa, sb, sc;
    cr_assert_eq(cache_seq_init(&prompt, 64, 4, &err), PT_OK);
    cr_assert_eq(cache_seq_init(&sa, 64, 4, &err), PT_OK);
    cr_assert_eq(cache_seq_init(&sb, 64, 4, &err), PT_OK);
    cr_assert_eq(cache_seq_init(&sc, 64, 4, &err), PT_OK);
    /* Prefill the prompt once. */
    cache_seq *seqs[16];
    int ids[16], pos[16], rows[16];
    for (int i = 0; i < Tp; i++) seqs[i] = &prompt, ids[i] = a_ids[i], pos[i] = i;
    cr_assert_eq(cache_seq_reserve(&f.cache, &prompt, Tp), 0);
    rows[0] = Tp - 1;
    decode_step(&f.ws, &m, &f.cache, seqs, ids, pos, Tp, rows, 1);
    expect_close(f.ws.logits, want_a + (size_t)(Tp - 1) * V, V, "prompt", Tp - 1);
    int used_after_prompt = f.cache.nblocks - f.cache.nfree;
    cache_seq_share(&f.cache, &sa, &prompt);
    cache_seq_share(&f.cache, &sb, &prompt);
    cache_seq_release(&f.cache, &prompt);
    cr_assert_eq(f.cache.nblocks - f.cache.nfree, used_after_prompt, "sharing copies no block");

    /* Step 1: sample a and b each decode one token, and c's first 4 tokens are prefilled. */
    int n = 0;
    cr_assert_eq(cache_seq_reserve(&f.cache, &sa, 1), 0);
    cr_assert_eq(cache_seq_reserve(&f.cache, &sb, 1), 0);
    cr_assert_eq(cache_seq_reserve(&f.cache, &sc, 4), 0);
    seqs[n] = &sa, ids[n] = a_ids[Tp], pos[n] = Tp, n++;
    seqs[n] = &sb, ids[n] = b_ids[Tp], pos[n] = Tp, n++;
    for (int i = 0; i < 4; i++) seqs[n] = &sc, ids[n] = c_ids[i], pos[n] = i, n++;
    int r3[6] = {0, 1, 2, 3, 4, 5};
    decode_step(&f.ws, &m, &f.cache, seqs, ids, pos, n, r3, n);
    expect_close(f.ws.logits, want_a + (size_t)Tp * V, V, "sample a", Tp);
    expect_close(f.ws.logits + V, want_b + (size_t)Tp * V, V, "sample b", Tp);
    for (int i = 0; i < 4; i++) expect_close(f.ws.logits + (size_t)(2 + i) * V, want_c + (size_t)i * V, V, "seq c", i);
    cr_assert_neq(sa.blocks[1], sb.blocks[1], "the shared partial block was copied on write");
    cr_assert_eq(sa.blocks[0], sb.blocks[0], "the full prompt block stays shared");

    /* Remaining steps: a and b decode one token each, c one token each. */
    for (int t = Tp + 1; t < Tp + Tc; t++) {
        n = 0;
        cr_assert_eq(cache_seq_reserve(&f.cache, &sa, 1), 0);
        cr_assert_eq(cache_seq_reserve(&f.cache, &sb, 1), 0);
        seqs[n] = &sa, ids[n] = a_ids[t], pos[n] = t, n++;
        seqs[n] = &sb, ids[n] = b_ids[t], pos[n] = t, n++;
        int ct = 4 + (t - Tp - 1);
        if (ct < 8) {
            cr_assert_eq(cache_seq_reserve(&f.cache, &sc, 1), 0);
            seqs[n] = &sc, ids[n] = c_ids[ct], pos[n] = ct, n++;
        }
        decode_step(&f.ws, &m, &f.cache, seqs, ids, pos, n, r3, n);
        expect_close(f.ws.logits, want_a + (size_t)t * V, V, "sample a", t);
        expect_close(f.ws.logits + V, want_b + (size_t)t * V, V, "sample b", t);
        if (ct < 8) expect_close(f.ws.logits + 2 * (size_t)V, want_c + (size_t)ct * V, V, "seq c", ct);
    }
    cache_seq_release(&f.cache, &sa);
    cache_seq_release(&f.cache, &sb);
    cache_seq_release(&f.cache, &sc);
    cr_assert_eq(f.cache.nfree, f.cache.nblocks);
    cache_seq_free(&prompt), cache_seq_free(&sa), cache_seq_free(&sb), cache_seq_free(&sc);
    teardown(&f);
    free(want_a), free(want_b), free(want_c);
    model_free(&m);
}
