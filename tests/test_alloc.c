/* test_alloc.c: out-of-memory paths. Each scenario runs with allocation attempt N failing,
 * for N = 1, 2, ... until the operation completes without reaching attempt N. For every N
 * the operation must either succeed with correct results or fail with TG_ENOMEM and a
 * message about memory; after everything is freed no block and no byte may be outstanding;
 * and the library must still work afterwards. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"

/* Each scenario runs once with allocation n failing (it arms the hook itself, around the part
 * under test) and returns 1 when that part failed, 0 when it succeeded; at least min_failing
 * runs must fail. */
static size_t drive(const char *what, ts_oom_fn fn, size_t min_failing)
{
    return ts_oom_drive(what, fn, NULL,
                        (ts_oom_opts){.min_failing = min_failing, .max_runs = 2000});
}

/* ---- tapes and leaves ------------------------------------------------------------------------ */

static size_t scenario_tape_new(size_t n, void *ud)
{
    (void)ud;
    ts_alloc_fail_at(n);
    tg_tape *tape = tg_tape_new();
    ts_alloc_fail_at(0);
    if (!tape) {
        ts_assert_enomem(tg_last_status(), "tape_new", n);
        return 1;
    }
    /* Usable, even if something inside could not be reserved. */
    tg_tensor *c = tg_scalar(tape, TG_F64, 2.0);
    cr_assert_eq(tg_tensor_item(tg_exp(tape, c)), exp(2.0));
    tg_tape_free(tape);
    return 0;
}

Test(alloc, tape_new)
{
    drive("tape_new", scenario_tape_new, 1);
}

static int leaf_kind;
static double leaf_mem[12];

static tg_tensor *make_leaf(int kind)
{
    static const size_t shape[2] = {3, 4};
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    switch (kind) {
    case 0: return tg_tensor_zeros(TG_F64, 2, shape);
    case 1: return tg_tensor_full(TG_F32, 2, shape, 1.5);
    case 2: return tg_tensor_scalar(TG_F64, 3.0);
    case 3: return tg_tensor_from_data(TG_F64, 2, shape, leaf_mem);
    case 4: return tg_tensor_from_f64(TG_F32, 2, shape, leaf_mem);
    case 5: return tg_tensor_wrap(TG_F64, 2, shape, leaf_mem);
    case 6: return tg_tensor_randn(TG_F64, 2, shape, &rng, 0, 1);
    default: return tg_tensor_rand(TG_F32, 2, shape, &rng, 0, 1);
    }
}

static size_t scenario_leaf(size_t n, void *ud)
{
    (void)ud;
    ts_alloc_fail_at(n);
    tg_tensor *t = make_leaf(leaf_kind);
    ts_alloc_fail_at(0);
    if (!t) {
        ts_assert_enomem(tg_last_status(), "leaf", n);
        return 1;
    }
    cr_assert_eq(tg_tensor_numel(t), leaf_kind == 2 ? 1 : 12);
    tg_tensor_free(t);
    return 0;
}

Test(alloc, leaves)
{
    for (int i = 0; i < 12; i++)
        leaf_mem[i] = i;
    for (leaf_kind = 0; leaf_kind < 8; leaf_kind++) {
        char what[32];
        snprintf(what, sizeof what, "leaf kind %d", leaf_kind);
        drive(what, scenario_leaf, 1);
    }
}

/* ---- names --------------------------------------------------------------------------------- */

static size_t scenario_leaf_name(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *t = tg_tensor_scalar(TG_F64, 1);
    cr_assert_eq(tg_tensor_set_name(t, "old"), TG_OK);
    ts_alloc_fail_at(n);
    tg_status st = tg_tensor_set_name(t, "a new and longer name");
    ts_alloc_fail_at(0);
    bool ok = st == TG_OK;
    if (!ok) {
        ts_assert_enomem(st, "leaf name", n);
        cr_assert_str_eq(tg_tensor_name(t), "old", "the old name stays");
    } else {
        cr_assert_str_eq(tg_tensor_name(t), "a new and longer name");
    }
    cr_assert_eq(tg_tensor_set_name(t, "works again"), TG_OK);
    tg_tensor_free(t);
    return !ok;
}

