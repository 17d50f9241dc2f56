/* ops.c: the op table. Every op is one block here: its shape rule, its forward and its
 * vector-Jacobian product, headed by the math. Kernels are written once and instantiated for
 * f32 and f64 by DISPATCH, which runs its body with T = float or T = double; <tgmath.h>
 * makes exp(x), log(x), ... pick expf/exp by the type of x, so one expression serves both.
 *
 * VJP locals follow the math: x (input value), y (output value), dy (output gradient), and
 * each VJP ADDS into its inputs' gradients (fan-out sums for free). */
#include "tape/record.h"

#include "core/detmath.h"
#include "core/pool.h"
#include "kernels/gemm.h"

#include <stdio.h>
#include <tgmath.h>

#define DISPATCH(dtype, ...)                                                                   \
    do {                                                                                       \
        if ((dtype) == TG_F32) {                                                               \
            typedef float T;                                                                   \
            __VA_ARGS__                                                                        \
        } else {                                                                               \
            typedef double T;                                                                  \
            __VA_ARGS__                                                                        \
        }                                                                                      \
    } while (0)

static void no_vjp(tg_tape *tape, tg_tensor *node)
{
    TG_UNUSED(tape);
    TG_UNUSED(node);
}

/* ==== threads ==================================================================================
 * Long elementwise loops (and sums over all elements) are split over the pool by ranges of
 * elements. A range is at least PAR_GRAIN elements: handing a loop to the pool costs a few
 * microseconds of wake-up and join, while 32768 elements take 20-40 us for the cheapest op
 * (an add, bound by memory) and far more for exp or tanh, so the split never costs more than
 * a few percent; and a loop shorter than two grains runs right here, without even the call,
 * so the small tensors of scalar and tiny graphs never pay for threads. Elementwise results
 * do not depend on the split at all. */
#define PAR_GRAIN ((size_t)1 << 15)

typedef struct par_ctx {
    tg_tensor *node;
    void *g; /* the input gradient a VJP range adds into */
} par_ctx;

/* PAR_LOOP(n, body, task, ctx): body(ctx, 0, n) inline when n is short, else task (a
 * tg_range_fn calling body) over the pool. */
#define PAR_LOOP(n, body, task, ctx)                                                           \
    do {                                                                                       \
        if (TG_LIKELY((n) < 2 * PAR_GRAIN))                                                    \
            body((ctx), 0, (n));                                                               \
        else                                                                                   \
            tg__parallel_for((n), PAR_GRAIN, (task), (ctx));                                   \
    } while (0)
#define BODY static inline __attribute__((always_inline))
/* The general case of an elementwise op, kept out of the function that tests for a single
 * element: the scalar case then needs no stack frame and no saved registers, which is most
 * of its cost in a scalar graph. */
#define GENERAL static __attribute__((noinline))
/* The scalar-first entry points, inlined into the op constructors (tape/record.h). */
#define SCALAR_FIRST static inline __attribute__((always_inline))

static char *fmt_shape(char *buf, size_t size, const tg_tensor *t)
{
    return tg_shape_format(buf, size, t->rank, t->shape);
}

static void copy_shape(tg_tensor *y, const tg_tensor *x)
{
    y->rank = x->rank;
    for (int i = 0; i < x->rank; i++)
        y->shape[i] = x->shape[i];
}

static tg_status same_shape(tg_tensor *y, char *msg, size_t size)
{
    TG_UNUSED(msg);
    TG_UNUSED(size);
    copy_shape(y, y->in[0]);
    return TG_OK;
}

/* ==== elementwise unary ===================================================================
 * UNARY_OP(name, forward expression of x (and c), VJP expression of x, y, dy (and c)) defines
 * name_forward and name_vjp. c is the op's scalar constant, in T. The loops over many elements
 * are compiled for AVX-512 and AVX2 as well (TG_SIMD_CLONES, core/core.h): tanh's arithmetic
 * then runs 8 or 4 doubles wide; the scalar path does not go through them. */
#define UNARY_LOOP static TG_SIMD_CLONES
#define UNARY_GENERAL static TG_SIMD_CLONES __attribute__((noinline))

