/* test_tensor.c: leaves (constructors for every dtype and rank, wrapping, random fills),
 * the deterministic RNG's golden numbers, argument errors, accessors, names, grads and
 * tg_shape_format. Tape tensors appear only where an accessor treats them differently. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "support/alloc.h"
#include "support/helpers.h"

static const tg_dtype DTYPES[2] = {TG_F32, TG_F64};

/* Shapes of rank r: the first r entries of this (numel at most 2*1*3*1*2*2*1*1 = 24). Sized
 * for any TG_MAX_RANK up to 8. */
_Static_assert(TG_MAX_RANK >= 3 && TG_MAX_RANK <= 8, "SHAPE6 covers ranks up to 8");
static const size_t SHAPE6[8] = {2, 1, 3, 1, 2, 2, 1, 1};

static size_t numel_of(int rank, const size_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static void assert_shape(const tg_tensor *t, tg_dtype dtype, int rank, const size_t *shape)
{
    cr_assert_not_null(t);
    cr_assert_eq(tg_tensor_dtype(t), dtype);
    cr_assert_eq(tg_tensor_rank(t), rank);
    for (int i = 0; i < rank; i++)
        cr_assert_eq(tg_tensor_shape(t)[i], shape[i], "axis %d", i);
    cr_assert_eq(tg_tensor_numel(t), numel_of(rank, shape));
    cr_assert(tg_tensor_is_leaf(t));
    cr_assert_not(tg_tensor_requires_grad(t));
    cr_assert_null(tg_tensor_grad_data((tg_tensor *)t));
    cr_assert_null(tg_tensor_name(t));
}

static void assert_aligned(tg_tensor *t)
{
    uintptr_t p = (uintptr_t)tg_tensor_data(t);
    cr_assert_not_null((void *)p);
    cr_assert_eq(p % 64, 0, "leaf data at %p is not 64-byte aligned", (void *)p);
}

static void assert_all(tg_tensor *t, double v)
{
    for (size_t i = 0; i < tg_tensor_numel(t); i++)
        cr_assert_eq(tg_tensor_get(t, i), v, "element %zu: %g != %g", i, tg_tensor_get(t, i), v);
}

/* ---- constructors ------------------------------------------------------------------------ */

Test(tensor, fills_every_dtype_and_rank)
{
    for (int d = 0; d < 2; d++) {
        for (int rank = 0; rank <= TG_MAX_RANK; rank++) {
            const size_t *shape = rank ? SHAPE6 : NULL;
            tg_tensor *z = tg_tensor_zeros(DTYPES[d], rank, shape);
            tg_tensor *o = tg_tensor_ones(DTYPES[d], rank, shape);
            tg_tensor *f = tg_tensor_full(DTYPES[d], rank, shape, -2.5);
            assert_shape(z, DTYPES[d], rank, SHAPE6);
            assert_shape(o, DTYPES[d], rank, SHAPE6);
            assert_shape(f, DTYPES[d], rank, SHAPE6);
            assert_all(z, 0.0);
            assert_all(o, 1.0);
            assert_all(f, -2.5);
            assert_aligned(z);
            assert_aligned(o);
            assert_aligned(f);
            tg_tensor_free(z);
            tg_tensor_free(o);
            tg_tensor_free(f);
        }
    }
}

Test(tensor, scalar)
{
    tg_tensor *a = tg_tensor_scalar(TG_F64, 3.25);
    tg_tensor *b = tg_tensor_scalar(TG_F32, 0.1);
    assert_shape(a, TG_F64, 0, NULL);
    assert_shape(b, TG_F32, 0, NULL);
    cr_assert_eq(tg_tensor_numel(a), 1);
    cr_assert_eq(tg_tensor_item(a), 3.25);
    cr_assert_eq(tg_tensor_item(b), (double)0.1f);
    cr_assert_eq(*(const float *)tg_tensor_data_const(b), 0.1f);
    assert_aligned(a);
    assert_aligned(b);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(tensor, zero_sized_axes)
{
    const size_t shape[3] = {2, 0, 3};
    tg_tensor *t = tg_tensor_zeros(TG_F64, 3, shape);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_numel(t), 0);
    cr_assert_eq(tg_tensor_dim(t, 1), 0);
    cr_assert(isnan(tg_tensor_get(t, 0)));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    cr_assert_eq(tg_tensor_to_f64(t, NULL), TG_OK);
    tg_tensor_free(t);
    /* NULL data is fine when there is nothing to copy. */
    tg_tensor *e = tg_tensor_from_data(TG_F32, 3, shape, NULL);
    cr_assert_not_null(e, "%s", tg_last_error());
    tg_tensor_free(e);
}

Test(tensor, from_data_copies_every_dtype_and_rank)
{
    double src64[24];
    float src32[24];
    for (int i = 0; i < 24; i++) {
        src64[i] = 0.5 * i - 3.0;
        src32[i] = (float)src64[i];
    }
    for (int rank = 0; rank <= TG_MAX_RANK; rank++) {
        const size_t *shape = rank ? SHAPE6 : NULL;
        size_t n = numel_of(rank, SHAPE6);
        tg_tensor *a = tg_tensor_from_data(TG_F64, rank, shape, src64);
        tg_tensor *b = tg_tensor_from_data(TG_F32, rank, shape, src32);
        assert_shape(a, TG_F64, rank, SHAPE6);
        assert_shape(b, TG_F32, rank, SHAPE6);
        cr_assert_neq(tg_tensor_data(a), (void *)src64, "from_data must copy");
        cr_assert_neq(tg_tensor_data(b), (void *)src32, "from_data must copy");
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(tg_tensor_get(a, i), src64[i]);
            cr_assert_eq(tg_tensor_get(b, i), (double)src32[i]);
        }
        assert_aligned(a);
        assert_aligned(b);
        /* A copy: changing the source later changes nothing. */
        src64[0] += 100;
        cr_assert_eq(tg_tensor_get(a, 0), src64[0] - 100);
        src64[0] -= 100;
        tg_tensor_free(a);
        tg_tensor_free(b);
    }
}

