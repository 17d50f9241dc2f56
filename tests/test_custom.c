/* test_custom.c: user-defined ops (tg_custom). Values and gradients in f32 and f64 against
 * closed forms, output shapes of the caller's choosing and their validation, errors from the
 * forward and the VJP becoming the tape's, an op without a VJP, fan-out, two custom ops in one
 * graph, re-recording (the plan), tg_gradcheck passing a right VJP and failing a wrong one,
 * the dot graph, the fingerprint and anomaly mode naming the op.
 *
 * Reference values are closed forms written in the comments next to them. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"

/* ---- the ops under test --------------------------------------------------------------------
 * cube: y = k x^3 elementwise, k = *(double *)user; dx += dy 3 k x^2. Both dtypes. */

/* Element i of a tensor's values (either dtype) as a double, and the same of a raw buffer. */
static double at(const tg_tensor *t, const void *p, size_t i)
{
    return tg_tensor_dtype(t) == TG_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}
static void add_at(const tg_tensor *t, void *p, size_t i, double v)
{
    if (tg_tensor_dtype(t) == TG_F32)
        ((float *)p)[i] += (float)v;
    else
        ((double *)p)[i] += v;
}

static int g_forwards, g_vjps; /* calls, to see the callbacks run when they should */

static tg_status cube_forward(const tg_custom_call *c)
{
    g_forwards++;
    const double k = *(const double *)c->user;
    const tg_tensor *x = c->in[0];
    for (size_t i = 0; i < tg_tensor_numel(c->out); i++) {
        double v = at(x, tg_tensor_data_const(x), i);
        add_at(c->out, c->y, i, k * v * v * v); /* y is zeroed: adding is writing */
    }
    return TG_OK;
}

static tg_status cube_vjp(const tg_custom_call *c)
{
    g_vjps++;
    const double k = *(const double *)c->user;
    const tg_tensor *x = c->in[0];
    cr_assert(c->y == NULL, "the VJP has no output buffer to write");
    for (size_t i = 0; c->dx[0] && i < tg_tensor_numel(x); i++) {
        double v = at(x, tg_tensor_data_const(x), i);
        add_at(x, c->dx[0], i, at(c->out, c->dy, i) * 3 * k * v * v);
    }
    return TG_OK;
}

static const tg_custom_op CUBE = {.name = "cube", .forward = cube_forward, .vjp = cube_vjp};

/* outer: y[i,j] = a[i] b[j] for vectors a (m), b (n): an output shape (m, n) that is neither
 * input's; da[i] += sum_j dy[i,j] b[j], db[j] += sum_i dy[i,j] a[i]. Any number of rows. */
static tg_status outer_forward(const tg_custom_call *c)
{
    const tg_tensor *a = c->in[0], *b = c->in[1];
    const size_t m = tg_tensor_numel(a), n = tg_tensor_numel(b);
    if (tg_tensor_rank(c->out) != 2 || tg_tensor_dim(c->out, 0) != m ||
        tg_tensor_dim(c->out, 1) != n) {
        snprintf(c->msg, c->msg_size, "the output must be (%zu, %zu)", m, n);
        return TG_ESHAPE;
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            add_at(c->out, c->y, i * n + j,
                   at(a, tg_tensor_data_const(a), i) * at(b, tg_tensor_data_const(b), j));
    return TG_OK;
}

static tg_status outer_vjp(const tg_custom_call *c)
{
    const tg_tensor *a = c->in[0], *b = c->in[1];
    const size_t m = tg_tensor_numel(a), n = tg_tensor_numel(b);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double dy = at(c->out, c->dy, i * n + j);
            if (c->dx[0])
                add_at(a, c->dx[0], i, dy * at(b, tg_tensor_data_const(b), j));
            if (c->dx[1])
                add_at(b, c->dx[1], j, dy * at(a, tg_tensor_data_const(a), i));
        }
    return TG_OK;
}

static const tg_custom_op OUTER = {.name = "outer", .forward = outer_forward, .vjp = outer_vjp};

static tg_tensor *cube(tg_tape *tape, double *k, tg_tensor *x)
{
    return tg_custom(tape, &CUBE, k, &x, 1, tg_tensor_rank(x), tg_tensor_shape(x));
}

static tg_tensor *outer(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    const size_t shape[2] = {tg_tensor_numel(a), tg_tensor_numel(b)};
    return tg_custom(tape, &OUTER, NULL, in, 2, 2, shape);
}

/* ---- values and gradients ------------------------------------------------------------------ */

