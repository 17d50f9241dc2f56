/* index.c: indexing and joins. slice, select and take pick elements along one axis, and
 * index_add adds rows back where take picks them; concat and stack join n tensors. Each result
 * is a copy (no op here is a view), and each VJP adds every element of dy back where that
 * element came from.
 *
 * Along one axis, a tensor is (outer, dim, inner): outer the product of the sizes before the
 * axis, inner of those after it. Copies move whole rows of `inner` elements with memcpy, so
 * the forwards that only pick need no dtype dispatch; index_add's and the VJPs add, by dtype.
 *
 * The differentiable VJPs (vjp_graph) put dy back with ops: slice and select pad it with
 * zero blocks (concat), or, for a slice with a step, interleave it with zero rows (reshapes and
 * a concat); concat and stack cut it up with slice and select; take and index_add, each the
 * other's transpose, put dy back with the other. Each is linear in dy with constant indices,
 * as the VJP it mirrors. */
#include "ops/op_impl.h"

#include "tape/scratch.h"

#include <math.h>
#include <string.h>

/* The product of shape[from..to). */
static size_t span(const size_t *shape, int from, int to)
{
    size_t n = 1;
    for (int i = from; i < to; i++)
        n *= shape[i];
    return n;
}

/* axis in -rank..rank-1 -> 0..rank-1; false when out of range. */
static bool norm_axis(int *axis, int rank)
{
    if (*axis < -rank || *axis >= rank)
        return false;
    if (*axis < 0)
        *axis += rank;
    return true;
}

static tg_status bad_axis(char *msg, size_t size, const tg_tensor *x, int axis)
{
    char s[96];
    snprintf(msg, size, "axis %d is out of range for shape %s (%d-D)", axis,
             tg_ops__fmt_shape(s, sizeof s, x), x->rank);
    return TG_EINVAL;
}

/* ---- what the differentiable VJPs share ------------------------------------------------------ */

/* A constant of x's dtype and shape, but `len` along axis, filled with `value`. */
static tg_tensor *filled_block(tg_tape *tape, const tg_tensor *x, int axis, size_t len,
                               double value)
{
    size_t shape[TG_MAX_RANK], n = 1;
    for (int i = 0; i < x->rank; i++) {
        shape[i] = i == axis ? len : x->shape[i];
        n *= shape[i];
    }
    void *v = tg_tape__scratch(tape, n * tg__esize(x), "grad_graph");
    if (!v)
        return NULL;
    DISPATCH(x->dtype, {
        T *V = v;
        for (size_t i = 0; i < n; i++)
            V[i] = (T)value;
    });
    return tg_constant(tape, (tg_dtype)x->dtype, x->rank, shape, v);
}

/* g placed at [before, before + its length) along axis of zeros `total` long there, g's shape
 * elsewhere: concat(zeros, g, zeros), the empty pieces left out. */
static tg_tensor *pad_axis_to(tg_tape *tape, tg_tensor *g, int axis, size_t before, size_t total)
{
    if (!g)
        return NULL;
    const size_t len = g->shape[axis], after = total - before - len;
    tg_tensor *parts[3];
    size_t n = 0;
    if (before)
        parts[n++] = filled_block(tape, g, axis, before, 0.0);
    if (len)
        parts[n++] = g;
    if (after)
        parts[n++] = filled_block(tape, g, axis, after, 0.0);
    return n == 1 ? parts[0] : tg_concat(tape, parts, n, axis);
}

/* g (x's shape but shorter along axis) placed at [before, before + its length) of zeros of
 * x's shape. */
static tg_tensor *pad_axis(tg_tape *tape, tg_tensor *g, const tg_tensor *x, int axis, size_t before)
{
    if (g && x->numel == 0)
        return tg_ops__zeros_like(tape, x);
    return pad_axis_to(tape, g, axis, before, x->shape[axis]);
}

/* ---- picking along one axis: slice and select ---------------------------------------------
 * y[o, j, i] = x[o, start + j*step, i] for j < count;  dx[o, start + j*step, i] += dy[o, j, i] */

typedef struct pick {
    size_t outer, dim, inner, start, step, count;
} pick;

/* memcpy(dst, src, len) for a row of the indexing and joining ops; a row of one element
 * (picking or joining along the last axis) is a load and a store, not a call. */
static inline void copy_row(void *dst, const void *src, size_t len)
{
    if (len == 4)
        memcpy(dst, src, 4);
    else if (len == 8)
        memcpy(dst, src, 8);
    else
        memcpy(dst, src, len);
}

/* What pick_run hands the pool. */
typedef struct pick_job {
    const tg_tensor *y;
    pick p;
    char *dx; /* the VJP's; NULL for the forward */
} pick_job;

/* BODY for rows [b, e) of the picked tensor, q = o * count + j, with x at the row of X that
 * row q moves to or from: its own (step >= 1), so any split writes every element once, as one
 * thread would. In runs within one o, the inner loop a plain strided one. */
