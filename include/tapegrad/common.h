/* tapegrad/common.h: what every module shares: status codes, the thread-local error
 * message, dtypes, the allocator hook, the deterministic RNG, the thread count, and the
 * ownership rules.
 *
 * Ownership, once for the whole library:
 *  - a tensor returned by an op constructor (tg_add, ...) or by tg_constant belongs to its
 *    tape; it lives until tg_tape_reset or tg_tape_free and must not be freed by the caller;
 *  - a leaf (tg_tensor_zeros, tg_tensor_from_data, ...) belongs to the caller, who frees it
 *    with tg_tensor_free; leaves outlive tapes and may be used on any number of them;
 *  - a model's parameters (tg_model_param) are leaves that belong to the model: tg_model_free
 *    frees them;
 *  - a `**out` parameter receives objects the caller owns and must free.
 *
 * Errors are values. Functions returning tg_status return TG_OK or a negative code; functions
 * returning a pointer return NULL on failure. Either way tg_last_error() then holds a message
 * naming what was wrong. Nothing in the library aborts or exits on user input. */
#ifndef TAPEGRAD_COMMON_H
#define TAPEGRAD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TG_STATIC_DEFINE)
#define TG_API
#elif defined(_WIN32)
#ifdef TG_BUILDING
#define TG_API __declspec(dllexport)
#else
#define TG_API __declspec(dllimport)
#endif
#else
#define TG_API __attribute__((visibility("default")))
#endif

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. */
TG_API const char *tg_version(void);

/* Largest tensor rank. Shapes are arrays of size_t with this many slots at most. */
#define TG_MAX_RANK 4

/* A status code: what every function that can fail returns (or, for one returning a pointer,
 * what tg_last_status gives after it returned NULL). TG_OK is 0 and every error is negative,
 * so `if (st != TG_OK)` and `if (st < 0)` both test for failure. docs/errors.md tells, for
 * each code, every case that returns it and what state things are in afterwards. */
typedef enum tg_status {
    TG_OK = 0,        /* success */
    TG_ENOMEM = -1,   /* an allocation failed, or a size fits size_t but not memory; nothing
                       * leaked, every object passed in is still usable */
    TG_ESHAPE = -2,   /* shapes do not fit the operation, or an element count overflows */
    TG_EDTYPE = -3,   /* dtypes differ or are not supported by the operation */
    TG_EINVAL = -4,   /* a bad argument: NULL, axis out of range, wrong tape, bad options, ...;
                       * also ranks that disagree in a tg_dist_* call */
    TG_EIO = -5,      /* a file could not be opened, read or written (the OS reason is in the
                       * message), or an MPI call failed */
    TG_EFORMAT = -6,  /* a file or text is malformed: tgx syntax, CSV, a model or checkpoint
                       * file that is truncated, corrupted or of an unknown version */
    TG_ENOTSUP = -7,  /* the feature is not built in (MPI, Graphviz or a Graphviz plugin) */
    TG_ESTALE = -8,   /* a tensor was used after its tape was reset; also tg_tape_replay
                       * after a reset, or of a leaf whose requires_grad changed; and
                       * backward after a leaf the recording used was written (tensor.h) */
    TG_ENUMERIC = -9, /* a NaN or Inf where none may be (anomaly mode, a training loss, a
                       * gradient norm to clip, a model to save), or a numeric check failed
                       * (tg_gradcheck, tg_dist_check_params). The last code: the library
                       * tells an error code from other numbers by the range TG_ENUMERIC..-1 */
} tg_status;

/* The message of the last error on this thread; never NULL ("no error" when none). */
TG_API const char *tg_last_error(void);
/* The status of the last error on this thread (TG_OK when none). */
TG_API tg_status tg_last_status(void);
/* Forget the last error on this thread. */
TG_API void tg_clear_error(void);
/* A short name for a status code ("TG_ESHAPE"); never NULL. */
TG_API const char *tg_status_name(tg_status status);

/* The element type of a tensor; every input of one op has the same. The numbers are stored
 * in model and checkpoint files, so they never change. */
typedef enum tg_dtype {
    TG_F32 = 0, /* float: IEEE 754 binary32, 4 bytes */
    TG_F64 = 1, /* double: IEEE 754 binary64, 8 bytes */
} tg_dtype;

/* "f32" or "f64" ("?" for anything else). */
TG_API const char *tg_dtype_name(tg_dtype dtype);
/* Bytes per element: 4 or 8 (0 for an unknown dtype). */
TG_API size_t tg_dtype_size(tg_dtype dtype);

