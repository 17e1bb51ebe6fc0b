/* sft_trainer.c — the SFT step loop (see sft_trainer.h): batches, loss and gradient, NaN guard,
 * AdamW, router-bias update, step metrics. The run around it is sft_run.c. */
#include "sft/sft_trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Batches of one epoch in the order `perm`, packed as datasets/loader.c packs them: whole
 * examples, none = B per batch, greedy = fill row r until the next example does not fit, then
 * r + 1, first_fit = the first row with room; a batch ends at the first example that fits
 * nowhere. */
static int64_t epoch_batches(const sft_options *o, const dataset *ds, const size_t *perm, size_t n, int *used) {
    const int B = o->loader.B, T = o->loader.T;
    if (o->loader.packing == DATASET_PACK_NONE) return (int64_t)((n + (size_t)B - 1) / (size_t)B);
    int64_t batches = 0;
    size_t i = 0;
    while (i < n) {
        memset(used, 0, (size_t)B * sizeof *used);
        int row = 0, placed = 0;
        for (; i < n; i++) {
            size_t len = dataset_tokens(ds, perm[i]);
            int r = -1;
            if (o->loader.packing == DATASET_PACK_GREEDY) {
                while (row < B && (size_t)used[row] + len > (size_t)T) row++;
                r = row < B ? row : -1;
            } else {
                for (int k = 0; k < B && r < 0; k++)
                    if ((size_t)used[k] + len <= (size_t)T) r = k;
            }
            if (r < 0) break;
            used[r] += (int)len;
            placed++;
        }
        if (!placed) i++; /* cannot happen (examples fit a row); never loop forever */
        batches++;
    }
    return batches;
}

int64_t sft_plan_steps(const sft_options *o, const dataset *ds) {
    if (o->max_steps > 0) return o->max_steps;
    const size_t n = dataset_size(ds);
    const double epochs = o->num_train_epochs;
    const int64_t full = (int64_t)floor(epochs);
    const double frac = epochs - (double)full;
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    int *used = malloc((size_t)o->loader.B * sizeof *used);
    double batches = 0;
    pt_error ignored = {0};
    for (int64_t e = 0; e <= full && perm && used; e++) {
        double share = e < full ? 1.0 : frac;
        if (share <= 0) break;
        if (dataset_order(perm, n, o->loader.seed, (uint64_t)e, o->loader.shuffle, &ignored) != PT_OK) break;
        batches += share * (double)epoch_batches(o, ds, perm, n, used);
    }
    free(perm);
    free(used);
    if (batches <= 0) batches = epochs * (double)((n + (size_t)o->loader.B - 1) / (size_t)o->loader.B);
    int64_t steps = (int64_t)ceil(ceil(batches - 1e-9) / (double)o->grad_accum);
    return steps > 0 ? steps : 1;
}

void sft_trainer_free(sft_trainer *t) {
    if (!t) return;
    if (t->micro)
        for (int k = 0; k < t->opt->grad_accum; k++) data_batch_free(&t->micro[k]);
    free(t->micro);
    free(t->dlogp);
    free(t->load_sum);
    model_acts_free(&t->acts);
    data_loader_free(&t->loader);
    memset(t, 0, sizeof *t);
}

pt_status sft_trainer_init(sft_trainer *t, const sft_options *o, policy_model *m, optim *opt, const lr_schedule *sched,
                           dataset *ds, const dataset_cursor *cursor, int64_t step, pt_error *err) {
    memset(t, 0, sizeof *t);
    t->opt = o;
    t->m = m;
    t->optim = opt;
    t->sched = *sched;
    t->step = step;
    t->gamma = (float)m->cfg.posttrain_bias_update_speed;
    m->precision = o->precision;
    nan_guard_init(&t->guard, o->max_nan_steps);
    PT_CHECK(opt->total == m->layout.total, err, PT_ERR_INVALID,
             "optimizer state has %zu floats per moment, the model %zu", opt->total, m->layout.total);
    PT_TRY(lr_schedule_validate(&t->sched, err));
    PT_TRY(data_loader_init(&t->loader, ds, &o->loader, cursor, err));
    const int B = o->loader.B, T = o->loader.T;
    const size_t N = (size_t)B * (size_t)T;
    const size_t loads = (size_t)m->layout.nlayers * (size_t)m->cfg.n_routed_experts;
    pt_status st = model_acts_init(&t->acts, m, B, T, err);
    if (st == PT_OK) {
        t->micro = calloc((size_t)o->grad_accum, sizeof *t->micro);
        t->dlogp = malloc(N * sizeof *t->dlogp);
        t->load_sum = calloc(loads ? loads : 1, sizeof *t->load_sum);
        if (!t->micro || !t->dlogp || !t->load_sum)
            st = error_set(err, PT_ERR_NOMEM, __FILE__, __LINE__, "out of memory for %d micro-batches of (%d, %d)",
                           o->grad_accum, B, T);
    }
    for (int k = 0; st == PT_OK && k < o->grad_accum; k++) st = data_batch_init(&t->micro[k], B, T, err);
    if (st != PT_OK) sft_trainer_free(t);
    return st;
}

