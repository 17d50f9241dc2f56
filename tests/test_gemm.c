/* test_gemm.c: the GEMM kernels (src/kernels) against a straightforward reference summed in
 * long double: every path this build and CPU have (direct, portable, AVX2, AVX-512 with either
 * tile, BLAS, and the automatic choice), f32 and f64, all four transpose combinations, row
 * strides longer than the rows, beta 0 (over NaN), 1 and others, on odd sizes (sizes from this
 * machine's blocking are in test_gemm_blocking.c). Also: results bit-identical for any thread
 * count, what is written (nothing outside C's M x N, nothing read outside A's and B's), and
 * the packing workspace (no allocation in steady state, falling back when it cannot be had,
 * freed at thread exit). */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "support/alloc.h"
#include "support/helpers.h"
#include "core/workspace.h"
#include "kernels/gemm.h"

/* ---- data -------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

/* Uniform in [-1, 1), exactly representable as a float. */
static double rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 40) / 8388608.0 - 1.0; /* 24 bits */
}

/* A matrix of rows x cols with row stride ld >= cols, in the element type under test, and the
 * same values as doubles. Padding past cols holds NaN, so a kernel that reads it poisons C. */
typedef struct mat {
    tg_dtype dt;
    size_t rows, cols, ld;
    void *data;
    double *val;
} mat;

static double get(const mat *m, size_t r, size_t c)
{
    return m->dt == TG_F32 ? ((float *)m->data)[r * m->ld + c] : ((double *)m->data)[r * m->ld + c];
}

static void set(mat *m, size_t r, size_t c, double v)
{
    if (m->dt == TG_F32)
        ((float *)m->data)[r * m->ld + c] = (float)v;
    else
        ((double *)m->data)[r * m->ld + c] = v;
}

static mat mat_new(tg_dtype dt, size_t rows, size_t cols, size_t pad, double fill)
{
    mat m = {dt, rows, cols, cols + pad, NULL, NULL};
    size_t n = (rows ? rows : 1) * m.ld + 1;
    m.data = calloc(n, dt == TG_F32 ? 4 : 8);
    m.val = calloc(n, sizeof(double));
    cr_assert(m.data && m.val);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < m.ld; c++) {
            double v = c < cols ? (isnan(fill) ? fill : rnd()) : NAN;
            set(&m, r, c, v);
            m.val[r * m.ld + c] = get(&m, r, c);
        }
    return m;
}

static void mat_free(mat *m)
{
    free(m->data);
    free(m->val);
}

static void run(tg_dtype dt, bool ta, bool tb, size_t M, size_t N, size_t K, const mat *A,
                const mat *B, double beta, mat *C)
{
    if (dt == TG_F32)
        tg_gemm_f32(ta, tb, M, N, K, A->data, A->ld, B->data, B->ld, (float)beta, C->data, C->ld);
    else
        tg_gemm_f64(ta, tb, M, N, K, A->data, A->ld, B->data, B->ld, beta, C->data, C->ld);
}

/* ---- one case against the reference ------------------------------------------------------ */

/* C = beta*C + op(A)·op(B) for one path, checked element by element: |got - ref| within
 * (K + 2) epsilons of |beta*C| + sum |a||b| (the bound on rounding of a K-term sum), and C's
 * padding columns unchanged. */
static void check_case(tg_gemm_path path, tg_dtype dt, bool ta, bool tb, size_t M, size_t N,
                       size_t K, double beta)
{
    mat A = ta ? mat_new(dt, K, M, 3, 0) : mat_new(dt, M, K, 3, 0);
    mat B = tb ? mat_new(dt, N, K, 5, 0) : mat_new(dt, K, N, 5, 0);
    mat C = mat_new(dt, M, N, 2, beta == 0 ? NAN : 0);
    for (size_t i = 0; i < M; i++) /* C's padding: a sentinel that must survive */
        for (size_t j = N; j < C.ld; j++)
            set(&C, i, j, 4321.0);
    run(dt, ta, tb, M, N, K, &A, &B, beta, &C);

    const double eps = dt == TG_F32 ? FLT_EPSILON : DBL_EPSILON;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            long double ref = 0, bound = 0;
            if (beta != 0) {
                ref = (long double)beta * C.val[i * C.ld + j];
                bound = fabsl(ref);
            }
            for (size_t k = 0; k < K; k++) {
                double a = ta ? A.val[k * A.ld + i] : A.val[i * A.ld + k];
                double b = tb ? B.val[j * B.ld + k] : B.val[k * B.ld + j];
                ref += (long double)a * b;
                bound += fabsl((long double)a * b);
            }
            double tol = (double)bound * (double)(K + 2) * eps + DBL_MIN;
            ts_assert_close(get(&C, i, j), (double)ref, tol, 0,
                            "%s %s %s%s M=%zu N=%zu K=%zu beta=%g: C[%zu,%zu]",
                            tg__gemm_path_name(path), dt == TG_F32 ? "f32" : "f64",
                            ta ? "A^T" : "A", tb ? "B^T" : "B", M, N, K, beta, i, j);
        }
        for (size_t j = N; j < C.ld; j++)
            cr_assert(get(&C, i, j) == 4321.0, "%s: C[%zu,%zu] past N=%zu was written",
                      tg__gemm_path_name(path), i, j, N);
    }
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
}

