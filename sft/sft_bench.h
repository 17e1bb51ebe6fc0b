/* sft_bench.h — SFT throughput for `make bench`: whole trainer steps against the model's bare
 * forward + backward on the same batches and weights.
 *
 * Setup (in a temporary folder, removed afterwards): the model of `model_config_path` initialised
 * from seed 1; 600 arithmetic and 400 countdown examples from the built-in generators (seed 1,
 * difficulty 1, as the demo uses); a byte-level BPE tokenizer of the model's vocab_size trained on
 * them. Each timed round is one whole SFT step — the data loader (16 rows of 256 tokens, greedy
 * packing, completion-only loss), forward, backward, AdamW, the router-bias update, the step
 * statistics and the step's run.db transaction — followed by model_forward + model_mean_nll +
 * model_backward alone on the batch that step used, with the weights it left (what the model
 * benchmark times). Interleaving puts both under the same machine load, and the same weights give
 * both the same routing of tokens to experts (a freshly initialised router sends most tokens to a
 * few experts, which runs at another speed; round 0 warms up and is not counted). Each number is
 * the fastest of its `steps` rounds: the best case is what a shared machine disturbs least.
 *
 * ratio = SFT / bare: 1 means the trainer adds nothing to the model's own work; 1 − ratio is its
 * overhead (data loading, AdamW, bookkeeping). Tokens are counted as positions (B·T, padding
 * included) in both numbers so the ratio compares like with like; `fill` says what share of the
 * positions were real tokens.
 */
#ifndef POSTTRAIN_SFT_SFT_BENCH_H
#define POSTTRAIN_SFT_SFT_BENCH_H

#include "core/error.h"

typedef struct sft_bench_result {
    int B, T, steps;             /* batch shape and timed rounds */
    double sft_tokens_per_s;     /* positions per second through whole SFT steps */
    double fwd_bwd_tokens_per_s; /* positions per second of forward + backward alone */
    double ratio;                /* sft / fwd_bwd */
    double fill;                 /* real tokens / positions in the timed steps */
    double step_seconds;         /* seconds of the fastest SFT step */
} sft_bench_result;

/* Runs the benchmark above with `steps` timed rounds (1..1000; 3 is enough on the demo model,
 * about 30 s on 2 cores). Prints nothing. */
pt_status sft_bench(sft_bench_result *r, const char *model_config_path, int steps, pt_error *err);

/* The benchmark's data and tokenizer: 600 arithmetic and 400 countdown examples (seed 1,
 * difficulty 1) written to data_path as prompt/completion JSONL, and a byte-level BPE tokenizer of
 * `vocab` ids trained on them (*tok, free with tokenizer_free). Also used by sft/sft_fp8_gap.h. */
struct tokenizer;
pt_status sft_bench_make_data(struct tokenizer **tok, const char *data_path, size_t vocab, pt_error *err);

#endif