Test(alloc, leaf_name)
{
    drive("leaf name", scenario_leaf_name, 1);
}

/* A tape tensor's name goes into the tape's arena, which allocates only when its block is
 * full: fill one with a node of `fill_bytes` bytes of data first. */
static size_t fill_bytes;

static size_t scenario_tape_name(size_t n, void *ud)
{
    (void)ud;
    tg_tape *tape = tg_tape_new();
    size_t numel = fill_bytes / 8;
    tg_tensor *x = tg_tensor_zeros(TG_F64, 1, &numel);
    tg_tensor *y = tg_neg(tape, x);
    cr_assert_not_null(y);
    ts_alloc_fail_at(n);
    tg_status st = tg_tensor_set_name(y, "hidden");
    ts_alloc_fail_at(0);
    bool ok = st == TG_OK;
    if (!ok) {
        ts_assert_enomem(st, "tape tensor name", n);
        cr_assert_null(tg_tensor_name(y));
    } else {
        cr_assert_str_eq(tg_tensor_name(y), "hidden");
    }
    cr_assert_eq(tg_tensor_set_name(y, "works again"), TG_OK);
    cr_assert_str_eq(tg_tensor_name(y), "works again");
    tg_tape_free(tape);
    tg_tensor_free(x);
    return !ok;
}

Test(alloc, tape_tensor_name)
{
    /* Whatever the arena's block size, one of these fills a block exactly. */
    size_t failing_runs = 0;
    for (fill_bytes = 1024; fill_bytes <= ((size_t)1 << 22); fill_bytes *= 2)
        failing_runs += drive("tape tensor name", scenario_tape_name, 0);
    cr_assert_geq(failing_runs, 1, "no arrangement made naming allocate");
}

/* ---- a composite graph --------------------------------------------------------------------- */

/* inputs: X (B,D), W (D,H), b (H), V (H,C) with B a multiple of 6 (for the reshape). Uses
 * matmul, broadcasting add/sub/mul/div, reductions (sum, mean, max, logsumexp), softmax and
 * log_softmax, reshape, transpose, unary ops and a constant: about 30 nodes. */
static tg_tensor *composite(tg_tape *tape, tg_tensor *const *in, size_t n_in, void *ud)
{
    (void)ud;
    (void)n_in;
    tg_tensor *X = in[0], *W = in[1], *b = in[2], *V = in[3];
    tg_tensor *h = tg_tanh(tape, tg_add(tape, tg_matmul(tape, X, W), b));
    tg_tensor *z = tg_matmul(tape, h, V);
    tg_tensor *p = tg_softmax(tape, z, 1);
    tg_tensor *lp = tg_log_softmax(tape, z, -1);
    tg_tensor *m = tg_max(tape, z, 1, true);
    tg_tensor *lse = tg_logsumexp(tape, tg_sub(tape, z, m), 1, false);
    const size_t rs[2] = {6, tg_tensor_dim(X, 0) / 6};
    tg_tensor *t = tg_transpose(tape, tg_reshape(tape, lse, 2, rs));
    tg_tensor *s1 = tg_sum(tape, tg_mul(tape, p, lp), TG_ALL_AXES, false);
    tg_tensor *s2 = tg_mean(tape, tg_square(tape, t), TG_ALL_AXES, false);
    tg_tensor *q = tg_div(tape, tg_sigmoid(tape, h),
                          tg_add_scalar(tape, tg_exp(tape, tg_scale(tape, h, 0.1)), 1.0));
    tg_tensor *s3 = tg_mean(tape, tg_sum(tape, q, 0, false), TG_ALL_AXES, false);
    tg_tensor *c = tg_scalar(tape, tg_tensor_dtype(X), 0.5);
    return tg_add(tape, tg_add(tape, tg_neg(tape, s1), tg_mul(tape, s2, c)), s3);
}

#define N_IN 4
static size_t dims[4] = {48, 40, 56, 10}; /* B, D, H, C: tens of KiB per tensor */

