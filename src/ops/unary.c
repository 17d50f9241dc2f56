/* unary.c: the elementwise ops of one input, y[i] = f(x[i]). Each is written as its math:
 * UNARY_OP(id, ENUM, attribute kind, forward expression of x (and the constant c), VJP
 * expression of x, y, dy (and c), the same VJP as ops of the tape tensors x, y, dy (and the
 * double c)) makes its element functions for f32 and f64, its loops, its differentiable VJP
 * (tg_grad_graph), its descriptor tg_op__id and its constructor tg_id. The loops are written once,
 * in the skeletons after this comment, and instantiated per op with that op's element functions
 * inlined; those over many elements are also compiled for AVX-512 and AVX2 (TG_SIMD_CLONES,
 * core/core.h), so tanh's arithmetic, say, runs 8 or 4 doubles wide. */
#include "ops/op_impl.h"

#include "core/detmath.h"

#include <tgmath.h>

/* Element functions: the forward y = f(x) and the VJP term dx = g(x, y, dy), with the op's
 * constant c. */
typedef float (*unary_y_f32)(float x, float c);
typedef double (*unary_y_f64)(double x, double c);
typedef float (*unary_dx_f32)(float x, float y, float dy, float c);
typedef double (*unary_dx_f64)(double x, double y, double dy, double c);

/* ---- the loops ------------------------------------------------------------------------------ */

/* y[i] = f(x[i]) for i in [lo, hi) */
TG_INLINE void unary_forward_loop(const tg_tensor *y, size_t lo, size_t hi, unary_y_f32 f32,
                                  unary_y_f64 f64)
{
    if (y->dtype == TG_F32) {
        const float *X = y->in[0]->data, c = (float)y->attr.c;
        float *Y = y->data;
        for (size_t i = lo; i < hi; i++)
            Y[i] = f32(X[i], c);
    } else {
        const double *X = y->in[0]->data, c = y->attr.c;
        double *Y = y->data;
        for (size_t i = lo; i < hi; i++)
            Y[i] = f64(X[i], c);
    }
}

/* dx[i] += g(x[i], y[i], dy[i]) for i in [lo, hi); with `fresh` (dx is x's gradient buffer
 * on its first touch in the pass, not zeroed: tg_ops__grad_of_fresh) dx[i] = 0 + g(...),
 * the same bits without reading dx or zeroing it first. */
TG_INLINE void unary_vjp_loop(const tg_tensor *y, void *dx, bool fresh, size_t lo, size_t hi,
                              unary_dx_f32 f32, unary_dx_f64 f64)
{
    if (y->dtype == TG_F32) {
        const float *X = y->in[0]->data, *Y = y->data, *DY = y->grad, c = (float)y->attr.c;
        float *DX = dx;
        if (fresh)
            for (size_t i = lo; i < hi; i++)
                DX[i] = 0.0f + f32(X[i], Y[i], DY[i], c);
        else
            for (size_t i = lo; i < hi; i++)
                DX[i] += f32(X[i], Y[i], DY[i], c);
    } else {
        const double *X = y->in[0]->data, *Y = y->data, *DY = y->grad, c = y->attr.c;
        double *DX = dx;
        if (fresh)
            for (size_t i = lo; i < hi; i++)
                DX[i] = 0.0 + f64(X[i], Y[i], DY[i], c);
        else
            for (size_t i = lo; i < hi; i++)
                DX[i] += f64(X[i], Y[i], DY[i], c);
    }
}

/* Whether x[lo, hi) lies within [-limit, limit] (no inf, no NaN), for an op whose vectorized
 * element functions hold only there (limit > 0: sin, cos and tan, whose argument reduction is
 * inline up to TG_TRIG_INLINE_MAX); always, for limit 0. One pass that vectorizes, so that the
 * range takes the vectorized loop when it can and the scalar one of the op's _any functions,
 * which hold everywhere, when it must. */
TG_INLINE bool within_limit(const tg_tensor *x, size_t lo, size_t hi, double limit)
{
    if (limit == 0)
        return true;
    int out = 0;
    if (x->dtype == TG_F32) {
        const float *X = x->data, lim = (float)limit;
        for (size_t i = lo; i < hi; i++)
            out |= !(fabsf(X[i]) <= lim);
    } else {
        const double *X = x->data;
        for (size_t i = lo; i < hi; i++)
            out |= !(fabs(X[i]) <= limit);
    }
    return !out;
}

