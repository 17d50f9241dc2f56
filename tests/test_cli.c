/* test_cli.c: the `tapegrad` command, run as a subprocess from the build's tools directory
 * (TG_TOOLS_DIR): `grad`'s human and JSON output (read by tests/support/json.c), exit
 * statuses 0/1/2 with their stderr messages, --const, --seed, --check, --dtype, -f FILE and
 * -f - (stdin), --dot/--render, and the top-level --help/--version. */
#include <criterion/criterion.h>
#include <tapegrad.h>
#include <tapegrad/io.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/proc.h"

/* ---- running the command --------------------------------------------------------------------- */

/* Runs `tapegrad args...`, feeding stdin_text (or nothing). */
#define RUN(...) tp_tapegrad((const char *const[]){__VA_ARGS__, NULL}, NULL)
#define RUN_STDIN(text, ...)                                                                       \
    tp_tapegrad((const char *const[]){__VA_ARGS__, NULL}, &(tp_opts){.stdin_text = (text)})

/* ---- tapegrad grad: results ---------------------------------------------------------------- */

static const char *MICROGRAD = "z = 2*x + 2 + x; q = relu(z) + z*x; h = relu(z*z); h + q + q*x";

Test(grad, micrograd_human)
{
    tp_run r = RUN("grad", MICROGRAD, "x=-4");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    cr_assert_str_eq(r.err, "");
    tp_run_free(&r);
}

Test(grad, micrograd_json)
{
    tp_run r = RUN("grad", "--json", MICROGRAD, "x=-4");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(&v, "value")), -20);
    const tj *shape = tj_get(&v, "shape");
    cr_assert(shape && shape->type == TJ_ARR && shape->n == 0);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 46);
    cr_assert_null(tj_get(&v, "check"));
    cr_assert_eq(v.n, 3, "value, shape, grad");
    tj_free(&v);
    tp_run_free(&r);
}

Test(grad, tensors_in_json_and_text)
{
    tp_run r = RUN("grad", "--json", "W @ x", "W=[[1, 2], [3, 4]]", "x=[[1], [1]]");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    const tj *value = tj_get(&v, "value"), *shape = tj_get(&v, "shape");
    cr_assert_eq(tj_elem(value, 0), 3);
    cr_assert_eq(tj_elem(value, 1), 7);
    cr_assert_eq(shape->n, 2);
    cr_assert_eq(shape->items[0].num, 2);
    cr_assert_eq(shape->items[1].num, 1);
    const tj *gW = tj_get(tj_get(&v, "grad"), "W"), *gx = tj_get(tj_get(&v, "grad"), "x");
    cr_assert_eq(gW->n, 2, "nested lists by row");
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(tj_elem(gW, i), 1);
    cr_assert_eq(tj_elem(gx, 0), 4);
    cr_assert_eq(tj_elem(gx, 1), 6);
    tj_free(&v);
    tp_run_free(&r);

    r = RUN("grad", "W @ x", "W=[[1, 2], [3, 4]]", "x=[[1], [1]]");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value [2,1] =\n  [[3],\n   [7]]\n"
                            "grad W [2,2] =\n  [[1, 1],\n   [1, 1]]\n"
                            "grad x [2,1] =\n  [[4],\n   [6]]\n");
    tp_run_free(&r);
    r = RUN("grad", "x * 0.5", "x=[2, -20, 0.25]");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value [3] = [    1,   -10, 0.125]\ngrad x [3] = [0.5, 0.5, 0.5]\n");
    tp_run_free(&r);
}

Test(grad, numbers_round_trip)
{
    tp_run r = RUN("grad", "--json", "x / 3", "x=1");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "\"value\": 0.33333333333333331"); /* 17 significant digits */
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(&v, "value")), 1.0 / 3.0);
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "x / 3", "x=1");
    ts_assert_has(r.out, "value = 0.3333333333333333\n"); /* shortest round-trip text */
    tp_run_free(&r);
    /* No NaN or Infinity in JSON: they are strings. */
    r = RUN("grad", "--json", "log(x)", "x=0");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "\"value\": \"-Infinity\"");
    ts_assert_has(r.out, "\"x\": \"Infinity\"");
    tj w = tj_object(r.out);
    tj_free(&w);
    tp_run_free(&r);
    r = RUN("grad", "--json", "sqrt(x)", "x=-1");
    ts_assert_has(r.out, "\"value\": \"NaN\"");
    tp_run_free(&r);
}

