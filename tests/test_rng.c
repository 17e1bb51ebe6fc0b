/* test_rng.c — Philox4x32-10 against Random123's known answers; stream properties; arena; timer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/rng.h"
#include "core/timer.h"

/* Random123 tests/kat_vectors, "philox4x32 10" lines: counter, key, expected output. */
Test(rng, philox_known_answers) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        philox4x32_10(out, kat[i], kat[i] + 4);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(out[j], kat[i][6 + j], "vector %d word %d: got %08x want %08x", i, j, out[j], kat[i][6 + j]);
    }
}

Test(rng, stream_is_a_pure_function_of_seed_ids_and_position) {
    uint64_t ids_a[3] = {7, 3, 1}, ids_b[3] = {7, 3, 2}, ids_c[3] = {7, 1, 3};
    uint64_t sa = rng_stream_id(ids_a, 3), sb = rng_stream_id(ids_b, 3), sc = rng_stream_id(ids_c, 3);
    cr_assert_neq(sa, sb);
    cr_assert_neq(sa, sc, "order of ids must matter");
    cr_assert_eq(sa, rng_stream_id(ids_a, 3));
    cr_assert_neq(rng_stream_id(ids_a, 2), rng_stream_id(ids_a, 3));

    /* Interleaving other streams does not change a stream's sequence. */
    rng r1, r2, other;
    rng_init(&r1, 42, sa);
    uint32_t alone[64];
    for (int i = 0; i < 64; i++) alone[i] = rng_u32(&r1);
    rng_init(&r2, 42, sa);
    rng_init(&other, 42, sb);
    for (int i = 0; i < 64; i++) {
        for (int j = 0; j < i % 5; j++) rng_u32(&other);
        cr_assert_eq(rng_u32(&r2), alone[i]);
    }
    /* Seeking to a block gives the same words as walking there. */
    rng_seek(&r2, 5);
    for (int i = 0; i < 8; i++) cr_assert_eq(rng_u32(&r2), alone[20 + i]);
    /* A plain copy of the state continues identically (checkpoints memcpy it). */
    rng copy;
    memcpy(&copy, &r2, sizeof copy);
    for (int i = 0; i < 9; i++) cr_assert_eq(rng_u32(&copy), rng_u32(&r2));
    /* Different seeds differ. */
    rng r3;
    rng_init(&r3, 43, sa);
    int same = 0;
    for (int i = 0; i < 64; i++) same += rng_u32(&r3) == alone[i];
    cr_assert_lt(same, 2);
}

Test(rng, distributions_have_the_right_moments) {
    rng r;
    rng_init(&r, 1234, 99);
    const int n = 200000;
    double s = 0, s2 = 0, u = 0, umin = 1, umax = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
        float f = rng_uniform(&r);
        cr_assert(f >= 0.0f && f < 1.0f);
        u += f;
        if (f < umin) umin = f;
        if (f > umax) umax = f;
    }
    /* Standard errors: mean 1/sqrt(n) = 0.0022, variance sqrt(2/n) = 0.0032; allow 5 sigma. */
    cr_assert_lt(fabs(s / n), 0.011, "normal mean %g", s / n);
    cr_assert_lt(fabs(s2 / n - 1.0), 0.016, "normal variance %g", s2 / n);
    cr_assert_lt(fabs(u / n - 0.5), 5 * 0.2887 / sqrt(n), "uniform mean %g", u / n);
    cr_assert_lt(umin, 1e-3);
    cr_assert_gt(umax, 1 - 1e-3);

    /* rng_below: chi-square over 7 bins, 70000 draws; 6 dof, p=0.001 critical value 22.46. */
    int bins[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t k = rng_below(&r, 7);
        cr_assert_lt(k, 7u);
        bins[k]++;
    }
    double chi = 0;
    for (int k = 0; k < 7; k++) chi += (bins[k] - 10000.0) * (bins[k] - 10000.0) / 10000.0;
    cr_assert_lt(chi, 22.46, "chi-square %g", chi);
}

Test(arena, carves_aligned_zeroed_disjoint_slots) {
    float *a, *b;
    double *c;
    int *empty;
    arena_slot slots[] = {
        {"a", (void **)&a, 3, sizeof(float)},
        {"b", (void **)&b, 100, sizeof(float)},
        {"empty", (void **)&empty, 0, sizeof(int)},
        {"c", (void **)&c, 7, sizeof(double)},
    };
    arena ar;
    pt_error err = {0};
    cr_assert_eq(arena_init(&ar, slots, 4, &err), PT_OK, "%s", err.msg);
    cr_assert_eq(ar.bytes, arena_plan_bytes(slots, 4));
    cr_assert_eq(ar.bytes, 64 + 448 + 64);
    cr_assert_null(empty);
    cr_assert_eq((uintptr_t)a % 64, 0);
    cr_assert_eq((uintptr_t)b % 64, 0);
    cr_assert_eq((uintptr_t)c % 64, 0);
    cr_assert((char *)b >= (char *)(a + 3) && (char *)c >= (char *)(b + 100));
    cr_assert((char *)(c + 7) <= (char *)ar.base + ar.bytes);
    for (int i = 0; i < 100; i++) cr_assert_eq(b[i], 0.0f);
    arena_free(&ar);
    cr_assert_null(ar.base);

    float *huge;
    arena_slot bad[] = {{"huge", (void **)&huge, SIZE_MAX / 2, sizeof(float)}};
    cr_assert_eq(arena_init(&ar, bad, 1, &err), PT_ERR_INVALID);
    cr_assert(strstr(err.msg, "overflow"), "%s", err.msg);
}

Test(timer, stopwatch_accumulates_laps) {
    stopwatch sw;
    stopwatch_reset(&sw);
    cr_assert_eq(stopwatch_stop(&sw), 0.0, "stopping a stopped watch adds nothing");
    double t0 = timer_now();
    stopwatch_start(&sw);
    volatile double x = 0;
    for (int i = 0; i < 100000; i++) x += i;
    double lap = stopwatch_stop(&sw);
    cr_assert_geq(lap, 0.0);
    cr_assert_leq(lap, timer_now() - t0);
    stopwatch_start(&sw);
    stopwatch_stop(&sw);
    cr_assert_eq(sw.laps, 2);
    cr_assert_geq(sw.total, lap);
}
