/* cmd_bench.c: `tapegrad bench`, the speed of the library on fixed workloads (measured here,
 * never by timed unit tests): the options, and the loop that runs each workload asked for at
 * each thread count. The workloads and their output live in bench_*.c (bench.h).
 *
 *   W1, W1replay, W2  tiny graphs, where the tape's own cost shows (bench_tape.c)
 *   W3      an MLP 784-512-256-10 trained by SGD at batch 128, beside PyTorch (bench_w3.c)
 *   gemm    the internal GEMM alone, at 1024^3 and at W3's products (bench_gemm.c)
 *   W3dist  W3 on MPI ranks x threads; ranks run this binary under mpirun (bench_w3dist.c)
 *   W4      `tapegrad train` on the digits data in a child process (bench_w4.c)
 *   W3jvp   forward mode (tg_jvp) on W3's MLP against its forward (bench_w3jvp.c)
 *   ops     single ops' loops on a large matrix, forward and backward (bench_ops.c)
 *
 * Every figure is the median of several timed repetitions after an untimed warm-up; with
 * --json each figure is one JSON object per line (bench_output.c). */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "bench.h"

#include "common/clock.h"
#include "kernels/gemm.h" /* --kernel: tg__gemm_is_packed, tg__gemm_prefer */

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char BENCH_USAGE[] =
    "usage: tapegrad bench [WORKLOAD ...] [options]\n"
    "\n"
    "Times the library on fixed workloads and prints one row per figure, each the median of\n"
    "several timed repetitions after a warm-up.\n"
    "\n"
    "Workloads (default all):\n"
    "  W1     2-2-2 sigmoid network, SGD at batch 1, re-recorded every step: steps/s, and\n"
    "         the same step written by hand in C: its rate and the ratio\n"
    "  W1replay\n"
    "         W1 recorded once and replayed every step (tg_tape_replay): steps/s\n"
    "  W2     y = tanh(y*w + b) on 0-d scalars, 300,000 recorded ops, subnormals flushed: ns\n"
    "         per op, and the same chain written by hand in C: its ns per op and the ratio\n"
    "  W3     MLP 784-512-256-10 (relu), softmax cross-entropy, batch 128, SGD: ms per step;\n"
    "         beside it the same training in PyTorch (tools/bench_w3_torch.py, run by\n"
    "         /usr/bin/python3 when it has torch, alternating with W3's steps: f32 only):\n"
    "         its ms per step, the speedup over it and the BLAS it uses\n"
    "  W3dist W3's global batch of 128 on the same cores split into MPI ranks x threads:\n"
    "         every R x T = --threads (2 x 1 and 1 x 2 for 2), each rank on batch/R rows\n"
    "         with one gradient allreduce per step, and 1 x 1: ms per step and the\n"
    "         allreduce's share of it (more than one rank: runs this program under mpirun)\n"
    "  W4     `tapegrad train DIGITS.csv --target digit`: test accuracy, whole-process time\n"
    "  gemm   GFLOP/s of C = A.B at 1024^3 and at W3's products, forward and backward\n"
    "  W3jvp  tg_jvp of W3's loss in a tangent of every parameter: its time over the\n"
    "         forward's (default 20 reps)\n"
    "  ops    single ops on a 1024 x 1024 matrix (reductions and softmax along each axis,\n"
    "         transpose, broadcasting, where, exp, log_sigmoid, silu, gelu, erf, sin,\n"
    "         atan, pow by a constant and by a row): forward plus backward ns per element\n"
    "  all    all of the above\n"
    "  targets\n"
    "         the performance targets: W1 and W2 once, W3 and gemm (f32) at 1 and 2\n"
    "         threads (--cpu B,A: one thread on B, two on both), then one row per\n"
    "         target: the ratio measured, the bar and whether it held\n";