#define UNARY_OP(name, FWD, VJP)                                                               \
    BODY void name##_forward_body(const tg_tensor *node, size_t lo, size_t hi)                  \
    {                                                                                          \
        DISPATCH(node->dtype, {                                                                \
            const T *X = node->in[0]->data;                                                    \
            T *Y = node->data;                                                                 \
            const T c = (T)node->attr.c;                                                       \
            (void)c;                                                                           \
            for (size_t i = lo; i < hi; i++) {                                                 \
                const T x = X[i];                                                              \
                Y[i] = (T)(FWD);                                                               \
            }                                                                                  \
        });                                                                                    \
    }                                                                                          \
    UNARY_LOOP void name##_forward_task(void *ctx, size_t lo, size_t hi)                       \
    {                                                                                          \
        name##_forward_body(ctx, lo, hi);                                                      \
    }                                                                                          \
    UNARY_GENERAL void name##_forward_any(tg_tensor *node)                                     \
    {                                                                                          \
        PAR_LOOP(node->numel, name##_forward_body, name##_forward_task, node);                 \
    }                                                                                          \
    SCALAR_FIRST void name##_forward(tg_tensor *node)                                          \
    {                                                                                          \
        if (TG_LIKELY(node->numel == 1))                                                       \
            name##_forward_body(node, 0, 1);                                                   \
        else                                                                                   \
            name##_forward_any(node);                                                          \
    }                                                                                          \
    BODY void name##_vjp_body(const par_ctx *ctx, size_t lo, size_t hi)                        \
    {                                                                                          \
        const tg_tensor *node = ctx->node;                                                     \
        DISPATCH(node->dtype, {                                                                \
            const T *X = node->in[0]->data, *Y = node->data, *DY = node->grad;                 \
            T *DX = ctx->g;                                                                    \
            const T c = (T)node->attr.c;                                                       \
            (void)c;                                                                           \
            for (size_t i = lo; i < hi; i++) {                                                 \
                const T x = X[i], y = Y[i], dy = DY[i];                                        \
                (void)x;                                                                       \
                (void)y;                                                                       \
                DX[i] += (T)(VJP);                                                             \
            }                                                                                  \
        });                                                                                    \
    }                                                                                          \
    UNARY_LOOP void name##_vjp_task(void *ctx, size_t lo, size_t hi)                           \
    {                                                                                          \
        name##_vjp_body(ctx, lo, hi);                                                          \
    }                                                                                          \
    UNARY_GENERAL void name##_vjp_any(const par_ctx *ctx)                                      \
    {                                                                                          \
        PAR_LOOP(ctx->node->numel, name##_vjp_body, name##_vjp_task, (void *)ctx);             \
    }                                                                                          \
    static void name##_vjp(tg_tape *tape, tg_tensor *node)                                     \
    {                                                                                          \
        par_ctx ctx = {node, tg_tape__grad_of(tape, node->in[0])};                             \
        if (!ctx.g)                                                                            \
            return;                                                                            \
        if (TG_LIKELY(node->numel == 1))                                                       \
            name##_vjp_body(&ctx, 0, 1);                                                       \
        else                                                                                   \
            name##_vjp_any(&ctx);                                                              \
    }

/* Sigmoid without overflow: e = exp(-|x|) is in (0, 1], so nothing reaches Inf. */
static inline float sigmoid_f32(float x)
{
    float e = expf(-fabsf(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}
static inline double sigmoid_f64(double x)
{
    double e = exp(-fabs(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}
#define SIGMOID(x) _Generic((x), float: sigmoid_f32, default: sigmoid_f64)(x)

/* y = -x;  dx += -dy */
UNARY_OP(neg, -x, -dy)
/* y = c*x;  dx += c*dy */
UNARY_OP(scale, c * x, c * dy)
/* y = x + c;  dx += dy */
UNARY_OP(add_scalar, x + c, dy)
/* y = x^c;  dx += dy * c * x^(c-1)   (C's pow() at the edges; x^0 = 1 has slope 0 everywhere,
 * also at x = 0, where c * x^(c-1) would be 0 * Inf = NaN) */
UNARY_OP(pow, pow(x, c), c == 0 ? 0 : dy * c * pow(x, c - 1))
/* y = x^2;  dx += dy * 2x */
UNARY_OP(square, x * x, dy * 2 * x)
/* y = sqrt(x);  dx += dy / (2y)   (+Inf at 0) */
UNARY_OP(sqrt, sqrt(x), dy / (2 * y))
/* y = e^x;  dx += dy * y */
UNARY_OP(exp, exp(x), dy * y)
/* y = ln x;  dx += dy / x   (log 0 = -Inf with gradient +Inf; log of x < 0 is NaN) */
UNARY_OP(log, log(x), dy / x)
/* y = |x|;  dx += dy * sign(x), sign(0) = 0 */
UNARY_OP(abs, fabs(x), x > 0 ? dy : (x < 0 ? -dy : 0))
/* y = 1/(1+e^-x);  dx += dy * y * (1-y) */
UNARY_OP(sigmoid, SIGMOID(x), dy * y * (1 - y))
/* y = tanh x;  dx += dy * (1 - y^2)   (tg__tanh, core/detmath.h; f32 rounds its f64 result) */
static inline float tanh_f32(float x) { return (float)tg__tanh(x); }
#define TANH(x) _Generic((x), float: tanh_f32, default: tg__tanh)(x)
UNARY_OP(tanh, TANH(x), dy * (1 - y * y))
/* y = max(x, 0);  dx += dy where x > 0, relu'(0) = 0  (NaN stays NaN, so anomaly mode sees it) */
UNARY_OP(relu, x < 0 ? 0 : x, x > 0 ? dy : 0)
/* y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|);  dx += dy * sigmoid(-x) */
UNARY_OP(log_sigmoid, (x < 0 ? x : 0) - log1p(exp(-fabs(x))), dy * SIGMOID(-x))

/* y = min(max(x, lo), hi);  dx += dy where lo <= x <= hi */
static void clamp_forward(tg_tensor *node)
{
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        const T lo = (T)node->attr.clamp.lo, hi = (T)node->attr.clamp.hi;
        for (size_t i = 0, n = node->numel; i < n; i++)
            Y[i] = X[i] < lo ? lo : (X[i] > hi ? hi : X[i]);
    });
}

static void clamp_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data, *DY = node->grad;
        T *DX = g;
        const T lo = (T)node->attr.clamp.lo, hi = (T)node->attr.clamp.hi;
        for (size_t i = 0, n = node->numel; i < n; i++)
            DX[i] += X[i] >= lo && X[i] <= hi ? DY[i] : 0;
    });
}

static tg_status clamp_shape(tg_tensor *y, char *msg, size_t size)
{
    double lo = y->attr.clamp.lo, hi = y->attr.clamp.hi;
    if (!(lo <= hi)) {
        snprintf(msg, size, "bounds [%g, %g] are empty or NaN", lo, hi);
        return TG_EINVAL;
    }
    return same_shape(y, msg, size);
}

/* ==== elementwise binary, NumPy broadcasting ===============================================
 * The output shape aligns both shapes from the right; the VJP walks the output with each
 * input's strides (0 on broadcast axes), so dx[ia] += ... sums over the broadcast axes. */

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
                     fmt_shape(sa, sizeof sa, a), fmt_shape(sb, sizeof sb, b), i - rank, da, db);
            return TG_ESHAPE;
        }
        y->shape[i] = da == 1 ? db : da;
    }
    y->rank = (uint8_t)rank;
    return TG_OK;
}

/* The output's shape with each input's element strides, adjacent axes merged where both
 * inputs allow it, so the inner loop is as long as possible. */
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

