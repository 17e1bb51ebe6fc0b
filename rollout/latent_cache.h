/* latent_cache.h — the MLA latent KV cache in fixed-size blocks, shared between sequences.
 *
 * Per token and layer only what MLA's absorbed decode needs is kept: the normalised latent
 * c = kv_a_layernorm(c_kv) (kv_lora floats) and the roped shared key k_pe (rope floats) — for
 * DeepSeek-V3 576 floats instead of 40,960 for full keys and values. Tokens live in blocks of
 * `block_tokens`; a sequence owns a table of block ids. Blocks are reference-counted, so the G
 * samples of a group point at the blocks of their shared prompt without copying them; a
 * sample that must write into a shared, partially filled block first takes a private copy of
 * that one block (copy-on-write). Capacity is fixed at init: the engine reserves blocks before
 * admitting work, so allocation inside a step never fails.
 */
#ifndef POSTTRAIN_ROLLOUT_LATENT_CACHE_H
#define POSTTRAIN_ROLLOUT_LATENT_CACHE_H

#include <stddef.h>

#include "core/arena.h"
#include "core/error.h"

typedef struct latent_cache {
    int nlayers;      /* layers with attention (main stack, then MTP modules) */
    int nblocks;      /* capacity in blocks */
    int block_tokens; /* P */
    int kl, dr;       /* latent and rope widths */
    float *c;         /* (nlayers, nblocks, P, kl) */
    float *kpe;       /* (nlayers, nblocks, P, dr) */
    int *refcount;    /* (nblocks) */
    int *free_list;   /* (nblocks) stack of free block ids */
    int nfree;
    int peak_used;    /* most blocks in use at once */
    arena mem;
} latent_cache;

/* A sequence's view: which blocks hold its tokens 0..len-1. */
typedef struct cache_seq {
    int *blocks; /* (max_blocks) */
    int nblocks;
    int max_blocks;
    int len;     /* tokens written */
} cache_seq;

pt_status latent_cache_init(latent_cache *c, int nlayers, int nblocks, int block_tokens, int kl, int dr,
                            pt_error *err);
void latent_cache_free(latent_cache *c);

pt_status cache_seq_init(cache_seq *s, int max_tokens, int block_tokens, pt_error *err);
void cache_seq_free(cache_seq *s);
/* Drops every block reference of s (blocks return to the pool at refcount 0); s becomes empty. */
void cache_seq_release(latent_cache *c, cache_seq *s);
/* dst (=) a second reference to src's blocks and length (dst must be empty). */
void cache_seq_share(latent_cache *c, cache_seq *dst, const cache_seq *src);
/* Makes room for tokens len..len+n-1: appends blocks, and copies a shared last block before it is
 * written (copy-on-write). Returns -1 when the pool is exhausted (the engine's reservation makes
 * that a bug). */
int cache_seq_reserve(latent_cache *c, cache_seq *s, int n);
/* Makes the block holding token t private to s (copy-on-write before rewriting a shared entry,
 * e.g. a layer the shared prefix never filled). Returns -1 when the pool is exhausted. */
int cache_seq_privatize(latent_cache *c, cache_seq *s, int t);
/* Blocks needed for a sequence of n tokens. */
int cache_blocks_for(const latent_cache *c, int n);

/* Where token t of a sequence lives in layer l: pointers to its latent and rope key. */
static inline float *cache_c(const latent_cache *c, const cache_seq *s, int l, int t) {
    size_t blk = (size_t)s->blocks[t / c->block_tokens];
    return c->c + (((size_t)l * c->nblocks + blk) * c->block_tokens + (size_t)(t % c->block_tokens)) * c->kl;
}
static inline float *cache_kpe(const latent_cache *c, const cache_seq *s, int l, int t) {
    size_t blk = (size_t)s->blocks[t / c->block_tokens];
    return c->kpe + (((size_t)l * c->nblocks + blk) * c->block_tokens + (size_t)(t % c->block_tokens)) * c->dr;
}

#endif
