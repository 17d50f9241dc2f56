/* bench_targets.c: `tapegrad bench targets`. After W1, W2, W3 and gemm have run (at 1 and 2
 * threads unless --threads says otherwise), each target of the performance issue becomes a
 * figure of workload "target": the ratio the run measured, the bar it is held against and
 * whether it held. Each is read off the figures the run printed above it (b->seen), so a
 * target says exactly what those figures said, and one command tells where a machine stands.
 *
 *   gemm_vs_openblas    1024^3 f32 over OpenBLAS's cblas_sgemm, same run     >= 1.15, each count
 *   gemm_of_peak        1024^3 f32 over one core's measured FMA peak          >= 0.75, 1 thread
 *   thin_of_1024        W3's slowest product with N or K = its classes (10),
 *                       over 1024^3 f32 at the same thread count             >= 0.40, each count
 *   w3_vs_torch         PyTorch's ms per step over W3's                       >= 1.25, each count
 *   w3_rss_of_bar       W3's peak RSS over its memory_bar_mib                 <= 1, each count
 *   w1_of_hand          W1's rate over the hand-written step's                >= 0.40
 *   w2_over_hand        W2's forward+backward over the hand-written chain's  <= 2.0
 *
 * A target whose figures are missing (no OpenBLAS, no PyTorch, a workload that failed, or a
 * --dtype that ran something else) is printed as unavailable, saying why. */
#include "bench.h"

#include <math.h>
#include <string.h>

/* The first figure the run emitted of this workload, metric and dtype (NULL: any) at
 * `threads` (0: any count), or NULL. */
static const figure *seen(const bench *b, const char *workload, const char *metric,
                          const char *dtype, int threads)
{
    for (int i = 0; i < b->n_seen; i++) {
        const figure *f = &b->seen[i];
        if (!f->unavailable && strcmp(f->workload, workload) == 0 &&
            strcmp(f->metric, metric) == 0 && (!dtype || strcmp(f->dtype, dtype) == 0) &&
            (threads == 0 || f->threads == threads))
            return f;
    }
    return NULL;
}

/* f is a gemm f32 figure measured at `threads`. */
static bool gemm_f32_at(const figure *f, int threads)
{
    return !f->unavailable && strcmp(f->workload, "gemm") == 0 && strcmp(f->dtype, "f32") == 0 &&
           f->threads == threads;
}

/* gemm's 1024^3 f32 figure at `threads` (the one product not of W3), or NULL. */
static const figure *gemm_big(const bench *b, int threads)
{
    for (int i = 0; i < b->n_seen; i++)
        if (gemm_f32_at(&b->seen[i], threads) && isnan(bench_ctx_num_of(&b->seen[i], "layer")))
            return &b->seen[i];
    return NULL;
}

/* Emits target `metric`, measured at `threads` in `dtype` (a literal): value against the bar
 * (at least it, or at most it when `at_most`), or unavailable with `why` when value is NaN.
 * `what` says what the value is; `from` (or NULL) is the figure it was read off, whose round
 * trip between the CPUs (on more than one thread) it repeats. On more than one thread it also
 * gives how much faster the run's 1024^3 product (128^3 with --quick) went there than on one
 * thread, when the run timed one thread too: near 1, the threads shared one core (a host may
 * give a VM's two vCPUs one core's two hardware threads), and the target says nothing of two
 * cores. */
static void target(bench *b, const char *metric, int threads, const char *dtype, double value,
                   double bar, bool at_most, const char *what, const char *why, const figure *from)
{
    figure f = bench_figure("target", metric, TG_F32, 1);
    f.dtype = dtype;
    f.threads = threads;
    char bar_text[32];
    snprintf(bar_text, sizeof bar_text, "%s%.2f", at_most ? "<=" : ">=", bar);
    if (isnan(value)) {
        f.unavailable = why;
    } else {
        f.value = round(value * 1000) / 1000;
        bench_ctx_str(&f, "bar", bar_text);
        bench_ctx_str(&f, "held", (at_most ? f.value <= bar : f.value >= bar) ? "yes" : "no");
    }
    bench_ctx_str(&f, "measures", what);
    const double core_ns = from ? bench_ctx_num_of(from, "core_round_trip_ns") : NAN;
    if (!isnan(core_ns))
        bench_ctx_num(&f, "core_round_trip_ns", core_ns);
    const figure *big = threads > 1 ? gemm_big(b, threads) : NULL;
    const figure *big1 = big ? gemm_big(b, 1) : NULL;
    if (big1)
        bench_ctx_num(&f, "gemm_speedup_vs_1_thread", round(big->value / big1->value * 100) / 100);
    bench_emit(b, &f);
}

