/* test_model_grad.c — the whole policy's backward against central finite differences.
 *
 * transformers has no MTP modules and no sequence-wise balance loss, so those parts (and the
 * temperature / entropy paths GRPO uses) are checked here against finite differences of the
 * model's own forward, on a tiny config with q_lora, YaRN, a dense and a MoE layer, grouped
 * routing and one MTP module. The objective is
 *     J = Σ_i a_i·logp_i + b_i·entropy_i + mtp_loss + balance_loss
 * with random a, b. Tolerance: the forward runs in fp32, J ~ 10, so rounding in J is ~1e-5,
 * ~2e-3 in a difference quotient with step h = 3e-3; the truncation error h²·J'''/6 stays below
 * ~2e-3 on this model (measured: with h = 1e-2 a few strongly curved elements were off by 5e-3
 * to 2e-2 and converged to the analytic value as h shrank). atol 4e-3 + rtol 2e-2 passes a
 * correct backward; a dropped term moves the affected gradients by O(1) relative.
 */
#include <criterion/criterion.h>

#include "tests/util/tiny_model.h"

Test(model_grad, all_experts_routing_matches_finite_differences) { tiny_model_check_gradients(0, 6); }
Test(model_grad, grouped_topk_routing_matches_finite_differences) { tiny_model_check_gradients(1, 6); }
