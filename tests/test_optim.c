/* test_optim.c: every optimizer's first three steps against tabulated values (computed
 * independently from the update formulas, and the first steps by hand), in f64 and f32;
 * the state block's layout and checkpoint restore; schedules; clipping; bad options; an
 * end-to-end Adam descent; and the out-of-memory paths of tg_optim_new. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"
#include "tensor/tensor_impl.h" /* tg_tensor__alloc_grad: tests write gradients directly */

static const tg_dtype DTYPES[2] = {TG_F64, TG_F32};

/* The tiny problem: w0 = (1, -2); the gradients of steps 1, 2, 3 are G1, G2, G1. */
static const double W0[2] = {1.0, -2.0};
static const double G1[2] = {0.5, -1.0}, G2[2] = {-0.25, 2.0};

static void set_grad(tg_tensor *t, const double *g)
{
    void *p = tg_tensor__alloc_grad(t);
    cr_assert_not_null(p);
    for (size_t i = 0; i < tg_tensor_numel(t); i++) {
        if (tg_tensor_dtype(t) == TG_F32)
            ((float *)p)[i] = (float)g[i];
        else
            ((double *)p)[i] = g[i];
    }
}

/* Runs three steps of `opt` from W0 and compares w after each with want[step][0..1]. */
static void check_steps(const tg_optim_options *opt, const double want[3][2], const char *what)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        double tol = dt == TG_F64 ? 1e-14 : 2e-6;
        tg_tensor *w = ts_vec(dt, 2, W0, true);
        tg_optim *o = NULL;
        cr_assert_eq(tg_optim_new(opt, &w, 1, &o), TG_OK, "%s: %s", what, tg_last_error());
        const double *grads[3] = {G1, G2, G1};
        for (int s = 0; s < 3; s++) {
            set_grad(w, grads[s]);
            cr_assert_eq(tg_optim_step(o), TG_OK);
            cr_assert_eq(tg_optim_steps(o), (uint64_t)s + 1);
            ts_assert_values(w, want[s], 2, tol, tol, "%s (%s) step %d: w", what, tg_dtype_name(dt),
                             s + 1);
        }
        tg_optim_free(o);
        tg_tensor_free(w);
    }
}

