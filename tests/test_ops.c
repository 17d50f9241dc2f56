/* test_ops.c: every op's forward values and VJP against hand-computed numbers, in f32 and f64;
 * the documented conventions at kinks (relu, abs, max ties, sqrt, log, pow, clamp); numerical
 * stability (sigmoid, logsumexp, softmax at +-1000); tanh's accuracy; broadcasting shapes and VJPs; reduction
 * shapes; matmul, transpose, reshape; detach, no-grad mode, constants; and the errors: status,
 * message, NULL result, and the first error kept on the tape. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detmath.h" /* tg__tanh */
#include "tapegrad.h"

#include "support/helpers.h"

/* ---- fixture: one tape per test, leaves freed at the end ---------------------------------- */

static tg_tape *tape;
static tg_tensor *owned[256];
static size_t n_owned;

static void setup(void)
{
    tg_clear_error();
    tape = tg_tape_new();
    cr_assert(tape != NULL, "tg_tape_new: %s", tg_last_error());
    n_owned = 0;
}

static void teardown(void)
{
    for (size_t i = 0; i < n_owned; i++)
        tg_tensor_free(owned[i]);
    n_owned = 0;
    tg_tape_free(tape);
    tape = NULL;
}

TestSuite(ops, .init = setup, .fini = teardown);

static const tg_dtype DTYPES[2] = {TG_F32, TG_F64};

/* Hands a leaf to the fixture, which frees it at the end of the test. */
static tg_tensor *own(tg_tensor *t)
{
    cr_assert(t != NULL, "making a leaf: %s", tg_last_error());
    cr_assert(n_owned < sizeof owned / sizeof owned[0]);
    owned[n_owned++] = t;
    return t;
}

/* ts_leaf, freed by the fixture. */
static tg_tensor *own_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool grad)
{
    return own(ts_leaf(dt, rank, shape, v, grad));
}

/* 0..n-1 (times `step`, plus `base`) as a leaf. */
static tg_tensor *iota(tg_dtype dt, int rank, const size_t *shape, double base, double step,
                       bool grad)
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

/* The relative tolerance of results in dtype dt; below 0.1, where results of cancellation
 * live, it is absolute: ts_close(got, want, 0.1 * tol, tol). */
static double tol_of(tg_dtype dt)
{
    return dt == TG_F32 ? 1e-6 : 1e-12;
}

static const char *shape_str(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, tg_tensor_rank(t), tg_tensor_shape(t));
}

/* The values (grad == false) or gradient (grad == true) of t, element by element, to the
 * tolerance of its dtype. */
static void expect_elems(const char *what, const tg_tensor *t, const double *want, size_t n,
                         bool grad)
{
    cr_assert(t != NULL, "%s: tensor is NULL (%s)", what, tg_tape_error(tape));
    double tol = tol_of(tg_tensor_dtype(t));
    if (grad)
        ts_assert_grad(t, want, n, 0.1 * tol, tol, "%s", what);
    else
        ts_assert_values(t, want, n, 0.1 * tol, tol, "%s", what);
}

#define EXPECT_VALUES(what, t, ...)                                                                \
    expect_elems(what, t, TS_VALS(__VA_ARGS__), TS_COUNT(__VA_ARGS__), false)
#define EXPECT_GRAD(what, t, ...)                                                                  \
    expect_elems(what, t, TS_VALS(__VA_ARGS__), TS_COUNT(__VA_ARGS__), true)

static void expect_shape(const char *what, const tg_tensor *t, int rank, const size_t *shape)
{
    cr_assert(t != NULL, "%s: tensor is NULL (%s)", what, tg_tape_error(tape));
    char got[64], want[64];
    shape_str(got, sizeof got, t);
    tg_shape_format(want, sizeof want, rank, shape);
    cr_expect_str_eq(got, want, "%s: shape %s, expected %s", what, got, want);
}

#define EXPECT_SHAPE(what, t, rank, ...) expect_shape(what, t, rank, (const size_t[]){0, __VA_ARGS__} + 1)

/* Backward from y with dy = seed (values as doubles, y's shape and dtype). */
static void backward_seed(tg_tensor *y, const double *seed)
{
    cr_assert(y != NULL, "%s", tg_tape_error(tape));
    tg_tensor *s = own_leaf(tg_tensor_dtype(y), tg_tensor_rank(y), tg_tensor_shape(y), seed, false);
    tg_status st = tg_backward_seed(tape, y, s);
    cr_assert_eq(st, TG_OK, "backward_seed: %s: %s", tg_status_name(st), tg_last_error());
}

static void backward(tg_tensor *y)
{
    cr_assert(y != NULL, "%s", tg_tape_error(tape));
    tg_status st = tg_backward(tape, y);
    cr_assert_eq(st, TG_OK, "backward: %s: %s", tg_status_name(st), tg_last_error());
}

/* Expects the tape's first error: status, NULL result, and fragments of the message (which is
 * also this thread's last error). */
static void expect_error(const char *what, const tg_tensor *y, tg_status st, const char *frag1,
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

/* ---- coverage: every op has its exact tests here ------------------------------------------- */

/* The exact tests go by family: elementwise unary ops in unary_values_and_vjp (and kink_*,
 * stable_*), binary ops in binary_same_shape and broadcast_*, then matmul_*, transpose_*,
 * reshape_*, reduce_*, softmax_*; constants and detach have tests of their own; minimum,
 * maximum, atan2, pow_tensor, the comparisons, where, min and prod are in
 * test_ops_binary.c, the elementwise math in test_ops_math.c, indexing and joins in
 * test_ops_index.c, and the user-defined op, whose values are its callbacks', in
 * test_custom.c. Every op is applied through ts_apply (tg_apply), but the custom op through
 * tg_custom (tg_apply refuses it); every_op_records_through_apply runs apply_any (below) on
 * each op of the table and checks the node it records. */
static tg_tensor *apply_any(tg_op op, tg_tensor *a, tg_tensor *b);

Test(ops, every_op_records_through_apply)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        int arity = tg_op_arity((tg_op)op);
        cr_expect((arity >= 0 && arity <= 3) || arity == TG_VARIADIC, "op %s: arity %d",
                  tg_op_name((tg_op)op), arity);
        tg_tape_reset(tape);
        tg_tensor *x =
            own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(0.5, 1.25, 2, 0.75, 1.5, 3), true);
        tg_tensor *b = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1.5, 0.5, 2, 1, 0.25, 4), true);
        tg_tensor *y = op == TG_OP_CONST ? tg_constant(tape, TG_F64, 0, NULL, TS_VALS(1))
                                         : apply_any((tg_op)op, x, b);
        cr_expect(y != NULL && tg_tensor_op(y) == op, "op %s: recorded %d (%s)",
                  tg_op_name((tg_op)op), y ? tg_tensor_op(y) : -1, tg_tape_error(tape));
    }
    cr_expect_str_eq(tg_op_name(TG_OP_COUNT), "?");
    cr_expect_eq(tg_op_arity(TG_OP_COUNT), -1);
    cr_expect_eq(tg_op_arity(TG_OP_CONST), 0);
    cr_expect_eq(tg_op_arity(TG_OP_MATMUL), 2);
    cr_expect_eq(tg_op_arity(TG_OP_SOFTMAX), 1);
}

/* ---- elementwise unary ---------------------------------------------------------------------- */

/* An elementwise unary op with its constant c (clamp: the bounds c and hi). */
static tg_tensor *apply_unary(tg_op op, tg_tensor *x, double c, double hi)
{
    return ts_apply(tape, op, x, NULL, &(tg_attrs){.c = c, .lo = c, .hi = hi});
}

typedef struct unary_case {
    tg_op op;
    double c, hi; /* the constant (clamp: lo) and clamp's hi */
    double x[5];
    double y[5];  /* f(x) */
    double d[5];  /* f'(x) */
} unary_case;

static double sig(double x) { return 1.0 / (1.0 + exp(-x)); }

