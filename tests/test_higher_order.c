/* test_higher_order.c: derivatives of third and fourth order through chains of ops (tg_grad_graph
 * applied to its own results), against closed forms; the clear error when a gradient must be
 * recorded through an op without a differentiable VJP; and tg_gradgradcheck itself (a linear
 * function, a wrong second derivative behind a right first one, argument errors). The
 * per-op second-order checks are in test_gradgradcheck.c. */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

/* sum(g): the single-element function whose gradient is the next derivative of g's elements
 * (each g[j] depends on x[j] alone in the elementwise tests below). */
static tg_tensor *total(tg_tape *t, tg_tensor *g)
{
    tg_tensor *s = tg_sum(t, g, TG_ALL_AXES, false);
    cr_assert(s, "sum: %s", tg_tape_error(t));
    return s;
}

/* The gradient of f in x, recorded (differentiable again). */
static tg_tensor *dgraph(tg_tape *t, tg_tensor *f, tg_tensor *x)
{
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad_graph(t, f, &x, 1, NULL, &g), TG_OK, "tg_grad_graph: %s", tg_last_error());
    return g;
}

/* f = sum(x^5), x^5 recorded three ways: a chain of four multiplications, pow(x, 5), and
 * exp(5 log x) for positive x. The k-th derivative of x^5 is 5!/(5-k)! x^(5-k): 5x^4, 20x^3,
 * 60x^2, 120x, 120. Values of x are dyadic, so the chain of products is exact in f64; pow and
 * exp/log round, so they are compared to 1e-12 relative. */
typedef enum five { FIVE_MUL, FIVE_POW, FIVE_EXPLOG } five;

static tg_tensor *x_to_the_5(tg_tape *t, tg_tensor *x, five how)
{
    switch (how) {
    case FIVE_MUL: {
        tg_tensor *x2 = tg_mul(t, x, x);
        return tg_mul(t, tg_mul(t, x2, x2), x);
    }
    case FIVE_POW: return tg_pow(t, x, 5);
    case FIVE_EXPLOG: return tg_exp(t, tg_scale(t, tg_log(t, x), 5));
    }
    return NULL;
}

static void check_fifth_power(five how, const double *v, size_t n, double rel)
{
    tg_tensor *x = ts_vec(TG_F64, n, v, true);
    tg_tape *t = tg_tape_new();
    tg_tensor *g = total(t, x_to_the_5(t, x, how));
    static const double coef[6] = {1, 5, 20, 60, 120, 120};
    for (int k = 1; k <= 5; k++) {
        g = dgraph(t, total(t, g), x);
        for (size_t j = 0; j < n; j++) {
            double want = coef[k] * pow(v[j], 5 - k);
            ts_assert_close(tg_tensor_get(g, j), want, rel, rel,
                            "method %d: d^%d/dx^%d of x^5 at %g", (int)how, k, k, v[j]);
        }
        if (k == 4) /* 120 x still depends on x; the fifth derivative no longer does */
            cr_expect(tg_tensor_requires_grad(g), "method %d: the 4th derivative is a constant",
                      (int)how);
    }
    tg_tape_free(t);
    tg_tensor_free(x);
}

Test(higher_order, fourth_derivative_of_x_to_the_5)
{
    const double v[5] = {0.5, -1.5, 2, 3, -0.25};
    check_fifth_power(FIVE_MUL, v, 5, 0);
    check_fifth_power(FIVE_POW, v, 5, 1e-12);
    const double pos[4] = {0.5, 1.5, 2, 3};
    check_fifth_power(FIVE_EXPLOG, pos, 4, 1e-12);
}

/* Mixed partials through a longer chain: f = sum(tanh(x)^2 * y^3) + sum(x^2 * y^3) with
 * tanh(x)^2 = 1 - sech(x)^2, so d^4 f / dx^2 dy^2 = 6y (d^2/dx^2 tanh(x)^2 + 2), where
 * d^2/dx^2 tanh(x)^2 = 2 sech^4 - 4 tanh^2 sech^2 (differentiate 2 tanh sech^2 once more).
 * Hand derivation, checked against mpmath 1.3.0 (mp.dps = 30) at the three points:
 *   python3 -c "import mpmath as mp; f=lambda a,b: mp.tanh(a)**2*b**3 + a**2*b**3;
 *               print(mp.diff(f, (0.7, 0.5), (2, 2)))"   # 5.63522316785029087504687276674 */
