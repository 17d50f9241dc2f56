/* reduce.c (test_ops): the reductions' shapes (keepdim, negative axes, all axes), values
 * and VJPs (sum, mean, max, logsumexp), and softmax; along axes with elements after them, every
 * reduction and softmax against a lane-by-lane reference, to the bit. */
#include "ops.h"

#include "core/detmath.h" /* tg__exp, tg__log */

/* ---- reductions ---------------------------------------------------------------------------- */

Test(ops, reduce_shapes_keepdim_negative_axes_all)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        size_t sh[3] = {2, 3, 4};
        tg_tensor *x = iota(dt, 3, sh, 0, 1, false);
        tg_tensor *(*const fns[])(tg_tape *, tg_tensor *, int, bool) = {tg_sum, tg_mean, tg_max,
                                                                        tg_logsumexp};
        for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
            EXPECT_SHAPE("axis 0", fns[f](tape, x, 0, false), 2, 3, 4);
            EXPECT_SHAPE("axis 1", fns[f](tape, x, 1, false), 2, 2, 4);
            EXPECT_SHAPE("axis 2", fns[f](tape, x, 2, false), 2, 2, 3);
            EXPECT_SHAPE("axis -1", fns[f](tape, x, -1, false), 2, 2, 3);
            EXPECT_SHAPE("axis -3", fns[f](tape, x, -3, false), 2, 3, 4);
            EXPECT_SHAPE("axis 1 keepdim", fns[f](tape, x, 1, true), 3, 2, 1, 4);
            EXPECT_SHAPE("axis -1 keepdim", fns[f](tape, x, -1, true), 3, 2, 3, 1);
            EXPECT_SHAPE("axis 0 keepdim", fns[f](tape, x, 0, true), 3, 1, 3, 4);
            expect_shape("all axes", fns[f](tape, x, TG_ALL_AXES, false), 0, NULL);
            EXPECT_SHAPE("all axes keepdim", fns[f](tape, x, TG_ALL_AXES, true), 3, 1, 1, 1);
            tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(1.5), false);
            tg_tensor *r0 = fns[f](tape, s, TG_ALL_AXES, false);
            expect_shape("0-d, all axes", r0, 0, NULL);
            ts_assert_close(tg_tensor_item(r0), 1.5, 0.1 * tol_of(dt), tol_of(dt),
                            "reduce of 0-d 1.5");
            tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), false);
            expect_shape("1-D axis 0 -> 0-d", fns[f](tape, v, 0, false), 0, NULL);
            EXPECT_SHAPE("1-D axis 0 keepdim", fns[f](tape, v, 0, true), 1, 1);
        }
        cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    }
}

Test(ops, reduce_sum_mean_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        EXPECT_VALUES("sum axis 0", tg_sum(tape, x, 0, false), 5, 7, 9);
        EXPECT_VALUES("sum axis 1", tg_sum(tape, x, 1, false), 6, 15);
        EXPECT_VALUES("sum axis -1 keepdim", tg_sum(tape, x, -1, true), 6, 15);
        EXPECT_VALUES("sum axis -2", tg_sum(tape, x, -2, false), 5, 7, 9);
        EXPECT_VALUES("sum all", tg_sum(tape, x, TG_ALL_AXES, false), 21);
        EXPECT_VALUES("sum all keepdim", tg_sum(tape, x, TG_ALL_AXES, true), 21);
        EXPECT_VALUES("mean axis 0", tg_mean(tape, x, 0, false), 2.5, 3.5, 4.5);
        EXPECT_VALUES("mean axis 1", tg_mean(tape, x, 1, true), 2, 5);
        EXPECT_VALUES("mean all", tg_mean(tape, x, TG_ALL_AXES, false), 3.5);

        backward_seed(tg_sum(tape, x, 1, false), TS_VALS(1, -2));
        EXPECT_GRAD("sum axis 1", x, 1, 1, 1, -2, -2, -2);
        tg_tensor *x2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward_seed(tg_mean(tape, x2, 0, true), TS_VALS(3, 6, -3));
        EXPECT_GRAD("mean axis 0: dy / 2", x2, 1.5, 3, -1.5, 1.5, 3, -1.5);
        tg_tensor *x3 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward(tg_mean(tape, x3, TG_ALL_AXES, false));
        EXPECT_GRAD("mean all: 1/6", x3, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0);
        tg_tensor *x4 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        backward(tg_sum(tape, x4, TG_ALL_AXES, true));
        EXPECT_GRAD("sum all keepdim", x4, 1, 1, 1, 1, 1, 1);

        /* 3-D, middle axis: sum_j (12i + 4j + k) = 36i + 12 + 3k. */
        size_t sh[3] = {2, 3, 4};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *sc = tg_sum(tape, c, 1, true);
        EXPECT_SHAPE("sum axis 1 keepdim", sc, 3, 2, 1, 4);
        EXPECT_VALUES("sum axis 1 keepdim", sc, 12, 15, 18, 21, 48, 51, 54, 57);
        tg_tensor *mc = tg_mean(tape, c, -1, false);
        EXPECT_VALUES("mean axis -1", mc, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5);
        backward_seed(tg_mean(tape, c, 1, false), TS_VALS(3, 6, 9, 12, -3, -6, -9, -12));
        double want[24];
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 4; k++)
                    want[(i * 3 + j) * 4 + k] = (i ? -1.0 : 1.0) * (double)(k + 1);
        expect_elems("mean axis 1 of [2,3,4]: dy / 3", c, want, 24, true);
    }
}