/* A VJP's range over the pool: the node, x's gradient buffer, and whether it is fresh. */
typedef struct unary_vjp_ctx {
    const tg_tensor *y;
    void *dx;
    bool fresh;
} unary_vjp_ctx;

/* Beyond a single element: `range` (the op's loop over a range) right here when it is short,
 * else over the pool. Each op instantiates these in a function of its own, compiled for each
 * instruction set (TG_SIMD_CLONES), out of line so that the single-element path of its forward
 * and VJP needs no stack frame. */
TG_INLINE void unary_forward_many(tg_tensor *y, tg_range_fn range)
{
    tg_par_range ctx = {y, y->data};
    if (y->numel < 2 * TG_PAR_GRAIN)
        range(&ctx, 0, y->numel);
    else
        tg__parallel_run(y->numel, TG_PAR_GRAIN, range, &ctx);
}

TG_INLINE void unary_vjp_many(const tg_tensor *y, void *dx, bool fresh, tg_range_fn range)
{
    unary_vjp_ctx ctx = {y, dx, fresh};
    if (y->numel < 2 * TG_PAR_GRAIN)
        range(&ctx, 0, y->numel);
    else
        tg__parallel_run(y->numel, TG_PAR_GRAIN, range, &ctx);
}

/* An op's constant as it computes with it: rounded to f32 in an f32 op, in its forward and
 * in-place VJP alike, so the recorded gradient must round it too. */
static inline double as_computed(const tg_tensor *y, double c)
{
    return y->dtype == TG_F32 ? (double)(float)c : c;
}

/* An op's element functions Y_f32 and Y_f64 (its forward) and DX_f32 and DX_f64 (its VJP), from
 * expressions in which T is the element type. */
#define UNARY_ELEMS(Y, DX, FWD, VJP)                                                               \
    TG_INLINE float Y##_f32(float x, float c)                                                      \
    {                                                                                              \
        typedef float T;                                                                           \
        (void)c;                                                                                   \
        return (T)(FWD);                                                                           \
    }                                                                                              \
    TG_INLINE double Y##_f64(double x, double c)                                                   \
    {                                                                                              \
        typedef double T;                                                                          \
        (void)c;                                                                                   \
        return (T)(FWD);                                                                           \
    }                                                                                              \
    TG_INLINE float DX##_f32(float x, float y, float dy, float c)                                  \
    {                                                                                              \
        typedef float T;                                                                           \
        (void)x, (void)y, (void)dy, (void)c;                                                       \
        return (T)(VJP);                                                                           \
    }                                                                                              \
    TG_INLINE double DX##_f64(double x, double y, double dy, double c)                             \
    {                                                                                              \
        typedef double T;                                                                          \
        (void)x, (void)y, (void)dy, (void)c;                                                       \
        return (T)(VJP);                                                                           \
    }

/* One op: its element functions (T is the element type inside FWD and VJP), its loops over
 * a range (the pool's tasks) and over many elements, its forward and VJP, its differentiable
 * VJP (GVJP: an expression of tape tensors x, y, dy and the double c giving x's share, or NULL
 * for none) and its descriptor. */
#define UNARY_OP(id, ENUM, ATTRS, FWD, VJP, GVJP)                                                  \
    UNARY_OP_LIMITED(id, ENUM, ATTRS, FWD, VJP, GVJP, 0, FWD, VJP)

/* The same for an op whose FWD and VJP hold only for |x| <= LIMIT (> 0), so that their loops
 * vectorize: FWD_ANY and VJP_ANY hold everywhere, and take the ranges that need them
 * (within_limit) and the few-element paths. */
