/* test_grad_graph_ops.c: the differentiable VJPs (vjp_graph) of the reductions, where, the
 * shape and index ops, matmul and custom ops, through tg_grad_graph, in f64 at seeded random
 * shapes (every axis, keepdim, broadcasting, every matmul case, ties, zeros). For each case,
 * with f = sum(W * z * z), z the op's result and W a fixed weight:
 *   (1) tg_grad_graph's gradient equals tg_grad's (in-place VJPs) to 1e-12;
 *   (2) H u, from tg_grad of sum(g * u) with g the recorded gradient, equals the central finite
 *       difference of the first-order gradient along u (second_order below);
 * and exact second derivatives from closed forms: logsumexp's Hessian diag(p) - p p^T, softmax
 * cross-entropy's (the same per row), prod's with zeros (prod of the others but two), max's
 * with ties (the first maximum's), all derived by hand in the comments. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

#define MAX_IN 4
#define SAME_TOL 1e-12 /* tg_grad_graph against tg_grad: rounding only */
#define FD_EPS 1e-4    /* central differences of the gradient: error ~ eps^2 * f'''' */
#define FD_TOL 1e-6

/* ---- a case: one op applied to leaves, some of which require grad ---------------------------- */

typedef struct gcase gcase;
struct gcase {
    tg_op op;
    tg_attrs attrs;
    tg_tensor *in[MAX_IN]; /* the op's inputs: leaves (the differentiated ones require grad) */
    size_t n_in;
    /* z on a tape; NULL: tg_apply(op, in, attrs) */
    tg_tensor *(*build)(tg_tape *tape, const gcase *c);
    const void *ud; /* build's */
};

static tg_tensor *build_z(tg_tape *tape, const gcase *c)
{
    return c->build ? c->build(tape, c) : tg_apply(tape, c->op, c->in, c->n_in, &c->attrs);
}

/* f = sum(W * z * z), W[i] = 0.5 + 0.3 cos(1.7 i): a function whose Hessian involves both the
 * op's Jacobian (through z * z) and, for nonlinear ops, its second derivative. */
static tg_tensor *build_f(tg_tape *tape, const gcase *c)
{
    tg_tensor *z = build_z(tape, c);
    cr_assert(z != NULL, "recording the op: %s", tg_tape_error(tape));
    size_t n = tg_tensor_numel(z);
    double *w = malloc((n ? n : 1) * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = 0.5 + 0.3 * cos(1.7 * (double)i);
    tg_tensor *W = tg_constant(tape, TG_F64, tg_tensor_rank(z), tg_tensor_shape(z), w);
    free(w);
    tg_tensor *f = tg_sum(tape, tg_mul(tape, tg_mul(tape, W, z), z), TG_ALL_AXES, false);
    cr_assert(f != NULL, "recording f: %s", tg_tape_error(tape));
    return f;
}

/* The distinct inputs that require grad. */
static size_t grad_inputs(const gcase *c, tg_tensor **xs)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_in; i++) {
        if (!tg_tensor_requires_grad(c->in[i]))
            continue;
        bool seen = false;
        for (size_t j = 0; j < n; j++)
            seen = seen || xs[j] == c->in[i];
        if (!seen)
            xs[n++] = c->in[i];
    }
    return n;
}

/* tg_grad of f at the leaves' current values, into g[i] (n_i doubles each, malloc'd). */
static void grad_at(const gcase *c, tg_tensor **xs, size_t n, double **g)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = build_f(tape, c);
    tg_tensor *out[MAX_IN];
    cr_assert_eq(tg_grad(tape, f, xs, n, out), TG_OK, "tg_grad: %s", tg_last_error());
    for (size_t i = 0; i < n; i++) {
        g[i] = malloc((tg_tensor_numel(xs[i]) + 1) * sizeof(double));
        tg_tensor_to_f64(out[i], g[i]);
        tg_tensor_free(out[i]);
    }
    tg_tape_free(tape);
}

/* (1) and, when fd, (2) for case c (described by what); frees nothing of c. */
static void check_case(const gcase *c, bool fd, const char *what)
{
    tg_tensor *xs[MAX_IN], *gg[MAX_IN], *gr[MAX_IN], *hu[MAX_IN], *u[MAX_IN];
    const size_t n = grad_inputs(c, xs);
    cr_assert(n > 0, "%s: no input requires grad", what);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = build_f(tape, c);
    cr_assert_eq(tg_grad_graph(tape, f, xs, n, NULL, gg), TG_OK, "%s: tg_grad_graph: %s", what,
                 tg_last_error());
    cr_assert_eq(tg_grad(tape, f, xs, n, gr), TG_OK, "%s: tg_grad: %s", what, tg_last_error());
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tg_tensor_numel(gg[i]), tg_tensor_numel(xs[i]), "%s: input %zu", what, i);
        for (size_t k = 0; k < tg_tensor_numel(xs[i]); k++)
            ts_assert_close(tg_tensor_get(gg[i], k), tg_tensor_get(gr[i], k), SAME_TOL, SAME_TOL,
                            "%s: d/dx%zu[%zu], grad_graph against grad", what, i, k);
        tg_tensor_free(gr[i]);
    }
    if (!fd) {
        tg_tape_free(tape);
        return;
    }
    /* H u = d/dx sum_i (g_i . u_i), u random */
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    tg_tensor *s = NULL;
    for (size_t i = 0; i < n; i++) {
        u[i] = tg_tensor_randn(TG_F64, tg_tensor_rank(xs[i]), tg_tensor_shape(xs[i]), &rng, 0, 1);
        tg_tensor *t = tg_sum(tape, tg_mul(tape, gg[i], u[i]), TG_ALL_AXES, false);
        s = s ? tg_add(tape, s, t) : t;
    }
    cr_assert(s != NULL, "%s: %s", what, tg_tape_error(tape));
    cr_assert(tg_tensor_requires_grad(s), "%s: the gradient does not depend on the inputs", what);
    cr_assert_eq(tg_grad(tape, s, xs, n, hu), TG_OK, "%s: second order: %s", what, tg_last_error());
    /* central differences of the gradient along u */
    double *gp[MAX_IN], *gm[MAX_IN];
    for (int side = 0; side < 2; side++) {
        const double h = side ? -FD_EPS : FD_EPS;
        for (size_t i = 0; i < n; i++) {
            double *x = tg_tensor_data(xs[i]);
            for (size_t k = 0; k < tg_tensor_numel(xs[i]); k++)
                x[k] += h * tg_tensor_get(u[i], k);
        }
        grad_at(c, xs, n, side ? gm : gp);
        for (size_t i = 0; i < n; i++) {
            double *x = tg_tensor_data(xs[i]);
            for (size_t k = 0; k < tg_tensor_numel(xs[i]); k++)
                x[k] -= h * tg_tensor_get(u[i], k);
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < tg_tensor_numel(xs[i]); k++) {
            double want = (gp[i][k] - gm[i][k]) / (2 * FD_EPS);
            ts_assert_close(tg_tensor_get(hu[i], k), want, FD_TOL, FD_TOL,
                            "%s: (H u) for x%zu[%zu] against finite differences", what, i, k);
        }
        free(gp[i]);
        free(gm[i]);
        tg_tensor_free(hu[i]);
        tg_tensor_free(u[i]);
    }
    tg_tape_free(tape);
}

