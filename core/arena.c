/* arena.c — see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t align_up(size_t x) { return (x + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1); }

size_t arena_plan_bytes(const arena_slot *slots, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (slots[i].elem != 0 && slots[i].count > (SIZE_MAX - ARENA_ALIGN) / slots[i].elem) return 0;
        size_t bytes = align_up(slots[i].count * slots[i].elem);
        if (total > SIZE_MAX - bytes) return 0;
        total += bytes;
    }
    return total;
}

pt_status arena_init(arena *a, const arena_slot *slots, int n, pt_error *err) {
    a->base = NULL;
    a->bytes = 0;
    size_t total = arena_plan_bytes(slots, n);
    int empty = 1;
    for (int i = 0; i < n; i++) empty &= slots[i].count == 0;
    if (total == 0 && !empty) PT_FAIL(err, PT_ERR_INVALID, "arena size overflows size_t; the model or batch is too large");
    if (total > 0) {
        a->base = aligned_alloc(ARENA_ALIGN, total);
        PT_CHECK_ALLOC(a->base, err, total);
        memset(a->base, 0, total);
    }
    a->bytes = total;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *slots[i].ptr = slots[i].count ? (char *)a->base + off : NULL;
        off += align_up(slots[i].count * slots[i].elem);
    }
    return PT_OK;
}

void arena_free(arena *a) {
    free(a->base);
    a->base = NULL;
    a->bytes = 0;
}