Test(ops, reduce_max_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 9, -3, 4, -5, 6), true);
        EXPECT_VALUES("max axis 0", tg_max(tape, x, 0, false), 4, 9, 6);
        EXPECT_VALUES("max axis 1", tg_max(tape, x, 1, false), 9, 6);
        EXPECT_VALUES("max all", tg_max(tape, x, TG_ALL_AXES, true), 9);
        backward_seed(tg_max(tape, x, 0, false), TS_VALS(1, 2, 3));
        EXPECT_GRAD("max axis 0", x, 0, 2, 0, 1, 0, 3);
        tg_tensor *n = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-7, -2, -5), true);
        tg_tensor *mn = tg_max(tape, n, -1, false);
        EXPECT_VALUES("max of negatives", mn, -2);
        backward(mn);
        EXPECT_GRAD("max of negatives", n, 0, 1, 0);
        size_t sh[3] = {2, 3, 4};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *m0 = tg_max(tape, c, 0, false);
        for (size_t i = 0; i < 12; i++)
            cr_expect_eq(tg_tensor_get(m0, i), 12.0 + (double)i);
        backward(tg_sum(tape, m0, TG_ALL_AXES, false));
        for (size_t i = 0; i < 24; i++)
            cr_expect_eq(tg_tensor_grad_get(c, i), i < 12 ? 0.0 : 1.0);
    }
}

Test(ops, reduce_logsumexp)
{
    const double l12 = 2 + log1p(exp(-1.0));
    const double p1 = 1 / (1 + exp(1.0)), p2 = 1 - p1; /* softmax([1, 2]) */
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(0, 0, 1, 2), true);
        tg_tensor *l = tg_logsumexp(tape, x, 1, false);
        EXPECT_VALUES("logsumexp axis 1", l, log(2.0), l12);
        backward_seed(l, TS_VALS(1, 2));
        EXPECT_GRAD("logsumexp axis 1: dy * softmax", x, 0.5, 0.5, 2 * p1, 2 * p2);
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(0, 1, 0, 2), true);
        tg_tensor *l0 = tg_logsumexp(tape, y, 0, true);
        EXPECT_SHAPE("logsumexp axis 0 keepdim", l0, 2, 1, 2);
        EXPECT_VALUES("logsumexp axis 0", l0, log(2.0), l12);
        tg_tensor *z = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, 0, 0), true);
        tg_tensor *lz = tg_logsumexp(tape, z, TG_ALL_AXES, false);
        EXPECT_VALUES("logsumexp all", lz, log(3.0));
        backward(lz);
        EXPECT_GRAD("logsumexp all", z, 1 / 3.0, 1 / 3.0, 1 / 3.0);
    }
}