static void check_cube(tg_dtype dt, double tol)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_mat(dt, 2, 2, TS_VALS(1, -2, 0.5, 3), true);
    double k = 1.5;
    g_forwards = g_vjps = 0;
    tg_tensor *y = cube(tape, &k, x);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect_eq(g_forwards, 1);
    cr_expect_eq(tg_tensor_dtype(y), dt);
    cr_expect_eq(tg_tensor_rank(y), 2);
    cr_expect_eq(tg_tensor_op(y), TG_OP_CUSTOM);
    cr_expect_str_eq(tg_tensor_op_name(y), "cube");
    cr_expect_str_eq(tg_op_name(TG_OP_CUSTOM), "custom");
    cr_expect(tg_tensor_requires_grad(y));
    cr_expect_eq(tg_tensor_num_inputs(y), 1);
    cr_expect_eq(tg_tensor_input(y, 0), x);
    /* 1.5 x^3 */
    ts_assert_values(y, TS_VALS(1.5, -12, 0.1875, 40.5), 4, tol, tol, "cube");
    tg_attrs a;
    cr_assert_eq(tg_tensor_attrs(y, &a), TG_OK);
    cr_expect(a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 2, "the output shape, as asked");

    /* loss = sum(cube(x)): dloss/dx = 4.5 x^2 */
    tg_tensor *loss = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    cr_expect_eq(g_vjps, 1);
    ts_assert_grad(x, TS_VALS(4.5, 18, 1.125, 40.5), 4, tol, tol, "d sum(cube(x)) / dx");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

Test(custom, values_and_gradients_f64)
{
    check_cube(TG_F64, 1e-15);
}
Test(custom, values_and_gradients_f32)
{
    check_cube(TG_F32, 1e-6);
}

/* Two inputs and an output shape of its own: y = outer(a, b), loss = sum(w * y) with w a
 * constant (m, n): dloss/da[i] = sum_j w[i,j] b[j], dloss/db[j] = sum_i w[i,j] a[i]. */
static void check_outer(tg_dtype dt, double tol)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = ts_vec(dt, 2, TS_VALS(1, -2), true);
    tg_tensor *b = ts_vec(dt, 3, TS_VALS(0.5, 2, -1), true);
    tg_tensor *y = outer(tape, a, b);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect(tg_tensor_rank(y) == 2 && tg_tensor_dim(y, 0) == 2 && tg_tensor_dim(y, 1) == 3);
    ts_assert_values(y, TS_VALS(0.5, 2, -1, -1, -4, 2), 6, tol, tol, "outer");
    const float wf[6] = {1, 2, 3, 4, 5, 6};
    const double wd[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *w = tg_constant(tape, dt, 2, TS_SHAPE(2, 3), dt == TG_F32 ? (void *)wf : wd);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, w, y), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    /* da = (1*0.5 + 2*2 + 3*-1, 4*0.5 + 5*2 + 6*-1) = (1.5, 6);
     * db = (1*1 + 4*-2, 2*1 + 5*-2, 3*1 + 6*-2) = (-7, -8, -9) */
    ts_assert_grad(a, TS_VALS(1.5, 6), 2, tol, tol, "da");
    ts_assert_grad(b, TS_VALS(-7, -8, -9), 3, tol, tol, "db");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tape_free(tape);
}

Test(custom, output_shape_of_its_own_f64)
{
    check_outer(TG_F64, 1e-15);
}
Test(custom, output_shape_of_its_own_f32)
{
    check_outer(TG_F32, 1e-6);
}

/* Only the inputs that need a gradient get a buffer: dx[i] is NULL for the others. */
Test(custom, dx_is_null_for_inputs_without_grad)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, -2), true);
    tg_tensor *b = ts_vec(TG_F64, 3, TS_VALS(0.5, 2, -1), false);
    tg_tensor *loss = tg_sum(tape, outer(tape, a, b), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    ts_assert_grad(a, TS_VALS(1.5, 1.5), 2, 1e-15, 0, "da = sum(b)");
    cr_expect_null(tg_tensor_grad_data(b));
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tape_free(tape);
}

/* The same tensor twice among the inputs, and the output used twice:
 * loss = sum(outer(x, x) + outer(x, x)) = 2 (sum x)^2, dloss/dx = 4 sum(x). */
Test(custom, fan_out)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, -0.5), true);
    tg_tensor *y = outer(tape, x, x);
    tg_tensor *loss = tg_sum(tape, tg_add(tape, y, y), TG_ALL_AXES, false);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    ts_assert_close(tg_tensor_item(loss), 2 * 2.5 * 2.5, 1e-15, 0, "loss");
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    ts_assert_grad(x, TS_VALS(10, 10, 10), 3, 1e-14, 0, "dloss/dx = 4 sum(x)");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* Two custom ops chained with built-in ones: loss = sum(outer(cube(a), b)) with k = 2:
 * sum_i 2 a_i^3 * sum_j b_j; dloss/da_i = 6 a_i^2 sum(b), dloss/db_j = sum_i 2 a_i^3. */
Test(custom, two_custom_ops_in_one_graph)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, -2), true);
    tg_tensor *b = ts_vec(TG_F64, 2, TS_VALS(0.5, 3), true);
    double k = 2;
    tg_tensor *loss = tg_sum(tape, outer(tape, cube(tape, &k, a), b), TG_ALL_AXES, false);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    ts_assert_close(tg_tensor_item(loss), (2 - 16) * 3.5, 1e-14, 0, "loss");
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    ts_assert_grad(a, TS_VALS(21, 84), 2, 1e-14, 0, "da = 6 a^2 sum(b)");
    ts_assert_grad(b, TS_VALS(-14, -14), 2, 1e-14, 0, "db = sum(2 a^3)");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tape_free(tape);
}

