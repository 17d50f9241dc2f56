/* gen_elementwise.c (test_random_graphs): the generators of the elementwise ops, matmul,
 * transpose, reshape and the reductions. */
#include "random_graphs.h"

/* ---- the generators: how a step applies each op -------------------------------------------
 * Each adds `op` onto value a, with whatever else it needs (a partner, guard values), or adds
 * nothing when a does not suit the op. Values recorded before an add_value are stale after it:
 * read s->t again. */

/* Ops that take any operand and no attributes: neg, sigmoid, tanh; exp, square and
 * log_sigmoid too, within their entry's limit. */
void gen_plain(gen *s, tg_op op, int a)
{
    apply(s, op, a, -1);
}

/* x * c with c in [-1.5, 1.5], x + c with c in [-1, 1]. */
void gen_scalar(gen *s, tg_op op, int a)
{
    value v = node(op, a, -1);
    double r = op == TG_OP_SCALE ? 1.5 : 1;
    v.at.c = uniform(s, -r, r);
    add_value(s, &v);
}

/* Elementwise with broadcasting: the partner is an earlier value that broadcasts against a,
 * or a new input or constant of a shape that does, in either order; div's partner is the
 * divisor, made positive. */
void gen_binary(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    double m = max_abs(x);
    int b = -1;
    for (int tries = 0; tries < 4 && b < 0; tries++) {
        int c = pick(s);
        if (broadcasts(x, s->t[c]) && (op != TG_OP_MUL || m * max_abs(s->t[c]) < BOUND))
            b = c;
    }
    if (b < 0 || below(s, 4) == 0)
        b = new_partner(s, a, 3);
    if (b < 0)
        return;
    if (op == TG_OP_DIV && (b = positive(s, b)) < 0)
        return;
    if (op != TG_OP_DIV && below(s, 2)) {
        int tmp = a;
        a = b;
        b = tmp;
    }
    apply(s, op, a, b);
}

/* mul: half the time x * x (fan-out of one value into both operands), else as gen_binary. */
void gen_mul(gen *s, tg_op op, int a)
{
    if (below(s, 2))
        gen_binary(s, op, a);
    else if (max_abs(s->t[a]) < 100)
        apply(s, op, a, a);
}

/* A new constant, of a shape that broadcasts against a, added to a or multiplying it. */
void gen_const(gen *s, tg_op op, int a)
{
    (void)op;
    int c = new_partner(s, a, 1);
    if (c >= 0)
        apply(s, below(s, 2) ? TG_OP_ADD : TG_OP_MUL, a, c);
}

/* sqrt, log: of x^2 + c. */
void gen_positive(gen *s, tg_op op, int a)
{
    int p = positive(s, a);
    if (p >= 0)
        apply(s, op, p, -1);
}

/* x^c: whole powers of any operand, negative and fractional ones of x^2 + c; |x| < 20. */
void gen_pow(gen *s, tg_op op, int a)
{
    static const double ex[6] = {2, 3, -1, 0.5, 1.5, -0.5};
    value v = node(op, a, -1);
    v.at.c = ex[below(s, 6)];
    if (v.at.c < 0 || v.at.c != floor(v.at.c))
        v.a = positive(s, a);
    if (v.a >= 0 && max_abs(s->t[v.a]) < 20)
        add_value(s, &v);
}

/* abs, relu: kinked at 0. */
void gen_kink(gen *s, tg_op op, int a)
{
    keep_off(s, s->t[a], 0);
    apply(s, op, a, -1);
}

/* clamp to a random [lo, hi], lo <= hi, kinked at both. */
void gen_clamp(gen *s, tg_op op, int a)
{
    value v = node(op, a, -1);
    v.at.lo = uniform(s, -1, 0.5);
    v.at.hi = v.at.lo + uniform(s, 0, 1.5);
    keep_off(s, s->t[a], v.at.lo);
    keep_off(s, s->t[a], v.at.hi);
    add_value(s, &v);
}

/* NumPy's other cases: a 1-D operand ((K) @ (K), (K) @ (K,N), (M,K) @ (K), (B,M,K) @ (K)),
 * and a 2-D operand against a 3-D one ((M,K) @ (B,K,N), (B,M,K) @ (K,N)); the partner is a
 * new input or constant. */
