/* test_bench.c: `tapegrad bench` as a subprocess (TG_TOOLS_DIR). It checks what the command
 * promises, never how fast anything is: `bench all --quick --json` gives one well-formed JSON
 * object per line with the required fields for every workload (the gemm shapes are W3's, W4
 * runs train or says why it cannot, W3dist runs its ranks x threads or says it has no MPI),
 * --threads/--dtype reach every figure, W1 and W2's hand-written references compute what they
 * do (against values derived by hand), --cpu pins, `targets` reads each target off the
 * figures it ran, the table for people, and exit status 2 with a message for every malformed
 * command line.
 *
 * Suite bench_mpi (built with MPI only, TG_TEST_HAVE_MPI; its own CTest entry, labelled mpi)
 * runs W3dist on 2 ranks under mpirun: its figures, a rank under the caller's own mpirun, and
 * a launcher that fails or hangs. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/proc.h"

/* ---- running the command --------------------------------------------------------------------- */

/* Runs `tapegrad bench args...` (args NULL-terminated). */
static tp_run run(const char *const *args)
{
    const char *argv[64] = {"bench"};
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(i + 2, sizeof argv / sizeof *argv, "too many arguments");
        argv[i + 1] = args[i];
    }
    return tp_tapegrad(argv, NULL);
}

#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

/* ---- one flat JSON object per line -------------------------------------------------------------
 * The lines bench prints have string, number, null and true values only; anything else (or any
 * malformation) fails the test. */

/* Parses each line of out into lines[0..) (at most max); returns the count (tj_free_all them). */
static int parse_output(const char *out, tj *lines, int max)
{
    size_t n = tj_lines(out, lines, (size_t)max);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < lines[i].n; k++) {
            const tj *v = &lines[i].items[k];
            cr_assert(v->type == TJ_STR || v->type == TJ_NUM || v->type == TJ_NULL ||
                          (v->type == TJ_BOOL && v->num == 1),
                      "not a flat JSON object (\"%s\"):\n%s", lines[i].keys[k], out);
        }
    return (int)n;
}

/* The fields every figure has, and what they may hold. */
static void check_common(const tj *l, bool quick)
{
    const char *w = tj_str_of(l, "workload");
    cr_assert(strcmp(w, "W1") == 0 || strcmp(w, "W1replay") == 0 || strcmp(w, "W2") == 0 ||
                  strcmp(w, "W3") == 0 || strcmp(w, "W3dist") == 0 || strcmp(w, "W4") == 0 ||
                  strcmp(w, "gemm") == 0 || strcmp(w, "W3jvp") == 0 || strcmp(w, "ops") == 0,
              "unknown workload %s", w);
    cr_assert_neq(tj_str_of(l, "metric")[0], '\0');
    double threads = tj_num_of(l, "threads");
    cr_assert(threads >= 1 && threads == floor(threads), "threads %g", threads);
    const char *dtype = tj_str_of(l, "dtype");
    cr_assert(strcmp(dtype, "f32") == 0 || strcmp(dtype, "f64") == 0, "dtype %s", dtype);
    const tj *q = tj_get(l, "quick");
    cr_assert_eq(q != NULL && q->type == TJ_BOOL && q->num == 1, quick);
    const tj *v = tj_get(l, "value");
    cr_assert_not_null(v, "no value");
    if (v->type == TJ_NULL) { /* only a workload that cannot run here, and it says why */
        cr_assert(strcmp(w, "W4") == 0 || strcmp(w, "W3dist") == 0, "%s has no value", w);
        cr_assert_neq(tj_str_of(l, "unavailable")[0], '\0');
        return;
    }
    cr_assert_eq(v->type, TJ_NUM);
    cr_assert(isfinite(v->num) && v->num > 0, "%s %s = %g", w, tj_str_of(l, "metric"), v->num);
    cr_assert_null(tj_get(l, "unavailable"));
    double reps = tj_num_of(l, "reps");
    cr_assert(reps >= 1 && reps == floor(reps));
    cr_assert_gt(tj_num_of(l, "peak_rss_mib"), 0);
    cr_assert_gt(tj_num_of(l, "cpu_over_wall"), 0);
}

/* True when this build's tapegrad has a train command. */
static bool have_train(void)
{
    tp_run r = tp_tapegrad((const char *const[]){"help", "train", NULL}, NULL);
    tp_run_free(&r);
    return r.status == 0;
}

/* ---- W3dist ------------------------------------------------------------------------------ */

/* The W3dist lines among lines[0..n), in order, into out (at most max); returns the count. */
static int w3dist_lines(const tj *lines, int n, const tj **out, int max)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(tj_str_of(&lines[i], "workload"), "W3dist") == 0) {
            cr_assert_lt(k, max);
            out[k++] = &lines[i];
        }
    return k;
}

/* A W3dist figure that ran: its layout matches the threads, its parts are sane, and its loss
 * is `loss` (every configuration trains the same model on the same global batch for the same
 * number of steps, so they end at the same loss up to float rounding). */
