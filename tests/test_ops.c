/* test_ops.c: every op's forward values and VJP against hand-computed numbers, in f32 and f64;
 * the documented conventions at kinks (relu, abs, max ties, sqrt, log, pow, clamp); numerical
 * stability (sigmoid, logsumexp, softmax at +-1000); tanh's accuracy; broadcasting shapes and VJPs; reduction
 * shapes; matmul, transpose, reshape; detach, no-grad mode, constants; and the errors: status,
 * message, NULL result, and the first error kept on the tape.
 *
 * The parts (tests/ops/, built into this test): fixture.c (suite ops's fixture and the
 * helpers, declared in ops.h), unary.c, stability.c, broadcast.c, reduce.c, matmul.c,
 * errors.c, binary_math.c, math.c (the elementwise math against mpmath), index.c (the
 * tests by family). Here: the coverage test, the accumulation of VJPs over
 * every op, and detach, no-grad mode and constants. */
#include "ops/ops.h"

/* ---- coverage: every op has its exact tests here ------------------------------------------- */

/* The exact tests go by family: elementwise unary ops in unary_values_and_vjp (and kink_*,
 * stable_*), binary ops in binary_same_shape and broadcast_*, then matmul_*, transpose_*,
 * reshape_*, reduce_*, softmax_*; constants and detach have tests of their own; minimum,
 * maximum, atan2, pow_tensor, the comparisons, where, min and prod are in
 * ops/binary_math.c, the elementwise math in ops/math.c, indexing and joins in
 * ops/index.c, and the user-defined op, whose values are its callbacks', in
 * test_custom.c. Every op is applied through ts_apply (tg_apply), but the custom op through
 * tg_custom (tg_apply refuses it); every_op_records_through_apply runs apply_any (below) on
 * each op of the table and checks the node it records. */
static tg_tensor *apply_any(tg_op op, tg_tensor *a, tg_tensor *b);

Test(ops, every_op_records_through_apply)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        int arity = tg_op_arity((tg_op)op);
        cr_expect((arity >= 0 && arity <= 3) || arity == TG_VARIADIC, "op %s: arity %d",
                  tg_op_name((tg_op)op), arity);
        tg_tape_reset(tape);
        tg_tensor *x =
            own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(0.5, 1.25, 2, 0.75, 1.5, 3), true);
        tg_tensor *b = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1.5, 0.5, 2, 1, 0.25, 4), true);
        tg_tensor *y = op == TG_OP_CONST ? tg_constant(tape, TG_F64, 0, NULL, TS_VALS(1))
                                         : apply_any((tg_op)op, x, b);
        cr_expect(y != NULL && tg_tensor_op(y) == op, "op %s: recorded %d (%s)",
                  tg_op_name((tg_op)op), y ? tg_tensor_op(y) : -1, tg_tape_error(tape));
    }
    cr_expect_str_eq(tg_op_name(TG_OP_COUNT), "?");
    cr_expect_eq(tg_op_arity(TG_OP_COUNT), -1);
    cr_expect_eq(tg_op_arity(TG_OP_CONST), 0);
    cr_expect_eq(tg_op_arity(TG_OP_MATMUL), 2);
    cr_expect_eq(tg_op_arity(TG_OP_SOFTMAX), 1);
}

/* ---- VJPs add into gradients, never overwrite ---------------------------------------------- */

/* Whether op takes a (2,3) and a (2,3): tried on a tape of its own. */
static bool takes_two_2x3(tg_op op)
{
    tg_tape *probe = tg_tape_new();
    tg_tensor *z = tg_tensor_zeros(TG_F64, 2, TS_SHAPE(2, 3));
    cr_assert(probe && z);
    bool ok = ts_apply(probe, op, z, z, NULL) != NULL;
    tg_tensor_free(z);
    tg_tape_free(probe);
    return ok;
}

/* The custom op of apply_any: y = a * b elementwise (same shapes), either dtype;
 * da += dy * b, db += dy * a. */
