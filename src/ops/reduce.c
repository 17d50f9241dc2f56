/* reduce.c: reductions along one axis or over all elements (sum, mean, max, min, prod,
 * logsumexp), and
 * the ops that normalize along an axis (softmax, log_softmax). The input is seen as
 * (outer, n, inner) around the axis (TG_ALL_AXES: (1, numel, 1)), the output as
 * (outer, inner): n elements of a lane are inner apart. */
#include "ops/op_impl.h"

#include "tape/scratch.h"

#include <string.h>
#include <tgmath.h>

static tg_status reduce_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    int axis = y->attr.r.axis;
    bool keep = y->attr.r.keepdim;
    if (axis == TG_ALL_AXES) {
        y->rank = keep ? x->rank : 0;
        for (int i = 0; i < y->rank; i++)
            y->shape[i] = 1;
        return TG_OK;
    }
    if (axis < -x->rank || axis >= x->rank || x->rank == 0) {
        char s[96];
        snprintf(msg, size, "axis %d is out of range for %s (rank %d)", axis,
                 tg_ops__fmt_shape(s, sizeof s, x), x->rank);
        return TG_EINVAL;
    }
    if (axis < 0)
        axis += x->rank;
    y->attr.r.axis = axis;
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis)
            y->shape[r++] = x->shape[i];
        else if (keep)
            y->shape[r++] = 1;
    }
    y->rank = (uint8_t)r;
    return TG_OK;
}

/* max and min (and ops built on max) have no value over an empty axis. */
static tg_status reduce_nonempty_shape(tg_tensor *y, char *msg, size_t size)
{
    tg_status st = reduce_shape(y, msg, size);
    if (st != TG_OK)
        return st;
    const tg_tensor *x = y->in[0];
    size_t n = y->attr.r.axis == TG_ALL_AXES ? x->numel : x->shape[y->attr.r.axis];
    if (n == 0) {
        char s[96];
        snprintf(msg, size, "cannot reduce the empty %s of %s",
                 y->attr.r.axis == TG_ALL_AXES ? "tensor" : "axis",
                 tg_ops__fmt_shape(s, sizeof s, x));
        return TG_ESHAPE;
    }
    return TG_OK;
}

/* softmax and log_softmax keep the shape; the axis must exist. */
static tg_status axis_shape(tg_tensor *y, char *msg, size_t size)
{
    y->attr.r.keepdim = 1;
    tg_status st = reduce_shape(y, msg, size);
    if (st == TG_OK && y->attr.r.axis == TG_ALL_AXES) {
        snprintf(msg, size, "needs one axis, not TG_ALL_AXES");
        return TG_EINVAL;
    }
    tg_ops__copy_shape(y, y->in[0]);
    return st;
}

typedef struct axis_split {
    size_t outer, n, inner;
} axis_split;

/* How many lanes FOR_LANES_IN counts: outer when lanes are contiguous (inner 1), else inner
 * (each standing for the lanes of every outer index). */
static size_t split_lanes(axis_split s)
{
    return s.inner == 1 ? s.outer : s.inner;
}

static axis_split split_at(const tg_tensor *x, int axis)
{
    if (axis == TG_ALL_AXES)
        return (axis_split){1, x->numel, 1};
    axis_split s = {1, x->shape[axis], 1};
    for (int i = 0; i < axis; i++)
        s.outer *= x->shape[i];
    for (int i = axis + 1; i < x->rank; i++)
        s.inner *= x->shape[i];
    return s;
}

/* Runs its body for the (o, i) lanes of the split in [lo, hi) of the axis lanes are counted
 * along (split_lanes: o when inner is 1, else i, for every o), with xoff the offset of
 * x[o, 0, i], yoff that of y[o, i] and st the stride between the lane's elements (inner): they
 * are x[xoff + k * st] for k < n. Contiguous lanes (inner 1, the last axis) get the body with
 * st the constant 1, so that its loops over a lane vectorize. FOR_LANES: all of them. */