#define PICK_ROWS(jb, b, e, X, BODY)                                                               \
    do {                                                                                           \
        const pick p_ = (jb)->p;                                                                   \
        const size_t row = p_.inner * tg__esize((jb)->y), stride = p_.step * row;                  \
        size_t o_ = (b) / p_.count, j_ = (b) % p_.count;                                           \
        for (size_t q0 = (b); q0 < (e); o_++, j_ = 0) {                                            \
            const size_t n_ = p_.count - j_ < (e)-q0 ? p_.count - j_ : (e)-q0;                     \
            char *x = (X) + (o_ * p_.dim + p_.start + j_ * p_.step) * row;                         \
            for (size_t q = q0; q < q0 + n_; q++, x += stride)                                     \
                BODY;                                                                              \
            q0 += n_;                                                                              \
        }                                                                                          \
    } while (0)

static void pick_forward_range(void *ctx, size_t b, size_t e)
{
    const pick_job *jb = ctx;
    char *Y = jb->y->data;
    PICK_ROWS(jb, b, e, (char *)jb->y->in[0]->data, copy_row(Y + q * row, x, row));
}

static void pick_vjp_range(void *ctx, size_t b, size_t e)
{
    const pick_job *jb = ctx;
    const char *DY = jb->y->grad;
    const tg_dtype dt = (tg_dtype)jb->y->dtype;
    PICK_ROWS(jb, b, e, jb->dx, tg_ops__add_row(dt, x, DY + q * row, p_.inner));
}

/* Over the pool by ranges of rows, each at least TG_PAR_GRAIN elements. */
static void pick_run(const tg_tensor *y, pick p, void *dx)
{
    if (!p.inner || !p.count)
        return;
    pick_job jb = {y, p, dx};
    tg__parallel_for(p.outer * p.count, (TG_PAR_GRAIN + p.inner - 1) / p.inner,
                     dx ? pick_vjp_range : pick_forward_range, &jb);
}

static void pick_forward(const tg_tensor *y, pick p)
{
    pick_run(y, p, NULL);
}

static void pick_vjp(tg_tape *tape, const tg_tensor *y, pick p)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (dx)
        pick_run(y, p, dx);
}

/* y = x[start:stop:step] along axis (NumPy basic slicing) */
static tg_status slice_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    const tg_attrs *at = y->attr.pending; /* read before the normalized form overwrites it */
    int axis = at->axis;
    ptrdiff_t start = at->start, stop = at->stop, step = at->step;
    if (!norm_axis(&axis, x->rank))
        return bad_axis(msg, size, x, at->axis);
    if (step <= 0) {
        snprintf(msg, size, "step %td: the step must be positive", step);
        return TG_EINVAL;
    }
    if (x->shape[axis] > PTRDIFF_MAX) {
        snprintf(msg, size, "axis %d of size %zu is too long to slice", axis, x->shape[axis]);
        return TG_ESHAPE;
    }
    const ptrdiff_t dim = (ptrdiff_t)x->shape[axis];
    if (start < 0)
        start = start + dim < 0 ? 0 : start + dim;
    else if (start > dim)
        start = dim;
    if (stop < 0)
        stop = stop + dim < 0 ? 0 : stop + dim;
    else if (stop > dim)
        stop = dim;
    const size_t count = stop > start ? (size_t)((stop - start - 1) / step) + 1 : 0;
    if (step > INT32_MAX) { /* the node keeps a 32-bit step: any step past the end is one */
        if (count > 1) {
            snprintf(msg, size, "step %td is too large", step);
            return TG_EINVAL;
        }
        step = INT32_MAX;
    }
    tg_ops__copy_shape(y, x);
    y->shape[axis] = count;
    y->attr = (tg_node_attr){.slice = {.start = start, .axis = axis, .step = (int32_t)step}};
    return TG_OK;
}

static pick slice_pick(const tg_tensor *y)
{
    const tg_tensor *x = y->in[0];
    int axis = y->attr.slice.axis;
    return (pick){span(x->shape, 0, axis),           x->shape[axis],
                  span(x->shape, axis + 1, x->rank), (size_t)y->attr.slice.start,
                  (size_t)y->attr.slice.step,        y->shape[axis]};
}

static void slice_forward(tg_tensor *y)
{
    pick_forward(y, slice_pick(y));
}

static void slice_vjp(tg_tape *tape, tg_tensor *y)
{
    pick_vjp(tape, y, slice_pick(y));
}

/* dx = dy padded with zeros back to x's shape. With a step, the elements of dy are not
 * contiguous in dx: seen as (outer, count, inner), dy gets step - 1 rows of zeros after each
 * of its rows (a concat along a new axis, (outer, count, step, inner)), which puts dy[j] at
 * j*step of the (outer, count*step, inner) it reshapes to; that is cut to what fits after
 * start, and padded to dim. Every step is linear, with no index (one in x's dtype would round
 * in f32 past 2^24) and no product: O(x's size), and so are its own derivatives. */
