/* test_random_graphs.c: a property test over the op table. Thousands of seeded random graphs,
 * each a random sequence of the table's ops over a few inputs and constants of random shapes,
 * with broadcasting, fan-out (values reused) and long chains; every gradient is checked against
 * central finite differences in f64 (tg_gradcheck).
 *
 * A graph is a list of values, each an input or an op of the table over earlier values,
 * recorded through tg_apply (constants through tg_constant, the custom op, xtanh, through
 * tg_custom). How a step applies an op is its entry in GENERATORS, keyed by tg_op: a function
 * that adds it onto an operand (with a partner, attributes and the guards its domain needs)
 * and how often a step draws it. An op without an
 * entry fails every_op_has_a_generator; one never drawn fails a run of 1000 graphs or more.
 *
 * Graphs stay where finite differences are meaningful: log, sqrt, division and fractional or
 * negative powers see positive operands (a guard x^2 + c recorded in the graph), and so do the
 * bases of pow_tensor; acosh one
 * above 1 (x^2 + c + 1), asin, acos, atanh, log1p and tan one inside their domain (r tanh x,
 * r = 0.9, or 1.3 for tan); exp, expm1, sinh, cosh, square and log_sigmoid see bounded ones,
 * and so do sin and cos (of a large, steep value they would make a bounded one of huge
 * curvature); a graph that puts an operand of relu, abs, sign, clamp, max or min within 1e-3
 * of a kink, one of floor or ceil within 1e-3 of an integer, the operands of minimum, maximum
 * or a comparison within 1e-3 of a tie, or atan2 near its origin or its jump, is drawn again; and detach appears
 * only as a + (detach(a) - detach(a)), since a detached value that changes the function makes
 * finite differences and backward disagree by design.
 *
 * Each graph is also printed as a tgx program (docs/tgx.md), every op a call of its function,
 * which is evaluated to check that it is the same function; the first few are replayed with
 * `tapegrad grad --check`, and a failing one is printed with its seed as that command line.
 * TG_RANDOM_GRAPHS=N sets how many graphs to check (default 3000), TG_RANDOM_SEED the first
 * seed. */
#include <criterion/criterion.h>
#include <tapegrad.h>

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/proc.h"

#define MAX_VALUES 400
#define MAX_INPUTS 6
#define MAX_NUMEL 1024 /* elements in any one value */
#define POOL 65536     /* constant elements in one graph */
#define KINK 1e-3      /* closest an operand may come to a kink */
#define BOUND 1e4      /* largest magnitude a value may reach */
#define TOL 1e-5
#define INPUT (-1)     /* the op of a value that is an input */
#define MAX_JOIN 4     /* operands of a concat or stack */

/* One value of the graph: an input, or an op of the table over earlier values. */
typedef struct value {
    int op;                   /* a tg_op, or INPUT */
    int a, b;                 /* operands (indices of earlier values), -1 for none */
    int more[MAX_JOIN - 2];   /* concat, stack, where: operands after a and b, -1 for none */
    int n_args;               /* concat, stack: how many operands (where: 3) */
    tg_attrs at;              /* its attributes; reshape's shape is rank and shape below */
    int rank;                 /* the shape of reshape's result, of an input or a constant */
    size_t shape[TG_MAX_RANK];
    int input;                /* INPUT: its index */
    size_t data;              /* TG_OP_CONST: offset of its values in the graph's pool */
} value;

typedef struct graph {
    uint64_t seed;
    int n;              /* values */
    value v[MAX_VALUES];
    int n_inputs;
    tg_tensor *inputs[MAX_INPUTS];
    int out;
    size_t n_pool;
    double pool[POOL];
} graph;

static size_t numel_of(int rank, const size_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

/* ---- the custom op ----------------------------------------------------------------------
 * TG_OP_CUSTOM is drawn as one user-defined op, xtanh(x) = x * tanh(x), elementwise: recorded
 * with tg_custom (tg_apply refuses custom ops) and written in the tgx program as the same
 * function of built-in ops, `t * tanh(t)`, so the replay checks its values too. */
static tg_status xtanh_forward(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]);
    double *y = c->y;
    for (size_t i = 0, n = tg_tensor_numel(c->out); i < n; i++)
        y[i] = x[i] * tanh(x[i]);
    return TG_OK;
}

/* dx += dy * (tanh(x) + x (1 - tanh(x)^2)) */
static tg_status xtanh_vjp(const tg_custom_call *c)
{
    const double *x = tg_tensor_data_const(c->in[0]), *dy = c->dy;
    double *dx = c->dx[0];
    for (size_t i = 0, n = tg_tensor_numel(c->out); dx && i < n; i++) {
        double t = tanh(x[i]);
        dx[i] += dy[i] * (t + x[i] * (1 - t * t));
    }
    return TG_OK;
}

static const tg_custom_op XTANH = {.name = "xtanh", .forward = xtanh_forward, .vjp = xtanh_vjp};

/* ---- replaying a graph onto a tape ------------------------------------------------------ */

/* Records g's values onto tape into t[0..n), the inputs bound to xs: every op through tg_apply,
 * as the op table describes it. Returns the output, or NULL (the error kept on the tape). */
static tg_tensor *record(tg_tape *tape, const graph *g, tg_tensor *const *xs, tg_tensor **t)
{
    for (int i = 0; i < g->n; i++) {
        const value *v = &g->v[i];
        tg_tensor *r;
        if (v->op == INPUT) {
            r = xs[v->input];
        } else if (v->op == TG_OP_CONST) {
            r = tg_constant(tape, TG_F64, v->rank, v->shape, g->pool + v->data);
        } else if (v->op == TG_OP_CUSTOM) {
            tg_tensor *x = t[v->a];
            r = tg_custom(tape, &XTANH, NULL, &x, 1, tg_tensor_rank(x), tg_tensor_shape(x));
        } else {
            tg_tensor *in[MAX_JOIN] = {v->a >= 0 ? t[v->a] : NULL, v->b >= 0 ? t[v->b] : NULL};
            int arity = tg_op_arity((tg_op)v->op);
            if (arity == TG_VARIADIC || arity == 3) { /* concat, stack; where */
                arity = arity == 3 ? 3 : v->n_args;
                for (int k = 2; k < arity; k++)
                    in[k] = t[v->more[k - 2]];
            }
            tg_attrs at = v->at;
            at.rank = v->rank;
            at.shape = v->shape;
            r = tg_apply(tape, (tg_op)v->op, in, (size_t)arity, &at);
        }
        if (!r)
            return NULL;
        t[i] = r;
    }
    return t[g->out];
}