/* Odd sizes; each of M, N, K equal to 1; N = 2100 with K = 530 spans two column groups (NC)
 * and two depth groups of packed B. The blocking depends on the machine's caches: sizes that
 * cross this machine's row and depth blocks are in test_gemm_blocking.c. */
typedef struct dims {
    size_t M, N, K;
} dims;

static const dims SIZES[] = {
    {1, 1, 1},   {1, 7, 17},   {7, 17, 1},   {17, 1, 7},     {7, 7, 7},     {17, 17, 17},
    {129, 17, 7}, {7, 129, 17}, {17, 7, 129}, {1, 129, 129}, {129, 1, 129}, {129, 129, 1},
    {129, 129, 129}, {150, 33, 257},
};
static const dims LARGE = {5, 2100, 530};
static const double BETAS[3] = {0.0, 1.0, -0.75};

static void check_path(tg_gemm_path path)
{
    if (!tg__gemm_available(path))
        cr_skip_test("path %s: not in this build or on this CPU", tg__gemm_path_name(path));
    cr_assert(tg__gemm_force(path));
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++) {
            const bool ta = t & 1, tb = t & 2;
            for (size_t s = 0; s < sizeof SIZES / sizeof SIZES[0]; s++)
                for (int b = 0; b < 3; b++)
                    check_case(path, dts[d], ta, tb, SIZES[s].M, SIZES[s].N, SIZES[s].K,
                               BETAS[b]);
            check_case(path, dts[d], ta, tb, LARGE.M, LARGE.N, LARGE.K, BETAS[t % 3]);
        }
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}

Test(gemm, direct)
{
    check_path(TG_GEMM_DIRECT);
}

Test(gemm, portable)
{
    check_path(TG_GEMM_PORTABLE);
}

Test(gemm, avx2)
{
    check_path(TG_GEMM_AVX2);
}

Test(gemm, avx512)
{
    check_path(TG_GEMM_AVX512);
}

Test(gemm, avx512wide)
{
    check_path(TG_GEMM_AVX512_WIDE);
}

Test(gemm, blas)
{
    check_path(TG_GEMM_BLAS);
}

Test(gemm, automatic)
{
    check_path(TG_GEMM_AUTO);
}

/* ---- the choice of path ------------------------------------------------------------------ */

Test(gemm, small_problems_go_direct_and_large_ones_packed)
{
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
    cr_assert_eq(tg__gemm_path(2, 2, 2), TG_GEMM_DIRECT, "the 2-2-2 network's products");
    /* the boundary gemm.h documents: 512 multiply-adds direct, one more packed */
    cr_assert_eq(tg__gemm_path(8, 8, 8), TG_GEMM_DIRECT);
    cr_assert_eq(tg__gemm_path(1, 512, 1), TG_GEMM_DIRECT);
    cr_assert_neq(tg__gemm_path(8, 8, 9), TG_GEMM_DIRECT);
    cr_assert_neq(tg__gemm_path(12, 12, 12), TG_GEMM_DIRECT, "1728 multiply-adds");
    tg_gemm_path big = tg__gemm_path(1024, 1024, 1024);
    cr_assert(big != TG_GEMM_DIRECT && big != TG_GEMM_AUTO, "%s", tg__gemm_path_name(big));
    cr_assert(tg__gemm_available(big));
    for (int p = TG_GEMM_DIRECT; p < TG_GEMM_PATH_COUNT; p++) {
        bool avail = tg__gemm_available((tg_gemm_path)p);
        cr_assert_eq(tg__gemm_force((tg_gemm_path)p), avail, "%s", tg__gemm_path_name(p));
        cr_assert_eq(tg__gemm_path(2, 2, 2), avail ? (tg_gemm_path)p : TG_GEMM_DIRECT);
        cr_assert(tg__gemm_force(TG_GEMM_AUTO));
    }
    cr_assert(!tg__gemm_force(TG_GEMM_PATH_COUNT));
    cr_assert(tg__gemm_available(TG_GEMM_PORTABLE) && tg__gemm_available(TG_GEMM_DIRECT));
}

