/* test_cli_minimize.c: `tapegrad minimize` on tgx programs with known minima (Rosenbrock in 2
 * and 10 dimensions at all ones, Beale at (3, 0.5), a convex quadratic in one Newton step, a
 * least-squares fit with --const data solved by hand), every method; the JSON object and its
 * keys, the text, progress on stderr only, and the exit status: 0 converged, 1 not converged
 * (the result still printed) or a failure, 2 bad usage. */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/proc.h"

#define RUN(...) tp_tapegrad((const char *const[]){"minimize", __VA_ARGS__, NULL}, NULL)

static const char *ROSEN = "(1 - x)^2 + 100*(y - x^2)^2";
/* chained Rosenbrock on a vector, by slices */
static const char *ROSEN_N = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";
static const char *BEALE = "(1.5 - x + x*y)^2 + (2.25 - x + x*y^2)^2 + (2.625 - x + x*y^3)^2";

static tj json_run(tp_run *r, int status)
{
    tp_expect_status(r, status);
    tj o = tj_line(r->out);
    tj_expect_keys(&o, TJ_KEYS("value", "x", "iterations", "converged", "method", "grad_norm",
                               "stop", "evaluations", "grad_evaluations", "hessian_evaluations"));
    return o;
}

static bool is_true(const tj *o, const char *key)
{
    const tj *v = tj_get(o, key);
    cr_assert(v && v->type == TJ_BOOL, "%s is a boolean", key);
    return v->num != 0;
}

Test(cli_minimize, rosenbrock_2d_every_method)
{
    static const char *methods[] = {"lbfgs", "newton", "gd"};
    for (int m = 0; m < 3; m++) {
        /* gd at a stable rate crawls along the valley: 1e5 steps reach 1e-6 */
        tp_run r = m < 2 ? RUN(ROSEN, "x=-1.2", "y=1", "--method", methods[m], "--json")
                         : RUN(ROSEN, "x=-1.2", "y=1", "--method=gd", "--lr", "1e-3", "--max-iter",
                               "200000", "--tol", "1e-7", "--json");
        tj o = json_run(&r, 0);
        cr_assert(is_true(&o, "converged"), "%s", methods[m]);
        cr_assert_str_eq(tj_str_of(&o, "method"), methods[m]);
        cr_assert_str_eq(tj_str_of(&o, "stop"), "converged");
        const tj *x = tj_get(&o, "x");
        tj_expect_keys(x, TJ_KEYS("x", "y"));
        ts_assert_close(tj_num_of(x, "x"), 1, 1e-6, 0, "%s: x", methods[m]);
        ts_assert_close(tj_num_of(x, "y"), 1, 1e-6, 0, "%s: y", methods[m]);
        cr_assert_leq(tj_num_of(&o, "grad_norm"), m < 2 ? 1e-8 : 1e-7);
        double it = tj_num_of(&o, "iterations");
        if (m == 0) /* L-BFGS: 37 measured, 30-40 published (test_minimize.c) */
            cr_assert(it >= 20 && it <= 60, "lbfgs: %g iterations", it);
        if (m == 1)
            cr_assert(it <= 40 && tj_num_of(&o, "hessian_evaluations") == it, "newton: %g", it);
        /* progress on stderr: a line for the start and one per iteration, none on stdout */
        ts_assert_has(r.err, "iter    0  f = 24.2");
        ts_assert_lacks(r.out, "iter ");
        tj_free(&o);
        tp_run_free(&r);
    }
}

Test(cli_minimize, rosenbrock_10d_and_beale)
{
    tp_run r = RUN(ROSEN_N, "x=[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]", "--json", "-q");
    tj o = json_run(&r, 0);
    const tj *x = tj_get(tj_get(&o, "x"), "x");
    cr_assert(x && x->type == TJ_ARR && x->n == 10);
    for (size_t i = 0; i < 10; i++)
        ts_assert_close(tj_elem(x, i), 1, 1e-6, 0, "x[%zu]", i);
    cr_assert_str_eq(r.err, "", "--quiet: no progress");
    tj_free(&o);
    tp_run_free(&r);

    r = RUN(BEALE, "x=1", "y=1", "--json", "-q");
    o = json_run(&r, 0);
    ts_assert_close(tj_num_of(tj_get(&o, "x"), "x"), 3, 1e-6, 0, "beale x");
    ts_assert_close(tj_num_of(tj_get(&o, "x"), "y"), 0.5, 1e-6, 0, "beale y");
    ts_assert_close(tj_num_of(&o, "value"), 0, 1e-12, 0, "beale's minimum");
    tj_free(&o);
    tp_run_free(&r);
}