/* The text form is the shortest decimal that reads back. References: Python 3's repr, which is
 * that (python3 -c 'print(repr(2.0**149), repr(0.1 + 0.2), repr(2.0**-1022), ...)'), and for f32
 * the shortest float32 repr (2^-149 is 1e-45, 1/3 is 0.33333334). 2^149 reads back from 14
 * digits and 2^-645 from 15, and neither from 16: a search that assumes more digits always read
 * back, past 15, prints them with 17. */
Test(grad, shortest_text)
{
    static const struct {
        const char *dtype, *program, *input, *printed;
    } cases[] = {
        {"f64", "x", "x=7.1362384635298e+44", "7.1362384635298e+44"},     /* 2^149 */
        {"f64", "x", "x=6.84940421565126e-195", "6.84940421565126e-195"}, /* 2^-645 */
        {"f64", "x + 0.2", "x=0.1", "0.30000000000000004"},
        {"f64", "x", "x=5e-324", "5e-324"},
        {"f64", "x", "x=2.2250738585072014e-308", "2.2250738585072014e-308"},
        {"f64", "x", "x=1.7976931348623157e+308", "1.7976931348623157e+308"},
        {"f64", "x", "x=123456.789", "123456.789"},
        {"f64", "x * 2", "x=-4", "-8"},
        {"f32", "x / 3", "x=1", "0.33333334"},
        {"f32", "x", "x=1e-45", "1e-45"},
        {"f32", "x", "x=3.4028235e38", "3.4028235e+38"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tp_run r = RUN("grad", "--dtype", cases[i].dtype, cases[i].program, cases[i].input);
        tp_expect_status(&r, 0);
        char line[96];
        snprintf(line, sizeof line, "value = %s\n", cases[i].printed);
        cr_assert(strncmp(r.out, line, strlen(line)) == 0, "%s %s %s: got %s", cases[i].dtype,
                  cases[i].program, cases[i].input, r.out);
        tp_run_free(&r);
    }
}

Test(grad, dtype_f32)
{
    tp_run r = RUN("grad", "--json", "--dtype", "f32", "x * 0.1", "x=3");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(&v, "value")), (double)(3.0f * 0.1f));
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), (double)0.1f);
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "--dtype=f32", "x * 0.1", "x=3");
    cr_assert_str_eq(r.out, "value = 0.3\ngrad x = 0.1\n", "f32 values printed as f32");
    tp_run_free(&r);
}

/* The elementwise math ops are functions of the language: the example, against
 * python3 -c 'import math; print(repr(math.sin(1)*math.cos(2)), repr(math.cos(1)*math.cos(2)),
 * repr(-math.sin(1)*math.sin(2)))', and a few more of them through --check. */
Test(grad, elementwise_math)
{
    tp_run r = RUN("grad", "--json", "sin(x)*cos(y)", "x=1", "y=2");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    const tj *g = tj_get(&v, "grad");
    ts_assert_close(tj_num(tj_get(&v, "value")), -0.35017548837401463, 0, 1e-15, "value");
    ts_assert_close(tj_num(tj_get(g, "x")), -0.2248450953661529, 0, 1e-15, "grad x");
    ts_assert_close(tj_num(tj_get(g, "y")), -0.7651474012342926, 0, 1e-15, "grad y");
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "--check", "gelu(x) * atanh(y) + softplus(x) / cosh(y) + erf(x) * floor(y)",
            "x=[-1.5, 0.25, 2]", "y=0.5");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "check (central differences");
    ts_assert_has(r.out, "ok");
    tp_run_free(&r);
}

