/* exp_log.c (test_ops): the accuracy of the library's own elementary functions (core/detmath.h):
 * exp, log and log1p, which softmax, log_softmax, logsumexp, softplus and log_sigmoid share; erf
 * and gelu; expm1 and the hyperbolic functions and their inverses; atan, asin and acos; sin, cos
 * and tan, their arguments up to DBL_MAX; and pow. Each: against correctly rounded values (mpmath
 * at 300 bits or 100 digits) within 1 unit in the last place in f64 (or its stated bound, where
 * that is larger) and half a unit in f32, down into the subnormals; against long double over
 * sweeps and at the worst points found, within the bounds detmath.h and ops.h state; in f32 within
 * half an ulp of them at every 997th float of a range (plus 1e-6: log rounds 5 of the positive
 * floats the other way, their logs that close to a midpoint); the same bits from the vectorized,
 * threaded loop of a large tensor as from the scalar function; and IEEE behaviour at the edges. */
#include "ops.h"

#include "core/detmath.h" /* the functions under test */

/* How many units in the last place got is from the exact value want, in want's format (f64's,
 * or f32's when f32): the spacing of that format at |want|, subnormal spacing included. */
static double ulps_off(double got, long double want, bool f32)
{
    /* the spacing in want's own binade: a want just below a power of two, which rounds up to it,
     * is measured in the spacing below it, not in the twice as wide one above */
    const int e = ilogbl(fabsl(want)), mant = f32 ? 23 : 52, emin = f32 ? -126 : -1022;
    const long double ulp = ldexpl(1.0L, (e < emin ? emin : e) - mant);
    return (double)(fabsl((long double)got - want) / ulp);
}

/* One of exp, log, log1p and erf (the op, its scalar function and long double reference) over a
 * table of correctly rounded values and a sweep of f64 tensor elements (within `bound` ulp), every
 * 997th f32 value of a range of bit patterns (and the negations of those below `negate_below`),
 * and the edges. */
typedef struct elem_case {
    const char *name;
    tg_tensor *(*op)(tg_tape *, tg_tensor *);
    double (*scalar)(double);
    long double (*ref)(long double);
    const double (*table)[2];
    size_t n_table;
    double (*sweep)(size_t i, size_t n); /* the sweep's i-th of n points */
    double bound;
    uint32_t f32_top;    /* f32 bit patterns 997 .. f32_top */
    double negate_below; /* and the negations of those below this */
    const double *edge, *want;
    size_t n_edge;
} elem_case;

/* An elem_case's tables, named table, edge and want in each test: with their counts. */
#define ELEM_TABLES                                                                                \
    .table = table, .n_table = sizeof table / sizeof table[0], .edge = edge, .want = want,         \
    .n_edge = sizeof edge / sizeof edge[0]

