/* tapegrad/ops.h: the primitive operations. Each constructor checks its inputs, computes the
 * result at once (eager), records one node on the tape and returns the result, owned by the
 * tape. On bad input it returns NULL and the tape keeps the error (see tapegrad/tape.h); called
 * on a tape that already has an error (so also with the NULL an earlier op returned), it
 * returns NULL quietly. A NULL input on a tape without an error is itself one (TG_EINVAL,
 * "add: input 0 is NULL").
 *
 * Inputs may be leaves or tensors recorded on the same tape; all inputs of one op must have
 * the same dtype (TG_EDTYPE otherwise). The result requires grad when any input does and the
 * tape's gradient recording is enabled.
 *
 * Conventions at kinks and edges (documented, tested): relu'(0) = 0 (and relu'(NaN) = 0: the
 * NaN is in relu's value, which anomaly mode reports), abs'(0) = 0; clamp passes the gradient
 * on its bounds; max gives its gradient to the first maximum on ties;
 * sigmoid is computed without overflow for any |x|; log(0) = -inf with gradient +inf, and
 * log(x < 0) = NaN, as IEEE 754 says; sqrt'(0) = +inf; pow follows C99's pow. The elementwise
 * math ops likewise: asin'(+-1) = +inf, acos'(+-1) = -inf, acosh'(1) = +inf, atanh(+-1) =
 * +-inf, NaN outside a domain; softplus, gelu and silu are finite for any finite x; sign,
 * floor and ceil have zero gradient, sign(0) = 0. minimum and maximum split the gradient
 * equally on ties; min, like max, gives it to the first minimum; where's NaN trap is
 * documented at tg_where. Broadcasting (add, sub, mul, div, the binary ops and where) follows
 * NumPy: shapes are aligned from the right and each pair of dimensions must be equal or one of
 * them 1; the VJPs sum over broadcast axes. */
#ifndef TAPEGRAD_OPS_H
#define TAPEGRAD_OPS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every op the tape can record; tg_op_name gives its name. */
typedef enum tg_op {
    TG_OP_CONST,       /* a constant recorded on the tape (no inputs) */
    TG_OP_DETACH,      /* the same values, cut from the graph */
    TG_OP_ADD,         /* a + b, NumPy broadcasting */
    TG_OP_SUB,         /* a - b, NumPy broadcasting */
    TG_OP_MUL,         /* a * b, NumPy broadcasting */
    TG_OP_DIV,         /* a / b, NumPy broadcasting */
    TG_OP_NEG,         /* -x */
    TG_OP_SCALE,       /* x * c */
    TG_OP_ADD_SCALAR,  /* x + c */
    TG_OP_POW,         /* x ^ c */
    TG_OP_SQUARE,      /* x ^ 2 */
    TG_OP_SQRT,        /* square root */
    TG_OP_EXP,         /* e ^ x */
    TG_OP_LOG,         /* natural logarithm */
    TG_OP_ABS,         /* |x| */
    TG_OP_SIGMOID,     /* 1 / (1 + e ^ -x), stable */
    TG_OP_TANH,        /* tanh x, the library's own */
    TG_OP_RELU,        /* max(x, 0) */
    TG_OP_LOG_SIGMOID, /* log(sigmoid(x)), stable */
    TG_OP_CLAMP,       /* min(max(x, lo), hi) */
    TG_OP_MATMUL,      /* a @ b, NumPy's matmul (1-D to 3-D operands) */
    TG_OP_TRANSPOSE,   /* (M,N) -> (N,M) */
    TG_OP_RESHAPE,     /* same elements, new shape */
    TG_OP_SUM,         /* sum over one axis or all */
    TG_OP_MEAN,        /* mean over one axis or all */
    TG_OP_MAX,         /* maximum over one axis or all */
    TG_OP_LOGSUMEXP,   /* log(sum(exp(x))) over one axis or all, stable */
    TG_OP_SOFTMAX,     /* softmax along one axis */
    TG_OP_LOG_SOFTMAX, /* log(softmax(x)) along one axis, stable */
    /* elementwise math */
    TG_OP_SIN,      /* sin x */
    TG_OP_COS,      /* cos x */
    TG_OP_TAN,      /* tan x */
    TG_OP_ASIN,     /* asin x */
    TG_OP_ACOS,     /* acos x */
    TG_OP_ATAN,     /* atan x */
    TG_OP_SINH,     /* sinh x */
    TG_OP_COSH,     /* cosh x */
    TG_OP_ASINH,    /* asinh x */
    TG_OP_ACOSH,    /* acosh x */
    TG_OP_ATANH,    /* atanh x */
    TG_OP_EXPM1,    /* e ^ x - 1, accurate near 0 */
    TG_OP_LOG1P,    /* log(1 + x), accurate near 0 */
    TG_OP_ERF,      /* the error function */
    TG_OP_SOFTPLUS, /* log(1 + e ^ x), without overflow */
    TG_OP_GELU,     /* x * Phi(x), Phi the normal CDF */
    TG_OP_SILU,     /* x * sigmoid(x) */
    TG_OP_SIGN,     /* sign x: 1, 0 or -1; no gradient */
    TG_OP_FLOOR,    /* floor x; no gradient */
    TG_OP_CEIL,     /* ceil x; no gradient */

    /* binary math, comparisons, selection */
    TG_OP_MINIMUM,    /* the smaller of a and b */
    TG_OP_MAXIMUM,    /* the larger of a and b */
    TG_OP_ATAN2,      /* atan2(y, x) */
    TG_OP_POW_TENSOR, /* a ^ b, b a tensor */
    TG_OP_LT,         /* comparisons: 0/1 masks, no gradient */
    TG_OP_LE,         /* a <= b */
    TG_OP_GT,         /* a > b */
    TG_OP_GE,         /* a >= b */
    TG_OP_EQ,         /* a == b */
    TG_OP_NE,         /* a != b */
    TG_OP_WHERE,      /* cond ? a : b, three inputs */

    /* reductions */
    TG_OP_MIN,  /* minimum over one axis or all */
    TG_OP_PROD, /* product over one axis or all */

    /* shape, indexing and joins */
    TG_OP_SLICE,   /* x[start:stop:step] along one axis */
    TG_OP_SELECT,  /* x[..., index, ...]: one index along one axis, which is dropped */
    TG_OP_CONCAT,  /* n tensors joined along an existing axis */
    TG_OP_STACK,   /* n tensors joined along a new axis */
    TG_OP_TAKE,    /* x's entries along one axis at the positions an index tensor holds */
    TG_OP_PERMUTE, /* any order of the axes */

    /* user-defined */
    TG_OP_CUSTOM, /* forward and VJP given by the user as C callbacks (tg_custom) */

    /* indexing, continued (added after the others: no op's number changed) */
    TG_OP_INDEX_ADD, /* x with src's rows added at the positions an index tensor holds */

    TG_OP_COUNT /* the number of ops (not an op) */
} tg_op;

