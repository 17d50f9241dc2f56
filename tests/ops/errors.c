/* errors.c (test_ops): the ops' errors: status, message naming the op and the shapes, NULL
 * result, and the first error kept on the tape while later ops stay quiet. */
#include "ops.h"

/* ---- errors -------------------------------------------------------------------------------- */

Test(ops, error_add_shape_mismatch_names_both_shapes)
{
    tg_tensor *a = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), true);
    tg_tensor *y = tg_add(tape, a, b);
    expect_error("[2,3] + [4]", y, TG_ESHAPE, "add: [2,3] and [4]", "(node 0)");
    tg_tape_reset(tape);
    y = tg_mul(tape, tg_exp(tape, a),
               own_leaf(TG_F64, 2, TS_SHAPE(3, 2), TS_VALS(1, 2, 3, 4, 5, 6), false));
    expect_error("[2,3] * [3,2]", y, TG_ESHAPE, "mul: [2,3] and [3,2]", "(node 1)");
    tg_tape_reset(tape);
    cr_expect_eq(tg_tape_status(tape), TG_OK, "reset kept the error");
    cr_expect_str_eq(tg_tape_error(tape), "no error");
    cr_expect(tg_add(tape, a, a) != NULL, "the tape is unusable after reset");
}

Test(ops, error_matmul_inner_dimensions)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    size_t sh[2] = {4, 5};
    tg_tensor *w = iota(TG_F64, 2, sh, 0, 1, true);
    /* Two nodes first, so the node number is not 0 by accident. */
    tg_tensor *h = tg_tanh(tape, tg_scale(tape, x, 0.5));
    cr_assert(h != NULL);
    size_t node = tg_tape_size(tape);
    cr_expect_eq(node, 2);
    tg_tensor *y = tg_matmul(tape, h, w);
    char want[128];
    snprintf(want, sizeof want, "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ (node %zu)",
             node);
    expect_error("matmul [2,3] @ [4,5]", y, TG_ESHAPE, want, NULL);
    cr_expect_str_eq(tg_tape_error(tape), want);
    cr_expect_eq(tg_tape_size(tape), node, "a failed op was recorded");

    tg_tape_reset(tape);
    tg_tensor *v = own_leaf(TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), false);
    expect_error("matmul [2,3] @ [4]", tg_matmul(tape, x, v), TG_ESHAPE,
                 "matmul: [2,3] @ [4]: inner dimensions 3 and 4 differ", "(node 0)");
    tg_tape_reset(tape);
    size_t s1[3] = {2, 2, 3}, s2[3] = {3, 3, 2};
    tg_tensor *p = iota(TG_F64, 3, s1, 0, 1, false), *q = iota(TG_F64, 3, s2, 0, 1, false);
    expect_error("matmul batch", tg_matmul(tape, p, q), TG_ESHAPE, "[2,2,3] @ [3,3,2]", "batch");
    tg_tape_reset(tape);
    expect_error("transpose of 3-D", tg_transpose(tape, p), TG_ESHAPE, "transpose", "[2,2,3]");
}

/* 4-D operands multiply on no rule, even when they agree as a batch of batches would: on a
 * fresh tape, and in a header that held a 4-D node two resets before (whose axes must not
 * leak into the new node) */
Test(ops, error_matmul_of_4d_operands)
{
    size_t s4[4] = {2, 3, 2, 2};
    tg_tensor *a = iota(TG_F64, 4, s4, 1, 1, true), *b = iota(TG_F64, 4, s4, 1, 1, false);
    for (int round = 0; round < 2; round++) {
        expect_error("matmul 4-D", tg_matmul(tape, a, b), TG_ESHAPE, "[2,3,2,2] @ [2,3,2,2]",
                     "operands must be 1-D, 2-D or 3-D");
        tg_tape_reset(tape);
        cr_assert_not_null(tg_add(tape, a, b)); /* node 0: a 4-D header for the next round */
        tg_tape_reset(tape);
        tg_tape_reset(tape);
    }
}

