/* bench_tape.c: the bench's workloads on tiny graphs, where the tape's own cost shows: W1,
 * the 2-2-2 sigmoid network trained by SGD at batch 1 and re-recorded every step (steps per
 * second); W1replay, the same training recorded once and replayed every step
 * (tg_tape_replay); and W2, a chain of 300,000 scalar ops then backward (ns per recorded op),
 * with subnormals flushed. W1 and W2 each time the same work written by hand in plain C
 * (bench_hand.c) in every repetition, right after their own, and give the ratio. */
#include "bench.h"

#include "common/clock.h"

#include <math.h>
#include <stdlib.h>

/* The median over n repetitions of a[r] / b[r], each pair measured one right after the other
 * (so that a machine whose speed drifts moves both); call it before bench_median reorders a or
 * b. NaN when out of memory. */
static double median_ratio(const double *a, const double *b, int n)
{
    double *q = malloc((size_t)n * sizeof *q);
    if (!q)
        return NAN;
    for (int r = 0; r < n; r++)
        q[r] = a[r] / b[r];
    double m = bench_median(q, n);
    free(q);
    return m;
}

/* ---- W1: the 2-2-2 network, batch 1 ---------------------------------------------------------- */

/* Plain SGD on a leaf of either dtype, clearing its gradient: W1's update, written out so
 * the step measures the tape, not an optimizer object. */
static void sgd_leaf(tg_tensor *w, double lr)
{
    size_t n = tg_tensor_numel(w);
    if (tg_tensor_dtype(w) == TG_F32) {
        float *v = tg_tensor_data(w), *g = tg_tensor_grad_data(w);
        for (size_t i = 0; i < n; i++) {
            v[i] -= (float)lr * g[i];
            g[i] = 0;
        }
    } else {
        double *v = tg_tensor_data(w), *g = tg_tensor_grad_data(w);
        for (size_t i = 0; i < n; i++) {
            v[i] -= lr * g[i];
            g[i] = 0;
        }
    }
}

typedef struct w1_net {
    tg_tensor *W1, *W2, *x, *t;
} w1_net;

/* The loss E = 0.5 sum((t - sigmoid(sigmoid(x W1) W2))^2), recorded on tape; NULL on error. */
static tg_tensor *w1_record(tg_tape *tape, const w1_net *n)
{
    tg_tensor *h = tg_sigmoid(tape, tg_matmul(tape, n->x, n->W1));
    tg_tensor *o = tg_sigmoid(tape, tg_matmul(tape, h, n->W2));
    tg_tensor *d = tg_sub(tape, n->t, o);
    return tg_scale(tape, tg_sum(tape, tg_square(tape, d), TG_ALL_AXES, false), 0.5);
}

/* One SGD step (record, backward, update, reset); the loss, or NaN on error. */
static double w1_step(tg_tape *tape, w1_net *n, double lr)
{
    tg_tensor *E = w1_record(tape, n);
    if (!E || tg_backward(tape, E) != TG_OK)
        return NAN;
    double loss = tg_tensor_item(E);
    sgd_leaf(n->W1, lr);
    sgd_leaf(n->W2, lr);
    tg_tape_reset(tape);
    return loss;
}

/* W1replay's step on the recording E: replay at the updated weights (but for the first step,
 * which uses the recording's own values), backward, update; the loss, or NaN on error. The
 * same arithmetic in the same order as w1_step, so the same losses bit for bit. */
static double w1_replay_step(tg_tape *tape, tg_tensor *E, w1_net *n, double lr, bool first)
{
    if ((!first && tg_tape_replay(tape) != TG_OK) || tg_backward(tape, E) != TG_OK)
        return NAN;
    double loss = tg_tensor_item(E);
    sgd_leaf(n->W1, lr);
    sgd_leaf(n->W2, lr);
    return loss;
}

static void w1_free(w1_net *n)
{
    tg_tensor_free(n->W1);
    tg_tensor_free(n->W2);
    tg_tensor_free(n->x);
    tg_tensor_free(n->t);
}