static tg_tensor *check_fn(tg_tape *tape, tg_tensor *const *xs, size_t n, void *ud)
{
    (void)n;
    static tg_tensor *t[MAX_VALUES];
    return record(tape, ud, xs, t);
}

/* ---- the tgx program and the command line ------------------------------------------------ */

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
    [TG_OP_ADD] = "+", [TG_OP_SUB] = "-", [TG_OP_MUL] = "*", [TG_OP_DIV] = "/",
    [TG_OP_MATMUL] = "@", [TG_OP_POW] = "^"};

/* The graph as statements "t5 = tanh(t3)", "t6 = sum(t5, -1)", the inputs named x0, x1, ...:
 * every op is the call of its tgx function, its operands then its attributes, as the op
 * table describes it, except that every other value of an op with an operator is written
 * with the operator (so the replay covers both). `t` holds the recorded tensors, for the
 * shapes of reshape and keepdim (tgx has no keepdim: a reduction that keeps its axis is
 * reshaped to the kept shape). */

static char *to_tgx(const graph *g, tg_tensor *const *t)
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
            if (info->arity == 3) /* where(cond, a, b) */
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
static char **replay_args(const graph *g, const char *prog)
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

static void free_args(char **args)
{
    for (char **a = args; *a; a++)
        free(*a);
    free(args);
}

/* The replay as a shell command, ready to paste. */
static char *command_line(char *const *args)
{
    text c = {NULL, 0, 0};
    put(&c, "tapegrad");
    for (; *args; args++) {
        bool plain = strspn(*args, "abcdefghijklmnopqrstuvwxyz0123456789-.") == strlen(*args);
        put(&c, plain ? " %s" : " '%s'", *args);
    }
    return c.s;
}

/* ---- generating a graph ------------------------------------------------------------------- */

typedef struct gen {
    graph *g;
    tg_rng rng;
    tg_tape *tape;
    tg_tensor *t[MAX_VALUES]; /* the values, recorded (valid until the next add_value) */
    bool rejected;            /* near a kink, or a value out of bounds */
} gen;

static int below(gen *s, int n)
{
    return (int)tg_rng_below(&s->rng, (uint64_t)n);
}

static double uniform(gen *s, double lo, double hi)
{
    return lo + (hi - lo) * tg_rng_uniform(&s->rng);
}

static double max_abs(const tg_tensor *x)
{
    const double *d = tg_tensor_data_const(x);
    double m = 0;
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        m = fmax(m, fabs(d[i]));
    return m;
}

/* Adds value *v, records it, and checks its bounds; returns its index or -1. */
static int add_value(gen *s, const value *v)
{
    graph *g = s->g;
    if (g->n >= MAX_VALUES || s->rejected)
        return -1;
    g->v[g->n] = *v;
    g->n++;
    g->out = g->n - 1;
    tg_tape_reset(s->tape);
    /* Recording the whole graph again keeps the tensors on one live tape. */
    tg_tensor *y = record(s->tape, g, g->inputs, s->t);
    cr_assert_not_null(y, "seed %llu: the generator made a bad graph (%s): %s",
                       (unsigned long long)g->seed, v->op == INPUT ? "input" : tg_op_name(v->op),
                       tg_tape_error(s->tape));
    double m = max_abs(y);
    if (!(m <= BOUND) || tg_tensor_numel(y) > MAX_NUMEL)
        s->rejected = true;
    return g->n - 1;
}

/* A value of `op` over a and b (-1: none), with no attributes set but the axis (all). */
static value node(int op, int a, int b)
{
    value v;
    memset(&v, 0, sizeof v);
    v.op = op;
    v.a = a;
    v.b = b;
    for (int k = 0; k < MAX_JOIN - 2; k++)
        v.more[k] = -1;
    v.at.axis = TG_ALL_AXES;
    return v;
}

/* Adds op over a and b (-1 for a unary op), with no attributes; its index or -1. */
static int apply(gen *s, tg_op op, int a, int b)
{
    value v = node(op, a, b);
    return add_value(s, &v);
}

/* A new input (a leaf requiring grad) or constant of this shape. */
static int new_leaf(gen *s, int rank, const size_t *shape, bool constant)
{
    graph *g = s->g;
    size_t n = numel_of(rank, shape);
    cr_assert_leq(n, MAX_NUMEL);
    constant = constant || g->n_inputs == MAX_INPUTS;
    if (constant && g->n_pool + n > POOL) {
        s->rejected = true;
        return -1;
    }
    value v = node(constant ? TG_OP_CONST : INPUT, -1, -1);
    v.rank = rank;
    memcpy(v.shape, shape, sizeof(size_t) * (size_t)rank);
    v.input = g->n_inputs;
    v.data = g->n_pool;
    double leaf[MAX_NUMEL], *d = constant ? g->pool + g->n_pool : leaf;
    for (size_t i = 0; i < n; i++)
        d[i] = uniform(s, -1.5, 1.5);
    if (constant)
        g->n_pool += n;
    else
        g->inputs[g->n_inputs++] = ts_leaf(TG_F64, rank, shape, d, true);
    return add_value(s, &v);
}

static void random_shape(gen *s, int *rank, size_t *shape)
{
    *rank = below(s, 4); /* 0..3 */
    for (int i = 0; i < *rank; i++)
        shape[i] = 1 + (size_t)below(s, 4);
}

/* A shape that broadcasts against `shape`: some axes set to 1, some leading ones dropped. */
static void broadcast_partner(gen *s, int rank, const size_t *shape, int *r2, size_t *s2)
{
    int drop = rank ? below(s, rank + 1) : 0;
    *r2 = rank - drop;
    for (int i = 0; i < *r2; i++)
        s2[i] = below(s, 3) == 0 ? 1 : shape[drop + i];
}

/* A new input or constant (one in `one_in` is a constant) that broadcasts against value a. */
static int new_partner(gen *s, int a, int one_in)
{
    int r2;
    size_t s2[TG_MAX_RANK];
    const tg_tensor *x = s->t[a];
    broadcast_partner(s, tg_tensor_rank(x), tg_tensor_shape(x), &r2, s2);
    return new_leaf(s, r2, s2, below(s, one_in) == 0);
}

static bool broadcasts(const tg_tensor *a, const tg_tensor *b)
{
    int ra = tg_tensor_rank(a), rb = tg_tensor_rank(b);
    for (int i = 1; i <= ra && i <= rb; i++) {
        size_t da = tg_tensor_dim(a, -i), db = tg_tensor_dim(b, -i);
        if (da != db && da != 1 && db != 1)
            return false;
    }
    return true;
}

