/* matmul.c (test_ops): matmul (2-D, batched, a zero inner dimension), transpose and
 * reshape (a view): values and VJPs. */
#include "ops.h"

/* ---- matmul, transpose, reshape ----------------------------------------------------------- */

Test(ops, matmul_2d_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(3, 2), TS_VALS(7, 8, 9, 10, 11, 12), true);
        tg_tensor *y = tg_matmul(tape, a, b);
        EXPECT_SHAPE("matmul", y, 2, 2, 2);
        EXPECT_VALUES("[2,3] @ [3,2]", y, 58, 64, 139, 154);
        backward_seed(y, TS_VALS(1, -1, 2, 0.5));
        EXPECT_GRAD("matmul da = dy b^T", a, -1, -1, -1, 18, 23, 28);
        EXPECT_GRAD("matmul db = a^T dy", b, 9, 1, 12, 0.5, 15, 0);

        tg_tensor *p = own_leaf(dt, 2, TS_SHAPE(1, 1), TS_VALS(3), true);
        tg_tensor *q = own_leaf(dt, 2, TS_SHAPE(1, 1), TS_VALS(-2), true);
        tg_tensor *pq = tg_matmul(tape, p, q);
        EXPECT_VALUES("1x1x1", pq, -6);
        backward(pq);
        EXPECT_GRAD("1x1x1 da", p, -2);
        EXPECT_GRAD("1x1x1 db", q, 3);

        /* Outer product (3,1) @ (1,2) and inner product (1,3) @ (3,1). */
        tg_tensor *u = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(1, 2, 3), true);
        tg_tensor *v = own_leaf(dt, 2, TS_SHAPE(1, 2), TS_VALS(4, 5), true);
        tg_tensor *uv = tg_matmul(tape, u, v);
        EXPECT_SHAPE("outer", uv, 2, 3, 2);
        EXPECT_VALUES("outer", uv, 4, 5, 8, 10, 12, 15);
        backward(tg_sum(tape, uv, TG_ALL_AXES, false));
        EXPECT_GRAD("outer du", u, 9, 9, 9);
        EXPECT_GRAD("outer dv", v, 6, 6);
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 3), TS_VALS(1, 2, 3), false);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(3, 1), TS_VALS(4, 5, 6), false);
        tg_tensor *rc = tg_matmul(tape, r, c);
        EXPECT_VALUES("inner", rc, 32);
        cr_expect(!tg_tensor_requires_grad(rc));

        /* Fan-out: d sum(x @ x) / dx[a,b] = rowsum(x)[b] + colsum(x)[a]. */
        tg_tensor *s = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *ss = tg_matmul(tape, s, s);
        EXPECT_VALUES("x @ x", ss, 7, 10, 15, 22);
        backward(tg_sum(tape, ss, TG_ALL_AXES, false));
        EXPECT_GRAD("x @ x", s, 3 + 4, 7 + 4, 3 + 6, 7 + 6);
    }
}

Test(ops, matmul_batched_and_zero_inner)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(1, 2, 3, 4, 0, 1, -1, 2), true);
        tg_tensor *b = own_leaf(dt, 3, TS_SHAPE(2, 2, 1), TS_VALS(1, 1, 2, 3), true);
        tg_tensor *y = tg_matmul(tape, a, b);
        EXPECT_SHAPE("batched", y, 3, 2, 2, 1);
        EXPECT_VALUES("batched", y, 3, 7, 3, 4);
        backward(tg_sum(tape, y, TG_ALL_AXES, false));
        EXPECT_GRAD("batched da", a, 1, 1, 1, 1, 2, 3, 2, 3);
        EXPECT_GRAD("batched db", b, 4, 6, -1, 3);

        /* Batched with a seed: batch 1 gets dy 0, so its gradients are 0. */
        tg_tensor *a2 = own_leaf(dt, 3, TS_SHAPE(2, 1, 2), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *b2 = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(1, 0, 0, 1, 2, 0, 0, 2), true);
        tg_tensor *y2 = tg_matmul(tape, a2, b2);
        EXPECT_VALUES("batched (2,1,2)@(2,2,2)", y2, 1, 2, 6, 8);
        backward_seed(y2, TS_VALS(1, -1, 0, 0));
        EXPECT_GRAD("batched da2", a2, 1, -1, 0, 0);
        EXPECT_GRAD("batched db2", b2, 1, -1, 2, -2, 0, 0, 0, 0);

        /* K = 0: the product is all zeros (not garbage). */
        tg_tensor *e1 = own(tg_tensor_zeros(dt, 2, TS_SHAPE(2, 0)));
        tg_tensor *e2 = own(tg_tensor_zeros(dt, 2, TS_SHAPE(0, 3)));
        tg_tensor *ez = tg_matmul(tape, e1, e2);
        EXPECT_SHAPE("K = 0", ez, 2, 2, 3);
        EXPECT_VALUES("K = 0", ez, 0, 0, 0, 0, 0, 0);
    }
}

