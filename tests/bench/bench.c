/* bench.c — `make bench`: kernel throughput as ratios against this machine's own ceilings.
 *
 * Ceilings are measured in the same run: a large square cblas_sgemm (GFLOP/s) for compute-bound
 * kernels and a memcpy of a buffer far larger than the caches (GB/s) for memory-bound ones. Each
 * figure is the best of several timed repetitions (each at least ~0.15 s), so it reflects what
 * the hardware can do rather than scheduling noise. Nothing here asserts a time.
 *
 * Shapes are those of the demo model (examples/configs/tiny-moe.json): hidden 256, 4 heads,
 * q_lora 128, kv_lora 64, rope 32, nope 32, v 32, 8 routed experts of width 128 with 2 per
 * token plus one shared, dense MLP width 512, vocab 1024, and 4096 tokens (16 x 256) per step.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/linear.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "rollout/engine.h"
#include "grpo/grpo_bench.h"
#include "sft/sft_bench.h"
#include "tests/bench/fp8_gap.h"
#include "tests/util/check.h"

typedef void (*bench_fn)(void *ctx);

/* Seconds per call: best of `reps` timings, each over enough calls to last min_s. */
static double time_best(bench_fn fn, void *ctx, int reps, double min_s) {
    fn(ctx); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        int calls = 0;
        double t0 = timer_now(), t;
        do {
            fn(ctx);
            calls++;
            t = timer_now() - t0;
        } while (t < min_s);
        if (t / calls < best) best = t / calls;
    }
    return best;
}

static float *rand_buf(size_t n, test_rng *r) {
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    fill_uniform(x, n, -1.0f, 1.0f, r);
    return x;
}

typedef struct gemm_ctx { int M, N, K; float *a, *b, *c, *da, *db, *dc; } gemm_ctx;

static void run_sgemm(void *p) {
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->K, 0.0f, g->c, g->N);
}
static void run_linear_fwd(void *p) {
    gemm_ctx *g = p;
    linear_forward(g->c, g->a, g->b, NULL, g->M, g->K, g->N);
}
static void run_linear_bwd(void *p) {
    gemm_ctx *g = p;
    linear_backward(g->da, g->db, NULL, g->dc, g->a, g->b, g->M, g->K, g->N);
}

static void gemm_alloc(gemm_ctx *g, int M, int N, int K, test_rng *r) {
    g->M = M, g->N = N, g->K = K;
    g->a = rand_buf((size_t)M * K, r);
    g->b = rand_buf((size_t)N * K, r);
    g->c = rand_buf((size_t)M * N, r);
    g->da = rand_buf((size_t)M * K, r);
    g->db = rand_buf((size_t)N * K, r);
    g->dc = rand_buf((size_t)M * N, r);
}
static void gemm_free(gemm_ctx *g) {
    free(g->a), free(g->b), free(g->c), free(g->da), free(g->db), free(g->dc);
}

typedef struct copy_ctx { char *src, *dst; size_t bytes; } copy_ctx;
static void run_copy(void *p) {
    copy_ctx *c = p;
    memcpy(c->dst, c->src, c->bytes);
}

typedef struct attn_ctx {
    int B, T, H, Dqk, Dv;
    float *q, *k, *v, *out, *lse, *dq, *dk, *dv, *dout;
} attn_ctx;
static void run_attn_fwd(void *p) {
    attn_ctx *a = p;
    attention_forward(a->out, a->lse, a->q, a->k, a->v, NULL, 0.125f, a->B, a->T, a->H, a->Dqk, a->Dv);
}
static void run_attn_bwd(void *p) {
    attn_ctx *a = p;
    attention_backward(a->dq, a->dk, a->dv, a->dout, a->q, a->k, a->v, a->out, a->lse, NULL, 0.125f, a->B, a->T,
                       a->H, a->Dqk, a->Dv);
}

typedef struct ce_ctx { int N, V; float *logits, *loss, *logp, *ent, *lse, *dlogits, *dlogp; int *targets; } ce_ctx;
static void run_ce_fwd(void *p) {
    ce_ctx *c = p;
    crossentropy_forward(c->loss, c->logp, c->ent, c->lse, c->logits, c->targets, NULL, c->N, c->V);
}
static void run_ce_bwd(void *p) {
    ce_ctx *c = p;
    crossentropy_backward(c->dlogits, c->dlogp, NULL, c->logits, c->targets, c->lse, c->ent, c->N, c->V);
}

