/* test_model_predict.c: what a program that builds its own model gets without writing the
 * loops itself: tg_model_optim_new (the optimizer over the model's parameters, in the order
 * checkpoints assume) and tg_model_predict / tg_model_predict_proba (raw rows in, classes,
 * values or probabilities out), against predictions worked out by hand for tiny models with
 * set weights, and every error they return. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"

/* A one-layer model with weights w (in, out), bias b, and the given task. */
static tg_model *linear_model(tg_dtype dt, size_t in, size_t out, const double *w, const double *b,
                              tg_activation act)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 1;
    spec.sizes[0] = in;
    spec.sizes[1] = out;
    spec.act[0] = act;
    spec.dtype = dt;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK, "%s",
                 tg_last_error());
    for (size_t i = 0; i < in * out; i++)
        cr_assert_eq(tg_tensor_set(tg_model_param(m, 0), i, w[i]), TG_OK);
    for (size_t i = 0; i < out; i++)
        cr_assert_eq(tg_tensor_set(tg_model_param(m, 1), i, b[i]), TG_OK);
    return m;
}

/* ---- tg_model_optim_new ------------------------------------------------------------------- */

static tg_model *mlp(uint64_t seed)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = 3;
    spec.sizes[1] = 4;
    spec.sizes[2] = 2;
    spec.act[0] = TG_ACT_TANH;
    spec.dtype = TG_F64;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_new(&spec, TG_INIT_HE_NORMAL, &rng, &m), TG_OK);
    return m;
}

/* One step of each optimizer on two identical models with identical gradients. */
Test(model_optim_new, is_tg_optim_new_over_the_parameters_in_order)
{
    tg_model *a = mlp(5), *b = mlp(5);
    tg_optim_options o = TG_OPTIM_OPTIONS_INIT;
    o.kind = TG_OPTIM_ADAM;
    o.lr = 0.05;
    tg_optim *oa = NULL, *ob = NULL;
    cr_assert_eq(tg_model_optim_new(&o, a, &oa), TG_OK, "%s", tg_last_error());
    tg_tensor *ps[4];
    for (size_t i = 0; i < 4; i++)
        ps[i] = tg_model_param(b, i);
    cr_assert_eq(tg_optim_new(&o, ps, 4, &ob), TG_OK);
    cr_assert_eq(tg_optim_param_count(oa), tg_model_param_count(a));
    for (size_t i = 0; i < tg_model_param_count(a); i++)
        cr_assert_eq(tg_optim_param(oa, i), tg_model_param(a, i), "parameter %zu", i);
    for (int step = 0; step < 3; step++) {
        double *ga = tg_model_grad_data(a), *gb = tg_model_grad_data(b);
        for (size_t k = 0; k < tg_model_numel(a); k++)
            ga[k] = gb[k] = sin((double)(k + 1) * (step + 1));
        cr_assert_eq(tg_optim_step(oa), TG_OK);
        cr_assert_eq(tg_optim_step(ob), TG_OK);
    }
    cr_assert_eq(
        memcmp(tg_model_param_data(a), tg_model_param_data(b), tg_model_numel(a) * sizeof(double)),
        0);
    cr_assert_eq(memcmp(tg_optim_state(oa), tg_optim_state(ob), tg_optim_state_size(ob)), 0);
    /* A checkpoint takes it as its optimizer and gives back the same state. */
    tg_checkpoint_progress pr = TG_CHECKPOINT_PROGRESS_INIT;
    pr.rng.s[0] = 1;
    void *buf = NULL;
    size_t size = 0;
    cr_assert_eq(tg_checkpoint_save_buffer(a, oa, &pr, &buf, &size), TG_OK, "%s", tg_last_error());
    tg_model *m2 = NULL;
    tg_optim *o2 = NULL;
    cr_assert_eq(tg_checkpoint_load_buffer(buf, size, &m2, &o2, NULL), TG_OK, "%s",
                 tg_last_error());
    cr_assert_eq(tg_optim_steps(o2), 3);
    cr_assert_eq(memcmp(tg_optim_state(o2), tg_optim_state(oa), tg_optim_state_size(oa)), 0);
    tg_checkpoint_buffer_free(buf, size);
    tg_optim_free(o2);
    tg_model_free(m2);
    tg_optim_free(oa);
    tg_optim_free(ob);
    tg_model_free(a);
    tg_model_free(b);
}

