/* cases_unary.c (test_gradgradcheck): the case functions of constants, detach and the elementwise
 * unary ops, away from their kinks and domain edges. */
#include "gradgradcheck.h"

/* f = (x * k + s)^2 with a constant k and a scalar constant s. */
static tg_tensor *const_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double c[6] = {0.5, -1.0, 2.0, 3.0, -0.25, 1.5};
    tg_tensor *k = tg_constant(tape, TG_F64, 2, (size_t[]){2, 3}, c);
    tg_tensor *y = tg_add(tape, tg_mul(tape, in[0], k), tg_scalar(tape, TG_F64, 0.75));
    return tg_mul(tape, y, y);
}

/* A constant never requires grad: a recorded gradient with respect to it is refused (y depends
 * on it), and that of sum(x * k) in x is k itself, a constant (its derivative is zero). */
void case_const(tg_op op, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    tg_tensor_set_requires_grad(x, true);
    const double c[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *k = tg_constant(tape, TG_F64, 2, (size_t[]){2, 3}, c);
    cr_assert(k, "%s: %s", tg_op_name(op), tg_tape_error(tape));
    cr_expect_eq(tg_tensor_op(k), (int)op);
    cr_expect(!tg_tensor_requires_grad(k), "%s: a constant requires grad", tg_op_name(op));
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, k), TG_ALL_AXES, false);
    tg_tensor *g[2], *wrt[2] = {k, x};
    /* y depends on the constant, whose gradient is not tracked: asking for it is an error */
    cr_assert_eq(tg_grad_graph(tape, y, wrt, 2, NULL, g), TG_EINVAL, "%s: in a constant",
                 tg_op_name(op));
    ts_assert_has(tg_last_error(), "xs[0]");
    grad_graph(tape, y, wrt + 1, 1, g + 1);
    cr_expect(!tg_tensor_requires_grad(g[1]), "%s: a gradient through a constant requires grad",
              tg_op_name(op));
    for (size_t i = 0; i < 6; i++)
        cr_expect(tg_tensor_get(g[1], i) == c[i], "%s: d/dx[%zu] = %g, expected %g", tg_op_name(op),
                  i, tg_tensor_get(g[1], i), c[i]);
    tg_tensor_free(x);
    tg_tape_free(tape);
    tg_tensor *in[1] = {make_input(rng, (shp)S2(2, 3), K_NORMAL)};
    check_fn("const: (x * constant + scalar)^2", "-", const_fn, NULL, in, 1, tg_rng_next(rng));
}

/* f = sum(x * detach(x)^2): the recorded gradient detach(x)^2 is a constant, so its derivative
 * is zero, while the first-order gradient x^2 has 2x: the check must fail (detach cuts). */
static tg_tensor *detach_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *d = tg_detach(tape, in[0]);
    return tg_sum(tape, tg_mul(tape, in[0], tg_mul(tape, d, d)), TG_ALL_AXES, false);
}

void case_detach(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(4), S2(2, 3), S3(2, 1, 3)};
    for (size_t si = 0; si < COUNT(shapes); si++) {
        tg_tensor *x = make_input(rng, shapes[si], K_DENOM);
        tg_tape *tape = tg_tape_new();
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *d = tg_detach(tape, x);
        cr_assert(d, "%s: %s", tg_op_name(op), tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(d), (int)op);
        cr_expect(!tg_tensor_requires_grad(d), "%s: the result requires grad", tg_op_name(op));
        tg_tensor *g;
        grad_graph(tape, detach_fn(tape, &x, 1, NULL), &x, 1, &g);
        cr_expect(!tg_tensor_requires_grad(g), "%s: the gradient depends on x through detach",
                  tg_op_name(op));
        for (size_t i = 0; i < tg_tensor_numel(x); i++) {
            double v = tg_tensor_get(x, i);
            cr_expect(tg_tensor_get(g, i) == v * v, "%s: d/dx[%zu] = %g, expected %g",
                      tg_op_name(op), i, tg_tensor_get(g, i), v * v);
        }
        tg_tape_free(tape);
        tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
        double err = 0;
        tg_status st = tg_gradgradcheck(detach_fn, NULL, &x, 1, &opt, &err);
        cr_expect(st == TG_ENUMERIC && err > 0.01,
                  "%s: gradgradcheck through detach returned %s with error %g, expected a "
                  "mismatch",
                  tg_op_name(op), tg_status_name(st), err);
        tg_tensor_free(x);
        g_cases++;
    }
}