static void check_w3dist_ran(const tj *l, double loss)
{
    check_common(l, true);
    cr_assert_str_eq(tj_str_of(l, "metric"), "ms_per_step");
    double ranks = tj_num_of(l, "ranks"), tpr = tj_num_of(l, "threads_per_rank");
    cr_assert(ranks >= 1 && tpr >= 1, "ranks %g x %g threads", ranks, tpr);
    cr_assert_eq(tj_num_of(l, "threads"), ranks * tpr);
    double ms = tj_num_of(l, "value"), share = tj_num_of(l, "allreduce_share");
    cr_assert(ms > 0 && share >= 0 && share <= 1, "%g ms, share %g", ms, share);
    ts_assert_close(share, tj_num_of(l, "allreduce_ms") / ms, 1e-9, 0, "allreduce_share");
    if (ranks == 1)
        cr_assert_eq(tj_num_of(l, "allreduce_ms"), 0, "one rank has no allreduce");
    else
        cr_assert_gt(tj_num_of(l, "allreduce_ms"), 0);
    double fb = tj_num_of(l, "forward_backward_ms"), u = tj_num_of(l, "update_ms");
    cr_assert(fb > 0 && u > 0, "forward_backward %g, update %g ms", fb, u);
    cr_assert_leq(fb + tj_num_of(l, "allreduce_ms") + u, ms * (1 + 1e-12), "the step's parts");
    cr_assert_eq(tj_num_of(l, "local_batch"), tj_num_of(l, "batch") / ranks);
    cr_assert_gt(tj_num_of(l, "grad_mib"), 0);
    double fl = tj_num_of(l, "final_loss");
    ts_assert_close(fl, loss, 0, 1e-4, "%g x %g: the final loss (got) against W3's", ranks, tpr);
    if (ranks * tpr == 1) /* 1 x 1 beside a run of more threads: no round trip of its own */
        cr_assert_null(tj_get(l, "core_round_trip_ns"));
}

/* ---- bench all --quick --json ------------------------------------------------------------ */

