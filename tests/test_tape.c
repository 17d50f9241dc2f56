/* test_tape.c: recording (eager values, node and leaf order), backward and tg_grad, no-grad
 * scopes and detach, staleness across resets, sticky errors, a 10^6-node chain, the
 * fingerprint, anomaly mode, and a training loop that must not touch the heap after its
 * first step. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/alloc.h"
#include "support/helpers.h"
#include "core/detmath.h" /* tg__tanh */

/* ---- recording ------------------------------------------------------------------------------ */

Test(record, eager_values_and_node_order)
{
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    cr_assert_eq(tg_tape_size(tape), 0);
    cr_assert_eq(tg_tape_status(tape), TG_OK);
    cr_assert_str_eq(tg_tape_error(tape), "no error");
    const double xv[3] = {1, 2, 3}, wv[3] = {0.5, -1, 2};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, false), *w = ts_vec(TG_F64, 3, wv, true);

    tg_tensor *m = tg_mul(tape, x, w);
    cr_assert_not_null(m);
    /* Values are there right away, before anything else is recorded. */
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_get(m, i), xv[i] * wv[i]);
    tg_tensor *e = tg_exp(tape, m);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_get(e, i), exp(xv[i] * wv[i]));
    tg_tensor *s = tg_sum(tape, e, 0, false);
    cr_assert_eq(tg_tensor_rank(s), 0);
    ts_assert_close(tg_tensor_item(s), exp(0.5) + exp(-2) + exp(6), 1e-15, 1e-15, "sum");
    tg_tensor *k = tg_scalar(tape, TG_F64, 3.0);
    tg_tensor *y = tg_mul(tape, s, k);

    tg_tensor *nodes[5] = {m, e, s, k, y};
    const tg_op ops[5] = {TG_OP_MUL, TG_OP_EXP, TG_OP_SUM, TG_OP_CONST, TG_OP_MUL};
    cr_assert_eq(tg_tape_size(tape), 5);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(tg_tape_node(tape, i), nodes[i], "node %zu", i);
        cr_assert_eq(tg_tensor_index(nodes[i]), i);
        cr_assert_eq(tg_tensor_op(nodes[i]), (int)ops[i]);
        cr_assert_not(tg_tensor_is_leaf(nodes[i]));
    }
    cr_assert_null(tg_tape_node(tape, 5));
    cr_assert_null(tg_tape_node(tape, SIZE_MAX));
    cr_assert_eq(tg_tensor_input(m, 0), x);
    cr_assert_eq(tg_tensor_input(m, 1), w);
    cr_assert_eq(tg_tensor_input(e, 0), m);
    cr_assert_null(tg_tensor_input(e, 1));
    cr_assert_null(tg_tensor_input(k, 0), "a constant has no inputs");
    cr_assert_eq(tg_tensor_input(y, 0), s);
    cr_assert_eq(tg_tensor_input(y, 1), k);
    cr_assert_null(tg_tensor_input(y, 2));
    cr_assert_null(tg_tensor_input(y, -1));
    /* Leaves are not nodes. */
    cr_assert_eq(tg_tensor_op(x), -1);
    cr_assert_eq(tg_tensor_index(x), SIZE_MAX);
    cr_assert_null(tg_tensor_input(x, 0));
    cr_assert_eq(tg_tensor_op(NULL), -1);
    cr_assert_eq(tg_tensor_index(NULL), SIZE_MAX);
    /* requires_grad flows from w; the constant needs none. */
    cr_assert(tg_tensor_requires_grad(m) && tg_tensor_requires_grad(y));
    cr_assert_not(tg_tensor_requires_grad(k));
    cr_assert_eq(tg_op_arity(TG_OP_MUL), 2);
    cr_assert_eq(tg_op_arity(TG_OP_EXP), 1);
    cr_assert_eq(tg_op_arity(TG_OP_CONST), 0);
    cr_assert_eq(tg_op_arity(TG_OP_COUNT), -1);
    cr_assert_str_eq(tg_op_name(TG_OP_MATMUL), "matmul");
    cr_assert_str_eq(tg_op_name(TG_OP_COUNT), "?");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
}

Test(record, f32_values)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 2};
    const double av[4] = {1, 2, 3, 4}, bv[4] = {0.5, 0.25, -1, 2};
    tg_tensor *a = ts_leaf(TG_F32, 2, shape, av, false);
    tg_tensor *b = ts_leaf(TG_F32, 2, shape, bv, false);
    tg_tensor *c = tg_matmul(tape, a, b);
    cr_assert_eq(tg_tensor_dtype(c), TG_F32);
    const float *cd = tg_tensor_data(c);
    cr_assert_eq(cd[0], 1 * 0.5f + 2 * -1.0f);
    cr_assert_eq(cd[1], 1 * 0.25f + 2 * 2.0f);
    cr_assert_eq(cd[2], 3 * 0.5f + 4 * -1.0f);
    cr_assert_eq(cd[3], 3 * 0.25f + 4 * 2.0f);
    /* Mixing dtypes is an error. */
    tg_tensor *d = tg_tensor_ones(TG_F64, 2, shape);
    cr_assert_null(tg_add(tape, a, d));
    cr_assert_eq(tg_tape_status(tape), TG_EDTYPE);
    ts_assert_has(tg_tape_error(tape), "f32");
    ts_assert_has(tg_tape_error(tape), "f64");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(d);
}

Test(record, leaf_registration_order)
{
    tg_tape *tape = tg_tape_new();
    const double v[2] = {1, 2};
    tg_tensor *a = ts_vec(TG_F64, 2, v, true), *b = ts_vec(TG_F64, 2, v, false),
              *c = ts_vec(TG_F64, 2, v, true);
    cr_assert_eq(tg_tape_leaf_count(tape), 0);
    tg_tensor *t1 = tg_add(tape, b, a);
    tg_tensor *t2 = tg_mul(tape, t1, a);
    tg_tensor *t3 = tg_sub(tape, c, b);
    tg_tensor *t4 = tg_add(tape, t2, t3);
    cr_assert_not_null(t4);
    cr_assert_eq(tg_tape_leaf_count(tape), 3, "each leaf once, in order of first use");
    cr_assert_eq(tg_tape_leaf(tape, 0), b);
    cr_assert_eq(tg_tape_leaf(tape, 1), a);
    cr_assert_eq(tg_tape_leaf(tape, 2), c);
    cr_assert_null(tg_tape_leaf(tape, 3));
    /* Constants are nodes, not leaves. */
    tg_scalar(tape, TG_F64, 1.0);
    cr_assert_eq(tg_tape_leaf_count(tape), 3);

    /* A reset forgets them; the next recording registers afresh. */
    tg_tape_reset(tape);
    cr_assert_eq(tg_tape_size(tape), 0);
    cr_assert_eq(tg_tape_leaf_count(tape), 0);
    cr_assert_not_null(tg_neg(tape, c));
    cr_assert_not_null(tg_neg(tape, a));
    cr_assert_eq(tg_tape_leaf_count(tape), 2);
    cr_assert_eq(tg_tape_leaf(tape, 0), c);
    cr_assert_eq(tg_tape_leaf(tape, 1), a);

    /* A leaf alternating between two tapes is registered once on each. */
    tg_tape *other = tg_tape_new();
    cr_assert_not_null(tg_neg(other, a));
    cr_assert_not_null(tg_neg(tape, a));
    cr_assert_not_null(tg_neg(other, b));
    cr_assert_not_null(tg_neg(other, a));
    cr_assert_eq(tg_tape_leaf_count(tape), 2);
    cr_assert_eq(tg_tape_leaf_count(other), 2);
    cr_assert_eq(tg_tape_leaf(other, 0), a);
    cr_assert_eq(tg_tape_leaf(other, 1), b);
    tg_tape_free(other);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
}

Test(record, leaf_shared_by_tapes_gets_both_gradients)
{
    const double v[2] = {1.5, -2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, true);
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    tg_tensor *y1 = tg_sum(t1, tg_square(t1, x), TG_ALL_AXES, false);     /* 2x */
    tg_tensor *y2 = tg_sum(t2, tg_scale(t2, x, 3.0), TG_ALL_AXES, false); /* 3 */
    cr_assert_eq(tg_backward(t2, y2), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_backward(t1, y1), TG_OK, "%s", tg_last_error());
    const double want[2] = {2 * v[0] + 3, 2 * v[1] + 3};
    ts_assert_grad(x, want, 2, 1e-12, 1e-12, "x");
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(x);
}

Test(record, tape_freed_and_replaced_registers_leaves_afresh)
{
    /* The new tape may well get the old one's address; a leaf's cached registration must not
     * be mistaken for one on the new tape. */
    const double v[1] = {2};
    tg_tensor *p = ts_vec(TG_F64, 1, v, true), *q = ts_vec(TG_F64, 1, v, true);
    tg_tape *a = tg_tape_new();
    cr_assert_not_null(tg_add(a, p, q)); /* q in slot 1 */
    tg_tape_free(a);
    tg_tape *b = tg_tape_new();
    tg_tensor *y = tg_sum(b, tg_square(b, q), TG_ALL_AXES, false);
    cr_assert_not_null(y);
    cr_assert_eq(tg_tape_leaf_count(b), 1);
    cr_assert_eq(tg_tape_leaf(b, 0), q);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(b, y, &q, 1, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_item(g), 4.0);
    tg_tensor_free(g);
    tg_tape_free(b);
    tg_tensor_free(p);
    tg_tensor_free(q);
}

