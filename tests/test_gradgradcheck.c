/* test_gradgradcheck.c: every op in the table differentiated twice (tg_gradgradcheck, f64): the
 * gradient that tg_grad_graph records, differentiated again, against central differences of
 * tg_grad's first-order gradient, at seeded random shapes 0-d to 4-D, broadcasting, attributes
 * and fan-out; every function is checked as it is and squared (op(x) * op(x)), so that each
 * op's recorded VJP also receives a gradient that depends on the inputs.
 *
 * As in test_gradcheck.c the cases are a table keyed by tg_op, CASES: every_op_has_a_case
 * walks the op table and fails for an op without a case, and each_op runs one test per op.
 * Inputs stay away from kinks and domain edges as there. The ops that carry no gradient
 * (const, detach, the comparisons) are checked to stay out of it: their outputs never require
 * grad and the recorded gradients through them are constants. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

#define TOL 1e-6
#define EPS 1e-6

/* ---- inputs ---------------------------------------------------------------------------- */

typedef enum kind {
    K_NORMAL,   /* N(0, 1) */
    K_POS,      /* uniform [0.5, 2]: sqrt, log, pow with non-integer exponents */
    K_AWAY,     /* |x| in [0.05, 2], random sign: relu, abs, sign (away from 0) */
    K_DENOM,    /* |x| in [0.5, 2], random sign: divisors */
    K_DISTINCT, /* distinct values at least 0.2 apart, shuffled: max, min (no ties) */
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
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static tg_tensor *make_input(tg_rng *rng, shp s, kind k)
{
    static const double lo[] = {0, 0.5, 0.05, 0.5, 0, -0.9, 1.1, 0.1};
    static const double hi[] = {0, 2.0, 2.0, 2.0, 0, 0.9, 3.0, 0.9};
    tg_tensor *t = k == K_NORMAL ? tg_tensor_randn(TG_F64, s.rank, s.d, rng, 0.0, 1.0)
                                 : tg_tensor_rand(TG_F64, s.rank, s.d, rng, lo[k], hi[k]);
    cr_assert(t != NULL, "making an input: %s", tg_last_error());
    double *v = tg_tensor_data(t);
    size_t n = tg_tensor_numel(t);
    for (size_t i = 0; i < n; i++) {
        if ((k == K_AWAY || k == K_DENOM) && tg_rng_below(rng, 2))
            v[i] = -v[i];
        else if (k == K_FRAC)
            v[i] += (double)tg_rng_below(rng, 6) - 3;
        else if (k == K_DISTINCT)
            v[i] = 0.25 * ((double)i - (double)n / 2) + 0.05 * tg_rng_uniform(rng);
    }
    for (size_t i = n; k == K_DISTINCT && i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)tg_rng_below(rng, i);
        double tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
    return t;
}

/* Moves every element of t onto the grid 0.25 k + offset, plus up to 0.05: an input snapped
 * with offset 0 and one with 0.125 are at least 0.075 apart wherever they meet. */
static tg_tensor *snap(tg_tensor *t, double offset, tg_rng *rng)
{
    for (size_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i,
                      0.25 * round(4 * tg_tensor_get(t, i)) + offset + 0.05 * tg_rng_uniform(rng));
    return t;
}

/* ---- one op applied with its attributes --------------------------------------------------- */

typedef struct spec {
    tg_op op;
    tg_attrs at;
    shp to;              /* reshape's target */
    bool fanout;         /* a binary op applied to (x, x) */
    shp idx;             /* take: the index tensor's shape */
    double idx_vals[24]; /* and its values (a constant of the function) */
} spec;

/* The op through tg_apply: its inputs are in[0..n), (x, x) for fan-out, and take's indices. */
static tg_tensor *op_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const spec *s = ud;
    tg_attrs at = s->at;
    at.rank = s->to.rank;
    at.shape = s->to.d;
    tg_tensor *args[8];
    size_t m = 0;
    for (size_t i = 0; i < n && m < 7; i++)
        args[m++] = in[i];
    if (s->fanout)
        args[m++] = in[0];
    if (s->op == TG_OP_TAKE)
        args[m++] = tg_constant(tape, TG_F64, s->idx.rank, s->idx.d, s->idx_vals);
    return tg_apply(tape, s->op, args, m, &at);
}