/* A training loop records the same graph every step: the custom node (never planned) and the
 * nodes after it (whose input is not planned) are recorded afresh, with the new values. */
Test(custom, recorded_again_after_reset)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    double k = 1;
    for (int step = 0; step < 4; step++) {
        tg_tape_reset(tape);
        tg_tensor_zero_grad(x);
        tg_tensor *loss = tg_sum(tape, tg_scale(tape, cube(tape, &k, x), 2), TG_ALL_AXES, false);
        cr_assert_not_null(loss, "%s", tg_tape_error(tape));
        double x0 = tg_tensor_get(x, 0), x1 = tg_tensor_get(x, 1);
        ts_assert_close(tg_tensor_item(loss), 2 * (x0 * x0 * x0 + x1 * x1 * x1), 1e-12, 1e-15,
                        "step %d: loss", step);
        cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
        ts_assert_grad(x, ((double[]){6 * x0 * x0, 6 * x1 * x1}), 2, 1e-12, 1e-15, "step %d: 6 x^2",
                       step);
        tg_tensor_set(x, 0, x0 - 0.1);
        tg_tensor_set(x, 1, x1 + 0.25);
    }
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* A custom node's name and inputs live in the tape's data arena, which the next recording
 * writes over: after a reset the node is stale, and asking for them gives NULL and 0
 * (TG_ESTALE), not what the new values read as pointers say. */
