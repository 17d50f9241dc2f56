/* gemm_impl.h: the GEMM for one element type, included by gemm.c once per type with
 *   T      the element type (float, double)
 *   SFX(x) x with the type's suffix (x_f32, x_f64)
 *   KFN    the member of tg_gemm_kernel.fn for T (f32, f64); also the suffix of the
 *          micro-kernel tables (tg_gemm__avx512_f32, ...)
 *   CBLAS_GEMM  the CBLAS routine for T (cblas_sgemm, cblas_dgemm), in TG_BLAS builds
 * A is (M,K), stored (K,M) when transA; B is (K,N), stored (N,K) when transB; ldX are the
 * row strides of the stored matrices.
 *
 * Two paths. The direct path is plain loops over the operands where they lie, for problems
 * too small to repay packing. The packed path is the GotoBLAS/BLIS structure:
 *
 *   for jc over N in steps of nc                      one group of B columns
 *     for k0 over K in steps of kg                    ... and of depth (kg*nc fits a budget)
 *       pack B[k0:k0+kg, jc:jc+nc] into KC x NR micro-panels         (parallel over panels;
 *                                                                     see below for when not)
 *       for each slot (a rectangle of C, disjoint from the others)    (parallel over slots)
 *         for ic over the slot's rows in steps of MC
 *           for pc over the group's depth in steps of KC
 *             pack A[ic:ic+MC, pc:pc+KC] into MR x KC micro-panels (the slot's own buffer)
 *             for each NR panel of the slot's columns, for each MR panel of the block:
 *               micro-kernel: an MR x NR tile of C += (MR x KC) . (KC x NR)
 *
 * With a kernel that has a fused form (kd->fused), A's full micro-panels are not packed
 * beforehand: over the slot's first NR panel the fused kernel reads them where they lie and
 * packs them as it goes, for the other NR panels to read packed.
 *
 * When no two slots share a B panel (the slots split C by columns only: one thread, or few
 * rows), there is no packing pass over B: each slot packs its panels as it first reaches them,
 * and with a kernel that packs B as it goes (kd->fused_b) the first tile over a full panel of
 * row-major B reads it where it lies and writes the packed panel for the tiles below it.
 *
 * Transposed operands differ only in how the packing routines read them. Each element of C
 * accumulates its KC-deep partial sums in increasing k whatever the slots are, and slots are
 * whole MR x NR tiles, so the result does not depend on the number of threads. */

/* ---- direct path ------------------------------------------------------------------------- */

static void SFX(direct)(bool transA, bool transB, size_t M, size_t N, size_t K, const T *A,
                        size_t lda, const T *B, size_t ldb, T beta, T *C, size_t ldc)
{
    /* A(i,k) = A[i*ai + k*ak], B(k,j) = B[k*bk + j*bj]: one loop nest for all four layouts.
     * Each element is one dot product, so C is written once and never read when beta == 0
     * (it may hold garbage, even NaN). The operands of problems this small sit in L1. */
    const size_t ai = transA ? 1 : lda, ak = transA ? lda : 1;
    const size_t bk = transB ? 1 : ldb, bj = transB ? ldb : 1;
    for (size_t i = 0; i < M; i++) {
        T *c = C + i * ldc;
        for (size_t j = 0; j < N; j++) {
            const T *a = A + i * ai, *b = B + j * bj;
            T acc = 0;
            for (size_t k = 0; k < K; k++)
                acc += a[k * ak] * b[k * bk];
            c[j] = beta == 0 ? acc : beta == 1 ? c[j] + acc : beta * c[j] + acc;
        }
    }
}

/* ---- the portable micro-kernel (4 x 8; plain C the compiler may vectorize) ----------------- */

