/* optim.h — the trainers' optimizer: AdamW over a policy's parameter layout, with global-norm
 * gradient clipping, per-role weight decay and a NaN/Inf guard.
 *
 * State: moments m and v with the model's layout (one arena; `m + off` is the first moment
 * of `params + off`) and the count of updates taken. The moments are stored in fp32, or with
 * adam_moments = bf16 as bf16 (2 bytes per parameter each, in m16/v16): each update widens
 * them to fp32 (exact), runs the same fp32 AdamW kernel and rounds them back to nearest-even
 * bf16 (model/dtype.h); the master weights stay fp32. One optim_step is, in order:
 *   1. N = ‖g‖₂ over every trainable tensor (clip_grad_norm_'s total norm; kernels/adamw.h);
 *   2. N not finite → the step is skipped: params, grads, m, v and the step count are left
 *      exactly as they were, and the result says so (the trainer warns, counts it with a
 *      nan_guard and aborts after K skips in a row);
 *   3. max_grad_norm > 0 → g ← g·max_grad_norm/(N + 1e-6) in place (=) when that factor is < 1;
 *   4. t ← t + 1; AdamW (torch.optim.AdamW, kernels/adamw.c) with step t on each trainable tensor,
 *      weight decay on TENSOR_WEIGHT always and on TENSOR_NORM only when weight_decay_norms.
 * Trainable = role WEIGHT or NORM and not an alias. Router biases (TENSOR_BIAS) are neither
 * updated nor counted in N: DeepSeek-V3 moves them by its own rule (model_update_router_bias).
 * Alias entries share memory with a real tensor (the MTP modules' copies of the embedding and
 * head), so they are skipped and the real tensor is updated exactly once. Floats between
 * tensors (alignment padding) are never touched.
 *
 * Gradient accumulation is the caller's business: run the micro-batches of a step with their
 * losses scaled by 1/micro_batches (the model's backward accumulates, +=), call optim_step once,
 * then zero the gradients (model_zero_grads) — the mean over micro-batches is then what a
 * single large batch would give. The learning rate comes from the caller (core/schedule.h:
 * lr_at(sched, opt->step)).
 */
#ifndef POSTTRAIN_CORE_OPTIM_H
#define POSTTRAIN_CORE_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"
#include "model/layout.h"

/* How the moments m and v are stored. The update math is fp32 either way. */
typedef enum optim_moments { OPTIM_MOMENTS_FP32, OPTIM_MOMENTS_BF16 } optim_moments;

typedef struct optim_config {
    double beta1, beta2;     /* AdamW betas (0.9, 0.95 in DeepSeek-V3) */
    double eps;              /* added to the bias-corrected sqrt(v) (1e-8) */
    double weight_decay;     /* decoupled decay (0.1 in DeepSeek-V3) */
    double max_grad_norm;    /* global-norm clipping threshold; 0 = off (1.0 in DeepSeek-V3) */
    bool weight_decay_norms; /* also decay RMSNorm weights (false: HF Trainer skips them too) */
    optim_moments moments;   /* storage of m and v (config key adam_moments; default fp32) */
} optim_config;

/* A contiguous run of trainable floats sharing one decay setting (adjacent tensors merged). */
typedef struct optim_span {
    size_t offset; /* floats from the arena base (same in params, grads, m, v) */
    size_t numel;
    bool decay;    /* weight decay applies */
} optim_span;

typedef struct optim {
    optim_config cfg;
    int64_t step;      /* updates taken (t of the last update; 0 before the first) */
    size_t total;      /* floats in the layout (= the model's layout.total) */
    float *m;          /* (total) first moments; NULL with bf16 moments */
    float *v;          /* (total) second moments; NULL with bf16 moments */
    uint16_t *m16;     /* (total) bf16 bits of the first moments; NULL with fp32 moments */
    uint16_t *v16;     /* (total) bf16 bits of the second moments; NULL with fp32 moments */
    float *chunk_m;    /* (OPTIM_BF16_CHUNK) bf16 mode: the fp32 working copy of a run of m */
    float *chunk_v;    /* (OPTIM_BF16_CHUNK) the same for v */
    arena mem;         /* holds m and v (or m16, v16 and the two chunks) */
    optim_span *spans; /* (nspans) sorted by offset, disjoint */
    int nspans;
    size_t trainable;  /* Σ spans[i].numel */
    float **grad_ptrs; /* (nspans) scratch: grads + spans[i].offset, for the clipping kernel */
    size_t *span_sizes; /* (nspans) spans[i].numel */
} optim;

/* Floats per fp32 working chunk of the bf16 moments. */
#define OPTIM_BF16_CHUNK ((size_t)1 << 16)

/* What one optim_step did. */
typedef struct optim_step_info {
    double grad_norm; /* N before clipping (NaN/Inf when skipped) */
    double clip_coef; /* factor the gradients were scaled by (1 when not clipped) */
    bool skipped;     /* N was not finite: nothing changed */
} optim_step_info;

/* The defaults above: betas (0.9, 0.95), eps 1e-8, weight decay 0.1, clipping at 1.0. */
optim_config optim_config_default(void);
pt_status optim_config_validate(const optim_config *cfg, pt_error *err);
/* "fp32" or "bf16" (the adam_moments key); anything else is PT_ERR_CONFIG naming both. */
pt_status optim_moments_parse(optim_moments *out, const char *name, pt_error *err);
const char *optim_moments_name(optim_moments m);

/* Zeroed moments and step 0 for this layout. On failure *opt is left empty. */
pt_status optim_init(optim *opt, const model_layout *layout, const optim_config *cfg, pt_error *err);
void optim_free(optim *opt);

/* One update (see the file comment). params are updated in place (=); grads are read and, when
 * clipping applies, scaled in place (=). lr must be finite and ≥ 0. A skipped step returns PT_OK
 * with info->skipped set; an error is returned only for a bad argument. info may be NULL. */
pt_status optim_step(optim_step_info *info, optim *opt, float *params, float *grads, double lr, pt_error *err);

/* Counts consecutive skipped steps; the trainer aborts once `limit` happen in a row. */
typedef struct nan_guard {
    int limit;       /* K ≥ 1 */
    int consecutive; /* skipped steps in a row so far */
    int64_t total;   /* skipped steps over the whole run */
} nan_guard;

void nan_guard_init(nan_guard *g, int limit);
/* Records one step: a finite one resets the run, a skipped one extends it. Returns
 * PT_ERR_NUMERIC (naming the count and the last norm) when the run reaches the limit. */
pt_status nan_guard_record(nan_guard *g, const optim_step_info *info, pt_error *err);

#endif