static tg_status slice_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_tensor *x = y->in[0];
    const int axis = y->attr.slice.axis;
    const size_t start = (size_t)y->attr.slice.start, step = (size_t)y->attr.slice.step;
    const size_t count = y->shape[axis], dim = x->shape[axis];
    if (step == 1 || count <= 1 || x->numel == 0) {
        dx[0] = pad_axis(tape, dy, x, axis, start);
        return tg_tape_status(tape);
    }
    /* count > 1 puts start + step within dim: count * step <= 2 * dim cannot overflow */
    const size_t outer = span(x->shape, 0, axis), inner = span(x->shape, axis + 1, x->rank);
    const size_t rows[4] = {outer, count, 1, inner}, line[3] = {outer, count * step, inner};
    const size_t fits = count * step < dim - start ? count * step : dim - start;
    tg_tensor *d = tg_reshape(tape, dy, 4, rows);
    tg_tensor *const parts[2] = {d, d ? filled_block(tape, d, 2, step - 1, 0.0) : NULL};
    tg_tensor *g = parts[1] ? tg_reshape(tape, tg_concat(tape, parts, 2, 2), 3, line) : NULL;
    if (g && fits < count * step)
        g = tg_slice(tape, g, 1, 0, (ptrdiff_t)fits, 1);
    g = pad_axis_to(tape, g, 1, start, dim);
    dx[0] = g ? tg_reshape(tape, g, x->rank, x->shape) : NULL;
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__slice = {
    .info = {.name = "slice", .arity = 1, .attrs = TG_ATTR_SLICE, .differentiable = true},
    .op = TG_OP_SLICE,
    .shape = slice_shape,
    .forward = slice_forward,
    .vjp = slice_vjp,
    .vjp_graph = slice_vjp_graph,
};

tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int axis, ptrdiff_t start, ptrdiff_t stop,
                    ptrdiff_t step)
{
    const tg_attrs at = {.axis = axis, .start = start, .stop = stop, .step = step};
    return tg_tape__record(tape, &tg_op__slice, x, NULL, (tg_node_attr){.pending = &at});
}

/* y = x[..., index, ...] along axis, which is dropped */
static tg_status select_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    const tg_attrs *at = y->attr.pending; /* read before the normalized form overwrites it */
    int axis = at->axis;
    ptrdiff_t index = at->index;
    if (!norm_axis(&axis, x->rank))
        return bad_axis(msg, size, x, at->axis);
    const size_t dim = x->shape[axis];
    if (index < 0 ? (size_t) - (index + 1) >= dim : (size_t)index >= dim) {
        char s[96];
        snprintf(msg, size, "index %td is out of range for axis %d of size %zu (shape %s)", index,
                 axis, dim, tg_ops__fmt_shape(s, sizeof s, x));
        return TG_ESHAPE;
    }
    if (index < 0)
        index += (ptrdiff_t)dim;
    y->rank = (uint8_t)(x->rank - 1);
    for (int i = 0, k = 0; i < x->rank; i++)
        if (i != axis)
            y->shape[k++] = x->shape[i];
    y->attr = (tg_node_attr){.select = {.index = index, .axis = axis}};
    return TG_OK;
}

static pick select_pick(const tg_tensor *y)
{
    const tg_tensor *x = y->in[0];
    int axis = y->attr.select.axis;
    return (pick){span(x->shape, 0, axis),
                  x->shape[axis],
                  span(x->shape, axis + 1, x->rank),
                  (size_t)y->attr.select.index,
                  1,
                  1};
}

static void select_forward(tg_tensor *y)
{
    pick_forward(y, select_pick(y));
}

static void select_vjp(tg_tape *tape, tg_tensor *y)
{
    pick_vjp(tape, y, select_pick(y));
}

