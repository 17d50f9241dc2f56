/* exp.c (test_ops): exp's accuracy, now that it is the library's own (tg__exp, core/detmath.h),
 * which exp, softmax, log_softmax and logsumexp share: against correctly rounded values (mpmath
 * at 300 bits) within 1 unit in the last place in f64 and half a unit in f32, down into the
 * subnormals; against long double expl over a sweep, within 0.8 ulp (detmath.h's sweep found
 * 0.77 at most); in f32 the same as expl's value rounded to f32 at every 997th float of
 * [-104, 104]; the same bits from the vectorized, threaded loop of a large tensor as from the
 * scalar function; and IEEE behaviour at the edges. */
#include "ops.h"

#include "core/detmath.h" /* tg__exp */

/* How many units in the last place got is from the exact value want, in want's format (f64's,
 * or f32's when f32): the spacing of that format at |want|, subnormal spacing included. */
static double ulps_off(double got, long double want, bool f32)
{
    const double w = fabs((double)want);
    const double ulp =
        f32 ? (double)(nextafterf((float)w, INFINITY) - (float)w) : nextafter(w, INFINITY) - w;
    return (double)(fabsl((long double)got - want) / ulp);
}

Test(ops, exp_accuracy)
{
    static const double table[][2] = {
        /* x, e^x correctly rounded (python3 mpmath, 300 bits) */
        {-0x1.748cccccccccdp+9, 0x0.0000000000001p-1022},
        {-0x1.743851eb851ecp+9, 0x0.0000000000001p-1022},
        {-0x1.7240000000000p+9, 0x0.0000000000033p-1022},
        {-0x1.6240000000000p+9, 0x0.e6cf6d08897acp-1022},
        {-0x1.6231eb851eb85p+9, 0x1.01a5ff6ed496bp-1022},
        {-0x1.5e00000000000p+9, 0x1.14f2b0fb9307fp-1010},
        {-0x1.9000000000000p+6, 0x1.a8c1f14e2af5dp-145},
        {-0x1.e000000000000p+4, 0x1.a56e0c2ac7f75p-44},
        {-0x1.4400000000000p+4, 0x1.b93de1e27ca3bp-30},
        {-0x1.4000000000000p+3, 0x1.7cd79b5647c9bp-15},
        {-0x1.c000000000000p+1, 0x1.eec1018e4ff66p-6},
        {-0x1.0000000000000p+0, 0x1.78b56362cef38p-2},
        {-0x1.0000000000000p-1, 0x1.368b2fc6f960ap-1},
        {-0x1.0000000000000p-3, 0x1.c3d6a24ed8222p-1},
        {-0x1.0000000000000p-20, 0x1.ffffe00001000p-1},
        {-0x1.0000000000000p-60, 0x1.0000000000000p+0},
        {0x1.0000000000000p-60, 0x1.0000000000000p+0},
        {0x1.0000000000000p-20, 0x1.0000100000800p+0},
        {0x1.0000000000000p-3, 0x1.2216045b6f5cdp+0},
        {0x1.62eb1c432ca58p-2, 0x1.6a0c5906bc779p+0},
        {0x1.0000000000000p-1, 0x1.a61298e1e069cp+0},
        {0x1.0000000000000p+0, 0x1.5bf0a8b145769p+1},
        {0x1.0000000000000p+1, 0x1.d8e64b8d4ddaep+2},
        {0x1.c000000000000p+1, 0x1.08ec721396bdbp+5},
        {0x1.4000000000000p+3, 0x1.5829dcf950560p+14},
        {0x1.4400000000000p+4, 0x1.290d76d1966a9p+29},
        {0x1.e000000000000p+4, 0x1.370470aec28edp+43},
        {0x1.6200000000000p+6, 0x1.99b987155fe28p+127},
        {0x1.9000000000000p+6, 0x1.3494a9b171bf5p+144},
        {0x1.f400000000000p+8, 0x1.45ba2a9f7e439p+721},
        {0x1.5e00000000000p+9, 0x1.d945df4f8ec8ep+1009},
        {0x1.6280000000000p+9, 0x1.d422d2be5dc9bp+1022},
        {0x1.62e3d70a3d70ap+9, 0x1.fe9ce5c4c52b4p+1023},
    };
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = DTYPES[di];
        const bool f32 = dt == TG_F32;
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            const double x = table[i][0], want = table[i][1];
            if (f32 && (fabs(x) != (float)fabs(x) || !(fabs(want) >= 0x1p-126 && want < 0x1p127)))
                continue; /* x not a float, or e^x not a normal float */
            tg_tensor *y = tg_exp(tape, own_leaf(dt, 0, NULL, &x, false));
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            const double got = tg_tensor_get(y, 0), err = ulps_off(got, want, f32);
            cr_expect(err <= (f32 ? 0.5 + 1e-6 : 1), "exp(%a) = %a, want %a: %g ulp (%s)", x, got,
                      want, err, tg_dtype_name(dt));
        }
        tg_tape_reset(tape);
    }

    /* f64: a sweep over the whole finite range (subnormal results too) and a denser one over
     * [-30, 30], as one tensor (long enough for threads). */
    enum { N = 200000 };
    double *xs = malloc(N * sizeof *xs);
    cr_assert_not_null(xs);
    for (size_t i = 0; i < N; i++)
        xs[i] = i % 2 ? -745.0 + 1454.7 * ((double)i + 0.31) / N
                      : -30.0 + 60.0 * ((double)i + 0.37) / N;
    tg_tensor *y = tg_exp(tape, own_leaf(TG_F64, 1, TS_SHAPE(N), xs, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const double *ys = tg_tensor_data(y);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < N; i++) {
        const double err = ulps_off(ys[i], expl((long double)xs[i]), false);
        if (err > worst)
            worst = err, worst_x = xs[i];
        const double scalar = tg__exp(xs[i]);
        cr_assert(memcmp(&ys[i], &scalar, sizeof scalar) == 0,
                  "exp(%a): %a from the tensor loop, %a from the scalar function", xs[i], ys[i],
                  scalar);
    }
    cr_expect(worst <= 0.8, "exp: %g ulp at %a", worst, worst_x);
    free(xs);
    tg_tape_reset(tape);

    /* f32: every 997th float of [-104, 104] (e^x from the smallest subnormal float to near
     * FLT_MAX), rounded as expl's value is. */
    const uint32_t top = 0x42d00000; /* 104.0f */
    const size_t nf = 2 * ((size_t)top / 997 + 1);
    double *xf = malloc(nf * sizeof *xf);
    cr_assert_not_null(xf);
    for (size_t i = 0; i < nf / 2; i++) {
        const uint32_t u = (uint32_t)(i * 997);
        float f;
        memcpy(&f, &u, sizeof f);
        xf[2 * i] = f, xf[2 * i + 1] = -f;
    }
    y = tg_exp(tape, own_leaf(TG_F32, 1, TS_SHAPE(nf), xf, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const float *yf = tg_tensor_data(y);
    size_t misses = 0;
    for (size_t i = 0; i < nf; i++) {
        const float want = (float)expl((long double)xf[i]);
        if (memcmp(&yf[i], &want, sizeof want) != 0 && misses++ < 5)
            cr_expect(false, "f32 exp(%a) = %a, want %a", xf[i], (double)yf[i], (double)want);
    }
    cr_expect(misses == 0, "f32 exp: %zu of %zu floats differ from expl's, rounded", misses, nf);
    free(xf);

    /* The edges: signed zeros, infinities, NaN, overflow and underflow. */
    const double edge[] = {0.0,      -0.0,   INFINITY, -INFINITY, NAN,     DBL_MAX,
                           -DBL_MAX, 709.78, 709.79,   -745.13,   -745.14, -746.0};
    const double want[] = {1.0,      1.0,       INFINITY, 0.0,
                           NAN,      INFINITY,  0.0,      0x1.fe9ce5c4c52b4p+1023,
                           INFINITY, 0x1p-1074, 0.0,      0.0};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        const double got = tg__exp(edge[i]);
        cr_expect(isnan(want[i]) ? isnan(got) : got == want[i] && !signbit(got),
                  "exp(%g) = %a, want %a", edge[i], got, want[i]);
    }
}