Test(bench, all_quick_json)
{
    tp_run r = RUN("all", "--quick", "--json");
    tp_expect_status(&r, 0);
    static tj lines[256];
    int n = parse_output(r.out, lines, 256);
    int w1 = 0, w2 = 0, w3 = 0, w4 = 0, w3jvp = 0, ops = 0;
    const tj *arch = NULL, *w1l = NULL, *w1r = NULL;
    for (int i = 0; i < n; i++) {
        const tj *l = &lines[i];
        check_common(l, true);
        const char *w = tj_str_of(l, "workload"), *m = tj_str_of(l, "metric");
        if (strcmp(w, "W1") == 0) {
            cr_assert_str_eq(m, "steps_per_s");
            cr_assert_str_eq(tj_str_of(l, "dtype"), "f64"); /* W1's own precision */
            w1l = l;
            w1++;
        } else if (strcmp(w, "W1replay") == 0) {
            cr_assert_str_eq(m, "steps_per_s");
            cr_assert_str_eq(tj_str_of(l, "dtype"), "f64");
            w1r = l;
        } else if (strcmp(w, "W2") == 0) {
            cr_assert(strcmp(m, "ns_per_op_forward") == 0 ||
                      strcmp(m, "ns_per_op_forward_backward") == 0);
            /* W2_WARMUPS_MIN (10) and W2_SETTLED (3) after them at least, W2_WARMUPS_MAX (40)
             * at most */
            const double warmups = tj_num_of(l, "warmup_passes");
            cr_assert(warmups >= 13 && warmups <= 40 && warmups == floor(warmups),
                      "warmup_passes %g", warmups);
            w2++;
        } else if (strcmp(w, "W3") == 0) {
            cr_assert_str_eq(m, "ms_per_step");
            cr_assert_str_eq(tj_str_of(l, "dtype"), "f32");
            /* the median step's parts: within it by construction, however noisy the steps */
            double f = tj_num_of(l, "forward_ms"), b = tj_num_of(l, "backward_ms"),
                   u = tj_num_of(l, "update_ms"), ms = tj_get(l, "value")->num;
            cr_assert(f > 0 && b > 0 && u > 0 && f + b + u <= ms * (1 + 1e-12),
                      "forward %g + backward %g + update %g ms, step %g", f, b, u, ms);
            ts_assert_close(tj_num_of(l, "backward_over_forward"), b / f, 0, 1e-9,
                            "backward_over_forward");
            cr_assert_gt(tj_num_of(l, "memory_bar_mib"), 16);
            cr_assert(isfinite(tj_num_of(l, "final_loss")));
            /* PyTorch's side: its figures and the speedup, or why it cannot run here */
            if (tj_get(l, "torch_ms")) {
                double torch = tj_num_of(l, "torch_ms");
                cr_assert_gt(torch, 0);
                double speedup = tj_num_of(l, "speedup_vs_torch"); /* the rounds' median */
                cr_assert(isfinite(speedup) && speedup > 0, "speedup_vs_torch %g", speedup);
                cr_assert_neq(tj_str_of(l, "torch_blas")[0], '\0');
            } else {
                cr_assert_neq(tj_str_of(l, "torch")[0], '\0', "W3 says why torch cannot run");
            }
            arch = l;
            w3++;
        } else if (strcmp(w, "W4") == 0) {
            w4++;
        } else if (strcmp(w, "W3jvp") == 0) { /* J v over forward; J v checked to f32 */
            cr_assert_str_eq(m, "jvp_over_forward");
            double f = tj_num_of(l, "forward_ms"), j = tj_num_of(l, "jvp_ms");
            ts_assert_close(tj_get(l, "value")->num, j / f, 0, 1e-9, "jvp_over_forward");
            cr_assert_lt(tj_num_of(l, "check_rel_err"), 1e-3);
            w3jvp++;
        } else if (strcmp(w, "ops") == 0) { /* one op's forward plus backward per element */
            double f = tj_num_of(l, "forward_ns_per_element"),
                   b = tj_num_of(l, "backward_ns_per_element");
            cr_assert(f >= 0 && b >= 0 && f + b > 0, "%s: %g, %g", m, f, b);
            ts_assert_close(tj_get(l, "value")->num, f + b, 0, 1e-9, "%s", m);
            cr_assert_str_eq(tj_str_of(l, "shape"), "64x64");
            ops++;
        }
    }
    cr_assert_eq(w3jvp, 1);
    cr_assert_eq(ops, 22, "one figure per case of ops");
    cr_assert_eq(w1, 1);
    /* W1replay trains the same path by replaying one recording: the same loss, bit for bit */
    cr_assert(w1l && w1r, "W1 and W1replay");
    cr_assert_eq(tj_num_of(w1r, "final_loss"), tj_num_of(w1l, "final_loss"));
    cr_assert_eq(tj_num_of(w1r, "steps"), tj_num_of(w1l, "steps"));
    cr_assert_eq(w2, 2);
    cr_assert_eq(w3, 1);
    cr_assert_eq(w4, have_train() ? 2 : 1, "W4: %d lines", w4);

    /* W3dist at the library's default thread count T: R x T/R for each R dividing T, largest
     * R first, then 1 x 1; more than one rank needs MPI. */
    const tj *wd[16];
    int n_dist = w3dist_lines(lines, n, wd, 16), seen = 0;
    int T = (int)tj_num_of(arch, "threads");
    for (int ranks = T; ranks >= 1; ranks--) {
        if (T % ranks)
            continue;
        cr_assert_lt(seen, n_dist, "no W3dist line for %d ranks", ranks);
        const tj *l = wd[seen++];
        cr_assert_eq(tj_num_of(l, "ranks"), ranks);
        cr_assert_eq(tj_num_of(l, "threads_per_rank"), T / ranks);
#ifndef TG_TEST_HAVE_MPI
        if (ranks > 1) {
            check_common(l, true);
            ts_assert_has(tj_str_of(l, "unavailable"), "built without MPI");
            continue;
        }
#endif
        check_w3dist_ran(l, tj_num_of(arch, "final_loss"));
    }
    if (T > 1) {
        cr_assert_lt(seen, n_dist, "no 1 x 1 reference");
        cr_assert_eq(tj_num_of(wd[seen], "ranks") * tj_num_of(wd[seen], "threads_per_rank"), 1);
        check_w3dist_ran(wd[seen++], tj_num_of(arch, "final_loss"));
    }
    cr_assert_eq(seen, n_dist, "%d W3dist lines, want %d", n_dist, seen);

    /* gemm: per dtype, one square product, then each of W3's layers forward and its
     * backward products, with the shapes W3's own line describes */
    size_t sizes[8], n_sizes = 0;
    char layers[256];
    snprintf(layers, sizeof layers, "%s", tj_str_of(arch, "layers"));
    for (char *save = NULL, *t = strtok_r(layers, "-", &save); t; t = strtok_r(NULL, "-", &save))
        sizes[n_sizes++] = (size_t)atol(t);
    cr_assert_eq(n_sizes, 4, "W3 has three layers");
    double batch = tj_num_of(arch, "batch");
    const char *dtypes[2] = {"f32", "f64"};
    for (int d = 0; d < 2; d++) {
        int square = 0, fwd[3] = {0}, dA[3] = {0}, dB[3] = {0};
        for (int i = 0; i < n; i++) {
            const tj *l = &lines[i];
            if (strcmp(tj_str_of(l, "workload"), "gemm") ||
                strcmp(tj_str_of(l, "dtype"), dtypes[d]))
                continue;
            cr_assert_str_eq(tj_str_of(l, "metric"), "gflops");
            double M = tj_num_of(l, "M"), N = tj_num_of(l, "N"), K = tj_num_of(l, "K");
            const char *form = tj_str_of(l, "form");
            if (!tj_get(l, "layer")) {
                cr_assert(M == N && N == K && strcmp(form, "A.B") == 0);
                square++;
                continue;
            }
            cr_assert_str_eq(tj_str_of(l, "of"), "W3");
            int k = (int)tj_num_of(l, "layer");
            cr_assert(k >= 0 && k < 3);
            double in = (double)sizes[k], out = (double)sizes[k + 1];
            if (strcmp(form, "A.B") == 0) { /* (batch,in)·(in,out) */
                cr_assert(M == batch && K == in && N == out);
                fwd[k]++;
            } else if (strcmp(form, "dY.B^T") == 0) { /* dX (batch,in) = dY·Wᵀ */
                cr_assert(M == batch && K == out && N == in);
                dA[k]++;
            } else { /* dW (in,out) = Xᵀ·dY */
                cr_assert_str_eq(form, "A^T.dY");
                cr_assert(M == in && K == batch && N == out);
                dB[k]++;
            }
        }
        cr_assert_eq(square, 1, "%s", dtypes[d]);
        for (int k = 0; k < 3; k++) {
            cr_assert_eq(fwd[k], 1, "%s layer %d forward", dtypes[d], k);
            cr_assert_eq(dB[k], 1, "%s layer %d dW", dtypes[d], k);
            /* W3's input needs no gradient, so layer 0 has no dX */
            cr_assert_eq(dA[k], k > 0, "%s layer %d dX", dtypes[d], k);
        }
    }
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

/* ---- bench targets ---------------------------------------------------------------------- */

/* The first line of workload w, metric m (NULL: any) and threads t (0: any), or NULL. */
static const tj *line_of(const tj *lines, int n, const char *w, const char *m, int t)
{
    for (int i = 0; i < n; i++)
        if (strcmp(tj_str_of(&lines[i], "workload"), w) == 0 &&
            (!m || strcmp(tj_str_of(&lines[i], "metric"), m) == 0) &&
            (t == 0 || tj_num_of(&lines[i], "threads") == t))
            return &lines[i];
    return NULL;
}

/* Target m at t threads says `want` (NAN: unavailable, saying why) rounded to 3 decimals, to
 * within tol, and whether it holds against its bar (at least `bar`, or at most when at_most). */
static void check_target(const tj *lines, int n, const char *m, int t, double want, double tol,
                         double bar, bool at_most)
{
    const tj *l = line_of(lines, n, "target", m, t);
    cr_assert_not_null(l, "no target %s at %d threads", m, t);
    cr_assert_neq(tj_str_of(l, "measures")[0], '\0');
    if (isnan(want)) {
        cr_assert_eq(tj_get(l, "value")->type, TJ_NULL, "%s", m);
        cr_assert_neq(tj_str_of(l, "unavailable")[0], '\0');
        return;
    }
    double v = tj_num_of(l, "value");
    ts_assert_close(v, round(want * 1000) / 1000, tol, 0, "%s at %d threads", m, t);
    char bar_text[32];
    snprintf(bar_text, sizeof bar_text, "%s%.2f", at_most ? "<=" : ">=", bar);
    cr_assert_str_eq(tj_str_of(l, "bar"), bar_text);
    cr_assert_str_eq(tj_str_of(l, "held"), (at_most ? v <= bar : v >= bar) ? "yes" : "no", "%s", m);
}

/* `bench targets`: W1 and W2 once, W3 and gemm (f32 only) at 1 and 2 threads (2 only where
 * the process may use two CPUs; --cpu B,A runs 1 thread on B and 2 on both), then each target
 * as read off those figures, held or not against its bar */
Test(bench, targets)
{
    cpu_set_t have;
    cr_assert_eq(sched_getaffinity(0, sizeof have, &have), 0);
    int cpu[2], n_cpus = 0;
    for (int c = 0; c < CPU_SETSIZE && n_cpus < 2; c++)
        if (CPU_ISSET(c, &have))
            cpu[n_cpus++] = c;
    char list[32], one[16];
    snprintf(one, sizeof one, "%d", cpu[n_cpus - 1]);
    snprintf(list, sizeof list, "%d,%d", cpu[n_cpus - 1], cpu[0]);
    tp_run r = n_cpus == 2 ? RUN("targets", "--quick", "--json", "--cpu", list)
                           : RUN("targets", "--quick", "--json");
    tp_expect_status(&r, 0);
    static tj lines[128];
    int n = parse_output(r.out, lines, 128);
    int w1 = 0, w2 = 0, w3 = 0;
    for (int i = 0; i < n; i++) {
        const char *w = tj_str_of(&lines[i], "workload");
        if (strcmp(w, "target") == 0)
            continue;
        check_common(&lines[i], true);
        w1 += strcmp(w, "W1") == 0;
        w2 += strcmp(w, "W2") == 0;
        w3 += strcmp(w, "W3") == 0;
        if (strcmp(w, "gemm") == 0)
            cr_assert_str_eq(tj_str_of(&lines[i], "dtype"), "f32");
        else
            cr_assert(strcmp(w, "W1") == 0 || strcmp(w, "W2") == 0 || strcmp(w, "W3") == 0, "%s",
                      w);
    }
    cr_assert(w1 == 1 && w2 == 2 && w3 == n_cpus, "W1 %d, W2 %d, W3 %d lines", w1, w2, w3);
    double big1_gflops = NAN; /* 1024^3 on one thread */
    for (int t = 1; t <= n_cpus; t++) {
        const tj *big = NULL;
        double thin = INFINITY;
        for (int i = 0; i < n; i++) { /* the 1024^3 product first, then W3's */
            const tj *l = &lines[i];
            if (strcmp(tj_str_of(l, "workload"), "gemm") || tj_num_of(l, "threads") != t)
                continue;
            if (!tj_get(l, "layer"))
                big = l;
            else if (tj_num_of(l, "N") == 10 || tj_num_of(l, "K") == 10)
                thin = fmin(thin, tj_num_of(l, "value") / tj_num_of(big, "value"));
        }
        cr_assert_not_null(big);
        cr_assert(isfinite(thin), "W3's thin products at %d threads", t);
        const tj *vs = tj_get(big, "vs_openblas");
        check_target(lines, n, "gemm_vs_openblas", t, vs ? vs->num : NAN, 1e-12, 1.15, false);
        if (t == 1)
            check_target(lines, n, "gemm_of_peak", t, tj_num_of(big, "of_peak"), 1e-12, 0.75,
                         false);
        else
            cr_assert_null(line_of(lines, n, "target", "gemm_of_peak", t), "one thread only");
        check_target(lines, n, "thin_of_1024", t, thin, 1e-12, 0.40, false);
        const tj *w3l = line_of(lines, n, "W3", NULL, t);
        cr_assert_not_null(w3l, "W3 at %d threads", t);
        const tj *speedup = tj_get(w3l, "speedup_vs_torch");
        check_target(lines, n, "w3_vs_torch", t, speedup ? speedup->num : NAN, 1e-12, 1.25, false);
        /* (the line prints the peak RSS to 0.1 MiB) */
        check_target(lines, n, "w3_rss_of_bar", t,
                     tj_num_of(w3l, "peak_rss_mib") / tj_num_of(w3l, "memory_bar_mib"), 0.01, 1,
                     true);
        if (n_cpus == 2)
            cr_assert_str_eq(tj_str_of(w3l, "cpus"), t == 1 ? one : list);
        /* How far apart the CPUs were: in each figure of two threads, and in each target the
         * same as in the figure it was read off; never on one thread. */
        const tj *w3_trip = tj_get(w3l, "core_round_trip_ns"),
                 *big_trip = tj_get(big, "core_round_trip_ns");
        static const char *const of_big[] = {"gemm_vs_openblas", "thin_of_1024"},
                                 *const of_w3[] = {"w3_vs_torch", "w3_rss_of_bar"};
        cr_assert(t == 1 ? !w3_trip && !big_trip
                         : w3_trip && w3_trip->num > 0 && big_trip && big_trip->num > 0);
        /* and how much faster 1024^3 went on two threads than on one, to 0.01 (--json prints
         * the GFLOP/s in full) */
        const double gain = t == 1 ? NAN : round(tj_num_of(big, "value") / big1_gflops * 100) / 100;
        for (int k = 0; k < 4; k++) {
            const tj *from = k < 2 ? big_trip : w3_trip;
            const char *m = k < 2 ? of_big[k] : of_w3[k - 2];
            const tj *target_line = line_of(lines, n, "target", m, t);
            const tj *trip = tj_get(target_line, "core_round_trip_ns");
            cr_assert(from ? trip && trip->num == from->num : !trip, "%s at %d threads", m, t);
            const tj *gemm_speedup = tj_get(target_line, "gemm_speedup_vs_1_thread");
            cr_assert(t == 1 ? !gemm_speedup : gemm_speedup && gemm_speedup->num == gain,
                      "%s at %d threads", m, t);
        }
        if (t == 1)
            big1_gflops = tj_num_of(big, "value");
    }
    for (int i = 0; i < n; i++) /* W1, W2 and their targets: one thread */
        if (tj_num_of(&lines[i], "threads") == 1)
            cr_assert_null(tj_get(&lines[i], "core_round_trip_ns"), "%s %s",
                           tj_str_of(&lines[i], "workload"), tj_str_of(&lines[i], "metric"));
    check_target(lines, n, "w1_of_hand", 1, tj_num_of(line_of(lines, n, "W1", NULL, 0), "ratio"),
                 1e-12, 0.40, false);
    check_target(lines, n, "w2_over_hand", 1,
                 tj_num_of(line_of(lines, n, "W2", "ns_per_op_forward_backward", 0), "ratio"),
                 1e-12, 2.0, true);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

/* W4 runs `tapegrad train` in a child; without a train command it says so and counts as no
 * failure. */
Test(bench, w4_train_or_unavailable)
{
    tp_run r = RUN("W4", "--quick", "--json");
    tp_expect_status(&r, 0);
    tj lines[4];
    int n = parse_output(r.out, lines, 4);
    if (have_train()) {
        cr_assert_eq(n, 2, "%s", r.out);
        for (int i = 0; i < n; i++)
            check_common(&lines[i], true);
        double acc = tj_num_of(&lines[0], "value");
        cr_assert_str_eq(tj_str_of(&lines[0], "metric"), "test_accuracy");
        cr_assert(acc > 0 && acc <= 1, "accuracy %g", acc);
        cr_assert_str_eq(tj_str_of(&lines[1], "metric"), "wall_s");
    } else {
        cr_assert_eq(n, 1, "%s", r.out);
        check_common(&lines[0], true);
        ts_assert_has(tj_str_of(&lines[0], "unavailable"), "train");
    }
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

Test(bench, w4_data_that_is_not_there)
{
    tp_run r = RUN("W4", "--quick", "--data", "/nonexistent/digits.csv");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad bench: W4: cannot read /nonexistent/digits.csv");
    tp_run_free(&r);
}

/* A child run that outlasts --timeout is stopped and counted as failed (train takes far longer
 * than a millisecond just to start and read the data). */
Test(bench, w4_timeout)
{
    if (!have_train())
        cr_skip_test("no train command in this build");
    tp_run r = RUN("W4", "--timeout", "0.001");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad bench: W4: tapegrad train did not finish within 0.001 s and "
                         "was stopped");
    tp_run_free(&r);
}

/* ---- options ------------------------------------------------------------------------------ */

Test(bench, threads_and_dtype_reach_every_figure)
{
    tp_run r =
        RUN("W1", "w2", "--quick", "--json", "--threads", "1,2", "--dtype=f32", "--reps", "1");
    tp_expect_status(&r, 0);
    tj lines[16];
    int n = parse_output(r.out, lines, 16);
    cr_assert_eq(n, 6, "W1 and W2's two figures, at 1 and 2 threads:\n%s", r.out);
    int at[3] = {0};
    for (int i = 0; i < n; i++) {
        check_common(&lines[i], true);
        cr_assert_str_eq(tj_str_of(&lines[i], "dtype"), "f32");
        cr_assert_eq(tj_num_of(&lines[i], "reps"), 1);
        at[(int)tj_num_of(&lines[i], "threads")]++;
    }
    cr_assert(at[1] == 3 && at[2] == 3);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

static void expect_usage(const char *const *args, const char *message);

/* The hand-written W1 and W2 (tools/bench_hand.c) compute what W1 and W2 do: W1 --quick's 200
 * SGD steps end at the loss of the same steps derived by hand and run in python3 (math.exp,
 * doubles): 3.408445410158422e-05, still short of convergence, where the loss is rounding
 * noise; W2 --quick's chain of 1,000 tanh has dy/dw = 1.1499715244795448 (math.tanh). Both
 * tapegrad's figures and the hand-written ones must agree with them; and each figure carries
 * its hand-written rate and the ratio (the median of each repetition's, so not exactly the
 * ratio of the medians). */
static void check_hand_references(const char *dtype, double rel)
{
    tp_run r = RUN("W1", "W2", "--quick", "--json", "--threads", "1", "--dtype", dtype);
    tp_expect_status(&r, 0);
    tj lines[8];
    int n = parse_output(r.out, lines, 8);
    cr_assert_eq(n, 3, "%s", r.out);
    for (int i = 0; i < n; i++) {
        const tj *l = &lines[i];
        check_common(l, true);
        double v = tj_num_of(l, "value");
        if (strcmp(tj_str_of(l, "workload"), "W1") == 0) {
            double h = tj_num_of(l, "hand_c_steps_per_s"), ratio = tj_num_of(l, "ratio");
            cr_assert(h > 0 && isfinite(ratio) && ratio > 0 && v > 0, "W1: hand %g, ratio %g", h,
                      ratio);
            ts_assert_close(tj_num_of(l, "final_loss"), 3.408445410158422e-05, 0, rel,
                            "%s W1's final loss", dtype);
            ts_assert_close(tj_num_of(l, "hand_c_final_loss"), 3.408445410158422e-05, 0, rel,
                            "%s hand-written W1's final loss", dtype);
            ts_assert_close(tj_num_of(l, "hand_c_final_loss"), tj_num_of(l, "final_loss"), 0, rel,
                            "%s W1 against the hand-written", dtype);
        } else {
            double h = tj_num_of(l, "hand_c_ns_per_op"), ratio = tj_num_of(l, "ratio");
            cr_assert(h > 0 && isfinite(ratio) && ratio > 0 && v > 0, "W2: hand %g, ratio %g", h,
                      ratio);
            ts_assert_close(tj_num_of(l, "dy_dw"), 1.1499715244795448, 0, rel, "W2 dy/dw");
            if (strcmp(tj_str_of(l, "metric"), "ns_per_op_forward_backward") == 0)
                ts_assert_close(tj_num_of(l, "hand_c_dy_dw"), 1.1499715244795448, 0, rel,
                                "hand-written W2 dy/dw");
        }
    }
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

Test(bench, hand_written_references)
{
    check_hand_references("f64", 1e-12);
    check_hand_references("f32", 1e-3);
}

/* --cpu pins the run to a CPU it may use and says so in the context of W1's figure */
Test(bench, cpu_pinning)
{
    cpu_set_t have;
    cr_assert_eq(sched_getaffinity(0, sizeof have, &have), 0);
    size_t cpu = 0;
    while (!CPU_ISSET(cpu, &have))
        cpu++;
    char arg[32];
    snprintf(arg, sizeof arg, "%zu", cpu);
    tp_run r = RUN("W1", "--quick", "--json", "--cpu", arg);
    tp_expect_status(&r, 0);
    tj lines[4];
    int n = parse_output(r.out, lines, 4);
    cr_assert_eq(n, 1, "%s", r.out);
    cr_assert_str_eq(tj_str_of(&lines[0], "cpus"), arg);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
    size_t absent = CPU_SETSIZE - 1;
    while (absent > 0 && CPU_ISSET(absent, &have))
        absent--;
    snprintf(arg, sizeof arg, "%zu", absent);
    expect_usage((const char *const[]){"W1", "--cpu", arg, NULL}, "is not available to this "
                                                                  "process");
}

Test(bench, table_for_people)
{
    tp_run r = RUN("W2", "--quick");
    tp_expect_status(&r, 0);
    cr_assert(strstr(r.out, "tapegrad ") == r.out, "%s", r.out);
    cpu_set_t have;
    cr_assert_eq(sched_getaffinity(0, sizeof have, &have), 0);
    if (CPU_COUNT(&have) > 1) /* how far apart the first two are */
        ts_assert_has(r.out, "\ncores: a cache line from CPU ");
    else
        cr_assert_null(strstr(r.out, "\ncores: "));
    ts_assert_has(r.out, "\nworkload ");
    ts_assert_has(r.out, "\nW2       ns_per_op_forward ");
    ts_assert_has(r.out, "\nW2       ns_per_op_forward_backward ");
    cr_assert_null(strchr(r.out, '{'));
    cr_assert_str_eq(r.err, "");
    tp_run_free(&r);
}

Test(bench, help)
{
    tp_run r = RUN("--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad bench");
    ts_assert_has(r.out, "\nOptions:\n");
    ts_assert_has(r.out, "--kernel NAME");
    ts_assert_has(r.out, "Exit status: 0 success");
    tp_run_free(&r);
}

/* --kernel portable: every large product of gemm and W3 takes the portable kernel, which the
 * heading names with its FMA peak and each figure's context gives */
Test(bench, kernel_choice)
{
    tp_run r = RUN("gemm", "W3", "--quick", "--json", "--dtype", "f32", "--kernel", "portable");
    if (strstr(r.err, "this build multiplies with OpenBLAS")) { /* -DTG_BLAS=openblas */
        tp_expect_status(&r, 2);
        tp_run_free(&r);
        cr_skip_test("a build that multiplies with OpenBLAS has no --kernel");
    }
    tp_expect_status(&r, 0);
    tj lines[16];
    int n = parse_output(r.out, lines, 16), gemm = 0, w3 = 0;
    for (int i = 0; i < n; i++) {
        const char *w = tj_str_of(&lines[i], "workload");
        if (strcmp(w, "gemm") == 0) {
            gemm++;
            const char *k = tj_str_of(&lines[i], "kernel");
            cr_assert(strncmp(k, "portable ", 9) == 0, "gemm ran on %s", k);
        } else if (strcmp(w, "W3") == 0) {
            w3++;
            cr_assert_str_eq(tj_str_of(&lines[i], "gemm_kernel"), "portable");
        }
    }
    cr_assert(gemm > 1 && w3 == 1, "%d gemm and %d W3 figures:\n%s", gemm, w3, r.out);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);

    r = RUN("gemm", "--quick", "--kernel=portable");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "\ngemm: portable f32 tile ");
    ts_assert_has(r.out, "\nFMA peak of one core (portable): ");
    tp_run_free(&r);
}

/* Every malformed command line: exit 2, the reason and a pointer to --help, no figures. */
static void expect_usage(const char *const *args, const char *message)
{
    tp_run r = run(args);
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, message);
    ts_assert_has(r.err, "Try 'tapegrad bench --help'");
    cr_assert_str_eq(r.out, "");
    tp_run_free(&r);
}

#define EXPECT_USAGE(message, ...) expect_usage((const char *const[]){__VA_ARGS__, NULL}, message)

Test(bench, bad_arguments)
{
    EXPECT_USAGE("unknown workload 'W9'", "W9");
    EXPECT_USAGE("unknown workload 'gem'", "W1", "gem");
    EXPECT_USAGE("unknown option '--fast'", "--fast");
    EXPECT_USAGE("option '--threads' needs a value", "W1", "--threads");
    EXPECT_USAGE("--threads takes counts from 1 to 1024", "--threads", "0");
    EXPECT_USAGE("not 'two'", "--threads", "two");
    EXPECT_USAGE("not '1,'", "--threads", "1,");
    EXPECT_USAGE("not '1,,2'", "--threads=1,,2");
    EXPECT_USAGE("not '2000'", "--threads", "2000");
    EXPECT_USAGE("--dtype must be f32 or f64, not 'f16'", "--dtype", "f16");
    EXPECT_USAGE("--reps must be a whole number", "--reps", "0");
    EXPECT_USAGE("not '1.5'", "--reps", "1.5");
    EXPECT_USAGE("option '--data' needs a value", "W4", "--data");
    EXPECT_USAGE("option '--mpirun' needs a value", "W3dist", "--mpirun");
    EXPECT_USAGE("--timeout must be a number of seconds above 0", "--timeout", "0");
    EXPECT_USAGE("not 'soon'", "--timeout", "soon");
    EXPECT_USAGE("--cpu takes CPU numbers", "--cpu", "one");
    EXPECT_USAGE("not '0,'", "--cpu", "0,");
    EXPECT_USAGE("not '1-0'", "--cpu", "1-0");
    EXPECT_USAGE("not '100000'", "--cpu", "100000");
    EXPECT_USAGE("--kernel must be avx512wide, avx512, avx2 or portable, not 'direct'", "--kernel",
                 "direct");
    EXPECT_USAGE("option '--kernel' needs a value", "gemm", "--kernel");
#ifdef __x86_64__
    if (!__builtin_cpu_supports("avx512f")) /* a kernel this CPU lacks */
        EXPECT_USAGE("--kernel avx512: this CPU cannot run it", "--kernel", "avx512");
#else
    EXPECT_USAGE("--kernel avx2: this CPU cannot run it", "--kernel", "avx2");
#endif
    EXPECT_USAGE("--mpi runs one rank of W3dist", "--mpi");
    EXPECT_USAGE("--mpi runs one rank of W3dist", "W3", "W3dist", "--mpi");
    EXPECT_USAGE("--mpi takes one thread count (each rank's), not 2", "W3dist", "--mpi",
                 "--threads", "1,2");
}

/* ---- W3dist on 2 ranks, under mpirun ---------------------------------------------------- */

#ifdef TG_TEST_HAVE_MPI

/* 2 ranks x 1 thread against 1 x 2 and 1 x 1, at the same global batch; --dtype and --reps
 * reach the ranks too. */
Test(bench_mpi, w3dist_two_ranks_against_two_threads)
{
    tp_run r =
        RUN("W3dist", "--quick", "--json", "--threads", "2", "--dtype", "f64", "--reps", "2");
    tp_expect_status(&r, 0);
    tj lines[8];
    int n = parse_output(r.out, lines, 8);
    cr_assert_eq(n, 3, "2 x 1, 1 x 2 and 1 x 1:\n%s", r.out);
    double loss = tj_num_of(&lines[1], "final_loss"); /* 1 x 2, in this process */
    const double want[3][2] = {{2, 1}, {1, 2}, {1, 1}};
    for (int i = 0; i < n; i++) {
        cr_assert_eq(tj_num_of(&lines[i], "ranks"), want[i][0], "line %d", i);
        cr_assert_eq(tj_num_of(&lines[i], "threads_per_rank"), want[i][1], "line %d", i);
        check_w3dist_ran(&lines[i], loss);
        cr_assert_str_eq(tj_str_of(&lines[i], "dtype"), "f64");
        cr_assert_eq(tj_num_of(&lines[i], "reps"), 2);
    }
    /* the two ranks' peak memory and CPU are the larger and the sum of theirs */
    cr_assert_gt(tj_num_of(&lines[0], "peak_rss_mib"), 0);
    cr_log_info("W3dist --quick: 2 x 1 %.3f ms (allreduce share %.2f), 1 x 2 %.3f ms",
                tj_num_of(&lines[0], "value"), tj_num_of(&lines[0], "allreduce_share"),
                tj_num_of(&lines[1], "value"));
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

/* `bench W3dist --mpi` under the caller's mpirun: rank 0 alone prints, one figure. */
Test(bench_mpi, w3dist_rank_under_callers_mpirun)
{
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    tp_run r =
        tp_run_argv((const char *const[]){tp_env("TG_MPIEXEC"), "--allow-run-as-root",
                                          "--oversubscribe", "-np", "2", exe, "bench", "W3dist",
                                          "--mpi", "--quick", "--json", "--reps", "2", NULL},
                    NULL);
    tp_expect_status(&r, 0);
    tj lines[4];
    int n = parse_output(r.out, lines, 4);
    cr_assert_eq(n, 1, "rank 0's line alone:\n%s", r.out);
    check_w3dist_ran(&lines[0], tj_num_of(&lines[0], "final_loss"));
    cr_assert_eq(tj_num_of(&lines[0], "ranks"), 2);
    cr_assert_eq(tj_num_of(&lines[0], "reps"), 2);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);
}

/* A launcher that fails is a failed figure with its reason; the other figures still come. */
Test(bench_mpi, w3dist_launcher_that_fails)
{
    tp_run r = RUN("W3dist", "--quick", "--json", "--threads", "2", "--mpirun", "/bin/false");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad bench: W3dist: 2 ranks x 1 thread: /bin/false exited "
                         "with status 1");
    tj lines[8];
    int n = parse_output(r.out, lines, 8);
    cr_assert_eq(n, 2, "1 x 2 and 1 x 1:\n%s", r.out);
    tj_free_all(lines, (size_t)n);
    tp_run_free(&r);

    r = RUN("W3dist", "--quick", "--threads", "2", "--mpirun", "/nonexistent/mpirun");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "--mpirun /nonexistent/mpirun: no such program");
    tp_run_free(&r);
}

