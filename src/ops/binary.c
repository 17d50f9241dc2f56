/* binary.c: the elementwise ops of two inputs with NumPy broadcasting (arithmetic, minimum
 * and maximum, atan2, pow with a tensor exponent, the comparisons) and where: y = f(a, b), where
 * the shapes align from the right and each pair of sizes is equal or one of them 1. The VJP
 * of an input that was broadcast sums over the axes it was repeated along.
 *
 * BINARY_OP(id, ENUM, commutative, forward expression of a and b, VJP term for a, VJP term
 * for b; the terms may use a, b, y and dy) makes an op; COMPARE_OP(id, ENUM, commutative,
 * forward) a comparison, which has no VJP. The loops are written once below as skeletons over
 * the output's elements and the inputs' offsets, and instantiated per op with that op's
 * element step inlined (always, for the forward's: atan2's is large, and a call per element
 * would keep its loop scalar); those over many elements are also compiled for AVX-512 and AVX2
 * (TG_SIMD_CLONES, core/core.h), as unary.c's are.
 *
 * where(cond, a, b), the one op of three inputs, closes the file with its own loops. */
#include "ops/op_impl.h"

#include <tgmath.h>

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
 * axes merged where both inputs allow it, so the inner loop is as long as possible, and the
 * output's own strides along the merged axes. */
typedef struct bcast {
    int rank;
    size_t shape[TG_MAX_RANK];
    size_t sa[TG_MAX_RANK], sb[TG_MAX_RANK], sy[TG_MAX_RANK];
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
    size_t stride = 1;
    for (int i = r - 1; i >= 0; i--) {
        bc->sy[i] = stride;
        stride *= bc->shape[i];
    }
}

/* Whether every output element reads a[ia] and b[ib] with ia, ib either its own index or 0
 * (no general broadcasting): a range of output elements is then a plain loop. */
static bool flat(const tg_tensor *y)
{
    size_t na = y->in[0]->numel, nb = y->in[1]->numel, ny = y->numel;
    return (na == ny && nb == ny) || (na == 1 && nb == ny) || (nb == 1 && na == ny);
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

/* Moves an odometer over bc's axes before the innermost (idx, the inputs' offsets *oa and *ob,
 * and the output's *oy unless NULL) on to the next run of the innermost axis. */
TG_INLINE void bcast_next_row(const bcast *bc, size_t *idx, size_t *oa, size_t *ob, size_t *oy)
{
    for (int d = bc->rank - 2; d >= 0; d--) {
        *oa += bc->sa[d];
        *ob += bc->sb[d];
        if (oy)
            *oy += bc->sy[d];
        if (++idx[d] < bc->shape[d])
            return;
        *oa -= bc->sa[d] * bc->shape[d];
        *ob -= bc->sb[d] * bc->shape[d];
        if (oy)
            *oy -= bc->sy[d] * bc->shape[d];
        idx[d] = 0;
    }
}

/* The step for m output elements from iy on along the innermost merged axis, the inputs'
 * offsets from oa and ob with strides sa and sb there (each 1 or 0, never both 0): one of three
 * loops with constant strides, which vectorize. */
TG_INLINE void bcast_run(const binary_args *p, binary_step step, size_t oa, size_t ob, size_t iy,
                         size_t m, size_t sa, size_t sb)
{
    if (sa && sb)
        for (size_t j = 0; j < m; j++)
            step(p, oa + j, ob + j, iy + j);
    else if (sa)
        for (size_t j = 0; j < m; j++)
            step(p, oa + j, ob, iy + j);
    else
        for (size_t j = 0; j < m; j++)
            step(p, oa, ob + j, iy + j);
}

/* The step for output elements [lo, hi) under any broadcasting: an odometer over the merged
 * axes (bcast) started at lo, the innermost axis a loop of its own. Along it an input's stride is
 * 1 (it has the axis) or 0 (it is broadcast along it), never both 0 (y's axes of size 1 are
 * merged away), so its loop is one of bcast_run's three with constant strides: a row of a
 * batch and its bias, a row and its column's element either way round. For the forward and for
 * a VJP into an input with the output's element count, each element's step writes its own
 * element and computes the same value whatever the range, so the pool may split the output
 * anywhere. (Not always the same NaN: where both operands are NaN, the vector loop and its
 * scalar remainder may pass on different ones, so a split can change a NaN's payload or sign,
 * as in the flat loops.) */
TG_INLINE void binary_each_bcast(const tg_tensor *y, size_t lo, size_t hi, binary_step step,
                                 const binary_args *p)
{
    bcast bc;
    bcast_init(&bc, y);
    const int r = bc.rank; /* >= 1: a tensor of one element is flat */
    size_t idx[TG_MAX_RANK], oa = 0, ob = 0, rest = lo;
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = rest % bc.shape[d];
        rest /= bc.shape[d];
        oa += idx[d] * bc.sa[d];
        ob += idx[d] * bc.sb[d];
    }
    const size_t n = bc.shape[r - 1], sa = bc.sa[r - 1], sb = bc.sb[r - 1];
    for (size_t iy = lo; iy < hi;) {
        const size_t m = n - idx[r - 1] < hi - iy ? n - idx[r - 1] : hi - iy;
        bcast_run(p, step, oa, ob, iy, m, sa, sb);
        iy += m;
        oa += m * sa;
        ob += m * sb;
        if ((idx[r - 1] += m) < n)
            continue; /* the range ended inside a run */
        oa -= n * sa;
        ob -= n * sb;
        idx[r - 1] = 0;
        bcast_next_row(&bc, idx, &oa, &ob, NULL);
    }
}

/* A VJP step's terms for the output elements iy0 .. iy0 + count - 1 all go into one element,
 * `at`, of its input's gradient (side 0: a's, 1: b's): an input broadcast along them, a single
 * element or a column. One running sum waited an addition's latency per term, and in f32 it
 * stopped growing at 2^24 times its terms (the gradient of a scalar times 2^25 ones was 2^24).
 * They are a contiguous run of terms (op_impl.h, TG_BLOCK_SUM), with the element's value so far
 * first, so that up to TG_SUM_WAYS terms are added one by one, as the element alone would take
 * them. Each term is the step's addition into a zero (a term of -0 becomes +0, which can change
 * only the sign of a zero sum); the other input's element for output iy0 + j is at o + j * s. */