Test(model_optim_new, errors)
{
    tg_model *m = mlp(1);
    tg_optim *o = (tg_optim *)&o;
    cr_assert_eq(tg_model_optim_new(NULL, NULL, &o), TG_EINVAL);
    cr_assert_null(o);
    ts_assert_has(tg_last_error(), "model_optim_new: model is NULL");
    cr_assert_eq(tg_model_optim_new(NULL, m, NULL), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_optim_new: out is NULL");
    tg_optim_options bad = TG_OPTIM_OPTIONS_INIT;
    bad.lr = NAN;
    o = (tg_optim *)&o;
    cr_assert_eq(tg_model_optim_new(&bad, m, &o), TG_EINVAL);
    cr_assert_null(o);
    ts_assert_has(tg_last_error(), "lr");
    /* NULL options: TG_OPTIM_OPTIONS_INIT, plain SGD. */
    cr_assert_eq(tg_model_optim_new(NULL, m, &o), TG_OK);
    cr_assert_eq(tg_optim_dtype(o), TG_F64);
    tg_optim_free(o);
    tg_model_free(m);
}

/* ---- tg_model_predict: classification ----------------------------------------------------- */

/* z = ((x - mean) / std) @ W + b with
 *   W = [[1, 0, -1], [0, 1, 1]], b = [0, 0.5, 0], mean = (1, 2), std = (2, 4):
 *   x = (3, 2)  -> (1, 0)     -> z = (1, 0.5, -1)   -> class 0
 *   x = (1, 6)  -> (0, 1)     -> z = (0, 1.5, 1)    -> class 1
 *   x = (-1, 10) -> (-1, 2)   -> z = (-1, 2.5, 3)   -> class 2
 *   x = (1, 2)  -> (0, 0)     -> z = (0, 0.5, 0)    -> class 1
 *   x = (2, 2)  -> (0.5, 0)   -> z = (0.5, 0.5, -0.5) -> class 0 (the first of equal logits)
 * Every number is a dyadic rational, so f32 computes them exactly too. */
static const double W3[6] = {1, 0, -1, 0, 1, 1}, B3[3] = {0, 0.5, 0};
static const double MEAN[2] = {1, 2}, STD[2] = {2, 4};
static const double X5[10] = {3, 2, 1, 6, -1, 10, 1, 2, 2, 2};
static const double Z5[15] = {1, 0.5, -1, 0, 1.5, 1, -1, 2.5, 3, 0, 0.5, 0, 0.5, 0.5, -0.5};
static const double CLASS5[5] = {0, 1, 2, 1, 0};

static tg_model *classifier(tg_dtype dt)
{
    tg_model *m = linear_model(dt, 2, 3, W3, B3, TG_ACT_IDENTITY);
    cr_assert_eq(tg_model_set_standardization(m, 2, MEAN, STD), TG_OK);
    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 3), TG_OK);
    return m;
}

Test(model_predict, classes_are_the_argmax_of_the_logits_of_standardized_rows)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_model *m = classifier(dt);
        cr_assert_eq(tg_model_predict_width(m), 1);
        double out[5] = {-7, -7, -7, -7, -7};
        cr_assert_eq(tg_model_predict(m, X5, 5, 2, out, 5), TG_OK, "%s", tg_last_error());
        for (int i = 0; i < 5; i++)
            cr_assert_eq(out[i], CLASS5[i], "%s row %d: class %g, expected %g", tg_dtype_name(dt),
                         i, out[i], CLASS5[i]);
        /* Probabilities: the softmax of the logits, computed here from the closed form. */
        double p[15];
        cr_assert_eq(tg_model_predict_proba(m, X5, 5, 2, p, 15), TG_OK, "%s", tg_last_error());
        for (int i = 0; i < 5; i++) {
            const double *z = Z5 + 3 * i;
            double s = exp(z[0]) + exp(z[1]) + exp(z[2]);
            for (int c = 0; c < 3; c++)
                ts_assert_close(p[3 * i + c], exp(z[c]) / s, 0, d ? 1e-15 : 1e-6,
                                "%s row %d class %d", tg_dtype_name(dt), i, c);
        }
        tg_model_free(m);
    }
}

/* Without standardization the rows go in as they are: the standardized rows above. */
Test(model_predict, without_standardization_rows_go_in_unchanged)
{
    tg_model *m = linear_model(TG_F64, 2, 3, W3, B3, TG_ACT_IDENTITY);
    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 3), TG_OK);
    const double x[10] = {1, 0, 0, 1, -1, 2, 0, 0, 0.5, 0};
    double out[5];
    cr_assert_eq(tg_model_predict(m, x, 5, 2, out, 5), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out[i], CLASS5[i], "row %d", i);
    tg_model_free(m);
}

