/* gen_index.c (test_random_graphs): the generators of the shape, indexing and join ops
 * (slice, select, concat, stack, take, index_add, permute). */
#include "random_graphs.h"

/* ---- shape, indexing and joins ---- */

/* x[start:stop:step] along a random axis: bounds past either end and negative ones, TG_END,
 * steps 1 to 3; never an empty result (reductions of it would fail). */
void gen_slice(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    value v = node(op, a, -1);
    v.at.axis = random_axis(s, rank, false);
    ptrdiff_t dim = (ptrdiff_t)tg_tensor_dim(x, v.at.axis);
    v.at.start = below(s, 2 * (int)dim + 3) - dim - 1;
    v.at.stop = below(s, 4) == 0 ? TG_END : below(s, 2 * (int)dim + 3) - dim - 1;
    v.at.step = 1 + below(s, 3);
    ptrdiff_t lo = v.at.start < 0 ? (v.at.start + dim < 0 ? 0 : v.at.start + dim)
                                  : (v.at.start > dim ? dim : v.at.start);
    ptrdiff_t hi = v.at.stop < 0 ? (v.at.stop + dim < 0 ? 0 : v.at.stop + dim)
                                 : (v.at.stop > dim ? dim : v.at.stop);
    if (hi > lo)
        add_value(s, &v);
}

/* x[..., i, ...]: one index along a random axis, negative ones too. */
void gen_select(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    value v = node(op, a, -1);
    v.at.axis = random_axis(s, rank, false);
    int dim = (int)tg_tensor_dim(x, v.at.axis);
    v.at.index = below(s, 2 * dim) - dim;
    add_value(s, &v);
}

/* concat of 1 to 4 operands along a random axis: earlier values that fit, or new inputs or
 * constants of a random length along it; stack of 1 to 4 of a's shape. */
void gen_join(gen *s, tg_op op, int a)
{
    const bool stack = op == TG_OP_STACK;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if ((!stack && rank == 0) || (stack && rank >= TG_MAX_RANK) ||
        tg_tensor_numel(x) * (size_t)MAX_JOIN > MAX_NUMEL)
        return;
    value v = node(op, a, -1);
    v.at.axis = stack ? below(s, 2 * rank + 2) - rank - 1 : random_axis(s, rank, false);
    int ax = v.at.axis < 0 ? v.at.axis + rank + stack : v.at.axis;
    v.n_args = 1 + below(s, MAX_JOIN);
    int args[MAX_JOIN] = {a};
    for (int k = 1; k < v.n_args; k++) {
        x = s->t[a]; /* stale after an add_value */
        int c = -1;
        for (int tries = 0; tries < 3 && c < 0; tries++) {
            int i = pick(s);
            const tg_tensor *y = s->t[i];
            bool fits = tg_tensor_rank(y) == rank;
            for (int d = 0; fits && d < rank; d++)
                fits = (!stack && d == ax) || tg_tensor_dim(y, d) == tg_tensor_dim(x, d);
            if (fits)
                c = i;
        }
        if (c < 0) {
            size_t shape[TG_MAX_RANK];
            for (int d = 0; d < rank; d++)
                shape[d] = tg_tensor_dim(x, d);
            if (!stack)
                shape[ax] = 1 + (size_t)below(s, 3);
            c = new_leaf(s, rank, shape, below(s, 3) == 0);
            if (c < 0)
                return;
        }
        args[k] = c;
    }
    v.b = v.n_args > 1 ? args[1] : -1;
    for (int k = 2; k < v.n_args; k++)
        v.more[k - 2] = args[k];
    add_value(s, &v);
}

/* take along a random axis, with a constant index tensor (0-d to 2-D) of integers, negative
 * and repeated ones among them; index_add the same way, its src of take's shape a new input
 * or x's own picked rows (x twice over). */
void gen_take(gen *s, tg_op op, int a)
{
    graph *g = s->g;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    int axis = random_axis(s, rank, false);
    long dim = (long)tg_tensor_dim(x, axis);
    int ir = below(s, 3);
    if (rank - 1 + ir > TG_MAX_RANK)
        ir = TG_MAX_RANK - rank + 1;
    value c = node(TG_OP_CONST, -1, -1);
    c.rank = ir;
    for (int d = 0; d < ir; d++)
        c.shape[d] = 1 + (size_t)below(s, 4);
    size_t m = numel_of(ir, c.shape);
    if (g->n_pool + m > POOL || tg_tensor_numel(x) / (size_t)dim * m > MAX_NUMEL)
        return;
    c.data = g->n_pool;
    for (size_t j = 0; j < m; j++)
        g->pool[g->n_pool++] = (double)(below(s, 2 * (int)dim) - dim);
    int idx = add_value(s, &c);
    if (idx < 0)
        return;
    value v = node(op, a, idx);
    v.at.axis = axis;
    if (op == TG_OP_INDEX_ADD) {
        value picked = node(TG_OP_TAKE, a, idx);
        picked.at.axis = axis;
        size_t shape[TG_MAX_RANK];
        int k = 0;
        for (int d = 0; d < rank; d++)
            if (d != (axis < 0 ? axis + rank : axis))
                shape[k++] = tg_tensor_dim(x, d);
            else
                for (int e = 0; e < ir; e++)
                    shape[k++] = c.shape[e];
        v.more[0] = below(s, 2) ? add_value(s, &picked) : new_leaf(s, k, shape, false);
        if (v.more[0] < 0)
            return;
    }
    add_value(s, &v);
}

/* A random order of the axes, some given as negative numbers. */
void gen_permute(gen *s, tg_op op, int a)
{
    int rank = tg_tensor_rank(s->t[a]);
    value v = node(op, a, -1);
    for (int k = 0; k < rank; k++)
        v.at.axes[k] = k;
    for (int k = rank - 1; k > 0; k--) { /* Fisher-Yates */
        int j = below(s, k + 1), tmp = v.at.axes[k];
        v.at.axes[k] = v.at.axes[j];
        v.at.axes[j] = tmp;
    }
    for (int k = 0; k < rank; k++)
        if (below(s, 4) == 0)
            v.at.axes[k] -= rank;
    add_value(s, &v);
}

/* How a step applies an op: `add` (above); `any` and `chain`, how often a step of a wide
 * graph and a step of a deep chain draws it (the op's weight over its column's sum); and
 * `limit`, when set, the magnitude a's elements must stay below for the op to be applied. */
