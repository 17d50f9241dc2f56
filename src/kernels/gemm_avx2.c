/* gemm_avx2.c: the AVX2 + FMA micro-kernels (see gemm_kernels.h for the contract), for CPUs
 * without AVX-512. This file alone is compiled with -mavx2 -mfma (top-level CMakeLists.txt);
 * gemm.c calls it only when the CPU reports both.
 *
 * Tile: 6 rows x 2 vectors (16 floats or 8 doubles): 12 accumulators, 2 B vectors and one
 * broadcast of A use 15 of the 16 ymm registers; 12 independent FMAs per k step cover two
 * pipes of 4-5 cycles latency. Partial tiles use masked loads and stores (vmaskmov), which
 * do not touch memory outside the mask. Products at most 16 columns wide take the thin
 * kernels below (12 rows a call, A read in place), as on the AVX-512 paths. As there too, a
 * tile at C's bottom edge multiplies only the rows it stores (rounded up to 2, 4 or 6), the
 * first tile over a full panel of row-major B can pack it as it goes (fused_b), and B stored
 * transposed is packed by 8 x 8 (f64: 4 x 4) transposes in registers. */
#include "gemm_kernels.h"

#ifdef TG_GEMM_X86
#if !defined(__AVX2__) || !defined(__FMA__)
#error "gemm_avx2.c must be compiled with -mavx2 -mfma (see CMakeLists.txt)"
#endif

#include <immintrin.h>
#include <stdbool.h>

#define MR 6
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define REP12(X) REP(X) X(6) X(7) X(8) X(9) X(10) X(11)

/* Lanes [0, n) set (n clamped to [0, 8]), as vmaskmov wants: the sign bit of each 32-bit
 * lane (64-bit lanes for doubles take pairs: see mask_pd). */
static inline __m256i mask_ps(size_t n)
{
    const int k = n >= 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __m256i mask_pd(size_t n)
{
    const long long k = n >= 4 ? 4 : (long long)n;
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
}

static inline void update_ps(float *c, size_t n, __m256 acc, float beta)
{
    if (n >= 8) {
        if (beta == 0.0f)
            _mm256_storeu_ps(c, acc);
        else if (beta == 1.0f)
            _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), acc));
        else
            _mm256_storeu_ps(c, _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), acc));
        return;
    }
    if (n == 0)
        return;
    const __m256i m = mask_ps(n);
    if (beta == 0.0f)
        _mm256_maskstore_ps(c, m, acc);
    else if (beta == 1.0f)
        _mm256_maskstore_ps(c, m, _mm256_add_ps(_mm256_maskload_ps(c, m), acc));
    else
        _mm256_maskstore_ps(c, m,
                            _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(c, m), acc));
}

static inline void update_pd(double *c, size_t n, __m256d acc, double beta)
{
    if (n >= 4) {
        if (beta == 0.0)
            _mm256_storeu_pd(c, acc);
        else if (beta == 1.0)
            _mm256_storeu_pd(c, _mm256_add_pd(_mm256_loadu_pd(c), acc));
        else
            _mm256_storeu_pd(c, _mm256_fmadd_pd(_mm256_set1_pd(beta), _mm256_loadu_pd(c), acc));
        return;
    }
    if (n == 0)
        return;
    const __m256i m = mask_pd(n);
    if (beta == 0.0)
        _mm256_maskstore_pd(c, m, acc);
    else if (beta == 1.0)
        _mm256_maskstore_pd(c, m, _mm256_add_pd(_mm256_maskload_pd(c, m), acc));
    else
        _mm256_maskstore_pd(c, m,
                            _mm256_fmadd_pd(_mm256_set1_pd(beta), _mm256_maskload_pd(c, m), acc));
}

/* The tile's loop, reading B either packed (bp NULL: b is the kc x 16 panel) or where it lies
 * (b at the panel's first element, B(k, j) = b[k*bk + j], all 16 columns there), then storing
 * each row of it to the packed panel bp; `rows` of the 6 rows are multiplied
 * (TG_GEMM_BY_ROWS). Inlined with constant arguments into the kernels below, so each copy gets
 * only its own loads and FMAs. */