/* A preferred packed kernel takes the large products in place of the CPU's best, and only
 * those: small ones still run direct, and a forced path still wins. */
Test(gemm, a_preferred_kernel_takes_the_large_products)
{
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
    const tg_gemm_path best = tg__gemm_best();
    for (int p = TG_GEMM_AUTO; p <= TG_GEMM_PATH_COUNT; p++) {
        const bool packed = p == TG_GEMM_PORTABLE || p == TG_GEMM_AVX2 || p == TG_GEMM_AVX512 ||
                            p == TG_GEMM_AVX512_WIDE;
        const bool ok = packed && tg__gemm_available((tg_gemm_path)p);
        cr_assert_eq(tg__gemm_prefer((tg_gemm_path)p), ok || p == TG_GEMM_AUTO, "%s",
                     tg__gemm_path_name(p));
        const tg_gemm_path want = ok ? (tg_gemm_path)p : best;
        cr_assert_eq(tg__gemm_best(), want, "%s", tg__gemm_path_name(p));
        cr_assert_eq(tg__gemm_shape(TG_GEMM_AUTO, false).path, want);
        cr_assert_eq(tg__gemm_path(2, 2, 2), TG_GEMM_DIRECT);
        if (!tg__gemm_available(TG_GEMM_BLAS)) /* a BLAS build sends them to BLAS */
            cr_assert_eq(tg__gemm_path(1024, 1024, 1024), want);
        cr_assert(tg__gemm_force(TG_GEMM_DIRECT));
        cr_assert_eq(tg__gemm_path(1024, 1024, 1024), TG_GEMM_DIRECT);
        cr_assert(tg__gemm_force(TG_GEMM_AUTO));
        if (ok) /* and its products are right */
            check_case(TG_GEMM_AUTO, TG_F32, false, true, 70, 90, 50, 0);
        cr_assert(tg__gemm_prefer(TG_GEMM_AUTO));
    }
    cr_assert_eq(tg__gemm_best(), best);
}

/* ---- thread counts ----------------------------------------------------------------------- */

/* The work splits differently for 1 to 4 threads (slots of C by rows, by columns or both);
 * every split must give the same bits. */