#define FOR_LANES_IN(s, lo, hi, ...)                                                               \
    if ((s).inner == 1)                                                                            \
        for (size_t o_ = (lo); o_ < (hi); o_++) {                                                  \
            const size_t xoff = o_ * (s).n, yoff = o_, st = 1;                                     \
            (void)xoff, (void)yoff, (void)st;                                                      \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    else                                                                                           \
        for (size_t o_ = 0; o_ < (s).outer; o_++)                                                  \
            for (size_t i_ = (lo); i_ < (hi); i_++) {                                              \
                const size_t xoff = o_ * (s).n * (s).inner + i_, yoff = o_ * (s).inner + i_;       \
                const size_t st = (s).inner;                                                       \
                (void)xoff, (void)yoff, (void)st;                                                  \
                __VA_ARGS__                                                                        \
            }
#define FOR_LANES(s, ...) FOR_LANES_IN(s, 0, split_lanes(s), __VA_ARGS__)

/* out = the sum of a lane's terms TERM(x[k]) for its n elements x[k] = X[xoff + k * st]
 * (LANE_SUM_AT: TERM(i) of the elements' offsets i = xoff + k * st, for terms of two arrays):
 * blocks of TG_PAR_GRAIN elements each summed from k = 0, and the block sums added in order, as
 * sum_all_parallel adds its blocks (so a vector summed over its one axis gives the bits of its
 * sum over all axes). A contiguous lane (st 1) is a contiguous run of terms (TG_BLOCK_SUM); a
 * strided one sums each block in order of k, as the lanes taken row by row do (ROWS_SUM), with
 * which it must agree. */
#define LANE_SUM_AT(T, xoff, st, n, out, TERM)                                                     \
    do {                                                                                           \
        if ((st) == 1) {                                                                           \
            TG_BLOCK_SUM(T, xoff, n, 0, out, TERM, 16);                                            \
            break;                                                                                 \
        }                                                                                          \
        T tot_ = 0;                                                                                \
        for (size_t b_ = 0; b_ < (n); b_ += TG_PAR_GRAIN) {                                        \
            const size_t e_ = b_ + TG_PAR_GRAIN < (n) ? b_ + TG_PAR_GRAIN : (n);                   \
            T acc_ = 0;                                                                            \
            for (size_t k_ = b_; k_ < e_; k_++)                                                    \
                acc_ += TERM((xoff) + k_ * (st));                                                  \
            tot_ = b_ == 0 ? acc_ : tot_ + acc_;                                                   \
        }                                                                                          \
        (out) = tot_;                                                                              \
    } while (0)
#define LANE_SUM(T, X, xoff, st, n, out, TERM)                                                     \
    do {                                                                                           \
        const T *X_ = (X);                                                                         \
        LANE_SUM_AT(T, xoff, st, n, out, TERM##_AT);                                               \
    } while (0)
#define LANE_TERM_ITSELF_AT(i) X_[i]
#define X_AT(i) X[i]

/* ---- lanes taken row by row -----------------------------------------------------------------
 * Along an axis with elements after it (inner > 1), a lane's elements are inner apart, so
 * walking one lane at a time reads a column: a cache line per element, and at power-of-two
 * strides all of a column's lines fall in a few cache sets (the VJP of a sum over axis 0 of
 * 1024 x 1024 f32 took 17 ms, 16 ns an element). There the ops below take the inner lanes of
 * one outer index together, row by row (k), each row's elements innermost and contiguous, with
 * a lane's running values (a sum, a maximum) in a row of their own. Every lane still sees its
 * elements in the same order, k ascending, with the same arithmetic, its sums in LANE_SUM's
 * blocks (ROWS_SUM): the same bits as lane by lane, and the loops over a row vectorize. Lanes
 * that are contiguous (inner 1) are read in order as they are. */
static bool by_rows(axis_split s)
{
    return s.inner > 1;
}

/* Scratch of `bytes` per lane of s from the tape's arena, for the ops that keep more than one
 * running value per lane when the lanes go by rows (the caller gives it back with
 * tg_tape__scratch_release); NULL when they do not, or when there is none: the caller then
 * goes lane by lane, which needs none. */
static void *row_scratch(tg_tape *tape, axis_split s, size_t bytes)
{
    return by_rows(s) ? tg_tape__alloc(tape, s.inner * bytes) : NULL;
}

/* B[i] = the pick (BETTER `>`: maximum, `<`: minimum) of each lane i < cnt of the block of X
 * whose rows are `stride` apart, and K[i] its row (K may be NULL): the first on ties, the first
 * NaN if any, as ARGBEST takes them lane by lane (a lane's pick stops moving once it is NaN).
 * n >= 1. */
#define ROWS_BEST(X, n, stride, cnt, B, K, BETTER)                                                 \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (cnt); i_++)                                                      \
            (B)[i_] = (X)[i_];                                                                     \
        if (K)                                                                                     \
            for (size_t i_ = 0; i_ < (cnt); i_++)                                                  \
                (K)[i_] = 0;                                                                       \
        for (size_t k_ = 1; k_ < (n); k_++)                                                        \
            for (size_t i_ = 0; i_ < (cnt); i_++) {                                                \
                const T v_ = (X)[k_ * (stride) + i_], b_ = (B)[i_];                                \
                if (b_ == b_ && (v_ BETTER b_ || v_ != v_)) {                                      \
                    (B)[i_] = v_;                                                                  \
                    if (K)                                                                         \
                        (K)[i_] = k_;                                                              \
                }                                                                                  \
            }                                                                                      \
    } while (0)

/* OUT[i] = the sum over rows k < n of TERM (an expression of k and i) for each lane i < cnt,
 * in LANE_SUM_AT's blocks: the first block's rows summed in order into OUT, each later block's
 * into P (a scratch row, needed only when n > TG_PAR_GRAIN: rows_sum_scratch) and then added to
 * OUT. */
#define ROWS_SUM(n, cnt, OUT, P, TERM)                                                             \
    do {                                                                                           \
        for (size_t i = 0; i < (cnt); i++)                                                         \
            (OUT)[i] = 0;                                                                          \
        for (size_t b_ = 0; b_ < (n); b_ += TG_PAR_GRAIN) {                                        \
            const size_t e_ = b_ + TG_PAR_GRAIN < (n) ? b_ + TG_PAR_GRAIN : (n);                   \
            T *acc_ = b_ == 0 ? (OUT) : (P);                                                       \
            for (size_t i = 0; b_ && i < (cnt); i++)                                               \
                acc_[i] = 0;                                                                       \
            for (size_t k = b_; k < e_; k++)                                                       \
                for (size_t i = 0; i < (cnt); i++)                                                 \
                    acc_[i] += (TERM);                                                             \
            for (size_t i = 0; b_ && i < (cnt); i++)                                               \
                (OUT)[i] = (OUT)[i] + acc_[i];                                                     \
        }                                                                                          \
    } while (0)

/* How many scratch rows ROWS_SUM needs for lanes of n elements: one past the first block. */
static size_t rows_sum_scratch(size_t n)
{
    return n > TG_PAR_GRAIN;
}

/* M[i] and L[i]: the shift and log-sum of each lane i < cnt (SHIFT_LOGSUM) of the block of X
 * whose rows are `stride` apart, with P a scratch row for ROWS_SUM. */
#define ROWS_SHIFT_LOGSUM(X, n, stride, cnt, M, L, P)                                              \
    do {                                                                                           \
        if ((n) == 0) {                                                                            \
            for (size_t i_ = 0; i_ < (cnt); i_++)                                                  \
                (M)[i_] = (T)-INFINITY, (L)[i_] = 0;                                               \
            break;                                                                                 \
        }                                                                                          \
        ROWS_BEST(X, n, stride, cnt, M, (size_t *)NULL, >);                                        \
        ROWS_SUM(n, cnt, L, P, EXP((X)[k * (stride) + i] - (M)[i]));                               \
        for (size_t i_ = 0; i_ < (cnt); i_++) /* a lane whose shift is not finite: 0 */            \
            (L)[i_] = isfinite((M)[i_]) ? LOG((L)[i_]) : 0;                                        \
    } while (0)

/* y = sum_k x[k];  dx[k] += dy.   mean: y = sum / n;  dx[k] += dy / n */
/* A sum over every element of a long tensor, over the pool: the partial sums of blocks of
 * TG_PAR_GRAIN elements, added in block order. The blocks depend on the length alone, so the
 * result is the same bits whatever the thread count. */
typedef struct sum_ctx {
    const tg_tensor *x;
    void *partial; /* one per block */
} sum_ctx;

static void sum_blocks(void *ctx, size_t lo, size_t hi)
{
    const sum_ctx *c = ctx;
    const size_t n = c->x->numel;
    DISPATCH(c->x->dtype, {
        const T *X = c->x->data;
        T *P = c->partial;
        for (size_t blk = lo; blk < hi; blk++) {
            size_t end = (blk + 1) * TG_PAR_GRAIN < n ? (blk + 1) * TG_PAR_GRAIN : n;
            TG_RUN_SUM(T, blk * TG_PAR_GRAIN, end, 0, P[blk], X_AT, 16);
        }
    });
}

/* false (nothing done) when the scratch for the partial sums cannot be had */
static bool sum_all_parallel(tg_tensor *y, bool mean)
{
    const tg_tensor *x = y->in[0];
    size_t blocks = (x->numel + TG_PAR_GRAIN - 1) / TG_PAR_GRAIN;
    sum_ctx c = {x, tg_tape__alloc(y->tape, blocks * tg__esize(x))};
    if (!c.partial)
        return false;
    tg__parallel_for(blocks, 1, sum_blocks, &c);
    DISPATCH(y->dtype, {
        const T *P = c.partial;
        T acc = 0;
        for (size_t blk = 0; blk < blocks; blk++)
            acc += P[blk];
        *(T *)y->data = mean ? acc / (T)x->numel : acc;
    });
    return true;
}

/* dx[k] += dy (mean: dy / n) for every k, over the pool */
typedef struct fill_ctx {
    const tg_tensor *y;
    void *dx;
    bool mean;
} fill_ctx;

static void fill_add_range(void *ctx, size_t lo, size_t hi)
{
    const fill_ctx *c = ctx;
    const tg_tensor *y = c->y;
    DISPATCH(y->dtype, {
        const T dy = c->mean ? *(const T *)y->grad / (T)y->in[0]->numel : *(const T *)y->grad;
        T *DX = c->dx;
        for (size_t k = lo; k < hi; k++)
            DX[k] += dy;
    });
}

static void sum_like_forward(tg_tensor *y, bool mean)
{
    if (y->attr.r.axis == TG_ALL_AXES) {
        const size_t n = y->in[0]->numel;
        if (TG_LIKELY(n < 2 * TG_PAR_GRAIN)) { /* one lane, no split: the blocks in turn */
            DISPATCH(y->dtype, {
                const T *X = y->in[0]->data;
                T acc;
                /* one block: LANE_SUM's sum without its block loop (23 instructions of W1's
                 * step, under callgrind) */
                if (TG_LIKELY(n <= TG_PAR_GRAIN))
                    TG_RUN_SUM(T, 0, n, 0, acc, X_AT, 16);
                else
                    LANE_SUM(T, X, 0, 1, n, acc, LANE_TERM_ITSELF);
                *(T *)y->data = mean ? acc / (T)n : acc;
            });
            return;
        }
        if (sum_all_parallel(y, mean))
            return;
    }
    axis_split s = split_at(y->in[0], y->attr.r.axis);
    tg_tape *tape = y->tape;
    const tg_arena mark = tg_tape__scratch_mark(tape);
    const size_t extra = rows_sum_scratch(s.n);
    void *rows = extra ? row_scratch(tape, s, extra * tg__esize(y)) : NULL;
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data;
        T *Y = y->data;
        if (by_rows(s) && (rows || !extra)) {
            for (size_t o = 0; o < s.outer; o++) {
                const T *restrict Xo = X + o * s.n * s.inner;
                T *restrict Yo = Y + o * s.inner;
                ROWS_SUM(s.n, s.inner, Yo, (T *)rows, Xo[k * s.inner + i]);
                if (mean)
                    for (size_t i = 0; i < s.inner; i++)
                        Yo[i] = Yo[i] / (T)s.n;
            }
        } else {
            FOR_LANES(s, {
                T acc;
                LANE_SUM(T, X, xoff, st, s.n, acc, LANE_TERM_ITSELF);
                Y[yoff] = mean ? acc / (T)s.n : acc;
            })
        }
    });
    tg_tape__scratch_release(tape, &mark);
}

