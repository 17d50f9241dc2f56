/* test_expr.c: the tgx language (include/tapegrad/expr.h): lexing and parsing (precedence,
 * associativity, statements, literals), every error message with its location and caret,
 * the evaluator against the same graph built with the C API (values and gradients, f64 and
 * f32), names and inputs, the value parser, hostile input (deep nesting, long chains, huge
 * shapes), and allocation failure at every step of parsing and evaluating. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <dirent.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"
#include "support/proc.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static tg_program *parse_ok(const char *src)
{
    tg_program *prog = NULL;
    tg_status st = tg_program_parse(src, &prog);
    cr_assert_eq(st, TG_OK, "parse '%s': %s", src, tg_last_error());
    cr_assert_not_null(prog);
    return prog;
}

/* Evaluates src on tape in f64 with env; asserts success. */
static tg_tensor *eval_ok(tg_tape *tape, const char *src, const tg_binding *env, size_t n)
{
    tg_program *prog = parse_ok(src);
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, n, NULL);
    cr_assert_not_null(y, "eval '%s': %s", src, tg_last_error());
    tg_program_free(prog); /* the results belong to the tape, not the program */
    return y;
}

/* The value of a scalar program in x (bound to a 0-d f64 leaf). */
static double value_at(const char *src, double x)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *xt = tg_tensor_scalar(TG_F64, x);
    tg_binding env[1] = {{"x", xt}};
    double v = tg_tensor_item(eval_ok(tape, src, env, 1));
    tg_tape_free(tape);
    tg_tensor_free(xt);
    return v;
}

/* The formatted message of a parse error (tg_last_error()) must equal `want` (all lines);
 * returns the structured error. */
static tg_expr_error parse_fails(const char *src, const char *want)
{
    tg_program *prog = (tg_program *)1;
    tg_expr_error err;
    tg_status st = tg_program_parse_n(src, strlen(src), &err, &prog);
    cr_assert_eq(st, TG_EFORMAT, "'%s' parsed (status %s)", src, tg_status_name(st));
    cr_assert_null(prog);
    cr_assert_eq(err.status, TG_EFORMAT);
    cr_assert_str_eq(tg_last_error(), want, "for program '%s'", src);
    /* The structured form formats to the same text. */
    char buf[1024];
    size_t n = tg_expr_error_format(&err, src, strlen(src), buf, sizeof buf);
    cr_assert_eq(n, strlen(buf));
    cr_assert_str_eq(buf, want);
    return err;
}

/* Only the first line ("error: L:C: message") of a parse error. */
static void parse_fails_line(const char *src, const char *want)
{
    tg_program *prog = NULL;
    cr_assert_neq(tg_program_parse(src, &prog), TG_OK, "'%s' parsed", src);
    const char *msg = tg_last_error();
    size_t n = strcspn(msg, "\n");
    cr_assert(strlen(want) == n && strncmp(msg, want, n) == 0,
              "for '%s':\n got: %.*s\nwant: %s", src, (int)n, msg, want);
}

/* ---- precedence and associativity ------------------------------------------------------- */

Test(precedence, arithmetic_and_associativity)
{
    ts_assert_close(value_at("2 + 3 * 4", 0), 14, 0, 0, "2+3*4");
    ts_assert_close(value_at("(2 + 3) * 4", 0), 20, 0, 0, "(2+3)*4");
    ts_assert_close(value_at("1 - 2 - 3", 0), -4, 0, 0, "left-assoc -");
    ts_assert_close(value_at("8 / 4 / 2", 0), 1, 0, 0, "left-assoc /");
    ts_assert_close(value_at("2 * 3 / 4 * 5", 0), 7.5, 0, 0, "* / left to right");
    ts_assert_close(value_at("2 ^ 3 ^ 2", 0), 512, 0, 0, "^ right-assoc");
    ts_assert_close(value_at("(2 ^ 3) ^ 2", 0), 64, 0, 0, "parenthesized ^");
    ts_assert_close(value_at("-x^2", 3), -9, 0, 0, "-x^2 is -(x^2)");
    ts_assert_close(value_at("(-x)^2", 3), 9, 0, 0, "(-x)^2");
    ts_assert_close(value_at("-2^2", 0), -4, 0, 0, "-2^2");
    ts_assert_close(value_at("x^-1", 4), 0.25, 0, 0, "negative exponent");
    ts_assert_close(value_at("x^-(1/2)", 4), 0.5, 0, 0, "constant exponent expression");
    ts_assert_close(value_at("2*x^2", 3), 18, 0, 0, "^ before *");
    ts_assert_close(value_at("x - -x", 3), 6, 0, 0, "binary then unary minus");
    ts_assert_close(value_at("--x", 3), 3, 0, 0, "double negation");
    ts_assert_close(value_at("2 * -x", 3), -6, 0, 0, "unary after *");
    ts_assert_close(value_at("1e-3 * 2 + .5 + 1. + 2E2", 0), 201.502, 1e-15, 1e-15, "number forms");
    ts_assert_close(value_at("x^0.5", 16), 4, 0, 0, "fractional exponent");
    ts_assert_close(value_at("n = 3; x^n", 2), 8, 0, 0, "a name bound to a number is a constant");
}

Test(precedence, recorded_structure)
{
    /* -x^2: pow first, then neg; 2*x: a 0-d constant and a mul (literals are tg_scalar). */
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 3);
    tg_binding env[1] = {{"x", x}};
    tg_tensor *y = eval_ok(tape, "-x^2", env, 1);
    cr_assert_eq(tg_tape_size(tape), 2);
    cr_assert_eq(tg_tensor_op(tg_tape_node(tape, 0)), TG_OP_POW);
    cr_assert_eq(tg_tensor_op(y), TG_OP_NEG);
    tg_tape_reset(tape);
    y = eval_ok(tape, "2*x", env, 1);
    cr_assert_eq(tg_tape_size(tape), 2);
    cr_assert_eq(tg_tensor_op(tg_tape_node(tape, 0)), TG_OP_CONST);
    cr_assert_eq(tg_tensor_rank(tg_tape_node(tape, 0)), 0);
    cr_assert_eq(tg_tensor_op(y), TG_OP_MUL);
    tg_tape_reset(tape);
    /* A negative literal is one constant, not neg(constant). */
    y = eval_ok(tape, "x * -0.5", env, 1);
    cr_assert_eq(tg_tape_size(tape), 2);
    cr_assert_eq(tg_tensor_get(tg_tape_node(tape, 0), 0), -0.5);
    tg_tape_reset(tape);
    /* pow(x, c) with a constant expression c records tg_pow, as x^c does, in the output
     * statement too (not pow_tensor of a recorded constant). */
    y = eval_ok(tape, "pow(x, 1/3)", env, 1);
    cr_assert_eq(tg_tape_size(tape), 1);
    cr_assert_eq(tg_tensor_op(y), TG_OP_POW);
    tg_tape_reset(tape);
    /* a - b - c is (a - b) - c: the first sub is an input of the second. */
    y = eval_ok(tape, "x - 1 - 2", env, 1);
    cr_assert_eq(tg_tensor_op(y), TG_OP_SUB);
    cr_assert_eq(tg_tensor_op(tg_tensor_input(y, 0)), TG_OP_SUB);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- statements ------------------------------------------------------------------------------ */