static inline __attribute__((always_inline)) void
tile_f32(size_t kc, const float *restrict a, const float *restrict b, size_t bk, float *restrict bp,
         float *restrict c, size_t ldc, float beta, size_t mr, size_t nr, size_t rows)
{
#define DECL(r) __m256 c##r##a = _mm256_setzero_ps(), c##r##b = _mm256_setzero_ps();
    REP(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const float *brow = b + k * bk; /* row k of B, packed or not */
        __m256 b0, b1;
        if (bp) { /* B where it lies (one 64-byte row), stored to the packed panel */
            TG_GEMM_PREFETCH(brow, TG_GEMM_PB_AHEAD * bk, 64);
            b0 = _mm256_loadu_ps(brow), b1 = _mm256_loadu_ps(brow + 8);
            _mm256_store_ps(bp, b0);
            _mm256_store_ps(bp + 8, b1);
            bp += 16;
        } else {
            b0 = _mm256_load_ps(brow), b1 = _mm256_load_ps(brow + 8);
        }
#define FMA(r)                                                                                     \
    if (r < rows) {                                                                                \
        const __m256 ar = _mm256_broadcast_ss(a + r);                                              \
        c##r##a = _mm256_fmadd_ps(ar, b0, c##r##a);                                                \
        c##r##b = _mm256_fmadd_ps(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
    }
    const size_t n0 = nr >= 8 ? 8 : nr, n1 = nr > 8 ? nr - 8 : 0;
#define STORE(r)                                                                                   \
    if (r < mr) {                                                                                  \
        update_ps(c + (size_t)r * ldc, n0, c##r##a, beta);                                         \
        update_ps(c + (size_t)r * ldc + 8, n1, c##r##b, beta);                                     \
    }
    REP(STORE)
#undef STORE
}

static void kern_f32(size_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                     size_t ldc, float beta, size_t mr, size_t nr)
{
    TG_GEMM_BY_ROWS(mr, 2, tile_f32, kc, a, b, 16, NULL, c, ldc, beta, mr, nr);
}

/* The tile packing its B panel as it goes (gemm_kernels.h, tg_gemm_kern_pb_f32). */
static void kern_f32_pb(size_t kc, const float *restrict a, const float *restrict b, size_t bk,
                        float *restrict bp, float *restrict c, size_t ldc, float beta, size_t mr)
{
    TG_GEMM_BY_ROWS(mr, 2, tile_f32, kc, a, b, bk, bp, c, ldc, beta, mr, 16);
}

static inline __attribute__((always_inline)) void tile_f64(size_t kc, const double *restrict a,
                                                           const double *restrict b, size_t bk,
                                                           double *restrict bp, double *restrict c,
                                                           size_t ldc, double beta, size_t mr,
                                                           size_t nr, size_t rows)
{
#define DECL(r) __m256d c##r##a = _mm256_setzero_pd(), c##r##b = _mm256_setzero_pd();
    REP(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const double *brow = b + k * bk; /* row k of B, packed or not */
        __m256d b0, b1;
        if (bp) { /* B where it lies (one 64-byte row), stored to the packed panel */
            TG_GEMM_PREFETCH(brow, TG_GEMM_PB_AHEAD * bk, 64);
            b0 = _mm256_loadu_pd(brow), b1 = _mm256_loadu_pd(brow + 4);
            _mm256_store_pd(bp, b0);
            _mm256_store_pd(bp + 4, b1);
            bp += 8;
        } else {
            b0 = _mm256_load_pd(brow), b1 = _mm256_load_pd(brow + 4);
        }
#define FMA(r)                                                                                     \
    if (r < rows) {                                                                                \
        const __m256d ar = _mm256_broadcast_sd(a + r);                                             \
        c##r##a = _mm256_fmadd_pd(ar, b0, c##r##a);                                                \
        c##r##b = _mm256_fmadd_pd(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
    }
    const size_t n0 = nr >= 4 ? 4 : nr, n1 = nr > 4 ? nr - 4 : 0;
#define STORE(r)                                                                                   \
    if (r < mr) {                                                                                  \
        update_pd(c + (size_t)r * ldc, n0, c##r##a, beta);                                         \
        update_pd(c + (size_t)r * ldc + 4, n1, c##r##b, beta);                                     \
    }
    REP(STORE)
#undef STORE
}

static void kern_f64(size_t kc, const double *restrict a, const double *restrict b,
                     double *restrict c, size_t ldc, double beta, size_t mr, size_t nr)
{
    TG_GEMM_BY_ROWS(mr, 2, tile_f64, kc, a, b, 8, NULL, c, ldc, beta, mr, nr);
}

/* The tile packing its B panel as it goes (gemm_kernels.h, tg_gemm_kern_pb_f64). */
static void kern_f64_pb(size_t kc, const double *restrict a, const double *restrict b, size_t bk,
                        double *restrict bp, double *restrict c, size_t ldc, double beta, size_t mr)
{
    TG_GEMM_BY_ROWS(mr, 2, tile_f64, kc, a, b, bk, bp, c, ldc, beta, mr, 8);
}

/* ---- thin products (C at most 16 columns) --------------------------------------------------- */

/* Two shapes of 12 accumulators, each with its own broadcast of A read in place (A(i, k) =
 * a[i*ai + k*ak]) against one packed row of B (stride 16): 6 rows x 2 vectors (16 floats or
 * 8 doubles of a row of C) and 12 rows x 1 vector (8 floats or 4 doubles). Either issues 12
 * independent FMAs per k step, as the 6 x 16 tile does. thin_f32 and thin_f64 cover a block
 * of 12 rows with them, the 12 x 1 shape where one vector holds the columns left. */
static inline __attribute__((always_inline)) void thin6x2_f32(size_t kc, const float *a, size_t ai,
                                                              size_t ak, const float *restrict b,
                                                              float *restrict c, size_t ldc,
                                                              float beta, size_t m, size_t n)
{
#define DECL(r) __m256 t##r##a = _mm256_setzero_ps(), t##r##b = _mm256_setzero_ps();
    REP(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b + k * 16), b1 = _mm256_load_ps(b + k * 16 + 8);
        const float *col = a + k * ak; /* A(r, k) = col[r*ai] */
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m256 ar = _mm256_broadcast_ss(col + (size_t)r * ai);                               \
        t##r##a = _mm256_fmadd_ps(ar, b0, t##r##a);                                                \
        t##r##b = _mm256_fmadd_ps(ar, b1, t##r##b);                                                \
    }
        REP(FMA)
#undef FMA
    }
    const size_t n0 = n >= 8 ? 8 : n, n1 = n > 8 ? n - 8 : 0;
#define STORE(r)                                                                                   \
    if (r < m) {                                                                                   \
        update_ps(c + (size_t)r * ldc, n0, t##r##a, beta);                                         \
        update_ps(c + (size_t)r * ldc + 8, n1, t##r##b, beta);                                     \
    }
    REP(STORE)
#undef STORE
}

static inline __attribute__((always_inline)) void thin12x1_f32(size_t kc, const float *a, size_t ai,
                                                               size_t ak, const float *restrict b,
                                                               float *restrict c, size_t ldc,
                                                               float beta, size_t m, size_t n)
{
#define DECL(r) __m256 t##r = _mm256_setzero_ps();
    REP12(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m256 bv = _mm256_load_ps(b + k * 16);
        /* rows 6-11 from a second base: the same 5 offsets serve both halves */
        const float *col = a + k * ak, *col6 = col + 6 * ai;
#define FMA(r)                                                                                     \
    t##r = _mm256_fmadd_ps(_mm256_broadcast_ss((r < 6 ? col : col6) + (size_t)(r % 6) * ai), bv,    \
                           t##r);
        REP12(FMA)
#undef FMA
    }
#define STORE(r)                                                                                   \
    if (r < m)                                                                                     \
        update_ps(c + (size_t)r * ldc, n, t##r, beta);
    REP12(STORE)
#undef STORE
}

static inline __attribute__((always_inline)) void thin6x2_f64(size_t kc, const double *a, size_t ai,
                                                              size_t ak, const double *restrict b,
                                                              double *restrict c, size_t ldc,
                                                              double beta, size_t m, size_t n)
{
#define DECL(r) __m256d t##r##a = _mm256_setzero_pd(), t##r##b = _mm256_setzero_pd();
    REP(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m256d b0 = _mm256_load_pd(b + k * 16), b1 = _mm256_load_pd(b + k * 16 + 4);
        const double *col = a + k * ak;
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m256d ar = _mm256_broadcast_sd(col + (size_t)r * ai);                              \
        t##r##a = _mm256_fmadd_pd(ar, b0, t##r##a);                                                \
        t##r##b = _mm256_fmadd_pd(ar, b1, t##r##b);                                                \
    }
        REP(FMA)
#undef FMA
    }
    const size_t n0 = n >= 4 ? 4 : n, n1 = n > 4 ? n - 4 : 0;
#define STORE(r)                                                                                   \
    if (r < m) {                                                                                   \
        update_pd(c + (size_t)r * ldc, n0, t##r##a, beta);                                         \
        update_pd(c + (size_t)r * ldc + 4, n1, t##r##b, beta);                                     \
    }
    REP(STORE)
#undef STORE
}

static inline __attribute__((always_inline)) void
thin12x1_f64(size_t kc, const double *a, size_t ai, size_t ak, const double *restrict b,
             double *restrict c, size_t ldc, double beta, size_t m, size_t n)
{
#define DECL(r) __m256d t##r = _mm256_setzero_pd();
    REP12(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m256d bv = _mm256_load_pd(b + k * 16);
        const double *col = a + k * ak, *col6 = col + 6 * ai;
#define FMA(r)                                                                                     \
    t##r = _mm256_fmadd_pd(_mm256_broadcast_sd((r < 6 ? col : col6) + (size_t)(r % 6) * ai), bv,   \
                           t##r);
        REP12(FMA)
#undef FMA
    }
#define STORE(r)                                                                                   \
    if (r < m)                                                                                     \
        update_pd(c + (size_t)r * ldc, n, t##r, beta);
    REP12(STORE)
#undef STORE
}

/* The driver gives a block of 12 rows (thin_mr; a last, shorter one padded with zero rows, of
 * which only the first m are stored). f32: n <= 8 in one 12 x 1 pass, else two 6 x 2 passes
 * over rows 0-5 and 6-11 (the second skipped when m <= 6). */
static void thin_f32(size_t m, size_t n, size_t kc, const float *a, size_t ai, size_t ak,
                     const float *restrict b, float *restrict c, size_t ldc, float beta)
{
    if (n <= 8) {
        thin12x1_f32(kc, a, ai, ak, b, c, ldc, beta, m, n);
        return;
    }
    thin6x2_f32(kc, a, ai, ak, b, c, ldc, beta, m, n);
    if (m > 6)
        thin6x2_f32(kc, a + 6 * ai, ai, ak, b, c + 6 * ldc, ldc, beta, m - 6, n);
}

/* f64: 8 columns at a time as f32's 16 (two 6 x 2 passes), or one 12 x 1 pass when at most 4
 * are left (N = 10: 8 + 4 columns computed, not 16). */
static void thin_f64(size_t m, size_t n, size_t kc, const double *a, size_t ai, size_t ak,
                     const double *restrict b, double *restrict c, size_t ldc, double beta)
{
    for (size_t j = 0; j < n; j += 8) {
        if (n - j <= 4) {
            thin12x1_f64(kc, a, ai, ak, b + j, c + j, ldc, beta, m, n - j);
            continue;
        }
        thin6x2_f64(kc, a, ai, ak, b + j, c + j, ldc, beta, m, n - j);
        if (m > 6)
            thin6x2_f64(kc, a + 6 * ai, ai, ak, b + j, c + 6 * ldc + j, ldc, beta, m - 6, n - j);
    }
}

/* ---- packing B stored transposed ------------------------------------------------------------ */

/* Written out (REP4, REP8, no loops over the registers): at -O2 a loop over an array of
 * vectors may stay a loop, and the array then lives on the stack. */
#define REP4(X) X(0) X(1) X(2) X(3)
#define REP8(X) REP4(X) X(4) X(5) X(6) X(7)

/* Rows r[0..8) of 8 floats become columns: afterwards r[c] holds element c of each row.
 * Interleaves of 32-bit, then 64-bit elements within 128-bit lanes, then one round of lane
 * swaps: 24 shuffles for 64 elements. */
static inline __attribute__((always_inline)) void transpose8_ps(__m256 r[8])
{
    __m256 t[8];
    /* t[i], lane L: r_i[4L], r_i+1[4L], r_i[4L+1], r_i+1[4L+1]; t[i + 1]: 4L+2, 4L+3 */
#define UNPACK(i)                                                                                  \
    do {                                                                                           \
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);                                                 \
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);                                             \
    } while (0)
    UNPACK(0);
    UNPACK(2);
    UNPACK(4);
    UNPACK(6);
#undef UNPACK
    /* r[i + c], lane L: rows i..i+3 at element 4L + c */
#define UNPACK(i)                                                                                  \
    do {                                                                                           \
        const __m256d a = _mm256_castps_pd(t[i]), b = _mm256_castps_pd(t[i + 1]);                  \
        const __m256d c = _mm256_castps_pd(t[i + 2]), d = _mm256_castps_pd(t[i + 3]);              \
        r[i] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));                                         \
        r[i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));                                     \
        r[i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));                                     \
        r[i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));                                     \
    } while (0)
    UNPACK(0);
    UNPACK(4);
#undef UNPACK
    /* column 4L + c: lane L of r[c] (rows 0-3) and of r[4 + c] (rows 4-7) */
#define LANES(c)                                                                                   \
    t[c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x20);                                           \
    t[4 + c] = _mm256_permute2f128_ps(r[c], r[4 + c], 0x31);
    REP4(LANES)
#undef LANES
#define COPY(i) r[i] = t[i];
    REP8(COPY)
#undef COPY
}

/* One block of 8 columns by n <= 8 k (b at its first stored row and depth, dst at its first
 * panel row): the 8 stored rows' next n elements each, transposed in registers and written as
 * n half rows of the 16-column panel. A full block (n = 8, a constant at the call) has its
 * stores written out; the last block of a depth not a multiple of 8 loads masked (nothing
 * beyond the panel's depth is read) and writes only its rows. */
static inline __attribute__((always_inline)) void bt_block_f32(const float *b, size_t ldb,
                                                               float *restrict dst, size_t n)
{
    const bool full = n == 8;
    const __m256i m = mask_ps(n);
    __m256 r[8];
#define LOAD(i) r[i] = full ? _mm256_loadu_ps(b + (i)*ldb) : _mm256_maskload_ps(b + (i)*ldb, m);
    REP8(LOAD)
#undef LOAD
    transpose8_ps(r);
    if (full) {
#define STORE(c) _mm256_store_ps(dst + (c)*16, r[c]);
        REP8(STORE)
#undef STORE
    } else {
        for (size_t c = 0; c < n; c++)
            _mm256_store_ps(dst + c * 16, r[c]);
    }
}

/* The 16-column panel 8 k at a time, two blocks per 8 k. */
static void pack_bt_f32(const float *b, size_t ldb, size_t kc, float *restrict dst)
{
    size_t kb = 0;
    for (; kb + 8 <= kc; kb += 8)
        for (size_t v = 0; v < 16; v += 8)
            bt_block_f32(b + v * ldb + kb, ldb, dst + kb * 16 + v, 8);
    for (size_t v = 0; kb < kc && v < 16; v += 8)
        bt_block_f32(b + v * ldb + kb, ldb, dst + kb * 16 + v, kc - kb);
}

/* The same for 4 rows of 4 doubles: r[c] becomes element c of each row (8 shuffles). */
static inline __attribute__((always_inline)) void transpose4_pd(__m256d r[4])
{
    /* t[c], lane L: rows 0, 1 at element 2L + c; t[2 + c]: rows 2, 3 */
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* One block of 4 columns by n <= 4 k, as bt_block_f32, for the 8-column panel. */
static inline __attribute__((always_inline)) void bt_block_f64(const double *b, size_t ldb,
                                                               double *restrict dst, size_t n)
{
    const bool full = n == 4;
    const __m256i m = mask_pd(n);
    __m256d r[4];
#define LOAD(i) r[i] = full ? _mm256_loadu_pd(b + (i)*ldb) : _mm256_maskload_pd(b + (i)*ldb, m);
    REP4(LOAD)
#undef LOAD
    transpose4_pd(r);
    if (full) {
#define STORE(c) _mm256_store_pd(dst + (c)*8, r[c]);
        REP4(STORE)
#undef STORE
    } else {
        for (size_t c = 0; c < n; c++)
            _mm256_store_pd(dst + c * 8, r[c]);
    }
}

/* The 8-column panel 4 k at a time, two blocks per 4 k. */
static void pack_bt_f64(const double *b, size_t ldb, size_t kc, double *restrict dst)
{
    size_t kb = 0;
    for (; kb + 4 <= kc; kb += 4)
        for (size_t v = 0; v < 8; v += 4)
            bt_block_f64(b + v * ldb + kb, ldb, dst + kb * 8 + v, 4);
    for (size_t v = 0; kb < kc && v < 8; v += 4)
        bt_block_f64(b + v * ldb + kb, ldb, dst + kb * 8 + v, kc - kb);
}

/* The core's peak in this instruction set: 12 independent chains of 8-float FMAs. */
static double burn_f32(size_t iters)
{
    const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-7f);
#define DECL(r) __m256 p##r = _mm256_set1_ps((float)r);
    REP12(DECL)
#undef DECL
    for (size_t i = 0; i < iters; i++) {
#define FMA(r) p##r = _mm256_fmadd_ps(p##r, x, y);
        REP12(FMA)
#undef FMA
    }
    float out[8];
    __m256 s = _mm256_setzero_ps();
#define SUM(r) s = _mm256_add_ps(s, p##r);
    REP12(SUM)
#undef SUM
    _mm256_storeu_ps(out, s);
    volatile float sink = out[0];
    (void)sink;
    return (double)iters * 12 * 8 * 2;
}

static double burn_f64(size_t iters)
{
    const __m256d x = _mm256_set1_pd(0.999), y = _mm256_set1_pd(1e-7);
#define DECL(r) __m256d p##r = _mm256_set1_pd((double)r);
    REP12(DECL)
#undef DECL
    for (size_t i = 0; i < iters; i++) {
#define FMA(r) p##r = _mm256_fmadd_pd(p##r, x, y);
        REP12(FMA)
#undef FMA
    }
    double out[4];
    __m256d s = _mm256_setzero_pd();
#define SUM(r) s = _mm256_add_pd(s, p##r);
    REP12(SUM)
#undef SUM
    _mm256_storeu_pd(out, s);
    volatile double sink = out[0];
    (void)sink;
    return (double)iters * 12 * 4 * 2;
}

/* The blocking is derived at run time from the cache sizes (gemm.c), as for AVX-512; a B
 * micro-panel row is 64 bytes here, so KC = 256 fills half of a 32 KiB L1d. Thin products
 * (N <= 16) take the thin kernels, 12 rows a call. */
/* clang-format off */
const tg_gemm_kernel tg_gemm__avx2_f32 = {
    MR, 16, 0, 0, 0, {.f32 = kern_f32}, 12, {.f32 = thin_f32}, burn_f32, {.f32 = pack_bt_f32},
    {.f32 = NULL}, {.f32 = kern_f32_pb}, {.f32 = NULL}, 0};
const tg_gemm_kernel tg_gemm__avx2_f64 = {
    MR, 8, 0, 0, 0, {.f64 = kern_f64}, 12, {.f64 = thin_f64}, burn_f64, {.f64 = pack_bt_f64},
    {.f64 = NULL}, {.f64 = kern_f64_pb}, {.f64 = NULL}, 0};
/* clang-format on */

#else
typedef int tg_gemm_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
