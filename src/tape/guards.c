/* guards.c: what a backward walk refuses before it starts, where walking would give a wrong
 * gradient without a word: a leaf written since the recording used it (versions, tensor.h) or
 * whose requires_grad changed since, and a gradient asked of an input the output depends on
 * but whose gradient was not tracked (it does not require grad). Both cost next to nothing when all
 * is well: a sum over the leaf slots (tape_impl.h, tg_tape__check_versions), a pass over xs
 * (tg_tape__check_grad_inputs). */
#include "tape/grad_inputs.h"
#include "tape/op_desc.h"

#include <stdio.h>

/* "'W1' [2,2]" or "[2,2]": a tensor's name, if it has one, and its shape. */
static const char *label(char *buf, size_t size, const tg_tensor *t)
{
    char s[96];
    tg_shape_format(s, sizeof s, t->rank, t->shape);
    if (t->name)
        snprintf(buf, size, "'%s' %s", t->name, s);
    else
        snprintf(buf, size, "%s", s);
    return buf;
}

tg_status tg_tape__grad_flag_changed(const tg_tape *tape, size_t s, const char *who)
{
    const tg_tensor *x = tape->leaves[s].leaf;
    char what[160];
    return tg__error(TG_ESTALE,
                     "%s: leaf %zu of the recording, %s, %s grad when recorded and %s now: the "
                     "recording's gradient paths were decided by it; record again",
                     who, s, label(what, sizeof what, x),
                     tape->leaves[s].requires_grad ? "required" : "did not require",
                     x->requires_grad ? "does" : "does not");
}

/* What the version check found: the leaf a backward reads that is not as the recording noted
 * it, the node that read it and its slot (bad NULL when none). */
typedef struct stale_leaf {
    const tg_tensor *bad;
    size_t node, slot;
} stale_leaf;

/* Where input x's values live: x itself, or for a view (reshape, detach) the tensor whose data
 * it shares, a leaf or a node. A VJP reading a view that requires no grad reads that leaf, though
 * the walk never visits the view. */
static const tg_tensor *data_owner(const tg_tensor *x)
{
    while ((x->flags & TG_TF_VIEW) && !(x->flags & TG_TF_LEAF))
        x = x->in[0];
    return x;
}

/* Walks from y (a node of this recording) the nodes requiring grad that y was computed from,
 * latest first, and reads the leaves a backward reads (tape.h): those that are their inputs,
 * and those that views of no grad among their inputs share their data with (whether or not a
 * node's VJP needs the values: the ops do not say). The last one found written since the
 * recording noted it, with its requires_grad changed, or not the leaf noted at all (another
 * at its address) goes to *found (the earliest node's). TG_ENOMEM (naming `who`) when its marks
 * cannot be allocated. */
static tg_status find_stale_leaf(const tg_tape *tape, const tg_tensor *y, stale_leaf *found,
                                 const char *who)
{
    TG_ASSERT(!(y->flags & TG_TF_LEAF));
    const size_t top = (size_t)y->index + 1;
    unsigned char *mark = tg__calloc(top, 1);
    if (!mark)
        return tg__error(TG_ENOMEM, "%s: out of memory finding the leaves a backward reads", who);
    mark[y->index] = y->requires_grad;
    for (size_t i = top; i-- > 0;) {
        if (!mark[i])
            continue;
        const tg_tensor *t = tape->nodes[i];
        const int arity = tg_node__n_inputs(t);
        tg_tensor *const *in = tg_node__inputs(t);
        for (int k = 0; k < arity; k++) {
            const tg_tensor *x = in[k];
            if (!(x->flags & TG_TF_LEAF) && x->requires_grad) {
                mark[x->index] = 1; /* its VJP reads its own inputs */
                continue;
            }
            if (!((x = data_owner(x))->flags & TG_TF_LEAF))
                continue; /* a node's values, fixed since it was recorded */
            const size_t s = tg_tape__leaf_slot(tape, x);
            TG_ASSERT(s != SIZE_MAX);
            const tg_leaf_slot *noted = &tape->leaves[s];
            if (tg_tensor__version(x) != noted->version ||
                x->requires_grad != noted->requires_grad || x->serial != noted->serial)
                *found = (stale_leaf){x, i, s};
        }
    }
    tg__free(mark, top);
    return TG_OK;
}

/* compare_live_flags' question to each registered leaf alive (tg_tensor__each_live): if it
 * is a leaf of this recording (its address and serial those of a slot), has its flag changed? */
typedef struct live_flags {
    const tg_tape *tape;
    const char *who;
} live_flags;

static tg_status leaf_flag_unchanged(const tg_tensor *leaf, void *ctx)
{
    const live_flags *c = ctx;
    const tg_leaf_ref *r = tg_tape__leaf_ref(c->tape, leaf);
    if (!tg_tape__leaf_found(c->tape, r, leaf) || r->serial != leaf->serial)
        return TG_OK; /* another recording's */
    if (leaf->requires_grad == c->tape->leaves[r->slot].requires_grad)
        return TG_OK;
    return tg_tape__grad_flag_changed(c->tape, r->slot, c->who); /* (it reads the leaf: alive) */
}