Test(ops, softmax_values_and_vjp)
{
    const double e = exp(1.0), e2 = exp(2.0), e3 = exp(3.0), z = e + e2 + e3;
    const double p[3] = {e / z, e2 / z, e3 / z};
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Along axis 1: row 0 [1,2,3], row 1 all equal. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *s = tg_softmax(tape, x, 1);
        EXPECT_SHAPE("softmax", s, 2, 2, 3);
        EXPECT_VALUES("softmax axis 1", s, p[0], p[1], p[2], 1 / 3.0, 1 / 3.0, 1 / 3.0);
        backward_seed(s, TS_VALS(1, 0, 0, 0, 0, 0));
        /* dx = y (dy - <dy, y>) */
        EXPECT_GRAD("softmax axis 1", x, p[0] * (1 - p[0]), -p[1] * p[0], -p[2] * p[0], 0, 0, 0);

        /* Along axis 0 (by its negative index): column j is softmax([x0j, x1j]). */
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *s0 = tg_softmax(tape, y, -2);
        EXPECT_VALUES("softmax axis -2", s0, e / (e + 1), e2 / (e2 + 1), e3 / (e3 + 1), 1 / (e + 1),
                      1 / (e2 + 1), 1 / (e3 + 1));
        backward_seed(s0, TS_VALS(1, 1, 1, 1, 1, 1));
        EXPECT_GRAD("softmax: a constant dy gives 0", y, 0, 0, 0, 0, 0, 0);

        /* log_softmax = x - logsumexp; dx = dy - softmax * sum(dy). */
        tg_tensor *w = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 0, 0, 0), true);
        tg_tensor *ls = tg_log_softmax(tape, w, -1);
        double lz = log(z);
        EXPECT_VALUES("log_softmax axis -1", ls, 1 - lz, 2 - lz, 3 - lz, -log(3.0), -log(3.0),
                      -log(3.0));
        backward_seed(ls, TS_VALS(1, 0, 0, 1, 1, 1));
        EXPECT_GRAD("log_softmax axis -1", w, 1 - p[0], -p[1], -p[2], 0, 0, 0);

        /* 3-D, middle axis, against exp/normalize done by hand. */
        size_t sh[3] = {2, 2, 2};
        tg_tensor *c = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *sc = tg_softmax(tape, c, 1);
        /* pairs along axis 1 differ by 2: softmax([a, a+2]) = [1/(1+e^2), e^2/(1+e^2)] */
        double lo = 1 / (1 + e2), hi = e2 / (1 + e2);
        EXPECT_VALUES("softmax axis 1 of [2,2,2]", sc, lo, lo, hi, hi, lo, lo, hi, hi);
        tg_tensor *lc = tg_log_softmax(tape, c, 1);
        EXPECT_VALUES("log_softmax axis 1 of [2,2,2]", lc, log(lo), log(lo), log(hi), log(hi),
                      log(lo), log(lo), log(hi), log(hi));
    }
}

/* ---- reductions along an axis with elements after it ----------------------------------------
 * Such lanes are taken row by row (several lanes at once, the contiguous index innermost); each
 * lane must still get exactly what it gets alone: its elements in order, k ascending. Lanes
 * along the last axis are contiguous, and their sums run 16 ways (sum_terms). The reference
 * below goes lane by lane, with the arithmetic of each op's definition (ops.h) in that order, in
 * the dtype's own type, so values and gradients must match to the bit (NaN as NaN): ties and NaN
 * pick the first, signed zeros and infinities included. */

enum { RED_SUM, RED_MEAN, RED_MAX, RED_MIN, RED_PROD, RED_LSE, RED_SOFTMAX, RED_LOG_SOFTMAX };

enum { LANE_MAX = 128 };

/* The sum of a lane's terms t[0..n): for a contiguous lane (`ways`) as the ops sum a contiguous
 * run (run_sum_f32, run_sum_f64), else in order. */
#define SUM_TERMS(T, RUN_SUM)                                                                      \
    static T sum_terms_##T(const T *t, size_t n, bool ways)                                        \
    {                                                                                              \
        double run[LANE_MAX];                                                                      \
        T sum = 0;                                                                                 \
        for (size_t k = 0; k < n; k++)                                                             \
            run[k] = t[k], sum += t[k];                                                            \
        return ways ? RUN_SUM(0, run, n) : sum;                                                    \
    }
