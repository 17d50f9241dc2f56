/* cases_shape.c (test_gradgradcheck): the case functions of matmul, transpose, reshape, the
 * reductions, softmax, slicing, selecting, joins, take, index_add and permute. */
#include "gradgradcheck.h"

/* 2-D, batched, NumPy's 1-D and broadcast-batch operands (plain loops and the GEMM kernel),
 * and x @ x. */
void case_matmul(tg_op op, tg_rng *rng)
{
    static const struct {
        shp a, b;
    } pairs[] = {{S2(1, 1), S2(1, 1)},       {S2(3, 5), S2(5, 2)},
                 {S2(7, 1), S2(1, 4)},       {S2(1, 6), S2(6, 1)},
                 {S2(4, 4), S2(4, 4)},       {S3(2, 3, 4), S3(2, 4, 2)},
                 {S3(3, 1, 2), S3(3, 2, 5)}, {S1(3), S2(3, 4)},
                 {S2(4, 3), S1(3)},          {S1(5), S1(5)},
                 {S2(2, 3), S3(4, 3, 2)},    {S3(4, 2, 3), S2(3, 5)},
                 {S1(3), S3(2, 3, 4)},       {S3(2, 4, 3), S1(3)},
                 {S1(300), S1(300)},         {S2(9, 10), S3(3, 10, 8)},
                 {S3(3, 9, 10), S2(10, 8)}};
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(pairs); i++)
        check_binary(rng, s, pairs[i].a, K_NORMAL, pairs[i].b, K_NORMAL);
    s.fanout = true;
    check_unary(rng, s, (shp)S2(3, 3), K_NORMAL);
    check_unary(rng, s, (shp)S3(2, 2, 2), K_NORMAL);
}

void case_transpose(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S2(1, 1), S2(2, 3), S2(4, 1), S2(1, 5), S2(3, 3)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        check_unary(rng, (spec){.op = op}, shapes[i], K_NORMAL);
}

void case_reshape(tg_op op, tg_rng *rng)
{
    static const struct {
        shp from, to;
    } rs[] = {{S2(2, 3), S2(3, 2)},
              {S2(2, 3), S1(6)},
              {S2(2, 3), S3(1, 6, 1)},
              {S0, S2(1, 1)},
              {S1(1), S0},
              {S3(2, 3, 4), S2(4, 6)},
              {S4(2, 1, 3, 2), S3(3, 2, 2)},
              {S1(6), S4(1, 2, 1, 3)}};
    for (size_t i = 0; i < COUNT(rs); i++)
        check_unary(rng, (spec){.op = op, .to = rs[i].to}, rs[i].from, K_NORMAL);
}

/* Reductions along every axis (negative ones included) and TG_ALL_AXES, keepdim or not. */
void case_reduce(tg_op op, tg_rng *rng)
{
    kind k = op == TG_OP_MAX || op == TG_OP_MIN ? K_DISTINCT : K_NORMAL;
    static const shp shapes[] = {S0, S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        int r = shapes[i].rank;
        for (int keep = 0; keep <= 1; keep++)
            for (int axis = -r - 1; axis < r; axis++) /* -r - 1: TG_ALL_AXES */
                check_unary(rng,
                            (spec){.op = op,
                                   .at = {.axis = axis < -r ? TG_ALL_AXES : axis, .keepdim = keep}},
                            shapes[i], k);
    }
}

/* softmax and log_softmax along each axis. */
void case_softmax(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S1(1), S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        for (int axis = -shapes[i].rank; axis < shapes[i].rank; axis++)
            check_unary(rng, (spec){.op = op, .at.axis = axis}, shapes[i], K_NORMAL);
}

/* ---- shape, indexing and joins ------------------------------------------------------------ */

static const shp INDEX_SHAPES[] = {S1(1), S1(7), S2(3, 5), S2(1, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};

/* n inputs of shape x (concat, stack: n of them). */
static void check_index(tg_rng *rng, const spec *s, shp x, size_t n)
{
    tg_tensor *in[4];
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(rng, x, K_NORMAL);
    check_op(s, in, n, tg_rng_next(rng));
}

/* Every axis, with starts and stops negative, past either end, TG_END, empty ranges, steps. */
void case_slice(tg_op op, tg_rng *rng)
{
    static const ptrdiff_t ranges[][3] = {
        {0, TG_END, 1},  {1, TG_END, 1}, {0, -1, 1},     {-2, TG_END, 1}, {1, 7, 2},
        {-100, 100, 1},  {0, TG_END, 2}, {-3, -1, 1},    {2, 1, 1},       {0, TG_END, 3},
        {1, TG_END, 50}, {5, 2, 2},      {-1, TG_END, 1}};
    for (size_t i = 0; i < COUNT(INDEX_SHAPES); i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t r = 0; r < COUNT(ranges); r++)
                if ((r + (size_t)axis + i) % 3 == 0) /* a third of the combinations */
                    check_index(rng,
                                &(spec){.op = op,
                                        .at = {.axis = axis,
                                               .start = ranges[r][0],
                                               .stop = ranges[r][1],
                                               .step = ranges[r][2]}},
                                x, 1);
    }
}

