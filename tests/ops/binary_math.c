/* binary_math.c (test_ops): exact values and VJPs, in f32 and f64, of the binary math ops (minimum,
 * maximum, atan2, pow_tensor), the comparisons, where, and the reductions min and prod: the
 * documented rules at their edges (ties split equally in minimum/maximum, NaN, pow_tensor at
 * a = 0 and a < 0, atan2 at the origin, comparisons with NaN, where's NaN condition and its
 * NaN trap with the safe pattern, min's first minimum, prod's gradient with zeros), their
 * broadcasting, and their errors. Reference values are hand derivations or python3's math
 * module (the commands are given where a value is not a small fraction). */
#include "ops.h"

/* ---- minimum and maximum ------------------------------------------------------------------- */

Test(ops, minimum_maximum_values_ties_and_nan)
{
    /* Elements: a smaller, b smaller, a tie, a tie of negatives, NaN in a, NaN in b. */
    const double A[6] = {1, 5, 3, -2, NAN, 2}, B[6] = {4, 2, 3, -2, 1, NAN};
    const double DY[6] = {1, 2, 3, 4, 5, 6};
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(6), A, true),
                  *b = own_leaf(dt, 1, TS_SHAPE(6), B, true);
        tg_tensor *y = tg_minimum(tape, a, b);
        cr_assert(y, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(y), TG_OP_MINIMUM);
        EXPECT_VALUES("minimum", y, 1, 2, 3, -2, NAN, NAN);
        backward_seed(y, DY);
        /* the gradient to the operand picked (the NaN one), dy/2 to each on a tie */
        EXPECT_GRAD("minimum: da", a, 1, 0, 1.5, 2, 5, 0);
        EXPECT_GRAD("minimum: db", b, 0, 2, 1.5, 2, 0, 6);

        tg_tensor *u = own_leaf(dt, 1, TS_SHAPE(6), A, true),
                  *v = own_leaf(dt, 1, TS_SHAPE(6), B, true);
        tg_tensor *z = tg_maximum(tape, u, v);
        EXPECT_VALUES("maximum", z, 4, 5, 3, -2, NAN, NAN);
        backward_seed(z, DY);
        EXPECT_GRAD("maximum: da", u, 0, 2, 1.5, 2, 5, 0);
        EXPECT_GRAD("maximum: db", v, 1, 0, 1.5, 2, 0, 6);
    }
}

Test(ops, minimum_maximum_ties_broadcast_and_signed_zero)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* x (2,3) against a 0-d 2: ties at flat 1 and 3 split, the sum over the broadcast
         * goes to c: 0 + 0.5 + 1 + 0.5 + 1 + 0 = 3. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 2, 5, 0), true);
        tg_tensor *c = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *y = tg_minimum(tape, x, c);
        expect_shape("minimum (2,3) with ()", y, 2, TS_SHAPE(2, 3));
        EXPECT_VALUES("minimum (2,3) with ()", y, 1, 2, 2, 2, 2, 0);
        backward_seed(y, NULL);
        EXPECT_GRAD("minimum: dx", x, 1, 0.5, 0, 0.5, 0, 1);
        EXPECT_GRAD("minimum: dc", c, 3);
        /* maximum of (2,1) and (3): (2,3), ties at (0,1) and (1,2) */
        tg_tensor *p = own_leaf(dt, 2, TS_SHAPE(2, 1), TS_VALS(1, 3), true);
        tg_tensor *q = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, 1, 3), true);
        tg_tensor *m = tg_maximum(tape, p, q);
        expect_shape("maximum (2,1) with (3)", m, 2, TS_SHAPE(2, 3));
        EXPECT_VALUES("maximum (2,1) with (3)", m, 1, 1, 3, 3, 3, 3);
        backward_seed(m, TS_VALS(1, 2, 4, 8, 16, 32));
        EXPECT_GRAD("maximum: dp", p, 1 + 1 + 0, 8 + 16 + 16);
        EXPECT_GRAD("maximum: dq", q, 0, 1, 4 + 16);
        /* -0 and +0 are equal: a tie. */
        tg_tensor *nz = own_leaf(dt, 1, TS_SHAPE(1), TS_VALS(-0.0), true);
        tg_tensor *pz = own_leaf(dt, 1, TS_SHAPE(1), TS_VALS(0.0), true);
        tg_tensor *s =
            tg_add(tape, tg_minimum(tape, nz, pz), tg_scale(tape, tg_maximum(tape, nz, pz), 3));
        EXPECT_VALUES("minimum(-0, 0) + 3 maximum(-0, 0)", s, 0);
        backward_seed(s, NULL);
        EXPECT_GRAD("signed zeros tie: d(-0)", nz, 2);
        EXPECT_GRAD("signed zeros tie: d(+0)", pz, 2);
    }
}