/* The op at each of the n values v, one 0-d input each. */
static void check_unary_at(tg_op op, tg_rng *rng, const double *v, size_t n)
{
    spec s = {.op = op};
    for (size_t i = 0; i < n; i++) {
        tg_tensor *x = make_input(rng, (shp)S0, K_NORMAL);
        tg_tensor_set(x, 0, v[i]);
        check_op(&s, &x, 1, tg_rng_next(rng));
    }
}
#define CHECK_AT(op, rng, ...)                                                                     \
    check_unary_at(op, rng, (const double[]){__VA_ARGS__},                                         \
                   sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

void case_unary(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
}
/* sqrt, log */
void case_unary_positive(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_POS);
    CHECK_AT(op, rng, 0.05, 0.3, 7, 100);
}
/* abs, relu: away from the kink at 0 */
void case_unary_kink(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_AWAY);
}
/* exp, sigmoid, tanh, log_sigmoid: and in the tails */
void case_unary_tails(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
    CHECK_AT(op, rng, -4, -2.5, -0.75, 0.6, 2.2, 3.5);
}
/* sin, cos, atan, sinh, cosh, asinh, expm1, erf, softplus, gelu, silu: and farther out */
void case_math_tails(tg_op op, tg_rng *rng)
{
    case_unary_tails(op, rng);
    CHECK_AT(op, rng, -12, -7, -1e-4, 2e-5, 6, 12);
}
/* tan: within (-0.9, 0.9), and nearer its poles */
void case_tan(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -1.5, -1.2, 1.4, 1.55, 2.0, 3.0, -4.0);
}
/* asin, acos, atanh: within (-0.9, 0.9), and close to +-1 */
void case_unit_interval(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -0.95, 0, 1e-3, 0.95, 0.99);
}
void case_acosh(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_ABOVE1);
    CHECK_AT(op, rng, 1.01, 1.05, 5, 100, 1e4);
}
void case_log1p(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -1e-3, 1e-8, 3, 100);
}
/* sign, floor, ceil: a zero gradient away from the jumps */
void case_zero_gradient(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, op == TG_OP_SIGN ? K_AWAY : K_FRAC);
    CHECK_AT(op, rng, -2.5, -0.25, 0.01, 0.5, 1.75, 100.5);
}

/* scale and add_scalar with non-trivial constants */
void case_with_constant(tg_op op, tg_rng *rng)
{
    static const double cs[] = {2.5, -0.75, 1.0 / 3.0, 0.0, -7.25};
    for (size_t j = 0; j < COUNT(cs); j++)
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i += 2)
            check_unary(rng, (spec){.op = op, .at.c = cs[j]}, UNARY_SHAPES[i], K_NORMAL);
}

/* Integer exponents on any input; non-integer ones (and -1) on positive inputs; 0, 1 and 2,
 * whose second or third derivatives vanish. */
void case_pow(tg_op op, tg_rng *rng)
{
    static const struct {
        double c;
        kind k;
    } es[] = {{2, K_NORMAL}, {3, K_NORMAL}, {1, K_NORMAL}, {4, K_NORMAL},    {0.5, K_POS},
              {-1.5, K_POS}, {-1, K_DENOM}, {2.5, K_POS},  {1.0 / 3, K_POS}, {0, K_POS}};
    for (size_t j = 0; j < COUNT(es); j++)
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i += 2)
            check_unary(rng, (spec){.op = op, .at.c = es[j].c}, UNARY_SHAPES[i], es[j].k);
}

/* clamp with finite, one-sided and degenerate bounds; inputs 0.01 away from both bounds. */
void case_clamp(tg_op op, tg_rng *rng)
{
    static const double bounds[][2] = {{-0.5, 0.7},      {-1.0, 1.0},      {0.25, 0.25},
                                       {-INFINITY, 0.5}, {-0.3, INFINITY}, {-3, 3}};
    for (size_t j = 0; j < COUNT(bounds); j++) {
        spec s = {.op = op, .at = {.lo = bounds[j][0], .hi = bounds[j][1]}};
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i++) {
            tg_tensor *x = make_input(rng, UNARY_SHAPES[i], K_NORMAL);
            for (size_t e = 0; e < tg_tensor_numel(x); e++) {
                double v = tg_tensor_get(x, e);
                if (fabs(v - s.at.lo) < 0.01 || fabs(v - s.at.hi) < 0.01)
                    tg_tensor_set(x, e, v + 0.05);
            }
            check_op(&s, &x, 1, tg_rng_next(rng));
        }
    }
}