/* dx = dy with the axis back (size 1), padded with zeros to x's shape */
static tg_status select_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_tensor *x = y->in[0];
    const int axis = y->attr.select.axis;
    size_t shape[TG_MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        shape[i] = i == axis ? 1 : x->shape[i];
    dx[0] =
        pad_axis(tape, tg_reshape(tape, dy, x->rank, shape), x, axis, (size_t)y->attr.select.index);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__select = {
    .info = {.name = "select", .arity = 1, .attrs = TG_ATTR_INDEX, .differentiable = true},
    .op = TG_OP_SELECT,
    .shape = select_shape,
    .forward = select_forward,
    .vjp = select_vjp,
    .vjp_graph = select_vjp_graph,
};

tg_tensor *tg_select(tg_tape *tape, tg_tensor *x, int axis, ptrdiff_t index)
{
    const tg_attrs at = {.axis = axis, .index = index};
    return tg_tape__record(tape, &tg_op__select, x, NULL, (tg_node_attr){.pending = &at});
}

/* ---- joins: concat and stack -----------------------------------------------------------------
 * Both lay out, for each o < outer (the sizes before the axis), input 0's block of row o, then
 * input 1's, ... (join_block). dx_k += the same blocks of dy. */

/* Input k's block of one o, in elements: its size along the axis times inner for concat,
 * inner for stack (whose inputs lack the axis). */
static inline size_t join_block(const tg_tensor *y, const tg_tensor *xk, size_t inner)
{
    return y->rank == xk->rank ? xk->shape[y->attr.r.axis] * inner : inner;
}

/* What the joins hand the pool: the node, its sizes before and after the axis, and for the
 * VJP of input k, k's block, where it starts in each row of dy, and dx_k. */
typedef struct join_job {
    const tg_tensor *y;
    size_t outer, inner;
    size_t len, off;
    char *dx;
} join_job;

static join_job join_job_of(const tg_tensor *y)
{
    const int axis = y->attr.r.axis;
    return (join_job){y, span(y->shape, 0, axis), span(y->shape, axis + 1, y->rank), 0, 0, NULL};
}

/* Rows o in [b, e) of y: input 0's block of row o, then input 1's, ... */
static void join_rows_range(void *ctx, size_t b, size_t e)
{
    const join_job *jb = ctx;
    const tg_tensor *y = jb->y;
    tg_tensor *const *in = y->attr.r.ext->in;
    const uint32_t count = y->attr.r.ext->n;
    const size_t es = tg__esize(y), inner = jb->inner;
    char *Y = (char *)y->data + b * (y->numel / jb->outer) * es;
    for (size_t o = b; o < e; o++)
        for (uint32_t k = 0; k < count; k++) {
            const size_t bytes = join_block(y, in[k], inner) * es;
            if (bytes)
                copy_row(Y, (const char *)in[k]->data + o * bytes, bytes);
            Y += bytes;
        }
}

/* Elements [b, e) of a y of one row (outer 1: nothing but sizes 1 before the axis): input k's
 * part of the range, then input k + 1's, ... */
static void join_one_row_range(void *ctx, size_t b, size_t e)
{
    const join_job *jb = ctx;
    tg_tensor *const *in = jb->y->attr.r.ext->in;
    const size_t es = tg__esize(jb->y);
    char *const Y = jb->y->data;
    size_t k = 0, start = 0; /* where input k starts in y */
    while (start + in[k]->numel <= b)
        start += in[k++]->numel;
    for (size_t q = b; q < e; start += in[k++]->numel) {
        const size_t end = start + in[k]->numel < e ? start + in[k]->numel : e; /* >= q */
        if (end > q)
            copy_row(Y + q * es, (const char *)in[k]->data + (q - start) * es, (end - q) * es);
        q = end;
    }
}

/* Rows o in [b, e) of dx_k: dx_k += its blocks of dy. */
static void join_vjp_rows_range(void *ctx, size_t b, size_t e)
{
    const join_job *jb = ctx;
    const tg_tensor *y = jb->y;
    const tg_dtype dt = (tg_dtype)y->dtype;
    const size_t es = tg__esize(y), row = y->numel / jb->outer, len = jb->len;
    char *dx = jb->dx + b * len * es;
    const char *dy = (const char *)y->grad + (b * row + jb->off) * es;
    for (size_t o = b; o < e; o++, dx += len * es, dy += row * es)
        tg_ops__add_row(dt, dx, dy, len);
}

/* Over the pool by ranges of rows o, each at least TG_PAR_GRAIN elements; with one row, by
 * ranges of its elements. Every element is written once, however split. */
static void join_forward(tg_tensor *y)
{
    join_job jb = join_job_of(y);
    if (!y->numel)
        return;
    const size_t row = y->numel / jb.outer;
    if (jb.outer == 1)
        tg__parallel_for(row, TG_PAR_GRAIN, join_one_row_range, &jb);
    else
        tg__parallel_for(jb.outer, (TG_PAR_GRAIN + row - 1) / row, join_rows_range, &jb);
}

/* Input by input, each over the pool as the forward: by rows, or with one row by elements. */
static void join_vjp(tg_tape *tape, tg_tensor *y)
{
    const tg_node_ext *e = y->attr.r.ext;
    join_job jb = join_job_of(y);
    if (!jb.outer)
        return;
    for (uint32_t k = 0; k < e->n; k++, jb.off += jb.len) {
        jb.len = join_block(y, e->in[k], jb.inner);
        if (!(jb.dx = tg_tape__grad_of(tape, e->in[k]))) {
            if (tape->status != TG_OK)
                return;
        } else if (jb.outer == 1) {
            tg_ops__add_into((tg_dtype)y->dtype, jb.dx, (char *)y->grad + jb.off * tg__esize(y),
                             jb.len);
        } else if (jb.len) {
            tg__parallel_for(jb.outer, (TG_PAR_GRAIN + jb.len - 1) / jb.len, join_vjp_rows_range,
                             &jb);
        }
    }
}

/* Input k differs from input 0 (rank, or a size on an axis other than `skip`): the message. */
static tg_status join_mismatch(char *msg, size_t size, const char *what, size_t k,
                               const tg_tensor *xk, const tg_tensor *x0)
{
    char sk[96], s0[96];
    snprintf(msg, size, "input %zu has shape %s and input 0 %s: %s", k,
             tg_ops__fmt_shape(sk, sizeof sk, xk), tg_ops__fmt_shape(s0, sizeof s0, x0), what);
    return TG_ESHAPE;
}

/* y = xs[0] ++ xs[1] ++ ... along an existing axis */
static tg_status concat_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_node_ext *e = y->attr.r.ext;
    const tg_tensor *x0 = e->in[0];
    int axis = y->attr.r.axis;
    if (x0->rank == 0) {
        snprintf(msg, size, "input 0 is 0-d: concat joins along an existing axis (stack adds one)");
        return TG_ESHAPE;
    }
    if (!norm_axis(&axis, x0->rank))
        return bad_axis(msg, size, x0, y->attr.r.axis);
    size_t total = 0;
    for (uint32_t k = 0; k < e->n; k++) {
        const tg_tensor *x = e->in[k];
        if (x->rank != x0->rank)
            return join_mismatch(msg, size, "ranks differ", k, x, x0);
        for (int d = 0; d < x0->rank; d++)
            if (d != axis && x->shape[d] != x0->shape[d]) {
                char what[64];
                snprintf(what, sizeof what, "sizes differ on axis %d (concat axis %d)", d, axis);
                return join_mismatch(msg, size, what, k, x, x0);
            }
        if (__builtin_add_overflow(total, x->shape[axis], &total)) {
            snprintf(msg, size, "the joined axis is too long");
            return TG_ESHAPE;
        }
    }
    tg_ops__copy_shape(y, x0);
    y->shape[axis] = total;
    y->attr.r.axis = axis;
    return TG_OK;
}