/* ---- inputs ------------------------------------------------------------------------------------
 */

typedef struct shp {
    int rank;
    size_t d[TG_MAX_RANK];
} shp;

static shp rand_shape(tg_rng *rng, int rank, size_t lo, size_t hi)
{
    shp s = {rank, {0}};
    for (int i = 0; i < rank; i++)
        s.d[i] = lo + (size_t)tg_rng_below(rng, hi - lo + 1);
    return s;
}

static const char *fmt(char *buf, size_t size, shp s)
{
    return tg_shape_format(buf, size, s.rank, s.d);
}

/* N(0, 1) values */
static tg_tensor *normal(tg_rng *rng, shp s, bool grad)
{
    tg_tensor *t = tg_tensor_randn(TG_F64, s.rank, s.d, rng, 0, 1);
    cr_assert(t != NULL);
    tg_tensor_set_requires_grad(t, grad);
    return t;
}

/* distinct values at least 0.2 apart, shuffled (no ties for max and min) */
static tg_tensor *distinct(tg_rng *rng, shp s)
{
    tg_tensor *t = normal(rng, s, true);
    size_t n = tg_tensor_numel(t);
    double *v = tg_tensor_data(t);
    for (size_t i = 0; i < n; i++)
        v[i] = 0.25 * ((double)i - (double)n / 2) + 0.05 * tg_rng_uniform(rng);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)tg_rng_below(rng, i);
        double tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
    return t;
}

static void free_case(gcase *c)
{
    for (size_t i = 0; i < c->n_in; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup = dup || c->in[j] == c->in[i];
        if (!dup)
            tg_tensor_free(c->in[i]);
    }
}

/* ---- reductions ---------------------------------------------------------------------------- */

/* Every reduction at random shapes of rank 0 to 3, every axis (also negative) and TG_ALL_AXES,
 * keepdim or not. max and min get distinct values; prod values in +-[0.5, 1.5], and in a
 * second round one or two zeros per tensor (its derivatives are polynomials: finite
 * differences hold at zeros too). */
static void reductions(tg_op op, bool zeros)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint64_t)op * 7 + zeros);
    for (int round = 0; round < 6; round++) {
        const int rank = round % 4;
        shp s = rand_shape(&rng, rank, 1, 4);
        for (int a = -1; a <= rank; a++) {
            const int axis = a == rank ? TG_ALL_AXES : a == -1 ? (rank ? -1 : TG_ALL_AXES) : a;
            for (int keep = 0; keep < 2; keep++) {
                gcase c = {.op = op, .attrs = {.axis = axis, .keepdim = keep}, .n_in = 1};
                if (op == TG_OP_MAX || op == TG_OP_MIN) {
                    c.in[0] = distinct(&rng, s);
                } else if (op == TG_OP_PROD) {
                    c.in[0] = normal(&rng, s, true);
                    double *v = tg_tensor_data(c.in[0]);
                    size_t n = tg_tensor_numel(c.in[0]);
                    for (size_t i = 0; i < n; i++)
                        v[i] = (0.5 + tg_rng_uniform(&rng)) * (tg_rng_below(&rng, 2) ? 1 : -1);
                    for (int z = 0; zeros && z < 1 + round % 2; z++)
                        v[tg_rng_below(&rng, n)] = 0;
                } else {
                    c.in[0] = normal(&rng, s, true);
                }
                char what[160], sb[64];
                snprintf(what, sizeof what, "%s of %s along %d, keepdim %d%s", tg_op_name(op),
                         fmt(sb, sizeof sb, s), axis, keep, zeros ? ", with zeros" : "");
                check_case(&c, true, what);
                free_case(&c);
            }
        }
    }
}

Test(grad_graph_ops, sum)
{
    reductions(TG_OP_SUM, false);
}
Test(grad_graph_ops, mean)
{
    reductions(TG_OP_MEAN, false);
}
Test(grad_graph_ops, max)
{
    reductions(TG_OP_MAX, false);
}
Test(grad_graph_ops, min)
{
    reductions(TG_OP_MIN, false);
}
Test(grad_graph_ops, logsumexp)
{
    reductions(TG_OP_LOGSUMEXP, false);
}
Test(grad_graph_ops, prod)
{
    reductions(TG_OP_PROD, false);
}
Test(grad_graph_ops, prod_with_zeros)
{
    reductions(TG_OP_PROD, true);
}

/* softmax and log_softmax along every axis of ranks 1 to 3 */
static void normalizers(tg_op op)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2000 + (uint64_t)op);
    for (int round = 0; round < 6; round++) {
        const int rank = 1 + round % 3;
        shp s = rand_shape(&rng, rank, 1, 4);
        for (int axis = -rank; axis < rank; axis++) {
            gcase c = {.op = op, .attrs = {.axis = axis}, .n_in = 1};
            c.in[0] = normal(&rng, s, true);
            char what[160], sb[64];
            snprintf(what, sizeof what, "%s of %s along %d", tg_op_name(op), fmt(sb, sizeof sb, s),
                     axis);
            check_case(&c, true, what);
            free_case(&c);
        }
    }
}

Test(grad_graph_ops, softmax)
{
    normalizers(TG_OP_SOFTMAX);
}
Test(grad_graph_ops, log_softmax)
{
    normalizers(TG_OP_LOG_SOFTMAX);
}

/* max and min on ties: the gradient goes to the first maximum (minimum), whose mask is a
 * constant. f = max(x)^2 for x = (1, 3, 3, 2): g = 2 max e_1 = (0, 6, 0, 0), and H u = 2 u_1 e_1
 * (max is x_1 near x, for the derivative the library defines); min of (2, 1, 1, 3) likewise
 * picks element 1. Also through the harness, at random shapes with every value tied in pairs. */
