/* bench_w3dist.c: the bench's W3dist, W3 on MPI ranks x threads: ms per step, and the share
 * of it the gradient allreduce takes, for each way of splitting the cores; and the rank's
 * side of it, `bench W3dist --mpi`.
 *
 * The cores in effect (the thread count) used two ways at an equal global batch: R MPI ranks
 * of T threads each for every R x T = the count (2 x 1 and 1 x 2 on two cores), each rank on
 * its share of W3's batch with one allreduce of the gradient block per step, and 1 x 1 for
 * reference. One-rank configurations run in this process, without MPI; more ranks run this
 * binary under mpirun as `bench W3dist --mpi`, whose rank 0 prints its figure as a JSON line
 * that is read back here. */
#include "bench.h"

#include "common/clock.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One configuration's figures: each rank's medians, averaged over the ranks (which wait for
 * each other every step); peak RSS is the largest rank's, CPU over wall the ranks' sum. */
typedef struct w3dist_fig {
    double ms_per_step, peak_rss_mib, cpu_over_wall;
    double ranks, threads_per_rank, allreduce_ms, compute_ms, update_ms, local_batch, final_loss;
} w3dist_fig;

/* The figures' JSON keys, which both print a rank's line and read it back, and how the ranks'
 * values combine. Context keys start at W3DIST_CTX. */
enum w3dist_combine { MEAN, MAX, SUM };
static const struct {
    const char *key;
    size_t off;
    enum w3dist_combine combine;
} W3DIST_KEYS[] = {
    {"value", offsetof(w3dist_fig, ms_per_step), MEAN},
    {"peak_rss_mib", offsetof(w3dist_fig, peak_rss_mib), MAX},
    {"cpu_over_wall", offsetof(w3dist_fig, cpu_over_wall), SUM},
    {"ranks", offsetof(w3dist_fig, ranks), MEAN},
    {"threads_per_rank", offsetof(w3dist_fig, threads_per_rank), MEAN},
    {"allreduce_ms", offsetof(w3dist_fig, allreduce_ms), MEAN},
    {"forward_backward_ms", offsetof(w3dist_fig, compute_ms), MEAN},
    {"update_ms", offsetof(w3dist_fig, update_ms), MEAN},
    {"local_batch", offsetof(w3dist_fig, local_batch), MEAN},
    {"final_loss", offsetof(w3dist_fig, final_loss), MEAN},
};
enum { W3DIST_CTX = 3, W3DIST_N = sizeof W3DIST_KEYS / sizeof *W3DIST_KEYS };

static double *w3dist_field(w3dist_fig *r, size_t k)
{
    return (double *)(void *)((char *)r + W3DIST_KEYS[k].off);
}

/* The parameters of arch a: each layer's weights and biases. */
static double w3_numel(const w3_arch *a)
{
    double n = 0;
    for (int l = 0; l < a->n_layers; l++)
        n += (double)(a->sizes[l] + 1) * (double)a->sizes[l + 1];
    return n;
}

static void w3dist_emit(bench *b, const w3_arch *a, tg_dtype dt, int reps, w3dist_fig *r)
{
    figure f = bench_figure("W3dist", "ms_per_step", dt, reps);
    f.value = r->ms_per_step;
    f.peak_rss_mib = r->peak_rss_mib;
    f.cpu_over_wall = r->cpu_over_wall;
    f.threads = (int)lround(r->ranks * r->threads_per_rank);
    for (size_t k = W3DIST_CTX; k < W3DIST_N; k++) {
        bench_ctx_num(&f, W3DIST_KEYS[k].key, *w3dist_field(r, k));
        if (W3DIST_KEYS[k].off == offsetof(w3dist_fig, allreduce_ms))
            bench_ctx_num(&f, "allreduce_share", r->allreduce_ms / r->ms_per_step);
    }
    bench_ctx_num(&f, "batch", (double)a->batch);
    bench_ctx_str(&f, "layers", a->name);
    /* what one allreduce moves: the gradient block */
    bench_ctx_num(&f, "grad_mib", w3_numel(a) * (double)tg_dtype_size(dt) / (1024.0 * 1024.0));
    bench_ctx_kernel(b, &f);
    bench_emit(b, &f);
}

/* A configuration that cannot run here, and why. */
static void w3dist_unavailable(bench *b, tg_dtype dt, int ranks, int threads, const char *why)
{
    figure f = bench_figure("W3dist", "ms_per_step", dt, 0);
    f.threads = ranks * threads;
    f.unavailable = why;
    bench_ctx_num(&f, "ranks", ranks);
    bench_ctx_num(&f, "threads_per_rank", threads);
    bench_emit(b, &f);
}

/* This process's figures of a finished run; the caller adds RSS, CPU and the layout. */
static void w3dist_summary(const w3_run *run, w3_times *t, int reps, w3dist_fig *r)
{
    const double *const parts[3] = {t->fb, t->allreduce, t->upd};
    double part_ms[3];
    r->ms_per_step = bench_median_parts(t->step, parts, 3, reps, part_ms);
    r->compute_ms = part_ms[0];
    r->allreduce_ms = run->dist ? part_ms[1] : 0.0;
    r->update_ms = part_ms[2];
    r->local_batch = (double)run->rows;
    r->final_loss = t->loss;
}