Test(grad, rebinding_and_const)
{
    tp_run r = RUN("grad", "--json", "c = x; c = c * 2; c = c + 1; c", "x=3");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(&v, "value")), 7);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 2);
    tj_free(&v);
    tp_run_free(&r);

    r = RUN("grad", "--json", "mse(p, t)", "p=[0.5, 1]", "--const", "t=[0, 1]");
    tp_expect_status(&r, 0);
    v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(&v, "value")), 0.125);
    const tj *g = tj_get(&v, "grad");
    cr_assert_eq(g->n, 1, "constants get no gradient");
    cr_assert_eq(tj_elem(tj_get(g, "p"), 0), 0.5);
    cr_assert_eq(tj_elem(tj_get(g, "p"), 1), 0);
    tj_free(&v);
    tp_run_free(&r);

    /* Labels for cross_entropy are constants; --const=NAME=VALUE works too. */
    r = RUN("grad", "cross_entropy(z, y)", "z=[[1, 2, 3], [1, 1, 1]]", "--const=y=[2, 0]");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "grad z [2,3] =");
    tp_run_free(&r);
}

Test(grad, seed)
{
    tp_run r = RUN("grad", "--json", "x * [1, 2, 3]", "x=2");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 6, "default seed: all ones");
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "--json", "--seed", "[1, 0, 0.5]", "x * [1, 2, 3]", "x=2");
    v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 2.5);
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "--json", "--seed=2", "x * [1, 2, 3]", "x=2");
    v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 12, "a number seed fills the shape");
    tj_free(&v);
    tp_run_free(&r);
    r = RUN("grad", "--seed", "[1, 2]", "x * [1, 2, 3]", "x=2");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "--seed has shape [2], the output has shape [3]");
    tp_run_free(&r);
    r = RUN("grad", "--seed", "[1, 2", "x", "x=2");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "bad value for --seed");
    tp_run_free(&r);
}

Test(grad, check)
{
    tp_run r = RUN("grad", "--check", "W = [[1, 2], [3, 4.5]]; y = W @ x; sum(tanh(y)^2)",
                   "x=[[0.5], [-1]]");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "check (central differences in f64, tolerance 1e-06): ok\n  x: max error");
    tp_run_free(&r);
    r = RUN("grad", "--check", "--json", "softmax(x) * w", "x=[1, 2, 3]", "w=[0.5, -1, 2]",
            "--dtype", "f32");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    const tj *c = tj_get(&v, "check");
    cr_assert_not_null(c);
    cr_assert_eq(tj_get(c, "ok")->type, TJ_BOOL);
    cr_assert_eq(tj_get(c, "ok")->num, 1);
    cr_assert_eq(tj_num(tj_get(c, "tol")), 1e-6);
    cr_assert_lt(tj_num(tj_get(tj_get(c, "max_error"), "x")), 1e-6);
    cr_assert_lt(tj_num(tj_get(tj_get(c, "max_error"), "w")), 1e-6);
    tj_free(&v);
    tp_run_free(&r);
    /* relu at its kink: backward says 0, central differences say 1/2. */
    r = RUN("grad", "--check", "relu(x)", "x=0");
    tp_expect_status(&r, 1);
    ts_assert_has(r.out, "FAILED");
    ts_assert_has(r.out, "x: max error 0.5  (above tolerance)");
    tp_run_free(&r);
    r = RUN("grad", "--check", "--tol", "0.6", "relu(x)", "x=0");
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    r = RUN("grad", "--check", "--json", "relu(x)", "x=0");
    tp_expect_status(&r, 1);
    v = tj_object(r.out);
    cr_assert_eq(tj_get(tj_get(&v, "check"), "ok")->num, 0);
    tj_free(&v);
    tp_run_free(&r);
    /* Nothing differentiable reaches the output: the gradient is 0, which the check compares
     * with the finite differences, 3 here (detach hides the slope): it fails, naming x. */
    r = RUN("grad", "--check", "detach(x) * 3", "x=2");
    tp_expect_status(&r, 1);
    ts_assert_has(r.out, "value = 6\ngrad x = 0\ncheck (central differences in f64, tolerance "
                         "1e-06): FAILED\n  x: max error 1  (above tolerance)");
    tp_run_free(&r);
    r = RUN("grad", "--check", "--json", "detach(x) * 3", "x=2");
    tp_expect_status(&r, 1);
    v = tj_object(r.out);
    cr_assert_eq(tj_get(tj_get(&v, "check"), "ok")->num, 0);
    cr_assert_eq(tj_get(tj_get(tj_get(&v, "check"), "max_error"), "x")->num, 1);
    tj_free(&v);
    tp_run_free(&r);
    /* and where the function does not move with x either, the zero gradient passes */
    r = RUN("grad", "--check", "detach(x) * 0 + 3", "x=2");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "check (central differences in f64, tolerance 1e-06): ok");
    tp_run_free(&r);
}

