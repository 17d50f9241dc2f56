/* inputs.c: the random inputs of the table-driven derivative checks (see inputs.h). */
#include "inputs.h"

#include <criterion/criterion.h>

#include <math.h>

tg_tensor *make_input(tg_rng *rng, shp s, kind k)
{
    tg_tensor *t = NULL;
    switch (k) {
    case K_NORMAL: t = tg_tensor_randn(TG_F64, s.rank, s.d, rng, 0.0, 1.0); break;
    case K_POS: t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 0.5, 2.0); break;
    case K_AWAY:
    case K_DENOM:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, k == K_AWAY ? 0.05 : 0.5, 2.0);
        cr_assert(t != NULL, "tg_tensor_rand: %s", tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(t); i++)
            if (tg_rng_below(rng, 2))
                tg_tensor_set(t, i, -tg_tensor_get(t, i));
        break;
    case K_UNIT: t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, -0.9, 0.9); break;
    case K_ABOVE1: t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 1.1, 3.0); break;
    case K_FRAC:
        t = tg_tensor_rand(TG_F64, s.rank, s.d, rng, 0.1, 0.9);
        cr_assert(t != NULL, "tg_tensor_rand: %s", tg_last_error());
        for (size_t i = 0; i < tg_tensor_numel(t); i++)
            tg_tensor_set(t, i, tg_tensor_get(t, i) + (double)tg_rng_below(rng, 6) - 3);
        break;
    case K_DISTINCT: {
        t = tg_tensor_zeros(TG_F64, s.rank, s.d);
        cr_assert(t != NULL, "tg_tensor_zeros: %s", tg_last_error());
        size_t n = tg_tensor_numel(t);
        double *v = tg_tensor_data(t);
        for (size_t i = 0; i < n; i++)
            v[i] = 0.25 * ((double)i - (double)n / 2) + 0.05 * tg_rng_uniform(rng);
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)tg_rng_below(rng, i);
            double tmp = v[i - 1];
            v[i - 1] = v[j];
            v[j] = tmp;
        }
        break;
    }
    }
    cr_assert(t != NULL, "making an input: %s", tg_last_error());
    return t;
}

tg_tensor *snap(tg_tensor *t, double offset, tg_rng *rng)
{
    for (size_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i,
                      0.25 * round(4 * tg_tensor_get(t, i)) + offset + 0.05 * tg_rng_uniform(rng));
    return t;
}

const char *fmt_shp(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, tg_tensor_rank(t), tg_tensor_shape(t));
}

const shp UNARY_SHAPES[7] = {S0, S1(1), S1(5), S2(2, 3), S2(1, 4), S3(2, 3, 2), S4(2, 1, 3, 2)};

const shp_pair BCAST_PAIRS[15] = {
    {S0, S0},
    {S1(5), S1(5)},
    {S2(2, 3), S2(2, 3)},
    {S3(2, 3, 2), S3(2, 3, 2)},
    {S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
    {S2(3, 1), S2(1, 4)},
    {S3(2, 3, 4), S1(4)},
    {S1(4), S3(2, 3, 4)},
    {S3(2, 1, 4), S2(3, 1)},
    {S0, S2(2, 3)},
    {S2(2, 3), S0},
    {S2(1, 1), S2(3, 4)},
    {S3(2, 3, 4), S3(1, 3, 1)},
    {S4(2, 1, 3, 1), S3(4, 1, 2)},
    {S4(2, 3, 1, 2), S2(1, 2)},
};

const shp FAN_SHAPES[4] = {S0, S1(4), S2(2, 3), S3(2, 2, 3)};

void random_indices(tg_rng *rng, shp x, int axis, shp is, double *vals)
{
    const long dim = (long)x.d[axis < 0 ? axis + x.rank : axis];
    size_t m = 1;
    for (int d = 0; d < is.rank; d++)
        m *= is.d[d];
    cr_assert(m <= 24 && dim > 0);
    for (size_t j = 0; j < m; j++)
        vals[j] = (double)((long)tg_rng_below(rng, (uint64_t)(2 * dim)) - dim);
    if (m > 1)
        vals[m - 1] = vals[0];
}

shp taken_shp(shp x, int axis, shp is)
{
    if (axis < 0)
        axis += x.rank;
    shp t = {x.rank - 1 + is.rank, {0}};
    cr_assert(t.rank <= TG_MAX_RANK);
    int k = 0;
    for (int d = 0; d < axis; d++)
        t.d[k++] = x.d[d];
    for (int d = 0; d < is.rank; d++)
        t.d[k++] = is.d[d];
    for (int d = axis + 1; d < x.rank; d++)
        t.d[k++] = x.d[d];
    return t;
}