/* An operand: often the newest value (chains), else any earlier one (fan-out). */
static int pick(gen *s)
{
    int n = s->g->n;
    int i = below(s, 2) == 0 ? n - 1 : below(s, n);
    while (s->g->v[i].op == TG_OP_DETACH) /* never a detached value itself (see gen_detach) */
        i--;
    return i;
}

/* x^2 + c with c in [0.25, 1]: a positive operand for log, sqrt, div and fractional powers. */
static int positive(gen *s, int a)
{
    int sq = apply(s, TG_OP_SQUARE, a, -1);
    if (sq < 0)
        return -1;
    value v = node(TG_OP_ADD_SCALAR, sq, -1);
    v.at.c = uniform(s, 0.25, 1);
    return add_value(s, &v);
}

/* Rejects the graph when any element of x is within KINK of `at`. */
static void keep_off(gen *s, const tg_tensor *x, double at)
{
    const double *d = tg_tensor_data_const(x);
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        if (fabs(d[i] - at) < KINK)
            s->rejected = true;
}

/* Rejects the graph when the two largest elements of a slice that max reduces are within
 * KINK of each other (the gradient would jump between them). */
static void keep_max_apart(gen *s, const tg_tensor *x, int axis)
{
    int rank = tg_tensor_rank(x);
    size_t n = tg_tensor_numel(x);
    const double *d = tg_tensor_data_const(x);
    size_t len = n, stride = 1, outer = 1;
    if (axis != TG_ALL_AXES) {
        int ax = axis < 0 ? axis + rank : axis;
        len = tg_tensor_dim(x, ax);
        for (int i = ax + 1; i < rank; i++)
            stride *= tg_tensor_dim(x, i);
        outer = n / (len * stride);
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t in = 0; in < stride; in++) {
            const double *p = d + o * len * stride + in;
            double best = -INFINITY, second = -INFINITY;
            for (size_t j = 0; j < len; j++) {
                double v = p[j * stride];
                if (v > best)
                    second = best, best = v;
                else if (v > second)
                    second = v;
            }
            if (len > 1 && best - second < KINK)
                s->rejected = true;
        }
}

static int random_axis(gen *s, int rank, bool allow_all)
{
    if (rank == 0 || (allow_all && below(s, 3) == 0))
        return TG_ALL_AXES;
    int ax = below(s, rank);
    return below(s, 2) ? ax : ax - rank; /* negative axes too */
}

/* ---- the generators: how a step applies each op -------------------------------------------
 * Each adds `op` onto value a, with whatever else it needs (a partner, guard values), or adds
 * nothing when a does not suit the op. Values recorded before an add_value are stale after it:
 * read s->t again. */

/* Ops that take any operand and no attributes: neg, sigmoid, tanh; exp, square and
 * log_sigmoid too, within their entry's limit. */
static void gen_plain(gen *s, tg_op op, int a)
{
    apply(s, op, a, -1);
}

/* x * c with c in [-1.5, 1.5], x + c with c in [-1, 1]. */
static void gen_scalar(gen *s, tg_op op, int a)
{
    value v = node(op, a, -1);
    double r = op == TG_OP_SCALE ? 1.5 : 1;
    v.at.c = uniform(s, -r, r);
    add_value(s, &v);
}

/* Elementwise with broadcasting: the partner is an earlier value that broadcasts against a,
 * or a new input or constant of a shape that does, in either order; div's partner is the
 * divisor, made positive. */
static void gen_binary(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    double m = max_abs(x);
    int b = -1;
    for (int tries = 0; tries < 4 && b < 0; tries++) {
        int c = pick(s);
        if (broadcasts(x, s->t[c]) && (op != TG_OP_MUL || m * max_abs(s->t[c]) < BOUND))
            b = c;
    }
    if (b < 0 || below(s, 4) == 0)
        b = new_partner(s, a, 3);
    if (b < 0)
        return;
    if (op == TG_OP_DIV && (b = positive(s, b)) < 0)
        return;
    if (op != TG_OP_DIV && below(s, 2)) {
        int tmp = a;
        a = b;
        b = tmp;
    }
    apply(s, op, a, b);
}

/* mul: half the time x * x (fan-out of one value into both operands), else as gen_binary. */
static void gen_mul(gen *s, tg_op op, int a)
{
    if (below(s, 2))
        gen_binary(s, op, a);
    else if (max_abs(s->t[a]) < 100)
        apply(s, op, a, a);
}

/* A new constant, of a shape that broadcasts against a, added to a or multiplying it. */
static void gen_const(gen *s, tg_op op, int a)
{
    (void)op;
    int c = new_partner(s, a, 1);
    if (c >= 0)
        apply(s, below(s, 2) ? TG_OP_ADD : TG_OP_MUL, a, c);
}

/* sqrt, log: of x^2 + c. */
static void gen_positive(gen *s, tg_op op, int a)
{
    int p = positive(s, a);
    if (p >= 0)
        apply(s, op, p, -1);
}

/* x^c: whole powers of any operand, negative and fractional ones of x^2 + c; |x| < 20. */
static void gen_pow(gen *s, tg_op op, int a)
{
    static const double ex[6] = {2, 3, -1, 0.5, 1.5, -0.5};
    value v = node(op, a, -1);
    v.at.c = ex[below(s, 6)];
    if (v.at.c < 0 || v.at.c != floor(v.at.c))
        v.a = positive(s, a);
    if (v.a >= 0 && max_abs(s->t[v.a]) < 20)
        add_value(s, &v);
}

/* abs, relu: kinked at 0. */
static void gen_kink(gen *s, tg_op op, int a)
{
    keep_off(s, s->t[a], 0);
    apply(s, op, a, -1);
}

/* clamp to a random [lo, hi], lo <= hi, kinked at both. */
static void gen_clamp(gen *s, tg_op op, int a)
{
    value v = node(op, a, -1);
    v.at.lo = uniform(s, -1, 0.5);
    v.at.hi = v.at.lo + uniform(s, 0, 1.5);
    keep_off(s, s->t[a], v.at.lo);
    keep_off(s, s->t[a], v.at.hi);
    add_value(s, &v);
}

/* NumPy's other cases: a 1-D operand ((K) @ (K), (K) @ (K,N), (M,K) @ (K), (B,M,K) @ (K)),
 * and a 2-D operand against a 3-D one ((M,K) @ (B,K,N), (B,M,K) @ (K,N)); the partner is a
 * new input or constant. */
