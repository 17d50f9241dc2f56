/* pool.h: parallel loops over the library's thread pool (pool.c). */
#ifndef TAPEGRAD_CORE_POOL_H
#define TAPEGRAD_CORE_POOL_H

#include "core/core.h"

/* Work on items [begin, end) of a parallel loop. */
typedef void (*tg_range_fn)(void *ctx, size_t begin, size_t end);
/* The part of tg__parallel_for past its one-range test. */
void tg__parallel_run(size_t n, size_t grain, tg_range_fn fn, void *ctx);
/* Runs fn over [0, n) split into contiguous ranges of at least `grain` items, one per thread
 * at most, and returns when all are done. The ranges depend only on n, grain and the thread
 * count (deterministic), whichever thread runs each. With one range (n < 2 * grain, or one
 * thread) fn runs on the calling thread. A call from inside fn, or while another thread's loop
 * holds the pool, runs the same ranges in order on the calling thread. fn must not fail.
 * Inline, so that a loop too small to split costs its caller one compare (n / 2 < grain is
 * n < 2 * grain without overflow) before a direct call of fn, which the compiler may inline. */
static inline void tg__parallel_for(size_t n, size_t grain, tg_range_fn fn, void *ctx)
{
    if (TG_LIKELY(n / 2 < grain)) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    tg__parallel_run(n, grain, fn, ctx);
}
/* The smallest range of a loop that streams a parameter-sized block through memory (an
 * optimizer's step, zeroing a model's gradients), in elements: waking a worker costs tens of
 * microseconds, an element of such a loop about a nanosecond. Loops over the same block share
 * it, so they cut the block into the same ranges, and each range runs on the thread that ran
 * it in the loop before (range 0 on the caller: see pool.c), its part of the block still in
 * that core's cache. */
#define TG_POOL_STREAM_GRAIN ((size_t)1 << 15)
/* Joins every worker and forgets the thread count, as at process start: the next use re-reads
 * TG_NUM_THREADS. Also runs at exit. Not from inside a parallel loop. */
void tg__pool_shutdown(void);
/* Worker threads running now (the calling thread is not one). */
int tg__pool_workers(void);
/* Tests: let only the next n thread creations succeed, as when pthread_create runs out of
 * resources (n < 0: all succeed again). */
void tg__pool_fail_spawn_after(int n);

#endif
