/* test_pool.c: the thread pool behind tg__parallel_for: every index covered exactly once, in
 * ranges that depend only on (n, grain, thread count); resizing; nested and concurrent calls;
 * thread-creation failure; TG_NUM_THREADS; idle workers that sleep; fork; jobs back to back
 * that never mix; range 0 on the calling thread. */
#define _GNU_SOURCE /* sched_getaffinity, sched_setaffinity */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/pool.h"

#include "support/helpers.h"

#define MAX_N 5000
#define MAX_RANGES 64

/* What one loop did: how often each index was visited, and the ranges fn saw. */
typedef struct record {
    atomic_int hits[MAX_N];
    pthread_mutex_t mu;
    size_t nranges;
    size_t begin[MAX_RANGES], end[MAX_RANGES];
    pthread_t thread[MAX_RANGES];
} record;

static record rec;

static void record_reset(void)
{
    for (size_t i = 0; i < MAX_N; i++)
        atomic_store(&rec.hits[i], 0);
    pthread_mutex_init(&rec.mu, NULL);
    rec.nranges = 0;
}

static void record_range(void *ctx, size_t begin, size_t end)
{
    record *r = ctx;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&r->hits[i], 1);
    pthread_mutex_lock(&r->mu);
    if (r->nranges < MAX_RANGES) {
        r->begin[r->nranges] = begin;
        r->end[r->nranges] = end;
        r->thread[r->nranges] = pthread_self();
    }
    r->nranges++;
    pthread_mutex_unlock(&r->mu);
}

/* The ranges sorted by their start (threads may finish them in any order). */
static void sort_ranges(record *r)
{
    for (size_t i = 1; i < r->nranges && i < MAX_RANGES; i++)
        for (size_t j = i; j > 0 && r->begin[j - 1] > r->begin[j]; j--) {
            size_t b = r->begin[j], e = r->end[j];
            pthread_t t = r->thread[j];
            r->begin[j] = r->begin[j - 1], r->end[j] = r->end[j - 1];
            r->thread[j] = r->thread[j - 1];
            r->begin[j - 1] = b, r->end[j - 1] = e, r->thread[j - 1] = t;
        }
}

/* The number of ranges the contract implies: one per thread at most, each >= grain. */
static size_t expected_ranges(size_t n, size_t grain, int threads)
{
    if (n == 0)
        return 0;
    size_t g = grain ? grain : 1;
    size_t most = n / g;
    size_t r = (size_t)threads < most ? (size_t)threads : most;
    return r ? r : 1;
}

/* Runs one loop and checks coverage and range shapes; leaves the sorted ranges in rec. */
static void check_loop(size_t n, size_t grain, int threads)
{
    record_reset();
    tg__parallel_for(n, grain, record_range, &rec);
    size_t want = expected_ranges(n, grain, threads);
    cr_assert_eq(rec.nranges, want, "n=%zu grain=%zu threads=%d: %zu ranges, want %zu", n, grain,
                 threads, rec.nranges, want);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&rec.hits[i]), 1,
                     "n=%zu grain=%zu threads=%d: index %zu run %d times", n, grain, threads, i,
                     atomic_load(&rec.hits[i]));
    for (size_t i = n; i < MAX_N; i++)
        cr_assert_eq(atomic_load(&rec.hits[i]), 0, "n=%zu: index %zu beyond n was run", n, i);
    sort_ranges(&rec);
    size_t at = 0;
    size_t smallest = SIZE_MAX, largest = 0;
    for (size_t k = 0; k < rec.nranges; k++) {
        cr_assert_eq(rec.begin[k], at, "n=%zu grain=%zu threads=%d: range %zu starts at %zu", n,
                     grain, threads, k, rec.begin[k]);
        cr_assert_gt(rec.end[k], rec.begin[k], "n=%zu: empty range %zu", n, k);
        size_t len = rec.end[k] - rec.begin[k];
        smallest = len < smallest ? len : smallest;
        largest = len > largest ? len : largest;
        at = rec.end[k];
    }
    cr_assert_eq(at, n, "n=%zu grain=%zu threads=%d: ranges end at %zu", n, grain, threads, at);
    if (rec.nranges > 1) {
        cr_assert_geq(smallest, grain, "n=%zu grain=%zu threads=%d: a range of %zu items", n, grain,
                      threads, smallest);
        cr_assert_leq(largest - smallest, 1, "n=%zu threads=%d: ranges of %zu and %zu items", n,
                      threads, smallest, largest);
    }
    /* Each range ran on one thread: at most `threads` distinct ones took part. */
    size_t distinct = 0;
    for (size_t k = 0; k < rec.nranges; k++) {
        bool seen = false;
        for (size_t j = 0; j < k; j++)
            seen = seen || pthread_equal(rec.thread[j], rec.thread[k]);
        distinct += !seen;
    }
    cr_assert_leq(distinct, (size_t)threads, "threads=%d but %zu took part", threads, distinct);
}

