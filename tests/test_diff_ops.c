/* test_diff_ops.c: forward mode (tg_jvp) for every op of the table against central finite
 * differences in f64: for each op (tg_op_info_of over the whole table; only const and custom
 * are skipped, the list below), one application through tg_apply at seeded random inputs
 * (kept away from kinks, ties and domain edges) with random tangents for its differentiable
 * inputs, y = op(inputs) + sum(0 * x0) (so that y requires grad even for an op that carries no
 * gradient), and J v against (y(x + h v) - y(x - h v)) / 2h, h = 1e-6. An op without a case
 * fails the coverage test. detach is the one op whose JVP is not the finite differences: it
 * cuts the graph, so its JVP is zero by definition. Needs every op's differentiable VJP
 * (vjp_graph): forward mode is derived from them. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tapegrad.h"

#include "support/helpers.h"

#define H 1e-6
#define TOL 1e-7

typedef enum kind { K_NORMAL, K_POS, K_AWAY, K_UNIT, K_ABOVE1, K_FRAC, K_DISTINCT, K_MASK } kind;

typedef struct shp {
    int rank;
    size_t d[TG_MAX_RANK];
} shp;

typedef struct jcase {
    tg_op op;
    int n;         /* inputs */
    shp s[3];      /* their shapes */
    kind k[3];     /* their values */
    bool grad[3];  /* which get a tangent */
    tg_attrs at;   /* attributes */
    double idx[4]; /* take, index_add: the indices (a constant input, no tangent) */
} jcase;

#define S1(a)                                                                                      \
    {                                                                                              \
        1,                                                                                         \
        {                                                                                          \
            a                                                                                      \
        }                                                                                          \
    }
#define S2(a, b)                                                                                   \
    {                                                                                              \
        2,                                                                                         \
        {                                                                                          \
            a, b                                                                                   \
        }                                                                                          \
    }
#define S3(a, b, c)                                                                                \
    {                                                                                              \
        3,                                                                                         \
        {                                                                                          \
            a, b, c                                                                                \
        }                                                                                          \
    }
