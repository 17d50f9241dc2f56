/* fixture.c (test_ops): suite ops's fixture (a new tape for each test, the leaves handed to
 * it freed at the end) and the helpers that check values, gradients, shapes and errors. */
#include "ops.h"

/* ---- fixture: one tape per test, leaves freed at the end ---------------------------------- */

tg_tape *tape;
static tg_tensor *owned[256];
static size_t n_owned;

static void setup(void)
{
    tg_clear_error();
    tape = tg_tape_new();
    cr_assert(tape != NULL, "tg_tape_new: %s", tg_last_error());
    n_owned = 0;
}

void fresh_start(void)
{
    tg_tape_reset(tape);
    for (size_t i = 0; i < n_owned; i++)
        tg_tensor_free(owned[i]);
    n_owned = 0;
}

static void teardown(void)
{
    fresh_start();
    tg_tape_free(tape);
    tape = NULL;
}

TestSuite(ops, .init = setup, .fini = teardown);

const tg_dtype DTYPES[2] = {TG_F32, TG_F64};

/* Hands a leaf to the fixture, which frees it at the end of the test. */
tg_tensor *own(tg_tensor *t)
{
    cr_assert(t != NULL, "making a leaf: %s", tg_last_error());
    cr_assert(n_owned < sizeof owned / sizeof owned[0]);
    owned[n_owned++] = t;
    return t;
}

/* ts_leaf, freed by the fixture. */
tg_tensor *own_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool grad)
{
    return own(ts_leaf(dt, rank, shape, v, grad));
}

/* 0..n-1 (times `step`, plus `base`) as a leaf. */
tg_tensor *iota(tg_dtype dt, int rank, const size_t *shape, double base, double step, bool grad)
{
    double v[256];
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    cr_assert(n <= 256);
    for (size_t i = 0; i < n; i++)
        v[i] = base + step * (double)i;
    return own_leaf(dt, rank, shape, v, grad);
}

/* run_sum_f32 and run_sum_f64 (ops.h) */
#define RUN_SUM_REFERENCE(name, T)                                                                 \
    T name(T start, const double *t, size_t n)                                                     \
    {                                                                                              \
        T total = start;                                                                           \
        for (size_t b = 0; b < n; b += 32768) {                                                    \
            T ways[16] = {0};                                                                      \
            if (b == 0)                                                                            \
                ways[0] = start;                                                                   \
            for (size_t k = b; k < n && k < b + 32768; k++)                                        \
                ways[(k - b) % 16] += (T)t[k];                                                     \
            T sum = ways[0];                                                                       \
            for (size_t w = 1; w < 16; w++)                                                        \
                sum += ways[w];                                                                    \
            total = b == 0 ? sum : total + sum;                                                    \
        }                                                                                          \
        return total;                                                                              \
    }
RUN_SUM_REFERENCE(run_sum_f32, float)
RUN_SUM_REFERENCE(run_sum_f64, double)

/* The relative tolerance of results in dtype dt; below 0.1, where results of cancellation
 * live, it is absolute: ts_close(got, want, 0.1 * tol, tol). */
double tol_of(tg_dtype dt)
{
    return dt == TG_F32 ? 1e-6 : 1e-12;
}

const char *shape_str(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, tg_tensor_rank(t), tg_tensor_shape(t));
}

/* The values (grad == false) or gradient (grad == true) of t, element by element, to the
 * tolerance of its dtype. */
void expect_elems(const char *what, const tg_tensor *t, const double *want, size_t n, bool grad)
{
    cr_assert(t != NULL, "%s: tensor is NULL (%s)", what, tg_tape_error(tape));
    double tol = tol_of(tg_tensor_dtype(t));
    const char *dt = tg_dtype_name(tg_tensor_dtype(t));
    if (grad)
        ts_assert_grad(t, want, n, 0.1 * tol, tol, "%s (%s)", what, dt);
    else
        ts_assert_values(t, want, n, 0.1 * tol, tol, "%s (%s)", what, dt);
}

void expect_shape(const char *what, const tg_tensor *t, int rank, const size_t *shape)
{
    cr_assert(t != NULL, "%s: tensor is NULL (%s)", what, tg_tape_error(tape));
    char got[64], want[64];
    shape_str(got, sizeof got, t);
    tg_shape_format(want, sizeof want, rank, shape);
    cr_expect_str_eq(got, want, "%s: shape %s, expected %s", what, got, want);
}

/* Backward from y with dy = seed (values as doubles, y's shape and dtype), or ones when seed
 * is NULL. */
void backward_seed(tg_tensor *y, const double *seed)
{
    cr_assert(y != NULL, "%s", tg_tape_error(tape));
    double ones[256];
    if (!seed) {
        cr_assert(tg_tensor_numel(y) <= 256);
        for (size_t i = 0; i < 256; i++)
            ones[i] = 1;
        seed = ones;
    }
    tg_tensor *s = own_leaf(tg_tensor_dtype(y), tg_tensor_rank(y), tg_tensor_shape(y), seed, false);
    tg_status st = tg_backward_seed(tape, y, s);
    cr_assert_eq(st, TG_OK, "backward_seed: %s: %s", tg_status_name(st), tg_last_error());
}

void backward(tg_tensor *y)
{
    cr_assert(y != NULL, "%s", tg_tape_error(tape));
    tg_status st = tg_backward(tape, y);
    cr_assert_eq(st, TG_OK, "backward: %s: %s", tg_status_name(st), tg_last_error());
}

/* Expects the tape's first error: status, NULL result, and fragments of the message (which is
 * also this thread's last error). */
void expect_error(const char *what, const tg_tensor *y, tg_status st, const char *frag1,
                  const char *frag2)
{
    cr_expect(y == NULL, "%s: returned a tensor, expected an error", what);
    cr_expect_eq(tg_tape_status(tape), st, "%s: tape status %s, expected %s (%s)", what,
                 tg_status_name(tg_tape_status(tape)), tg_status_name(st), tg_tape_error(tape));
    cr_expect_eq(tg_last_status(), st, "%s: last status %s, expected %s", what,
                 tg_status_name(tg_last_status()), tg_status_name(st));
    const char *msg = tg_tape_error(tape);
    cr_expect_str_eq(msg, tg_last_error(), "%s: tape and thread messages differ", what);
    if (frag1)
        ts_assert_has(msg, frag1);
    if (frag2)
        ts_assert_has(msg, frag2);
}
