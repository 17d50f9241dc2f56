/* binary.c: the elementwise ops of two inputs with NumPy broadcasting: y = f(a, b), where
 * the shapes align from the right and each pair of sizes is equal or one of them 1. The VJP
 * of an input that was broadcast sums over the axes it was repeated along.
 *
 * BINARY_OP(id, ENUM, commutative, forward expression of a and b, VJP term for a, VJP term
 * for b; the terms may use a, b, y and dy) makes an op. The loops are written once below as
 * skeletons over the output's elements and the inputs' offsets, and instantiated per op with
 * that op's element step inlined. */
#include "ops/op_impl.h"

/* ---- shapes ----------------------------------------------------------------------------- */

static tg_status broadcast_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    int rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < rank; i++) {
        int ia = a->rank - rank + i, ib = b->rank - rank + i;
        size_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            snprintf(msg, size, "%s and %s do not broadcast: axis %d has sizes %zu and %zu",
                     tg_ops__fmt_shape(sa, sizeof sa, a), tg_ops__fmt_shape(sb, sizeof sb, b),
                     i - rank, da, db);
            return TG_ESHAPE;
        }
        y->shape[i] = da == 1 ? db : da;
    }
    y->rank = (uint8_t)rank;
    return TG_OK;
}

/* The output's shape with each input's element strides (0 along broadcast axes), adjacent
 * axes merged where both inputs allow it, so the inner loop is as long as possible. */
typedef struct bcast {
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t sa[TG_MAX_RANK], sb[TG_MAX_RANK];
} bcast;