Test(record, leaf_freed_before_its_tape)
{
    /* Leaves belong to the caller, who may free a data batch as soon as a step is done, before
     * the tape goes (ASan reports any later touch of the freed leaf). */
    const double v[3] = {1, 2, 3};
    tg_tensor *w = ts_vec(TG_F64, 3, v, true);
    tg_tape *tape = tg_tape_new();
    for (int step = 0; step < 3; step++) {
        double *mem = malloc(3 * sizeof *mem);
        cr_assert_not_null(mem);
        for (int i = 0; i < 3; i++)
            mem[i] = step + i;
        const size_t n = 3;
        tg_tensor *batch = tg_tensor_wrap(TG_F64, 1, &n, mem);
        tg_tape_reset(tape);
        tg_tensor *y = tg_sum(tape, tg_mul(tape, batch, w), TG_ALL_AXES, false);
        cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
        tg_tensor_free(batch);
        free(mem);
    }
    tg_tape_free(tape);
    /* Gradients summed over the three steps: sum_s (s + i). */
    const double want[3] = {3, 6, 9};
    ts_assert_grad(w, want, 3, 1e-12, 1e-12, "w");
    tg_tensor_free(w);
}

Test(record, null_tape_and_null_inputs)
{
    const double v[1] = {1};
    tg_tensor *x = ts_vec(TG_F64, 1, v, false);
    tg_clear_error();
    cr_assert_null(tg_exp(NULL, x));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tape is NULL");
    cr_assert_null(tg_scalar(NULL, TG_F64, 1));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    cr_assert_eq(tg_tape_size(NULL), 0);
    cr_assert_null(tg_tape_node(NULL, 0));
    cr_assert_eq(tg_tape_status(NULL), TG_EINVAL);
    tg_tape_reset(NULL);
    tg_tape_free(NULL);

    tg_tape *tape = tg_tape_new();
    cr_assert_null(tg_add(tape, x, NULL));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "add: input 1 is NULL");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- backward ------------------------------------------------------------------------------- */

Test(backward, scalar_output)
{
    tg_tape *tape = tg_tape_new();
    const double xv[3] = {0.5, -1.5, 2.0};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true);
    /* y = sum(x^2 * sin-free stuff): sum(x*x) + 3 * sum(x) */
    tg_tensor *y = tg_add(tape, tg_sum(tape, tg_mul(tape, x, x), TG_ALL_AXES, false),
                          tg_scale(tape, tg_sum(tape, x, 0, false), 3.0));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_null(tg_tensor_grad_data(x), "no grad before backward");
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    const double want[3] = {2 * xv[0] + 3, 2 * xv[1] + 3, 2 * xv[2] + 3};
    ts_assert_grad(x, want, 3, 1e-12, 1e-12, "x");
    /* dy/dy = 1 is readable on the output. */
    cr_assert_eq(tg_tensor_grad_get(y, 0), 1.0);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(backward, single_element_non_0d_output)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {1, 1};
    const double v[1] = {3};
    tg_tensor *x = ts_leaf(TG_F64, 2, shape, v, true);
    tg_tensor *y = tg_square(tape, x);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_grad_get(x, 0), 6.0);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(backward, seed_for_non_scalar_output)
{
    const size_t shape[2] = {2, 3};
    const double xv[6] = {1, 2, 3, -1, -2, 0.5}, sv[6] = {1, 0, -2, 0.5, 3, 1};
    for (int seed_on_tape = 0; seed_on_tape < 2; seed_on_tape++) {
        tg_tape *tape = tg_tape_new();
        tg_tensor *x = ts_leaf(TG_F64, 2, shape, xv, true);
        tg_tensor *y = tg_mul(tape, tg_mul(tape, x, x), x); /* x^3 */
        tg_tensor *s_leaf = NULL, *seed;
        if (seed_on_tape) {
            seed = tg_constant(tape, TG_F64, 2, shape, sv);
        } else {
            s_leaf = ts_leaf(TG_F64, 2, shape, sv, false);
            seed = s_leaf;
        }
        cr_assert_eq(tg_backward_seed(tape, y, seed), TG_OK, "%s", tg_last_error());
        /* The gradient of sum(seed * x^3): 3 x^2 seed. */
        double want[6];
        for (int i = 0; i < 6; i++)
            want[i] = 3 * xv[i] * xv[i] * sv[i];
        ts_assert_grad(x, want, 6, 1e-12, 1e-12, "x");
        /* The seed is dy. */
        for (size_t i = 0; i < 6; i++)
            cr_assert_eq(tg_tensor_grad_get(y, i), sv[i]);
        tg_tape_free(tape);
        tg_tensor_free(x);
        tg_tensor_free(s_leaf);
    }
}

Test(backward, seed_null_means_backward)
{
    tg_tape *tape = tg_tape_new();
    const double v[1] = {2};
    tg_tensor *x = ts_vec(TG_F64, 1, v, true);
    tg_tensor *y = tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward_seed(tape, y, NULL), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 4.0);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A seed adds into the output's gradient one addition per element, at lengths around the
 * vector widths: a leaf output's gradient after two seeds is (0 + s1) + s2 element by element,
 * in the dtype (so -0 and -0 seeds leave +0), and a seed that is the gradient's own memory
 * doubles it. */
Test(backward, seeds_add_element_by_element)
{
    const size_t lengths[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 1001};
    for (int d = 0; d < 2; d++) {
        const tg_dtype dt = d ? TG_F64 : TG_F32;
        for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
            const size_t n = lengths[l];
            double s1[1001], s2[1001], want[1001];
            for (size_t i = 0; i < n; i++) {
                s1[i] = i % 5 == 2 ? -0.0 : 0.1 * (double)i - 3.3;
                s2[i] = i % 5 == 2 ? -0.0 : 1.0 / (double)(i + 3);
                want[i] =
                    d ? (0.0 + s1[i]) + s2[i] : (double)((0.0f + (float)s1[i]) + (float)s2[i]);
            }
            tg_tensor *x = ts_leaf(dt, 1, &n, s1, true);
            tg_tensor *t1 = ts_leaf(dt, 1, &n, s1, false), *t2 = ts_leaf(dt, 1, &n, s2, false);
            tg_tape *tape = tg_tape_new();
            cr_assert_eq(tg_backward_seed(tape, x, t1), TG_OK, "%s", tg_last_error());
            cr_assert_eq(tg_backward_seed(tape, x, t2), TG_OK, "%s", tg_last_error());
            for (size_t i = 0; i < n; i++) {
                const double g = tg_tensor_grad_get(x, i);
                cr_assert(g == want[i] && signbit(g) == signbit(want[i]),
                          "%s n=%zu [%zu]: %.17g, expected %.17g", tg_dtype_name(dt), n, i, g,
                          want[i]);
            }
            tg_tensor *own = tg_tensor_wrap(dt, 1, &n, tg_tensor_grad_data(x));
            cr_assert_eq(tg_backward_seed(tape, x, own), TG_OK, "%s", tg_last_error());
            for (size_t i = 0; i < n; i++)
                cr_assert_eq(tg_tensor_grad_get(x, i), want[i] + want[i], "%s n=%zu [%zu] doubled",
                             tg_dtype_name(dt), n, i);
            tg_tensor_free(own);
            tg_tape_free(tape);
            tg_tensor_free(x);
            tg_tensor_free(t1);
            tg_tensor_free(t2);
        }
    }
}

/* An allocator over one static block whose frees are no-ops, so that a test knows what memory
 * lies before a gradient. */
static _Alignas(64) unsigned char bump_block[1 << 16];
static size_t bump_used;

static void *bump_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0)
        return NULL;
    const size_t at = (bump_used + 63) / 64 * 64;
    if (at + nsize > sizeof bump_block)
        return NULL;
    bump_used = at + nsize;
    if (ptr)
        memcpy(bump_block + at, ptr, osize < nsize ? osize : nsize);
    return bump_block + at;
}

/* A seed may wrap any memory, the gradient it adds into too: one that starts 3 elements before
 * that gradient reads, from its fourth element on, sums already made. The result is the in-order
 * loop's, d[i] += d[i - 3], not what adding blocks of seed elements read before any was written
 * (a vectorized loop) would give. */
Test(backward, seed_overlapping_the_gradient_adds_in_order)
{
    tg_set_allocator(bump_alloc, NULL);
    for (int d = 0; d < 2; d++) {
        const tg_dtype dt = d ? TG_F64 : TG_F32;
        const size_t n = 40, es = tg_dtype_size(dt);
        double v[40];
        for (size_t i = 0; i < n; i++)
            v[i] = (double)i + 0.5;
        tg_tensor *x = ts_leaf(dt, 1, &n, v, true);
        tg_tape *tape = tg_tape_new();
        cr_assert_eq(tg_backward_seed(tape, x, x), TG_OK, "%s", tg_last_error()); /* grad = v */
        unsigned char *g = tg_tensor_grad_data(x);
        cr_assert((size_t)(g - bump_block) >= 3 * es, "memory before the gradient");
        double want[43];
        for (size_t i = 0; i < n + 3; i++) /* the 3 elements before it, then the gradient */
            want[i] = d ? ((double *)(void *)(g - 3 * es))[i] : ((float *)(void *)(g - 3 * es))[i];
        for (size_t i = 3; i < n + 3; i++)
            want[i] = d ? want[i] + want[i - 3] : (double)((float)want[i] + (float)want[i - 3]);
        tg_tensor *seed = tg_tensor_wrap(dt, 1, &n, g - 3 * es);
        cr_assert_eq(tg_backward_seed(tape, x, seed), TG_OK, "%s", tg_last_error());
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(tg_tensor_grad_get(x, i), want[i + 3], "%s [%zu]", tg_dtype_name(dt), i);
        tg_tensor_free(seed);
        tg_tape_free(tape);
        tg_tensor_free(x);
    }
    tg_set_allocator(NULL, NULL);
}

