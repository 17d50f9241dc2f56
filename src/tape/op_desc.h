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
/* VJP: y->grad holds dy; ADDS each input's share into tg_tape__grad_of(tape, y->in[i]) (NULL
 * when that input needs no gradient), so fan-out sums for free. */
typedef void (*tg_vjp_fn)(tg_tape *tape, tg_tensor *y);

typedef struct tg_op_desc {
    tg_op_info info; /* the public part: name, arity, attributes, ... (tapegrad/ops.h) */
    tg_op op;        /* its place in the table */
    bool view;       /* y shares its input's data: no allocation for y->data */
    tg_shape_fn shape;
    tg_forward_fn forward;
    tg_vjp_fn vjp; /* NULL when the op is not differentiable */
} tg_op_desc;

/* One descriptor per tg_op, in tg_op order (table.c). */
extern const tg_op_desc *const tg_op__table[TG_OP_COUNT];

/* The op's axis attributes (attr.r) are part of the graph's structure: the fingerprint
 * hashes them and the plan compares them. */
static inline bool tg_op__has_axis(const tg_op_desc *d)
{
    return d->info.attrs == TG_ATTR_AXIS || d->info.attrs == TG_ATTR_REDUCE;
}

/* The plan (record.h) may stand in for the op's shape rule: its attributes either cannot
 * change the output shape (a constant) or are compared by the plan (an axis). Ranges and
 * shapes are checked by the shape rule itself, so those ops always run it. */
static inline bool tg_op__plannable(const tg_op_desc *d)
{
    return d->info.attrs != TG_ATTR_RANGE && d->info.attrs != TG_ATTR_SHAPE;
}

#endif