/* The allocator hook, in the manner of Lua's lua_Alloc. Every heap allocation the library
 * makes goes through it. nsize == 0 frees ptr (returns NULL); ptr == NULL allocates; otherwise
 * it reallocates from osize to nsize bytes. Returning NULL for nsize > 0 means out of memory:
 * the library then returns TG_ENOMEM and leaks nothing. Set it before creating any object
 * and never change it while objects made with the previous hook are alive. NULL restores
 * the default (malloc/realloc/free). */
typedef void *(*tg_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);
TG_API void tg_set_allocator(tg_alloc_fn fn, void *ud);
/* The current hook; *ud (if ud is not NULL) receives its user data. */
TG_API tg_alloc_fn tg_get_allocator(void **ud);

/* A deterministic random number generator (xoshiro256**, seeded through splitmix64). The
 * same seed gives the same numbers on every machine and compiler: the normal variates use
 * only IEEE-exact arithmetic and the library's own logarithm. A plain struct, so it can live
 * anywhere; it owns nothing. */
typedef struct tg_rng {
    uint64_t s[4];
} tg_rng;

/* Seeds rng from `seed`: its four state words are splitmix64's first four outputs, so every
 * seed, 0 included, gives a good state. Seed a tg_rng before drawing from it: an all-zero
 * state (a zeroed struct) is xoshiro's one invalid state and gives only zeros. */
TG_API void tg_rng_seed(tg_rng *rng, uint64_t seed);
/* 64 random bits. */
TG_API uint64_t tg_rng_next(tg_rng *rng);
/* Uniform in [0, 1), 53 random bits. */
TG_API double tg_rng_uniform(tg_rng *rng);
/* Standard normal (mean 0, variance 1), Marsaglia's polar method. */
TG_API double tg_rng_normal(tg_rng *rng);
/* Uniform integer in [0, n); 0 when n is 0. Unbiased (rejection sampling). */
TG_API uint64_t tg_rng_below(tg_rng *rng, uint64_t n);

/* Threads. Large kernels (GEMM, long elementwise loops with or without broadcasting and most
 * of their gradients' sums over broadcast axes, where, sums over all elements, the lanes of
 * logsumexp and the softmaxes, transposes, an optimizer's step, zeroing a model's gradients)
 * are split over a
 * small persistent pool of worker threads; a worker watches for the next job for 0.1 ms after
 * each one (a training step's jobs come that close), then sleeps. The split depends only on the
 * problem size and the thread count, so results are bit-identical from run to run for a given
 * count. (Not across problem sizes: a row of a product may round differently in a product with
 * more rows, which takes another kernel path.) The count starts from the environment variable
 * TG_NUM_THREADS when it holds decimal digits only, of 1 to 1024 (other values, ' 4' or '+4'
 * too, are ignored), else the number of CPUs the process may run on (its affinity mask, as
 * taskset or mpirun's binding set it; at most 1024). tg_set_num_threads(n)
 * with n from 1 to 1024 sets it (n = 1 runs everything on the calling thread); TG_EINVAL for
 * any other n. Call it while no library call is running on another thread. */
TG_API tg_status tg_set_num_threads(int n);
TG_API int tg_get_num_threads(void);

/* Subnormal numbers (magnitudes below 2.2e-308 in f64, 1.2e-38 in f32). With flushing on,
 * results that would be subnormal become zero (FTZ) and subnormal inputs are read as zero
 * (DAZ), on the calling thread and in the loops it hands the pool's workers: each job runs
 * with the setting of the thread that posted it, so results never depend on the split, and
 * another thread's loops keep their own. A thread starts with the setting of the thread that
 * created it (x86-64 copies it). What it changes: a value that underflows past the smallest
 * normal number is zero instead of losing precision gradually, so a gradient that decays
 * over a long chain stops at zero rather than at a subnormal, and x86 cores, which handle
 * subnormals through slow microcode assists (about a hundred cycles each on Intel), run at
 * full speed. Off by default, as IEEE 754 has it. Sets
 * the x86-64 MXCSR bits FTZ and DAZ and returns true; elsewhere it does nothing and returns
 * false. tg_flush_denormal tells whether it is on for the calling thread. */
TG_API bool tg_set_flush_denormal(bool on);
TG_API bool tg_flush_denormal(void);

/* A tensor (tapegrad/tensor.h), opaque: a leaf or a tensor recorded on a tape. Who owns it
 * and frees it is in the rules above: a leaf is the caller's (tg_tensor_free), a tape tensor
 * its tape's (freed by tg_tape_reset and tg_tape_free). */
typedef struct tg_tensor tg_tensor;
/* A tape (tapegrad/tape.h), opaque: records ops as they run and differentiates them. Made by
 * tg_tape_new, the caller's, freed with tg_tape_free, which frees every tensor recorded on it. */
typedef struct tg_tape tg_tape;

#ifdef __cplusplus
}
#endif

#endif