Test(tensor, from_f64_converts)
{
    const double src[6] = {0.1, -1.5, 1e300, 3.0, 1.0 / 3.0, -0.0};
    const size_t shape[2] = {2, 3};
    tg_tensor *a = tg_tensor_from_f64(TG_F32, 2, shape, src);
    tg_tensor *b = tg_tensor_from_f64(TG_F64, 2, shape, src);
    assert_shape(a, TG_F32, 2, shape);
    assert_shape(b, TG_F64, 2, shape);
    const float *fa = tg_tensor_data(a);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(fa[i], (float)src[i], "element %d", i);
        cr_assert_eq(tg_tensor_get(b, (size_t)i), src[i], "element %d", i);
    }
    cr_assert(isinf(fa[2]), "1e300 does not fit in f32: +Inf");
    assert_aligned(a);
    assert_aligned(b);
    tg_tensor_free(a);
    tg_tensor_free(b);
    /* Every rank works. */
    double src24[24];
    for (int i = 0; i < 24; i++)
        src24[i] = i;
    for (int rank = 0; rank <= TG_MAX_RANK; rank++) {
        for (int d = 0; d < 2; d++) {
            tg_tensor *t = tg_tensor_from_f64(DTYPES[d], rank, rank ? SHAPE6 : NULL, src24);
            assert_shape(t, DTYPES[d], rank, SHAPE6);
            for (size_t i = 0; i < tg_tensor_numel(t); i++)
                cr_assert_eq(tg_tensor_get(t, i), (double)i);
            tg_tensor_free(t);
        }
    }
}

Test(tensor, wrap_shares_caller_memory)
{
    /* Heap memory the test owns: under ASan, a free by the library would be a double free
     * (or a use after free below). */
    double *mem = malloc(6 * sizeof *mem);
    float *mem32 = malloc(24 * sizeof *mem32);
    cr_assert(mem && mem32);
    for (int i = 0; i < 6; i++)
        mem[i] = i;
    const size_t shape[2] = {3, 2};
    tg_tensor *t = tg_tensor_wrap(TG_F64, 2, shape, mem);
    assert_shape(t, TG_F64, 2, shape);
    cr_assert_eq(tg_tensor_data(t), (void *)mem, "wrap must not copy");
    mem[4] = 42.0;
    cr_assert_eq(tg_tensor_get(t, 4), 42.0, "changes by the caller are seen");
    cr_assert_eq(tg_tensor_set(t, 5, -7.0), TG_OK);
    cr_assert_eq(mem[5], -7.0, "changes through the tensor reach the caller's memory");
    tg_tensor_free(t);
    cr_assert_eq(mem[4], 42.0, "free leaves the caller's memory alone");
    mem[0] = 1.0; /* still ours */

    for (int rank = 0; rank <= TG_MAX_RANK; rank++) {
        tg_tensor *w = tg_tensor_wrap(TG_F32, rank, rank ? SHAPE6 : NULL, mem32);
        assert_shape(w, TG_F32, rank, SHAPE6);
        cr_assert_eq(tg_tensor_data(w), (void *)mem32);
        tg_tensor_free(w);
    }

    /* Wrapped tensors work on a tape, and backward accumulates into their own grad. */
    tg_tensor *x = tg_tensor_wrap(TG_F64, 2, shape, mem);
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(tg_tensor_grad_get(x, i), 2 * mem[i]);
    tg_tape_free(tape);
    tg_tensor_free(x);
    free(mem);
    free(mem32);
}

Test(tensor, wrap_errors)
{
    const size_t shape[1] = {4};
    cr_assert_null(tg_tensor_wrap(TG_F64, 1, shape, NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "NULL");
    /* Misaligned for the dtype. */
    _Alignas(8) unsigned char buf[64];
    cr_assert_null(tg_tensor_wrap(TG_F64, 1, shape, buf + 4));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "aligned");
    cr_assert_null(tg_tensor_wrap(TG_F32, 1, shape, buf + 2));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    /* 4-byte alignment is enough for f32. */
    tg_tensor *t = tg_tensor_wrap(TG_F32, 1, shape, buf + 4);
    cr_assert_not_null(t, "%s", tg_last_error());
    tg_tensor_free(t);
}

