/* tsan_arena.c: linked into the tests only in ThreadSanitizer builds (TG_TSAN), so that
 * Criterion can start at all. Criterion's runner maps a shared "inheritable arena" at
 * 0x200000000000 + (rand_r() & 0x3fffff) * 16 MiB, trying 10 random places. TSan reserves
 * nearly all of that window for its shadow and metadata and refuses fixed mappings there, so
 * the runner aborts with "Could not initialize inheritable arena" (Criterion issue #274).
 * The only application memory in the window is 0x550000000000-0x568000000000, where TSan
 * places position-independent executables; this rand_r (which replaces the C library's for
 * the test process, and which nothing else in the tests calls) keeps its results in the band
 * that lands there, so the arena finds a free place among the 0x18000 slots. */
#include <stdlib.h>

int rand_r(unsigned int *seed)
{
    enum { FIRST = (0x550000000000 - 0x200000000000) >> 24, SLOTS = 0x18000 };
    *seed = *seed * 1103515245u + 12345u;
    return FIRST + (int)((*seed >> 8) % SLOTS);
}
