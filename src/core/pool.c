/* pool.c: the thread count and tg__parallel_for. This version runs every loop on the calling
 * thread; the persistent worker pool replaces the body of tg__parallel_for. */
#include "internal.h"

#include <stdlib.h>

static int thread_count; /* 0 until first asked for */

static int default_thread_count(void)
{
    const char *env = getenv("TG_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 1024)
            return (int)n;
    }
    return 1;
}

tg_status tg_set_num_threads(int n)
{
    if (n < 1)
        return tg__error(TG_EINVAL, "tg_set_num_threads: %d threads (at least 1)", n);
    thread_count = n;
    return TG_OK;
}

int tg_get_num_threads(void)
{
    if (thread_count == 0)
        thread_count = default_thread_count();
    return thread_count;
}

void tg__parallel_for(size_t n, size_t grain, tg_range_fn fn, void *ctx)
{
    (void)grain;
    if (n > 0)
        fn(ctx, 0, n);
}
