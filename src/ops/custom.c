/* custom.c: the user-defined op, TG_OP_CUSTOM (tg_custom). Its forward and VJP are the user's
 * C callbacks (tg_custom_op, tapegrad/ops.h); this file is the one table entry that carries
 * them, and the glue between the tape's conventions and theirs.
 *
 * A custom node is variadic (arity TG_VARIADIC): its inputs, the user's tg_custom_op and the
 * user pointer live in the node's ext (y->attr.r.ext, tensor/tensor_impl.h), and tg_custom
 * records it with tg_tape__record_n. Its one attribute is the output shape the caller asks
 * for; it cannot ride in attr.reshape as reshape's does, since attr.reshape.rank shares its
 * bytes with attr.r.ext. It rides in attr.pending instead, a pointer to the caller's tg_attrs
 * (rank, shape) on tg_custom's stack, which shares its bytes with attr.r.axis and keepdim only
 * (offset 0; ext is at offset 8): the shape rule reads it first, validates it, writes the
 * node's rank and shape, and clears it, as slice's does. After that the node's own shape is
 * the attribute (TG_ATTR_SHAPE: tg_tensor_attrs reports it, the dot label shows it, the
 * fingerprint hashes it), and the op's name is hashed with the node (tape.c).
 *
 * The callbacks can fail, unlike a built-in forward or VJP: their error status and message
 * become the tape's error (tg_tape__fail), which tg_tape__record_n checks after the forward
 * and the backward walk after each VJP. */
#include "ops/op_impl.h"

#include <stddef.h>

_Static_assert(offsetof(tg_node_attr, r.ext) >= sizeof(const tg_attrs *),
               "attr.pending (the requested shape) and attr.r.ext (the inputs) do not overlap");

/* A status a callback returned, as the tape keeps it: an error code of tg_status, or
 * TG_EINVAL for a value that is none (a callback that returned 1, say). */
static tg_status as_error(tg_status st)
{
    return st < TG_OK && st >= TG_ENUMERIC ? st : TG_EINVAL;
}

/* Keeps a failed callback's status on the tape, with the op's name, the phase and its
 * message (or a default when it wrote none). */
static void fail(tg_tape *tape, const tg_tensor *y, const char *phase, tg_status st,
                 const char *msg)
{
    tg_status err = as_error(st);
    char why[64];
    if (!msg[0]) {
        if (err == st)
            snprintf(why, sizeof why, "it returned %s", tg_status_name(st));
        else
            snprintf(why, sizeof why, "it returned %d, which is no tg_status", (int)st);
        msg = why;
    }
    tg_tape__fail(tape, err, "%s: %s: %s (node %u)", tg_node__op_name(y), phase, msg, y->index);
}

/* y has the shape the caller asked for (attr.pending, see above); every input's shape is the
 * callbacks' business. */
static tg_status custom_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_attrs *want = y->attr.pending;
    const int rank = want->rank;
    const size_t *shape = want->shape;
    y->attr.pending = NULL; /* the caller's: not ours to keep (ext, at offset 8, stays) */
    if (rank < 0 || rank > TG_MAX_RANK) {
        snprintf(msg, size, "rank %d is out of range 0..%d", rank, TG_MAX_RANK);
        return TG_EINVAL;
    }
    if (rank > 0 && !shape) {
        snprintf(msg, size, "shape is NULL for rank %d", rank);
        return TG_EINVAL;
    }
    /* An element count that overflows is tg_tape__finish_node's to report (TG_ESHAPE). */
    y->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        y->shape[i] = shape[i];
    return TG_OK;
}

/* y = forward(in...): the user writes y's values, zeroed first so that a forward that skips
 * an element leaves 0 there rather than an earlier recording's bytes. */
static void custom_forward(tg_tensor *y)
{
    const tg_node_ext *ext = y->attr.r.ext;
    memset(y->data, 0, tg__nbytes(y));
    char msg[200] = "";
    const tg_custom_call call = {
        .user = ext->user,
        .n = ext->n,
        .in = (const tg_tensor *const *)ext->in,
        .out = y,
        .y = y->data,
        .msg = msg,
        .msg_size = sizeof msg,
    };
    tg_status st = ext->custom->forward(&call);
    if (st != TG_OK)
        fail(y->tape, y, "forward", st, msg);
}

/* dx[i] += vjp(dy)[i] for every input that needs a gradient (dx[i] NULL for the others; an
 * input passed twice gets its buffer twice, and the user's VJP adds into it twice). */
static void custom_vjp(tg_tape *tape, tg_tensor *y)
{
    const tg_node_ext *ext = y->attr.r.ext;
    if (!ext->custom->vjp) {
        tg_tape__fail(tape, TG_EINVAL,
                      "%s: backward: this custom op has no VJP, and a gradient flows into it "
                      "(node %u); give it one, or pass its inputs through tg_detach",
                      tg_node__op_name(y), y->index);
        return;
    }
    void *small[8];
    void **dx = ext->n <= 8 ? small : tg_tape__alloc(tape, ext->n * sizeof *dx);
    if (!dx) {
        tg_tape__fail_oom(tape, tg_node__op_name(y), ext->n * sizeof *dx);
        return;
    }
    for (uint32_t i = 0; i < ext->n; i++) {
        dx[i] = tg_tape__grad_of(tape, ext->in[i]);
        if (tape->status != TG_OK) /* out of memory for that gradient */
            return;
    }
    char msg[200] = "";
    const tg_custom_call call = {
        .user = ext->user,
        .n = ext->n,
        .in = (const tg_tensor *const *)ext->in,
        .out = y,
        .dy = y->grad,
        .dx = dx,
        .msg = msg,
        .msg_size = sizeof msg,
    };
    tg_status st = ext->custom->vjp(&call);
    if (st != TG_OK)
        fail(tape, y, "backward", st, msg);
}

const tg_op_desc tg_op__custom = {
    .info = {.name = "custom",
             .arity = TG_VARIADIC,
             .attrs = TG_ATTR_SHAPE,
             .differentiable = true},
    .op = TG_OP_CUSTOM,
    .shape = custom_shape,
    .forward = custom_forward,
    .vjp = custom_vjp,
};

tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, void *user, tg_tensor *const *inputs,
                     size_t n, int rank, const size_t *shape)
{
    if (!tape) {
        tg__error(TG_EINVAL, "custom: tape is NULL");
        return NULL;
    }
    if (tape->status != TG_OK)
        return NULL;
    if (!op || !op->name || !op->name[0] || !op->forward) {
        tg_tape__fail(tape, TG_EINVAL, "custom: %s (node %zu)",
                      !op            ? "op is NULL"
                      : !op->name    ? "op->name is NULL"
                      : !op->name[0] ? "op->name is empty"
                                     : "op->forward is NULL",
                      tape->n_nodes);
        return NULL;
    }
    /* n = 0 (no dtype to take), inputs NULL and each input are checked there, named op->name. */
    const tg_attrs want = {.rank = rank, .shape = shape};
    return tg_tape__record_n(tape, &tg_op__custom, inputs, n, (tg_node_attr){.pending = &want}, op,
                             user);
}
