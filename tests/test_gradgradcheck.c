/* test_gradgradcheck.c: every op in the table differentiated twice (tg_gradgradcheck, f64): the
 * gradient that tg_grad_graph records, differentiated again, against central differences of
 * tg_grad's first-order gradient, at seeded random shapes 0-d to 4-D, broadcasting, attributes
 * and fan-out; every function is checked as it is and squared (op(x) * op(x)), so that each
 * op's recorded VJP also receives a gradient that depends on the inputs.
 *
 * As in test_gradcheck.c the cases are a table keyed by tg_op, CASES: every_op_has_a_case
 * walks the op table and fails for an op without a case, and each_op runs one test per op.
 * Inputs stay away from kinks and domain edges as there. The ops that carry no gradient
 * (const, detach, the comparisons) are checked to stay out of it: their outputs never require
 * grad and the recorded gradients through them are constants. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "gradgradcheck/gradgradcheck.h"

/* The table: every op must have an entry (every_op_has_a_case checks). */
static const case_fn CASES[TG_OP_COUNT] = {
    [TG_OP_CONST] = case_const,
    [TG_OP_DETACH] = case_detach,
    [TG_OP_ADD] = case_binary,
    [TG_OP_SUB] = case_binary,
    [TG_OP_MUL] = case_binary,
    [TG_OP_DIV] = case_binary,
    [TG_OP_NEG] = case_unary,
    [TG_OP_SCALE] = case_with_constant,
    [TG_OP_ADD_SCALAR] = case_with_constant,
    [TG_OP_POW] = case_pow,
    [TG_OP_SQUARE] = case_unary,
    [TG_OP_SQRT] = case_unary_positive,
    [TG_OP_EXP] = case_unary_tails,
    [TG_OP_LOG] = case_unary_positive,
    [TG_OP_ABS] = case_unary_kink,
    [TG_OP_SIGMOID] = case_unary_tails,
    [TG_OP_TANH] = case_unary_tails,
    [TG_OP_RELU] = case_unary_kink,
    [TG_OP_LOG_SIGMOID] = case_unary_tails,
    [TG_OP_CLAMP] = case_clamp,
    [TG_OP_MATMUL] = case_matmul,
    [TG_OP_TRANSPOSE] = case_transpose,
    [TG_OP_RESHAPE] = case_reshape,
    [TG_OP_SUM] = case_reduce,
    [TG_OP_MEAN] = case_reduce,
    [TG_OP_MAX] = case_reduce,
    [TG_OP_LOGSUMEXP] = case_reduce,
    [TG_OP_SOFTMAX] = case_softmax,
    [TG_OP_LOG_SOFTMAX] = case_softmax,
    [TG_OP_SIN] = case_math_tails,
    [TG_OP_COS] = case_math_tails,
    [TG_OP_TAN] = case_tan,
    [TG_OP_ASIN] = case_unit_interval,
    [TG_OP_ACOS] = case_unit_interval,
    [TG_OP_ATAN] = case_math_tails,
    [TG_OP_SINH] = case_math_tails,
    [TG_OP_COSH] = case_math_tails,
    [TG_OP_ASINH] = case_math_tails,
    [TG_OP_ACOSH] = case_acosh,
    [TG_OP_ATANH] = case_unit_interval,
    [TG_OP_EXPM1] = case_math_tails,
    [TG_OP_LOG1P] = case_log1p,
    [TG_OP_ERF] = case_math_tails,
    [TG_OP_SOFTPLUS] = case_math_tails,
    [TG_OP_GELU] = case_math_tails,
    [TG_OP_SILU] = case_math_tails,
    [TG_OP_SIGN] = case_zero_gradient,
    [TG_OP_FLOOR] = case_zero_gradient,
    [TG_OP_CEIL] = case_zero_gradient,
    [TG_OP_SLICE] = case_slice,
    [TG_OP_SELECT] = case_select,
    [TG_OP_CONCAT] = case_join,
    [TG_OP_STACK] = case_join,
    [TG_OP_TAKE] = case_take,
    [TG_OP_PERMUTE] = case_permute,
    [TG_OP_MINIMUM] = case_minmax,
    [TG_OP_MAXIMUM] = case_minmax,
    [TG_OP_ATAN2] = case_atan2,
    [TG_OP_POW_TENSOR] = case_pow_tensor,
    [TG_OP_LT] = case_compare,
    [TG_OP_LE] = case_compare,
    [TG_OP_GT] = case_compare,
    [TG_OP_GE] = case_compare,
    [TG_OP_EQ] = case_compare,
    [TG_OP_NE] = case_compare,
    [TG_OP_WHERE] = case_where,
    [TG_OP_MIN] = case_reduce,
    [TG_OP_PROD] = case_prod,
    [TG_OP_CUSTOM] = case_custom,
};

Test(gradgradcheck, every_op_has_a_case)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        cr_expect(CASES[op] != NULL, "op %s (%d) has no gradgradcheck case", tg_op_name((tg_op)op),
                  op);
    }
}

/* One test per op, so that a failure names it: the parameters are the op table itself. */
ParameterizedTestParameters(gradgradcheck, each_op)
{
    static tg_op ops[TG_OP_COUNT];
    for (int op = 0; op < TG_OP_COUNT; op++)
        ops[op] = (tg_op)op;
    return cr_make_param_array(tg_op, ops, TG_OP_COUNT);
}

ParameterizedTest(tg_op *op, gradgradcheck, each_op)
{
    cr_assert(CASES[*op] != NULL, "no gradgradcheck case for %s", tg_op_name(*op));
    tg_rng rng;
    tg_rng_seed(&rng, 2000 + (uint64_t)*op);
    g_cases = 0;
    CASES[*op](*op, &rng);
    cr_expect(g_cases > 0, "op %s: its case ran no check", tg_op_name(*op));
}