Test(custom, stale_node_reads_nothing)
{
    const size_t n = 4096;
    tg_tensor *x = tg_tensor_full(TG_F64, 1, &n, 1e-300);
    cr_assert_not_null(x);
    tg_tape *tape = tg_tape_new();
    double k = 1;
    tg_tensor *y = cube(tape, &k, x);
    tg_tensor *xs[2] = {x, x};
    tg_tensor *c = tg_concat(tape, xs, 2, 0);
    cr_assert_not_null(c, "%s", tg_tape_error(tape));
    cr_assert_str_eq(tg_tensor_op_name(y), "cube");
    cr_assert_eq(tg_tensor_num_inputs(c), 2);
    tg_tape_reset(tape);
    cr_assert_not_null(tg_scale(tape, x, 3), "%s", tg_tape_error(tape)); /* over the old ext */
    cr_assert_null(tg_tensor_op_name(y));
    cr_assert_eq(tg_last_status(), TG_ESTALE);
    cr_assert_eq(tg_tensor_num_inputs(y), 0);
    cr_assert_null(tg_tensor_input(y, 0));
    cr_assert_eq(tg_tensor_num_inputs(c), 0);
    cr_assert_null(tg_tensor_input(c, 1));
    ts_assert_has(tg_last_error(), "recorded before its tape was reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* With gradient recording off, the result requires no grad and the VJP never runs. */
Test(custom, grad_disabled)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    double k = 1;
    tg_tape_set_grad_enabled(tape, false);
    tg_tensor *y = cube(tape, &k, x);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect(!tg_tensor_requires_grad(y));
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* The output is zeroed before the forward: one that writes nothing leaves zeros, not bytes of
 * an earlier recording. */
static tg_status lazy_forward(const tg_custom_call *c)
{
    (void)c;
    return TG_OK;
}

Test(custom, output_starts_zeroed)
{
    static const tg_custom_op lazy = {.name = "lazy", .forward = lazy_forward, .vjp = NULL};
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false);
    for (int step = 0; step < 2; step++) {
        tg_tape_reset(tape);
        /* Fill the arena with something first, then let the lazy op take memory after it. */
        tg_tensor *junk = tg_add_scalar(tape, x, 7);
        cr_assert_not_null(junk);
        tg_tape_reset(tape);
        tg_tensor *y = tg_custom(tape, &lazy, NULL, &x, 1, 1, TS_SHAPE(3));
        ts_assert_values(y, TS_VALS(0, 0, 0), 3, 0, 0, "lazy");
    }
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* ---- argument errors ---------------------------------------------------------------------- */

/* Expects tg_custom(...) to have failed with `st` and a message containing `has`, then resets. */
static void expect_fail(tg_tape *tape, tg_tensor *y, tg_status st, const char *has)
{
    cr_expect_null(y);
    cr_expect_eq(tg_tape_status(tape), st, "status %s, expected %s: %s",
                 tg_status_name(tg_tape_status(tape)), tg_status_name(st), tg_tape_error(tape));
    ts_assert_has(tg_tape_error(tape), has);
    tg_tape_reset(tape);
}

Test(custom, bad_arguments_are_errors)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true);
    tg_tensor *xf = ts_vec(TG_F32, 3, TS_VALS(1, 2, 3), true);
    double k = 1;
    const size_t s3[1] = {3};
    tg_tensor *in[2] = {x, xf};

    expect_fail(tape, tg_custom(tape, NULL, NULL, &x, 1, 1, s3), TG_EINVAL, "custom: op is NULL");
    static const tg_custom_op no_name = {.name = NULL, .forward = cube_forward, .vjp = cube_vjp};
    expect_fail(tape, tg_custom(tape, &no_name, &k, &x, 1, 1, s3), TG_EINVAL, "op->name is NULL");
    static const tg_custom_op empty = {.name = "", .forward = cube_forward, .vjp = cube_vjp};
    expect_fail(tape, tg_custom(tape, &empty, &k, &x, 1, 1, s3), TG_EINVAL, "op->name is empty");
    static const tg_custom_op no_forward = {.name = "nofwd", .forward = NULL, .vjp = cube_vjp};
    expect_fail(tape, tg_custom(tape, &no_forward, &k, &x, 1, 1, s3), TG_EINVAL,
                "op->forward is NULL");
    /* No inputs: the output's dtype would be unknown. */
    expect_fail(tape, tg_custom(tape, &CUBE, &k, in, 0, 1, s3), TG_EINVAL,
                "cube: takes one or more inputs, got 0");
    expect_fail(tape, tg_custom(tape, &CUBE, &k, NULL, 1, 1, s3), TG_EINVAL,
                "cube: the input list is NULL");
    tg_tensor *with_null[2] = {x, NULL};
    expect_fail(tape, tg_custom(tape, &OUTER, NULL, with_null, 2, 1, s3), TG_EINVAL,
                "outer: input 1 is NULL");
    expect_fail(tape, tg_custom(tape, &OUTER, NULL, in, 2, 1, s3), TG_EDTYPE,
                "outer: input 1 is f32, input 0 f64");
    /* The requested shape. */
    expect_fail(tape, tg_custom(tape, &CUBE, &k, &x, 1, -1, s3), TG_EINVAL,
                "cube: rank -1 is out of range 0..4");
    expect_fail(tape, tg_custom(tape, &CUBE, &k, &x, 1, TG_MAX_RANK + 1, TS_SHAPE(1, 1, 1, 1, 1)),
                TG_EINVAL, "cube: rank 5 is out of range 0..4");
    expect_fail(tape, tg_custom(tape, &CUBE, &k, &x, 1, 2, NULL), TG_EINVAL,
                "cube: shape is NULL for rank 2");
    expect_fail(tape, tg_custom(tape, &CUBE, &k, &x, 1, 2, TS_SHAPE(SIZE_MAX / 2, 3)), TG_ESHAPE,
                "has too many elements");
    /* A 0-d output needs no shape. */
    static const tg_custom_op lazy = {.name = "lazy", .forward = lazy_forward, .vjp = NULL};
    tg_tensor *s = tg_custom(tape, &lazy, NULL, &x, 1, 0, NULL);
    cr_assert_not_null(s, "%s", tg_tape_error(tape));
    cr_expect(tg_tensor_rank(s) == 0 && tg_tensor_numel(s) == 1);
    /* tg_apply cannot supply the callbacks. */
    expect_fail(tape, tg_apply(tape, TG_OP_CUSTOM, &x, 1, &(tg_attrs){.rank = 1, .shape = s3}),
                TG_EINVAL, "apply: custom ops are recorded with tg_custom");
    /* No tape: the thread's error. */
    cr_expect_null(tg_custom(NULL, &CUBE, &k, &x, 1, 1, s3));
    ts_assert_has(tg_last_error(), "custom: tape is NULL");
    /* A tape with an error: NULL quietly, the first error kept. */
    tg_tape_fail(tape, TG_EIO, "first");
    cr_expect_null(tg_custom(tape, &CUBE, &k, &x, 1, 1, s3));
    ts_assert_has(tg_tape_error(tape), "first");
    tg_tensor_free(x);
    tg_tensor_free(xf);
    tg_tape_free(tape);
}

/* ---- callbacks that fail ------------------------------------------------------------------ */

/* Fails when the user pointer says so: 1 forward, 2 VJP; *(int *)user + 10 returns a status
 * that is no tg_status; 20 fails the forward with no message; 30 the forward and 32 the VJP
 * with a message that fills the buffer without a NUL (as strncpy leaves a long one). */
static tg_status picky_forward(const tg_custom_call *c)
{
    int mode = *(const int *)c->user;
    if (mode == 1) {
        snprintf(c->msg, c->msg_size, "input has %zu elements, wants 2", tg_tensor_numel(c->in[0]));
        return TG_ESHAPE;
    }
    if (mode == 11)
        return (tg_status)5;
    if (mode == 20)
        return TG_EDTYPE;
    if (mode == 30) {
        memset(c->msg, 'x', c->msg_size);
        return TG_EINVAL;
    }
    memcpy(c->y, tg_tensor_data_const(c->in[0]), tg_tensor_numel(c->out) * sizeof(double));
    return TG_OK;
}

