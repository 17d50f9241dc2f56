/* newton.c: Rosenbrock's function f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimized from the
 * classic start (-1.2, 1) three ways with tg_minimize: Newton with the exact Hessian
 * (tg_hessian, damped while it is not positive definite), L-BFGS, and plain gradient descent,
 * side by side: iterations, evaluations of f, gradients and Hessians each one needs to bring
 * the gradient's norm below 1e-8, and how far it ends from the minimum (1, 1).
 *
 * Newton needs the fewest iterations but pays for a Hessian each (one recorded gradient pass,
 * then one pass of the gradient graph per input: 2 here) and a linear solve; L-BFGS builds its
 * curvature from gradients alone; gradient descent, limited by the valley's curvature (the
 * Hessian's condition number is about 2500 at the minimum), needs tens of thousands of steps.
 *
 *   newton            no arguments */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* (1 - x)^2 + 100 (y - x^2)^2 on a vector leaf v = (x, y) */
static tg_tensor *rosenbrock(tg_tape *t, tg_tensor *const *v, size_t n, void *ud)
{
    (void)n, (void)ud;
    tg_tensor *x = tg_select(t, v[0], 0, 0), *y = tg_select(t, v[0], 0, 1);
    tg_tensor *a = tg_sub(t, tg_scalar(t, TG_F64, 1), x);
    tg_tensor *b = tg_sub(t, y, tg_mul(t, x, x));
    return tg_add(t, tg_mul(t, a, a), tg_scale(t, tg_mul(t, b, b), 100));
}

int main(void)
{
    static const struct {
        tg_minimize_method method;
        double lr;
        int max_iter;
    } runs[] = {
        {TG_MINIMIZE_NEWTON, 0, 1000},
        {TG_MINIMIZE_LBFGS, 0, 1000},
        /* the largest rate that stays stable along the whole path is about 2e-3 */
        {TG_MINIMIZE_GD, 1.5e-3, 200000},
    };
    printf("newton: Rosenbrock from (-1.2, 1) to |grad f| <= 1e-8\n");
    printf("%-8s %10s %12s %10s %9s %13s %12s\n", "method", "iterations", "evaluations",
           "gradients", "Hessians", "f", "|x - (1,1)|");
    int failed = 0;
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        const size_t shape[1] = {2};
        tg_tensor *v = tg_tensor_from_f64(TG_F64, 1, shape, (const double[]){-1.2, 1});
        if (!v) {
            fprintf(stderr, "newton: %s\n", tg_last_error());
            return 1;
        }
        tg_minimize_options opt = TG_MINIMIZE_OPTIONS_INIT;
        opt.method = runs[i].method;
        opt.lr = runs[i].lr > 0 ? runs[i].lr : opt.lr;
        opt.max_iter = runs[i].max_iter;
        opt.tol = 1e-8;
        tg_minimize_result r;
        tg_status st = tg_minimize(rosenbrock, NULL, &v, 1, &opt, &r);
        if (st != TG_OK) {
            fprintf(stderr, "newton: %s: %s\n", tg_minimize_method_name(opt.method),
                    tg_last_error());
            tg_tensor_free(v);
            return 1;
        }
        double dist = hypot(tg_tensor_get(v, 0) - 1, tg_tensor_get(v, 1) - 1);
        printf("%-8s %10d %12d %10d %9d %13.3e %12.3e%s\n", tg_minimize_method_name(opt.method),
               r.iterations, r.evaluations, r.grad_evaluations, r.hessian_evaluations, r.value,
               dist, r.converged ? "" : "  (not converged)");
        failed |= !r.converged;
        tg_tensor_free(v);
    }
    return failed;
}