/* Runs the statement for every output element iy with input offsets ia, ib. */
#define BCAST_FOR(bc, numel, ...)                                                             \
    do {                                                                                       \
        size_t idx_[TG_MAX_RANK] = {0}, oa_ = 0, ob_ = 0;                                      \
        const int r_ = (bc).rank;                                                              \
        const size_t n_ = r_ ? (bc).shape[r_ - 1] : 1;                                         \
        const size_t sa_ = r_ ? (bc).sa[r_ - 1] : 0, sb_ = r_ ? (bc).sb[r_ - 1] : 0;           \
        for (size_t iy = 0; iy < (numel);) {                                                   \
            for (size_t j_ = 0; j_ < n_; j_++, iy++) {                                         \
                const size_t ia = oa_ + j_ * sa_, ib = ob_ + j_ * sb_;                         \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
            for (int d_ = r_ - 2; d_ >= 0; d_--) {                                             \
                oa_ += (bc).sa[d_];                                                            \
                ob_ += (bc).sb[d_];                                                            \
                if (++idx_[d_] < (bc).shape[d_])                                               \
                    break;                                                                     \
                oa_ -= (bc).sa[d_] * (bc).shape[d_];                                           \
                ob_ -= (bc).sb[d_] * (bc).shape[d_];                                           \
                idx_[d_] = 0;                                                                  \
            }                                                                                  \
        }                                                                                      \
    } while (0)

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

/* Runs the statement over all elements, with flat loops the compiler vectorizes where no
 * general broadcasting is needed: same element counts, one side a single element, or one side
 * repeating along the leading axes (then a loop over those rows around a flat one). */
#define ELEMENTWISE2(node, ...)                                                               \
    do {                                                                                       \
        const size_t ny_ = (node)->numel, na_ = (node)->in[0]->numel,                          \
                     nb_ = (node)->in[1]->numel;                                               \
        if (na_ == ny_ && nb_ == ny_) {                                                        \
            for (size_t iy = 0; iy < ny_; iy++) {                                              \
                const size_t ia = iy, ib = iy;                                                 \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
        } else if (na_ == 1 && nb_ == ny_) {                                                   \
            for (size_t iy = 0; iy < ny_; iy++) {                                              \
                const size_t ia = 0, ib = iy;                                                  \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
        } else if (nb_ == 1 && na_ == ny_) {                                                   \
            for (size_t iy = 0; iy < ny_; iy++) {                                              \
                const size_t ia = iy, ib = 0;                                                  \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
        } else if (na_ == ny_ && nb_ && trailing_of((node)->in[1], (node))) {                  \
            for (size_t r_ = 0; r_ < ny_; r_ += nb_)                                           \
                for (size_t ib = 0; ib < nb_; ib++) {                                          \
                    const size_t iy = r_ + ib, ia = iy;                                        \
                    __VA_ARGS__;                                                               \
                }                                                                              \
        } else if (nb_ == ny_ && na_ && trailing_of((node)->in[0], (node))) {                  \
            for (size_t r_ = 0; r_ < ny_; r_ += na_)                                           \
                for (size_t ia = 0; ia < na_; ia++) {                                          \
                    const size_t iy = r_ + ia, ib = iy;                                        \
                    __VA_ARGS__;                                                               \
                }                                                                              \
        } else {                                                                               \
            bcast bc_;                                                                         \
            bcast_init(&bc_, (node));                                                          \
            BCAST_FOR(bc_, ny_, __VA_ARGS__);                                                  \
        }                                                                                      \
    } while (0)

/* The flat cases of ELEMENTWISE2 over output elements [lo, hi): every output element reads
 * A[ia] and B[ib] with ia, ib either iy or 0. */
#define ELEMENTWISE2_RANGE(node, lo, hi, ...)                                                 \
    do {                                                                                       \
        const size_t sa_ = (node)->in[0]->numel == (node)->numel,                              \
                     sb_ = (node)->in[1]->numel == (node)->numel;                              \
        if (sa_ && sb_) {                                                                      \
            for (size_t iy = (lo); iy < (hi); iy++) {                                          \
                const size_t ia = iy, ib = iy;                                                 \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
        } else {                                                                               \
            for (size_t iy = (lo); iy < (hi); iy++) {                                          \
                const size_t ia = iy * sa_, ib = iy * sb_;                                     \
                __VA_ARGS__;                                                                   \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* Whether ELEMENTWISE2_RANGE covers the op (no general broadcasting), and, for a VJP into
 * input i, whether each output element adds into its own element of that input's gradient
 * (so ranges never write the same element). */
static bool flat2(const tg_tensor *y)
{
    size_t na = y->in[0]->numel, nb = y->in[1]->numel, ny = y->numel;
    return (na == ny && nb == ny) || (na == 1 && nb == ny) || (nb == 1 && na == ny);
}

static bool flat2_own(const tg_tensor *y, int i)
{
    return flat2(y) && y->in[i]->numel == y->numel;
}

/* The VJP of a long binary op: each input gradient that takes one element per output element
 * is done over the pool (bit 0: a, bit 1: b); the others, which sum over broadcast axes,
 * are left to the caller's loop on this thread. Out of line: scalar graphs never get here. */
static __attribute__((noinline)) unsigned par_vjp2(tg_tensor *node, void *ga, tg_range_fn fa,
                                                   void *gb, tg_range_fn fb)
{
    unsigned done = 0;
    if (ga && flat2_own(node, 0)) {
        par_ctx ctx = {node, ga};
        tg__parallel_for(node->numel, PAR_GRAIN, fa, &ctx);
        done |= 1;
    }
    if (gb && flat2_own(node, 1)) {
        par_ctx ctx = {node, gb};
        tg__parallel_for(node->numel, PAR_GRAIN, fb, &ctx);
        done |= 2;
    }
    return done;
}

/* BINARY_OP(name, forward of a and b, VJP for a, VJP for b; both may use a, b, y, dy). */
#define BINARY_OP(name, FWD, VJP_A, VJP_B)                                                     \
    static void name##_forward_range(void *ctx, size_t lo, size_t hi)                          \
    {                                                                                          \
        const tg_tensor *node = ctx;                                                           \
        DISPATCH(node->dtype, {                                                                \
            const T *A = node->in[0]->data, *B = node->in[1]->data;                            \
            T *Y = node->data;                                                                 \
            ELEMENTWISE2_RANGE(node, lo, hi, {                                                 \
                const T a = A[ia], b = B[ib];                                                  \
                Y[iy] = (T)(FWD);                                                              \
            });                                                                                \
        });                                                                                    \
    }                                                                                          \
    GENERAL void name##_forward_any(tg_tensor *node)                                           \
    {                                                                                          \
        if (TG_UNLIKELY(node->numel >= 2 * PAR_GRAIN) && flat2(node)) {                        \
            tg__parallel_for(node->numel, PAR_GRAIN, name##_forward_range, node);              \
            return;                                                                            \
        }                                                                                      \
        DISPATCH(node->dtype, {                                                                \
            const T *A = node->in[0]->data, *B = node->in[1]->data;                            \
            T *Y = node->data;                                                                 \
            ELEMENTWISE2(node, {                                                               \
                const T a = A[ia], b = B[ib];                                                  \
                Y[iy] = (T)(FWD);                                                              \
            });                                                                                \
        });                                                                                    \
    }                                                                                          \
    SCALAR_FIRST void name##_forward(tg_tensor *node)                                          \
    {                                                                                          \
        if (TG_LIKELY(node->numel == 1)) { /* scalars (then both inputs are single too) */     \
            DISPATCH(node->dtype, {                                                            \
                const T a = *(const T *)node->in[0]->data, b = *(const T *)node->in[1]->data;  \
                *(T *)node->data = (T)(FWD);                                                   \
            });                                                                                \
            return;                                                                            \
        }                                                                                      \
        name##_forward_any(node);                                                              \
    }                                                                                          \
    static void name##_vjp_a_range(void *ctx, size_t lo, size_t hi)                            \
    {                                                                                          \
        const tg_tensor *node = ((par_ctx *)ctx)->node;                                        \
        DISPATCH(node->dtype, {                                                                \
            const T *A = node->in[0]->data, *B = node->in[1]->data, *Y = node->data,           \
                    *DY = node->grad;                                                          \
            T *DA = ((par_ctx *)ctx)->g;                                                       \
            ELEMENTWISE2_RANGE(node, lo, hi, {                                                 \
                const T a = A[ia], b = B[ib], y = Y[iy], dy = DY[iy];                          \
                (void)a, (void)b, (void)y;                                                     \
                DA[ia] += (T)(VJP_A);                                                          \
            });                                                                                \
        });                                                                                    \
    }                                                                                          \
    static void name##_vjp_b_range(void *ctx, size_t lo, size_t hi)                            \
    {                                                                                          \
        const tg_tensor *node = ((par_ctx *)ctx)->node;                                        \
        DISPATCH(node->dtype, {                                                                \
            const T *A = node->in[0]->data, *B = node->in[1]->data, *Y = node->data,           \
                    *DY = node->grad;                                                          \
            T *DB = ((par_ctx *)ctx)->g;                                                       \
            ELEMENTWISE2_RANGE(node, lo, hi, {                                                 \
                const T a = A[ia], b = B[ib], y = Y[iy], dy = DY[iy];                          \
                (void)a, (void)b, (void)y;                                                     \
                DB[ib] += (T)(VJP_B);                                                          \
            });                                                                                \
        });                                                                                    \
    }                                                                                          \
    GENERAL void name##_vjp_any(tg_tensor *node, void *ga, void *gb)                           \
    {                                                                                          \
        if (TG_UNLIKELY(node->numel >= 2 * PAR_GRAIN)) { /* over the pool, where no sum */      \
            unsigned done = par_vjp2(node, ga, name##_vjp_a_range, gb, name##_vjp_b_range);    \
            ga = (done & 1) ? NULL : ga;                                                       \
            gb = (done & 2) ? NULL : gb;                                                       \
            if (!ga && !gb)                                                                    \
                return;                                                                        \
        }                                                                                      \
        /* the rest on this thread (sums over broadcast axes among it) */                      \
        DISPATCH(node->dtype, {                                                                \
            const T *A = node->in[0]->data, *B = node->in[1]->data, *Y = node->data,           \
                    *DY = node->grad;                                                          \
            if (ga) {                                                                          \
                T *DA = ga;                                                                    \
                ELEMENTWISE2(node, {                                                           \
                    const T a = A[ia], b = B[ib], y = Y[iy], dy = DY[iy];                      \
                    (void)a, (void)b, (void)y;                                                 \
                    DA[ia] += (T)(VJP_A);                                                      \
                });                                                                            \
            }                                                                                  \
            if (gb) {                                                                          \
                T *DB = gb;                                                                    \
                ELEMENTWISE2(node, {                                                           \
                    const T a = A[ia], b = B[ib], y = Y[iy], dy = DY[iy];                      \
                    (void)a, (void)b, (void)y;                                                 \
                    DB[ib] += (T)(VJP_B);                                                      \
                });                                                                            \
            }                                                                                  \
        });                                                                                    \
    }                                                                                          \
    static void name##_vjp(tg_tape *tape, tg_tensor *node)                                     \
    {                                                                                          \
        void *ga = tg_tape__grad_of(tape, node->in[0]);                                        \
        void *gb = tg_tape__grad_of(tape, node->in[1]);                                        \
        if (TG_LIKELY(node->numel == 1)) { /* scalars */                                       \
            DISPATCH(node->dtype, {                                                            \
                const T a = *(const T *)node->in[0]->data, b = *(const T *)node->in[1]->data,  \
                        y = *(const T *)node->data, dy = *(const T *)node->grad;               \
                (void)a, (void)b, (void)y;                                                     \
                if (ga)                                                                        \
                    *(T *)ga += (T)(VJP_A);                                                    \
                if (gb)                                                                        \
                    *(T *)gb += (T)(VJP_B);                                                    \
            });                                                                                \
            return;                                                                            \
        }                                                                                      \
        name##_vjp_any(node, ga, gb);                                                          \
    }

/* y = a + b;  da += dy, db += dy */
BINARY_OP(add, a + b, dy, dy)
/* y = a - b;  da += dy, db += -dy */
BINARY_OP(sub, a - b, dy, -dy)
/* y = a * b;  da += dy * b, db += dy * a */
BINARY_OP(mul, a * b, dy * b, dy * a)
/* y = a / b;  da += dy / b, db += -dy * y / b  (= -dy a / b^2) */
BINARY_OP(div, a / b, dy / b, -dy * a / (b * b))

/* ==== matmul =================================================================================
 * y = a @ b: (M,K) @ (K,N) -> (M,N), or batched (B,M,K) @ (B,K,N) -> (B,M,N);
 * da += dy @ b^T, db += a^T @ dy. The GEMM kernel reads transposed operands in place. */

static tg_status matmul_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    int r = a->rank;
    const char *why = NULL;
    if (!((r == 2 && b->rank == 2) || (r == 3 && b->rank == 3)))
        why = "operands must both be 2-D, or both 3-D (batched)";
    else if (r == 3 && a->shape[0] != b->shape[0])
        why = "batch sizes";
    else if (a->shape[r - 1] != b->shape[r - 2])
        why = "inner dimensions";
    if (why) { /* formatting only on the error path: this rule runs for every matmul */
        char sa[96], sb[96];
        fmt_shape(sa, sizeof sa, a);
        fmt_shape(sb, sizeof sb, b);
        if (why[0] == 'o')
            snprintf(msg, size, "%s @ %s: %s", sa, sb, why);
        else if (why[0] == 'b')
            snprintf(msg, size, "%s @ %s: batch sizes %zu and %zu differ", sa, sb, a->shape[0],
                     b->shape[0]);
        else
            snprintf(msg, size, "%s @ %s: inner dimensions %zu and %zu differ", sa, sb,
                     a->shape[r - 1], b->shape[r - 2]);
        return TG_ESHAPE;
    }
    y->rank = (uint8_t)r;
    if (r == 3)
        y->shape[0] = a->shape[0];
    y->shape[r - 2] = a->shape[r - 2];
    y->shape[r - 1] = b->shape[r - 1];
    return TG_OK;
}

typedef struct mm_dims {
    size_t batch, M, K, N;
} mm_dims;

static mm_dims matmul_dims(const tg_tensor *y)
{
    const tg_tensor *a = y->in[0], *b = y->in[1];
    int r = a->rank;
    return (mm_dims){r == 3 ? a->shape[0] : 1, a->shape[r - 2], a->shape[r - 1], b->shape[r - 1]};
}

static void gemm(tg_dtype dtype, bool ta, bool tb, size_t M, size_t N, size_t K, const void *A,
                 size_t lda, const void *B, size_t ldb, double beta, void *C, size_t ldc)
{
    if (dtype == TG_F32)
        tg_gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, (float)beta, C, ldc);
    else
        tg_gemm_f64(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* Products this small (the 2x2 layers of a tiny network) run here in plain loops: the call
 * into the GEMM kernel, with its dispatch and blocking, would cost more than the arithmetic.
 * Each sum runs in the order the kernel's reference path uses. */
#define MATMUL_TINY 512 /* M*K*N at most */

static bool matmul_tiny(mm_dims d)
{
    return d.M * d.K * d.N <= MATMUL_TINY; /* no overflow: each factor is a real dimension */
}

static void matmul_forward(tg_tensor *node)
{
    mm_dims d = matmul_dims(node);
    if (matmul_tiny(d)) {
        DISPATCH(node->dtype, {
            const T *A = node->in[0]->data, *B = node->in[1]->data;
            T *Y = node->data;
            for (size_t p = 0; p < d.batch; p++, A += d.M * d.K, B += d.K * d.N, Y += d.M * d.N)
                for (size_t i = 0; i < d.M; i++) /* (M,K) @ (K,N) */
                    for (size_t j = 0; j < d.N; j++) {
                        T acc = 0;
                        for (size_t k = 0; k < d.K; k++)
                            acc += A[i * d.K + k] * B[k * d.N + j];
                        Y[i * d.N + j] = acc;
                    }
        });
        return;
    }
    size_t es = tg__esize(node);
    const char *A = node->in[0]->data, *B = node->in[1]->data;
    char *Y = node->data;
    for (size_t p = 0; p < d.batch; p++) /* (M,K) @ (K,N) */
        gemm((tg_dtype)node->dtype, false, false, d.M, d.N, d.K, A + p * d.M * d.K * es, d.K,
             B + p * d.K * d.N * es, d.N, 0.0, Y + p * d.M * d.N * es, d.N);
}

static void matmul_vjp(tg_tape *tape, tg_tensor *node)
{
    mm_dims d = matmul_dims(node);
    size_t es = tg__esize(node);
    char *dA = tg_tape__grad_of(tape, node->in[0]);
    char *dB = tg_tape__grad_of(tape, node->in[1]);
    if (matmul_tiny(d)) {
        DISPATCH(node->dtype, {
            const T *A = node->in[0]->data, *B = node->in[1]->data, *DY = node->grad;
            T *DA = (T *)dA, *DB = (T *)dB;
            const size_t M = d.M, K = d.K, N = d.N;
            for (size_t p = 0; p < d.batch; p++, A += M * K, B += K * N, DY += M * N) {
                if (DA) { /* dA[i,k] += sum_j dY[i,j] B[k,j] */
                    for (size_t i = 0; i < M; i++)
                        for (size_t k = 0; k < K; k++) {
                            T acc = 0;
                            for (size_t j = 0; j < N; j++)
                                acc += DY[i * N + j] * B[k * N + j];
                            DA[i * K + k] += acc;
                        }
                    DA += M * K;
                }
                if (DB) /* dB[k,j] += A[i,k] dY[i,j], i in order */
                    for (size_t k = 0; k < K; k++) {
                        for (size_t i = 0; i < M; i++)
                            for (size_t j = 0; j < N; j++)
                                DB[k * N + j] += A[i * K + k] * DY[i * N + j];
                    }
                if (DB)
                    DB += K * N;
            }
        });
        return;
    }
    const char *A = node->in[0]->data, *B = node->in[1]->data, *dY = node->grad;
    for (size_t p = 0; p < d.batch; p++) {
        const char *a = A + p * d.M * d.K * es, *b = B + p * d.K * d.N * es;
        const char *dy = dY + p * d.M * d.N * es;
        if (dA) /* (M,N) @ (K,N)^T -> (M,K) */
            gemm((tg_dtype)node->dtype, false, true, d.M, d.K, d.N, dy, d.N, b, d.N, 1.0,
                 dA + p * d.M * d.K * es, d.K);
        if (dB) /* (M,K)^T @ (M,N) -> (K,N) */
            gemm((tg_dtype)node->dtype, true, false, d.K, d.N, d.M, a, d.K, dy, d.N, 1.0,
                 dB + p * d.K * d.N * es, d.N);
    }
}

/* ==== transpose, reshape, detach ==============================================================*/

/* y = x^T for 2-D x;  dx += dy^T */
static tg_status transpose_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    if (x->rank != 2) {
        char s[96];
        snprintf(msg, size, "%s: expected a 2-D tensor", fmt_shape(s, sizeof s, x));
        return TG_ESHAPE;
    }
    y->rank = 2;
    y->shape[0] = x->shape[1];
    y->shape[1] = x->shape[0];
    return TG_OK;
}

static void transpose_forward(tg_tensor *node)
{
    size_t R = node->in[0]->shape[0], C = node->in[0]->shape[1];
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                Y[j * R + i] = X[i * C + j];
    });
}

static void transpose_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    size_t R = node->in[0]->shape[0], C = node->in[0]->shape[1];
    DISPATCH(node->dtype, {
        const T *DY = node->grad;
        T *DX = g;
        for (size_t i = 0; i < R; i++)
            for (size_t j = 0; j < C; j++)
                DX[i * C + j] += DY[j * R + i];
    });
}

/* y = x with a new shape (a view);  dx += dy */
static tg_status reshape_shape(tg_tensor *y, char *msg, size_t size)
{
    const tg_tensor *x = y->in[0];
    int rank = y->attr.reshape.rank;
    const size_t *shape = y->attr.reshape.shape;
    if (rank < 0 || rank > TG_MAX_RANK || (rank > 0 && !shape)) {
        snprintf(msg, size, "rank %d is out of range 0..%d (or shape is NULL)", rank, TG_MAX_RANK);
        return TG_EINVAL;
    }
    size_t n = 1;
    bool overflow = false;
    for (int i = 0; i < rank; i++) {
        if (shape[i] && n > SIZE_MAX / shape[i])
            overflow = true;
        n *= shape[i];
    }
    if (overflow || n != x->numel) {
        char sx[96], sy[96];
        fmt_shape(sx, sizeof sx, x);
        tg_shape_format(sy, sizeof sy, rank, shape);
        if (overflow)
            snprintf(msg, size, "%s -> %s: the new shape has more elements than fit in size_t",
                     sx, sy);
        else
            snprintf(msg, size, "%s -> %s: element counts %zu and %zu differ", sx, sy, x->numel,
                     n);
        return TG_ESHAPE;
    }
    y->rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        y->shape[i] = shape[i];
    y->attr.c = 0; /* the shape pointer is not ours to keep */
    return TG_OK;
}

static void view_forward(tg_tensor *node)
{
    node->data = node->in[0]->data;
}

static void reshape_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    DISPATCH(node->dtype, {
        const T *DY = node->grad;
        T *DX = g;
        for (size_t i = 0, n = node->numel; i < n; i++)
            DX[i] += DY[i];
    });
}

/* ==== reductions along one axis ===============================================================
 * The input is seen as (outer, n, inner) around the axis (TG_ALL_AXES: (1, numel, 1)), the
 * output as (outer, inner). */

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
                 fmt_shape(s, sizeof s, x), x->rank);
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

/* max (and ops built on it) has no value over an empty axis. */
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
                 y->attr.r.axis == TG_ALL_AXES ? "tensor" : "axis", fmt_shape(s, sizeof s, x));
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
    copy_shape(y, y->in[0]);
    return st;
}

typedef struct axis_split {
    size_t outer, n, inner;
} axis_split;

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

/* Loops over every (o, i) lane of the split with X_LANE/Y_LANE pointing at x[o, 0, i] and
 * y[o, i]; elements along the axis are X_LANE[k * inner]. */
#define FOR_LANES(s, ...)                                                                      \
    for (size_t o_ = 0; o_ < (s).outer; o_++)                                                  \
        for (size_t i_ = 0; i_ < (s).inner; i_++) {                                            \
            const size_t xoff = o_ * (s).n * (s).inner + i_, yoff = o_ * (s).inner + i_;       \
            const size_t st = (s).inner;                                                       \
            (void)xoff, (void)yoff, (void)st;                                                  \
            __VA_ARGS__                                                                        \
        }

/* y = sum_k x[k];  dx[k] += dy.   mean: y = sum / n;  dx[k] += dy / n */
/* A sum over every element of a long tensor, over the pool: the partial sums of blocks of
 * PAR_GRAIN elements, added in block order. The blocks depend on the length alone, so the
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
            size_t end = (blk + 1) * PAR_GRAIN < n ? (blk + 1) * PAR_GRAIN : n;
            T acc = 0;
            for (size_t k = blk * PAR_GRAIN; k < end; k++)
                acc += X[k];
            P[blk] = acc;
        }
    });
}

/* false (nothing done) when the scratch for the partial sums cannot be had */
static bool sum_all_parallel(tg_tensor *node, bool mean)
{
    const tg_tensor *x = node->in[0];
    size_t blocks = (x->numel + PAR_GRAIN - 1) / PAR_GRAIN;
    sum_ctx c = {x, tg_tape__alloc(node->tape, blocks * tg__esize(x))};
    if (!c.partial)
        return false;
    tg__parallel_for(blocks, 1, sum_blocks, &c);
    DISPATCH(node->dtype, {
        const T *P = c.partial;
        T acc = 0;
        for (size_t blk = 0; blk < blocks; blk++)
            acc += P[blk];
        *(T *)node->data = mean ? acc / (T)x->numel : acc;
    });
    return true;
}

/* dx[k] += dy (mean: dy / n) for every k, over the pool */
static void fill_add_range(void *ctx, size_t lo, size_t hi)
{
    const tg_tensor *node = ((par_ctx *)ctx)->node;
    const bool mean = node->op == TG_OP_MEAN;
    DISPATCH(node->dtype, {
        const T dy = mean ? *(const T *)node->grad / (T)node->in[0]->numel
                          : *(const T *)node->grad;
        T *DX = ((par_ctx *)ctx)->g;
        for (size_t k = lo; k < hi; k++)
            DX[k] += dy;
    });
}

static void sum_like_forward(tg_tensor *node, bool mean)
{
    if (TG_UNLIKELY(node->attr.r.axis == TG_ALL_AXES && node->in[0]->numel >= 2 * PAR_GRAIN) &&
        sum_all_parallel(node, mean))
        return;
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        FOR_LANES(s, {
            T acc = 0;
            for (size_t k = 0; k < s.n; k++)
                acc += X[xoff + k * st];
            Y[yoff] = mean ? acc / (T)s.n : acc;
        })
    });
}