/* ---- running one check ------------------------------------------------------------------ */

static const char *fmt_shp(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, tg_tensor_rank(t), tg_tensor_shape(t));
}

/* The attributes that matter for the op, for failure messages. */
static const char *describe(char *buf, size_t size, const spec *s)
{
    const tg_attrs *a = &s->at;
    char to[64];
    switch (tg_op_info_of(s->op)->attrs) {
    case TG_ATTR_NONE: snprintf(buf, size, "%s", s->fanout ? "fan-out (x, x)" : "-"); break;
    case TG_ATTR_CONSTANT: snprintf(buf, size, "c=%g", a->c); break;
    case TG_ATTR_RANGE: snprintf(buf, size, "lo=%g hi=%g", a->lo, a->hi); break;
    case TG_ATTR_AXIS: snprintf(buf, size, "axis=%d", a->axis); break;
    case TG_ATTR_REDUCE: snprintf(buf, size, "axis=%d keepdim=%d", a->axis, a->keepdim); break;
    case TG_ATTR_SHAPE:
        snprintf(buf, size, "to %s", tg_shape_format(to, sizeof to, s->to.rank, s->to.d));
        break;
    case TG_ATTR_SLICE:
        snprintf(buf, size, "axis=%d start=%td stop=%td step=%td", a->axis, a->start, a->stop,
                 a->step);
        break;
    case TG_ATTR_INDEX: snprintf(buf, size, "axis=%d index=%td", a->axis, a->index); break;
    case TG_ATTR_AXES:
        snprintf(buf, size, "axes=%d,%d,%d,%d", a->axes[0], a->axes[1], a->axes[2], a->axes[3]);
        break;
    }
    return buf;
}

static int g_cases; /* checks run by the current case function */

/* fn, squared when `square`: f * f puts a gradient that depends on the inputs into f's VJP. */
typedef struct wrapped {
    tg_check_fn fn;
    void *ud;
    bool square;
} wrapped;

static tg_tensor *wrapped_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const wrapped *w = ud;
    tg_tensor *y = w->fn(tape, in, n, w->ud);
    return w->square ? tg_mul(tape, y, y) : y;
}

/* Gradgradchecks `fn` at inputs[0..n), which it frees, plain and squared in turn. On failure
 * the message names `what`, the input shapes, the attributes and the error. */
static void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud,
                     tg_tensor **inputs, size_t n, uint64_t seed)
{
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = EPS;
    opt.tol = TOL;
    opt.seed = seed;
    double err[8] = {0};
    cr_assert(n <= 8);
    wrapped w = {fn, ud, g_cases % 2 == 1};
    tg_clear_error();
    tg_status st = tg_gradgradcheck(wrapped_fn, &w, inputs, n, &opt, err);
    char shapes[256] = "", s[64];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof shapes; i++)
        len += (size_t)snprintf(shapes + len, sizeof shapes - len, "%s%s", i ? ", " : "",
                                fmt_shp(s, sizeof s, inputs[i]));
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = err[i] > worst || isnan(err[i]) ? err[i] : worst;
    cr_expect(st == TG_OK, "gradgradcheck %s%s(%s) [%s]: max error %.3g (tol %g), %s: %s", what,
              w.square ? " squared" : "", shapes, attrs, worst, TOL, tg_status_name(st),
              tg_last_error());
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(inputs[i]);
    g_cases++;
}

static void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed)
{
    char attrs[160];
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
static const shp UNARY_SHAPES[] = {S0,       S1(1),       S1(5),         S2(2, 3),
                                   S2(1, 4), S3(2, 3, 2), S4(2, 1, 3, 2)};

/* Broadcasting pairs of the binary ops: equal shapes 0-d..4-D and broadcasting either way. */
static const struct {
    shp a, b;
} BCAST_PAIRS[] = {{S0, S0},
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
                   {S4(2, 3, 1, 2), S2(1, 2)}};

static const shp FAN_SHAPES[] = {S0, S1(4), S2(2, 3), S3(2, 2, 3)};

/* ---- the cases, one function per kind of op ---------------------------------------------- */

typedef void (*case_fn)(tg_op op, tg_rng *rng);

/* The gradients of f in xs by tg_grad_graph, on `tape`: asserted to succeed. */
static void grad_graph(tg_tape *tape, tg_tensor *f, tg_tensor **xs, size_t n, tg_tensor **out)
{
    cr_assert_eq(tg_grad_graph(tape, f, xs, n, NULL, out), TG_OK, "tg_grad_graph: %s",
                 tg_last_error());
}

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
static void case_const(tg_op op, tg_rng *rng)
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

static void case_detach(tg_op op, tg_rng *rng)
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

/* Binary elementwise ops at every broadcasting pair, and fan-out f(x, x) on inputs of kfan. */
static void check_binary_pairs(tg_op op, tg_rng *rng, kind ka, kind kb, kind kfan)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, ka, BCAST_PAIRS[i].b, kb);
    s.fanout = true;
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++)
        check_unary(rng, s, FAN_SHAPES[i], kfan);
}

