/* math.c (test_ops): the elementwise math ops (sin ... ceil, src/ops/unary.c) against values
 * computed independently with mpmath at 50 digits or more, in f32 and f64: values and VJPs at
 * ordinary points, the documented edges (asin, acos and atanh at +-1, acosh at 1, NaN outside
 * the domains, log1p at -1), the tails where a naive formula overflows or cancels (softplus,
 * gelu, silu, expm1, asinh, acosh, erf at large |x|, and at +-inf), and sign, floor and ceil
 * with their zero gradient. (The other parts of test_ops hold the other ops;
 * test_gradcheck.c checks these against finite differences at random shapes.) */
#include "ops.h"

/* A 1-D leaf of v[0..n) requiring grad, freed by the fixture. */
static tg_tensor *leaf(tg_dtype dt, const double *v, size_t n)
{
    return own_leaf(dt, 1, (size_t[]){n}, v, true);
}

/* y = op(x) for x = v[0..n), then backward with dy = dy[0..n) (all ones when NULL). */
static tg_tensor *run(tg_op op, tg_dtype dt, const double *v, size_t n, const double *dy,
                      tg_tensor **x)
{
    *x = leaf(dt, v, n);
    tg_tensor *y = ts_apply(tape, op, *x, NULL, NULL);
    cr_assert(y != NULL, "%s: %s", tg_op_name(op), tg_tape_error(tape));
    cr_assert_eq(tg_tensor_op(y), (int)op);
    cr_assert_eq(tg_tensor_dtype(y), dt);
    double ones[16];
    cr_assert(n <= 16);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1;
    tg_tensor *seed = own_leaf(dt, 1, (size_t[]){n}, dy ? dy : ones, false);
    tg_status st = tg_backward_seed(tape, y, seed);
    cr_assert_eq(st, TG_OK, "%s: backward: %s", tg_op_name(op), tg_last_error());
    return y;
}

/* Relative tolerance of a result in dt (f32: the float functions and a few roundings). */
static double rel_of(tg_dtype dt)
{
    return dt == TG_F32 ? 2e-6 : 1e-14;
}

/* got against want relative to want only (a result near 0 must be accurate near 0 too); NaN
 * and +-inf exactly (ts_close). */
static void expect_rel(double got, double want, tg_dtype dt, const char *what, tg_op op, double x)
{
    ts_assert_close(got, want, 0, rel_of(dt), "%s %s(%g) (%s)", what, tg_op_name(op), x,
                    tg_dtype_name(dt));
}

/* One op at points x with f(x) and f'(x) from mpmath. */
typedef struct math_case {
    tg_op op;
    double x[5], y[5], d[5];
} math_case;

/* Values from mpmath 1.3.0 (mp.dps = 50), each rounded to the nearest double; the derivatives
 * written as the textbook closed forms (tan' = 1/cos^2, acosh' = 1/sqrt(x^2 - 1), gelu' =
 * ncdf(x) + x npdf(x), ...), not as the library computes them. The command:
 *   python3 -c 'from mpmath import *; mp.dps = 50; s = lambda x: 1/(1+exp(-x));
 *     F = dict(SIN=(sin, cos), COS=(cos, lambda x: -sin(x)), TAN=(tan, lambda x: 1/cos(x)**2),
 *       ASIN=(asin, lambda x: 1/sqrt(1-x*x)), ACOS=(acos, lambda x: -1/sqrt(1-x*x)),
 *       ATAN=(atan, lambda x: 1/(1+x*x)), SINH=(sinh, cosh), COSH=(cosh, sinh),
 *       ASINH=(asinh, lambda x: 1/sqrt(x*x+1)), ACOSH=(acosh, lambda x: 1/sqrt(x*x-1)),
 *       ATANH=(atanh, lambda x: 1/(1-x*x)), EXPM1=(expm1, exp), LOG1P=(log1p, lambda x: 1/(1+x)),
 *       ERF=(erf, lambda x: 2/sqrt(pi)*exp(-x*x)), SOFTPLUS=(lambda x: log(1+exp(x)), s),
 *       GELU=(lambda x: x*ncdf(x), lambda x: ncdf(x)+x*npdf(x)),
 *       SILU=(lambda x: x*s(x), lambda x: s(x)*(1+x*(1-s(x)))));
 *     X = dict(ASIN=U, ACOS=U, ATANH=U, ACOSH=[1.25,1.5,2,4,10], LOG1P=[-.75,-.5,.25,1.5,3])
 *       where U = [-.75,-.5,0,.25,.875], else [-2,-.5,.25,1.5,3];
 *     for each op: print [repr(float(f(mpf(x)))) for x], [repr(float(d(mpf(x)))) for x]' */