Test(tensor, random_fills_are_deterministic)
{
    const size_t shape[3] = {4, 5, 6};
    for (int d = 0; d < 2; d++) {
        tg_rng r1, r2, r3;
        tg_rng_seed(&r1, 1234);
        tg_rng_seed(&r2, 1234);
        tg_rng_seed(&r3, 1235);
        tg_tensor *a = tg_tensor_randn(DTYPES[d], 3, shape, &r1, 1.0, 2.0);
        tg_tensor *b = tg_tensor_randn(DTYPES[d], 3, shape, &r2, 1.0, 2.0);
        tg_tensor *c = tg_tensor_randn(DTYPES[d], 3, shape, &r3, 1.0, 2.0);
        assert_shape(a, DTYPES[d], 3, shape);
        assert_aligned(a);
        size_t n = tg_tensor_numel(a), differ = 0;
        cr_assert_eq(memcmp(tg_tensor_data(a), tg_tensor_data(b), n * tg_dtype_size(DTYPES[d])), 0,
                     "same seed, same values");
        for (size_t i = 0; i < n; i++)
            differ += tg_tensor_get(a, i) != tg_tensor_get(c, i);
        cr_assert_gt(differ, n / 2, "another seed gives other values");
        /* The values are exactly mean + std * tg_rng_normal, in order. */
        tg_rng ref;
        tg_rng_seed(&ref, 1234);
        for (size_t i = 0; i < n; i++) {
            double v = 1.0 + 2.0 * tg_rng_normal(&ref);
            double want = DTYPES[d] == TG_F32 ? (double)(float)v : v;
            cr_assert_eq(tg_tensor_get(a, i), want, "element %zu", i);
        }
        /* The rng advanced: the next draw continues the stream. */
        cr_assert_eq(tg_rng_next(&r1), tg_rng_next(&ref));

        tg_rng_seed(&r1, 99);
        tg_rng_seed(&r2, 99);
        tg_tensor *u = tg_tensor_rand(DTYPES[d], 3, shape, &r1, -3.0, 5.0);
        tg_tensor *v = tg_tensor_rand(DTYPES[d], 3, shape, &r2, -3.0, 5.0);
        assert_shape(u, DTYPES[d], 3, shape);
        assert_aligned(u);
        cr_assert_eq(memcmp(tg_tensor_data(u), tg_tensor_data(v), n * tg_dtype_size(DTYPES[d])), 0);
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double x = tg_tensor_get(u, i);
            cr_assert(x >= -3.0 && x <= 5.0, "element %zu = %g out of [-3, 5)", i, x);
            if (DTYPES[d] == TG_F64)
                cr_assert_lt(x, 5.0);
            lo = fmin(lo, x);
            hi = fmax(hi, x);
        }
        cr_assert_lt(lo, -1.0, "120 uniform draws spread over the range");
        cr_assert_gt(hi, 3.0);
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_tensor_free(c);
        tg_tensor_free(u);
        tg_tensor_free(v);
    }
}

Test(tensor, random_fill_errors)
{
    const size_t shape[1] = {3};
    cr_assert_null(tg_tensor_randn(TG_F64, 1, shape, NULL, 0, 1));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "rng");
    cr_assert_null(tg_tensor_rand(TG_F64, 1, shape, NULL, 0, 1));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
}

/* ---- the RNG's golden numbers --------------------------------------------------------------
 * xoshiro256** seeded by splitmix64; checked against an independent implementation. Any
 * change of algorithm, seeding or platform arithmetic shows here. */

Test(rng, golden_bits)
{
    tg_rng r;
    tg_rng_seed(&r, 42);
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0x15780b2e0c2ec716));
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0x6104d9866d113a7e));
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0xae17533239e499a1));
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0xecb8ad4703b360a1));
    tg_rng_seed(&r, 0);
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0x99ec5f36cb75f2b4));
    cr_assert_eq(tg_rng_next(&r), UINT64_C(0xbf6e1f784956452a));
}

Test(rng, golden_uniform)
{
    tg_rng r;
    tg_rng_seed(&r, 42);
    cr_assert_eq(tg_rng_uniform(&r), 0x1.5780b2e0c2ecp-4);
    cr_assert_eq(tg_rng_uniform(&r), 0x1.84136619b444ep-2);
    cr_assert_eq(tg_rng_uniform(&r), 0x1.5c2ea66473c93p-1);
}

Test(rng, golden_normal)
{
    /* Exact bits: the polar method on IEEE-exact arithmetic and the library's own log. */
    tg_rng r;
    tg_rng_seed(&r, 42);
    const double want[4] = {-0x1.73d2feb0fb377p-1, 0x1.c5e21f7812a4ep-3, 0x1.db514bfac5b4ep-2,
                            0x1.79eb7c13cfccdp+0};
    for (int i = 0; i < 4; i++) {
        double v = tg_rng_normal(&r);
        cr_assert_eq(v, want[i], "draw %d: %a != %a", i, v, want[i]);
    }
}

Test(rng, same_seed_same_stream)
{
    tg_rng a, b;
    tg_rng_seed(&a, 7);
    tg_rng_seed(&b, 7);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(tg_rng_next(&a), tg_rng_next(&b));
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(tg_rng_normal(&a), tg_rng_normal(&b));
}

Test(rng, uniform_range_and_below)
{
    tg_rng r;
    tg_rng_seed(&r, 3);
    for (int i = 0; i < 10000; i++) {
        double u = tg_rng_uniform(&r);
        cr_assert(u >= 0.0 && u < 1.0);
    }
    size_t counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t k = tg_rng_below(&r, 7);
        cr_assert_lt(k, 7);
        counts[k]++;
    }
    for (int k = 0; k < 7; k++)
        cr_assert(counts[k] > 9000 && counts[k] < 11000, "value %d drawn %zu times", k, counts[k]);
    cr_assert_eq(tg_rng_below(&r, 0), 0);
    cr_assert_eq(tg_rng_below(&r, 1), 0);
}

