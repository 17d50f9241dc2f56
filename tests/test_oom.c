/* test_oom.c: allocation failure in the entry points of the model layer, where test_alloc.c
 * covers tapes, leaves, recording, backward, tg_grad and hand-written training, and
 * test_model_file.c, test_data.c and test_expr.c cover model files, CSV and tgx. For each
 * scenario the Nth allocation attempt fails, for N = 1, 2, ... until the call completes
 * without reaching attempt N, and every run must:
 *  - fail with TG_ENOMEM and a message about memory, or succeed with exact results;
 *  - leak nothing: the hook's live block and byte counts return to where they were;
 *  - leave everything usable: the failed call, retried without a failure, gives results bit
 *    for bit equal to a run that never failed.
 * The centrepiece is a training step as a program writes it: the model's forward pass,
 * cross-entropy, backward, an Adam step, zeroing the gradients and resetting the tape. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"

/* A scenario runs once with attempt n failing (it arms the hook itself around the calls under
 * test) and returns how many of its calls failed; at least one run must see a call fail. */
static size_t drive(const char *what, ts_oom_fn fn)
{
    return ts_oom_drive(what, fn, NULL, (ts_oom_opts){.min_failing = 1});
}

/* ---- the model and its optimizer ------------------------------------------------------------ */

#define ROWS 6
#define IN 4
#define HID 5
#define OUT 3
#define STEPS 3

static tg_mlp_spec spec(void)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2;
    s.sizes[0] = IN;
    s.sizes[1] = HID;
    s.sizes[2] = OUT;
    s.act[0] = TG_ACT_TANH;
    s.act[1] = TG_ACT_IDENTITY;
    s.dtype = TG_F64;
    return s;
}

static tg_status set_metadata(tg_model *m)
{
    static const double mean[IN] = {0.5, -1, 2, 0}, std[IN] = {1, 2, 0.5, 3};
    static const char *const cols[IN] = {"a", "b", "c", "d"};
    tg_status st = tg_model_set_standardization(m, IN, mean, std);
    if (st == TG_OK)
        st = tg_model_set_task(m, TG_TASK_CLASSIFY, OUT);
    if (st == TG_OK)
        st = tg_model_set_columns(m, cols, "label");
    return st;
}

static size_t scenario_model_new(size_t n, void *ud)
{
    (void)ud;
    tg_mlp_spec s = spec();
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_model *m = (tg_model *)&m;
    ts_alloc_fail_at(n);
    tg_status st = tg_model_new(&s, TG_INIT_HE_NORMAL, &rng, &m);
    if (st == TG_OK)
        st = set_metadata(m);
    ts_alloc_fail_at(0);
    size_t failed = st != TG_OK;
    if (failed) {
        ts_assert_enomem(st, "model_new and metadata", n);
        if (m) { /* the metadata failed: the model stands, and a retry works */
            cr_assert_eq(set_metadata(m), TG_OK, "%s", tg_last_error());
        } else {
            tg_rng_seed(&rng, 9);
            cr_assert_eq(tg_model_new(&s, TG_INIT_HE_NORMAL, &rng, &m), TG_OK);
            cr_assert_eq(set_metadata(m), TG_OK);
        }
    }
    size_t nmean;
    const double *mean, *std;
    cr_assert_eq(tg_model_standardization(m, &nmean, &mean, &std), TG_OK);
    cr_assert_eq(nmean, IN);
    cr_assert_str_eq(tg_model_target_name(m), "label");
    tg_model_free(m);
    return failed;
}

Test(oom, model_new_and_metadata)
{
    drive("model_new", scenario_model_new);
}

static int optim_kind;

static size_t scenario_optim_new(size_t n, void *ud)
{
    (void)ud;
    tg_mlp_spec s = spec();
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, TG_INIT_HE_NORMAL, &rng, &m), TG_OK);
    tg_tensor *params[4];
    for (size_t i = 0; i < 4; i++)
        params[i] = tg_model_param(m, i);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = (tg_optim_kind)optim_kind;
    opt.momentum = optim_kind == TG_OPTIM_SGD ? 0 : 0.9;
    tg_optim *o = (tg_optim *)&o;
    ts_alloc_fail_at(n);
    tg_status st = tg_optim_new(&opt, params, 4, &o);
    ts_alloc_fail_at(0);
    size_t failed = st != TG_OK;
    if (failed) {
        ts_assert_enomem(st, "optim_new", n);
        cr_assert_null(o);
        cr_assert_eq(tg_optim_new(&opt, params, 4, &o), TG_OK, "%s", tg_last_error());
    }
    cr_assert_eq(tg_optim_step(o), TG_OK);
    tg_optim_free(o);
    tg_model_free(m);
    return failed;
}

Test(oom, optim_new)
{
    size_t failing = 0;
    for (optim_kind = TG_OPTIM_SGD; optim_kind <= TG_OPTIM_ADAMW; optim_kind++) {
        /* Plain SGD keeps no state and may allocate nothing at all. */
        failing += ts_oom_drive(tg_optim_kind_name((tg_optim_kind)optim_kind), scenario_optim_new,
                                NULL, (ts_oom_opts){0});
    }
    cr_assert_geq(failing, 3, "momentum, Adam and AdamW allocate their state");
}