static tg_status picky_vjp(const tg_custom_call *c)
{
    if (*(const int *)c->user == 2) {
        snprintf(c->msg, c->msg_size, "the adjoint solver diverged");
        return TG_ENUMERIC;
    }
    if (*(const int *)c->user == 32) {
        memset(c->msg, 'x', c->msg_size);
        return TG_ENUMERIC;
    }
    const double *dy = c->dy;
    double *dx = c->dx[0];
    for (size_t i = 0; dx && i < tg_tensor_numel(c->out); i++)
        dx[i] += dy[i];
    return TG_OK;
}

static const tg_custom_op PICKY = {.name = "picky", .forward = picky_forward, .vjp = picky_vjp};

/* err is `prefix`, the callback's run of 'x' cut at the end of its buffer, then the node. */
static void expect_unterminated_message_cut(const char *err, const char *prefix)
{
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "%s", err);
    size_t run = strspn(err + strlen(prefix), "x");
    cr_expect(run > 0 && run < 4096, "a run of %zu", run);
    cr_expect_str_eq(err + strlen(prefix) + run, " (node 0)");
}

Test(custom, forward_errors_become_the_tapes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true);
    int mode = 1;
    expect_fail(tape, tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3)), TG_ESHAPE,
                "picky: forward: input has 3 elements, wants 2 (node 0)");
    ts_assert_has(tg_last_error(), "picky: forward: input has 3 elements");
    mode = 11;
    expect_fail(tape, tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3)), TG_EINVAL,
                "picky: forward: it returned 5, which is no tg_status");
    mode = 20;
    expect_fail(tape, tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3)), TG_EDTYPE,
                "picky: forward: it returned TG_EDTYPE");
    mode = 30;
    cr_expect_null(tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3)));
    expect_unterminated_message_cut(tg_tape_error(tape), "picky: forward: ");
    tg_tape_reset(tape);
    /* After a reset the tape works again. */
    mode = 0;
    cr_expect_not_null(tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3)));
    tg_tensor_free(x);
    tg_tape_free(tape);
}