#define XG                                                                                         \
    {                                                                                              \
        -2, -0.5, 0.25, 1.5, 3                                                                     \
    }
#define XU                                                                                         \
    {                                                                                              \
        -0.75, -0.5, 0, 0.25, 0.875                                                                \
    }
static const math_case CASES[] = {
    {TG_OP_SIN,
     XG,
     {-0.9092974268256817, -0.479425538604203, 0.24740395925452294, 0.9974949866040544,
      0.1411200080598672},
     {-0.4161468365471424, 0.8775825618903728, 0.9689124217106447, 0.0707372016677029,
      -0.9899924966004454}},
    {TG_OP_COS,
     XG,
     {-0.4161468365471424, 0.8775825618903728, 0.9689124217106447, 0.0707372016677029,
      -0.9899924966004454},
     {0.9092974268256817, 0.479425538604203, -0.24740395925452294, -0.9974949866040544,
      -0.1411200080598672}},
    {TG_OP_TAN,
     XG,
     {2.185039863261519, -0.5463024898437905, 0.25534192122103627, 14.101419947171719,
      -0.1425465430742778},
     {5.774399204041917, 1.2984464104095248, 1.06519949673285, 199.85004452649247,
      1.0203195169424268}},
    {TG_OP_ASIN,
     XU,
     {-0.848062078981481, -0.5235987755982989, 0.0, 0.25268025514207865, 1.0654358165107394},
     {1.511857892036909, 1.1547005383792515, 1.0, 1.0327955589886446, 2.0655911179772892}},
    {TG_OP_ACOS,
     XU,
     {2.4188584057763776, 2.0943951023931957, 1.5707963267948966, 1.318116071652818,
      0.5053605102841573},
     {-1.511857892036909, -1.1547005383792515, -1.0, -1.0327955589886446, -2.0655911179772892}},
    {TG_OP_ATAN,
     XG,
     {-1.1071487177940904, -0.4636476090008061, 0.24497866312686414, 0.982793723247329,
      1.2490457723982544},
     {0.2, 0.8, 0.9411764705882353, 0.3076923076923077, 0.1}},
    {TG_OP_SINH,
     XG,
     {-3.6268604078470186, -0.5210953054937474, 0.2526123168081683, 2.1292794550948173,
      10.017874927409903},
     {3.7621956910836314, 1.1276259652063807, 1.0314130998795732, 2.352409615243247,
      10.067661995777765}},
    {TG_OP_COSH,
     XG,
     {3.7621956910836314, 1.1276259652063807, 1.0314130998795732, 2.352409615243247,
      10.067661995777765},
     {-3.6268604078470186, -0.5210953054937474, 0.2526123168081683, 2.1292794550948173,
      10.017874927409903}},
    {TG_OP_ASINH,
     XG,
     {-1.4436354751788103, -0.48121182505960347, 0.24746646154726346, 1.1947632172871092,
      1.8184464592320668},
     {0.4472135954999579, 0.8944271909999159, 0.9701425001453319, 0.5547001962252291,
      0.31622776601683794}},
    {TG_OP_ACOSH,
     {1.25, 1.5, 2, 4, 10},
     {0.6931471805599453, 0.9624236501192069, 1.3169578969248168, 2.0634370688955603,
      2.993222846126381},
     {1.3333333333333333, 0.8944271909999159, 0.5773502691896257, 0.25819888974716115,
      0.10050378152592121}},
    {TG_OP_ATANH,
     XU,
     {-0.9729550745276566, -0.5493061443340549, 0.0, 0.25541281188299536, 1.354025100551105},
     {2.2857142857142856, 1.3333333333333333, 1.0, 1.0666666666666667, 4.266666666666667}},
    {TG_OP_EXPM1,
     XG,
     {-0.8646647167633873, -0.3934693402873666, 0.2840254166877415, 3.481689070338065,
      19.085536923187668},
     {0.1353352832366127, 0.6065306597126334, 1.2840254166877414, 4.4816890703380645,
      20.085536923187668}},
    {TG_OP_LOG1P,
     {-0.75, -0.5, 0.25, 1.5, 3},
     {-1.3862943611198906, -0.6931471805599453, 0.22314355131420976, 0.9162907318741551,
      1.3862943611198906},
     {4.0, 2.0, 0.8, 0.4, 0.25}},
    {TG_OP_ERF,
     XG,
     {-0.9953222650189527, -0.5204998778130465, 0.27632639016823696, 0.9661051464753108,
      0.9999779095030014},
     {0.020666985354092053, 0.8787825789354448, 1.0600141293761143, 0.11893028922362937,
      0.00013925305194674786}},
    {TG_OP_SOFTPLUS,
     XG,
     {0.1269280110429725, 0.4740769841801067, 0.8259394198788436, 1.7014132779827524,
      3.048587351573742},
     {0.11920292202211756, 0.37754066879814546, 0.5621765008857981, 0.8175744761936437,
      0.9525741268224333}},
    {TG_OP_GELU,
     XG,
     {-0.04550026389635842, -0.15426876936299344, 0.14967658142073093, 1.399789198096713,
      2.99595030590511},
     {-0.0852318010781969, 0.13250487534383715, 0.695373354883636, 1.1274691922299795,
      1.011945647204184}},
    {TG_OP_SILU,
     XG,
     {-0.23840584404423512, -0.18877033439907273, 0.14054412522144952, 1.2263617142904655,
      2.8577223804672998},
     {-0.09078424878489548, 0.2600388126973482, 0.6237100215701977, 1.041294154299143,
      1.0881041060151697}},
};
#undef XG
#undef XU