/* (two strings: C99 promises string literals of 4095 characters, no more) */
static const char BENCH_USAGE_OPTIONS[] =
    "\n"
    "Options:\n"
    "  --threads N[,N...]  thread counts to run with (default: TG_NUM_THREADS, else the\n"
    "                      library's default)\n"
    "  --dtype f32|f64     one precision for every workload (default: W1, W2 f64; W3 f32;\n"
    "                      gemm both; W4 whatever train uses)\n"
    "  --reps N            timed repetitions per figure (default 5; W3 times N steps,\n"
    "                      default 100, in each of 3 rounds alternating with torch's N\n"
    "                      when torch runs; W4 runs the child N times, default 3)\n"
    "  --cpu N[,N...]      pin the process (and its children) to these CPUs, e.g. --cpu 0,1\n"
    "                      with --threads 2: the vCPUs of a machine are not always equal\n"
    "                      (default: not pinned; a CPU this process may not run on is an\n"
    "                      error); W1, W2 and W3 give them in their context as cpus\n"
    "  --kernel NAME       the packed GEMM kernel large products take: avx512wide, avx512,\n"
    "                      avx2 or portable (default: the best for this CPU, as the heading\n"
    "                      says): what the library does on a CPU whose best it is, with\n"
    "                      this CPU's caches (e.g. avx2 on an AVX-512 machine); not in a\n"
    "                      build with TG_BLAS=openblas. W3, W3jvp and W3dist give it in\n"
    "                      their context as gemm_kernel; W4's child runs the CPU's own\n"
    "  --quick             tiny sizes and few repetitions: checks that everything runs, the\n"
    "                      figures mean nothing\n"
    "  --data FILE         the digits CSV for W4 (default examples/data/digits.csv here or\n"
    "                      in the source tree)\n"
    "  --mpirun PATH       the MPI launcher for W3dist (default: the one found with MPI when\n"
    "                      tapegrad was built, else mpirun or mpiexec on the PATH)\n"
    "  --timeout SECONDS   stop a child run (W3dist's mpirun, W4's train) that takes longer\n"
    "                      and count it as failed (default: W3dist 120 s + 0.5 s a step, W4\n"
    "                      none)\n"
    "  --mpi               be one rank of W3dist in an MPI job started by the caller, e.g.\n"
    "                      mpirun -np 4 -x TG_NUM_THREADS=8 tapegrad bench W3dist --mpi;\n"
    "                      rank 0 prints the figure\n"
    "  --json              one JSON object per line: workload, metric, value, threads, dtype,\n"
    "                      reps, peak_rss_mib, cpu_over_wall (below 1 per thread: the\n"
    "                      CPU was shared) and the workload's context\n"
    "  -h, --help          show this help\n"
    "\n"
    "A workload that cannot run here (W4 without a train command or without the data, W3dist\n"
    "on more than one rank without MPI or mpirun) says so and the others go on; with --json\n"
    "its line has \"value\": null and \"unavailable\". The threads of a W3dist figure are\n"
    "all its ranks' (ranks x threads_per_rank).\n"
    "\n"
    "Exit status: 0 success; 1 a workload failed; 2 bad usage.\n";

/* ---- options --------------------------------------------------------------------------------- */

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* "1", "1,2": each count from 1 to 1024, at most MAX_THREAD_COUNTS of them. */
static bool parse_threads(const char *s, bench_opts *o)
{
    o->n_threads = 0;
    for (;;) {
        size_t len = strcspn(s, ",");
        char tok[16];
        if (len == 0 || len >= sizeof tok || o->n_threads == MAX_THREAD_COUNTS)
            return false;
        memcpy(tok, s, len);
        tok[len] = '\0';
        if (!parse_int(tok, 1, 1024, &o->threads[o->n_threads++]))
            return false;
        if (s[len] == '\0')
            return true;
        s += len + 1;
    }
}

/* "0", "0,1", "2-3": CPU numbers (ranges inclusive) into set, and into o's list in the order
 * given (once each); false when malformed. */
static bool parse_cpus(const char *s, cpu_set_t *set, bench_opts *o)
{
    CPU_ZERO(set);
    o->n_cpus = 0;
    for (;;) {
        char *end;
        errno = 0;
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s || errno || lo < 0 || lo >= CPU_SETSIZE)
            return false;
        if (*end == '-') {
            const char *h = end + 1;
            hi = strtol(h, &end, 10);
            if (end == h || errno || hi < lo || hi >= CPU_SETSIZE)
                return false;
        }
        for (long c = lo; c <= hi; c++) {
            if (!CPU_ISSET((size_t)c, set) && o->n_cpus < MAX_CPUS)
                o->cpu_list[o->n_cpus++] = (int)c;
            CPU_SET((size_t)c, set);
        }
        if (*end == '\0')
            return true;
        if (*end != ',')
            return false;
        s = end + 1;
    }
}

