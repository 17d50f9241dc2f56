/* shape.c: ops that move or relabel elements rather than compute them: constants, detach,
 * reshape (views sharing their input's memory) and transpose. */
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

tg_tensor *tg_constant(tg_tape *tape, tg_dtype dtype, int rank, const size_t *shape,
                       const void *data)
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
    if (!data && numel) {
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
    if (numel)
        memcpy(y->data, data, tg__nbytes(y));
    return y;
}

tg_tensor *tg_scalar(tg_tape *tape, tg_dtype dtype, double value)
{
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
    if (rank < 0 || rank > TG_MAX_RANK || (rank > 0 && !shape)) {
        snprintf(msg, size, "rank %d is out of range 0..%d (or shape is NULL)", rank, TG_MAX_RANK);
        return TG_EINVAL;
    }
    size_t n = 1;
    bool overflow = false;
    for (int i = 0; i < rank; i++) {
        if (shape[i] && n > SIZE_MAX / shape[i])
            overflow = true;
        n *= shape[i];
    }
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
    DISPATCH(y->dtype, {
        const T *DY = y->grad;
        T *DX = dx;
        for (size_t i = 0, n = y->numel; i < n; i++)
            DX[i] += DY[i];
    });
}

const tg_op_desc tg_op__reshape = {
    .info = {.name = "reshape", .arity = 1, .attrs = TG_ATTR_SHAPE, .differentiable = true},
    .op = TG_OP_RESHAPE,
    .view = true,
    .shape = reshape_shape,
    .forward = view_forward,
    .vjp = reshape_vjp,
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

static void transpose_forward(tg_tensor *y)
{
    size_t R = y->in[0]->shape[0], C = y->in[0]->shape[1];
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data;
        T *Y = y->data;
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                Y[j * R + i] = X[i * C + j];
    });
}

static void transpose_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (!dx)
        return;
    size_t R = y->in[0]->shape[0], C = y->in[0]->shape[1];
    DISPATCH(y->dtype, {
        const T *DY = y->grad;
        T *DX = dx;
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                DX[i * C + j] += DY[j * R + i];
    });
}

const tg_op_desc tg_op__transpose = {
    .info = {.name = "transpose", .arity = 1, .attrs = TG_ATTR_NONE, .differentiable = true},
    .op = TG_OP_TRANSPOSE,
    .shape = transpose_shape,
    .forward = transpose_forward,
    .vjp = transpose_vjp,
};

tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x)
{
    return tg_tape__record(tape, &tg_op__transpose, x, NULL, (tg_node_attr){.c = 0});
}
