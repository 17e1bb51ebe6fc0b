/* precision.c — see precision.h. The FP8 recipe's scales are max(amax, 1e-4)/448 in fp32 (not
 * rounded to powers of two), as DeepSeek-V3's training kernels compute them. */
#include "model/precision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp8_linear.h"
#include "kernels/linear.h"

static const fp8_scaling RECIPE = {FP8_DEFAULT_EPS, 0};

pt_status model_precision_parse(model_precision *p, const char *name, pt_error *err) {
    if (name && strcmp(name, "fp32") == 0) *p = MODEL_PRECISION_FP32;
    else if (name && strcmp(name, "fp8") == 0) *p = MODEL_PRECISION_FP8;
    else PT_FAIL(err, PT_ERR_CONFIG, "precision must be fp32 or fp8, got '%s'", name ? name : "null");
    return PT_OK;
}

const char *model_precision_name(model_precision p) { return p == MODEL_PRECISION_FP8 ? "fp8" : "fp32"; }

static void fill_nan(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

void precision_linear_forward(model_precision p, float *out, const float *inp, const float *weight, int N, int C,
                              int OC) {
    if (p != MODEL_PRECISION_FP8) {
        linear_forward(out, inp, weight, NULL, N, C, OC);
        return;
    }
    size_t n = fp8_linear_ws_floats(N, C, OC);
    float *ws = n ? malloc(n * sizeof *ws) : NULL;
    if (n && !ws) {
        fill_nan(out, (size_t)N * OC);
        return;
    }
    fp8_linear_forward(out, inp, weight, N, C, OC, &RECIPE, ws);
    free(ws);
}

void precision_linear_backward(model_precision p, float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, int N, int C, int OC) {
    if (p != MODEL_PRECISION_FP8) {
        linear_backward(dinp, dweight, NULL, dout, inp, weight, N, C, OC);
        return;
    }
    size_t n = fp8_linear_ws_floats(N, C, OC);
    float *ws = n ? malloc(n * sizeof *ws) : NULL;
    if (n && !ws) {
        if (dinp) fill_nan(dinp, (size_t)N * C);
        if (dweight) fill_nan(dweight, (size_t)OC * C);
        return;
    }
    fp8_linear_backward(dinp, dweight, dout, inp, weight, N, C, OC, &RECIPE, ws);
    free(ws);
}
