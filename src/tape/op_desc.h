/* op_desc.h: what the tape needs of every op (its descriptor), and the op table the ops
 * module fills (src/ops). The tape records and differentiates nodes through it alone. */
#ifndef TAPEGRAD_TAPE_OP_DESC_H
#define TAPEGRAD_TAPE_OP_DESC_H

#include "tape/tape_impl.h"

/* Shape rule: fills y->rank, y->shape (and may adjust y->attr) from the inputs, or returns an
 * error status after writing the reason (without op name or node) into msg. */
typedef tg_status (*tg_shape_fn)(tg_tensor *y, char *msg, size_t msg_size);
/* Forward: computes y->data from y->in[...] (the data is already allocated, unless the op
 * is a view, which sets y->data itself). */
typedef void (*tg_forward_fn)(tg_tensor *y);
/* VJP: y->grad holds dy; accumulates into tg_tape__grad_of(tape, y->in[i]). */
typedef void (*tg_vjp_fn)(tg_tape *tape, tg_tensor *y);

typedef struct tg_op_info {
    const char *name;
    int arity;
    bool is_view;   /* y shares its input's data: no allocation for y->data */
    bool has_axis;  /* attr.r (axis, keepdim) is part of the structure (fingerprint, dot) */
    tg_shape_fn shape;
    tg_forward_fn forward;
    tg_vjp_fn vjp;
    bool reads_attr; /* the shape rule reads (or checks) attributes other than axis and
                      * keepdim, so the plan cannot stand in for it */
} tg_op_info;

extern const tg_op_info tg_ops__table[TG_OP_COUNT];

#endif
