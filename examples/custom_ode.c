/* custom_ode.c: a function the library does not know, plugged into a graph with tg_custom.
 *
 * A damped pendulum, theta'' = -k sin(theta) - c theta', integrated from t = 0 to T with a
 * fixed number of classical Runge-Kutta (RK4) steps, is one custom op: its inputs are the
 * initial state s0 = (theta0, omega0) and the parameters p = (k, c); its output is the state
 * at T. Its VJP is written by hand: the discrete adjoint of the RK4 steps (each step
 * differentiated by the chain rule, walked backwards; derivation at rk4_step_adjoint). The op
 * sits in a larger graph: the parameters are exp(q) (so that they stay positive), and the loss
 * is the squared distance between the endpoint and an observed one. Gradient descent on q
 * fits the parameters, and tg_gradcheck compares the hand-written VJP with finite
 * differences.
 *
 *   custom_ode [PARAMS.tgt]   also saves the fitted q as a named tensor file and reads it back */
#include <tapegrad.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_STEPS 256

/* The integrator's settings: the op's user pointer. */
typedef struct ode_config {
    double T;  /* end time */
    int steps; /* RK4 steps, h = T / steps (at most MAX_STEPS) */
} ode_config;

/* f(s; k, c) = (omega, -k sin(theta) - c omega) for s = (theta, omega). */
static void f(const double s[2], double k, double c, double out[2])
{
    out[0] = s[1];
    out[1] = -k * sin(s[0]) - c * s[1];
}

/* One RK4 step from s (the stages at a1 = s, a2 = s + h/2 k1, a3 = s + h/2 k2,
 * a4 = s + h k3): s' = s + h/6 (k1 + 2 k2 + 2 k3 + k4). */
static void rk4_step(const double s[2], double h, double k, double c, double out[2])
{
    double k1[2], k2[2], k3[2], k4[2], a[2];
    f(s, k, c, k1);
    for (int i = 0; i < 2; i++)
        a[i] = s[i] + h / 2 * k1[i];
    f(a, k, c, k2);
    for (int i = 0; i < 2; i++)
        a[i] = s[i] + h / 2 * k2[i];
    f(a, k, c, k3);
    for (int i = 0; i < 2; i++)
        a[i] = s[i] + h * k3[i];
    f(a, k, c, k4);
    for (int i = 0; i < 2; i++)
        out[i] = s[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
}

/* The adjoint of one RK4 step. Given g = dL/ds' (s' = rk4_step(s)), adds dL/ds into gs and
 * dL/dk, dL/dc into gp[0], gp[1]. With a_j the stages and k_j = f(a_j):
 *     s' = s + h/6 k1 + h/3 k2 + h/3 k3 + h/6 k4,
 *     a2 = s + h/2 k1,  a3 = s + h/2 k2,  a4 = s + h k3,
 * so, from the last stage back, the adjoints of k_j (b_j) and of a_j (A_j = J(a_j)^T b_j) are
 *     b4 = h/6 g,           A4 = J(a4)^T b4
 *     b3 = h/3 g + h A4,    A3 = J(a3)^T b3
 *     b2 = h/3 g + h/2 A3,  A2 = J(a2)^T b2
 *     b1 = h/6 g + h/2 A2,  A1 = J(a1)^T b1
 *     dL/ds = g + A1 + A2 + A3 + A4,   dL/dp += sum_j (df/dp at a_j)^T b_j,
 * with J = df/ds = [[0, 1], [-k cos(theta), -c]], so J^T b = (-k cos(theta) b[1], b[0] - c b[1]),
 * and df/dk = (0, -sin(theta)), df/dc = (0, -omega). */
static void rk4_step_adjoint(const double s[2], double h, double k, double c, const double g[2],
                             double gs[2], double gp[2])
{
    double a[4][2], kk[2];
    for (int i = 0; i < 2; i++) /* the stages, as rk4_step computes them */
        a[0][i] = s[i];
    f(a[0], k, c, kk);
    for (int i = 0; i < 2; i++)
        a[1][i] = s[i] + h / 2 * kk[i];
    f(a[1], k, c, kk);
    for (int i = 0; i < 2; i++)
        a[2][i] = s[i] + h / 2 * kk[i];
    f(a[2], k, c, kk);
    for (int i = 0; i < 2; i++)
        a[3][i] = s[i] + h * kk[i];

    static const double w[4] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}; /* of g in b_j */
    static const double from_next[4] = {0.5, 0.5, 1.0, 0};           /* of A_{j+1} in b_j */
    double A[2] = {0, 0}, ds[2] = {g[0], g[1]};
    for (int j = 3; j >= 0; j--) {
        double b[2];
        for (int i = 0; i < 2; i++)
            b[i] = h * (w[j] * g[i] + from_next[j] * A[i]);
        const double theta = a[j][0], omega = a[j][1];
        A[0] = -k * cos(theta) * b[1];
        A[1] = b[0] - c * b[1];
        ds[0] += A[0];
        ds[1] += A[1];
        gp[0] += -sin(theta) * b[1];
        gp[1] += -omega * b[1];
    }
    gs[0] += ds[0];
    gs[1] += ds[1];
}

