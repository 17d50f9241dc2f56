/* test_cli_diff.c: `tapegrad grad --hessian, --jacobian, --jvp` against values derived by
 * hand (written beside each check): the JSON keys and their nested shapes (shape(a) +
 * shape(b), shape(output) + shape(a), ranks above 4 included), the readable text, --const
 * inputs without blocks, and the errors with their exit status. */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/proc.h"

#define RUN(...) tp_tapegrad((const char *const[]){__VA_ARGS__, NULL}, NULL)

static const char *ROSEN = "(1 - x)^2 + 100*(y - x^2)^2";

/* Rosenbrock at (-1.2, 1): H_xx = 1200 x^2 - 400 y + 2 = 1330, H_xy = -400 x = 480,
 * H_yy = 200; the gradient's Jacobian is the 1 x 1 blocks of the gradient: dx = -2(1 - x) -
 * 400 x (y - x^2) = -4.4 - 400(-1.2)(-0.44) = -215.6, dy = 200 (y - x^2) = -88; J v for
 * v = (1, 2): -215.6 - 176 = -391.6. */
Test(cli_diff, rosenbrock_json)
{
    tp_run r = RUN("grad", ROSEN, "x=-1.2", "y=1", "--hessian", "--jacobian", "--jvp", "x=1",
                   "--jvp=y=2", "--json");
    tp_expect_status(&r, 0);
    tj o = tj_object(r.out);
    tj_expect_keys(&o, TJ_KEYS("value", "shape", "grad", "jacobian", "hessian", "jvp"));
    const tj *h = tj_get(&o, "hessian"), *j = tj_get(&o, "jacobian");
    tj_expect_keys(h, TJ_KEYS("x", "y"));
    tj_expect_keys(tj_get(h, "x"), TJ_KEYS("x", "y"));
    ts_assert_close(tj_num_of(tj_get(h, "x"), "x"), 1330, 1e-9, 1e-12, "H_xx");
    ts_assert_close(tj_num_of(tj_get(h, "x"), "y"), 480, 1e-9, 1e-12, "H_xy");
    ts_assert_close(tj_num_of(tj_get(h, "y"), "x"), 480, 1e-9, 1e-12, "H_yx");
    ts_assert_close(tj_num_of(tj_get(h, "y"), "y"), 200, 1e-9, 1e-12, "H_yy");
    ts_assert_close(tj_num_of(j, "x"), -215.6, 1e-9, 1e-12, "J_x");
    ts_assert_close(tj_num_of(j, "y"), -88, 1e-9, 1e-12, "J_y");
    ts_assert_close(tj_num_of(&o, "jvp"), -391.6, 1e-9, 1e-12, "J v");
    tj_free(&o);
    tp_run_free(&r);
}

Test(cli_diff, rosenbrock_text)
{
    tp_run r = RUN("grad", ROSEN, "x=1", "y=1", "--hessian", "--jvp", "y=1");
    tp_expect_status(&r, 0);
    /* at the minimum (1, 1): H = [[802, -400], [-400, 200]], the gradient 0, J v = 0 */
    ts_assert_has(r.out, "hessian[x][x] = 802\n");
    ts_assert_has(r.out, "hessian[x][y] = -400\n");
    ts_assert_has(r.out, "hessian[y][x] = -400\n");
    ts_assert_has(r.out, "hessian[y][y] = 200\n");
    ts_assert_has(r.out, "jvp = 0\n");
    tp_run_free(&r);
}

/* f = sum(x * x * y), x (2) broadcast over the rows of y (2, 2): f = sum_ij x_j^2 y_ij.
 * H[x][x] = diag(2 sum_i y_ij) = [[8, 0], [0, 12]]; H[x][y][j][i][k] = 2 x_j [j == k];
 * H[y][x] its transpose; H[y][y] zero, shape (2, 2, 2, 2): rank 4 = 2 + 2. c, bound with
 * --const, is an offset and gets no block. */