static void SFX(kern_portable)(size_t kc, const T *restrict a, const T *restrict b,
                               T *restrict c, size_t ldc, T beta, size_t mr, size_t nr)
{
    T acc[4][8] = {{0}};
    for (size_t k = 0; k < kc; k++, a += 4, b += 8)
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 8; j++)
                acc[i][j] += a[i] * b[j];
    for (size_t i = 0; i < mr; i++) {
        T *ci = c + i * ldc;
        if (beta == 0) {
            for (size_t j = 0; j < nr; j++)
                ci[j] = acc[i][j];
        } else if (beta == 1) {
            for (size_t j = 0; j < nr; j++)
                ci[j] += acc[i][j];
        } else {
            for (size_t j = 0; j < nr; j++)
                ci[j] = beta * ci[j] + acc[i][j];
        }
    }
}

/* The peak of plain C: 8 independent chains of multiply-adds (not fused: the portable path
 * has no guaranteed FMA). */
static double SFX(burn_portable)(size_t iters)
{
    T p[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const T x = (T)0.999, y = (T)1e-7;
    for (size_t i = 0; i < iters; i++)
        for (size_t r = 0; r < 8; r++)
            p[r] = p[r] * x + y;
    volatile T sink = p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];
    (void)sink;
    return (double)iters * 8 * 2;
}

/* A tile of 4 x 8; the blocking is derived at run time, as for the SIMD kernels. */
/* clang-format off */
static const tg_gemm_kernel SFX(portable_kernel) = {
    4, 8, 0, 0, 0, {.KFN = SFX(kern_portable)}, 0, {.KFN = NULL}, SFX(burn_portable),
    {.KFN = NULL}, {.KFN = NULL}, {.KFN = NULL}, {.KFN = NULL}, 0};
/* clang-format on */

/* ---- packing ------------------------------------------------------------------------------- */


/* A[i0:i0+mc, k0:k0+kc] into ceil(mc/MR) micro-panels, each kc x MR (element (i, k) of a
 * panel at k*MR + i). Row-major A is read a row at a time; A stored transposed is already a
 * run of MR elements per k. Rows past mc only feed rows of C the kernel does not store; they
 * are zeroed anyway so stale memory never brings denormals or NaN into the arithmetic. */
static void SFX(pack_a)(const tg_gemm_kernel *kd, bool transA, const T *A, size_t lda,
                        size_t i0, size_t mc, size_t k0, size_t kc, T *restrict dst)
{
    const size_t MR = kd->mr;
    for (size_t ir = 0; ir < mc; ir += MR, dst += kc * MR) {
        const size_t mr = mc - ir < MR ? mc - ir : MR;
        if (transA) {
            const T *src = A + k0 * lda + i0 + ir;
            if (mr == MR && (MR == 12 || MR == 6)) { /* a constant size: inline, no call */
                if (MR == 12)
                    for (size_t k = 0; k < kc; k++)
                        memcpy(dst + k * 12, src + k * lda, 12 * sizeof(T));
                else
                    for (size_t k = 0; k < kc; k++)
                        memcpy(dst + k * 6, src + k * lda, 6 * sizeof(T));
                continue;
            }
            for (size_t k = 0; k < kc; k++) {
                T *d = dst + k * MR;
                memcpy(d, src + k * lda, mr * sizeof(T));
                for (size_t i = mr; i < MR; i++)
                    d[i] = 0;
            }
        } else if (mr == MR && (MR == 12 || MR == 6)) {
            /* the SIMD kernels' tiles: k outer, so each k's MR elements are written together
             * and the rows are read in step (row-major A's rows can be 4 KiB apart, and
             * writing a panel column by column aliased with them) */
            const T *src = A + (i0 + ir) * lda + k0;
#define PACK_ROW(i) d[i] = src[(i) * lda + k];
            if (MR == 12) {
                for (size_t k = 0; k < kc; k++) {
                    T *d = dst + k * 12;
                    if (k % 16 == 0)
                        for (size_t i = 0; i < 12; i++)
                            TG_GEMM_PREFETCH(src, i * lda + k + 64, 64);
                    PACK_ROW(0) PACK_ROW(1) PACK_ROW(2) PACK_ROW(3) PACK_ROW(4) PACK_ROW(5)
                    PACK_ROW(6) PACK_ROW(7) PACK_ROW(8) PACK_ROW(9) PACK_ROW(10) PACK_ROW(11)
                }
            } else {
                for (size_t k = 0; k < kc; k++) {
                    T *d = dst + k * 6;
                    if (k % 16 == 0)
                        for (size_t i = 0; i < 6; i++)
                            TG_GEMM_PREFETCH(src, i * lda + k + 64, 64);
                    PACK_ROW(0) PACK_ROW(1) PACK_ROW(2) PACK_ROW(3) PACK_ROW(4) PACK_ROW(5)
                }
            }
#undef PACK_ROW
        } else {
            for (size_t i = 0; i < mr; i++) {
                const T *src = A + (i0 + ir + i) * lda + k0;
                for (size_t k = 0; k < kc; k++)
                    dst[k * MR + i] = src[k];
            }
            for (size_t i = mr; i < MR; i++)
                for (size_t k = 0; k < kc; k++)
                    dst[k * MR + i] = 0;
        }
    }
}

