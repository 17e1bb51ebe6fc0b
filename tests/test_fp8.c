/* test_fp8.c — FP8 codecs, tile scaling and the FP8 linear layer (kernels/fp8.h, fp8_linear.h).
 *
 * Codecs: every code of both formats against the value the OCP definition gives (computed here
 * in double from the bit fields), re-encoding to itself in both overflow modes; 62k fp32 values
 * (every value and every tie of both formats with their fp32 neighbours, subnormals, overflow,
 * ±inf, NaNs, random values) against torch's float8_e4m3fn / float8_e5m2 casts bit for bit
 * (tests/fixtures/fp8/casts.bin from tests/ref/make_fp8_fixture.py). The fixture records which
 * overflow behaviour torch has per format (torch 2.15 saturates E4M3, inf included, and sends E5M2
 * to inf); that mode must equal torch everywhere, and the other mode may differ only above the
 * overflow threshold, with ±max (satfinite) against NaN/inf.
 * Scaling: for each of the recipe's tiles (1×128, 128×1, 128×128) on shapes with partial edge
 * tiles, each scale is max(amax, eps)/448 (or the next power of two up), the tile's largest
 * element maps to ±448 (pow2: into (224, 448]), and every dequantised element is within half an
 * E4M3 ulp of x/scale, times the scale (plus fp32 rounding of the product); an all-zero tile and a
 * tile with one huge outlier; re-tiling equals dequantise-then-quantise along the other axis.
 * FP8 linear: the three GEMMs against quantise → dequantise (through the codes API) → fp64 matmul,
 * within the rigorous fp32 summation bound γ_K·Σ|a·b|; and they must differ from the fp32 linear
 * (the quantisation really happens).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp8.h"
#include "kernels/fp8_linear.h"
#include "kernels/linear.h"
#include "model/dtype.h"
#include "tests/util/check.h"

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* The OCP value of a code, from its fields, in double. */
static double ocp_value(uint8_t c, fp8_format f, int *is_nan, int *is_inf) {
    int M = f == FP8_E4M3 ? 3 : 2, B = f == FP8_E4M3 ? 7 : 15, EB = f == FP8_E4M3 ? 4 : 5;
    int s = c >> 7, e = (c >> M) & ((1 << EB) - 1), m = c & ((1 << M) - 1);
    *is_nan = *is_inf = 0;
    if (f == FP8_E4M3 && e == 15 && m == 7) *is_nan = 1;
    if (f == FP8_E5M2 && e == 31) {
        if (m) *is_nan = 1;
        else *is_inf = 1;
    }
    double mag = e == 0 ? ldexp(m, 1 - B - M) : ldexp((1 << M) + m, e - B - M);
    if (*is_inf) mag = INFINITY;
    return s ? -mag : mag;
}

Test(fp8_codec, every_code_decodes_and_reencodes) {
    for (int f = 0; f < 2; f++)
        for (int c = 0; c < 256; c++) {
            int nan, inf;
            double want = ocp_value((uint8_t)c, (fp8_format)f, &nan, &inf);
            float got = fp8_to_f32((uint8_t)c, (fp8_format)f);
            if (nan) {
                cr_assert(isnan(got), "format %d code 0x%02x must decode to NaN, got %g", f, c, got);
                cr_assert_eq(signbit(got) != 0, (c & 0x80) != 0, "NaN code 0x%02x keeps its sign", c);
                continue;
            }
            cr_assert_eq(bits_of(got), bits_of((float)want), "format %d code 0x%02x: %.9g, want %.9g", f, c, got, want);
            for (int mode = 0; mode < 2; mode++) {
                if (inf && mode == FP8_SATFINITE) continue; /* inf saturates by design */
                uint8_t back = fp8_from_f32(got, (fp8_format)f, (fp8_overflow)mode);
                cr_assert_eq(back, c, "format %d mode %d: code 0x%02x -> %g -> 0x%02x", f, mode, c, got, back);
            }
        }
    cr_assert_eq(fp8_to_f32(0x7E, FP8_E4M3), FP8_E4M3_MAX);
    cr_assert_eq(fp8_to_f32(0x7B, FP8_E5M2), FP8_E5M2_MAX);
    /* dtype.h's codecs are the saturating mode of the same implementation */
    for (int c = 0; c < 256; c++) {
        cr_assert_eq(bits_of(dtype_e4m3_to_f32((uint8_t)c)) | isnan(dtype_e4m3_to_f32((uint8_t)c)),
                     bits_of(fp8_to_f32((uint8_t)c, FP8_E4M3)) | isnan(fp8_to_f32((uint8_t)c, FP8_E4M3)));
    }
}