Test(custom, vjp_errors_become_the_tapes)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true);
    int mode = 2;
    tg_tensor *y = tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3));
    tg_tensor *loss = tg_sum(tape, tg_square(tape, y), TG_ALL_AXES, false);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    cr_expect_eq(tg_backward(tape, loss), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "picky: backward: the adjoint solver diverged (node 0)");
    ts_assert_has(tg_last_error(), "the adjoint solver diverged");
    /* tg_grad says the same. */
    tg_tape_reset(tape);
    y = tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3));
    loss = tg_sum(tape, y, TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_expect_eq(tg_grad(tape, loss, &x, 1, &g), TG_ENUMERIC);
    cr_expect_null(g);
    /* With a VJP that works, the same graph differentiates: d sum(x^2)/dx = 2x. */
    tg_tape_reset(tape);
    tg_tensor_zero_grad(x);
    mode = 0;
    y = tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3));
    loss = tg_sum(tape, tg_square(tape, y), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    ts_assert_grad(x, TS_VALS(2, 4, 6), 3, 0, 0, "2x");
    /* A message without a NUL is cut at the end of its buffer. */
    tg_tape_reset(tape);
    mode = 32;
    y = tg_custom(tape, &PICKY, &mode, &x, 1, 1, TS_SHAPE(3));
    loss = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_expect_eq(tg_backward(tape, loss), TG_ENUMERIC);
    expect_unterminated_message_cut(tg_tape_error(tape), "picky: backward: ");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* meddler: y = 2x, whose VJP (dx += 2 dy) first does something to the tape being
 * differentiated, by mode: 1 records 5000 nodes on it (the node list must grow, and moves), 2
 * runs a backward on it, 3 a tg_grad, 4 resets it and records. */
typedef struct meddle {
    tg_tape *tape;
    tg_tensor *x, *other; /* a leaf of the recording, and an output to differentiate */
    int mode;
} meddle;

static tg_status double_forward(const tg_custom_call *c)
{
    for (size_t i = 0; i < tg_tensor_numel(c->out); i++)
        add_at(c->out, c->y, i, 2 * at(c->in[0], tg_tensor_data_const(c->in[0]), i));
    return TG_OK;
}

static tg_status meddling_vjp(const tg_custom_call *c)
{
    meddle *m = c->user;
    tg_tensor *g = NULL;
    switch (m->mode) {
    case 1:
        for (int i = 0; i < 5000; i++)
            (void)tg_exp(m->tape, m->x);
        break;
    case 2: (void)tg_backward(m->tape, m->other); break;
    case 3:
        (void)tg_grad(m->tape, m->other, &m->x, 1, &g);
        tg_tensor_free(g);
        break;
    case 4:
        tg_tape_reset(m->tape);
        for (int i = 0; i < 100; i++) /* over what the reset gave back: the node's ext */
            (void)tg_exp(m->tape, m->x);
        break;
    }
    for (size_t i = 0; c->dx[0] && i < tg_tensor_numel(c->out); i++)
        add_at(c->out, c->dx[0], i, 2 * at(c->out, c->dy, i));
    return TG_OK;
}

static const tg_custom_op MEDDLER = {
    .name = "meddler", .forward = double_forward, .vjp = meddling_vjp};

/* A VJP callback that uses the tape it runs on pulls the node list, the pass or the recording
 * from under the walk (a use after free once the list moves; a walk that skips what it has
 * not reached, or a capture switched off, a gradient silently wrong): the walk stops with an
 * error naming the op. With the tape left alone the same graph differentiates. */
Test(custom, vjp_that_uses_its_tape_is_an_error)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    for (int mode = 0; mode <= 4; mode++) {
        for (int use_grad = 0; use_grad < 2; use_grad++) {
            tg_tape_reset(tape);
            tg_tensor_zero_grad(x);
            meddle m = {tape, x, NULL, mode};
            /* loss = sum(meddler(exp(x))) = 2 sum(exp(x)): the op is the walk's second node */
            tg_tensor *e = tg_exp(tape, x);
            tg_tensor *y = tg_custom(tape, &MEDDLER, &m, &e, 1, 1, TS_SHAPE(2));
            tg_tensor *loss = tg_sum(tape, y, TG_ALL_AXES, false);
            m.other = tg_sum(tape, e, TG_ALL_AXES, false);
            cr_assert_not_null(m.other, "%s", tg_tape_error(tape));
            tg_tensor *g = NULL;
            tg_status st = use_grad ? tg_grad(tape, loss, &x, 1, &g) : tg_backward(tape, loss);
            if (mode == 0) {
                cr_assert_eq(st, TG_OK, "%s", tg_last_error());
                const double *want = TS_VALS(2 * exp(1.0), 2 * exp(2.0)); /* 2 exp(x) */
                if (use_grad)
                    ts_assert_values(g, want, 2, 0, 1e-14, "d loss / dx (grad)");
                else
                    ts_assert_grad(x, want, 2, 0, 1e-14, "d loss / dx (backward)");
                tg_tensor_free(g);
                continue;
            }
            cr_expect_eq(st, TG_EINVAL, "mode %d, %s: %d", mode, use_grad ? "grad" : "backward",
                         st);
            cr_expect_null(g);
            ts_assert_has(tg_tape_error(tape), "meddler: backward: the VJP callback used the "
                                               "tape being differentiated");
            ts_assert_has(tg_tape_error(tape), "(node 1)");
        }
    }
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* resetter: y = 2x whose forward (when *user is 1) or vjp_graph (when 2) resets the tape it is
 * called on; its vjp_graph gives dx = 2 dy. */
static tg_status resetting_forward(const tg_custom_call *c)
{
    meddle *m = c->user;
    tg_status st = double_forward(c);
    if (m->mode == 1)
        tg_tape_reset(m->tape);
    return st;
}

static tg_status resetting_vjp_graph(const tg_custom_grad_call *c)
{
    meddle *m = c->user;
    c->dx[0] = tg_scale(c->tape, c->dy, 2);
    if (m->mode == 2) {
        tg_tape_reset(m->tape);
        for (int i = 0; i < 100; i++) /* what a callback may record next, over the walk's data */
            (void)tg_exp(m->tape, m->x);
    }
    return TG_OK;
}

static const tg_custom_op RESETTER = {
    .name = "resetter", .forward = resetting_forward, .vjp_graph = resetting_vjp_graph};

/* A forward or vjp_graph that resets the tape it is called on leaves the node (and
 * tg_grad_graph's gradients so far) another recording's: an error naming the op, whether the
 * forward runs in tg_custom or in a replay. */
Test(custom, callback_that_resets_its_tape_is_an_error)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true);
    meddle m = {tape, x, NULL, 1};
    tg_tensor *e = tg_exp(tape, x);
    cr_expect_null(tg_custom(tape, &RESETTER, &m, &e, 1, 1, TS_SHAPE(3)));
    cr_expect_eq(tg_tape_status(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape),
                  "resetter: forward: the callback reset the tape it was called on");
    /* in a replay */
    tg_tape_reset(tape);
    m.mode = 0;
    e = tg_exp(tape, x);
    tg_tensor *y = tg_custom(tape, &RESETTER, &m, &e, 1, 1, TS_SHAPE(3));
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, y, e), TG_ALL_AXES, false);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    m.mode = 1;
    cr_expect_eq(tg_tape_replay(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "resetter: forward: the callback reset the tape");
    /* in tg_grad_graph's walk: loss = sum(2 e^2), d loss / dx = 4 e^2x */
    tg_tape_reset(tape);
    m.mode = 0;
    e = tg_exp(tape, x);
    y = tg_custom(tape, &RESETTER, &m, &e, 1, 1, TS_SHAPE(3));
    loss = tg_sum(tape, tg_mul(tape, y, e), TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad_graph(tape, loss, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    ts_assert_values(g, TS_VALS(4 * exp(2.0), 4 * exp(4.0), 4 * exp(6.0)), 3, 0, 1e-14, "4e^2x");
    m.mode = 2;
    cr_expect_eq(tg_grad_graph(tape, loss, &x, 1, NULL, &g), TG_EINVAL);
    cr_expect_null(g);
    ts_assert_has(tg_tape_error(tape),
                  "resetter: vjp_graph: the callback reset the tape it was called on");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* replayer: y = 2x whose forward replays the tape it is called on (the replay would run that
 * forward again, and so on without end), noting what the replay said. */
static tg_status replaying_forward(const tg_custom_call *c)
{
    meddle *m = c->user;
    m->mode = tg_tape_replay(m->tape);
    return double_forward(c);
}

static const tg_custom_op REPLAYER = {.name = "replayer", .forward = replaying_forward};

/* A forward that replays its own tape is refused that replay, in tg_custom and in a replay
 * from outside alike; the forward itself goes on, and its values stand. */
Test(custom, forward_that_replays_its_tape_is_refused)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), false);
    meddle m = {tape, x, NULL, -1};
    tg_tensor *y = tg_custom(tape, &REPLAYER, &m, &x, 1, 1, TS_SHAPE(2));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect_eq(m.mode, TG_EINVAL);
    ts_assert_has(tg_last_error(), "replay: called from a custom op's forward on its own tape");
    ts_assert_values(y, TS_VALS(2, 4), 2, 0, 0, "2x");
    m.mode = -1;
    cr_expect_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    cr_expect_eq(m.mode, TG_EINVAL);
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* An op without a VJP: a gradient flowing into it is an error naming it, never a silent
 * zero; with its inputs detached, it is a constant and the rest of the graph differentiates. */
Test(custom, no_vjp_is_a_clear_error_when_reached)
{
    static const tg_custom_op fwd_only = {
        .name = "table_lookup", .forward = picky_forward, .vjp = NULL};
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    int mode = 0;
    tg_tensor *y = tg_custom(tape, &fwd_only, &mode, &x, 1, 1, TS_SHAPE(2));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect(tg_tensor_requires_grad(y), "its input requires grad");
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, y, x), TG_ALL_AXES, false);
    cr_expect_eq(tg_backward(tape, loss), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "table_lookup: backward: this custom op has no VJP");
    ts_assert_has(tg_tape_error(tape), "tg_detach");

    tg_tape_reset(tape);
    tg_tensor_zero_grad(x);
    y = tg_custom(tape, &fwd_only, &mode, (tg_tensor *[]){tg_detach(tape, x)}, 1, 1, TS_SHAPE(2));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_expect(!tg_tensor_requires_grad(y));
    loss = tg_sum(tape, tg_mul(tape, y, x), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    ts_assert_grad(x, TS_VALS(1, 2), 2, 0, 0, "d sum(c * x)/dx = c");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* ---- gradcheck ----------------------------------------------------------------------------- */

/* A wrong VJP: 2 k x^2 where 3 k x^2 is right. */
static tg_status wrong_cube_vjp(const tg_custom_call *c)
{
    const double k = *(const double *)c->user;
    const double *x = tg_tensor_data_const(c->in[0]), *dy = c->dy;
    double *dx = c->dx[0];
    for (size_t i = 0; dx && i < tg_tensor_numel(c->out); i++)
        dx[i] += dy[i] * 2 * k * x[i] * x[i];
    return TG_OK;
}

static const tg_custom_op WRONG_CUBE = {
    .name = "cube", .forward = cube_forward, .vjp = wrong_cube_vjp};

/* f(a, b) = sum(tanh(outer(op(a), b))), op (a cube, right or wrong) = ud, k = 0.75. */
static tg_tensor *check_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    static double k = 0.75;
    const tg_custom_op *op = ud;
    tg_tensor *c = tg_custom(tape, op, &k, in, 1, tg_tensor_rank(in[0]), tg_tensor_shape(in[0]));
    return tg_sum(tape, tg_tanh(tape, outer(tape, c, in[1])), TG_ALL_AXES, false);
}

