/* rmsnorm.h — RMSNorm (DeepseekV3RMSNorm): y = x / sqrt(mean(x²) + eps) · w.
 *
 * Shapes: N rows, C channels. inp/out rows may be slices of wider rows (the *_strided variants:
 * MLA normalises the first kv_lora channels of a [kv_lora + rope] row). rstd (N) is saved for
 * the backward. See rmsnorm.c for the math.
 */
#ifndef POSTTRAIN_KERNELS_RMSNORM_H
#define POSTTRAIN_KERNELS_RMSNORM_H

/* out (N, C) (=), rstd (N) (=) from inp (N, C), weight (C); dense rows. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps, int N, int C);

/* dinp (N, C) (+=) and dweight (C) (+=); either may be NULL. rstd is the forward's. */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C);

/* Strided rows: row i of out starts at out + i·out_stride, of inp at inp + i·inp_stride
 * (strides in floats, each ≥ C). Same semantics as above. out must not partially overlap inp
 * (out == inp with equal strides, i.e. in place, is allowed). */
void rmsnorm_forward_strided(float *out, float *rstd, const float *inp, const float *weight, float eps, int N,
                             int C, int out_stride, int inp_stride);

/* Strided backward: row i of dinp, dout and inp starts at i·dinp_stride, i·dout_stride and
 * i·inp_stride. dinp (+=), dweight (+=); either may be NULL. */
void rmsnorm_backward_strided(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C, int dinp_stride,
                              int dout_stride, int inp_stride);

#endif
