/* tgx.c (test_random_graphs): a graph printed as a tgx program (docs/tgx.md), every op a call
 * of its function, and the command line `tapegrad grad --check` that replays it. */
#include "random_graphs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)n + 64;
        t->s = realloc(t->s, t->cap);
        cr_assert_not_null(t->s);
    }
}

/* A number that reads back exactly, in parentheses when negative. */
static void put_num(text *t, double x)
{
    put(t, x < 0 ? "(%.17g)" : "%.17g", x);
}

/* A nested list of `rank` dimensions, values row-major. */
static void put_list(text *t, int rank, const size_t *shape, const double *d)
{
    if (rank == 0) {
        put(t, "%.17g", *d);
        return;
    }
    size_t inner = numel_of(rank - 1, shape + 1);
    put(t, "[");
    for (size_t i = 0; i < shape[0]; i++) {
        if (i)
            put(t, ", ");
        put_list(t, rank - 1, shape + 1, d + i * inner);
    }
    put(t, "]");
}

static void put_shape(text *t, const tg_tensor *x)
{
    put(t, "[");
    for (int i = 0; i < tg_tensor_rank(x); i++)
        put(t, i ? ", %zu" : "%zu", tg_tensor_dim(x, i));
    put(t, "]");
}

/* The ops tgx also writes as operators (a + b, -x, x ^ c). */
static const char *const INFIX[TG_OP_COUNT] = {
    [TG_OP_ADD] = "+", [TG_OP_SUB] = "-",    [TG_OP_MUL] = "*",
    [TG_OP_DIV] = "/", [TG_OP_MATMUL] = "@", [TG_OP_POW] = "^"};

/* The graph as statements "t5 = tanh(t3)", "t6 = sum(t5, -1)", the inputs named x0, x1, ...:
 * every op is the call of its tgx function, its operands then its attributes, as the op
 * table describes it, except that every other value of an op with an operator is written
 * with the operator (so the replay covers both). `t` holds the recorded tensors, for the
 * shapes of reshape and keepdim (tgx has no keepdim: a reduction that keeps its axis is
 * reshaped to the kept shape). */