/* sum((A x - b)^2) with A = [[1, 1], [1, 2], [1, 3]], b = (1, 2, 2), A and b bound with
 * --const: the normal equations A^T A x = A^T b, [[3, 6], [6, 14]] x = (5, 11), give
 * x = (2/3, 1/2) (det 6: x0 = (5*14 - 6*11)/6 = 4/6, x1 = (3*11 - 6*5)/6 = 3/6), residuals
 * (-1/6, 1/3, -1/6), minimum 1/36 + 1/9 + 1/36 = 1/6. A quadratic: one Newton step. */
Test(cli_minimize, least_squares_with_consts_in_one_newton_step)
{
    tp_run r =
        RUN("r = sum(A * x, 1) - b; sum(r * r)", "x=[0, 0]", "--const",
            "A=[[1, 1], [1, 2], [1, 3]]", "--const=b=[1, 2, 2]", "--method", "newton", "--json");
    tj o = json_run(&r, 0);
    tj_expect_keys(tj_get(&o, "x"), TJ_KEYS("x"));
    const tj *x = tj_get(tj_get(&o, "x"), "x");
    ts_assert_close(tj_elem(x, 0), 2.0 / 3, 1e-12, 0, "x0");
    ts_assert_close(tj_elem(x, 1), 0.5, 1e-12, 0, "x1");
    ts_assert_close(tj_num_of(&o, "value"), 1.0 / 6, 1e-14, 1e-12, "minimum");
    cr_assert_eq(tj_num_of(&o, "iterations"), 1, "a quadratic takes one Newton step");
    tj_free(&o);
    tp_run_free(&r);
}

Test(cli_minimize, text_output)
{
    tp_run r = RUN(ROSEN, "x=-1.2", "y=1");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "value = ");
    ts_assert_has(r.out, "\nx = 1");
    ts_assert_has(r.out, "\ny = 1");
    ts_assert_has(r.out, "lbfgs converged after ");
    ts_assert_has(r.err, "minimize: lbfgs over 2 inputs\n");
    tp_run_free(&r);
    /* started at the minimum: nothing to do, counted in the singular */
    r = RUN("x^2", "x=0", "-q");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out,
                  "lbfgs converged after 0 iterations (1 evaluation, 1 gradient), |grad| = 0");
    tp_run_free(&r);
}

Test(cli_minimize, not_converging_exits_1_with_the_result)
{
    tp_run r = RUN(ROSEN, "x=-1.2", "y=1", "--max-iter", "3", "--json", "-q");
    tj o = json_run(&r, 1);
    cr_assert_not(is_true(&o, "converged"));
    cr_assert_str_eq(tj_str_of(&o, "stop"), "max_iter");
    cr_assert_eq(tj_num_of(&o, "iterations"), 3);
    ts_assert_has(r.err, "did not converge: the iteration limit was reached");
    tj_free(&o);
    tp_run_free(&r);

    /* abs(x) has no gradient of 0 to reach: the run stops making progress, and says which
     * rules stop it so */
    r = RUN("sum(abs(x)) + sum(x^2)", "x=[1,-2,3]", "--json", "-q");
    o = json_run(&r, 1);
    cr_assert_str_eq(tj_str_of(&o, "stop"), "no_progress");
    ts_assert_has(r.err, "did not converge: no progress (the line search found no lower value, "
                         "or 10 iterations in a row lowered neither f nor |grad|)");
    tj_free(&o);
    tp_run_free(&r);

    /* gd at too large a rate diverges: exit 1, the last finite point shown */
    r = RUN("sum(x*x)", "x=[1, 2]", "--method", "gd", "--lr", "5", "-q");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "gd diverged");
    ts_assert_has(r.out, "gd did not converge");
    tp_run_free(&r);

    /* a function unbounded below, whose value overflows to -inf: said so, not blamed on --tol */
    const char *methods[] = {"lbfgs", "newton"};
    for (size_t i = 0; i < 2; i++) {
        r = RUN("--method", methods[i], "-q", "--", "-exp(x)", "x=1");
        tp_expect_status(&r, 1);
        ts_assert_has(r.err, "diverged: the value fell to -inf at a trial point");
        ts_assert_has(r.err, "(is the function bounded below?)");
        ts_assert_lacks(r.err, "--tol");
        ts_assert_has(r.out, "x = 1\n"); /* the last accepted point: the start */
        tp_run_free(&r);
    }
}

