/* test_plan.c: plan reuse (src/tape/record.h). A tape that records the same graph as two
 * resets ago takes every node's shape from the header that node had then; these tests check
 * that it does (nodes carry TG_TF_PLANNED), that it gives bit for bit what a fresh tape gives,
 * and that any change of structure (op, shape, axis, dtype, a leaf replaced, nodes inserted)
 * falls back to the general path and still gives the right answer. Tapes on several threads
 * that share leaves find them each through its own index, and never mix up their slots. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor_impl.h" /* TG_TF_PLANNED */

#include "support/alloc.h"
#include "support/helpers.h"

/* The structure of one step's graph; c is a value, not structure. */
typedef struct knobs {
    int batch;   /* rows of x: 1..3 */
    bool tanh_h; /* hidden activation: tanh, else sigmoid */
    bool extra;  /* an extra node in the middle (shifts every later index) */
    int axis;    /* reduction axis of the loss: TG_ALL_AXES, 0, 1 or -1 */
    bool keepdim;
    bool f32; /* the whole graph in f32 */
    double c; /* the loss scale */
} knobs;

static bool same_structure(knobs a, knobs b)
{
    return a.batch == b.batch && a.tanh_h == b.tanh_h && a.extra == b.extra && a.axis == b.axis &&
           a.keepdim == b.keepdim && a.f32 == b.f32;
}

/* Parameters of both dtypes and the data buffer x wraps. */
typedef struct net {
    tg_tensor *W1[2], *b1[2], *W2[2]; /* [0] f64, [1] f32 */
    double xbuf64[6];
    float xbuf32[6];
} net;

static void net_init(net *n)
{
    const size_t s22[2] = {2, 2}, s2[1] = {2};
    const double w1[4] = {0.3, 0.4, 0.25, 0.35}, w2[4] = {0.45, 0.7, 0.4, 0.6};
    const double b1[2] = {0.05, -0.1};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        n->W1[d] = ts_leaf(dt, 2, s22, w1, true);
        n->b1[d] = ts_leaf(dt, 1, s2, b1, true);
        n->W2[d] = ts_leaf(dt, 2, s22, w2, true);
    }
    for (int i = 0; i < 6; i++) {
        n->xbuf64[i] = 0.1 * (i + 1) - 0.25;
        n->xbuf32[i] = (float)n->xbuf64[i];
    }
}

static void net_free(net *n)
{
    for (int d = 0; d < 2; d++) {
        tg_tensor_free(n->W1[d]);
        tg_tensor_free(n->b1[d]);
        tg_tensor_free(n->W2[d]);
    }
}

/* x wraps the same buffer whatever the batch, so freeing it and wrapping again with another
 * shape tends to give the same address: a leaf replaced under the plan's feet. */
static tg_tensor *wrap_x(net *n, knobs k)
{
    const size_t shape[2] = {(size_t)k.batch, 2};
    tg_tensor *x = k.f32 ? tg_tensor_wrap(TG_F32, 2, shape, n->xbuf32)
                         : tg_tensor_wrap(TG_F64, 2, shape, n->xbuf64);
    cr_assert_not_null(x, "%s", tg_last_error());
    return x;
}

/* Records the step's graph; returns the scalar loss (NULL on error). */
static tg_tensor *record(tg_tape *tape, net *n, tg_tensor *x, knobs k)
{
    int d = k.f32;
    tg_dtype dt = d ? TG_F32 : TG_F64;
    tg_tensor *z = tg_add(tape, tg_matmul(tape, x, n->W1[d]), n->b1[d]);
    tg_tensor *h = k.tanh_h ? tg_tanh(tape, z) : tg_sigmoid(tape, z);
    if (k.extra)
        h = tg_mul(tape, h, tg_add_scalar(tape, h, 1.0));
    tg_tensor *o = tg_sigmoid(tape, tg_matmul(tape, h, n->W2[d]));
    double tv[6] = {0.4, 0.6, 0.1, 0.9, 0.5, 0.5};
    const size_t ts[2] = {(size_t)k.batch, 2};
    tg_tensor *t;
    if (k.f32) {
        float tf[6];
        for (int i = 0; i < 6; i++)
            tf[i] = (float)tv[i];
        t = tg_constant(tape, dt, 2, ts, tf);
    } else {
        t = tg_constant(tape, dt, 2, ts, tv);
    }
    tg_tensor *e = tg_sum(tape, tg_square(tape, tg_sub(tape, t, o)), k.axis, k.keepdim);
    return tg_sum(tape, tg_scale(tape, e, k.c), TG_ALL_AXES, false);
}

