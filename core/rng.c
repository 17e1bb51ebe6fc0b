/* rng.c — Philox4x32-10 and the stream helpers of rng.h.
 *
 * Round function (Random123): with (hi0, lo0) = M0·c0 and (hi1, lo1) = M1·c2 as 64-bit products,
 * c ← (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0); the key is bumped by the Weyl constants
 * (W0, W1) between rounds. Checked against Random123's known-answer vectors in tests/test_rng.c.
 */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0;
        c1 = (uint32_t)p1;
        c2 = n2;
        c3 = (uint32_t)p0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* SplitMix64's finaliser: a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rng_stream_id(const uint64_t *ids, int n) {
    uint64_t h = 0x6A09E667F3BCC909ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) h = mix64(h ^ mix64(ids[i] + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)));
    return h;
}

void rng_init(rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->position = 0;
    r->used = 4;
    r->block[0] = r->block[1] = r->block[2] = r->block[3] = 0;
}

void rng_seek(rng *r, uint64_t position) {
    r->position = position;
    r->used = 4;
}

static void rng_refill(rng *r) {
    uint32_t ctr[4] = {(uint32_t)r->position, (uint32_t)(r->position >> 32), (uint32_t)r->stream,
                       (uint32_t)(r->stream >> 32)};
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    philox4x32_10(r->block, ctr, key);
    r->position++;
    r->used = 0;
}

uint32_t rng_u32(rng *r) {
    if (r->used >= 4) rng_refill(r);
    return r->block[r->used++];
}

uint64_t rng_u64(rng *r) {
    uint64_t lo = rng_u32(r);
    return lo | ((uint64_t)rng_u32(r) << 32);
}

float rng_uniform(rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double rng_uniform_double(rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double rng_normal(rng *r) {
    double u1 = 1.0 - rng_uniform_double(r); /* (0, 1]: log is finite */
    double u2 = rng_uniform_double(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void rng_fill_normal(rng *r, float *x, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)rng_normal(r);
}

uint32_t rng_below(rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection of the biased low region. */
    uint64_t m = (uint64_t)rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
