/* bench_gemm.c: the bench's gemm, the internal GEMM kernel alone (tg_gemm_f32/f64): GFLOP/s
 * of C = A.B at 1024^3 and of every product a W3 training step runs, forward and both
 * backward forms, in f32 and f64. */
#include "bench.h"

#include "common/clock.h"
#include "kernels/gemm.h" /* tg_gemm_f32/f64: the kernel on its own */

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static void gemm_call(tg_dtype dt, const gemm_case *c, const void *A, const void *B, void *C,
                      double beta)
{
    /* Stored shapes: A is (M,K), or (K,M) when transposed; B is (K,N), or (N,K). */
    size_t lda = c->ta ? c->M : c->K, ldb = c->tb ? c->K : c->N;
    if (dt == TG_F32)
        tg_gemm_f32(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, (float)beta, C, c->N);
    else
        tg_gemm_f64(c->ta, c->tb, c->M, c->N, c->K, A, lda, B, ldb, beta, C, c->N);
}

/* GFLOP/s of one case: the warm-up call also sizes the batch of calls each timed repetition
 * makes, so that small products are timed over many calls, not one clock tick. */
static bool gemm_case_run(bench *b, tg_dtype dt, const gemm_case *c, int reps, double *rates)
{
    const size_t es = tg_dtype_size(dt);
    void *A = malloc(c->M * c->K * es), *B = malloc(c->K * c->N * es), *C = calloc(c->M * c->N, es);
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
    /* Backward products accumulate into the gradient (beta = 1), as the VJP does. */
    double beta = strcmp(c->form, "A.B") == 0 ? 0.0 : 1.0;
    double t0 = monotonic_seconds();
    gemm_call(dt, c, A, B, C, beta);
    double once = monotonic_seconds() - t0, target = b->o->quick ? 1e-3 : 0.05;
    long calls = once >= target ? 1 : (long)ceil(target / (once > 1e-9 ? once : 1e-9));
    double flops = 2.0 * (double)c->M * (double)c->N * (double)c->K;
    for (int r = 0; r < reps; r++) {
        t0 = monotonic_seconds();
        for (long i = 0; i < calls; i++)
            gemm_call(dt, c, A, B, C, beta);
        rates[r] = flops * (double)calls / (monotonic_seconds() - t0) / 1e9;
    }
    free(A);
    free(B);
    free(C);
    return true;
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
    double *rates = calloc((size_t)reps, sizeof *rates);
    if (!rates) {
        bench_failed(b, "gemm", "out of memory");
        return;
    }
    const tg_dtype both[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++) {
        if (b->o->dtype >= 0 && both[d] != (tg_dtype)b->o->dtype)
            continue;
        for (int i = 0; i < n; i++) {
            const gemm_case *c = &cases[i];
            if (!gemm_case_run(b, both[d], c, reps, rates)) {
                bench_failed(b, "gemm", "out of memory");
                continue;
            }
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
            bench_emit(b, &f);
        }
    }
    free(rates);
}