Test(higher_order, mixed_fourth_partial_through_a_chain)
{
    const double xv[3] = {0.7, -0.3, 1.2}, yv[3] = {0.5, -2, 1.5};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true), *y = ts_vec(TG_F64, 3, yv, true);
    tg_tape *t = tg_tape_new();
    tg_tensor *y3 = tg_mul(t, tg_mul(t, y, y), y);
    tg_tensor *th = tg_tanh(t, x);
    tg_tensor *f = tg_add(t, total(t, tg_mul(t, tg_mul(t, th, th), y3)),
                          total(t, tg_mul(t, tg_mul(t, x, x), y3)));
    tg_tensor *g = dgraph(t, f, x); /* d/dx */
    g = dgraph(t, total(t, g), x);  /* d2/dx2 */
    g = dgraph(t, total(t, g), y);  /* d3/dx2 dy */
    tg_tensor *h = NULL;            /* d4/dx2 dy2, first-order path for the last step */
    cr_assert_eq(tg_grad(t, total(t, g), &y, 1, &h), TG_OK, "%s", tg_last_error());
    for (size_t j = 0; j < 3; j++) {
        double tt = tanh(xv[j]), s = 1 - tt * tt;
        double want = 6 * yv[j] * (2 * s * s - 4 * tt * tt * s + 2);
        ts_assert_close(tg_tensor_get(h, j), want, 1e-13, 1e-12, "d4f/dx2dy2 at (%g, %g)", xv[j],
                        yv[j]);
    }
    tg_tensor_free(h);
    tg_tape_free(t);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* ---- an op without a differentiable VJP ------------------------------------------------------ */

static tg_status cube_forward(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]);
    double *y = c->y;
    for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++)
        y[j] = x[j] * x[j] * x[j];
    return TG_OK;
}

static tg_status cube_vjp(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]), *dy = c->dy;
    for (size_t j = 0, m = tg_tensor_numel(c->out); c->dx[0] && j < m; j++)
        ((double *)c->dx[0])[j] += 3 * x[j] * x[j] * dy[j];
    return TG_OK;
}

static const tg_custom_op CUBE = {
    .name = "cube_first_order", .forward = cube_forward, .vjp = cube_vjp};

/* A custom op without vjp_graph: first derivatives through it work, tg_grad_graph's too (its
 * values are exact); differentiating that gradient again, by tg_grad or tg_grad_graph, is
 * TG_EINVAL naming the op; where no second derivative must flow through it (its input
 * detached) nothing fails. */
Test(higher_order, twice_through_an_op_without_a_differentiable_vjp_is_a_clear_error)
{
    const double v[3] = {0.5, -1, 2};
    tg_tensor *x = ts_vec(TG_F64, 3, v, true);
    tg_tape *t = tg_tape_new();
    tg_tensor *f = total(t, tg_custom(t, &CUBE, NULL, &x, 1, 1, (size_t[]){3}));
    tg_tensor *g = NULL, *h = NULL;
    cr_assert_eq(tg_grad(t, f, &x, 1, &g), TG_OK, "%s", tg_last_error());
    for (size_t j = 0; j < 3; j++)
        cr_expect(tg_tensor_get(g, j) == 3 * v[j] * v[j]);
    tg_tensor_free(g);
    g = dgraph(t, f, x);
    for (size_t j = 0; j < 3; j++)
        cr_expect(tg_tensor_get(g, j) == 3 * v[j] * v[j], "recorded gradient %g at %g",
                  tg_tensor_get(g, j), v[j]);
    tg_tensor *s = total(t, g);
    cr_expect_eq(tg_grad(t, s, &x, 1, &h), TG_EINVAL, "tg_grad of the recorded gradient");
    cr_expect(h == NULL);
    ts_assert_has(tg_last_error(), "cube_first_order");
    ts_assert_has(tg_last_error(), "no differentiable VJP");
    tg_clear_error();
    cr_expect_eq(tg_grad_graph(t, s, &x, 1, NULL, &h), TG_EINVAL,
                 "tg_grad_graph of the recorded gradient");
    cr_expect(h == NULL);
    ts_assert_has(tg_last_error(), "cube_first_order");
    ts_assert_has(tg_last_error(), "no differentiable VJP");

    tg_tape_reset(t);
    tg_tensor *d = tg_detach(t, x);
    f = tg_add(t, total(t, tg_custom(t, &CUBE, NULL, &d, 1, 1, (size_t[]){3})),
               total(t, tg_mul(t, tg_mul(t, x, x), x)));
    g = dgraph(t, total(t, dgraph(t, f, x)), x);
    for (size_t j = 0; j < 3; j++)
        cr_expect(tg_tensor_get(g, j) == 6 * v[j], "d2/dx2 at %g: %g", v[j], tg_tensor_get(g, j));
    tg_tape_free(t);
    tg_tensor_free(x);
}