Test(ops, error_dtype_mismatch)
{
    tg_tensor *a = own_leaf(TG_F32, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("f32 + f64", tg_add(tape, a, b), TG_EDTYPE, "f32", "f64");
    tg_tape_reset(tape);
    expect_error("f64 @ f32",
                 tg_matmul(tape, tg_reshape(tape, b, 2, TS_SHAPE(1, 2)),
                           tg_reshape(tape, a, 2, TS_SHAPE(2, 1))),
                 TG_EDTYPE, "matmul", "f64");
    tg_tape_reset(tape);
    /* A constant of the other dtype is no exception. */
    tg_tensor *k = tg_scalar(tape, TG_F64, 1.0);
    expect_error("f32 * f64 scalar", tg_mul(tape, a, k), TG_EDTYPE, "mul", "f32");
}

Test(ops, error_axis_out_of_range)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *s = own_leaf(TG_F64, 0, NULL, TS_VALS(1), true);
    static const struct {
        tg_op op;
        int axis;
    } cases[] = {
        {TG_OP_SUM, 2},
        {TG_OP_SUM, -3},
        {TG_OP_MEAN, 5},
        {TG_OP_MAX, -4},
        {TG_OP_LOGSUMEXP, 2},
        {TG_OP_SOFTMAX, 2},
        {TG_OP_SOFTMAX, -3},
        {TG_OP_LOG_SOFTMAX, 7},
        {TG_OP_SOFTMAX, TG_ALL_AXES},
        {TG_OP_LOG_SOFTMAX, TG_ALL_AXES},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_tape_reset(tape);
        tg_tensor *y = NULL;
        switch (cases[i].op) {
        case TG_OP_SUM: y = tg_sum(tape, x, cases[i].axis, false); break;
        case TG_OP_MEAN: y = tg_mean(tape, x, cases[i].axis, true); break;
        case TG_OP_MAX: y = tg_max(tape, x, cases[i].axis, false); break;
        case TG_OP_LOGSUMEXP: y = tg_logsumexp(tape, x, cases[i].axis, false); break;
        case TG_OP_SOFTMAX: y = tg_softmax(tape, x, cases[i].axis); break;
        case TG_OP_LOG_SOFTMAX: y = tg_log_softmax(tape, x, cases[i].axis); break;
        default: cr_assert_fail("case");
        }
        char what[64];
        snprintf(what, sizeof what, "%s axis %d of [2,3]", tg_op_name(cases[i].op), cases[i].axis);
        expect_error(what, y, TG_EINVAL, tg_op_name(cases[i].op),
                     cases[i].axis == TG_ALL_AXES ? NULL : "[2,3]");
    }
    tg_tape_reset(tape);
    expect_error("sum axis 0 of 0-d", tg_sum(tape, s, 0, false), TG_EINVAL, "sum", "axis 0");
    tg_tape_reset(tape);
    expect_error("softmax of 0-d", tg_softmax(tape, s, 0), TG_EINVAL, "softmax", NULL);
}

Test(ops, error_reshape_count_mismatch)
{
    tg_tensor *x = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    expect_error("reshape [2,3] -> [4,2]", tg_reshape(tape, x, 2, TS_SHAPE(4, 2)), TG_ESHAPE,
                 "reshape: [2,3] -> [4,2]", "6 and 8");
    tg_tape_reset(tape);
    expect_error("reshape [2,3] -> 0-d", tg_reshape(tape, x, 0, NULL), TG_ESHAPE, "reshape",
                 "[2,3]");
    tg_tape_reset(tape);
    expect_error("reshape negative rank", tg_reshape(tape, x, -1, TS_SHAPE(6)), TG_EINVAL,
                 "reshape: rank -1 is out of range 0..4", NULL);
    tg_tape_reset(tape);
    expect_error("reshape without a shape", tg_reshape(tape, x, 1, NULL), TG_EINVAL,
                 "reshape: shape is NULL for rank 1", NULL);
    tg_tape_reset(tape);
    expect_error("reshape rank too large",
                 tg_reshape(tape, x, TG_MAX_RANK + 1, TS_SHAPE(1, 1, 1, 1, 1, 1, 1, 6)), TG_EINVAL,
                 "reshape", NULL);
}

Test(ops, error_max_over_empty_axis)
{
    tg_tensor *e = own(tg_tensor_zeros(TG_F64, 2, TS_SHAPE(2, 0)));
    expect_error("max over an empty axis", tg_max(tape, e, 1, false), TG_ESHAPE, "max", "[2,0]");
    tg_tape_reset(tape);
    expect_error("max over all of an empty tensor", tg_max(tape, e, TG_ALL_AXES, false), TG_ESHAPE,
                 "max", "[2,0]");
    /* Over the non-empty axis the result is simply empty. */
    tg_tape_reset(tape);
    tg_tensor *m = tg_max(tape, e, 0, false);
    cr_assert(m != NULL, "%s", tg_tape_error(tape));
    EXPECT_SHAPE("max over the non-empty axis of [2,0]", m, 1, 0);
    /* sum over an empty axis is 0, logsumexp -inf. */
    EXPECT_VALUES("sum over an empty axis", tg_sum(tape, e, 1, false), 0, 0);
    EXPECT_VALUES("logsumexp over an empty axis", tg_logsumexp(tape, e, 1, false), -INFINITY,
                  -INFINITY);
}

