/* test_gradcheck.c: every op in the table against central finite differences (tg_gradcheck,
 * f64, tol 1e-7), at several seeded random shapes including 0-d and broadcasting; a few
 * composite functions and fan-out graphs; and the behaviour of tg_gradcheck itself.
 *
 * The cases are a table keyed by tg_op, CASES: the coverage test walks the op table and fails
 * for an op that has no case, so a new op cannot be added without a gradient check, and
 * each_op runs one test per op of the table. Every op is applied through tg_apply. Inputs
 * stay away from kinks (relu/abs near 0, ties in max/min/minimum/maximum, non-positive inputs
 * of sqrt/log/pow, atan2's origin and jump, comparisons near a flip); the comparisons are
 * also checked for their exact masks and for carrying no gradient. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

#define TOL 1e-7
#define EPS 1e-6
#define MAX_IN 2

/* ---- inputs ---------------------------------------------------------------------------- */

typedef enum kind {
    K_NORMAL,   /* N(0, 1) */
    K_POS,      /* uniform [0.5, 2]: sqrt, log, pow with non-integer exponents */
    K_AWAY,     /* |x| in [0.05, 2], random sign: relu, abs (far from the kink at 0) */
    K_DENOM,    /* |x| in [0.5, 2], random sign: divisors */
    K_DISTINCT, /* distinct values at least 0.2 apart, shuffled: max (no ties) */
    K_UNIT,     /* uniform (-0.9, 0.9): asin, acos, atanh, log1p, tan */
    K_ABOVE1,   /* uniform [1.1, 3]: acosh */
    K_FRAC,     /* k + u, k an integer in [-3, 2], u uniform [0.1, 0.9]: floor, ceil */
} kind;

typedef struct shp {
    int rank;
    size_t d[TG_MAX_RANK];
} shp;

/* Brace initializers (usable in static tables); in expressions write (shp)S2(2, 3). */
#define S0 {0, {0}}
#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}
#define S4(a, b, c, d) {4, {a, b, c, d}}

static tg_tensor *make_input(tg_rng *rng, shp s, kind k)
{
    tg_tensor *t = NULL;
    switch (k) {
    case K_NORMAL:
        t = tg_tensor_randn(TG_F64, s.rank, s.d, rng, 0.0, 1.0);
        break;
    case K_POS:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 0.5, 2.0);
        break;
    case K_AWAY:
    case K_DENOM:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, k == K_AWAY ? 0.05 : 0.5, 2.0);
        cr_assert(t != NULL, "tg_tensor_rand: %s", tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(t); i++)
            if (tg_rng_below(rng, 2))
                tg_tensor_set(t, i, -tg_tensor_get(t, i));
        break;
    case K_UNIT:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, -0.9, 0.9);
        break;
    case K_ABOVE1:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 1.1, 3.0);
        break;
    case K_FRAC:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 0.1, 0.9);
        cr_assert(t != NULL, "tg_tensor_rand: %s", tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(t); i++)
            tg_tensor_set(t, i, tg_tensor_get(t, i) + (double)tg_rng_below(rng, 6) - 3);
        break;
    case K_DISTINCT: {
        t = tg_tensor_zeros(TG_F64, s.rank, s.d);
        cr_assert(t != NULL, "tg_tensor_zeros: %s", tg_last_error());
        size_t n = tg_tensor_numel(t);
        double *v = tg_tensor_data(t);
        for (size_t i = 0; i < n; i++)
            v[i] = 0.25 * ((double)i - (double)n / 2) + 0.05 * tg_rng_uniform(rng);
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)tg_rng_below(rng, i);
            double tmp = v[i - 1];
            v[i - 1] = v[j];
            v[j] = tmp;
        }
        break;
    }
    }
    cr_assert(t != NULL, "making an input: %s", tg_last_error());
    return t;
}

/* ---- one op applied with its attributes --------------------------------------------------- */

typedef struct spec {
    tg_op op;
    int axis;
    bool keepdim;
    double c;    /* scale, add_scalar, pow; clamp's lo */
    double hi;   /* clamp's hi */
    shp to;      /* reshape target */
    bool fanout; /* binary op applied to (x, x) */
} spec;

/* Every op through the tests' one entry point, ts_apply (tg_apply), with its attributes. */
static tg_tensor *apply(tg_tape *t, const spec *s, tg_tensor *a, tg_tensor *b)
{
    const tg_attrs attrs = {.c = s->c, .lo = s->c, .hi = s->hi, .axis = s->axis,
                            .keepdim = s->keepdim, .rank = s->to.rank, .shape = s->to.d};
    return ts_apply(t, s->op, a, b, &attrs);
}

static tg_tensor *op_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const spec *s = ud;
    tg_tensor *a = in[0];
    tg_tensor *b = s->fanout ? in[0] : (n > 1 ? in[1] : NULL);
    return apply(tape, s, a, b);
}

/* ---- running one check ------------------------------------------------------------------ */

static const char *fmt_shp(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, tg_tensor_rank(t), tg_tensor_shape(t));
}

static const char *fmt_axis(char *buf, size_t size, int axis)
{
    if (axis == TG_ALL_AXES)
        snprintf(buf, size, "TG_ALL_AXES");
    else
        snprintf(buf, size, "%d", axis);
    return buf;
}

/* A description of the attributes that matter for the op, for failure messages. */
static const char *describe(char *buf, size_t size, const spec *s)
{
    char ax[32], to[64];
    switch (tg_op_info_of(s->op)->attrs) {
    case TG_ATTR_NONE: snprintf(buf, size, "%s", s->fanout ? "fan-out (x, x)" : "-"); break;
    case TG_ATTR_CONSTANT: snprintf(buf, size, "c=%g", s->c); break;
    case TG_ATTR_RANGE: snprintf(buf, size, "lo=%g hi=%g", s->c, s->hi); break;
    case TG_ATTR_AXIS: snprintf(buf, size, "axis=%s", fmt_axis(ax, sizeof ax, s->axis)); break;
    case TG_ATTR_REDUCE:
        snprintf(buf, size, "axis=%s keepdim=%d", fmt_axis(ax, sizeof ax, s->axis), s->keepdim);
        break;
    case TG_ATTR_SHAPE:
        snprintf(buf, size, "to %s", tg_shape_format(to, sizeof to, s->to.rank, s->to.d));
        break;
    case TG_ATTR_SLICE: /* checked by their own case functions, which describe them */
    case TG_ATTR_INDEX:
    case TG_ATTR_AXES: snprintf(buf, size, "-"); break;
    }
    return buf;
}

static int g_cases; /* checks run by the current case function */

/* Gradchecks `fn` at inputs[0..n), which it frees. On failure the message names `what` (the
 * op or function), the input shapes, the attributes and the error. */
static void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud,
                     tg_tensor **inputs, size_t n, uint64_t seed)
{
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = EPS;
    opt.tol = TOL;
    opt.seed = seed;
    double err[8] = {0};
    cr_assert(n <= 8);
    tg_clear_error();
    tg_status st = tg_gradcheck(fn, ud, inputs, n, &opt, err);
    char shapes[256] = "", s[64];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof shapes; i++)
        len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%s", i ? ", " : "",
                                fmt_shp(s, sizeof s, inputs[i]));
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = err[i] > worst || isnan(err[i]) ? err[i] : worst;
    cr_expect(st == TG_OK, "gradcheck %s(%s) [%s]: max error %.3g (tol %g), status %s: %s", what,
              shapes, attrs, worst, TOL, tg_status_name(st), tg_last_error());
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(inputs[i]);
    g_cases++;
}