/* Writes an executable shell script; returns its path (static storage). */
static const char *script(const char *text)
{
    static char path[] = "/tmp/tg_bench_launcher_XXXXXX";
    strcpy(path + strlen(path) - 6, "XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    cr_assert_eq(chmod(path, 0700), 0, "%s", strerror(errno));
    return path;
}

/* A launcher of another MPI starts each process as a job of its own (a singleton: rank 0 of
 * 1): the figures would be of no allreduce at all, so it is a failure that says why. */
Test(bench_mpi, w3dist_launcher_of_another_mpi)
{
    /* drops "-np 2" and starts the command twice, each a singleton */
    const char *fake = script("#!/bin/sh\nexport ASAN_OPTIONS=detect_leaks=0\nshift 2\n"
                              "\"$@\" &\n\"$@\"\nwait\n");
    tp_run r = RUN("W3dist", "--quick", "--json", "--threads", "2", "--mpirun", fake);
    unlink(fake);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "started jobs of 1 rank, not one of 2: is it the launcher of the "
                         "MPI tapegrad was built with?");
    tp_run_free(&r);
}

/* A launcher that never finishes is stopped after --timeout. */
Test(bench_mpi, w3dist_launcher_that_hangs)
{
    const char *hang = script("#!/bin/sh\nexec sleep 120\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tp_run r = RUN("W3dist", "--quick", "--threads", "2", "--mpirun", hang, "--timeout", "1");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    unlink(hang);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "did not finish within 1 s and was stopped");
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_assert_lt(s, 60, "%g s", s); /* the 1 x 2 and 1 x 1 runs take well under a second */
    tp_run_free(&r);
}

#endif
