/* gen_binary.c (test_random_graphs): the generators of the binary math ops, comparisons,
 * where, prod and detach, and of the elementwise math with a domain or jumps. */
#include "random_graphs.h"

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
void gen_minmax(gen *s, tg_op op, int a)
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
void gen_atan2(gen *s, tg_op op, int a)
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
void gen_pow_tensor(gen *s, tg_op op, int a)
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
void gen_compare(gen *s, tg_op op, int a)
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
void gen_where(gen *s, tg_op op, int a)
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
void gen_prod(gen *s, tg_op op, int a)
{
    if (tg_tensor_numel(s->t[a]) <= 24)
        gen_axis(s, op, a);
}

/* detach: d = detach(a) has a's value and no gradient, so any use of it makes the finite
 * differences (which see d move with a) disagree with backward; a + (d - d) keeps the
 * function a and still puts detach on the path. */
void gen_detach(gen *s, tg_op op, int a)
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
void gen_interval(gen *s, tg_op op, int a)
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
void gen_above1(gen *s, tg_op op, int a)
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
void gen_steps(gen *s, tg_op op, int a)
{
    keep_off_integers(s, s->t[a]);
    apply(s, op, a, -1);
}
