/* test_diff.c: the derivative products and matrices (tapegrad/diff.h) on composite functions,
 * against references computed independently in float64: closed forms written out in the test
 * (Rosenbrock's Hessian, the logistic loss's X^T diag(p(1-p)) X, a quadratic form's A + A^T,
 * softmax's diag(p) - p p^T, trig and where elementwise), and for an MLP loss a gradient
 * derived by hand (backpropagation written in plain C loops) differenced centrally. Every
 * Hessian computed is checked for symmetry to rounding. Also: tg_jvp against tg_jacobian,
 * tg_hvp against tg_hessian, the Jacobian's two strategies, the leaves' grads left as they
 * were (and two threads sharing a leaf), the memory of a Hessian of 300 inputs, and the
 * errors. (Every op's JVP against finite
 * differences: test_diff_ops.c.) */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"
#include "tape/captured.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static tg_tensor *leaf(size_t n, const double *v)
{
    return ts_vec(TG_F64, n, v, true);
}

/* The Hessian blocks of f in xs, asserted made and symmetric to rounding: block (i, j) entry
 * (k, l) against block (j, i) entry (l, k). */
static void hessian(tg_tape *tape, tg_tensor *f, tg_tensor *const *xs, size_t n, tg_tensor **H)
{
    tg_status st = tg_hessian(tape, f, xs, n, H);
    cr_assert_eq(st, TG_OK, "tg_hessian: %s", tg_last_error());
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            size_t ni = tg_tensor_numel(xs[i]), nj = tg_tensor_numel(xs[j]);
            cr_assert_eq(tg_tensor_dim(H[i * n + j], 0), ni);
            cr_assert_eq(tg_tensor_dim(H[i * n + j], 1), nj);
            for (size_t k = 0; k < ni; k++)
                for (size_t l = 0; l < nj; l++) {
                    double a = tg_tensor_get(H[i * n + j], k * nj + l);
                    double b = tg_tensor_get(H[j * n + i], l * ni + k);
                    ts_assert_close(a, b, 1e-12, 1e-12, "symmetry: H[%zu][%zu](%zu,%zu)", i, j, k,
                                    l);
                }
        }
}

/* The Hessian blocks H (from hessian(), inputs x and y of n elements each) of the sum of an
 * elementwise function of x and y: each block diagonal, with xx[k], xy[k] and yy[k] on the
 * diagonals of blocks (x, x), (x, y) and (y, y), to within 1e-15 or rel_tol relative. */
static void assert_elementwise_hessian(tg_tensor *const H[4], size_t n, const double *xx,
                                       const double *xy, const double *yy, double rel_tol)
{
    for (size_t k = 0; k < n; k++)
        for (size_t l = 0; l < n; l++) {
            ts_assert_close(tg_tensor_get(H[0], k * n + l), k == l ? xx[k] : 0, 1e-15, rel_tol,
                            "xx (%zu,%zu)", k, l);
            ts_assert_close(tg_tensor_get(H[1], k * n + l), k == l ? xy[k] : 0, 1e-15, rel_tol,
                            "xy (%zu,%zu)", k, l);
            ts_assert_close(tg_tensor_get(H[3], k * n + l), k == l ? yy[k] : 0, 1e-15, rel_tol,
                            "yy (%zu,%zu)", k, l);
        }
}

static void free_all(tg_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tg_tensor_free(t[i]);
}

/* ---- Hessians of composite functions --------------------------------------------------------- */

/* Rosenbrock in N dimensions with slices: f = sum(100 (x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2).
 * Hand-derived Hessian (tridiagonal): H[i][i] = 1200 x_i^2 - 400 x_{i+1} + 2 for i < N-1,
 * plus 200 for i > 0; H[i][i+1] = H[i+1][i] = -400 x_i. */
