/* test_nn.c: the losses against closed forms computed here in plain doubles (values and
 * gradients), their stability at logits of +-1000 and gradcheck; activations and
 * initializers; the MLP (spec validation, forward values, parameter names, shapes and order,
 * the contiguous parameter and gradient blocks, zero_grad), metadata, and out-of-memory
 * paths of tg_model_new. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"
#include "support/oom.h"

static double sigmoid(double z)
{
    return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

/* Runs loss(a, b) on a fresh tape, backward, and checks value and da (and db when given). */
typedef tg_tensor *(*loss_fn)(tg_tape *, tg_tensor *, tg_tensor *);

static void check_loss(loss_fn fn, tg_dtype dt, tg_tensor *a, tg_tensor *b, double want,
                       const double *da, const double *db, double tol)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = fn(tape, a, b);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_rank(y), 0, "losses are 0-d");
    cr_assert_eq(tg_tensor_dtype(y), dt);
    ts_assert_close(tg_tensor_item(y), want, tol, tol, "loss");
    cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
    if (da)
        ts_assert_grad(a, da, tg_tensor_numel(a), tol, tol, "da");
    if (db)
        ts_assert_grad(b, db, tg_tensor_numel(b), tol, tol, "db");
    tg_tape_free(tape);
}

static const tg_dtype DTYPES[2] = {TG_F64, TG_F32};
static double tol_of(tg_dtype dt)
{
    return dt == TG_F64 ? 1e-12 : 2e-6;
}

/* ---- losses: values and gradients against closed forms ----------------------------------- */

static const double P6[6] = {0.3, -1.2, 2.5, 0.0, 0.7, -0.4};
static const double T6[6] = {0.1, -1.0, 2.0, 0.5, 1.0, 0.0};

Test(loss, mse_value_and_gradients)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        tg_tensor *p = ts_mat(dt, 2, 3, P6, true), *t = ts_mat(dt, 2, 3, T6, true);
        double want = 0, dp[6], dt_[6];
        for (int i = 0; i < 6; i++) {
            double e = (double)(dt == TG_F32 ? (float)P6[i] - (float)T6[i] : P6[i] - T6[i]);
            want += e * e / 6;
            dp[i] = 2 * e / 6;
            dt_[i] = -2 * e / 6;
        }
        check_loss(tg_mse, dt, p, t, want, dp, dt_, tol_of(dt));
        tg_tensor_free(p);
        tg_tensor_free(t);
    }
}

Test(loss, mse_broadcasts_target)
{
    /* A (3) target against (2,3) predictions: each target element gets both rows' terms. */
    tg_tensor *p = ts_mat(TG_F64, 2, 3, P6, true), *t = ts_vec(TG_F64, 3, T6, true);
    double want = 0, dp[6], dt[3] = {0};
    for (int i = 0; i < 6; i++) {
        double e = P6[i] - T6[i % 3];
        want += e * e / 6;
        dp[i] = 2 * e / 6;
        dt[i % 3] -= 2 * e / 6;
    }
    check_loss(tg_mse, TG_F64, p, t, want, dp, dt, 1e-12);
    tg_tensor_free(p);
    tg_tensor_free(t);
}

Test(loss, bce_value_and_gradients)
{
    static const double prob[6] = {0.9, 0.2, 0.5, 0.01, 0.75, 0.6};
    static const double tgt[6] = {1, 0, 1, 0, 0.3, 1};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        tg_tensor *p = ts_mat(dt, 3, 2, prob, true), *t = ts_mat(dt, 3, 2, tgt, true);
        double want = 0, dp[6], dtt[6];
        for (int i = 0; i < 6; i++) {
            double pi = dt == TG_F32 ? (double)(float)prob[i] : prob[i];
            double ti = dt == TG_F32 ? (double)(float)tgt[i] : tgt[i];
            want -= (ti * log(pi) + (1 - ti) * log(1 - pi)) / 6;
            dp[i] = (pi - ti) / (pi * (1 - pi)) / 6;
            dtt[i] = -(log(pi) - log(1 - pi)) / 6;
        }
        check_loss(tg_bce, dt, p, t, want, dp, dtt, dt == TG_F64 ? 1e-12 : 1e-5);
        tg_tensor_free(p);
        tg_tensor_free(t);
    }
}

Test(loss, bce_saturated_probabilities_are_finite)
{
    /* p = 0 with t = 1 would be -log 0 = inf: the clamp to [1e-15, 1 - 1e-15] gives
     * -log(1e-15), and p = 1 with t = 0 gives -log(1 - (1 - 1e-15)) (rounded in double). */
    static const double prob[2] = {0.0, 1.0}, tgt[2] = {1.0, 0.0};
    tg_tensor *p = ts_vec(TG_F64, 2, prob, true), *t = ts_vec(TG_F64, 2, tgt, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_bce(tape, p, t);
    cr_assert_not_null(y);
    double eps = 1e-15;
    ts_assert_close(tg_tensor_item(y), (-log(eps) - log(1 - (1 - eps))) / 2, 1e-12, 1e-12, "loss");
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    for (size_t i = 0; i < 2; i++)
        cr_assert(isfinite(tg_tensor_grad_get(p, i)));
    tg_tape_free(tape);
    tg_tensor_free(p);
    tg_tensor_free(t);
}

/* The stable closed form: max(z, 0) - z t + log(1 + e^-|z|). */
static double bce_logit_term(double z, double t)
{
    return fmax(z, 0) - z * t + log1p(exp(-fabs(z)));
}

Test(loss, bce_logits_value_and_gradients)
{
    static const double z6[6] = {2.0, -1.5, 0.0, 4.0, -0.3, 0.8};
    static const double t6[6] = {1, 0, 1, 0, 0.25, 1};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        tg_tensor *z = ts_mat(dt, 2, 3, z6, true), *t = ts_mat(dt, 2, 3, t6, true);
        double want = 0, dz[6], dtt[6];
        for (int i = 0; i < 6; i++) {
            double zi = dt == TG_F32 ? (double)(float)z6[i] : z6[i];
            want += bce_logit_term(zi, t6[i]) / 6;
            dz[i] = (sigmoid(zi) - t6[i]) / 6; /* d/dz = (sigmoid(z) - t) / n */
            dtt[i] = -zi / 6;                  /* d/dt = -z / n */
        }
        check_loss(tg_bce_logits, dt, z, t, want, dz, dtt, tol_of(dt));
        tg_tensor_free(z);
        tg_tensor_free(t);
    }
}

Test(loss, bce_logits_at_plus_minus_1000_is_finite_and_exact)
{
    static const double z4[4] = {1000, -1000, 1000, -1000};
    static const double t4[4] = {0, 1, 1, 0};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        tg_tensor *z = ts_vec(dt, 4, z4, true), *t = ts_vec(dt, 4, t4, false);
        /* Terms: 1000, 1000, 0, 0 -> mean 500. Gradients (sigmoid(z) - t)/4: 1/4, -1/4, 0, 0. */
        const double dz[4] = {0.25, -0.25, 0, 0};
        check_loss(tg_bce_logits, dt, z, t, 500.0, dz, NULL, tol_of(dt));
        tg_tensor_free(z);
        tg_tensor_free(t);
    }
}