static void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed)
{
    char attrs[128];
    check_fn(tg_op_name(s->op), describe(attrs, sizeof attrs, s), op_fn, (void *)s, inputs, n,
             seed);
}

static void check_unary(tg_rng *rng, spec s, shp x, kind k)
{
    tg_tensor *in[1] = {make_input(rng, x, k)};
    check_op(&s, in, 1, tg_rng_next(rng));
}

static void check_binary(tg_rng *rng, spec s, shp a, kind ka, shp b, kind kb)
{
    tg_tensor *in[2] = {make_input(rng, a, ka), make_input(rng, b, kb)};
    check_op(&s, in, 2, tg_rng_next(rng));
}

/* Shapes for elementwise unary ops: 0-d through 4-D, with size-1 axes. */
static const shp UNARY_SHAPES[] = {
    S0, S1(1), S1(5), S2(2, 3), S2(1, 4), S3(2, 3, 2), S4(2, 1, 3, 2),
};
#define N_UNARY_SHAPES (sizeof UNARY_SHAPES / sizeof UNARY_SHAPES[0])

/* ---- the cases, one function per kind of op ---------------------------------------------- */

typedef void (*case_fn)(tg_op op, tg_rng *rng);

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

static void case_const(tg_op op, tg_rng *rng)
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
    cr_assert_eq(tg_grad(tape, y, wrt, 2, g), TG_OK, "%s: tg_grad: %s", tg_op_name(op),
                 tg_last_error());
    for (size_t i = 0; i < 6; i++) {
        cr_expect(tg_tensor_grad_get(k, i) == 0 && tg_tensor_get(g[0], i) == 0,
                  "%s: gradient %g reached constant element %zu", tg_op_name(op),
                  tg_tensor_get(g[0], i), i);
        cr_expect(tg_tensor_get(g[1], i) == c[i], "%s: d/dx[%zu] = %g, expected %g",
                  tg_op_name(op), i, tg_tensor_get(g[1], i), c[i]);
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

static void case_detach(tg_op op, tg_rng *rng)
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
        cr_expect(!tg_tensor_requires_grad(d), "%s %s: the result requires grad",
                  tg_op_name(op), fmt_shp(sh, sizeof sh, x));
        tg_tensor *y = detach_fn(tape, &x, 1, NULL);
        cr_assert(y, "%s: %s", tg_op_name(op), tg_tape_error(tape));
        tg_tensor *g = NULL;
        cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK, "%s: %s", tg_op_name(op),
                     tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(x); i++)
            cr_expect(tg_tensor_get(g, i) == tg_tensor_get(x, i),
                      "%s %s: d/dx[%zu] = %g, expected %g (nothing through detach)",
                      tg_op_name(op), fmt_shp(sh, sizeof sh, x), i, tg_tensor_get(g, i),
                      tg_tensor_get(x, i));
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

/* add, sub, mul, div: same shapes 0-d..4-D, many kinds of broadcasting, fan-out. */
static void case_binary(tg_op op, tg_rng *rng)
{
    kind kb = op == TG_OP_DIV ? K_DENOM : K_NORMAL;
    spec s = {.op = op};
    static const struct {
        shp a, b;
    } pairs[] = {
        {S0, S0},
        {S1(5), S1(5)},
        {S2(2, 3), S2(2, 3)},
        {S3(2, 3, 2), S3(2, 3, 2)},
        {S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
        {S2(3, 1), S2(1, 4)},
        {S2(1, 4), S2(3, 1)},
        {S3(2, 3, 4), S1(4)},
        {S1(4), S3(2, 3, 4)},
        {S3(2, 1, 4), S2(3, 1)},
        {S2(3, 1), S3(2, 1, 4)},
        {S0, S2(2, 3)},
        {S2(2, 3), S0},
        {S1(1), S1(3)},
        {S2(1, 1), S2(3, 4)},
        {S2(2, 3), S2(2, 1)},
        {S2(2, 3), S2(1, 3)},
        {S3(2, 3, 4), S3(1, 3, 1)},
        {S3(2, 1, 4), S3(1, 3, 1)},
        {S4(2, 1, 3, 1), S3(4, 1, 2)},
        {S4(2, 3, 1, 2), S2(1, 2)},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        check_binary(rng, s, pairs[i].a, K_NORMAL, pairs[i].b, kb);
    /* The same tensor on both sides: both VJPs add into one gradient. */
    s.fanout = true;
    static const shp fan[] = {S0, S1(4), S2(2, 3), S3(2, 2, 3)};
    for (size_t i = 0; i < sizeof fan / sizeof fan[0]; i++)
        check_unary(rng, s, fan[i], kb);
}

/* Elementwise unary ops on inputs of kind k, at every shape of UNARY_SHAPES. */
static void check_unary_shapes(tg_op op, tg_rng *rng, kind k)
{
    spec s = {.op = op};
    for (size_t i = 0; i < N_UNARY_SHAPES; i++)
        check_unary(rng, s, UNARY_SHAPES[i], k);
}

/* Defined everywhere. */
static void case_unary(tg_op op, tg_rng *rng) { check_unary_shapes(op, rng, K_NORMAL); }
/* Defined for x > 0 (sqrt, log). */
static void case_unary_positive(tg_op op, tg_rng *rng) { check_unary_shapes(op, rng, K_POS); }
/* A kink at 0 (abs, relu): inputs kept away from it. */
static void case_unary_kink(tg_op op, tg_rng *rng) { check_unary_shapes(op, rng, K_AWAY); }

/* Defined everywhere, with tails worth checking too (exp, sigmoid, tanh, log_sigmoid). */
static void case_unary_tails(tg_op op, tg_rng *rng)
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
static void case_tan(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -1.5, -1.2, 1.4, 1.55, 2.0, 3.0, -4.0);
}

/* asin, acos, atanh: within (-0.9, 0.9), and close to +-1 */
static void case_unit_interval(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -0.95, 0, 1e-3, 0.95, 0.99);
}

/* acosh: on [1.1, 3], close to 1, and large */
static void case_acosh(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_ABOVE1);
    CHECK_AT(op, rng, 1.01, 1.05, 5, 100, 1e4);
}

/* log1p: within (-0.9, 0.9), close to -1, small and large */
static void case_log1p(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -1e-3, 1e-8, 3, 100);
}

/* Defined everywhere (sin, cos, atan, sinh, cosh, asinh, expm1, erf, softplus, gelu, silu):
 * case_unary_tails, then farther out, where values reach e^12 and gradients e^-12, and
 * close to 0 */
static void case_math_tails(tg_op op, tg_rng *rng)
{
    case_unary_tails(op, rng);
    CHECK_AT(op, rng, -12, -7, -1e-4, 2e-5, 6, 12);
}

/* sign, floor, ceil: a zero gradient, which finite differences see away from the jumps
 * (sign's at 0, floor's and ceil's at the integers) */
static void case_zero_gradient(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, op == TG_OP_SIGN ? K_AWAY : K_FRAC);
    CHECK_AT(op, rng, -2.5, -0.25, 0.01, 0.5, 1.75, 100.5);
}

