/* test_grad_graph_unary.c: the differentiable VJPs (tg_grad_graph) of every op of unary.c.
 * For each op, at random shapes (0-d to 4-D) and random points inside its domain, with
 * f = sum(op(x) * w) for a random w:
 *  - first order: tg_grad_graph's gradient equals tg_grad's (the in-place VJPs) to ~1e-12;
 *  - second order: H u, from differentiating sum(g * u) again (tg_grad of the graph gradient
 *    g), equals w * f''(x) * u from a closed form of f'' written in C below (from the math, not
 *    from tapegrad), and central finite differences of tg_grad's gradient along u (a small
 *    gradgradcheck);
 *  - f32 gives f64's values to f32 accuracy.
 * Then third derivatives (tg_grad_graph twice, then tg_grad) of sin, tanh, sigmoid and gelu
 * against closed forms, and the edge conventions (relu'(0) = 0, abs'(0) = 0, clamp's closed
 * bounds, pow with exponent 0 at 0, atanh outside [-1, 1], sign/floor/ceil) in graph mode
 * against the in-place VJPs. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

/* ---- the ops, their domains and their second derivatives ------------------------------------
 * Closed forms of f''(x) (hand derivations): s = sigmoid(x), t = tanh(x), phi the standard
 * normal density. */

typedef tg_tensor *(*build_fn)(tg_tape *, tg_tensor *);

static double sig(double x)
{
    return 1 / (1 + exp(-x));
}
static double phi(double x)
{
    return exp(-x * x / 2) * 0.39894228040143267794; /* 1 / sqrt(2 pi) */
}

static double d2_zero(double x)
{
    (void)x;
    return 0;
}
static double d2_two(double x)
{
    (void)x;
    return 2;
}
/* (x^2.5)'' = 2.5 * 1.5 x^0.5 */
static double d2_pow25(double x)
{
    return 2.5 * 1.5 * sqrt(x);
}
/* (x^3)'' = 6x */
static double d2_pow3(double x)
{
    return 6 * x;
}
/* (x^-1.5)'' = (-1.5)(-2.5) x^-3.5 */
static double d2_powm15(double x)
{
    return 3.75 * pow(x, -3.5);
}
/* sqrt'' = -x^(-3/2) / 4 */
static double d2_sqrt(double x)
{
    return -0.25 * pow(x, -1.5);
}
/* exp'' = expm1'' = exp */
static double d2_exp(double x)
{
    return exp(x);
}
/* log'' = -1/x^2 */
static double d2_log(double x)
{
    return -1 / (x * x);
}
/* sigmoid'' = s (1-s) (1-2s) */
static double d2_sigmoid(double x)
{
    double s = sig(x);
    return s * (1 - s) * (1 - 2 * s);
}
/* tanh'' = -2 t (1 - t^2) */
static double d2_tanh(double x)
{
    double t = tanh(x);
    return -2 * t * (1 - t * t);
}
/* log_sigmoid' = sigmoid(-x) = 1 - s, so log_sigmoid'' = -s (1-s) */
static double d2_log_sigmoid(double x)
{
    double s = sig(x);
    return -s * (1 - s);
}
/* sin'' = -sin, cos'' = -cos */
static double d2_sin(double x)
{
    return -sin(x);
}
static double d2_cos(double x)
{
    return -cos(x);
}
/* tan' = 1 + t^2, tan'' = 2 t (1 + t^2) */
static double d2_tan(double x)
{
    double t = tan(x);
    return 2 * t * (1 + t * t);
}
/* asin' = (1-x^2)^(-1/2), asin'' = x (1-x^2)^(-3/2); acos'' = -asin'' */
static double d2_asin(double x)
{
    return x / pow(1 - x * x, 1.5);
}
static double d2_acos(double x)
{
    return -x / pow(1 - x * x, 1.5);
}
/* atan'' = -2x / (1+x^2)^2 */
static double d2_atan(double x)
{
    return -2 * x / ((1 + x * x) * (1 + x * x));
}
/* sinh'' = sinh, cosh'' = cosh */
static double d2_sinh(double x)
{
    return sinh(x);
}
static double d2_cosh(double x)
{
    return cosh(x);
}
/* asinh'' = -x (1+x^2)^(-3/2) */
static double d2_asinh(double x)
{
    return -x / pow(1 + x * x, 1.5);
}
/* acosh'' = -x (x^2-1)^(-3/2) */
static double d2_acosh(double x)
{
    return -x / pow(x * x - 1, 1.5);
}
/* atanh'' = 2x / (1-x^2)^2 */
static double d2_atanh(double x)
{
    return 2 * x / ((1 - x * x) * (1 - x * x));
}
/* log1p'' = -1/(1+x)^2 */
static double d2_log1p(double x)
{
    return -1 / ((1 + x) * (1 + x));
}
/* erf' = (2/sqrt pi) e^(-x^2), erf'' = -(4x/sqrt pi) e^(-x^2) */
static double d2_erf(double x)
{
    return -2 * 1.12837916709551257390 * x * exp(-x * x); /* 2 / sqrt(pi) = 1.128... */
}
/* softplus' = s, softplus'' = s (1-s) */
static double d2_softplus(double x)
{
    double s = sig(x);
    return s * (1 - s);
}
/* gelu' = Phi + x phi, phi' = -x phi: gelu'' = phi + phi - x^2 phi = phi (2 - x^2) */
static double d2_gelu(double x)
{
    return phi(x) * (2 - x * x);
}
/* silu' = s + x s (1-s), (s (1-s))' = s (1-s) (1-2s):
 * silu'' = 2 s (1-s) + x s (1-s) (1-2s) = s (1-s) (2 + x (1-2s)) */
