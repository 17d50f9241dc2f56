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
#include <stdint.h>
#include <unistd.h>
#ifdef TG_GEMM_X86
#include <cpuid.h>
#endif

#ifdef TG_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Budget for one group of packed B (elements): 4 MiB of f32, 8 MiB of f64. Bigger groups
 * mean fewer hand-offs to the pool (two per group), but the group should stay in the last
 * level cache. */
#define TG_GEMM_BPACK_ELEMS ((size_t)1 << 20)

/* The deepest KC block the blocking picks (gemm_blocking), the widest MR and the largest B
 * micro-panel (KC x NR): they size the stack buffers of the paths that need no workspace:
 * the fallback when the workspace cannot be allocated (a micro-panel of A, MR x KC, and one
 * of B, KC x NR: 48 KiB and 64 KiB at most) and the thin path (B's chunk, KC x 16, and a
 * padded row block of A, thin_mr x KC: 64 and 32 KiB at most). */
#define TG_GEMM_KC_MAX ((size_t)512)
#define TG_GEMM_MR_MAX ((size_t)12)
#define TG_GEMM_BPANEL_BYTES_MAX ((size_t)64 << 10)

/* Problems with at most this many multiply-adds take the direct path: below it, packing
 * and the dispatch cost more than the kernel saves (the two break even around 6x6x6; time
 * them with `tapegrad bench gemm`). */
#define TG_GEMM_SMALL_WORK ((size_t)8 * 8 * 8)

/* A slot (one thread's share of a product) gets at least this many multiply-adds, so a
 * hand-off to the pool is never for less than a microsecond or two of work; on both paths,
 * the packed one's groups and the thin one's row blocks (a product at most 16 columns wide).
 * On 2 threads (Zen 5, f32) W3's 128 x 10 x 256 ran at 178-188 GFLOP/s split at 2^17 or
 * 2^16, against 148-150 whole, and 256 x 10 x 128 (Aᵀ) at 201-209 against 167-168. The
 * packed path's slots were 2^18 until the pool kept each of two threads on its own range
 * (pool.c): at 2^17 W3's 128 x 256 x 10 split ran at 60-75 against 156-165 whole on Zen 5,
 * and on an Intel Xeon VM 10 us against 5.6, its two threads taking each other's part of C
 * every few jobs. Split with the pool as it is, on the Intel VM, 4.2 us (150-158 GFLOP/s
 * against 111-118 whole); unmeasured on Zen since, and measured on two threads only: with
 * t > 2 threads, products of 2^18 to t * 2^18 multiply-adds now get more slots than at 2^18,
 * and the workers among them still race for their ranges. */
#define TG_GEMM_SLOT_WORK ((size_t)1 << 17)

/* ---- splitting the work ------------------------------------------------------------------ */

/* A slot that reads B micro-panels another thread packed pays for each element it fetches
 * from that core's cache, per step of depth, about this many multiply-adds of its own: measured
 * on Zen 4 with W3's products (M = 128: splitting its 512 columns between 2 threads, each
 * reading only the panels it packed, ran 8-10 % faster than splitting its rows). */
#define TG_GEMM_REMOTE_B_COST 13

/* How many slots (threads' shares) a group of an M x N x K problem gets, and how they tile
 * C: gm row parts x gn column parts, in whole MR x NR tiles (pm row tiles, pn column tiles
 * in a group). The threads pack B's panels in contiguous shares first, so a part reading
 * only its own columns mostly reads panels its own thread packed; splitting rows makes
 * every part read all of them, (gm - 1) / gm packed elsewhere. Splitting columns makes every
 * part pack the same rows of A. The choice minimizes the largest part's tiles plus both. */
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
            const double cost = (double)rows * (double)(cols * NR + 16) +
                                TG_GEMM_REMOTE_B_COST * (double)(cols * NR) * (double)(r - 1) / (double)r;
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

/* ---- blocking for this machine's caches ------------------------------------------------- */

/* Data cache sizes from CPUID: leaf 4 (Intel and others) or 0x8000001D (AMD, Hygon), the
 * deterministic cache parameters both describe the same way. Leaves what it cannot read. */
