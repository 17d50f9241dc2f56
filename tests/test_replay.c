/* test_replay.c: tg_tape_replay (src/tape/replay.c). The property: a graph recorded at point
 * A and replayed at point B holds, bit for bit, the values and gradients of a fresh recording
 * at B; checked on seeded random graphs over the whole op table (a small generator of its own:
 * random ops of tg_apply on random operands, kept when they record), plus the cases around
 * it: views, constants, take judging new indices, custom ops re-run and failing, anomaly
 * mode, gradients that must not leak from a pass before the replay, what replay refuses
 * (changed leaves, errors, resets), the plan, second derivatives through tg_grad_graph, and
 * memory that stays put over many replays. The references are fresh recordings (the
 * library's own forward, on a separate tape) for the bitwise property, and hand-derived
 * closed forms elsewhere. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_impl.h" /* to make a leaf look as if its memory were reused */

#include "support/helpers.h"

/* ---- a small random graph generator ------------------------------------------------------- */

#define MAX_LEAVES 4 /* leaves 0..2 are values, leaf 3 take's and index_add's index */
#define MAX_STEPS 40
#define MAX_VALS (MAX_LEAVES + MAX_STEPS)
#define MAX_EL 256 /* elements in any one value */
#define STEP_CONST (-1)
#define STEP_CUSTOM (-2)
#define IDX_LEAF 3

typedef struct step {
    int op; /* a tg_op, STEP_CONST or STEP_CUSTOM */
    int in[4];
    int n;
    tg_attrs at;
    size_t shape[TG_MAX_RANK]; /* reshape's new shape, or a constant's */
    int rank;
    double c[8]; /* a constant's values (shape of at most 8 elements) */
} step;

typedef struct prog {
    tg_dtype dt;
    int n_steps;
    step s[MAX_STEPS];
    tg_tensor *leaves[MAX_LEAVES];
} prog;

/* y = x^3 * scale: a custom op, scale the user pointer. */
static tg_status cube_forward(const tg_custom_call *call)
{
    const double k = *(const double *)call->user;
    const tg_tensor *x = call->in[0];
    const size_t n = tg_tensor_numel(x);
    for (size_t i = 0; i < n; i++) {
        double v = tg_tensor_get(x, i);
        if (tg_tensor_dtype(x) == TG_F32)
            ((float *)call->y)[i] = (float)(k * v * v * v);
        else
            ((double *)call->y)[i] = k * v * v * v;
    }
    return TG_OK;
}

/* dx += dy * 3 k x^2 */
static tg_status cube_vjp(const tg_custom_call *call)
{
    const double k = *(const double *)call->user;
    const tg_tensor *x = call->in[0];
    if (!call->dx[0])
        return TG_OK;
    const size_t n = tg_tensor_numel(x);
    for (size_t i = 0; i < n; i++) {
        double v = tg_tensor_get(x, i);
        if (tg_tensor_dtype(x) == TG_F32)
            ((float *)call->dx[0])[i] += (float)(((const float *)call->dy)[i] * 3 * k * v * v);
        else
            ((double *)call->dx[0])[i] += ((const double *)call->dy)[i] * 3 * k * v * v;
    }
    return TG_OK;
}

static const tg_custom_op CUBE = {.name = "cube", .forward = cube_forward, .vjp = cube_vjp};
static double cube_scale = 0.25;

/* Records steps [0, n) of p on tape into vals (leaves first); false at the first that fails
 * (its error kept on the tape). */
static bool record(tg_tape *tape, const prog *p, int n, tg_tensor **vals)
{
    for (int i = 0; i < MAX_LEAVES; i++)
        vals[i] = p->leaves[i];
    for (int k = 0; k < n; k++) {
        const step *s = &p->s[k];
        tg_tensor *in[4];
        for (int j = 0; j < s->n; j++)
            in[j] = vals[s->in[j]];
        tg_tensor *y;
        if (s->op == STEP_CONST) {
            double buf[8];
            float fbuf[8];
            for (int j = 0; j < 8; j++)
                fbuf[j] = (float)(buf[j] = s->c[j]);
            y = tg_constant(tape, p->dt, s->rank, s->shape,
                            p->dt == TG_F32 ? (const void *)fbuf : buf);
        } else if (s->op == STEP_CUSTOM) {
            y = tg_custom(tape, &CUBE, &cube_scale, in, 1, in[0]->rank, in[0]->shape);
        } else {
            y = tg_apply(tape, (tg_op)s->op, in, (size_t)s->n, &s->at);
        }
        if (!y)
            return false;
        vals[MAX_LEAVES + k] = y;
    }
    return true;
}

/* How many kept steps applied each op, over all graphs (custom: TG_OP_CUSTOM, constants:
 * TG_OP_CONST). */
static long seen[TG_OP_COUNT];

static int pick(tg_rng *r, int n)
{
    return (int)tg_rng_below(r, (uint64_t)n);
}

/* An operand for step k: more often a recent value. */
static int operand(tg_rng *r, int n_vals)
{
    int lo = n_vals > 8 && pick(r, 2) ? n_vals - 8 : 0;
    int v = lo + pick(r, n_vals - lo);
    return v == IDX_LEAF ? 0 : v;
}