static void sum_like_vjp(tg_tape *tape, tg_tensor *y, bool mean)
{
    if (y->attr.r.axis == TG_ALL_AXES && TG_LIKELY(y->in[0]->numel < 2 * TG_PAR_GRAIN)) {
        /* every element of dx gets dy: on a first touch stored (0 + dy), not zeroed first */
        bool fresh;
        void *dx = tg_ops__grad_of_fresh(tape, y->in[0], &fresh);
        if (!dx)
            return;
        const size_t n = y->in[0]->numel;
        DISPATCH(y->dtype, {
            const T dy = mean ? *(const T *)y->grad / (T)n : *(const T *)y->grad;
            T *DX = dx;
            if (fresh)
                for (size_t k = 0; k < n; k++)
                    DX[k] = 0 + dy;
            else
                for (size_t k = 0; k < n; k++)
                    DX[k] += dy;
        });
        return;
    }
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (!dx)
        return;
    if (TG_UNLIKELY(y->attr.r.axis == TG_ALL_AXES && y->in[0]->numel >= 2 * TG_PAR_GRAIN)) {
        fill_ctx ctx = {y, dx, mean};
        tg__parallel_for(y->in[0]->numel, TG_PAR_GRAIN, fill_add_range, &ctx);
        return;
    }
    axis_split s = split_at(y->in[0], y->attr.r.axis);
    if (by_rows(s)) {
        /* mean's division outside sum's loop: GCC computed it for every element, to select */
        DISPATCH(y->dtype, {
            for (size_t o = 0; o < s.outer; o++) {
                const T *restrict DY = (const T *)y->grad + o * s.inner;
                T *restrict DX = (T *)dx + o * s.n * s.inner;
                if (mean)
                    for (size_t k = 0; k < s.n; k++)
                        for (size_t i = 0; i < s.inner; i++)
                            DX[k * s.inner + i] += DY[i] / (T)s.n;
                else
                    for (size_t k = 0; k < s.n; k++)
                        for (size_t i = 0; i < s.inner; i++)
                            DX[k * s.inner + i] += DY[i];
            }
        });
        return;
    }
    DISPATCH(y->dtype, {
        const T *DY = y->grad;
        T *DX = dx;
        FOR_LANES(s, {
            const T dy = mean ? DY[yoff] / (T)s.n : DY[yoff];
            for (size_t k = 0; k < s.n; k++)
                DX[xoff + k * st] += dy;
        })
    });
}

static void sum_forward(tg_tensor *y)
{
    sum_like_forward(y, false);
}
static void sum_vjp(tg_tape *tape, tg_tensor *y)
{
    sum_like_vjp(tape, y, false);
}
static void mean_forward(tg_tensor *y)
{
    sum_like_forward(y, true);
}
static void mean_vjp(tg_tape *tape, tg_tensor *y)
{
    sum_like_vjp(tape, y, true);
}

/* Whether v takes the place of the running pick p (BETTER `>`: maximum, `<`: minimum): when it
 * is better or NaN. A NaN pick stays NaN (no v is better than it). Bitwise: masks, for vectors. */
#define TAKES(v, p, BETTER) (((v)BETTER(p)) | ((v) != (v)))

/* The index in the contiguous lane X[b], ..., X[b + n - 1] (n > TG_SUM_WAYS) of its pick, as
 * ARGBEST gives it. First the pick's value, from TG_SUM_WAYS running picks (every TG_SUM_WAYS-th
 * element each), picked from in order; then the first element equal to it (a zero of either
 * sign, as ARGBEST's first of ties), or the first NaN when it is NaN: any NaN of the lane ends
 * in its running pick, and from there in the value. The running picks are GCC's (and clang's)
 * 16-byte vectors, whose comparisons give masks: GCC leaves the selects of a plain loop
 * scalar, one element at a time (0.9 ns an element on Zen 4). */
