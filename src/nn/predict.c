/* predict.c: a model applied to raw feature rows (tg_model_predict, tg_model_predict_proba),
 * the one place that turns a model's outputs into classes, values or probabilities: the
 * stored standardization, a forward pass on a scratch tape that records no gradients, in
 * chunks of rows so that memory stays bounded whatever the row count. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>

/* Rows per forward pass: the scratch (inputs and activations) stays bounded for any n. */
#define PREDICT_CHUNK 1024

/* How a model's outputs become a prediction. */
typedef enum reading {
    READ_VALUES, /* regression: every output is a value */
    READ_ARGMAX, /* classification, one logit per class */
    READ_LOGIT,  /* classification into 2 classes from 1 logit: class 1 when z > 0 */
} reading;

/* How to read the outputs of `model`, or TG_EINVAL for a classifier whose output count does
 * not fit its class count (it would predict classes that do not exist, or never some). */
static tg_status reading_of(const tg_model *model, const char *who, reading *out)
{
    const tg_mlp_spec *s = tg_model_spec(model);
    size_t n_out = s->sizes[s->n_layers], n_classes;
    if (tg_model_task(model, &n_classes) == TG_TASK_REGRESS) {
        *out = READ_VALUES;
    } else if (n_out == n_classes) {
        *out = READ_ARGMAX;
    } else if (n_classes == 2 && n_out == 1) {
        *out = READ_LOGIT;
    } else {
        return tg__error(TG_EINVAL,
                         "%s: a classifier into %zu classes has %zu outputs (expected %zu, one "
                         "logit per class, or 1 logit for 2 classes)",
                         who, n_classes, n_out, n_classes);
    }
    return TG_OK;
}

size_t tg_model_predict_width(const tg_model *model)
{
    reading how;
    if (!model || reading_of(model, "model_predict_width", &how) != TG_OK)
        return 0;
    const tg_mlp_spec *s = tg_model_spec(model);
    return how == READ_VALUES ? s->sizes[s->n_layers] : 1;
}

