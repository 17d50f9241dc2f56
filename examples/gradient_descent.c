/* gradient_descent.c: the picture every tutorial draws, in numbers. Minimize F(w) = w^2 from
 * w = 3 with four learning rates, the gradient dF/dw coming from the tape each step: too
 * small crawls, a moderate one converges, 0.9 overshoots back and forth but still converges,
 * 1.1 overshoots further every step and diverges. */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>

#define STEPS 20
#define N_RATES 4

static const double RATES[N_RATES] = {0.01, 0.1, 0.9, 1.1};

/* Runs STEPS steps of w <- w - lr * dF/dw, storing w after each (path[0] is the start).
 * Since dF/dw = 2w, each step multiplies w by (1 - 2 lr): below 1 in size it shrinks, and
 * negative (lr > 0.5) it flips sign; 1.1 gives -1.2, which grows. */
static int descend(tg_tape *tape, double lr, double path[STEPS + 1])
{
    tg_tensor *w = tg_tensor_scalar(TG_F64, 3.0);
    if (!w || tg_tensor_set_requires_grad(w, true) != TG_OK)
        return 1;
    path[0] = tg_tensor_item(w);
    for (int step = 1; step <= STEPS; step++) {
        tg_tensor *F = tg_square(tape, w);         /* record F(w) = w^2 */
        if (!F || tg_backward(tape, F) != TG_OK) { /* dF/dw accumulates into w's grad */
            tg_tensor_free(w);
            return 1;
        }
        double grad = tg_tensor_grad_get(w, 0);
        tg_tensor_set(w, 0, tg_tensor_item(w) - lr * grad); /* the update itself */
        tg_tensor_zero_grad(w); /* backward adds; start the next step from zero */
        tg_tape_reset(tape);    /* forget the recording, keep the memory */
        path[step] = tg_tensor_item(w);
    }
    tg_tensor_free(w);
    return 0;
}

int main(void)
{
    tg_tape *tape = tg_tape_new();
    if (!tape) {
        fprintf(stderr, "gradient_descent: %s\n", tg_last_error());
        return 1;
    }
    double path[N_RATES][STEPS + 1];
    for (int r = 0; r < N_RATES; r++) {
        if (descend(tape, RATES[r], path[r]) != 0) {
            fprintf(stderr, "gradient_descent: %s\n", tg_last_error());
            tg_tape_free(tape);
            return 1;
        }
    }
    tg_tape_free(tape);

    printf("Gradient descent on F(w) = w^2 from w = 3: w <- w - lr * dF/dw, dF/dw from the "
           "tape\n\n");
    printf("step");
    for (int r = 0; r < N_RATES; r++) {
        char label[32];
        snprintf(label, sizeof label, "lr = %g", RATES[r]);
        printf("  %12s", label);
    }
    printf("\n");
    for (int s = 0; s <= STEPS; s++) {
        printf("%4d", s);
        for (int r = 0; r < N_RATES; r++)
            printf("  %12.6f", path[r][s]);
        printf("\n");
    }

    /* The verdict comes from the path, not from the rate: growth is divergence; reaching
     * |w| < 0.05 (F < 0.0025) is convergence, through sign flips or not; anything else is
     * progress too slow to get there in STEPS steps. */
    printf("\n");
    for (int r = 0; r < N_RATES; r++) {
        double first = fabs(path[r][0]), last = fabs(path[r][STEPS]);
        bool flips = path[r][1] * path[r][0] < 0;
        const char *verdict = last > first   ? "diverges"
                              : last < 0.05 ? (flips ? "oscillates but converges" : "converges")
                                            : "slow";
        printf("lr = %g: %s (|w| from %g to %.4g in %d steps)\n", RATES[r], verdict, first, last,
               STEPS);
    }
    return 0;
}
