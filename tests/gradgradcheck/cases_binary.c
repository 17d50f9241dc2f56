/* cases_binary.c (test_gradgradcheck): the case functions of the binary ops at every broadcasting
 * pair and fan-out, minimum, maximum, atan2, pow_tensor, the comparisons, where and prod. */
#include "gradgradcheck.h"

/* add, sub, mul, div */
void case_binary(tg_op op, tg_rng *rng)
{
    kind kb = op == TG_OP_DIV ? K_DENOM : K_NORMAL;
    check_binary_pairs(op, rng, K_NORMAL, kb, kb);
}

/* minimum and maximum: a and b kept apart (no ties) at every broadcasting pair; then f(x, x),
 * all ties, whose split gradient must be x's slope. */
void case_minmax(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++) {
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        check_op(&s, in, 2, tg_rng_next(rng));
    }
    s.fanout = true;
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++)
        check_unary(rng, s, FAN_SHAPES[i], K_NORMAL);
}

/* atan2(y, x): y 0.05 away from 0 (the origin and the jump); a^b: a positive, b any. */
void case_atan2(tg_op op, tg_rng *rng)
{
    check_binary_pairs(op, rng, K_AWAY, K_NORMAL, K_AWAY);
}
void case_pow_tensor(tg_op op, tg_rng *rng)
{
    check_binary_pairs(op, rng, K_POS, K_NORMAL, K_POS);
}

/* f = sum(a * cmp(a, b)) + sum(b * cmp(b, a)): the masks are constants to the gradient. */
static tg_tensor *masked_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    const tg_op *op = ud;
    tg_tensor *a = in[0], *b = n > 1 ? in[1] : in[0];
    tg_tensor *ab[2] = {a, b}, *ba[2] = {b, a};
    tg_tensor *m1 = tg_apply(tape, *op, ab, 2, NULL), *m2 = tg_apply(tape, *op, ba, 2, NULL);
    return tg_add(tape, tg_sum(tape, tg_mul(tape, a, m1), TG_ALL_AXES, false),
                  tg_sum(tape, tg_mul(tape, b, m2), TG_ALL_AXES, false));
}

/* Comparisons stay out of the gradient: a mask never requires grad, the recorded gradient of
 * sum(a * mask) is a constant (zero for b), tg_grad_graph from a mask alone fails, and
 * masked_fn passes the gradgradcheck at every broadcasting pair (a and b kept apart). */
void case_compare(tg_op op, tg_rng *rng)
{
    const char *name = tg_op_name(op);
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++) {
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        tg_tape *tape = tg_tape_new();
        tg_tensor_set_requires_grad(in[0], true);
        tg_tensor_set_requires_grad(in[1], true);
        tg_tensor *m = tg_apply(tape, op, in, 2, NULL);
        cr_assert(m, "%s: %s", name, tg_tape_error(tape));
        cr_expect(!tg_tensor_requires_grad(m), "%s requires grad", name);
        tg_tensor *g[2] = {NULL, NULL};
        cr_expect_eq(tg_grad_graph(tape, tg_sum(tape, m, TG_ALL_AXES, false), in, 2, NULL, g),
                     TG_EINVAL, "%s: tg_grad_graph through a mask alone", name);
        ts_assert_has(tg_last_error(), "whose op has no gradient");
        grad_graph(tape, tg_sum(tape, tg_mul(tape, in[0], m), TG_ALL_AXES, false), in, 2, g);
        cr_expect(!tg_tensor_requires_grad(g[0]) && !tg_tensor_requires_grad(g[1]),
                  "%s: the gradient of a * mask depends on the inputs", name);
        for (size_t e = 0; e < tg_tensor_numel(g[1]); e++)
            cr_expect(tg_tensor_get(g[1], e) == 0, "%s: gradient reached b through the mask", name);
        tg_tape_free(tape);
        tg_tensor_set_requires_grad(in[0], false);
        tg_tensor_set_requires_grad(in[1], false);
        check_fn(name, "a * cmp(a, b) + b * cmp(b, a)", masked_fn, &op, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    check_fn(name, "x * cmp(x, x), twice", masked_fn, &op, &x, 1, tg_rng_next(rng));
}

/* where(cond, a, b) with cond gt(c, 0), a mask, or relu(c), values whose zeros are false (c
 * 0.05 away from 0: no perturbation flips it); and the fan-out of x into all three. */
typedef enum where_cond { W_MASK, W_RELU } where_cond;

static tg_tensor *where_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    const where_cond *how = ud;
    tg_tensor *c =
        *how == W_MASK ? tg_gt(tape, in[0], tg_scalar(tape, TG_F64, 0)) : tg_relu(tape, in[0]);
    tg_tensor *w[3] = {c, in[1], in[2]};
    return tg_apply(tape, TG_OP_WHERE, w, 3, NULL);
}

