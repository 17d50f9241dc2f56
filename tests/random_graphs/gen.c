/* gen.c (test_random_graphs): the helpers of the generators: drawing numbers, adding a value
 * (recorded at once, its bounds checked), new inputs and constants, broadcasting partners,
 * picking operands, and the guards that reject a graph near a kink. */
#include "random_graphs.h"

int below(gen *s, int n)
{
    return (int)tg_rng_below(&s->rng, (uint64_t)n);
}

double uniform(gen *s, double lo, double hi)
{
    return lo + (hi - lo) * tg_rng_uniform(&s->rng);
}

double max_abs(const tg_tensor *x)
{
    const double *d = tg_tensor_data_const(x);
    double m = 0;
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        m = fmax(m, fabs(d[i]));
    return m;
}

/* Adds value *v, records it, and checks its bounds; returns its index or -1. */
int add_value(gen *s, const value *v)
{
    graph *g = s->g;
    if (g->n >= MAX_VALUES || s->rejected)
        return -1;
    g->v[g->n] = *v;
    g->n++;
    g->out = g->n - 1;
    tg_tape_reset(s->tape);
    /* Recording the whole graph again keeps the tensors on one live tape. */
    tg_tensor *y = record(s->tape, g, g->inputs, s->t);
    cr_assert_not_null(y, "seed %llu: the generator made a bad graph (%s): %s",
                       (unsigned long long)g->seed, v->op == INPUT ? "input" : tg_op_name(v->op),
                       tg_tape_error(s->tape));
    double m = max_abs(y);
    if (!(m <= BOUND) || tg_tensor_numel(y) > MAX_NUMEL)
        s->rejected = true;
    return g->n - 1;
}

/* A value of `op` over a and b (-1: none), with no attributes set but the axis (all). */
value node(int op, int a, int b)
{
    value v;
    memset(&v, 0, sizeof v);
    v.op = op;
    v.a = a;
    v.b = b;
    for (int k = 0; k < MAX_JOIN - 2; k++)
        v.more[k] = -1;
    v.at.axis = TG_ALL_AXES;
    return v;
}

/* Adds op over a and b (-1 for a unary op), with no attributes; its index or -1. */
int apply(gen *s, tg_op op, int a, int b)
{
    value v = node(op, a, b);
    return add_value(s, &v);
}

/* A new input (a leaf requiring grad) or constant of this shape. */
int new_leaf(gen *s, int rank, const size_t *shape, bool constant)
{
    graph *g = s->g;
    size_t n = numel_of(rank, shape);
    cr_assert_leq(n, MAX_NUMEL);
    constant = constant || g->n_inputs == MAX_INPUTS;
    if (constant && g->n_pool + n > POOL) {
        s->rejected = true;
        return -1;
    }
    value v = node(constant ? TG_OP_CONST : INPUT, -1, -1);
    v.rank = rank;
    memcpy(v.shape, shape, sizeof(size_t) * (size_t)rank);
    v.input = g->n_inputs;
    v.data = g->n_pool;
    double leaf[MAX_NUMEL], *d = constant ? g->pool + g->n_pool : leaf;
    for (size_t i = 0; i < n; i++)
        d[i] = uniform(s, -1.5, 1.5);
    if (constant)
        g->n_pool += n;
    else
        g->inputs[g->n_inputs++] = ts_leaf(TG_F64, rank, shape, d, true);
    return add_value(s, &v);
}

void random_shape(gen *s, int *rank, size_t *shape)
{
    *rank = below(s, 4); /* 0..3 */
    for (int i = 0; i < *rank; i++)
        shape[i] = 1 + (size_t)below(s, 4);
}

/* A shape that broadcasts against `shape`: some axes set to 1, some leading ones dropped. */
void broadcast_partner(gen *s, int rank, const size_t *shape, int *r2, size_t *s2)
{
    int drop = rank ? below(s, rank + 1) : 0;
    *r2 = rank - drop;
    for (int i = 0; i < *r2; i++)
        s2[i] = below(s, 3) == 0 ? 1 : shape[drop + i];
}

/* A new input or constant (one in `one_in` is a constant) that broadcasts against value a. */
int new_partner(gen *s, int a, int one_in)
{
    int r2;
    size_t s2[TG_MAX_RANK];
    const tg_tensor *x = s->t[a];
    broadcast_partner(s, tg_tensor_rank(x), tg_tensor_shape(x), &r2, s2);
    return new_leaf(s, r2, s2, below(s, one_in) == 0);
}

bool broadcasts(const tg_tensor *a, const tg_tensor *b)
{
    int ra = tg_tensor_rank(a), rb = tg_tensor_rank(b);
    for (int i = 1; i <= ra && i <= rb; i++) {
        size_t da = tg_tensor_dim(a, -i), db = tg_tensor_dim(b, -i);
        if (da != db && da != 1 && db != 1)
            return false;
    }
    return true;
}

/* An operand: often the newest value (chains), else any earlier one (fan-out). */
int pick(gen *s)
{
    int n = s->g->n;
    int i = below(s, 2) == 0 ? n - 1 : below(s, n);
    while (s->g->v[i].op == TG_OP_DETACH) /* never a detached value itself (see gen_detach) */
        i--;
    return i;
}

/* x^2 + c with c in [0.25, 1]: a positive operand for log, sqrt, div and fractional powers. */
int positive(gen *s, int a)
{
    int sq = apply(s, TG_OP_SQUARE, a, -1);
    if (sq < 0)
        return -1;
    value v = node(TG_OP_ADD_SCALAR, sq, -1);
    v.at.c = uniform(s, 0.25, 1);
    return add_value(s, &v);
}

/* Rejects the graph when any element of x is within KINK of `at`. */
void keep_off(gen *s, const tg_tensor *x, double at)
{
    const double *d = tg_tensor_data_const(x);
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        if (fabs(d[i] - at) < KINK)
            s->rejected = true;
}

/* Rejects the graph when the two largest elements of a slice that max reduces are within
 * KINK of each other (the gradient would jump between them). */
void keep_max_apart(gen *s, const tg_tensor *x, int axis)
{
    int rank = tg_tensor_rank(x);
    size_t n = tg_tensor_numel(x);
    const double *d = tg_tensor_data_const(x);
    size_t len = n, stride = 1, outer = 1;
    if (axis != TG_ALL_AXES) {
        int ax = axis < 0 ? axis + rank : axis;
        len = tg_tensor_dim(x, ax);
        for (int i = ax + 1; i < rank; i++)
            stride *= tg_tensor_dim(x, i);
        outer = n / (len * stride);
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < stride; in++) {
            const double *p = d + o * len * stride + in;
            double best = -INFINITY, second = -INFINITY;
            for (size_t j = 0; j < len; j++) {
                double v = p[j * stride];
                if (v > best)
                    second = best, best = v;
                else if (v > second)
                    second = v;
            }
            if (len > 1 && best - second < KINK)
                s->rejected = true;
        }
}

int random_axis(gen *s, int rank, bool allow_all)
{
    if (rank == 0 || (allow_all && below(s, 3) == 0))
        return TG_ALL_AXES;
    int ax = below(s, rank);
    return below(s, 2) ? ax : ax - rank; /* negative axes too */
}