static tg_status custom_mul_forward(const tg_custom_call *c)
{
    const void *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    for (size_t i = 0, n = tg_tensor_numel(c->out); i < n; i++) {
        if (tg_tensor_dtype(c->out) == TG_F32)
            ((float *)c->y)[i] = ((const float *)a)[i] * ((const float *)b)[i];
        else
            ((double *)c->y)[i] = ((const double *)a)[i] * ((const double *)b)[i];
    }
    return TG_OK;
}

static tg_status custom_mul_vjp(const tg_custom_call *c)
{
    for (size_t k = 0; k < 2; k++) {
        const void *o = tg_tensor_data_const(c->in[1 - k]);
        for (size_t i = 0, n = tg_tensor_numel(c->out); c->dx[k] && i < n; i++) {
            if (tg_tensor_dtype(c->out) == TG_F32)
                ((float *)c->dx[k])[i] += ((const float *)c->dy)[i] * ((const float *)o)[i];
            else
                ((double *)c->dx[k])[i] += ((const double *)c->dy)[i] * ((const double *)o)[i];
        }
    }
    return TG_OK;
}

static const tg_custom_op CUSTOM_MUL = {
    .name = "custom_mul", .forward = custom_mul_forward, .vjp = custom_mul_vjp};

/* Any op of the table on a (2,3) and, for two inputs, b (2,3), or b seen as (3,2) when the op
 * takes no (2,3) partner (matmul), with attributes by kind: a constant 1.5, bounds
 * [0.6, 1.8], axis 0 (keepdim for reductions), the shape (3,1,2). The custom op is
 * CUSTOM_MUL of a and b. */
static tg_tensor *apply_any(tg_op op, tg_tensor *a, tg_tensor *b)
{
    if (op == TG_OP_CUSTOM) {
        tg_tensor *in[2] = {a, b};
        return tg_custom(tape, &CUSTOM_MUL, NULL, in, 2, tg_tensor_rank(a), tg_tensor_shape(a));
    }
    /* indexing and joins, on (2,3) operands: x[:, ::2], x[-1], concat/stack of (a, b),
     * take(x, [2, 0, -1, 0], 1), index_add(a, that idx, take(b, idx, 1), 1),
     * permute(x, [1, 0]) */
    switch (op) {
    case TG_OP_SLICE:
        return ts_apply(tape, op, a, NULL, &(tg_attrs){.axis = 1, .stop = TG_END, .step = 2});
    case TG_OP_SELECT: return ts_apply(tape, op, a, NULL, &(tg_attrs){.axis = 0, .index = -1});
    case TG_OP_CONCAT:
    case TG_OP_STACK:
        return tg_apply(tape, op, (tg_tensor *[]){a, b}, 2,
                        &(tg_attrs){.axis = op == TG_OP_CONCAT ? 1 : 0});
    case TG_OP_TAKE:
    case TG_OP_INDEX_ADD: {
        tg_tensor *idx = tg_tensor_dtype(a) == TG_F32
                             ? tg_constant(tape, TG_F32, 1, TS_SHAPE(4), (float[]){2, 0, -1, 0})
                             : tg_constant(tape, TG_F64, 1, TS_SHAPE(4), (double[]){2, 0, -1, 0});
        const tg_attrs along_1 = {.axis = 1};
        if (op == TG_OP_TAKE)
            return ts_apply(tape, op, a, idx, &along_1);
        return tg_apply(tape, op, (tg_tensor *[]){a, idx, tg_take(tape, b, idx, 1)}, 3, &along_1);
    }
    case TG_OP_PERMUTE: return ts_apply(tape, op, a, NULL, &(tg_attrs){.axes = {1, 0}});
    default: break;
    }
    const tg_attrs attrs = {.c = 1.5, .lo = 0.6, .hi = 1.8, .axis = 0, .keepdim = true,
                            .rank = 3, .shape = TS_SHAPE(3, 1, 2)};
    if (tg_op_arity(op) == 2 && !takes_two_2x3(op))
        b = tg_reshape(tape, b, 2, TS_SHAPE(3, 2));
    if (op == TG_OP_WHERE) { /* where(a - b, a, b): a where they differ, b where equal */
        tg_tensor *in[3] = {tg_sub(tape, a, b), a, b};
        return tg_apply(tape, op, in, 3, NULL);
    }
    return ts_apply(tape, op, a, b, &attrs);
}

