/* tapegrad/minimize.h: minimizing any function built on a tape: L-BFGS with a strong-Wolfe
 * line search, Newton with the exact Hessian (tg_hessian) and a damping safeguard, and plain
 * gradient descent. The function is a callback that records f(x) from leaves, as for
 * tg_gradcheck; the leaves are moved in place to the minimizer. The function is recorded once
 * and evaluated again at each new point by replaying the tape (tg_tape_replay), which is exact
 * for graphs whose structure does not depend on the values (see tg_minimize_fn).
 *
 *     static tg_tensor *rosen(tg_tape *t, tg_tensor *const *x, size_t n, void *ud) { ... }
 *     tg_minimize_options opt = TG_MINIMIZE_OPTIONS_INIT;  // L-BFGS, m = 10
 *     tg_minimize_result res;
 *     if (tg_minimize(rosen, NULL, &x, 1, &opt, &res) != TG_OK)
 *         fprintf(stderr, "%s\n", tg_last_error());
 *     else if (!res.converged) ...                          // res.stop says why */
#ifndef TAPEGRAD_MINIMIZE_H
#define TAPEGRAD_MINIMIZE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The function to minimize: records f(x[0..n)) on `tape` from the leaves x (the caller's, of
 * tg_minimize) and returns it, a single-element tensor on `tape` (or NULL on error, the tape
 * keeping the error). Called on a freshly reset tape with the leaves holding the point to
 * evaluate (it must not reset the tape itself: its result would be stale, TG_ESTALE); later
 * evaluations replay that recording at the leaves' new values (tape.h, tg_tape_replay)
 * unless options.replay is off, so it must be deterministic and record the same graph
 * whatever the values: choose by value inside the graph (tg_where, tg_maximum, relu), never
 * by C control flow on a value, or turn replay off. */
typedef tg_tensor *(*tg_minimize_fn)(tg_tape *tape, tg_tensor *const *x, size_t n, void *ud);

/* The solver: options.method. */
typedef enum tg_minimize_method {
    TG_MINIMIZE_LBFGS = 0, /* limited-memory BFGS, strong Wolfe line search */
    TG_MINIMIZE_NEWTON,    /* exact Hessian, Cholesky, damping + backtracking */
    TG_MINIMIZE_GD,        /* x -= lr * grad f */
} tg_minimize_method;

/* Why a run stopped. */
typedef enum tg_minimize_stop {
    TG_MINIMIZE_CONVERGED = 0, /* the gradient norm fell to tol or below */
    TG_MINIMIZE_MAX_ITER,      /* max_iter iterations without converging */
    TG_MINIMIZE_NO_PROGRESS,   /* the line search found no lower value along the direction,
                                  or 10 iterations in a row lowered neither the lowest f nor
                                  the lowest gradient norm of the run (values equal to
                                  rounding): usually tol is below what rounding allows */
    TG_MINIMIZE_DIVERGED,      /* gd: the value became NaN or infinite (lr too large; -inf:
                                  f is unbounded below); lbfgs, newton: a trial point's value
                                  was -inf (f is unbounded below, or its value overflows).
                                  x is left at the last accepted point, f finite there, and
                                  the status is an error (TG_ENUMERIC) */
    TG_MINIMIZE_ERROR,         /* an error ended the run (the status says which), or none could
                                  start; res holds the last accepted point, if any */
} tg_minimize_stop;

/* What each iteration reports to the progress callback. */
typedef struct tg_minimize_iter {
    int iteration;        /* 0 for the starting point, then 1, 2, ... */
    double value;         /* f at the current point */
    double grad_norm;     /* Euclidean norm of the gradient there */
    double step;          /* the step length taken to get there (0 at iteration 0) */
    double damping;       /* newton: the multiple of the identity added to the Hessian */
    int evaluations;      /* function evaluations so far (at most INT_MAX, as in the result) */
    int grad_evaluations; /* gradient evaluations so far (the same) */
} tg_minimize_iter;

