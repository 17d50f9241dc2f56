/* gemm_avx512.c: the AVX-512 micro-kernels (see gemm_kernels.h for the contract). This file
 * alone is compiled with -mavx512f -mfma (top-level CMakeLists.txt); gemm.c calls it only
 * when the CPU reports AVX-512F, so nothing here may run, or be inlined, elsewhere.
 *
 * Tile: 12 rows x 2 vectors (32 floats or 16 doubles): 24 accumulators, 2 B vectors and one
 * broadcast of A use 27 of the 32 zmm registers; each k step issues 24 independent FMAs
 * (two FMA pipes x 4 cycles of latency need 8) against 2 vector loads and 12 broadcasts.
 * 12 rows rather than 14 keeps the padding of M = 128 (the MLP's batch) to 4 rows.
 * Partial tiles (matrix edges) use masked loads and stores, which never touch memory
 * outside the mask, so C is never read or written beyond its nr columns. */
#include "gemm_kernels.h"

#ifdef TG_GEMM_X86
#ifndef __AVX512F__
#error "gemm_avx512.c must be compiled with -mavx512f -mfma (see CMakeLists.txt)"
#endif

#include <immintrin.h>

#define MR 12
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define REP16(X) REP8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* The blocking (KC, MC, NC) is derived at run time from the cache sizes (gemm.c:
 * gemm_blocking): on Zen 4 (1 MiB L2) and Sapphire Rapids (2 MiB) alike KC = 512, MC = 252
 * (f32) or 120 / 252 (f64).
 *
 * The thin kernels (C at most 16 columns wide) keep one 16-column row of C per accumulator
 * pair (f64) or accumulator (f32): 16 rows of f32 or 8 rows of f64, 16 independent FMAs per
 * k step, each with its own broadcast of A read in place, against one packed row of B. */

static inline __mmask16 mask16(size_t n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
}

static inline __mmask8 mask8(size_t n)
{
    return (__mmask8)(n >= 8 ? 0xFFu : (1u << n) - 1u);
}

static inline __attribute__((always_inline)) void update_ps(float *c, __mmask16 m, __m512 acc, float beta)
{
    if (!m)
        return;
    if (beta == 0.0f) {
        _mm512_mask_storeu_ps(c, m, acc);
    } else if (beta == 1.0f) {
        _mm512_mask_storeu_ps(c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), acc));
    } else {
        __m512 old = _mm512_maskz_loadu_ps(m, c);
        _mm512_mask_storeu_ps(c, m, _mm512_fmadd_ps(_mm512_set1_ps(beta), old, acc));
    }
}

static inline __attribute__((always_inline)) void update_pd(double *c, __mmask8 m, __m512d acc, double beta)
{
    if (!m)
        return;
    if (beta == 0.0) {
        _mm512_mask_storeu_pd(c, m, acc);
    } else if (beta == 1.0) {
        _mm512_mask_storeu_pd(c, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, c), acc));
    } else {
        __m512d old = _mm512_maskz_loadu_pd(m, c);
        _mm512_mask_storeu_pd(c, m, _mm512_fmadd_pd(_mm512_set1_pd(beta), old, acc));
    }
}

static void kern_f32(size_t kc, const float *restrict a, const float *restrict b,
                     float *restrict c, size_t ldc, float beta, size_t mr, size_t nr)
{
#define DECL(r) __m512 c##r##a = _mm512_setzero_ps(), c##r##b = _mm512_setzero_ps();
    REP(DECL)
#undef DECL
    /* C's tile is needed only after the loop: fetch its lines meanwhile */
#define PREFETCH(r)                                                                                \
    if (r < mr) {                                                                                  \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 31), _MM_HINT_T0);                       \
    }
    REP(PREFETCH)
#undef PREFETCH
    for (size_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m512 ar = _mm512_set1_ps(a[r]);                                                    \
        c##r##a = _mm512_fmadd_ps(ar, b0, c##r##a);                                                \
        c##r##b = _mm512_fmadd_ps(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
        b += 32;
    }
    const __mmask16 m0 = mask16(nr), m1 = mask16(nr > 16 ? nr - 16 : 0);
#define STORE(r)                                                                                   \
    if (r < mr) {                                                                                  \
        update_ps(c + (size_t)r * ldc, m0, c##r##a, beta);                                         \
        update_ps(c + (size_t)r * ldc + 16, m1, c##r##b, beta);                                    \
    }
    REP(STORE)
#undef STORE
}

static void kern_f64(size_t kc, const double *restrict a, const double *restrict b,
                     double *restrict c, size_t ldc, double beta, size_t mr, size_t nr)
{
#define DECL(r) __m512d c##r##a = _mm512_setzero_pd(), c##r##b = _mm512_setzero_pd();
    REP(DECL)
#undef DECL
#define PREFETCH(r)                                                                                \
    if (r < mr) {                                                                                  \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 15), _MM_HINT_T0);                       \
    }
    REP(PREFETCH)
