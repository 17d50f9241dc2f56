/* unary.c (test_ops): the elementwise unary ops' values and VJPs against hand-computed
 * numbers, their shapes (0-d included), and the documented conventions at kinks and edges
 * (relu, abs, sqrt, log, pow, clamp, max ties). */
#include "ops.h"

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
    double y[5]; /* f(x) */
    double d[5]; /* f'(x) */
} unary_case;

static double sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

Test(ops, unary_values_and_vjp)
{
    /* Inputs exactly representable in f32; outputs by hand or from the closed forms. */
    /* clang-format off */
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
    /* clang-format on */
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
                  "sqrt'(0) = %g (%s), expected +inf", tg_tensor_grad_get(x, 0), tg_dtype_name(dt));
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

/* c x^(c-1) for x < 0 and c an even integer from 2^53 on (2^24 in f32, whose arithmetic takes
 * c - 1): c - 1 is odd, so that the slope has x's sign (-c at x = -1, -inf at -2; -0 at -0.5 and
 * at -0, which a gradient's 0 + -0 makes 0), though c - 1 rounds to an even number. pow_tensor's
 * da is the same slope. */
Test(ops, pow_slope_sign_at_huge_even_exponents)
{
    const double cs[2] = {0x1p60, 0x1p24 + 2}, xs[5] = {-1, -2, -0.5, -0.0, 1};
    for (int k = 0; k < 2; k++) {
        const double c = cs[k], want[5] = {-c, -INFINITY, 0, 0, c};
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(5), xs, true);
            tg_tensor *y = tg_pow(tape, x, c);
            EXPECT_VALUES("pow(x, c)", y, 1, INFINITY, 0, 0, 1);
            backward_seed(y, TS_VALS(1, 1, 1, 1, 1));
            tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(5), xs, true);
            tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(5), TS_VALS(c, c, c, c, c), false);
            backward_seed(tg_pow_tensor(tape, a, b), TS_VALS(1, 1, 1, 1, 1));
            for (int i = 0; i < 5; i++) {
                const double gx = tg_tensor_grad_get(x, i), ga = tg_tensor_grad_get(a, i);
                cr_expect(gx == want[i] && signbit(gx) == signbit(want[i]),
                          "pow'(%g, %a) = %a (%s), want %a", xs[i], c, gx, tg_dtype_name(dt),
                          want[i]);
                cr_expect(ga == want[i] && signbit(ga) == signbit(want[i]),
                          "pow_tensor da(%g, %a) = %a (%s), want %a", xs[i], c, ga,
                          tg_dtype_name(dt), want[i]);
            }
        }
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