/* ---- atan2 ------------------------------------------------------------------------------------
 */

Test(ops, atan2_values_quadrants_and_origin)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* (y, x) in the four quadrants, on the positive x axis, and (3, 4) */
        tg_tensor *y = own_leaf(dt, 1, TS_SHAPE(5), TS_VALS(1, 1, -1, 0, 3), true);
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(5), TS_VALS(1, -1, -1, 2, 4), true);
        tg_tensor *t = tg_atan2(tape, y, x);
        /* python3 -c "import math; print(math.pi/4, 3*math.pi/4, math.atan2(3, 4))" */
        EXPECT_VALUES("atan2", t, 0.7853981633974483, 2.356194490192345, -2.356194490192345, 0,
                      0.6435011087932844);
        backward_seed(t, NULL);
        /* d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2) */
        EXPECT_GRAD("atan2: d/dy", y, 0.5, -0.5, -0.5, 0.5, 4.0 / 25);
        EXPECT_GRAD("atan2: d/dx", x, -0.5, -0.5, 0.5, 0, -3.0 / 25);
        /* At the origin atan2 is 0 (C) and has no derivative: NaN. */
        tg_tensor *oy = own_leaf(dt, 0, NULL, TS_VALS(0), true),
                  *ox = own_leaf(dt, 0, NULL, TS_VALS(0), true);
        tg_tensor *o = tg_atan2(tape, oy, ox);
        EXPECT_VALUES("atan2(0, 0)", o, 0);
        backward_seed(o, NULL);
        EXPECT_GRAD("atan2 at the origin: d/dy", oy, NAN);
        EXPECT_GRAD("atan2 at the origin: d/dx", ox, NAN);
        /* Far from the origin the gradient does not overflow to 0 through x^2 + y^2. */
        double big = dt == TG_F32 ? 1e30 : 1e200;
        tg_tensor *by = own_leaf(dt, 0, NULL, TS_VALS(0), true),
                  *bx = own_leaf(dt, 0, NULL, &big, true);
        backward_seed(tg_atan2(tape, by, bx), NULL);
        EXPECT_GRAD("atan2 far out: d/dy = 1/x", by, 1 / big);
        /* At infinity both slopes take their limit, 0 (with the sign of -y and x), not NaN:
         * (y, x) = (inf, 1), (1, -inf), (-inf, inf) */
        const double inf = INFINITY;
        tg_tensor *iy = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(inf, 1, -inf), true);
        tg_tensor *ix = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, -inf, inf), true);
        backward_seed(tg_atan2(tape, iy, ix), NULL);
        EXPECT_GRAD("atan2 at infinity: d/dy", iy, 0, -0.0, 0);
        EXPECT_GRAD("atan2 at infinity: d/dx", ix, -0.0, -0.0, 0);
    }
}

/* ---- pow_tensor --------------------------------------------------------------------------------
 */

