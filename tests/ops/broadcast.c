/* broadcast.c (test_ops): the elementwise binary ops on same shapes and with fan-out, and
 * broadcasting: output shapes, values, and VJPs summed over the broadcast axes. */
#include "ops.h"

/* ---- elementwise binary and broadcasting ---------------------------------------------------- */

static tg_tensor *apply_binary(tg_op op, tg_tensor *a, tg_tensor *b)
{
    return ts_apply(tape, op, a, b, NULL);
}

Test(ops, binary_same_shape)
{
    static const double A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {0.5, -1, 2, 4, -0.25, 8};
    static const double DY[6] = {1, -2, 0.5, 3, -1, 2};
    static const struct {
        tg_op op;
        double y[6], da[6], db[6];
    } cases[] = {
        {TG_OP_ADD, {1.5, 1, 5, 8, 4.75, 14}, {1, -2, 0.5, 3, -1, 2}, {1, -2, 0.5, 3, -1, 2}},
        {TG_OP_SUB, {0.5, 3, 1, 0, 5.25, -2}, {1, -2, 0.5, 3, -1, 2}, {-1, 2, -0.5, -3, 1, -2}},
        {TG_OP_MUL,
         {0.5, -2, 6, 16, -1.25, 48},
         {0.5, 2, 1, 12, 0.25, 16},
         {1, -4, 1.5, 12, -5, 12}},
        {TG_OP_DIV,
         {2, -2, 1.5, 1, -20, 0.75},
         {2, 2, 0.25, 0.75, 4, 0.25},
         {-4, 4, -0.375, -0.75, 80, -0.1875}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            const char *name = tg_op_name(cases[ci].op);
            tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 3), A, true);
            tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(2, 3), B, true);
            tg_tensor *y = apply_binary(cases[ci].op, a, b);
            expect_shape(name, y, 2, TS_SHAPE(2, 3));
            cr_expect_eq(tg_tensor_op(y), (int)cases[ci].op);
            expect_elems(name, y, cases[ci].y, 6, false);
            backward_seed(y, DY);
            expect_elems(name, a, cases[ci].da, 6, true);
            expect_elems(name, b, cases[ci].db, 6, true);
        }
    }
}

Test(ops, binary_fan_out_same_tensor_both_sides)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        backward_seed(tg_mul(tape, x, x), TS_VALS(1, 2, -1));
        EXPECT_GRAD("mul(x, x): 2x dy", x, 2, -8, -6);
        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *s = tg_add(tape, u, u);
        EXPECT_VALUES("add(x, x)", s, 2, -4, 6);
        backward_seed(s, TS_VALS(1, 2, -1));
        EXPECT_GRAD("add(x, x): 2 dy", u, 2, 4, -2);
        tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *d = tg_sub(tape, v, v);
        EXPECT_VALUES("sub(x, x)", d, 0, 0, 0);
        backward_seed(d, TS_VALS(1, 2, -1));
        EXPECT_GRAD("sub(x, x)", v, 0, 0, 0);
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *q = tg_div(tape, w, w);
        EXPECT_VALUES("div(x, x)", q, 1, 1, 1);
        backward_seed(q, TS_VALS(1, 2, -1));
        EXPECT_GRAD("div(x, x)", w, 0, 0, 0);
    }
}