Test(cli_diff, hessian_block_shapes)
{
    tp_run r = RUN("grad", "sum(x*x*y) + c", "x=[1, 2]", "y=[[1, 2], [3, 4]]", "--const", "c=5",
                   "--hessian", "--json");
    tp_expect_status(&r, 0);
    tj o = tj_object(r.out);
    const tj *h = tj_get(&o, "hessian");
    tj_expect_keys(h, TJ_KEYS("x", "y"));
    tj_expect_keys(tj_get(h, "y"), TJ_KEYS("x", "y"));
    const tj *xx = tj_get(tj_get(h, "x"), "x"), *xy = tj_get(tj_get(h, "x"), "y");
    const tj *yx = tj_get(tj_get(h, "y"), "x"), *yy = tj_get(tj_get(h, "y"), "y");
    const double want_xx[4] = {8, 0, 0, 12};
    for (size_t i = 0; i < 4; i++)
        ts_assert_close(tj_elem(xx, i), want_xx[i], 1e-12, 0, "H_xx[%zu]", i);
    /* nesting: xy is [2][2][2], yy [2][2][2][2] */
    cr_assert_eq(xy->type, TJ_ARR);
    cr_assert_eq(xy->n, 2);
    cr_assert_eq(xy->items[0].n, 2);
    cr_assert_eq(xy->items[0].items[0].n, 2);
    cr_assert_eq(yy->items[0].items[0].items[0].n, 2);
    cr_assert_eq(yy->items[0].items[0].items[0].items[0].type, TJ_NUM);
    for (size_t j = 0; j < 2; j++)
        for (size_t i = 0; i < 2; i++)
            for (size_t k = 0; k < 2; k++) {
                double want = j == k ? 2.0 * (double)(j + 1) : 0;
                ts_assert_close(tj_elem(xy, j * 4 + i * 2 + k), want, 1e-12, 0,
                                "H_xy[%zu][%zu][%zu]", j, i, k);
                ts_assert_close(tj_elem(yx, i * 4 + k * 2 + j), want, 1e-12, 0,
                                "H_yx[%zu][%zu][%zu]", i, k, j);
            }
    for (size_t i = 0; i < 16; i++)
        ts_assert_close(tj_elem(yy, i), 0, 0, 0, "H_yy[%zu]", i);
    tj_free(&o);
    tp_run_free(&r);
}

/* y = sin(x) * w * c, x (2), w (3, 2), c = 2 a constant: y[r, c'] = 2 sin(x_c') w_rc'.
 * jacobian[x] (3, 2, 2): [r][c'][k] = 2 w_rc' cos(x_c') [c' == k]; jacobian[w] (3, 2, 3, 2):
 * 2 sin(x_c') [(r, c') == (r2, k)]; J v with v_x = (1, 0), v_w = 1: 2 (cos(x_c') w_rc' [c' ==
 * 0] + sin(x_c')). */
Test(cli_diff, jacobian_and_jvp)
{
    const double x[2] = {0.0, 1.0}, w[6] = {1, 2, 3, 4, 5, 6};
    tp_run r = RUN("grad", "sin(x) * w * c", "x=[0, 1]", "w=[[1, 2], [3, 4], [5, 6]]", "--const",
                   "c=2", "--jacobian", "--jvp", "w=1", "--jvp", "x=[1, 0]", "--json");
    tp_expect_status(&r, 0);
    tj o = tj_object(r.out);
    const tj *j = tj_get(&o, "jacobian"), *jv = tj_get(&o, "jvp");
    tj_expect_keys(j, TJ_KEYS("x", "w"));
    const tj *jx = tj_get(j, "x"), *jw = tj_get(j, "w");
    cr_assert_eq(jw->items[0].items[0].items[0].n, 2, "jacobian[w] is 3 x 2 x 3 x 2");
    for (size_t rr = 0; rr < 3; rr++)
        for (size_t c = 0; c < 2; c++) {
            for (size_t k = 0; k < 2; k++)
                ts_assert_close(tj_elem(jx, rr * 4 + c * 2 + k),
                                c == k ? 2 * w[rr * 2 + c] * cos(x[c]) : 0, 1e-15, 1e-14,
                                "jacobian[x][%zu][%zu][%zu]", rr, c, k);
            for (size_t r2 = 0; r2 < 3; r2++)
                for (size_t k = 0; k < 2; k++)
                    ts_assert_close(tj_elem(jw, (rr * 2 + c) * 6 + r2 * 2 + k),
                                    rr == r2 && c == k ? 2 * sin(x[c]) : 0, 1e-15, 1e-14,
                                    "jacobian[w][%zu][%zu][%zu][%zu]", rr, c, r2, k);
            ts_assert_close(tj_elem(jv, rr * 2 + c),
                            2 * ((c == 0 ? cos(x[c]) * w[rr * 2 + c] : 0) + sin(x[c])), 1e-15,
                            1e-14, "jvp[%zu][%zu]", rr, c);
        }
    tj_free(&o);
    tp_run_free(&r);
}