/* For every differentiable op: its inputs are intermediates that another node, recorded
 * after it, also uses; so that node's VJP writes their gradient first and the op's VJP must
 * add to it. Backward runs twice, so leaf gradients must add across passes too. */
Test(ops, vjps_accumulate_into_existing_gradients)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        if (!tg_op_info_of((tg_op)op)->differentiable) /* const, detach, the comparisons */
            continue;
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = DTYPES[di];
            tg_tape_reset(tape);
            const char *name = tg_op_name((tg_op)op);
            tg_tensor *x =
                own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(0.5, 1.25, 2, 0.75, 1.5, 3), true);
            tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1.5, 0.5, 2, 1, 0.25, 4), true);
            /* The op's own gradient, through tg_grad (leaf grads untouched). */
            tg_tensor *xi = tg_scale(tape, x, 1.0), *bi = tg_scale(tape, b, 1.0);
            tg_tensor *ref = tg_sum(tape, tg_square(tape, apply_any((tg_op)op, xi, bi)),
                                    TG_ALL_AXES, false);
            tg_tensor *g[2] = {NULL, NULL}, *xs[2] = {x, b};
            cr_assert_eq(tg_grad(tape, ref, xs, 2, g), TG_OK, "%s: %s", name, tg_last_error());
            /* The same plus sum(xi) + sum(bi), recorded after the op. */
            tg_tape_reset(tape);
            xi = tg_scale(tape, x, 1.0);
            bi = tg_scale(tape, b, 1.0);
            tg_tensor *y = tg_sum(tape, tg_square(tape, apply_any((tg_op)op, xi, bi)),
                                  TG_ALL_AXES, false);
            y = tg_add(tape, y, tg_sum(tape, tg_add(tape, xi, bi), TG_ALL_AXES, false));
            backward(y);
            backward(y);
            for (size_t i = 0; i < 6; i++) {
                double wx = 2 * (tg_tensor_get(g[0], i) + 1), wb = 2 * (tg_tensor_get(g[1], i) + 1);
                double gx = tg_tensor_grad_get(x, i), gb = tg_tensor_grad_get(b, i);
                double tol = 4 * tol_of(dt);
                ts_assert_close(gx, wx, 0.1 * tol, tol, "%s (%s): dx[%zu]", name, tg_dtype_name(dt),
                                i);
                ts_assert_close(gb, wb, 0.1 * tol, tol, "%s (%s): db[%zu]", name, tg_dtype_name(dt),
                                i);
            }
            tg_tensor_free(g[0]);
            tg_tensor_free(g[1]);
        }
    }
}

/* ---- detach, no-grad, constants --------------------------------------------------------- */

Test(ops, detach_shares_values_and_stops_gradient)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        tg_tensor *d = tg_detach(tape, x);
        cr_assert(d != NULL, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(d), TG_OP_DETACH);
        EXPECT_VALUES("detach", d, 1, -2, 3);
        cr_expect(!tg_tensor_requires_grad(d), "detach requires grad");
        /* sum(x * detach(x)): the gradient is x (the detached factor), not 2x. */
        tg_tensor *y = tg_sum(tape, tg_mul(tape, x, d), TG_ALL_AXES, false);
        backward(y);
        EXPECT_GRAD("through detach", x, 1, -2, 3);
        /* Nothing requires grad past a detach alone: backward refuses. */
        tg_tensor *z = tg_sum(tape, tg_exp(tape, d), TG_ALL_AXES, false);
        cr_expect(!tg_tensor_requires_grad(z));
        cr_expect_eq(tg_backward(tape, z), TG_EINVAL);
        cr_expect_eq(tg_tape_status(tape), TG_OK, "a refused backward poisoned the tape");
        /* Detach of an intermediate. */
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), true);
        tg_tensor *sq = tg_square(tape, w);
        tg_tensor *q = tg_add(tape, sq, tg_detach(tape, sq)); /* value 2w^2, gradient 2w */
        EXPECT_VALUES("w^2 + detach(w^2)", q, 2, 8, 18);
        backward(tg_sum(tape, q, TG_ALL_AXES, false));
        EXPECT_GRAD("w^2 + detach(w^2)", w, 2, 4, 6);
    }
}