/* scale and add_scalar with non-trivial constants (the constant enters forward and VJP). */
static void case_with_constant(tg_op op, tg_rng *rng)
{
    static const double cs[] = {2.5, -0.75, 1.0 / 3.0, 0.0, -7.25};
    for (size_t j = 0; j < sizeof cs / sizeof cs[0]; j++) {
        spec s = {.op = op, .c = cs[j]};
        for (size_t i = 0; i < N_UNARY_SHAPES; i += 2)
            check_unary(rng, s, UNARY_SHAPES[i], K_NORMAL);
    }
}

/* Integer exponents on any input; non-integer ones (and -1) on positive inputs. */
static void case_pow(tg_op op, tg_rng *rng)
{
    static const struct {
        double c;
        kind k;
    } es[] = {
        {2, K_NORMAL}, {3, K_NORMAL}, {1, K_NORMAL}, {4, K_NORMAL},   {0.5, K_POS},
        {-1.5, K_POS}, {-1, K_DENOM}, {2.5, K_POS},  {1.0 / 3, K_POS}, {0, K_POS},
    };
    for (size_t j = 0; j < sizeof es / sizeof es[0]; j++) {
        spec s = {.op = op, .c = es[j].c};
        for (size_t i = 0; i < N_UNARY_SHAPES; i += 2)
            check_unary(rng, s, UNARY_SHAPES[i], es[j].k);
    }
}

/* clamp with finite, one-sided and degenerate bounds; inputs kept 0.01 away from both bounds
 * (the kinks), on both sides of them. */
static void case_clamp(tg_op op, tg_rng *rng)
{
    static const double bounds[][2] = {
        {-0.5, 0.7}, {-1.0, 1.0}, {0.25, 0.25}, {-INFINITY, 0.5}, {-0.3, INFINITY}, {-3, 3},
    };
    for (size_t j = 0; j < sizeof bounds / sizeof bounds[0]; j++) {
        spec s = {.op = op, .c = bounds[j][0], .hi = bounds[j][1]};
        for (size_t i = 0; i < N_UNARY_SHAPES; i++) {
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

static void case_matmul(tg_op op, tg_rng *rng)
{
    static const size_t mkn[][3] = {
        {1, 1, 1}, {3, 5, 2}, {7, 1, 4}, {2, 3, 1}, {1, 6, 1}, {4, 4, 4}, {1, 3, 5}, {5, 2, 3},
    };
    spec s = {.op = op};
    for (size_t i = 0; i < sizeof mkn / sizeof mkn[0]; i++) {
        size_t M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
        check_binary(rng, s, (shp)S2(M, K), K_NORMAL, (shp)S2(K, N), K_NORMAL);
    }
    static const size_t bmkn[][4] = {{2, 3, 4, 2}, {1, 2, 3, 2}, {3, 1, 2, 5}, {2, 2, 1, 2}};
    for (size_t i = 0; i < sizeof bmkn / sizeof bmkn[0]; i++) {
        size_t B = bmkn[i][0], M = bmkn[i][1], K = bmkn[i][2], N = bmkn[i][3];
        check_binary(rng, s, (shp)S3(B, M, K), K_NORMAL, (shp)S3(B, K, N), K_NORMAL);
    }
    /* NumPy's rules: a 1-D operand, and a 2-D operand used by every batch of a 3-D one (its
     * gradient summed over the batch); small ones run the plain loops, the larger ones (M*K*N
     * past 512) the GEMM kernel. */
    static const struct {
        shp a, b;
    } numpy[] = {
        {S1(3), S2(3, 4)},        {S2(4, 3), S1(3)},           {S1(5), S1(5)},
        {S1(1), S1(1)},           {S2(2, 3), S3(4, 3, 2)},     {S3(4, 2, 3), S2(3, 5)},
        {S1(3), S3(2, 3, 4)},     {S3(2, 4, 3), S1(3)},        {S1(600), S1(600)},
        {S1(30), S2(30, 20)},     {S2(20, 30), S1(30)},        {S2(9, 10), S3(3, 10, 8)},
        {S3(3, 9, 10), S2(10, 8)}, {S1(10), S3(3, 10, 60)},    {S3(3, 60, 10), S1(10)},
    };
    for (size_t i = 0; i < sizeof numpy / sizeof numpy[0]; i++)
        check_binary(rng, s, numpy[i].a, K_NORMAL, numpy[i].b, K_NORMAL);
    /* x @ x for square x: both operands' gradients land in one buffer. */
    s.fanout = true;
    check_unary(rng, s, (shp)S2(3, 3), K_NORMAL);
    check_unary(rng, s, (shp)S3(2, 2, 2), K_NORMAL);
}

static void case_transpose(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S2(1, 1), S2(2, 3), S2(4, 1), S2(1, 5), S2(3, 3)};
    spec s = {.op = op};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_unary(rng, s, shapes[i], K_NORMAL);
}

static void case_reshape(tg_op op, tg_rng *rng)
{
    static const struct {
        shp from, to;
    } rs[] = {
        {S2(2, 3), S2(3, 2)},       {S2(2, 3), S1(6)},    {S2(2, 3), S3(1, 6, 1)},
        {S0, S2(1, 1)},             {S1(1), S0},          {S3(2, 3, 4), S2(4, 6)},
        {S4(2, 1, 3, 2), S3(3, 2, 2)}, {S1(6), S4(1, 2, 1, 3)},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        spec s = {.op = op, .to = rs[i].to};
        check_unary(rng, s, rs[i].from, K_NORMAL);
    }
}

/* Reductions along every axis, negative ones included, and TG_ALL_AXES, keepdim or not. */
static void case_reduce(tg_op op, tg_rng *rng)
{
    kind k = op == TG_OP_MAX || op == TG_OP_MIN ? K_DISTINCT : K_NORMAL;
    static const shp shapes[] = {S0, S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int keep = 0; keep <= 1; keep++) {
            for (int axis = -r; axis < r; axis++) {
                spec s = {.op = op, .axis = axis, .keepdim = keep};
                check_unary(rng, s, shapes[i], k);
            }
            spec s = {.op = op, .axis = TG_ALL_AXES, .keepdim = keep};
            check_unary(rng, s, shapes[i], k);
        }
    }
}

/* softmax and log_softmax along each axis (by positive and by negative index). */
static void case_softmax(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S1(1), S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int axis = -r; axis < r; axis++) {
            spec s = {.op = op, .axis = axis};
            check_unary(rng, s, shapes[i], K_NORMAL);
        }
    }
}

/* ---- custom: a user-defined op (tg_custom), f64 callbacks written here ----------------------
 * sinprod(x0, ..., x{n-1}) = prod_i sin(x_i), elementwise over inputs of one shape, and
 * rowdot(a, b)[i] = sum_j a[i,j] b[i,j] (an output shape other than the inputs'). Custom ops
 * are not recorded through tg_apply (it refuses them): these functions call tg_custom. */
static tg_status sinprod_forward(const tg_custom_call *c)
{
    double *y = c->y;
    for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
        y[j] = 1;
        for (size_t i = 0; i < c->n; i++)
            y[j] *= sin(((const double *)tg_tensor_data_const(c->in[i]))[j]);
    }
    return TG_OK;
}