/* Closed forms for cross-entropy: logsumexp per row, softmax. */
static void softmax_row(const double *z, size_t c, double *p, double *lse)
{
    double m = z[0];
    for (size_t j = 1; j < c; j++)
        m = fmax(m, z[j]);
    double s = 0;
    for (size_t j = 0; j < c; j++)
        s += exp(z[j] - m);
    *lse = m + log(s);
    for (size_t j = 0; j < c; j++)
        p[j] = exp(z[j] - *lse);
}

static const double Z12[12] = {1.0, 2.0, 0.5, -1.0, 0.0, 3.0, -2.0, 1.5, 2.2, -0.7, 0.3, 0.1};

Test(loss, cross_entropy_integer_labels)
{
    static const double labels[4] = {1, 3, 0, 2};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        /* (N=3, C=4): rows of Z12; labels = first three. */
        tg_tensor *z = ts_mat(dt, 3, 4, Z12, true), *y = ts_vec(dt, 3, labels, false);
        double want = 0, dz[12];
        for (size_t n = 0; n < 3; n++) {
            double zr[4], p[4], lse;
            for (size_t j = 0; j < 4; j++)
                zr[j] = dt == TG_F32 ? (double)(float)Z12[n * 4 + j] : Z12[n * 4 + j];
            softmax_row(zr, 4, p, &lse);
            size_t k = (size_t)labels[n];
            want += (lse - zr[k]) / 3;
            for (size_t j = 0; j < 4; j++) /* (softmax - onehot) / N */
                dz[n * 4 + j] = (p[j] - (j == k)) / 3;
        }
        check_loss(tg_cross_entropy, dt, z, y, want, dz, NULL, tol_of(dt));
        /* The labels may have any shape of N elements: read as N rows, not as one-hot axes. */
        tg_tensor *col = ts_leaf(dt, 2, TS_SHAPE(3, 1), labels, false),
                  *deep = ts_leaf(dt, 4, TS_SHAPE(1, 1, 1, 3), labels, false);
        tg_tensor_zero_grad(z); /* (each backward adds into z's gradient) */
        check_loss(tg_cross_entropy, dt, z, col, want, dz, NULL, tol_of(dt));
        tg_tensor_zero_grad(z);
        check_loss(tg_cross_entropy, dt, z, deep, want, dz, NULL, tol_of(dt));
        tg_tensor_free(col);
        tg_tensor_free(deep);
        tg_tensor_free(z);
        tg_tensor_free(y);
    }
}

