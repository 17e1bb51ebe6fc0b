/* test_rollout.c — the cached, absorbed, batched decode path against the training forward.
 *
 * Tolerance: both paths compute in fp32, but the absorbed form reassociates the attention
 * products (q·W_UK·c instead of q·(W_UK·c)) and batches GEMMs differently, so logits (O(1)) agree
 * to ~1e-6; atol 2e-4 + rtol 2e-4 is tight enough that a wrong position, a missing rope, a
 * stale cache entry or a wrong latent block moves logits far beyond it.
 */
#include <criterion/criterion.h>
#include <math.h>
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
    model_batch b = {ids, NULL, NULL, NULL, 1, T, 1.0f, false};
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

/* ---- the engine ------------------------------------------------------------------------- */

#include <omp.h>

#include "rollout/engine.h"

enum { NPROMPT = 3, G = 4 };

typedef struct gen_fixture {
    policy_model m;
    int prompt_ids[NPROMPT][9];
    rollout_prompt prompts[NPROMPT];
} gen_fixture;

static void gen_setup(gen_fixture *f) {
    load_fixture(&f->m, "tiny_qlora");
    const int lens[NPROMPT] = {5, 9, 3};
    for (int p = 0; p < NPROMPT; p++) {
        for (int i = 0; i < lens[p]; i++) f->prompt_ids[p][i] = (17 * i + 5 * p + 2) % f->m.cfg.vocab_size;
        f->prompts[p] = (rollout_prompt){f->prompt_ids[p], lens[p], 100 + p};
    }
}

static rollout_config gen_config(void) {
    rollout_config c = rollout_config_default();
    c.num_generations = G;
    c.max_completion_length = 12;
    c.block_tokens = 4;
    c.prefill_chunk = 4; /* prompts of 5 and 9 tokens take several prefill steps */
    c.max_live = NPROMPT * G;
    c.max_cached_tokens = 4096;
    c.seed = 7;
    c.sampling.temperature = 0.8f;
    c.sampling.top_p = 0.95f;
    return c;
}