Test(statements, micrograd_example)
{
    const char *src = "z = 2*x + 2 + x; q = relu(z) + z*x; h = relu(z*z); h + q + q*x";
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_scalar(TG_F64, -4, true);
    tg_binding env[1] = {{"x", x}};
    tg_tensor *y = eval_ok(tape, src, env, 1);
    cr_assert_eq(tg_tensor_item(y), -20);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_grad_get(x, 0), 46);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(statements, separators_comments_newlines)
{
    ts_assert_close(
        value_at("a = x + 1\nb = a * 2   # a comment; not a statement\n\n; ;b - 1\n", 1), 3, 0, 0,
        "newlines, comments, empty statements");
    ts_assert_close(value_at("# leading comment\r\na = x\r\na * 3\r\n", 2), 6, 0, 0, "CRLF");
    /* Newlines inside brackets and parentheses are spaces. */
    ts_assert_close(value_at("W = [[1, 2],\n     [3, 4]]\nsum(W * (x +\n 1))", 1), 20, 0, 0,
                    "multi-line literal and expression");
    /* So inside them a function's name and its '(' may stand on different lines. */
    ts_assert_close(value_at("(relu\n(x) + sum\n\n(x + 1))", 2), 5, 0, 0, "call across lines");
    ts_assert_close(value_at("sum([1, 2, 3,])", 0), 6, 0, 0, "trailing comma");
    ts_assert_close(value_at("x", 5), 5, 0, 0, "a bare input");
}

Test(statements, rebinding_records_new_nodes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_scalar(TG_F64, 3, true);
    tg_binding env[1] = {{"x", x}};
    tg_tensor *y = eval_ok(tape, "c = x; c = c + 1; c = c * c; c = c + 1; c", env, 1);
    cr_assert_eq(tg_tensor_item(y), 17);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 8); /* d/dx (x+1)^2 + 1 */
    /* Every assignment that makes a node names it; the input leaf keeps its own (no) name. */
    size_t named_c = 0;
    for (size_t i = 0; i < tg_tape_size(tape); i++) {
        const char *nm = tg_tensor_name(tg_tape_node(tape, i));
        named_c += nm && strcmp(nm, "c") == 0;
    }
    cr_assert_eq(named_c, 3);
    cr_assert_null(tg_tensor_name(x));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(statements, names_on_intermediates)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 0.5);
    tg_binding env[1] = {{"x", x}};
    tg_tensor *y = eval_ok(tape, "h = tanh(x); g = h; out = g * 2; out", env, 1);
    cr_assert_str_eq(tg_tensor_name(y), "out");
    cr_assert_str_eq(tg_tensor_name(tg_tensor_input(y, 0)), "h", "g = h keeps the first name");
    /* An input recorded on the tape without a name keeps none: x[:] is x itself, and binding
     * it names nothing new; what [:] is applied to otherwise gets the name. */
    const size_t s22[2] = {2, 2};
    tg_tensor *m = ts_leaf(TG_F64, 2, s22, (double[]){1, -2, 3, 4}, true);
    tg_tensor *r = tg_relu(tape, m);
    tg_binding renv[1] = {{"r", r}};
    y = eval_ok(tape, "a = r[:]; b = r[:, :][:]; c = r; d = tanh(r)[:]; a + b + c + d", renv, 1);
    cr_assert_null(tg_tensor_name(r), "the input was named '%s'", tg_tensor_name(r));
    cr_assert_str_eq(tg_tensor_name(tg_tensor_input(y, 1)), "d");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(m);
}

Test(statements, inputs_in_order_of_first_use)
{
    tg_program *prog = parse_ok("y = x * z; w = y + x; x = x * 2; w + q + x");
    cr_assert_eq(tg_program_input_count(prog), 3);
    cr_assert_str_eq(tg_program_input_name(prog, 0), "x");
    cr_assert_str_eq(tg_program_input_name(prog, 1), "z");
    cr_assert_str_eq(tg_program_input_name(prog, 2), "q");
    cr_assert_null(tg_program_input_name(prog, 3));
    size_t len;
    cr_assert_str_eq(tg_program_source(prog, &len), "y = x * z; w = y + x; x = x * 2; w + q + x");
    cr_assert_eq(len, strlen("y = x * z; w = y + x; x = x * 2; w + q + x"));
    tg_program_free(prog);
    prog = parse_ok("a = 2; b = a * 3; b");
    cr_assert_eq(tg_program_input_count(prog), 0);
    tg_program_free(prog);
    cr_assert(tg_expr_is_function("log_softmax"));
    cr_assert(!tg_expr_is_function("x"));
    cr_assert(!tg_expr_is_function(NULL));
}

Test(statements, one_program_many_evaluations)
{
    /* A program is immutable: evaluate it on two tapes with different bindings. */
    tg_program *prog = parse_ok("sum(x * x)");
    const size_t s2[1] = {2}, s3[1] = {3};
    tg_tensor *a = ts_leaf(TG_F64, 1, s2, (double[]){1, 2}, false);
    tg_tensor *b = ts_leaf(TG_F64, 1, s3, (double[]){1, 2, 3}, false);
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    tg_binding e1[1] = {{"x", a}}, e2[2] = {{"y", a}, {"x", b}};
    cr_assert_eq(tg_tensor_item(tg_program_eval(prog, t1, TG_F64, e1, 1, NULL)), 5);
    cr_assert_eq(tg_tensor_item(tg_program_eval(prog, t2, TG_F64, e2, 2, NULL)), 14);
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_program_free(prog);
}

/* ---- literals -------------------------------------------------------------------------------- */

Test(literals, tensor_literals)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = eval_ok(tape, "[[1, 2, 3], [4, 5, -6e-1]]", NULL, 0);
    cr_assert_eq(tg_tensor_op(y), TG_OP_CONST);
    cr_assert_eq(tg_tensor_rank(y), 2);
    cr_assert_eq(tg_tensor_dim(y, 0), 2);
    cr_assert_eq(tg_tensor_dim(y, 1), 3);
    cr_assert_eq(tg_tensor_get(y, 5), -0.6);
    y = eval_ok(tape, "[]", NULL, 0);
    cr_assert_eq(tg_tensor_rank(y), 1);
    cr_assert_eq(tg_tensor_numel(y), 0);
    y = eval_ok(tape, "[[], []]", NULL, 0);
    cr_assert_eq(tg_tensor_rank(y), 2);
    cr_assert_eq(tg_tensor_dim(y, 0), 2);
    cr_assert_eq(tg_tensor_dim(y, 1), 0);
    y = eval_ok(tape, "[[[[1 + 1]]]]", NULL, 0);
    cr_assert_eq(tg_tensor_rank(y), 4);
    cr_assert_eq(tg_tensor_item(y), 2);
    y = eval_ok(tape, "k = 2; [k, k^2, -k]", NULL, 0);
    cr_assert_eq(tg_tensor_get(y, 1), 4);
    cr_assert_eq(tg_tensor_get(y, 2), -2);
    tg_tape_free(tape);
}

Test(literals, f32_program)
{
    tg_program *prog = parse_ok("sum(x * [0.1, 0.2]) + 0.3");
    const size_t s2[1] = {2};
    tg_tensor *x = ts_leaf(TG_F32, 1, s2, (double[]){1, 2}, true);
    tg_tape *tape = tg_tape_new();
    tg_binding env[1] = {{"x", x}};
    tg_tensor *y = tg_program_eval(prog, tape, TG_F32, env, 1, NULL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_dtype(y), TG_F32);
    cr_assert_eq((float)tg_tensor_item(y), 0.1f * 1 + 0.2f * 2 + 0.3f);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    cr_assert_eq((float)tg_tensor_grad_get(x, 1), 0.2f);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_program_free(prog);
}

/* ---- the evaluator against the C API ------------------------------------------------------ */

typedef tg_tensor *(*c_build)(tg_tape *tape, tg_tensor *x, tg_tensor *b);

enum domain { D_ANY, D_POS, D_PROB, D_LABELS, D_MATMUL };

typedef struct eval_case {
    const char *src;
    c_build build;
    enum domain dom;
} eval_case;