#ifndef GEMM_CODE_ALIGN
/* Starts a function on a cache line: pack_b's short loops (B stored transposed, shallow
 * blocks: W3's dX) ran 10 % slower at one 16-byte offset than another, and the offset moved
 * with unrelated changes to the kernels linked before it. */
#if defined(__GNUC__) || defined(__clang__)
#define GEMM_CODE_ALIGN __attribute__((aligned(64)))
#else
#define GEMM_CODE_ALIGN
#endif
#endif

/* B[k0:k0+kc, j0:j0+nr] into one micro-panel kc x NR (element (k, j) at k*NR + j), columns
 * past nr zero (as rows in pack_a). Row-major B is a run of nr elements per k; B stored
 * transposed is read a stored row (a column of B) at a time. */
static GEMM_CODE_ALIGN void SFX(pack_b)(size_t NR, bool transB, const T *B, size_t ldb, size_t k0,
                                        size_t kc, size_t j0, size_t nr, T *restrict dst)
{
    if (!transB) {
        const T *src = B + k0 * ldb + j0;
        if (nr == NR && (NR * sizeof(T) == 128 || NR * sizeof(T) == 256)) {
            /* the AVX-512 tiles: constant sizes, copied inline, the row TG_GEMM_PB_AHEAD on
             * fetched meanwhile */
            for (size_t k = 0; k < kc; k++) {
                const T *row = src + k * ldb;
                TG_GEMM_PREFETCH(row, TG_GEMM_PB_AHEAD * ldb, NR * sizeof(T));
                if (NR * sizeof(T) == 128)
                    memcpy(dst + k * NR, row, 128);
                else
                    memcpy(dst + k * NR, row, 256);
            }
            return;
        }
        if (NR == TG_GEMM_THIN_NR && nr >= 8) {
            /* the thin path's panels of 8 to 16 columns (W3's 10): two copies of 8 that
             * overlap when nr < 16, of constant size and so inline, not a call per row */
            for (size_t k = 0; k < kc; k++) {
                const T *row = src + k * ldb;
                T *d = dst + k * NR;
                memset(d + 8, 0, 8 * sizeof(T));
                memcpy(d + nr - 8, row + nr - 8, 8 * sizeof(T));
                memcpy(d, row, 8 * sizeof(T));
            }
            return;
        }
        for (size_t k = 0; k < kc; k++) {
            T *d = dst + k * NR;
            memcpy(d, src + k * ldb, nr * sizeof(T));
            for (size_t j = nr; j < NR; j++)
                d[j] = 0;
        }
    } else {
        /* 16 k at a time: the panel's 16 rows being written (16 x NR, at most 4 KiB) stay in
         * L1 while each column of B is read 16 elements on */
        for (size_t kb = 0; kb < kc; kb += 16) {
            const size_t ke = kc - kb < 16 ? kc : kb + 16;
            for (size_t j = 0; j < nr; j++) {
                const T *src = B + (j0 + j) * ldb + k0;
                for (size_t k = kb; k < ke; k++)
                    dst[k * NR + j] = src[k];
            }
        }
        for (size_t j = nr; j < NR; j++)
            for (size_t k = 0; k < kc; k++)
                dst[k * NR + j] = 0;
    }
}

