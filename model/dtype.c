/* dtype.c — element sizes, safetensors dtype names, and fp32 <-> bf16/fp16/FP8 conversions.
 *
 * The FP8 codecs are kernels/fp8.c's (the one implementation, used here in its saturating mode),
 * and fp16 uses that file's rounding core too: a finite |x| is rounded to nearest even into M
 * mantissa bits and bias B by fp8_encode_magnitude, and a code above the format's largest finite
 * one overflows to inf for fp16 (IEEE). bf16 shares fp32's exponent range, so it is fp32 with the
 * low 16 bits rounded away: add 0x7FFF plus the lowest kept bit, then truncate. Decoding is exact
 * (fp8_decode_magnitude: ldexpf of small integers).
 */
#include "model/dtype.h"

#include <math.h>
#include <string.h>

#include "kernels/fp8.h"

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
    uint32_t code = fp8_encode_magnitude(a, 10, 15);
    if (code > 0x7BFFu) code = 0x7C00u; /* IEEE overflow to inf */
    return (uint16_t)(sign | code);
}

float dtype_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m ? 0x400000u | (m << 13) : 0));
    float v = fp8_decode_magnitude(e, m, 10, 15);
    return sign ? -v : v;
}

uint8_t dtype_f32_to_e4m3(float x) { return fp8_from_f32(x, FP8_E4M3, FP8_SATFINITE); }

float dtype_e4m3_to_f32(uint8_t c) { return fp8_to_f32(c, FP8_E4M3); }

uint8_t dtype_f32_to_e5m2(float x) { return fp8_from_f32(x, FP8_E5M2, FP8_SATFINITE); }

float dtype_e5m2_to_f32(uint8_t c) { return fp8_to_f32(c, FP8_E5M2); }

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