#define C1(name, expr)                                                                         \
    static tg_tensor *name(tg_tape *tape, tg_tensor *x, tg_tensor *b)                          \
    {                                                                                          \
        (void)b;                                                                               \
        return expr;                                                                           \
    }

C1(c_add, tg_add(tape, x, b))
C1(c_sub, tg_sub(tape, x, b))
C1(c_mul, tg_mul(tape, x, b))
C1(c_div, tg_div(tape, x, b))
C1(c_matmul, tg_matmul(tape, x, b))
C1(c_pow, tg_pow(tape, x, 3))
C1(c_neg, tg_neg(tape, x))
C1(c_scaled, tg_add(tape, tg_mul(tape, tg_scalar(tape, TG_F64, 2), x), tg_scalar(tape, TG_F64, 1)))
C1(c_sigmoid, tg_sigmoid(tape, x))
C1(c_relu, tg_relu(tape, x))
C1(c_tanh, tg_tanh(tape, x))
C1(c_square, tg_square(tape, x))
C1(c_sqrt, tg_sqrt(tape, x))
C1(c_exp, tg_exp(tape, x))
C1(c_log, tg_log(tape, x))
C1(c_abs, tg_abs(tape, x))
C1(c_sum, tg_sum(tape, x, TG_ALL_AXES, false))
C1(c_sum0, tg_sum(tape, x, 0, false))
C1(c_sum_last, tg_sum(tape, x, -1, false))
C1(c_mean, tg_mean(tape, x, TG_ALL_AXES, false))
C1(c_mean1, tg_mean(tape, x, 1, false))
C1(c_max, tg_max(tape, x, TG_ALL_AXES, false))
C1(c_max0, tg_max(tape, x, 0, false))
C1(c_lse, tg_logsumexp(tape, x, TG_ALL_AXES, false))
C1(c_lse1, tg_logsumexp(tape, x, 1, false))
C1(c_softmax, tg_softmax(tape, x, -1))
C1(c_softmax0, tg_softmax(tape, x, 0))
C1(c_log_softmax, tg_log_softmax(tape, x, -1))
C1(c_log_softmax0, tg_log_softmax(tape, x, 0))
C1(c_transpose, tg_transpose(tape, x))
C1(c_reshape, tg_reshape(tape, x, 2, (const size_t[]){3, 2}))
C1(c_reshape_flat, tg_reshape(tape, x, 1, (const size_t[]){6}))
C1(c_reshape_0d, tg_reshape(tape, tg_sum(tape, x, TG_ALL_AXES, false), 0, NULL))
C1(c_detach, tg_mul(tape, tg_detach(tape, x), b))
C1(c_mse, tg_mse(tape, x, b))
C1(c_bce, tg_bce(tape, x, b))
C1(c_bce_logits, tg_bce_logits(tape, x, b))
C1(c_cross_entropy, tg_cross_entropy(tape, x, b))
C1(c_onehot, tg_sum(tape, tg_mul(tape, tg_onehot(tape, b, 3), x), TG_ALL_AXES, false))

static const eval_case CASES[] = {
    {"x + b", c_add, D_ANY},
    {"x - b", c_sub, D_ANY},
    {"x * b", c_mul, D_ANY},
    {"x / b", c_div, D_POS},
    {"x @ b", c_matmul, D_MATMUL},
    {"x ^ 3", c_pow, D_ANY},
    {"-x", c_neg, D_ANY},
    {"2 * x + 1", c_scaled, D_ANY},
    {"sigmoid(x)", c_sigmoid, D_ANY},
    {"relu(x)", c_relu, D_ANY},
    {"tanh(x)", c_tanh, D_ANY},
    {"square(x)", c_square, D_ANY},
    {"sqrt(x)", c_sqrt, D_POS},
    {"exp(x)", c_exp, D_ANY},
    {"log(x)", c_log, D_POS},
    {"abs(x)", c_abs, D_ANY},
    {"sum(x)", c_sum, D_ANY},
    {"sum(x, 0)", c_sum0, D_ANY},
    {"sum(x, -1)", c_sum_last, D_ANY},
    {"mean(x)", c_mean, D_ANY},
    {"mean(x, 1)", c_mean1, D_ANY},
    {"max(x)", c_max, D_ANY},
    {"max(x, 0)", c_max0, D_ANY},
    {"logsumexp(x)", c_lse, D_ANY},
    {"logsumexp(x, 1)", c_lse1, D_ANY},
    {"softmax(x)", c_softmax, D_ANY},
    {"softmax(x, 0)", c_softmax0, D_ANY},
    {"log_softmax(x)", c_log_softmax, D_ANY},
    {"log_softmax(x, 0)", c_log_softmax0, D_ANY},
    {"transpose(x)", c_transpose, D_ANY},
    {"reshape(x, [3, 2])", c_reshape, D_ANY},
    {"reshape(x, [-1])", c_reshape_flat, D_ANY},
    {"reshape(sum(x), [])", c_reshape_0d, D_ANY},
    {"detach(x) * b", c_detach, D_ANY},
    {"mse(x, b)", c_mse, D_ANY},
    {"bce(x, b)", c_bce, D_PROB},
    {"bce_logits(x, b)", c_bce_logits, D_PROB},
    {"cross_entropy(x, b)", c_cross_entropy, D_LABELS},
    {"sum(onehot(b, 3) * x)", c_onehot, D_LABELS},
};

/* x is (2,3); b depends on the domain. Values avoid ties (max) and kinks (relu, abs). */
static void make_inputs(enum domain dom, tg_tensor **x, tg_tensor **b)
{
    *x = *b = NULL;
    const size_t s23[2] = {2, 3}, s32[2] = {3, 2}, s2[1] = {2};
    const double any[6] = {0.5, -1.25, 2.0, -0.3, 0.9, 1.7};
    const double pos[6] = {0.5, 1.25, 2.0, 0.3, 0.9, 1.7};
    const double prob[6] = {0.2, 0.7, 0.5, 0.9, 0.35, 0.6};
    const double other[6] = {1.5, 0.25, -0.75, 2.5, -1.1, 0.4};
    const double targets[6] = {1, 0, 1, 0, 0, 1};
    switch (dom) {
    case D_ANY:
        *x = ts_leaf(TG_F64, 2, s23, any, true);
        *b = ts_leaf(TG_F64, 2, s23, other, true);
        break;
    case D_POS:
        *x = ts_leaf(TG_F64, 2, s23, pos, true);
        *b = ts_leaf(TG_F64, 2, s23, pos, true);
        break;
    case D_PROB:
        *x = ts_leaf(TG_F64, 2, s23, prob, true);
        *b = ts_leaf(TG_F64, 2, s23, targets, false);
        break;
    case D_LABELS:
        *x = ts_leaf(TG_F64, 2, s23, any, true);
        *b = ts_leaf(TG_F64, 1, s2, (double[]){2, 0}, false);
        break;
    case D_MATMUL:
        *x = ts_leaf(TG_F64, 2, s23, any, true);
        *b = ts_leaf(TG_F64, 2, s32, other, true);
        break;
    }
}

/* Values and gradients (of sum(output), through a ones seed) of one build. */
static void collect(tg_tensor *y, tg_tape *tape, tg_tensor *x, tg_tensor *b, double *vals,
                    double *gx, double *gb)
{
    cr_assert_eq(tg_tensor_to_f64(y, vals), TG_OK);
    tg_tensor_zero_grad(x);
    tg_tensor_zero_grad(b);
    if (tg_tensor_requires_grad(y)) {
        tg_tensor *seed = tg_tensor_ones(TG_F64, tg_tensor_rank(y), tg_tensor_shape(y));
        cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
        tg_tensor_free(seed);
    }
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        gx[i] = tg_tensor_grad_get(x, i);
    for (size_t i = 0; i < tg_tensor_numel(b); i++)
        gb[i] = tg_tensor_grad_get(b, i);
}

