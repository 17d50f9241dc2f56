/* cases_unary.c (test_gradcheck): the case functions of constants, detach and the
 * elementwise unary ops: every shape of UNARY_SHAPES on inputs of the op's domain, then
 * points near its edges (poles, tails, kinks), and ops with constants (scale, pow, clamp). */
#include "gradcheck.h"

/* No gradient: a constant never requires grad, and the gradient with respect to it (taken
 * as a tape tensor by tg_grad) is exactly zero, while the function using it still checks. */
static tg_tensor *const_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double c[6] = {0.5, -1.0, 2.0, 3.0, -0.25, 1.5};
    size_t shape[2] = {2, 3};
    tg_tensor *k = tg_constant(tape, TG_F64, 2, shape, c);
    tg_tensor *s = tg_scalar(tape, TG_F64, 0.75);
    return tg_add(tape, tg_mul(tape, in[0], k), s);
}

void case_const(tg_op op, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    cr_assert(tape);
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    tg_tensor_set_requires_grad(x, true);
    const double c[6] = {1, 2, 3, 4, 5, 6};
    size_t shape[2] = {2, 3};
    tg_tensor *k = tg_constant(tape, TG_F64, 2, shape, c);
    cr_assert(k, "%s: %s", tg_op_name(op), tg_tape_error(tape));
    cr_expect_eq(tg_tensor_op(k), (int)op, "%s: tg_constant records op %d", tg_op_name(op),
                 tg_tensor_op(k));
    cr_expect(!tg_tensor_requires_grad(k), "%s: a constant requires grad", tg_op_name(op));
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, k), TG_ALL_AXES, false);
    cr_assert(y, "%s: %s", tg_op_name(op), tg_tape_error(tape));
    tg_tensor *g[2] = {NULL, NULL};
    tg_tensor *wrt[2] = {k, x};
    /* y depends on the constant, whose gradient is not tracked: asking for it is an error */
    cr_assert_eq(tg_grad(tape, y, wrt, 2, g), TG_EINVAL, "%s: tg_grad in a constant",
                 tg_op_name(op));
    ts_assert_has(tg_last_error(), "xs[0]");
    cr_assert(g[0] == NULL && g[1] == NULL);
    cr_assert_eq(tg_grad(tape, y, wrt + 1, 1, g + 1), TG_OK, "%s: tg_grad: %s", tg_op_name(op),
                 tg_last_error());
    for (size_t i = 0; i < 6; i++) {
        cr_expect(tg_tensor_grad_get(k, i) == 0, "%s: gradient %g reached constant element %zu",
                  tg_op_name(op), tg_tensor_grad_get(k, i), i);
        cr_expect(tg_tensor_get(g[1], i) == c[i], "%s: d/dx[%zu] = %g, expected %g", tg_op_name(op),
                  i, tg_tensor_get(g[1], i), c[i]);
    }
    tg_tensor_free(g[0]);
    tg_tensor_free(g[1]);
    tg_tensor_free(x);
    tg_tape_free(tape);

    tg_tensor *in[1] = {make_input(rng, (shp)S2(2, 3), K_NORMAL)};
    check_fn("const: x * constant + scalar", "-", const_fn, NULL, in, 1, tg_rng_next(rng));
}

/* f = sum(x * detach(x)): the true gradient is 2x, the recorded one x. */
static tg_tensor *detach_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(tape, tg_mul(tape, in[0], tg_detach(tape, in[0])), TG_ALL_AXES, false);
}

void case_detach(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(4), S2(2, 3), S3(2, 1, 3)};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        char sh[64];
        tg_tape *tape = tg_tape_new();
        cr_assert(tape);
        tg_tensor *x = make_input(rng, shapes[si], K_NORMAL);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *d = tg_detach(tape, x);
        cr_assert(d, "%s: %s", tg_op_name(op), tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(d), (int)op);
        cr_expect(!tg_tensor_requires_grad(d), "%s %s: the result requires grad", tg_op_name(op),
                  fmt_shp(sh, sizeof sh, x));
        tg_tensor *y = detach_fn(tape, &x, 1, NULL);
        cr_assert(y, "%s: %s", tg_op_name(op), tg_tape_error(tape));
        tg_tensor *g = NULL;
        cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK, "%s: %s", tg_op_name(op), tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(x); i++)
            cr_expect(tg_tensor_get(g, i) == tg_tensor_get(x, i),
                      "%s %s: d/dx[%zu] = %g, expected %g (nothing through detach)", tg_op_name(op),
                      fmt_shp(sh, sizeof sh, x), i, tg_tensor_get(g, i), tg_tensor_get(x, i));
        tg_tensor_free(g);
        tg_tape_free(tape);

        /* The finite differences see 2x, so the check must fail: detach really cuts. */
        tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
        double err = 0;
        tg_status st = tg_gradcheck(detach_fn, NULL, &x, 1, &opt, &err);
        cr_expect(st == TG_ENUMERIC && err > 0.01,
                  "%s %s: gradcheck through detach returned %s with error %g, expected a "
                  "mismatch",
                  tg_op_name(op), fmt_shp(sh, sizeof sh, x), tg_status_name(st), err);
        tg_tensor_free(x);
        g_cases++;
    }
}

