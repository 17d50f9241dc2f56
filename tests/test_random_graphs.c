/* test_random_graphs.c: a property test. Thousands of seeded random composite graphs, each a
 * random sequence of ops over the op table (elementwise with NumPy broadcasting, unary ops,
 * matmul, transpose, reshape, reductions, softmax, constants, detach), with fan-out (values
 * reused), long chains, and inputs and constants of random shapes (detach appears only as
 * a + (detach(a) - detach(a)): a detached value that changes the function would make finite
 * differences and backward disagree by design). Every gradient is checked
 * against central finite differences in f64 (tg_gradcheck).
 *
 * Graphs stay where finite differences are meaningful: log, sqrt, division and fractional or
 * negative powers see positive operands (a guard x^2 + c recorded in the graph), exp sees
 * bounded ones, and a graph that puts an operand of relu, abs, clamp or max within 1e-3 of a
 * kink is drawn again.
 *
 * Each graph is also printed as a tgx program (docs/tgx.md), which is parsed and evaluated to
 * check that it is the same function; a failing graph's program is printed with its seed as a
 * `tapegrad grad --check` command line that replays it. TG_RANDOM_GRAPHS=N sets how many
 * graphs to check (default 3000), TG_RANDOM_SEED the first seed. */
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

#define MAX_VALUES 400
#define MAX_INPUTS 6
#define MAX_NUMEL 1024 /* elements in any one value */
#define POOL 65536     /* constant elements in one graph */
#define KINK 1e-3      /* closest an operand may come to a kink */
#define BOUND 1e4      /* largest magnitude a value may reach */
#define TOL 1e-5

typedef enum kind {
    K_INPUT, K_CONST, K_ADD, K_SUB, K_MUL, K_DIV, K_NEG, K_SCALE, K_ADD_SCALAR, K_POW,
    K_SQUARE, K_SQRT, K_EXP, K_LOG, K_ABS, K_SIGMOID, K_TANH, K_RELU, K_LOG_SIGMOID, K_CLAMP,
    K_MATMUL, K_TRANSPOSE, K_RESHAPE, K_SUM, K_MEAN, K_MAX, K_LOGSUMEXP, K_SOFTMAX,
    K_LOG_SOFTMAX, K_DETACH, K_COUNT
} kind;