/* What an op's attributes are (the numbers of a call that are not tensors): which fields of
 * tg_attrs it reads. */
typedef enum tg_attr_kind {
    TG_ATTR_NONE,     /* none */
    TG_ATTR_CONSTANT, /* c: scale, add_scalar, pow */
    TG_ATTR_RANGE,    /* lo and hi: clamp */
    TG_ATTR_AXIS,     /* axis: softmax, log_softmax, concat, stack, take, index_add */
    TG_ATTR_REDUCE,   /* axis and keepdim: sum, mean, max, min, prod, logsumexp */
    TG_ATTR_SHAPE,    /* rank and shape: reshape (and a custom op's output shape) */
    TG_ATTR_SLICE,    /* axis, start, stop and step: slice */
    TG_ATTR_INDEX,    /* axis and index: select */
    TG_ATTR_AXES,     /* axes: permute */
} tg_attr_kind;

/* For stop in tg_slice: to the end of the axis. */
#define TG_END PTRDIFF_MAX

/* The attributes of one application of an op, for tg_apply and tg_tensor_attrs. An op reads
 * the fields its tg_attr_kind names and ignores the others. */
typedef struct tg_attrs {
    double c;      /* TG_ATTR_CONSTANT */
    double lo, hi; /* TG_ATTR_RANGE */
    int axis;      /* TG_ATTR_AXIS and TG_ATTR_REDUCE: an axis, negative from the end,
                    * or (TG_ATTR_REDUCE only) TG_ALL_AXES */
    bool keepdim;  /* TG_ATTR_REDUCE */
    int rank;      /* TG_ATTR_SHAPE: the new shape, `rank` entries */
    const size_t *shape;
    ptrdiff_t start, stop, step; /* TG_ATTR_SLICE (with axis) */
    ptrdiff_t index;             /* TG_ATTR_INDEX (with axis) */
    int axes[TG_MAX_RANK];       /* TG_ATTR_AXES: one entry per axis of the input */
} tg_attrs;

/* What the op table says of an op. */
typedef struct tg_op_info {
    const char *name;    /* "add", "log_softmax": also the name of its tgx function */
    int arity;           /* tensor inputs: 0 (const), 1, 2 or 3 (where, index_add), or
                          * TG_VARIADIC */
    tg_attr_kind attrs;  /* its attributes */
    bool commutative;    /* f(a, b) = f(b, a) (the dot writer labels the others' operands) */
    bool differentiable; /* gradients flow through it (not through const and detach) */
} tg_op_info;

/* The arity of ops that take any number of inputs (concat, stack, custom). */
#define TG_VARIADIC (-2)

/* The table entry of `op`; NULL for a value out of range. A static object. */
TG_API const tg_op_info *tg_op_info_of(tg_op op);
/* The op's name ("add", "matmul", ...); "?" for a value out of range. */
TG_API const char *tg_op_name(tg_op op);
/* Number of tensor inputs the op takes (0 to 3, or TG_VARIADIC); -1 for a value out of
 * range. */
TG_API int tg_op_arity(tg_op op);

/* Records `op` on inputs[0..n) with attributes `attrs` (NULL when it takes none), exactly as
 * its constructor does: tg_apply(tape, TG_OP_SUM, &x, 1, &(tg_attrs){.axis = 1}) records
 * tg_sum(tape, x, 1, false). For programs that choose ops at run time (an interpreter, a
 * test over the whole table). Errors as the constructor's, and TG_EINVAL (kept on the tape)
 * for an op out of range, TG_OP_CONST (make constants with tg_constant), TG_OP_CUSTOM (a
 * custom op needs its callbacks: record it with tg_custom), n other than the op's arity,
 * inputs NULL with n > 0, or attrs NULL for an op that takes attributes. */