Test(ops, broadcast_output_shapes)
{
    static const struct {
        int ra;
        size_t a[4];
        int rb;
        size_t b[4];
        int ry;
        size_t y[4];
    } cases[] = {
        {3, {2, 1, 4}, 2, {3, 1}, 3, {2, 3, 4}},
        {2, {3, 1}, 3, {2, 1, 4}, 3, {2, 3, 4}},
        {2, {3, 1}, 2, {1, 4}, 2, {3, 4}},
        {3, {2, 3, 4}, 1, {4}, 3, {2, 3, 4}},
        {1, {4}, 3, {2, 3, 4}, 3, {2, 3, 4}},
        {0, {0}, 2, {2, 3}, 2, {2, 3}},
        {2, {2, 3}, 0, {0}, 2, {2, 3}},
        {0, {0}, 0, {0}, 0, {0}},
        {1, {1}, 0, {0}, 1, {1}},
        {2, {1, 1}, 1, {3}, 2, {1, 3}},
        {4, {2, 1, 3, 1}, 3, {4, 1, 5}, 4, {2, 4, 3, 5}},
        {2, {0, 3}, 1, {3}, 2, {0, 3}},
        {2, {0, 3}, 2, {1, 1}, 2, {0, 3}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            tg_tensor *a = own(tg_tensor_zeros(dt, cases[ci].ra, cases[ci].a));
            tg_tensor *b = own(tg_tensor_ones(dt, cases[ci].rb, cases[ci].b));
            tg_tensor_set_requires_grad(a, true);
            tg_tensor_set_requires_grad(b, true);
            char sa[64], sb[64], what[160];
            snprintf(what, sizeof what, "%s op %s", shape_str(sa, sizeof sa, a),
                     shape_str(sb, sizeof sb, b));
            for (tg_op op = TG_OP_ADD; op <= TG_OP_DIV; op++) {
                tg_tensor *y = apply_binary(op, a, b);
                expect_shape(what, y, cases[ci].ry, cases[ci].y);
                /* The VJPs give each input a gradient of its own shape. */
                tg_tensor *g[2] = {NULL, NULL};
                tg_tensor *xs[2] = {a, b};
                tg_status st = tg_grad(tape, tg_sum(tape, y, TG_ALL_AXES, false), xs, 2, g);
                cr_assert_eq(st, TG_OK, "%s: grad: %s", what, tg_last_error());
                expect_shape(what, g[0], cases[ci].ra, cases[ci].a);
                expect_shape(what, g[1], cases[ci].rb, cases[ci].b);
                tg_tensor_free(g[0]);
                tg_tensor_free(g[1]);
            }
        }
    }
}