Test(loss, cross_entropy_soft_and_onehot_targets)
{
    /* Soft targets whose rows sum to 1 (and one row summing to 0.5, where the gradient is
     * softmax * sum(t) - t, not softmax - t). */
    static const double soft[8] = {0.2, 0.8, 0.0, 0.0, 0.1, 0.1, 0.1, 0.2};
    tg_tensor *z = ts_mat(TG_F64, 2, 4, Z12, true), *t = ts_mat(TG_F64, 2, 4, soft, true);
    double want = 0, dz[8], dtt[8];
    for (size_t n = 0; n < 2; n++) {
        double p[4], lse, ts = 0;
        softmax_row(Z12 + n * 4, 4, p, &lse);
        for (size_t j = 0; j < 4; j++)
            ts += soft[n * 4 + j];
        for (size_t j = 0; j < 4; j++) {
            double logp = Z12[n * 4 + j] - lse;
            want -= soft[n * 4 + j] * logp / 2;
            dz[n * 4 + j] = (p[j] * ts - soft[n * 4 + j]) / 2;
            dtt[n * 4 + j] = -logp / 2;
        }
    }
    check_loss(tg_cross_entropy_soft, TG_F64, z, t, want, dz, dtt, 1e-12);
    tg_tensor_free(t);

    /* One-hot targets give the same as integer labels. */
    static const double labels[2] = {3, 1};
    tg_tensor *y = ts_vec(TG_F64, 2, labels, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *oh = tg_onehot(tape, y, 4);
    cr_assert_not_null(oh, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_rank(oh), 2);
    cr_assert_eq(tg_tensor_dim(oh, 0), 2);
    cr_assert_eq(tg_tensor_dim(oh, 1), 4);
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(tg_tensor_get(oh, i), (i == 3 || i == 5) ? 1.0 : 0.0, "onehot[%zu]", i);
    /* Labels of more axes keep them, with the classes' axis last, as PyTorch's one_hot:
     * [[2, 0], [1, 2]] gives (2, 2, 3); a 0-d label (3); labels of four axes are refused. */
    tg_tensor *y22 = ts_leaf(TG_F32, 2, TS_SHAPE(2, 2), TS_VALS(2, 0, 1, 2), false);
    tg_tensor *oh22 = tg_onehot(tape, y22, 3);
    cr_assert_not_null(oh22, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_rank(oh22), 3);
    cr_assert(tg_tensor_dim(oh22, 0) == 2 && tg_tensor_dim(oh22, 1) == 2 &&
              tg_tensor_dim(oh22, 2) == 3);
    cr_assert_eq(tg_tensor_dtype(oh22), TG_F32);
    static const double want22[12] = {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (size_t i = 0; i < 12; i++)
        cr_assert_eq(tg_tensor_get(oh22, i), want22[i], "onehot (2,2)[%zu]", i);
    tg_tensor *y0 = ts_scalar(TG_F64, 1, false);
    tg_tensor *oh0 = tg_onehot(tape, y0, 3);
    cr_assert(oh0 && tg_tensor_rank(oh0) == 1 && tg_tensor_dim(oh0, 0) == 3, "%s", tg_last_error());
    cr_assert(tg_tensor_get(oh0, 0) == 0 && tg_tensor_get(oh0, 1) == 1 &&
              tg_tensor_get(oh0, 2) == 0);
    tg_tensor *y4 = ts_leaf(TG_F64, 4, TS_SHAPE(1, 1, 1, 2), TS_VALS(0, 1), false);
    tg_tape *deep = tg_tape_new();
    cr_assert_null(tg_onehot(deep, y4, 2));
    cr_expect_eq(tg_tape_status(deep), TG_ESHAPE);
    ts_assert_has(tg_tape_error(deep),
                  "onehot: labels [1,1,1,2] would give a one-hot of 5 axes, more than 4");
    tg_tape_free(deep);
    /* No labels along an axis: no rows either. */
    tg_tensor *y20 = ts_leaf(TG_F64, 2, TS_SHAPE(2, 0), (double[]){0}, false);
    tg_tensor *oh20 = tg_onehot(tape, y20, 3);
    cr_assert(oh20 && tg_tensor_rank(oh20) == 3 && tg_tensor_dim(oh20, 0) == 2 &&
                  tg_tensor_dim(oh20, 1) == 0 && tg_tensor_dim(oh20, 2) == 3,
              "%s", tg_last_error());
    tg_tensor_free(y20);
    tg_tensor_free(y22);
    tg_tensor_free(y0);
    tg_tensor_free(y4);
    /* No classes at all: a clear refusal, not "class id in 0..0". */
    tg_tape *none = tg_tape_new();
    cr_assert_null(tg_onehot(none, y, 0));
    cr_expect_eq(tg_tape_status(none), TG_EINVAL);
    ts_assert_has(tg_tape_error(none), "onehot: n_classes is 0");
    tg_tape_free(none);
    tg_tensor *a = tg_cross_entropy_soft(tape, z, oh), *b = tg_cross_entropy(tape, z, y);
    cr_assert(a && b, "%s", tg_last_error());
    double lse0, lse1, p[4];
    softmax_row(Z12, 4, p, &lse0);
    softmax_row(Z12 + 4, 4, p, &lse1);
    double hand = ((lse0 - Z12[3]) + (lse1 - Z12[5])) / 2;
    ts_assert_close(tg_tensor_item(a), hand, 1e-12, 1e-12, "soft");
    ts_assert_close(tg_tensor_item(b), hand, 1e-12, 1e-12, "labels");
    tg_tape_free(tape);
    tg_tensor_free(y);
    tg_tensor_free(z);
}

Test(loss, cross_entropy_logits_of_1000_are_finite)
{
    /* Row 0: the label's logit is 1000 above the rest: loss 0, gradient 0. Row 1: the label's
     * logit is 2000 below the maximum: loss 2000, gradient (softmax - onehot)/2 = +-1/2. */
    static const double z4[4] = {1000, -1000, 1000, -1000};
    static const double labels[2] = {0, 1};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = DTYPES[d];
        tg_tensor *z = ts_mat(dt, 2, 2, z4, true), *y = ts_vec(dt, 2, labels, false);
        const double dz[4] = {0, 0, 0.5, -0.5};
        check_loss(tg_cross_entropy, dt, z, y, 1000.0, dz, NULL, tol_of(dt));
        tg_tensor_free(z);
        tg_tensor_free(y);
    }
}

Test(loss, cross_entropy_with_a_masked_class_is_finite)
{
    /* Row 0: logits (2, -inf, 0), label 0: the masked class has probability 0, so the loss is
     * log(1 + e^-2) and the gradient (softmax - onehot)/2 = (-1, 0, 1) / (2 (1 + e^2)). Row 1:
     * (1e308, -1e308, 0), label 0: class 1's logit minus the maximum overflows to -inf; the
     * loss is log(1 + e^-2e308 + e^-1e308) = 0, the gradient 0. A product onehot * log p
     * gave 0 * -inf = NaN for both rows. */
    static const double z6[6] = {2, -INFINITY, 0, 1e308, -1e308, 0};
    static const double labels[2] = {0, 0};
    const double q = 1 / (2 * (1 + exp(2.0)));
    const double dz[6] = {-q, 0, q, 0, 0, 0};
    tg_tensor *z = ts_mat(TG_F64, 2, 3, z6, true), *y = ts_vec(TG_F64, 2, labels, false);
    check_loss(tg_cross_entropy, TG_F64, z, y, log1p(exp(-2.0)) / 2, dz, NULL, 1e-12);
    tg_tensor_free(z);
    tg_tensor_free(y);
    /* f32: a -inf logit off the label in each row */
    static const double z4[4] = {1, -INFINITY, -INFINITY, 3};
    static const double labels2[2] = {0, 1};
    z = ts_mat(TG_F32, 2, 2, z4, true);
    y = ts_vec(TG_F32, 2, labels2, false);
    const double dz4[4] = {0, 0, 0, 0};
    check_loss(tg_cross_entropy, TG_F32, z, y, 0.0, dz4, NULL, tol_of(TG_F32));
    tg_tensor_free(z);
    tg_tensor_free(y);
}

/* ---- losses: gradcheck --------------------------------------------------------------------- */

static tg_tensor *gc_mse(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n, (void)ud;
    return tg_mse(tape, in[0], in[1]);
}
static tg_tensor *gc_bce(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n, (void)ud;
    return tg_bce(tape, in[0], in[1]);
}
static tg_tensor *gc_bce_logits(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n, (void)ud;
    return tg_bce_logits(tape, in[0], in[1]);
}
static tg_tensor *gc_ce(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    return tg_cross_entropy(tape, in[0], ud); /* labels are data, not an input */
}
static tg_tensor *gc_ce_soft(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n, (void)ud;
    return tg_cross_entropy_soft(tape, in[0], in[1]);
}

static void gradcheck(tg_check_fn fn, void *ud, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    double err[2] = {0, 0};
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.tol = 1e-6;
    tg_status st = tg_gradcheck(fn, ud, in, b ? 2 : 1, &opt, err);
    cr_assert_eq(st, TG_OK, "gradcheck: %s (errors %g, %g)", tg_last_error(), err[0], err[1]);
}

Test(loss, gradcheck_every_loss)
{
    static const double prob[6] = {0.9, 0.2, 0.5, 0.3, 0.75, 0.6};
    static const double soft[12] = {0.2, 0.3, 0.5, 0, 0.25, 0.25, 0.25, 0.25, 0, 0, 0, 1};
    static const double labels[3] = {2, 0, 3};
    tg_tensor *p = ts_mat(TG_F64, 2, 3, P6, false), *t = ts_mat(TG_F64, 2, 3, T6, false);
    gradcheck(gc_mse, NULL, p, t);
    tg_tensor *pr = ts_mat(TG_F64, 2, 3, prob, false), *t01 = ts_mat(TG_F64, 2, 3, soft, false);
    gradcheck(gc_bce, NULL, pr, t01);
    gradcheck(gc_bce_logits, NULL, p, t01);
    tg_tensor *z = ts_mat(TG_F64, 3, 4, Z12, false), *st = ts_mat(TG_F64, 3, 4, soft, false);
    tg_tensor *y = ts_vec(TG_F64, 3, labels, false);
    gradcheck(gc_ce, y, z, NULL);
    gradcheck(gc_ce_soft, NULL, z, st);
    tg_tensor *all[] = {p, t, pr, t01, z, st, y};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        tg_tensor_free(all[i]);
}

/* ---- losses: errors ------------------------------------------------------------------------ */

static void expect_ce_error(const double *labels, size_t n, tg_status want, const char *needle)
{
    tg_tensor *z = ts_mat(TG_F64, 3, 4, Z12, true), *y = ts_vec(TG_F64, n, labels, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, z, y);
    cr_assert_null(loss);
    cr_assert_eq(tg_tape_status(tape), want, "%s", tg_tape_error(tape));
    ts_assert_has(tg_tape_error(tape), needle);
    ts_assert_has(tg_last_error(), needle);
    tg_tape_free(tape);
    tg_tensor_free(z);
    tg_tensor_free(y);
}

Test(loss, cross_entropy_bad_labels)
{
    expect_ce_error((const double[]){0, 1.5, 2}, 3, TG_EINVAL, "label 1 is 1.5");
    expect_ce_error((const double[]){0, 1, 4}, 3, TG_EINVAL, "label 2 is 4");
    expect_ce_error((const double[]){-1, 1, 2}, 3, TG_EINVAL, "cross_entropy: label 0 is -1");
    expect_ce_error((const double[]){0, NAN, 2}, 3, TG_EINVAL, "label 1 is nan");
    expect_ce_error((const double[]){0, 1}, 2, TG_ESHAPE, "[3,4]");
}

Test(loss, shape_and_dtype_errors)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = ts_mat(TG_F64, 2, 3, P6, true), *b = ts_mat(TG_F64, 3, 2, T6, false);
    cr_assert_null(tg_mse(tape, a, b));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE, "%s", tg_tape_error(tape));
    tg_tape_reset(tape);
    cr_assert_null(tg_cross_entropy_soft(tape, a, b));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE, "%s", tg_tape_error(tape));
    ts_assert_has(tg_tape_error(tape), "cross_entropy_soft: "); /* the function called */
    tg_tape_reset(tape);
    tg_tensor *v = ts_vec(TG_F64, 6, P6, true);
    cr_assert_null(tg_cross_entropy_soft(tape, v, v));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "2-D");
    tg_tape_reset(tape);
    tg_tensor *f = ts_mat(TG_F32, 2, 3, T6, false);
    cr_assert_null(tg_bce_logits(tape, a, f));
    cr_assert_eq(tg_tape_status(tape), TG_EDTYPE);
    tg_tape_reset(tape);
    cr_assert_null(tg_mse(tape, a, NULL));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(v);
    tg_tensor_free(f);
}

