/* vec4.h — 4-float vectors and e^x on them, for the elementwise and softmax-type kernels
 * (crossentropy.c, swiglu.c).
 *
 * GCC/Clang vector extensions: one SSE2 register on x86-64, one NEON register on AArch64, so the
 * same code and the same rounding run on every CPU and at every -O level (a plain loop calling
 * expf does not vectorise, and with the default -ftrapping-math GCC will not if-convert the
 * range checks of a scalar exp written in C). No FMA contraction happens in ISO C mode, so the
 * results do not depend on -march either.
 *
 * vec4_exp: x = n·ln2 + r with n = round(x/ln2) (adding and removing 1.5·2²³ rounds to nearest),
 * ln2 split in a 9-bit head (n·head is exact for |n| ≤ 2⁸) and a tail, so |r| ≤ ln2/2; e^r by its
 * Taylor series to r⁷ (truncation r⁸/8! < 6e-9, a tenth of an fp32 ulp); then 2^n through the
 * exponent bits, as 2^(n−1)·2 where n > 0 so that n = 128 overflows to +inf exactly where e^x
 * does (and 2^−126 stays a normal float). Error ≤ 2 ulp on
 * [−87.33, 88.72]; 0 below −87.33 (e^x under the smallest normal float, subnormals flushed) and
 * at −inf; +inf above 88.72; NaN stays NaN.
 */
#ifndef POSTTRAIN_KERNELS_VEC4_H
#define POSTTRAIN_KERNELS_VEC4_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { VEC4_W = 4 };

typedef float vec4 __attribute__((vector_size(16)));
typedef int32_t vec4i __attribute__((vector_size(16)));
typedef uint32_t vec4u __attribute__((vector_size(16)));

static inline vec4 vec4_splat(float x) { return (vec4){x, x, x, x}; }

static inline vec4 vec4_load(const float *p) {
    vec4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vec4_store(float *p, vec4 v) { memcpy(p, &v, sizeof v); }

/* The first n < 4 values at p, padded with `fill`; and the store of the first n lanes. */
static inline vec4 vec4_load_tail(const float *p, size_t n, float fill) {
    vec4 v = vec4_splat(fill);
    for (size_t u = 0; u < n; u++) v[u] = p[u];
    return v;
}

static inline void vec4_store_tail(float *p, vec4 v, size_t n) {
    for (size_t u = 0; u < n; u++) p[u] = v[u];
}

/* Lanes where mask is set (all ones) take a, the others (0) take b. */
static inline vec4 vec4_select(vec4i mask, vec4 a, vec4 b) {
    return (vec4)((mask & (vec4i)a) | (~mask & (vec4i)b));
}

static inline float vec4_hsum(vec4 v) { return (v[0] + v[2]) + (v[1] + v[3]); }

static inline vec4 vec4_exp(vec4 x) {
    const float lo = -87.33654f, hi = 89.0f;
    vec4i below = x < lo;
    vec4 xc = vec4_select(below, vec4_splat(lo), x); /* NaN stays NaN */
    xc = vec4_select(xc > hi, vec4_splat(hi), xc);
    vec4 n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    vec4 r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    vec4 p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vec4i ni = __builtin_convertvector(n, vec4i), pos = ni > 0; /* n ∈ [−126, 128]; pos: −1 where n > 0 */
    vec4u e = (vec4u)(ni + 127 + pos) << 23;                     /* 2^n, or 2^(n−1) where n > 0 */
    vec4 y = p * (vec4)e;
    y = vec4_select(pos, y * 2.0f, y);
    return (vec4)(~below & (vec4i)y);
}

#endif