/* The same inputs every time (a fixed seed); X needs no gradient, the others do. */
static void make_inputs(tg_tensor **in)
{
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    const size_t sx[2] = {dims[0], dims[1]}, sw[2] = {dims[1], dims[2]}, sb[1] = {dims[2]},
                 sv[2] = {dims[2], dims[3]};
    in[0] = tg_tensor_randn(TG_F64, 2, sx, &rng, 0, 1);
    in[1] = tg_tensor_randn(TG_F64, 2, sw, &rng, 0, 0.3);
    in[2] = tg_tensor_randn(TG_F64, 1, sb, &rng, 0, 0.1);
    in[3] = tg_tensor_randn(TG_F64, 2, sv, &rng, 0, 0.3);
    for (int i = 0; i < N_IN; i++) {
        cr_assert_not_null(in[i], "%s", tg_last_error());
        tg_tensor_set_requires_grad(in[i], i != 0);
    }
}

static void free_inputs(tg_tensor **in)
{
    for (int i = 0; i < N_IN; i++)
        tg_tensor_free(in[i]);
}

/* Reference results, computed without the hook. */
static double ref_y;
static double ref_grad[N_IN][48 * 56];
static double ref_params[N_IN][48 * 56]; /* after STEPS training steps */
#define STEPS 3
#define LR 0.1

static bool train(tg_tape *tape, tg_tensor **in)
{
    for (int step = 0; step < STEPS; step++) {
        tg_tensor *y = composite(tape, in, N_IN, NULL);
        if (!y || tg_backward(tape, y) != TG_OK)
            return false;
        for (int i = 1; i < N_IN; i++) {
            double *w = tg_tensor_data(in[i]);
            const double *g = tg_tensor_grad_data(in[i]);
            for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
                w[j] -= LR * g[j];
            tg_tensor_zero_grad(in[i]);
        }
        tg_tape_reset(tape);
    }
    return true;
}

/* Sets the problem size to the large default and computes the reference results. */
static void compute_reference(void)
{
    dims[0] = 48;
    dims[1] = 40;
    dims[2] = 56;
    dims[3] = 10;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = composite(tape, in, N_IN, NULL);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    ref_y = tg_tensor_item(y);
    cr_assert(isfinite(ref_y));
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    for (int i = 1; i < N_IN; i++) {
        cr_assert_leq(tg_tensor_numel(in[i]), 48 * 56);
        for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
            ref_grad[i][j] = tg_tensor_grad_get(in[i], j);
    }
    tg_tape_free(tape);
    free_inputs(in);

    make_inputs(in);
    tape = tg_tape_new();
    cr_assert(train(tape, in), "%s", tg_last_error());
    for (int i = 1; i < N_IN; i++)
        for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
            ref_params[i][j] = tg_tensor_get(in[i], j);
    tg_tape_free(tape);
    free_inputs(in);
}

static void assert_leaf_grads(tg_tensor **in, const char *what, size_t n)
{
    for (int i = 1; i < N_IN; i++)
        for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
            cr_assert_eq(tg_tensor_grad_get(in[i], j), ref_grad[i][j],
                         "%s, allocation %zu failing: input %d element %zu", what, n, i, j);
    cr_assert_null(tg_tensor_grad_data(in[0]), "X needs no gradient");
}

static size_t scenario_record(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_tape *tape = tg_tape_new();
    ts_alloc_fail_at(n);
    tg_tensor *y = composite(tape, in, N_IN, NULL);
    ts_alloc_fail_at(0);
    bool ok = y != NULL;
    if (!ok) {
        ts_assert_enomem(tg_tape_status(tape), "recording", n);
        ts_assert_has(tg_tape_error(tape), "out of memory");
        ts_assert_enomem(tg_last_status(), "recording", n);
        /* The tape works again after a reset. */
        tg_tape_reset(tape);
        y = composite(tape, in, N_IN, NULL);
        cr_assert_not_null(y, "%s", tg_tape_error(tape));
    }
    cr_assert_eq(tg_tensor_item(y), ref_y, "allocation %zu failing", n);
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    assert_leaf_grads(in, "recording", n);
    tg_tape_free(tape);
    free_inputs(in);
    return !ok;
}

