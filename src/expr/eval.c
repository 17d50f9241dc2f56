/* eval.c: runs a parsed tgx program onto a tape. The nodes are already in evaluation order,
 * so this is one loop that calls the public op constructors (and the nn losses); an op's
 * error is reported with the source span of the expression that called it (for an index, of
 * the item at fault). */
#include "expr_internal.h"

#include "tape/scratch.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

static tg_tensor *located(const tg_program *g, tg_expr_error *err, tg_status st, const tg_xnode *x,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static tg_tensor *located(const tg_program *g, tg_expr_error *err, tg_status st, const tg_xnode *x,
                          const char *fmt, ...)
{
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_expr__fail(err, st, g->src, g->len, x->start, x->end, "%s", msg);
    return NULL;
}

/* A finite number f32 cannot hold: refused, rather than turned into inf without a word. */
static bool too_large_for(tg_dtype dtype, double v)
{
    return dtype == TG_F32 && tg__f32_overflows(v);
}

/* A tensor literal as a constant of `dtype` (f32 literals are converted in tape scratch). */
static tg_tensor *literal(const tg_program *g, tg_tape *tape, tg_dtype dtype, const tg_xnode *x,
                          tg_expr_error *err)
{
    const tg_xlit *l = &g->lits[x->lit];
    const double *v = g->values ? g->values + l->offset : NULL;
    if (dtype == TG_F64)
        return tg_constant(tape, dtype, l->rank, l->shape, v);
    for (size_t i = 0; i < l->numel; i++)
        if (too_large_for(dtype, v[i]))
            return located(g, err, TG_EINVAL, x, "the literal holds %.9g, too large for f32", v[i]);
    float *f = tg_tape__scratch(tape, l->numel * sizeof *f, "constant");
    if (!f)
        return NULL;
    for (size_t i = 0; i < l->numel; i++)
        f[i] = (float)v[i];
    return tg_constant(tape, dtype, l->rank, l->shape, f);
}

/* A shape attribute from its list, one -1 inferred from x's element count. */
static bool shape_of(const tg_program *g, const tg_xnode *node, const tg_tensor *x,
                     size_t shape[TG_MAX_RANK], int *rank, tg_expr_error *err)
{
    const tg_xlit *l = &g->lits[node->lit];
    int unknown = -1;
    size_t known = 1;
    *rank = (int)l->numel;
    for (int i = 0; i < *rank; i++) {
        double d = g->values[l->offset + (size_t)i];
        if (d < 0) {
            unknown = i;
        } else {
            shape[i] = (size_t)d;
            known *= shape[i]; /* at most 2^53: checked by the parser */
        }
    }
    if (unknown >= 0) {
        size_t numel = tg_tensor_numel(x);
        char sx[96];
        if (known == 0 && numel == 0) { /* "0 elements, not a multiple of 0" would be false */
            located(g, err, TG_ESHAPE, node,
                    "%s: cannot fill the -1 of the new shape: %s has no elements and the other "
                    "sizes multiply to 0, so any size would do",
                    tg_op_name((tg_op)node->op),
                    tg_shape_format(sx, sizeof sx, tg_tensor_rank(x), tg_tensor_shape(x)));
            return false;
        }
        if (known == 0 || numel % known != 0) {
            located(g, err, TG_ESHAPE, node,
                    "%s: cannot fill the -1 of the new shape: %s has %zu elements, not a "
                    "multiple of %zu",
                    tg_op_name((tg_op)node->op),
                    tg_shape_format(sx, sizeof sx, tg_tensor_rank(x), tg_tensor_shape(x)), numel,
                    known);
            return false;
        }
        shape[unknown] = numel / known;
    }
    return true;
}

/* An axes attribute (permute) from its list, which must have an entry per axis of x. */
static bool axes_of(const tg_program *g, const tg_xnode *node, const tg_tensor *x,
                    int axes[TG_MAX_RANK], tg_expr_error *err)
{
    const tg_xlit *l = &g->lits[node->lit];
    if (l->numel != (size_t)tg_tensor_rank(x)) {
        char sx[96];
        located(g, err, TG_EINVAL, node, "%s: the axes list has %zu entr%s, but %s has %d axes",
                tg_op_name((tg_op)node->op), l->numel, l->numel == 1 ? "y" : "ies",
                tg_shape_format(sx, sizeof sx, tg_tensor_rank(x), tg_tensor_shape(x)),
                tg_tensor_rank(x));
        return false;
    }
    for (size_t i = 0; i < l->numel; i++)
        axes[i] = (int)g->values[l->offset + i]; /* integers within 1e9: checked by the parser */
    return true;
}

/* An op of the table, through tg_apply with the attributes the parser stored; in[0..n) its
 * operands. */
static tg_tensor *apply_op(const tg_program *g, tg_tape *tape, const tg_xnode *x,
                           tg_tensor *const *in, size_t n, tg_expr_error *err)
{
    const tg_op op = (tg_op)x->op;
    const tg_op_info *info = tg_op_info_of(op);
    size_t shape[TG_MAX_RANK] = {0};
    tg_attrs attrs = {.c = x->c, .lo = x->c, .hi = x->c2, .axis = x->axis, .keepdim = false};
    attrs.start = (ptrdiff_t)x->from;
    attrs.stop = (ptrdiff_t)x->to;
    attrs.step = (ptrdiff_t)x->step;
    attrs.index = (ptrdiff_t)x->from;
    for (size_t i = 0; i < n; i++)
        if (!in[i]) /* an earlier error; tg_apply says nothing more */
            return NULL;
    if (info->attrs == TG_ATTR_SHAPE) {
        if (!shape_of(g, x, in[0], shape, &attrs.rank, err))
            return NULL;
        attrs.shape = shape;
    } else if (info->attrs == TG_ATTR_AXES && !axes_of(g, x, in[0], attrs.axes, err)) {
        return NULL;
    }
    return tg_apply(tape, op, in, n, &attrs);
}

/* One item of x[...]: the checks that need a's shape (more items than axes, an integer out
 * of range), each reported under the item, then tg_select or tg_slice. */
static tg_tensor *apply_index(const tg_program *g, tg_tape *tape, const tg_xnode *x, tg_tensor *a,
                              tg_expr_error *err)
{
    if (!a)
        return NULL;
    int rank = tg_tensor_rank(a);
    if (x->axis >= rank) {
        int axes = rank + (int)(x->item - (uint32_t)x->axis); /* the indexed value's */
        return located(g, err, TG_ESHAPE, x, "too many indices: %u for a value of %d ax%s",
                       x->n_items, axes, axes == 1 ? "is" : "es");
    }
    if (x->select) {
        size_t dim = tg_tensor_dim(a, x->axis);
        int64_t i = x->from;
        if (i < -(int64_t)dim || i >= (int64_t)dim)
            return located(g, err, TG_ESHAPE, x,
                           "index %lld is out of range for axis %u of size %zu", (long long)i,
                           x->item, dim);
        return tg_select(tape, a, x->axis, (ptrdiff_t)(i < 0 ? i + (int64_t)dim : i));
    }
    if (x->from == 0 && x->to == TG_EXPR_OPEN_STOP && x->step == 1)
        return a; /* ':' takes the whole axis: nothing to record */
    return tg_slice(tape, a, x->axis, (ptrdiff_t)x->from,
                    x->to == TG_EXPR_OPEN_STOP ? TG_END : (ptrdiff_t)x->to, (ptrdiff_t)x->step);
}

/* One node's op on already computed operands: vals holds every node's value so far. */
static tg_tensor *apply(const tg_program *g, tg_tape *tape, tg_dtype dtype, const tg_xnode *x,
                        tg_tensor *const *vals, tg_expr_error *err)
{
    tg_tensor *a = x->a != TG_EXPR_NONE ? vals[x->a] : NULL;
    tg_tensor *b = x->b != TG_EXPR_NONE ? vals[x->b] : NULL;
    switch ((tg_xkind)x->kind) {
    case TG_X_NUM:
        if (too_large_for(dtype, x->c))
            return located(g, err, TG_EINVAL, x, "%.9g is too large for f32", x->c);
        /* rounded here: tgx takes a number that underflows to 0, as its lexer does (1e-400)
         * and its f32 lists do, where tg_scalar refuses one */
        return tg_scalar(tape, dtype, dtype == TG_F32 ? (float)x->c : x->c);
    case TG_X_LIST: return literal(g, tape, dtype, x, err);
    case TG_X_INPUT: return NULL; /* bound before the loop */
    case TG_X_OP: {
        if (x->n_args == 0) {
            tg_tensor *in[2] = {a, b};
            return apply_op(g, tape, x, in, (size_t)tg_op_arity((tg_op)x->op), err);
        }
        /* more than two operands: their list, in the tape's scratch (no heap in a loop) */
        tg_tensor **in = tg_tape__scratch(tape, x->n_args * sizeof *in, "tgx operands");
        if (!in)
            return NULL;
        for (uint32_t i = 0; i < x->n_args; i++)
            in[i] = vals[g->args[x->arg + i]];
        return apply_op(g, tape, x, in, x->n_args, err);
    }
    case TG_X_INDEX: return apply_index(g, tape, x, a, err);
    case TG_X_MSE: return tg_mse(tape, a, b);
    case TG_X_BCE: return tg_bce(tape, a, b);
    case TG_X_BCE_LOGITS: return tg_bce_logits(tape, a, b);
    case TG_X_CROSS_ENTROPY: return tg_cross_entropy(tape, a, b);
    case TG_X_ONEHOT: return tg_onehot(tape, a, (size_t)x->c);
    }
    return NULL;
}

/* Whether y, the value of node x, is an input's own tensor: an index of bare ':' items
 * records nothing and gives its operand back, which may be an input ("a = x[:]"). */
static bool is_input_value(const tg_program *g, const tg_xnode *x, const tg_tensor *y,
                           tg_tensor *const *vals)
{
    while (x->kind == TG_X_INDEX && vals[x->a] == y)
        x = &g->nodes[x->a];
    return x->kind == TG_X_INPUT;
}

/* The first binding of `name` in env, or NULL. */
static const tg_binding *lookup(const tg_binding *env, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (env[i].name && strcmp(env[i].name, name) == 0)
            return &env[i];
    return NULL;
}

tg_tensor *tg_program_eval(const tg_program *prog, tg_tape *tape, tg_dtype dtype,
                           const tg_binding *env, size_t n, tg_expr_error *err)
{
    tg_expr_error local; /* so a shape's own errors are told apart from the tape's */
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (!prog || !tape || (n && !env)) {
        tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0, "program_eval: %s is NULL",
                      !prog   ? "prog"
                      : !tape ? "tape"
                              : "env");
        return NULL;
    }
    if (dtype != TG_F32 && dtype != TG_F64) {
        tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0, "program_eval: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (tg_tape_status(tape) != TG_OK) {
        tg_expr__fail(err, TG_EINVAL, NULL, 0, 0, 0,
                      "program_eval: the tape already has an error: %s", tg_tape_error(tape));
        return NULL;
    }
    const tg_program *g = prog;
    tg_tensor **vals = tg__calloc(g->n_nodes, sizeof *vals);
    bool *read = vals ? tg__calloc(g->n_nodes, sizeof *read) : NULL;
    if (!read) {
        tg__free(vals, g->n_nodes * sizeof *vals);
        tg_expr__fail(err, TG_ENOMEM, NULL, 0, 0, 0, "program_eval: out of memory");
        return NULL;
    }
    /* Which nodes something reads. A number nothing reads is not recorded: a name bound to a
     * number for folding ("n = 1e39; x^(n/1e38)") is computed in f64 and needs no constant of
     * the program's dtype, which f32 may not hold. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const tg_xnode *x = &g->nodes[i];
        if (x->a != TG_EXPR_NONE)
            read[x->a] = true;
        if (x->b != TG_EXPR_NONE)
            read[x->b] = true;
        for (uint32_t j = 0; j < x->n_args; j++)
            read[g->args[x->arg + j]] = true;
    }
    read[g->output] = true;
    tg_tensor *result = NULL;
    for (size_t i = 0; i < g->n_inputs; i++) {
        const char *name = g->names + g->inputs[i];
        const tg_xnode *x = &g->nodes[g->input_node[i]];
        const tg_binding *b = lookup(env, n, name);
        /* The name clipped, as in the parser's messages: a long one would push the rest of
         * the message past its buffer (the caret line shows it whole). */
        int shown = TG_EXPR_CLIP(strlen(name));
        if (!b) {
            located(g, err, TG_EINVAL, x, "no value for input '%.*s'", shown, name);
            goto done;
        }
        if (!b->value) {
            located(g, err, TG_EINVAL, x, "input '%.*s' is bound to NULL", shown, name);
            goto done;
        }
        if (tg_tensor_dtype(b->value) != dtype) {
            located(g, err, TG_EDTYPE, x, "input '%.*s' is %s, but the program is evaluated in %s",
                    shown, name, tg_dtype_name(tg_tensor_dtype(b->value)), tg_dtype_name(dtype));
            goto done;
        }
        vals[g->input_node[i]] = b->value;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        const tg_xnode *x = &g->nodes[i];
        if (x->kind == TG_X_INPUT || (x->kind == TG_X_NUM && !read[i]))
            continue;
        tg_tensor *y = apply(g, tape, dtype, x, vals, err);
        if (!y) {
            /* a shape may have reported its own error; otherwise the op left it on the tape */
            if (err->status == TG_OK) {
                tg_status st = tg_tape_status(tape);
                if (st == TG_OK)
                    st = tg_last_status() != TG_OK ? tg_last_status() : TG_EINVAL;
                located(g, err, st, x, "%s",
                        tg_tape_status(tape) != TG_OK ? tg_tape_error(tape) : tg_last_error());
            }
            goto done;
        }
        /* Inputs keep their own names, also a tensor recorded on the tape that has none. */
        if (x->name && !tg_tensor_is_leaf(y) && !tg_tensor_name(y) &&
            !is_input_value(g, x, y, vals) &&
            tg_tensor_set_name(y, g->names + x->name - 1) != TG_OK) {
            const char *nm = g->names + x->name - 1;
            located(g, err, TG_ENOMEM, x, "out of memory naming '%.*s'", TG_EXPR_CLIP(strlen(nm)),
                    nm);
            goto done;
        }
        vals[i] = y;
    }
    result = vals[g->output];
done:
    tg__free(read, g->n_nodes * sizeof *read);
    tg__free(vals, g->n_nodes * sizeof *vals);
    return result;
}