/* ---- the custom op: inputs s0 (2) and p = (k, c) (2), output s(T) (2), f64 ---------------- */

static tg_status check_call(const tg_custom_call *call)
{
    if (tg_tensor_dtype(call->out) != TG_F64) {
        snprintf(call->msg, call->msg_size, "this integrator works in f64 only");
        return TG_EDTYPE;
    }
    if (call->n != 2 || tg_tensor_numel(call->in[0]) != 2 || tg_tensor_numel(call->in[1]) != 2 ||
        tg_tensor_numel(call->out) != 2) {
        snprintf(call->msg, call->msg_size,
                 "takes the state (theta, omega) and the parameters (k, c), gives a state");
        return TG_ESHAPE;
    }
    const ode_config *cfg = call->user;
    if (cfg->steps < 1 || cfg->steps > MAX_STEPS) {
        snprintf(call->msg, call->msg_size, "%d steps: 1 to %d", cfg->steps, MAX_STEPS);
        return TG_EINVAL;
    }
    return TG_OK;
}

static tg_status pendulum_forward(const tg_custom_call *call)
{
    tg_status st = check_call(call);
    if (st != TG_OK)
        return st;
    const ode_config *cfg = call->user;
    const double *s0 = tg_tensor_data_const(call->in[0]), *p = tg_tensor_data_const(call->in[1]);
    const double h = cfg->T / cfg->steps;
    double s[2] = {s0[0], s0[1]};
    for (int n = 0; n < cfg->steps; n++)
        rk4_step(s, h, p[0], p[1], s);
    double *y = call->y;
    y[0] = s[0];
    y[1] = s[1];
    return TG_OK;
}

/* The trajectory is recomputed (steps + 1 states on the stack), then the step adjoints run
 * from the last step back to the first, carrying dL/ds; the parameters' share sums over the
 * steps. Both gradients are ADDED into dx (either may be NULL: not needed). */
static tg_status pendulum_vjp(const tg_custom_call *call)
{
    tg_status st = check_call(call);
    if (st != TG_OK)
        return st;
    const ode_config *cfg = call->user;
    const double *s0 = tg_tensor_data_const(call->in[0]), *p = tg_tensor_data_const(call->in[1]);
    const double h = cfg->T / cfg->steps;
    double traj[MAX_STEPS + 1][2] = {{s0[0], s0[1]}};
    for (int n = 0; n < cfg->steps; n++)
        rk4_step(traj[n], h, p[0], p[1], traj[n + 1]);
    const double *dy = call->dy;
    double g[2] = {dy[0], dy[1]}, gp[2] = {0, 0};
    for (int n = cfg->steps - 1; n >= 0; n--) {
        double gs[2] = {0, 0};
        rk4_step_adjoint(traj[n], h, p[0], p[1], g, gs, gp);
        g[0] = gs[0];
        g[1] = gs[1];
    }
    double *ds0 = call->dx[0], *dp = call->dx[1];
    for (int i = 0; i < 2; i++) {
        if (ds0)
            ds0[i] += g[i];
        if (dp)
            dp[i] += gp[i];
    }
    return TG_OK;
}

static const tg_custom_op PENDULUM = {
    .name = "pendulum_rk4", .forward = pendulum_forward, .vjp = pendulum_vjp};

/* ---- the larger graph ---------------------------------------------------------------------- */

typedef struct problem {
    ode_config cfg;
    double target[2]; /* the observed state at T */
} problem;

/* loss(s0, q) = sum((pendulum(s0, exp(q)) - target)^2) */
static tg_tensor *loss_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    problem *pb = ud;
    const size_t two[1] = {2};
    tg_tensor *args[2] = {in[0], tg_exp(tape, in[1])};
    tg_tensor *end = tg_custom(tape, &PENDULUM, &pb->cfg, args, 2, 1, two);
    tg_tensor *target = tg_constant(tape, TG_F64, 1, two, pb->target);
    return tg_sum(tape, tg_square(tape, tg_sub(tape, end, target)), TG_ALL_AXES, false);
}

