/* loss.c: losses as compositions of public ops (no VJP of their own: the tape has them). */
#include "core/core.h"
#include "tape/scratch.h"

#include <math.h>
#include <stdio.h>

/* Takes a tape error for a loss's own argument checks (the ops report their own). */
#define fail(tape, ...) (tg_tape_fail((tape), __VA_ARGS__), (tg_tensor *)NULL)

/* True when the loss may go on: tape usable and inputs present (NULL inputs after an earlier
 * error stay quiet; NULL inputs on a healthy tape become its error). */
static bool usable(tg_tape *tape, const char *who, const tg_tensor *a, const tg_tensor *b)
{
    if (!tape) {
        tg__error(TG_EINVAL, "%s: tape is NULL", who);
        return false;
    }
    if (tg_tape_status(tape) != TG_OK)
        return false;
    if (!a || !b) {
        tg_tape_fail(tape, TG_EINVAL, "%s: input %d is NULL", who, a ? 1 : 0);
        return false;
    }
    return true;
}

/* True when target broadcasts to pred's shape without changing it (aligned from the right,
 * each of its axes pred's size or 1); else the tape's TG_ESHAPE naming both shapes. A target
 * (3) against a prediction (3, 1) would broadcast both to (3, 3): a loss over nine pairs where
 * three were meant, and no error. */
static bool target_fits(tg_tape *tape, const char *who, const tg_tensor *pred,
                        const tg_tensor *target)
{
    const int rp = tg_tensor_rank(pred), rt = tg_tensor_rank(target);
    bool fits = rt <= rp;
    for (int i = 1; fits && i <= rt; i++) {
        size_t t = tg_tensor_shape(target)[rt - i], p = tg_tensor_shape(pred)[rp - i];
        fits = t == p || t == 1;
    }
    if (!fits) {
        char sp[96], st[96];
        tg_tape_fail(tape, TG_ESHAPE,
                     "%s: the target %s does not broadcast to the prediction's shape %s (it "
                     "must have that shape, or one that broadcasts to it without changing it)",
                     who, tg_shape_format(st, sizeof st, rt, tg_tensor_shape(target)),
                     tg_shape_format(sp, sizeof sp, rp, tg_tensor_shape(pred)));
    }
    return fits;
}

/* mean((pred - target)^2) */
tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target)
{
    if (!usable(tape, "mse", pred, target) || !target_fits(tape, "mse", pred, target))
        return NULL;
    return tg_mean(tape, tg_square(tape, tg_sub(tape, pred, target)), TG_ALL_AXES, false);
}

/* -mean(t log p + (1 - t) log(1 - p)), p clamped to [eps, 1 - eps] */
tg_tensor *tg_bce(tg_tape *tape, tg_tensor *p, tg_tensor *target)
{
    if (!usable(tape, "bce", p, target) || !target_fits(tape, "bce", p, target))
        return NULL;
    double eps = tg_tensor_dtype(p) == TG_F32 ? 1e-7 : 1e-15;
    tg_tensor *pc = tg_clamp(tape, p, eps, 1 - eps);
    tg_tensor *pos = tg_mul(tape, target, tg_log(tape, pc));
    tg_tensor *neg = tg_mul(tape, tg_add_scalar(tape, tg_neg(tape, target), 1.0),
                            tg_log(tape, tg_add_scalar(tape, tg_neg(tape, pc), 1.0)));
    return tg_neg(tape, tg_mean(tape, tg_add(tape, pos, neg), TG_ALL_AXES, false));
}

/* -mean(t log sigmoid(z) + (1 - t) log sigmoid(-z)) */
tg_tensor *tg_bce_logits(tg_tape *tape, tg_tensor *z, tg_tensor *target)
{
    if (!usable(tape, "bce_logits", z, target) || !target_fits(tape, "bce_logits", z, target))
        return NULL;
    tg_tensor *pos = tg_mul(tape, target, tg_log_sigmoid(tape, z));
    tg_tensor *neg = tg_mul(tape, tg_add_scalar(tape, tg_neg(tape, target), 1.0),
                            tg_log_sigmoid(tape, tg_neg(tape, z)));
    return tg_neg(tape, tg_mean(tape, tg_add(tape, pos, neg), TG_ALL_AXES, false));
}

/* -mean_n sum_c t[n,c] log_softmax(z)[n,c]. With `onehot` (targets made by onehot_for, a
 * constant of 0s and 1s) each row's log-probability is selected where t is 1 rather than
 * multiplied by t: a class of logit -inf (masked), or one below the maximum by more than the
 * range of doubles, has log-probability -inf, and 0 * -inf would make the loss NaN. */