static const size_t sizes[] = {0,  1,  2,   3,   5,    7,    8,    10,   63,
                               64, 65, 100, 127, 1000, 1023, 4097, MAX_N};
static const size_t grains[] = {0, 1, 2, 3, 7, 64, 100, 1000, 4096, SIZE_MAX};
static const int thread_counts[] = {1, 2, 3, 4, 7, 16, 64};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

Test(pool, every_index_once)
{
    for (size_t t = 0; t < COUNT(thread_counts); t++) {
        cr_assert_eq(tg_set_num_threads(thread_counts[t]), TG_OK);
        cr_assert_eq(tg_get_num_threads(), thread_counts[t]);
        for (size_t i = 0; i < COUNT(sizes); i++)
            for (size_t g = 0; g < COUNT(grains); g++)
                check_loop(sizes[i], grains[g], thread_counts[t]);
    }
}

/* One loop with several ranges starts the workers; a single range never does. */
Test(pool, started_lazily)
{
    cr_assert_eq(tg_set_num_threads(4), TG_OK);
    check_loop(100, 100, 4);
    check_loop(199, 100, 4);
    cr_assert_eq(tg__pool_workers(), 0, "a one-range loop started workers");
    check_loop(1000, 10, 4);
    cr_assert_eq(tg__pool_workers(), 3);
}

/* A float sum over ranges, partial sums combined in range order: the bits depend on the
 * split only, so they must repeat exactly. */
typedef struct sum_ctx {
    const double *x;
    double partial[MAX_RANGES];
    size_t start[MAX_RANGES];
    atomic_int used;
} sum_ctx;

static void sum_range(void *ctx, size_t begin, size_t end)
{
    sum_ctx *c = ctx;
    double s = 0.0;
    for (size_t i = begin; i < end; i++)
        s += c->x[i] * (1.0 + 1e-3 * (double)(i % 7));
    int k = atomic_fetch_add(&c->used, 1);
    c->partial[k] = s;
    c->start[k] = begin;
}

static double ordered_sum(const double *x, size_t n, size_t grain)
{
    sum_ctx c = {.x = x};
    atomic_init(&c.used, 0);
    tg__parallel_for(n, grain, sum_range, &c);
    int used = atomic_load(&c.used);
    /* Selection by start: ranges chain from 0 to n whatever order they finished in. */
    double total = 0.0;
    size_t at = 0;
    for (int done = 0; done < used; done++) {
        int k = 0;
        while (k < used && c.start[k] != at)
            k++;
        cr_assert_lt(k, used, "no range starts at %zu", at);
        total += c.partial[k];
        size_t q = n / (size_t)used, rem = n % (size_t)used;
        at += q + ((size_t)done < rem ? 1 : 0);
    }
    cr_assert_eq(at, n, "partial sums did not chain");
    return total;
}