typedef struct result {
    double loss;
    double grads[3][4]; /* W1, b1, W2 */
    uint64_t fingerprint;
    size_t nodes, planned;
} result;

/* One step on `tape`: record, backward, collect, zero the grads, reset. */
static result step(tg_tape *tape, net *n, tg_tensor *x, knobs k)
{
    result r;
    memset(&r, 0, sizeof r);
    tg_tensor *loss = record(tape, n, x, k);
    cr_assert_not_null(loss, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_backward(tape, loss), TG_OK, "%s", tg_last_error());
    r.loss = tg_tensor_item(loss);
    tg_tensor *ps[3] = {n->W1[k.f32], n->b1[k.f32], n->W2[k.f32]};
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < tg_tensor_numel(ps[p]); i++)
            r.grads[p][i] = tg_tensor_grad_get(ps[p], i);
        tg_tensor_zero_grad(ps[p]);
    }
    r.fingerprint = tg_tape_fingerprint(tape);
    r.nodes = tg_tape_size(tape);
    for (size_t i = 0; i < r.nodes; i++)
        r.planned += (tg_tape_node(tape, i)->flags & TG_TF_PLANNED) != 0;
    return r;
}

static void assert_same_result(result got, result want, int s)
{
    /* The same arithmetic in the same order: equal to the bit, not just close. */
    cr_assert(memcmp(&got.loss, &want.loss, sizeof got.loss) == 0, "step %d: loss %.17g vs %.17g",
              s, got.loss, want.loss);
    cr_assert(memcmp(got.grads, want.grads, sizeof got.grads) == 0, "step %d: gradients differ", s);
    cr_assert_eq(got.fingerprint, want.fingerprint, "step %d: fingerprints differ", s);
    cr_assert_eq(got.nodes, want.nodes, "step %d", s);
}

/* Replaces *x when the knobs need another shape or dtype (freeing the old one first). */
static void refresh_x(net *n, tg_tensor **x, knobs *xk, knobs k)
{
    if (!*x || xk->batch != k.batch || xk->f32 != k.f32) {
        tg_tensor_free(*x);
        *x = wrap_x(n, k);
        *xk = k;
    }
}

/* Runs the schedule on fresh tapes (which have no plan), then on one long-lived tape, and
 * compares step by step. */
static void run(const knobs *schedule, int steps)
{
    net n;
    net_init(&n);
    result *want = calloc((size_t)steps, sizeof *want);
    cr_assert_not_null(want);
    tg_tensor *x = NULL;
    knobs xk = {0};
    for (int s = 0; s < steps; s++) {
        refresh_x(&n, &x, &xk, schedule[s]);
        tg_tape *fresh = tg_tape_new();
        cr_assert_not_null(fresh);
        want[s] = step(fresh, &n, x, schedule[s]);
        cr_assert_eq(want[s].planned, 0, "a fresh tape has no plan");
        tg_tape_free(fresh);
    }
    tg_tensor_free(x);
    x = NULL;

    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *prev = NULL; /* a node of the previous recording: stale after each reset */
    for (int s = 0; s < steps; s++) {
        knobs k = schedule[s];
        refresh_x(&n, &x, &xk, k);
        if (prev) {
            cr_assert_null(tg_tensor_data(prev), "step %d: stale node readable", s);
            cr_assert_eq(tg_last_status(), TG_ESTALE);
        }
        result got = step(tape, &n, x, k);
        assert_same_result(got, want[s], s);
        bool repeat = s >= 2 && same_structure(k, schedule[s - 2]);
        if (repeat)
            cr_assert_eq(got.planned, got.nodes, "step %d: %zu of %zu nodes from the plan", s,
                         got.planned, got.nodes);
        else
            cr_assert_lt(got.planned, got.nodes, "step %d: changed, yet all nodes planned", s);
        if (s >= 2)
            cr_assert_eq(got.fingerprint == want[s - 2].fingerprint, repeat,
                         "step %d: fingerprint equality should follow structure", s);
        prev = tg_tape_node(tape, got.nodes / 2);
        tg_tape_reset(tape);
        if (prev) {
            cr_assert_null(tg_tensor_data(prev), "step %d: stale node readable", s);
            cr_assert_eq(tg_last_status(), TG_ESTALE);
        }
    }
    tg_tensor_free(x);
    tg_tape_free(tape);
    net_free(&n);
    free(want);
}

static const knobs base = {1, false, false, TG_ALL_AXES, false, false, 0.5};