typedef struct cast_fixture {
    uint32_t n, flags;
    char torch_version[33];
    float *x;
    uint8_t *e4m3, *e5m2;
    void *mem;
} cast_fixture;

static void load_casts(cast_fixture *fx) {
    char path[1024];
    FILE *fp = fopen(fixture_path(path, sizeof path, "fp8/casts.bin"), "rb");
    cr_assert_not_null(fp, "cannot open %s (python3 tests/ref/make_fp8_fixture.py writes it)", path);
    char magic[4];
    uint32_t head[3];
    cr_assert_eq(fread(magic, 1, 4, fp), 4u);
    cr_assert_eq(memcmp(magic, "PTF8", 4), 0, "%s: bad magic", path);
    cr_assert_eq(fread(head, 4, 3, fp), 3u);
    cr_assert_eq(head[0], 1u, "%s: version %u, expected 1", path, head[0]);
    fx->n = head[1];
    fx->flags = head[2];
    memset(fx->torch_version, 0, sizeof fx->torch_version);
    cr_assert_eq(fread(fx->torch_version, 1, 32, fp), 32u);
    cr_assert(fx->n > 1000 && fx->n < 1000000, "%s: implausible count %u", path, fx->n);
    fx->mem = malloc((size_t)fx->n * 6);
    cr_assert_not_null(fx->mem);
    cr_assert_eq(fread(fx->mem, 1, (size_t)fx->n * 6, fp), (size_t)fx->n * 6, "%s: truncated", path);
    fclose(fp);
    fx->x = fx->mem;
    fx->e4m3 = (uint8_t *)fx->mem + (size_t)fx->n * 4;
    fx->e5m2 = fx->e4m3 + fx->n;
}

/* torch's mode for one format, and the other mode's only allowed difference: at overflow, ±max
 * (satfinite) against NaN (E4M3) or inf (E5M2). */
static void check_format(const cast_fixture *fx, fp8_format f, long *overflows, long *subnormals) {
    const int torch_sat = (fx->flags >> (f == FP8_E4M3 ? 0 : 1)) & 1;
    const fp8_overflow tmode = torch_sat ? FP8_SATFINITE : FP8_OVERFLOW;
    const fp8_overflow other = torch_sat ? FP8_OVERFLOW : FP8_SATFINITE;
    const uint8_t sat_code = f == FP8_E4M3 ? 0x7E : 0x7B, ovf_code = f == FP8_E4M3 ? 0x7F : 0x7C;
    /* Overflow starts at the tie above max: 464 rounds to 448 (mantissa 110, even), but 61440
     * rounds away from 57344 (mantissa 11, odd). */
    const double limit = f == FP8_E4M3 ? 464.0 : 61440.0;
    const int tie_overflows = f == FP8_E5M2;
    const uint8_t *t = f == FP8_E4M3 ? fx->e4m3 : fx->e5m2;
    const char *name = f == FP8_E4M3 ? "E4M3" : "E5M2";
    for (uint32_t i = 0; i < fx->n; i++) {
        float x = fx->x[i];
        uint8_t g = fp8_from_f32(x, f, tmode), o = fp8_from_f32(x, f, other);
        cr_assert_eq(g, t[i], "%s of %.9g (0x%08x): 0x%02x, torch %s 0x%02x", name, x, bits_of(x), g, fx->torch_version,
                     t[i]);
        uint8_t sat = fp8_from_f32(x, f, FP8_SATFINITE);
        cr_assert_eq(f == FP8_E4M3 ? dtype_f32_to_e4m3(x) : dtype_f32_to_e5m2(x), sat, "dtype.h wraps satfinite");
        if (o != g) {
            uint8_t sign = (uint8_t)((bits_of(x) >> 24) & 0x80);
            uint8_t want_sat = sign | sat_code, want_ovf = sign | ovf_code;
            cr_assert(!isnan(x) && (fabsf(x) > limit || (tie_overflows && fabsf(x) == limit)),
                      "%s of %.9g: the modes differ below overflow", name, x);
            cr_assert_eq(other == FP8_SATFINITE ? o : g, want_sat, "%s of %.9g: satfinite gives ±max", name, x);
            cr_assert_eq(other == FP8_SATFINITE ? g : o, want_ovf, "%s of %.9g: overflow mode gives %s", name, x,
                         f == FP8_E4M3 ? "NaN" : "inf");
            (*overflows)++;
        } else if (!isnan(x)) {
            cr_assert(fabsf(x) < limit || (!tie_overflows && fabsf(x) == limit), "%s of %.9g must overflow in one mode",
                      name, x);
        }
        int sub = f == FP8_E4M3 ? (g & 0x78) == 0 && (g & 7) : (g & 0x7C) == 0 && (g & 3);
        *subnormals += sub;
    }
}