TG_API tg_tensor *tg_apply(tg_tape *tape, tg_op op, tg_tensor *const *inputs, size_t n,
                           const tg_attrs *attrs);

/* The op that produced a tape tensor; -1 for a leaf. */
TG_API int tg_tensor_op(const tg_tensor *t);
/* The name of that op (a custom op's own name); NULL for a leaf, or (TG_ESTALE) for a tensor
 * recorded before its tape was reset. */
TG_API const char *tg_tensor_op_name(const tg_tensor *t);
/* Number of inputs of a tape tensor (its op's arity, or for a variadic op the number it was
 * recorded with); 0 for a leaf or NULL, and (TG_ESTALE) for a tensor recorded before its tape
 * was reset. */
TG_API int tg_tensor_num_inputs(const tg_tensor *t);
/* Input i (0 <= i < tg_tensor_num_inputs(t)) of a tape tensor, or NULL (TG_ESTALE, as above,
 * for a stale one). */
TG_API tg_tensor *tg_tensor_input(const tg_tensor *t, int i);
/* The node index of a tape tensor (its place in recording order); SIZE_MAX for a leaf. */
TG_API size_t tg_tensor_index(const tg_tensor *t);
/* The attributes a tape tensor's op was recorded with, as the op normalized them (an axis
 * in 0..rank-1 or TG_ALL_AXES; reshape's shape is the tensor's own): *out is zeroed, then
 * the fields of the op's tg_attr_kind are set. TG_EINVAL for a leaf or NULL, TG_ESTALE for a
 * tensor recorded before its tape was reset. */
TG_API tg_status tg_tensor_attrs(const tg_tensor *t, tg_attrs *out);

/* Pass as `axis` to the reductions to reduce over every element (result 0-d). */
#define TG_ALL_AXES INT32_MIN

/* Constants recorded on the tape: copies numel elements of `dtype` from data. */
TG_API tg_tensor *tg_constant(tg_tape *tape, tg_dtype dtype, int rank, const size_t *shape,
                              const void *data);
/* A 0-d constant. f32 holds the value rounded: one it cannot hold (beyond 3.4e38, or nonzero
 * and below 1.4e-45, which rounds to 0) is TG_EINVAL (kept on the tape), as tg_scale's constant
 * is; inf, NaN, 0 and f32's subnormals are taken. */
TG_API tg_tensor *tg_scalar(tg_tape *tape, tg_dtype dtype, double value);
/* The same values with no gradient flowing back (shares x's memory: a view of a leaf is
 * read, by tg_tensor_get or an op recorded on it, only while the leaf lives). */
TG_API tg_tensor *tg_detach(tg_tape *tape, tg_tensor *x);

/* Elementwise with broadcasting. */
TG_API tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* Elementwise unary. scale (c x), add_scalar (x + c) and pow (x^c) on f32 compute with their
 * constant rounded to f32: one that f32 cannot hold (beyond 3.4e38, or nonzero and below
 * 1.4e-45, which rounds to 0) is TG_EINVAL rather than a changed result; inf, 0 and f32's
 * subnormals are taken. */