/* The packed GEMM kernel called s (tg__gemm_path_name), into *path; false for any other name. */
static bool parse_kernel(const char *s, tg_gemm_path *path)
{
    for (int p = 0; p < TG_GEMM_PATH_COUNT; p++)
        if (tg__gemm_is_packed((tg_gemm_path)p) &&
            strcmp(s, tg__gemm_path_name((tg_gemm_path)p)) == 0) {
            *path = (tg_gemm_path)p;
            return true;
        }
    return false;
}

/* Pins every thread of this process (the pool's workers too, if they already run) to `want`,
 * so that threads and children started later inherit it; false (errno set) when one cannot
 * be. */
static bool set_affinity(const cpu_set_t *want)
{
    DIR *d = opendir("/proc/self/task");
    bool ok = sched_setaffinity(0, sizeof *want, want) == 0;
    for (struct dirent *e; ok && d && (e = readdir(d));)
        if (e->d_name[0] != '.')
            ok = sched_setaffinity((pid_t)atoi(e->d_name), sizeof *want, want) == 0;
    if (d)
        closedir(d);
    return ok;
}

/* set_affinity for --cpu: each CPU must be one this process may run on now; else a usage
 * error naming it and those it may. */
static int pin_cpus(const char *arg, const cpu_set_t *want)
{
    cpu_set_t have;
    if (sched_getaffinity(0, sizeof have, &have) != 0)
        return usage_error("bench", "--cpu %s: cannot read this process's CPUs: %s", arg,
                           strerror(errno));
    for (size_t c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, want) && !CPU_ISSET(c, &have)) {
            char list[256] = "";
            size_t len = 0;
            for (size_t k = 0; k < CPU_SETSIZE && len + 8 < sizeof list; k++)
                if (CPU_ISSET(k, &have))
                    len +=
                        (size_t)snprintf(list + len, sizeof list - len, "%s%zu", len ? "," : "", k);
            return usage_error("bench",
                               "--cpu %s: CPU %zu is not available to this process (it may run "
                               "on %s)",
                               arg, c, list);
        }
    if (!set_affinity(want))
        return usage_error("bench", "--cpu %s: cannot pin this process: %s", arg, strerror(errno));
    return EXIT_OK;
}