Test(fp8_codec, casts_match_torch_bit_for_bit) {
    cast_fixture fx;
    load_casts(&fx);
    long ovf4 = 0, ovf5 = 0, sub4 = 0, sub5 = 0, nans = 0;
    check_format(&fx, FP8_E4M3, &ovf4, &sub4);
    check_format(&fx, FP8_E5M2, &ovf5, &sub5);
    for (uint32_t i = 0; i < fx.n; i++) nans += isnan(fx.x[i]);
    /* the fixture really covers the cases it claims */
    cr_assert(ovf4 > 1000 && ovf5 > 100 && sub4 > 100 && sub5 > 100 && nans >= 6, "coverage: %ld %ld %ld %ld %ld", ovf4,
              ovf5, sub4, sub5, nans);
    free(fx.mem);
}

/* Half an E4M3 ulp at |y| (the subnormal spacing below 2^-6). */
static double e4m3_half_ulp(double y) {
    y = fabs(y);
    if (y < ldexp(1, -6)) return ldexp(1, -10);
    int e;
    frexp(y, &e); /* y = f·2^e, f ∈ [0.5, 1): exponent e−1 */
    return ldexp(1, e - 1 - 3 - 1);
}

/* Checks the quantisation of x (R, C) with tiles tr × tc against the definition. */
static void check_tiles(const float *x, int R, int C, int tr, int tc, const fp8_scaling *s) {
    size_t n = (size_t)R * C, ns = fp8_scale_count(R, C, tr, tc);
    uint8_t *q = malloc(n);
    float *sc = malloc(ns * sizeof *sc), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
    cr_assert(q && sc && y && z);
    fp8_quantize(q, sc, x, R, C, tr, tc, s);
    fp8_dequantize(y, q, sc, R, C, tr, tc);
    fp8_fake_quantize(z, x, R, C, tr, tc, s);
    cr_assert_eq(memcmp(y, z, n * sizeof *y), 0, "fake quantisation differs from quantise + dequantise");
    const int nct = (C + tc - 1) / tc;
    for (size_t t = 0; t < ns; t++) {
        int r0 = (int)(t / nct) * tr, c0 = (int)(t % nct) * tc;
        int r1 = r0 + tr < R ? r0 + tr : R, c1 = c0 + tc < C ? c0 + tc : C;
        double amax = 0;
        int top = 0;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) amax = fmax(amax, fabs(x[(size_t)r * C + c]));
        double want = fmax(amax, s->eps) / 448.0;
        if (s->pow2_scales) {
            cr_assert(sc[t] >= want && sc[t] < 2 * want && frexpf(sc[t], &(int){0}) == 0.5f,
                      "tile %zu: pow2 scale %g for amax %g", t, sc[t], amax);
        } else {
            cr_assert_eq(sc[t], (float)want, "tile %zu: scale %.9g, want %.9g", t, sc[t], want);
        }
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) {
                size_t i = (size_t)r * C + c;
                double v = fp8_to_f32(q[i], FP8_E4M3);
                cr_assert(fabs(v) <= 448, "code 0x%02x is not finite", q[i]);
                if (fabs(v) == 448) top = 1;
                double ideal = x[i] / (double)sc[t];
                double bound = e4m3_half_ulp(ideal) * sc[t] * (1 + 1e-6) + ldexp(fabs(x[i]), -22);
                cr_assert(fabs((double)y[i] - x[i]) <= bound, "tile %zu (%d,%d): %.9g -> %.9g, bound %.3g", t, r, c,
                          x[i], y[i], bound);
            }
        if (amax >= s->eps && !s->pow2_scales) cr_assert(top, "tile %zu: its largest element must map to ±448", t);
        if (amax >= s->eps && s->pow2_scales) cr_assert(amax / sc[t] > 224 && amax / sc[t] <= 448);
    }
    free(q), free(sc), free(y), free(z);
}

