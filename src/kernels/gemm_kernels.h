/* gemm_kernels.h: what the GEMM driver (gemm.c, gemm_impl.h) knows of a micro-kernel: its
 * register tile (MR x NR), its cache blocking, and one function per element type. The kernels
 * themselves live in one file per instruction set (gemm_avx512.c, gemm_avx2.c, compiled with
 * that file's -m flags only) and, portable, in gemm_impl.h. Internal to src/kernels. */
#ifndef TAPEGRAD_GEMM_KERNELS_H
#define TAPEGRAD_GEMM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* C[0:mr, 0:nr] = update(C, sum over k < kc of a[k*MR + i] * b[k*NR + j]), where a is a packed
 * MR-row micro-panel of A and b a packed NR-column micro-panel of B (both kc deep, zero-padded,
 * 64-byte aligned), mr <= MR, nr <= NR, and update is: beta == 0: acc (C is never read, so
 * garbage or NaN there is overwritten); beta == 1: C + acc; else beta*C + acc. Each element's
 * sum runs over k in order, one fused multiply-add per k, whatever the tile's position, which
 * is what makes results independent of how the work is split. */
typedef void (*tg_gemm_kern_f32)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                 float beta, size_t mr, size_t nr);
typedef void (*tg_gemm_kern_f64)(size_t kc, const double *a, const double *b, double *c, size_t ldc,
                                 double beta, size_t mr, size_t nr);

/* The thin kernel, for products whose C is at most TG_GEMM_THIN_NR columns wide (W3's last
 * layer: N = 10): C[0:m, 0:n] = update(C, sum over k < kc of A(i, k) * b[k*16 + j]) for
 * m <= the kernel's thin_mr rows, with A read where it lies, A(i, k) = a[i*ai + k*ak] (no
 * packed panel: each element of A is used only n times; all thin_mr rows must be there, the
 * driver pads the last block), and b a packed kc x 16 panel of B
 * (zero-padded, 64-byte aligned). Same update and same order of the sum as above: one fused
 * multiply-add per k, in increasing k, from zero. */
#define TG_GEMM_THIN_NR 16
typedef void (*tg_gemm_thin_f32)(size_t m, size_t n, size_t kc, const float *a, size_t ai,
                                 size_t ak, const float *b, float *c, size_t ldc, float beta);
typedef void (*tg_gemm_thin_f64)(size_t m, size_t n, size_t kc, const double *a, size_t ai,
                                 size_t ak, const double *b, double *c, size_t ldc, double beta);

/* Packs a full micro-panel (kc x NR) of B stored transposed, (N, K) row-major with row stride
 * ldb: dst[k*NR + j] = b[j*ldb + k] (b at the panel's first column and depth), in the kernel's
 * instruction set. NULL: the driver's loop. */
typedef void (*tg_gemm_pack_bt_f32)(const float *b, size_t ldb, size_t kc, float *dst);
typedef void (*tg_gemm_pack_bt_f64)(const double *b, size_t ldb, size_t kc, double *dst);

/* The micro-kernel fused with the packing of its A micro-panel, for a full one (MR rows):
 * the same product and update of C as tg_gemm_kern_* with mr = MR, but reading A where it
 * lies, A(i, k) = a[i*ai + k*ak], and writing meanwhile the packed panel (ap[k*MR + i], as the
 * driver's packing would) for the later calls over the same rows. The packing then costs no
 * pass of its own: its loads and stores fill the FMA-bound loop's idle load and store slots,
 * and the source's latency hides behind the FMAs. Same sum, same order, same bits. */
typedef void (*tg_gemm_kern_pa_f32)(size_t kc, const float *a, size_t ai, size_t ak, float *ap,
                                    const float *b, float *c, size_t ldc, float beta, size_t nr);
typedef void (*tg_gemm_kern_pa_f64)(size_t kc, const double *a, size_t ai, size_t ak, double *ap,
                                    const double *b, double *c, size_t ldc, double beta, size_t nr);

/* The micro-kernel fused with the packing of its B micro-panel, for a full one (NR columns)
 * of B stored row-major: the same product and update of C as tg_gemm_kern_* with nr = NR,
 * but reading B where it lies, B(k, j) = b[k*bk + j], and writing meanwhile the packed panel
 * (bp[k*NR + j], as the driver's packing would) for the later calls over the same columns:
 * bp 64-byte aligned as packed panels are, b as it comes. Same sum, same order, same bits. */
typedef void (*tg_gemm_kern_pb_f32)(size_t kc, const float *a, const float *b, size_t bk, float *bp,
                                    float *c, size_t ldc, float beta, size_t mr);
typedef void (*tg_gemm_kern_pb_f64)(size_t kc, const double *a, const double *b, size_t bk,
                                    double *bp, double *c, size_t ldc, double beta, size_t mr);