static void gen_matmul_numpy(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    const int rank = tg_tensor_rank(x);
    const size_t K = tg_tensor_dim(x, -1);
    size_t bs[3] = {K, 1 + (size_t)below(s, 4), 1 + (size_t)below(s, 4)};
    int br = below(s, 2) ? 1 : 2; /* (K) or (K,N) */
    if (rank == 2 && br == 2) {   /* (M,K) @ (B,K,N) */
        br = 3;
        bs[0] = 1 + (size_t)below(s, 3);
        bs[1] = K;
    }
    double m = max_abs(x);
    int b = new_leaf(s, br, bs, below(s, 4) == 0);
    if (b >= 0 && m * max_abs(s->t[b]) * (double)K < BOUND)
        apply(s, op, a, b);
}

/* (M,K) @ (K,N), or batched (B,M,K) @ (B,K,N): the partner is an earlier value of a fitting
 * shape, or a new input or constant; a quarter of the time (and always for a 1-D a), one of
 * NumPy's other cases. */
void gen_matmul(gen *s, tg_op op, int a)
{
    graph *g = s->g;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank >= 1 && rank <= 3 && (rank == 1 || below(s, 4) == 0)) {
        gen_matmul_numpy(s, op, a);
        return;
    }
    if (rank != 2 && rank != 3)
        return;
    double m = max_abs(x);
    size_t bs[3];
    if (rank == 3)
        bs[0] = tg_tensor_dim(x, 0);
    bs[rank - 2] = tg_tensor_dim(x, -1);
    bs[rank - 1] = 1 + (size_t)below(s, 4);
    int b = -1;
    for (int i = 0; i < g->n && b < 0; i++) {
        const tg_tensor *c = s->t[i];
        if (g->v[i].op != TG_OP_DETACH && tg_tensor_rank(c) == rank &&
            tg_tensor_dim(c, -2) == bs[rank - 2] && (rank == 2 || tg_tensor_dim(c, 0) == bs[0]) &&
            below(s, 2))
            b = i;
    }
    if (b < 0)
        b = new_leaf(s, rank, bs, below(s, 4) == 0);
    if (b >= 0 && m * max_abs(s->t[b]) * (double)bs[rank - 2] < BOUND)
        apply(s, op, a, b);
}

void gen_transpose(gen *s, tg_op op, int a)
{
    if (tg_tensor_rank(s->t[a]) == 2)
        apply(s, op, a, -1);
}

/* reshape: the element count split into random factors over 0 to 3 axes. */
void gen_reshape(gen *s, tg_op op, int a)
{
    size_t n = tg_tensor_numel(s->t[a]), f[16];
    int nf = 0;
    for (size_t p = 2, r = n; r > 1; p++)
        while (r % p == 0)
            f[nf++] = p, r /= p;
    value v = node(op, a, -1);
    v.rank = below(s, 4) + (nf > 0);
    if (v.rank == 0 && n != 1)
        v.rank = 1;
    for (int i = 0; i < v.rank; i++)
        v.shape[i] = 1;
    for (int i = 0; i < nf; i++)
        v.shape[below(s, v.rank)] *= f[i];
    add_value(s, &v);
}

/* The value of an op along an axis: a reduction (TG_ATTR_REDUCE: any axis or all of them,
 * keepdim or not) or softmax and the like (TG_ATTR_AXIS: one axis, so not of a 0-d value). */
static bool along_axis(gen *s, tg_op op, int a, value *v)
{
    int rank = tg_tensor_rank(s->t[a]);
    bool reduce = tg_op_info_of(op)->attrs == TG_ATTR_REDUCE;
    if (!reduce && rank == 0)
        return false;
    *v = node(op, a, -1);
    v->at.axis = random_axis(s, rank, reduce);
    v->at.keepdim = reduce && below(s, 2);
    return true;
}

void gen_axis(gen *s, tg_op op, int a)
{
    value v;
    if (along_axis(s, op, a, &v))
        add_value(s, &v);
}

/* max, min: no ties among the largest (smallest: the largest of -x) elements of a slice. */
void gen_max(gen *s, tg_op op, int a)
{
    value v;
    if (!along_axis(s, op, a, &v))
        return;
    const tg_tensor *x = op == TG_OP_MIN ? tg_neg(s->tape, s->t[a]) : s->t[a];
    cr_assert_not_null(x, "%s", tg_tape_error(s->tape));
    keep_max_apart(s, x, v.at.axis);
    add_value(s, &v);
}