/* where(x > 0, x * x * x, x * x) + where(x, x * x, -x) */
static tg_tensor *where_fanout_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0], *x2 = tg_mul(tape, x, x);
    tg_tensor *pos = tg_gt(tape, x, tg_scalar(tape, TG_F64, 0));
    tg_tensor *y = tg_where(tape, pos, tg_mul(tape, x2, x), x2);
    return tg_add(tape, y, tg_where(tape, x, x2, tg_neg(tape, x)));
}

void case_where(tg_op op, tg_rng *rng)
{
    static const struct {
        shp c, a, b;
    } triples[] = {{S0, S0, S0},
                   {S1(5), S1(5), S1(5)},
                   {S3(2, 3, 2), S3(2, 3, 2), S3(2, 3, 2)},
                   {S4(2, 1, 2, 3), S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
                   {S2(2, 1), S2(2, 3), S0},
                   {S1(3), S2(2, 1), S2(2, 3)},
                   {S2(2, 3), S1(3), S2(2, 1)},
                   {S3(2, 1, 4), S2(3, 1), S1(4)},
                   {S0, S2(3, 1), S2(1, 4)},
                   {S4(2, 1, 3, 1), S3(4, 1, 2), S2(3, 1)}};
    for (size_t i = 0; i < COUNT(triples); i++)
        for (int how = W_MASK; how <= W_RELU; how++) {
            tg_tensor *in[3] = {make_input(rng, triples[i].c, K_AWAY),
                                make_input(rng, triples[i].a, K_NORMAL),
                                make_input(rng, triples[i].b, K_NORMAL)};
            where_cond w = (where_cond)how;
            check_fn(tg_op_name(op), how == W_MASK ? "cond gt(c, 0)" : "cond relu(c)", where_fn, &w,
                     in, 3, tg_rng_next(rng));
        }
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++) {
        tg_tensor *x = make_input(rng, FAN_SHAPES[i], K_AWAY);
        check_fn(tg_op_name(op), "fan-out (x, x, x)", where_fanout_fn, NULL, &x, 1,
                 tg_rng_next(rng));
    }
}

/* prod: as the other reductions, and with zeros in a lane (one, two, half of them): prod is
 * multilinear, so its second derivatives at zeros are products of the other elements (a VJP
 * that divides by x is wrong there), and the finite differences are exact. */
void case_prod(tg_op op, tg_rng *rng)
{
    case_reduce(op, rng);
    static const shp shapes[] = {S1(4), S2(3, 4), S3(2, 3, 2)};
    for (size_t i = 0; i < COUNT(shapes); i++)
        for (int zeros = 1; zeros <= 3; zeros++)
            for (int axis = -1; axis < shapes[i].rank; axis++) {
                tg_tensor *x = make_input(rng, shapes[i], K_NORMAL);
                size_t n = tg_tensor_numel(x);
                for (int z = 0; z < zeros; z++)
                    tg_tensor_set(x, z == 0 ? 0 : (size_t)tg_rng_below(rng, n), 0.0);
                for (size_t e = 0; zeros == 3 && e < n; e += 2)
                    tg_tensor_set(x, e, 0.0);
                spec s = {.op = op,
                          .at = {.axis = axis < 0 ? TG_ALL_AXES : axis, .keepdim = zeros == 2}};
                check_op(&s, &x, 1, tg_rng_next(rng));
            }
}
