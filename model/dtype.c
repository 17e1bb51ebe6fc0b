/* dtype.c — element sizes, safetensors dtype names, and fp32 <-> bf16/fp16/FP8 conversions.
 *
 * All narrow encoders except bf16 share one routine working on the fp32 bit pattern. A finite
 * |x| = full·2^(E−23) with full = 1.m (24 bits) and E the unbiased exponent is encoded into a
 * format with M mantissa bits and exponent bias B as follows:
 *   normal    (E ≥ 1−B): q = round_even(full / 2^(23−M)) ∈ [2^M, 2^(M+1)],
 *             code = ((E+B−1) << M) + q — a mantissa that rounds up to 2^(M+1) carries into
 *             the exponent field by plain addition;
 *   subnormal (E < 1−B): code = round_even(|x| / 2^(1−B−M)) = round_even(full >> s) with
 *             s = 23−M + (1−B−E); a result of 2^M is the smallest normal, again by addition.
 * Codes above the format's largest finite code overflow: to inf for fp16, to the largest finite
 * value for the FP8 formats (satfinite). fp32 subnormals are below half the smallest subnormal
 * of fp16/E5M2/E4M3 and encode to ±0. bf16 shares fp32's exponent range, so it is fp32 with the
 * low 16 bits rounded away: add 0x7FFF plus the lowest kept bit, then truncate.
 * Decoding is exact: (2^M + m)·2^(e−B−M) for normal codes, m·2^(1−B−M) for subnormal ones
 * (ldexpf of small integers, exact in fp32 for every code of these formats).
 */
#include "model/dtype.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtype_table[PT_DTYPE_COUNT] = {
    [PT_DTYPE_BOOL] = {"BOOL", 1, 0},       [PT_DTYPE_U8] = {"U8", 1, 0},
    [PT_DTYPE_I8] = {"I8", 1, 0},           [PT_DTYPE_F8_E5M2] = {"F8_E5M2", 1, 1},
    [PT_DTYPE_F8_E4M3] = {"F8_E4M3", 1, 1}, [PT_DTYPE_F8_E8M0] = {"F8_E8M0", 1, 1},
    [PT_DTYPE_I16] = {"I16", 2, 0},         [PT_DTYPE_U16] = {"U16", 2, 0},
    [PT_DTYPE_F16] = {"F16", 2, 1},         [PT_DTYPE_BF16] = {"BF16", 2, 1},
    [PT_DTYPE_I32] = {"I32", 4, 0},         [PT_DTYPE_U32] = {"U32", 4, 0},
    [PT_DTYPE_F32] = {"F32", 4, 1},         [PT_DTYPE_I64] = {"I64", 8, 0},
    [PT_DTYPE_U64] = {"U64", 8, 0},         [PT_DTYPE_F64] = {"F64", 8, 1},
};

size_t dtype_size(pt_dtype dtype) {
    if ((unsigned)dtype >= PT_DTYPE_COUNT) return 0;
    return dtype_table[dtype].size;
}

const char *dtype_name(pt_dtype dtype) {
    if ((unsigned)dtype >= PT_DTYPE_COUNT) return "?";
    return dtype_table[dtype].name;
}

int dtype_from_name(pt_dtype *dtype, const char *name) {
    for (int i = 0; i < PT_DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *dtype = (pt_dtype)i;
            return 0;
        }
    }
    return -1;
}

int dtype_is_float(pt_dtype dtype) {
    if ((unsigned)dtype >= PT_DTYPE_COUNT) return 0;
    return dtype_table[dtype].is_float;
}

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* round_even(m / 2^s) for 1 ≤ s ≤ 31. */
static uint32_t shift_round_even(uint32_t m, int s) {
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return q;
}

/* The unsigned code of a finite, non-negative fp32 bit pattern `a` in a format with M mantissa
 * bits and bias B, before any overflow handling (may exceed the format's range). */
static uint32_t encode_magnitude(uint32_t a, int M, int B) {
    int e = (int)(a >> 23);
    if (e == 0) return 0; /* zero or fp32 subnormal: far below half the smallest subnormal */
    int E = e - 127;
    uint32_t full = (a & 0x7FFFFFu) | 0x800000u;
    if (E >= 1 - B) return ((uint32_t)(E + B - 1) << M) + shift_round_even(full, 23 - M);
    int s = 23 - M + (1 - B - E);
    if (s > 31) return 0;
    return shift_round_even(full, s);
}

/* Exact value of an unsigned finite code (exponent field e, mantissa m). */
static float decode_magnitude(uint32_t e, uint32_t m, int M, int B) {
    if (e == 0) return ldexpf((float)m, 1 - B - M);
    return ldexpf((float)((1u << M) + m), (int)e - B - M);
}

uint16_t dtype_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float dtype_bf16_to_f32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t dtype_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu)); /* NaN */
    if (a == 0x7F800000u) return (uint16_t)(sign | 0x7C00u);
    uint32_t code = encode_magnitude(a, 10, 15);
    if (code > 0x7BFFu) code = 0x7C00u; /* IEEE overflow to inf */
    return (uint16_t)(sign | code);
}

float dtype_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0));
    float v = decode_magnitude(e, m, 10, 15);
    return sign ? -v : v;
}

uint8_t dtype_f32_to_e4m3(float x) {
    uint32_t u = f32_bits(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    if (a == 0x7F800000u) return (uint8_t)(sign | 0x7Eu); /* satfinite */
    uint32_t code = encode_magnitude(a, 3, 7);
    if (code > 0x7Eu) code = 0x7Eu; /* 0x7F is NaN, not a number to round to */
    return (uint8_t)(sign | code);
}

float dtype_e4m3_to_f32(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80u) << 24;
    if ((c & 0x7Fu) == 0x7Fu) return f32_from_bits(sign | 0x7FC00000u);
    float v = decode_magnitude((c >> 3) & 0xFu, c & 0x7u, 3, 7);
    return sign ? -v : v;
}