/* A micro-panel of B for kernel kd: its own routine for a full panel of B stored transposed
 * when it has one and the panel is 8 k deep or more (its transposes in registers beat the
 * plain loop's element copies even at W3's dX, K = 10: 77 -> 80 GFLOP/s on Zen 4), else
 * pack_b. */
static void SFX(pack_b_kd)(const tg_gemm_kernel *kd, bool transB, const T *B, size_t ldb,
                           size_t k0, size_t kc, size_t j0, size_t nr, T *restrict dst)
{
    if (transB && nr == kd->nr && kc >= 8 && kd->pack_bt.KFN) {
        kd->pack_bt.KFN(B + j0 * ldb + k0, ldb, kc, dst);
        return;
    }
    SFX(pack_b)(kd->nr, transB, B, ldb, k0, kc, j0, nr, dst);
}

/* ---- the packed path ----------------------------------------------------------------------- */

typedef struct SFX(job) {
    const tg_gemm_kernel *kd;
    bool transA, transB;
    size_t M, N, K;
    const T *A, *B;
    size_t lda, ldb, ldc;
    T beta;
    T *C;
    size_t gm, gn;      /* slots: gm row parts x gn column parts of each group's C */
    size_t jc, nc, ncp; /* the group's columns [jc, jc+nc); ncp: nc rounded up to NR */
    size_t k0, kg;      /* the group's depth [k0, k0+kg) */
    T *bp;              /* the group's packed B: KC-deep blocks of ncp/NR micro-panels */
    T *ap;              /* one packed A block (MC x KC) per slot */
    bool own_b;         /* each slot packs its own B panels on first use (gm == 1: no two
                         * slots share a panel), not a pass over all of them first */
} SFX(job);

/* Packs B micro-panels [q0, q1) of the group, every KC block of its depth. */
static void SFX(pack_b_range)(void *ctx, size_t q0, size_t q1)
{
    const SFX(job) *jb = ctx;
    const tg_gemm_kernel *kd = jb->kd;
    for (size_t q = q0; q < q1; q++) {
        const size_t j = q * kd->nr, nr = jb->nc - j < kd->nr ? jb->nc - j : kd->nr;
        for (size_t kk = 0; kk < jb->kg; kk += kd->kc) {
            const size_t kc = jb->kg - kk < kd->kc ? jb->kg - kk : kd->kc;
            SFX(pack_b_kd)(kd, jb->transB, jb->B, jb->ldb, jb->k0 + kk, kc, jb->jc + j, nr,
                        jb->bp + kk * jb->ncp + q * kc * kd->nr);
        }
    }
}

