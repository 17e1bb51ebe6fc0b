/* dtype.h — element types of tensor files and the conversions between fp32 and the narrow
 * floating-point formats: bf16, fp16, FP8 E4M3 (OCP "FN"), FP8 E5M2 and E8M0 (scales only).
 *
 * Encoding (fp32 → narrow) rounds to nearest, ties to even, from the exact fp32 value (one
 * rounding, never through an intermediate format):
 *   bf16  8-bit exponent (bias 127), 7-bit mantissa; overflow → ±inf (IEEE), NaN → quiet NaN
 *         with the sign kept.
 *   fp16  5-bit exponent (bias 15), 10-bit mantissa, subnormals down to 2⁻²⁴; overflow (|x| ≥
 *         65520) → ±inf (IEEE), NaN → quiet NaN keeping sign and the top payload bits.
 *   E4M3  bias 7, max 448, min normal 2⁻⁶, min subnormal 2⁻⁹, no infinities, NaN = S.1111.111.
 *         Saturating (PTX `cvt.rn.satfinite`): a finite value that rounds above 448 and ±inf
 *         become ±448; NaN stays NaN (0x7F | sign).
 *   E5M2  bias 15, max 57344, min subnormal 2⁻¹⁶, inf S.11111.00, NaN S.11111.{01,10,11}.
 *         Saturating like E4M3: overflow and ±inf become ±57344 (0x7B | sign); NaN → 0x7F | sign.
 *         (torch's float8_e5m2 cast does NOT saturate: it gives inf; see tests/test_safetensors.c.)
 * The FP8 codecs are kernels/fp8.h's (saturating mode), wrapped here.
 * Decoding (narrow → fp32) is exact for every code, subnormals included; NaN codes decode to a
 * quiet fp32 NaN with the same sign.
 *
 * Invariants: for every non-NaN code c of a narrow format, encode(decode(c)) == c (so −0 stays −0);
 * all functions are pure and thread-safe. Data may be unaligned (a view into a mapped file):
 * the bulk converters copy element by element with memcpy.
 */
#ifndef POSTTRAIN_MODEL_DTYPE_H
#define POSTTRAIN_MODEL_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The element types of safetensors files (names as the format spells them, see dtype_name). */
typedef enum pt_dtype {
    PT_DTYPE_BOOL,
    PT_DTYPE_U8,
    PT_DTYPE_I8,
    PT_DTYPE_F8_E5M2,
    PT_DTYPE_F8_E4M3,
    PT_DTYPE_F8_E8M0,
    PT_DTYPE_I16,
    PT_DTYPE_U16,
    PT_DTYPE_F16,
    PT_DTYPE_BF16,
    PT_DTYPE_I32,
    PT_DTYPE_U32,
    PT_DTYPE_F32,
    PT_DTYPE_I64,
    PT_DTYPE_U64,
    PT_DTYPE_F64,
    PT_DTYPE_COUNT
} pt_dtype;

/* Bytes per element (1, 2, 4 or 8); 0 for an invalid value. */
size_t dtype_size(pt_dtype dtype);
/* The safetensors spelling ("F32", "BF16", "F8_E4M3", ...); "?" for an invalid value. */
const char *dtype_name(pt_dtype dtype);
/* Parses a safetensors dtype name; returns 0 and sets *dtype, or -1 when the name is unknown. */
int dtype_from_name(pt_dtype *dtype, const char *name);
/* 1 for the floating-point types (F8_*, F16, BF16, F32, F64), else 0. */
int dtype_is_float(pt_dtype dtype);

/* Scalar conversions (see the file comment for rounding, overflow and NaN). */
uint16_t dtype_f32_to_bf16(float x);
float dtype_bf16_to_f32(uint16_t h);
uint16_t dtype_f32_to_f16(float x);
float dtype_f16_to_f32(uint16_t h);
uint8_t dtype_f32_to_e4m3(float x);
float dtype_e4m3_to_f32(uint8_t c);
uint8_t dtype_f32_to_e5m2(float x);
float dtype_e5m2_to_f32(uint8_t c);
/* E8M0 (OCP MX scale): 2^(c − 127), c = 0xFF is NaN. Decode only. */
float dtype_e8m0_to_f32(uint8_t c);

/* out[i] (=) in[i] converted to fp32, for n elements of any dtype (integers and bools by value;
 * I64/U64/F64 round to the nearest fp32). `in` may be unaligned. Never fails for a valid dtype. */
pt_status dtype_convert_to_f32(float *out, const void *in, pt_dtype dtype, size_t n, pt_error *err);
/* out[i] (=) in[i] encoded as dtype, for the floating-point dtypes except E8M0 (PT_ERR_UNSUPPORTED
 * otherwise). `out` may be unaligned. */
pt_status dtype_convert_from_f32(void *out, const float *in, pt_dtype dtype, size_t n, pt_error *err);

#endif