Test(evaluator, every_function_matches_the_c_api)
{
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        const eval_case *c = &CASES[k];
        tg_tensor *x, *b;
        make_inputs(c->dom, &x, &b);
        tg_tape *tape = tg_tape_new();
        tg_binding env[2] = {{"x", x}, {"b", b}};
        tg_tensor *y1 = eval_ok(tape, c->src, env, 2);
        double v1[16], gx1[16], gb1[16], v2[16], gx2[16], gb2[16];
        collect(y1, tape, x, b, v1, gx1, gb1);
        tg_tape *tape2 = tg_tape_new();
        tg_tensor *y2 = c->build(tape2, x, b);
        cr_assert_not_null(y2, "%s: %s", c->src, tg_last_error());
        collect(y2, tape2, x, b, v2, gx2, gb2);
        cr_assert_eq(tg_tensor_rank(y1), tg_tensor_rank(y2), "%s: rank", c->src);
        for (int i = 0; i < tg_tensor_rank(y1); i++)
            cr_assert_eq(tg_tensor_dim(y1, i), tg_tensor_dim(y2, i), "%s: shape", c->src);
        cr_assert_eq(tg_tape_size(tape), tg_tape_size(tape2), "%s: same number of nodes",
                     c->src);
        for (size_t i = 0; i < tg_tensor_numel(y1); i++)
            cr_assert_eq(v1[i], v2[i], "%s: value[%zu] %.17g vs %.17g", c->src, i, v1[i], v2[i]);
        for (size_t i = 0; i < tg_tensor_numel(x); i++)
            cr_assert_eq(gx1[i], gx2[i], "%s: dx[%zu] %.17g vs %.17g", c->src, i, gx1[i], gx2[i]);
        for (size_t i = 0; i < tg_tensor_numel(b); i++)
            cr_assert_eq(gb1[i], gb2[i], "%s: db[%zu]", c->src, i);
        tg_tape_free(tape);
        tg_tape_free(tape2);
        tg_tensor_free(x);
        tg_tensor_free(b);
    }
}

static tg_tensor *check_program(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    tg_binding env[2] = {{"x", in[0]}, {"W", in[1]}};
    return tg_program_eval(ud, tape, TG_F64, env, 2, NULL);
}

Test(evaluator, gradcheck_through_a_composite_program)
{
    tg_program *prog = parse_ok("h = tanh(x @ W + [0.1, -0.2]); p = softmax(h)\n"
                                "mean(p^2) + sum(logsumexp(h, 1)) / 3 - sum(max(abs(W), 0))");
    const size_t s23[2] = {2, 3}, s32[2] = {3, 2};
    tg_tensor *in[2] = {
        ts_leaf(TG_F64, 2, s23, (double[]){0.5, -1.25, 2.0, -0.3, 0.9, 1.7}, true),
        ts_leaf(TG_F64, 2, s32, (double[]){1.5, 0.25, -0.75, 2.5, -1.1, 0.4}, true)};
    double err[2];
    tg_status st = tg_gradcheck(check_program, prog, in, 2, NULL, err);
    cr_assert_eq(st, TG_OK, "%s (errors %g, %g)", tg_last_error(), err[0], err[1]);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
    tg_program_free(prog);
}

/* ---- syntax errors: every message, with its place ------------------------------------------ */

Test(syntax_errors, full_message_with_caret)
{
    parse_fails("z = 2*x + tanhh(x)", "error: 1:11: unknown function 'tanhh' (did you mean "
                                      "'tanh'?)\n    z = 2*x + tanhh(x)\n              ^~~~~");
    tg_expr_error err = parse_fails("a = 1\nb = foo(a)\nb",
                                    "error: 2:5: unknown function 'foo'\n    b = foo(a)\n"
                                    "        ^~~");
    cr_assert_eq(err.line, 2);
    cr_assert_eq(err.col, 5);
    cr_assert_eq(err.offset, 10);
    cr_assert_eq(err.end, 13);
    cr_assert_str_eq(err.message, "unknown function 'foo'");
    /* Tabs are kept in the caret line so it lines up in a terminal. */
    parse_fails("\tx +\t)", "error: 1:6: expected an expression, found ')'\n    \tx +\t)\n"
                            "    \t   \t^");
    /* At the end of the input the caret sits just past the text. */
    parse_fails("x +", "error: 1:4: expected an expression, found end of input\n    x +\n"
                       "       ^");
    parse_fails("", "error: 1:1: the program is empty: it needs an expression, its output\n"
                    "    \n    ^");
}