/* Elementwise unary ops on inputs of kind k, at every shape of UNARY_SHAPES. */
static void check_unary_shapes(tg_op op, tg_rng *rng, kind k)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(UNARY_SHAPES); i++)
        check_unary(rng, s, UNARY_SHAPES[i], k);
}

/* Defined everywhere. */
void case_unary(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
}
/* Defined for x > 0 (sqrt, log). */
void case_unary_positive(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_POS);
}
/* A kink at 0 (abs, relu): inputs kept away from it. */
void case_unary_kink(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_AWAY);
}

/* Defined everywhere, with tails worth checking too (exp, sigmoid, tanh, log_sigmoid). */
void case_unary_tails(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
    spec s = {.op = op};
    tg_tensor *x = make_input(rng, (shp)S1(6), K_NORMAL);
    double v[6] = {-4, -2.5, -0.75, 0.6, 2.2, 3.5};
    for (size_t i = 0; i < 6; i++)
        tg_tensor_set(x, i, v[i]);
    check_op(&s, &x, 1, tg_rng_next(rng));
}

/* ---- elementwise math: random shapes of the op's domain, then points near its edges ------- */

/* The op at each of the n values v, one 0-d input each: finite differences of a sum that
 * also holds e^12 could not resolve a gradient of e^-12 in it. */
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

/* tan: within (-0.9, 0.9), and nearer its poles at +-pi/2 and beyond them */
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

/* acosh: on [1.1, 3], close to 1, and large */
void case_acosh(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_ABOVE1);
    CHECK_AT(op, rng, 1.01, 1.05, 5, 100, 1e4);
}

/* log1p: within (-0.9, 0.9), close to -1, small and large */
void case_log1p(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -1e-3, 1e-8, 3, 100);
}

/* Defined everywhere (sin, cos, atan, sinh, cosh, asinh, expm1, erf, softplus, gelu, silu):
 * case_unary_tails, then farther out, where values reach e^12 and gradients e^-12, and
 * close to 0 */
void case_math_tails(tg_op op, tg_rng *rng)
{
    case_unary_tails(op, rng);
    CHECK_AT(op, rng, -12, -7, -1e-4, 2e-5, 6, 12);
}

/* sign, floor, ceil: a zero gradient, which finite differences see away from the jumps
 * (sign's at 0, floor's and ceil's at the integers) */
void case_zero_gradient(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, op == TG_OP_SIGN ? K_AWAY : K_FRAC);
    CHECK_AT(op, rng, -2.5, -0.25, 0.01, 0.5, 1.75, 100.5);
}

/* scale and add_scalar with non-trivial constants (the constant enters forward and VJP). */
void case_with_constant(tg_op op, tg_rng *rng)
{
    static const double cs[] = {2.5, -0.75, 1.0 / 3.0, 0.0, -7.25};
    for (size_t j = 0; j < sizeof cs / sizeof cs[0]; j++) {
        spec s = {.op = op, .c = cs[j]};
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i += 2)
            check_unary(rng, s, UNARY_SHAPES[i], K_NORMAL);
    }
}

/* Integer exponents on any input; non-integer ones (and -1) on positive inputs. */
void case_pow(tg_op op, tg_rng *rng)
{
    static const struct {
        double c;
        kind k;
    } es[] = {
        {2, K_NORMAL}, {3, K_NORMAL}, {1, K_NORMAL}, {4, K_NORMAL},    {0.5, K_POS},
        {-1.5, K_POS}, {-1, K_DENOM}, {2.5, K_POS},  {1.0 / 3, K_POS}, {0, K_POS},
    };
    for (size_t j = 0; j < sizeof es / sizeof es[0]; j++) {
        spec s = {.op = op, .c = es[j].c};
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i += 2)
            check_unary(rng, s, UNARY_SHAPES[i], es[j].k);
    }
}

/* clamp with finite, one-sided and degenerate bounds; inputs kept 0.01 away from both bounds
 * (the kinks), on both sides of them. */
void case_clamp(tg_op op, tg_rng *rng)
{
    static const double bounds[][2] = {
        {-0.5, 0.7}, {-1.0, 1.0}, {0.25, 0.25}, {-INFINITY, 0.5}, {-0.3, INFINITY}, {-3, 3},
    };
    for (size_t j = 0; j < sizeof bounds / sizeof bounds[0]; j++) {
        spec s = {.op = op, .c = bounds[j][0], .hi = bounds[j][1]};
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i++) {
            tg_tensor *x = make_input(rng, UNARY_SHAPES[i], K_NORMAL);
            for (size_t e = 0; e < tg_tensor_numel(x); e++) {
                double v = tg_tensor_get(x, e);
                if (fabs(v - s.c) < 0.01 || fabs(v - s.hi) < 0.01)
                    tg_tensor_set(x, e, v + 0.05);
            }
            check_op(&s, &x, 1, tg_rng_next(rng));
        }
    }
}
