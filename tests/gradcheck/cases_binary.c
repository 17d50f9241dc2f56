/* cases_binary.c (test_gradcheck): the case functions of the binary ops: add, sub, mul, div
 * at many kinds of broadcasting and fan-out; minimum, maximum, atan2, pow_tensor away from
 * their kinks; the comparisons (exact masks, no gradient), where, and prod with zeros. */
#include "gradcheck.h"

/* add, sub, mul, div: same shapes 0-d..4-D, many kinds of broadcasting, fan-out. */
void case_binary(tg_op op, tg_rng *rng)
{
    kind kb = op == TG_OP_DIV ? K_DENOM : K_NORMAL;
    spec s = {.op = op};
    static const struct {
        shp a, b;
    } pairs[] = {
        {S0, S0},
        {S1(5), S1(5)},
        {S2(2, 3), S2(2, 3)},
        {S3(2, 3, 2), S3(2, 3, 2)},
        {S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
        {S2(3, 1), S2(1, 4)},
        {S2(1, 4), S2(3, 1)},
        {S3(2, 3, 4), S1(4)},
        {S1(4), S3(2, 3, 4)},
        {S3(2, 1, 4), S2(3, 1)},
        {S2(3, 1), S3(2, 1, 4)},
        {S0, S2(2, 3)},
        {S2(2, 3), S0},
        {S1(1), S1(3)},
        {S2(1, 1), S2(3, 4)},
        {S2(2, 3), S2(2, 1)},
        {S2(2, 3), S2(1, 3)},
        {S3(2, 3, 4), S3(1, 3, 1)},
        {S3(2, 1, 4), S3(1, 3, 1)},
        {S4(2, 1, 3, 1), S3(4, 1, 2)},
        {S4(2, 3, 1, 2), S2(1, 2)},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        check_binary(rng, s, pairs[i].a, K_NORMAL, pairs[i].b, kb);
    /* The same tensor on both sides: both VJPs add into one gradient. */
    s.fanout = true;
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++)
        check_unary(rng, s, FAN_SHAPES[i], kb);
}

/* ---- binary math, comparisons, where, min and prod ---------------------------------------- */

/* minimum and maximum: a and b kept apart (no ties) at every broadcasting pair, either way
 * round; then min(x, x) and max(x, x), all ties, whose split gradient dy/2 + dy/2 must be
 * the slope 1 of x. */
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

/* atan2(y, x): y kept 0.05 away from 0, so away from the origin and from the jump across the
 * negative x axis; x any. */
void case_atan2(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, K_AWAY, BCAST_PAIRS[i].b, K_NORMAL);
    s.fanout = true; /* atan2(x, x) */
    check_unary(rng, s, (shp)S2(2, 3), K_AWAY);
}

/* a^b: a positive, b any; x^x too. */
void case_pow_tensor(tg_op op, tg_rng *rng)
{
    spec s = {.op = op};
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++)
        check_binary(rng, s, BCAST_PAIRS[i].a, K_POS, BCAST_PAIRS[i].b, K_NORMAL);
    s.fanout = true;
    check_unary(rng, s, (shp)S0, K_POS);
    check_unary(rng, s, (shp)S3(2, 1, 3), K_POS);
}

/* The flat index in x of element iy of y, x broadcast against y's shape. */
static size_t bcast_index(const tg_tensor *x, const tg_tensor *y, size_t iy)
{
    int ry = tg_tensor_rank(y), rx = tg_tensor_rank(x);
    size_t ix = 0, stride = 1;
    for (int d = ry - 1; d >= 0; d--) {
        size_t dim = tg_tensor_dim(y, d), k = iy % dim;
        iy /= dim;
        int dx = rx - ry + d;
        if (dx < 0)
            continue;
        size_t xd = tg_tensor_dim(x, dx);
        ix += (xd == 1 ? 0 : k) * stride;
        stride *= xd;
    }
    return ix;
}