SUM_TERMS(float, run_sum_f32)
SUM_TERMS(double, run_sum_f64)

/* Lane (x[0], x[st], ... x[(n-1)st]) of op `op` into y (one value, or n for softmax's two),
 * and the gradient dx (stride st) for the output gradient dy (stride dst: 0 for one value). */
#define LANE_REFERENCE(T, EXP, LOG)                                                                \
    static void lane_##T(int op, const T *x, size_t st, size_t n, T *y, const T *dy, size_t dst,   \
                         T *dx)                                                                    \
    {                                                                                              \
        size_t pick = 0; /* the first maximum (minimum), or the first NaN */                       \
        for (size_t k = 1; k < n; k++) {                                                           \
            const T v = x[k * st], b = x[pick * st];                                               \
            if (b != b)                                                                            \
                break;                                                                             \
            if ((op == RED_MIN ? v < b : v > b) || v != v)                                         \
                pick = k;                                                                          \
        }                                                                                          \
        const T m = x[pick * st];                                                                  \
        T acc = 1, terms[LANE_MAX], ls, dot;                                                       \
        cr_assert(n <= LANE_MAX);                                                                  \
        for (size_t k = 0; k < n; k++)                                                             \
            if (op == RED_PROD)                                                                    \
                acc *= x[k * st];                                                                  \
            else                                                                                   \
                terms[k] = op <= RED_MEAN ? x[k * st] : EXP(x[k * st] - m);                        \
        if (op <= RED_MEAN)                                                                        \
            acc = sum_terms_##T(terms, n, st == 1);                                                \
        ls = op <= RED_PROD || !isfinite(m) ? 0 : LOG(sum_terms_##T(terms, n, st == 1));           \
        switch (op) {                                                                              \
        case RED_SUM: y[0] = acc; break;                                                           \
        case RED_MEAN: y[0] = acc / (T)n; break;                                                   \
        case RED_MAX:                                                                              \
        case RED_MIN: y[0] = m; break;                                                             \
        case RED_PROD: y[0] = acc; break;                                                          \
        case RED_LSE: y[0] = m + ls; break;                                                        \
        default:                                                                                   \
            for (size_t k = 0; k < n; k++)                                                         \
                y[k * st] = op == RED_SOFTMAX ? EXP((x[k * st] - m) - ls) : (x[k * st] - m) - ls;  \
        }                                                                                          \
        for (size_t k = 0; k < n; k++) /* softmax: sum dy y; log_softmax: sum dy */                \
            terms[k] = op == RED_SOFTMAX ? dy[k * dst] * y[k * st] : dy[k * dst];                  \
        dot = sum_terms_##T(terms, n, st == 1);                                                    \
        for (size_t k = 0; k < n; k++) {                                                           \
            T prefix = 1, suffix = 1;                                                              \
            for (size_t j = 0; j < k; j++)                                                         \
                prefix *= x[j * st];                                                               \
            for (size_t j = n; j-- > k + 1;)                                                       \
                suffix *= x[j * st];                                                               \
            const T g = dy[k * dst];                                                               \
            switch (op) {                                                                          \
            case RED_SUM: dx[k * st] = g; break;                                                   \
            case RED_MEAN: dx[k * st] = g / (T)n; break;                                           \
            case RED_MAX:                                                                          \
            case RED_MIN: dx[k * st] = k == pick ? g : 0; break;                                   \
            case RED_PROD: dx[k * st] = g * (prefix * suffix); break;                              \
            case RED_LSE: dx[k * st] = g * EXP((x[k * st] - m) - ls); break;                       \
            case RED_SOFTMAX: dx[k * st] = y[k * st] * (g - dot); break;                           \
            default: dx[k * st] = g - EXP(y[k * st]) * dot;                                        \
            }                                                                                      \
            dx[k * st] = (T)0 + dx[k * st]; /* added into a zeroed gradient: -0 becomes +0 */      \
        }                                                                                          \
    }
static float exp_f32(float x)
{
    return (float)tg__exp(x);
}
static float log_f32(float x)
{
    return (float)tg__log(x);
}
LANE_REFERENCE(float, exp_f32, log_f32)
LANE_REFERENCE(double, tg__exp, tg__log)

static bool same_or_both_nan(double a, double b)
{
    return a == b ? signbit(a) == signbit(b) || a != 0 : (a != a && b != b);
}

/* The pick of a contiguous lane longer than 16 (its value first, 16 ways, then its first
 * occurrence) is ARGBEST's, one element at a time: the first NaN wherever it is, also past the
 * first 16 elements; the first of tied maxima (minima), also zeros of either sign; and the
 * gradient at that element alone. Lanes of 17 to 100, max and min, against the lane reference. */
Test(ops, contiguous_picks_are_the_first)
{
    const size_t lengths[] = {17, 33, 100};
    for (size_t li = 0; li < 3; li++)
        for (int di = 0; di < 2; di++)
            for (int op = RED_MAX; op <= RED_MIN; op++)
                for (int c = 0; c < 12; c++) {
                    const size_t n = lengths[li];
                    const tg_dtype dt = DTYPES[di];
                    double v[LANE_MAX];
                    for (size_t k = 0; k < n; k++) /* distinct values, in no order */
                        v[k] = (double)((k * 29) % n) - (double)n / 2;
                    const size_t at = c / 4 == 0 ? n - 1 : c / 4 == 1 ? 16 : 3;
                    const double best = op == RED_MAX ? 1000 : -1000;
                    switch (c % 4) {
                    case 0: v[at] = NAN; break;                      /* a lone NaN */
                    case 1: v[at] = NAN, v[at / 2] = NAN; break;     /* the first of two */
                    case 2: v[at] = v[n - 1 - at / 2] = best; break; /* tied picks */
                    default: /* every element a zero, the first of each sign where put */
                        for (size_t k = 0; k < n; k++)
                            v[k] = (k == at) != (c == 7) ? -0.0 : 0.0;
                    }
                    fresh_start();
                    tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(n), v, true);
                    tg_tensor *y =
                        op == RED_MAX ? tg_max(tape, x, 0, false) : tg_min(tape, x, 0, false);
                    cr_assert(y != NULL, "%s", tg_tape_error(tape));
                    const double seed = 1;
                    backward_seed(y, &seed);
                    double want_y, want_dx[LANE_MAX];
                    if (dt == TG_F32) {
                        float xf[LANE_MAX], yf, dyf = 1, dxf[LANE_MAX];
                        for (size_t k = 0; k < n; k++)
                            xf[k] = (float)v[k];
                        lane_float(op, xf, 1, n, &yf, &dyf, 0, dxf);
                        want_y = yf;
                        for (size_t k = 0; k < n; k++)
                            want_dx[k] = dxf[k];
                    } else {
                        double dyd = 1;
                        lane_double(op, v, 1, n, &want_y, &dyd, 0, want_dx);
                    }
                    cr_assert(same_or_both_nan(tg_tensor_item(y), want_y),
                              "%s op %d n %zu case %d: y = %a, not %a", tg_dtype_name(dt), op, n, c,
                              tg_tensor_item(y), want_y);
                    for (size_t k = 0; k < n; k++)
                        cr_assert(same_or_both_nan(tg_tensor_grad_get(x, k), want_dx[k]),
                                  "%s op %d n %zu case %d: dx[%zu] = %a, not %a", tg_dtype_name(dt),
                                  op, n, c, k, tg_tensor_grad_get(x, k), want_dx[k]);
                }
}

