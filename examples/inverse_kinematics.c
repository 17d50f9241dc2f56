/* inverse_kinematics.c: a planar arm of three links reaches for a point. Its forward
 * kinematics is sines and cosines of the accumulated joint angles; gradient descent on the
 * angles, with the gradient from the tape, moves the hand to the target while a penalty,
 * written with where, keeps every joint inside its limits (the third ends on its limit).
 *
 *   phi_k = theta_1 + ... + theta_k                 (each link's angle to the x axis)
 *   hand  = (sum_k L_k cos phi_k, sum_k L_k sin phi_k)
 *   loss  = |hand - target|^2 + MU * sum_k (over_k^2 + under_k^2),
 *           over_k = where(theta_k > hi_k, theta_k - hi_k, 0), under_k likewise below lo_k */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>

#define LINKS 3
#define STEPS 400
#define LR 0.1
#define MU 10.0 /* weight of the joint-limit penalty */

static const double LENGTH[LINKS] = {1.0, 0.8, 0.5};
static const double LO[LINKS] = {-2.5, -2.5, -1.0}, HI[LINKS] = {2.5, 2.5, 1.0}; /* radians */
static const double TARGET[2] = {-0.5, 0.4}; /* close to the base: the third joint must
                                              * bend to its limit */

/* Records the loss at theta (a leaf of LINKS angles) and writes the hand's position. */
static tg_tensor *record_loss(tg_tape *tape, tg_tensor *theta, double hand[2])
{
    const size_t links[1] = {LINKS}, square[2] = {LINKS, LINKS}, two[1] = {2};
    double upper[LINKS * LINKS]; /* upper[i][k] = 1 for i <= k: theta @ upper accumulates */
    for (int i = 0; i < LINKS; i++)
        for (int k = 0; k < LINKS; k++)
            upper[i * LINKS + k] = i <= k;
    tg_tensor *cumulative = tg_constant(tape, TG_F64, 2, square, upper);
    tg_tensor *length = tg_constant(tape, TG_F64, 1, links, LENGTH);
    tg_tensor *phi = tg_matmul(tape, theta, cumulative); /* (3) @ (3, 3) -> (3) */
    tg_tensor *x = tg_sum(tape, tg_mul(tape, length, tg_cos(tape, phi)), TG_ALL_AXES, false);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, length, tg_sin(tape, phi)), TG_ALL_AXES, false);
    tg_tensor *xy[2] = {x, y};
    tg_tensor *pos = tg_stack(tape, xy, 2, 0);
    tg_tensor *miss = tg_sub(tape, pos, tg_constant(tape, TG_F64, 1, two, TARGET));
    tg_tensor *reach = tg_sum(tape, tg_square(tape, miss), TG_ALL_AXES, false);

    tg_tensor *lo = tg_constant(tape, TG_F64, 1, links, LO);
    tg_tensor *hi = tg_constant(tape, TG_F64, 1, links, HI);
    tg_tensor *zero = tg_scalar(tape, TG_F64, 0.0);
    tg_tensor *over = tg_where(tape, tg_gt(tape, theta, hi), tg_sub(tape, theta, hi), zero);
    tg_tensor *under = tg_where(tape, tg_lt(tape, theta, lo), tg_sub(tape, lo, theta), zero);
    tg_tensor *outside = tg_add(tape, tg_square(tape, over), tg_square(tape, under));
    tg_tensor *penalty = tg_scale(tape, tg_sum(tape, outside, TG_ALL_AXES, false), MU);
    tg_tensor *loss = tg_add(tape, reach, penalty);
    if (loss) {
        hand[0] = tg_tensor_item(x);
        hand[1] = tg_tensor_item(y);
    }
    return loss; /* NULL on error, with the reason in tg_last_error() */
}

int main(void)
{
    const size_t links[1] = {LINKS};
    tg_tape *tape = tg_tape_new();
    tg_tensor *theta = tg_tensor_from_f64(TG_F64, 1, links, (double[LINKS]){0.3, 0.3, 0.3});
    if (!tape || !theta || tg_tensor_set_requires_grad(theta, true) != TG_OK) {
        fprintf(stderr, "inverse_kinematics: %s\n", tg_last_error());
        return 1;
    }
    printf("A 3-link planar arm (links %.1f, %.1f, %.1f) reaching for (%.2f, %.2f)\n", LENGTH[0],
           LENGTH[1], LENGTH[2], TARGET[0], TARGET[1]);
    printf("by gradient descent on its joint angles (lr %g, limit penalty %g)\n\n", LR, MU);
    printf("%5s  %8s %8s %8s  %8s %8s  %10s\n", "step", "theta1", "theta2", "theta3", "hand x",
           "hand y", "loss");
    double hand[2] = {0, 0}, loss = 0;
    int status = 0;
    for (int step = 0; step <= STEPS; step++) {
        tg_tape_reset(tape);
        tg_tensor *f = record_loss(tape, theta, hand);
        if (!f || tg_backward(tape, f) != TG_OK) {
            fprintf(stderr, "inverse_kinematics: %s\n", tg_last_error());
            status = 1;
            break;
        }
        loss = tg_tensor_item(f);
        double *angle = tg_tensor_data(theta);
        if (step % 50 == 0)
            printf("%5d  %8.4f %8.4f %8.4f  %8.4f %8.4f  %10.3e\n", step, angle[0], angle[1],
                   angle[2], hand[0], hand[1], loss);
        if (step == STEPS)
            break;
        for (int k = 0; k < LINKS; k++) /* the update: theta <- theta - lr * dloss/dtheta */
            angle[k] -= LR * tg_tensor_grad_get(theta, (size_t)k);
        tg_tensor_zero_grad(theta);
    }
    if (status == 0) {
        double dist = hypot(hand[0] - TARGET[0], hand[1] - TARGET[1]);
        const double *angle = tg_tensor_data_const(theta);
        bool inside = true;
        for (int k = 0; k < LINKS; k++)
            inside &= angle[k] >= LO[k] - 1e-3 && angle[k] <= HI[k] + 1e-3;
        printf("\nfinal distance to the target: %.3e\n", dist);
        printf("joints within their limits: %s\n", inside ? "yes" : "no");
    }
    tg_tensor_free(theta);
    tg_tape_free(tape);
    return status;
}