Test(grad_graph_ops, max_min_ties)
{
    for (int is_max = 0; is_max < 2; is_max++) {
        tg_tensor *x = ts_vec(TG_F64, 4, is_max ? TS_VALS(1, 3, 3, 2) : TS_VALS(2, 1, 1, 3), true);
        tg_tape *tape = tg_tape_new();
        tg_tensor *m = is_max ? tg_max(tape, x, 0, false) : tg_min(tape, x, 0, false);
        tg_tensor *f = tg_mul(tape, m, m), *g, *hu;
        cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
        const double m2 = is_max ? 6 : 2;
        ts_assert_values(g, TS_VALS(0, m2, 0, 0), 4, 0, 0, "gradient on a tie");
        tg_tensor *u = ts_vec(TG_F64, 4, TS_VALS(0.5, -1.5, 2.5, 4), false);
        tg_tensor *s = tg_sum(tape, tg_mul(tape, g, u), TG_ALL_AXES, false);
        cr_assert_eq(tg_grad(tape, s, &x, 1, &hu), TG_OK, "%s", tg_last_error());
        ts_assert_values(hu, TS_VALS(0, -3, 0, 0), 4, 0, 0, "H u on a tie");
        tg_tensor_free(hu);
        tg_tensor_free(u);
        tg_tape_free(tape);
        tg_tensor_free(x);
    }
    tg_rng rng;
    tg_rng_seed(&rng, 31);
    for (int round = 0; round < 8; round++) {
        shp s = rand_shape(&rng, 1 + round % 3, 2, 4);
        gcase c = {.op = round % 2 ? TG_OP_MAX : TG_OP_MIN, .n_in = 1};
        c.attrs.axis = (int)tg_rng_below(&rng, (uint64_t)s.rank);
        c.attrs.keepdim = round % 4 < 2;
        c.in[0] = normal(&rng, s, true);
        double *v = tg_tensor_data(c.in[0]);
        for (size_t i = 1; i < tg_tensor_numel(c.in[0]); i += 2)
            v[i] = v[i - 1]; /* neighbours in memory tie; along the last axis, in one lane */
        check_case(&c, false, "max/min with ties");
        free_case(&c);
    }
}

/* ---- where --------------------------------------------------------------------------------- */

/* cond, a and b broadcast in every combination of these shapes; cond a random 0/1 mask (with a
 * NaN, which where takes as true, in some rounds), a and b require grad. */
Test(grad_graph_ops, where)
{
    static const shp shapes[][3] = {
        {{2, {3, 4}}, {2, {3, 4}}, {2, {3, 4}}}, {{2, {3, 1}}, {2, {1, 4}}, {1, {4}}},
        {{1, {4}}, {3, {2, 3, 4}}, {0, {0}}},    {{3, {2, 1, 4}}, {2, {3, 1}}, {3, {2, 3, 4}}},
        {{0, {0}}, {2, {2, 2}}, {1, {2}}},       {{3, {2, 3, 1}}, {1, {1}}, {2, {1, 3}}},
    };
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        for (int which = 0; which < 3; which++) { /* a and b, a only, b only */
            gcase c = {.op = TG_OP_WHERE, .n_in = 3};
            c.in[0] = normal(&rng, shapes[k][0], false);
            double *m = tg_tensor_data(c.in[0]);
            for (size_t i = 0; i < tg_tensor_numel(c.in[0]); i++)
                m[i] = (double)tg_rng_below(&rng, 2);
            if (k % 2 && tg_tensor_numel(c.in[0]) > 1)
                m[0] = NAN;
            c.in[1] = normal(&rng, shapes[k][1], which != 2);
            c.in[2] = normal(&rng, shapes[k][2], which != 1);
            char what[200], s0[64], s1[64], s2[64];
            snprintf(what, sizeof what, "where(%s, %s, %s), grad %d",
                     fmt(s0, sizeof s0, shapes[k][0]), fmt(s1, sizeof s1, shapes[k][1]),
                     fmt(s2, sizeof s2, shapes[k][2]), which);
            check_case(&c, true, what);
            free_case(&c);
        }
    }
}

/* a tensor used as both branches (fan-out) and as cond of itself */
Test(grad_graph_ops, where_fanout)
{
    tg_tensor *x = ts_vec(TG_F64, 4, TS_VALS(0, 1.5, -2, 0), true);
    gcase c = {.op = TG_OP_WHERE, .n_in = 3, .in = {x, x, x}};
    check_case(&c, true, "where(x, x, x)");
    tg_tensor_free(x);
}

/* ---- shape ops ----------------------------------------------------------------------------- */

Test(grad_graph_ops, reshape)
{
    static const shp from[] = {
        {3, {2, 3, 4}}, {3, {2, 3, 4}}, {0, {0}}, {1, {6}}, {4, {1, 2, 1, 3}}};
    static const shp to[] = {{2, {6, 4}}, {1, {24}}, {2, {1, 1}}, {3, {3, 1, 2}}, {1, {6}}};
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    for (size_t k = 0; k < sizeof from / sizeof *from; k++) {
        gcase c = {.op = TG_OP_RESHAPE, .n_in = 1, .attrs = {.rank = to[k].rank, .shape = to[k].d}};
        c.in[0] = normal(&rng, from[k], true);
        check_case(&c, true, "reshape");
        free_case(&c);
    }
}

Test(grad_graph_ops, transpose)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (int round = 0; round < 4; round++) {
        gcase c = {.op = TG_OP_TRANSPOSE, .n_in = 1};
        c.in[0] = normal(&rng, rand_shape(&rng, 2, 1, 4), true);
        check_case(&c, true, "transpose");
        free_case(&c);
    }
}

/* every permutation of 3 axes, and some of 4 */
Test(grad_graph_ops, permute)
{
    static const int perms3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const int perms4[3][4] = {{3, 1, 0, 2}, {1, 3, 2, 0}, {-1, 0, -3, 2}};
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    for (int k = 0; k < 9; k++) {
        const bool four = k >= 6;
        gcase c = {.op = TG_OP_PERMUTE, .n_in = 1};
        for (int i = 0; i < (four ? 4 : 3); i++)
            c.attrs.axes[i] = four ? perms4[k - 6][i] : perms3[k][i];
        c.in[0] = normal(&rng, rand_shape(&rng, four ? 4 : 3, 1, 4), true);
        check_case(&c, true, "permute");
        free_case(&c);
    }
}

/* ---- index ops ----------------------------------------------------------------------------- */

/* slices of random (start, stop, step) on every axis of ranks 1 to 3: negative and clamped
 * bounds, steps 1 to 3, empty slices, a single element */