/* An empty axis with elements after it: sum 0, mean NaN (0 / 0), prod 1, logsumexp -inf. */
Test(ops, reductions_over_an_empty_inner_axis)
{
    for (int di = 0; di < 2; di++) {
        fresh_start();
        tg_tensor *x = own_leaf(DTYPES[di], 3, TS_SHAPE(2, 0, 3), NULL, false);
        EXPECT_VALUES("sum", tg_sum(tape, x, 1, false), 0, 0, 0, 0, 0, 0);
        EXPECT_VALUES("prod", tg_prod(tape, x, 1, false), 1, 1, 1, 1, 1, 1);
        tg_tensor *m = tg_mean(tape, x, 1, false), *l = tg_logsumexp(tape, x, 1, false);
        cr_assert(m && l, "%s", tg_tape_error(tape));
        for (size_t i = 0; i < 6; i++)
            cr_expect(isnan(tg_tensor_get(m, i)) && tg_tensor_get(l, i) == -INFINITY,
                      "[%zu]: mean %g, logsumexp %g", i, tg_tensor_get(m, i), tg_tensor_get(l, i));
    }
}

/* Along the last axis too (contiguous lanes, whose loops vectorize): lanes of 37 elements,
 * longer than two vectors of 16 floats, with a remainder. */