/* options.progress: called with each iteration's report and options.progress_ud. */
typedef void (*tg_minimize_progress_fn)(const tg_minimize_iter *it, void *ud);

/* How to minimize; start from TG_MINIMIZE_OPTIONS_INIT (L-BFGS, 1000 iterations, tol 1e-8,
 * lr 1e-3, memory 10, replay on, no progress callback) and change what you need. */
typedef struct tg_minimize_options {
    tg_minimize_method method;
    int max_iter; /* iterations at most (>= 0; 0 only evaluates the start) */
    double tol;   /* converged when the gradient's Euclidean norm is <= tol (>= 0) */
    double lr;    /* gd's learning rate (> 0) */
    int memory;   /* L-BFGS: correction pairs kept (>= 1) */
    bool replay;  /* evaluate by replaying the recording (true) or by recording fn each time */
    tg_minimize_progress_fn progress; /* called at the start and after each iteration, or NULL */
    void *progress_ud;
} tg_minimize_options;

/* clang-format off */
#define TG_MINIMIZE_OPTIONS_INIT {TG_MINIMIZE_LBFGS, 1000, 1e-8, 1e-3, 10, true, NULL, NULL}
/* clang-format on */

/* What a run did. The counts stop at INT_MAX rather than overflow (max_iter may be INT_MAX,
 * and an iteration take dozens of evaluations). */
typedef struct tg_minimize_result {
    double value;            /* f at the returned point */
    double grad_norm;        /* Euclidean norm of the gradient there */
    int iterations;          /* iterations done (steps taken) */
    int evaluations;         /* evaluations of f, by replay or by recording */
    int recordings;          /* of them, the times fn was called to record f */
    int grad_evaluations;    /* gradients computed (backward passes) */
    int hessian_evaluations; /* Hessians formed (newton) */
    bool converged;          /* grad_norm <= tol */
    tg_minimize_stop stop;
} tg_minimize_result;

/* Minimizes fn over the leaves x[0..n) (any shapes, f32 or f64), starting from their values and
 * leaving them at the best point found: when res->converged, a point where the gradient's norm is
 * at most tol (a minimizer, or a stationary point that is not one, as 0 is for x^3), else the last
 * accepted iterate. The leaves are made to require grad for the run (their setting is restored
 * after); their grad buffers are not touched. Vectors are kept in f64; the function is evaluated in
 * the leaves' dtype. res (may be NULL) is filled whenever fn could be evaluated at the start, also
 * when an error stops a run. opt NULL means the defaults.
 *
 * Returns TG_OK when the run ended normally, converged or not (res->converged and res->stop say
 * which). Errors: TG_EINVAL for NULL fn or x, n == 0, an x[i] that is not a leaf or is listed
 * twice, bad options, a function that does not depend on any of the x; TG_ESHAPE for an f of more
 * than one element; TG_ENUMERIC for an f or gradient that is NaN or infinite at the start, a run
 * that diverges (res->stop TG_MINIMIZE_DIVERGED: gd, or a value of -inf), or (newton) a Hessian
 * that is not finite at an accepted point; fn's error (the tape's status) when it returns NULL;
 * newton's errors from tg_hessian; TG_ENOMEM. The message (tg_last_error) starts "minimize:". */
TG_API tg_status tg_minimize(tg_minimize_fn fn, void *ud, tg_tensor *const *x, size_t n,
                             const tg_minimize_options *opt, tg_minimize_result *res);

/* "lbfgs", "newton", "gd" ("?" for anything else); and the method of that name (false when
 * none). */
TG_API const char *tg_minimize_method_name(tg_minimize_method method);
TG_API bool tg_minimize_method_parse(const char *name, tg_minimize_method *out);
/* "converged", "max_iter", "no_progress", "diverged", "error" ("?" for anything else). */
TG_API const char *tg_minimize_stop_name(tg_minimize_stop stop);

#ifdef __cplusplus
}
#endif

#endif
