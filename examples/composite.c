/* composite.c: an arbitrary function of a few scalars and matrices, and its exact gradients.
 * The README's first code sample. */
#include <tapegrad.h>

#include <stdio.h>

int main(void)
{
    const size_t s23[2] = {2, 3}, s3[1] = {3};
    tg_tensor *a = tg_tensor_scalar(TG_F64, 1.5);
    tg_tensor *W = tg_tensor_from_f64(TG_F64, 2, s23, (double[]){0.1, -0.2, 0.3, 0.4, 0.5, -0.6});
    tg_tensor *v = tg_tensor_from_f64(TG_F64, 1, s3, (double[]){1.0, 2.0, 3.0});
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(W, true);
    tg_tensor_set_requires_grad(v, true);

    /* f(a, W, v) = sum(tanh(a * W) * v) + log(1 + a^2) * mean(exp(-W^2))  (v broadcasts) */
    tg_tape *tape = tg_tape_new();
    tg_tensor *left = tg_sum(tape, tg_mul(tape, tg_tanh(tape, tg_mul(tape, a, W)), v),
                             TG_ALL_AXES, false);
    tg_tensor *right = tg_mul(tape, tg_log(tape, tg_add_scalar(tape, tg_square(tape, a), 1.0)),
                              tg_mean(tape, tg_exp(tape, tg_neg(tape, tg_square(tape, W))),
                                      TG_ALL_AXES, false));
    tg_tensor *f = tg_add(tape, left, right);
    if (!f || tg_backward(tape, f) != TG_OK) { /* one check for the whole graph */
        fprintf(stderr, "composite: %s\n", tg_last_error());
        return 1;
    }

    printf("f     = %.10f\n", tg_tensor_item(f));
    printf("df/da = %.10f\n", tg_tensor_grad_get(a, 0));
    for (size_t i = 0; i < 6; i++)
        printf("df/dW[%zu][%zu] = %+.10f\n", i / 3, i % 3, tg_tensor_grad_get(W, i));
    for (size_t i = 0; i < 3; i++)
        printf("df/dv[%zu] = %+.10f\n", i, tg_tensor_grad_get(v, i));

    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(W);
    tg_tensor_free(v);
    return 0;
}
