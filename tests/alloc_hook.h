/* alloc_hook.h: a counting, optionally failing allocator hook for the tests (header only).
 *
 * It forwards to malloc/realloc/free and keeps books: calls of each kind, live blocks and
 * live bytes (from the osize/nsize the library passes, so a wrong size shows up as bytes
 * that never return to zero), and can make the Nth allocation or reallocation fail.
 *
 * The hook is process-global and Criterion runs every test in its own process: install it
 * at the start of a test (th_install) and remove it at the end (th_uninstall), after every
 * object made under it is freed. */
#ifndef TAPEGRAD_TESTS_ALLOC_HOOK_H
#define TAPEGRAD_TESTS_ALLOC_HOOK_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct th_alloc {
    size_t calls;    /* every call: allocations, reallocations and frees */
    size_t allocs;   /* allocation and reallocation attempts (nsize > 0) */
    size_t frees;    /* frees (nsize == 0, ptr != NULL) */
    size_t fail_at;  /* fail attempt number fail_at (1-based, counted from arming); 0: never */
    size_t armed_at; /* `allocs` when the failure countdown was armed */
    size_t failures; /* attempts refused so far */
    size_t max_size; /* refuse any single request above this many bytes; 0: no limit */
    long long live;  /* blocks outstanding */
    long long bytes; /* bytes outstanding, by the library's own osize/nsize */
} th_alloc;

static th_alloc th_state;

static void *th_hook(void *ud, void *ptr, size_t osize, size_t nsize)
{
    th_alloc *a = ud;
    a->calls++;
    if (nsize == 0) {
        if (ptr) {
            a->frees++;
            a->live--;
            a->bytes -= (long long)osize;
            free(ptr);
        }
        return NULL;
    }
    a->allocs++;
    bool fail = (a->fail_at && a->allocs - a->armed_at == a->fail_at) ||
                (a->max_size && nsize > a->max_size);
    if (fail) {
        a->failures++;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    if (!ptr) {
        a->live++;
        a->bytes += (long long)nsize;
    } else {
        a->bytes += (long long)nsize - (long long)osize;
    }
    return p;
}

/* Installs the hook with clean books. */
static inline void th_install(void)
{
    memset(&th_state, 0, sizeof th_state);
    tg_set_allocator(th_hook, &th_state);
}

/* Restores the default allocator. */
static inline void th_uninstall(void)
{
    tg_set_allocator(NULL, NULL);
}

/* Makes the n-th allocation attempt from now on fail (n >= 1); 0 disarms. */
static inline void th_fail_at(size_t n)
{
    th_state.fail_at = n;
    th_state.armed_at = th_state.allocs;
}

/* Attempts made since th_fail_at was last called. */
static inline size_t th_attempts_since_armed(void)
{
    return th_state.allocs - th_state.armed_at;
}

#endif
