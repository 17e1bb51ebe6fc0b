/* fp8.c — FP8 E4M3/E5M2 codecs and tile-wise max-abs scaling (see fp8.h).
 *
 * Encoding works on the fp32 bit pattern. A finite |x| = full·2^(E−23), full = 1.m (24 bits), E the
 * unbiased exponent, goes into a format with M mantissa bits and bias B as
 *   normal    (E ≥ 1−B): q = round_even(full / 2^(23−M)) ∈ [2^M, 2^(M+1)],
 *             code = ((E+B−1) << M) + q — a mantissa that rounds up to 2^(M+1) carries into the
 *             exponent field by plain addition;
 *   subnormal (E < 1−B): code = round_even(full >> s), s = 23−M + (1−B−E); a result of 2^M is
 *             the smallest normal, again by addition.
 * E4M3, the inner loop of every quantisation, runs the same rule in straight-line form
 * (e4m3_encode); the torch fixture and the all-codes test hold both to it bit for bit.
 * A code above the largest finite one is the overflow case of fp8.h. Decoding:
 * (2^M + m)·2^(e−B−M) for normal codes, m·2^(1−B−M) for subnormal ones (exact in fp32).
 *
 * Scaling: x / s is one correctly rounded fp32 division, then one FP8 rounding (the order the
 * reference kernels use: scale = amax/448, y = x/scale). Because s is itself rounded, x/s can come
 * out a hair above 448 for the tile's largest element; satfinite brings it back to 448.
 * Power-of-two scales: 2^ceil(log2(max(amax, eps)/448)), found exactly with frexpf.
 */
#include "kernels/fp8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

uint32_t fp8_encode_magnitude(uint32_t a, int M, int B) {
    int e = (int)(a >> 23);
    if (e == 0) return 0; /* zero or fp32 subnormal: far below half the smallest subnormal */
    int E = e - 127;
    uint32_t full = (a & 0x7FFFFFu) | 0x800000u;
    if (E >= 1 - B) return ((uint32_t)(E + B - 1) << M) + shift_round_even(full, 23 - M);
    int s = 23 - M + (1 - B - E);
    if (s > 31) return 0;
    return shift_round_even(full, s);
}

float fp8_decode_magnitude(uint32_t e, uint32_t m, int M, int B) {
    if (e == 0) return ldexpf((float)m, 1 - B - M);
    return ldexpf((float)((1u << M) + m), (int)e - B - M);
}

/* E4M3 by the same rule in straight-line form (the quantisation loops run it for every element):
 * in the normal range the fp32 pattern keeps its exponent and top 3 mantissa bits after adding
 * 0x7FFFF plus the lowest kept bit (ties to even, a carry moves into the exponent), and the
 * exponent is rebiased by (127 − 7) << 3; below 2⁻⁶ the code is the subnormal count
 * round_even(|x|·2⁹) ∈ [0, 8], rounded by adding and removing 2²³ in fp32 (8 is the smallest
 * normal code, again by addition). At or above 480 (inf included), or rounding above 448, the
 * value overflows. */