Test(pool, deterministic_split)
{
    enum { N = 4099 };
    static double x[N];
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (size_t i = 0; i < N; i++)
        x[i] = tg_rng_normal(&rng) * 1e3;
    for (int threads = 1; threads <= 5; threads++) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        /* The split itself repeats. */
        check_loop(N, 10, threads);
        size_t nr = rec.nranges, b0[MAX_RANGES], e0[MAX_RANGES];
        memcpy(b0, rec.begin, sizeof b0);
        memcpy(e0, rec.end, sizeof e0);
        double first = ordered_sum(x, N, 10);
        for (int rep = 0; rep < 50; rep++) {
            check_loop(N, 10, threads);
            cr_assert_eq(rec.nranges, nr);
            cr_assert_arr_eq(rec.begin, b0, nr * sizeof(size_t), "threads=%d: split moved",
                             threads);
            cr_assert_arr_eq(rec.end, e0, nr * sizeof(size_t), "threads=%d: split moved", threads);
            double again = ordered_sum(x, N, 10);
            cr_assert(memcmp(&again, &first, sizeof first) == 0, "threads=%d: sum %.17g then %.17g",
                      threads, first, again);
        }
    }
}

Test(pool, resize_between_calls)
{
    static const int counts[] = {4, 2, 6, 1, 3, 3, 8, 2, 1, 5};
    for (size_t k = 0; k < COUNT(counts); k++) {
        int t = counts[k];
        cr_assert_eq(tg_set_num_threads(t), TG_OK);
        /* Shrinking joins the surplus at once; growing waits for the next loop. */
        cr_assert_leq(tg__pool_workers(), t - 1, "after set %d: %d workers", t, tg__pool_workers());
        check_loop(MAX_N, 1, t);
        cr_assert_eq(tg__pool_workers(), t - 1, "after a loop with %d threads", t);
        check_loop(1000, 7, t);
    }
    tg__pool_shutdown();
    cr_assert_eq(tg__pool_workers(), 0);
    cr_assert_eq(tg_set_num_threads(3), TG_OK);
    check_loop(MAX_N, 1, 3);
    cr_assert_eq(tg__pool_workers(), 2, "the pool restarts after a shutdown");
}

/* Nested loops: the inner one runs on the thread that runs the outer range, with the same
 * ranges it would have on its own. */
typedef struct nest_ctx {
    atomic_int hits[64][200];
    atomic_int wrong_thread;
    atomic_int inner_ranges;
} nest_ctx;

typedef struct inner_ctx {
    nest_ctx *c;
    size_t row;
    pthread_t owner;
} inner_ctx;

static void inner_range(void *ctx, size_t begin, size_t end)
{
    inner_ctx *ic = ctx;
    if (!pthread_equal(ic->owner, pthread_self()))
        atomic_fetch_add(&ic->c->wrong_thread, 1);
    atomic_fetch_add(&ic->c->inner_ranges, 1);
    for (size_t j = begin; j < end; j++)
        atomic_fetch_add(&ic->c->hits[ic->row][j], 1);
}

static void outer_range(void *ctx, size_t begin, size_t end)
{
    for (size_t row = begin; row < end; row++) {
        inner_ctx ic = {.c = ctx, .row = row, .owner = pthread_self()};
        tg__parallel_for(200, 10, inner_range, &ic);
    }
}

Test(pool, nested_calls_run_in_place)
{
    static nest_ctx c;
    for (int threads = 1; threads <= 4; threads++) {
        memset(&c, 0, sizeof c);
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        tg__parallel_for(64, 1, outer_range, &c);
        for (size_t i = 0; i < 64; i++)
            for (size_t j = 0; j < 200; j++)
                cr_assert_eq(atomic_load(&c.hits[i][j]), 1, "threads=%d: (%zu, %zu) run %d times",
                             threads, i, j, atomic_load(&c.hits[i][j]));
        cr_assert_eq(atomic_load(&c.wrong_thread), 0, "an inner range left its thread");
        cr_assert_eq(atomic_load(&c.inner_ranges), 64 * (int)expected_ranges(200, 10, threads),
                     "threads=%d: nested calls changed the split", threads);
    }
}

/* Jobs posted back to back, each different in every field (function, context, size, range
 * count: 2 and 4): a worker still polling after one takes the next without the pool's mutex,
 * and must never run a range with one job's function and another's context, bounds or range
 * count. A mix of function, context or bounds fails the assertions below; a mix of range
 * counts makes a job's finished ranges overshoot its count, which the pool's own assertion
 * stops in builds with assertions (else the loop hangs until ctest's timeout). Tiny ranges, so
 * the caller often ends a job alone while a worker is reading it. */