Test(backward, non_scalar_without_seed_is_an_error)
{
    tg_tape *tape = tg_tape_new();
    const double v[3] = {1, 2, 3};
    tg_tensor *x = ts_vec(TG_F64, 3, v, true);
    tg_tensor *y = tg_exp(tape, x);
    cr_assert_eq(tg_backward(tape, y), TG_EINVAL);
    ts_assert_has(tg_last_error(), "[3]");
    ts_assert_has(tg_last_error(), "single element");
    ts_assert_has(tg_last_error(), "tg_backward_seed");
    cr_assert_null(tg_tensor_grad_data(x), "nothing happened");
    cr_assert_eq(tg_tape_status(tape), TG_OK, "a bad backward call does not poison the tape");
    tg_tensor *g = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, g), TG_OK, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(backward, bad_seeds)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 3}, tshape[2] = {3, 2}, flat[1] = {6};
    const double v[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *x = ts_leaf(TG_F64, 2, shape, v, true);
    tg_tensor *y = tg_exp(tape, x);

    tg_tensor *s_t = ts_leaf(TG_F64, 2, tshape, v, false);
    cr_assert_eq(tg_backward_seed(tape, y, s_t), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "[3,2]");
    ts_assert_has(tg_last_error(), "[2,3]");
    tg_tensor *s_flat = ts_leaf(TG_F64, 1, flat, v, false);
    cr_assert_eq(tg_backward_seed(tape, y, s_flat), TG_ESHAPE, "same numel, other rank");
    tg_tensor *s_32 = ts_leaf(TG_F32, 2, shape, v, false);
    cr_assert_eq(tg_backward_seed(tape, y, s_32), TG_EDTYPE);
    ts_assert_has(tg_last_error(), "f32");
    cr_assert_null(tg_tensor_grad_data(x));
    cr_assert_eq(tg_tape_status(tape), TG_OK);

    /* A stale seed. */
    tg_tensor *s_tape = tg_constant(tape, TG_F64, 2, shape, v);
    cr_assert_eq(tg_backward_seed(tape, y, s_tape), TG_OK);
    tg_tape_reset(tape);
    tg_tensor *y2 = tg_exp(tape, x);
    cr_assert_eq(tg_backward_seed(tape, y2, s_tape), TG_ESTALE);
    ts_assert_has(tg_last_error(), "reset");
    /* A seed of another tape: refused, as tg_grad_graph and tg_vjp refuse it. */
    tg_tape *other = tg_tape_new();
    tg_tensor *s_other = tg_constant(other, TG_F64, 2, shape, v);
    cr_assert_eq(tg_backward_seed(tape, y2, s_other), TG_EINVAL);
    ts_assert_has(tg_last_error(), "backward: the seed (node 0) belongs to another tape");
    tg_tape_free(other);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(s_t);
    tg_tensor_free(s_flat);
    tg_tensor_free(s_32);
}

Test(backward, twice_accumulates_twice)
{
    tg_tape *tape = tg_tape_new();
    const double xv[2] = {1.5, -0.5}, wv[2] = {2, 3};
    tg_tensor *x = ts_vec(TG_F64, 2, xv, true), *w = ts_vec(TG_F64, 2, wv, true);
    tg_tensor *h = tg_mul(tape, x, w);
    tg_tensor *y = tg_sum(tape, tg_tanh(tape, h), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    double gx[2], gw[2], gh[2];
    for (size_t i = 0; i < 2; i++) {
        double t = tanh(xv[i] * wv[i]);
        gh[i] = 1 - t * t;
        gx[i] = gh[i] * wv[i];
        gw[i] = gh[i] * xv[i];
    }
    ts_assert_grad(x, gx, 2, 1e-12, 1e-12, "x");
    ts_assert_grad(w, gw, 2, 1e-12, 1e-12, "w");
    void *gbuf = tg_tensor_grad_data(x);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    for (size_t i = 0; i < 2; i++) {
        ts_assert_close(tg_tensor_grad_get(x, i), 2 * gx[i], 1e-12, 1e-12, "x twice");
        ts_assert_close(tg_tensor_grad_get(w, i), 2 * gw[i], 1e-12, 1e-12, "w twice");
        /* Intermediate gradients are replaced, not accumulated. */
        ts_assert_close(tg_tensor_grad_get(h, i), gh[i], 1e-12, 1e-12, "h");
    }
    cr_assert_eq(tg_tensor_grad_data(x), gbuf, "the leaf keeps its buffer");
    /* zero_grad, then once more: back to one. */
    cr_assert_eq(tg_tensor_zero_grad(x), TG_OK);
    cr_assert_eq(tg_tensor_zero_grad(w), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 0.0);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    ts_assert_grad(x, gx, 2, 1e-12, 1e-12, "x after zero_grad");
    ts_assert_grad(w, gw, 2, 1e-12, 1e-12, "w after zero_grad");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
}

Test(backward, fan_out_sums)
{
    tg_tape *tape = tg_tape_new();
    const double xv[3] = {0.5, -2, 3};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true);
    /* y = sum(x*x + x*x*x + exp(x) * x): x used seven times, m = x*x twice. */
    tg_tensor *m = tg_mul(tape, x, x);
    tg_tensor *c = tg_mul(tape, m, x);
    tg_tensor *e = tg_mul(tape, tg_exp(tape, x), x);
    tg_tensor *y = tg_sum(tape, tg_add(tape, tg_add(tape, m, c), e), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    double want[3], wm[3];
    for (int i = 0; i < 3; i++) {
        double v = xv[i];
        want[i] = 2 * v + 3 * v * v + exp(v) * (1 + v);
        wm[i] = 1 + v; /* dy/dm: directly 1, through c: x */
    }
    ts_assert_grad(x, want, 3, 1e-12, 1e-12, "x");
    ts_assert_grad(m, wm, 3, 1e-12, 1e-12, "m");
    /* The same node twice as both inputs of one op. */
    tg_tape_reset(tape);
    tg_tensor_zero_grad(x);
    tg_tensor *s = tg_sum(tape, tg_add(tape, x, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, s), TG_OK);
    const double two[3] = {2, 2, 2};
    ts_assert_grad(x, two, 3, 1e-12, 1e-12, "x + x");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(backward, broadcast_gradients_sum_over_broadcast_axes)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 3};
    const double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30};
    tg_tensor *a = ts_leaf(TG_F64, 2, shape, av, true);
    tg_tensor *b = ts_vec(TG_F64, 3, bv, true);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, a, b), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    const double ga[6] = {10, 20, 30, 10, 20, 30}, gb[3] = {5, 7, 9};
    ts_assert_grad(a, ga, 6, 1e-12, 1e-12, "a");
    ts_assert_grad(b, gb, 3, 1e-12, 1e-12, "b");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(backward, output_without_grad_is_an_error)
{
    tg_tape *tape = tg_tape_new();
    const double v[2] = {1, 2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, false);
    tg_tensor *y = tg_sum(tape, tg_exp(tape, x), TG_ALL_AXES, false);
    cr_assert_not_null(y);
    cr_assert_eq(tg_backward(tape, y), TG_EINVAL);
    ts_assert_has(tg_last_error(), "does not depend");
    cr_assert_null(tg_tensor_grad_data(x));
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_EINVAL);
    cr_assert_null(g);
    /* A leaf output without grad, too. */
    tg_tensor *s = tg_tensor_scalar(TG_F64, 1);
    cr_assert_eq(tg_backward(tape, s), TG_EINVAL);
    cr_assert_eq(tg_backward(NULL, y), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tape is NULL");
    cr_assert_eq(tg_backward(tape, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "NULL");
    cr_assert_eq(tg_tape_status(tape), TG_OK);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(s);
}

Test(backward, leaf_output)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_scalar(TG_F64, 5, true);
    cr_assert_eq(tg_backward(tape, x), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_grad_get(x, 0), 1.0);
    cr_assert_eq(tg_backward(tape, x), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 2.0, "accumulates");
    /* With a seed, and through tg_grad (which leaves the buffer alone). */
    tg_tensor *seed = tg_tensor_scalar(TG_F64, 0.25);
    cr_assert_eq(tg_backward_seed(tape, x, seed), TG_OK);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 2.25);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, x, &x, 1, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_item(g), 1.0);
    cr_assert_eq(tg_tensor_grad_get(x, 0), 2.25);
    /* A non-scalar leaf needs a seed. */
    const size_t n = 2;
    const double v[2] = {1, 2};
    tg_tensor *xv = ts_leaf(TG_F64, 1, &n, v, true);
    cr_assert_eq(tg_backward(tape, xv), TG_EINVAL);
    tg_tensor *sv = ts_leaf(TG_F64, 1, &n, v, false);
    cr_assert_eq(tg_backward_seed(tape, xv, sv), TG_OK);
    ts_assert_grad(xv, v, 2, 1e-12, 1e-12, "xv");
    tg_tensor_free(g);
    tg_tensor_free(seed);
    tg_tensor_free(xv);
    tg_tensor_free(sv);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A leaf output the recording never used stays out of it: a backward (or tg_grad) from it
 * changes neither the recording's leaves nor its fingerprint, so the leaf may be freed and the
 * recording replayed and differentiated after (a leaf it had kept would be read freed). */