Test(ops, unary_values_and_vjp)
{
    /* Inputs exactly representable in f32; outputs by hand or from the closed forms. */
#define X1 {-2, -0.5, 0, 1.5, 3}
#define XP {0.25, 1, 4, 2.25, 9}
#define XD {-2, -0.5, 0.25, 1, 4}
    const unary_case cases[] = {
        {TG_OP_NEG, 0, 0, X1, {2, 0.5, 0, -1.5, -3}, {-1, -1, -1, -1, -1}},
        {TG_OP_SCALE, 2.5, 0, X1, {-5, -1.25, 0, 3.75, 7.5}, {2.5, 2.5, 2.5, 2.5, 2.5}},
        {TG_OP_SCALE, -0.75, 0, X1, {1.5, 0.375, 0, -1.125, -2.25},
         {-0.75, -0.75, -0.75, -0.75, -0.75}},
        {TG_OP_ADD_SCALAR, -1.25, 0, X1, {-3.25, -1.75, -1.25, 0.25, 1.75}, {1, 1, 1, 1, 1}},
        {TG_OP_POW, 2, 0, X1, {4, 0.25, 0, 2.25, 9}, {-4, -1, 0, 3, 6}},
        {TG_OP_POW, 3, 0, X1, {-8, -0.125, 0, 3.375, 27}, {12, 0.75, 0, 6.75, 27}},
        {TG_OP_POW, 1, 0, X1, {-2, -0.5, 0, 1.5, 3}, {1, 1, 1, 1, 1}},
        {TG_OP_POW, 0.5, 0, XP, {0.5, 1, 2, 1.5, 3}, {1, 0.5, 0.25, 1.0 / 3, 1.0 / 6}},
        {TG_OP_POW, -1.5, 0, XP, {8, 1, 0.125, 1 / 3.375, 1.0 / 27},
         {-48, -1.5, -0.046875, -1.5 / 7.59375, -1.5 / 243}},
        {TG_OP_POW, -1, 0, XD, {-0.5, -2, 4, 1, 0.25}, {-0.25, -4, -16, -1, -0.0625}},
        {TG_OP_SQUARE, 0, 0, X1, {4, 0.25, 0, 2.25, 9}, {-4, -1, 0, 3, 6}},
        {TG_OP_SQRT, 0, 0, XP, {0.5, 1, 2, 1.5, 3}, {1, 0.5, 0.25, 1.0 / 3, 1.0 / 6}},
        {TG_OP_EXP, 0, 0, X1, {exp(-2.0), exp(-0.5), 1, exp(1.5), exp(3.0)},
         {exp(-2.0), exp(-0.5), 1, exp(1.5), exp(3.0)}},
        {TG_OP_LOG, 0, 0, XP, {-2 * log(2.0), 0, 2 * log(2.0), 2 * log(1.5), 2 * log(3.0)},
         {4, 1, 0.25, 1 / 2.25, 1.0 / 9}},
        {TG_OP_ABS, 0, 0, XD, {2, 0.5, 0.25, 1, 4}, {-1, -1, 1, 1, 1}},
        {TG_OP_SIGMOID, 0, 0, X1, {sig(-2), sig(-0.5), 0.5, sig(1.5), sig(3)},
         {sig(-2) * sig(2), sig(-0.5) * sig(0.5), 0.25, sig(1.5) * sig(-1.5), sig(3) * sig(-3)}},
        {TG_OP_TANH, 0, 0, X1, {tanh(-2.0), tanh(-0.5), 0, tanh(1.5), tanh(3.0)},
         {1 / pow(cosh(2.0), 2), 1 / pow(cosh(0.5), 2), 1, 1 / pow(cosh(1.5), 2),
          1 / pow(cosh(3.0), 2)}},
        {TG_OP_RELU, 0, 0, XD, {0, 0, 0.25, 1, 4}, {0, 0, 1, 1, 1}},
        {TG_OP_LOG_SIGMOID, 0, 0, X1,
         {log(sig(-2)), log(sig(-0.5)), -log(2.0), log(sig(1.5)), log(sig(3))},
         {sig(2), sig(0.5), 0.5, sig(-1.5), sig(-3)}},
        {TG_OP_CLAMP, -1, 2, X1, {-1, -0.5, 0, 1.5, 2}, {0, 1, 1, 1, 0}},
        {TG_OP_CLAMP, -0.75, -0.25, X1, {-0.75, -0.5, -0.25, -0.25, -0.25}, {0, 1, 0, 0, 0}},
    };
#undef X1
#undef XP
#undef XD
    const double dy[5] = {1, -2, 0.5, 3, -1};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const unary_case *k = &cases[ci];
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            char what[64];
            if (k->op == TG_OP_CLAMP)
                snprintf(what, sizeof what, "clamp(lo=%g, hi=%g)", k->c, k->hi);
            else
                snprintf(what, sizeof what, "%s(c=%g)", tg_op_name(k->op), k->c);
            tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(5), k->x, true);
            tg_tensor *y = apply_unary(k->op, x, k->c, k->hi);
            cr_assert(y != NULL, "%s: %s", what, tg_tape_error(tape));
            cr_expect_eq(tg_tensor_op(y), (int)k->op);
            cr_expect_eq(tg_tensor_dtype(y), dt);
            cr_expect(tg_tensor_requires_grad(y));
            cr_expect(!tg_tensor_is_leaf(y));
            cr_expect_eq(tg_tensor_input(y, 0), x);
            expect_shape(what, y, 1, TS_SHAPE(5));
            expect_elems(what, y, k->y, 5, false);
            backward_seed(y, dy);
            double want[5];
            for (int i = 0; i < 5; i++)
                want[i] = dy[i] * k->d[i];
            expect_elems(what, x, want, 5, true);
        }
    }
}

Test(ops, unary_keeps_shape_including_0d)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(0.25), true);
        tg_tensor *y = tg_sqrt(tape, tg_exp(tape, tg_scale(tape, s, 8.0)));
        expect_shape("0-d", y, 0, NULL);
        EXPECT_VALUES("sqrt(exp(8x)) at 0.25", y, exp(1.0));
        backward(y);
        EXPECT_GRAD("d sqrt(exp(8x)) at 0.25", s, 4 * exp(1.0));
        size_t sh[4] = {2, 1, 3, 2};
        tg_tensor *x4 = iota(dt, 4, sh, -6, 1, false);
        tg_tensor *r = tg_relu(tape, x4);
        expect_shape("4-D relu", r, 4, sh);
        for (size_t i = 0; i < 12; i++)
            cr_expect_eq(tg_tensor_get(r, i), i < 6 ? 0.0 : (double)i - 6);
        cr_expect(!tg_tensor_requires_grad(r), "relu of a leaf without grad requires grad");
    }
}

/* ---- kinks and edges -------------------------------------------------------------------- */

Test(ops, kink_relu_abs_at_zero)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-0.0, 0.0, 1.0), true);
        tg_tensor *r = tg_relu(tape, x);
        EXPECT_VALUES("relu(0)", r, 0, 0, 1);
        backward_seed(r, TS_VALS(5, 5, 5));
        EXPECT_GRAD("relu'(0) = 0", x, 0, 0, 5);
        cr_expect_eq(tg_tensor_grad_get(x, 0), 0.0);
        cr_expect_eq(tg_tensor_grad_get(x, 1), 0.0);

        tg_tensor *z = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-0.0, 0.0, -1.0), true);
        tg_tensor *a = tg_abs(tape, z);
        EXPECT_VALUES("abs(0)", a, 0, 0, 1);
        backward_seed(a, TS_VALS(5, 5, 5));
        cr_expect_eq(tg_tensor_grad_get(z, 0), 0.0, "abs'(-0) = %g", tg_tensor_grad_get(z, 0));
        cr_expect_eq(tg_tensor_grad_get(z, 1), 0.0, "abs'(0) = %g", tg_tensor_grad_get(z, 1));
        cr_expect_eq(tg_tensor_grad_get(z, 2), -5.0);
    }
}

Test(ops, kink_sqrt_at_zero)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(0, 4), true);
        tg_tensor *y = tg_sqrt(tape, x);
        EXPECT_VALUES("sqrt(0)", y, 0, 2);
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        cr_expect(isinf(tg_tensor_grad_get(x, 0)) && tg_tensor_grad_get(x, 0) > 0,
                  "sqrt'(0) = %g (%s), expected +inf", tg_tensor_grad_get(x, 0),
                  tg_dtype_name(dt));
        EXPECT_GRAD("sqrt'", x, INFINITY, 0.25);
    }
}

Test(ops, kink_log_at_zero_and_negative)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, -1, 1), true);
        tg_tensor *y = tg_log(tape, x);
        double y0 = tg_tensor_get(y, 0), y1 = tg_tensor_get(y, 1);
        cr_expect(isinf(y0) && y0 < 0, "log(0) = %g (%s), expected -inf", y0, tg_dtype_name(dt));
        cr_expect(isnan(y1), "log(-1) = %g (%s), expected NaN", y1, tg_dtype_name(dt));
        cr_expect_eq(tg_tensor_get(y, 2), 0.0);
        backward_seed(y, TS_VALS(1, 1, 1));
        double g0 = tg_tensor_grad_get(x, 0);
        cr_expect(isinf(g0) && g0 > 0, "log'(0) = %g (%s), expected +inf", g0, tg_dtype_name(dt));
        EXPECT_GRAD("log'", x, INFINITY, -1, 1);
    }
}

Test(ops, kink_pow)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* x^0 = 1 everywhere (C's pow(0, 0) = 1), so its derivative is 0, also at 0. */
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, -2, 3), true);
        tg_tensor *y = tg_pow(tape, x, 0.0);
        EXPECT_VALUES("pow(x, 0)", y, 1, 1, 1);
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        EXPECT_GRAD("d pow(x, 0)", x, 0, 0, 0);
        /* At 0: x^2 has slope 0, x^1 slope 1, x^0.5 slope +inf (C's pow(0, -0.5) = inf). */
        tg_tensor *z = own_leaf(dt, 1, TS_SHAPE(1), TS_VALS(0), true);
        tg_tensor *z2 = tg_pow(tape, z, 2.0), *z1 = tg_pow(tape, z, 1.0);
        backward(tg_sum(tape, tg_add(tape, z2, z1), TG_ALL_AXES, false));
        EXPECT_GRAD("d (x^2 + x^1) at 0", z, 1);
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(0, -4), true);
        tg_tensor *h = tg_pow(tape, w, 0.5);
        EXPECT_VALUES("pow(x, 0.5) at 0 and -4", h, 0, NAN);
        backward_seed(h, TS_VALS(1, 1));
        EXPECT_GRAD("d pow(x, 0.5) at 0 and -4", w, INFINITY, NAN);
    }
}

Test(ops, kink_clamp_bounds)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* The gradient passes on the bounds themselves. */
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(-1, 2, -1.5, 2.5), true);
        tg_tensor *y = tg_clamp(tape, x, -1, 2);
        EXPECT_VALUES("clamp on bounds", y, -1, 2, -1, 2);
        backward_seed(y, TS_VALS(3, 4, 5, 6));
        EXPECT_GRAD("clamp' on bounds", x, 3, 4, 0, 0);
        /* Infinite bounds clamp on one side only. */
        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-1e30, 0, 1e30), true);
        EXPECT_VALUES("clamp(-inf, 0.5)", tg_clamp(tape, u, -INFINITY, 0.5), -1e30, 0, 0.5);
    }
}

Test(ops, kink_max_ties)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Along axis 1: row 0 ties 3 at columns 0 and 2; row 1 ties 2 at columns 0 and 1. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(3, 1, 3, 2, 2, 0), true);
        tg_tensor *m = tg_max(tape, x, 1, false);
        EXPECT_VALUES("max ties axis 1", m, 3, 2);
        backward_seed(m, TS_VALS(2, -3));
        EXPECT_GRAD("max ties axis 1: first maximum", x, 2, 0, 0, -3, 0, 0);

        /* Along axis 0: column 0 and column 1 tie. */
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 4, 2, 1, 4, 5), true);
        tg_tensor *my = tg_max(tape, y, 0, true);
        EXPECT_SHAPE("max axis 0 keepdim", my, 2, 1, 3);
        EXPECT_VALUES("max ties axis 0", my, 1, 4, 5);
        backward_seed(my, TS_VALS(1, 2, 3));
        EXPECT_GRAD("max ties axis 0: first maximum", y, 1, 2, 0, 0, 0, 3);

        /* Over all elements: 5 at flat 1, 3 and 5. */
        tg_tensor *z = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 5, 2, 5, 0, 5), true);
        tg_tensor *mz = tg_max(tape, z, TG_ALL_AXES, false);
        expect_shape("max all", mz, 0, NULL);
        EXPECT_VALUES("max all", mz, 5);
        backward(mz);
        EXPECT_GRAD("max all: first maximum", z, 0, 1, 0, 0, 0, 0);

        /* Along a middle axis of a 3-D tensor with ties: (2,2,2), axis 1. */
        tg_tensor *w = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(7, 1, 7, 2, 0, 9, -1, 9), true);
        tg_tensor *mw = tg_max(tape, w, -2, false);
        EXPECT_SHAPE("max axis -2", mw, 2, 2, 2);
        EXPECT_VALUES("max axis -2", mw, 7, 2, 0, 9);
        backward_seed(mw, TS_VALS(1, 2, 3, 4));
        EXPECT_GRAD("max axis -2: first maximum", w, 1, 0, 0, 2, 3, 4, 0, 0);
    }
}

