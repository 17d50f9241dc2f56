/* grad_graph.c: differentiable gradients (tg_grad_graph, tapegrad/diff.h). The walk is the
 * backward walk of tape.c, with each op's vjp_graph (its VJP written with op constructors) in
 * place of its in-place vjp: every gradient is a tensor recorded on the same tape, and
 * contributions to one input are summed with tg_add. The nodes the walk records come after y,
 * so the walk never visits them; the gradients it returns can be differentiated again. Also
 * the helpers the ops' vjp_graph functions share (op_impl.h). */
#include "ops/op_impl.h"

#include "tape/grad_inputs.h"
#include "tape/scratch.h"

#include <string.h>

/* ---- helpers of the vjp_graph functions ------------------------------------------------------ */

tg_tensor *tg_ops__sum_to(tg_tape *tape, tg_tensor *g, const tg_tensor *like)
{
    if (!g)
        return NULL;
    /* leading axes that like does not have: sum them away */
    while (g && g->rank > like->rank)
        g = tg_sum(tape, g, 0, false);
    /* axes where like has 1 and g more: sum them, keeping the axis */
    for (int a = 0; g && a < like->rank; a++)
        if (like->shape[a] == 1 && g->shape[a] != 1)
            g = tg_sum(tape, g, a, true);
    return g;
}

tg_tensor *tg_ops__unreduce(tg_tape *tape, tg_tensor *g, const tg_tensor *y)
{
    const tg_tensor *x = y->in[0];
    size_t kept[TG_MAX_RANK];
    for (int a = 0; a < x->rank; a++)
        kept[a] = y->attr.r.axis == TG_ALL_AXES || y->attr.r.axis == a ? 1 : x->shape[a];
    tg_tensor *k = tg_reshape(tape, g, x->rank, kept);
    return k ? GADD(tg_ops__zeros_like(tape, x), k) : NULL;
}

tg_tensor *tg_ops__constant_like(tg_tape *tape, const tg_tensor *like, const void *data)
{
    return tg_constant(tape, (tg_dtype)like->dtype, like->rank, like->shape, data);
}

/* ---- the walk ----------------------------------------------------------------------------------
 */

/* What the walk checks of y, seed and xs before recording anything: errors set on this thread
 * only, as tg_grad's, so a bad call leaves the tape as it was. */
static tg_status check_call(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                            tg_tensor *seed)
{
    if (!tape || !y)
        return tg__error(TG_EINVAL, "grad_graph: %s is NULL", tape ? "y" : "tape");
    if (tape->status != TG_OK)
        return tg__error(tape->status, "grad_graph: the tape has an error: %s", tape->error);
    tg_status st = tg_tensor__check_live(y, "grad_graph");
    if (st != TG_OK)
        return st;
    if (!(y->flags & TG_TF_LEAF) && y->tape != tape)
        return tg__error(TG_EINVAL, "grad_graph: y (node %u) belongs to another tape", y->index);
    if (!y->requires_grad)
        return tg_tape__output_untracked(tape, y, "grad_graph");
    char s1[96], s2[96];
    if (!seed && y->numel != 1)
        return tg__error(TG_EINVAL,
                         "grad_graph: y has shape %s, not a single element; pass a seed of "
                         "that shape",
                         tg_shape_format(s1, sizeof s1, y->rank, y->shape));
    if (seed) {
        if ((st = tg_tensor__check_live(seed, "grad_graph: seed")) != TG_OK)
            return st;
        if (!(seed->flags & TG_TF_LEAF) && seed->tape != tape)
            return tg__error(TG_EINVAL, "grad_graph: the seed belongs to another tape");
        if (seed->dtype != y->dtype)
            return tg__error(TG_EDTYPE, "grad_graph: seed dtype %s differs from y's %s",
                             tg_dtype_name((tg_dtype)seed->dtype),
                             tg_dtype_name((tg_dtype)y->dtype));
        if (seed->rank != y->rank || memcmp(seed->shape, y->shape, y->rank * sizeof(size_t)))
            return tg__error(TG_ESHAPE, "grad_graph: seed shape %s differs from y's %s",
                             tg_shape_format(s1, sizeof s1, seed->rank, seed->shape),
                             tg_shape_format(s2, sizeof s2, y->rank, y->shape));
    }
    if (n && (!xs))
        return tg__error(TG_EINVAL, "grad_graph: xs is NULL");
    for (size_t i = 0; i < n; i++) {
        if (!xs[i])
            return tg__error(TG_EINVAL, "grad_graph: xs[%zu] is NULL", i);
        if ((st = tg_tape__check_usable(tape, xs[i], "grad_graph", "xs", i)) != TG_OK)
            return st;
    }
    if (!(y->flags & TG_TF_LEAF) && (st = tg_tape__check_versions(tape, y, "grad_graph")) != TG_OK)
        return st;
    return tg_tape__check_grad_inputs(tape, y, xs, n, "grad_graph");
}

