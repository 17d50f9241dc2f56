/* record.h: the common path of recording a node, inline. The op families include it, so
 * each op constructor gets the path specialized for its op: the descriptor is a constant
 * there, so the forward becomes a direct call the compiler inlines, and the arity and view
 * tests fold away. Everything rare (errors, the first use of a leaf in a recording, a node
 * list that must grow) and the general path (a node the plan does not cover, whose shape rule
 * runs) leave through out-of-line functions in tape.c. */
#ifndef TAPEGRAD_RECORD_H
#define TAPEGRAD_RECORD_H

#include "tape/op_desc.h"

/* The full input check of an op (NULL, foreign, stale, dtype), registering leaves on their
 * first use in this recording; TG_OK, or the error (kept on the tape). */
tg_status tg_tape__admit(tg_tape *tape, const tg_op_desc *d, tg_tensor *a, tg_tensor *b);
/* The error paths of recording y (not yet appended), each keeping the error on the tape. */
void tg_tape__fail_shape(tg_tape *tape, const tg_tensor *y, tg_status st, const char *msg);
void tg_tape__fail_oom(tg_tape *tape, const char *who, size_t bytes);
/* An element count that overflows, a full tape, a node list that must grow. */
tg_status tg_tape__finish_slow(tg_tape *tape, tg_tensor *y, bool overflow);
/* Anomaly mode's check of a new node's values: TG_OK, or TG_ENUMERIC naming the node. A step
 * inside an op's recorded gradient (TG_TF_GRAD_STEP) is not checked. */
tg_status tg_tape__anomaly_forward(tg_tape *tape, const tg_tensor *y);
/* Anomaly mode's check of what node y's recorded VJP (tg_grad_graph) passes back, dx[k] for
 * each of its inputs (NULL where none): TG_OK, or TG_ENUMERIC naming the op, the node and the
 * input whose gradient holds NaN or Inf. */
tg_status tg_tape__anomaly_graph_grads(tg_tape *tape, const tg_tensor *y, tg_tensor *const *dx);

/* ---- the plan ------------------------------------------------------------------------------
 * A training loop records the same graph every step, and a recording's fingerprint (op,
 * dtype, shape, axis attributes and input references of every node; tg_tape_fingerprint)
 * then equals the previous one's. Rather than hashing after the fact, the recording compares
 * itself, node by node, with the recording two resets ago, whose node headers are still intact
 * in the same header arena (headers alternate between two arenas by generation parity): every
 * node takes one header of the same size, so node n of this recording gets the very header
 * node n had then, as long as that recording had more than n nodes (plan_nodes). When that
 * header shows the same op and dtype, the same input pointers and the same axis attributes,
 * and every input is itself planned (a node recorded from the plan, or a leaf whose slot held
 * the same leaf with the same dtype and shape then), the output shape and element count are
 * the ones already in the header: the shape rule, the element count and the capacity checks
 * are skipped, and the header is refreshed instead of rewritten. Anything else (a new op, a
 * changed shape, a leaf replaced) falls back to the general path, which writes the header in
 * full; nodes downstream of the change then miss too, since their inputs are not planned.
 * Equal input pointers mean equal inputs: a node of this recording sits in the header it had
 * then only if it has the same index, and leaves are checked by pointer, dtype and shape. */

static inline bool tg_tape__leaf_sig_equal(const tg_leaf_slot *slot, const tg_tensor *x)
{
    if (slot->dtype != x->dtype || slot->rank != x->rank)
        return false;
    for (int i = 0; i < x->rank; i++)
        if (slot->shape[i] != x->shape[i])
            return false;
    return true;
}

/* Leaf slot `slot` becomes x's, not the plan's: its dtype and shape, and x in the list of leaves
 * alive if no tape has used it yet (tg_tensor__register: once in the leaf's life). Out of line:
 * a training loop's recordings all repeat their plan's leaves. */
void tg_tape__fill_new_slot(tg_leaf_slot *slot, tg_tensor *x);

/* Fills leaf slot s (< cap_leaves) with x, noting whether it repeats the plan's slot s. */
static inline void tg_tape__fill_leaf_slot(tg_tape *tape, size_t s, tg_tensor *x)
{
    tg_leaf_slot *slot = &tape->leaves[s];
    slot->grad = NULL;
    const uint64_t version = tg_tensor__version(x);
    slot->version = version;
    tape->leaf_versions += version;
    slot->grad_pass = 0;
    slot->requires_grad = x->requires_grad;
    slot->serial = x->serial;
    /* The same pointer is the same leaf, whose dtype and shape never change, as long as no
     * registered leaf has been freed since the plan's recording started (else its memory may
     * hold another leaf now, registered or not yet): then no compare. The plan's nodes name
     * their leaf inputs by address, so a slot whose address held two leaves of that recording
     * is never planned. */
    if (s < tape->plan_leaves && slot->leaf == x && !slot->shared &&
        (__atomic_load_n(&tg_tensor__leaves_freed, __ATOMIC_ACQUIRE) == tape->plan_leaves_freed ||
         (tg_tape__leaf_sig_equal(slot, x) && __atomic_load_n(&x->registered, __ATOMIC_RELAXED))))
        slot->planned = true;
    else
        tg_tape__fill_new_slot(slot, x);
}