Test(plan, repeated_graph_is_planned_from_the_third_recording)
{
    knobs sched[8];
    for (int s = 0; s < 8; s++) {
        sched[s] = base;
        sched[s].c = 0.5 + 0.125 * s; /* a constant is not structure: still planned */
    }
    run(sched, 8);
}

Test(plan, each_kind_of_change_after_identical_steps)
{
    /* Six identical steps, then one change, then back; for every kind of change. */
    knobs changes[7];
    for (int i = 0; i < 7; i++)
        changes[i] = base;
    changes[0].batch = 3;      /* a leaf of another shape (same buffer, likely same address) */
    changes[1].tanh_h = true;  /* another op */
    changes[2].extra = true;   /* nodes inserted: every later index shifts */
    changes[3].axis = 1;       /* another axis */
    changes[4].keepdim = true; /* keepdim */
    changes[5].f32 = true;     /* another dtype, other leaves */
    changes[6].axis = 0;
    for (int c = 0; c < 7; c++) {
        knobs sched[12];
        for (int s = 0; s < 12; s++)
            sched[s] = base;
        sched[6] = changes[c];
        sched[7] = changes[c];
        run(sched, 12);
    }
}

Test(plan, negative_axis_is_planned_like_its_normal_form)
{
    knobs sched[6];
    for (int s = 0; s < 6; s++) {
        sched[s] = base;
        sched[s].batch = 2;
        sched[s].axis = s % 2 ? -1 : 1; /* the same axis, written two ways */
    }
    run(sched, 6);
}

/* A pseudo-random walk over structures: every step compared with a fresh tape. */
Test(plan, random_schedule)
{
    enum { STEPS = 120 };
    knobs sched[STEPS];
    uint64_t r = 0x9e3779b97f4a7c15u;
    knobs k = base;
    for (int s = 0; s < STEPS; s++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        switch (r % 11) { /* mostly repeats, sometimes one knob changes */
        case 0: k.batch = 1 + (int)((r >> 8) % 3); break;
        case 1: k.tanh_h = !k.tanh_h; break;
        case 2: k.extra = !k.extra; break;
        case 3: k.axis = (int[]){TG_ALL_AXES, 0, 1, -1}[(r >> 8) % 4]; break;
        case 4: k.keepdim = !k.keepdim; break;
        case 5: k.f32 = !k.f32; break;
        default: break;
        }
        k.c = 0.25 + (double)((r >> 16) % 8) / 8;
        sched[s] = k;
    }
    run(sched, STEPS);
}

