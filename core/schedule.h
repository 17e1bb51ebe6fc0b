/* schedule.h — learning-rate schedules: linear warm-up, then cosine decay, linear decay or a
 * constant rate.
 *
 * lr(s) = base_lr · λ(s) for optimizer step s = 0, 1, 2, ... (the number of optimizer steps
 * already taken: the trainer calls lr_at(sched, opt.step) before each update), exactly as
 * torch's LambdaLR with transformers' schedule functions:
 *   warm-up   s < W:  λ = s / max(1, W)              (so the very first update uses lr 0 when W > 0)
 *   cosine:           p = (s − W) / max(1, S − W),   f = 0.5·(1 + cos(π·p)),
 *                     λ = max(0, f·(1 − r) + r)      (get_cosine_schedule_with_warmup for r = 0,
 *                                                     get_cosine_with_min_lr_schedule_with_warmup
 *                                                     with min_lr_rate = r otherwise)
 *   linear:           f = max(0, (S − s) / max(1, S − W)),  λ = f·(1 − r) + r
 *                                                    (get_linear_schedule_with_warmup for r = 0)
 *   constant:         λ = 1                          (get_constant_schedule_with_warmup)
 * with W = warmup_steps, S = total_steps, r = min_lr_ratio. Arithmetic is in double in the same
 * order as the Python, so for r = 0 the values equal transformers' to the last bit (the cosine
 * up to the libm's cos). One deliberate difference: past S the cosine holds at its minimum
 * (p is capped at 1), where transformers' formula would climb back up — a trainer stepping past
 * its planned end should not see its learning rate grow again.
 */
#ifndef POSTTRAIN_CORE_SCHEDULE_H
#define POSTTRAIN_CORE_SCHEDULE_H

#include <stdint.h>

#include "core/error.h"

typedef enum lr_schedule_type {
    LR_SCHEDULE_CONSTANT, /* warm-up, then base_lr */
    LR_SCHEDULE_LINEAR,   /* warm-up, then linear decay to min_lr_ratio·base_lr at total_steps */
    LR_SCHEDULE_COSINE,   /* warm-up, then half-cosine decay to min_lr_ratio·base_lr */
} lr_schedule_type;

typedef struct lr_schedule {
    lr_schedule_type type;
    double base_lr;       /* peak learning rate (> 0, finite) */
    int64_t warmup_steps; /* W ≥ 0 */
    int64_t total_steps;  /* S ≥ W for linear and cosine (unused by constant) */
    double min_lr_ratio;  /* r in [0, 1]: the floor as a fraction of base_lr */
} lr_schedule;

/* Checks the fields (messages name the field and the accepted range). */
pt_status lr_schedule_validate(const lr_schedule *s, pt_error *err);

/* "constant", "linear", "cosine" → the type; anything else is PT_ERR_CONFIG naming the choices. */
pt_status lr_schedule_parse_type(lr_schedule_type *type, const char *name, pt_error *err);

/* The learning rate for optimizer step `step` (≥ 0; negative steps count as 0). */
double lr_at(const lr_schedule *s, int64_t step);

#endif