static int bench_parse_args(int argc, char **argv, bench_opts *o)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"W1", DO_W1},     {"W1replay", DO_W1REPLAY}, {"W2", DO_W2},
                 {"W3", DO_W3},     {"W3dist", DO_W3DIST},     {"W4", DO_W4},
                 {"gemm", DO_GEMM}, {"W3jvp", DO_W3JVP},       {"ops", DO_OPS},
                 {"all", DO_ALL},   {"targets", DO_TARGETS}};
    o->dtype = -1;
    cpu_set_t cpus;
    tg_gemm_path kernel = TG_GEMM_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(BENCH_USAGE, stdout);
            fputs(BENCH_USAGE_OPTIONS, stdout);
            return -1;
        }
        if (a[0] != '-') {
            size_t k = 0;
            while (k < sizeof names / sizeof *names && strcasecmp(a, names[k].name) != 0)
                k++;
            if (k == sizeof names / sizeof *names)
                return usage_error("bench",
                                   "unknown workload '%s' (W1, W1replay, W2, W3, W3dist, W4, "
                                   "gemm, W3jvp, ops, all or targets)",
                                   a);
            o->workloads |= names[k].bit;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--quick") == 0) {
            o->quick = true;
            continue;
        }
        if (strcmp(a, "--mpi") == 0) {
            o->mpi = true;
            continue;
        }
        static const char *const with_value[] = {"--threads", "--dtype",   "--reps", "--data",
                                                 "--mpirun",  "--timeout", "--cpu",  "--kernel"};
        const char *opt = NULL;
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !opt; k++)
            if (match_option(a, with_value[k], &v))
                opt = with_value[k];
        if (!opt)
            return usage_error("bench", "unknown option '%s'", a);
        if (!v) {
            if (i + 1 >= argc)
                return usage_error("bench", "option '%s' needs a value", opt);
            v = argv[++i];
        }
        if (strcmp(opt, "--threads") == 0) {
            if (!parse_threads(v, o))
                return usage_error("bench",
                                   "--threads takes counts from 1 to 1024, at most %d separated "
                                   "by commas, not '%s'",
                                   MAX_THREAD_COUNTS, v);
        } else if (strcmp(opt, "--dtype") == 0) {
            tg_dtype dt;
            if (!parse_dtype(v, &dt))
                return usage_error("bench", "--dtype must be f32 or f64, not '%s'", v);
            o->dtype = (int)dt;
        } else if (strcmp(opt, "--reps") == 0) {
            if (!parse_int(v, 1, 1000000, &o->reps))
                return usage_error("bench",
                                   "--reps must be a whole number from 1 to 1000000, "
                                   "not '%s'",
                                   v);
        } else if (strcmp(opt, "--timeout") == 0) {
            char *end;
            errno = 0;
            o->timeout = strtod(v, &end);
            if (end == v || *end || errno || !(o->timeout > 0 && o->timeout <= 1e6))
                return usage_error("bench",
                                   "--timeout must be a number of seconds above 0 (at most "
                                   "1000000), not '%s'",
                                   v);
        } else if (strcmp(opt, "--cpu") == 0) {
            if (!parse_cpus(v, &cpus, o))
                return usage_error("bench",
                                   "--cpu takes CPU numbers separated by commas (ranges as "
                                   "0-3), not '%s'",
                                   v);
            o->cpus = v;
        } else if (strcmp(opt, "--kernel") == 0) {
            if (!parse_kernel(v, &kernel))
                return usage_error("bench",
                                   "--kernel must be avx512wide, avx512, avx2 or portable, not "
                                   "'%s'",
                                   v);
            o->kernel = v;
        } else if (strcmp(opt, "--mpirun") == 0) {
            o->mpirun = v;
        } else {
            o->data = v;
        }
    }
    if (!o->workloads)
        o->workloads = DO_ALL;
    if (o->workloads & DO_TARGETS)
        o->workloads |= DO_W1 | DO_W2 | DO_W3 | DO_GEMM;
    /* A rank joins one MPI job, once: MPI cannot start again in a process that finished it. */
    if (o->mpi && o->workloads != DO_W3DIST)
        return usage_error("bench", "--mpi runs one rank of W3dist; name W3dist and no other "
                                    "workload");
    if (o->mpi && o->n_threads > 1)
        return usage_error("bench", "--mpi takes one thread count (each rank's), not %d",
                           o->n_threads);
    if (o->kernel && tg__gemm_available(TG_GEMM_BLAS)) /* then OpenBLAS takes them all */
        return usage_error("bench", "--kernel: this build multiplies with OpenBLAS "
                                    "(TG_BLAS=openblas), not with tapegrad's kernels");
    if (o->kernel && !tg__gemm_prefer(kernel))
        return usage_error("bench", "--kernel %s: this CPU cannot run it", o->kernel);
    if (o->cpus) { /* before the library starts its pool, whose workers then inherit it */
        int st = pin_cpus(o->cpus, &cpus);
        if (st != EXIT_OK)
            return st;
    }
    if (o->n_threads == 0 && (o->workloads & DO_TARGETS)) { /* 1 and 2, where there are 2 */
        cpu_set_t have;
        int n = o->cpus                                         ? o->n_cpus
                : sched_getaffinity(0, sizeof have, &have) == 0 ? CPU_COUNT(&have)
                                                                : 1;
        o->threads[o->n_threads++] = 1;
        if (n > 1)
            o->threads[o->n_threads++] = 2;
    }
    if (o->n_threads == 0) {
        o->threads[0] = tg_get_num_threads();
        o->n_threads = 1;
    }
    return EXIT_OK;
}

/* With targets and --cpu, a run of t threads is pinned to the first t CPUs of --cpu (all of
 * them when it lists fewer), written into buf ("1", "1,0") and set as b->cpus; so that
 * `--cpu 1,0` runs one thread on CPU 1 and two on both. Those CPUs passed pin_cpus's check
 * already; false when pinning fails all the same (said on stderr). */
static bool pin_for_threads(bench *b, int t, char *buf, size_t size)
{
    const bench_opts *o = b->o;
    cpu_set_t set;
    CPU_ZERO(&set);
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < o->n_cpus && i < t && len < size; i++) {
        CPU_SET((size_t)o->cpu_list[i], &set);
        len += (size_t)snprintf(buf + len, size - len, "%s%d", i ? "," : "", o->cpu_list[i]);
    }
    b->cpus = buf;
    if (set_affinity(&set))
        return true;
    bench_failed(b, "cpu", strerror(errno));
    return false;
}