/* ---- activations and initializers ---------------------------------------------------------- */

Test(activation, names_round_trip)
{
    for (int a = TG_ACT_IDENTITY; a <= TG_ACT_RELU; a++) {
        tg_activation back;
        cr_assert_eq(tg_activation_parse(tg_activation_name((tg_activation)a), &back), TG_OK);
        cr_assert_eq((int)back, a);
    }
    cr_assert_str_eq(tg_activation_name(TG_ACT_TANH), "tanh");
    cr_assert_str_eq(tg_activation_name((tg_activation)9), "?");
    tg_activation out;
    cr_assert_eq(tg_activation_parse("softplus", &out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "'softplus'");
    cr_assert_eq(tg_activation_parse(NULL, &out), TG_EINVAL);
}

Test(activation, applies_each)
{
    static const double x4[4] = {-2.0, -0.5, 0.0, 1.5};
    tg_tensor *x = ts_vec(TG_F64, 4, x4, true);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_activate(tape, x, TG_ACT_IDENTITY), x, "identity returns x");
    cr_assert_eq(tg_tape_size(tape), 0, "identity records nothing");
    tg_tensor *s = tg_activate(tape, x, TG_ACT_SIGMOID), *t = tg_activate(tape, x, TG_ACT_TANH),
              *r = tg_activate(tape, x, TG_ACT_RELU);
    for (size_t i = 0; i < 4; i++) {
        ts_assert_close(tg_tensor_get(s, i), sigmoid(x4[i]), 1e-15, 1e-15, "sigmoid[%zu]", i);
        ts_assert_close(tg_tensor_get(t, i), tanh(x4[i]), 1e-15, 1e-15, "tanh[%zu]", i);
        cr_assert_eq(tg_tensor_get(r, i), fmax(x4[i], 0));
    }
    cr_assert_null(tg_activate(tape, x, (tg_activation)42));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "unknown activation 42");
    cr_assert_null(tg_activate(tape, x, TG_ACT_IDENTITY), "quiet after an error");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Sample mean and variance of a leaf's values. */
static void moments(tg_tensor *w, double *mean, double *var, double *amax)
{
    size_t n = tg_tensor_numel(w);
    double s = 0, s2 = 0;
    *amax = 0;
    for (size_t i = 0; i < n; i++) {
        double v = tg_tensor_get(w, i);
        s += v;
        s2 += v * v;
        *amax = fmax(*amax, fabs(v));
    }
    *mean = s / (double)n;
    *var = s2 / (double)n - *mean * *mean;
}

Test(init, variance_of_each_initializer)
{
    const size_t in = 300, out = 500, shape[2] = {in, out};
    const struct {
        tg_init init;
        double var;   /* the intended variance */
        double bound; /* uniform: the bound a; normal: 0 */
    } cases[4] = {
        {TG_INIT_XAVIER_UNIFORM, 2.0 / (in + out), sqrt(6.0 / (in + out))},
        {TG_INIT_XAVIER_NORMAL, 2.0 / (in + out), 0},
        {TG_INIT_HE_UNIFORM, 2.0 / in, sqrt(6.0 / in)},
        {TG_INIT_HE_NORMAL, 2.0 / in, 0},
    };
    for (int c = 0; c < 4; c++) {
        for (int d = 0; d < 2; d++) {
            tg_tensor *w = tg_tensor_zeros(DTYPES[d], 2, shape);
            tg_rng rng;
            tg_rng_seed(&rng, 7);
            cr_assert_eq(tg_init_weight(w, cases[c].init, &rng), TG_OK, "%s", tg_last_error());
            double mean, var, amax;
            moments(w, &mean, &var, &amax);
            /* 150,000 samples: the sample variance is within ~0.5% (normal) of the truth. */
            cr_assert(fabs(var / cases[c].var - 1) < 0.02, "init %d: variance %g, want %g", c, var,
                      cases[c].var);
            cr_assert(fabs(mean) < 0.02 * sqrt(cases[c].var), "init %d: mean %g", c, mean);
            if (cases[c].bound > 0) {
                cr_assert_leq(amax, cases[c].bound * (1 + 1e-7), "init %d: |w| <= a", c);
                cr_assert_geq(amax, cases[c].bound * 0.999, "init %d: the range is used", c);
            } else {
                cr_assert_gt(amax, 4 * sqrt(cases[c].var), "init %d: normal tails", c);
            }
            tg_tensor_free(w);
        }
    }
}

