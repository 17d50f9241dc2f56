/* bench_output.c: what `tapegrad bench` reports and how: the heading (the machine: CPU,
 * caches, the GEMM kernel and blocking chosen for it, one core's measured FMA peak), the
 * statistics of a figure (the median of the timed repetitions, the workload's own peak RSS,
 * its CPU time over wall time) and its output, a row of the table for people or one JSON
 * line with --json. */
#include "bench.h"

#include "common/clock.h"
#include "kernels/gemm.h" /* the GEMM's kernel, blocking and caches, for the heading */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif

/* ---- time, medians, memory ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (reorders v). */
double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    double total;
    int rep;
} ranked_rep;

/* By total, then by repetition: which steps make the middle half does not depend on qsort */
static int cmp_ranked_rep(const void *a, const void *b)
{
    const ranked_rep *x = a, *y = b;
    int c = cmp_double(&x->total, &y->total);
    return c ? c : (x->rep > y->rep) - (x->rep < y->rep);
}

double bench_median_parts(const double *total, const double *const *part, int n_parts, int n,
                          double *part_median)
{
    ranked_rep *r = malloc((size_t)n * sizeof *r);
    if (!r) {
        for (int p = 0; p < n_parts; p++)
            part_median[p] = NAN;
        return NAN;
    }
    for (int i = 0; i < n; i++)
        r[i] = (ranked_rep){total[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_ranked_rep);
    double median = n % 2 ? r[n / 2].total : 0.5 * (r[n / 2 - 1].total + r[n / 2].total);
    /* the middle half by total: ranks [n/4, n - n/4), never empty */
    double sum_total = 0;
    for (int i = n / 4; i < n - n / 4; i++)
        sum_total += r[i].total;
    for (int p = 0; p < n_parts; p++) {
        double sum_part = 0;
        for (int i = n / 4; i < n - n / 4; i++)
            sum_part += part[p][r[i].rep];
        part_median[p] = sum_total > 0 ? median * (sum_part / sum_total) : 0.0;
    }
    free(r);
    return median;
}

/* Starts a new peak-RSS window: on Linux, writing 5 to /proc/self/clear_refs resets the
 * high-water mark getrusage reports, so each workload's peak is its own, not the largest so
 * far. Memory the previous workload freed is handed back first (glibc keeps freed heap
 * otherwise). Where the reset is not possible the peak is the process's. */
void bench_rss_window_start(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

double bench_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* ---- figures: one row of the table or one JSON line ------------------------------------------ */

figure bench_figure(const char *workload, const char *metric, tg_dtype dtype, int reps)
{
    figure f = {.workload = workload, .metric = metric, .dtype = tg_dtype_name(dtype)};
    f.reps = reps;
    return f;
}

void bench_ctx_num(figure *f, const char *key, double v)
{
    if (f->n_ctx < MAX_CONTEXT) {
        f->ctx[f->n_ctx].key = key;
        f->ctx[f->n_ctx].str = NULL;
        f->ctx[f->n_ctx++].num = v;
    }
}

void bench_ctx_str(figure *f, const char *key, const char *s)
{
    if (f->n_ctx < MAX_CONTEXT) {
        f->ctx[f->n_ctx].key = key;
        f->ctx[f->n_ctx++].str = s;
    }
}

double bench_ctx_num_of(const figure *f, const char *key)
{
    for (int i = 0; i < f->n_ctx; i++)
        if (strcmp(f->ctx[i].key, key) == 0)
            return f->ctx[i].str ? NAN : f->ctx[i].num;
    return NAN;
}

/* A number for people: integers above 10^4 in full, others with 4 significant digits. */
static void human_number(char *buf, size_t size, double v)
{
    if (fabs(v) >= 1e4 && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%.4g", v);
}

/* The CPU's name from /proc/cpuinfo, with its family and model numbers when given, for the
 * table's heading ("" when unknown). */
static void cpu_name(char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512], name[256] = "", family[32] = "", model[32] = "";
    while (fgets(line, sizeof line, f) && !(name[0] && family[0] && model[0])) {
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        const char *v = colon + 1 + (colon[1] == ' ');
        char *dst = strncmp(line, "model name", 10) == 0   ? name
                    : strncmp(line, "cpu family", 10) == 0 ? family
                    : strncmp(line, "model\t", 6) == 0     ? model
                                                           : NULL;
        if (dst && !dst[0]) {
            snprintf(dst, dst == name ? sizeof name : sizeof family, "%s", v);
            dst[strcspn(dst, "\n")] = '\0';
        }
    }
    fclose(f);
    if (family[0] && model[0])
        snprintf(buf, size, "%s (family %s model %s)", name, family, model);
    else
        snprintf(buf, size, "%s", name);
}

double bench_fma_peak(tg_dtype dtype, bool quick)
{
    static double peak[2] = {-1, -1};
    const bool f64 = dtype == TG_F64;
    if (peak[f64] < 0) {
        /* calibrate, then the best of 5 runs of about 20 ms (2 ms with --quick) */
        size_t iters = 100000;
        double t0 = monotonic_seconds(), flops = tg__gemm_fma_burn(TG_GEMM_AUTO, f64, iters);
        double t = monotonic_seconds() - t0;
        peak[f64] = 0;
        if (flops > 0 && t > 0) {
            const double want = quick ? 2e-3 : 2e-2;
            iters = (size_t)fmax(1.0, (double)iters * want / t);
            for (int r = 0; r < 5; r++) {
                t0 = monotonic_seconds();
                flops = tg__gemm_fma_burn(TG_GEMM_AUTO, f64, iters);
                t = monotonic_seconds() - t0;
                if (t > 0 && flops / t / 1e9 > peak[f64])
                    peak[f64] = flops / t / 1e9;
            }
        }
    }
    return peak[f64];
}

/* Bytes as KiB or MiB. */
static void human_bytes(char *buf, size_t size, size_t bytes)
{
    if (bytes >= ((size_t)1 << 20) && bytes % ((size_t)1 << 20) == 0)
        snprintf(buf, size, "%zu MiB", bytes >> 20);
    else
        snprintf(buf, size, "%zu KiB", bytes >> 10);
}

/* The lines above the table: the version and the machine, its caches, the GEMM kernel and
 * the blocking derived from them, how far apart its first two CPUs are (core_ns), and one
 * core's FMA peak (measured now, on this core). */
void bench_heading(const bench_opts *o, int cpu_a, int cpu_b, double core_ns)
{
    char cpu[320];
    cpu_name(cpu, sizeof cpu);
    printf("tapegrad %s bench: %s%s%ld CPUs online%s\n", tg_version(), cpu, cpu[0] ? ", " : "",
           sysconf(_SC_NPROCESSORS_ONLN),
           o->quick ? "; --quick: tiny sizes, the figures mean nothing" : "");
    size_t l1d, l2, l3;
    tg__gemm_caches(&l1d, &l2, &l3);
    char c1[32], c2[32], c3[32];
    human_bytes(c1, sizeof c1, l1d);
    human_bytes(c2, sizeof c2, l2);
    human_bytes(c3, sizeof c3, l3);
    printf("caches: L1d %s, L2 %s per core%s%s\n", c1, c2, l3 ? ", L3 " : "", l3 ? c3 : "");
    const tg_gemm_path big = tg__gemm_path(1024, 1024, 1024);
    printf("gemm: %s%s", tg__gemm_path_name(big),
           big == TG_GEMM_BLAS ? " (OpenBLAS); kernel " : "");
    for (int f64 = 0; f64 < 2; f64++) {
        const tg_gemm_shape s = tg__gemm_shape(big, f64);
        if (big == TG_GEMM_BLAS && !f64)
            printf("%s", tg__gemm_path_name(s.path));
        printf("%s %s tile %zux%zu, kc=%zu mc=%zu nc=%zu", f64 ? ";" : "", f64 ? "f64" : "f32",
               s.mr, s.nr, s.kc, s.mc, s.nc);
        if (s.thin_mr)
            printf(", thin (N <= 16) %zux16", s.thin_mr);
        if (s.thin_rows_from > 0 && s.thin_rows_from <= 16)
            printf(" (row layout from N = %zu)", s.thin_rows_from);
    }
    if (!isnan(core_ns))
        printf("\ncores: a cache line from CPU %d to CPU %d and back in %.0f ns", cpu_a, cpu_b,
               core_ns);
    const tg_gemm_path kp = tg__gemm_shape(big, false).path;
    printf("\nFMA peak of one core (%s): f32 %.1f GFLOP/s, f64 %.1f GFLOP/s\n\n",
           tg__gemm_path_name(kp), bench_fma_peak(TG_F32, o->quick),
           bench_fma_peak(TG_F64, o->quick));
}

/* Keeps a copy of f (its numbers as printed) in b->seen; when out of memory the copy is
 * missing, and the targets it would give say they cannot be told. */
static void note_figure(bench *b, const figure *f, int threads, double rss, double busy)
{
    if (b->n_seen == b->cap_seen) {
        int cap = b->cap_seen ? 2 * b->cap_seen : 32;
        figure *seen = realloc(b->seen, (size_t)cap * sizeof *seen);
        if (!seen)
            return;
        b->seen = seen;
        b->cap_seen = cap;
    }
    figure *copy = &b->seen[b->n_seen++];
    *copy = *f;
    copy->threads = threads;
    copy->peak_rss_mib = rss;
    copy->cpu_over_wall = busy;
}

void bench_emit(bench *b, figure *f)
{
    double rss = f->peak_rss_mib > 0 ? f->peak_rss_mib : bench_peak_rss_mib();
    /* CPU time over wall time shows how much of the CPU the workload got: about 1 per busy
     * thread on a quiet machine, less when others share it (the figures are then slower). */
    double busy = f->cpu_over_wall > 0
                      ? f->cpu_over_wall
                      : (bench_cpu_seconds() - b->cpu0) / (monotonic_seconds() - b->wall0);
    int threads = f->threads > 0 ? f->threads : b->threads;
    /* on more than one thread, how far apart the CPUs were */
    if (threads > 1 && !f->unavailable && !isnan(b->core_ns))
        bench_ctx_num(f, "core_round_trip_ns", round(b->core_ns));
    if (b->o->workloads & DO_TARGETS) /* kept for bench_targets, as printed */
        note_figure(b, f, threads, rss, busy);
    if (b->o->json) {
        printf("{\"workload\": ");
        json_string(stdout, f->workload);
        printf(", \"metric\": ");
        json_string(stdout, f->metric);
        printf(", \"value\": ");
        if (f->unavailable)
            printf("null");
        else
            json_number(stdout, f->value);
        printf(", \"threads\": %d, \"dtype\": ", threads);
        json_string(stdout, f->dtype);
        if (f->unavailable) {
            printf(", \"unavailable\": ");
            json_string(stdout, f->unavailable);
        } else {
            printf(", \"reps\": %d, \"peak_rss_mib\": %.1f, \"cpu_over_wall\": %.2f", f->reps, rss,
                   busy);
        }
        if (b->o->quick)
            printf(", \"quick\": true");
        for (int i = 0; i < f->n_ctx; i++) {
            printf(", ");
            json_string(stdout, f->ctx[i].key);
            printf(": ");
            if (f->ctx[i].str)
                json_string(stdout, f->ctx[i].str);
            else
                json_number(stdout, f->ctx[i].num);
        }
        printf("}\n");
    } else {
        if (!b->header_done)
            printf("%-8s %-26s %12s %7s %5s %6s %9s %8s  %s\n", "workload", "metric", "value",
                   "threads", "dtype", "reps", "peak MiB", "cpu/wall", "context");
        b->header_done = true;
        if (f->unavailable) {
            printf("%-8s %-26s %12s %7d %5s  unavailable: %s\n", f->workload, f->metric, "-",
                   threads, f->dtype, f->unavailable);
        } else {
            char num[32];
            human_number(num, sizeof num, f->value);
            printf("%-8s %-26s %12s %7d %5s %6d %9.1f %8.2f ", f->workload, f->metric, num, threads,
                   f->dtype, f->reps, rss, busy);
            for (int i = 0; i < f->n_ctx; i++) {
                if (f->ctx[i].str)
                    printf(" %s=%s", f->ctx[i].key, f->ctx[i].str);
                else {
                    human_number(num, sizeof num, f->ctx[i].num);
                    printf(" %s=%s", f->ctx[i].key, num);
                }
            }
            printf("\n");
        }
    }
    fflush(stdout);
}

/* A library call failed: says which workload and why; the others still run. */
void bench_failed(bench *b, const char *workload, const char *why)
{
    complain("bench", "%s: %s", workload, why);
    b->failed = true;
}