/* The first two CPUs of a run: with --cpu, the first two it lists, when the run may use two
 * of them (`listed`: how many it may: a run of t threads of `targets` takes the first t,
 * pin_for_threads; any other run all of them); else the first two this process may run on,
 * which on a larger machine need not be those its threads run on. False when there are not
 * two. */
static bool first_two_cpus(const bench_opts *o, int listed, int *cpu_a, int *cpu_b)
{
    if (o->cpus) {
        *cpu_a = o->cpu_list[0];
        *cpu_b = listed > 1 ? o->cpu_list[1] : -1;
        return listed > 1;
    }
    cpu_set_t have;
    int n = 0;
    if (sched_getaffinity(0, sizeof have, &have) != 0)
        return false;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
        if (!CPU_ISSET((size_t)c, &have))
            continue;
        if (n++ == 0)
            *cpu_a = c;
        else
            *cpu_b = c;
    }
    return n == 2;
}

/* The round trip between the first two CPUs of a run of t threads, on more than one thread
 * (NaN otherwise, and in a rank of --mpi, which mpirun may have bound to one CPU), measured
 * now: the host may have moved them since the last workload. */
static double core_round_trip(const bench_opts *o, int t)
{
    int cpu_a, cpu_b;
    const int listed = (o->workloads & DO_TARGETS) && o->n_cpus > t ? t : o->n_cpus;
    return t > 1 && !o->mpi && first_two_cpus(o, listed, &cpu_a, &cpu_b)
               ? bench_core_round_trip_ns(cpu_a, cpu_b, o->quick)
               : NAN;
}

/* ---- the command ----------------------------------------------------------------------------- */

int cmd_bench(int argc, char **argv)
{
    bench_opts o = {0};
    int st = bench_parse_args(argc, argv, &o);
    if (st != EXIT_OK)
        return st < 0 ? EXIT_OK : st;
    /* (a rank of --mpi prints it when it knows it is rank 0, without the round trip) */
    if (!o.json && !o.mpi) {
        int cpu_a = -1, cpu_b = -1;
        const bool two = first_two_cpus(&o, o.n_cpus, &cpu_a, &cpu_b);
        bench_heading(&o, cpu_a, cpu_b,
                      two ? bench_core_round_trip_ns(cpu_a, cpu_b, o.quick) : NAN);
    }
    static const struct {
        unsigned bit;
        void (*run)(bench *b);
    } order[] = {{DO_W1, bench_w1},       {DO_W1REPLAY, bench_w1replay}, {DO_W2, bench_w2},
                 {DO_W3, bench_w3},       {DO_W3DIST, bench_w3dist},     {DO_GEMM, bench_gemm},
                 {DO_W3JVP, bench_w3jvp}, {DO_OPS, bench_ops},           {DO_W4, bench_w4}};
    bench b = {.o = &o, .cpus = o.cpus, .core_ns = NAN};
    const bool targets = (o.workloads & DO_TARGETS) != 0;
    char pinned[MAX_CPUS * 5]; /* "c,c,...": numbers below CPU_SETSIZE */
    for (size_t w = 0; w < sizeof order / sizeof *order; w++) {
        if (!(o.workloads & order[w].bit))
            continue;
        for (int t = 0; t < o.n_threads; t++) {
            /* targets: W1 and W2 once (their tiny graphs never reach the pool's threads) */
            if (targets && t > 0 && (order[w].bit & (DO_W1 | DO_W2)))
                continue;
            b.threads = o.threads[t];
            if (targets && o.cpus && !pin_for_threads(&b, b.threads, pinned, sizeof pinned))
                continue;
            if (tg_set_num_threads(b.threads) != TG_OK) {
                bench_failed(&b, "threads", tg_last_error());
                continue;
            }
            b.core_ns = core_round_trip(&o, b.threads);
            bench_rss_window_start();
            b.wall0 = monotonic_seconds();
            b.cpu0 = bench_cpu_seconds();
            order[w].run(&b);
        }
    }
    if (targets) {
        b.core_ns = NAN; /* each target gives its own figure's */
        bench_targets(&b);
    }
    free(b.seen);
    return b.failed ? EXIT_FAIL : EXIT_OK;
}
