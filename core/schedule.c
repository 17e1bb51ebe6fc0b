/* schedule.c — learning-rate schedules; see schedule.h for the formulas. The expressions keep
 * transformers' operation order (float(s) / float(max(1, W)), 0.5 * (1.0 + cos(...)),
 * f * (1 - r) + r) so that the doubles come out identical.
 */
#include "core/schedule.h"

#include <math.h>
#include <string.h>

pt_status lr_schedule_validate(const lr_schedule *s, pt_error *err) {
    if (s->type != LR_SCHEDULE_CONSTANT && s->type != LR_SCHEDULE_LINEAR && s->type != LR_SCHEDULE_COSINE)
        PT_FAIL(err, PT_ERR_CONFIG, "lr schedule: unknown type %d (expected constant, linear or cosine)", (int)s->type);
    if (!(isfinite(s->base_lr) && s->base_lr > 0.0))
        PT_FAIL(err, PT_ERR_CONFIG, "learning_rate must be a finite number > 0, got %g", s->base_lr);
    if (s->warmup_steps < 0)
        PT_FAIL(err, PT_ERR_CONFIG, "warmup_steps must be >= 0, got %lld", (long long)s->warmup_steps);
    if (!(s->min_lr_ratio >= 0.0 && s->min_lr_ratio <= 1.0))
        PT_FAIL(err, PT_ERR_CONFIG, "min_lr_ratio must be in [0, 1], got %g", s->min_lr_ratio);
    if (s->type != LR_SCHEDULE_CONSTANT && s->total_steps < s->warmup_steps)
        PT_FAIL(err, PT_ERR_CONFIG,
                "total steps (%lld) must be >= warmup_steps (%lld) for a decaying schedule; lower warmup_steps or "
                "train longer",
                (long long)s->total_steps, (long long)s->warmup_steps);
    return PT_OK;
}

pt_status lr_schedule_parse_type(lr_schedule_type *type, const char *name, pt_error *err) {
    static const struct {
        const char *name;
        lr_schedule_type type;
    } names[] = {{"constant", LR_SCHEDULE_CONSTANT}, {"linear", LR_SCHEDULE_LINEAR}, {"cosine", LR_SCHEDULE_COSINE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && strcmp(name, names[i].name) == 0) {
            *type = names[i].type;
            return PT_OK;
        }
    PT_FAIL(err, PT_ERR_CONFIG, "lr_scheduler_type '%s' is not known; use one of constant, linear, cosine",
            name ? name : "(null)");
}

static double max1(int64_t x) { return (double)(x > 1 ? x : 1); }

double lr_at(const lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    const int64_t W = s->warmup_steps, S = s->total_steps;
    const double r = s->min_lr_ratio;
    double lambda;
    if (step < W) {
        lambda = (double)step / max1(W);
    } else if (s->type == LR_SCHEDULE_CONSTANT) {
        lambda = 1.0;
    } else if (s->type == LR_SCHEDULE_LINEAR) {
        double f = (double)(S - step) / max1(S - W);
        if (f < 0.0) f = 0.0;
        lambda = f * (1.0 - r) + r;
    } else {
        double progress = (double)(step - W) / max1(S - W);
        if (progress > 1.0) progress = 1.0;
        double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
        f = f * (1.0 - r) + r;
        lambda = f > 0.0 ? f : 0.0;
    }
    return s->base_lr * lambda;
}