/* Two classes from one logit z = 2 x0 - x1 + 0.25: class 1 when z > 0 (sigmoid(z) > 0.5). */
Test(model_predict, two_classes_from_one_logit_threshold_at_zero)
{
    const double w[2] = {2, -1}, b[1] = {0.25};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_model *m = linear_model(dt, 2, 1, w, b, TG_ACT_IDENTITY);
        cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 2), TG_OK);
        /* z = 0.25, -0.75, 0 (exactly: class 0), 8.25, -3.75 */
        const double x[10] = {0, 0, 0, 1, 0, 0.25, 4, 0, -1, 2};
        const double z[5] = {0.25, -0.75, 0, 8.25, -3.75}, want[5] = {1, 0, 0, 1, 0};
        double out[5], p[10];
        cr_assert_eq(tg_model_predict(m, x, 5, 2, out, 5), TG_OK, "%s", tg_last_error());
        cr_assert_eq(tg_model_predict_proba(m, x, 5, 2, p, 10), TG_OK, "%s", tg_last_error());
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(out[i], want[i], "%s row %d", tg_dtype_name(dt), i);
            double s = 1 / (1 + exp(-z[i]));
            ts_assert_close(p[2 * i + 1], s, 0, d ? 1e-15 : 1e-6, "p(1) row %d", i);
            ts_assert_close(p[2 * i], 1 / (1 + exp(z[i])), 0, d ? 1e-15 : 1e-6, "p(0) row %d", i);
        }
        tg_model_free(m);
    }
}

/* ---- tg_model_predict: regression ---------------------------------------------------------- */

/* Two outputs a row, in the data's units: v = tanh(x @ W1 + b1) @ W2 + b2, computed here in
 * plain C (libm's tanh; tapegrad's own is within 2 ulp). */
Test(model_predict, regression_gives_every_output_of_a_deeper_model)
{
    tg_mlp_spec spec = TG_MLP_SPEC_INIT;
    spec.n_layers = 2;
    spec.sizes[0] = 2;
    spec.sizes[1] = 3;
    spec.sizes[2] = 2;
    spec.act[0] = TG_ACT_TANH;
    spec.dtype = TG_F64;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_new(&spec, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK);
    const double w1[6] = {0.5, -1, 0.25, 1.5, 0.75, -0.5}, b1[3] = {0.1, 0, -0.2};
    const double w2[6] = {1, -2, 0.5, 0.25, -1, 3}, b2[2] = {10, -5};
    for (size_t i = 0; i < 6; i++) {
        tg_tensor_set(tg_model_param(m, 0), i, w1[i]);
        tg_tensor_set(tg_model_param(m, 2), i, w2[i]);
    }
    for (size_t i = 0; i < 3; i++)
        tg_tensor_set(tg_model_param(m, 1), i, b1[i]);
    for (size_t i = 0; i < 2; i++)
        tg_tensor_set(tg_model_param(m, 3), i, b2[i]);
    cr_assert_eq(tg_model_predict_width(m), 2);
    /* 2500 rows: more than one chunk of 1024, and a partial last one. */
    enum { N = 2500 };
    static double x[2 * N], out[2 * N];
    for (size_t i = 0; i < 2 * N; i++)
        x[i] = sin(0.37 * (double)i) * 3;
    cr_assert_eq(tg_model_predict(m, x, N, 2, out, 2 * N), TG_OK, "%s", tg_last_error());
    for (size_t r = 0; r < N; r++) {
        double h[3];
        for (int j = 0; j < 3; j++)
            h[j] = tanh(x[2 * r] * w1[j] + x[2 * r + 1] * w1[3 + j] + b1[j]);
        for (int k = 0; k < 2; k++) {
            double v = h[0] * w2[k] + h[1] * w2[2 + k] + h[2] * w2[4 + k] + b2[k];
            ts_assert_close(out[2 * r + k], v, 1e-14, 1e-14, "row %zu output %d", r, k);
        }
    }
    tg_model_free(m);
}

/* ---- errors --------------------------------------------------------------------------------- */