typedef struct tagged {
    unsigned tag;
    size_t n;
    atomic_int hits[64];
    atomic_int bad;
} tagged;

static void tagged_range(tagged *t, unsigned tag, size_t begin, size_t end)
{
    if (t->tag != tag || end > t->n || begin >= end)
        atomic_fetch_add(&t->bad, 1);
    for (size_t i = begin; i < end && i < 64; i++)
        atomic_fetch_add(&t->hits[i], 1);
}
static void range_a(void *ctx, size_t begin, size_t end)
{
    tagged_range(ctx, 0xA, begin, end);
}
static void range_b(void *ctx, size_t begin, size_t end)
{
    tagged_range(ctx, 0xB, begin, end);
}

Test(pool, back_to_back_jobs_never_mix)
{
    static tagged a = {.tag = 0xA, .n = 2}, b = {.tag = 0xB, .n = 64};
    cr_assert_eq(tg_set_num_threads(4), TG_OK); /* a: 2 ranges, b: 4 */
    const int loops = 20000;
    for (int k = 0; k < loops; k++) {
        tg__parallel_for(a.n, 1, range_a, &a);
        tg__parallel_for(b.n, 1, range_b, &b);
    }
    cr_assert_eq(atomic_load(&a.bad) + atomic_load(&b.bad), 0, "%d ranges ran with a mixed job",
                 atomic_load(&a.bad) + atomic_load(&b.bad));
    for (size_t i = 0; i < a.n; i++)
        cr_assert_eq(atomic_load(&a.hits[i]), loops, "job a: index %zu ran %d times", i,
                     atomic_load(&a.hits[i]));
    for (size_t i = 0; i < b.n; i++)
        cr_assert_eq(atomic_load(&b.hits[i]), loops, "job b: index %zu ran %d times", i,
                     atomic_load(&b.hits[i]));
}

/* Range 0 of every job runs on the thread that posted it (pool.c: so that loops over the same
 * data keep their first part in that core's cache), however short the job and however soon
 * a polling worker sees it; the other ranges still run once each. */
typedef struct first_range {
    pthread_t caller;
    atomic_int elsewhere, hits[4];
} first_range;

static void first_range_fn(void *ctx, size_t begin, size_t end)
{
    first_range *f = ctx;
    if (begin == 0 && !pthread_equal(pthread_self(), f->caller))
        atomic_fetch_add(&f->elsewhere, 1);
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&f->hits[i], 1);
}

Test(pool, range_zero_runs_on_the_caller)
{
    for (int threads = 2; threads <= 4; threads += 2) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        first_range f = {.caller = pthread_self()};
        const int loops = 20000;
        for (int k = 0; k < loops; k++)
            tg__parallel_for((size_t)threads, 1, first_range_fn, &f);
        cr_assert_eq(atomic_load(&f.elsewhere), 0, "%d threads: range 0 ran on a worker %d times",
                     threads, atomic_load(&f.elsewhere));
        for (int i = 0; i < threads; i++)
            cr_assert_eq(atomic_load(&f.hits[i]), loops, "%d threads: index %d ran %d times",
                         threads, i, atomic_load(&f.hits[i]));
    }
}

/* Two application threads loop at once: one owns the pool, the other runs its ranges itself;
 * both cover their index space exactly once. */
typedef struct racer {
    atomic_int hits[3000];
    int loops;
    int bad;
} racer;

static void racer_range(void *ctx, size_t begin, size_t end)
{
    racer *r = ctx;
    for (size_t i = begin; i < end; i++)
        atomic_fetch_add(&r->hits[i], 1);
}

static void *racer_main(void *arg)
{
    racer *r = arg;
    for (int k = 1; k <= r->loops; k++) {
        tg__parallel_for(3000, 16, racer_range, r);
        for (size_t i = 0; i < 3000; i++)
            if (atomic_load(&r->hits[i]) != k)
                r->bad++;
    }
    return NULL;
}

