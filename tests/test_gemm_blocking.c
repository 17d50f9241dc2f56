/* test_gemm_blocking.c: the GEMM's blocking derived from this machine's caches, and the thin
 * kernels (C at most 16 columns wide, W3's last layer), against a reference summed in long
 * double: sizes taken from the blocking actually chosen (tg__gemm_shape), so that they cross
 * its row block (MC), its depth block (KC, twice) and the thin kernel's row blocks wherever
 * the test runs; every packed path this build and CPU have (AVX2, AVX-512 with either tile),
 * f32 and f64, all four transpose combinations, beta 0 (over NaN: C never read), 1 and
 * another; nothing written outside C, nothing read outside A and B (their padding is NaN).
 * The thin kernels also at every width N = 1..16, M below, at and past their row block and
 * not a multiple of it, K of 1, odd, and across two depth blocks. Also: the thin path's
 * results bit-identical for any thread count (the AVX2 path's at widths that take each of its
 * register shapes), and the AVX2 path has a thin kernel, and the thin kernels' sums are those
 * of fma() loops, one per k in increasing k (the bits, whichever layout a kernel keeps C's
 * block in). Also: slots that pack their own
 * panels of B (the kernels that pack B as they go) at the edges of those panels, and with
 * two thirds of a tile's rows. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "kernels/gemm.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Du;

/* Uniform in [-1, 1), exactly representable as a float. */
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 40) / 8388608.0 - 1.0;
}

/* rows x cols, row stride cols + 3 (the padding and one element past the end hold NaN: a
 * kernel reading them poisons C), as T and as doubles; fill NaN makes every element NaN. */
typedef struct mat {
    bool f64;
    size_t rows, cols, ld;
    void *data;
    double *val;
} mat;

static mat mat_new(bool f64, size_t rows, size_t cols, double fill)
{
    mat m = {f64, rows, cols, cols + 3, NULL, NULL};
    const size_t n = rows * m.ld + 1;
    m.data = calloc(n, f64 ? 8 : 4);
    m.val = calloc(n, sizeof(double));
    cr_assert(m.data && m.val);
    for (size_t i = 0; i < n; i++) {
        const bool in = i % m.ld < cols && i < rows * m.ld;
        const double v = in ? (isnan(fill) ? fill : rnd()) : NAN;
        if (f64)
            ((double *)m.data)[i] = v;
        else
            ((float *)m.data)[i] = (float)v;
        m.val[i] = f64 ? ((double *)m.data)[i] : ((float *)m.data)[i];
    }
    return m;
}

static double get(const mat *m, size_t i)
{
    return m->f64 ? ((double *)m->data)[i] : ((float *)m->data)[i];
}

static void mat_free(mat *m)
{
    free(m->data);
    free(m->val);
}

static void run(bool f64, bool ta, bool tb, size_t M, size_t N, size_t K, const mat *A,
                const mat *B, double beta, mat *C)
{
    if (f64)
        tg_gemm_f64(ta, tb, M, N, K, A->data, A->ld, B->data, B->ld, beta, C->data, C->ld);
    else
        tg_gemm_f32(ta, tb, M, N, K, A->data, A->ld, B->data, B->ld, (float)beta, C->data, C->ld);
}

/* One product against the long double reference: within (K + 2) epsilons of |beta*C| + sum
 * |a||b| (the bound on the rounding of a K-term sum), and C's padding columns untouched. */
