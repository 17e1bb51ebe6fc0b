/* sft_step.c — see sft_step.h. Sums are in double; the per-token gradient −1/count is the one
 * float every target position gets, so the backward sees exactly d L / d logp. */
#include "sft/sft_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pt_status sft_accumulate(sft_micro_stats *s, int *load_sum, float *dlogp, policy_model *m, model_acts *a,
                         const data_batch *mb, int n, float aux_scale, pt_error *err) {
    memset(s, 0, sizeof *s);
    PT_CHECK(n >= 1, err, PT_ERR_INVALID, "a step needs at least one micro-batch, got %d", n);
    const size_t N = (size_t)a->B * (size_t)a->T;
    const size_t loads = (size_t)m->layout.nlayers * (size_t)m->cfg.n_routed_experts;
    long total = 0;
    for (int k = 0; k < n; k++) {
        PT_CHECK(mb[k].B == a->B && mb[k].T == a->T, err, PT_ERR_INVALID,
                 "micro-batch %d is (%d, %d) but the activations are (%d, %d)", k, mb[k].B, mb[k].T, a->B, a->T);
        total += mb[k].n_targets;
    }
    /* every target position of every micro-batch weighs 1/total */
    const float g = total > 0 ? -1.0f / (float)total : 0.0f;
    memset(load_sum, 0, loads * sizeof *load_sum);
    for (int k = 0; k < n; k++) {
        model_batch b;
        data_batch_model(&b, &mb[k]);
        PT_TRY(model_forward(m, a, &b, err));
        long count = 0;
        for (size_t i = 0; i < N; i++) {
            if (mb[k].targets[i] >= 0) {
                s->nll_sum -= a->logp[i];
                count++;
                dlogp[i] = g;
            } else {
                dlogp[i] = 0.0f;
            }
            s->tokens += mb[k].segment[i] >= 0;
        }
        PT_CHECK(count == mb[k].n_targets, err, PT_ERR_INTERNAL,
                 "micro-batch %d counts %ld targets but holds %ld", k, mb[k].n_targets, count);
        s->loss_tokens += count;
        s->mtp_loss += a->mtp_loss / n;
        s->balance_loss += a->balance_loss / n;
        for (size_t i = 0; i < loads; i++) load_sum[i] += a->expert_load[i];
        model_backward(m, a, dlogp, NULL, aux_scale / (float)n);
    }
    s->positions = (long)(N * (size_t)n);
    return PT_OK;
}

pt_status sft_eval_loss(double *loss, long *tokens, policy_model *m, model_acts *a, dataset *ds,
                        dataset_packing packing, pt_error *err) {
    *loss = NAN;
    *tokens = 0;
    data_loader_options lo = {.B = a->B, .T = a->T, .packing = packing, .shuffle = false, .seed = 0,
                              .drop_last = false, .max_epochs = 1, .pad_id = -1};
    data_loader dl;
    data_batch b = {0};
    PT_TRY(data_loader_init(&dl, ds, &lo, NULL, err));
    pt_status st = data_batch_init(&b, a->B, a->T, err);
    double nll = 0.0;
    long count = 0;
    const size_t N = (size_t)a->B * (size_t)a->T;
    while (st == PT_OK) {
        bool done = false;
        st = data_loader_next(&b, &done, &dl, err);
        if (st != PT_OK || done) break;
        model_batch mb;
        data_batch_model(&mb, &b);
        st = model_forward(m, a, &mb, err);
        for (size_t i = 0; st == PT_OK && i < N; i++)
            if (b.targets[i] >= 0) {
                nll -= a->logp[i];
                count++;
            }
    }
    data_batch_free(&b);
    data_loader_free(&dl);
    if (st != PT_OK) return error_prefix(err, "evaluating on %s", dataset_label(ds));
    *tokens = count;
    if (count > 0) *loss = nll / (double)count;
    return PT_OK;
}