Test(pool, concurrent_callers)
{
    static racer a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.loops = b.loops = 300;
    cr_assert_eq(tg_set_num_threads(3), TG_OK);
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, racer_main, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, racer_main, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.bad, 0, "first caller: %d wrong counts", a.bad);
    cr_assert_eq(b.bad, 0, "second caller: %d wrong counts", b.bad);
}

Test(pool, set_num_threads_errors)
{
    cr_assert_eq(tg_set_num_threads(3), TG_OK);
    /* above 1024 (TG_NUM_THREADS's largest too): every large GEMM was cut into as many
     * shares, each with its own packing buffer (gigabytes at a million) */
    static const int bad[] = {0, -1, -1000, INT_MIN, 1025, 1000000, INT_MAX};
    for (size_t k = 0; k < COUNT(bad); k++) {
        cr_assert_eq(tg_set_num_threads(bad[k]), TG_EINVAL, "%d threads accepted", bad[k]);
        ts_assert_has(tg_last_error(), "tg_set_num_threads");
        cr_assert_eq(tg_get_num_threads(), 3, "a refused count changed the setting");
    }
    cr_assert_eq(tg_set_num_threads(1024), TG_OK);
    cr_assert_eq(tg_get_num_threads(), 1024);
    cr_assert_eq(tg_set_num_threads(3), TG_OK);
    check_loop(1000, 1, 3);
}

/* Thread creation that fails part way: the pool keeps the threads it got, the ranges stay
 * those of the thread count, and nothing reports an error. */
Test(pool, thread_creation_failure_degrades)
{
    enum { N = 4099 };
    static double x[N];
    for (size_t i = 0; i < N; i++)
        x[i] = 1.0 / (double)(i + 1);
    cr_assert_eq(tg_set_num_threads(4), TG_OK);
    double full = ordered_sum(x, N, 1);
    cr_assert_eq(tg__pool_workers(), 3);
    for (int allowed = 0; allowed <= 3; allowed++) {
        tg__pool_shutdown();
        cr_assert_eq(tg_set_num_threads(4), TG_OK);
        tg__pool_fail_spawn_after(allowed);
        tg_clear_error();
        char clean[128];
        snprintf(clean, sizeof clean, "%s", tg_last_error());
        check_loop(MAX_N, 1, 4);
        cr_assert_eq(tg__pool_workers(), allowed, "%d creations allowed", allowed);
        double s = ordered_sum(x, N, 1);
        cr_assert(memcmp(&s, &full, sizeof s) == 0, "%d workers: sum %.17g, with 3: %.17g", allowed,
                  s, full);
        cr_assert_str_eq(tg_last_error(), clean, "a failed thread creation set an error: %s",
                         tg_last_error());
    }
    tg__pool_fail_spawn_after(-1);
    check_loop(MAX_N, 1, 4);
    cr_assert_eq(tg__pool_workers(), 3, "creation retried after the failure cleared");
}

/* TG_NUM_THREADS is read when the count is first needed (here: again after a shutdown). */
Test(pool, num_threads_from_environment)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int fallback = CPU_COUNT(&set);
    static const struct {
        const char *value;
        int want; /* 0: the number of CPUs the process may run on */
    } cases[] = {
        {"3", 3},
        {"1", 1},
        {"17", 17},
        {"1024", 1024},
        {"0", 0},
        {"-2", 0},
        {"abc", 0},
        {"3x", 0},
        {"3 ", 0},
        {" 3", 0},
        {"\t3", 0},
        {"+3", 0},
        {"0x10", 0},
        {"08", 8},
        {"", 0},
        {"1025", 0},
        {"99999999999999999999", 0},
    };
    for (size_t k = 0; k < COUNT(cases); k++) {
        cr_assert_eq(setenv("TG_NUM_THREADS", cases[k].value, 1), 0);
        tg__pool_shutdown();
        int want = cases[k].want ? cases[k].want : fallback;
        cr_assert_eq(tg_get_num_threads(), want, "TG_NUM_THREADS='%s': %d threads, want %d",
                     cases[k].value, tg_get_num_threads(), want);
    }
    cr_assert_eq(unsetenv("TG_NUM_THREADS"), 0);
    tg__pool_shutdown();
    cr_assert_eq(tg_get_num_threads(), fallback);
    /* tg_set_num_threads wins over the environment until the next shutdown. */
    cr_assert_eq(setenv("TG_NUM_THREADS", "5", 1), 0);
    cr_assert_eq(tg_set_num_threads(2), TG_OK);
    cr_assert_eq(tg_get_num_threads(), 2);
    check_loop(MAX_N, 1, 2);
    unsetenv("TG_NUM_THREADS");
}

