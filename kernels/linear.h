/* linear.h — fully connected layer y = x·Wᵀ + b (torch.nn.Linear, HF [out, in] weight layout).
 *
 * Shapes: N rows (= B·T tokens), C input channels, OC output channels.
 *   inp (N, C), weight (OC, C), bias (OC) or NULL, out (N, OC).
 * The GEMMs go through OpenBLAS cblas_sgemm (fp32 in, fp32 accumulate). See linear.c.
 */
#ifndef POSTTRAIN_KERNELS_LINEAR_H
#define POSTTRAIN_KERNELS_LINEAR_H

/* out (=) = inp·weightᵀ + bias; bias may be NULL. out must not alias inp or weight. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC);

/* Gradients of out = inp·weightᵀ + bias, all ACCUMULATED (+=):
 *   dinp (N, C)     += dout·weight
 *   dweight (OC, C) += doutᵀ·inp
 *   dbias (OC)      += Σ_rows dout
 * Any of dinp, dweight, dbias may be NULL to skip it. */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

#endif
