/* cases_shape.c (test_gradcheck): the case functions of matmul (NumPy's rules included),
 * transpose, reshape, the reductions along every axis, softmax, and the shape, indexing and
 * join ops (slice, select, concat, stack, take, index_add, permute). */
#include "gradcheck.h"

void case_matmul(tg_op op, tg_rng *rng)
{
    static const size_t mkn[][3] = {
        {1, 1, 1}, {3, 5, 2}, {7, 1, 4}, {2, 3, 1}, {1, 6, 1}, {4, 4, 4}, {1, 3, 5}, {5, 2, 3},
    };
    spec s = {.op = op};
    for (size_t i = 0; i < sizeof mkn / sizeof mkn[0]; i++) {
        size_t M = mkn[i][0], K = mkn[i][1], N = mkn[i][2];
        check_binary(rng, s, (shp)S2(M, K), K_NORMAL, (shp)S2(K, N), K_NORMAL);
    }
    static const size_t bmkn[][4] = {{2, 3, 4, 2}, {1, 2, 3, 2}, {3, 1, 2, 5}, {2, 2, 1, 2}};
    for (size_t i = 0; i < sizeof bmkn / sizeof bmkn[0]; i++) {
        size_t B = bmkn[i][0], M = bmkn[i][1], K = bmkn[i][2], N = bmkn[i][3];
        check_binary(rng, s, (shp)S3(B, M, K), K_NORMAL, (shp)S3(B, K, N), K_NORMAL);
    }
    /* NumPy's rules: a 1-D operand, and a 2-D operand used by every batch of a 3-D one (its
     * gradient summed over the batch); small ones run the plain loops, the larger ones (M*K*N
     * past 512) the GEMM kernel. */
    static const struct {
        shp a, b;
    } numpy[] = {
        {S1(3), S2(3, 4)},
        {S2(4, 3), S1(3)},
        {S1(5), S1(5)},
        {S1(1), S1(1)},
        {S2(2, 3), S3(4, 3, 2)},
        {S3(4, 2, 3), S2(3, 5)},
        {S1(3), S3(2, 3, 4)},
        {S3(2, 4, 3), S1(3)},
        {S1(600), S1(600)},
        {S1(30), S2(30, 20)},
        {S2(20, 30), S1(30)},
        {S2(9, 10), S3(3, 10, 8)},
        {S3(3, 9, 10), S2(10, 8)},
        {S1(10), S3(3, 10, 60)},
        {S3(3, 60, 10), S1(10)},
    };
    for (size_t i = 0; i < sizeof numpy / sizeof numpy[0]; i++)
        check_binary(rng, s, numpy[i].a, K_NORMAL, numpy[i].b, K_NORMAL);
    /* x @ x for square x: both operands' gradients land in one buffer. */
    s.fanout = true;
    check_unary(rng, s, (shp)S2(3, 3), K_NORMAL);
    check_unary(rng, s, (shp)S3(2, 2, 2), K_NORMAL);
}

void case_transpose(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S2(1, 1), S2(2, 3), S2(4, 1), S2(1, 5), S2(3, 3)};
    spec s = {.op = op};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_unary(rng, s, shapes[i], K_NORMAL);
}

void case_reshape(tg_op op, tg_rng *rng)
{
    static const struct {
        shp from, to;
    } rs[] = {
        {S2(2, 3), S2(3, 2)},
        {S2(2, 3), S1(6)},
        {S2(2, 3), S3(1, 6, 1)},
        {S0, S2(1, 1)},
        {S1(1), S0},
        {S3(2, 3, 4), S2(4, 6)},
        {S4(2, 1, 3, 2), S3(3, 2, 2)},
        {S1(6), S4(1, 2, 1, 3)},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        spec s = {.op = op, .to = rs[i].to};
        check_unary(rng, s, rs[i].from, K_NORMAL);
    }
}