/* Registers leaf x (not registered in this recording) in the next slot, at index entry r (its
 * place, from tg_tape__leaf_ref), when the slots and the index have room: true. false sends
 * the caller to the slow path (tg_tape__admit), which makes room. When r is the entry of a leaf
 * freed during the recording at x's address, x takes it over: both slots are then shared. */
static inline __attribute__((always_inline)) bool tg_tape__add_leaf(tg_tape *tape, tg_leaf_ref *r,
                                                                    tg_tensor *x)
{
    const size_t s = tape->n_leaves;
    if (s == tape->cap_leaves || 2 * (s + 1) > tape->leaf_index_cap)
        return false;
    tape->n_leaves = s + 1;
    const bool shared = tg_tape__leaf_found(tape, r, x);
    tg_tape__fill_leaf_slot(tape, s, x); /* first: it reads the plan's slot s */
    tape->leaves[s].shared = shared;
    if (TG_UNLIKELY(shared))
        tape->leaves[r->slot].shared = true;
    *r = tg_tape__leaf_entry(tape, s);
    return true;
}

/* Leaf x's entry in this recording, registering it on its first use when there is room; NULL
 * sends the caller to the slow path. The entry of x's address is x's only if it has x's serial:
 * else it is a leaf's freed during the recording (tape.h allows that), and x is a new leaf. */
static inline __attribute__((always_inline)) const tg_leaf_ref *tg_tape__leaf_ready(tg_tape *tape,
                                                                                    tg_tensor *x)
{
    tg_leaf_ref *r = tg_tape__leaf_ref(tape, x);
    return (tg_tape__leaf_found(tape, r, x) && r->serial == x->serial) ||
                   tg_tape__add_leaf(tape, r, x)
               ? r
               : NULL;
}

/* Makes x ready to be an input, for the common cases: a node of this recording, or a leaf,
 * registered in it on its first use while the leaf list and index have room. false sends the
 * caller to tg_tape__admit for everything else. */
static inline __attribute__((always_inline)) bool tg_tape__input_ready(tg_tape *tape, tg_tensor *x)
{
    if (x->tape == tape)
        return x->gen == tape->base.gen;
    return !x->tape && tg_tape__leaf_ready(tape, x);
}

/* Input x (ready) has the shape it had in the plan. */
static inline __attribute__((always_inline)) bool tg_tape__input_planned(const tg_tape *tape,
                                                                         const tg_tensor *x)
{
    return x->tape ? (x->flags & TG_TF_PLANNED) != 0 : tg_tape__leaf_ref(tape, x)->planned;
}

/* Input x is ready (tg_tape__input_ready) and planned (tg_tape__input_planned): the two in one,
 * for the recording's fast path, where each kind of input then needs only its own tests. */
static inline __attribute__((always_inline)) bool tg_tape__input_ready_planned(tg_tape *tape,
                                                                               tg_tensor *x)
{
    if (x->tape == tape)
        return x->gen == tape->base.gen && (x->flags & TG_TF_PLANNED);
    if (x->tape)
        return false;
    const tg_leaf_ref *r = tg_tape__leaf_ready(tape, x);
    return r && r->planned;
}

_Static_assert(sizeof(struct tg_tensor) % 16 == 0, "headers keep each other aligned");

/* A node header from the current recording's header arena, or NULL when out of memory. The
 * arena holds nothing but headers (tg_tape_reset's sizing allocation is rewound at once), from
 * block bases aligned to a cache line, so its bump pointer is always aligned for the next one:
 * no rounding (align 1, the arena's quickest case). */
static inline __attribute__((always_inline)) tg_tensor *tg_tape__new_header(tg_tape *tape)
{
    return tg_arena__alloc(tape->rec_headers, sizeof(tg_tensor), 1);
}

/* Writes every field of node header y but rank and shape (the general path). */
static inline void tg_tape__init_node(tg_tape *tape, tg_tensor *y, tg_op op, tg_dtype dtype,
                                      bool view)
{
    y->data = NULL;
    y->grad = NULL;
    y->tape = tape;
    y->in[0] = y->in[1] = NULL;
    y->index = (uint32_t)tape->n_nodes;
    y->gen = tape->base.gen;
    y->grad_pass = 0;
    y->op = (uint16_t)op;
    y->dtype = (uint8_t)dtype;
    y->rank = 0;
    /* Headers are reused from earlier recordings: the shape rule writes the axes of the rank
     * it sets, and any other axis reads 0, never what the header held then. */
    memset(y->shape, 0, sizeof y->shape);
    y->requires_grad = 0;
    y->flags = view ? TG_TF_VIEW : 0;
    y->name = NULL;
}