Test(syntax_errors, long_lines_are_clipped_around_the_error)
{
    char src[400];
    memset(src, ' ', sizeof src);
    memcpy(src, "y = x", 5);
    memcpy(src + 300, "+ $ 1", 5);
    src[305] = '\0';
    tg_program *prog;
    cr_assert_eq(tg_program_parse(src, &prog), TG_EFORMAT);
    const char *msg = tg_last_error();
    cr_assert(strncmp(msg, "error: 1:303: unexpected character '$'\n    ...", 46) == 0, "%s", msg);
    /* The caret still sits under the '$'. */
    const char *l2 = strchr(msg, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    cr_assert_eq(strchr(l2, '$') - l2, strchr(l3, '^') - l3, "%s", msg);
    cr_assert_lt(strlen(msg), 400);
}

Test(syntax_errors, lexical)
{
    parse_fails_line("x $ 2", "error: 1:3: unexpected character '$'");
    parse_fails_line("x ** 2", "error: 1:3: '**' is not an operator in tgx: write powers as x^2");
    parse_fails_line("2x + 1", "error: 1:1: malformed number '2x' (write 2*x for a product)");
    parse_fails_line("0x1p3 * x", "error: 1:1: malformed number '0x1p3' (tgx numbers are "
                                  "decimal: no hexadecimal)");
    parse_fails_line("1.2.3", "error: 1:1: malformed number '1.2.3'");
    parse_fails_line("1e5e", "error: 1:1: malformed number '1e5e'");
    parse_fails_line("1e+ * x", "error: 1:1: malformed number '1e+' (its exponent has no "
                                "digits)");
    parse_fails_line("2E", "error: 1:1: malformed number '2E' (its exponent has no digits)");
    parse_fails_line("1e999", "error: 1:1: number 1e999 is too large for a double");
    parse_fails_line("x + \xc3\xa9", "error: 1:5: unexpected byte 0xc3 (tgx is ASCII outside "
                                    "comments)");
    char big[420];
    memset(big, '1', 410);
    big[410] = '\0';
    parse_fails_line(big, "error: 1:1: number literal of 410 characters is too long");
    /* A NUL byte inside the given length is an error, not the end. */
    tg_program *prog;
    tg_expr_error err;
    cr_assert_eq(tg_program_parse_n("x\0y", 3, &err, &prog), TG_EFORMAT);
    cr_assert_str_eq(err.message, "unexpected NUL byte");
    cr_assert_eq(err.col, 2);
    /* In a comment too: the program's source would be cut there. */
    cr_assert_eq(tg_program_parse_n("x # a\0b\n", 8, &err, &prog), TG_EFORMAT);
    cr_assert_null(prog);
    cr_assert_str_eq(err.message, "unexpected NUL byte");
    cr_assert_eq(err.col, 6);
    /* Non-ASCII bytes are fine in comments. */
    ts_assert_close(value_at("x # caf\xc3\xa9\n", 2), 2, 0, 0, "utf-8 comment");
    /* The source line in a message shows UTF-8 text as it is, but a byte that is not UTF-8, a
     * C1 control character (U+009B is a terminal's CSI) or a character the window cuts is '?',
     * as C0 controls are: the message stays text a terminal only prints. */
    parse_fails("x $ # caf\xc3\xa9", "error: 1:3: unexpected character '$'\n"
                                     "    x $ # caf\xc3\xa9\n      ^");
    parse_fails("x + \xff # \xc2\x9b" "2J\x1b[2J",
                "error: 1:5: unexpected byte 0xff (tgx is ASCII outside comments)\n"
                "    x + ? # ??2J?[2J\n        ^");
    parse_fails("x + \xc2\x9b", "error: 1:5: unexpected byte 0xc2 (tgx is ASCII outside "
                                "comments)\n    x + ??\n        ^");
    char cut[200];
    memset(cut, ' ', sizeof cut);
    memcpy(cut, "$ #", 3);
    for (size_t i = 3; i + 2 < 120; i += 2)
        memcpy(cut + i, "\xc3\xa9", 2); /* the 72-byte window ends inside an e-acute */
    cut[119] = '\0';
    tg_program *cp = NULL;
    cr_assert_eq(tg_program_parse(cut, &cp), TG_EFORMAT);
    const char *line2 = strchr(tg_last_error(), '\n') + 1;
    cr_assert(strncmp(line2, "    $ #\xc3\xa9", 9) == 0, "%s", tg_last_error());
    cr_assert(strstr(line2, "\xc3\xa9?...\n") != NULL, "%s", tg_last_error());
    ts_assert_close(value_at("1e-400 + x", 2), 2, 0, 0, "underflow to 0 is fine");
    /* so in f32 is 1e-50, as in an f32 list (tg_scalar itself refuses it) */
    tg_program *p32 = NULL;
    cr_assert_eq(tg_program_parse("1e-50 * x + [1e-50]", &p32), TG_OK, "%s", tg_last_error());
    tg_tape *tape = tg_tape_new();
    tg_tensor *x32 = tg_tensor_scalar(TG_F32, 3);
    tg_tensor *y = tg_program_eval(p32, tape, TG_F32, (tg_binding[]){{"x", x32}}, 1, NULL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_get(y, 0), 0);
    tg_tape_free(tape);
    tg_tensor_free(x32);
    tg_program_free(p32);
}

Test(syntax_errors, expressions_and_statements)
{
    parse_fails_line("x + )", "error: 1:5: expected an expression, found ')'");
    parse_fails_line("x *\ny", "error: 1:4: expected an expression, found end of line");
    parse_fails_line("(x + 1", "error: 1:7: expected ')' to close the '(' at 1:1, found end "
                               "of input");
    parse_fails_line("a = (x\n+ 1; a", "error: 2:4: expected ')' to close the '(' at 1:5, found "
                                       "';'");
    parse_fails_line("x y", "error: 1:3: expected ';' or a new line after the statement, "
                            "found 'y'");
    parse_fails_line("a = 1 2", "error: 1:7: expected ';' or a new line after the statement, "
                                "found number 2");
    parse_fails_line("x = = 2", "error: 1:5: expected an expression, found '='");
    parse_fails_line("x + 1 = 3", "error: 1:1: only a name can be bound with '='");
    parse_fails_line("a = 1", "error: 1:1: the program must end with an expression, its output "
                              "(add a line 'a' to output a)");
    parse_fails_line("x; y", "error: 1:1: this value is unused: bind it with 'name = ...' or "
                             "make it the last statement");
    parse_fails_line("  \n # only a comment\n;;", "error: 3:3: the program is empty: it needs an "
                                                  "expression, its output");
    parse_fails_line("sum = 2; x", "error: 1:1: cannot bind 'sum': it is the name of a function");
    parse_fails_line("sum + 1", "error: 1:1: 'sum' is a function: call it as sum(...)");
    /* A byte tgx does not take right after a function's name is the error reported, not the
     * name: "sin\u00a0(x)", a no-break space, looks like a call. */
    parse_fails_line("sin\xc2\xa0(x)", "error: 1:4: unexpected byte 0xc2 (tgx is ASCII outside "
                                       "comments)");
    /* (A tensor exponent records pow_tensor: test_expr_ops.c.) */
}

Test(syntax_errors, calls)
{
    parse_fails_line("sigmod(x)", "error: 1:1: unknown function 'sigmod' (did you mean "
                                  "'sigmoid'?)");
    parse_fails_line("logsoftmax(x)", "error: 1:1: unknown function 'logsoftmax' (did you mean "
                                      "'log_softmax'?)");
    parse_fails_line("foo(x)", "error: 1:1: unknown function 'foo'");
    parse_fails_line("sigmoid(x, 2)", "error: 1:12: 'sigmoid' takes 1 argument: sigmoid(x)");
    parse_fails_line("sum(x, 1, 2)", "error: 1:11: 'sum' takes 1 or 2 arguments: sum(x[, axis])");
    parse_fails_line("mse(x)", "error: 1:1: 'mse' takes 2 arguments: mse(pred, target) (got 1)");
    /* operands named as docs/tgx.md names them where their order matters */
    parse_fails_line("atan2(x)", "error: 1:1: 'atan2' takes 2 arguments: atan2(y, x) (got 1)");
    parse_fails_line("take(x)", "error: 1:1: 'take' takes 3 arguments: take(x, idx, axis) (got 1)");
    parse_fails_line("relu()", "error: 1:1: 'relu' takes 1 argument: relu(x) (got 0)");
    parse_fails_line("sum(x 1)", "error: 1:7: expected ',' or ')' after argument 1 of 'sum', "
                                 "found number 1");
    parse_fails_line("sum(,x)", "error: 1:5: expected an expression, found ','");
    ts_assert_close(value_at("sum(x, )", 2), 2, 0, 0, "a trailing comma in a call");
    /* A call left open after its last argument and a trailing comma lacks its ')'; it does
     * not have too many arguments. */
    parse_fails_line("relu(x,", "error: 1:8: expected ')' after argument 1 of 'relu', found end "
                                "of input");
    parse_fails_line("y = sum(x, 0,; y", "error: 1:14: expected ')' after argument 2 of 'sum', "
                                         "found ';'");
    parse_fails_line("sum(x, y)", "error: 1:8: the axis of 'sum' must be a constant number");
    parse_fails_line("mean(x, axis=0)", "error: 1:9: the axis of 'mean' must be a constant "
                                        "number");
    parse_fails_line("softmax(x, 0.5)", "error: 1:12: the axis of 'softmax' must be an integer, "
                                        "not 0.5");
    /* An integer axis past any tensor's is out of range, not "not an integer". */
    parse_fails_line("sum(x, 1e10)", "error: 1:8: the axis of 'sum' is 1e+10, out of range (a "
                                     "tensor has at most 4 axes)");
    parse_fails_line("permute(x, [1e10, 0])", "error: 1:12: the axes of 'permute' hold 1e+10, "
                                              "out of range (a tensor has at most 4 axes)");
    parse_fails_line("permute(x, [0.5, 0])", "error: 1:12: the axes of 'permute' must be "
                                             "integers, not 0.5");
    parse_fails_line("onehot(x, -1)", "error: 1:11: the class count of 'onehot' must be an "
                                      "integer >= 1, not -1");
    parse_fails_line("onehot(x, 0)", "error: 1:11: the class count of 'onehot' must be an "
                                     "integer >= 1, not 0");
    parse_fails_line("onehot(x, n)", "error: 1:11: the class count of 'onehot' must be a "
                                     "constant number");
    parse_fails_line("reshape(x, 3)", "error: 1:12: the shape of 'reshape' must be a list of "
                                      "integers, like [2, 3]");
    parse_fails_line("reshape(x, [[1]])", "error: 1:12: the shape of 'reshape' must be a flat "
                                          "list of at most 4 integers");
    parse_fails_line("reshape(x, [1,1,1,1,1])", "error: 1:12: the shape of 'reshape' must be a "
                                                "flat list of at most 4 integers");
    parse_fails_line("reshape(x, [1.5])", "error: 1:12: the shape of 'reshape' must hold "
                                          "integers >= 0 (and at most one -1), not 1.5");
    parse_fails_line("reshape(x, [-2])", "error: 1:12: the shape of 'reshape' must hold "
                                         "integers >= 0 (and at most one -1), not -2");
    parse_fails_line("reshape(x, [-1, 2, -1])", "error: 1:12: the shape of 'reshape' may hold "
                                                "only one -1");
    parse_fails_line("reshape(x, [1e15, 1e15])", "error: 1:12: the shape of 'reshape' has too "
                                                 "many elements");
}

Test(syntax_errors, tensor_literals)
{
    parse_fails_line("[1 2]", "error: 1:4: expected ',' or ']' in a list, found number 2");
    parse_fails_line("[1, 2", "error: 1:6: expected ',' or ']' in a list, found end of input");
    parse_fails_line("[[1, 2], [3]]", "error: 1:10: ragged tensor literal: this list has 1 "
                                      "element, the first list at its depth has 2");
    parse_fails_line("[[1], []]", "error: 1:7: ragged tensor literal: this list has 0 elements, "
                                  "the first list at its depth has 1");
    parse_fails_line("[[1], 2]", "error: 1:7: ragged tensor literal: a number where a list "
                                 "belongs");
    parse_fails_line("[1, [2]]", "error: 1:5: ragged tensor literal: a list where a number "
                                 "belongs");
    parse_fails_line("[[[1]], []]", "error: 1:9: ragged tensor literal: an empty list where a "
                                    "number belongs");
    parse_fails_line("[[[[[1]]]]]", "error: 1:5: a tensor literal has at most 4 dimensions");
    parse_fails_line("[1, y]", "error: 1:5: a tensor literal element must be a constant number");
    parse_fails_line("[1, exp(1)]", "error: 1:5: a tensor literal element must be a constant "
                                    "number");
}

Test(syntax_errors, bad_arguments)
{
    tg_program *prog = (tg_program *)1;
    cr_assert_eq(tg_program_parse(NULL, &prog), TG_EINVAL);
    cr_assert_eq(tg_program_parse("x", NULL), TG_EINVAL);
    tg_expr_error err;
    cr_assert_eq(tg_program_parse_n("x", TG_EXPR_MAX_SOURCE + 1, &err, &prog), TG_EFORMAT);
    cr_assert_null(prog);
    cr_assert_eq(err.line, 0);
    ts_assert_has(tg_last_error(), "too long");
    tg_program_free(NULL);
    cr_assert_null(tg_program_source(NULL, NULL));
    cr_assert_eq(tg_program_input_count(NULL), 0);
    char small[8];
    size_t n = tg_expr_error_format(&err, "x", 1, small, sizeof small);
    cr_assert_gt(n, sizeof small);
    cr_assert_eq(strlen(small), sizeof small - 1, "truncated like snprintf");
    cr_assert_eq(tg_expr_error_format(&err, "x", 1, NULL, 0), n);
}

/* ---- hostile input ------------------------------------------------------------------------ */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    cr_assert_not_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + n * ul, tail, tl + 1);
    return s;
}