TG_INLINE void binary_sum_run(const binary_args *p, binary_step step, int side, size_t at, size_t o,
                              size_t s, size_t iy0, size_t count, size_t es)
{
    union {
        float f;
        double d;
    } term; /* the step's dtype's */
    binary_args q = *p;
    q.out = &term;
    if (side == 0)
        q.a = (const char *)p->a + at * es;
    else
        q.b = (const char *)p->b + at * es;
#define RUN_TERM(j)                                                                                \
    (term.d = 0, step(&q, side == 0 ? 0 : o + s * (j), side == 1 ? 0 : o + s * (j), iy0 + (j)),    \
     *(T *)(void *)&term)
    DISPATCH(es == sizeof(float) ? TG_F32 : TG_F64, {
        T *out = (T *)p->out + at;
        TG_BLOCK_SUM(T, 0, count, *out, *out, RUN_TERM, 1);
    });
#undef RUN_TERM
}

/* ---- the gradient of a broadcast input -------------------------------------------------------
 * A VJP into an input with fewer elements than the output sums, for each of the input's
 * elements, the terms of the output elements that read it, in the output's order: a run of
 * terms (binary_sum_run) where the input is broadcast along the innermost merged axis, else
 * one term at a time. Over the pool the work is cut so that each element's terms stay in one
 * piece, in that order, so the gradient is the same bits at any thread count:
 * - an input of one element takes its terms in TG_BLOCK_SUM's blocks of TG_PAR_GRAIN, a piece
 *   each, the blocks' sums added in order after (binary_sum_blocks);
 * - any other is cut along one merged axis it is not broadcast along (sum_split_axis): output
 *   elements at different indices there read different elements of it, so a range of that
 *   axis with all of the others (binary_sum_box) writes elements no other range writes. An
 *   input broadcast along every outer axis (a row against a batch) is not cut. */

typedef struct binary_sum_job {
    const tg_tensor *y;
    void *grad;    /* the input's gradient */
    void *partial; /* an input of one element: its blocks' sums; else NULL */
    bcast bc;      /* else: the merged axes, */
    int axis;      /* and the one cut (sum_split_axis) */
} binary_sum_job;

/* The merged axis of bc along which the VJP into input `side` is cut: the longest of those
 * before the innermost that the input is not broadcast along, or else the innermost (which it
 * then has: it has more than one element), which is not cut. A piece of an outer axis is whole
 * runs of the innermost one (one contiguous range of dy when the axis is the first), as the
 * ranges of the elementwise op before were, so each thread mostly reads dy its own core wrote;
 * a row cut into columns made each read half of every row from the other core (the gradient of
 * a row of 1024 against 1024 x 1024 f32 under a sum's VJP, Zen 5: 0.29-0.37 ms whole, 0.36-0.47
 * cut). */
static int sum_split_axis(const bcast *bc, int side)
{
    int best = bc->rank - 1;
    for (int d = 0; d < bc->rank - 1; d++)
        if ((side == 0 ? bc->sa[d] : bc->sb[d]) &&
            (best == bc->rank - 1 || bc->shape[d] > bc->shape[best]))
            best = d;
    return best;
}

/* The VJP steps into input `side` for the output elements whose index along the job's cut
 * axis is in [lo, hi), in the output's order: an odometer over that box (its offsets started at
 * lo), the innermost axis a run of terms or bcast_run's loops. */
TG_INLINE void binary_sum_box(const binary_sum_job *j, size_t lo, size_t hi, binary_step step,
                              const binary_args *p, int side)
{
    bcast bc = j->bc;
    const int r = bc.rank, d = j->axis;
    size_t idx[TG_MAX_RANK] = {0}, oa = lo * bc.sa[d], ob = lo * bc.sb[d], iy = lo * bc.sy[d];
    bc.shape[d] = hi - lo;
    size_t rows = 1;
    for (int k = 0; k < r - 1; k++)
        rows *= bc.shape[k];
    const size_t n = bc.shape[r - 1], sa = bc.sa[r - 1], sb = bc.sb[r - 1], es = tg__esize(j->y);
    for (size_t row = 0; row < rows; row++) {
        if (side == 0 && !sa)
            binary_sum_run(p, step, 0, oa, ob, sb, iy, n, es);
        else if (side == 1 && !sb)
            binary_sum_run(p, step, 1, ob, oa, sa, iy, n, es);
        else
            bcast_run(p, step, oa, ob, iy, n, sa, sb);
        bcast_next_row(&bc, idx, &oa, &ob, &iy);
    }
}

/* Blocks [lo, hi) of the terms into an input of one element: each block's sum into the job's
 * partial, the first one's from the gradient so far, as TG_BLOCK_SUM takes them. */
TG_INLINE void binary_sum_blocks(const binary_sum_job *j, size_t lo, size_t hi, binary_step step,
                                 const binary_args *p, int side)
{
    const size_t ny = j->y->numel, es = tg__esize(j->y);
    for (size_t blk = lo; blk < hi; blk++) {
        const size_t at = blk * TG_PAR_GRAIN,
                     count = ny - at < TG_PAR_GRAIN ? ny - at : TG_PAR_GRAIN;
        binary_args q = *p;
        q.out = (char *)j->partial + blk * es;
        DISPATCH(j->y->dtype, { *(T *)q.out = blk ? 0 : *(const T *)j->grad; });
        binary_sum_run(&q, step, side, 0, at, 1, at, count, es);
    }
}

/* A range of a binary_sum_job (blocks, or indices along the axis it is cut along) with the
 * op's VJP steps into input `side`, for the pool. */