/* Values whose magnitude varies by orders of magnitude between rows and columns. */
static float *varied(int R, int C, uint64_t seed) {
    test_rng r;
    test_rng_seed(&r, seed);
    float *x = malloc((size_t)R * C * sizeof *x);
    cr_assert_not_null(x);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++)
            x[(size_t)i * C + j] = (float)((test_rng_uniform(&r) * 2 - 1) * ldexp(1, (i % 7) * 3 - 9 + (j / 50) % 4));
    return x;
}

Test(fp8_scaling, tiles_within_half_ulp_times_scale) {
    const int R = 200, C = 300; /* partial edge tiles in both directions */
    float *x = varied(R, C, 3);
    fp8_scaling s = {FP8_DEFAULT_EPS, 0}, p2 = {FP8_DEFAULT_EPS, 1};
    const int tiles[3][2] = {{1, FP8_TILE}, {FP8_TILE, 1}, {FP8_TILE, FP8_TILE}};
    for (int k = 0; k < 3; k++) {
        check_tiles(x, R, C, tiles[k][0], tiles[k][1], &s);
        check_tiles(x, R, C, tiles[k][0], tiles[k][1], &p2);
    }
    free(x);
}

Test(fp8_scaling, all_zero_tile_and_huge_outlier) {
    const int R = 4, C = 384;
    float *x = varied(R, C, 5);
    for (int j = 128; j < 256; j++) x[j] = 0.0f;   /* row 0, second tile: all zero */
    x[C + 300] = 3.0e6f;                           /* row 1, third tile: one outlier among O(1) values */
    x[2 * C + 10] = -1.0e38f;                      /* row 2, first tile: an outlier near fp32's top */
    fp8_scaling s = {FP8_DEFAULT_EPS, 0};
    check_tiles(x, R, C, 1, FP8_TILE, &s);
    uint8_t q[4 * 384];
    float sc[4 * 3], y[4 * 384];
    fp8_quantize(q, sc, x, R, C, 1, FP8_TILE, &s);
    fp8_dequantize(y, q, sc, R, C, 1, FP8_TILE);
    cr_assert_eq(sc[1], FP8_DEFAULT_EPS / 448.0f, "an all-zero tile gets the eps scale");
    for (int j = 128; j < 256; j++) cr_assert(q[j] == 0 && y[j] == 0.0f && !signbit(y[j]));
    cr_assert_eq(q[C + 300], 0x7E, "the outlier is the top of its tile");
    cr_assert_eq(y[C + 300], 3.0e6f, "3e6 = 448·(3e6/448) comes back exactly");
    cr_assert_eq(q[2 * C + 10], 0xFE);
    cr_assert(isfinite(y[2 * C + 10]) && fabsf(y[2 * C + 10] + 1.0e38f) <= 1e32f);
    /* the outlier flushes its tile's small values to (near) zero but leaves the other tiles alone */
    for (int j = 256; j < 384; j++)
        if (j != 300) cr_assert(fabsf(y[C + j]) <= 3.0e6f / 448 * ldexp(1, -9) * 8 || fabsf(x[C + j]) > 1);
    cr_assert(fabsf(sc[3 + 0] - sc[3 + 1]) < sc[3 + 2], "row 1's other tiles keep their own scales");
    /* a NaN poisons its tile's scale, and only that tile */
    x[3 * C + 5] = NAN;
    fp8_quantize(q, sc, x, R, C, 1, FP8_TILE, &s);
    cr_assert(isnan(sc[9]) && isfinite(sc[10]) && isfinite(sc[11]));
    free(x);
}