static void input_strides(const tg_tensor *x, const tg_tensor *y, size_t *s)
{
    size_t stride = 1;
    for (int i = y->rank - 1; i >= 0; i--) {
        int ix = x->rank - y->rank + i;
        size_t d = ix >= 0 ? x->shape[ix] : 1;
        s[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
}

static void bcast_init(bcast *bc, const tg_tensor *y)
{
    size_t sa[TG_MAX_RANK], sb[TG_MAX_RANK];
    input_strides(y->in[0], y, sa);
    input_strides(y->in[1], y, sb);
    int r = 0;
    for (int i = 0; i < y->rank; i++) {
        if (y->shape[i] == 1)
            continue; /* size-1 axes contribute nothing */
        if (r > 0 && bc->sa[r - 1] == sa[i] * y->shape[i] && bc->sb[r - 1] == sb[i] * y->shape[i]) {
            bc->shape[r - 1] *= y->shape[i];
            bc->sa[r - 1] = sa[i];
            bc->sb[r - 1] = sb[i];
            continue;
        }
        bc->shape[r] = y->shape[i];
        bc->sa[r] = sa[i];
        bc->sb[r] = sb[i];
        r++;
    }
    bc->rank = r;
}

/* Whether x, leading size-1 axes aside, is the trailing axes of y: then x repeats every
 * x->numel elements of y, like a bias added to every row of a batch. */
static bool trailing_of(const tg_tensor *x, const tg_tensor *y)
{
    int lead = 0;
    while (lead < x->rank && x->shape[lead] == 1)
        lead++;
    const int n = x->rank - lead;
    if (n > y->rank)
        return false;
    for (int i = 0; i < n; i++)
        if (x->shape[lead + i] != y->shape[y->rank - n + i])
            return false;
    return true;
}

/* Whether every output element reads a[ia] and b[ib] with ia, ib either its own index or 0
 * (no general broadcasting), so a range of output elements can be done on its own. */
static bool flat(const tg_tensor *y)
{
    size_t na = y->in[0]->numel, nb = y->in[1]->numel, ny = y->numel;
    return (na == ny && nb == ny) || (na == 1 && nb == ny) || (nb == 1 && na == ny);
}

/* ... and, for a VJP into input i, each output element adds into its own element of that
 * input's gradient, so ranges never write the same element. */
static bool flat_own(const tg_tensor *y, int i)
{
    return flat(y) && y->in[i]->numel == y->numel;
}

/* ---- the loops ------------------------------------------------------------------------------
 * A step is what one output element iy does with its input offsets ia and ib: the forward
 * y[iy] = f(a[ia], b[ib]), or one input's VJP term added into its gradient g. */

typedef struct binary_args {
    const void *a, *b, *y, *dy;
    void *out; /* y (forward) or the input's gradient (VJP) */
} binary_args;

typedef void (*binary_step)(const binary_args *p, size_t ia, size_t ib, size_t iy);

static binary_args args_of(const tg_tensor *y, void *out)
{
    return (binary_args){y->in[0]->data, y->in[1]->data, y->data, y->grad, out};
}

/* The step for every output element in [lo, hi), when flat(y). */
TG_INLINE void binary_each_flat(const tg_tensor *y, size_t lo, size_t hi, binary_step step,
                                const binary_args *p)
{
    const size_t sa = y->in[0]->numel == y->numel, sb = y->in[1]->numel == y->numel;
    if (sa && sb)
        for (size_t iy = lo; iy < hi; iy++)
            step(p, iy, iy, iy);
    else
        for (size_t iy = lo; iy < hi; iy++)
            step(p, iy * sa, iy * sb, iy);
}

/* The step for every output element, in order, with flat loops the compiler vectorizes
 * where no general broadcasting is needed: same element counts, one side a single element,
 * or one side repeating along the leading axes (then a loop over those rows around a flat
 * one). The order matters only for the sums over broadcast axes, and is always this one. */
TG_INLINE void binary_each(const tg_tensor *y, binary_step step, const binary_args *p)
{
    const size_t ny = y->numel, na = y->in[0]->numel, nb = y->in[1]->numel;
    if (na == ny && nb == ny) {
        for (size_t iy = 0; iy < ny; iy++)
            step(p, iy, iy, iy);
    } else if (na == 1 && nb == ny) {
        for (size_t iy = 0; iy < ny; iy++)
            step(p, 0, iy, iy);
    } else if (nb == 1 && na == ny) {
        for (size_t iy = 0; iy < ny; iy++)
            step(p, iy, 0, iy);
    } else if (na == ny && nb && trailing_of(y->in[1], y)) {
        for (size_t row = 0; row < ny; row += nb)
            for (size_t ib = 0; ib < nb; ib++)
                step(p, row + ib, ib, row + ib);
    } else if (nb == ny && na && trailing_of(y->in[0], y)) {
        for (size_t row = 0; row < ny; row += na)
            for (size_t ia = 0; ia < na; ia++)
                step(p, ia, row + ia, row + ia);
    } else { /* general broadcasting: an odometer over the merged axes */
        bcast bc;
        bcast_init(&bc, y);
        size_t idx[TG_MAX_RANK] = {0}, oa = 0, ob = 0;
        const int r = bc.rank;
        const size_t n = r ? bc.shape[r - 1] : 1;
        const size_t sa = r ? bc.sa[r - 1] : 0, sb = r ? bc.sb[r - 1] : 0;
        for (size_t iy = 0; iy < ny;) {
            for (size_t j = 0; j < n; j++, iy++)
                step(p, oa + j * sa, ob + j * sb, iy);
            for (int d = r - 2; d >= 0; d--) {
                oa += bc.sa[d];
                ob += bc.sb[d];
                if (++idx[d] < bc.shape[d])
                    break;
                oa -= bc.sa[d] * bc.shape[d];
                ob -= bc.sb[d] * bc.shape[d];
                idx[d] = 0;
            }
        }
    }
}

/* The forward beyond a single element: over the pool when long and flat (`range` is the
 * op's forward over a range), else on this thread. */
TG_INLINE void binary_forward_many(tg_tensor *y, tg_range_fn range, binary_step f32,
                                   binary_step f64)
{
    if (TG_UNLIKELY(y->numel >= 2 * TG_PAR_GRAIN) && flat(y)) {
        tg_par_range ctx = {y, y->data};
        tg__parallel_for(y->numel, TG_PAR_GRAIN, range, &ctx);
        return;
    }
    const binary_args p = args_of(y, y->data);
    if (y->dtype == TG_F32)
        binary_each(y, f32, &p);
    else
        binary_each(y, f64, &p);
}

/* The VJP beyond a single element, into da and db (either may be NULL): each input gradient
 * that takes one element per output element goes over the pool when long (`range_a`,
 * `range_b`: the op's VJP terms over a range); the others, which sum over broadcast axes,
 * run on this thread. */
TG_INLINE void binary_vjp_many(tg_tensor *y, void *da, void *db, tg_range_fn range_a,
                               tg_range_fn range_b, binary_step a32, binary_step a64,
                               binary_step b32, binary_step b64)
{
    if (TG_UNLIKELY(y->numel >= 2 * TG_PAR_GRAIN)) {
        if (da && flat_own(y, 0)) {
            tg_par_range ctx = {y, da};
            tg__parallel_for(y->numel, TG_PAR_GRAIN, range_a, &ctx);
            da = NULL;
        }
        if (db && flat_own(y, 1)) {
            tg_par_range ctx = {y, db};
            tg__parallel_for(y->numel, TG_PAR_GRAIN, range_b, &ctx);
            db = NULL;
        }
    }
    const bool f32 = y->dtype == TG_F32;
    if (da) {
        const binary_args p = args_of(y, da);
        if (f32)
            binary_each(y, a32, &p);
        else
            binary_each(y, a64, &p);
    }
    if (db) {
        const binary_args p = args_of(y, db);
        if (f32)
            binary_each(y, b32, &p);
        else
            binary_each(y, b64, &p);
    }
}

/* One op's steps for type T: the forward writes y, each VJP term adds into the gradient. */
#define BINARY_STEPS(id, T, FWD, DA, DB)                                                           \
    static inline void id##_y_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)           \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib];                              \
        ((T *)p->out)[iy] = (T)(FWD);                                                              \
    }                                                                                              \
    static inline void id##_da_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)          \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib], y = ((const T *)p->y)[iy],   \
                dy = ((const T *)p->dy)[iy];                                                       \
        (void)a, (void)b, (void)y;                                                                 \
        ((T *)p->out)[ia] += (T)(DA);                                                              \
    }                                                                                              \
    static inline void id##_db_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)          \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib], y = ((const T *)p->y)[iy],   \
                dy = ((const T *)p->dy)[iy];                                                       \
        (void)a, (void)b, (void)y;                                                                 \
        ((T *)p->out)[ib] += (T)(DB);                                                              \
    }

