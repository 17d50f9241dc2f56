/* op_impl.h: what the op families (unary.c, binary.c, reduce.c, shape.c, linalg.c) share:
 * dtype dispatch, the split of long loops over the thread pool, shape-rule helpers, and the
 * way constructors record through their descriptor. docs/adding-an-op.md walks through an op.
 *
 * Every op is one block in its family file: a comment with its math, then its shape rule,
 * forward and VJP side by side, then its descriptor (const tg_op_desc tg_op__NAME) and its
 * constructor. VJP locals follow the math: x (input value), y (output value), dy (output
 * gradient), dx (input gradient); each VJP ADDS into its inputs' gradients (or, writing all of
 * one on its first touch, stores into it: tg_ops__grad_of_fresh). */
#ifndef TAPEGRAD_OP_IMPL_H
#define TAPEGRAD_OP_IMPL_H

#include "tape/record.h"

#include "core/detmath.h"
#include "core/pool.h"

#include <stdio.h>

/* Runs its body with T = float or T = double, by the dtype. With <tgmath.h>, exp(x) and the
 * like pick expf or exp by the type of x, so one expression serves both. */
#define DISPATCH(dtype, ...)                                                                       \
    do {                                                                                           \
        if ((dtype) == TG_F32) {                                                                   \
            typedef float T;                                                                       \
            __VA_ARGS__                                                                            \
        } else {                                                                                   \
            typedef double T;                                                                      \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

/* e^x for x of type T, float or double: the library's own (tg__exp, core/detmath.h), which
 * vectorizes where libm's exp is a call per element; f32 rounds its f64 result. */
TG_DETMATH_INLINE float tg__exp_f32(float x)
{
    return (float)tg__exp(x);
}
#define EXP(x) _Generic((x), float : tg__exp_f32, default : tg__exp)(x)
/* log(x) and log1p(x) likewise (tg__log, tg__log1p). */
TG_DETMATH_INLINE float tg__log_f32(float x)
{
    return (float)tg__log(x);
}
TG_DETMATH_INLINE float tg__log1p_f32(float x)
{
    return (float)tg__log1p(x);
}
#define LOG(x) _Generic((x), float : tg__log_f32, default : tg__log)(x)
#define LOG1P(x) _Generic((x), float : tg__log1p_f32, default : tg__log1p)(x)

/* The magnitude from which every value of dtype dt is an even integer (2^24 in f32, 2^53 in f64):
 * from there c - 1, odd, rounds to an even number, and x^(c-1) loses the sign it has for x < 0,
 * which pow's gradients put back (tg_ops__pow_slope in place, a factor of -1 where x < 0 in the
 * differentiable VJPs). */
static inline double tg_ops__even_from(tg_dtype dt)
{
    return dt == TG_F32 ? 0x1p24 : 0x1p53;
}

/* c x^(c-1), the slope of x^c (pow's, and pow_tensor's in its base), and 0 where c = 0: x^0 = 1
 * has slope 0 everywhere, also at x = 0, where c x^(c-1) would be 0 * inf = NaN. c_1 is c - 1 as
 * the op's type computes it (in f32 arithmetic for f32, as the differentiable VJP's pow node
 * rounds it). x^(c-1) is computed before the select, not under it: there its table loads would be
 * masked gathers, which GCC does not emulate, and the loops would stay scalar. Where c - 1 rounded
 * (tg_ops__even_from), x's sign bit goes back on x^(c-1) (-0 and -inf too; not for c infinite,
 * which is no odd integer). */
TG_DETMATH_INLINE double tg_ops__pow_slope(double x, double c, double c_1)
{
    const double p = tg__pow(x, c_1);
    /* c - 1 is exact in f64 below tg_ops__even_from(TG_F64); f32 rounds it from 2^24 */
    const bool rounded = (fabs(c) >= tg_ops__even_from(TG_F64)) | (c_1 != c - 1);
    const uint64_t huge = (uint64_t)(rounded & (fabs(c) < INFINITY)) << 63;
    uint64_t pb, xb;
    memcpy(&pb, &p, sizeof pb);
    memcpy(&xb, &x, sizeof xb);
    pb ^= xb & huge;
    double q;
    memcpy(&q, &pb, sizeof q);
    return c == 0 ? 0 : c * q;
}

/* Constructors and the loop skeletons their op instantiates are inlined into each op's own
 * functions, so that the descriptor, the element function and the dtype are constants there
 * (the recording path folds, the element loops vectorize). */
#define TG_INLINE static inline __attribute__((always_inline))

/* ---- threads ----------------------------------------------------------------------------
 * Long elementwise loops (and sums over all elements) are split over the pool by ranges of
 * elements. A range is at least TG_PAR_GRAIN elements: handing a loop to the pool costs a few
 * microseconds of wake-up and join, which the cheapest op (an add, bound by memory) recovers
 * only over some tens of thousands of elements; a loop shorter than two grains runs on the
 * calling thread without any hand-off. Elementwise results do not depend on the split. */
#define TG_PAR_GRAIN ((size_t)1 << 15)

/* ---- sums -------------------------------------------------------------------------------
 * A contiguous run of terms (a lane along the last axis, all elements, the terms a broadcast
 * input's gradient gathers from a row) is summed in one order, on every machine: TG_SUM_WAYS
 * running sums, the j-th over the terms j, j + TG_SUM_WAYS, ..., added in order of j; a run
 * longer than TG_PAR_GRAIN in blocks of that length, their sums added in order. One running
 * sum waits an addition's latency for each term (0.8 ns an element on Zen 4, a tenth of the
 * core's throughput), and in f32 stops growing at 2^24 times its terms; independent ones
 * vectorize at any width and keep that many additions in flight, and each sees the same terms
 * in the same order whatever the width, so the bits are the same everywhere. */
#define TG_SUM_WAYS 16

/* out = first + TERM(i) for i in [b, e), a contiguous run within one block: `first` goes ahead
 * of the first running sum's terms. A run of up to TG_SUM_WAYS terms gives the bits of the
 * plain running sum from `first` (each later running sum is +0, and a sum from +0 is never -0),
 * which is what it runs: a small network's loss, a softmax over ten classes, pay nothing for
 * the ways. UNROLL (1 to TG_SUM_WAYS) is how far the loop over the running sums is written out:
 * in full, GCC keeps them in registers (a sum along the rows of 1024 x 1024 f32, 0.06 ns an
 * element, against 0.19 in memory), for a copy of TERM per running sum. */
#define TG_PRAGMA(x) _Pragma(#x)
/* (clang-format would join the unrolled loop's body to its pragma) */
/* clang-format off */
#define TG_RUN_SUM(T, b, e, first, out, TERM, UNROLL)                                              \
    do {                                                                                           \
        T run_ = (first);                                                                          \
        size_t at_ = (b);                                                                          \
        const size_t end_ = (e);                                                                   \
        if (end_ - at_ > TG_SUM_WAYS) {                                                            \
            T ways_[TG_SUM_WAYS] = {run_};                                                         \
            for (; end_ - at_ >= TG_SUM_WAYS; at_ += TG_SUM_WAYS)                                  \
                TG_PRAGMA(GCC unroll UNROLL) for (size_t w_ = 0; w_ < TG_SUM_WAYS; w_++)           \
                    ways_[w_] += TERM(at_ + w_);                                                   \
            for (size_t w_ = 0; at_ < end_; at_++, w_++)                                           \
                ways_[w_] += TERM(at_);                                                            \
            run_ = ways_[0];                                                                       \
            for (size_t w_ = 1; w_ < TG_SUM_WAYS; w_++)                                            \
                run_ += ways_[w_];                                                                 \
        } else {                                                                                   \
            for (; at_ < end_; at_++)                                                              \
                run_ += TERM(at_);                                                                 \
        }                                                                                          \
        (out) = run_;                                                                              \
    } while (0)
/* clang-format on */

/* out = first + TERM(i) for i in [b, b + n), a contiguous run of any length: in blocks of
 * TG_PAR_GRAIN (those sum_all_parallel hands the pool), `first` ahead of the first block's
 * terms, the blocks' sums added in order; UNROLL as for TG_RUN_SUM. */
#define TG_BLOCK_SUM(T, b, n, first, out, TERM, UNROLL)                                            \
    do {                                                                                           \
        T tot_ = (first);                                                                          \
        const size_t count_ = (n);                                                                 \
        for (size_t blk_ = 0; blk_ < count_; blk_ += TG_PAR_GRAIN) {                               \
            const size_t e_ = count_ - blk_ > TG_PAR_GRAIN ? blk_ + TG_PAR_GRAIN : count_;         \
            T part_;                                                                               \
            TG_RUN_SUM(T, (b) + blk_, (b) + e_, blk_ == 0 ? (first) : 0, part_, TERM, UNROLL);     \
            tot_ = blk_ == 0 ? part_ : tot_ + part_;                                               \
        }                                                                                          \
        (out) = tot_;                                                                              \
    } while (0)

/* At most this many elements, an elementwise op's forward and VJP run their loop right where
 * they are, with no call into the loop functions built for many elements (whose per-call set-up
 * outweighs a few elements' arithmetic): the tiny layers of a small network. */
#define TG_FEW 4

/* Functions that run a few elements in place (the elementwise VJPs, the tiny matmuls) are
 * compiled without the loop vectorizer: for at most a few elements its run-time checks for
 * overlap and trip count cost more than the loops themselves. Their loops over many elements
 * live in functions of their own, vectorized as usual. (Not the constructors of the unary ops,
 * whose forward is inlined: there, two f64 elements share one vector pass of sigmoid's math.) */
#if defined(__GNUC__) && !defined(__clang__) /* GCC's vectorizer; clang lacks the attribute */
#define TG_FEW_NO_VEC __attribute__((optimize("no-tree-vectorize")))
#else
#define TG_FEW_NO_VEC
#endif

/* What a range of a loop over the pool works on: the node, and the buffer it writes, the
 * node's values (a forward) or the gradient of one of its inputs (a VJP). */
typedef struct tg_par_range {
    const tg_tensor *y;
    void *out;
} tg_par_range;

/* tg_tape__grad_of for a VJP that writes every element of x's gradient (unary.c's): on a
 * node's first touch in this pass (*fresh true) the buffer is NOT zeroed, and the caller
 * stores 0 + its share in each element (the same bits as zeroing then adding, -0 included,
 * without the memset and the reads); otherwise (*fresh false) it adds as usual. */
static inline void *tg_ops__grad_of_fresh(tg_tape *tape, tg_tensor *x, bool *fresh)
{
    *fresh = false;
    if (x->requires_grad && x->tape != NULL && x->rank != 0 && x->grad_pass != tape->base.pass) {
        if (!x->grad && !(x->grad = tg_tape__alloc(tape, x->numel * tg__esize(x))))
            return tg_tape__grad_first(tape, x); /* reports ENOMEM */
        x->grad_pass = tape->base.pass;
        *fresh = true;
        return x->grad;
    }
    return tg_tape__grad_of(tape, x);
}

/* dst[i] += src[i] for n elements of dtype dt, on the calling thread: a row at a time, for
 * the VJPs that pass dy on to dx unchanged by rows (slice's picks, the rows take and index_add
 * move, concat's and stack's blocks), from inside their own ranges over the pool. */
static inline void tg_ops__add_row(tg_dtype dt, void *dst, const void *src, size_t n)
{
    DISPATCH(dt, {
        T *D = dst;
        const T *S = src;
        for (size_t i = 0; i < n; i++)
            D[i] += S[i];
    });
}

/* What tg_ops__add_into hands the pool. */
typedef struct tg_add_into_job {
    tg_dtype dt;
    void *dst;
    const void *src;
} tg_add_into_job;

static inline void tg_ops__add_into_range(void *ctx, size_t b, size_t e)
{
    const tg_add_into_job *jb = ctx;
    const size_t es = jb->dt == TG_F32 ? sizeof(float) : sizeof(double);
    tg_ops__add_row(jb->dt, (char *)jb->dst + b * es, (const char *)jb->src + b * es, e - b);
}

/* tg_ops__add_row over the pool when long, as the binary add's VJP (elementwise: the same
 * bits however split): the VJPs that pass dy on to dx whole (reshape, index_add's x, an input
 * of concat or stack when nothing but sizes 1 precede the axis). */
static inline void tg_ops__add_into(tg_dtype dt, void *dst, const void *src, size_t n)
{
    tg_add_into_job jb = {dt, dst, src};
    tg__parallel_for(n, TG_PAR_GRAIN, tg_ops__add_into_range, &jb);
}

/* ---- shape rules ------------------------------------------------------------------------- */

static inline char *tg_ops__fmt_shape(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, t->rank, t->shape);
}

static inline void tg_ops__copy_shape(tg_tensor *y, const tg_tensor *x)
{
    y->rank = x->rank;
    for (int i = 0; i < x->rank; i++)
        y->shape[i] = x->shape[i];
}

/* The shape rule of ops whose output has their (first) input's shape. */
tg_status tg_ops__same_shape(tg_tensor *y, char *msg, size_t size);

/* ---- what the vjp_graph functions share (grad_graph.c) ------------------------------------ */

/* g (a gradient of a broadcast result) summed down to like's shape: over the leading axes
 * like lacks and the axes where like has 1; g itself when the shapes agree. NULL for NULL. */
tg_tensor *tg_ops__sum_to(tg_tape *tape, tg_tensor *g, const tg_tensor *like);
/* g, of the shape of reduction y (attr.r: an axis or TG_ALL_AXES, keepdim), spread back to the
 * shape of y's input: reshaped to keep the reduced axes as 1, then broadcast (each element of
 * g repeated along them). */
tg_tensor *tg_ops__unreduce(tg_tape *tape, tg_tensor *g, const tg_tensor *y);
/* A constant of like's dtype and shape holding data (numel elements of that dtype). */
tg_tensor *tg_ops__constant_like(tg_tape *tape, const tg_tensor *like, const void *data);
/* A constant zero of like's dtype and shape, written in place (shape.c). */
tg_tensor *tg_ops__zeros_like(tg_tape *tape, const tg_tensor *like);

/* Shorthands for the formulas of vjp_graph functions, which have `tape` in scope: a
 * derivative reads as its math, GMUL(dy, GCOS(x)). Each records one op (NULL propagates: an
 * op given NULL returns NULL, and the tape keeps the first error). */
#define GADD(p, q) tg_add(tape, (p), (q))
#define GSUB(p, q) tg_sub(tape, (p), (q))
#define GMUL(p, q) tg_mul(tape, (p), (q))
#define GDIV(p, q) tg_div(tape, (p), (q))
#define GNEG(p) tg_neg(tape, (p))
#define GSCALE(p, c) tg_scale(tape, (p), (c))
#define GADDC(p, c) tg_add_scalar(tape, (p), (c))

#endif
