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

#define MAX_LEAVES 4 /* leaves 0..2 are values, leaf 3 take's index */
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

static const tg_custom_op CUBE = {"cube", cube_forward, cube_vjp};
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
    if (op == TG_OP_TAKE)
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
    tg_tensor *g1[IDX_LEAF], *g2[IDX_LEAF];
    cr_assert_eq(tg_grad(ft, floss, p.leaves, IDX_LEAF, g1), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_grad(rt, rloss, p.leaves, IDX_LEAF, g2), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < IDX_LEAF; i++) {
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