static double d2_silu(double x)
{
    double s = sig(x);
    return s * (1 - s) * (2 + x * (1 - 2 * s));
}

/* the ops with a constant, at the constants the cases use */
static tg_tensor *op_scale(tg_tape *t, tg_tensor *x)
{
    return tg_scale(t, x, -1.75);
}
static tg_tensor *op_add_scalar(tg_tape *t, tg_tensor *x)
{
    return tg_add_scalar(t, x, 0.375);
}
static tg_tensor *op_pow25(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 2.5);
}
static tg_tensor *op_pow3(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 3);
}
static tg_tensor *op_powm15(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, -1.5);
}
static tg_tensor *op_pow1(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 1);
}
static tg_tensor *op_pow0(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 0);
}
static tg_tensor *op_clamp(tg_tape *t, tg_tensor *x)
{
    return tg_clamp(t, x, -1, 0.75);
}

/* The distance from x to the nearest point where the op is not smooth: the points drawn stay
 * 0.05 away, far beyond the finite differences' step. */
static double kink_zero(double x)
{
    return fabs(x);
}
static double kink_clamp(double x)
{
    return fmin(fabs(x + 1), fabs(x - 0.75));
}
static double kink_int(double x)
{
    return fabs(x - round(x));
}

typedef struct op_case {
    const char *name;
    build_fn build;
    double lo, hi;          /* points are drawn in [lo, hi] */
    double (*kink)(double); /* distance to the nearest kink, or NULL */
    double (*d2)(double);   /* f''(x) */
} op_case;