/* add, sub, mul, div */
static void case_binary(tg_op op, tg_rng *rng)
{
    kind kb = op == TG_OP_DIV ? K_DENOM : K_NORMAL;
    check_binary_pairs(op, rng, K_NORMAL, kb, kb);
}

/* Elementwise unary ops on inputs of kind k, at every shape of UNARY_SHAPES. */
static void check_unary_shapes(tg_op op, tg_rng *rng, kind k)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(UNARY_SHAPES); i++)
        check_unary(rng, s, UNARY_SHAPES[i], k);
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

static void case_unary(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
}
/* sqrt, log */
static void case_unary_positive(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_POS);
    CHECK_AT(op, rng, 0.05, 0.3, 7, 100);
}
/* abs, relu: away from the kink at 0 */
static void case_unary_kink(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_AWAY);
}
/* exp, sigmoid, tanh, log_sigmoid: and in the tails */
static void case_unary_tails(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_NORMAL);
    CHECK_AT(op, rng, -4, -2.5, -0.75, 0.6, 2.2, 3.5);
}
/* sin, cos, atan, sinh, cosh, asinh, expm1, erf, softplus, gelu, silu: and farther out */
static void case_math_tails(tg_op op, tg_rng *rng)
{
    case_unary_tails(op, rng);
    CHECK_AT(op, rng, -12, -7, -1e-4, 2e-5, 6, 12);
}
/* tan: within (-0.9, 0.9), and nearer its poles */
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
static void case_acosh(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_ABOVE1);
    CHECK_AT(op, rng, 1.01, 1.05, 5, 100, 1e4);
}
static void case_log1p(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, K_UNIT);
    CHECK_AT(op, rng, -0.99, -1e-3, 1e-8, 3, 100);
}
/* sign, floor, ceil: a zero gradient away from the jumps */
static void case_zero_gradient(tg_op op, tg_rng *rng)
{
    check_unary_shapes(op, rng, op == TG_OP_SIGN ? K_AWAY : K_FRAC);
    CHECK_AT(op, rng, -2.5, -0.25, 0.01, 0.5, 1.75, 100.5);
}

/* scale and add_scalar with non-trivial constants */
static void case_with_constant(tg_op op, tg_rng *rng)
{
    static const double cs[] = {2.5, -0.75, 1.0 / 3.0, 0.0, -7.25};
    for (size_t j = 0; j < COUNT(cs); j++)
        for (size_t i = 0; i < COUNT(UNARY_SHAPES); i += 2)
            check_unary(rng, (spec){.op = op, .at.c = cs[j]}, UNARY_SHAPES[i], K_NORMAL);
}

/* Integer exponents on any input; non-integer ones (and -1) on positive inputs; 0, 1 and 2,
 * whose second or third derivatives vanish. */
static void case_pow(tg_op op, tg_rng *rng)
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
static void case_clamp(tg_op op, tg_rng *rng)
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

/* 2-D, batched, NumPy's 1-D and broadcast-batch operands (plain loops and the GEMM kernel),
 * and x @ x. */
