/* shape.c: ops that move or relabel elements rather than compute them: constants, detach,
 * reshape (views sharing their input's memory), transpose and permute. (Picking elements by
 * index and joining tensors: index.c.) Their differentiable VJPs (vjp_graph) are the inverse
 * moves applied to dy; const and detach pass no gradient, so they have none. */
#include "ops/op_impl.h"

/* ---- constants ---------------------------------------------------------------------------- */

/* A constant has no inputs and no shape rule: tg_constant records it directly. */
static tg_status const_shape(tg_tensor *y, char *msg, size_t size)
{
    TG_UNUSED(y);
    snprintf(msg, size, "constants are made with tg_constant");
    return TG_EINVAL;
}

static void const_forward(tg_tensor *y)
{
    TG_UNUSED(y);
}

const tg_op_desc tg_op__const = {
    .info = {.name = "const", .arity = 0, .attrs = TG_ATTR_NONE, .differentiable = false},
    .op = TG_OP_CONST,
    .shape = const_shape,
    .forward = const_forward,
    .vjp = NULL,
};

/* tg_constant, or (zeros) a constant of zeros written in place, without data to copy from
 * (tg_ops__zeros_like). */
static tg_tensor *record_constant(tg_tape *tape, tg_dtype dtype, int rank, const size_t *shape,
                                  const void *data, bool zeros)
{
    if (!tape) {
        tg__error(TG_EINVAL, "constant: tape is NULL");
        return NULL;
    }
    if (tape->status != TG_OK)
        return NULL;
    size_t numel;
    if (tg_tensor__check_shape("constant", dtype, rank, shape, &numel) != TG_OK) {
        tg_tape__fail(tape, tg_last_status(), "%s (node %zu)", tg_last_error(), tape->n_nodes);
        return NULL;
    }
    if (!zeros && !data && numel) {
        tg_tape__fail(tape, TG_EINVAL, "constant: data is NULL (node %zu)", tape->n_nodes);
        return NULL;
    }
    tg_tensor *y = tg_tape__new_header(tape);
    if (!y) {
        tg_tape__fail_oom(tape, "constant", sizeof *y);
        return NULL;
    }
    /* A constant of the plan's dtype and shape is planned: its consumers may be too. */
    bool planned = tape->n_nodes < tape->plan_nodes && y->op == TG_OP_CONST && y->dtype == dtype &&
                   y->rank == rank;
    for (int i = 0; planned && i < rank; i++)
        planned = y->shape[i] == shape[i];
    tg_tape__init_node(tape, y, TG_OP_CONST, dtype, false);
    y->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        y->shape[i] = shape[i];
    y->attr.c = 0;
    if (tg_tape__finish_node(tape, y, false) != TG_OK)
        return NULL;
    if (planned)
        y->flags |= TG_TF_PLANNED;
    if (numel && zeros)
        memset(y->data, 0, tg__nbytes(y));
    else if (numel)
        memcpy(y->data, data, tg__nbytes(y));
    return y;
}

tg_tensor *tg_constant(tg_tape *tape, tg_dtype dtype, int rank, const size_t *shape,
                       const void *data)
{
    return record_constant(tape, dtype, rank, shape, data, false);
}

tg_tensor *tg_ops__zeros_like(tg_tape *tape, const tg_tensor *like)
{
    if (!like) /* a tensor an op failed to make: the tape holds that error, as for any op */
        return NULL;
    return record_constant(tape, (tg_dtype)like->dtype, like->rank, like->shape, NULL, true);
}

tg_tensor *tg_scalar(tg_tape *tape, tg_dtype dtype, double value)
{
    /* f32 stores the value rounded: one it cannot hold would change without a word (refused as
     * tg_scale's constant is) */
    if (tape && tape->status == TG_OK && dtype == TG_F32 && tg__f32_cannot_hold(value)) {
        tg_tape__fail(tape, TG_EINVAL,
                      "scalar: the value %g does not fit f32 (nonzero magnitudes from 1.4e-45 to "
                      "3.4e38) (node %zu)",
                      value, tape->n_nodes);
        return NULL;
    }
    float f = (float)value;
    return tg_constant(tape, dtype, 0, NULL, dtype == TG_F32 ? (const void *)&f : &value);
}

/* ---- views -------------------------------------------------------------------------------- */

static void view_forward(tg_tensor *y)
{
    y->data = y->in[0]->data;
}

/* y = x, cut from the graph (a view): no gradient flows back */
const tg_op_desc tg_op__detach = {
    .info = {.name = "detach", .arity = 1, .attrs = TG_ATTR_NONE, .differentiable = false},
    .op = TG_OP_DETACH,
    .view = true,
    .shape = tg_ops__same_shape,
    .forward = view_forward,
    .vjp = NULL,
};

tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x)
{
    return tg_tape__record(tape, &tg_op__detach, x, NULL, (tg_node_attr){.c = 0});
}

/* y = x with a new shape (a view);  dx += dy */
static tg_status reshape_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    int rank = y->attr.reshape.rank;
    const size_t *shape = y->attr.reshape.shape;
    if (rank < 0 || rank > TG_MAX_RANK) {
        snprintf(msg, size, "rank %d is out of range 0..%d", rank, TG_MAX_RANK);
        return TG_EINVAL;
    }
    if (rank > 0 && !shape) {
        snprintf(msg, size, "shape is NULL for rank %d", rank);
        return TG_EINVAL;
    }
    size_t n = 1;
    bool overflow = false, empty = false;
    for (int i = 0; i < rank; i++) {
        if (shape[i] && n > SIZE_MAX / shape[i])
            overflow = true;
        n *= shape[i];
        empty |= shape[i] == 0;
    }
    if (empty) /* no elements, however long the other axes */
        n = 0, overflow = false;
    if (overflow || n != x->numel) {
        char sx[96], sy[96];
        tg_ops__fmt_shape(sx, sizeof sx, x);
        tg_shape_format(sy, sizeof sy, rank, shape);
        if (overflow)
            snprintf(msg, size, "%s -> %s: the new shape has more elements than fit in size_t", sx,
                     sy);
        else
            snprintf(msg, size, "%s -> %s: element counts %zu and %zu differ", sx, sy, x->numel, n);
        return TG_ESHAPE;
    }
    y->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        y->shape[i] = shape[i];
    y->attr.c = 0; /* the shape pointer is not ours to keep: the node's shape holds it */
    return TG_OK;
}

static void reshape_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (!dx)
        return;
    tg_ops__add_into((tg_dtype)y->dtype, dx, y->grad, y->numel);
}

/* dx = dy reshaped back to x's shape */
static tg_status reshape_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    dx[0] = tg_reshape(tape, dy, y->in[0]->rank, y->in[0]->shape);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__reshape = {
    .info = {.name = "reshape", .arity = 1, .attrs = TG_ATTR_SHAPE, .differentiable = true},
    .op = TG_OP_RESHAPE,
    .view = true,
    .shape = reshape_shape,
    .forward = view_forward,
    .vjp = reshape_vjp,
    .vjp_graph = reshape_vjp_graph,
};

tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int rank, const size_t *shape)
{
    return tg_tape__record(tape, &tg_op__reshape, x, NULL,
                           (tg_node_attr){.reshape = {shape, rank}});
}

/* ---- transpose ---------------------------------------------------------------------------- */

/* y = x^T for 2-D x;  dx += dy^T */
static tg_status transpose_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    if (x->rank != 2) {
        char s[96];
        snprintf(msg, size, "%s: expected a 2-D tensor", tg_ops__fmt_shape(s, sizeof s, x));
        return TG_ESHAPE;
    }
    y->rank = 2;
    y->shape[0] = x->shape[1];
    y->shape[1] = x->shape[0];
    return TG_OK;
}

/* A copy between layouts (a transpose, a permute that moves the last axis) reads one side
 * against its stride: whole rows of x against whole columns of y put every write on another
 * cache line, and at power-of-two widths all of a column's lines in one cache set (a transpose
 * of 1024 x 1024 f32 took 5.9 ms, 5.6 ns an element). So the two innermost loops go by tiles of
 * TILE x TILE, the inner loop along the side written contiguously: the tile's lines on the
 * strided side, TILE of them in as few sets, stay in L1 while it is copied, even in an 8-way
 * L1 at a power-of-two stride (a transpose of 1024 x 1024 f32 written for the purpose, on Zen 4:
 * tiles of 8, 0.64 ms; 16, 1.1; 32, 2.0; tiles of 8 with the inner loop along the strided side,
 * 3.6). Each element is copied (or added) once, so the order changes no value. */
#define TILE ((size_t)8)

/* Runs its body for every (i, j) of rows [lo, hi) (lo a multiple of TILE) of a grid C wide,
 * tile by tile, j innermost. FOR_TILES: all R rows. */
#define FOR_TILES_IN(lo, hi, C, ...)                                                               \
    for (size_t i0_ = (lo); i0_ < (hi); i0_ += TILE)                                               \
        for (size_t j0_ = 0; j0_ < (C); j0_ += TILE)                                               \
            for (size_t i = i0_, i1_ = i0_ + TILE < (hi) ? i0_ + TILE : (hi); i < i1_; i++)        \
                for (size_t j = j0_, j1_ = j0_ + TILE < (C) ? j0_ + TILE : (C); j < j1_; j++) {    \
                    __VA_ARGS__                                                                    \
                }
#define FOR_TILES(R, C, ...) FOR_TILES_IN(0, R, C, __VA_ARGS__)