/* Element i of n values of `dtype` at p, as a double. */
static double at(const void *p, tg_dtype dtype, size_t i)
{
    return dtype == TG_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* "row R, feature J 'name'" (the name when the model has one) into buf, for error messages. */
static const char *where_in(const tg_model *model, size_t row, size_t j, char *buf, size_t size)
{
    const char *name = tg_model_feature_name(model, j);
    snprintf(buf, size, "row %zu, feature %zu%s%s%s", row, j, name ? " '" : "", name ? name : "",
             name ? "'" : "");
    return buf;
}

/* Fills xb (count rows of the model's dtype) from rows start.. of x, standardized. */
static tg_status fill_inputs(const tg_model *model, const char *who, const double *x, size_t start,
                             size_t count, void *xb)
{
    const tg_mlp_spec *s = tg_model_spec(model);
    const size_t d = s->sizes[0];
    size_t n_std;
    const double *mean, *std;
    tg_model_standardization(model, &n_std, &mean, &std);
    for (size_t i = 0; i < count; i++) {
        const double *row = x + (start + i) * d;
        for (size_t j = 0; j < d; j++) {
            double v = row[j];
            char at[160];
            if (!isfinite(v))
                return tg__error(TG_EINVAL, "%s: %s: %g is not a finite number", who,
                                 where_in(model, start + i, j, at, sizeof at), v);
            if (n_std == d)
                v = (v - mean[j]) / std[j];
            /* a standardized value may overflow f64 itself (a feature whose spread was 1e-300) */
            const bool fits = s->dtype == TG_F32 ? !isinf((float)v) : isfinite(v);
            if (!fits) {
                char scaled[64] = "";
                if (n_std == d)
                    snprintf(scaled, sizeof scaled, " (standardized: %g)", v);
                return tg__error(TG_EINVAL, "%s: %s: %g%s does not fit the model's %s", who,
                                 where_in(model, start + i, j, at, sizeof at), row[j], scaled,
                                 tg_dtype_name(s->dtype));
            }
            if (s->dtype == TG_F32) {
                ((float *)xb)[i * d + j] = (float)v;
            } else {
                ((double *)xb)[i * d + j] = v;
            }
        }
    }
    return TG_OK;
}

/* The n rows' predictions (proba false) or probabilities (proba true) into out. */
static tg_status predict(tg_model *model, const char *who, const double *x, size_t n,
                         size_t n_features, double *out, size_t out_len, bool proba)
{
    if (!model)
        return tg__error(TG_EINVAL, "%s: model is NULL", who);
    if (n && (!x || !out))
        return tg__error(TG_EINVAL, "%s: %s is NULL", who, !x ? "x" : "out");
    const tg_mlp_spec *s = tg_model_spec(model);
    const size_t d = s->sizes[0], n_out = s->sizes[s->n_layers];
    if (n_features != d)
        return tg__error(TG_ESHAPE, "%s: rows of %zu features, the model takes %zu", who,
                         n_features, d);
    reading how;
    tg_status st = reading_of(model, who, &how);
    if (st != TG_OK)
        return st;
    size_t n_classes, width, need, cells;
    tg_model_task(model, &n_classes);
    if (proba && how == READ_VALUES)
        return tg__error(TG_EINVAL,
                         "%s: a regression model has no class probabilities (use "
                         "tg_model_predict)",
                         who);
    width = proba ? n_classes : how == READ_VALUES ? n_out : 1;
    if (__builtin_mul_overflow(n, width, &need) || __builtin_mul_overflow(n, d, &cells))
        return tg__error(TG_EINVAL, "%s: %zu rows are more than memory can address", who, n);
    if (out_len < need)
        return tg__error(TG_EINVAL, "%s: out holds %zu values; %zu rows need %zu (%zu a row)", who,
                         out_len, n, need, width);
    if (n == 0)
        return TG_OK;

    const size_t chunk = n < PREDICT_CHUNK ? n : PREDICT_CHUNK;
    const size_t xbytes = chunk * d * tg_dtype_size(s->dtype);
    void *xb = tg__malloc(xbytes);
    tg_tape *tape = xb ? tg_tape_new() : NULL;
    if (!tape) {
        tg__free(xb, xbytes);
        return tg__error(TG_ENOMEM, "%s: out of memory", who);
    }
    tg_tape_set_grad_enabled(tape, false);
    for (size_t start = 0; start < n && st == TG_OK; start += chunk) {
        const size_t count = n - start < chunk ? n - start : chunk;
        if ((st = fill_inputs(model, who, x, start, count, xb)) != TG_OK)
            break;
        const size_t shape[2] = {count, d};
        tg_tensor *xt = tg_tensor_wrap(s->dtype, 2, shape, xb);
        tg_tensor *z = xt ? tg_model_forward(tape, model, xt) : NULL;
        if (!z) {
            st = tg_last_status();
            tg_tensor_free(xt);
            break;
        }
        /* An argmax or a threshold over NaN would pick a class silently. */
        const void *zd = tg_tensor_data_const(z);
        for (size_t k = 0; k < count * n_out; k++) {
            double v = at(zd, s->dtype, k);
            if (!isfinite(v)) {
                st = tg__error(TG_ENUMERIC,
                               "%s: row %zu: the model's output is %s (a diverged model, or "
                               "features far outside the training data)",
                               who, start + k / n_out,
                               isnan(v) ? "NaN"
                               : v > 0  ? "inf"
                                        : "-inf");
                break;
            }
        }
        if (st == TG_OK && proba) {
            /* 2 classes from 1 logit: (sigmoid(-z), sigmoid(z)), each to full precision (1 - p
             * would lose the small one in f32) */
            tg_tensor *p = how == READ_LOGIT ? tg_sigmoid(tape, z) : tg_softmax(tape, z, 1);
            tg_tensor *q = how == READ_LOGIT ? tg_sigmoid(tape, tg_neg(tape, z)) : p;
            const void *pd = q ? tg_tensor_data_const(p) : NULL;
            const void *qd = q ? tg_tensor_data_const(q) : NULL;
            if (!q)
                st = tg_last_status();
            for (size_t i = 0; st == TG_OK && i < count; i++) {
                double *o = out + (start + i) * width;
                if (how == READ_LOGIT) {
                    o[0] = at(qd, s->dtype, i);
                    o[1] = at(pd, s->dtype, i);
                } else {
                    for (size_t c = 0; c < width; c++)
                        o[c] = at(pd, s->dtype, i * n_out + c);
                }
            }
        } else if (st == TG_OK) {
            for (size_t i = 0; i < count; i++) {
                double *o = out + (start + i) * width;
                if (how == READ_VALUES) {
                    for (size_t c = 0; c < n_out; c++)
                        o[c] = at(zd, s->dtype, i * n_out + c);
                } else if (how == READ_LOGIT) {
                    o[0] = at(zd, s->dtype, i) > 0 ? 1.0 : 0.0;
                } else {
                    const size_t row = i * n_out;
                    size_t best = 0; /* the first of equal logits */
                    for (size_t c = 1; c < n_out; c++)
                        if (at(zd, s->dtype, row + c) > at(zd, s->dtype, row + best))
                            best = c;
                    o[0] = (double)best;
                }
            }
        }
        tg_tape_reset(tape);
        tg_tensor_free(xt);
    }
    tg_tape_free(tape);
    tg__free(xb, xbytes);
    return st;
}

tg_status tg_model_predict(tg_model *model, const double *x, size_t n, size_t n_features,
                           double *out, size_t out_len)
{
    return predict(model, "model_predict", x, n, n_features, out, out_len, false);
}

tg_status tg_model_predict_proba(tg_model *model, const double *x, size_t n, size_t n_features,
                                 double *proba, size_t proba_len)
{
    return predict(model, "model_predict_proba", x, n, n_features, proba, proba_len, true);
}