Test(cli_minimize, failures_exit_1)
{
    tp_run r = RUN("x * x", "x=[1, 2]");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "shape [2]; it must be a single element");
    tp_run_free(&r);
    r = RUN("x + zz", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "no value for input 'zz'");
    ts_assert_has(r.err, "hint: give it a value: zz=VALUE to minimize over it, --const zz=VALUE");
    tp_run_free(&r);
    r = RUN("log(x)", "x=-1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "the function is NaN at the start");
    tp_run_free(&r);
    r = RUN("x +", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "error: 1:");
    tp_run_free(&r);
    r = RUN("-f", "/nonexistent/program.tgx", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "cannot read '/nonexistent/program.tgx'");
    tp_run_free(&r);
}

Test(cli_minimize, usage_errors_exit_2)
{
    const char *const cases[][6] = {
        {"x^2", "x=1", "--method", "bfgs", NULL},
        {"x^2", "x=1", "--max-iter", "-1", NULL},
        {"x^2", "x=1", "--max-iter", "2.5", NULL},
        /* counts are decimal digits, as train's: these were read as 1000, 16 and 5 */
        {"x^2", "x=1", "--max-iter", "1e3", NULL},
        {"x^2", "x=1", "--max-iter", "0x10", NULL},
        {"x^2", "x=1", "--memory", "+5", NULL},
        {"x^2", "x=1", "--max-iter", " 5", NULL},
        {"x^2", "x=1", "--max-iter", "", NULL},
        {"x^2", "x=1", "--tol", "-1", NULL},
        {"x^2", "x=1", "--lr", "0", NULL},
        {"x^2", "x=1", "--memory", "0", NULL},
        {"x^2", "--const", "x=1", NULL},
        {"x^2", "x=[1", NULL},
        {"x^2", "x=1", "x=2", NULL},
        {"x^2", "sum=1", NULL},
        {"x^2", "x=1", "--bogus", NULL},
        {NULL},
    };
    for (size_t i = 0; cases[i][0]; i++) {
        const char *args[8] = {"minimize"};
        size_t k = 1;
        for (size_t j = 0; cases[i][j]; j++)
            args[k++] = cases[i][j];
        tp_run r = tp_tapegrad(args, NULL);
        tp_expect_status(&r, 2);
        ts_assert_has(r.err, "Try 'tapegrad minimize --help'");
        tp_run_free(&r);
    }
    tp_run r = tp_tapegrad((const char *const[]){"minimize", NULL}, NULL);
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "no program given");
    tp_run_free(&r);
    r = RUN("--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad minimize");
    ts_assert_has(r.out, "Exit status: 0 converged; 1 not converged");
    tp_run_free(&r);
    /* and the command is listed */
    r = tp_tapegrad((const char *const[]){"--help", NULL}, NULL);
    ts_assert_has(r.out, "minimize");
    tp_run_free(&r);
}

Test(cli_minimize, program_from_stdin)
{
    tp_opts opts = {0};
    opts.stdin_text = "d = x - 3\nd * d\n";
    tp_run r = tp_tapegrad(
        (const char *const[]){"minimize", "-f", "-", "x=0", "--json", "-q", NULL}, &opts);
    tj o = json_run(&r, 0);
    ts_assert_close(tj_num_of(tj_get(&o, "x"), "x"), 3, 1e-9, 0, "x");
    tj_free(&o);
    tp_run_free(&r);
}