/* ---- numerical stability ----------------------------------------------------------------- */

Test(ops, stable_sigmoid)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(1000, -1000), true);
        tg_tensor *y = tg_sigmoid(tape, x);
        cr_expect_eq(tg_tensor_get(y, 0), 1.0, "sigmoid(1000) = %.17g (%s)", tg_tensor_get(y, 0),
                     tg_dtype_name(dt));
        cr_expect_eq(tg_tensor_get(y, 1), 0.0, "sigmoid(-1000) = %.17g (%s)",
                     tg_tensor_get(y, 1), tg_dtype_name(dt));
        backward_seed(y, TS_VALS(1, 1));
        for (size_t i = 0; i < 2; i++)
            cr_expect(tg_tensor_grad_get(x, i) == 0.0, "sigmoid'(%g) = %g (%s), expected 0",
                      tg_tensor_get(x, i), tg_tensor_grad_get(x, i), tg_dtype_name(dt));

        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1000, -1000, 0), true);
        tg_tensor *ls = tg_log_sigmoid(tape, u);
        EXPECT_VALUES("log_sigmoid at +-1000, 0", ls, 0, -1000, -log(2.0));
        backward_seed(ls, TS_VALS(1, 1, 1));
        EXPECT_GRAD("log_sigmoid' at +-1000, 0", u, 0, 1, 0.5);
    }
    tg_tape_reset(tape);
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(-800, -745, -30), true);
    tg_tensor *y = tg_sigmoid(tape, x);
    for (size_t i = 0; i < 3; i++) {
        double v = tg_tensor_get(y, i);
        cr_expect(v >= 0 && !isnan(v), "sigmoid(%g) = %g", tg_tensor_get(x, i), v);
    }
    ts_assert_close(tg_tensor_get(y, 2), exp(-30.0), 0, 1e-12, "sigmoid(-30)");
    backward_seed(y, TS_VALS(1, 1, 1));
    for (size_t i = 0; i < 3; i++) {
        double g = tg_tensor_grad_get(x, i);
        cr_expect(isfinite(g) && g >= 0, "sigmoid'(%g) = %g", tg_tensor_get(x, i), g);
    }
}

/* tanh is the library's own (tg__tanh, core/detmath.h): against correctly rounded values (computed
 * to 200 bits), within 2 units in the last place in f64 and 1 in f32; against long double
 * tanhl over a dense sweep, within 2.5 ulp; the same bits from the vectorized, threaded loop of
 * a large tensor as from the scalar function; and IEEE behaviour at the edges. */
static double ulps_between(double a, double b) /* finite, same sign */
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    return (double)(ia > ib ? ia - ib : ib - ia);
}

Test(ops, tanh_accuracy)
{
    static const double table[][2] = { /* x, tanh(x) correctly rounded */
        {0x0.0000000000001p-1022, 0x0.0000000000001p-1022},
        {-0x1.0000000000000p-1022, -0x1.0000000000000p-1022},
        {0x1.56e1fc2f8f359p-997, 0x1.56e1fc2f8f359p-997},
        {0x1.14b37f4b51f71p-55, 0x1.14b37f4b51f71p-55},
        {-0x1.0000000000000p-28, -0x1.0000000000000p-28},
        {0x1.5798ee2308c3ap-27, 0x1.5798ee2308c3ap-27},
        {0x1.4f8b588e368f1p-17, 0x1.4f8b588e06854p-17},
        {-0x1.0624dd2f1a9fcp-10, -0x1.0624d77516ce2p-10},
        {0x1.0000000000000p-4, 0x1.ff55997e030d7p-5},
        {0x1.999999999999ap-4, 0x1.983d7795f413ap-4},
        {-0x1.fbe76c8b43958p-4, -0x1.f951157efcb67p-4},
        {0x1.624dd2f1a9fbep-3, 0x1.5ecfa7cd27c20p-3},
        {0x1.bfe5c91d14e3cp-3, 0x1.b8e404494e54fp-3},
        {-0x1.0000000000000p-2, -0x1.f597ea69a1c86p-3},
        {0x1.62d0e56041893p-2, 0x1.55442f64fb9aap-2},
        {0x1.62eb1c432ca58p-2, 0x1.555b7cb87b1cap-2},
        {-0x1.999999999999ap-2, -0x1.8511573c242d6p-2},
        {0x1.0000000000000p-1, 0x1.d9353d7568af3p-2},
        {0x1.193ea7aad030ap-1, 0x1.fffffffffffffp-2},
        {-0x1.193ea7aad030bp-1, -0x1.0000000000000p-1},
        {0x1.199999999999ap-1, 0x1.00442f6419203p-1},
        {0x1.3333333333333p-1, 0x1.12f8292d2ccfcp-1},
        {-0x1.8000000000000p-1, -0x1.45323e552f228p-1},
        {0x1.0000000000000p+0, 0x1.85efab514f394p-1},
        {0x1.0a29c779a6b51p+0, 0x1.8e37d0361bb01p-1},
        {-0x1.8000000000000p+0, -0x1.cf6f9786df577p-1},
        {0x1.0000000000000p+1, 0x1.ed9505e1bc3d4p-1},
        {0x1.8000000000000p+1, 0x1.fd77d111a0b00p-1},
        {-0x1.4000000000000p+2, -0x1.fff419668df11p-1},
        {0x1.0000000000000p+3, 0x1.fffff872a91f8p-1},
        {0x1.4000000000000p+3, 0x1.ffffffdc96f35p-1},
        {-0x1.e000000000000p+3, -0x1.ffffffffff96ap-1},
        {0x1.2333333333333p+4, 0x1.ffffffffffffdp-1},
        {0x1.30f5c28f5c28fp+4, 0x1.fffffffffffffp-1},
        {-0x1.4000000000000p+4, -0x1.0000000000000p+0},
        {0x1.5e66666666666p+4, 0x1.0000000000000p+0},
        {0x1.6000000000000p+4, 0x1.0000000000000p+0},
        {-0x1.f400000000000p+9, -0x1.0000000000000p+0},
        {0x1.4b9ad0f953a6ep-2, 0x1.407aca1f67fc1p-2},
        {0x1.34f0696513270p-3, 0x1.329dec967c6b5p-3},
        {-0x1.4d474883171ffp-1, -0x1.2504562fdc6d6p-1},
        {0x1.28b2f3a47e100p-4, 0x1.282e6264aecfbp-4},
        {0x1.125f2046063a0p-1, 0x1.f59f08539b1a5p-2},
        {-0x1.767727ca98cc2p-2, -0x1.669eca4e3719bp-2},
        {0x1.db208fa389760p-5, 0x1.da985bd805062p-5},
        {0x1.03ce9dcdbd9d7p-1, 0x1.df2ceea75e31ap-2},
        {-0x1.c9939ff9c1ac8p+0, -0x1.e416cc1ebf650p-1},
        {0x1.4368ef2b205fcp+3, 0x1.ffffffe362e4fp-1},
        {0x1.3bc57910dcde3p+1, 0x1.f8ae86fa711cap-1},
        {-0x1.73d62a1926e16p+1, -0x1.fcf08c54ac3a9p-1},
        {0x1.3d46e298f71cbp+3, 0x1.ffffffd605115p-1},
        {0x1.25d28329bfc21p+4, 0x1.ffffffffffffep-1},
    };
    const size_t n_table = sizeof table / sizeof table[0];
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        for (size_t i = 0; i < n_table; i++) {
            double x = table[i][0], want = table[i][1];
            if (dt == TG_F32 && fabs(x) < 0x1p-126)
                continue; /* not a normal float */
            tg_tensor *y = tg_tanh(tape, own_leaf(dt, 0, NULL, &x, false));
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            double got = tg_tensor_get(y, 0);
            double err = dt == TG_F64 ? ulps_between(got, want)
                                      : fabs(got - (float)want) /
                                            (nextafterf(fabsf((float)want), INFINITY) -
                                             fabsf((float)want));
            cr_expect(err <= (dt == TG_F64 ? 2 : 1), "tanh(%a) = %a, want %a: %g ulp (%s)", x, got,
                      want, err, tg_dtype_name(dt));
        }
    }

    /* A sweep: magnitudes 2^-30 .. 2^5, both signs, as one tensor (long enough for threads). */
    enum { N = 100000 };
    double *xs = malloc(N * sizeof *xs);
    cr_assert_not_null(xs);
    for (size_t i = 0; i < N; i++) {
        double m = exp2(-30.0 + 35.0 * (double)i / N) * (1 + 0.37 * (double)(i % 7) / 7);
        xs[i] = i % 2 ? -m : m;
    }
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(N), xs, false);
    tg_tensor *y = tg_tanh(tape, x);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const double *ys = tg_tensor_data(y);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < N; i++) {
        long double ref = tanhl((long double)xs[i]);
        double r = (double)ref;
        double ulp = nextafter(fabs(r), INFINITY) - fabs(r);
        double err = (double)(fabsl((long double)ys[i] - ref) / ulp);
        if (err > worst) {
            worst = err;
            worst_x = xs[i];
        }
        double scalar = tg__tanh(xs[i]);
        cr_assert(memcmp(&ys[i], &scalar, sizeof scalar) == 0,
                  "tanh(%a): %a from the tensor loop, %a from the scalar function", xs[i], ys[i],
                  scalar);
        double neg = tg__tanh(-xs[i]);
        cr_assert(ys[i] == -neg, "tanh is odd: tanh(%a) = %a, tanh(-x) = %a", xs[i], ys[i], neg);
    }
    cr_expect(worst <= 2.5, "tanh: %g ulp at %a", worst, worst_x);
    free(xs);

    /* The edges: signed zero, infinities, NaN, the largest finite values. */
    const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, DBL_MAX, -DBL_MAX, 22.0, -22.0};
    const double want[] = {0.0, -0.0, 1.0, -1.0, NAN, 1.0, -1.0, 1.0, -1.0};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        double got = tg__tanh(edge[i]);
        cr_expect(isnan(want[i]) ? isnan(got)
                                 : got == want[i] && signbit(got) == signbit(want[i]),
                  "tanh(%g) = %g, want %g", edge[i], got, want[i]);
    }
}