static const op_case CASES[] = {
    {"neg", tg_neg, -2.5, 2.5, NULL, d2_zero},
    {"scale", op_scale, -2.5, 2.5, NULL, d2_zero},
    {"add_scalar", op_add_scalar, -2.5, 2.5, NULL, d2_zero},
    {"pow 2.5", op_pow25, 0.2, 3, NULL, d2_pow25},
    {"pow 3", op_pow3, -2, 2, NULL, d2_pow3},
    {"pow -1.5", op_powm15, 0.3, 3, NULL, d2_powm15},
    {"pow 1", op_pow1, -2, 2, NULL, d2_zero},
    {"pow 0", op_pow0, -2, 2, NULL, d2_zero},
    {"square", tg_square, -2.5, 2.5, NULL, d2_two},
    {"sqrt", tg_sqrt, 0.2, 3, NULL, d2_sqrt},
    {"exp", tg_exp, -2.5, 2.5, NULL, d2_exp},
    {"log", tg_log, 0.2, 3, NULL, d2_log},
    {"abs", tg_abs, -2.5, 2.5, kink_zero, d2_zero},
    {"sigmoid", tg_sigmoid, -4, 4, NULL, d2_sigmoid},
    {"tanh", tg_tanh, -3, 3, NULL, d2_tanh},
    {"relu", tg_relu, -2.5, 2.5, kink_zero, d2_zero},
    {"log_sigmoid", tg_log_sigmoid, -4, 4, NULL, d2_log_sigmoid},
    {"clamp", op_clamp, -2, 2, kink_clamp, d2_zero},
    {"sin", tg_sin, -3, 3, NULL, d2_sin},
    {"cos", tg_cos, -3, 3, NULL, d2_cos},
    {"tan", tg_tan, -1.2, 1.2, NULL, d2_tan},
    {"asin", tg_asin, -0.8, 0.8, NULL, d2_asin},
    {"acos", tg_acos, -0.8, 0.8, NULL, d2_acos},
    {"atan", tg_atan, -3, 3, NULL, d2_atan},
    {"sinh", tg_sinh, -2.5, 2.5, NULL, d2_sinh},
    {"cosh", tg_cosh, -2.5, 2.5, NULL, d2_cosh},
    {"asinh", tg_asinh, -3, 3, NULL, d2_asinh},
    {"acosh", tg_acosh, 1.2, 4, NULL, d2_acosh},
    {"atanh", tg_atanh, -0.8, 0.8, NULL, d2_atanh},
    {"expm1", tg_expm1, -2.5, 2.5, NULL, d2_exp},
    {"log1p", tg_log1p, -0.7, 3, NULL, d2_log1p},
    {"erf", tg_erf, -2.5, 2.5, NULL, d2_erf},
    {"softplus", tg_softplus, -4, 4, NULL, d2_softplus},
    {"gelu", tg_gelu, -3, 3, NULL, d2_gelu},
    {"silu", tg_silu, -4, 4, NULL, d2_silu},
    {"sign", tg_sign, -2.5, 2.5, kink_zero, d2_zero},
    {"floor", tg_floor, -2.5, 2.5, kink_int, d2_zero},
    {"ceil", tg_ceil, -2.5, 2.5, kink_int, d2_zero},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* ---- random points ----------------------------------------------------------------------- */

static uint64_t rng_state;

static double uniform(double lo, double hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (double)(rng_state >> 11) / 9007199254740992.0;
}

static double point_of(const op_case *oc)
{
    for (;;) {
        double x = uniform(oc->lo, oc->hi);
        if (!oc->kink || oc->kink(x) > 0.05)
            return x;
    }
}

#define MAX_N 81

/* A random shape of rank 0..4, sizes 1 to 3 (at most MAX_N elements). */
static int random_shape(int rank, size_t *shape)
{
    for (int a = 0; a < rank; a++)
        shape[a] = 1 + (size_t)uniform(0, 3); /* 1..3 */
    return rank;
}

static size_t numel_of(int rank, const size_t *shape)
{
    size_t n = 1;
    for (int a = 0; a < rank; a++)
        n *= shape[a];
    return n;
}

/* ---- derivatives through the library -------------------------------------------------------- */

static tg_tensor *make_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool grad)
{
    return ts_leaf(dt, rank, shape, v, grad);
}

static void read_into(const tg_tensor *t, double *out, size_t n)
{
    cr_assert_not_null(t);
    cr_assert_eq(tg_tensor_numel(t), n);
    for (size_t i = 0; i < n; i++)
        out[i] = tg_tensor_get(t, i);
}

/* For f = sum(op(x) * w) at x = xv (dtype dt): g1 = tg_grad's gradient (first-order path), and
 * when gg is given, gg = tg_grad_graph's and hu = d/dx sum(gg * u), by tg_grad of the graph
 * gradient (zeros when the graph gradient is a constant). */