Test(ops, broadcast_values_and_vjp_sum_over_broadcast_axes)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* [2,1,4] + [3,1] -> [2,3,4]: y[i,j,k] = (10i + k) + 100j */
        tg_tensor *a =
            own_leaf(dt, 3, TS_SHAPE(2, 1, 4), TS_VALS(0, 1, 2, 3, 10, 11, 12, 13), true);
        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(0, 100, 200), true);
        tg_tensor *y = tg_add(tape, a, b);
        EXPECT_SHAPE("[2,1,4] + [3,1]", y, 3, 2, 3, 4);
        for (size_t i = 0; i < 2; i++)
            for (size_t j = 0; j < 3; j++)
                for (size_t k = 0; k < 4; k++) {
                    double got = tg_tensor_get(y, (i * 3 + j) * 4 + k);
                    cr_expect_eq(got, 10.0 * (double)i + (double)k + 100.0 * (double)j,
                                 "y[%zu,%zu,%zu] = %g", i, j, k, got);
                }
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,1,4] + [3,1]: da sums over the 3", a, 3, 3, 3, 3, 3, 3, 3, 3);
        EXPECT_GRAD("[2,1,4] + [3,1]: db sums over 2x4", b, 8, 8, 8);

        /* [1,4] + [3,1] with a seed: da[k] = column sums of dy, db[j] = row sums. */
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 4), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(10, 20, 30), true);
        tg_tensor *rc = tg_add(tape, r, c);
        EXPECT_VALUES("[1,4] + [3,1]", rc, 11, 12, 13, 14, 21, 22, 23, 24, 31, 32, 33, 34);
        backward_seed(rc, TS_VALS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
        EXPECT_GRAD("[1,4] + [3,1]: da", r, 15, 18, 21, 24);
        EXPECT_GRAD("[1,4] + [3,1]: db", c, 10, 26, 42);

        /* [2,3] (op) [3]: sub, mul, div with exact gradients. */
        tg_tensor *m = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *ys = tg_sub(tape, m, v);
        EXPECT_VALUES("[2,3] - [3]", ys, 0, 0, -1, 3, 3, 2);
        backward(tg_sum(tape, ys, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] - [3]: da", m, 1, 1, 1, 1, 1, 1);
        EXPECT_GRAD("[2,3] - [3]: db", v, -2, -2, -2);

        tg_tensor *m2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v2 = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *ym = tg_mul(tape, m2, v2);
        EXPECT_VALUES("[2,3] * [3]", ym, 1, 4, 12, 4, 10, 24);
        backward(tg_sum(tape, ym, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] * [3]: da = b", m2, 1, 2, 4, 1, 2, 4);
        EXPECT_GRAD("[2,3] * [3]: db = column sums of a", v2, 5, 7, 9);

        tg_tensor *m3 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *v3 = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 4), true);
        tg_tensor *yd = tg_div(tape, m3, v3);
        EXPECT_VALUES("[2,3] / [3]", yd, 1, 1, 0.75, 4, 2.5, 1.5);
        backward(tg_sum(tape, yd, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3] / [3]: da = 1/b", m3, 1, 0.5, 0.25, 1, 0.5, 0.25);
        EXPECT_GRAD("[2,3] / [3]: db = -sum a / b^2", v3, -5, -1.75, -0.5625);

        /* 0-d with [2,3], both orders, with a seed. */
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *t = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *st = tg_mul(tape, s, t);
        EXPECT_SHAPE("0-d * [2,3]", st, 2, 2, 3);
        EXPECT_VALUES("0-d * [2,3]", st, 2, 4, 6, 8, 10, 12);
        backward_seed(st, TS_VALS(1, 1, 1, 1, 1, -1));
        EXPECT_GRAD("0-d * [2,3]: ds = sum(dy * t)", s, 9);
        EXPECT_GRAD("0-d * [2,3]: dt = dy * s", t, 2, 2, 2, 2, 2, -2);
        tg_tensor *s2 = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *t2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *ts = tg_sub(tape, t2, s2);
        EXPECT_VALUES("[2,3] - 0-d", ts, -1, 0, 1, 2, 3, 4);
        backward_seed(ts, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("[2,3] - 0-d: ds", s2, -21);
        EXPECT_GRAD("[2,3] - 0-d: dt", t2, 1, 2, 3, 4, 5, 6);

        /* [2,3,4] + [4]: db sums over 2x3. */
        size_t sh[3] = {2, 3, 4};
        tg_tensor *big = iota(dt, 3, sh, 0, 1, true);
        tg_tensor *bias = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(0.5, -1, 2, 0), true);
        tg_tensor *yb = tg_add(tape, big, bias);
        cr_expect_eq(tg_tensor_get(yb, 23), 23.0);
        cr_expect_eq(tg_tensor_get(yb, 5), 4.0);
        backward(tg_sum(tape, yb, TG_ALL_AXES, false));
        EXPECT_GRAD("[2,3,4] + [4]: db", bias, 6, 6, 6, 6);
    }
}

/* The run of terms a single element (0-d, or of shape (1)) gathers from a tensor it is broadcast
 * against: in blocks of 32768, each summed 16 ways, the blocks' sums in order, with the gradient
 * so far ahead of the first running sum's terms. 32768 values of 512 then 32768 ones, times
 * w = 1, give dw = 2^24 + 2^15 exactly in f32, where one running sum stops at 2^24. With w used
 * twice, the second product's terms are added first (backward walks the recording in reverse),
 * and the first's then start from their sum. */
