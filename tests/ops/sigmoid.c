/* sigmoid.c (test_ops): sigmoid's accuracy, now that it is the library's own (tg__sigmoid,
 * core/detmath.h) rather than a formula around libm's exp: against correctly rounded values
 * (mpmath at 300 bits) within 3 units in the last place in f64 (the dense sweep in detmath.h's
 * comment found 2.34 at most) and 1 in f32, down into the subnormals; against long double expl
 * over a sweep, within 3 ulp; the same bits from the vectorized, threaded loop of a large
 * tensor as from the scalar function; and IEEE behaviour at the edges. */
#include "ops.h"

#include "core/detmath.h" /* tg__sigmoid */

static double ulps_apart(double a, double b) /* finite, same sign */
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    return (double)(ia > ib ? ia - ib : ib - ia);
}

Test(ops, sigmoid_accuracy)
{
    static const double table[][2] = {
        /* x, sigmoid(x) = 1 / (1 + e^-x) correctly rounded (python3 mpmath, 300 bits) */
        {-0x1.7480000000000p+9, 0x0.0000000000001p-1022},
        {-0x1.7440000000000p+9, 0x0.0000000000001p-1022},
        {-0x1.6d00000000000p+9, 0x0.00000001c7ea3p-1022},
        {-0x1.62c0000000000p+9, 0x0.54e90c99fb878p-1022},
        {-0x1.6200000000000p+9, 0x1.7c8ab2288c9abp-1022},
        {-0x1.5e00000000000p+9, 0x1.14f2b0fb9307fp-1010},
        {-0x1.9000000000000p+6, 0x1.a8c1f14e2af5dp-145},
        {-0x1.4000000000000p+5, 0x1.39792499b1a24p-58},
        {-0x1.e000000000000p+4, 0x1.a56e0c2ac7cbfp-44},
        {-0x1.4800000000000p+4, 0x1.57a3afe79aea9p-30},
        {-0x1.4000000000000p+3, 0x1.7cd32e41dd960p-15},
        {-0x1.4000000000000p+2, 0x1.b69f67d638f8ep-8},
        {-0x1.b824400000000p+1, 0x1.fdb6c23b99208p-6},
        {-0x1.0000000000000p+1, 0x1.e84152bac31afp-4},
        {-0x1.0000000000000p+0, 0x1.136561454ba86p-2},
        {-0x1.0000000000000p-1, 0x1.829a0565978dfp-2},
        {-0x1.0000000000000p-3, 0x1.e00aa6681fcf3p-2},
        {-0x1.4f8b588e368f1p-17, 0x1.ffff583a53b8fp-2},
        {-0x1.56e1fc2f8f359p-997, 0x1.0000000000000p-1},
        {0x1.56e1fc2f8f359p-997, 0x1.0000000000000p-1},
        {0x1.4f8b588e368f1p-17, 0x1.000053e2d6239p-1},
        {0x1.0000000000000p-3, 0x1.0ffaaccbf0187p-1},
        {0x1.0000000000000p-1, 0x1.3eb2fd4d34391p-1},
        {0x1.0000000000000p+0, 0x1.764d4f5d5a2bdp-1},
        {0x1.0000000000000p+1, 0x1.c2f7d5a8a79cap-1},
        {0x1.b824400000000p+1, 0x1.f01249ee23370p-1},
        {0x1.4000000000000p+2, 0x1.fc92c130538e1p-1},
        {0x1.4000000000000p+3, 0x1.fffa0cb346f89p-1},
        {0x1.1000000000000p+4, 0x1.fffffe9c61cf8p-1},
        {0x1.4000000000000p+4, 0x1.ffffffee4b79bp-1},
        {0x1.e000000000000p+4, 0x1.ffffffffffcb5p-1},
        {0x1.2000000000000p+5, 0x1.ffffffffffffep-1},
        {0x1.259999999999ap+5, 0x1.fffffffffffffp-1},
        {0x1.2c00000000000p+5, 0x1.0000000000000p+0},
    };
    const size_t n_table = sizeof table / sizeof table[0];
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        for (size_t i = 0; i < n_table; i++) {
            double x = table[i][0], want = table[i][1];
            if (dt == TG_F32 && (fabs(x) < 0x1p-126 || fabs(want) < 0x1p-126))
                continue; /* not a normal float */
            tg_tensor *y = tg_sigmoid(tape, own_leaf(dt, 0, NULL, &x, false));
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            double got = tg_tensor_get(y, 0);
            double err = dt == TG_F64
                             ? ulps_apart(got, want)
                             : fabs(got - (float)want) /
                                   (nextafterf(fabsf((float)want), INFINITY) - fabsf((float)want));
            cr_expect(err <= (dt == TG_F64 ? 3 : 1), "sigmoid(%a) = %a, want %a: %g ulp (%s)", x,
                      got, want, err, tg_dtype_name(dt));
        }
        tg_tape_reset(tape);
    }

    /* A sweep over [-60, 60] as one tensor (long enough for threads). */
    enum { N = 100000 };
    double *xs = malloc(N * sizeof *xs);
    cr_assert_not_null(xs);
    for (size_t i = 0; i < N; i++)
        xs[i] = -60.0 + 120.0 * ((double)i + 0.31) / N;
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(N), xs, false);
    tg_tensor *y = tg_sigmoid(tape, x);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const double *ys = tg_tensor_data(y);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < N; i++) {
        long double e = expl(-fabsl((long double)xs[i]));
        long double ref = xs[i] >= 0 ? 1 / (1 + e) : e / (1 + e);
        double r = (double)ref;
        double ulp = nextafter(fabs(r), INFINITY) - fabs(r);
        double err = (double)(fabsl((long double)ys[i] - ref) / ulp);
        if (err > worst) {
            worst = err;
            worst_x = xs[i];
        }
        double scalar = tg__sigmoid(xs[i]);
        cr_assert(memcmp(&ys[i], &scalar, sizeof scalar) == 0,
                  "sigmoid(%a): %a from the tensor loop, %a from the scalar function", xs[i], ys[i],
                  scalar);
    }
    cr_expect(worst <= 3, "sigmoid: %g ulp at %a", worst, worst_x);
    free(xs);

    /* The edges: signed zeros, infinities, NaN, the tail past exp's underflow. */
    const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, DBL_MAX, -DBL_MAX, -746.0, 40.0};
    const double want[] = {0.5, 0.5, 1.0, 0.0, NAN, 1.0, 0.0, 0.0, 1.0};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        double got = tg__sigmoid(edge[i]);
        cr_expect(isnan(want[i]) ? isnan(got) : got == want[i] && !signbit(got),
                  "sigmoid(%g) = %g, want %g", edge[i], got, want[i]);
    }
}