/* f = log(c) * (x > 0): x enters through a comparison only, which has no gradient, so f
 * depends on no input and J v is 0 in every element, also where f is infinite (log 0 = -inf:
 * the output times 0 would be NaN there). */
Test(cli_diff, jvp_of_an_output_without_inputs_is_zero_where_it_is_infinite)
{
    tp_run r =
        RUN("grad", "log(c) * (x > 0)", "--const", "c=[0, 1]", "x=1", "--jvp", "x=1", "--json");
    tp_expect_status(&r, 0);
    tj o = tj_object(r.out);
    const tj *jv = tj_get(&o, "jvp");
    cr_assert(jv && jv->type == TJ_ARR && jv->n == 2, "jvp is a list of 2: %s", r.out);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(jv->items[i].type, TJ_NUM, "jvp[%zu] is a number: %s", i, r.out);
        ts_assert_close(tj_num(&jv->items[i]), 0, 0, 0, "jvp[%zu]", i);
    }
    tj_free(&o);
    tp_run_free(&r);
}

Test(cli_diff, errors)
{
    /* a Hessian of a vector output: the work fails (exit 1) with a clear message */
    tp_run r = RUN("grad", "x * x", "x=[1, 2]", "--hessian");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "--hessian: the output has shape [2], not a single value");
    tp_run_free(&r);
    /* --jvp's malformed or misdirected tangents are usage errors (exit 2) */
    static const char *const bad[][2] = {{"z=1", "no input is called 'z'"},
                                         {"c=1", "bound with --const"},
                                         {"x", "takes NAME=VALUE"},
                                         {"x=[1,", "bad value for --jvp"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = RUN("grad", "sum(x * c)", "x=[1, 2]", "--const", "c=3", "--jvp", bad[i][0]);
        tp_expect_status(&r, 2);
        ts_assert_has(r.err, bad[i][1]);
        tp_run_free(&r);
    }
    /* ... found before the program runs, so its errors (exit 1) cannot hide them */
    r = RUN("grad", "sum(x * y)", "x=[1, 2]", "--jvp", "x=[1,");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "bad value for --jvp");
    tp_run_free(&r);
    r = RUN("grad", "x * 2", "x=[1, 2]", "--hessian", "--jvp", "x=abc");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "bad value for --jvp");
    tp_run_free(&r);
    r = RUN("grad", "sum(x)", "x=[1, 2]", "--jvp", "x=1", "--jvp", "x=2");
    tp_expect_status(&r, 2);
    ts_assert_has(r.err, "two tangents");
    tp_run_free(&r);
    /* a tangent of the wrong shape: known once parsed against the input (exit 1) */
    r = RUN("grad", "sum(x)", "x=[1, 2]", "--jvp", "x=[1, 2, 3]");
    tp_expect_status(&r, 1);
    ts_assert_has(r.err, "the tangent has shape [3], the input [2]");
    tp_run_free(&r);
    r = RUN("grad", "--help");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "--hessian");
    ts_assert_has(r.out, "--jvp NAME=VALUE");
    tp_run_free(&r);
}

/* The text output's labels carry an input's whole name, however long: f = a^2 b, so
 * grad a = 2ab = 12, H[a][a] = 2b = 6, H[a][b] = 2a = 4 at (a, b) = (2, 3). */