/* One slot's rectangle of the group's C, with `abuf` (MC x KC) for its packed A. */
static void SFX(slot)(const SFX(job) *jb, size_t s, T *abuf)
{
    const tg_gemm_kernel *kd = jb->kd;
    const size_t MR = kd->mr, NR = kd->nr;
    const size_t pm = (jb->M + MR - 1) / MR, pn = jb->ncp / NR;
    const size_t sm = s / jb->gn, sn = s % jb->gn;
    const size_t r0 = sm * pm / jb->gm * MR, r1e = (sm + 1) * pm / jb->gm * MR;
    const size_t r1 = r1e < jb->M ? r1e : jb->M;
    const size_t q0 = sn * pn / jb->gn, q1 = (sn + 1) * pn / jb->gn;
    /* A(i, k) = A[i*ai + k*ak]: with a fused kernel, the first column panel of each block
     * packs the block's full A panels as it goes (the rest of the rows, fewer than MR, are
     * packed first as usual); from 8 k deep (W3's dX, K = 10: 86 -> 88 GFLOP/s on Zen 4;
     * K = 16 and 24 gained 2 to 4 % too) */
    const size_t ai = jb->transA ? 1 : jb->lda, ak = jb->transA ? jb->lda : 1;
    const bool fuse = kd->fused.KFN && q1 > q0 && kd->kc >= 8;
    /* With a slot packing its own B (jb->own_b), the first tile over each full panel of B
     * stored row-major packs it as it goes, when the kernel has that form (kd->fused_b) and
     * the block is deep enough (else, and over the panel the fused A takes, pack_b first). */
    const bool fuse_b = kd->fused_b.KFN && !jb->transB && kd->kc >= 32;
    for (size_t ic = r0; ic < r1; ic += kd->mc) {
        const size_t mc = r1 - ic < kd->mc ? r1 - ic : kd->mc, mfull = fuse ? mc / MR * MR : 0;
        for (size_t kk = 0; kk < jb->kg; kk += kd->kc) {
            const size_t kc = jb->kg - kk < kd->kc ? jb->kg - kk : kd->kc;
            if (mfull < mc)
                SFX(pack_a)(kd, jb->transA, jb->A, jb->lda, ic + mfull, mc - mfull, jb->k0 + kk,
                            kc, abuf + mfull * kc);
            /* beta applies once, with the first KC block; the rest accumulate */
            const T beta = jb->k0 + kk == 0 ? jb->beta : (T)1;
            T *bblock = jb->bp + kk * jb->ncp;
            for (size_t q = q0; q < q1; q++) {
                const size_t j = q * NR, nr = jb->nc - j < NR ? jb->nc - j : NR;
                T *b = bblock + q * kc * NR;
                T *c = jb->C + ic * jb->ldc + jb->jc + j;
                const size_t ir0 = q == q0 ? mfull : 0;
                size_t ir1 = ir0; /* the first tile the plain kernel takes */
                if (jb->own_b && ic == r0) { /* the panel's first use: pack it */
                    if (ir0 == 0 && fuse_b && nr == NR) {
                        kd->fused_b.KFN(kc, abuf, jb->B + (jb->k0 + kk) * jb->ldb + jb->jc + j,
                                        jb->ldb, b, c, jb->ldc, beta, mc < MR ? mc : MR);
                        ir1 = MR;
                    } else {
                        SFX(pack_b_kd)(kd, jb->transB, jb->B, jb->ldb, jb->k0 + kk, kc,
                                       jb->jc + j, nr, b);
                    }
                }
                for (size_t ir = 0; ir < ir0; ir += MR)
                    kd->fused.KFN(kc, jb->A + (ic + ir) * ai + (jb->k0 + kk) * ak, ai, ak,
                                  abuf + ir * kc, b, c + ir * jb->ldc, jb->ldc, beta, nr);
                for (size_t ir = ir1; ir < mc; ir += MR) {
                    const size_t mr = mc - ir < MR ? mc - ir : MR;
                    kd->fn.KFN(kc, abuf + ir * kc, b, c + ir * jb->ldc, jb->ldc, beta, mr, nr);
                }
            }
        }
    }
}

/* Slots [s0, s1): a range runs on one thread, so the slots in it share slot s0's buffer. */
static void SFX(slot_range)(void *ctx, size_t s0, size_t s1)
{
    const SFX(job) *jb = ctx;
    T *abuf = jb->ap + s0 * jb->kd->mc * jb->kd->kc;
    for (size_t s = s0; s < s1; s++)
        SFX(slot)(jb, s, abuf);
}

/* The packed path without a workspace, on the calling thread, for when the workspace cannot
 * be allocated (a GEMM has no way to fail): the same kernel over the same KC blocks in the
 * same order, one micro-panel of each operand at a time in a stack buffer, so the result has
 * the bits SFX(packed) would give, only slower (A is packed again for every NR columns). */