Test(ops, pow_tensor_values_and_both_gradients)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(2, 9, 0.5, 3), true);
        tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(3, 0.5, -1, 0), true);
        tg_tensor *y = tg_pow_tensor(tape, a, b);
        cr_expect_eq(tg_tensor_op(y), TG_OP_POW_TENSOR);
        cr_expect_str_eq(tg_tensor_op_name(y), "pow_tensor");
        EXPECT_VALUES("pow_tensor", y, 8, 3, 2, 1);
        backward_seed(y, NULL);
        /* da = b a^(b-1): 3*4, 0.5/3, -1/0.25, and 0 for b = 0 */
        EXPECT_GRAD("pow_tensor: da", a, 12, 1.0 / 6, -4, 0);
        /* db = a^b log(a); python3 -c "import math; print(8*math.log(2), 3*math.log(9),
         * -2*math.log(2), math.log(3))" */
        EXPECT_GRAD("pow_tensor: db", b, 5.545177444479562, 6.591673732008658, -1.3862943611198906,
                    1.0986122886681098);
        /* a broadcast base: 2^(1, 2, 3), d/da = sum b 2^(b-1) = 1 + 4 + 12 */
        tg_tensor *two = own_leaf(dt, 0, NULL, TS_VALS(2), true);
        tg_tensor *e = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
        tg_tensor *p = tg_pow_tensor(tape, two, e);
        EXPECT_VALUES("2^(1,2,3)", p, 2, 4, 8);
        backward_seed(p, NULL);
        EXPECT_GRAD("2^(1,2,3): d/da", two, 17);
    }
}

Test(ops, pow_tensor_at_zero_and_negative_base)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* a = 0 with b = 2, 0, 0.5, -1, NaN; a < 0 with an integer and a non-integer b */
        tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(7), TS_VALS(0, 0, 0, 0, 0, -2, -8), true);
        tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(7), TS_VALS(2, 0, 0.5, -1, NAN, 2, 1.0 / 3), true);
        tg_tensor *y = tg_pow_tensor(tape, a, b);
        /* C's pow: 0^2 = 0, 0^0 = 1, 0^0.5 = 0, 0^-1 = inf, 0^NaN = NaN, (-2)^2 = 4,
         * (-8)^(1/3) = NaN */
        EXPECT_VALUES("pow_tensor edges", y, 0, 1, 0, INFINITY, NAN, 4, NAN);
        backward_seed(y, NULL);
        /* da: 2*0 = 0; 0 (b = 0); 0.5 * 0^-0.5 = inf; -1 * 0^-2 = -inf; NaN; 2*(-2) = -4; NaN */
        EXPECT_GRAD("pow_tensor edges: da", a, 0, 0, INFINITY, -INFINITY, NAN, -4, NAN);
        /* db = y log(a), but 0 at a = 0, where 0^b is constant in b on either side of 0 and
         * jumps at b = 0 (not 0 * -inf, 1 * log(0) = -inf, inf * -inf); NaN with b NaN;
         * 4 * log(-2) = NaN; NaN. PyTorch 1.13 (a = 0 with b = 2, 0, 0.5, -1, NaN;
         * (a**b).sum().backward()) gives da 0, 0, inf, -inf, NaN as here and db 0, 0, 0, -inf,
         * NaN: the same but at b < 0. */
        EXPECT_GRAD("pow_tensor edges: db", b, 0, 0, 0, 0, NAN, NAN, NAN);
    }
}

/* ---- comparisons ---------------------------------------------------------------------------- */

Test(ops, comparisons_masks_with_nan)
{
    const double A[5] = {1, 2, 3, NAN, 2}, B[5] = {2, 2, 1, 1, NAN};
    static const struct {
        tg_op op;
        double want[5];
    } cases[] = {
        {TG_OP_LT, {1, 0, 0, 0, 0}}, {TG_OP_LE, {1, 1, 0, 0, 0}}, {TG_OP_GT, {0, 0, 1, 0, 0}},
        {TG_OP_GE, {0, 1, 1, 0, 0}}, {TG_OP_EQ, {0, 1, 0, 0, 0}}, {TG_OP_NE, {1, 0, 1, 1, 1}},
    };
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 1, TS_SHAPE(5), A, true),
                  *b = own_leaf(dt, 1, TS_SHAPE(5), B, true);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            tg_tensor *in[2] = {a, b};
            tg_tensor *m = tg_apply(tape, cases[i].op, in, 2, NULL);
            const char *name = tg_op_name(cases[i].op);
            cr_assert(m, "%s: %s", name, tg_tape_error(tape));
            cr_expect_eq(tg_tensor_dtype(m), dt, "%s: dtype", name);
            cr_expect(!tg_tensor_requires_grad(m), "%s: a mask requires grad", name);
            cr_expect(!tg_op_info_of(cases[i].op)->differentiable, "%s: differentiable", name);
            expect_elems(name, m, cases[i].want, 5, false);
        }
        /* The constructors record the same ops. */
        cr_expect_eq(tg_tensor_op(tg_lt(tape, a, b)), TG_OP_LT);
        cr_expect_eq(tg_tensor_op(tg_le(tape, a, b)), TG_OP_LE);
        cr_expect_eq(tg_tensor_op(tg_gt(tape, a, b)), TG_OP_GT);
        cr_expect_eq(tg_tensor_op(tg_ge(tape, a, b)), TG_OP_GE);
        cr_expect_eq(tg_tensor_op(tg_eq(tape, a, b)), TG_OP_EQ);
        cr_expect_eq(tg_tensor_op(tg_ne(tape, a, b)), TG_OP_NE);
    }
}