/* Where the walk keeps the gradient of t so far: a node of the walked part by its index, a
 * leaf by its slot; NULL for anything else (a leaf the recording never used). */
typedef struct walk {
    tg_tape *tape;
    size_t top;         /* nodes [0, top) are walked */
    tg_tensor **node_g; /* top entries */
    tg_tensor **leaf_g; /* n_leaves entries */
    size_t n_leaves;
} walk;

static tg_tensor **slot_of(const walk *w, const tg_tensor *t)
{
    if (t->flags & TG_TF_LEAF) {
        size_t s = tg_tape__leaf_slot(w->tape, t);
        return s < w->n_leaves ? &w->leaf_g[s] : NULL;
    }
    return t->index < w->top ? &w->node_g[t->index] : NULL;
}

/* Adds contribution g to input x's gradient (the first one is taken as it is). */
static tg_status accumulate(walk *w, const tg_tensor *y, int i, tg_tensor *x, tg_tensor *g)
{
    char s1[96], s2[96];
    if (g->dtype != x->dtype) { /* a custom op's vjp_graph may record any dtype */
        tg_tape__fail(w->tape, TG_EDTYPE,
                      "grad_graph: the VJP of %s (node %u) gave input %d a gradient of dtype %s, "
                      "not %s",
                      tg_node__op_name(y), y->index, i, tg_dtype_name((tg_dtype)g->dtype),
                      tg_dtype_name((tg_dtype)x->dtype));
        return TG_EDTYPE;
    }
    if (g->rank != x->rank || memcmp(g->shape, x->shape, x->rank * sizeof(size_t))) {
        tg_tape__fail(w->tape, TG_ESHAPE,
                      "grad_graph: the VJP of %s (node %u) gave input %d a gradient of shape %s, "
                      "not %s",
                      tg_node__op_name(y), y->index, i,
                      tg_shape_format(s1, sizeof s1, g->rank, g->shape),
                      tg_shape_format(s2, sizeof s2, x->rank, x->shape));
        return TG_ESHAPE;
    }
    tg_tensor **slot = slot_of(w, x);
    TG_ASSERT(slot != NULL);
    *slot = *slot ? tg_add(w->tape, *slot, g) : g;
    return *slot ? TG_OK : w->tape->status;
}

/* The seed as a tape tensor: ones of y's shape when none is given, and a leaf's copy (times 1,
 * exact for every value), so that no result is the caller's own tensor (for y among xs, or
 * through an op whose VJP passes dy on, x + c), which the caller may free before the results. */
static tg_tensor *seed_of(tg_tape *tape, tg_tensor *y, tg_tensor *seed)
{
    if (seed)
        return (seed->flags & TG_TF_LEAF) ? tg_scale(tape, seed, 1) : seed;
    const double one64 = 1.0;
    const float one32 = 1.0f;
    return tg_constant(tape, (tg_dtype)y->dtype, y->rank, y->shape,
                       y->dtype == TG_F64 ? (const void *)&one64 : (const void *)&one32);
}

/* Marks the nodes an op's recorded VJP made (from node `first` on) as steps of its formula
 * (TG_TF_GRAD_STEP), but for the gradients it passes back, dx[0 .. arity). */
