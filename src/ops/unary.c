/* unary.c: the elementwise ops of one input, y[i] = f(x[i]). Each is written as its math:
 * UNARY_OP(id, ENUM, attribute kind, forward expression of x (and the constant c), VJP
 * expression of x, y, dy (and c)) makes its element functions for f32 and f64, its loops, its
 * descriptor tg_op__id and its constructor tg_id. The loops are written once, in the
 * skeletons after this comment, and instantiated per op with that op's element functions
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
TG_INLINE void unary_forward_elems(const tg_tensor *y, size_t lo, size_t hi, unary_y_f32 f32,
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

/* dx[i] += g(x[i], y[i], dy[i]) for i in [lo, hi) */
TG_INLINE void unary_vjp_elems(const tg_tensor *y, void *dx, size_t lo, size_t hi, unary_dx_f32 f32,
                               unary_dx_f64 f64)
{
    if (y->dtype == TG_F32) {
        const float *X = y->in[0]->data, *Y = y->data, *DY = y->grad, c = (float)y->attr.c;
        float *DX = dx;
        for (size_t i = lo; i < hi; i++)
            DX[i] += f32(X[i], Y[i], DY[i], c);
    } else {
        const double *X = y->in[0]->data, *Y = y->data, *DY = y->grad, c = y->attr.c;
        double *DX = dx;
        for (size_t i = lo; i < hi; i++)
            DX[i] += f64(X[i], Y[i], DY[i], c);
    }
}

/* Beyond a single element: the loop right here when it is short, else `range` (the op's
 * loop over a range) over the pool. Each op instantiates these in a function of its own,
 * compiled for each instruction set (TG_SIMD_CLONES), out of line so that the single-element
 * path of its forward and VJP needs no stack frame. */
TG_INLINE void unary_forward_many(tg_tensor *y, tg_range_fn range, unary_y_f32 f32, unary_y_f64 f64)
{
    if (y->numel < 2 * TG_PAR_GRAIN) {
        unary_forward_elems(y, 0, y->numel, f32, f64);
    } else {
        tg_par_range ctx = {y, y->data};
        tg__parallel_run(y->numel, TG_PAR_GRAIN, range, &ctx);
    }
}

TG_INLINE void unary_vjp_many(const tg_tensor *y, void *dx, tg_range_fn range, unary_dx_f32 f32,
                              unary_dx_f64 f64)
{
    if (y->numel < 2 * TG_PAR_GRAIN) {
        unary_vjp_elems(y, dx, 0, y->numel, f32, f64);
    } else {
        tg_par_range ctx = {y, dx};
        tg__parallel_run(y->numel, TG_PAR_GRAIN, range, &ctx);
    }
}

/* One op: its element functions (T is the element type inside FWD and VJP), its loops over
 * a range (the pool's tasks) and over many elements, its forward and VJP, and its
 * descriptor. */
