/* gemm_avx512.c: the AVX-512 micro-kernels (see gemm_kernels.h for the contract). This file
 * alone is compiled with -mavx512f -mfma (top-level CMakeLists.txt); gemm.c calls it only
 * when the CPU reports AVX-512F, so nothing here may run, or be inlined, elsewhere.
 *
 * Tile: 12 rows x 2 vectors (32 floats or 16 doubles): 24 accumulators, 2 B vectors and one
 * broadcast of A use 27 of the 32 zmm registers; each k step issues 24 independent FMAs
 * (two FMA pipes x 4 cycles of latency need 8) against 2 vector loads and 12 broadcasts.
 * 12 rows rather than 14 keeps the padding of M = 128 (the MLP's batch) to 4 rows.
 * Partial tiles (matrix edges) use masked loads and stores, which never touch memory
 * outside the mask, so C is never read or written beyond its nr columns. A tile at C's
 * bottom edge multiplies only the rows it stores (rounded up to a third of the tile:
 * TG_GEMM_BY_ROWS), the first tile over a full panel of row-major B can pack it as it goes
 * (fused_b), and B stored transposed is packed by transposes in registers. */
#include "gemm_kernels.h"

#ifdef TG_GEMM_X86
#ifndef __AVX512F__
#error "gemm_avx512.c must be compiled with -mavx512f -mfma (see CMakeLists.txt)"
#endif

#include <immintrin.h>
#include <stdbool.h>

#define MR 12
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define REP16(X) REP8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* The blocking (KC, MC, NC) is derived at run time from the cache sizes (gemm.c:
 * gemm_blocking): on Zen 4 (1 MiB L2) and Sapphire Rapids (2 MiB) alike KC = 512, MC = 252
 * (f32) or 120 / 252 (f64).
 *
 * The thin kernels (C at most 16 columns wide) keep one column of a block of C's rows per
 * accumulator, 16 rows of f32 or 8 of f64: n FMAs a k step, each with its own broadcast of
 * B, against one vector of A's rows, and no lane spent on columns C does not have (rows of C
 * in the lanes used 10 of 16 at W3's N = 10). The block is transposed in registers once, at
 * the end. The row layout they had before stays beside them, for the widths at which it is
 * the faster when A's rows would have to be transposed (gemm.c: thin_rows_from, by CPU). */

static inline __mmask16 mask16(size_t n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
}

static inline __mmask8 mask8(size_t n)
{
    return (__mmask8)(n >= 8 ? 0xFFu : (1u << n) - 1u);
}

/* What a row of C becomes: acc, plus C (or beta times it) as the update demands, for the thin
 * kernels, which read every row before writing any. (update_ps and update_pd below store at
 * once; written through these, the wide kernel's K = 10 product of W3 ran 6 % slower.) */
static inline __attribute__((always_inline)) __m512 updated_ps(const float *c, __mmask16 m,
                                                               __m512 acc, float beta)
{
    if (beta == 0.0f)
        return acc;
    if (beta == 1.0f)
        return _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), acc);
    return _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), acc);
}

static inline __attribute__((always_inline)) void update_ps(float *c, __mmask16 m, __m512 acc,
                                                            float beta)
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

/* update_ps for a full vector: plain loads and stores (see WIDE_UPDATE). */
static inline __attribute__((always_inline)) void update_full_ps(float *c, __m512 acc, float beta)
{
    if (beta == 0.0f)
        _mm512_storeu_ps(c, acc);
    else if (beta == 1.0f)
        _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), acc));
    else
        _mm512_storeu_ps(c, _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_loadu_ps(c), acc));
}

static inline __attribute__((always_inline)) __m512d updated_pd(const double *c, __mmask8 m,
                                                                __m512d acc, double beta)
{
    if (beta == 0.0)
        return acc;
    if (beta == 1.0)
        return _mm512_add_pd(_mm512_maskz_loadu_pd(m, c), acc);
    return _mm512_fmadd_pd(_mm512_set1_pd(beta), _mm512_maskz_loadu_pd(m, c), acc);
}

static inline __attribute__((always_inline)) void update_pd(double *c, __mmask8 m, __m512d acc,
                                                            double beta)
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

/* The tile's loop, reading B either packed (bp NULL: b is the kc x 32 panel) or where it lies
 * (b at the panel's first element, B(k, j) = b[k*bk + j], all 32 columns there), then storing
 * each row of it to the packed panel bp; `rows` of the 12 rows are multiplied
 * (TG_GEMM_BY_ROWS). Inlined with constant arguments into the kernels below, so each copy gets
 * only its own loads and FMAs. tile_f64 is the same for doubles (kc x 16). */