Test(ops, reductions_along_inner_axes_match_lane_by_lane)
{
    enum { A = 3, N = 5, B = 37, COUNT = A * N * B };
    const double specials[8] = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1.0, 1.0, -2.5};
    tg_tensor *(*const fns[])(tg_tape *, tg_tensor *, int, bool) = {
        tg_sum, tg_mean, tg_max, tg_min, tg_prod, tg_logsumexp, NULL, NULL};
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = DTYPES[di];
        for (int set = 0; set < 3; set++) {
            double v[COUNT]; /* tenths in [-3.05, 3.25), whose sums round; set 1: every 8th
                              * special; set 2: NaN at every even index, so that along each
                              * axis some lanes hold two (the first is the pick) */
            for (size_t i = 0; i < COUNT; i++)
                v[i] = set == 1 && i % 8 == 3   ? specials[(i / 8) % 8]
                       : set == 2 && i % 2 == 0 ? NAN
                                                : (double)((i * 37) % 64) / 10 - 3.05;
            for (int op = RED_SUM; op <= RED_LOG_SOFTMAX; op++) {
                for (int axis = 0; axis < 3; axis++) {
                    fresh_start();
                    tg_tensor *x = own_leaf(dt, 3, TS_SHAPE(A, N, B), v, true);
                    tg_tensor *y = op == RED_SOFTMAX       ? tg_softmax(tape, x, axis)
                                   : op == RED_LOG_SOFTMAX ? tg_log_softmax(tape, x, axis)
                                                           : fns[op](tape, x, axis, false);
                    cr_assert(y != NULL, "%s", tg_tape_error(tape));
                    const size_t ny = tg_tensor_numel(y), n = TS_SHAPE(A, N, B)[axis];
                    const size_t inner = axis == 0 ? N * B : axis == 1 ? B : 1;
                    double seed[COUNT], want_y[COUNT], want_dx[COUNT];
                    for (size_t j = 0; j < ny; j++)
                        seed[j] = (double)(j % 5) - 2 + 0.25;
                    backward_seed(y, seed);
                    const bool lanes_out = op >= RED_SOFTMAX; /* y has x's shape */
                    for (size_t o = 0; o < COUNT / (n * inner); o++)
                        for (size_t i = 0; i < inner; i++) {
                            const size_t at = o * n * inner + i,
                                         yat = lanes_out ? at : o * inner + i;
                            const size_t dst = lanes_out ? inner : 0;
                            if (dt == TG_F32) {
                                float xf[COUNT], yf[COUNT], dyf[COUNT], dxf[COUNT];
                                for (size_t j = 0; j < COUNT; j++)
                                    xf[j] = (float)v[j], dyf[j] = (float)seed[j];
                                lane_float(op, xf + at, inner, n, yf + at, dyf + yat, dst,
                                           dxf + at);
                                for (size_t k = 0; k < n; k++)
                                    want_dx[at + k * inner] = dxf[at + k * inner];
                                for (size_t k = 0; k < (lanes_out ? n : 1); k++)
                                    want_y[yat + k * inner] = yf[at + k * inner];
                            } else {
                                double yd[COUNT], dxd[COUNT];
                                lane_double(op, v + at, inner, n, yd + at, seed + yat, dst,
                                            dxd + at);
                                for (size_t k = 0; k < n; k++)
                                    want_dx[at + k * inner] = dxd[at + k * inner];
                                for (size_t k = 0; k < (lanes_out ? n : 1); k++)
                                    want_y[yat + k * inner] = yd[at + k * inner];
                            }
                        }
                    for (size_t j = 0; j < ny; j++)
                        cr_assert(same_or_both_nan(tg_tensor_get(y, j), want_y[j]),
                                  "%s set %d op %d axis %d: y[%zu] = %a, not %a", tg_dtype_name(dt),
                                  set, op, axis, j, tg_tensor_get(y, j), want_y[j]);
                    for (size_t j = 0; j < COUNT; j++)
                        cr_assert(same_or_both_nan(tg_tensor_grad_get(x, j), want_dx[j]),
                                  "%s set %d op %d axis %d: dx[%zu] = %a, not %a",
                                  tg_dtype_name(dt), set, op, axis, j, tg_tensor_grad_get(x, j),
                                  want_dx[j]);
                }
            }
        }
    }
}