Test(custom, gradcheck_passes_a_right_vjp_and_fails_a_wrong_one)
{
    tg_tensor *in[2] = {ts_vec(TG_F64, 3, TS_VALS(0.5, -1.1, 0.8), true),
                        ts_vec(TG_F64, 2, TS_VALS(0.3, -0.7), true)};
    double err[2] = {0};
    tg_status st = tg_gradcheck(check_fn, (void *)&CUBE, in, 2, NULL, err);
    cr_expect_eq(st, TG_OK, "%s (errors %g %g)", tg_last_error(), err[0], err[1]);
    cr_expect(err[0] < 1e-7 && err[1] < 1e-7, "errors %g %g", err[0], err[1]);
    st = tg_gradcheck(check_fn, (void *)&WRONG_CUBE, in, 2, NULL, err);
    cr_expect_eq(st, TG_ENUMERIC, "a wrong VJP passed the check");
    cr_expect_gt(err[0], 0.01, "the error is in a's gradient: %g", err[0]);
    cr_expect_lt(err[1], 1e-7, "b's gradient does not go through the wrong VJP: %g", err[1]);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
}

/* ---- the graph: dot, fingerprint, anomaly ------------------------------------------------ */

Test(custom, dot_graph_names_the_op)
{
    static const tg_custom_op odd = {
        .name = "a<b>&\"c\"", .forward = cube_forward, .vjp = cube_vjp};
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *b = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false);
    double k = 1;
    tg_tensor *c = tg_custom(tape, &odd, &k, &x, 1, 1, TS_SHAPE(2));
    cr_assert_not_null(outer(tape, cube(tape, &k, c), b), "%s", tg_tape_error(tape));
    char *dot = NULL;
    size_t len = 0;
    cr_assert_eq(tg_dot_string(tape, NULL, &dot, &len), TG_OK, "%s", tg_last_error());
    ts_assert_has(dot, "n0 a&lt;b&gt;&amp;&quot;c&quot;<BR/>[2] f64"); /* escaped */
    ts_assert_has(dot, "n1 cube<BR/>[2] f64");
    ts_assert_has(dot, "n2 outer<BR/>[2,3] f64");
    ts_assert_has(dot, "n1 -> n2 [headlabel=\"a\"]"); /* ordered operands */
    ts_assert_has(dot, "-> n2 [style=dashed");        /* b requires no grad */
    ts_assert_lacks(dot, "custom");                   /* the op's own name, not the table's */
    tg_dot_string_free(dot);
    tg_tensor_free(x);
    tg_tensor_free(b);
    tg_tape_free(tape);
}