Test(model_predict, errors_name_what_is_wrong)
{
    tg_model *m = classifier(TG_F32);
    double out[8], x[8] = {3, 2, 1, 6, 0, 0, 0, 0};
    cr_assert_eq(tg_model_predict(NULL, x, 1, 2, out, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_predict: model is NULL");
    cr_assert_eq(tg_model_predict(m, NULL, 1, 2, out, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_predict: x is NULL");
    cr_assert_eq(tg_model_predict(m, x, 1, 2, NULL, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_predict: out is NULL");
    cr_assert_eq(tg_model_predict(m, x, 2, 3, out, 2), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "model_predict: rows of 3 features, the model takes 2");
    cr_assert_eq(tg_model_predict(m, x, 2, 2, out, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "out holds 1 values; 2 rows need 2");
    cr_assert_eq(tg_model_predict_proba(m, x, 2, 2, out, 5), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_predict_proba: out holds 5 values; 2 rows need 6");
    /* No rows: nothing to do, NULL pointers included. */
    cr_assert_eq(tg_model_predict(m, NULL, 0, 2, NULL, 0), TG_OK);
    cr_assert_eq(tg_model_predict_proba(m, NULL, 0, 2, NULL, 0), TG_OK);
    /* A feature that is not a number, or too large for f32 once standardized. */
    x[2] = NAN;
    cr_assert_eq(tg_model_predict(m, x, 2, 2, out, 2), TG_EINVAL);
    ts_assert_has(tg_last_error(), "model_predict: row 1, feature 0: nan is not a finite number");
    x[2] = 1e300;
    const char *names[2] = {"width", "height"};
    cr_assert_eq(tg_model_set_columns(m, names, NULL), TG_OK);
    cr_assert_eq(tg_model_predict(m, x, 2, 2, out, 2), TG_EINVAL);
    ts_assert_has(tg_last_error(), "row 1, feature 0 'width': 1e+300 (standardized: 5e+299) "
                                   "does not fit the model's f32");
    tg_model_free(m);
    /* ... or too large for f64 itself: a feature whose spread was 1e-300, in either dtype (a
     * standardized value of inf went through as one) */
    for (int d = 0; d < 2; d++) {
        m = classifier(d ? TG_F64 : TG_F32);
        const double mean[2] = {0, 0}, tiny[2] = {1e-300, 1};
        cr_assert_eq(tg_model_set_standardization(m, 2, mean, tiny), TG_OK);
        x[0] = 0, x[2] = 1e10;
        cr_assert_eq(tg_model_predict(m, x, 2, 2, out, 2), TG_EINVAL);
        ts_assert_has(tg_last_error(), d ? "row 1, feature 0: 1e+10 (standardized: inf) does "
                                           "not fit the model's f64"
                                         : "row 1, feature 0: 1e+10 (standardized: inf) does "
                                           "not fit the model's f32");
        tg_model_free(m);
    }

    /* A classifier whose outputs do not fit its classes; a regression model's probabilities. */
    m = classifier(TG_F64);
    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 4), TG_OK);
    cr_assert_eq(tg_model_predict_width(m), 0);
    cr_assert_eq(tg_model_predict(m, X5, 1, 2, out, 1), TG_EINVAL);
    ts_assert_has(tg_last_error(), "a classifier into 4 classes has 3 outputs");
    cr_assert_eq(tg_model_set_task(m, TG_TASK_REGRESS, 0), TG_OK);
    cr_assert_eq(tg_model_predict_width(m), 3);
    cr_assert_eq(tg_model_predict_proba(m, X5, 1, 2, out, 8), TG_EINVAL);
    ts_assert_has(tg_last_error(), "a regression model has no class probabilities");
    tg_model_free(m);

    /* Outputs that overflow: 1e300 * 1e300 in f64 is inf. */
    const double w[2] = {1e300, 0}, b[1] = {0};
    m = linear_model(TG_F64, 2, 1, w, b, TG_ACT_IDENTITY);
    const double xo[4] = {1, 1, 1e300, 0};
    cr_assert_eq(tg_model_predict(m, xo, 2, 2, out, 2), TG_ENUMERIC);
    ts_assert_has(tg_last_error(), "model_predict: row 1: the model's output is inf");
    tg_model_free(m);
}

/* Every allocation of a call refused in turn: TG_ENOMEM, nothing leaked, and the next call
 * predicts as before. */
static size_t scenario_predict(size_t n, void *ud)
{
    (void)ud;
    tg_model *m = classifier(TG_F64);
    double out[5] = {0};
    ts_alloc_fail_at(n);
    tg_status st = tg_model_predict(m, X5, 5, 2, out, 5);
    ts_alloc_fail_at(0);
    if (st != TG_OK)
        ts_assert_enomem(st, "model_predict", n);
    cr_assert_eq(tg_model_predict(m, X5, 5, 2, out, 5), TG_OK);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out[i], CLASS5[i]);
    tg_model_free(m);
    return st != TG_OK;
}

Test(model_predict, out_of_memory_leaks_nothing)
{
    ts_oom_drive("model_predict", scenario_predict, NULL, (ts_oom_opts){.min_failing = 2});
}

/* A call keeps nothing: the books of the allocator hook are where they were. */
Test(model_predict, keeps_nothing_between_calls)
{
    ts_alloc_install();
    tg_model *m = classifier(TG_F32);
    long long live = ts_alloc.live, bytes = ts_alloc.bytes;
    double out[5];
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(tg_model_predict(m, X5, 5, 2, out, 5), TG_OK);
        cr_assert_eq(ts_alloc.live, live);
        cr_assert_eq(ts_alloc.bytes, bytes);
    }
    tg_model_free(m);
    ts_alloc_uninstall();
}