/* clang-format off */
#define RUN_ARGBEST(X, b, n, out, BETTER)                                                          \
    do {                                                                                           \
        typedef T vec_ __attribute__((vector_size(16)));                                           \
        typedef __typeof__((vec_){0} == (vec_){0}) mask_;                                          \
        enum { PER_VEC_ = 16 / sizeof(T), VECS_ = TG_SUM_WAYS / PER_VEC_ };                        \
        const T *run_x_ = (X) + (b);                                                               \
        vec_ picks_[VECS_];                                                                        \
        memcpy(picks_, run_x_, sizeof picks_);                                                     \
        size_t at_ = TG_SUM_WAYS;                                                                  \
        for (; (n) - at_ >= TG_SUM_WAYS; at_ += TG_SUM_WAYS)                                       \
            _Pragma("GCC unroll 8") for (size_t j_ = 0; j_ < VECS_; j_++) {                        \
                vec_ v_;                                                                           \
                memcpy(&v_, run_x_ + at_ + j_ * PER_VEC_, sizeof v_);                              \
                const mask_ take_ = TAKES(v_, picks_[j_], BETTER);                                 \
                picks_[j_] = (vec_)(((mask_)v_ & take_) | ((mask_)picks_[j_] & ~take_));           \
            }                                                                                      \
        T way_[TG_SUM_WAYS];                                                                       \
        memcpy(way_, picks_, sizeof way_);                                                         \
        for (size_t w_ = 0; at_ < (n); at_++, w_++)                                                \
            if (TAKES(run_x_[at_], way_[w_], BETTER))                                              \
                way_[w_] = run_x_[at_];                                                            \
        T pick_ = way_[0];                                                                         \
        for (size_t w_ = 1; w_ < TG_SUM_WAYS; w_++)                                                \
            if (TAKES(way_[w_], pick_, BETTER))                                                    \
                pick_ = way_[w_];                                                                  \
        size_t k_ = 0;                                                                             \
        if (pick_ == pick_)                                                                        \
            while (run_x_[k_] != pick_)                                                            \
                k_++;                                                                              \
        else                                                                                       \
            while (run_x_[k_] == run_x_[k_])                                                       \
                k_++;                                                                              \
        (out) = k_;                                                                                \
    } while (0)
/* clang-format on */

/* The index along the lane of its maximum (BETTER `>`) or minimum (`<`): the first one on
 * ties, the first NaN if any (0 for an empty lane). A contiguous one longer than TG_SUM_WAYS as
 * RUN_ARGBEST finds it; else in order, one element at a time. */
#define ARGBEST(X, xoff, st, n, out, BETTER)                                                       \
    do {                                                                                           \
        size_t best_ = 0;                                                                          \
        if ((st) == 1 && (n) > TG_SUM_WAYS)                                                        \
            RUN_ARGBEST(X, xoff, n, best_, BETTER);                                                \
        else                                                                                       \
            for (size_t k_ = 1; k_ < (n); k_++) {                                                  \
                const T v_ = (X)[(xoff) + k_ * (st)], b_ = (X)[(xoff) + best_ * (st)];             \
                if (b_ != b_)                                                                      \
                    break;                                                                         \
                if (v_ BETTER b_ || v_ != v_)                                                      \
                    best_ = k_;                                                                    \
            }                                                                                      \
        (out) = best_;                                                                             \
    } while (0)
#define ARGMAX(X, xoff, st, n, out) ARGBEST(X, xoff, st, n, out, >)
#define ARGMIN(X, xoff, st, n, out) ARGBEST(X, xoff, st, n, out, <)

/* The row of each lane's pick, K[i], for the lanes of outer index o (ROWS_BEST's BETTER), with
 * B the picks themselves: scratch of s.inner lanes each. */
#define ROWS_PICK(X, s, o, K, B, BETTER)                                                           \
    ROWS_BEST((X) + (o) * (s).n * (s).inner, (s).n, (s).inner, (s).inner, B, K, BETTER)

/* y = max_k x[k] (min_k with ARGMIN, BETTER <);  dx[argmax] += dy (the first one on ties).
 * Compiled for each instruction set (TG_SIMD_CLONES): with AVX2's and AVX-512's selects, the
 * lanes taken by rows (ROWS_BEST) vectorize too (0.86 ns an element on Zen 4 before, 0.09). */
#define EXTREME_REDUCE(id, ARG, BETTER)                                                            \
    TG_SIMD_CLONES static void id##_forward(tg_tensor *y)                                          \
    {                                                                                              \
        axis_split s = split_at(y->in[0], y->attr.r.axis);                                         \
        DISPATCH(y->dtype, {                                                                       \
            const T *X = y->in[0]->data;                                                           \
            T *Y = y->data;                                                                        \
            if (by_rows(s)) { /* each lane's running pick in its place in y */                     \
                for (size_t o = 0; o < s.outer; o++)                                               \
                    ROWS_PICK(X, s, o, (size_t *)NULL, Y + o * s.inner, BETTER);                   \
                return;                                                                            \
            }                                                                                      \
            FOR_LANES(s, {                                                                         \
                size_t kbest;                                                                      \
                ARG(X, xoff, st, s.n, kbest);                                                      \
                Y[yoff] = X[xoff + kbest * st];                                                    \
            })                                                                                     \
        });                                                                                        \
    }                                                                                              \
    TG_SIMD_CLONES static void id##_vjp(tg_tape *tape, tg_tensor *y)                               \
    {                                                                                              \
        void *dx = tg_tape__grad_of(tape, y->in[0]);                                               \
        if (!dx)                                                                                   \
            return;                                                                                \
        axis_split s = split_at(y->in[0], y->attr.r.axis);                                         \
        const tg_arena mark = tg_tape__scratch_mark(tape);                                         \
        size_t *K = row_scratch(tape, s, sizeof *K + tg__esize(y));                                \
        DISPATCH(y->dtype, {                                                                       \
            const T *X = y->in[0]->data, *DY = y->grad;                                            \
            T *DX = dx;                                                                            \
            if (K) {                                                                               \
                for (size_t o = 0; o < s.outer; o++) {                                             \
                    ROWS_PICK(X, s, o, K, (T *)(K + s.inner), BETTER);                             \
                    for (size_t i = 0; i < s.inner; i++)                                           \
                        DX[(o * s.n + K[i]) * s.inner + i] += DY[o * s.inner + i];                 \
                }                                                                                  \
            } else {                                                                               \
                FOR_LANES(s, {                                                                     \
                    size_t kbest;                                                                  \
                    ARG(X, xoff, st, s.n, kbest);                                                  \
                    DX[xoff + kbest * st] += DY[yoff];                                             \
                })                                                                                 \
            }                                                                                      \
        });                                                                                        \
        tg_tape__scratch_release(tape, &mark);                                                     \
    }

EXTREME_REDUCE(max, ARGMAX, >)
EXTREME_REDUCE(min, ARGMIN, <)

/* y = prod_k x[k] (1 over an empty lane);  dx[k] += dy * prod_{j<k} x[j] * prod_{j>k} x[j]:
 * the product of the others from prefix and suffix products, with no division by x[k], so it
 * is exact with zeros. The suffix products of a lane go to scratch from the tape's arena. */