Test(diff, hessian_rosenbrock_slices)
{
    enum { N = 5 };
    const double xv[N] = {-1.2, 1.0, 0.3, -0.7, 2.0};
    tg_tensor *x = leaf(N, xv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_slice(tape, x, 0, 1, TG_END, 1), *b = tg_slice(tape, x, 0, 0, N - 1, 1);
    tg_tensor *d = tg_sub(tape, a, tg_square(tape, b));
    tg_tensor *e = tg_sub(tape, tg_scalar(tape, TG_F64, 1.0), b);
    tg_tensor *f =
        tg_sum(tape, tg_add(tape, tg_scale(tape, tg_square(tape, d), 100.0), tg_square(tape, e)),
               TG_ALL_AXES, false);
    cr_assert(f, "%s", tg_tape_error(tape));
    tg_tensor *H;
    hessian(tape, f, &x, 1, &H);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double want = 0;
            if (i == j)
                want = (i < N - 1 ? 1200 * xv[i] * xv[i] - 400 * xv[i + 1] + 2 : 0) +
                       (i > 0 ? 200 : 0);
            else if (j == i + 1)
                want = -400 * xv[i];
            else if (i == j + 1)
                want = -400 * xv[j];
            ts_assert_close(tg_tensor_get(H, (size_t)(i * N + j)), want, 1e-10, 1e-12, "H[%d][%d]",
                            i, j);
        }
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Logistic regression: f(w) = sum(softplus(X w) - t * (X w)), the negative log-likelihood;
 * its Hessian is X^T diag(p (1 - p)) X with p = 1 / (1 + exp(-X w)) (closed form, computed
 * here in plain loops). */
Test(diff, hessian_logistic_loss)
{
    enum { M = 6, D = 3 };
    const double X[M * D] = {0.5, -1.0, 2.0, 1.5, 0.25, -0.5, -0.3, 0.8,  1.1,
                             2.0, -1.5, 0.1, 0.0, 0.6,  -0.9, -1.2, -0.4, 0.7};
    const double t[M] = {1, 0, 1, 1, 0, 0}, wv[D] = {0.3, -0.2, 0.5};
    tg_tensor *w = ts_mat(TG_F64, D, 1, wv, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *Xc = tg_constant(tape, TG_F64, 2, TS_SHAPE(M, D), X);
    tg_tensor *tc = tg_constant(tape, TG_F64, 2, TS_SHAPE(M, 1), t);
    tg_tensor *z = tg_matmul(tape, Xc, w);
    tg_tensor *f =
        tg_sum(tape, tg_sub(tape, tg_softplus(tape, z), tg_mul(tape, tc, z)), TG_ALL_AXES, false);
    cr_assert(f, "%s", tg_tape_error(tape));
    tg_tensor *H;
    hessian(tape, f, &w, 1, &H);
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double want = 0;
            for (int m = 0; m < M; m++) {
                double zm = 0;
                for (int k = 0; k < D; k++)
                    zm += X[m * D + k] * wv[k];
                double p = 1 / (1 + exp(-zm));
                want += X[m * D + a] * p * (1 - p) * X[m * D + b];
            }
            ts_assert_close(tg_tensor_get(H, (size_t)(a * D + b)), want, 1e-13, 1e-12, "H[%d][%d]",
                            a, b);
        }
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(w);
}

/* f = x^T A x with A not symmetric: H = A + A^T, for any x. */
Test(diff, hessian_quadratic_form)
{
    enum { N = 4 };
    const double A[N * N] = {2, 1, 0, -1, 3, 4, 0.5, 0, -2, 1, 1, 0.25, 0, 0, 7, -3};
    tg_tensor *x = ts_mat(TG_F64, N, 1, TS_VALS(0.1, -2, 3, 0.5), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *Ac = tg_constant(tape, TG_F64, 2, TS_SHAPE(N, N), A);
    tg_tensor *f = tg_sum(tape, tg_mul(tape, x, tg_matmul(tape, Ac, x)), TG_ALL_AXES, false);
    tg_tensor *H;
    hessian(tape, f, &x, 1, &H);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            ts_assert_close(tg_tensor_get(H, (size_t)(i * N + j)), A[i * N + j] + A[j * N + i],
                            1e-14, 0, "H[%d][%d]", i, j);
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* f = sum(sin(x) cos(y)), two inputs: H_xx = diag(-sin x cos y), H_xy = diag(-cos x sin y),
 * H_yy = diag(-sin x cos y). */
Test(diff, hessian_trig_blocks)
{
    enum { N = 3 };
    const double xv[N] = {0.3, -1.1, 2.0}, yv[N] = {1.4, 0.2, -0.6};
    tg_tensor *x = leaf(N, xv), *y = leaf(N, yv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_mul(tape, tg_sin(tape, x), tg_cos(tape, y)), TG_ALL_AXES, false);
    tg_tensor *xs[2] = {x, y}, *H[4];
    hessian(tape, f, xs, 2, H);
    double xx[N], xy[N];
    for (int k = 0; k < N; k++) {
        xx[k] = -sin(xv[k]) * cos(yv[k]);
        xy[k] = -cos(xv[k]) * sin(yv[k]);
    }
    assert_elementwise_hessian(H, N, xx, xy, xx, 1e-13);
    free_all(H, 4);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* f = sum(where(x > 0, x^3, 2 x^2)): H = diag(6 x) where x > 0, diag(4) elsewhere; and its
 * gradient's Jacobian (the same matrix, by the other route). */
Test(diff, hessian_where)
{
    enum { N = 4 };
    const double xv[N] = {0.5, -1.5, 2.0, -0.25};
    tg_tensor *x = leaf(N, xv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *c = tg_gt(tape, x, tg_scalar(tape, TG_F64, 0.0));
    tg_tensor *w = tg_where(tape, c, tg_mul(tape, tg_square(tape, x), x),
                            tg_scale(tape, tg_square(tape, x), 2.0));
    tg_tensor *f = tg_sum(tape, w, TG_ALL_AXES, false);
    cr_assert(f, "%s", tg_tape_error(tape));
    tg_tensor *H, *g, *J;
    hessian(tape, f, &x, 1, &H);
    cr_assert_eq(tg_vjp(tape, f, NULL, &x, 1, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_jacobian(tape, g, &x, 1, &J), TG_OK, "%s", tg_last_error());
    for (int k = 0; k < N; k++)
        for (int l = 0; l < N; l++) {
            double want = k != l ? 0 : xv[k] > 0 ? 6 * xv[k] : 4;
            ts_assert_close(tg_tensor_get(H, (size_t)(k * N + l)), want, 1e-14, 1e-14, "H");
            ts_assert_close(tg_tensor_get(J, (size_t)(k * N + l)), want, 1e-14, 1e-14, "J");
        }
    tg_tensor_free(H);
    tg_tensor_free(J);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* f = sum(x^y) at exponents of 0, where the recorded da = b a^(b-1) is 0: by hand,
 * f_xx = y (y - 1) x^(y-2), f_xy = x^(y-1) (1 + y log x), f_yy = x^y log(x)^2, elementwise; at
 * y = 0 that is 0, 1/x and log(x)^2. And g(x) = (2 + x)^x at 0: g = e^h with h = x log(2 + x),
 * h' = log(2 + x) + x / (2 + x), h'' = 1 / (2 + x) + 2 / (2 + x)^2, so h'(0) = log 2, h''(0) = 1
 * and g''(0) = g (h'^2 + h'') = log(2)^2 + 1. The exponent's factor, not a mask, makes da 0
 * there, so that its derivative in y is x^(y-1); where x = 0 too, the gradient is 0 (not
 * 0 * inf). */
Test(diff, hessian_pow_tensor_at_a_zero_exponent)
{
    enum { N = 4 };
    const double xv[N] = {0.5, 2.0, 3.0, 1.5}, yv[N] = {0.0, 0.0, -0.0, 0.5};
    tg_tensor *x = leaf(N, xv), *y = leaf(N, yv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_pow_tensor(tape, x, y), TG_ALL_AXES, false);
    tg_tensor *xs[2] = {x, y}, *H[4];
    hessian(tape, f, xs, 2, H);
    double xx[N], xy[N], yy[N];
    for (int k = 0; k < N; k++) {
        const double a = xv[k], b = yv[k], lg = log(a);
        xx[k] = b * (b - 1) * pow(a, b - 2);
        xy[k] = pow(a, b - 1) * (1 + b * lg);
        yy[k] = pow(a, b) * lg * lg;
    }
    assert_elementwise_hessian(H, N, xx, xy, yy, 1e-14);
    free_all(H, 4);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);

    tg_tensor *t = leaf(1, (double[]){0.0}), *Hg;
    tape = tg_tape_new();
    tg_tensor *g = tg_pow_tensor(tape, tg_add(tape, tg_scalar(tape, TG_F64, 2.0), t), t);
    hessian(tape, tg_sum(tape, g, TG_ALL_AXES, false), &t, 1, &Hg);
    ts_assert_close(tg_tensor_get(Hg, 0), 1 + log(2) * log(2), 1e-15, 1e-15, "(2 + x)^x");
    tg_tensor_free(Hg);
    tg_tape_free(tape);
    tg_tensor_free(t);

    /* At x = 0 and y = 0 the recorded gradient is 0 in both: in x as above, in y by the
     * convention PyTorch and JAX follow (0^y jumps from inf through 1 to 0 there), not
     * log(0) = -inf. So are its derivatives: the Hessian is 0, not NaN against 0. */
    tg_tensor *z = leaf(1, (double[]){0.0}), *e = leaf(1, (double[]){0.0}), *gz[2], *Hz[4];
    tg_tensor *ze[2] = {z, e};
    tape = tg_tape_new();
    tg_tensor *fz = tg_sum(tape, tg_pow_tensor(tape, z, e), TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, fz, ze, 2, NULL, gz), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_get(gz[0], 0), 0.0, "d/dx x^y at (0, 0): %g", tg_tensor_get(gz[0], 0));
    cr_expect_eq(tg_tensor_get(gz[1], 0), 0.0, "d/dy x^y at (0, 0): %g", tg_tensor_get(gz[1], 0));
    hessian(tape, fz, ze, 2, Hz);
    for (int k = 0; k < 4; k++)
        cr_expect_eq(tg_tensor_get(Hz[k], 0), 0.0, "H[%d] of x^y at (0, 0): %g", k,
                     tg_tensor_get(Hz[k], 0));
    free_all(Hz, 4);
    tg_tape_free(tape);
    tg_tensor_free(z);
    tg_tensor_free(e);
}

/* Softmax cross-entropy in the logits z (B rows, C classes): mean over rows of
 * -log softmax(z)[label]; per row the Hessian is (diag(p) - p p^T) / B and rows do not mix.
 * The Jacobian of softmax(z) along axis 1 is diag(p) - p p^T per row too. */
Test(diff, softmax_cross_entropy)
{
    enum { B = 2, C = 3 };
    const double zv[B * C] = {0.5, -1.0, 2.0, 0.1, 0.3, -0.7};
    tg_tensor *z = ts_mat(TG_F64, B, C, zv, true);
    tg_tensor *labels = ts_vec(TG_F64, B, TS_VALS(2, 0), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_cross_entropy(tape, z, labels);
    tg_tensor *s = tg_softmax(tape, z, 1);
    cr_assert(f && s, "%s", tg_tape_error(tape));
    tg_tensor *H, *J;
    hessian(tape, f, &z, 1, &H);
    cr_assert_eq(tg_jacobian(tape, s, &z, 1, &J), TG_OK, "%s", tg_last_error());
    for (int r = 0; r < B; r++) {
        double m = -INFINITY, sum = 0, p[C];
        for (int c = 0; c < C; c++)
            m = fmax(m, zv[r * C + c]);
        for (int c = 0; c < C; c++)
            sum += p[c] = exp(zv[r * C + c] - m);
        for (int c = 0; c < C; c++)
            p[c] /= sum;
        for (int r2 = 0; r2 < B; r2++)
            for (int a = 0; a < C; a++)
                for (int b = 0; b < C; b++) {
                    double want = r2 != r ? 0 : (a == b ? p[a] : 0) - p[a] * p[b];
                    size_t at = (size_t)((r * C + a) * B * C + r2 * C + b);
                    ts_assert_close(tg_tensor_get(H, at), want / B, 1e-15, 1e-13, "H");
                    ts_assert_close(tg_tensor_get(J, at), want, 1e-15, 1e-13, "J");
                }
    }
    tg_tensor_free(H);
    tg_tensor_free(J);
    tg_tape_free(tape);
    tg_tensor_free(z);
    tg_tensor_free(labels);
}

/* ---- an MLP loss: Hessian in both weight matrices against a hand-derived gradient -------- */

enum { MB = 3, MI = 3, MH = 4, MO = 2 };
static const double MX[MB * MI] = {0.5, -1.2, 0.3, 1.1, 0.4, -0.8, -0.6, 0.9, 1.5};
static const double MLAB[MB] = {1, 0, 1};

/* The loss mean_n -log softmax(tanh(x W1) W2)[n, label_n] and its gradient in (W1, W2),
 * backpropagated by hand: dz = (softmax(z) - onehot) / B, dW2 = h^T dz, dh = dz W2^T,
 * da = dh (1 - h^2), dW1 = x^T da. */
static void mlp_grad(const double *W1, const double *W2, double *g1, double *g2)
{
    double h[MB * MH], dz[MB * MO], da[MB * MH];
    for (int n = 0; n < MB; n++) {
        for (int j = 0; j < MH; j++) {
            double a = 0;
            for (int i = 0; i < MI; i++)
                a += MX[n * MI + i] * W1[i * MH + j];
            h[n * MH + j] = tanh(a);
        }
        double z[MO], m = -INFINITY, s = 0;
        for (int o = 0; o < MO; o++) {
            z[o] = 0;
            for (int j = 0; j < MH; j++)
                z[o] += h[n * MH + j] * W2[j * MO + o];
            m = fmax(m, z[o]);
        }
        for (int o = 0; o < MO; o++)
            s += exp(z[o] - m);
        for (int o = 0; o < MO; o++)
            dz[n * MO + o] = (exp(z[o] - m) / s - (o == (int)MLAB[n])) / MB;
        for (int j = 0; j < MH; j++) {
            double dh = 0;
            for (int o = 0; o < MO; o++)
                dh += dz[n * MO + o] * W2[j * MO + o];
            da[n * MH + j] = dh * (1 - h[n * MH + j] * h[n * MH + j]);
        }
    }
    for (int j = 0; j < MH; j++)
        for (int o = 0; o < MO; o++) {
            g2[j * MO + o] = 0;
            for (int n = 0; n < MB; n++)
                g2[j * MO + o] += h[n * MH + j] * dz[n * MO + o];
        }
    for (int i = 0; i < MI; i++)
        for (int j = 0; j < MH; j++) {
            g1[i * MH + j] = 0;
            for (int n = 0; n < MB; n++)
                g1[i * MH + j] += MX[n * MI + i] * da[n * MH + j];
        }
}

Test(diff, hessian_mlp_loss)
{
    enum { N1 = MI * MH, N2 = MH * MO, N = N1 + N2 };
    double w[N];
    for (int i = 0; i < N; i++)
        w[i] = 0.7 * sin(1.3 * i + 0.4);
    tg_tensor *W1 = ts_mat(TG_F64, MI, MH, w, true), *W2 = ts_mat(TG_F64, MH, MO, w + N1, true);
    tg_tensor *x = ts_mat(TG_F64, MB, MI, MX, false), *lab = ts_vec(TG_F64, MB, MLAB, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f =
        tg_cross_entropy(tape, tg_matmul(tape, tg_tanh(tape, tg_matmul(tape, x, W1)), W2), lab);
    cr_assert(f, "%s", tg_tape_error(tape));
    tg_tensor *xs[2] = {W1, W2}, *H[4];
    hessian(tape, f, xs, 2, H);
    /* Reference: central differences (h = 1e-5) of the hand-derived gradient, in f64: exact
     * to O(h^2) ~ 1e-10 relative to the third derivatives, plus rounding ~ 1e-16 / h. */
    for (int k = 0; k < N; k++) {
        double wp[N], wm[N], gp[N], gm[N];
        memcpy(wp, w, sizeof w);
        memcpy(wm, w, sizeof w);
        wp[k] += 1e-5;
        wm[k] -= 1e-5;
        mlp_grad(wp, wp + N1, gp, gp + N1);
        mlp_grad(wm, wm + N1, gm, gm + N1);
        for (int l = 0; l < N; l++) {
            double want = (gp[l] - gm[l]) / 2e-5;
            int bi = k >= N1, bj = l >= N1, kk = bi ? k - N1 : k, ll = bj ? l - N1 : l;
            int cols = bj ? N2 : N1;
            ts_assert_close(tg_tensor_get(H[bi * 2 + bj], (size_t)(kk * cols + ll)), want, 1e-9,
                            1e-7, "H[%d][%d]", k, l);
        }
    }
    free_all(H, 4);
    tg_tape_free(tape);
    tg_tensor_free(W1);
    tg_tensor_free(W2);
    tg_tensor_free(x);
    tg_tensor_free(lab);
}

/* ---- Jacobians: both strategies, and the products against them ----------------------------- */

/* y = sin(x * t), x (2) against t (R, 1): y[r, c] = sin(x_c t_r), so d y[r, c] / d x_k =
 * [c == k] t_r cos(x_c t_r). With R = 8 (16 outputs, 2 inputs) the columns are cheaper and
 * forward mode records the gradient on the tape; with R = 1 the rows, recording nothing. */
static void check_sin_outer(size_t R, bool expect_columns)
{
    const double xv[2] = {0.4, -1.3};
    double tv[8];
    for (size_t r = 0; r < R; r++)
        tv[r] = 0.5 + 0.3 * (double)r;
    tg_tensor *x = leaf(2, xv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *t = tg_constant(tape, TG_F64, 2, TS_SHAPE(R, 1), tv);
    tg_tensor *y = tg_sin(tape, tg_mul(tape, x, t));
    cr_assert(y, "%s", tg_tape_error(tape));
    size_t before = tg_tape_size(tape);
    tg_tensor *J;
    cr_assert_eq(tg_jacobian(tape, y, &x, 1, &J), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tape_size(tape) > before, expect_columns,
                 "R = %zu: %zu nodes before, %zu after: expected the %s", R, before,
                 tg_tape_size(tape), expect_columns ? "columns" : "rows");
    cr_assert_eq(tg_tensor_dim(J, 0), 2 * R);
    cr_assert_eq(tg_tensor_dim(J, 1), 2);
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < 2; c++)
            for (size_t k = 0; k < 2; k++)
                ts_assert_close(tg_tensor_get(J, (r * 2 + c) * 2 + k),
                                c == k ? tv[r] * cos(xv[c] * tv[r]) : 0, 1e-15, 1e-14,
                                "J[(%zu,%zu), %zu]", r, c, k);
    tg_tensor_free(J);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(diff, jacobian_columns_and_rows)
{
    check_sin_outer(8, true);
    check_sin_outer(1, false);
    /* columns when the 2 inputs are fewer than a third of the outputs: 8, not 6 */
    check_sin_outer(4, true);
    check_sin_outer(3, false);
}

/* y = sin(x) cos(w) elementwise: J v = cos x cos w v_x - sin x sin w v_w (closed form); and
 * tg_jvp equals tg_jacobian's matrices applied to the tangents, tg_vjp their transposes. */
Test(diff, jvp_vjp_closed_form)
{
    enum { N = 3 };
    const double xv[N] = {0.2, -0.9, 1.7}, wv[N] = {1.1, 0.4, -2.2};
    const double vx[N] = {1.0, -0.5, 0.25}, vw[N] = {0.3, 2.0, -1.0}, u[N] = {0.7, -1.1, 0.4};
    tg_tensor *x = leaf(N, xv), *w = leaf(N, wv);
    tg_tensor *tx = ts_vec(TG_F64, N, vx, false), *tw = ts_vec(TG_F64, N, vw, false);
    tg_tensor *uv = ts_vec(TG_F64, N, u, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_mul(tape, tg_sin(tape, x), tg_cos(tape, w));
    tg_tensor *xs[2] = {x, w}, *vs[2] = {tx, tw}, *jv, *vj[2], *J[2];
    cr_assert_eq(tg_jvp(tape, y, xs, vs, 2, &jv), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_vjp(tape, y, uv, xs, 2, vj), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_jacobian(tape, y, xs, 2, J), TG_OK, "%s", tg_last_error());
    cr_expect(!tg_tensor_is_leaf(jv) && tg_tensor_requires_grad(jv), "J v is a tape tensor");
    for (int k = 0; k < N; k++) {
        double want = cos(xv[k]) * cos(wv[k]) * vx[k] - sin(xv[k]) * sin(wv[k]) * vw[k];
        ts_assert_close(tg_tensor_get(jv, (size_t)k), want, 1e-15, 1e-14, "jvp[%d]", k);
        ts_assert_close(tg_tensor_get(vj[0], (size_t)k), u[k] * cos(xv[k]) * cos(wv[k]), 1e-15,
                        1e-14, "vjp x[%d]", k);
        ts_assert_close(tg_tensor_get(vj[1], (size_t)k), -u[k] * sin(xv[k]) * sin(wv[k]), 1e-15,
                        1e-14, "vjp w[%d]", k);
        double viaJ = 0;
        for (int l = 0; l < N; l++)
            viaJ += tg_tensor_get(J[0], (size_t)(k * N + l)) * vx[l] +
                    tg_tensor_get(J[1], (size_t)(k * N + l)) * vw[l];
        ts_assert_close(viaJ, want, 1e-15, 1e-14, "J v via the Jacobian [%d]", k);
    }
    free_all(J, 2);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(tx);
    tg_tensor_free(tw);
    tg_tensor_free(uv);
}

/* The results are the tape's even where the gradient is the seed itself (xs[i] is y, or an op
 * whose gradient passes dy on, x + c): a caller's v freed right after the call leaves them
 * readable (the sanitized build reports a use after free otherwise), and they are not v. */
Test(diff, vjp_results_outlive_the_callers_seed)
{
    enum { N = 3 };
    const double xv[N] = {0.5, -1.0, 2.0}, u[N] = {0.7, -1.1, 0.4};
    tg_tensor *x = leaf(N, xv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_add_scalar(tape, x, 3);
    tg_tensor *v = ts_vec(TG_F64, N, u, false);
    tg_tensor *xs[2] = {y, x}, *o[2];
    cr_assert_eq(tg_vjp(tape, y, v, xs, 2, o), TG_OK, "%s", tg_last_error());
    cr_expect(o[0] != v && o[1] != v, "a result is the caller's v");
    tg_tensor_free(v);
    for (int k = 0; k < N; k++) {
        cr_expect_eq(tg_tensor_get(o[0], (size_t)k), u[k], "dy/dy [%d]", k);
        cr_expect_eq(tg_tensor_get(o[1], (size_t)k), u[k], "d(x + 3)/dx [%d]", k);
    }
    tg_tensor *seed = ts_vec(TG_F64, N, u, false), *g;
    cr_assert_eq(tg_grad_graph(tape, x, &x, 1, seed, &g), TG_OK, "%s", tg_last_error());
    cr_expect(g != seed, "the gradient of x in x is the caller's seed");
    tg_tensor_free(seed);
    cr_expect_eq(tg_tensor_get(g, 1), u[1]);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* H v of Rosenbrock (2-D, via select) against the closed-form H times v, and against the
 * Hessian's blocks; the product is differentiable again: d/dx sum(H v) is a third derivative:
 * for Rosenbrock's H, d/dx0 of (H v)_0 + (H v)_1 = 2400 x0 v0 - 400 v1 - 400 v0 ... written
 * out below. */
Test(diff, hvp_rosenbrock)
{
    const double xv[2] = {-1.2, 1.0}, vv[2] = {0.5, -2.0};
    tg_tensor *x = leaf(2, xv), *v = ts_vec(TG_F64, 2, vv, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *x0 = tg_select(tape, x, 0, 0), *x1 = tg_select(tape, x, 0, 1);
    tg_tensor *a = tg_sub(tape, tg_scalar(tape, TG_F64, 1), x0);
    tg_tensor *b = tg_sub(tape, x1, tg_square(tape, x0));
    tg_tensor *f = tg_add(tape, tg_square(tape, a), tg_scale(tape, tg_square(tape, b), 100));
    tg_tensor *hv, *H;
    cr_assert_eq(tg_hvp(tape, f, &x, &v, 1, &hv), TG_OK, "%s", tg_last_error());
    hessian(tape, f, &x, 1, &H);
    const double h00 = 1200 * xv[0] * xv[0] - 400 * xv[1] + 2, h01 = -400 * xv[0], h11 = 200;
    const double want[2] = {h00 * vv[0] + h01 * vv[1], h01 * vv[0] + h11 * vv[1]};
    for (size_t i = 0; i < 2; i++) {
        ts_assert_close(tg_tensor_get(hv, i), want[i], 1e-12, 1e-13, "Hv[%zu]", i);
        ts_assert_close(tg_tensor_get(H, i * 2) * vv[0] + tg_tensor_get(H, i * 2 + 1) * vv[1],
                        want[i], 1e-12, 1e-13, "H v from the Hessian [%zu]", i);
    }
    /* sum(H v) = (h00 + h01) v0 + (h01 + h11) v1; d/dx0 = (2400 x0 - 400) v0 - 400 v1,
     * d/dx1 = -400 v0. */
    tg_tensor *s = tg_sum(tape, hv, TG_ALL_AXES, false), *g;
    cr_assert_eq(tg_grad(tape, s, &x, 1, &g), TG_OK, "%s", tg_last_error());
    ts_assert_close(tg_tensor_get(g, 0), (2400 * xv[0] - 400) * vv[0] - 400 * vv[1], 1e-11, 1e-13,
                    "d/dx0 sum(H v)");
    ts_assert_close(tg_tensor_get(g, 1), -400 * vv[0], 1e-11, 1e-13, "d/dx1 sum(H v)");
    tg_tensor_free(g);
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(v);
}

/* f32 works the same way (to f32's rounding). */
Test(diff, f32)
{
    tg_tensor *x = ts_vec(TG_F32, 2, TS_VALS(0.5, -1.0), true);
    tg_tape *tape = tg_tape_new();
    /* f = sum(x^3) + x0 x1 via sum(x)^2 / 2 - sum(x^2) / 2 */
    tg_tensor *s = tg_sum(tape, x, TG_ALL_AXES, false);
    tg_tensor *f =
        tg_add(tape, tg_sum(tape, tg_mul(tape, tg_square(tape, x), x), TG_ALL_AXES, false),
               tg_scale(tape,
                        tg_sub(tape, tg_square(tape, s),
                               tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false)),
                        0.5));
    tg_tensor *H;
    hessian(tape, f, &x, 1, &H);
    cr_expect_eq(tg_tensor_dtype(H), TG_F32);
    const double want[4] = {3.0, 1, 1, -6.0};
    for (size_t i = 0; i < 4; i++)
        ts_assert_close(tg_tensor_get(H, i), want[i], 1e-6, 1e-6, "H[%zu]", i);
    tg_tensor_free(H);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- side effects, memory, errors ----------------------------------------------------------- */

/* f = sum(x^y) where x^y = 0 (x = 0 with y > 0, and 0.5^2000, which underflows): the
 * recorded db = x^y log(x) is 0 there, and so are its derivatives, the limits of the closed
 * forms above (f_xy = x^(y-1) (1 + y log x) and f_yy = x^y log(x)^2 go to 0 as x -> 0 for
 * y > 1; f_xx = y (y - 1) x^(y-2) is 0 at x = 0 for y > 2, 3.75 x^0.5 = 0 for y = 2.5). Both
 * blocks (x, y) and (y, x) must say so: db's graph once took log(0) in the branch its mask
 * leaves out, and passed NaN back into (y, x) while (x, y) was 0. Away from 0, the closed
 * forms. */
Test(diff, hessian_pow_tensor_at_a_zero_power)
{
    enum { N = 4 };
    const double xv[N] = {0.0, 0.0, 0.5, 2.0}, yv[N] = {3.0, 2.5, 2000.0, 3.0};
    tg_tensor *x = leaf(N, xv), *y = leaf(N, yv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_pow_tensor(tape, x, y), TG_ALL_AXES, false);
    tg_tensor *xs[2] = {x, y}, *H[4];
    hessian(tape, f, xs, 2, H);
    double xx[N] = {0, 0, 0, 0}, xy[N] = {0, 0, 0, 0}, yy[N] = {0, 0, 0, 0};
    const double l2 = log(2.0);
    xx[3] = 3 * 2 * 2.0, xy[3] = 4 * (1 + 3 * l2), yy[3] = 8 * l2 * l2;
    assert_elementwise_hessian(H, N, xx, xy, yy, 1e-14);
    free_all(H, 4);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* The passes of tg_jacobian and tg_hessian are tg_grad's: a leaf's gradient from an earlier
 * backward is as it was, and a leaf without a grad buffer gets none. */
Test(diff, matrices_leave_the_leaves_grads_alone)
{
    tg_tensor *x = leaf(2, TS_VALS(0.3, 0.7)), *p = leaf(2, TS_VALS(-1.0, 2.0));
    tg_tensor *q = leaf(2, TS_VALS(0.5, 0.25));
    tg_tape *tape = tg_tape_new();
    tg_tensor *f0 = tg_sum(tape, tg_mul(tape, x, p), TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, f0), TG_OK); /* x.grad = p, p.grad = x */
    tg_tensor *y = tg_mul(tape, tg_mul(tape, x, x), p);
    tg_tensor *f = tg_sum(tape, y, TG_ALL_AXES, false);
    tg_tensor *H, *J;
    hessian(tape, f, &x, 1, &H);
    cr_assert_eq(tg_jacobian(tape, y, &x, 1, &J), TG_OK, "%s", tg_last_error());
    ts_assert_grad(x, TS_VALS(-1.0, 2.0), 2, 0, 0, "x.grad");
    ts_assert_grad(p, TS_VALS(0.3, 0.7), 2, 0, 0, "p.grad");
    /* H = diag(2 p); J = diag(2 x p) */
    ts_assert_values(H, TS_VALS(-2, 0, 0, 4), 4, 1e-15, 0, "H");
    ts_assert_values(J, TS_VALS(-0.6, 0, 0, 2.8), 4, 1e-15, 1e-15, "J");
    tg_tensor_free(H);
    tg_tensor_free(J);
    /* g = sum(q^2 x): H in (q, x) = [[2 diag(x), 2 diag(q)], [2 diag(q), 0]], J of q^2 x in q
     * = diag(2 q x); neither leaves q or x a grad buffer of its own */
    tg_tensor_zero_grad(x);
    tg_tensor *qqx = tg_mul(tape, tg_mul(tape, q, q), x), *Hq[4], *Jq;
    cr_assert_null(tg_tensor_grad_data(q));
    hessian(tape, tg_sum(tape, qqx, TG_ALL_AXES, false), (tg_tensor *[]){q, x}, 2, Hq);
    cr_assert_eq(tg_jacobian(tape, qqx, &q, 1, &Jq), TG_OK, "%s", tg_last_error());
    ts_assert_values(Hq[0], TS_VALS(0.6, 0, 0, 1.4), 4, 1e-15, 1e-15, "H qq");
    ts_assert_values(Hq[1], TS_VALS(1, 0, 0, 0.5), 4, 1e-15, 1e-15, "H qx");
    ts_assert_values(Hq[3], TS_VALS(0, 0, 0, 0), 4, 0, 0, "H xx");
    ts_assert_values(Jq, TS_VALS(0.3, 0, 0, 0.35), 4, 1e-15, 1e-15, "J");
    cr_expect_null(tg_tensor_grad_data(q), "q was given a grad buffer");
    ts_assert_grad(x, TS_VALS(0, 0), 2, 0, 0, "x.grad, zeroed before");
    free_all(Hq, 4);
    tg_tensor_free(Jq);
    tg_tape_free(tape);
    free_all((tg_tensor *[]){x, p, q}, 3);
}

/* Two threads, each with a tape of its own, take Hessians and Jacobians of functions of one
 * shared leaf at the same time (tape.h allows sharing leaves so): each gets the closed form,
 * sum(x^3) -> diag(6 x) and x^3 -> diag(3 x^2), every time. (The passes once went through the
 * shared leaf's grad buffer, and each thread read the other's rows.) */
enum { SHARED_N = 48, SHARED_ROUNDS = 30 };
static tg_tensor *shared_x;

static void *matrices_of_the_shared_leaf(void *arg)
{
    (void)arg;
    long wrong = 0;
    tg_tape *tape = tg_tape_new();
    for (int round = 0; round < SHARED_ROUNDS && tape; round++) {
        tg_tensor *cube = tg_mul(tape, tg_square(tape, shared_x), shared_x), *H = NULL, *J = NULL;
        tg_tensor *f = tg_sum(tape, cube, TG_ALL_AXES, false);
        if (tg_hessian(tape, f, &shared_x, 1, &H) != TG_OK ||
            tg_jacobian(tape, cube, &shared_x, 1, &J) != TG_OK) {
            tg_tensor_free(H);
            wrong = -1;
            break;
        }
        for (size_t k = 0; k < SHARED_N; k++)
            for (size_t l = 0; l < SHARED_N; l++) {
                const double x = tg_tensor_get(shared_x, k);
                wrong += tg_tensor_get(H, k * SHARED_N + l) != (k == l ? 6 * x : 0);
                wrong += tg_tensor_get(J, k * SHARED_N + l) != (k == l ? 3 * (x * x) : 0);
            }
        tg_tensor_free(H);
        tg_tensor_free(J);
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    return (void *)wrong;
}

Test(diff, matrices_on_two_threads_sharing_a_leaf)
{
    double v[SHARED_N];
    for (size_t k = 0; k < SHARED_N; k++)
        v[k] = 0.125 * (double)k - 2; /* dyadic: 6x and 3x^2 are exact */
    shared_x = leaf(SHARED_N, v);
    pthread_t other;
    cr_assert_eq(pthread_create(&other, NULL, matrices_of_the_shared_leaf, NULL), 0);
    const long here = (long)matrices_of_the_shared_leaf(NULL);
    void *there = NULL;
    cr_assert_eq(pthread_join(other, &there), 0);
    cr_expect_eq(here, 0, "this thread: %ld wrong entries (-1: an error)", here);
    cr_expect_eq((long)there, 0, "the other thread: %ld wrong entries (-1: an error)", (long)there);
    cr_expect_null(tg_tensor_grad_data(shared_x));
    tg_tensor_free(shared_x);
}

/* A Hessian of N = 300 inputs: f = sum(x^2 sin x) + sum(x)^2, so H = diag(2 sin x + 4 x cos x
 * - x^2 sin x) + 2 (dense). Its passes reuse the gradient buffers of one: the tape's arena ends
 * no larger than after the gradient graph and a single row's pass. */
static tg_tensor *big_f(tg_tape *tape, tg_tensor *x)
{
    tg_tensor *sx = tg_sum(tape, x, TG_ALL_AXES, false);
    tg_tensor *a = tg_mul(tape, tg_square(tape, x), tg_sin(tape, x));
    return tg_add(tape, tg_sum(tape, a, TG_ALL_AXES, false), tg_square(tape, sx));
}

Test(diff, hessian_memory_300)
{
    enum { N = 300 };
    double xv[N];
    for (int i = 0; i < N; i++)
        xv[i] = 2.0 * sin(0.37 * i);
    tg_tensor *x = leaf(N, xv);
    tg_tape *one = tg_tape_new(), *all = tg_tape_new();
    /* one row: the gradient graph and a single plain pass, of the kind tg_hessian makes */
    tg_tensor *g, *e = ts_vec(TG_F64, N, (double[N]){1}, false);
    const void *gx;
    cr_assert_eq(tg_grad_graph(one, big_f(one, x), &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tape__captured_pass(one, g, e, &x, 1, &gx), TG_OK, "%s", tg_last_error());
    tg_tensor *H;
    hessian(all, big_f(all, x), &x, 1, &H);
    size_t cap_one = tg_tape_arena_capacity(one), cap_all = tg_tape_arena_capacity(all);
    cr_expect(cap_all <= cap_one, "the arena after %d rows holds %zu bytes, after one %zu", N,
              cap_all, cap_one);
    for (int k = 0; k < N; k += 37)
        for (int l = 0; l < N; l += 29) {
            double d =
                k != l ? 0 : 2 * sin(xv[k]) + 4 * xv[k] * cos(xv[k]) - xv[k] * xv[k] * sin(xv[k]);
            ts_assert_close(tg_tensor_get(H, (size_t)(k * N + l)), d + 2, 1e-13, 1e-13, "H[%d][%d]",
                            k, l);
        }
    tg_tensor_free(H);
    tg_tensor_free(e);
    tg_tape_free(one);
    tg_tape_free(all);
    tg_tensor_free(x);
}

Test(diff, errors)
{
    tg_tensor *x = leaf(2, TS_VALS(1, 2)), *c = ts_vec(TG_F64, 2, TS_VALS(1, 2), false);
    tg_tensor *v3 = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), false);
    tg_tensor *v32 = ts_vec(TG_F32, 2, TS_VALS(1, 2), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_mul(tape, x, x), *f = tg_sum(tape, y, TG_ALL_AXES, false);
    tg_tensor *out[4] = {x, x, x, x}, *o = x;
    /* a multi-element f: no Hessian, no H v; nothing made */
    cr_expect_eq(tg_hessian(tape, y, &x, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "not a single element");
    cr_expect_null(out[0]);
    cr_expect_eq(tg_hvp(tape, y, &x, &c, 1, out), TG_EINVAL);
    /* tangents unlike their inputs */
    cr_expect_eq(tg_jvp(tape, y, &x, &v3, 1, &o), TG_ESHAPE);
    cr_expect_null(o);
    cr_expect_eq(tg_jvp(tape, y, &x, &v32, 1, &o), TG_EDTYPE);
    cr_expect_eq(tg_hvp(tape, f, &x, &v3, 1, out), TG_ESHAPE);
    /* vjp's cotangent v unlike y, or missing for a y of two elements: its messages name v and
     * vjp (they once came from tg_grad_graph, naming a seed) */
    o = x;
    cr_expect_eq(tg_vjp(tape, y, NULL, &x, 1, &o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "vjp: y has shape [2], not a single element; pass v of");
    cr_expect_null(o);
    cr_expect_eq(tg_vjp(tape, y, v3, &x, 1, &o), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "vjp: v has shape [3], y [2]");
    cr_expect_eq(tg_vjp(tape, y, v32, &x, 1, &o), TG_EDTYPE);
    ts_assert_has(tg_last_error(), "vjp: v has dtype f32, y f64");
    cr_expect_eq(tg_vjp(tape, y, c, (tg_tensor *[]){NULL}, 1, &o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "vjp: xs[0] is NULL");
    /* NULLs */
    cr_expect_eq(tg_jvp(tape, y, &x, NULL, 1, &o), TG_EINVAL);
    cr_expect_eq(tg_jvp(NULL, y, &x, &c, 1, &o), TG_EINVAL);
    cr_expect_eq(tg_jacobian(tape, NULL, &x, 1, out), TG_EINVAL);
    cr_expect_eq(tg_hessian(tape, f, NULL, 1, out), TG_EINVAL);
    /* an output that depends on nothing that requires grad */
    tg_tensor *k = tg_mul(tape, c, c);
    cr_expect_eq(tg_jacobian(tape, k, &x, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "does not depend");
    /* gradient recording off: the products and the Hessian need it */
    tg_tape_set_grad_enabled(tape, false);
    cr_expect_eq(tg_hessian(tape, f, &x, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "disabled");
    cr_expect_eq(tg_jvp(tape, y, &x, &c, 1, &o), TG_EINVAL);
    o = x;
    cr_expect_eq(tg_vjp(tape, f, NULL, &x, 1, &o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "vjp: gradient recording is disabled");
    cr_expect_null(o, "out all NULL on an error");
    tg_tape_set_grad_enabled(tape, true);
    /* tensors of another tape, as output, input or tangent, refused before anything is
     * recorded (the other tape's gradient of one was once copied into every row) */
    tg_tape *other = tg_tape_new();
    tg_tensor *z = tg_scale(other, x, 7.0);
    cr_assert_eq(tg_backward(other, tg_sum(other, tg_mul(other, z, z), TG_ALL_AXES, false)), TG_OK);
    cr_expect_eq(tg_jacobian(tape, y, &z, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "jacobian: xs[0] (node 0) belongs to another tape");
    cr_expect_null(out[0]);
    cr_expect_eq(tg_hessian(tape, f, &z, 1, out), TG_EINVAL);
    cr_expect_eq(tg_jvp(tape, z, &x, &c, 1, &o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "jvp: the output (node 0) belongs to another tape");
    cr_expect_eq(tg_jvp(tape, y, &x, &z, 1, &o), TG_EINVAL);
    ts_assert_has(tg_last_error(), "jvp: vs[0] (node 0) belongs to another tape");
    cr_expect_eq(tg_hvp(tape, f, &x, &z, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "hvp: vs[0] (node 0) belongs to another tape");
    cr_expect_eq(tg_vjp(tape, y, z, &x, 1, out), TG_EINVAL);
    ts_assert_has(tg_last_error(), "vjp: v (node 0) belongs to another tape");
    /* ... and of an earlier recording of the other tape */
    tg_tape_reset(other);
    tg_tensor *y2 = tg_scale(other, x, 3.0);
    cr_expect_eq(tg_jacobian(other, y2, &z, 1, out), TG_ESTALE);
    ts_assert_has(tg_last_error(),
                  "jacobian: xs[0] (node 0) was recorded before the tape was reset");
    cr_expect_eq(tg_jvp(other, y2, &x, &z, 1, &o), TG_ESTALE);
    cr_expect_eq(tg_tape_status(other), TG_OK, "%s", tg_tape_error(other));
    tg_tape_free(other);
    /* none of these left an error on the tape */
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(c);
    tg_tensor_free(v3);
    tg_tensor_free(v32);
}

/* The passes of tg_jacobian and tg_hessian read only the leaves they reach: a leaf of the
 * recording freed since (no pass reads it; tape.h allows it) is never touched, a leaf y, which
 * no recording lists, keeps its own gradient, and a leaf read by a thousand nodes is no
 * trouble (when the passes saved and restored the leaves' grad buffers, a count per leaf once
 * wrapped past 255 and saved it again, past the end of the saved list). */
Test(diff, matrices_read_only_the_leaves_their_passes_reach)
{
    tg_tensor *x = leaf(2, TS_VALS(1, 2)), *gone = leaf(2, TS_VALS(3, 4));
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_backward(tape, tg_sum(tape, tg_square(tape, gone), TG_ALL_AXES, false)), TG_OK);
    tg_tensor_free(gone); /* registered on the tape, read by no later pass */
    tg_tensor *y = tg_mul(tape, x, x), *J, *H;
    cr_assert_eq(tg_jacobian(tape, y, &x, 1, &J), TG_OK, "%s", tg_last_error());
    ts_assert_close(tg_tensor_get(J, 0), 2, 0, 0, "J[0][0]");
    ts_assert_close(tg_tensor_get(J, 3), 4, 0, 0, "J[1][1]");
    cr_assert_eq(tg_hessian(tape, tg_sum(tape, y, TG_ALL_AXES, false), &x, 1, &H), TG_OK, "%s",
                 tg_last_error());
    ts_assert_close(tg_tensor_get(H, 0), 2, 0, 0, "H[0][0]");
    tg_tensor_free(J);
    tg_tensor_free(H);
    /* a leaf y on an empty tape: its own gradient (11 each, from another tape) is as it was;
     * its Jacobian in itself is I, in another leaf 0 */
    tg_tensor *a = leaf(3, TS_VALS(1, 2, 3)), *b = leaf(3, TS_VALS(4, 5, 6));
    tg_tensor *eleven = ts_vec(TG_F64, 3, TS_VALS(11, 11, 11), false);
    cr_assert_eq(tg_backward_seed(tape, a, eleven), TG_OK);
    tg_tensor_free(eleven);
    tg_tape *empty = tg_tape_new();
    tg_tensor *Jab[2];
    cr_assert_eq(tg_jacobian(empty, a, (tg_tensor *[]){a, b}, 2, Jab), TG_OK, "%s",
                 tg_last_error());
    ts_assert_values(Jab[0], TS_VALS(1, 0, 0, 0, 1, 0, 0, 0, 1), 9, 0, 0, "d a / d a");
    ts_assert_values(Jab[1], TS_VALS(0, 0, 0, 0, 0, 0, 0, 0, 0), 9, 0, 0, "d a / d b");
    free_all(Jab, 2);
    cr_assert_eq(tg_jacobian(empty, a, &b, 1, &J), TG_OK, "%s", tg_last_error());
    tg_tape_free(empty);
    for (size_t i = 0; i < 3; i++)
        ts_assert_close(tg_tensor_grad_get(a, i), 11, 0, 0, "a.grad[%zu]", i);
    tg_tensor_free(J);
    tg_tensor_free(a);
    tg_tensor_free(b);
    /* a leaf read by a thousand nodes */
    tg_tape_reset(tape);
    tg_tensor *s = x;
    for (int i = 0; i < 1000; i++)
        s = tg_add(tape, s, x);
    cr_assert_eq(tg_jacobian(tape, s, &x, 1, &J), TG_OK, "%s", tg_last_error());
    ts_assert_close(tg_tensor_get(J, 0), 1001, 0, 0, "J[0][0]");
    tg_tensor_free(J);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A leaf written after the recording used it (c = 5 below): each of the five refuses with
 * TG_ESTALE naming itself, before recording anything (tg_jvp once recorded y * 0 first, and
 * the message named grad_graph, or backward for tg_jacobian). */
Test(diff, a_written_leaf_is_refused_before_anything_is_recorded)
{
    tg_tensor *x = leaf(2, TS_VALS(1, 2)), *c = ts_vec(TG_F64, 2, TS_VALS(3, 4), false);
    tg_tensor *v = ts_vec(TG_F64, 2, TS_VALS(1, 1), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_mul(tape, tg_sin(tape, x), c), *f = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_tensor_set(c, 0, 5.0), TG_OK);
    const size_t size = tg_tape_size(tape);
    tg_tensor *o[1] = {x};
    cr_expect_eq(tg_jvp(tape, y, &x, &v, 1, o), TG_ESTALE);
    ts_assert_has(tg_last_error(), "jvp: leaf 1 of the recording");
    cr_expect_null(o[0]);
    cr_expect_eq(tg_vjp(tape, y, v, &x, 1, o), TG_ESTALE);
    ts_assert_has(tg_last_error(), "vjp: leaf 1 of the recording");
    cr_expect_eq(tg_hvp(tape, f, &x, &v, 1, o), TG_ESTALE);
    ts_assert_has(tg_last_error(), "hvp: leaf 1 of the recording");
    cr_expect_eq(tg_jacobian(tape, y, &x, 1, o), TG_ESTALE);
    ts_assert_has(tg_last_error(), "jacobian: leaf 1 of the recording");
    cr_expect_eq(tg_hessian(tape, f, &x, 1, o), TG_ESTALE);
    ts_assert_has(tg_last_error(), "hessian: leaf 1 of the recording");
    cr_expect_null(o[0]);
    cr_expect_eq(tg_tape_size(tape), size, "the tape grew from %zu to %zu nodes", size,
                 tg_tape_size(tape));
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(c);
    tg_tensor_free(v);
}

/* xs may hold an input of another dtype that y does not depend on (z, f32, beside x, f64):
 * its gradient is zeros of its own dtype, and J v and H v leave its term out rather than add
 * f32 to f64 (which failed with TG_EDTYPE and left the error on the tape). y = sin x, so
 * J v = cos(x) v_x; f = sum(sin^2 x), f'' = 2 cos 2x, so H v = (2 cos(2x) v_x, 0). */
Test(diff, products_with_an_unused_input_of_another_dtype)
{
    const double xv[2] = {0.5, 1.5}, vv[2] = {1.0, -2.0};
    tg_tensor *x = leaf(2, xv), *z = ts_vec(TG_F32, 2, TS_VALS(2, 3), true);
    tg_tensor *vx = ts_vec(TG_F64, 2, vv, false), *vz = ts_vec(TG_F32, 2, TS_VALS(1, 1), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sin(tape, x), *f = tg_sum(tape, tg_square(tape, y), TG_ALL_AXES, false);
    tg_tensor *xs[2] = {x, z}, *vs[2] = {vx, vz}, *jv, *hv[2];
    cr_assert_eq(tg_jvp(tape, y, xs, vs, 2, &jv), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_hvp(tape, f, xs, vs, 2, hv), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_dtype(hv[1]), TG_F32);
    for (size_t i = 0; i < 2; i++) {
        ts_assert_close(tg_tensor_get(jv, i), cos(xv[i]) * vv[i], 1e-15, 1e-15, "jvp[%zu]", i);
        ts_assert_close(tg_tensor_get(hv[0], i), 2 * cos(2 * xv[i]) * vv[i], 1e-14, 1e-14,
                        "hvp x[%zu]", i);
        ts_assert_close(tg_tensor_get(hv[1], i), 0, 0, 0, "hvp z[%zu]", i);
    }
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(z);
    tg_tensor_free(vx);
    tg_tensor_free(vz);
}

/* A tangent computed from xs is held constant in H v: f = sum(x^3), so g = 3 x^2, H =
 * diag(6 x), and with v = x (the leaf itself, or the tape tensor 1 * x) H v = 6 x^2, not the
 * gradient of <g, x> in x, 9 x^2, which adds (dv/dx)ᵀ g = 3 x^2. The result stays
 * differentiable in x, through H and through v: d/dx sum(6 x^2) = 12 x. */
Test(diff, hvp_of_a_tangent_computed_from_the_inputs)
{
    const double xv[3] = {0.3, -0.8, 1.2};
    tg_tensor *x = leaf(3, xv);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_mul(tape, tg_square(tape, x), x), TG_ALL_AXES, false);
    tg_tensor *tangents[2] = {x, tg_scale(tape, x, 1.0)};
    for (size_t t = 0; t < 2; t++) {
        tg_tensor *hv, *d;
        cr_assert_eq(tg_hvp(tape, f, &x, &tangents[t], 1, &hv), TG_OK, "%s", tg_last_error());
        cr_assert_eq(tg_grad(tape, tg_sum(tape, hv, TG_ALL_AXES, false), &x, 1, &d), TG_OK, "%s",
                     tg_last_error());
        for (size_t k = 0; k < 3; k++) {
            ts_assert_close(tg_tensor_get(hv, k), 6 * xv[k] * xv[k], 1e-15, 1e-15,
                            "H v[%zu], tangent %zu", k, t);
            ts_assert_close(tg_tensor_get(d, k), 12 * xv[k], 1e-15, 1e-15,
                            "d/dx sum(H v)[%zu], tangent %zu", k, t);
        }
        tg_tensor_free(d);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Products that need no second walk: H v of a function at most linear in xs is zero (its
 * gradient in xs is constant), and J v of an output that depends on none of xs is zero, of
 * the output's shape. f = sum(c x) + sum(a^2): in x alone, H = 0; in (x, a), H v = (0, 2 va)
 * (sum(a^2) has Hessian 2I). y = a^2 does not depend on x. */
Test(diff, products_of_functions_linear_in_or_independent_of_the_inputs)
{
    tg_tensor *x = leaf(3, TS_VALS(1, 2, 3)), *a = leaf(2, TS_VALS(0.5, -1.5));
    tg_tensor *c = ts_vec(TG_F64, 3, TS_VALS(4, 5, 6), false);
    tg_tensor *v = ts_vec(TG_F64, 3, TS_VALS(1, 1, 2), false);
    tg_tensor *va = ts_vec(TG_F64, 2, TS_VALS(3, -1), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_add(tape, tg_sum(tape, tg_mul(tape, c, x), TG_ALL_AXES, false),
                          tg_sum(tape, tg_mul(tape, a, a), TG_ALL_AXES, false));
    tg_tensor *hv[2] = {NULL, NULL};
    cr_assert_eq(tg_hvp(tape, f, &x, &v, 1, hv), TG_OK, "%s", tg_last_error());
    ts_assert_values(hv[0], TS_VALS(0, 0, 0), 3, 0, 0, "H v in x alone");
    cr_assert_eq(tg_hvp(tape, f, (tg_tensor *[]){x, a}, (tg_tensor *[]){v, va}, 2, hv), TG_OK, "%s",
                 tg_last_error());
    ts_assert_values(hv[0], TS_VALS(0, 0, 0), 3, 0, 0, "H v, x part");
    ts_assert_values(hv[1], TS_VALS(6, -2), 2, 0, 0, "H v, a part");

    tg_tensor *y = tg_mul(tape, a, a), *jv = NULL;
    cr_assert_eq(tg_jvp(tape, y, &x, &v, 1, &jv), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_rank(jv), 1);
    ts_assert_values(jv, TS_VALS(0, 0), 2, 0, 0, "J v of an output independent of x");
    cr_expect_eq(tg_tape_status(tape), TG_OK, "%s", tg_tape_error(tape));
    tg_tape_free(tape);
    free_all((tg_tensor *[]){x, a, c, v, va}, 5);
}