/* 1 x threads, in this process. */
static void w3dist_local(bench *b, const w3_arch *a, tg_dtype dt, int reps, int threads)
{
    if (tg_set_num_threads(threads) != TG_OK) {
        bench_failed(b, "W3dist", tg_last_error());
        return;
    }
    bench_rss_window_start();
    double w0 = monotonic_seconds(), c0 = bench_cpu_seconds();
    w3_times t;
    w3_run run;
    const char *why = w3_measure(&run, &t, a, dt, NULL, w3_warmup(b), reps);
    if (why) {
        bench_failed(b, "W3dist", why);
    } else {
        w3dist_fig r;
        w3dist_summary(&run, &t, reps, &r);
        r.peak_rss_mib = bench_peak_rss_mib();
        r.cpu_over_wall = (bench_cpu_seconds() - c0) / (monotonic_seconds() - w0);
        r.ranks = 1;
        r.threads_per_rank = threads;
        w3dist_emit(b, a, dt, reps, &r);
        w3_free(&run);
        w3_times_free(&t);
    }
    tg_set_num_threads(b->threads);
}

/* `bench W3dist --mpi`: this process is one rank of an MPI job. Every rank trains on its
 * share of the batch; their figures are summed over the ranks, and rank 0 prints them. */
static void w3dist_rank(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const int reps = w3_reps(b);
    tg_dist *dist = NULL;
    if (tg_dist_init(&dist) != TG_OK) {
        bench_failed(b, "W3dist", tg_last_error());
        return;
    }
    const int rank = tg_dist_rank(dist), world = tg_dist_size(dist);
    if (rank == 0 && !b->o->json)
        bench_heading(b->o, -1, -1, NAN);
    double w0 = monotonic_seconds(), c0 = bench_cpu_seconds();
    w3_times t;
    w3_run run;
    const char *why = w3_measure(&run, &t, a, dt, dist, w3_warmup(b), reps);
    /* Every rank sees the others' figures in its slots of `all`, zero elsewhere, summed. */
    double *all = why ? NULL : calloc((size_t)world * W3DIST_N, sizeof *all);
    if (!why && !all) {
        w3_free(&run);
        w3_times_free(&t);
        why = "out of memory";
    }
    if (why) {
        char msg[1024];
        snprintf(msg, sizeof msg, "rank %d of %d: %s", rank, world, why);
        bench_failed(b, "W3dist", msg);
        /* the other ranks would wait for this one in their next collective call forever */
        fflush(NULL);
        if (world > 1)
            tg_dist_abort(dist, EXIT_FAIL);
        tg_dist_free(dist);
        return;
    }
    w3dist_fig mine;
    w3dist_summary(&run, &t, reps, &mine);
    mine.peak_rss_mib = bench_peak_rss_mib();
    mine.cpu_over_wall = (bench_cpu_seconds() - c0) / (monotonic_seconds() - w0);
    mine.ranks = world;
    mine.threads_per_rank = b->threads;
    for (size_t k = 0; k < W3DIST_N; k++)
        all[(size_t)rank * W3DIST_N + k] = *w3dist_field(&mine, k);
    /* The figures are of a real data-parallel run only if the ranks still agree. */
    if (tg_dist_check_params(dist, run.model, NULL) != TG_OK ||
        tg_dist_allreduce_sum(dist, all, (size_t)world * W3DIST_N) != TG_OK) {
        bench_failed(b, "W3dist", tg_last_error());
    } else if (rank == 0) {
        w3dist_fig r;
        for (size_t k = 0; k < W3DIST_N; k++) {
            double v = W3DIST_KEYS[k].combine == MAX ? -INFINITY : 0;
            for (int q = 0; q < world; q++) {
                double x = all[(size_t)q * W3DIST_N + k];
                v = W3DIST_KEYS[k].combine == MAX ? fmax(v, x) : v + x;
            }
            *w3dist_field(&r, k) = W3DIST_KEYS[k].combine == MEAN ? v / world : v;
        }
        w3dist_emit(b, a, dt, reps, &r);
    }
    free(all);
    w3_free(&run);
    w3_times_free(&t);
    tg_dist_free(dist);
}

/* The figures in a rank 0's JSON line (the last one of W3dist in `out`), which must be of
 * dtype dt and reps steps; false when it is not, or a key is missing or not a finite number. */
static bool w3dist_parse(const char *out, tg_dtype dt, int reps, w3dist_fig *r)
{
    json_value v;
    if (!bench_json_line(out, "{\"workload\": \"W3dist\"", &v))
        return false;
    const char *dtype = json_get_str(&v, "dtype");
    bool ok = dtype && strcmp(dtype, tg_dtype_name(dt)) == 0 && json_get_num(&v, "reps") == reps;
    for (size_t k = 0; k < W3DIST_N && ok; k++) {
        double x = json_get_num(&v, W3DIST_KEYS[k].key);
        ok = isfinite(x);
        *w3dist_field(r, k) = x;
    }
    json_free(&v);
    return ok;
}

