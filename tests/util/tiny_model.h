/* tiny_model.h — the tiny DeepSeek-V3 configuration and objective that the finite-difference
 * tests share: q_lora, YaRN, one dense and one MoE layer (8 experts in 4 groups), one MTP module
 * and a large balance-loss weight so that every term's gradient is visible. */
#ifndef POSTTRAIN_TESTS_TINY_MODEL_H
#define POSTTRAIN_TESTS_TINY_MODEL_H

#include "model/model.h"

typedef struct tiny_model_ctx {
    policy_model *m;
    model_acts *a;
    model_batch *b;
    const float *wa, *wb; /* (N) weights of logp and entropy in the objective */
} tiny_model_ctx;

void tiny_model_config(model_config *c);
/* J = Σ wa·logp + wb·entropy + mtp_loss + balance_loss after a fresh forward (ctx is a
 * tiny_model_ctx; the signature fits fd_check). */
double tiny_model_objective(void *ctx);
/* Checks every trainable tensor's gradient against central differences, on up to max_checks
 * elements per tensor (0: all). routing 0: all experts chosen; 1: grouped top-2 with biases far
 * apart (see tiny_model.c). Fails the calling Criterion test on a mismatch. */
void tiny_model_check_gradients(int routing, long max_checks);

#endif