Test(alloc, recording)
{
    compute_reference();
    drive("recording", scenario_record, 3);
}

static size_t scenario_backward(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = composite(tape, in, N_IN, NULL);
    cr_assert_not_null(y);
    ts_alloc_fail_at(n);
    tg_status st = tg_backward(tape, y);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "backward", n);
        cr_assert_eq(tg_tape_status(tape), TG_ENOMEM);
        /* The recording keeps its error; a reset and a new recording work. Leaf grads may
         * hold part of the failed pass: zero them, as after any step. */
        cr_assert_eq(tg_backward(tape, y), TG_ENOMEM);
        for (int i = 0; i < N_IN; i++)
            tg_tensor_zero_grad(in[i]);
        tg_tape_reset(tape);
        y = composite(tape, in, N_IN, NULL);
        cr_assert_not_null(y);
        cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    }
    assert_leaf_grads(in, "backward", n);
    tg_tape_free(tape);
    free_inputs(in);
    return st != TG_OK;
}

Test(alloc, backward)
{
    compute_reference();
    drive("backward", scenario_backward, 3); /* leaf grads and arena blocks */
}

/* tg_grad in the inputs that require grad: X (in[0]) does not, and y depends on it, so asking
 * for its gradient is an error (test_grad_inputs.c), not an allocation. */
static size_t scenario_grad(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = composite(tape, in, N_IN, NULL);
    cr_assert_not_null(y);
    tg_tensor *out[N_IN - 1];
    for (int i = 0; i < N_IN - 1; i++)
        out[i] = (tg_tensor *)&out;
    ts_alloc_fail_at(n);
    tg_status st = tg_grad(tape, y, in + 1, N_IN - 1, out);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "grad", n);
        for (int i = 0; i < N_IN - 1; i++) {
            cr_assert_null(out[i], "grad failed but out[%d] is set", i);
            cr_assert_null(tg_tensor_grad_data(in[i + 1]), "leaf grads untouched");
        }
        tg_tape_reset(tape);
        y = composite(tape, in, N_IN, NULL);
        cr_assert_not_null(y);
        cr_assert_eq(tg_grad(tape, y, in + 1, N_IN - 1, out), TG_OK, "%s", tg_last_error());
    }
    for (int i = 1; i < N_IN; i++)
        for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
            cr_assert_eq(tg_tensor_get(out[i - 1], j), ref_grad[i][j]);
    for (int i = 0; i < N_IN - 1; i++) {
        cr_assert_null(tg_tensor_grad_data(in[i + 1]), "leaf grads untouched");
        tg_tensor_free(out[i]);
    }
    tg_tape_free(tape);
    free_inputs(in);
    return st != TG_OK;
}

Test(alloc, grad)
{
    compute_reference();
    drive("grad", scenario_grad, 3);
}

static size_t scenario_train(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_tape *tape = tg_tape_new();
    ts_alloc_fail_at(n);
    bool ok = train(tape, in);
    ts_alloc_fail_at(0);
    if (!ok) {
        tg_status st = tg_tape_status(tape) != TG_OK ? tg_tape_status(tape) : tg_last_status();
        ts_assert_enomem(st, "training", n);
    } else {
        for (int i = 1; i < N_IN; i++)
            for (size_t j = 0; j < tg_tensor_numel(in[i]); j++)
                cr_assert_eq(tg_tensor_get(in[i], j), ref_params[i][j],
                             "allocation %zu failing: input %d element %zu", n, i, j);
    }
    tg_tape_free(tape);
    free_inputs(in);
    return !ok;
}

Test(alloc, training_steps)
{
    /* Record, backward, update and reset three times: allocation failures anywhere, including
     * the arena reservations a reset makes. */
    compute_reference();
    drive("training", scenario_train, 3);
}