static void SFX(packed_unbuffered)(const tg_gemm_kernel *kd, bool transA, bool transB,
                                   size_t M, size_t N, size_t K, const T *A, size_t lda,
                                   const T *B, size_t ldb, T beta, T *C, size_t ldc)
{
    _Alignas(TG_DATA_ALIGN) T a[TG_GEMM_MR_MAX * TG_GEMM_KC_MAX];
    _Alignas(TG_DATA_ALIGN) T b[TG_GEMM_BPANEL_BYTES_MAX / sizeof(T)];
    TG_ASSERT(kd->mr * kd->kc <= sizeof a / sizeof *a && kd->nr * kd->kc <= sizeof b / sizeof *b);
    for (size_t pc = 0; pc < K; pc += kd->kc) {
        const size_t kc = K - pc < kd->kc ? K - pc : kd->kc;
        const T bt = pc == 0 ? beta : (T)1;
        for (size_t j = 0; j < N; j += kd->nr) {
            const size_t nr = N - j < kd->nr ? N - j : kd->nr;
            SFX(pack_b_kd)(kd, transB, B, ldb, pc, kc, j, nr, b);
            for (size_t i = 0; i < M; i += kd->mr) {
                const size_t mr = M - i < kd->mr ? M - i : kd->mr;
                SFX(pack_a)(kd, transA, A, lda, i, mr, pc, kc, a);
                kd->fn.KFN(kc, a, b, C + i * ldc + j, ldc, bt, mr, nr);
            }
        }
    }
}

/* ---- the thin path (C at most TG_GEMM_THIN_NR columns) ----------------------------------- */

typedef struct SFX(thin_job) {
    const tg_gemm_kernel *kd;
    size_t M, N, kc;
    const T *A; /* at the chunk's first k */
    size_t ai, ak;
    const T *B; /* B as stored, and the chunk's first k */
    size_t ldb, k0;
    bool transB;
    T beta;
    T *C;
    size_t ldc;
    size_t rows_from; /* the row-layout kernel's first width (gemm_thin_rows_from) */
} SFX(thin_job);

/* Row blocks [q0, q1) of thin_mr rows, for one chunk of the depth. Each call packs the
 * chunk of B (kc x 16) for itself, on its own stack: packed once by the caller, it was read by
 * the other thread from the caller's cache, and a 128 x 10 x 256 product split in two ran at
 * 113-129 GFLOP/s against 148-150 on one thread; packed by each, at 178-188 (Zen 5, f32). The
 * last block, when M is not a multiple of thin_mr, is copied (zero-padded) so the kernel reads
 * only memory that is there: a row at a time when A's rows are contiguous, else a k at a
 * time, so each line of A is read once (element by element with a test per element, the copy
 * took a sixth of a 128 x 10 x 256 product on the AVX2 path, whose 12-row blocks leave 8). */
static void SFX(thin_rows)(void *ctx, size_t q0, size_t q1)
{
    const SFX(thin_job) *jb = ctx;
    const size_t TMR = jb->kd->thin_mr;
    _Alignas(TG_DATA_ALIGN) T b[TG_GEMM_KC_MAX * TG_GEMM_THIN_NR];
    TG_ASSERT(jb->kc * TG_GEMM_THIN_NR <= sizeof b / sizeof *b);
    SFX(pack_b)(TG_GEMM_THIN_NR, jb->transB, jb->B, jb->ldb, jb->k0, jb->kc, 0, jb->N, b);
    _Alignas(TG_DATA_ALIGN) T pad[16 * 8 / sizeof(T) * TG_GEMM_KC_MAX];
    for (size_t q = q0; q < q1; q++) {
        const size_t i = q * TMR, m = jb->M - i < TMR ? jb->M - i : TMR;
        const T *a = jb->A + i * jb->ai;
        size_t ai = jb->ai, ak = jb->ak;
        if (m < TMR) {
            const size_t kc = jb->kc;
            TG_ASSERT(TMR * kc <= sizeof pad / sizeof *pad);
            memset(pad + m * kc, 0, (TMR - m) * kc * sizeof(T));
            if (ak == 1)
                for (size_t r = 0; r < m; r++)
                    memcpy(pad + r * kc, a + r * ai, kc * sizeof(T));
            else
                for (size_t k = 0; k < kc; k++)
                    for (size_t r = 0; r < m; r++)
                        pad[r * kc + k] = a[r * ai + k * ak];
            a = pad;
            ai = jb->kc;
            ak = 1;
        }
        const bool by_rows = jb->kd->thin_rows.KFN && ai != 1 && jb->N >= jb->rows_from;
        (by_rows ? jb->kd->thin_rows.KFN : jb->kd->thin.KFN)(m, jb->N, jb->kc, a, ai, ak, b,
                                                             jb->C + i * jb->ldc, jb->ldc,
                                                             jb->beta);
    }
}