Test(init, deterministic_for_a_seed)
{
    const size_t shape[2] = {7, 5};
    tg_tensor *a = tg_tensor_zeros(TG_F64, 2, shape), *b = tg_tensor_zeros(TG_F64, 2, shape);
    tg_rng r1, r2;
    tg_rng_seed(&r1, 123);
    tg_rng_seed(&r2, 123);
    cr_assert_eq(tg_init_weight(a, TG_INIT_HE_NORMAL, &r1), TG_OK);
    cr_assert_eq(tg_init_weight(b, TG_INIT_HE_NORMAL, &r2), TG_OK);
    cr_assert_eq(memcmp(tg_tensor_data(a), tg_tensor_data(b), 35 * sizeof(double)), 0);
    /* The draw order is row-major, one tg_rng_uniform per element: a * (2u - 1). */
    tg_rng_seed(&r1, 99);
    cr_assert_eq(tg_init_weight(a, TG_INIT_XAVIER_UNIFORM, &r1), TG_OK);
    tg_rng_seed(&r2, 99);
    double bound = sqrt(6.0 / 12);
    for (size_t i = 0; i < 35; i++)
        cr_assert_eq(tg_tensor_get(a, i), bound * (2 * tg_rng_uniform(&r2) - 1), "w[%zu]", i);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(init, errors)
{
    const size_t s1[1] = {4}, s2[2] = {2, 2};
    tg_tensor *v = tg_tensor_zeros(TG_F64, 1, s1), *w = tg_tensor_zeros(TG_F64, 2, s2);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    cr_assert_eq(tg_init_weight(v, TG_INIT_HE_NORMAL, &rng), TG_EINVAL);
    ts_assert_has(tg_last_error(), "[4]");
    cr_assert_eq(tg_init_weight(w, (tg_init)9, &rng), TG_EINVAL);
    cr_assert_eq(tg_init_weight(w, TG_INIT_HE_NORMAL, NULL), TG_EINVAL);
    cr_assert_eq(tg_init_weight(NULL, TG_INIT_HE_NORMAL, &rng), TG_EINVAL);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_add(tape, w, w);
    cr_assert_eq(tg_init_weight(y, TG_INIT_HE_NORMAL, &rng), TG_EINVAL, "not a leaf");
    tg_tape_free(tape);
    tg_tensor_free(v);
    tg_tensor_free(w);
}

/* ---- Linear ---------------------------------------------------------------------------------- */

Test(linear, value_gradients_and_shape_errors)
{
    /* x (2,3), w (3,2), b (2): y = x w + b; loss = sum(y): dx = rows of sum_j w[k,j],
     * dw[k,j] = sum_r x[r,k], db = rows. */
    static const double w6[6] = {0.5, -1.0, 2.0, 0.25, -0.5, 1.5}, b2[2] = {0.1, -0.2};
    tg_tensor *x = ts_mat(TG_F64, 2, 3, P6, true), *w = ts_mat(TG_F64, 3, 2, w6, true),
              *b = ts_vec(TG_F64, 2, b2, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_linear(tape, x, w, b);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert(tg_tensor_dim(y, 0) == 2 && tg_tensor_dim(y, 1) == 2);
    for (size_t r = 0; r < 2; r++)
        for (size_t j = 0; j < 2; j++) {
            double want = b2[j];
            for (size_t k = 0; k < 3; k++)
                want += P6[r * 3 + k] * w6[k * 2 + j];
            ts_assert_close(tg_tensor_get(y, r * 2 + j), want, 1e-15, 1e-15, "y[%zu]", r * 2 + j);
        }
    cr_assert_eq(tg_backward(tape, tg_sum(tape, y, TG_ALL_AXES, false)), TG_OK);
    for (size_t r = 0; r < 2; r++)
        for (size_t k = 0; k < 3; k++)
            ts_assert_close(tg_tensor_grad_get(x, r * 3 + k), w6[k * 2] + w6[k * 2 + 1], 1e-15,
                            1e-15, "dx[%zu]", r * 3 + k);
    for (size_t k = 0; k < 3; k++)
        for (size_t j = 0; j < 2; j++)
            ts_assert_close(tg_tensor_grad_get(w, k * 2 + j), P6[k] + P6[3 + k], 1e-15, 1e-15,
                            "dw[%zu]", k * 2 + j);
    cr_assert(tg_tensor_grad_get(b, 0) == 2 && tg_tensor_grad_get(b, 1) == 2);
    tg_tape_reset(tape);
    cr_assert_null(tg_linear(tape, x, x, b));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "linear: x [2,3], w [2,3], b [2]");
    tg_tape_reset(tape);
    cr_assert_null(tg_linear(tape, x, w, w));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    tg_tape_reset(tape);
    cr_assert_null(tg_linear(tape, x, w, NULL));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
}

/* ---- the MLP --------------------------------------------------------------------------------- */

static tg_mlp_spec spec3(tg_dtype dt)
{
    /* 3 -> 5 (tanh) -> 4 (relu) -> 2 (identity) */
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 3;
    s.sizes[0] = 3, s.sizes[1] = 5, s.sizes[2] = 4, s.sizes[3] = 2;
    s.act[0] = TG_ACT_TANH, s.act[1] = TG_ACT_RELU, s.act[2] = TG_ACT_IDENTITY;
    s.dtype = dt;
    return s;
}

static tg_model *new_model(const tg_mlp_spec *s, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_model *m = NULL;
    cr_assert_eq(tg_model_new(s, TG_INIT_XAVIER_UNIFORM, &rng, &m), TG_OK, "%s", tg_last_error());
    cr_assert_not_null(m);
    return m;
}

static void expect_spec_error(const tg_mlp_spec *s, const char *needle)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = (tg_model *)&rng; /* must be reset to NULL */
    cr_assert_eq(tg_model_new(s, TG_INIT_HE_UNIFORM, &rng, &m), TG_EINVAL, "%s", needle);
    cr_assert_null(m);
    ts_assert_has(tg_last_error(), needle);
}

Test(mlp, spec_validation)
{
    tg_mlp_spec s = spec3(TG_F64);
    s.n_layers = 0;
    expect_spec_error(&s, "n_layers is 0");
    s.n_layers = TG_MLP_MAX_LAYERS + 1;
    expect_spec_error(&s, "n_layers is 17");
    s = spec3(TG_F64);
    s.sizes[2] = 0;
    expect_spec_error(&s, "sizes[2] is 0");
    s = spec3(TG_F64);
    s.act[1] = (tg_activation)7;
    expect_spec_error(&s, "act[1] is 7");
    s = spec3(TG_F64);
    s.dtype = (tg_dtype)5;
    expect_spec_error(&s, "unknown dtype 5");
    s = spec3(TG_F64);
    s.sizes[1] = SIZE_MAX / 2;
    expect_spec_error(&s, "too many parameters");
    expect_spec_error(NULL, "spec is NULL");

    s = spec3(TG_F64);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m;
    cr_assert_eq(tg_model_new(&s, (tg_init)11, &rng, &m), TG_EINVAL);
    cr_assert_eq(tg_model_new(&s, TG_INIT_HE_NORMAL, NULL, &m), TG_EINVAL);
    cr_assert_eq(tg_model_new(&s, TG_INIT_HE_NORMAL, &rng, NULL), TG_EINVAL);
    /* Entries past n_layers are ignored, and zeroed in the model's copy. */
    s.sizes[4] = 77;
    s.act[3] = (tg_activation)99;
    m = new_model(&s, 1);
    cr_assert_eq(tg_model_spec(m)->sizes[4], 0);
    cr_assert_eq(tg_model_spec(m)->act[3], TG_ACT_IDENTITY);
    tg_model_free(m);
    tg_model_free(NULL);
}