/* Two graphs that differ only in the custom op's name differ in fingerprint; the same graph
 * recorded again has the same one. */
Test(custom, fingerprint_hashes_the_name)
{
    static const tg_custom_op cube2 = {.name = "cube2", .forward = cube_forward, .vjp = cube_vjp};
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    double k = 1;
    uint64_t h[3];
    const tg_custom_op *ops[3] = {&CUBE, &cube2, &CUBE};
    for (int i = 0; i < 3; i++) {
        tg_tape_reset(tape);
        tg_tensor *y = tg_custom(tape, ops[i], &k, &x, 1, 1, TS_SHAPE(2));
        cr_assert_not_null(tg_sum(tape, y, TG_ALL_AXES, false), "%s", tg_tape_error(tape));
        h[i] = tg_tape_fingerprint(tape);
    }
    cr_expect_neq(h[0], h[1], "cube and cube2 hash alike");
    cr_expect_eq(h[0], h[2], "the same graph hashes differently");
    /* And the output shape is part of it. */
    tg_tape_reset(tape);
    static const tg_custom_op lazy = {.name = "cube", .forward = lazy_forward, .vjp = NULL};
    tg_tensor *y = tg_custom(tape, &lazy, NULL, &x, 1, 2, TS_SHAPE(2, 1));
    cr_assert_not_null(tg_sum(tape, y, TG_ALL_AXES, false), "%s", tg_tape_error(tape));
    cr_expect_neq(tg_tape_fingerprint(tape), h[0]);
    tg_tensor_free(x);
    tg_tape_free(tape);
}

/* mylog: y = log(x) by the C library, dx += dy / x: NaN for x < 0 and an infinite gradient at
 * x = 0, which anomaly mode reports with the op's name. */
static tg_status mylog_forward(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]);
    double *y = c->y;
    for (size_t i = 0; i < tg_tensor_numel(c->out); i++)
        y[i] = log(x[i]);
    return TG_OK;
}

static tg_status mylog_vjp(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]), *dy = c->dy;
    double *dx = c->dx[0];
    for (size_t i = 0; dx && i < tg_tensor_numel(c->out); i++)
        dx[i] += dy[i] / x[i];
    return TG_OK;
}

static const tg_custom_op MYLOG = {.name = "mylog", .forward = mylog_forward, .vjp = mylog_vjp};

Test(custom, anomaly_mode_names_the_op)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_anomaly(tape, true);
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, -1), true);
    cr_expect_null(tg_custom(tape, &MYLOG, NULL, &x, 1, 1, TS_SHAPE(2)));
    cr_expect_eq(tg_tape_status(tape), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape),
                  "anomaly: mylog produced NaN or Inf at node 0 (input shapes [2])");
    tg_tape_reset(tape);

    /* exp(mylog(x)) at x = 0 is a finite forward (exp(-inf) = 0), recorded without anomaly
     * mode; its gradient through mylog is dy / x = 0 / 0 = NaN, which backward reports. */
    tg_tensor_set(x, 1, 0);
    tg_tape_set_anomaly(tape, false);
    tg_tensor *y = tg_custom(tape, &MYLOG, NULL, &x, 1, 1, TS_SHAPE(2));
    tg_tensor *loss = tg_sum(tape, tg_exp(tape, y), TG_ALL_AXES, false);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    tg_tape_set_anomaly(tape, true);
    cr_expect_eq(tg_backward(tape, loss), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "anomaly: backward of mylog at node 0");
    tg_tensor_free(x);
    tg_tape_free(tape);
}