Test(ops, math_values_and_vjp)
{
    /* The inputs are exact in f32; dy is not all ones, so that the VJP's product with dy is
     * checked too. */
    const double dy[5] = {1, -2, 0.5, 3, -1};
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const math_case *k = &CASES[ci];
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            fresh_start();
            tg_tensor *x;
            tg_tensor *y = run(k->op, dt, k->x, 5, dy, &x);
            for (size_t i = 0; i < 5; i++) {
                ts_assert_close(tg_tensor_get(y, i), k->y[i], 0.1 * rel_of(dt), rel_of(dt),
                                "%s(%g) (%s)", tg_op_name(k->op), k->x[i], tg_dtype_name(dt));
                ts_assert_close(tg_tensor_grad_get(x, i), dy[i] * k->d[i], 0.1 * rel_of(dt),
                                rel_of(dt), "d %s(%g) (%s)", tg_op_name(k->op), k->x[i],
                                tg_dtype_name(dt));
            }
        }
    }
}

/* Every op of this family is in the table above or in a test below: a new elementwise math
 * op without exact values shows here. */
Test(ops, math_every_op_of_the_family_is_tested)
{
    const tg_op elsewhere[] = {TG_OP_SIGN, TG_OP_FLOOR, TG_OP_CEIL};
    for (int op = TG_OP_SIN; op <= TG_OP_CEIL; op++) {
        bool found = false;
        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
            found = found || CASES[i].op == (tg_op)op;
        for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++)
            found = found || elsewhere[i] == (tg_op)op;
        cr_expect(found, "%s has no exact values", tg_op_name((tg_op)op));
    }
}

/* ---- the edges of the domains ---------------------------------------------------------- */

/* An op at points x with its exact value and gradient there (dy = 1). */
static void expect_at(tg_op op, const double *x, const double *y, const double *d, size_t n)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        fresh_start();
        tg_tensor *t;
        tg_tensor *r = run(op, dt, x, n, NULL, &t);
        for (size_t i = 0; i < n; i++) {
            expect_rel(tg_tensor_get(r, i), y[i], dt, "", op, x[i]);
            expect_rel(tg_tensor_grad_get(t, i), d[i], dt, "d", op, x[i]);
        }
    }
}
/* EXPECT_AT(op, (x...), (y...), (dy/dx...)) */
#define UNPAREN(...) __VA_ARGS__
#define EXPECT_AT(op, X, Y, D)                                                                     \
    do {                                                                                           \
        const double x_[] = {UNPAREN X}, y_[] = {UNPAREN Y}, d_[] = {UNPAREN D};                   \
        _Static_assert(sizeof x_ == sizeof y_ && sizeof x_ == sizeof d_, "one y and d per x");     \
        expect_at(op, x_, y_, d_, sizeof x_ / sizeof x_[0]);                                       \
    } while (0)

