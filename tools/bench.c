/* bench.c: the benchmark program (tapegrad-bench). Prints one JSON object per line with
 * workload, metric, value, threads and dtype; each figure is the median of several runs after
 * a warm-up run. Speed targets are checked here, never by timed unit tests.
 *
 *   W1  the 2-2-2 sigmoid network of examples/backprop_222.c trained by SGD at batch 1, a
 *       fresh recording every step (record, backward, update, reset): steps per second.
 *   W2  y = tanh(y*w + b) for 100,000 iterations on 0-d f64 scalars (300,000 recorded ops),
 *       then backward: nanoseconds per recorded op, forward alone and forward+backward.
 *
 * Usage: tapegrad-bench [W1|W2|all] [--reps N] [--steps N] */
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void report(const char *workload, const char *metric, double value, const char *dtype,
                   const char *extra)
{
    printf("{\"workload\": \"%s\", \"metric\": \"%s\", \"value\": %.6g, \"threads\": 1, "
           "\"dtype\": \"%s\"%s}\n",
           workload, metric, value, dtype, extra ? extra : "");
    fflush(stdout);
}

static int fail(const char *what)
{
    fprintf(stderr, "tapegrad-bench: %s: %s\n", what, tg_last_error());
    return 1;
}

/* ---- W1 ------------------------------------------------------------------------------------ */

typedef struct w1_net {
    tg_tensor *W1, *W2, *x, *t;
} w1_net;

/* One SGD step; returns the loss, or NaN on error. */
static double w1_step(tg_tape *tape, w1_net *n, double lr)
{
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, n->x, n->W1));
    tg_tensor *o = tg_sigmoid(tape, tg_matmul(tape, h, n->W2));
    tg_tensor *d = tg_sub(tape, n->t, o);
    tg_tensor *E = tg_scale(tape, tg_sum(tape, tg_square(tape, d), TG_ALL_AXES, false), 0.5);
    if (!E || tg_backward(tape, E) != TG_OK)
        return 0.0 / 0.0;
    double loss = tg_tensor_item(E);
    tg_tensor *params[2] = {n->W1, n->W2};
    for (int p = 0; p < 2; p++) {
        double *w = tg_tensor_data(params[p]), *g = tg_tensor_grad_data(params[p]);
        for (int i = 0; i < 4; i++) {
            w[i] -= lr * g[i];
            g[i] = 0;
        }
    }
    tg_tape_reset(tape);
    return loss;
}

static int bench_w1(int reps, long steps)
{
    const double W1[4] = {0.3, 0.4, 0.25, 0.35}, W2[4] = {0.45, 0.7, 0.4, 0.6};
    const double x[2] = {0.1, 0.2}, t[2] = {0.4, 0.6};
    const size_t row[2] = {1, 2}, sq[2] = {2, 2};
    double *rates = calloc((size_t)reps, sizeof *rates);
    tg_tape *tape = tg_tape_new();
    if (!rates || !tape)
        return fail("W1");
    double loss = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        w1_net n = {tg_tensor_from_f64(TG_F64, 2, sq, W1), tg_tensor_from_f64(TG_F64, 2, sq, W2),
                    tg_tensor_from_f64(TG_F64, 2, row, x), tg_tensor_from_f64(TG_F64, 2, row, t)};
        if (!n.W1 || !n.W2 || !n.x || !n.t)
            return fail("W1");
        tg_tensor_set_requires_grad(n.W1, true);
        tg_tensor_set_requires_grad(n.W2, true);
        long count = r < 0 ? steps / 10 : steps;
        double t0 = now();
        for (long s = 0; s < count; s++)
            loss = w1_step(tape, &n, 0.5);
        double dt = now() - t0;
        if (loss != loss)
            return fail("W1 step");
        if (r >= 0)
            rates[r] = (double)count / dt;
        tg_tensor_free(n.W1);
        tg_tensor_free(n.W2);
        tg_tensor_free(n.x);
        tg_tensor_free(n.t);
    }
    char extra[96];
    snprintf(extra, sizeof extra, ", \"steps\": %ld, \"final_loss\": %.6g", steps, loss);
    report("W1", "steps_per_s", median(rates, reps), "f64", extra);
    tg_tape_free(tape);
    free(rates);
    return 0;
}

/* ---- W2 ------------------------------------------------------------------------------------ */

static int bench_w2(int reps)
{
    enum { ITERS = 100000, OPS = 3 * ITERS };
    double *fwd = calloc((size_t)reps, sizeof *fwd), *both = calloc((size_t)reps, sizeof *both);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(TG_F64, 0.5), *w = tg_tensor_scalar(TG_F64, 0.9),
              *b = tg_tensor_scalar(TG_F64, 0.1);
    if (!fwd || !both || !tape || !x || !w || !b)
        return fail("W2");
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor_set_requires_grad(b, true);
    double dx = 0;
    for (int r = -1; r < reps; r++) {
        tg_tensor_zero_grad(x);
        tg_tensor_zero_grad(w);
        tg_tensor_zero_grad(b);
        double t0 = now();
        tg_tensor *y = x;
        for (int i = 0; i < ITERS; i++)
            y = tg_tanh(tape, tg_add(tape, tg_mul(tape, y, w), b));
        double t1 = now();
        if (!y || tg_backward(tape, y) != TG_OK)
            return fail("W2");
        double t2 = now();
        dx = tg_tensor_grad_get(x, 0);
        tg_tape_reset(tape);
        if (r >= 0) {
            fwd[r] = (t1 - t0) * 1e9 / OPS;
            both[r] = (t2 - t0) * 1e9 / OPS;
        }
    }
    char extra[64];
    snprintf(extra, sizeof extra, ", \"ops\": %d, \"dy_dx\": %.6g", OPS, dx);
    report("W2", "ns_per_op_forward", median(fwd, reps), "f64", extra);
    report("W2", "ns_per_op_forward_backward", median(both, reps), "f64", extra);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tape_free(tape);
    free(fwd);
    free(both);
    return 0;
}

int main(int argc, char **argv)
{
    const char *which = "all";
    int reps = 5;
    long steps = 1000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (argv[i][0] != '-')
            which = argv[i];
        else {
            fprintf(stderr, "usage: tapegrad-bench [W1|W2|all] [--reps N] [--steps N]\n");
            return 2;
        }
    }
    if (reps < 1 || steps < 1) {
        fprintf(stderr, "tapegrad-bench: --reps and --steps must be positive\n");
        return 2;
    }
    bool all = !strcmp(which, "all");
    if (!all && strcmp(which, "W1") && strcmp(which, "W2")) {
        fprintf(stderr, "tapegrad-bench: unknown workload '%s' (W1, W2 or all)\n", which);
        return 2;
    }
    if ((all || !strcmp(which, "W1")) && bench_w1(reps, steps))
        return 1;
    if ((all || !strcmp(which, "W2")) && bench_w2(reps))
        return 1;
    return 0;
}
