/* latent_cache.c — block pool, sharing and copy-on-write (see latent_cache.h). */
#include "rollout/latent_cache.h"

#include <stdlib.h>
#include <string.h>

pt_status latent_cache_init(latent_cache *c, int nlayers, int nblocks, int block_tokens, int kl, int dr,
                            pt_error *err) {
    memset(c, 0, sizeof *c);
    if (nlayers <= 0 || nblocks <= 0 || block_tokens <= 0)
        PT_FAIL(err, PT_ERR_INVALID, "latent cache needs positive sizes (layers %d, blocks %d, block tokens %d)",
                nlayers, nblocks, block_tokens);
    c->nlayers = nlayers;
    c->nblocks = nblocks;
    c->block_tokens = block_tokens;
    c->kl = kl;
    c->dr = dr;
    size_t per = (size_t)nlayers * nblocks * block_tokens;
    arena_slot slots[] = {
        {"cache latents", (void **)&c->c, per * kl, sizeof(float)},
        {"cache rope keys", (void **)&c->kpe, per * dr, sizeof(float)},
        {"cache refcounts", (void **)&c->refcount, (size_t)nblocks, sizeof(int)},
        {"cache free list", (void **)&c->free_list, (size_t)nblocks, sizeof(int)},
    };
    PT_TRY(arena_init(&c->mem, slots, 4, err));
    for (int b = 0; b < nblocks; b++) c->free_list[b] = nblocks - 1 - b;
    c->nfree = nblocks;
    return PT_OK;
}

void latent_cache_free(latent_cache *c) {
    arena_free(&c->mem);
    memset(c, 0, sizeof *c);
}

pt_status cache_seq_init(cache_seq *s, int max_tokens, int block_tokens, pt_error *err) {
    memset(s, 0, sizeof *s);
    s->max_blocks = (max_tokens + block_tokens - 1) / block_tokens;
    s->blocks = malloc((size_t)(s->max_blocks > 0 ? s->max_blocks : 1) * sizeof *s->blocks);
    PT_CHECK_ALLOC(s->blocks, err, (size_t)s->max_blocks * sizeof *s->blocks);
    return PT_OK;
}

void cache_seq_free(cache_seq *s) {
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

int cache_blocks_for(const latent_cache *c, int n) { return (n + c->block_tokens - 1) / c->block_tokens; }

static int block_alloc(latent_cache *c) {
    if (c->nfree == 0) return -1;
    int b = c->free_list[--c->nfree];
    c->refcount[b] = 1;
    int used = c->nblocks - c->nfree;
    if (used > c->peak_used) c->peak_used = used;
    return b;
}

static void block_unref(latent_cache *c, int b) {
    if (--c->refcount[b] == 0) c->free_list[c->nfree++] = b;
}

void cache_seq_release(latent_cache *c, cache_seq *s) {
    for (int i = 0; i < s->nblocks; i++) block_unref(c, s->blocks[i]);
    s->nblocks = 0;
    s->len = 0;
}

void cache_seq_share(latent_cache *c, cache_seq *dst, const cache_seq *src) {
    for (int i = 0; i < src->nblocks; i++) {
        dst->blocks[i] = src->blocks[i];
        c->refcount[src->blocks[i]]++;
    }
    dst->nblocks = src->nblocks;
    dst->len = src->len;
}

/* Copies block b of s into a fresh block (every layer) and points s at the copy. */
static int cow_block(latent_cache *c, cache_seq *s, int i) {
    const int P = c->block_tokens;
    int old = s->blocks[i], nb = block_alloc(c);
    if (nb < 0) return -1;
    for (int l = 0; l < c->nlayers; l++) {
        size_t so = ((size_t)l * c->nblocks + old) * P, sn = ((size_t)l * c->nblocks + nb) * P;
        memcpy(c->c + sn * c->kl, c->c + so * c->kl, (size_t)P * c->kl * sizeof(float));
        memcpy(c->kpe + sn * c->dr, c->kpe + so * c->dr, (size_t)P * c->dr * sizeof(float));
    }
    block_unref(c, old);
    s->blocks[i] = nb;
    return 0;
}

int cache_seq_privatize(latent_cache *c, cache_seq *s, int t) {
    int i = t / c->block_tokens;
    if (i >= s->nblocks) return -1;
    return c->refcount[s->blocks[i]] > 1 ? cow_block(c, s, i) : 0;
}

int cache_seq_reserve(latent_cache *c, cache_seq *s, int n) {
    const int P = c->block_tokens;
    if (n <= 0) return 0;
    /* The block holding token len is written next: copy it if someone else holds it too. */
    if (s->len % P != 0 && c->refcount[s->blocks[s->len / P]] > 1 && cow_block(c, s, s->len / P) != 0) return -1;
    int need = cache_blocks_for(c, s->len + n);
    if (need > s->max_blocks) return -1;
    while (s->nblocks < need) {
        int b = block_alloc(c);
        if (b < 0) return -1;
        s->blocks[s->nblocks++] = b;
    }
    return 0;
}
