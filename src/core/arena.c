/* arena.c: bump allocation in a chain of blocks. A tape rewinds its arena on every reset, so
 * a training loop reuses the same memory step after step; blocks are only ever added, and
 * each new one is at least as large as everything before it, so a growing recording needs
 * O(log n) allocations and a repeated one needs none. */
#include "core/arena.h"

/* Blocks this large (a long recording's headers, a large batch's values) go on huge pages. */
#define HUGE_BLOCK ((size_t)4 << 20)

struct tg_arena_block {
    tg_arena_block *next;
    size_t size; /* usable bytes after the header */
    void *raw;   /* what the allocator returned (the block is aligned inside it) */
    size_t raw_size;
};

#define BLOCK_HEADER (((sizeof(tg_arena_block) + TG_DATA_ALIGN - 1) / TG_DATA_ALIGN) * TG_DATA_ALIGN)
#define MIN_BLOCK ((size_t)64 * 1024)

static unsigned char *block_base(tg_arena_block *b)
{
    return (unsigned char *)b + BLOCK_HEADER;
}

void tg_arena__init(tg_arena *a)
{
    memset(a, 0, sizeof *a);
}

void tg_arena__free(tg_arena *a)
{
    tg_arena_block *b = a->first;
    while (b) {
        tg_arena_block *next = b->next;
        tg__free(b->raw, b->raw_size);
        b = next;
    }
    tg_arena__init(a);
}

static void enter(tg_arena *a, tg_arena_block *b)
{
    a->cur = b;
    a->ptr = b ? (uintptr_t)block_base(b) : 0;
    a->end = b ? a->ptr + b->size : 0;
}

void tg_arena__rewind(tg_arena *a)
{
    enter(a, a->first);
}

static tg_arena_block *new_block(size_t size)
{
    if (size > SIZE_MAX - BLOCK_HEADER - TG_DATA_ALIGN)
        return NULL;
    size_t raw_size = size + BLOCK_HEADER + TG_DATA_ALIGN;
    void *raw = tg__malloc(raw_size);
    if (!raw)
        return NULL;
    if (raw_size >= HUGE_BLOCK)
        tg__advise_huge_pages(raw, raw_size);
    uintptr_t p = ((uintptr_t)raw + TG_DATA_ALIGN - 1) & ~(uintptr_t)(TG_DATA_ALIGN - 1);
    tg_arena_block *b = (tg_arena_block *)p;
    b->next = NULL;
    b->size = size;
    b->raw = raw;
    b->raw_size = raw_size;
    return b;
}

void *tg_arena__alloc_slow(tg_arena *a, size_t size, size_t align)
{
    TG_ASSERT(align && align <= TG_DATA_ALIGN && (align & (align - 1)) == 0);
    TG_UNUSED(align);
    /* Move on to a kept block that is large enough (blocks after cur were used by an earlier
     * recording before a rewind). Skipped blocks stay in the chain for later. Block bases
     * are TG_DATA_ALIGN-aligned, so any align fits at offset 0. */
    for (tg_arena_block *b = a->cur ? a->cur->next : NULL; b; b = b->next) {
        if (size <= b->size) {
            enter(a, b);
            a->ptr += size;
            return block_base(b);
        }
    }
    size_t want = a->capacity > MIN_BLOCK ? a->capacity : MIN_BLOCK;
    if (want < size)
        want = size;
    tg_arena_block *b = new_block(want);
    if (!b)
        return NULL;
    /* Append at the end of the chain so the order of blocks stays the order of use. */
    if (!a->first) {
        a->first = b;
    } else {
        tg_arena_block *last = a->cur ? a->cur : a->first;
        while (last->next)
            last = last->next;
        last->next = b;
    }
    a->capacity += b->size;
    enter(a, b);
    a->ptr += size;
    return block_base(b);
}