Test(hostile, nesting_depth_is_capped)
{
    /* Within the cap: fine. */
    char *ok = repeat("", "(", 200, "x");
    char *ok2 = repeat(ok, ")", 200, "");
    ts_assert_close(value_at(ok2, 7), 7, 0, 0, "200 parentheses");
    free(ok);
    free(ok2);
    /* Beyond it: an error at the first construct past the limit, not a stack overflow. */
    const char *units[] = {"(", "sum(", "-(", "x^", "[", "[(", "relu(1+"};
    for (size_t k = 0; k < sizeof units / sizeof *units; k++) {
        char *deep = repeat("", units[k], 100000, "x");
        tg_program *prog = NULL;
        tg_status st = tg_program_parse(deep, &prog);
        cr_assert_eq(st, TG_EFORMAT, "unit '%s'", units[k]);
        cr_assert(strstr(tg_last_error(), "nested too deeply (more than 256 levels)") ||
                      strstr(tg_last_error(), "at most 4 dimensions"),
                  "unit '%s': %s", units[k], tg_last_error());
        free(deep);
    }
}

Test(hostile, long_chains_are_iterative)
{
    /* x+x+...+x with 200,000 terms: left-deep, parsed and evaluated with loops. */
    char *sum = repeat("x", "+x", 199999, "");
    ts_assert_close(value_at(sum, 0.5), 100000, 0, 0, "long sum");
    free(sum);
    char *neg = repeat("", "-", 100001, "x");
    ts_assert_close(value_at(neg, 2), -2, 0, 0, "long run of minus signs");
    free(neg);
    char *stmts = repeat("a = x\n", "a = a * 1\n", 100000, "a");
    ts_assert_close(value_at(stmts, 3), 3, 0, 0, "many statements");
    free(stmts);
}

Test(hostile, many_distinct_names)
{
    /* 20,000 inputs exercise the symbol table's growth. */
    size_t n = 20000;
    char *src = malloc(n * 12 + 8);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(src + len, "%sv%zu", i ? "+" : "", i);
    tg_program *prog = parse_ok(src);
    cr_assert_eq(tg_program_input_count(prog), n);
    cr_assert_str_eq(tg_program_input_name(prog, 12345), "v12345");
    tg_program_free(prog);
    free(src);
}

Test(hostile, huge_shapes_fail_cleanly)
{
    tg_tape *tape = tg_tape_new();
    const size_t s[1] = {4};
    tg_tensor *x = ts_leaf(TG_F64, 1, s, (double[]){1, 2, 3, 4}, false);
    tg_binding env[1] = {{"x", x}};
    tg_program *prog = parse_ok("reshape(x, [4503599627370496, 2])");
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 1, NULL));
    cr_assert_eq(tg_last_status(), TG_ESHAPE, "%s", tg_last_error());
    tg_program_free(prog);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- evaluation errors --------------------------------------------------------------------- */

/* Evaluates src (f64, x = [1,2,3] and W = [[1,2],[3,4]]) expecting failure; checks the status
 * and the whole formatted message. */
static void eval_fails(const char *src, tg_status want_status, const char *want)
{
    tg_tape *tape = tg_tape_new();
    const size_t s3[1] = {3}, s22[2] = {2, 2};
    tg_tensor *x = ts_leaf(TG_F64, 1, s3, (double[]){1, 2, 3}, true);
    tg_tensor *W = ts_leaf(TG_F64, 2, s22, (double[]){1, 2, 3, 4}, true);
    tg_binding env[2] = {{"x", x}, {"W", W}};
    tg_program *prog = parse_ok(src);
    tg_expr_error err;
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 2, &err), "'%s' evaluated", src);
    cr_assert_eq(err.status, want_status, "'%s': status %s", src, tg_status_name(err.status));
    cr_assert_eq(tg_last_status(), want_status);
    cr_assert_str_eq(tg_last_error(), want, "for '%s'", src);
    tg_program_free(prog);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(W);
}