static inline uint8_t e4m3_encode(float x, fp8_overflow mode) {
    uint32_t u = f32_bits(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu, code;
    if (a > 0x7F800000u) {
        code = 0x7Fu;
    } else if (a >= 0x3C800000u) { /* 2^-6 and above */
        code = a >= 0x43F00000u ? 0x80u : ((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - (120u << 3);
        /* 0x7F is NaN, not a number to round to: above 0x7E is overflow. */
        if (code > 0x7Eu) code = mode == FP8_SATFINITE ? 0x7Eu : 0x7Fu;
    } else {
        const float big = 8388608.0f; /* 2^23 (IEEE arithmetic: x + big − big is not folded) */
        float f = f32_from_bits(a) * 512.0f;
        code = (uint32_t)((f + big) - big);
    }
    return (uint8_t)(sign | code);
}

static uint8_t e5m2_encode(float x, fp8_overflow mode) {
    uint32_t u = f32_bits(x);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return (uint8_t)(sign | 0x7Fu);
    if (a == 0x7F800000u) return (uint8_t)(sign | (mode == FP8_SATFINITE ? 0x7Bu : 0x7Cu));
    uint32_t code = fp8_encode_magnitude(a, 2, 15);
    if (code > 0x7Bu) code = mode == FP8_SATFINITE ? 0x7Bu : 0x7Cu;
    return (uint8_t)(sign | code);
}

static float e4m3_decode(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80u) << 24;
    if ((c & 0x7Fu) == 0x7Fu) return f32_from_bits(sign | 0x7FC00000u);
    float v = fp8_decode_magnitude((c >> 3) & 0xFu, c & 0x7u, 3, 7);
    return sign ? -v : v;
}

static float e5m2_decode(uint8_t c) {
    uint32_t sign = (uint32_t)(c & 0x80u) << 24;
    uint32_t e = (c >> 2) & 0x1Fu, m = c & 0x3u;
    if (e == 0x1F) return f32_from_bits(sign | 0x7F800000u | (m ? 0x400000u | (m << 21) : 0));
    float v = fp8_decode_magnitude(e, m, 2, 15);
    return sign ? -v : v;
}

uint8_t fp8_from_f32(float x, fp8_format fmt, fp8_overflow mode) {
    return fmt == FP8_E5M2 ? e5m2_encode(x, mode) : e4m3_encode(x, mode);
}

float fp8_to_f32(uint8_t code, fp8_format fmt) {
    return fmt == FP8_E5M2 ? e5m2_decode(code) : e4m3_decode(code);
}

/* ---- tile scaling ------------------------------------------------------------------------- */

/* The 256 E4M3 values, so the quantisation loops decode with one load. */
typedef struct e4m3_table { float v[256]; } e4m3_table;

static void e4m3_table_fill(e4m3_table *t) {
    for (int c = 0; c < 256; c++) t->v[c] = e4m3_decode((uint8_t)c);
}

float fp8_tile_scale(float amax, const fp8_scaling *s) {
    float a = amax > s->eps ? amax : s->eps; /* NaN amax fails the comparison: handled below */
    if (isnan(amax)) return amax;
    float scale = a / FP8_E4M3_MAX;
    if (s->pow2_scales && isfinite(scale)) {
        int ex;
        float mant = frexpf(scale, &ex); /* scale = mant·2^ex, mant ∈ [0.5, 1) */
        scale = ldexpf(1.0f, mant == 0.5f ? ex - 1 : ex);
    }
    return scale;
}

size_t fp8_scale_count(int R, int C, int tile_r, int tile_c) {
    if (R <= 0 || C <= 0) return 0;
    return (size_t)((R + tile_r - 1) / tile_r) * (size_t)((C + tile_c - 1) / tile_c);
}

/* One band of tile rows [r0, r1) is processed in chunks of whole tiles at most CHUNK columns wide
 * (one tile when tiles are wider), so every pass over the data runs along rows: amax per tile,
 * then the scales, then the codes. */
enum { CHUNK = 1024 };

/* Quantises the band [r0, r1) of x (R, C): its tile scales go to scales (unless NULL), the codes
 * to `codes` and/or the dequantised values to `y` (either may be NULL; y may be x). */
static void quantize_band(uint8_t *codes, float *y, float *scales, const float *x, int C, int r0, int r1, int tc,
                          const fp8_scaling *s, const e4m3_table *t) {
    const int per = tc <= CHUNK ? CHUNK / tc : 1; /* tiles per chunk */
    float amax[CHUNK], scale[CHUNK];
    for (int tc0 = 0; tc0 * tc < C; tc0 += per) {
        const int cc0 = tc0 * tc;
        const int nt = (C - cc0 + tc - 1) / tc < per ? (C - cc0 + tc - 1) / tc : per;
        for (int k = 0; k < nt; k++) amax[k] = 0.0f;
        for (int r = r0; r < r1; r++) {
            const float *row = x + (size_t)r * C;
            for (int k = 0; k < nt; k++) {
                const int c0 = cc0 + k * tc, c1 = c0 + tc < C ? c0 + tc : C;
                float m = amax[k];
                for (int c = c0; c < c1; c++) {
                    float a = fabsf(row[c]);
                    m = (a > m || a != a) ? a : m; /* a NaN sticks: NaN > a and a > NaN are false */
                }
                amax[k] = m;
            }
        }
        for (int k = 0; k < nt; k++) {
            scale[k] = fp8_tile_scale(amax[k], s);
            if (scales) scales[tc0 + k] = scale[k];
        }
        for (int r = r0; r < r1; r++) {
            const float *row = x + (size_t)r * C;
            for (int k = 0; k < nt; k++) {
                const int c0 = cc0 + k * tc, c1 = c0 + tc < C ? c0 + tc : C;
                const float sk = scale[k];
                for (int c = c0; c < c1; c++) {
                    uint8_t q = e4m3_encode(row[c] / sk, FP8_SATFINITE);
                    if (codes) codes[(size_t)r * C + c] = q;
                    if (y) y[(size_t)r * C + c] = t->v[q] * sk;
                }
            }
        }
    }
}

static void quantize_bands(uint8_t *codes, float *y, float *scales, const float *x, int R, int C, int tr, int tc,
                           const fp8_scaling *s) {
    if (R <= 0 || C <= 0) return;
    e4m3_table t;
    e4m3_table_fill(&t);
    const int nbands = (R + tr - 1) / tr, nct = (C + tc - 1) / tc;
#pragma omp parallel for schedule(static) if ((size_t)R * C > 65536)
    for (int b = 0; b < nbands; b++) {
        const int r0 = b * tr, r1 = r0 + tr < R ? r0 + tr : R;
        quantize_band(codes, y, scales ? scales + (size_t)b * nct : NULL, x, C, r0, r1, tc, s, &t);
    }
}

void fp8_quantize(uint8_t *codes, float *scales, const float *x, int R, int C, int tile_r, int tile_c,
                  const fp8_scaling *s) {
    quantize_bands(codes, NULL, scales, x, R, C, tile_r, tile_c, s);
}

void fp8_dequantize(float *x, const uint8_t *codes, const float *scales, int R, int C, int tile_r, int tile_c) {
    if (R <= 0 || C <= 0) return;
    e4m3_table t;
    e4m3_table_fill(&t);
    const int nct = (C + tile_c - 1) / tile_c;
#pragma omp parallel for schedule(static) if ((size_t)R * C > 65536)
    for (int r = 0; r < R; r++) {
        const float *sc = scales + (size_t)(r / tile_r) * nct;
        for (int c = 0; c < C; c++) x[(size_t)r * C + c] = t.v[codes[(size_t)r * C + c]] * sc[c / tile_c];
    }
}

void fp8_fake_quantize(float *y, const float *x, int R, int C, int tile_r, int tile_c, const fp8_scaling *s) {
    quantize_bands(NULL, y, NULL, x, R, C, tile_r, tile_c, s);
}

void fp8_retile_rows_to_cols(uint8_t *codes_c, float *scales_c, const uint8_t *codes_r, const float *scales_r,
                             int R, int C, const fp8_scaling *s) {
    if (R <= 0 || C <= 0) return;
    e4m3_table t;
    e4m3_table_fill(&t);
    const int nrt = (C + FP8_TILE - 1) / FP8_TILE; /* 1×128 tiles per source row */
    const int nbands = (R + FP8_TILE - 1) / FP8_TILE;
    /* The source value at (r, c): its code times its 1×128 tile's scale (what fp8_dequantize gives). */
#define SRC(r, c) (t.v[codes_r[(size_t)(r) * C + (c)]] * scales_r[(size_t)(r) * nrt + (c) / FP8_TILE])
#pragma omp parallel for schedule(static) if ((size_t)R * C > 65536)
    for (int b = 0; b < nbands; b++) {
        const int r0 = b * FP8_TILE, r1 = r0 + FP8_TILE < R ? r0 + FP8_TILE : R;
        float amax[CHUNK];
        for (int cc0 = 0; cc0 < C; cc0 += CHUNK) {
            const int cc1 = cc0 + CHUNK < C ? cc0 + CHUNK : C;
            for (int c = cc0; c < cc1; c++) amax[c - cc0] = 0.0f;
            for (int r = r0; r < r1; r++)
                for (int c = cc0; c < cc1; c++) {
                    float a = fabsf(SRC(r, c)), m = amax[c - cc0];
                    amax[c - cc0] = (a > m || a != a) ? a : m;
                }
            float *sc = scales_c + (size_t)b * C;
            for (int c = cc0; c < cc1; c++) sc[c] = fp8_tile_scale(amax[c - cc0], s);
            for (int r = r0; r < r1; r++)
                for (int c = cc0; c < cc1; c++)
                    codes_c[(size_t)r * C + c] = e4m3_encode(SRC(r, c) / sc[c], FP8_SATFINITE);
        }
    }
#undef SRC
}