/* A contiguous run of terms (a lane along the last axis, or every element) sums in blocks of
 * 32768 added in order, each block 16 ways (run_sum_f32, run_sum_f64): for sums over all axes
 * short and long (from 65536 elements the blocks go over the pool), and along the one axis of a
 * vector, which gives the same bits; mean is that sum over n. Lengths around 16 and the block
 * size. */
Test(ops, contiguous_sums_run_sixteen_ways)
{
    const size_t lengths[] = {1, 15, 16, 17, 37, 1000, 32768, 32769, 65541, 100003};
    enum { MAX_N = 100003 };
    double *v = malloc(MAX_N * sizeof *v);
    cr_assert(v);
    for (size_t k = 0; k < MAX_N; k++) /* sevenths: every partial sum rounds */
        v[k] = (double)((k * 37) % 1000) / 7 - 60;
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
        for (int di = 0; di < 2; di++) {
            const size_t n = lengths[li];
            const tg_dtype dt = DTYPES[di];
            const double want = dt == TG_F32 ? (double)run_sum_f32(0, v, n) : run_sum_f64(0, v, n);
            const double want_mean =
                dt == TG_F32 ? (double)((float)want / (float)n) : want / (double)n;
            fresh_start();
            tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(n), v, false);
            const double all = tg_tensor_item(tg_sum(tape, x, TG_ALL_AXES, false)),
                         along = tg_tensor_item(tg_sum(tape, x, 0, false)),
                         mean = tg_tensor_item(tg_mean(tape, x, TG_ALL_AXES, false));
            cr_assert_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
            cr_expect_eq(all, want, "%s n %zu: sum %a, not %a", tg_dtype_name(dt), n, all, want);
            cr_expect_eq(along, want, "%s n %zu: sum along 0 %a, not %a", tg_dtype_name(dt), n,
                         along, want);
            cr_expect_eq(mean, want_mean, "%s n %zu: mean %a, not %a", tg_dtype_name(dt), n, mean,
                         want_mean);
        }
    free(v);
}

/* Long lanes in f32: 32768 values of 512 (summing to 2^24) then 32768 ones. One running sum
 * stops at 2^24, where adding 1 rounds back to it, and returned 16777216; summed in blocks of
 * 32768 (as a sum over all axes is) each block is exact: 2^24 + 2^15. Likewise the exponentials
 * of logsumexp and softmax: 32768 zeros then 32768 of -7, whose e^-7 each is below half an ulp
 * of 32768. The same lane along axis 0 of a vector, along axis 0 of an (N, 1) matrix (nothing
 * after the axis but a 1: contiguous too) and of an (N, 2) one (two lanes, taken row by row),
 * and over all axes. */
