/* pool.c: the thread count and tg__parallel_for over a small persistent pool of pthreads.
 *
 * A loop [0, n) is cut into r = min(threads, n / grain) contiguous ranges whose bounds depend
 * only on n, grain and the thread count (split_range). Which thread runs which range does not
 * matter for the result, so ranges are claimed dynamically: the caller posts the job with
 * range 0 already its own, wakes r - 1 workers (asleep, or still polling for it after their
 * last job), runs range 0 and then claims what is left; a worker that wakes late finds nothing
 * left and goes back to waiting. On a busy machine the caller therefore never waits for a
 * worker to be scheduled before it can make progress, and a pool with fewer workers than the
 * thread count (pthread_create failed, or the cap) computes the same ranges.
 *
 * Range 0 is the caller's for the sake of the caches: consecutive loops over the same data
 * (a GEMM's KC blocks over its C, the ops of a training step over a batch) cut it the same
 * way, and with two threads each range then stays on the core that ran it last time. When
 * the two raced for range 0 instead, they swapped ranges in about a third of the jobs, and
 * each then fetched its part of the data from the other core's cache: on an Intel Xeon VM
 * (2 vCPUs, a line's round trip 110-190 ns), two threads writing their own 64 KiB each took
 * 5.3 us a job against 1.9 now, and W3's 128 x 256 x 10 product split in two 10 us against
 * 4.2 (docs/performance.md, an eighteenth stop). With more workers than one, the workers'
 * ranges still go to whichever claims first. (Workers waiting their turn, worker w for ranges
 * 1 to w to be claimed, ran that product 1.4-2.1x slower with 3 to 8 threads on the 2 vCPUs: a
 * worker waiting spins on the core the one it waits for needs.)
 *
 * Synchronization: run_mu is held by the one caller whose loop owns the pool (a second
 * thread, or a nested call from inside a range, finds it taken and runs its ranges itself,
 * in order). mu guards the generation and the worker count, and the job description for a
 * worker that slept; a worker still polling after its last job takes the next one without mu
 * (read_posted_job). Workers sleep on work_cv, the caller on done_cv. `claim` packs the job's
 * generation with the next range index; the job is posted with range 0 claimed (the caller's),
 * and a worker claims with a compare-and-swap on it, so a worker still holding an old job can
 * never take a range of the next one. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "core/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Upper bound on worker threads. More threads than this are accepted (the ranges follow the
 * thread count); the extra ranges are claimed by the threads that exist. */
#define POOL_MAX_WORKERS 255
/* The largest thread count: TG_NUM_THREADS values above it are ignored like malformed ones,
 * and tg_set_num_threads refuses them. Work is cut by the count, not by the threads that
 * exist, and the GEMM gives each share its own packing buffer: at a million threads a 1024^3
 * product reserved 1.4 GB of them and took 13 s instead of 0.05. */
#define MAX_THREADS 1024
/* How long the caller polls for the last ranges before it sleeps on done_cv, in nanoseconds.
 * Ranges are cut to equal sizes, so the workers usually finish close to the caller, and a
 * thread asleep on a condition variable takes tens of microseconds to wake: polling for
 * about that long costs at most twice the better choice. */
#ifndef CALLER_SPIN_NS
#define CALLER_SPIN_NS 50000
#endif
/* How long a worker polls for the next job before it sleeps on work_cv. A training step
 * hands the pool jobs tens of microseconds apart (two per GEMM, then the long elementwise
 * loops): a worker that slept after each would spend a wake-up (see above) on every one,
 * which at 20-30 hand-offs a step ate most of a second thread's gain. Past this window,
 * idle workers sleep, so a pool between steps or after the last loop costs no CPU. */
#ifndef WORKER_SPIN_NS
#define WORKER_SPIN_NS 100000
#endif

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether a poll loop started with *deadline = 0 has run `ns` nanoseconds; the clock is read
 * every 64th poll k. */
static inline bool spin_expired(uint64_t *deadline, unsigned k, uint64_t ns)
{
    if (k & 63)
        return false;
    uint64_t t = now_ns();
    if (*deadline == 0)
        *deadline = t + ns;
    return t >= *deadline;
}

/* Polls *word until it equals `want`, for at most `ns` nanoseconds; true if it did. */
static bool spin_until(const _Atomic uint64_t *word, uint64_t want, uint64_t ns)
{
    uint64_t deadline = 0;
    for (unsigned k = 0; !spin_expired(&deadline, k, ns); k++) {
        if (atomic_load_explicit(word, memory_order_acquire) == want)
            return true;
        CPU_RELAX();
    }
    return false;
}

