/* tapegrad/check.h: gradient checking by central finite differences in f64: first derivatives
 * (tg_gradcheck) and second ones, through the differentiable gradients (tg_gradgradcheck). */
#ifndef TAPEGRAD_CHECK_H
#define TAPEGRAD_CHECK_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A function to check: records a graph of inputs[0..n) on `tape` and returns its output
 * (a tensor on `tape`, or NULL on error). It must be deterministic. */
typedef tg_tensor *(*tg_check_fn)(tg_tape *tape, tg_tensor *const *inputs, size_t n, void *ud);

/* tg_gradcheck's settings; start from TG_GRADCHECK_OPTIONS_INIT (eps 1e-6, tol 1e-7, seed
 * 42), the defaults that opt NULL means. */
typedef struct tg_gradcheck_options {
    double eps; /* finite-difference step, relative: h = eps * max(1, |x|) */
    double tol; /* error bound used for the return status */
    uint64_t seed; /* seeds the random weights r used for outputs of more than one element */
} tg_gradcheck_options;

#define TG_GRADCHECK_OPTIONS_INIT {1e-6, 1e-7, 42}

/* Compares the gradient that backward computes with central differences
 * (f(x + h) - f(x - h)) / 2h, for every element of every input, all in f64: the inputs are
 * copied to f64 leaves requiring grad, so `fn` must build an f64 graph from them. An output
 * y of several elements is checked through sum(r * y) with fixed random weights r drawn from
 * opt->seed.
 * max_err[i] (if not NULL) receives, for input i, the largest
 *     |analytic - numeric| / max(1, |analytic|, |numeric|)
 * (relative for large gradients, absolute for small ones). A function of none of its inputs
 * has the gradient 0. Returns TG_OK when every error is at most opt->tol, TG_ENUMERIC when one
 * is above it (or not finite), or the error of `fn`; TG_EINVAL for NULL arguments, an eps that
 * is not positive or a tol that is not a number >= 0. opt may be NULL for the defaults. */
TG_API tg_status tg_gradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                              const tg_gradcheck_options *opt, double *max_err);

/* Checks second derivatives: the gradient that tg_grad_graph records (diff.h), differentiated
 * again, against central differences of the first-order gradient. As tg_gradcheck, in f64 on
 * copies of the inputs, an output y of several elements reduced to f = sum(r * y) with the same
 * random weights r. With random directions u_i (one per input, uniform in [-1, 1], drawn from
 * opt->seed after r) and g = tg_grad_graph(f), the scalar
 *     G(x) = sum_i <g_i(x), u_i>
 * is differentiated by tg_grad, giving dG/dx_i = (H u)_i, and compared element by element with
 * (G(x + h) - G(x - h)) / 2h, where G is computed from tg_grad's first-order gradients: the
 * finite differences never use an op's differentiable VJP, so a wrong one cannot agree with
 * itself. It also checks that tg_grad_graph's gradients equal tg_grad's at x. A G that does not
 * depend on the inputs (f linear in them) has the derivative zero.
 *
 * max_err[i] (if not NULL) receives, for input i, the larger of the two errors (first-order
 * values and H u), each |a - b| / max(1, |a|, |b|) as tg_gradcheck's. Returns TG_OK when every
 * error is at most opt->tol, TG_ENUMERIC when one is above it (or not finite; the message says
 * which of the two), the error of `fn`, or that of differentiating twice (TG_EINVAL naming an
 * op without a differentiable VJP, such as a custom op without vjp_graph); TG_EINVAL for the
 * arguments tg_gradcheck refuses. Costs 2 * (number of input elements) + 1 recordings of fn,
 * each with a backward pass (the first with two more). opt may be NULL for the defaults. */
TG_API tg_status tg_gradgradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                                  const tg_gradcheck_options *opt, double *max_err);

#ifdef __cplusplus
}
#endif

#endif