TG_API tg_tensor *tg_neg(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_scale(tg_tape *tape, tg_tensor *x, double c);
TG_API tg_tensor *tg_add_scalar(tg_tape *tape, tg_tensor *x, double c);
/* x^c is the library's own rather than the C library's (as is a^b, tg_pow_tensor, and the
 * gradients of both): e^(c log|x|) with log|x| carried in two doubles; within 0.83 units in the
 * last place found in f64 (just below 2^-1022), 0.72 where x^c is above 2^-1022 (glibc's: 0.51);
 * in f32, which rounds the f64 result, correctly rounded at every one of 1.5e8 random pairs
 * (glibc's powf missed 11,939); C99's values at the edges (x^0 = 1, 1^y = 1 even for NaN; 0^c and
 * inf^c 0 or inf, negative for x negative and c an odd integer; x < 0 with c not an integer NaN);
 * the same bits on every machine; its loops vectorize on CPUs with AVX2 or AVX-512. */
TG_API tg_tensor *tg_pow(tg_tape *tape, tg_tensor *x, double exponent);
TG_API tg_tensor *tg_square(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_sqrt(tg_tape *tape, tg_tensor *x);
/* e^x is the library's own rather than the C library's (as are the exps inside softmax,
 * log_softmax, logsumexp, softplus, log_sigmoid, erf, gelu, and the gradients of expm1, erf, gelu
 * and silu):
 * within 0.81 units in the last place in f64, 0.72 where e^x is above 2^-1022 (glibc's: 0.51);
 * in f32, which rounds the f64 result, the same as long double expl's value rounded to f32 at
 * every float in [-104, 104]; +inf beyond 709.7828, 0 below -745.1333, NaN for NaN; the same
 * bits on every machine and every instruction set; its loops vectorize. */
TG_API tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x);
/* log likewise (and log1p, and the logs inside logsumexp, softplus, log_sigmoid and the
 * gradient of pow_tensor): within 0.89 ulp in f64 (glibc's: 0.52), -inf at 0, NaN below 0; in
 * f32, correctly rounded at all but 5 of the 2.1e9 positive floats; the same bits everywhere;
 * its loops vectorize. */
TG_API tg_tensor *tg_log(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_abs(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x);
/* tanh is the library's own rather than the C library's: within 2.1 units in the last place
 * in f64 (as glibc's; f32 rounds the f64 result), odd, +-1 at +-Inf, NaN for NaN, and the
 * same bits on every machine and every instruction set; its loops vectorize. */
TG_API tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x);
/* log(sigmoid(x)) = -log(1 + e^-x), finite for any x (the building block of a stable binary
 * cross-entropy on logits); its gradient is sigmoid(-x). */
TG_API tg_tensor *tg_log_sigmoid(tg_tape *tape, tg_tensor *x);
/* min(max(x, lo), hi); the gradient passes where lo <= x <= hi and is 0 elsewhere.
 * TG_EINVAL when lo > hi or either is NaN. */
TG_API tg_tensor *tg_clamp(tg_tape *tape, tg_tensor *x, double lo, double hi);

/* Matrix product with NumPy's rules: (M,K) @ (K,N) -> (M,N); batched (B,M,K) @ (B,K,N) ->
 * (B,M,N); a 2-D operand against a 3-D one is used for every batch ((M,K) @ (B,K,N) and
 * (B,M,K) @ (K,N) -> (B,M,N), its gradient summed over the batch); a 1-D operand is a vector:
 * (K) @ (K,N) -> (N), (M,K) @ (K) -> (M), (K) @ (K) -> 0-d (the dot product), and likewise
 * against a 3-D operand ((K) @ (B,K,N) -> (B,N), (B,M,K) @ (K) -> (B,M)). TG_ESHAPE for other
 * ranks, inner dimensions that differ or batch sizes that differ (a batch of 1 is not
 * broadcast against another, as NumPy would: pass the 2-D operand instead). */
TG_API tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* (M,N) -> (N,M). */
TG_API tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x);
/* Same elements, new shape (same element count); shares x's memory (a view of a leaf is read
 * only while the leaf lives, as tg_detach's). */
TG_API tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int rank, const size_t *shape);

/* Reductions over one axis (negative counts from the end) or over TG_ALL_AXES. With keepdim
 * the reduced axis stays with size 1; without, it is removed (all axes: a 0-d result). Over
 * an empty axis (or a tensor without elements) sum is 0, mean NaN (0/0), logsumexp -inf, and
 * max (as min) is TG_ESHAPE. */
TG_API tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
TG_API tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
TG_API tg_tensor *tg_max(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
/* log(sum(exp(x))), computed stably (shifted by the maximum). */
TG_API tg_tensor *tg_logsumexp(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
/* Along one axis, same shape as x; stable for any finite input (shifted by the lane's
 * maximum, so no exp overflows). Infinities follow the arithmetic of that shift: a lane whose
 * maximum is +inf is NaN at each +inf (inf - inf) and 0 (log_softmax: -inf) elsewhere
 * (PyTorch 1.13 makes such a lane NaN throughout), and a lane of -inf only is NaN throughout;
 * -inf among finite values is 0 (-inf). */
TG_API tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis);
TG_API tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis);

/* ---- elementwise math ---------------------------------------------------------------- */

/* Elementwise functions of one input, in f32 and f64: the library's own (or the composition
 * named), computed in f64 (f32 rounds the f64 value), with the same bits on every machine, and
 * loops that vectorize. Each gradient is the derivative's closed form, as IEEE 754 arithmetic
 * gives it at the edges: where the derivative is infinite the gradient is +-inf, and outside a
 * function's domain the value is NaN, as log's. */

/* sin x; gradient cos x. For any finite x (beyond 2^20, where the loops turn scalar, the argument
 * is reduced with 2/pi to 1280 bits); NaN for +-inf. The largest errors found in f64: 0.82 ulp
 * for sin and cos (glibc's 0.52), 1.08 for tan (glibc's 0.58). */
TG_API tg_tensor *tg_sin(tg_tape *tape, tg_tensor *x);
/* cos x; gradient -sin x. As sin. */
TG_API tg_tensor *tg_cos(tg_tape *tape, tg_tensor *x);
/* tan x; gradient 1 + tan^2 x (large near the poles, where tan is finite in floating point).
 * As sin. */
TG_API tg_tensor *tg_tan(tg_tape *tape, tg_tensor *x);
/* asin x on [-1, 1]; gradient 1/sqrt(1 - x^2), +inf at x = +-1 (asin rises on both ends).
 * NaN, and a NaN gradient, for |x| > 1. The largest error found in f64: 0.68 ulp (glibc's 0.52),
 * acos's the same. */
TG_API tg_tensor *tg_asin(tg_tape *tape, tg_tensor *x);
/* acos x on [-1, 1]; gradient -1/sqrt(1 - x^2), -inf at x = +-1. NaN, and a NaN gradient,
 * for |x| > 1. */
