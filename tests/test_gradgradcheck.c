/* test_gradgradcheck.c: every op in the table differentiated twice (tg_gradgradcheck, f64): the
 * gradient that tg_grad_graph records, differentiated again, against central differences of
 * tg_grad's first-order gradient, at seeded random shapes 0-d to 4-D, broadcasting, attributes
 * and fan-out; every function is checked as it is and squared (op(x) * op(x)), so that each
 * op's recorded VJP also receives a gradient that depends on the inputs.
 *
 * As in test_gradcheck.c, and from the same rows (support/op_cases.h), the cases are a table
 * keyed by tg_op, CASES: every_op_has_a_case
 * walks the op table and fails for an op without a case, and each_op runs one test per op.
 * Inputs stay away from kinks and domain edges as there. The ops that carry no gradient
 * (const, detach, the comparisons) are checked to stay out of it: their outputs never require
 * grad and the recorded gradients through them are constants. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "gradgradcheck/gradgradcheck.h"
#include "support/op_cases.h"

/* The table, from the rows test_gradcheck.c shares (support/op_cases.h): every op must have
 * an entry (every_op_has_a_case checks). */
static const case_fn CASES[TG_OP_COUNT] = {TG_OP_CASES(TG_OP_CASE_ENTRY)};

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
