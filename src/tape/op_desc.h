/* op_desc.h: what the tape needs of an op, its descriptor, and the op table that holds one
 * per tg_op. The tape records and differentiates nodes through descriptors alone; the ops
 * module (src/ops) defines them, each in its family file, and fills the table (table.c).
 * docs/adding-an-op.md says how to add one. */
#ifndef TAPEGRAD_TAPE_OP_DESC_H
#define TAPEGRAD_TAPE_OP_DESC_H

#include "tape/tape_impl.h"

/* Shape rule: fills y->rank and y->shape from the inputs y->in[] and attributes y->attr (and
 * may normalize y->attr, e.g. a negative axis), or returns an error status after writing the
 * reason, without op name or node, into msg. */
typedef tg_status (*tg_shape_fn)(tg_tensor *y, char *msg, size_t msg_size);
/* Forward: computes y->data from the inputs (the data is already allocated, unless the op is
 * a view, which sets y->data itself). Cannot fail: what can go wrong is the shape rule's. */
typedef void (*tg_forward_fn)(tg_tensor *y);
/* (A custom op's forward and VJP call the user, who can fail: they keep the error on the
 * tape with tg_tape__fail, and the recording and the backward walk check the tape after
 * them.) */
/* VJP: y->grad holds dy; ADDS each input's share into tg_tape__grad_of(tape, y->in[i]) (NULL
 * when that input needs no gradient), so fan-out sums for free. */
typedef void (*tg_vjp_fn)(tg_tape *tape, tg_tensor *y);
/* Differentiable VJP (tg_grad_graph): the same math written with op constructors, so that the
 * gradient is itself recorded on the tape and can be differentiated again. dy is a tensor of
 * y's shape on the tape; for each input i that requires grad, sets dx[i] to input i's share,
 * a tensor of input i's shape recorded on the tape (or leaves it NULL: no share). Returns
 * TG_OK, or the tape's error when a constructor failed. Values the derivative does not
 * depend on continuously (relu's mask, max's argmax, take's indices) carry no derivative of
 * their own. Record them as ops that have none, over the node's inputs (a comparison such as
 * tg_gt(x, 0), an equality mask, the index tensor itself, tg_detach), not as tg_constant
 * copies of values computed now: tg_tape_replay re-evaluates ops at the new point but keeps a
 * constant's recorded values, so a value-derived constant would be a stale mask after a
 * replay (a constant that depends on shapes only, zeros_like, is fine). */
typedef tg_status (*tg_vjp_graph_fn)(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx);

typedef struct tg_op_desc {
    tg_op_info info; /* the public part: name, arity, attributes, ... (tapegrad/ops.h) */
    tg_op op;        /* its place in the table */
    bool view;       /* y shares its input's data: no allocation for y->data */
    bool checks_values; /* the shape rule reads input values too (take's indices), so it runs
                         * on every recording: such an op is never planned */
    tg_shape_fn shape;
    tg_forward_fn forward;
    tg_vjp_fn vjp; /* NULL when the op is not differentiable */
    tg_vjp_graph_fn vjp_graph; /* the VJP as ops (NULL when not differentiable) */
} tg_op_desc;

/* One descriptor per tg_op, in tg_op order (table.c). */
extern const tg_op_desc *const tg_op__table[TG_OP_COUNT];

/* An op of more than two inputs, fixed (where) or variadic (concat): its nodes keep their
 * inputs in attr.r.ext and are recorded by tg_tape__record_n. */
static inline bool tg_op__nary(const tg_op_desc *d)
{
    return d->info.arity > 2 || d->info.arity == TG_VARIADIC;
}

/* The inputs of node y, and their number: the one generic way to visit a node's inputs. */
static inline int tg_node__n_inputs(const tg_tensor *y)
{
    const tg_op_desc *d = tg_op__table[y->op];
    return tg_op__nary(d) ? (int)y->attr.r.ext->n : d->info.arity;
}
static inline tg_tensor *const *tg_node__inputs(const tg_tensor *y)
{
    return tg_op__nary(tg_op__table[y->op]) ? y->attr.r.ext->in : y->in;
}

/* The name node y's op goes by in messages and graphs: a custom op's own name. */
static inline const char *tg_node__op_name(const tg_tensor *y)
{
    const tg_op_desc *d = tg_op__table[y->op];
    return tg_op__nary(d) && y->attr.r.ext->custom ? y->attr.r.ext->custom->name : d->info.name;
}

/* The op's axis attributes (attr.r) are part of the graph's structure: the fingerprint
 * hashes them and the plan compares them. */
static inline bool tg_op__has_axis(const tg_op_desc *d)
{
    return d->info.attrs == TG_ATTR_AXIS || d->info.attrs == TG_ATTR_REDUCE;
}

/* The plan (record.h) may stand in for the op's shape rule: its attributes either cannot
 * change the output shape (a constant) or are compared by the plan (an axis). Ranges and
 * shapes are checked by the shape rule itself, so those ops always run it; so does a constant
 * the shape rule refuses (tg_op__constant_refused). */
static inline bool tg_op__plannable(const tg_op_desc *d)
{
    return (d->info.attrs == TG_ATTR_NONE || d->info.attrs == TG_ATTR_CONSTANT ||
            tg_op__has_axis(d)) &&
           !d->checks_values && !tg_op__nary(d);
}

/* A constant f32 cannot hold, which the shape rule of an f32 op refuses (unary.c's
 * constant_shape): the plan must not take it in the rule's place. */
static inline bool tg_op__constant_refused(const tg_op_desc *d, tg_dtype dtype,
                                           tg_node_attr attr)
{
    return d->info.attrs == TG_ATTR_CONSTANT && dtype == TG_F32 && tg__f32_cannot_hold(attr.c);
}

#endif
