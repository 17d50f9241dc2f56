/* arena.h: bump allocation in a chain of blocks (arena.c). The tape keeps its node headers,
 * values and gradients in arenas, so a recording is rewound in O(1) and the next one reuses
 * the same memory. */
#ifndef TAPEGRAD_CORE_ARENA_H
#define TAPEGRAD_CORE_ARENA_H

#include "core/core.h"

/* Rewinding keeps every block, so a recording that fits what an earlier one used allocates
 * nothing. Memory never moves: pointers stay valid until the next rewind. */
typedef struct tg_arena_block tg_arena_block;
typedef struct tg_arena {
    tg_arena_block *first; /* the chain, kept across rewinds */
    tg_arena_block *cur;   /* the block being filled */
    uintptr_t ptr, end;    /* free space left in cur */
    size_t capacity;       /* sum of block sizes */
} tg_arena;

void tg_arena__init(tg_arena *a);
void tg_arena__free(tg_arena *a);
void tg_arena__rewind(tg_arena *a);
/* The slow path of tg_arena__alloc: moves to the next kept block or adds one. */
void *tg_arena__alloc_slow(tg_arena *a, size_t size, size_t align);

/* `size` bytes aligned to `align` (a power of two <= 64) from the block being filled, or NULL
 * when it has no room left (then tg_arena__alloc moves on). Inline, an add and a compare: what
 * a recording's fast path takes without ever making a call. The bump pointer never passes the
 * end, so with align 1 (the tape's node headers) the room left is one subtraction; and memory
 * handed out here lies in a block, never at address 0 (ptr is 0 only in an empty arena, whose
 * end is 0 too), which lets callers drop their NULL test. */
static inline __attribute__((always_inline)) void *tg_arena__alloc_here(tg_arena *a, size_t size,
                                                                        size_t align)
{
    uintptr_t p = (a->ptr + (align - 1)) & ~(uintptr_t)(align - 1);
    if (__builtin_expect((align == 1 || p <= a->end) && size <= a->end - p, 1)) {
        if (size && !p)
            __builtin_unreachable();
        a->ptr = p + size;
        return (void *)p;
    }
    return NULL;
}

/* `size` bytes aligned to `align` (a power of two <= 64), or NULL when out of memory. Inline:
 * every recorded node makes two of these, so the common case is tg_arena__alloc_here's. */
static inline __attribute__((always_inline)) void *tg_arena__alloc(tg_arena *a, size_t size,
                                                                   size_t align)
{
    void *p = tg_arena__alloc_here(a, size, align);
    return TG_LIKELY(p != NULL) ? p : tg_arena__alloc_slow(a, size, align);
}

#endif