Test(grad, program_from_file_and_stdin)
{
    char path[] = "/tmp/tg_cli_prog_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *prog = "# micrograd's test\nz = 2*x + 2 + x\nq = relu(z) + z*x\nh = relu(z*z)\n"
                       "h + q + q*x\n";
    cr_assert_eq(write(fd, prog, strlen(prog)), (ssize_t)strlen(prog));
    close(fd);
    tp_run r = RUN("grad", "-f", path, "x=-4");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    tp_run_free(&r);
    r = RUN("grad", "x=-4", "--json", "-f", path); /* options and inputs in any order */
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    cr_assert_eq(tj_num(tj_get(tj_get(&v, "grad"), "x")), 46);
    tj_free(&v);
    tp_run_free(&r);
    unlink(path);
    r = RUN_STDIN(prog, "grad", "-f", "-", "x=-4");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -20\ngrad x = 46\n");
    tp_run_free(&r);
    /* Errors in a file point into the file. */
    r = RUN_STDIN("a = x\nb = a +* 2\nb\n", "grad", "-f", "-", "x=1");
    tp_expect_status(&r, 1);
    cr_assert_str_eq(r.err, "error: 2:8: expected an expression, found '*'\n    b = a +* 2\n"
                            "           ^\n");
    tp_run_free(&r);
    /* A UTF-8 byte order mark before the program is skipped; columns count from after it. */
    r = RUN_STDIN("\xEF\xBB\xBFx * x\n", "grad", "-f", "-", "x=3");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = 9\ngrad x = 6\n");
    tp_run_free(&r);
    r = RUN_STDIN("\xEF\xBB\xBFx +* 2\n", "grad", "-f", "-", "x=3");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "error: 1:4: expected an expression, found '*'");
    tp_run_free(&r);
    r = RUN("grad", "-f", "/nonexistent/prog.tgx", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad grad: cannot read '/nonexistent/prog.tgx': No such file");
    tp_run_free(&r);
}

Test(grad, programs_starting_with_minus)
{
    tp_run r = RUN("grad", "-x^2", "x=3");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -9\ngrad x = -6\n");
    tp_run_free(&r);
    r = RUN("grad", "--", "-x", "x=3");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = -3\ngrad x = -1\n");
    tp_run_free(&r);
    r = RUN("grad", "-x", "x=3");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "unknown option '-x' (a program that starts with '-' goes after '--')");
    tp_run_free(&r);
}

/* ---- tapegrad grad: errors ------------------------------------------------------------------ */

Test(grad_errors, program_errors_exit_1_with_caret)
{
    tp_run r = RUN("grad", "z = 2*x + tanhh(x)\nz", "x=1");
    tp_expect_status(&r, 1);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "error: 1:11: unknown function 'tanhh' (did you mean 'tanh'?)\n"
                            "    z = 2*x + tanhh(x)\n              ^~~~~\n");
    tp_run_free(&r);
    r = RUN("grad", "--json", "a + b", "a=[[1, 2, 3], [4, 5, 6]]", "b=[1, 2, 3, 4]");
    tp_expect_status(&r, 1);
    cr_assert_str_eq(r.out, "", "no JSON on failure");
    ts_assert_has(r.err, "error: 1:1-5: add: [2,3] and [4] do not broadcast");
    ts_assert_has(r.err, "\n    a + b\n    ^~~~~\n");
    tp_run_free(&r);
    r = RUN("grad", "x * y + 1", "x=2");
    tp_expect_status(&r, 1);
    cr_assert_str_eq(r.err, "error: 1:5: no value for input 'y'\n    x * y + 1\n        ^\n"
                            "hint: give it a value: y=VALUE to differentiate with respect to "
                            "it, --const y=VALUE for a constant\n");
    tp_run_free(&r);
    r = RUN("grad", "cross_entropy(z, y)", "z=[[1, 2]]", "--const", "y=[3]");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err,
                  "error: 1:1-19: cross_entropy: label 0 is 3, not an integer class id in 0..1");
    tp_run_free(&r);
}