static void check_case(tg_gemm_path path, bool f64, bool ta, bool tb, size_t M, size_t N, size_t K,
                       double beta)
{
    mat A = ta ? mat_new(f64, K, M, 0) : mat_new(f64, M, K, 0);
    mat B = tb ? mat_new(f64, N, K, 0) : mat_new(f64, K, N, 0);
    mat C = mat_new(f64, M, N, beta == 0 ? NAN : 0);
    for (size_t i = 0; i < M; i++) /* a sentinel in C's padding that must survive */
        for (size_t j = N; j < C.ld; j++) {
            if (f64)
                ((double *)C.data)[i * C.ld + j] = 4321.0;
            else
                ((float *)C.data)[i * C.ld + j] = 4321.0f;
        }
    run(f64, ta, tb, M, N, K, &A, &B, beta, &C);
    const double eps = f64 ? DBL_EPSILON : FLT_EPSILON;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            long double ref = 0, bound = 0;
            if (beta != 0) {
                ref = (long double)beta * C.val[i * C.ld + j];
                bound = fabsl(ref);
            }
            for (size_t k = 0; k < K; k++) {
                const double a = ta ? A.val[k * A.ld + i] : A.val[i * A.ld + k];
                const double b = tb ? B.val[j * B.ld + k] : B.val[k * B.ld + j];
                ref += (long double)a * b;
                bound += fabsl((long double)a * b);
            }
            ts_assert_close(
                get(&C, i * C.ld + j), (double)ref, (double)bound * (double)(K + 2) * eps + DBL_MIN,
                0, "%s %s %s%s M=%zu N=%zu K=%zu beta=%g: C[%zu,%zu]", tg__gemm_path_name(path),
                f64 ? "f64" : "f32", ta ? "A^T" : "A", tb ? "B^T" : "B", M, N, K, beta, i, j);
        }
        for (size_t j = N; j < C.ld; j++)
            cr_assert(get(&C, i * C.ld + j) == 4321.0, "%s: C[%zu,%zu] past N=%zu was written",
                      tg__gemm_path_name(path), i, j, N);
    }
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
}

Test(gemm_blocking, is_derived_from_the_caches_within_its_bounds)
{
    size_t l1d, l2, l3;
    tg__gemm_caches(&l1d, &l2, &l3);
    cr_assert(l1d >= 16 << 10 && l2 >= 128 << 10, "L1d %zu, L2 %zu", l1d, l2);
    for (int p = TG_GEMM_PORTABLE; p <= TG_GEMM_AVX512_WIDE; p++)
        for (int f64 = 0; f64 < 2; f64++) {
            const tg_gemm_shape s = tg__gemm_shape((tg_gemm_path)p, f64);
            cr_assert_eq(s.path, (tg_gemm_path)p);
            cr_assert(s.kc >= 64 && s.kc <= 512 && s.kc % 16 == 0, "kc %zu", s.kc);
            cr_assert(s.mc >= 2 * s.mr && s.mc % s.mr == 0, "mc %zu, mr %zu", s.mc, s.mr);
            cr_assert(s.nc > 0 && s.nc % s.nr == 0, "nc %zu, nr %zu", s.nc, s.nr);
            /* the same every time it is asked */
            const tg_gemm_shape t = tg__gemm_shape((tg_gemm_path)p, f64);
            cr_assert(s.kc == t.kc && s.mc == t.mc && s.nc == t.nc);
        }
}

/* Up to 8 sizes {M, N, K} for the blocking s; their count. */
typedef size_t (*sizes_fn)(const tg_gemm_shape *s, size_t out[8][3]);

/* Every size `sizes` gives, on every packed path this build and CPU have, f32 and f64, all
 * four transpose combinations, each with one of the three betas. */
static void check_every_packed_path(sizes_fn sizes)
{
    const double betas[3] = {0.0, 1.0, -0.75};
    for (int p = TG_GEMM_PORTABLE; p <= TG_GEMM_AVX512_WIDE; p++) {
        if (!tg__gemm_force((tg_gemm_path)p))
            continue;
        for (int f64 = 0; f64 < 2; f64++) {
            const tg_gemm_shape s = tg__gemm_shape((tg_gemm_path)p, f64);
            size_t z3[8][3];
            const size_t n = sizes(&s, z3);
            for (size_t z = 0; z < n; z++)
                for (int t = 0; t < 4; t++)
                    check_case((tg_gemm_path)p, f64, t & 1, t & 2, z3[z][0], z3[z][1], z3[z][2],
                               betas[(z + (size_t)t) % 3]);
        }
    }
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}

/* Sizes from the blocking: past MC (at depth KC: shallower blocks get more rows, so MC is
 * only crossed at full depth) and across KC blocks; the thin kernel's M not a multiple of its
 * rows, K across two KC blocks, N from 1 to 16 and just past it. */