/* dx_i += dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp(const tg_custom_call *c)
{
    const double *dy = c->dy;
    for (size_t i = 0; i < c->n; i++) {
        double *dx = c->dx[i];
        if (!dx)
            continue;
        for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
            double p = cos(((const double *)tg_tensor_data_const(c->in[i]))[j]);
            for (size_t k = 0; k < c->n; k++)
                if (k != i)
                    p *= sin(((const double *)tg_tensor_data_const(c->in[k]))[j]);
            dx[j] += dy[j] * p;
        }
    }
    return TG_OK;
}

static const tg_custom_op SINPROD = {
    .name = "sinprod", .forward = sinprod_forward, .vjp = sinprod_vjp};

static tg_status rowdot_forward(const tg_custom_call *c)
{
    const double *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    double *y = c->y;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < k; j++)
            y[i] += a[i * k + j] * b[i * k + j];
    return TG_OK;
}

/* da[i,j] += dy[i] b[i,j], db[i,j] += dy[i] a[i,j] */
static tg_status rowdot_vjp(const tg_custom_call *c)
{
    const double *ab[2] = {tg_tensor_data_const(c->in[0]), tg_tensor_data_const(c->in[1])};
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    const double *dy = c->dy;
    for (int s = 0; s < 2; s++) {
        double *dx = c->dx[s];
        for (size_t i = 0; dx && i < m; i++)
            for (size_t j = 0; j < k; j++)
                dx[i * k + j] += dy[i] * ab[1 - s][i * k + j];
    }
    return TG_OK;
}

static const tg_custom_op ROWDOT = {.name = "rowdot", .forward = rowdot_forward, .vjp = rowdot_vjp};

/* ud: how many times each input is passed (fan-out when 2), or NULL for rowdot. */
static tg_tensor *sinprod_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const int times = *(const int *)ud;
    tg_tensor *args[2 * MAX_IN + 1];
    size_t m = 0;
    for (int t = 0; t < times; t++)
        for (size_t i = 0; i < n; i++)
            args[m++] = in[i];
    return tg_custom(tape, &SINPROD, NULL, args, m, tg_tensor_rank(in[0]), tg_tensor_shape(in[0]));
}

static tg_tensor *rowdot_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)ud;
    return tg_custom(tape, &ROWDOT, NULL, in, n, 1, tg_tensor_shape(in[0]));
}

static void case_custom(tg_op op, tg_rng *rng)
{
    (void)op;
    static const int once = 1, twice = 2;
    for (size_t si = 0; si < N_UNARY_SHAPES; si++) {
        for (size_t n = 1; n <= MAX_IN + 1; n++) { /* 1, 2 and 3 inputs */
            tg_tensor *in[MAX_IN + 1];
            for (size_t i = 0; i < n; i++)
                in[i] = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
            check_fn("custom sinprod", "-", sinprod_fn, (void *)&once, in, n, tg_rng_next(rng));
        }
        tg_tensor *x = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
        check_fn("custom sinprod", "fan-out (x, x)", sinprod_fn, (void *)&twice, &x, 1,
                 tg_rng_next(rng));
    }
    static const shp rows[] = {S2(1, 1), S2(3, 4), S2(5, 1), S2(1, 6)};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tg_tensor *in[2] = {make_input(rng, rows[i], K_NORMAL), make_input(rng, rows[i], K_NORMAL)};
        check_fn("custom rowdot", "-", rowdot_fn, NULL, in, 2, tg_rng_next(rng));
    }
}

/* ---- shape, indexing and joins -------------------------------------------------------------
 * Each case function builds its own check: the attributes ride in an `index_spec`, and every
 * op is still applied through tg_apply. take's indices are a constant of the function (not an
 * input: finite differences would move them off the integers). */

typedef struct index_spec {
    tg_op op;
    tg_attrs at;
    size_t n;                        /* concat, stack: inputs joined */
    shp idx;                         /* take: the index tensor's shape */
    double idx_vals[24];             /* and its values */
} index_spec;

static tg_tensor *index_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const index_spec *s = ud;
    if (s->op == TG_OP_TAKE) {
        tg_tensor *idx = tg_constant(tape, TG_F64, s->idx.rank, s->idx.d, s->idx_vals);
        tg_tensor *xs[2] = {in[0], idx};
        return tg_apply(tape, s->op, xs, 2, &s->at);
    }
    return tg_apply(tape, s->op, in, n, &s->at);
}

static void check_index(tg_rng *rng, const index_spec *s, shp x)
{
    char attrs[160], ax[64] = "";
    for (int i = 0; i < x.rank; i++)
        snprintf(ax + strlen(ax), sizeof ax - strlen(ax), "%s%d", i ? "," : "", s->at.axes[i]);
    snprintf(attrs, sizeof attrs, "axis=%d start=%td stop=%td step=%td index=%td n=%zu axes=%s",
             s->at.axis, s->at.start, s->at.stop, s->at.step, s->at.index, s->n, ax);
    tg_tensor *in[4];
    size_t n = s->op == TG_OP_CONCAT || s->op == TG_OP_STACK ? s->n : 1;
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(rng, x, K_NORMAL);
    check_fn(tg_op_name(s->op), attrs, index_fn, (void *)s, in, n, tg_rng_next(rng));
}

static const shp INDEX_SHAPES[] = {S1(1), S1(7), S2(3, 5), S2(1, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
#define N_INDEX_SHAPES (sizeof INDEX_SHAPES / sizeof INDEX_SHAPES[0])

/* Every axis (by positive and negative number), with starts and stops negative, past either
 * end (clamped), TG_END, empty ranges, and steps 1 to past the end. */
static void case_slice(tg_op op, tg_rng *rng)
{
    static const ptrdiff_t ranges[][3] = {
        {0, TG_END, 1}, {1, TG_END, 1}, {0, -1, 1},   {-2, TG_END, 1}, {1, 7, 2},
        {-100, 100, 1}, {0, TG_END, 2}, {-3, -1, 1},  {2, 1, 1},       {0, TG_END, 3},
        {1, TG_END, 50}, {5, 2, 2},     {-1, TG_END, 1},
    };
    for (size_t i = 0; i < N_INDEX_SHAPES; i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
                if ((r + (size_t)axis + i) % 3) /* a third of the combinations */
                    continue;
                index_spec s = {.op = op,
                                .at = {.axis = axis,
                                       .start = ranges[r][0],
                                       .stop = ranges[r][1],
                                       .step = ranges[r][2]}};
                check_index(rng, &s, x);
            }
    }
}

/* Every axis, every index, by positive and negative number. */
static void case_select(tg_op op, tg_rng *rng)
{
    for (size_t i = 0; i < N_INDEX_SHAPES; i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++) {
            ptrdiff_t dim = (ptrdiff_t)x.d[axis < 0 ? axis + x.rank : axis];
            for (ptrdiff_t index = -dim; index < dim; index += 1 + (dim > 3))
                check_index(rng, &(index_spec){.op = op, .at = {.axis = axis, .index = index}}, x);
        }
    }
}

/* n = 1..4 inputs along every axis (concat: of one shape here; of different lengths along the
 * axis in case_concat_lengths). */
static void case_join(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 1, 3)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        shp x = shapes[i];
        int lo = op == TG_OP_STACK ? -(x.rank + 1) : -x.rank;
        int hi = op == TG_OP_STACK ? x.rank : x.rank - 1;
        for (size_t n = 1; n <= 4; n++)
            for (int axis = lo; axis <= hi; axis++)
                check_index(rng, &(index_spec){.op = op, .at = {.axis = axis}, .n = n}, x);
    }
}

/* concat of inputs whose lengths along the axis differ: (2,1,3) (2,3,3) (2,2,3) on axis 1. */
static tg_tensor *concat_lengths_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)ud;
    return tg_concat(tape, in, n, -2);
}