static void gen_matmul_numpy(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    const int rank = tg_tensor_rank(x);
    const size_t K = tg_tensor_dim(x, -1);
    size_t bs[3] = {K, 1 + (size_t)below(s, 4), 1 + (size_t)below(s, 4)};
    int br = below(s, 2) ? 1 : 2; /* (K) or (K,N) */
    if (rank == 2 && br == 2) {   /* (M,K) @ (B,K,N) */
        br = 3;
        bs[0] = 1 + (size_t)below(s, 3);
        bs[1] = K;
    }
    double m = max_abs(x);
    int b = new_leaf(s, br, bs, below(s, 4) == 0);
    if (b >= 0 && m * max_abs(s->t[b]) * (double)K < BOUND)
        apply(s, op, a, b);
}

/* (M,K) @ (K,N), or batched (B,M,K) @ (B,K,N): the partner is an earlier value of a fitting
 * shape, or a new input or constant; a quarter of the time (and always for a 1-D a), one of
 * NumPy's other cases. */
static void gen_matmul(gen *s, tg_op op, int a)
{
    graph *g = s->g;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank >= 1 && rank <= 3 && (rank == 1 || below(s, 4) == 0)) {
        gen_matmul_numpy(s, op, a);
        return;
    }
    if (rank != 2 && rank != 3)
        return;
    double m = max_abs(x);
    size_t bs[3];
    if (rank == 3)
        bs[0] = tg_tensor_dim(x, 0);
    bs[rank - 2] = tg_tensor_dim(x, -1);
    bs[rank - 1] = 1 + (size_t)below(s, 4);
    int b = -1;
    for (int i = 0; i < g->n && b < 0; i++) {
        const tg_tensor *c = s->t[i];
        if (g->v[i].op != TG_OP_DETACH && tg_tensor_rank(c) == rank &&
            tg_tensor_dim(c, -2) == bs[rank - 2] && (rank == 2 || tg_tensor_dim(c, 0) == bs[0]) &&
            below(s, 2))
            b = i;
    }
    if (b < 0)
        b = new_leaf(s, rank, bs, below(s, 4) == 0);
    if (b >= 0 && m * max_abs(s->t[b]) * (double)bs[rank - 2] < BOUND)
        apply(s, op, a, b);
}

static void gen_transpose(gen *s, tg_op op, int a)
{
    if (tg_tensor_rank(s->t[a]) == 2)
        apply(s, op, a, -1);
}

/* reshape: the element count split into random factors over 0 to 3 axes. */
static void gen_reshape(gen *s, tg_op op, int a)
{
    size_t n = tg_tensor_numel(s->t[a]), f[16];
    int nf = 0;
    for (size_t p = 2, r = n; r > 1; p++)
        while (r % p == 0)
            f[nf++] = p, r /= p;
    value v = node(op, a, -1);
    v.rank = below(s, 4) + (nf > 0);
    if (v.rank == 0 && n != 1)
        v.rank = 1;
    for (int i = 0; i < v.rank; i++)
        v.shape[i] = 1;
    for (int i = 0; i < nf; i++)
        v.shape[below(s, v.rank)] *= f[i];
    add_value(s, &v);
}

/* The value of an op along an axis: a reduction (TG_ATTR_REDUCE: any axis or all of them,
 * keepdim or not) or softmax and the like (TG_ATTR_AXIS: one axis, so not of a 0-d value). */
static bool along_axis(gen *s, tg_op op, int a, value *v)
{
    int rank = tg_tensor_rank(s->t[a]);
    bool reduce = tg_op_info_of(op)->attrs == TG_ATTR_REDUCE;
    if (!reduce && rank == 0)
        return false;
    *v = node(op, a, -1);
    v->at.axis = random_axis(s, rank, reduce);
    v->at.keepdim = reduce && below(s, 2);
    return true;
}

static void gen_axis(gen *s, tg_op op, int a)
{
    value v;
    if (along_axis(s, op, a, &v))
        add_value(s, &v);
}

/* max, min: no ties among the largest (smallest: the largest of -x) elements of a slice. */
static void gen_max(gen *s, tg_op op, int a)
{
    value v;
    if (!along_axis(s, op, a, &v))
        return;
    const tg_tensor *x = op == TG_OP_MIN ? tg_neg(s->tape, s->t[a]) : s->t[a];
    cr_assert_not_null(x, "%s", tg_tape_error(s->tape));
    keep_max_apart(s, x, v.at.axis);
    add_value(s, &v);
}

/* ---- binary math, comparisons, where, min and prod ---------------------------------------
 * Their guards look at values computed on the generator's tape (s->tape) beside the graph's:
 * the next add_value records the graph afresh, so those extra nodes vanish. */

/* A partner for a: an earlier value other than a that broadcasts against it, or a new input
 * or constant that does; -1 when none could be had. */
static int any_partner(gen *s, int a)
{
    for (int tries = 0; tries < 4; tries++) {
        int c = pick(s);
        if (c != a && broadcasts(s->t[a], s->t[c]) && below(s, 4))
            return c;
    }
    return new_partner(s, a, 3);
}

/* Rejects the graph when a and b (broadcast) come within KINK of each other anywhere: a tie
 * of minimum/maximum, or a comparison about to flip. */
static void keep_apart(gen *s, int a, int b)
{
    tg_tensor *d = tg_sub(s->tape, s->t[a], s->t[b]);
    cr_assert_not_null(d, "%s", tg_tape_error(s->tape));
    keep_off(s, d, 0);
}

/* minimum, maximum: a partner kept off ties, either way round; or the op of a with itself,
 * a tie everywhere, whose split gradient adds up to a's. */
static void gen_minmax(gen *s, tg_op op, int a)
{
    if (below(s, 5) == 0) {
        apply(s, op, a, a);
        return;
    }
    int b = any_partner(s, a);
    if (b < 0)
        return;
    keep_apart(s, a, b);
    if (below(s, 2))
        apply(s, op, a, b);
    else
        apply(s, op, b, a);
}

/* atan2(y, x): a and a partner as y and x, either way round, kept 0.1 away from the origin
 * and off the jump between pi and -pi on the negative x axis. */