static void case_matmul(tg_op op, tg_rng *rng)
{
    static const struct {
        shp a, b;
    } pairs[] = {{S2(1, 1), S2(1, 1)},       {S2(3, 5), S2(5, 2)},
                 {S2(7, 1), S2(1, 4)},       {S2(1, 6), S2(6, 1)},
                 {S2(4, 4), S2(4, 4)},       {S3(2, 3, 4), S3(2, 4, 2)},
                 {S3(3, 1, 2), S3(3, 2, 5)}, {S1(3), S2(3, 4)},
                 {S2(4, 3), S1(3)},          {S1(5), S1(5)},
                 {S2(2, 3), S3(4, 3, 2)},    {S3(4, 2, 3), S2(3, 5)},
                 {S1(3), S3(2, 3, 4)},       {S3(2, 4, 3), S1(3)},
                 {S1(300), S1(300)},         {S2(9, 10), S3(3, 10, 8)},
                 {S3(3, 9, 10), S2(10, 8)}};
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(pairs); i++)
        check_binary(rng, s, pairs[i].a, K_NORMAL, pairs[i].b, K_NORMAL);
    s.fanout = true;
    check_unary(rng, s, (shp)S2(3, 3), K_NORMAL);
    check_unary(rng, s, (shp)S3(2, 2, 2), K_NORMAL);
}

static void case_transpose(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S2(1, 1), S2(2, 3), S2(4, 1), S2(1, 5), S2(3, 3)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        check_unary(rng, (spec){.op = op}, shapes[i], K_NORMAL);
}

static void case_reshape(tg_op op, tg_rng *rng)
{
    static const struct {
        shp from, to;
    } rs[] = {{S2(2, 3), S2(3, 2)},
              {S2(2, 3), S1(6)},
              {S2(2, 3), S3(1, 6, 1)},
              {S0, S2(1, 1)},
              {S1(1), S0},
              {S3(2, 3, 4), S2(4, 6)},
              {S4(2, 1, 3, 2), S3(3, 2, 2)},
              {S1(6), S4(1, 2, 1, 3)}};
    for (size_t i = 0; i < COUNT(rs); i++)
        check_unary(rng, (spec){.op = op, .to = rs[i].to}, rs[i].from, K_NORMAL);
}

/* Reductions along every axis (negative ones included) and TG_ALL_AXES, keepdim or not. */
static void case_reduce(tg_op op, tg_rng *rng)
{
    kind k = op == TG_OP_MAX || op == TG_OP_MIN ? K_DISTINCT : K_NORMAL;
    static const shp shapes[] = {S0, S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        int r = shapes[i].rank;
        for (int keep = 0; keep <= 1; keep++)
            for (int axis = -r - 1; axis < r; axis++) /* -r - 1: TG_ALL_AXES */
                check_unary(rng,
                            (spec){.op = op,
                                   .at = {.axis = axis < -r ? TG_ALL_AXES : axis, .keepdim = keep}},
                            shapes[i], k);
    }
}

/* softmax and log_softmax along each axis. */
static void case_softmax(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S1(1), S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        for (int axis = -shapes[i].rank; axis < shapes[i].rank; axis++)
            check_unary(rng, (spec){.op = op, .at.axis = axis}, shapes[i], K_NORMAL);
}

/* ---- shape, indexing and joins ------------------------------------------------------------ */

static const shp INDEX_SHAPES[] = {S1(1), S1(7), S2(3, 5), S2(1, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};

/* n inputs of shape x (concat, stack: n of them). */
static void check_index(tg_rng *rng, const spec *s, shp x, size_t n)
{
    tg_tensor *in[4];
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(rng, x, K_NORMAL);
    check_op(s, in, n, tg_rng_next(rng));
}

/* Every axis, with starts and stops negative, past either end, TG_END, empty ranges, steps. */
static void case_slice(tg_op op, tg_rng *rng)
{
    static const ptrdiff_t ranges[][3] = {
        {0, TG_END, 1},  {1, TG_END, 1}, {0, -1, 1},     {-2, TG_END, 1}, {1, 7, 2},
        {-100, 100, 1},  {0, TG_END, 2}, {-3, -1, 1},    {2, 1, 1},       {0, TG_END, 3},
        {1, TG_END, 50}, {5, 2, 2},      {-1, TG_END, 1}};
    for (size_t i = 0; i < COUNT(INDEX_SHAPES); i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t r = 0; r < COUNT(ranges); r++)
                if ((r + (size_t)axis + i) % 3 == 0) /* a third of the combinations */
                    check_index(rng,
                                &(spec){.op = op,
                                        .at = {.axis = axis,
                                               .start = ranges[r][0],
                                               .stop = ranges[r][1],
                                               .step = ranges[r][2]}},
                                x, 1);
    }
}