/* One op's loop over a range of output elements, for the pool (a tg_par_range context). */
#define BINARY_RANGE(id, step)                                                                     \
    static void id##_##step##_range(void *ctx, size_t lo, size_t hi)                               \
    {                                                                                              \
        const tg_par_range *c = ctx;                                                               \
        const binary_args p = args_of(c->y, c->out);                                               \
        if (c->y->dtype == TG_F32)                                                                 \
            binary_each_flat(c->y, lo, hi, id##_##step##_float, &p);                               \
        else                                                                                       \
            binary_each_flat(c->y, lo, hi, id##_##step##_double, &p);                              \
    }

#define BINARY_OP(id, ENUM, COMMUTATIVE, FWD, DA, DB)                                              \
    BINARY_STEPS(id, float, FWD, DA, DB)                                                           \
    BINARY_STEPS(id, double, FWD, DA, DB)                                                          \
    BINARY_RANGE(id, y)                                                                            \
    BINARY_RANGE(id, da)                                                                           \
    BINARY_RANGE(id, db)                                                                           \
    static __attribute__((noinline)) void id##_forward_many(tg_tensor *y)                          \
    {                                                                                              \
        binary_forward_many(y, id##_y_range, id##_y_float, id##_y_double);                         \
    }                                                                                              \
    static __attribute__((noinline)) void id##_vjp_many(tg_tensor *y, void *da, void *db)          \
    {                                                                                              \
        binary_vjp_many(y, da, db, id##_da_range, id##_db_range, id##_da_float, id##_da_double,    \
                        id##_db_float, id##_db_double);                                            \
    }                                                                                              \
    /* a single element (then both inputs are single too) right here, more out of line */          \
    TG_INLINE void id##_forward(tg_tensor *y)                                                      \
    {                                                                                              \
        if (TG_LIKELY(y->numel == 1)) {                                                            \
            const binary_args p = args_of(y, y->data);                                             \
            if (y->dtype == TG_F32)                                                                \
                id##_y_float(&p, 0, 0, 0);                                                         \
            else                                                                                   \
                id##_y_double(&p, 0, 0, 0);                                                        \
            return;                                                                                \
        }                                                                                          \
        id##_forward_many(y);                                                                      \
    }                                                                                              \
    static void id##_vjp(tg_tape *tape, tg_tensor *y)                                              \
    {                                                                                              \
        void *da = tg_tape__grad_of(tape, y->in[0]);                                               \
        void *db = tg_tape__grad_of(tape, y->in[1]);                                               \
        if (TG_LIKELY(y->numel == 1)) {                                                            \
            const bool f32 = y->dtype == TG_F32;                                                   \
            if (da) {                                                                              \
                const binary_args p = args_of(y, da);                                              \
                f32 ? id##_da_float(&p, 0, 0, 0) : id##_da_double(&p, 0, 0, 0);                    \
            }                                                                                      \
            if (db) {                                                                              \
                const binary_args p = args_of(y, db);                                              \
                f32 ? id##_db_float(&p, 0, 0, 0) : id##_db_double(&p, 0, 0, 0);                    \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        id##_vjp_many(y, da, db);                                                                  \
    }                                                                                              \
    const tg_op_desc tg_op__##id = {                                                               \
        .info = {.name = #id,                                                                      \
                 .arity = 2,                                                                       \
                 .attrs = TG_ATTR_NONE,                                                            \
                 .commutative = COMMUTATIVE,                                                       \
                 .differentiable = true},                                                          \
        .op = TG_OP_##ENUM,                                                                        \
        .shape = broadcast_shape,                                                                  \
        .forward = id##_forward,                                                                   \
        .vjp = id##_vjp,                                                                           \
    };                                                                                             \
    tg_tensor *tg_##id(tg_tape *tape, tg_tensor *a, tg_tensor *b)                                  \
    {                                                                                              \
        return tg_tape__record(tape, &tg_op__##id, a, b, (tg_node_attr){.c = 0});                  \
    }

/* ---- the ops --------------------------------------------------------------------------------- */

/* y = a + b;  da += dy, db += dy */
BINARY_OP(add, ADD, true, a + b, dy, dy)
/* y = a - b;  da += dy, db += -dy */
BINARY_OP(sub, SUB, false, a - b, dy, -dy)
/* y = a * b;  da += dy * b, db += dy * a */
BINARY_OP(mul, MUL, true, a *b, dy *b, dy *a)
/* y = a / b;  da += dy / b, db += -dy * a / b^2 */
BINARY_OP(div, DIV, false, a / b, dy / b, -dy *a / (b * b))