static size_t across_blocks(const tg_gemm_shape *s, size_t out[8][3])
{
    const size_t tm = s->thin_mr ? s->thin_mr : 8;
    const size_t sizes[][3] = {
        {s->mc + 5, 33, s->kc}, {s->mr + 3, 33, s->kc + 3}, {3 * tm + 5, 10, 2 * s->kc + 7},
        {tm - 1, 16, 5},        {2 * tm + 1, 1, 40},        {tm + 3, 17, 9},
        {37, 9, s->kc},
    };
    memcpy(out, sizes, sizeof sizes);
    return sizeof sizes / sizeof *sizes;
}

Test(gemm_blocking, products_across_this_machines_blocks_match_the_reference)
{
    check_every_packed_path(across_blocks);
}

/* Where each thread's share of C spans whole columns (one thread, or few rows: gm == 1), it
 * packs its own panels of B as it first uses them, over a full panel of B stored row-major
 * through the kernel that packs as it goes (the AVX-512 and AVX2 tiles). Every N is past the
 * thin path's 16 columns. */
static size_t own_b_panels(const tg_gemm_shape *s, size_t out[8][3])
{
    const size_t wide = s->nr > 16 ? s->nr : 3 * s->nr; /* whole panels only */
    /* two slots (2^19 multiply-adds or more: at least two slots' worth) of 2 row tiles, which
     * split their columns */
    const size_t m2 = 2 * s->mr, n2 = 4 * s->nr + 5, k2 = (1u << 19) / (m2 * n2) + 1;
    const size_t sizes[][3] = {
        /* fewer rows than a tile (the tile that packs B stores fewer), whole panels beside a
         * partial one, three depth blocks */
        {s->mr - 1, 2 * s->nr + 7, 2 * s->kc + 9},
        /* one row more than a tile, two depth blocks */
        {s->mr + 1, wide, s->kc + 40},
        /* a second row block (MC at depth KC) reading the panels the first packed */
        {s->mc + s->mr + 2, s->nr + 1, s->kc},
        /* depth below the fused kernels' 32: packed first */
        {2 * s->mr, wide, 31},
        /* two thirds of a tile's rows (all that each tile form's middle BY_ROWS copy
         * computes), and a last depth block whose transposed packing ends in a partial block
         * of k */
        {2 * s->mr / 3, 2 * s->nr + 3, s->kc + 37},
        /* at 2 threads, two slots side by side, each packing its own panels */
        {m2, n2, k2 > 2 * s->kc + 9 ? k2 : 2 * s->kc + 9},
    };
    memcpy(out, sizes, sizeof sizes);
    return sizeof sizes / sizeof *sizes;
}

Test(gemm_blocking, slots_that_pack_their_own_b_match_the_reference)
{
    for (int threads = 1; threads <= 2; threads++) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        check_every_packed_path(own_b_panels);
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
}

/* C = A.B + beta C on the forced path for 1 to 4 threads, A (M x K) and B (K x N) stored
 * as ta and tb say: every thread count gives the bits of 1 thread. */
static void expect_same_bits_for_any_thread_count(bool f64, bool ta, bool tb, size_t M, size_t N,
                                                  size_t K, double beta, const char *what)
{
    mat A = ta ? mat_new(f64, K, M, 0) : mat_new(f64, M, K, 0);
    mat B = tb ? mat_new(f64, N, K, 0) : mat_new(f64, K, N, 0);
    mat C0 = mat_new(f64, M, N, 0);
    const size_t bytes = (M * C0.ld + 1) * (f64 ? 8 : 4);
    void *first = malloc(bytes);
    cr_assert(first);
    for (int threads = 1; threads <= 4; threads++) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        mat C = mat_new(f64, M, N, 0);
        memcpy(C.data, C0.data, bytes);
        run(f64, ta, tb, M, N, K, &A, &B, beta, &C);
        if (threads == 1)
            memcpy(first, C.data, bytes);
        else
            cr_assert(memcmp(first, C.data, bytes) == 0,
                      "%s %s N=%zu ta=%d tb=%d: %d threads differ from 1", what,
                      f64 ? "f64" : "f32", N, ta, tb, threads);
        mat_free(&C);
    }
    free(first);
    mat_free(&A);
    mat_free(&B);
    mat_free(&C0);
}

