/* cases_custom.c (test_gradgradcheck): user-defined ops with and without a differentiable VJP. */
#include "gradgradcheck.h"

/* ---- custom ops ---------------------------------------------------------------------------
 * sinprod(x0, ..., x{n-1}) = prod_i sin(x_i), elementwise over inputs of one shape, and
 * rowdot(a, b)[i] = sum_j a[i,j] b[i,j] (an output shape other than the inputs'), each with its
 * VJP in plain loops and written with ops (vjp_graph); sinprod also without the latter. */
static const double *in_data(const tg_custom_call *c, size_t i)
{
    return tg_tensor_data_const(c->in[i]);
}

static tg_status sinprod_forward(const tg_custom_call *c)
{
    double *y = c->y;
    for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
        y[j] = 1;
        for (size_t i = 0; i < c->n; i++)
            y[j] *= sin(in_data(c, i)[j]);
    }
    return TG_OK;
}

/* dx_i += dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp(const tg_custom_call *c)
{
    const double *dy = c->dy;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0, m = tg_tensor_numel(c->out); c->dx[i] && j < m; j++) {
            double p = cos(in_data(c, i)[j]);
            for (size_t k = 0; k < c->n; k++)
                if (k != i)
                    p *= sin(in_data(c, k)[j]);
            ((double *)c->dx[i])[j] += dy[j] * p;
        }
    return TG_OK;
}

/* The same with ops: dx_i = dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tape *t = c->tape;
    for (size_t i = 0; i < c->n; i++) {
        tg_tensor *p = tg_mul(t, c->dy, tg_cos(t, c->in[i]));
        for (size_t k = 0; k < c->n; k++)
            if (k != i)
                p = tg_mul(t, p, tg_sin(t, c->in[k]));
        c->dx[i] = p;
    }
    return tg_tape_status(t);
}

static tg_status rowdot_forward(const tg_custom_call *c)
{
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    double *y = c->y;
    for (size_t i = 0; i < m * k; i++)
        y[i / k] += in_data(c, 0)[i] * in_data(c, 1)[i];
    return TG_OK;
}

/* da[i,j] += dy[i] b[i,j], db[i,j] += dy[i] a[i,j] */
static tg_status rowdot_vjp(const tg_custom_call *c)
{
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; c->dx[s] && i < m * k; i++)
            ((double *)c->dx[s])[i] += ((const double *)c->dy)[i / k] * in_data(c, 1 - s)[i];
    return TG_OK;
}

/* da = dy[:, None] * b, db = dy[:, None] * a */
static tg_status rowdot_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tensor *col = tg_reshape(c->tape, c->dy, 2, (size_t[]){tg_tensor_dim(c->out, 0), 1});
    c->dx[0] = tg_mul(c->tape, col, c->in[1]);
    c->dx[1] = tg_mul(c->tape, col, c->in[0]);
    return tg_tape_status(c->tape);
}

static const tg_custom_op SINPROD = {.name = "sinprod",
                                     .forward = sinprod_forward,
                                     .vjp = sinprod_vjp,
                                     .vjp_graph = sinprod_vjp_graph};
static const tg_custom_op SINPROD_FIRST = {
    .name = "sinprod_first_order", .forward = sinprod_forward, .vjp = sinprod_vjp};
static const tg_custom_op ROWDOT = {
    .name = "rowdot", .forward = rowdot_forward, .vjp = rowdot_vjp, .vjp_graph = rowdot_vjp_graph};

/* ud: the op; sinprod's inputs are passed twice (fan-out) when there is one. */
static tg_tensor *custom_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const tg_custom_op *op = ud;
    if (op == &ROWDOT)
        return tg_custom(tape, op, NULL, in, n, 1, tg_tensor_shape(in[0]));
    tg_tensor *args[2] = {in[0], in[0]};
    return tg_custom(tape, op, NULL, n == 1 ? args : in, n == 1 ? 2 : n, tg_tensor_rank(in[0]),
                     tg_tensor_shape(in[0]));
}

/* sinprod of 2 and 3 inputs and of (x, x) at every shape of UNARY_SHAPES, rowdot at a few;
 * and a custom op without vjp_graph: differentiating it twice is the clear error naming it
 * (test_higher_order.c checks that its first derivatives still work). */
void case_custom(tg_op op, tg_rng *rng)
{
    (void)op;
    for (size_t si = 0; si < COUNT(UNARY_SHAPES); si++)
        for (size_t n = 1; n <= 3; n++) {
            tg_tensor *in[3];
            for (size_t i = 0; i < n; i++)
                in[i] = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
            check_fn("custom sinprod", n == 1 ? "fan-out (x, x)" : "-", custom_fn, (void *)&SINPROD,
                     in, n, tg_rng_next(rng));
        }
    static const shp rows[] = {S2(1, 1), S2(3, 4), S2(5, 1), S2(1, 6)};
    for (size_t i = 0; i < COUNT(rows); i++) {
        tg_tensor *in[2] = {make_input(rng, rows[i], K_NORMAL), make_input(rng, rows[i], K_NORMAL)};
        check_fn("custom rowdot", "-", custom_fn, (void *)&ROWDOT, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    tg_status st = tg_gradgradcheck(custom_fn, (void *)&SINPROD_FIRST, &x, 1, NULL, NULL);
    cr_expect_eq(st, TG_EINVAL, "gradgradcheck of a first-order custom op: %s: %s",
                 tg_status_name(st), tg_last_error());
    ts_assert_has(tg_last_error(), "sinprod_first_order");
    ts_assert_has(tg_last_error(), "no differentiable VJP");
    tg_tensor_free(x);
}