/* ---- training steps --------------------------------------------------------------------- */

static double xdata[ROWS * IN], ydata[ROWS];
static double ref_params[IN * HID + HID + HID * OUT + OUT];
static double ref_loss[STEPS];

static void make_batch(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    for (size_t i = 0; i < ROWS * IN; i++)
        xdata[i] = tg_rng_normal(&rng);
    for (size_t i = 0; i < ROWS; i++)
        ydata[i] = (double)(i % OUT);
}

typedef struct trainer {
    tg_model *model;
    tg_optim *optim;
    tg_tape *tape;
    tg_tensor *x, *y;
} trainer;

static void trainer_new(trainer *t)
{
    tg_mlp_spec s = spec();
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &t->model), TG_OK);
    tg_tensor *params[4];
    for (size_t i = 0; i < 4; i++)
        params[i] = tg_model_param(t->model, i);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = 0.05;
    cr_assert_eq(tg_optim_new(&opt, params, 4, &t->optim), TG_OK);
    t->tape = tg_tape_new();
    const size_t xs[2] = {ROWS, IN}, ys[1] = {ROWS};
    t->x = tg_tensor_wrap(TG_F64, 2, xs, xdata);
    t->y = tg_tensor_wrap(TG_F64, 1, ys, ydata);
    cr_assert(t->tape && t->x && t->y);
}

static void trainer_free(trainer *t)
{
    tg_tape_free(t->tape);
    tg_tensor_free(t->x);
    tg_tensor_free(t->y);
    tg_optim_free(t->optim);
    tg_model_free(t->model);
}

/* One step as a program writes it; TG_OK or the first error, with *loss set on success. */
static tg_status train_step(trainer *t, double *loss)
{
    tg_tensor *l = tg_cross_entropy(t->tape, tg_model_forward(t->tape, t->model, t->x), t->y);
    tg_status st = tg_tape_status(t->tape);
    if (st == TG_OK)
        st = tg_backward(t->tape, l);
    if (st == TG_OK)
        st = tg_optim_step(t->optim);
    if (st == TG_OK)
        *loss = tg_tensor_item(l);
    tg_model_zero_grad(t->model);
    tg_tape_reset(t->tape);
    return st;
}

static void compute_reference(void)
{
    make_batch();
    trainer t;
    trainer_new(&t);
    for (int s = 0; s < STEPS; s++)
        cr_assert_eq(train_step(&t, &ref_loss[s]), TG_OK, "%s", tg_last_error());
    memcpy(ref_params, tg_model_param_data(t.model), sizeof ref_params);
    cr_assert_eq(tg_model_numel(t.model) * sizeof(double), sizeof ref_params);
    trainer_free(&t);
}

/* The objects are made before the failure is armed; the steps run with attempt n failing. A
 * failed step is retried (the failure is spent): a failure must leave no trace, so the final
 * parameters equal the reference's bit for bit. */
static size_t scenario_training(size_t n, void *ud)
{
    (void)ud;
    trainer t;
    trainer_new(&t);
    size_t failed = 0;
    ts_alloc_fail_at(n);
    for (int s = 0; s < STEPS; s++) {
        double loss = NAN;
        tg_status st = train_step(&t, &loss);
        if (st != TG_OK) {
            ts_assert_enomem(st, "training step", n);
            failed++;
            st = train_step(&t, &loss);
            cr_assert_eq(st, TG_OK, "step %d retried after allocation %zu failed: %s", s, n,
                         tg_last_error());
        }
        cr_assert_eq(loss, ref_loss[s], "allocation %zu failing: step %d loss %.17g vs %.17g", n,
                     s, loss, ref_loss[s]);
    }
    ts_alloc_fail_at(0);
    cr_assert_eq(memcmp(tg_model_param_data(t.model), ref_params, sizeof ref_params), 0,
                 "allocation %zu failing: the parameters differ from the reference", n);
    trainer_free(&t);
    return failed;
}

Test(oom, training_step)
{
    compute_reference();
    size_t failing = drive("training step", scenario_training);
    cr_log_info("training step: %zu runs with a failing allocation", failing);
}

/* The whole life of a training program under failure: the objects too are made with attempt
 * n failing; whatever fails is made again, and training still ends at the reference. */
