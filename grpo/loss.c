/* loss.c — GRPO-family losses and dL/dlogp; the math and TRL correspondence are in loss.h.
 *
 * Everything is accumulated in double: the loss is a sum of up to B·T terms whose relative
 * rounding in fp32 would exceed the golden test's 1e-6 tolerance, and double costs nothing next
 * to the model's forward. Invariant: dlogp is written (=) at every one of the N positions.
 */
#include "grpo/loss.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

const char *grpo_loss_type_name(grpo_loss_type t) {
    switch (t) {
    case GRPO_LOSS_GRPO: return "grpo";
    case GRPO_LOSS_BNPO: return "bnpo";
    case GRPO_LOSS_DAPO: return "dapo";
    case GRPO_LOSS_DR_GRPO: return "dr_grpo";
    }
    return "?";
}

const char *grpo_is_level_name(grpo_is_level l) { return l == GRPO_IS_SEQUENCE ? "sequence" : "token"; }

pt_status grpo_loss_type_parse(grpo_loss_type *out, const char *s, pt_error *err) {
    static const grpo_loss_type all[] = {GRPO_LOSS_GRPO, GRPO_LOSS_BNPO, GRPO_LOSS_DAPO, GRPO_LOSS_DR_GRPO};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (s && strcmp(s, grpo_loss_type_name(all[i])) == 0) {
            *out = all[i];
            return PT_OK;
        }
    PT_FAIL(err, PT_ERR_CONFIG, "loss_type '%s' is not known: use grpo, bnpo, dapo or dr_grpo", s ? s : "(null)");
}

pt_status grpo_is_level_parse(grpo_is_level *out, const char *s, pt_error *err) {
    if (s && strcmp(s, "token") == 0) *out = GRPO_IS_TOKEN;
    else if (s && strcmp(s, "sequence") == 0) *out = GRPO_IS_SEQUENCE;
    else PT_FAIL(err, PT_ERR_CONFIG, "importance_sampling_level '%s' is not known: use token or sequence", s ? s : "(null)");
    return PT_OK;
}

/* −min(ρA, clip(ρ)A) and its derivative with respect to log ρ. */
static double clipped_objective(double *dlogw, double rho, double adv, double lo, double hi) {
    double clipped = rho < lo ? lo : (rho > hi ? hi : rho);
    double a = rho * adv, b = clipped * adv;
    if (b < a) { /* the clipped branch is the minimum: constant in ρ */
        *dlogw = 0.0;
        return -b;
    }
    *dlogw = -rho * adv;
    return -a;
}