static void prod_forward(tg_tensor *y)
{
    axis_split s = split_at(y->in[0], y->attr.r.axis);
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data;
        T *Y = y->data;
        if (by_rows(s)) {
            for (size_t o = 0; o < s.outer; o++) {
                const T *restrict Xo = X + o * s.n * s.inner;
                T *restrict Yo = Y + o * s.inner;
                for (size_t i = 0; i < s.inner; i++)
                    Yo[i] = 1;
                for (size_t k = 0; k < s.n; k++)
                    for (size_t i = 0; i < s.inner; i++)
                        Yo[i] *= Xo[k * s.inner + i];
            }
            return;
        }
        FOR_LANES(s, {
            T acc = 1;
            for (size_t k = 0; k < s.n; k++)
                acc *= X[xoff + k * st];
            Y[yoff] = acc;
        })
    });
}

static void prod_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (!dx)
        return;
    axis_split s = split_at(y->in[0], y->attr.r.axis);
    /* the suffix products are given back at the end: taken at every backward pass, they
     * would grow the arena of a recording replayed and differentiated in a loop */
    const tg_arena mark = tg_tape__scratch_mark(tape);
    /* by rows: the suffix products of every row and a row of running products */
    void *rows = row_scratch(tape, s, (s.n + 1) * tg__esize(y));
    void *scratch = rows ? rows : tg_tape__alloc(tape, s.n * tg__esize(y));
    if (!scratch) {
        tg_tape__fail_oom(tape, "prod", s.n * tg__esize(y));
        return;
    }
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data, *DY = y->grad;
        T *DX = dx, *SUF = scratch;
        if (rows) {
            T *restrict P = SUF + s.n * s.inner; /* the running products: suffix, then prefix */
            for (size_t o = 0; o < s.outer; o++) {
                const T *restrict Xo = X + o * s.n * s.inner, *restrict dy = DY + o * s.inner;
                T *restrict DXo = DX + o * s.n * s.inner;
                for (size_t i = 0; i < s.inner; i++)
                    P[i] = 1;
                for (size_t k = s.n; k-- > 0;)
                    for (size_t i = 0; i < s.inner; i++) {
                        SUF[k * s.inner + i] = P[i];
                        P[i] *= Xo[k * s.inner + i];
                    }
                for (size_t i = 0; i < s.inner; i++)
                    P[i] = 1;
                for (size_t k = 0; k < s.n; k++)
                    for (size_t i = 0; i < s.inner; i++) {
                        DXo[k * s.inner + i] += dy[i] * (P[i] * SUF[k * s.inner + i]);
                        P[i] *= Xo[k * s.inner + i];
                    }
            }
        } else {
            FOR_LANES(s, {
                T suffix = 1; /* SUF[k] = prod_{j>k} x[j] */
                for (size_t k = s.n; k-- > 0;) {
                    SUF[k] = suffix;
                    suffix *= X[xoff + k * st];
                }
                const T dy = DY[yoff];
                T prefix = 1; /* prod_{j<k} x[j] */
                for (size_t k = 0; k < s.n; k++) {
                    DX[xoff + k * st] += dy * (prefix * SUF[k]);
                    prefix *= X[xoff + k * st];
                }
            })
        }
    });
    tg_tape__scratch_release(tape, &mark);
}

/* The log of the sum of exponentials along a lane in two parts, log sum_k e^x[k] = m + ls:
 * the shift m (the maximum, so no exp overflows) and ls = log sum_k e^(x[k] - m). Softmax and
 * friends use (x - m) - ls, never x - (m + ls): rounding m + ls costs ulps of |m|, which in
 * f32 at |x| ~ 1000 is an error of 3e-5. An infinite or NaN maximum is its own answer (ls = 0;
 * avoids Inf - Inf). */
#define SHIFT_LOGSUM(X, xoff, st, n, m, ls)                                                        \
    do {                                                                                           \
        size_t km_;                                                                                \
        ARGMAX(X, xoff, st, n, km_);                                                               \
        (m) = (n) ? (X)[(xoff) + km_ * (st)] : (T)-INFINITY;                                       \
        (ls) = 0;                                                                                  \
        if (isfinite(m)) {                                                                         \
            T s_;                                                                                  \
            const T m_ = (m);                                                                      \
            LANE_SUM(T, X, xoff, st, n, s_, SHIFTED_EXP);                                          \
            (ls) = LOG(s_);                                                                        \
        }                                                                                          \
    } while (0)

#define SHIFTED_EXP_AT(i) EXP(X_[i] - m_)

#define LSE(X, xoff, st, n, out)                                                                   \
    do {                                                                                           \
        T m__, ls__;                                                                               \
        SHIFT_LOGSUM(X, xoff, st, n, m__, ls__);                                                   \
        (out) = m__ + ls__;                                                                        \
    } while (0)

/* ---- lanes over the pool --------------------------------------------------------------------
 * logsumexp, softmax and log_softmax cost an exp or two per element, so their lanes are split
 * over the pool in pieces, each a range of the lanes FOR_LANES_IN counts (contiguous lanes: of
 * outer index; lanes taken by rows: of inner index, for every outer one, each piece with its
 * own slice of the scratch rows) of at least TG_PAR_GRAIN elements. Every lane is computed as
 * it is alone, in whichever piece, so the bits do not depend on the thread count (on 2 threads,
 * 1024 x 1024 f32 along either axis: see docs/performance.md). */
typedef struct lanes_job {
    const tg_tensor *y;
    void *dx; /* the VJPs' gradient of x */
    axis_split s;
    void *rows; /* the scratch rows, by lanes (row_scratch), or NULL */
    size_t pieces;
} lanes_job;

/* Pieces [p0, p1) of the job's lanes as a range [*lo, *hi) of split_lanes; the first count %
 * pieces pieces get one lane more (the pool's split of a range). */
static void piece_lanes(const lanes_job *j, size_t p0, size_t p1, size_t *lo, size_t *hi)
{
    const size_t count = split_lanes(j->s), q = count / j->pieces, rem = count % j->pieces;
    *lo = p0 * q + (p0 < rem ? p0 : rem);
    *hi = p1 * q + (p1 < rem ? p1 : rem);
}

/* Runs `piece` over the lanes of y's input along its axis (dx: the VJP's gradient of x, or
 * NULL), with `rows` scratch rows per lane (and ROWS_SUM's) from the tape's arena when they go by
 * rows: in pieces over the pool, at most one per thread and as many as the elements allow at
 * TG_PAR_GRAIN each (one, on this thread, for short tensors). */