Test(optim, sgd)
{
    /* w -= 0.1 g: (1 - 0.05, -2 + 0.1) = (0.95, -1.9); then + (0.025, -0.2); then - (0.05, -0.1). */
    static const double want[3][2] = {{0.95, -1.9}, {0.975, -2.1}, {0.925, -2.0}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.lr = 0.1;
    check_steps(&o, want, "sgd");
}

Test(optim, sgd_weight_decay)
{
    /* g += 0.1 w: step 1 g = (0.5 + 0.1, -1 - 0.2) = (0.6, -1.2), w = (0.94, -1.88). */
    static const double want[3][2] = {{0.94, -1.88},
                                      {0.95559999999999989, -2.0611999999999999},
                                      {0.89604399999999984, -1.940588}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    check_steps(&o, want, "sgd + weight decay");
}

Test(optim, momentum)
{
    /* v1 = g1 = (0.5, -1): w1 = (0.95, -1.9); v2 = 0.9 v1 + g2 = (0.2, 1.1): w2 = (0.93, -2.01). */
    static const double want[3][2] = {
        {0.95, -1.9}, {0.93, -2.01}, {0.86199999999999988, -2.0089999999999999}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_MOMENTUM; /* momentum 0 means the default 0.9 */
    o.lr = 0.1;
    check_steps(&o, want, "momentum");
    o.kind = TG_OPTIM_SGD; /* plain SGD with momentum set is the same */
    o.momentum = 0.9;
    check_steps(&o, want, "sgd with momentum");
}

Test(optim, momentum_weight_decay)
{
    static const double want[3][2] = {{0.94, -1.88},
                                      {0.90159999999999996, -1.9531999999999998},
                                      {0.80802399999999996, -1.8995479999999998}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_MOMENTUM;
    o.momentum = 0.9;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    check_steps(&o, want, "momentum + weight decay");
}

Test(optim, nesterov)
{
    /* v1 = g1; w1 = w0 - 0.1 (g1 + 0.9 v1) = 1 - 0.1 * 0.95 = 0.905 and -2 + 0.19 = -1.81;
     * v2 = (0.2, 1.1); w2 = w1 - 0.1 (g2 + 0.9 v2) = 0.905 - 0.1 (-0.07) = 0.912. */
    static const double want[3][2] = {
        {0.905, -1.81}, {0.912, -2.109}, {0.80079999999999996, -2.0080999999999998}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_MOMENTUM;
    o.momentum = 0.9;
    o.nesterov = true;
    o.lr = 0.1;
    check_steps(&o, want, "nesterov");
}

Test(optim, adam)
{
    /* Step 1: mhat = g1, vhat = g1^2, so w1 = w0 - 0.1 g1 / (|g1| + 1e-8)
     *   = 1 - 0.1 * 0.5 / 0.50000001 = 0.900000002, -2 + 0.1 / 1.00000001 = -1.900000001.
     * Step 2: m = 0.9 (0.05, -0.1) + 0.1 g2 = (0.02, 0.11), v = (0.00031225, 0.004999),
     *   mhat = m / 0.19, vhat = v / 0.001999. */
    static const double want[3][2] = {{0.90000000199999997, -1.900000001},
                                      {0.87336629870784632, -1.9366103534720749},
                                      {0.81541823196992069, -1.9363494284406464}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_ADAM;
    o.lr = 0.1;
    check_steps(&o, want, "adam");
}

Test(optim, adam_l2_weight_decay)
{
    /* Adam's weight_decay adds 0.1 w to g before the moments: step 1 g = (0.6, -1.2), and
     * the step is still lr * g / (|g| + eps) = (0.1 * 0.6 / 0.60000001, ...). */
    static const double want[3][2] = {{0.9000000016666666, -1.9000000008333333},
                                      {0.85444136746176247, -1.9250178784643248},
                                      {0.78498442214943465, -1.9112034222312764}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_ADAM;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    check_steps(&o, want, "adam + L2");
}

Test(optim, adamw_decoupled_weight_decay)
{
    /* w -= 0.1 * 0.1 * w first (1 -> 0.99, -2 -> -1.98), then Adam on the raw gradient:
     * w1 = 0.99 - 0.100000000 = 0.890000002, -1.98 + 0.1 = -1.880000001. */
    static const double want[3][2] = {{0.89000000199999996, -1.880000001},
                                      {0.85446629868784629, -1.8978103534620749},
                                      {0.78797356896304216, -1.8785713248960256}};
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_ADAMW;
    o.lr = 0.1;
    o.weight_decay = 0.1;
    check_steps(&o, want, "adamw");
}

Test(optim, state_layout_skip_and_checkpoint)
{
    /* Two leaves; Adam's block is m(a), m(b), v(a), v(b). */
    const double a0[2] = {1, 2}, b0[3] = {3, 4, 5}, ga[2] = {0.1, -0.2}, gb[3] = {1, 2, -3};
    tg_tensor *a = ts_vec(TG_F64, 2, a0, true), *b = ts_vec(TG_F64, 3, b0, true);
    tg_tensor *ps[2] = {a, b};
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    tg_optim *o;
    cr_assert_eq(tg_optim_new(&opt, ps, 2, &o), TG_OK);
    cr_assert_eq(tg_optim_state_size(o), 2 * 5 * sizeof(double));
    set_grad(a, ga);
    set_grad(b, gb);
    cr_assert_eq(tg_optim_step(o), TG_OK);
    const double *s = tg_optim_state(o);
    const double g[5] = {0.1, -0.2, 1, 2, -3};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(s[i], (1 - 0.9) * g[i], "m[%d]", i);
        cr_assert_eq(s[5 + i], (1 - 0.999) * g[i] * g[i], "v[%d]", i);
    }

    /* A checkpoint: a fresh optimizer given the state and the step count continues exactly. */
    double state[10], a1[2], b1[3];
    memcpy(state, s, sizeof state);
    tg_tensor_to_f64(a, a1);
    tg_tensor_to_f64(b, b1);
    cr_assert_eq(tg_optim_step(o), TG_OK);
    tg_tensor *a2 = ts_vec(TG_F64, 2, a1, true), *b2 = ts_vec(TG_F64, 3, b1, true);
    tg_tensor *ps2[2] = {a2, b2};
    tg_optim *o2;
    cr_assert_eq(tg_optim_new(&opt, ps2, 2, &o2), TG_OK);
    memcpy(tg_optim_state(o2), state, sizeof state);
    tg_optim_set_steps(o2, 1);
    set_grad(a2, ga);
    set_grad(b2, gb);
    cr_assert_eq(tg_optim_step(o2), TG_OK);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(tg_tensor_get(a2, i), tg_tensor_get(a, i));
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_get(b2, i), tg_tensor_get(b, i));
    cr_assert_eq(tg_optim_steps(o2), 2);

    /* A leaf without a grad buffer is skipped. */
    tg_tensor *c = ts_vec(TG_F64, 2, a0, true);
    tg_optim *o3;
    cr_assert_eq(tg_optim_new(&opt, &c, 1, &o3), TG_OK);
    cr_assert_eq(tg_optim_step(o3), TG_OK);
    cr_assert_eq(tg_tensor_get(c, 0), 1.0);
    cr_assert_eq(tg_tensor_get(c, 1), 2.0);
    cr_assert_eq(tg_optim_steps(o3), 1);

    /* Plain SGD keeps no state; the learning rate can be changed. */
    tg_optim_options sgd = TG_OPTIM_OPTIONS_INIT;
    tg_optim *o4;
    cr_assert_eq(tg_optim_new(&sgd, &c, 1, &o4), TG_OK);
    cr_assert_eq(tg_optim_state_size(o4), 0);
    cr_assert_null(tg_optim_state(o4));
    cr_assert_eq(tg_optim_lr(o4), 0.01);
    cr_assert_eq(tg_optim_set_lr(o4, 0.5), TG_OK);
    cr_assert_eq(tg_optim_lr(o4), 0.5);
    cr_assert_eq(tg_optim_set_lr(o4, -1), TG_EINVAL);
    cr_assert_eq(tg_optim_set_lr(o4, NAN), TG_EINVAL);
    cr_assert_eq(tg_optim_lr(o4), 0.5, "unchanged");

    tg_optim_free(o);
    tg_optim_free(o2);
    tg_optim_free(o3);
    tg_optim_free(o4);
    tg_optim_free(NULL);
    tg_tensor *all[] = {a, b, a2, b2, c};
    for (size_t i = 0; i < 5; i++)
        tg_tensor_free(all[i]);
}

Test(optim, kind_names)
{
    for (int k = TG_OPTIM_SGD; k <= TG_OPTIM_ADAMW; k++) {
        tg_optim_kind back;
        cr_assert_eq(tg_optim_kind_parse(tg_optim_kind_name((tg_optim_kind)k), &back), TG_OK);
        cr_assert_eq((int)back, k);
    }
    cr_assert_str_eq(tg_optim_kind_name(TG_OPTIM_ADAMW), "adamw");
    tg_optim_kind k;
    cr_assert_eq(tg_optim_kind_parse("rmsprop", &k), TG_EINVAL);
    ts_assert_has(tg_last_error(), "'rmsprop'");
}

static void expect_bad(const tg_optim_options *opt, tg_tensor *const *ps, size_t n,
                       tg_status want, const char *needle)
{
    tg_optim *o = (tg_optim *)&o;
    cr_assert_eq(tg_optim_new(opt, ps, n, &o), want, "%s: %s", needle, tg_last_error());
    cr_assert_null(o);
    ts_assert_has(tg_last_error(), needle);
}

Test(optim, bad_options_and_leaves)
{
    tg_tensor *w = ts_vec(TG_F64, 2, W0, true);
    tg_optim_options o;
#define BAD(field, value, needle)                                                                 \
    do {                                                                                          \
        o = (tg_optim_options)TG_OPTIM_OPTIONS_INIT;                                              \
        o.field = value;                                                                          \
        expect_bad(&o, &w, 1, TG_EINVAL, needle);                                                 \
    } while (0)
    BAD(lr, -0.1, "lr is -0.1");
    BAD(lr, NAN, "lr is nan");
    BAD(lr, INFINITY, "lr is inf");
    BAD(momentum, 1.0, "momentum is 1");
    BAD(momentum, -0.5, "momentum is -0.5");
    BAD(weight_decay, -1, "weight_decay is -1");
    BAD(nesterov, true, "nesterov needs momentum > 0");
    BAD(kind, (tg_optim_kind)9, "unknown optimizer kind 9");
    o = (tg_optim_options)TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_ADAM;
    o.nesterov = true;
    expect_bad(&o, &w, 1, TG_EINVAL, "not adam");
    o.nesterov = false;
    o.beta1 = 1.0;
    expect_bad(&o, &w, 1, TG_EINVAL, "beta1 1");
    o.beta1 = 0.9;
    o.beta2 = -0.1;
    expect_bad(&o, &w, 1, TG_EINVAL, "beta2 -0.1");
    o.beta2 = 0.999;
    o.eps = 0;
    expect_bad(&o, &w, 1, TG_EINVAL, "eps is 0");
#undef BAD

    o = (tg_optim_options)TG_OPTIM_OPTIONS_INIT;
    expect_bad(&o, NULL, 1, TG_EINVAL, "params is NULL");
    expect_bad(&o, &w, 0, TG_EINVAL, "n is 0");
    tg_tensor *with_null[2] = {w, NULL};
    expect_bad(&o, with_null, 2, TG_EINVAL, "params[1] is NULL");
    tg_tensor *twice[2] = {w, w};
    expect_bad(&o, twice, 2, TG_EINVAL, "the same leaf");
    tg_tensor *f = ts_vec(TG_F32, 2, W0, true);
    tg_tensor *mixed[2] = {w, f};
    expect_bad(&o, mixed, 2, TG_EDTYPE, "params[1] is f32");
    tg_tensor_set_requires_grad(f, false);
    tg_tensor_set_name(f, "frozen");
    expect_bad(&o, &f, 1, TG_EINVAL, "('frozen') is a leaf that does not require grad");
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_neg(tape, w);
    expect_bad(&o, &y, 1, TG_EINVAL, "not a leaf");
    tg_optim *out;
    cr_assert_eq(tg_optim_new(&o, &w, 1, NULL), TG_EINVAL);
    /* NULL options are the defaults. */
    cr_assert_eq(tg_optim_new(NULL, &w, 1, &out), TG_OK);
    cr_assert_eq(tg_optim_lr(out), 0.01);
    tg_optim_free(out);
    cr_assert_eq(tg_optim_step(NULL), TG_EINVAL);
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(f);
}

Test(optim, adam_minimizes_a_quadratic_model)
{
    /* An MLP (one identity layer) fit to y = x A + c by Adam on mse: the loss must fall by
     * orders of magnitude, through the model's blocks and tg_optim over its parameters. */
    for (int d = 0; d < 2; d++) {
        tg_mlp_spec s = TG_MLP_SPEC_INIT;
        s.n_layers = 1, s.sizes[0] = 3, s.sizes[1] = 2, s.dtype = DTYPES[d];
        tg_rng rng;
        tg_rng_seed(&rng, 5);
        tg_model *m;
        cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_NORMAL, &rng, &m), TG_OK);
        const size_t xs[2] = {16, 3}, ys[2] = {16, 2};
        tg_tensor *X = tg_tensor_randn(s.dtype, 2, xs, &rng, 0, 1), *Y = tg_tensor_zeros(s.dtype, 2, ys);
        for (size_t r = 0; r < 16; r++) {
            double x0 = tg_tensor_get(X, r * 3), x1 = tg_tensor_get(X, r * 3 + 1),
                   x2 = tg_tensor_get(X, r * 3 + 2);
            tg_tensor_set(Y, r * 2, 2 * x0 - x1 + 0.5);
            tg_tensor_set(Y, r * 2 + 1, x2 - 3 * x0 - 1);
        }
        tg_tensor *ps[2] = {tg_model_param(m, 0), tg_model_param(m, 1)};
        tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
        opt.kind = TG_OPTIM_ADAM;
        opt.lr = 0.05;
        tg_optim *o;
        cr_assert_eq(tg_optim_new(&opt, ps, 2, &o), TG_OK);
        tg_tape *tape = tg_tape_new();
        double first = 0, last = 0;
        for (int step = 0; step < 600; step++) {
            tg_model_zero_grad(m);
            tg_tensor *loss = tg_mse(tape, tg_model_forward(tape, m, X), Y);
            cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
            last = tg_tensor_item(loss);
            if (step == 0)
                first = last;
            cr_assert_eq(tg_optim_step(o), TG_OK);
            tg_tape_reset(tape);
        }
        cr_assert_lt(last, 1e-4 * first, "%s: loss %g -> %g", tg_dtype_name(s.dtype), first, last);
        tg_tape_free(tape);
        tg_optim_free(o);
        tg_model_free(m);
        tg_tensor_free(X);
        tg_tensor_free(Y);
    }
}

/* ---- schedules ------------------------------------------------------------------------------ */

Test(schedule, constant_step_cosine)
{
    tg_schedule s = TG_SCHEDULE_INIT;
    s.base = 0.1;
    cr_assert_eq(tg_schedule_lr(&s, 0), 0.1);
    cr_assert_eq(tg_schedule_lr(&s, 123456), 0.1);

    s.kind = TG_SCHEDULE_STEP;
    s.step_size = 10;
    s.gamma = 0.5;
    cr_assert_eq(tg_schedule_lr(&s, 0), 0.1);
    cr_assert_eq(tg_schedule_lr(&s, 9), 0.1);
    cr_assert_eq(tg_schedule_lr(&s, 10), 0.05);
    cr_assert_eq(tg_schedule_lr(&s, 25), 0.025);
    cr_assert_eq(tg_schedule_lr(&s, 30), 0.0125);

    s.kind = TG_SCHEDULE_COSINE;
    s.total = 100;
    s.min = 0.001;
    const struct {
        uint64_t step;
        double lr;
    } cos_cases[] = {
        {0, 0.1},
        {25, 0.085501785668734107}, /* 0.001 + 0.099 (1 + cos(pi/4)) / 2 */
        {50, 0.0505},               /* halfway: the mean of base and min */
        {75, 0.001 + 0.099 * (1 - 0.70710678118654752) / 2},
        {100, 0.001},
        {1000, 0.001}, /* past the end it stays at min */
    };
    for (size_t i = 0; i < sizeof cos_cases / sizeof *cos_cases; i++) {
        double got = tg_schedule_lr(&s, cos_cases[i].step);
        cr_assert(fabs(got - cos_cases[i].lr) < 1e-15, "cosine step %llu: %.17g, want %.17g",
                  (unsigned long long)cos_cases[i].step, got, cos_cases[i].lr);
    }
}

Test(schedule, invalid)
{
    tg_schedule s = TG_SCHEDULE_INIT;
    cr_assert_eq(tg_schedule_check(&s), TG_OK);
    s.kind = TG_SCHEDULE_STEP;
    s.step_size = 0;
    cr_assert(isnan(tg_schedule_lr(&s, 3)));
    cr_assert_eq(tg_last_status(), TG_EINVAL);
    ts_assert_has(tg_last_error(), "step_size is 0");
    s = (tg_schedule)TG_SCHEDULE_INIT;
    s.kind = TG_SCHEDULE_COSINE;
    s.total = 0;
    cr_assert_eq(tg_schedule_check(&s), TG_EINVAL);
    ts_assert_has(tg_last_error(), "total is 0");
    s.total = 10;
    s.base = 0.01;
    s.min = 0.02;
    cr_assert_eq(tg_schedule_check(&s), TG_EINVAL);
    ts_assert_has(tg_last_error(), "schedule: min 0.02 is above base 0.01");
    s.min = 0.01; /* equal: a constant rate */
    cr_assert_eq(tg_schedule_check(&s), TG_OK);
    s = (tg_schedule)TG_SCHEDULE_INIT;
    s.base = -1;
    cr_assert_eq(tg_schedule_check(&s), TG_EINVAL);
    s = (tg_schedule)TG_SCHEDULE_INIT;
    s.kind = (tg_schedule_kind)7;
    cr_assert_eq(tg_schedule_check(&s), TG_EINVAL);
    cr_assert(isnan(tg_schedule_lr(NULL, 0)));
}

/* ---- clipping ----------------------------------------------------------------------------- */

Test(clip, scales_above_max_norm_only)
{
    /* Grads (3, 4) and (12): the global norm is 13. */
    const double z2[2] = {0, 0}, z1[1] = {0}, g2[2] = {3, 4}, g1[1] = {12};
    for (int d = 0; d < 2; d++) {
        tg_tensor *a = ts_vec(DTYPES[d], 2, z2, true),
                  *b = ts_vec(TG_F64, 1, z1, true);       /* mixed dtypes */
        tg_tensor *none = ts_vec(DTYPES[d], 2, z2, true); /* no grad buffer: counts as zero */
        tg_tensor *ps[3] = {a, none, b};
        double norm = -1;
        set_grad(a, g2);
        set_grad(b, g1);
        cr_assert_eq(tg_clip_grad_norm(ps, 3, 20.0, &norm), TG_OK);
        cr_assert_eq(norm, 13.0);
        cr_assert_eq(tg_tensor_grad_get(a, 1), 4.0, "below max_norm: unchanged");
        cr_assert_eq(tg_clip_grad_norm(ps, 3, 13.0, &norm), TG_OK);
        cr_assert_eq(tg_tensor_grad_get(b, 0), 12.0, "at max_norm: unchanged");

        cr_assert_eq(tg_clip_grad_norm(ps, 3, 6.5, &norm), TG_OK);
        cr_assert_eq(norm, 13.0, "the norm before clipping");
        double scale = 6.5 / (13.0 + 1e-6), tol = DTYPES[d] == TG_F64 ? 1e-15 : 1e-7;
        cr_assert(fabs(tg_tensor_grad_get(a, 0) - 3 * scale) < tol * 3);
        cr_assert(fabs(tg_tensor_grad_get(a, 1) - 4 * scale) < tol * 4);
        cr_assert(fabs(tg_tensor_grad_get(b, 0) - 12 * scale) < 1e-15 * 12);
        cr_assert_null(tg_tensor_grad_data(none));
        cr_assert_eq(tg_clip_grad_norm(ps, 3, 100.0, &norm), TG_OK);
        cr_assert(fabs(norm - 6.5) < 1e-6, "after: max_norm (%.17g)", norm);
        if (DTYPES[d] == TG_F64)
            cr_assert_lt(norm, 6.5, "the epsilon leaves it just under");
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_tensor_free(none);
    }
}

Test(clip, huge_nan_and_bad_arguments)
{
    const double z2[2] = {0, 0};
    tg_tensor *a = ts_vec(TG_F64, 2, z2, true);
    double norm;
    set_grad(a, (const double[]){3e200, 4e200}); /* the plain sum of squares overflows */
    cr_assert_eq(tg_clip_grad_norm(&a, 1, 1.0, &norm), TG_OK);
    cr_assert(fabs(norm / 5e200 - 1) < 1e-15, "norm %g", norm);
    cr_assert(fabs(tg_tensor_grad_get(a, 0) - 0.6) < 1e-15);
    set_grad(a, (const double[]){1, NAN});
    cr_assert_eq(tg_clip_grad_norm(&a, 1, 1.0, &norm), TG_ENUMERIC);
    cr_assert(isnan(norm));
    cr_assert_eq(tg_tensor_grad_get(a, 0), 1.0, "grads untouched");
    set_grad(a, (const double[]){INFINITY, 0});
    cr_assert_eq(tg_clip_grad_norm(&a, 1, 1.0, &norm), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "inf");
    cr_assert_eq(tg_clip_grad_norm(&a, 1, 0.0, NULL), TG_EINVAL);
    cr_assert_eq(tg_clip_grad_norm(&a, 1, NAN, NULL), TG_EINVAL);
    cr_assert_eq(tg_clip_grad_norm(NULL, 1, 1.0, NULL), TG_EINVAL);
    tg_tensor *with_null[2] = {a, NULL};
    cr_assert_eq(tg_clip_grad_norm(with_null, 2, 1.0, NULL), TG_EINVAL);
    cr_assert_eq(tg_clip_grad_norm(NULL, 0, 1.0, &norm), TG_OK, "nothing to clip");
    cr_assert_eq(norm, 0.0);
    /* a leaf listed twice would count twice in the norm and be scaled twice */
    set_grad(a, (const double[]){3, 4});
    tg_tensor *twice[2] = {a, a};
    cr_assert_eq(tg_clip_grad_norm(twice, 2, 1.0, &norm), TG_EINVAL);
    ts_assert_has(tg_last_error(), "clip_grad_norm: params[0] and params[1] are the same leaf");
    cr_assert_eq(tg_tensor_grad_get(a, 0), 3.0, "grads untouched");
    tg_tensor_free(a);
}

/* A step count of 2^64 - 1 (a corrupt checkpoint's, say) cannot be followed: the next t would
 * wrap to 0, Adam's bias correction 1 - b^0 be 0 and every weight NaN. Refused, nothing moved. */
Test(optim, the_largest_step_count_is_refused)
{
    tg_tensor *w = ts_vec(TG_F64, 2, W0, true);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    tg_optim *o = NULL;
    cr_assert_eq(tg_optim_new(&opt, &w, 1, &o), TG_OK, "%s", tg_last_error());
    set_grad(w, G1);
    cr_assert_eq(tg_optim_set_state(o, tg_optim_state(o), tg_optim_state_size(o), UINT64_MAX),
                 TG_EINVAL);
    ts_assert_has(tg_last_error(), "optim_set_state: steps is 2^64 - 1");
    cr_assert_eq(tg_optim_steps(o), 0);
    tg_optim_set_steps(o, UINT64_MAX);
    cr_assert_eq(tg_optim_step(o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "optim_step: the step count is 2^64 - 1");
    ts_assert_values(w, W0, 2, 0, 0, "w untouched");
    tg_optim_set_steps(o, UINT64_MAX - 1); /* the last step there is */
    cr_assert_eq(tg_optim_step(o), TG_OK);
    cr_assert(isfinite(tg_tensor_get(w, 0)) && tg_tensor_get(w, 0) != W0[0]);
    tg_optim_free(o);
    tg_tensor_free(w);
}

/* An f32 gradient of 1e21: Adam's v = (1 - 0.999) * 1e42 is beyond f32 and the step stores
 * +inf, while the weight moves by lr (m / bc1 = g, sqrt(v / bc2) = g in double) and later
 * moves by m / inf = 0. That state is the optimizer's own: set_state (a checkpoint's load)
 * takes it, and the run goes on as it would have; NaN and negative v stay refused. */
Test(optim, adam_state_with_an_overflowed_second_moment_restores)
{
    const double w0[2] = {0, 0}, g[2] = {1e21, 1};
    tg_tensor *w = ts_vec(TG_F32, 2, w0, true);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = 0.1;
    tg_optim *o = NULL;
    cr_assert_eq(tg_optim_new(&opt, &w, 1, &o), TG_OK, "%s", tg_last_error());
    set_grad(w, g);
    cr_assert_eq(tg_optim_step(o), TG_OK);
    float *s = tg_optim_state(o); /* m[0], m[1], v[0], v[1] */
    cr_assert(isinf(s[2]) && s[2] > 0, "v[0] = %g", (double)s[2]);
    cr_assert_float_eq(tg_tensor_get(w, 0), -0.1, 1e-7); /* -lr * g / (|g| + eps) */
    float saved[4];
    memcpy(saved, s, sizeof saved);
    cr_assert_eq(tg_optim_set_state(o, saved, sizeof saved, 1), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_optim_step(o), TG_OK);
    cr_assert_float_eq(tg_tensor_get(w, 0), -0.1, 1e-7, "v = inf: the weight stays");
    float bad[4];
    memcpy(bad, saved, sizeof bad);
    bad[3] = NAN;
    cr_assert_eq(tg_optim_set_state(o, bad, sizeof bad, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "v[1] is nan (expected 0 to +inf)");
    bad[3] = -1;
    cr_assert_eq(tg_optim_set_state(o, bad, sizeof bad, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "v[1] is -1");
    memcpy(bad, saved, sizeof bad);
    bad[0] = INFINITY;
    cr_assert_eq(tg_optim_set_state(o, bad, sizeof bad, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "m[0] is inf (expected a finite value)");
    cr_assert_eq(tg_optim_steps(o), 2, "refused states change nothing");
    tg_optim_free(o);
    tg_tensor_free(w);
}

/* ---- out of memory ------------------------------------------------------------------------- */

typedef struct oom_case {
    tg_optim_options opt;
    tg_tensor **ps;
} oom_case;

static size_t oom_optim_new(size_t n, void *ud)
{
    oom_case *c = ud;
    tg_optim *o = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_optim_new(&c->opt, c->ps, 2, &o);
    ts_alloc_fail_at(0);
    if (st != TG_OK) {
        ts_assert_enomem(st, tg_optim_kind_name(c->opt.kind), n);
        cr_assert_null(o);
    }
    tg_optim_free(o);
    return st != TG_OK;
}

Test(oom, optim_new_fails_cleanly_at_every_allocation)
{
    const tg_optim_kind kinds[3] = {TG_OPTIM_SGD, TG_OPTIM_MOMENTUM, TG_OPTIM_ADAM};
    ts_alloc_install();
    tg_tensor *w = ts_vec(TG_F32, 2, W0, true), *v = ts_vec(TG_F32, 2, W0, true);
    tg_tensor *ps[2] = {w, v};
    for (int k = 0; k < 3; k++) {
        oom_case c = {.opt = TG_OPTIM_OPTIONS_INIT, .ps = ps};
        c.opt.kind = kinds[k];
        /* Success means no allocation was refused. */
        ts_oom_drive(tg_optim_kind_name(kinds[k]), oom_optim_new, &c,
                     (ts_oom_opts){.max_runs = 100, .no_fallback = true});
    }
    tg_tensor_free(w);
    tg_tensor_free(v);
    cr_assert_eq(ts_alloc.live, 0);
    cr_assert_eq(ts_alloc.bytes, 0);
    ts_alloc_uninstall();
}
