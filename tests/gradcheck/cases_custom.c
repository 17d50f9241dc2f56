/* cases_custom.c (test_gradcheck): the case function of the user-defined op (tg_custom):
 * two custom ops written here with f64 callbacks, checked like any op of the table. */
#include "gradcheck.h"

/* ---- custom: a user-defined op (tg_custom), f64 callbacks written here ----------------------
 * sinprod(x0, ..., x{n-1}) = prod_i sin(x_i), elementwise over inputs of one shape, and
 * rowdot(a, b)[i] = sum_j a[i,j] b[i,j] (an output shape other than the inputs'). Custom ops
 * are not recorded through tg_apply (it refuses them): these functions call tg_custom. */
static tg_status sinprod_forward(const tg_custom_call *c)
{
    double *y = c->y;
    for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
        y[j] = 1;
        for (size_t i = 0; i < c->n; i++)
            y[j] *= sin(((const double *)tg_tensor_data_const(c->in[i]))[j]);
    }
    return TG_OK;
}

/* dx_i += dy * cos(x_i) * prod_{k != i} sin(x_k) */
static tg_status sinprod_vjp(const tg_custom_call *c)
{
    const double *dy = c->dy;
    for (size_t i = 0; i < c->n; i++) {
        double *dx = c->dx[i];
        if (!dx)
            continue;
        for (size_t j = 0, m = tg_tensor_numel(c->out); j < m; j++) {
            double p = cos(((const double *)tg_tensor_data_const(c->in[i]))[j]);
            for (size_t k = 0; k < c->n; k++)
                if (k != i)
                    p *= sin(((const double *)tg_tensor_data_const(c->in[k]))[j]);
            dx[j] += dy[j] * p;
        }
    }
    return TG_OK;
}

static const tg_custom_op SINPROD = {
    .name = "sinprod", .forward = sinprod_forward, .vjp = sinprod_vjp};

static tg_status rowdot_forward(const tg_custom_call *c)
{
    const double *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    double *y = c->y;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < k; j++)
            y[i] += a[i * k + j] * b[i * k + j];
    return TG_OK;
}

/* da[i,j] += dy[i] b[i,j], db[i,j] += dy[i] a[i,j] */
static tg_status rowdot_vjp(const tg_custom_call *c)
{
    const double *ab[2] = {tg_tensor_data_const(c->in[0]), tg_tensor_data_const(c->in[1])};
    const size_t m = tg_tensor_dim(c->in[0], 0), k = tg_tensor_dim(c->in[0], 1);
    const double *dy = c->dy;
    for (int s = 0; s < 2; s++) {
        double *dx = c->dx[s];
        for (size_t i = 0; dx && i < m; i++)
            for (size_t j = 0; j < k; j++)
                dx[i * k + j] += dy[i] * ab[1 - s][i * k + j];
    }
    return TG_OK;
}

static const tg_custom_op ROWDOT = {.name = "rowdot", .forward = rowdot_forward, .vjp = rowdot_vjp};

/* ud: how many times each input is passed (fan-out when 2), or NULL for rowdot. */
static tg_tensor *sinprod_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const int times = *(const int *)ud;
    tg_tensor *args[2 * MAX_IN + 1];
    size_t m = 0;
    for (int t = 0; t < times; t++)
        for (size_t i = 0; i < n; i++)
            args[m++] = in[i];
    return tg_custom(tape, &SINPROD, NULL, args, m, tg_tensor_rank(in[0]), tg_tensor_shape(in[0]));
}

static tg_tensor *rowdot_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)ud;
    return tg_custom(tape, &ROWDOT, NULL, in, n, 1, tg_tensor_shape(in[0]));
}

void case_custom(tg_op op, tg_rng *rng)
{
    (void)op;
    static const int once = 1, twice = 2;
    for (size_t si = 0; si < COUNT(UNARY_SHAPES); si++) {
        for (size_t n = 1; n <= MAX_IN + 1; n++) { /* 1, 2 and 3 inputs */
            tg_tensor *in[MAX_IN + 1];
            for (size_t i = 0; i < n; i++)
                in[i] = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
            check_fn("custom sinprod", "-", sinprod_fn, (void *)&once, in, n, tg_rng_next(rng));
        }
        tg_tensor *x = make_input(rng, UNARY_SHAPES[si], K_NORMAL);
        check_fn("custom sinprod", "fan-out (x, x)", sinprod_fn, (void *)&twice, &x, 1,
                 tg_rng_next(rng));
    }
    static const shp rows[] = {S2(1, 1), S2(3, 4), S2(5, 1), S2(1, 6)};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tg_tensor *in[2] = {make_input(rng, rows[i], K_NORMAL), make_input(rng, rows[i], K_NORMAL)};
        check_fn("custom rowdot", "-", rowdot_fn, NULL, in, 2, tg_rng_next(rng));
    }
}