#define UNARY_OP(id, ENUM, ATTRS, FWD, VJP)                                                        \
    static inline float id##_y_f32(float x, float c)                                               \
    {                                                                                              \
        typedef float T;                                                                           \
        (void)c;                                                                                   \
        return (T)(FWD);                                                                           \
    }                                                                                              \
    static inline double id##_y_f64(double x, double c)                                            \
    {                                                                                              \
        typedef double T;                                                                          \
        (void)c;                                                                                   \
        return (T)(FWD);                                                                           \
    }                                                                                              \
    static inline float id##_dx_f32(float x, float y, float dy, float c)                           \
    {                                                                                              \
        typedef float T;                                                                           \
        (void)x, (void)y, (void)dy, (void)c;                                                       \
        return (T)(VJP);                                                                           \
    }                                                                                              \
    static inline double id##_dx_f64(double x, double y, double dy, double c)                      \
    {                                                                                              \
        typedef double T;                                                                          \
        (void)x, (void)y, (void)dy, (void)c;                                                       \
        return (T)(VJP);                                                                           \
    }                                                                                              \
    static TG_SIMD_CLONES void id##_forward_range(void *ctx, size_t lo, size_t hi)                 \
    {                                                                                              \
        unary_forward_elems(((const tg_par_range *)ctx)->y, lo, hi, id##_y_f32, id##_y_f64);       \
    }                                                                                              \
    static TG_SIMD_CLONES void id##_vjp_range(void *ctx, size_t lo, size_t hi)                     \
    {                                                                                              \
        const tg_par_range *p = ctx;                                                               \
        unary_vjp_elems(p->y, p->out, lo, hi, id##_dx_f32, id##_dx_f64);                           \
    }                                                                                              \
    static TG_SIMD_CLONES __attribute__((noinline)) void id##_forward_many(tg_tensor *y)           \
    {                                                                                              \
        unary_forward_many(y, id##_forward_range, id##_y_f32, id##_y_f64);                         \
    }                                                                                              \
    static TG_SIMD_CLONES                                                                          \
        __attribute__((noinline)) void id##_vjp_many(const tg_tensor *y, void *dx)                 \
    {                                                                                              \
        unary_vjp_many(y, dx, id##_vjp_range, id##_dx_f32, id##_dx_f64);                           \
    }                                                                                              \
    /* a single element right here (a graph of 0-d tensors is made of nothing else) */             \
    TG_INLINE void id##_forward(tg_tensor *y)                                                      \
    {                                                                                              \
        if (TG_LIKELY(y->numel == 1))                                                              \
            unary_forward_elems(y, 0, 1, id##_y_f32, id##_y_f64);                                  \
        else                                                                                       \
            id##_forward_many(y);                                                                  \
    }                                                                                              \
    static void id##_vjp(tg_tape *tape, tg_tensor *y)                                              \
    {                                                                                              \
        void *dx = tg_tape__grad_of(tape, y->in[0]);                                               \
        if (!dx)                                                                                   \
            return;                                                                                \
        if (TG_LIKELY(y->numel == 1))                                                              \
            unary_vjp_elems(y, dx, 0, 1, id##_dx_f32, id##_dx_f64);                                \
        else                                                                                       \
            id##_vjp_many(y, dx);                                                                  \
    }                                                                                              \
    const tg_op_desc tg_op__##id = {                                                               \
        .info = {.name = #id, .arity = 1, .attrs = TG_ATTR_##ATTRS, .differentiable = true},       \
        .op = TG_OP_##ENUM,                                                                        \
        .shape = tg_ops__same_shape,                                                               \
        .forward = id##_forward,                                                                   \
        .vjp = id##_vjp,                                                                           \
    };                                                                                             \
    UNARY_CONSTRUCTOR_##ATTRS(id)

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
#define SIGMOID(x) _Generic((x), float : sigmoid_f32, default : sigmoid_f64)(x)

/* tanh is the library's own (tg__tanh, core/detmath.h); f32 rounds its f64 result. */
static inline float tanh_f32(float x)
{
    return (float)tg__tanh(x);
}
#define TANH(x) _Generic((x), float : tanh_f32, default : tg__tanh)(x)

/* y = -x;  dx += -dy */
UNARY_OP(neg, NEG, NONE, -x, -dy)
/* y = c*x;  dx += c*dy */
UNARY_OP(scale, SCALE, CONSTANT, c *x, c *dy)
/* y = x + c;  dx += dy */
UNARY_OP(add_scalar, ADD_SCALAR, CONSTANT, x + c, dy)
/* y = x^c;  dx += dy * c * x^(c-1)   (C's pow() at the edges; x^0 = 1 has slope 0 everywhere,
 * also at x = 0, where c * x^(c-1) would be 0 * Inf = NaN) */
UNARY_OP(pow, POW, CONSTANT, pow(x, c), c == 0 ? 0 : dy * c * pow(x, c - 1))
/* y = x^2;  dx += dy * 2x */
UNARY_OP(square, SQUARE, NONE, x *x, dy * 2 * x)
/* y = sqrt(x);  dx += dy / (2y)   (+Inf at 0) */
UNARY_OP(sqrt, SQRT, NONE, sqrt(x), dy / (2 * y))
/* y = e^x;  dx += dy * y */
UNARY_OP(exp, EXP, NONE, exp(x), dy *y)
/* y = ln x;  dx += dy / x   (log 0 = -Inf with gradient +Inf; log of x < 0 is NaN) */
UNARY_OP(log, LOG, NONE, log(x), dy / x)
/* y = |x|;  dx += dy * sign(x), sign(0) = 0 */
UNARY_OP(abs, ABS, NONE, fabs(x), x > 0 ? dy : (x < 0 ? -dy : 0))
/* y = 1/(1+e^-x);  dx += dy * y * (1-y) */
UNARY_OP(sigmoid, SIGMOID, NONE, SIGMOID(x), dy *y *(1 - y))
/* y = tanh x;  dx += dy * (1 - y^2) */
UNARY_OP(tanh, TANH, NONE, TANH(x), dy *(1 - y * y))
/* y = max(x, 0);  dx += dy where x > 0, relu'(0) = 0  (NaN stays NaN, so anomaly mode sees it) */
UNARY_OP(relu, RELU, NONE, x<0 ? 0 : x, x> 0 ? dy : 0)
/* y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|);  dx += dy * sigmoid(-x) */
UNARY_OP(log_sigmoid, LOG_SIGMOID, NONE, (x < 0 ? x : 0) - log1p(exp(-fabs(x))), dy *SIGMOID(-x))

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

const tg_op_desc tg_op__clamp = {
    .info = {.name = "clamp", .arity = 1, .attrs = TG_ATTR_RANGE, .differentiable = true},
    .op = TG_OP_CLAMP,
    .shape = clamp_shape,
    .forward = clamp_forward,
    .vjp = clamp_vjp,
};

tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi)
{
    return tg_tape__record(tape, &tg_op__clamp, x, NULL, (tg_node_attr){.range = {lo, hi}});
}

/* ---- elementwise math ------------------------------------------------------------------------
 * The C library's functions, through <tgmath.h>: sinf for f32, sin for f64. Every constant
 * inside a call is cast to T, since an argument of type double (or int) would make tgmath
 * pick the double function for f32 too. */

/* A function of one argument for both element types from one expression of x in T: id_f32
 * and id_f64, which BY_TYPE(id, x) picks by the type of x. */
#define ELEM_HELPER(id, EXPR)                                                                      \
    static inline float id##_f32(float x)                                                          \
    {                                                                                              \
        typedef float T;                                                                           \
        return (T)(EXPR);                                                                          \
    }                                                                                              \
    static inline double id##_f64(double x)                                                        \
    {                                                                                              \
        typedef double T;                                                                          \
        return (T)(EXPR);                                                                          \
    }
#define BY_TYPE(id, x) _Generic((x), float : id##_f32, default : id##_f64)(x)

/* x * f for a factor f that vanishes faster than x grows (Phi(x), phi(x), sigmoid'(x) in a
 * tail): 0 where f has underflowed to 0, so that x = +-inf gives the limit 0, not inf * 0 =
 * NaN. A NaN f stays NaN. */
static inline float times_vanishing_f32(float x, float f)
{
    return f == 0 ? 0 : x * f;
}
static inline double times_vanishing_f64(double x, double f)
{
    return f == 0 ? 0 : x * f;
}
#define TIMES_VANISHING(x, f)                                                                      \
    _Generic((x), float : times_vanishing_f32, default : times_vanishing_f64)(x, f)

/* Phi(x) = erfc(-x/sqrt 2) / 2, the standard normal CDF: erfc keeps its relative accuracy in
 * the lower tail, where 1 + erf(x/sqrt 2) would cancel */
ELEM_HELPER(normal_cdf, (T)0.5 * erfc(-x * (T)0.70710678118654752440))
#define NORMAL_CDF(x) BY_TYPE(normal_cdf, x)
/* phi(x) = e^(-x^2/2) / sqrt(2 pi), the standard normal density (0, not NaN, at +-inf) */
ELEM_HELPER(normal_pdf, exp(-(x *x) / 2) * (T)0.39894228040143267794)
#define NORMAL_PDF(x) BY_TYPE(normal_pdf, x)
/* sigmoid'(x) = s (1 - s) = e / (1 + e)^2 with e = e^-|x| in (0, 1]: no cancellation, no
 * overflow */
ELEM_HELPER(sigmoid_slope, exp(-fabs(x)) / ((1 + exp(-fabs(x))) * (1 + exp(-fabs(x)))))
#define SIGMOID_SLOPE(x) BY_TYPE(sigmoid_slope, x)

/* y = sin x;  dx += dy * cos x */
UNARY_OP(sin, SIN, NONE, sin(x), dy *cos(x))
/* y = cos x;  dx += -dy * sin x */
UNARY_OP(cos, COS, NONE, cos(x), -dy *sin(x))
/* y = tan x;  dx += dy * (1 + y^2) */
UNARY_OP(tan, TAN, NONE, tan(x), dy *(1 + y * y))
/* y = asin x;  dx += dy / sqrt((1-x)(1+x))   (1 - x is exact near 1, where 1 - x^2 would lose
 * digits; +inf at +-1; NaN for |x| > 1) */
UNARY_OP(asin, ASIN, NONE, asin(x), dy / sqrt((1 - x) * (1 + x)))
/* y = acos x;  dx += -dy / sqrt((1-x)(1+x))   (-inf at +-1; NaN for |x| > 1) */
UNARY_OP(acos, ACOS, NONE, acos(x), -dy / sqrt((1 - x) * (1 + x)))
/* y = atan x;  dx += dy / (1 + x^2)   (x^2 = inf for huge x gives the limit 0) */
UNARY_OP(atan, ATAN, NONE, atan(x), dy / (1 + x * x))
/* y = sinh x;  dx += dy * cosh x */
UNARY_OP(sinh, SINH, NONE, sinh(x), dy *cosh(x))
/* y = cosh x;  dx += dy * sinh x */
UNARY_OP(cosh, COSH, NONE, cosh(x), dy *sinh(x))
/* y = asinh x;  dx += dy / hypot(x, 1)   (sqrt(x^2 + 1) would overflow beyond 1e154) */
UNARY_OP(asinh, ASINH, NONE, asinh(x), dy / hypot(x, (T)1))
/* y = acosh x;  dx += dy / (sqrt(x-1) sqrt(x+1))   ((x-1)(x+1) would overflow for large x;
 * +inf at 1; NaN for x < 1) */
UNARY_OP(acosh, ACOSH, NONE, acosh(x), dy / (sqrt(x - 1) * sqrt(x + 1)))
/* y = atanh x;  dx += dy / ((1-x)(1+x))   (+inf at +-1; NaN for |x| > 1, where the formula
 * alone would give a finite number) */
UNARY_OP(atanh, ATANH, NONE, atanh(x), fabs(x) <= 1 ? dy / ((1 - x) * (1 + x)) : (T)NAN)
/* y = e^x - 1;  dx += dy * e^x   (y + 1 would cancel for x < 0) */
UNARY_OP(expm1, EXPM1, NONE, expm1(x), dy *exp(x))
/* y = log(1 + x);  dx += dy / (1 + x)   (as log: -inf at -1 with gradient +inf) */
UNARY_OP(log1p, LOG1P, NONE, log1p(x), dy / (1 + x))
/* y = erf x;  dx += dy * (2/sqrt pi) e^(-x^2) */
UNARY_OP(erf, ERF, NONE, erf(x), dy *(T)1.12837916709551257390 * exp(-(x * x)))
/* y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dx += dy * sigmoid(x) */
UNARY_OP(softplus, SOFTPLUS, NONE, (x > 0 ? x : 0) + log1p(exp(-fabs(x))), dy *SIGMOID(x))
/* y = x Phi(x);  dx += dy * (Phi(x) + x phi(x)) */
UNARY_OP(gelu, GELU, NONE, TIMES_VANISHING(x, NORMAL_CDF(x)),
         dy *(NORMAL_CDF(x) + TIMES_VANISHING(x, NORMAL_PDF(x))))
/* y = x sigmoid(x);  dx += dy * (s + x s (1-s)), s = sigmoid(x) */
UNARY_OP(silu, SILU, NONE, TIMES_VANISHING(x, SIGMOID(x)),
         dy *(SIGMOID(x) + TIMES_VANISHING(x, SIGMOID_SLOPE(x))))
/* y = sign x (0 at 0, NaN for NaN);  dx += 0 */
UNARY_OP(sign, SIGN, NONE, x > 0 ? 1 : (x < 0 ? -1 : x), 0)
/* y = floor x;  dx += 0 */
UNARY_OP(floor, FLOOR, NONE, floor(x), 0)
/* y = ceil x;  dx += 0 */
UNARY_OP(ceil, CEIL, NONE, ceil(x), 0)