Test(ops, comparisons_broadcast_and_carry_no_gradient)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 1), TS_VALS(1, 3), true);
        tg_tensor *b = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(0, 1, 2), true);
        tg_tensor *m = tg_ge(tape, a, b);
        expect_shape("ge (2,1) with (3)", m, 2, TS_SHAPE(2, 3));
        EXPECT_VALUES("ge (2,1) with (3)", m, 1, 1, 0, 1, 1, 1);
        /* Backward from masks alone: nothing requires grad, and the error names the mask. */
        tg_tensor *s = tg_sum(tape, m, TG_ALL_AXES, false);
        cr_expect(!tg_tensor_requires_grad(s));
        cr_expect_eq(tg_backward(tape, s), TG_EINVAL);
        ts_assert_has(tg_last_error(), "(ge), whose op has no gradient");
        tg_tensor *g = NULL;
        cr_expect_eq(tg_grad(tape, s, &a, 1, &g), TG_EINVAL);
        cr_expect_null(g);
        cr_expect_eq(tg_tape_status(tape), TG_OK, "a bad backward does not poison the tape");
        /* A mask as a factor: x * gt(x, 0) passes dy where x > 0, nothing through the mask. */
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(-1, 2, 0, 3), true);
        tg_tensor *zero = tg_scalar(tape, dt, 0);
        tg_tensor *r = tg_mul(tape, x, tg_gt(tape, x, zero));
        EXPECT_VALUES("x * (x > 0)", r, 0, 2, 0, 3);
        backward_seed(r, TS_VALS(5, 6, 7, 8));
        EXPECT_GRAD("x * (x > 0): the mask is a constant", x, 0, 6, 0, 8);
    }
}

Test(ops, comparisons_and_binary_ops_shape_errors)
{
    tg_tensor *a = own_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), false);
    cr_expect_null(tg_lt(tape, a, b));
    ts_assert_has(tg_tape_error(tape), "lt: [3] and [4] do not broadcast");
    tg_tape_reset(tape);
    cr_expect_null(tg_pow_tensor(tape, a, b));
    ts_assert_has(tg_tape_error(tape), "pow_tensor: [3] and [4] do not broadcast");
    tg_tape_reset(tape);
    tg_tensor *f = own_leaf(TG_F32, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
    cr_expect_null(tg_maximum(tape, a, f));
    cr_expect_eq(tg_tape_status(tape), TG_EDTYPE);
}

/* ---- where ---------------------------------------------------------------------------------- */