#ifdef TG_GEMM_X86
static void cpuid_caches(size_t *l1d, size_t *l2, size_t *l3)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    unsigned leaf = 4;
    if (b == 0x68747541u || b == 0x6f677948u) { /* "Auth"enticAMD, "Hygo"nGenuine */
        if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x8000001Du)
            return;
        leaf = 0x8000001Du;
    } else if (a < 4) {
        return;
    }
    for (unsigned i = 0; i < 16; i++) {
        __cpuid_count(leaf, i, a, b, c, d);
        const unsigned type = a & 31u, level = (a >> 5) & 7u;
        if (type == 0)
            break;
        if (type != 1 && type != 3) /* data or unified, not instruction */
            continue;
        const size_t size = (size_t)((b >> 22) + 1) * (((b >> 12) & 0x3ffu) + 1) *
                            ((b & 0xfffu) + 1) * ((size_t)c + 1);
        if (level == 1)
            *l1d = size;
        else if (level == 2)
            *l2 = size;
        else if (level == 3)
            *l3 = size;
    }
}
#endif

static size_t clamp_size(size_t v, size_t lo, size_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Per-core L1d and L2 (and the L3, for the bench's heading), read once: CPUID on x86-64,
 * else what the C library says (sysconf), else 32 KiB and 256 KiB; clamped to sizes a core
 * can have, so that a virtual machine reporting nonsense still gets a sane blocking. */
static size_t cache_l1d, cache_l2, cache_l3;
static pthread_once_t caches_once = PTHREAD_ONCE_INIT;

static void read_caches(void)
{
    size_t l1d = 0, l2 = 0, l3 = 0;
#ifdef TG_GEMM_X86
    cpuid_caches(&l1d, &l2, &l3);
#endif
#ifdef _SC_LEVEL1_DCACHE_SIZE
    const long s1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), s2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    const long s3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (!l1d && s1 > 0)
        l1d = (size_t)s1;
    if (!l2 && s2 > 0)
        l2 = (size_t)s2;
    if (!l3 && s3 > 0)
        l3 = (size_t)s3;
#endif
    cache_l1d = clamp_size(l1d ? l1d : (size_t)32 << 10, (size_t)16 << 10, (size_t)256 << 10);
    cache_l2 = clamp_size(l2 ? l2 : (size_t)256 << 10, (size_t)128 << 10, (size_t)16 << 20);
    cache_l3 = l3;
}

void tg__gemm_caches(size_t *l1d, size_t *l2, size_t *l3)
{
    pthread_once(&caches_once, read_caches);
    *l1d = cache_l1d;
    *l2 = cache_l2;
    *l3 = cache_l3;
}

/* The CPU family of an AMD processor (19h: Zen 3 and 4, 1Ah: Zen 5), 0 for any other. */
static unsigned amd_family(void)
{
#ifdef TG_GEMM_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u) /* "Auth"enticAMD */
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return ((a >> 8) & 15u) + ((a >> 20) & 255u);
#else
    return 0;
#endif
}

/* Whether this is an AMD Zen 4 or Zen 5 (Zen 3, family 19h too, has no AVX-512 and never
 * asks). */
static bool amd_zen4_or_5(void)
{
    const unsigned family = amd_family();
    return family == 0x19 || family == 0x1a;
}

/* From how many columns of C the thin row-layout kernel (kernel.thin_rows) is the faster when
 * A's rows must be transposed for the column one (op(A) = A; with Aᵀ stored, the column
 * layout wins at every width): a function of the CPU, measured at 128 x n x 256, GFLOP/s,
 * columns against rows.
 * - Zen 4: f32 at n = 10 93 against 64, 14 95 against 89, 15 89 against 95, 16 96 against
 *   102; f64 at 10 51 against 39, 15 54 against 52, 16 55 against 56. The column kernel
 *   transposes 16 k of A at a time in registers, which beside the accumulators leaves no room
 *   past 14 columns (f32).
 * - Zen 5 (512-bit pipes): f32 columns win at every width (at 15 173 against 155, at 16 174
 *   against 166); f64 from 14 rows win (13: 90 against 87 columns; 14: 94 against 92; 15:
 *   100 against 93; 16: 108 against 96).
 * - Others (Intel) as Zen 4, unmeasured: Intel's AVX-512 cores run their second 512-bit FMA
 *   on the port that shuffles, so there the crossover should come sooner (about 12 columns,
 *   counting the ports' work). */
static size_t thin_rows_from(size_t es)
{
    if (amd_family() == 0x1a)
        return es == 4 ? TG_GEMM_THIN_NR + 1 : 14;
    return es == 4 ? 15 : 16;
}

/* Fills in k's blocking for elements of `es` bytes from the caches:
 *   KC: as deep as the L2 allows, because the C tile is loaded and stored once per KC block:
 *       the B micro-panel (KC x NR) in an eighth of L2 and at most 64 KiB, KC at most 512.
 *       It need not stay in L1: the kernels load two B vectors per 24 FMAs (four for the
 *       6 x 64 tile), which L2 feeds with bandwidth to spare. (Measured on Zen 4 with the
 *       12 x 32 tile, 1024^3 f32 against OpenBLAS side by side: KC 128, B in half of L1d,
 *       0.93x; 256, 1.0x; 512, 1.05x.)
 *   MC: the packed A block (MC x KC) in half of L2, beside the B panels passing through; a
 *       multiple of MR. (A product whose KC blocks are shallower gets more rows: packed.)
 *   NC: 8 KiB of B columns (2048 f32, 1024 f64), as the B budget (TG_GEMM_BPACK_ELEMS).
 * Each element of C sums its products in KC-deep blocks, so KC fixes the rounding: it
 * depends on the machine (its L2), never on the problem's split or the thread count. */
static void gemm_blocking(tg_gemm_kernel *k, size_t es)
{
    size_t l1d, l2, l3;
    tg__gemm_caches(&l1d, &l2, &l3);
    const size_t bpanel = l2 / 8 < TG_GEMM_BPANEL_BYTES_MAX ? l2 / 8 : TG_GEMM_BPANEL_BYTES_MAX;
    k->kc = clamp_size(bpanel / (k->nr * es) / 16 * 16, 64, TG_GEMM_KC_MAX);
    k->mc = clamp_size(l2 / 2 / (k->kc * es) / k->mr * k->mr, 2 * k->mr, 1536 / k->mr * k->mr);
    k->nc = ((size_t)8 << 10) / es / k->nr * k->nr;
    TG_ASSERT(k->mr <= TG_GEMM_MR_MAX && k->kc * k->nr * es <= TG_GEMM_BPANEL_BYTES_MAX);
    TG_ASSERT(k->thin_mr * es <= 16 * 8); /* the thin path's pad */
    const bool two_thin = es == 4 ? k->thin_rows.f32 != NULL : k->thin_rows.f64 != NULL;
    k->thin_rows_from = two_thin ? thin_rows_from(es) : 0;
}

/* The depth of the KC blocks of a product of depth K: K itself when it fits one block, else K
 * split into as few blocks as KC allows, of equal depth rounded up to a multiple of 8 (the
 * last may be shallower). Never more than kc when kc is a multiple of 8. */
static size_t gemm_even_kc(size_t kc, size_t K)
{
    if (K <= kc)
        return K;
    const size_t blocks = (K + kc - 1) / kc, even = (K + blocks - 1) / blocks;
    return (even + 7) / 8 * 8;
}

/* ---- the packing buffers ------------------------------------------------------------------ */

/* The calling thread's workspace for `bytes` of packed operands. For a product of `work`
 * multiply-adds with 2 MiB or more of them it starts on a 2 MiB boundary and is offered to
 * the kernel as transparent huge pages (advice: where THP is off, or the allocator hook's
 * memory cannot take it, nothing changes). The packed B of a 1024^3 product spans a thousand
 * 4 KiB pages, which the packing writes and the micro-kernel reads in different orders (the
 * commit that added this has the figures). The workspace is reserved 2 MiB
 * larger for the alignment (the spare is never touched). The advice is a system call of a
 * microsecond or two, given every time (the workspace may have been freed and mapped again
 * since), so only to products of at least GEMM_HUGE_WORK multiply-adds (a third of a
 * millisecond or more). */
#define GEMM_HUGE_WORK ((double)(1 << 25))

static void *gemm_workspace(size_t bytes, double work)
{
    if (bytes < TG_HUGE_PAGE || bytes > SIZE_MAX / 4 || work < GEMM_HUGE_WORK)
        return tg__workspace(bytes);
    unsigned char *p = tg__workspace(bytes + TG_HUGE_PAGE);
    if (!p)
        return NULL;
    const uintptr_t mask = (uintptr_t)TG_HUGE_PAGE - 1;
    unsigned char *at = p + ((((uintptr_t)p + mask) & ~mask) - (uintptr_t)p);
    tg__advise_huge_pages(at, bytes);
    return at;
}

/* ---- choosing a path --------------------------------------------------------------------- */

static const char *const path_names[TG_GEMM_PATH_COUNT] = {
    [TG_GEMM_AUTO] = "auto",     [TG_GEMM_DIRECT] = "direct", [TG_GEMM_PORTABLE] = "portable",
    [TG_GEMM_AVX2] = "avx2",     [TG_GEMM_AVX512] = "avx512", [TG_GEMM_BLAS] = "blas",
    [TG_GEMM_AVX512_WIDE] = "avx512wide",
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
    case TG_GEMM_AVX512:
    case TG_GEMM_AVX512_WIDE: return __builtin_cpu_supports("avx512f");
#endif
#ifdef TG_HAVE_OPENBLAS
    case TG_GEMM_BLAS: return true;
#endif
    default: return false;
    }
}

