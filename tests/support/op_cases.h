/* op_cases.h: which kind of inputs each op's derivative checks draw, shared by
 * test_gradcheck.c (first order) and test_gradgradcheck.c (second order): one row per tg_op,
 * X(OP, case function). Each test defines every case function its own way and builds its
 * table from these rows (CASES, keyed by tg_op); both coverage tests fail for an op without a
 * row, so a new op cannot be added without both checks, and the two cannot drift apart on
 * how an op's inputs are chosen (away from kinks and domain edges). */
#ifndef TAPEGRAD_TESTS_OP_CASES_H
#define TAPEGRAD_TESTS_OP_CASES_H

#define TG_OP_CASES(X)                                                                             \
    X(CONST, case_const)                                                                           \
    X(DETACH, case_detach)                                                                         \
    X(ADD, case_binary)                                                                            \
    X(SUB, case_binary)                                                                            \
    X(MUL, case_binary)                                                                            \
    X(DIV, case_binary)                                                                            \
    X(NEG, case_unary)                                                                             \
    X(SCALE, case_with_constant)                                                                   \
    X(ADD_SCALAR, case_with_constant)                                                              \
    X(POW, case_pow)                                                                               \
    X(SQUARE, case_unary)                                                                          \
    X(SQRT, case_unary_positive)                                                                   \
    X(EXP, case_unary_tails)                                                                       \
    X(LOG, case_unary_positive)                                                                    \
    X(ABS, case_unary_kink)                                                                        \
    X(SIGMOID, case_unary_tails)                                                                   \
    X(TANH, case_unary_tails)                                                                      \
    X(RELU, case_unary_kink)                                                                       \
    X(LOG_SIGMOID, case_unary_tails)                                                               \
    X(CLAMP, case_clamp)                                                                           \
    X(MATMUL, case_matmul)                                                                         \
    X(TRANSPOSE, case_transpose)                                                                   \
    X(RESHAPE, case_reshape)                                                                       \
    X(SUM, case_reduce)                                                                            \
    X(MEAN, case_reduce)                                                                           \
    X(MAX, case_reduce)                                                                            \
    X(LOGSUMEXP, case_reduce)                                                                      \
    X(SOFTMAX, case_softmax)                                                                       \
    X(LOG_SOFTMAX, case_softmax)                                                                   \
    /* elementwise math */                                                                         \
    X(SIN, case_math_tails)                                                                        \
    X(COS, case_math_tails)                                                                        \
    X(TAN, case_tan)                                                                               \
    X(ASIN, case_unit_interval)                                                                    \
    X(ACOS, case_unit_interval)                                                                    \
    X(ATAN, case_math_tails)                                                                       \
    X(SINH, case_math_tails)                                                                       \
    X(COSH, case_math_tails)                                                                       \
    X(ASINH, case_math_tails)                                                                      \
    X(ACOSH, case_acosh)                                                                           \
    X(ATANH, case_unit_interval)                                                                   \
    X(EXPM1, case_math_tails)                                                                      \
    X(LOG1P, case_log1p)                                                                           \
    X(ERF, case_math_tails)                                                                        \
    X(SOFTPLUS, case_math_tails)                                                                   \
    X(GELU, case_math_tails)                                                                       \
    X(SILU, case_math_tails)                                                                       \
    X(SIGN, case_zero_gradient)                                                                    \
    X(FLOOR, case_zero_gradient)                                                                   \
    X(CEIL, case_zero_gradient)                                                                    \
    X(SLICE, case_slice)                                                                           \
    X(SELECT, case_select)                                                                         \
    X(CONCAT, case_concat)                                                                         \
    X(STACK, case_join)                                                                            \
    X(TAKE, case_take)                                                                             \
    X(PERMUTE, case_permute)                                                                       \
    X(MINIMUM, case_minmax)                                                                        \
    X(MAXIMUM, case_minmax)                                                                        \
    X(ATAN2, case_atan2)                                                                           \
    X(POW_TENSOR, case_pow_tensor)                                                                 \
    X(LT, case_compare)                                                                            \
    X(LE, case_compare)                                                                            \
    X(GT, case_compare)                                                                            \
    X(GE, case_compare)                                                                            \
    X(EQ, case_compare)                                                                            \
    X(NE, case_compare)                                                                            \
    X(WHERE, case_where)                                                                           \
    X(MIN, case_reduce)                                                                            \
    X(PROD, case_prod)                                                                             \
    X(CUSTOM, case_custom)                                                                         \
    X(INDEX_ADD, case_take)

/* One row as a designated initializer of a table indexed by tg_op. */
#define TG_OP_CASE_ENTRY(op, fn) [TG_OP_##op] = fn,

#endif