/* The flags of the recording's leaves still alive against what they were: TG_OK, or TG_ESTALE
 * naming one that changed. */
static tg_status compare_live_flags(const tg_tape *tape, const char *who)
{
    live_flags c = {tape, who};
    return tg_tensor__each_live(leaf_flag_unchanged, &c);
}

tg_status tg_tape__check_versions_slow(const tg_tape *tape, const tg_tensor *y, const char *who)
{
    const bool all_alive = tg_tape__leaves_alive(tape);
    if (all_alive)
        for (size_t s = 0; s < tape->n_leaves; s++) /* every leaf alive: any may be read */
            if (tape->leaves[s].leaf->requires_grad != tape->leaves[s].requires_grad)
                return tg_tape__grad_flag_changed(tape, s, who);
    stale_leaf found = {NULL, 0, 0};
    const tg_status st = find_stale_leaf(tape, y, &found, who);
    if (st != TG_OK)
        return st;
    const tg_tensor *bad = found.bad;
    const size_t bad_node = found.node, bad_slot = found.slot;
    /* With a leaf freed, the leaves this backward does not read may be gone: if any registered
     * leaf's flag changed since the recording started, one of them may be this recording's (say
     * one that feeds only nodes recorded as constant), and the gradient would miss its paths. So
     * the ones still alive are compared (a freed one asks for no gradient). */
    if (!bad && !all_alive && !tg_tape__grad_flags_unchanged(tape))
        return compare_live_flags(tape, who);
    if (!bad)
        return TG_OK;
    char what[160];
    if (bad->serial != tape->leaves[bad_slot].serial) /* freed, and its memory is a leaf again */
        return tg__error(TG_ESTALE,
                         "%s: leaf %zu of the recording, used at node %zu (%s), was freed since, "
                         "and another leaf, %s, has its address now: the backward would read it "
                         "instead. Keep the recording's leaves alive, or record again",
                         who, bad_slot, bad_node, tg_node__op_name(tape->nodes[bad_node]),
                         label(what, sizeof what, bad));
    if (bad->requires_grad != tape->leaves[bad_slot].requires_grad)
        return tg_tape__grad_flag_changed(tape, bad_slot, who);
    return tg__error(TG_ESTALE,
                     "%s: leaf %zu of the recording, %s, was written (version %llu, now %llu) "
                     "after the recording used it at node %zu (%s): the gradient would mix its "
                     "old values with its new ones. Record again (tg_tape_reset, then the same "
                     "calls) or replay the recording at the new values (tg_tape_replay)",
                     who, bad_slot, label(what, sizeof what, bad),
                     (unsigned long long)tape->leaves[bad_slot].version,
                     (unsigned long long)tg_tensor__version(bad), bad_node,
                     tg_node__op_name(tape->nodes[bad_node]));
}

/* Whether x, an input of a node of this recording, required grad when that node was recorded:
 * a leaf with the flag the recording noted, which decided the node's own (the leaf may have
 * been freed since, so it is not read), a node with its own. *slot: the leaf's slot, or
 * SIZE_MAX for a node. */
static bool recorded_requires_grad(const tg_tape *tape, const tg_tensor *x, size_t *slot)
{
    *slot = tg_tape__leaf_slot(tape, x);
    return *slot != SIZE_MAX ? tape->leaves[*slot].requires_grad : x->requires_grad;
}

/* Why node t (of this recording) does not require grad, for the message. */
static const char *untracked_reason(const tg_tape *tape, const tg_tensor *t)
{
    const tg_op_desc *d = tg_op__table[t->op];
    if (!d->info.differentiable)
        return "its op has no gradient";
    const int arity = tg_node__n_inputs(t);
    tg_tensor *const *in = tg_node__inputs(t);
    for (int k = 0; k < arity; k++) {
        size_t s;
        if (recorded_requires_grad(tape, in[k], &s))
            return "it was recorded while gradient recording was off (tg_tape_set_grad_enabled)";
    }
    return "none of the tensors it was computed from requires grad";
}

tg_status tg_tape__output_untracked(const tg_tape *tape, const tg_tensor *y, const char *who)
{
    /* The latest node y was computed from through nodes that require no grad, that requires
     * none though an input did when recorded: where the gradient stops. */
    const tg_tensor *cut = NULL;
    unsigned char *mark = NULL;
    const size_t top = (y->flags & TG_TF_LEAF) ? 0 : (size_t)y->index + 1;
    if (top && y->tape == tape && y->gen == tape->base.gen && (mark = tg__calloc(top, 1))) {
        mark[top - 1] = 1;
        for (size_t i = top; i-- > 0 && !cut;) {
            if (!mark[i])
                continue;
            const tg_tensor *t = tape->nodes[i];
            const int arity = tg_node__n_inputs(t);
            tg_tensor *const *in = tg_node__inputs(t);
            for (int k = 0; k < arity && !cut; k++) {
                size_t s;
                if (recorded_requires_grad(tape, in[k], &s))
                    cut = t;
                else if (s == SIZE_MAX)
                    mark[in[k]->index] = 1;
            }
        }
        tg__free(mark, top);
    }
    if (!cut) /* (or no memory to look: the message without the place) */
        return tg__error(TG_EINVAL,
                         "%s: the output does not depend on any tensor that requires grad", who);
    return tg__error(TG_EINVAL,
                     "%s: the output does not require grad, though it was computed from a tensor "
                     "that does: the gradient stops at node %u (%s), %s",
                     who, cut->index, tg_node__op_name(cut),
                     tg_op__table[cut->op]->info.differentiable
                         ? "which was recorded while gradient recording was off "
                           "(tg_tape_set_grad_enabled)"
                         : "whose op has no gradient");
}

