/* bench_gemm.c: the bench's gemm, the internal GEMM kernel alone (tg_gemm_f32/f64): GFLOP/s
 * of C = A.B at 1024^3 and of every product a W3 training step runs, forward and both
 * backward forms, in f32 and f64; each beside OpenBLAS's cblas_sgemm/cblas_dgemm on the same
 * operands, timed alternately in the same repetitions (loaded at run time when the machine
 * has OpenBLAS: nothing links against it), and as a fraction of the cores' FMA peak. */
#include "bench.h"

#include "common/clock.h"
#include "kernels/gemm.h" /* tg_gemm_f32/f64: the kernel on its own */

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- OpenBLAS, if this machine has it -------------------------------------------------------- */

/* CBLAS's row-major and transpose codes (cblas.h's enums) */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *, int, const double *,
                         int, double, double *, int);
typedef void (*set_threads_fn)(int);
typedef char *(*corename_fn)(void);

static struct {
    bool tried;
    sgemm_fn sgemm;
    dgemm_fn dgemm;
    set_threads_fn set_threads;
    /* The kernel set OpenBLAS chose for this CPU ("Haswell", "SkylakeX", ...): a release that
     * does not know the CPU falls back to an older set (0.3.21 runs Zen 5 on Haswell's AVX2
     * kernels, half its AVX-512 speed), which OPENBLAS_CORETYPE overrides. */
    corename_fn corename;
} openblas;

/* Loads libopenblas once (the library stays loaded until exit); false when it is not there
 * or lacks the CBLAS entry points. */
static bool openblas_load(void)
{
    if (!openblas.tried) {
        openblas.tried = true;
        static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
        void *h = NULL;
        for (size_t i = 0; i < sizeof names / sizeof *names && !h; i++)
            h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            /* through a union: ISO C has no cast from the object pointer dlsym returns */
            union {
                void *p;
                sgemm_fn s;
                dgemm_fn d;
                set_threads_fn t;
                corename_fn c;
            } u;
            u.p = dlsym(h, "cblas_sgemm");
            openblas.sgemm = u.p ? u.s : NULL;
            u.p = dlsym(h, "cblas_dgemm");
            openblas.dgemm = u.p ? u.d : NULL;
            u.p = dlsym(h, "openblas_set_num_threads");
            openblas.set_threads = u.p ? u.t : NULL;
            u.p = dlsym(h, "openblas_get_corename");
            openblas.corename = u.p ? u.c : NULL;
            if (!openblas.sgemm || !openblas.dgemm)
                openblas.sgemm = NULL;
        }
    }
    return openblas.sgemm != NULL;
}

/* One product as the library calls it: C (M,N) = beta*C + op(A)·op(B), with op(A) (M,K). */
typedef struct gemm_case {
    const char *form; /* "A.B" (forward), "dY.B^T" (dA), "A^T.dY" (dB) */
    bool ta, tb;
    size_t M, N, K;
    int layer; /* W3's layer, or -1 */
} gemm_case;

/* The products W3 runs, in the order a training step runs them. Per layer l (in -> out):
 * forward (batch,in)·(in,out); backward dW = Xᵀ·dY with X stored (batch,in), and dX =
 * dY·Wᵀ with W stored (in,out) — except for layer 0, whose input needs no gradient. */
static int w3_gemm_cases(const w3_arch *a, gemm_case *out)
{
    int n = 0;
    for (int l = 0; l < a->n_layers; l++)
        out[n++] = (gemm_case){"A.B", false, false, a->batch, a->sizes[l + 1], a->sizes[l], l};
    for (int l = a->n_layers - 1; l >= 0; l--) {
        if (l > 0)
            out[n++] =
                (gemm_case){"dY.B^T", false, true, a->batch, a->sizes[l], a->sizes[l + 1], l};
        out[n++] = (gemm_case){"A^T.dY", true, false, a->sizes[l], a->sizes[l + 1], a->batch, l};
    }
    return n;
}