/* A value of the same shape as vals[a] (or any, when none or by chance). */
static int partner(tg_rng *r, tg_tensor **vals, int n_vals, int a)
{
    int same[MAX_VALS], n = 0;
    for (int i = 0; i < n_vals; i++)
        if (i != IDX_LEAF && vals[i]->rank == vals[a]->rank &&
            !memcmp(vals[i]->shape, vals[a]->shape, vals[a]->rank * sizeof(size_t)))
            same[n++] = i;
    return n && pick(r, 5) ? same[pick(r, n)] : operand(r, n_vals);
}

/* A random step on the values so far. */
static void draw_step(tg_rng *r, tg_tensor **vals, int n_vals, step *s)
{
    memset(s, 0, sizeof *s);
    int choice = pick(r, 20);
    int a = operand(r, n_vals);
    const int ra = vals[a]->rank;
    if (choice == 0) { /* a constant of a few elements */
        s->op = STEP_CONST;
        s->rank = pick(r, 2);
        s->shape[0] = 1 + (size_t)pick(r, 3);
        for (int j = 0; j < 8; j++)
            s->c[j] = tg_rng_normal(r);
        return;
    }
    if (choice == 1) {
        s->op = STEP_CUSTOM;
        s->in[0] = a;
        s->n = 1;
        return;
    }
    int op;
    do
        op = pick(r, TG_OP_COUNT);
    while (op == TG_OP_CONST || op == TG_OP_CUSTOM);
    const tg_op_info *info = tg_op_info_of((tg_op)op);
    s->op = op;
    s->in[0] = a;
    s->n = info->arity == TG_VARIADIC ? 2 + pick(r, 2) : info->arity;
    for (int j = 1; j < s->n; j++)
        s->in[j] = partner(r, vals, n_vals, a);
    if (op == TG_OP_TAKE || op == TG_OP_INDEX_ADD) /* index_add: src of a's shape, which fits
                                                    * where a's axis is as long as the index */
        s->in[1] = IDX_LEAF;
    tg_attrs *at = &s->at;
    at->axis = ra ? pick(r, 2 * ra) - ra : 0;
    switch (info->attrs) {
    case TG_ATTR_CONSTANT: {
        static const double cs[] = {0.5, 2, -1.5, 3, 1.0 / 3};
        at->c = cs[pick(r, 5)];
        break;
    }
    case TG_ATTR_RANGE:
        at->lo = -0.5;
        at->hi = 0.7;
        break;
    case TG_ATTR_REDUCE:
        if (pick(r, 3) == 0)
            at->axis = TG_ALL_AXES;
        at->keepdim = pick(r, 2);
        break;
    case TG_ATTR_SHAPE: { /* flat, a leading 1, or the dims reversed */
        int how = pick(r, 3);
        if (how == 0) {
            s->rank = 1;
            s->shape[0] = vals[a]->numel;
        } else if (how == 1 && ra < TG_MAX_RANK) {
            s->rank = ra + 1;
            s->shape[0] = 1;
            for (int d = 0; d < ra; d++)
                s->shape[d + 1] = vals[a]->shape[d];
        } else {
            s->rank = ra;
            for (int d = 0; d < ra; d++)
                s->shape[d] = vals[a]->shape[ra - 1 - d];
        }
        at->rank = s->rank;
        break;
    }
    case TG_ATTR_SLICE:
        at->start = pick(r, 2);
        at->stop = TG_END;
        at->step = 1 + pick(r, 2);
        break;
    case TG_ATTR_INDEX: at->index = pick(r, 2) ? 0 : -1; break;
    case TG_ATTR_AXES:
        for (int d = 0; d < ra; d++)
            at->axes[d] = d;
        for (int d = ra - 1; d > 0; d--) {
            int e = pick(r, d + 1), t = at->axes[d];
            at->axes[d] = at->axes[e];
            at->axes[e] = t;
        }
        break;
    default: break;
    }
}

/* Fills the value leaves with normal values and take's index with valid positions (0 or -1:
 * in range for any axis). */
static void set_point(prog *p, tg_rng *r)
{
    for (int i = 0; i < IDX_LEAF; i++)
        for (size_t j = 0; j < tg_tensor_numel(p->leaves[i]); j++)
            tg_tensor_set(p->leaves[i], j, tg_rng_normal(r));
    for (size_t j = 0; j < tg_tensor_numel(p->leaves[IDX_LEAF]); j++)
        tg_tensor_set(p->leaves[IDX_LEAF], j, pick(r, 2) ? 0 : -1);
}

/* A random program of seed `seed`, its leaves made (requires grad but the index) and set to
 * a first point. Steps that fail to record, or make a value too large, are drawn again. */