/* C = beta*C + op(A)·op(B) for N <= TG_GEMM_THIN_NR through kd's thin kernel: for each
 * KC-deep chunk of the depth, the row blocks of C are split over the pool (slots of at least
 * TG_GEMM_SLOT_WORK multiply-adds), each packing B's chunk. A is read in place. */
static void SFX(thin)(const tg_gemm_kernel *kd, bool transA, bool transB, size_t M, size_t N,
                      size_t K, const T *A, size_t lda, const T *B, size_t ldb, T beta, T *C,
                      size_t ldc)
{
    const size_t ai = transA ? 1 : lda, ak = transA ? lda : 1;
    const size_t TMR = kd->thin_mr, blocks = (M + TMR - 1) / TMR;
    for (size_t k0 = 0; k0 < K; k0 += kd->kc) {
        const size_t kc = K - k0 < kd->kc ? K - k0 : kd->kc;
        SFX(thin_job) jb = {.kd = kd, .M = M, .N = N, .kc = kc, .A = A + k0 * ak, .ai = ai,
                            .ak = ak, .B = B, .ldb = ldb, .k0 = k0, .transB = transB,
                            .beta = k0 == 0 ? beta : (T)1, .C = C, .ldc = ldc,
                            .rows_from = gemm_thin_rows_from(kd)};
        const size_t per_block = TMR * N * kc;
        size_t grain = TG_GEMM_SLOT_WORK / per_block;
        tg__parallel_for(blocks, grain ? grain : 1, SFX(thin_rows), &jb);
    }
}

