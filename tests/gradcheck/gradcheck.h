/* gradcheck.h: what the parts of test_gradcheck (test_gradcheck.c and the sources in
 * tests/gradcheck) share: an op with its attributes (spec), the harness that runs one
 * finite-difference check (check_fn and the shorthands check_op, check_unary, check_binary,
 * in harness.c), and the case functions of the CASES table. The inputs come from
 * tests/support/inputs.h, as test_gradgradcheck's do. */
#ifndef TG_TEST_GRADCHECK_H
#define TG_TEST_GRADCHECK_H

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "../support/helpers.h"
#include "../support/inputs.h"

#define TOL 1e-7
#define EPS 1e-6
#define MAX_IN 2

/* ---- one op applied with its attributes --------------------------------------------------- */

typedef struct spec {
    tg_op op;
    int axis;
    bool keepdim;
    double c;    /* scale, add_scalar, pow; clamp's lo */
    double hi;   /* clamp's hi */
    shp to;      /* reshape target */
    bool fanout; /* binary op applied to (x, x) */
} spec;

/* checks run by the current case function (run_op expects at least one) */
extern int g_cases;

/* Gradchecks `fn` at inputs[0..n), which it frees. On failure the message names `what` (the
 * op or function), the input shapes, the attributes and the error. */
void check_fn(const char *what, const char *attrs, tg_check_fn fn, void *ud, tg_tensor **inputs,
              size_t n, uint64_t seed);
/* check_fn of the op s (through tg_apply), at these inputs. */
void check_op(const spec *s, tg_tensor **inputs, size_t n, uint64_t seed);
/* check_op at one input of shape x and kind k, or two of shapes a, b and kinds ka, kb. */
void check_unary(tg_rng *rng, spec s, shp x, kind k);
void check_binary(tg_rng *rng, spec s, shp a, kind ka, shp b, kind kb);

/* ---- the case functions: how CASES (test_gradcheck.c) checks each op --------------------- */

typedef void (*case_fn)(tg_op op, tg_rng *rng);

/* cases_unary.c: constants, detach and the elementwise unary ops */
void case_const(tg_op op, tg_rng *rng);
void case_detach(tg_op op, tg_rng *rng);
void case_unary(tg_op op, tg_rng *rng);
void case_unary_positive(tg_op op, tg_rng *rng);
void case_unary_kink(tg_op op, tg_rng *rng);
void case_unary_tails(tg_op op, tg_rng *rng);
void case_tan(tg_op op, tg_rng *rng);
void case_unit_interval(tg_op op, tg_rng *rng);
void case_acosh(tg_op op, tg_rng *rng);
void case_log1p(tg_op op, tg_rng *rng);
void case_math_tails(tg_op op, tg_rng *rng);
void case_zero_gradient(tg_op op, tg_rng *rng);
void case_with_constant(tg_op op, tg_rng *rng);
void case_pow(tg_op op, tg_rng *rng);
void case_clamp(tg_op op, tg_rng *rng);
/* cases_binary.c: the binary ops, comparisons, where and prod */
void case_binary(tg_op op, tg_rng *rng);
void case_minmax(tg_op op, tg_rng *rng);
void case_atan2(tg_op op, tg_rng *rng);
void case_pow_tensor(tg_op op, tg_rng *rng);
void case_compare(tg_op op, tg_rng *rng);
void case_where(tg_op op, tg_rng *rng);
void case_prod(tg_op op, tg_rng *rng);
/* cases_shape.c: matmul, transpose, reshape, reductions, softmax, indexing and joins */
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
/* cases_custom.c: a user-defined op */
void case_custom(tg_op op, tg_rng *rng);

#endif