/* W1 (replay false) or W1replay (true). */
static void w1_run(bench *b, bool replay)
{
    const char *name = replay ? "W1replay" : "W1";
    /* The worked example's weights, input and targets. */
    const double W1v[4] = {0.3, 0.4, 0.25, 0.35}, W2v[4] = {0.45, 0.7, 0.4, 0.6};
    const double xv[2] = {0.1, 0.2}, tv[2] = {0.4, 0.6};
    const size_t row[2] = {1, 2}, sq[2] = {2, 2};
    const tg_dtype dt = bench_dtype(b, TG_F64);
    const int reps = bench_reps(b, 5, 2);
    const long steps = b->o->quick ? 200 : 1000000; /* quick: still short of convergence */
    /* rates: tapegrad's; hand: the hand-written step's (bench_hand.c), timed right after
     * tapegrad's in each repetition (W1 only), so that both see the same machine */
    double *rates = calloc(2 * (size_t)reps, sizeof *rates), *hand = rates ? rates + reps : NULL;
    tg_tape *tape = tg_tape_new();
    double loss = 0, hand_loss = 0;
    bool ok = rates && tape;
    for (int r = -1; r < reps && ok; r++) { /* r = -1: the warm-up */
        /* Fresh weights every repetition, so each trains the same path from the start. */
        w1_net n = {tg_tensor_from_f64(dt, 2, sq, W1v), tg_tensor_from_f64(dt, 2, sq, W2v),
                    tg_tensor_from_f64(dt, 2, row, xv), tg_tensor_from_f64(dt, 2, row, tv)};
        ok = n.W1 && n.W2 && n.x && n.t && tg_tensor_set_requires_grad(n.W1, true) == TG_OK &&
             tg_tensor_set_requires_grad(n.W2, true) == TG_OK;
        long count = r < 0 ? steps / 10 : steps;
        double t0 = monotonic_seconds();
        if (replay) { /* the recording is part of the timed run: once, at the start */
            tg_tensor *E = ok ? w1_record(tape, &n) : NULL;
            ok = E != NULL;
            for (long s = 0; s < count && ok; s++)
                ok = !isnan(loss = w1_replay_step(tape, E, &n, 0.5, s == 0));
            tg_tape_reset(tape);
        } else {
            for (long s = 0; s < count && ok; s++)
                ok = !isnan(loss = w1_step(tape, &n, 0.5));
        }
        double dt_s = monotonic_seconds() - t0;
        if (r >= 0)
            rates[r] = (double)count / dt_s;
        w1_free(&n);
        if (!replay) {
            t0 = monotonic_seconds();
            hand_loss = bench_hand_w1(dt, W1v, W2v, xv, tv, 0.5, count);
            if (r >= 0)
                hand[r] = (double)count / (monotonic_seconds() - t0);
        }
    }
    if (ok) {
        figure f = bench_figure(name, "steps_per_s", dt, reps);
        bench_ctx_num(&f, "steps", (double)steps);
        bench_ctx_num(&f, "final_loss", loss);
        /* tapegrad's rate over the hand-written step's, repetition by repetition (the issue's
         * bar: >= 0.40) */
        const double ratio = replay ? NAN : median_ratio(rates, hand, reps);
        f.value = bench_median(rates, reps);
        if (!replay) {
            bench_ctx_num(&f, "hand_c_steps_per_s", bench_median(hand, reps));
            bench_ctx_num(&f, "hand_c_final_loss", hand_loss);
            bench_ctx_num(&f, "ratio", ratio);
        }
        bench_ctx_cpus(b, &f);
        bench_emit(b, &f);
    } else {
        bench_failed(b, name, tg_last_error());
    }
    tg_tape_free(tape);
    free(rates);
}

void bench_w1(bench *b)
{
    w1_run(b, false);
}

void bench_w1replay(bench *b)
{
    w1_run(b, true);
}

/* ---- W2: a long chain of scalar ops ---------------------------------------------------------- */

/* W2's warm-up: the passes it always runs, how many in a row after them must come no more than
 * 3 % faster than the fastest before them before the timed ones start, and the most it runs
 * (0.3-0.6 s at 7-15 ms a pass, the hand-written chain's included). */
#define W2_WARMUPS_MIN 10
#define W2_SETTLED 3
#define W2_WARMUPS_MAX 40

/* The chain's gradient shrinks by about 0.675 a step backward and reaches the subnormals
 * after some 1,800 steps; from there every backward op would multiply subnormals, which x86
 * cores (Intel's especially) run through microcode assists. W2 measures the tape, not that
 * slow path: it runs with subnormals flushed (tg_set_flush_denormal), and says so. */