char *to_tgx(const graph *g, tg_tensor *const *t)
{
    text p = {NULL, 0, 0};
    for (int i = 0; i < g->n; i++) {
        const value *v = &g->v[i];
        put(&p, "t%d = ", i);
        if (v->op == INPUT) {
            put(&p, "x%d", v->input);
        } else if (v->op == TG_OP_CONST) {
            put_list(&p, v->rank, v->shape, g->pool + v->data);
        } else if (v->op == TG_OP_CUSTOM) { /* XTANH, as built-in ops */
            put(&p, "t%d * tanh(t%d)", v->a, v->a);
        } else if (i % 2 && v->op == TG_OP_NEG) {
            put(&p, "-t%d", v->a);
        } else if (i % 2 && v->op == TG_OP_POW) {
            put(&p, "t%d ^ ", v->a), put_num(&p, v->at.c);
        } else if (i % 2 && INFIX[v->op]) { /* the binary ones */
            put(&p, "t%d %s t%d", v->a, INFIX[v->op], v->b);
        } else if (v->op == TG_OP_SLICE || v->op == TG_OP_SELECT) { /* t3[:, 1:7:2], t3[:, -1] */
            int axis = v->at.axis < 0 ? v->at.axis + tg_tensor_rank(t[v->a]) : v->at.axis;
            put(&p, "t%d[", v->a);
            for (int k = 0; k < axis; k++)
                put(&p, ":, ");
            if (v->op == TG_OP_SELECT)
                put(&p, "%td]", v->at.index);
            else if (v->at.stop == TG_END)
                put(&p, "%td::%td]", v->at.start, v->at.step);
            else
                put(&p, "%td:%td:%td]", v->at.start, v->at.stop, v->at.step);
        } else if (v->op == TG_OP_CONCAT || v->op == TG_OP_STACK) { /* concat([t1, t2], 0) */
            put(&p, "%s([t%d", tg_op_name((tg_op)v->op), v->a);
            for (int k = 1; k < v->n_args; k++)
                put(&p, ", t%d", k == 1 ? v->b : v->more[k - 2]);
            put(&p, "], %d)", v->at.axis);
        } else if (v->op == TG_OP_TAKE) {
            put(&p, "take(t%d, t%d, %d)", v->a, v->b, v->at.axis);
        } else if (v->op == TG_OP_PERMUTE) {
            put(&p, "permute(t%d, [", v->a);
            for (int k = 0; k < tg_tensor_rank(t[v->a]); k++)
                put(&p, k ? ", %d" : "%d", v->at.axes[k]);
            put(&p, "])");
        } else {
            const tg_op_info *info = tg_op_info_of((tg_op)v->op);
            bool keepdim = info->attrs == TG_ATTR_REDUCE && v->at.keepdim;
            put(&p, "%s%s(t%d", keepdim ? "reshape(" : "", info->name, v->a);
            if (info->arity >= 2)
                put(&p, ", t%d", v->b);
            if (info->arity == 3) /* where(cond, a, b), index_add(x, idx, src, axis) */
                put(&p, ", t%d", v->more[0]);
            switch (info->attrs) {
            case TG_ATTR_NONE: break;
            case TG_ATTR_CONSTANT: put(&p, ", "), put_num(&p, v->at.c); break;
            case TG_ATTR_RANGE:
                put(&p, ", "), put_num(&p, v->at.lo), put(&p, ", "), put_num(&p, v->at.hi);
                break;
            case TG_ATTR_AXIS:
            case TG_ATTR_REDUCE:
                if (v->at.axis != TG_ALL_AXES)
                    put(&p, ", %d", v->at.axis);
                break;
            case TG_ATTR_SHAPE: put(&p, ", "), put_shape(&p, t[i]); break;
            case TG_ATTR_SLICE: /* written above */
            case TG_ATTR_INDEX:
            case TG_ATTR_AXES: break;
            }
            put(&p, ")");
            if (keepdim)
                put(&p, ", "), put_shape(&p, t[i]), put(&p, ")");
        }
        put(&p, "\n");
    }
    put(&p, "t%d", g->out);
    return p.s;
}

/* The arguments of `tapegrad grad --check` that replay a graph: the program on one line,
 * then every input as name=value; NULL-terminated, each string and the array malloc'd. */
char **replay_args(const graph *g, const char *prog)
{
    text t[6 + MAX_INPUTS];
    memset(t, 0, sizeof t);
    put(&t[0], "grad"), put(&t[1], "--check"), put(&t[2], "--tol"), put(&t[3], "%g", TOL);
    for (const char *q = prog; *q; q++)
        put(&t[4], *q == '\n' ? "; " : "%c", *q);
    for (int i = 0; i < g->n_inputs; i++) {
        const tg_tensor *x = g->inputs[i];
        double *d = malloc(tg_tensor_numel(x) * sizeof *d);
        cr_assert_not_null(d);
        tg_tensor_to_f64(x, d);
        put(&t[5 + i], "x%d=", i);
        put_list(&t[5 + i], tg_tensor_rank(x), tg_tensor_shape(x), d);
        free(d);
    }
    char **args = calloc(6 + MAX_INPUTS, sizeof *args);
    cr_assert_not_null(args);
    for (int i = 0; i < 5 + g->n_inputs; i++)
        args[i] = t[i].s;
    return args;
}

void free_args(char **args)
{
    for (char **a = args; *a; a++)
        free(*a);
    free(args);
}

/* The replay as a shell command, ready to paste. */
char *command_line(char *const *args)
{
    text c = {NULL, 0, 0};
    put(&c, "tapegrad");
    for (; *args; args++) {
        bool plain = strspn(*args, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen(*args);
        put(&c, plain ? " %s" : " '%s'", *args);
    }
    return c.s;
}
