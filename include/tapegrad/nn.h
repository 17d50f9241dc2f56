/* tapegrad/nn.h: neural-network building blocks on top of the public ops. Everything here is
 * a short composition of primitive ops, so its gradient comes from the tape and is checked
 * like any other. Results belong to the tape; errors follow tapegrad/ops.h (NULL, the tape
 * keeps the first error).
 *
 * Losses reduce with the mean over all elements (rows, for the cross-entropies). */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mean((pred - target)^2); target broadcasts to pred's shape. */
TG_API tg_tensor *tg_mse(tg_tape *tape, tg_tensor *pred, tg_tensor *target);
/* Binary cross-entropy on probabilities: -mean(t log p + (1-t) log(1-p)). p is clamped to
 * [eps, 1-eps] (eps = 1e-7 in f32, 1e-15 in f64) so saturated outputs give a large finite
 * loss, not NaN; prefer tg_bce_logits, which is exact everywhere. */
TG_API tg_tensor *tg_bce(tg_tape *tape, tg_tensor *p, tg_tensor *target);
/* Binary cross-entropy on logits: -mean(t log sigmoid(z) + (1-t) log sigmoid(-z)), finite
 * with an exact gradient (sigmoid(z) - t, over the count) for any z, including +-1000. */
TG_API tg_tensor *tg_bce_logits(tg_tape *tape, tg_tensor *z, tg_tensor *target);
/* Categorical cross-entropy on logits (N,C) for integer class ids `labels` (N elements, any
 * rank with N elements, values 0..C-1 stored as numbers): -mean_n log_softmax(z)[n, label_n].
 * TG_EINVAL names the first label that is not an integer in range. */
TG_API tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *labels);
/* The same for one-hot or soft targets (N,C): -mean_n sum_c t[n,c] log_softmax(z)[n,c]. */
TG_API tg_tensor *tg_cross_entropy_soft(tg_tape *tape, tg_tensor *logits, tg_tensor *targets);
/* A constant (N, n_classes) of the labels' dtype with 1 at [i, labels[i]] and 0 elsewhere.
 * TG_EINVAL names the first label that is not an integer in 0..n_classes-1. */
TG_API tg_tensor *tg_onehot(tg_tape *tape, tg_tensor *labels, size_t n_classes);

#ifdef __cplusplus
}
#endif

#endif