static void case_select(tg_op op, tg_rng *rng)
{
    for (size_t i = 0; i < COUNT(INDEX_SHAPES); i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++) {
            ptrdiff_t dim = (ptrdiff_t)x.d[axis < 0 ? axis + x.rank : axis];
            for (ptrdiff_t index = -dim; index < dim; index += 1 + (dim > 3))
                check_index(rng, &(spec){.op = op, .at = {.axis = axis, .index = index}}, x, 1);
        }
    }
}

/* concat and stack of 1..4 inputs along every axis; concat of different lengths too. */
static tg_tensor *concat_lengths_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)ud;
    return tg_concat(tape, in, n, -2);
}

static void case_join(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 1, 3)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        int r = shapes[i].rank, stack = op == TG_OP_STACK;
        for (size_t n = 1; n <= 4; n++)
            for (int axis = -r - stack; axis <= r - 1 + stack; axis++)
                check_index(rng, &(spec){.op = op, .at.axis = axis}, shapes[i], n);
    }
    static const shp parts[][3] = {{S3(2, 1, 3), S3(2, 3, 3), S3(2, 2, 3)},
                                   {S2(1, 2), S2(4, 2), S2(0, 2)}};
    for (size_t p = 0; op == TG_OP_CONCAT && p < COUNT(parts); p++) {
        tg_tensor *in[3];
        for (size_t i = 0; i < 3; i++)
            in[i] = make_input(rng, parts[p][i], K_NORMAL);
        check_fn("concat", "lengths differ, axis -2", concat_lengths_fn, NULL, in, 3,
                 tg_rng_next(rng));
    }
}

/* take along every axis, index tensors 0-d to 2-D, negative and repeated indices. */
static void case_take(tg_op op, tg_rng *rng)
{
    static const shp xs[] = {S1(5), S2(3, 4), S3(2, 3, 2)};
    static const shp idx_shapes[] = {S0, S1(1), S1(4), S2(2, 3)};
    for (size_t i = 0; i < COUNT(xs); i++) {
        shp x = xs[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t k = 0; k < COUNT(idx_shapes); k++) {
                shp is = idx_shapes[k];
                spec s = {.op = op, .at.axis = axis, .idx = is};
                long dim = (long)x.d[axis < 0 ? axis + x.rank : axis];
                size_t m = 1;
                for (int d = 0; d < is.rank; d++)
                    m *= is.d[d];
                for (size_t j = 0; j < m; j++)
                    s.idx_vals[j] = (double)((long)tg_rng_below(rng, (uint64_t)(2 * dim)) - dim);
                if (m > 1)
                    s.idx_vals[m - 1] = s.idx_vals[0]; /* a repeat */
                check_index(rng, &s, x, 1);
            }
    }
}

/* Every permutation of 1..4 axes; negative entries too. */
static void case_permute(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        const int r = shapes[i].rank;
        size_t count = 1;
        for (int k = 2; k <= r; k++)
            count *= (size_t)k;
        for (size_t c = 0; c < count; c++) {
            int pool[TG_MAX_RANK] = {0, 1, 2, 3}, left = r;
            size_t code = c;
            spec s = {.op = op};
            for (int k = 0; k < r; k++) { /* the c-th permutation, from its factorial digits */
                size_t f = 1;
                for (int j = 2; j < left; j++)
                    f *= (size_t)j;
                int pick = (int)(code / f);
                code %= f;
                s.at.axes[k] = (c % 2 && k == 0) ? pool[pick] - r : pool[pick];
                for (int j = pick; j < left - 1; j++)
                    pool[j] = pool[j + 1];
                left--;
            }
            check_index(rng, &s, shapes[i], 1);
        }
    }
}

/* ---- binary math, comparisons, where, prod ------------------------------------------------ */

/* minimum and maximum: a and b kept apart (no ties) at every broadcasting pair; then f(x, x),
 * all ties, whose split gradient must be x's slope. */
static void case_minmax(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++) {
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        check_op(&s, in, 2, tg_rng_next(rng));
    }
    s.fanout = true;
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++)
        check_unary(rng, s, FAN_SHAPES[i], K_NORMAL);
}

