/* stability.c (test_ops): numerical stability (sigmoid, logsumexp, softmax at +-1000) and
 * tanh's accuracy against correctly rounded values. */
#include "ops.h"

#include "core/detmath.h" /* tg__tanh */

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
        cr_expect_eq(tg_tensor_get(y, 1), 0.0, "sigmoid(-1000) = %.17g (%s)", tg_tensor_get(y, 1),
                     tg_dtype_name(dt));
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
    static const double table[][2] = {
        /* x, tanh(x) correctly rounded */
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
            double err = dt == TG_F64
                             ? ulps_between(got, want)
                             : fabs(got - (float)want) /
                                   (nextafterf(fabsf((float)want), INFINITY) - fabsf((float)want));
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
        cr_expect(isnan(want[i]) ? isnan(got) : got == want[i] && signbit(got) == signbit(want[i]),
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

/* The divisor's gradient -dy a / b^2 at divisors whose square over- or underflows where the
 * gradient does not (f32: b = 1e-23 gives -1e26; f64: b = 1e-200 and 1e200), by the plain
 * VJP and by the recorded one (tg_grad_graph), which agree. */
Test(ops, div_gradient_at_extreme_divisors)
{
    static const struct {
        tg_dtype dt;
        double a, b, db;
    } cases[] = {{TG_F32, 1e-20, 1e-23, -1e26},
                 {TG_F32, 1e30, 1e20, -1e-10},
                 {TG_F64, 1e-200, 1e-200, -1e200},
                 {TG_F64, 1e200, 1e200, -1e-200},
                 {TG_F64, 0, 1e-200, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        for (int graph = 0; graph < 2; graph++) {
            tg_tape_reset(tape);
            tg_tensor *a = own_leaf(cases[k].dt, 0, NULL, TS_VALS(cases[k].a), true);
            tg_tensor *b = own_leaf(cases[k].dt, 0, NULL, TS_VALS(cases[k].b), true);
            tg_tensor *y = tg_div(tape, a, b), *g[2];
            double got;
            if (graph) {
                tg_tensor *xs[2] = {a, b};
                cr_assert_eq(tg_grad_graph(tape, y, xs, 2, NULL, g), TG_OK, "%s", tg_last_error());
                got = tg_tensor_item(g[1]);
            } else {
                cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
                got = tg_tensor_grad_get(b, 0);
            }
            const double tol = cases[k].dt == TG_F32 ? 1e-6 : 1e-15;
            ts_assert_close(got, cases[k].db, 0, tol, "d(a/b)/db at a = %g, b = %g (%s, %s)",
                            cases[k].a, cases[k].b, tg_dtype_name(cases[k].dt),
                            graph ? "recorded" : "plain");
        }
    }
}

/* atan2's recorded gradient (what forward mode and Hessians differentiate) at magnitudes
 * whose squares over- or underflow: a^2 + b^2 gave NaN below 1e-154 and 0 above 1e154.
 * d atan2(a, b) / db = -a / (a^2 + b^2) = -1 / (2 t) at a = b = t. */
Test(ops, atan2_recorded_gradient_at_extreme_magnitudes)
{
    const double ts[3] = {1e-200, 1, 1e200};
    for (size_t k = 0; k < 3; k++) {
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(TG_F64, 0, NULL, TS_VALS(ts[k]), true);
        tg_tensor *b = own_leaf(TG_F64, 0, NULL, TS_VALS(ts[k]), true);
        tg_tensor *xs[2] = {a, b}, *g[2];
        cr_assert_eq(tg_grad_graph(tape, tg_atan2(tape, a, b), xs, 2, NULL, g), TG_OK, "%s",
                     tg_last_error());
        ts_assert_close(tg_tensor_item(g[0]), 0.5 / ts[k], 0, 1e-15, "da at %g", ts[k]);
        ts_assert_close(tg_tensor_item(g[1]), -0.5 / ts[k], 0, 1e-15, "db at %g", ts[k]);
        /* and its own derivative: d2/db2 atan2(a, b) = 2ab / (a^2 + b^2)^2 = 1 / (2 t^2) at 1 */
        if (k == 1) {
            tg_tensor *h;
            cr_assert_eq(tg_grad(tape, g[1], &b, 1, &h), TG_OK, "%s", tg_last_error());
            ts_assert_close(tg_tensor_item(h), 0.5, 0, 1e-15, "d2/db2 at 1");
            tg_tensor_free(h);
        }
    }
}