/* The thin path splits C's row blocks over the pool: every split gives the same bits. */
Test(gemm_blocking, thin_products_are_bit_identical_for_any_thread_count)
{
    const size_t M = 1203, N = 10, K = 700;
    for (int p = TG_GEMM_PORTABLE; p <= TG_GEMM_AVX512_WIDE; p++) {
        if (!tg__gemm_force((tg_gemm_path)p))
            continue;
        for (int f64 = 0; f64 < 2; f64++)
            for (int t = 0; t < 4; t++)
                expect_same_bits_for_any_thread_count(f64, t & 1, t & 2, M, N, K, 0.5,
                                                      tg__gemm_path_name((tg_gemm_path)p));
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}

/* ---- the thin kernels at every width ---------------------------------------------------- */

/* On x86-64 with AVX2 and FMA, the AVX2 path has a thin kernel of 12 rows (f32 and f64), so
 * the cases below reach it rather than the padded 6 x 16 tile. */
Test(gemm_thin, the_avx2_path_has_a_thin_kernel)
{
    if (!tg__gemm_available(TG_GEMM_AVX2))
        cr_skip_test("no AVX2 path in this build or on this CPU");
    for (int f64 = 0; f64 < 2; f64++)
        cr_assert_eq(tg__gemm_shape(TG_GEMM_AVX2, f64).thin_mr, 12, "%s", f64 ? "f64" : "f32");
}

/* Calls cases(path, f64, shape) for every packed path this build and CPU have whose kernel has
 * a thin path, in f32 and f64, with the path forced (a kernel with two layouts, AVX-512's,
 * once with each forced at every width); then restores AUTO. false: there was none. */
static bool for_each_thin_kernel(void (*cases)(tg_gemm_path, bool, tg_gemm_shape))
{
    bool any = false;
    for (int p = TG_GEMM_PORTABLE; p <= TG_GEMM_AVX512_WIDE; p++) {
        if (!tg__gemm_force((tg_gemm_path)p))
            continue;
        for (int f64 = 0; f64 < 2; f64++) {
            const tg_gemm_shape s = tg__gemm_shape((tg_gemm_path)p, f64);
            if (!s.thin_mr)
                continue;
            any = true;
            if (!s.thin_rows_from) {
                cases((tg_gemm_path)p, f64, s);
                continue;
            }
            /* both layouts at every width, whatever this CPU's crossover */
            tg__gemm_force_thin_rows_from(1);
            cases((tg_gemm_path)p, f64, s);
            tg__gemm_force_thin_rows_from(17); /* past the widest thin C: never */
            cases((tg_gemm_path)p, f64, s);
            tg__gemm_force_thin_rows_from(0);
        }
    }
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
    return any;
}

/* Every N from 1 to 16 (each of the kernels' column splits), M around the row block, K of 1,
 * 7 and two KC blocks; the transposes and betas cycle over the cases, so each N meets all
 * four storage combinations and all three betas. */
static void every_width_cases(tg_gemm_path path, bool f64, tg_gemm_shape s)
{
    const double betas[3] = {0.0, 1.0, -0.75};
    const size_t tm = s.thin_mr;
    const size_t ms[] = {1, 5, 7, tm - 1, tm, tm + 1, 2 * tm + 8};
    const size_t ks[] = {1, 7, s.kc + 9};
    size_t c = 0;
    for (size_t n = 1; n <= 16; n++)
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++, c++)
                check_case(path, f64, c & 1, (c >> 1) & 1, ms[mi], n, ks[ki], betas[c % 3]);
}

Test(gemm_thin, every_width_up_to_16_matches_the_reference)
{
    if (!for_each_thin_kernel(every_width_cases))
        cr_skip_test("no path with a thin kernel in this build or on this CPU");
}

/* The thin path splits C's row blocks over the pool: every split gives the same bits, at
 * widths that take the AVX2 kernel's 12 x 1 shape (N = 3), its 6 x 2 shape (N = 16) and, for
 * f64, both (N = 13). */