static void sum_like_vjp(tg_tape *tape, tg_tensor *node, bool mean)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    if (TG_UNLIKELY(node->attr.r.axis == TG_ALL_AXES && node->in[0]->numel >= 2 * PAR_GRAIN)) {
        par_ctx ctx = {node, g};
        tg__parallel_for(node->in[0]->numel, PAR_GRAIN, fill_add_range, &ctx);
        return;
    }
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *DY = node->grad;
        T *DX = g;
        FOR_LANES(s, {
            const T dy = mean ? DY[yoff] / (T)s.n : DY[yoff];
            for (size_t k = 0; k < s.n; k++)
                DX[xoff + k * st] += dy;
        })
    });
}

static void sum_forward(tg_tensor *node) { sum_like_forward(node, false); }
static void sum_vjp(tg_tape *tape, tg_tensor *node) { sum_like_vjp(tape, node, false); }
static void mean_forward(tg_tensor *node) { sum_like_forward(node, true); }
static void mean_vjp(tg_tape *tape, tg_tensor *node) { sum_like_vjp(tape, node, true); }

/* The index along the lane of its maximum: the first one on ties, the first NaN if any. */
#define ARGMAX(X, xoff, st, n, out)                                                            \
    do {                                                                                       \
        size_t best_ = 0;                                                                      \
        for (size_t k_ = 1; k_ < (n); k_++) {                                                  \
            const T v_ = (X)[(xoff) + k_ * (st)], b_ = (X)[(xoff) + best_ * (st)];             \
            if (b_ != b_)                                                                      \
                break;                                                                         \
            if (v_ > b_ || v_ != v_)                                                           \
                best_ = k_;                                                                    \
        }                                                                                      \
        (out) = best_;                                                                         \
    } while (0)