typedef struct model_ctx {
    policy_model *m;
    model_acts *a;
    model_batch *b;
    float *dlogp;
    int backward;
} model_ctx;

static void run_model(void *p) {
    model_ctx *c = p;
    pt_error err = {0};
    if (model_forward(c->m, c->a, c->b, &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    if (c->backward) {
        double loss;
        model_mean_nll(c->a, c->dlogp, &loss);
        model_backward(c->m, c->a, c->dlogp, NULL, 1.0f);
    }
}

/* Forward FLOPs per step of the policy, from active parameters and causal attention: 2 per
 * multiply-add of every matrix a token passes through (K of E routed experts), plus
 * 2·(qk + v)·heads per causal (query, key) pair. */
static void model_flops(const model_config *c, int B, int T, double *matmul, double *attn) {
    const double H = c->hidden_size, nh = c->num_attention_heads, dn = c->qk_nope_head_dim;
    const double dr = c->qk_rope_head_dim, dv = c->v_head_dim, ql = c->q_lora_rank, kl = c->kv_lora_rank;
    const double qk = dn + dr, mI = c->moe_intermediate_size, S = mI * c->n_shared_experts;
    double per_token = 0.0;
    const int layers = c->num_hidden_layers + c->num_nextn_predict_layers;
    for (int l = 0; l < layers; l++) {
        per_token += ql > 0 ? ql * H + nh * qk * ql : nh * qk * H;
        per_token += (kl + dr) * H + nh * (dn + dv) * kl + H * nh * dv;
        if (model_config_is_moe_layer(c, l))
            per_token += c->n_routed_experts * H + c->num_experts_per_tok * 3.0 * mI * H + 3.0 * S * H;
        else
            per_token += 3.0 * c->intermediate_size * H;
    }
    per_token += (1 + c->num_nextn_predict_layers) * (double)c->vocab_size * H;
    per_token += c->num_nextn_predict_layers * 2.0 * H * H;
    *matmul = 2.0 * per_token * B * T;
    *attn = (double)layers * B * nh * (T * (T + 1.0) / 2.0) * 2.0 * (qk + dv);
}

static void bench_model(double ceil_gflops) {
    const char *path = PT_SOURCE_DIR "/examples/configs/tiny-moe.json";
    model_config cfg;
    pt_error err = {0};
    policy_model m;
    model_acts a;
    if (model_config_load(&cfg, path, &err) != PT_OK || model_init(&m, &cfg, 1, &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    const int B = 16, T = 256, N = B * T;
    if (model_acts_init(&a, &m, B, T, &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    int *ids = malloc(sizeof(int) * N), *targets = malloc(sizeof(int) * N);
    float *dlogp = malloc(sizeof(float) * N);
    rng r;
    rng_init(&r, 1, 2);
    for (int i = 0; i < N; i++) ids[i] = (int)rng_below(&r, (uint32_t)cfg.vocab_size);
    for (int i = 0; i < N; i++) targets[i] = (i % T == T - 1) ? -1 : ids[i + 1];
    model_batch b = {ids, targets, NULL, NULL, B, T, 1.0f, false};
    model_ctx c = {&m, &a, &b, dlogp, 0};
    double mm, at;
    model_flops(&cfg, B, T, &mm, &at);
    double tf = time_best(run_model, &c, 2, 0.5);
    c.backward = 1;
    double tb = time_best(run_model, &c, 2, 0.5);
    double fl_f = mm + at, fl_b = 3.0 * mm + 3.5 * at;
    printf("\n| policy (examples/configs/tiny-moe.json, 16 x 256 tokens, MTP on) | tokens/s | GFLOP/s | / sgemm ceiling |\n");
    printf("|------------------------------------------------------------------|---------:|--------:|----------------:|\n");
    printf("| forward                                                          | %8.0f | %7.1f | %15.2f |\n", N / tf,
           fl_f / tf * 1e-9, fl_f / tf * 1e-9 / ceil_gflops);
    printf("| forward + backward                                               | %8.0f | %7.1f | %15.2f |\n", N / tb,
           fl_b / tb * 1e-9, fl_b / tb * 1e-9 / ceil_gflops);
    printf("(%.2f GFLOP forward: %.0f%% matmul, %.0f%% attention)\n", fl_f * 1e-9, 100 * mm / fl_f, 100 * at / fl_f);

    model_profile prof = {{0}};
    m.profile = &prof;
    double t0 = timer_now();
    for (int i = 0; i < 3; i++) run_model(&c);
    double total = timer_now() - t0, timed = 0.0;
    m.profile = NULL;
    printf("\n| forward + backward time by phase | share |\n|----------------------------------|------:|\n");
    for (int p = 0; p < PHASE_COUNT; p++) {
        if (p == PHASE_OTHER) continue;
        timed += prof.seconds[p];
        printf("| %-32s | %4.1f%% |\n", model_phase_name((model_phase)p), 100 * prof.seconds[p] / total);
    }
    printf("| %-32s | %4.1f%% |\n", "other (copies, residuals, losses)", 100 * (total - timed) / total);
    free(ids), free(targets), free(dlogp);
    model_acts_free(&a);
    model_free(&m);
    model_config_free(&cfg);
}

/* Tokenizer encode throughput on ~4 MB of mixed text (the tokenizer fixture's corpus: English,
 * code, CJK, emoji, digits, repeated), one thread and all threads. */
static void bench_tokenizer(void) {
    char path[1024];
    tokenizer *tok;
    pt_error err = {0};
    if (tokenizer_load(&tok, fixture_path(path, sizeof path, "tokenizer/tokenizer.json"), &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    FILE *f = fopen(fixture_path(path, sizeof path, "tokenizer/corpus.jsonl"), "rb");
    if (!f) {
        fprintf(stderr, "bench: cannot open %s\n", path);
        exit(1);
    }
    char *corpus = malloc(1 << 20);
    size_t n = corpus ? fread(corpus, 1, 1 << 20, f) : 0;
    fclose(f);
    size_t len = 0, cap = (size_t)4 << 20;
    char *text = malloc(cap + n);
    while (text && n > 0 && len < cap) memcpy(text + len, corpus, n), len += n;
    double one = 0.0, all = 0.0;
    if (!text || tokenizer_bench_encode(&one, tok, text, len, 1, 3, &err) != PT_OK ||
        tokenizer_bench_encode(&all, tok, text, len, omp_get_max_threads(), 3, &err) != PT_OK) {
        fprintf(stderr, "bench: tokenizer: %s\n", err.msg);
        exit(1);
    }
    printf("\n| tokenizer encode (%.1f MB mixed text, vocab 2000) | MB/s |\n|---------------------------------------------|-----:|\n",
           len / 1e6);
    printf("| 1 thread                                    | %4.1f |\n| %d threads                                   | %4.1f |\n",
           one / 1e6, omp_get_max_threads(), all / 1e6);
    free(corpus), free(text);
    tokenizer_free(tok);
}

/* Generation: B prompts × G samples × L new tokens on the demo model with the engine, the
 * engine without prefix sharing, and naive generation that reruns the training forward over the
 * whole sequence for every new token (one sample: its cost per token does not batch). */
static void bench_generate(void) {
    const char *path = PT_SOURCE_DIR "/examples/configs/tiny-moe.json";
    model_config cfg;
    pt_error err = {0};
    policy_model m;
    if (model_config_load(&cfg, path, &err) != PT_OK || model_init(&m, &cfg, 1, &err) != PT_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    enum { NP = 16, G = 8, L = 256, TP = 32 };
    static int ids[NP][TP];
    rollout_prompt prompts[NP];
    rng r;
    rng_init(&r, 3, 4);
    for (int p = 0; p < NP; p++) {
        for (int t = 0; t < TP; t++) ids[p][t] = (int)rng_below(&r, (uint32_t)cfg.vocab_size);
        prompts[p] = (rollout_prompt){ids[p], TP, p};
    }
    rollout_config rc = rollout_config_default();
    rc.num_generations = G;
    rc.max_completion_length = L;
    rc.max_live = NP * G;
    rc.max_cached_tokens = (int64_t)NP * G * (TP + L) + 4096;
    rc.sampling.temperature = 1.0f;
    rollout_completion *out = malloc(sizeof *out * NP * G);
    rollout_stats st[2], st_spec;
    {
        rollout_engine e;
        rc.speculative = 1;
        if (rollout_engine_init(&e, &m, NULL, &rc, &err) != PT_OK ||
            rollout_generate(&e, prompts, NP, out, &st_spec, &err) != PT_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
        rollout_completions_free(out, NP * G);
        rollout_engine_free(&e);
        rc.speculative = 0;
    }
    for (int share = 1; share >= 0; share--) {
        rollout_engine e;
        rc.share_prefix = share;
        if (rollout_engine_init(&e, &m, NULL, &rc, &err) != PT_OK ||
            rollout_generate(&e, prompts, NP, out, &st[share], &err) != PT_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
        rollout_completions_free(out, NP * G);
        rollout_engine_free(&e);
    }
    /* Naive: one sample of L tokens, a full forward over the sequence for each token. */
    int seq[TP + L];
    memcpy(seq, ids[0], sizeof ids[0]);
    double t0 = timer_now();
    int64_t naive_peak = 0;
    for (int t = TP; t < TP + L; t++) {
        model_acts a;
        model_batch b = {seq, NULL, NULL, NULL, 1, t, 1.0f, false};
        if (model_acts_init(&a, &m, 1, t, &err) != PT_OK || model_forward(&m, &a, &b, &err) != PT_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            exit(1);
        }
        if ((int64_t)a.mem.bytes > naive_peak) naive_peak = (int64_t)a.mem.bytes;
        const float *lg = a.logits + (size_t)(t - 1) * cfg.vocab_size;
        int best = 0;
        for (int v = 1; v < cfg.vocab_size; v++)
            if (lg[v] > lg[best]) best = v;
        seq[t] = best;
        model_acts_free(&a);
    }
    double naive_s = timer_now() - t0;
    const double per_token_cache = (double)(cfg.kv_lora_rank + cfg.qk_rope_head_dim) * cfg.num_hidden_layers * 4;
    printf("\n| generation, demo model, %d prompts x %d samples x %d new tokens (prompt %d) | tokens/s | vs naive | peak cache |\n",
           NP, G, L, TP);
    printf("|-------------------------------------------------------------------------------|---------:|---------:|-----------:|\n");
    double naive_tps = L / naive_s;
    for (int share = 1; share >= 0; share--) {
        double tps = st[share].generated_tokens / st[share].seconds;
        printf("| engine%-72s | %8.0f | %7.0fx | %7.2f MiB |\n", share ? " (shared prompt blocks)" : " without prefix sharing", tps,
               tps / naive_tps, st[share].peak_cached_tokens * per_token_cache / (1 << 20));
    }
    printf("| naive: full forward per token, 1 sample                                         | %8.1f | %7.0fx | %7.2f MiB |\n",
           naive_tps, 1.0, naive_peak / (double)(1 << 20));
    double spec_tps = st_spec.generated_tokens / st_spec.seconds;
    printf("| engine + MTP speculative decoding                                                | %8.0f | %7.0fx | %7.2f MiB |\n",
           spec_tps, spec_tps / naive_tps, st_spec.peak_cached_tokens * per_token_cache / (1 << 20));
    printf("(naive memory: the activations of one forward over the longest sequence)\n");
    printf("MTP speculation: %.1f%% of %lld drafts accepted, %.2f tokens per decode step (1.00 without), speed-up "
           "%.2fx over the same engine without it (an untrained MTP head drafts poorly)\n",
           100.0 * st_spec.accepted / (st_spec.drafts ? st_spec.drafts : 1), (long long)st_spec.drafts,
           (double)st_spec.generated_tokens / (st_spec.steps * (double)NP * G + 1e-9) * 1.0, spec_tps / (st[1].generated_tokens / st[1].seconds));
    free(out);
    model_free(&m);
    model_config_free(&cfg);
}

/* `bench` runs every section; `bench model generate` only those named. */
static int want(int argc, char **argv, const char *name) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "fp8") == 0) return bench_fp8_gap(argc, argv, i); /* tests/bench/fp8_gap.c */
    test_rng r;
    test_rng_seed(&r, 7);
    const double min_s = 0.15;
    const int reps = 3;
    printf("posttrain bench — %d threads, %s\n\n", omp_get_max_threads(), openblas_get_config());

    /* Ceilings. */
    gemm_ctx sq;
    gemm_alloc(&sq, 2048, 2048, 2048, &r);
    double t_sq = time_best(run_sgemm, &sq, reps, min_s);
    double ceil_gflops = 2.0 * 2048.0 * 2048.0 * 2048.0 / t_sq * 1e-9;
    gemm_free(&sq);
    copy_ctx cp = {malloc((size_t)256 << 20), malloc((size_t)256 << 20), (size_t)256 << 20};
    memset(cp.src, 1, cp.bytes);
    memset(cp.dst, 2, cp.bytes);
    double t_cp = time_best(run_copy, &cp, reps, min_s);
    double ceil_gbs = 2.0 * (double)cp.bytes / t_cp * 1e-9; /* read + write */
    free(cp.src), free(cp.dst);
    printf("ceilings: sgemm 2048^3 %.1f GFLOP/s; memcpy 256 MiB %.1f GB/s (read+write)\n\n", ceil_gflops, ceil_gbs);

    if (want(argc, argv, "gemm")) {
        /* Linear layers of the demo model at 4096 tokens. Routed experts see N·K/E = 1024 tokens each. */
        struct { const char *name; int M, N, K; } shapes[] = {
            {"attn q_a_proj      ", 4096, 128, 256}, {"attn q_b_proj      ", 4096, 256, 128},
            {"attn kv_a_proj     ", 4096, 96, 256},  {"attn kv_b_proj     ", 4096, 256, 64},
            {"attn o_proj        ", 4096, 256, 128}, {"dense gate/up_proj ", 4096, 512, 256},
            {"dense down_proj    ", 4096, 256, 512}, {"expert gate/up_proj", 1024, 128, 256},
            {"expert down_proj   ", 1024, 256, 128}, {"router gate        ", 4096, 8, 256},
            {"lm_head            ", 4096, 1024, 256},
        };
        printf("| GEMM (tokens x out x in)                | fwd GFLOP/s | fwd / ceiling | bwd GFLOP/s | bwd / ceiling |\n");
        printf("|-----------------------------------------|------------:|--------------:|------------:|--------------:|\n");
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            gemm_ctx g;
            gemm_alloc(&g, shapes[i].M, shapes[i].N, shapes[i].K, &r);
            double flops = 2.0 * g.M * g.N * g.K;
            double tf = time_best(run_linear_fwd, &g, reps, min_s);
            double tb = time_best(run_linear_bwd, &g, reps, min_s);
            printf("| %s %5d x %4d x %4d | %11.1f | %13.2f | %11.1f | %13.2f |\n", shapes[i].name, g.M, g.N, g.K,
                   flops / tf * 1e-9, flops / tf * 1e-9 / ceil_gflops, 2 * flops / tb * 1e-9,
                   2 * flops / tb * 1e-9 / ceil_gflops);
            gemm_free(&g);
        }
    }

    if (want(argc, argv, "attention")) {
        /* Causal attention: 8 sequences x 512 tokens, 4 heads, qk 64 (nope 32 + rope 32), v 32. */
        attn_ctx a = {8, 512, 4, 64, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        size_t nq = (size_t)a.B * a.T * a.H * a.Dqk, nv = (size_t)a.B * a.T * a.H * a.Dv;
        a.q = rand_buf(nq, &r), a.k = rand_buf(nq, &r), a.v = rand_buf(nv, &r), a.out = rand_buf(nv, &r);
        a.lse = rand_buf((size_t)a.B * a.H * a.T, &r), a.dq = rand_buf(nq, &r), a.dk = rand_buf(nq, &r);
        a.dv = rand_buf(nv, &r), a.dout = rand_buf(nv, &r);
        /* Causal pairs T(T+1)/2 per head; forward: QKᵀ and PV; backward: 2.5x forward (dS, dQ, dK, dV). */
        double pairs = (double)a.B * a.H * a.T * (a.T + 1) / 2.0;
        double fl_f = pairs * 2.0 * (a.Dqk + a.Dv);
        double ta_f = time_best(run_attn_fwd, &a, reps, min_s);
        double ta_b = time_best(run_attn_bwd, &a, reps, min_s);
        printf("\n| attention (B=8, T=512, H=4, qk 64, v 32) | GFLOP/s | / sgemm ceiling | tokens/s |\n");
        printf("|------------------------------------------|--------:|----------------:|---------:|\n");
        printf("| forward                                  | %7.1f | %15.2f | %8.0f |\n", fl_f / ta_f * 1e-9,
               fl_f / ta_f * 1e-9 / ceil_gflops, a.B * a.T / ta_f);
        printf("| backward                                 | %7.1f | %15.2f | %8.0f |\n", 2.5 * fl_f / ta_b * 1e-9,
               2.5 * fl_f / ta_b * 1e-9 / ceil_gflops, a.B * a.T / ta_b);
        free(a.q), free(a.k), free(a.v), free(a.out), free(a.lse), free(a.dq), free(a.dk), free(a.dv), free(a.dout);
    }

    if (want(argc, argv, "ce")) {
        /* Cross-entropy over the vocabulary: memory-bound, so compare bytes of logits moved with memcpy. */
        ce_ctx c = {4096, 1024, 0, 0, 0, 0, 0, 0, 0, 0};
        size_t nl = (size_t)c.N * c.V;
        c.logits = rand_buf(nl, &r), c.dlogits = rand_buf(nl, &r);
        c.loss = rand_buf(c.N, &r), c.logp = rand_buf(c.N, &r), c.ent = rand_buf(c.N, &r), c.lse = rand_buf(c.N, &r);
        c.dlogp = rand_buf(c.N, &r);
        c.targets = malloc((size_t)c.N * sizeof(int));
        for (int i = 0; i < c.N; i++) c.targets[i] = (int)(test_rng_uniform(&r) * c.V);
        double tc_f = time_best(run_ce_fwd, &c, reps, min_s);
        double tc_b = time_best(run_ce_bwd, &c, reps, min_s);
        double bytes_f = 4.0 * nl, bytes_b = 3.0 * 4.0 * nl; /* fwd reads logits; bwd reads logits, reads+writes dlogits */
        printf("\n| cross-entropy (4096 x 1024) | GB/s  | / memcpy ceiling | tokens/s |\n");
        printf("|-----------------------------|------:|-----------------:|---------:|\n");
        printf("| forward (loss, logp, H)     | %5.1f | %16.2f | %8.0f |\n", bytes_f / tc_f * 1e-9,
               bytes_f / tc_f * 1e-9 / ceil_gbs, c.N / tc_f);
        printf("| backward                    | %5.1f | %16.2f | %8.0f |\n", bytes_b / tc_b * 1e-9,
               bytes_b / tc_b * 1e-9 / ceil_gbs, c.N / tc_b);
        free(c.logits), free(c.dlogits), free(c.loss), free(c.logp), free(c.ent), free(c.lse), free(c.dlogp);
        free(c.targets);
    }

    if (want(argc, argv, "tokenizer")) bench_tokenizer();
    if (want(argc, argv, "model")) bench_model(ceil_gflops);
    if (want(argc, argv, "sft")) {
        sft_bench_result sr;
        pt_error err = {0};
        if (sft_bench(&sr, PT_SOURCE_DIR "/examples/configs/tiny-moe.json", 3, &err) != PT_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        printf("\n| SFT on the demo model (16 x 256, packed) | tokens/s |\n|------------------------------------------|---------:|\n");
        printf("| SFT step (trainer)                       | %8.0f |\n| forward+backward alone, same batch       | %8.0f |\n",
               sr.sft_tokens_per_s, sr.fwd_bwd_tokens_per_s);
        printf("(trainer / bare forward+backward = %.3f; %.0f%% of positions are real tokens)\n", sr.ratio, 100 * sr.fill);
    }
    if (want(argc, argv, "generate")) bench_generate();
    if (want(argc, argv, "grpo")) {
        grpo_bench_result gr;
        pt_error err = {0};
        if (grpo_bench(&gr, PT_SOURCE_DIR "/examples/configs/tiny-moe.json", 16, 8, 96, 2, &err) != PT_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        printf("\n| GRPO step on the demo model (%d prompts x %d samples, <= %d tokens) | seconds | share |\n"
               "|----------------------------------------------------------------|--------:|------:|\n", gr.P, gr.G, gr.C);
        printf("| generation (rollout engine)                                    | %7.2f | %5.2f |\n", gr.gen_seconds,
               gr.gen_seconds / gr.step_seconds);
        printf("| scoring (countdown reward)                                     | %7.3f | %5.2f |\n", gr.score_seconds,
               gr.score_seconds / gr.step_seconds);
        printf("| update (forward + backward + AdamW)                            | %7.2f | %5.2f |\n", gr.update_seconds,
               gr.update_share);
        printf("| whole step                                                     | %7.2f |  1.00 |\n", gr.step_seconds);
        printf("(%.0f tokens per step, %.0f tokens/s; generation %.0f new tokens/s)\n", gr.tokens, gr.tokens_per_s,
               gr.gen_tokens_per_s);
    }
    return 0;
}