/* A micro-kernel and the blocking it wants (elements):
 *   MR x NR  the register tile: MR*NR/lanes accumulators plus the B vectors and one broadcast
 *            of A must fit the register file, with enough independent FMAs to hide latency.
 *   KC       depth of a packed block: one B micro-panel (KC x NR) stays in L1 while every
 *            A micro-panel of the block streams past it.
 *   MC       rows of the packed A block (MC x KC), which stays in L2 across a B panel.
 *   NC       columns of B packed at once (limited further by the workspace budget).
 * The tables below give MR, NR and the functions; KC, MC and NC are 0 there and derived at
 * run time from this machine's cache sizes (gemm.c: gemm_blocking), so they may differ
 * between machines but never between calls or thread counts on one machine.
 *   thin_mr, thin  the thin kernel and its rows per call (0 and NULL: none)
 *   burn     runs `iters` rounds of independent FMA chains in the kernel's instruction set
 *            and vector width, for measuring the core's peak; returns the flops done.
 *   pack_bt  packs B stored transposed (above), or NULL.
 *   fused    the micro-kernel that packs its A panel as it goes (above), or NULL.
 *   fused_b  the micro-kernel that packs its B panel as it goes (above), or NULL.
 *   thin_rows, thin_rows_from  a second thin kernel (same contract, C's rows in the registers
 *            where `thin` keeps its columns) and from how many columns of C it runs instead
 *            of `thin` when A's rows are not contiguous (ai != 1); the crossover is this CPU's
 *            (gemm.c: thin_rows_from, filled in with the blocking). NULL and 0: none. */
typedef struct tg_gemm_kernel {
    size_t mr, nr, kc, mc, nc;
    union {
        tg_gemm_kern_f32 f32;
        tg_gemm_kern_f64 f64;
    } fn;
    size_t thin_mr;
    union {
        tg_gemm_thin_f32 f32;
        tg_gemm_thin_f64 f64;
    } thin;
    double (*burn)(size_t iters);
    union {
        tg_gemm_pack_bt_f32 f32;
        tg_gemm_pack_bt_f64 f64;
    } pack_bt;
    union {
        tg_gemm_kern_pa_f32 f32;
        tg_gemm_kern_pa_f64 f64;
    } fused;
    union {
        tg_gemm_kern_pb_f32 f32;
        tg_gemm_kern_pb_f64 f64;
    } fused_b;
    union {
        tg_gemm_thin_f32 f32;
        tg_gemm_thin_f64 f64;
    } thin_rows;
    size_t thin_rows_from;
} tg_gemm_kernel;

/* ---- shared by the kernel files ---------------------------------------------------------- */

/* A tile's loop computes `rows` of its rows (a constant in each copy of it), the first
 * multiple of q that covers mr, for q a third of MR: a tile at C's bottom edge does not
 * multiply the rows it will not store (M = 128 leaves 2 rows of a 6-row tile, 8 of a 12-row
 * one). Calls tile(args..., rows), the tile's loop inlined for that many rows. */
#define TG_GEMM_BY_ROWS(mr, q, tile, ...)                                                          \
    do {                                                                                           \
        if ((mr) <= (q))                                                                           \
            tile(__VA_ARGS__, (q));                                                                \
        else if ((mr) <= 2 * (q))                                                                  \
            tile(__VA_ARGS__, 2 * (q));                                                            \
        else                                                                                       \
            tile(__VA_ARGS__, 3 * (q));                                                            \
    } while (0)

/* Asks for the `bytes` (whole cache lines) at p + off elements, which may lie past the end of
 * the matrix: a prefetch never faults, and the address is formed as an integer so that it is
 * never an out-of-bounds pointer. */
#if defined(__GNUC__) || defined(__clang__)
#define TG_GEMM_PREFETCH(p, off, bytes)                                                            \
    do {                                                                                           \
        const uintptr_t at_ = (uintptr_t)(p) + (off) * sizeof(*(p));                               \
        for (size_t l_ = 0; l_ < (bytes); l_ += 64)                                                \
            __builtin_prefetch((const void *)(at_ + l_));                                          \
    } while (0)
#else
#define TG_GEMM_PREFETCH(p, off, bytes) ((void)0)
#endif

/* B's rows are often a page or more apart, where the hardware's prefetchers do not follow:
 * what reads B a row at a time where it lies (pack_b, the kernels that pack B as they go)
 * asks for the row this many k on. */
#define TG_GEMM_PB_AHEAD 8

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The build compiles gemm_avx512.c and gemm_avx2.c with their instruction sets (see the
 * top-level CMakeLists.txt); the driver calls them only after checking the CPU. */
#define TG_GEMM_X86 1
extern const tg_gemm_kernel tg_gemm__avx512_f32, tg_gemm__avx512_f64;
extern const tg_gemm_kernel tg_gemm__avx512w_f32, tg_gemm__avx512w_f64;
extern const tg_gemm_kernel tg_gemm__avx2_f32, tg_gemm__avx2_f64;
#endif

#endif