Test(grad_graph_ops, slice)
{
    static const ptrdiff_t ranges[][3] = {
        {0, TG_END, 1}, {1, 3, 1}, {-2, TG_END, 1}, {0, TG_END, 2}, {1, TG_END, 3},
        {-4, -1, 2},    {2, 2, 1}, {3, 1, 2},       {0, 1, 5},      {-100, 100, 2},
    };
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int rank = 1; rank <= 3; rank++)
        for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++) {
            shp s = rand_shape(&rng, rank, 1, 5);
            const int axis = (int)tg_rng_below(&rng, (uint64_t)rank);
            s.d[axis] = 3 + tg_rng_below(&rng, 5);
            gcase c = {.op = TG_OP_SLICE,
                       .n_in = 1,
                       .attrs = {.axis = axis,
                                 .start = ranges[r][0],
                                 .stop = ranges[r][1],
                                 .step = ranges[r][2]}};
            c.in[0] = normal(&rng, s, true);
            char what[160], sb[64];
            snprintf(what, sizeof what, "slice of %s along %d [%td:%td:%td]", fmt(sb, sizeof sb, s),
                     axis, ranges[r][0], ranges[r][1], ranges[r][2]);
            /* an empty slice gives f = 0, which depends on nothing: (1) only */
            tg_tape *t = tg_tape_new();
            tg_tensor *z = build_z(t, &c);
            cr_assert(z != NULL, "%s: %s", what, tg_tape_error(t));
            const bool empty = tg_tensor_numel(z) == 0;
            tg_tape_free(t);
            if (!empty)
                check_case(&c, true, what);
            free_case(&c);
        }
}

Test(grad_graph_ops, select)
{
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    for (int rank = 1; rank <= 4; rank++) {
        shp s = rand_shape(&rng, rank, 1, 4);
        for (int axis = -rank; axis < rank; axis++) {
            const size_t dim = s.d[axis < 0 ? axis + rank : axis];
            for (ptrdiff_t index = -(ptrdiff_t)dim; index < (ptrdiff_t)dim;
                 index += 1 + (ptrdiff_t)(dim / 2)) {
                gcase c = {.op = TG_OP_SELECT, .n_in = 1, .attrs = {.axis = axis, .index = index}};
                c.in[0] = normal(&rng, s, true);
                char what[160], sb[64];
                snprintf(what, sizeof what, "select of %s along %d at %td", fmt(sb, sizeof sb, s),
                         axis, index);
                check_case(&c, true, what);
                free_case(&c);
            }
        }
    }
}

/* concat of 1 to 3 inputs along every axis of ranks 1 to 3, one input not requiring grad,
 * one passed twice */
Test(grad_graph_ops, concat)
{
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    for (int rank = 1; rank <= 3; rank++)
        for (int axis = -1; axis < rank; axis++)
            for (size_t n = 1; n <= 3; n++) {
                shp s = rand_shape(&rng, rank, 1, 3);
                const int ax = axis < 0 ? rank - 1 : axis;
                gcase c = {.op = TG_OP_CONCAT, .n_in = n, .attrs = {.axis = axis}};
                for (size_t k = 0; k < n; k++) {
                    s.d[ax] = 1 + tg_rng_below(&rng, 3);
                    c.in[k] = normal(&rng, s, !(n == 3 && k == 1));
                }
                if (n == 2 && rank == 2) { /* fan-out: x concatenated with itself */
                    tg_tensor_free(c.in[1]);
                    c.in[1] = c.in[0];
                }
                check_case(&c, true, "concat");
                free_case(&c);
            }
}

Test(grad_graph_ops, stack)
{
    tg_rng rng;
    tg_rng_seed(&rng, 10);
    for (int rank = 0; rank <= 3; rank++)
        for (int axis = -(rank + 1); axis <= rank; axis++) {
            shp s = rand_shape(&rng, rank, 1, 3);
            const size_t n = 1 + tg_rng_below(&rng, 3);
            gcase c = {.op = TG_OP_STACK, .n_in = n, .attrs = {.axis = axis}};
            for (size_t k = 0; k < n; k++)
                c.in[k] = normal(&rng, s, !(n == 3 && k == 2));
            check_case(&c, true, "stack");
            free_case(&c);
        }
}

/* pow_tensor's da, b a^(b-1), for a < 0 and b an even integer from 2^24 in f32 (2^53 in f64):
 * b - 1 is odd, so the slope is negative (-b at a = -1, -inf at a = -2), which the recorded
 * gradient's b - 1, rounded to an even number, made positive; at a = 3 it stays +inf. */
Test(grad_graph_ops, pow_tensor_slope_keeps_its_sign_at_huge_even_exponents)
{
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = di ? TG_F64 : TG_F32;
        const double big = di ? 0x1p60 : 0x1p24 + 2;
        tg_tensor *a = ts_vec(dt, 3, TS_VALS(-1, -2, 3), true);
        tg_tensor *b = ts_vec(dt, 3, TS_VALS(big, big, big), false);
        tg_tape *tape = tg_tape_new();
        tg_tensor *f = tg_sum(tape, tg_pow_tensor(tape, a, b), TG_ALL_AXES, false), *g;
        cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_OK, "%s", tg_last_error());
        const double want[3] = {-big, -INFINITY, INFINITY};
        for (size_t i = 0; i < 3; i++)
            cr_expect_eq(tg_tensor_get(g, i), want[i], "(%s) d/da a^%a at %g: %a",
                         tg_dtype_name(dt), big, tg_tensor_get(a, i), tg_tensor_get(g, i));
        tg_tape_free(tape);
        tg_tensor_free(a);
        tg_tensor_free(b);
    }
}

/* pow_tensor's da where b = 0 is 0 (a^0 = 1 has slope 0), as tg_grad has it, wherever a^(b-1)
 * is not finite: at a = 0 (inf), a = 1e-310 (1/a overflows) and a = NaN (NaN: the recorded
 * gradient was 0 * NaN = NaN there). */