Test(gemm, results_are_bit_identical_for_any_thread_count)
{
    const tg_dtype dts[2] = {TG_F32, TG_F64};
    /* the last is a thin product (N <= 16) of several depth chunks, split into slots of rows */
    const dims shapes[4] = {{150, 70, 300}, {12, 260, 40}, {301, 45, 64}, {300, 10, 700}};
    for (int p = TG_GEMM_PORTABLE; p <= TG_GEMM_AVX512_WIDE; p++) {
        if (!tg__gemm_force((tg_gemm_path)p))
            continue;
        for (int d = 0; d < 2; d++)
            for (int s = 0; s < 4; s++)
                for (int t = 0; t < 4; t++) {
                    const dims z = shapes[s];
                    const bool ta = t & 1, tb = t & 2;
                    mat A = ta ? mat_new(dts[d], z.K, z.M, 0, 0) : mat_new(dts[d], z.M, z.K, 0, 0);
                    mat B = tb ? mat_new(dts[d], z.N, z.K, 0, 0) : mat_new(dts[d], z.K, z.N, 0, 0);
                    mat C0 = mat_new(dts[d], z.M, z.N, 0, 0);
                    size_t bytes = z.M * z.N * (dts[d] == TG_F32 ? 4 : 8);
                    void *first = malloc(bytes);
                    for (int threads = 1; threads <= 4; threads++) {
                        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
                        mat C = mat_new(dts[d], z.M, z.N, 0, 0);
                        memcpy(C.data, C0.data, bytes);
                        run(dts[d], ta, tb, z.M, z.N, z.K, &A, &B, 0.5, &C);
                        if (threads == 1)
                            memcpy(first, C.data, bytes);
                        else
                            cr_assert(memcmp(first, C.data, bytes) == 0,
                                      "%s: %zux%zux%zu t%d: %d threads differ from 1",
                                      tg__gemm_path_name(p), z.M, z.N, z.K, t, threads);
                        mat_free(&C);
                    }
                    free(first);
                    mat_free(&A);
                    mat_free(&B);
                    mat_free(&C0);
                }
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}

/* ---- the packing workspace ----------------------------------------------------------------- */

static tg_gemm_path packed_path(void)
{
    return tg__gemm_path(1024, 1024, 1024) == TG_GEMM_BLAS ? TG_GEMM_PORTABLE
                                                           : tg__gemm_path(1024, 1024, 1024);
}

Test(gemm, workspace_is_reused_and_released)
{
    tg__workspace_release();
    ts_alloc_install();
    cr_assert(tg__gemm_force(packed_path()));
    mat A = mat_new(TG_F32, 200, 150, 0, 0), B = mat_new(TG_F32, 150, 100, 0, 0);
    mat C = mat_new(TG_F32, 200, 100, 0, 0);
    /* A product of another shape whose workspace is no larger: (150 x 200) from Aᵀ (100 x 150)
     * and Bᵀ (200 x 100), each stored with rows at least as long as they are. */
    mat At = mat_new(TG_F32, 100, 150, 0, 0), Bt = mat_new(TG_F32, 200, 100, 0, 0);
    mat C2 = mat_new(TG_F32, 150, 200, 0, 0);
    run(TG_F32, false, false, 200, 100, 150, &A, &B, 0, &C);
    size_t calls = ts_alloc.calls;
    cr_assert_gt(calls, 0, "the packed path uses a workspace from the hook");
    for (int i = 0; i < 5; i++) {
        run(TG_F32, false, false, 200, 100, 150, &A, &B, 1, &C);
        run(TG_F32, true, true, 150, 200, 100, &At, &Bt, 0, &C2);
    }
    cr_assert_eq(ts_alloc.calls, calls, "steady state allocates nothing");
    tg__workspace_release();
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
    mat_free(&At);
    mat_free(&Bt);
    mat_free(&C2);
}

/* When the workspace cannot be allocated the product is still made, with the same bits. */
Test(gemm, without_a_workspace_the_result_is_the_same)
{
    const dims shapes[2] = {{40, 50, 60}, {150, 70, 600}};
    for (int s = 0; s < 2; s++)
        for (int d = 0; d < 2; d++) {
            const tg_dtype dt = d ? TG_F64 : TG_F32;
            const dims z = shapes[s];
            cr_assert(tg__gemm_force(packed_path()));
            mat A = mat_new(dt, z.K, z.M, 0, 0), B = mat_new(dt, z.K, z.N, 0, 0);
            mat C1 = mat_new(dt, z.M, z.N, 0, 0), C2 = mat_new(dt, z.M, z.N, 0, 0);
            size_t bytes = z.M * z.N * (dt == TG_F32 ? 4 : 8);
            memcpy(C2.data, C1.data, bytes);
            run(dt, true, false, z.M, z.N, z.K, &A, &B, 0.5, &C1);
            tg__workspace_release();
            ts_alloc_install();
            ts_alloc_fail_at(1);
            run(dt, true, false, z.M, z.N, z.K, &A, &B, 0.5, &C2);
            cr_assert_eq(ts_alloc.failures, 1, "the workspace was asked for and refused");
            cr_assert_eq(ts_alloc.live, 0);
            ts_alloc_uninstall();
            cr_assert(memcmp(C1.data, C2.data, bytes) == 0, "%zux%zux%zu %s", z.M, z.N, z.K,
                      dt == TG_F32 ? "f32" : "f64");
            mat_free(&A);
            mat_free(&B);
            mat_free(&C1);
            mat_free(&C2);
            cr_assert(tg__gemm_force(TG_GEMM_AUTO));
        }
}

static void *gemm_in_thread(void *arg)
{
    (void)arg;
    check_case(packed_path(), TG_F32, false, true, 64, 96, 80, 0);
    return NULL;
}

Test(gemm, a_threads_workspace_is_freed_when_it_exits)
{
    cr_assert(tg__gemm_force(packed_path()));
    ts_alloc_install();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, gemm_in_thread, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_gt(ts_alloc.allocs, 0);
    cr_assert_eq(ts_alloc.live, 0, "%lld blocks left after the thread exited", ts_alloc.live);
    ts_alloc_uninstall();
    cr_assert(tg__gemm_force(TG_GEMM_AUTO));
}
