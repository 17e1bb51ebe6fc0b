/* test_model_fd_full.c — `make test-long`: the tiny policy's gradient against central finite
 * differences for EVERY element of every trainable tensor (the unit suite samples six per
 * tensor), under both routing set-ups of tests/util/tiny_model.c. */
#include <criterion/criterion.h>

#include "tests/util/tiny_model.h"

Test(model_grad_full, all_experts_every_element, .timeout = 900) { tiny_model_check_gradients(0, 0); }
Test(model_grad_full, grouped_topk_every_element, .timeout = 900) { tiny_model_check_gradients(1, 0); }
