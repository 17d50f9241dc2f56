/* internal.h: the structs behind the opaque handles, and the functions modules share
 * inside the library (named tg_<module>__<verb>). Never installed. */
#ifndef TAPEGRAD_INTERNAL_H
#define TAPEGRAD_INTERNAL_H

#include "tapegrad.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* Programmer bugs inside the library only; user input never reaches one. */
#ifdef NDEBUG
#define TG_ASSERT(cond) ((void)0)
#else
#include <assert.h>
#define TG_ASSERT(cond) assert(cond)
#endif

#define TG_UNUSED(x) ((void)(x))
#define TG_LIKELY(x) __builtin_expect(!!(x), 1)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* On a function of plain vectorizable loops: GCC compiles it once per instruction set listed
 * and picks the best the CPU has when the program loads (an ifunc), so the library stays
 * built for baseline x86-64 yet its hot loops run 4 or 8 doubles wide. The clones compute
 * the same bits: no -ffast-math, and ISO C mode leaves multiply-adds uncontracted. Empty for
 * other compilers and architectures, and in sanitizer builds: the resolver runs while the
 * program is being relocated, before a sanitizer's runtime is up, yet is instrumented (under
 * ThreadSanitizer that crashes at load). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&   \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TG_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TG_SIMD_CLONES
#endif

/* ---- core: errors ---------------------------------------------------------------------- */