static tg_status untracked(const tg_tape *tape, const char *who, size_t i, const tg_tensor *x)
{
    char what[160];
    if (x->flags & TG_TF_LEAF)
        return tg__error(TG_EINVAL,
                         "%s: y depends on xs[%zu], a leaf %s that does not require grad, so its "
                         "gradient was not tracked: call tg_tensor_set_requires_grad on it before "
                         "recording y, or leave it out of xs",
                         who, i, label(what, sizeof what, x));
    return tg__error(TG_EINVAL,
                     "%s: y depends on xs[%zu], node %u (%s) %s, which does not require grad: "
                     "%s, so its gradient was not tracked; leave it out of xs, or record it "
                     "from tensors that require grad",
                     who, i, x->index, tg_node__op_name(x), label(what, sizeof what, x),
                     untracked_reason(tape, x));
}

tg_status tg_tape__check_grad_inputs(tg_tape *tape, const tg_tensor *y, tg_tensor *const *xs,
                                     size_t n, const char *who)
{
    size_t first = 0;
    while (first < n && xs[first]->requires_grad)
        first++;
    if (TG_LIKELY(first == n))
        return TG_OK;
    if (!(y->flags & TG_TF_LEAF) && (y->tape != tape || y->gen != tape->base.gen))
        return TG_OK;            /* not of this recording: the caller's own checks say so */
    if (y->flags & TG_TF_LEAF) { /* y depends on itself alone */
        for (size_t i = first; i < n; i++)
            if (xs[i] == y && !xs[i]->requires_grad)
                return untracked(tape, who, i, xs[i]);
        return TG_OK;
    }
    /* Marks what y was computed from: nodes by index (up to y's), leaves by slot. Recording
     * order is topological, so one reverse pass marks them all. */
    const size_t top = (size_t)y->index + 1, n_leaves = tape->n_leaves;
    unsigned char *node_mark = tg__calloc(top + n_leaves, 1);
    if (!node_mark)
        return tg__error(TG_ENOMEM, "%s: out of memory checking the inputs", who);
    unsigned char *leaf_mark = node_mark + top;
    node_mark[top - 1] = 1;
    for (size_t i = top; i-- > 0;) {
        if (!node_mark[i])
            continue;
        const tg_tensor *t = tape->nodes[i];
        const int arity = tg_node__n_inputs(t);
        tg_tensor *const *in = tg_node__inputs(t);
        for (int k = 0; k < arity; k++) {
            /* A leaf is told by its address in the index, never read: y may depend on one
             * through nodes that require no grad, which no backward reads, and which may have
             * been freed since (tape.h). */
            const size_t s = tg_tape__leaf_slot(tape, in[k]);
            if (s != SIZE_MAX)
                leaf_mark[s] = 1;
            else
                node_mark[in[k]->index] = 1;
        }
    }
    tg_status st = TG_OK;
    for (size_t i = first; i < n && st == TG_OK; i++) {
        const tg_tensor *x = xs[i];
        if (x->requires_grad)
            continue;
        bool used;
        if (x->flags & TG_TF_LEAF) {
            size_t s = tg_tape__leaf_slot(tape, x);
            used = s < n_leaves && leaf_mark[s];
        } else { /* (a tensor of another tape or recording: not checked by every caller) */
            used = x->tape == tape && x->gen == tape->base.gen && x->index < top &&
                   node_mark[x->index];
        }
        if (used)
            st = untracked(tape, who, i, x);
    }
    tg__free(node_mark, top + n_leaves);
    return st;
}

tg_status tg_tape__check_usable(const tg_tape *tape, const tg_tensor *t, const char *who,
                                const char *what, size_t i)
{
    if (t->flags & TG_TF_LEAF)
        return TG_OK;
    char name[64];
    if (i == SIZE_MAX)
        snprintf(name, sizeof name, "%s", what);
    else
        snprintf(name, sizeof name, "%s[%zu]", what, i);
    if (t->tape != tape)
        return tg__error(TG_EINVAL, "%s: %s (node %u) belongs to another tape", who, name,
                         t->index);
    if (t->gen != tape->base.gen)
        return tg__error(TG_ESTALE, "%s: %s (node %u) was recorded before the tape was reset", who,
                         name, t->index);
    return TG_OK;
}

tg_status tg_tape__check_leaves_unchanged(const tg_tape *tape, const tg_tensor *y, const char *who)
{
    return (y->flags & TG_TF_LEAF) ? TG_OK : tg_tape__check_versions(tape, y, who);
}