static void make_prog(prog *p, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    memset(p, 0, sizeof *p);
    p->dt = pick(&r, 4) ? TG_F64 : TG_F32;
    static const size_t shapes[][3] = {{2, 2, 3}, {1, 3, 0}, {2, 3, 2}, {0, 0, 0}, {2, 3, 1}};
    for (int i = 0; i < IDX_LEAF; i++) {
        const size_t *sh = shapes[pick(&r, 5)];
        p->leaves[i] = tg_tensor_zeros(p->dt, (int)sh[0], sh + 1);
        cr_assert_not_null(p->leaves[i]);
        cr_assert_eq(tg_tensor_set_requires_grad(p->leaves[i], i != 2 || pick(&r, 2)), TG_OK);
    }
    p->leaves[IDX_LEAF] = tg_tensor_zeros(p->dt, 1, TS_SHAPE(2));
    set_point(p, &r);
    tg_tape *tape = tg_tape_new();
    tg_tensor *vals[MAX_VALS];
    cr_assert(record(tape, p, 0, vals));
    const int want = 10 + pick(&r, MAX_STEPS - 10);
    for (int tries = 0; p->n_steps < want && tries < 2000; tries++) {
        step *s = &p->s[p->n_steps];
        draw_step(&r, vals, MAX_LEAVES + p->n_steps, s);
        if (s->op >= 0 && tg_op_info_of((tg_op)s->op)->attrs == TG_ATTR_SHAPE)
            s->at.shape = s->shape;
        p->n_steps++;
        tg_tensor *y = NULL;
        if (record(tape, p, p->n_steps, vals) &&
            (y = vals[MAX_LEAVES + p->n_steps - 1])->numel <= MAX_EL) {
            seen[s->op == STEP_CONST ? TG_OP_CONST : s->op == STEP_CUSTOM ? TG_OP_CUSTOM : s->op]++;
            continue;
        }
        p->n_steps--; /* rejected: record the prefix again on a clean tape */
        tg_tape_reset(tape);
        cr_assert(record(tape, p, p->n_steps, vals), "%s", tg_tape_error(tape));
    }
    tg_tape_free(tape);
}

static void free_prog(prog *p)
{
    for (int i = 0; i < MAX_LEAVES; i++)
        tg_tensor_free(p->leaves[i]);
}

/* loss = sum over every value that requires grad of sum(value): a scalar that reaches every
 * node, recorded after the program. NULL when nothing requires grad. */
static tg_tensor *loss_of(tg_tape *tape, tg_tensor **vals, int n_vals)
{
    tg_tensor *loss = NULL;
    for (int i = MAX_LEAVES; i < n_vals; i++) {
        if (!tg_tensor_requires_grad(vals[i]))
            continue;
        tg_tensor *s = tg_sum(tape, vals[i], TG_ALL_AXES, false);
        loss = loss ? tg_add(tape, loss, s) : s;
    }
    return loss;
}

static void assert_same_bytes(const void *a, const void *b, size_t n, const char *what, int i,
                              uint64_t seed)
{
    if (!a || !b) {
        cr_assert(a == b, "seed %llu: %s %d: one is missing", (unsigned long long)seed, what, i);
        return;
    }
    cr_assert(memcmp(a, b, n) == 0, "seed %llu: %s %d differs", (unsigned long long)seed, what, i);
}

/* A leaf's gradient, or zeros when it has no buffer (no backward reached it yet). */
static const void *grad_or_zeros(tg_tensor *x)
{
    static const double zeros[MAX_EL];
    const void *g = tg_tensor_grad_data(x);
    return g ? g : zeros;
}

/* Replays p's recording at point A (with a backward there first, whose gradients must not
 * leak) at point B, and compares it with a fresh recording at B: every value, every node's
 * gradient, the leaves' gradients and tg_grad's. */