Test(mlp, parameters_names_shapes_order_and_blocks)
{
    for (int d = 0; d < 2; d++) {
        tg_mlp_spec s = spec3(DTYPES[d]);
        tg_model *m = new_model(&s, 5);
        cr_assert_eq(tg_model_param_count(m), 6);
        cr_assert_eq(tg_model_numel(m), 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2);
        static const char *names[6] = {"layer0.weight", "layer0.bias", "layer1.weight",
                                       "layer1.bias",   "layer2.weight", "layer2.bias"};
        unsigned char *pb = tg_model_param_data(m), *gb = tg_model_grad_data(m);
        cr_assert_eq((uintptr_t)pb % 64, 0, "parameter block aligned");
        cr_assert_eq((uintptr_t)gb % 64, 0, "gradient block aligned");
        size_t es = DTYPES[d] == TG_F64 ? 8 : 4, off = 0;
        for (size_t i = 0; i < 6; i++) {
            tg_tensor *p = tg_model_param(m, i);
            size_t l = i / 2;
            cr_assert_str_eq(tg_model_param_name(m, i), names[i]);
            cr_assert_str_eq(tg_tensor_name(p), names[i], "the leaf carries its name");
            cr_assert(tg_tensor_is_leaf(p) && tg_tensor_requires_grad(p));
            cr_assert_eq(tg_tensor_dtype(p), DTYPES[d]);
            if (i % 2 == 0) {
                cr_assert_eq(tg_tensor_rank(p), 2);
                cr_assert_eq(tg_tensor_dim(p, 0), s.sizes[l]);
                cr_assert_eq(tg_tensor_dim(p, 1), s.sizes[l + 1]);
            } else {
                cr_assert_eq(tg_tensor_rank(p), 1);
                cr_assert_eq(tg_tensor_dim(p, 0), s.sizes[l + 1]);
                for (size_t k = 0; k < tg_tensor_numel(p); k++)
                    cr_assert_eq(tg_tensor_get(p, k), 0.0, "biases start at 0");
            }
            cr_assert_eq(tg_tensor_data(p), pb + off * es, "param %zu in the block", i);
            cr_assert_eq(tg_tensor_grad_data(p), gb + off * es, "grad %zu in the block", i);
            off += tg_tensor_numel(p);
        }
        cr_assert_eq(off, tg_model_numel(m));
        cr_assert_null(tg_model_param(m, 6));
        cr_assert_null(tg_model_param_name(m, 6));
        tg_model_free(m);
    }
}

Test(mlp, weights_follow_the_documented_draw_order)
{
    tg_mlp_spec s = spec3(TG_F64);
    tg_model *m = new_model(&s, 2024);
    tg_rng rng;
    tg_rng_seed(&rng, 2024);
    for (int l = 0; l < 3; l++) {
        const size_t shape[2] = {s.sizes[l], s.sizes[l + 1]};
        tg_tensor *w = tg_tensor_zeros(TG_F64, 2, shape);
        cr_assert_eq(tg_init_weight(w, TG_INIT_XAVIER_UNIFORM, &rng), TG_OK);
        cr_assert_eq(memcmp(tg_tensor_data(w), tg_tensor_data(tg_model_param(m, 2 * (size_t)l)),
                            tg_tensor_numel(w) * 8),
                     0, "layer %d", l);
        tg_tensor_free(w);
    }
    tg_model *same = new_model(&s, 2024), *other = new_model(&s, 2025);
    size_t bytes = tg_model_numel(m) * 8;
    cr_assert_eq(memcmp(tg_model_param_data(m), tg_model_param_data(same), bytes), 0);
    cr_assert_neq(memcmp(tg_model_param_data(m), tg_model_param_data(other), bytes), 0);
    tg_model_free(m);
    tg_model_free(same);
    tg_model_free(other);
}

/* The forward pass by hand, in doubles, from the parameter values. */
static void forward_by_hand(tg_model *m, const double *x, size_t rows, double *out)
{
    const tg_mlp_spec *s = tg_model_spec(m);
    double h[64 * 8], nh[64 * 8];
    memcpy(h, x, rows * s->sizes[0] * sizeof *h);
    for (int l = 0; l < s->n_layers; l++) {
        tg_tensor *W = tg_model_param(m, 2 * (size_t)l), *b = tg_model_param(m, 2 * (size_t)l + 1);
        size_t in = s->sizes[l], o = s->sizes[l + 1];
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < o; j++) {
                double acc = tg_tensor_get(b, j);
                for (size_t k = 0; k < in; k++)
                    acc += h[r * in + k] * tg_tensor_get(W, k * o + j);
                switch (s->act[l]) {
                case TG_ACT_IDENTITY: break;
                case TG_ACT_SIGMOID: acc = sigmoid(acc); break;
                case TG_ACT_TANH: acc = tanh(acc); break;
                case TG_ACT_RELU: acc = fmax(acc, 0); break;
                }
                nh[r * o + j] = acc;
            }
        }
        memcpy(h, nh, rows * o * sizeof *h);
    }
    memcpy(out, h, rows * s->sizes[s->n_layers] * sizeof *out);
}

Test(mlp, forward_shape_and_values)
{
    static const double x[12] = {0.5, -1.0, 2.0, 0.1, 0.2, 0.3, -0.7, 1.1, 0.0, 3.0, -2.0, 0.4};
    for (int d = 0; d < 2; d++) {
        tg_mlp_spec s = spec3(DTYPES[d]);
        s.act[2] = TG_ACT_SIGMOID;
        tg_model *m = new_model(&s, 9);
        /* Non-zero biases, so their broadcast over rows is tested too. */
        for (size_t i = 1; i < 6; i += 2)
            for (size_t k = 0; k < tg_tensor_numel(tg_model_param(m, i)); k++)
                tg_tensor_set(tg_model_param(m, i), k, 0.1 * (double)(k + i));
        tg_tensor *X = ts_mat(DTYPES[d], 4, 3, x, false);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_model_forward(tape, m, X);
        cr_assert_not_null(y, "%s", tg_last_error());
        cr_assert_eq(tg_tensor_rank(y), 2);
        cr_assert_eq(tg_tensor_dim(y, 0), 4);
        cr_assert_eq(tg_tensor_dim(y, 1), 2);
        double xr[12], want[8];
        for (int i = 0; i < 12; i++)
            xr[i] = tg_tensor_get(X, (size_t)i);
        forward_by_hand(m, xr, 4, want);
        double tol = DTYPES[d] == TG_F64 ? 1e-13 : 1e-5;
        ts_assert_values(y, want, 8, tol, tol, "y");
        tg_tape_free(tape);
        tg_tensor_free(X);
        tg_model_free(m);
    }
}