static size_t scenario_whole_program(size_t n, void *ud)
{
    (void)ud;
    size_t failed = 0;
    ts_alloc_fail_at(n);
    trainer t;
    memset(&t, 0, sizeof t);
    tg_mlp_spec s = spec();
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    if (tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &t.model) != TG_OK) {
        ts_assert_enomem(tg_last_status(), "model_new", n);
        failed++;
        tg_rng_seed(&rng, 4);
        cr_assert_eq(tg_model_new(&s, TG_INIT_XAVIER_UNIFORM, &rng, &t.model), TG_OK);
    }
    tg_tensor *params[4];
    for (size_t i = 0; i < 4; i++)
        params[i] = tg_model_param(t.model, i);
    tg_optim_options opt = TG_OPTIM_OPTIONS_INIT;
    opt.kind = TG_OPTIM_ADAM;
    opt.lr = 0.05;
    if (tg_optim_new(&opt, params, 4, &t.optim) != TG_OK) {
        ts_assert_enomem(tg_last_status(), "optim_new", n);
        failed++;
        cr_assert_eq(tg_optim_new(&opt, params, 4, &t.optim), TG_OK);
    }
    if (!(t.tape = tg_tape_new())) {
        ts_assert_enomem(tg_last_status(), "tape_new", n);
        failed++;
        cr_assert_not_null(t.tape = tg_tape_new());
    }
    const size_t xs[2] = {ROWS, IN}, ys[1] = {ROWS};
    if (!(t.x = tg_tensor_wrap(TG_F64, 2, xs, xdata))) {
        ts_assert_enomem(tg_last_status(), "tensor_wrap", n);
        failed++;
        cr_assert_not_null(t.x = tg_tensor_wrap(TG_F64, 2, xs, xdata));
    }
    if (!(t.y = tg_tensor_wrap(TG_F64, 1, ys, ydata))) {
        ts_assert_enomem(tg_last_status(), "tensor_wrap", n);
        failed++;
        cr_assert_not_null(t.y = tg_tensor_wrap(TG_F64, 1, ys, ydata));
    }
    for (int step = 0; step < STEPS; step++) {
        double loss;
        if (train_step(&t, &loss) != TG_OK) {
            ts_assert_enomem(tg_last_status(), "training step", n);
            failed++;
            cr_assert_eq(train_step(&t, &loss), TG_OK, "%s", tg_last_error());
        }
        cr_assert_eq(loss, ref_loss[step]);
    }
    ts_alloc_fail_at(0);
    cr_assert_eq(memcmp(tg_model_param_data(t.model), ref_params, sizeof ref_params), 0);
    trainer_free(&t);
    return failed;
}

Test(oom, whole_training_program)
{
    compute_reference();
    drive("training program", scenario_whole_program);
}

/* tg_grad of the loss with respect to the parameters, through the model. */
static size_t scenario_grad(size_t n, void *ud)
{
    (void)ud;
    trainer t;
    trainer_new(&t);
    tg_tensor *params[4], *out[4] = {NULL};
    for (size_t i = 0; i < 4; i++)
        params[i] = tg_model_param(t.model, i);
    ts_alloc_fail_at(n);
    tg_tensor *l = tg_cross_entropy(t.tape, tg_model_forward(t.tape, t.model, t.x), t.y);
    tg_status st = tg_tape_status(t.tape);
    if (st == TG_OK)
        st = tg_grad(t.tape, l, params, 4, out);
    ts_alloc_fail_at(0);
    size_t failed = st != TG_OK;
    if (failed) {
        ts_assert_enomem(st, "grad through the model", n);
        for (size_t i = 0; i < 4; i++)
            cr_assert_null(out[i], "no result on error");
        tg_tape_reset(t.tape);
        l = tg_cross_entropy(t.tape, tg_model_forward(t.tape, t.model, t.x), t.y);
        cr_assert_eq(tg_grad(t.tape, l, params, 4, out), TG_OK, "%s", tg_last_error());
    }
    /* tg_grad leaves the parameters' own gradients alone, and agrees with backward. */
    double *g = tg_model_grad_data(t.model);
    for (size_t i = 0; i < tg_model_numel(t.model); i++)
        cr_assert_eq(g[i], 0.0);
    cr_assert_eq(tg_backward(t.tape, l), TG_OK);
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < tg_tensor_numel(out[i]); j++)
            cr_assert_eq(tg_tensor_get(out[i], j), g[off + j], "param %zu element %zu", i, j);
        off += tg_tensor_numel(out[i]);
        tg_tensor_free(out[i]);
    }
    trainer_free(&t);
    return failed;
}

Test(oom, grad_through_the_model)
{
    make_batch();
    drive("grad", scenario_grad);
}

/* The dot text of a training step's graph. */
static size_t scenario_dot(size_t n, void *ud)
{
    (void)ud;
    trainer t;
    trainer_new(&t);
    tg_tensor *l = tg_cross_entropy(t.tape, tg_model_forward(t.tape, t.model, t.x), t.y);
    cr_assert_eq(tg_backward(t.tape, l), TG_OK);
    char *dot = (char *)&dot;
    size_t len = 0;
    ts_alloc_fail_at(n);
    tg_status st = tg_dot_string(t.tape, NULL, &dot, &len);
    ts_alloc_fail_at(0);
    size_t failed = st != TG_OK;
    if (failed) {
        ts_assert_enomem(st, "dot_string", n);
        cr_assert_null(dot);
        cr_assert_eq(tg_dot_string(t.tape, NULL, &dot, &len), TG_OK);
    }
    cr_assert_eq(strlen(dot), len);
    ts_assert_has(dot, "digraph");
    tg_dot_string_free(dot);
    trainer_free(&t);
    return failed;
}

Test(oom, dot_string)
{
    make_batch();
    drive("dot_string", scenario_dot);
}
