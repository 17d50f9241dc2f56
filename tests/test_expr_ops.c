/* test_expr_ops.c: tgx's comparisons, postfix indexing, lists of tensors and the functions of
 * more than two operands (docs/tgx.md): every indexing form with its exact values and
 * gradients (derived by hand: the inputs are counting sequences, so a value is its position
 * and a gradient marks the positions taken), precedence, the error messages with their
 * carets (syntax errors, and out-of-range indices found when the program runs), and
 * `tapegrad grad` on them (values, --check). test_expr.c has the rest of the language. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/json.h"
#include "support/oom.h"
#include "support/proc.h"

/* ---- inputs ------------------------------------------------------------------------------ */

/* A (3,4) = 1..12, T (2,3,4) = 0..23, v (8) = 1..8, x 0-d = 2, E (3,2) = 1..6 (all
 * differentiable), ids (3) = [2, 0, 2] (a constant). */
enum { N_IN = 6 };
typedef struct inputs {
    tg_tensor *t[N_IN];
    tg_binding env[N_IN];
} inputs;

static void inputs_make(inputs *in)
{
    double seq0[24], seq1[24];
    for (int i = 0; i < 24; i++) {
        seq0[i] = i;
        seq1[i] = i + 1;
    }
    in->t[0] = ts_leaf(TG_F64, 2, TS_SHAPE(3, 4), seq1, true);
    in->t[1] = ts_leaf(TG_F64, 3, TS_SHAPE(2, 3, 4), seq0, true);
    in->t[2] = ts_leaf(TG_F64, 1, TS_SHAPE(8), seq1, true);
    in->t[3] = ts_scalar(TG_F64, 2, true);
    in->t[4] = ts_leaf(TG_F64, 2, TS_SHAPE(3, 2), seq1, true);
    in->t[5] = ts_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(2, 0, 2), false);
    static const char *const NAMES[N_IN] = {"A", "T", "v", "x", "E", "ids"};
    for (int i = 0; i < N_IN; i++)
        in->env[i] = (tg_binding){NAMES[i], in->t[i]};
}

static void inputs_free(inputs *in)
{
    for (int i = 0; i < N_IN; i++)
        tg_tensor_free(in->t[i]);
}

static tg_tensor *input(inputs *in, const char *name)
{
    for (int i = 0; i < N_IN; i++)
        if (strcmp(in->env[i].name, name) == 0)
            return in->t[i];
    cr_assert_fail("no input %s", name);
    return NULL;
}

/* ---- values and gradients ------------------------------------------------------------------ */

/* A program, the shape and values of its output, and the gradient of sum(output) with
 * respect to input `wrt` (NULL: the output carries no gradient). */
typedef struct value_case {
    const char *src;
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t n;
    double vals[24];
    const char *wrt;
    double grad[24];
} value_case;

/* Gradients of one input: ones (or the given weight) at the listed positions. */
#define ROW1                                                                                       \
    {                                                                                              \
        0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0                                                         \
    }