static void check_prog(uint64_t seed)
{
    static prog p; /* large: not on the stack */
    make_prog(&p, seed);
    tg_rng r;
    tg_rng_seed(&r, seed ^ 0x9e3779b97f4a7c15u);
    tg_tape *rt = tg_tape_new(), *ft = tg_tape_new();
    tg_tensor *rv[MAX_VALS + 1], *fv[MAX_VALS + 1];
    const int n = MAX_LEAVES + p.n_steps;
    set_point(&p, &r); /* A */
    cr_assert(record(rt, &p, p.n_steps, rv), "seed %llu: %s", (unsigned long long)seed,
              tg_tape_error(rt));
    tg_tensor *rloss = loss_of(rt, rv, n);
    if (rloss)
        cr_assert_eq(tg_backward(rt, rloss), TG_OK, "%s", tg_last_error());
    set_point(&p, &r); /* B */
    cr_assert_eq(tg_tape_replay(rt), TG_OK, "seed %llu: %s", (unsigned long long)seed,
                 tg_last_error());
    cr_assert(record(ft, &p, p.n_steps, fv), "seed %llu: %s", (unsigned long long)seed,
              tg_tape_error(ft));
    tg_tensor *floss = loss_of(ft, fv, n);
    for (int i = MAX_LEAVES; i < n; i++) {
        cr_assert_null(tg_tensor_grad_data(rv[i]), "seed %llu: value %d kept a gradient",
                       (unsigned long long)seed, i);
        assert_same_bytes(tg_tensor_data_const(rv[i]), tg_tensor_data_const(fv[i]),
                          tg_tensor_numel(fv[i]) * (p.dt == TG_F64 ? 8 : 4), "value", i, seed);
    }
    if (!floss)
        goto done;
    assert_same_bytes(tg_tensor_data_const(rloss), tg_tensor_data_const(floss),
                      p.dt == TG_F64 ? 8 : 4, "loss", 0, seed);
    /* leaf gradients: fresh first, kept; then the replayed tape's */
    double fg[IDX_LEAF][MAX_EL];
    for (int i = 0; i < IDX_LEAF; i++)
        tg_tensor_zero_grad(p.leaves[i]);
    cr_assert_eq(tg_backward(ft, floss), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < IDX_LEAF; i++)
        memcpy(fg[i], grad_or_zeros(p.leaves[i]),
               tg_tensor_numel(p.leaves[i]) * (p.dt == TG_F64 ? 8 : 4));
    for (int i = 0; i < IDX_LEAF; i++)
        tg_tensor_zero_grad(p.leaves[i]);
    cr_assert_eq(tg_backward(rt, rloss), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < IDX_LEAF; i++)
        if (tg_tensor_requires_grad(p.leaves[i]))
            assert_same_bytes(grad_or_zeros(p.leaves[i]), fg[i],
                              tg_tensor_numel(p.leaves[i]) * (p.dt == TG_F64 ? 8 : 4), "leaf grad",
                              i, seed);
    for (int i = MAX_LEAVES; i < n; i++) /* node gradients of the same pass */
        assert_same_bytes(tg_tensor_grad_data(rv[i]), tg_tensor_grad_data(fv[i]),
                          tg_tensor_numel(fv[i]) * (p.dt == TG_F64 ? 8 : 4), "node grad", i, seed);
    /* tg_grad on both, after one more replay at the same point (idempotent) */
    cr_assert_eq(tg_tape_replay(rt), TG_OK, "%s", tg_last_error());
    /* in the leaves that require grad (a gradient in one that does not, but that the loss
     * depends on, is refused) */
    tg_tensor *g1[IDX_LEAF], *g2[IDX_LEAF], *wrt[IDX_LEAF];
    int n_wrt = 0;
    for (int i = 0; i < IDX_LEAF; i++)
        if (tg_tensor_requires_grad(p.leaves[i]))
            wrt[n_wrt++] = p.leaves[i];
    cr_assert_eq(tg_grad(ft, floss, wrt, (size_t)n_wrt, g1), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_grad(rt, rloss, wrt, (size_t)n_wrt, g2), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < n_wrt; i++) {
        assert_same_bytes(tg_tensor_data_const(g1[i]), tg_tensor_data_const(g2[i]),
                          tg_tensor_numel(g1[i]) * (p.dt == TG_F64 ? 8 : 4), "tg_grad", i, seed);
        tg_tensor_free(g1[i]);
        tg_tensor_free(g2[i]);
    }
done:
    tg_tape_free(rt);
    tg_tape_free(ft);
    free_prog(&p);
}

/* TG_REPLAY_GRAPHS=N graphs (default 400), from TG_REPLAY_SEED (default 1). Every op of the
 * table is drawn over that many; the count of those that recorded is logged. */
Test(replay, random_graphs_bit_for_bit, .timeout = 300)
{
    const char *e = getenv("TG_REPLAY_GRAPHS"), *s = getenv("TG_REPLAY_SEED");
    const long graphs = e ? atol(e) : 400;
    const uint64_t seed0 = s ? strtoull(s, NULL, 10) : 1;
    for (long g = 0; g < graphs; g++)
        check_prog(seed0 + (uint64_t)g);
    long total = 0, fewest = LONG_MAX;
    for (int op = 0; op < TG_OP_COUNT; op++) {
        total += seen[op];
        fewest = seen[op] < fewest ? seen[op] : fewest;
        if (graphs >= 200)
            cr_expect_gt(seen[op], 0, "no graph applied %s", tg_op_name((tg_op)op));
    }
    cr_log_info("%ld graphs, %ld steps, every op applied at least %ld times", graphs, total,
                fewest);
}

/* ---- the cases around it ------------------------------------------------------------------ */

/* Views share the leaf's (new) data; a constant keeps its recorded values.
 * y = sum(reshape(x) * c) + sum(detach(x)), c = [1, 2] broadcast over reshape(x)'s rows. */