Test(mlp, forward_errors)
{
    tg_mlp_spec s = spec3(TG_F32);
    tg_model *m = new_model(&s, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *bad = ts_mat(TG_F32, 2, 4, Z12, false); /* 4 columns, the model wants 3 */
    cr_assert_null(tg_model_forward(tape, m, bad));
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE);
    ts_assert_has(tg_tape_error(tape), "[2,4]");
    ts_assert_has(tg_tape_error(tape), "(rows, 3)");
    tg_tape_reset(tape);
    tg_tensor *f64 = ts_mat(TG_F64, 2, 3, P6, false);
    cr_assert_null(tg_model_forward(tape, m, f64));
    cr_assert_eq(tg_tape_status(tape), TG_EDTYPE, "%s", tg_tape_error(tape));
    tg_tape_reset(tape);
    cr_assert_null(tg_model_forward(tape, m, NULL));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    tg_tape_reset(tape);
    cr_assert_null(tg_model_forward(tape, NULL, bad));
    cr_assert_eq(tg_tape_status(tape), TG_EINVAL);
    cr_assert_null(tg_model_forward(NULL, m, bad));
    tg_tape_free(tape);
    tg_tensor_free(bad);
    tg_tensor_free(f64);
    tg_model_free(m);
}

Test(mlp, backward_fills_the_gradient_block)
{
    /* One identity layer, y = X W + b, loss = mse(y, T) over (N, O) = (3, 2) elements:
     * dW = 2 X^T (y - T) / 6 and db = 2 sum_rows(y - T) / 6. */
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 1, s.sizes[0] = 2, s.sizes[1] = 2, s.dtype = TG_F64;
    tg_model *m = new_model(&s, 3);
    static const double x[6] = {1, 2, -1, 0.5, 0.25, -3}, t[6] = {0.5, -0.5, 1, 2, 0, 1};
    tg_tensor *X = ts_mat(TG_F64, 3, 2, x, false), *T = ts_mat(TG_F64, 3, 2, t, false);
    double y[6];
    forward_by_hand(m, x, 3, y);
    double dW[4] = {0}, db[2] = {0};
    for (size_t r = 0; r < 3; r++)
        for (size_t j = 0; j < 2; j++) {
            double e = 2 * (y[r * 2 + j] - t[r * 2 + j]) / 6;
            db[j] += e;
            for (size_t k = 0; k < 2; k++)
                dW[k * 2 + j] += x[r * 2 + k] * e;
        }
    tg_tape *tape = tg_tape_new();
    for (int pass = 1; pass <= 2; pass++) {
        tg_tensor *loss = tg_mse(tape, tg_model_forward(tape, m, X), T);
        cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
        const double *g = tg_model_grad_data(m); /* W (4), then b (2) */
        for (size_t i = 0; i < 4; i++)
            ts_assert_close(g[i], pass * dW[i], 1e-13, 1e-13, "dW[%zu]", i);
        for (size_t i = 0; i < 2; i++)
            ts_assert_close(g[4 + i], pass * db[i], 1e-13, 1e-13, "db[%zu]", i);
        tg_tape_reset(tape);
    }
    tg_model_zero_grad(m);
    const double *g = tg_model_grad_data(m);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(g[i], 0.0, "zero_grad: g[%zu]", i);
    cr_assert_eq(tg_tensor_grad_data(tg_model_param(m, 0)), g, "the grad buffer is kept");
    tg_tape_free(tape);
    tg_tensor_free(X);
    tg_tensor_free(T);
    tg_model_free(m);
}

/* A gradient block long enough to be zeroed over the pool (2 x 300 x 300 weights and their
 * biases, past twice the pool's streaming grain), at 1 to 3 threads: every element zero, the
 * ones at the ranges' edges too. */
Test(mlp, zero_grad_clears_a_long_block_at_any_thread_count)
{
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2, s.sizes[0] = 300, s.sizes[1] = 300, s.sizes[2] = 300, s.dtype = TG_F32;
    tg_model *m = new_model(&s, 5);
    const size_t n = tg_model_numel(m);
    cr_assert_eq(n, 2 * (300 * 300 + 300));
    for (int threads = 1; threads <= 3; threads++) {
        cr_assert_eq(tg_set_num_threads(threads), TG_OK);
        float *g = tg_model_grad_data(m);
        for (size_t i = 0; i < n; i++)
            g[i] = 1.0f + (float)i;
        tg_model_zero_grad(m);
        size_t nonzero = 0;
        for (size_t i = 0; i < n; i++)
            nonzero += g[i] != 0.0f;
        cr_assert_eq(nonzero, 0, "%d threads: %zu of %zu gradients not zeroed", threads, nonzero,
                     n);
    }
    tg_model_free(m);
}

Test(mlp, training_reduces_the_loss)
{
    /* XOR with 2 -> 8 (tanh) -> 1 (identity) and bce_logits, plain gradient steps on the
     * flat blocks: the point is that the blocks are what optimizers can work on. */
    tg_mlp_spec s = TG_MLP_SPEC_INIT;
    s.n_layers = 2, s.sizes[0] = 2, s.sizes[1] = 8, s.sizes[2] = 1;
    s.act[0] = TG_ACT_TANH, s.dtype = TG_F64;
    tg_model *m = new_model(&s, 4);
    static const double x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, t[4] = {0, 1, 1, 0};
    tg_tensor *X = ts_mat(TG_F64, 4, 2, x, false), *T = ts_mat(TG_F64, 4, 1, t, false);
    tg_tape *tape = tg_tape_new();
    double first = 0, last = 0;
    for (int step = 0; step < 500; step++) {
        tg_model_zero_grad(m);
        tg_tensor *loss = tg_bce_logits(tape, tg_model_forward(tape, m, X), T);
        cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
        last = tg_tensor_item(loss);
        if (step == 0)
            first = last;
        double *w = tg_model_param_data(m);
        const double *g = tg_model_grad_data(m);
        for (size_t i = 0; i < tg_model_numel(m); i++)
            w[i] -= 0.5 * g[i];
        tg_tape_reset(tape);
    }
    cr_assert_lt(last, 0.1 * first, "loss %g -> %g", first, last);
    tg_tape_free(tape);
    tg_tensor_free(X);
    tg_tensor_free(T);
    tg_model_free(m);
}

/* ---- metadata -------------------------------------------------------------------------------- */