/* Sets this thread's error and returns `status`, so callers can `return tg__error(...)`. */
tg_status tg__error(tg_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
tg_status tg__verror(tg_status status, const char *fmt, va_list ap);

/* ---- core: allocation (every heap byte goes through the hook) ------------------------- */

void *tg__malloc(size_t size);
void *tg__calloc(size_t count, size_t size); /* NULL on overflow too */
void *tg__realloc(void *ptr, size_t osize, size_t nsize);
void tg__free(void *ptr, size_t size);
/* A copy of s on the heap (length+1 bytes; free with tg__free(p, strlen(p)+1)). */
char *tg__strdup(const char *s);
/* Grows *array (of elem-byte elements, *cap of them) to hold at least `need`, doubling.
 * TG_ENOMEM (with a message naming `what`) when it cannot. */
tg_status tg__grow(void **array, size_t *cap, size_t need, size_t elem, const char *what);

/* Alignment of tensor data: a cache line, so SIMD loads never split lines and two threads
 * never share one at a buffer boundary. */
#define TG_DATA_ALIGN 64

/* ---- core: arena ------------------------------------------------------------------------ */

/* A chain of blocks, bump-allocated. Rewinding keeps every block, so a recording that fits
 * what an earlier one used allocates nothing. Memory never moves: pointers stay valid until
 * the next rewind. */
typedef struct tg_arena_block tg_arena_block;
typedef struct tg_arena {
    tg_arena_block *first; /* the chain, kept across rewinds */
    tg_arena_block *cur;   /* the block being filled */
    uintptr_t ptr, end;    /* free space left in cur */
    size_t capacity;       /* sum of block sizes */
} tg_arena;

void tg_arena__init(tg_arena *a);
void tg_arena__free(tg_arena *a);
void tg_arena__rewind(tg_arena *a);
/* The slow path of tg_arena__alloc: moves to the next kept block or adds one. */
void *tg_arena__alloc_slow(tg_arena *a, size_t size, size_t align);

/* `size` bytes aligned to `align` (a power of two <= 64), or NULL when out of memory. Inline:
 * every recorded node makes two of these, so the common case is an add and a compare. */
static inline void *tg_arena__alloc(tg_arena *a, size_t size, size_t align)
{
    uintptr_t p = (a->ptr + (align - 1)) & ~(uintptr_t)(align - 1);
    if (__builtin_expect(p <= a->end && size <= a->end - p, 1)) {
        a->ptr = p + size;
        return (void *)p;
    }
    return tg_arena__alloc_slow(a, size, align);
}

/* ---- tensor ----------------------------------------------------------------------------- */

enum {
    TG_TF_LEAF = 1u << 0,      /* lives outside any tape */
    TG_TF_OWNS_DATA = 1u << 1, /* leaf whose data was allocated with it (not wrapped) */
    TG_TF_VIEW = 1u << 2,      /* tape tensor sharing its input's data (reshape, detach) */
    TG_TF_BORROWED_GRAD = 1u << 3, /* leaf whose grad points into memory it does not own (a
                                    * model's gradient block): tg_tensor_free leaves it alone */
    TG_TF_PLANNED = 1u << 4, /* tape tensor recorded from the plan: its shape is the one the
                              * same node had in the previous recording (see record.h) */
};

/* Op attributes. axis is normalized at record time: 0..rank-1, or TG_ALL_AXES. */
typedef union tg_attr {
    double c; /* scale, add_scalar, pow */
    struct {
        double lo, hi;
    } clamp;
    struct {
        int32_t axis;
        int32_t keepdim;
    } r; /* reductions, softmax */
    struct {
        const size_t *shape; /* valid only while recording */
        int32_t rank;
    } reshape;
} tg_attr;

/* 128 bytes: two cache lines. (Every recorded op writes one of these, so its size is the
 * tape's memory traffic.) The first holds the node's structure, which a recording from the
 * plan (record.h) only reads: in a loop that records the same graph, it is written once and
 * never made dirty again. The second holds what every recording and every backward pass
 * writes (generation, flags, attributes, the backward pass of grad). A 0-d tape tensor has no
 * shape entries, so its value (unless it is a view) and its gradient live where they would
 * be, in inl, also in the second line: a scalar node costs its header and nothing else, and
 * neither buffer is allocated from the arena. */
struct tg_tensor {
    void *data;
    void *grad;           /* leaf: heap buffer; tape tensor: arena buffer (or inl), kept for
                           * the whole recording, valid in pass grad_pass */
    tg_tape *tape;        /* owning tape; NULL for leaves */
    union {
        tg_tensor *in[2]; /* tape tensors: the inputs */
        struct {          /* leaves: where it is registered on the tape that last used it */
            uint64_t reg_tape; /* that tape's id (never reused, unlike its address); 0: none */
            uint32_t reg_gen, reg_slot;
        };
    };
    size_t numel;
    const char *name;
    uint32_t index;       /* node index on its tape */
    uint16_t op;
    uint8_t dtype;
    uint8_t rank;
    /* second cache line */
    uint32_t gen;         /* the tape generation it was recorded in */
    uint32_t grad_pass;   /* the backward pass `grad` belongs to */
    uint8_t requires_grad;
    uint8_t flags;
    tg_attr attr;
    union {
        size_t shape[TG_MAX_RANK];
        struct { /* 0-d tape tensors: data and grad point here (either dtype fits) */
            unsigned char value[8], grad[8];
        } inl;
    };
};

_Static_assert(sizeof(struct tg_tensor) <= 128, "node headers fit two cache lines");

static inline size_t tg__esize(const tg_tensor *t) { return t->dtype == TG_F64 ? 8 : 4; }
static inline size_t tg__nbytes(const tg_tensor *t) { return t->numel * tg__esize(t); }

/* Validates dtype/rank/shape and computes the element count: TG_OK, or an error naming
 * `who` (TG_EINVAL for rank or dtype, TG_ESHAPE for an element count that overflows). */
tg_status tg_tensor__check_shape(const char *who, tg_dtype dtype, int rank, const size_t *shape,
                                 size_t *numel);
/* The allocation size of a grad or data buffer, rounded for alignment. */
void *tg_tensor__alloc_grad(tg_tensor *leaf);
/* Makes `grad` (numel elements of the leaf's dtype, owned by the caller, e.g. a slice of a
 * model's gradient block) the leaf's grad buffer, freeing a grad the leaf owned. Backward then
 * accumulates into it; tg_tensor_free does not free it. NULL returns the leaf to owning none. */
void tg_tensor__borrow_grad(tg_tensor *leaf, void *grad);

/* ---- tape -------------------------------------------------------------------------------- */

typedef struct tg_leaf_slot {
    tg_tensor *leaf;
    void *grad;        /* tg_grad's private accumulator for this leaf (arena) */
    uint32_t grad_pass;
    /* What plan reuse compares (record.h): the leaf's dtype and shape when registered, and
     * whether the same slot two recordings ago held the same leaf with the same ones. */
    bool planned;
    uint8_t dtype, rank;
    size_t shape[TG_MAX_RANK];
} tg_leaf_slot;

struct tg_tape {
    /* Node headers alternate between two arenas by generation parity, so the headers of the
     * previous recording stay intact (with their old generation) during the current one:
     * that is what makes stale tensors detectable. Values and gradients live in `data`. */
    tg_arena headers[2];
    tg_arena data;
    tg_tensor **nodes;
    size_t n_nodes, cap_nodes;
    tg_leaf_slot *leaves;
    size_t n_leaves, cap_leaves;
    /* The plan (record.h): the other parity's leaf slots, swapped in at every reset, and how
     * many nodes and leaves the recording two resets ago (same parity) left in its header
     * arena and leaf slots. */
    tg_leaf_slot *old_leaves;
    size_t old_n_leaves, old_cap_leaves, old_n_nodes;
    size_t plan_nodes, plan_leaves;
    uint64_t id;           /* unique in the process: leaves cache it (reg_tape), never touched
                            * by tg_tape_free, so leaves may be freed before their tape */
    uint32_t gen;
    uint32_t pass;         /* incremented by every backward walk */
    bool grad_enabled;
    bool anomaly;
    bool capture;          /* tg_grad: leaf gradients go to leaves[].grad, not leaf->grad */
    tg_status status;
    char error[256];
};

/* Recording a node, the common path of every op constructor, is tg_tape__record in
 * src/tape/record.h: inline, so ops.c gets it specialized per op. */
/* Sets the tape's error (if it has none yet) and this thread's, naming op and node index. */
void tg_tape__fail(tg_tape *tape, tg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Arena memory for op data (values, gradients, scratch). Small buffers (0-d scalars) need not
 * waste a cache line each; size 0 still gets a distinct non-NULL pointer. */
static inline void *tg_tape__alloc(tg_tape *tape, size_t size)
{
    return tg_arena__alloc(&tape->data, size ? size : 1,
                           size >= TG_DATA_ALIGN ? TG_DATA_ALIGN : 16);
}
/* The first touch of a gradient buffer in a pass, out of line: leaves (allocating a leaf's
 * grad, or tg_grad's private accumulator) and out of memory. */
void *tg_tape__grad_first(tg_tape *tape, tg_tensor *x);
/* The gradient buffer of input x for the current backward pass (zeroed on first use), or
 * NULL when x needs no gradient, or on ENOMEM (then the tape's status says so). A node keeps
 * its buffer for the whole recording: later passes zero it again instead of allocating. */
static inline void *tg_tape__grad_of(tg_tape *tape, tg_tensor *x)
{
    if (!x->requires_grad)
        return NULL;
    if (TG_LIKELY(x->tape != NULL)) { /* a node (backward never reaches another tape's) */
        if (TG_LIKELY(x->grad_pass == tape->pass))
            return x->grad;
        if (x->rank == 0) { /* grad is inl.grad: 8 bytes, whatever the dtype */
            x->grad_pass = tape->pass;
            memset(x->grad, 0, sizeof x->inl.grad);
            return x->grad;
        }
        size_t bytes = x->numel * tg__esize(x);
        if (!x->grad && !(x->grad = tg_tape__alloc(tape, bytes)))
            return tg_tape__grad_first(tape, x); /* reports ENOMEM */
        x->grad_pass = tape->pass;
        switch (bytes) { /* small gradients: a store or two, not a call */
        case 4: memset(x->grad, 0, 4); break;
        case 8: memset(x->grad, 0, 8); break;
        case 16: memset(x->grad, 0, 16); break;
        case 32: memset(x->grad, 0, 32); break;
        default: memset(x->grad, 0, bytes);
        }
        return x->grad;
    }
    if (TG_LIKELY(x->grad && !tape->capture))
        return x->grad; /* a leaf's own grad */
    return tg_tape__grad_first(tape, x);
}
/* The staleness check used by every entry point that takes a tensor: TG_OK or TG_ESTALE. */
tg_status tg_tensor__check_live(const tg_tensor *t, const char *who);

/* ---- ops: the op table ------------------------------------------------------------------- */

/* Shape rule: fills y->rank, y->shape (and may adjust y->attr) from the inputs, or returns an
 * error status after writing the reason (without op name or node) into msg. */
typedef tg_status (*tg_shape_fn)(tg_tensor *y, char *msg, size_t msg_size);
/* Forward: computes y->data from y->in[...] (the data is already allocated, unless the op
 * is a view, which sets y->data itself). */
typedef void (*tg_forward_fn)(tg_tensor *y);
/* VJP: y->grad holds dy; accumulates into tg_tape__grad_of(tape, y->in[i]). */
typedef void (*tg_vjp_fn)(tg_tape *tape, tg_tensor *y);

typedef struct tg_op_info {
    const char *name;
    int arity;
    bool is_view;   /* y shares its input's data: no allocation for y->data */
    bool has_axis;  /* attr.r (axis, keepdim) is part of the structure (fingerprint, dot) */
    tg_shape_fn shape;
    tg_forward_fn forward;
    tg_vjp_fn vjp;
    bool reads_attr; /* the shape rule reads (or checks) attributes other than axis and
                      * keepdim, so the plan cannot stand in for it */
} tg_op_info;

extern const tg_op_info tg_ops__table[TG_OP_COUNT];

/* ---- kernels: GEMM on raw pointers (src/kernels) ------------------------------------------ */

/* C = beta*C + A·B with A (M,K) and B (K,N) read through optional transposes:
 * transA: A is stored (K,M) row-major; transB: B is stored (N,K). ldX are row strides. */
void tg_gemm_f32(bool transA, bool transB, size_t M, size_t N, size_t K, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
void tg_gemm_f64(bool transA, bool transB, size_t M, size_t N, size_t K, const double *A,
                 size_t lda, const double *B, size_t ldb, double beta, double *C, size_t ldc);

/* The paths a GEMM can take. AUTO (the default): problems of a few thousand multiply-adds or
 * fewer run direct, the rest packed on the best kernel this CPU has, or on BLAS in a build
 * with TG_BLAS=openblas. Forcing any other path applies it to every size (so tests reach the
 * packed kernels' edges on small matrices); BLAS falls back to the best kernel when its int
 * arguments would overflow. */
typedef enum tg_gemm_path {
    TG_GEMM_AUTO,
    TG_GEMM_DIRECT,   /* loops over the operands in place, no packing, no threads */
    TG_GEMM_PORTABLE, /* packed, the C micro-kernel */
    TG_GEMM_AVX2,     /* packed, AVX2+FMA micro-kernel (x86-64 CPUs that have it) */
    TG_GEMM_AVX512,   /* packed, AVX-512F micro-kernel (x86-64 CPUs that have it) */
    TG_GEMM_BLAS,     /* cblas_sgemm/dgemm (TG_BLAS=openblas builds) */
    TG_GEMM_PATH_COUNT
} tg_gemm_path;
/* Makes every later GEMM in the process take `path` (AUTO restores the choice by size); false,
 * changing nothing, when this build or CPU lacks it. For tests and benchmarks. */
bool tg__gemm_force(tg_gemm_path path);
bool tg__gemm_available(tg_gemm_path path);
/* The path a GEMM of this size takes now (never AUTO). */
tg_gemm_path tg__gemm_path(size_t M, size_t N, size_t K);
const char *tg__gemm_path_name(tg_gemm_path path); /* "direct", "avx512", ... */
/* Frees the calling thread's GEMM packing workspace (kept from call to call otherwise, so a
 * training loop allocates nothing). tg_tape_free calls it, so freeing every object frees
 * every byte; a thread's exit and the library's unloading free it too. */
void tg__gemm_release(void);

/* ---- core: the thread pool (src/core/pool.c) ------------------------------------------------ */

/* Work on items [begin, end) of a parallel loop. */
typedef void (*tg_range_fn)(void *ctx, size_t begin, size_t end);
/* The part of tg__parallel_for past its one-range test (src/core/pool.c). */
void tg__parallel_run(size_t n, size_t grain, tg_range_fn fn, void *ctx);
/* Runs fn over [0, n) split into contiguous ranges of at least `grain` items, one per thread
 * at most, and returns when all are done. The ranges depend only on n, grain and the thread
 * count (deterministic), whichever thread runs each. With one range (n < 2 * grain, or one
 * thread) fn runs on the calling thread. A call from inside fn, or while another thread's loop
 * holds the pool, runs the same ranges in order on the calling thread. fn must not fail.
 * Inline, so that a loop too small to split costs its caller one compare (n / 2 < grain is
 * n < 2 * grain without overflow) before a direct call of fn, which the compiler may inline. */
static inline void tg__parallel_for(size_t n, size_t grain, tg_range_fn fn, void *ctx)
{
    if (TG_LIKELY(n / 2 < grain)) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    tg__parallel_run(n, grain, fn, ctx);
}
/* Joins every worker and forgets the thread count, as at process start: the next use re-reads
 * TG_NUM_THREADS. Also runs at exit. Not from inside a parallel loop. */
void tg__pool_shutdown(void);
/* Worker threads running now (the calling thread is not one). */
int tg__pool_workers(void);
/* Tests: let only the next n thread creations succeed, as when pthread_create runs out of
 * resources (n < 0: all succeed again). */
void tg__pool_fail_spawn_after(int n);

/* ---- io: files ------------------------------------------------------------------------------ */

/* Writes size bytes to PATH.tmp, fsyncs it, renames it over path and fsyncs the directory, so
 * path holds the old file or the complete new one, never a half-written one. TG_EIO naming
 * `who`, the path, the failed step and the OS reason (the temporary file is removed), or
 * TG_ENOMEM. */
tg_status tg_io__save_atomic(const char *who, const char *path, const void *buf, size_t size);

/* ---- core: deterministic math --------------------------------------------------------------- */

/* Natural logarithm using only IEEE-exact operations (same bits everywhere). */
double tg__det_log(double x);

/* tanh, the op's forward (f32 rounds this). Not libm's: glibc's tanh goes through expm1 and
 * a division, a chain of ~120 cycles, and a scalar graph of tanh nodes (W2) waits on it for
 * every node; this one's chain is 40 % shorter, it vectorizes (the loops of ops.c run it 4 or
 * 8 wide) and, using only +, -, *, / and bit moves, gives the same bits on every IEEE machine.
 *   tanh a = e / (e + 2) = 1 - 2 / (e + 2),  e = expm1(2a), a = |x|:
 * the first form below atanh(1/2) (where 1 - q would cancel), the second above (where it is
 * the more accurate). expm1(u) = 2^k (1 + p) - 1 with u = k ln2 + r, |r| <= ln2/2 (Cody-Waite:
 * k ln2_hi is exact for k <= 64, and c carries the rounding of r = r_hi + r_lo into p), and
 * p = expm1(r) by its Taylor series to r^13 (next term < 2^-60 relative), evaluated by
 * Estrin's scheme, whose depth is 4 multiply-adds instead of Horner's 12. For a >= 22,
 * tanh a rounds to 1, and so does the formula at a = 22, where m holds larger a (keeping 2^k
 * in range). Error against a 120-bit reference (tests/test_ops.c checks 2.5 ulp):
 * at most 2.1 ulp, mean 0.3 ulp, as glibc's tanh. */
static inline double tg__tanh(double x)
{
    const double a = fabs(x);
    const double m = a < 22.0 ? a : 22.0, u = m + m; /* NaN too: its result is replaced below */
    /* k = nearest integer to u / ln2 (computed as m * (2 / ln2), the same product one
     * multiply sooner): adding 1.5 * 2^52 leaves it in the low mantissa bits */
    const double shifter = 0x1.8p52;
    const double kt = m * 0x1.71547652b82fep1 + shifter, k = kt - shifter;
    const double r_hi = u - k * 0x1.62e42fee00000p-1, r_lo = -(k * 0x1.a39ef35793c76p-33);
    const double r = r_hi + r_lo, c = (r_hi - r) + r_lo;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    /* q = sum of r^(n-2) / n! for n = 2..13, in pairs */
    const double q01 = 1.0 / 2 + r * (1.0 / 6), q23 = 1.0 / 24 + r * (1.0 / 120),
                 q45 = 1.0 / 720 + r * (1.0 / 5040), q67 = 1.0 / 40320 + r * (1.0 / 362880),
                 q89 = 1.0 / 3628800 + r * (1.0 / 39916800),
                 q1011 = 1.0 / 479001600 + r * (1.0 / 6227020800.0);
    const double q = (q01 + r2 * q23) + r4 * (q45 + r2 * q67) + r8 * (q89 + r2 * q1011);
    const double p = r + (r2 * q + (c + c * r));
    /* 2^k from k's bits in kt (0 <= k <= 64) */
    uint64_t bits;
    memcpy(&bits, &kt, sizeof bits);
    bits = (bits << 52) + ((uint64_t)1023 << 52);
    double two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    /* e and d = e + 2 each rounded once, from the same exact 2^k p */
    const double tp = two_k * p, e = tp + (two_k - 1.0), d = tp + (two_k + 1.0);
    /* one division, selected around it rather than branched, so that loops vectorize */
    const bool small = a < 0.5493061443340549;
    const double ratio = (small ? e : 2.0) / d;
    const double t = small ? ratio : 1.0 - ratio; /* exactly 1 at m = 22 */
    return a == a ? copysign(t, x) : x;
}

#endif