/* dx_k = dy's slice along the axis where input k was put */
static tg_status concat_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_node_ext *e = y->attr.r.ext;
    const int axis = y->attr.r.axis;
    size_t off = 0;
    for (uint32_t k = 0; k < e->n; k++) {
        const size_t len = e->in[k]->shape[axis];
        if (e->in[k]->requires_grad)
            dx[k] = e->n == 1 ? dy
                              : tg_slice(tape, dy, axis, (ptrdiff_t)off, (ptrdiff_t)(off + len), 1);
        off += len;
    }
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__concat = {
    .info = {.name = "concat", .arity = TG_VARIADIC, .attrs = TG_ATTR_AXIS, .differentiable = true},
    .op = TG_OP_CONCAT,
    .shape = concat_shape,
    .forward = join_forward,
    .vjp = join_vjp,
    .vjp_graph = concat_vjp_graph,
};

tg_tensor *tg_concat(tg_tape *tape, tg_tensor *const *xs, size_t n, int axis)
{
    return tg_tape__record_n(tape, &tg_op__concat, xs, n, (tg_node_attr){.r = {axis, 1, NULL}},
                             NULL, NULL);
}

/* y[..., k, ...] = xs[k] along a new axis */
static tg_status stack_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_node_ext *e = y->attr.r.ext;
    const tg_tensor *x0 = e->in[0];
    int axis = y->attr.r.axis;
    if (axis < -(x0->rank + 1) || axis > x0->rank) {
        char s[96];
        snprintf(msg, size, "axis %d is out of range %d..%d for inputs of shape %s", axis,
                 -(x0->rank + 1), x0->rank, tg_ops__fmt_shape(s, sizeof s, x0));
        return TG_EINVAL;
    }
    if (axis < 0)
        axis += x0->rank + 1;
    if (x0->rank == TG_MAX_RANK) {
        char s[96];
        snprintf(msg, size, "inputs of shape %s: the result would have %d axes, more than %d",
                 tg_ops__fmt_shape(s, sizeof s, x0), x0->rank + 1, TG_MAX_RANK);
        return TG_ESHAPE;
    }
    for (uint32_t k = 1; k < e->n; k++) {
        const tg_tensor *x = e->in[k];
        bool same = x->rank == x0->rank;
        for (int d = 0; same && d < x0->rank; d++)
            same = x->shape[d] == x0->shape[d];
        if (!same)
            return join_mismatch(msg, size, "stack takes tensors of one shape", k, x, x0);
    }
    y->rank = (uint8_t)(x0->rank + 1);
    for (int d = 0, k = 0; d < y->rank; d++)
        y->shape[d] = d == axis ? (size_t)e->n : x0->shape[k++];
    y->attr.r.axis = axis;
    return TG_OK;
}