Test(rng, normal_moments)
{
    tg_rng r;
    tg_rng_seed(&r, 2024);
    const int n = 100000;
    double sum = 0, sum2 = 0, sum3 = 0;
    int beyond3 = 0;
    for (int i = 0; i < n; i++) {
        double v = tg_rng_normal(&r);
        cr_assert(isfinite(v));
        sum += v;
        sum2 += v * v;
        sum3 += v * v * v;
        beyond3 += fabs(v) > 3;
    }
    double mean = sum / n, var = sum2 / n - mean * mean, skew = sum3 / n;
    /* Standard errors: mean 0.0032, variance 0.0045, third moment 0.012. */
    cr_assert_lt(fabs(mean), 0.02, "mean %g", mean);
    cr_assert_lt(fabs(var - 1.0), 0.03, "variance %g", var);
    cr_assert_lt(fabs(skew), 0.08, "third moment %g", skew);
    /* P(|z| > 3) = 0.0027: 270 expected. */
    cr_assert(beyond3 > 150 && beyond3 < 400, "%d draws beyond 3 sigma", beyond3);
}

Test(rng, randn_moments)
{
    tg_rng r;
    tg_rng_seed(&r, 5);
    const size_t shape[1] = {100000};
    tg_tensor *t = tg_tensor_randn(TG_F64, 1, shape, &r, 3.0, 0.5);
    cr_assert_not_null(t);
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < shape[0]; i++) {
        double v = tg_tensor_get(t, i);
        sum += v;
        sum2 += v * v;
    }
    double mean = sum / (double)shape[0], var = sum2 / (double)shape[0] - mean * mean;
    cr_assert_lt(fabs(mean - 3.0), 0.01, "mean %g", mean);
    cr_assert_lt(fabs(var - 0.25), 0.01, "variance %g", var);
    tg_tensor_free(t);
}

/* ---- argument errors ------------------------------------------------------------------------ */

typedef tg_tensor *(*ctor_fn)(tg_dtype dtype, int rank, const size_t *shape);

static double ctor_buf[64];
static tg_rng ctor_rng;

static tg_tensor *c_zeros(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_zeros(d, r, s);
}
static tg_tensor *c_ones(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_ones(d, r, s);
}
static tg_tensor *c_full(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_full(d, r, s, 2);
}
static tg_tensor *c_from_data(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_from_data(d, r, s, ctor_buf);
}
static tg_tensor *c_from_f64(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_from_f64(d, r, s, ctor_buf);
}
static tg_tensor *c_wrap(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_wrap(d, r, s, ctor_buf);
}
static tg_tensor *c_randn(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_randn(d, r, s, &ctor_rng, 0, 1);
}
static tg_tensor *c_rand(tg_dtype d, int r, const size_t *s)
{
    return tg_tensor_rand(d, r, s, &ctor_rng, 0, 1);
}

static const struct {
    const char *name;
    ctor_fn fn;
} CTORS[] = {
    {"zeros", c_zeros},       {"ones", c_ones}, {"full", c_full},   {"from_data", c_from_data},
    {"from_f64", c_from_f64}, {"wrap", c_wrap}, {"randn", c_randn}, {"rand", c_rand},
};
#define N_CTORS (sizeof CTORS / sizeof CTORS[0])

/* Expects fn(...) to fail with `status` and a message containing `needle`, without a single
 * call to the allocator (argument errors are found before allocating). */
static void expect_ctor_error(size_t k, tg_dtype dtype, int rank, const size_t *shape,
                              tg_status status, const char *needle)
{
    tg_rng_seed(&ctor_rng, 1);
    tg_clear_error();
    ts_alloc_install();
    tg_tensor *t = CTORS[k].fn(dtype, rank, shape);
    size_t calls = ts_alloc.calls;
    ts_alloc_uninstall();
    cr_assert_null(t, "%s: expected an error", CTORS[k].name);
    cr_assert_eq(tg_last_status(), status, "%s: %s instead of %s (%s)", CTORS[k].name,
                 tg_status_name(tg_last_status()), tg_status_name(status), tg_last_error());
    ts_assert_has(tg_last_error(), needle);
    char who[32]; /* the message names the constructor that was called */
    snprintf(who, sizeof who, "tensor_%s:", CTORS[k].name);
    cr_assert(strncmp(tg_last_error(), who, strlen(who)) == 0, "message '%s' does not start "
              "with '%s'", tg_last_error(), who);
    cr_assert_eq(calls, 0, "%s: %zu allocator calls before the argument check", CTORS[k].name,
                 calls);
}