Test(fp8_scaling, retile_rows_to_cols) {
    const int R = 300, C = 200;
    float *x = varied(R, C, 7);
    fp8_scaling s = {FP8_DEFAULT_EPS, 0};
    size_t n = (size_t)R * C;
    uint8_t *qr = malloc(n), *qc = malloc(n), *qd = malloc(n);
    float *sr = malloc(fp8_scale_count(R, C, 1, FP8_TILE) * sizeof(float));
    float *scol = malloc(fp8_scale_count(R, C, FP8_TILE, 1) * sizeof(float));
    float *sd = malloc(fp8_scale_count(R, C, FP8_TILE, 1) * sizeof(float));
    float *xr = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    fp8_quantize(qr, sr, x, R, C, 1, FP8_TILE, &s);
    fp8_retile_rows_to_cols(qc, scol, qr, sr, R, C, &s);
    fp8_dequantize(xr, qr, sr, R, C, 1, FP8_TILE);
    fp8_quantize(qd, sd, xr, R, C, FP8_TILE, 1, &s); /* the definition: dequantise, quantise along R */
    cr_assert_eq(memcmp(qc, qd, n), 0, "re-tiled codes");
    cr_assert_eq(memcmp(scol, sd, fp8_scale_count(R, C, FP8_TILE, 1) * sizeof(float)), 0, "re-tiled scales");
    check_tiles(xr, R, C, FP8_TILE, 1, &s);
    fp8_dequantize(a, qc, scol, R, C, FP8_TILE, 1);
    fp8_fake_quantize(b, x, R, C, 1, FP8_TILE, &s);
    fp8_fake_quantize(b, b, R, C, FP8_TILE, 1, &s); /* in place */
    cr_assert_eq(memcmp(a, b, n * sizeof(float)), 0, "in-place fake quantisation along the other axis");
    free(x), free(qr), free(qc), free(qd), free(sr), free(scol), free(sd), free(xr), free(a), free(b);
}

/* ---- FP8 linear ---------------------------------------------------------------------------- */

/* dequantize(quantize(x)) through the codes API. */
static float *qdq(const float *x, int R, int C, int tr, int tc, const fp8_scaling *s) {
    size_t n = (size_t)R * C;
    uint8_t *q = malloc(n);
    float *sc = malloc(fp8_scale_count(R, C, tr, tc) * sizeof *sc), *y = malloc(n * sizeof *y);
    cr_assert(q && sc && y);
    fp8_quantize(q, sc, x, R, C, tr, tc, s);
    fp8_dequantize(y, q, sc, R, C, tr, tc);
    free(q), free(sc);
    return y;
}

/* Checks got (M, Nc) − before against Σ_k A[i,k]·B[k,j] in fp64, where A(i,k) = a[i*sai + k*sak]
 * and B(k,j) = b[k*sbk + j*sbj], within γ_{K+2}·Σ|A·B| (+ the rounding of the += onto before). */
static void check_gemm(const char *what, const float *got, const float *before, const float *a, long sai, long sak,
                       const float *b, long sbk, long sbj, int M, int Nc, int K) {
    const double gamma = (K + 2) * ldexp(1, -24);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < Nc; j++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)a[i * sai + k * sak] * b[k * sbk + j * sbj];
                ref += p;
                mag += fabs(p);
            }
            double base = before ? before[(size_t)i * Nc + j] : 0.0;
            double tol = gamma * mag + ldexp(fabs(base) + fabs(ref), -23) + 1e-30;
            double diff = fabs(got[(size_t)i * Nc + j] - base - ref);
            cr_assert(diff <= tol, "%s [%d,%d]: got %.9g, ref %.9g (diff %.3g > tol %.3g)", what, i, j,
                      got[(size_t)i * Nc + j] - base, ref, diff, tol);
        }
}