/* Reductions along every axis, negative ones included, and TG_ALL_AXES, keepdim or not. */
void case_reduce(tg_op op, tg_rng *rng)
{
    kind k = op == TG_OP_MAX || op == TG_OP_MIN ? K_DISTINCT : K_NORMAL;
    static const shp shapes[] = {S0, S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int keep = 0; keep <= 1; keep++) {
            for (int axis = -r; axis < r; axis++) {
                spec s = {.op = op, .axis = axis, .keepdim = keep};
                check_unary(rng, s, shapes[i], k);
            }
            spec s = {.op = op, .axis = TG_ALL_AXES, .keepdim = keep};
            check_unary(rng, s, shapes[i], k);
        }
    }
}

/* softmax and log_softmax along each axis (by positive and by negative index). */
void case_softmax(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S1(1), S1(5), S2(3, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int axis = -r; axis < r; axis++) {
            spec s = {.op = op, .axis = axis};
            check_unary(rng, s, shapes[i], K_NORMAL);
        }
    }
}

/* ---- shape, indexing and joins -------------------------------------------------------------
 * Each case function builds its own check: the attributes ride in an `index_spec`, and every
 * op is still applied through tg_apply. take's and index_add's indices are a constant of the
 * function (not an input: finite differences would move them off the integers). */

typedef struct index_spec {
    tg_op op;
    tg_attrs at;
    size_t n;            /* concat, stack: inputs joined */
    shp idx;             /* take, index_add: the index tensor's shape */
    double idx_vals[24]; /* and its values */
} index_spec;

static tg_tensor *index_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const index_spec *s = ud;
    if (s->op == TG_OP_TAKE || s->op == TG_OP_INDEX_ADD) { /* x, idx[, src] */
        tg_tensor *idx = tg_constant(tape, TG_F64, s->idx.rank, s->idx.d, s->idx_vals);
        tg_tensor *xs[3] = {in[0], idx, n > 1 ? in[1] : NULL};
        return tg_apply(tape, s->op, xs, n + 1, &s->at);
    }
    return tg_apply(tape, s->op, in, n, &s->at);
}

static void check_index(tg_rng *rng, const index_spec *s, shp x)
{
    char attrs[160], ax[64] = "";
    for (int i = 0; i < x.rank; i++)
        snprintf(ax + strlen(ax), sizeof ax - strlen(ax), "%s%d", i ? "," : "", s->at.axes[i]);
    snprintf(attrs, sizeof attrs, "axis=%d start=%td stop=%td step=%td index=%td n=%zu axes=%s",
             s->at.axis, s->at.start, s->at.stop, s->at.step, s->at.index, s->n, ax);
    tg_tensor *in[4];
    size_t n = s->op == TG_OP_CONCAT || s->op == TG_OP_STACK ? s->n : 1;
    for (size_t i = 0; i < n; i++)
        in[i] = make_input(rng, x, K_NORMAL);
    check_fn(tg_op_name(s->op), attrs, index_fn, (void *)s, in, n, tg_rng_next(rng));
}

static const shp INDEX_SHAPES[] = {S1(1), S1(7), S2(3, 5), S2(1, 4), S3(2, 3, 4), S4(2, 1, 3, 2)};
#define N_INDEX_SHAPES (sizeof INDEX_SHAPES / sizeof INDEX_SHAPES[0])

/* Every axis (by positive and negative number), with starts and stops negative, past either
 * end (clamped), TG_END, empty ranges, and steps 1 to past the end. */
void case_slice(tg_op op, tg_rng *rng)
{
    static const ptrdiff_t ranges[][3] = {
        {0, TG_END, 1},  {1, TG_END, 1}, {0, -1, 1},      {-2, TG_END, 1}, {1, 7, 2},
        {-100, 100, 1},  {0, TG_END, 2}, {-3, -1, 1},     {2, 1, 1},       {0, TG_END, 3},
        {1, TG_END, 50}, {5, 2, 2},      {-1, TG_END, 1},
    };
    for (size_t i = 0; i < N_INDEX_SHAPES; i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
                if ((r + (size_t)axis + i) % 3) /* a third of the combinations */
                    continue;
                index_spec s = {.op = op,
                                .at = {.axis = axis,
                                       .start = ranges[r][0],
                                       .stop = ranges[r][1],
                                       .step = ranges[r][2]}};
                check_index(rng, &s, x);
            }
    }
}