/* Polls *word until its high 32 bits differ from `high`, for at most `ns` nanoseconds; true
 * if they did. */
static bool spin_while_high(const _Atomic uint64_t *word, uint32_t high, uint64_t ns)
{
    uint64_t deadline = 0;
    for (unsigned k = 0; !spin_expired(&deadline, k, ns); k++) {
        if ((uint32_t)(atomic_load_explicit(word, memory_order_relaxed) >> 32) != high)
            return true;
        CPU_RELAX();
    }
    return false;
}

static atomic_int thread_count; /* 0 until first asked for */

static struct pool {
    pthread_mutex_t run_mu; /* held by the caller that owns the pool for a whole loop */
    pthread_mutex_t mu;     /* guards everything below except the atomics */
    pthread_cond_t work_cv; /* workers wait for a new generation or for `want` to drop */
    pthread_cond_t done_cv; /* the caller waits for the last range */
    int nworkers;           /* running workers (changed only by the run_mu holder) */
    int want;               /* workers with an index >= want exit */
    int spawn_cap;          /* pthread_create failed at this count: no retry until reset */
    uint32_t gen;           /* job generation, bumped by every post */
    /* The current job. Written under mu, and read under it by a worker that slept; a worker
     * still polling after its last job reads it without mu (read_posted_job), hence atomics. */
    _Atomic(tg_range_fn) fn;
    _Atomic(void *) ctx;
    _Atomic size_t n;
    _Atomic uint32_t nranges;
    _Atomic unsigned flush; /* the posting thread's subnormal flushing (flush_bits) */
    _Atomic uint64_t claim; /* gen << 32 | next unclaimed range (1 when posted: range 0 is
                             * the caller's; r + 1 after the caller's last claim, UINT32_MAX
                             * once closed: run_parallel) */
    _Atomic uint64_t done;  /* ranges finished in the current job */
    int fail_spawn_after;   /* tests: thread creations that may succeed (< 0: all) */
    struct worker {
        pthread_t thread;
        uint32_t start_gen; /* the generation when it was created: jobs after it are new */
    } workers[POOL_MAX_WORKERS];
} pool = {
    .run_mu = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
    .spawn_cap = POOL_MAX_WORKERS,
    .fail_spawn_after = -1,
};

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

/* ---- the thread count ------------------------------------------------------------------ */

static int default_thread_count(void)
{
    const char *env = getenv("TG_NUM_THREADS");
    /* digits only: strtol would also skip leading blanks and take a sign (' 4', '+4'), where
     * a trailing blank ('4 ') is refused */
    if (env && *env >= '0' && *env <= '9') {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n >= 1 && n <= MAX_THREADS)
            return (int)n;
    }
    /* The CPUs this process may run on (taskset, mpirun's binding, a container's cpuset),
     * not all the machine has: threads beyond them only wait for one another. */
    long cpus = 0;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
#endif
    if (cpus < 1)
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        return 1;
    return cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
}

int tg_get_num_threads(void)
{
    int n = atomic_load_explicit(&thread_count, memory_order_relaxed);
    if (n == 0) {
        /* Two threads may race here; the first value stored wins and both return it. */
        int expected = 0;
        n = default_thread_count();
        if (!atomic_compare_exchange_strong(&thread_count, &expected, n))
            n = expected;
    }
    return n;
}

/* ---- ranges ------------------------------------------------------------------------------- */

/* Range i of r over [0, n): the first n % r ranges get one item more than the others. */
static inline void split_range(size_t n, uint32_t r, uint32_t i, size_t *begin, size_t *end)
{
    size_t q = n / r, rem = n % r;
    *begin = (size_t)i * q + (i < rem ? i : rem);
    *end = *begin + q + (i < rem ? 1 : 0);
}

static void run_in_order(size_t n, uint32_t r, tg_range_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < r; i++) {
        size_t b, e;
        split_range(n, r, i, &b, &e);
        fn(ctx, b, e);
    }
}

/* ---- workers ------------------------------------------------------------------------------ */