TG_INLINE void binary_sum_range(void *ctx, size_t lo, size_t hi, binary_step f32, binary_step f64,
                                int side)
{
    const binary_sum_job *j = ctx;
    const binary_args p = args_of(j->y, j->grad);
    const bool is_f32 = j->y->dtype == TG_F32;
    if (j->partial && is_f32)
        binary_sum_blocks(j, lo, hi, f32, &p, side);
    else if (j->partial)
        binary_sum_blocks(j, lo, hi, f64, &p, side);
    else if (is_f32)
        binary_sum_box(j, lo, hi, f32, &p, side);
    else
        binary_sum_box(j, lo, hi, f64, &p, side);
}

/* The VJP into input `side`, of fewer elements than the output, into grad: over the pool in
 * pieces of at least TG_PAR_GRAIN output elements (`range`: the op's binary_sum_range). An
 * input of one element whose blocks' sums find no scratch takes its terms here, in one run. */
TG_INLINE void binary_sum_many(tg_tape *tape, const tg_tensor *y, void *grad, int side,
                               tg_range_fn range, binary_step f32, binary_step f64)
{
    binary_sum_job j = {.y = y, .grad = grad};
    const size_t ny = y->numel, es = tg__esize(y);
    if (ny == 0)
        return;
    if (y->in[side]->numel == 1) {
        const size_t blocks = (ny + TG_PAR_GRAIN - 1) / TG_PAR_GRAIN;
        const tg_arena mark = tg_tape__scratch_mark(tape);
        if (ny >= 2 * TG_PAR_GRAIN && (j.partial = tg_tape__alloc(tape, blocks * es))) {
            tg__parallel_for(blocks, 1, range, &j);
            DISPATCH(y->dtype, {
                const T *P = j.partial;
                T tot = P[0];
                for (size_t blk = 1; blk < blocks; blk++)
                    tot = tot + P[blk];
                *(T *)grad = tot;
            });
        } else {
            const binary_args p = args_of(y, grad);
            if (y->dtype == TG_F32)
                binary_sum_run(&p, f32, side, 0, 0, 1, 0, ny, es);
            else
                binary_sum_run(&p, f64, side, 0, 0, 1, 0, ny, es);
        }
        tg_tape__scratch_release(tape, &mark);
        return;
    }
    bcast_init(&j.bc, y);
    const int d = j.axis = sum_split_axis(&j.bc, side);
    const size_t extent = j.bc.shape[d], per_index = ny / extent;
    const size_t grain = d == j.bc.rank - 1 ? extent : (TG_PAR_GRAIN + per_index - 1) / per_index;
    tg__parallel_for(extent, grain, range, &j);
}

/* At most TG_FEW elements, each input of the output's element count (a single element's inputs
 * are single too): the forward and VJP run their steps right where they are, in order. A 0-d
 * output, the whole of a graph of scalars, says so itself: its inputs are 0-d too (the output
 * has the larger of their ranks), without reading them. */
TG_INLINE bool binary_few(const tg_tensor *y)
{
    const size_t n = y->numel;
    return y->rank == 0 || (n <= TG_FEW && y->in[0]->numel == n && y->in[1]->numel == n);
}

/* The step (f32 or f64, by y's dtype) for each of those few elements, in order; a 0-d output's
 * one element without a loop. */
TG_INLINE void binary_few_run(const tg_tensor *y, const binary_args *p, binary_step f32,
                              binary_step f64)
{
    if (y->rank == 0) {
        if (y->dtype == TG_F32)
            f32(p, 0, 0, 0);
        else
            f64(p, 0, 0, 0);
        return;
    }
    for (size_t i = 0, n = y->numel; i < n; i++)
        y->dtype == TG_F32 ? f32(p, i, i, i) : f64(p, i, i, i);
}

/* The forward beyond a few elements: `range`, the op's forward over a range of output
 * elements, over the pool when long. */
TG_INLINE void binary_forward_many(tg_tensor *y, tg_range_fn range)
{
    tg_par_range ctx = {y, y->data};
    tg__parallel_for(y->numel, TG_PAR_GRAIN, range, &ctx);
}

/* The VJP beyond a few elements, into da and db (either may be NULL), over the pool when long:
 * an input gradient that takes one element per output element (the input has the output's
 * shape) through the op's VJP terms over ranges of them (`range_a`, `range_b`); one that sums
 * over broadcast axes through binary_sum_many (`sum_a`, `sum_b`). */
TG_INLINE void binary_vjp_many(tg_tape *tape, tg_tensor *y, void *da, void *db, tg_range_fn range_a,
                               tg_range_fn range_b, tg_range_fn sum_a, tg_range_fn sum_b,
                               binary_step a32, binary_step a64, binary_step b32, binary_step b64)
{
    if (da && y->in[0]->numel == y->numel) {
        tg_par_range ctx = {y, da};
        tg__parallel_for(y->numel, TG_PAR_GRAIN, range_a, &ctx);
    } else if (da) {
        binary_sum_many(tape, y, da, 0, sum_a, a32, a64);
    }
    if (db && y->in[1]->numel == y->numel) {
        tg_par_range ctx = {y, db};
        tg__parallel_for(y->numel, TG_PAR_GRAIN, range_b, &ctx);
    } else if (db) {
        binary_sum_many(tape, y, db, 1, sum_b, b32, b64);
    }
}

/* One op's forward step for type T: y = FWD. */
#define BINARY_Y_STEP(id, T, FWD)                                                                  \
    TG_INLINE void id##_y_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)               \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib];                              \
        ((T *)p->out)[iy] = (T)(FWD);                                                              \
    }

/* One op's VJP steps for type T: each adds its input's term into that input's gradient. STEP is
 * how they are declared (see BINARY_OP_STEPS). */