static const value_case CASES[] = {
    /* integer indices drop their axis; negative ones count from the end */
    {"A[1]", 1, {4}, 4, {5, 6, 7, 8}, "A", ROW1},
    {"A[-1]", 1, {4}, 4, {9, 10, 11, 12}, "A", {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1}},
    {"v[1:7:2]", 1, {3}, 3, {2, 4, 6}, "v", {0, 1, 0, 1, 0, 1, 0, 0}},
    {"A[:, 0]", 1, {3}, 3, {1, 5, 9}, "A", {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}},
    {"A[1:, ::2]", 2, {2, 2}, 4, {5, 7, 9, 11}, "A", {0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0}},
    /* any expression can be indexed: column sums of A are 15 18 21 24 */
    {"sum(A, 0)[1:3]", 1, {2}, 2, {18, 21}, "A", {0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0}},
    {"(2*v)[0:3]", 1, {3}, 3, {2, 4, 6}, "v", {2, 2, 2, 0, 0, 0, 0, 0}},
    /* T[i,j,k] = 12i + 4j + k: after the integer 1 drops axis 0, 0:2 applies to axis 2 */
    {"T[1, :, 0:2]", 2, {3, 2}, 6, {12, 13, 16, 17, 20, 21}, "T", {0, 0, 0, 0, 0, 0, 0, 0,
                                                                   0, 0, 0, 0, 1, 1, 0, 0,
                                                                   1, 1, 0, 0, 1, 1, 0, 0}},
    {"T[:, 1]", 2, {2, 4}, 8, {4, 5, 6, 7, 16, 17, 18, 19}, "T", {0, 0, 0, 0, 1, 1, 1, 1,
                                                                  0, 0, 0, 0, 0, 0, 0, 0,
                                                                  1, 1, 1, 1, 0, 0, 0, 0}},
    {"T[1, 1:3, 0]", 1, {2}, 2, {16, 20}, "T", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0}},
    {"T[:, -1, 1:4:2]", 2, {2, 2}, 4, {9, 11, 21, 23}, "T", {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
                                                             0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}},
    {"T[0][1][2]", 0, {0}, 1, {6}, "T", {0, 0, 0, 0, 0, 0, 1}},
    {"T[1, 2, -1]", 0, {0}, 1, {23}, "T", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    /* slices clamp as NumPy's do */
    {"v[-3:]", 1, {3}, 3, {6, 7, 8}, "v", {0, 0, 0, 0, 0, 1, 1, 1}},
    {"v[:-2]", 1, {6}, 6, {1, 2, 3, 4, 5, 6}, "v", {1, 1, 1, 1, 1, 1, 0, 0}},
    {"v[2:100]", 1, {6}, 6, {3, 4, 5, 6, 7, 8}, "v", {0, 0, 1, 1, 1, 1, 1, 1}},
    {"v[5:2]", 1, {0}, 0, {0}, "v", {0}},
    /* however far: bounds and steps beyond 2^53 clamp too */
    {"v[-1e19:9223372036854775807]",
     1,
     {8},
     8,
     {1, 2, 3, 4, 5, 6, 7, 8},
     "v",
     {1, 1, 1, 1, 1, 1, 1, 1}},
    {"v[1e300:]", 1, {0}, 0, {0}, "v", {0}},
    {"v[1::1e300]", 1, {1}, 1, {2}, "v", {0, 1, 0, 0, 0, 0, 0, 0}},
    {"slice(v, 0, -1e30, 2, 1e30)", 1, {1}, 1, {1}, "v", {1, 0, 0, 0, 0, 0, 0, 0}},
    {"A[:, :] * 2",
     2,
     {3, 4},
     12,
     {2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24},
     "A",
     {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
    /* indexing binds tighter than ^ and unary minus: -(v[0]^2) */
    {"-v[1]^2", 0, {0}, 1, {-4}, "v", {0, -4}},
    {"[[1, 2], [3, 4]][1, 0]", 0, {0}, 1, {3}, NULL, {0}},
    /* the function forms */
    {"slice(v, 0, 1, 7, 2)", 1, {3}, 3, {2, 4, 6}, "v", {0, 1, 0, 1, 0, 1, 0, 0}},
    {"slice(A, -1, 0, 2)",
     2,
     {3, 2},
     6,
     {1, 2, 5, 6, 9, 10},
     "A",
     {1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0}},
    {"select(A, 1, -1)", 1, {3}, 3, {4, 8, 12}, "A", {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}},
    /* lists of tensors; a tensor literal is an element like any other */
    {"concat([v[0:2], v[6:], [10, 20]], 0)",
     1,
     {6},
     6,
     {1, 2, 7, 8, 10, 20},
     "v",
     {1, 1, 0, 0, 0, 0, 1, 1}},
    {"stack([A[0], A[2]], 0)",
     2,
     {2, 4},
     8,
     {1, 2, 3, 4, 9, 10, 11, 12},
     "A",
     {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1}},
    {"stack([v[0:2], v[2:4]], 1)", 2, {2, 2}, 4, {1, 3, 2, 4}, "v", {1, 1, 1, 1}},
    {"concat([A, concat([A], 1)], 1)",
     2,
     {3, 8},
     24,
     {1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 9, 10, 11, 12, 9, 10, 11, 12},
     "A",
     {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
    /* take: rows 2, 0, 2 of E; row 2 taken twice gets 2 */
    {"take(E, ids, 0)", 2, {3, 2}, 6, {5, 6, 1, 2, 5, 6}, "E", {1, 1, 0, 0, 2, 2}},
    /* permute(T, [2, 0, 1])[1][i][j] = T[i][j][1] */
    {"permute(T, [2, 0, 1])[1]", 2, {2, 3}, 6, {1, 5, 9, 13, 17, 21}, "T", {0, 1, 0, 0, 0, 1,
                                                                            0, 0, 0, 1, 0, 0,
                                                                            0, 1, 0, 0, 0, 1,
                                                                            0, 0, 0, 1, 0, 0}},
};

/* The comparisons, where and pow_tensor (the binary ops): run once the op table has them. */
static const value_case BINARY_CASES[] = {
    /* comparisons give masks, with no gradient through them */
    {"where(v > 4, v, -v)",
     1,
     {8},
     8,
     {-1, -2, -3, -4, 5, 6, 7, 8},
     "v",
     {-1, -1, -1, -1, 1, 1, 1, 1}},
    {"v >= 4", 1, {8}, 8, {0, 0, 0, 1, 1, 1, 1, 1}, NULL, {0}},
    {"stack([v < 3, v <= 3, v == 3, v != 3], 0)[:, 2]", 1, {4}, 4, {0, 1, 1, 0}, NULL, {0}},
    {"2*x > 3", 0, {0}, 1, {1}, NULL, {0}}, /* (2*x) > 3, not 2*(x > 3) = 0 */
    {"x + 1 == 3", 0, {0}, 1, {1}, NULL, {0}},
    {"x * (x > 1) + x^2", 0, {0}, 1, {6}, "x", {5}},      /* d/dx: the mask 1, plus 2x */
    {"x^(2 > 1) + x^(1 == 2)", 0, {0}, 1, {3}, "x", {1}}, /* constants fold to 1 and 0 */
    /* a tensor exponent: d/da a^b = b a^(b-1), d/db = a^b ln a (python3 math.log:
     * 8*log(2) = 5.545177444479562, 81*log(3) = 88.9875953821169) */
    {"pow(v[0:2] + 1, v[2:4])",
     1,
     {2},
     2,
     {8, 81},
     "v",
     {12, 108, 5.545177444479562, 88.9875953821169}},
    {"(v[0:2] + 1) ^ v[2:4]",
     1,
     {2},
     2,
     {8, 81},
     "v",
     {12, 108, 5.545177444479562, 88.9875953821169}},
};

static void run_cases(const value_case *cases, size_t n)
{
    for (size_t c = 0; c < n; c++) {
        const value_case *k = &cases[c];
        inputs in;
        inputs_make(&in);
        tg_tape *tape = tg_tape_new();
        tg_program *prog = NULL;
        cr_assert_eq(tg_program_parse(k->src, &prog), TG_OK, "%s: %s", k->src, tg_last_error());
        tg_tensor *y = tg_program_eval(prog, tape, TG_F64, in.env, N_IN, NULL);
        cr_assert_not_null(y, "%s: %s", k->src, tg_last_error());
        cr_assert_eq(tg_tensor_rank(y), k->rank, "%s: rank %d", k->src, tg_tensor_rank(y));
        for (int i = 0; i < k->rank; i++)
            cr_assert_eq(tg_tensor_dim(y, i), k->shape[i], "%s: dim %d", k->src, i);
        ts_assert_values(y, k->vals, k->n, 1e-15, 1e-15, "%s", k->src);
        if (k->wrt) {
            tg_tensor *w = input(&in, k->wrt);
            cr_assert(tg_tensor_requires_grad(y), "%s: no gradient", k->src);
            tg_tensor *seed = tg_tensor_ones(TG_F64, tg_tensor_rank(y), tg_tensor_shape(y));
            cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s: %s", k->src, tg_last_error());
            tg_tensor_free(seed);
            ts_assert_grad(w, k->grad, tg_tensor_numel(w), 1e-13, 1e-13, "%s: d/d%s", k->src,
                           k->wrt);
        } else {
            cr_assert(!tg_tensor_requires_grad(y), "%s: a gradient", k->src);
        }
        tg_program_free(prog);
        tg_tape_free(tape);
        inputs_free(&in);
    }
}

Test(values, every_form_with_its_gradient)
{
    run_cases(CASES, sizeof CASES / sizeof CASES[0]);
}

/* Whether the op table has the binary ops (comparisons, where, pow_tensor) yet. */
Test(values, comparisons_where_and_tensor_powers)
{
    run_cases(BINARY_CASES, sizeof BINARY_CASES / sizeof BINARY_CASES[0]);
}

/* What the brackets record: one op per item that is not a whole axis, and nothing for ':'. */
Test(values, recorded_ops)
{
    inputs in;
    inputs_make(&in);
    tg_tape *tape = tg_tape_new();
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse("T[1, :, 0:2]", &prog), TG_OK);
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, in.env, N_IN, NULL);
    cr_assert_not_null(y);
    cr_assert_eq(tg_tape_size(tape), 2);
    cr_assert_eq(tg_tensor_op(tg_tape_node(tape, 0)), TG_OP_SELECT);
    cr_assert_eq(tg_tensor_op(y), TG_OP_SLICE);
    tg_attrs at;
    cr_assert_eq(tg_tensor_attrs(y, &at), TG_OK);
    cr_assert_eq(at.axis, 1); /* axis 2 of T is axis 1 once axis 0 is gone */
    tg_program_free(prog);
    /* a comparison's operands are the arithmetic on either side */
    tg_tape_reset(tape);
    cr_assert_eq(tg_program_parse("2*x > 1 + 1", &prog), TG_OK);
    y = tg_program_eval(prog, tape, TG_F64, in.env, N_IN, NULL);
    cr_assert_not_null(y);
    cr_assert_str_eq(tg_tensor_op_name(y), "gt");
    cr_assert_eq(tg_tensor_op(tg_tensor_input(y, 0)), TG_OP_MUL);
    cr_assert_eq(tg_tensor_op(tg_tensor_input(y, 1)), TG_OP_ADD);
    tg_program_free(prog);
    tg_tape_free(tape);
    inputs_free(&in);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* The whole formatted message of a parse error. */
static void parse_fails(const char *src, const char *want)
{
    tg_program *prog = NULL;
    tg_expr_error err;
    cr_assert_eq(tg_program_parse_n(src, strlen(src), &err, &prog), TG_EFORMAT, "'%s' parsed", src);
    cr_assert_str_eq(tg_last_error(), want, "for '%s'", src);
}

Test(syntax_errors, comparisons_do_not_chain)
{
    parse_fails("a < b < c",
                "error: 1:7: comparisons do not chain: a < b < c would compare the 0/1 mask of "
                "a < b with c; combine masks with * ((a < b) * (b < c)) or choose values with "
                "where\n    a < b < c\n          ^");
    parse_fails("y = 2*x >= 0 != m",
                "error: 1:14: comparisons do not chain: a >= b != c would compare the 0/1 mask "
                "of a >= b with c; combine masks with * ((a >= b) * (b != c)) or choose values "
                "with where\n    y = 2*x >= 0 != m\n                 ^~");
    parse_fails("!x", "error: 1:1: '!' is not an operator in tgx (write != for 'not equal', 1 - m "
                      "for the negation of a mask m)\n    !x\n    ^");
}

Test(syntax_errors, indexing)
{
    parse_fails("v[]", "error: 1:2: empty brackets: an index needs at least one item (x[:] for "
                       "all of x)\n    v[]\n     ^~");
    parse_fails("v[1.5]", "error: 1:3: an index must be an integer, not 1.5\n    v[1.5]\n"
                          "      ^~~");
    parse_fails("v[1e19]", "error: 1:3: an index is beyond 2^53 (no axis is that long)\n"
                           "    v[1e19]\n      ^~~~");
    parse_fails("v[::0]", "error: 1:5: the step of a slice must be positive, not 0 (tgx has no "
                          "reversed slices)\n    v[::0]\n        ^");
    parse_fails("v[1:5:-1]", "error: 1:7: the step of a slice must be positive, not -1 (tgx has "
                             "no reversed slices)\n    v[1:5:-1]\n          ^~");
    parse_fails("v[y]", "error: 1:3: an index must be a constant integer\n    v[y]\n      ^");
    parse_fails("v[0:y]", "error: 1:5: the stop of a slice must be a constant integer\n    v[0:y]\n"
                          "        ^");
    parse_fails("v[1 2]", "error: 1:5: expected ',' or ']' after an index, found number 2\n"
                          "    v[1 2]\n        ^");
    parse_fails("v[1:2:3:4]", "error: 1:8: a slice has at most three parts, start:stop:step\n"
                              "    v[1:2:3:4]\n           ^");
    parse_fails("T[0, 0, 0, 0, 0]", "error: 1:15: too many indices: a tensor has at most 4 axes\n"
                                    "    T[0, 0, 0, 0, 0]\n                  ^");
    parse_fails("v[0", "error: 1:4: expected ',' or ']' after an index, found end of input\n"
                       "    v[0\n       ^");
}

Test(syntax_errors, lists_and_functions)
{
    parse_fails("concat(v, 0)", "error: 1:8: the first argument of 'concat' must be a list of "
                                "tensors, like [a, b]\n    concat(v, 0)\n           ^");
    parse_fails("stack([], 0)", "error: 1:7: 'stack' needs at least one tensor in its list\n"
                                "    stack([], 0)\n          ^~");
    parse_fails("concat([v, v])", "error: 1:1: 'concat' takes 2 arguments: concat([x, ...], "
                                  "axis) (got 1)\n    concat([v, v])\n    ^~~~~~~~~~~~~~");
    parse_fails("concat([v v], 0)", "error: 1:11: expected ',' or ']' in the list of 'concat', "
                                    "found 'v'\n    concat([v v], 0)\n              ^");
    parse_fails("permute(T, 1)", "error: 1:12: the axes of 'permute' must be a list of integers, "
                                 "like [1, 0]\n    permute(T, 1)\n               ^");
    parse_fails("permute(T, [0, 1, 2, 3, 4])",
                "error: 1:12: the axes of 'permute' must be a flat list of at most 4 integers\n"
                "    permute(T, [0, 1, 2, 3, 4])\n               ^~~~~~~~~~~~~~~");
    parse_fails("reshape(v, 3)", "error: 1:12: the shape of 'reshape' must be a list of integers, "
                                 "like [2, 3]\n    reshape(v, 3)\n               ^");
    parse_fails("reshape(v, [[3]])", "error: 1:12: the shape of 'reshape' must be a flat list of "
                                     "at most 4 integers\n    reshape(v, [[3]])\n               ^~~~~");
    parse_fails("slice(v, 0, 1, 5, 0)", "error: 1:19: the step of 'slice' must be positive, "
                                        "not 0\n    slice(v, 0, 1, 5, 0)\n                      ^");
    parse_fails("select(v, 0, 0.5)", "error: 1:14: the index of 'select' must be an integer, "
                                     "not 0.5\n    select(v, 0, 0.5)\n                 ^~~");
    parse_fails("y = slise(v, 0, 1, 2)", "error: 1:5: unknown function 'slise' (did you mean "
                                         "'slice'?)\n    y = slise(v, 0, 1, 2)\n        ^~~~~");
    parse_fails("concatt([v], 0)", "error: 1:1: unknown function 'concatt' (did you mean "
                                   "'concat'?)\n    concatt([v], 0)\n    ^~~~~~~");
}

/* An evaluation error's whole message: the caret under the item at fault. */
static void eval_fails(const char *src, tg_status status, const char *want)
{
    inputs in;
    inputs_make(&in);
    tg_tape *tape = tg_tape_new();
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse(src, &prog), TG_OK, "%s: %s", src, tg_last_error());
    tg_expr_error err;
    cr_assert_null(tg_program_eval(prog, tape, TG_F64, in.env, N_IN, &err), "'%s' evaluated", src);
    cr_assert_eq(err.status, status, "'%s': %s", src, tg_status_name(err.status));
    if (want[0] == '~') /* only a part of the message: the op's own text */
        ts_assert_has(tg_last_error(), want + 1);
    else
        cr_assert_str_eq(tg_last_error(), want, "for '%s'", src);
    tg_program_free(prog);
    tg_tape_free(tape);
    inputs_free(&in);
}

Test(eval_errors, indices_out_of_range_and_too_many)
{
    eval_fails("A[3]", TG_ESHAPE,
               "error: 1:3: index 3 is out of range for axis 0 of size 3\n    A[3]\n      ^");
    eval_fails("y = A[0, -5]; y", TG_ESHAPE,
               "error: 1:10-11: index -5 is out of range for axis 1 of size 4\n"
               "    y = A[0, -5]; y\n             ^~");
    eval_fails("T[1][5]", TG_ESHAPE,
               "error: 1:6: index 5 is out of range for axis 0 of size 3\n    T[1][5]\n"
               "         ^");
    eval_fails("A[0, 1, 2]", TG_ESHAPE,
               "error: 1:9: too many indices: 3 for a value of 2 axes\n    A[0, 1, 2]\n"
               "            ^");
    eval_fails("A[:, :, :]", TG_ESHAPE,
               "error: 1:9: too many indices: 3 for a value of 2 axes\n    A[:, :, :]\n"
               "            ^");
    eval_fails("x[0:1]", TG_ESHAPE,
               "error: 1:3-5: too many indices: 1 for a value of 0 axes\n    x[0:1]\n"
               "      ^~~");
    eval_fails("permute(T, [1, 0])", TG_EINVAL,
               "error: 1:1-18: permute: the axes list has 2 entries, but [2,3,4] has 3 axes\n"
               "    permute(T, [1, 0])\n    ^~~~~~~~~~~~~~~~~~");
    eval_fails("concat([A, v], 0)", TG_ESHAPE, "~error: 1:1-17: concat: ");
    eval_fails("take(E, [5], 0)", TG_ESHAPE, "~error: 1:1-15: take: ");
}

/* ---- allocation failure ---------------------------------------------------------------------- */

/* Lists of tensors (nested, so runs of operands are pushed inside one another), brackets and
 * more than two operands: every refused allocation in parsing and evaluating is clean. */
static const char *const OOM_SRC = "c = concat([v[0:2], concat([v[6:], [10, 20]], 0), v], 0)\n"
                                   "s = stack([A[0], A[2, :], A[-1]], 1)\n"
                                   "sum(c) + sum(permute(T, [2, 0, 1])[1, :, 0:2]) + sum(s[1:])";

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
    tg_program *prog = NULL;
    cr_assert_eq(tg_program_parse(OOM_SRC, &prog), TG_OK, "%s", tg_last_error());
    inputs in;
    inputs_make(&in);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    ts_alloc_fail_at(n);
    tg_tensor *y = tg_program_eval(prog, tape, TG_F64, in.env, N_IN, NULL);
    ts_alloc_fail_at(0);
    if (y)
        cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    else
        ts_assert_enomem(tg_last_status(), "program_eval", n);
    tg_tape_free(tape);
    inputs_free(&in);
    tg_program_free(prog);
    return y == NULL;
}

Test(alloc, every_failure_is_clean)
{
    ts_oom_drive("program_parse", oom_parse, NULL,
                 (ts_oom_opts){.min_failing = 3, .max_runs = 10000, .no_fallback = true});
    ts_oom_drive("program_eval", oom_eval, NULL,
                 (ts_oom_opts){.min_failing = 1, .max_runs = 10000, .no_fallback = true});
}

/* ---- tapegrad grad --------------------------------------------------------------------------- */

#define RUN(...) tp_tapegrad((const char *const[]){__VA_ARGS__, NULL}, NULL)

Test(cli, sin_cos)
{
    /* python3: math.sin(1)*math.cos(2), math.cos(1)*math.cos(2), -math.sin(1)*math.sin(2) */
    tp_run r = RUN("grad", "--json", "sin(x)*cos(y)", "x=1", "y=2");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    ts_assert_close(tj_num_of(&v, "value"), -0.35017548837401463, 0, 1e-15, "value");
    ts_assert_close(tj_num_of(tj_get(&v, "grad"), "x"), -0.2248450953661529, 0, 1e-15, "d/dx");
    ts_assert_close(tj_num_of(tj_get(&v, "grad"), "y"), -0.7651474012342926, 0, 1e-15, "d/dy");
    tj_free(&v);
    tp_run_free(&r);
}

Test(cli, check_through_indexing_and_lists)
{
    const char *prog = "p = concat([v[0:3], v[5:]], 0)\n"
                       "q = stack([p, p^2], 0)\n"
                       "(sum(take(q, [1, 0], 0)[0] * p) + sum(permute(q, [1, 0])[:, 1]^2)\n"
                       "  + sum(slice(q, 1, 1, 5, 2) * select(q, 1, -1)))";
    tp_run r = RUN("grad", "--json", "--check", prog, "v=[1, 2, 3, 4, 5, 6, 7, 8]");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    const tj *check = tj_get(&v, "check");
    cr_assert(tj_get(check, "ok")->type == JSON_BOOL && tj_get(check, "ok")->num == 1, "%s", r.out);
    tj_free(&v);
    tp_run_free(&r);
    /* an index out of range: exit 1, the caret under it */
    r = RUN("grad", "v[1:3][2]", "v=[1, 2, 3]");
    tp_expect_status(&r, 1);
    cr_assert_str_eq(r.err, "error: 1:8: index 2 is out of range for axis 0 of size 2\n"
                            "    v[1:3][2]\n           ^\n");
    tp_run_free(&r);
}

Test(syntax_errors, where_takes_three)
{
    parse_fails("where(v > 0, v)", "error: 1:1: 'where' takes 3 arguments: where(c, a, b) (got "
                                   "2)\n    where(v > 0, v)\n    ^~~~~~~~~~~~~~~");
    eval_fails("where(v > 0, A, v)", TG_ESHAPE, "~error: 1:1-18: where: ");
}

Test(cli, check_through_indexing_lists_and_comparisons)
{
    const char *prog = "p = concat([v[0:3], v[5:]], 0)\n"
                       "q = stack([p, p^2], 0)\n"
                       "r = where(p > 2.5, q[1], -p) * take(q, [1, 0], 0)[0]\n"
                       "sum(r) + sum(permute(q, [1, 0])[:, 1]) + sum(pow(p, q[0] / 4))";
    tp_run r = RUN("grad", "--json", "--check", prog, "v=[1, 2, 3, 4, 5, 6, 7, 8]");
    tp_expect_status(&r, 0);
    tj v = tj_object(r.out);
    const tj *check = tj_get(&v, "check");
    cr_assert(tj_get(check, "ok")->type == JSON_BOOL && tj_get(check, "ok")->num == 1, "%s", r.out);
    tj_free(&v);
    tp_run_free(&r);
}

/* docs/tgx.md promises that names bound to constant expressions are constants: as literal
 * elements and as exponents. (1/3 by hand; d/dx x^(-1.5) = -1.5 x^(-2.5).) */
Test(values, names_bound_to_constant_expressions_are_constants)
{
    tg_tensor *x = ts_scalar(TG_F64, 2.0, true);
    tg_binding env[1] = {{"x", x}};
    static const struct {
        const char *src;
        double value, grad;
    } cases[] = {
        {"k = 1/3; sum([k, 1] * x)", (1.0 / 3 + 1) * 2, 1.0 / 3 + 1},
        {"n = 2*3; m = -n/4; x^m", 0.35355339059327373, -1.5 * 0.17677669529663687},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_program *prog = NULL;
        cr_assert_eq(tg_program_parse(cases[i].src, &prog), TG_OK, "%s: %s", cases[i].src,
                     tg_last_error());
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_program_eval(prog, tape, TG_F64, env, 1, NULL);
        cr_assert_not_null(y, "%s: %s", cases[i].src, tg_last_error());
        cr_expect_eq(tg_tensor_op(y) == TG_OP_POW_TENSOR, false, "%s: the exponent is a constant",
                     cases[i].src);
        ts_assert_close(tg_tensor_item(y), cases[i].value, 1e-15, 1e-15, "%s", cases[i].src);
        tg_tensor_zero_grad(x);
        cr_assert_eq(tg_backward(tape, y), TG_OK);
        ts_assert_close(tg_tensor_grad_get(x, 0), cases[i].grad, 1e-15, 1e-15, "d/dx %s",
                        cases[i].src);
        tg_tape_free(tape);
        tg_program_free(prog);
    }
    tg_tensor_free(x);
}

/* A finite number f32 cannot hold is refused in f32, as one f64 cannot hold is in f64: in a
 * bound value, a number literal and a tensor literal. */
Test(eval_errors, numbers_too_large_for_f32)
{
    tg_tensor *v = NULL;
    tg_expr_error err;
    cr_expect_eq(tg_expr_parse_value("[1, 1e300]", TG_F32, &err, &v), TG_EFORMAT);
    ts_assert_has(tg_last_error(), "number 1e+300 is too large for f32");
    cr_expect_null(v);
    cr_expect_eq(tg_expr_parse_value("[1, 1e300]", TG_F64, &err, &v), TG_OK);
    tg_tensor_free(v);
    cr_expect_eq(tg_expr_parse_value("3e38", TG_F32, &err, &v), TG_OK, "3e38 fits");
    tg_tensor_free(v);
    /* FLT_MAX's shortest decimal, 3.4028235e38, is a little above FLT_MAX, and so is anything
     * up to half a unit in its last place beyond it: f32 rounds them to FLT_MAX, not inf. */
    static const char *const fit[3] = {"3.4028235e38", "-3.40282356e38", "[340282356779733e24]"};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(tg_expr_parse_value(fit[i], TG_F32, &err, &v), TG_OK, "%s: %s", fit[i],
                     tg_last_error());
        cr_expect_eq(fabs(tg_tensor_get(v, 0)), (double)FLT_MAX, "%s", fit[i]);
        tg_tensor_free(v);
    }
    cr_expect_eq(tg_expr_parse_value("3.4028236e38", TG_F32, &err, &v), TG_EFORMAT);
    cr_expect_str_eq(err.message, "number 3.4028236e+38 is too large for f32 (the largest is "
                                  "3.40282347e+38)");
    tg_tensor *one = ts_scalar(TG_F32, 1.0, false);
    tg_binding one_env[1] = {{"x", one}};
    static const char *const fits[2] = {"x * 3.4028235e38", "sum(x * [3.4028235e38])"};
    for (int i = 0; i < 2; i++) {
        tg_program *prog = NULL;
        cr_assert_eq(tg_program_parse(fits[i], &prog), TG_OK);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_program_eval(prog, tape, TG_F32, one_env, 1, &err);
        cr_expect_not_null(y, "%s: %s", fits[i], tg_last_error());
        if (y)
            cr_expect_eq(tg_tensor_item(y), (double)FLT_MAX, "%s", fits[i]);
        tg_tape_free(tape);
        tg_program_free(prog);
    }
    /* A name bound to a number that is only folded is computed in f64, and is no f32 constant:
     * only a number the program reads as a tensor must fit f32. */
    static const struct {
        const char *src;
        double want; /* NAN: too large for f32 */
    } folded[3] = {
        {"n = 1e39; x^(n/1e38)", 1},
        {"n = 1e39; m = n / 1e10; x * m", (double)(float)1e29},
        {"n = 1e39; x * n", NAN},
    };
    for (int i = 0; i < 3; i++) {
        tg_program *prog = NULL;
        cr_assert_eq(tg_program_parse(folded[i].src, &prog), TG_OK);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_program_eval(prog, tape, TG_F32, one_env, 1, &err);
        if (isnan(folded[i].want)) {
            cr_expect_null(y, "%s", folded[i].src);
            cr_expect_str_eq(err.message, "1e+39 is too large for f32", "%s", folded[i].src);
        } else {
            cr_expect_not_null(y, "%s: %s", folded[i].src, tg_last_error());
            if (y)
                cr_expect_eq(tg_tensor_item(y), folded[i].want, "%s", folded[i].src);
        }
        tg_tape_free(tape);
        tg_program_free(prog);
    }
    tg_tensor_free(one);
    tg_tensor *x = ts_scalar(TG_F32, 1.0, true);
    tg_binding env[1] = {{"x", x}};
    static const char *const progs[2] = {"x * 1e300", "sum(x * [1, 1e39])"};
    for (int i = 0; i < 2; i++) {
        tg_program *prog = NULL;
        cr_assert_eq(tg_program_parse(progs[i], &prog), TG_OK);
        tg_tape *tape = tg_tape_new();
        cr_expect_null(tg_program_eval(prog, tape, TG_F32, env, 1, &err), "%s", progs[i]);
        ts_assert_has(tg_last_error(), "too large for f32");
        tg_tape_free(tape);
        tg_program_free(prog);
    }
    tg_tensor_free(x);
}