Test(ops, where_broadcasts_three_and_routes_the_gradient)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* cond (2,1) = (1, 0): row 0 from a (2,3), row 1 from b (0-d) */
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(2, 1), TS_VALS(1, 0), true);
        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *b = own_leaf(dt, 0, NULL, TS_VALS(-7), true);
        tg_tensor *y = tg_where(tape, c, a, b);
        cr_assert(y, "%s", tg_tape_error(tape));
        cr_expect_eq(tg_tensor_op(y), TG_OP_WHERE);
        cr_expect_eq(tg_tensor_num_inputs(y), 3);
        cr_expect(tg_tensor_input(y, 0) == c && tg_tensor_input(y, 1) == a &&
                  tg_tensor_input(y, 2) == b);
        expect_shape("where((2,1), (2,3), ())", y, 2, TS_SHAPE(2, 3));
        EXPECT_VALUES("where", y, 1, 2, 3, -7, -7, -7);
        backward_seed(y, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("where: da", a, 1, 2, 3, 0, 0, 0);
        EXPECT_GRAD("where: db (summed)", b, 15);
        cr_expect(tg_tensor_grad_data(c) == NULL, "where: cond (requiring grad) got a gradient");
        tg_tensor *gc = NULL;
        cr_assert_eq(tg_grad(tape, tg_sum(tape, y, TG_ALL_AXES, false), &c, 1, &gc), TG_OK);
        cr_expect(tg_tensor_get(gc, 0) == 0 && tg_tensor_get(gc, 1) == 0,
                  "tg_grad with respect to cond: %g %g", tg_tensor_get(gc, 0),
                  tg_tensor_get(gc, 1));
        tg_tensor_free(gc);

        /* Every input broadcast: cond (3), a (2,1), b (2,3) -> (2,3); cond is any values:
         * nonzero (negative, NaN) is true, only 0 false. */
        tg_tensor *c2 = own_leaf(dt, 1, TS_SHAPE(3), TS_VALS(-0.5, 0, NAN), false);
        tg_tensor *a2 = own_leaf(dt, 2, TS_SHAPE(2, 1), TS_VALS(10, 20), true);
        tg_tensor *b2 = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), true);
        tg_tensor *y2 = tg_where(tape, c2, a2, b2);
        expect_shape("where((3), (2,1), (2,3))", y2, 2, TS_SHAPE(2, 3));
        EXPECT_VALUES("where with a NaN condition", y2, 10, 2, 10, 20, 5, 20);
        backward_seed(y2, TS_VALS(1, 2, 3, 4, 5, 6));
        EXPECT_GRAD("where: da (2,1)", a2, 1 + 3, 4 + 6);
        EXPECT_GRAD("where: db (2,3)", b2, 0, 2, 0, 0, 5, 0);

        /* A single-element a or b beside full-size others (where(mask, x, 0) and its mirror):
         * the flat loops that read that one element for every output element. */
        tg_tensor *c3 = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(1, 0, 0, 1), false);
        tg_tensor *full = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(1, 2, 3, 4), true);
        tg_tensor *one = own_leaf(dt, 0, NULL, TS_VALS(-7), true);
        tg_tensor *y3 = tg_where(tape, c3, full, one);
        EXPECT_VALUES("where((4), (4), ())", y3, 1, -7, -7, 4);
        backward_seed(y3, TS_VALS(1, 2, 3, 4));
        EXPECT_GRAD("where((4), (4), ()): da", full, 1, 0, 0, 4);
        EXPECT_GRAD("where((4), (4), ()): db (summed)", one, 2 + 3);
        tg_tensor_zero_grad(full);
        tg_tensor_zero_grad(one);
        tg_tensor *y4 = tg_where(tape, c3, one, full);
        EXPECT_VALUES("where((4), (), (4))", y4, -7, 2, 3, -7);
        backward_seed(y4, TS_VALS(1, 2, 3, 4));
        EXPECT_GRAD("where((4), (), (4)): da (summed)", one, 1 + 4);
        EXPECT_GRAD("where((4), (), (4)): db", full, 0, 2, 3, 0);

        /* Fan-out: where(x > 0, x, -x) = |x|, all three inputs from x. */
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(-2, 3, -0.5, 1), true);
        tg_tensor *ax = tg_where(tape, tg_gt(tape, x, tg_scalar(tape, dt, 0)), x, tg_neg(tape, x));
        EXPECT_VALUES("where(x > 0, x, -x)", ax, 2, 3, 0.5, 1);
        backward_seed(ax, TS_VALS(1, 2, 3, 4));
        EXPECT_GRAD("where(x > 0, x, -x)", x, -1, 2, -3, 4);
        /* The same tensor as a and b: all of dy reaches it. */
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(1, 2), true);
        tg_tensor *cw = own_leaf(dt, 1, TS_SHAPE(2), TS_VALS(0, 1), false);
        backward_seed(tg_where(tape, cw, w, w), TS_VALS(3, 4));
        EXPECT_GRAD("where(c, w, w)", w, 3, 4);
    }
}

/* Broadcast along the first axis only, all three along the last: the rows then go by a loop
 * of constant strides (vectorized); rows of 37, longer than two vectors of 16 floats. cond and
 * a are (3, 37), b a (1, 37) row; against the definition written out here. */