/* C = beta*C + op(A)·op(B) through kernel kd. */
static void SFX(packed)(const tg_gemm_kernel *kd_machine, bool transA, bool transB, size_t M,
                        size_t N, size_t K, const T *A, size_t lda, const T *B, size_t ldb,
                        T beta, T *C, size_t ldc)
{
    /* The depth in equal blocks no deeper than the machine's KC (K = 784 at KC 256: four of
     * 200 and 184, not three of 256 and one of 16, whose C tiles would be loaded and stored
     * for 16 FMAs each): a function of K and the machine only, as the rounding demands. */
    tg_gemm_kernel kblk = *kd_machine;
    const tg_gemm_kernel *kd = &kblk;
    kblk.kc = gemm_even_kc(kd_machine->kc, K);
    /* Shallower blocks leave room in L2 for more rows of A: MC x KC stays what the machine's
     * blocking allows (f64 at K = 256: 240 rows, so W3's batch of 128 is one block, not 120
     * and a block of 8 that streams every B panel again). Rows only: no effect on the bits. */
    kblk.mc = kd_machine->mc * kd_machine->kc / kblk.kc / kblk.mr * kblk.mr;
    TG_ASSERT(kd->mc % kd->mr == 0 && kd->nc % kd->nr == 0);
    if (kd->thin_mr && N <= TG_GEMM_THIN_NR) {
        SFX(thin)(kd, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const size_t MR = kd->mr, NR = kd->nr;
    /* The group: as many B columns as the kernel wants (nc), and as much depth as fits the
     * budget beside them, in whole KC blocks. */
    const size_t nc_max = N < kd->nc ? N : kd->nc;
    const size_t ncp_max = (nc_max + NR - 1) / NR * NR;
    size_t kg_max = TG_GEMM_BPACK_ELEMS / ncp_max / kd->kc * kd->kc;
    if (kg_max < kd->kc)
        kg_max = kd->kc;
    if (kg_max > K)
        kg_max = K;

    size_t gm, gn;
    const size_t slots = gemm_slots(M, N, K, MR, NR, ncp_max / NR, &gm, &gn);
    const size_t a_elems = kd->mc * kd->kc, b_elems = kg_max * ncp_max;
    T *ws = gemm_workspace((b_elems + slots * a_elems) * sizeof(T),
                           (double)M * (double)N * (double)K);
    if (!ws) {
        SFX(packed_unbuffered)(kd, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }

    SFX(job) jb = {.kd = kd, .transA = transA, .transB = transB, .M = M, .N = N, .K = K,
                   .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = ldc, .beta = beta, .C = C,
                   .gm = gm, .gn = gn, .bp = ws, .ap = ws + b_elems, .own_b = gm == 1};
    for (size_t jc = 0; jc < N; jc += nc_max) {
        jb.jc = jc;
        jb.nc = N - jc < nc_max ? N - jc : nc_max;
        jb.ncp = (jb.nc + NR - 1) / NR * NR;
        for (size_t k0 = 0; k0 < K; k0 += kg_max) {
            jb.k0 = k0;
            jb.kg = K - k0 < kg_max ? K - k0 : kg_max;
            const size_t panels = jb.ncp / NR;
            if (!jb.own_b)
                tg__parallel_for(panels, (panels + slots - 1) / slots, SFX(pack_b_range), &jb);
            tg__parallel_for(slots, 1, SFX(slot_range), &jb);
        }
    }
}

/* ---- the entry point ----------------------------------------------------------------------- */

#define GEMM_CAT_(a, b) a##b
#define GEMM_CAT(a, b) GEMM_CAT_(a, b)

/* The packed kernel of `path` for T (the portable one when the path names no SIMD kernel),
 * as compiled: its blocking not yet filled in. */
static const tg_gemm_kernel *SFX(kernel_table)(tg_gemm_path path)
{
#ifdef TG_GEMM_X86
    if (path == TG_GEMM_AVX512)
        return &GEMM_CAT(tg_gemm__avx512_, KFN);
    if (path == TG_GEMM_AVX512_WIDE)
        return &GEMM_CAT(tg_gemm__avx512w_, KFN);
    if (path == TG_GEMM_AVX2)
        return &GEMM_CAT(tg_gemm__avx2_, KFN);
#endif
    TG_UNUSED(path);
    return &SFX(portable_kernel);
}

/* The same with this machine's blocking (gemm_blocking), made once for every path. */
static tg_gemm_kernel SFX(kernels)[TG_GEMM_PATH_COUNT];
static pthread_once_t SFX(kernels_once) = PTHREAD_ONCE_INIT;

static void SFX(make_kernels)(void)
{
    for (int p = 0; p < TG_GEMM_PATH_COUNT; p++) {
        SFX(kernels)[p] = *SFX(kernel_table)((tg_gemm_path)p);
        gemm_blocking(&SFX(kernels)[p], sizeof(T));
    }
}

static const tg_gemm_kernel *SFX(kernel)(tg_gemm_path path)
{
    pthread_once(&SFX(kernels_once), SFX(make_kernels));
    return &SFX(kernels)[(unsigned)path < TG_GEMM_PATH_COUNT ? path : TG_GEMM_PORTABLE];
}

#undef GEMM_CAT
#undef GEMM_CAT_

void SFX(tg_gemm)(bool transA, bool transB, size_t M, size_t N, size_t K, const T *A, size_t lda,
                  const T *B, size_t ldb, T beta, T *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    /* Rows of C that overlapped would be written by two threads at once. */
    TG_ASSERT(ldc >= N && (K == 0 || (lda >= (transA ? M : K) && ldb >= (transB ? K : N))));
    const tg_gemm_path path = K == 0 ? TG_GEMM_DIRECT : tg__gemm_path(M, N, K);
#ifdef TG_HAVE_OPENBLAS
    if (path == TG_GEMM_BLAS && blas_fits(M, N, K, lda, ldb, ldc)) {
        blas_threads();
        CBLAS_GEMM(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                   transB ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, (T)1, A, (int)lda,
                   B, (int)ldb, beta, C, (int)ldc);
        return;
    }
#endif
    if (path == TG_GEMM_DIRECT)
        SFX(direct)(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        SFX(packed)(SFX(kernel)(path == TG_GEMM_BLAS ? tg__gemm_best() : path), transA, transB, M,
                    N, K, A, lda, B, ldb, beta, C, ldc);
}