Test(grad_errors, usage_errors_exit_2)
{
    struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"grad", NULL}, "tapegrad grad: no program given"},
        {{"grad", "--bogus", "x", "x=1", NULL}, "tapegrad grad: unknown option '--bogus'"},
        {{"grad", "x", "x", NULL}, "tapegrad grad: expected NAME=VALUE, got 'x'"},
        {{"grad", "x", "2x=1", NULL}, "tapegrad grad: '2x' in '2x=1' is not a name"},
        {{"grad", "x", "x=[1, 2", NULL},
         "tapegrad grad: bad value for x: column 6: expected ',' or ']' in a list, found end "
         "of input"},
        {{"grad", "x", "x=[[1], [2, 3]]", NULL},
         "tapegrad grad: bad value for x: column 7: ragged tensor literal"},
        {{"grad", "x", "x=1", "x=2", NULL}, "tapegrad grad: 'x' is bound twice"},
        {{"grad", "x", "x=1", "--const", "x=2", NULL}, "tapegrad grad: 'x' is bound twice"},
        {{"grad", "x", "sum=1", NULL},
         "tapegrad grad: 'sum' is a function name and cannot be an input"},
        {{"grad", "--dtype", "f16", "x", "x=1", NULL},
         "tapegrad grad: --dtype must be f64 or f32, not 'f16'"},
        {{"grad", "x", "x=1", "--seed", NULL}, "tapegrad grad: option '--seed' needs a value"},
        {{"grad", "--tol", "abc", "x", "x=1", NULL},
         "tapegrad grad: --tol must be a number >= 0, not 'abc'"},
        {{"grad", "--render", "g.gif", "x", "x=1", NULL},
         "tapegrad grad: --render: cannot tell the format of 'g.gif'"},
        {{"grad", "--json", "--dot", "-", "x", "x=1"},
         "tapegrad grad: --dot - and --json both want stdout"},
        {{"grad", "--dot", "g.svg", "--render", "./g.svg", "x"},
         "tapegrad grad: --dot 'g.svg' and --render './g.svg' are one file: give each its own"},
        {{"grad", "-f", "p.tgx", "--dot", "p.tgx", NULL},
         "tapegrad grad: --dot 'p.tgx' would write over the program file it reads ('p.tgx')"},
        {{"frobnicate", NULL}, "tapegrad: unknown command 'frobnicate'"},
        {{"--frobnicate", NULL}, "tapegrad: unknown option '--frobnicate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[8] = {0};
        for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
            args[k] = cases[i].args[k];
        tp_run r = tp_tapegrad(args, NULL);
        tp_expect_status(&r, 2);
        cr_assert_str_eq(r.out, "", "case %zu", i);
        cr_assert(strncmp(r.err, cases[i].msg, strlen(cases[i].msg)) == 0,
                  "case %zu: stderr\n%s\nwant it to start with\n%s", i, r.err, cases[i].msg);
        ts_assert_has(r.err, "--help' for more information.\n"); /* usage hint */
        tp_run_free(&r);
    }
    tp_run r = tp_tapegrad((const char *const[]){NULL}, NULL);
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "usage: tapegrad <command>");
    tp_run_free(&r);
}

Test(grad_errors, unused_binding_warns)
{
    tp_run r = RUN("grad", "--json", "x * 2", "x=1", "y=[1, 2]");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.err, "tapegrad grad: warning: the program does not use 'y'\n");
    tj v = tj_object(r.out);
    cr_assert_eq(tj_elem(tj_get(tj_get(&v, "grad"), "y"), 1), 0,
                 "an unused input has zero gradient");
    tj_free(&v);
    tp_run_free(&r);
    /* An output that depends on no input through differentiable ops: zero gradients. */
    r = RUN("grad", "detach(x) * 3", "x=2");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, "value = 6\ngrad x = 0\n");
    tp_run_free(&r);
}

