/* sft_fp8_gap.h — the measured loss gap of FP8 training (`make bench ARGS=fp8`): the same SFT run
 * in fp32 and in fp8 (model/precision.h), step by step.
 *
 * Both runs start from the same weights (the model config initialised from seed 1), read the same
 * data in the same order (sft_bench_make_data: 600 arithmetic + 400 countdown examples, a BPE
 * tokenizer of the model's vocab_size; shuffle seed 1, greedy packing, completion-only loss) and
 * use the demo's optimiser settings (examples/configs/sft-demo.json: AdamW lr 3e-3, β 0.9/0.95,
 * weight decay 0.01, clipping 1.0, 20 warm-up steps (steps/5 in runs under 100 steps) then cosine
 * to 0.1×). The only difference is the
 * precision of the attention, MLP and expert GEMMs.
 *
 * Relative loss error of step i: |loss_fp8(i) − loss_fp32(i)| / loss_fp32(i). Reported per step and
 * averaged over the last 20% of the steps (tail_rel_err), next to the relative difference of the
 * two tail-mean losses (tail_mean_rel_err: the curve-level gap that the V3 report's "< 0.25%"
 * figure describes; the per-step figure also contains the step-to-step noise of two trajectories
 * that drift apart). With noise_floor, a third run trains in fp32 from the initial weights rounded
 * to bf16 (a relative change of at most 2⁻⁹, nothing else different): its gap to the fp32 run is
 * how far two fp32 trajectories drift apart from a tiny perturbation alone on this setup — the
 * floor under which no precision can be judged. Steps whose loss is NaN in a run (a batch without a
 * target) are left out of the averages. seconds[] is each run's wall time for its steps: the CPU
 * cost of emulation.
 */
#ifndef POSTTRAIN_SFT_SFT_FP8_GAP_H
#define POSTTRAIN_SFT_SFT_FP8_GAP_H

#include "core/error.h"
#include "model/model_config.h"

typedef struct sft_gap_options {
    int steps;    /* optimizer steps per run, 5..100000 */
    int B, T;     /* micro-batch rows and tokens per row */
    double lr;    /* peak learning rate (0: the demo's 3e-3) */
    int noise_floor; /* 1: also the fp32 run from bf16-rounded initial weights (loss[2]) */
} sft_gap_options;

typedef struct sft_gap_result {
    int steps;
    double *loss[3];             /* (steps) training loss per step: [0] fp32, [1] fp8, [2] noise floor */
    double seconds[3];           /* wall time of each run's steps */
    double tail_rel_err[3];      /* [k]: mean over the last 20% of steps of run k's per-step relative error */
    double tail_mean_rel_err[3]; /* [k]: |mean run k − mean fp32| / mean fp32 over the last 20% */
    double tail_mean[3];         /* tail-mean losses */
} sft_gap_result;

/* Runs both trainings (in a temporary folder, removed afterwards). Prints nothing. */
pt_status sft_fp8_gap(sft_gap_result *r, const model_config *mc, const sft_gap_options *o, pt_error *err);
void sft_gap_result_free(sft_gap_result *r);

#endif