static tg_tensor *cross_entropy_of(const char *who, tg_tape *tape, tg_tensor *logits,
                                   tg_tensor *targets, bool onehot)
{
    if (!usable(tape, who, logits, targets) || !target_fits(tape, who, logits, targets))
        return NULL;
    if (tg_tensor_rank(logits) != 2) {
        char s[96];
        return fail(tape, TG_ESHAPE, "%s: logits %s must be 2-D (rows, classes)", who,
                    tg_shape_format(s, sizeof s, tg_tensor_rank(logits), tg_tensor_shape(logits)));
    }
    tg_tensor *logp = tg_log_softmax(tape, logits, -1);
    tg_tensor *terms =
        onehot ? tg_where(tape, targets, logp, tg_scalar(tape, tg_tensor_dtype(logits), 0.0))
               : tg_mul(tape, targets, logp);
    tg_tensor *per_row = tg_sum(tape, terms, -1, false);
    return tg_neg(tape, tg_mean(tape, per_row, TG_ALL_AXES, false));
}

tg_tensor *tg_cross_entropy_soft(tg_tape *tape, tg_tensor *logits, tg_tensor *targets)
{
    return cross_entropy_of("cross_entropy_soft", tape, logits, targets, false);
}

/* tg_onehot for the function `who`, whose name its errors carry; `flat`: of shape
 * (number of labels, n_classes) whatever the labels' shape, as cross_entropy reads it. */
static tg_tensor *onehot_for(const char *who, tg_tape *tape, tg_tensor *labels, size_t n_classes,
                             bool flat)
{
    if (!usable(tape, who, labels, labels))
        return NULL;
    if (!tg_tensor_is_leaf(labels) && !tg_tensor_data_const(labels))
        return fail(tape, TG_ESTALE,
                    "%s: the labels (node %zu) were recorded before the tape was reset", who,
                    tg_tensor_index(labels));
    const size_t n = tg_tensor_numel(labels);
    const tg_dtype dtype = tg_tensor_dtype(labels);
    if (n_classes == 0)
        return fail(tape, TG_EINVAL, "%s: n_classes is 0 (a label needs a class to be)", who);
    if (n > SIZE_MAX / n_classes / 8)
        return fail(tape, TG_ESHAPE, "%s: %zu x %zu is too large", who, n, n_classes);
    const int rank = flat ? 1 : tg_tensor_rank(labels);
    if (rank >= TG_MAX_RANK) {
        char s[96];
        return fail(tape, TG_ESHAPE, "%s: labels %s would give a one-hot of %d axes, more than %d",
                    who, tg_shape_format(s, sizeof s, rank, tg_tensor_shape(labels)), rank + 1,
                    TG_MAX_RANK);
    }
    /* Build in arena scratch, then record it as a constant (one copy, no heap). */
    const size_t es = tg_dtype_size(dtype);
    unsigned char *buf = tg_tape__scratch(tape, n * n_classes * es, who);
    if (!buf)
        return NULL;
    memset(buf, 0, n * n_classes * es);
    for (size_t i = 0; i < n; i++) {
        double v = tg_tensor_get(labels, i);
        if (!(v >= 0 && v < (double)n_classes && v == floor(v)))
            return fail(tape, TG_EINVAL, "%s: label %zu is %g, not an integer class id in 0..%zu",
                        who, i, v, n_classes - 1);
        size_t k = i * n_classes + (size_t)v;
        if (dtype == TG_F32)
            ((float *)buf)[k] = 1.0f;
        else
            ((double *)buf)[k] = 1.0;
    }
    /* the labels' shape and the classes' axis (the buffer is the same either way: label i's
     * n_classes entries from i * n_classes on) */
    size_t shape[TG_MAX_RANK] = {n};
    if (!flat)
        memcpy(shape, tg_tensor_shape(labels), (size_t)rank * sizeof shape[0]);
    shape[rank] = n_classes;
    return tg_constant(tape, dtype, rank + 1, shape, buf);
}

tg_tensor *tg_onehot(tg_tape *tape, tg_tensor *labels, size_t n_classes)
{
    return onehot_for("onehot", tape, labels, n_classes, false);
}

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *labels)
{
    if (!usable(tape, "cross_entropy", logits, labels))
        return NULL;
    if (tg_tensor_rank(logits) != 2 || tg_tensor_numel(labels) != tg_tensor_dim(logits, 0)) {
        char s1[96], s2[96];
        return fail(
            tape, TG_ESHAPE,
            "cross_entropy: logits %s and labels %s: expected (N,C) logits and N labels",
            tg_shape_format(s1, sizeof s1, tg_tensor_rank(logits), tg_tensor_shape(logits)),
            tg_shape_format(s2, sizeof s2, tg_tensor_rank(labels), tg_tensor_shape(labels)));
    }
    if (tg_tensor_dtype(labels) != tg_tensor_dtype(logits))
        return fail(tape, TG_EDTYPE, "cross_entropy: dtypes %s and %s differ",
                    tg_dtype_name(tg_tensor_dtype(logits)), tg_dtype_name(tg_tensor_dtype(labels)));
    return cross_entropy_of(
        "cross_entropy", tape, logits,
        onehot_for("cross_entropy", tape, labels, tg_tensor_dim(logits, 1), true), true);
}