Test(replay, views_and_constants)
{
    tg_tensor *x = ts_mat(TG_F64, 2, 2, TS_VALS(1, 2, 3, 4), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *r = tg_reshape(tape, x, 2, TS_SHAPE(1, 4));
    tg_tensor *c = tg_constant(tape, TG_F64, 1, TS_SHAPE(4), TS_VALS(1, 2, 1, 2));
    tg_tensor *d = tg_detach(tape, x);
    tg_tensor *y = tg_add(tape, tg_sum(tape, tg_mul(tape, r, c), TG_ALL_AXES, false),
                          tg_sum(tape, d, TG_ALL_AXES, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    ts_assert_values(y, TS_VALS(1 + 4 + 3 + 8 + 10), 1, 0, 0, "y at A");
    double *xv = tg_tensor_data(x);
    xv[0] = -1, xv[1] = 0.5, xv[2] = 7, xv[3] = 2;
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_data_const(r), tg_tensor_data_const(x), "reshape is a view of x");
    cr_assert_eq(tg_tensor_data_const(d), tg_tensor_data_const(x), "detach is a view of x");
    ts_assert_values(c, TS_VALS(1, 2, 1, 2), 4, 0, 0, "the constant");
    /* -1 + 1 + 7 + 4 = 11, plus the sum 8.5 */
    ts_assert_values(y, TS_VALS(19.5), 1, 0, 0, "y at B");
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    ts_assert_grad(x, TS_VALS(1, 2, 1, 2), 4, 0, 0, "dy/dx: c (detach passes none)");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A where in the graph is re-decided at every replay (unlike a branch in C): |x| as
 * where(x > 0, x, -x), recorded at x > 0 and replayed at x < 0. */
Test(replay, where_decides_again)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(2, 3), true);
    tg_tensor *zero = ts_scalar(TG_F64, 0, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *a = tg_where(tape, tg_gt(tape, x, zero), x, tg_neg(tape, x));
    tg_tensor *y = tg_sum(tape, a, TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    tg_tensor_set(x, 0, -5);
    tg_tensor_set(x, 1, 4);
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(a, TS_VALS(5, 4), 2, 0, 0, "|x|");
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    ts_assert_grad(x, TS_VALS(-1, 1), 2, 0, 0, "sign(x)");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(zero);
}

/* take judges its new indices: positions move, an index out of range or not an integer is
 * the tape's error, naming take and its node. y = sum(take(x, idx)^2), dy/dx_k = 2 x_k per
 * time k is taken. */
Test(replay, take_judges_new_indices)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(10, 20, 30), true);
    tg_tensor *idx = ts_vec(TG_F64, 2, TS_VALS(0, 2), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *t = tg_take(tape, x, idx, 0);
    tg_tensor *y = tg_sum(tape, tg_square(tape, t), TG_ALL_AXES, false);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    tg_tensor_set(idx, 0, 2);
    tg_tensor_set(idx, 1, -3); /* = 0 */
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(t, TS_VALS(30, 10), 2, 0, 0, "taken");
    tg_tensor *g;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK);
    ts_assert_values(g, TS_VALS(20, 0, 60), 3, 0, 0, "dy/dx");
    tg_tensor_free(g);
    tg_tensor_set(idx, 1, 3);
    cr_assert_eq(tg_tape_replay(tape), TG_ESHAPE);
    cr_assert_eq(tg_tape_status(tape), TG_ESHAPE, "kept on the tape");
    ts_assert_has(tg_tape_error(tape), "replay: take: idx element 1 is 3, out of range");
    ts_assert_has(tg_tape_error(tape), "(node 0)");
    cr_assert_eq(tg_tape_replay(tape), TG_ESHAPE, "a tape with an error is refused");
    ts_assert_has(tg_last_error(), "the tape has an error");
    /* after a reset and a new recording: a fractional index is TG_EINVAL */
    tg_tape_reset(tape);
    tg_tensor_set(idx, 1, 1);
    cr_assert_not_null(tg_take(tape, x, idx, 0));
    tg_tensor_set(idx, 1, 0.5);
    cr_assert_eq(tg_tape_replay(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "not an integer index");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(idx);
}

/* take's gradient graph reads the index tensor, so a replay at new indices moves it too (tape.h):
 * y = sum(take(x, idx)^2), g = dy/dx = 2 x_k at each pick of k, recorded; then idx changes. */
Test(replay, take_gradient_graph_follows_new_indices)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(10, 20, 30), true);
    tg_tensor *idx = ts_vec(TG_F64, 2, TS_VALS(0, 0), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_square(tape, tg_take(tape, x, idx, 0)), TG_ALL_AXES, false);
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad_graph(tape, y, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    ts_assert_values(g, TS_VALS(40, 0, 0), 3, 0, 0, "dy/dx, idx [0, 0]");
    tg_tensor_set(idx, 0, 2);
    tg_tensor_set(idx, 1, -2); /* = 1 */
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(g, TS_VALS(0, 40, 60), 3, 0, 0, "dy/dx, idx [2, -2]");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(idx);
}

/* y = sqrt(x) elementwise as a custom op that fails on a negative input. */
static tg_status sqrt_forward(const tg_custom_call *call)
{
    const size_t n = tg_tensor_numel(call->in[0]);
    ++*(int *)call->user;
    for (size_t i = 0; i < n; i++) {
        double v = tg_tensor_get(call->in[0], i);
        if (v < 0) {
            snprintf(call->msg, call->msg_size, "element %zu is negative (%g)", i, v);
            return TG_EINVAL;
        }
        ((double *)call->y)[i] = sqrt(v);
    }
    return TG_OK;
}

/* Custom ops call their forward again; its failure is the tape's error. */
Test(replay, custom_forward_runs_again_and_may_fail)
{
    static const tg_custom_op op = {.name = "checked_sqrt", .forward = sqrt_forward};
    int calls = 0;
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(4, 9), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_custom(tape, &op, &calls, &x, 1, 1, TS_SHAPE(2));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    tg_tensor_set(x, 0, 16);
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    cr_assert_eq(calls, 2);
    ts_assert_values(y, TS_VALS(4, 3), 2, 0, 0, "sqrt at B");
    tg_tensor_set(x, 1, -1);
    cr_assert_eq(tg_tape_replay(tape), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "checked_sqrt: forward: element 1 is negative (-1)");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Anomaly mode checks replayed values: log of a now negative input. */
Test(replay, anomaly_mode_checks_replayed_values)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_log(tape, x), TG_ALL_AXES, false);
    cr_assert_not_null(y);
    tg_tape_set_anomaly(tape, true);
    cr_assert_eq(tg_tape_replay(tape), TG_OK);
    tg_tensor_set(x, 1, -2);
    cr_assert_eq(tg_tape_replay(tape), TG_ENUMERIC);
    ts_assert_has(tg_tape_error(tape), "anomaly: log produced NaN or Inf at node 0");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* After a replay no node keeps the gradient of the pass before; leaf grads accumulate.
 * y = sum(x^2): dy/dx = 2x. */
Test(replay, old_gradients_do_not_leak)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *sq = tg_square(tape, x);
    tg_tensor *y = tg_sum(tape, sq, TG_ALL_AXES, false);
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    cr_assert_not_null(tg_tensor_grad_data(sq));
    tg_tensor_set(x, 0, 3);
    tg_tensor_set(x, 1, -1);
    cr_assert_eq(tg_tape_replay(tape), TG_OK);
    cr_assert_null(tg_tensor_grad_data(sq), "the gradient of the pass before the replay");
    cr_assert_null(tg_tensor_grad_data(y));
    tg_tensor *g;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK);
    ts_assert_values(g, TS_VALS(6, -2), 2, 0, 0, "tg_grad at B alone");
    tg_tensor_free(g);
    ts_assert_grad(x, TS_VALS(2, 4), 2, 0, 0, "tg_grad leaves x's grad alone");
    cr_assert_eq(tg_backward(tape, y), TG_OK);
    ts_assert_grad(x, TS_VALS(2 + 6, 4 - 2), 2, 0, 0, "accumulated over A and B");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* What replay refuses, leaving the tape as it was: a leaf of another shape or dtype (here
 * made so in place, as a leaf freed and another allocated at its address would look), a
 * leaf whose requires_grad changed; a reset tape, an empty one, NULL. */