static void case_concat(tg_op op, tg_rng *rng)
{
    case_join(op, rng);
    static const shp parts[][3] = {{S3(2, 1, 3), S3(2, 3, 3), S3(2, 2, 3)},
                                   {S2(1, 2), S2(4, 2), S2(0, 2)}};
    for (size_t p = 0; p < 2; p++) {
        tg_tensor *in[3];
        for (size_t i = 0; i < 3; i++)
            in[i] = make_input(rng, parts[p][i], K_NORMAL);
        check_fn("concat", "lengths differ, axis -2", concat_lengths_fn, NULL, in, 3,
                 tg_rng_next(rng));
    }
}

/* take along every axis, with index tensors 0-d to 2-D, negative and repeated indices (the
 * scatter-add accumulates). */
static void case_take(tg_op op, tg_rng *rng)
{
    static const shp xs[] = {S1(5), S2(3, 4), S3(2, 3, 2)};
    static const shp idx_shapes[] = {S0, S1(1), S1(4), S2(2, 3)};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        shp x = xs[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t k = 0; k < sizeof idx_shapes / sizeof idx_shapes[0]; k++) {
                shp is = idx_shapes[k];
                if (x.rank - 1 + is.rank > TG_MAX_RANK)
                    continue;
                index_spec s = {.op = op, .at = {.axis = axis}, .idx = is};
                long dim = (long)x.d[axis < 0 ? axis + x.rank : axis];
                size_t m = 1;
                for (int d = 0; d < is.rank; d++)
                    m *= is.d[d];
                for (size_t j = 0; j < m; j++) /* in -dim..dim-1, repeats likely */
                    s.idx_vals[j] = (double)((long)tg_rng_below(rng, (uint64_t)(2 * dim)) - dim);
                if (m > 1)
                    s.idx_vals[m - 1] = s.idx_vals[0]; /* at least one repeat */
                check_index(rng, &s, x);
            }
    }
}

/* Every permutation of 1..4 axes (identity included); negative entries too. */
static void case_permute(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int r = shapes[i].rank;
        int p[TG_MAX_RANK] = {0, 1, 2, 3};
        size_t count = 1;
        for (int k = 2; k <= r; k++)
            count *= (size_t)k;
        for (size_t c = 0; c < count; c++) {
            /* the c-th permutation, from its factorial digits */
            int pool[TG_MAX_RANK] = {0, 1, 2, 3}, left = r;
            size_t code = c;
            for (int k = 0; k < r; k++) {
                size_t f = 1;
                for (int j = 2; j < left; j++)
                    f *= (size_t)j;
                int pick = (int)(code / f);
                code %= f;
                p[k] = pool[pick];
                for (int j = pick; j < left - 1; j++)
                    pool[j] = pool[j + 1];
                left--;
            }
            index_spec s = {.op = op};
            for (int k = 0; k < r; k++)
                s.at.axes[k] = (c % 2 && k == 0) ? p[k] - r : p[k];
            check_index(rng, &s, shapes[i]);
        }
    }
}

/* ---- binary math, comparisons, where, min and prod ---------------------------------------- */

/* The broadcasting pairs of the binary ops (case_binary's, and a few more). */
static const struct {
    shp a, b;
} BCAST_PAIRS[] = {
    {S0, S0},
    {S1(5), S1(5)},
    {S2(2, 3), S2(2, 3)},
    {S3(2, 3, 2), S3(2, 3, 2)},
    {S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
    {S2(3, 1), S2(1, 4)},
    {S3(2, 3, 4), S1(4)},
    {S1(4), S3(2, 3, 4)},
    {S3(2, 1, 4), S2(3, 1)},
    {S0, S2(2, 3)},
    {S2(2, 3), S0},
    {S2(1, 1), S2(3, 4)},
    {S3(2, 3, 4), S3(1, 3, 1)},
    {S4(2, 1, 3, 1), S3(4, 1, 2)},
    {S4(2, 3, 1, 2), S2(1, 2)},
};
#define N_BCAST_PAIRS (sizeof BCAST_PAIRS / sizeof BCAST_PAIRS[0])

/* Moves every element of t onto the grid 0.25 k + offset, plus up to 0.05: an input snapped
 * with offset 0 and one with 0.125 are at least 0.075 apart wherever they meet. */
static tg_tensor *snap(tg_tensor *t, double offset, tg_rng *rng)
{
    for (size_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, 0.25 * round(4 * tg_tensor_get(t, i)) + offset +
                                0.05 * tg_rng_uniform(rng));
    return t;
}

/* minimum and maximum: a and b kept apart (no ties) at every broadcasting pair, either way
 * round; then min(x, x) and max(x, x), all ties, whose split gradient dy/2 + dy/2 must be
 * the slope 1 of x. */
static void case_minmax(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < N_BCAST_PAIRS; i++) {
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        check_op(&s, in, 2, tg_rng_next(rng));
    }
    s.fanout = true;
    static const shp fan[] = {S0, S1(4), S2(2, 3), S3(2, 2, 3)};
    for (size_t i = 0; i < sizeof fan / sizeof fan[0]; i++)
        check_unary(rng, s, fan[i], K_NORMAL);
}

/* atan2(y, x): y kept 0.05 away from 0, so away from the origin and from the jump across the
 * negative x axis; x any. */
static void case_atan2(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < N_BCAST_PAIRS; i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, K_AWAY, BCAST_PAIRS[i].b, K_NORMAL);
    s.fanout = true; /* atan2(x, x) */
    check_unary(rng, s, (shp)S2(2, 3), K_AWAY);
}

/* a^b: a positive, b any; x^x too. */
static void case_pow_tensor(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < N_BCAST_PAIRS; i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, K_POS, BCAST_PAIRS[i].b, K_NORMAL);
    s.fanout = true;
    check_unary(rng, s, (shp)S0, K_POS);
    check_unary(rng, s, (shp)S3(2, 1, 3), K_POS);
}

/* The flat index in x of element iy of y, x broadcast against y's shape. */
static size_t bcast_index(const tg_tensor *x, const tg_tensor *y, size_t iy)
{
    int ry = tg_tensor_rank(y), rx = tg_tensor_rank(x);
    size_t ix = 0, stride = 1;
    for (int d = ry - 1; d >= 0; d--) {
        size_t dim = tg_tensor_dim(y, d), k = iy % dim;
        iy /= dim;
        int dx = rx - ry + d;
        if (dx < 0)
            continue;
        size_t xd = tg_tensor_dim(x, dx);
        ix += (xd == 1 ? 0 : k) * stride;
        stride *= xd;
    }
    return ix;
}

static bool compare(tg_op op, double a, double b)
{
    switch (op) {
    case TG_OP_LT: return a < b;
    case TG_OP_LE: return a <= b;
    case TG_OP_GT: return a > b;
    case TG_OP_GE: return a >= b;
    case TG_OP_EQ: return a == b;
    case TG_OP_NE: return a != b;
    default: cr_assert_fail("%s is no comparison", tg_op_name(op)); return false;
    }
}