static void run_lanes(tg_tape *tape, const tg_tensor *y, void *dx, size_t rows, tg_range_fn piece)
{
    lanes_job j = {.y = y, .dx = dx, .s = split_at(y->in[0], y->attr.r.axis)};
    const tg_arena mark = tg_tape__scratch_mark(tape);
    j.rows = row_scratch(tape, j.s, (rows + rows_sum_scratch(j.s.n)) * tg__esize(y));
    const size_t elems = j.s.outer * j.s.n * j.s.inner, lanes = split_lanes(j.s);
    const size_t threads = (size_t)tg_get_num_threads();
    size_t pieces = elems / TG_PAR_GRAIN;
    pieces = pieces < threads ? pieces : threads;
    pieces = pieces < lanes ? pieces : lanes;
    j.pieces = pieces ? pieces : 1;
    tg__parallel_for(j.pieces, 1, piece, &j);
    tg_tape__scratch_release(tape, &mark);
}

/* y = log sum_k e^x[k];  dx[k] += dy * e^(x[k] - y), with x[k] - y as (x[k] - m) - ls. It and
 * the softmaxes below are compiled for each instruction set (TG_SIMD_CLONES), so that their
 * loops of exps (tg__exp) run 4 or 8 wide, and so do the running sums of contiguous lanes
 * (TG_RUN_SUM). */
TG_SIMD_CLONES static void logsumexp_forward_piece(void *ctx, size_t p0, size_t p1)
{
    const lanes_job *j = ctx;
    const axis_split s = j->s;
    size_t lo, hi;
    piece_lanes(j, p0, p1, &lo, &hi);
    DISPATCH(j->y->dtype, {
        const T *X = j->y->in[0]->data;
        T *Y = j->y->data;
        if (j->rows) { /* each lane's shift in its place in y, its log-sum in the scratch row */
            T *L = (T *)j->rows + lo, *P = L + s.inner;
            for (size_t o = 0; o < s.outer; o++) {
                T *Yo = Y + o * s.inner + lo;
                ROWS_SHIFT_LOGSUM(X + o * s.n * s.inner + lo, s.n, s.inner, hi - lo, Yo, L, P);
                for (size_t i = 0; i < hi - lo; i++)
                    Yo[i] = Yo[i] + L[i];
            }
        } else {
            FOR_LANES_IN(s, lo, hi, { LSE(X, xoff, st, s.n, Y[yoff]); })
        }
    });
}

static void logsumexp_forward(tg_tensor *y)
{
    run_lanes(y->tape, y, NULL, 1, logsumexp_forward_piece);
}

TG_SIMD_CLONES static void logsumexp_vjp_piece(void *ctx, size_t p0, size_t p1)
{
    const lanes_job *j = ctx;
    const axis_split s = j->s;
    size_t lo, hi;
    piece_lanes(j, p0, p1, &lo, &hi);
    DISPATCH(j->y->dtype, {
        const T *X = j->y->in[0]->data, *DY = j->y->grad;
        T *DX = j->dx;
        if (j->rows) {
            T *M = (T *)j->rows + lo, *L = M + s.inner, *P = L + s.inner;
            for (size_t o = 0; o < s.outer; o++) {
                const size_t at = o * s.n * s.inner + lo;
                const T *dy = DY + o * s.inner + lo;
                ROWS_SHIFT_LOGSUM(X + at, s.n, s.inner, hi - lo, M, L, P);
                for (size_t k = 0; k < s.n; k++)
                    for (size_t i = 0; i < hi - lo; i++)
                        DX[at + k * s.inner + i] +=
                            dy[i] * EXP((X[at + k * s.inner + i] - M[i]) - L[i]);
            }
        } else {
            FOR_LANES_IN(s, lo, hi, {
                const T dy = DY[yoff];
                T m, ls;
                SHIFT_LOGSUM(X, xoff, st, s.n, m, ls);
                for (size_t k = 0; k < s.n; k++)
                    DX[xoff + k * st] += dy * EXP((X[xoff + k * st] - m) - ls);
            })
        }
    });
}

static void logsumexp_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (dx)
        run_lanes(tape, y, dx, 2, logsumexp_vjp_piece);
}

/* The forwards of softmax and log_softmax: y[k] = OUT, of x = x[k] and the lane's shift m and
 * log-sum ls (e^((x - m) - ls), (x - m) - ls), with the shifts and log-sums in scratch rows when
 * the lanes go by rows. */
