/* rng.h — counter-based random numbers (Philox4x32-10) in independent, addressable streams.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) maps a
 * 128-bit counter and a 64-bit key to 128 random bits through 10 rounds of multiply-xor; the
 * outputs for different counters are independent for all practical purposes. posttrain uses
 *   key     = the run seed (64 bits),
 *   counter = [position (64 bits) | stream (64 bits)],
 * where the stream is a hash of the ids that name a consumer — e.g. (step, prompt, sample) for a
 * rollout, (layer, tensor) for initialisation. A completion's random numbers are therefore a pure
 * function of (seed, its ids, position): they never depend on batch layout, thread count or
 * process count. An rng is a plain value (no pointers), so checkpoints save it with memcpy.
 */
#ifndef POSTTRAIN_CORE_RNG_H
#define POSTTRAIN_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
    uint64_t seed;     /* Philox key */
    uint64_t stream;   /* high half of the counter */
    uint64_t position; /* low half of the counter: index of the next block */
    uint32_t block[4]; /* the current block's outputs */
    int used;          /* words of block already handed out (4 = none left) */
} rng;

/* One Philox4x32-10 block: out = philox(ctr, key). */
void philox4x32_10(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* A stream id from a tuple of ids (order matters); distinct tuples give distinct streams except
 * with probability ~2^-64 per pair. */
uint64_t rng_stream_id(const uint64_t *ids, int n);

void rng_init(rng *r, uint64_t seed, uint64_t stream);
/* Jump to block `position` of the stream (each block holds four 32-bit words). */
void rng_seek(rng *r, uint64_t position);
uint32_t rng_u32(rng *r);
uint64_t rng_u64(rng *r);
/* Uniform in [0, 1) with 24 random bits (every value exactly representable in float). */
float rng_uniform(rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform_double(rng *r);
/* Standard normal by Box-Muller on two fresh 53-bit uniforms. */
double rng_normal(rng *r);
void rng_fill_normal(rng *r, float *x, size_t n, float mean, float std);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t rng_below(rng *r, uint32_t n);

#endif