static void gen_atan2(gen *s, tg_op op, int a)
{
    int b = any_partner(s, a);
    if (b < 0)
        return;
    int y = a, x = b;
    if (below(s, 2))
        y = b, x = a;
    tg_tensor *r2 = tg_add(s->tape, tg_square(s->tape, s->t[y]), tg_square(s->tape, s->t[x]));
    tg_tensor *t = tg_atan2(s->tape, s->t[y], s->t[x]);
    cr_assert(r2 && t, "%s", tg_tape_error(s->tape));
    const double *dr = tg_tensor_data_const(r2), *dt = tg_tensor_data_const(t);
    for (size_t i = 0; i < tg_tensor_numel(t); i++)
        if (dr[i] < 0.01 || 3.141592653589793 - fabs(dt[i]) < KINK)
            s->rejected = true;
    apply(s, op, y, x);
}

/* a^b: the base made positive (x^2 + c), the exponent a partner of magnitude below 3 (or the
 * base itself: x^x). */
static void gen_pow_tensor(gen *s, tg_op op, int a)
{
    int p = positive(s, a);
    if (p < 0 || !(max_abs(s->t[p]) < 10))
        return;
    int e = below(s, 4) == 0 ? p : any_partner(s, p);
    if (e >= 0 && max_abs(s->t[e]) < 3)
        apply(s, op, p, e);
}

/* A comparison of a with a partner kept apart from it (so no element flips under the
 * finite differences), or eq/ne of a with itself (all 1 or all 0); the mask is then used
 * half the time as a factor of a, so it shapes a gradient. */
static void gen_compare(gen *s, tg_op op, int a)
{
    int b = a;
    if (!((op == TG_OP_EQ || op == TG_OP_NE) && below(s, 3) == 0)) {
        if ((b = any_partner(s, a)) < 0)
            return;
        keep_apart(s, a, b);
    }
    int m = below(s, 2) ? apply(s, op, a, b) : apply(s, op, b, a);
    if (m >= 0 && below(s, 2))
        apply(s, TG_OP_MUL, a, m);
}

/* where(cond, a, b): b a partner of a; cond a comparison of a with a new partner (kept
 * apart), or relu of a new partner kept off 0 (plain values, 0 where false); a and b either
 * way round. */
static void gen_where(gen *s, tg_op op, int a)
{
    static const tg_op cmps[4] = {TG_OP_LT, TG_OP_LE, TG_OP_GT, TG_OP_GE};
    int b = any_partner(s, a);
    int u = b < 0 ? -1 : new_partner(s, a, 2);
    if (u < 0)
        return;
    int c;
    if (below(s, 2)) {
        keep_apart(s, a, u);
        c = apply(s, cmps[below(s, 4)], a, u);
    } else {
        keep_off(s, s->t[u], 0);
        c = apply(s, TG_OP_RELU, u, -1);
    }
    if (c < 0)
        return;
    value v = node(op, c, a);
    v.more[0] = b;
    if (below(s, 2))
        v.b = b, v.more[0] = a;
    add_value(s, &v);
}

/* prod: of at most 24 elements (a long product leaves the bounds). */
static void gen_prod(gen *s, tg_op op, int a)
{
    if (tg_tensor_numel(s->t[a]) <= 24)
        gen_axis(s, op, a);
}

/* detach: d = detach(a) has a's value and no gradient, so any use of it makes the finite
 * differences (which see d move with a) disagree with backward; a + (d - d) keeps the
 * function a and still puts detach on the path. */
static void gen_detach(gen *s, tg_op op, int a)
{
    int d = apply(s, op, a, -1);
    int z = d < 0 ? -1 : apply(s, TG_OP_SUB, d, d);
    if (z >= 0)
        apply(s, TG_OP_ADD, a, z);
}

/* ---- elementwise math ---- */

/* Rejects the graph when any element of x is within KINK of an integer (floor's and ceil's
 * jumps). */
static void keep_off_integers(gen *s, const tg_tensor *x)
{
    const double *d = tg_tensor_data_const(x);
    for (size_t i = 0; i < tg_tensor_numel(x); i++)
        if (fabs(d[i] - nearbyint(d[i])) < KINK)
            s->rejected = true;
}

/* asin, acos, atanh, log1p on (-0.9, 0.9), tan on (-1.3, 1.3) (away from its poles): a itself
 * half the time when it is inside, else r tanh(a). */
static void gen_interval(gen *s, tg_op op, int a)
{
    double r = op == TG_OP_TAN ? 1.3 : 0.9;
    if (!(max_abs(s->t[a]) < r) || below(s, 2)) {
        int t = apply(s, TG_OP_TANH, a, -1);
        if (t < 0)
            return;
        value v = node(TG_OP_SCALE, t, -1);
        v.at.c = r;
        if ((a = add_value(s, &v)) < 0)
            return;
    }
    apply(s, op, a, -1);
}

/* acosh: of x^2 + c + 1 >= 1.25. */
static void gen_above1(gen *s, tg_op op, int a)
{
    int p = positive(s, a);
    if (p < 0)
        return;
    value v = node(TG_OP_ADD_SCALAR, p, -1);
    v.at.c = 1;
    if ((p = add_value(s, &v)) >= 0)
        apply(s, op, p, -1);
}

/* floor, ceil: steps at the integers. */
static void gen_steps(gen *s, tg_op op, int a)
{
    keep_off_integers(s, s->t[a]);
    apply(s, op, a, -1);
}

/* ---- shape, indexing and joins ---- */

/* x[start:stop:step] along a random axis: bounds past either end and negative ones, TG_END,
 * steps 1 to 3; never an empty result (reductions of it would fail). */
static void gen_slice(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    value v = node(op, a, -1);
    v.at.axis = random_axis(s, rank, false);
    ptrdiff_t dim = (ptrdiff_t)tg_tensor_dim(x, v.at.axis);
    v.at.start = below(s, 2 * (int)dim + 3) - dim - 1;
    v.at.stop = below(s, 4) == 0 ? TG_END : below(s, 2 * (int)dim + 3) - dim - 1;
    v.at.step = 1 + below(s, 3);
    ptrdiff_t lo = v.at.start < 0 ? (v.at.start + dim < 0 ? 0 : v.at.start + dim)
                                  : (v.at.start > dim ? dim : v.at.start);
    ptrdiff_t hi = v.at.stop < 0 ? (v.at.stop + dim < 0 ? 0 : v.at.stop + dim)
                                 : (v.at.stop > dim ? dim : v.at.stop);
    if (hi > lo)
        add_value(s, &v);
}

/* x[..., i, ...]: one index along a random axis, negative ones too. */
static void gen_select(gen *s, tg_op op, int a)
{
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    value v = node(op, a, -1);
    v.at.axis = random_axis(s, rank, false);
    int dim = (int)tg_tensor_dim(x, v.at.axis);
    v.at.index = below(s, 2 * dim) - dim;
    add_value(s, &v);
}