Test(ops, stable_logsumexp_softmax)
{
    const double ln2 = log(2.0);
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Row 0: [1000, 1000]; row 1: [-1000, 0]. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1000, 1000, -1000, 0), true);
        tg_tensor *l = tg_logsumexp(tape, x, 1, false);
        EXPECT_VALUES("logsumexp at +-1000", l, 1000 + ln2, 0);
        backward_seed(l, TS_VALS(1, 1));
        EXPECT_GRAD("logsumexp' at +-1000", x, 0.5, 0.5, 0, 1);

        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1000, 1000, -1000, 0), true);
        tg_tensor *s = tg_softmax(tape, a, -1);
        EXPECT_VALUES("softmax at +-1000", s, 0.5, 0.5, 0, 1);
        backward_seed(s, TS_VALS(1, 0, 1, 0));
        /* dx = y * (dy - <dy, y>): row 0: 0.5 * (1 - 0.5), 0.5 * (0 - 0.5); row 1: 0, 0 */
        EXPECT_GRAD("softmax' at +-1000", a, 0.25, -0.25, 0, 0);

        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1000, 1000, -1000, 0), true);
        tg_tensor *ls = tg_log_softmax(tape, b, 1);
        EXPECT_VALUES("log_softmax at +-1000", ls, -ln2, -ln2, -1000, 0);
        backward_seed(ls, TS_VALS(1, 0, 1, 0));
        /* dx = dy - softmax * sum(dy) */
        EXPECT_GRAD("log_softmax' at +-1000", b, 0.5, -0.5, 1, -1);

        /* All -inf: logsumexp is -inf (not NaN). */
        tg_tensor *n =
            own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-INFINITY, -INFINITY, -INFINITY), false);
        tg_tensor *ln = tg_logsumexp(tape, n, 0, false);
        double v = tg_tensor_item(ln);
        cr_expect(isinf(v) && v < 0, "logsumexp(all -inf) = %g (%s)", v, tg_dtype_name(dt));
        /* One -inf among finite values contributes nothing. */
        tg_tensor *m = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-INFINITY, 0, 0), false);
        EXPECT_VALUES("logsumexp with a -inf", tg_logsumexp(tape, m, 0, false), ln2);
        EXPECT_VALUES("softmax with a -inf", tg_softmax(tape, m, 0), 0, 0.5, 0.5);
    }
}

/* ---- elementwise binary and broadcasting ---------------------------------------------------- */

static tg_tensor *apply_binary(tg_op op, tg_tensor *a, tg_tensor *b)
{
    return ts_apply(tape, op, a, b, NULL);
}

Test(ops, binary_same_shape)
{
    static const double A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {0.5, -1, 2, 4, -0.25, 8};
    static const double DY[6] = {1, -2, 0.5, 3, -1, 2};
    static const struct {
        tg_op op;
        double y[6], da[6], db[6];
    } cases[] = {
        {TG_OP_ADD, {1.5, 1, 5, 8, 4.75, 14}, {1, -2, 0.5, 3, -1, 2}, {1, -2, 0.5, 3, -1, 2}},
        {TG_OP_SUB, {0.5, 3, 1, 0, 5.25, -2}, {1, -2, 0.5, 3, -1, 2}, {-1, 2, -0.5, -3, 1, -2}},
        {TG_OP_MUL, {0.5, -2, 6, 16, -1.25, 48}, {0.5, 2, 1, 12, 0.25, 16},
         {1, -4, 1.5, 12, -5, 12}},
        {TG_OP_DIV, {2, -2, 1.5, 1, -20, 0.75}, {2, 2, 0.25, 0.75, 4, 0.25},
         {-4, 4, -0.375, -0.75, 80, -0.1875}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            const char *name = tg_op_name(cases[ci].op);
            tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 3), A, true);
            tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(2, 3), B, true);
            tg_tensor *y = apply_binary(cases[ci].op, a, b);
            expect_shape(name, y, 2, TS_SHAPE(2, 3));
            cr_expect_eq(tg_tensor_op(y), (int)cases[ci].op);
            expect_elems(name, y, cases[ci].y, 6, false);
            backward_seed(y, DY);
            expect_elems(name, a, cases[ci].da, 6, true);
            expect_elems(name, b, cases[ci].db, 6, true);
        }
    }
}

Test(ops, binary_fan_out_same_tensor_both_sides)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        backward_seed(tg_mul(tape, x, x), TS_VALS(1, 2, -1));
        EXPECT_GRAD("mul(x, x): 2x dy", x, 2, -8, -6);
        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *s = tg_add(tape, u, u);
        EXPECT_VALUES("add(x, x)", s, 2, -4, 6);
        backward_seed(s, TS_VALS(1, 2, -1));
        EXPECT_GRAD("add(x, x): 2 dy", u, 2, 4, -2);
        tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *d = tg_sub(tape, v, v);
        EXPECT_VALUES("sub(x, x)", d, 0, 0, 0);
        backward_seed(d, TS_VALS(1, 2, -1));
        EXPECT_GRAD("sub(x, x)", v, 0, 0, 0);
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *q = tg_div(tape, w, w);
        EXPECT_VALUES("div(x, x)", q, 1, 1, 1);
        backward_seed(q, TS_VALS(1, 2, -1));
        EXPECT_GRAD("div(x, x)", w, 0, 0, 0);
    }
}

Test(ops, broadcast_output_shapes)
{
    static const struct {
        int ra;
        size_t a[4];
        int rb;
        size_t b[4];
        int ry;
        size_t y[4];
    } cases[] = {
        {3, {2, 1, 4}, 2, {3, 1}, 3, {2, 3, 4}},
        {2, {3, 1}, 3, {2, 1, 4}, 3, {2, 3, 4}},
        {2, {3, 1}, 2, {1, 4}, 2, {3, 4}},
        {3, {2, 3, 4}, 1, {4}, 3, {2, 3, 4}},
        {1, {4}, 3, {2, 3, 4}, 3, {2, 3, 4}},
        {0, {0}, 2, {2, 3}, 2, {2, 3}},
        {2, {2, 3}, 0, {0}, 2, {2, 3}},
        {0, {0}, 0, {0}, 0, {0}},
        {1, {1}, 0, {0}, 1, {1}},
        {2, {1, 1}, 1, {3}, 2, {1, 3}},
        {4, {2, 1, 3, 1}, 3, {4, 1, 5}, 4, {2, 4, 3, 5}},
        {2, {0, 3}, 1, {3}, 2, {0, 3}},
        {2, {0, 3}, 2, {1, 1}, 2, {0, 3}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            tg_tensor *a = own(tg_tensor_zeros(dt, cases[ci].ra, cases[ci].a));
            tg_tensor *b = own(tg_tensor_ones(dt, cases[ci].rb, cases[ci].b));
            tg_tensor_set_requires_grad(a, true);
            tg_tensor_set_requires_grad(b, true);
            char sa[64], sb[64], what[160];
            snprintf(what, sizeof what, "%s op %s", shape_str(sa, sizeof sa, a),
                     shape_str(sb, sizeof sb, b));
            for (tg_op op = TG_OP_ADD; op <= TG_OP_DIV; op++) {
                tg_tensor *y = apply_binary(op, a, b);
                expect_shape(what, y, cases[ci].ry, cases[ci].y);
                /* The VJPs give each input a gradient of its own shape. */
                tg_tensor *g[2] = {NULL, NULL};
                tg_tensor *xs[2] = {a, b};
                tg_status st = tg_grad(tape, tg_sum(tape, y, TG_ALL_AXES, false), xs, 2, g);
                cr_assert_eq(st, TG_OK, "%s: grad: %s", what, tg_last_error());
                expect_shape(what, g[0], cases[ci].ra, cases[ci].a);
                expect_shape(what, g[1], cases[ci].rb, cases[ci].b);
                tg_tensor_free(g[0]);
                tg_tensor_free(g[1]);
            }
        }
    }
}

Test(ops, broadcast_values_and_vjp_sum_over_broadcast_axes)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* [2,1,4] + [3,1] -> [2,3,4]: y[i,j,k] = (10i + k) + 100j */
        tg_tensor *a =
            own_leaf(dt, 3, TS_SHAPE(2, 1, 4), TS_VALS(0, 1, 2, 3, 10, 11, 12, 13), true);
        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(0, 100, 200), true);
        tg_tensor *y = tg_add(tape, a, b);
        EXPECT_SHAPE("[2,1,4] + [3,1]", y, 3, 2, 3, 4);
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 4; k++) {
                    double got = tg_tensor_get(y, (i * 3 + j) * 4 + k);
                    cr_expect_eq(got, 10.0 * (double)i + (double)k + 100.0 * (double)j,
                                 "y[%zu,%zu,%zu] = %g", i, j, k, got);
                }
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,1,4] + [3,1]: da sums over the 3", a, 3, 3, 3, 3, 3, 3, 3, 3);
        EXPECT_GRAD("[2,1,4] + [3,1]: db sums over 2x4", b, 8, 8, 8);

        /* [1,4] + [3,1] with a seed: da[k] = column sums of dy, db[j] = row sums. */
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 4), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(10, 20, 30), true);
        tg_tensor *rc = tg_add(tape, r, c);
        EXPECT_VALUES("[1,4] + [3,1]", rc, 11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 34);
        backward_seed(rc, TS_VALS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
        EXPECT_GRAD("[1,4] + [3,1]: da", r, 15, 18, 21, 24);
        EXPECT_GRAD("[1,4] + [3,1]: db", c, 10, 26, 42);

        /* [2,3] (op) [3]: sub, mul, div with exact gradients. */
        tg_tensor *m = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *ys = tg_sub(tape, m, v);
        EXPECT_VALUES("[2,3] - [3]", ys, 0, 0, -1, 3, 3, 2);
        backward(tg_sum(tape, ys, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] - [3]: da", m, 1, 1, 1, 1, 1, 1);
        EXPECT_GRAD("[2,3] - [3]: db", v, -2, -2, -2);

        tg_tensor *m2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v2 = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *ym = tg_mul(tape, m2, v2);
        EXPECT_VALUES("[2,3] * [3]", ym, 1, 4, 12, 4, 10, 24);
        backward(tg_sum(tape, ym, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] * [3]: da = b", m2, 1, 2, 4, 1, 2, 4);
        EXPECT_GRAD("[2,3] * [3]: db = column sums of a", v2, 5, 7, 9);

        tg_tensor *m3 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v3 = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *yd = tg_div(tape, m3, v3);
        EXPECT_VALUES("[2,3] / [3]", yd, 1, 1, 0.75, 4, 2.5, 1.5);
        backward(tg_sum(tape, yd, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] / [3]: da = 1/b", m3, 1, 0.5, 0.25, 1, 0.5, 0.25);
        EXPECT_GRAD("[2,3] / [3]: db = -sum a / b^2", v3, -5, -1.75, -0.5625);

        /* 0-d with [2,3], both orders, with a seed. */
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *t = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *st = tg_mul(tape, s, t);
        EXPECT_SHAPE("0-d * [2,3]", st, 2, 2, 3);
        EXPECT_VALUES("0-d * [2,3]", st, 2, 4, 6, 8, 10, 12);
        backward_seed(st, TS_VALS(1, 1, 1, 1, 1, -1));
        EXPECT_GRAD("0-d * [2,3]: ds = sum(dy * t)", s, 9);
        EXPECT_GRAD("0-d * [2,3]: dt = dy * s", t, 2, 2, 2, 2, 2, -2);
        tg_tensor *s2 = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *t2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *ts = tg_sub(tape, t2, s2);
        EXPECT_VALUES("[2,3] - 0-d", ts, -1, 0, 1, 2, 3, 4);
        backward_seed(ts, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("[2,3] - 0-d: ds", s2, -21);
        EXPECT_GRAD("[2,3] - 0-d: dt", t2, 1, 2, 3, 4, 5, 6);

        /* [2,3,4] + [4]: db sums over 2x3. */
        size_t sh[3] = {2, 3, 4};
        tg_tensor *big = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *bias = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(0.5, -1, 2, 0), true);
        tg_tensor *yb = tg_add(tape, big, bias);
        cr_expect_eq(tg_tensor_get(yb, 23), 23.0);
        cr_expect_eq(tg_tensor_get(yb, 5), 4.0);
        backward(tg_sum(tape, yb, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3,4] + [4]: db", bias, 6, 6, 6, 6);
    }
}

/* ---- reductions ---------------------------------------------------------------------------- */

Test(ops, reduce_shapes_keepdim_negative_axes_all)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        size_t sh[3] = {2, 3, 4};
        tg_tensor *x = iota(dt, 3, sh, 0, 1, false);
        tg_tensor *(*const fns[])(tg_tape *, tg_tensor *, int, bool) = {tg_sum, tg_mean, tg_max,
                                                                        tg_logsumexp};
        for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
            EXPECT_SHAPE("axis 0", fns[f](tape, x, 0, false), 2, 3, 4);
            EXPECT_SHAPE("axis 1", fns[f](tape, x, 1, false), 2, 2, 4);
            EXPECT_SHAPE("axis 2", fns[f](tape, x, 2, false), 2, 2, 3);
            EXPECT_SHAPE("axis -1", fns[f](tape, x, -1, false), 2, 2, 3);
            EXPECT_SHAPE("axis -3", fns[f](tape, x, -3, false), 2, 3, 4);
            EXPECT_SHAPE("axis 1 keepdim", fns[f](tape, x, 1, true), 3, 2, 1, 4);
            EXPECT_SHAPE("axis -1 keepdim", fns[f](tape, x, -1, true), 3, 2, 3, 1);
            EXPECT_SHAPE("axis 0 keepdim", fns[f](tape, x, 0, true), 3, 1, 3, 4);
            expect_shape("all axes", fns[f](tape, x, TG_ALL_AXES, false), 0, NULL);
            EXPECT_SHAPE("all axes keepdim", fns[f](tape, x, TG_ALL_AXES, true), 3, 1, 1, 1);
            tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(1.5), false);
            tg_tensor *r0 = fns[f](tape, s, TG_ALL_AXES, false);
            expect_shape("0-d, all axes", r0, 0, NULL);
            ts_assert_close(tg_tensor_item(r0), 1.5, 0.1 * tol_of(dt), tol_of(dt),
                            "reduce of 0-d 1.5");
            tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), false);
            expect_shape("1-D axis 0 -> 0-d", fns[f](tape, v, 0, false), 0, NULL);
            EXPECT_SHAPE("1-D axis 0 keepdim", fns[f](tape, v, 0, true), 1, 1);
        }
        cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    }
}