/* Every axis, every index, by positive and negative number. */
void case_select(tg_op op, tg_rng *rng)
{
    for (size_t i = 0; i < N_INDEX_SHAPES; i++) {
        shp x = INDEX_SHAPES[i];
        for (int axis = -x.rank; axis < x.rank; axis++) {
            ptrdiff_t dim = (ptrdiff_t)x.d[axis < 0 ? axis + x.rank : axis];
            for (ptrdiff_t index = -dim; index < dim; index += 1 + (dim > 3))
                check_index(rng, &(index_spec){.op = op, .at = {.axis = axis, .index = index}}, x);
        }
    }
}

/* n = 1..4 inputs along every axis (concat: of one shape here; of different lengths along the
 * axis in case_concat). */
void case_join(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 1, 3)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        shp x = shapes[i];
        int lo = op == TG_OP_STACK ? -(x.rank + 1) : -x.rank;
        int hi = op == TG_OP_STACK ? x.rank : x.rank - 1;
        for (size_t n = 1; n <= 4; n++)
            for (int axis = lo; axis <= hi; axis++)
                check_index(rng, &(index_spec){.op = op, .at = {.axis = axis}, .n = n}, x);
    }
}

/* concat of inputs whose lengths along the axis differ: (2,1,3) (2,3,3) (2,2,3) on axis 1. */
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
    for (size_t p = 0; p < 2; p++) {
        tg_tensor *in[3];
        for (size_t i = 0; i < 3; i++)
            in[i] = make_input(rng, parts[p][i], K_NORMAL);
        check_fn("concat", "lengths differ, axis -2", concat_lengths_fn, NULL, in, 3,
                 tg_rng_next(rng));
    }
}

/* take along every axis, with index tensors 0-d to 2-D, negative and repeated indices (the
 * scatter-add accumulates); index_add, its transpose, the same way, into x and from src. */
void case_take(tg_op op, tg_rng *rng)
{
    static const shp xs[] = {S1(5), S2(3, 4), S3(2, 3, 2)};
    static const shp idx_shapes[] = {S0, S1(1), S1(4), S2(2, 3)};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        shp x = xs[i];
        for (int axis = -x.rank; axis < x.rank; axis++)
            for (size_t k = 0; k < sizeof idx_shapes / sizeof idx_shapes[0]; k++) {
                shp is = idx_shapes[k];
                if (x.rank - 1 + is.rank > TG_MAX_RANK)
                    continue;
                index_spec s = {.op = op, .at = {.axis = axis}, .idx = is};
                random_indices(rng, x, axis, is, s.idx_vals);
                if (op == TG_OP_TAKE) {
                    check_index(rng, &s, x);
                    continue;
                }
                tg_tensor *in[2] = {make_input(rng, x, K_NORMAL),
                                    make_input(rng, taken_shp(x, axis, is), K_NORMAL)};
                char attrs[32];
                snprintf(attrs, sizeof attrs, "axis=%d", axis);
                check_fn(tg_op_name(op), attrs, index_fn, &s, in, 2, tg_rng_next(rng));
            }
    }
}

/* Every permutation of 1..4 axes (identity included); negative entries too. */
void case_permute(tg_op op, tg_rng *rng)
{
    static const shp shapes[] = {S0, S1(3), S2(2, 3), S3(2, 3, 4), S4(2, 1, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int r = shapes[i].rank;
        int p[TG_MAX_RANK] = {0, 1, 2, 3};
        size_t count = 1;
        for (int k = 2; k <= r; k++)
            count *= (size_t)k;
        for (size_t c = 0; c < count; c++) {
            /* the c-th permutation, from its factorial digits */
            int pool[TG_MAX_RANK] = {0, 1, 2, 3}, left = r;
            size_t code = c;
            for (int k = 0; k < r; k++) {
                size_t f = 1;
                for (int j = 2; j < left; j++)
                    f *= (size_t)j;
                int pick = (int)(code / f);
                code %= f;
                p[k] = pool[pick];
                for (int j = pick; j < left - 1; j++)
                    pool[j] = pool[j + 1];
                left--;
            }
            index_spec s = {.op = op};
            for (int k = 0; k < r; k++)
                s.at.axes[k] = (c % 2 && k == 0) ? p[k] - r : p[k];
            check_index(rng, &s, shapes[i]);
        }
    }
}