Test(grad_graph_ops, pow_tensor_slope_at_a_zero_exponent)
{
    tg_tensor *a = ts_vec(TG_F64, 4, TS_VALS(0, 1e-310, NAN, 2), true);
    tg_tensor *b = ts_vec(TG_F64, 4, TS_VALS(0, 0, 0, 0), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_pow_tensor(tape, a, b), TG_ALL_AXES, false), *g;
    cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(tg_tensor_get(g, i), 0, "d/da a^0 at %g: %g", tg_tensor_get(a, i),
                     tg_tensor_get(g, i));
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* pow_tensor's recorded gradient gives what tg_grad gives, bit for bit, where its rules at a = 0
 * apply (0 bases of either sign, a base whose 1/a overflows, b < 0, 0, > 0 and NaN), in both
 * dtypes: element by element over every pair of those bases and exponents, and with a (4, 1)
 * base broadcast against a (5) exponent, so that each input's gradient sums over the other's
 * axis (without the NaN, which would fill every sum). */
static void expect_pow_tensor_grads_alike(tg_tensor *a, tg_tensor *b)
{
    tg_tensor *ab[2] = {a, b}, *plain[2], *graph[2];
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_sum(tape, tg_pow_tensor(tape, a, b), TG_ALL_AXES, false);
    cr_assert_eq(tg_grad(tape, f, ab, 2, plain), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_grad_graph(tape, f, ab, 2, NULL, graph), TG_OK, "%s", tg_last_error());
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < tg_tensor_numel(ab[k]); i++) {
            const double p = tg_tensor_get(plain[k], i), g = tg_tensor_get(graph[k], i);
            cr_expect(p == g || (isnan(p) && isnan(g)),
                      "(%s, %zu elements) d/d%c [%zu]: %g against %g",
                      tg_dtype_name(tg_tensor_dtype(a)), tg_tensor_numel(a), "ab"[k], i, g, p);
        }
    tg_tensor_free(plain[0]);
    tg_tensor_free(plain[1]);
    tg_tape_free(tape);
}

Test(grad_graph_ops, pow_tensor_at_zero_bases_as_tg_grad)
{
    enum { NA = 4, NB = 6 };
    for (int di = 0; di < 2; di++) {
        const tg_dtype dt = di ? TG_F64 : TG_F32;
        const double as[NA] = {0, -0.0, di ? 1e-310 : 1e-40, 2}, bs[NB] = {-1, 0, 0.5, 1, 2, NAN};
        double ea[NA * NB], eb[NA * NB];
        for (int i = 0; i < NA * NB; i++)
            ea[i] = as[i / NB], eb[i] = bs[i % NB];
        tg_tensor *a = ts_vec(dt, NA * NB, ea, true), *b = ts_vec(dt, NA * NB, eb, true);
        expect_pow_tensor_grads_alike(a, b);
        tg_tensor_free(a);
        tg_tensor_free(b);
        a = ts_leaf(dt, 2, TS_SHAPE(NA, 1), as, true);
        b = ts_vec(dt, NB - 1, bs, true);
        expect_pow_tensor_grads_alike(a, b);
        tg_tensor_free(a);
        tg_tensor_free(b);
    }
}

/* take, and index_add into x from src of take's shape, with 0-d, 1-D and 2-D indices,
 * repeated and negative, along every axis */
Test(grad_graph_ops, take_and_index_add)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    for (int add = 0; add < 2; add++)
        for (int rank = 1; rank <= 3; rank++)
            for (int axis = 0; axis < rank; axis++)
                for (int ir = 0; ir <= 2; ir++) {
                    if (rank - 1 + ir > TG_MAX_RANK)
                        continue;
                    shp s = rand_shape(&rng, rank, 1, 4);
                    shp is = rand_shape(&rng, ir, 1, 3);
                    if (ir == 1)
                        is.d[0] = 5; /* more picks than the axis has: repeats */
                    tg_tensor *idx = normal(&rng, is, false);
                    double *iv = tg_tensor_data(idx);
                    const size_t dim = s.d[axis];
                    for (size_t j = 0; j < tg_tensor_numel(idx); j++) {
                        double k = (double)tg_rng_below(&rng, dim);
                        iv[j] = j % 2 ? k - (double)dim : k; /* negative: from the end */
                    }
                    gcase c = {.op = add ? TG_OP_INDEX_ADD : TG_OP_TAKE,
                               .n_in = add ? 3 : 2,
                               .attrs = {.axis = axis},
                               .in = {normal(&rng, s, true), idx}};
                    if (add) { /* src: take's shape, x's with the axis replaced by idx's */
                        shp src = {rank - 1 + ir, {0}};
                        int k = 0;
                        for (int d = 0; d < rank; d++)
                            for (int e = 0; e < (d == axis ? ir : 1); e++)
                                src.d[k++] = d == axis ? is.d[e] : s.d[d];
                        c.in[2] = normal(&rng, src, true);
                    }
                    char what[160], sx[64], si[64];
                    snprintf(what, sizeof what, "%s of %s at %s along %d", tg_op_name(c.op),
                             fmt(sx, sizeof sx, s), fmt(si, sizeof si, is), axis);
                    check_case(&c, true, what);
                    free_case(&c);
                }
}

/* sin(x[::2]) and sin(take(x, idx)), idx picking 2,000 of x's 4,000 elements: their recorded
 * gradients cost O(x's size), and a forward-mode product through either leaves the arena at a
 * few MiB (with a 0/1 matrix of 2,000 x 4,000 doubles and products with it in place of the
 * slice's or take's, as each once had: over 100 MiB). */
static tg_tensor *every_other(tg_tape *tape, tg_tensor *x, tg_tensor *idx)
{
    return idx ? tg_take(tape, x, idx, 0) : tg_slice(tape, x, 0, 0, TG_END, 2);
}

Test(grad_graph_ops, picking_gradients_are_linear_in_size)
{
    enum { N = 4000 };
    tg_tensor *x = tg_tensor_full(TG_F64, 1, (size_t[]){N}, 0.5),
              *v = tg_tensor_full(TG_F64, 1, (size_t[]){N}, 1),
              *idx = tg_tensor_zeros(TG_F64, 1, (size_t[]){N / 2});
    cr_assert(x && v && idx && tg_tensor_set_requires_grad(x, true) == TG_OK);
    for (size_t j = 0; j < N / 2; j++)
        tg_tensor_set(idx, j, (double)(N - 2 - 2 * j)); /* x[::2] backwards */
    for (int by_take = 0; by_take < 2; by_take++) {
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_sin(tape, every_other(tape, x, by_take ? idx : NULL)), *jv = NULL;
        cr_assert_eq(tg_jvp(tape, y, &x, &v, 1, &jv), TG_OK, "%s", tg_last_error());
        for (size_t j = 0; j < N / 2; j += 499)
            cr_expect_eq(tg_tensor_get(jv, j), cos(0.5), "jvp[%zu] = %g", j, tg_tensor_get(jv, j));
        const size_t cap = tg_tape_arena_capacity(tape);
        cr_expect_lt(cap, (size_t)8 << 20, "%s: the arena holds %zu bytes",
                     by_take ? "take" : "slice", cap);
        tg_tape_free(tape);
    }
    tg_tensor_free(x);
    tg_tensor_free(v);
    tg_tensor_free(idx);
}

/* An infinite dy: take's recorded gradient is dy added into zeros where it was picked, and
 * slice's dy placed among zeros, also with step 2: both exact, 0 where nothing was picked (as
 * tg_grad's), and so is the derivative in dy: the slice's own picks of the gradient coming in,
 * even one infinite at a skipped element. */