/* dx_k = dy at index k of the new axis */
static tg_status stack_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    const tg_node_ext *e = y->attr.r.ext;
    for (uint32_t k = 0; k < e->n; k++)
        if (e->in[k]->requires_grad)
            dx[k] = tg_select(tape, dy, y->attr.r.axis, (ptrdiff_t)k);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__stack = {
    .info = {.name = "stack", .arity = TG_VARIADIC, .attrs = TG_ATTR_AXIS, .differentiable = true},
    .op = TG_OP_STACK,
    .shape = stack_shape,
    .forward = join_forward,
    .vjp = join_vjp,
    .vjp_graph = stack_vjp_graph,
};

tg_tensor *tg_stack(tg_tape *tape, tg_tensor *const *xs, size_t n, int axis)
{
    return tg_tape__record_n(tape, &tg_op__stack, xs, n, (tg_node_attr){.r = {axis, 1, NULL}}, NULL,
                             NULL);
}

/* ---- take ----------------------------------------------------------------------------------
 * y[o, j, i] = x[o, idx[j], i] (j over idx's elements, row-major);  dx[o, idx[j], i] +=
 * dy[o, j, i], so repeated indices accumulate. The shape rule checks idx's values; the forward
 * and the VJP read them again (idx may be a leaf the caller changes in between), and skip any
 * that is no longer valid rather than read or write out of bounds. */

static double idx_value(const tg_tensor *idx, size_t j)
{
    return idx->dtype == TG_F32 ? (double)((const float *)idx->data)[j]
                                : ((const double *)idx->data)[j];
}

/* The position idx value v names along an axis of size dim, or SIZE_MAX when it names none. */
static size_t take_at(double v, size_t dim)
{
    if (!(v >= -(double)dim && v < (double)dim) || v != floor(v))
        return SIZE_MAX;
    if (v >= 0)
        return (size_t)v < dim ? (size_t)v : SIZE_MAX;
    size_t back = (size_t)-v;
    return back <= dim ? dim - back : SIZE_MAX;
}

/* TG_OK when every element of idx names a position along an axis of size dim, else the error
 * naming the first that does not: TG_ESHAPE out of range, TG_EINVAL not an integer. */
static tg_status check_indices(const tg_tensor *idx, size_t dim, int axis, char *msg, size_t size)
{
    for (size_t j = 0; j < idx->numel; j++) {
        double v = idx_value(idx, j);
        if (take_at(v, dim) == SIZE_MAX) {
            bool integer = isfinite(v) && v == floor(v);
            snprintf(msg, size, "idx element %zu is %.17g, %s axis %d of size %zu", j, v,
                     integer ? "out of range for" : "not an integer index of", axis, dim);
            return integer ? TG_ESHAPE : TG_EINVAL;
        }
    }
    return TG_OK;
}

/* take's result shape, x.shape[:axis] + idx.shape + x.shape[axis+1:], into shape (its rank,
 * x->rank - 1 + idx->rank, at most TG_MAX_RANK). */
static void taken_shape(size_t *shape, const tg_tensor *x, const tg_tensor *idx, int axis)
{
    int k = 0;
    for (int d = 0; d < axis; d++)
        shape[k++] = x->shape[d];
    for (int d = 0; d < idx->rank; d++)
        shape[k++] = idx->shape[d];
    for (int d = axis + 1; d < x->rank; d++)
        shape[k++] = x->shape[d];
}

/* x of take(x, idx, axis) seen as (outer, dim, inner), and m, idx's element count: the result
 * is (outer, m, inner). */
typedef struct take_dims {
    size_t outer, dim, inner, m;
} take_dims;

static take_dims take_dims_of(const tg_tensor *x, const tg_tensor *idx, int axis)
{
    return (take_dims){span(x->shape, 0, axis), x->shape[axis], span(x->shape, axis + 1, x->rank),
                       idx->numel};
}

/* How rows move between `full`, of x's shape, and `picked`, of take's, for every (o, j):
 * ROWS_COPY picked[o, j, :] = full[o, idx[j], :] (take's forward; zeros for an index no
 * longer valid), ROWS_SCATTER full[o, idx[j], :] += picked[o, j, :] (take's VJP, index_add's
 * forward), ROWS_GATHER picked[o, j, :] += full[o, idx[j], :] (index_add's VJP into src). */
typedef enum rows_mode { ROWS_COPY, ROWS_SCATTER, ROWS_GATHER } rows_mode;

typedef struct rows_job {
    const tg_tensor *idx;
    take_dims d;
    tg_dtype dt;
    rows_mode mode;
    bool by_outer; /* the pool's ranges are of o (else of the columns i, with outer 1) */
    char *full, *picked;
} rows_job;

/* Indices read at a time: each is checked (take_at) once for all o, not once per o. */
#define ROWS_BLOCK 256