/* A transpose over the pool: ranges of the written side's rows, whole tiles of them ([t0, t1)
 * of TILE rows), at least TG_PAR_GRAIN elements. Each element is written once, so any split
 * gives the same bits. */
typedef struct transpose_job {
    const tg_tensor *y;
    void *dx; /* the VJP's, NULL for the forward */
} transpose_job;

static void transpose_rows(void *ctx, size_t t0, size_t t1)
{
    const transpose_job *job = ctx;
    const tg_tensor *y = job->y;
    const size_t R = y->in[0]->shape[0], C = y->in[0]->shape[1];
    if (!job->dx) { /* y's rows, x's columns */
        const size_t hi = t1 * TILE < C ? t1 * TILE : C;
        DISPATCH(y->dtype, {
            const T *X = y->in[0]->data;
            T *Y = y->data;
            FOR_TILES_IN(t0 * TILE, hi, R, Y[i * R + j] = X[j * C + i];)
        });
    } else { /* dx's rows, dy's columns */
        const size_t hi = t1 * TILE < R ? t1 * TILE : R;
        DISPATCH(y->dtype, {
            const T *DY = y->grad;
            T *DX = job->dx;
            FOR_TILES_IN(t0 * TILE, hi, C, DX[i * C + j] += DY[j * R + i];)
        });
    }
}

/* transpose_rows over the written side's rows (y's, x's columns; with dx, dx's), each range at
 * least TG_PAR_GRAIN elements: y's forward (dx NULL) or its VJP into dx. */
static void transpose_run(const tg_tensor *y, void *dx)
{
    const transpose_job job = {y, dx};
    const size_t *xs = y->in[0]->shape;
    const size_t rows = dx ? xs[0] : xs[1], width = dx ? xs[1] : xs[0];
    const size_t per_tile = TILE * (width ? width : 1);
    const size_t grain = TG_PAR_GRAIN / per_tile ? TG_PAR_GRAIN / per_tile : 1;
    tg__parallel_for((rows + TILE - 1) / TILE, grain, transpose_rows, (void *)&job);
}

static void transpose_forward(tg_tensor *y)
{
    transpose_run(y, NULL);
}

static void transpose_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (dx)
        transpose_run(y, dx);
}

/* dx = dy^T */
static tg_status transpose_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    TG_UNUSED(y);
    dx[0] = tg_transpose(tape, dy);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__transpose = {
    .info = {.name = "transpose", .arity = 1, .attrs = TG_ATTR_NONE, .differentiable = true},
    .op = TG_OP_TRANSPOSE,
    .shape = transpose_shape,
    .forward = transpose_forward,
    .vjp = transpose_vjp,
    .vjp_graph = transpose_vjp_graph,
};

tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x)
{
    return tg_tape__record(tape, &tg_op__transpose, x, NULL, (tg_node_attr){.c = 0});
}

/* ---- permute ------------------------------------------------------------------------------ */

/* y = x with its axes in the order perm: y[i_0, ..., i_r-1] = x at index i_k on axis perm[k];
 * dx += dy moved back the same way */
static tg_status permute_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    const tg_attrs *at = y->attr.pending; /* read before the normalized form overwrites it */
    const int rank = x->rank;
    uint8_t perm[TG_MAX_RANK] = {0};
    bool seen[TG_MAX_RANK] = {false};
    for (int i = 0; i < rank; i++) {
        int a = at->axes[i];
        if (a < -rank || a >= rank || seen[a < 0 ? a + rank : a]) {
            char s[96], list[64];
            size_t n = 0;
            for (int k = 0; k < rank; k++)
                n +=
                    (size_t)snprintf(list + n, sizeof list - n, "%s%d", k ? ", " : "", at->axes[k]);
            snprintf(msg, size, "axes (%s) for shape %s: %s", list,
                     tg_ops__fmt_shape(s, sizeof s, x),
                     a < -rank || a >= rank ? "an axis is out of range"
                                            : "not a permutation (an axis appears twice)");
            return TG_EINVAL;
        }
        perm[i] = (uint8_t)(a < 0 ? a + rank : a);
        seen[perm[i]] = true;
    }
    y->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        y->shape[i] = x->shape[perm[i]];
    y->attr = (tg_node_attr){.c = 0};
    memcpy(y->attr.perm, perm, sizeof perm);
    return TG_OK;
}

/* The loops of a permute as four nested ones (leading axes of size 1 pad lower ranks): the
 * output's sizes n[] and, for each, the stride of x it walks. */