#define SOFTMAX_FORWARD(id, OUT)                                                                   \
    TG_SIMD_CLONES static void id##_forward_piece(void *ctx, size_t p0, size_t p1)                 \
    {                                                                                              \
        const lanes_job *j = ctx;                                                                  \
        const axis_split s = j->s;                                                                 \
        size_t lo, hi;                                                                             \
        piece_lanes(j, p0, p1, &lo, &hi);                                                          \
        DISPATCH(j->y->dtype, {                                                                    \
            const T *X = j->y->in[0]->data;                                                        \
            T *Y = j->y->data;                                                                     \
            if (j->rows) {                                                                         \
                T *M = (T *)j->rows + lo, *L = M + s.inner, *P = L + s.inner;                      \
                for (size_t o = 0; o < s.outer; o++) {                                             \
                    const size_t at = o * s.n * s.inner + lo;                                      \
                    ROWS_SHIFT_LOGSUM(X + at, s.n, s.inner, hi - lo, M, L, P);                     \
                    for (size_t k = 0; k < s.n; k++)                                               \
                        for (size_t i = 0; i < hi - lo; i++) {                                     \
                            const T x = X[at + k * s.inner + i], m = M[i], ls = L[i];              \
                            Y[at + k * s.inner + i] = (OUT);                                       \
                        }                                                                          \
                }                                                                                  \
            } else {                                                                               \
                FOR_LANES_IN(s, lo, hi, {                                                          \
                    T m, ls;                                                                       \
                    SHIFT_LOGSUM(X, xoff, st, s.n, m, ls);                                         \
                    for (size_t k = 0; k < s.n; k++) {                                             \
                        const T x = X[xoff + k * st];                                              \
                        Y[xoff + k * st] = (OUT);                                                  \
                    }                                                                              \
                })                                                                                 \
            }                                                                                      \
        });                                                                                        \
    }                                                                                              \
    static void id##_forward(tg_tensor *y)                                                         \
    {                                                                                              \
        run_lanes(y->tape, y, NULL, 2, id##_forward_piece);                                        \
    }

/* The VJPs of softmax and log_softmax: each lane's sum over k of TERM (of the elements' offset
 * i: DY_Y_AT, DY_AT) in LANE_SUM_AT's blocks, then dx[k] += OUT (of dy, yk and that sum), by
 * rows with the sums in a scratch row. */
#define SOFTMAX_VJP(id, TERM, OUT)                                                                 \
    TG_SIMD_CLONES static void id##_vjp_piece(void *ctx, size_t p0, size_t p1)                     \
    {                                                                                              \
        const lanes_job *j = ctx;                                                                  \
        const axis_split s = j->s;                                                                 \
        size_t lo, hi;                                                                             \
        piece_lanes(j, p0, p1, &lo, &hi);                                                          \
        DISPATCH(j->y->dtype, {                                                                    \
            const T *Y = j->y->data, *DY = j->y->grad;                                             \
            T *DX = j->dx;                                                                         \
            if (j->rows) {                                                                         \
                T *S = (T *)j->rows + lo, *P = S + s.inner;                                        \
                for (size_t o = 0; o < s.outer; o++) {                                             \
                    const size_t at = o * s.n * s.inner + lo;                                      \
                    ROWS_SUM(s.n, hi - lo, S, P, TERM(at + k * s.inner + i));                      \
                    for (size_t k = 0; k < s.n; k++)                                               \
                        for (size_t i = 0; i < hi - lo; i++) {                                     \
                            const T dy = DY[at + k * s.inner + i], yk = Y[at + k * s.inner + i],   \
                                    sum = S[i];                                                    \
                            DX[at + k * s.inner + i] += (OUT);                                     \
                        }                                                                          \
                }                                                                                  \
            } else {                                                                               \
                FOR_LANES_IN(s, lo, hi, {                                                          \
                    T sum;                                                                         \
                    LANE_SUM_AT(T, xoff, st, s.n, sum, TERM);                                      \
                    for (size_t k = 0; k < s.n; k++) {                                             \
                        const T dy = DY[xoff + k * st], yk = Y[xoff + k * st];                     \
                        DX[xoff + k * st] += (OUT);                                                \
                    }                                                                              \
                })                                                                                 \
            }                                                                                      \
        });                                                                                        \
    }                                                                                              \
    static void id##_vjp(tg_tape *tape, tg_tensor *y)                                              \
    {                                                                                              \
        void *dx = tg_tape__grad_of(tape, y->in[0]);                                               \
        if (dx)                                                                                    \
            run_lanes(tape, y, dx, 1, id##_vjp_piece);                                             \
    }

/* y[k] = e^(x[k] - m) / sum_j e^(x[j] - m);  dx[k] += y[k] * (dy[k] - sum_j dy[j] y[j]) */
SOFTMAX_FORWARD(softmax, EXP((x - m) - ls))
#define DY_Y_AT(i) (DY[i] * Y[i])
/* clang-format off */
SOFTMAX_VJP(softmax, DY_Y_AT, yk * (dy - sum))
/* clang-format on */

/* y[k] = x[k] - log sum_j e^x[j];  dx[k] += dy[k] - e^y[k] * sum_j dy[j] */
SOFTMAX_FORWARD(log_softmax, (x - m) - ls)
#define DY_AT(i) DY[i]
SOFTMAX_VJP(log_softmax, DY_AT, dy - EXP(yk) * sum)

/* ---- descriptors and constructors -------------------------------------------------------- */

#define REDUCE_DESC(id, ENUM, ATTRS, shape_rule, vjp_graph_fn)                                     \
    const tg_op_desc tg_op__##id = {                                                               \
        .info = {.name = #id, .arity = 1, .attrs = TG_ATTR_##ATTRS, .differentiable = true},       \
        .op = TG_OP_##ENUM,                                                                        \
        .shape = shape_rule,                                                                       \
        .forward = id##_forward,                                                                   \
        .vjp = id##_vjp,                                                                           \
        .vjp_graph = vjp_graph_fn,                                                                 \
    };

/* ---- differentiable VJPs (tg_grad_graph) ---------------------------------------------------
 * The VJPs above once more, written with ops so that the gradient is itself recorded on the
 * tape (op_desc.h, tg_vjp_graph_fn). Each follows its in-place VJP's arithmetic where it can,
 * so the two agree to rounding (mostly bit for bit). */

/* dx = dy spread back over the reduced axis (or every axis) */
static tg_status sum_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    dx[0] = tg_ops__unreduce(tape, dy, y);
    return tg_tape_status(tape);
}

/* The length of y's lanes: the size of the reduced axis, or every element. */
static size_t lane_length(const tg_tensor *y)
{
    const tg_tensor *x = y->in[0];
    return y->attr.r.axis == TG_ALL_AXES ? x->numel : x->shape[y->attr.r.axis];
}

/* dx = unreduce(dy / n), dy divided by n as the in-place VJP divides it */
static tg_status mean_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *n = tg_scalar(tape, (tg_dtype)y->dtype, (double)lane_length(y));
    dx[0] = tg_ops__unreduce(tape, GDIV(dy, n), y);
    return tg_tape_status(tape);
}

/* A constant of x's shape: 1 at each lane's first maximum (minimum), the element the in-place
 * VJP gives dy to, 0 elsewhere. Piecewise constant in x, so it is recorded as a constant: its
 * derivative is zero (the max is locally the element it picks). */
static tg_tensor *pick_mask(tg_tape *tape, const tg_tensor *y, bool is_max)
{
    const tg_tensor *x = y->in[0];
    void *m = tg_tape__scratch(tape, tg__nbytes(x), is_max ? "max" : "min");
    if (!m)
        return NULL;
    memset(m, 0, tg__nbytes(x));
    axis_split s = split_at(x, y->attr.r.axis);
    const tg_arena mark = tg_tape__scratch_mark(tape); /* after m, which the constant keeps */
    size_t *K = row_scratch(tape, s, sizeof *K + tg__esize(x));
    DISPATCH(x->dtype, {
        const T *X = x->data;
        T *M = m;
        if (K) {
            for (size_t o = 0; o < s.outer; o++) {
                if (is_max)
                    ROWS_PICK(X, s, o, K, (T *)(K + s.inner), >);
                else
                    ROWS_PICK(X, s, o, K, (T *)(K + s.inner), <);
                for (size_t i = 0; i < s.inner; i++)
                    M[(o * s.n + K[i]) * s.inner + i] = 1;
            }
        } else {
            FOR_LANES(s, {
                size_t k;
                if (is_max)
                    ARGMAX(X, xoff, st, s.n, k);
                else
                    ARGMIN(X, xoff, st, s.n, k);
                M[xoff + k * st] = 1;
            })
        }
    });
    tg_tape__scratch_release(tape, &mark);
    return tg_ops__constant_like(tape, x, m);
}

/* dx = where(mask, unreduce(dy), 0): dy at each lane's pick, selected rather than multiplied
 * by the mask, so that an infinite dy leaves the other elements 0, as in the in-place VJP */
static tg_tensor *to_pick(tg_tape *tape, tg_tensor *y, tg_tensor *dy, bool is_max)
{
    return tg_where(tape, pick_mask(tape, y, is_max), tg_ops__unreduce(tape, dy, y),
                    tg_scalar(tape, (tg_dtype)y->dtype, 0.0));
}

static tg_status max_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    dx[0] = to_pick(tape, y, dy, true);
    return tg_tape_status(tape);
}

static tg_status min_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    dx[0] = to_pick(tape, y, dy, false);
    return tg_tape_status(tape);
}

