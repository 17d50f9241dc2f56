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

/* Blocking (the table at the end of the file), for Zen 5's 48 KiB L1d and 1 MiB L2:
 * KC = 256: a B micro-panel, KC x 2 vectors (128 bytes a row), is 32 KiB and stays in L1
 *           while the A micro-panels (12 x KC: 12 KiB f32, 24 KiB f64) stream past it.
 * MC:       the packed A block, MC x KC, is 144 KiB (f32, MC 144) or 192 KiB (f64, MC 96),
 *           in L2 beside the B micro-panels and C tiles that pass through.
 * NC:       2048 (f32) or 1024 (f64) columns of B per group, so A is packed again only
 *           every NC columns; the group's depth is then capped by the 4/8 MiB B budget. */

static inline __mmask16 mask16(size_t n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
}

static inline __mmask8 mask8(size_t n)
{
    return (__mmask8)(n >= 8 ? 0xFFu : (1u << n) - 1u);
}

static inline void update_ps(float *c, __mmask16 m, __m512 acc, float beta)
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

static inline void update_pd(double *c, __mmask8 m, __m512d acc, double beta)
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

const tg_gemm_kernel tg_gemm__avx512_f32 = {MR, 32, 256, 144, 2048, {.f32 = kern_f32}};
const tg_gemm_kernel tg_gemm__avx512_f64 = {MR, 16, 256, 96, 1024, {.f64 = kern_f64}};

#else
typedef int tg_gemm_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