/* The targets of the GEMM and W3 at one thread count. */
static void targets_at(bench *b, int t)
{
    const figure *big = gemm_big(b, t);
    const char *no_gemm = "gemm's 1024^3 f32 figure is missing";
    double vs = big ? bench_ctx_num_of(big, "vs_openblas") : NAN;
    target(b, "gemm_vs_openblas", t, "f32", vs, 1.15, false, "1024^3 f32 GFLOP/s over OpenBLAS's",
           big ? "OpenBLAS is not available here (tools/setup.sh --bench installs it)" : no_gemm,
           big);
    if (t == 1)
        target(b, "gemm_of_peak", t, "f32", big ? bench_ctx_num_of(big, "of_peak") : NAN, 0.75,
               false, "1024^3 f32 GFLOP/s over one core's measured FMA peak",
               big ? "the FMA peak could not be measured" : no_gemm, big);
    /* the slowest of W3's products with N or K = its classes, over 1024^3 */
    const size_t classes = w3_arch_of(b)->sizes[w3_arch_of(b)->n_layers];
    double thin = NAN;
    for (int i = 0; big && i < b->n_seen; i++) {
        const figure *f = &b->seen[i];
        if (gemm_f32_at(f, t) && !isnan(bench_ctx_num_of(f, "layer")) &&
            (bench_ctx_num_of(f, "N") == (double)classes ||
             bench_ctx_num_of(f, "K") == (double)classes))
            thin = isnan(thin) ? f->value / big->value : fmin(thin, f->value / big->value);
    }
    target(b, "thin_of_1024", t, "f32", thin, 0.40, false,
           "the slowest of W3's products with N or K = 10, GFLOP/s over 1024^3's",
           big ? "gemm's f32 figures of W3's products are missing" : no_gemm, big);
    const figure *w3 = seen(b, "W3", "ms_per_step", "f32", t);
    target(b, "w3_vs_torch", t, "f32", w3 ? bench_ctx_num_of(w3, "speedup_vs_torch") : NAN, 1.25,
           false, "PyTorch's ms per step over W3's",
           w3 ? "PyTorch did not run (W3's context says why)" : "W3's f32 figure is missing", w3);
    target(b, "w3_rss_of_bar", t, "f32",
           w3 ? w3->peak_rss_mib / bench_ctx_num_of(w3, "memory_bar_mib") : NAN, 1, true,
           "W3's peak RSS over its memory_bar_mib", "W3's f32 figure is missing", w3);
}

void bench_targets(bench *b)
{
    for (int i = 0; i < b->o->n_threads; i++)
        targets_at(b, b->o->threads[i]);
    /* W1 and W2 in whichever precision they ran (f64 unless --dtype says otherwise) */
    const figure *w1 = seen(b, "W1", "steps_per_s", NULL, 0);
    target(b, "w1_of_hand", w1 ? w1->threads : b->o->threads[0], w1 ? w1->dtype : "f64",
           w1 ? bench_ctx_num_of(w1, "ratio") : NAN, 0.40, false,
           "W1's steps per second over the hand-written step's", "W1's figure is missing", w1);
    const figure *w2 = seen(b, "W2", "ns_per_op_forward_backward", NULL, 0);
    target(b, "w2_over_hand", w2 ? w2->threads : b->o->threads[0], w2 ? w2->dtype : "f64",
           w2 ? bench_ctx_num_of(w2, "ratio") : NAN, 2.0, true,
           "W2's forward+backward ns per op over the hand-written chain's",
           "W2's figure is missing", w2);
}