Test(ops, error_clamp_bounds)
{
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("clamp lo > hi", tg_clamp(tape, x, 1, 0), TG_EINVAL, "clamp", NULL);
    tg_tape_reset(tape);
    expect_error("clamp NaN", tg_clamp(tape, x, NAN, 1), TG_EINVAL, "clamp", NULL);
}

Test(ops, error_null_and_foreign_inputs)
{
    tg_tensor *x = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
    expect_error("add(NULL, x)", tg_add(tape, NULL, x), TG_EINVAL, "add", "NULL");
    tg_tape_reset(tape);
    expect_error("mul(x, NULL)", tg_mul(tape, x, NULL), TG_EINVAL, "mul", "input 1");
    tg_tape_reset(tape);
    tg_tape *other = tg_tape_new();
    cr_assert(other);
    tg_tensor *y = tg_exp(other, x);
    cr_assert(y);
    expect_error("input from another tape", tg_add(tape, x, y), TG_EINVAL, "another tape", NULL);
    tg_tape_free(other);
    tg_clear_error();
    cr_expect(tg_exp(NULL, x) == NULL);
    cr_expect_eq(tg_last_status(), TG_EINVAL, "NULL tape: %s", tg_last_error());
}

Test(ops, error_first_error_is_kept_later_ops_are_quiet)
{
    tg_tensor *a = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *b = iota(TG_F64, 2, TS_SHAPE(4, 5), 0, 1, false);
    tg_tensor *c = own_leaf(TG_F32, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
    tg_tensor *h = tg_exp(tape, a);
    tg_tensor *bad = tg_matmul(tape, h, b);
    expect_error("matmul", bad, TG_ESHAPE,
                 "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ (node 1)", NULL);
    char first[256];
    snprintf(first, sizeof first, "%s", tg_tape_error(tape));
    size_t nodes = tg_tape_size(tape);

    /* Every later op returns NULL without a new message: given the NULL ... */
    tg_clear_error();
    cr_expect(tg_sum(tape, tg_relu(tape, bad), TG_ALL_AXES, false) == NULL);
    cr_expect_eq(tg_last_status(), TG_OK, "a NULL input set a new error: %s", tg_last_error());
    /* ... or valid inputs, or inputs that would fail differently. */
    cr_expect(tg_add(tape, a, a) == NULL, "an op on a failed tape returned a tensor");
    cr_expect(tg_add(tape, a, c) == NULL);
    cr_expect(tg_reshape(tape, a, 1, TS_SHAPE(7)) == NULL);
    cr_expect(tg_scalar(tape, TG_F64, 1.0) == NULL);
    cr_expect(tg_detach(tape, a) == NULL);
    cr_expect_eq(tg_last_status(), TG_OK, "a later op set a new error: %s", tg_last_error());
    cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
    cr_expect_str_eq(tg_tape_error(tape), first, "the first error was replaced");
    cr_expect_eq(tg_tape_size(tape), nodes, "ops were recorded after the error");
    /* Backward reports the tape's error. */
    tg_status st = tg_backward(tape, h);
    cr_expect_neq(st, TG_OK);
    ts_assert_has(tg_last_error(), "inner dimensions");
    /* Reset clears it. */
    tg_tape_reset(tape);
    cr_expect_eq(tg_tape_status(tape), TG_OK);
    tg_tensor *ok = tg_sum(tape, tg_exp(tape, a), TG_ALL_AXES, false);
    cr_expect(ok != NULL, "%s", tg_tape_error(tape));
}

/* An f32 op computes with its constant rounded to f32: one that f32 cannot hold (overflowing
 * to inf, or nonzero and rounding to 0) is refused rather than changing the result; f64 takes
 * them, and f32 takes inf, 0 and subnormals. */
Test(ops, error_constant_that_f32_cannot_hold)
{
    tg_tensor *x = own_leaf(TG_F32, 1, TS_SHAPE(2), TS_VALS(1e-10, 1e30), true);
    expect_error("scale by 1e39", tg_scale(tape, x, 1e39), TG_EINVAL,
                 "scale: the constant 1e+39 does not fit f32", NULL);
    tg_tape_reset(tape);
    expect_error("scale by 1e-50", tg_scale(tape, x, 1e-50), TG_EINVAL,
                 "scale: the constant 1e-50 does not fit f32", NULL);
    tg_tape_reset(tape);
    expect_error("pow 1e39", tg_pow(tape, x, -1e39), TG_EINVAL, "pow: the constant -1e+39", NULL);
    tg_tape_reset(tape);
    expect_error("add 1e40", tg_add_scalar(tape, x, 1e40), TG_EINVAL, "add_scalar: the constant",
                 NULL);
    tg_tape_reset(tape);
    cr_assert_not_null(tg_scale(tape, x, INFINITY));
    cr_assert_not_null(tg_scale(tape, x, 1e-40), "a subnormal f32: %s", tg_tape_error(tape));
    cr_assert_not_null(tg_add_scalar(tape, x, 0));
    tg_tape_reset(tape);
    /* The same op recorded again with a constant f32 cannot hold, where a plan of the graph
     * stands in for the shape rule (from the third recording): refused all the same. */
    for (int rec = 0; rec < 4; rec++) {
        cr_assert_not_null(tg_scale(tape, x, 2), "%s", tg_tape_error(tape));
        cr_assert_not_null(tg_add_scalar(tape, x, 1), "%s", tg_tape_error(tape));
        tg_tape_reset(tape);
    }
    expect_error("scale by 1e300 on a planned tape", tg_scale(tape, x, 1e300), TG_EINVAL,
                 "scale: the constant 1e+300 does not fit f32", NULL);
    tg_tape_reset(tape);
    cr_assert_not_null(tg_scale(tape, x, 2), "%s", tg_tape_error(tape));
    expect_error("add 1e-50 on a planned tape", tg_add_scalar(tape, x, 1e-50), TG_EINVAL,
                 "add_scalar: the constant 1e-50 does not fit f32", NULL);
    tg_tape_reset(tape);
    tg_tensor *d = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1e-10, 1e30), true);
    tg_tensor *y = tg_scale(tape, d, 1e-50);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    ts_assert_close(tg_tensor_get(y, 1), 1e-20, 0, 1e-15, "f64 1e30 * 1e-50");
    tg_tape_reset(tape);
}