/* One product, by tapegrad or (blas) by OpenBLAS. */
static void gemm_call(tg_dtype dt, const gemm_case *c, const void *A, const void *B, void *C,
                      double beta, bool blas)
{
    /* Stored shapes: A is (M,K), or (K,M) when transposed; B is (K,N), or (N,K). */
    size_t lda = c->ta ? c->M : c->K, ldb = c->tb ? c->K : c->N;
    if (blas) {
        const int ta = c->ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
                  tb = c->tb ? CBLAS_TRANS : CBLAS_NO_TRANS;
        const int M = (int)c->M, N = (int)c->N, K = (int)c->K;
        if (dt == TG_F32)
            openblas.sgemm(CBLAS_ROW_MAJOR, ta, tb, M, N, K, 1.0f, A, (int)lda, B, (int)ldb,
                           (float)beta, C, N);
        else
            openblas.dgemm(CBLAS_ROW_MAJOR, ta, tb, M, N, K, 1.0, A, (int)lda, B, (int)ldb, beta, C,
                           N);
        return;
    }
    if (dt == TG_F32)
        tg_gemm_f32(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, (float)beta, C, c->N);
    else
        tg_gemm_f64(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, beta, C, c->N);
}

/* Calls of one case per timed batch, from the time of one call: small products are timed
 * over many calls, not one clock tick. */
static long batch_calls(double once, bool quick)
{
    const double target = quick ? 1e-3 : 0.05;
    return once >= target ? 1 : (long)ceil(target / (once > 1e-9 ? once : 1e-9));
}

/* An operand's buffer, aligned as a tensor's data is (TG_DATA_ALIGN, 64 bytes): the products
 * are W3's as W3 runs them. With malloc's 16 bytes, the thin kernels' every vector load of A
 * split two cache lines, which cost them 12-14 % on Zen 5. */