_Static_assert(TG_MAX_RANK * 15 <= 60, "the overflow shortcut below assumes rank <= 4");

/* Gives y (shape set) its element count and data (unless it is a view) and appends it to the
 * node list: TG_OK, or the error (kept on the tape). */
static inline __attribute__((always_inline)) tg_status tg_tape__finish_node(tg_tape *tape,
                                                                            tg_tensor *y, bool view)
{
    /* With every dimension below 2^15 and rank <= 4, elements < 2^60 and bytes < 2^63: no
     * overflow is possible, and the checked multiply (a slow dependency chain) is skipped. */
    size_t numel = 1, any = 0;
    for (int i = 0; i < y->rank; i++) {
        numel *= y->shape[i];
        any |= y->shape[i];
    }
    if (TG_UNLIKELY((any >> 15) || tape->n_nodes == tape->cap_nodes)) {
        bool overflow = false;
        if (any >> 15) {
            size_t bytes;
            bool empty = false;
            numel = 1;
            for (int i = 0; i < y->rank; i++) {
                overflow |= __builtin_mul_overflow(numel, y->shape[i], &numel);
                empty |= y->shape[i] == 0;
            }
            overflow |= __builtin_mul_overflow(numel, tg__esize(y), &bytes);
            if (empty) /* no elements, however long the other axes */
                numel = 0, overflow = false;
        }
        if (overflow || tape->n_nodes == tape->cap_nodes) {
            tg_status st = tg_tape__finish_slow(tape, y, overflow);
            if (st != TG_OK)
                return st;
        }
    }
    y->numel = numel;
    if (y->rank == 0) { /* 0-d: value and gradient inside the header (struct tg_tensor) */
        y->grad = y->inl.grad;
        if (!view)
            y->data = y->inl.value;
    } else if (!view) {
        size_t bytes = numel * tg__esize(y);
        y->data = tg_tape__alloc(tape, bytes);
        if (TG_UNLIKELY(!y->data)) {
            tg_tape__fail_oom(tape, tg_op__table[y->op]->info.name, bytes);
            return TG_ENOMEM;
        }
    }
    tape->nodes[tape->n_nodes++] = y;
    return TG_OK;
}

/* Records an op of more than two inputs (tg_op__nary) on ins[0..n), always by the general
 * path: checks every input, keeps them in the node's ext (with custom and user, for a custom
 * op), runs the shape rule and the forward. Returns the new node, or NULL with the error kept
 * on the tape (and NULL quietly when the tape already has an error). */
tg_tensor *tg_tape__record_n(tg_tape *tape, const tg_op_desc *d, tg_tensor *const *ins, size_t n,
                             tg_node_attr attr, const struct tg_custom_op *custom, void *user);

/* attr's axis (an op with one) as the shape rule normalizes it: 0..rank-1 for a negative one. */
static inline __attribute__((always_inline)) void
tg_tape__normalize_axis(const tg_op_desc *d, const tg_tensor *a, tg_node_attr *attr)
{
    if (tg_op__has_axis(d) && attr->r.axis < 0 && attr->r.axis != TG_ALL_AXES &&
        attr->r.axis >= -(int)a->rank)
        attr->r.axis += a->rank;
}

/* Whether header y, the one node tape->n_nodes of the recording two resets ago had, holds what
 * op d on a (and b) with attributes attr (axis normalized) would write, so that the plan
 * stands in for the shape rule (see above), given that a and b are planned inputs. */
static inline __attribute__((always_inline)) bool
tg_tape__plan_holds(const tg_tape *tape, const tg_op_desc *d, const tg_tensor *y,
                    const tg_tensor *a, const tg_tensor *b, tg_node_attr attr)
{
    return tape->n_nodes < tape->plan_nodes && tg_op__plannable(d) && y->op == d->op &&
           y->in[0] == a && y->in[1] == b && y->dtype == a->dtype &&
           (!tg_op__has_axis(d) ||
            (y->attr.r.axis == attr.r.axis && y->attr.r.keepdim == attr.r.keepdim)) &&
           !tg_op__constant_refused(d, a->dtype, attr);
}

/* Makes header y (tg_tape__plan_holds) node n of this recording: tape, index, op, dtype,
 * inputs, rank, shape and numel are in place, and n < plan_nodes <= cap_nodes. data is its
 * value buffer (rank > 0 and not a view; else unused). */