#undef PREFETCH
    for (size_t k = 0; k < kc; k++) {
        const __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m512d ar = _mm512_set1_pd(a[r]);                                                   \
        c##r##a = _mm512_fmadd_pd(ar, b0, c##r##a);                                                \
        c##r##b = _mm512_fmadd_pd(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
        b += 16;
    }
    const __mmask8 m0 = mask8(nr), m1 = mask8(nr > 8 ? nr - 8 : 0);
#define STORE(r)                                                                                   \
    if (r < mr) {                                                                                  \
        update_pd(c + (size_t)r * ldc, m0, c##r##a, beta);                                         \
        update_pd(c + (size_t)r * ldc + 8, m1, c##r##b, beta);                                     \
    }
    REP(STORE)
#undef STORE
}

/* ---- thin products (C at most 16 columns) --------------------------------------------------- */

static void thin_f32(size_t m, size_t n, size_t kc, const float *a, size_t ai, size_t ak,
                     const float *restrict b, float *restrict c, size_t ldc, float beta)
{
#define DECL(r) __m512 t##r = _mm512_setzero_ps();
    REP16(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++, a += ak, b += 16) {
        const __m512 bv = _mm512_load_ps(b);
#define FMA(r) t##r = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)r * ai]), bv, t##r);
        REP16(FMA)
#undef FMA
    }
    const __mmask16 m0 = mask16(n);
#define STORE(r)                                                                                   \
    if (r < m)                                                                                     \
        update_ps(c + (size_t)r * ldc, m0, t##r, beta);
    REP16(STORE)
#undef STORE
}

static void thin_f64(size_t m, size_t n, size_t kc, const double *a, size_t ai, size_t ak,
                     const double *restrict b, double *restrict c, size_t ldc, double beta)
{
#define DECL(r) __m512d t##r##a = _mm512_setzero_pd(), t##r##b = _mm512_setzero_pd();
    REP8(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++, a += ak, b += 16) {
        const __m512d b0 = _mm512_load_pd(b), b1 = _mm512_load_pd(b + 8);
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m512d ar = _mm512_set1_pd(a[(size_t)r * ai]);                                      \
        t##r##a = _mm512_fmadd_pd(ar, b0, t##r##a);                                                \
        t##r##b = _mm512_fmadd_pd(ar, b1, t##r##b);                                                \
    }
        REP8(FMA)
#undef FMA
    }
    const __mmask8 m0 = mask8(n), m1 = mask8(n > 8 ? n - 8 : 0);
#define STORE(r)                                                                                   \
    if (r < m) {                                                                                   \
        update_pd(c + (size_t)r * ldc, m0, t##r##a, beta);                                         \
        update_pd(c + (size_t)r * ldc + 8, m1, t##r##b, beta);                                     \
    }
    REP8(STORE)
#undef STORE
}

/* ---- the core's peak: 12 independent chains of vector FMAs --------------------------------- */

static double burn_f32(size_t iters)
{
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-7f);
#define DECL(r) __m512 p##r = _mm512_set1_ps((float)r);
    REP(DECL)
#undef DECL
    for (size_t i = 0; i < iters; i++) {
#define FMA(r) p##r = _mm512_fmadd_ps(p##r, x, y);
        REP(FMA)
#undef FMA
    }
    volatile float sink = 0;
#define SUM(r) sink += _mm512_reduce_add_ps(p##r);
    REP(SUM)
#undef SUM
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

static double burn_f64(size_t iters)
{
    const __m512d x = _mm512_set1_pd(0.999), y = _mm512_set1_pd(1e-7);
#define DECL(r) __m512d p##r = _mm512_set1_pd((double)r);
    REP(DECL)
#undef DECL
    for (size_t i = 0; i < iters; i++) {
#define FMA(r) p##r = _mm512_fmadd_pd(p##r, x, y);
        REP(FMA)
#undef FMA
    }
    volatile double sink = 0;
#define SUM(r) sink += _mm512_reduce_add_pd(p##r);
    REP(SUM)
#undef SUM
    (void)sink;
    return (double)iters * 12 * 8 * 2;
}

const tg_gemm_kernel tg_gemm__avx512_f32 = {
    MR, 32, 0, 0, 0, {.f32 = kern_f32}, 16, {.f32 = thin_f32}, burn_f32};
const tg_gemm_kernel tg_gemm__avx512_f64 = {
    MR, 16, 0, 0, 0, {.f64 = kern_f64}, 8, {.f64 = thin_f64}, burn_f64};

#else
typedef int tg_gemm_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