/* f = sum(a * cmp(a, b)) + sum(b * cmp(b, a)): the masks are constants to the gradient. */
static tg_tensor *masked_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const tg_op *op = ud;
    tg_tensor *a = in[0], *b = n > 1 ? in[1] : in[0];
    tg_tensor *ab[2] = {a, b}, *ba[2] = {b, a};
    tg_tensor *m1 = tg_apply(tape, *op, ab, 2, NULL), *m2 = tg_apply(tape, *op, ba, 2, NULL);
    return tg_add(tape, tg_sum(tape, tg_mul(tape, a, m1), TG_ALL_AXES, false),
                  tg_sum(tape, tg_mul(tape, b, m2), TG_ALL_AXES, false));
}

/* Comparisons: at every broadcasting pair, the exact 0/1 mask against C's operator on values
 * from {-1, 0, 1} and NaN (ties and NaN included), of the broadcast shape and the inputs'
 * dtype, never requiring grad; backward from a mask alone fails (nothing requires grad); and
 * a mask used as a factor passes the gradient through the other factor only (gradcheck, with
 * a and b kept apart so no mask flips, and cmp(x, x)). */
static void case_compare(tg_op op, tg_rng *rng)
{
    const char *name = tg_op_name(op);
    for (size_t i = 0; i < N_BCAST_PAIRS; i++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = di ? TG_F64 : TG_F32;
            tg_tensor *ab[2];
            const shp sh[2] = {BCAST_PAIRS[i].a, BCAST_PAIRS[i].b};
            for (int k = 0; k < 2; k++) {
                ab[k] = tg_tensor_zeros(dt, sh[k].rank, sh[k].d);
                cr_assert(ab[k]);
                for (size_t e = 0; e < tg_tensor_numel(ab[k]); e++) {
                    uint64_t r = tg_rng_below(rng, 7);
                    tg_tensor_set(ab[k], e, r == 6 ? NAN : (double)(r % 3) - 1);
                }
                tg_tensor_set_requires_grad(ab[k], true);
            }
            tg_tape *tape = tg_tape_new();
            cr_assert(tape);
            tg_tensor *m = tg_apply(tape, op, ab, 2, NULL);
            char sa[64], sb[64];
            fmt_shp(sa, sizeof sa, ab[0]);
            fmt_shp(sb, sizeof sb, ab[1]);
            cr_assert(m, "%s(%s, %s): %s", name, sa, sb, tg_tape_error(tape));
            cr_expect_eq(tg_tensor_dtype(m), dt);
            cr_expect(!tg_tensor_requires_grad(m), "%s(%s, %s) requires grad", name, sa, sb);
            for (size_t e = 0; e < tg_tensor_numel(m); e++) {
                double a = tg_tensor_get(ab[0], bcast_index(ab[0], m, e));
                double b = tg_tensor_get(ab[1], bcast_index(ab[1], m, e));
                double want = compare(op, a, b) ? 1 : 0;
                cr_expect(tg_tensor_get(m, e) == want,
                          "%s(%s, %s)[%zu]: %g for (%g, %g), expected %g", name, sa, sb, e,
                          tg_tensor_get(m, e), a, b, want);
            }
            tg_tensor *g[2] = {NULL, NULL};
            tg_tensor *y = tg_sum(tape, m, TG_ALL_AXES, false);
            cr_expect_eq(tg_grad(tape, y, ab, 2, g), TG_EINVAL,
                         "%s: tg_grad through a mask alone", name);
            ts_assert_has(tg_last_error(), "does not depend on any tensor that requires grad");
            cr_expect(g[0] == NULL && g[1] == NULL);
            tg_tape_free(tape);
            tg_tensor_free(ab[0]);
            tg_tensor_free(ab[1]);
        }
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        check_fn(name, "a * cmp(a, b) + b * cmp(b, a)", masked_fn, &op, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    check_fn(name, "x * cmp(x, x), twice", masked_fn, &op, &x, 1, tg_rng_next(rng));
}

/* where(cond(c), a, b) with cond as the ud says: gt(c, 0), a mask, or relu(c), values whose
 * zeros are false; c is kept 0.05 away from 0, so no perturbation flips it. */
typedef enum where_cond { W_MASK, W_RELU } where_cond;

static tg_tensor *where_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    const where_cond *how = ud;
    tg_tensor *c = *how == W_MASK ? tg_gt(tape, in[0], tg_scalar(tape, TG_F64, 0))
                                  : tg_relu(tape, in[0]);
    tg_tensor *w[3] = {c, in[1], in[2]};
    return tg_apply(tape, TG_OP_WHERE, w, 3, NULL);
}

/* The fan-out of x into all three: where(x > 0, x, x * x), and where(x, x, -x) (x nonzero:
 * x everywhere). */
static tg_tensor *where_fanout_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *pos = tg_gt(tape, x, tg_scalar(tape, TG_F64, 0));
    tg_tensor *y = tg_where(tape, pos, x, tg_mul(tape, x, x));
    return tg_add(tape, y, tg_where(tape, x, x, tg_neg(tape, x)));
}

/* where: every triple of broadcasting shapes (each of the three the largest, or none), with
 * a mask and with plain values as the condition; and fan-out. */
