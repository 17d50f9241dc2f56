/* consumer/main.c: the smallest real use of an installed tapegrad: y = x^2 at x = 3.
 * Built by tests/install/run.sh through find_package and through pkg-config. */
#include <tapegrad.h>
#include <stdio.h>

int main(void)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 3.0);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = tg_mul(tape, x, x); /* y = x^2 */
    if (!y || tg_backward(tape, y) != TG_OK) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 1;
    }
    printf("tapegrad %s: y=%g dy/dx=%g\n", tg_version(), tg_tensor_item(y),
           tg_tensor_grad_get(x, 0));
    tg_tensor_free(x);
    tg_tape_free(tape);
    return 0;
}