/* concat of 1 to 4 operands along a random axis: earlier values that fit, or new inputs or
 * constants of a random length along it; stack of 1 to 4 of a's shape. */
static void gen_join(gen *s, tg_op op, int a)
{
    const bool stack = op == TG_OP_STACK;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if ((!stack && rank == 0) || (stack && rank >= TG_MAX_RANK) ||
        tg_tensor_numel(x) * (size_t)MAX_JOIN > MAX_NUMEL)
        return;
    value v = node(op, a, -1);
    v.at.axis = stack ? below(s, 2 * rank + 2) - rank - 1 : random_axis(s, rank, false);
    int ax = v.at.axis < 0 ? v.at.axis + rank + stack : v.at.axis;
    v.n_args = 1 + below(s, MAX_JOIN);
    int args[MAX_JOIN] = {a};
    for (int k = 1; k < v.n_args; k++) {
        x = s->t[a]; /* stale after an add_value */
        int c = -1;
        for (int tries = 0; tries < 3 && c < 0; tries++) {
            int i = pick(s);
            const tg_tensor *y = s->t[i];
            bool fits = tg_tensor_rank(y) == rank;
            for (int d = 0; fits && d < rank; d++)
                fits = (!stack && d == ax) || tg_tensor_dim(y, d) == tg_tensor_dim(x, d);
            if (fits)
                c = i;
        }
        if (c < 0) {
            size_t shape[TG_MAX_RANK];
            for (int d = 0; d < rank; d++)
                shape[d] = tg_tensor_dim(x, d);
            if (!stack)
                shape[ax] = 1 + (size_t)below(s, 3);
            c = new_leaf(s, rank, shape, below(s, 3) == 0);
            if (c < 0)
                return;
        }
        args[k] = c;
    }
    v.b = v.n_args > 1 ? args[1] : -1;
    for (int k = 2; k < v.n_args; k++)
        v.more[k - 2] = args[k];
    add_value(s, &v);
}

/* take along a random axis, with a constant index tensor (0-d to 2-D) of integers, negative
 * and repeated ones among them. */
static void gen_take(gen *s, tg_op op, int a)
{
    graph *g = s->g;
    const tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    if (rank == 0)
        return;
    int axis = random_axis(s, rank, false);
    long dim = (long)tg_tensor_dim(x, axis);
    int ir = below(s, 3);
    if (rank - 1 + ir > TG_MAX_RANK)
        ir = TG_MAX_RANK - rank + 1;
    value c = node(TG_OP_CONST, -1, -1);
    c.rank = ir;
    for (int d = 0; d < ir; d++)
        c.shape[d] = 1 + (size_t)below(s, 4);
    size_t m = numel_of(ir, c.shape);
    if (g->n_pool + m > POOL || tg_tensor_numel(x) / (size_t)dim * m > MAX_NUMEL)
        return;
    c.data = g->n_pool;
    for (size_t j = 0; j < m; j++)
        g->pool[g->n_pool++] = (double)(below(s, 2 * (int)dim) - dim);
    int idx = add_value(s, &c);
    if (idx < 0)
        return;
    value v = node(op, a, idx);
    v.at.axis = axis;
    add_value(s, &v);
}

/* A random order of the axes, some given as negative numbers. */
static void gen_permute(gen *s, tg_op op, int a)
{
    int rank = tg_tensor_rank(s->t[a]);
    value v = node(op, a, -1);
    for (int k = 0; k < rank; k++)
        v.at.axes[k] = k;
    for (int k = rank - 1; k > 0; k--) { /* Fisher-Yates */
        int j = below(s, k + 1), tmp = v.at.axes[k];
        v.at.axes[k] = v.at.axes[j];
        v.at.axes[j] = tmp;
    }
    for (int k = 0; k < rank; k++)
        if (below(s, 4) == 0)
            v.at.axes[k] -= rank;
    add_value(s, &v);
}

/* How a step applies an op: `add` (above); `any` and `chain`, how often a step of a wide
 * graph and a step of a deep chain draws it (the op's weight over its column's sum); and
 * `limit`, when set, the magnitude a's elements must stay below for the op to be applied. */
typedef struct generator {
    void (*add)(gen *s, tg_op op, int a);
    int any, chain;
    double limit;
} generator;

/* Deep chains are made of the ops that keep values in range (bounded unary ops, scale and
 * add_scalar, the elementwise binary ops); wide graphs draw every op. */