static void mark_steps(tg_tape *tape, size_t first, tg_tensor *const *dx, int arity)
{
    for (size_t i = first; i < tape->n_nodes; i++)
        tape->nodes[i]->flags |= TG_TF_GRAD_STEP;
    for (int k = 0; k < arity; k++)
        if (dx[k] && dx[k]->tape == tape)
            dx[k]->flags &= (uint8_t)~TG_TF_GRAD_STEP;
}

tg_status tg_grad_graph(tg_tape *tape, tg_tensor *y, tg_tensor *const *xs, size_t n,
                        tg_tensor *seed, tg_tensor **out)
{
    if (n && !out)
        return tg__error(TG_EINVAL, "grad_graph: out is NULL");
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    tg_status st = check_call(tape, y, xs, n, seed);
    if (st != TG_OK)
        return st;
    walk w = {tape, (y->flags & TG_TF_LEAF) ? 0 : (size_t)y->index + 1, NULL, NULL, tape->n_leaves};
    w.node_g = tg_tape__scratch(tape, (w.top + 1) * sizeof *w.node_g, "grad_graph");
    w.leaf_g = tg_tape__scratch(tape, (w.n_leaves + 1) * sizeof *w.leaf_g, "grad_graph");
    tg_tensor *dy = w.node_g && w.leaf_g ? seed_of(tape, y, seed) : NULL;
    if (!dy)
        return tape->status;
    memset(w.node_g, 0, (w.top + 1) * sizeof *w.node_g);
    memset(w.leaf_g, 0, (w.n_leaves + 1) * sizeof *w.leaf_g);
    tg_tensor **ys = slot_of(&w, y);
    if (!ys) /* a leaf this recording never used: its own gradient is the seed */
        goto results;
    *ys = dy;
    for (size_t i = w.top; i-- > 0;) {
        tg_tensor *t = tape->nodes[i]; /* re-read: the walk's own nodes may move the array */
        tg_tensor *g = w.node_g[i];
        if (!g || !t->requires_grad || t->numel == 0) /* an empty result passes back nothing */
            continue;
        const tg_op_desc *d = tg_op__table[t->op];
        if (!d->vjp_graph) {
            tg_tape__fail(tape, TG_EINVAL,
                          "grad_graph: %s (node %u) has no differentiable VJP, so its gradient "
                          "cannot be recorded",
                          tg_node__op_name(t), t->index);
            return TG_EINVAL;
        }
        const int arity = tg_node__n_inputs(t);
        tg_tensor **dx = tg_tape__scratch(tape, (size_t)arity * sizeof *dx + 1, "grad_graph");
        if (!dx)
            return tape->status;
        memset(dx, 0, (size_t)arity * sizeof *dx);
        /* Anomaly mode checks what the op passes back, as backward does, not the steps of its
         * formula, which may pass through Inf on the way to a finite gradient (1 / (1 + x^2)
         * at x = 1e200, pow_tensor's test of where 1/a is finite): those are marked, and a
         * replay skips them too. */
        const size_t first = tape->n_nodes;
        const bool anomaly = tape->anomaly;
        tape->anomaly = false;
        st = d->vjp_graph(tape, t, g, dx);
        tape->anomaly = anomaly;
        if (st != TG_OK || (st = tape->status) != TG_OK)
            return st;
        mark_steps(tape, first, dx, arity);
        if (anomaly && (st = tg_tape__anomaly_graph_grads(tape, t, dx)) != TG_OK)
            return st;
        tg_tensor *const *in = tg_node__inputs(t);
        for (int k = 0; k < arity; k++)
            if (dx[k] && in[k]->requires_grad && (st = accumulate(&w, t, k, in[k], dx[k])) != TG_OK)
                return st;
    }
results:
    for (size_t i = 0; i < n; i++) {
        tg_tensor **s = xs[i] == y ? &dy : slot_of(&w, xs[i]);
        out[i] = s && *s ? *s : tg_ops__zeros_like(tape, xs[i]);
        if (!out[i]) {
            for (size_t j = 0; j < i; j++)
                out[j] = NULL;
            return tape->status;
        }
    }
    return TG_OK;
}