static void generate(rollout_completion *out, const gen_fixture *f, const rollout_config *c, rollout_stats *st) {
    rollout_engine e;
    pt_error err = {0};
    cr_assert_eq(rollout_engine_init(&e, &f->m, NULL, c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(rollout_generate(&e, f->prompts, NPROMPT, out, st, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(e.cache.nfree, e.cache.nblocks, "every cache block is returned");
    rollout_engine_free(&e);
}

static void expect_same_completions(const rollout_completion *a, const rollout_completion *b, const char *what) {
    for (int i = 0; i < NPROMPT * G; i++) {
        cr_assert_eq(a[i].len, b[i].len, "%s: completion %d has %d tokens vs %d", what, i, a[i].len, b[i].len);
        cr_assert_eq(memcmp(a[i].ids, b[i].ids, sizeof(int) * (size_t)a[i].len), 0, "%s: completion %d differs", what,
                     i);
        double worst;
        cr_assert_eq(compare_close(a[i].logprobs, b[i].logprobs, (size_t)a[i].len, 1e-5, 1e-5, &worst), -1,
                     "%s: logprobs of completion %d differ", what, i);
    }
}

Test(rollout_engine, logprobs_equal_the_training_forward) {
    gen_fixture f;
    gen_setup(&f);
    rollout_config c = gen_config();
    rollout_completion out[NPROMPT * G];
    rollout_stats st;
    generate(out, &f, &c, &st);
    cr_assert_eq(st.generated_tokens, NPROMPT * G * 12, "no EOS configured: every completion runs to the limit");
    int distinct = 0;
    for (int i = 0; i < NPROMPT * G; i++) {
        const rollout_prompt *p = &f.prompts[i / G];
        cr_assert_eq(out[i].finish, FINISH_LENGTH);
        int T = p->len + out[i].len, ids[32], targets[32];
        memcpy(ids, p->ids, sizeof(int) * (size_t)p->len);
        memcpy(ids + p->len, out[i].ids, sizeof(int) * (size_t)out[i].len);
        for (int t = 0; t < T; t++) targets[t] = t + 1 < T ? ids[t + 1] : -1;
        model_acts a;
        pt_error err = {0};
        cr_assert_eq(model_acts_init(&a, &f.m, 1, T, &err), PT_OK);
        model_batch b = {ids, targets, NULL, NULL, 1, T, c.sampling.temperature, false};
        cr_assert_eq(model_forward(&f.m, &a, &b, &err), PT_OK, "%s", err.msg);
        for (int k = 0; k < out[i].len; k++) {
            float want = a.logp[p->len - 1 + k], got = out[i].logprobs[k];
            cr_assert(fabsf(got - want) <= 1e-4f + 1e-4f * fabsf(want),
                      "completion %d token %d: rollout logprob %g, training forward %g", i, k, got, want);
        }
        model_acts_free(&a);
        if (i % G && memcmp(out[i].ids, out[i - 1].ids, sizeof(int) * 12) != 0) distinct++;
    }
    cr_assert_gt(distinct, NPROMPT, "samples of a group must differ (independent random streams)");
    rollout_completions_free(out, NPROMPT * G);
    model_free(&f.m);
}

Test(rollout_engine, completions_do_not_depend_on_batching_threads_sharing_or_budget) {
    gen_fixture f;
    gen_setup(&f);
    rollout_config c = gen_config();
    rollout_completion ref[NPROMPT * G], other[NPROMPT * G];
    rollout_stats st_ref, st;
    generate(ref, &f, &c, &st_ref);

    rollout_config one = c;
    one.max_live = G; /* one group at a time */
    generate(other, &f, &one, &st);
    expect_same_completions(ref, other, "one group at a time");
    cr_assert_eq(st.peak_live, G);
    rollout_completions_free(other, NPROMPT * G);

    rollout_config noshare = c;
    noshare.share_prefix = 0;
    generate(other, &f, &noshare, &st);
    expect_same_completions(ref, other, "without prefix sharing");
    rollout_completions_free(other, NPROMPT * G);

    int threads = omp_get_max_threads();
    omp_set_num_threads(threads > 1 ? 1 : 2);
    generate(other, &f, &c, &st);
    omp_set_num_threads(threads);
    expect_same_completions(ref, other, "another thread count");
    rollout_completions_free(other, NPROMPT * G);

    /* A budget that holds one group: the others wait in the queue instead of failing. */
    rollout_config tight = c;
    tight.max_cached_tokens = 4 * (3 + G * 6); /* the 9-token prompt's group needs 3 + 4·(6 − 2) blocks */
    generate(other, &f, &tight, &st);
    expect_same_completions(ref, other, "a tight memory budget");
    cr_assert_leq(st.peak_cached_tokens, tight.max_cached_tokens);
    cr_assert_lt(st.peak_live, NPROMPT * G, "the budget must have queued work");
    rollout_completions_free(other, NPROMPT * G);
    rollout_completions_free(ref, NPROMPT * G);
    model_free(&f.m);
}

Test(rollout_engine, eos_and_length_finish_reasons) {
    gen_fixture f;
    gen_setup(&f);
    rollout_config c = gen_config();
    c.sampling.temperature = 0.0f; /* greedy: the same continuation for every sample */
    rollout_completion out[NPROMPT * G];
    rollout_stats st;
    generate(out, &f, &c, &st);
    for (int i = 1; i < G; i++) cr_assert_eq(memcmp(out[i].ids, out[0].ids, sizeof(int) * 12), 0);
    /* Stop on the token that greedy decoding of prompt 0 emits fourth (first occurrence). */
    int eos = out[0].ids[3], first = 3;
    for (int k = 0; k < 3; k++)
        if (out[0].ids[k] == eos) first = k;
    rollout_completions_free(out, NPROMPT * G);
    c.eos_ids = &eos;
    c.n_eos = 1;
    generate(out, &f, &c, &st);
    cr_assert_eq(out[0].len, first + 1, "stops right after the EOS token");
    cr_assert_eq(out[0].finish, FINISH_STOP);
    cr_assert_eq(out[0].ids[first], eos);
    for (int i = 0; i < NPROMPT * G; i++)
        cr_assert(out[i].finish == FINISH_STOP ? out[i].ids[out[i].len - 1] == eos : out[i].len == 12);
    rollout_completions_free(out, NPROMPT * G);
    model_free(&f.m);
}

Test(rollout_engine, never_samples_ids_beyond_the_vocab_limit) {
    gen_fixture f;
    gen_setup(&f);
    rollout_config c = gen_config();
    c.sampling.temperature = 5.0f; /* nearly uniform: ids near the top would be drawn often */
    c.vocab_limit = f.m.cfg.vocab_size - 40;
    rollout_completion out[NPROMPT * G];
    rollout_stats st;
    generate(out, &f, &c, &st);
    int top = 0;
    for (int i = 0; i < NPROMPT * G; i++)
        for (int k = 0; k < out[i].len; k++) {
            cr_assert_lt(out[i].ids[k], c.vocab_limit, "completion %d token %d is id %d", i, k, out[i].ids[k]);
            if (out[i].ids[k] > top) top = out[i].ids[k];
        }
    cr_assert_gt(top, c.vocab_limit / 2, "the draws must reach high ids for the check to mean something");
    rollout_completions_free(out, NPROMPT * G);
    model_free(&f.m);
}

/* ---- the MTP draft module ---------------------------------------------------------------- */

#include "model/acts.h"
#include "tests/util/tiny_model.h"

/* decode_mtp_step over a prefilled sequence equals the training forward's MTP module logits. */
Test(rollout, mtp_draft_logits_match_the_training_forward) {
    model_config cfg;
    tiny_model_config(&cfg);
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_init(&m, &cfg, 5, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    const int T = 10, V = m.cfg.vocab_size, L = m.cfg.num_hidden_layers, H = m.cfg.hidden_size;
    int ids[10], targets[10];
    for (int i = 0; i < T; i++) ids[i] = (7 * i + 1) % V;
    for (int i = 0; i < T; i++) targets[i] = i + 1 < T ? ids[i + 1] : -1;
    model_acts a;
    cr_assert_eq(model_acts_init(&a, &m, 1, T, &err), PT_OK);
    model_batch b = {ids, targets, NULL, NULL, 1, T, 1.0f, false};
    cr_assert_eq(model_forward(&m, &a, &b, &err), PT_OK, "%s", err.msg);

    latent_cache cache;
    decode_ws ws;
    cr_assert_eq(latent_cache_init(&cache, L + 1, 8, 4, m.cfg.kv_lora_rank, m.cfg.qk_rope_head_dim, &err), PT_OK);
    cr_assert_eq(decode_ws_init(&ws, &m, T, 32, &err), PT_OK, "%s", err.msg);
    cache_seq s;
    cr_assert_eq(cache_seq_init(&s, 32, 4, &err), PT_OK);
    cache_seq *seqs[10];
    int pos[10];
    for (int i = 0; i < T; i++) seqs[i] = &s, pos[i] = i;
    cr_assert_eq(cache_seq_reserve(&cache, &s, T), 0);
    decode_step(&ws, &m, &cache, seqs, ids, pos, T, NULL, 0);
    float *h = malloc(sizeof(float) * (size_t)T * H);
    memcpy(h, ws.hidden, sizeof(float) * (size_t)T * H);
    /* Positions 0..T-2 have a next token; feed them in two steps to exercise the cache. */
    decode_mtp_step(&ws, &m, &cache, seqs, ids + 1, pos, h, 4);
    float *first = malloc(sizeof(float) * 4 * (size_t)V);
    memcpy(first, ws.logits, sizeof(float) * 4 * (size_t)V);
    decode_mtp_step(&ws, &m, &cache, seqs, ids + 5, pos + 4, h + 4 * (size_t)H, T - 5);
    for (int t = 0; t < T - 1; t++) {
        const float *got = t < 4 ? first + (size_t)t * V : ws.logits + (size_t)(t - 4) * V;
        expect_close(got, a.mtp[0].logits + (size_t)t * V, V, "MTP draft", t);
    }
    free(first), free(h);
    cache_seq_release(&cache, &s);
    cache_seq_free(&s);
    decode_ws_free(&ws);
    latent_cache_free(&cache);
    model_acts_free(&a);
    model_free(&m);
}

/* ---- speculative decoding with the MTP draft ---------------------------------------------- */

/* Chi-square critical value at p = 0.001 (Wilson–Hilferty). */
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df);
    return df * pow(1.0 - a + 3.0902 * sqrt(a), 3.0);
}

/* Two-sample chi-square over the ids at completion position k; returns the statistic, *df set. */
static double two_sample_chi2(const rollout_completion *a, const rollout_completion *b, int n, int k, int V, int *df) {
    int *ca = calloc((size_t)V, sizeof(int)), *cb = calloc((size_t)V, sizeof(int));
    for (int i = 0; i < n; i++) {
        if (a[i].len > k) ca[a[i].ids[k]]++;
        if (b[i].len > k) cb[b[i].ids[k]]++;
    }
    double chi = 0.0;
    int cats = 0;
    for (int v = 0; v < V; v++)
        if (ca[v] + cb[v] > 0) {
            chi += (double)(ca[v] - cb[v]) * (ca[v] - cb[v]) / (ca[v] + cb[v]);
            cats++;
        }
    free(ca), free(cb);
    *df = cats - 1;
    return chi;
}

/* With speculation the tokens come from a different path (MTP drafts accepted or corrected), so
 * completions differ draw by draw, but their distribution must not: compare the ids at each
 * position over 2400 samples of one prompt against plain sampling. The acceptance rule alone is
 * proven able to fail this kind of test in tests/test_sampler.c (a wrong rule is rejected). */
Test(rollout_engine, speculative_decoding_preserves_the_distribution, .timeout = 120) {
    model_config cfg;
    tiny_model_config(&cfg);
    cfg.max_position_embeddings = 64;
    policy_model m;
    pt_error err = {0};
    cr_assert_eq(model_init(&m, &cfg, 9, &err), PT_OK, "%s", err.msg);
    model_config_free(&cfg);
    const int N = 2400, V = m.cfg.vocab_size;
    int prompt[5] = {3, 14, 15, 9, 2};
    rollout_prompt p = {prompt, 5, 0};
    rollout_config c = rollout_config_default();
    c.num_generations = N;
    c.max_live = N;
    c.max_completion_length = 4;
    c.block_tokens = 4;
    c.max_cached_tokens = (int64_t)N * 24;
    c.seed = 3;
    rollout_completion *plain = calloc(N, sizeof *plain), *spec = calloc(N, sizeof *spec);
    rollout_stats st_plain, st_spec;
    rollout_engine e;
    cr_assert_eq(rollout_engine_init(&e, &m, NULL, &c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(rollout_generate(&e, &p, 1, plain, &st_plain, &err), PT_OK, "%s", err.msg);
    rollout_engine_free(&e);
    c.speculative = 1;
    c.seed = 4;
    cr_assert_eq(rollout_engine_init(&e, &m, NULL, &c, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(rollout_generate(&e, &p, 1, spec, &st_spec, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(e.cache.nfree, e.cache.nblocks, "every cache block is returned");
    rollout_engine_free(&e);
    cr_assert_gt(st_spec.drafts, 0);
    cr_assert_gt(st_spec.accepted, 0, "some drafts must be accepted");
    for (int k = 0; k < 4; k++) {
        int df;
        double chi = two_sample_chi2(plain, spec, N, k, V, &df);
        cr_assert_lt(chi, chi2_crit(df), "position %d: chi-square %.1f with %d degrees of freedom (critical %.1f)", k,
                     chi, df, chi2_crit(df));
    }
    for (int i = 0; i < N; i++) cr_assert_eq(spec[i].len, 4);
    /* Seeds differ between the runs on purpose: with one seed the first tokens would be equal. */
    int same = 0;
    for (int i = 0; i < N; i++) same += memcmp(plain[i].ids, spec[i].ids, 4 * sizeof(int)) == 0;
    cr_assert_lt(same, N / 2);
    rollout_completions_free(plain, N);
    rollout_completions_free(spec, N);
    free(plain), free(spec);
    model_free(&m);
}