/* Waits for the forked child `pid` and fails the test unless it exited with status 0. */
static void expect_child_succeeds(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

/* The environment of a fresh process, which has never asked for the count before. */
Test(pool, num_threads_in_a_fresh_process)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        /* Forgetting the count here stands for a process that starts with the variable set. */
        setenv("TG_NUM_THREADS", "6", 1);
        tg__pool_shutdown();
        int ok = tg_get_num_threads() == 6;
        record_reset();
        tg__parallel_for(600, 1, record_range, &rec);
        ok = ok && rec.nranges == 6;
        _exit(ok ? 0 : 1);
    }
    expect_child_succeeds(pid);
}

/* Without TG_NUM_THREADS, the count is the CPUs the process may run on: one, once pinned to
 * one (taskset, mpirun's binding), however many the machine has. */
Test(pool, num_threads_follows_the_affinity)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        cpu_set_t set;
        int ok = sched_getaffinity(0, sizeof set, &set) == 0;
        int cpu = 0;
        while (ok && cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
            cpu++;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        ok = ok && sched_setaffinity(0, sizeof set, &set) == 0;
        unsetenv("TG_NUM_THREADS");
        tg__pool_shutdown();
        ok = ok && tg_get_num_threads() == 1;
        _exit(ok ? 0 : 1);
    }
    expect_child_succeeds(pid);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Idle workers sleep: a pool of 4 workers left alone for 200 ms burns almost no CPU. */
Test(pool, idle_workers_sleep)
{
    cr_assert_eq(tg_set_num_threads(5), TG_OK);
    check_loop(MAX_N, 1, 5);
    cr_assert_eq(tg__pool_workers(), 4);
    double before = cpu_seconds();
    struct timespec nap = {0, 200 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double used = cpu_seconds() - before;
    cr_assert_lt(used, 0.02, "the idle pool used %.3f s of CPU in 0.2 s", used);
}

/* A child forked after the workers started has none; its loops restart them, and joining
 * them joins only workers that exist. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

Test(pool, fork_after_use)
{
#ifdef UNDER_TSAN
    /* TSan keeps the parent's threads in its registry and cannot start threads in the child
     * of a multi-threaded fork ("dup thread with used id"). */
    cr_skip_test("ThreadSanitizer does not support threads after a multi-threaded fork");
#endif
#ifdef UNDER_ASAN
    /* GCC 12's AddressSanitizer does not lock its allocator around fork: when another thread
     * of the parent holds it at that moment, the child's threads wait on it for ever. */
    cr_skip_test("AddressSanitizer's allocator is not fork-safe with other threads running");
#endif
    cr_assert_eq(tg_set_num_threads(3), TG_OK);
    check_loop(MAX_N, 1, 3);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int ok = tg__pool_workers() == 0;
        record_reset();
        tg__parallel_for(MAX_N, 1, record_range, &rec);
        ok = ok && rec.nranges == 3 && tg__pool_workers() == 2;
        for (size_t i = 0; i < MAX_N; i++)
            ok = ok && atomic_load(&rec.hits[i]) == 1;
        /* Join the workers the child started (what the exit handler does), then _exit: exit()
         * would also run the test runner's own exit handlers in this copy of the test
         * process, and under AddressSanitizer a leak check after a multi-threaded fork can
         * hang; either leaves the runner waiting for ever. */
        tg__pool_shutdown();
        ok = ok && tg__pool_workers() == 0;
        _exit(ok ? 0 : 1);
    }
    expect_child_succeeds(pid);
    check_loop(MAX_N, 1, 3);
}