static void derivs(const op_case *oc, tg_dtype dt, int rank, const size_t *shape, const double *xv,
                   const double *wv, const double *uv, double *g1, double *gg, double *hu)
{
    const size_t n = numel_of(rank, shape);
    tg_tensor *x = make_leaf(dt, rank, shape, xv, true);
    tg_tensor *w = make_leaf(dt, rank, shape, wv, false);
    tg_tensor *u = make_leaf(dt, rank, shape, uv, false);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *f = tg_sum(tape, tg_mul(tape, oc->build(tape, x), w), TG_ALL_AXES, false);
    cr_assert_not_null(f, "%s: %s", oc->name, tg_tape_error(tape));

    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, f, &x, 1, &g), TG_OK, "%s: tg_grad: %s", oc->name, tg_last_error());
    read_into(g, g1, n);
    tg_tensor_free(g);

    if (gg) {
        tg_tensor *gt = NULL;
        cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &gt), TG_OK, "%s: tg_grad_graph: %s",
                     oc->name, tg_last_error());
        read_into(gt, gg, n);
        tg_tensor *s = tg_sum(tape, tg_mul(tape, gt, u), TG_ALL_AXES, false);
        cr_assert_not_null(s, "%s: %s", oc->name, tg_tape_error(tape));
        if (tg_tensor_requires_grad(s)) {
            tg_tensor *h = NULL;
            cr_assert_eq(tg_grad(tape, s, &x, 1, &h), TG_OK, "%s: second order: %s", oc->name,
                         tg_last_error());
            read_into(h, hu, n);
            tg_tensor_free(h);
        } else {
            memset(hu, 0, n * sizeof *hu);
        }
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(u);
}

/* ---- first and second order in f64 ---------------------------------------------------------- */

/* One op at one random shape of each rank 0..4: graph gradient against tg_grad's, H u against
 * the closed form and against central differences of tg_grad's gradient along u. */
static void check_op(const op_case *oc, uint64_t seed)
{
    rng_state = seed;
    for (int rank = 0; rank <= 4; rank++) {
        size_t shape[4];
        random_shape(rank, shape);
        const size_t n = numel_of(rank, shape);
        double xv[MAX_N], wv[MAX_N], uv[MAX_N], g1[MAX_N], gg[MAX_N], hu[MAX_N];
        for (size_t i = 0; i < n; i++) {
            xv[i] = point_of(oc);
            wv[i] = uniform(-1.5, 1.5);
            uv[i] = uniform(-1, 1);
        }
        derivs(oc, TG_F64, rank, shape, xv, wv, uv, g1, gg, hu);
        /* the step of the central differences; their error is about h^2 f'''' + eps |f'| / h */
        const double h = 1e-5;
        double xp[MAX_N], xm[MAX_N], gp[MAX_N], gm[MAX_N];
        for (size_t i = 0; i < n; i++) {
            xp[i] = xv[i] + h * uv[i];
            xm[i] = xv[i] - h * uv[i];
        }
        derivs(oc, TG_F64, rank, shape, xp, wv, uv, gp, NULL, NULL);
        derivs(oc, TG_F64, rank, shape, xm, wv, uv, gm, NULL, NULL);
        for (size_t i = 0; i < n; i++) {
            ts_assert_close(gg[i], g1[i], 1e-14, 1e-12,
                            "%s rank %d: graph gradient [%zu] at x = %.17g", oc->name, rank, i,
                            xv[i]);
            const double want = wv[i] * oc->d2(xv[i]) * uv[i];
            ts_assert_close(hu[i], want, 1e-13, 1e-11, "%s rank %d: H u [%zu] at x = %.17g",
                            oc->name, rank, i, xv[i]);
            const double fd = (gp[i] - gm[i]) / (2 * h);
            ts_assert_close(hu[i], fd, 1e-7, 1e-6,
                            "%s rank %d: H u [%zu] at x = %.17g against "
                            "finite differences",
                            oc->name, rank, i, xv[i]);
        }
    }
}

Test(grad_graph_unary, every_op_first_and_second_order_f64)
{
    for (size_t k = 0; k < N_CASES; k++)
        check_op(&CASES[k], 0x9e3779b97f4a7c15ull + 7919 * k);
}