Test(eval_errors, shape_errors_carry_the_span)
{
    eval_fails("y = W + x; y", TG_ESHAPE,
               "error: 1:5-9: add: [2,2] and [3] do not broadcast: axis -1 has sizes 2 and 3 "
               "(node 0)\n    y = W + x; y\n        ^~~~~");
    eval_fails("a = W @ W\nb = a @ [1, 2, 3]\nb", TG_ESHAPE,
               "error: 2:5-17: matmul: [2,2] @ [3]: inner dimensions 2 and 3 differ (node 2)\n"
               "    b = a @ [1, 2, 3]\n        ^~~~~~~~~~~~~");
    /* A span over several lines shows both ends and underlines its first line. */
    eval_fails("y = (W +\n x)\ny", TG_ESHAPE,
               "error: 1:6-2:2: add: [2,2] and [3] do not broadcast: axis -1 has sizes 2 and 3 "
               "(node 0)\n    y = (W +\n         ^~~");
    eval_fails("sum(x, 3)", TG_EINVAL,
               "error: 1:1-9: sum: axis 3 is out of range for [3] (rank 1) (node 0)\n"
               "    sum(x, 3)\n    ^~~~~~~~~");
    eval_fails("transpose(x)", TG_ESHAPE,
               "error: 1:1-12: transpose: [3]: expected a 2-D tensor (node 0)\n"
               "    transpose(x)\n    ^~~~~~~~~~~~");
    eval_fails("reshape(W, [3, -1])", TG_ESHAPE,
               "error: 1:1-19: reshape: cannot fill the -1 of the new shape: [2,2] has 4 "
               "elements, not a multiple of 3\n    reshape(W, [3, -1])\n    ^~~~~~~~~~~~~~~~~~~");
    eval_fails("reshape(W, [0, -1])", TG_ESHAPE,
               "error: 1:1-19: reshape: cannot fill the -1 of the new shape: [2,2] has 4 "
               "elements, not a multiple of 0\n    reshape(W, [0, -1])\n    ^~~~~~~~~~~~~~~~~~~");
    /* With no elements either, every size would fill it: not "not a multiple of 0". */
    eval_fails("reshape(x[3:], [0, -1])", TG_ESHAPE,
               "error: 1:1-23: reshape: cannot fill the -1 of the new shape: [0] has no elements "
               "and the other sizes multiply to 0, so any size would do\n"
               "    reshape(x[3:], [0, -1])\n    ^~~~~~~~~~~~~~~~~~~~~~~");
}

Test(eval_errors, messages_from_ops_and_losses)
{
    tg_tape *tape = tg_tape_new();
    const size_t s22[2] = {2, 2}, s2[1] = {2};
    tg_tensor *z = ts_leaf(TG_F64, 2, s22, (double[]){1, 2, 3, 4}, true);
    tg_tensor *lab = ts_leaf(TG_F64, 1, s2, (double[]){0, 5}, false);
    tg_binding env[2] = {{"z", z}, {"labels", lab}};
    tg_program *prog = parse_ok("loss = cross_entropy(z, labels)\nloss");
    tg_expr_error err;
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 2, &err));
    cr_assert_eq(err.status, TG_EINVAL);
    ts_assert_has(tg_last_error(), "error: 1:8-31: cross_entropy: label 1 is 5, not an integer "
                                   "class id in 0..1");
    tg_program_free(prog);
    tg_tape_free(tape);
    tg_tensor_free(z);
    tg_tensor_free(lab);
}

Test(eval_errors, bindings)
{
    eval_fails("x + y * 2", TG_EINVAL, "error: 1:5: no value for input 'y'\n    x + y * 2\n"
                                       "        ^");
    tg_tape *tape = tg_tape_new();
    tg_tensor *x32 = tg_tensor_scalar(TG_F32, 1);
    tg_program *prog = parse_ok("2 * x");
    tg_binding env[1] = {{"x", x32}};
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, env, 1, NULL));
    cr_assert_str_eq(tg_last_error(), "error: 1:5: input 'x' is f32, but the program is "
                                      "evaluated in f64\n    2 * x\n        ^");
    /* A long name is clipped in the message, as the parser's messages clip it, so the rest
     * of the message is not cut off. */
    char longname[1200];
    memset(longname, 'v', 1000);
    strcpy(longname + 1000, " + 1");
    tg_program *lp = parse_ok(longname);
    tg_expr_error lerr;
    cr_assert_null(tg_program_eval(lp, tape, TG_F64, NULL, 0, &lerr));
    cr_assert_str_eq(lerr.message, "no value for input "
                                   "'vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv'");
    longname[1000] = '\0';
    tg_binding lenv[1] = {{longname, x32}};
    cr_assert_null(tg_program_eval(lp, tape, TG_F64, lenv, 1, &lerr));
    cr_assert_str_eq(lerr.message, "input 'vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv' is "
                                   "f32, but the program is evaluated in f64");
    tg_program_free(lp);
    tg_binding nul[1] = {{"x", NULL}};
    cr_assert_null(tg_program_eval(prog, tape, TG_F32, nul, 1, NULL));
    ts_assert_has(tg_last_error(), "input 'x' is bound to NULL");
    /* The first of two bindings of a name counts; bindings with a NULL name are skipped. */
    tg_tensor *x32b = tg_tensor_scalar(TG_F32, 5);
    tg_binding two[3] = {{NULL, x32b}, {"x", x32}, {"x", x32b}};
    tg_tensor *y = tg_program_eval(prog, tape, TG_F32, two, 3, NULL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_item(y), 2);
    /* Bad arguments. */
    cr_assert_null(tg_program_eval(NULL, tape, TG_F64, env, 1, NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    cr_assert_null(tg_program_eval(prog, NULL, TG_F64, env, 1, NULL));
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, NULL, 1, NULL));
    cr_assert_null(tg_program_eval(prog, tape, (tg_dtype)7, env, 1, NULL));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    /* A tape that already holds an error is refused, naming that error. */
    cr_assert_null(tg_add(tape, x32, tg_scalar(tape, TG_F64, 1)));
    tg_expr_error err;
    cr_assert_null(tg_program_eval(prog, tape, TG_F32, env, 1, &err));
    cr_assert_eq(err.line, 0);
    ts_assert_has(tg_last_error(), "the tape already has an error: add: dtypes");
    tg_program_free(prog);
    tg_tape_free(tape);
    tg_tensor_free(x32);
    tg_tensor_free(x32b);
}

/* ---- values --------------------------------------------------------------------------------- */

Test(values, numbers_and_lists)
{
    tg_tensor *t = NULL;
    cr_assert_eq(tg_expr_parse_value("-0.5", TG_F64, NULL, &t), TG_OK);
    cr_assert_eq(tg_tensor_rank(t), 0);
    cr_assert_eq(tg_tensor_item(t), -0.5);
    cr_assert(!tg_tensor_requires_grad(t));
    tg_tensor_free(t);
    cr_assert_eq(tg_expr_parse_value(" 1e-3 ", TG_F64, NULL, &t), TG_OK);
    cr_assert_eq(tg_tensor_item(t), 1e-3);
    tg_tensor_free(t);
    cr_assert_eq(tg_expr_parse_value("[[1, -2],\n [+3, 4.5]]", TG_F32, NULL, &t), TG_OK);
    cr_assert_eq(tg_tensor_dtype(t), TG_F32);
    cr_assert_eq(tg_tensor_dim(t, 0), 2);
    cr_assert_eq(tg_tensor_get(t, 1), -2);
    cr_assert_eq(tg_tensor_get(t, 3), 4.5);
    tg_tensor_free(t);
    cr_assert_eq(tg_expr_parse_value("[nan, -inf, Infinity, NaN]", TG_F64, NULL, &t), TG_OK);
    cr_assert(isnan(tg_tensor_get(t, 0)));
    cr_assert_eq(tg_tensor_get(t, 1), -INFINITY);
    cr_assert_eq(tg_tensor_get(t, 2), INFINITY);
    tg_tensor_free(t);
    cr_assert_eq(tg_expr_parse_value("[]", TG_F64, NULL, &t), TG_OK);
    cr_assert_eq(tg_tensor_numel(t), 0);
    cr_assert_eq(tg_tensor_rank(t), 1);
    tg_tensor_free(t);
    cr_assert_eq(tg_expr_parse_value("[[[[7]]]]", TG_F64, NULL, &t), TG_OK);
    cr_assert_eq(tg_tensor_rank(t), 4);
    tg_tensor_free(t);
}