static void *operand_alloc(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

/* Waits until OpenBLAS's idle workers have gone to sleep, before tapegrad's batch on more than
 * one thread. They spin for 2^28 cycles of the time-stamp counter after a call (OpenBLAS's
 * THREAD_TIMEOUT; 0.13 s here, read off their CPU time) before they block, and on a machine
 * with no core to spare that takes one from whatever runs next: on 2 vCPUs (Zen 5),
 * tapegrad's 1024^3 batches after OpenBLAS's ran at one core's speed in runs of several (175
 * against 350 GFLOP/s). tapegrad's pool spins 0.1 ms, so OpenBLAS's batch needs no wait. */
static void let_openblas_idle(void)
{
    const struct timespec wait = {.tv_sec = 0, .tv_nsec = 200000000};
    nanosleep(&wait, NULL);
}

/* GFLOP/s of one case, by tapegrad (rates) and, when blas_rates is not NULL, by OpenBLAS in
 * the same repetitions: each repetition times a batch of one, then a batch of the other, so
 * both see the same load. The second of two warm-up calls of each sizes its batches. */
static bool gemm_case_run(bench *b, tg_dtype dt, const gemm_case *c, int reps, double *rates,
                          double *blas_rates)
{
    const size_t es = tg_dtype_size(dt);
    void *A = operand_alloc(c->M * c->K * es), *B = operand_alloc(c->K * c->N * es),
         *C = operand_alloc(c->M * c->N * es);
    if (!A || !B || !C) {
        free(A);
        free(B);
        free(C);
        return false;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    bench_fill(A, dt, c->M * c->K, &rng, 0);
    bench_fill(B, dt, c->K * c->N, &rng, 0);
    memset(C, 0, c->M * c->N * es);
    /* Each as W3's step runs it (matmul's VJP, src/ops/linalg.c): the forward writes its output,
     * dX (dY.B^T) writes the gradient of a tape tensor it is the first to touch in the pass
     * (beta = 0), dW (A^T.dY) adds into its weight's, which accumulates (beta = 1). */
    double beta = strcmp(c->form, "A^T.dY") == 0 ? 1.0 : 0.0;
    long calls[2] = {1, 1};
    const bool wait_idle = blas_rates && b->threads > 1 && !b->o->quick;
    for (int w = 0; w < (blas_rates ? 2 : 1); w++) {
        /* the first call pays for page faults and thread start-up: the second sizes */
        gemm_call(dt, c, A, B, C, beta, w == 1);
        double t0 = monotonic_seconds();
        gemm_call(dt, c, A, B, C, beta, w == 1);
        calls[w] = batch_calls(monotonic_seconds() - t0, b->o->quick);
    }
    double flops = 2.0 * (double)c->M * (double)c->N * (double)c->K;
    for (int r = 0; r < reps; r++)
        for (int w = 0; w < (blas_rates ? 2 : 1); w++) {
            if (wait_idle) {
                if (w == 0)
                    let_openblas_idle();
                /* Untimed: the library's workers have slept since its last batch (and after
                 * the wait, their vCPUs too): the call that wakes them took up to 4x as long
                 * as the next ones. */
                gemm_call(dt, c, A, B, C, beta, w == 1);
            }
            double t0 = monotonic_seconds();
            for (long i = 0; i < calls[w]; i++)
                gemm_call(dt, c, A, B, C, beta, w == 1);
            (w ? blas_rates : rates)[r] =
                flops * (double)calls[w] / (monotonic_seconds() - t0) / 1e9;
        }
    free(A);
    free(B);
    free(C);
    return true;
}

/* What ran a case: the path, and for a packed one its tile and blocking (kept for the run). */
static const char *gemm_case_kernel(tg_dtype dt, const gemm_case *c)
{
    static char names[2][2][96];
    const tg_gemm_path p = tg__gemm_path(c->M, c->N, c->K);
    if (p == TG_GEMM_DIRECT || p == TG_GEMM_BLAS)
        return tg__gemm_path_name(p);
    const tg_gemm_shape s = tg__gemm_shape(p, dt == TG_F64);
    const bool thin = s.thin_mr && c->N <= 16;
    char *buf = names[dt == TG_F64][thin];
    if (thin)
        snprintf(buf, sizeof names[0][0], "%s thin %zux16 kc=%zu", tg__gemm_path_name(p), s.thin_mr,
                 s.kc);
    else
        snprintf(buf, sizeof names[0][0], "%s %zux%zu kc=%zu mc=%zu nc=%zu", tg__gemm_path_name(p),
                 s.mr, s.nr, s.kc, s.mc, s.nc);
    return buf;
}

void bench_gemm(bench *b)
{
    const w3_arch *a = w3_arch_of(b);
    const int reps = bench_reps(b, 5, 2);
    const size_t big = b->o->quick ? 128 : 1024;
    gemm_case cases[1 + 3 * 4];
    int n = 0;
    cases[n++] = (gemm_case){"A.B", false, false, big, big, big, -1};
    n += w3_gemm_cases(a, cases + n);
    double *rates = calloc(3 * (size_t)reps, sizeof *rates);
    double *blas_rates = rates + reps, *ratio = rates + 2 * reps;
    if (!rates) {
        bench_failed(b, "gemm", "out of memory");
        return;
    }
    const bool blas = openblas_load();
    if (blas && openblas.set_threads)
        openblas.set_threads(b->threads);
    const tg_dtype both[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        /* --dtype's precision; targets' is f32, what the GEMM's targets are about */
        if (b->o->dtype >= 0 ? both[d] != (tg_dtype)b->o->dtype
                             : (b->o->workloads & DO_TARGETS) && both[d] != TG_F32)
            continue;
        /* the peak of as many cores as threads, each at the measured peak of one */
        const double peak = bench_fma_peak(both[d], b->o->quick) * b->threads;
        for (int i = 0; i < n; i++) {
            const gemm_case *c = &cases[i];
            if (!gemm_case_run(b, both[d], c, reps, rates, blas ? blas_rates : NULL)) {
                bench_failed(b, "gemm", "out of memory");
                continue;
            }
            /* the ratio is the median of each repetition's: each pair saw the same load */
            for (int r = 0; r < reps; r++)
                ratio[r] = rates[r] / blas_rates[r];
            figure f = bench_figure("gemm", "gflops", both[d], reps);
            f.value = bench_median(rates, reps);
            bench_ctx_str(&f, "form", c->form);
            bench_ctx_num(&f, "M", (double)c->M);
            bench_ctx_num(&f, "N", (double)c->N);
            bench_ctx_num(&f, "K", (double)c->K);
            if (c->layer >= 0) {
                bench_ctx_str(&f, "of", "W3");
                bench_ctx_num(&f, "layer", c->layer);
            }
            if (peak > 0)
                bench_ctx_num(&f, "of_peak", round(f.value / peak * 1000) / 1000);
            if (blas) {
                bench_ctx_num(&f, "openblas", round(bench_median(blas_rates, reps) * 100) / 100);
                bench_ctx_num(&f, "vs_openblas", round(bench_median(ratio, reps) * 1000) / 1000);
                if (openblas.corename)
                    bench_ctx_str(&f, "openblas_core", openblas.corename());
            } else {
                bench_ctx_str(&f, "openblas", "unavailable");
            }
            bench_ctx_str(&f, "kernel", gemm_case_kernel(both[d], c));
            bench_emit(b, &f);
        }
    }
    free(rates);
}