static const generator GENERATORS[TG_OP_COUNT] = {
    /*                    add             any  chain  limit */
    [TG_OP_CONST]       = {gen_const,       1,   0},
    [TG_OP_DETACH]      = {gen_detach,      2,   0},
    [TG_OP_ADD]         = {gen_binary,      2,   2},
    [TG_OP_SUB]         = {gen_binary,      2,   2},
    [TG_OP_MUL]         = {gen_mul,         4,   4},
    [TG_OP_DIV]         = {gen_binary,      2,   2},
    [TG_OP_NEG]         = {gen_plain,       2,   2},
    [TG_OP_SCALE]       = {gen_scalar,      2,   2},
    [TG_OP_ADD_SCALAR]  = {gen_scalar,      2,   2},
    [TG_OP_POW]         = {gen_pow,         2,   0},
    [TG_OP_SQUARE]      = {gen_plain,       2,   0,  100},
    [TG_OP_SQRT]        = {gen_positive,    1,   0},
    [TG_OP_EXP]         = {gen_plain,       2,   0,    4},
    [TG_OP_LOG]         = {gen_positive,    1,   0},
    [TG_OP_ABS]         = {gen_kink,        1,   0},
    [TG_OP_SIGMOID]     = {gen_plain,       1,   1},
    [TG_OP_TANH]        = {gen_plain,       1,   1},
    [TG_OP_RELU]        = {gen_kink,        1,   0},
    [TG_OP_LOG_SIGMOID] = {gen_plain,       2,   2,   30},
    [TG_OP_CLAMP]       = {gen_clamp,       2,   0},
    [TG_OP_MATMUL]      = {gen_matmul,      2,   0},
    [TG_OP_TRANSPOSE]   = {gen_transpose,   2,   0},
    [TG_OP_RESHAPE]     = {gen_reshape,     2,   0},
    [TG_OP_SUM]         = {gen_axis,        2,   0},
    [TG_OP_MEAN]        = {gen_axis,        2,   0},
    [TG_OP_MAX]         = {gen_max,         2,   0},
    [TG_OP_LOGSUMEXP]   = {gen_axis,        2,   0},
    [TG_OP_SOFTMAX]     = {gen_axis,        2,   0},
    [TG_OP_LOG_SOFTMAX] = {gen_axis,        2,   0},
    /* elementwise math */
    [TG_OP_SIN]         = {gen_plain,       1,   1,    4},
    [TG_OP_COS]         = {gen_plain,       1,   1,    4},
    [TG_OP_TAN]         = {gen_interval,    1,   0},
    [TG_OP_ASIN]        = {gen_interval,    1,   0},
    [TG_OP_ACOS]        = {gen_interval,    1,   0},
    [TG_OP_ATAN]        = {gen_plain,       1,   1},
    [TG_OP_SINH]        = {gen_plain,       1,   0,    5},
    [TG_OP_COSH]        = {gen_plain,       1,   0,    5},
    [TG_OP_ASINH]       = {gen_plain,       1,   1},
    [TG_OP_ACOSH]       = {gen_above1,      1,   0},
    [TG_OP_ATANH]       = {gen_interval,    1,   0},
    [TG_OP_EXPM1]       = {gen_plain,       1,   0,    4},
    [TG_OP_LOG1P]       = {gen_interval,    1,   0},
    [TG_OP_ERF]         = {gen_plain,       1,   1},
    [TG_OP_SOFTPLUS]    = {gen_plain,       1,   1},
    [TG_OP_GELU]        = {gen_plain,       1,   1},
    [TG_OP_SILU]        = {gen_plain,       1,   1},
    [TG_OP_SIGN]        = {gen_kink,        1,   0},
    [TG_OP_FLOOR]       = {gen_steps,       1,   0},
    [TG_OP_CEIL]        = {gen_steps,       1,   0},
    [TG_OP_SLICE]       = {gen_slice,       2,   0},
    [TG_OP_SELECT]      = {gen_select,      2,   0},
    [TG_OP_CONCAT]      = {gen_join,        2,   0},
    [TG_OP_STACK]       = {gen_join,        1,   0},
    [TG_OP_TAKE]        = {gen_take,        2,   0},
    [TG_OP_PERMUTE]     = {gen_permute,     2,   0},
    [TG_OP_MINIMUM]     = {gen_minmax,      2,   1},
    [TG_OP_MAXIMUM]     = {gen_minmax,      2,   1},
    [TG_OP_ATAN2]       = {gen_atan2,       2,   0},
    [TG_OP_POW_TENSOR]  = {gen_pow_tensor,  2,   0},
    [TG_OP_LT]          = {gen_compare,     1,   0},
    [TG_OP_LE]          = {gen_compare,     1,   0},
    [TG_OP_GT]          = {gen_compare,     1,   0},
    [TG_OP_GE]          = {gen_compare,     1,   0},
    [TG_OP_EQ]          = {gen_compare,     1,   0},
    [TG_OP_NE]          = {gen_compare,     1,   0},
    [TG_OP_WHERE]       = {gen_where,       2,   0},
    [TG_OP_MIN]         = {gen_max,         2,   0},
    [TG_OP_PROD]        = {gen_prod,        2,   0,    2},
    [TG_OP_CUSTOM]      = {gen_plain,       1,   1},  /* XTANH (above) */
};

/* An op drawn by the weights of a wide graph's step or of a chain's. */
static tg_op draw(gen *s, bool chain)
{
    int w[TG_OP_COUNT], total = 0, op = 0;
    for (int i = 0; i < TG_OP_COUNT; i++)
        total += w[i] = chain ? GENERATORS[i].chain : GENERATORS[i].any;
    for (int r = below(s, total); (r -= w[op]) >= 0;)
        op++;
    return (tg_op)op;
}

/* One random step: an op applied onto the newest value (a chain) or any earlier one. */
static void step(gen *s, bool chain)
{
    int a = chain ? s->g->n - 1 : pick(s);
    tg_op op = draw(s, chain);
    const generator *e = &GENERATORS[op];
    if (e->limit > 0 && !(max_abs(s->t[a]) < e->limit))
        return;
    e->add(s, op, a);
}

/* Builds graph g from its seed; false when it was rejected (near a kink, out of bounds). */
static bool generate(graph *g, tg_tape *tape)
{
    gen s;
    memset(&s, 0, sizeof s);
    s.g = g;
    s.tape = tape;
    tg_rng_seed(&s.rng, g->seed);
    int rank;
    size_t shape[TG_MAX_RANK];
    random_shape(&s, &rank, shape);
    new_leaf(&s, rank, shape, false);
    int n_in = below(&s, 3);
    for (int i = 0; i < n_in; i++) {
        int r2;
        size_t s2[TG_MAX_RANK];
        if (below(&s, 2))
            broadcast_partner(&s, rank, shape, &r2, s2);
        else
            random_shape(&s, &r2, s2);
        new_leaf(&s, r2, s2, false);
    }
    /* One graph in eight is a long chain; the rest are short and wide. */
    bool deep = below(&s, 8) == 0;
    int steps = deep ? 60 + below(&s, 140) : 3 + below(&s, 15);
    for (int i = 0; i < steps && !s.rejected && g->n < MAX_VALUES - 8; i++)
        step(&s, deep && below(&s, 5) != 0);
    /* The output: a scalar that every unused value (every sink of the graph) flows into, each
     * as sum(y * C) with C a random constant, so that every element's gradient is checked
     * with a different weight and the program replays as is. */
    int last = g->n;
    bool used[MAX_VALUES] = {false};
    for (int i = 0; i < last; i++) {
        if (g->v[i].a >= 0)
            used[g->v[i].a] = true;
        if (g->v[i].b >= 0)
            used[g->v[i].b] = true;
        for (int k = 0; k < MAX_JOIN - 2; k++)
            if (g->v[i].more[k] >= 0)
                used[g->v[i].more[k]] = true;
    }
    int total = -1;
    for (int i = 0; i < last && !s.rejected; i++) {
        if (used[i] || g->v[i].op == INPUT || g->v[i].op == TG_OP_CONST)
            continue;
        int y = i;
        tg_tensor *ty = s.t[y];
        if (tg_tensor_numel(ty) > 1) {
            int c = new_leaf(&s, tg_tensor_rank(ty), tg_tensor_shape(ty), true);
            y = apply(&s, TG_OP_SUM, apply(&s, TG_OP_MUL, y, c), -1);
        } else if (tg_tensor_rank(ty) > 0) {
            y = apply(&s, TG_OP_SUM, y, -1);
        }
        total = total < 0 ? y : apply(&s, TG_OP_ADD, total, y);
    }
    if (total < 0 || s.rejected || !tg_tensor_requires_grad(s.t[g->n - 1]))
        s.rejected = true; /* nothing to differentiate */
    return !s.rejected;
}