static bool compare(tg_op op, double a, double b)
{
    switch (op) {
    case TG_OP_LT: return a < b;
    case TG_OP_LE: return a <= b;
    case TG_OP_GT: return a > b;
    case TG_OP_GE: return a >= b;
    case TG_OP_EQ: return a == b;
    case TG_OP_NE: return a != b;
    default: cr_assert_fail("%s is no comparison", tg_op_name(op)); return false;
    }
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

/* Comparisons: at every broadcasting pair, the exact 0/1 mask against C's operator on values
 * from {-1, 0, 1} and NaN (ties and NaN included), of the broadcast shape and the inputs'
 * dtype, never requiring grad; backward from a mask alone fails (nothing requires grad); and
 * a mask used as a factor passes the gradient through the other factor only (gradcheck, with
 * a and b kept apart so no mask flips, and cmp(x, x)). */
void case_compare(tg_op op, tg_rng *rng)
{
    const char *name = tg_op_name(op);
    for (size_t i = 0; i < COUNT(BCAST_PAIRS); i++) {
        for (int di = 0; di < 2; di++) {
            tg_dtype dt = di ? TG_F64 : TG_F32;
            tg_tensor *ab[2];
            const shp sh[2] = {BCAST_PAIRS[i].a, BCAST_PAIRS[i].b};
            for (int k = 0; k < 2; k++) {
                ab[k] = tg_tensor_zeros(dt, sh[k].rank, sh[k].d);
                cr_assert(ab[k]);
                for (size_t e = 0; e < tg_tensor_numel(ab[k]); e++) {
                    uint64_t r = tg_rng_below(rng, 7);
                    tg_tensor_set(ab[k], e, r == 6 ? NAN : (double)(r % 3) - 1);
                }
                tg_tensor_set_requires_grad(ab[k], true);
            }
            tg_tape *tape = tg_tape_new();
            cr_assert(tape);
            tg_tensor *m = tg_apply(tape, op, ab, 2, NULL);
            char sa[64], sb[64];
            fmt_shp(sa, sizeof sa, ab[0]);
            fmt_shp(sb, sizeof sb, ab[1]);
            cr_assert(m, "%s(%s, %s): %s", name, sa, sb, tg_tape_error(tape));
            cr_expect_eq(tg_tensor_dtype(m), dt);
            cr_expect(!tg_tensor_requires_grad(m), "%s(%s, %s) requires grad", name, sa, sb);
            for (size_t e = 0; e < tg_tensor_numel(m); e++) {
                double a = tg_tensor_get(ab[0], bcast_index(ab[0], m, e));
                double b = tg_tensor_get(ab[1], bcast_index(ab[1], m, e));
                double want = compare(op, a, b) ? 1 : 0;
                cr_expect(tg_tensor_get(m, e) == want,
                          "%s(%s, %s)[%zu]: %g for (%g, %g), expected %g", name, sa, sb, e,
                          tg_tensor_get(m, e), a, b, want);
            }
            tg_tensor *g[2] = {NULL, NULL};
            tg_tensor *y = tg_sum(tape, m, TG_ALL_AXES, false);
            cr_expect_eq(tg_grad(tape, y, ab, 2, g), TG_EINVAL, "%s: tg_grad through a mask alone",
                         name);
            ts_assert_has(tg_last_error(), "whose op has no gradient");
            cr_expect(g[0] == NULL && g[1] == NULL);
            tg_tape_free(tape);
            tg_tensor_free(ab[0]);
            tg_tensor_free(ab[1]);
        }
        double off = i % 2 ? 0.125 : 0;
        tg_tensor *in[2] = {snap(make_input(rng, BCAST_PAIRS[i].a, K_NORMAL), off, rng),
                            snap(make_input(rng, BCAST_PAIRS[i].b, K_NORMAL), 0.125 - off, rng)};
        check_fn(name, "a * cmp(a, b) + b * cmp(b, a)", masked_fn, &op, in, 2, tg_rng_next(rng));
    }
    tg_tensor *x = make_input(rng, (shp)S2(2, 3), K_NORMAL);
    check_fn(name, "x * cmp(x, x), twice", masked_fn, &op, &x, 1, tg_rng_next(rng));
}

/* where(cond(c), a, b) with cond as the ud says: gt(c, 0), a mask, or relu(c), values whose
 * zeros are false; c is kept 0.05 away from 0, so no perturbation flips it. */
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

/* The fan-out of x into all three: where(x > 0, x, x * x), and where(x, x, -x) (x nonzero:
 * x everywhere). */
static tg_tensor *where_fanout_fn(tg_tape *tape, tg_tensor *const *in, size_t n, void *ud)
{
    (void)n;
    (void)ud;
    tg_tensor *x = in[0];
    tg_tensor *pos = tg_gt(tape, x, tg_scalar(tape, TG_F64, 0));
    tg_tensor *y = tg_where(tape, pos, x, tg_mul(tape, x, x));
    return tg_add(tape, y, tg_where(tape, x, x, tg_neg(tape, x)));
}

/* where: every triple of broadcasting shapes (each of the three the largest, or none), with
 * a mask and with plain values as the condition; and fan-out. */
void case_where(tg_op op, tg_rng *rng)
{
    static const struct {
        shp c, a, b;
    } triples[] = {
        {S0, S0, S0},
        {S1(5), S1(5), S1(5)},
        {S2(2, 3), S2(2, 3), S2(2, 3)},
        {S3(2, 3, 2), S3(2, 3, 2), S3(2, 3, 2)},
        {S4(2, 1, 2, 3), S4(2, 1, 2, 3), S4(2, 1, 2, 3)},
        {S2(2, 1), S2(2, 3), S0},
        {S1(3), S2(2, 1), S2(2, 3)},
        {S2(2, 3), S1(3), S2(2, 1)},
        {S3(2, 1, 4), S2(3, 1), S1(4)},
        {S1(4), S3(2, 3, 4), S3(2, 1, 1)},
        {S0, S2(3, 1), S2(1, 4)},
        {S4(2, 1, 3, 1), S3(4, 1, 2), S2(3, 1)},
        {S2(1, 1), S1(1), S0},
    };
    for (size_t i = 0; i < sizeof triples / sizeof triples[0]; i++) {
        for (int how = W_MASK; how <= W_RELU; how++) {
            tg_tensor *in[3] = {make_input(rng, triples[i].c, K_AWAY),
                                make_input(rng, triples[i].a, K_NORMAL),
                                make_input(rng, triples[i].b, K_NORMAL)};
            where_cond w = (where_cond)how;
            check_fn(tg_op_name(op), how == W_MASK ? "cond gt(c, 0)" : "cond relu(c)", where_fn, &w,
                     in, 3, tg_rng_next(rng));
        }
    }
    for (size_t i = 0; i < COUNT(FAN_SHAPES); i++) {
        tg_tensor *x = make_input(rng, FAN_SHAPES[i], K_AWAY);
        check_fn(tg_op_name(op), "fan-out (x, x, x)", where_fanout_fn, NULL, &x, 1,
                 tg_rng_next(rng));
    }
}

/* prod: as the other reductions, and with zeros: a lane of one zero, of two, and all zero
 * (prod is linear in each element, so the finite differences are exact there too). */
void case_prod(tg_op op, tg_rng *rng)
{
    case_reduce(op, rng);
    static const shp shapes[] = {S1(4), S2(3, 4), S3(2, 3, 2)};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int r = shapes[i].rank;
        for (int zeros = 1; zeros <= 3; zeros++) {
            for (int axis = -1; axis < r; axis++) {
                tg_tensor *x = make_input(rng, shapes[i], K_NORMAL);
                size_t n = tg_tensor_numel(x);
                for (int z = 0; z < zeros; z++) /* the first elements, then at random */
                    tg_tensor_set(x, z == 0 ? 0 : (size_t)tg_rng_below(rng, n), 0.0);
                if (zeros == 3)
                    for (size_t e = 0; e < n; e += 2)
                        tg_tensor_set(x, e, 0.0);
                spec s = {.op = op, .axis = axis < 0 ? TG_ALL_AXES : axis, .keepdim = zeros == 2};
                check_op(&s, &x, 1, tg_rng_next(rng));
            }
        }
    }
}
