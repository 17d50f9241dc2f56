/* table.c: the op table, one descriptor per tg_op (each defined in its family file), and
 * what reads it generically: names and arities, tg_apply (an op chosen at run time) and the
 * attributes a node was recorded with. */
#include "ops/op_impl.h"

/* Every op, in tg_op order: its enum name and its descriptor's name. Adding an op adds one
 * line here (docs/adding-an-op.md). */
#define TG_OPS(X)                                                                                  \
    X(CONST, const)                                                                                \
    X(DETACH, detach)                                                                              \
    X(ADD, add)                                                                                    \
    X(SUB, sub)                                                                                    \
    X(MUL, mul)                                                                                    \
    X(DIV, div)                                                                                    \
    X(NEG, neg)                                                                                    \
    X(SCALE, scale)                                                                                \
    X(ADD_SCALAR, add_scalar)                                                                      \
    X(POW, pow)                                                                                    \
    X(SQUARE, square)                                                                              \
    X(SQRT, sqrt)                                                                                  \
    X(EXP, exp)                                                                                    \
    X(LOG, log)                                                                                    \
    X(ABS, abs)                                                                                    \
    X(SIGMOID, sigmoid)                                                                            \
    X(TANH, tanh)                                                                                  \
    X(RELU, relu)                                                                                  \
    X(LOG_SIGMOID, log_sigmoid)                                                                    \
    X(CLAMP, clamp)                                                                                \
    X(MATMUL, matmul)                                                                              \
    X(TRANSPOSE, transpose)                                                                        \
    X(RESHAPE, reshape)                                                                            \
    X(SUM, sum)                                                                                    \
    X(MEAN, mean)                                                                                  \
    X(MAX, max)                                                                                    \
    X(LOGSUMEXP, logsumexp)                                                                        \
    X(SOFTMAX, softmax)                                                                            \
    X(LOG_SOFTMAX, log_softmax)                                                                    \
    X(SIN, sin)                                                                                    \
    X(COS, cos)                                                                                    \
    X(TAN, tan)                                                                                    \
    X(ASIN, asin)                                                                                  \
    X(ACOS, acos)                                                                                  \
    X(ATAN, atan)                                                                                  \
    X(SINH, sinh)                                                                                  \
    X(COSH, cosh)                                                                                  \
    X(ASINH, asinh)                                                                                \
    X(ACOSH, acosh)                                                                                \
    X(ATANH, atanh)                                                                                \
    X(EXPM1, expm1)                                                                                \
    X(LOG1P, log1p)                                                                                \
    X(ERF, erf)                                                                                    \
    X(SOFTPLUS, softplus)                                                                          \
    X(GELU, gelu)                                                                                  \
    X(SILU, silu)                                                                                  \
    X(SIGN, sign)                                                                                  \
    X(FLOOR, floor)                                                                                \
    X(CEIL, ceil)                                                                                  \
    X(MINIMUM, minimum)                                                                            \
    X(MAXIMUM, maximum)                                                                            \
    X(ATAN2, atan2)                                                                                \
    X(POW_TENSOR, pow_tensor)                                                                      \
    X(LT, lt)                                                                                      \
    X(LE, le)                                                                                      \
    X(GT, gt)                                                                                      \
    X(GE, ge)                                                                                      \
    X(EQ, eq)                                                                                      \
    X(NE, ne)                                                                                      \
    X(WHERE, where)                                                                                \
    X(MIN, min)                                                                                    \
    X(PROD, prod)                                                                                  \
    X(SLICE, slice)                                                                                \
    X(SELECT, select)                                                                              \
    X(CONCAT, concat)                                                                              \
    X(STACK, stack)                                                                                \
    X(TAKE, take)                                                                                  \
    X(PERMUTE, permute)                                                                            \
    X(CUSTOM, custom)                                                                              \
    X(INDEX_ADD, index_add)

#define DECLARE(ENUM, name) extern const tg_op_desc tg_op__##name;
TG_OPS(DECLARE)
#undef DECLARE

#define ENTRY(ENUM, name) [TG_OP_##ENUM] = &tg_op__##name,
const tg_op_desc *const tg_op__table[TG_OP_COUNT] = {TG_OPS(ENTRY)};
#undef ENTRY

/* The tripwire: an op added to enum tg_op without its line above fails here, and one listed
 * twice fails -Woverride-init (-Wextra) on its initializer. (That each descriptor's .op is
 * its own index, tests/test_table.c checks.) */
#define ONE(ENUM, name) +1
_Static_assert(0 TG_OPS(ONE) == TG_OP_COUNT, "every tg_op has one line in TG_OPS");
#undef ONE

const tg_op_info *tg_op_info_of(tg_op op)
{
    return (unsigned)op < TG_OP_COUNT ? &tg_op__table[op]->info : NULL;
}

const char *tg_op_name(tg_op op)
{
    return (unsigned)op < TG_OP_COUNT ? tg_op__table[op]->info.name : "?";
}

int tg_op_arity(tg_op op)
{
    return (unsigned)op < TG_OP_COUNT ? tg_op__table[op]->info.arity : -1;
}