/* ranks x threads: this binary under mpirun, rank 0's figures read back. */
static void w3dist_mpirun(bench *b, const w3_arch *a, tg_dtype dt, int reps, int ranks,
                          int threads)
{
    char what[64], why[1400];
    snprintf(what, sizeof what, "%d ranks x %d thread%s", ranks, threads, threads > 1 ? "s" : "");
    if (!tg_dist_available()) {
        snprintf(why, sizeof why,
                 "%s: tapegrad was built without MPI (configure with -DTG_MPI=ON)", what);
        w3dist_unavailable(b, dt, ranks, threads, why);
        return;
    }
    char buf[4096];
    const char *mpirun = bench_find_mpirun(b, buf, sizeof buf);
    if (!mpirun && b->o->mpirun) { /* asked for by name: a failure, not a gap */
        snprintf(why, sizeof why, "%s: --mpirun %s: no such program", what, b->o->mpirun);
        bench_failed(b, "W3dist", why);
        return;
    }
    if (!mpirun) {
        snprintf(why, sizeof why,
                 "%s: no MPI launcher (mpirun or mpiexec) on the PATH; give one with "
                 "--mpirun PATH",
                 what);
        w3dist_unavailable(b, dt, ranks, threads, why);
        return;
    }
    char reps_s[16];
    snprintf(reps_s, sizeof reps_s, "%d", reps);
    /* the ranks run W3dist with this run's dtype, reps, kernel and --quick */
    const char *args[12] = {"bench",   "W3dist",          "--mpi",  "--json",
                            "--dtype", tg_dtype_name(dt), "--reps", reps_s};
    size_t n_args = 8;
    if (b->o->kernel)
        args[n_args++] = "--kernel", args[n_args++] = b->o->kernel;
    if (b->o->quick)
        args[n_args++] = "--quick";
    args[n_args] = NULL;
    /* Starting MPI takes a second or two; a step of W3 takes milliseconds. */
    double timeout = b->o->timeout > 0 ? b->o->timeout : 120.0 + 0.5 * (w3_warmup(b) + reps);
    proc_result c;
    if (!bench_run_mpi(mpirun, ranks, threads, args, timeout, &c, what, why, sizeof why)) {
        bench_failed(b, "W3dist", why);
    } else if (c.timed_out) {
        snprintf(why, sizeof why, "%s: %s did not finish within %g s and was stopped", what,
                 mpirun, timeout);
        bench_failed(b, "W3dist", why);
    } else if (c.status != 0) {
        const char *said = bench_child_reason(c.err);
        snprintf(why, sizeof why, "%s: %s exited with status %d%s%s", what, mpirun, c.status,
                 said[0] ? ": " : "", said);
        bench_failed(b, "W3dist", why);
    } else {
        w3dist_fig r;
        if (!w3dist_parse(c.out, dt, reps, &r)) {
            snprintf(why, sizeof why,
                     "%s: no figures of %s at %d steps from rank 0 in the output of %s", what,
                     tg_dtype_name(dt), reps, mpirun);
            bench_failed(b, "W3dist", why);
        } else if (lround(r.ranks) != ranks) {
            /* each process a job of its own: a launcher of another MPI than tapegrad's */
            snprintf(why, sizeof why,
                     "%s: %s started jobs of %g rank%s, not one of %d: is it the launcher of "
                     "the MPI tapegrad was built with?",
                     what, mpirun, r.ranks, r.ranks == 1 ? "" : "s", ranks);
            bench_failed(b, "W3dist", why);
        } else {
            w3dist_emit(b, a, dt, reps, &r);
        }
    }
    proc_result_free(&c);
}

void bench_w3dist(bench *b)
{
    if (b->o->mpi) {
        w3dist_rank(b);
        return;
    }
    const w3_arch *a = w3_arch_of(b);
    const tg_dtype dt = bench_dtype(b, TG_F32);
    const int reps = w3_reps(b), cores = b->threads;
    for (int ranks = cores; ranks >= 1; ranks--) {
        if (cores % ranks != 0)
            continue;
        if ((size_t)ranks > a->batch) {
            char why[128];
            snprintf(why, sizeof why, "%d ranks: more ranks than the batch has rows (%zu)", ranks,
                     a->batch);
            w3dist_unavailable(b, dt, ranks, cores / ranks, why);
        } else if (ranks > 1) {
            w3dist_mpirun(b, a, dt, reps, ranks, cores / ranks);
        } else {
            w3dist_local(b, a, dt, reps, cores);
        }
    }
    /* 1 x 1 for reference, once: with the first count above 1, unless 1 was asked for */
    int first_above_1 = 0;
    bool one = false;
    for (int i = 0; i < b->o->n_threads; i++) {
        one = one || b->o->threads[i] == 1;
        if (!first_above_1 && b->o->threads[i] > 1)
            first_above_1 = b->o->threads[i];
    }
    if (cores == first_above_1 && !one)
        w3dist_local(b, a, dt, reps, 1);
}