Test(replay, refuses_what_it_can_see)
{
    tg_tensor *x = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *w = ts_vec(TG_F64, 2, TS_VALS(3, 4), true);
    cr_assert_eq(tg_tensor_set_name(w, "w"), TG_OK);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_tape_replay(tape), TG_EINVAL);
    ts_assert_has(tg_last_error(), "nothing is recorded");
    cr_assert_eq(tg_tape_replay(NULL), TG_EINVAL);
    tg_tensor *y = tg_sum(tape, tg_mul(tape, x, w), TG_ALL_AXES, false);
    cr_assert_not_null(y);

    w->shape[0] = 1; /* numel is left alone: only the check reads the shape */
    cr_assert_eq(tg_tape_replay(tape), TG_ESHAPE);
    ts_assert_has(tg_last_error(), "replay: leaf 1 ('w') had shape [2] when recorded and has [1]");
    w->shape[0] = 2;
    x->dtype = TG_F32;
    cr_assert_eq(tg_tape_replay(tape), TG_EDTYPE);
    ts_assert_has(tg_last_error(), "replay: leaf 0 was f64 when recorded and is f32 now");
    x->dtype = TG_F64;
    cr_assert_eq(tg_tensor_set_requires_grad(x, false), TG_OK);
    cr_assert_eq(tg_tape_replay(tape), TG_ESTALE);
    ts_assert_has(tg_last_error(),
                  "replay: leaf 0 of the recording, [2], required grad when recorded and "
                  "does not now");
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);
    cr_assert_eq(tg_tape_status(tape), TG_OK, "refusals leave the tape alone");
    tg_tensor_set(x, 0, 5);
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(y, TS_VALS(5 * 3 + 2 * 4), 1, 0, 0, "y");

    tg_tape_reset(tape);
    cr_assert_eq(tg_tape_replay(tape), TG_ESTALE);
    ts_assert_has(tg_last_error(), "reset since its last recording");
    cr_assert_eq(tg_backward(tape, y), TG_ESTALE, "the old output is stale, as after any reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
}

/* Replay leaves the plan alone: recordings after replays still come from the plan (nodes
 * TG_TF_PLANNED), and everything matches a fresh tape bit for bit. */
static tg_tensor *mlp(tg_tape *tape, tg_tensor *x, tg_tensor *W, tg_tensor *t)
{
    tg_tensor *o = tg_tanh(tape, tg_matmul(tape, x, W));
    return tg_sum(tape, tg_square(tape, tg_sub(tape, o, t)), TG_ALL_AXES, false);
}