Test(cli_diff, long_names_are_printed_whole)
{
    char a[201], prog[256], arg[256], want[512];
    memset(a, 'a', 200);
    a[200] = '\0';
    snprintf(prog, sizeof prog, "%s^2 * b", a);
    snprintf(arg, sizeof arg, "%s=2", a);
    tp_run r = RUN("grad", prog, arg, "b=3", "--hessian", "--jacobian");
    tp_expect_status(&r, 0);
    snprintf(want, sizeof want, "\ngrad %s = 12\n", a);
    ts_assert_has(r.out, want);
    snprintf(want, sizeof want, "\njacobian[%s] = 12\n", a);
    ts_assert_has(r.out, want);
    snprintf(want, sizeof want, "\nhessian[%s][%s] = 6\n", a, a);
    ts_assert_has(r.out, want);
    snprintf(want, sizeof want, "\nhessian[%s][b] = 4\n", a);
    ts_assert_has(r.out, want);
    tp_run_free(&r);
}

/* A block has the axes of both its tensors, up to twice a tensor's most: its shape is printed
 * whole. y = 2A, A (1,1,2): jacobian[A] (1,1,2,1,1,2) is 2 on the diagonal; H of sum(A^3),
 * A (1,2,2), is diag(6 A) = 6 at A = 1 in its first entry. */
Test(cli_diff, blocks_of_more_axes_than_a_tensor_print_their_shape)
{
    tp_run r = RUN("grad", "--jacobian", "A * 2", "A=[[[1,2]]]");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "\njacobian[A] [1,1,2,1,1,2] =\n  [[[[[[2, 0]]],\n");
    tp_run_free(&r);
    r = RUN("grad", "--hessian", "sum(A^3)", "A=[[[1,2],[3,4]]]");
    tp_expect_status(&r, 0);
    ts_assert_has(r.out, "\nhessian[A][A] [1,2,2,1,2,2] =\n  [[[[[[ 6,  0],\n");
    cr_assert_null(strstr(r.out, "rank"), "%s", r.out);
    tp_run_free(&r);
}

/* --dot shows the function's graph and the gradients its backward gave, whatever derivative
 * options run after it: they record nodes of their own on the tape and run passes of their
 * own (a Hessian's gradient graph, a forward-mode Jacobian's), and --jvp frees the zero
 * tangents it makes for the inputs given none. The same graph, byte for byte, with or without
 * them; y = x^3 at 2 has dy/d(x*x) = x = 2 at node 0. */
Test(cli_diff, the_graph_is_the_function_s_whatever_derivatives_follow)
{
    tp_run base = RUN("grad", "--dot", "-", "x*x*x", "x=2");
    tp_expect_status(&base, 0);
    ts_assert_has(base.out, "grad 2");
    static const char *const extra[][4] = {
        {"--hessian", NULL}, {"--jacobian", NULL}, {"--jvp", "x=1", NULL}};
    for (size_t i = 0; i < 3; i++) {
        tp_run r = RUN("grad", "--dot", "-", "x*x*x", "x=2", extra[i][0], extra[i][1]);
        tp_expect_status(&r, 0);
        cr_assert_str_eq(r.out, base.out, "with %s", extra[i][0]);
        tp_run_free(&r);
    }
    tp_run_free(&base);
    /* a forward-mode Jacobian (one input, nine outputs) and a JVP with a tangent for x only */
    base = RUN("grad", "--dot", "-", "exp(x*c)", "x=0.5", "--const", "c=[1,2,3,4,5,6,7,8,9]");
    tp_expect_status(&base, 0);
    tp_run r = RUN("grad", "--dot", "-", "exp(x*c)", "x=0.5", "--const", "c=[1,2,3,4,5,6,7,8,9]",
                   "--jacobian");
    tp_expect_status(&r, 0);
    cr_assert_str_eq(r.out, base.out);
    tp_run_free(&r);
    tp_run_free(&base);
    r = RUN("grad", "--dot", "-", "sum(x*x*y)", "x=[1,2]", "y=[3,4]", "--jvp", "x=1");
    tp_expect_status(&r, 0);
    ts_assert_has(r.err, "jvp = 22\n"); /* 2 x y . 1 = 6 + 16 */
    cr_assert_eq(strncmp(r.out, "digraph", 7), 0, "%s", r.out);
    tp_run_free(&r);
}