/* y = max_k x[k];  dx[argmax] += dy (first maximum on ties) */
static void max_forward(tg_tensor *node)
{
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        FOR_LANES(s, {
            size_t kmax;
            ARGMAX(X, xoff, st, s.n, kmax);
            Y[yoff] = X[xoff + kmax * st];
        })
    });
}

static void max_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data, *DY = node->grad;
        T *DX = g;
        FOR_LANES(s, {
            size_t kmax;
            ARGMAX(X, xoff, st, s.n, kmax);
            DX[xoff + kmax * st] += DY[yoff];
        })
    });
}

/* The log of the sum of exponentials along a lane in two parts, log sum_k e^x[k] = m + ls:
 * the shift m (the maximum, so no exp overflows) and ls = log sum_k e^(x[k] - m). Softmax and
 * friends use (x - m) - ls, never x - (m + ls): rounding m + ls costs ulps of |m|, which in
 * f32 at |x| ~ 1000 is an error of 3e-5. An infinite or NaN maximum is its own answer (ls = 0;
 * avoids Inf - Inf). */
#define SHIFT_LOGSUM(X, xoff, st, n, m, ls)                                                    \
    do {                                                                                       \
        size_t km_;                                                                            \
        ARGMAX(X, xoff, st, n, km_);                                                           \
        (m) = (n) ? (X)[(xoff) + km_ * (st)] : (T)-INFINITY;                                   \
        (ls) = 0;                                                                              \
        if (isfinite(m)) {                                                                     \
            T s_ = 0;                                                                          \
            for (size_t k_ = 0; k_ < (n); k_++)                                                \
                s_ += exp((X)[(xoff) + k_ * (st)] - (m));                                      \
            (ls) = log(s_);                                                                    \
        }                                                                                      \
    } while (0)