TG_API tg_tensor *tg_acos(tg_tape *tape, tg_tensor *x);
/* atan x; gradient 1/(1 + x^2) (0 at +-inf). The library's own (the largest error found in f64:
 * 0.86 ulp, glibc's 0.52; f32 rounds the f64 value): the same bits on every machine, and its
 * loops vectorize. */
TG_API tg_tensor *tg_atan(tg_tape *tape, tg_tensor *x);
/* sinh x; gradient cosh x (both overflow to inf beyond |x| ~ 710 in f64, ~ 89 in f32). sinh,
 * cosh, asinh, acosh, atanh and expm1 are the library's own, from its exp, expm1 and log1p: as
 * accurate as glibc's (the largest errors found in f64: 1.88, 1.13, 1.77, 2.17, 1.73 and 1.14
 * ulp; in f32 they round the f64 value), the same bits on every machine, and their loops
 * vectorize. */
TG_API tg_tensor *tg_sinh(tg_tape *tape, tg_tensor *x);
/* cosh x; gradient sinh x. */
TG_API tg_tensor *tg_cosh(tg_tape *tape, tg_tensor *x);
/* asinh x; gradient 1/sqrt(x^2 + 1), with sqrt(x^2 + 1) computed without forming x^2 beyond 1,
 * so finite and accurate for any finite x (x^2 would overflow beyond 1e154). */
TG_API tg_tensor *tg_asinh(tg_tape *tape, tg_tensor *x);
/* acosh x for x >= 1; gradient 1/sqrt((x - 1)(x + 1)), computed as 1/(sqrt(x-1) sqrt(x+1)),
 * so without overflow for large x; +inf at x = 1. NaN, and a NaN gradient, for x < 1. */
TG_API tg_tensor *tg_acosh(tg_tape *tape, tg_tensor *x);
/* atanh x on [-1, 1]; atanh(+-1) = +-inf with gradient +inf; gradient 1/((1 - x)(1 + x)).
 * NaN, and a NaN gradient, for |x| > 1. */
TG_API tg_tensor *tg_atanh(tg_tape *tape, tg_tensor *x);
/* e^x - 1, accurate near 0; gradient e^x (computed as e^x, not y + 1, which cancels for
 * x < 0). */
TG_API tg_tensor *tg_expm1(tg_tape *tape, tg_tensor *x);
/* log(1 + x), accurate near 0 (the library's own, as log: within 0.89 ulp in f64); gradient
 * 1/(1 + x). As log: log1p(-1) = -inf with gradient +inf, NaN for x < -1. */
TG_API tg_tensor *tg_log1p(tg_tape *tape, tg_tensor *x);
/* The error function erf x; gradient (2/sqrt(pi)) e^(-x^2). The library's own, as exp: within
 * 1.02 ulp in f64 (glibc's: 1.13), in f32 correctly rounded at every float; the gradient takes
 * x^2 exactly (within 1.35 ulp; these are the largest errors found); the same bits on every
 * machine; its loops vectorize. */
TG_API tg_tensor *tg_erf(tg_tape *tape, tg_tensor *x);
/* log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): without overflow for any x (x for
 * large x, e^x for very negative x); its gradient is sigmoid(x). */
TG_API tg_tensor *tg_softplus(tg_tape *tape, tg_tensor *x);
/* GELU, the exact form x * Phi(x), Phi the standard normal CDF; gradient Phi(x) + x phi(x), phi
 * the normal density. The library's own, from erfc(|x|/sqrt 2) = e^(-x^2/2) erfcx(|x|/sqrt 2)
 * with x^2/2 exact: accurate in both tails, down into the subnormals, within 5.5 ulp in f64 (the
 * gradient within 6 outside [-0.93, -0.5], around its zero at -0.7518); in f32 correctly rounded
 * at all but 2 floats; the same bits on every machine; its loops vectorize. Finite for any
 * finite x; gelu(-inf) = 0 with gradient 0, gelu(+inf) = +inf with gradient 1 (the recorded
 * gradient, tg_grad_graph's, gives NaN at +-inf: it reaches those limits through no composition
 * of ops; so do silu's, relu's, abs's and clamp's for a dy of +-inf). That recorded gradient
 * composes Phi as (1 + erf(x/sqrt 2))/2, which loses relative accuracy in the far lower tail (0.7 %
 * at x = -12 in f64); the first-order gradient does not. */
TG_API tg_tensor *tg_gelu(tg_tape *tape, tg_tensor *x);
/* SiLU (swish), x * sigmoid(x); gradient s (1 + x (1 - s)), s = sigmoid(x). Without overflow
 * for any x; silu(-inf) = 0 with gradient 0, silu(+inf) = +inf with gradient 1 (recorded:
 * NaN at +-inf, as gelu's). */