/* One value of the graph: an input, a constant, or an op over earlier values. */
typedef struct value {
    kind k;
    int a, b;           /* operands (indices of earlier values) */
    double c, c2;       /* scale, add_scalar, pow exponent; clamp bounds */
    int axis;           /* reductions and softmax; TG_ALL_AXES */
    bool keepdim;
    int rank;           /* the result's shape (reshape's target, inputs, constants) */
    size_t shape[TG_MAX_RANK];
    int input;          /* K_INPUT: its index */
    size_t data;        /* K_CONST: offset of its values in the graph's pool */
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

/* ---- replaying a graph onto a tape ------------------------------------------------------ */

static tg_tensor *record(tg_tape *tape, const graph *g, tg_tensor *const *xs, tg_tensor **t)
{
    for (int i = 0; i < g->n; i++) {
        const value *v = &g->v[i];
        tg_tensor *a = v->a >= 0 ? t[v->a] : NULL, *b = v->b >= 0 ? t[v->b] : NULL;
        tg_tensor *r = NULL;
        switch (v->k) {
        case K_INPUT: r = xs[v->input]; break;
        case K_CONST: r = tg_constant(tape, TG_F64, v->rank, v->shape, g->pool + v->data); break;
        case K_ADD: r = tg_add(tape, a, b); break;
        case K_SUB: r = tg_sub(tape, a, b); break;
        case K_MUL: r = tg_mul(tape, a, b); break;
        case K_DIV: r = tg_div(tape, a, b); break;
        case K_NEG: r = tg_neg(tape, a); break;
        case K_SCALE: r = tg_scale(tape, a, v->c); break;
        case K_ADD_SCALAR: r = tg_add_scalar(tape, a, v->c); break;
        case K_POW: r = tg_pow(tape, a, v->c); break;
        case K_SQUARE: r = tg_square(tape, a); break;
        case K_SQRT: r = tg_sqrt(tape, a); break;
        case K_EXP: r = tg_exp(tape, a); break;
        case K_LOG: r = tg_log(tape, a); break;
        case K_ABS: r = tg_abs(tape, a); break;
        case K_SIGMOID: r = tg_sigmoid(tape, a); break;
        case K_TANH: r = tg_tanh(tape, a); break;
        case K_RELU: r = tg_relu(tape, a); break;
        case K_LOG_SIGMOID: r = tg_log_sigmoid(tape, a); break;
        case K_CLAMP: r = tg_clamp(tape, a, v->c, v->c2); break;
        case K_MATMUL: r = tg_matmul(tape, a, b); break;
        case K_TRANSPOSE: r = tg_transpose(tape, a); break;
        case K_RESHAPE: r = tg_reshape(tape, a, v->rank, v->shape); break;
        case K_SUM: r = tg_sum(tape, a, v->axis, v->keepdim); break;
        case K_MEAN: r = tg_mean(tape, a, v->axis, v->keepdim); break;
        case K_MAX: r = tg_max(tape, a, v->axis, v->keepdim); break;
        case K_LOGSUMEXP: r = tg_logsumexp(tape, a, v->axis, v->keepdim); break;
        case K_SOFTMAX: r = tg_softmax(tape, a, v->axis); break;
        case K_LOG_SOFTMAX: r = tg_log_softmax(tape, a, v->axis); break;
        case K_DETACH: r = tg_detach(tape, a); break;
        case K_COUNT: break;
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

/* ---- the tgx program --------------------------------------------------------------------- */

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

/* The graph as statements "t5 = tanh(t3)", the inputs named x0, x1, ...; `t` holds the
 * recorded tensors (for the shapes keepdim needs). */
static char *to_tgx(const graph *g, tg_tensor *const *t)
{
    text p = {NULL, 0, 0};
    static const char *const unary[K_COUNT] = {
        [K_SQUARE] = "square", [K_SQRT] = "sqrt", [K_EXP] = "exp", [K_LOG] = "log",
        [K_ABS] = "abs", [K_SIGMOID] = "sigmoid", [K_TANH] = "tanh", [K_RELU] = "relu",
        [K_TRANSPOSE] = "transpose", [K_DETACH] = "detach"};
    static const char *const reduce[K_COUNT] = {
        [K_SUM] = "sum", [K_MEAN] = "mean", [K_MAX] = "max", [K_LOGSUMEXP] = "logsumexp",
        [K_SOFTMAX] = "softmax", [K_LOG_SOFTMAX] = "log_softmax"};
    static const char binop[K_COUNT] = {[K_ADD] = '+', [K_SUB] = '-', [K_MUL] = '*',
                                        [K_DIV] = '/', [K_MATMUL] = '@'};
    for (int i = 0; i < g->n; i++) {
        const value *v = &g->v[i];
        put(&p, "t%d = ", i);
        switch (v->k) {
        case K_INPUT: put(&p, "x%d", v->input); break;
        case K_CONST: put_list(&p, v->rank, v->shape, g->pool + v->data); break;
        case K_ADD: case K_SUB: case K_MUL: case K_DIV: case K_MATMUL:
            put(&p, "t%d %c t%d", v->a, binop[v->k], v->b);
            break;
        case K_NEG: put(&p, "-t%d", v->a); break;
        case K_SCALE: put(&p, "t%d * ", v->a), put_num(&p, v->c); break;
        case K_ADD_SCALAR: put(&p, "t%d + ", v->a), put_num(&p, v->c); break;
        case K_POW: put(&p, "t%d ^ ", v->a), put_num(&p, v->c); break;
        case K_LOG_SIGMOID: put(&p, "-log(1 + exp(-t%d))", v->a); break;
        case K_CLAMP: /* lo + relu(x - lo) - relu(x - hi), equal to clamp for lo <= hi */
            put_num(&p, v->c);
            put(&p, " + relu(t%d - ", v->a);
            put_num(&p, v->c);
            put(&p, ") - relu(t%d - ", v->a);
            put_num(&p, v->c2);
            put(&p, ")");
            break;
        case K_RESHAPE: put(&p, "reshape(t%d, ", v->a), put_shape(&p, t[i]), put(&p, ")"); break;
        case K_SUM: case K_MEAN: case K_MAX: case K_LOGSUMEXP: case K_SOFTMAX:
        case K_LOG_SOFTMAX:
            if (v->keepdim)
                put(&p, "reshape(");
            put(&p, "%s(t%d", reduce[v->k], v->a);
            if (v->axis != TG_ALL_AXES)
                put(&p, ", %d", v->axis);
            put(&p, ")");
            if (v->keepdim)
                put(&p, ", "), put_shape(&p, t[i]), put(&p, ")");
            break;
        default: put(&p, "%s(t%d)", unary[v->k], v->a); break;
        }
        put(&p, "\n");
    }
    put(&p, "t%d", g->out);
    return p.s;
}

/* `tapegrad grad --check` with the program and every input, ready to paste. */
static char *command_line(const graph *g, const char *prog)
{
    text c = {NULL, 0, 0};
    put(&c, "tapegrad grad --check --tol %g '", TOL);
    for (const char *q = prog; *q; q++)
        put(&c, *q == '\n' ? "; " : "%c", *q);
    put(&c, "'");
    for (int i = 0; i < g->n_inputs; i++) {
        const tg_tensor *x = g->inputs[i];
        size_t n = tg_tensor_numel(x);
        double *d = malloc(n * sizeof *d);
        tg_tensor_to_f64(x, d);
        put(&c, " 'x%d=", i);
        put_list(&c, tg_tensor_rank(x), tg_tensor_shape(x), d);
        put(&c, "'");
        free(d);
    }
    return c.s;
}

/* ---- generating a graph ------------------------------------------------------------------- */

typedef struct gen {
    graph *g;
    tg_rng rng;
    tg_tape *tape;
    tg_tensor *t[MAX_VALUES];
    bool rejected; /* near a kink, or a value out of bounds */
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
    static tg_tensor *t[MAX_VALUES];
    tg_tape_reset(s->tape);
    /* Recording the whole graph again keeps the tensors on one live tape. */
    tg_tensor *y = record(s->tape, g, g->inputs, t);
    cr_assert_not_null(y, "seed %llu: the generator made a bad graph: %s",
                       (unsigned long long)g->seed, tg_tape_error(s->tape));
    memcpy(s->t, t, sizeof(tg_tensor *) * (size_t)g->n);
    double m = max_abs(y);
    if (!(m <= BOUND) || tg_tensor_numel(y) > MAX_NUMEL)
        s->rejected = true;
    return g->n - 1;
}

static value op(kind k, int a, int b)
{
    value v;
    memset(&v, 0, sizeof v);
    v.k = k;
    v.a = a;
    v.b = b;
    v.axis = TG_ALL_AXES;
    return v;
}

static void random_data(gen *s, double *d, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        d[i] = uniform(s, lo, hi);
}

/* A new input (a leaf requiring grad) or constant of this shape. */
static int new_leaf(gen *s, int rank, const size_t *shape, bool constant)
{
    graph *g = s->g;
    if (!constant && g->n_inputs == MAX_INPUTS)
        constant = true;
    value v = op(constant ? K_CONST : K_INPUT, -1, -1);
    v.rank = rank;
    memcpy(v.shape, shape, sizeof(size_t) * (size_t)rank);
    size_t n = numel_of(rank, shape);
    cr_assert_leq(n, MAX_NUMEL);
    if (constant) {
        if (g->n_pool + n > POOL) {
            s->rejected = true;
            return -1;
        }
        v.data = g->n_pool;
        random_data(s, g->pool + g->n_pool, n, -1.5, 1.5);
        g->n_pool += n;
    } else {
        double d[MAX_NUMEL];
        random_data(s, d, n, -1.5, 1.5);
        tg_tensor *x = ts_leaf(TG_F64, rank, shape, d, true);
        v.input = g->n_inputs;
        g->inputs[g->n_inputs++] = x;
    }
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
    while (s->g->v[i].k == K_DETACH) /* never a detached value itself (see step) */
        i--;
    return i;
}

/* x^2 + c with c in [0.25, 1]: a positive operand for log, sqrt, div and fractional powers. */
static int positive(gen *s, int a)
{
    int sq = add_value(s, &(value){.k = K_SQUARE, .a = a, .b = -1, .axis = TG_ALL_AXES});
    if (sq < 0)
        return -1;
    value v = op(K_ADD_SCALAR, sq, -1);
    v.c = uniform(s, 0.25, 1);
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

/* One random step onto value a (and maybe a partner). */
static void step(gen *s, bool chain)
{
    graph *g = s->g;
    int a = chain ? g->n - 1 : pick(s);
    tg_tensor *x = s->t[a];
    int rank = tg_tensor_rank(x);
    double m = max_abs(x);
    int choice = chain ? below(s, 10) : below(s, 26);
    value v;
    switch (choice) {
    case 0: /* bounded unary ops: what deep chains are made of */
        add_value(s, &(value){.k = below(s, 2) ? K_TANH : K_SIGMOID, .a = a, .b = -1});
        return;
    case 1: {
        v = op(K_SCALE, a, -1);
        v.c = uniform(s, -1.5, 1.5);
        add_value(s, &v);
        return;
    }
    case 2:
        v = op(K_ADD_SCALAR, a, -1);
        v.c = uniform(s, -1, 1);
        add_value(s, &v);
        return;
    case 3: case 4: case 5: case 6: { /* binary, broadcasting; the partner may be anything */
        static const kind bin[4] = {K_ADD, K_SUB, K_MUL, K_DIV};
        kind k = bin[choice - 3];
        int b = -1;
        for (int tries = 0; tries < 4 && b < 0; tries++) {
            int c = pick(s);
            if (broadcasts(x, s->t[c]) && (k != K_MUL || m * max_abs(s->t[c]) < BOUND))
                b = c;
        }
        if (b < 0 || below(s, 4) == 0) {
            int r2;
            size_t s2[TG_MAX_RANK];
            broadcast_partner(s, rank, tg_tensor_shape(x), &r2, s2);
            b = new_leaf(s, r2, s2, below(s, 3) == 0);
        }
        if (b < 0)
            return;
        if (k == K_DIV && (b = positive(s, b)) < 0)
            return;
        if (k != K_DIV && below(s, 2)) { /* either order; the divisor is the guarded one */
            int tmp = a;
            a = b;
            b = tmp;
        }
        add_value(s, &(value){.k = k, .a = a, .b = b, .axis = TG_ALL_AXES});
        return;
    }
    case 7: /* x * x and friends: fan-out of one value into both operands */
        if (m < 100)
            add_value(s, &(value){.k = K_MUL, .a = a, .b = a});
        return;
    case 8:
        add_value(s, &(value){.k = K_NEG, .a = a, .b = -1});
        return;
    case 9:
        if (m < 30)
            add_value(s, &(value){.k = K_LOG_SIGMOID, .a = a, .b = -1});
        return;
    case 10:
        if (m < 100)
            add_value(s, &(value){.k = K_SQUARE, .a = a, .b = -1});
        return;
    case 11: case 12: { /* positive domain: sqrt, log, powers */
        int p = positive(s, a);
        if (p < 0)
            return;
        if (choice == 11) {
            add_value(s, &(value){.k = below(s, 2) ? K_SQRT : K_LOG, .a = p, .b = -1});
        } else {
            static const double ex[6] = {2, 3, -1, 0.5, 1.5, -0.5};
            v = op(K_POW, p, -1);
            v.c = ex[below(s, 6)];
            if (max_abs(s->t[p]) < 20)
                add_value(s, &v);
        }
        return;
    }
    case 13:
        if (m < 4)
            add_value(s, &(value){.k = K_EXP, .a = a, .b = -1});
        return;
    case 14: case 15: { /* kinks: abs, relu, clamp */
        if (choice == 14) {
            keep_off(s, x, 0);
            add_value(s, &(value){.k = below(s, 2) ? K_ABS : K_RELU, .a = a, .b = -1});
        } else {
            v = op(K_CLAMP, a, -1);
            v.c = uniform(s, -1, 0.5);
            v.c2 = v.c + uniform(s, 0, 1.5);
            keep_off(s, x, v.c);
            keep_off(s, x, v.c2);
            add_value(s, &v);
        }
        return;
    }
    case 16: { /* matmul: (M,K) @ (K,N), or batched (B,M,K) @ (B,K,N) */
        if (rank != 2 && rank != 3)
            return;
        size_t bs[3];
        int r2 = rank;
        if (rank == 3)
            bs[0] = tg_tensor_dim(x, 0);
        bs[r2 - 2] = tg_tensor_dim(x, -1);
        bs[r2 - 1] = 1 + (size_t)below(s, 4);
        int b = -1;
        for (int i = 0; i < g->n && b < 0; i++) {
            const tg_tensor *c = s->t[i];
            if (g->v[i].k != K_DETACH && tg_tensor_rank(c) == r2 &&
                tg_tensor_dim(c, -2) == bs[r2 - 2] &&
                (r2 == 2 || tg_tensor_dim(c, 0) == bs[0]) && below(s, 2))
                b = i;
        }
        if (b < 0)
            b = new_leaf(s, r2, bs, below(s, 4) == 0);
        if (b >= 0 && m * max_abs(s->t[b]) * (double)bs[r2 - 2] < BOUND)
            add_value(s, &(value){.k = K_MATMUL, .a = a, .b = b});
        return;
    }
    case 17:
        if (rank == 2)
            add_value(s, &(value){.k = K_TRANSPOSE, .a = a, .b = -1});
        return;
    case 18: { /* reshape: the elements' count split into random factors */
        size_t n = tg_tensor_numel(x), f[16];
        int nf = 0;
        for (size_t p = 2, r = n; r > 1; p++)
            while (r % p == 0)
                f[nf++] = p, r /= p;
        v = op(K_RESHAPE, a, -1);
        v.rank = below(s, 4) + (nf > 0);
        if (v.rank == 0 && n != 1)
            v.rank = 1;
        for (int i = 0; i < v.rank; i++)
            v.shape[i] = 1;
        for (int i = 0; i < nf; i++)
            v.shape[below(s, v.rank)] *= f[i];
        add_value(s, &v);
        return;
    }
    case 19: case 20: case 21: case 22: { /* reductions */
        static const kind red[4] = {K_SUM, K_MEAN, K_MAX, K_LOGSUMEXP};
        v = op(red[choice - 19], a, -1);
        v.axis = random_axis(s, rank, true);
        v.keepdim = below(s, 2);
        if (v.k == K_MAX)
            keep_max_apart(s, x, v.axis);
        add_value(s, &v);
        return;
    }
    case 23: case 24:
        if (rank == 0)
            return;
        v = op(choice == 23 ? K_SOFTMAX : K_LOG_SOFTMAX, a, -1);
        v.axis = random_axis(s, rank, false);
        add_value(s, &v);
        return;
    default: {
        /* detach: d = detach(a) has a's value and no gradient, so any use of it makes the
         * finite differences (which see d move with a) disagree with backward; a + (d - d)
         * keeps the function a and still puts detach on the path. */
        int d = add_value(s, &(value){.k = K_DETACH, .a = a, .b = -1});
        int z = d < 0 ? -1 : add_value(s, &(value){.k = K_SUB, .a = d, .b = d});
        if (z >= 0)
            add_value(s, &(value){.k = K_ADD, .a = a, .b = z});
        return;
    }
    }
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
    }
    int total = -1;
    for (int i = 0; i < last && !s.rejected; i++) {
        if (used[i] || g->v[i].k == K_INPUT || g->v[i].k == K_CONST)
            continue;
        int y = i;
        tg_tensor *ty = s.t[y];
        if (tg_tensor_numel(ty) > 1) {
            int c = new_leaf(&s, tg_tensor_rank(ty), tg_tensor_shape(ty), true);
            int p = add_value(&s, &(value){.k = K_MUL, .a = y, .b = c});
            y = add_value(&s, &(value){.k = K_SUM, .a = p, .b = -1, .axis = TG_ALL_AXES});
        } else if (tg_tensor_rank(ty) > 0) {
            y = add_value(&s, &(value){.k = K_SUM, .a = y, .b = -1, .axis = TG_ALL_AXES});
        }
        total = total < 0 ? y : add_value(&s, &(value){.k = K_ADD, .a = total, .b = y});
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

/* The printed command replays the graph: `tapegrad grad --check` passes. */
static bool replay_with_the_command(const graph *g, const char *prog, const char *tools)
{
    char *cmd = command_line(g, prog);
    size_t len = strlen(tools) + strlen(cmd) + 32;
    char *full = malloc(len);
    snprintf(full, len, "%s/%s >/dev/null", tools, cmd);
    int rc = system(full);
    cr_assert_eq(rc, 0, "seed %llu: the replay failed (status %d):\n%s",
                 (unsigned long long)g->seed, rc, full);
    free(full);
    free(cmd);
    return true;
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

Test(random_graphs, gradients_match_finite_differences, .timeout = 600)
{
    size_t want = env_count("TG_RANDOM_GRAPHS", 3000);
    uint64_t seed = env_count("TG_RANDOM_SEED", 1);
    static graph g;
    tg_tape *tape = tg_tape_new();
    size_t checked = 0, rejected = 0, nodes = 0, deep = 0, retried = 0, counts[K_COUNT] = {0};
    double worst = 0;
    uint64_t worst_seed = 0;
    size_t replayed = 0;
    const char *tools = getenv("TG_TOOLS_DIR");
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
            char *cmd = command_line(&g, prog);
            cr_assert_fail("seed %llu: %s (%s)\nerrors (step 1e-7): x0 %g x1 %g x2 %g\n"
                           "program:\n%s\n"
                           "replay:\n%s",
                           (unsigned long long)seed, tg_status_name(st), tg_last_error(),
                           err[0], err[1], err[2], prog, cmd);
        }
        if (replayed < 5 && tools)
            replayed += replay_with_the_command(&g, prog, tools);
        for (int i = 0; i < g.n_inputs; i++)
            if (err[i] > worst)
                worst = err[i], worst_seed = seed;
        for (int i = 0; i < g.n; i++)
            counts[g.v[i].k]++;
        nodes += tg_tape_size(tape);
        deep += tg_tape_size(tape) > 60;
        free(prog);
        free_graph(&g);
        checked++;
    }
    tg_tape_free(tape);
    /* Every op of the generator was drawn. */
    static const char *const names[K_COUNT] = {
        "input", "const", "add", "sub", "mul", "div", "neg", "scale", "add_scalar", "pow",
        "square", "sqrt", "exp", "log", "abs", "sigmoid", "tanh", "relu", "log_sigmoid",
        "clamp", "matmul", "transpose", "reshape", "sum", "mean", "max", "logsumexp",
        "softmax", "log_softmax", "detach"};
    for (int k = 0; k < K_COUNT && want >= 1000; k++)
        cr_assert_gt(counts[k], 0, "no graph used %s", names[k]);
    if (tools)
        cr_assert_eq(replayed, want < 5 ? want : 5, "graphs replayed with the command");
    fprintf(stderr,
            "random graphs: %zu checked (seeds from %llu; %zu drawn again near a kink or "
            "out of bounds), %zu recorded nodes, %zu graphs deeper than 60 nodes, largest "
            "error %.3g (seed %llu), tolerance %g, %zu checks retried with another step\n",
            checked, (unsigned long long)(seed - checked - rejected), rejected, nodes, deep,
            worst, (unsigned long long)worst_seed, TOL, retried);
}