/* atan2(y, x): y 0.05 away from 0 (the origin and the jump); a^b: a positive, b any. */
static void case_atan2(tg_op op, tg_rng *rng)
{
    check_binary_pairs(op, rng, K_AWAY, K_NORMAL, K_AWAY);
}
static void case_pow_tensor(tg_op op, tg_rng *rng)
{
    check_binary_pairs(op, rng, K_POS, K_NORMAL, K_POS);
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

/* Comparisons stay out of the gradient: a mask never requires grad, the recorded gradient of
 * sum(a * mask) is a constant (zero for b), tg_grad_graph from a mask alone fails, and
 * masked_fn passes the gradgradcheck at every broadcasting pair (a and b kept apart). */
static void case_compare(tg_op op, tg_rng *rng)
{
    const char *name = tg_op_name(op);
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++) {
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        tg_tape *tape = tg_tape_new();
        tg_tensor_set_requires_grad(in[0], true);
        tg_tensor_set_requires_grad(in[1], true);
        tg_tensor *m = tg_apply(tape, op, in, 2, NULL);
        cr_assert(m, "%s: %s", name, tg_tape_error(tape));
        cr_expect(!tg_tensor_requires_grad(m), "%s requires grad", name);
        tg_tensor *g[2] = {NULL, NULL};
        cr_expect_eq(tg_grad_graph(tape, tg_sum(tape, m, TG_ALL_AXES, false), in, 2, NULL, g),
                     TG_EINVAL, "%s: tg_grad_graph through a mask alone", name);
        ts_assert_has(tg_last_error(), "does not depend on any tensor that requires grad");
        grad_graph(tape, tg_sum(tape, tg_mul(tape, in[0], m), TG_ALL_AXES, false), in, 2, g);
        cr_expect(!tg_tensor_requires_grad(g[0]) && !tg_tensor_requires_grad(g[1]),
                  "%s: the gradient of a * mask depends on the inputs", name);
        for (size_t e = 0; e < tg_tensor_numel(g[1]); e++)
            cr_expect(tg_tensor_get(g[1], e) == 0, "%s: gradient reached b through the mask", name);
        tg_tape_free(tape);
        tg_tensor_set_requires_grad(in[0], false);
        tg_tensor_set_requires_grad(in[1], false);
        check_fn(name, "a * cmp(a, b) + b * cmp(b, a)", masked_fn, &op, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    check_fn(name, "x * cmp(x, x), twice", masked_fn, &op, &x, 1, tg_rng_next(rng));
}

/* where(cond, a, b) with cond gt(c, 0), a mask, or relu(c), values whose zeros are false (c
 * 0.05 away from 0: no perturbation flips it); and the fan-out of x into all three. */
typedef enum where_cond { W_MASK, W_RELU } where_cond;

static tg_tensor *where_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    const where_cond *how = ud;
    tg_tensor *c =
        *how == W_MASK ? tg_gt(tape, in[0], tg_scalar(tape, TG_F64, 0)) : tg_relu(tape, in[0]);
    tg_tensor *w[3] = {c, in[1], in[2]};
    return tg_apply(tape, TG_OP_WHERE, w, 3, NULL);
}

/* where(x > 0, x * x * x, x * x) + where(x, x * x, -x) */
static tg_tensor *where_fanout_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0], *x2 = tg_mul(tape, x, x);
    tg_tensor *pos = tg_gt(tape, x, tg_scalar(tape, TG_F64, 0));
    tg_tensor *y = tg_where(tape, pos, tg_mul(tape, x2, x), x2);
    return tg_add(tape, y, tg_where(tape, x, x2, tg_neg(tape, x)));
}

