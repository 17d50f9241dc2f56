/* test_gradcheck.c: every op in the table against central finite differences (tg_gradcheck,
 * f64, tol 1e-7), at several seeded random shapes including 0-d and broadcasting; a few
 * composite functions and fan-out graphs; and the behaviour of tg_gradcheck itself.
 *
 * The cases are a table keyed by tg_op, CASES (its rows, which kind of inputs each op draws,
 * shared with test_gradgradcheck.c: support/op_cases.h): the coverage test walks the op table
 * and fails for an op that has no case, so a new op cannot be added without a gradient check,
 * and each_op runs one test per op of the table. Every op is applied through tg_apply. Inputs
 * stay away from kinks (relu/abs near 0, ties in max/min/minimum/maximum, non-positive inputs
 * of sqrt/log/pow, atan2's origin and jump, comparisons near a flip); the comparisons are
 * also checked for their exact masks and for carrying no gradient.
 *
 * The parts (tests/gradcheck/, built into this test): harness.c (inputs, one check),
 * cases_unary.c, cases_binary.c, cases_shape.c, cases_custom.c (the case functions by
 * family), composite.c; gradcheck.h declares what they share. Here: the table, the tests
 * that run it, and the tests of tg_gradcheck itself. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "gradcheck/gradcheck.h"
#include "support/alloc.h"
#include "support/op_cases.h"

/* The table, from the rows test_gradgradcheck.c shares (support/op_cases.h): every op must
 * have an entry (the coverage test checks). */
static const case_fn CASES[TG_OP_COUNT] = {TG_OP_CASES(TG_OP_CASE_ENTRY)};

static void run_op(tg_op op)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint64_t)op);
    g_cases = 0;
    CASES[op](op, &rng);
    cr_expect(g_cases > 0, "op %s: its case ran no check", tg_op_name(op));
}

Test(gradcheck, every_op_has_a_case)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        cr_expect(strcmp(tg_op_name((tg_op)op), "?") != 0, "op %d has no name", op);
        cr_expect(CASES[op] != NULL, "op %s (%d) has no gradcheck case", tg_op_name((tg_op)op),
                  op);
    }
}

/* One test per op, so that a failure names it: the parameters are the op table itself. */
ParameterizedTestParameters(gradcheck, each_op)
{
    static tg_op ops[TG_OP_COUNT];
    for (int op = 0; op < TG_OP_COUNT; op++)
        ops[op] = (tg_op)op;
    return cr_make_param_array(tg_op, ops, TG_OP_COUNT);
}

ParameterizedTest(tg_op *op, gradcheck, each_op)
{
    cr_assert(CASES[*op] != NULL, "no gradcheck case for %s", tg_op_name(*op));
    run_op(*op);
}

/* ---- tg_gradcheck itself --------------------------------------------------------------------- */

/* y = sum(x^2) with the gradient deliberately wrong through detach: analytic x, numeric 2x. */
static tg_tensor *wrong_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(t, tg_mul(t, in[0], tg_detach(t, in[0])), TG_ALL_AXES, false);
}

Test(gradcheck, reports_a_wrong_gradient_and_its_error)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1.0, -2.0, 0.5), false);
    double err = -1;
    tg_status st = tg_gradcheck(wrong_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_ENUMERIC, "status %s: %s", tg_status_name(st), tg_last_error());
    /* worst element: analytic -2, numeric -4: |2| / max(1, 2, 4) = 0.5 */
    cr_expect(fabs(err - 0.5) < 1e-6, "max error %g, expected 0.5", err);
    ts_assert_has(tg_last_error(), "gradcheck");
    tg_tensor_free(x);
}

static tg_tensor *f32_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    size_t shape[1] = {3};
    const float one[3] = {1, 1, 1};
    tg_tensor *c = tg_constant(t, TG_F32, 1, shape, one);
    return tg_sum(t, tg_mul(t, in[0], c), TG_ALL_AXES, false); /* f64 * f32: an error */
}

static tg_tensor *null_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)t;
    (void)in;
    (void)n;
    (void)ud;
    return NULL;
}

static tg_tensor *f64_sum_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_sum(t, tg_square(t, in[0]), TG_ALL_AXES, false);
}

Test(gradcheck, reports_errors_of_fn_and_arguments)
{
    const double v[3] = {1.0, -2.0, 0.5};
    tg_tensor *x = ts_vec(TG_F64, 3, v, false);
    tg_status st = tg_gradcheck(f32_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EDTYPE, "mixed dtypes: %s: %s", tg_status_name(st), tg_last_error());
    st = tg_gradcheck(null_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "fn returning NULL: %s: %s", tg_status_name(st),
                 tg_last_error());
    st = tg_gradcheck(NULL, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "NULL fn: %s", tg_status_name(st));
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.eps = 0;
    st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, &opt, NULL);
    cr_expect_eq(st, TG_EINVAL, "eps 0: %s", tg_status_name(st));
    opt = (tg_gradcheck_options)TG_GRADCHECK_OPTIONS_INIT;
    const double bad_tol[] = {NAN, -1e-7};
    for (int k = 0; k < 2; k++) {
        opt.tol = bad_tol[k];
        st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, &opt, NULL);
        cr_expect_eq(st, TG_EINVAL, "tol %g: %s", opt.tol, tg_status_name(st));
        ts_assert_has(tg_last_error(), "gradcheck: tol must be a number >= 0");
    }
    tg_tensor *none = NULL;
    st = tg_gradcheck(f64_sum_fn, NULL, &none, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "NULL input: %s", tg_status_name(st));
    /* The inputs are left as they were (the check perturbs copies). */
    st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    for (size_t i = 0; i < 3; i++)
        cr_expect(tg_tensor_get(x, i) == v[i]);
    cr_expect(tg_tensor_grad_data(x) == NULL, "gradcheck wrote the input's grad");
    tg_tensor_free(x);
}

