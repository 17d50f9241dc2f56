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
 * and the backward walk after each VJP.
 *
 * tg_grad_graph records a custom op's gradient with the user's vjp_graph when it has one;
 * otherwise it records the user's vjp itself as a custom node of its own ("NAME.vjp", see
 * record_vjp below), which gives the right values but cannot be differentiated. */
#include "ops/op_impl.h"

#include "tape/scratch.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

_Static_assert(offsetof(tg_node_attr, r.ext) >= sizeof(const tg_attrs *),
               "attr.pending (the requested shape) and attr.r.ext (the inputs) do not overlap");

/* A status a callback returned, as the tape keeps it: an error code of tg_status, or
 * TG_EINVAL for a value that is none (a callback that returned 1, say). */
static tg_status as_error(tg_status st)
{
    return tg__is_error(st) ? st : TG_EINVAL;
}

/* Keeps a failed callback's status on the tape, with the op's name, the phase and its
 * message, msg[0..size) (or a default when it wrote none). A message that fills the buffer
 * without a terminating NUL (strncpy leaves none) is cut at its last byte. */
static void fail(tg_tape *tape, const tg_tensor *y, const char *phase, tg_status st, char *msg,
                 size_t size)
{
    tg_status err = as_error(st);
    char why[64];
    msg[size - 1] = '\0';
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

/* The error for a callback of op `name` at node y that reset the tape it was called on (a
 * forward while recording or replaying, a vjp_graph while tg_grad_graph walks): y and what the
 * caller holds (the walk's gradients, in the data arena) are another recording's now, which the
 * caller would go on reading and writing as its own. y's ext is not read: it was in the data
 * arena, which the reset gave back. */
static void fail_reset(tg_tape *tape, const char *name, const tg_tensor *y, const char *phase)
{
    /* name was copied before the call: a NAME.vjp op's own lives in the data arena too */
    tg_tape__fail(tape, TG_EINVAL,
                  "%s: %s: the callback reset the tape it was called on; a callback computes "
                  "with what it is given (node %u)",
                  name, phase, y->index);
}

/* The op's name, copied (cut at 63 bytes) to outlive a reset: for fail_reset. */
typedef struct name_copy {
    char s[64];
} name_copy;

static name_copy copy_name(const char *name)
{
    name_copy c;
    const size_t len = strnlen(name, sizeof c.s - 1);
    memcpy(c.s, name, len);
    c.s[len] = '\0';
    return c;
}

/* y = forward(in...): the user writes y's values, zeroed first so that a forward that skips
 * an element leaves 0 there rather than an earlier recording's bytes. */
static void custom_forward(tg_tensor *y)
{
    const tg_node_ext *ext = y->attr.r.ext;
    const uint32_t gen = y->gen;
    const name_copy name = copy_name(ext->custom->name);
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
    tg_tape *tape = y->tape;
    const bool nested = tape->in_custom_forward; /* a forward that records another custom op */
    tape->in_custom_forward = true;
    tg_status st = ext->custom->forward(&call);
    tape->in_custom_forward = nested;
    if (y->tape->base.gen != gen)
        fail_reset(y->tape, name.s, y, "forward");
    else if (st != TG_OK)
        fail(y->tape, y, "forward", st, msg, sizeof msg);
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
    /* The table of gradient pointers lives for this call only; past 8 inputs it is taken
     * from the arena after the gradients it points at (which must outlive the call) and given
     * back at the end, so that a backward pass per replay does not grow the arena. Getting a
     * gradient twice in one pass gives the same buffer, allocated and zeroed once. */
    for (uint32_t i = 0; i < ext->n; i++) {
        (void)tg_tape__grad_of(tape, ext->in[i]);
        if (tape->status != TG_OK) /* out of memory for that gradient */
            return;
    }
    const tg_arena mark = tg_tape__scratch_mark(tape);
    const size_t n_nodes = tape->n_nodes;
    const uint32_t gen = tape->base.gen, pass = tape->base.pass;
    const bool capture = tape->capture;
    const name_copy name = copy_name(ext->custom->name);
    void *small[8];
    void **dx = ext->n <= 8 ? small : tg_tape__alloc(tape, ext->n * sizeof *dx);
    if (!dx) {
        tg_tape__fail_oom(tape, tg_node__op_name(y), ext->n * sizeof *dx);
        return;
    }
    for (uint32_t i = 0; i < ext->n; i++)
        dx[i] = tg_tape__grad_of(tape, ext->in[i]);
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
    if (tape->n_nodes == n_nodes) /* (as in replay: a callback that recorded keeps what it made) */
        tg_tape__scratch_release(tape, &mark);
    /* The walk that called us holds the node list, the pass and tg_grad's capture as they were:
     * a callback that recorded on this tape (the list may have moved), ran a backward, tg_grad
     * or a replay on it, or reset it, has pulled them from under the walk. Stop it here, before
     * it reads them again (the walk stops at the tape's error). */
    if (tape->n_nodes != n_nodes || tape->base.gen != gen || tape->base.pass != pass ||
        tape->capture != capture) {
        tg_tape__fail(tape, TG_EINVAL,
                      "%s: backward: the VJP callback used the tape being differentiated: it "
                      "recorded on it, ran a backward, tg_grad or a replay on it, or reset it; "
                      "compute with call->in, call->dy and call->dx, or on a tape of its own "
                      "(node %u)",
                      name.s, y->index); /* (ext may be gone: a reset gave back its memory) */
        return;
    }
    if (st != TG_OK)
        fail(tape, y, "backward", st, msg, sizeof msg);
}

/* ---- the differentiable VJP (tg_grad_graph) -------------------------------------------------- */

/* The custom op of a node NAME.vjp, which runs the VJP of a node of op `of`: its inputs are
 * that node's inputs x_0..x_{n-1}, its output y and y's gradient dy; its output is the
 * gradients of the x_i that require grad, flattened and laid end to end (x_i's at
 * offset[i], SIZE_MAX for the others). It lives in the tape's scratch until the reset. */
typedef struct vjp_node_op {
    tg_custom_op op; /* NAME.vjp: forward run_vjp, vjp no_second_vjp */
    const tg_custom_op *of;
    void *user; /* the user pointer of the node whose VJP it runs */
    size_t *offset;
    void **dx; /* run_vjp's gradient pointers, one per x_i */
} vjp_node_op;

/* NAME.vjp's forward: of->vjp, adding into its own (zeroed) output */
static tg_status run_vjp(const tg_custom_call *call)
{
    const vjp_node_op *b = call->user;
    const size_t n = call->n - 2, es = tg__esize(call->out);
    for (size_t i = 0; i < n; i++)
        b->dx[i] = b->offset[i] == SIZE_MAX ? NULL : (char *)call->y + b->offset[i] * es;
    const tg_custom_call inner = {
        .user = b->user,
        .n = n,
        .in = call->in,
        .out = call->in[n],
        .dy = call->in[n + 1]->data,
        .dx = b->dx,
        .msg = call->msg,
        .msg_size = call->msg_size,
    };
    return b->of->vjp(&inner);
}

#define NO_SECOND_VJP                                                                              \
    "custom op '%s' has no differentiable VJP: give it a vjp_graph to differentiate twice"

/* NAME.vjp's VJP: none, said clearly (a gradient reached it through tg_grad or tg_backward) */
static tg_status no_second_vjp(const tg_custom_call *call)
{
    const vjp_node_op *b = call->user;
    snprintf(call->msg, call->msg_size, NO_SECOND_VJP, b->of->name);
    return TG_EINVAL;
}

/* Records node y's VJP as a NAME.vjp node and cuts its output into the inputs' gradients. */
static tg_status record_vjp(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_node_ext *ext = y->attr.r.ext;
    const size_t n = ext->n, len = strlen(ext->custom->name) + sizeof ".vjp";
    vjp_node_op *b = tg_tape__scratch(tape, sizeof *b, "custom");
    char *name = tg_tape__scratch(tape, len, "custom");
    size_t *offset = tg_tape__scratch(tape, n * sizeof *offset, "custom");
    void **dxp = tg_tape__scratch(tape, n * sizeof *dxp, "custom");
    tg_tensor **ins = tg_tape__scratch(tape, (n + 2) * sizeof *ins, "custom");
    if (!b || !name || !offset || !dxp || !ins)
        return tg_tape_status(tape);
    snprintf(name, len, "%s.vjp", ext->custom->name);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        offset[i] = ext->in[i]->requires_grad ? total : SIZE_MAX;
        total += ext->in[i]->requires_grad ? ext->in[i]->numel : 0;
        ins[i] = ext->in[i];
    }
    ins[n] = y;
    ins[n + 1] = dy;
    *b = (vjp_node_op){
        .op = {.name = name, .forward = run_vjp, .vjp = no_second_vjp},
        .of = ext->custom,
        .user = ext->user,
        .offset = offset,
        .dx = dxp,
    };
    tg_tensor *g = tg_custom(tape, &b->op, b, ins, n + 2, 1, &total);
    for (size_t i = 0; g && i < n; i++) {
        const tg_tensor *x = ext->in[i];
        if (offset[i] == SIZE_MAX)
            continue;
        tg_tensor *piece = x->numel == total ? g
                                             : tg_slice(tape, g, 0, (ptrdiff_t)offset[i],
                                                        (ptrdiff_t)(offset[i] + x->numel), 1);
        dx[i] = tg_reshape(tape, piece, x->rank, x->shape);
    }
    return tg_tape_status(tape);
}