TG_API tg_tensor *tg_silu(tg_tape *tape, tg_tensor *x);
/* sign x: 1 for x > 0, -1 for x < 0, 0 at 0 (-0 at -0), NaN for NaN. Zero gradient. */
TG_API tg_tensor *tg_sign(tg_tape *tape, tg_tensor *x);
/* floor x and ceil x (integers, as floating point values). Zero gradient, also at the jumps. */
TG_API tg_tensor *tg_floor(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_ceil(tg_tape *tape, tg_tensor *x);

/* ---- shape, indexing and joins -------------------------------------------------------------
 * Each result is a new tensor (a copy); the gradients flow back to the elements it came
 * from. Axes may be negative (counted from the end). */

/* x[start:stop:step] along one axis (NumPy basic slicing: negative start/stop count from the
 * end, out-of-range values clamp, step > 0; TG_END for stop = to the end). An empty range
 * gives a size-0 axis. TG_EINVAL for step <= 0 or a bad axis (and for a 0-d x); TG_ESHAPE
 * for an axis longer than PTRDIFF_MAX (possible only in a tensor without elements). The
 * recorded gradient (tg_grad_graph's) is dy placed among zeros, exact, with any step (by
 * concatenation and reshapes: no index, no product), and so are its own derivatives. */
TG_API tg_tensor *tg_slice(tg_tape *tape, tg_tensor *x, int axis, ptrdiff_t start, ptrdiff_t stop,
                           ptrdiff_t step);
/* x[..., index, ...]: integer index along `axis` (negative from the end), dropping that axis.
 * Out of range: TG_ESHAPE (message names index, axis and size); TG_EINVAL for a bad axis (and
 * for a 0-d x). */
TG_API tg_tensor *tg_select(tg_tape *tape, tg_tensor *x, int axis, ptrdiff_t index);
/* xs[0..n) joined along an existing axis (NumPy concatenate): all of one rank (>= 1) and of
 * equal sizes except along `axis`. TG_EINVAL for n = 0, xs NULL or a bad axis; TG_ESHAPE for
 * ranks or sizes that differ (the message names the input). */
TG_API tg_tensor *tg_concat(tg_tape *tape, tg_tensor *const *xs, size_t n, int axis);
/* xs[0..n) joined along a new axis (NumPy stack): all of one shape; axis in -(rank+1)..rank;
 * the result has rank + 1 <= TG_MAX_RANK axes. Errors as tg_concat's (TG_ESHAPE when the
 * result would have more than TG_MAX_RANK axes). */
TG_API tg_tensor *tg_stack(tg_tape *tape, tg_tensor *const *xs, size_t n, int axis);
/* NumPy take along one axis: y = x[..., idx, ...], of shape x.shape[:axis] + idx.shape +
 * x.shape[axis+1:] (TG_ESHAPE when that has more than TG_MAX_RANK axes). idx is a tensor of
 * x's dtype holding integer values in [-dim, dim) (negative from the end), of any shape; a
 * value that is not an integer is TG_EINVAL and one out of range TG_ESHAPE, the message naming
 * the element. The gradient scatter-adds into x, so repeated indices accumulate (an embedding
 * lookup); idx gets none. The recorded gradient (tg_grad_graph's) is tg_index_add of dy into
 * zeros of x's shape: exact, and each recorded pass takes two tensors of x's size (the zeros
 * and the result) and the additions of dy's elements, at any order. The forward and the
 * gradient run over the thread pool when large, split by the outer axes (or, with none, by
 * columns), so repeated indices still add in idx's order: the same bits at any thread count.
 * tg_index_add likewise. */
TG_API tg_tensor *tg_take(tg_tape *tape, tg_tensor *x, tg_tensor *idx, int axis);
/* take's transpose: y = x with src's rows added where idx points, y[..., idx[j], ...] +=
 * src[..., j, ...] along `axis` for every element j of idx in row-major order, so repeated
 * indices accumulate (NumPy's np.add.at along one axis; PyTorch's index_add, for an idx of any
 * shape). y has x's shape; src must have take(x, idx, axis)'s, x.shape[:axis] + idx.shape +
 * x.shape[axis+1:], exactly (TG_ESHAPE otherwise: no broadcasting). idx as for tg_take (the
 * same errors). dx = dy, dsrc = take(dy, idx, axis); idx gets none. Its inputs in tg_apply's
 * order: x, idx, src. */
TG_API tg_tensor *tg_index_add(tg_tape *tape, tg_tensor *x, tg_tensor *idx, tg_tensor *src,
                               int axis);
/* The axes of x in any order: axes holds rank(x) entries, a permutation of 0..rank-1
 * (negative entries count from the end); output axis i is input axis axes[i]. TG_EINVAL for
 * axes NULL (with rank > 0) or not a permutation. (tg_transpose is the 2-D case.) */
TG_API tg_tensor *tg_permute(tg_tape *tape, tg_tensor *x, const int *axes);
/* ---- binary math, comparisons, selection -------------------------------------------------
 * Elementwise with NumPy broadcasting, as add: shapes aligned from the right, each pair of
 * sizes equal or one of them 1; the VJPs sum over broadcast axes. */

/* The smaller (larger) of a and b. A NaN in either gives NaN (as NumPy's minimum, not C's
 * fmin), and the gradient goes to the operand picked (the NaN one; a when both are). On a tie
 * (a == b, also -0 against +0) the gradient is split equally, dy/2 to each, as PyTorch does. */
TG_API tg_tensor *tg_minimum(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_maximum(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* The angle of the point (x, y), in [-pi, pi], as C's atan2(y, x) (y first), with C's values on
 * the axes and at the infinities. The library's own (the largest error found in f64: 0.82 ulp,
 * glibc's 0.52; f32 rounds the f64 value), with the same bits on every machine. Gradient
 * dy += x / (x^2 + y^2), dx += -y / (x^2 + y^2), computed with the point scaled by
 * max(|x|, |y|) first, so it neither overflows nor underflows for large or tiny points; at the
 * origin, where atan2 has no derivative, both are NaN (0/0). Where x or y is infinite both are
 * 0 (their limit), but the gradient recorded for higher derivatives is NaN there (inf/inf in
 * its scaling). The jump from pi to -pi across the negative x axis has no gradient of its own. */
TG_API tg_tensor *tg_atan2(tg_tape *tape, tg_tensor *y, tg_tensor *x);
/* a^b with a tensor exponent, computed as tg_pow computes x^c, by C99's rules (pow(0, 0) = 1,
 * a < 0 with a non-integer b is NaN, pow(0, b < 0) = inf). da += dy * b * a^(b-1), but 0 where
 * b == 0 (a^0 = 1 has slope 0, also at a = 0, as tg_pow); db += dy * a^b * log(a), but 0 where
 * a^b == 0 (e.g. an underflow) or a == 0 (b not NaN): 0^b is constant in b on either side of 0
 * (inf below, 0 above, so slope 0, not 0 * -inf = NaN) and jumps at b = 0, where 0 is the
 * convention (PyTorch's and JAX's for b >= 0; for b < 0 they give -inf and NaN respectively), not
 * log(0) = -inf. For a < 0, log(a) is NaN and so is d/db (a^b is real only at integer b). The
 * gradient recorded for higher derivatives keeps da's slope in b at b = 0, a^(b-1) (d2/da db a^b =
 * 1/a there), as the factor b gives it, and the recorded db, with every derivative of it, is 0
 * where db is (their limits at a = 0 for b > 1, where the Hessian's (a, b) and (b, a) blocks then
 * agree; at b = 1 the (a, b) block is 1 where the limit is -inf). tg_pow is the constant-exponent
 * form. */
TG_API tg_tensor *tg_pow_tensor(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* Comparisons: 1 where a < b (<=, >, >=, ==, !=) and 0 elsewhere, of the broadcast shape and
 * the inputs' dtype. A NaN compares false, except that ne gives 1 (IEEE 754). They are not
 * differentiable: the result never requires grad, so a mask used as a factor (x * gt(x, 0))
 * passes the gradient through the other factor only, and backward from a function of masks
 * alone fails (TG_EINVAL), naming the comparison where the gradient stops. */
TG_API tg_tensor *tg_lt(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_le(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_gt(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_ge(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_eq(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_ne(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* a where cond is nonzero, b elsewhere, the three broadcast together (NumPy's where). cond
 * is any tensor of the dtype of a and b (a mask from a comparison, or values: nonzero is
 * true, and so is NaN, as C's `cond != 0` says). The gradient flows to a where cond holds and
 * to b elsewhere (summed over broadcast axes); cond gets none.
 *
 * The NaN trap: where(gt(x, 0), log(x), 0) at x = 0 picks 0 in the forward, but backward
 * still runs log's VJP on the branch not taken, with dy = 0 there: 0 * (1/0) = 0 * inf = NaN
 * in x's gradient. Keep the branch not taken finite at its own input: the safe pattern is
 * where(gt(x, 0), log(where(gt(x, 0), x, 1)), 0), whose inner where hands log a harmless 1
 * wherever the outer one discards the result; its gradient is exact (1/x where x > 0, 0
 * elsewhere). */
TG_API tg_tensor *tg_where(tg_tape *tape, tg_tensor *cond, tg_tensor *a, tg_tensor *b);

/* ---- reductions (beside sum, mean, max, logsumexp above) --------------------------------- */

/* The minimum along an axis or of all elements, as tg_max: the gradient goes to the first
 * minimum on ties, and a NaN in a lane is its minimum (the first NaN). TG_ESHAPE for an
 * empty axis. */
TG_API tg_tensor *tg_min(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);
/* The product along an axis or of all elements (1 over an empty axis, as NumPy). Its
 * gradient is the product of the other elements of the lane, computed from prefix and suffix
 * products, never by dividing y by the element: exact with zeros (one zero: only that element
 * gets a gradient, the product of the rest; two or more: all zero). */
TG_API tg_tensor *tg_prod(tg_tape *tape, tg_tensor *x, int axis, bool keepdim);

/* ---- user-defined ops ------------------------------------------------------------------ */

/* What a custom op's callbacks are given. Input values are read with tg_tensor_data_const
 * and shapes with tg_tensor_rank / tg_tensor_shape; all inputs and the output have the same
 * dtype (f32 or f64: a callback handles both, or fails with TG_EDTYPE for the one it does not
 * support). */
typedef struct tg_custom_call {
    void *user;                 /* as passed to tg_custom */
    size_t n;                   /* number of inputs */
    const tg_tensor *const *in; /* the inputs */
    const tg_tensor *out;       /* the output: its shape and dtype (and, in vjp, its values) */
    void *y;                    /* forward: where to write the output's values */
    const void *dy;             /* vjp: the output's gradient, out's shape */
    void *const *dx;            /* vjp: dx[i] is input i's gradient, to ADD into (NULL when
                                 * input i needs none) */
    char *msg;                  /* a callback that fails writes why here (msg_size bytes) */
    size_t msg_size;
} tg_custom_call;

/* What a custom op's differentiable VJP (vjp_graph) is given: the node's inputs and output as
 * tape tensors (pass them to op constructors), the output's gradient dy as a tape tensor of
 * out's shape, and dx[] to fill. */
typedef struct tg_custom_grad_call {
    tg_tape *tape;        /* record on this tape */
    void *user;           /* as passed to tg_custom */
    size_t n;             /* number of inputs */
    tg_tensor *const *in; /* the inputs (leaves or tensors of tape) */
    tg_tensor *out;       /* the output, y */
    tg_tensor *dy;        /* y's gradient, of y's shape and dtype */
    tg_tensor **dx;       /* set dx[i] (NULL on entry) to input i's gradient: a tensor of
                           * in[i]'s shape and dtype recorded on tape (or dy itself; anything
                           * else, a leaf say, is TG_EINVAL; another shape TG_ESHAPE, another
                           * dtype TG_EDTYPE); leaving it NULL means zero.
                           * Only inputs that require grad (tg_tensor_requires_grad) need one;
                           * the others' are ignored. */
    char *msg;            /* a callback that fails writes why here (msg_size bytes) */
    size_t msg_size;
} tg_custom_grad_call;

/* A user-defined op: a name (shown in dot graphs, errors and anomaly reports, hashed into
 * fingerprints), a forward, a VJP, and optionally the VJP written with ops. Each returns
 * TG_OK, or an error status with the reason in call->msg, which becomes the tape's error.
 *
 * vjp_graph is what tg_grad_graph (tapegrad/diff.h) calls to record the op's gradient on the
 * tape, so that it can be differentiated again: dx[i] = the VJP of dy for input i, built from
 * op constructors (tg_mul(call->tape, call->dy, ...)), the same values vjp adds. Without it
 * tg_grad_graph still gives the right gradient: it records one node that runs vjp (named
 * "NAME.vjp", its inputs the op's inputs, y and dy), whose values are exact but which has no
 * gradient of its own: a derivative that must flow through it (a second derivative in the
 * op's inputs) fails with TG_EINVAL, "custom op 'NAME' has no differentiable VJP: give it a
 * vjp_graph to differentiate twice". Fill the struct with designated initializers,
 * {.name = "cube", .forward = cube_forward, .vjp = cube_vjp}: it may gain fields. */
typedef struct tg_custom_op {
    const char *name;
    tg_status (*forward)(const tg_custom_call *call);
    tg_status (*vjp)(const tg_custom_call *call); /* NULL: not differentiable */
    /* NULL: differentiable once (tg_grad_graph records vjp as a node with no VJP) */
    tg_status (*vjp_graph)(const tg_custom_grad_call *call);
} tg_custom_op;

/* Records a user-defined op on inputs[0..n) (n >= 1, one dtype): the output has that dtype and
 * the shape `rank`, `shape` (rank 0..TG_MAX_RANK; shape may be NULL for rank 0), which the
 * caller chooses (broadcasting, if the op does any, is the callbacks' business). op->forward
 * runs at once with call->y pointing at the output's values (zeroed: it must write every
 * element), call->in at the inputs and call->user = user; during backward op->vjp runs with
 * call->dy (the output's gradient) and call->dx[i], the gradient of input i to ADD into, NULL
 * when input i needs none. The same tensor passed twice gets the same dx buffer twice, so a
 * VJP that adds (never assigns) handles fan-out. A callback that returns an error status
 * makes it the tape's error, with its name and call->msg: tg_custom then returns NULL, or
 * tg_backward (tg_grad) returns that status. op->vjp runs inside the backward walk of the tape
 * and must leave that tape alone: one that records on it, runs tg_backward, tg_grad or
 * tg_tape_replay on it, or resets it, ends the walk with TG_EINVAL naming the op (a tape of
 * its own is fine). A forward or vjp_graph that resets the tape fails the same way, and
 * tg_tape_replay called from a forward on its own tape is refused (TG_EINVAL).
 *
 * op->vjp NULL makes an op without a gradient: a backward pass that reaches it (its output
 * requires grad and the gradient flows into it) fails with TG_EINVAL naming the op, rather than
 * quietly treating it as constant; pass its inputs through tg_detach when it should be one.
 *
 * The node appears like any other: tg_tensor_op gives TG_OP_CUSTOM, tg_tensor_op_name and the
 * dot writer op->name, anomaly mode names it, and the fingerprint hashes the name. op, its
 * name and user are kept by pointer: they must stay valid until the tape is reset or freed
 * (a static const tg_custom_op is the usual way). TG_EINVAL (kept on the tape) for op, its
 * name or its forward NULL, an empty name, n = 0 (the output's dtype comes from the inputs),
 * inputs NULL, or a rank out of range or shape NULL with rank > 0; TG_ESHAPE for a shape whose
 * element count overflows. */
TG_API tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, void *user,
                            tg_tensor *const *inputs, size_t n, int rank, const size_t *shape);

#ifdef __cplusplus
}
#endif

#endif
