/* fp8.h — the two FP8 formats of DeepSeek-V3's training recipe and their tile-wise scaling.
 *
 * Formats (OCP 8-bit floating point):
 *   E4M3 ("FN")  bias 7, largest finite 448, smallest normal 2⁻⁶, smallest subnormal 2⁻⁹, no
 *                infinities, one NaN pattern per sign (S.1111.111).
 *   E5M2         bias 15, largest finite 57344, smallest subnormal 2⁻¹⁶, ±inf (S.11111.00),
 *                NaN S.11111.{01,10,11}.
 * Encoding fp32 → FP8 rounds the exact fp32 value once, to nearest with ties to even, subnormals
 * included; fp32 subnormals are far below half the smallest FP8 subnormal and give ±0. Overflow
 * (a value that rounds above the largest finite code) and ±inf depend on the mode:
 *   FP8_SATFINITE  clamp to ±max (PTX `cvt.rn.satfinite`), NaN stays NaN;
 *   FP8_OVERFLOW   what torch's `.to(torch.float8_e4m3fn / float8_e5m2)` does: E4M3 gives NaN
 *                  (it has no inf), E5M2 gives ±inf.
 * NaN always encodes as 0x7F with the input's sign. Decoding is exact for every code.
 *
 * Scaling (V3 report §3.3.2): a tensor (R, C) is cut into tiles of tile_r × tile_c; each tile gets
 * one fp32 scale s = max(amax, eps) / 448 from its largest |x| (online: computed from the data being
 * quantised), optionally rounded UP to a power of two (so the scale is exact and amax/s ≤ 448 still
 * holds); codes are e4m3_satfinite(x / s) and the value they stand for is decode(code)·s. The
 * recipe's tiles are
 *   1 × 128   activations and output gradients, along the inner (GEMM K) dimension;
 *   128 × 1   the same tensors for the weight-gradient GEMM, whose inner dimension is the tokens;
 *   128 × 128 weights.
 * Scales are stored row-major as (ceil(R/tile_r), ceil(C/tile_c)); edge tiles are partial.
 * All functions are pure and thread-safe.
 */
#ifndef POSTTRAIN_KERNELS_FP8_H
#define POSTTRAIN_KERNELS_FP8_H

#include <stddef.h>
#include <stdint.h>

typedef enum fp8_format { FP8_E4M3, FP8_E5M2 } fp8_format;
typedef enum fp8_overflow { FP8_SATFINITE, FP8_OVERFLOW } fp8_overflow;

#define FP8_E4M3_MAX 448.0f
#define FP8_E5M2_MAX 57344.0f
#define FP8_TILE 128
#define FP8_DEFAULT_EPS 1e-4f /* amax floor: an all-zero tile gets scale 1e-4/448, codes 0 */

/* Scalar conversions (see the file comment). */
uint8_t fp8_from_f32(float x, fp8_format fmt, fp8_overflow mode);
float fp8_to_f32(uint8_t code, fp8_format fmt);

/* The rounding core shared by every narrow float of posttrain (fp16 in model/dtype.c too): the
 * unsigned code of the finite, non-negative fp32 bit pattern `abs_bits` in a format with M
 * mantissa bits and exponent bias B, rounded to nearest even, before any overflow handling (the
 * result may exceed the format's largest code). */
uint32_t fp8_encode_magnitude(uint32_t abs_bits, int M, int B);
/* The exact value of the unsigned finite code with exponent field e and mantissa field m. */
float fp8_decode_magnitude(uint32_t e, uint32_t m, int M, int B);

/* How tile scales are chosen. */
typedef struct fp8_scaling {
    float eps;        /* amax floor, > 0 (FP8_DEFAULT_EPS) */
    int pow2_scales;  /* 1: round each scale up to a power of two */
} fp8_scaling;

/* The scale of a tile whose largest |x| is amax (NaN amax gives a NaN scale). */
float fp8_tile_scale(float amax, const fp8_scaling *s);

/* Number of scales of an (R, C) tensor cut into tile_r × tile_c tiles. */
size_t fp8_scale_count(int R, int C, int tile_r, int tile_c);

/* codes (R, C) (=) E4M3 satfinite of x / scale of its tile; scales (ceil(R/tile_r),
 * ceil(C/tile_c)) (=). */
void fp8_quantize(uint8_t *codes, float *scales, const float *x, int R, int C, int tile_r, int tile_c,
                  const fp8_scaling *s);
/* x (R, C) (=) decode(codes)·scale of the tile. */
void fp8_dequantize(float *x, const uint8_t *codes, const float *scales, int R, int C, int tile_r, int tile_c);
/* y (=) dequantize(quantize(x)) without keeping the codes; y may alias x (each tile is read whole
 * before it is written). What the CPU emulation of an FP8 GEMM operand is. */
void fp8_fake_quantize(float *y, const float *x, int R, int C, int tile_r, int tile_c, const fp8_scaling *s);
/* Re-tiling for the weight-gradient GEMM: a tensor held as 1×128 row tiles (codes_r, scales_r)
 * is dequantised and quantised again as 128×1 column tiles (codes_c, scales_c), as the backward
 * pass does with the activations cached in FP8 by the forward. */
void fp8_retile_rows_to_cols(uint8_t *codes_c, float *scales_c, const uint8_t *codes_r, const float *scales_r,
                             int R, int C, const fp8_scaling *s);

#endif
