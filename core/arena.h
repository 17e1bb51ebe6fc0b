/* arena.h — one allocation per lifetime, carved by a size table.
 *
 * Parameters, gradients, optimizer state and activations each live in one arena. The owner
 * describes its buffers as a table of slots (name, element count, element size, where to store
 * the pointer); arena_init makes one zeroed, 64-byte-aligned allocation and points every slot
 * into it. Every slot starts on a 64-byte boundary, so SIMD loads and (later) device copies are
 * aligned. A slot with count 0 gets NULL.
 */
#ifndef POSTTRAIN_CORE_ARENA_H
#define POSTTRAIN_CORE_ARENA_H

#include <stddef.h>

#include "core/error.h"

typedef struct arena_slot {
    const char *name; /* for error messages and memory reports */
    void **ptr;       /* receives the slot's address */
    size_t count;     /* elements */
    size_t elem;      /* bytes per element */
} arena_slot;

typedef struct arena {
    void *base;
    size_t bytes;
} arena;

#define ARENA_ALIGN ((size_t)64)

/* Total bytes the table needs (including alignment padding), or 0 on size_t overflow. */
size_t arena_plan_bytes(const arena_slot *slots, int n);
pt_status arena_init(arena *a, const arena_slot *slots, int n, pt_error *err);
void arena_free(arena *a);

#endif