#define LSE(X, xoff, st, n, out)                                                               \
    do {                                                                                       \
        T m__, ls__;                                                                           \
        SHIFT_LOGSUM(X, xoff, st, n, m__, ls__);                                               \
        (out) = m__ + ls__;                                                                    \
    } while (0)

/* y = log sum_k e^x[k];  dx[k] += dy * e^(x[k] - y), with x[k] - y as (x[k] - m) - ls */
static void logsumexp_forward(tg_tensor *node)
{
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        FOR_LANES(s, { LSE(X, xoff, st, s.n, Y[yoff]); })
    });
}

static void logsumexp_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data, *DY = node->grad;
        T *DX = g;
        FOR_LANES(s, {
            const T dy = DY[yoff];
            T m, ls;
            SHIFT_LOGSUM(X, xoff, st, s.n, m, ls);
            for (size_t k = 0; k < s.n; k++)
                DX[xoff + k * st] += dy * exp((X[xoff + k * st] - m) - ls);
        })
    });
}

/* y[k] = e^(x[k] - m) / sum_j e^(x[j] - m);  dx[k] += y[k] * (dy[k] - sum_j dy[j] y[j]) */
static void softmax_forward(tg_tensor *node)
{
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        FOR_LANES(s, {
            T m, ls;
            SHIFT_LOGSUM(X, xoff, st, s.n, m, ls);
            for (size_t k = 0; k < s.n; k++)
                Y[xoff + k * st] = exp((X[xoff + k * st] - m) - ls);
        })
    });
}