/* Claims and runs ranges of generation `gen` until none is left; returns how many it ran. */
static uint32_t claim_and_run(uint32_t gen, size_t n, uint32_t r, tg_range_fn fn, void *ctx)
{
    uint32_t ran = 0;
    uint64_t v = atomic_load_explicit(&pool.claim, memory_order_relaxed);
    for (;;) {
        uint32_t i = (uint32_t)v;
        if ((uint32_t)(v >> 32) != gen || i >= r)
            return ran;
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &v, v + 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue; /* v now holds the current value */
        size_t b, e;
        split_range(n, r, i, &b, &e);
        fn(ctx, b, e);
        ran++;
        v = atomic_load_explicit(&pool.claim, memory_order_relaxed);
    }
}

/* ---- subnormals ------------------------------------------------------------------------
 * Flushing belongs to a thread (x86-64: the FTZ and DAZ bits of its MXCSR). A job runs with
 * the bits of the thread that posted it: each worker sets them before the job's ranges when
 * they differ from its own, so a loop's result never depends on which thread ran which range,
 * and one thread's setting never reaches another's loops. */
#if defined(__x86_64__)
#include <xmmintrin.h>
#define MXCSR_FLUSH (0x8000u | 0x0040u) /* FTZ | DAZ */
static unsigned flush_bits(void)
{
    return _mm_getcsr() & MXCSR_FLUSH;
}
static void set_flush_bits(unsigned bits)
{
    _mm_setcsr((_mm_getcsr() & ~MXCSR_FLUSH) | bits);
}
#define FLUSH_SUPPORTED true
#else
#define MXCSR_FLUSH 0u
static unsigned flush_bits(void)
{
    return 0;
}
static void set_flush_bits(unsigned bits)
{
    (void)bits;
}
#define FLUSH_SUPPORTED false
#endif

bool tg_set_flush_denormal(bool on)
{
    if (!FLUSH_SUPPORTED)
        return false;
    set_flush_bits(on ? MXCSR_FLUSH : 0);
    return true;
}

bool tg_flush_denormal(void)
{
    return FLUSH_SUPPORTED && flush_bits() == MXCSR_FLUSH;
}

/* A job as a worker runs it. */
typedef struct job {
    tg_range_fn fn;
    void *ctx;
    size_t n;
    uint32_t nranges;
    unsigned flush;
} job;

static job load_job(void)
{
    return (job){.fn = atomic_load_explicit(&pool.fn, memory_order_acquire),
                 .ctx = atomic_load_explicit(&pool.ctx, memory_order_acquire),
                 .n = atomic_load_explicit(&pool.n, memory_order_acquire),
                 .nranges = atomic_load_explicit(&pool.nranges, memory_order_acquire),
                 .flush = atomic_load_explicit(&pool.flush, memory_order_acquire)};
}

/* The job a worker's poll saw posted, read without mu; returns its generation. By the time
 * it is read, that job may have ended and the next one be posted, its fields mixed with the
 * first's. When a job's ranges are all claimed, its caller closes its generation in `claim`
 * (index UINT32_MAX: no range count reaches it) before the next job is written; each field of
 * the next job is a release store, and each read here an acquire load. So a field read from
 * the next job makes the closed generation visible to claim_and_run, which then takes no range
 * of the generation returned: the worker runs nothing of the mix. */
static uint32_t read_posted_job(job *j)
{
    const uint32_t gen = (uint32_t)(atomic_load_explicit(&pool.claim, memory_order_acquire) >> 32);
    *j = load_job();
    return gen;
}

/* Runs what is left of job j, generation gen, and wakes the caller if its last range ended. */
static void run_job(uint32_t gen, const job *j)
{
    if (TG_UNLIKELY(j->flush != flush_bits())) /* the register: a range may have set it */
        set_flush_bits(j->flush);
    uint32_t ran = claim_and_run(gen, j->n, j->nranges, j->fn, j->ctx);
    /* The job cannot end (nor a new one start) while a claimed range is unfinished, so `done`
     * still counts this generation. */
    if (!ran)
        return;
    const uint64_t done = atomic_fetch_add_explicit(&pool.done, ran, memory_order_acq_rel) + ran;
    TG_ASSERT(done <= j->nranges); /* past it, the caller would wait forever */
    if (done == j->nranges) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_signal(&pool.done_cv);
        pthread_mutex_unlock(&pool.mu);
    }
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    uint32_t seen = pool.workers[id].start_gen;
    for (;;) {
        while (pool.gen == seen && id < pool.want)
            pthread_cond_wait(&pool.work_cv, &pool.mu);
        if (id >= pool.want)
            break;
        seen = pool.gen;
        job j = load_job();
        pthread_mutex_unlock(&pool.mu);
        /* The next job usually follows within microseconds: watch for it before sleeping, and
         * take it without mu. (Taking mu as soon as the post showed found the poster still
         * holding it often enough that the worker slept on the mutex and woke late: on an
         * Intel Xeon's 2 vCPUs, a loop of two 1.1 us ranges took 2.0 us against 1.5-1.6
         * without mu, with a fifth of the futex calls.) A shrink joins workers between
         * jobs, when no post can come: a polling worker times out and finds it under mu. */
        for (;;) {
            run_job(seen, &j);
            if (!spin_while_high(&pool.claim, seen, WORKER_SPIN_NS))
                break;
            seen = read_posted_job(&j);
        }
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Stops workers [target, nworkers) and joins them. Caller holds run_mu. */
static void shrink(int target)
{
    if (pool.nworkers <= target)
        return;
    pthread_mutex_lock(&pool.mu);
    pool.want = target;
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = target; i < pool.nworkers; i++)
        pthread_join(pool.workers[i].thread, NULL);
    pool.nworkers = target;
}