Test(backward, leaf_output_leaves_the_recording_alone)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_scalar(TG_F64, 2, true);
    tg_tensor *y = tg_exp(tape, x);
    cr_assert_not_null(y);
    const uint64_t fingerprint = tg_tape_fingerprint(tape);
    tg_tensor *w = ts_scalar(TG_F64, 5, true);
    tg_tensor *seed = tg_tensor_scalar(TG_F64, 0.5);
    cr_assert_eq(tg_backward(tape, w), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_backward_seed(tape, w, seed), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_grad_get(w, 0), 1.5, "1, then the seed");
    tg_tensor *xs[3] = {w, x, y}, *g[3] = {NULL, NULL, NULL};
    cr_assert_eq(tg_grad(tape, w, xs, 3, g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_item(g[0]), 1.0, "dw/dw");
    cr_assert_eq(tg_tensor_item(g[1]), 0.0, "dw/dx");
    cr_assert_eq(tg_tensor_item(g[2]), 0.0, "dw/dy");
    cr_assert_eq(tg_tensor_grad_get(w, 0), 1.5, "tg_grad leaves w's buffer alone");
    cr_assert_eq(tg_tape_leaf_count(tape), 1, "x only");
    cr_assert_eq(tg_tape_fingerprint(tape), fingerprint);
    for (int i = 0; i < 3; i++)
        tg_tensor_free(g[i]);
    tg_tensor_free(w);
    tg_tensor_free(seed);
    /* The recording is x's alone: replayed at x = 1, y = e and dy/dx = e. */
    cr_assert_eq(tg_tensor_set(x, 0, 1), TG_OK);
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    cr_assert_float_eq(tg_tensor_grad_get(x, 0), exp(1.0), 1e-14);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(backward, output_from_another_tape)
{
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    const double v[1] = {1};
    tg_tensor *x = ts_vec(TG_F64, 1, v, true);
    tg_tensor *y = tg_sum(t1, tg_exp(t1, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(t2, y), TG_EINVAL);
    ts_assert_has(tg_last_error(), "another tape");
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(t2, y, &x, 1, &g), TG_EINVAL);
    cr_assert_null(tg_tensor_grad_data(x));
    /* tg_grad rejects xs from another tape, too. */
    tg_tensor *e2 = tg_exp(t2, x);
    cr_assert_eq(tg_grad(t1, y, &e2, 1, &g), TG_EINVAL);
    ts_assert_has(tg_last_error(), "another tape");
    cr_assert_null(g);
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(x);
}

/* ---- tg_grad -------------------------------------------------------------------------------- */

Test(grad, leaves_and_intermediates_without_touching_leaf_grads)
{
    tg_tape *tape = tg_tape_new();
    const double xv[3] = {1, -2, 0.5}, wv[3] = {3, 0.25, -1}, zv[2] = {7, 8};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true), *w = ts_vec(TG_F64, 3, wv, true),
              *z = ts_vec(TG_F64, 2, zv, true);
    tg_tensor *h = tg_mul(tape, x, w);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, h, h), TG_ALL_AXES, false); /* sum (xw)^2 */
    tg_tensor *after = tg_exp(tape, h);  /* recorded after y: y does not depend on it */
    tg_tensor *unused = tg_neg(tape, z); /* depends on z only */
    cr_assert_not_null(after);
    cr_assert_not_null(unused);

    tg_tensor *xs[6] = {x, w, h, z, after, x};
    tg_tensor *out[6];
    for (int i = 0; i < 6; i++)
        out[i] = (tg_tensor *)&out; /* must be overwritten */
    cr_assert_eq(tg_grad(tape, y, xs, 6, out), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < 6; i++) {
        cr_assert_not_null(out[i]);
        cr_assert(tg_tensor_is_leaf(out[i]), "a new leaf the caller owns");
        cr_assert_eq(tg_tensor_dtype(out[i]), TG_F64);
        cr_assert_eq(tg_tensor_rank(out[i]), tg_tensor_rank(xs[i]));
        cr_assert_eq(tg_tensor_numel(out[i]), tg_tensor_numel(xs[i]));
        cr_assert_not(tg_tensor_requires_grad(out[i]));
    }
    for (size_t i = 0; i < 3; i++) {
        double hv = xv[i] * wv[i];
        cr_assert_eq(tg_tensor_get(out[0], i), 2 * hv * wv[i], "dy/dx");
        cr_assert_eq(tg_tensor_get(out[1], i), 2 * hv * xv[i], "dy/dw");
        cr_assert_eq(tg_tensor_get(out[2], i), 2 * hv, "dy/dh");
        cr_assert_eq(tg_tensor_get(out[4], i), 0.0, "recorded after y");
        cr_assert_eq(tg_tensor_get(out[5], i), tg_tensor_get(out[0], i), "x twice");
    }
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(tg_tensor_get(out[3], i), 0.0, "y does not depend on z");
    cr_assert_neq(out[0], out[5], "a separate result per entry");
    /* Leaf grad buffers untouched. */
    cr_assert_null(tg_tensor_grad_data(x));
    cr_assert_null(tg_tensor_grad_data(w));
    cr_assert_null(tg_tensor_grad_data(z));
    for (int i = 0; i < 6; i++)
        tg_tensor_free(out[i]);

    /* With existing leaf grads: they stay as they were. */
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    double before[3];
    for (size_t i = 0; i < 3; i++)
        before[i] = tg_tensor_grad_get(x, i);
    tg_tensor *gx = NULL;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &gx), TG_OK);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(tg_tensor_grad_get(x, i), before[i]);
        cr_assert_eq(tg_tensor_get(gx, i), before[i], "one backward's worth");
    }
    tg_tensor_free(gx);
    /* And a leaf never used on this tape gets zeros. */
    tg_tensor *stranger = ts_vec(TG_F64, 2, zv, true);
    tg_tensor *gs = NULL;
    cr_assert_eq(tg_grad(tape, y, &stranger, 1, &gs), TG_OK);
    cr_assert_eq(tg_tensor_get(gs, 0), 0.0);
    cr_assert_eq(tg_tensor_get(gs, 1), 0.0);
    tg_tensor_free(gs);
    tg_tensor_free(stranger);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(z);
}