#define BINARY_VJP_STEPS(id, T, DA, DB, STEP)                                                      \
    STEP void id##_da_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)                   \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib], y = ((const T *)p->y)[iy],   \
                dy = ((const T *)p->dy)[iy];                                                       \
        (void)a, (void)b, (void)y;                                                                 \
        ((T *)p->out)[ia] += (T)(DA);                                                              \
    }                                                                                              \
    STEP void id##_db_##T(const binary_args *p, size_t ia, size_t ib, size_t iy)                   \
    {                                                                                              \
        const T a = ((const T *)p->a)[ia], b = ((const T *)p->b)[ib], y = ((const T *)p->y)[iy],   \
                dy = ((const T *)p->dy)[iy];                                                       \
        (void)a, (void)b, (void)y;                                                                 \
        ((T *)p->out)[ib] += (T)(DB);                                                              \
    }

/* One op's loop over a range of output elements, for the pool (a tg_par_range context). */
#define BINARY_RANGE(id, step)                                                                     \
    static TG_SIMD_CLONES void id##_##step##_range(void *ctx, size_t lo, size_t hi)                \
    {                                                                                              \
        const tg_par_range *c = ctx;                                                               \
        const binary_args p = args_of(c->y, c->out);                                               \
        const bool f32 = c->y->dtype == TG_F32;                                                    \
        if (flat(c->y) && f32)                                                                     \
            binary_each_flat(c->y, lo, hi, id##_##step##_float, &p);                               \
        else if (flat(c->y))                                                                       \
            binary_each_flat(c->y, lo, hi, id##_##step##_double, &p);                              \
        else if (f32)                                                                              \
            binary_each_bcast(c->y, lo, hi, id##_##step##_float, &p);                              \
        else                                                                                       \
            binary_each_bcast(c->y, lo, hi, id##_##step##_double, &p);                             \
    }

/* One op's ranges of the VJP into input `side` (0: a, 1: b) that sums, for the pool (a
 * binary_sum_job context). */
#define BINARY_SUM_RANGE(id, step, side)                                                           \
    static TG_SIMD_CLONES void id##_##step##_sum_range(void *ctx, size_t lo, size_t hi)            \
    {                                                                                              \
        binary_sum_range(ctx, lo, hi, id##_##step##_float, id##_##step##_double, side);            \
    }

/* One op's forward: its steps, and the function that runs them over the output. */
#define BINARY_FORWARD(id, FWD)                                                                    \
    BINARY_Y_STEP(id, float, FWD)                                                                  \
    BINARY_Y_STEP(id, double, FWD)                                                                 \
    BINARY_RANGE(id, y)                                                                            \
    static TG_SIMD_CLONES __attribute__((noinline)) void id##_forward_many(tg_tensor *y)           \
    {                                                                                              \
        binary_forward_many(y, id##_y_range);                                                      \
    }                                                                                              \
    /* a few elements, without broadcasting, right here; more out of line */                       \
    TG_INLINE void id##_forward(tg_tensor *y)                                                      \
    {                                                                                              \
        if (TG_LIKELY(binary_few(y))) {                                                            \
            const binary_args p = args_of(y, y->data);                                             \
            binary_few_run(y, &p, id##_y_float, id##_y_double);                                    \
            return;                                                                                \
        }                                                                                          \
        id##_forward_many(y);                                                                      \
    }

/* One op's descriptor (its VJP id##_vjp, or none) and constructor. */
#define BINARY_DESC(id, ENUM, COMMUTATIVE, DIFFERENTIABLE, VJP, VJP_GRAPH)                         \
    const tg_op_desc tg_op__##id = {                                                               \
        .info = {.name = #id,                                                                      \
                 .arity = 2,                                                                       \
                 .attrs = TG_ATTR_NONE,                                                            \
                 .commutative = COMMUTATIVE,                                                       \
                 .differentiable = DIFFERENTIABLE},                                                \
        .op = TG_OP_##ENUM,                                                                        \
        .shape = broadcast_shape,                                                                  \
        .forward = id##_forward,                                                                   \
        .vjp = VJP,                                                                                \
        .vjp_graph = VJP_GRAPH,                                                                    \
    };                                                                                             \
    tg_tensor *tg_##id(tg_tape *tape, tg_tensor *a, tg_tensor *b)                                  \
    {                                                                                              \
        return tg_tape__record(tape, &tg_op__##id, a, b, (tg_node_attr){.c = 0});                  \
    }

/* One op, its VJP steps declared as STEP: static inline, for GCC to inline as it sees fit (it
 * does, the steps being small), or TG_INLINE for an op whose steps it would not inline by itself
 * (pow_tensor's, called once per element: its loops stayed scalar, 110 ns an element). */
#define BINARY_OP_STEPS(STEP, id, ENUM, COMMUTATIVE, FWD, DA, DB, GA, GB)                          \
    BINARY_FORWARD(id, FWD)                                                                        \
    BINARY_VJP_STEPS(id, float, DA, DB, STEP)                                                      \
    BINARY_VJP_STEPS(id, double, DA, DB, STEP)                                                     \
    BINARY_RANGE(id, da)                                                                           \
    BINARY_RANGE(id, db)                                                                           \
    BINARY_SUM_RANGE(id, da, 0)                                                                    \
    BINARY_SUM_RANGE(id, db, 1)                                                                    \
    static TG_SIMD_CLONES __attribute__((noinline)) void id##_vjp_many(                            \
        tg_tape *tape, tg_tensor *y, void *da, void *db)                                           \
    {                                                                                              \
        binary_vjp_many(tape, y, da, db, id##_da_range, id##_db_range, id##_da_sum_range,          \
                        id##_db_sum_range, id##_da_float, id##_da_double, id##_db_float,           \
                        id##_db_double);                                                           \
    }                                                                                              \
    static void id##_vjp(tg_tape *tape, tg_tensor *y)                                              \
    {                                                                                              \
        void *da = tg_tape__grad_of(tape, y->in[0]);                                               \
        void *db = tg_tape__grad_of(tape, y->in[1]);                                               \
        if (TG_LIKELY(binary_few(y))) {                                                            \
            if (da) {                                                                              \
                const binary_args p = args_of(y, da);                                              \
                binary_few_run(y, &p, id##_da_float, id##_da_double);                              \
            }                                                                                      \
            if (db) {                                                                              \
                const binary_args p = args_of(y, db);                                              \
                binary_few_run(y, &p, id##_db_float, id##_db_double);                              \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        id##_vjp_many(tape, y, da, db);                                                            \
    }                                                                                              \
    static tg_status id##_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)    \
    {                                                                                              \
        tg_tensor *a = y->in[0], *b = y->in[1];                                                    \
        (void)a, (void)b;                                                                          \
        if (a->requires_grad)                                                                      \
            dx[0] = tg_ops__sum_to(tape, (GA), a);                                                 \
        if (b->requires_grad)                                                                      \
            dx[1] = tg_ops__sum_to(tape, (GB), b);                                                 \
        return tg_tape_status(tape);                                                               \
    }                                                                                              \
    BINARY_DESC(id, ENUM, COMMUTATIVE, true, id##_vjp, id##_vjp_graph)

#define BINARY_OP(...) BINARY_OP_STEPS(static inline, __VA_ARGS__)

/* A comparison: a forward only (a 0/1 mask), not differentiable, so never requiring grad. */
#define COMPARE_OP(id, ENUM, COMMUTATIVE, FWD)                                                     \
    BINARY_FORWARD(id, FWD)                                                                        \
    BINARY_DESC(id, ENUM, COMMUTATIVE, false, NULL, NULL)

/* ---- the ops --------------------------------------------------------------------------------- */

/* y = a + b;  da += dy, db += dy */
BINARY_OP(add, ADD, true, a + b, dy, dy, dy, dy)
/* y = a - b;  da += dy, db += -dy */
BINARY_OP(sub, SUB, false, a - b, dy, -dy, dy, GNEG(dy))
/* y = a * b;  da += dy * b, db += dy * a */
BINARY_OP(mul, MUL, true, a *b, dy *b, dy *a, GMUL(dy, b), GMUL(dy, a))
/* y = a / b;  da += dy / b, db += -dy * a / b^2 = -(dy / b) * y   (b^2 itself would overflow
 * or underflow long before the gradient does: b = 1e-23 in f32) */
BINARY_OP(div, DIV, false, a / b, dy / b, -(dy / b) * (a / b), GDIV(dy, b),
          GNEG(GMUL(GDIV(dy, b), y)))

/* minimum and maximum pick a when it is below (above) b or NaN, else b (also when b is NaN);
 * the gradient goes to the operand picked, dy/2 to each on a tie. */
#define A_BELOW (a < b || a != a)
#define A_ABOVE (a > b || a != a)
#define SHARE_A(picks_a) (a == b ? dy / 2 : (picks_a) ? dy : 0)
#define SHARE_B(picks_a) (a == b ? dy / 2 : (picks_a) ? 0 : dy)
/* The same shares as ops: a's is (picks a) + (a tie)/2, from masks that are constants of the
 * values (piecewise constant, so of derivative zero); b's is the rest, 1 - a's. */
#define PICKS_A(first) GADD(GADD(first, tg_ne(tape, a, a)), GSCALE(tg_eq(tape, a, b), 0.5))
#define GSHARE_A(first) GMUL(dy, PICKS_A(first))
#define GSHARE_B(first) GMUL(dy, GADDC(GNEG(PICKS_A(first)), 1))
/* y = min(a, b), NaN if either is */
BINARY_OP(minimum, MINIMUM, true, A_BELOW ? a : b, SHARE_A(A_BELOW), SHARE_B(A_BELOW),
          GSHARE_A(tg_lt(tape, a, b)), GSHARE_B(tg_lt(tape, a, b)))
/* y = max(a, b), NaN if either is */
BINARY_OP(maximum, MAXIMUM, true, A_ABOVE ? a : b, SHARE_A(A_ABOVE), SHARE_B(A_ABOVE),
          GSHARE_A(tg_gt(tape, a, b)), GSHARE_B(tg_gt(tape, a, b)))
/* y = atan2(a, b), the angle of the point (x, y) = (b, a);  with r^2 = a^2 + b^2:
 * da += dy * b / r^2, db += -dy * a / r^2 (NaN at the origin). Both with a and b scaled by
 * m = max(|a|, |b|) first, so that r^2 / m^2 is in [1, 2]: a^2 + b^2 would overflow beyond
 * 1e154 and underflow below 1e-154 (giving 0 and NaN). The gradient does not depend on m, so
 * neither do its derivatives. */
/* num / r^2, num being a (num_is_a) or b, as above. An infinite coordinate scales to +-1 (not
 * inf/inf), so that the slope takes its limit, 0, where the point is infinitely far. */
static inline double atan2_slope(double a, double b, bool num_is_a)
{
    /* max(|a|, |b|) as a select, not fmax, a call per element that kept the loop scalar (a NaN
     * in either gives NaN whichever m is) */
    const double fa = fabs(a), fb = fabs(b), m = fa > fb ? fa : fb;
    const double sa = isinf(a) ? copysign(1, a) : a / m, sb = isinf(b) ? copysign(1, b) : b / m;
    return (num_is_a ? sa : sb) / (sa * sa + sb * sb) / m;
}
#define M_AB tg_maximum(tape, tg_abs(tape, a), tg_abs(tape, b))
#define R2_OVER_M2(m) GADD(tg_square(tape, GDIV(a, m)), tg_square(tape, GDIV(b, m)))
#define ATAN2_SHARE(num, m) GDIV(GDIV(GMUL(dy, GDIV(num, m)), R2_OVER_M2(m)), m)
BINARY_OP(atan2, ATAN2, false, tg__atan2(a, b), dy *atan2_slope(a, b, false),
          -dy *atan2_slope(a, b, true), ATAN2_SHARE(b, M_AB), GNEG(ATAN2_SHARE(a, M_AB)))
/* a^(b-1) for pow_tensor's differentiable VJP, with a factor of -1 where a < 0 and |b| is from
 * the magnitude where b - 1 rounds to an even number (tg_ops__even_from) and finite (not at
 * a = -0, which compares equal to 0). */
static tg_tensor *pow_slope_power(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    const tg_dtype dt = (tg_dtype)b->dtype;
    tg_tensor *abs_b = tg_abs(tape, b);
    tg_tensor *huge = GMUL(tg_ge(tape, abs_b, tg_scalar(tape, dt, tg_ops__even_from(dt))),
                           tg_lt(tape, abs_b, tg_scalar(tape, dt, INFINITY)));
    tg_tensor *flip = GMUL(tg_lt(tape, a, tg_ops__zeros_like(tape, a)), huge);
    return GMUL(tg_pow_tensor(tape, a, GADDC(b, -1)), GADDC(GSCALE(flip, -2), 1));
}
/* b * a^(b-1), pow_tensor's da as a graph: 0 where b = 0 through the factor b, so that its
 * derivative in b there is a^(b-1) (1/a: d2/da db a^b = a^(b-1) (1 + b log a)). Only where
 * b = 0 and a^(b-1) = 1/a is not finite (a = 0, 1/a overflows, a is NaN), where b times it
 * would be NaN against the 0 of the in-place rule, is the power replaced by 0; and there it is
 * taken of a base of 1, so that the gradient the where passes back into the branch it leaves
 * out, 0, meets finite slopes (not 0 * inf) and the higher derivatives stay 0. */
static tg_tensor *pow_slope(tg_tape *tape, tg_tensor *y, tg_tensor *a, tg_tensor *b)
{
    const tg_dtype dt = (tg_dtype)b->dtype;
    tg_tensor *finite =
        tg_lt(tape, tg_abs(tape, tg_pow(tape, a, -1)), tg_scalar(tape, dt, INFINITY));
    tg_tensor *nan_at = GMUL(tg_eq(tape, b, tg_ops__zeros_like(tape, b)), GADDC(GNEG(finite), 1));
    tg_tensor *safe_a = tg_where(tape, nan_at, tg_scalar(tape, dt, 1), a);
    return GMUL(
        b, tg_where(tape, nan_at, tg_ops__zeros_like(tape, y), pow_slope_power(tape, safe_a, b)));
}
/* Where pow_tensor's db is 0 rather than y log(a): where y = 0 (e.g. an underflow), and at
 * a = 0 (unless b is NaN, which makes y NaN), where 0^b is constant in b on either side of 0 (inf
 * below, 0 above: slope 0, not 0 * -inf = NaN or inf * -inf) and jumps at b = 0 (no derivative: 0
 * by convention, not log(0) = -inf). PyTorch and JAX take 0 there for b >= 0, and give -inf and NaN
 * respectively for b < 0. Bitwise, not ||: a branch on a broadcast operand kept GCC's loop scalar. */
#define POW_DB_IS_ZERO(a, y) (((y) == 0) | (((a) == 0) & ((y) == (y))))
/* y log(a), pow_tensor's db as a graph, 0 where POW_DB_IS_ZERO. There the log is taken of 1,
 * not of a: the graph's own gradient is then 0 as well, where y log(a) at a = 0 would pass
 * back 0 * log(0) and 0 / 0 (NaN) through the branch the where leaves out, and make the
 * Hessian's (b, a) block NaN against a finite (a, b) block. */
static tg_tensor *pow_log_share(tg_tape *tape, tg_tensor *y, tg_tensor *a)
{
    tg_tensor *zero = tg_ops__zeros_like(tape, y);
    tg_tensor *at_zero =
        tg_maximum(tape, tg_eq(tape, y, zero), GMUL(tg_eq(tape, a, zero), tg_eq(tape, y, y)));
    tg_tensor *safe_a = tg_where(tape, at_zero, tg_scalar(tape, (tg_dtype)y->dtype, 1), a);
    return tg_where(tape, at_zero, zero, GMUL(y, tg_log(tape, safe_a)));
}
/* y = a^b;  da += dy * b * a^(b-1) (0 where b = 0), db += dy * y * log(a) (0 where
 * POW_DB_IS_ZERO) */
BINARY_OP_STEPS(TG_INLINE, pow_tensor, POW_TENSOR, false, tg__pow(a, b),
                dy *tg_ops__pow_slope(a, b, b - 1), POW_DB_IS_ZERO(a, y) ? 0 : dy * y * LOG(a),
                GMUL(dy, pow_slope(tape, y, a, b)), GMUL(dy, pow_log_share(tape, y, a)))

/* y = (a < b), (a <= b), ... as 0 or 1; a NaN compares false, except in ne */
COMPARE_OP(lt, LT, false, a < b)
COMPARE_OP(le, LE, false, a <= b)
COMPARE_OP(gt, GT, false, a > b)
COMPARE_OP(ge, GE, false, a >= b)
COMPARE_OP(eq, EQ, true, a == b)
COMPARE_OP(ne, NE, true, a != b)

/* ---- where ------------------------------------------------------------------------------------
 * y = cond != 0 ? a : b over the broadcast of the three (its inputs: attr.r.ext->in[0..2]);
 * da += dy where cond holds, db += dy elsewhere, cond gets nothing. */

static tg_status where_shape(tg_tensor *y, char *msg, size_t size)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    int rank = 0;
    for (int k = 0; k < 3; k++)
        rank = in[k]->rank > rank ? in[k]->rank : rank;
    for (int i = 0; i < rank; i++) {
        size_t d[3], out = 1;
        bool ok = true;
        for (int k = 0; k < 3; k++) {
            int ik = in[k]->rank - rank + i;
            d[k] = ik >= 0 ? in[k]->shape[ik] : 1;
            if (d[k] != 1) {
                ok = ok && (out == 1 || out == d[k]);
                out = d[k];
            }
        }
        if (!ok) {
            char s[3][96];
            snprintf(msg, size,
                     "cond %s, a %s and b %s do not broadcast: axis %d has sizes %zu, %zu and %zu",
                     tg_ops__fmt_shape(s[0], sizeof s[0], in[0]),
                     tg_ops__fmt_shape(s[1], sizeof s[1], in[1]),
                     tg_ops__fmt_shape(s[2], sizeof s[2], in[2]), i - rank, d[0], d[1], d[2]);
            return TG_ESHAPE;
        }
        y->shape[i] = out;
    }
    y->rank = (uint8_t)rank;
    return TG_OK;
}

/* One flat loop of WHERE_EACH_IN, the offsets given as expressions of iy. */
#define WHERE_FLAT(lo, hi, IC, IA, IB, ...)                                                        \
    for (size_t iy = (lo); iy < (hi); iy++) {                                                      \
        const size_t ic = (IC), ia = (IA), ib = (IB);                                              \
        (void)ic, (void)ia, (void)ib;                                                              \
        __VA_ARGS__                                                                                \
    }

/* WHERE_EACH_IN's loop along the last axis: n elements from iy on, the inputs' offsets from off
 * with strides sc, sa and sb. */
#define WHERE_ROW(n, iy, off, sc, sa, sb, ...)                                                     \
    for (size_t j_ = 0; j_ < (n); j_++, iy++) {                                                    \
        const size_t ic = (off)[0] + j_ * (sc), ia = (off)[1] + j_ * (sa),                         \
                     ib = (off)[2] + j_ * (sb);                                                    \
        (void)ic, (void)ia, (void)ib;                                                              \
        __VA_ARGS__                                                                                \
    }

/* Runs its body for the output elements iy in [lo, hi) of where node y, in order, with ic, ia
 * and ib the offsets of its elements of cond, a and b: a flat loop when each input has the
 * output's elements or a single one, with the offsets spelled out for where(c, x, y),
 * where(c, x, 0) and where(c, 0, x), else an odometer over the output's axes started at lo (a
 * range may start and end inside a run of the last axis). The bodies load both sides before
 * they select, so that the flat loops vectorize (a load under a condition does not).
 * WHERE_EACH: all of them. */
#define WHERE_EACH_IN(y, in, lo, hi, ...)                                                          \
    do {                                                                                           \
        const size_t ny_ = (y)->numel, lo_ = (lo), hi_ = (hi);                                     \
        size_t step_[3]; /* 1: the input has y's elements; 0: it has one */                        \
        bool flat_ = true;                                                                         \
        for (int k_ = 0; k_ < 3; k_++) {                                                           \
            step_[k_] = (in)[k_]->numel == ny_;                                                    \
            flat_ = flat_ && (step_[k_] || (in)[k_]->numel == 1);                                  \
        }                                                                                          \
        if (flat_ && step_[0] && step_[1] && step_[2]) {                                           \
            WHERE_FLAT(lo_, hi_, iy, iy, iy, __VA_ARGS__)                                          \
        } else if (flat_ && step_[0] && step_[1]) {                                                \
            WHERE_FLAT(lo_, hi_, iy, iy, 0, __VA_ARGS__)                                           \
        } else if (flat_ && step_[0] && step_[2]) {                                                \
            WHERE_FLAT(lo_, hi_, iy, 0, iy, __VA_ARGS__)                                           \
        } else if (flat_) {                                                                        \
            WHERE_FLAT(lo_, hi_, iy *step_[0], iy *step_[1], iy *step_[2], __VA_ARGS__)            \
        } else if (lo_ < hi_) { /* rank >= 1 here: a 0-d output's inputs are single elements */    \
            size_t st_[3][TG_MAX_RANK], idx_[TG_MAX_RANK], off_[3] = {0, 0, 0}, rest_ = lo_;       \
            for (int k_ = 0; k_ < 3; k_++)                                                         \
                input_strides((in)[k_], (y), st_[k_]);                                             \
            const int last_ = (y)->rank - 1;                                                       \
            for (int d_ = last_; d_ >= 0; d_--) {                                                  \
                idx_[d_] = rest_ % (y)->shape[d_];                                                 \
                rest_ /= (y)->shape[d_];                                                           \
                for (int k_ = 0; k_ < 3; k_++)                                                     \
                    off_[k_] += idx_[d_] * st_[k_][d_];                                            \
            }                                                                                      \
            const size_t n_ = (y)->shape[last_], sc_ = st_[0][last_], sa_ = st_[1][last_],         \
                         sb_ = st_[2][last_];                                                      \
            /* all three along the last axis (broadcast along others only): its loop then has      \
             * constant strides, and vectorizes */                                                 \
            const bool rows_ = sc_ == 1 && sa_ == 1 && sb_ == 1;                                   \
            for (size_t iy = lo_; iy < hi_;) { /* the last axis a loop, the others an odometer */  \
                const size_t m_ = n_ - idx_[last_] < hi_ - iy ? n_ - idx_[last_] : hi_ - iy;       \
                if (rows_)                                                                         \
                    WHERE_ROW(m_, iy, off_, 1, 1, 1, __VA_ARGS__)                                  \
                else                                                                               \
                    WHERE_ROW(m_, iy, off_, sc_, sa_, sb_, __VA_ARGS__)                            \
                off_[0] += m_ * sc_, off_[1] += m_ * sa_, off_[2] += m_ * sb_;                     \
                if ((idx_[last_] += m_) < n_)                                                      \
                    break; /* the range ended inside a run */                                      \
                off_[0] -= n_ * sc_, off_[1] -= n_ * sa_, off_[2] -= n_ * sb_;                     \
                idx_[last_] = 0;                                                                   \
                for (int d_ = last_ - 1; d_ >= 0; d_--) {                                          \
                    for (int k_ = 0; k_ < 3; k_++)                                                 \
                        off_[k_] += st_[k_][d_];                                                   \
                    if (++idx_[d_] < (y)->shape[d_])                                               \
                        break;                                                                     \
                    for (int k_ = 0; k_ < 3; k_++)                                                 \
                        off_[k_] -= st_[k_][d_] * (y)->shape[d_];                                  \
                    idx_[d_] = 0;                                                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)
#define WHERE_EACH(y, in, ...) WHERE_EACH_IN(y, in, 0, (y)->numel, __VA_ARGS__)

/* The forward over output elements [lo, hi), for the pool (a tg_par_range context). */
TG_SIMD_CLONES static void where_forward_range(void *ctx, size_t lo, size_t hi)
{
    const tg_par_range *c = ctx;
    tg_tensor *const *in = c->y->attr.r.ext->in;
    DISPATCH(c->y->dtype, {
        /* restrict: y's buffer is its own, so B[0] need not be read again after each store */
        const T *restrict C = in[0]->data, *restrict A = in[1]->data, *restrict B = in[2]->data;
        T *restrict Y = c->out;
        WHERE_EACH_IN(c->y, in, lo, hi, const T a = A[ia], b = B[ib]; Y[iy] = C[ic] != 0 ? a : b;);
    });
}

static void where_forward(tg_tensor *y)
{
    tg_par_range ctx = {y, y->data};
    tg__parallel_for(y->numel, TG_PAR_GRAIN, where_forward_range, &ctx);
}

/* The VJP into a branch with the output's elements over output elements [lo, hi), for the pool
 * (a tg_par_range context: the branch's gradient): each output element adds into its own. */
TG_SIMD_CLONES static void where_da_range(void *ctx, size_t lo, size_t hi)
{
    const tg_par_range *c = ctx;
    tg_tensor *const *in = c->y->attr.r.ext->in;
    DISPATCH(c->y->dtype, {
        const T *restrict C = in[0]->data, *restrict DY = c->y->grad;
        T *restrict DA = c->out;
        WHERE_EACH_IN(c->y, in, lo, hi, const T d = DA[ia], g = DY[iy];
                      DA[ia] = C[ic] != 0 ? d + g : d;);
    });
}
TG_SIMD_CLONES static void where_db_range(void *ctx, size_t lo, size_t hi)
{
    const tg_par_range *c = ctx;
    tg_tensor *const *in = c->y->attr.r.ext->in;
    DISPATCH(c->y->dtype, {
        const T *restrict C = in[0]->data, *restrict DY = c->y->grad;
        T *restrict DB = c->out;
        WHERE_EACH_IN(c->y, in, lo, hi, const T d = DB[ib], g = DY[iy];
                      DB[ib] = C[ic] != 0 ? d : d + g;);
    });
}

/* A branch with the output's elements takes its gradient over the pool (where_da_range,
 * where_db_range). One of one element against a larger output (a scalar parameter,
 * where(c, x, 0)) gathers a term from every output element its side picks: a contiguous run of
 * terms (op_impl.h, TG_BLOCK_SUM), after its gradient so far, as binary_sum_run takes a broadcast
 * input's; one running sum stopped growing in f32 at 2^24 times its terms. Any other broadcast
 * branch adds element by element (WHERE_EACH), in order. Those two on this thread. */
#define PICKED_A(i) (C[sc * (i)] != 0 ? DY[i] : (T)0)
#define PICKED_B(i) (C[sc * (i)] != 0 ? (T)0 : DY[i])
static void where_vjp(tg_tape *tape, tg_tensor *y)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    void *da = tg_tape__grad_of(tape, in[1]);
    void *db = tg_tape__grad_of(tape, in[2]);
    const size_t ny = y->numel, sc = in[0]->numel == ny; /* cond: y's elements, or one */
    const bool runs = ny > 1 && (sc || in[0]->numel == 1);
    if (da && in[1]->numel == ny) {
        tg_par_range ctx = {y, da};
        tg__parallel_for(ny, TG_PAR_GRAIN, where_da_range, &ctx);
        da = NULL;
    }
    if (db && in[2]->numel == ny) {
        tg_par_range ctx = {y, db};
        tg__parallel_for(ny, TG_PAR_GRAIN, where_db_range, &ctx);
        db = NULL;
    }
    DISPATCH(y->dtype, {
        const T *restrict C = in[0]->data, *restrict DY = y->grad;
        if (da) {
            T *restrict DA = da;
            if (runs && in[1]->numel == 1)
                TG_BLOCK_SUM(T, 0, ny, DA[0], DA[0], PICKED_A, 16);
            else
                WHERE_EACH(y, in, const T d = DA[ia], g = DY[iy]; DA[ia] = C[ic] != 0 ? d + g : d;);
        }
        if (db) {
            T *restrict DB = db;
            if (runs && in[2]->numel == 1)
                TG_BLOCK_SUM(T, 0, ny, DB[0], DB[0], PICKED_B, 16);
            else
                WHERE_EACH(y, in, const T d = DB[ib], g = DY[iy]; DB[ib] = C[ic] != 0 ? d : d + g;);
        }
    });
}

/* The same as ops: da = sum_to(where(cond, dy, 0)), db = sum_to(where(cond, 0, dy)). Selecting
 * dy (rather than multiplying it by a mask) keeps an infinite dy out of the branch not taken,
 * as the in-place VJP does; both are linear in dy, with cond a constant of the derivative. */
static tg_status where_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *const *in = y->attr.r.ext->in;
    tg_tensor *zero = tg_scalar(tape, (tg_dtype)y->dtype, 0.0);
    if (in[1]->requires_grad)
        dx[1] = tg_ops__sum_to(tape, tg_where(tape, in[0], dy, zero), in[1]);
    if (in[2]->requires_grad)
        dx[2] = tg_ops__sum_to(tape, tg_where(tape, in[0], zero, dy), in[2]);
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__where = {
    .info = {.name = "where", .arity = 3, .attrs = TG_ATTR_NONE, .differentiable = true},
    .op = TG_OP_WHERE,
    .shape = where_shape,
    .forward = where_forward,
    .vjp = where_vjp,
    .vjp_graph = where_vjp_graph,
};

tg_tensor *tg_where(tg_tape *tape, tg_tensor *cond, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *const in[3] = {cond, a, b};
    return tg_tape__record_n(tape, &tg_op__where, in, 3, (tg_node_attr){.c = 0}, NULL, NULL);
}