static inline __attribute__((always_inline)) void
tile_f32(size_t kc, const float *restrict a, const float *restrict b, size_t bk, float *restrict bp,
         float *restrict c, size_t ldc, float beta, size_t mr, size_t nr, size_t rows)
{
#define DECL(r) __m512 c##r##a = _mm512_setzero_ps(), c##r##b = _mm512_setzero_ps();
    REP(DECL)
#undef DECL
    /* C's tile is needed only after the loop: fetch its lines meanwhile (when the loop is
     * long enough to hide the wait) */
#define PREFETCH(r)                                                                                \
    if (r < mr && kc >= 64) {                                                                      \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 31), _MM_HINT_T0);                       \
    }
    REP(PREFETCH)
#undef PREFETCH
    for (size_t k = 0; k < kc; k++) {
        const float *brow = b + k * bk; /* row k of B, packed or not */
        __m512 b0, b1;
        if (bp) { /* B where it lies, stored to the packed panel */
            TG_GEMM_PREFETCH(brow, TG_GEMM_PB_AHEAD * bk, 128);
            b0 = _mm512_loadu_ps(brow), b1 = _mm512_loadu_ps(brow + 16);
            _mm512_store_ps(bp, b0);
            _mm512_store_ps(bp + 16, b1);
            bp += 32;
        } else {
            b0 = _mm512_load_ps(brow), b1 = _mm512_load_ps(brow + 16);
        }
#define FMA(r)                                                                                     \
    if (r < rows) {                                                                                \
        const __m512 ar = _mm512_set1_ps(a[r]);                                                    \
        c##r##a = _mm512_fmadd_ps(ar, b0, c##r##a);                                                \
        c##r##b = _mm512_fmadd_ps(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
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

static void kern_f32(size_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                     size_t ldc, float beta, size_t mr, size_t nr)
{
    TG_GEMM_BY_ROWS(mr, 4, tile_f32, kc, a, b, 32, NULL, c, ldc, beta, mr, nr);
}

/* The tile packing its B panel as it goes (gemm_kernels.h, tg_gemm_kern_pb_f32). */
static void kern_f32_pb(size_t kc, const float *restrict a, const float *restrict b, size_t bk,
                        float *restrict bp, float *restrict c, size_t ldc, float beta, size_t mr)
{
    TG_GEMM_BY_ROWS(mr, 4, tile_f32, kc, a, b, bk, bp, c, ldc, beta, mr, 32);
}

static inline __attribute__((always_inline)) void tile_f64(size_t kc, const double *restrict a,
                                                           const double *restrict b, size_t bk,
                                                           double *restrict bp, double *restrict c,
                                                           size_t ldc, double beta, size_t mr,
                                                           size_t nr, size_t rows)
{
#define DECL(r) __m512d c##r##a = _mm512_setzero_pd(), c##r##b = _mm512_setzero_pd();
    REP(DECL)
#undef DECL
#define PREFETCH(r)                                                                                \
    if (r < mr && kc >= 64) {                                                                      \
        _mm_prefetch((const char *)(c + (size_t)r * ldc), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)(c + (size_t)r * ldc + 15), _MM_HINT_T0);                       \
    }
    REP(PREFETCH)
#undef PREFETCH
    for (size_t k = 0; k < kc; k++) {
        const double *brow = b + k * bk; /* row k of B, packed or not */
        __m512d b0, b1;
        if (bp) { /* B where it lies, stored to the packed panel */
            TG_GEMM_PREFETCH(brow, TG_GEMM_PB_AHEAD * bk, 128);
            b0 = _mm512_loadu_pd(brow), b1 = _mm512_loadu_pd(brow + 8);
            _mm512_store_pd(bp, b0);
            _mm512_store_pd(bp + 8, b1);
            bp += 16;
        } else {
            b0 = _mm512_load_pd(brow), b1 = _mm512_load_pd(brow + 8);
        }
#define FMA(r)                                                                                     \
    if (r < rows) {                                                                                \
        const __m512d ar = _mm512_set1_pd(a[r]);                                                   \
        c##r##a = _mm512_fmadd_pd(ar, b0, c##r##a);                                                \
        c##r##b = _mm512_fmadd_pd(ar, b1, c##r##b);                                                \
    }
        REP(FMA)
#undef FMA
        a += MR;
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

static void kern_f64(size_t kc, const double *restrict a, const double *restrict b,
                     double *restrict c, size_t ldc, double beta, size_t mr, size_t nr)
{
    TG_GEMM_BY_ROWS(mr, 4, tile_f64, kc, a, b, 16, NULL, c, ldc, beta, mr, nr);
}

/* The tile packing its B panel as it goes (gemm_kernels.h, tg_gemm_kern_pb_f64). */
static void kern_f64_pb(size_t kc, const double *restrict a, const double *restrict b, size_t bk,
                        double *restrict bp, double *restrict c, size_t ldc, double beta, size_t mr)
{
    TG_GEMM_BY_ROWS(mr, 4, tile_f64, kc, a, b, bk, bp, c, ldc, beta, mr, 16);
}

/* ---- the wide tile: 6 rows x 4 vectors of f32 ------------------------------------------------ */

/* 24 accumulators again, but each k step needs 4 B vectors and only 6 broadcasts of A for its
 * 24 FMAs (the 12 x 2 tile: 2 and 12). Zen 4 runs a zmm FMA as two halves on its two 256-bit
 * pipes, and the broadcasts compete with them: measured there, this tile's loop reaches 96 %
 * of the FMA peak where 12 x 2 reaches 92 %. It reads twice the B bytes per FMA, which suits
 * a core that does one zmm FMA a cycle (Zen 4) better than one that does two (Intel's with two
 * 512-bit ports, which keep 12 x 2): gemm.c picks by vendor. Zen 5's EPYC, with 512-bit pipes,
 * measured level to 8 % faster with this tile too, so AMD's AVX-512 cores take it. */
#define MRW 6
#define REP6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* The wide tile's update of C from its accumulators c<r><0..3>, rows r < mr, in the kernels'
 * names (c, ldc, beta, mr, nr). A full tile (nr = 64), decided once a tile, takes plain loads
 * and stores: masked ones, with update_ps's test at each of the 24 vectors, cost W3's dX
 * (128x256x10, where the update is a sixth of the work) 7 % on Zen 4, 80 -> 86 GFLOP/s. */
#define WIDE_ROW(r, UPDATE)                                                                        \
    if (r < mr) {                                                                                  \
        float *cr = c + (size_t)r * ldc;                                                           \
        UPDATE(cr, 0, c##r##0);                                                                    \
        UPDATE(cr + 16, 1, c##r##1);                                                               \
        UPDATE(cr + 32, 2, c##r##2);                                                               \
        UPDATE(cr + 48, 3, c##r##3);                                                               \
    }
#define WIDE_FULL(p, q, acc) update_full_ps(p, acc, beta)
#define WIDE_MASKED(p, q, acc) update_ps(p, m##q, acc, beta)
#define WIDE_ROW_FULL(r) WIDE_ROW(r, WIDE_FULL)
#define WIDE_ROW_MASKED(r) WIDE_ROW(r, WIDE_MASKED)
#define WIDE_UPDATE()                                                                              \
    do {                                                                                           \
        if (nr == 64) {                                                                            \
            REP6(WIDE_ROW_FULL)                                                                    \
        } else {                                                                                   \
            const __mmask16 m0 = mask16(nr), m1 = mask16(nr > 16 ? nr - 16 : 0);                   \
            const __mmask16 m2 = mask16(nr > 32 ? nr - 32 : 0), m3 = mask16(nr > 48 ? nr - 48 : 0); \
            REP6(WIDE_ROW_MASKED)                                                                  \
        }                                                                                          \
    } while (0)

/* The wide tile's loop, reading B either packed (bp NULL: b is the kc x 64 panel) or where it
 * lies (b at the panel's first element, B(k, j) = b[k*bk + j], all 64 columns there), then
 * storing each row of it to the packed panel bp. Inlined with constant arguments into the
 * two kernels below, so each gets only its own loads. */
static inline __attribute__((always_inline)) void
wide_f32(size_t kc, const float *restrict a, const float *restrict b, size_t bk, float *restrict bp,
         float *restrict c, size_t ldc, float beta, size_t mr, size_t nr, size_t rows)
{
#define DECL(r)                                                                                    \
    __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps(),                           \
           c##r##2 = _mm512_setzero_ps(), c##r##3 = _mm512_setzero_ps();
    REP6(DECL)
#undef DECL
#define PREFETCH(r)                                                                                \
    if (r < mr && kc >= 64) {                                                                      \
        for (int l = 0; l < 4; l++)                                                                \
            _mm_prefetch((const char *)(c + (size_t)r * ldc + 16 * l), _MM_HINT_T0);               \
    }
    REP6(PREFETCH)
#undef PREFETCH
    for (size_t k = 0; k < kc; k++) {
        const float *brow = b + k * bk; /* row k of B, packed or not */
        __m512 b0, b1, b2, b3;
        if (bp) {
            TG_GEMM_PREFETCH(brow, TG_GEMM_PB_AHEAD * bk, 256);
            b0 = _mm512_loadu_ps(brow), b1 = _mm512_loadu_ps(brow + 16);
            b2 = _mm512_loadu_ps(brow + 32), b3 = _mm512_loadu_ps(brow + 48);
            _mm512_store_ps(bp, b0);
            _mm512_store_ps(bp + 16, b1);
            _mm512_store_ps(bp + 32, b2);
            _mm512_store_ps(bp + 48, b3);
            bp += 64;
        } else {
            b0 = _mm512_load_ps(brow), b1 = _mm512_load_ps(brow + 16);
            b2 = _mm512_load_ps(brow + 32), b3 = _mm512_load_ps(brow + 48);
        }
#define FMA(r)                                                                                     \
    if (r < rows) {                                                                                \
        const __m512 ar = _mm512_set1_ps(a[r]);                                                    \
        c##r##0 = _mm512_fmadd_ps(ar, b0, c##r##0);                                                \
        c##r##1 = _mm512_fmadd_ps(ar, b1, c##r##1);                                                \
        c##r##2 = _mm512_fmadd_ps(ar, b2, c##r##2);                                                \
        c##r##3 = _mm512_fmadd_ps(ar, b3, c##r##3);                                                \
    }
        REP6(FMA)
#undef FMA
        a += MRW;
    }
    WIDE_UPDATE();
}

static void kern_f32_wide(size_t kc, const float *restrict a, const float *restrict b,
                          float *restrict c, size_t ldc, float beta, size_t mr, size_t nr)
{
    TG_GEMM_BY_ROWS(mr, 2, wide_f32, kc, a, b, 64, NULL, c, ldc, beta, mr, nr);
}

/* The wide tile packing its B panel as it goes (gemm_kernels.h, tg_gemm_kern_pb_f32). */
static void kern_f32_wide_pb(size_t kc, const float *restrict a, const float *restrict b, size_t bk,
                             float *restrict bp, float *restrict c, size_t ldc, float beta,
                             size_t mr)
{
    TG_GEMM_BY_ROWS(mr, 2, wide_f32, kc, a, b, bk, bp, c, ldc, beta, mr, 64);
}

/* The wide tile reading its 6 rows of A in place and packing them as it goes (the contract:
 * gemm_kernels.h, tg_gemm_kern_pa_f32): kern_f32_wide's loop with its broadcasts taken from
 * the rows (each row's next lines asked for 64 elements ahead, once a line) and stored to the
 * packed panel. */
static void kern_f32_wide_pa(size_t kc, const float *restrict a, size_t ai, size_t ak,
                             float *restrict ap, const float *restrict b, float *restrict c,
                             size_t ldc, float beta, size_t nr)
{
#define DECL(r)                                                                                    \
    __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps(),                           \
           c##r##2 = _mm512_setzero_ps(), c##r##3 = _mm512_setzero_ps();
    REP6(DECL)
#undef DECL
#define PREFETCH(r)                                                                                \
    if (kc >= 64) {                                                                                \
        for (int l = 0; l < 4; l++)                                                                \
            _mm_prefetch((const char *)(c + (size_t)r * ldc + 16 * l), _MM_HINT_T0);               \
    }
    REP6(PREFETCH)
#undef PREFETCH
    const size_t a1 = ai, a2 = 2 * ai;
    for (size_t k = 0; k < kc; k++) {
        const float *a0 = a + k * ak, *a3 = a0 + 3 * ai; /* rows 0 and 3 at column k */
        if (ak == 1 && k % 16 == 0) {
            TG_GEMM_PREFETCH(a0, 64, 64);
            TG_GEMM_PREFETCH(a0, a1 + 64, 64);
            TG_GEMM_PREFETCH(a0, a2 + 64, 64);
            TG_GEMM_PREFETCH(a3, 64, 64);
            TG_GEMM_PREFETCH(a3, a1 + 64, 64);
            TG_GEMM_PREFETCH(a3, a2 + 64, 64);
        }
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        const __m512 b2 = _mm512_load_ps(b + 32), b3 = _mm512_load_ps(b + 48);
        const float x0 = a0[0], x1 = a0[a1], x2 = a0[a2], x3 = a3[0], x4 = a3[a1], x5 = a3[a2];
        ap[0] = x0;
        ap[1] = x1;
        ap[2] = x2;
        ap[3] = x3;
        ap[4] = x4;
        ap[5] = x5;
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m512 ar = _mm512_set1_ps(x##r);                                                    \
        c##r##0 = _mm512_fmadd_ps(ar, b0, c##r##0);                                                \
        c##r##1 = _mm512_fmadd_ps(ar, b1, c##r##1);                                                \
        c##r##2 = _mm512_fmadd_ps(ar, b2, c##r##2);                                                \
        c##r##3 = _mm512_fmadd_ps(ar, b3, c##r##3);                                                \
    }
        REP6(FMA)
#undef FMA
        ap += MRW;
        b += 64;
    }
    const size_t mr = MRW;
    WIDE_UPDATE();
}

/* ---- packing B stored transposed ------------------------------------------------------------ */

/* Rows r[0..16) of 16 floats become columns: afterwards r[c] holds element c of each row.
 * Interleaves of 32-bit, then 64-bit elements within 128-bit lanes, then two rounds of lane
 * shuffles: 64 shuffles for 256 elements. Written out, not as loops, and its callers store
 * full blocks with REP16: gcc -O2 then keeps the array in registers (with loops, or a store
 * loop of variable count, it spilled every vector to the stack). */
static inline __attribute__((always_inline)) void transpose16_ps(__m512 r[16])
{
    /* t[i], t[i + 1], lane L: rows i, i+1 interleaved at elements 4L, 4L+1 and 4L+2, 4L+3 */
#define PAIR(i, j)                                                                                 \
    const __m512 t##i = _mm512_unpacklo_ps(r[i], r[j]), t##j = _mm512_unpackhi_ps(r[i], r[j])
    PAIR(0, 1);
    PAIR(2, 3);
    PAIR(4, 5);
    PAIR(6, 7);
    PAIR(8, 9);
    PAIR(10, 11);
    PAIR(12, 13);
    PAIR(14, 15);
#undef PAIR
    /* u[i + c], lane L: rows i..i+3 at element 4L + c */
#define PD(x) _mm512_castps_pd(x)
#define PS(x) _mm512_castpd_ps(x)
#define QUAD(a, b, c, d)                                                                           \
    const __m512 u##a = PS(_mm512_unpacklo_pd(PD(t##a), PD(t##c))),                                \
                 u##b = PS(_mm512_unpackhi_pd(PD(t##a), PD(t##c))),                                \
                 u##c = PS(_mm512_unpacklo_pd(PD(t##b), PD(t##d))),                                \
                 u##d = PS(_mm512_unpackhi_pd(PD(t##b), PD(t##d)))
    QUAD(0, 1, 2, 3);
    QUAD(4, 5, 6, 7);
    QUAD(8, 9, 10, 11);
    QUAD(12, 13, 14, 15);
#undef QUAD
#undef PS
#undef PD
    /* column 4L + c: lane L of u[c], u[4 + c], u[8 + c], u[12 + c] */
#define COLUMNS(c, c4, c8, c12)                                                                    \
    do {                                                                                           \
        const __m512 lo0 = _mm512_shuffle_f32x4(u##c, u##c4, 0x44); /* lanes 0, 1 of each */       \
        const __m512 hi0 = _mm512_shuffle_f32x4(u##c, u##c4, 0xEE); /* lanes 2, 3 */               \
        const __m512 lo1 = _mm512_shuffle_f32x4(u##c8, u##c12, 0x44);                              \
        const __m512 hi1 = _mm512_shuffle_f32x4(u##c8, u##c12, 0xEE);                              \
        r[c] = _mm512_shuffle_f32x4(lo0, lo1, 0x88);                                               \
        r[c4] = _mm512_shuffle_f32x4(lo0, lo1, 0xDD);                                              \
        r[c8] = _mm512_shuffle_f32x4(hi0, hi1, 0x88);                                              \
        r[c12] = _mm512_shuffle_f32x4(hi0, hi1, 0xDD);                                             \
    } while (0)
    COLUMNS(0, 4, 8, 12);
    COLUMNS(1, 5, 9, 13);
    COLUMNS(2, 6, 10, 14);
    COLUMNS(3, 7, 11, 15);
#undef COLUMNS
}

/* One block of 16 columns by n <= 16 k (b at its first stored row and depth, dst at its first
 * panel row): the 16 stored rows' next n elements each, transposed in registers and written
 * as n rows of the panel. A full block (n = 16, a constant at the call) has its stores
 * written out; the last block of a depth that is not a multiple of 16 loads masked, so
 * nothing beyond the panel's depth is read. */
static inline __attribute__((always_inline)) void
bt_block_f32(const float *b, size_t ldb, float *restrict dst, size_t NR, size_t n)
{
    const bool full = n == 16;
    const __mmask16 m = mask16(n);
    __m512 r[16];
#define LOAD(i) r[i] = full ? _mm512_loadu_ps(b + (i)*ldb) : _mm512_maskz_loadu_ps(m, b + (i)*ldb);
    REP16(LOAD)
#undef LOAD
    transpose16_ps(r);
    if (full) {
#define STORE(c) _mm512_store_ps(dst + (c)*NR, r[c]);
        REP16(STORE)
#undef STORE
    } else {
        for (size_t c = 0; c < n; c++)
            _mm512_store_ps(dst + c * NR, r[c]);
    }
}

/* The panel 16 columns by 16 k at a time. (By gathers, one vector of 16 rows a k, packing
 * took a sixth of a 128 x 512 x 256 product; element by element, a third.) */
static void pack_bt_f32(const float *b, size_t ldb, size_t kc, float *restrict dst, size_t NR)
{
    size_t kb = 0;
    for (; kb + 16 <= kc; kb += 16)
        for (size_t v = 0; v < NR; v += 16)
            bt_block_f32(b + v * ldb + kb, ldb, dst + kb * NR + v, NR, 16);
    for (size_t v = 0; kb < kc && v < NR; v += 16)
        bt_block_f32(b + v * ldb + kb, ldb, dst + kb * NR + v, NR, kc - kb);
}

/* The same for 8 rows of 8 doubles: r[c] becomes element c of each row (24 shuffles). */
static inline __attribute__((always_inline)) void transpose8_pd(__m512d r[8])
{
    /* t[i + c], lane L: rows i, i+1 at element 2L + c */
#define PAIR(i, j)                                                                                 \
    const __m512d t##i = _mm512_unpacklo_pd(r[i], r[j]), t##j = _mm512_unpackhi_pd(r[i], r[j])
    PAIR(0, 1);
    PAIR(2, 3);
    PAIR(4, 5);
    PAIR(6, 7);
#undef PAIR
    /* column 2L + c: lane L of t[c], t[2 + c], t[4 + c], t[6 + c] */
#define COLUMNS(c, c2, c4, c6)                                                                     \
    do {                                                                                           \
        const __m512d lo0 = _mm512_shuffle_f64x2(t##c, t##c2, 0x44);                               \
        const __m512d hi0 = _mm512_shuffle_f64x2(t##c, t##c2, 0xEE);                               \
        const __m512d lo1 = _mm512_shuffle_f64x2(t##c4, t##c6, 0x44);                              \
        const __m512d hi1 = _mm512_shuffle_f64x2(t##c4, t##c6, 0xEE);                              \
        r[c] = _mm512_shuffle_f64x2(lo0, lo1, 0x88);                                               \
        r[c2] = _mm512_shuffle_f64x2(lo0, lo1, 0xDD);                                              \
        r[c4] = _mm512_shuffle_f64x2(hi0, hi1, 0x88);                                              \
        r[c6] = _mm512_shuffle_f64x2(hi0, hi1, 0xDD);                                              \
    } while (0)
    COLUMNS(0, 2, 4, 6);
    COLUMNS(1, 3, 5, 7);
#undef COLUMNS
}

/* One block, as bt_block_f32: n = 8 rows, or fewer. */
static inline __attribute__((always_inline)) void
bt_block_f64(const double *b, size_t ldb, double *restrict dst, size_t NR, size_t n)
{
    const bool full = n == 8;
    const __mmask8 m = mask8(n);
    __m512d r[8];
#define LOAD(i) r[i] = full ? _mm512_loadu_pd(b + (i)*ldb) : _mm512_maskz_loadu_pd(m, b + (i)*ldb);
    REP8(LOAD)
#undef LOAD
    transpose8_pd(r);
    if (full) {
#define STORE(c) _mm512_store_pd(dst + (c)*NR, r[c]);
        REP8(STORE)
#undef STORE
    } else {
        for (size_t c = 0; c < n; c++)
            _mm512_store_pd(dst + c * NR, r[c]);
    }
}

static void pack_bt_f64(const double *b, size_t ldb, size_t kc, double *restrict dst, size_t NR)
{
    size_t kb = 0;
    for (; kb + 8 <= kc; kb += 8)
        for (size_t v = 0; v < NR; v += 8)
            bt_block_f64(b + v * ldb + kb, ldb, dst + kb * NR + v, NR, 8);
    for (size_t v = 0; kb < kc && v < NR; v += 8)
        bt_block_f64(b + v * ldb + kb, ldb, dst + kb * NR + v, NR, kc - kb);
}

/* ---- thin products (C at most 16 columns) --------------------------------------------------- */

/* A thin block's rows to C: t[r] (f64: t[r] and t[8 + r], columns 0-7 and 8-15) is row r of
 * the block, n columns, stored for r < m. Every row of C is read before any is written: rows
 * of n < 16 elements share cache lines, and a masked load after a masked store to the same
 * line waits for the store (row by row, as update_ps would, beta = 1 at N = 10 ran a third
 * slower). */
static inline __attribute__((always_inline)) void
thin_store_f32(float *c, size_t ldc, size_t m, size_t n, __m512 t[16], float beta)
{
    const __mmask16 mn = mask16(n);
#define UPDATE(r)                                                                                  \
    if (r < m)                                                                                     \
        t[r] = updated_ps(c + (size_t)r * ldc, mn, t[r], beta);
#define STORE(r)                                                                                   \
    if (r < m)                                                                                     \
        _mm512_mask_storeu_ps(c + (size_t)r * ldc, mn, t[r]);
    REP16(UPDATE)
    REP16(STORE)
#undef STORE
#undef UPDATE
}

static inline __attribute__((always_inline)) void
thin_store_f64(double *c, size_t ldc, size_t m, size_t n, __m512d t[16], double beta)
{
    const __mmask8 m0 = mask8(n), m1 = mask8(n > 8 ? n - 8 : 0);
#define UPDATE(r)                                                                                  \
    if (r < m) {                                                                                   \
        t[r] = updated_pd(c + (size_t)r * ldc, m0, t[r], beta);                                    \
        t[8 + r] = updated_pd(c + (size_t)r * ldc + 8, m1, t[8 + r], beta);                        \
    }
#define STORE(r)                                                                                   \
    if (r < m) {                                                                                   \
        _mm512_mask_storeu_pd(c + (size_t)r * ldc, m0, t[r]);                                      \
        _mm512_mask_storeu_pd(c + (size_t)r * ldc + 8, m1, t[8 + r]);                              \
    }
    REP8(UPDATE)
    REP8(STORE)
#undef STORE
#undef UPDATE
}

/* The layout before: one row of C per accumulator (f32) or accumulator pair (f64), 16
 * columns in its lanes, each FMA with its own broadcast of A read in place against one packed
 * row of B. It leaves the lanes of the columns C does not have empty, but needs no transpose
 * of A. The driver runs it in place of the column kernels from the width gemm.c's
 * thin_rows_from gives for this CPU. */
static void thin_rows_f32(size_t m, size_t n, size_t kc, const float *a, size_t ai, size_t ak,
                          const float *restrict b, float *restrict c, size_t ldc, float beta)
{
    __m512 t[16];
#define DECL(r) t[r] = _mm512_setzero_ps();
    REP16(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m512 bv = _mm512_load_ps(b + k * 16);
        const float *col = a + k * ak; /* A(r, k) = col[r*ai] */
#define FMA(r) t[r] = _mm512_fmadd_ps(_mm512_set1_ps(col[(size_t)r * ai]), bv, t[r]);
        REP16(FMA)
#undef FMA
    }
    thin_store_f32(c, ldc, m, n, t, beta);
}

static void thin_rows_f64(size_t m, size_t n, size_t kc, const double *a, size_t ai, size_t ak,
                          const double *restrict b, double *restrict c, size_t ldc, double beta)
{
    __m512d t[16]; /* t[r], t[8 + r]: row r, columns 0-7 and 8-15 */
#define DECL(r) t[r] = t[8 + r] = _mm512_setzero_pd();
    REP8(DECL)
#undef DECL
    for (size_t k = 0; k < kc; k++) {
        const __m512d b0 = _mm512_load_pd(b + k * 16), b1 = _mm512_load_pd(b + k * 16 + 8);
        const double *col = a + k * ak;
#define FMA(r)                                                                                     \
    {                                                                                              \
        const __m512d ar = _mm512_set1_pd(col[(size_t)r * ai]);                                   \
        t[r] = _mm512_fmadd_pd(ar, b0, t[r]);                                                      \
        t[8 + r] = _mm512_fmadd_pd(ar, b1, t[8 + r]);                                              \
    }
        REP8(FMA)
#undef FMA
    }
    thin_store_f64(c, ldc, m, n, t, beta);
}

/* One k step of a thin block: t[j] += A(rows, k) * brow[j] for the n <= 16 columns (n a
 * constant at each call, so that t stays in registers), av A's rows at that k. */
static inline __attribute__((always_inline)) void
thin_step_f32(__m512 t[16], const size_t n, __m512 av, const float *restrict brow)
{
#define FMA(j)                                                                                     \
    if (j < n)                                                                                     \
        t[j] = _mm512_fmadd_ps(av, _mm512_set1_ps(brow[j]), t[j]);
    REP16(FMA)
#undef FMA
}

/* k steps [0, nk), A's rows at step k the vector at a + k*ak, B's row at b + k*16. */
static inline __attribute__((always_inline)) void
thin_steps_f32(__m512 t[16], const size_t n, size_t nk, const float *a, size_t ak,
               const float *restrict b)
{
    for (size_t k = 0; k < nk; k++)
        thin_step_f32(t, n, _mm512_loadu_ps(a + k * ak), b + k * 16);
}

static inline __attribute__((always_inline)) void
thin_block_f32(size_t m, const size_t n, size_t kc, const float *a, size_t ai, size_t ak,
               const float *restrict b, float *restrict c, size_t ldc, float beta)
{
    __m512 t[16];
#define DECL(j) t[j] = _mm512_setzero_ps();
    REP16(DECL)
#undef DECL
    if (ai == 1) { /* A's 16 rows at each k lie together (op(A) = A^T stored) */
        thin_steps_f32(t, n, kc, a, ak, b);
    } else { /* rows of A (ak == 1): 16 k at a time transposed in registers, used from there */
        size_t k0 = 0;
        for (; k0 + 16 <= kc; k0 += 16) {
            __m512 r[16];
#define LOAD(i) r[i] = _mm512_loadu_ps(a + (size_t)(i)*ai + k0);
            REP16(LOAD)
#undef LOAD
            transpose16_ps(r); /* r[kk]: the 16 rows at k0 + kk */
#define STEP(kk) thin_step_f32(t, n, r[kk], b + (k0 + kk) * 16);
            REP16(STEP)
#undef STEP
        }
        if (k0 < kc) { /* the last, shorter block through memory */
            _Alignas(64) float blk[16 * 16];
            bt_block_f32(a + k0, ai, blk, 16, kc - k0);
            thin_steps_f32(t, n, kc - k0, blk, 16, b + k0 * 16);
        }
    }
    transpose16_ps(t); /* t[r]: row r of the block, its n columns */
    thin_store_f32(c, ldc, m, n, t, beta);
}

static void thin_f32(size_t m, size_t n, size_t kc, const float *a, size_t ai, size_t ak,
                     const float *restrict b, float *restrict c, size_t ldc, float beta)
{
    switch (n) {
#define CASE(j)                                                                                    \
    case j + 1:                                                                                    \
        thin_block_f32(m, j + 1, kc, a, ai, ak, b, c, ldc, beta);                                 \
        return;
        REP16(CASE)
#undef CASE
    }
}

/* The same for f64: a block of 8 rows, one accumulator per column of C (16 at most). */
static inline __attribute__((always_inline)) void
thin_step_f64(__m512d t[16], const size_t n, __m512d av, const double *restrict brow)
{
#define FMA(j)                                                                                     \
    if (j < n)                                                                                     \
        t[j] = _mm512_fmadd_pd(av, _mm512_set1_pd(brow[j]), t[j]);
    REP16(FMA)
#undef FMA
}

static inline __attribute__((always_inline)) void
thin_steps_f64(__m512d t[16], const size_t n, size_t nk, const double *a, size_t ak,
               const double *restrict b)
{
    for (size_t k = 0; k < nk; k++)
        thin_step_f64(t, n, _mm512_loadu_pd(a + k * ak), b + k * 16);
}

static inline __attribute__((always_inline)) void
thin_block_f64(size_t m, const size_t n, size_t kc, const double *a, size_t ai, size_t ak,
               const double *restrict b, double *restrict c, size_t ldc, double beta)
{
    __m512d t[16];
#define DECL(j) t[j] = _mm512_setzero_pd();
    REP16(DECL)
#undef DECL
    if (ai == 1) {
        thin_steps_f64(t, n, kc, a, ak, b);
    } else {
        size_t k0 = 0;
        for (; k0 + 8 <= kc; k0 += 8) {
            __m512d r[8];
#define LOAD(i) r[i] = _mm512_loadu_pd(a + (size_t)(i)*ai + k0);
            REP8(LOAD)
#undef LOAD
            transpose8_pd(r);
#define STEP(kk) thin_step_f64(t, n, r[kk], b + (k0 + kk) * 16);
            REP8(STEP)
#undef STEP
        }
        if (k0 < kc) {
            _Alignas(64) double blk[8 * 8];
            bt_block_f64(a + k0, ai, blk, 8, kc - k0);
            thin_steps_f64(t, n, kc - k0, blk, 8, b + k0 * 16);
        }
    }
    transpose8_pd(t); /* t[r], t[8 + r]: row r of the block, columns 0-7 and 8-15 */
    if (n > 8)
        transpose8_pd(t + 8);
    thin_store_f64(c, ldc, m, n, t, beta);
}

static void thin_f64(size_t m, size_t n, size_t kc, const double *a, size_t ai, size_t ak,
                     const double *restrict b, double *restrict c, size_t ldc, double beta)
{
    switch (n) {
#define CASE(j)                                                                                    \
    case j + 1:                                                                                    \
        thin_block_f64(m, j + 1, kc, a, ai, ak, b, c, ldc, beta);                                 \
        return;
        REP16(CASE)
#undef CASE
    }
}

static void pack_bt_f32_32(const float *b, size_t ldb, size_t kc, float *dst)
{
    pack_bt_f32(b, ldb, kc, dst, 32);
}

static void pack_bt_f32_64(const float *b, size_t ldb, size_t kc, float *dst)
{
    pack_bt_f32(b, ldb, kc, dst, 64);
}

static void pack_bt_f64_16(const double *b, size_t ldb, size_t kc, double *dst)
{
    pack_bt_f64(b, ldb, kc, dst, 16);
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

/* clang-format off */
const tg_gemm_kernel tg_gemm__avx512_f32 = {
    MR, 32, 0, 0, 0, {.f32 = kern_f32}, 16, {.f32 = thin_f32}, burn_f32, {.f32 = pack_bt_f32_32},
    {.f32 = NULL}, {.f32 = kern_f32_pb}, {.f32 = thin_rows_f32}, 0};
const tg_gemm_kernel tg_gemm__avx512_f64 = {
    MR, 16, 0, 0, 0, {.f64 = kern_f64}, 8, {.f64 = thin_f64}, burn_f64, {.f64 = pack_bt_f64_16},
    {.f64 = NULL}, {.f64 = kern_f64_pb}, {.f64 = thin_rows_f64}, 0};
/* The wide tile for f32; f64 keeps 12 x 2 (its 6 x 4 would need 32 doubles of B a k step). */
const tg_gemm_kernel tg_gemm__avx512w_f32 = {
    MRW, 64, 0, 0, 0, {.f32 = kern_f32_wide}, 16, {.f32 = thin_f32}, burn_f32,
    {.f32 = pack_bt_f32_64}, {.f32 = kern_f32_wide_pa}, {.f32 = kern_f32_wide_pb},
    {.f32 = thin_rows_f32}, 0};
const tg_gemm_kernel tg_gemm__avx512w_f64 = {
    MR, 16, 0, 0, 0, {.f64 = kern_f64}, 8, {.f64 = thin_f64}, burn_f64, {.f64 = pack_bt_f64_16},
    {.f64 = NULL}, {.f64 = kern_f64_pb}, {.f64 = thin_rows_f64}, 0};
/* clang-format on */

#else
typedef int tg_gemm_avx512_unused; /* ISO C forbids an empty translation unit */
#endif