Test(tensor_errors, rank_out_of_range)
{
    size_t shape[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    for (size_t k = 0; k < N_CTORS; k++) {
        expect_ctor_error(k, TG_F64, -1, shape, TG_EINVAL, "rank -1");
        expect_ctor_error(k, TG_F32, TG_MAX_RANK + 1, shape, TG_EINVAL, "rank");
        expect_ctor_error(k, TG_F32, 1000, shape, TG_EINVAL, "out of range");
    }
}

Test(tensor_errors, bad_dtype)
{
    const size_t shape[1] = {2};
    for (size_t k = 0; k < N_CTORS; k++) {
        expect_ctor_error(k, (tg_dtype)2, 1, shape, TG_EINVAL, "dtype");
        expect_ctor_error(k, (tg_dtype)-1, 1, shape, TG_EINVAL, "dtype");
    }
}

Test(tensor_errors, null_shape)
{
    for (size_t k = 0; k < N_CTORS; k++)
        expect_ctor_error(k, TG_F64, 2, NULL, TG_EINVAL, "shape is NULL");
}

Test(tensor_errors, element_count_overflow)
{
    const size_t huge[2] = {SIZE_MAX / 2, 4};
    const size_t huge3[3] = {1u << 20, 1u << 20, (size_t)1 << 30};
    /* Elements fit in size_t but their bytes do not. */
    const size_t bytes_overflow[1] = {SIZE_MAX / 8 + 1};
    for (size_t k = 0; k < N_CTORS; k++) {
        expect_ctor_error(k, TG_F32, 2, huge, TG_ESHAPE, "too many elements");
        expect_ctor_error(k, TG_F64, 2, huge, TG_ESHAPE, "[");
        expect_ctor_error(k, TG_F64, 3, huge3, TG_ESHAPE, "too many");
        expect_ctor_error(k, TG_F64, 1, bytes_overflow, TG_ESHAPE, "too many");
    }
    /* The message shows the shape. */
    cr_assert_null(tg_tensor_zeros(TG_F64, 2, huge));
    char want[64];
    snprintf(want, sizeof want, "[%zu,4]", SIZE_MAX / 2);
    ts_assert_has(tg_last_error(), want);
}

Test(tensor_errors, huge_but_representable_is_enomem)
{
    /* 2^40 f64 elements: a valid shape whose allocation fails (the hook refuses it, so the
     * test does not depend on the machine's overcommit policy). */
    const size_t shape[2] = {(size_t)1 << 20, (size_t)1 << 20};
    ts_alloc_install();
    ts_alloc.max_size = (size_t)1 << 30;
    tg_tensor *t = tg_tensor_zeros(TG_F64, 2, shape);
    long long live = ts_alloc.live;
    ts_alloc_uninstall();
    cr_assert_null(t);
    cr_assert_eq(tg_last_status(), TG_ENOMEM);
    ts_assert_has(tg_last_error(), "memory");
    cr_assert_eq(live, 0);
}

Test(tensor_errors, from_data_null)
{
    const size_t shape[1] = {3};
    cr_assert_null(tg_tensor_from_data(TG_F64, 1, shape, NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "NULL");
    cr_assert_null(tg_tensor_from_f64(TG_F32, 1, shape, NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
}

Test(tensor_errors, free_null_and_tape_tensor_are_ignored)
{
    tg_tensor_free(NULL);
    tg_tape *tape = tg_tape_new();
    tg_tensor *c = tg_scalar(tape, TG_F64, 1.0);
    tg_tensor *e = tg_exp(tape, c);
    cr_assert_not_null(e);
    tg_tensor_free(e); /* owned by the tape: ignored */
    cr_assert_eq(tg_tensor_item(e), exp(1.0));
    tg_tape_free(tape);
}

/* ---- accessors ------------------------------------------------------------------------------- */

Test(accessors, dims_and_numel)
{
    const size_t shape[4] = {2, 3, 4, 5};
    tg_tensor *t = tg_tensor_zeros(TG_F32, 4, shape);
    cr_assert_eq(tg_tensor_numel(t), 120);
    cr_assert_eq(tg_tensor_rank(t), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(tg_tensor_dim(t, i), shape[i]);
        cr_assert_eq(tg_tensor_dim(t, i - 4), shape[i], "negative axis %d", i - 4);
    }
    cr_assert_eq(tg_tensor_dim(t, 4), 0);
    cr_assert_eq(tg_tensor_dim(t, -5), 0);
    cr_assert_eq(tg_tensor_dim(t, INT32_MIN), 0);
    cr_assert_eq(tg_tensor_dim(NULL, 0), 0);
    cr_assert_eq(tg_tensor_numel(NULL), 0);
    cr_assert_null(tg_tensor_shape(NULL));
    tg_tensor *s = tg_tensor_scalar(TG_F64, 1);
    cr_assert_eq(tg_tensor_dim(s, 0), 0);
    cr_assert_eq(tg_tensor_dim(s, -1), 0);
    cr_assert_eq(tg_tensor_numel(s), 1);
    tg_tensor_free(t);
    tg_tensor_free(s);
}

Test(accessors, get_set_item_to_f64)
{
    const double src[6] = {1, 2, 3, 4, 5, 6};
    const size_t shape[2] = {2, 3};
    for (int d = 0; d < 2; d++) {
        tg_tensor *t = tg_tensor_from_f64(DTYPES[d], 2, shape, src);
        cr_assert_eq(tg_tensor_item(t), 1.0);
        cr_assert_eq(tg_tensor_get(t, 5), 6.0);
        cr_assert_eq(tg_tensor_set(t, 2, -0.5), TG_OK);
        cr_assert_eq(tg_tensor_get(t, 2), -0.5);

        tg_clear_error();
        cr_assert(isnan(tg_tensor_get(t, 6)), "out of range: NaN");
        cr_assert_eq(tg_last_status(), TG_EINVAL);
        ts_assert_has(tg_last_error(), "index 6");
        cr_assert(isnan(tg_tensor_get(t, SIZE_MAX)));
        cr_assert_eq(tg_tensor_set(t, 6, 1.0), TG_EINVAL);
        ts_assert_has(tg_last_error(), "out of range");
        cr_assert_eq(tg_tensor_set(t, SIZE_MAX, 1.0), TG_EINVAL);
        /* the gradient's elements likewise: 0 before any gradient, NaN out of range */
        cr_assert_eq(tg_tensor_grad_get(t, 5), 0.0);
        tg_clear_error();
        cr_assert(isnan(tg_tensor_grad_get(t, 6)), "out of range: NaN");
        cr_assert_eq(tg_last_status(), TG_EINVAL);
        ts_assert_has(tg_last_error(), "tensor_grad_get: index 6 is out of range");

        double out[6];
        cr_assert_eq(tg_tensor_to_f64(t, out), TG_OK);
        for (int i = 0; i < 6; i++)
            cr_assert_eq(out[i], i == 2 ? -0.5 : src[i]);
        cr_assert_eq(tg_tensor_to_f64(t, NULL), TG_EINVAL);
        tg_tensor_free(t);
    }
    /* f32 rounding is visible through get. */
    tg_tensor *f = tg_tensor_scalar(TG_F32, 0.0);
    cr_assert_eq(tg_tensor_set(f, 0, 0.1), TG_OK);
    cr_assert_eq(tg_tensor_item(f), (double)0.1f);
    tg_tensor_free(f);

    /* NULL tensors: errors naming the function called, not crashes. */
    cr_assert(isnan(tg_tensor_get(NULL, 0)));
    cr_assert_str_eq(tg_last_error(), "tensor_get: tensor is NULL");
    cr_assert(isnan(tg_tensor_item(NULL)));
    cr_assert_str_eq(tg_last_error(), "tensor_item: tensor is NULL");
    cr_assert(isnan(tg_tensor_grad_get(NULL, 0)));
    cr_assert_eq(tg_tensor_set(NULL, 0, 1), TG_EINVAL);
    cr_assert_neq(tg_tensor_to_f64(NULL, NULL), TG_OK);
    cr_assert_str_eq(tg_last_error(), "tensor_to_f64: tensor is NULL");
    cr_assert_null(tg_tensor_data(NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
}

/* A finite value beyond f32's range (from 2^128 - 2^103 on, where rounding to nearest goes to
 * inf; FLT_MAX = 2^128 - 2^104 is the largest f32) would become inf without a word: full,
 * scalar and set refuse it for an f32 tensor, as tg_scalar does on a tape. inf itself, FLT_MAX
 * and f64 tensors are fine. */
Test(accessors, f32_values_beyond_its_range_are_refused)
{
    const size_t shape[1] = {2};
    const double over[3] = {1e39, -1e300, 0x1.ffffffp+127};
    for (int k = 0; k < 3; k++) {
        tg_clear_error();
        cr_assert_null(tg_tensor_full(TG_F32, 1, shape, over[k]), "%g", over[k]);
        cr_assert_eq(tg_last_status(), TG_EINVAL);
        ts_assert_has(tg_last_error(), "tensor_full: the value");
        ts_assert_has(tg_last_error(), "does not fit f32");
        cr_assert_null(tg_tensor_scalar(TG_F32, over[k]));
        ts_assert_has(tg_last_error(), "tensor_scalar:");
        tg_tensor *d = tg_tensor_full(TG_F64, 1, shape, over[k]);
        cr_assert_eq(tg_tensor_get(d, 1), over[k]);
        tg_tensor_free(d);
    }
    tg_tensor *t = tg_tensor_full(TG_F32, 1, shape, 0x1.fffffep+127);
    cr_assert_eq(tg_tensor_get(t, 0), 0x1.fffffep+127);
    const uint64_t version = tg_tensor_version(t);
    cr_assert_eq(tg_tensor_set(t, 1, -1e39), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tensor_set: the value -1e+39 does not fit f32");
    cr_assert_eq(tg_tensor_get(t, 1), 0x1.fffffep+127, "the element is as it was");
    cr_assert_eq(tg_tensor_version(t), version, "and nothing was written");
    cr_assert_eq(tg_tensor_set(t, 1, -INFINITY), TG_OK);
    cr_assert(isinf(tg_tensor_get(t, 1)));
    cr_assert_eq(tg_tensor_set(t, 0, NAN), TG_OK);
    tg_tensor_free(t);
    t = tg_tensor_scalar(TG_F32, INFINITY);
    cr_assert(isinf(tg_tensor_item(t)));
    tg_tensor_free(t);
}

Test(accessors, tape_tensors_are_read_only)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[1] = {3};
    tg_tensor *x = tg_tensor_ones(TG_F64, 1, shape);
    tg_tensor *y = tg_scale(tape, x, 2.0);
    cr_assert_eq(tg_tensor_get(y, 1), 2.0);
    cr_assert_eq(tg_tensor_set(y, 0, 5.0), TG_EINVAL);
    ts_assert_has(tg_last_error(), "not a leaf");
    cr_assert_eq(tg_tensor_get(y, 0), 2.0);
    double out[3];
    cr_assert_eq(tg_tensor_to_f64(y, out), TG_OK);
    cr_assert_eq(out[2], 2.0);
    cr_assert_not(tg_tensor_is_leaf(y));
    cr_assert(tg_tensor_is_leaf(x));
    cr_assert_not(tg_tensor_is_leaf(NULL));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(accessors, stale_tape_tensor_reads_fail)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *c = tg_scalar(tape, TG_F64, 2.0);
    tg_tensor *y = tg_exp(tape, c);
    cr_assert_not_null(tg_tensor_data(y));
    tg_tape_reset(tape);
    tg_clear_error();
    cr_assert_null(tg_tensor_data(y));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    ts_assert_has(tg_last_error(), "reset");
    cr_assert_null(tg_tensor_data_const(y));
    cr_assert(isnan(tg_tensor_get(y, 0)));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    cr_assert(isnan(tg_tensor_item(y)));
    double out[1];
    cr_assert_eq(tg_tensor_to_f64(y, out), TG_ESTALE);
    cr_assert_null(tg_tensor_grad_data(y));
    tg_clear_error();
    cr_assert(isnan(tg_tensor_grad_get(y, 0)));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    cr_assert_eq(tg_tensor_set_name(y, "late"), TG_ESTALE);
    tg_tape_free(tape);
}

/* A stale tensor without elements has no values to miss: its reads fail all the same, with
 * TG_ESTALE, rather than succeed (to_f64) or blame the index (get). */
Test(accessors, stale_empty_tape_tensor_reads_fail)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 0};
    tg_tensor *x = tg_tensor_zeros(TG_F64, 2, shape);
    tg_tensor *y = tg_scale(tape, x, 2.0);
    cr_assert_not_null(y);
    double out[1];
    cr_assert_eq(tg_tensor_to_f64(y, out), TG_OK);
    tg_tape_reset(tape);
    tg_clear_error();
    cr_assert_eq(tg_tensor_to_f64(y, out), TG_ESTALE, "%s", tg_last_error());
    tg_clear_error();
    cr_assert(isnan(tg_tensor_get(y, 0)));
    cr_assert_eq(tg_last_status(), TG_ESTALE, "%s", tg_last_error());
    ts_assert_has(tg_last_error(), "reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- requires_grad, names, grads ----------------------------------------------------------- */

Test(flags, requires_grad_leaf_and_tape_tensor)
{
    tg_tensor *x = tg_tensor_scalar(TG_F64, 1.5);
    cr_assert_not(tg_tensor_requires_grad(x));
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);
    cr_assert(tg_tensor_requires_grad(x));
    cr_assert_eq(tg_tensor_set_requires_grad(x, false), TG_OK);
    cr_assert_not(tg_tensor_requires_grad(x));
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);

    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_exp(tape, x);
    cr_assert(tg_tensor_requires_grad(y), "derived from its input");
    cr_assert_eq(tg_tensor_set_requires_grad(y, false), TG_EINVAL);
    ts_assert_has(tg_last_error(), "not a leaf");
    cr_assert(tg_tensor_requires_grad(y), "unchanged by the failed call");
    cr_assert_eq(tg_tape_status(tape), TG_OK, "a bad flag call does not poison the tape");

    tg_tensor *c = tg_scalar(tape, TG_F64, 1.0);
    cr_assert_not(tg_tensor_requires_grad(c));
    cr_assert_eq(tg_tensor_set_requires_grad(c, true), TG_EINVAL);
    cr_assert_not(tg_tensor_requires_grad(c));

    cr_assert_eq(tg_tensor_set_requires_grad(NULL, true), TG_EINVAL);
    cr_assert_not(tg_tensor_requires_grad(NULL));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(names, leaf_names)
{
    tg_tensor *x = tg_tensor_scalar(TG_F32, 0);
    cr_assert_null(tg_tensor_name(x));
    char buf[16] = "weight";
    cr_assert_eq(tg_tensor_set_name(x, buf), TG_OK);
    strcpy(buf, "changed");
    cr_assert_str_eq(tg_tensor_name(x), "weight", "the name is copied");
    /* Renaming frees the old copy (ASan/LSan would report it otherwise). */
    cr_assert_eq(tg_tensor_set_name(x, "bias"), TG_OK);
    cr_assert_str_eq(tg_tensor_name(x), "bias");
    cr_assert_eq(tg_tensor_set_name(x, ""), TG_OK);
    cr_assert_str_eq(tg_tensor_name(x), "");
    cr_assert_eq(tg_tensor_set_name(x, NULL), TG_EINVAL);
    cr_assert_str_eq(tg_tensor_name(x), "", "unchanged by the failed call");
    cr_assert_eq(tg_tensor_set_name(NULL, "x"), TG_EINVAL);
    cr_assert_null(tg_tensor_name(NULL));

    /* The allocation goes through the hook, and free releases it. */
    ts_alloc_install();
    tg_tensor *y = tg_tensor_scalar(TG_F64, 0);
    cr_assert_eq(tg_tensor_set_name(y, "a fairly long parameter name"), TG_OK);
    cr_assert_eq(ts_alloc.live, 2);
    tg_tensor_free(y);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
    tg_tensor_free(x);
}

Test(names, tape_tensor_names)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 1);
    tg_tensor *y = tg_neg(tape, x);
    cr_assert_null(tg_tensor_name(y));
    char buf[16] = "hidden";
    cr_assert_eq(tg_tensor_set_name(y, buf), TG_OK);
    strcpy(buf, "changed");
    cr_assert_str_eq(tg_tensor_name(y), "hidden");
    cr_assert_eq(tg_tensor_set_name(y, "h2"), TG_OK);
    cr_assert_str_eq(tg_tensor_name(y), "h2");
    cr_assert_eq(tg_tensor_set_name(y, NULL), TG_EINVAL);
    /* The leaf's name is its own. */
    cr_assert_eq(tg_tensor_set_name(x, "x"), TG_OK);
    tg_tensor *z = tg_neg(tape, x);
    cr_assert_null(tg_tensor_name(z));
    cr_assert_str_eq(tg_tensor_name(tg_tensor_input(z, 0)), "x");
    cr_assert_eq(tg_tape_status(tape), TG_OK);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(grads, zero_grad)
{
    const size_t shape[1] = {3};
    const double v[3] = {1, -2, 3};
    tg_tensor *x = tg_tensor_from_f64(TG_F32, 1, shape, v);
    cr_assert_eq(tg_tensor_zero_grad(x), TG_OK, "no buffer yet: nothing to do");
    cr_assert_null(tg_tensor_grad_data(x));
    cr_assert_eq(tg_tensor_grad_get(x, 0), 0.0);
    tg_tensor_set_requires_grad(x, true);

    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    void *g = tg_tensor_grad_data(x);
    cr_assert_not_null(g);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_grad_get(x, i), 2 * v[i]);
    cr_assert(isnan(tg_tensor_grad_get(x, 3)), "out of range: NaN, as tg_tensor_get");

    cr_assert_eq(tg_tensor_zero_grad(x), TG_OK);
    cr_assert_eq(tg_tensor_grad_data(x), g, "the buffer is kept");
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(((float *)g)[i], 0.0f);

    cr_assert_eq(tg_tensor_zero_grad(y), TG_EINVAL, "tape tensors have no grad to zero");
    ts_assert_has(tg_last_error(), "not a leaf");
    cr_assert_eq(tg_tensor_zero_grad(NULL), TG_EINVAL);
    cr_assert_null(tg_tensor_grad_data(NULL));
    tg_tape_free(tape);
    /* The grad buffer goes with the leaf (LSan checks). */
    tg_tensor_free(x);
}

/* ---- small helpers ------------------------------------------------------------------------- */

Test(format, shape_format)
{
    char buf[64];
    const size_t s[3] = {2, 30, 400};
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 3, s), "[2,30,400]");
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 1, s), "[2]");
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 0, NULL), "[]");
    /* a rank no tensor has: s, of 3 entries, is not read past its end */
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 9, s), "[rank 9?]");
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, -1, s), "[rank -1?]");
    const size_t big[2] = {SIZE_MAX, 0};
    char want[64];
    snprintf(want, sizeof want, "[%zu,0]", SIZE_MAX);
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 2, big), want);
    /* Truncation: always NUL-terminated, never past the buffer. */
    char small[8];
    memset(small, 'x', sizeof small);
    cr_assert_eq(tg_shape_format(small, 5, 3, s), small);
    cr_assert_str_eq(small, "[2,3");
    cr_assert_eq(small[5], 'x', "nothing written past size");
    cr_assert_str_eq(tg_shape_format(small, 1, 3, s), "");
    cr_assert_str_eq(tg_shape_format(small, 2, 3, s), "[");
    cr_assert_str_eq(tg_shape_format(small, 7, 3, s), "[2,30,");
    cr_assert_str_eq(tg_shape_format(small, 8, 2, s), "[2,30]");
    cr_assert_null(tg_shape_format(NULL, 10, 3, s));
    /* A NULL shape of rank > 0 has no axes to read: "[?]", not a NULL dereference. */
    cr_assert_str_eq(tg_shape_format(buf, sizeof buf, 2, NULL), "[?]");
    cr_assert_str_eq(tg_shape_format(small, 3, 2, NULL), "[?");
    small[0] = 'q';
    cr_assert_eq(tg_shape_format(small, 0, 3, s), small);
    cr_assert_eq(small[0], 'q', "size 0: untouched");
}

Test(format, names_of_codes)
{
    cr_assert_str_eq(tg_dtype_name(TG_F32), "f32");
    cr_assert_str_eq(tg_dtype_name(TG_F64), "f64");
    cr_assert_str_eq(tg_dtype_name((tg_dtype)9), "?");
    cr_assert_eq(tg_dtype_size(TG_F32), 4);
    cr_assert_eq(tg_dtype_size(TG_F64), 8);
    cr_assert_eq(tg_dtype_size((tg_dtype)9), 0);
    cr_assert_str_eq(tg_status_name(TG_OK), "TG_OK");
    cr_assert_str_eq(tg_status_name(TG_ESHAPE), "TG_ESHAPE");
    cr_assert_str_eq(tg_status_name(TG_ESTALE), "TG_ESTALE");
    cr_assert_str_eq(tg_status_name(TG_ENUMERIC), "TG_ENUMERIC");
    cr_assert_not_null(tg_status_name((tg_status)-100));
    tg_clear_error();
    cr_assert_eq(tg_last_status(), TG_OK);
    cr_assert_str_eq(tg_last_error(), "no error");
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
    cr_assert_str_eq(tg_version(), want);
}