Test(ops, transpose_values_and_vjp)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *t = tg_transpose(tape, x);
        EXPECT_SHAPE("transpose", t, 2, 3, 2);
        EXPECT_VALUES("transpose", t, 1, 4, 2, 5, 3, 6);
        backward_seed(t, TS_VALS(10, 40, 20, 50, 30, 60));
        EXPECT_GRAD("transpose: dx = dy^T", x, 10, 20, 30, 40, 50, 60);
        tg_tensor *r = own_leaf(dt, 2, TS_SHAPE(1, 4), TS_VALS(1, 2, 3, 4), false);
        tg_tensor *tr = tg_transpose(tape, r);
        EXPECT_SHAPE("transpose row", tr, 2, 4, 1);
        EXPECT_VALUES("transpose row", tr, 1, 2, 3, 4);
        tg_tensor *tt = tg_transpose(tape, tg_transpose(tape, x));
        EXPECT_VALUES("transpose twice", tt, 1, 2, 3, 4, 5, 6);
    }
}

/* The gradients that pass dy on unchanged, long enough to go over the pool: on 1 and 3 threads,
 * reshape's dx is dy and concat's (x twice along axis 0) the sum of its two blocks, exactly. */
Test(ops, reshape_and_concat_gradients_on_the_pool_are_dy)
{
    const size_t n = 3 * 70000, xs[2] = {3, 70000}, cs[2] = {6, 70000}, flat[1] = {n};
    double *v = malloc(2 * n * sizeof *v);
    cr_assert(v);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (size_t i = 0; i < 2 * n; i++)
        v[i] = 2 * tg_rng_uniform(&rng) - 1;
    tg_tensor *x = own_leaf(TG_F32, 2, xs, v, true);
    tg_tensor *dy = own_leaf(TG_F32, 1, flat, v, false), *dc = own_leaf(TG_F32, 2, cs, v, false);
    const float *DY = tg_tensor_data(dy), *DC = tg_tensor_data(dc);
    for (int threads = 1; threads <= 3; threads += 2) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        for (int op = 0; op < 2; op++) {
            tg_tape_reset(tape);
            tg_tensor_zero_grad(x);
            tg_tensor *y =
                op ? tg_concat(tape, (tg_tensor *[]){x, x}, 2, 0) : tg_reshape(tape, x, 1, flat);
            cr_assert_not_null(y, "%s", tg_tape_error(tape));
            cr_assert_eq(tg_backward_seed(tape, y, op ? dc : dy), TG_OK, "%s", tg_last_error());
            const float *dx = tg_tensor_grad_data(x);
            for (size_t i = 0; i < n; i++) {
                const float want = op ? DC[i] + DC[n + i] : DY[i];
                cr_assert(memcmp(&dx[i], &want, sizeof want) == 0,
                          "%s, %d threads: dx[%zu] is %a, not %a", op ? "concat" : "reshape",
                          threads, i, (double)dx[i], (double)want);
            }
        }
    }
    cr_assert_eq(tg_set_num_threads(1), TG_OK);
    free(v);
}

Test(ops, reshape_is_a_view)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *r = tg_reshape(tape, x, 2, TS_SHAPE(3, 2));
        EXPECT_SHAPE("reshape", r, 2, 3, 2);
        EXPECT_VALUES("reshape", r, 1, 2, 3, 4, 5, 6);
        cr_expect_eq(tg_tensor_data_const(r), tg_tensor_data_const(x), "reshape copied the values");
        backward_seed(r, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("reshape: dx = dy, same order", x, 1, 2, 3, 4, 5, 6);

        /* A view of a computed tensor, and through several reshapes. */
        tg_tensor *y = tg_scale(tape, x, 2.0);
        tg_tensor *f = tg_reshape(tape, y, 1, TS_SHAPE(6));
        cr_expect_eq(tg_tensor_data(f), tg_tensor_data(y));
        tg_tensor *g = tg_reshape(tape, f, 4, TS_SHAPE(1, 3, 1, 2));
        EXPECT_SHAPE("reshape 4-D", g, 4, 1, 3, 1, 2);
        EXPECT_VALUES("reshape of scale", g, 2, 4, 6, 8, 10, 12);

        /* 0-d <-> [1,1]. */
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(7), true);
        tg_tensor *s11 = tg_reshape(tape, s, 2, TS_SHAPE(1, 1));
        EXPECT_SHAPE("0-d -> [1,1]", s11, 2, 1, 1);
        tg_tensor *back = tg_reshape(tape, s11, 0, NULL);
        expect_shape("[1,1] -> 0-d", back, 0, NULL);
        EXPECT_VALUES("0-d round trip", back, 7);
        backward(tg_scale(tape, back, 3.0));
        EXPECT_GRAD("0-d round trip", s, 3);
        /* The shape argument is copied: changing it later changes nothing. */
        size_t dims[2] = {6, 1};
        tg_tensor *col = tg_reshape(tape, x, 2, dims);
        dims[0] = 99;
        EXPECT_SHAPE("shape copied", col, 2, 6, 1);
    }
}