/* Epochs done: the cursor's epoch plus the share of the current one handed out. */
static double epochs_done(const data_loader *dl) {
    dataset_cursor c = data_loader_cursor(dl);
    double n = (double)(c.n_examples ? c.n_examples : 1);
    return (double)c.epoch + (double)c.position / n;
}

static void expert_stats(sft_step_stats *s, const sft_trainer *t) {
    model_acts view = t->acts; /* the step's summed loads in place of the last forward's */
    view.expert_load = t->load_sum;
    double worst = 0, cv = 0;
    int moe = 0;
    for (int l = 0; l < t->m->layout.nlayers; l++) {
        expert_load_stats e;
        if (model_expert_load(t->m, &view, l, &e) != 0) continue;
        if (e.max_over_mean > worst) worst = e.max_over_mean;
        cv += e.cv;
        moe++;
    }
    s->expert_max_over_mean = moe ? worst : NAN;
    s->expert_cv = moe ? cv / moe : NAN;
}

pt_status sft_trainer_step(sft_step_stats *s, sft_trainer *t, const sft_hooks *hooks, pt_error *err) {
    memset(s, 0, sizeof *s);
    const double t0 = now_seconds();
    const int n = t->opt->grad_accum;
    for (int k = 0; k < n; k++) {
        bool done = false;
        PT_TRY(data_loader_next(&t->micro[k], &done, &t->loader, err));
        PT_CHECK(!done, err, PT_ERR_INTERNAL, "the training loader ran out (it is endless)");
    }
    model_zero_grads(t->m);
    sft_micro_stats ms;
    PT_TRY(sft_accumulate(&ms, t->load_sum, t->dlogp, t->m, &t->acts, t->micro, n, (float)t->opt->aux_loss_scale, err));
    if (hooks && hooks->after_backward) hooks->after_backward(hooks->ctx, t->step + 1, t->m);

    s->step = t->step + 1;
    s->loss = ms.loss_tokens > 0 ? ms.nll_sum / (double)ms.loss_tokens : NAN;
    s->mtp_loss = ms.mtp_loss;
    s->balance_loss = ms.balance_loss;
    s->loss_tokens = ms.loss_tokens;
    s->tokens = ms.tokens;
    s->positions = ms.positions;
    s->lr = lr_at(&t->sched, t->optim->step);
    optim_step_info info = {.grad_norm = NAN, .clip_coef = 1.0, .skipped = true};
    bool finite = isfinite(ms.nll_sum) && isfinite(ms.mtp_loss) && isfinite(ms.balance_loss);
    if (finite) PT_TRY(optim_step(&info, t->optim, t->m->params, t->m->grads, s->lr, err));
    s->grad_norm = info.grad_norm;
    s->clip_coef = info.clip_coef;
    s->skipped = info.skipped;
    if (!info.skipped) {
        model_acts view = t->acts;
        view.expert_load = t->load_sum;
        model_update_router_bias(t->m, &view, t->gamma);
    }
    expert_stats(s, t);
    t->step++;
    s->epoch = epochs_done(&t->loader);
    s->seconds = now_seconds() - t0;
    pt_status st = nan_guard_record(&t->guard, &info, err);
    if (st != PT_OK && !finite)
        error_prefix(err, "step %lld: loss %g, mtp_loss %g, balance_loss %g", (long long)s->step, s->loss, s->mtp_loss,
                     s->balance_loss);
    return st;
}