/* dx = the user's vjp_graph; without one, the user's vjp recorded as a node (record_vjp) */
static tg_status custom_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_node_ext *ext = y->attr.r.ext;
    const tg_custom_op *op = ext->custom;
    if (op->vjp == no_second_vjp) { /* y is itself a NAME.vjp node */
        const vjp_node_op *b = ext->user;
        tg_tape__fail(tape, TG_EINVAL, "%s: grad_graph: " NO_SECOND_VJP " (node %u)",
                      tg_node__op_name(y), b->of->name, y->index);
        return TG_EINVAL;
    }
    if (!op->vjp_graph && !op->vjp) {
        tg_tape__fail(tape, TG_EINVAL,
                      "%s: grad_graph: this custom op has no VJP, and a gradient flows into it "
                      "(node %u); give it one, or pass its inputs through tg_detach",
                      tg_node__op_name(y), y->index);
        return TG_EINVAL;
    }
    if (!op->vjp_graph)
        return record_vjp(tape, y, dy, dx);
    char msg[200] = "";
    const tg_custom_grad_call call = {
        .tape = tape,
        .user = ext->user,
        .n = ext->n,
        .in = ext->in,
        .out = y,
        .dy = dy,
        .dx = dx,
        .msg = msg,
        .msg_size = sizeof msg,
    };
    const uint32_t gen = tape->base.gen;
    const name_copy name = copy_name(op->name);
    tg_status st = op->vjp_graph(&call);
    if (tape->base.gen != gen) {
        fail_reset(tape, name.s, y, "vjp_graph");
        return TG_EINVAL;
    }
    if (st != TG_OK)
        fail(tape, y, "vjp_graph", st, msg, sizeof msg);
    /* What it gives back becomes the caller's gradient, the tape's: dy itself, or a tensor it
     * recorded on this tape since its last reset (not a leaf of its own, say). The entries of
     * inputs that need no gradient are ignored, as ops.h says: dropped, not checked. */
    for (size_t i = 0; i < ext->n && tg_tape_status(tape) == TG_OK; i++) {
        if (!ext->in[i]->requires_grad)
            dx[i] = NULL;
        const tg_tensor *g = dx[i];
        if (g && g != dy &&
            ((g->flags & TG_TF_LEAF) || g->tape != tape || g->gen != tape->base.gen))
            tg_tape__fail(tape, TG_EINVAL,
                          "%s: vjp_graph: dx[%zu] is %s, not a tensor recorded on the tape it was "
                          "given since its last reset (node %u)",
                          tg_node__op_name(y), i,
                          (g->flags & TG_TF_LEAF) ? "a leaf"
                          : g->tape != tape       ? "a tensor of another tape"
                                                  : "a tensor of an earlier recording",
                          y->index);
    }
    return tg_tape_status(tape);
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
    .vjp_graph = custom_vjp_graph,
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
