/* gemm.c: C = beta*C + op(A)·op(B) on raw row-major pointers, for f32 and f64 (the body is
 * written once in gemm_impl.h). This file picks the path of each call: small problems run
 * directly on the operands; the rest are packed and run on the best micro-kernel the CPU has
 * (AVX-512, AVX2+FMA, or portable C), split over the thread pool by blocks of C; or, in a
 * build with TG_BLAS=openblas, on cblas_sgemm/cblas_dgemm. The packing buffers come from the
 * calling thread's workspace (core/workspace.h). */
#include "kernels/gemm.h"

#include "core/pool.h"
#include "core/workspace.h"
#include "gemm_kernels.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#ifdef TG_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Budget for one group of packed B (elements): 4 MiB of f32, 8 MiB of f64. Bigger groups
 * mean fewer hand-offs to the pool (two per group), but the group should stay in the last
 * level cache. */
#define TG_GEMM_BPACK_ELEMS ((size_t)1 << 20)

/* Stack bytes of the path that runs when the workspace cannot be allocated: a micro-panel of
 * A (MR x KC) and one of B (KC x NR), at most 12 x 256 doubles and 256 x 128 bytes. */
#define TG_GEMM_STACK_BYTES ((size_t)64 << 10)

/* Problems with at most this many multiply-adds take the direct path: below it, packing
 * and the dispatch cost more than the kernel saves (the two break even around 6x6x6; time
 * them with `tapegrad bench gemm`, the README has the figures). */
#define TG_GEMM_SMALL_WORK ((size_t)8 * 8 * 8)

/* A slot (one thread's share of a group) gets at least this many multiply-adds, so a
 * hand-off to the pool is never for less than a few microseconds of work. */
#define TG_GEMM_SLOT_WORK ((size_t)1 << 18)

/* ---- splitting the work ------------------------------------------------------------------ */

/* How many slots (threads' shares) a group of an M x N x K problem gets, and how they tile
 * C: gm row parts x gn column parts, in whole MR x NR tiles (pm row tiles, pn column tiles
 * in a group). Splitting rows costs nothing extra; splitting columns makes every part pack
 * the same rows of A, so the choice minimizes the largest part's tiles plus that packing. */
static size_t gemm_slots(size_t M, size_t N, size_t K, size_t MR, size_t NR, size_t pn,
                             size_t *gm, size_t *gn)
{
    const size_t pm = (M + MR - 1) / MR;
    const double work = (double)M * (double)N * (double)K;
    size_t slots = (size_t)tg_get_num_threads();
    if ((double)slots * (double)TG_GEMM_SLOT_WORK > work)
        slots = (size_t)(work / (double)TG_GEMM_SLOT_WORK);
    for (; slots > 1; slots--) {
        double best = 0;
        *gm = *gn = 0;
        for (size_t r = 1; r <= slots; r++) {
            if (slots % r || r > pm || slots / r > pn)
                continue;
            const size_t rows = (pm + r - 1) / r * MR, cols = (pn + slots / r - 1) / (slots / r);
            const double cost = (double)rows * (double)(cols * NR + 16);
            if (!*gm || cost <= best) {
                best = cost;
                *gm = r;
                *gn = slots / r;
            }
        }
        if (*gm)
            return slots;
    }
    *gm = *gn = 1;
    return 1;
}

/* ---- choosing a path --------------------------------------------------------------------- */

static const char *const path_names[TG_GEMM_PATH_COUNT] = {
    [TG_GEMM_AUTO] = "auto",     [TG_GEMM_DIRECT] = "direct", [TG_GEMM_PORTABLE] = "portable",
    [TG_GEMM_AVX2] = "avx2",     [TG_GEMM_AVX512] = "avx512", [TG_GEMM_BLAS] = "blas",
};

const char *tg__gemm_path_name(tg_gemm_path path)
{
    return (unsigned)path < TG_GEMM_PATH_COUNT ? path_names[path] : "?";
}

bool tg__gemm_available(tg_gemm_path path)
{
    switch (path) {
    case TG_GEMM_AUTO:
    case TG_GEMM_DIRECT:
    case TG_GEMM_PORTABLE: return true;
#ifdef TG_GEMM_X86
    case TG_GEMM_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TG_GEMM_AVX512: return __builtin_cpu_supports("avx512f");
#endif
#ifdef TG_HAVE_OPENBLAS
    case TG_GEMM_BLAS: return true;
#endif
    default: return false;
    }
}

/* The best packed kernel this CPU runs, found once (every thread finds the same). */
static tg_gemm_path best_kernel(void)
{
    static _Atomic int best = -1;
    int b = atomic_load_explicit(&best, memory_order_relaxed);
    if (b < 0) {
        b = tg__gemm_available(TG_GEMM_AVX512) ? TG_GEMM_AVX512
            : tg__gemm_available(TG_GEMM_AVX2) ? TG_GEMM_AVX2
                                               : TG_GEMM_PORTABLE;
        atomic_store_explicit(&best, b, memory_order_relaxed);
    }
    return (tg_gemm_path)b;
}

static _Atomic int forced = TG_GEMM_AUTO;

bool tg__gemm_force(tg_gemm_path path)
{
    if (!tg__gemm_available(path))
        return false;
    atomic_store_explicit(&forced, (int)path, memory_order_relaxed);
    return true;
}

tg_gemm_path tg__gemm_path(size_t M, size_t N, size_t K)
{
    const tg_gemm_path f = (tg_gemm_path)atomic_load_explicit(&forced, memory_order_relaxed);
    if (f != TG_GEMM_AUTO)
        return f;
    if ((double)M * (double)N * (double)K <= (double)TG_GEMM_SMALL_WORK)
        return TG_GEMM_DIRECT;
#ifdef TG_HAVE_OPENBLAS
    return TG_GEMM_BLAS;
#else
    return best_kernel();
#endif
}

#ifdef TG_HAVE_OPENBLAS
/* OpenBLAS runs its own threads: keep their number at the library's. */
static void blas_threads(void)
{
    static _Atomic int set = 0;
    const int n = tg_get_num_threads();
    if (atomic_exchange_explicit(&set, n, memory_order_relaxed) != n)
        openblas_set_num_threads(n);
}

static bool blas_fits(size_t M, size_t N, size_t K, size_t lda, size_t ldb, size_t ldc)
{
    return M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
           ldc <= INT_MAX;
}
#endif

/* ---- the two element types: packing, kernels, entry points ---------------------------- */

#define T float
#define SFX(x) x##_f32
#define KFN f32
#define CBLAS_GEMM cblas_sgemm
#include "gemm_impl.h"
#undef T
#undef SFX
#undef KFN
#undef CBLAS_GEMM

#define T double
#define SFX(x) x##_f64
#define KFN f64
#define CBLAS_GEMM cblas_dgemm
#include "gemm_impl.h"
#undef T
#undef SFX
#undef KFN
#undef CBLAS_GEMM
