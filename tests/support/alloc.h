/* alloc.h: a counting, optionally failing allocator hook for the tests, installed through
 * tg_set_allocator.
 *
 * It forwards to malloc/realloc/free and keeps books: calls of each kind, live blocks and
 * live bytes (from the osize/nsize the library passes, so a wrong size shows up as bytes that
 * never return to zero), and can make the Nth allocation or reallocation fail, or every one
 * above a size. support/oom.h drives a scenario through every failing allocation.
 *
 * The hook is process-global and Criterion runs every test in its own process: install it at
 * the start of a test (ts_alloc_install) and remove it at the end (ts_alloc_uninstall), after
 * every object made under it is freed. Nothing here uses Criterion, so programs outside it
 * (tests/dist_worker.c) can keep the same books. */
#ifndef TAPEGRAD_TESTS_SUPPORT_ALLOC_H
#define TAPEGRAD_TESTS_SUPPORT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ts_alloc_books {
    size_t calls;    /* every call: allocations, reallocations and frees */
    size_t allocs;   /* allocation and reallocation attempts (nsize > 0) */
    size_t frees;    /* frees (nsize == 0, ptr != NULL) */
    size_t fail_at;  /* fail attempt number fail_at (1-based, counted from arming); 0: never */
    size_t armed_at; /* `allocs` when the failure countdown was armed */
    size_t failures; /* attempts refused so far */
    size_t max_size; /* refuse any single request above this many bytes; 0: no limit */
    long long live;  /* blocks outstanding */
    long long bytes; /* bytes outstanding, by the library's own osize/nsize */
    int reuse;       /* ts_alloc_reuse_next_free: 1 armed, 2 a block kept for the next fit */
    void *kept;      /* the block kept (reuse 2), and its size */
    size_t kept_size;
} ts_alloc_books;

/* The hook's books; tests read them and may set max_size. */
extern ts_alloc_books ts_alloc;

/* Installs the hook with clean books. */
void ts_alloc_install(void);

/* Restores the default allocator. */
void ts_alloc_uninstall(void);

/* Whether the hook is the library's allocator now. */
bool ts_alloc_installed(void);

/* Makes the n-th allocation attempt from now on fail (n >= 1); 0 disarms. */
void ts_alloc_fail_at(size_t n);

/* Attempts made since ts_alloc_fail_at was last called. */
size_t ts_alloc_attempts(void);

/* Gives the next block the library frees back to its next allocation that fits in it, as
 * glibc's allocator does with a block just freed (AddressSanitizer keeps freed memory out of
 * reuse): a leaf made right after a leaf is freed then gets the freed one's address. */
void ts_alloc_reuse_next_free(void);

#endif