/* ---- tg_gradgradcheck itself ---------------------------------------------------------------- */

/* Linear in its inputs: sum(x - y + x); the gradient is constant, its derivative zero. */
static tg_tensor *linear_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(t, tg_add(t, tg_sub(t, in[0], in[1]), in[0]), TG_ALL_AXES, false);
}

Test(higher_order, gradgradcheck_of_a_linear_function_is_zero_not_an_error)
{
    tg_tensor *in[2] = {ts_vec(TG_F64, 3, TS_VALS(1, -2, 0.5), false),
                        ts_vec(TG_F64, 3, TS_VALS(0.25, 3, -1), false)};
    double err[2] = {-1, -1};
    tg_status st = tg_gradgradcheck(linear_fn, NULL, in, 2, NULL, err);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    cr_expect(err[0] == 0 && err[1] == 0, "errors %g %g, expected 0", err[0], err[1]);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
}

/* sum(x^3) written so that the first-order gradient is right (3x^2) but the recorded one
 * differentiates to 2x, not 6x: f = x*x*d + (x - d)*d*d with d = detach(x) (value x^3; the
 * gradient 2x d + d^2 = 3x^2 in value, whose derivative through x alone is 2d). */
static tg_tensor *hidden_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0], *d = tg_detach(t, x);
    tg_tensor *a = tg_mul(t, tg_mul(t, x, x), d);
    tg_tensor *b = tg_mul(t, tg_mul(t, tg_sub(t, x, d), d), d);
    return tg_sum(t, tg_add(t, a, b), TG_ALL_AXES, false);
}

Test(higher_order, gradgradcheck_reports_a_wrong_second_derivative)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, -2, 0.5), false);
    cr_expect_eq(tg_gradcheck(hidden_fn, NULL, &x, 1, NULL, NULL), TG_OK,
                 "the first derivative is right: %s", tg_last_error());
    double err = -1;
    tg_status st = tg_gradgradcheck(hidden_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_ENUMERIC, "%s: %s", tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "second derivative");
    /* analytic 2x u, numeric 6x u: |4 x u| / max(1, |6 x u|) for the worst element */
    cr_expect(err > 0.1, "max error %g", err);
    tg_tensor_free(x);
}

static tg_tensor *cube_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_mul(t, tg_mul(t, in[0], in[0]), in[0]); /* three elements: weighted by r */
}

static tg_tensor *f32_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const float one[3] = {1, 1, 1};
    tg_tensor *c = tg_constant(t, TG_F32, 1, (size_t[]){3}, one);
    return tg_sum(t, tg_mul(t, in[0], c), TG_ALL_AXES, false);
}

static tg_tensor *null_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)t;
    (void)in;
    (void)n;
    (void)ud;
    return NULL;
}