pt_status grpo_loss(double *loss, float *dlogp, grpo_loss_stats *stats, const float *logp, const float *old_logp,
                    const float *ref_logp, const float *advantages, const uint8_t *mask, const int *seq_start, int S,
                    const grpo_loss_config *cfg, pt_error *err) {
    PT_CHECK(loss && logp && old_logp && advantages && seq_start && cfg && S >= 0, err, PT_ERR_INVALID,
             "grpo_loss: missing argument");
    PT_CHECK(seq_start[0] == 0, err, PT_ERR_INVALID, "grpo_loss: seq_start[0] must be 0");
    for (int i = 0; i < S; i++)
        PT_CHECK(seq_start[i + 1] >= seq_start[i], err, PT_ERR_INVALID,
                 "grpo_loss: seq_start must be non-decreasing (sequence %d)", i);
    PT_CHECK(cfg->beta == 0.0 || ref_logp, err, PT_ERR_INVALID, "grpo_loss: beta = %g needs reference log-probs",
             cfg->beta);
    PT_CHECK(cfg->loss_type != GRPO_LOSS_DR_GRPO || cfg->max_completion_length > 0, err, PT_ERR_INVALID,
             "grpo_loss: dr_grpo needs max_completion_length > 0");
    const size_t N = (size_t)seq_start[S];
    const double lo = 1.0 - cfg->epsilon_low, hi = 1.0 + cfg->epsilon_high;

    double total_tokens = 0.0;
    for (size_t t = 0; t < N; t++) total_tokens += mask ? (double)(mask[t] != 0) : 1.0;
    double token_norm = 1.0; /* the per-token coefficient for the batch-wide normalisers */
    switch (cfg->loss_type) {
    case GRPO_LOSS_BNPO: token_norm = 1.0 / fmax(1.0, total_tokens); break;
    case GRPO_LOSS_DAPO: token_norm = 1.0 / fmax(1.0, cfg->num_items > 0 ? cfg->num_items : total_tokens); break;
    case GRPO_LOSS_DR_GRPO: token_norm = 1.0 / ((double)S * (double)cfg->max_completion_length); break;
    case GRPO_LOSS_GRPO: break;
    }

    grpo_loss_stats st;
    memset(&st, 0, sizeof st);
    st.tokens = total_tokens;
    double L = 0.0;
    for (int i = 0; i < S; i++) {
        const size_t t0 = (size_t)seq_start[i], t1 = (size_t)seq_start[i + 1];
        const double adv = advantages[i];
        double n = 0.0, sum_log_ratio = 0.0;
        for (size_t t = t0; t < t1; t++)
            if (!mask || mask[t]) {
                n += 1.0;
                sum_log_ratio += (double)logp[t] - (double)old_logp[t];
            }
        const double n_clamped = fmax(1.0, n);
        const double c = cfg->loss_type == GRPO_LOSS_GRPO ? 1.0 / ((double)S * n_clamped) : token_norm;
        /* sequence level: one ratio for the whole completion */
        double seq_dlogw = 0.0, seq_obj = 0.0, seq_rho = 0.0;
        if (cfg->is_level == GRPO_IS_SEQUENCE) {
            seq_rho = exp(sum_log_ratio / n_clamped);
            seq_obj = clipped_objective(&seq_dlogw, seq_rho, adv, lo, hi);
            st.clip_count += 1.0;
            st.clip_low_sum += seq_rho < lo && adv < 0;
            st.clip_high_sum += seq_rho > hi && adv > 0;
            st.clip_region_sum += (seq_rho < lo && adv < 0) || (seq_rho > hi && adv > 0);
        }
        for (size_t t = t0; t < t1; t++) {
            const int on = !mask || mask[t];
            double g = 0.0;
            if (on) {
                double obj, dlogw;
                if (cfg->is_level == GRPO_IS_TOKEN) {
                    double rho = exp((double)logp[t] - (double)old_logp[t]);
                    obj = clipped_objective(&dlogw, rho, adv, lo, hi);
                    g = dlogw;
                    st.clip_count += 1.0;
                    st.clip_low_sum += rho < lo && adv < 0;
                    st.clip_high_sum += rho > hi && adv > 0;
                    st.clip_region_sum += (rho < lo && adv < 0) || (rho > hi && adv > 0);
                } else {
                    obj = seq_obj;
                    /* the n masked tokens each add c·obj, and log w moves by 1/n per logp_t: the
                     * factors cancel (n ≥ 1 here), leaving c·dobj/dlogw after the scaling below */
                    g = seq_dlogw;
                }
                if (ref_logp) {
                    double d = (double)ref_logp[t] - (double)logp[t];
                    double kl = exp(d) - d - 1.0;
                    st.kl_sum += kl;
                    if (cfg->beta != 0.0) {
                        obj += cfg->beta * kl;
                        g += cfg->beta * (1.0 - exp(d));
                    }
                }
                L += c * obj;
                g *= c;
            }
            if (dlogp) dlogp[t] = (float)g;
        }
    }
    st.loss = L;
    *loss = L;
    if (stats) *stats = st;
    PT_CHECK(isfinite(L), err, PT_ERR_NUMERIC, "grpo_loss: the loss is not finite (%g): check the log-probs", L);
    return PT_OK;
}
