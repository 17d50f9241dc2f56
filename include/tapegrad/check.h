/* tapegrad/check.h: gradient checking by central finite differences in f64. */
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
 * (relative for large gradients, absolute for small ones). Returns TG_OK when every error is
 * at most opt->tol, TG_ENUMERIC when one is above it (or not finite), or the error of `fn`.
 * opt may be NULL for the defaults. */
TG_API tg_status tg_gradcheck(tg_check_fn fn, void *ud, tg_tensor *const *inputs, size_t n,
                              const tg_gradcheck_options *opt, double *max_err);

#ifdef __cplusplus
}
#endif

#endif