/* ---- f32 ------------------------------------------------------------------------------------ */

/* f32 gives f64's first and second derivatives at the same (f32) points, to f32 accuracy. */
Test(grad_graph_unary, every_op_f32_close_to_f64)
{
    for (size_t k = 0; k < N_CASES; k++) {
        const op_case *oc = &CASES[k];
        rng_state = 0x2545f4914f6cdd1dull + 104729 * k;
        const size_t shape[2] = {2, 3}, n = 6;
        double xv[6], wv[6], uv[6];
        for (size_t i = 0; i < n; i++) {
            xv[i] = (float)point_of(oc);
            wv[i] = (float)uniform(-1.5, 1.5);
            uv[i] = (float)uniform(-1, 1);
        }
        double g1[6], gg[6], hu[6], g1s[6], ggs[6], hus[6];
        derivs(oc, TG_F64, 2, shape, xv, wv, uv, g1, gg, hu);
        derivs(oc, TG_F32, 2, shape, xv, wv, uv, g1s, ggs, hus);
        for (size_t i = 0; i < n; i++) {
            ts_assert_close(ggs[i], gg[i], 1e-5, 1e-5, "%s f32: graph gradient [%zu] at x = %.9g",
                            oc->name, i, xv[i]);
            ts_assert_close(ggs[i], g1s[i], 1e-6, 1e-6,
                            "%s f32: graph gradient [%zu] against tg_grad's at x = %.9g", oc->name,
                            i, xv[i]);
            ts_assert_close(hus[i], hu[i], 1e-5, 1e-4, "%s f32: H u [%zu] at x = %.9g", oc->name, i,
                            xv[i]);
        }
    }
}

/* ---- third order ---------------------------------------------------------------------------- */

/* sin''' = -cos */
static double d3_sin(double x)
{
    return -cos(x);
}
/* tanh'' = -2t + 2t^3, times t' = 1 - t^2: tanh''' = -2 (1 - t^2)(1 - 3t^2) */
static double d3_tanh(double x)
{
    double t = tanh(x);
    return -2 * (1 - t * t) * (1 - 3 * t * t);
}
/* sigmoid'' = s - 3s^2 + 2s^3, times s' = s(1-s): sigmoid''' = s (1-s) (1 - 6s + 6s^2) */
static double d3_sigmoid(double x)
{
    double s = sig(x);
    return s * (1 - s) * (1 - 6 * s + 6 * s * s);
}
/* gelu'' = phi (2 - x^2), phi' = -x phi: gelu''' = phi (-x (2 - x^2) - 2x) = phi (x^3 - 4x) */
static double d3_gelu(double x)
{
    return phi(x) * (x * x * x - 4 * x);
}

/* d/dx of sum(v * d/dx sum(u * d/dx sum(w * op(x)))) = w u v f'''(x): tg_grad_graph twice,
 * then tg_grad. */
static void check_third(build_fn op, const char *name, double (*d3)(double), double lo, double hi)
{
    rng_state = 0x853c49e6748fea9bull;
    const size_t n = 5;
    double xv[5], wv[5], uv[5], vv[5];
    for (size_t i = 0; i < n; i++) {
        xv[i] = uniform(lo, hi);
        wv[i] = uniform(-1.5, 1.5);
        uv[i] = uniform(-1, 1);
        vv[i] = uniform(-1, 1);
    }
    tg_tensor *x = ts_vec(TG_F64, n, xv, true), *w = ts_vec(TG_F64, n, wv, false),
              *u = ts_vec(TG_F64, n, uv, false), *v = ts_vec(TG_F64, n, vv, false);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *f = tg_sum(tape, tg_mul(tape, op(tape, x), w), TG_ALL_AXES, false);
    tg_tensor *g = NULL, *g2 = NULL, *g3 = NULL;
    cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s: %s", name, tg_last_error());
    tg_tensor *s = tg_sum(tape, tg_mul(tape, g, u), TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, s, &x, 1, NULL, &g2), TG_OK, "%s: %s", name, tg_last_error());
    cr_assert(tg_tensor_requires_grad(g2), "%s: the second derivative is differentiable", name);
    tg_tensor *s2 = tg_sum(tape, tg_mul(tape, g2, v), TG_ALL_AXES, false);
    cr_assert_eq(tg_grad(tape, s2, &x, 1, &g3), TG_OK, "%s: %s", name, tg_last_error());
    for (size_t i = 0; i < n; i++)
        ts_assert_close(tg_tensor_get(g3, i), wv[i] * uv[i] * vv[i] * d3(xv[i]), 1e-13, 1e-11,
                        "%s''' [%zu] at x = %.17g", name, i, xv[i]);
    tg_tensor_free(g3);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(u);
    tg_tensor_free(v);
}

