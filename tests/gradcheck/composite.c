/* composite.c (test_gradcheck): gradchecks of composite functions: an MLP with
 * log_softmax, sigmoid times a Gaussian, a fan-out graph, layer normalisation and a
 * cross-entropy over a non-scalar. */
#include "gradcheck.h"

/* ---- composite functions ------------------------------------------------------------------ */

static void check_composite(const char *name, tg_check_fn fn, const shp *shapes, const kind *kinds,
                            size_t n, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_tensor *in[MAX_IN * 4];
    cr_assert(n <= sizeof in / sizeof in[0]);
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(&rng, shapes[i], kinds[i]);
    check_fn(name, "composite", fn, NULL, in, n, tg_rng_next(&rng));
}

/* A 2-layer MLP: loss = -mean_i sum_j onehot[i,j] * log_softmax(tanh(x W1 + b1) W2 + b2)[i,j]
 * with inputs x (4,3), W1 (3,5), b1 (5), W2 (5,3), b2 (3). */
static tg_tensor *mlp_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double onehot[12] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0};
    size_t shape[2] = {4, 3};
    tg_tensor *y = tg_constant(t, TG_F64, 2, shape, onehot);
    tg_tensor *h = tg_tanh(t, tg_add(t, tg_matmul(t, in[0], in[1]), in[2]));
    tg_tensor *logits = tg_add(t, tg_matmul(t, h, in[3]), in[4]);
    tg_tensor *ll = tg_sum(t, tg_mul(t, y, tg_log_softmax(t, logits, -1)), -1, false);
    return tg_neg(t, tg_mean(t, ll, 0, false));
}

Test(gradcheck, composite_mlp_tanh_log_softmax)
{
    const shp s[5] = {S2(4, 3), S2(3, 5), S1(5), S2(5, 3), S1(3)};
    const kind k[5] = {K_NORMAL, K_NORMAL, K_NORMAL, K_NORMAL, K_NORMAL};
    check_composite("mlp", mlp_fn, s, k, 5, 7);
}

/* sum(sigmoid(x) * exp(-x^2)) */
static tg_tensor *sig_gauss_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    return tg_sum(t, tg_mul(t, tg_sigmoid(t, x), tg_exp(t, tg_neg(t, tg_square(t, x)))),
                  TG_ALL_AXES, false);
}

Test(gradcheck, composite_sigmoid_times_gaussian)
{
    const shp s[1] = {S2(3, 4)};
    const kind k[1] = {K_NORMAL};
    check_composite("sum(sigmoid(x) * exp(-x^2))", sig_gauss_fn, s, k, 1, 8);
}

/* The same input used many times, directly and through shared intermediates:
 * f = sum(x @ x^T) + sum(x*x*x + tanh(x)*x - x/(x*x + 1) + softmax(x)*x) + sum(h @ h^T) with
 * h = tanh(x), followed by a 12-step chain z = 0.5 z + tanh(z) * x. Later uses of x run their
 * VJPs first, so every VJP must add to a gradient that is already there. */
static tg_tensor *fanout_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *xxt = tg_sum(t, tg_matmul(t, x, tg_transpose(t, x)), TG_ALL_AXES, false);
    tg_tensor *x2 = tg_mul(t, x, x);
    tg_tensor *a = tg_mul(t, x2, x);
    a = tg_add(t, a, tg_mul(t, tg_tanh(t, x), x));
    a = tg_sub(t, a, tg_div(t, x, tg_add_scalar(t, x2, 1.0)));
    a = tg_add(t, a, tg_mul(t, tg_softmax(t, x, -1), x));
    tg_tensor *h = tg_tanh(t, x);
    tg_tensor *f = tg_add(t, tg_sum(t, a, TG_ALL_AXES, false),
                          tg_sum(t, tg_matmul(t, h, tg_transpose(t, h)), TG_ALL_AXES, false));
    tg_tensor *z = x;
    for (int i = 0; i < 12; i++)
        z = tg_add(t, tg_scale(t, z, 0.5), tg_mul(t, tg_tanh(t, z), x));
    return tg_add(t, tg_add(t, f, xxt), tg_mean(t, z, TG_ALL_AXES, false));
}

Test(gradcheck, composite_fan_out)
{
    const shp s[1] = {S2(3, 4)};
    const kind k[1] = {K_NORMAL};
    check_composite("fan-out", fanout_fn, s, k, 1, 9);
}

/* Layer normalization over the last axis, scaled and shifted: broadcasting in every VJP. */
static tg_tensor *layernorm_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *c = tg_sub(t, x, tg_mean(t, x, -1, true));
    tg_tensor *var = tg_mean(t, tg_square(t, c), -1, true);
    tg_tensor *xn = tg_div(t, c, tg_sqrt(t, tg_add_scalar(t, var, 1e-5)));
    tg_tensor *y = tg_add(t, tg_mul(t, xn, in[1]), in[2]);
    return tg_sum(t, tg_mul(t, y, tg_sigmoid(t, y)), TG_ALL_AXES, false);
}

Test(gradcheck, composite_layernorm)
{
    const shp s[3] = {S3(2, 3, 4), S1(4), S1(4)};
    const kind k[3] = {K_NORMAL, K_NORMAL, K_NORMAL};
    check_composite("layernorm", layernorm_fn, s, k, 3, 10);
}

/* Cross-entropy two ways in one graph: logsumexp(z) - z[label] and -log_softmax(z)[label],
 * plus max-pooling and a reshape: a non-scalar output (checked through random weights). */
static tg_tensor *mixed_fn(tg_tape *t, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    const double onehot[6] = {0, 1, 0, 1, 0, 0};
    size_t shape[2] = {2, 3}, flat[1] = {6};
    tg_tensor *y = tg_constant(t, TG_F64, 2, shape, onehot);
    tg_tensor *z = tg_matmul(t, in[0], in[1]); /* (2,4) @ (4,3) */
    tg_tensor *ce1 = tg_sub(t, tg_logsumexp(t, z, 1, false), tg_sum(t, tg_mul(t, z, y), 1, false));
    tg_tensor *ce2 = tg_neg(t, tg_sum(t, tg_mul(t, tg_log_softmax(t, z, 1), y), -1, false));
    tg_tensor *pooled = tg_max(t, tg_reshape(t, z, 1, flat), 0, true);
    return tg_add(t, tg_add(t, ce1, tg_scale(t, ce2, 0.5)), pooled); /* shape (2) */
}

Test(gradcheck, composite_cross_entropy_non_scalar)
{
    const shp s[2] = {S2(2, 4), S2(4, 3)};
    const kind k[2] = {K_NORMAL, K_NORMAL};
    check_composite("cross-entropy", mixed_fn, s, k, 2, 11);
}