Test(ops, math_edges_of_asin_acos_atanh_acosh_log1p)
{
    const double half_pi = 1.5707963267948966, pi = 3.141592653589793;
    /* At +-1 the derivatives are infinite: asin rises (+inf at both ends), acos falls (-inf),
     * atanh reaches +-inf there with gradient +inf; outside, values and gradients are NaN. */
    EXPECT_AT(TG_OP_ASIN, (-1, 1, -1.5, 2), (-half_pi, half_pi, NAN, NAN),
              (INFINITY, INFINITY, NAN, NAN));
    EXPECT_AT(TG_OP_ACOS, (-1, 1, -1.5, 2), (pi, 0, NAN, NAN), (-INFINITY, -INFINITY, NAN, NAN));
    EXPECT_AT(TG_OP_ATANH, (-1, 1, -1.5, 2), (-INFINITY, INFINITY, NAN, NAN),
              (INFINITY, INFINITY, NAN, NAN));
    /* acosh(1) = 0 with gradient +inf; below 1, NaN */
    EXPECT_AT(TG_OP_ACOSH, (1, 0.5, -2), (0, NAN, NAN), (INFINITY, NAN, NAN));
    /* log1p as log: -inf at -1 with gradient +inf, NaN below */
    EXPECT_AT(TG_OP_LOG1P, (-1, -2), (-INFINITY, NAN), (INFINITY, -1));
    /* NaN in, NaN out, value and gradient */
    const tg_op ops[] = {TG_OP_SIN,   TG_OP_TAN,   TG_OP_ASIN,     TG_OP_ACOSH,
                         TG_OP_ATANH, TG_OP_ERF,   TG_OP_SOFTPLUS, TG_OP_GELU,
                         TG_OP_SILU,  TG_OP_EXPM1, TG_OP_SIGN,     TG_OP_FLOOR};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        bool zero = ops[i] == TG_OP_SIGN || ops[i] == TG_OP_FLOOR;
        EXPECT_AT(ops[i], (NAN), (NAN), (zero ? 0 : NAN));
    }
}

/* ---- large |x|: no overflow, no cancellation -------------------------------------------- */

Test(ops, math_tails_without_overflow_or_cancellation)
{
    /* exact values: mpmath (mp.dps = 60), e.g. python3 -c 'from mpmath import *; mp.dps = 60;
     * s = lambda x: 1/(1+exp(-x)); x = mpf(-50); print(repr(float(log(1+exp(x)))),
     * repr(float(s(x))))'; likewise x*ncdf(x), ncdf(x) + x*npdf(x) for gelu, x*s(x),
     * s(x)*(1 + x*(1-s(x))) for silu, expm1(x) and exp(x), erf(x) and 2/sqrt(pi)*exp(-x*x).
     * Tiny results are compared relative to themselves: softplus(-50) = e^-50 to full
     * accuracy, expm1'(-30) = e^-30 (where y + 1 would keep 3 digits). */
    EXPECT_AT(TG_OP_SOFTPLUS, (-1000, -50, -20, 20, 50, 1000),
              (0, 1.9287498479639178e-22, 2.061153620314381e-09, 20.000000002061153, 50, 1000),
              (0, 1.9287498479639178e-22, 2.0611536181902037e-09, 0.9999999979388464, 1, 1));
    EXPECT_AT(TG_OP_GELU, (-1000, -10, -5, 5, 10, 1000),
              (0, -7.619853024160526e-23, -1.4332578593959695e-06, 4.999998566742141, 10, 1000),
              (0, -7.618400096464814e-22, -7.146946001792295e-06, 1.000007146946002, 1, 1));
    EXPECT_AT(TG_OP_SILU, (-1000, -50, -20, 20, 50, 1000),
              (0, -9.643749239819589e-21, -4.122307236380407e-08, 19.99999995877693, 50, 1000),
              (0, -9.450874255023197e-21, -3.9161918660646786e-08, 1.0000000391619186, 1, 1));
    EXPECT_AT(TG_OP_EXPM1, (-1000, -30, -20, 30),
              (-1, -0.9999999999999064, -0.9999999979388464, 10686474581523.463),
              (0, 9.357622968840175e-14, 2.061153622438558e-09, 10686474581524.463));
    EXPECT_AT(TG_OP_ERF, (-6, 6), (-1, 1), (2.617301239249265e-16, 2.617301239249265e-16));
    /* At +-inf: the limits, not inf * 0 = NaN */
    EXPECT_AT(TG_OP_SOFTPLUS, (-INFINITY, INFINITY), (0, INFINITY), (0, 1));
    EXPECT_AT(TG_OP_GELU, (-INFINITY, INFINITY), (0, INFINITY), (0, 1));
    EXPECT_AT(TG_OP_SILU, (-INFINITY, INFINITY), (0, INFINITY), (0, 1));
    EXPECT_AT(TG_OP_EXPM1, (-INFINITY), (-1), (0));
    EXPECT_AT(TG_OP_ATAN, (-INFINITY, INFINITY), (-1.5707963267948966, 1.5707963267948966), (0, 0));
}

/* asinh' = 1/sqrt(x^2 + 1) and acosh' = 1/sqrt(x^2 - 1) where x^2 overflows: 2^100 in f32
 * (x^2 = 2^200), 2^600 in f64 (x^2 = 2^1200). mpmath (mp.dps = 400): asinh(2^100) =
 * acosh(2^100) = 70.00786523655448, asinh(2^600) = 416.5814555165271, the derivatives 2^-100
 * and 2^-600 to far more than double precision. */