static void softmax_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *Y = node->data, *DY = node->grad;
        T *DX = g;
        FOR_LANES(s, {
            T dot = 0;
            for (size_t k = 0; k < s.n; k++)
                dot += DY[xoff + k * st] * Y[xoff + k * st];
            for (size_t k = 0; k < s.n; k++)
                DX[xoff + k * st] += Y[xoff + k * st] * (DY[xoff + k * st] - dot);
        })
    });
}

/* y[k] = x[k] - log sum_j e^x[j];  dx[k] += dy[k] - e^y[k] * sum_j dy[j] */
static void log_softmax_forward(tg_tensor *node)
{
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *X = node->in[0]->data;
        T *Y = node->data;
        FOR_LANES(s, {
            T m, ls;
            SHIFT_LOGSUM(X, xoff, st, s.n, m, ls);
            for (size_t k = 0; k < s.n; k++)
                Y[xoff + k * st] = (X[xoff + k * st] - m) - ls;
        })
    });
}

static void log_softmax_vjp(tg_tape *tape, tg_tensor *node)
{
    void *g = tg_tape__grad_of(tape, node->in[0]);
    if (!g)
        return;
    axis_split s = split_at(node->in[0], node->attr.r.axis);
    DISPATCH(node->dtype, {
        const T *Y = node->data, *DY = node->grad;
        T *DX = g;
        FOR_LANES(s, {
            T sum = 0;
            for (size_t k = 0; k < s.n; k++)
                sum += DY[xoff + k * st];
            for (size_t k = 0; k < s.n; k++)
                DX[xoff + k * st] += DY[xoff + k * st] - exp(Y[xoff + k * st]) * sum;
        })
    });
}

/* ==== the table ================================================================================*/

static tg_status no_shape(tg_tensor *y, char *msg, size_t size)
{
    TG_UNUSED(y);
    snprintf(msg, size, "constants are made with tg_constant");
    return TG_EINVAL;
}

static void no_forward(tg_tensor *node)
{
    TG_UNUSED(node);
}

#define UNARY_ENTRY(op) {#op, 1, false, false, same_shape, op##_forward, op##_vjp, false}
#define BINARY_ENTRY(op) {#op, 2, false, false, broadcast_shape, op##_forward, op##_vjp, false}

