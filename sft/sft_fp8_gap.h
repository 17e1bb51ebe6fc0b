/* sft_fp8_gap.h — the measured loss gap of FP8 training (`make bench ARGS=fp8`): the same SFT run
 * in fp32 and in fp8 (model/precision.h), step by step, on the training batches and on a fixed
 * held-out set, over one or more seeds.
 *
 * For each seed s, every run starts from the same weights (the model config initialised from seed
 * s), reads the same data in the same order (sft_bench_make_data: 600 arithmetic + 400 countdown
 * examples, a BPE tokenizer of the model's vocab_size; shuffle seed s, greedy packing,
 * completion-only loss) and uses the demo's optimiser settings (examples/configs/sft-demo.json:
 * AdamW β 0.9/0.95, weight decay 0.01, clipping 1.0, 20 warm-up steps (steps/5 in runs under 100
 * steps) then cosine to 0.1×) at the peak learning rate of the options. The only difference is the
 * precision of the attention, MLP and expert GEMMs. With noise_floor, a third run trains in fp32
 * from the initial weights rounded to bf16 (a relative change of at most 2⁻⁹, nothing else
 * different): its gap to the fp32 run is how far two fp32 trajectories drift apart from a tiny
 * perturbation alone — the floor under which no precision can be judged.
 *
 * Held-out loss (heldout > 0): `heldout` examples of the generators' held-out split (datasets/
 * tasks.h: 60% arithmetic, 40% countdown, seed 1, difficulty 1; disjoint from the training
 * problems by construction), greedily packed into rows of T tokens, their token-mean NLL
 * (sft_eval_loss: forward only, completion tokens) before step 1 and every eval_every steps and
 * after the last. Each run evaluates in its own training precision; the fp8 run is also evaluated
 * with fp32 GEMMs (held[SFT_GAP_FP8_AS_FP32]: what its weights are worth outside the emulation).
 * The mean over thousands of tokens is far less noisy than one training batch's loss.
 *
 * Statistics (sft_gap_tail_of) of a run against the fp32 run, over the "tail": the last 20% of the
 * steps (training loss: steps > steps − steps/5; held-out: the evaluations after such steps):
 *   rel_diff      (mean − mean_fp32) / mean_fp32 of the tail means, signed (< 0: lower loss);
 *   mean_rel_err  the mean over tail points of |x_i − fp32_i| / fp32_i (per-step error, with the
 *                 step-to-step noise of two trajectories that drift apart).
 * Over seeds (sft_gap_mean_of) each of rel_diff, |rel_diff| and mean_rel_err gets its mean and
 * standard error (sd / √n): a signed mean within ~2 standard errors of 0 is no systematic gap, and
 * fp8's |rel_diff| against the floor's says whether fp8 is distinguishable from the perturbation.
 * Points whose loss is NaN in either run (a batch without a target) are left out. seconds[] is
 * each run's wall time for its training steps and cpu_seconds[] the process CPU time in them: the
 * cost of emulation (CPU time stays meaningful on a machine shared with other work).
 */
#ifndef POSTTRAIN_SFT_SFT_FP8_GAP_H
#define POSTTRAIN_SFT_SFT_FP8_GAP_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "model/model_config.h"

/* Runs: fp32, fp8, the noise floor; held-out series add the fp8 weights under fp32 GEMMs. */
enum { SFT_GAP_FP32, SFT_GAP_FP8, SFT_GAP_FLOOR, SFT_GAP_FP8_AS_FP32, SFT_GAP_SERIES };

typedef struct sft_gap_options {
    int steps;       /* optimizer steps per run, 5..100000 */
    int B, T;        /* micro-batch rows and tokens per row */
    double lr;       /* peak learning rate (0: the demo's 3e-3) */
    int noise_floor; /* 1: also the fp32 run from bf16-rounded initial weights */
    int seeds;       /* seeds first_seed, first_seed + 1, ... (0: 1 seed) */
    uint64_t first_seed; /* 0: 1 */
    int heldout;     /* held-out examples (0: no held-out loss) */
    int eval_every;  /* held-out evaluation every N steps (0: steps / 20, at least 1) */
    int jobs;        /* seeds trained in this many processes at once (0, 1: in this process) */
    FILE *progress;  /* a line per finished run (seed, run, seconds, last losses); NULL: silent */
} sft_gap_options;

/* Tail statistics of one series against the fp32 series (see the file comment). */
typedef struct sft_gap_tail {
    double mean_ref, mean; /* tail means of the fp32 series and of this one */
    double rel_diff;       /* (mean − mean_ref) / mean_ref */
    double mean_rel_err;   /* mean of |x_i − ref_i| / ref_i */
    int points;            /* tail points used (both finite) */
} sft_gap_tail;

/* Mean and standard error of the finite values among n. */
typedef struct sft_gap_mean {
    double mean, se; /* se: sd / √count (NaN under 2 values) */
    int count;
} sft_gap_mean;

typedef struct sft_gap_seed {
    uint64_t seed;
    double *loss[3];                 /* (steps) training loss per step: fp32, fp8, floor */
    double *held[SFT_GAP_SERIES];    /* (n_evals) held-out loss at eval_step[j] */
    double seconds[3];               /* wall time of each run's training steps */
    double cpu_seconds[3];           /* CPU time of this process in them (all its threads) */
    sft_gap_tail train[3];           /* [fp8], [floor] against [fp32] */
    sft_gap_tail held_tail[SFT_GAP_SERIES];
} sft_gap_seed;

typedef struct sft_gap_result {
    int steps, seeds, runs;          /* runs: 2, or 3 with the floor */
    int n_evals, *eval_step;         /* held-out evaluations: after eval_step[j] steps (0: before any) */
    int held_from;                   /* first eval index in the tail */
    int heldout_examples, heldout_rows;
    long heldout_tokens;             /* targets in the held-out set */
    sft_gap_seed *seed;              /* (seeds) */
    /* over seeds, for [fp8], [floor] (and held [fp8 as fp32]) */
    sft_gap_mean train_rel_diff[3], train_abs_rel_diff[3], train_mean_rel_err[3];
    sft_gap_mean held_rel_diff[SFT_GAP_SERIES], held_abs_rel_diff[SFT_GAP_SERIES],
        held_mean_rel_err[SFT_GAP_SERIES];
    /* the first seed's training-loss figures (as before seeds existed) */
    double *loss[3];                 /* = seed[0].loss (not separately owned) */
    double seconds[3];
    double tail_rel_err[3];          /* seed[0].train[k].mean_rel_err */
    double tail_mean_rel_err[3];     /* |seed[0].train[k].rel_diff| */
    double tail_mean[3];             /* tail-mean losses */
} sft_gap_result;

/* Runs the trainings (in a temporary folder, removed afterwards). Prints nothing but o->progress. */
pt_status sft_fp8_gap(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, pt_error *err);
void sft_gap_result_free(sft_gap_result *r);

/* Tail statistics of x against ref over the indices [from, n) (see sft_gap_tail). */
sft_gap_tail sft_gap_tail_of(const double *ref, const double *x, int from, int n);
/* Mean and standard error of the finite values of v[0..n) (count 0: mean NaN). */
sft_gap_mean sft_gap_mean_of(const double *v, int n);

#endif