static void check_elem(const elem_case *c)
{
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = DTYPES[di];
        const bool f32 = dt == TG_F32;
        for (size_t i = 0; i < c->n_table; i++) {
            const double x = c->table[i][0], want = c->table[i][1];
            if (f32 && ((double)(float)x != x || fabs(x) < 0x1p-126 || fabs(want) < 0x1p-126 ||
                        fabs(want) > FLT_MAX))
                continue; /* x not a normal float, or the result not a normal float */
            tg_tensor *y = c->op(tape, own_leaf(dt, 0, NULL, &x, false));
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            const double got = tg_tensor_get(y, 0), err = ulps_off(got, want, f32);
            cr_expect(err <= (f32 ? 0.5 + 1e-6 : fmax(1, c->bound)),
                      "%s(%a) = %a, want %a: %g ulp (%s)", c->name, x, got, want, err,
                      tg_dtype_name(dt));
        }
        tg_tape_reset(tape);
    }

    enum { N = 200000 };
    double *xs = malloc(N * sizeof *xs);
    cr_assert_not_null(xs);
    for (size_t i = 0; i < N; i++)
        xs[i] = c->sweep(i, N);
    tg_tensor *y = c->op(tape, own_leaf(TG_F64, 1, TS_SHAPE(N), xs, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const double *ys = tg_tensor_data(y);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < N; i++) {
        const long double ref = c->ref((long double)xs[i]);
        const double err = ref == 0 ? (ys[i] == 0 ? 0 : INFINITY) : ulps_off(ys[i], ref, false);
        if (err > worst)
            worst = err, worst_x = xs[i];
        const double scalar = c->scalar(xs[i]);
        cr_assert(memcmp(&ys[i], &scalar, sizeof scalar) == 0,
                  "%s(%a): %a from the tensor loop, %a from the scalar function", c->name, xs[i],
                  ys[i], scalar);
    }
    cr_expect(worst <= c->bound, "%s: %g ulp at %a", c->name, worst, worst_x);
    free(xs);
    tg_tape_reset(tape);

    const size_t nf = 2 * (size_t)(c->f32_top / 997);
    double *xf = malloc(nf * sizeof *xf);
    cr_assert_not_null(xf);
    size_t m = 0;
    for (uint32_t u = 997; u <= c->f32_top && m < nf; u += 997) {
        float f;
        memcpy(&f, &u, sizeof f);
        xf[m++] = f;
        if (f < c->negate_below)
            xf[m++] = -f;
    }
    y = c->op(tape, own_leaf(TG_F32, 1, TS_SHAPE(m), xf, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const float *yf = tg_tensor_data(y);
    double worst_f = 0;
    for (size_t i = 0; i < m; i++) {
        const long double ref = c->ref((long double)xf[i]);
        const double err = ref == 0 ? (yf[i] == 0 ? 0 : INFINITY)
                           : isinf((float)ref)
                               ? (yf[i] == (float)ref ? 0 : INFINITY) /* beyond FLT_MAX */
                               : ulps_off(yf[i], ref, true);
        if (err > worst_f)
            worst_f = err, worst_x = xf[i];
    }
    cr_expect(worst_f <= 0.5 + 1e-6, "f32 %s: %g ulp at %a", c->name, worst_f, worst_x);
    free(xf);

    for (size_t i = 0; i < c->n_edge; i++) {
        const double got = c->scalar(c->edge[i]), want = c->want[i];
        cr_expect(isnan(want) ? isnan(got) : got == want && signbit(got) == signbit(want),
                  "%s(%g) = %a, want %a", c->name, c->edge[i], got, want);
    }
}

/* exp's sweep: the whole finite range (subnormal results too), and [-30, 30] more densely */
static double exp_sweep(size_t i, size_t n)
{
    return i % 2 ? -745.0 + 1454.7 * ((double)i + 0.31) / (double)n
                 : -30.0 + 60.0 * ((double)i + 0.37) / (double)n;
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
    /* overflow and underflow, and the signs of the results */
    static const double edge[] = {0.0,      -0.0,   INFINITY, -INFINITY, NAN,     DBL_MAX,
                                  -DBL_MAX, 709.78, 709.79,   -745.13,   -745.14, -746.0};
    static const double want[] = {1.0,      1.0,       INFINITY, 0.0,
                                  NAN,      INFINITY,  0.0,      0x1.fe9ce5c4c52b4p+1023,
                                  INFINITY, 0x1p-1074, 0.0,      0.0};
    /* f32: [-104, 104], e^x from the smallest subnormal float to near FLT_MAX */
    const elem_case c = {
        .name = "exp",
        .op = tg_exp,
        .scalar = tg__exp,
        .ref = expl,
        .sweep = exp_sweep,
        .bound = 0.81,
        .f32_top = 0x42d00000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* log's sweep: [0.5, 2] evenly, and every binade from the smallest subnormal up */
static double log_sweep(size_t i, size_t n)
{
    return i % 2 ? exp2(-1074.0 + 2097.0 * ((double)i + 0.37) / (double)n)
                 : 0.5 + 1.5 * ((double)i + 0.37) / (double)n;
}

/* log1p's: (0, 1] by binades (softplus's e^-|x|), (-1, 0) and every binade */
static double log1p_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 3 == 0   ? exp2(-80.0 * t)
           : i % 3 == 1 ? -1 + exp2(-60.0 * t)
                        : exp2(-1074.0 + 2097.0 * t);
}

Test(ops, log_accuracy)
{
    static const double table[][2] = {
        /* x, log x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0000000000001p-1022, -0x1.74385446d71c3p+9},
        {0x0.012688b70e62bp-1022, -0x1.64e69394d9508p+9},
        {0x1.0000000000000p-1022, -0x1.6232bdd7abcd2p+9},
        {0x1.56e1fc2f8f359p-997, -0x1.5963447f87fb5p+9},
        {0x1.79ca10c924223p-67, -0x1.7069e2aa2aa5bp+5},
        {0x1.0624dd2f1a9fcp-10, -0x1.ba18a998fffa0p+2},
        {0x1.0000000000000p-2, -0x1.62e42fefa39efp+0},
        {0x1.0000000000000p-1, -0x1.62e42fefa39efp-1},
        {0x1.6a09e667f3bccp-1, -0x1.62e42fefa39f1p-2},
        {0x1.6a09e667f3bcdp-1, -0x1.62e42fefa39eep-2},
        {0x1.8000000000000p-1, -0x1.269621134db92p-2},
        {0x1.ff7ced916872bp-1, -0x1.064670d979b73p-10},
        {0x1.fffffffffffffp-1, -0x1.0000000000000p-53},
        {0x1.0000000000001p+0, 0x1.fffffffffffffp-53},
        {0x1.004189374bc6ap+0, 0x1.060354f8c3cc4p-10},
        {0x1.8000000000000p+0, 0x1.9f323ecbf984cp-2},
        {0x1.0000000000000p+1, 0x1.62e42fefa39efp-1},
        {0x1.5bf0a8b145769p+1, 0x1.0000000000000p+0},
        {0x1.4000000000000p+3, 0x1.26bb1bbb55516p+1},
        {0x1.f400000000000p+9, 0x1.ba18a998fffa0p+2},
        {0x1.5af1d78b58c40p+66, 0x1.7069e2aa2aa5bp+5},
        {0x1.7e43c8800759cp+996, 0x1.5963447f87fb5p+9},
        {0x1.fffffffffffffp+1023, 0x1.62e42fefa39efp+9},
    };
    static const double edge[] = {1.0, 0.0, -0.0, -1.0, -INFINITY, INFINITY, NAN};
    static const double want[] = {0.0, -INFINITY, -INFINITY, NAN, NAN, INFINITY, NAN};
    const elem_case c = {
        .name = "log",
        .op = tg_log,
        .scalar = tg__log,
        .ref = logl,
        .sweep = log_sweep,
        .bound = 0.89,
        .f32_top = 0x7f7fffff,
        .negate_below = 0,
        ELEM_TABLES,
    };
    check_elem(&c);
}

Test(ops, log1p_accuracy)
{
    static const double table[][2] = {
        /* x, log(1 + x) correctly rounded (python3 mpmath, 300 bits) */
        {-0x1.ffffffff24190p-1, -0x1.7069e293f4c5cp+4},
        {-0x1.8000000000000p-1, -0x1.62e42fefa39efp+0},
        {-0x1.0000000000000p-1, -0x1.62e42fefa39efp-1},
        {-0x1.0000000000000p-2, -0x1.269621134db92p-2},
        {-0x1.4f8b588e368f1p-17, -0x1.4f8bc681e6006p-17},
        {-0x1.0000000000000p-60, -0x1.0000000000000p-60},
        {0x0.0000000000001p-1022, 0x0.0000000000001p-1022},
        {0x1.56e1fc2f8f359p-997, 0x1.56e1fc2f8f359p-997},
        {0x1.0000000000000p-60, 0x1.0000000000000p-60},
        {0x1.b7cdfd9d7bdbbp-34, 0x1.b7cdfd9d1d693p-34},
        {0x1.4f8b588e368f1p-17, 0x1.4f8aea9ae7317p-17},
        {0x1.47ae147ae147bp-7, 0x1.460d6ccca3677p-7},
        {0x1.0000000000000p-2, 0x1.c8ff7c79a9a22p-3},
        {0x1.0000000000000p-1, 0x1.9f323ecbf984cp-2},
        {0x1.6666666666666p-1, 0x1.0fae81914a991p-1},
        {0x1.0000000000000p+0, 0x1.62e42fefa39efp-1},
        {0x1.8000000000000p+1, 0x1.62e42fefa39efp+0},
        {0x1.2a05f20000000p+33, 0x1.7069e2aa3184ep+4},
        {0x1.7e43c8800759cp+996, 0x1.5963447f87fb5p+9},
    };
    static const double edge[] = {0.0, -0.0, -1.0, -2.0, -INFINITY, INFINITY, NAN, 0x1p-1074};
    static const double want[] = {0.0, -0.0, -INFINITY, NAN, NAN, INFINITY, NAN, 0x1p-1074};
    const elem_case c = {
        .name = "log1p",
        .op = tg_log1p,
        .scalar = tg__log1p,
        .ref = log1pl,
        .sweep = log1p_sweep,
        .bound = 0.89,
        .f32_top = 0x7f7fffff,
        .negate_below = 1,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* A point where a function's error peaks (or where a simpler formula would break its bound): the
 * scalar function within `bound` ulp of long double there, and the op giving the same value. */
typedef struct worst_point {
    double (*f)(double);
    tg_tensor *(*op)(tg_tape *, tg_tensor *);
    long double (*ref)(long double);
    const char *name;
    double x, bound;
} worst_point;

static void check_worst_points(const worst_point *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const double x = cases[i].x, got = cases[i].f(x);
        const double err = ulps_off(got, cases[i].ref((long double)x), false);
        cr_expect(err <= cases[i].bound, "%s(%a) = %a: %g ulp, over %g", cases[i].name, x, got, err,
                  cases[i].bound);
        tg_tensor *y = cases[i].op(tape, own_leaf(TG_F64, 0, NULL, &x, false));
        cr_assert_not_null(y, "%s", tg_tape_error(tape));
        cr_expect(tg_tensor_get(y, 0) == got, "%s(%a): the op's %a, the function's %a",
                  cases[i].name, x, tg_tensor_get(y, 0), got);
    }
    tg_tape_reset(tape);
}

/* The largest errors found (random points where they peak: exp's in the top binade of the
 * subnormals, log's and log1p's where the reduced argument is near sqrt(1/2)), within the
 * bounds ops.h states: 0.81 ulp for exp, 0.72 where e^x is normal, 0.89 for log and log1p. */
Test(ops, exp_log_worst_points)
{
    static const worst_point cases[] = {
        {tg__exp, tg_exp, expl, "exp", -0x1.625ed5f4b0d2fp+9, 0.81},
        {tg__exp, tg_exp, expl, "exp", -0x1.625f43d2bec72p+9, 0.81},
        {tg__exp, tg_exp, expl, "exp", -0x1.6262db85bb348p+9, 0.81},
        {tg__exp, tg_exp, expl, "exp", 0x1.4c5e1783b738p+8, 0.72},
        {tg__log, tg_log, logl, "log", 0x1.69213ce9d9bbfp-1, 0.89},
        {tg__log, tg_log, logl, "log", 0x1.6a095105901bbp-1, 0.89},
        {tg__log, tg_log, logl, "log", 0x1.67871a637552fp+0, 0.89},
        {tg__log1p, tg_log1p, log1pl, "log1p", -0x1.2de1158fbf15ap-2, 0.89},
        {tg__log1p, tg_log1p, log1pl, "log1p", -0x1.2bf4c1d42aceap-2, 0.89},
        {tg__log1p, tg_log1p, log1pl, "log1p", 0x1.9ec9619e6c453p-2, 0.89},
    };
    check_worst_points(cases, sizeof cases / sizeof cases[0]);
}

/* Points where a fused multiply-add anywhere in exp's, log's or log1p's arithmetic changes the
 * rounding (a compiler that fuses a * b + c, as clang does on targets with FMA, gives the
 * neighbouring double): each operation rounding on its own, the three give the correctly
 * rounded value there, with every compiler and on every target. */
Test(ops, exp_log_unfused)
{
    static const struct {
        double (*f)(double);
        const char *name;
        double x, want; /* correctly rounded (python3 mpmath, 300 bits) */
    } cases[] = {
        {tg__exp, "exp", 0x1.05a5c6p+4, 0x1.81f8c8330f3f3p+23},
        {tg__exp, "exp", -0x1.3f70c6p+3, 0x1.838f2e26f4abbp-15},
        {tg__exp, "exp", -0x1.1b0ecep+4, 0x1.645770938d667p-26},
        {tg__log, "log", 0x1.6950acp-1, -0x1.64f09da46728bp-2},
        {tg__log, "log", 0x1.78376cp+0, 0x1.8a3a1cf64e73dp-2},
        {tg__log, "log", 0x1.91504cp+0, 0x1.cc5afee13990fp-2},
        {tg__log1p, "log1p", 0x1.3aa676p-1, 0x1.ea8dee8b8422fp-2},
        {tg__log1p, "log1p", 0x1.eaf5ep-2, 0x1.9112ad0fe5b07p-2},
        {tg__log1p, "log1p", -0x1.5fb046p-2, -0x1.aed91f65172ffp-2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double got = cases[i].f(cases[i].x);
        cr_expect(got == cases[i].want, "%s(%a) = %a, want %a", cases[i].name, cases[i].x, got,
                  cases[i].want);
    }
}

/* ---- erf and gelu (tg__erf, tg__gelu, tg__gelu_slope, tg__exp_neg_square) ------------------- */

/* erf's sweep: [-6, 6] (beyond, erf rounds to +-1), and [0.8, 0.9] around the switch from the
 * Taylor series to 1 - erfc at 0.85 */
static double erf_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 2 ? -6.0 + 12.0 * t : 0.8 + 0.1 * t;
}

Test(ops, erf_accuracy)
{
    static const double table[][2] = {
        /* x, erf x correctly rounded (python3 mpmath, 300 bits) */
        {0x1.0000000000000p-1022, 0x1.20dd750429b6dp-1022},
        {0x1.56e1fc2f8f359p-997, 0x1.82e6d98711d3ap-997},
        {-0x1.79ca10c924223p-67, -0x1.aa4a230244ae0p-67},
        {0x1.0000000000000p-30, 0x1.20dd750429b6dp-30},
        {0x1.999999999999ap-4, 0x1.cca5ea24fb334p-4},
        {-0x1.0000000000000p-2, -0x1.1af54e232d609p-2},
        {0x1.0000000000000p-1, 0x1.0a7ef5c18edd2p-1},
        {0x1.b01a41be08003p-1, 0x1.88e0567ad0409p-1}, /* 1.017 ulp off */
        {0x1.b333333333332p-1, 0x1.8a9500eeffdb0p-1},
        {0x1.b333333333333p-1, 0x1.8a9500eeffdb1p-1},
        {-0x1.b333333333333p-1, -0x1.8a9500eeffdb1p-1},
        {0x1.ccccccccccccdp-1, 0x1.98045a6c8a2e6p-1},
        {0x1.0000000000000p+0, 0x1.af767a741088bp-1},
        {0x1.8000000000000p+0, 0x1.eea5557137ae0p-1},
        {-0x1.0000000000000p+1, -0x1.fd9ae142795e3p-1},
        {0x1.4000000000000p+1, 0x1.ffcaa8f4c9beap-1},
        {0x1.8000000000000p+1, 0x1.fffd1ac4135f9p-1},
        {0x1.0000000000000p+2, 0x1.ffffff7b91176p-1},
        {0x1.4000000000000p+2, 0x1.fffffffffc9e8p-1},
        {0x1.799999999999ap+2, 0x1.fffffffffffffp-1},
    };
    static const double edge[] = {0.0,     -0.0,     INFINITY, -INFINITY, NAN,
                                  DBL_MAX, -DBL_MAX, 6.0,      -6.0,      0x1p-1074};
    static const double want[] = {0.0, -0.0, 1.0, -1.0, NAN, 1.0, -1.0, 1.0, -1.0, 0x1p-1074};
    /* f32: every 997th float up to 6 (beyond, erf rounds to 1) and its negation */
    const elem_case c = {
        .name = "erf",
        .op = tg_erf,
        .scalar = tg__erf,
        .ref = erfl,
        .sweep = erf_sweep,
        .bound = 1.02,
        .f32_top = 0x40c00000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* gelu(x) = x Phi(x) and gelu'(x) = Phi(x) + x phi(x) at points from the far lower tail (gelu
 * subnormal) to where gelu(x) = x: against mpmath, within 5.5 ulp (value) and 6 ulp (gradient)
 * in f64, as detmath.h says, and within half an ulp (value) and 1.5 ulp (the gradient, dy times
 * the rounded slope) in f32. (The C library's x erfc(-x / sqrt 2) / 2, whose argument rounds,
 * was 1,700 ulp off near x = -37.) Then the value over [-10, 10] against long double erfcl
 * (whose own argument's rounding costs under 0.1 ulp there), within 5.5 ulp; and gelu(-0) =
 * gelu(-40) = -0. */
Test(ops, gelu_accuracy)
{
    static const double table[][3] = {
        /* x, gelu x, gelu' x correctly rounded (python3 mpmath, 300 bits: x * Phi(x) and
         * Phi(x) + x * phi(x), Phi(x) = erfc(-x / sqrt(2)) / 2, phi(x) = e^(-x^2 / 2) /
         * sqrt(2 pi)) */
        /* gelu' still subnormal where gelu has rounded to 0 (out to |x| = 38.68) */
        {-0x1.3533333333333p+5, -0x0.0p+0, -0x0.0000000000001p-1022},
        {-0x1.34f5c28f5c28fp+5, -0x0.0p+0, -0x0.0000000000004p-1022},
        {-0x1.34ccccccccccdp+5, -0x0.0p+0, -0x0.0000000000009p-1022},
        {-0x1.3400000000000p+5, -0x0.000000000000bp-1022, -0x0.00000000001a6p-1022},
        {-0x1.2800000000000p+5, -0x1.1bbe62e6f3e25p-989, -0x1.48140b7e8d68cp-984},
        {-0x1.e400000000000p+4, -0x1.8293dcbbab9d5p-662, -0x1.6d6f8dc4c23cep-657},
        {-0x1.a800000000000p+4, -0x1.138000d91fcccp-508, -0x1.c84b88fbc6399p-504},
        {-0x1.4000000000000p+4, -0x1.1876296f504b2p-290, -0x1.5e9298203bb09p-286},
        {-0x1.9800000000000p+3, -0x1.52226f1962011p-119, -0x1.0d6e5f6e44d6dp-115},
        {-0x1.0000000000000p+3, -0x1.669d2c90d55cep-48, -0x1.66737eee512ddp-45},
        {-0x1.6000000000000p+2, -0x1.c093d8972fbbep-24, -0x1.33d03e9fb3699p-21},
        {-0x1.6a73152760e19p+1, -0x1.adb3568f6c955p-8, -0x1.29fd3b06f6105p-6}, /* gelu: 5.38 off */
        {-0x1.8000000000000p+1, -0x1.096697b244861p-8, -0x1.876f5a0927b12p-7},
        {-0x1.0173977f54e34p+0, -0x1.43f357e24a8b4p-3, -0x1.5ad5031923bf7p-4}, /* gelu' 5.50 off */
        {-0x1.dde91901d71c8p-1, -0x1.4f1d4772ebd8ep-3, -0x1.0c96f5a2cbdb9p-4}, /* gelu' 5.64 off */
        {-0x1.0000000000000p+0, -0x1.44ed0bb7cb20bp-3, -0x1.55429a56cca59p-4},
        {-0x1.3333333333333p-2, -0x1.d582ac7c317abp-4, 0x1.1218ab7e19722p-2},
        {0x0.0p+0, 0x0.0p+0, 0x1.0000000000000p-1},
        {0x1.999999999999ap-3, 0x1.da8790d961694p-4, 0x1.509fada0a6074p-1},
        {0x1.6666666666666p-1, 0x1.0fae235c089dcp-1, 0x1.f406c3725cee5p-1},
        {0x1.8000000000000p+0, 0x1.665895bb1e942p+0, 0x1.20a1d22be013ap+0},
        {0x1.c000000000000p+1, 0x1.bfe551faff9f7p+1, 0x1.00b8ed486f9b9p+0},
        {0x1.8000000000000p+2, 0x1.7ffffff9a4da6p+2, 0x1.0000009856423p+0},
        {0x1.2000000000000p+3, 0x1.2000000000000p+3, 0x1.0000000000000p+0},
    };
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = DTYPES[di];
        const bool f32 = dt == TG_F32;
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            const double x = table[i][0], want = table[i][1], dwant = table[i][2];
            if (f32 && ((double)(float)x != x || fabs(want) < 0x1p-126 || fabs(dwant) < 0x1p-126))
                continue; /* x not a float, or a result not a normal float */
            tg_tensor *xt = own_leaf(dt, 0, NULL, &x, true);
            tg_tensor *y = tg_gelu(tape, xt);
            backward(y);
            const double got = tg_tensor_get(y, 0), dgot = tg_tensor_grad_get(xt, 0);
            const double err = want == 0 ? fabs(got) : ulps_off(got, want, f32),
                         derr = ulps_off(dgot, dwant, f32);
            cr_expect(err <= (f32 ? 0.5 + 1e-6 : 5.5), "gelu(%a) = %a, want %a: %g ulp (%s)", x,
                      got, want, err, tg_dtype_name(dt));
            cr_expect(derr <= (f32 ? 1.5 : 6.0), "gelu'(%a) = %a, want %a: %g ulp (%s)", x, dgot,
                      dwant, derr, tg_dtype_name(dt));
            tg_tape_reset(tape);
        }
    }

    enum { N = 200000 };
    double *xs = malloc(N * sizeof *xs);
    cr_assert_not_null(xs);
    for (size_t i = 0; i < N; i++)
        xs[i] = -10.0 + 20.0 * ((double)i + 0.37) / N;
    tg_tensor *y = tg_gelu(tape, own_leaf(TG_F64, 1, TS_SHAPE(N), xs, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    const double *ys = tg_tensor_data(y);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < N; i++) {
        const long double x = xs[i];
        const long double ref = x * erfcl(-x * 0.70710678118654752440084436210484903928L) / 2;
        const double err = ulps_off(ys[i], ref, false);
        if (err > worst)
            worst = err, worst_x = xs[i];
    }
    cr_expect(worst <= 5.5, "gelu: %g ulp at %a", worst, worst_x);
    cr_expect(tg__gelu(-0.0) == 0 && signbit(tg__gelu(-0.0)) && !signbit(tg__gelu(0.0)));
    cr_expect(tg__gelu(-40.0) == 0 && signbit(tg__gelu(-40.0)), "gelu(-40) = -0");
    free(xs);
    tg_tape_reset(tape);
}

/* erf's gradient (2/sqrt pi) e^(-x^2), with x^2 exact (tg__exp_neg_square): within 1.5 ulp of
 * mpmath's out to where it underflows. */
Test(ops, erf_gradient_tail)
{
    static const double table[][2] = {
        /* x, (2/sqrt(pi)) e^(-x^2) correctly rounded (python3 mpmath, 300 bits); x^2 rounds */
        {0x0.0p+0, 0x1.20dd750429b6dp+0},
        {0x1.999999999999ap-4, 0x1.1dfda5cfd513fp+0},
        {0x1.4cccccccccccdp+0, 0x1.aa68f2f070e24p-3},
        {0x1.a666666666666p+1, 0x1.60f2217fa9f84p-16},
        {0x1.5333333333333p+2, 0x1.916a103271ef9p-41},
        {0x1.3666666666666p+3, 0x1.5926258d4ba38p-136},
        {0x1.14ccccccccccdp+4, 0x1.4f791b18616d7p-432},
        {0x1.a19999999999ap+4, 0x1.50d9a36d3c215p-983},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            const double x = sign * table[i][0], want = table[i][1];
            tg_tensor *xt = own_leaf(TG_F64, 0, NULL, &x, true);
            tg_tensor *y = tg_erf(tape, xt);
            backward(y);
            const double got = tg_tensor_grad_get(xt, 0), err = ulps_off(got, want, false);
            cr_expect(err <= 1.5, "erf'(%a) = %a, want %a: %g ulp", x, got, want, err);
            tg_tape_reset(tape);
        }
    }
    /* from |x| = 27.3 on e^(-x^2) rounds to 0, from 38.61 on e^(-x^2/2) too; NaN stays NaN */
    const double edge[] = {27.3, -27.3, 38.61, -38.61, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        cr_expect(tg__exp_neg_square(edge[i], false, 1) == 0 &&
                      (fabs(edge[i]) < 38.61 || tg__exp_neg_square(edge[i], true, 1) == 0),
                  "e^(-x^2) at %g", edge[i]);
    cr_expect(isnan(tg__exp_neg_square(NAN, false, 1)) && isnan(tg__exp_neg_square(NAN, true, 1)));
}

/* ---- expm1, sinh, cosh, asinh, acosh, atanh (built on tg__exp, tg__expm1 and tg__log1p) ------ */

/* The largest errors against long double that detmath.h states (found by random search; glibc's
 * own on 4e6 points of the same ranges: 0.83, 1.86, 1.76, 1.68, 2.19, 1.71) */
#define EXPM1_BOUND 1.14
#define SINH_BOUND 1.88
#define COSH_BOUND 1.13
#define ASINH_BOUND 1.77
#define ACOSH_BOUND 2.17
#define ATANH_BOUND 1.73

static double expm1_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 3 == 0 ? -40.0 + 80.0 * t : i % 3 == 1 ? -1.0 + 2.0 * t : exp2(-1074.0 + 1074.0 * t);
}

Test(ops, expm1_accuracy)
{
    static const double table[][2] = {
        /* x, e^x - 1 correctly rounded (python3 mpmath, 300 bits) */
        {-0x1.4000000000000p+5, -0x1.0000000000000p+0},
        {-0x1.4800000000000p+4, -0x1.fffffff542e28p-1},
        {-0x1.8000000000000p+0, -0x1.8dc1e236d28f9p-1},
        {-0x1.8000000000000p-1, -0x1.0e25f8a081941p-1},
        {-0x1.0000000000000p-2, -0x1.c5041854df7d4p-3},
        {-0x1.0000000000000p-30, -0x1.fffffffc00000p-31},
        {0x0.0100000000000p-1022, 0x0.0100000000000p-1022},
        {0x1.b7cdfd9d7bdbbp-34, 0x1.b7cdfd9dda4e3p-34},
        {0x1.999999999999ap-4, 0x1.aec7b35a00d3ap-4},
        {0x1.62d0e56041893p-2, 0x1.a80c51b3dbab4p-2},
        {0x1.6666666666666p-2, 0x1.ad200b20177b2p-2},
        {0x1.6666666666666p-1, 0x1.03854c24d130dp+0},
        {0x1.0000000000000p+0, 0x1.b7e151628aed3p+0},
        {0x1.6000000000000p+2, 0x1.e76244f21bbf6p+7},
        {0x1.2a00000000000p+5, 0x1.abae41f425f94p+53},
        {0x1.e400000000000p+5, 0x1.377de0eea46d4p+87},
        {0x1.62c0000000000p+9, 0x1.81e9b4b52d0c9p+1023},
    };
    static const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 709.78, 709.79, -745.0};
    static const double want[] = {0.0,      -0.0, INFINITY, -1.0, NAN, 0x1.fe9ce5c4c52b4p+1023,
                                  INFINITY, -1.0};
    /* f32: every 997th float up to 88 (e^x near FLT_MAX), and the negations */
    const elem_case c = {
        .name = "expm1",
        .op = tg_expm1,
        .scalar = tg__expm1,
        .ref = expm1l,
        .sweep = expm1_sweep,
        .bound = EXPM1_BOUND,
        .f32_top = 0x42b00000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* sinh's and cosh's: [-30, 30], every binade below 2, and [20, 710.47] up to overflow */
static double hyperbolic_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 3 == 0   ? -30.0 + 60.0 * t
           : i % 3 == 1 ? exp2(-1074.0 + 1075.0 * t)
                        : 20.0 + 690.47 * t;
}

Test(ops, sinh_accuracy)
{
    static const double table[][2] = {
        /* x, sinh x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0100000000000p-1022, 0x0.0100000000000p-1022},
        {-0x1.12e0be826d695p-30, -0x1.12e0be826d695p-30},
        {0x1.0000000000000p-3, 0x1.00aaccd00d2f1p-3},
        {-0x1.0000000000000p-1, -0x1.0acd00fe63b97p-1},
        {0x1.fae147ae147aep-1, 0x1.28ea8bd25b2d2p+0},
        {0x1.0000000000000p+0, 0x1.2cd9fc44eb982p+0},
        {0x1.8000000000000p+0, 0x1.108c3aabd6a60p+1},
        {-0x1.a000000000000p+1, -0x1.9c0669c3e8083p+3},
        {0x1.4000000000000p+3, 0x1.5829dced69992p+13},
        {0x1.5e66666666666p+4, 0x1.82afcca727c17p+30},
        {0x1.6000000000000p+4, 0x1.ab5adb9c43600p+30},
        {0x1.1800000000000p+5, 0x1.689e221bc8d5bp+49},
        {0x1.2c00000000000p+8, 0x1.c05c0a7166b4ap+431},
        {0x1.6320000000000p+9, 0x1.987d23750ae26p+1023},
    };
    static const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 710.48, -710.48};
    static const double want[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, INFINITY, -INFINITY};
    /* f32: every 997th float up to 89 (near FLT_MAX), and the negations */
    const elem_case c = {
        .name = "sinh",
        .op = tg_sinh,
        .scalar = tg__sinh,
        .ref = sinhl,
        .sweep = hyperbolic_sweep,
        .bound = SINH_BOUND,
        .f32_top = 0x42b20000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

Test(ops, cosh_accuracy)
{
    static const double table[][2] = {
        /* x, cosh x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0p+0, 0x1.0000000000000p+0},
        {0x1.12e0be826d695p-30, 0x1.0000000000000p+0},
        {0x1.0000000000000p-3, 0x1.0200aac16db6fp+0},
        {-0x1.0000000000000p-1, 0x1.20ac1862ae8d0p+0},
        {0x1.0000000000000p+0, 0x1.8b07551d9f550p+0},
        {0x1.4000000000000p+1, 0x1.88776e4b30aa3p+2},
        {-0x1.4000000000000p+3, 0x1.5829dd053712dp+13},
        {0x1.5e66666666666p+4, 0x1.82afcca727c17p+30},
        {0x1.6000000000000p+4, 0x1.ab5adb9c43600p+30},
        {0x1.1800000000000p+5, 0x1.689e221bc8d5bp+49},
        {-0x1.2c00000000000p+8, 0x1.c05c0a7166b4ap+431},
        {0x1.6320000000000p+9, 0x1.987d23750ae26p+1023},
    };
    static const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 710.48, -710.48};
    static const double want[] = {1.0, 1.0, INFINITY, INFINITY, NAN, INFINITY, INFINITY};
    const elem_case c = {
        .name = "cosh",
        .op = tg_cosh,
        .scalar = tg__cosh,
        .ref = coshl,
        .sweep = hyperbolic_sweep,
        .bound = COSH_BOUND,
        .f32_top = 0x42b20000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* asinh's and acosh's: [-10, 10] (acosh: [1, 3]) and every binade up to 1e300 */
static double asinh_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 2 ? -10.0 + 20.0 * t : exp2(-1074.0 + 2070.0 * t);
}
static double acosh_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 2 ? 1.0 + 2.0 * t : exp2(996.0 * t);
}

Test(ops, asinh_accuracy)
{
    static const double table[][2] = {
        /* x, asinh x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0100000000000p-1022, 0x0.0100000000000p-1022},
        {-0x1.12e0be826d695p-30, -0x1.12e0be826d695p-30},
        {0x1.0000000000000p-3, 0x1.fead0b6996973p-4},
        {0x1.0000000000000p-1, 0x1.ecc2caec5160ap-2},
        {-0x1.0000000000000p+0, -0x1.c34366179d427p-1},
        {0x1.fd70a3d70a3d7p+0, 0x1.706c6bca62894p+0},
        {0x1.0000000000000p+1, 0x1.719218313d087p+0},
        {0x1.4000000000000p+1, 0x1.a5b0f0be9dcf6p+0},
        {-0x1.9000000000000p+6, -0x1.53180a93d3c2ap+2},
        {0x1.7d78400000000p+26, 0x1.31d23d3ad26e5p+4},
        {0x1.ffffffe000000p+27, 0x1.419ecb702c481p+4},
        {0x1.0000000000000p+28, 0x1.419ecb712c481p+4},
        {0x1.249ad2594c37dp+332, 0x1.cde73f84a4f2cp+7},
        {0x1.fffffffffffffp+1023, 0x1.633ce8fb9f87ep+9},
    };
    static const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN};
    static const double want[] = {0.0, -0.0, INFINITY, -INFINITY, NAN};
    const elem_case c = {
        .name = "asinh",
        .op = tg_asinh,
        .scalar = tg__asinh,
        .ref = asinhl,
        .sweep = asinh_sweep,
        .bound = ASINH_BOUND,
        .f32_top = 0x7f7fffff,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

Test(ops, acosh_accuracy)
{
    static const double table[][2] = {
        /* x, acosh x correctly rounded (python3 mpmath, 300 bits) */
        {0x1.0000000000000p+0, 0x0.0p+0},
        {0x1.0000000000001p+0, 0x1.6a09e667f3bccp-26},
        {0x1.000001ad7f29bp+0, 0x1.d4effc065cae4p-12},
        {0x1.004189374bc6ap+0, 0x1.6e53acbcdeba3p-5},
        {0x1.8000000000000p+0, 0x1.ecc2caec5160ap-1},
        {0x1.fd70a3d70a3d7p+0, 0x1.4fa8834bbeca0p+0},
        {0x1.0000000000000p+1, 0x1.5124271980435p+0},
        {0x1.4000000000000p+1, 0x1.9119c13a31bb0p+0},
        {0x1.9000000000000p+6, 0x1.531738dcbc627p+2},
        {0x1.7d78400000000p+26, 0x1.31d23d3ad26e5p+4},
        {0x1.0000000000000p+28, 0x1.419ecb712c481p+4},
        {0x1.249ad2594c37dp+332, 0x1.cde73f84a4f2cp+7},
        {0x1.fffffffffffffp+1023, 0x1.633ce8fb9f87ep+9},
    };
    static const double edge[] = {1.0, 0.5, 0.0, -1.0, INFINITY, -INFINITY, NAN};
    static const double want[] = {0.0, NAN, NAN, NAN, INFINITY, NAN, NAN};
    /* f32: every 997th float from 1 up */
    const elem_case c = {
        .name = "acosh",
        .op = tg_acosh,
        .scalar = tg__acosh,
        .ref = acoshl,
        .sweep = acosh_sweep,
        .bound = ACOSH_BOUND,
        .f32_top = 0x7f7fffff,
        .negate_below = 0,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* atanh's: (-1, 1) evenly and every binade below 1, and near 1 */
static double atanh_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 3 == 0   ? -1.0 + 2.0 * t
           : i % 3 == 1 ? exp2(-1074.0 + 1074.0 * t)
                        : 1.0 - exp2(-53.0 * t);
}

Test(ops, atanh_accuracy)
{
    static const double table[][2] = {
        /* x, atanh x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0100000000000p-1022, 0x0.0100000000000p-1022},
        {-0x1.12e0be826d695p-30, -0x1.12e0be826d695p-30},
        {0x1.0000000000000p-3, 0x1.015891c9eaef7p-3},
        {-0x1.0000000000000p-2, -0x1.058aefa811452p-2},
        {0x1.ffe5c91d14e3cp-2, 0x1.192d2e0a8b487p-1},
        {0x1.0000000000000p-1, 0x1.193ea7aad030bp-1},
        {0x1.8000000000000p-1, 0x1.f2272ae325a57p-1},
        {-0x1.ccccccccccccdp-1, -0x1.78e360604b32dp+0},
        {0x1.ffffde7210be9p-1, 0x1.d046eb8b86c1cp+2},
        {0x1.fffffffffffffp-1, 0x1.2b708872320e2p+4},
    };
    static const double edge[] = {0.0, -0.0, 1.0, -1.0, 1.5, -INFINITY, NAN};
    static const double want[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, NAN, NAN};
    /* f32: every 997th float below 1, and the negations */
    const elem_case c = {
        .name = "atanh",
        .op = tg_atanh,
        .scalar = tg__atanh,
        .ref = atanhl,
        .sweep = atanh_sweep,
        .bound = ATANH_BOUND,
        .f32_top = 0x3f7fffff,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* The largest errors found for each (random points), and points where a simpler formula would
 * break the bound: expm1 without the exact first sum (1.26 ulp at x = 37.9), sinh as
 * (E + E / (E + 1)) / 2 below 1 too (2.25 at x = 0.247), atanh as log1p(2a / (1 - a)) / 2 below
 * 1/2 too (1.96 at x = 0.123). */
Test(ops, hyperbolic_worst_points)
{
    static const worst_point cases[] = {
        {tg__expm1, tg_expm1, expm1l, "expm1", 0x1.7f7beef527c4p-2, EXPM1_BOUND},
        {tg__expm1, tg_expm1, expm1l, "expm1", 0x1.2eed0d49949e8p+5, EXPM1_BOUND},
        {tg__expm1, tg_expm1, expm1l, "expm1", 0x1.62aa9944ddef8p-2, EXPM1_BOUND},
        {tg__sinh, tg_sinh, sinhl, "sinh", -0x1.bc5375246452p-1, SINH_BOUND},
        {tg__sinh, tg_sinh, sinhl, "sinh", 0x1.f8e3997ba1598p-3, SINH_BOUND},
        {tg__sinh, tg_sinh, sinhl, "sinh", -0x1.bc9b5d7edd83p-1, SINH_BOUND},
        {tg__cosh, tg_cosh, coshl, "cosh", 0x1.2b9b08067a0acp+3, COSH_BOUND},
        {tg__cosh, tg_cosh, coshl, "cosh", 0x1.21927abb44544p+2, COSH_BOUND},
        {tg__asinh, tg_asinh, asinhl, "asinh", -0x1.dce849fd4f4ap-2, ASINH_BOUND},
        {tg__asinh, tg_asinh, asinhl, "asinh", -0x1.08e9c37d76b08p-1, ASINH_BOUND},
        {tg__acosh, tg_acosh, acoshl, "acosh", 0x1.001fbf8878153p+0, ACOSH_BOUND},
        {tg__acosh, tg_acosh, acoshl, "acosh", 0x1.007f2c0f206fbp+0, ACOSH_BOUND},
        {tg__atanh, tg_atanh, atanhl, "atanh", 0x1.ccc19761c96fdp-2, ATANH_BOUND},
        {tg__atanh, tg_atanh, atanhl, "atanh", 0x1.f5dd679a7b054p-4, ATANH_BOUND},
        {tg__atanh, tg_atanh, atanhl, "atanh", 0x1.e9f46eb3b3e6bp-4, ATANH_BOUND},
    };
    check_worst_points(cases, sizeof cases / sizeof cases[0]);
}

/* atan's sweep: [-3, 3] over the reduction's intervals, and every binade up to 1e300 */
static double atan_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 2 ? -3.0 + 6.0 * t : exp2(-1074.0 + 2070.0 * t);
}

Test(ops, atan_accuracy)
{
    static const double table[][2] = {
        /* x, atan x correctly rounded (python3 mpmath, 300 bits) */
        {0x0.0100000000000p-1022, 0x0.0100000000000p-1022},
        {-0x1.12e0be826d695p-30, -0x1.12e0be826d695p-30},
        {0x1.0000000000000p-3, 0x1.fd5ba9aac2f6ep-4},
        {0x1.bfffffffffffep-2, 0x1.a64eec3cc23fbp-2},
        {0x1.c000000000000p-2, 0x1.a64eec3cc23fdp-2},
        {0x1.0000000000000p-1, 0x1.dac670561bb4fp-2},
        {-0x1.6000000000000p-1, -0x1.345f01cce37bbp-1},
        {0x1.ccccccccccccdp-1, 0x1.77338a80603bep-1},
        {0x1.0000000000000p+0, 0x1.921fb54442d18p-1},
        {0x1.3000000000000p+0, 0x1.bde70ed439fe7p-1},
        {0x1.8000000000000p+0, 0x1.f730bd281f69bp-1},
        {-0x1.3800000000000p+1, -0x1.2e75728833a54p+0},
        {0x1.8000000000000p+1, 0x1.3fc176b7a8560p+0},
        {0x1.9000000000000p+6, 0x1.8f905eb2def22p+0},
        {0x1.2a05f20000000p+33, 0x1.921fb543d4de0p+0},
        {0x1.0000000000000p+60, 0x1.921fb54442d18p+0},
        {0x1.7e43c8800759cp+996, 0x1.921fb54442d18p+0},
    };
    static const double edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, DBL_MAX};
    static const double want[] = {
        0.0, -0.0, 0x1.921fb54442d18p+0, -0x1.921fb54442d18p+0, NAN, 0x1.921fb54442d18p+0};
    /* f32: every 997th float, and the negations */
    const elem_case c = {
        .name = "atan",
        .op = tg_atan,
        .scalar = tg__atan,
        .ref = atanl,
        .sweep = atan_sweep,
        .bound = 0.86,
        .f32_top = 0x7f7fffff,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
    const worst_point worst[] = {{tg__atan, tg_atan, atanl, "atan", 0x1.60852239b2067p-1, 0.86}};
    check_worst_points(worst, 1);
}

/* ---- asin, acos (one polynomial, at |x| or at sqrt((1 - |x|) / 2)) --------------------------- */

#define ASIN_BOUND 0.68
#define ACOS_BOUND 0.68

/* their sweep: [-1, 1] evenly, every binade below 1/2, and near +-1 */
static double asin_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n, sign = i % 6 < 3 ? 1.0 : -1.0;
    return i % 3 == 0 ? -1.0 + 2.0 * t
                      : sign * (i % 3 == 1 ? exp2(-1074.0 + 1073.0 * t) : 1.0 - exp2(-53.0 * t));
}

Test(ops, asin_accuracy)
{
    static const double table[][2] = {
        /* x, asin x correctly rounded (python3 mpmath, 100 digits) */
        {0x0.0000000000100p-1022, 0x0.0000000000100p-1022},
        {-0x1p-30, -0x1p-30},
        {0x1.999999999999ap-4, 0x1.9a49276037884p-4},
        {-0x1.dfcc689e527bcp-2, -0x1.f35b2403beb77p-2},
        {0x1p-1, 0x1.0c152382d7366p-1},
        {-0x1.0000000000001p-1, -0x1.0c152382d7367p-1},
        {0x1.6666666666666p-1, 0x1.8d00e692afd95p-1},
        {-0x1.e666666666666p-1, -0x1.40d41159f3409p+0},
        {0x1.fffffffffffffp-1, 0x1.921fb50442d18p+0},
        {-0x1.ffffffffff000p-1, -0x1.921fa54442d18p+0},
        {0x1p+0, 0x1.921fb54442d18p+0},
        {-0x1p+0, -0x1.921fb54442d18p+0},
    };
    static const double edge[] = {0.0, -0.0, 0x1.0000000000001p+0, -2.0, INFINITY, NAN};
    static const double want[] = {0.0, -0.0, NAN, NAN, NAN, NAN};
    /* f32: every 997th float up to 1, and the negations */
    const elem_case c = {
        .name = "asin",
        .op = tg_asin,
        .scalar = tg__asin,
        .ref = asinl,
        .sweep = asin_sweep,
        .bound = ASIN_BOUND,
        .f32_top = 0x3f800000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

Test(ops, acos_accuracy)
{
    static const double table[][2] = {
        /* x, acos x correctly rounded (python3 mpmath, 100 digits) */
        {0x0.0000000000100p-1022, 0x1.921fb54442d18p+0},
        {-0x1p-30, 0x1.921fb54842d18p+0},
        {0x1.999999999999ap-4, 0x1.787b22ce3f590p+0},
        {-0x1.dfcc689e527bcp-2, 0x1.077b3f22993fbp+1},
        {0x1p-1, 0x1.0c152382d7366p+0},
        {-0x1.0000000000001p-1, 0x1.0c152382d7366p+1},
        {0x1.6666666666666p-1, 0x1.973e83f5d5c9bp-1},
        {-0x1.e666666666666p-1, 0x1.6979e34f1b091p+1},
        {0x1.fffffffffffffp-1, 0x1p-26},
        {-0x1.ffffffffff000p-1, 0x1.921fad4442d18p+1},
        {0x1p+0, 0.0},
        {-0x1p+0, 0x1.921fb54442d18p+1},
    };
    static const double edge[] = {0.0, -0.0, 0x1.0000000000001p+0, -2.0, INFINITY, NAN};
    static const double want[] = {0x1.921fb54442d18p+0, 0x1.921fb54442d18p+0, NAN, NAN, NAN, NAN};
    const elem_case c = {
        .name = "acos",
        .op = tg_acos,
        .scalar = tg__acos,
        .ref = acosl,
        .sweep = asin_sweep,
        .bound = ACOS_BOUND,
        .f32_top = 0x3f800000,
        .negate_below = INFINITY,
        ELEM_TABLES,
    };
    check_elem(&c);
}

/* The largest errors found (10^7 random points in each of eleven ranges, and 1.6 * 10^9 more
 * in [1/2, 0.6] of either sign, where they peak: 0.6737, 0.6730 and 0.6704 ulp at the third,
 * fourth and seventh) */
Test(ops, asin_acos_worst_points)
{
    static const worst_point cases[] = {
        {tg__asin, tg_asin, asinl, "asin", -0x1.04d9f32f30afap-1, ASIN_BOUND},
        {tg__asin, tg_asin, asinl, "asin", 0x1.05f8f8fcaae13p-1, ASIN_BOUND},
        {tg__asin, tg_asin, asinl, "asin", 0x1.03b3f4828dfd7p-1, ASIN_BOUND},
        {tg__asin, tg_asin, asinl, "asin", -0x1.0319358e75d3ep-1, ASIN_BOUND},
        {tg__acos, tg_acos, acosl, "acos", 0x1.214a066aad4bap-1, ACOS_BOUND},
        {tg__acos, tg_acos, acosl, "acos", 0x1.215310a1bbcb2p-1, ACOS_BOUND},
        {tg__acos, tg_acos, acosl, "acos", 0x1.1eaf90d055ecap-1, ACOS_BOUND},
    };
    check_worst_points(cases, sizeof cases / sizeof cases[0]);
}

/* ---- sin, cos, tan (Cody-Waite's reduction inline up to 2^20, Payne and Hanek's beyond) ------ */

#define SIN_BOUND 0.82
#define COS_BOUND 0.82
#define TAN_BOUND 1.08

/* The sweep of sin, cos and tan: [-8, 8] evenly, and every binade from 2^-30 to 2^20 of either
 * sign (the inline reduction's range, so that the tensor runs the vectorized loops) */
static double trig_sweep(size_t i, size_t n)
{
    const double t = ((double)i + 0.37) / (double)n;
    return i % 2 ? -8.0 + 16.0 * t : (i % 4 ? -1 : 1) * exp2(-30.0 + 50.0 * t);
}

/* The table's points for each: tiny arguments, pi/4, pi/2 and pi as doubles, either side of 2^20
 * (where the reduction changes), 1e22, the double nearest a multiple of pi/2 (6381956970095103
 * 2^797, whose cos is -2^-61) and DBL_MAX */
static const double trig_x[] = {
    0x0.0000000000100p-1022,
    0x1p-27,
    -0x1.999999999999ap-4,
    0x1p-1,
    0x1.921fb54442d18p-1,
    -0x1p+0,
    0x1.921fb54442d18p+0,
    0x1.8p+1,
    0x1.921fb54442d18p+1,
    0x1.4p+3,
    -0x1.9p+6,
    0x1.86ap+16,
    0x1p+20,
    -0x1.0000000000001p+20,
    0x1.0f0cf064dd592p+73,
    0x1.6ac5b262ca1ffp+849,
    0x1.fffffffffffffp+1023,
};
#define N_TRIG_X (sizeof trig_x / sizeof trig_x[0])
/* and the edges: +-0, +-inf, NaN, and +-2^-30, whose sin and tan round to x */
static const double trig_edge[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 0x1p-30, -0x1p-30};

/* check_elem for one of the three, with f(trig_x[i]) correctly rounded in want[i] (python3
 * mpmath, 100 digits) and f(trig_edge[i]) in edge_want[i]; f32 every 997th float up to 2^20 */
static void check_trig(const char *name, tg_tensor *(*op)(tg_tape *, tg_tensor *),
                       double (*scalar)(double), long double (*ref)(long double), double bound,
                       const double want[N_TRIG_X], const double edge_want[])
{
    double table[N_TRIG_X][2];
    for (size_t i = 0; i < N_TRIG_X; i++)
        table[i][0] = trig_x[i], table[i][1] = want[i];
    const elem_case c = {
        .name = name,
        .op = op,
        .scalar = scalar,
        .ref = ref,
        .table = (const double(*)[2])table,
        .n_table = N_TRIG_X,
        .sweep = trig_sweep,
        .bound = bound,
        .f32_top = 0x49800000,
        .negate_below = INFINITY,
        .edge = trig_edge,
        .want = edge_want,
        .n_edge = sizeof trig_edge / sizeof trig_edge[0],
    };
    check_elem(&c);
}

Test(ops, sin_accuracy)
{
    static const double want[N_TRIG_X] = {
        0x0.0000000000100p-1022,
        0x1p-27,
        -0x1.98eaecb8bcb2cp-4,
        0x1.eaee8744b05f0p-2,
        0x1.6a09e667f3bccp-1,
        -0x1.aed548f090ceep-1,
        0x1p+0,
        0x1.210386db6d55bp-3,
        0x1.1a62633145c07p-53,
        -0x1.1689ef5f34f52p-1,
        0x1.03425b78c4db8p-1,
        0x1.24daa9c527e96p-5,
        0x1.526ccb2fc8656p-2,
        -0x1.526ccb338edb1p-2,
        -0x1.b453ab76bf397p-1,
        0x1p+0,
        0x1.452fc98b34e97p-8,
    };
    static const double edge_want[] = {0.0, -0.0, NAN, NAN, NAN, 0x1p-30, -0x1p-30};
    check_trig("sin", tg_sin, tg__sin_any, sinl, SIN_BOUND, want, edge_want);
}

Test(ops, cos_accuracy)
{
    static const double want[N_TRIG_X] = {
        0x1p+0,
        0x1p+0,
        0x1.fd712f9a817c1p-1,
        0x1.c1528065b7d50p-1,
        0x1.6a09e667f3bcdp-1,
        0x1.14a280fb5068cp-1,
        0x1.1a62633145c07p-54,
        -0x1.fae04be85e5d2p-1,
        -0x1p+0,
        -0x1.ad9ac890c6b1fp-1,
        0x1.b981dbf665fdfp-1,
        -0x1.ffac3841b3da7p-1,
        0x1.e33ada92fe2aep-1,
        0x1.e33ada9254f48p-1,
        0x1.0be2cef01c8f4p-1,
        -0x1.14ae72e6ba22fp-61,
        -0x1.fffe62ecfab75p-1,
    };
    static const double edge_want[] = {1.0, 1.0, NAN, NAN, NAN, 1.0, 1.0};
    check_trig("cos", tg_cos, tg__cos_any, cosl, COS_BOUND, want, edge_want);
}

Test(ops, tan_accuracy)
{
    static const double want[N_TRIG_X] = {
        0x0.0000000000100p-1022, 0x1p-27,
        -0x1.9af8877430b80p-4,   0x1.17b4f5bf3474ap-1,
        0x1.fffffffffffffp-1,    -0x1.8eb245cbee3a6p+0,
        0x1.d02967c31cdb5p+53,   -0x1.23ef71254b86fp-3,
        -0x1.1a62633145c07p-53,  0x1.4bf5f34be3782p-1,
        0x1.2ca74d62b5d38p-1,    -0x1.250a9d503313dp-5,
        0x1.6692e5779206fp-2,    -0x1.6692e57c0f96cp-2,
        -0x1.a0f79c1b6b257p+0,   -0x1.d9ba9a7975636p+60,
        -0x1.4530cfe729484p-8,
    };
    static const double edge_want[] = {0.0, -0.0, NAN, NAN, NAN, 0x1p-30, -0x1p-30};
    check_trig("tan", tg_tan, tg__tan_any, tanl, TAN_BOUND, want, edge_want);
}

/* The largest errors found (random points: 10^7 in each of seven ranges up to DBL_MAX, and
 * 7 10^8 up to 2^21 with the reduced argument r in [0.46, pi/4], where |tan| is in [1/2, 1]
 * and its ulp smallest against its value; all where r is near +-pi/4: sin's 0.8196 at the third,
 * cos's 0.8158 at the fourth, tan's 1.0796 at the sixth); points where tan broke the bound with
 * rh^2 rounded in cos's kernel (1.25, 1.08, 1.08 ulp at the seventh to ninth); and one where tan
 * as the quotient of the rounded sin and cos would (2.2 ulp at the last). */
Test(ops, trig_worst_points)
{
    static const worst_point cases[] = {
        {tg__sin_any, tg_sin, sinl, "sin", -0x1.4fc736811da1bp+1002, SIN_BOUND},
        {tg__sin_any, tg_sin, sinl, "sin", 0x1.486e259890fcap+19, SIN_BOUND},
        {tg__sin_any, tg_sin, sinl, "sin", -0x1.3331d20bc4614p+19, SIN_BOUND},
        {tg__cos_any, tg_cos, cosl, "cos", -0x1.09deb40cd9139p+19, COS_BOUND},
        {tg__cos_any, tg_cos, cosl, "cos", -0x1.9364547463778p-1, COS_BOUND},
        {tg__tan_any, tg_tan, tanl, "tan", -0x1.bc55b3b2cf9b4p+19, TAN_BOUND},
        {tg__tan_any, tg_tan, tanl, "tan", 0x1.07df29bb93bfdp+20, TAN_BOUND},
        {tg__tan_any, tg_tan, tanl, "tan", 0x1.c75c948494ab1p+872, TAN_BOUND},
        {tg__tan_any, tg_tan, tanl, "tan", 0x1.832bbd98823bcp+29, TAN_BOUND},
        {tg__tan_any, tg_tan, tanl, "tan", 0x1.c334ad9981d76p+9, TAN_BOUND},
    };
    check_worst_points(cases, sizeof cases / sizeof cases[0]);
}

/* Beyond 2^20, where the reduction is Payne and Hanek's (out of line, a range holding such an
 * element runs the scalar loop): random points in every binade up to DBL_MAX, in f64 and f32,
 * within the bounds of long double's values; and the elements of a tensor the same bits whether
 * its range ran the vectorized loop (all within 2^20) or the scalar one (one element beyond:
 * appended last), forward and gradient. */
Test(ops, trig_huge_arguments)
{
    typedef struct {
        tg_tensor *(*op)(tg_tape *, tg_tensor *);
        double (*scalar)(double);
        long double (*ref)(long double);
        const char *name;
        double bound;
    } trig_fn;
    const trig_fn fns[] = {{tg_sin, tg__sin_any, sinl, "sin", SIN_BOUND},
                           {tg_cos, tg__cos_any, cosl, "cos", COS_BOUND},
                           {tg_tan, tg__tan_any, tanl, "tan", TAN_BOUND}};
    enum { N = 4096 };
    double *xs = malloc((N + 1) * sizeof *xs);
    cr_assert_not_null(xs);
    uint64_t seed = 12345;
    for (size_t k = 0; k < 3; k++) {
        const trig_fn *f = &fns[k];
        for (size_t i = 0; i < N; i++) { /* binades 2^20 .. 2^1024, random significands */
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const double frac = 1.0 + (double)(seed >> 11) * 0x1p-53;
            xs[i] = (i % 2 ? -1 : 1) * ldexp(frac, 20 + (int)(i % 1004));
        }
        for (int di = 0; di < 2; di++) {
            const bool f32 = di == 1;
            tg_tensor *y = f->op(tape, own_leaf(f32 ? TG_F32 : TG_F64, 1, TS_SHAPE(N), xs, false));
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            for (size_t i = 0; i < N; i++) {
                const double x = f32 ? (double)(float)xs[i] : xs[i];
                if (isinf(x))
                    continue; /* beyond FLT_MAX: NaN, as the edges test */
                const double got = tg_tensor_get(y, i);
                const double err = ulps_off(got, f->ref((long double)x), f32);
                cr_assert(err <= (f32 ? 0.5 + 1e-6 : f->bound), "%s(%a) = %a: %g ulp (%s)", f->name,
                          x, got, err, f32 ? "f32" : "f64");
            }
            tg_tape_reset(tape);
        }
        /* the same bits from either loop, value and gradient (dy = 1) */
        for (size_t i = 0; i < N; i++)
            xs[i] = trig_sweep(i, N);
        xs[N] = 0x1p40;
        for (int di = 0; di < 2; di++) {
            const tg_dtype dt = DTYPES[di];
            tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(N), xs, true);
            tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(N + 1), xs, true);
            tg_tensor *ya = f->op(tape, a), *yb = f->op(tape, b);
            cr_assert(ya && yb, "%s", tg_tape_error(tape));
            backward(tg_add(tape, tg_sum(tape, ya, TG_ALL_AXES, false),
                            tg_sum(tape, yb, TG_ALL_AXES, false)));
            for (size_t i = 0; i < N; i++) {
                cr_assert(tg_tensor_get(ya, i) == tg_tensor_get(yb, i),
                          "%s(%a): %a vectorized, %a scalar (%s)", f->name, xs[i],
                          tg_tensor_get(ya, i), tg_tensor_get(yb, i), tg_dtype_name(dt));
                cr_assert(tg_tensor_grad_get(a, i) == tg_tensor_grad_get(b, i),
                          "%s'(%a): %a vectorized, %a scalar (%s)", f->name, xs[i],
                          tg_tensor_grad_get(a, i), tg_tensor_grad_get(b, i), tg_dtype_name(dt));
            }
            tg_tape_reset(tape);
        }
    }
    free(xs);
}

/* A function of two arguments through its op (the tensor loop) over the n pairs (a[i], b[i]) of
 * its sweep (sweep(i, n, &a[i], &b[i])): in f64 the same bits as the scalar function and within
 * `bound` ulp of the long double reference, in f32 within half an ulp of the rounded reference.
 * Results that are 0 or beyond the format's range, and in f32 those below its normal range, are
 * not measured. */
static void
check_binary_sweep(const char *name, tg_tensor *(*op)(tg_tape *, tg_tensor *, tg_tensor *),
                   double (*scalar)(double, double), long double (*ref)(long double, long double),
                   void (*sweep)(size_t i, size_t n, double *a, double *b), size_t n, double bound)
{
    double *a = malloc(2 * n * sizeof *a), *b = a ? a + n : NULL;
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++)
        sweep(i, n, &a[i], &b[i]);
    for (int di = 0; di < 2; di++) {
        const bool f32 = di == 1;
        const tg_dtype dt = f32 ? TG_F32 : TG_F64;
        tg_tensor *t = op(tape, own_leaf(dt, 1, TS_SHAPE(n), a, false),
                          own_leaf(dt, 1, TS_SHAPE(n), b, false));
        cr_assert_not_null(t, "%s", tg_tape_error(tape));
        double worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            const double u = f32 ? (double)(float)a[i] : a[i], v = f32 ? (double)(float)b[i] : b[i];
            const double got = tg_tensor_get(t, i);
            if (!f32)
                cr_assert(got == scalar(u, v), "%s(%a, %a): %a from the tensor loop, %a scalar",
                          name, u, v, got, scalar(u, v));
            const long double want = ref(u, v);
            if (want == 0 || fabsl(want) > (f32 ? FLT_MAX : DBL_MAX) ||
                (f32 && fabsl(want) < 0x1p-126L))
                continue; /* 0 or inf, or below f32's normal range */
            const double err = ulps_off(got, want, f32);
            if (err > worst)
                worst = err, at = i;
        }
        cr_expect(worst <= (f32 ? 0.5 + 1e-6 : bound), "%s %s: %g ulp at (%a, %a)",
                  tg_dtype_name(dt), name, worst, a[at], b[at]);
        tg_tape_reset(tape);
    }
    free(a);
}

/* ---- atan2 (tg__atan's reduction on |y| / |x|, its numerators exact) --------------------------
 */

#define ATAN2_BOUND 0.82

/* The (y, x) pair i of n of atan2's sweep: the four quadrants, every ratio from 2^-60 to 2^60,
 * and coordinates over the whole range of the exponents */
static void atan2_sweep(size_t i, size_t n, double *y, double *x)
{
    const double t = ((double)i + 0.37) / (double)n, u = fmod(t * 7919.0, 1.0);
    const double sy = i % 4 < 2 ? 1.0 : -1.0, sx = i % 2 ? 1.0 : -1.0;
    *x = sx * exp2(-1000.0 + 2000.0 * u);
    *y = sy * *x * sx * exp2(-60.0 + 120.0 * t);
    if (i % 3 == 0) /* a second pattern: both in [-1, 1] */
        *y = sy * t, *x = sx * u;
}

Test(ops, atan2_accuracy)
{
    static const double table[][3] = {
        /* y, x, atan2(y, x) correctly rounded (python3 mpmath, 100 digits) */
        {0x0.0000000000001p-1022, 0x1p+0, 0x0.0000000000001p-1022},
        {0x1.999999999999ap-4, 0x1p+0, 0x1.983e282e2cc4dp-4},
        {0x1p+0, 0x1.999999999999ap-4, 0x1.789bd2c160053p+0},
        {-0x1.8p+0, 0x1p+0, -0x1.f730bd281f69bp-1},
        {0x1.8p+0, -0x1p+0, 0x1.145385fa3af71p+1},
        {0x1p+0, 0x1p+0, 0x1.921fb54442d18p-1},
        {-0x1p+0, -0x1p+0, -0x1.2d97c7f3321d2p+1},
        {0x1.add28b8469b7ep-3, 0x1.376c4a67964p-2, 0x1.35459f9054861p-1},
        {0x1.1dd1fb1ed0b6ep-1, 0x1.aa6379ffe88aep-1, 0x1.2e5a5c499795dp-1},
        {0x1p-1000, -0x1p+1000, 0x1.921fb54442d18p+1},
        {0x1.fffffffffffffp+1023, 0x1.fffffffffffffp+1023, 0x1.921fb54442d18p-1},
        {-0x1.fffffffffffffp+1023, 0x0.0000000000001p-1022, -0x1.921fb54442d18p+0},
        {0x0.0000000000001p-1022, -0x0.0000000000001p-1022, 0x1.2d97c7f3321d2p+1},
        {0x1.5p-3, -0x1.2p+2, 0x1.8d7591ff88f4dp+1},
        /* the smaller coordinate subnormal or nearly, the larger not: t den in the subnormals */
        {0x0.0000078e07bf9p-1022, 0x1.939169b3eb5f2p-246, 0x1.32b57ff76f75cp-798},
        {0x0.0000067f107a6p-1022, 0x1.8aa4c224a78a5p-793, 0x1.0db3aebfd9988p-251},
        {-0x1.26deb55e89d22p-1022, 0x1.3fadd5972cb17p-207, -0x1.d843ff0108ffep-816},
        {-0x0.0000067f107a6p-1022, -0x1.8aa4c224a78a5p-793, -0x1.921fb54442d18p+1},
        {0x1.8aa4c224a78a5p-793, -0x0.0000067f107a6p-1022, 0x1.921fb54442d18p+0},
    };
    const size_t n_table = sizeof table / sizeof table[0];
    for (size_t k = 0; k < n_table; k++) {
        const double y = table[k][0], x = table[k][1], got = tg__atan2(y, x);
        cr_expect(ulps_off(got, table[k][2], false) <= 1, "atan2(%a, %a) = %a, want %a", y, x, got,
                  table[k][2]);
    }

    /* C99's values (Annex F.9.1.4) on the axes, at the infinities and for NaN: each (y, x) of
     * {+-0, +-1, +-inf, NaN}^2 */
    const double pi = 0x1.921fb54442d18p+1, h = 0x1.921fb54442d18p+0, q = 0x1.921fb54442d18p-1;
    const double q3 = 0x1.2d97c7f3321d2p+1, inf = INFINITY;
    const double v[7] = {0.0, -0.0, 1.0, -1.0, inf, -inf, NAN};
    const double want[7][7] = {
        /* x:      +0    -0    +1    -1    +inf   -inf  NaN   (y below) */
        /* +0 */ {0.0, pi, 0.0, pi, 0.0, pi, NAN},
        /* -0 */ {-0.0, -pi, -0.0, -pi, -0.0, -pi, NAN},
        /* +1 */ {h, h, q, q3, 0.0, pi, NAN},
        /* -1 */ {-h, -h, -q, -q3, -0.0, -pi, NAN},
        /* +inf */ {h, h, h, h, q, q3, NAN},
        /* -inf */ {-h, -h, -h, -h, -q, -q3, NAN},
        /* NaN */ {NAN, NAN, NAN, NAN, NAN, NAN, NAN},
    };
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            const double got = tg__atan2(v[i], v[j]), w = want[i][j];
            cr_expect(isnan(w) ? isnan(got) : got == w && signbit(got) == signbit(w),
                      "atan2(%g, %g) = %a, want %a", v[i], v[j], got, w);
        }

    check_binary_sweep("atan2", tg_atan2, tg__atan2, atan2l, atan2_sweep, 100000, ATAN2_BOUND);

    /* the largest errors found (2 * 10^7 random pairs in each of five patterns: the first;
     * 1.5 * 10^9 with |y / x| just above 11/16, where they peak: 0.8109 and 0.8139 ulp) */
    static const double worst[][2] = {
        {-0x1.a24919ab8bb96p-5, 0x1.3022261efbb4p-4},
        {-0x1.a3dc1cf75540ap-13, 0x1.3159c2fdfb338p-12},
        {0x1.a289b01a1445p-1, 0x1.302cef3c31859p+0},
    };
    for (size_t k = 0; k < sizeof worst / sizeof worst[0]; k++) {
        const double wy = worst[k][0], wx = worst[k][1];
        const double err = ulps_off(tg__atan2(wy, wx), atan2l(wy, wx), false);
        cr_expect(err <= ATAN2_BOUND, "atan2(%a, %a): %g ulp", wy, wx, err);
    }
}

/* ---- pow (e^(y log|x|), log|x| as two doubles) ------------------------------------------------
 */

#define POW_BOUND 0.83

/* The (x, y) pair i of n of pow's sweep: x^y over exp's whole range, from the subnormals to near
 * DBL_MAX (x in [2^-60, 2^60]); x within 2^-7 of 1, where |y| runs to 10^5 and log x's accuracy
 * counts most; and negative x with integer y, odd and even. */
static void pow_sweep(size_t i, size_t n, double *x, double *y)
{
    const double t = ((double)i + 0.37) / (double)n, u = fmod(t * 7919.0, 1.0);
    switch (i % 3) {
    case 0:
        *x = exp2(-60.0 + 120.0 * u);
        *y = (-744.0 + 1453.0 * t) / log(*x);
        break;
    case 1:
        *x = 1.0 + (u - 0.5) * 0x1p-6;
        *y = (-700.0 + 1400.0 * t) / log(*x);
        break;
    default: *x = -exp2(-8.0 + 16.0 * u); *y = floor(-90.0 + 180.0 * t);
    }
}

Test(ops, pow_accuracy)
{
    static const double table[][3] = {
        /* x, y, x^y correctly rounded (python3 mpmath at 400 bits) */
        {0x1.9250517d9ef64p+21, -0x1.79f0e7fbd5389p+5, 0x0.88a30edf787cbp-1022},
        {0x1.20930103697dbp+10, -0x1.920febcdb244ap+6, 0x0.b1fab7fc5544dp-1022},
        {0x1.8985b614824f6p+40, -0x1.92c0f562adda6p+4, 0x0.b52ffddaf219bp-1022},
        {0x1.36f10495a045bp-923, 0x1.1bae886402671p+0, 0x0.b5a85c0488e9dp-1022},
        {0x1.ff30ff188134ap-1, 0x1.d6a6de14297b6p+17, 0x1.6e0360d1f703fp-550},
        {0x1.eb76d75ed4f76p-11, 0x1.1726236a5a53cp+4, 0x1.6a6bf1133f5c1p-176},
        {0x1p-1, 0x1.8p+0, 0x1.6a09e667f3bcdp-2},
        {0x1.fffffffffffffp-1, 0x1.8p+0, 0x1.fffffffffffffp-1},
        {0x1p+1, 0x1p-1, 0x1.6a09e667f3bcdp+0},
        {0x1.4p+3, -0x1p+1, 0x1.47ae147ae147bp-7},
        {0x1.8p+1, 0x1.5555555555555p-2, 0x1.7137449123ef6p+0},
        {0x1p+1, 0x1.fffffbce4217dp+9, 0x1.fff45f166c48ap+1023},
        {0x1.fffffffffffffp+1023, 0x1.ffffde7210be9p-1, 0x1.ffa300182d7e4p+1023},
        {0x1.0000000000001p+0, 0x1.62e42fefa39efp+61, 0x1.ffffffffffc64p+1023},
        {0x1p+1, -0x1.0c8p+10, 0x0.0000000000001p-1022},
        {0x1p+1, -0x1.0c9p+10, 0x0.0000000000001p-1022},
        {0x1p+1, -0x1.0cbffffffffffp+10, 0x0.0000000000001p-1022},
        {0x1p+1, -0x1.0ccp+10, 0.0}, /* 2^-1075: the tie rounds to even, 0 */
        {0x0.0000000000001p-1022, 0x1.47ae147ae147bp-7, 0x1.328df6e1fea76p-11},
        {-0x1.199999999999ap+0, 0x1.94p+6, -0x1.d9b5637aa9b25p+13},
        {-0x1.ccccccccccccdp-1, -0x1.92p+7, -0x1.777cd8efcb7e3p+30},
        {0x1.0000000000001p+0, 0x1p+60, 0x1.41c7a8814be19p+369},
        {0x1.fffffffffffffp-1, 0x1p+62, 0x1.44109edb2088fp-739},
        {0x1.0000000000001p+0, -0x1.5p+59, 0x1.8b6ae536cb631p-243},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        const double x = table[k][0], y = table[k][1], want = table[k][2], got = tg__pow(x, y);
        cr_expect(want == 0 ? got == 0 : ulps_off(got, want, false) <= 1,
                  "pow(%a, %a) = %a, want %a", x, y, got, want);
    }

    /* C99's values (Annex F.10.4.4), as the C library's pow gives them, bit for bit (the sign
     * of zero included): at the edges (zeros, ones, infinities, NaN, odd and even integers up to
     * and beyond 2^53) and where x^y is exact */
    const double inf = INFINITY;
    const double xs[] = {0.0, -0.0, 1.0, -1.0, 4.0, -4.0, 0.25, -0.25, inf, -inf, NAN};
    const double ys[] = {0.0,         -0.0,       1.0,           -1.0,  2.0,   -2.0, 3.0,
                         -3.0,        0.5,        -0.5,          inf,   -inf,  NAN,  0x1p53,
                         -0x1p53 - 2, 0x1p52 + 1, -(0x1p52 + 1), 1e300, -1e300};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        for (size_t j = 0; j < sizeof ys / sizeof ys[0]; j++) {
            const double got = tg__pow(xs[i], ys[j]), w = pow(xs[i], ys[j]);
            cr_expect(isnan(w) ? isnan(got) : got == w && signbit(got) == signbit(w),
                      "pow(%a, %a) = %a, want %a", xs[i], ys[j], got, w);
        }

    check_binary_sweep("pow", tg_pow_tensor, tg__pow, powl, pow_sweep, 120000, POW_BOUND);

    /* pow with a constant exponent: its values and gradient (c x^(c-1)) from the vectorized loop
     * of a tensor, the same bits as the scalar function's */
    enum { M = 5001 };
    double *x = malloc(M * sizeof *x);
    cr_assert_not_null(x);
    for (size_t i = 0; i < M; i++)
        x[i] = exp2(-40.0 + 80.0 * fmod((double)i * 0.618034, 1.0));
    const double cs[] = {2.5, -1.5, 0x1.5555555555555p-2, 7.0, -0.5};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        tg_tensor *a = own_leaf(TG_F64, 1, TS_SHAPE(M), x, true), *y = tg_pow(tape, a, cs[k]);
        cr_assert_not_null(y, "%s", tg_tape_error(tape));
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        for (size_t i = 0; i < M; i++) {
            cr_assert(tg_tensor_get(y, i) == tg__pow(x[i], cs[k]), "pow(%a, %a): %a, scalar %a",
                      x[i], cs[k], tg_tensor_get(y, i), tg__pow(x[i], cs[k]));
            const double slope = cs[k] * tg__pow(x[i], cs[k] - 1);
            cr_assert(tg_tensor_grad_get(a, i) == slope, "pow'(%a, %a): %a, scalar %a", x[i], cs[k],
                      tg_tensor_grad_get(a, i), slope);
        }
        tg_tape_reset(tape);
    }
    free(x);

    /* the largest errors found (see ops.h): in the top binade of the subnormals, where 1 + p
     * rounds to 53 bits and again into the subnormals' 52, and above 2^-1022 (0.7144) */
    static const double worst[][2] = {
        {0x1.8985b614824f6p+40, -0x1.92c0f562adda6p+4}, /* 0.828 ulp */
        {0x1.36f10495a045bp-923, 0x1.1bae886402671p+0}, /* 0.825 */
        {0x1.8640bb8900c13p-13, 0x1.4a0e1b41fada3p+6},  /* 0.805 */
        {0x1.4cfe71c5e41ap+0, -0x1.f984eb5e23092p+1},   /* 0.714 */
    };
    for (size_t k = 0; k < sizeof worst / sizeof worst[0]; k++) {
        const double wx = worst[k][0], wy = worst[k][1];
        const double err = ulps_off(tg__pow(wx, wy), powl(wx, wy), false);
        cr_expect(err <= POW_BOUND, "pow(%a, %a): %g ulp", wx, wy, err);
    }
}