Test(ops, no_grad_mode)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -2, 3), true);
        cr_expect(tg_tape_grad_enabled(tape));
        bool was = tg_tape_set_grad_enabled(tape, false);
        cr_expect(was, "grad recording was off by default");
        cr_expect(!tg_tape_grad_enabled(tape));
        tg_tensor *y = tg_mul(tape, x, x);
        cr_assert(y != NULL, "%s", tg_tape_error(tape));
        cr_expect(!tg_tensor_requires_grad(y), "no-grad result requires grad");
        EXPECT_VALUES("no-grad values", y, 1, 4, 9);
        tg_tensor *ys = tg_sum(tape, y, TG_ALL_AXES, false);
        cr_expect(!tg_tensor_requires_grad(ys));
        cr_expect_eq(tg_backward(tape, ys), TG_EINVAL);
        /* Nested scopes restore the previous setting. */
        bool inner = tg_tape_set_grad_enabled(tape, false);
        cr_expect(!inner);
        tg_tape_set_grad_enabled(tape, inner);
        cr_expect(!tg_tape_grad_enabled(tape));
        cr_expect(!tg_tape_set_grad_enabled(tape, was));
        cr_expect(tg_tape_grad_enabled(tape));
        /* y (recorded without grad) is a constant to what follows: d sum(y x) / dx = y. */
        tg_tensor *z = tg_mul(tape, y, x);
        cr_expect(tg_tensor_requires_grad(z));
        backward(tg_sum(tape, z, TG_ALL_AXES, false));
        EXPECT_GRAD("gradient only through the graded path", x, 1, 4, 9);
    }
}

Test(ops, constants_do_not_require_grad)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        const float f[4] = {1.5f, -2, 0.25f, 8};
        const double d[4] = {1.5, -2, 0.25, 8};
        tg_tensor *c = tg_constant(tape, dt, 2, TS_SHAPE(2, 2), dt == TG_F32 ? (const void *)f : d);
        cr_assert(c != NULL, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(c), TG_OP_CONST);
        cr_expect(!tg_tensor_is_leaf(c));
        cr_expect(!tg_tensor_requires_grad(c));
        cr_expect_eq(tg_tensor_dtype(c), dt);
        EXPECT_SHAPE("constant", c, 2, 2, 2);
        EXPECT_VALUES("constant", c, 1.5, -2, 0.25, 8);
        tg_tensor *s = tg_scalar(tape, dt, 2.5);
        cr_assert(s != NULL, "%s", tg_tape_error(tape));
        expect_shape("scalar", s, 0, NULL);
        cr_expect_eq(tg_tensor_item(s), 2.5);
        cr_expect(!tg_tensor_requires_grad(s));
        cr_expect_eq(tg_tensor_op(s), TG_OP_CONST);
        tg_tensor *k0 = tg_constant(tape, dt, 0, NULL, dt == TG_F32 ? (const void *)f : d);
        expect_shape("0-d constant", k0, 0, NULL);
        EXPECT_VALUES("0-d constant", k0, 1.5);
        /* Ops of constants only do not require grad; with a graded leaf, only it gets one. */
        tg_tensor *cc = tg_mul(tape, c, s);
        cr_expect(!tg_tensor_requires_grad(cc));
        EXPECT_VALUES("constant * scalar", cc, 3.75, -5, 0.625, 20);
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 2), TS_VALS(1, 1, 1, 1), true);
        tg_tensor *y = tg_sum(tape, tg_add(tape, tg_mul(tape, x, c), s), TG_ALL_AXES, false);
        backward(y);
        EXPECT_GRAD("x * c + s", x, 1.5, -2, 0.25, 8);
        cr_expect(tg_tensor_grad_data(c) == NULL, "a constant received a gradient");
        cr_expect(tg_tensor_grad_data(s) == NULL, "a scalar constant received a gradient");
        /* A leaf that does not require grad is a constant too. */
        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
        cr_expect(!tg_tensor_requires_grad(tg_exp(tape, u)));
    }
}
