/* gradgradcheck.h: what the parts of test_gradgradcheck (test_gradgradcheck.c and the sources
 * in tests/gradgradcheck) share: an op with its attributes (spec), the harness that runs one
 * second-order check (check_fn and its shorthands, in harness.c), and the case functions of
 * the CASES table. The inputs come from tests/support/inputs.h, as test_gradcheck's do. */
#ifndef TG_TEST_GRADGRADCHECK_H
#define TG_TEST_GRADGRADCHECK_H

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "../support/helpers.h"
#include "../support/inputs.h"

#define TOL 1e-6
#define EPS 1e-6

/* ---- one op applied with its attributes --------------------------------------------------- */

typedef struct spec {
    tg_op op;
    tg_attrs at;
    shp to;              /* reshape's target */
    bool fanout;         /* a binary op applied to (x, x) */
    shp idx;             /* take, index_add: the index tensor's shape */
    double idx_vals[24]; /* and its values (a constant of the function) */
} spec;

/* ---- running one check (harness.c) -------------------------------------------------------- */

/* checks run by the current case function (each_op expects at least one) */
extern int g_cases;

/* Gradgradchecks `fn` at inputs[0..n), which it frees, as it is on odd-numbered checks and
 * squared on even ones. On failure the message names `what`, the input shapes, the attributes
 * and the error. */
void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud, tg_tensor **inputs,
              size_t n, uint64_t seed);
/* check_fn of the op s (through tg_apply), at these inputs. */
void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed);
/* check_op at one input of shape x and kind k, or two of shapes a, b and kinds ka, kb. */
void check_unary(tg_rng *rng, spec s, shp x, kind k);
void check_binary(tg_rng *rng, spec s, shp a, kind ka, shp b, kind kb);
/* The gradients of f in xs by tg_grad_graph, on `tape`: asserted to succeed. */
void grad_graph(tg_tape *tape, tg_tensor *f, tg_tensor **xs, size_t n, tg_tensor **out);
/* The binary op at every pair of BCAST_PAIRS (kinds ka, kb), and f(x, x) at FAN_SHAPES (kfan). */
void check_binary_pairs(tg_op op, tg_rng *rng, kind ka, kind kb, kind kfan);
/* The elementwise unary op on inputs of kind k, at every shape of UNARY_SHAPES. */
void check_unary_shapes(tg_op op, tg_rng *rng, kind k);

/* ---- the case functions: how CASES (test_gradgradcheck.c) checks each op ------------------ */

typedef void (*case_fn)(tg_op op, tg_rng *rng);

/* cases_unary.c */
void case_const(tg_op op, tg_rng *rng);
void case_detach(tg_op op, tg_rng *rng);
void case_unary(tg_op op, tg_rng *rng);
void case_unary_positive(tg_op op, tg_rng *rng);
void case_unary_kink(tg_op op, tg_rng *rng);
void case_unary_tails(tg_op op, tg_rng *rng);
void case_math_tails(tg_op op, tg_rng *rng);
void case_tan(tg_op op, tg_rng *rng);
void case_unit_interval(tg_op op, tg_rng *rng);
void case_acosh(tg_op op, tg_rng *rng);
void case_log1p(tg_op op, tg_rng *rng);
void case_zero_gradient(tg_op op, tg_rng *rng);
void case_with_constant(tg_op op, tg_rng *rng);
void case_pow(tg_op op, tg_rng *rng);
void case_clamp(tg_op op, tg_rng *rng);
/* cases_binary.c */
void case_binary(tg_op op, tg_rng *rng);
void case_minmax(tg_op op, tg_rng *rng);
void case_atan2(tg_op op, tg_rng *rng);
void case_pow_tensor(tg_op op, tg_rng *rng);
void case_compare(tg_op op, tg_rng *rng);
void case_where(tg_op op, tg_rng *rng);
void case_prod(tg_op op, tg_rng *rng);
/* cases_shape.c */
void case_matmul(tg_op op, tg_rng *rng);
void case_transpose(tg_op op, tg_rng *rng);
void case_reshape(tg_op op, tg_rng *rng);
void case_reduce(tg_op op, tg_rng *rng);
void case_softmax(tg_op op, tg_rng *rng);
void case_slice(tg_op op, tg_rng *rng);
void case_select(tg_op op, tg_rng *rng);
void case_join(tg_op op, tg_rng *rng);
void case_concat(tg_op op, tg_rng *rng);
void case_take(tg_op op, tg_rng *rng);
void case_permute(tg_op op, tg_rng *rng);
/* cases_custom.c */
void case_custom(tg_op op, tg_rng *rng);

#endif