Test(ops, broadcast_scalar_vjp_sums_in_blocks)
{
    enum { H = 32768, N = 2 * H };
    static double big[N], v[70001], u[70001];
    for (size_t k = 0; k < N; k++)
        big[k] = k < H ? 512 : 1;
    for (size_t k = 0; k < 70001; k++) { /* sevenths: the sums round */
        v[k] = (double)((k * 37) % 1000) / 7 - 60;
        u[k] = (double)((k * 53) % 999) / 7 - 50;
    }
    fresh_start();
    tg_tensor *x = own_leaf(TG_F32, 1, TS_SHAPE(N), big, false);
    tg_tensor *w = own_leaf(TG_F32, 1, TS_SHAPE(1), TS_VALS(1), true);
    tg_tensor *w0 = own(tg_tensor_scalar(TG_F32, 1));
    cr_assert(tg_tensor_set_requires_grad(w0, true) == TG_OK);
    backward(tg_add(tape, tg_sum(tape, tg_mul(tape, w, x), TG_ALL_AXES, false),
                    tg_sum(tape, tg_mul(tape, x, w0), TG_ALL_AXES, false)));
    cr_expect_eq(tg_tensor_grad_get(w, 0), 16777216.0 + 32768.0, "(1): %a",
                 tg_tensor_grad_get(w, 0));
    cr_expect_eq(tg_tensor_grad_get(w0, 0), 16777216.0 + 32768.0, "0-d: %a",
                 tg_tensor_grad_get(w0, 0));
    const size_t lengths[] = {1, 15, 16, 17, 37, 1000, 32768, 32769, 70001};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
        for (int di = 0; di < 2; di++) {
            const size_t n = lengths[li];
            const tg_dtype dt = DTYPES[di];
            fresh_start();
            tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(n), v, false);
            tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(n), u, false);
            tg_tensor *s = own_leaf(dt, 1, TS_SHAPE(1), TS_VALS(1), true);
            /* s a, then b s (in that order on the tape): s is a's first input and b's second */
            tg_tensor *first = tg_sum(tape, tg_mul(tape, s, a), TG_ALL_AXES, false);
            tg_tensor *second = tg_sum(tape, tg_mul(tape, b, s), TG_ALL_AXES, false);
            backward(tg_add(tape, first, second));
            const double want = dt == TG_F32 ? (double)run_sum_f32(run_sum_f32(0, u, n), v, n)
                                             : run_sum_f64(run_sum_f64(0, u, n), v, n);
            cr_expect_eq(tg_tensor_grad_get(s, 0), want, "%s n %zu: %a, not %a", tg_dtype_name(dt),
                         n, tg_tensor_grad_get(s, 0), want);
        }
}

/* where(c, a, b) with a or b a single element: its gradient takes dy where its side is picked,
 * gathered as the scalar's above (0 where the other side is picked), after its gradient so far.
 * In f32, 32768 of 512 then 32768 ones all picked give 2^24 + 2^15 exactly. With cond alternating
 * in runs of 3, and the scalar also times u (recorded after, so walked first), the order against
 * the reference at 17 to 70001 elements, for either side. */