/* softmax of x along y's reduced axis (over every element for TG_ALL_AXES), of x's shape */
static tg_tensor *softmax_along(tg_tape *tape, const tg_tensor *y)
{
    tg_tensor *x = y->in[0];
    if (y->attr.r.axis != TG_ALL_AXES)
        return tg_softmax(tape, x, y->attr.r.axis);
    const size_t n = x->numel;
    tg_tensor *p = tg_softmax(tape, tg_reshape(tape, x, 1, &n), 0);
    return tg_reshape(tape, p, x->rank, x->shape);
}

/* dx = unreduce(dy) * softmax(x): e^(x - y) as the forward's (x - m) - ls, without the
 * rounding of m + ls; its own derivative is softmax's (diag(p) - p p^T, times dy) */
static tg_status logsumexp_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    if (y->in[0]->numel == 0)
        dx[0] = tg_ops__zeros_like(tape, y->in[0]);
    else
        dx[0] = GMUL(tg_ops__unreduce(tape, dy, y), softmax_along(tape, y));
    return tg_tape_status(tape);
}

/* prod: the product of the other elements of each lane, exactly (no division, so zeros are no
 * special case), as ops: the exclusive prefix products times the exclusive suffix products,
 * each by a scan of ceil(log2 n) doubling steps (p[k] *= p[k - d] for d = 1, 2, 4, ..., the
 * shifted lane made of a slice and a block of ones). Every step is a slice, a concat and a
 * product, so the result is a polynomial of x recorded with differentiable ops, and its own
 * derivatives (d/dx_j of prod_{i != k} x_i = prod_{i != j,k} x_i, also at zeros) are exact to
 * any order. Cost O(numel log n) per derivative; the in-place VJP's is O(numel). */

/* lanes (outer, n, inner)[:, from:to) */
static tg_tensor *lane_slice(tg_tape *tape, tg_tensor *t, size_t from, size_t to)
{
    return tg_slice(tape, t, 1, (ptrdiff_t)from, (ptrdiff_t)to, 1);
}

/* concat(p, q) along the lanes */
static tg_tensor *lane_join(tg_tape *tape, tg_tensor *p, tg_tensor *q)
{
    tg_tensor *const parts[2] = {p, q};
    return p && q ? tg_concat(tape, parts, 2, 1) : NULL;
}

static tg_tensor *prod_of_others(tg_tape *tape, const tg_tensor *y)
{
    tg_tensor *x = y->in[0];
    const axis_split s = split_at(x, y->attr.r.axis);
    const size_t shape3[3] = {s.outer, s.n, s.inner};
    const size_t n = s.n;
    void *one = tg_tape__scratch(tape, tg__nbytes(x), "prod");
    if (!one)
        return NULL;
    DISPATCH(x->dtype, {
        T *O = one;
        for (size_t i = 0; i < x->numel; i++)
            O[i] = 1;
    });
    tg_tensor *ones = tg_constant(tape, (tg_dtype)x->dtype, 3, shape3, one);
    if (n == 1)
        return tg_reshape(tape, ones, x->rank, x->shape);
    tg_tensor *x3 = tg_reshape(tape, x, 3, shape3);
    /* pre[k] = x[k-1] (pre[0] = 1), suf[k] = x[k+1] (suf[n-1] = 1) */
    tg_tensor *pre = lane_join(tape, lane_slice(tape, ones, 0, 1), lane_slice(tape, x3, 0, n - 1));
    tg_tensor *suf = lane_join(tape, lane_slice(tape, x3, 1, n), lane_slice(tape, ones, 0, 1));
    /* after the step of d: pre[k] = prod_{k-2d <= j < k} x[j], suf likewise on the other side */
    for (size_t d = 1; d < n && pre && suf; d *= 2) {
        pre = GMUL(pre,
                   lane_join(tape, lane_slice(tape, ones, 0, d), lane_slice(tape, pre, 0, n - d)));
        suf = GMUL(suf, lane_join(tape, lane_slice(tape, suf, d, n), lane_slice(tape, ones, 0, d)));
    }
    return tg_reshape(tape, GMUL(pre, suf), x->rank, x->shape);
}

/* dx = unreduce(dy) * (the product of the others) */
static tg_status prod_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    if (y->in[0]->numel == 0)
        dx[0] = tg_ops__zeros_like(tape, y->in[0]);
    else
        dx[0] = GMUL(tg_ops__unreduce(tape, dy, y), prod_of_others(tape, y));
    return tg_tape_status(tape);
}

/* dx = y * (dy - sum(dy * y)) along the axis; y carries x's dependence to the next order */
static tg_status softmax_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    dx[0] = GMUL(y, GSUB(dy, tg_sum(tape, GMUL(dy, y), y->attr.r.axis, true)));
    return tg_tape_status(tape);
}

/* dx = dy - e^y * sum(dy) along the axis, e^y recorded as softmax(x) (the same values, bit for
 * bit: both are e^((x - m) - ls)), so the next order needs softmax's VJP rather than exp's */
static tg_status log_softmax_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *p = tg_softmax(tape, y->in[0], y->attr.r.axis);
    dx[0] = GSUB(dy, GMUL(p, tg_sum(tape, dy, y->attr.r.axis, true)));
    return tg_tape_status(tape);
}

REDUCE_DESC(sum, SUM, REDUCE, reduce_shape, sum_vjp_graph)
REDUCE_DESC(mean, MEAN, REDUCE, reduce_shape, mean_vjp_graph)
REDUCE_DESC(max, MAX, REDUCE, reduce_nonempty_shape, max_vjp_graph)
REDUCE_DESC(logsumexp, LOGSUMEXP, REDUCE, reduce_shape, logsumexp_vjp_graph)
REDUCE_DESC(min, MIN, REDUCE, reduce_nonempty_shape, min_vjp_graph)
REDUCE_DESC(prod, PROD, REDUCE, reduce_shape, prod_vjp_graph)
REDUCE_DESC(softmax, SOFTMAX, AXIS, axis_shape, softmax_vjp_graph)
REDUCE_DESC(log_softmax, LOG_SOFTMAX, AXIS, axis_shape, log_softmax_vjp_graph)

TG_INLINE tg_tensor *along(tg_tape *tape, const tg_op_desc *d, tg_tensor *x, int axis, bool keepdim)
{
    const tg_node_attr attr = {.r = {.axis = axis, .keepdim = keepdim}};
    return tg_tape__record(tape, d, x, NULL, attr);
}

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__sum, x, axis, keepdim);
}
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__mean, x, axis, keepdim);
}
tg_tensor *tg_max(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__max, x, axis, keepdim);
}
tg_tensor *tg_logsumexp(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__logsumexp, x, axis, keepdim);
}
tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return along(tape, &tg_op__softmax, x, axis, true);
}
tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return along(tape, &tg_op__log_softmax, x, axis, true);
}
tg_tensor *tg_min(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__min, x, axis, keepdim);
}
tg_tensor *tg_prod(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, &tg_op__prod, x, axis, keepdim);
}