/* The packed kernel tg__gemm_prefer chose, or AUTO: this CPU's best. */
static _Atomic int preferred = TG_GEMM_AUTO;

bool tg__gemm_is_packed(tg_gemm_path path)
{
    return path == TG_GEMM_PORTABLE || path == TG_GEMM_AVX2 || path == TG_GEMM_AVX512 ||
           path == TG_GEMM_AVX512_WIDE;
}

bool tg__gemm_prefer(tg_gemm_path path)
{
    if (path != TG_GEMM_AUTO && (!tg__gemm_is_packed(path) || !tg__gemm_available(path)))
        return false;
    atomic_store_explicit(&preferred, (int)path, memory_order_relaxed);
    return true;
}

/* The preferred packed kernel, else the best this CPU runs, found once (every thread finds the
 * same). */
tg_gemm_path tg__gemm_best(void)
{
    const int p = atomic_load_explicit(&preferred, memory_order_relaxed);
    if (p != TG_GEMM_AUTO)
        return (tg_gemm_path)p;
    static _Atomic int best = -1;
    int b = atomic_load_explicit(&best, memory_order_relaxed);
    if (b < 0) {
        /* Zen 4 runs AVX-512 on 256-bit pipes, where the wide tile's fewer broadcasts pay
         * (gemm_avx512.c). Zen 5 (EPYC, 512-bit pipes) gains less but still gains: 1 thread
         * level to 8 % faster over 1024^3 and W3's products, 1024^3 on 2 threads 390 -> 415
         * GFLOP/s (family 26 model 2). Intel's cores, with two 512-bit FMA ports, keep 12 x 32 */
        b = tg__gemm_available(TG_GEMM_AVX512)
                ? (amd_zen4_or_5() ? TG_GEMM_AVX512_WIDE : TG_GEMM_AVX512)
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

/* 0, or the crossover forced on every thin kernel pair (tg__gemm_force_thin_rows_from) */
static _Atomic size_t forced_thin_rows_from;

void tg__gemm_force_thin_rows_from(size_t n)
{
    atomic_store_explicit(&forced_thin_rows_from, n, memory_order_relaxed);
}

/* The width from which kd's thin row-layout kernel runs, when A's rows are not contiguous. */
static size_t gemm_thin_rows_from(const tg_gemm_kernel *kd)
{
    const size_t f = atomic_load_explicit(&forced_thin_rows_from, memory_order_relaxed);
    return f ? f : kd->thin_rows_from;
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
    return tg__gemm_best();
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

/* ---- what the bench reports ------------------------------------------------------------- */

static tg_gemm_path packed_path(tg_gemm_path path)
{
    return tg__gemm_is_packed(path) ? path : tg__gemm_best();
}

tg_gemm_shape tg__gemm_shape(tg_gemm_path path, bool f64)
{
    path = packed_path(path);
    const tg_gemm_kernel *k = f64 ? kernel_f64(path) : kernel_f32(path);
    return (tg_gemm_shape){.path = path, .mr = k->mr, .nr = k->nr, .kc = k->kc, .mc = k->mc,
                           .nc = k->nc, .thin_mr = k->thin_mr,
                           .thin_rows_from = k->thin_rows_from};
}

double tg__gemm_fma_burn(tg_gemm_path path, bool f64, size_t iters)
{
    path = packed_path(path);
    if (!tg__gemm_available(path))
        return 0;
    const tg_gemm_kernel *k = f64 ? kernel_f64(path) : kernel_f32(path);
    return k->burn(iters);
}