Test(grad, f32)
{
    tg_tape *tape = tg_tape_new();
    const size_t n = 2;
    const double v[2] = {0.5, 2};
    tg_tensor *x = ts_vec(TG_F32, n, v, true);
    tg_tensor *y = tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK);
    cr_assert_eq(tg_tensor_dtype(g), TG_F32);
    cr_assert_eq(tg_tensor_get(g, 0), 1.0);
    cr_assert_eq(tg_tensor_get(g, 1), 4.0);
    cr_assert_null(tg_tensor_grad_data(x));
    tg_tensor_free(g);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(grad, errors_set_no_outputs)
{
    tg_tape *tape = tg_tape_new();
    const double v[2] = {1, 2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, true);
    tg_tensor *y = tg_exp(tape, x);
    tg_tensor *out[2] = {(tg_tensor *)&out, (tg_tensor *)&out};
    tg_tensor *xs[2] = {x, y};
    cr_assert_eq(tg_grad(tape, y, xs, 2, out), TG_EINVAL, "non-scalar y");
    ts_assert_has(tg_last_error(), "single element");
    cr_assert_null(out[0]);
    cr_assert_null(out[1]);
    tg_tensor *s = tg_sum(tape, y, TG_ALL_AXES, false);
    out[0] = (tg_tensor *)&out;
    cr_assert_eq(tg_grad(tape, s, NULL, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "grad: xs is NULL");
    cr_assert_null(out[0], "xs NULL: out[0] set all the same");
    cr_assert_eq(tg_grad(tape, s, xs, 1, NULL), TG_EINVAL);
    tg_tensor *with_null[2] = {x, NULL};
    out[0] = out[1] = (tg_tensor *)&out;
    cr_assert_eq(tg_grad(tape, s, with_null, 2, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "xs[1]");
    cr_assert_null(out[0]);
    cr_assert_null(out[1]);
    cr_assert_eq(tg_grad(tape, s, NULL, 0, NULL), TG_OK, "nothing asked, nothing done");
    cr_assert_null(tg_tensor_grad_data(x));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- no-grad scopes and detach -----------------------------------------------------------------
 */

Test(nograd, scopes_nest)
{
    tg_tape *tape = tg_tape_new();
    cr_assert(tg_tape_grad_enabled(tape), "on by default");
    bool outer = tg_tape_set_grad_enabled(tape, false);
    cr_assert(outer);
    cr_assert_not(tg_tape_grad_enabled(tape));
    bool inner = tg_tape_set_grad_enabled(tape, false);
    cr_assert_not(inner);
    bool inner2 = tg_tape_set_grad_enabled(tape, true);
    cr_assert_not(inner2);
    cr_assert(tg_tape_grad_enabled(tape));
    tg_tape_set_grad_enabled(tape, inner2);
    cr_assert_not(tg_tape_grad_enabled(tape));
    tg_tape_set_grad_enabled(tape, inner);
    cr_assert_not(tg_tape_grad_enabled(tape));
    tg_tape_set_grad_enabled(tape, outer);
    cr_assert(tg_tape_grad_enabled(tape));
    cr_assert_not(tg_tape_set_grad_enabled(NULL, true));
    cr_assert_not(tg_tape_grad_enabled(NULL));
    tg_tape_free(tape);
}

Test(nograd, nodes_recorded_without_grad)
{
    tg_tape *tape = tg_tape_new();
    const double xv[3] = {1, 2, -3};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true);
    tg_tensor *a = tg_sum(tape, tg_mul(tape, x, x), TG_ALL_AXES, false);
    bool was = tg_tape_set_grad_enabled(tape, false);
    tg_tensor *cube = tg_mul(tape, tg_mul(tape, x, x), x);
    tg_tensor *b = tg_sum(tape, cube, TG_ALL_AXES, false);
    tg_tape_set_grad_enabled(tape, was);
    cr_assert_not(tg_tensor_requires_grad(cube));
    cr_assert_not(tg_tensor_requires_grad(b));
    cr_assert_eq(tg_tensor_item(b), 1 + 8 - 27.0, "values are still computed");
    tg_tensor *y = tg_add(tape, a, b);
    cr_assert(tg_tensor_requires_grad(y));
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    const double want[3] = {2, 4, -6};
    ts_assert_grad(x, want, 3, 1e-12, 1e-12, "x (the no-grad branch adds nothing)");
    cr_assert_null(tg_tensor_grad_data(cube));
    cr_assert_null(tg_tensor_grad_data(b));
    /* An output recorded entirely without grad cannot be differentiated. */
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *z = tg_sum(tape, x, TG_ALL_AXES, false);
    tg_tape_set_grad_enabled(tape, true);
    cr_assert_eq(tg_backward(tape, z), TG_EINVAL);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* An output that requires no grad, though computed from a tensor that does: the message names
 * the node where the gradient stops and why (not "does not depend on any tensor that requires
 * grad", which is then untrue), for every entry point that refuses it. */
Test(nograd, output_without_grad_names_where_the_gradient_stops)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, -3), true);
    tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(0, 0, 0), false);
    tg_tensor *a = tg_exp(tape, x); /* node 0 */
    bool was = tg_tape_set_grad_enabled(tape, false);
    tg_tensor *b = tg_sum(tape, tg_mul(tape, a, a), TG_ALL_AXES, false); /* nodes 1, 2 */
    tg_tape_set_grad_enabled(tape, was);
    tg_tensor *m = tg_sum(tape, tg_gt(tape, x, c), TG_ALL_AXES, false); /* nodes 3, 4 */
    tg_tensor *k = tg_sum(tape, c, TG_ALL_AXES, false);                 /* node 5 */
    cr_assert_not_null(k, "%s", tg_tape_error(tape));
    const char *off = "which was recorded while gradient recording was off";
    tg_tensor *g = NULL;
    cr_assert_eq(tg_backward(tape, b), TG_EINVAL);
    ts_assert_has(tg_last_error(), "backward: the output does not require grad, though it was "
                                   "computed from a tensor that does: the gradient stops at "
                                   "node 1 (mul), ");
    ts_assert_has(tg_last_error(), off);
    cr_assert_eq(tg_backward_seed(tape, b, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "node 1 (mul)");
    cr_assert_eq(tg_grad(tape, b, &x, 1, &g), TG_EINVAL);
    ts_assert_has(tg_last_error(), "grad: the output does not require grad");
    ts_assert_has(tg_last_error(), off);
    cr_assert_eq(tg_grad_graph(tape, b, &x, 1, NULL, &g), TG_EINVAL);
    ts_assert_has(tg_last_error(), "grad_graph: the output does not require grad");
    ts_assert_has(tg_last_error(), "node 1 (mul)");
    cr_assert_eq(tg_vjp(tape, b, NULL, &x, 1, &g), TG_EINVAL);
    ts_assert_has(tg_last_error(), "vjp: the output does not require grad");
    ts_assert_has(tg_last_error(), "node 1 (mul)");
    cr_assert_null(g);
    /* through a comparison */
    cr_assert_eq(tg_backward(tape, m), TG_EINVAL);
    ts_assert_has(tg_last_error(), "the gradient stops at node 3 (gt), whose op has no gradient");
    /* from constants alone, the message says so */
    cr_assert_eq(tg_backward(tape, k), TG_EINVAL);
    ts_assert_has(tg_last_error(),
                  "backward: the output does not depend on any tensor that requires grad");
    cr_assert_eq(tg_tape_status(tape), TG_OK, "a refused call leaves the tape alone");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(c);
}

Test(nograd, detach)
{
    tg_tape *tape = tg_tape_new();
    const double xv[3] = {1.5, -2, 4};
    tg_tensor *x = ts_vec(TG_F64, 3, xv, true);
    tg_tensor *e = tg_exp(tape, x);
    tg_tensor *d = tg_detach(tape, e);
    cr_assert_not_null(d);
    cr_assert_eq(tg_tensor_op(d), TG_OP_DETACH);
    cr_assert_not(tg_tensor_requires_grad(d));
    cr_assert_eq(tg_tensor_data(d), tg_tensor_data(e), "shares the input's memory");
    /* y = sum(x * stop(exp x)): dy/dx = exp(x), not exp(x) (1 + x). */
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, d), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    double want[3];
    for (int i = 0; i < 3; i++)
        want[i] = exp(xv[i]);
    ts_assert_grad(x, want, 3, 1e-12, 1e-12, "x");
    cr_assert_null(tg_tensor_grad_data(e), "nothing flows through detach");
    /* Detaching a leaf. */
    tg_tensor *dx = tg_detach(tape, x);
    cr_assert_eq(tg_tensor_data(dx), tg_tensor_data(x));
    cr_assert_not(tg_tensor_requires_grad(dx));
    cr_assert_null(tg_detach(tape, NULL));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(nograd, constant_branches_get_no_gradient)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 2};
    const double cv[4] = {0.1, 0.2, 0.3, 0.4}, xv[4] = {1, 2, 3, 4};
    tg_tensor *x = ts_leaf(TG_F64, 2, shape, xv, true);
    tg_tensor *data = ts_leaf(TG_F64, 2, shape, cv, false); /* an input that needs no grad */
    tg_tensor *c = tg_constant(tape, TG_F64, 2, shape, cv);
    tg_tensor *ec = tg_exp(tape, c);
    tg_tensor *mc = tg_matmul(tape, ec, data); /* constant-only, through matmul */
    tg_tensor *k = tg_add(tape, mc, data);
    cr_assert_not(tg_tensor_requires_grad(c));
    cr_assert_not(tg_tensor_requires_grad(ec));
    cr_assert_not(tg_tensor_requires_grad(mc));
    cr_assert_not(tg_tensor_requires_grad(k));
    tg_tensor *p = tg_mul(tape, x, k);
    tg_tensor *y = tg_sum(tape, tg_matmul(tape, p, data), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    cr_assert_not_null(tg_tensor_grad_data(p));
    cr_assert_not_null(tg_tensor_grad_data(x));
    cr_assert_null(tg_tensor_grad_data(c));
    cr_assert_null(tg_tensor_grad_data(ec));
    cr_assert_null(tg_tensor_grad_data(mc));
    cr_assert_null(tg_tensor_grad_data(k));
    cr_assert_null(tg_tensor_grad_data(data), "a leaf without requires_grad gets no buffer");
    /* dy/dx[i,j] = k[i,j] * sum_l data[j,l]. */
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 2; j++) {
            double want = tg_tensor_get(k, i * 2 + j) * (cv[j * 2] + cv[j * 2 + 1]);
            ts_assert_close(tg_tensor_grad_get(x, i * 2 + j), want, 1e-14, 1e-14, "x");
        }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(data);
}

/* ---- staleness and foreign tensors ---------------------------------------------------------- */

