/* ops.h: what the parts of test_ops (test_ops.c and the sources in tests/ops) share: the
 * fixture of suite ops (one tape per test, `tape`; leaves handed to it are freed at the end,
 * in fixture.c) and the helpers that make leaves and check values, gradients, shapes and
 * errors to the tolerance of each dtype. */
#ifndef TG_TEST_OPS_H
#define TG_TEST_OPS_H

#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

#include "../support/helpers.h"

/* The test's tape (suite ops: a new one for each test). */
extern tg_tape *tape;

/* f32 and f64, the dtypes most tests run in. */
extern const tg_dtype DTYPES[2];

/* Hands a leaf to the fixture, which frees it at the end of the test. */
tg_tensor *own(tg_tensor *t);
/* The tape rewound and the leaves handed over so far freed: a test's next case starts clean. */
void fresh_start(void);
/* ts_leaf, freed by the fixture. */
tg_tensor *own_leaf(tg_dtype dt, int rank, const size_t *shape, const double *v, bool grad);
/* 0..n-1 (times `step`, plus `base`) as a leaf. */
tg_tensor *iota(tg_dtype dt, int rank, const size_t *shape, double base, double step, bool grad);
/* The relative tolerance of results in dtype dt; below 0.1 it is absolute. */
double tol_of(tg_dtype dt);
const char *shape_str(char *buf, size_t size, const tg_tensor *t);

/* The values (grad == false) or gradient (grad == true) of t, element by element, to the
 * tolerance of its dtype. */
void expect_elems(const char *what, const tg_tensor *t, const double *want, size_t n, bool grad);
/* clang-format off */
#define EXPECT_VALUES(what, t, ...)                                                                \
    expect_elems(what, t, TS_VALS(__VA_ARGS__), TS_COUNT(__VA_ARGS__), false)
#define EXPECT_GRAD(what, t, ...)                                                                  \
    expect_elems(what, t, TS_VALS(__VA_ARGS__), TS_COUNT(__VA_ARGS__), true)

/* clang-format on */

void expect_shape(const char *what, const tg_tensor *t, int rank, const size_t *shape);
/* clang-format off */
#define EXPECT_SHAPE(what, t, rank, ...) expect_shape(what, t, rank, (const size_t[]){0, __VA_ARGS__} + 1)
/* clang-format on */

/* start + t[0] + ... + t[n-1], each term rounded to the dtype, in the order the library sums a
 * contiguous run of terms (src/ops/op_impl.h): blocks of 32768 whose sums are added in order,
 * each block as 16 running sums, the j-th over the block's terms j, j + 16, ..., added in order
 * of j, with `start` ahead of the first block's first running sum. */
float run_sum_f32(float start, const double *t, size_t n);
double run_sum_f64(double start, const double *t, size_t n);

/* Backward from y with dy = seed (values as doubles, y's shape and dtype; ones when seed is
 * NULL), or by tg_backward. */
void backward_seed(tg_tensor *y, const double *seed);
void backward(tg_tensor *y);

/* Expects the tape's first error: status, NULL result, and fragments of the message (which is
 * also this thread's last error). */
void expect_error(const char *what, const tg_tensor *y, tg_status st, const char *frag1,
                  const char *frag2);

#endif