Test(gemm_thin, avx2_thin_products_are_bit_identical_for_any_thread_count)
{
    if (!tg__gemm_force(TG_GEMM_AVX2))
        cr_skip_test("no AVX2 path in this build or on this CPU");
    const size_t M = 203, K = 300, ns[3] = {3, 13, 16};
    for (int f64 = 0; f64 < 2; f64++)
        for (int z = 0; z < 3; z++)
            for (int t = 0; t < 4; t++)
                expect_same_bits_for_any_thread_count(f64, t & 1, t & 2, M, ns[z], K, -0.75,
                                                      "avx2");
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}

/* One thin product against loops of fma(), in T: C(i, j) = update(C, acc) with acc summed from
 * zero, one fused multiply-add per k in increasing k, as the kernel contract has it within
 * one depth block (gemm_kernels.h). Compared bit for bit. */
#define FMA_ORDER_REF(T, FMA)                                                                      \
    static T fma_order_ref_##T(const mat *A, const mat *B, const mat *C, bool ta, bool tb,         \
                               size_t i, size_t j, size_t K, T beta)                               \
    {                                                                                              \
        T acc = 0;                                                                                 \
        for (size_t k = 0; k < K; k++)                                                             \
            acc = FMA((T)(ta ? A->val[k * A->ld + i] : A->val[i * A->ld + k]),                     \
                      (T)(tb ? B->val[j * B->ld + k] : B->val[k * B->ld + j]), acc);               \
        const T c = (T)C->val[i * C->ld + j];                                                      \
        return beta == 0 ? acc : beta == 1 ? c + acc : FMA(beta, c, acc);                          \
    }
FMA_ORDER_REF(float, fmaf)
FMA_ORDER_REF(double, fma)

static void expect_fma_order(tg_gemm_path path, bool f64, bool ta, bool tb, size_t M, size_t N,
                             size_t K, double beta)
{
    mat A = ta ? mat_new(f64, K, M, 0) : mat_new(f64, M, K, 0);
    mat B = tb ? mat_new(f64, N, K, 0) : mat_new(f64, K, N, 0);
    mat C = mat_new(f64, M, N, beta == 0 ? NAN : 0);
    run(f64, ta, tb, M, N, K, &A, &B, beta, &C);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            const size_t at = i * C.ld + j;
            const bool same =
                f64 ? memcmp(&(double){fma_order_ref_double(&A, &B, &C, ta, tb, i, j, K, beta)},
                             (double *)C.data + at, sizeof(double)) == 0
                    : memcmp(
                          &(float){fma_order_ref_float(&A, &B, &C, ta, tb, i, j, K, (float)beta)},
                          (float *)C.data + at, sizeof(float)) == 0;
            cr_assert(
                same,
                "%s %s %s%s M=%zu N=%zu K=%zu beta=%g: C[%zu,%zu] = %.17g is not the fma loop's",
                tg__gemm_path_name(path), f64 ? "f64" : "f32", ta ? "A^T" : "A", tb ? "B^T" : "B",
                M, N, K, beta, i, j, get(&C, at));
        }
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
}

/* Widths that take each layout and register shape of the thin kernels (AVX2: 12 x 1 and
 * 6 x 2; AVX-512: C's rows or C's columns in the lanes, A in place or transposed), M across
 * the row block, K one depth block (an odd one, so no k loop is a multiple of its unrolling). */
static void fma_order_cases(tg_gemm_path path, bool f64, tg_gemm_shape s)
{
    const double betas[3] = {0.0, 1.0, -0.75};
    const size_t ns[] = {1, 3, 8, 10, 12, 13, 14, 15, 16};
    const size_t M = 2 * s.thin_mr + 5, K = s.kc < 131 ? s.kc - 1 : 131;
    size_t c = 0;
    for (size_t z = 0; z < sizeof ns / sizeof *ns; z++)
        for (int t = 0; t < 4; t++, c++)
            expect_fma_order(path, f64, t & 1, t & 2, M, ns[z], K, betas[c % 3]);
}

Test(gemm_thin, sums_are_those_of_fma_loops_in_k_order)
{
    if (!for_each_thin_kernel(fma_order_cases))
        cr_skip_test("no path with a thin kernel in this build or on this CPU");
}