static void permute_loops(const tg_tensor *y, size_t n[TG_MAX_RANK], size_t st[TG_MAX_RANK])
{
    const tg_tensor *x = y->in[0];
    size_t xs[TG_MAX_RANK], s = 1;
    for (int d = x->rank; d-- > 0;) {
        xs[d] = s;
        s *= x->shape[d];
    }
    const int pad = TG_MAX_RANK - y->rank;
    for (int i = 0; i < TG_MAX_RANK; i++) {
        n[i] = i < pad ? 1 : y->shape[i - pad];
        st[i] = i < pad ? 0 : xs[y->attr.perm[i - pad]];
    }
}

_Static_assert(TG_MAX_RANK == 4, "permute's loops are four deep");

/* A permute over the pool: ranges of the two outer loops' (a, b), as p = a * n[1] + b, at
 * least TG_PAR_GRAIN elements. Each (a, b) writes elements of its own, of y (the forward) or of
 * dx (the VJP: the permutation is one to one), so any split gives the same bits. */
typedef struct permute_job {
    const tg_tensor *y;
    void *dx; /* the VJP's, NULL for the forward */
    size_t n[TG_MAX_RANK], st[TG_MAX_RANK];
} permute_job;

static void permute_range(void *ctx, size_t p0, size_t p1)
{
    const permute_job *job = ctx;
    const tg_tensor *y = job->y;
    const size_t *n = job->n, *st = job->st;
    if (!job->dx) {
        DISPATCH(y->dtype, {
            const T *X = y->in[0]->data;
            T *Y = y->data;
            for (size_t p = p0; p < p1; p++) {
                const T *x = X + p / n[1] * st[0] + p % n[1] * st[1];
                T *yab = Y + p * n[2] * n[3];
                if (st[3] == 1) /* the last axis stays last: rows copy as they are */
                    for (size_t c = 0; c < n[2]; c++)
                        for (size_t d = 0; d < n[3]; d++)
                            yab[c * n[3] + d] = x[c * st[2] + d];
                else
                    FOR_TILES(n[2], n[3], yab[i * n[3] + j] = x[i * st[2] + j * st[3]];)
            }
        });
    } else {
        DISPATCH(y->dtype, {
            const T *DY = y->grad;
            T *DX = job->dx;
            for (size_t p = p0; p < p1; p++) {
                T *dx_ab = DX + p / n[1] * st[0] + p % n[1] * st[1];
                const T *dy = DY + p * n[2] * n[3];
                if (st[3] == 1)
                    for (size_t c = 0; c < n[2]; c++)
                        for (size_t d = 0; d < n[3]; d++)
                            dx_ab[c * st[2] + d] += dy[c * n[3] + d];
                else if (st[2] == 1) /* along c, dx is contiguous */
                    FOR_TILES(n[3], n[2], dx_ab[j + i * st[3]] += dy[j * n[3] + i];)
                else
                    FOR_TILES(n[2], n[3], dx_ab[i * st[2] + j * st[3]] += dy[i * n[3] + j];)
            }
        });
    }
}

static void permute_run(const tg_tensor *y, void *dx)
{
    if (y->rank == 2 && y->attr.perm[0] == 1) { /* a transpose: split by its rows as one */
        transpose_run(y, dx);
        return;
    }
    permute_job job = {y, dx, {0}, {0}};
    permute_loops(y, job.n, job.st);
    const size_t inner = job.n[2] * job.n[3];
    if (inner)
        tg__parallel_for(job.n[0] * job.n[1], (TG_PAR_GRAIN + inner - 1) / inner, permute_range,
                         &job);
}

static void permute_forward(tg_tensor *y)
{
    permute_run(y, NULL);
}

static void permute_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (dx)
        permute_run(y, dx);
}

/* dx = dy permuted by the inverse permutation: output axis i came from input axis perm[i] */
static tg_status permute_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    int inverse[TG_MAX_RANK] = {0};
    for (int i = 0; i < y->rank; i++)
        inverse[y->attr.perm[i]] = i;
    dx[0] = tg_permute(tape, dy, inverse);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__permute = {
    .info = {.name = "permute", .arity = 1, .attrs = TG_ATTR_AXES, .differentiable = true},
    .op = TG_OP_PERMUTE,
    .shape = permute_shape,
    .forward = permute_forward,
    .vjp = permute_vjp,
    .vjp_graph = permute_vjp_graph,
};

tg_tensor *tg_permute(tg_tape *tape, tg_tensor *x, const int *axes)
{
    tg_attrs at = {0};
    if (x && axes) {
        for (int i = 0; i < x->rank && i < TG_MAX_RANK; i++)
            at.axes[i] = axes[i];
    } else if (x && x->rank > 0 && tape && tape->status == TG_OK) {
        tg_tape__fail(tape, TG_EINVAL, "permute: axes is NULL (node %zu)", tape->n_nodes);
        return NULL;
    }
    return tg_tape__record(tape, &tg_op__permute, x, NULL, (tg_node_attr){.pending = &at});
}