/* Rows of o in [b, e) (by_outer), or columns [b, e) of every row (outer 1), every j in order:
 * a destination element is written by one range only, its terms added in j's order, so the
 * result does not depend on the split. */
static void rows_range(void *ctx, size_t b, size_t e)
{
    const rows_job *jb = ctx;
    const take_dims d = jb->d;
    const size_t es = tg_dtype_size(jb->dt), row = d.inner * es;
    const size_t o0 = jb->by_outer ? b : 0, o1 = jb->by_outer ? e : d.outer;
    const size_t c0 = jb->by_outer ? 0 : b, n = (jb->by_outer ? d.inner : e) - c0;
    const size_t len = n * es;
    size_t pos[ROWS_BLOCK];
    for (size_t j0 = 0; j0 < d.m; j0 += ROWS_BLOCK) {
        const size_t nj = d.m - j0 < ROWS_BLOCK ? d.m - j0 : ROWS_BLOCK;
        for (size_t j = 0; j < nj; j++)
            pos[j] = take_at(idx_value(jb->idx, j0 + j), d.dim);
        for (size_t o = o0; o < o1; o++) {
            char *f = jb->full + o * d.dim * row + c0 * es;
            char *p = jb->picked + (o * d.m + j0) * row + c0 * es;
            for (size_t j = 0; j < nj; j++, p += row) {
                if (pos[j] == SIZE_MAX) {
                    if (jb->mode == ROWS_COPY)
                        memset(p, 0, len);
                    continue;
                }
                char *fk = f + pos[j] * row;
                if (jb->mode == ROWS_COPY)
                    copy_row(p, fk, len);
                else if (jb->mode == ROWS_SCATTER)
                    tg_ops__add_row(jb->dt, fk, p, n);
                else
                    tg_ops__add_row(jb->dt, p, fk, n);
            }
        }
    }
}

/* Moves the rows (rows_mode) over the pool: by ranges of o when there are two or more, else
 * by ranges of at least 16 columns (a cache line of f32), each at least TG_PAR_GRAIN
 * elements' work. */
static void move_rows(tg_dtype dt, const tg_tensor *idx, take_dims d, void *full, void *picked,
                      rows_mode mode)
{
    if (!d.outer || !d.m || !d.inner)
        return;
    rows_job jb = {idx, d, dt, mode, d.outer > 1, full, picked};
    if (jb.by_outer) {
        const size_t per_o = d.m * d.inner;
        tg__parallel_for(d.outer, (TG_PAR_GRAIN + per_o - 1) / per_o, rows_range, &jb);
    } else {
        const size_t grain = (TG_PAR_GRAIN + d.m - 1) / d.m;
        tg__parallel_for(d.inner, grain > 16 ? grain : 16, rows_range, &jb);
    }
}

static tg_status take_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0], *idx = y->in[1];
    int axis = y->attr.r.axis;
    if (!norm_axis(&axis, x->rank))
        return bad_axis(msg, size, x, y->attr.r.axis);
    const int rank = x->rank - 1 + idx->rank;
    if (rank > TG_MAX_RANK) {
        char sx[96], si[96];
        snprintf(msg, size,
                 "x %s, idx %s along axis %d: the result would have %d axes, more than %d",
                 tg_ops__fmt_shape(sx, sizeof sx, x), tg_ops__fmt_shape(si, sizeof si, idx), axis,
                 rank, TG_MAX_RANK);
        return TG_ESHAPE;
    }
    tg_status st = check_indices(idx, x->shape[axis], axis, msg, size);
    if (st != TG_OK)
        return st;
    y->rank = (uint8_t)rank;
    taken_shape(y->shape, x, idx, axis);
    y->attr.r.axis = axis;
    return TG_OK;
}

static void take_forward(tg_tensor *y)
{
    const tg_tensor *x = y->in[0], *idx = y->in[1];
    move_rows((tg_dtype)y->dtype, idx, take_dims_of(x, idx, y->attr.r.axis), x->data, y->data,
              ROWS_COPY);
}

static void take_vjp(tg_tape *tape, tg_tensor *y)
{
    tg_tensor *x = y->in[0];
    const tg_tensor *idx = y->in[1];
    void *dx = tg_tape__grad_of(tape, x);
    if (dx)
        move_rows((tg_dtype)y->dtype, idx, take_dims_of(x, idx, y->attr.r.axis), dx, y->grad,
                  ROWS_SCATTER);
}

/* dx = index_add(zeros, idx, dy, axis): take's transpose, an op, with the index tensor itself
 * (which carries no derivative). take is linear in x with constant indices, and so is this in
 * dy; its own VJP is take again, so every order costs what the first does: two tensors of x's
 * size (the zeros and the sum) and m * outer * inner additions. (The dense 0/1 matrix this
 * replaced, dim x m, cost less only for a few picks from a large x.) */
