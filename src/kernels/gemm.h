/* gemm.h: matrix products on raw row-major pointers (gemm.c), for the ops and the benchmark.
 * Kernels know nothing of tensors or tapes, so they can be measured and replaced alone. */
#ifndef TAPEGRAD_KERNELS_GEMM_H
#define TAPEGRAD_KERNELS_GEMM_H

#include "core/core.h"

/* C = beta*C + A·B with A (M,K) and B (K,N) read through optional transposes:
 * transA: A is stored (K,M) row-major; transB: B is stored (N,K). ldX are row strides, each
 * at least its stored row's length (so C's rows never overlap). */
void tg_gemm_f32(bool transA, bool transB, size_t M, size_t N, size_t K, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void tg_gemm_f64(bool transA, bool transB, size_t M, size_t N, size_t K, const double *A,
                 size_t lda, const double *B, size_t ldb, double beta, double *C, size_t ldc);

/* The paths a GEMM can take. AUTO (the default): problems of at most 512 multiply-adds
 * (M*N*K, as 8 x 8 x 8: TG_GEMM_SMALL_WORK in gemm.c) run direct, the rest packed on the best
 * kernel this CPU has, or on BLAS in a build with TG_BLAS=openblas. Forcing any other path
 * applies it to every size (so tests reach the packed kernels' edges on small matrices); BLAS
 * falls back to the best kernel when its int arguments would overflow. */
typedef enum tg_gemm_path {
    TG_GEMM_AUTO,
    TG_GEMM_DIRECT,   /* loops over the operands in place, no packing, no threads */
    TG_GEMM_PORTABLE, /* packed, the C micro-kernel */
    TG_GEMM_AVX2,     /* packed, AVX2+FMA micro-kernel (x86-64 CPUs that have it) */
    TG_GEMM_AVX512,   /* packed, AVX-512F micro-kernel (x86-64 CPUs that have it) */
    TG_GEMM_AVX512_WIDE, /* the same with a 6 x 64 f32 tile (f64 as AVX512): AMD's choice */
    TG_GEMM_BLAS,     /* cblas_sgemm/dgemm (TG_BLAS=openblas builds) */
    TG_GEMM_PATH_COUNT
} tg_gemm_path;
/* Makes every later GEMM in the process take `path` (AUTO restores the choice by size); false,
 * changing nothing, when this build or CPU lacks it. For tests and benchmarks. */
bool tg__gemm_force(tg_gemm_path path);
/* Makes every thin kernel that has a row layout beside its column one (AVX-512) take it from
 * n columns of C up where A's rows are not contiguous: 1 always, 17 (past the widest) never,
 * 0 restores this CPU's crossover. For tests, which must reach both layouts on any CPU; the
 * two give the same bits. */
void tg__gemm_force_thin_rows_from(size_t n);
bool tg__gemm_available(tg_gemm_path path);
/* The path a GEMM of this size takes now (never AUTO). */
tg_gemm_path tg__gemm_path(size_t M, size_t N, size_t K);
const char *tg__gemm_path_name(tg_gemm_path path); /* "direct", "avx512", ... */
/* Whether `path` is a packed kernel (PORTABLE, AVX2, AVX512 or AVX512_WIDE), available here
 * or not. */
bool tg__gemm_is_packed(tg_gemm_path path);
/* Makes large products take the packed kernel `path` (PORTABLE, AVX2, AVX512 or
 * AVX512_WIDE) instead of this CPU's best, while small ones still run direct: what the
 * library would do on a CPU whose best it is (the same instructions, this CPU's caches). AUTO
 * restores this CPU's choice. False, changing nothing, for any other path or one this CPU
 * lacks. For the bench (--kernel) and tests. */
bool tg__gemm_prefer(tg_gemm_path path);
/* The packed kernel large products take when no path is forced and no BLAS is built in: the
 * preferred one (tg__gemm_prefer), else this CPU's best. */
tg_gemm_path tg__gemm_best(void);

/* What a packed path runs on this machine, for the bench's heading: its register tile
 * (mr x nr), the blocking derived from the caches (kc, mc, nc: elements), and the rows of
 * its thin kernel for products at most 16 columns wide (0: none, such products are padded
 * to the tile). A path that is not a packed kernel (AUTO, DIRECT, BLAS) means the best one. */
typedef struct tg_gemm_shape {
    tg_gemm_path path;
    size_t mr, nr, kc, mc, nc, thin_mr;
    size_t thin_rows_from; /* 0: one thin layout; else where the row layout takes over */
} tg_gemm_shape;
tg_gemm_shape tg__gemm_shape(tg_gemm_path path, bool f64);
/* The per-core cache sizes the blocking is derived from, in bytes (l3: 0 when unknown). */
void tg__gemm_caches(size_t *l1d, size_t *l2, size_t *l3);
/* Runs `iters` rounds of independent FMA chains in the instruction set and vector width of
 * a packed path's kernel (as tg__gemm_shape picks it) and returns the flops done, 0 when
 * this CPU lacks the path: timed, the core's peak for that kernel. */
double tg__gemm_fma_burn(tg_gemm_path path, bool f64, size_t iters);

#endif