Test(ops, reduce_sum_mean_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        EXPECT_VALUES("sum axis 0", tg_sum(tape, x, 0, false), 5, 7, 9);
        EXPECT_VALUES("sum axis 1", tg_sum(tape, x, 1, false), 6, 15);
        EXPECT_VALUES("sum axis -1 keepdim", tg_sum(tape, x, -1, true), 6, 15);
        EXPECT_VALUES("sum axis -2", tg_sum(tape, x, -2, false), 5, 7, 9);
        EXPECT_VALUES("sum all", tg_sum(tape, x, TG_ALL_AXES, false), 21);
        EXPECT_VALUES("sum all keepdim", tg_sum(tape, x, TG_ALL_AXES, true), 21);
        EXPECT_VALUES("mean axis 0", tg_mean(tape, x, 0, false), 2.5, 3.5, 4.5);
        EXPECT_VALUES("mean axis 1", tg_mean(tape, x, 1, true), 2, 5);
        EXPECT_VALUES("mean all", tg_mean(tape, x, TG_ALL_AXES, false), 3.5);

        backward_seed(tg_sum(tape, x, 1, false), TS_VALS(1, -2));
        EXPECT_GRAD("sum axis 1", x, 1, 1, 1, -2, -2, -2);
        tg_tensor *x2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward_seed(tg_mean(tape, x2, 0, true), TS_VALS(3, 6, -3));
        EXPECT_GRAD("mean axis 0: dy / 2", x2, 1.5, 3, -1.5, 1.5, 3, -1.5);
        tg_tensor *x3 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward(tg_mean(tape, x3, TG_ALL_AXES, false));
        EXPECT_GRAD("mean all: 1/6", x3, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0);
        tg_tensor *x4 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward(tg_sum(tape, x4, TG_ALL_AXES, true));
        EXPECT_GRAD("sum all keepdim", x4, 1, 1, 1, 1, 1, 1);

        /* 3-D, middle axis: sum_j (12i + 4j + k) = 36i + 12 + 3k. */
        size_t sh[3] = {2, 3, 4};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *sc = tg_sum(tape, c, 1, true);
        EXPECT_SHAPE("sum axis 1 keepdim", sc, 3, 2, 1, 4);
        EXPECT_VALUES("sum axis 1 keepdim", sc, 12, 15, 18, 21, 48, 51, 54, 57);
        tg_tensor *mc = tg_mean(tape, c, -1, false);
        EXPECT_VALUES("mean axis -1", mc, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5);
        backward_seed(tg_mean(tape, c, 1, false), TS_VALS(3, 6, 9, 12, -3, -6, -9, -12));
        double want[24];
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 4; k++)
                    want[(i * 3 + j) * 4 + k] = (i ? -1.0 : 1.0) * (double)(k + 1);
        expect_elems("mean axis 1 of [2,3,4]: dy / 3", c, want, 24, true);
    }
}

Test(ops, reduce_max_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 9, -3, 4, -5, 6), true);
        EXPECT_VALUES("max axis 0", tg_max(tape, x, 0, false), 4, 9, 6);
        EXPECT_VALUES("max axis 1", tg_max(tape, x, 1, false), 9, 6);
        EXPECT_VALUES("max all", tg_max(tape, x, TG_ALL_AXES, true), 9);
        backward_seed(tg_max(tape, x, 0, false), TS_VALS(1, 2, 3));
        EXPECT_GRAD("max axis 0", x, 0, 2, 0, 1, 0, 3);
        tg_tensor *n = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-7, -2, -5), true);
        tg_tensor *mn = tg_max(tape, n, -1, false);
        EXPECT_VALUES("max of negatives", mn, -2);
        backward(mn);
        EXPECT_GRAD("max of negatives", n, 0, 1, 0);
        size_t sh[3] = {2, 3, 4};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *m0 = tg_max(tape, c, 0, false);
        for (size_t i = 0; i < 12; i++)
            cr_expect_eq(tg_tensor_get(m0, i), 12.0 + (double)i);
        backward(tg_sum(tape, m0, TG_ALL_AXES, false));
        for (size_t i = 0; i < 24; i++)
            cr_expect_eq(tg_tensor_grad_get(c, i), i < 12 ? 0.0 : 1.0);
    }
}

Test(ops, reduce_logsumexp)
{
    const double l12 = 2 + log1p(exp(-1.0));
    const double p1 = 1 / (1 + exp(1.0)), p2 = 1 - p1; /* softmax([1, 2]) */
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(0, 0, 1, 2), true);
        tg_tensor *l = tg_logsumexp(tape, x, 1, false);
        EXPECT_VALUES("logsumexp axis 1", l, log(2.0), l12);
        backward_seed(l, TS_VALS(1, 2));
        EXPECT_GRAD("logsumexp axis 1: dy * softmax", x, 0.5, 0.5, 2 * p1, 2 * p2);
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(0, 1, 0, 2), true);
        tg_tensor *l0 = tg_logsumexp(tape, y, 0, true);
        EXPECT_SHAPE("logsumexp axis 0 keepdim", l0, 2, 1, 2);
        EXPECT_VALUES("logsumexp axis 0", l0, log(2.0), l12);
        tg_tensor *z = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, 0, 0), true);
        tg_tensor *lz = tg_logsumexp(tape, z, TG_ALL_AXES, false);
        EXPECT_VALUES("logsumexp all", lz, log(3.0));
        backward(lz);
        EXPECT_GRAD("logsumexp all", z, 1 / 3.0, 1 / 3.0, 1 / 3.0);
    }
}

Test(ops, softmax_values_and_vjp)
{
    const double e = exp(1.0), e2 = exp(2.0), e3 = exp(3.0), z = e + e2 + e3;
    const double p[3] = {e / z, e2 / z, e3 / z};
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Along axis 1: row 0 [1,2,3], row 1 all equal. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *s = tg_softmax(tape, x, 1);
        EXPECT_SHAPE("softmax", s, 2, 2, 3);
        EXPECT_VALUES("softmax axis 1", s, p[0], p[1], p[2], 1 / 3.0, 1 / 3.0, 1 / 3.0);
        backward_seed(s, TS_VALS(1, 0, 0, 0, 0, 0));
        /* dx = y (dy - <dy, y>) */
        EXPECT_GRAD("softmax axis 1", x, p[0] * (1 - p[0]), -p[1] * p[0], -p[2] * p[0], 0, 0, 0);

        /* Along axis 0 (by its negative index): column j is softmax([x0j, x1j]). */
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *s0 = tg_softmax(tape, y, -2);
        EXPECT_VALUES("softmax axis -2", s0, e / (e + 1), e2 / (e2 + 1), e3 / (e3 + 1),
                      1 / (e + 1), 1 / (e2 + 1), 1 / (e3 + 1));
        backward_seed(s0, TS_VALS(1, 1, 1, 1, 1, 1));
        EXPECT_GRAD("softmax: a constant dy gives 0", y, 0, 0, 0, 0, 0, 0);

        /* log_softmax = x - logsumexp; dx = dy - softmax * sum(dy). */
        tg_tensor *w = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *ls = tg_log_softmax(tape, w, -1);
        double lz = log(z);
        EXPECT_VALUES("log_softmax axis -1", ls, 1 - lz, 2 - lz, 3 - lz, -log(3.0), -log(3.0),
                      -log(3.0));
        backward_seed(ls, TS_VALS(1, 0, 0, 1, 1, 1));
        EXPECT_GRAD("log_softmax axis -1", w, 1 - p[0], -p[1], -p[2], 0, 0, 0);

        /* 3-D, middle axis, against exp/normalize done by hand. */
        size_t sh[3] = {2, 2, 2};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *sc = tg_softmax(tape, c, 1);
        /* pairs along axis 1 differ by 2: softmax([a, a+2]) = [1/(1+e^2), e^2/(1+e^2)] */
        double lo = 1 / (1 + e2), hi = e2 / (1 + e2);
        EXPECT_VALUES("softmax axis 1 of [2,2,2]", sc, lo, lo, hi, hi, lo, lo, hi, hi);
        tg_tensor *lc = tg_log_softmax(tape, c, 1);
        EXPECT_VALUES("log_softmax axis 1 of [2,2,2]", lc, log(lo), log(lo), log(hi), log(hi),
                      log(lo), log(lo), log(hi), log(hi));
    }
}