static void case_where(tg_op op, tg_rng *rng)
{
    static const struct {
        shp c, a, b;
    } triples[] = {{S0, S0, S0},
                   {S1(5), S1(5), S1(5)},
                   {S3(2, 3, 2), S3(2, 3, 2), S3(2, 3, 2)},
                   {S4(2, 1, 2, 3), S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
                   {S2(2, 1), S2(2, 3), S0},
                   {S1(3), S2(2, 1), S2(2, 3)},
                   {S2(2, 3), S1(3), S2(2, 1)},
                   {S3(2, 1, 4), S2(3, 1), S1(4)},
                   {S0, S2(3, 1), S2(1, 4)},
                   {S4(2, 1, 3, 1), S3(4, 1, 2), S2(3, 1)}};
    for (size_t i = 0; i < COUNT(triples); i++)
        for (int how = W_MASK; how <= W_RELU; how++) {
            tg_tensor *in[3] = {make_input(rng, triples[i].c, K_AWAY),
                                make_input(rng, triples[i].a, K_NORMAL),
                                make_input(rng, triples[i].b, K_NORMAL)};
            where_cond w = (where_cond)how;
            check_fn(tg_op_name(op), how == W_MASK ? "cond gt(c, 0)" : "cond relu(c)", where_fn, &w,
                     in, 3, tg_rng_next(rng));
        }
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++) {
        tg_tensor *x = make_input(rng, FAN_SHAPES[i], K_AWAY);
        check_fn(tg_op_name(op), "fan-out (x, x, x)", where_fanout_fn, NULL, &x, 1,
                 tg_rng_next(rng));
    }
}

/* prod: as the other reductions, and with zeros in a lane (one, two, half of them): prod is
 * multilinear, so its second derivatives at zeros are products of the other elements (a VJP
 * that divides by x is wrong there), and the finite differences are exact. */
static void case_prod(tg_op op, tg_rng *rng)
{
    case_reduce(op, rng);
    static const shp shapes[] = {S1(4), S2(3, 4), S3(2, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        for (int zeros = 1; zeros <= 3; zeros++)
            for (int axis = -1; axis < shapes[i].rank; axis++) {
                tg_tensor *x = make_input(rng, shapes[i], K_NORMAL);
                size_t n = tg_tensor_numel(x);
                for (int z = 0; z < zeros; z++)
                    tg_tensor_set(x, z == 0 ? 0 : (size_t)tg_rng_below(rng, n), 0.0);
                for (size_t e = 0; zeros == 3 && e < n; e += 2)
                    tg_tensor_set(x, e, 0.0);
                spec s = {.op = op,
                          .at = {.axis = axis < 0 ? TG_ALL_AXES : axis, .keepdim = zeros == 2}};
                check_op(&s, &x, 1, tg_rng_next(rng));
            }
}

/* ---- custom ops ---------------------------------------------------------------------------
 * sinprod(x0, ..., x{n-1}) = prod_i sin(x_i), elementwise over inputs of one shape, and
 * rowdot(a, b)[i] = sum_j a[i,j] b[i,j] (an output shape other than the inputs'), each with its
 * VJP in plain loops and written with ops (vjp_graph); sinprod also without the latter. */
static const double *in_data(const tg_custom_call *c, size_t i)
{
    return tg_tensor_data_const(c->in[i]);
}

static tg_status sinprod_forward(const tg_custom_call *c)
{
    double *y = c->y;
    for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
        y[j] = 1;
        for (size_t i = 0; i < c->n; i++)
            y[j] *= sin(in_data(c, i)[j]);
    }
    return TG_OK;
}

/* dx_i += dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp(const tg_custom_call *c)
{
    const double *dy = c->dy;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0, m = tg_tensor_numel(c->out); c->dx[i] && j < m; j++) {
            double p = cos(in_data(c, i)[j]);
            for (size_t k = 0; k < c->n; k++)
                if (k != i)
                    p *= sin(in_data(c, k)[j]);
            ((double *)c->dx[i])[j] += dy[j] * p;
        }
    return TG_OK;
}

/* The same with ops: dx_i = dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tape *t = c->tape;
    for (size_t i = 0; i < c->n; i++) {
        tg_tensor *p = tg_mul(t, c->dy, tg_cos(t, c->in[i]));
        for (size_t k = 0; k < c->n; k++)
            if (k != i)
                p = tg_mul(t, p, tg_sin(t, c->in[k]));
        c->dx[i] = p;
    }
    return tg_tape_status(t);
}

static tg_status rowdot_forward(const tg_custom_call *c)
{
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    double *y = c->y;
    for (size_t i = 0; i < m * k; i++)
        y[i / k] += in_data(c, 0)[i] * in_data(c, 1)[i];
    return TG_OK;
}

/* da[i,j] += dy[i] b[i,j], db[i,j] += dy[i] a[i,j] */
static tg_status rowdot_vjp(const tg_custom_call *c)
{
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; c->dx[s] && i < m * k; i++)
            ((double *)c->dx[s])[i] += ((const double *)c->dy)[i / k] * in_data(c, 1 - s)[i];
    return TG_OK;
}