Test(gradcheck, accepts_f32_inputs_as_f64_copies)
{
    size_t shape[2] = {2, 2};
    const float v[4] = {0.5f, -1.25f, 2.0f, 0.75f};
    tg_tensor *x = tg_tensor_from_data(TG_F32, 2, shape, v);
    double err = -1;
    tg_status st = tg_gradcheck(f64_sum_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    cr_expect(err >= 0 && err <= TOL, "max error %g", err);
    tg_tensor_free(x);
}

/* y = 3 whatever x is: its gradient is 0, which finite differences agree with. */
static tg_tensor *constant_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)in, (void)n, (void)ud;
    return tg_scalar(t, TG_F64, 3);
}

Test(gradcheck, a_function_of_no_input_passes_with_a_zero_gradient)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1.0, 2.0, 3.0), false);
    double err = -1;
    tg_status st = tg_gradcheck(constant_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    cr_expect_eq(err, 0);
    st = tg_gradgradcheck(constant_fn, NULL, &x, 1, NULL, &err);
    cr_expect_eq(st, TG_OK, "gradgradcheck: %s: %s", tg_status_name(st), tg_last_error());
    tg_tensor_free(x);
}

/* y = x[0:2], or x[0:3] once x[0] is nudged above 1: an output whose size depends on the
 * input, which must be an error rather than a read of weights past the first output's size. */
static tg_tensor *growing_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double x0 = tg_tensor_get(in[0], 0);
    return tg_slice(t, in[0], 0, 0, x0 > 1.0 ? 3 : 2, 1);
}

Test(gradcheck, output_growing_with_the_input_is_eshape)
{
    tg_tensor *x = ts_vec(TG_F64, 4, TS_VALS(1.0, 2.0, 3.0, 4.0), false);
    tg_status st = tg_gradcheck(growing_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_ESHAPE, "%s: %s", tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "shape depends on the input");
    tg_tensor_free(x);
}

/* f = sum(a^2) + sum(b * detach(b)^k), k = 1 (*ud == 1) or 2: with b = (0, 0, 3) only b's
 * element 2 is off, in the gradient (k = 1: b against 2b) or in the second derivative (k = 2:
 * the recorded gradient detach(b)^2 has none, finite differences of b^2 give 2b u). */
static tg_tensor *one_off_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    tg_tensor *d = tg_detach(t, in[1]);
    if (*(const int *)ud == 2)
        d = tg_mul(t, d, d);
    return tg_add(t, tg_sum(t, tg_square(t, in[0]), TG_ALL_AXES, false),
                  tg_sum(t, tg_mul(t, in[1], d), TG_ALL_AXES, false));
}

Test(gradcheck, failure_names_the_input_and_element)
{
    tg_tensor *in[2] = {ts_vec(TG_F64, 2, TS_VALS(0.5, -1.5), false),
                        ts_vec(TG_F64, 3, TS_VALS(0.0, 0.0, 3.0), false)};
    int k = 1;
    tg_status st = tg_gradcheck(one_off_fn, &k, in, 2, NULL, NULL);
    cr_expect_eq(st, TG_ENUMERIC, "%s: %s", tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "input 1, element 2");
    ts_assert_has(tg_last_error(), "the gradient is 3, finite differences give 6");
    k = 2;
    st = tg_gradgradcheck(one_off_fn, &k, in, 2, NULL, NULL);
    cr_expect_eq(st, TG_ENUMERIC, "%s: %s", tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "input 1, element 2");
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
}

/* y = x[0:0], no elements: the check passes (nothing to compare) and gives back every byte it
 * took, by the sizes it took them with (the allocator hook is told the size of each block). */
static tg_tensor *empty_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    return tg_slice(t, in[0], 0, 0, 0, 1);
}

Test(gradcheck, empty_output_frees_what_it_took)
{
    ts_alloc_install();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1.0, 2.0, 3.0), false);
    tg_status st = tg_gradcheck(empty_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    st = tg_gradgradcheck(empty_fn, NULL, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_OK, "%s: %s", tg_status_name(st), tg_last_error());
    tg_tensor_free(x);
    cr_expect_eq(ts_alloc.live, 0);
    cr_expect_eq(ts_alloc.bytes, 0, "%lld bytes not given back by their size", ts_alloc.bytes);
    ts_alloc_uninstall();
}