/* ---- matmul, transpose, reshape ----------------------------------------------------------- */

Test(ops, matmul_2d_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(3, 2), TS_VALS(7, 8, 9, 10, 11, 12), true);
        tg_tensor *y = tg_matmul(tape, a, b);
        EXPECT_SHAPE("matmul", y, 2, 2, 2);
        EXPECT_VALUES("[2,3] @ [3,2]", y, 58, 64, 139, 154);
        backward_seed(y, TS_VALS(1, -1, 2, 0.5));
        EXPECT_GRAD("matmul da = dy b^T", a, -1, -1, -1, 18, 23, 28);
        EXPECT_GRAD("matmul db = a^T dy", b, 9, 1, 12, 0.5, 15, 0);

        tg_tensor *p = own_leaf(dt, 2, TS_SHAPE(1, 1), TS_VALS(3), true);
        tg_tensor *q = own_leaf(dt, 2, TS_SHAPE(1, 1), TS_VALS(-2), true);
        tg_tensor *pq = tg_matmul(tape, p, q);
        EXPECT_VALUES("1x1x1", pq, -6);
        backward(pq);
        EXPECT_GRAD("1x1x1 da", p, -2);
        EXPECT_GRAD("1x1x1 db", q, 3);

        /* Outer product (3,1) @ (1,2) and inner product (1,3) @ (3,1). */
        tg_tensor *u = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(1, 2, 3), true);
        tg_tensor *v = own_leaf(dt, 2, TS_SHAPE(1, 2), TS_VALS(4, 5), true);
        tg_tensor *uv = tg_matmul(tape, u, v);
        EXPECT_SHAPE("outer", uv, 2, 3, 2);
        EXPECT_VALUES("outer", uv, 4, 5, 8, 10, 12, 15);
        backward(tg_sum(tape, uv, TG_ALL_AXES, false));
        EXPECT_GRAD("outer du", u, 9, 9, 9);
        EXPECT_GRAD("outer dv", v, 6, 6);
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 3), TS_VALS(1, 2, 3), false);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(4, 5, 6), false);
        tg_tensor *rc = tg_matmul(tape, r, c);
        EXPECT_VALUES("inner", rc, 32);
        cr_expect(!tg_tensor_requires_grad(rc));

        /* Fan-out: d sum(x @ x) / dx[a,b] = rowsum(x)[b] + colsum(x)[a]. */
        tg_tensor *s = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *ss = tg_matmul(tape, s, s);
        EXPECT_VALUES("x @ x", ss, 7, 10, 15, 22);
        backward(tg_sum(tape, ss, TG_ALL_AXES, false));
        EXPECT_GRAD("x @ x", s, 3 + 4, 7 + 4, 3 + 6, 7 + 6);
    }
}

Test(ops, matmul_batched_and_zero_inner)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(1, 2, 3, 4, 0, 1, -1, 2), true);
        tg_tensor *b = own_leaf(dt, 3, TS_SHAPE(2, 2, 1), TS_VALS(1, 1, 2, 3), true);
        tg_tensor *y = tg_matmul(tape, a, b);
        EXPECT_SHAPE("batched", y, 3, 2, 2, 1);
        EXPECT_VALUES("batched", y, 3, 7, 3, 4);
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        EXPECT_GRAD("batched da", a, 1, 1, 1, 1, 2, 3, 2, 3);
        EXPECT_GRAD("batched db", b, 4, 6, -1, 3);

        /* Batched with a seed: batch 1 gets dy 0, so its gradients are 0. */
        tg_tensor *a2 = own_leaf(dt, 3, TS_SHAPE(2, 1, 2), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *b2 = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(1, 0, 0, 1, 2, 0, 0, 2), true);
        tg_tensor *y2 = tg_matmul(tape, a2, b2);
        EXPECT_VALUES("batched (2,1,2)@(2,2,2)", y2, 1, 2, 6, 8);
        backward_seed(y2, TS_VALS(1, -1, 0, 0));
        EXPECT_GRAD("batched da2", a2, 1, -1, 0, 0);
        EXPECT_GRAD("batched db2", b2, 1, -1, 2, -2, 0, 0, 0, 0);

        /* K = 0: the product is all zeros (not garbage). */
        tg_tensor *e1 = own(tg_tensor_zeros(dt, 2, TS_SHAPE(2, 0)));
        tg_tensor *e2 = own(tg_tensor_zeros(dt, 2, TS_SHAPE(0, 3)));
        tg_tensor *ez = tg_matmul(tape, e1, e2);
        EXPECT_SHAPE("K = 0", ez, 2, 2, 3);
        EXPECT_VALUES("K = 0", ez, 0, 0, 0, 0, 0, 0);
    }
}

Test(ops, transpose_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *t = tg_transpose(tape, x);
        EXPECT_SHAPE("transpose", t, 2, 3, 2);
        EXPECT_VALUES("transpose", t, 1, 4, 2, 5, 3, 6);
        backward_seed(t, TS_VALS(10, 40, 20, 50, 30, 60));
        EXPECT_GRAD("transpose: dx = dy^T", x, 10, 20, 30, 40, 50, 60);
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 4), TS_VALS(1, 2, 3, 4), false);
        tg_tensor *tr = tg_transpose(tape, r);
        EXPECT_SHAPE("transpose row", tr, 2, 4, 1);
        EXPECT_VALUES("transpose row", tr, 1, 2, 3, 4);
        tg_tensor *tt = tg_transpose(tape, tg_transpose(tape, x));
        EXPECT_VALUES("transpose twice", tt, 1, 2, 3, 4, 5, 6);
    }
}

Test(ops, reshape_is_a_view)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *r = tg_reshape(tape, x, 2, TS_SHAPE(3, 2));
        EXPECT_SHAPE("reshape", r, 2, 3, 2);
        EXPECT_VALUES("reshape", r, 1, 2, 3, 4, 5, 6);
        cr_expect_eq(tg_tensor_data(r), tg_tensor_data(x), "reshape copied the values");
        backward_seed(r, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("reshape: dx = dy, same order", x, 1, 2, 3, 4, 5, 6);

        /* A view of a computed tensor, and through several reshapes. */
        tg_tensor *y = tg_scale(tape, x, 2.0);
        tg_tensor *f = tg_reshape(tape, y, 1, TS_SHAPE(6));
        cr_expect_eq(tg_tensor_data(f), tg_tensor_data(y));
        tg_tensor *g = tg_reshape(tape, f, 4, TS_SHAPE(1, 3, 1, 2));
        EXPECT_SHAPE("reshape 4-D", g, 4, 1, 3, 1, 2);
        EXPECT_VALUES("reshape of scale", g, 2, 4, 6, 8, 10, 12);

        /* 0-d <-> [1,1]. */
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(7), true);
        tg_tensor *s11 = tg_reshape(tape, s, 2, TS_SHAPE(1, 1));
        EXPECT_SHAPE("0-d -> [1,1]", s11, 2, 1, 1);
        tg_tensor *back = tg_reshape(tape, s11, 0, NULL);
        expect_shape("[1,1] -> 0-d", back, 0, NULL);
        EXPECT_VALUES("0-d round trip", back, 7);
        backward(tg_scale(tape, back, 3.0));
        EXPECT_GRAD("0-d round trip", s, 3);
        /* The shape argument is copied: changing it later changes nothing. */
        size_t dims[2] = {6, 1};
        tg_tensor *col = tg_reshape(tape, x, 2, dims);
        dims[0] = 99;
        EXPECT_SHAPE("shape copied", col, 2, 6, 1);
    }
}

/* ---- VJPs add into gradients, never overwrite ---------------------------------------------- */

/* Whether op takes a (2,3) and a (2,3): tried on a tape of its own. */
static bool takes_two_2x3(tg_op op)
{
    tg_tape *probe = tg_tape_new();
    tg_tensor *z = tg_tensor_zeros(TG_F64, 2, TS_SHAPE(2, 3));
    cr_assert(probe && z);
    bool ok = ts_apply(probe, op, z, z, NULL) != NULL;
    tg_tensor_free(z);
    tg_tape_free(probe);
    return ok;
}

/* The custom op of apply_any: y = a * b elementwise (same shapes), either dtype;
 * da += dy * b, db += dy * a. */
static tg_status custom_mul_forward(const tg_custom_call *c)
{
    const void *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    for (size_t i = 0, n = tg_tensor_numel(c->out); i < n; i++) {
        if (tg_tensor_dtype(c->out) == TG_F32)
            ((float *)c->y)[i] = ((const float *)a)[i] * ((const float *)b)[i];
        else
            ((double *)c->y)[i] = ((const double *)a)[i] * ((const double *)b)[i];
    }
    return TG_OK;
}

static tg_status custom_mul_vjp(const tg_custom_call *c)
{
    for (size_t k = 0; k < 2; k++) {
        const void *o = tg_tensor_data_const(c->in[1 - k]);
        for (size_t i = 0, n = tg_tensor_numel(c->out); c->dx[k] && i < n; i++) {
            if (tg_tensor_dtype(c->out) == TG_F32)
                ((float *)c->dx[k])[i] += ((const float *)c->dy)[i] * ((const float *)o)[i];
            else
                ((double *)c->dx[k])[i] += ((const double *)c->dy)[i] * ((const double *)o)[i];
        }
    }
    return TG_OK;
}

static const tg_custom_op CUSTOM_MUL = {
    .name = "custom_mul", .forward = custom_mul_forward, .vjp = custom_mul_vjp};

/* Any op of the table on a (2,3) and, for two inputs, b (2,3), or b seen as (3,2) when the op
 * takes no (2,3) partner (matmul), with attributes by kind: a constant 1.5, bounds
 * [0.6, 1.8], axis 0 (keepdim for reductions), the shape (3,1,2). The custom op is
 * CUSTOM_MUL of a and b. */
