// consumer_cxx/prog.cpp: tapegrad from C++ (y = x^2 at 3: y = 9, dy/dx = 6, by hand), with the
// option initializers the headers give C programs. Prints one line; exits 1 on any failure.
#include <tapegrad.h>

#include <cstdio>

int main()
{
    tg_train_options train = TG_TRAIN_OPTIONS_INIT;
    tg_minimize_options minimize = TG_MINIMIZE_OPTIONS_INIT;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 3.0);
    if (!tape || !x || train.epochs != 30 || minimize.max_iter != 1000) {
        std::fprintf(stderr, "consumer_cxx: setup failed: %s\n", tg_last_error());
        return 1;
    }
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = tg_mul(tape, x, x);
    if (!y || tg_backward(tape, y) != TG_OK) {
        std::fprintf(stderr, "consumer_cxx: %s\n", tg_last_error());
        return 1;
    }
    std::printf("C++: y=%g dy/dx=%g\n", tg_tensor_item(y), tg_tensor_grad_get(x, 0));
    tg_tape_free(tape);
    tg_tensor_free(x);
    return 0;
}