static void case_where(tg_op op, tg_rng *rng)
{
    static const struct {
        shp c, a, b;
    } triples[] = {
        {S0, S0, S0},
        {S1(5), S1(5), S1(5)},
        {S2(2, 3), S2(2, 3), S2(2, 3)},
        {S3(2, 3, 2), S3(2, 3, 2), S3(2, 3, 2)},
        {S4(2, 1, 2, 3), S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
        {S2(2, 1), S2(2, 3), S0},
        {S1(3), S2(2, 1), S2(2, 3)},
        {S2(2, 3), S1(3), S2(2, 1)},
        {S3(2, 1, 4), S2(3, 1), S1(4)},
        {S1(4), S3(2, 3, 4), S3(2, 1, 1)},
        {S0, S2(3, 1), S2(1, 4)},
        {S4(2, 1, 3, 1), S3(4, 1, 2), S2(3, 1)},
        {S2(1, 1), S1(1), S0},
    };
    for (size_t i = 0; i < sizeof triples / sizeof triples[0]; i++) {
        for (int how = W_MASK; how <= W_RELU; how++) {
            tg_tensor *in[3] = {make_input(rng, triples[i].c, K_AWAY),
                                make_input(rng, triples[i].a, K_NORMAL),
                                make_input(rng, triples[i].b, K_NORMAL)};
            where_cond w = (where_cond)how;
            check_fn(tg_op_name(op), how == W_MASK ? "cond gt(c, 0)" : "cond relu(c)", where_fn,
                     &w, in, 3, tg_rng_next(rng));
        }
    }
    static const shp fan[] = {S0, S1(4), S2(2, 3), S3(2, 2, 3)};
    for (size_t i = 0; i < sizeof fan / sizeof fan[0]; i++) {
        tg_tensor *x = make_input(rng, fan[i], K_AWAY);
        check_fn(tg_op_name(op), "fan-out (x, x, x)", where_fanout_fn, NULL, &x, 1,
                 tg_rng_next(rng));
    }
}

/* prod: as the other reductions, and with zeros: a lane of one zero, of two, and all zero
 * (prod is linear in each element, so the finite differences are exact there too). */
static void case_prod(tg_op op, tg_rng *rng)
{
    case_reduce(op, rng);
    static const shp shapes[] = {S1(4), S2(3, 4), S3(2, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int zeros = 1; zeros <= 3; zeros++) {
            for (int axis = -1; axis < r; axis++) {
                tg_tensor *x = make_input(rng, shapes[i], K_NORMAL);
                size_t n = tg_tensor_numel(x);
                for (int z = 0; z < zeros; z++) /* the first elements, then at random */
                    tg_tensor_set(x, z == 0 ? 0 : (size_t)tg_rng_below(rng, n), 0.0);
                if (zeros == 3)
                    for (size_t e = 0; e < n; e += 2)
                        tg_tensor_set(x, e, 0.0);
                spec s = {.op = op, .axis = axis < 0 ? TG_ALL_AXES : axis, .keepdim = zeros == 2};
                check_op(&s, &x, 1, tg_rng_next(rng));
            }
        }
    }
}

/* The table: every op must have an entry (the coverage test checks). */
static const case_fn CASES[TG_OP_COUNT] = {
    [TG_OP_CONST] = case_const,
    [TG_OP_DETACH] = case_detach,
    [TG_OP_ADD] = case_binary,
    [TG_OP_SUB] = case_binary,
    [TG_OP_MUL] = case_binary,
    [TG_OP_DIV] = case_binary,
    [TG_OP_NEG] = case_unary,
    [TG_OP_SCALE] = case_with_constant,
    [TG_OP_ADD_SCALAR] = case_with_constant,
    [TG_OP_POW] = case_pow,
    [TG_OP_SQUARE] = case_unary,
    [TG_OP_SQRT] = case_unary_positive,
    [TG_OP_EXP] = case_unary_tails,
    [TG_OP_LOG] = case_unary_positive,
    [TG_OP_ABS] = case_unary_kink,
    [TG_OP_SIGMOID] = case_unary_tails,
    [TG_OP_TANH] = case_unary_tails,
    [TG_OP_RELU] = case_unary_kink,
    [TG_OP_LOG_SIGMOID] = case_unary_tails,
    [TG_OP_CLAMP] = case_clamp,
    [TG_OP_MATMUL] = case_matmul,
    [TG_OP_TRANSPOSE] = case_transpose,
    [TG_OP_RESHAPE] = case_reshape,
    [TG_OP_SUM] = case_reduce,
    [TG_OP_MEAN] = case_reduce,
    [TG_OP_MAX] = case_reduce,
    [TG_OP_LOGSUMEXP] = case_reduce,
    [TG_OP_SOFTMAX] = case_softmax,
    [TG_OP_LOG_SOFTMAX] = case_softmax,
    /* elementwise math */
    [TG_OP_SIN] = case_math_tails,
    [TG_OP_COS] = case_math_tails,
    [TG_OP_TAN] = case_tan,
    [TG_OP_ASIN] = case_unit_interval,
    [TG_OP_ACOS] = case_unit_interval,
    [TG_OP_ATAN] = case_math_tails,
    [TG_OP_SINH] = case_math_tails,
    [TG_OP_COSH] = case_math_tails,
    [TG_OP_ASINH] = case_math_tails,
    [TG_OP_ACOSH] = case_acosh,
    [TG_OP_ATANH] = case_unit_interval,
    [TG_OP_EXPM1] = case_math_tails,
    [TG_OP_LOG1P] = case_log1p,
    [TG_OP_ERF] = case_math_tails,
    [TG_OP_SOFTPLUS] = case_math_tails,
    [TG_OP_GELU] = case_math_tails,
    [TG_OP_SILU] = case_math_tails,
    [TG_OP_SIGN] = case_zero_gradient,
    [TG_OP_FLOOR] = case_zero_gradient,
    [TG_OP_CEIL] = case_zero_gradient,
    [TG_OP_SLICE] = case_slice,
    [TG_OP_SELECT] = case_select,
    [TG_OP_CONCAT] = case_concat,
    [TG_OP_STACK] = case_join,
    [TG_OP_TAKE] = case_take,
    [TG_OP_PERMUTE] = case_permute,
    [TG_OP_MINIMUM] = case_minmax,
    [TG_OP_MAXIMUM] = case_minmax,
    [TG_OP_ATAN2] = case_atan2,
    [TG_OP_POW_TENSOR] = case_pow_tensor,
    [TG_OP_LT] = case_compare,
    [TG_OP_LE] = case_compare,
    [TG_OP_GT] = case_compare,
    [TG_OP_GE] = case_compare,
    [TG_OP_EQ] = case_compare,
    [TG_OP_NE] = case_compare,
    [TG_OP_WHERE] = case_where,
    [TG_OP_MIN] = case_reduce,
    [TG_OP_PROD] = case_prod,
    [TG_OP_CUSTOM] = case_custom,
};

static void run_op(tg_op op)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint64_t)op);
    g_cases = 0;
    CASES[op](op, &rng);
    cr_expect(g_cases > 0, "op %s: its case ran no check", tg_op_name(op));
}

Test(gradcheck, every_op_has_a_case)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        cr_expect(CASES[op] != NULL, "op %s (%d) has no gradcheck case", tg_op_name((tg_op)op),
                  op);
    }
}

/* One test per op, so that a failure names it: the parameters are the op table itself. */
ParameterizedTestParameters(gradcheck, each_op)
{
    static tg_op ops[TG_OP_COUNT];
    for (int op = 0; op < TG_OP_COUNT; op++)
        ops[op] = (tg_op)op;
    return cr_make_param_array(tg_op, ops, TG_OP_COUNT);
}

ParameterizedTest(tg_op *op, gradcheck, each_op)
{
    cr_assert(CASES[*op] != NULL, "no gradcheck case for %s", tg_op_name(*op));
    run_op(*op);
}

/* ---- composite functions ------------------------------------------------------------------ */

static void check_composite(const char *name, tg_check_fn fn, const shp *shapes,
                            const kind *kinds, size_t n, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_tensor *in[MAX_IN * 4];
    cr_assert(n <= sizeof in / sizeof in[0]);
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(&rng, shapes[i], kinds[i]);
    check_fn(name, "composite", fn, NULL, in, n, tg_rng_next(&rng));
}

/* A 2-layer MLP: loss = -mean_i sum_j onehot[i,j] * log_softmax(tanh(x W1 + b1) W2 + b2)[i,j]
 * with inputs x (4,3), W1 (3,5), b1 (5), W2 (5,3), b2 (3). */
static tg_tensor *mlp_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double onehot[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0};
    size_t shape[2] = {4, 3};
    tg_tensor *y = tg_constant(t, TG_F64, 2, shape, onehot);
    tg_tensor *h = tg_tanh(t, tg_add(t, tg_matmul(t, in[0], in[1]), in[2]));
    tg_tensor *logits = tg_add(t, tg_matmul(t, h, in[3]), in[4]);
    tg_tensor *ll = tg_sum(t, tg_mul(t, y, tg_log_softmax(t, logits, -1)), -1, false);
    return tg_neg(t, tg_mean(t, ll, 0, false));
}

Test(gradcheck, composite_mlp_tanh_log_softmax)
{
    const shp s[5] = {S2(4, 3), S2(3, 5), S1(5), S2(5, 3), S1(3)};
    const kind k[5] = {K_NORMAL, K_NORMAL, K_NORMAL, K_NORMAL, K_NORMAL};
    check_composite("mlp", mlp_fn, s, k, 5, 7);
}

/* sum(sigmoid(x) * exp(-x^2)) */
static tg_tensor *sig_gauss_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    return tg_sum(t, tg_mul(t, tg_sigmoid(t, x), tg_exp(t, tg_neg(t, tg_square(t, x)))),
                  TG_ALL_AXES, false);
}

