/* bench_hand.c: the references W1 and W2 are measured against, written by hand in plain C with
 * the derivatives derived by hand: W1's step (the 2-2-2 sigmoid network, SGD at batch 1) and
 * W2's chain (y = tanh(y w + b), then its backward). No tape, no tensors, no allocation in the
 * loop: what the same arithmetic costs with nothing around it, so that `tapegrad bench W1 W2`
 * prints the tape's overhead as a ratio to it (bench_tape.c alternates the two).
 *
 * The element functions are the library's own, tg__sigmoid and tg__tanh (core/detmath.h), which
 * its sigmoid and tanh ops call (f32 rounding their f64 result), so that the comparison is of
 * the tape against no tape, not of one exp or tanh against another, and the hand-written W1
 * trains the same path as W1 (tests/test_bench.c checks the final losses agree). */
#include "bench.h"

#include "common/clock.h"
#include "core/detmath.h"

#include <stdlib.h>

/* ---- W1 by hand -------------------------------------------------------------------------------
 * x (1x2), W1, W2 (2x2), t (1x2):
 *   a = x W1, h = s(a), b = h W2, o = s(b), d = t - o, E = 0.5 sum d^2
 * and backward, s' = s (1 - s):
 *   dE/do = -d, delta_o = (-d) o (1 - o), dW2[j][k] = h_j delta_o_k,
 *   dh_j = sum_k W2[j][k] delta_o_k, delta_h = dh h (1 - h), dW1[i][j] = x_i delta_h_j
 * then W -= lr dW. The products and sums in the order the ops compute them. */
#define HAND_W1(T, SIG)                                                                            \
    static double hand_w1_##T(const double W1v[4], const double W2v[4], const double xv[2],        \
                              const double tv[2], double lr, long steps)                           \
    {                                                                                              \
        T W1[2][2] = {{(T)W1v[0], (T)W1v[1]}, {(T)W1v[2], (T)W1v[3]}};                             \
        T W2[2][2] = {{(T)W2v[0], (T)W2v[1]}, {(T)W2v[2], (T)W2v[3]}};                             \
        const T x[2] = {(T)xv[0], (T)xv[1]}, t[2] = {(T)tv[0], (T)tv[1]}, l = (T)lr;               \
        T loss = 0;                                                                                \
        for (long s = 0; s < steps; s++) {                                                         \
            T h[2], o[2], d[2], dO[2], dh[2];                                                      \
            for (int j = 0; j < 2; j++)                                                            \
                h[j] = SIG(x[0] * W1[0][j] + x[1] * W1[1][j]);                                     \
            for (int k = 0; k < 2; k++) {                                                          \
                o[k] = SIG(h[0] * W2[0][k] + h[1] * W2[1][k]);                                     \
                d[k] = t[k] - o[k];                                                                \
            }                                                                                      \
            loss = (T)0.5 * (d[0] * d[0] + d[1] * d[1]);                                           \
            for (int k = 0; k < 2; k++)                                                            \
                dO[k] = -d[k] * o[k] * (1 - o[k]);                                                 \
            for (int j = 0; j < 2; j++) {                                                          \
                dh[j] = dO[0] * W2[j][0] + dO[1] * W2[j][1];                                       \
                dh[j] = dh[j] * h[j] * (1 - h[j]);                                                 \
            }                                                                                      \
            for (int j = 0; j < 2; j++)                                                            \
                for (int k = 0; k < 2; k++) {                                                      \
                    W2[j][k] -= l * (h[j] * dO[k]);                                                \
                    W1[j][k] -= l * (x[j] * dh[k]);                                                \
                }                                                                                  \
        }                                                                                          \
        return loss;                                                                               \
    }

static inline float sig_f32(float x)
{
    return (float)tg__sigmoid(x);
}

HAND_W1(float, sig_f32)
HAND_W1(double, tg__sigmoid)

double bench_hand_w1(tg_dtype dt, const double W1[4], const double W2[4], const double x[2],
                     const double t[2], double lr, long steps)
{
    return dt == TG_F32 ? hand_w1_float(W1, W2, x, t, lr, steps)
                        : hand_w1_double(W1, W2, x, t, lr, steps);
}

/* ---- W2 by hand -------------------------------------------------------------------------------
 * y_0 = x, y_{i+1} = tanh(y_i w + b) for i < n, kept for the backward; then from g = 1:
 *   g' = g (1 - y_{i+1}^2) (tanh's slope from its value), db += g', dw += g' y_i, g = g' w
 * for i = n-1 down to 0, and dx = g. */
#define HAND_W2(T, TANH)                                                                           \
    static bool hand_w2_##T(double xv, double wv, double bv, int n, double *t_fwd, double *t_both, \
                            double *dw_out)                                                        \
    {                                                                                              \
        T *y = malloc(((size_t)n + 1) * sizeof *y);                                                \
        if (!y)                                                                                    \
            return false;                                                                          \
        const T w = (T)wv, b = (T)bv;                                                              \
        double t0 = monotonic_seconds();                                                           \
        y[0] = (T)xv;                                                                              \
        for (int i = 0; i < n; i++)                                                                \
            y[i + 1] = TANH(y[i] * w + b);                                                         \
        double t1 = monotonic_seconds();                                                           \
        T g = 1, dw = 0, db = 0;                                                                   \
        for (int i = n - 1; i >= 0; i--) {                                                         \
            T gt = g * (1 - y[i + 1] * y[i + 1]);                                                  \
            db += gt;                                                                              \
            dw += gt * y[i];                                                                       \
            g = gt * w;                                                                            \
        }                                                                                          \
        double t2 = monotonic_seconds();                                                           \
        /* keep the results alive, so that the backward is not optimized away */                   \
        volatile T sink = g + db;                                                                  \
        (void)sink;                                                                                \
        *t_fwd = t1 - t0;                                                                          \
        *t_both = t2 - t0;                                                                         \
        *dw_out = (double)dw;                                                                      \
        free(y);                                                                                   \
        return true;                                                                               \
    }

static inline float tanh_f32(float x)
{
    return (float)tg__tanh(x);
}

HAND_W2(float, tanh_f32)
HAND_W2(double, tg__tanh)

bool bench_hand_w2(tg_dtype dt, double x, double w, double b, int n, double *t_fwd, double *t_both,
                   double *dw)
{
    return dt == TG_F32 ? hand_w2_float(x, w, b, n, t_fwd, t_both, dw)
                        : hand_w2_double(x, w, b, n, t_fwd, t_both, dw);
}