#define UNARY_OP_LIMITED(id, ENUM, ATTRS, FWD, VJP, GVJP, LIMIT, FWD_ANY, VJP_ANY)                 \
    UNARY_ELEMS(id##_y, id##_dx, FWD, VJP)                                                         \
    UNARY_ELEMS(id##_y_any, id##_dx_any, FWD_ANY, VJP_ANY)                                         \
    static TG_SIMD_CLONES void id##_forward_range(void *ctx, size_t lo, size_t hi)                 \
    {                                                                                              \
        const tg_tensor *y = ((const tg_par_range *)ctx)->y;                                       \
        if (within_limit(y->in[0], lo, hi, LIMIT))                                                 \
            unary_forward_loop(y, lo, hi, id##_y_f32, id##_y_f64);                                 \
        else                                                                                       \
            unary_forward_loop(y, lo, hi, id##_y_any_f32, id##_y_any_f64);                         \
    }                                                                                              \
    static TG_SIMD_CLONES void id##_vjp_range(void *ctx, size_t lo, size_t hi)                     \
    {                                                                                              \
        const unary_vjp_ctx *p = ctx;                                                              \
        if (within_limit(p->y->in[0], lo, hi, LIMIT))                                              \
            unary_vjp_loop(p->y, p->dx, p->fresh, lo, hi, id##_dx_f32, id##_dx_f64);               \
        else                                                                                       \
            unary_vjp_loop(p->y, p->dx, p->fresh, lo, hi, id##_dx_any_f32, id##_dx_any_f64);       \
    }                                                                                              \
    static TG_SIMD_CLONES __attribute__((noinline)) void id##_forward_many(tg_tensor *y)           \
    {                                                                                              \
        unary_forward_many(y, id##_forward_range);                                                 \
    }                                                                                              \
    static TG_SIMD_CLONES                                                                          \
        __attribute__((noinline)) void id##_vjp_many(const tg_tensor *y, void *dx, bool fresh)     \
    {                                                                                              \
        unary_vjp_many(y, dx, fresh, id##_vjp_range);                                              \
    }                                                                                              \
    /* a few elements right here (a graph of 0-d tensors is made of nothing else) */               \
    TG_INLINE void id##_forward(tg_tensor *y)                                                      \
    {                                                                                              \
        if (y->rank == 0) /* one element, no loop */                                               \
            unary_forward_loop(y, 0, 1, id##_y_any_f32, id##_y_any_f64);                           \
        else if (TG_LIKELY(y->numel <= TG_FEW))                                                    \
            unary_forward_loop(y, 0, y->numel, id##_y_any_f32, id##_y_any_f64);                    \
        else                                                                                       \
            id##_forward_many(y);                                                                  \
    }                                                                                              \
    static TG_FEW_NO_VEC void id##_vjp(tg_tape *tape, tg_tensor *y)                                \
    {                                                                                              \
        if (TG_LIKELY(y->numel <= TG_FEW)) {                                                       \
            void *dx = tg_tape__grad_of(tape, y->in[0]);                                           \
            if (dx)                                                                                \
                unary_vjp_loop(y, dx, false, 0, y->rank == 0 ? 1 : y->numel, id##_dx_any_f32,      \
                               id##_dx_any_f64);                                                   \
            return;                                                                                \
        }                                                                                          \
        bool fresh; /* a first touch is written, not zeroed and added to */                        \
        void *dx = tg_ops__grad_of_fresh(tape, y->in[0], &fresh);                                  \
        if (dx)                                                                                    \
            id##_vjp_many(y, dx, fresh);                                                           \
    }                                                                                              \
    static tg_status id##_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)    \
    {                                                                                              \
        tg_tensor *x = y->in[0];                                                                   \
        /* rounded as computed (pow's c - 1 from the unrounded c, 1.00000001, would be 1e-8,       \
         * not 0: x^(1e-8), NaN for x < 0) */                                                      \
        const double c = as_computed(y, y->attr.c);                                                \
        (void)c, (void)dy;                                                                         \
        if (x->requires_grad)                                                                      \
            dx[0] = (GVJP);                                                                        \
        return tg_tape_status(tape);                                                               \
    }                                                                                              \
    const tg_op_desc tg_op__##id = {                                                               \
        .info = {.name = #id, .arity = 1, .attrs = TG_ATTR_##ATTRS, .differentiable = true},       \
        .op = TG_OP_##ENUM,                                                                        \
        .shape = UNARY_SHAPE_##ATTRS,                                                              \
        .forward = id##_forward,                                                                   \
        .vjp = id##_vjp,                                                                           \
        .vjp_graph = id##_vjp_graph,                                                               \
    };                                                                                             \
    UNARY_CONSTRUCTOR_##ATTRS(id)

/* The shape rule of an op without attributes, and of one with a constant: an f32 op computes
 * with the constant rounded to f32, so one that f32 cannot hold (beyond 3.4e38, or nonzero
 * and below 1.4e-45, which would round to 0) would change the result without a word. */
#define UNARY_SHAPE_NONE tg_ops__same_shape
#define UNARY_SHAPE_CONSTANT constant_shape
static tg_status constant_shape(tg_tensor *y, char *msg, size_t size)
{
    const double c = y->attr.c;
    if (y->dtype == TG_F32 && tg__f32_cannot_hold(c)) {
        snprintf(msg, size,
                 "the constant %g does not fit f32 (nonzero magnitudes from 1.4e-45 to 3.4e38)", c);
        return TG_EINVAL;
    }
    return tg_ops__same_shape(y, msg, size);
}

/* The constructor of an op without attributes, tg_id(tape, x), and of one with a constant,
 * tg_id(tape, x, c): each records through its descriptor. */
#define UNARY_CONSTRUCTOR_NONE(id)                                                                 \
    tg_tensor *tg_##id(tg_tape *tape, tg_tensor *x)                                                \
    {                                                                                              \
        return tg_tape__record(tape, &tg_op__##id, x, NULL, (tg_node_attr){.c = 0});               \
    }
#define UNARY_CONSTRUCTOR_CONSTANT(id)                                                             \
    tg_tensor *tg_##id(tg_tape *tape, tg_tensor *x, double c)                                      \
    {                                                                                              \
        return tg_tape__record(tape, &tg_op__##id, x, NULL, (tg_node_attr){.c = c});               \
    }

tg_status tg_ops__same_shape(tg_tensor *y, char *msg, size_t size)
{
    TG_UNUSED(msg);
    TG_UNUSED(size);
    tg_ops__copy_shape(y, y->in[0]);
    return TG_OK;
}

/* ---- the ops --------------------------------------------------------------------------------- */

/* sigmoid is the library's own (tg__sigmoid, core/detmath.h: no overflow, vectorizes); f32
 * rounds its f64 result. */
TG_INLINE float sigmoid_f32(float x)
{
    return (float)tg__sigmoid(x);
}
TG_INLINE double sigmoid_f64(double x)
{
    return tg__sigmoid(x);
}
#define SIGMOID(x) _Generic((x), float : sigmoid_f32, default : sigmoid_f64)(x)

/* tanh is the library's own (tg__tanh, core/detmath.h); f32 rounds its f64 result. */
TG_INLINE float tanh_f32(float x)
{
    return (float)tg__tanh(x);
}
#define TANH(x) _Generic((x), float : tanh_f32, default : tg__tanh)(x)

/* Shorthands of the differentiable VJPs (beside op_impl.h's GADD ...; x and tape in scope): a
 * 0-d constant of x's dtype, 1 - p, (1 - x)(1 + x) as the in-place VJPs compute it, and g
 * made NaN where a 0/1 mask (a comparison: a constant) is 1: g * (1 + sqrt(-mask)), which is
 * g * 1 exactly elsewhere. A factor, not a term: a NaN added as a constant would vanish from
 * the derivatives of the gradient (in dy and in x), which must be NaN there too. */
#define GCONST(v) tg_scalar(tape, (tg_dtype)x->dtype, (v))
#define GONE_MINUS(p) GADDC(GNEG(p), 1)
#define GONE_MINUS_X2 GMUL(GONE_MINUS(x), GADDC(x, 1))
#define GNAN_WHERE(g, mask) GMUL((g), GADDC(tg_sqrt(tape, GNEG(mask)), 1))

/* The differentiable VJPs follow the in-place ones term for term (the same roundings where the
 * ops allow), and record piecewise-constant factors (relu's and clamp's masks, abs's sign) as
 * comparisons, which are constants; sign, floor and ceil give no share (NULL). Where the
 * in-place VJP takes a limit that no composition of ops reaches (gelu's and silu's x * (a
 * vanishing factor) at x = +-inf, relu's, abs's and clamp's 0 * dy for dy = +-inf), the graph gives
 * NaN. */

/* y = -x;  dx += -dy */
UNARY_OP(neg, NEG, NONE, -x, -dy, GNEG(dy))
/* y = c*x;  dx += c*dy */
UNARY_OP(scale, SCALE, CONSTANT, c *x, c *dy, GSCALE(dy, c))
/* y = x + c;  dx += dy */
UNARY_OP(add_scalar, ADD_SCALAR, CONSTANT, x + c, dy, dy)
/* x^(c-1) for pow's differentiable VJP (c as x's dtype holds it), with a factor of -1 where x < 0
 * from the magnitude where c - 1 rounds to an even number (tg_ops__even_from; not at x = -0,
 * which compares equal to 0). */
static tg_tensor *pow_slope_power(tg_tape *tape, tg_tensor *x, double c)
{
    tg_tensor *p = tg_pow(tape, x, c - 1);
    if (!(fabs(c) >= tg_ops__even_from((tg_dtype)x->dtype) && fabs(c) < INFINITY))
        return p;
    return GMUL(p, tg_where(tape, tg_lt(tape, x, GCONST(0)), GCONST(-1), GCONST(1)));
}
/* y = x^c;  dx += dy * c * x^(c-1)   (C99's pow at the edges; 0 where c = 0: tg_ops__pow_slope) */
UNARY_OP(pow, POW, CONSTANT, tg__pow(x, c), dy *tg_ops__pow_slope(x, c, c - 1),
         c == 0 ? NULL : GMUL(GSCALE(dy, c), pow_slope_power(tape, x, c)))
/* y = x^2;  dx += dy * 2x */
UNARY_OP(square, SQUARE, NONE, x *x, dy * 2 * x, GMUL(GSCALE(dy, 2), x))
/* y = sqrt(x);  dx += dy / (2y)   (+Inf at 0) */
UNARY_OP(sqrt, SQRT, NONE, sqrt(x), dy / (2 * y), GDIV(dy, GSCALE(y, 2)))
/* y = e^x;  dx += dy * y */
UNARY_OP(exp, EXP, NONE, EXP(x), dy *y, GMUL(dy, y))
/* y = ln x;  dx += dy / x   (log 0 = -Inf with gradient +Inf; log of x < 0 is NaN) */
UNARY_OP(log, LOG, NONE, LOG(x), dy / x, GDIV(dy, x))
/* y = |x|;  dx += dy * sign(x), sign(0) = 0  (as ops: dy * ((x > 0) - (x < 0)), 0 for NaN too) */
UNARY_OP(abs, ABS, NONE, fabs(x), x > 0 ? dy : (x < 0 ? -dy : 0),
         GMUL(dy, GSUB(tg_gt(tape, x, GCONST(0)), tg_lt(tape, x, GCONST(0)))))
/* y = 1/(1+e^-x);  dx += dy * y * (1-y) */
UNARY_OP(sigmoid, SIGMOID, NONE, SIGMOID(x), dy *y *(1 - y), GMUL(GMUL(dy, y), GONE_MINUS(y)))
/* y = tanh x;  dx += dy * (1 - y^2) */
UNARY_OP(tanh, TANH, NONE, TANH(x), dy *(1 - y * y), GMUL(dy, GONE_MINUS(tg_square(tape, y))))
/* y = max(x, 0);  dx += dy where x > 0, relu'(0) = 0  (NaN stays NaN, so anomaly mode sees it) */
UNARY_OP(relu, RELU, NONE, x<0 ? 0 : x, x> 0 ? dy : 0, GMUL(dy, tg_gt(tape, x, GCONST(0))))
/* y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|);  dx += dy * sigmoid(-x) */
UNARY_OP(log_sigmoid, LOG_SIGMOID, NONE, (x < 0 ? x : 0) - LOG1P(EXP(-fabs(x))), dy *SIGMOID(-x),
         GMUL(dy, tg_sigmoid(tape, GNEG(x))))

/* y = min(max(x, lo), hi);  dx += dy where lo <= x <= hi. Two constants, so its loops are its
 * own (short: a clamp is not a hot op). */
static tg_status clamp_shape(tg_tensor *y, char *msg, size_t size)
{
    double lo = y->attr.range.lo, hi = y->attr.range.hi;
    if (!(lo <= hi)) {
        snprintf(msg, size, "bounds [%g, %g] are empty or NaN", lo, hi);
        return TG_EINVAL;
    }
    return tg_ops__same_shape(y, msg, size);
}

static void clamp_forward(tg_tensor *y)
{
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data;
        T *Y = y->data;
        const T lo = (T)y->attr.range.lo, hi = (T)y->attr.range.hi;
        for (size_t i = 0, n = y->numel; i < n; i++)
            Y[i] = X[i] < lo ? lo : (X[i] > hi ? hi : X[i]);
    });
}

static void clamp_vjp(tg_tape *tape, tg_tensor *y)
{
    void *dx = tg_tape__grad_of(tape, y->in[0]);
    if (!dx)
        return;
    DISPATCH(y->dtype, {
        const T *X = y->in[0]->data, *DY = y->grad;
        T *DX = dx;
        const T lo = (T)y->attr.range.lo, hi = (T)y->attr.range.hi;
        for (size_t i = 0, n = y->numel; i < n; i++)
            DX[i] += X[i] >= lo && X[i] <= hi ? DY[i] : 0;
    });
}

/* as ops: dy * (x >= lo) * (x <= hi), a constant mask */
static tg_status clamp_vjp_graph(tg_tape *tape, tg_tensor *y, tg_tensor *dy, tg_tensor **dx)
{
    tg_tensor *x = y->in[0];
    /* the bounds rounded as computed (tg_scalar refuses a bound f32 cannot hold, which clamp
     * takes: 1e300 is inf there) */
    const double lo = as_computed(y, y->attr.range.lo), hi = as_computed(y, y->attr.range.hi);
    if (x->requires_grad)
        dx[0] = GMUL(dy, GMUL(tg_ge(tape, x, GCONST(lo)), tg_le(tape, x, GCONST(hi))));
    return tg_tape_status(tape);
}

const tg_op_desc tg_op__clamp = {
    .info = {.name = "clamp", .arity = 1, .attrs = TG_ATTR_RANGE, .differentiable = true},
    .op = TG_OP_CLAMP,
    .shape = clamp_shape,
    .forward = clamp_forward,
    .vjp = clamp_vjp,
    .vjp_graph = clamp_vjp_graph,
};

tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi)
{
    return tg_tape__record(tape, &tg_op__clamp, x, NULL, (tg_node_attr){.range = {lo, hi}});
}

/* ---- elementwise math ------------------------------------------------------------------------
 * The functions are the library's own (core/detmath.h: sin, cos, tan, asin, acos, atan, exp,
 * expm1, log1p, the hyperbolic functions and their inverses, erf, gelu, pow), computed in f64
 * (f32 rounds): their loops vectorize, with the same bits everywhere. What else calls
 * <tgmath.h> (sqrt, fabs, floor) casts every constant inside a call to T, since an argument of
 * type double (or int) would make tgmath pick the double function for f32 too. */

/* A function of one argument for both element types from one expression of x in T: id_f32
 * and id_f64, which BY_TYPE(id, x) picks by the type of x. */
#define ELEM_HELPER(id, EXPR)                                                                      \
    TG_INLINE float id##_f32(float x)                                                              \
    {                                                                                              \
        typedef float T;                                                                           \
        return (T)(EXPR);                                                                          \
    }                                                                                              \
    TG_INLINE double id##_f64(double x)                                                            \
    {                                                                                              \
        typedef double T;                                                                          \
        return (T)(EXPR);                                                                          \
    }
#define BY_TYPE(id, x) _Generic((x), float : id##_f32, default : id##_f64)(x)

/* x * f for a factor f that vanishes faster than x grows (sigmoid(x), sigmoid'(x) in a tail): 0
 * where f has underflowed to 0, so that x = +-inf gives the limit 0, not inf * 0 = NaN. A NaN f
 * stays NaN. */
TG_INLINE float times_vanishing_f32(float x, float f)
{
    return f == 0 ? 0 : x * f;
}
TG_INLINE double times_vanishing_f64(double x, double f)
{
    return f == 0 ? 0 : x * f;
}
#define TIMES_VANISHING(x, f)                                                                      \
    _Generic((x), float : times_vanishing_f32, default : times_vanishing_f64)(x, f)

/* sigmoid'(x) = s (1 - s) = e / (1 + e)^2 with e = e^-|x| in (0, 1]: no cancellation, no
 * overflow */
TG_INLINE float sigmoid_slope_f32(float x)
{
    const float e = EXP(-fabs(x));
    return e / ((1 + e) * (1 + e));
}
TG_INLINE double sigmoid_slope_f64(double x)
{
    const double e = EXP(-fabs(x));
    return e / ((1 + e) * (1 + e));
}
#define SIGMOID_SLOPE(x) BY_TYPE(sigmoid_slope, x)

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = e^(-x^2/2) / sqrt(2 pi) as ops (Phi loses
 * relative accuracy in the far lower tail, where the in-place erfc does not) */
#define GNORMAL_CDF(x) GADDC(GSCALE(tg_erf(tape, GSCALE(x, 0.70710678118654752440)), 0.5), 0.5)
#define GNORMAL_PDF(x)                                                                             \
    GSCALE(tg_exp(tape, GSCALE(tg_square(tape, x), -0.5)), 0.39894228040143267794)

/* y = sin x;  dx += dy * cos x   (the vectorized loops up to |x| = 2^20, core/detmath.h) */
UNARY_OP_LIMITED(sin, SIN, NONE, tg__sin(x), dy *(T)tg__cos(x), GMUL(dy, tg_cos(tape, x)),
                 TG_TRIG_INLINE_MAX, tg__sin_any(x), dy *(T)tg__cos_any(x))
/* y = cos x;  dx += -dy * sin x */
UNARY_OP_LIMITED(cos, COS, NONE, tg__cos(x), -dy *(T)tg__sin(x), GMUL(GNEG(dy), tg_sin(tape, x)),
                 TG_TRIG_INLINE_MAX, tg__cos_any(x), -dy *(T)tg__sin_any(x))
/* y = tan x;  dx += dy * (1 + y^2) */
UNARY_OP_LIMITED(tan, TAN, NONE, tg__tan(x), dy *(1 + y * y),
                 GMUL(dy, GADDC(tg_square(tape, y), 1)), TG_TRIG_INLINE_MAX, tg__tan_any(x),
                 dy *(1 + y * y))
/* y = asin x;  dx += dy / sqrt((1-x)(1+x))   (1 - x is exact near 1, where 1 - x^2 would lose
 * digits; +inf at +-1; NaN for |x| > 1) */
UNARY_OP(asin, ASIN, NONE, tg__asin(x), dy / sqrt((1 - x) * (1 + x)),
         GDIV(dy, tg_sqrt(tape, GONE_MINUS_X2)))
/* y = acos x;  dx += -dy / sqrt((1-x)(1+x))   (-inf at +-1; NaN for |x| > 1) */
UNARY_OP(acos, ACOS, NONE, tg__acos(x), -dy / sqrt((1 - x) * (1 + x)),
         GDIV(GNEG(dy), tg_sqrt(tape, GONE_MINUS_X2)))
/* y = atan x;  dx += dy / (1 + x^2)   (x^2 = inf for huge x gives the limit 0) */
UNARY_OP(atan, ATAN, NONE, tg__atan(x), dy / (1 + x * x), GDIV(dy, GADDC(tg_square(tape, x), 1)))
/* y = sinh x;  dx += dy * cosh x */
UNARY_OP(sinh, SINH, NONE, tg__sinh(x), dy *(T)tg__cosh(x), GMUL(dy, tg_cosh(tape, x)))
/* y = cosh x;  dx += dy * sinh x */
UNARY_OP(cosh, COSH, NONE, tg__cosh(x), dy *(T)tg__sinh(x), GMUL(dy, tg_sinh(tape, x)))
/* y = asinh x;  dx += dy / hypot(x, 1)   (sqrt(x^2 + 1) would overflow beyond 1e154: tg__hypot1;
 * as ops: dy / cosh(y), which is hypot(x, 1) without the overflow) */
UNARY_OP(asinh, ASINH, NONE, tg__asinh(x), dy / (T)tg__hypot1(x), GDIV(dy, tg_cosh(tape, y)))
/* y = acosh x;  dx += dy / (sqrt(x-1) sqrt(x+1))   ((x-1)(x+1) would overflow for large x;
 * +inf at 1; NaN for x < 1) */
UNARY_OP(acosh, ACOSH, NONE, tg__acosh(x), dy / (sqrt(x - 1) * sqrt(x + 1)),
         GDIV(dy, GMUL(tg_sqrt(tape, GADDC(x, -1)), tg_sqrt(tape, GADDC(x, 1)))))
/* y = atanh x;  dx += dy / ((1-x)(1+x))   (+inf at +-1; NaN for |x| > 1, where the formula
 * alone would give a finite number: as ops, made NaN there) */
UNARY_OP(atanh, ATANH, NONE, tg__atanh(x), fabs(x) <= 1 ? dy / ((1 - x) * (1 + x)) : (T)NAN,
         GNAN_WHERE(GDIV(dy, GONE_MINUS_X2), tg_gt(tape, tg_abs(tape, x), GCONST(1))))
/* y = e^x - 1;  dx += dy * e^x   (y + 1 would cancel for x < 0) */
UNARY_OP(expm1, EXPM1, NONE, tg__expm1(x), dy *EXP(x), GMUL(dy, tg_exp(tape, x)))
/* y = log(1 + x);  dx += dy / (1 + x)   (as log: -inf at -1 with gradient +inf) */
UNARY_OP(log1p, LOG1P, NONE, LOG1P(x), dy / (1 + x), GDIV(dy, GADDC(x, 1)))
/* y = erf x;  dx += dy * (2/sqrt pi) e^(-x^2)   (the library's own erf, and e^(-x^2) with x^2
 * exact, core/detmath.h: f32 rounds their f64 values) */
UNARY_OP(erf, ERF, NONE, tg__erf(x), dy *(T)tg__exp_neg_square(x, false, 1.12837916709551257390),
         GMUL(GSCALE(dy, 1.12837916709551257390), tg_exp(tape, GNEG(tg_square(tape, x)))))
/* y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dx += dy * sigmoid(x) */
UNARY_OP(softplus, SOFTPLUS, NONE, (x > 0 ? x : 0) + LOG1P(EXP(-fabs(x))), dy *SIGMOID(x),
         GMUL(dy, tg_sigmoid(tape, x)))
/* y = x Phi(x);  dx += dy * (Phi(x) + x phi(x))   (the library's own, tg__gelu and
 * tg__gelu_slope, core/detmath.h: the lower tail accurate down into the subnormals; f32 rounds
 * their f64 values) */
UNARY_OP(gelu, GELU, NONE, tg__gelu(x), dy *(T)tg__gelu_slope(x),
         GMUL(dy, GADD(GNORMAL_CDF(x), GMUL(x, GNORMAL_PDF(x)))))
/* y = x sigmoid(x);  dx += dy * (s + x s (1-s)), s = sigmoid(x)  (as ops: s (1 + x sigmoid(-x)),
 * where 1 - s does not cancel) */
UNARY_OP(silu, SILU, NONE, TIMES_VANISHING(x, SIGMOID(x)),
         dy *(SIGMOID(x) + TIMES_VANISHING(x, SIGMOID_SLOPE(x))),
         GMUL(dy, GMUL(tg_sigmoid(tape, x), GADDC(GMUL(x, tg_sigmoid(tape, GNEG(x))), 1))))
/* y = sign x (0 at 0, NaN for NaN);  dx += 0 */
UNARY_OP(sign, SIGN, NONE, x > 0 ? 1 : (x < 0 ? -1 : x), 0, NULL)
/* y = floor x;  dx += 0 */
UNARY_OP(floor, FLOOR, NONE, floor(x), 0, NULL)
/* y = ceil x;  dx += 0 */
UNARY_OP(ceil, CEIL, NONE, ceil(x), 0, NULL)