Test(ops, math_asinh_acosh_gradients_for_huge_x)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        int e = dt == TG_F32 ? 100 : 600;
        double x = ldexp(1, e), y = dt == TG_F32 ? 70.00786523655448 : 416.5814555165271;
        const tg_op ops[2] = {TG_OP_ASINH, TG_OP_ACOSH};
        for (int k = 0; k < 2; k++) {
            fresh_start();
            tg_tensor *t;
            tg_tensor *r =
                run(ops[k], dt, (double[]){x, -x}, ops[k] == TG_OP_ASINH ? 2 : 1, NULL, &t);
            expect_rel(tg_tensor_get(r, 0), y, dt, "", ops[k], x);
            expect_rel(tg_tensor_grad_get(t, 0), ldexp(1, -e), dt, "d", ops[k], x);
            if (ops[k] == TG_OP_ASINH) {
                expect_rel(tg_tensor_get(r, 1), -y, dt, "", ops[k], -x);
                expect_rel(tg_tensor_grad_get(t, 1), ldexp(1, -e), dt, "d", ops[k], -x);
            }
        }
    }
}

/* ---- sign, floor, ceil: values, and a gradient of exactly 0 everywhere ------------------- */

Test(ops, math_sign_floor_ceil_have_zero_gradient)
{
    const double x[8] = {-0.0, 0.0, -3, 2.5, -2.5, 1e-30, -7, 1e20};
    const struct {
        tg_op op;
        double y[8];
    } cases[] = {
        {TG_OP_SIGN, {0, 0, -1, 1, -1, 1, -1, 1}},
        {TG_OP_FLOOR, {0, 0, -3, 2, -3, 0, -7, 1e20}},
        {TG_OP_CEIL, {0, 0, -3, 3, -2, 1, -7, 1e20}},
    };
    const double dy[8] = {1, 2, 3, -4, 5, INFINITY, -1e300, 0.5};
    for (size_t ci = 0; ci < 3; ci++)
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            fresh_start();
            tg_tensor *t;
            tg_tensor *y = run(cases[ci].op, dt, x, 8, dy, &t);
            for (size_t i = 0; i < 8; i++) {
                double want = dt == TG_F32 ? (double)(float)cases[ci].y[i] : cases[ci].y[i];
                cr_expect_eq(tg_tensor_get(y, i), want, "%s(%g) = %g, expected %g (%s)",
                             tg_op_name(cases[ci].op), x[i], tg_tensor_get(y, i), want,
                             tg_dtype_name(dt));
                cr_expect(tg_tensor_grad_get(t, i) == 0 && !signbit(tg_tensor_grad_get(t, i)),
                          "d %s(%g) = %g, expected 0 (%s)", tg_op_name(cases[ci].op), x[i],
                          tg_tensor_grad_get(t, i), tg_dtype_name(dt));
            }
        }
    /* sign(-0) keeps the sign of its zero */
    fresh_start();
    tg_tensor *t;
    tg_tensor *y = run(TG_OP_SIGN, TG_F64, (double[]){-0.0}, 1, NULL, &t);
    cr_expect(tg_tensor_get(y, 0) == 0 && signbit(tg_tensor_get(y, 0)), "sign(-0) = %g",
              tg_tensor_get(y, 0));
}

/* The constructors record the op of their name (tg_apply is what the tests above use). */
Test(ops, math_constructors)
{
    tg_tensor *(*const fns[])(tg_tape *, tg_tensor *) = {
        tg_sin,      tg_cos,   tg_tan,   tg_asin,  tg_acos,  tg_atan,  tg_sinh,
        tg_cosh,     tg_asinh, tg_acosh, tg_atanh, tg_expm1, tg_log1p, tg_erf,
        tg_softplus, tg_gelu,  tg_silu,  tg_sign,  tg_floor, tg_ceil};
    cr_assert_eq(sizeof fns / sizeof fns[0], (size_t)(TG_OP_CEIL - TG_OP_SIN + 1));
    tg_tensor *x = leaf(TG_F64, (double[]){1.5, 0.5}, 2);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        tg_tensor *y = fns[i](tape, x);
        cr_assert(y != NULL, "%s: %s", tg_op_name((tg_op)(TG_OP_SIN + (int)i)),
                  tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(y), TG_OP_SIN + (int)i, "constructor %zu records %s", i,
                     tg_tensor_op_name(y));
        cr_expect(tg_tensor_requires_grad(y));
    }
}