Test(stale, use_right_after_reset)
{
    tg_tape *tape = tg_tape_new();
    const double v[2] = {1, 2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, true);
    tg_tensor *t = tg_exp(tape, x);
    tg_tensor *s = tg_sum(tape, t, TG_ALL_AXES, false);
    cr_assert_eq(tg_tensor_set_name(t, "e"), TG_OK);
    cr_assert_str_eq(tg_tensor_name(t), "e");
    tg_tape_reset(tape);
    tg_clear_error();
    cr_assert_null(tg_tensor_data(t));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    ts_assert_has(tg_last_error(), "reset");
    /* its name was in the tape's memory, which the next recording reuses */
    tg_clear_error();
    cr_assert_null(tg_tensor_name(t));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    cr_assert_eq(tg_backward(tape, s), TG_ESTALE);
    ts_assert_has(tg_last_error(), "reset");
    cr_assert_null(tg_neg(tape, t));
    cr_assert_eq(tg_tape_status(tape), TG_ESTALE);
    ts_assert_has(tg_tape_error(tape), "neg");
    ts_assert_has(tg_tape_error(tape), "reset");
    ts_assert_has(tg_last_error(), "reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(stale, use_after_new_recording)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {4, 4};
    double v[16];
    for (int i = 0; i < 16; i++)
        v[i] = i * 0.1;
    tg_tensor *x = ts_leaf(TG_F64, 2, shape, v, true);
    tg_tensor *old[3];
    old[0] = tg_exp(tape, x);
    old[1] = tg_matmul(tape, old[0], x);
    old[2] = tg_sum(tape, old[1], TG_ALL_AXES, false);
    tg_tape_reset(tape);
    /* A recording much larger than the old one: its values reuse the old memory. */
    tg_tensor *t = x;
    for (int i = 0; i < 5000; i++)
        t = tg_tanh(tape, tg_add(tape, t, x));
    tg_tensor *total = tg_sum(tape, t, TG_ALL_AXES, false);
    cr_assert_not_null(total, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_tape_size(tape), 10001);
    for (int k = 0; k < 3; k++) {
        tg_clear_error();
        cr_assert_null(tg_tensor_data(old[k]), "old node %d", k);
        cr_assert_eq(tg_last_status(), TG_ESTALE);
        cr_assert_eq(tg_backward(tape, old[k]), TG_ESTALE);
        tg_tensor *g = NULL;
        cr_assert_eq(tg_grad(tape, total, &old[k], 1, &g), TG_ESTALE);
        cr_assert_null(g);
    }
    cr_assert_eq(tg_tape_status(tape), TG_OK, "reads and bad backward calls keep the tape clean");
    cr_assert_null(tg_add(tape, t, old[1]));
    cr_assert_eq(tg_tape_status(tape), TG_ESTALE);
    ts_assert_has(tg_tape_error(tape),
                  "add: input 1 (node 1) was recorded before the tape was reset");
    /* The new recording itself is fine after another reset. */
    tg_tape_reset(tape);
    cr_assert_eq(tg_tape_status(tape), TG_OK);
    cr_assert_not_null(tg_exp(tape, x));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(stale, every_entry_point_detects_the_previous_recording)
{
    /* Alternate many resets: each time, all of the previous recording is detected. */
    tg_tape *tape = tg_tape_new();
    const double v[1] = {0.5};
    tg_tensor *x = ts_vec(TG_F64, 1, v, true);
    tg_tensor *prev = NULL;
    for (int step = 0; step < 50; step++) {
        tg_tensor *t = x;
        for (int i = 0; i < 20 + step * 7; i++)
            t = tg_sigmoid(tape, t);
        cr_assert_not_null(t);
        if (prev) {
            cr_assert_null(tg_tensor_data(prev), "step %d", step);
            cr_assert_null(tg_mul(tape, t, prev));
            cr_assert_eq(tg_tape_status(tape), TG_ESTALE);
        }
        prev = t;
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(stale, tensor_from_another_tape)
{
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    const double v[2] = {1, 2};
    tg_tensor *x = ts_vec(TG_F64, 2, v, false);
    tg_tensor *a = tg_exp(t1, x);
    tg_tensor *b = tg_exp(t2, x);
    cr_assert_null(tg_add(t2, b, a));
    cr_assert_eq(tg_tape_status(t2), TG_EINVAL);
    ts_assert_has(tg_tape_error(t2), "another tape");
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    cr_assert_eq(tg_tape_status(t1), TG_OK, "the other tape is untouched");
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(x);
}

/* ---- sticky errors ------------------------------------------------------------------------- */

Test(errors, first_error_is_kept)
{
    tg_tape *tape = tg_tape_new();
    const size_t sa[2] = {2, 3}, sb[2] = {4, 5};
    double v[20] = {0};
    tg_tensor *a = ts_leaf(TG_F64, 2, sa, v, true), *b = ts_leaf(TG_F64, 2, sb, v, false);
    tg_tensor *ok = tg_exp(tape, a);
    cr_assert_not_null(ok);
    tg_tensor *bad = tg_matmul(tape, ok, b);
    cr_assert_null(bad);
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ");
    ts_assert_has(tg_tape_error(tape), "(node 1)");
    cr_assert_eq(tg_last_status(), TG_ESHAPE);
    cr_assert_str_eq(tg_last_error(), tg_tape_error(tape));
    char first[512];
    snprintf(first, sizeof first, "%s", tg_tape_error(tape));
    size_t n = tg_tape_size(tape);

    /* Chained ops on NULL: NULL, quietly. */
    tg_tensor *c = tg_sum(tape, tg_tanh(tape, tg_exp(tape, bad)), TG_ALL_AXES, false);
    cr_assert_null(c);
    /* Even valid inputs and other errors: NULL, the first message stays. */
    cr_assert_null(tg_exp(tape, a));
    cr_assert_null(tg_add(tape, a, b));
    cr_assert_null(tg_scalar(tape, TG_F64, 1.0));
    cr_assert_null(tg_sum(tape, a, 7, false));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    cr_assert_str_eq(tg_tape_error(tape), first);
    cr_assert_str_eq(tg_last_error(), first, "no new thread message either");
    cr_assert_eq(tg_tape_size(tape), n, "nothing recorded");

    /* backward refuses a tape with an error. */
    tg_tensor *s = NULL;
    cr_assert_eq(tg_backward(tape, s), TG_EINVAL);
    ts_assert_has(tg_last_error(), first);
    cr_assert_eq(tg_backward(tape, tg_tape_node(tape, 0)), TG_ESHAPE);
    ts_assert_has(tg_last_error(), first);

    /* A reset clears it. */
    tg_tape_reset(tape);
    cr_assert_eq(tg_tape_status(tape), TG_OK);
    cr_assert_str_eq(tg_tape_error(tape), "no error");
    tg_tensor *y = tg_sum(tape, tg_exp(tape, a), TG_ALL_AXES, false);
    cr_assert_not_null(y);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(errors, shape_errors_name_the_node)
{
    tg_tape *tape = tg_tape_new();
    const size_t sa[2] = {2, 3}, sb[2] = {3, 2};
    double v[6] = {0};
    tg_tensor *a = ts_leaf(TG_F64, 2, sa, v, false), *b = ts_leaf(TG_F64, 2, sb, v, false);
    for (int i = 0; i < 4; i++)
        tg_exp(tape, a);
    cr_assert_null(tg_add(tape, a, b));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "add");
    ts_assert_has(tg_tape_error(tape), "[2,3]");
    ts_assert_has(tg_tape_error(tape), "[3,2]");
    ts_assert_has(tg_tape_error(tape), "node 4");
    tg_tape_reset(tape);
    cr_assert_null(tg_sum(tape, a, 2, false));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "axis 2");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* ---- a deep chain ------------------------------------------------------------------------------
 */

#define CHAIN 500000 /* pairs: 10^6 recorded ops */
#define CHAIN_C 1.0001

typedef struct chain_job {
    tg_status st;
    double value, grad;
    size_t nodes;
    char error[256];
} chain_job;

static void *chain_thread(void *arg)
{
    chain_job *job = arg;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 1.0);
    if (!tape || !x) {
        job->st = TG_ENOMEM;
        return NULL;
    }
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *t = x;
    for (int i = 0; i < CHAIN; i++)
        t = tg_scale(tape, tg_tanh(tape, t), CHAIN_C);
    job->nodes = tg_tape_size(tape);
    job->st = t ? tg_backward(tape, t) : tg_tape_status(tape);
    if (job->st == TG_OK) {
        job->value = tg_tensor_item(t);
        job->grad = tg_tensor_grad_get(x, 0);
    } else {
        snprintf(job->error, sizeof job->error, "%s", tg_last_error());
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    return NULL;
}

Test(deep, million_node_chain_in_a_small_stack, .timeout = 60)
{
    /* The reference: the same arithmetic by hand, the derivative accumulated backwards as
     * backward does (dx = dy * (1 - y^2), then c * dy). */
    double *ys = malloc(CHAIN * sizeof *ys);
    cr_assert_not_null(ys);
    double v = 1.0;
    for (int i = 0; i < CHAIN; i++) {
        ys[i] = tg__tanh(v); /* the library's tanh (core/detmath.h), not libm's */
        v = CHAIN_C * ys[i];
    }
    double g = 1.0;
    for (int i = CHAIN; i-- > 0;) {
        g = CHAIN_C * g;
        g = g * (1 - ys[i] * ys[i]);
    }
    free(ys);
    cr_assert(g > 1e-60 && g < 1e-10, "a derivative worth checking: %g", g);

    /* Backward runs on a thread with a 256 KiB stack: recursion over 10^6 nodes would need
     * tens of megabytes. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cr_assert_eq(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
    pthread_t th;
    chain_job job = {0};
    cr_assert_eq(pthread_create(&th, &attr, chain_thread, &job), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    cr_assert_eq(job.st, TG_OK, "%s", job.error);
    cr_assert_eq(job.nodes, 2 * (size_t)CHAIN);
    ts_assert_close(job.value, v, 1e-15, 1e-15, "value");
    ts_assert_close(job.grad, g, 0, 1e-12, "gradient");
}

/* ---- the fingerprint ------------------------------------------------------------------------ */

typedef struct fp_spec {
    tg_dtype dtype;
    size_t rows;      /* x is (rows, 3) */
    int squash;       /* 0: tanh, 1: sigmoid */
    int axis;         /* of the first reduction */
    int second_input; /* 0: add(h, h); 1: add(h, g) */
    double c;         /* scale constant */
    double value;     /* fill value of the leaves */
} fp_spec;

static uint64_t fingerprint(tg_tape *tape, fp_spec s)
{
    const size_t xs[2] = {s.rows, 3}, ws[2] = {3, 3};
    tg_tensor *x = tg_tensor_full(s.dtype, 2, xs, s.value);
    tg_tensor *w = tg_tensor_full(s.dtype, 2, ws, -s.value);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor *m = tg_matmul(tape, x, w);
    tg_tensor *h = s.squash ? tg_sigmoid(tape, m) : tg_tanh(tape, m);
    tg_tensor *g = tg_tanh(tape, m);
    tg_tensor *a = tg_add(tape, h, s.second_input ? g : h);
    tg_tensor *r = tg_sum(tape, tg_scale(tape, a, s.c), s.axis, false);
    tg_tensor *y = tg_sum(tape, r, TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    uint64_t fp = tg_tape_fingerprint(tape);
    cr_assert_eq(tg_tape_fingerprint(tape), fp, "deterministic");
    tg_tape_reset(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    return fp;
}

Test(fingerprint, equal_for_equal_structure)
{
    tg_tape *tape = tg_tape_new(), *other = tg_tape_new();
    const fp_spec base = {TG_F64, 3, 0, 0, 0, 2.0, 0.5};
    uint64_t fp = fingerprint(tape, base);
    fp_spec s = base;
    s.value = -7.25;
    s.c = 100.0;
    cr_assert_eq(fingerprint(tape, s), fp, "values and scale constants do not count");
    cr_assert_eq(fingerprint(tape, base), fp, "stable across resets");
    cr_assert_eq(fingerprint(other, base), fp, "and across tapes");
    for (int i = 0; i < 5; i++)
        tg_tape_reset(tape);
    cr_assert_eq(fingerprint(tape, base), fp);
    cr_assert_neq(tg_tape_fingerprint(tape), fp, "the empty recording differs");
    tg_tape_free(tape);
    tg_tape_free(other);
}

Test(fingerprint, differs_when_structure_differs)
{
    tg_tape *tape = tg_tape_new();
    const fp_spec base = {TG_F64, 3, 0, 0, 0, 2.0, 0.5};
    uint64_t fp = fingerprint(tape, base);
    fp_spec s;
    uint64_t seen[5];
    int n = 0;

    s = base;
    s.squash = 1;
    seen[n++] = fingerprint(tape, s);
    cr_assert_neq(seen[n - 1], fp, "op");
    s = base;
    s.rows = 4;
    seen[n++] = fingerprint(tape, s);
    cr_assert_neq(seen[n - 1], fp, "shape");
    s = base;
    s.dtype = TG_F32;
    seen[n++] = fingerprint(tape, s);
    cr_assert_neq(seen[n - 1], fp, "dtype");
    s = base;
    s.second_input = 1;
    seen[n++] = fingerprint(tape, s);
    cr_assert_neq(seen[n - 1], fp, "input edge");
    s = base;
    s.axis = 1; /* (3,3) reduced over the other axis: same shapes, other computation */
    seen[n++] = fingerprint(tape, s);
    cr_assert_neq(seen[n - 1], fp, "axis");
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            cr_assert_neq(seen[i], seen[j], "variants %d and %d", i, j);
    tg_tape_free(tape);
}

Test(fingerprint, leaf_edges)
{
    tg_tape *tape = tg_tape_new();
    const size_t shape[2] = {2, 2};
    tg_tensor *a = tg_tensor_ones(TG_F64, 2, shape), *b = tg_tensor_ones(TG_F64, 2, shape);
    tg_mul(tape, a, b);
    uint64_t ab = tg_tape_fingerprint(tape);
    tg_tape_reset(tape);
    tg_mul(tape, a, a);
    uint64_t aa = tg_tape_fingerprint(tape);
    tg_tape_reset(tape);
    tg_mul(tape, b, a);
    uint64_t ba = tg_tape_fingerprint(tape);
    tg_tape_reset(tape);
    cr_assert_neq(ab, aa, "two leaves vs one leaf twice");
    cr_assert_eq(ab, ba, "leaves are referenced by order of first use");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* ---- anomaly mode --------------------------------------------------------------------------- */

Test(anomaly, forward_nan_or_inf_names_the_op)
{
    const size_t shape[2] = {2, 3};
    double v[6] = {0};
    tg_tensor *x = ts_leaf(TG_F64, 2, shape, v, true);
    /* Off by default: log(0) = -inf is just a value. */
    tg_tape *tape = tg_tape_new();
    tg_tensor *l = tg_log(tape, tg_exp(tape, tg_neg(tape, tg_exp(tape, x))));
    cr_assert_not_null(l);
    tg_tensor *l0 = tg_log(tape, x);
    cr_assert_not_null(l0);
    cr_assert(isinf(tg_tensor_get(l0, 0)) && tg_tensor_get(l0, 0) < 0);
    cr_assert_eq(tg_tape_status(tape), TG_OK);

    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, true);
    tg_tensor *a = tg_neg(tape, x);
    tg_tensor *b = tg_abs(tape, a);
    cr_assert_not_null(b);
    tg_tensor *bad = tg_log(tape, b);
    cr_assert_null(bad);
    cr_assert_eq(tg_tape_status(tape), TG_ENUMERIC);
    cr_assert_eq(tg_last_status(), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "log");
    ts_assert_has(tg_tape_error(tape), "node 2");
    ts_assert_has(tg_tape_error(tape), "[2,3]");
    ts_assert_has(tg_last_error(), "log");
    /* Sticky like any error. */
    cr_assert_null(tg_exp(tape, b));
    tg_tape_reset(tape);
    /* Anomaly mode survives the reset; NaN is caught as well as Inf. */
    tg_tensor *n = tg_sqrt(tape, tg_add_scalar(tape, x, -1.0));
    cr_assert_null(n);
    ts_assert_has(tg_tape_error(tape), "sqrt");
    ts_assert_has(tg_tape_error(tape), "node 1");
    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, false);
    cr_assert_not_null(tg_log(tape, x));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A NaN or Inf that an op only passes on, from a leaf or a node recorded while anomaly mode was
 * off, is named where it is, not as the op's own. */
Test(anomaly, forward_names_an_input_that_holds_nan_or_inf)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, NAN), true);
    cr_assert_eq(tg_tensor_set_name(x, "x"), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    cr_assert_null(tg_exp(tape, x));
    cr_assert_eq(tg_tape_status(tape), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "anomaly: exp at node 0 was given NaN or Inf: its input 0, "
                                       "the leaf 'x', holds it (input shapes [2])");
    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, false);
    tg_tensor *z = ts_vec(TG_F64, 2, TS_VALS(0, 1), false);
    tg_tensor *l = tg_log(tape, z); /* -inf, 0: only a value while anomaly mode is off */
    tg_tape_set_anomaly(tape, true);
    cr_assert_null(tg_mul(tape, z, l));
    ts_assert_has(tg_tape_error(tape), "anomaly: mul at node 1 was given NaN or Inf: its input 1, "
                                       "node 0 (log), holds it");
    /* an op that makes one itself is named as before */
    tg_tape_reset(tape);
    cr_assert_null(tg_log(tape, z));
    ts_assert_has(tg_tape_error(tape),
                  "anomaly: log produced NaN or Inf at node 0 (input shapes [2])");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(z);
}

/* A seed that holds NaN or Inf is named as such, not as the first VJP that passes it on. */
Test(anomaly, backward_names_a_seed_that_holds_nan_or_inf)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *seed = ts_vec(TG_F64, 2, TS_VALS(1, INFINITY), false);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    tg_tensor *y = tg_exp(tape, x);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward_seed(tape, y, seed), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "anomaly: backward: the seed holds NaN or Inf");
    cr_assert_null(tg_tensor_grad_data(x), "nothing walked");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(seed);
}

Test(anomaly, backward_inf_names_the_op)
{
    const size_t n = 2;
    const double v[2] = {0, 1};
    tg_tensor *x = ts_leaf(TG_F64, 1, &n, v, true);
    tg_tape *tape = tg_tape_new();
    /* Off: sqrt'(0) = +inf lands in the gradient. */
    tg_tensor *y = tg_sum(tape, tg_sqrt(tape, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    cr_assert(isinf(tg_tensor_grad_get(x, 0)));
    cr_assert_eq(tg_tensor_grad_get(x, 1), 0.5);
    tg_tensor_zero_grad(x);

    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, true);
    tg_tensor *e = tg_exp(tape, x);
    tg_tensor *s = tg_sqrt(tape, x);
    y = tg_sum(tape, tg_add(tape, e, s), TG_ALL_AXES, false);
    cr_assert_not_null(y, "the forward values are finite: %s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, y), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "sqrt");
    ts_assert_has(tg_last_error(), "node 1");
    ts_assert_has(tg_last_error(), "backward");
    cr_assert_eq(tg_tape_status(tape), TG_ENUMERIC);

    /* The same through tg_grad. */
    tg_tape_reset(tape);
    y = tg_sum(tape, tg_sqrt(tape, x), TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "sqrt");
    cr_assert_null(g);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Anomaly mode reads only what this backward wrote: c = x*x at x = 0 got +inf (1/c from log)
 * in an earlier backward, and where's VJP passes nothing to its condition, so c's buffer still
 * holds it; y2 = sum(where(c, x, 2x)) picks 2x (c = 0 is false), dy2/dx = 2. A leaf's own
 * gradient adds up across backward passes, so an Inf it holds from an earlier one is named as
 * that, not as the VJP that adds to it next. */
Test(anomaly, backward_reads_only_the_gradients_this_backward_wrote)
{
    tg_tensor *x = ts_vec(TG_F64, 1, TS_VALS(0), true);
    cr_assert_eq(tg_tensor_set_name(x, "x"), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *c = tg_mul(tape, x, x);
    tg_tensor *y1 = tg_sum(tape, tg_log(tape, c), TG_ALL_AXES, false);
    tg_tensor *y2 = tg_sum(tape, tg_where(tape, c, x, tg_scale(tape, x, 2)), TG_ALL_AXES, false);
    cr_assert_not_null(y2, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, y1), TG_OK, "%s", tg_last_error());
    cr_assert(isnan(tg_tensor_grad_get(x, 0)), "inf * 0 at x = 0");
    tg_tape_set_anomaly(tape, true);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad(tape, y2, &x, 1, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_get(g, 0), 2);
    tg_tensor_free(g);
    cr_assert_eq(tg_backward(tape, y2), TG_ENUMERIC, "x's gradient holds NaN from before");
    ts_assert_has(tg_tape_error(tape), "anomaly: backward: the gradient of the leaf 'x', input 1 "
                                       "of where at node 4, held NaN or Inf before this backward");
    tg_tape_reset(tape);
    tg_tape_set_anomaly(tape, false); /* log(0) is only a value while it is off */
    cr_assert_eq(tg_tensor_zero_grad(x), TG_OK);
    c = tg_mul(tape, x, x);
    y1 = tg_sum(tape, tg_log(tape, c), TG_ALL_AXES, false);
    y2 = tg_sum(tape, tg_where(tape, c, x, tg_scale(tape, x, 2)), TG_ALL_AXES, false);
    cr_assert_not_null(y2, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, y1), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_zero_grad(x), TG_OK);
    tg_tape_set_anomaly(tape, true);
    cr_assert_eq(tg_backward(tape, y2), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_grad_get(x, 0), 2);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- no heap allocation in steady state --------------------------------------------------------
 */

typedef struct mlp {
    tg_tensor *X, *Y;             /* data (8,4), one-hot targets (8,3) */
    tg_tensor *W1, *b1, *W2, *b2; /* (4,16), (16), (16,3), (3) */
} mlp;

/* One training step; returns the loss. */
static double mlp_step(tg_tape *tape, mlp *m, double lr)
{
    tg_tensor *h = tg_tanh(tape, tg_add(tape, tg_matmul(tape, m->X, m->W1), m->b1));
    tg_tensor *logits = tg_add(tape, tg_matmul(tape, h, m->W2), m->b2);
    tg_tensor *logp = tg_log_softmax(tape, logits, 1);
    tg_tensor *nll = tg_neg(
        tape, tg_mean(tape, tg_sum(tape, tg_mul(tape, m->Y, logp), 1, false), TG_ALL_AXES, false));
    /* A small extra term through sigmoid and softmax, so they take part too. */
    tg_tensor *reg =
        tg_mean(tape, tg_mul(tape, tg_sigmoid(tape, logits), tg_softmax(tape, logits, -1)),
                TG_ALL_AXES, false);
    tg_tensor *loss = tg_add(tape, nll, tg_scale(tape, reg, 0.01));
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    double value = tg_tensor_item(loss);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    tg_tensor *params[4] = {m->W1, m->b1, m->W2, m->b2};
    for (int p = 0; p < 4; p++) {
        double *w = tg_tensor_data(params[p]);
        const double *g = tg_tensor_grad_data(params[p]);
        cr_assert(w && g);
        for (size_t i = 0; i < tg_tensor_numel(params[p]); i++)
            w[i] -= lr * g[i];
        tg_tensor_zero_grad(params[p]);
    }
    tg_tape_reset(tape);
    return value;
}

Test(steady_state, training_loop_makes_no_allocator_calls)
{
    ts_alloc_install(); /* before anything is made: every byte goes through the counter */
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    const size_t xs[2] = {8, 4}, ys[2] = {8, 3}, w1s[2] = {4, 16}, b1s[1] = {16}, w2s[2] = {16, 3},
                 b2s[1] = {3};
    mlp m;
    m.X = tg_tensor_randn(TG_F64, 2, xs, &rng, 0, 1);
    m.Y = tg_tensor_zeros(TG_F64, 2, ys);
    for (size_t i = 0; i < 8; i++)
        tg_tensor_set(m.Y, i * 3 + i % 3, 1.0);
    m.W1 = tg_tensor_randn(TG_F64, 2, w1s, &rng, 0, 0.5);
    m.b1 = tg_tensor_zeros(TG_F64, 1, b1s);
    m.W2 = tg_tensor_randn(TG_F64, 2, w2s, &rng, 0, 0.5);
    m.b2 = tg_tensor_zeros(TG_F64, 1, b2s);
    tg_tensor *params[4] = {m.W1, m.b1, m.W2, m.b2};
    for (int p = 0; p < 4; p++)
        tg_tensor_set_requires_grad(params[p], true);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);

    double first = mlp_step(tape, &m, 0.5);
    size_t calls_after_first = ts_alloc.calls;
    size_t capacity = tg_tape_arena_capacity(tape);
    cr_assert_gt(capacity, 0);
    double last = first;
    for (int step = 2; step <= 100; step++) {
        last = mlp_step(tape, &m, 0.5);
        cr_assert_eq(ts_alloc.calls, calls_after_first,
                     "step %d made %zu allocator calls (after %zu in step 1)", step,
                     ts_alloc.calls - calls_after_first, calls_after_first);
        cr_assert_eq(tg_tape_arena_capacity(tape), capacity,
                     "step %d: arena capacity %zu, was %zu after step 1", step,
                     tg_tape_arena_capacity(tape), capacity);
    }
    cr_assert_lt(last, first * 0.5, "training works: loss %g -> %g", first, last);

    tg_tape_free(tape);
    tg_tensor_free(m.X);
    tg_tensor_free(m.Y);
    for (int p = 0; p < 4; p++)
        tg_tensor_free(params[p]);
    cr_assert_eq(ts_alloc.live, 0, "%lld blocks leaked", ts_alloc.live);
    cr_assert_eq(ts_alloc.bytes, 0, "%lld bytes unaccounted for", ts_alloc.bytes);
    ts_alloc_uninstall();
}

Test(steady_state, f32_and_a_larger_graph)
{
    /* The same property for f32 and for a recording that needs several arena blocks. */
    ts_alloc_install();
    const size_t shape[2] = {64, 64};
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *W = tg_tensor_randn(TG_F32, 2, shape, &rng, 0, 0.1);
    tg_tensor *X = tg_tensor_randn(TG_F32, 2, shape, &rng, 0, 1);
    tg_tensor_set_requires_grad(W, true);
    tg_tape *tape = tg_tape_new();
    size_t calls = 0, capacity = 0;
    for (int step = 1; step <= 20; step++) {
        tg_tensor *h = X;
        for (int l = 0; l < 12; l++)
            h = tg_relu(tape, tg_matmul(tape, h, W));
        tg_tensor *loss = tg_mean(tape, tg_square(tape, h), TG_ALL_AXES, false);
        cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
        tg_tensor_zero_grad(W);
        tg_tape_reset(tape);
        if (step == 1) {
            calls = ts_alloc.calls;
            capacity = tg_tape_arena_capacity(tape);
            cr_assert_gt(capacity, (size_t)12 * 64 * 64 * 4 * 2, "several blocks' worth");
        } else {
            cr_assert_eq(ts_alloc.calls, calls, "step %d allocated", step);
            cr_assert_eq(tg_tape_arena_capacity(tape), capacity, "step %d grew the arena", step);
        }
    }
    tg_tape_free(tape);
    tg_tensor_free(W);
    tg_tensor_free(X);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
}

/* tg_tape_fail keeps an error code as it is given, with the next node's index; a status that
 * is no error code (TG_OK, a made-up number) is kept as TG_EINVAL, which says so, since the
 * caller meant to fail; the first error stays. */
Test(tape, fail_keeps_error_codes_and_refuses_others)
{
    tg_tape *tape = tg_tape_new();
    cr_expect_eq(tg_tape_fail(tape, TG_ESHAPE, "bad %s", "shape"), TG_ESHAPE);
    cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
    cr_expect_str_eq(tg_tape_error(tape), "bad shape (node 0)");
    tg_tape_reset(tape);
    const tg_status not_errors[] = {TG_OK, (tg_status)5, (tg_status)-10};
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(tg_tape_fail(tape, not_errors[i], "mine"), TG_EINVAL);
        cr_expect_eq(tg_tape_status(tape), TG_EINVAL);
        char want[96];
        snprintf(want, sizeof want,
                 "mine (node 0; tape_fail was given status %d, which is no error code)",
                 (int)not_errors[i]);
        cr_expect_str_eq(tg_tape_error(tape), want);
        tg_tape_reset(tape);
    }
    cr_expect_eq(tg_tape_fail(NULL, TG_EIO, "x"), TG_EINVAL);
    ts_assert_has(tg_last_error(), "tape_fail: tape is NULL (the error was: x)");
    tg_tape_fail(tape, TG_EIO, "first");
    tg_tape_fail(tape, TG_ENUMERIC, "second");
    cr_expect_eq(tg_tape_status(tape), TG_EIO);
    ts_assert_has(tg_tape_error(tape), "first");
    tg_tape_free(tape);
}