static void free_graph(graph *g)
{
    for (int i = 0; i < g->n_inputs; i++)
        tg_tensor_free(g->inputs[i]);
    g->n_inputs = 0;
}

/* The tgx program evaluates to the same value as the C graph. */
static void assert_replays(const graph *g, const char *prog, double want)
{
    tg_program *p = NULL;
    cr_assert_eq(tg_program_parse(prog, &p), TG_OK, "seed %llu: %s\n%s",
                 (unsigned long long)g->seed, tg_last_error(), prog);
    tg_binding env[MAX_INPUTS];
    char names[MAX_INPUTS][16];
    for (int i = 0; i < g->n_inputs; i++) {
        snprintf(names[i], sizeof names[i], "x%d", i);
        env[i] = (tg_binding){names[i], g->inputs[i]};
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_program_eval(p, tape, TG_F64, env, (size_t)g->n_inputs, NULL);
    cr_assert_not_null(y, "seed %llu: %s", (unsigned long long)g->seed, tg_last_error());
    double got = tg_tensor_item(y);
    ts_assert_close(got, want, 1e-9, 1e-9,
                    "seed %llu: the tgx program (got)\n%s\nagainst the graph",
                    (unsigned long long)g->seed, prog);
    tg_tape_free(tape);
    tg_program_free(p);
}

/* The command replays the graph: `tapegrad grad --check` passes. */
static void replay_with_the_command(const graph *g, const char *prog)
{
    char **args = replay_args(g, prog);
    tp_run run = tp_tapegrad((const char *const *)args, NULL);
    cr_assert_eq(run.status, 0, "seed %llu: the replay failed (status %d):\n%s\nstdout:\n%s\n"
                 "stderr:\n%s", (unsigned long long)g->seed, run.status, command_line(args),
                 run.out, run.err);
    tp_run_free(&run);
    free_args(args);
}

static size_t env_count(const char *name, size_t fallback)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return fallback;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    cr_assert(*end == '\0', "%s must be a number, not '%s'", name, s);
    return (size_t)v;
}

/* An op added to the table needs a way into the random graphs: an entry in GENERATORS that a
 * step draws. */
Test(random_graphs, every_op_has_a_generator)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const generator *e = &GENERATORS[op];
        cr_expect(e->add != NULL, "op %s (%d) has no generator in GENERATORS",
                  tg_op_name((tg_op)op), op);
        cr_expect(e->add == NULL || e->any > 0,
                  "op %s (%d) has a generator of weight 0: no step draws it",
                  tg_op_name((tg_op)op), op);
    }
}

Test(random_graphs, gradients_match_finite_differences, .timeout = 600)
{
    size_t want = env_count("TG_RANDOM_GRAPHS", 3000);
    uint64_t seed = env_count("TG_RANDOM_SEED", 1);
    static graph g;
    tg_tape *tape = tg_tape_new();
    size_t checked = 0, rejected = 0, nodes = 0, deep = 0, retried = 0, replayed = 0;
    size_t counts[TG_OP_COUNT] = {0};
    double worst = 0;
    uint64_t worst_seed = 0;
    tg_gradcheck_options opt = TG_GRADCHECK_OPTIONS_INIT;
    opt.tol = TOL;
    for (; checked < want; seed++) {
        memset(&g, 0, offsetof(graph, pool));
        g.seed = seed;
        bool ok = generate(&g, tape);
        if (!ok) {
            rejected++;
            free_graph(&g);
            continue;
        }
        static tg_tensor *t[MAX_VALUES];
        tg_tape_reset(tape);
        tg_tensor *y = record(tape, &g, g.inputs, t);
        cr_assert_not_null(y);
        char *prog = to_tgx(&g, t);
        assert_replays(&g, prog, tg_tensor_item(y));

        /* Central differences err by about h^2 |f'''| / 6 + 1e-16 |f| / h: in a graph of high
         * curvature (deep products) the default step can miss by a little more than the
         * tolerance. A wrong gradient is wrong at every step, so a failure is retried with a
         * larger and a smaller one, and only a miss at all three counts. */
        static const double steps[3] = {1e-6, 1e-5, 1e-7};
        double err[MAX_INPUTS] = {0};
        tg_status st = TG_ENUMERIC;
        for (int k = 0; k < 3 && st == TG_ENUMERIC; k++) {
            opt.eps = steps[k];
            retried += k > 0;
            st = tg_gradcheck(check_fn, &g, g.inputs, (size_t)g.n_inputs, &opt, err);
        }
        if (st != TG_OK) {
            cr_assert_fail("seed %llu: %s (%s)\nerrors (step 1e-7): x0 %g x1 %g x2 %g\n"
                           "program:\n%s\n"
                           "replay:\n%s",
                           (unsigned long long)seed, tg_status_name(st), tg_last_error(),
                           err[0], err[1], err[2], prog, command_line(replay_args(&g, prog)));
        }
        if (replayed < 5) {
            replay_with_the_command(&g, prog);
            replayed++;
        }
        for (int i = 0; i < g.n_inputs; i++)
            if (err[i] > worst)
                worst = err[i], worst_seed = seed;
        for (int i = 0; i < g.n; i++)
            if (g.v[i].op != INPUT)
                counts[g.v[i].op]++;
        nodes += tg_tape_size(tape);
        deep += tg_tape_size(tape) > 60;
        free(prog);
        free_graph(&g);
        checked++;
    }
    tg_tape_free(tape);
    /* Every op of the table was drawn. */
    for (int op = 0; op < TG_OP_COUNT && want >= 1000; op++)
        cr_assert_gt(counts[op], 0, "no graph used %s", tg_op_name((tg_op)op));
    fprintf(stderr,
            "random graphs: %zu checked (seeds from %llu; %zu drawn again near a kink or "
            "out of bounds), %zu recorded nodes, %zu graphs deeper than 60 nodes, largest "
            "error %.3g (seed %llu), tolerance %g, %zu checks retried with another step, "
            "%zu replayed with the command\n",
            checked, (unsigned long long)(seed - checked - rejected), rejected, nodes, deep,
            worst, (unsigned long long)worst_seed, TOL, retried, replayed);
}