/* ---- graphs --------------------------------------------------------------------------------- */

Test(grad, dot_and_render)
{
    char dir[] = "/tmp/tg_cli_dot_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char dot[4096], svg[4096];
    snprintf(dot, sizeof dot, "%s/g.dot", dir);
    snprintf(svg, sizeof svg, "%s/g.svg", dir);
    tp_run r = RUN("grad", "--dot", dot, "h = tanh(x * w); h * 2", "x=0.5", "w=-1");
    tp_expect_status(&r, 0);
    cr_assert_eq(access(dot, F_OK), 0, "no dot file");
    char *text = tp_slurp(dot);
    ts_assert_has(text, "digraph");
    ts_assert_has(text, "h"); /* dot file names the bound intermediate */
    free(text);
    tp_run_free(&r);
    r = RUN("grad", "--json", "--dot", dot, "x", "x=1");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    tj_free(&v);
    tp_run_free(&r);
    /* --dot -: stdout carries the graph alone, so that it can be piped to dot; the results go
     * to stderr */
    r = RUN("grad", "--dot", "-", "x * 2", "x=1");
    tp_expect_status(&r, 0);
    cr_assert_eq(strncmp(r.out, "digraph", 7), 0, "the graph alone on stdout:\n%s", r.out);
    cr_assert_null(strstr(r.out, "value ="), "results on stdout:\n%s", r.out);
    ts_assert_has(r.err, "value = 2\ngrad x = 2\n");
    tp_run_free(&r);
    /* with --check, whose own tapes free leaves before the graph is written: the graph is
     * made first (the writers refuse once a leaf was freed), and still printed */
    r = RUN("grad", "--check", "--dot", "-", "sum(x * x + 2)", "x=[1, 2]");
    tp_expect_status(&r, 0);
    cr_assert_eq(strncmp(r.out, "digraph", 7), 0, "the graph alone on stdout:\n%s", r.out);
    ts_assert_has(r.err, "check (central");
    tp_run_free(&r);
    r = RUN("grad", "--render", svg, "x * 2", "x=1");
    if (tg_dot_can_render()) {
        tp_expect_status(&r, 0);
        cr_assert_eq(access(svg, F_OK), 0, "no svg file");
        text = tp_slurp(svg);
        ts_assert_has(text, "<svg");
        free(text);
        unlink(svg);
    } else {
        tp_expect_status(&r, 1);
        ts_assert_has(r.err, "tapegrad grad: --render:");
    }
    tp_run_free(&r);
    unlink(dot);
    rmdir(dir);
}

/* `tapegrad args...` (at most 8) with the size of any file it writes limited to 1024 bytes
 * (dash's `ulimit -f 2`; SIGXFSZ ignored, so a write past it fails with EFBIG): a full disk,
 * for files larger than that. Its own stdout and stderr are files too: they must stay small. */
static tp_run run_file_limited(const char *const *args)
{
    char tool[4096];
    snprintf(tool, sizeof tool, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    const char *argv[16] = {"/bin/sh", "-c", "trap '' XFSZ; ulimit -f 2; exec \"$0\" \"$@\"",
                            tool};
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(i, 8);
        argv[4 + i] = args[i];
    }
    return tp_run_argv(argv, NULL);
}

/* --dot's file is written as model files are: a failed write leaves the old file as it was
 * (no truncated graph, no temporary file beside it), a FIFO or a directory is refused
 * (opening a FIFO would wait for a reader), and a symbolic link leads to the new file. */