Test(grad_graph_ops, infinite_dy_in_take_and_slice)
{
    const double xv[5] = {1, 2, 3, 4, 5}, iv[2] = {0, 2}, dv[2] = {INFINITY, 1};
    const double wv[5] = {INFINITY, 1, 2, 3, 4};
    tg_tensor *x = ts_vec(TG_F64, 5, xv, true), *idx = ts_vec(TG_F64, 2, iv, false);
    tg_tensor *dy = ts_vec(TG_F64, 2, dv, true), *w = ts_vec(TG_F64, 5, wv, false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *g = NULL;
    cr_assert_eq(tg_grad_graph(tape, tg_take(tape, x, idx, 0), &x, 1, dy, &g), TG_OK, "%s",
                 tg_last_error());
    const double picked[5] = {INFINITY, 0, 1, 0, 0};
    for (size_t k = 0; k < 5; k++)
        cr_expect_eq(tg_tensor_get(g, k), picked[k], "take dx[%zu] = %g", k, tg_tensor_get(g, k));
    cr_assert_eq(tg_grad_graph(tape, tg_slice(tape, x, 0, 1, 4, 2), &x, 1, dy, &g), TG_OK, "%s",
                 tg_last_error());
    const double want[5] = {0, INFINITY, 0, 1, 0};
    for (size_t k = 0; k < 5; k++)
        cr_expect_eq(tg_tensor_get(g, k), want[k], "slice dx[%zu] = %g", k, tg_tensor_get(g, k));
    tg_tensor *gd = NULL;
    for (int finite = 0; finite < 2; finite++) {
        tg_tensor_set(w, 0, finite ? 0 : INFINITY); /* w[0], skipped by the slice */
        cr_assert_eq(tg_grad_graph(tape, g, &dy, 1, w, &gd), TG_OK, "%s", tg_last_error());
        cr_expect(tg_tensor_get(gd, 0) == 1 && tg_tensor_get(gd, 1) == 3, "w at the picks: %g %g",
                  tg_tensor_get(gd, 0), tg_tensor_get(gd, 1));
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(idx);
    tg_tensor_free(dy);
    tg_tensor_free(w);
}

/* ---- matmul ------------------------------------------------------------------------------- */

/* Every case of NumPy's rules: 1-D against 1-D, 2-D and 3-D on either side, 2-D, 3-D batched
 * and 2-D against 3-D (the gradient of the unbatched side summed over the batch); with both
 * operands requiring grad, and each alone. */
Test(grad_graph_ops, matmul)
{
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    for (int ra = 1; ra <= 3; ra++)
        for (int rb = 1; rb <= 3; rb++)
            for (int which = 0; which < 3; which++) {
                const size_t P = 2 + tg_rng_below(&rng, 2), M = 1 + tg_rng_below(&rng, 3);
                const size_t K = 1 + tg_rng_below(&rng, 4), N = 1 + tg_rng_below(&rng, 3);
                shp sa = ra == 1 ? (shp){1, {K}} : ra == 2 ? (shp){2, {M, K}} : (shp){3, {P, M, K}};
                shp sb = rb == 1 ? (shp){1, {K}} : rb == 2 ? (shp){2, {K, N}} : (shp){3, {P, K, N}};
                gcase c = {.op = TG_OP_MATMUL, .n_in = 2};
                c.in[0] = normal(&rng, sa, which != 2);
                c.in[1] = normal(&rng, sb, which != 1);
                char what[160], s1[64], s2[64];
                snprintf(what, sizeof what, "matmul %s @ %s, grad %d", fmt(s1, sizeof s1, sa),
                         fmt(s2, sizeof s2, sb), which);
                check_case(&c, true, what);
                free_case(&c);
            }
    /* a @ a (fan-out) */
    gcase c = {.op = TG_OP_MATMUL, .n_in = 2};
    c.in[0] = c.in[1] = normal(&rng, (shp){2, {3, 3}}, true);
    check_case(&c, true, "matmul a @ a");
    free_case(&c);
}

/* ---- closed forms ------------------------------------------------------------------------- */

/* The Hessian of a single-element f in x (numel n), row by row: row j = d/dx (g . e_j), g the
 * gradient recorded by tg_grad_graph. h is n*n, row-major. */
static void hessian_of(tg_tape *tape, tg_tensor *f, tg_tensor *x, double *h)
{
    tg_tensor *g;
    cr_assert_eq(tg_grad_graph(tape, f, &x, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    const size_t n = tg_tensor_numel(x);
    for (size_t j = 0; j < n; j++) {
        tg_tensor *e = tg_tensor_zeros(TG_F64, tg_tensor_rank(x), tg_tensor_shape(x)), *row;
        tg_tensor_set(e, j, 1);
        tg_tensor *s = tg_sum(tape, tg_mul(tape, g, e), TG_ALL_AXES, false);
        cr_assert_eq(tg_grad(tape, s, &x, 1, &row), TG_OK, "%s", tg_last_error());
        tg_tensor_to_f64(row, h + j * n);
        tg_tensor_free(row);
        tg_tensor_free(e);
    }
    for (size_t i = 0; i < n; i++) /* symmetric, to rounding */
        for (size_t j = 0; j < i; j++)
            ts_assert_close(h[i * n + j], h[j * n + i], 1e-15, 1e-14, "H[%zu,%zu] = H[%zu,%zu]", i,
                            j, j, i);
}

/* f = logsumexp(x): g = p = softmax(x), H = diag(p) - p p^T (d p_i / d x_j = p_i (δij - p_j)).
 * p computed here in plain C, from max and exp. */
Test(grad_graph_ops, logsumexp_hessian)
{
    const double xv[5] = {0.3, -1.2, 2.0, 0.7, -0.1};
    tg_tensor *x = ts_vec(TG_F64, 5, xv, true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *f = tg_logsumexp(tape, x, 0, false);
    double h[25], p[5], m = xv[0], s = 0;
    hessian_of(tape, f, x, h);
    for (int i = 1; i < 5; i++)
        m = fmax(m, xv[i]);
    for (int i = 0; i < 5; i++)
        s += exp(xv[i] - m);
    for (int i = 0; i < 5; i++)
        p[i] = exp(xv[i] - m) / s;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            ts_assert_close(h[i * 5 + j], (i == j ? p[i] : 0) - p[i] * p[j], 1e-15, 1e-13,
                            "logsumexp H[%d,%d]", i, j);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* Softmax cross-entropy of logits X (3 rows, 4 classes) with labels y: f = -sum_b
 * log_softmax(X)[b, y_b], as sum(Y * log_softmax(X, 1)) with Y = -onehot (no unary op). Per
 * row b, H_b = diag(p_b) - p_b p_b^T whatever the label; rows do not interact. */
Test(grad_graph_ops, softmax_cross_entropy_hessian)
{
    const double xv[12] = {0.5, -1, 2, 0.1, 1.5, 1.5, -0.5, 0, -2, 3, 0.25, 1};
    const int label[3] = {2, 0, 3};
    double yv[12] = {0};
    for (int b = 0; b < 3; b++)
        yv[b * 4 + label[b]] = -1;
    tg_tensor *x = ts_mat(TG_F64, 3, 4, xv, true), *y = ts_mat(TG_F64, 3, 4, yv, false);
    for (int use_softmax = 0; use_softmax < 2; use_softmax++) {
        tg_tape *tape = tg_tape_new();
        /* the same loss through log_softmax, or through logsumexp: -x_y + lse(x) per row */
        tg_tensor *f =
            use_softmax
                ? tg_add(tape, tg_sum(tape, tg_mul(tape, y, x), TG_ALL_AXES, false),
                         tg_sum(tape, tg_logsumexp(tape, x, 1, false), TG_ALL_AXES, false))
                : tg_sum(tape, tg_mul(tape, y, tg_log_softmax(tape, x, 1)), TG_ALL_AXES, false);
        double h[144];
        hessian_of(tape, f, x, h);
        for (int b = 0; b < 3; b++) {
            double m = xv[b * 4], s = 0, p[4];
            for (int k = 1; k < 4; k++)
                m = fmax(m, xv[b * 4 + k]);
            for (int k = 0; k < 4; k++)
                s += exp(xv[b * 4 + k] - m);
            for (int k = 0; k < 4; k++)
                p[k] = exp(xv[b * 4 + k] - m) / s;
            for (int i = 0; i < 12; i++)
                for (int j = 0; j < 4; j++) {
                    const int bi = i / 4, ki = i % 4;
                    double want = bi != b ? 0 : (ki == j ? p[ki] : 0) - p[ki] * p[j];
                    ts_assert_close(h[i * 12 + b * 4 + j], want, 1e-15, 1e-13, "H[%d,%d] (%s)", i,
                                    b * 4 + j, use_softmax ? "logsumexp" : "log_softmax");
                }
        }
        tg_tape_free(tape);
    }
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* f = prod(x): d2f/dx_i dx_j = prod_{k != i, j} x_k for i != j, 0 on the diagonal (f is
 * linear in each x_i), computed here by loops. With one zero x_z, only the entries of row and
 * column z are nonzero; with two, x_z and x_w, only H[z,w] = H[w,z]; with three, none. A
 * gradient computed by dividing y by x_i would get all of these wrong. */
Test(grad_graph_ops, prod_hessian_with_zeros)
{
    static const double cases[][5] = {
        {2, 0, 3, 0.5, -1}, {0, 0, 2, 3, 1.5}, {1.5, -2, 0.5, 3, 0.75}, {0, 0, 0, 2, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        tg_tensor *x = ts_vec(TG_F64, 5, cases[c], true);
        tg_tape *tape = tg_tape_new();
        double h[25];
        hessian_of(tape, tg_prod(tape, x, 0, false), x, h);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) {
                double want = 0;
                if (i != j) {
                    want = 1;
                    for (int k = 0; k < 5; k++)
                        if (k != i && k != j)
                            want *= cases[c][k];
                }
                ts_assert_close(h[i * 5 + j], want, 0, 1e-15, "prod case %zu: H[%d,%d]", c, i, j);
            }
        tg_tape_free(tape);
        tg_tensor_free(x);
    }
}

/* ---- custom ops ----------------------------------------------------------------------------- */

/* mulsq: y = a * b^2 elementwise (a and b of one shape);  da += dy b^2, db += 2 dy a b */
static tg_status mulsq_forward(const tg_custom_call *c)
{
    const double *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    double *y = c->y;
    for (size_t i = 0; i < tg_tensor_numel(c->out); i++)
        y[i] = a[i] * b[i] * b[i];
    return TG_OK;
}

static tg_status mulsq_vjp(const tg_custom_call *c)
{
    const double *a = tg_tensor_data_const(c->in[0]), *b = tg_tensor_data_const(c->in[1]);
    const double *dy = c->dy;
    double *da = c->dx[0], *db = c->dx[1];
    for (size_t i = 0; i < tg_tensor_numel(c->out); i++) {
        if (da)
            da[i] += dy[i] * b[i] * b[i];
        if (db)
            db[i] += 2 * dy[i] * a[i] * b[i];
    }
    return TG_OK;
}

/* the same with ops: da = dy * b * b, db = dy * a * b * 2 */
static tg_status mulsq_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tape *t = c->tape;
    tg_tensor *a = c->in[0], *b = c->in[1];
    c->dx[0] = tg_mul(t, tg_mul(t, c->dy, b), b);
    c->dx[1] = tg_mul(t, tg_mul(t, tg_mul(t, c->dy, a), b), tg_scalar(t, TG_F64, 2));
    return tg_tape_status(t);
}

static const tg_custom_op MULSQ = {
    .name = "mulsq", .forward = mulsq_forward, .vjp = mulsq_vjp, .vjp_graph = mulsq_vjp_graph};
static const tg_custom_op MULSQ_ONCE = {
    .name = "mulsq_once", .forward = mulsq_forward, .vjp = mulsq_vjp};

static tg_tensor *build_custom(tg_tape *tape, const gcase *c)
{
    const tg_tensor *a = c->in[0];
    return tg_custom(tape, c->ud, NULL, c->in, 2, tg_tensor_rank(a), tg_tensor_shape(a));
}

/* With a vjp_graph: differentiable twice, against finite differences */
Test(grad_graph_ops, custom_with_vjp_graph)
{
    tg_rng rng;
    tg_rng_seed(&rng, 13);
    for (int which = 0; which < 3; which++) {
        shp s = rand_shape(&rng, 2, 1, 4);
        gcase c = {.n_in = 2, .build = build_custom, .ud = &MULSQ};
        c.in[0] = normal(&rng, s, which != 2);
        c.in[1] = normal(&rng, s, which != 1);
        check_case(&c, true, "custom mulsq");
        free_case(&c);
    }
}

/* Without one: tg_grad_graph's gradient is still right (the user's vjp recorded as a node),
 * for either input alone and both; differentiating it again fails, naming the op. */
Test(grad_graph_ops, custom_without_vjp_graph)
{
    tg_rng rng;
    tg_rng_seed(&rng, 14);
    for (int which = 0; which < 3; which++) {
        shp s = rand_shape(&rng, 2, 1, 4);
        gcase c = {.n_in = 2, .build = build_custom, .ud = &MULSQ_ONCE};
        c.in[0] = normal(&rng, s, which != 2);
        c.in[1] = normal(&rng, s, which != 1);
        check_case(&c, false, "custom mulsq_once");
        for (int graph = 0; graph < 2; graph++) {
            tg_tensor *xs[2], *g[2], *h[2];
            const size_t n = grad_inputs(&c, xs);
            tg_tape *tape = tg_tape_new();
            tg_tensor *f = build_f(tape, &c);
            cr_assert_eq(tg_grad_graph(tape, f, xs, n, NULL, g), TG_OK, "%s", tg_last_error());
            cr_assert(tg_tensor_requires_grad(g[0]));
            tg_tensor *s2 = tg_sum(tape, g[0], TG_ALL_AXES, false);
            tg_status st =
                graph ? tg_grad_graph(tape, s2, xs, n, NULL, h) : tg_grad(tape, s2, xs, n, h);
            cr_assert_eq(st, TG_EINVAL, "differentiating twice: %s", tg_status_name(st));
            ts_assert_has(tg_last_error(), "custom op 'mulsq_once' has no differentiable VJP: give "
                                           "it a vjp_graph to differentiate twice");
            ts_assert_has(tg_tape_error(tape), "mulsq_once");
            tg_tape_free(tape);
        }
        free_case(&c);
    }
}

/* A vjp_graph that fails: its status and message become the tape's error. */
static tg_status failing_vjp_graph(const tg_custom_grad_call *c)
{
    snprintf(c->msg, c->msg_size, "not today");
    return TG_ENOTSUP;
}

/* A vjp_graph that hands back a leaf of its own (ud) as a gradient, not a tensor it recorded. */
static tg_status leaf_vjp_graph(const tg_custom_grad_call *c)
{
    c->dx[0] = c->user;
    return TG_OK;
}

/* What the VJP gives back is checked: a leaf (which the caller would then hold as if it were
 * the tape's) is refused, naming the op. */
Test(grad_graph_ops, custom_vjp_graph_must_record_its_gradient)
{
    static const tg_custom_op op = {
        .name = "lazy", .forward = mulsq_forward, .vjp = mulsq_vjp, .vjp_graph = leaf_vjp_graph};
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *mine = ts_vec(TG_F64, 2, TS_VALS(5, 5), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *in[2] = {a, a}, *g;
    tg_tensor *y = tg_custom(tape, &op, mine, in, 2, 1, TS_SHAPE(2));
    tg_tensor *f = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_EINVAL);
    ts_assert_has(tg_tape_error(tape), "lazy: vjp_graph: dx[0] is a leaf, not a tensor recorded "
                                       "on the tape it was given since its last reset (node 0)");
    tg_tape_free(tape);
    tg_tensor_free(mine);
    tg_tensor_free(a);
}

/* A vjp_graph that records a gradient of the right shape in f32 for f64 inputs. */
static tg_status f32_vjp_graph(const tg_custom_grad_call *c)
{
    const float ones[2] = {1, 1};
    c->dx[0] = tg_constant(c->tape, TG_F32, 1, TS_SHAPE(2), ones);
    return tg_tape_status(c->tape);
}

/* A gradient of another dtype is TG_EDTYPE naming both dtypes (it was TG_ESHAPE, "a gradient
 * of shape [2], not [2]"). */
Test(grad_graph_ops, custom_vjp_graph_of_another_dtype_is_named)
{
    static const tg_custom_op op = {
        .name = "f32ish", .forward = mulsq_forward, .vjp = mulsq_vjp, .vjp_graph = f32_vjp_graph};
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *in[2] = {a, a}, *g;
    tg_tensor *y = tg_custom(tape, &op, NULL, in, 2, 1, TS_SHAPE(2));
    tg_tensor *f = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_EDTYPE, "%s", tg_last_error());
    ts_assert_has(tg_tape_error(tape), "grad_graph: the VJP of f32ish (node 0) gave input 0 a "
                                       "gradient of dtype f32, not f64");
    tg_tape_free(tape);
    tg_tensor_free(a);
}

/* mulsq's vjp_graph for a, and for b (which needs none) whatever it was given (ud) */
static tg_status a_only_vjp_graph(const tg_custom_grad_call *c)
{
    tg_tape *t = c->tape;
    c->dx[0] = tg_mul(t, tg_mul(t, c->dy, c->in[1]), c->in[1]);
    c->dx[1] = c->user;
    return tg_tape_status(t);
}

/* The gradient of an input that needs none is ignored, as ops.h says: not checked (a leaf
 * there is no error) and not used. */
Test(grad_graph_ops, custom_vjp_graph_entries_of_inputs_without_grad_are_ignored)
{
    static const tg_custom_op op = {.name = "a_only",
                                    .forward = mulsq_forward,
                                    .vjp = mulsq_vjp,
                                    .vjp_graph = a_only_vjp_graph};
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tensor *b = ts_vec(TG_F64, 2, TS_VALS(3, 4), false);
    tg_tensor *junk = ts_vec(TG_F64, 2, TS_VALS(5, 5), false);
    tg_tape *tape = tg_tape_new();
    tg_tensor *in[2] = {a, b}, *g;
    tg_tensor *y = tg_custom(tape, &op, junk, in, 2, 1, TS_SHAPE(2));
    tg_tensor *f = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_OK, "%s", tg_last_error());
    /* d/da sum(a b^2) = b^2 */
    cr_expect_eq(tg_tensor_get(g, 0), 9);
    cr_expect_eq(tg_tensor_get(g, 1), 16);
    tg_tape_free(tape);
    tg_tensor_free(junk);
    tg_tensor_free(b);
    tg_tensor_free(a);
}

Test(grad_graph_ops, custom_vjp_graph_fails)
{
    static const tg_custom_op op = {.name = "grumpy",
                                    .forward = mulsq_forward,
                                    .vjp = mulsq_vjp,
                                    .vjp_graph = failing_vjp_graph};
    tg_tensor *a = ts_vec(TG_F64, 2, TS_VALS(1, 2), true);
    tg_tape *tape = tg_tape_new();
    tg_tensor *in[2] = {a, a}, *g;
    tg_tensor *y = tg_custom(tape, &op, NULL, in, 2, 1, TS_SHAPE(2));
    tg_tensor *f = tg_sum(tape, y, TG_ALL_AXES, false);
    cr_assert_eq(tg_grad_graph(tape, f, &a, 1, NULL, &g), TG_ENOTSUP);
    ts_assert_has(tg_tape_error(tape), "grumpy: vjp_graph: not today");
    tg_tape_free(tape);
    tg_tensor_free(a);
}