static inline __attribute__((always_inline)) void
tg_tape__plan_refresh(tg_tape *tape, const tg_op_desc *d, tg_tensor *y, tg_node_attr attr,
                      void *data)
{
    const size_t n = tape->n_nodes;
    TG_ASSERT(y->tape == tape && y->index == n);
    y->attr = attr;
    y->gen = tape->base.gen;
    y->grad_pass = 0;
    y->flags = TG_TF_PLANNED | (d->view ? TG_TF_VIEW : 0);
    if (TG_UNLIKELY(y->name != NULL)) /* only read, so that the first line stays clean */
        y->name = NULL;
    if (y->rank == 0) {
        /* data (unless a view) and grad point into inl since tg_tape__finish_node */
        TG_ASSERT(y->grad == y->inl.grad && (d->view || y->data == y->inl.value));
    } else {
        y->grad = NULL;
        if (!d->view)
            y->data = data;
    }
    tape->nodes[n] = y;
    tape->n_nodes = n + 1;
}

/* Node y's forward. A result without elements has nothing to compute (a view still takes its
 * pointer); skipping it keeps loops over the other axes, which may be 2^32 long, from running. */
static inline __attribute__((always_inline)) void tg_tape__compute(const tg_op_desc *d,
                                                                   tg_tensor *y)
{
    if (TG_LIKELY(y->numel != 0) || d->view)
        d->forward(y);
}

/* Anomaly mode's forward of node y (tg_tape__run_forward), out of line: the forward, then the
 * check of its values. y, or NULL with the error kept on the tape. */
tg_tensor *tg_tape__forward_checked(tg_tape *tape, const tg_op_desc *d, tg_tensor *y);

/* The end of recording node y (appended): whether it requires grad, its forward, anomaly
 * mode's check. y, or NULL with the error kept on the tape. */
static inline __attribute__((always_inline)) tg_tensor *
tg_tape__run_forward(tg_tape *tape, const tg_op_desc *d, tg_tensor *y, const tg_tensor *a,
                     const tg_tensor *b)
{
    /* requires_grad and grad_enabled are 0 or 1: bitwise, without a branch */
    y->requires_grad =
        (uint8_t)(d->info.differentiable &
                  (tape->grad_enabled & (a->requires_grad | (b ? b->requires_grad : 0))));
    if (TG_UNLIKELY(tape->anomaly)) /* a tail call, so y need not live across the forward */
        return tg_tape__forward_checked(tape, d, y);
    tg_tape__compute(d, y);
    return y;
}

/* All of recording (tg_tape__record) out of line, for whatever its fast path leaves: the full
 * input check (errors, leaves first used, a leaf list that must grow), a header from the plan
 * or the general path (the shape rule), allocation from a new block, the forward through
 * d->forward. */
tg_tensor *tg_tape__record_slow(tg_tape *tape, const tg_op_desc *d, tg_tensor *a, tg_tensor *b,
                                tg_node_attr attr);

/* Records the op of descriptor d on inputs a (and b for binary ops) with attributes attr:
 * checks, the plan (or the shape rule), allocation, forward. Returns the new node, or NULL
 * with the error kept on the tape (and NULL quietly when the tape already has an error).
 *
 * Inline, the fast path only: inputs ready and planned, a node the plan covers, its header and
 * value where the arenas' current blocks have room. It makes no call but the op's forward, and
 * commits nothing (but a leaf's registration, which any path would make) until it knows it
 * will finish, so everything else goes to tg_tape__record_slow as a tail call. */
static inline __attribute__((always_inline)) tg_tensor *
tg_tape__record(tg_tape *tape, const tg_op_desc *d, tg_tensor *a, tg_tensor *b, tg_node_attr attr)
{
    const bool binary = d->info.arity == 2;
    if (!binary)
        b = NULL;
    if (TG_LIKELY(
            tape && tape->status == TG_OK && a && tg_tape__input_ready_planned(tape, a) &&
            (!binary || (b && tg_tape__input_ready_planned(tape, b) && a->dtype == b->dtype)))) {
        tg_tape__normalize_axis(d, a, &attr);
        /* the next header, where tg_tape__new_header would put it if its block has room */
        tg_arena *headers = tape->rec_headers;
        tg_tensor *y = (tg_tensor *)headers->ptr;
        void *data = NULL;
        if (TG_LIKELY(headers->end - headers->ptr >= sizeof *y &&
                      tg_tape__plan_holds(tape, d, y, a, b, attr)) &&
            (y->rank == 0 || d->view ||
             (data = tg_tape__data(tape, tg__nbytes(y), true)) != NULL)) {
            headers->ptr += sizeof *y;
            tg_tape__plan_refresh(tape, d, y, attr, data);
            return tg_tape__run_forward(tape, d, y, a, b);
        }
    }
    return tg_tape__record_slow(tape, d, a, b, attr);
}

#endif