void bench_w2(bench *b)
{
    const tg_dtype dt = bench_dtype(b, TG_F64);
    const bool was_flushing = tg_flush_denormal();
    const bool flushing = tg_set_flush_denormal(true);
    const int reps = bench_reps(b, 5, 2);
    const int iters = b->o->quick ? 1000 : 100000, ops = 3 * iters;
    /* each repetition times tapegrad's chain, then the hand-written one (bench_hand.c) */
    double *fwd = calloc(4 * (size_t)reps, sizeof *fwd), *both = fwd ? fwd + reps : NULL,
           *hfwd = fwd ? fwd + 2 * reps : NULL, *hboth = fwd ? fwd + 3 * reps : NULL;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_scalar(dt, 0.5), *w = tg_tensor_scalar(dt, 0.9),
              *bias = tg_tensor_scalar(dt, 0.1);
    bool ok = fwd && both && tape && x && w && bias &&
              tg_tensor_set_requires_grad(x, true) == TG_OK &&
              tg_tensor_set_requires_grad(w, true) == TG_OK &&
              tg_tensor_set_requires_grad(bias, true) == TG_OK;
    double dw = 0, hand_dw = 0;
    const char *why = NULL; /* NULL: tg_last_error() */
    /* Warm-up passes (untimed) until the pass time stops falling by more than 3 % a pass:
     * W2_WARMUPS_MIN, then until W2_SETTLED passes in a row after them come no more than 3 %
     * faster than the fastest before each, at most W2_WARMUPS_MAX. They take in both header
     * arenas (a tape records into them in turn, so the second recording is the first to touch
     * the other one: 38 MB here), and what the first passes cost is the host's, not the tape's:
     * on a VM that hands freed memory back to its host, fresh huge pages were measured at 3-7
     * ms per MiB, 0.25 s for this chain (a steady pass: 5 ms); on an Intel VM the third to
     * fifth passes ran 1.3-1.6x slower than the tenth, falling pass by pass (and noisily: three
     * in a row could fail to beat the fastest by 3 % as early as the seventh), as did a plain C
     * loop writing 128-byte records over 38 MB (13.3 ns a record in its third pass, 4.7-6.5
     * from its tenth). */
    int warmups = 0, settled = 0;
    double fastest = INFINITY;
    for (int r = 0; r < reps && ok;) {
        /* (settled stays 0 through the first W2_WARMUPS_MIN passes: see below) */
        const bool warming = settled < W2_SETTLED && warmups < W2_WARMUPS_MAX;
        tg_tensor_zero_grad(x);
        tg_tensor_zero_grad(w);
        tg_tensor_zero_grad(bias);
        double t0 = monotonic_seconds();
        tg_tensor *y = x;
        for (int i = 0; i < iters; i++)
            y = tg_tanh(tape, tg_add(tape, tg_mul(tape, y, w), bias));
        double t1 = monotonic_seconds();
        ok = y && tg_backward(tape, y) == TG_OK;
        double t2 = monotonic_seconds();
        dw = tg_tensor_grad_get(w, 0);
        tg_tape_reset(tape);
        double hf, hb;
        if (ok && !bench_hand_w2(dt, 0.5, 0.9, 0.1, iters, &hf, &hb, &hand_dw))
            ok = false, why = "out of memory";
        if (warming) {
            warmups++;
            settled = warmups <= W2_WARMUPS_MIN || t2 - t0 < 0.97 * fastest ? 0 : settled + 1;
            fastest = fmin(fastest, t2 - t0);
        } else if (ok) {
            fwd[r] = (t1 - t0) * 1e9 / ops;
            both[r] = (t2 - t0) * 1e9 / ops;
            hfwd[r] = hf * 1e9 / ops;
            hboth[r] = hb * 1e9 / ops;
            r++;
        }
    }
    if (ok) {
        figure f = bench_figure("W2", "ns_per_op_forward", dt, reps);
        bench_ctx_num(&f, "ops", ops);
        bench_ctx_num(&f, "warmup_passes", warmups);
        bench_ctx_num(&f, "dy_dw", dw);
        bench_ctx_str(&f, "subnormals", flushing ? "flushed" : "kept (flushing not supported)");
        bench_ctx_cpus(b, &f);
        const int n_ctx = f.n_ctx;
        /* each figure beside the hand-written chain's, and tapegrad's time over it,
         * repetition by repetition (the bar for forward and backward: <= 2.0) */
        const double ratio_fwd = median_ratio(fwd, hfwd, reps),
                     ratio_both = median_ratio(both, hboth, reps);
        f.value = bench_median(fwd, reps);
        bench_ctx_num(&f, "hand_c_ns_per_op", bench_median(hfwd, reps));
        bench_ctx_num(&f, "ratio", ratio_fwd);
        bench_emit(b, &f);
        f.n_ctx = n_ctx;
        f.metric = "ns_per_op_forward_backward";
        f.value = bench_median(both, reps);
        bench_ctx_num(&f, "hand_c_ns_per_op", bench_median(hboth, reps));
        bench_ctx_num(&f, "ratio", ratio_both);
        bench_ctx_num(&f, "hand_c_dy_dw", hand_dw);
        bench_emit(b, &f);
    } else {
        bench_failed(b, "W2", why ? why : tg_last_error());
    }
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(bias);
    tg_tape_free(tape);
    free(fwd);
    tg_set_flush_denormal(was_flushing);
}
