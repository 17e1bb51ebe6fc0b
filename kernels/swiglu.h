/* swiglu.h — the SwiGLU gate of the DeepSeek-V3 MLP and experts: out = silu(gate) ⊙ up.
 * Elementwise over n values (n = N·I for N rows of I intermediate channels). See swiglu.c. */
#ifndef POSTTRAIN_KERNELS_SWIGLU_H
#define POSTTRAIN_KERNELS_SWIGLU_H

#include <stddef.h>

/* out (n) (=) = silu(gate)·up, silu(g) = g·σ(g). out may alias gate or up. */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);

/* dgate (n) (+=) and dup (n) (+=); either may be NULL. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

#endif