static tg_status take_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    if (y->in[0]->requires_grad)
        dx[0] =
            tg_index_add(tape, tg_ops__zeros_like(tape, y->in[0]), y->in[1], dy, y->attr.r.axis);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__take = {
    .info = {.name = "take", .arity = 2, .attrs = TG_ATTR_AXIS, .differentiable = true},
    .op = TG_OP_TAKE,
    .checks_values = true,
    .shape = take_shape,
    .forward = take_forward,
    .vjp = take_vjp,
    .vjp_graph = take_vjp_graph,
};

tg_tensor *tg_take(tg_tape *tape, tg_tensor *x, tg_tensor *idx, int axis)
{
    return tg_tape__record(tape, &tg_op__take, x, idx, (tg_node_attr){.r = {axis, 1, NULL}});
}

/* ---- index_add -------------------------------------------------------------------------------
 * y = x, then y[o, idx[j], i] += src[o, j, i] for j over idx's elements in order: take's
 * transpose (NumPy's np.add.at along one axis), so repeated indices accumulate. src has the
 * shape take(x, idx, axis) has. dx += dy, dsrc += take(dy, idx, axis), idx gets none. Its
 * inputs: attr.r.ext->in[0..2] = x, idx, src. As take's, the forward and the VJP read idx
 * again and skip a value no longer valid. */

static tg_status index_add_shape(tg_tensor *y, char *msg, size_t size)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    const tg_tensor *x = in[0], *idx = in[1], *src = in[2];
    int axis = y->attr.r.axis;
    if (!norm_axis(&axis, x->rank))
        return bad_axis(msg, size, x, y->attr.r.axis);
    const int rank = x->rank - 1 + idx->rank;
    size_t want[TG_MAX_RANK];
    if (rank <= TG_MAX_RANK)
        taken_shape(want, x, idx, axis);
    if (rank > TG_MAX_RANK || src->rank != rank ||
        memcmp(src->shape, want, (size_t)rank * sizeof want[0]) != 0) {
        char sx[96], si[96], ss[96], sw[96];
        const int n =
            snprintf(msg, size, "src %s does not fit x %s, idx %s along axis %d: ",
                     tg_ops__fmt_shape(ss, sizeof ss, src), tg_ops__fmt_shape(sx, sizeof sx, x),
                     tg_ops__fmt_shape(si, sizeof si, idx), axis);
        if (n >= 0 && (size_t)n < size) {
            if (rank > TG_MAX_RANK)
                snprintf(msg + n, size - (size_t)n,
                         "take's result would have %d axes, more than %d", rank, TG_MAX_RANK);
            else
                snprintf(msg + n, size - (size_t)n, "it must have take's result shape, %s",
                         tg_shape_format(sw, sizeof sw, rank, want));
        }
        return TG_ESHAPE;
    }
    tg_status st = check_indices(idx, x->shape[axis], axis, msg, size);
    if (st != TG_OK)
        return st;
    tg_ops__copy_shape(y, x);
    y->attr.r.axis = axis;
    return TG_OK;
}

static void index_add_forward(tg_tensor *y)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    memcpy(y->data, in[0]->data, tg__nbytes(y));
    move_rows((tg_dtype)y->dtype, in[1], take_dims_of(y, in[1], y->attr.r.axis), y->data,
              in[2]->data, ROWS_SCATTER);
}

static void index_add_vjp(tg_tape *tape, tg_tensor *y)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    void *dx = tg_tape__grad_of(tape, in[0]), *dsrc = tg_tape__grad_of(tape, in[2]);
    if (dx)
        tg_ops__add_into((tg_dtype)y->dtype, dx, y->grad, y->numel);
    if (dsrc)
        move_rows((tg_dtype)y->dtype, in[1], take_dims_of(y, in[1], y->attr.r.axis), y->grad, dsrc,
                  ROWS_GATHER);
}

/* dx = dy, dsrc = take(dy, idx, axis): linear in dy, idx a constant of the derivative. */
static tg_status index_add_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    if (in[0]->requires_grad)
        dx[0] = dy;
    if (in[2]->requires_grad)
        dx[2] = tg_take(tape, dy, in[1], y->attr.r.axis);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__index_add = {
    .info = {.name = "index_add", .arity = 3, .attrs = TG_ATTR_AXIS, .differentiable = true},
    .op = TG_OP_INDEX_ADD,
    .checks_values = true,
    .shape = index_add_shape,
    .forward = index_add_forward,
    .vjp = index_add_vjp,
    .vjp_graph = index_add_vjp_graph,
};

tg_tensor *tg_index_add(tg_tape *tape, tg_tensor *x, tg_tensor *idx, tg_tensor *src, int axis)
{
    tg_tensor *const in[3] = {x, idx, src};
    return tg_tape__record_n(tape, &tg_op__index_add, in, 3, (tg_node_attr){.r = {axis, 1, NULL}},
                             NULL, NULL);
}