Test(grad, dot_file_is_replaced_whole_or_not_at_all)
{
    char dir[] = "/tmp/tg_cli_dot_atomic_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char dot[4096], fifo[4096], link[4096];
    snprintf(dot, sizeof dot, "%s/g.dot", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(link, sizeof link, "%s/link.dot", dir);
    const char *prog = "sum(tanh(sin(x * w) + cos(x)) * exp(w))";
    FILE *f = fopen(dot, "w");
    cr_assert_not_null(f);
    fputs("old\n", f);
    fclose(f);

    tp_run r = run_file_limited((const char *const[]){"grad", "--dot", dot, prog, "x=[1, 2, 3]",
                                                      "w=2", NULL});
    tp_expect_status(&r, 1);
    char *text = tp_slurp(dot);
    cr_assert_str_eq(text, "old\n", "the old file was changed");
    free(text);
    ts_assert_has(r.err, "tapegrad grad: --dot: cannot write '");
    ts_assert_has(r.err, "': File too large");
    tp_run_free(&r);

    cr_assert_eq(mkfifo(fifo, 0600), 0);
    r = tp_tapegrad((const char *const[]){"grad", "--dot", fifo, "x * 2", "x=1", NULL},
                    &(tp_opts){.timeout_s = 60});
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "fifo': not a regular file (a FIFO or a device): refusing to replace it");
    tp_run_free(&r);
    r = RUN("grad", "--dot", dir, "x * 2", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "': a directory: refusing to replace it");
    tp_run_free(&r);

    /* Written in full without the limit, through a symbolic link, which stays one. */
    cr_assert_eq(symlink("g.dot", link), 0);
    r = RUN("grad", "--dot", link, prog, "x=[1, 2, 3]", "w=2");
    tp_expect_status(&r, 0);
    tp_run_free(&r);
    struct stat sb;
    cr_assert_eq(lstat(link, &sb), 0);
    cr_assert(S_ISLNK(sb.st_mode), "the link was replaced by a file");
    text = tp_slurp(dot);
    cr_assert_gt(strlen(text), 1024, "the graph must be larger than the limit above");
    ts_assert_has(text, "digraph");
    free(text);

    unlink(link);
    unlink(fifo);
    unlink(dot);
    cr_assert_eq(rmdir(dir), 0, "a file was left in %s", dir); /* no temporary file either */
}

/* ---- top level ------------------------------------------------------------------------------- */

Test(top, help_and_version)
{
    tp_run r = RUN("--version");
    tp_expect_status(&r, 0);
    /* The version first, then the build options a bug report needs (tools/tapegrad.c). */
    char want[64];
    snprintf(want, sizeof want, "tapegrad %s\n", tg_version());
    cr_assert(strncmp(r.out, want, strlen(want)) == 0, "--version starts: %s", r.out);
    ts_assert_has(r.out, tg_dot_can_render() ? "\ngraphviz: yes" : "\ngraphviz: no");
    ts_assert_has(r.out, tg_dist_available() ? "\nmpi: yes" : "\nmpi: no");
    ts_assert_has(r.out, "\nblas: ");
    ts_assert_has(r.out, "\ngemm kernels: portable");
    ts_assert_has(r.out, "(large products: ");
    tp_run_free(&r);
    r = RUN("--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad <command>");
    ts_assert_has(r.out, "grad");
    tp_run_free(&r);
    r = RUN("grad", "--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad grad");
    ts_assert_has(r.out, "--check");
    cr_assert_str_eq(r.err, "");
    tp_run_free(&r);
    r = RUN("help", "grad");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad grad");
    tp_run_free(&r);
    r = RUN("--help", "grad");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad grad");
    tp_run_free(&r);
    r = RUN("help", "help"); /* help on help is the usage, not an unknown command */
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "usage: tapegrad <command>");
    cr_assert_str_eq(r.err, "");
    tp_run_free(&r);
    /* an argument more is a usage error, not ignored */
    r = RUN("--version", "extra");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "unexpected argument 'extra' after '--version'");
    cr_assert_str_eq(r.out, "");
    tp_run_free(&r);
    r = RUN("help", "grad", "x");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "unexpected argument 'x' after 'help grad'");
    tp_run_free(&r);
}

/* A tensor without elements prints as [] beside its shape: the output is bounded by the
 * elements, not by an outer dimension (a hundred million empty lists, before). */
Test(grad, empty_tensors_print_in_bounded_space, .timeout = 30)
{
    tp_run r = RUN("grad", "reshape(x, [100000000, 0])", "x=[]");
    tp_expect_status(&r, 0);
    cr_expect_str_eq(r.out, "value [100000000,0] = []\ngrad x [0] = []\n");
    tp_run_free(&r);
    r = RUN("grad", "--json", "reshape(x, [4294967296, 0])", "x=[]");
    tp_expect_status(&r, 0);
    cr_expect_str_eq(r.out, "{\"value\": [], \"shape\": [4294967296, 0], \"grad\": {\"x\": []}}\n");
    tp_run_free(&r);
}