Test(grad_graph_unary, third_order)
{
    check_third(tg_sin, "sin", d3_sin, -3, 3);
    check_third(tg_tanh, "tanh", d3_tanh, -2.5, 2.5);
    check_third(tg_sigmoid, "sigmoid", d3_sigmoid, -4, 4);
    check_third(tg_gelu, "gelu", d3_gelu, -3, 3);
}

/* ---- edge conventions ----------------------------------------------------------------------- */

/* The gradient of sum(op(x)) at the points xv, in graph mode and in place: they must agree
 * (NaN with NaN, inf with inf), and equal want. Returns whether the graph gradient requires
 * grad. */
static bool expect_edges(build_fn op, const char *name, size_t n, const double *xv,
                         const double *want)
{
    tg_tensor *x = ts_vec(TG_F64, n, xv, true);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *f = tg_sum(tape, op(tape, x), TG_ALL_AXES, false);
    tg_tensor *g = NULL, *g1 = NULL;
    cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s: %s", name, tg_last_error());
    cr_assert_eq(tg_grad(tape, f, &x, 1, &g1), TG_OK, "%s: %s", name, tg_last_error());
    for (size_t i = 0; i < n; i++) {
        ts_assert_close(tg_tensor_get(g, i), want[i], 0, 1e-15, "%s graph gradient at x = %g", name,
                        xv[i]);
        ts_assert_close(tg_tensor_get(g1, i), want[i], 0, 1e-15, "%s in-place gradient at x = %g",
                        name, xv[i]);
    }
    bool rg = tg_tensor_requires_grad(g);
    tg_tensor_free(g1);
    tg_tape_free(tape);
    tg_tensor_free(x);
    return rg;
}

static tg_tensor *op_clamp01(tg_tape *t, tg_tensor *x)
{
    return tg_clamp(t, x, 0, 1);
}
static tg_tensor *op_pow_half(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 0.5);
}

Test(grad_graph_unary, edge_conventions)
{
    /* relu'(0) = 0; abs'(0) = 0; a NaN gets 0 from both (the masks compare false) */
    cr_assert_not(expect_edges(tg_relu, "relu", 4, TS_VALS(-1, 0, 2, NAN), TS_VALS(0, 0, 1, 0)),
                  "relu's graph gradient is a constant (its mask)");
    cr_assert_not(expect_edges(tg_abs, "abs", 4, TS_VALS(-1, 0, 2, NAN), TS_VALS(-1, 0, 1, 0)));
    /* clamp's bounds are inside: slope 1 at lo and hi */
    cr_assert_not(expect_edges(op_clamp01, "clamp", 5, TS_VALS(-0.5, 0, 0.5, 1, 1.5),
                               TS_VALS(0, 1, 1, 1, 0)));
    /* x^0 has slope 0 everywhere, also at 0; x^0.5 has slope inf at 0 */
    cr_assert_not(expect_edges(op_pow0, "pow 0", 3, TS_VALS(-2, 0, 3), TS_VALS(0, 0, 0)));
    cr_assert(expect_edges(op_pow_half, "pow 0.5", 2, TS_VALS(0, 4), TS_VALS(INFINITY, 0.25)));
    cr_assert(expect_edges(tg_sqrt, "sqrt", 2, TS_VALS(0, 4), TS_VALS(INFINITY, 0.25)));
    cr_assert(expect_edges(tg_log, "log", 2, TS_VALS(0, 4), TS_VALS(INFINITY, 0.25)));
    /* atanh: 1 / (1 - x^2): inf at +-1, NaN outside [-1, 1] */
    cr_assert(expect_edges(tg_atanh, "atanh", 5, TS_VALS(-1.5, -1, 0.5, 1, 2),
                           TS_VALS(NAN, INFINITY, 4.0 / 3, INFINITY, NAN)));
    /* asin: inf at +-1 */
    cr_assert(expect_edges(tg_asin, "asin", 3, TS_VALS(-1, 0, 1), TS_VALS(INFINITY, 1, INFINITY)));
    /* piecewise constant: zero, and a constant */
    cr_assert_not(expect_edges(tg_sign, "sign", 3, TS_VALS(-1, 0, 2), TS_VALS(0, 0, 0)));
    cr_assert_not(expect_edges(tg_floor, "floor", 3, TS_VALS(-1.5, 0, 2), TS_VALS(0, 0, 0)));
    cr_assert_not(expect_edges(tg_ceil, "ceil", 3, TS_VALS(-1.5, 0, 2), TS_VALS(0, 0, 0)));
}