Test(ops, where_broadcast_along_outer_axes_by_rows)
{
    enum { R = 3, C = 37 };
    double cv[R * C], av[R * C], bv[C], dyv[R * C];
    for (size_t i = 0; i < R * C; i++) {
        cv[i] = (i * 7) % 3 == 0 ? 0 : (i % 5 == 1 ? NAN : -1.5); /* false, true (NaN), true */
        av[i] = (double)i + 0.5;
        dyv[i] = (double)(i % 11) - 4;
    }
    for (size_t j = 0; j < C; j++)
        bv[j] = -(double)j - 100;
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        tg_tensor *c = own_leaf(dt, 2, TS_SHAPE(R, C), cv, false);
        tg_tensor *a = own_leaf(dt, 2, TS_SHAPE(R, C), av, true);
        tg_tensor *b = own_leaf(dt, 2, TS_SHAPE(1, C), bv, true);
        tg_tensor *y = tg_where(tape, c, a, b);
        cr_assert(y, "%s", tg_tape_error(tape));
        backward_seed(y, dyv);
        double db[C] = {0};
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++) {
                const size_t k = i * C + j;
                const bool take_a = cv[k] != 0;
                cr_expect_eq(tg_tensor_get(y, k), take_a ? av[k] : bv[j], "%s y[%zu][%zu]",
                             tg_dtype_name(dt), i, j);
                cr_expect_eq(tg_tensor_grad_get(a, k), take_a ? dyv[k] : 0, "%s da[%zu][%zu]",
                             tg_dtype_name(dt), i, j);
                db[j] += take_a ? 0 : dyv[k];
            }
        for (size_t j = 0; j < C; j++)
            cr_expect_eq(tg_tensor_grad_get(b, j), db[j], "%s db[%zu]", tg_dtype_name(dt), j);
    }
}

/* where(x > 0, log(x), 0) at x = 0: the forward picks 0, but log's VJP still runs with
 * dy = 0 there and gives 0 * (1/0) = NaN. The safe form feeds log a harmless 1 where its
 * result is discarded, and its gradient is exact. */
Test(ops, where_nan_trap_and_the_safe_pattern)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        const double X[4] = {0, 1, 4, -2};
        tg_tensor *x = own_leaf(dt, 1, TS_SHAPE(4), X, true);
        tg_tensor *zero = tg_scalar(tape, dt, 0), *one = tg_scalar(tape, dt, 1);
        tg_tensor *pos = tg_gt(tape, x, zero);
        tg_tensor *naive = tg_where(tape, pos, tg_log(tape, x), zero);
        /* python3 -c "import math; print(math.log(4))" */
        EXPECT_VALUES("naive: values are fine", naive, 0, 0, 1.3862943611198906, 0);
        tg_tensor *g = NULL;
        cr_assert_eq(tg_grad(tape, tg_sum(tape, naive, TG_ALL_AXES, false), &x, 1, &g), TG_OK, "%s",
                     tg_last_error());
        /* log's VJP dy / x: 0 / 0 = NaN at x = 0; elsewhere dy / x is 1/x where x > 0 and
         * 0 / -2 = -0 at x = -2 (log(-2) is NaN, but that value was discarded) */
        double g0 = tg_tensor_get(g, 0);
        cr_expect(isnan(g0), "naive gradient at x = 0 is %g, expected the NaN of 0 * (1/0)", g0);
        cr_expect(tg_tensor_get(g, 1) == 1 && tg_tensor_get(g, 2) == 0.25 &&
                      tg_tensor_get(g, 3) == 0,
                  "naive gradient elsewhere: %g %g %g", tg_tensor_get(g, 1), tg_tensor_get(g, 2),
                  tg_tensor_get(g, 3));
        tg_tensor_free(g);

        tg_tensor *safe_x = tg_where(tape, pos, x, one);
        tg_tensor *safe = tg_where(tape, pos, tg_log(tape, safe_x), zero);
        EXPECT_VALUES("safe: same values", safe, 0, 0, 1.3862943611198906, 0);
        cr_assert_eq(tg_grad(tape, tg_sum(tape, safe, TG_ALL_AXES, false), &x, 1, &g), TG_OK, "%s",
                     tg_last_error());
        const double want[4] = {0, 1, 0.25, 0};
        for (size_t i = 0; i < 4; i++)
            cr_expect(tg_tensor_get(g, i) == want[i], "safe gradient [%zu] = %g, expected %g (%s)",
                      i, tg_tensor_get(g, i), want[i], tg_dtype_name(dt));
        tg_tensor_free(g);
    }
}