/* tg_scalar refuses what the ops' constants refuse: an f32 0-d constant of 1e40 would be inf,
 * one of 1e-50 would be 0. inf, NaN, 0, a subnormal and 3.4028235e38 (FLT_MAX written
 * shortest, FLT_MAX once rounded) are f32 values; f64 takes both. */
Test(ops, error_scalar_that_f32_cannot_hold)
{
    expect_error("scalar 1e40", tg_scalar(tape, TG_F32, 1e40), TG_EINVAL,
                 "scalar: the value 1e+40 does not fit f32", NULL);
    tg_tape_reset(tape);
    expect_error("scalar -1e-50", tg_scalar(tape, TG_F32, -1e-50), TG_EINVAL,
                 "scalar: the value -1e-50 does not fit f32", NULL);
    tg_tape_reset(tape);
    const double fine[] = {INFINITY, -INFINITY, NAN, 0.0, -0.0, 1e-40, 3.4028235e38, -3.4028235e38};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        tg_tensor *c = tg_scalar(tape, TG_F32, fine[i]);
        cr_assert_not_null(c, "%g: %s", fine[i], tg_tape_error(tape));
        double got = tg_tensor_get(c, 0);
        cr_expect(isnan(fine[i]) ? isnan(got) : got == (double)(float)fine[i], "%g: %g", fine[i],
                  got);
    }
    cr_expect_eq(tg_tensor_get(tg_scalar(tape, TG_F32, 3.4028235e38), 0), 0x1.fffffep+127);
    tg_tensor *d = tg_scalar(tape, TG_F64, 1e-50);
    cr_assert_not_null(d, "%s", tg_tape_error(tape));
    cr_expect_eq(tg_tensor_get(d, 0), 1e-50);
    cr_assert_not_null(tg_scalar(tape, TG_F64, 1e300));
    /* clamp takes bounds f32 cannot hold (they clamp as inf and 0 would); its recorded gradient
     * uses them as f32 does: 1 inside [0, inf], 0 below */
    tg_tensor *x = own_leaf(TG_F32, 1, TS_SHAPE(3), TS_VALS(-2, 0.5, 5), true);
    tg_tensor *y = tg_sum(tape, tg_clamp(tape, x, 1e-50, 1e300), TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad_graph(tape, y, &x, 1, NULL, &g), TG_OK, "%s", tg_tape_error(tape));
    cr_expect_eq(tg_tensor_get(g, 0), 0);
    cr_expect_eq(tg_tensor_get(g, 1), 1);
    cr_expect_eq(tg_tensor_get(g, 2), 1);
    tg_tape_reset(tape);
}