Test(metadata, standardization_task_and_columns)
{
    tg_mlp_spec s = spec3(TG_F64);
    tg_model *m = new_model(&s, 1);
    size_t n = 99, k = 99;
    const double *mean = (const double *)&n, *std = mean;
    cr_assert_eq(tg_model_standardization(m, &n, &mean, &std), TG_OK);
    cr_assert(n == 0 && !mean && !std, "none by default");
    cr_assert_eq(tg_model_task(m, &k), TG_TASK_REGRESS);
    cr_assert_eq(k, 0);
    cr_assert_null(tg_model_feature_name(m, 0));
    cr_assert_null(tg_model_target_name(m));

    double mu[3] = {1, 2, 3}, sd[3] = {0.5, 1, 2};
    cr_assert_eq(tg_model_set_standardization(m, 3, mu, sd), TG_OK);
    mu[0] = 100; /* a copy was made */
    cr_assert_eq(tg_model_standardization(m, &n, &mean, &std), TG_OK);
    cr_assert(n == 3 && mean[0] == 1 && mean[2] == 3 && std[0] == 0.5 && std[2] == 2);
    cr_assert_eq(tg_model_set_standardization(m, 2, mu, sd), TG_EINVAL, "n must be sizes[0]");
    ts_assert_has(tg_last_error(), "3 inputs");
    sd[1] = 0;
    cr_assert_eq(tg_model_set_standardization(m, 3, mu, sd), TG_EINVAL, "std 0");
    sd[1] = NAN;
    cr_assert_eq(tg_model_set_standardization(m, 3, mu, sd), TG_EINVAL, "std NaN");
    cr_assert_eq(tg_model_set_standardization(m, 3, mu, NULL), TG_EINVAL);
    tg_model_standardization(m, &n, &mean, &std);
    cr_assert(n == 3 && mean[0] == 1, "failed sets keep the old values");
    cr_assert_eq(tg_model_set_standardization(m, 3, NULL, NULL), TG_OK);
    tg_model_standardization(m, &n, &mean, &std);
    cr_assert(n == 0 && !mean, "NULL clears");

    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 3), TG_OK);
    cr_assert_eq(tg_model_task(m, &k), TG_TASK_CLASSIFY);
    cr_assert_eq(k, 3);
    cr_assert_eq(tg_model_set_task(m, TG_TASK_CLASSIFY, 1), TG_EINVAL);
    cr_assert_eq(tg_model_set_task(m, (tg_task)5, 0), TG_EINVAL);
    cr_assert_eq(tg_model_task(m, &k), TG_TASK_CLASSIFY, "unchanged");
    cr_assert_eq(tg_model_set_task(m, TG_TASK_REGRESS, 7), TG_OK);
    cr_assert_eq(tg_model_task(m, &k), TG_TASK_REGRESS);
    cr_assert_eq(k, 0, "regression has no classes");

    const char *cols[3] = {"alpha", "beta", "gamma"};
    cr_assert_eq(tg_model_set_columns(m, cols, "y"), TG_OK);
    cr_assert_str_eq(tg_model_feature_name(m, 2), "gamma");
    cr_assert_str_eq(tg_model_target_name(m), "y");
    cr_assert_null(tg_model_feature_name(m, 3));
    const char *holes[3] = {"a", NULL, "c"};
    cr_assert_eq(tg_model_set_columns(m, holes, NULL), TG_EINVAL);
    cr_assert_str_eq(tg_model_feature_name(m, 0), "alpha", "failed sets keep the old values");
    cr_assert_eq(tg_model_set_columns(m, NULL, "target"), TG_OK);
    cr_assert_null(tg_model_feature_name(m, 0));
    cr_assert_str_eq(tg_model_target_name(m), "target");
    char longname[4098];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(tg_model_set_columns(m, NULL, longname), TG_EINVAL);
    tg_model_free(m);
}

/* ---- out of memory --------------------------------------------------------------------------- */

static size_t oom_model_new(size_t n, void *ud)
{
    const tg_mlp_spec *s = ud;
    const char *cols[3] = {"a", "b", "c"};
    const double mu[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = NULL;
    ts_alloc_fail_at(n);
    tg_status st = tg_model_new(s, TG_INIT_HE_NORMAL, &rng, &m);
    if (st == TG_OK)
        st = tg_model_set_standardization(m, 3, mu, sd);
    if (st == TG_OK)
        st = tg_model_set_columns(m, cols, "target");
    ts_alloc_fail_at(0);
    if (st != TG_OK)
        ts_assert_enomem(st, "model_new and metadata", n);
    tg_model_free(m);
    return st != TG_OK;
}

Test(oom, model_new_and_metadata_fail_cleanly_at_every_allocation)
{
    tg_mlp_spec s = spec3(TG_F32);
    /* Success means no allocation was refused (none is optional). */
    ts_oom_drive("model_new", oom_model_new, &s,
                 (ts_oom_opts){.min_failing = 1, .max_runs = 1000, .no_fallback = true});
}

/* A target whose broadcast would change the prediction's shape is refused: pred (3, 1) and
 * target (3) would broadcast to (3, 3) and average nine pairs where three were meant. Shapes
 * that broadcast to pred's without changing it still work. */
Test(loss, targets_that_would_reshape_the_prediction_are_refused)
{
    static const double v3[3] = {0.2, 0.5, 0.7};
    tg_tensor *pred = ts_leaf(TG_F64, 2, TS_SHAPE(3, 1), v3, true);
    tg_tensor *bad = ts_vec(TG_F64, 3, v3, false);
    tg_tensor *col = ts_leaf(TG_F64, 2, TS_SHAPE(3, 1), v3, false);
    tg_tensor *one = ts_scalar(TG_F64, 0.5, false);
    tg_tensor *(*const losses[3])(tg_tape *, tg_tensor *, tg_tensor *) = {tg_mse, tg_bce,
                                                                         tg_bce_logits};
    static const char *const names[3] = {"mse", "bce", "bce_logits"};
    for (int k = 0; k < 3; k++) {
        tg_tape *tape = tg_tape_new();
        cr_expect_null(losses[k](tape, pred, bad), "%s accepted (3) against (3,1)", names[k]);
        cr_expect_eq(tg_tape_status(tape), TG_ESHAPE);
        char want[128];
        snprintf(want, sizeof want, "%s: the target [3] does not broadcast to the prediction's "
                                    "shape [3,1]", names[k]);
        ts_assert_has(tg_tape_error(tape), want);
        tg_tape_reset(tape);
        cr_expect_not_null(losses[k](tape, pred, col), "%s: same shape", names[k]);
        cr_expect_not_null(losses[k](tape, pred, one), "%s: a 0-d target", names[k]);
        tg_tape_free(tape);
    }
    /* mse of equal shapes is exact: (0.2-0.5)^2 + 0 + (0.7-0.5)^2 over 3 */
    tg_tape *tape = tg_tape_new();
    ts_assert_close(tg_tensor_item(tg_mse(tape, pred, one)), (0.09 + 0.04) / 3, 1e-15, 1e-15,
                    "mse against 0.5");
    tg_tape_free(tape);
    tg_tensor_free(pred);
    tg_tensor_free(bad);
    tg_tensor_free(col);
    tg_tensor_free(one);
}
