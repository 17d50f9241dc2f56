/* bench_cores.c: how far apart the run's two first CPUs are, as the time a cache line takes to
 * go from one to the other and back. Every hand-off between threads pays it at the least (a
 * pool worker seeing its job, the caller seeing it done), and so does every cache line that
 * two threads' work shares or a prefetcher carries across: where one thread's figures depend
 * on the core, two threads' depend on this too, and the two vCPUs of a virtual machine may
 * lie far apart without anything else in the heading saying so, and the host may move them
 * (one 2-vCPU EPYC, Zen 5: 390-620 ns in most readings of a session, 110-180 in others minutes
 * apart). It is printed in the heading and, measured again before each workload, in the
 * context of every figure of more than one thread. */
#define _GNU_SOURCE /* pthread_attr_setaffinity_np, CPU_SET */
#include "bench.h"

#include "common/clock.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { BATCHES = 5 };

/* The counter the two threads pass to and fro, alone on its cache line, and what the near
 * side measures. */
typedef struct ping {
    _Alignas(64) atomic_long turn; /* negative: stop, the other side gave up */
    _Alignas(64) long warm;        /* round trips before the timing */
    long per;                      /* round trips in each timed batch */
    double ns[BATCHES];            /* each batch's mean round trip */
} ping;

/* A side still exchanging this long after it started (the other not scheduled: a CPU taken
 * by a real-time task, a frozen cgroup) gives up, and the measure is NaN. The exchange takes
 * about 10 ms, some tens on a loaded machine, where a thread waits for its CPU now and then. */
#define GIVE_UP_SECONDS 10.0

/* Waits until turn is `want`; false when it turned negative, or GIVE_UP_SECONDS after
 * `start` (then it turns it negative for the other side). No pause instruction in the poll:
 * it would add its own latency to what is measured. */
static bool await_turn(ping *p, long want, double start)
{
    for (unsigned k = 1;; k++) {
        const long v = atomic_load_explicit(&p->turn, memory_order_acquire);
        if (v == want)
            return true;
        if (v < 0)
            return false;
        if (k % 4096 == 0 && monotonic_seconds() - start > GIVE_UP_SECONDS) {
            atomic_store_explicit(&p->turn, -1, memory_order_release);
            return false;
        }
    }
}

/* The far side: waits for each odd value, answers with the next even one. */
static void *far_side(void *arg)
{
    ping *p = arg;
    const long rounds = p->warm + BATCHES * p->per;
    const double start = monotonic_seconds();
    for (long i = 0; i < rounds && await_turn(p, 2 * i + 1, start); i++)
        atomic_store_explicit(&p->turn, 2 * i + 2, memory_order_release);
    return NULL;
}

/* The near side's round trips [from, to), each an odd value sent and the next even awaited;
 * false when the exchange stopped. */
static bool round_trips(ping *p, long from, long to, double start)
{
    for (long i = from; i < to; i++) {
        atomic_store_explicit(&p->turn, 2 * i + 1, memory_order_release);
        if (!await_turn(p, 2 * i + 2, start))
            return false;
    }
    return true;
}

/* The near side: the warm-up, then each batch timed (NaN throughout when stopped). */
static void *near_side(void *arg)
{
    ping *p = arg;
    const double start = monotonic_seconds();
    bool ok = round_trips(p, 0, p->warm, start);
    for (int b = 0; b < BATCHES; b++) {
        const long from = p->warm + b * p->per;
        const double t0 = monotonic_seconds();
        ok = ok && round_trips(p, from, from + p->per, start);
        p->ns[b] = ok ? (monotonic_seconds() - t0) * 1e9 / (double)p->per : NAN;
    }
    return NULL;
}

/* A thread running fn(arg) pinned to `cpu`; false when it cannot be started so. */
static bool start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    bool ok = pthread_attr_setaffinity_np(&attr, sizeof set, &set) == 0 &&
              pthread_create(t, &attr, fn, arg) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

double bench_core_round_trip_ns(int cpu_a, int cpu_b, bool quick)
{
    ping p = {.warm = quick ? 200 : 2000, .per = quick ? 400 : 4000};
    pthread_t far, near;
    if (!start_on(&far, cpu_b, far_side, &p))
        return NAN;
    if (!start_on(&near, cpu_a, near_side, &p)) {
        atomic_store_explicit(&p.turn, -1, memory_order_release);
        pthread_join(far, NULL);
        return NAN;
    }
    pthread_join(near, NULL);
    pthread_join(far, NULL);
    return isnan(p.ns[BATCHES - 1]) ? NAN : bench_median(p.ns, BATCHES);
}