/* Output that cannot be written is a failure for every subcommand: a full disk (/dev/full)
 * and a closed stdout, for grad, bench and --version. */
Test(top, unwritable_output_exits_1, .timeout = 60)
{
    char tool[4096];
    snprintf(tool, sizeof tool, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    static const char *const cmds[] = {
        "\"$0\" grad 'x*2' x=1 >/dev/full",
        "\"$0\" grad 'x*2' x=1 >&-",
        "\"$0\" bench W1 --quick --json >/dev/full",
        "\"$0\" --version >/dev/full",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tp_run r = tp_run_argv((const char *const[]){"/bin/sh", "-c", cmds[i], tool, NULL}, NULL);
        cr_expect_eq(r.status, 1, "%s: exit %d", cmds[i], r.status);
        ts_assert_has(r.err, "cannot write the output");
        tp_run_free(&r);
    }
}

/* A NUL byte inside a program file is the parser's error at its place, not the end of the
 * program (which would silently drop what follows it). */
Test(grad_errors, a_nul_byte_in_a_program_file_is_an_error)
{
    char path[] = "/tmp/tg_nul_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "x*2\0+1000", 9), 9);
    close(fd);
    tp_run r = RUN("grad", "-f", path, "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "error: 1:4: unexpected NUL byte");
    cr_expect_str_eq(r.out, "");
    tp_run_free(&r);
    unlink(path);
}

/* Endless inputs are refused at a documented size instead of read until memory runs out: a
 * program file over 16 MiB, a CSV file over TG_CSV_MAX_BYTES (1 GiB unless set). */
Test(top, endless_inputs_stop_at_their_limit, .timeout = 60)
{
    tp_run r = RUN("grad", "-f", "/dev/zero", "x=1");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "tapegrad grad: cannot read '/dev/zero': more than 16 MiB");
    tp_run_free(&r);
    char tool[4096];
    snprintf(tool, sizeof tool, "%s/tapegrad", tp_env("TG_TOOLS_DIR"));
    const char *cmd = "TG_CSV_MAX_BYTES=100000 \"$0\" train /dev/zero --target y";
    r = tp_run_argv((const char *const[]){"/bin/sh", "-c", cmd, tool, NULL}, NULL);
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "/dev/zero: more than 100000 bytes, the limit (TG_CSV_MAX_BYTES");
    tp_run_free(&r);
}

/* Shapes without elements are tensors like any other, whatever their other axes: accepted
 * (no "too many elements" for [2^32, 2^32, 0]), computed at once (no loop over an outer axis
 * of 2^32 positions in transpose, concat or permute) and printed in bounded space. */
Test(grad, empty_tensors_with_huge_axes_are_cheap, .timeout = 60)
{
    static const struct {
        const char *prog, *json;
    } cases[] = {
        {"reshape(x, [4294967296, 4294967296, 0])",
         "{\"value\": [], \"shape\": [4294967296, 4294967296, 0], \"grad\": {\"x\": []}}\n"},
        {"transpose(reshape(x, [4294967296, 0]))",
         "{\"value\": [], \"shape\": [0, 4294967296], \"grad\": {\"x\": []}}\n"},
        {"concat([reshape(x, [4294967296, 0]), reshape(x, [4294967296, 0])], 1)",
         "{\"value\": [], \"shape\": [4294967296, 0], \"grad\": {\"x\": []}}\n"},
        {"permute(reshape(x, [4294967296, 0, 7]), [2, 0, 1])",
         "{\"value\": [], \"shape\": [7, 4294967296, 0], \"grad\": {\"x\": []}}\n"},
        {"sum(reshape(x, [4294967296, 0]))", "{\"value\": 0, \"shape\": [], \"grad\": {\"x\": []}}\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_run r = RUN("grad", "--json", cases[i].prog, "x=[]");
        tp_expect_status(&r, 0);
        cr_expect_str_eq(r.out, cases[i].json, "%s", cases[i].prog);
        tp_run_free(&r);
    }
}
