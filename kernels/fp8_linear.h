/* fp8_linear.h — the FP8 linear layer of DeepSeek-V3's training recipe (V3 report §3.3, fig. 6),
 * emulated exactly on the CPU: every GEMM input is E4M3 with its tile scales and the products
 * accumulate in fp32, 128 inner-dimension elements (one K group) at a time.
 *
 * Shapes: N rows (tokens), C input channels, OC output channels; inp (N, C), weight (OC, C)
 * (HF layout), out/dout (N, OC). No bias (DeepSeek's linears have none).
 *   Fprop  out  = Q(inp; 1×128 along C) · Q(weight; 128×128)ᵀ             K = C
 *   Dgrad  dinp += Q(dout; 1×128 along OC) · Q(weight; 128×128)            K = OC
 *   Wgrad  dW   += Q(dout; 128×1 along N)ᵀ · R(Q(inp; 1×128))               K = N
 * where Q is quantise-then-dequantise with the tile of kernels/fp8.h and R is the re-tiling of the
 * forward's 1×128 activation tiles into 128×1 tiles (dequantise, quantise again along N).
 * Emulation: the operands are dequantised to fp32 (decode(code)·scale) and multiplied with fp32
 * sgemm, one K group of 128 at a time, each group's partial product added into the fp32 result in
 * group order — the promotion to fp32 every 128 elements that Hopper kernels perform. Master
 * weights, activations and gradients outside the GEMMs stay fp32.
 *
 * The workspace holds fp8_linear_ws_floats(N, C, OC) floats; forward and backward may share it.
 */
#ifndef POSTTRAIN_KERNELS_FP8_LINEAR_H
#define POSTTRAIN_KERNELS_FP8_LINEAR_H

#include <stddef.h>

#include "kernels/fp8.h"

size_t fp8_linear_ws_floats(int N, int C, int OC);

/* out (N, OC) (=) the Fprop above. out must not alias inp, weight or ws. */
void fp8_linear_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                        const fp8_scaling *s, float *ws);

/* Dgrad and Wgrad above, ACCUMULATED (+=) into dinp (N, C) and dweight (OC, C); either may be NULL
 * to skip it. */
void fp8_linear_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                         int N, int C, int OC, const fp8_scaling *s, float *ws);

#endif