static size_t scenario_gradcheck(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *in[N_IN];
    make_inputs(in);
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.tol = 1e-6;
    double max_err[N_IN] = {0};
    ts_alloc_fail_at(n);
    tg_status st = tg_gradcheck(composite, NULL, in, N_IN, &opt, max_err);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, "gradcheck", n);
    } else {
        for (int i = 0; i < N_IN; i++)
            cr_assert(max_err[i] <= 1e-6, "input %d: error %g", i, max_err[i]);
    }
    free_inputs(in);
    return st != TG_OK;
}

Test(alloc, gradcheck)
{
    /* A small instance: every element is checked by two recordings. */
    dims[0] = 6;
    dims[1] = 3;
    dims[2] = 4;
    dims[3] = 2;
    drive("gradcheck", scenario_gradcheck, 3);
}

/* ---- recorded gradients ---------------------------------------------------------------------- */

/* The Hessian of f = sum(op(a, b)) in (a, b) for every binary op, a = (0, 1.5) holding the 0 where
 * pow_tensor's recorded gradient takes its own branch, b = (2, 0.5): four 2 x 2 blocks each. */
static tg_tensor *(*const binary_ops[])(tg_tape *, tg_tensor *, tg_tensor *) = {
    tg_add, tg_sub, tg_mul, tg_div, tg_pow_tensor, tg_atan2, tg_minimum, tg_maximum};
#define N_BINARY (sizeof binary_ops / sizeof binary_ops[0])
static double hessian_ref[N_BINARY][16];

/* One op's Hessian on tape into h (16 values): TG_OK, or the error. */
static tg_status binary_hessian(tg_tape *tape, size_t op, tg_tensor *const *ab, double *h)
{
    tg_tensor *f = tg_sum(tape, binary_ops[op](tape, ab[0], ab[1]), TG_ALL_AXES, false);
    tg_tensor *blocks[4] = {NULL};
    tg_status st = f ? tg_hessian(tape, f, ab, 2, blocks) : tg_tape_status(tape);
    for (int k = 0; k < 4; k++) {
        for (size_t e = 0; st == TG_OK && e < 4; e++)
            h[4 * k + e] = tg_tensor_get(blocks[k], e);
        tg_tensor_free(blocks[k]);
    }
    return st;
}

static size_t scenario_hessians(size_t n, void *ud)
{
    (void)ud;
    tg_tensor *ab[2] = {ts_vec(TG_F64, 2, TS_VALS(0, 1.5), true),
                        ts_vec(TG_F64, 2, TS_VALS(2, 0.5), true)};
    tg_tape *tapes[N_BINARY];
    for (size_t op = 0; op < N_BINARY; op++)
        cr_assert_not_null(tapes[op] = tg_tape_new());
    tg_status st[N_BINARY];
    double h[N_BINARY][16];
    ts_alloc_fail_at(n);
    for (size_t op = 0; op < N_BINARY; op++)
        st[op] = binary_hessian(tapes[op], op, ab, h[op]);
    ts_alloc_fail_at(0);
    size_t failed = 0;
    for (size_t op = 0; op < N_BINARY; op++) {
        if (st[op] != TG_OK) {
            ts_assert_enomem(st[op], "hessian", n);
            failed++;
        } else {
            cr_assert(memcmp(h[op], hessian_ref[op], sizeof h[op]) == 0,
                      "allocation %zu failing: op %zu's Hessian differs", n, op);
        }
        tg_tape_free(tapes[op]);
    }
    tg_tensor_free(ab[0]);
    tg_tensor_free(ab[1]);
    return failed;
}

Test(alloc, hessians_of_the_binary_ops)
{
    tg_tensor *ab[2] = {ts_vec(TG_F64, 2, TS_VALS(0, 1.5), true),
                        ts_vec(TG_F64, 2, TS_VALS(2, 0.5), true)};
    for (size_t op = 0; op < N_BINARY; op++) {
        tg_tape *tape = tg_tape_new();
        cr_assert_eq(binary_hessian(tape, op, ab, hessian_ref[op]), TG_OK, "op %zu: %s", op,
                     tg_last_error());
        tg_tape_free(tape);
    }
    tg_tensor_free(ab[0]);
    tg_tensor_free(ab[1]);
    drive("hessian", scenario_hessians, 8);
}