Test(ops, long_f32_lanes_sum_in_blocks)
{
    enum { H = 32768, N = 2 * H };
    double *v = malloc(2 * N * sizeof *v), *w = malloc(2 * N * sizeof *w);
    cr_assert(v && w);
    for (size_t k = 0; k < 2 * N; k++) { /* the (N, 2) matrices repeat each element */
        v[k] = k / 2 < H ? 512 : 1;
        w[k] = k / 2 < H ? 0 : -7;
    }
    const double *v1 = v, *w1 = w; /* the vectors: every other element */
    static double vv[N], ww[N];
    for (size_t k = 0; k < N; k++)
        vv[k] = v1[2 * k], ww[k] = w1[2 * k];
    const double sum = 16777216.0 + 32768.0, lse = log((double)H) + log1p(exp(-7.0));
    const double p0 = 1 / (H * (1 + exp(-7.0))); /* softmax at a zero */
    tg_tape_reset(tape);
    tg_tensor *x = own_leaf(TG_F32, 1, TS_SHAPE(N), vv, false);
    tg_tensor *xc = own_leaf(TG_F32, 2, TS_SHAPE(N, 1), vv, false);
    tg_tensor *x2 = own_leaf(TG_F32, 2, TS_SHAPE(N, 2), v, false);
    tg_tensor *z = own_leaf(TG_F32, 1, TS_SHAPE(N), ww, false);
    tg_tensor *zc = own_leaf(TG_F32, 2, TS_SHAPE(N, 1), ww, false);
    tg_tensor *z2 = own_leaf(TG_F32, 2, TS_SHAPE(N, 2), w, false);
    cr_expect_eq(tg_tensor_item(tg_sum(tape, x, TG_ALL_AXES, false)), sum);
    cr_expect_eq(tg_tensor_item(tg_sum(tape, x, 0, false)), sum);
    cr_expect_eq(tg_tensor_get(tg_sum(tape, xc, 0, false), 0), sum, "(N, 1)");
    cr_expect_eq(tg_tensor_get(tg_sum(tape, x2, 0, false), 1), sum, "by rows");
    cr_expect_eq(tg_tensor_item(tg_mean(tape, x, 0, false)), sum / N);
    cr_expect_eq(tg_tensor_get(tg_mean(tape, x2, 0, false), 0), sum / N, "mean by rows");
    ts_assert_close(tg_tensor_item(tg_logsumexp(tape, z, 0, false)), lse, 0, 1e-6, "lse axis 0");
    ts_assert_close(tg_tensor_item(tg_logsumexp(tape, z, TG_ALL_AXES, false)), lse, 0, 1e-6,
                    "lse all");
    ts_assert_close(tg_tensor_get(tg_logsumexp(tape, zc, 0, false), 0), lse, 0, 1e-6, "lse (N, 1)");
    ts_assert_close(tg_tensor_get(tg_logsumexp(tape, z2, 0, false), 1), lse, 0, 1e-6,
                    "lse by rows");
    ts_assert_close(tg_tensor_get(tg_softmax(tape, z, 0), 0), p0, 0, 1e-5, "softmax");
    ts_assert_close(tg_tensor_get(tg_softmax(tape, z2, 0), 1), p0, 0, 1e-5, "softmax by rows");
    ts_assert_close(tg_tensor_get(tg_log_softmax(tape, zc, 0), 0), -lse, 0, 1e-6, "log_softmax");
    ts_assert_close(tg_tensor_get(tg_log_softmax(tape, z2, 0), 0), -lse, 0, 1e-6,
                    "log_softmax by rows");
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    /* log_softmax's VJP sums dy along the lane: dx = dy - e^y sum(dy), with dy the 512s and
     * ones above (sum 2^24 + 2^15) at the zeros and -7s: dx[0] = 512 - 513 / (1 + e^-7); and
     * logsumexp's, dx = dy e^(x - y) with dy = 1, is softmax: p0 at a zero */
    const double dx0 = 512 - 513 / (1 + exp(-7.0));
    for (int by_rows = 0; by_rows < 2; by_rows++) {
        tg_tape_reset(tape);
        tg_tensor *zg = own_leaf(TG_F32, 1 + by_rows, by_rows ? TS_SHAPE(N, 2) : TS_SHAPE(N),
                                 by_rows ? w : ww, true);
        backward_seed(tg_log_softmax(tape, zg, 0), by_rows ? v : vv);
        ts_assert_close(tg_tensor_grad_get(zg, 0), dx0, 1e-3, 0, "log_softmax vjp %d", by_rows);
        tg_tape_reset(tape);
        tg_tensor *zs = own_leaf(TG_F32, 1 + by_rows, by_rows ? TS_SHAPE(N, 2) : TS_SHAPE(N),
                                 by_rows ? w : ww, true);
        backward(tg_sum(tape, tg_logsumexp(tape, zs, 0, false), TG_ALL_AXES, false));
        ts_assert_close(tg_tensor_grad_get(zs, 0), p0, 0, 1e-5, "logsumexp vjp %d", by_rows);
    }
    free(v);
    free(w);
}