const tg_op_info tg_ops__table[TG_OP_COUNT] = {
    [TG_OP_CONST] = {"const", 0, false, false, no_shape, no_forward, no_vjp, true},
    [TG_OP_DETACH] = {"detach", 1, true, false, same_shape, view_forward, no_vjp, false},
    [TG_OP_ADD] = BINARY_ENTRY(add),
    [TG_OP_SUB] = BINARY_ENTRY(sub),
    [TG_OP_MUL] = BINARY_ENTRY(mul),
    [TG_OP_DIV] = BINARY_ENTRY(div),
    [TG_OP_NEG] = UNARY_ENTRY(neg),
    [TG_OP_SCALE] = UNARY_ENTRY(scale),
    [TG_OP_ADD_SCALAR] = UNARY_ENTRY(add_scalar),
    [TG_OP_POW] = UNARY_ENTRY(pow),
    [TG_OP_SQUARE] = UNARY_ENTRY(square),
    [TG_OP_SQRT] = UNARY_ENTRY(sqrt),
    [TG_OP_EXP] = UNARY_ENTRY(exp),
    [TG_OP_LOG] = UNARY_ENTRY(log),
    [TG_OP_ABS] = UNARY_ENTRY(abs),
    [TG_OP_SIGMOID] = UNARY_ENTRY(sigmoid),
    [TG_OP_TANH] = UNARY_ENTRY(tanh),
    [TG_OP_RELU] = UNARY_ENTRY(relu),
    [TG_OP_LOG_SIGMOID] = UNARY_ENTRY(log_sigmoid),
    [TG_OP_CLAMP] = {"clamp", 1, false, false, clamp_shape, clamp_forward, clamp_vjp, true},
    [TG_OP_MATMUL] = {"matmul", 2, false, false, matmul_shape, matmul_forward, matmul_vjp, false},
    [TG_OP_TRANSPOSE] = {"transpose", 1, false, false, transpose_shape, transpose_forward,
                         transpose_vjp, false},
    [TG_OP_RESHAPE] = {"reshape", 1, true, false, reshape_shape, view_forward, reshape_vjp,
                       true},
    [TG_OP_SUM] = {"sum", 1, false, true, reduce_shape, sum_forward, sum_vjp, false},
    [TG_OP_MEAN] = {"mean", 1, false, true, reduce_shape, mean_forward, mean_vjp, false},
    [TG_OP_MAX] = {"max", 1, false, true, reduce_nonempty_shape, max_forward, max_vjp, false},
    [TG_OP_LOGSUMEXP] = {"logsumexp", 1, false, true, reduce_shape, logsumexp_forward,
                         logsumexp_vjp, false},
    [TG_OP_SOFTMAX] = {"softmax", 1, false, true, axis_shape, softmax_forward, softmax_vjp, false},
    [TG_OP_LOG_SOFTMAX] = {"log_softmax", 1, false, true, axis_shape, log_softmax_forward,
                           log_softmax_vjp, false},
};

_Static_assert(sizeof tg_ops__table / sizeof tg_ops__table[0] == TG_OP_COUNT,
               "one op table entry per tg_op");

/* ==== public constructors ======================================================================*/

const char *tg_op_name(tg_op op)
{
    return (unsigned)op < TG_OP_COUNT ? tg_ops__table[op].name : "?";
}

int tg_op_arity(tg_op op)
{
    return (unsigned)op < TG_OP_COUNT ? tg_ops__table[op].arity : -1;
}

int tg_tensor_op(const tg_tensor *t)
{
    return t && !(t->flags & TG_TF_LEAF) ? t->op : -1;
}

tg_tensor *tg_tensor_input(const tg_tensor *t, int i)
{
    return t && !(t->flags & TG_TF_LEAF) && i >= 0 && i < 2 ? t->in[i] : NULL;
}

size_t tg_tensor_index(const tg_tensor *t)
{
    return t && !(t->flags & TG_TF_LEAF) ? t->index : SIZE_MAX;
}

/* The constructors below each inline the recording path with their op as a constant (see
 * tape/record.h), so these helpers must be inlined too. */
#define CONSTRUCTOR static inline __attribute__((always_inline))

CONSTRUCTOR tg_tensor *unary(tg_tape *tape, tg_op op, tg_tensor *x)
{
    return tg_tape__record(tape, op, x, NULL, (tg_attr){.c = 0});
}

CONSTRUCTOR tg_tensor *with_constant(tg_tape *tape, tg_op op, tg_tensor *x, double c)
{
    return tg_tape__record(tape, op, x, NULL, (tg_attr){.c = c});
}

CONSTRUCTOR tg_tensor *along(tg_tape *tape, tg_op op, tg_tensor *x, int axis, bool keepdim)
{
    return tg_tape__record(tape, op, x, NULL, (tg_attr){.r = {axis, keepdim}});
}

tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, TG_OP_ADD, a, b, (tg_attr){.c = 0});
}
tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, TG_OP_SUB, a, b, (tg_attr){.c = 0});
}
tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, TG_OP_MUL, a, b, (tg_attr){.c = 0});
}
tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, TG_OP_DIV, a, b, (tg_attr){.c = 0});
}
tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_tape__record(tape, TG_OP_MATMUL, a, b, (tg_attr){.c = 0});
}

tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_DETACH, x); }
tg_tensor *tg_neg(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_NEG, x); }
tg_tensor *tg_square(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_SQUARE, x); }
tg_tensor *tg_sqrt(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_SQRT, x); }
tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_EXP, x); }
tg_tensor *tg_log(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_LOG, x); }
tg_tensor *tg_abs(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_ABS, x); }
tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_SIGMOID, x); }
tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_TANH, x); }
tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_RELU, x); }
tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x) { return unary(tape, TG_OP_TRANSPOSE, x); }
tg_tensor *tg_log_sigmoid(tg_tape *tape, tg_tensor *x)
{
    return unary(tape, TG_OP_LOG_SIGMOID, x);
}

tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi)
{
    return tg_tape__record(tape, TG_OP_CLAMP, x, NULL, (tg_attr){.clamp = {lo, hi}});
}

tg_tensor *tg_scale(tg_tape *tape, tg_tensor *x, double c)
{
    return with_constant(tape, TG_OP_SCALE, x, c);
}
tg_tensor *tg_add_scalar(tg_tape *tape, tg_tensor *x, double c)
{
    return with_constant(tape, TG_OP_ADD_SCALAR, x, c);
}
tg_tensor *tg_pow(tg_tape *tape, tg_tensor *x, double exponent)
{
    return with_constant(tape, TG_OP_POW, x, exponent);
}

tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int rank, const size_t *shape)
{
    return tg_tape__record(tape, TG_OP_RESHAPE, x, NULL,
                           (tg_attr){.reshape = {shape, rank}});
}

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, TG_OP_SUM, x, axis, keepdim);
}
tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, TG_OP_MEAN, x, axis, keepdim);
}
tg_tensor *tg_max(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, TG_OP_MAX, x, axis, keepdim);
}
tg_tensor *tg_logsumexp(tg_tape *tape, tg_tensor *x, int axis, bool keepdim)
{
    return along(tape, TG_OP_LOGSUMEXP, x, axis, keepdim);
}
tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return along(tape, TG_OP_SOFTMAX, x, axis, true);
}
tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    return along(tape, TG_OP_LOG_SOFTMAX, x, axis, true);
}