#define U(OP, K)                                                                                   \
    {                                                                                              \
        TG_OP_##OP, 1, {S2(2, 3)}, {K}, {true}, {.c = 0},                                               \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }
#define UA(OP, K, ...)                                                                             \
    {                                                                                              \
        TG_OP_##OP, 1, {S2(2, 3)}, {K}, {true}, {__VA_ARGS__},                                     \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }
#define B(OP, KA, KB)                                                                              \
    {                                                                                              \
        TG_OP_##OP, 2, {S2(2, 3), S1(3)}, {KA, KB}, {true, true}, {.c = 0},                             \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

static const size_t RESHAPE_TO[2] = {3, 2};

static const jcase CASES[] = {
    {TG_OP_DETACH, 1, {S2(2, 3)}, {K_NORMAL}, {true}, {.c = 0}, {0}},
    B(ADD, K_NORMAL, K_NORMAL),
    B(SUB, K_NORMAL, K_NORMAL),
    B(MUL, K_NORMAL, K_NORMAL),
    B(DIV, K_NORMAL, K_AWAY),
    U(NEG, K_NORMAL),
    UA(SCALE, K_NORMAL, .c = 1.5),
    UA(ADD_SCALAR, K_NORMAL, .c = -0.5),
    UA(POW, K_POS, .c = 2.5),
    U(SQUARE, K_NORMAL),
    U(SQRT, K_POS),
    U(EXP, K_NORMAL),
    U(LOG, K_POS),
    U(ABS, K_AWAY),
    U(SIGMOID, K_NORMAL),
    U(TANH, K_NORMAL),
    U(RELU, K_AWAY),
    U(LOG_SIGMOID, K_NORMAL),
    UA(CLAMP, K_FRAC, .lo = -1.0, .hi = 1.0),
    {TG_OP_MATMUL, 2, {S2(2, 3), S2(3, 4)}, {K_NORMAL, K_NORMAL}, {true, true}, {.c = 0}, {0}},
    U(TRANSPOSE, K_NORMAL),
    UA(RESHAPE, K_NORMAL, .rank = 2, .shape = RESHAPE_TO),
    UA(SUM, K_NORMAL, .axis = 1),
    UA(MEAN, K_NORMAL, .axis = 0, .keepdim = true),
    UA(MAX, K_DISTINCT, .axis = 1),
    UA(LOGSUMEXP, K_NORMAL, .axis = 1),
    UA(SOFTMAX, K_NORMAL, .axis = 1),
    UA(LOG_SOFTMAX, K_NORMAL, .axis = 0),
    U(SIN, K_NORMAL),
    U(COS, K_NORMAL),
    U(TAN, K_UNIT),
    U(ASIN, K_UNIT),
    U(ACOS, K_UNIT),
    U(ATAN, K_NORMAL),
    U(SINH, K_NORMAL),
    U(COSH, K_NORMAL),
    U(ASINH, K_NORMAL),
    U(ACOSH, K_ABOVE1),
    U(ATANH, K_UNIT),
    U(EXPM1, K_NORMAL),
    U(LOG1P, K_UNIT),
    U(ERF, K_NORMAL),
    U(SOFTPLUS, K_NORMAL),
    U(GELU, K_NORMAL),
    U(SILU, K_NORMAL),
    U(SIGN, K_AWAY),
    U(FLOOR, K_FRAC),
    U(CEIL, K_FRAC),
    B(MINIMUM, K_DISTINCT, K_NORMAL),
    B(MAXIMUM, K_DISTINCT, K_NORMAL),
    B(ATAN2, K_NORMAL, K_AWAY),
    B(POW_TENSOR, K_POS, K_NORMAL),
    B(LT, K_DISTINCT, K_NORMAL),
    B(LE, K_DISTINCT, K_NORMAL),
    B(GT, K_DISTINCT, K_NORMAL),
    B(GE, K_DISTINCT, K_NORMAL),
    B(EQ, K_DISTINCT, K_NORMAL),
    B(NE, K_DISTINCT, K_NORMAL),
    {TG_OP_WHERE,
     3,
     {S2(2, 3), S2(2, 3), S1(3)},
     {K_MASK, K_NORMAL, K_NORMAL},
     {false, true, true},
     {.c = 0},
     {0}},
    UA(MIN, K_DISTINCT, .axis = 0),
    UA(PROD, K_NORMAL, .axis = 1),
    UA(SLICE, K_NORMAL, .axis = 1, .start = 0, .stop = 3, .step = 2),
    UA(SELECT, K_NORMAL, .axis = 0, .index = 1),
    {TG_OP_CONCAT, 2, {S2(2, 3), S2(1, 3)}, {K_NORMAL, K_NORMAL}, {true, true}, {.axis = 0}, {0}},
    {TG_OP_STACK, 2, {S2(2, 3), S2(2, 3)}, {K_NORMAL, K_NORMAL}, {true, true}, {.axis = 1}, {0}},
    {TG_OP_TAKE,
     2,
     {S2(2, 3), S1(4)},
     {K_NORMAL, K_NORMAL},
     {true, false},
     {.axis = 1},
     {2, 0, 2, 1}},
    {TG_OP_PERMUTE, 1, {S3(2, 3, 2)}, {K_NORMAL}, {true}, {.axes = {1, 2, 0}}, {0}},
    {TG_OP_INDEX_ADD,
     3,
     {S2(2, 3), S1(4), S2(2, 4)},
     {K_NORMAL, K_NORMAL, K_NORMAL},
     {true, false, true},
     {.axis = 1},
     {2, 0, 2, 1}},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* The ops forward mode is not checked on: a constant has no input, a custom op needs its
 * callbacks (tg_apply refuses both; test_custom.c covers custom ops' VJPs). */
static bool skipped(tg_op op)
{
    return op == TG_OP_CONST || op == TG_OP_CUSTOM;
}

static const jcase *case_of(tg_op op)
{
    for (size_t i = 0; i < N_CASES; i++)
        if (CASES[i].op == op)
            return &CASES[i];
    return NULL;
}

static tg_tensor *make_input(tg_rng *rng, const jcase *c, int i)
{
    const shp *s = &c->s[i];
    tg_tensor *t = tg_tensor_zeros(TG_F64, s->rank, s->d);
    cr_assert(t);
    double *v = tg_tensor_data(t);
    size_t n = tg_tensor_numel(t);
    for (size_t j = 0; j < n; j++) {
        double u = tg_rng_uniform(rng), sign = tg_rng_below(rng, 2) ? 1 : -1;
        switch (c->k[i]) {
        case K_NORMAL: v[j] = tg_rng_normal(rng); break;
        case K_POS: v[j] = 0.5 + 1.5 * u; break;
        case K_AWAY: v[j] = sign * (0.3 + 1.7 * u); break;
        case K_UNIT: v[j] = -0.8 + 1.6 * u; break;
        case K_ABOVE1: v[j] = 1.2 + 1.8 * u; break;
        case K_FRAC: v[j] = (double)tg_rng_below(rng, 5) - 2.0 + 0.1 + 0.8 * u; break;
        case K_DISTINCT: v[j] = 0.4 * ((double)j - (double)n / 2) + 0.05 * u + 0.013; break;
        case K_MASK: v[j] = (double)(j % 2); break;
        }
    }
    if ((c->op == TG_OP_TAKE || c->op == TG_OP_INDEX_ADD) && i == 1)
        memcpy(v, c->idx, n * sizeof *v);
    return t;
}

/* y = op(in) + sum(0 * in[0]), in[] on `tape`. */
static tg_tensor *apply(tg_tape *tape, const jcase *c, tg_tensor *const *in)
{
    tg_tensor *y = tg_apply(tape, c->op, in, (size_t)c->n, &c->at);
    tg_tensor *z =
        tg_sum(tape, tg_mul(tape, in[0], tg_scalar(tape, TG_F64, 0.0)), TG_ALL_AXES, false);
    return tg_add(tape, y, z);
}

/* y's values at in + t * tangents (inputs with a tangent only), into out. */
static void eval_at(const jcase *c, tg_tensor *const *in, tg_tensor *const *tan, double t,
                    double *out, size_t n_out)
{
    tg_tensor *moved[3] = {NULL, NULL, NULL};
    for (int i = 0; i < c->n; i++) {
        moved[i] = tg_tensor_from_data(TG_F64, tg_tensor_rank(in[i]), tg_tensor_shape(in[i]),
                                       tg_tensor_data_const(in[i]));
        cr_assert(moved[i]);
        if (!c->grad[i])
            continue;
        double *m = tg_tensor_data(moved[i]);
        const double *d = tg_tensor_data_const(tan[i]);
        for (size_t j = 0; j < tg_tensor_numel(moved[i]); j++)
            m[j] += t * d[j];
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = apply(tape, c, moved);
    cr_assert(y, "%s: %s", tg_op_name(c->op), tg_tape_error(tape));
    cr_assert_eq(tg_tensor_numel(y), n_out);
    tg_tensor_to_f64(y, out);
    tg_tape_free(tape);
    for (int i = 0; i < c->n; i++)
        tg_tensor_free(moved[i]);
}

static void check_case(const jcase *c, uint64_t seed)
{
    const char *name = tg_op_name(c->op);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_tensor *in[3] = {NULL, NULL, NULL}, *tan[3] = {NULL, NULL, NULL};
    tg_tensor *xs[3], *vs[3];
    size_t n = 0;
    for (int i = 0; i < c->n; i++) {
        in[i] = make_input(&rng, c, i);
        if (!c->grad[i])
            continue;
        tg_tensor_set_requires_grad(in[i], true);
        tan[i] = tg_tensor_randn(TG_F64, c->s[i].rank, c->s[i].d, &rng, 0.0, 1.0);
        xs[n] = in[i];
        vs[n++] = tan[i];
    }
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = apply(tape, c, in), *jv = NULL;
    cr_assert(y, "%s: %s", name, tg_tape_error(tape));
    tg_status st = tg_jvp(tape, y, xs, vs, n, &jv);
    cr_assert_eq(st, TG_OK, "%s: tg_jvp: %s", name, tg_last_error());
    size_t m = tg_tensor_numel(y);
    cr_assert_eq(tg_tensor_numel(jv), m, "%s: J v has %zu elements, y %zu", name,
                 tg_tensor_numel(jv), m);
    double yp[64], ym[64];
    cr_assert(m <= 64);
    eval_at(c, in, tan, H, yp, m);
    eval_at(c, in, tan, -H, ym, m);
    for (size_t j = 0; j < m; j++) {
        double want = c->op == TG_OP_DETACH ? 0 : (yp[j] - ym[j]) / (2 * H);
        double got = tg_tensor_get(jv, j);
        cr_expect(fabs(got - want) <= TOL * fmax(1.0, fabs(want)),
                  "%s: (J v)[%zu] = %.12g, finite differences %.12g", name, j, got, want);
    }
    tg_tape_free(tape);
    for (int i = 0; i < c->n; i++) {
        tg_tensor_free(in[i]);
        tg_tensor_free(tan[i]);
    }
}

/* Every op of the table has a case (or is on the skip list), and no op has two. */
Test(diff_ops, coverage)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const tg_op_info *info = tg_op_info_of((tg_op)op);
        cr_assert(info);
        if (skipped((tg_op)op))
            continue;
        size_t count = 0;
        for (size_t i = 0; i < N_CASES; i++)
            count += CASES[i].op == (tg_op)op;
        cr_expect_eq(count, 1, "op %s has %zu forward-mode cases (expected one)", info->name,
                     count);
        const jcase *c = case_of((tg_op)op);
        if (c && info->arity != TG_VARIADIC)
            cr_expect_eq(c->n, info->arity, "op %s: the case has %d inputs, the op %d", info->name,
                         c->n, info->arity);
    }
}

/* J v against finite differences, op by op, at three seeds each. */
Test(diff_ops, jvp_every_op)
{
    for (int op = 0; op < TG_OP_COUNT; op++) {
        const jcase *c = case_of((tg_op)op);
        if (skipped((tg_op)op) || !c)
            continue;
        for (uint64_t s = 1; s <= 3; s++)
            check_case(c, 1000 * (uint64_t)op + s);
    }
}