/* atanh's gradient is NaN for |x| > 1, and so are its derivatives, in x (a Hessian) and in the
 * seed (forward mode): the NaN was once a constant added to the gradient, which the next
 * derivative dropped. Inside, atanh'' = 2x / (1 - x^2)^2 and d(g)/d(seed) = 1 / (1 - x^2). */
Test(grad_graph_unary, atanh_outside_its_domain_stays_nan_in_every_derivative)
{
    const double xv[3] = {-1.5, 0.5, 2};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true), *v = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *g, *d[2];
    cr_assert_eq(tg_vjp(tape, tg_atanh(tape, x), v, &x, 1, &g), TG_OK, "%s", tg_last_error());
    tg_tensor *xs[2] = {x, v};
    cr_assert_eq(tg_grad(tape, tg_sum(tape, g, TG_ALL_AXES, false), xs, 2, d), TG_OK, "%s",
                 tg_last_error());
    for (size_t i = 0; i < 3; i++) {
        if (fabs(xv[i]) > 1) {
            cr_expect(isnan(tg_tensor_get(g, i)), "g at %g", xv[i]);
            cr_expect(isnan(tg_tensor_get(d[0], i)), "d/dx at %g: %g", xv[i],
                      tg_tensor_get(d[0], i));
            cr_expect(isnan(tg_tensor_get(d[1], i)), "d/dseed at %g: %g", xv[i],
                      tg_tensor_get(d[1], i));
        } else {
            const double q = 1 - xv[i] * xv[i];
            ts_assert_close(tg_tensor_get(d[0], i), 2 * xv[i] / (q * q), 0, 1e-15, "atanh''");
            ts_assert_close(tg_tensor_get(d[1], i), 1 / q, 0, 1e-15, "d/dseed");
        }
    }
    tg_tensor_free(d[0]);
    tg_tensor_free(d[1]);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(v);
}

/* An f32 op computes with its constant rounded to f32, and so must its recorded gradient:
 * x^1.00000001 in f32 is x^1, slope 1 everywhere. The recorded gradient took c - 1 from the
 * unrounded c, 1e-8: x^(1e-8) made it NaN at x = -2 and 0 at x = 0. */
static tg_tensor *op_pow_nearly_1(tg_tape *t, tg_tensor *x)
{
    return tg_pow(t, x, 1.00000001);
}