static tg_tensor *apply_any(tg_op op, tg_tensor *a, tg_tensor *b)
{
    if (op == TG_OP_CUSTOM) {
        tg_tensor *in[2] = {a, b};
        return tg_custom(tape, &CUSTOM_MUL, NULL, in, 2, tg_tensor_rank(a), tg_tensor_shape(a));
    }
    /* indexing and joins, on (2,3) operands: x[:, ::2], x[-1], concat/stack of (a, b),
     * take(x, [2, 0, -1, 0], 1), permute(x, [1, 0]) */
    switch (op) {
    case TG_OP_SLICE:
        return ts_apply(tape, op, a, NULL, &(tg_attrs){.axis = 1, .stop = TG_END, .step = 2});
    case TG_OP_SELECT: return ts_apply(tape, op, a, NULL, &(tg_attrs){.axis = 0, .index = -1});
    case TG_OP_CONCAT:
    case TG_OP_STACK:
        return tg_apply(tape, op, (tg_tensor *[]){a, b}, 2,
                        &(tg_attrs){.axis = op == TG_OP_CONCAT ? 1 : 0});
    case TG_OP_TAKE: {
        tg_tensor *idx = tg_tensor_dtype(a) == TG_F32
                             ? tg_constant(tape, TG_F32, 1, TS_SHAPE(4), (float[]){2, 0, -1, 0})
                             : tg_constant(tape, TG_F64, 1, TS_SHAPE(4), (double[]){2, 0, -1, 0});
        return ts_apply(tape, op, a, idx, &(tg_attrs){.axis = 1});
    }
    case TG_OP_PERMUTE: return ts_apply(tape, op, a, NULL, &(tg_attrs){.axes = {1, 0}});
    default: break;
    }
    const tg_attrs attrs = {.c = 1.5, .lo = 0.6, .hi = 1.8, .axis = 0, .keepdim = true,
                            .rank = 3, .shape = TS_SHAPE(3, 1, 2)};
    if (tg_op_arity(op) == 2 && !takes_two_2x3(op))
        b = tg_reshape(tape, b, 2, TS_SHAPE(3, 2));
    if (op == TG_OP_WHERE) { /* where(a - b, a, b): a where they differ, b where equal */
        tg_tensor *in[3] = {tg_sub(tape, a, b), a, b};
        return tg_apply(tape, op, in, 3, NULL);
    }
    return ts_apply(tape, op, a, b, &attrs);
}

/* For every differentiable op: its inputs are intermediates that another node, recorded
 * after it, also uses; so that node's VJP writes their gradient first and the op's VJP must
 * add to it. Backward runs twice, so leaf gradients must add across passes too. */
Test(ops, vjps_accumulate_into_existing_gradients)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        if (!tg_op_info_of((tg_op)op)->differentiable) /* const, detach, the comparisons */
            continue;
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            const char *name = tg_op_name((tg_op)op);
            tg_tensor *x =
                own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(0.5, 1.25, 2, 0.75, 1.5, 3), true);
            tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1.5, 0.5, 2, 1, 0.25, 4), true);
            /* The op's own gradient, through tg_grad (leaf grads untouched). */
            tg_tensor *xi = tg_scale(tape, x, 1.0), *bi = tg_scale(tape, b, 1.0);
            tg_tensor *ref = tg_sum(tape, tg_square(tape, apply_any((tg_op)op, xi, bi)),
                                    TG_ALL_AXES, false);
            tg_tensor *g[2] = {NULL, NULL}, *xs[2] = {x, b};
            cr_assert_eq(tg_grad(tape, ref, xs, 2, g), TG_OK, "%s: %s", name, tg_last_error());
            /* The same plus sum(xi) + sum(bi), recorded after the op. */
            tg_tape_reset(tape);
            xi = tg_scale(tape, x, 1.0);
            bi = tg_scale(tape, b, 1.0);
            tg_tensor *y = tg_sum(tape, tg_square(tape, apply_any((tg_op)op, xi, bi)),
                                  TG_ALL_AXES, false);
            y = tg_add(tape, y, tg_sum(tape, tg_add(tape, xi, bi), TG_ALL_AXES, false));
            backward(y);
            backward(y);
            for (size_t i = 0; i < 6; i++) {
                double wx = 2 * (tg_tensor_get(g[0], i) + 1), wb = 2 * (tg_tensor_get(g[1], i) + 1);
                double gx = tg_tensor_grad_get(x, i), gb = tg_tensor_grad_get(b, i);
                double tol = 4 * tol_of(dt);
                ts_assert_close(gx, wx, 0.1 * tol, tol, "%s (%s): dx[%zu]", name, tg_dtype_name(dt),
                                i);
                ts_assert_close(gb, wb, 0.1 * tol, tol, "%s (%s): db[%zu]", name, tg_dtype_name(dt),
                                i);
            }
            tg_tensor_free(g[0]);
            tg_tensor_free(g[1]);
        }
    }
}

/* ---- detach, no-grad, constants --------------------------------------------------------- */

Test(ops, detach_shares_values_and_stops_gradient)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *d = tg_detach(tape, x);
        cr_assert(d != NULL, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(d), TG_OP_DETACH);
        EXPECT_VALUES("detach", d, 1, -2, 3);
        cr_expect(!tg_tensor_requires_grad(d), "detach requires grad");
        /* sum(x * detach(x)): the gradient is x (the detached factor), not 2x. */
        tg_tensor *y = tg_sum(tape, tg_mul(tape, x, d), TG_ALL_AXES, false);
        backward(y);
        EXPECT_GRAD("through detach", x, 1, -2, 3);
        /* Nothing requires grad past a detach alone: backward refuses. */
        tg_tensor *z = tg_sum(tape, tg_exp(tape, d), TG_ALL_AXES, false);
        cr_expect(!tg_tensor_requires_grad(z));
        cr_expect_eq(tg_backward(tape, z), TG_EINVAL);
        cr_expect_eq(tg_tape_status(tape), TG_OK, "a refused backward poisoned the tape");
        /* Detach of an intermediate. */
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), true);
        tg_tensor *sq = tg_square(tape, w);
        tg_tensor *q = tg_add(tape, sq, tg_detach(tape, sq)); /* value 2w^2, gradient 2w */
        EXPECT_VALUES("w^2 + detach(w^2)", q, 2, 8, 18);
        backward(tg_sum(tape, q, TG_ALL_AXES, false));
        EXPECT_GRAD("w^2 + detach(w^2)", w, 2, 4, 6);
    }
}

Test(ops, no_grad_mode)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        cr_expect(tg_tape_grad_enabled(tape));
        bool was = tg_tape_set_grad_enabled(tape, false);
        cr_expect(was, "grad recording was off by default");
        cr_expect(!tg_tape_grad_enabled(tape));
        tg_tensor *y = tg_mul(tape, x, x);
        cr_assert(y != NULL, "%s", tg_tape_error(tape));
        cr_expect(!tg_tensor_requires_grad(y), "no-grad result requires grad");
        EXPECT_VALUES("no-grad values", y, 1, 4, 9);
        tg_tensor *ys = tg_sum(tape, y, TG_ALL_AXES, false);
        cr_expect(!tg_tensor_requires_grad(ys));
        cr_expect_eq(tg_backward(tape, ys), TG_EINVAL);
        /* Nested scopes restore the previous setting. */
        bool inner = tg_tape_set_grad_enabled(tape, false);
        cr_expect(!inner);
        tg_tape_set_grad_enabled(tape, inner);
        cr_expect(!tg_tape_grad_enabled(tape));
        cr_expect(!tg_tape_set_grad_enabled(tape, was));
        cr_expect(tg_tape_grad_enabled(tape));
        /* y (recorded without grad) is a constant to what follows: d sum(y x) / dx = y. */
        tg_tensor *z = tg_mul(tape, y, x);
        cr_expect(tg_tensor_requires_grad(z));
        backward(tg_sum(tape, z, TG_ALL_AXES, false));
        EXPECT_GRAD("gradient only through the graded path", x, 1, 4, 9);
    }
}

Test(ops, constants_do_not_require_grad)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        const float f[4] = {1.5f, -2, 0.25f, 8};
        const double d[4] = {1.5, -2, 0.25, 8};
        tg_tensor *c = tg_constant(tape, dt, 2, TS_SHAPE(2, 2), dt == TG_F32 ? (const void *)f : d);
        cr_assert(c != NULL, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(c), TG_OP_CONST);
        cr_expect(!tg_tensor_is_leaf(c));
        cr_expect(!tg_tensor_requires_grad(c));
        cr_expect_eq(tg_tensor_dtype(c), dt);
        EXPECT_SHAPE("constant", c, 2, 2, 2);
        EXPECT_VALUES("constant", c, 1.5, -2, 0.25, 8);
        tg_tensor *s = tg_scalar(tape, dt, 2.5);
        cr_assert(s != NULL, "%s", tg_tape_error(tape));
        expect_shape("scalar", s, 0, NULL);
        cr_expect_eq(tg_tensor_item(s), 2.5);
        cr_expect(!tg_tensor_requires_grad(s));
        cr_expect_eq(tg_tensor_op(s), TG_OP_CONST);
        tg_tensor *k0 = tg_constant(tape, dt, 0, NULL, dt == TG_F32 ? (const void *)f : d);
        expect_shape("0-d constant", k0, 0, NULL);
        EXPECT_VALUES("0-d constant", k0, 1.5);
        /* Ops of constants only do not require grad; with a graded leaf, only it gets one. */
        tg_tensor *cc = tg_mul(tape, c, s);
        cr_expect(!tg_tensor_requires_grad(cc));
        EXPECT_VALUES("constant * scalar", cc, 3.75, -5, 0.625, 20);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1, 1, 1, 1), true);
        tg_tensor *y = tg_sum(tape, tg_add(tape, tg_mul(tape, x, c), s), TG_ALL_AXES, false);
        backward(y);
        EXPECT_GRAD("x * c + s", x, 1.5, -2, 0.25, 8);
        cr_expect(tg_tensor_grad_data(c) == NULL, "a constant received a gradient");
        cr_expect(tg_tensor_grad_data(s) == NULL, "a scalar constant received a gradient");
        /* A leaf that does not require grad is a constant too. */
        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
        cr_expect(!tg_tensor_requires_grad(tg_exp(tape, u)));
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(ops, error_add_shape_mismatch_names_both_shapes)
{
    tg_tensor *a = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), true);
    tg_tensor *y = tg_add(tape, a, b);
    expect_error("[2,3] + [4]", y, TG_ESHAPE, "add: [2,3] and [4]", "(node 0)");
    tg_tape_reset(tape);
    y = tg_mul(tape, tg_exp(tape, a),
               own_leaf(TG_F64, 2, TS_SHAPE(3, 2), TS_VALS(1, 2, 3, 4, 5, 6), false));
    expect_error("[2,3] * [3,2]", y, TG_ESHAPE, "mul: [2,3] and [3,2]", "(node 1)");
    tg_tape_reset(tape);
    cr_expect_eq(tg_tape_status(tape), TG_OK, "reset kept the error");
    cr_expect_str_eq(tg_tape_error(tape), "no error");
    cr_expect(tg_add(tape, a, a) != NULL, "the tape is unusable after reset");
}