Test(replay, plan_survives)
{
    tg_tensor *x = ts_mat(TG_F64, 1, 2, TS_VALS(0.1, 0.2), false);
    tg_tensor *W = ts_mat(TG_F64, 2, 2, TS_VALS(0.3, 0.4, 0.25, 0.35), true);
    tg_tensor *t = ts_mat(TG_F64, 1, 2, TS_VALS(0.4, 0.6), false);
    tg_tape *tape = tg_tape_new(), *fresh = tg_tape_new();
    for (int round = 0; round < 6; round++) {
        tg_tensor *E = mlp(tape, x, W, t);
        cr_assert_not_null(E);
        if (round >= 2)
            for (size_t i = 0; i < tg_tape_size(tape); i++)
                cr_assert(tg_tape_node(tape, i)->flags & TG_TF_PLANNED, "round %d node %zu", round,
                          i);
        for (int k = 0; k < 3; k++) { /* replays at moved inputs */
            tg_tensor_set(x, 0, 0.1 * round + 0.05 * k);
            cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
            tg_tensor *F = mlp(fresh, x, W, t);
            cr_assert(!memcmp(tg_tensor_data(E), tg_tensor_data(F), 8), "round %d replay %d", round,
                      k);
            tg_tape_reset(fresh);
        }
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    tg_tape_free(fresh);
    tg_tensor_free(x);
    tg_tensor_free(W);
    tg_tensor_free(t);
}

/* Nodes tg_grad_graph recorded are replayed too: the gradient of f = sum(x^2 y / (x + y)),
 * df/dx = xy(x + 2y)/(x + y)^2, df/dy = x^3/(x + y)^2 (by hand: quotient rule), is re-evaluated
 * at the new point, and its own gradient (second derivatives) equals a fresh recording's. */
static void second_order(tg_tape *tape, tg_tensor *x, tg_tensor *y, tg_tensor **g, tg_tensor **s)
{
    tg_tensor *f =
        tg_sum(tape, tg_div(tape, tg_mul(tape, tg_mul(tape, x, x), y), tg_add(tape, x, y)),
               TG_ALL_AXES, false);
    tg_tensor *xs[2] = {x, y};
    cr_assert_eq(tg_grad_graph(tape, f, xs, 2, NULL, g), TG_OK, "%s", tg_last_error());
    *s = tg_sum(tape, g[0], TG_ALL_AXES, false);
}

Test(replay, second_derivatives)
{
    tg_tensor *x = ts_vec(TG_F64, 3, TS_VALS(1, 2, 3), true);
    tg_tensor *y = ts_vec(TG_F64, 3, TS_VALS(0.5, -1.5, 2), true);
    tg_tape *tape = tg_tape_new(), *fresh = tg_tape_new();
    tg_tensor *g[2], *s, *fg[2], *fs, *xs[2] = {x, y}, *h[2], *fh[2];
    second_order(tape, x, y, g, &s);
    cr_assert_eq(tg_grad(tape, s, xs, 2, h), TG_OK);
    tg_tensor_free(h[0]);
    tg_tensor_free(h[1]);
    const double bx[3] = {0.7, 3, -2}, by[3] = {1.1, 0.25, -0.5};
    for (int i = 0; i < 3; i++) {
        tg_tensor_set(x, (size_t)i, bx[i]);
        tg_tensor_set(y, (size_t)i, by[i]);
    }
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < 3; i++) {
        double a = bx[i], b = by[i], q = (a + b) * (a + b);
        ts_assert_close(tg_tensor_get(g[0], (size_t)i), a * b * (a + 2 * b) / q, 0, 1e-14,
                        "df/dx[%d]", i);
        ts_assert_close(tg_tensor_get(g[1], (size_t)i), a * a * a / q, 0, 1e-14, "df/dy[%d]", i);
    }
    second_order(fresh, x, y, fg, &fs);
    cr_assert_eq(tg_grad(tape, s, xs, 2, h), TG_OK);
    cr_assert_eq(tg_grad(fresh, fs, xs, 2, fh), TG_OK);
    for (int k = 0; k < 2; k++) {
        cr_assert(!memcmp(tg_tensor_data(g[k]), tg_tensor_data(fg[k]), 3 * 8), "g[%d]", k);
        cr_assert(!memcmp(tg_tensor_data(h[k]), tg_tensor_data(fh[k]), 3 * 8), "h[%d]", k);
        tg_tensor_free(h[k]);
        tg_tensor_free(fh[k]);
    }
    tg_tape_free(tape);
    tg_tape_free(fresh);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* A loop of replays, backward and tg_grad holds its memory: the arena's capacity after the
 * second round is its capacity after the thousandth, with a sum long enough to take scratch
 * for partial sums on two threads. (The second round may still grow it once: the first
 * replay's scratch can need a new block past the gradients backward added, and the arena's
 * blocks double.) */
Test(replay, memory_stays_put)
{
    cr_assert_eq(tg_set_num_threads(2), TG_OK);
    const size_t n = 1 << 17;
    tg_tensor *x = tg_tensor_full(TG_F64, 1, &n, 0.5);
    cr_assert_not_null(x);
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sum(tape, tg_square(tape, x), TG_ALL_AXES, false);
    cr_assert_not_null(y);
    size_t cap = 0;
    for (int i = 0; i < 1000; i++) {
        tg_tensor_set(x, 0, i);
        cr_assert_eq(tg_tape_replay(tape), TG_OK);
        cr_assert_eq(tg_backward(tape, y), TG_OK);
        tg_tensor *g;
        cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK);
        tg_tensor_free(g);
        if (i == 1)
            cap = tg_tape_arena_capacity(tape);
    }
    ts_assert_values(y, TS_VALS(999.0 * 999 + 0.25 * (double)(n - 1)), 1, 0, 0, "y");
    cr_assert_eq(tg_tape_arena_capacity(tape), cap, "%zu bytes, %zu after the second round",
                 tg_tape_arena_capacity(tape), cap);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* A result without elements is not computed at a replay, as at its recording: permute's and
 * concat's loops over the other axes (7 * 2^40 and 2^40 positions here) would run for hours.
 * The values are the recording's (none), and the gradients zeros. */
Test(replay, empty_results_are_not_computed, .timeout = 30)
{
    const size_t zero = 0, big = (size_t)1 << 40;
    tg_tensor *x = tg_tensor_zeros(TG_F64, 1, &zero);
    cr_assert_not_null(x);
    cr_assert_eq(tg_tensor_set_requires_grad(x, true), TG_OK);
    tg_tape *tape = tg_tape_new();
    tg_tensor *p =
        tg_permute(tape, tg_reshape(tape, x, 3, TS_SHAPE(big, 0, 7)), (const int[]){2, 0, 1});
    tg_tensor *r = tg_reshape(tape, x, 2, TS_SHAPE(big, 0));
    tg_tensor *c = tg_concat(tape, (tg_tensor *const[]){r, r}, 2, 1);
    tg_tensor *y =
        tg_add(tape, tg_sum(tape, p, TG_ALL_AXES, false), tg_sum(tape, c, TG_ALL_AXES, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
    ts_assert_values(y, TS_VALS(0), 1, 0, 0, "y");
    tg_tensor *g;
    cr_assert_eq(tg_grad(tape, y, &x, 1, &g), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_numel(g), 0);
    tg_tensor_free(g);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* y = in[0] + ... + in[n-1], elementwise f64: a custom op of any number of inputs. */
static tg_status sum_n_forward(const tg_custom_call *call)
{
    double *y = call->y;
    for (size_t i = 0; i < call->n; i++)
        for (size_t k = 0; k < tg_tensor_numel(call->out); k++)
            y[k] += tg_tensor_get(call->in[i], k);
    return TG_OK;
}

static tg_status sum_n_vjp(const tg_custom_call *call)
{
    for (size_t i = 0; i < call->n; i++)
        for (size_t k = 0; call->dx[i] && k < tg_tensor_numel(call->out); k++)
            ((double *)call->dx[i])[k] += ((const double *)call->dy)[k];
    return TG_OK;
}

/* The VJPs that take scratch give it back: prod's suffix products, and a custom op's table of
 * gradient pointers when it has more inputs than fit on the stack (nine here). Without that,
 * every backward pass after a replay grew the arena. */
Test(replay, memory_stays_put_with_scratch_in_vjps)
{
    static const tg_custom_op op = {.name = "sum_n", .forward = sum_n_forward, .vjp = sum_n_vjp};
    tg_tensor *x = ts_mat(TG_F64, 2, 3, TS_VALS(1, 2, 3, 4, 5, 6), true);
    tg_tensor *ins[9];
    for (int i = 0; i < 9; i++)
        ins[i] = x;
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_add(
        tape, tg_sum(tape, tg_prod(tape, x, 1, false), TG_ALL_AXES, false),
        tg_sum(tape, tg_custom(tape, &op, NULL, ins, 9, 2, TS_SHAPE(2, 3)), TG_ALL_AXES, false));
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    size_t cap = 0;
    for (int i = 0; i < 2000; i++) {
        tg_tensor_set(x, 0, i);
        cr_assert_eq(tg_tape_replay(tape), TG_OK, "%s", tg_last_error());
        tg_tensor_zero_grad(x);
        cr_assert_eq(tg_backward(tape, y), TG_OK, "%s", tg_last_error());
        if (i == 1)
            cap = tg_tape_arena_capacity(tape);
    }
    /* y = 1999 * 2 * 3 + 4 * 5 * 6 + 9 * (1999 + 2 + ... + 6); dy/dx0 = 2 * 3 + 9 */
    ts_assert_values(y, TS_VALS(1999.0 * 6 + 120 + 9 * (1999.0 + 20)), 1, 0, 0, "y");
    ts_assert_grad(x, TS_VALS(6 + 9, 1999.0 * 3 + 9, 1999.0 * 2 + 9, 30 + 9, 24 + 9, 20 + 9), 6, 0,
                   0, "dy/dx");
    cr_assert_eq(tg_tape_arena_capacity(tape), cap, "%zu bytes, %zu after the second round",
                 tg_tape_arena_capacity(tape), cap);
    tg_tape_free(tape);
    tg_tensor_free(x);
}