static void value_fails(const char *text, const char *want)
{
    tg_tensor *t = (tg_tensor *)1;
    tg_expr_error err;
    cr_assert_eq(tg_expr_parse_value(text, TG_F64, &err, &t), TG_EFORMAT, "'%s' parsed", text);
    cr_assert_null(t);
    size_t n = strcspn(tg_last_error(), "\n");
    cr_assert(strlen(want) == n && strncmp(tg_last_error(), want, n) == 0,
              "for '%s':\n got: %s\nwant: %s", text, tg_last_error(), want);
}

/* Numbers read the same whatever locale the host program set, also where the decimal point is
 * a comma or a multibyte character (ps_AF's U+066B). Skipped where no such locale is
 * installed (localedef -i ps_AF -f UTF-8 DIR/ps_AF.UTF-8 and LOCPATH=DIR provide one). */
Test(values, numbers_read_in_any_locale)
{
    static const char *const locales[] = {"ps_AF.UTF-8", "de_DE.UTF-8", "fr_FR.UTF-8"};
    int tried = 0;
    for (size_t i = 0; i < sizeof locales / sizeof locales[0]; i++) {
        if (!setlocale(LC_ALL, locales[i]) || strcmp(localeconv()->decimal_point, ".") == 0)
            continue;
        tried++;
        tg_tensor *v = NULL;
        cr_assert_eq(tg_expr_parse_value("[1.5, -2.25e1, .5]", TG_F64, NULL, &v), TG_OK, "%s",
                     locales[i]);
        cr_expect_eq(tg_tensor_get(v, 0), 1.5, "%s", locales[i]);
        cr_expect_eq(tg_tensor_get(v, 1), -22.5, "%s", locales[i]);
        cr_expect_eq(tg_tensor_get(v, 2), 0.5, "%s", locales[i]);
        tg_tensor_free(v);
        cr_expect_eq(value_at("x * 0.25 + 1.125", 2), 1.625, "%s", locales[i]);
    }
    setlocale(LC_ALL, "C");
    if (!tried)
        cr_skip_test("no locale with a decimal point other than '.' is installed");
}

Test(values, errors)
{
    value_fails("", "error: 1:1: expected a number, found end of input");
    value_fails("[1, 2", "error: 1:6: expected ',' or ']' in a list, found end of input");
    value_fails("[[1, 2], [3]]", "error: 1:10: ragged tensor literal: this list has 1 element, "
                                 "the first list at its depth has 2");
    value_fails("[[[[[1]]]]]", "error: 1:5: a tensor literal has at most 4 dimensions");
    value_fails("1 2", "error: 1:3: expected the end of the value, found number 2");
    value_fails("x", "error: 1:1: expected a number, found 'x'");
    value_fails("[1, 2*3]", "error: 1:6: expected ',' or ']' in a list, found '*'");
    value_fails("--1", "error: 1:1: expected a number, found '-'");
    value_fails("1e999", "error: 1:1: number 1e999 is too large for a double");
    /* A value has no products: no hint to write one (2*x would be an error too). */
    value_fails("2x", "error: 1:1: malformed number '2x'");
    value_fails("0x10", "error: 1:1: malformed number '0x10' (tgx numbers are decimal: no "
                        "hexadecimal)");
    tg_tensor *t;
    cr_assert_eq(tg_expr_parse_value(NULL, TG_F64, NULL, &t), TG_EINVAL);
    cr_assert_eq(tg_expr_parse_value("1", TG_F64, NULL, NULL), TG_EINVAL);
    cr_assert_eq(tg_expr_parse_value("1", (tg_dtype)9, NULL, &t), TG_EINVAL);
}

/* ---- out of memory -------------------------------------------------------------------------- */

static const char *const OOM_SRC =
    "W = [[0.5, -1], [2, 0.25]]; h = tanh(x @ W + b)\n"
    "h = reshape(h, [-1]); p = softmax(h)\n"
    "loss = mse(p, [0.1, 0.2, 0.3, 0.4]) + sum(onehot([1, 0], 2) * x)^2; loss";

static size_t oom_parse(size_t n, void *ud)
{
    (void)ud;
    tg_program *prog = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_program_parse(OOM_SRC, &prog);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "program_parse", n);
        cr_assert_null(prog);
        return 1;
    }
    tg_program_free(prog);
    return 0;
}

static size_t oom_eval(size_t n, void *ud)
{
    (void)ud;
    tg_program *prog = parse_ok(OOM_SRC);
    const size_t s22[2] = {2, 2};
    tg_tensor *x = ts_leaf(TG_F64, 2, s22, (double[]){1, 2, 3, 4}, true);
    tg_tensor *b = ts_vec(TG_F64, 2, (double[]){0.1, -0.1}, false);
    tg_binding env[2] = {{"x", x}, {"b", b}};
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    ts_alloc_fail_at(n);
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, 2, NULL);
    ts_alloc_fail_at(0);
    if (y)
        cr_assert_eq(tg_backward(tape, y), TG_OK);
    else
        ts_assert_enomem(tg_last_status(), "program_eval", n);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(b);
    tg_program_free(prog);
    return y == NULL;
}

static size_t oom_value(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *t = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_expr_parse_value("[[1, 2], [3, 4]]", TG_F32, NULL, &t);
    ts_alloc_fail_at(0);
    tg_tensor_free(t);
    if (st == TG_OK)
        return 0;
    ts_assert_enomem(st, "parse_value", n);
    return 1;
}

Test(alloc, every_failure_in_parse_and_eval_is_clean)
{
    /* Parsing allocates several times, and neither parsing nor evaluating survives a refused
     * allocation. */
    ts_oom_drive("program_parse", oom_parse, NULL,
                 (ts_oom_opts){.min_failing = 3, .max_runs = 10000, .no_fallback = true});
    ts_oom_drive("program_eval", oom_eval, NULL,
                 (ts_oom_opts){.min_failing = 1, .max_runs = 10000, .no_fallback = true});
    ts_oom_drive("parse_value", oom_value, NULL, (ts_oom_opts){.min_failing = 1, .max_runs = 100});
}

/* ---- fuzzing (tests/fuzz) ----------------------------------------------------------------------
 * Inputs the fuzzer finds go into tests/fuzz/corpus_tgx (and, when they crashed, get a test of
 * their own here). Every corpus file is replayed the way the harness runs it. */

Test(fuzz, corpus_replays_cleanly)
{
    const char *root = tp_env("TG_SOURCE_DIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus_tgx", root);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        tg_program *prog = NULL;
        tg_expr_error err;
        if (tg_program_parse_n(buf, n, &err, &prog) == TG_OK) {
            const size_t s23[2] = {2, 3};
            tg_tensor *x =
                ts_leaf(TG_F64, 2, s23, (double[]){0.5, -1.25, 2.0, -0.3, 0.9, 1.7}, true);
            tg_binding env[16];
            size_t k = tg_program_input_count(prog);
            for (size_t i = 0; i < k && i < 16; i++)
                env[i] = (tg_binding){tg_program_input_name(prog, i), x};
            tg_tape *tape = tg_tape_new();
            tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, k < 16 ? k : 16, NULL);
            if (y && tg_tensor_requires_grad(y)) {
                tg_tensor *seed = tg_tensor_ones(TG_F64, tg_tensor_rank(y), tg_tensor_shape(y));
                tg_backward_seed(tape, y, seed);
                tg_tensor_free(seed);
            }
            tg_tape_free(tape);
            tg_tensor_free(x);
            tg_program_free(prog);
        } else {
            cr_assert_eq(err.status, TG_EFORMAT, "%s: %s", e->d_name, tg_last_error());
        }
        files++;
    }
    closedir(d);
    cr_assert_gt(files, 5);
}