Test(ops, where_errors)
{
    tg_tensor *c = own_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(1, 0, 1), false);
    tg_tensor *a = own_leaf(TG_F64, 2, TS_SHAPE(2, 3), TS_VALS(1, 2, 3, 4, 5, 6), false);
    tg_tensor *b = own_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
    cr_expect_null(tg_where(tape, c, a, b));
    cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape),
                  "where: cond [3], a [2,3] and b [2] do not broadcast: axis -1 has sizes 3, "
                  "3 and 2");
    tg_tape_reset(tape);
    tg_tensor *f = own_leaf(TG_F32, 1, TS_SHAPE(3), TS_VALS(1, 0, 1), false);
    cr_expect_null(tg_where(tape, f, a, a));
    cr_expect_eq(tg_tape_status(tape), TG_EDTYPE);
    tg_tape_reset(tape);
    cr_expect_null(tg_where(tape, c, NULL, a));
    cr_expect_eq(tg_tape_status(tape), TG_EINVAL);
    tg_tape_reset(tape);
    tg_tensor *in[3] = {c, a, a};
    cr_expect_null(tg_apply(tape, TG_OP_WHERE, in, 2, NULL));
    ts_assert_has(tg_tape_error(tape), "where takes 3 inputs, got 2");
    tg_tape_reset(tape);
    tg_tensor *y = tg_apply(tape, TG_OP_WHERE, in, 3, NULL);
    cr_assert(y, "%s", tg_tape_error(tape));
    EXPECT_VALUES("where through tg_apply", y, 1, 2, 3, 4, 5, 6);
}

/* ---- min and prod ---------------------------------------------------------------------------- */

Test(ops, min_first_minimum_on_ties_and_nan)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Along axis 1: row 0 ties 1 at columns 0 and 2; row 1 ties 0 at columns 1 and 2. */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 3, 1, 2, 0, 0), true);
        tg_tensor *m = tg_min(tape, x, 1, false);
        cr_expect_eq(tg_tensor_op(m), TG_OP_MIN);
        EXPECT_VALUES("min ties axis 1", m, 1, 0);
        backward_seed(m, TS_VALS(2, -3));
        EXPECT_GRAD("min ties axis 1: first minimum", x, 2, 0, 0, 0, -3, 0);
        /* Along axis 0, keepdim, negative axis. */
        tg_tensor *y = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, 4, 2, 1, -4, 5), true);
        tg_tensor *my = tg_min(tape, y, -2, true);
        expect_shape("min axis -2 keepdim", my, 2, TS_SHAPE(1, 3));
        EXPECT_VALUES("min axis 0", my, 1, -4, 2);
        backward_seed(my, TS_VALS(1, 2, 3));
        EXPECT_GRAD("min axis 0: first minimum", y, 1, 0, 3, 0, 2, 0);
        /* All elements: -5 at flat 1 and 4; a NaN is the minimum (the first NaN). */
        tg_tensor *z = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1, -5, 2, 5, -5, 0), true);
        tg_tensor *mz = tg_min(tape, z, TG_ALL_AXES, false);
        expect_shape("min all", mz, 0, NULL);
        EXPECT_VALUES("min all", mz, -5);
        backward_seed(mz, NULL);
        EXPECT_GRAD("min all: first minimum", z, 0, 1, 0, 0, 0, 0);
        tg_tensor *n = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(3, NAN, -1, NAN), true);
        tg_tensor *mn = tg_min(tape, n, 0, false);
        EXPECT_VALUES("min with NaN", mn, NAN);
        backward_seed(mn, NULL);
        EXPECT_GRAD("min with NaN: the first NaN", n, 0, 1, 0, 0);
    }
    /* An empty axis has no minimum. */
    tg_tape_reset(tape);
    tg_tensor *e = own(tg_tensor_zeros(TG_F64, 2, TS_SHAPE(2, 0)));
    cr_expect_null(tg_min(tape, e, 1, false));
    cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "min: cannot reduce the empty axis of [2,0]");
}