Test(plan, stale_input_still_detected_when_the_plan_matches)
{
    net n;
    net_init(&n);
    knobs k = base;
    tg_tensor *x = wrap_x(&n, k);
    tg_tape *tape = tg_tape_new();
    tg_tensor *old = NULL;
    for (int s = 0; s < 5; s++) {
        tg_tensor *loss = record(tape, &n, x, k);
        cr_assert_not_null(loss);
        old = tg_tape_node(tape, 1);
        tg_tape_reset(tape);
    }
    /* The same graph again, but one op fed a node of the previous recording. */
    tg_tensor *z = tg_matmul(tape, x, n.W1[0]);
    cr_assert_not_null(z);
    cr_assert(tg_tape_node(tape, 0)->flags & TG_TF_PLANNED);
    cr_assert_null(tg_add(tape, z, old));
    cr_assert_eq(tg_tape_status(tape), TG_ESTALE);
    ts_assert_has(tg_tape_error(tape), "before the tape was reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
    net_free(&n);
}

Test(plan, same_graph_from_another_tape_is_not_confused)
{
    /* Two tapes recording the same graph alternately: each keeps its own plan, and a node of
     * one is refused by the other. */
    net n;
    net_init(&n);
    knobs k = base;
    tg_tensor *x = wrap_x(&n, k);
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    for (int s = 0; s < 6; s++) {
        result a = step(t1, &n, x, k);
        result b = step(t2, &n, x, k);
        assert_same_result(a, b, s);
        cr_assert_eq(a.planned, s >= 2 ? a.nodes : 0);
        cr_assert_eq(b.planned, s >= 2 ? b.nodes : 0);
        tg_tape_reset(t1);
        tg_tape_reset(t2);
    }
    tg_tensor *z = tg_matmul(t1, x, n.W1[0]);
    cr_assert_null(tg_sigmoid(t2, z));
    cr_assert_eq(tg_tape_status(t2), TG_EINVAL);
    tg_tape_free(t1);
    tg_tape_free(t2);
    tg_tensor_free(x);
    net_free(&n);
}

/* y = b * b, with b = [1, 2, 3], recorded on tape from its general path (not the plan). */
static void assert_new_square_of_123(tg_tape *tape, tg_tensor *b)
{
    tg_tensor *y = tg_mul(tape, b, b);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert_eq(tg_tensor_numel(y), 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(tg_tensor_get(y, i), (double)((i + 1) * (i + 1)));
    cr_assert_eq(y->flags & TG_TF_PLANNED, 0);
}

/* y = b * b, with b = [1, 2], recorded on tape from its general path (not the plan). */
static void assert_product_of_12(tg_tape *tape, tg_tensor *b)
{
    tg_tensor *y = tg_mul(tape, b, b);
    cr_assert_not_null(y, "%s", tg_tape_error(tape));
    cr_assert(tg_tensor_rank(y) == 1 && tg_tensor_dim(y, 0) == 2);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(tg_tensor_get(y, i), (double)((i + 1) * (i + 1)));
    cr_assert_eq(y->flags & TG_TF_PLANNED, 0);
}

Test(plan, a_leaf_planned_on_another_tape_is_new_where_a_freed_leaf_had_its_address)
{
    /* Tape t1's plan holds two products of leaf a, which is then freed; leaf b, of another
     * shape, gets a's address and is planned on tape t2 meanwhile. On t1, b is a new leaf (its
     * plan's slot held a, not b), so its products take b's shape, not the one the plan's headers
     * hold: when b is first used on t1, and again after a use on t2 in between. A leaf's planned
     * bit follows its registration, tape by tape. */
    tg_tape *t1 = tg_tape_new(), *t2 = tg_tape_new();
    cr_assert(t1 && t2);
    tg_tensor *a = ts_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
    for (int s = 0; s < 2; s++) { /* the next recording of t1 has this one as its plan */
        cr_assert_not_null(tg_mul(t1, a, a));
        cr_assert_not_null(tg_mul(t1, a, a));
        tg_tape_reset(t1);
    }
    void *freed = a;
    tg_tensor_free(a);
    tg_tensor *b = NULL, *misses[64];
    int n_misses = 0;
    while (n_misses < 64) { /* a leaf at the freed address, if the allocator gives it back */
        b = ts_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
        if ((void *)b == freed)
            break;
        misses[n_misses++] = b;
        b = NULL;
    }
    for (int i = 0; i < n_misses; i++)
        tg_tensor_free(misses[i]);
    if (!b) { /* AddressSanitizer keeps freed memory out of reuse */
        tg_tape_free(t1);
        tg_tape_free(t2);
        cr_skip_test("the allocator did not give the freed leaf's address back");
    }
    for (int s = 0; s < 3; s++) { /* planned on t2 from its third recording */
        tg_tensor *y = tg_mul(t2, b, b);
        cr_assert_not_null(y);
        cr_assert_eq((y->flags & TG_TF_PLANNED) != 0, s == 2);
        tg_tape_reset(t2);
    }
    assert_new_square_of_123(t1, b);
    tg_tensor *z = tg_mul(t2, b, b);
    cr_assert(z && (z->flags & TG_TF_PLANNED), "b is planned on t2");
    assert_new_square_of_123(t1, b);
    tg_tensor_free(b);
    tg_tape_free(t1);
    tg_tape_free(t2);
}

Test(plan, a_leaf_made_where_a_leaf_of_the_recording_was_freed_is_a_new_leaf)
{
    /* Leaf a, planned, is freed in the middle of a recording (no backward reads it: tape.h
     * allows that), and leaf b, of another shape, gets its address, as glibc's allocator gives
     * it. b is a new leaf of the recording, in a slot of its own: its product takes b's shape,
     * not the one the plan's header at that index (a's product) holds. */
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *a = ts_leaf(TG_F64, 1, TS_SHAPE(3), TS_VALS(1, 2, 3), false);
    for (int s = 0; s < 2; s++) { /* the next recording but one has this one as its plan */
        cr_assert_not_null(tg_mul(tape, a, a));
        cr_assert_not_null(tg_mul(tape, a, a));
        tg_tape_reset(tape);
    }
    tg_tensor *first = tg_mul(tape, a, a);
    cr_assert(first && (first->flags & TG_TF_PLANNED));
    void *freed = a;
    ts_alloc_reuse_next_free();
    tg_tensor_free(a);
    tg_tensor *b = ts_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
    cr_assert_eq((void *)b, freed, "b was to get a's address");
    assert_product_of_12(tape, b);
    cr_assert_eq(tg_tape_leaf_count(tape), 2, "b has a slot of its own");
    tg_tensor_free(b);
    tg_tape_free(tape);
    ts_alloc_uninstall();
}

Test(plan, a_slot_whose_address_held_two_leaves_of_the_plan_is_not_planned)
{
    /* In the plan's recording, leaf a ([1, 2]) is freed and b (the same values, shape [2,1])
     * takes its address, and the second node is b * b; then b is freed and a2 ([1, 2]) takes
     * the address. Slot 0 of the plan, a's, has a2's address and shape, but the second header
     * names b by that address: a2 * a2 takes a2's shape, not b's product's. */
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(tape);
    tg_tensor *a = ts_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
    cr_assert_not_null(tg_exp(tape, a)); /* registered in slot 0, then freed */
    void *addr = a;
    ts_alloc_reuse_next_free();
    tg_tensor_free(a);
    tg_tensor *b = ts_mat(TG_F64, 2, 1, TS_VALS(1, 2), false);
    cr_assert_eq((void *)b, addr, "b was to get a's address");
    cr_assert_not_null(tg_mul(tape, b, b));
    ts_alloc_reuse_next_free();
    tg_tensor_free(b);
    tg_tensor *a2 = ts_leaf(TG_F64, 1, TS_SHAPE(2), TS_VALS(1, 2), false);
    cr_assert_eq((void *)a2, addr, "a2 was to get the address");
    tg_tape_reset(tape);
    tg_tape_reset(tape);
    cr_assert_not_null(tg_exp(tape, a2));
    assert_product_of_12(tape, a2);
    tg_tensor_free(a2);
    tg_tape_free(tape);
    ts_alloc_uninstall();
}

/* ---- leaves shared by tapes on several threads ----------------------------------------------
 * Two threads, a tape each, share the leaf w (and x); thread 1 registers 15 other leaves
 * first, so w has another slot on each tape. Every iteration records again and asks tg_grad
 * (which writes no leaf) for dy/dw, y = sum((x + v_1 + ... + v_k) * w): x + sum(v) exactly,
 * whichever slots and generations the tapes are at. */

enum { SHARED_ITERS = 100000, SHARED_EXTRA = 15 };

typedef struct shared_leaves {
    tg_tensor *x, *w, *v[SHARED_EXTRA];
    int extra;  /* leaves before w: 0 on one thread, SHARED_EXTRA on the other */
    long wrong; /* iterations whose gradient was not x + sum(v) */
    int failed; /* iterations where a call failed */
} shared_leaves;

static void *use_shared_leaves(void *arg)
{
    shared_leaves *s = arg;
    tg_tape *tape = tg_tape_new();
    if (!tape) {
        s->failed++;
        return NULL;
    }
    for (int it = 0; it < SHARED_ITERS; it++) {
        tg_tape_reset(tape);
        tg_tensor *acc = s->x;
        for (int k = 0; k < s->extra; k++)
            acc = tg_add(tape, acc, s->v[k]);
        tg_tensor *y = tg_sum(tape, tg_mul(tape, acc, s->w), TG_ALL_AXES, false), *g = NULL;
        if (!y || tg_grad(tape, y, &s->w, 1, &g) != TG_OK) {
            s->failed++;
            continue;
        }
        for (size_t i = 0; i < 4; i++) /* x[i] = i + 1, every v[k][i] = 1 */
            s->wrong += tg_tensor_get(g, i) != (double)(i + 1 + (size_t)s->extra);
        tg_tensor_free(g);
    }
    tg_tape_free(tape);
    return NULL;
}

Test(plan, tapes_on_threads_share_leaves)
{
    const size_t n = 4;
    tg_tensor *x = ts_vec(TG_F64, n, TS_VALS(1, 2, 3, 4), false);
    tg_tensor *w = ts_vec(TG_F64, n, TS_VALS(1, 1, 1, 1), true);
    shared_leaves s[2] = {{.x = x, .w = w, .extra = 0}, {.x = x, .w = w, .extra = SHARED_EXTRA}};
    for (int k = 0; k < SHARED_EXTRA; k++)
        s[0].v[k] = s[1].v[k] = ts_vec(TG_F64, n, TS_VALS(1, 1, 1, 1), false);
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, use_shared_leaves, &s[t]), 0);
    for (int t = 0; t < 2; t++)
        cr_assert_eq(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < 2; t++) {
        cr_expect_eq(s[t].failed, 0, "thread %d: %d calls failed", t, s[t].failed);
        cr_expect_eq(s[t].wrong, 0, "thread %d: %ld wrong gradient entries", t, s[t].wrong);
    }
    for (int k = 0; k < SHARED_EXTRA; k++)
        tg_tensor_free(s[0].v[k]);
    tg_tensor_free(x);
    tg_tensor_free(w);
}