Test(ops, where_scalar_branch_vjp_sums_in_blocks)
{
    enum { H = 32768, N = 2 * H, M = 70001 };
    static double big[N], none[N], v[M], u[M], cond[M], picked[M];
    for (size_t k = 0; k < N; k++)
        big[k] = k < H ? 512 : 1, none[k] = 0;
    for (size_t k = 0; k < M; k++) {
        v[k] = (double)((k * 37) % 1000) / 7 - 60;
        u[k] = (double)((k * 53) % 999) / 7 - 50;
        cond[k] = (double)(k / 3 % 2);
    }
    fresh_start();
    tg_tensor *c = own_leaf(TG_F32, 1, TS_SHAPE(N), none, false);
    tg_tensor *x = own_leaf(TG_F32, 1, TS_SHAPE(N), none, false);
    tg_tensor *s = own_leaf(TG_F32, 0, NULL, TS_VALS(1), true);
    backward_seed(tg_where(tape, c, x, s), big);
    cr_expect_eq(tg_tensor_grad_get(s, 0), 16777216.0 + 32768.0, "%a", tg_tensor_grad_get(s, 0));
    const size_t lengths[] = {17, 1000, 70001};
    for (size_t li = 0; li < 3; li++)
        for (int di = 0; di < 4; di++) { /* the scalar as b, then as a */
            const size_t n = lengths[li];
            const tg_dtype dt = DTYPES[di % 2];
            const bool as_b = di < 2;
            fresh_start();
            tg_tensor *cc = own_leaf(dt, 1, TS_SHAPE(n), cond, false);
            tg_tensor *vv = own_leaf(dt, 1, TS_SHAPE(n), v, false);
            tg_tensor *uu = own_leaf(dt, 1, TS_SHAPE(n), u, false);
            tg_tensor *ss = own_leaf(dt, 1, TS_SHAPE(1), TS_VALS(1), true);
            /* dy of where is v (1 times v) */
            tg_tensor *w = as_b ? tg_where(tape, cc, cc, ss) : tg_where(tape, cc, ss, cc);
            tg_tensor *first = tg_sum(tape, tg_mul(tape, w, vv), TG_ALL_AXES, false);
            tg_tensor *second = tg_sum(tape, tg_mul(tape, ss, uu), TG_ALL_AXES, false);
            backward(tg_add(tape, first, second));
            for (size_t k = 0; k < n; k++) /* b takes dy where cond is 0, a where it is not */
                picked[k] = (cond[k] != 0) != as_b ? v[k] : 0;
            const double want = dt == TG_F32 ? (double)run_sum_f32(run_sum_f32(0, u, n), picked, n)
                                             : run_sum_f64(run_sum_f64(0, u, n), picked, n);
            cr_expect_eq(tg_tensor_grad_get(ss, 0), want, "%s n %zu %s: %a, not %a",
                         tg_dtype_name(dt), n, as_b ? "b" : "a", tg_tensor_grad_get(ss, 0), want);
        }
}

/* A VJP into an input broadcast along the innermost axis (a column, (R, 1) against (R, C)) adds
 * each row's C terms into one element: as a contiguous run of terms is summed (src/ops/op_impl.h,
 * TG_SUM_WAYS), 16 running sums, the j-th over the terms j, j + 16, ..., added in order, in the
 * dtype's arithmetic, so the gradient is that sum to the bit (reference: run_sum_f32 and
 * run_sum_f64). Terms that round in f32 make the order matter. */
Test(ops, broadcast_column_vjp_sums_each_row_sixteen_ways)
{
    enum { R = 3, C = 1000 };
    static double xv[R * C], dy[R * C];
    for (size_t i = 0; i < R * C; i++) {
        xv[i] = 0.1 + (double)((i * 37) % 101) / 7;
        dy[i] = 1 + (double)(i % 13) / 3;
    }
    for (int di = 0; di < 4; di++) { /* the column second, then first */
        fresh_start();
        const tg_dtype dt = DTYPES[di % 2];
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(R, C), xv, true);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(R, 1), TS_VALS(0.5, -1.25, 3), true);
        backward_seed(di < 2 ? tg_mul(tape, x, c) : tg_mul(tape, c, x), dy);
        for (size_t r = 0; r < R; r++) {
            double terms[C]; /* f32's products exact in double, rounded to f32 by run_sum_f32 */
            for (size_t j = 0; j < C; j++)
                terms[j] = dt == TG_F32 ? (double)(float)dy[r * C + j] * (float)xv[r * C + j]
                                        : dy[r * C + j] * xv[r * C + j];
            const double want =
                dt == TG_F32 ? (double)run_sum_f32(0, terms, C) : run_sum_f64(0, terms, C);
            cr_expect_eq(tg_tensor_grad_get(c, r), want, "%s row %zu: %a, not %a",
                         tg_dtype_name(dt), r, tg_tensor_grad_get(c, r), want);
        }
    }
}