/* The node attributes of a tg_attrs of `kind`. */
static tg_node_attr node_attr(tg_attr_kind kind, const tg_attrs *attrs)
{
    switch (kind) {
    case TG_ATTR_NONE: break;
    case TG_ATTR_CONSTANT: return (tg_node_attr){.c = attrs->c};
    case TG_ATTR_RANGE: return (tg_node_attr){.range = {attrs->lo, attrs->hi}};
    case TG_ATTR_AXIS: return (tg_node_attr){.r = {.axis = attrs->axis, .keepdim = 1}};
    case TG_ATTR_REDUCE:
        return (tg_node_attr){.r = {.axis = attrs->axis, .keepdim = attrs->keepdim}};
    case TG_ATTR_SHAPE: return (tg_node_attr){.reshape = {attrs->shape, attrs->rank}};
    case TG_ATTR_SLICE: /* the shape rule validates and normalizes them */
    case TG_ATTR_INDEX:
    case TG_ATTR_AXES: return (tg_node_attr){.pending = attrs};
    }
    return (tg_node_attr){.c = 0};
}

tg_tensor *tg_apply(tg_tape *tape, tg_op op, tg_tensor *const *inputs, size_t n,
                    const tg_attrs *attrs)
{
    if (!tape) {
        tg__error(TG_EINVAL, "apply: tape is NULL");
        return NULL;
    }
    if (tg_tape_status(tape) != TG_OK)
        return NULL;
    if ((unsigned)op >= TG_OP_COUNT || op == TG_OP_CONST || op == TG_OP_CUSTOM) {
        /* A custom op is its callbacks and output shape, which tg_attrs has no room for. */
        tg_tape_fail(tape, TG_EINVAL, "apply: %s",
                     op == TG_OP_CONST    ? "constants are made with tg_constant"
                     : op == TG_OP_CUSTOM ? "custom ops are recorded with tg_custom"
                                          : "no such op");
        return NULL;
    }
    const tg_op_desc *d = tg_op__table[op];
    if (d->info.arity == TG_VARIADIC ? n == 0 : n != (size_t)d->info.arity) {
        if (d->info.arity == TG_VARIADIC)
            tg_tape_fail(tape, TG_EINVAL, "apply: %s takes one or more inputs, got %zu",
                         d->info.name, n);
        else
            tg_tape_fail(tape, TG_EINVAL, "apply: %s takes %d input%s, got %zu", d->info.name,
                         d->info.arity, d->info.arity == 1 ? "" : "s", n);
        return NULL;
    }
    if (!inputs) {
        tg_tape_fail(tape, TG_EINVAL, "apply: %s: inputs is NULL (n is %zu)", d->info.name, n);
        return NULL;
    }
    if (d->info.attrs != TG_ATTR_NONE && !attrs) {
        tg_tape_fail(tape, TG_EINVAL, "apply: %s takes attributes, and attrs is NULL",
                     d->info.name);
        return NULL;
    }
    const tg_node_attr attr = node_attr(d->info.attrs, attrs);
    if (tg_op__nary(d))
        return tg_tape__record_n(tape, d, inputs, n, attr, NULL, NULL);
    return tg_tape__record(tape, d, inputs[0], n > 1 ? inputs[1] : NULL, attr);
}

tg_status tg_tensor_attrs(const tg_tensor *t, tg_attrs *out)
{
    if (!t || !out)
        return tg__error(TG_EINVAL, "tensor_attrs: %s is NULL", t ? "out" : "tensor");
    *out = (tg_attrs){0};
    if (t->flags & TG_TF_LEAF)
        return tg__error(TG_EINVAL, "tensor_attrs: a leaf has no op");
    tg_status st = tg_tensor__check_live(t, "tensor_attrs");
    if (st != TG_OK)
        return st;
    switch (tg_op__table[t->op]->info.attrs) {
    case TG_ATTR_NONE: break;
    case TG_ATTR_CONSTANT: out->c = t->attr.c; break;
    case TG_ATTR_RANGE:
        out->lo = t->attr.range.lo;
        out->hi = t->attr.range.hi;
        break;
    case TG_ATTR_AXIS: /* keepdim is set too: these ops keep every axis */
    case TG_ATTR_REDUCE:
        out->axis = t->attr.r.axis;
        out->keepdim = t->attr.r.keepdim != 0;
        break;
    case TG_ATTR_SHAPE:
        out->rank = t->rank;
        out->shape = t->shape;
        break;
    case TG_ATTR_SLICE:
        out->axis = t->attr.slice.axis;
        out->start = (ptrdiff_t)t->attr.slice.start;
        out->step = t->attr.slice.step;
        out->stop = out->start + out->step * (ptrdiff_t)t->shape[out->axis];
        break;
    case TG_ATTR_INDEX:
        out->axis = t->attr.select.axis;
        out->index = (ptrdiff_t)t->attr.select.index;
        break;
    case TG_ATTR_AXES:
        for (int i = 0; i < t->rank; i++)
            out->axes[i] = t->attr.perm[i];
        break;
    }
    return TG_OK;
}