void case_select(tg_op op, tg_rng *rng)
{
    for (size_t i = 0; i < COUNT(INDEX_SHAPES); i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++) {
            ptrdiff_t dim = (ptrdiff_t)x.d[axis < 0 ? axis + x.rank : axis];
            for (ptrdiff_t index = -dim; index < dim; index += 1 + (dim > 3))
                check_index(rng, &(spec){.op = op, .at = {.axis = axis, .index = index}}, x, 1);
        }
    }
}

/* concat and stack of 1..4 inputs along every axis (concat: of one shape here; of different
 * lengths along the axis in case_concat). */
void case_join(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 1, 3)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        int r = shapes[i].rank, stack = op == TG_OP_STACK;
        for (size_t n = 1; n <= 4; n++)
            for (int axis = -r - stack; axis <= r - 1 + stack; axis++)
                check_index(rng, &(spec){.op = op, .at.axis = axis}, shapes[i], n);
    }
}

/* concat of inputs whose lengths along the axis differ too. */
static tg_tensor *concat_lengths_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)ud;
    return tg_concat(tape, in, n, -2);
}

void case_concat(tg_op op, tg_rng *rng)
{
    case_join(op, rng);
    static const shp parts[][3] = {{S3(2, 1, 3), S3(2, 3, 3), S3(2, 2, 3)},
                                   {S2(1, 2), S2(4, 2), S2(0, 2)}};
    for (size_t p = 0; p < COUNT(parts); p++) {
        tg_tensor *in[3];
        for (size_t i = 0; i < 3; i++)
            in[i] = make_input(rng, parts[p][i], K_NORMAL);
        check_fn("concat", "lengths differ, axis -2", concat_lengths_fn, NULL, in, 3,
                 tg_rng_next(rng));
    }
}

/* take along every axis, index tensors 0-d to 2-D, negative and repeated indices; index_add,
 * its transpose, the same way, into x and from src. */
void case_take(tg_op op, tg_rng *rng)
{
    static const shp xs[] = {S1(5), S2(3, 4), S3(2, 3, 2)};
    static const shp idx_shapes[] = {S0, S1(1), S1(4), S2(2, 3)};
    for (size_t i = 0; i < COUNT(xs); i++) {
        shp x = xs[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t k = 0; k < COUNT(idx_shapes); k++) {
                shp is = idx_shapes[k];
                spec s = {.op = op, .at.axis = axis, .idx = is};
                random_indices(rng, x, axis, is, s.idx_vals);
                if (op == TG_OP_TAKE) {
                    check_index(rng, &s, x, 1);
                    continue;
                }
                tg_tensor *in[2] = {make_input(rng, x, K_NORMAL),
                                    make_input(rng, taken_shp(x, axis, is), K_NORMAL)};
                check_op(&s, in, 2, tg_rng_next(rng));
            }
    }
}

/* Every permutation of 1..4 axes; negative entries too. */
void case_permute(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++) {
        const int r = shapes[i].rank;
        size_t count = 1;
        for (int k = 2; k <= r; k++)
            count *= (size_t)k;
        for (size_t c = 0; c < count; c++) {
            int pool[TG_MAX_RANK] = {0, 1, 2, 3}, left = r;
            size_t code = c;
            spec s = {.op = op};
            for (int k = 0; k < r; k++) { /* the c-th permutation, from its factorial digits */
                size_t f = 1;
                for (int j = 2; j < left; j++)
                    f *= (size_t)j;
                int pick = (int)(code / f);
                code %= f;
                s.at.axes[k] = (c % 2 && k == 0) ? pool[pick] - r : pool[pick];
                for (int j = pick; j < left - 1; j++)
                    pool[j] = pool[j + 1];
                left--;
            }
            check_index(rng, &s, shapes[i], 1);
        }
    }
}

/* ---- binary math, comparisons, where, prod ------------------------------------------------ */