uint8_t dtype_f32_to_e5m2(float x) {
    uint32_t u = f32_bits(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    if (a == 0x7F800000u) return (uint8_t)(sign | 0x7Bu); /* satfinite */
    uint32_t code = encode_magnitude(a, 2, 15);
    if (code > 0x7Bu) code = 0x7Bu;
    return (uint8_t)(sign | code);
}

float dtype_e5m2_to_f32(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80u) << 24;
    uint32_t e = (c >> 2) & 0x1Fu, m = c & 0x3u;
    if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m ? 0x400000u | (m << 21) : 0));
    float v = decode_magnitude(e, m, 2, 15);
    return sign ? -v : v;
}

float dtype_e8m0_to_f32(uint8_t c) {
    if (c == 0xFF) return f32_from_bits(0x7FC00000u);
    return ldexpf(1.0f, (int)c - 127);
}

/* Element i of an unaligned array (a view into a mapped file need not be aligned). */
#define DEFINE_LOAD(fn, T)                                                                         \
    static T fn(const void *p, size_t i) {                                                         \
        T v;                                                                                       \
        memcpy(&v, (const char *)p + i * sizeof(T), sizeof(T));                                   \
        return v;                                                                                  \
    }
DEFINE_LOAD(load_u16, uint16_t)
DEFINE_LOAD(load_i16, int16_t)
DEFINE_LOAD(load_u32, uint32_t)
DEFINE_LOAD(load_i32, int32_t)
DEFINE_LOAD(load_u64, uint64_t)
DEFINE_LOAD(load_i64, int64_t)
DEFINE_LOAD(load_f64, double)
#undef DEFINE_LOAD

pt_status dtype_convert_to_f32(float *out, const void *in, pt_dtype dtype, size_t n, pt_error *err) {
    const uint8_t *b = in;
    switch (dtype) {
    case PT_DTYPE_BOOL:
        for (size_t i = 0; i < n; i++) out[i] = b[i] ? 1.0f : 0.0f;
        return PT_OK;
    case PT_DTYPE_U8:
        for (size_t i = 0; i < n; i++) out[i] = (float)b[i];
        return PT_OK;
    case PT_DTYPE_I8:
        for (size_t i = 0; i < n; i++) out[i] = (float)(int8_t)b[i];
        return PT_OK;
    case PT_DTYPE_F8_E5M2:
        for (size_t i = 0; i < n; i++) out[i] = dtype_e5m2_to_f32(b[i]);
        return PT_OK;
    case PT_DTYPE_F8_E4M3:
        for (size_t i = 0; i < n; i++) out[i] = dtype_e4m3_to_f32(b[i]);
        return PT_OK;
    case PT_DTYPE_F8_E8M0:
        for (size_t i = 0; i < n; i++) out[i] = dtype_e8m0_to_f32(b[i]);
        return PT_OK;
    case PT_DTYPE_I16:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_i16(in, i);
        return PT_OK;
    case PT_DTYPE_U16:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_u16(in, i);
        return PT_OK;
    case PT_DTYPE_F16:
        for (size_t i = 0; i < n; i++) out[i] = dtype_f16_to_f32(load_u16(in, i));
        return PT_OK;
    case PT_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) out[i] = dtype_bf16_to_f32(load_u16(in, i));
        return PT_OK;
    case PT_DTYPE_I32:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_i32(in, i);
        return PT_OK;
    case PT_DTYPE_U32:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_u32(in, i);
        return PT_OK;
    case PT_DTYPE_F32:
        if (n) memcpy(out, in, n * sizeof(float));
        return PT_OK;
    case PT_DTYPE_I64:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_i64(in, i);
        return PT_OK;
    case PT_DTYPE_U64:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_u64(in, i);
        return PT_OK;
    case PT_DTYPE_F64:
        for (size_t i = 0; i < n; i++) out[i] = (float)load_f64(in, i);
        return PT_OK;
    case PT_DTYPE_COUNT:
        break;
    }
    PT_FAIL(err, PT_ERR_INVALID, "dtype_convert_to_f32: invalid dtype value %d", (int)dtype);
}

pt_status dtype_convert_from_f32(void *out, const float *in, pt_dtype dtype, size_t n, pt_error *err) {
    uint8_t *b = out;
    switch (dtype) {
    case PT_DTYPE_F8_E4M3:
        for (size_t i = 0; i < n; i++) b[i] = dtype_f32_to_e4m3(in[i]);
        return PT_OK;
    case PT_DTYPE_F8_E5M2:
        for (size_t i = 0; i < n; i++) b[i] = dtype_f32_to_e5m2(in[i]);
        return PT_OK;
    case PT_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = dtype_f32_to_f16(in[i]);
            memcpy(b + i * 2, &h, 2);
        }
        return PT_OK;
    case PT_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = dtype_f32_to_bf16(in[i]);
            memcpy(b + i * 2, &h, 2);
        }
        return PT_OK;
    case PT_DTYPE_F32:
        if (n) memcpy(out, in, n * sizeof(float));
        return PT_OK;
    case PT_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d = in[i];
            memcpy(b + i * 8, &d, 8);
        }
        return PT_OK;
    default:
        break;
    }
    PT_FAIL(err, PT_ERR_UNSUPPORTED, "cannot encode fp32 values as %s: only F8_E4M3, F8_E5M2, F16, BF16, F32 and "
            "F64 are supported", dtype_name(dtype));
}