int main(int argc, char **argv)
{
    const size_t two[1] = {2};
    problem pb = {.cfg = {.T = 2.0, .steps = 40}};
    /* The "observation": the endpoint for k = 2, c = 0.3 from theta0 = 1, omega0 = 0. */
    const double s0v[2] = {1.0, 0.0}, truth[2] = {2.0, 0.3};
    {
        double s[2] = {s0v[0], s0v[1]};
        for (int i = 0; i < pb.cfg.steps; i++)
            rk4_step(s, pb.cfg.T / pb.cfg.steps, truth[0], truth[1], s);
        pb.target[0] = s[0];
        pb.target[1] = s[1];
    }
    printf("damped pendulum theta'' = -k sin(theta) - c theta', theta(0) = %g, theta'(0) = %g, "
           "%d RK4 steps to T = %g\n",
           s0v[0], s0v[1], pb.cfg.steps, pb.cfg.T);
    printf("observed endpoint (k = %g, c = %g): theta = %.10f, omega = %.10f\n", truth[0], truth[1],
           pb.target[0], pb.target[1]);

    tg_tensor *s0 = tg_tensor_from_f64(TG_F64, 1, two, s0v);
    tg_tensor *q = tg_tensor_from_f64(TG_F64, 1, two, (double[]){log(1.0), log(0.1)});
    if (!s0 || !q || tg_tensor_set_requires_grad(q, true) != TG_OK) {
        fprintf(stderr, "custom_ode: %s\n", tg_last_error());
        return 1;
    }

    /* The hand-written VJP against finite differences, with respect to s0 and q. */
    tg_tensor *inputs[2] = {s0, q};
    double err[2] = {0, 0};
    tg_status st = tg_gradcheck(loss_fn, &pb, inputs, 2, NULL, err);
    printf("gradcheck of the RK4 adjoint: %s, max error %.3g (d/ds0 %.3g, d/dq %.3g)\n",
           st == TG_OK ? "ok" : tg_status_name(st), fmax(err[0], err[1]), err[0], err[1]);
    if (st != TG_OK) {
        fprintf(stderr, "custom_ode: gradcheck: %s\n", tg_last_error());
        return 1;
    }

    /* Fit k and c (through q = log(k, c)) by gradient descent. */
    tg_tape *tape = tg_tape_new();
    const double lr = 0.5;
    const int steps = 300;
    double loss0 = 0, loss = 0;
    printf("step        loss           k           c\n");
    for (int step = 0; step <= steps; step++) {
        tg_tape_reset(tape);
        tg_tensor_zero_grad(q);
        tg_tensor *l = loss_fn(tape, inputs, 2, &pb);
        if (!l || tg_backward(tape, l) != TG_OK) {
            fprintf(stderr, "custom_ode: %s\n", tg_last_error());
            return 1;
        }
        loss = tg_tensor_item(l);
        if (step == 0)
            loss0 = loss;
        if (step % 50 == 0)
            printf("%4d  %.4e  %10.6f  %10.6f\n", step, loss, exp(tg_tensor_get(q, 0)),
                   exp(tg_tensor_get(q, 1)));
        for (size_t i = 0; i < 2 && step < steps; i++)
            tg_tensor_set(q, i, tg_tensor_get(q, i) - lr * tg_tensor_grad_get(q, i));
    }
    printf("fitted: k = %.6f, c = %.6f (true %g, %g); loss %.3g -> %.3g\n",
           exp(tg_tensor_get(q, 0)), exp(tg_tensor_get(q, 1)), truth[0], truth[1], loss0, loss);

    /* With a path: the fitted parameters to a named tensor file (not an MLP, so not a model
     * file), then read back into a new leaf by name, as another program would. */
    if (argc > 1) {
        tg_tensor *back = tg_tensor_zeros(TG_F64, 1, two);
        const tg_tensor *params[1] = {q};
        const char *names[1] = {"log_k_c"};
        if (!back || tg_tensors_save(argv[1], 1, names, params) != TG_OK ||
            tg_tensors_load_into(argv[1], 1, names, &back) != TG_OK) {
            fprintf(stderr, "custom_ode: %s\n", tg_last_error());
            return 1;
        }
        bool same = memcmp(tg_tensor_data(back), tg_tensor_data(q), 2 * sizeof(double)) == 0;
        printf("parameters saved to %s as 'log_k_c' and read back: k = %.6f, c = %.6f (%s)\n",
               argv[1], exp(tg_tensor_get(back, 0)), exp(tg_tensor_get(back, 1)),
               same ? "bit for bit" : "DIFFERENT");
        tg_tensor_free(back);
        if (!same)
            return 1;
    }

    tg_tape_free(tape);
    tg_tensor_free(s0);
    tg_tensor_free(q);
    return 0;
}