Test(higher_order, gradgradcheck_arguments_and_errors)
{
    const double v[3] = {1.0, -2.0, 0.5};
    tg_tensor *x = ts_vec(TG_F64, 3, v, false);
    double err = -1;
    tg_status st = tg_gradgradcheck(cube_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    cr_expect(err >= 0 && err < 1e-7, "max error %g", err);
    for (size_t i = 0; i < 3; i++)
        cr_expect(tg_tensor_get(x, i) == v[i], "the input changed");
    cr_expect(tg_tensor_grad_data(x) == NULL, "gradgradcheck wrote the input's grad");

    st = tg_gradgradcheck(f32_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EDTYPE, "mixed dtypes: %s: %s", tg_status_name(st), tg_last_error());
    st = tg_gradgradcheck(null_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "fn returning NULL: %s", tg_status_name(st));
    ts_assert_has(tg_last_error(), "gradgradcheck");
    cr_expect_eq(tg_gradgradcheck(NULL, NULL, &x, 1, NULL, NULL), TG_EINVAL);
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = 0;
    cr_expect_eq(tg_gradgradcheck(cube_fn, NULL, &x, 1, &opt, NULL), TG_EINVAL);
    tg_tensor *none = NULL;
    cr_expect_eq(tg_gradgradcheck(cube_fn, NULL, &none, 1, NULL, NULL), TG_EINVAL);

    /* f32 inputs are checked as f64 copies */
    const float fv[3] = {0.5f, -1.25f, 2.0f};
    tg_tensor *x32 = tg_tensor_from_data(TG_F32, 1, (size_t[]){3}, fv);
    st = tg_gradgradcheck(cube_fn, NULL, &x32, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "f32 input: %s: %s", tg_status_name(st), tg_last_error());
    tg_tensor_free(x32);
    tg_tensor_free(x);
}

/* tg_grad_graph's own checks, each refused before anything is recorded (the tape's size and
 * status as they were, out[] all NULL), with the message diff.h's list promises; and the two
 * answers that need no walk: the gradient of a leaf the recording never used in itself (the
 * seed, 1) and in anything else (zeros). */
Test(higher_order, grad_graph_arguments_and_errors)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *s3 = ts_vec(TG_F64, 3, TS_VALS(1, 1, 1), false);
    tg_tensor *s32 = ts_vec(TG_F32, 2, TS_VALS(1, 1), false);
    tg_tape *tape = tg_tape_new(), *other = tg_tape_new();
    tg_tensor *y = tg_mul(tape, x, x), *f = tg_sum(tape, y, TG_ALL_AXES, false);
    tg_tensor *elsewhere = tg_scale(other, x, 2.0);
    cr_assert(y && f && elsewhere, "%s", tg_last_error());
    const size_t size = tg_tape_size(tape);

    struct {
        tg_tape *tape;
        tg_tensor *y, *seed;
        tg_tensor *const *xs;
        tg_status want;
        const char *says;
    } bad[] = {
        {NULL, f, NULL, &x, TG_EINVAL, "grad_graph: tape is NULL"},
        {tape, NULL, NULL, &x, TG_EINVAL, "grad_graph: y is NULL"},
        {tape, elsewhere, NULL, &x, TG_EINVAL, "grad_graph: y (node 0) belongs to another tape"},
        {tape, y, NULL, &x, TG_EINVAL,
         "grad_graph: y has shape [2], not a single element; pass a seed of that shape"},
        {tape, y, elsewhere, &x, TG_EINVAL, "grad_graph: the seed belongs to another tape"},
        {tape, y, s32, &x, TG_EDTYPE, "grad_graph: seed dtype f32 differs from y's f64"},
        {tape, y, s3, &x, TG_ESHAPE, "grad_graph: seed shape [3] differs from y's [2]"},
        {tape, f, NULL, NULL, TG_EINVAL, "grad_graph: xs is NULL"},
        {tape, f, NULL, (tg_tensor *[]){NULL}, TG_EINVAL, "grad_graph: xs[0] is NULL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_tensor *out = x;
        cr_expect_eq(tg_grad_graph(bad[i].tape, bad[i].y, bad[i].xs, 1, bad[i].seed, &out),
                     bad[i].want, "case %zu: %s", i, tg_last_error());
        ts_assert_has(tg_last_error(), bad[i].says);
        cr_expect_null(out, "case %zu: out[0] not cleared", i);
    }
    cr_expect_eq(tg_grad_graph(tape, f, &x, 1, NULL, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "grad_graph: out is NULL");
    cr_expect_eq(tg_tape_size(tape), size, "a refused call recorded nodes");
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));

    /* a seed recorded before its tape's reset */
    tg_tape_reset(other);
    tg_tensor *out = x;
    cr_expect_eq(tg_grad_graph(tape, y, &x, 1, elsewhere, &out), TG_ESTALE);
    ts_assert_has(tg_last_error(), "was recorded before its tape was reset");
    cr_expect_null(out);

    /* y a leaf the recording never used: d z/d z is the seed (1), d z/d x is zero */
    tg_tensor *z = ts_scalar(TG_F64, 0.5, true), *g[2] = {NULL, NULL};
    cr_assert_eq(tg_grad_graph(tape, z, (tg_tensor *[]){z, x}, 2, NULL, g), TG_OK, "%s",
                 tg_last_error());
    ts_assert_values(g[0], TS_VALS(1), 1, 0, 0, "d z / d z");
    ts_assert_values(g[1], TS_VALS(0, 0), 2, 0, 0, "d z / d x");

    tg_tape_free(tape);
    tg_tape_free(other);
    tg_tensor_free(x);
    tg_tensor_free(z);
    tg_tensor_free(s3);
    tg_tensor_free(s32);
}