static void shutdown_at_exit(void)
{
    /* A loop still running on another thread (exit() called mid-loop) keeps its workers:
     * joining them could wait forever. */
    if (pthread_mutex_trylock(&pool.run_mu) != 0)
        return;
    shrink(0);
    pthread_mutex_unlock(&pool.run_mu);
}

/* fork() copies only the calling thread: the child starts with no workers. mu is taken
 * around the fork so the child never inherits it held; run_mu may be held by a loop on
 * another thread (which does not exist in the child), so it is re-initialized. */
static void before_fork(void)
{
    pthread_mutex_lock(&pool.mu);
}
static void after_fork_parent(void)
{
    pthread_mutex_unlock(&pool.mu);
}
static void after_fork_child(void)
{
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_init(&pool.run_mu, NULL);
    pthread_cond_init(&pool.work_cv, NULL);
    pthread_cond_init(&pool.done_cv, NULL);
    pool.nworkers = 0;
    pool.want = 0;
}

static void install_hooks(void)
{
    atexit(shutdown_at_exit);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Starts workers until there are `target` (or thread creation fails). Caller holds run_mu. */
static void grow(int target)
{
    if (target > pool.spawn_cap)
        target = pool.spawn_cap;
    if (pool.nworkers >= target)
        return;
    pthread_once(&hooks_once, install_hooks);
    /* Workers block every signal, so signals meant for the process reach the caller's
     * threads, never a library thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&pool.mu);
    pool.want = target;
    uint32_t gen = pool.gen;
    pthread_mutex_unlock(&pool.mu);
    while (pool.nworkers < target) {
        int i = pool.nworkers;
        pool.workers[i].start_gen = gen;
        int rc = EAGAIN;
        if (pool.fail_spawn_after != 0) {
            rc = pthread_create(&pool.workers[i].thread, NULL, worker_main, (void *)(intptr_t)i);
            if (rc == 0 && pool.fail_spawn_after > 0)
                pool.fail_spawn_after--;
        }
        if (rc != 0) {
            /* Fewer threads: the ranges stay the same, the existing threads claim them. */
            pool.spawn_cap = i;
            pthread_mutex_lock(&pool.mu);
            pool.want = i;
            pthread_mutex_unlock(&pool.mu);
            break;
        }
        pool.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static int workers_for(int threads)
{
    return threads - 1 < POOL_MAX_WORKERS ? threads - 1 : POOL_MAX_WORKERS;
}

tg_status tg_set_num_threads(int n)
{
    if (n < 1 || n > MAX_THREADS)
        return tg__error(TG_EINVAL, "tg_set_num_threads: %d threads (expected 1 to %d)", n,
                         MAX_THREADS);
    atomic_store_explicit(&thread_count, n, memory_order_relaxed);
    /* Surplus workers are joined now; missing ones start with the next parallel loop. If a
     * loop is running (against the contract), the next loop resizes instead. */
    if (pthread_mutex_trylock(&pool.run_mu) == 0) {
        pool.spawn_cap = POOL_MAX_WORKERS;
        shrink(workers_for(n));
        pthread_mutex_unlock(&pool.run_mu);
    }
    return TG_OK;
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Runs the r >= 2 ranges of [0, n) (tg__parallel_run runs a single one itself). */
static void run_parallel(size_t n, uint32_t r, tg_range_fn fn, void *ctx, int threads)
{
    TG_ASSERT(r >= 2);
    if (pthread_mutex_trylock(&pool.run_mu) != 0) {
        /* Nested inside a range, or another thread's loop owns the pool. */
        run_in_order(n, r, fn, ctx);
        return;
    }
    int target = workers_for(threads);
    if (pool.nworkers > target)
        shrink(target);
    else if (pool.nworkers < target)
        grow(target);
    if (pool.nworkers == 0) {
        pthread_mutex_unlock(&pool.run_mu);
        run_in_order(n, r, fn, ctx);
        return;
    }

    pthread_mutex_lock(&pool.mu);
    uint32_t gen = ++pool.gen;
    /* Release stores: each orders the end of the last job (its closed generation in `claim`)
     * before it, for workers that read the job without mu (read_posted_job). */
    atomic_store_explicit(&pool.fn, fn, memory_order_release);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_release);
    atomic_store_explicit(&pool.n, n, memory_order_release);
    atomic_store_explicit(&pool.nranges, r, memory_order_release);
    atomic_store_explicit(&pool.flush, flush_bits(), memory_order_release);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.claim, (uint64_t)gen << 32 | 1, memory_order_release);
    pthread_mutex_unlock(&pool.mu);
    int wake = (int)r - 1 < pool.nworkers ? (int)r - 1 : pool.nworkers;
    if (wake == pool.nworkers)
        pthread_cond_broadcast(&pool.work_cv);
    else
        for (int i = 0; i < wake; i++)
            pthread_cond_signal(&pool.work_cv);

    /* Range 0, posted as claimed, then whatever is left: workers claim with a compare-and-swap
     * below r; only the caller adds past r, once (to r + 1), so a plain add never carries into
     * the generation. */
    uint32_t ran = 0;
    for (uint32_t i = 0; i < r; ran++) {
        size_t b, e;
        split_range(n, r, i, &b, &e);
        fn(ctx, b, e);
        i = (uint32_t)atomic_fetch_add_explicit(&pool.claim, 1, memory_order_acquire);
    }
    /* Every range is claimed: close the generation for any range count, not just r. A worker
     * that read this job's generation and then the next job's range count (read_posted_job)
     * could otherwise claim "range r" of this one. No claim can follow (each needs i < r). */
    atomic_store_explicit(&pool.claim, (uint64_t)gen << 32 | UINT32_MAX, memory_order_relaxed);
    const uint64_t done = atomic_fetch_add_explicit(&pool.done, ran, memory_order_acq_rel) + ran;
    TG_ASSERT(done <= r); /* past it, this wait would never end */
    if (done != r) {
        if (!spin_until(&pool.done, r, CALLER_SPIN_NS)) {
            pthread_mutex_lock(&pool.mu);
            while (atomic_load_explicit(&pool.done, memory_order_acquire) != r)
                pthread_cond_wait(&pool.done_cv, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    pthread_mutex_unlock(&pool.run_mu);
}

void tg__parallel_run(size_t n, size_t grain, tg_range_fn fn, void *ctx)
{
    /* tg__parallel_for (pool.h) has sent one-range loops straight to fn. */
    if (grain == 0)
        grain = 1;
    int threads = atomic_load_explicit(&thread_count, memory_order_relaxed);
    if (threads == 0)
        threads = tg_get_num_threads();
    size_t most = n / grain;
    uint32_t r = (size_t)threads < most ? (uint32_t)threads : (uint32_t)most;
    if (r <= 1) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    run_parallel(n, r, fn, ctx, threads);
}

/* ---- internal: teardown and tests --------------------------------------------------------- */

void tg__pool_shutdown(void)
{
    pthread_mutex_lock(&pool.run_mu);
    shrink(0);
    pool.spawn_cap = POOL_MAX_WORKERS;
    atomic_store_explicit(&thread_count, 0, memory_order_relaxed);
    pthread_mutex_unlock(&pool.run_mu);
}

int tg__pool_workers(void)
{
    pthread_mutex_lock(&pool.run_mu);
    int n = pool.nworkers;
    pthread_mutex_unlock(&pool.run_mu);
    return n;
}

void tg__pool_fail_spawn_after(int n)
{
    pthread_mutex_lock(&pool.run_mu);
    pool.fail_spawn_after = n;
    pool.spawn_cap = POOL_MAX_WORKERS;
    pthread_mutex_unlock(&pool.run_mu);
}