/* da = dy[:, None] * b, db = dy[:, None] * a */
static tg_status rowdot_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tensor *col = tg_reshape(c->tape, c->dy, 2, (size_t[]){tg_tensor_dim(c->out, 0), 1});
    c->dx[0] = tg_mul(c->tape, col, c->in[1]);
    c->dx[1] = tg_mul(c->tape, col, c->in[0]);
    return tg_tape_status(c->tape);
}

static const tg_custom_op SINPROD = {.name = "sinprod",
                                     .forward = sinprod_forward,
                                     .vjp = sinprod_vjp,
                                     .vjp_graph = sinprod_vjp_graph};
static const tg_custom_op SINPROD_FIRST = {
    .name = "sinprod_first_order", .forward = sinprod_forward, .vjp = sinprod_vjp};
static const tg_custom_op ROWDOT = {
    .name = "rowdot", .forward = rowdot_forward, .vjp = rowdot_vjp, .vjp_graph = rowdot_vjp_graph};

/* ud: the op; sinprod's inputs are passed twice (fan-out) when there is one. */
static tg_tensor *custom_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const tg_custom_op *op = ud;
    if (op == &ROWDOT)
        return tg_custom(tape, op, NULL, in, n, 1, tg_tensor_shape(in[0]));
    tg_tensor *args[2] = {in[0], in[0]};
    return tg_custom(tape, op, NULL, n == 1 ? args : in, n == 1 ? 2 : n, tg_tensor_rank(in[0]),
                     tg_tensor_shape(in[0]));
}

/* sinprod of 2 and 3 inputs and of (x, x) at every shape of UNARY_SHAPES, rowdot at a few;
 * and a custom op without vjp_graph: differentiating it twice is the clear error naming it
 * (test_higher_order.c checks that its first derivatives still work). */
static void case_custom(tg_op op, tg_rng *rng)
{
    (void)op;
    for (size_t si = 0; si < COUNT(UNARY_SHAPES); si++)
        for (size_t n = 1; n <= 3; n++) {
            tg_tensor *in[3];
            for (size_t i = 0; i < n; i++)
                in[i] = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
            check_fn("custom sinprod", n == 1 ? "fan-out (x, x)" : "-", custom_fn, (void *)&SINPROD,
                     in, n, tg_rng_next(rng));
        }
    static const shp rows[] = {S2(1, 1), S2(3, 4), S2(5, 1), S2(1, 6)};
    for (size_t i = 0; i < COUNT(rows); i++) {
        tg_tensor *in[2] = {make_input(rng, rows[i], K_NORMAL), make_input(rng, rows[i], K_NORMAL)};
        check_fn("custom rowdot", "-", custom_fn, (void *)&ROWDOT, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    tg_status st = tg_gradgradcheck(custom_fn, (void *)&SINPROD_FIRST, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "gradgradcheck of a first-order custom op: %s: %s",
                 tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "sinprod_first_order");
    ts_assert_has(tg_last_error(), "no differentiable VJP");
    tg_tensor_free(x);
}

/* The table: every op must have an entry (every_op_has_a_case checks). */
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
    [TG_OP_CONCAT] = case_join,
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

Test(gradgradcheck, every_op_has_a_case)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        cr_expect(CASES[op] != NULL, "op %s (%d) has no gradgradcheck case", tg_op_name((tg_op)op),
                  op);
    }
}

/* One test per op, so that a failure names it: the parameters are the op table itself. */
ParameterizedTestParameters(gradgradcheck, each_op)
{
    static tg_op ops[TG_OP_COUNT];
    for (int op = 0; op < TG_OP_COUNT; op++)
        ops[op] = (tg_op)op;
    return cr_make_param_array(tg_op, ops, TG_OP_COUNT);
}

ParameterizedTest(tg_op *op, gradgradcheck, each_op)
{
    cr_assert(CASES[*op] != NULL, "no gradgradcheck case for %s", tg_op_name(*op));
    tg_rng rng;
    tg_rng_seed(&rng, 2000 + (uint64_t)*op);
    g_cases = 0;
    CASES[*op](*op, &rng);
    cr_expect(g_cases > 0, "op %s: its case ran no check", tg_op_name(*op));
}