Test(ops, error_matmul_inner_dimensions)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    size_t sh[2] = {4, 5};
    tg_tensor *w = iota(TG_F64, 2, sh, 0, 1, true);
    /* Two nodes first, so the node number is not 0 by accident. */
    tg_tensor *h = tg_tanh(tape, tg_scale(tape, x, 0.5));
    cr_assert(h != NULL);
    size_t node = tg_tape_size(tape);
    cr_expect_eq(node, 2);
    tg_tensor *y = tg_matmul(tape, h, w);
    char want[128];
    snprintf(want, sizeof want, "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ (node %zu)",
             node);
    expect_error("matmul [2,3] @ [4,5]", y, TG_ESHAPE, want, NULL);
    cr_expect_str_eq(tg_tape_error(tape), want);
    cr_expect_eq(tg_tape_size(tape), node, "a failed op was recorded");

    tg_tape_reset(tape);
    tg_tensor *v = own_leaf(TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), false);
    expect_error("matmul [2,3] @ [4]", tg_matmul(tape, x, v), TG_ESHAPE,
                 "matmul: [2,3] @ [4]: inner dimensions 3 and 4 differ", "(node 0)");
    tg_tape_reset(tape);
    size_t s1[3] = {2, 2, 3}, s2[3] = {3, 3, 2};
    tg_tensor *p = iota(TG_F64, 3, s1, 0, 1, false), *q = iota(TG_F64, 3, s2, 0, 1, false);
    expect_error("matmul batch", tg_matmul(tape, p, q), TG_ESHAPE, "[2,2,3] @ [3,3,2]", "batch");
    tg_tape_reset(tape);
    expect_error("transpose of 3-D", tg_transpose(tape, p), TG_ESHAPE, "transpose", "[2,2,3]");
}

Test(ops, error_dtype_mismatch)
{
    tg_tensor *a = own_leaf(TG_F32, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("f32 + f64", tg_add(tape, a, b), TG_EDTYPE, "f32", "f64");
    tg_tape_reset(tape);
    expect_error("f64 @ f32",
                 tg_matmul(tape, tg_reshape(tape, b, 2, TS_SHAPE(1, 2)),
                           tg_reshape(tape, a, 2, TS_SHAPE(2, 1))),
                 TG_EDTYPE, "matmul", "f64");
    tg_tape_reset(tape);
    /* A constant of the other dtype is no exception. */
    tg_tensor *k = tg_scalar(tape, TG_F64, 1.0);
    expect_error("f32 * f64 scalar", tg_mul(tape, a, k), TG_EDTYPE, "mul", "f32");
}

Test(ops, error_axis_out_of_range)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *s = own_leaf(TG_F64, 0, NULL, TS_VALS(1), true);
    static const struct {
        tg_op op;
        int axis;
    } cases[] = {
        {TG_OP_SUM, 2},         {TG_OP_SUM, -3},         {TG_OP_MEAN, 5},
        {TG_OP_MAX, -4},        {TG_OP_LOGSUMEXP, 2},    {TG_OP_SOFTMAX, 2},
        {TG_OP_SOFTMAX, -3},    {TG_OP_LOG_SOFTMAX, 7},  {TG_OP_SOFTMAX, TG_ALL_AXES},
        {TG_OP_LOG_SOFTMAX, TG_ALL_AXES},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_tape_reset(tape);
        tg_tensor *y = NULL;
        switch (cases[i].op) {
        case TG_OP_SUM: y = tg_sum(tape, x, cases[i].axis, false); break;
        case TG_OP_MEAN: y = tg_mean(tape, x, cases[i].axis, true); break;
        case TG_OP_MAX: y = tg_max(tape, x, cases[i].axis, false); break;
        case TG_OP_LOGSUMEXP: y = tg_logsumexp(tape, x, cases[i].axis, false); break;
        case TG_OP_SOFTMAX: y = tg_softmax(tape, x, cases[i].axis); break;
        case TG_OP_LOG_SOFTMAX: y = tg_log_softmax(tape, x, cases[i].axis); break;
        default: cr_assert_fail("case");
        }
        char what[64];
        snprintf(what, sizeof what, "%s axis %d of [2,3]", tg_op_name(cases[i].op),
                 cases[i].axis);
        expect_error(what, y, TG_EINVAL, tg_op_name(cases[i].op),
                     cases[i].axis == TG_ALL_AXES ? NULL : "[2,3]");
    }
    tg_tape_reset(tape);
    expect_error("sum axis 0 of 0-d", tg_sum(tape, s, 0, false), TG_EINVAL, "sum", "axis 0");
    tg_tape_reset(tape);
    expect_error("softmax of 0-d", tg_softmax(tape, s, 0), TG_EINVAL, "softmax", NULL);
}

Test(ops, error_reshape_count_mismatch)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    expect_error("reshape [2,3] -> [4,2]", tg_reshape(tape, x, 2, TS_SHAPE(4, 2)), TG_ESHAPE,
                 "reshape: [2,3] -> [4,2]", "6 and 8");
    tg_tape_reset(tape);
    expect_error("reshape [2,3] -> 0-d", tg_reshape(tape, x, 0, NULL), TG_ESHAPE, "reshape",
                 "[2,3]");
    tg_tape_reset(tape);
    expect_error("reshape negative rank", tg_reshape(tape, x, -1, TS_SHAPE(6)), TG_EINVAL,
                 "reshape", NULL);
    tg_tape_reset(tape);
    expect_error("reshape rank too large",
                 tg_reshape(tape, x, TG_MAX_RANK + 1, TS_SHAPE(1, 1, 1, 1, 1, 1, 1, 6)), TG_EINVAL,
                 "reshape", NULL);
}

Test(ops, error_max_over_empty_axis)
{
    tg_tensor *e = own(tg_tensor_zeros(TG_F64, 2, TS_SHAPE(2, 0)));
    expect_error("max over an empty axis", tg_max(tape, e, 1, false), TG_ESHAPE, "max",
                 "[2,0]");
    tg_tape_reset(tape);
    expect_error("max over all of an empty tensor", tg_max(tape, e, TG_ALL_AXES, false),
                 TG_ESHAPE, "max", "[2,0]");
    /* Over the non-empty axis the result is simply empty. */
    tg_tape_reset(tape);
    tg_tensor *m = tg_max(tape, e, 0, false);
    cr_assert(m != NULL, "%s", tg_tape_error(tape));
    EXPECT_SHAPE("max over the non-empty axis of [2,0]", m, 1, 0);
    /* sum over an empty axis is 0, logsumexp -inf. */
    EXPECT_VALUES("sum over an empty axis", tg_sum(tape, e, 1, false), 0, 0);
    EXPECT_VALUES("logsumexp over an empty axis", tg_logsumexp(tape, e, 1, false), -INFINITY,
                  -INFINITY);
}

Test(ops, error_clamp_bounds)
{
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("clamp lo > hi", tg_clamp(tape, x, 1, 0), TG_EINVAL, "clamp", NULL);
    tg_tape_reset(tape);
    expect_error("clamp NaN", tg_clamp(tape, x, NAN, 1), TG_EINVAL, "clamp", NULL);
}

Test(ops, error_null_and_foreign_inputs)
{
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("add(NULL, x)", tg_add(tape, NULL, x), TG_EINVAL, "add", "NULL");
    tg_tape_reset(tape);
    expect_error("mul(x, NULL)", tg_mul(tape, x, NULL), TG_EINVAL, "mul", "input 1");
    tg_tape_reset(tape);
    tg_tape *other = tg_tape_new();
    cr_assert(other);
    tg_tensor *y = tg_exp(other, x);
    cr_assert(y);
    expect_error("input from another tape", tg_add(tape, x, y), TG_EINVAL, "another tape", NULL);
    tg_tape_free(other);
    tg_clear_error();
    cr_expect(tg_exp(NULL, x) == NULL);
    cr_expect_eq(tg_last_status(), TG_EINVAL, "NULL tape: %s", tg_last_error());
}

Test(ops, error_first_error_is_kept_later_ops_are_quiet)
{
    tg_tensor *a = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *b = iota(TG_F64, 2, TS_SHAPE(4, 5), 0, 1, false);
    tg_tensor *c = own_leaf(TG_F32, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
    tg_tensor *h = tg_exp(tape, a);
    tg_tensor *bad = tg_matmul(tape, h, b);
    expect_error("matmul", bad, TG_ESHAPE, "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ (node 1)", NULL);
    char first[256];
    snprintf(first, sizeof first, "%s", tg_tape_error(tape));
    size_t nodes = tg_tape_size(tape);

    /* Every later op returns NULL without a new message: given the NULL ... */
    tg_clear_error();
    cr_expect(tg_sum(tape, tg_relu(tape, bad), TG_ALL_AXES, false) == NULL);
    cr_expect_eq(tg_last_status(), TG_OK, "a NULL input set a new error: %s", tg_last_error());
    /* ... or valid inputs, or inputs that would fail differently. */
    cr_expect(tg_add(tape, a, a) == NULL, "an op on a failed tape returned a tensor");
    cr_expect(tg_add(tape, a, c) == NULL);
    cr_expect(tg_reshape(tape, a, 1, TS_SHAPE(7)) == NULL);
    cr_expect(tg_scalar(tape, TG_F64, 1.0) == NULL);
    cr_expect(tg_detach(tape, a) == NULL);
    cr_expect_eq(tg_last_status(), TG_OK, "a later op set a new error: %s", tg_last_error());
    cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
    cr_expect_str_eq(tg_tape_error(tape), first, "the first error was replaced");
    cr_expect_eq(tg_tape_size(tape), nodes, "ops were recorded after the error");
    /* Backward reports the tape's error. */
    tg_status st = tg_backward(tape, h);
    cr_expect_neq(st, TG_OK);
    ts_assert_has(tg_last_error(), "inner dimensions");
    /* Reset clears it. */
    tg_tape_reset(tape);
    cr_expect_eq(tg_tape_status(tape), TG_OK);
    tg_tensor *ok = tg_sum(tape, tg_exp(tape, a), TG_ALL_AXES, false);
    cr_expect(ok != NULL, "%s", tg_tape_error(tape));
}