/* ---- tg_set_flush_denormal ---------------------------------------------------------------- */

/* Each index i writes TINY * 0.5: the smallest normal double halved is subnormal, or zero
 * when flushed. The operands are read through volatile so the product is computed at run time,
 * on whichever thread runs the range. */
static volatile double tiny_normal = 2.2250738585072014e-308;
static double products[4096];

static void halve_tiny(void *ctx, size_t begin, size_t end)
{
    (void)ctx;
    for (size_t i = begin; i < end; i++)
        products[i] = tiny_normal * 0.5;
}

/* halve_tiny into the array ctx. */
static void halve_into(void *ctx, size_t begin, size_t end)
{
    double *out = ctx;
    for (size_t i = begin; i < end; i++)
        out[i] = tiny_normal * 0.5;
}

static size_t count_zero_products(void)
{
    memset(products, 0xff, sizeof products); /* NaN: a range that did not run shows */
    tg__parallel_run(COUNT(products), 1, halve_tiny, NULL);
    size_t zeros = 0;
    for (size_t i = 0; i < COUNT(products); i++) {
        cr_assert(!isnan(products[i]), "index %zu was not computed", i);
        zeros += products[i] == 0;
    }
    return zeros;
}

Test(pool, flush_denormal_reaches_the_workers)
{
    cr_assert_eq(tg_set_num_threads(4), TG_OK);
    cr_assert(!tg_flush_denormal(), "off by default");
    cr_assert_eq(count_zero_products(), 0, "subnormals kept while off");
#if defined(__x86_64__)
    cr_assert(tg_set_flush_denormal(true));
    cr_assert(tg_flush_denormal());
    volatile double here = tiny_normal * 0.5;
    cr_expect_eq(here, 0.0, "the calling thread flushes");
    cr_expect_eq(count_zero_products(), COUNT(products), "every thread flushes");
    cr_assert(tg_set_flush_denormal(false));
    here = tiny_normal * 0.5;
    cr_expect_neq(here, 0.0, "the calling thread keeps subnormals again");
    cr_expect_eq(count_zero_products(), 0, "and so does every worker");
#else
    cr_expect(!tg_set_flush_denormal(true), "a no-op that says so off x86-64");
    cr_expect(!tg_flush_denormal());
#endif
}

#if defined(__x86_64__)
/* A thread that flushes, then posts loops while the main thread posts its own: each loop
 * runs with its poster's setting, whichever workers run its ranges. */
static atomic_int other_phase; /* 1: flushing, 2: loops done, 3: may stop */
static size_t other_zeros[200];

static void *flush_and_run(void *arg)
{
    (void)arg;
    tg_set_flush_denormal(true);
    static double mine[4096];
    atomic_store(&other_phase, 1);
    for (size_t k = 0; k < COUNT(other_zeros); k++) {
        memset(mine, 0xff, sizeof mine);
        tg__parallel_run(COUNT(mine), 1, halve_into, mine);
        for (size_t i = 0; i < COUNT(mine); i++)
            other_zeros[k] += mine[i] == 0;
    }
    atomic_store(&other_phase, 2);
    return NULL;
}

Test(pool, flush_denormal_is_the_posting_threads)
{
    cr_assert_eq(tg_set_num_threads(2), TG_OK);
    cr_assert(!tg_flush_denormal());
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flush_and_run, NULL), 0);
    while (atomic_load(&other_phase) == 0)
        ;
    cr_expect(!tg_flush_denormal(), "another thread's setting is not this one's");
    size_t rounds = 0, kept = 0;
    do { /* while the other thread's loops run, and at least 200 rounds */
        kept += count_zero_products() == 0;
        rounds++;
    } while (atomic_load(&other_phase) == 1 || rounds < 200);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_expect_eq(kept, rounds, "%zu of %zu loops of this thread flushed", rounds - kept, rounds);
    for (size_t k = 0; k < COUNT(other_zeros); k++)
        cr_expect_eq(other_zeros[k], 4096, "loop %zu of the flushing thread: %zu of 4096 flushed",
                     k, other_zeros[k]);
}
#endif