/* Anomaly mode checks what each op's recorded gradient passes back, as backward checks what each
 * VJP writes, not the steps of the formula in between, which may pass through Inf on the way to
 * a finite gradient; and a replay skips those steps too. Values by hand:
 *  - y = sum(a^b), a = (0, 1.5), b = (2, 2): dy/da = b a^(b-1) = (0, 3), dy/db = a^b log a =
 *    (0 by the rule at a = 0, 2.25 log 1.5); d2y/da2 = b (b-1) a^(b-2) = 2 at both. The formula
 *    asks where 1/a is finite, which is Inf at a = 0.
 *  - y = atan(x) at x = 1e200: dy/dx = 1 / (1 + x^2) = 0 in f64, where x^2 overflows.
 *  - y = sum(sqrt(x)) at x = (0, 1): dy/dx = 1 / (2 sqrt x) = (Inf, 0.5), what sqrt passes back. */
Test(higher_order, anomaly_mode_checks_what_a_recorded_gradient_passes_back)
{
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(0, 1.5), true);
    tg_tensor *b = ts_vec(TG_F64, 2, TS_VALS(2, 2), true);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    tg_tensor *y = tg_sum(tape, tg_pow_tensor(tape, a, b), TG_ALL_AXES, false);
    tg_tensor *g[2] = {NULL, NULL}, *ab[2] = {a, b};
    cr_assert_eq(tg_grad_graph(tape, y, ab, 2, NULL, g), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_get(g[0], 0), 0.0);
    cr_expect_eq(tg_tensor_get(g[0], 1), 3.0);
    cr_expect_eq(tg_tensor_get(g[1], 0), 0.0);
    ts_assert_close(tg_tensor_get(g[1], 1), 2.25 * log(1.5), 0, 1e-15, "dy/db1");
    /* Replayed with anomaly mode on: the steps are not checked, the gradients are. */
    cr_expect_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    tg_tensor *h[4] = {NULL};
    cr_assert_eq(tg_hessian(tape, y, ab, 2, h), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_get(h[0], 0), 2.0); /* (a0, a0) */
    cr_expect_eq(tg_tensor_get(h[0], 3), 2.0); /* (a1, a1) */
    for (int i = 0; i < 4; i++)
        tg_tensor_free(h[i]);

    tg_tape_reset(tape);
    tg_tensor *x = ts_scalar(TG_F64, 1e200, true);
    y = tg_atan(tape, x);
    tg_tensor *gx = NULL;
    cr_assert_eq(tg_grad_graph(tape, y, &x, 1, NULL, &gx), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_item(gx), 0.0);
    cr_expect_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());

    tg_tape_reset(tape);
    tg_tensor *z = ts_vec(TG_F64, 2, TS_VALS(0, 1), true);
    y = tg_sum(tape, tg_sqrt(tape, z), TG_ALL_AXES, false);
    tg_tensor *gz = z;
    cr_assert_eq(tg_grad_graph(tape, y, &z, 1, NULL, &gz), TG_ENUMERIC);
    cr_expect_null(gz);
    ts_assert_has(tg_tape_error(tape),
                  "anomaly: grad_graph: the recorded gradient of sqrt at "
                  "node 0 (input shapes [2]) holds NaN or Inf for its input 0");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(x);
    tg_tensor_free(z);
}