Test(gradcheck, composite_sigmoid_times_gaussian)
{
    const shp s[1] = {S2(3, 4)};
    const kind k[1] = {K_NORMAL};
    check_composite("sum(sigmoid(x) * exp(-x^2))", sig_gauss_fn, s, k, 1, 8);
}

/* The same input used many times, directly and through shared intermediates:
 * f = sum(x @ x^T) + sum(x*x*x + tanh(x)*x - x/(x*x + 1) + softmax(x)*x) + sum(h @ h^T) with
 * h = tanh(x), followed by a 12-step chain z = 0.5 z + tanh(z) * x. Later uses of x run their
 * VJPs first, so every VJP must add to a gradient that is already there. */
static tg_tensor *fanout_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *xxt = tg_sum(t, tg_matmul(t, x, tg_transpose(t, x)), TG_ALL_AXES, false);
    tg_tensor *x2 = tg_mul(t, x, x);
    tg_tensor *a = tg_mul(t, x2, x);
    a = tg_add(t, a, tg_mul(t, tg_tanh(t, x), x));
    a = tg_sub(t, a, tg_div(t, x, tg_add_scalar(t, x2, 1.0)));
    a = tg_add(t, a, tg_mul(t, tg_softmax(t, x, -1), x));
    tg_tensor *h = tg_tanh(t, x);
    tg_tensor *f = tg_add(t, tg_sum(t, a, TG_ALL_AXES, false),
                          tg_sum(t, tg_matmul(t, h, tg_transpose(t, h)), TG_ALL_AXES, false));
    tg_tensor *z = x;
    for (int i = 0; i < 12; i++)
        z = tg_add(t, tg_scale(t, z, 0.5), tg_mul(t, tg_tanh(t, z), x));
    return tg_add(t, tg_add(t, f, xxt), tg_mean(t, z, TG_ALL_AXES, false));
}

Test(gradcheck, composite_fan_out)
{
    const shp s[1] = {S2(3, 4)};
    const kind k[1] = {K_NORMAL};
    check_composite("fan-out", fanout_fn, s, k, 1, 9);
}

/* Layer normalization over the last axis, scaled and shifted: broadcasting in every VJP. */
static tg_tensor *layernorm_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *c = tg_sub(t, x, tg_mean(t, x, -1, true));
    tg_tensor *var = tg_mean(t, tg_square(t, c), -1, true);
    tg_tensor *xn = tg_div(t, c, tg_sqrt(t, tg_add_scalar(t, var, 1e-5)));
    tg_tensor *y = tg_add(t, tg_mul(t, xn, in[1]), in[2]);
    return tg_sum(t, tg_mul(t, y, tg_sigmoid(t, y)), TG_ALL_AXES, false);
}

Test(gradcheck, composite_layernorm)
{
    const shp s[3] = {S3(2, 3, 4), S1(4), S1(4)};
    const kind k[3] = {K_NORMAL, K_NORMAL, K_NORMAL};
    check_composite("layernorm", layernorm_fn, s, k, 3, 10);
}

/* Cross-entropy two ways in one graph: logsumexp(z) - z[label] and -log_softmax(z)[label],
 * plus max-pooling and a reshape: a non-scalar output (checked through random weights). */
static tg_tensor *mixed_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double onehot[6] = {0, 1, 0, 1, 0, 0};
    size_t shape[2] = {2, 3}, flat[1] = {6};
    tg_tensor *y = tg_constant(t, TG_F64, 2, shape, onehot);
    tg_tensor *z = tg_matmul(t, in[0], in[1]); /* (2,4) @ (4,3) */
    tg_tensor *ce1 = tg_sub(t, tg_logsumexp(t, z, 1, false), tg_sum(t, tg_mul(t, z, y), 1, false));
    tg_tensor *ce2 = tg_neg(t, tg_sum(t, tg_mul(t, tg_log_softmax(t, z, 1), y), -1, false));
    tg_tensor *pooled = tg_max(t, tg_reshape(t, z, 1, flat), 0, true);
    return tg_add(t, tg_add(t, ce1, tg_scale(t, ce2, 0.5)), pooled); /* shape (2) */
}

Test(gradcheck, composite_cross_entropy_non_scalar)
{
    const shp s[2] = {S2(2, 4), S2(4, 3)};
    const kind k[2] = {K_NORMAL, K_NORMAL};
    check_composite("cross-entropy", mixed_fn, s, k, 2, 11);
}

/* ---- tg_gradcheck itself --------------------------------------------------------------------- */

/* y = sum(x^2) with the gradient deliberately wrong through detach: analytic x, numeric 2x. */
static tg_tensor *wrong_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(t, tg_mul(t, in[0], tg_detach(t, in[0])), TG_ALL_AXES, false);
}

Test(gradcheck, reports_a_wrong_gradient_and_its_error)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1.0, -2.0, 0.5), false);
    double err = -1;
    tg_status st = tg_gradcheck(wrong_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_ENUMERIC, "status %s: %s", tg_status_name(st), tg_last_error());
    /* worst element: analytic -2, numeric -4: |2| / max(1, 2, 4) = 0.5 */
    cr_expect(fabs(err - 0.5) < 1e-6, "max error %g, expected 0.5", err);
    ts_assert_has(tg_last_error(), "gradcheck");
    tg_tensor_free(x);
}

static tg_tensor *f32_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    size_t shape[1] = {3};
    const float one[3] = {1, 1, 1};
    tg_tensor *c = tg_constant(t, TG_F32, 1, shape, one);
    return tg_sum(t, tg_mul(t, in[0], c), TG_ALL_AXES, false); /* f64 * f32: an error */
}

static tg_tensor *null_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)t;
    (void)in;
    (void)n;
    (void)ud;
    return NULL;
}

static tg_tensor *f64_sum_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(t, tg_square(t, in[0]), TG_ALL_AXES, false);
}

Test(gradcheck, reports_errors_of_fn_and_arguments)
{
    const double v[3] = {1.0, -2.0, 0.5};
    tg_tensor *x = ts_vec(TG_F64, 3, v, false);
    tg_status st = tg_gradcheck(f32_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EDTYPE, "mixed dtypes: %s: %s", tg_status_name(st), tg_last_error());
    st = tg_gradcheck(null_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "fn returning NULL: %s: %s", tg_status_name(st),
                 tg_last_error());
    st = tg_gradcheck(NULL, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "NULL fn: %s", tg_status_name(st));
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = 0;
    st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, &opt, NULL);
    cr_expect_eq(st, TG_EINVAL, "eps 0: %s", tg_status_name(st));
    tg_tensor *none = NULL;
    st = tg_gradcheck(f64_sum_fn, NULL, &none, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "NULL input: %s", tg_status_name(st));
    /* The inputs are left as they were (the check perturbs copies). */
    st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    for (size_t i = 0; i < 3; i++)
        cr_expect(tg_tensor_get(x, i) == v[i]);
    cr_expect(tg_tensor_grad_data(x) == NULL, "gradcheck wrote the input's grad");
    tg_tensor_free(x);
}

Test(gradcheck, accepts_f32_inputs_as_f64_copies)
{
    size_t shape[2] = {2, 2};
    const float v[4] = {0.5f, -1.25f, 2.0f, 0.75f};
    tg_tensor *x = tg_tensor_from_data(TG_F32, 2, shape, v);
    double err = -1;
    tg_status st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    cr_expect(err >= 0 && err <= TOL, "max error %g", err);
    tg_tensor_free(x);
}