Test(ops, prod_values_and_gradient_exact_with_zeros)
{
    for (int di = 0; di < 2; di++) {
        tg_dtype dt = DTYPES[di];
        tg_tape_reset(tape);
        /* Along axis 1: row 0 has no zero, row 1 one zero (flat 3). */
        tg_tensor *x = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(2, 3, 4, 0, 5, 6), true);
        tg_tensor *p = tg_prod(tape, x, 1, false);
        cr_expect_eq(tg_tensor_op(p), TG_OP_PROD);
        EXPECT_VALUES("prod axis 1", p, 24, 0);
        backward_seed(p, TS_VALS(1, 2));
        /* the product of the others: (12, 8, 6); with one zero only it gets one, 2 * 30 */
        EXPECT_GRAD("prod axis 1: one zero", x, 12, 8, 6, 60, 0, 0);

        /* Along axis 0, keepdim: column 0 has the zero. */
        tg_tensor *u = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(2, 3, 4, 0, 5, 6), true);
        tg_tensor *pu = tg_prod(tape, u, 0, true);
        expect_shape("prod axis 0 keepdim", pu, 2, TS_SHAPE(1, 3));
        EXPECT_VALUES("prod axis 0", pu, 0, 15, 24);
        backward_seed(pu, NULL);
        EXPECT_GRAD("prod axis 0", u, 0, 5, 6, 2, 3, 4);

        /* Two zeros in a lane: every gradient of it is 0 (each element has a zero among the
         * others), and no NaN from 0/0. */
        tg_tensor *w = own_leaf(dt, 1, TS_SHAPE(4), TS_VALS(0, 5, 0, -3), true);
        tg_tensor *pw = tg_prod(tape, w, TG_ALL_AXES, false);
        EXPECT_VALUES("prod with two zeros", pw, 0);
        backward_seed(pw, NULL);
        EXPECT_GRAD("prod with two zeros", w, 0, 0, 0, 0);

        /* All elements, one zero, negatives: the zero's gradient is the product of the rest,
         * 1.5 * -2 * 4 * 0.5 * 3 = -18. */
        tg_tensor *v = own_leaf(dt, 2, TS_SHAPE(2, 3), TS_VALS(1.5, -2, 0, 4, 0.5, 3), true);
        tg_tensor *pv = tg_prod(tape, v, TG_ALL_AXES, true);
        expect_shape("prod all keepdim", pv, 2, TS_SHAPE(1, 1));
        EXPECT_VALUES("prod all", pv, 0);
        backward_seed(pv, TS_VALS(2));
        EXPECT_GRAD("prod all: one zero", v, 0, 0, -36, 0, 0, 0);

        /* No zeros, a 3-D middle axis: (2,2,2) along axis 1. */
        tg_tensor *t = own_leaf(dt, 3, TS_SHAPE(2, 2, 2), TS_VALS(1, 2, 3, 4, -1, 0.5, 2, 8), true);
        tg_tensor *pt = tg_prod(tape, t, 1, false);
        EXPECT_VALUES("prod axis 1 of (2,2,2)", pt, 3, 8, -2, 4);
        backward_seed(pt, TS_VALS(1, 1, 1, 1));
        EXPECT_GRAD("prod axis 1 of (2,2,2)", t, 3, 4, 1, 2, 2, 8, -1, 0.5);

        /* An empty lane's product is 1 (NumPy), and a 0-d input is its own product. */
        tg_tensor *e = own(tg_tensor_zeros(dt, 2, TS_SHAPE(2, 0)));
        tg_tensor *pe = tg_prod(tape, e, 1, false);
        expect_shape("prod of (2,0) along 1", pe, 1, TS_SHAPE(2));
        EXPECT_VALUES("prod of empty lanes", pe, 1, 1);
        tg_tensor *s = own_leaf(dt, 0, NULL, TS_VALS(-2.5), true);
        tg_tensor *ps = tg_prod(tape, s, TG_ALL_AXES, false);
        EXPECT_VALUES("prod of a 0-d", ps, -2.5);
        backward_seed(ps, TS_VALS(3));
        EXPECT_GRAD("prod of a 0-d", s, 3);
    }
}