Test(grad_graph_unary, f32_constant_is_rounded_in_the_recorded_gradient)
{
    tg_tensor *x = ts_vec(TG_F32, 3, TS_VALS(-2, 0, 3), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, op_pow_nearly_1(tape, x), TG_ALL_AXES, false), *g, *h;
    cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(tg_tensor_get(g, i), 1.0, "d/dx x^1.00000001 (f32) at %g: %g",
                     tg_tensor_get(x, i), tg_tensor_get(g, i));
    /* and its own derivative, 0 (x^1 is linear), not (1e-8)(1e-8 - 1) x^(1e-8 - 2) */
    cr_assert_eq(tg_grad(tape, tg_sum(tape, g, TG_ALL_AXES, false), &x, 1, &h), TG_OK, "%s",
                 tg_last_error());
    cr_expect_eq(tg_tensor_get(h, 2), 0.0, "second derivative at 3: %g", tg_tensor_get(h, 2));
    tg_tensor_free(h);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* x^c with c an even integer from 2^24 in f32 (2^53 in f64) has slope c x^(c-1), c - 1 odd, so
 * negative for x < 0: -c at x = -1, -inf at -2, and about -(2^24 + 2) e^2 at -(1 + 2^-23) for
 * c = 2^24 + 2. The recorded gradient's c - 1, rounded to an even number, made these positive. */
Test(grad_graph_unary, pow_slope_keeps_its_sign_at_huge_even_exponents)
{
    const double cs[2] = {0x1p24 + 2, 0x1p60};
    for (int di = 0; di < 2; di++)
        for (int k = di; k < 2; k++) { /* f64 rounds c - 1 only at 2^60 */
            const tg_dtype dt = di ? TG_F64 : TG_F32;
            const double c = cs[k], near = -(1 + 0x1p-23);
            tg_tensor *x = ts_vec(dt, 3, TS_VALS(-1, -2, near), true);
            tg_tape *tape = tg_tape_new();
            tg_tensor *f = tg_sum(tape, tg_pow(tape, x, c), TG_ALL_AXES, false), *g, *g1;
            cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
            cr_assert_eq(tg_grad(tape, f, &x, 1, &g1), TG_OK, "%s", tg_last_error());
            const char *name = tg_dtype_name(dt);
            cr_expect_eq(tg_tensor_get(g, 0), -c, "(%s) d/dx x^%a at -1: %a", name, c,
                         tg_tensor_get(g, 0));
            cr_expect_eq(tg_tensor_get(g, 1), -INFINITY, "(%s) d/dx x^%a at -2: %a", name, c,
                         tg_tensor_get(g, 1));
            /* c x^(c-1) at -(1 + 2^-23): -c e^((c - 1) log1p(2^-23)), -inf for c = 2^60 */
            const double want = c < 0x1p30 ? -c * exp((c - 1) * log1p(0x1p-23)) : -INFINITY;
            cr_expect(tg_tensor_get(g, 2) < 0, "(%s) d/dx x^%a at %a: %a", name, c, near,
                      tg_tensor_get(g, 2));
            if (isfinite(want))
                ts_assert_close(tg_tensor_get(g, 2), want, 0, 1e-6, "(%s) at %a", name, near);
            for (size_t i = 0; i < 3; i++)
                ts_assert_close(tg_tensor_get(g1, i), tg_tensor_get(g, i), 0, 1e-6,
                                "(%s) in-place and graph gradients at %zu", name, i);
            tg_tensor_free(g1);
            tg_tape_free(tape);
            tg_tensor_free(x);
        }
}

/* The graph gradient of a smooth op is differentiable; sums over fan-out (x used by two ops)
 * meet in the second derivative too: f = sum(sin(x) * exp(x)), f'' = (e^x (sin + cos))' =
 * 2 e^x cos x. */
Test(grad_graph_unary, fan_out_second_order)
{
    const double xv[3] = {-0.7, 0.2, 1.3};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *f = tg_sum(tape, tg_mul(tape, tg_sin(tape, x), tg_exp(tape, x)), TG_ALL_AXES, false);
    tg_tensor *g = NULL, *h = NULL;
    cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_grad(tape, tg_sum(tape, g, TG_ALL_AXES, false), &x, 1, &h), TG_OK, "%s",
                 tg_last_error());
    for (size_t i = 0; i < 3; i++) {
        ts_assert_close(tg_tensor_get(g, i), exp(xv[i]) * (sin(xv[i]) + cos(xv[i])), 1e-15, 1e-14,
                        "f' [%zu]", i);
        ts_assert_close(tg_tensor_get(h, i), 2 * exp(xv[i]) * cos(xv[i]), 1e-15, 1e-14, "f'' [%zu]",
                        i);
    }
    tg_tensor_free(h);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