Test(fp8_linear, three_gemms_match_quantised_fp64_reference) {
    const int N = 150, C = 200, OC = 260; /* partial K groups in all three GEMMs */
    test_rng r;
    test_rng_seed(&r, 11);
    float *x = varied(N, C, 13), *w = malloc((size_t)OC * C * 4), *dy = malloc((size_t)N * OC * 4);
    fill_normal(w, (size_t)OC * C, 0.05f, &r);
    fill_normal(dy, (size_t)N * OC, 1e-3f, &r);
    for (int j = 0; j < OC; j++) dy[(size_t)7 * OC + j] *= 100.0f; /* a row of large gradients */
    fp8_scaling s = {FP8_DEFAULT_EPS, 0};
    float *ws = malloc(fp8_linear_ws_floats(N, C, OC) * sizeof(float));
    float *y = malloc((size_t)N * OC * 4), *y32 = malloc((size_t)N * OC * 4);
    float *dx = malloc((size_t)N * C * 4), *dx0 = malloc((size_t)N * C * 4);
    float *dw = malloc((size_t)OC * C * 4), *dw0 = malloc((size_t)OC * C * 4);
    fill_uniform(dx0, (size_t)N * C, -1, 1, &r);
    fill_uniform(dw0, (size_t)OC * C, -1, 1, &r);
    memcpy(dx, dx0, (size_t)N * C * 4);
    memcpy(dw, dw0, (size_t)OC * C * 4);

    fp8_linear_forward(y, x, w, N, C, OC, &s, ws);
    fp8_linear_backward(dx, dw, dy, x, w, N, C, OC, &s, ws);

    float *xq = qdq(x, N, C, 1, FP8_TILE, &s), *wq = qdq(w, OC, C, FP8_TILE, FP8_TILE, &s);
    float *dyr = qdq(dy, N, OC, 1, FP8_TILE, &s), *dyc = qdq(dy, N, OC, FP8_TILE, 1, &s);
    float *xt = qdq(xq, N, C, FP8_TILE, 1, &s);
    check_gemm("fprop", y, NULL, xq, C, 1, wq, 1, C, N, OC, C);      /* y = xq · wqᵀ */
    check_gemm("dgrad", dx, dx0, dyr, OC, 1, wq, C, 1, N, C, OC);    /* dx += dyr · wq */
    check_gemm("wgrad", dw, dw0, dyc, 1, OC, xt, C, 1, OC, C, N);    /* dw += dycᵀ · xt */

    /* The quantisation is real: the result is not the fp32 linear's, but close to it. */
    linear_forward(y32, x, w, NULL, N, C, OC);
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)N * OC; i++) {
        num += (y[i] - y32[i]) * (double)(y[i] - y32[i]);
        den += y32[i] * (double)y32[i];
    }
    cr_assert(num > 0 && sqrt(num / den) < 0.05, "relative error of fprop vs fp32: %g", sqrt(num / den));

    /* NULL skips a gradient */
    memcpy(dx, dx0, (size_t)N * C * 4);
    fp8_linear_backward(dx, NULL, dy, x, w, N, C, OC, &s, ws);
    check_gemm("dgrad alone", dx, dx0, dyr, OC, 1, wq, C, 1, N, C, OC);
    free(x), free(w), free(dy), free(ws), free(y), free(y32), free(dx), free(dx0), free(dw), free(dw0);
    free(xq), free(wq), free(dyr), free(dyc), free(xt);
}

Test(fp8_linear, power_of_two_scales) {
    const int N = 64, C = 256, OC = 128;
    test_rng r;
    test_rng_seed(&r, 17);
    float *x = varied(N, C, 19), *w = malloc((size_t)OC * C * 4), *y = malloc((size_t)N * OC * 4);
    fill_normal(w, (size_t)OC * C, 0.05f, &r);
    fp8_scaling s = {FP8_DEFAULT_EPS, 1};
    float *ws = malloc(fp8_linear_ws_floats(N, C, OC) * sizeof(float));
    fp8_linear_forward(y, x, w, N, C, OC, &s, ws);
    float *xq = qdq(x, N, C, 1, FP8_TILE, &s), *wq = qdq(w, OC, C, FP8_TILE, FP8_TILE, &s);
    check_gemm("fprop pow2", y, NULL, xq, C, 1, wq, 1, C, N, OC, C);
    free(x), free(w), free(y), free(ws), free(xq), free(wq);
}
