/* funcs.c: the functions of tgx. Every op of the op table that takes an input is a function
 * of its name, its arguments read off its descriptor (tg_op_info_of): its tensors, then its
 * attributes. Only the functions the nn layer builds from ops are listed here by hand. */
#include "expr_internal.h"

#include <stdio.h>

/* Functions built from ops (tapegrad/nn.h). */
static const struct {
    const char *name;
    tg_xkind kind;
    const char *usage;
    tg_xarg second; /* the first argument is a tensor */
} BUILT[] = {
    {"mse", TG_X_MSE, "mse(pred, target)", TG_XARG_TENSOR},
    {"bce", TG_X_BCE, "bce(p, target)", TG_XARG_TENSOR},
    {"bce_logits", TG_X_BCE_LOGITS, "bce_logits(z, target)", TG_XARG_TENSOR},
    {"cross_entropy", TG_X_CROSS_ENTROPY, "cross_entropy(logits, labels)", TG_XARG_TENSOR},
    {"onehot", TG_X_ONEHOT, "onehot(labels, n)", TG_XARG_COUNT},
};
#define N_BUILT (sizeof BUILT / sizeof BUILT[0])

/* Ops that take no input (constants) are written as literals, not called. Of the variadic
 * ops, those with an axis (concat, stack) take a list of tensors and the axis; the others (a
 * user-defined op: C callbacks and an output shape) have no tgx form. */
static bool is_function_op(tg_op op)
{
    const tg_op_info *info = tg_op_info_of(op);
    return info->arity > 0 || (info->arity == TG_VARIADIC && info->attrs == TG_ATTR_AXIS);
}

/* The function of op: its tensors (a list of them for a variadic op), then the attributes its
 * tg_attr_kind names. */
static void op_func(tg_op op, tg_xfunc *f)
{
    const tg_op_info *info = tg_op_info_of(op);
    *f = (tg_xfunc){.name = info->name, .kind = TG_X_OP, .op = op};
    int n = 0;
    const char *tensors = "x", *attrs = "";
    if (info->arity == TG_VARIADIC) {
        f->args[n++] = TG_XARG_TENSORS;
        tensors = "[x, ...]";
    } else {
        for (int i = 0; i < info->arity; i++)
            f->args[n++] = TG_XARG_TENSOR;
        /* the names docs/tgx.md gives the operands, where they say which comes first */
        tensors = op == TG_OP_ATAN2       ? "y, x"
                  : op == TG_OP_TAKE      ? "x, idx"
                  : op == TG_OP_INDEX_ADD ? "x, idx, src"
                  : info->arity == 1      ? "x"
                  : info->arity == 2      ? "a, b"
                                          : "c, a, b";
    }
    int optional = 0;
    switch (info->attrs) {
    case TG_ATTR_NONE: break;
    case TG_ATTR_CONSTANT:
        f->args[n++] = TG_XARG_NUMBER;
        attrs = ", c";
        break;
    case TG_ATTR_RANGE:
        f->args[n++] = TG_XARG_NUMBER;
        f->args[n++] = TG_XARG_NUMBER;
        attrs = ", lo, hi";
        break;
    case TG_ATTR_AXIS:
        /* softmax and the like: the last axis by default; an op of several tensors (concat,
         * take) names its axis, as there is no natural default. */
        f->args[n++] = TG_XARG_AXIS;
        optional = info->arity == 1;
        f->default_axis = -1;
        attrs = optional ? "[, axis]" : ", axis";
        break;
    case TG_ATTR_REDUCE: /* reductions: every element by default */
        f->args[n++] = TG_XARG_AXIS;
        optional = 1;
        f->default_axis = TG_ALL_AXES;
        attrs = "[, axis]";
        break;
    case TG_ATTR_SHAPE:
        f->args[n++] = TG_XARG_SHAPE;
        attrs = ", [shape]";
        break;
    case TG_ATTR_SLICE: /* also written x[start:stop:step] */
        f->args[n++] = TG_XARG_AXIS;
        f->args[n++] = TG_XARG_INT;
        f->args[n++] = TG_XARG_INT;
        f->args[n++] = TG_XARG_INT;
        optional = 1;
        attrs = ", axis, start, stop[, step]";
        break;
    case TG_ATTR_INDEX: /* also written x[i] */
        f->args[n++] = TG_XARG_AXIS;
        f->args[n++] = TG_XARG_INT;
        attrs = ", axis, i";
        break;
    case TG_ATTR_AXES:
        f->args[n++] = TG_XARG_AXES;
        attrs = ", [axes]";
        break;
    }
    f->max_args = n;
    f->min_args = n - optional;
    snprintf(f->usage, sizeof f->usage, "%s(%s%s)", info->name, tensors, attrs);
}

static void built_func(size_t i, tg_xfunc *f)
{
    *f = (tg_xfunc){.name = BUILT[i].name,
                    .kind = BUILT[i].kind,
                    .min_args = 2,
                    .max_args = 2,
                    .args = {TG_XARG_TENSOR, BUILT[i].second}};
    snprintf(f->usage, sizeof f->usage, "%s", BUILT[i].usage);
}

bool tg_expr__find_func(const char *s, size_t n, tg_xfunc *f)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        if (is_function_op((tg_op)op) && tg_expr__same_name(tg_op_name((tg_op)op), s, n)) {
            op_func((tg_op)op, f);
            return true;
        }
    }
    for (size_t i = 0; i < N_BUILT; i++) {
        if (tg_expr__same_name(BUILT[i].name, s, n)) {
            built_func(i, f);
            return true;
        }
    }
    return false;
}

const char *tg_expr_function(size_t i)
{
    for (int op = 0; op < TG_OP_COUNT; op++)
        if (is_function_op((tg_op)op) && i-- == 0)
            return tg_op_name((tg_op)op);
    return i < N_BUILT ? BUILT[i].name : NULL;
}

bool tg_expr_is_function(const char *name)
{
    tg_xfunc f;
    return name && tg_expr__find_func(name, strlen(name), &f);
}

/* Edit distance, for "did you mean" (short names only). */
static size_t distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b), row[33];
    if (na > 32 || nb > 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

const char *tg_expr__suggest(const char *s, size_t n)
{
    size_t best = SIZE_MAX, limit = n / 3 > 1 ? n / 3 : 1;
    const char *guess = NULL, *name;
    for (size_t i = 0; (name = tg_expr_function(i)) != NULL; i++) {
        size_t d = distance(s, n, name);
        if (d <= limit && d < best) {
            best = d;
            guess = name;
        }
    }
    return guess;
}
